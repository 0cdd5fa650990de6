/* Live attachments: a session's recent terminal output and who watches it. */
#ifndef SWEREXD_ATTACH_H
#define SWEREXD_ATTACH_H

#include <stddef.h>

#include "swerex.pb-c.h"

struct attach_hub;
struct req;
struct server;

/* Bytes of recent terminal output a session keeps by default (--scrollback),
 * and the most it may be set to. */
#define ATTACH_RING_MAX (16u * 1024)
#define ATTACH_RING_LIMIT (1024u * 1024)

void attach_output(struct attach_hub **hubp, const char *p, size_t n,
		   size_t keep);
void attach_add(struct server *srv, struct attach_hub **hubp, struct req *r,
		const Swerex__V1__AttachRequest *m, const char *session);
void attach_end(struct attach_hub **hubp, const char *reason);
void attach_detach(struct server *srv, struct req *r,
		   const Swerex__V1__DetachRequest *m);
size_t attach_count(const struct attach_hub *hub);

#endif
