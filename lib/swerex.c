/*
 * libswerex: the client side of the swerex protocol.
 *
 * A client is a connection (net.c: a Unix socket, TCP or TLS), an input and
 * an output buffer, a persistent read event, a write event that is added
 * only while output is pending, and a table of the requests still waiting
 * for their final reply. Replies are matched to requests by id; a blocking
 * call is a request whose reply is stored in a slot on the caller's stack
 * instead of passed to a callback.
 *
 * Every final loss of the connection (a bad frame, a connection-level error
 * from the daemon, swerex_client_free, or a transport loss without
 * reconnect) goes through client_lose(), which fails each pending request
 * exactly once. A transport loss (EOF, a read or write error, keepalive)
 * goes through client_drop() first: with reconnect on, it closes the
 * connection but keeps the requests, and a timer on the base reconnects
 * (client_reconnect_cb()) and sends them again.
 *
 * Keepalive costs nothing per frame: the read callback only sets c->rx, and
 * a periodic timer counts the ticks that passed without it.
 *
 * swerex_client_free() must NOT be called from within a callback (reply
 * callback or on_chunk) of the same client: the client would be freed while
 * its own read callback is still running.
 *
 * This file holds the connection, the pending table and the requests;
 * net.c the transports; convert.c builds the public result structs from the
 * wire's messages (and copies and frees them), transfer.c does
 * swerex_upload() and swerex_download(). client.h is what they share.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/random.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "client.h"
#include "net.h"
#include "swerex.h"
#include "remote.h"
#include "tls.h"
#include "wire.h"

#ifndef SWEREX_VERSION
#define SWEREX_VERSION "unknown"
#endif

/* Largest frame accepted from the daemon: an observation can be large. */
#define CLIENT_MAX_FRAME (256u * 1024 * 1024)
/* Bytes asked for per read, and reads per readable event. */
#define CLIENT_READ_SIZE (64 * 1024)
#define CLIENT_READS_PER_EVENT 16
/* Initial size of the pending table; a power of two. */
#define CLIENT_BUCKETS_MIN 64
/* Defaults of struct swerex_connect_opts, in seconds. */
#define CLIENT_CONNECT_TIMEOUT 10.0
#define CLIENT_KEEPALIVE 10.0
#define CLIENT_RECONNECT_TIMEOUT 30.0
/*
 * Keepalive ticks per keepalive interval: a ping goes out after a full
 * interval of quiet and the connection is given up after two, each
 * measured to within a tick.
 */
#define CLIENT_KEEPALIVE_TICKS 4
/* Reconnect backoff: first wait and cap, in milliseconds. */
#define CLIENT_BACKOFF_MIN 50
#define CLIENT_BACKOFF_MAX 2000

#define CLIENT_LOST "connection to swerexd lost"

/* An encoded request kept for sending again after a reconnect. */
struct client_frame {
	unsigned int refs;	/* its request, and each output buffer use */
	size_t len;
	uint8_t data[];
};

/* A request waiting for its final reply. */
struct client_request {
	uint64_t id;
	swerex_reply_cb cb;
	void *arg;
	struct client_wait *wait;	/* blocking call: store here, no cb */
	Swerex__V1__Request__BodyCase body;
	bool delivered;			/* chunks or entries came: no replay */
	unsigned int gen;		/* connection its frame was queued on */
	struct client_frame *frame;	/* with reconnect only */
	struct client_request *hash_next;
	TAILQ_ENTRY(client_request) entry;
};

/*
 * A final reply in public form, with the objects it owns. Replies of the
 * private types are read from resp (borrowed) by wait_finish().
 */
struct client_reply {
	struct swerex_reply reply;
	struct swerex_error *error;
	struct swerex_observation *observation;
	struct swerex_session_info *sessions;
	size_t n_sessions;
	struct swerex_exec_result *exec_result;
	struct swerex_stats *stats;
	struct swerex_history *history;
	const Swerex__V1__Response *resp;
};

/* Handed to callbacks when a reply cannot be converted for lack of memory. */
static const struct swerex_error error_nomem = {
	.kind = SWEREX_ERR_NO_MEMORY,
	.message = (char *)"out of memory",
};

static void client_read_cb(evutil_socket_t, short, void *);

/* Create an error from a format and a va_list; NULL if memory ran out. */
static struct swerex_error *
error_vnew(enum swerex_error_kind kind, const char *fmt, va_list ap)
{
	struct swerex_error *e;

	e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	e->kind = kind;
	if (vasprintf(&e->message, fmt, ap) == -1) {
		free(e);
		return NULL;
	}
	return e;
}

/* Create an error; NULL if memory ran out. */
struct swerex_error *
error_new(enum swerex_error_kind kind, const char *fmt, ...)
{
	struct swerex_error *e;
	va_list ap;

	va_start(ap, fmt);
	e = error_vnew(kind, fmt, ap);
	va_end(ap);
	return e;
}

/* Hand e to the caller through err, or free it if err is NULL. */
void
error_give(struct swerex_error **err, struct swerex_error *e)
{
	if (err != NULL)
		*err = e;
	else
		swerex_error_free(e);
}

/* Create an error and hand it to the caller. */
void
error_set(struct swerex_error **err, enum swerex_error_kind kind,
    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	*err = error_vnew(kind, fmt, ap);
	va_end(ap);
}

/* Give the wire's spelling of an optional session name. */
static char *
session_name(const char *session)
{
	return (char *)(session != NULL ? session : "");
}

/* Check that a string array has no NULL entries; 0 if it is usable. */
static int
strings_check(const char *const *v, size_t n)
{
	size_t i;

	if (n != 0 && v == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i] == NULL)
			return -1;
	}
	return 0;
}

/*
 * Build the public form of a final Response. Strings and bytes that need no
 * conversion are borrowed from resp. Return 0, or -1 if memory ran out.
 */
static int
reply_build(struct client_reply *cr, const Swerex__V1__Response *resp)
{
	struct swerex_reply *r = &cr->reply;
	const Swerex__V1__CreateSessionResponse *cs;

	memset(cr, 0, sizeof *cr);
	r->id = resp->id;
	switch (resp->body_case) {
	case SWEREX__V1__RESPONSE__BODY_ERROR:
		r->type = SWEREX_REPLY_ERROR;
		cr->error = convert_error(resp->error);
		if (cr->error == NULL)
			return -1;
		r->error = cr->error;
		break;
	case SWEREX__V1__RESPONSE__BODY_IS_ALIVE:
		r->type = SWEREX_REPLY_ALIVE;
		r->is_alive = resp->is_alive->is_alive;
		r->message = resp->is_alive->message != NULL ?
		    resp->is_alive->message : "";
		break;
	case SWEREX__V1__RESPONSE__BODY_CREATE_SESSION:
		cs = resp->create_session;
		r->type = SWEREX_REPLY_SESSION_CREATED;
		r->data = cs->output.data != NULL ?
		    (const char *)cs->output.data : "";
		r->len = cs->output.len;
		break;
	case SWEREX__V1__RESPONSE__BODY_OBSERVATION:
		r->type = SWEREX_REPLY_OBSERVATION;
		cr->observation = convert_observation(resp->observation);
		if (cr->observation == NULL)
			return -1;
		r->observation = cr->observation;
		break;
	case SWEREX__V1__RESPONSE__BODY_CLOSE_SESSION:
		r->type = SWEREX_REPLY_SESSION_CLOSED;
		break;
	case SWEREX__V1__RESPONSE__BODY_RESIZE:
		r->type = SWEREX_REPLY_RESIZED;
		break;
	case SWEREX__V1__RESPONSE__BODY_LIST_SESSIONS:
		r->type = SWEREX_REPLY_SESSIONS;
		if (convert_sessions(resp->list_sessions, &cr->sessions,
		    &cr->n_sessions) != 0)
			return -1;
		r->sessions = cr->sessions;
		r->n_sessions = cr->n_sessions;
		break;
	case SWEREX__V1__RESPONSE__BODY_EXECUTE:
		r->type = SWEREX_REPLY_EXEC;
		cr->exec_result = convert_exec_result(resp->execute);
		if (cr->exec_result == NULL)
			return -1;
		r->exec_result = cr->exec_result;
		break;
	case SWEREX__V1__RESPONSE__BODY_STATS:
		r->type = SWEREX_REPLY_STATS;
		if ((cr->stats = stats_convert(resp->stats)) == NULL)
			return -1;
		r->stats = cr->stats;
		break;
	case SWEREX__V1__RESPONSE__BODY_HISTORY:
		r->type = SWEREX_REPLY_HISTORY;
		if ((cr->history = stats_convert_history(resp->history)) == NULL)
			return -1;
		r->history = cr->history;
		break;
	case SWEREX__V1__RESPONSE__BODY_READ_FILE:
		r->type = (enum swerex_reply_type)CLIENT_REPLY_READ_FILE;
		cr->resp = resp;
		break;
	case SWEREX__V1__RESPONSE__BODY_WRITE_FILE:
		r->type = (enum swerex_reply_type)CLIENT_REPLY_WRITE_FILE;
		cr->resp = resp;
		break;
	case SWEREX__V1__RESPONSE__BODY_UPLOAD:
		r->type = (enum swerex_reply_type)CLIENT_REPLY_UPLOAD;
		cr->resp = resp;
		break;
	case SWEREX__V1__RESPONSE__BODY_DOWNLOAD:
		r->type = (enum swerex_reply_type)CLIENT_REPLY_DOWNLOAD;
		cr->resp = resp;
		break;
	case SWEREX__V1__RESPONSE__BODY_SEND_INPUT:
		r->type = SWEREX_REPLY_INPUT_SENT;
		r->len = (size_t)resp->send_input->bytes_written;
		break;
	case SWEREX__V1__RESPONSE__BODY_ATTACH:
		r->type = SWEREX_REPLY_ATTACH_END;
		r->message = resp->attach->reason != NULL ?
		    resp->attach->reason : "";
		break;
	case SWEREX__V1__RESPONSE__BODY_DETACH:
		r->type = SWEREX_REPLY_DETACHED;
		break;
	default:
		r->type = SWEREX_REPLY_ERROR;
		cr->error = error_new(SWEREX_ERR_PROTOCOL,
		    "unexpected reply from swerexd (body %d)",
		    (int)resp->body_case);
		if (cr->error == NULL)
			return -1;
		r->error = cr->error;
		break;
	}
	return 0;
}

