/*
 * libswerex transports: where a URL points, connecting with a deadline, and
 * reading and writing a Unix socket, plain TCP or TLS through the same calls.
 *
 * The client is a raw non-blocking fd with evbuffers, not a bufferevent, so
 * the Unix path costs exactly one read(2) or sendmsg(2) per batch as before.
 * TLS sits on the same fd through a small BIO of our own that writes with
 * send(MSG_NOSIGNAL): OpenSSL's socket BIO uses write(2), which would raise
 * SIGPIPE in the caller's process when the daemon is gone.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "client.h"
#include "net.h"
#include "remote.h"
#include "tls.h"

/* Buffer chunks handed to one sendmsg(). */
#define NET_IOV_MAX 16
/* Bytes handed to one SSL_write(): one full TLS record. */
#define NET_TLS_WRITE 16384
/* TCP keepalive when the client sends no pings, in seconds. */
#define NET_KEEPALIVE_DEFAULT 10.0

static CRYPTO_ONCE net_bio_once = CRYPTO_ONCE_STATIC_INIT;
static BIO_METHOD *net_bio_method;

/* Give the milliseconds left until deadline (CLOCK_MONOTONIC), at least 0. */
int
net_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	if (ms > INT_MAX)
		return INT_MAX;
	return ms > 0 ? (int)ms : 0;
}

/* Set *deadline to seconds from now. */
void
net_deadline(struct timespec *deadline, double seconds)
{
	time_t whole;

	clock_gettime(CLOCK_MONOTONIC, deadline);
	if (seconds > 1e9)
		seconds = 1e9;
	if (seconds < 0)
		seconds = 0;
	whole = (time_t)seconds;
	deadline->tv_sec += whole;
	deadline->tv_nsec += (long)((seconds - (double)whole) * 1e9);
	if (deadline->tv_nsec >= 1000000000) {
		deadline->tv_sec++;
		deadline->tv_nsec -= 1000000000;
	}
}

/* Wait until fd is ready for events or the deadline; 0 or -errno. */
int
net_poll(int fd, short events, const struct timespec *deadline)
{
	struct pollfd pfd;
	int n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, net_ms_left(deadline));
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Give the default socket path: $XDG_RUNTIME_DIR's, else /tmp's. */
static char *
net_default_path(void)
{
	const char *env = getenv("XDG_RUNTIME_DIR");
	char *path;
	int n;

	if (env != NULL && *env != '\0')
		n = asprintf(&path, "%s/swerexd.sock", env);
	else
		n = asprintf(&path, "/tmp/swerexd-%lu/swerexd.sock",
		    (unsigned long)getuid());
	return n == -1 ? NULL : path;
}

/* Parse "HOST:PORT" after a tcp:// or tls:// scheme into t. */
static int
net_resolve_host(const char *url, const char *hostport, struct net_target *t,
    struct swerex_error **err)
{
	char msg[256];
	int n;

	if (remote_split_hostport(hostport, &t->host, &t->port, msg,
	    sizeof msg) != 0) {
		error_set(err, strcmp(msg, "out of memory") == 0 ?
		    SWEREX_ERR_NO_MEMORY : SWEREX_ERR_BAD_ARGUMENT,
		    "%s in URL \"%s\"", msg, url);
		return -1;
	}
	n = asprintf(&t->addr, strchr(t->host, ':') != NULL ? "[%s]:%s" :
	    "%s:%s", t->host, t->port);
	if (n == -1) {
		t->addr = NULL;
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	return 0;
}

/* Parse a URL into a target (see net.h). */
int
net_resolve(const char *url, struct net_target *t, struct swerex_error **err)
{
	const char *env, *p;

	memset(t, 0, sizeof *t);
	if (url == NULL || *url == '\0') {
		env = getenv("SWEREX_URL");
		url = env != NULL && *env != '\0' ? env : NULL;
	}
	t->kind = NET_UNIX;
	if (url == NULL)
		t->path = net_default_path();
	else if (strncmp(url, "unix:", 5) == 0) {
		p = url + 5;
		if (strncmp(p, "///", 3) == 0)
			p += 2;	/* unix:///path */
		if (*p == '\0') {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT,
			    "no socket path in URL \"%s\"", url);
			return -1;
		}
		t->path = strdup(p);
	} else if (url[0] == '/')
		t->path = strdup(url);
	else if (strncmp(url, "tls://", 6) == 0) {
		t->kind = NET_TLS;
		if (net_resolve_host(url, url + 6, t, err) != 0)
			goto fail;
		return 0;
	} else if (strncmp(url, "tcp://", 6) == 0) {
		t->kind = NET_TCP;
		if (net_resolve_host(url, url + 6, t, err) != 0)
			goto fail;
		return 0;
	} else {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "unsupported URL scheme: \"%s\" (want unix:/PATH, /PATH, "
		    "tls://HOST:PORT or tcp://HOST:PORT)", url);
		return -1;
	}
	if (t->path == NULL || (t->addr = strdup(t->path)) == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		goto fail;
	}
	return 0;

