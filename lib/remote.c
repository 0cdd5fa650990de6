/*
 * Tokens and TCP addresses, shared by swerexd, libswerex and swerex-tunnel
 * for remote connections. Nothing here needs OpenSSL: swerexd links this
 * always, and loads its TLS code (tls.c, in swerexd-tls.so) only when TLS
 * is configured.
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

#include "remote.h"

/* Copy a token into a zeroed buffer of REMOTE_TOKEN_MAX + 1 bytes. */
static char *
remote_token_dup(const char *s)
{
	char *p = calloc(1, REMOTE_TOKEN_MAX + 1);

	if (p != NULL)
		memcpy(p, s, strnlen(s, REMOTE_TOKEN_MAX));
	return p;
}

/* Read a token from a file or the environment (see remote.h). */
int
remote_token_load(const char *file, const char *env, char **out, char *err,
	       size_t errlen)
{
	char buf[REMOTE_TOKEN_MAX + 2];
	const char *v;
	ssize_t n;
	size_t len;
	int fd;

	*out = NULL;
	if (file == NULL) {
		v = env != NULL ? getenv(env) : NULL;
		if (v == NULL || *v == '\0')
			return 0;
		if (strlen(v) > REMOTE_TOKEN_MAX) {
			snprintf(err, errlen, "$%s is longer than %d bytes", env,
			    REMOTE_TOKEN_MAX);
			return -1;
		}
		if ((*out = remote_token_dup(v)) == NULL) {
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
	if (len > REMOTE_TOKEN_MAX || strlen(buf) != len) {
		snprintf(err, errlen, "token file %s: longer than %d bytes or "
		    "holds a NUL byte", file, REMOTE_TOKEN_MAX);
		return -1;
	}
	if (len == 0) {
		snprintf(err, errlen, "token file %s is empty", file);
		return -1;
	}
	if ((*out = remote_token_dup(buf)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Compare a token kept by remote_token_load() with one a peer sent. The
 * loop always covers REMOTE_TOKEN_MAX + 1 bytes of want (zero-padded to
 * that size), and its branches depend only on the peer's own length: how
 * long it takes tells nothing of the secret, neither where the first
 * difference is nor how long the token is. Neither string holds a NUL
 * before its end, so equal padded buffers mean equal tokens.
 */
bool
remote_token_equal(const char *want, const char *got)
{
	size_t i, n;
	unsigned char d = 0;

	if (want == NULL || got == NULL)
		return false;
	n = strnlen(got, REMOTE_TOKEN_MAX + 1);
	if (n > REMOTE_TOKEN_MAX)
		return false;
	for (i = 0; i <= REMOTE_TOKEN_MAX; i++)
		d |= (unsigned char)want[i] ^
		    (unsigned char)(i < n ? got[i] : '\0');
	return d == 0;
}

/* Split "HOST:PORT" or "[V6]:PORT" (see remote.h). */
int
remote_split_hostport(const char *s, char **host, char **port, char *err,
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
remote_addr_is_loopback(const struct sockaddr *sa)
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
remote_addr_format(const struct sockaddr *sa, char *buf, size_t len)
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
remote_tcp_tune(int fd, double dead_after)
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