/* Free what a reply owns. */
static void
reply_clear(struct client_reply *cr)
{
	swerex_error_free(cr->error);
	swerex_observation_free(cr->observation);
	swerex_sessions_free(cr->sessions, cr->n_sessions);
	swerex_exec_result_free(cr->exec_result);
	swerex_stats_free(cr->stats);
	swerex_history_free(cr->history);
	memset(cr, 0, sizeof *cr);
}

/* Free whatever a blocking call's slot still holds. */
void
wait_clear(struct client_wait *w)
{
	swerex_error_free(w->error);
	swerex_observation_free(w->observation);
	free(w->data);
	free(w->message);
	swerex_sessions_free(w->sessions, w->n_sessions);
	swerex_exec_result_free(w->exec_result);
	swerex_stats_free(w->stats);
	swerex_history_free(w->history);
	w->stats = NULL;
	w->history = NULL;
	w->error = NULL;
	w->observation = NULL;
	w->data = NULL;
	w->message = NULL;
	w->sessions = NULL;
	w->n_sessions = 0;
	w->exec_result = NULL;
}

/*
 * Move a final reply into the slot of the blocking call waiting for it.
 * built is 0 when the reply could not be converted for lack of memory.
 */
static void
wait_finish(struct client_wait *w, struct client_reply *cr, int built)
{
	const struct swerex_reply *r = &cr->reply;
	const Swerex__V1__ReadFileResponse *rf;

	w->done = 1;
	if (!built)
		goto nomem;
	w->type = r->type;
	switch ((int)r->type) {
	case SWEREX_REPLY_ERROR:
		if (cr->error != NULL) {
			w->error = cr->error;
			cr->error = NULL;
		} else if ((w->error = swerex_error_dup(r->error)) == NULL)
			goto nomem;
		break;
	case SWEREX_REPLY_ALIVE:
		w->is_alive = r->is_alive;
		if ((w->message = strdup(r->message)) == NULL)
			goto nomem;
		break;
	case SWEREX_REPLY_SESSION_CREATED:
		if ((w->data = convert_bytes(r->data, r->len)) == NULL)
			goto nomem;
		w->len = r->len;
		break;
	case SWEREX_REPLY_OBSERVATION:
		w->observation = cr->observation;
		cr->observation = NULL;
		break;
	case SWEREX_REPLY_SESSIONS:
		w->sessions = cr->sessions;
		w->n_sessions = cr->n_sessions;
		cr->sessions = NULL;
		cr->n_sessions = 0;
		break;
	case SWEREX_REPLY_EXEC:
		w->exec_result = cr->exec_result;
		cr->exec_result = NULL;
		break;
	case SWEREX_REPLY_INPUT_SENT:
		w->bytes = r->len;
		break;
	case SWEREX_REPLY_STATS:
		w->stats = cr->stats;
		cr->stats = NULL;
		break;
	case SWEREX_REPLY_HISTORY:
		w->history = cr->history;
		cr->history = NULL;
		break;
	case CLIENT_REPLY_READ_FILE:
		rf = cr->resp->read_file;
		if ((w->data = convert_bytes(rf->content.data,
		    rf->content.len)) == NULL)
			goto nomem;
		w->len = rf->content.len;
		w->size = rf->size;
		break;
	case CLIENT_REPLY_WRITE_FILE:
		w->bytes = cr->resp->write_file->bytes_written;
		break;
	case CLIENT_REPLY_UPLOAD:
		w->files = cr->resp->upload->files;
		w->bytes = cr->resp->upload->bytes;
		break;
	case CLIENT_REPLY_DOWNLOAD:
		w->is_directory = cr->resp->download->is_directory;
		w->files = cr->resp->download->files;
		w->bytes = cr->resp->download->bytes;
		break;
	default:
		break;
	}
	return;

nomem:
	wait_clear(w);
	w->type = SWEREX_REPLY_ERROR;
	w->error = error_new(SWEREX_ERR_NO_MEMORY, "out of memory");
}

/*
 * Check a finished blocking call's reply: 0 if it is of the expected type,
 * else free the slot and return -1 with *err set.
 */
int
wait_result(struct client_wait *w, enum swerex_reply_type expected,
    struct swerex_error **err)
{
	if (w->type == SWEREX_REPLY_ERROR) {
		error_give(err, w->error);
		w->error = NULL;
		wait_clear(w);
		return -1;
	}
	if (w->type != expected) {
		wait_clear(w);
		error_set(err, SWEREX_ERR_PROTOCOL,
		    "unexpected reply type %d from swerexd", (int)w->type);
		return -1;
	}
	return 0;
}

/* Drop a reference to a kept frame; the last one frees it. */
static void
client_frame_unref(struct client_frame *f)
{
	if (f != NULL && --f->refs == 0)
		free(f);
}

/* Release the output buffer's reference to a frame it has sent or dropped. */
static void
client_frame_cleanup(const void *data, size_t len, void *arg)
{
	client_frame_unref(arg);
}

/* Encode a request as a frame to keep; NULL if memory ran out. */
static struct client_frame *
client_frame_new(const Swerex__V1__Request *req, size_t len)
{
	struct client_frame *f;

	f = malloc(sizeof *f + WIRE_HEADER_LEN + len);
	if (f == NULL)
		return NULL;
	f->refs = 1;
	f->len = WIRE_HEADER_LEN + len;
	f->data[0] = 0;
	f->data[1] = (uint8_t)(len >> 24);
	f->data[2] = (uint8_t)(len >> 16);
	f->data[3] = (uint8_t)(len >> 8);
	f->data[4] = (uint8_t)len;
	protobuf_c_message_pack(&req->base, f->data + WIRE_HEADER_LEN);
	return f;
}

/* Append a kept frame to out without copying it; 0, or -1. */
static int
client_frame_put(struct evbuffer *out, struct client_frame *f)
{
	f->refs++;
	if (evbuffer_add_reference(out, f->data, f->len, client_frame_cleanup,
	    f) != 0) {
		f->refs--;
		return -1;
	}
	return 0;
}

/* Free a request that is out of the table. */
static void
client_request_free(struct client_request *r)
{
	client_frame_unref(r->frame);
	free(r);
}

/* Give the bucket of an id; ids are sequential, so the low bits spread well. */
static size_t
client_bucket(const struct swerex_client *c, uint64_t id)
{
	return (size_t)(id & (c->n_buckets - 1));
}

/* Find a pending request by id. */
static struct client_request *
client_find(const struct swerex_client *c, uint64_t id)
{
	struct client_request *r;

	for (r = c->buckets[client_bucket(c, id)]; r != NULL; r = r->hash_next) {
		if (r->id == id)
			return r;
	}
	return NULL;
}

/* Double the pending table; on failure keep the old one (slower, still right). */
static void
client_grow(struct swerex_client *c)
{
	struct client_request **old = c->buckets, *r;
	size_t n = c->n_buckets * 2, b;

	if (n < c->n_buckets)
		return;
	c->buckets = calloc(n, sizeof *c->buckets);
	if (c->buckets == NULL) {
		c->buckets = old;
		return;
	}
	c->n_buckets = n;
	TAILQ_FOREACH(r, &c->requests, entry) {
		b = client_bucket(c, r->id);
		r->hash_next = c->buckets[b];
		c->buckets[b] = r;
	}
	free(old);
}

/* Add a request to the pending table. */
static void
client_insert(struct swerex_client *c, struct client_request *r)
{
	size_t b;

	if (c->n_pending >= c->n_buckets)
		client_grow(c);
	b = client_bucket(c, r->id);
	r->hash_next = c->buckets[b];
	c->buckets[b] = r;
	TAILQ_INSERT_TAIL(&c->requests, r, entry);
	c->n_pending++;
}

/* Take a request out of the pending table. */
static void
client_remove(struct swerex_client *c, struct client_request *r)
{
	struct client_request **pp;

	for (pp = &c->buckets[client_bucket(c, r->id)]; *pp != NULL;
	    pp = &(*pp)->hash_next) {
		if (*pp == r) {
			*pp = r->hash_next;
			break;
		}
	}
	TAILQ_REMOVE(&c->requests, r, entry);
	c->n_pending--;
}

/*
 * Deliver a final reply to whoever waits for r, then free r, which must
 * already be out of the table. built is 0 if the reply could not be built.
 */
static void
client_finish(struct swerex_client *c, struct client_request *r,
    struct client_reply *cr, int built)
{
	static const struct swerex_error error_private = {
		.kind = SWEREX_ERR_PROTOCOL,
		.message = (char *)"unexpected reply from swerexd",
	};
	struct swerex_reply nomem;
	const struct swerex_reply *reply = &cr->reply;

	if (r->wait != NULL)
		wait_finish(r->wait, cr, built);
	else if (r->cb != NULL) {
		if (!built || (int)reply->type >= CLIENT_REPLY_READ_FILE) {
			/* File replies are only ever waited for. */
			memset(&nomem, 0, sizeof nomem);
			nomem.id = r->id;
			nomem.type = SWEREX_REPLY_ERROR;
			nomem.error = built ? &error_private : &error_nomem;
			reply = &nomem;
		}
		c->in_callback++;
		r->cb(c, reply, r->arg);
		c->in_callback--;
	}
	client_request_free(r);
}

/*
 * Deliver an output chunk of a streamed run or execute; the request stays
 * pending. A chunk labelled stdout or stderr is an execute's; a terminal
 * chunk is a run's.
 */
static void
client_chunk(struct swerex_client *c, struct client_request *r,
    const Swerex__V1__OutputChunk *chunk)
{
	struct swerex_reply reply;
	struct client_wait *w = r->wait;
	const char *data;
	int stream;

	data = chunk->data.data != NULL ? (const char *)chunk->data.data : "";
	stream = (int)chunk->stream;
	r->delivered = true;
	if (w != NULL) {
		c->in_callback++;
		if (stream == 0 && w->on_chunk != NULL)
			w->on_chunk(data, chunk->data.len, w->chunk_arg);
		else if (stream != 0 && w->on_output != NULL)
			w->on_output(stream, data, chunk->data.len,
			    w->output_arg);
		c->in_callback--;
	} else if (r->cb != NULL) {
		memset(&reply, 0, sizeof reply);
		reply.id = r->id;
		reply.type = stream == 0 ? SWEREX_REPLY_CHUNK :
		    SWEREX_REPLY_EXEC_CHUNK;
		reply.stream = stream;
		reply.data = data;
		reply.len = chunk->data.len;
		c->in_callback++;
		r->cb(c, &reply, r->arg);
		c->in_callback--;
	}
}

