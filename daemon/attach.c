/*
 * Live attachments. Each session that has printed something owns a hub: a
 * ring of its most recent raw terminal output (escape sequences kept, the
 * daemon's prompt markers left out by the filter) and the attachments that
 * watch it. An attachment is an AttachRequest that stays pending: the ring's
 * tail goes out first, then every byte the terminal prints, as chunks with
 * the request's id, until a DetachRequest, the session's end or the
 * connection's end.
 *
 * A watcher never slows the session: when an attachment's connection is
 * backlogged its output is dropped (not queued, and the pty is not
 * throttled), and a short notice says so once the connection has drained.
 *
 * The ring costs nothing until a session prints, and grows by doubling from
 * 1 KiB up to --scrollback (16 KiB by default): a thousand quiet sessions
 * stay cheap; --scrollback 0 keeps none at all.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "attach.h"
#include "conn.h"
#include "log.h"
#include "server.h"

#define ATTACH_RING_MIN 1024u
/* A scrollback that wrapped starts at the next line if one begins this soon. */
#define ATTACH_LINE_SEEK 512u

static const char attach_skipped[] = "\r\n[swerex: output skipped]\r\n";

/* One watcher of a session's terminal: a pending AttachRequest. */
struct attach {
	struct server *srv;
	struct attach_hub *hub;
	struct req *req;
	bool read_write;        /* advisory: the client may send input */
	bool behind;            /* the peer is backlogged: output is dropped */
	bool skipped;           /* output was dropped: say so once it drained */
	TAILQ_ENTRY(attach) hub_entry;
	TAILQ_ENTRY(attach) srv_entry;
};

/* A session's recent output and its attachments; owned by the session. */
struct attach_hub {
	char *ring;
	size_t size;            /* allocated, at most keep */
	size_t keep;            /* --scrollback */
	size_t head;            /* where the next byte goes */
	size_t len;             /* bytes held, ending just before head */
	bool wrapped;           /* bytes were lost off the ring's start */
	size_t n;
	TAILQ_HEAD(, attach) list;
};

/* Make a session's hub on first use; NULL if memory ran out. */
static struct attach_hub *
attach_hub_get(struct attach_hub **hubp, size_t keep)
{
	struct attach_hub *hub = *hubp;

	if (hub != NULL)
		return hub;
	if ((hub = calloc(1, sizeof *hub)) == NULL)
		return NULL;
	hub->keep = keep;
	TAILQ_INIT(&hub->list);
	*hubp = hub;
	return hub;
}

/* Grow the ring to hold want bytes (up to the maximum), oldest first at 0. */
static int
attach_ring_grow(struct attach_hub *hub, size_t want)
{
	size_t size = hub->size ? hub->size : ATTACH_RING_MIN, first;
	char *p;

	while (size < want && size < hub->keep)
		size *= 2;
	if (size > hub->keep)
		size = hub->keep;
	if (size <= hub->size)
		return 0;
	if ((p = malloc(size)) == NULL)
		return -ENOMEM;
	/* Linearise: the held bytes may wrap around the old end. */
	if (hub->len > 0) {
		first = hub->head >= hub->len ? hub->len : hub->len - hub->head;
		memcpy(p, hub->ring + (hub->head + hub->size - hub->len) %
		    hub->size, first);
		memcpy(p + first, hub->ring, hub->len - first);
	}
	free(hub->ring);
	hub->ring = p;
	hub->size = size;
	hub->head = hub->len;
	return 0;
}

/* Keep the last bytes a session's terminal printed. */
static void
attach_ring_add(struct attach_hub *hub, const char *p, size_t n)
{
	size_t k;

	if (hub->keep == 0)
		return;
	if (hub->len + n > hub->size && attach_ring_grow(hub, hub->len + n) < 0 &&
	    hub->size == 0)
		return;
	if (n >= hub->size) {
		memcpy(hub->ring, p + n - hub->size, hub->size);
		hub->wrapped = hub->wrapped || n > hub->size || hub->len > 0;
		hub->head = 0;
		hub->len = hub->size;
		return;
	}
	k = hub->size - hub->head < n ? hub->size - hub->head : n;
	memcpy(hub->ring + hub->head, p, k);
	memcpy(hub->ring, p + k, n - k);
	hub->head = (hub->head + n) % hub->size;
	if (hub->len + n > hub->size)
		hub->wrapped = true;
	hub->len = hub->len + n > hub->size ? hub->size : hub->len + n;
}

/* Send the last want bytes of the ring (from a line start where it can). */
static void
attach_scrollback(struct attach *a, size_t want)
{
	struct attach_hub *hub = a->hub;
	size_t start, k, i, skip = 0;

	if (want > hub->len)
		want = hub->len;
	if (want == 0)
		return;
	start = (hub->head + hub->size - want) % hub->size;
	if (want < hub->len || hub->wrapped) {
		/* Cut mid-stream: skip a partial line, or at least a partial
		 * UTF-8 character, so the terminal starts clean. */
		for (i = 0; i < want && i < ATTACH_LINE_SEEK; i++)
			if (hub->ring[(start + i) % hub->size] == '\n') {
				skip = i + 1;
				break;
			}
		if (skip == 0)
			while (skip < want && skip < 3 &&
			    ((unsigned char)hub->ring[(start + skip) %
			    hub->size] & 0xc0) == 0x80)
				skip++;
		start = (start + skip) % hub->size;
		want -= skip;
	}
	k = hub->size - start < want ? hub->size - start : want;
	conn_chunk(a->req, SWEREX__V1__OUTPUT_STREAM__OUTPUT_STREAM_TERMINAL,
	    hub->ring + start, k);
	conn_chunk(a->req, SWEREX__V1__OUTPUT_STREAM__OUTPUT_STREAM_TERMINAL,
	    hub->ring, want - k);
}

