/*
 * libswerex: the client side of the swerex protocol over a Unix socket.
 *
 * A client is a socket, an input and an output buffer, a persistent read
 * event, a write event that is added only while output is pending, and a
 * table of the requests still waiting for their final reply. Replies are
 * matched to requests by id; a blocking call is a request whose reply is
 * stored in a slot on the caller's stack instead of passed to a callback.
 *
 * Every loss of the connection (EOF, read or write error, bad frame, a
 * connection-level error from the daemon, swerex_client_free) goes through
 * client_lose(), which fails each pending request exactly once.
 *
 * swerex_client_free() must NOT be called from within a callback (reply
 * callback or on_chunk) of the same client: the client would be freed while
 * its own read callback is still running.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "swerex.h"
#include "wire.h"

#ifndef SWEREX_VERSION
#define SWEREX_VERSION "unknown"
#endif

/* Largest frame accepted from the daemon: an observation can be large. */
#define CLIENT_MAX_FRAME (256u * 1024 * 1024)
/* Bytes asked for per read, and reads per readable event. */
#define CLIENT_READ_SIZE (64 * 1024)
#define CLIENT_READS_PER_EVENT 16
/* Buffer chunks handed to one sendmsg(). */
#define CLIENT_IOV_MAX 16
/* Initial size of the pending table; a power of two. */
#define CLIENT_BUCKETS_MIN 64
/* How long the daemon has to answer the Hello, in milliseconds. */
#define CLIENT_HELLO_TIMEOUT 30000

#define CLIENT_LOST "connection to swerexd lost"

/*
 * Output queued beyond this during an upload makes the uploader run the loop
 * until less than half of it is left: memory stays bounded whatever the
 * size of the tree and however slowly the daemon reads.
 */
#define CLIENT_OUT_HIGH (4u * 1024 * 1024)
/* File data per transfer entry (the wire's limit), and entries per frame. */
#define TRANSFER_PIECE (1024u * 1024)
#define TRANSFER_BATCH 64

/*
 * Final replies of requests that only blocking calls make; they are never
 * handed to a callback, so they are not in the public enum.
 */
#define CLIENT_REPLY_READ_FILE 1000
#define CLIENT_REPLY_WRITE_FILE 1001
#define CLIENT_REPLY_UPLOAD 1002
#define CLIENT_REPLY_DOWNLOAD 1003

struct client_wait;

/* Handle a streamed download entry; -1 (with w->error set) abandons it. */
typedef int (*client_entry_cb)(struct client_wait *w,
    const Swerex__V1__TransferEntry *entry);

/* Where a blocking call waits for its final reply. */
struct client_wait {
	int done;
	enum swerex_reply_type type;
	struct swerex_error *error;
	struct swerex_observation *observation;
	char *data;
	size_t len;
	bool is_alive;
	char *message;
	struct swerex_session_info *sessions;
	size_t n_sessions;
	struct swerex_exec_result *exec_result;
	uint64_t size;		/* read: the file's size */
	uint64_t bytes;		/* write, upload, download: bytes done */
	uint64_t files;		/* upload, download: files done */
	bool is_directory;	/* download: the source was a directory */
	void (*on_chunk)(const char *, size_t, void *);
	void *chunk_arg;
	void (*on_output)(int, const char *, size_t, void *);
	void *output_arg;
	client_entry_cb on_entry;
	void *entry_arg;
};

/* A request waiting for its final reply. */
struct client_request {
	uint64_t id;
	swerex_reply_cb cb;
	void *arg;
	struct client_wait *wait;	/* blocking call: store here, no cb */
	struct client_request *hash_next;
	TAILQ_ENTRY(client_request) entry;
};
TAILQ_HEAD(client_requests, client_request);

struct swerex_client {
	struct event_base *base;
	int own_base;
	int fd;
	int dead;
	int in_callback;

	struct evbuffer *in;
	struct evbuffer *out;
	struct event *read_ev;
	struct event *write_ev;

	char *daemon_version;
	uint64_t max_frame;		/* daemon's limit, 0 if unknown */
	uint64_t next_id;

	/* Pending requests: hashed by id, and listed in the order sent. */
	struct client_request **buckets;
	size_t n_buckets;
	size_t n_pending;
	struct client_requests requests;
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
	const Swerex__V1__Response *resp;
};

/* Handed to callbacks when a reply cannot be converted for lack of memory. */
static const struct swerex_error error_nomem = {
	.kind = SWEREX_ERR_NO_MEMORY,
	.message = (char *)"out of memory",
};

static void client_read_cb(evutil_socket_t, short, void *);
static void client_write_cb(evutil_socket_t, short, void *);

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
static struct swerex_error * __attribute__((format(printf, 2, 3)))
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
static void
error_give(struct swerex_error **err, struct swerex_error *e)
{
	if (err != NULL)
		*err = e;
	else
		swerex_error_free(e);
}

/* Create an error and hand it to the caller. */
static void __attribute__((format(printf, 3, 4)))
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

