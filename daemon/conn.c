/*
 * Client connections. A connection is a bufferevent plus the requests it
 * is waiting on. Frames are taken as soon as they are complete; the length is
 * checked before the payload is waited for. Any loss (EOF, error, protocol
 * violation) goes down conn_free(), which detaches the pending requests:
 * sessions belong to the daemon and keep running.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "conn.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "wire.h"

/* Stop reading requests while this much output waits for a slow reader. */
#define CONN_OUT_HIGH (8u * 1024 * 1024)
/* Requests handled per read callback before yielding to other peers. */
#define CONN_REQS_PER_EVENT 64

struct conn {
	struct server *srv;
	struct bufferevent *bev;
	TAILQ_ENTRY(conn) entry;
	TAILQ_HEAD(, req) reqs;
	bool hello;
	bool closing;   /* flush what is queued, then free */
	bool paused;    /* not reading: the peer does not read its responses */
	unsigned id;
};

static void conn_read_cb(struct bufferevent *, void *);

/* Tear a connection down; pending requests stay with their owners. */
static void
conn_free(struct conn *c)
{
	struct req *r;

	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, entry);
		r->conn = NULL;
	}
	TAILQ_REMOVE(&c->srv->conns, c, entry);
	c->srv->n_conns--;
	bufferevent_free(c->bev);
	log_debug("connection %u closed", c->id);
	free(c);
}

/* Queue a response frame. */
static void
conn_send(struct conn *c, Swerex__V1__Response *resp)
{
	if (c->closing && resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR)
		return;
	if (wire_put(bufferevent_get_output(c->bev),
	    (const ProtobufCMessage *)resp) < 0)
		log_error("connection %u: cannot queue a response", c->id);
}

/* Tell whether a request's connection is still there. */
bool
conn_req_attached(const struct req *r)
{
	return r != NULL && r->conn != NULL;
}

/* Send the final response to a request and free the request. */
void
conn_reply(struct req *r, Swerex__V1__Response *resp)
{
	if (r == NULL)
		return;
	if (r->conn != NULL) {
		resp->id = r->id;
		conn_send(r->conn, resp);
		TAILQ_REMOVE(&r->conn->reqs, r, entry);
	}
	free(r);
}

/* Send an error as the final response to a request. */
void
conn_reply_error(struct req *r, Swerex__V1__ErrorKind kind,
		 Swerex__V1__BashObservation *obs, const char *const *extra,
		 const char *fmt, ...)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error err = SWEREX__V1__ERROR__INIT;
	Swerex__V1__Error__ExtraEntry ent[8], *entp[8];
	char msg[2048];
	va_list ap;
	size_t n = 0;

	if (r == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (; extra != NULL && extra[2 * n] != NULL && n < 8; n++) {
		swerex__v1__error__extra_entry__init(&ent[n]);
		ent[n].key = (char *)extra[2 * n];
		ent[n].value = (char *)extra[2 * n + 1];
		entp[n] = &ent[n];
	}
	err.kind = kind;
	err.message = msg;
	err.n_extra = n;
	err.extra = entp;
	err.observation = obs;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
	resp.error = &err;
	conn_reply(r, &resp);
}

/* Stream a chunk of output for a request that asked for it. */
void
conn_chunk(struct req *r, const char *p, size_t n)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__OutputChunk ch = SWEREX__V1__OUTPUT_CHUNK__INIT;

	if (r == NULL || r->conn == NULL || n == 0)
		return;
	ch.data.data = (uint8_t *)p;
	ch.data.len = n;
	resp.id = r->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_CHUNK;
	resp.chunk = &ch;
	conn_send(r->conn, &resp);
}

/* Free the connection once everything queued has been written. */
static void
conn_drained_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c);
		return;
	}
	if (!c->paused)
		return;
	/* Below the high watermark again: take requests. */
	c->paused = false;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->bev, EV_READ);
	conn_read_cb(bev, c);
}

/* Report a protocol violation and close after the report is written. */
static void
conn_abort(struct conn *c, uint64_t id, Swerex__V1__ErrorKind kind,
	   const char *msg)
{
	struct req r = { .conn = c, .id = id };
	struct req *rp = malloc(sizeof *rp);

	log_info("connection %u: %s", c->id, msg);
	if (rp != NULL) {
		*rp = r;
		TAILQ_INSERT_TAIL(&c->reqs, rp, entry);
		conn_reply_error(rp, kind, NULL, NULL, "%s", msg);
	}
	/* conn_read_cb() frees it once the report is written. */
	c->closing = true;
}

/* Answer Hello: check the version, state ours. */
static void
conn_hello(struct conn *c, struct req *r, const Swerex__V1__Hello *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__HelloResponse hr = SWEREX__V1__HELLO_RESPONSE__INIT;

	if (m->protocol_version != SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__UNSUPPORTED_VERSION,
		    NULL, NULL, "protocol version %u is not supported; this "
		    "swerexd %s speaks version %d", m->protocol_version,
		    SWEREX_VERSION,
		    SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
		c->closing = true;
		return;
	}
	c->hello = true;
	hr.protocol_version = SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
	hr.daemon_version = SWEREX_VERSION;
	hr.max_frame = c->srv->cfg.max_frame;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hr;
	log_debug("connection %u: hello from '%.100s' %.40s", c->id,
	    m->client_name, m->client_version);
	conn_reply(r, &resp);
}

