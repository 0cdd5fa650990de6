/*
 * swerex-tunnel: a TLS forwarder for swerexd, in both directions.
 *
 * Forward (--listen unix:PATH --connect tls://HOST:PORT): local clients, in
 * any language, see a Unix socket. Each local connection gets its own TLS
 * connection to a remote swerexd; the tunnel holds the credentials and puts
 * its token into the client's Hello.
 *
 * Reverse (--listen tls://HOST:PORT --connect unix:PATH): a swerexd that
 * listens on a Unix socket only is served over TLS. A peer must send a Hello
 * with the token as its first frame before one byte reaches the daemon.
 *
 * A connection joins two sides: "down", the peer we accepted, and "up", the
 * connection we open for it. Its states:
 *
 *   HELLO --> CONNECTING --> PIPE --> DRAIN --> freed
 *     |           |                     ^
 *     +--> REJECT +---------------------+---> freed
 *
 *   HELLO       the first frame of down is read (bounded) before the auth
 *               deadline, which also covers the TLS handshake.
 *   REJECT      an error Response is written to down (after a delay that
 *               grows with repeated failures from one address), then close.
 *   CONNECTING  up is opened: resolve, connect (retried with backoff until
 *               the connect deadline), TLS handshake. Down is not read.
 *   PIPE        the rewritten Hello goes first, then bytes are copied both
 *               ways untouched. Each direction is bounded: when the output
 *               of one side passes TUNNEL_BUF_HIGH, the other side is not
 *               read until it drains below half of that.
 *   DRAIN       one side is gone: the other is sent what it can still take
 *               (bounded by a linger timer), then both are closed.
 *
 * Every way a connection ends goes through tunnel_conn_free(); its memory is
 * released from the loop, so a callback never runs on freed memory. This
 * file owns the connections; tunnel-main.c owns the process.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event_struct.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "remote.h"
#include "tls.h"
#include "log.h"
#include "tunnel.h"
#include "wire.h"

/* Bytes one direction may hold for a slow reader before its source pauses. */
#define TUNNEL_BUF_HIGH (1024u * 1024)
/* Largest TLS record payload: the chain size for TLS outputs. */
#define TUNNEL_RECORD 16384u
/* Largest first frame from a local client (forward). */
#define TUNNEL_HELLO_MAX (64u * 1024)
/* Largest frame from a peer that has not authenticated yet (reverse). */
#define TUNNEL_AUTH_MAX 8192u
/* Seconds a closing connection may take to flush what it still holds. */
#define TUNNEL_LINGER 5.0
/* Seconds one connect attempt may take before the next address is tried. */
#define TUNNEL_ATTEMPT_TIMEOUT 3.0
/* Backoff between connect rounds, in seconds. */
#define TUNNEL_BACKOFF_MIN 0.05
#define TUNNEL_BACKOFF_MAX 2.0
/* Seconds resolved remote addresses are used before they are looked up again. */
#define TUNNEL_RESOLVE_TTL 60.0
/* Authentication failures count within this many seconds. */
#define TUNNEL_FAIL_WINDOW 600.0
#define TUNNEL_FAIL_DELAY_MIN 0.25
#define TUNNEL_FAIL_DELAY_MAX 8.0

enum tunnel_state {
	TUNNEL_HELLO,
	TUNNEL_REJECT,
	TUNNEL_CONNECTING,
	TUNNEL_PIPE,
	TUNNEL_DRAIN,
};

/* One tunnelled connection: the peer we accepted and what we opened for it. */
struct tunnel_conn {
	struct tunnel *t;
	TAILQ_ENTRY(tunnel_conn) entry;
	TAILQ_ENTRY(tunnel_conn) resolve_entry;
	unsigned id;
	enum tunnel_state state;
	bool dead;		/* torn down; memory released from the loop */
	bool resolving;		/* on t->resolve_waiters */
	struct bufferevent *down;
	struct bufferevent *up;	/* NULL until connected */
	bool down_paused;	/* down not read: up's output is full */
	bool up_paused;		/* up not read: down's output is full */
	struct evbuffer *first;	/* the rewritten Hello, or the error answer */
	struct sockaddr_storage peer;
	char name[128];		/* for logs */
	struct event ev_deadline; /* auth, connect or linger deadline */
	struct event ev_step;	/* connect in progress, backoff or reject delay */
	int up_fd;		/* socket being connected, or -1 */
	unsigned addr_i;	/* next remote address to try */
	unsigned round;		/* connect rounds so far, for the backoff */
	double connect_by;	/* monotonic deadline of CONNECTING */
	char up_err[160];	/* why the last connect attempt failed */
};


