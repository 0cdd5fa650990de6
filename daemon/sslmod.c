/*
 * The OpenSSL side of swerexd's TLS listeners, built as swerexd-tls.so (or
 * linked in by a static build): see tlsmod.h. Everything the daemon does
 * with OpenSSL goes through sslmod_ops.
 */
#include <stdio.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls.h"
#include "tlsmod.h"

/* Load a server context from PEM files. */
static struct tlsmod_ctx *
sslmod_ctx_new(const char *cert, const char *key, const char *client_ca,
	       char *err, size_t errlen)
{
	return (struct tlsmod_ctx *)tls_server_ctx(cert, key, client_ca, err,
	    errlen);
}

/* Drop the daemon's reference; connections hold their own. */
static void
sslmod_ctx_free(struct tlsmod_ctx *ctx)
{
	SSL_CTX_free((SSL_CTX *)ctx);
}

/* Put an accepted socket under a TLS bufferevent that owns it. */
static struct bufferevent *
sslmod_accept(struct event_base *base, int fd, struct tlsmod_ctx *ctx)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new((SSL_CTX *)ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* A peer that just closes its socket is gone, not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* Name the protocol version and cipher a connection agreed on. */
static void
sslmod_describe(struct bufferevent *bev, char *buf, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL)
		snprintf(buf, len, "no TLS");
	else
		snprintf(buf, len, "%s, %s", SSL_get_version(ssl),
		    SSL_get_cipher_name(ssl));
}

/* Describe the OpenSSL error a connection ended with, if there was one. */
static bool
sslmod_error(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(bev);

	if (e == 0)
		return false;
	ERR_error_string_n(e, buf, len);
	return true;
}

__attribute__((visibility("default")))
const struct tlsmod sslmod_ops = {
	.abi = TLSMOD_ABI,
	.version = SWEREX_VERSION,
	.ctx_new = sslmod_ctx_new,
	.ctx_free = sslmod_ctx_free,
	.accept = sslmod_accept,
	.describe = sslmod_describe,
	.error = sslmod_error,
};
