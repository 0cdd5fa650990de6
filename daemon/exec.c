/* One-off commands: placeholder while exec.c is written. */
#include "conn.h"
#include "exec.h"
#include "server.h"

void
exec_start(struct server *srv, struct req *r, const Swerex__V1__ExecuteRequest *m)
{
	conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL, NULL,
	    "execute is not supported by this swerexd yet");
}

bool exec_reaped(struct server *srv, pid_t pid, int status) { return false; }
void exec_free_all(struct server *srv) { }
