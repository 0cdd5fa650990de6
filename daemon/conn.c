/*
 * Client connections. A connection is a socket with an input and an output
 * buffer, plus the requests it is waiting on. Frames are taken as soon as
 * they are complete; the length is checked before the payload is waited for.
 * Any loss (EOF, error, protocol violation, keepalive) goes down conn_free(),
 * which detaches (or, for clients with an identity, parks) the pending
 * requests: sessions belong to the daemon and keep running.
 *
 * Two transports share everything above the buffers. Unix and plain TCP
 * sockets use raw events, and responses are written at once (one loop pass
 * less per round trip). TLS connections are a bufferevent_openssl that owns
 * the socket, the SSL and both buffers; it writes on its own.
 *
 * Peers on TCP listeners must present the token in their Hello within
 * --auth-timeout, and until then may send only small frames.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "attach.h"
#include "auth.h"
#include "check.h"
#include "conn.h"
#include "exec.h"
#include "file.h"
#include "ident.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "stats.h"
#include "remote.h"
#include "tlsmod.h"
#include "wire.h"

/*
 * Output waiting for a slow reader: at CONN_OUT_HIGH its producers (a
 * streaming command, a download) stop and the connection's requests wait;
 * at CONN_OUT_LOW the producers go on, before the socket runs dry. Small
 * enough that a slow reader's refill is a short burst of work, which is
 * what its neighbours feel (the hol benchmark); the socket buffer holds
 * about as much again.
 */
#define CONN_OUT_HIGH (1024u * 1024)
#define CONN_OUT_LOW (256u * 1024)
/* Requests handled per read callback before yielding to other peers. */
#define CONN_REQS_PER_EVENT 64
/* Largest frame before the Hello: a Hello with a token fits easily. */
#define CONN_PREAUTH_FRAME 8192
/* A request read takes this much, then this much more if it filled up. */
#define CONN_READ_FIRST 16384
#define CONN_READ_MORE 65536

struct conn {
	struct server *srv;
	int fd;
	struct bufferevent *bev;  /* TLS: owns fd, SSL and both buffers */
	struct evbuffer *in;
	struct evbuffer *out;
	struct event ev_read;     /* raw transports only */
	struct event ev_write;
	struct event ev_more;     /* take the frames left by a yield */
	struct event ev_auth;     /* Hello deadline, or a delayed refusal */
	struct event ev_stuck;    /* output at its cap: the peer must read */
	struct evbuffer_cb_entry *out_cb;  /* notes when the peer reads */
	struct timeval drained_at;         /* last time output left c->out */
	bool dead;      /* torn down; memory freed from the loop */
	TAILQ_ENTRY(conn) entry;
	TAILQ_HEAD(, req) reqs;
	bool hello;
	bool need_token;          /* accepted on a TCP listener */
	bool closing;   /* flush what is queued, then free */
	bool paused;    /* not reading: the peer does not read its responses */
	/* Requests waiting for a drain (resume set): with a thousand sessions
	 * on one connection, walking them all at every drain would cost more
	 * than the response itself. */
	unsigned n_backlog;
	struct req *refused;      /* a Hello to refuse once its delay passed */
	struct ident *ident;      /* the client's identity, if it sent one */
	unsigned id;
	char peer[72];            /* "HOST:PORT" for TCP peers */
	/* For StatsRequest: frame bytes, as in struct stats. */
	uint64_t requests;
	uint64_t bytes_in;
	uint64_t bytes_out;
	double connected;         /* seconds since the epoch */
	char client_name[64];     /* from the Hello, cut to fit */
};

static void conn_process(struct conn *c);
static void conn_free(struct conn *c);

/* Note the time whenever the peer takes some of its output. */
static void
conn_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
	    void *arg)
{
	struct conn *c = arg;

	if (info->n_deleted > 0) {
		event_base_gettimeofday_cached(c->srv->base, &c->drained_at);
		/* What leaves the buffer went to the socket (or to TLS). */
		c->bytes_out += info->n_deleted;
		c->srv->stats.bytes_out += info->n_deleted;
	}
}

/*
 * Close a peer that, once its output reached the cap, read none of it for
 * --stuck-timeout; one that reads a little is given more time. The watch
 * ends when the output has drained (conn_drained()), as the backlog does:
 * below the cap but not empty, producers still wait for this peer.
 */