static void tunnel_conn_free(struct tunnel_conn *c);
static void tunnel_up_round(struct tunnel_conn *c);
static void tunnel_up_attempt(struct tunnel_conn *c);
static void tunnel_event_cb(struct bufferevent *bev, short what, void *arg);

/* Seconds on the monotonic clock. */
static double
tunnel_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Arm a timer for a number of seconds. */
void
tunnel_timer_add(struct event *ev, double seconds)
{
	struct timeval tv;

	if (seconds < 0)
		seconds = 0;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(ev, &tv);
}

/* Free a torn-down connection's memory, outside of its own callbacks. */
static void
tunnel_conn_release(evutil_socket_t fd, short what, void *arg)
{
	free(arg);
}

/* Close one side; a TLS side that still works says close_notify first. */
static void
tunnel_side_close(struct bufferevent *bev, bool polite)
{
	SSL *ssl;

	if (bev == NULL)
		return;
	if (polite && (ssl = bufferevent_openssl_get_ssl(bev)) != NULL &&
	    SSL_is_init_finished(ssl)) {
		/* Best effort: the socket is non-blocking and may refuse it. */
		SSL_shutdown(ssl);
		ERR_clear_error();
	}
	bufferevent_free(bev);
}

/* Tear a connection down: the one path for every way it ends. */
static void
tunnel_conn_free(struct tunnel_conn *c)
{
	struct tunnel *t = c->t;

	if (c->dead)
		return;
	c->dead = true;
	TAILQ_REMOVE(&t->conns, c, entry);
	t->n_conns--;
	if (c->resolving) {
		TAILQ_REMOVE(&t->resolve_waiters, c, resolve_entry);
		c->resolving = false;
	}
	if (event_initialized(&c->ev_deadline))
		event_del(&c->ev_deadline);
	if (event_initialized(&c->ev_step))
		event_del(&c->ev_step);
	if (c->up_fd >= 0)
		close(c->up_fd);
	c->up_fd = -1;
	if (c->first != NULL)
		evbuffer_free(c->first);
	c->first = NULL;
	tunnel_side_close(c->down, true);
	tunnel_side_close(c->up, true);
	c->down = c->up = NULL;
	log_msg(LOG_LVL_DEBUG, "%s: closed", c->name);
	if (event_base_once(t->base, -1, EV_TIMEOUT, tunnel_conn_release, c,
	    NULL) < 0)
		log_msg(LOG_LVL_ERROR, "%s: cannot schedule its release",
		    c->name);
}