/* Unlink an attachment from its hub and the daemon's list, and free it. */
static void
attach_free(struct attach *a)
{
	TAILQ_REMOVE(&a->hub->list, a, hub_entry);
	a->hub->n--;
	TAILQ_REMOVE(&a->srv->attaches, a, srv_entry);
	free(a);
}

/* Answer an attachment with the reason it ended, and free it. */
static void
attach_finish(struct attach *a, const char *reason)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__AttachResponse ar = SWEREX__V1__ATTACH_RESPONSE__INIT;
	struct req *r = a->req;

	log_debug("attachment %llu: %s", (unsigned long long)r->id, reason);
	a->req = NULL;
	attach_free(a);
	ar.reason = (char *)reason;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ATTACH;
	resp.attach = &ar;
	conn_reply(r, &resp);
}

/* The attachment's connection drained: output flows again; say what was lost. */
static void
attach_resume(void *arg)
{
	struct attach *a = arg;

	a->behind = false;
	if (a->skipped) {
		a->skipped = false;
		conn_chunk(a->req,
		    SWEREX__V1__OUTPUT_STREAM__OUTPUT_STREAM_TERMINAL,
		    attach_skipped, sizeof attach_skipped - 1);
	}
}

/* Forget an attachment whose connection went away. */
static void
attach_gone(struct req *r, void *arg)
{
	struct attach *a = arg;

	log_debug("attachment %llu: connection closed",
	    (unsigned long long)r->id);
	attach_free(a);
	conn_req_drop(r);
}

/* Pass terminal output to one attachment, or drop it if its peer is behind. */
static void
attach_send(struct attach *a, const char *p, size_t n)
{
	if (a->behind || conn_backlogged(a->req, attach_resume, a)) {
		a->behind = true;
		a->skipped = true;
		return;
	}
	conn_chunk(a->req, SWEREX__V1__OUTPUT_STREAM__OUTPUT_STREAM_TERMINAL,
	    p, n);
}

/* Record raw terminal output and pass it to the session's attachments. */
void
attach_output(struct attach_hub **hubp, const char *p, size_t n, size_t keep)
{
	struct attach_hub *hub;
	struct attach *a, *next;

	/* Without a ring, a hub is made only when someone attaches. */
	if (n == 0 || (*hubp == NULL && keep == 0))
		return;
	if ((hub = attach_hub_get(hubp, keep)) == NULL) {
		log_error("out of memory for a session's recent output");
		return;
	}
	attach_ring_add(hub, p, n);
	/* conn_chunk() only queues: no attachment goes away under us. */
	for (a = TAILQ_FIRST(&hub->list); a != NULL; a = next) {
		next = TAILQ_NEXT(a, hub_entry);
		attach_send(a, p, n);
	}
}

/* Start an attachment for r: the scrollback now, live output from here on. */
void
attach_add(struct server *srv, struct attach_hub **hubp, struct req *r,
	   const Swerex__V1__AttachRequest *m, const char *session)
{
	struct attach_hub *hub;
	struct attach *a;
	size_t want = srv->cfg.scrollback;

	if ((hub = attach_hub_get(hubp, srv->cfg.scrollback)) == NULL ||
	    (a = calloc(1, sizeof *a)) == NULL) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
		    NULL, NULL, "out of memory");
		return;
	}
	if (m->has_scrollback_case ==
	    SWEREX__V1__ATTACH_REQUEST__HAS_SCROLLBACK_SCROLLBACK)
		want = m->scrollback < want ? m->scrollback : want;
	a->srv = srv;
	a->hub = hub;
	a->req = r;
	a->read_write = m->read_write;
	TAILQ_INSERT_TAIL(&hub->list, a, hub_entry);
	hub->n++;
	TAILQ_INSERT_TAIL(&srv->attaches, a, srv_entry);
	r->detach = attach_gone;
	r->detach_arg = a;
	log_debug("attachment %llu: session %.256s (%s)",
	    (unsigned long long)r->id, session,
	    a->read_write ? "read-write" : "read-only");
	attach_scrollback(a, want);
}

/* End every attachment of a session with reason; free the hub and its ring. */
void
attach_end(struct attach_hub **hubp, const char *reason)
{
	struct attach_hub *hub = *hubp;
	struct attach *a;

	if (hub == NULL)
		return;
	while ((a = TAILQ_FIRST(&hub->list)) != NULL)
		attach_finish(a, reason);
	free(hub->ring);
	free(hub);
	*hubp = NULL;
}

/* Handle DetachRequest: end an attachment made on the same connection. */
void
attach_detach(struct server *srv, struct req *r,
	      const Swerex__V1__DetachRequest *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__DetachResponse dr = SWEREX__V1__DETACH_RESPONSE__INIT;
	struct attach *a;

	TAILQ_FOREACH(a, &srv->attaches, srv_entry)
		if (a->req->id == m->attach_id &&
		    conn_key(a->req) == conn_key(r))
			break;
	if (a == NULL) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
		    NULL, NULL, "no attachment %llu on this connection",
		    (unsigned long long)m->attach_id);
		return;
	}
	/* The attachment's answer first: its watcher is done when we reply. */
	attach_finish(a, "detached");
	resp.body_case = SWEREX__V1__RESPONSE__BODY_DETACH;
	resp.detach = &dr;
	conn_reply(r, &resp);
}

/* Count a session's attachments. */
size_t
attach_count(const struct attach_hub *hub)
{
	return hub != NULL ? hub->n : 0;
}
