/*
 * Tokens and TCP addresses: what swerexd, libswerex and swerex-tunnel share
 * for remote connections, without OpenSSL (internal, not installed).
 * Functions that can fail take a buffer for a one-line message.
 */
#ifndef SWEREX_REMOTE_H
#define SWEREX_REMOTE_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

/* Longest token accepted, in bytes. */
#define REMOTE_TOKEN_MAX 4096

/*
 * Read a token from file (trailing newlines dropped); without a file, take
 * the environment variable env. *out is NULL when neither gives one; else
 * it is REMOTE_TOKEN_MAX + 1 bytes, zero-padded (remote_token_equal reads
 * all of them), to free. 0, or -1 with err filled in.
 */
int remote_token_load(const char *file, const char *env, char **out, char *err,
		   size_t errlen);
/*
 * Compare a token from remote_token_load() (want) with one a peer sent, in
 * time that depends on neither the token's content nor its length.
 */
bool remote_token_equal(const char *want, const char *got);

/*
 * Split "HOST:PORT" or "[V6]:PORT" into malloc'd host and port. 0, or -1 with
 * err filled in.
 */
int remote_split_hostport(const char *s, char **host, char **port, char *err,
		       size_t errlen);
/* Tell whether an address is loopback (127/8, ::1, v4-mapped 127/8). */
bool remote_addr_is_loopback(const struct sockaddr *sa);
/* Format an address as "HOST:PORT" ("[V6]:PORT"). */
void remote_addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* No Nagle; notice a dead peer within about dead_after seconds (0: off). */
void remote_tcp_tune(int fd, double dead_after);

#endif