/* Describe why a bufferevent reported an error or EOF. */
static void
tunnel_bev_why(struct bufferevent *bev, short what, char *buf, size_t len)
{
	unsigned long e;
	SSL *ssl;
	long v;
	int err = EVUTIL_SOCKET_ERROR();

	ssl = bufferevent_openssl_get_ssl(bev);
	if (ssl != NULL && (v = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(buf, len, "certificate verification failed: %s",
		    X509_verify_cert_error_string(v));
		return;
	}
	if (ssl != NULL && (e = bufferevent_get_openssl_error(bev)) != 0) {
		char ssl_buf[256];

		ERR_error_string_n(e, ssl_buf, sizeof ssl_buf);
		snprintf(buf, len, "TLS error: %s", ssl_buf);
		while (bufferevent_get_openssl_error(bev) != 0)
			;
		return;
	}
	if (what & BEV_EVENT_EOF)
		snprintf(buf, len, "end of stream");
	else if (what & BEV_EVENT_TIMEOUT)
		snprintf(buf, len, "timeout");
	else if (err != 0)
		snprintf(buf, len, "%s", strerror(err));
	else
		snprintf(buf, len, "connection error");
}

/* The side of c that is not bev. */
static struct bufferevent *
tunnel_other(struct tunnel_conn *c, struct bufferevent *bev)
{
	return bev == c->down ? c->up : c->down;
}

/* Where the pause flag of a source side lives. */
static bool *
tunnel_paused(struct tunnel_conn *c, struct bufferevent *src)
{
	return src == c->down ? &c->down_paused : &c->up_paused;
}

/*
 * Append in to a TLS side's output in chains of up to TUNNEL_RECORD bytes.
 * bufferevent_openssl makes one TLS record (and one write) per chain, and
 * libevent 2.1 reads sockets 4 KiB at a time: moving the chains as they are
 * would send 4 KiB records, four times the syscalls on both ends. 0 or -1.
 */
static int
tunnel_coalesce(struct evbuffer *out, struct evbuffer *in)
{
	struct evbuffer_iovec v;
	size_t n;

	while ((n = evbuffer_get_length(in)) > 0) {
		/* The free room of the last chain, else a new full-size chain. */
		if (evbuffer_reserve_space(out, 1, &v, 1) != 1)
			return -1;
		if (v.iov_len < 1024 && v.iov_len < n &&
		    evbuffer_reserve_space(out, TUNNEL_RECORD, &v, 1) != 1)
			return -1;
		if (n > v.iov_len)
			n = v.iov_len;
		if (evbuffer_remove(in, v.iov_base, n) != (int)n)
			return -1;
		v.iov_len = n;
		if (evbuffer_commit_space(out, &v, 1) != 0)
			return -1;
	}
	return 0;
}

/* Move all of in to dst's output (coalesced when dst is TLS); 0 or -1. */
static int
tunnel_append(struct bufferevent *dst, struct evbuffer *in)
{
	if (evbuffer_get_length(in) == 0)
		return 0;
	if (bufferevent_openssl_get_ssl(dst) != NULL)
		return tunnel_coalesce(bufferevent_get_output(dst), in);
	return bufferevent_write_buffer(dst, in);
}

/*
 * Move what src has read to dst's output. When dst holds TUNNEL_BUF_HIGH or
 * more, stop reading src: the kernel then makes its writer wait.
 */
static void
tunnel_copy(struct tunnel_conn *c, struct bufferevent *src,
	    struct bufferevent *dst)
{
	bool *paused = tunnel_paused(c, src);

	if (tunnel_append(dst, bufferevent_get_input(src)) < 0) {
		log_msg(LOG_LVL_ERROR, "%s: out of memory", c->name);
		tunnel_conn_free(c);
		return;
	}
	if (!*paused &&
	    evbuffer_get_length(bufferevent_get_output(dst)) >= TUNNEL_BUF_HIGH) {
		*paused = true;
		bufferevent_disable(src, EV_READ);
	}
}

/* Copy what a side read to the other side (PIPE). */
static void
tunnel_read_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel_conn *c = arg;

	if (c->dead || c->state != TUNNEL_PIPE)
		return;
	tunnel_copy(c, bev, tunnel_other(c, bev));
}

/*
 * A side's output drained below its low watermark: resume the side that
 * feeds it (PIPE), or finish a close once everything is written.
 */
static void
tunnel_write_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel_conn *c = arg;
	struct bufferevent *src;
	bool *paused;

	if (c->dead)
		return;
	switch (c->state) {
	case TUNNEL_PIPE:
		src = tunnel_other(c, bev);
		paused = tunnel_paused(c, src);
		if (*paused && evbuffer_get_length(bufferevent_get_output(bev)) <=
		    TUNNEL_BUF_HIGH / 2) {
			*paused = false;
			bufferevent_enable(src, EV_READ);
			tunnel_copy(c, src, bev);
		}
		break;
	case TUNNEL_REJECT:
	case TUNNEL_DRAIN:
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			tunnel_conn_free(c);
		break;
	default:
		break;
	}
}

/*
 * One side is gone: send the other what it can still take, within the
 * linger time, then close both.
 */
static void
tunnel_drain(struct tunnel_conn *c, struct bufferevent *dead)
{
	struct bufferevent *live = tunnel_other(c, dead);
	struct evbuffer *in = bufferevent_get_input(dead);

	/* The dead side's last bytes: at most one read's worth. */
	tunnel_append(live, in);
	if (dead == c->down)
		c->down = NULL;
	else
		c->up = NULL;
	tunnel_side_close(dead, false);
	c->state = TUNNEL_DRAIN;
	bufferevent_disable(live, EV_READ);
	/* Nobody is left to take what live sends now. */
	in = bufferevent_get_input(live);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (evbuffer_get_length(bufferevent_get_output(live)) == 0) {
		tunnel_conn_free(c);
		return;
	}
	bufferevent_setwatermark(live, EV_WRITE, 0, 0);
	bufferevent_enable(live, EV_WRITE);
	tunnel_timer_add(&c->ev_deadline, TUNNEL_LINGER);
}