/* Copy len bytes into a new NUL-terminated buffer. */
static char *
bytes_dup(const void *p, size_t len)
{
	char *s;

	if (len == SIZE_MAX)
		return NULL;
	s = malloc(len + 1);
	if (s == NULL)
		return NULL;
	if (len != 0)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Duplicate a string, reading NULL as "". */
static char *
str_dup(const char *s)
{
	return strdup(s != NULL ? s : "");
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

/* Convert a wire observation. */
static struct swerex_observation *
observation_from_pb(const Swerex__V1__BashObservation *pb)
{
	struct swerex_observation *o;

	o = calloc(1, sizeof *o);
	if (o == NULL)
		return NULL;
	o->output = bytes_dup(pb->output.data, pb->output.len);
	o->output_len = pb->output.len;
	o->failure_reason = str_dup(pb->failure_reason);
	o->expect_string = str_dup(pb->expect_string);
	if (o->output == NULL || o->failure_reason == NULL ||
	    o->expect_string == NULL)
		goto fail;
	o->has_exit_code = pb->has_exit_code_case ==
	    SWEREX__V1__BASH_OBSERVATION__HAS_EXIT_CODE_EXIT_CODE;
	o->exit_code = o->has_exit_code ? pb->exit_code : 0;
	o->truncated = pb->truncated;
	o->output_bytes = pb->output_bytes;
	o->carried_over = pb->carried_over;
	return o;

fail:
	swerex_observation_free(o);
	return NULL;
}

/* Convert a wire execute response; both buffers are NUL-terminated. */
static struct swerex_exec_result *
exec_result_from_pb(const Swerex__V1__ExecuteResponse *pb)
{
	struct swerex_exec_result *r;

	r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->stdout_data = bytes_dup(pb->stdout.data, pb->stdout.len);
	r->stdout_len = pb->stdout.len;
	r->stderr_data = bytes_dup(pb->stderr.data, pb->stderr.len);
	r->stderr_len = pb->stderr.len;
	r->failure_reason = str_dup(pb->failure_reason);
	if (r->stdout_data == NULL || r->stderr_data == NULL ||
	    r->failure_reason == NULL) {
		swerex_exec_result_free(r);
		return NULL;
	}
	r->has_exit_code = pb->has_exit_code_case ==
	    SWEREX__V1__EXECUTE_RESPONSE__HAS_EXIT_CODE_EXIT_CODE;
	r->exit_code = r->has_exit_code ? pb->exit_code : 0;
	r->signal = pb->signal;
	r->stdout_truncated = pb->stdout_truncated;
	r->stderr_truncated = pb->stderr_truncated;
	r->stdout_bytes = pb->stdout_bytes;
	r->stderr_bytes = pb->stderr_bytes;
	return r;
}

/* Convert a wire error; the kind number is kept even if unknown here. */
static struct swerex_error *
error_from_pb(const Swerex__V1__Error *pb)
{
	struct swerex_error *e;
	size_t i;

	e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	e->kind = (enum swerex_error_kind)pb->kind;
	e->message = str_dup(pb->message);
	if (e->message == NULL)
		goto fail;
	if (pb->n_extra != 0) {
		e->extra = calloc(pb->n_extra, sizeof *e->extra);
		if (e->extra == NULL)
			goto fail;
		e->n_extra = pb->n_extra;
		for (i = 0; i < pb->n_extra; i++) {
			e->extra[i].key = str_dup(pb->extra[i]->key);
			e->extra[i].value = str_dup(pb->extra[i]->value);
			if (e->extra[i].key == NULL || e->extra[i].value == NULL)
				goto fail;
		}
	}
	if (pb->observation != NULL) {
		e->observation = observation_from_pb(pb->observation);
		if (e->observation == NULL)
			goto fail;
	}
	if (pb->execute != NULL) {
		e->exec_result = exec_result_from_pb(pb->execute);
		if (e->exec_result == NULL)
			goto fail;
	}
	return e;

fail:
	swerex_error_free(e);
	return NULL;
}

/* Convert a wire session list; 0, or -1 if memory ran out. */
static int
sessions_from_pb(const Swerex__V1__ListSessionsResponse *pb,
    struct swerex_session_info **out, size_t *n)
{
	const Swerex__V1__SessionInfo *pi;
	struct swerex_session_info *s;
	size_t i;

	*out = NULL;
	*n = 0;
	if (pb->n_sessions == 0)
		return 0;
	s = calloc(pb->n_sessions, sizeof *s);
	if (s == NULL)
		return -1;
	for (i = 0; i < pb->n_sessions; i++) {
		pi = pb->sessions[i];
		s[i].name = str_dup(pi->name);
		s[i].last_command = str_dup(pi->last_command);
		if (s[i].name == NULL || s[i].last_command == NULL) {
			swerex_sessions_free(s, pb->n_sessions);
			return -1;
		}
		s[i].pid = pi->pid;
		s[i].state = (enum swerex_session_state)pi->state;
		s[i].created = pi->created;
		s[i].exit_status = pi->exit_status;
	}
	*out = s;
	*n = pb->n_sessions;
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
		cr->error = error_from_pb(resp->error);
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
		cr->observation = observation_from_pb(resp->observation);
		if (cr->observation == NULL)
			return -1;
		r->observation = cr->observation;
		break;
	case SWEREX__V1__RESPONSE__BODY_CLOSE_SESSION:
		r->type = SWEREX_REPLY_SESSION_CLOSED;
		break;
	case SWEREX__V1__RESPONSE__BODY_LIST_SESSIONS:
		r->type = SWEREX_REPLY_SESSIONS;
		if (sessions_from_pb(resp->list_sessions, &cr->sessions,
		    &cr->n_sessions) != 0)
			return -1;
		r->sessions = cr->sessions;
		r->n_sessions = cr->n_sessions;
		break;
	case SWEREX__V1__RESPONSE__BODY_EXECUTE:
		r->type = SWEREX_REPLY_EXEC;
		cr->exec_result = exec_result_from_pb(resp->execute);
		if (cr->exec_result == NULL)
			return -1;
		r->exec_result = cr->exec_result;
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
	memset(cr, 0, sizeof *cr);
}

/* Free whatever a blocking call's slot still holds. */
static void
wait_clear(struct client_wait *w)
{
	swerex_error_free(w->error);
	swerex_observation_free(w->observation);
	free(w->data);
	free(w->message);
	swerex_sessions_free(w->sessions, w->n_sessions);
	swerex_exec_result_free(w->exec_result);
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
		if ((w->data = bytes_dup(r->data, r->len)) == NULL)
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
	case CLIENT_REPLY_READ_FILE:
		rf = cr->resp->read_file;
		if ((w->data = bytes_dup(rf->content.data,
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
static int
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
	free(r);
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

/*
 * Take the client down: stop its events, close the socket and fail every
 * pending request, oldest first, with e. The one path for every loss.
 */
static void
client_lose(struct swerex_client *c, const struct swerex_error *e)
{
	struct client_request *r;
	struct client_reply cr;

	if (c->dead)
		return;
	c->dead = 1;
	if (c->read_ev != NULL)
		event_del(c->read_ev);
	if (c->write_ev != NULL)
		event_del(c->write_ev);
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->in != NULL)
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
	if (c->out != NULL)
		evbuffer_drain(c->out, evbuffer_get_length(c->out));

	while ((r = TAILQ_FIRST(&c->requests)) != NULL) {
		client_remove(c, r);
		memset(&cr, 0, sizeof cr);
		cr.reply.id = r->id;
		cr.reply.type = SWEREX_REPLY_ERROR;
		cr.reply.error = e;
		client_finish(c, r, &cr, 1);
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
		return;	/* abandoned by a failed blocking call */
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

/*
 * Read up to CLIENT_READ_SIZE bytes into the input buffer, as read(2) does.
 * Not evbuffer_read(), which reads at most 4096 bytes per call.
 */
static ssize_t
client_read_some(struct swerex_client *c)
{
	struct evbuffer_iovec v;
	ssize_t n;

	if (evbuffer_reserve_space(c->in, CLIENT_READ_SIZE, &v, 1) != 1) {
		errno = ENOMEM;
		return -1;
	}
	do
		n = read(c->fd, v.iov_base, CLIENT_READ_SIZE);
	while (n == -1 && errno == EINTR);
	if (n <= 0)
		return n;
	v.iov_len = (size_t)n;
	if (evbuffer_commit_space(c->in, &v, 1) != 0) {
		errno = ENOMEM;
		return -1;
	}
	return n;
}

/* Read what the socket has, in bounded chunks, and handle complete frames. */
static void
client_read_cb(evutil_socket_t fd, short events, void *arg)
{
	struct swerex_client *c = arg;
	int i, eof = 0, error = 0;
	ssize_t n;

	for (i = 0; i < CLIENT_READS_PER_EVENT; i++) {
		n = client_read_some(c);
		if (n > 0) {
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
		client_lose_with(c, SWEREX_ERR_DISCONNECTED, CLIENT_LOST ": %s",
		    strerror(error));
	else if (eof)
		client_lose_with(c, SWEREX_ERR_DISCONNECTED, CLIENT_LOST);
}

/*
 * Send as much buffered output as the socket takes. sendmsg(MSG_NOSIGNAL)
 * rather than evbuffer_write(), which uses writev() and would raise SIGPIPE
 * in the caller's process if the daemon is gone. Return 0, or -errno.
 */
static int
client_flush(struct swerex_client *c)
{
	struct evbuffer_iovec v[CLIENT_IOV_MAX];
	struct iovec iov[CLIENT_IOV_MAX];
	struct msghdr mh;
	ssize_t n;
	int i, nv;

	while (evbuffer_get_length(c->out) > 0) {
		nv = evbuffer_peek(c->out, -1, NULL, v, CLIENT_IOV_MAX);
		if (nv > CLIENT_IOV_MAX)
			nv = CLIENT_IOV_MAX;
		for (i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		memset(&mh, 0, sizeof mh);
		mh.msg_iov = iov;
		mh.msg_iovlen = nv;
		n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -errno;
		}
		evbuffer_drain(c->out, (size_t)n);
	}
	return 0;
}

/* Flush output when the socket is writable; stop watching once it is empty. */
static void
client_write_cb(evutil_socket_t fd, short events, void *arg)
{
	struct swerex_client *c = arg;
	int r;

	r = client_flush(c);
	if (r < 0) {
		client_lose_with(c, SWEREX_ERR_DISCONNECTED, CLIENT_LOST ": %s",
		    strerror(-r));
		return;
	}
	if (evbuffer_get_length(c->out) == 0)
		event_del(c->write_ev);
}

/*
 * Encode a request under the next id and queue it for sending. Return the
 * id, or 0 with *err set (then nothing was queued and the id is unused).
 */
static uint64_t
client_queue(struct swerex_client *c, Swerex__V1__Request *req,
    struct swerex_error **err)
{
	size_t len;
	int error;

	if (c->dead) {
		error_set(err, SWEREX_ERR_DISCONNECTED, CLIENT_LOST);
		return 0;
	}
	req->id = c->next_id;
	len = protobuf_c_message_get_packed_size(&req->base);
	if (c->max_frame != 0 && len > c->max_frame) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "request of %zu bytes is above swerexd's frame limit of "
		    "%llu bytes", len, (unsigned long long)c->max_frame);
		return 0;
	}
	error = wire_put(c->out, &req->base);
	if (error != 0) {
		error_set(err, error == -ENOMEM ? SWEREX_ERR_NO_MEMORY :
		    SWEREX_ERR_BAD_ARGUMENT, "cannot queue request: %s",
		    strerror(-error));
		return 0;
	}
	c->next_id++;
	/* Written from the loop, so a submit never runs callbacks. */
	event_add(c->write_ev, NULL);
	return req->id;
}

/*
 * Queue a request and remember who waits for its reply: cb and arg, or the
 * blocking call's slot w. Return its id, or 0 with *err set.
 */
static uint64_t
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
	r->id = client_queue(c, req, err);
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
static void
client_forget(struct swerex_client *c, uint64_t id)
{
	struct client_request *r;

	if (id == 0 || (r = client_find(c, id)) == NULL)
		return;
	client_remove(c, r);
	free(r);
}

/* Check that a blocking call may run on c; 0, or -1 with *err set. */
static int
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
static int
client_wait(struct swerex_client *c, uint64_t id, struct client_wait *w,
    struct swerex_error **err)
{
	struct client_request *r;

	/* Write now rather than from the loop: one loop pass less per call. */
	client_write_cb(c->fd, EV_WRITE, c);
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

/* Resolve url to a socket path; 0, or -1 with *err set. */
static int
client_resolve(const char *url, char **path, struct swerex_error **err)
{
	const char *env, *p;
	int n;

	*path = NULL;
	if (url == NULL || *url == '\0') {
		env = getenv("SWEREX_URL");
		url = env != NULL && *env != '\0' ? env : NULL;
	}
	if (url == NULL) {
		env = getenv("XDG_RUNTIME_DIR");
		if (env != NULL && *env != '\0')
			n = asprintf(path, "%s/swerexd.sock", env);
		else
			n = asprintf(path, "/tmp/swerexd-%lu/swerexd.sock",
			    (unsigned long)getuid());
		if (n == -1)
			*path = NULL;
	} else if (strncmp(url, "unix:", 5) == 0) {
		p = url + 5;
		if (strncmp(p, "///", 3) == 0)
			p += 2;	/* unix:///path */
		if (*p == '\0') {
			error_set(err, SWEREX_ERR_BAD_ARGUMENT,
			    "no socket path in URL \"%s\"", url);
			return -1;
		}
		*path = strdup(p);
	} else if (url[0] == '/')
		*path = strdup(url);
	else {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "unsupported URL scheme: \"%s\"", url);
		return -1;
	}
	if (*path == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	return 0;
}

/* Connect a non-blocking, close-on-exec socket to path; fd, or -1. */
static int
client_socket(const char *path, struct swerex_error **err)
{
	struct sockaddr_un sa;
	int fd, flags;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "socket path too long: %s", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		error_set(err, SWEREX_ERR_CONNECT, "cannot create a socket: %s",
		    strerror(errno));
		return -1;
	}
	/* Blocking connect: a full backlog waits instead of failing. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
		if (errno == EINTR)
			continue;
		error_set(err, SWEREX_ERR_CONNECT,
		    "cannot connect to swerexd at %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		error_set(err, SWEREX_ERR_CONNECT, "cannot set up socket: %s",
		    strerror(errno));
		goto fail;
	}
	return fd;

fail:
	close(fd);
	return -1;
}

/* Give the milliseconds left until deadline (CLOCK_MONOTONIC), at least 0. */
static int
client_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms > 0 ? (int)ms : 0;
}

/* Wait until the socket is ready for events or the deadline; 0 or -errno. */
static int
client_poll(int fd, short events, const struct timespec *deadline)
{
	struct pollfd pfd;
	int n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, client_ms_left(deadline));
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/*
 * Say Hello and wait for the answer, without running the event base: the
 * caller's other events do not run during connect, and connecting from one
 * of the base's callbacks works. Return 0, or -1 with *err set.
 */
static int
client_hello(struct swerex_client *c, const char *client_name,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	Swerex__V1__Response *resp = NULL;
	const Swerex__V1__HelloResponse *hr;
	ProtobufCMessage *msg;
	struct timespec deadline;
	ssize_t n;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += CLIENT_HELLO_TIMEOUT / 1000;

	hello.protocol_version = SWEREX_PROTOCOL_VERSION;
	hello.client_name = (char *)(client_name != NULL ? client_name :
	    "libswerex");
	hello.client_version = (char *)SWEREX_VERSION;
	req.id = c->next_id++;
	req.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	if (wire_put(c->out, &req.base) != 0) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}

	while (evbuffer_get_length(c->out) > 0) {
		r = client_flush(c);
		if (r == 0 && evbuffer_get_length(c->out) > 0)
			r = client_poll(c->fd, POLLOUT, &deadline);
		if (r < 0)
			goto io_fail;
	}
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
		r = client_poll(c->fd, POLLIN, &deadline);
		if (r < 0)
			goto io_fail;
		n = client_read_some(c);
		if (n == 0) {
			error_set(err, SWEREX_ERR_CONNECT,
			    "swerexd closed the connection during the handshake");
			return -1;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			r = -errno;
			goto io_fail;
		}
	}
	resp = (Swerex__V1__Response *)msg;

	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR) {
		error_give(err, error_from_pb(resp->error));
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
	c->daemon_version = str_dup(hr->daemon_version);
	if (c->daemon_version == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		goto fail;
	}
	c->max_frame = hr->max_frame;
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return 0;

io_fail:
	if (r == -ETIMEDOUT)
		error_set(err, SWEREX_ERR_CONNECT, "swerexd did not answer the "
		    "handshake within %d s", CLIENT_HELLO_TIMEOUT / 1000);
	else
		error_set(err, SWEREX_ERR_CONNECT,
		    "handshake with swerexd failed: %s", strerror(-r));
	return -1;
fail:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return -1;
}

/* Connect, shake hands and bind the client to base; 0 or -1. */
static int
client_connect(struct event_base *base, const char *url,
    const char *client_name, struct swerex_client **out,
    struct swerex_error **err)
{
	struct swerex_client *c;
	char *path;
	int fd;

	if (client_resolve(url, &path, err) != 0)
		return -1;
	fd = client_socket(path, err);
	free(path);
	if (fd == -1)
		return -1;

	c = calloc(1, sizeof *c);
	if (c == NULL) {
		close(fd);
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	c->fd = fd;
	c->base = base;
	c->next_id = 1;
	TAILQ_INIT(&c->requests);
	c->n_buckets = CLIENT_BUCKETS_MIN;
	c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->read_ev = event_new(base, fd, EV_READ|EV_PERSIST, client_read_cb, c);
	c->write_ev = event_new(base, fd, EV_WRITE|EV_PERSIST, client_write_cb,
	    c);
	if (c->buckets == NULL || c->in == NULL || c->out == NULL ||
	    c->read_ev == NULL || c->write_ev == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		goto fail;
	}
	if (client_hello(c, client_name, err) != 0)
		goto fail;
	if (event_add(c->read_ev, NULL) != 0) {
		error_set(err, SWEREX_ERR_INTERNAL, "cannot add read event");
		goto fail;
	}
	/* Anything that came in after the Hello answer is handled soon. */
	if (evbuffer_get_length(c->in) > 0)
		event_active(c->read_ev, EV_READ, 0);
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
	struct event_base *base;

	if (err != NULL)
		*err = NULL;
	if (out == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT, "no client pointer");
		return -1;
	}
	*out = NULL;
	base = event_base_new();
	if (base == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY,
		    "cannot create an event base");
		return -1;
	}
	if (client_connect(base, url, client_name, out, err) != 0) {
		event_base_free(base);
		return -1;
	}
	(*out)->own_base = 1;
	return 0;
}

/* Connect on the caller's event base; the handshake is done on return. */
int
swerex_connect_base(struct event_base *base, const char *url,
    const char *client_name, struct swerex_client **out,
    struct swerex_error **err)
{
	if (err != NULL)
		*err = NULL;
	if (out == NULL || base == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "no event base or client pointer");
		return -1;
	}
	*out = NULL;
	return client_connect(base, url, client_name, out, err);
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
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	free(c->buckets);
	free(c->daemon_version);
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

/* Resolve url as swerex_connect() does. */
char *
swerex_socket_path(const char *url)
{
	char *path;

	if (client_resolve(url, &path, NULL) != 0)
		return NULL;
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

/* Build and queue a CreateSession request. */
static uint64_t
client_submit_create_session(struct swerex_client *c,
    const struct swerex_create_opts *opts, swerex_reply_cb cb, void *arg,
    struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__CreateSessionRequest body =
	    SWEREX__V1__CREATE_SESSION_REQUEST__INIT;

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
	}
	req.body_case = SWEREX__V1__REQUEST__BODY_CREATE_SESSION;
	req.create_session = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Build and queue a BashAction request. */
static uint64_t
client_submit_run(struct swerex_client *c, const struct swerex_run_opts *opts,
    bool stream, swerex_reply_cb cb, void *arg, struct client_wait *w,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__BashAction body = SWEREX__V1__BASH_ACTION__INIT;

	if (opts == NULL || opts->command == NULL) {
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
	body.command = (char *)opts->command;
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
	const char *eq;
	char *names, *p;
	size_t i, size = 0;

	*entriesp = NULL;
	*ptrsp = NULL;
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
	entries = calloc(n, sizeof *entries);
	ptrs = calloc(n, sizeof *ptrs);
	names = malloc(size);
	if (entries == NULL || ptrs == NULL || names == NULL) {
		free(entries);
		free(ptrs);
		free(names);
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	p = names;
	for (i = 0; i < n; i++) {
		eq = strchr(env[i], '=');
		swerex__v1__execute_request__env_entry__init(&entries[i]);
		memcpy(p, env[i], (size_t)(eq - env[i]));
		p[eq - env[i]] = '\0';
		entries[i].key = p;
		entries[i].value = (char *)(eq + 1);
		ptrs[i] = &entries[i];
		p += (eq - env[i]) + 1;
	}
	*entriesp = entries;
	*ptrsp = ptrs;
	*namesp = names;
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
static int
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

/*
 * Transfers. An upload walks the local tree (never following a symlink in
 * it) and streams it as UploadData frames of a few entries each, files in
 * pieces read with read(): one piece and one batch of entries are in memory
 * at a time, and the output buffer is kept below CLIENT_OUT_HIGH. A
 * download writes each entry as it arrives into a staging directory beside
 * the destination and moves the result into place at the end; a download
 * that fails leaves nothing behind.
 */

/* Open flags of a directory that must not be reached through a symlink. */
#define TRANSFER_DIR_FLAGS (O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC)

/* Map an errno value to the kind swerexd gives the same failure. */
static enum swerex_error_kind
errno_kind(int error)
{
	switch (error) {
	case ENOENT:
		return SWEREX_ERR_FILE_NOT_FOUND;
	case EISDIR:
		return SWEREX_ERR_IS_A_DIRECTORY;
	case ENOTDIR:
		return SWEREX_ERR_NOT_A_DIRECTORY;
	case EACCES:
	case EPERM:
	case EROFS:
		return SWEREX_ERR_PERMISSION_DENIED;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return SWEREX_ERR_NO_SPACE;
	case ENOMEM:
		return SWEREX_ERR_NO_MEMORY;
	default:
		return SWEREX_ERR_FILE_ERROR;
	}
}

/* Add a key and a value to an error's details; 0, or -1 if memory ran out. */
static int
error_add_extra(struct swerex_error *e, const char *key, const char *value)
{
	struct swerex_kv *extra;

	extra = reallocarray(e->extra, e->n_extra + 1, sizeof *extra);
	if (extra == NULL)
		return -1;
	e->extra = extra;
	extra[e->n_extra].key = strdup(key);
	extra[e->n_extra].value = strdup(value);
	if (extra[e->n_extra].key == NULL || extra[e->n_extra].value == NULL) {
		free(extra[e->n_extra].key);
		free(extra[e->n_extra].value);
		return -1;
	}
	e->n_extra++;
	return 0;
}

/*
 * Create the error of a failed local file operation, worded as swerexd
 * words its own: "what: path: strerror", with extra path, errno (its name)
 * and strerror. Details that do not fit in memory are left out.
 */
static struct swerex_error *
error_errno(int error, const char *what, const char *path)
{
	struct swerex_error *e;
	const char *name;

	e = error_new(errno_kind(error), "%s: %s: %s", what, path,
	    strerror(error));
	if (e == NULL)
		return NULL;
	name = strerrorname_np(error);
	if (error_add_extra(e, "path", path) == 0 &&
	    error_add_extra(e, "errno", name != NULL ? name : "unknown") == 0)
		error_add_extra(e, "strerror", strerror(error));
	return e;
}

/* Join a directory and a name with "/"; an empty directory gives the name. */
static char *
path_join(const char *dir, const char *name)
{
	char *p;

	if (*dir == '\0')
		return strdup(name);
	if (*name == '\0')
		return strdup(dir);
	if (asprintf(&p, "%s/%s", dir, name) == -1)
		return NULL;
	return p;
}

/* Compare two names for qsort(). */
static int
names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Free a list of names. */
static void
names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Read the names in directory path, sorted, without "." and "..". A symlink
 * at path is followed only if follow is set. Return 0, or an errno value.
 */
static int
names_read(const char *path, bool follow, char ***namesp, size_t *np)
{
	struct dirent *de;
	DIR *dir;
	char **names = NULL, **grown;
	size_t n = 0, size = 0;
	int fd, error = 0;

	*namesp = NULL;
	*np = 0;
	fd = open(path, follow ? TRANSFER_DIR_FLAGS & ~O_NOFOLLOW :
	    TRANSFER_DIR_FLAGS);
	if (fd == -1)
		return errno;
	if ((dir = fdopendir(fd)) == NULL) {
		error = errno;
		close(fd);
		return error;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(dir)) == NULL) {
			error = errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == size) {
			size = size == 0 ? 16 : size * 2;
			grown = reallocarray(names, size, sizeof *names);
			if (grown == NULL) {
				error = ENOMEM;
				break;
			}
			names = grown;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			error = ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	if (error != 0) {
		names_free(names, n);
		return error;
	}
	if (n != 0)
		qsort(names, n, sizeof *names, names_cmp);
	*namesp = names;
	*np = n;
	return 0;
}

/* Remove path and all below it, never following symlinks; best effort. */
static void
rmtree(const char *path)
{
	struct stat st;
	char **names, *child;
	size_t n, i;

	if (lstat(path, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	if (names_read(path, false, &names, &n) == 0) {
		for (i = 0; i < n; i++) {
			if ((child = path_join(path, names[i])) != NULL)
				rmtree(child);
			free(child);
		}
		names_free(names, n);
	}
	rmdir(path);
}

/* Give the file bytes per entry: 1 MiB, less if the daemon's frames are. */
static size_t
transfer_piece(const struct swerex_client *c)
{
	if (c->max_frame != 0 && c->max_frame / 4 < TRANSFER_PIECE)
		return c->max_frame / 4 > 0 ? (size_t)(c->max_frame / 4) : 1;
	return TRANSFER_PIECE;
}

/* Report progress, if asked; blocking calls on c are refused meanwhile. */
static void
transfer_progress(struct swerex_client *c, swerex_progress_cb cb, void *arg,
    uint64_t bytes, uint64_t files)
{
	if (cb == NULL)
		return;
	c->in_callback++;
	cb(bytes, files, arg);
	c->in_callback--;
}

/* Read up to len bytes, fewer only at end of file; the count, or -1. */
static ssize_t
read_full(int fd, char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, buf + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* An upload in progress, with the batch of entries for the next frame. */
struct upload {
	struct swerex_client *c;
	struct client_wait *w;		/* the UploadBegin's slot */
	uint64_t id;			/* the UploadBegin's: the transfer's */
	size_t piece;			/* file bytes per entry */
	char *buf;			/* a piece as read */
	char link[PATH_MAX];		/* a symlink's target as read */
	Swerex__V1__TransferEntry entries[TRANSFER_BATCH];
	Swerex__V1__TransferEntry *ptrs[TRANSFER_BATCH];
	size_t n;
	size_t batch_bytes;		/* about their encoded size */
	uint64_t bytes;
	uint64_t files;
	swerex_progress_cb progress;
	void *progress_arg;
	struct swerex_error *error;	/* why the upload stopped here */
};

/* Free the entries of the batch. */
static void
upload_clear(struct upload *u)
{
	Swerex__V1__TransferEntry *e;
	size_t i;

	for (i = 0; i < u->n; i++) {
		e = &u->entries[i];
		free(e->path);
		if (e->type == SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_SYMLINK)
			free(e->link_target);
		free(e->data.data);
	}
	u->n = 0;
	u->batch_bytes = 0;
}

/*
 * Let the upload make progress: write what the socket takes and handle what
 * came in, without waiting; but while more than CLIENT_OUT_HIGH is queued,
 * wait until half of it is sent. Return 0, or -1 when the transfer's final
 * reply came (it is in u->w) or the loop cannot run (u->error).
 */
static int
upload_pump(struct upload *u)
{
	struct swerex_client *c = u->c;
	int flags = EVLOOP_NONBLOCK;

	while (!u->w->done) {
		if (event_base_loop(c->base, flags) == -1) {
			error_set(&u->error, SWEREX_ERR_INTERNAL, "cannot run "
			    "the event base (blocking call from inside one "
			    "of its callbacks?)");
			return -1;
		}
		if (evbuffer_get_length(c->out) <= (flags == EVLOOP_NONBLOCK ?
		    CLIENT_OUT_HIGH : CLIENT_OUT_HIGH / 2))
			break;
		flags = EVLOOP_ONCE;
	}
	return u->w->done ? -1 : 0;
}

/*
 * Send the batch as one UploadData frame. Data frames get no reply: each
 * has an id of its own, but nothing waits for it in the pending table.
 * Return 0, or -1 (see upload_pump()).
 */
static int
upload_flush(struct upload *u)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__UploadData body = SWEREX__V1__UPLOAD_DATA__INIT;
	uint64_t id;

	if (u->n != 0) {
		body.upload_id = u->id;
		body.n_entries = u->n;
		body.entries = u->ptrs;
		req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_DATA;
		req.upload_data = &body;
		id = client_queue(u->c, &req, &u->error);
		upload_clear(u);
		if (id == 0)
			return -1;
	}
	return upload_pump(u);
}

/*
 * Add an entry to the batch, sending the batch first if the entry would not
 * fit. data (len bytes, from malloc, or NULL) is taken over. 0, or -1.
 */
static int
upload_add(struct upload *u, const char *path, Swerex__V1__EntryType type,
    uint32_t mode, const char *target, uint8_t *data, size_t len, bool last)
{
	Swerex__V1__TransferEntry *e;
	size_t cost;

	cost = strlen(path) + (target != NULL ? strlen(target) : 0) + len + 32;
	if (u->n == TRANSFER_BATCH ||
	    (u->n != 0 && u->batch_bytes + cost > u->piece)) {
		if (upload_flush(u) != 0) {
			free(data);
			return -1;
		}
	}
	e = &u->entries[u->n];
	swerex__v1__transfer_entry__init(e);
	e->path = strdup(path);
	if (target != NULL)
		e->link_target = strdup(target);
	if (e->path == NULL || e->link_target == NULL) {
		free(e->path);
		if (target != NULL)
			free(e->link_target);
		free(data);
		error_set(&u->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	e->type = type;
	e->mode = mode;
	e->data.data = data;
	e->data.len = len;
	e->last = last;
	u->ptrs[u->n++] = e;
	u->batch_bytes += cost;
	return 0;
}

/*
 * Send a regular file as entries of at most one piece each: the first
 * carries the mode, the last has last set; an empty file is one entry. One
 * byte is read ahead after a full piece to know whether it was the last,
 * whatever st_size said.
 */
static int
upload_file(struct upload *u, const char *path, const char *rel)
{
	struct stat st;
	uint8_t *data;
	ssize_t n;
	size_t have;
	bool first = true, last = false;
	int fd, ahead = -1;
	char byte;

	fd = open(path, O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC);
	if (fd == -1) {
		u->error = error_errno(errno, "cannot open", path);
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		u->error = error_errno(errno, "cannot stat", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		error_set(&u->error, SWEREX_ERR_BAD_ARGUMENT,
		    "%s: not a regular file", path);
		goto fail;
	}
	while (!last) {
		have = 0;
		if (ahead != -1) {
			u->buf[have++] = (char)ahead;
			ahead = -1;
		}
		if ((n = read_full(fd, u->buf + have, u->piece - have)) == -1)
			goto read_fail;
		have += (size_t)n;
		if (have < u->piece)
			last = true;
		else {
			if ((n = read_full(fd, &byte, 1)) == -1)
				goto read_fail;
			if (n == 0)
				last = true;
			else
				ahead = (unsigned char)byte;
		}
		data = NULL;
		if (have != 0) {
			if ((data = malloc(have)) == NULL) {
				error_set(&u->error, SWEREX_ERR_NO_MEMORY,
				    "out of memory");
				goto fail;
			}
			memcpy(data, u->buf, have);
		}
		if (upload_add(u, rel, SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE,
		    first ? (uint32_t)(st.st_mode & 07777) : 0, NULL, data,
		    have, last) != 0)
			goto fail;
		first = false;
		u->bytes += have;
		if (last)
			u->files++;
		transfer_progress(u->c, u->progress, u->progress_arg, u->bytes,
		    u->files);
	}
	close(fd);
	return 0;

read_fail:
	u->error = error_errno(errno, "cannot read", path);
fail:
	close(fd);
	return -1;
}

/*
 * Send the entries below a directory, each directory before its contents
 * so that empty ones arrive too. Symlinks are sent as symlinks (and count
 * as files, as the daemon counts them); sockets, fifos and devices cannot
 * be sent and are skipped.
 */
static int
upload_dir(struct upload *u, const char *path, const char *rel)
{
	struct stat st;
	char **names, *cpath, *crel;
	size_t n, i;
	ssize_t len;
	bool follow;
	int error, rc = 0;

	/* Only the source itself may be a symlink, followed as stat() did. */
	follow = *rel == '\0';
	if ((error = names_read(path, follow, &names, &n)) != 0) {
		u->error = error_errno(error, "cannot read directory", path);
		return -1;
	}
	for (i = 0; i < n && rc == 0; i++) {
		cpath = path_join(path, names[i]);
		crel = path_join(rel, names[i]);
		if (cpath == NULL || crel == NULL) {
			error_set(&u->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			rc = -1;
		} else if (lstat(cpath, &st) != 0) {
			u->error = error_errno(errno, "cannot stat", cpath);
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = upload_add(u, crel,
			    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_DIRECTORY,
			    st.st_mode & 07777, NULL, NULL, 0, false);
			if (rc == 0)
				rc = upload_dir(u, cpath, crel);
		} else if (S_ISLNK(st.st_mode)) {
			len = readlink(cpath, u->link, sizeof u->link);
			if (len == -1 || (size_t)len == sizeof u->link) {
				u->error = error_errno(len == -1 ? errno :
				    ENAMETOOLONG, "cannot read link", cpath);
				rc = -1;
			} else {
				u->link[len] = '\0';
				rc = upload_add(u, crel,
				    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_SYMLINK,
				    st.st_mode & 07777, u->link, NULL, 0, true);
				u->files++;
			}
		} else if (S_ISREG(st.st_mode))
			rc = upload_file(u, cpath, crel);
		free(cpath);
		free(crel);
	}
	names_free(names, n);
	return rc;
}

/*
 * Give up an upload from this side: tell the daemon to discard it and
 * forget its UploadBegin, whose reply (if any) is then dropped.
 */
static void
upload_abort(struct upload *u)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__UploadEnd end = SWEREX__V1__UPLOAD_END__INIT;
	struct swerex_client *c = u->c;

	client_forget(c, u->id);
	if (c->dead)
		return;
	end.upload_id = u->id;
	end.abort = 1;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
	req.upload_end = &end;
	if (client_queue(c, &req, NULL) != 0)
		client_write_cb(c->fd, EV_WRITE, c);
}

/*
 * Wait for the final reply of the UploadBegin, or an error answering the
 * UploadEnd (whose reply the contract does not promise). 0, or -1.
 */
static int
upload_wait(struct upload *u, struct client_wait *w_end)
{
	struct swerex_client *c = u->c;

	client_write_cb(c->fd, EV_WRITE, c);
	while (!u->w->done &&
	    !(w_end->done && w_end->type == SWEREX_REPLY_ERROR)) {
		if (event_base_loop(c->base, EVLOOP_ONCE) != 0) {
			error_set(&u->error, SWEREX_ERR_INTERNAL, "cannot run "
			    "the event base (blocking call from inside one "
			    "of its callbacks?)");
			return -1;
		}
	}
	return 0;
}

/* Copy a local file or directory tree to remote_dst, blocking. */
int
swerex_upload(struct swerex_client *c, const char *local_src,
    const char *remote_dst, swerex_progress_cb progress, void *progress_arg,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__UploadBegin begin = SWEREX__V1__UPLOAD_BEGIN__INIT;
	Swerex__V1__UploadEnd end = SWEREX__V1__UPLOAD_END__INIT;
	struct client_wait w, w_end;
	struct upload *u;
	struct stat st;
	uint64_t end_id = 0;
	int rc;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	if (local_src == NULL || remote_dst == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "no source or destination");
		return -1;
	}
	/* The source itself is followed if it is a symlink, as cp does. */
	if (stat(local_src, &st) != 0) {
		error_give(err, error_errno(errno, "cannot upload", local_src));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "%s: not a regular file or a directory", local_src);
		return -1;
	}
	if ((u = calloc(1, sizeof *u)) == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	u->c = c;
	u->w = &w;
	u->piece = transfer_piece(c);
	u->progress = progress;
	u->progress_arg = progress_arg;
	if ((u->buf = malloc(u->piece)) == NULL) {
		free(u);
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	memset(&w, 0, sizeof w);
	memset(&w_end, 0, sizeof w_end);

	begin.target_path = (char *)remote_dst;
	begin.is_directory = S_ISDIR(st.st_mode);
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN;
	req.upload_begin = &begin;
	if ((u->id = client_submit(c, &req, NULL, NULL, &w, err)) == 0) {
		rc = -1;
		goto out;
	}

	/* A directory's own mode goes first, as "" (downloads do the same). */
	if (S_ISDIR(st.st_mode)) {
		rc = upload_add(u, "",
		    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_DIRECTORY,
		    st.st_mode & 07777, NULL, NULL, 0, false);
		if (rc == 0)
			rc = upload_dir(u, local_src, "");
	} else
		rc = upload_file(u, local_src, "");
	if (rc == 0)
		rc = upload_flush(u);
	if (rc == 0) {
		end.upload_id = u->id;
		req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
		req.upload_end = &end;
		end_id = client_submit(c, &req, NULL, NULL, &w_end, &u->error);
		if (end_id != 0)
			upload_wait(u, &w_end);
	}

	if (w.done) {
		/* The transfer's final reply: success only after the end. */
		rc = wait_result(&w,
		    (enum swerex_reply_type)CLIENT_REPLY_UPLOAD, err);
		if (rc == 0 && end_id == 0) {
			error_set(err, SWEREX_ERR_PROTOCOL, "swerexd finished "
			    "the upload before it was sent");
			rc = -1;
		}
	} else if (w_end.done && w_end.type == SWEREX_REPLY_ERROR) {
		client_forget(c, u->id);
		rc = wait_result(&w_end, SWEREX_REPLY_ERROR, err);
	} else {
		upload_abort(u);
		error_give(err, u->error);
		u->error = NULL;
		rc = -1;
	}
	client_forget(c, end_id);
	wait_clear(&w_end);
out:
	swerex_error_free(u->error);
	upload_clear(u);
	free(u->buf);
	free(u);
	return rc;
}

/* A directory whose mode is set once the download is in place. */
struct download_dir {
	char *path;			/* the entry's path */
	mode_t mode;
};

/* A download being written into its staging directory. */
struct download {
	struct swerex_client *c;
	const char *dst;
	char *stage;			/* ".<name>.swx-dl-XXXXXX" beside dst */
	int stage_fd;
	bool root_made;			/* stage/root, the download, exists */
	bool root_is_dir;
	int fd;				/* the file being written, or -1 */
	char *file;			/* its entry path */
	mode_t file_mode;
	struct download_dir *dirs;
	size_t n_dirs;
	uint64_t bytes;
	uint64_t files;
	swerex_progress_cb progress;
	void *progress_arg;
	struct swerex_error *error;	/* why the download stopped here */
};

/*
 * Check an entry's path: "" (the root) or relative components that are not
 * empty, "." or "..". Whatever the daemon sends stays below the root.
 */
static bool
download_path_ok(const char *path)
{
	const char *p, *slash;
	size_t len;

	if (*path == '\0')
		return true;
	if (*path == '/' || strlen(path) >= PATH_MAX / 2)
		return false;
	for (p = path;; p = slash + 1) {
		slash = strchr(p, '/');
		len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (slash == NULL)
			return true;
	}
}

/* Record a failed local operation on an entry, naming its local path. */
static void
download_fail(struct download *d, int error, const char *what,
    const char *path)
{
	char *local;

	local = path_join(d->dst, path);
	d->error = error_errno(error, what, local != NULL ? local : d->dst);
	free(local);
}

/* Make stage/root a directory, unless it is one already. */
static int
download_root_dir(struct download *d)
{
	if (d->root_made) {
		if (d->root_is_dir)
			return 0;
		d->error = error_new(SWEREX_ERR_PROTOCOL, "swerexd sent "
		    "entries below a download that is not a directory");
		return -1;
	}
	if (mkdirat(d->stage_fd, "root", 0777) != 0) {
		d->error = error_errno(errno, "cannot create", d->stage);
		return -1;
	}
	d->root_made = d->root_is_dir = true;
	return 0;
}

/*
 * Open the directory an entry goes into, creating missing directories on
 * the way, and point *name at the entry's last component (in *copy, to be
 * freed). Every directory is opened with O_NOFOLLOW: no entry reaches
 * through a symlink, sent earlier or not, out of the staging directory.
 */
static int
download_parent(struct download *d, const char *path, int *dfdp,
    char **copyp, const char **namep)
{
	char *copy, *p, *slash;
	int dfd, nfd;

	*dfdp = -1;
	*copyp = NULL;
	if (*path == '\0') {
		if (d->root_made) {
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent the root of a download twice");
			return -1;
		}
		if ((*dfdp = fcntl(d->stage_fd, F_DUPFD_CLOEXEC, 0)) == -1) {
			download_fail(d, errno, "cannot open", "");
			return -1;
		}
		*namep = "root";
		return 0;
	}
	if (download_root_dir(d) != 0)
		return -1;
	if ((copy = strdup(path)) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	if ((dfd = openat(d->stage_fd, "root", TRANSFER_DIR_FLAGS)) == -1) {
		download_fail(d, errno, "cannot open", "");
		free(copy);
		return -1;
	}
	for (p = copy; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		*slash = '\0';
		nfd = openat(dfd, p, TRANSFER_DIR_FLAGS);
		if (nfd == -1 && errno == ENOENT) {
			if (mkdirat(dfd, p, 0777) != 0 && errno != EEXIST) {
				download_fail(d, errno, "cannot create", path);
				goto fail;
			}
			nfd = openat(dfd, p, TRANSFER_DIR_FLAGS);
		}
		if (nfd == -1) {
			if (errno == ELOOP || errno == ENOTDIR)
				d->error = error_new(SWEREX_ERR_PROTOCOL,
				    "refusing entry \"%s\" from swerexd: it is "
				    "below a symlink or a file", path);
			else
				download_fail(d, errno, "cannot open", path);
			goto fail;
		}
		close(dfd);
		dfd = nfd;
	}
	*dfdp = dfd;
	*copyp = copy;
	*namep = p;
	return 0;

fail:
	close(dfd);
	free(copy);
	return -1;
}

/*
 * Create a directory entry (or find it made already as a parent). Its mode
 * is set now with the owner's rwx added so its contents can be written;
 * a mode without them is set again once the download is in place. Mode 0
 * is the default: 0777 less the umask.
 */
static int
download_mkdir(struct download *d, const char *path, mode_t mode)
{
	struct download_dir *dirs;
	struct stat st;
	const char *name;
	char *copy;
	int dfd, rc = -1;

	if (*path == '\0' && d->root_made && d->root_is_dir) {
		/* Made as the parent of entries that came first. */
		if ((dfd = fcntl(d->stage_fd, F_DUPFD_CLOEXEC, 0)) == -1) {
			download_fail(d, errno, "cannot open", "");
			return -1;
		}
		name = "root";
		copy = NULL;
	} else if (download_parent(d, path, &dfd, &copy, &name) != 0)
		return -1;
	else if (mkdirat(dfd, name, mode != 0 ? 0700 : 0777) != 0) {
		if (errno != EEXIST) {
			download_fail(d, errno, "cannot create", path);
			goto out;
		}
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISDIR(st.st_mode)) {
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent \"%s\" twice", path);
			goto out;
		}
	}
	if (*path == '\0')
		d->root_made = d->root_is_dir = true;
	mode &= 07777;
	if (mode == 0) {
		rc = 0;
		goto out;
	}
	if (fchmodat(dfd, name, mode | 0700, 0) != 0) {
		download_fail(d, errno, "cannot set the mode of", path);
		goto out;
	}
	if ((mode & 0700) != 0700) {
		dirs = reallocarray(d->dirs, d->n_dirs + 1, sizeof *dirs);
		if (dirs == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			goto out;
		}
		d->dirs = dirs;
		if ((dirs[d->n_dirs].path = strdup(path)) == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			goto out;
		}
		dirs[d->n_dirs++].mode = mode;
	}
	rc = 0;
out:
	close(dfd);
	free(copy);
	return rc;
}

/* Create a symlink entry. */
static int
download_symlink(struct download *d, const char *path, const char *target)
{
	const char *name;
	char *copy;
	int dfd, rc = 0;

	if (download_parent(d, path, &dfd, &copy, &name) != 0)
		return -1;
	if (symlinkat(target != NULL ? target : "", dfd, name) != 0) {
		download_fail(d, errno, "cannot create symlink", path);
		rc = -1;
	} else {
		d->files++;
		if (*path == '\0') {
			d->root_made = true;
			d->root_is_dir = false;
		}
	}
	close(dfd);
	free(copy);
	return rc;
}

/* Create the file of an entry and keep it open for its pieces. */
static int
download_open(struct download *d, const char *path, mode_t mode)
{
	const char *name;
	char *copy;
	int dfd;

	if (download_parent(d, path, &dfd, &copy, &name) != 0)
		return -1;
	d->fd = openat(dfd, name, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC,
	    0600);
	if (d->fd == -1)
		download_fail(d, errno, "cannot create", path);
	close(dfd);
	free(copy);
	if (d->fd == -1)
		return -1;
	if ((d->file = strdup(path)) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	/* Mode 0 is the default, as the wire says. */
	d->file_mode = mode != 0 ? mode & 07777 : 0644;
	if (*path == '\0') {
		d->root_made = true;
		d->root_is_dir = false;
	}
	return 0;
}

/* Append a piece to the open file; close it with its mode after the last. */
static int
download_write(struct download *d, const uint8_t *data, size_t len,
    bool last)
{
	ssize_t n;
	size_t done = 0;
	int fd;

	while (done < len) {
		n = write(d->fd, data + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			download_fail(d, errno, "cannot write", d->file);
			return -1;
		}
		done += (size_t)n;
	}
	d->bytes += len;
	if (!last)
		return 0;
	fd = d->fd;
	d->fd = -1;
	if (fchmod(fd, d->file_mode) != 0) {
		download_fail(d, errno, "cannot set the mode of", d->file);
		close(fd);
		return -1;
	}
	if (close(fd) != 0) {
		download_fail(d, errno, "cannot write", d->file);
		return -1;
	}
	free(d->file);
	d->file = NULL;
	d->files++;
	return 0;
}

/* Write one streamed entry of a download (a client_entry_cb). */
static int
download_entry(struct client_wait *w, const Swerex__V1__TransferEntry *e)
{
	struct download *d = w->entry_arg;
	const char *path = e->path != NULL ? e->path : "";
	int rc;

	if (!download_path_ok(path)) {
		d->error = error_new(SWEREX_ERR_PROTOCOL, "refusing entry "
		    "\"%s\" from swerexd: not a relative path below the "
		    "destination", path);
		goto fail;
	}
	if (d->fd != -1) {
		if (e->type != SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE ||
		    strcmp(path, d->file) != 0) {
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent \"%s\" before the end of \"%s\"",
			    path, d->file);
			goto fail;
		}
		rc = 0;
	} else {
		switch (e->type) {
		case SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_DIRECTORY:
			rc = download_mkdir(d, path, e->mode);
			break;
		case SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_SYMLINK:
			rc = download_symlink(d, path, e->link_target);
			break;
		case SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE:
			rc = download_open(d, path, e->mode);
			break;
		default:
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent an entry of unknown type %d",
			    (int)e->type);
			rc = -1;
			break;
		}
	}
	if (rc != 0)
		goto fail;
	if (e->type == SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE) {
		if (download_write(d, e->data.data, e->data.len, e->last) != 0)
			goto fail;
		transfer_progress(d->c, d->progress, d->progress_arg, d->bytes,
		    d->files);
	}
	return 0;

fail:
	w->error = d->error;
	d->error = NULL;
	return -1;
}

/*
 * Move the entries of directory src into the existing directory dst,
 * merging directories found on both sides; a file replaces a file.
 */
static int
download_merge(struct download *d, const char *src, const char *dst)
{
	struct stat st;
	char **names, *s, *t;
	size_t n, i;
	int error, rc = 0;

	if ((error = names_read(src, false, &names, &n)) != 0) {
		d->error = error_errno(error, "cannot read directory", src);
		return -1;
	}
	for (i = 0; i < n && rc == 0; i++) {
		s = path_join(src, names[i]);
		t = path_join(dst, names[i]);
		if (s == NULL || t == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			rc = -1;
		} else if (rename(s, t) != 0) {
			error = errno;
			if ((error == EEXIST || error == ENOTEMPTY) &&
			    lstat(t, &st) == 0 && S_ISDIR(st.st_mode))
				rc = download_merge(d, s, t);
			else {
				d->error = error_errno(error,
				    "cannot move into place", t);
				rc = -1;
			}
		}
		free(s);
		free(t);
	}
	names_free(names, n);
	return rc;
}

/*
 * Check that the download ended cleanly and move it into place: a
 * directory's contents land at dst (merged into dst if it is a directory),
 * a file or symlink replaces dst. Then set the modes left for last.
 */
static int
download_finish(struct download *d, const struct client_wait *w)
{
	struct stat st;
	char *root, *path;
	size_t i;
	int fd, rc;

	if (d->fd != -1) {
		d->error = error_new(SWEREX_ERR_PROTOCOL, "the download ended "
		    "in the middle of \"%s\"", d->file);
		return -1;
	}
	if (!d->root_made) {
		/* Nothing was sent: an empty directory or an empty file. */
		if (w->is_directory)
			rc = mkdirat(d->stage_fd, "root", 0777);
		else if ((fd = openat(d->stage_fd, "root", O_WRONLY|O_CREAT|
		    O_EXCL|O_CLOEXEC, 0666)) == -1)
			rc = -1;
		else
			rc = close(fd);
		if (rc != 0) {
			d->error = error_errno(errno, "cannot create",
			    d->stage);
			return -1;
		}
		d->root_made = true;
		d->root_is_dir = w->is_directory;
	} else if (d->root_is_dir != w->is_directory) {
		d->error = error_new(SWEREX_ERR_PROTOCOL, "swerexd sent a %s "
		    "but called it a %s", d->root_is_dir ? "directory" : "file",
		    w->is_directory ? "directory" : "file");
		return -1;
	}

	if ((root = path_join(d->stage, "root")) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	if (d->root_is_dir && stat(d->dst, &st) == 0 && S_ISDIR(st.st_mode))
		rc = download_merge(d, root, d->dst);
	else if ((rc = rename(root, d->dst)) != 0)
		d->error = error_errno(errno, "cannot move into place", d->dst);
	free(root);
	if (rc != 0)
		return -1;

	/* Children were created after their parents: set theirs first. */
	for (i = d->n_dirs; i-- > 0;) {
		if ((path = path_join(d->dst, d->dirs[i].path)) == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			return -1;
		}
		rc = chmod(path, d->dirs[i].mode);
		if (rc != 0)
			d->error = error_errno(errno, "cannot set the mode of",
			    path);
		free(path);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Create the missing directories of path, as mkdir -p does. */
static int
download_mkparents(struct download *d, char *path)
{
	struct stat st;
	char *p, c;
	int error;

	for (p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		error = mkdir(path, 0777) != 0 ? errno : 0;
		if (error != 0 && error != EEXIST &&
		    (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) {
			d->error = error_errno(error, "cannot create", path);
			*p = c;
			return -1;
		}
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/* Create the staging directory beside dst, and its missing parents. */
static int
download_stage(struct download *d)
{
	char *copy, *slash, *name;
	const char *dir;
	size_t len;
	int rc = -1;

	if ((copy = strdup(d->dst)) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	if ((slash = strrchr(copy, '/')) == NULL) {
		dir = ".";
		name = copy;
	} else if (slash == copy) {
		dir = "/";
		name = slash + 1;
	} else {
		*slash = '\0';
		dir = copy;
		name = slash + 1;
	}
	if (*name == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0) {
		error_set(&d->error, SWEREX_ERR_BAD_ARGUMENT,
		    "bad destination: %s", d->dst);
		goto out;
	}
	if (dir == copy && download_mkparents(d, copy) != 0)
		goto out;
	if (asprintf(&d->stage, "%s/.%.200s.swx-dl-XXXXXX", dir, name) == -1) {
		d->stage = NULL;
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		goto out;
	}
	if (mkdtemp(d->stage) == NULL) {
		d->error = error_errno(errno, "cannot create", d->stage);
		free(d->stage);
		d->stage = NULL;
		goto out;
	}
	if ((d->stage_fd = open(d->stage, TRANSFER_DIR_FLAGS)) == -1) {
		d->error = error_errno(errno, "cannot open", d->stage);
		goto out;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* Remove what is left of a download's staging and free its state. */
static void
download_free(struct download *d)
{
	size_t i;

	if (d->fd != -1)
		close(d->fd);
	if (d->stage_fd != -1)
		close(d->stage_fd);
	if (d->stage != NULL)
		rmtree(d->stage);
	free(d->stage);
	free(d->file);
	for (i = 0; i < d->n_dirs; i++)
		free(d->dirs[i].path);
	free(d->dirs);
	swerex_error_free(d->error);
}

/* Copy a remote file or directory tree to local_dst, blocking. */
int
swerex_download(struct swerex_client *c, const char *remote_src,
    const char *local_dst, swerex_progress_cb progress, void *progress_arg,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__DownloadRequest body = SWEREX__V1__DOWNLOAD_REQUEST__INIT;
	struct client_wait w;
	struct download d;
	uint64_t id;
	int rc = -1;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	if (remote_src == NULL || local_dst == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "no source or destination");
		return -1;
	}
	memset(&d, 0, sizeof d);
	d.c = c;
	d.dst = local_dst;
	d.fd = -1;
	d.stage_fd = -1;
	d.progress = progress;
	d.progress_arg = progress_arg;
	if (download_stage(&d) != 0)
		goto fail;

	memset(&w, 0, sizeof w);
	w.on_entry = download_entry;
	w.entry_arg = &d;
	body.path = (char *)remote_src;
	req.body_case = SWEREX__V1__REQUEST__BODY_DOWNLOAD;
	req.download = &body;
	id = client_submit(c, &req, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		goto out;
	if (wait_result(&w, (enum swerex_reply_type)CLIENT_REPLY_DOWNLOAD,
	    err) != 0)
		goto out;
	if (download_finish(&d, &w) != 0)
		goto fail;
	rc = 0;
	goto out;

fail:
	error_give(err, d.error);
	d.error = NULL;
out:
	download_free(&d);
	return rc;
}

/* Copy an observation. */
struct swerex_observation *
swerex_observation_dup(const struct swerex_observation *o)
{
	struct swerex_observation *copy;

	if (o == NULL)
		return NULL;
	copy = calloc(1, sizeof *copy);
	if (copy == NULL)
		return NULL;
	*copy = *o;
	copy->output = bytes_dup(o->output, o->output != NULL ?
	    o->output_len : 0);
	copy->output_len = o->output != NULL ? o->output_len : 0;
	copy->failure_reason = str_dup(o->failure_reason);
	copy->expect_string = str_dup(o->expect_string);
	if (copy->output == NULL || copy->failure_reason == NULL ||
	    copy->expect_string == NULL) {
		swerex_observation_free(copy);
		return NULL;
	}
	return copy;
}

/* Copy an execute's result. */
struct swerex_exec_result *
swerex_exec_result_dup(const struct swerex_exec_result *r)
{
	struct swerex_exec_result *copy;

	if (r == NULL)
		return NULL;
	copy = calloc(1, sizeof *copy);
	if (copy == NULL)
		return NULL;
	*copy = *r;
	copy->stdout_len = r->stdout_data != NULL ? r->stdout_len : 0;
	copy->stdout_data = bytes_dup(r->stdout_data, copy->stdout_len);
	copy->stderr_len = r->stderr_data != NULL ? r->stderr_len : 0;
	copy->stderr_data = bytes_dup(r->stderr_data, copy->stderr_len);
	copy->failure_reason = str_dup(r->failure_reason);
	if (copy->stdout_data == NULL || copy->stderr_data == NULL ||
	    copy->failure_reason == NULL) {
		swerex_exec_result_free(copy);
		return NULL;
	}
	return copy;
}

/* Copy an error, with its extra entries, observation and execute result. */
struct swerex_error *
swerex_error_dup(const struct swerex_error *e)
{
	struct swerex_error *copy;
	size_t i;

	if (e == NULL)
		return NULL;
	copy = calloc(1, sizeof *copy);
	if (copy == NULL)
		return NULL;
	copy->kind = e->kind;
	copy->message = str_dup(e->message);
	if (copy->message == NULL)
		goto fail;
	if (e->n_extra != 0 && e->extra != NULL) {
		copy->extra = calloc(e->n_extra, sizeof *copy->extra);
		if (copy->extra == NULL)
			goto fail;
		copy->n_extra = e->n_extra;
		for (i = 0; i < e->n_extra; i++) {
			copy->extra[i].key = str_dup(e->extra[i].key);
			copy->extra[i].value = str_dup(e->extra[i].value);
			if (copy->extra[i].key == NULL ||
			    copy->extra[i].value == NULL)
				goto fail;
		}
	}
	if (e->observation != NULL) {
		copy->observation = swerex_observation_dup(e->observation);
		if (copy->observation == NULL)
			goto fail;
	}
	if (e->exec_result != NULL) {
		copy->exec_result = swerex_exec_result_dup(e->exec_result);
		if (copy->exec_result == NULL)
			goto fail;
	}
	return copy;

fail:
	swerex_error_free(copy);
	return NULL;
}

/* Free an observation. */
void
swerex_observation_free(struct swerex_observation *o)
{
	if (o == NULL)
		return;
	free(o->output);
	free(o->failure_reason);
	free(o->expect_string);
	free(o);
}

/* Free an error. */
void
swerex_error_free(struct swerex_error *e)
{
	size_t i;

	if (e == NULL)
		return;
	free(e->message);
	for (i = 0; i < e->n_extra; i++) {
		free(e->extra[i].key);
		free(e->extra[i].value);
	}
	free(e->extra);
	swerex_observation_free(e->observation);
	swerex_exec_result_free(e->exec_result);
	free(e);
}

/* Free an execute's result. */
void
swerex_exec_result_free(struct swerex_exec_result *r)
{
	if (r == NULL)
		return;
	free(r->stdout_data);
	free(r->stderr_data);
	free(r->failure_reason);
	free(r);
}

/* Free a session list from swerex_list_sessions(). */
void
swerex_sessions_free(struct swerex_session_info *s, size_t n)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(s[i].name);
		free(s[i].last_command);
	}
	free(s);
}

/* Give the value of key in e->extra, or NULL. */
const char *
swerex_error_extra(const struct swerex_error *e, const char *key)
{
	size_t i;

	if (e == NULL || key == NULL)
		return NULL;
	for (i = 0; i < e->n_extra; i++) {
		if (e->extra[i].key != NULL && strcmp(e->extra[i].key, key) == 0)
			return e->extra[i].value;
	}
	return NULL;
}

/* Give the upper-case name of an error kind. */
const char *
swerex_error_kind_name(enum swerex_error_kind kind)
{
	switch (kind) {
	case SWEREX_ERR_UNSPECIFIED: return "UNSPECIFIED";
	case SWEREX_ERR_SESSION_EXISTS: return "SESSION_EXISTS";
	case SWEREX_ERR_SESSION_DOES_NOT_EXIST: return "SESSION_DOES_NOT_EXIST";
	case SWEREX_ERR_SESSION_BUSY: return "SESSION_BUSY";
	case SWEREX_ERR_SESSION_DIED: return "SESSION_DIED";
	case SWEREX_ERR_COMMAND_TIMEOUT: return "COMMAND_TIMEOUT";
	case SWEREX_ERR_NON_ZERO_EXIT_CODE: return "NON_ZERO_EXIT_CODE";
	case SWEREX_ERR_NO_EXIT_CODE: return "NO_EXIT_CODE";
	case SWEREX_ERR_BASH_INCORRECT_SYNTAX: return "BASH_INCORRECT_SYNTAX";
	case SWEREX_ERR_INVALID_REQUEST: return "INVALID_REQUEST";
	case SWEREX_ERR_UNSUPPORTED_VERSION: return "UNSUPPORTED_VERSION";
	case SWEREX_ERR_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
	case SWEREX_ERR_INTERNAL: return "INTERNAL";
	case SWEREX_ERR_PROTOCOL: return "PROTOCOL_ERROR";
	case SWEREX_ERR_SESSION_START_FAILED: return "SESSION_START_FAILED";
	case SWEREX_ERR_INTERRUPTED: return "INTERRUPTED";
	case SWEREX_ERR_FILE_NOT_FOUND: return "FILE_NOT_FOUND";
	case SWEREX_ERR_IS_A_DIRECTORY: return "IS_A_DIRECTORY";
	case SWEREX_ERR_NOT_A_DIRECTORY: return "NOT_A_DIRECTORY";
	case SWEREX_ERR_PERMISSION_DENIED: return "PERMISSION_DENIED";
	case SWEREX_ERR_NO_SPACE: return "NO_SPACE";
	case SWEREX_ERR_FILE_ERROR: return "FILE_ERROR";
	case SWEREX_ERR_CONNECT: return "CONNECT";
	case SWEREX_ERR_DISCONNECTED: return "DISCONNECTED";
	case SWEREX_ERR_BAD_ARGUMENT: return "BAD_ARGUMENT";
	case SWEREX_ERR_NO_MEMORY: return "NO_MEMORY";
	}
	return "UNKNOWN";
}