static void
conn_stuck_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct timeval now, idle;
	double waited;

	if (evbuffer_get_length(c->out) == 0)
		return;
	event_base_gettimeofday_cached(c->srv->base, &now);
	evutil_timersub(&now, &c->drained_at, &idle);
	waited = (double)idle.tv_sec + idle.tv_usec / 1e6;
	if (waited < c->srv->cfg.stuck_timeout) {
		server_timer_add(&c->ev_stuck, c->srv->cfg.stuck_timeout - waited);
		return;
	}
	log_warn("connection %u%s%s: read nothing of its %zu bytes of pending "
	    "output for %g s; closing", c->id, *c->peer ? " " : "", c->peer,
	    evbuffer_get_length(c->out), waited);
	if (c->need_token) {
		/* Reset: a plain close would leave the kernel holding (and
		 * retrying) the megabytes this peer is not reading. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		if (setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0)
			log_debug("connection %u: SO_LINGER: %s", c->id,
			    strerror(errno));
	}
	conn_free(c);
}

/* Start the stuck timer once output reaches its cap. */
static void
conn_check_stuck(struct conn *c)
{
	if (evbuffer_get_length(c->out) < CONN_OUT_HIGH ||
	    evtimer_pending(&c->ev_stuck, NULL))
		return;
	event_base_gettimeofday_cached(c->srv->base, &c->drained_at);
	server_timer_add(&c->ev_stuck, c->srv->cfg.stuck_timeout);
}

/* Free a torn-down connection's memory, outside of its own callbacks. */
static void
conn_release(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->bev == NULL) {
		evbuffer_free(c->in);
		evbuffer_free(c->out);
	}
	free(c);
}

/* Start or stop reading requests. */
static void
conn_reading(struct conn *c, bool on)
{
	if (c->bev != NULL) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
	} else if (on)
		event_add(&c->ev_read, NULL);
	else
		event_del(&c->ev_read);
}

/* Call the resume callbacks of requests that waited for the peer to read. */
static void
conn_resume(struct conn *c)
{
	struct req *r, *next;
	void (*fn)(void *);

	for (r = TAILQ_FIRST(&c->reqs); r != NULL && c->n_backlog > 0;
	    r = next) {
		next = TAILQ_NEXT(r, entry);
		if ((fn = r->resume) != NULL) {
			r->resume = NULL;
			c->n_backlog--;
			fn(r->resume_arg);
		}
	}
}

/*
 * Read and drop what the peer sent and we did not read: closing a socket
 * with unread input sends a reset, which can overtake the TLS alert that
 * tells a refused client why (e.g. "certificate required").
 */
static void
conn_discard_input(int fd)
{
	char buf[4096];
	int i;

	for (i = 0; i < 16 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
		;
}

/*
 * Tear a connection down; pending requests stay with their owners, parked
 * with the client's identity when it has one.
 */
static void
conn_free(struct conn *c)
{
	struct req *r;

	if (c->dead)
		return;
	c->dead = true;
	if ((r = c->refused) != NULL) {
		c->refused = NULL;
		TAILQ_REMOVE(&c->reqs, r, entry);
		free(r);
	}
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, entry);
		r->conn = NULL;
		if (r->resume != NULL) {
			void (*fn)(void *) = r->resume;

			r->resume = NULL;
			c->n_backlog--;
			fn(r->resume_arg);
		}
		if (c->ident != NULL && !r->no_park)
			ident_park(c->ident, r);
		else if (r->detach != NULL)
			r->detach(r, r->detach_arg);
	}
	if (c->ident != NULL)
		ident_bind(c->ident, NULL);
	TAILQ_REMOVE(&c->srv->conns, c, entry);
	c->srv->n_conns--;
	event_del(&c->ev_more);
	event_del(&c->ev_auth);
	event_del(&c->ev_stuck);
	if (c->out_cb != NULL)
		evbuffer_remove_cb_entry(c->out, c->out_cb);
	if (c->bev != NULL) {
		conn_discard_input(c->fd);
		bufferevent_free(c->bev);   /* closes the socket, frees the SSL */
	} else {
		event_del(&c->ev_read);
		event_del(&c->ev_write);
		/* Answers queued in this loop pass still go out if they can. */
		if (evbuffer_get_length(c->out) > 0) {
			int n = evbuffer_write(c->out, c->fd);

			if (n > 0)
				c->srv->stats.bytes_out += (uint64_t)n;
		}
		close(c->fd);
	}
	log_debug("connection %u closed", c->id);
	if (event_base_once(c->srv->base, -1, EV_TIMEOUT, conn_release, c,
	    NULL) < 0)
		log_error("connection %u: cannot schedule its release", c->id);
}

/* All output is written: close a closing one, resume a paused one. */
static void
conn_drained(struct conn *c)
{
	event_del(&c->ev_stuck);
	if (c->closing) {
		conn_free(c);
		return;
	}
	conn_resume(c);
	if (c->paused) {
		c->paused = false;
		conn_reading(c, true);
		conn_process(c);
	}
}

/* Write what the socket takes; close a broken one, resume a paused one. */
static void
conn_flush(struct conn *c)
{
	if (c->dead)
		return;
	if (c->bev != NULL) {
		/* The bufferevent writes by itself and reports the drain. */
		if (evbuffer_get_length(c->out) == 0)
			conn_drained(c);
		return;
	}
	if (evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN &&
	    errno != EINTR) {
		conn_free(c);
		return;
	}
	if (evbuffer_get_length(c->out) > 0) {
		event_add(&c->ev_write, NULL);
		if (c->n_backlog > 0 &&
		    evbuffer_get_length(c->out) <= CONN_OUT_LOW)
			conn_resume(c);
		return;
	}
	event_del(&c->ev_write);
	conn_drained(c);
}