/* Up is connected (and its TLS handshake done): send the Hello, then copy. */
static void
tunnel_pipe_start(struct tunnel_conn *c)
{
	c->state = TUNNEL_PIPE;
	evtimer_del(&c->ev_deadline);
	log_msg(LOG_LVL_DEBUG, "%s: connected to %s", c->name,
	    c->t->opt.connect);
	bufferevent_setcb(c->down, tunnel_read_cb, tunnel_write_cb,
	    tunnel_event_cb, c);
	bufferevent_setcb(c->up, tunnel_read_cb, tunnel_write_cb,
	    tunnel_event_cb, c);
	/* Write callbacks only matter once a source is paused. */
	bufferevent_setwatermark(c->down, EV_WRITE, TUNNEL_BUF_HIGH / 2, 0);
	bufferevent_setwatermark(c->up, EV_WRITE, TUNNEL_BUF_HIGH / 2, 0);
	if (bufferevent_write_buffer(c->up, c->first) < 0) {
		log_msg(LOG_LVL_ERROR, "%s: out of memory", c->name);
		tunnel_conn_free(c);
		return;
	}
	evbuffer_free(c->first);
	c->first = NULL;
	bufferevent_enable(c->down, EV_READ | EV_WRITE);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	/* What the client sent after its Hello is waiting in down's input. */
	tunnel_copy(c, c->down, c->up);
}

/* Close a connection whose deadline passed (auth, connect or linger). */
static void
tunnel_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel_conn *c = arg;

	switch (c->state) {
	case TUNNEL_HELLO:
		log_msg(LOG_LVL_INFO, "%s: no %s within %g s; closing",
		    c->name, c->t->reverse ? "TLS handshake and Hello" : "Hello",
		    c->t->opt.auth_timeout);
		break;
	case TUNNEL_CONNECTING:
		log_msg(LOG_LVL_WARN, "%s: cannot reach %s within %g s "
		    "(%s); closing", c->name, c->t->opt.connect,
		    c->t->opt.connect_timeout,
		    c->up_err[0] != '\0' ? c->up_err : "no answer");
		break;
	case TUNNEL_REJECT:
	case TUNNEL_DRAIN:
		log_msg(LOG_LVL_DEBUG, "%s: peer did not take the rest "
		    "in %g s", c->name, TUNNEL_LINGER);
		break;
	case TUNNEL_PIPE:
		return;
	}
	tunnel_conn_free(c);
}

/* Turn an address into the key of the failure table; false if it has none. */
static bool
tunnel_fail_key(const struct sockaddr_storage *ss, int *family,
		unsigned char key[16])
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		*family = AF_INET;
		memcpy(key, &s4->sin_addr, 4);
		return true;
	}
	if (ss->ss_family != AF_INET6)
		return false;
	if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		*family = AF_INET;
		memcpy(key, s6->sin6_addr.s6_addr + 12, 4);
	} else {
		*family = AF_INET6;
		memcpy(key, &s6->sin6_addr, 16);
	}
	return true;
}

/*
 * Count an authentication failure of the peer's address and return how long
 * to wait before answering it: the n-th failure within TUNNEL_FAIL_WINDOW
 * waits min(0.25 * 2^(n-1), 8) seconds. The table is bounded; when it is
 * full the address that failed least recently is forgotten.
 */
static double
tunnel_fail_delay(struct tunnel *t, const struct sockaddr_storage *ss)
{
	struct tunnel_fail *f = NULL, *oldest = NULL, *s;
	unsigned char key[16];
	double now = tunnel_now(), d;
	unsigned i;
	int family;

	if (!tunnel_fail_key(ss, &family, key))
		return 0;
	for (i = 0; i < TUNNEL_FAIL_SLOTS; i++) {
		s = &t->fails[i];
		if (s->family == family && memcmp(s->addr, key, 16) == 0) {
			f = s;
			break;
		}
		if (oldest == NULL || s->family == 0 ||
		    (oldest->family != 0 && s->last < oldest->last))
			oldest = s;
	}
	if (f == NULL) {
		f = oldest;
		f->family = family;
		memcpy(f->addr, key, 16);
		f->count = 0;
	} else if (now - f->last > TUNNEL_FAIL_WINDOW)
		f->count = 0;
	if (f->count < UINT_MAX)
		f->count++;
	f->last = now;
	d = TUNNEL_FAIL_DELAY_MIN * ldexp(1.0, f->count > 16 ? 16 :
	    (int)f->count - 1);
	return d > TUNNEL_FAIL_DELAY_MAX ? TUNNEL_FAIL_DELAY_MAX : d;
}