fail:
	net_target_clear(t);
	return -1;
}

/* Free what a target holds. */
void
net_target_clear(struct net_target *t)
{
	free(t->path);
	free(t->host);
	free(t->port);
	free(t->addr);
	memset(t, 0, sizeof *t);
}

/* Connect a non-blocking, close-on-exec socket to a Unix path; fd or -1. */
static int
net_unix_connect(const char *path, struct swerex_error **err)
{
	struct sockaddr_un sa;
	int fd, flags;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		error_set(err, SWEREX_ERR_CONNECT, "cannot create a socket: %s",
		    strerror(errno));
		return -1;
	}
	/*
	 * Blocking connect: a full backlog waits instead of failing, and a
	 * non-blocking one could not be waited for (EAGAIN, not EINPROGRESS).
	 */
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
		if (errno == EINTR)
			continue;
		error_set(err, SWEREX_ERR_CONNECT,
		    "cannot connect to swerexd at %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		error_set(err, SWEREX_ERR_CONNECT, "cannot set up socket: %s",
		    strerror(errno));
		goto fail;
	}
	return fd;

fail:
	close(fd);
	return -1;
}

/*
 * Connect a non-blocking socket to one address before deadline. Return the
 * fd, or -1 with *error set to an errno value.
 */
static int
net_tcp_try(const struct addrinfo *ai, const struct timespec *deadline,
    int *error)
{
	socklen_t len = sizeof *error;
	int fd, r;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		*error = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR) {
		*error = errno;
		goto fail;
	}
	if ((r = net_poll(fd, POLLOUT, deadline)) < 0) {
		*error = -r;
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, error, &len) != 0)
		*error = errno;
	if (*error == 0)
		return fd;
fail:
	close(fd);
	return -1;
}

/*
 * Resolve t's host and connect to its addresses in turn before deadline;
 * each gets an equal share of the time left, so one that never answers
 * cannot starve the others. Return the fd, or -1 with *err set.
 */
static int
net_tcp_connect(const struct net_target *t, double keepalive,
    const struct timespec *deadline, struct swerex_error **err)
{
	struct addrinfo hints, *res, *ai;
	struct timespec slot;
	int fd = -1, error = ETIMEDOUT, rc, n = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(t->host, t->port, &hints, &res);
	if (rc != 0) {
		error_set(err, SWEREX_ERR_CONNECT, "cannot resolve %s: %s",
		    t->host, rc == EAI_SYSTEM ? strerror(errno) :
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next)
		n++;
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next, n--) {
		net_deadline(&slot, net_ms_left(deadline) / 1000.0 / n);
		fd = net_tcp_try(ai, &slot, &error);
	}
	freeaddrinfo(res);
	if (fd == -1) {
		if (error == ETIMEDOUT)
			error_set(err, SWEREX_ERR_CONNECT, "cannot connect to "
			    "swerexd at %s: no answer in time", t->addr);
		else
			error_set(err, SWEREX_ERR_CONNECT, "cannot connect to "
			    "swerexd at %s: %s", t->addr, strerror(error));
		return -1;
	}
	/* Dead after twice the ping interval, as the pings judge it. */
	remote_tcp_tune(fd, 2 * (keepalive > 0 ? keepalive : NET_KEEPALIVE_DEFAULT));
	return fd;
}

/* Write with send(MSG_NOSIGNAL): never SIGPIPE (a BIO write method). */
static int
net_bio_write(BIO *b, const char *buf, int len)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

/* Read with recv() (a BIO read method). */
static int
net_bio_read(BIO *b, char *buf, int len)
{
	int fd = (int)(intptr_t)BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(fd, buf, (size_t)len, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	return (int)n;
}

/* Answer BIO controls: only flush means anything to a socket. */
static long
net_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

/* Create the BIO method once per process. */
static void
net_bio_init(void)
{
	BIO_METHOD *m;
	int type;

	if ((type = BIO_get_new_index()) == -1)
		return;
	m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
	    "swerex socket");
	if (m == NULL)
		return;
	if (!BIO_meth_set_write(m, net_bio_write) ||
	    !BIO_meth_set_read(m, net_bio_read) ||
	    !BIO_meth_set_ctrl(m, net_bio_ctrl)) {
		BIO_meth_free(m);
		return;
	}
	net_bio_method = m;
}