/*
 * Deliver a streamed entry of a download; the request stays pending. If the
 * handler fails, the blocking call is finished with its error and the
 * request abandoned: the rest of the transfer is read and dropped.
 */
static void
client_entry(struct swerex_client *c, struct client_request *r,
    const Swerex__V1__TransferEntry *entry)
{
	struct client_wait *w = r->wait;
	int rc;

	r->delivered = true;
	if (w == NULL || w->on_entry == NULL)
		return;
	c->in_callback++;
	rc = w->on_entry(w, entry);
	c->in_callback--;
	if (rc != 0) {
		w->done = 1;
		w->type = SWEREX_REPLY_ERROR;
		r->wait = NULL;
	}
}

/* Finish a request that is out of the table with the error e. */
static void
client_fail(struct swerex_client *c, struct client_request *r,
    const struct swerex_error *e)
{
	struct client_reply cr;

	memset(&cr, 0, sizeof cr);
	cr.reply.id = r->id;
	cr.reply.type = SWEREX_REPLY_ERROR;
	cr.reply.error = e;
	client_finish(c, r, &cr, 1);
}

/* Stop the connection's events, close it and drop what is buffered. */
static void
client_close(struct swerex_client *c)
{
	if (c->read_ev != NULL)
		event_del(c->read_ev);
	if (c->write_ev != NULL)
		event_del(c->write_ev);
	net_close(&c->net);
	if (c->in != NULL)
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
	if (c->out != NULL)
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
}

/*
 * Take the client down for good: stop its events, close the connection and
 * fail every pending request, oldest first, with e. The one path for every
 * final loss.
 */
static void
client_lose(struct swerex_client *c, const struct swerex_error *e)
{
	struct client_request *r;

	if (c->dead)
		return;
	c->dead = 1;
	c->reconnecting = false;
	client_close(c);
	if (c->keepalive_ev != NULL)
		event_del(c->keepalive_ev);
	if (c->reconnect_ev != NULL)
		event_del(c->reconnect_ev);

	while ((r = TAILQ_FIRST(&c->requests)) != NULL) {
		client_remove(c, r);
		client_fail(c, r, e);
	}
}

/* Take the client down with an error of the given kind and message. */
static void __attribute__((format(printf, 3, 4)))
client_lose_with(struct swerex_client *c, enum swerex_error_kind kind,
    const char *fmt, ...)
{
	struct swerex_error e;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memset(&e, 0, sizeof e);
	e.kind = kind;
	e.message = msg;
	client_lose(c, &e);
}

/* Arm the reconnect timer for ms milliseconds, but not past the give-up time. */
static void
client_reconnect_later(struct swerex_client *c, unsigned int ms)
{
	struct timeval tv;
	int left = net_ms_left(&c->give_up);

	if ((int)ms > left)
		ms = (unsigned int)left;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(c->reconnect_ev, &tv);
}

/*
 * Handle a lost transport (EOF, an I/O error, keepalive). Without reconnect
 * the client is taken down. With it, the connection is closed, the requests
 * whose data cannot be replayed (streams that delivered output or entries,
 * uploads) fail now, the others wait, and reconnecting starts.
 */
static void __attribute__((format(printf, 2, 3)))
client_drop(struct swerex_client *c, const char *fmt, ...)
{
	struct client_requests gone = TAILQ_HEAD_INITIALIZER(gone);
	struct client_request *r, *next;
	struct swerex_error e;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memset(&e, 0, sizeof e);
	e.kind = SWEREX_ERR_DISCONNECTED;
	e.message = msg;
	if (!c->reconnect || c->dead) {
		client_lose(c, &e);
		return;
	}
	client_close(c);
	c->gen++;
	c->reconnecting = true;
	c->backoff = CLIENT_BACKOFF_MIN;
	snprintf(c->last_error, sizeof c->last_error, "%s", msg);
	net_deadline(&c->give_up, c->reconnect_timeout);
	client_reconnect_later(c, c->backoff);

	for (r = TAILQ_FIRST(&c->requests); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		if (r->delivered ||
		    r->body == SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN ||
		    r->body == SWEREX__V1__REQUEST__BODY_UPLOAD_END) {
			client_remove(c, r);
			TAILQ_INSERT_TAIL(&gone, r, entry);
		}
	}
	/* Callbacks last: what they submit is queued for the reconnect. */
	snprintf(msg + strlen(msg), sizeof msg - strlen(msg),
	    " (a stream or upload in progress cannot be resumed)");
	while ((r = TAILQ_FIRST(&gone)) != NULL) {
		TAILQ_REMOVE(&gone, r, entry);
		client_fail(c, r, &e);
	}
}

/* Handle one Response from the daemon. */
static void
client_dispatch(struct swerex_client *c, const Swerex__V1__Response *resp)
{
	struct client_request *r;
	struct client_reply cr;
	int built;

	if (resp->id == 0) {
		/* A connection-level error: the daemon closes after it. */
		if (resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR)
			return;
		if (reply_build(&cr, resp) == 0)
			client_lose(c, cr.error);
		else
			client_lose(c, &error_nomem);
		reply_clear(&cr);
		return;
	}

	r = client_find(c, resp->id);
	if (r == NULL)
		return;	/* a pong, or abandoned by a failed blocking call */
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_CHUNK) {
		client_chunk(c, r, resp->chunk);
		return;
	}
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ENTRY) {
		client_entry(c, r, resp->entry);
		return;
	}
	client_remove(c, r);
	built = reply_build(&cr, resp) == 0;
	client_finish(c, r, &cr, built);
	reply_clear(&cr);
}

/* Take and handle every complete frame in the input buffer. */
static void
client_dispatch_input(struct swerex_client *c)
{
	ProtobufCMessage *msg;
	int r;

	while (!c->dead) {
		r = wire_take(c->in, CLIENT_MAX_FRAME,
		    &swerex__v1__response__descriptor, &msg);
		if (r == WIRE_AGAIN)
			return;
		if (r != WIRE_OK) {
			client_lose_with(c, SWEREX_ERR_PROTOCOL,
			    "bad frame from swerexd: %s", wire_strerror(r));
			return;
		}
		client_dispatch(c, (Swerex__V1__Response *)msg);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
}

/* Read what the connection has, in bounded chunks, and handle complete frames. */
static void
client_read_cb(evutil_socket_t fd, short events, void *arg)
{
	struct swerex_client *c = arg;
	int i, eof = 0, error = 0;
	ssize_t n;

	for (i = 0; i < CLIENT_READS_PER_EVENT; i++) {
		n = net_read(&c->net, c->in, CLIENT_READ_SIZE);
		if (n > 0) {
			c->rx = true;	/* all that keepalive needs */
			if (n < CLIENT_READ_SIZE)
				break;
			continue;
		}
		if (n == 0)
			eof = 1;
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			error = errno;
		break;
	}

	/* Frames that arrived before EOF are still delivered. */
	client_dispatch_input(c);
	if (c->dead)
		return;
	if (error != 0)
		client_drop(c, CLIENT_LOST ": %s", net_strerror(&c->net,
		    error));
	else if (eof)
		client_drop(c, CLIENT_LOST);
	else if (i == CLIENT_READS_PER_EVENT && net_pending(&c->net))
		/* TLS holds more and the socket will not say so. */
		event_active(c->read_ev, EV_READ, 0);
	else if (c->net.read_wants_write || (c->net.write_wants_read &&
	    evbuffer_get_length(c->out) > 0))
		event_add(c->write_ev, NULL);
}

/*
 * Flush output when the connection is writable; stop watching once it is
 * empty. A TLS read that waited for writability is finished first.
 */
static void
client_write_cb(evutil_socket_t fd, short events, void *arg)
{
	struct swerex_client *c = arg;
	int r;

	if (c->net.read_wants_write) {
		client_read_cb(fd, EV_READ, c);
		if (c->net.fd == -1)
			return;
	}
	r = net_flush(&c->net, c->out);
	if (r < 0) {
		client_drop(c, CLIENT_LOST ": %s", net_strerror(&c->net, -r));
		return;
	}
	if ((evbuffer_get_length(c->out) == 0 || c->net.write_wants_read) &&
	    !c->net.read_wants_write)
		event_del(c->write_ev);
}

/* Write what the connection takes now, without waiting for the loop. */
void
client_kick(struct swerex_client *c)
{
	if (c->net.fd != -1)
		client_write_cb(c->net.fd, EV_WRITE, c);
}

/*
 * Encode a request under the next id and queue it for sending; with framep,
 * as a frame kept for sending again (*framep, one reference). Return the
 * id, or 0 with *err set (then nothing was queued and the id is unused).
 * While reconnecting the output waits for the new connection.
 */
static uint64_t
client_put(struct swerex_client *c, Swerex__V1__Request *req,
    struct client_frame **framep, struct swerex_error **err)
{
	struct client_frame *f;
	size_t len;
	int error;

	if (c->dead) {
		error_set(err, SWEREX_ERR_DISCONNECTED, CLIENT_LOST);
		return 0;
	}
	req->id = c->next_id;
	len = protobuf_c_message_get_packed_size(&req->base);
	if ((c->max_frame != 0 && len > c->max_frame) || len > UINT32_MAX) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "request of %zu bytes is above swerexd's frame limit of "
		    "%llu bytes", len, (unsigned long long)c->max_frame);
		return 0;
	}
	if (framep != NULL) {
		if ((f = client_frame_new(req, len)) == NULL) {
			error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
			return 0;
		}
		if (client_frame_put(c->out, f) != 0) {
			client_frame_unref(f);
			error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
			return 0;
		}
		*framep = f;
	} else if ((error = wire_put(c->out, &req->base)) != 0) {
		error_set(err, error == -ENOMEM ? SWEREX_ERR_NO_MEMORY :
		    SWEREX_ERR_BAD_ARGUMENT, "cannot queue request: %s",
		    strerror(-error));
		return 0;
	}
	c->next_id++;
	/* Written from the loop, so a submit never runs callbacks. */
	if (c->net.fd != -1)
		event_add(c->write_ev, NULL);
	return req->id;
}

/*
 * Encode a request that nothing waits for (upload data, pings) under the
 * next id and queue it. Return the id, or 0 with *err set.
 */