/* Write the held error answer to down (the reject delay has passed). */
static void
tunnel_reject_send_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel_conn *c = arg;

	if (bufferevent_write_buffer(c->down, c->first) < 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->down)) == 0) {
		tunnel_conn_free(c);
		return;
	}
	bufferevent_enable(c->down, EV_WRITE);
}

/*
 * Answer down's first frame with an error and close once it is written;
 * reverse tunnels answer after a delay that grows with repeated failures.
 */
static void
tunnel_reject(struct tunnel_conn *c, uint64_t id, Swerex__V1__ErrorKind kind,
	      const char *msg)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error err = SWEREX__V1__ERROR__INIT;
	double delay = 0;

	c->state = TUNNEL_REJECT;
	evtimer_del(&c->ev_deadline);
	bufferevent_disable(c->down, EV_READ);
	bufferevent_setcb(c->down, NULL, tunnel_write_cb, tunnel_event_cb, c);
	bufferevent_setwatermark(c->down, EV_WRITE, 0, 0);
	err.kind = kind;
	err.message = (char *)msg;
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
	resp.error = &err;
	if ((c->first = evbuffer_new()) == NULL ||
	    wire_put(c->first, &resp.base) < 0) {
		tunnel_conn_free(c);
		return;
	}
	if (c->t->reverse)
		delay = tunnel_fail_delay(c->t, &c->peer);
	log_msg(c->t->reverse ? LOG_LVL_WARN : LOG_LVL_INFO,
	    "%s: refused: %s%s", c->name, msg,
	    delay > 0 ? " (answer delayed)" : "");
	tunnel_timer_add(&c->ev_deadline, delay + TUNNEL_LINGER);
	evtimer_assign(&c->ev_step, c->t->base, tunnel_reject_send_cb, c);
	tunnel_timer_add(&c->ev_step, delay);
}

/*
 * Put the Hello that goes up into c->first: forward sets the tunnel's token
 * (when it has one), reverse checks the token and clears it. Return false
 * after answering down when the Hello is refused.
 */
static bool
tunnel_hello_rewrite(struct tunnel_conn *c, Swerex__V1__Request *req)
{
	struct tunnel *t = c->t;
	Swerex__V1__Hello *hello;
	char *given;
	int r;

	if (req->body_case != SWEREX__V1__REQUEST__BODY_HELLO) {
		if (t->reverse)
			tunnel_reject(c, req->id,
			    SWEREX__V1__ERROR_KIND__UNAUTHENTICATED,
			    "invalid token (the first request must be a Hello)");
		else
			tunnel_reject(c, req->id,
			    SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
			    "the first request must be a Hello");
		return false;
	}
	/* Only now: the body is a union, hello means nothing for others. */
	hello = req->hello;
	given = hello->token;
	if (t->reverse) {
		if (!remote_token_equal(t->token, given)) {
			tunnel_reject(c, req->id,
			    SWEREX__V1__ERROR_KIND__UNAUTHENTICATED,
			    "invalid token");
			return false;
		}
		/* The daemon behind a Unix socket needs no token. */
		hello->token = (char *)"";
	} else if (t->token != NULL)
		hello->token = t->token;
	if ((c->first = evbuffer_new()) == NULL)
		r = -ENOMEM;
	else
		r = wire_put(c->first, &req->base);
	/* The unpacked message owns the original string: give it back. */
	hello->token = given;
	if (r < 0) {
		log_msg(LOG_LVL_ERROR, "%s: cannot re-encode the Hello: %s",
		    c->name, strerror(-r));
		tunnel_conn_free(c);
		return false;
	}
	return true;
}

/* Tell whether the resolved remote addresses can be used (forward). */
static bool
tunnel_addrs_fresh(struct tunnel *t)
{
	return t->addrs != NULL && !t->addrs_stale &&
	    tunnel_now() - t->addrs_at < TUNNEL_RESOLVE_TTL;
}

/* Start one connect round for every connection that waited for the lookup. */
static void
tunnel_resolved_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct tunnel *t = arg;
	struct tunnel_conn *c;

	t->resolve_busy = false;
	t->resolve_req = NULL;
	if (t->stopping || result == EVUTIL_EAI_CANCEL) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	if (result == 0 && res != NULL) {
		if (t->addrs != NULL)
			evutil_freeaddrinfo(t->addrs);
		t->addrs = res;
		t->addrs_at = tunnel_now();
		t->addrs_stale = false;
	} else
		log_msg(LOG_LVL_WARN, "cannot resolve %s: %s%s",
		    t->connect.host, evutil_gai_strerror(result),
		    t->addrs != NULL ? " (using the last known addresses)" : "");
	while ((c = TAILQ_FIRST(&t->resolve_waiters)) != NULL) {
		TAILQ_REMOVE(&t->resolve_waiters, c, resolve_entry);
		c->resolving = false;
		if (t->addrs == NULL)
			snprintf(c->up_err, sizeof c->up_err, "cannot resolve "
			    "%s: %s", t->connect.host,
			    evutil_gai_strerror(result));
		c->addr_i = 0;
		tunnel_up_attempt(c);
	}
}