/* Create a BIO over fd that never raises SIGPIPE; NULL on failure. */
static BIO *
net_bio_new(int fd)
{
	BIO *b;

	if (!CRYPTO_THREAD_run_once(&net_bio_once, net_bio_init) ||
	    net_bio_method == NULL)
		return NULL;
	if ((b = BIO_new(net_bio_method)) == NULL)
		return NULL;
	BIO_set_data(b, (void *)(intptr_t)fd);
	BIO_set_init(b, 1);
	return b;
}

/*
 * Describe why a handshake failed: the verification result when the
 * certificate was refused, else OpenSSL's reason or the socket's.
 */
static void
net_tls_why(struct net *n, int e, int saved_errno)
{
	long v = SSL_get_verify_result(n->ssl);

	if (v != X509_V_OK) {
		snprintf(n->why, sizeof n->why, "certificate verify failed: %s",
		    X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
		snprintf(n->why, sizeof n->why, "%s", saved_errno != 0 ?
		    strerror(saved_errno) : "connection closed by the peer");
	else if (e == SSL_ERROR_ZERO_RETURN)
		snprintf(n->why, sizeof n->why, "connection closed by the peer");
	else
		tls_error_string(n->why, sizeof n->why);
}

/* Run the TLS handshake on n before deadline; 0, or -1 with *err set. */
static int
net_tls_handshake(struct net *n, SSL_CTX *ctx, const char *name,
    const char *addr, const struct timespec *deadline,
    struct swerex_error **err)
{
	BIO *b;
	int r, e;

	if ((n->ssl = SSL_new(ctx)) == NULL ||
	    (b = net_bio_new(n->fd)) == NULL) {
		tls_error_string(n->why, sizeof n->why);
		error_set(err, SWEREX_ERR_NO_MEMORY, "cannot set up TLS: %s",
		    n->why);
		return -1;
	}
	SSL_set_bio(n->ssl, b, b);
	/* The framing notices a truncated stream: a bare EOF is an EOF. */
	SSL_set_options(n->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_set_connect_state(n->ssl);
	if (tls_client_verify_name(n->ssl, name) != 0) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "cannot verify the server's name \"%s\"", name);
		ERR_clear_error();
		return -1;
	}
	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((r = SSL_connect(n->ssl)) == 1)
			return 0;
		e = SSL_get_error(n->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			break;
		r = net_poll(n->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
		    deadline);
		if (r == -ETIMEDOUT) {
			error_set(err, SWEREX_ERR_CONNECT, "TLS handshake with "
			    "%s did not finish in time", addr);
			return -1;
		}
		if (r < 0) {
			error_set(err, SWEREX_ERR_CONNECT, "TLS handshake with "
			    "%s failed: %s", addr, strerror(-r));
			return -1;
		}
	}
	n->broken = true;
	net_tls_why(n, e, errno);
	error_set(err, SWEREX_ERR_CONNECT, "TLS handshake with %s failed: %s",
	    addr, n->why);
	return -1;
}

/* Open a connection to t (see net.h). */
int
net_connect(struct net *n, const struct net_target *t, SSL_CTX *ctx,
    const char *name, double keepalive, const struct timespec *deadline,
    struct swerex_error **err)
{
	memset(n, 0, sizeof *n);
	n->fd = -1;
	if (t->kind == NET_UNIX)
		n->fd = net_unix_connect(t->path, err);
	else
		n->fd = net_tcp_connect(t, keepalive, deadline, err);
	if (n->fd == -1)
		return -1;
	if (t->kind == NET_TLS && net_tls_handshake(n, ctx, name != NULL ?
	    name : t->host, t->addr, deadline, err) != 0) {
		net_close(n);
		return -1;
	}
	return 0;
}

/*
 * Turn a failed TLS read or write into the plain socket's result: 0 for an
 * orderly EOF, else -1 with errno (EPROTO with n->why for TLS errors).
 */
static ssize_t
net_tls_fail(struct net *n, int e, int saved_errno)
{
	n->broken = true;
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
		if (saved_errno == 0)
			return 0;
		errno = saved_errno;
		return -1;
	}
	tls_error_string(n->why, sizeof n->why);
	errno = EPROTO;
	return -1;
}

/*
 * Read up to max bytes through TLS. SSL_read() gives one record at a time,
 * so keep going until max is reached or TLS has nothing more: a short count
 * then means drained, as for a socket.
 */