/*
 * Write queued output, unless a paused peer still has plenty to read. Raw
 * sockets are written once per loop pass, after the callbacks that are
 * ready: the responses of many sessions that finished together go out in
 * one write, and the peer wakes once for them.
 */
static void
conn_push(struct conn *c)
{
	conn_check_stuck(c);
	if (c->paused && evbuffer_get_length(c->out) >= CONN_OUT_HIGH / 2)
		return;
	if (c->bev != NULL)
		conn_flush(c);
	else
		event_active(&c->ev_write, EV_WRITE, 0);
}

/* Queue a response frame and write it. */
static void
conn_send(struct conn *c, Swerex__V1__Response *resp)
{
	if (c->dead)
		return;
	if (wire_put(c->out, (const ProtobufCMessage *)resp) < 0) {
		log_error("connection %u: cannot queue a response", c->id);
		return;
	}
	conn_push(c);
}

/*
 * Encode a final response once, for the peer (if any) and for its identity's
 * cache, so that a retry of the request gets the same bytes.
 */
static void
conn_send_kept(struct conn *c, struct ident *i, Swerex__V1__Response *resp)
{
	uint8_t *frame;
	size_t len;

	if (wire_encode(&resp->base, &frame, &len) < 0) {
		log_error("cannot encode a response");
		return;
	}
	if (c != NULL && !c->dead && evbuffer_add(c->out, frame, len) < 0)
		log_error("connection %u: cannot queue a response", c->id);
	ident_keep(i, resp->id, frame, len);
	if (c != NULL && !c->dead)
		conn_push(c);
}

/* Tell whether a request's connection is still there (or it is parked). */
bool
conn_req_attached(const struct req *r)
{
	return r != NULL && (r->conn != NULL || r->ident != NULL);
}

/*
 * Tell whether a request's peer is behind on reading. If so, resume(arg) is
 * called once its output has drained, or when it goes away; the caller
 * should stop producing for it meanwhile.
 */
bool
conn_backlogged(struct req *r, void (*resume)(void *), void *arg)
{
	if (r == NULL || r->conn == NULL ||
	    evbuffer_get_length(r->conn->out) < CONN_OUT_HIGH)
		return false;
	if (r->resume == NULL)
		r->conn->n_backlog++;
	r->resume = resume;
	r->resume_arg = arg;
	return true;
}

/* Send the final response to a request and free the request. */
void
conn_reply(struct req *r, Swerex__V1__Response *resp)
{
	struct ident *i;
	struct conn *c;

	if (r == NULL)
		return;
	stats_answered(r, resp->body_case);
	resp->id = r->id;
	if ((c = r->conn) != NULL) {
		/* Unlinked first: a failed write tears the connection down. */
		TAILQ_REMOVE(&c->reqs, r, entry);
		if (r->resume != NULL)
			c->n_backlog--;
		if (c->ident != NULL && !r->no_park)
			conn_send_kept(c, c->ident, resp);
		else
			conn_send(c, resp);
	} else if ((i = r->ident) != NULL) {
		/* Parked: kept for the retry the client will send. */
		ident_unlink(i, r);
		conn_send_kept(NULL, i, resp);
	}
	free(r);
}

/* Send an error as the final response to a request. */
void
conn_reply_error(struct req *r, Swerex__V1__ErrorKind kind,
		 Swerex__V1__BashObservation *obs, const char *const *extra,
		 const char *fmt, ...)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error err = SWEREX__V1__ERROR__INIT;
	Swerex__V1__Error__ExtraEntry ent[8], *entp[8];
	char msg[2048];
	va_list ap;
	size_t n = 0;

	if (r == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (; extra != NULL && extra[2 * n] != NULL && n < 8; n++) {
		swerex__v1__error__extra_entry__init(&ent[n]);
		ent[n].key = (char *)extra[2 * n];
		ent[n].value = (char *)extra[2 * n + 1];
		entp[n] = &ent[n];
	}
	err.kind = kind;
	err.message = msg;
	err.n_extra = n;
	err.extra = entp;
	err.observation = obs;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
	resp.error = &err;
	conn_reply(r, &resp);
}

/* Send a response that is not the last one for a request (streaming). */
void
conn_stream(struct req *r, Swerex__V1__Response *resp)
{
	if (r == NULL || r->conn == NULL)
		return;
	resp->id = r->id;
	conn_send(r->conn, resp);
}

/* Forget a request that gets no response of its own (e.g. UploadData). */
void
conn_req_drop(struct req *r)
{
	if (r == NULL)
		return;
	if (r->conn != NULL) {
		TAILQ_REMOVE(&r->conn->reqs, r, entry);
		if (r->resume != NULL)
			r->conn->n_backlog--;
	} else if (r->ident != NULL)
		ident_unlink(r->ident, r);
	free(r);
}

/* Identify a request's connection (NULL once it is gone), for per-peer state. */
const void *
conn_key(const struct req *r)
{
	return r != NULL ? r->conn : NULL;
}

