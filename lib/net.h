/*
 * libswerex transports (private): a Unix socket, plain TCP or TLS over TCP
 * behind the same few calls, so that swerex.c reads and writes without
 * knowing which one it has.
 */
#ifndef SWEREX_NET_H
#define SWEREX_NET_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "swerex.h"

enum net_kind {
	NET_UNIX,
	NET_TCP,	/* tcp://: plain, for loopback --insecure listeners */
	NET_TLS,
};

/* Where a URL points. */
struct net_target {
	enum net_kind kind;
	char *path;		/* NET_UNIX */
	char *host;		/* NET_TCP, NET_TLS */
	char *port;
	char *addr;		/* for messages: the path, or "HOST:PORT" */
};

/* An open connection. */
struct net {
	int fd;			/* -1 when closed */
	SSL *ssl;		/* NULL: a plain socket */
	bool read_wants_write;	/* TLS: the last read waits for writability */
	bool write_wants_read;	/* TLS: the last write waits for readability */
	bool broken;		/* TLS: a fatal error; no close_notify */
	char why[256];		/* TLS: the last error, for messages */
};

/*
 * Parse url ("unix:/path", "/path", "tcp://HOST:PORT", "tls://HOST:PORT",
 * IPv6 as "[ADDR]:PORT"; NULL or "": $SWEREX_URL, else the default socket).
 * 0, or -1 with *err set.
 */
int net_resolve(const char *url, struct net_target *t,
		struct swerex_error **err);
/* Free what a target holds. */
void net_target_clear(struct net_target *t);

/*
 * Connect to t before deadline (CLOCK_MONOTONIC); for TLS, with ctx,
 * verifying the certificate against name. keepalive (seconds) tunes TCP
 * keepalive. On success n is open and non-blocking. 0, or -1 with *err set
 * (SWEREX_ERR_CONNECT for anything the network or the peer caused).
 */
int net_connect(struct net *n, const struct net_target *t, SSL_CTX *ctx,
		const char *name, double keepalive,
		const struct timespec *deadline, struct swerex_error **err);
/*
 * Read up to max bytes into in: the count, 0 on EOF, or -1 with errno
 * (EAGAIN: nothing now). Fewer than max means nothing more is waiting.
 */
ssize_t net_read(struct net *n, struct evbuffer *in, size_t max);
/* Write as much of out as the connection takes now. 0, or -errno. */
int net_flush(struct net *n, struct evbuffer *out);
/* Tell whether TLS holds received bytes that the socket will not signal. */
bool net_pending(const struct net *n);
/* Describe the error of a failed net_read() or net_flush(). */
const char *net_strerror(const struct net *n, int error);
/* Close the connection (sending a TLS close_notify if it is healthy). */
void net_close(struct net *n);

/* Give the milliseconds left until deadline, at least 0. */
int net_ms_left(const struct timespec *deadline);
/* Set *deadline to seconds from now. */
void net_deadline(struct timespec *deadline, double seconds);
/* Wait until fd is ready for events or the deadline; 0 or -errno. */
int net_poll(int fd, short events, const struct timespec *deadline);

#endif