static ssize_t
net_tls_read(struct net *n, char *buf, size_t max)
{
	size_t got = 0;
	int r, e;

	n->read_wants_write = false;
	while (got < max) {
		ERR_clear_error();
		errno = 0;
		r = SSL_read(n->ssl, buf + got, max - got > INT_MAX ? INT_MAX :
		    (int)(max - got));
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		e = SSL_get_error(n->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			break;
		if (e == SSL_ERROR_WANT_WRITE) {
			n->read_wants_write = true;
			break;
		}
		if (got > 0)
			break;	/* deliver the data; the next read fails again */
		return net_tls_fail(n, e, errno);
	}
	if (got == 0) {
		errno = EAGAIN;
		return -1;
	}
	return (ssize_t)got;
}

/* Read up to max bytes into in (see net.h). */
ssize_t
net_read(struct net *n, struct evbuffer *in, size_t max)
{
	struct evbuffer_iovec v;
	ssize_t got;

	if (evbuffer_reserve_space(in, (ev_ssize_t)max, &v, 1) != 1) {
		errno = ENOMEM;
		return -1;
	}
	if (n->ssl == NULL) {
		/* read(2) itself, not evbuffer_read() and its 4096 bytes. */
		do
			got = read(n->fd, v.iov_base, max);
		while (got == -1 && errno == EINTR);
	} else
		got = net_tls_read(n, v.iov_base, max);
	if (got <= 0)
		return got;
	v.iov_len = (size_t)got;
	if (evbuffer_commit_space(in, &v, 1) != 0) {
		errno = ENOMEM;
		return -1;
	}
	return got;
}

/*
 * Send buffered output through TLS a record at a time. A write that must be
 * retried is retried with the same leading bytes, as OpenSSL requires: out
 * is drained only by what SSL_write() took.
 */
static int
net_tls_flush(struct net *n, struct evbuffer *out)
{
	unsigned char *p;
	size_t len;
	int r, e;

	n->write_wants_read = false;
	while ((len = evbuffer_get_length(out)) > 0) {
		if (len > NET_TLS_WRITE)
			len = NET_TLS_WRITE;
		if ((p = evbuffer_pullup(out, (ev_ssize_t)len)) == NULL)
			return -ENOMEM;
		ERR_clear_error();
		errno = 0;
		r = SSL_write(n->ssl, p, (int)len);
		if (r > 0) {
			evbuffer_drain(out, (size_t)r);
			continue;
		}
		e = SSL_get_error(n->ssl, r);
		if (e == SSL_ERROR_WANT_WRITE)
			return 0;
		if (e == SSL_ERROR_WANT_READ) {
			n->write_wants_read = true;
			return 0;
		}
		if (net_tls_fail(n, e, errno) == 0)
			return -EPIPE;
		return -errno;
	}
	return 0;
}

/* Write as much of out as the connection takes now (see net.h). */
int
net_flush(struct net *n, struct evbuffer *out)
{
	struct evbuffer_iovec v[NET_IOV_MAX];
	struct iovec iov[NET_IOV_MAX];
	struct msghdr mh;
	ssize_t w;
	int i, nv;

	if (n->ssl != NULL)
		return net_tls_flush(n, out);
	/*
	 * sendmsg(MSG_NOSIGNAL) rather than evbuffer_write(), which uses
	 * writev() and would raise SIGPIPE if the daemon is gone.
	 */
	while (evbuffer_get_length(out) > 0) {
		nv = evbuffer_peek(out, -1, NULL, v, NET_IOV_MAX);
		if (nv > NET_IOV_MAX)
			nv = NET_IOV_MAX;
		for (i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = iov;
		mh.msg_iovlen = (size_t)nv;
		w = sendmsg(n->fd, &mh, MSG_NOSIGNAL);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		evbuffer_drain(out, (size_t)w);
	}
	return 0;
}

/* Tell whether TLS holds bytes already read from the socket. */
bool
net_pending(const struct net *n)
{
	return n->ssl != NULL && SSL_has_pending(n->ssl);
}

/* Describe the error of a failed read or write. */
const char *
net_strerror(const struct net *n, int error)
{
	if (error == EPROTO && n->why[0] != '\0')
		return n->why;
	return strerror(error);
}

/* Close the connection (see net.h). */
void
net_close(struct net *n)
{
	if (n->ssl != NULL) {
		/* One try at close_notify; never after a fatal error. */
		if (!n->broken) {
			ERR_clear_error();
			SSL_shutdown(n->ssl);
		}
		SSL_free(n->ssl);
		ERR_clear_error();
		n->ssl = NULL;
	}
	if (n->fd != -1) {
		close(n->fd);
		n->fd = -1;
	}
	n->read_wants_write = n->write_wants_read = n->broken = false;
	n->why[0] = '\0';
}
