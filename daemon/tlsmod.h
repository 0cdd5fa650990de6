/*
 * swerexd's TLS code, kept apart so that the daemon links no OpenSSL: a
 * dynamically linked swerexd loads swerexd-tls.so (sslmod.c) the first
 * time TLS is configured, and one without TLS never maps libssl and
 * libcrypto, which cost more than half of its start-up. A -Dstatic=true
 * build links sslmod.c in.
 */
#ifndef SWEREXD_TLSMOD_H
#define SWEREXD_TLSMOD_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
/* A server context (an SSL_CTX inside the module). */
struct tlsmod_ctx;

/* Raised whenever struct tlsmod changes. */
#define TLSMOD_ABI 1

/* What the module exports, as the symbol "sslmod_ops". */
struct tlsmod {
	unsigned abi;           /* TLSMOD_ABI of the module's build */
	const char *version;    /* swerexd's version of the module's build */
	/* Contexts (see tls_server_ctx); the error goes to err. */
	struct tlsmod_ctx *(*ctx_new)(const char *cert, const char *key,
	    const char *client_ca, char *err, size_t errlen);
	void (*ctx_free)(struct tlsmod_ctx *ctx);
	/*
	 * A bufferevent that accepts TLS on fd and owns it (closed on free);
	 * NULL on failure, fd then still the caller's.
	 */
	struct bufferevent *(*accept)(struct event_base *base, int fd,
	    struct tlsmod_ctx *ctx);
	/* "TLSv1.3, TLS_AES_256_GCM_SHA384" of an established connection. */
	void (*describe)(struct bufferevent *bev, char *buf, size_t len);
	/* The OpenSSL error that ended a connection; false if none. */
	bool (*error)(struct bufferevent *bev, char *buf, size_t len);
};

const struct tlsmod *tlsmod_load(char *err, size_t errlen);

#endif
