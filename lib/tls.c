/*
 * TLS contexts, tokens and TCP addresses shared by swerexd, libswerex and
 * swerex-tunnel, so that all three set up OpenSSL the same way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* TLS 1.2 suites: ECDHE key exchange and AEAD only (1.3's are all fine). */
#define TLS_CIPHERS_12 "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!SHA1:!SHA256:!SHA384"

/* Describe the last OpenSSL error (and clear the queue). */
void
tls_error_string(char *buf, size_t len)
{
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0)
		snprintf(buf, len, "unknown TLS error");
	else
		ERR_error_string_n(last, buf, len);
}

/* Fill err with "what: <OpenSSL's reason>". */
static void
tls_fail(char *err, size_t errlen, const char *what, const char *path)
{
	char ssl[256];

	tls_error_string(ssl, sizeof ssl);
	snprintf(err, errlen, "%s%s%s: %s", what, path ? " " : "",
	    path ? path : "", ssl);
}

/* The settings both ends share: versions, ciphers, no renegotiation. */
static SSL_CTX *
tls_ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL) {
		tls_fail(err, errlen, "cannot create a TLS context", NULL);
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12)) {
		tls_fail(err, errlen, "cannot configure TLS", NULL);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Frames carry their length, so a close without close_notify cannot
	 * truncate a message unnoticed: treat it as a plain EOF. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Idle connections give their buffers back; writes may be partial. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

/* Load a certificate chain and its key into ctx; 0 or -1. */
static int
tls_ctx_load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *err,
		  size_t errlen)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_fail(err, errlen, "cannot load the certificate", cert);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_fail(err, errlen, "cannot load the key", key);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_fail(err, errlen, "the key does not match the certificate",
		    cert);
		return -1;
	}
	return 0;
}

/* Build a server context (see tls.h). */
SSL_CTX *
tls_server_ctx(const char *cert, const char *key, const char *client_ca,
	       char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if (cert == NULL || key == NULL) {
		snprintf(err, errlen, "a TLS listener needs a certificate and a key");
		return NULL;
	}
	if ((ctx = tls_ctx_new(TLS_server_method(), err, errlen)) == NULL)
		return NULL;
	if (tls_ctx_load_pair(ctx, cert, key, err, errlen) < 0)
		goto fail;
	if (client_ca != NULL) {
		STACK_OF(X509_NAME) *names;

		if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1) {
			tls_fail(err, errlen, "cannot load the client CA",
			    client_ca);
			goto fail;
		}
		/* Tell clients which CA we accept, as TLS servers should. */
		if ((names = SSL_load_client_CA_file(client_ca)) != NULL)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	}
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Build a client context (see tls.h). */
SSL_CTX *
tls_client_ctx(const char *ca, const char *cert, const char *key, char *err,
	       size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = tls_ctx_new(TLS_client_method(), err, errlen)) == NULL)
		return NULL;
	if (ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
			tls_fail(err, errlen, "cannot load the CA", ca);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_fail(err, errlen, "cannot load the system's CA store", NULL);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((cert == NULL) != (key == NULL)) {
		snprintf(err, errlen, "a client certificate needs its key and "
		    "a key its certificate");
		goto fail;
	}
	if (cert != NULL && tls_ctx_load_pair(ctx, cert, key, err, errlen) < 0)
		goto fail;
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Set the name the peer's certificate must match, and SNI for host names. */
int
tls_client_verify_name(SSL *ssl, const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, name, &a4) == 1 ||
	    inet_pton(AF_INET6, name, &a6) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    name) == 1 ? 0 : -1;
	if (SSL_set_tlsext_host_name(ssl, name) != 1 ||
	    SSL_set1_host(ssl, name) != 1)
		return -1;
	return 0;
}