uint64_t
client_queue(struct swerex_client *c, Swerex__V1__Request *req,
    struct swerex_error **err)
{
	return client_put(c, req, NULL, err);
}

/*
 * Queue a request and remember who waits for its reply: cb and arg, or the
 * blocking call's slot w. Return its id, or 0 with *err set.
 */
uint64_t
client_submit(struct swerex_client *c, Swerex__V1__Request *req,
    swerex_reply_cb cb, void *arg, struct client_wait *w,
    struct swerex_error **err)
{
	struct client_request *r;

	r = calloc(1, sizeof *r);
	if (r == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return 0;
	}
	r->cb = cb;
	r->arg = arg;
	r->wait = w;
	r->body = req->body_case;
	r->gen = c->gen;
	r->id = client_put(c, req, c->reconnect ? &r->frame : NULL, err);
	if (r->id == 0) {
		free(r);
		return 0;
	}
	client_insert(c, r);
	return r->id;
}

/*
 * Forget a request that a blocking call gives up on, without a reply: a
 * reply that comes later finds no request and is dropped.
 */
void
client_forget(struct swerex_client *c, uint64_t id)
{
	struct client_request *r;

	if (id == 0 || (r = client_find(c, id)) == NULL)
		return;
	client_remove(c, r);
	client_request_free(r);
}

/* Check that a blocking call may run on c; 0, or -1 with *err set. */
int
client_can_block(struct swerex_client *c, struct swerex_error **err)
{
	if (c == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no client");
		return -1;
	}
	if (c->in_callback) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "blocking call from a "
		    "callback of the same client; use swerex_submit_*()");
		return -1;
	}
	return 0;
}

/* Run the client's base until the blocking request id is done; 0 or -1. */
int
client_wait(struct swerex_client *c, uint64_t id, struct client_wait *w,
    struct swerex_error **err)
{
	struct client_request *r;

	/* Write now rather than from the loop: one loop pass less per call. */
	client_kick(c);
	while (!w->done) {
		if (event_base_loop(c->base, EVLOOP_ONCE) == 0 || w->done)
			continue;
		/*
		 * The base cannot run, most likely because the call was made
		 * from one of its own callbacks. Abandon the request: its
		 * reply, if it comes, is dropped.
		 */
		r = client_find(c, id);
		if (r != NULL)
			r->wait = NULL;
		error_set(err, SWEREX_ERR_INTERNAL, "cannot run the event base "
		    "(blocking call from inside one of its callbacks?)");
		return -1;
	}
	return 0;
}

/* Send a ping; its pong, like any frame, proves the daemon alive. */
static void
client_ping(struct swerex_client *c)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Ping ping = SWEREX__V1__PING__INIT;

	req.body_case = SWEREX__V1__REQUEST__BODY_PING;
	req.ping = &ping;
	/* A ping that cannot be queued is noticed by the ticks that follow. */
	client_queue(c, &req, NULL);
}

/*
 * Count a keepalive tick: after an interval without a byte from the daemon
 * send a ping, after two take the connection as lost.
 */
static void
client_keepalive_cb(evutil_socket_t fd, short events, void *arg)
{
	struct swerex_client *c = arg;

	if (c->net.fd == -1)
		return;
	if (c->rx) {
		c->rx = false;
		c->quiet = 0;
		return;
	}
	c->quiet++;
	if (c->quiet >= 2 * CLIENT_KEEPALIVE_TICKS)
		client_drop(c, "swerexd did not answer for %g s (keepalive)",
		    2 * c->keepalive);
	else if (c->quiet == CLIENT_KEEPALIVE_TICKS)
		client_ping(c);
}

/*
 * Say Hello on n and wait for the answer before deadline, without running
 * the event base: the caller's other events do not run during connect, and
 * connecting from one of the base's callbacks works. On success the
 * daemon's version and limits are recorded and *resumed tells whether it
 * still knew this client's identity. Return 0, or -1 with *err set.
 */
static int
client_hello(struct swerex_client *c, struct net *n,
    const struct timespec *deadline, bool *resumed,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	Swerex__V1__Response *resp = NULL;
	const Swerex__V1__HelloResponse *hr;
	ProtobufCMessage *msg;
	struct evbuffer *out;
	char *version;
	ssize_t got;
	int r;

	hello.protocol_version = SWEREX_PROTOCOL_VERSION;
	hello.client_name = c->client_name;
	hello.client_version = (char *)SWEREX_VERSION;
	hello.token = c->token != NULL ? c->token : (char *)"";
	if (c->reconnect) {
		hello.client_id.data = c->identity;
		hello.client_id.len = sizeof c->identity;
	}
	req.id = c->next_id++;
	req.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	if ((out = evbuffer_new()) == NULL || wire_put(out, &req.base) != 0) {
		if (out != NULL)
			evbuffer_free(out);
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	r = 0;
	while (r == 0 && evbuffer_get_length(out) > 0) {
		r = net_flush(n, out);
		if (r == 0 && evbuffer_get_length(out) > 0)
			r = net_poll(n->fd, n->write_wants_read ? POLLIN :
			    POLLOUT, deadline);
	}
	evbuffer_free(out);
	if (r < 0)
		goto io_fail;

	/* Read first: TLS may hold bytes that poll() would not report. */
	for (;;) {
		r = wire_take(c->in, CLIENT_MAX_FRAME,
		    &swerex__v1__response__descriptor, &msg);
		if (r == WIRE_OK)
			break;
		if (r != WIRE_AGAIN) {
			error_set(err, SWEREX_ERR_PROTOCOL,
			    "bad frame from swerexd: %s", wire_strerror(r));
			return -1;
		}
		got = net_read(n, c->in, CLIENT_READ_SIZE);
		if (got > 0)
			continue;
		if (got == 0) {
			error_set(err, SWEREX_ERR_CONNECT,
			    "swerexd closed the connection during the handshake");
			return -1;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			r = -errno;
			goto io_fail;
		}
		r = net_poll(n->fd, n->read_wants_write ? POLLOUT : POLLIN,
		    deadline);
		if (r < 0)
			goto io_fail;
	}
	resp = (Swerex__V1__Response *)msg;

	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR) {
		/* UNAUTHENTICATED, UNSUPPORTED_VERSION, ...: the daemon's word. */
		error_give(err, convert_error(resp->error));
		goto fail;
	}
	if (resp->id != req.id ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_HELLO) {
		error_set(err, SWEREX_ERR_PROTOCOL,
		    "unexpected answer to hello from swerexd");
		goto fail;
	}
	hr = resp->hello;
	if (hr->protocol_version != SWEREX_PROTOCOL_VERSION) {
		error_set(err, SWEREX_ERR_UNSUPPORTED_VERSION,
		    "swerexd speaks protocol version %u, libswerex %u",
		    hr->protocol_version, SWEREX_PROTOCOL_VERSION);
		goto fail;
	}
	if ((version = convert_string(hr->daemon_version)) == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		goto fail;
	}
	free(c->daemon_version);
	c->daemon_version = version;
	c->max_frame = hr->max_frame;
	*resumed = hr->resumed;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;

io_fail:
	if (r == -ETIMEDOUT)
		error_set(err, SWEREX_ERR_CONNECT, "swerexd at %s did not "
		    "answer the handshake in time", c->target.addr);
	else
		error_set(err, SWEREX_ERR_CONNECT, "handshake with swerexd at "
		    "%s failed: %s", c->target.addr, net_strerror(n, -r));
	return -1;
fail:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return -1;
}

/*
 * Connect and shake hands within seconds (a blocking wait, see
 * client_hello()); the new connection is left in *n. 0, or -1 with *err.
 */
static int
client_open(struct swerex_client *c, double seconds, struct net *n,
    bool *resumed, struct swerex_error **err)
{
	struct timespec deadline;

	net_deadline(&deadline, seconds);
	if (net_connect(n, &c->target, c->ssl_ctx, c->server_name,
	    c->keepalive, &deadline, err) != 0)
		return -1;
	if (client_hello(c, n, &deadline, resumed, err) != 0) {
		net_close(n);
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
		return -1;
	}
	return 0;
}

/* Start using an open connection: bind the events to it. 0, or -1. */
static int
client_attach(struct swerex_client *c, struct net *n)
{
	c->net = *n;
	if (event_assign(c->read_ev, c->base, c->net.fd, EV_READ | EV_PERSIST,
	    client_read_cb, c) != 0 ||
	    event_assign(c->write_ev, c->base, c->net.fd,
	    EV_WRITE | EV_PERSIST, client_write_cb, c) != 0 ||
	    event_add(c->read_ev, NULL) != 0)
		return -1;
	c->rx = false;
	c->quiet = 0;
	/* Anything that came in after the Hello answer is handled soon. */
	if (evbuffer_get_length(c->in) > 0 || net_pending(&c->net))
		event_active(c->read_ev, EV_READ, 0);
	if (evbuffer_get_length(c->out) > 0)
		event_add(c->write_ev, NULL);
	return 0;
}

/* Tell whether a request may run twice without harm. */
static bool
client_repeatable(const struct client_request *r)
{
	switch (r->body) {
	case SWEREX__V1__REQUEST__BODY_IS_ALIVE:
	case SWEREX__V1__REQUEST__BODY_LIST_SESSIONS:
	case SWEREX__V1__REQUEST__BODY_READ_FILE:
	case SWEREX__V1__REQUEST__BODY_DOWNLOAD:
	case SWEREX__V1__REQUEST__BODY_STATS:
	case SWEREX__V1__REQUEST__BODY_HISTORY:
		return !r->delivered;
	default:
		return false;
	}
}

/*
 * After a reconnect, send the requests of the lost connection again in id
 * order, ahead of those queued while reconnecting. If swerexd no longer
 * knew this client only those safe to repeat go again; the others fail,
 * since they may or may not have run.
 */
