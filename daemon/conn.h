/* Client connections: framing, dispatch and replies. */
#ifndef SWEREXD_CONN_H
#define SWEREXD_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "swerex.pb-c.h"

struct conn;
struct ident;
struct server;
struct sockaddr;
enum server_transport;

/*
 * A request waiting for its reply. Owned by whoever will answer it; the
 * connection only links it so that it can detach it (conn = NULL) when the
 * peer goes away. Replying frees it.
 */
struct req {
	struct conn *conn;
	/* While parked (conn NULL): the client identity that may retry it. */
	struct ident *ident;
	uint64_t id;
	bool no_park;	/* a transfer: detached at once, its reply not kept */
	TAILQ_ENTRY(req) entry;
	/* Called once the connection drained (or went away) after
	 * conn_backlogged() said it was behind. */
	void (*resume)(void *arg);
	void *resume_arg;
	/* Called when the peer goes away with the request pending; the owner
	 * then frees the request (conn_reply() on it just frees it). */
	void (*detach)(struct req *r, void *arg);
	void *detach_arg;
	/* For stats.c: the request's body case and, for a BashAction, when
	 * it arrived (NULL stats: not counted). */
	struct stats *stats;
	int body;
	struct timespec t0;
};

/*
 * A request whose peer went away is detached at once, unless the peer had a
 * client identity (see ident.c): then it is parked, still attached as far as
 * its owner can tell, and its final reply is kept for a retry.
 *
 * Re-entrancy: conn_reply(), conn_reply_error(), conn_stream() and
 * conn_chunk() only queue the frame; the socket is written later in the same
 * loop pass (TLS: by its bufferevent). They never tear the connection down
 * or run other requests' hooks before they return; a failed write does that
 * from the loop, which may run the resume and detach hooks of a request the
 * caller was streaming for.
 */
void conn_accept(struct server *srv, int fd, enum server_transport t,
		 const struct sockaddr *sa);
void conn_free_all(struct server *srv);
void conn_reply(struct req *r, Swerex__V1__Response *resp);
void conn_reply_error(struct req *r, Swerex__V1__ErrorKind kind,
		      Swerex__V1__BashObservation *obs, const char *const *extra,
		      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void conn_chunk(struct req *r, Swerex__V1__OutputStream stream, const char *p,
		size_t n);
void conn_stream(struct req *r, Swerex__V1__Response *resp);
void conn_req_drop(struct req *r);
const void *conn_key(const struct req *r);
void conn_reply_errno(struct req *r, int err, const char *path,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
Swerex__V1__ErrorKind conn_errno_kind(int err);
bool conn_req_attached(const struct req *r);
bool conn_backlogged(struct req *r, void (*resume)(void *), void *arg);
/* Peer strings of conn_stats(): "HOST:PORT" or "unix:pid=N,uid=N". */
#define CONN_PEER_LEN 80
size_t conn_stats(struct server *srv, Swerex__V1__ConnStats *cs,
		  char (*peer)[CONN_PEER_LEN], size_t max);

#endif
