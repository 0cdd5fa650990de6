/*
 * TLS contexts, tokens and TCP addresses: what swerexd, libswerex and
 * swerex-tunnel share for remote connections (internal, not installed).
 * Functions that can fail take a buffer for a one-line message.
 */
#ifndef SWEREX_TLS_H
#define SWEREX_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

struct sockaddr;

/* Longest token accepted, in bytes. */
#define TLS_TOKEN_MAX 4096

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

/*
 * Read a token from file (trailing newlines dropped); without a file, take
 * the environment variable env. *out is NULL when neither gives one.
 * 0, or -1 with err filled in.
 */
int tls_token_load(const char *file, const char *env, char **out, char *err,
		   size_t errlen);
/* Compare two tokens in time independent of where they differ. */
bool tls_token_equal(const char *want, const char *got);

/*
 * Split "HOST:PORT" or "[V6]:PORT" into malloc'd host and port. 0, or -1 with
 * err filled in.
 */
int tls_split_hostport(const char *s, char **host, char **port, char *err,
		       size_t errlen);
/* Tell whether an address is loopback (127/8, ::1, v4-mapped 127/8). */
bool tls_addr_is_loopback(const struct sockaddr *sa);
/* Format an address as "HOST:PORT" ("[V6]:PORT"). */
void tls_addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* No Nagle; notice a dead peer within about dead_after seconds (0: off). */
void tls_tcp_tune(int fd, double dead_after);

#endif