static void
client_resume(struct swerex_client *c, bool resumed)
{
	static const struct swerex_error unknown = {
		.kind = SWEREX_ERR_DISCONNECTED,
		.message = (char *)"connection lost and swerexd no longer knew "
		    "this client: the request may or may not have run",
	};
	struct client_requests gone = TAILQ_HEAD_INITIALIZER(gone);
	struct client_requests nomem = TAILQ_HEAD_INITIALIZER(nomem);
	struct client_request *r, *next;
	struct evbuffer *again;

	c->reconnecting = false;
	c->reconnects++;
	again = evbuffer_new();
	for (r = TAILQ_FIRST(&c->requests); r != NULL; r = next) {
		next = TAILQ_NEXT(r, entry);
		if (r->gen == c->gen)
			continue;	/* queued while reconnecting */
		if (!resumed && !client_repeatable(r)) {
			client_remove(c, r);
			TAILQ_INSERT_TAIL(&gone, r, entry);
		} else if (again == NULL ||
		    client_frame_put(again, r->frame) != 0) {
			client_remove(c, r);
			TAILQ_INSERT_TAIL(&nomem, r, entry);
		} else
			r->gen = c->gen;
	}
	if (again != NULL) {
		evbuffer_prepend_buffer(c->out, again);
		evbuffer_free(again);
	}
	if (evbuffer_get_length(c->out) > 0)
		event_add(c->write_ev, NULL);
	while ((r = TAILQ_FIRST(&gone)) != NULL) {
		TAILQ_REMOVE(&gone, r, entry);
		client_fail(c, r, &unknown);
	}
	while ((r = TAILQ_FIRST(&nomem)) != NULL) {
		TAILQ_REMOVE(&nomem, r, entry);
		client_fail(c, r, &error_nomem);
	}
}

/*
 * Try to reconnect (blocking for at most the connect timeout or the time
 * left); on failure try again after a longer wait, or give up. A refused
 * token or protocol version is final.
 */
static void
client_reconnect_cb(evutil_socket_t fd, short events, void *arg)
{
	struct swerex_client *c = arg;
	struct swerex_error *e = NULL;
	struct net n;
	bool resumed = false;
	double budget;
	int left;

	if ((left = net_ms_left(&c->give_up)) > 0) {
		budget = left / 1000.0;
		if (budget > c->connect_timeout)
			budget = c->connect_timeout;
		if (client_open(c, budget, &n, &resumed, &e) == 0) {
			if (client_attach(c, &n) == 0) {
				client_resume(c, resumed);
				return;
			}
			client_lose_with(c, SWEREX_ERR_INTERNAL,
			    "cannot add events for the new connection");
			return;
		}
		if (e != NULL && (e->kind == SWEREX_ERR_UNAUTHENTICATED ||
		    e->kind == SWEREX_ERR_UNSUPPORTED_VERSION ||
		    e->kind == SWEREX_ERR_BAD_ARGUMENT)) {
			client_lose_with(c, e->kind, "cannot reconnect: %s",
			    e->message);
			swerex_error_free(e);
			return;
		}
		snprintf(c->last_error, sizeof c->last_error, "%s",
		    e != NULL ? e->message : "out of memory");
		swerex_error_free(e);
		left = net_ms_left(&c->give_up);
	}
	if (left <= 0) {
		client_lose_with(c, SWEREX_ERR_DISCONNECTED, "gave up "
		    "reconnecting after %g s: %s", c->reconnect_timeout,
		    c->last_error);
		return;
	}
	c->backoff = c->backoff * 2 > CLIENT_BACKOFF_MAX ? CLIENT_BACKOFF_MAX :
	    c->backoff * 2;
	client_reconnect_later(c, c->backoff);
}

/*
 * Take the token to present: opts' token, else the first line of its
 * token_file; for TCP URLs, else $SWEREX_TOKEN, else the file named by
 * $SWEREX_TOKEN_FILE (a Unix socket ignores tokens: the environment's is
 * not read for one). 0, or -1 with *err set.
 */
static int
client_token(struct swerex_client *c, const struct swerex_connect_opts *o,
    struct swerex_error **err)
{
	const char *file;
	char msg[256];
	int rc;

	if (o->token != NULL) {
		if (strlen(o->token) > REMOTE_TOKEN_MAX) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT,
			    "token longer than %d bytes", REMOTE_TOKEN_MAX);
			return -1;
		}
		if ((c->token = strdup(o->token)) == NULL) {
			error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
			return -1;
		}
		return 0;
	}
	if (o->token_file != NULL)
		rc = remote_token_load(o->token_file, NULL, &c->token, msg,
		    sizeof msg);
	else if (c->target.kind == NET_UNIX)
		return 0;
	else {
		rc = remote_token_load(NULL, "SWEREX_TOKEN", &c->token, msg,
		    sizeof msg);
		file = getenv("SWEREX_TOKEN_FILE");
		if (rc == 0 && c->token == NULL && file != NULL &&
		    *file != '\0')
			rc = remote_token_load(file, NULL, &c->token, msg,
			    sizeof msg);
	}
	if (rc != 0) {
		error_set(err, strcmp(msg, "out of memory") == 0 ?
		    SWEREX_ERR_NO_MEMORY : SWEREX_ERR_BAD_ARGUMENT, "%s", msg);
		return -1;
	}
	return 0;
}

/* Give an option's value, else the environment variable's, else NULL. */
static const char *
client_opt_env(const char *opt, const char *env)
{
	const char *v;

	if (opt != NULL)
		return opt;
	v = getenv(env);
	return v != NULL && *v != '\0' ? v : NULL;
}

/* Check a number of seconds: finite; negative only if allowed. */
static int
client_seconds(double v, bool negative_ok, const char *what,
    struct swerex_error **err)
{
	if (!isfinite(v) || (v < 0 && !negative_ok)) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "bad %s: %g", what, v);
		return -1;
	}
	return 0;
}

/* Check that a file named by an option can be read; 0, or -1 with *err. */
static int
client_readable(const char *path, const char *what, struct swerex_error **err)
{
	if (path == NULL || access(path, R_OK) == 0)
		return 0;
	error_set(err, SWEREX_ERR_BAD_ARGUMENT, "%s %s: %s", what, path,
	    strerror(errno));
	return -1;
}

/* Take the settings of o into c, with defaults. 0, or -1 with *err set. */
static int
client_configure(struct swerex_client *c, const struct swerex_connect_opts *o,
    struct swerex_error **err)
{
	const char *ca, *cert, *key;
	char msg[256];
	ssize_t n;

	if (client_seconds(o->connect_timeout, false, "connect_timeout",
	    err) != 0 ||
	    client_seconds(o->keepalive, true, "keepalive", err) != 0 ||
	    client_seconds(o->reconnect_timeout, false, "reconnect_timeout",
	    err) != 0)
		return -1;
	c->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout :
	    CLIENT_CONNECT_TIMEOUT;
	c->keepalive = o->keepalive != 0 ? o->keepalive : CLIENT_KEEPALIVE;
	c->reconnect = o->reconnect;
	c->reconnect_timeout = o->reconnect_timeout > 0 ?
	    o->reconnect_timeout : CLIENT_RECONNECT_TIMEOUT;
	if (net_resolve(o->url, &c->target, err) != 0)
		return -1;
	c->client_name = strdup(o->client_name != NULL ? o->client_name :
	    "libswerex");
	if (c->client_name == NULL || (o->server_name != NULL &&
	    (c->server_name = strdup(o->server_name)) == NULL)) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	if (client_token(c, o, err) != 0)
		return -1;
	if (c->target.kind == NET_TLS) {
		ca = client_opt_env(o->ca_file, "SWEREX_CA");
		cert = client_opt_env(o->cert_file, "SWEREX_CERT");
		key = client_opt_env(o->key_file, "SWEREX_KEY");
		/* OpenSSL's words for a missing file are "system lib". */
		if (client_readable(ca, "CA file", err) != 0 ||
		    client_readable(cert, "certificate", err) != 0 ||
		    client_readable(key, "key", err) != 0)
			return -1;
		c->ssl_ctx = tls_client_ctx(ca, cert, key, msg, sizeof msg);
		if (c->ssl_ctx == NULL) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT, "%s", msg);
			return -1;
		}
	}
	if (c->reconnect) {
		do
			n = getrandom(c->identity, sizeof c->identity, 0);
		while (n == -1 && errno == EINTR);
		if (n != (ssize_t)sizeof c->identity) {
			error_set(err, SWEREX_ERR_INTERNAL, "cannot make a "
			    "client identity: %s", n == -1 ? strerror(errno) :
			    "short read");
			return -1;
		}
	}
	return 0;
}

/* Create the client's buffers, table and events. 0, or -1 with *err set. */
static int
client_alloc(struct swerex_client *c, struct swerex_error **err)
{
	struct timeval tv;
	double tick;

	c->n_buckets = CLIENT_BUCKETS_MIN;
	c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->read_ev = event_new(c->base, -1, 0, client_read_cb, c);
	c->write_ev = event_new(c->base, -1, 0, client_write_cb, c);
	if (c->keepalive > 0)
		c->keepalive_ev = event_new(c->base, -1, EV_PERSIST,
		    client_keepalive_cb, c);
	if (c->reconnect)
		c->reconnect_ev = evtimer_new(c->base, client_reconnect_cb, c);
	if (c->buckets == NULL || c->in == NULL || c->out == NULL ||
	    c->read_ev == NULL || c->write_ev == NULL ||
	    (c->keepalive > 0 && c->keepalive_ev == NULL) ||
	    (c->reconnect && c->reconnect_ev == NULL)) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	if (c->keepalive_ev != NULL) {
		tick = c->keepalive / CLIENT_KEEPALIVE_TICKS;
		tv.tv_sec = (time_t)tick;
		tv.tv_usec = (suseconds_t)((tick - (double)tv.tv_sec) * 1e6);
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_usec = 1;
		if (event_add(c->keepalive_ev, &tv) != 0) {
			error_set(err, SWEREX_ERR_INTERNAL,
			    "cannot add the keepalive timer");
			return -1;
		}
	}
	return 0;
}

/* Fill o with the defaults: zero means the default of each field. */
void
swerex_connect_opts_init(struct swerex_connect_opts *o)
{
	if (o != NULL)
		memset(o, 0, sizeof *o);
}

/* Connect with options; the handshake is done on return. */
int
swerex_connect_with(const struct swerex_connect_opts *o,
    struct swerex_client **out, struct swerex_error **err)
{
	struct swerex_client *c;
	struct net n;
	bool resumed;