/* Map an errno value to the error kind a client should see. */
Swerex__V1__ErrorKind
conn_errno_kind(int err)
{
	switch (err) {
	case ENOENT: return SWEREX__V1__ERROR_KIND__FILE_NOT_FOUND;
	case EISDIR: return SWEREX__V1__ERROR_KIND__IS_A_DIRECTORY;
	case ENOTDIR: return SWEREX__V1__ERROR_KIND__NOT_A_DIRECTORY;
	case EACCES: case EPERM: case EROFS:
		return SWEREX__V1__ERROR_KIND__PERMISSION_DENIED;
	case ENOSPC: case EDQUOT: case EFBIG:
		return SWEREX__V1__ERROR_KIND__NO_SPACE;
	case EMFILE: case ENFILE: case ENOMEM: case EAGAIN:
		return SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED;
	default: return SWEREX__V1__ERROR_KIND__FILE_ERROR;
	}
}

/*
 * Answer with the error an errno value means, naming the path: the message
 * is "<what>: <path>: <strerror>", extra has path, errno (its name) and
 * strerror.
 */
void
conn_reply_errno(struct req *r, int err, const char *path, const char *fmt, ...)
{
	char what[512], num[32];
	const char *extra[7];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(num, sizeof num, "%s", strerrorname_np(err) ?
	    strerrorname_np(err) : "unknown");
	extra[0] = "path";
	extra[1] = path ? path : "";
	extra[2] = "errno";
	extra[3] = num;
	extra[4] = "strerror";
	extra[5] = strerror(err);
	extra[6] = NULL;
	conn_reply_error(r, conn_errno_kind(err), NULL, extra, "%s: %.1000s: %s",
	    what, path ? path : "", strerror(err));
}

/* Stream a chunk of output for a request that asked for it. */
void
conn_chunk(struct req *r, Swerex__V1__OutputStream stream, const char *p,
	   size_t n)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__OutputChunk ch = SWEREX__V1__OUTPUT_CHUNK__INIT;

	if (r == NULL || r->conn == NULL || n == 0)
		return;
	ch.data.data = (uint8_t *)p;
	ch.data.len = n;
	ch.stream = stream;
	resp.id = r->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_CHUNK;
	resp.chunk = &ch;
	conn_send(r->conn, &resp);
}

/* Report a protocol violation and close after the report is written. */
static void
conn_abort(struct conn *c, uint64_t id, Swerex__V1__ErrorKind kind,
	   const char *msg)
{
	struct req r = { .conn = c, .id = id };
	struct req *rp = malloc(sizeof *rp);

	log_info("connection %u: %s", c->id, msg);
	if (rp != NULL) {
		*rp = r;
		TAILQ_INSERT_TAIL(&c->reqs, rp, entry);
		conn_reply_error(rp, kind, NULL, NULL, "%s", msg);
	}
	/* conn_process() frees it once the report is written. */
	c->closing = true;
}

/* Refuse a Hello whose token was wrong, once its delay has passed. */
static void
conn_refuse(struct conn *c)
{
	struct req *r = c->refused;

	c->refused = NULL;
	c->closing = true;
	conn_reply_error(r, SWEREX__V1__ERROR_KIND__UNAUTHENTICATED, NULL, NULL,
	    "invalid or missing token: this listener requires the daemon's "
	    "token in the Hello");
	conn_flush(c);
}

/* Close a peer that did not authenticate in time, or refuse one that failed. */
static void
conn_auth_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->refused != NULL) {
		conn_refuse(c);
		return;
	}
	log_info("connection %u (%s): no valid Hello within %g s; closing",
	    c->id, c->peer, c->srv->cfg.auth_timeout);
	conn_free(c);
}

/* Take the client's identity over, closing a connection that still has it. */
static bool
conn_identify(struct conn *c, const ProtobufCBinaryData *id)
{
	struct conn *old;
	bool resumed;

	c->ident = ident_get(c->srv, id->data, id->len, &resumed, &old);
	if (c->ident == NULL)
		return false;
	if (old != NULL && old != c) {
		/* Its pending requests are parked for this one to retry. */
		log_debug("connection %u takes over the identity of "
		    "connection %u", c->id, old->id);
		conn_free(old);
	}
	ident_bind(c->ident, c);
	return resumed;
}

