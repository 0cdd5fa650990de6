/*
 * TLS contexts: what swerexd (in swerexd-tls.so), libswerex and
 * swerex-tunnel share to set up OpenSSL alike (internal, not installed).
 * Tokens and addresses are in remote.h.
 * Functions that can fail take a buffer for a one-line message.
 */
#ifndef SWEREX_TLS_H
#define SWEREX_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/*
 * A server context: TLS 1.2 minimum (1.3 preferred), forward-secret AEAD
 * ciphers only, the certificate chain and key from PEM files; with
 * client_ca, clients must present a certificate signed by it (mTLS).
 */
SSL_CTX *tls_server_ctx(const char *cert, const char *key,
			const char *client_ca, char *err, size_t errlen);
/*
 * A client context: peers verified against ca (NULL: the system's default
 * store); with cert and key, a client certificate for mTLS.
 */
SSL_CTX *tls_client_ctx(const char *ca, const char *cert, const char *key,
			char *err, size_t errlen);
/* Set the name the peer's certificate must match (host name or IP). */
int tls_client_verify_name(SSL *ssl, const char *name);
/* Describe the last OpenSSL error (and clear the queue). */
void tls_error_string(char *buf, size_t len);

#endif