	if (err != NULL)
		*err = NULL;
	if (out == NULL || o == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "no options or client pointer");
		return -1;
	}
	*out = NULL;
	if ((c = calloc(1, sizeof *c)) == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	c->net.fd = -1;
	c->next_id = 1;
	TAILQ_INIT(&c->requests);
	if (o->base != NULL)
		c->base = o->base;
	else if ((c->base = event_base_new()) != NULL)
		c->own_base = 1;
	else {
		free(c);
		error_set(err, SWEREX_ERR_NO_MEMORY,
		    "cannot create an event base");
		return -1;
	}
	if (client_configure(c, o, err) != 0 || client_alloc(c, err) != 0)
		goto fail;
	if (client_open(c, c->connect_timeout, &n, &resumed, err) != 0)
		goto fail;
	if (client_attach(c, &n) != 0) {
		error_set(err, SWEREX_ERR_INTERNAL, "cannot add read event");
		goto fail;
	}
	*out = c;
	return 0;

fail:
	swerex_client_free(c);
	return -1;
}

/* Connect with a private event base; the handshake is done on return. */
int
swerex_connect(const char *url, const char *client_name,
    struct swerex_client **out, struct swerex_error **err)
{
	struct swerex_connect_opts o;

	swerex_connect_opts_init(&o);
	o.url = url;
	o.client_name = client_name;
	return swerex_connect_with(&o, out, err);
}

/* Connect on the caller's event base; the handshake is done on return. */
int
swerex_connect_base(struct event_base *base, const char *url,
    const char *client_name, struct swerex_client **out,
    struct swerex_error **err)
{
	struct swerex_connect_opts o;

	if (base == NULL) {
		if (err != NULL)
			*err = NULL;
		if (out != NULL)
			*out = NULL;
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "no event base or client pointer");
		return -1;
	}
	swerex_connect_opts_init(&o);
	o.url = url;
	o.client_name = client_name;
	o.base = base;
	return swerex_connect_with(&o, out, err);
}

/*
 * Close the connection and free the client. Pending requests get
 * SWEREX_ERR_DISCONNECTED first. Not to be called from a callback of c.
 */
void
swerex_client_free(struct swerex_client *c)
{
	if (c == NULL)
		return;
	client_lose_with(c, SWEREX_ERR_DISCONNECTED,
	    "connection to swerexd closed by the client");
	if (c->read_ev != NULL)
		event_free(c->read_ev);
	if (c->write_ev != NULL)
		event_free(c->write_ev);
	if (c->keepalive_ev != NULL)
		event_free(c->keepalive_ev);
	if (c->reconnect_ev != NULL)
		event_free(c->reconnect_ev);
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	free(c->buckets);
	free(c->daemon_version);
	free(c->client_name);
	free(c->server_name);
	if (c->token != NULL) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	SSL_CTX_free(c->ssl_ctx);
	net_target_clear(&c->target);
	if (c->own_base)
		event_base_free(c->base);
	free(c);
}

/* Give the daemon's version string from the handshake. */
const char *
swerex_daemon_version(const struct swerex_client *c)
{
	if (c == NULL || c->daemon_version == NULL)
		return "";
	return c->daemon_version;
}

/* Give the number of successful reconnects. */
unsigned
swerex_reconnects(const struct swerex_client *c)
{
	return c != NULL ? c->reconnects : 0;
}

/* Resolve url as swerex_connect() does; only Unix URLs have a path. */
char *
swerex_socket_path(const char *url)
{
	struct net_target t;
	char *path;

	if (net_resolve(url, &t, NULL) != 0)
		return NULL;
	path = t.kind == NET_UNIX ? t.path : NULL;
	t.path = NULL;
	net_target_clear(&t);
	return path;
}

/* Give the number of requests still waiting for their final reply. */
size_t
swerex_pending(const struct swerex_client *c)
{
	return c != NULL ? c->n_pending : 0;
}

/* Build and queue an IsAlive request. */
static uint64_t
client_submit_is_alive(struct swerex_client *c, swerex_reply_cb cb,
    void *arg, struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__IsAliveRequest body = SWEREX__V1__IS_ALIVE_REQUEST__INIT;

	req.body_case = SWEREX__V1__REQUEST__BODY_IS_ALIVE;
	req.is_alive = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/*
 * Check "NAME=value" strings and copy their names, one after another each
 * with its NUL, into one new buffer (*namesp; NULL when n is 0). Return 0,
 * or -1 with *err set.
 */
static int
client_env_names(const char *const *env, size_t n, char **namesp,
    struct swerex_error **err)
{
	const char *eq;
	size_t i, len, size = 0;
	char *p;

	*namesp = NULL;
	if (n == 0)
		return 0;
	if (strings_check(env, n) != 0) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "NULL entry in env");
		return -1;
	}
	for (i = 0; i < n; i++) {
		eq = strchr(env[i], '=');
		if (eq == NULL || eq == env[i]) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT,
			    "env entry \"%s\" is not NAME=value", env[i]);
			return -1;
		}
		size += (size_t)(eq - env[i]) + 1;
	}
	if ((p = *namesp = malloc(size)) == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		len = (size_t)(strchr(env[i], '=') - env[i]);
		memcpy(p, env[i], len);
		p[len] = '\0';
		p += len + 1;
	}
	return 0;
}

/*
 * Fill the env entries of a CreateSessionRequest from "NAME=value" strings,
 * as exec_env_build() does for an ExecuteRequest (the generated entry types
 * differ). Return 0, or -1 with *err set.
 */
static int
session_env_build(const char *const *env, size_t n,
    Swerex__V1__CreateSessionRequest__EnvEntry **entriesp,
    Swerex__V1__CreateSessionRequest__EnvEntry ***ptrsp, char **namesp,
    struct swerex_error **err)
{
	Swerex__V1__CreateSessionRequest__EnvEntry *entries, **ptrs;
	char *p;
	size_t i;

	*entriesp = NULL;
	*ptrsp = NULL;
	if (client_env_names(env, n, namesp, err) != 0)
		return -1;
	if (n == 0)
		return 0;
	entries = calloc(n, sizeof *entries);
	ptrs = calloc(n, sizeof *ptrs);
	if (entries == NULL || ptrs == NULL) {
		free(entries);
		free(ptrs);
		free(*namesp);
		*namesp = NULL;
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	for (i = 0, p = *namesp; i < n; i++, p += strlen(p) + 1) {
		swerex__v1__create_session_request__env_entry__init(&entries[i]);
		entries[i].key = p;
		entries[i].value = strchr(env[i], '=') + 1;
		ptrs[i] = &entries[i];
	}
	*entriesp = entries;
	*ptrsp = ptrs;
	return 0;
}

/* Fill SessionLimits from the library's limits (0 = absent). */
static void
client_limits(const struct swerex_limits *l, Swerex__V1__SessionLimits *m)
{
	if (l->cpu_seconds > 0) {
		m->has_cpu_seconds_case =
		    SWEREX__V1__SESSION_LIMITS__HAS_CPU_SECONDS_CPU_SECONDS;
		m->cpu_seconds = l->cpu_seconds;
	}
	if (l->address_space > 0) {
		m->has_address_space_case =
		    SWEREX__V1__SESSION_LIMITS__HAS_ADDRESS_SPACE_ADDRESS_SPACE;
		m->address_space = l->address_space;
	}
	if (l->nproc > 0) {
		m->has_nproc_case = SWEREX__V1__SESSION_LIMITS__HAS_NPROC_NPROC;
		m->nproc = l->nproc;
	}
	if (l->file_size > 0) {
		m->has_file_size_case =
		    SWEREX__V1__SESSION_LIMITS__HAS_FILE_SIZE_FILE_SIZE;
		m->file_size = l->file_size;
	}
	if (l->memory > 0) {
		m->has_memory_case = SWEREX__V1__SESSION_LIMITS__HAS_MEMORY_MEMORY;
		m->memory = l->memory;
	}
	if (l->pids > 0) {
		m->has_pids_case = SWEREX__V1__SESSION_LIMITS__HAS_PIDS_PIDS;
		m->pids = l->pids;
	}
}

/* Build and queue a CreateSession request. */
static uint64_t
client_submit_create_session(struct swerex_client *c,
    const struct swerex_create_opts *opts, swerex_reply_cb cb, void *arg,
    struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__CreateSessionRequest body =
	    SWEREX__V1__CREATE_SESSION_REQUEST__INIT;
	Swerex__V1__CreateSessionRequest__EnvEntry *entries = NULL, **ptrs = NULL;
	char *names = NULL;
	uint64_t id;
	Swerex__V1__SessionLimits limits = SWEREX__V1__SESSION_LIMITS__INIT;

	if (opts != NULL) {
		if (strings_check(opts->startup_source,
		    opts->n_startup_source) != 0) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT,
			    "NULL entry in startup_source");
			return 0;
		}
		body.session = session_name(opts->session);
		body.n_startup_source = opts->n_startup_source;
		body.startup_source = (char **)opts->startup_source;
		if (opts->startup_timeout > 0) {
			body.has_startup_timeout_case =
			    SWEREX__V1__CREATE_SESSION_REQUEST__HAS_STARTUP_TIMEOUT_STARTUP_TIMEOUT;
			body.startup_timeout = opts->startup_timeout;
		}
		body.rows = opts->rows;
		body.cols = opts->cols;
		body.cwd = (char *)(opts->cwd != NULL ? opts->cwd : "");
		body.inherit_env = opts->inherit_env;
		if (session_env_build(opts->env, opts->n_env, &entries, &ptrs,
		    &names, err) != 0)
			return 0;
		body.n_env = opts->n_env;
		body.env = ptrs;
		if (opts->limits != NULL) {
			client_limits(opts->limits, &limits);
			body.limits = &limits;
		}
	}
	req.body_case = SWEREX__V1__REQUEST__BODY_CREATE_SESSION;
	req.create_session = &body;
	id = client_submit(c, &req, cb, arg, w, err);
	free(entries);
	free(ptrs);
	free(names);
	return id;
}

