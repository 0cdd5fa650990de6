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

/* Read a token from a file or the environment (see tls.h). */
int
tls_token_load(const char *file, const char *env, char **out, char *err,
	       size_t errlen)
{
	char buf[TLS_TOKEN_MAX + 2];
	const char *v;
	ssize_t n;
	size_t len;
	int fd;

	*out = NULL;
	if (file == NULL) {
		v = env != NULL ? getenv(env) : NULL;
		if (v == NULL || *v == '\0')
			return 0;
		if (strlen(v) > TLS_TOKEN_MAX) {
			snprintf(err, errlen, "$%s is longer than %d bytes", env,
			    TLS_TOKEN_MAX);
			return -1;
		}
		if ((*out = strdup(v)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "token file %s: %s", file, strerror(errno));
		return -1;
	}
	len = 0;
	while (len < sizeof buf - 1 &&
	    (n = read(fd, buf + len, sizeof buf - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "token file %s: %s", file,
			    strerror(errno));
			close(fd);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len > TLS_TOKEN_MAX || strlen(buf) != len) {
		snprintf(err, errlen, "token file %s: longer than %d bytes or "
		    "holds a NUL byte", file, TLS_TOKEN_MAX);
		return -1;
	}
	if (len == 0) {
		snprintf(err, errlen, "token file %s is empty", file);
		return -1;
	}
	if ((*out = strdup(buf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Compare two tokens in constant time. Both are hashed first, so neither the
 * position of the first difference nor the length of the token leaks.
 */
bool
tls_token_equal(const char *want, const char *got)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;

	if (want == NULL || got == NULL)
		return false;
	if (!EVP_Digest(want, strlen(want), a, &la, EVP_sha256(), NULL) ||
	    !EVP_Digest(got, strlen(got), b, &lb, EVP_sha256(), NULL) ||
	    la != lb)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}

/* Split "HOST:PORT" or "[V6]:PORT" (see tls.h). */
int
tls_split_hostport(const char *s, char **host, char **port, char *err,
		   size_t errlen)
{
	const char *colon, *h = s;
	size_t hl;

	*host = *port = NULL;
	if (*s == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':') {
			snprintf(err, errlen, "bad address '%s' (want [V6]:PORT)", s);
			return -1;
		}
		h = s + 1;
		hl = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "bad address '%s' (want HOST:PORT)", s);
			return -1;
		}
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strtoul(colon + 1, NULL, 10) > 65535) {
		snprintf(err, errlen, "bad address '%s' (want HOST:PORT)", s);
		return -1;
	}
	*host = strndup(h, hl);
	*port = strdup(colon + 1);
	if (*host == NULL || *port == NULL) {
		free(*host);
		free(*port);
		*host = *port = NULL;
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Tell whether an address is loopback. */
bool
tls_addr_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6;
	const struct sockaddr_in *s4;

	if (sa->sa_family == AF_INET) {
		s4 = (const struct sockaddr_in *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

/* Format an address as "HOST:PORT" ("[V6]:PORT"). */
void
tls_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else
		snprintf(buf, len, "(address family %d)", sa->sa_family);
}

/*
 * Tune a TCP socket: no Nagle delay (frames are written whole), and, when
 * dead_after > 0, keepalive probes and TCP_USER_TIMEOUT so that a peer whose
 * host or network died is noticed within about dead_after seconds, whether
 * the connection is idle or has data in flight. Best effort.
 */
void
tls_tcp_tune(int fd, double dead_after)
{
	int one = 1, idle, intvl, cnt = 3;
	unsigned int ms;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (dead_after <= 0)
		return;
	if (dead_after > 30000)
		dead_after = 30000;	/* TCP_KEEPIDLE's limit is 32767 s */
	/* Probes start after half the time; three misses a sixth apart end it. */
	idle = dead_after >= 4 ? (int)(dead_after / 2) : 1;
	intvl = dead_after >= 12 ? (int)(dead_after / 6) : 1;
	ms = (unsigned int)(dead_after * 1000);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
}