/* Answer Hello: check the version and the token, state ours. */
static void
conn_hello(struct conn *c, struct req *r, const Swerex__V1__Hello *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__HelloResponse hr = SWEREX__V1__HELLO_RESPONSE__INIT;
	double delay;

	if (m->protocol_version != SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__UNSUPPORTED_VERSION,
		    NULL, NULL, "protocol version %u is not supported; this "
		    "swerexd %s speaks version %d", m->protocol_version,
		    SWEREX_VERSION,
		    SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
		c->closing = true;
		return;
	}
	if (c->hello) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
		    NULL, NULL, "Hello was already answered on this connection");
		return;
	}
	if (c->need_token && !auth_token_ok(c->srv, m->token)) {
		char addr[sizeof c->peer], *colon;

		snprintf(addr, sizeof addr, "%s", c->peer);
		if ((colon = strrchr(addr, ':')) != NULL)
			*colon = '\0';
		delay = auth_failed(c->srv, addr);
		/* Nothing more is read; the answer waits for the delay. */
		conn_reading(c, false);
		c->refused = r;
		event_del(&c->ev_auth);
		server_timer_add(&c->ev_auth, delay);
		return;
	}
	c->hello = true;
	stats_utf8_copy(c->client_name, sizeof c->client_name, m->client_name,
	    strlen(m->client_name));
	if (c->need_token) {
		event_del(&c->ev_auth);
		if (c->bev != NULL)
			bufferevent_setwatermark(c->bev, EV_READ, 0,
			    c->srv->cfg.max_frame + WIRE_HEADER_LEN);
	}
	/* Unlinked while the identity is taken: it may close a connection. */
	if (m->client_id.len > 0) {
		TAILQ_REMOVE(&c->reqs, r, entry);
		hr.resumed = conn_identify(c, &m->client_id);
		TAILQ_INSERT_TAIL(&c->reqs, r, entry);
	}
	hr.protocol_version = SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
	hr.daemon_version = SWEREX_VERSION;
	hr.max_frame = c->srv->cfg.max_frame;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hr;
	log_debug("connection %u: hello from '%.100s' %.40s%s", c->id,
	    m->client_name, m->client_version, c->ident == NULL ? "" :
	    hr.resumed ? " (identity resumed)" : " (new identity)");
	conn_reply(r, &resp);
}

/* Answer ListSessionsRequest. */
static void
conn_list(struct conn *c, struct req *r)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__ListSessionsResponse lr = SWEREX__V1__LIST_SESSIONS_RESPONSE__INIT;

	if (session_list(c->srv, &lr) < 0) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, NULL,
		    "out of memory");
		return;
	}
	resp.body_case = SWEREX__V1__RESPONSE__BODY_LIST_SESSIONS;
	resp.list_sessions = &lr;
	conn_reply(r, &resp);
	session_list_free(&lr);
}

/* Route one request to its handler. */
static void
conn_dispatch(struct conn *c, Swerex__V1__Request *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__IsAliveResponse ar = SWEREX__V1__IS_ALIVE_RESPONSE__INIT;
	Swerex__V1__Pong pong = SWEREX__V1__PONG__INIT;
	struct req *r;

	if (c->ident != NULL) {
		/* A retry: answered from the cache, or joins the first attempt. */
		if (ident_replay(c->ident, m->id, c->out)) {
			log_debug("connection %u: request %llu answered from the "
			    "cache", c->id, (unsigned long long)m->id);
			conn_push(c);
			return;
		}
		if ((r = ident_unpark(c->ident, m->id)) != NULL) {
			log_debug("connection %u: request %llu rejoins its first "
			    "attempt", c->id, (unsigned long long)m->id);
			r->conn = c;
			TAILQ_INSERT_TAIL(&c->reqs, r, entry);
			return;
		}
	}
	r = calloc(1, sizeof *r);
	if (r == NULL) {
		conn_abort(c, m->id, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
		    "out of memory");
		return;
	}
	r->conn = c;
	r->id = m->id;
	stats_request(&c->srv->stats, r, m->body_case);
	/* Transfers and attachments hold per-connection state and stream what
	 * a retry could not get again: they end with their connection. */
	r->no_park = m->body_case == SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN ||
	    m->body_case == SWEREX__V1__REQUEST__BODY_UPLOAD_DATA ||
	    m->body_case == SWEREX__V1__REQUEST__BODY_UPLOAD_END ||
	    m->body_case == SWEREX__V1__REQUEST__BODY_DOWNLOAD ||
	    m->body_case == SWEREX__V1__REQUEST__BODY_ATTACH;
	TAILQ_INSERT_TAIL(&c->reqs, r, entry);

	if (!c->hello && m->body_case != SWEREX__V1__REQUEST__BODY_HELLO) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "the first request must be Hello");
		c->closing = true;
		return;
	}
	switch (m->body_case) {
	case SWEREX__V1__REQUEST__BODY_HELLO:
		conn_hello(c, r, m->hello);
		break;
	case SWEREX__V1__REQUEST__BODY_IS_ALIVE:
		ar.is_alive = !c->srv->stopping;
		ar.message = c->srv->stopping ? "shutting down" : "";
		resp.body_case = SWEREX__V1__RESPONSE__BODY_IS_ALIVE;
		resp.is_alive = &ar;
		conn_reply(r, &resp);
		break;
	case SWEREX__V1__REQUEST__BODY_CREATE_SESSION:
		if (c->srv->stopping)
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
			    NULL, NULL, "swerexd is shutting down");
		else
			session_create(c->srv, r, m->create_session);
		break;
	case SWEREX__V1__REQUEST__BODY_RUN:
		session_run(c->srv, r, m->run);
		break;
	case SWEREX__V1__REQUEST__BODY_INTERRUPT:
		session_interrupt(c->srv, r, m->interrupt);
		break;
	case SWEREX__V1__REQUEST__BODY_CLOSE_SESSION:
		session_close(c->srv, r, m->close_session->session);
		break;
	case SWEREX__V1__REQUEST__BODY_LIST_SESSIONS:
		conn_list(c, r);
		break;
	case SWEREX__V1__REQUEST__BODY_EXECUTE:
		exec_start(c->srv, r, m->execute);
		break;
	case SWEREX__V1__REQUEST__BODY_READ_FILE:
		file_read(c->srv, r, m->read_file);
		break;
	case SWEREX__V1__REQUEST__BODY_WRITE_FILE:
		file_write(c->srv, r, m->write_file);
		break;
	case SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN:
		file_upload_begin(c->srv, r, m->upload_begin);
		break;
	case SWEREX__V1__REQUEST__BODY_UPLOAD_DATA:
		file_upload_data(c->srv, r, m->upload_data);
		break;
	case SWEREX__V1__REQUEST__BODY_UPLOAD_END:
		file_upload_end(c->srv, r, m->upload_end);
		break;
	case SWEREX__V1__REQUEST__BODY_DOWNLOAD:
		file_download(c->srv, r, m->download);
		break;
	case SWEREX__V1__REQUEST__BODY_RESIZE:
		session_resize(c->srv, r, m->resize);
		break;
	case SWEREX__V1__REQUEST__BODY_PING:
		pong.payload = m->ping->payload;
		resp.body_case = SWEREX__V1__RESPONSE__BODY_PONG;
		resp.pong = &pong;
		conn_reply(r, &resp);
		break;
	case SWEREX__V1__REQUEST__BODY_SEND_INPUT:
		session_send_input(c->srv, r, m->send_input);
		break;
	case SWEREX__V1__REQUEST__BODY_ATTACH:
		session_attach(c->srv, r, m->attach);
		break;
	case SWEREX__V1__REQUEST__BODY_DETACH:
		attach_detach(c->srv, r, m->detach);
		break;
	case SWEREX__V1__REQUEST__BODY_STATS:
		stats_reply(c->srv, r, m->stats);
		break;
	case SWEREX__V1__REQUEST__BODY_HISTORY:
		session_history(c->srv, r, m->history);
		break;
	default:
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "unknown or empty request (oneof case %d); this swerexd "
		    "is version %s", (int)m->body_case, SWEREX_VERSION);
		break;
	}
}