/* Build and queue a BashAction request. */
static uint64_t
client_submit_run(struct swerex_client *c, const struct swerex_run_opts *opts,
    bool stream, swerex_reply_cb cb, void *arg, struct client_wait *w,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__BashAction body = SWEREX__V1__BASH_ACTION__INIT;

	if (opts == NULL || (opts->command == NULL && !opts->wait)) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no command");
		return 0;
	}
	if (strings_check(opts->expect, opts->n_expect) != 0) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "NULL entry in expect");
		return 0;
	}
	if ((int)opts->check < SWEREX_CHECK_RAISE ||
	    (int)opts->check > SWEREX_CHECK_IGNORE) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "unknown check %d",
		    (int)opts->check);
		return 0;
	}
	body.command = (char *)(opts->command != NULL ? opts->command : "");
	body.session = session_name(opts->session);
	if (opts->has_timeout) {
		body.has_timeout_case =
		    SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT;
		body.timeout = opts->timeout;
	}
	body.is_interactive_command = opts->is_interactive_command;
	body.is_interactive_quit = opts->is_interactive_quit;
	body.check = (Swerex__V1__Check)opts->check;
	body.error_msg = (char *)(opts->error_msg != NULL ? opts->error_msg :
	    "");
	body.n_expect = opts->n_expect;
	body.expect = (char **)opts->expect;
	body.stream = stream;
	if (opts->max_output != 0) {
		body.has_max_output_case =
		    SWEREX__V1__BASH_ACTION__HAS_MAX_OUTPUT_MAX_OUTPUT;
		body.max_output = opts->max_output;
	}
	if (opts->no_output_timeout > 0) {
		body.has_no_output_timeout_case =
		    SWEREX__V1__BASH_ACTION__HAS_NO_OUTPUT_TIMEOUT_NO_OUTPUT_TIMEOUT;
		body.no_output_timeout = opts->no_output_timeout;
	}
	body.wait = opts->wait;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Build and queue a BashInterruptAction request. */
static uint64_t
client_submit_interrupt(struct swerex_client *c,
    const struct swerex_interrupt_opts *opts, swerex_reply_cb cb, void *arg,
    struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__BashInterruptAction body =
	    SWEREX__V1__BASH_INTERRUPT_ACTION__INIT;

	if (opts != NULL) {
		if (strings_check(opts->expect, opts->n_expect) != 0) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT,
			    "NULL entry in expect");
			return 0;
		}
		body.session = session_name(opts->session);
		if (opts->timeout > 0) {
			body.has_timeout_case =
			    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_TIMEOUT_TIMEOUT;
			body.timeout = opts->timeout;
		}
		if (opts->n_retry != 0 || opts->has_n_retry) {
			body.has_n_retry_case =
			    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_N_RETRY_N_RETRY;
			body.n_retry = opts->n_retry;
		}
		body.n_expect = opts->n_expect;
		body.expect = (char **)opts->expect;
	}
	req.body_case = SWEREX__V1__REQUEST__BODY_INTERRUPT;
	req.interrupt = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Build and queue a CloseSession request. */
static uint64_t
client_submit_close_session(struct swerex_client *c, const char *session,
    swerex_reply_cb cb, void *arg, struct client_wait *w,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__CloseSessionRequest body =
	    SWEREX__V1__CLOSE_SESSION_REQUEST__INIT;

	body.session = session_name(session);
	req.body_case = SWEREX__V1__REQUEST__BODY_CLOSE_SESSION;
	req.close_session = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Build and queue a ListSessions request. */
static uint64_t
client_submit_list_sessions(struct swerex_client *c, swerex_reply_cb cb,
    void *arg, struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__ListSessionsRequest body =
	    SWEREX__V1__LIST_SESSIONS_REQUEST__INIT;

	req.body_case = SWEREX__V1__REQUEST__BODY_LIST_SESSIONS;
	req.list_sessions = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/*
 * Fill the env entries of an ExecuteRequest from "NAME=value" strings. The
 * entries, their pointer array and one buffer holding every name are
 * allocated here; the values point into env. Return 0, or -1 with *err set.
 */
static int
exec_env_build(const char *const *env, size_t n,
    Swerex__V1__ExecuteRequest__EnvEntry **entriesp,
    Swerex__V1__ExecuteRequest__EnvEntry ***ptrsp, char **namesp,
    struct swerex_error **err)
{
	Swerex__V1__ExecuteRequest__EnvEntry *entries, **ptrs;
	char *p;
	size_t i;

	*entriesp = NULL;
	*ptrsp = NULL;
	if (client_env_names(env, n, namesp, err) != 0)
		return -1;
	if (n == 0)
		return 0;
	entries = calloc(n, sizeof *entries);
	ptrs = calloc(n, sizeof *ptrs);
	if (entries == NULL || ptrs == NULL) {
		free(entries);
		free(ptrs);
		free(*namesp);
		*namesp = NULL;
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	for (i = 0, p = *namesp; i < n; i++, p += strlen(p) + 1) {
		swerex__v1__execute_request__env_entry__init(&entries[i]);
		entries[i].key = p;
		entries[i].value = strchr(env[i], '=') + 1;
		ptrs[i] = &entries[i];
	}
	*entriesp = entries;
	*ptrsp = ptrs;
	return 0;
}

/* Build and queue an ExecuteRequest. */
static uint64_t
client_submit_execute(struct swerex_client *c,
    const struct swerex_exec_opts *opts, bool stream, swerex_reply_cb cb,
    void *arg, struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__ExecuteRequest body = SWEREX__V1__EXECUTE_REQUEST__INIT;
	Swerex__V1__ExecuteRequest__EnvEntry *entries, **ptrs;
	char *names;
	uint64_t id;

	if (opts == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no options");
		return 0;
	}
	if (opts->shell) {
		if (opts->command == NULL) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no command");
			return 0;
		}
		body.shell = 1;
		body.command = (char *)opts->command;
	} else {
		if (opts->argc == 0) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no argv");
			return 0;
		}
		if (strings_check(opts->argv, opts->argc) != 0) {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT,
			    "NULL entry in argv");
			return 0;
		}
		body.n_argv = opts->argc;
		body.argv = (char **)opts->argv;
	}
	if (opts->stdin_data == NULL && opts->stdin_len != 0) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no stdin_data");
		return 0;
	}
	if (exec_env_build(opts->env, opts->n_env, &entries, &ptrs, &names,
	    err) != 0)
		return 0;
	body.n_env = opts->n_env;
	body.env = ptrs;
	body.replace_env = opts->replace_env;
	body.cwd = (char *)(opts->cwd != NULL ? opts->cwd : "");
	body.check = opts->check;
	body.error_msg = (char *)(opts->error_msg != NULL ? opts->error_msg :
	    "");
	body.merge_output_streams = opts->merge_output_streams;
	body.stream = stream;
	if (opts->has_timeout) {
		body.has_timeout_case =
		    SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT;
		body.timeout = opts->timeout;
	}
	if (opts->stdin_data != NULL) {
		body.has_stdin_case =
		    SWEREX__V1__EXECUTE_REQUEST__HAS_STDIN_STDIN;
		body.stdin.data = (uint8_t *)opts->stdin_data;
		body.stdin.len = opts->stdin_len;
	}
	if (opts->max_output != 0) {
		body.has_max_output_case =
		    SWEREX__V1__EXECUTE_REQUEST__HAS_MAX_OUTPUT_MAX_OUTPUT;
		body.max_output = opts->max_output;
	}
	req.body_case = SWEREX__V1__REQUEST__BODY_EXECUTE;
	req.execute = &body;
	id = client_submit(c, &req, cb, arg, w, err);
	free(entries);
	free(ptrs);
	free(names);
	return id;
}

/* Build and queue a ReadFileRequest; length < 0 reads to the end. */
static uint64_t
client_submit_read_file(struct swerex_client *c, const char *path,
    uint64_t offset, int64_t length, struct client_wait *w,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__ReadFileRequest body = SWEREX__V1__READ_FILE_REQUEST__INIT;

	if (path == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no path");
		return 0;
	}
	body.path = (char *)path;
	body.offset = offset;
	if (length >= 0) {
		body.has_length_case =
		    SWEREX__V1__READ_FILE_REQUEST__HAS_LENGTH_LENGTH;
		body.length = (uint64_t)length;
	}
	req.body_case = SWEREX__V1__REQUEST__BODY_READ_FILE;
	req.read_file = &body;
	return client_submit(c, &req, NULL, NULL, w, err);
}

/* Build and queue a WriteFileRequest; mode < 0 leaves the mode unset. */
static uint64_t
client_submit_write_file(struct swerex_client *c, const char *path,
    const void *data, size_t len, int mode, bool create_parents,
    struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__WriteFileRequest body =
	    SWEREX__V1__WRITE_FILE_REQUEST__INIT;

	if (path == NULL || (data == NULL && len != 0)) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no path or data");
		return 0;
	}
	if (mode > 07777) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "bad mode 0%o", mode);
		return 0;
	}
	body.path = (char *)path;
	body.content.data = (uint8_t *)data;
	body.content.len = len;
	if (mode >= 0) {
		body.has_mode_case =
		    SWEREX__V1__WRITE_FILE_REQUEST__HAS_MODE_MODE;
		body.mode = (uint32_t)mode;
	}
	/* Always explicit: the daemon's default may not be ours. */
	body.has_create_parents_case =
	    SWEREX__V1__WRITE_FILE_REQUEST__HAS_CREATE_PARENTS_CREATE_PARENTS;
	body.create_parents = create_parents;
	req.body_case = SWEREX__V1__REQUEST__BODY_WRITE_FILE;
	req.write_file = &body;
	return client_submit(c, &req, NULL, NULL, w, err);
}

/* Check the client of a submit call; 0, or -1 with *err set. */
int
client_check(struct swerex_client *c, struct swerex_error **err)
{
	if (err != NULL)
		*err = NULL;
	if (c == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no client");
		return -1;
	}
	return 0;
}

/* Queue an IsAlive request. */
uint64_t
swerex_submit_is_alive(struct swerex_client *c, swerex_reply_cb cb, void *arg,
    struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_is_alive(c, cb, arg, NULL, err);
}

/* Queue a CreateSession request. */
uint64_t
swerex_submit_create_session(struct swerex_client *c,
    const struct swerex_create_opts *opts, swerex_reply_cb cb, void *arg,
    struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_create_session(c, opts, cb, arg, NULL, err);
}

/* Queue a BashAction request; stream asks for output chunks. */
uint64_t
swerex_submit_run(struct swerex_client *c, const struct swerex_run_opts *opts,
    bool stream, swerex_reply_cb cb, void *arg, struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_run(c, opts, stream, cb, arg, NULL, err);
}

/* Queue a BashInterruptAction request. */
uint64_t
swerex_submit_interrupt(struct swerex_client *c,
    const struct swerex_interrupt_opts *opts, swerex_reply_cb cb, void *arg,
    struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_interrupt(c, opts, cb, arg, NULL, err);
}

/* Queue a CloseSession request. */
uint64_t
swerex_submit_close_session(struct swerex_client *c, const char *session,
    swerex_reply_cb cb, void *arg, struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_close_session(c, session, cb, arg, NULL, err);
}