/* Look the remote host up without blocking the loop (one lookup at a time). */
static void
tunnel_resolve(struct tunnel *t)
{
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *req;

	if (t->resolve_busy)
		return;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	t->resolve_busy = true;
	req = evdns_getaddrinfo(t->dns, t->connect.host, t->connect.port,
	    &hints, tunnel_resolved_cb, t);
	/* A numeric host or /etc/hosts answers before the call returns. */
	if (t->resolve_busy)
		t->resolve_req = req;
}

/* Schedule the next connect round after a backoff, or give up. */
static void
tunnel_up_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	tunnel_up_round(arg);
}

/* A connect attempt failed: try the next address, back off, or give up. */
static void
tunnel_up_failed(struct tunnel_conn *c, const char *why)
{
	struct tunnel *t = c->t;
	double delay, left;

	if (c->up_fd >= 0)
		close(c->up_fd);
	c->up_fd = -1;
	if (why != NULL) {
		snprintf(c->up_err, sizeof c->up_err, "%s", why);
		log_msg(LOG_LVL_DEBUG, "%s: connect to %s failed: %s",
		    c->name, t->opt.connect, why);
	}
	if (t->connect.scheme != TUNNEL_UNIX && t->addrs != NULL) {
		struct evutil_addrinfo *ai = t->addrs;
		unsigned i;

		for (i = 0; ai != NULL && i < c->addr_i; i++)
			ai = ai->ai_next;
		if (ai != NULL) {
			tunnel_up_attempt(c);
			return;
		}
		/* Every address failed: look the name up again next round. */
		t->addrs_stale = true;
	}
	delay = TUNNEL_BACKOFF_MIN * ldexp(1.0, c->round > 8 ? 8 : (int)c->round);
	if (delay > TUNNEL_BACKOFF_MAX)
		delay = TUNNEL_BACKOFF_MAX;
	c->round++;
	left = c->connect_by - tunnel_now();
	if (left <= 0.001) {
		log_msg(LOG_LVL_WARN, "%s: cannot reach %s within %g s "
		    "(%s); closing", c->name, t->opt.connect,
		    t->opt.connect_timeout, c->up_err);
		tunnel_conn_free(c);
		return;
	}
	/* The last attempt is made at the deadline, not skipped. */
	if (delay > left)
		delay = left;
	evtimer_assign(&c->ev_step, t->base, tunnel_up_backoff_cb, c);
	tunnel_timer_add(&c->ev_step, delay);
}

/* Up's socket is connected: wrap it (TLS handshake for forward) and go on. */
static void
tunnel_up_connected(struct tunnel_conn *c, int fd)
{
	struct tunnel *t = c->t;
	SSL *ssl;

	c->up_fd = -1;
	if (t->reverse) {
		c->up = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (c->up == NULL) {
			close(fd);
			tunnel_conn_free(c);
			return;
		}
		tunnel_pipe_start(c);
		return;
	}
	ssl = SSL_new(t->ctx);
	if (ssl == NULL || tls_client_verify_name(ssl, t->server_name) < 0) {
		char why[256];

		tls_error_string(why, sizeof why);
		log_msg(LOG_LVL_ERROR, "%s: cannot set up TLS: %s",
		    c->name, why);
		SSL_free(ssl);
		close(fd);
		tunnel_conn_free(c);
		return;
	}
	/* On failure libevent frees ssl (CLOSE_ON_FREE) but not fd. */
	c->up = bufferevent_openssl_socket_new(t->base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->up == NULL) {
		close(fd);
		tunnel_conn_free(c);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(c->up, 1);
	bufferevent_setcb(c->up, tunnel_read_cb, tunnel_write_cb,
	    tunnel_event_cb, c);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
}

/* A non-blocking connect finished (or its attempt timed out). */
static void
tunnel_up_writable_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel_conn *c = arg;
	socklen_t len = sizeof(int);
	int err = 0;

	if (what & EV_TIMEOUT) {
		tunnel_up_failed(c, "connect timed out");
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		tunnel_up_failed(c, strerror(err));
		return;
	}
	tunnel_up_connected(c, fd);
}