/* Give the largest frame the peer may send now. */
static size_t
conn_frame_limit(const struct conn *c)
{
	return c->hello ? c->srv->cfg.max_frame : CONN_PREAUTH_FRAME;
}

/*
 * Name a string field holding a NUL in the complete frame at the head of the
 * input, or NULL (also when no complete, acceptable frame is there yet).
 */
static const char *
conn_nul_field(struct conn *c)
{
	uint8_t flag, *p;
	uint32_t len;

	if (wire_peek_length(c->in, &flag, &len) != WIRE_OK || flag != 0 ||
	    len > conn_frame_limit(c) ||
	    evbuffer_get_length(c->in) < (size_t)len + WIRE_HEADER_LEN)
		return NULL;
	p = evbuffer_pullup(c->in, (ev_ssize_t)len + WIRE_HEADER_LEN);
	return p != NULL ? check_nul(&swerex__v1__request__descriptor,
	    p + WIRE_HEADER_LEN, len) : NULL;
}

/*
 * Refuse a request with a NUL inside a string: decoded, the string would end
 * there and the request would name something else than the client meant.
 */
static void
conn_refuse_nul(struct conn *c, const Swerex__V1__Request *m, const char *field)
{
	struct req *r = calloc(1, sizeof *r);

	log_info("connection %u: request %llu has a NUL byte in '%s'", c->id,
	    (unsigned long long)m->id, field);
	if (r == NULL) {
		conn_abort(c, m->id, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
		    "out of memory");
		return;
	}
	r->conn = c;
	r->id = m->id;
	stats_request(&c->srv->stats, r, m->body_case);
	TAILQ_INSERT_TAIL(&c->reqs, r, entry);
	/* Before the Hello, nothing else is answered: close after this. */
	if (!c->hello)
		c->closing = true;
	conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL, NULL,
	    "string field '%s' contains a NUL byte; strings must not", field);
}