/* Answer ListSessionsRequest. */
static void
conn_list(struct conn *c, struct req *r)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__ListSessionsResponse lr = SWEREX__V1__LIST_SESSIONS_RESPONSE__INIT;

	if (session_list(c->srv, &lr) < 0) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, NULL,
		    "out of memory");
		return;
	}
	resp.body_case = SWEREX__V1__RESPONSE__BODY_LIST_SESSIONS;
	resp.list_sessions = &lr;
	conn_reply(r, &resp);
	session_list_free(&lr);
}

/* Route one request to its handler. */
static void
conn_dispatch(struct conn *c, Swerex__V1__Request *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__IsAliveResponse ar = SWEREX__V1__IS_ALIVE_RESPONSE__INIT;
	struct req *r;

	r = calloc(1, sizeof *r);
	if (r == NULL) {
		conn_abort(c, m->id, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
		    "out of memory");
		return;
	}
	r->conn = c;
	r->id = m->id;
	TAILQ_INSERT_TAIL(&c->reqs, r, entry);

	if (!c->hello && m->body_case != SWEREX__V1__REQUEST__BODY_HELLO) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "the first request must be Hello");
		c->closing = true;
		return;
	}
	switch (m->body_case) {
	case SWEREX__V1__REQUEST__BODY_HELLO:
		conn_hello(c, r, m->hello);
		break;
	case SWEREX__V1__REQUEST__BODY_IS_ALIVE:
		ar.is_alive = !c->srv->stopping;
		ar.message = c->srv->stopping ? "shutting down" : "";
		resp.body_case = SWEREX__V1__RESPONSE__BODY_IS_ALIVE;
		resp.is_alive = &ar;
		conn_reply(r, &resp);
		break;
	case SWEREX__V1__REQUEST__BODY_CREATE_SESSION:
		if (c->srv->stopping)
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
			    NULL, NULL, "swerexd is shutting down");
		else
			session_create(c->srv, r, m->create_session);
		break;
	case SWEREX__V1__REQUEST__BODY_RUN:
		session_run(c->srv, r, m->run);
		break;
	case SWEREX__V1__REQUEST__BODY_INTERRUPT:
		session_interrupt(c->srv, r, m->interrupt);
		break;
	case SWEREX__V1__REQUEST__BODY_CLOSE_SESSION:
		session_close(c->srv, r, m->close_session->session);
		break;
	case SWEREX__V1__REQUEST__BODY_LIST_SESSIONS:
		conn_list(c, r);
		break;
	default:
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "unknown or empty request (oneof case %d); this swerexd "
		    "is version %s", (int)m->body_case, SWEREX_VERSION);
		break;
	}
}

/* Take and handle every complete frame. */
static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	ProtobufCMessage *msg;
	int r, n = 0;

	while (!c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > CONN_OUT_HIGH) {
			/* A reader that does not keep up gets no more work. */
			bufferevent_disable(bev, EV_READ);
			bufferevent_setwatermark(bev, EV_WRITE, CONN_OUT_HIGH / 2, 0);
			c->paused = true;
			return;
		}
		if (n++ == CONN_REQS_PER_EVENT) {
			/* Let other peers in; come back through the loop. */
			bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS |
			    BEV_TRIG_IGNORE_WATERMARKS);
			return;
		}
		r = wire_take(in, c->srv->cfg.max_frame,
		    &swerex__v1__request__descriptor, &msg);
		if (r == WIRE_AGAIN)
			return;
		if (r != WIRE_OK) {
			conn_abort(c, 0, SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR,
			    wire_strerror(r));
			return;
		}
		conn_dispatch(c, (Swerex__V1__Request *)msg);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	/* A refused hello or a protocol error: close once the report is out. */
	bufferevent_disable(bev, EV_READ);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

/* Handle EOF and errors: the peer is gone. */
static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(c);
}

/* Take a freshly accepted socket. */
void
conn_accept(struct server *srv, int fd)
{
	static unsigned next_id;
	struct conn *c;

	if (srv->n_conns >= srv->cfg.max_conns || srv->stopping) {
		log_warn("refusing a connection: %s", srv->stopping ?
		    "shutting down" : "too many connections");
		close(fd);
		return;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->id = ++next_id;
	TAILQ_INIT(&c->reqs);
	evutil_make_socket_nonblocking(fd);
	c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	bufferevent_setcb(c->bev, conn_read_cb, conn_drained_cb, conn_event_cb, c);
	/* Never buffer more than one frame of the largest allowed size. */
	bufferevent_setwatermark(c->bev, EV_READ, 0,
	    srv->cfg.max_frame + WIRE_HEADER_LEN + 65536);
	bufferevent_enable(c->bev, EV_READ);
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->n_conns++;
	log_debug("connection %u opened", c->id);
}

/* Close every connection (shutdown). */
void
conn_free_all(struct server *srv)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
		conn_free(c);
}