/* Connect to the next address of the round, without blocking. */
static void
tunnel_up_attempt(struct tunnel_conn *c)
{
	struct tunnel *t = c->t;
	struct sockaddr_un sun;
	const struct sockaddr *sa;
	socklen_t len;
	struct timeval tv;
	double left;
	int fd;

	if (t->connect.scheme == TUNNEL_UNIX) {
		memset(&sun, 0, sizeof sun);
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, t->connect.path, strlen(t->connect.path));
		sa = (const struct sockaddr *)&sun;
		len = sizeof sun;
	} else {
		struct evutil_addrinfo *ai = t->addrs;
		unsigned i;

		for (i = 0; ai != NULL && i < c->addr_i; i++)
			ai = ai->ai_next;
		if (ai == NULL) {
			c->addr_i = UINT_MAX;
			tunnel_up_failed(c, NULL);
			return;
		}
		c->addr_i++;
		sa = ai->ai_addr;
		len = (socklen_t)ai->ai_addrlen;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		tunnel_up_failed(c, strerror(errno));
		return;
	}
	c->up_fd = fd;
	if (sa->sa_family != AF_UNIX)
		remote_tcp_tune(fd, t->opt.keepalive);
	if (connect(fd, sa, len) == 0) {
		tunnel_up_connected(c, fd);
		return;
	}
	/* A Unix socket with a full backlog says EAGAIN: retry later. */
	if (errno != EINPROGRESS) {
		tunnel_up_failed(c, strerror(errno));
		return;
	}
	left = c->connect_by - tunnel_now();
	if (left > TUNNEL_ATTEMPT_TIMEOUT)
		left = TUNNEL_ATTEMPT_TIMEOUT;
	if (left < 0.01)
		left = 0.01;
	tv.tv_sec = (time_t)left;
	tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
	event_assign(&c->ev_step, t->base, fd, EV_WRITE, tunnel_up_writable_cb,
	    c);
	event_add(&c->ev_step, &tv);
}

/* Begin a connect round: the Unix path, or every resolved address. */
static void
tunnel_up_round(struct tunnel_conn *c)
{
	struct tunnel *t = c->t;

	c->addr_i = 0;
	if (t->connect.scheme == TUNNEL_UNIX || tunnel_addrs_fresh(t)) {
		tunnel_up_attempt(c);
		return;
	}
	c->resolving = true;
	TAILQ_INSERT_TAIL(&t->resolve_waiters, c, resolve_entry);
	tunnel_resolve(t);
}

/* The Hello is accepted: stop reading down and open up. */
static void
tunnel_up_start(struct tunnel_conn *c)
{
	c->state = TUNNEL_CONNECTING;
	bufferevent_disable(c->down, EV_READ);
	c->connect_by = tunnel_now() + c->t->opt.connect_timeout;
	tunnel_timer_add(&c->ev_deadline, c->t->opt.connect_timeout);
	c->round = 0;
	tunnel_up_round(c);
}

/* Read down's first frame (HELLO): it must be a Hello. */
static void
tunnel_hello_cb(struct bufferevent *bev, void *arg)
{
	struct tunnel_conn *c = arg;
	ProtobufCMessage *msg = NULL;
	Swerex__V1__Request *req;
	int r;

	if (c->dead || c->state != TUNNEL_HELLO)
		return;
	r = wire_take(bufferevent_get_input(bev),
	    c->t->reverse ? TUNNEL_AUTH_MAX : TUNNEL_HELLO_MAX,
	    &swerex__v1__request__descriptor, &msg);
	if (r == WIRE_AGAIN)
		return;
	if (r != WIRE_OK) {
		tunnel_reject(c, 0, SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR,
		    r == WIRE_E_SIZE ? (c->t->reverse ?
		    "first frame above 8192 bytes before authentication" :
		    "first frame above 65536 bytes") : wire_strerror(r));
		return;
	}
	req = (Swerex__V1__Request *)msg;
	if (tunnel_hello_rewrite(c, req)) {
		if (c->t->reverse)
			log_msg(LOG_LVL_INFO, "%s: authenticated", c->name);
		tunnel_up_start(c);
	}
	protobuf_c_message_free_unpacked(msg, NULL);
}