/* Take and handle every complete frame. */
static void
conn_process(struct conn *c)
{
	ProtobufCMessage *msg;
	const char *nul;
	size_t before;
	int r, n = 0;

	while (!c->closing && !c->dead && c->refused == NULL) {
		if (evbuffer_get_length(c->out) > CONN_OUT_HIGH) {
			/* A reader that does not keep up gets no more work. */
			conn_reading(c, false);
			c->paused = true;
			return;
		}
		if (n++ == CONN_REQS_PER_EVENT) {
			/* Let other peers in; the rest is taken on the next pass. */
			event_active(&c->ev_more, EV_TIMEOUT, 0);
			return;
		}
		nul = conn_nul_field(c);
		before = evbuffer_get_length(c->in);
		r = wire_take(c->in, conn_frame_limit(c),
		    &swerex__v1__request__descriptor, &msg);
		if (r == WIRE_AGAIN)
			return;
		if (r != WIRE_OK) {
			conn_abort(c, 0, SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR,
			    wire_strerror(r));
			break;
		}
		before -= evbuffer_get_length(c->in);
		c->bytes_in += before;
		c->srv->stats.bytes_in += before;
		c->requests++;
		c->srv->stats.requests++;
		if (nul != NULL)
			conn_refuse_nul(c, (Swerex__V1__Request *)msg, nul);
		else
			conn_dispatch(c, (Swerex__V1__Request *)msg);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	if (c->dead)
		return;
	/* A refused hello or a protocol error: close once the report is out. */
	conn_reading(c, false);
	conn_flush(c);
}

/*
 * Read at most max bytes from a socket into in. evbuffer_read() asks the
 * socket how much it holds first (FIONREAD), one more system call for
 * every request; this reads into reserved space and keeps what came.
 */
static ssize_t
conn_read_sock(struct evbuffer *in, int fd, size_t max)
{
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t n;
	size_t left;
	int i, nv;

	nv = evbuffer_reserve_space(in, (ev_ssize_t)max, v, 2);
	if (nv <= 0) {
		errno = ENOMEM;
		return -1;
	}
	for (i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	do
		n = readv(fd, iov, nv);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return n;
	for (left = (size_t)n, i = 0; i < nv; i++) {
		v[i].iov_len = left < v[i].iov_len ? left : v[i].iov_len;
		left -= v[i].iov_len;
	}
	if (evbuffer_commit_space(in, v, nv) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return n;
}

/* Read requests; EOF or an error means the peer is gone. */
static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	ssize_t n;

	/* Never buffer more than one frame of the largest allowed size. */
	if (evbuffer_get_length(c->in) <= conn_frame_limit(c) + WIRE_HEADER_LEN) {
		/*
		 * Most requests are small: 16 KiB, and more if that filled
		 * up (an end of file or error then waits for the next call).
		 */
		n = conn_read_sock(c->in, fd, CONN_READ_FIRST);
		if (n == CONN_READ_FIRST)
			conn_read_sock(c->in, fd, CONN_READ_MORE);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			conn_free(c);
			return;
		}
	}
	conn_process(c);
}

/* Write the rest of the output as the socket drains. */
static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_flush(arg);
}

/* Take the frames a yield left in the input buffer. */
static void
conn_more_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_process(arg);
}

/* TLS: requests arrived. */
static void
conn_bev_read_cb(struct bufferevent *bev, void *arg)
{
	conn_process(arg);
}

/* TLS: the output fell to the low watermark (or is empty). */
static void
conn_bev_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->dead)
		return;
	/* Called at the low watermark: empty, or producers may go on. */
	if (evbuffer_get_length(c->out) == 0)
		conn_drained(c);
	else
		conn_resume(c);
}

/* TLS: handshake done, or the peer is gone. */
static void
conn_bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char err[256];
	int saved = errno;

	if (what & BEV_EVENT_CONNECTED) {
		c->srv->tls->describe(bev, err, sizeof err);
		log_debug("connection %u (%s): %s", c->id, c->peer, err);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (!c->srv->tls->error(bev, err, sizeof err))
			snprintf(err, sizeof err, "%s", saved != 0 ?
			    strerror(saved) : "connection reset");
		log_info("connection %u (%s): %s: %s", c->id, c->peer,
		    c->hello ? "TLS error" : "TLS handshake failed", err);
	}
	conn_free(c);
}

