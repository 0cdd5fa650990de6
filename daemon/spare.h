/* A spare swerexd-reaper, started ahead of need (see spare.c). */
#ifndef SWEREXD_SPARE_H
#define SWEREXD_SPARE_H

#include <stdbool.h>
#include <sys/types.h>

struct server;

int spare_init(struct server *srv);
pid_t spare_take(struct server *srv, char *const *argv, char *const *env);
void spare_refill(struct server *srv);
bool spare_reaped(struct server *srv, pid_t pid, int status);
void spare_free(struct server *srv);

#endif
