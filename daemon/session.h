/* Bash sessions on ptys. */
#ifndef SWEREXD_SESSION_H
#define SWEREXD_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "swerex.pb-c.h"

struct req;
struct server;
struct session;

void session_create(struct server *srv, struct req *r,
		    const Swerex__V1__CreateSessionRequest *m);
void session_run(struct server *srv, struct req *r,
		 const Swerex__V1__BashAction *m);
void session_interrupt(struct server *srv, struct req *r,
		       const Swerex__V1__BashInterruptAction *m);
void session_resize(struct server *srv, struct req *r,
		    const Swerex__V1__ResizeRequest *m);
void session_send_input(struct server *srv, struct req *r,
			const Swerex__V1__SendInputRequest *m);
void session_attach(struct server *srv, struct req *r,
		    const Swerex__V1__AttachRequest *m);
void session_close(struct server *srv, struct req *r, const char *name);
int session_list(struct server *srv, Swerex__V1__ListSessionsResponse *out);
void session_list_free(Swerex__V1__ListSessionsResponse *out);
bool session_reaped(struct server *srv, pid_t pid, int status);
void session_shutdown_all(struct server *srv);
void session_free_all(struct server *srv);
void session_count(struct server *srv, uint32_t n[4]);
void session_history(struct server *srv, struct req *r,
		     const Swerex__V1__HistoryRequest *m);

#endif
