/*
 * Client identities. A client that may reconnect sends a random identity in
 * its Hello and keeps request ids unique across connections. For such a
 * client the daemon keeps the encoded final responses of its recent requests,
 * and when its connection is lost the requests still running are parked here
 * instead of being detached. A retried request is then answered from the
 * cache, or joins the first attempt still running; it never runs twice while
 * the identity is remembered. An identity is forgotten --resume-timeout after
 * its last connection went away; parked requests are then detached as they
 * would have been at once without an identity.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "conn.h"
#include "ident.h"
#include "log.h"
#include "server.h"
#include "wire.h"

/* Responses kept per identity, and bytes kept per identity and in all. */
#define IDENT_MAX_ENTRIES 256
#define IDENT_MAX_BYTES (4u * 1024 * 1024)
#define IDENT_TOTAL_BYTES (64u * 1024 * 1024)
/* Identities remembered beyond those with a connection. */
#define IDENT_MAX_IDLE 256

struct ident_entry {
	uint64_t id;
	uint8_t *frame;     /* NULL: ran, but the response was too large to keep */
	size_t len;
	size_t size;        /* of the response, for the message when not kept */
};

struct ident {
	struct server *srv;
	uint8_t id[IDENT_ID_LEN];
	struct conn *conn;              /* holding it, or NULL */
	TAILQ_HEAD(, req) parked;
	struct ident_entry ring[IDENT_MAX_ENTRIES];
	size_t head, n;                 /* oldest entry, count */
	size_t bytes;
	struct event ev_forget;
	TAILQ_ENTRY(ident) entry;
};

/* Drop the oldest kept response. */
static void
ident_evict(struct ident *i)
{
	struct ident_entry *e = &i->ring[i->head];

	i->bytes -= e->len;
	i->srv->ident_bytes -= e->len;
	free(e->frame);
	memset(e, 0, sizeof *e);
	i->head = (i->head + 1) % IDENT_MAX_ENTRIES;
	i->n--;
}

/* Forget an identity: parked requests are detached, the cache freed. */
static void
ident_free(struct ident *i)
{
	struct req *r;

	while ((r = TAILQ_FIRST(&i->parked)) != NULL) {
		TAILQ_REMOVE(&i->parked, r, entry);
		r->ident = NULL;
		if (r->detach != NULL)
			r->detach(r, r->detach_arg);
	}
	while (i->n > 0)
		ident_evict(i);
	event_del(&i->ev_forget);
	TAILQ_REMOVE(&i->srv->idents, i, entry);
	i->srv->n_idents--;
	free(i);
}

/* Forget an identity whose client did not come back in time. */
static void
ident_forget_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ident *i = arg;

	log_debug("forgetting a client identity (%zu responses, %s parked)",
	    i->n, TAILQ_EMPTY(&i->parked) ? "none" : "some");
	ident_free(i);
}

/* Find or make an identity (see ident.h). */
struct ident *
ident_get(struct server *srv, const uint8_t *id, size_t len, bool *resumed,
	  struct conn **old)
{
	struct ident *i, *idle = NULL;
	size_t n_idle = 0;

	*resumed = false;
	*old = NULL;
	if (len != IDENT_ID_LEN)
		return NULL;
	TAILQ_FOREACH(i, &srv->idents, entry) {
		if (memcmp(i->id, id, IDENT_ID_LEN) == 0) {
			/* Most recently used first: reconnects are bursts. */
			TAILQ_REMOVE(&srv->idents, i, entry);
			TAILQ_INSERT_HEAD(&srv->idents, i, entry);
			*resumed = true;
			*old = i->conn;
			return i;
		}
		if (i->conn == NULL) {
			idle = i;
			n_idle++;
		}
	}
	/* Bounded: the least recently used identity without a connection goes. */
	if (n_idle >= IDENT_MAX_IDLE && idle != NULL)
		ident_free(idle);
	if ((i = calloc(1, sizeof *i)) == NULL)
		return NULL;
	i->srv = srv;
	memcpy(i->id, id, IDENT_ID_LEN);
	TAILQ_INIT(&i->parked);
	evtimer_assign(&i->ev_forget, srv->base, ident_forget_cb, i);
	TAILQ_INSERT_HEAD(&srv->idents, i, entry);
	srv->n_idents++;
	return i;
}

/* Bind an identity to its connection; NULL starts the forgetting clock. */
void
ident_bind(struct ident *i, struct conn *c)
{
	i->conn = c;
	if (c != NULL)
		event_del(&i->ev_forget);
	else
		server_timer_add(&i->ev_forget, i->srv->cfg.resume_timeout);
}

/* Keep a request whose connection went away. */
void
ident_park(struct ident *i, struct req *r)
{
	r->conn = NULL;
	r->ident = i;
	TAILQ_INSERT_TAIL(&i->parked, r, entry);
}

/* Take back a parked request retried under its id. */
struct req *
ident_unpark(struct ident *i, uint64_t id)
{
	struct req *r;

	TAILQ_FOREACH(r, &i->parked, entry) {
		if (r->id == id) {
			ident_unlink(i, r);
			return r;
		}
	}
	return NULL;
}

/* Forget a parked request. */
void
ident_unlink(struct ident *i, struct req *r)
{
	TAILQ_REMOVE(&i->parked, r, entry);
	r->ident = NULL;
}

/* Queue the kept final response to request id on out. */
bool
ident_replay(struct ident *i, uint64_t id, struct evbuffer *out)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error err = SWEREX__V1__ERROR__INIT;
	struct ident_entry *e;
	char msg[160];
	size_t k;

	for (k = 0; k < i->n; k++) {
		e = &i->ring[(i->head + k) % IDENT_MAX_ENTRIES];
		if (e->id != id)
			continue;
		if (e->frame != NULL) {
			evbuffer_add(out, e->frame, e->len);
			return true;
		}
		snprintf(msg, sizeof msg, "request %llu already ran; its "
		    "response (%zu bytes) was too large to keep for a retry",
		    (unsigned long long)id, e->size);
		err.kind = SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED;
		err.message = msg;
		resp.id = id;
		resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
		resp.error = &err;
		wire_put(out, &resp.base);
		return true;
	}
	return false;
}

/* Keep the encoded final response frame to request id (takes frame). */
void
ident_keep(struct ident *i, uint64_t id, uint8_t *frame, size_t len)
{
	struct ident_entry *e;
	size_t size = len;

	if (len > IDENT_MAX_BYTES / 4) {
		free(frame);
		frame = NULL;
		len = 0;
	}
	while (i->n > 0 && (i->n == IDENT_MAX_ENTRIES ||
	    i->bytes + len > IDENT_MAX_BYTES ||
	    i->srv->ident_bytes + len > IDENT_TOTAL_BYTES))
		ident_evict(i);
	if (i->srv->ident_bytes + len > IDENT_TOTAL_BYTES) {
		free(frame);
		frame = NULL;
		len = 0;
	}
	e = &i->ring[(i->head + i->n) % IDENT_MAX_ENTRIES];
	e->id = id;
	e->frame = frame;
	e->len = len;
	e->size = size;
	i->n++;
	i->bytes += len;
	i->srv->ident_bytes += len;
}

/* Forget every identity (shutdown). */
void
ident_free_all(struct server *srv)
{
	struct ident *i;

	while ((i = TAILQ_FIRST(&srv->idents)) != NULL)
		ident_free(i);
}