/* Queue a ListSessions request. */
uint64_t
swerex_submit_list_sessions(struct swerex_client *c, swerex_reply_cb cb,
    void *arg, struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_list_sessions(c, cb, arg, NULL, err);
}

/* Queue an ExecuteRequest; stream asks for labelled output chunks. */
uint64_t
swerex_submit_execute(struct swerex_client *c,
    const struct swerex_exec_opts *opts, bool stream, swerex_reply_cb cb,
    void *arg, struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_execute(c, opts, stream, cb, arg, NULL, err);
}

/* Ask whether the daemon is alive, blocking. */
int
swerex_is_alive(struct swerex_client *c, bool *alive, char **message,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (message != NULL)
		*message = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_is_alive(c, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_ALIVE, err) != 0)
		return -1;
	if (alive != NULL)
		*alive = w.is_alive;
	if (message != NULL)
		*message = w.message;
	else
		free(w.message);
	return 0;
}

/* Create a session, blocking; output is what its startup printed. */
int
swerex_create_session(struct swerex_client *c,
    const struct swerex_create_opts *opts, char **output, size_t *output_len,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (output != NULL)
		*output = NULL;
	if (output_len != NULL)
		*output_len = 0;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_create_session(c, opts, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_SESSION_CREATED, err) != 0)
		return -1;
	if (output_len != NULL)
		*output_len = w.len;
	if (output != NULL)
		*output = w.data;
	else
		free(w.data);
	return 0;
}

/* Run a command, blocking; with opts->on_chunk, output is streamed to it. */
int
swerex_run(struct swerex_client *c, const struct swerex_run_opts *opts,
    struct swerex_observation **obs, struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (obs != NULL)
		*obs = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	if (opts != NULL) {
		w.on_chunk = opts->on_chunk;
		w.chunk_arg = opts->chunk_arg;
	}
	id = client_submit_run(c, opts, w.on_chunk != NULL, NULL, NULL, &w,
	    err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_OBSERVATION, err) != 0)
		return -1;
	if (obs != NULL)
		*obs = w.observation;
	else
		swerex_observation_free(w.observation);
	return 0;
}

/* Interrupt the running command of a session, blocking. */
int
swerex_interrupt(struct swerex_client *c,
    const struct swerex_interrupt_opts *opts, struct swerex_observation **obs,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (obs != NULL)
		*obs = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_interrupt(c, opts, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_OBSERVATION, err) != 0)
		return -1;
	if (obs != NULL)
		*obs = w.observation;
	else
		swerex_observation_free(w.observation);
	return 0;
}

/* Close a session, blocking. */
int
swerex_close_session(struct swerex_client *c, const char *session,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_close_session(c, session, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	return wait_result(&w, SWEREX_REPLY_SESSION_CLOSED, err);
}

/* List the daemon's sessions, blocking. */
int
swerex_list_sessions(struct swerex_client *c,
    struct swerex_session_info **sessions, size_t *n,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (sessions != NULL)
		*sessions = NULL;
	if (n != NULL)
		*n = 0;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_list_sessions(c, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_SESSIONS, err) != 0)
		return -1;
	if (sessions != NULL && n != NULL) {
		*sessions = w.sessions;
		*n = w.n_sessions;
	} else
		swerex_sessions_free(w.sessions, w.n_sessions);
	return 0;
}

/* Run a one-off command, blocking; with opts->on_output, output is streamed. */
int
swerex_execute(struct swerex_client *c, const struct swerex_exec_opts *opts,
    struct swerex_exec_result **res, struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (res != NULL)
		*res = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	if (opts != NULL) {
		w.on_output = opts->on_output;
		w.output_arg = opts->output_arg;
	}
	id = client_submit_execute(c, opts, w.on_output != NULL, NULL, NULL,
	    &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_EXEC, err) != 0)
		return -1;
	if (res != NULL)
		*res = w.exec_result;
	else
		swerex_exec_result_free(w.exec_result);
	return 0;
}

/* Read a file or a range of it, blocking. */
int
swerex_read_file(struct swerex_client *c, const char *path, uint64_t offset,
    int64_t length, char **data, size_t *len, uint64_t *size,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (data != NULL)
		*data = NULL;
	if (len != NULL)
		*len = 0;
	if (size != NULL)
		*size = 0;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_read_file(c, path, offset, length, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, (enum swerex_reply_type)CLIENT_REPLY_READ_FILE,
	    err) != 0)
		return -1;
	if (len != NULL)
		*len = w.len;
	if (size != NULL)
		*size = w.size;
	if (data != NULL)
		*data = w.data;
	else
		free(w.data);
	return 0;
}

/* Replace a file atomically, blocking. */
int
swerex_write_file(struct swerex_client *c, const char *path, const void *data,
    size_t len, int mode, bool create_parents, struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_write_file(c, path, data, len, mode,
	    create_parents, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	return wait_result(&w, (enum swerex_reply_type)CLIENT_REPLY_WRITE_FILE,
	    err);
}

/* Build and queue a Resize request. */
static uint64_t
client_submit_resize(struct swerex_client *c, const char *session,
    unsigned rows, unsigned cols, swerex_reply_cb cb, void *arg,
    struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__ResizeRequest body = SWEREX__V1__RESIZE_REQUEST__INIT;

	body.session = session_name(session);
	body.rows = rows;
	body.cols = cols;
	req.body_case = SWEREX__V1__REQUEST__BODY_RESIZE;
	req.resize = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Queue a Resize request. */
uint64_t
swerex_submit_resize(struct swerex_client *c, const char *session,
    unsigned rows, unsigned cols, swerex_reply_cb cb, void *arg,
    struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_resize(c, session, rows, cols, cb, arg, NULL, err);
}

/* Set a session's terminal size, blocking. */
int
swerex_resize(struct swerex_client *c, const char *session, unsigned rows,
    unsigned cols, struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_resize(c, session, rows, cols, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	return wait_result(&w, SWEREX_REPLY_RESIZED, err);
}

/* Build and queue a SendInput request. */
static uint64_t
client_submit_send_input(struct swerex_client *c, const char *session,
    const void *data, size_t len, swerex_reply_cb cb, void *arg,
    struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__SendInputRequest body = SWEREX__V1__SEND_INPUT_REQUEST__INIT;

	if (data == NULL && len > 0) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no input");
		return 0;
	}
	body.session = session_name(session);
	body.data.data = (uint8_t *)data;
	body.data.len = len;
	req.body_case = SWEREX__V1__REQUEST__BODY_SEND_INPUT;
	req.send_input = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Queue a SendInput request. */
uint64_t
swerex_submit_send_input(struct swerex_client *c, const char *session,
    const void *data, size_t len, swerex_reply_cb cb, void *arg,
    struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_send_input(c, session, data, len, cb, arg, NULL,
	    err);
}

/* Send input to a session's terminal, blocking. */
int
swerex_send_input(struct swerex_client *c, const char *session,
    const void *data, size_t len, uint64_t *written,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (written != NULL)
		*written = 0;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_send_input(c, session, data, len, NULL, NULL, &w,
	    err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_INPUT_SENT, err) != 0)
		return -1;
	if (written != NULL)
		*written = w.bytes;
	return 0;
}

/* The caller's callbacks of an attachment, until it ends. */
struct client_watch {
	swerex_attach_chunk_cb on_chunk;
	swerex_attach_end_cb on_end;
	void *arg;
};

/* Route an attachment's replies to its chunk and end callbacks. */
static void
client_watch_reply(struct swerex_client *c, const struct swerex_reply *r,
    void *arg)
{
	struct client_watch *cw = arg;

	if (r->type == SWEREX_REPLY_CHUNK) {
		if (cw->on_chunk != NULL)
			cw->on_chunk(c, r->id, r->data, r->len, cw->arg);
		return;
	}
	if (cw->on_end != NULL) {
		if (r->type == SWEREX_REPLY_ATTACH_END)
			cw->on_end(c, r->id, r->message, NULL, cw->arg);
		else if (r->type == SWEREX_REPLY_ERROR)
			cw->on_end(c, r->id, NULL, r->error, cw->arg);
		else
			cw->on_end(c, r->id, NULL, &error_nomem, cw->arg);
	}
	free(cw);
}

/* Queue an AttachRequest; chunks and the end go to the callbacks. */
uint64_t
swerex_submit_attach(struct swerex_client *c, const char *session,
    const struct swerex_attach_opts *opts, swerex_attach_chunk_cb on_chunk,
    swerex_attach_end_cb on_end, void *arg, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__AttachRequest body = SWEREX__V1__ATTACH_REQUEST__INIT;
	struct client_watch *cw;
	uint64_t id;

	if (client_check(c, err) != 0)
		return 0;
	if ((cw = calloc(1, sizeof *cw)) == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return 0;
	}
	cw->on_chunk = on_chunk;
	cw->on_end = on_end;
	cw->arg = arg;
	body.session = session_name(session);
	if (opts != NULL) {
		body.read_write = opts->read_write;
		if (opts->has_scrollback) {
			body.has_scrollback_case =
			    SWEREX__V1__ATTACH_REQUEST__HAS_SCROLLBACK_SCROLLBACK;
			body.scrollback = opts->scrollback;
		}
	}
	req.body_case = SWEREX__V1__REQUEST__BODY_ATTACH;
	req.attach = &body;
	id = client_submit(c, &req, client_watch_reply, cw, NULL, err);
	if (id == 0)
		free(cw);
	return id;
}

/* Build and queue a DetachRequest. */
static uint64_t
client_submit_detach(struct swerex_client *c, uint64_t attach_id,
    swerex_reply_cb cb, void *arg, struct client_wait *w,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__DetachRequest body = SWEREX__V1__DETACH_REQUEST__INIT;

	body.attach_id = attach_id;
	req.body_case = SWEREX__V1__REQUEST__BODY_DETACH;
	req.detach = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Queue a DetachRequest. */
uint64_t
swerex_submit_detach(struct swerex_client *c, uint64_t attach_id,
    swerex_reply_cb cb, void *arg, struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return client_submit_detach(c, attach_id, cb, arg, NULL, err);
}

/* End an attachment, blocking. */
int
swerex_detach(struct swerex_client *c, uint64_t attach_id,
    struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = client_submit_detach(c, attach_id, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	return wait_result(&w, SWEREX_REPLY_DETACHED, err);
}
