/* One-off commands (ExecuteRequest): spawned with pipes, never blocking. */
#ifndef SWEREXD_EXEC_H
#define SWEREXD_EXEC_H

#include <stdbool.h>
#include <sys/types.h>

#include "swerex.pb-c.h"

struct req;
struct server;

void exec_start(struct server *srv, struct req *r,
		const Swerex__V1__ExecuteRequest *m);
bool exec_reaped(struct server *srv, pid_t pid, int status);
void exec_free_all(struct server *srv);

#endif