/* Put the socket under a TLS bufferevent; 0 or -1 (fd not taken). */
static int
conn_tls_setup(struct conn *c)
{
	c->bev = c->srv->tls->accept(c->srv->base, c->fd, c->srv->tls_ctx);
	if (c->bev == NULL)
		return -1;
	c->in = bufferevent_get_input(c->bev);
	c->out = bufferevent_get_output(c->bev);
	bufferevent_setcb(c->bev, conn_bev_read_cb, conn_bev_write_cb,
	    conn_bev_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    CONN_PREAUTH_FRAME + WIRE_HEADER_LEN);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_OUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

/*
 * Close a socket we will not serve, first telling a plain-text peer why in
 * a RESOURCE_EXHAUSTED frame (id 0) that its Hello reads as the answer. The
 * socket is fresh, so the short frame fits its buffer; it is not waited for.
 */
static void
conn_turn_away(struct server *srv, int fd, enum server_transport t)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error err = SWEREX__V1__ERROR__INIT;
	char msg[160];
	uint8_t *frame;
	size_t len;

	if (srv->stopping)
		snprintf(msg, sizeof msg, "swerexd is shutting down");
	else
		snprintf(msg, sizeof msg, "too many connections: swerexd serves "
		    "at most %zu (--max-connections); try again later",
		    srv->cfg.max_conns);
	err.kind = SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED;
	err.message = msg;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
	resp.error = &err;
	if (t != SERVER_TLS && wire_encode(&resp.base, &frame, &len) == 0) {
		if (send(fd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			log_debug("cannot tell a refused peer why: %s",
			    strerror(errno));
		free(frame);
		/* Unread input at close would reset a TCP peer before it reads. */
		conn_discard_input(fd);
	}
	close(fd);
}

/* Take a freshly accepted socket. */
void
conn_accept(struct server *srv, int fd, enum server_transport t,
	    const struct sockaddr *sa)
{
	static unsigned next_id;
	struct conn *c;
	struct timeval now;
	unsigned uid;

	if (srv->n_conns >= srv->cfg.max_conns || srv->stopping) {
		log_warn("refusing a connection: %s", srv->stopping ?
		    "shutting down" : "too many connections");
		conn_turn_away(srv, fd, t);
		return;
	}
	if (t == SERVER_UNIX && !auth_uid_allowed(srv, fd, &uid)) {
		log_warn("refusing a connection from uid %d: not in --allow-uid",
		    (int)uid);
		close(fd);
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		goto fail;
	c->srv = srv;
	c->fd = fd;
	c->id = ++next_id;
	event_base_gettimeofday_cached(srv->base, &now);
	c->connected = (double)now.tv_sec + now.tv_usec / 1e6;
	TAILQ_INIT(&c->reqs);
	evutil_make_socket_nonblocking(fd);
	if (t != SERVER_UNIX) {
		c->need_token = true;
		remote_addr_format(sa, c->peer, sizeof c->peer);
		remote_tcp_tune(fd, srv->cfg.keepalive);
	}
	if (t == SERVER_TLS) {
		if (conn_tls_setup(c) < 0)
			goto fail;
	} else {
		if ((c->in = evbuffer_new()) == NULL ||
		    (c->out = evbuffer_new()) == NULL)
			goto fail;
		event_assign(&c->ev_read, srv->base, fd, EV_READ | EV_PERSIST,
		    conn_read_cb, c);
		event_assign(&c->ev_write, srv->base, fd, EV_WRITE | EV_PERSIST,
		    conn_write_cb, c);
	}
	if ((c->out_cb = evbuffer_add_cb(c->out, conn_out_cb, c)) == NULL)
		goto fail;
	if (c->bev == NULL)
		event_add(&c->ev_read, NULL);
	event_assign(&c->ev_more, srv->base, -1, 0, conn_more_cb, c);
	evtimer_assign(&c->ev_auth, srv->base, conn_auth_cb, c);
	evtimer_assign(&c->ev_stuck, srv->base, conn_stuck_cb, c);
	if (c->need_token)
		server_timer_add(&c->ev_auth, srv->cfg.auth_timeout);
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->n_conns++;
	log_debug("connection %u opened%s%s", c->id, c->need_token ? " from " :
	    "", c->peer);
	return;

fail:
	log_warn("cannot set up a connection: out of memory");
	if (c != NULL && c->bev != NULL) {
		bufferevent_free(c->bev);   /* closes fd */
	} else {
		if (c != NULL && c->in != NULL)
			evbuffer_free(c->in);
		if (c != NULL && c->out != NULL)
			evbuffer_free(c->out);
		close(fd);
	}
	free(c);
}

/* Close every connection (shutdown). */
void
conn_free_all(struct server *srv)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
		conn_free(c);
}

/*
 * Describe up to max connections for StatsRequest. Strings are borrowed
 * from the connections, or written to peer[i]; valid until the loop runs.
 */
size_t
conn_stats(struct server *srv, Swerex__V1__ConnStats *cs,
	   char (*peer)[CONN_PEER_LEN], size_t max)
{
	struct ucred cred;
	socklen_t len;
	struct conn *c;
	size_t n = 0;

	TAILQ_FOREACH(c, &srv->conns, entry) {
		if (n == max)
			break;
		swerex__v1__conn_stats__init(&cs[n]);
		if (*c->peer != '\0')
			snprintf(peer[n], CONN_PEER_LEN, "%s", c->peer);
		else {
			/* Unix peers: who is on the other end, per the kernel. */
			len = sizeof cred;
			if (c->fd >= 0 && getsockopt(c->fd, SOL_SOCKET,
			    SO_PEERCRED, &cred, &len) == 0)
				snprintf(peer[n], CONN_PEER_LEN,
				    "unix:pid=%ld,uid=%u", (long)cred.pid,
				    (unsigned)cred.uid);
			else
				snprintf(peer[n], CONN_PEER_LEN, "unix");
		}
		cs[n].id = c->id;
		cs[n].peer = peer[n];
		cs[n].client_name = c->client_name;
		cs[n].requests = c->requests;
		cs[n].bytes_in = c->bytes_in;
		cs[n].bytes_out = c->bytes_out;
		cs[n].connected = c->connected;
		n++;
	}
	return n;
}
