/* Who may talk to the daemon: tokens on TCP, peer uids on Unix sockets. */
#ifndef SWEREXD_AUTH_H
#define SWEREXD_AUTH_H

#include <stdbool.h>

struct server;

/* Load (or reload) the token from --token-file or $SWEREXD_TOKEN; 0 or -1. */
int auth_load_token(struct server *srv);
/* Tell whether a Hello's token is the daemon's (constant time). */
bool auth_token_ok(const struct server *srv, const char *token);
/* Record a failure from addr; give the seconds to wait before answering. */
double auth_failed(struct server *srv, const char *addr);
/* Tell whether the peer of a Unix socket may connect; *uid gets its uid. */
bool auth_uid_allowed(const struct server *srv, int fd, unsigned *uid);
void auth_free(struct server *srv);

#endif
