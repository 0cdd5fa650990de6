/* Client identities: final responses kept so that retried requests don't run twice. */
#ifndef SWEREXD_IDENT_H
#define SWEREXD_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct evbuffer;
struct ident;
struct req;
struct server;

#define IDENT_ID_LEN 16

/*
 * Find or make the identity id; *resumed tells whether it was known. A
 * connection that still holds it is returned in *old: the caller closes it
 * (its requests are parked) before it takes the identity over. NULL when id
 * is malformed or memory is short: the client then gets no cache.
 */
struct ident *ident_get(struct server *srv, const uint8_t *id, size_t len,
			bool *resumed, struct conn **old);
/* Bind an identity to its connection; NULL starts the forgetting clock. */
void ident_bind(struct ident *i, struct conn *c);
/* Keep a request whose connection went away until it is retried or forgotten. */
void ident_park(struct ident *i, struct req *r);
/* Take back a parked request retried under its id; NULL if none. */
struct req *ident_unpark(struct ident *i, uint64_t id);
/* Forget a parked request (answered or dropped by its owner). */
void ident_unlink(struct ident *i, struct req *r);
/* Queue the kept final response to request id on out; false if none kept. */
bool ident_replay(struct ident *i, uint64_t id, struct evbuffer *out);
/* Keep the encoded final response frame to request id (takes frame). */
void ident_keep(struct ident *i, uint64_t id, uint8_t *frame, size_t len);
void ident_free_all(struct server *srv);

#endif