/* Handle a side's handshake, EOF or error, by state. */
static void
tunnel_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tunnel_conn *c = arg;
	char why[320];

	if (c->dead)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		if (bev == c->up && c->state == TUNNEL_CONNECTING)
			tunnel_pipe_start(c);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	tunnel_bev_why(bev, what, why, sizeof why);
	switch (c->state) {
	case TUNNEL_PIPE:
		log_msg(LOG_LVL_DEBUG, "%s: %s side closed: %s", c->name,
		    bev == c->down ? "accepted" : "connected", why);
		tunnel_drain(c, bev);
		return;
	case TUNNEL_CONNECTING:
		if (bev == c->up)
			log_msg(LOG_LVL_WARN, "%s: TLS with %s failed: %s",
			    c->name, c->t->opt.connect, why);
		break;
	case TUNNEL_HELLO:
		log_msg(c->t->reverse && !(what & BEV_EVENT_EOF) ?
		    LOG_LVL_INFO : LOG_LVL_DEBUG, "%s: closed before its "
		    "Hello: %s", c->name, why);
		break;
	default:
		log_msg(LOG_LVL_DEBUG, "%s: %s", c->name, why);
		break;
	}
	tunnel_conn_free(c);
}

/* Accept a connection: start its auth deadline and wait for its Hello. */
void
tunnel_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		 struct sockaddr *sa, int salen, void *arg)
{
	struct tunnel *t = arg;
	struct tunnel_conn *c;
	char addr[80];
	SSL *ssl;

	if (t->stopping) {
		close(fd);
		return;
	}
	if (t->n_conns >= t->opt.max_conns) {
		/* One line a second at most: a flood must not flood the log. */
		if (tunnel_now() - t->limit_logged >= 1.0) {
			t->limit_logged = tunnel_now();
			log_msg(LOG_LVL_WARN, "connection limit (%u) "
			    "reached; refusing connections", t->opt.max_conns);
		}
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof *c)) == NULL) {
		close(fd);
		return;
	}
	c->t = t;
	c->id = ++t->next_id;
	c->up_fd = -1;
	c->state = TUNNEL_HELLO;
	if (salen > 0 && (size_t)salen <= sizeof c->peer)
		memcpy(&c->peer, sa, (size_t)salen);
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
		remote_addr_format(sa, addr, sizeof addr);
		snprintf(c->name, sizeof c->name, "connection %u from %s",
		    c->id, addr);
		remote_tcp_tune(fd, t->opt.keepalive);
	} else
		snprintf(c->name, sizeof c->name, "connection %u", c->id);

	if (t->listen.scheme == TUNNEL_TLS) {
		if ((ssl = SSL_new(t->ctx)) == NULL)
			goto fail;
		/* On failure libevent frees ssl (CLOSE_ON_FREE) but not fd. */
		c->down = bufferevent_openssl_socket_new(t->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (c->down != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->down, 1);
	} else
		c->down = bufferevent_socket_new(t->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (c->down == NULL)
		goto fail;
	TAILQ_INSERT_TAIL(&t->conns, c, entry);
	t->n_conns++;
	evtimer_assign(&c->ev_deadline, t->base, tunnel_deadline_cb, c);
	tunnel_timer_add(&c->ev_deadline, t->opt.auth_timeout);
	bufferevent_setcb(c->down, tunnel_hello_cb, tunnel_write_cb,
	    tunnel_event_cb, c);
	bufferevent_enable(c->down, EV_READ | EV_WRITE);
	log_msg(LOG_LVL_DEBUG, "%s: accepted", c->name);
	return;

fail:
	log_msg(LOG_LVL_ERROR, "cannot set a connection up: out of memory");
	close(fd);
	free(c);
}

/* Set up the connection lists of a new tunnel. */
void
tunnel_init_conns(struct tunnel *t)
{
	TAILQ_INIT(&t->conns);
	TAILQ_INIT(&t->resolve_waiters);
}

/*
 * Close every connection and cancel the lookup in flight; its cancellation
 * and the connections' memory are delivered by the next loop pass.
 */
void
tunnel_close_all(struct tunnel *t)
{
	struct tunnel_conn *c;

	while ((c = TAILQ_FIRST(&t->conns)) != NULL)
		tunnel_conn_free(c);
	if (t->resolve_req != NULL) {
		evdns_getaddrinfo_cancel(t->resolve_req);
		t->resolve_req = NULL;
	}
}

/* Free the resolved remote addresses (once no lookup can deliver more). */
void
tunnel_forget_addrs(struct tunnel *t)
{
	if (t->addrs != NULL)
		evutil_freeaddrinfo(t->addrs);
	t->addrs = NULL;
}
