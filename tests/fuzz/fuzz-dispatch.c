/*
 * fuzz-dispatch: request decoding and dispatch against a live in-process
 * swerexd (daemon_lib, a struct server set up as main.c does) with real bash
 * sessions. One daemon serves every input; each input gets a connection of
 * its own (a socketpair handed to conn_accept) and leaves no session, job,
 * transfer or identity behind.
 *
 * Input: frames as on the wire (flag byte, 4-byte big-endian length,
 * payload). A payload that decodes as a Request is made harmless, given a
 * fresh id and sent; the flag byte steers the harness:
 *   0x01  wait until every earlier request is answered before sending it
 *   0x02  (Hello) keep its protocol_version instead of the current one
 *   0x04  reconnect first (at most twice): drop the connection, open a new
 *         one with the first Hello again (a new id), then retry each
 *         request still unanswered if that Hello carries a client identity
 *         (uploads and downloads end with their connection: lost)
 * A payload that does not decode is skipped, unless its flag has 0x80: then
 * it is sent as is, as the last frame, and the daemon must report a
 * protocol error and close (0x40: with its own flag and length bytes, which
 * may be oversize, or longer than the payload: then the daemon may wait).
 *
 * Harmless means: every command is one from a fixed list (the one the
 * original names, else one picked by its hash), every path lies under a private temporary directory,
 * symbolic link targets are plain names, startup files are a fixed harmless
 * one (or a missing one), the environment is one fixed variable, timeouts
 * and output caps are clamped small. Invalid timeouts (negative, NaN,
 * infinite) are kept: the daemon must refuse them.
 *
 * Invariants: every request gets exactly one final response (UploadData
 * none; a request lost with its connection at most one), streamed frames
 * never follow it, no response names an id that was
 * not sent, the daemon closes only after a protocol error or a refused
 * Hello, and after the input no session or job is left.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "conn.h"
#include "exec.h"
#include "file.h"
#include "fuzz.h"
#include "ident.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "wire.h"

#define FUZZ_DISPATCH_FRAMES 24
/* Seconds an input may take before pending work is ended by force. */
#define FUZZ_DISPATCH_BOUND 3.0
#define FUZZ_DISPATCH_TIMEOUT 0.3       /* largest command timeout */
#define FUZZ_DISPATCH_OUTPUT 4096       /* largest output cap */

/* Commands a session may run: harmless, some slow, odd or failing. */
static const char *const fuzz_dispatch_commands[] = {
	"echo hi", "true", "false", "printf x", "exit 3", "sleep 0.01", "cat",
	"echo -n partial", "printf 'a\\r\\nb\\n'", "printf '\\033[31mred\\033[0m\\n'",
	"echo $?", "(", "if true", "read x", "seq 1 2000", "echo err >&2",
	"for i in 1 2 3; do echo $i; done", "printf '@swx:0:0;\\n'",
};
/* Programs an ExecuteRequest may run (argv, NULL-terminated). */
static const char *const fuzz_dispatch_argv[][4] = {
	{ "true" }, { "echo", "hi" }, { "printf", "x" }, { "false" },
	{ "sleep", "0.01" }, { "cat" }, { "/nonexistent/swerex-fuzz" },
	{ "sh", "-c", "echo out; echo err >&2; exit 2" }, { "seq", "1", "3000" },
};
/* Their names, to pick one by name. */
static const char *const fuzz_dispatch_argv0[] = {
	"true", "echo", "printf", "false", "sleep", "cat",
	"/nonexistent/swerex-fuzz", "sh", "seq",
};
/* Startup files: a harmless one, a missing one (the paths are made at start). */
static const char *const fuzz_dispatch_rc_names[] = { "rc", "no-rc" };
/* Session names, odd ones included (names are never paths). */
static const char *const fuzz_dispatch_sessions[] = {
	"", "default", "a", "b", "x/y", "with\nnewline",
};
/* Paths under the files directory (the first is the directory itself). */
static const char *const fuzz_dispatch_rel[] = {
	"", "/a", "/b", "/a/b", "/d/", "/a/b/c", "/missing/x",
};
/* An absolute entry path, inside the private directory all the same. */
static char fuzz_dispatch_abs[128];
/*
 * Entry paths of an upload: valid ones and ones the daemon must refuse,
 * chosen so that even a daemon that took them would write nothing outside
 * the private directory.
 */
static const char *const fuzz_dispatch_entries[] = {
	"", "a", "b", "a/b", "d/e/f", "../x", fuzz_dispatch_abs, "./c", "a//b",
};
/* Symbolic link targets: plain names, so links never lead out. */
static const char *const fuzz_dispatch_links[] = { "a", "b", "missing" };

#define FUZZ_DISPATCH_N(a) (sizeof (a) / sizeof (a)[0])

/* One frame of an input, ready to send. */
struct fuzz_dispatch_frame {
	uint8_t *buf;
	size_t len;
	bool barrier;          /* send once everything before is answered */
	bool expect_final;     /* false for UploadData and garbage */
	bool upload_begin;
	unsigned finals;       /* final responses seen */
	int body;              /* Request body case, for messages */
	bool reconnect;        /* a Hello opening a new connection */
	bool lost;             /* its connection went, no identity kept it */
};

/* What the inputs did, printed at exit: the checks did run. */
static struct {
	unsigned long inputs, strict, forced, closed, requests, finals;
	unsigned long reconnects, retries;
} fuzz_dispatch_stats;

/* The daemon and the private directory every input shares. */
static struct server fuzz_dispatch_srv;
static char fuzz_dispatch_root[64];
static char fuzz_dispatch_paths[FUZZ_DISPATCH_N(fuzz_dispatch_rel)][128];
static char fuzz_dispatch_rc[2][128];      /* harmless, missing */

/* The state of one input. */
static struct {
	/* Frames, plus a default Hello, reconnects and an UploadEnd per
	 * UploadBegin. */
	struct fuzz_dispatch_frame frames[2 * FUZZ_DISPATCH_FRAMES + 8];
	size_t n;
	size_t next;           /* frames sent */
	int fd;
	struct evbuffer *in;
	struct evbuffer *out;
	struct event ev_read;
	struct event ev_write;
	bool eof;
	bool garbage;          /* a protocol error was provoked */
	bool garbage_raw;      /* with its own header: may never complete */
	bool ident;            /* the Hello carries a client identity */
	unsigned reconnects;
	bool closing;          /* the daemon said it closes (protocol error,
				  refused Hello) */
	/* Unpacked requests live here until the input is done. */
	void **arena;
	size_t n_arena;
	size_t alloc_arena;
} fuzz_dispatch_in;

/* Allocate for protobuf-c from the input's arena. */
static void *
fuzz_dispatch_alloc(void *data, size_t size)
{
	void *p = malloc(size ? size : 1);
	void **a;
	size_t n;

	fuzz_check(p != NULL);
	if (fuzz_dispatch_in.n_arena == fuzz_dispatch_in.alloc_arena) {
		n = fuzz_dispatch_in.alloc_arena ? 2 * fuzz_dispatch_in.alloc_arena :
		    256;
		a = realloc(fuzz_dispatch_in.arena, n * sizeof *a);
		fuzz_check(a != NULL);
		fuzz_dispatch_in.arena = a;
		fuzz_dispatch_in.alloc_arena = n;
	}
	fuzz_dispatch_in.arena[fuzz_dispatch_in.n_arena++] = p;
	return p;
}

/* Free nothing now: the arena goes at once, so fields may be replaced. */
static void
fuzz_dispatch_nofree(void *data, void *p)
{
}

static ProtobufCAllocator fuzz_dispatch_allocator = {
	.alloc = fuzz_dispatch_alloc, .free = fuzz_dispatch_nofree,
};

/* Free the input's arena. */
static void
fuzz_dispatch_arena_free(void)
{
	size_t i;

	for (i = 0; i < fuzz_dispatch_in.n_arena; i++)
		free(fuzz_dispatch_in.arena[i]);
	fuzz_dispatch_in.n_arena = 0;
}

/*
 * Pick one of n choices for a string: the one it names (seeds stay
 * readable), else one by its hash.
 */
static size_t
fuzz_dispatch_pick(const char *s, const char *const *list, size_t n)
{
	uint32_t h = 2166136261u;
	const char *p;
	size_t i;

	for (i = 0; s != NULL && i < n; i++)
		if (strcmp(s, list[i] + (list[i][0] == '/')) == 0)
			return i;
	for (p = s; p != NULL && *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	return h % n;
}

/* Pick from a fixed list (an array of strings). */
#define FUZZ_DISPATCH_PICK(s, list) \
	((char *)(list)[fuzz_dispatch_pick((s), (list), FUZZ_DISPATCH_N(list))])

/* Pick a harmless path under the private directory. */
static char *
fuzz_dispatch_path(const char *orig)
{
	return fuzz_dispatch_paths[fuzz_dispatch_pick(orig, fuzz_dispatch_rel,
	    FUZZ_DISPATCH_N(fuzz_dispatch_rel))];
}

/* Clamp a valid timeout; keep an invalid one for the daemon to refuse. */
static double
fuzz_dispatch_timeout(double t, double max)
{
	return isfinite(t) && t > max ? max : t;
}

/* Cut a list of strings to at most max entries. */
static size_t
fuzz_dispatch_cap(size_t n, size_t max)
{
	return n < max ? n : max;
}

/* Make a session's BashAction harmless. */
static void
fuzz_dispatch_fix_run(Swerex__V1__BashAction *m)
{
	m->command = FUZZ_DISPATCH_PICK(m->command, fuzz_dispatch_commands);
	m->session = FUZZ_DISPATCH_PICK(m->session, fuzz_dispatch_sessions);
	if (m->has_timeout_case != SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT) {
		/* "Wait for ever" would outlive the input. */
		m->has_timeout_case = SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT;
		m->timeout = FUZZ_DISPATCH_TIMEOUT;
	}
	m->timeout = fuzz_dispatch_timeout(m->timeout, FUZZ_DISPATCH_TIMEOUT);
	if (m->max_output > FUZZ_DISPATCH_OUTPUT)
		m->max_output = FUZZ_DISPATCH_OUTPUT;
	m->n_expect = fuzz_dispatch_cap(m->n_expect, 4);
}

/* Make an ExecuteRequest harmless. */
static void
fuzz_dispatch_fix_execute(Swerex__V1__ExecuteRequest *m)
{
	static char key[] = "SWEREX_FUZZ", value[] = "1";
	const char *const *argv;
	size_t i, n;

	argv = fuzz_dispatch_argv[fuzz_dispatch_pick(m->n_argv ? m->argv[0] :
	    m->command, fuzz_dispatch_argv0, FUZZ_DISPATCH_N(fuzz_dispatch_argv0))];
	for (n = 0; n < 4 && argv[n] != NULL; n++)
		;
	/* Keep an empty argv (the daemon refuses it) when it was empty. */
	if (m->n_argv > 0) {
		m->argv = fuzz_dispatch_alloc(NULL, n * sizeof *m->argv);
		for (i = 0; i < n; i++)
			m->argv[i] = (char *)argv[i];
		m->n_argv = n;
	}
	m->command = FUZZ_DISPATCH_PICK(m->command, fuzz_dispatch_commands);
	if (m->n_env > 0) {
		m->n_env = 1;
		m->env[0]->key = key;
		m->env[0]->value = value;
	}
	if (*m->cwd != '\0')
		m->cwd = fuzz_dispatch_path(m->cwd);
	if (m->has_timeout_case != SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT) {
		m->has_timeout_case = SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT;
		m->timeout = FUZZ_DISPATCH_TIMEOUT;
	}
	m->timeout = fuzz_dispatch_timeout(m->timeout, FUZZ_DISPATCH_TIMEOUT);
	if (m->max_output > FUZZ_DISPATCH_OUTPUT)
		m->max_output = FUZZ_DISPATCH_OUTPUT;
}

/* Make an upload's entries harmless. */
static void
fuzz_dispatch_fix_upload_data(Swerex__V1__UploadData *m)
{
	Swerex__V1__TransferEntry *e;
	size_t i;

	m->n_entries = fuzz_dispatch_cap(m->n_entries, 8);
	for (i = 0; i < m->n_entries; i++) {
		e = m->entries[i];
		e->path = FUZZ_DISPATCH_PICK(e->path, fuzz_dispatch_entries);
		e->link_target = FUZZ_DISPATCH_PICK(e->link_target,
		    fuzz_dispatch_links);
		e->mode &= 0777;
	}
}

/*
 * Map an upload id of the input to the id of one of the input's earlier
 * UploadBegin frames (or keep an id that names none).
 */
static uint64_t
fuzz_dispatch_upload_id(uint64_t orig)
{
	size_t i, k = 0, begins = 0;

	for (i = 0; i < fuzz_dispatch_in.n; i++)
		begins += fuzz_dispatch_in.frames[i].upload_begin;
	if (begins == 0 || orig % 4 == 3)
		return 7777777;     /* unknown */
	orig %= begins;
	for (i = 0; i < fuzz_dispatch_in.n; i++)
		if (fuzz_dispatch_in.frames[i].upload_begin && k++ == orig)
			return i + 1;
	return 7777777;
}

/* Make any request harmless; false if it has no body we may send. */
static bool
fuzz_dispatch_fix(Swerex__V1__Request *m, uint8_t flag)
{
	Swerex__V1__CreateSessionRequest *cs;
	Swerex__V1__BashInterruptAction *ia;
	Swerex__V1__WriteFileRequest *wf;
	size_t i;

	switch (m->body_case) {
	case SWEREX__V1__REQUEST__BODY_HELLO:
		if (!(flag & 0x02))
			m->hello->protocol_version =
			    SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
		break;
	case SWEREX__V1__REQUEST__BODY_CREATE_SESSION:
		cs = m->create_session;
		cs->session = FUZZ_DISPATCH_PICK(cs->session,
		    fuzz_dispatch_sessions);
		cs->n_startup_source = fuzz_dispatch_cap(cs->n_startup_source, 2);
		for (i = 0; i < cs->n_startup_source; i++)
			cs->startup_source[i] = fuzz_dispatch_rc[
			    fuzz_dispatch_pick(cs->startup_source[i],
			    fuzz_dispatch_rc_names, 2)];
		cs->startup_timeout = fuzz_dispatch_timeout(cs->startup_timeout, 2);
		break;
	case SWEREX__V1__REQUEST__BODY_RUN:
		fuzz_dispatch_fix_run(m->run);
		break;
	case SWEREX__V1__REQUEST__BODY_INTERRUPT:
		ia = m->interrupt;
		ia->session = FUZZ_DISPATCH_PICK(ia->session,
		    fuzz_dispatch_sessions);
		ia->timeout = fuzz_dispatch_timeout(ia->timeout, 0.05);
		if (ia->n_retry > 3)
			ia->n_retry = 3;
		ia->n_expect = fuzz_dispatch_cap(ia->n_expect, 4);
		break;
	case SWEREX__V1__REQUEST__BODY_CLOSE_SESSION:
		m->close_session->session = FUZZ_DISPATCH_PICK(
		    m->close_session->session, fuzz_dispatch_sessions);
		break;
	case SWEREX__V1__REQUEST__BODY_EXECUTE:
		fuzz_dispatch_fix_execute(m->execute);
		break;
	case SWEREX__V1__REQUEST__BODY_READ_FILE:
		m->read_file->path = fuzz_dispatch_path(m->read_file->path);
		break;
	case SWEREX__V1__REQUEST__BODY_WRITE_FILE:
		wf = m->write_file;
		wf->path = fuzz_dispatch_path(wf->path);
		wf->mode &= 0777;
		break;
	case SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN:
		m->upload_begin->target_path =
		    fuzz_dispatch_path(m->upload_begin->target_path);
		break;
	case SWEREX__V1__REQUEST__BODY_UPLOAD_DATA:
		m->upload_data->upload_id =
		    fuzz_dispatch_upload_id(m->upload_data->upload_id);
		fuzz_dispatch_fix_upload_data(m->upload_data);
		break;
	case SWEREX__V1__REQUEST__BODY_UPLOAD_END:
		m->upload_end->upload_id =
		    fuzz_dispatch_upload_id(m->upload_end->upload_id);
		break;
	case SWEREX__V1__REQUEST__BODY_DOWNLOAD:
		m->download->path = fuzz_dispatch_path(m->download->path);
		break;
	case SWEREX__V1__REQUEST__BODY_IS_ALIVE:
	case SWEREX__V1__REQUEST__BODY_LIST_SESSIONS:
	case SWEREX__V1__REQUEST__BODY_PING:
	case SWEREX__V1__REQUEST__BODY__NOT_SET:
		break;
	default:
		return false;
	}
	return true;
}

/*
 * Queue a request as the input's next frame. libprotobuf-c 1.4 decodes a
 * few invalid tags (field 0 as an overlong varint) that it then writes in a
 * form it refuses: such a request is not sent (fuzz-wire covers it).
 */
static void
fuzz_dispatch_add(Swerex__V1__Request *m, bool barrier)
{
	struct fuzz_dispatch_frame *f = &fuzz_dispatch_in.frames[fuzz_dispatch_in.n];
	ProtobufCMessage *again;

	memset(f, 0, sizeof *f);
	m->id = fuzz_dispatch_in.n + 1;
	fuzz_check(wire_encode(&m->base, &f->buf, &f->len) == 0);
	again = protobuf_c_message_unpack(&swerex__v1__request__descriptor,
	    &fuzz_dispatch_allocator, f->len - WIRE_HEADER_LEN,
	    f->buf + WIRE_HEADER_LEN);
	if (again == NULL) {
		free(f->buf);
		return;
	}
	f->barrier = barrier;
	f->body = m->body_case;
	f->upload_begin = m->body_case == SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN;
	f->expect_final = m->body_case != SWEREX__V1__REQUEST__BODY_UPLOAD_DATA;
	fuzz_dispatch_in.n++;
}

/* Queue raw bytes the daemon cannot decode, as the last frame. */
static void
fuzz_dispatch_add_garbage(const uint8_t *hdr, const uint8_t *p, size_t n)
{
	struct fuzz_dispatch_frame *f = &fuzz_dispatch_in.frames[fuzz_dispatch_in.n];

	memset(f, 0, sizeof *f);
	f->buf = malloc(WIRE_HEADER_LEN + n + 1);
	fuzz_check(f->buf != NULL);
	if (hdr[0] & 0x40) {
		memcpy(f->buf, hdr, WIRE_HEADER_LEN);
		fuzz_dispatch_in.garbage_raw = true;
	} else {
		f->buf[0] = 0;
		f->buf[1] = (uint8_t)(n >> 24);
		f->buf[2] = (uint8_t)(n >> 16);
		f->buf[3] = (uint8_t)(n >> 8);
		f->buf[4] = (uint8_t)n;
	}
	if (n > 0)
		memcpy(f->buf + WIRE_HEADER_LEN, p, n);
	f->len = WIRE_HEADER_LEN + n;
	f->body = -1;
	fuzz_dispatch_in.n++;
	fuzz_dispatch_in.garbage = true;
}

/* Queue the default Hello unless the input begins with its own. */
static void
fuzz_dispatch_hello_first(int body)
{
	Swerex__V1__Request hello = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Hello h = SWEREX__V1__HELLO__INIT;

	if (fuzz_dispatch_in.n > 0 || body == SWEREX__V1__REQUEST__BODY_HELLO)
		return;
	h.protocol_version = SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT;
	h.client_name = "fuzz-dispatch";
	hello.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	hello.hello = &h;
	fuzz_dispatch_add(&hello, false);
}

/* Queue an UploadEnd (abort) for every UploadBegin, so each gets its answer. */
static void
fuzz_dispatch_end_uploads(void)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__UploadEnd end = SWEREX__V1__UPLOAD_END__INIT;
	size_t i, n = fuzz_dispatch_in.n;

	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
	req.upload_end = &end;
	end.abort = true;
	for (i = 0; i < n; i++) {
		if (!fuzz_dispatch_in.frames[i].upload_begin)
			continue;
		end.upload_id = i + 1;
		fuzz_dispatch_add(&req, false);
	}
}

/* Queue the first Hello again, for a new connection. */
static void
fuzz_dispatch_add_reconnect(void)
{
	struct fuzz_dispatch_frame *first = &fuzz_dispatch_in.frames[0];
	Swerex__V1__Request *m;

	m = (Swerex__V1__Request *)protobuf_c_message_unpack(
	    &swerex__v1__request__descriptor, &fuzz_dispatch_allocator,
	    first->len - WIRE_HEADER_LEN, first->buf + WIRE_HEADER_LEN);
	fuzz_check(m != NULL && m->body_case == SWEREX__V1__REQUEST__BODY_HELLO);
	fuzz_dispatch_add(m, false);
	fuzz_dispatch_in.frames[fuzz_dispatch_in.n - 1].reconnect = true;
	fuzz_dispatch_in.reconnects++;
}

/* Cut the input into frames and make each harmless. */
static void
fuzz_dispatch_parse(const uint8_t *data, size_t size)
{
	Swerex__V1__Request *m;
	const uint8_t *hdr;
	size_t off = 0, len;
	uint32_t l;

	while (off + WIRE_HEADER_LEN <= size &&
	    fuzz_dispatch_in.n < FUZZ_DISPATCH_FRAMES) {
		hdr = data + off;
		l = (uint32_t)hdr[1] << 24 | (uint32_t)hdr[2] << 16 |
		    (uint32_t)hdr[3] << 8 | hdr[4];
		off += WIRE_HEADER_LEN;
		len = l < size - off ? l : size - off;
		m = (Swerex__V1__Request *)protobuf_c_message_unpack(
		    &swerex__v1__request__descriptor, &fuzz_dispatch_allocator,
		    len, data + off);
		if (m == NULL && (hdr[0] & 0x80)) {
			fuzz_dispatch_hello_first(-1);
			fuzz_dispatch_add_garbage(hdr, data + off, len);
			return;
		}
		if (m != NULL && fuzz_dispatch_fix(m, hdr[0])) {
			fuzz_dispatch_hello_first(m->body_case);
			if (fuzz_dispatch_in.n == 0)
				fuzz_dispatch_in.ident =
				    m->hello->client_id.len == IDENT_ID_LEN;
			else if ((hdr[0] & 0x04) && fuzz_dispatch_in.reconnects < 2)
				fuzz_dispatch_add_reconnect();
			fuzz_dispatch_add(m, hdr[0] & 0x01);
		}
		off += len;
	}
	fuzz_dispatch_end_uploads();
}

/* Check one response from the daemon against what was sent. */
static void
fuzz_dispatch_response(const Swerex__V1__Response *resp)
{
	struct fuzz_dispatch_frame *f;
	bool final = resp->body_case != SWEREX__V1__RESPONSE__BODY_CHUNK &&
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_ENTRY;
	Swerex__V1__ErrorKind kind = resp->body_case ==
	    SWEREX__V1__RESPONSE__BODY_ERROR ? resp->error->kind : 0;

	if (resp->id == 0) {
		/* Only a frame the daemon could not read is answered with id 0. */
		fuzz_check(fuzz_dispatch_in.garbage);
		fuzz_check(kind == SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR);
		fuzz_dispatch_in.closing = true;
		return;
	}
	fuzz_check(resp->id <= fuzz_dispatch_in.next);
	f = &fuzz_dispatch_in.frames[resp->id - 1];
	fuzz_check(f->body >= 0);
	/* Nothing for a request after its final response. */
	fuzz_check(f->finals == 0);
	if (!final)
		return;
	f->finals++;
	fuzz_dispatch_stats.finals++;
	fuzz_check(f->expect_final || f->lost);
	if (kind == SWEREX__V1__ERROR_KIND__UNSUPPORTED_VERSION)
		fuzz_dispatch_in.closing = true;
}

/* Tell whether the first n frames that expect an answer have one. */
static bool
fuzz_dispatch_answered(size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (fuzz_dispatch_in.frames[i].expect_final &&
		    fuzz_dispatch_in.frames[i].finals == 0)
			return false;
	return true;
}

/* Write what is queued; wait for the socket if it is full. */
static void
fuzz_dispatch_flush(void)
{
	int n = evbuffer_write(fuzz_dispatch_in.out, fuzz_dispatch_in.fd);

	/* The daemon may have closed (EPIPE): the rest is not read anyway. */
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		evbuffer_drain(fuzz_dispatch_in.out,
		    evbuffer_get_length(fuzz_dispatch_in.out));
		return;
	}
	if (evbuffer_get_length(fuzz_dispatch_in.out) > 0)
		event_add(&fuzz_dispatch_in.ev_write, NULL);
}

static int fuzz_dispatch_receive(void);
static void fuzz_dispatch_read_cb(evutil_socket_t fd, short what, void *arg);
static void fuzz_dispatch_write_cb(evutil_socket_t fd, short what, void *arg);

/* Open a connection to the daemon: a socketpair, one end handed over. */
static void
fuzz_dispatch_connect(void)
{
	struct server *srv = &fuzz_dispatch_srv;
	int sv[2];

	fuzz_check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0, sv) == 0);
	conn_accept(srv, sv[0], SERVER_UNIX, NULL);
	fuzz_dispatch_in.fd = sv[1];
	fuzz_dispatch_in.eof = false;
	event_assign(&fuzz_dispatch_in.ev_read, srv->base, sv[1],
	    EV_READ | EV_PERSIST, fuzz_dispatch_read_cb, NULL);
	event_assign(&fuzz_dispatch_in.ev_write, srv->base, sv[1], EV_WRITE,
	    fuzz_dispatch_write_cb, NULL);
	event_add(&fuzz_dispatch_in.ev_read, NULL);
}

/* Close our end of the connection, dropping what was not read or sent. */
static void
fuzz_dispatch_disconnect(void)
{
	event_del(&fuzz_dispatch_in.ev_read);
	event_del(&fuzz_dispatch_in.ev_write);
	close(fuzz_dispatch_in.fd);
	fuzz_dispatch_in.fd = -1;
	evbuffer_drain(fuzz_dispatch_in.in, evbuffer_get_length(fuzz_dispatch_in.in));
	evbuffer_drain(fuzz_dispatch_in.out,
	    evbuffer_get_length(fuzz_dispatch_in.out));
}

/*
 * Move to a new connection: read what the old one already holds, drop it,
 * send the Hello hello, then retry what is unanswered (with an identity)
 * or give it up as lost (without one, or a transfer).
 */
static void
fuzz_dispatch_reconnect(struct fuzz_dispatch_frame *hello)
{
	struct fuzz_dispatch_frame *f;
	size_t i;

	while (!fuzz_dispatch_in.eof && fuzz_dispatch_receive() > 0)
		;
	fuzz_dispatch_disconnect();
	fuzz_dispatch_connect();
	fuzz_dispatch_stats.reconnects++;
	fuzz_check(evbuffer_add(fuzz_dispatch_in.out, hello->buf, hello->len) == 0);
	for (i = 0; i < fuzz_dispatch_in.next; i++) {
		f = &fuzz_dispatch_in.frames[i];
		if (f == hello || !f->expect_final || f->finals > 0)
			continue;
		if (fuzz_dispatch_in.ident &&
		    f->body != SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN &&
		    f->body != SWEREX__V1__REQUEST__BODY_UPLOAD_END &&
		    f->body != SWEREX__V1__REQUEST__BODY_DOWNLOAD) {
			fuzz_check(evbuffer_add(fuzz_dispatch_in.out, f->buf,
			    f->len) == 0);
			fuzz_dispatch_stats.retries++;
		} else {
			f->expect_final = false;
			f->lost = true;
		}
	}
}

/* Send the frames that need not wait for earlier answers. */
static void
fuzz_dispatch_send(void)
{
	struct fuzz_dispatch_frame *f;

	while (fuzz_dispatch_in.next < fuzz_dispatch_in.n &&
	    !fuzz_dispatch_in.eof && !fuzz_dispatch_in.closing) {
		f = &fuzz_dispatch_in.frames[fuzz_dispatch_in.next];
		if (f->barrier && !fuzz_dispatch_answered(fuzz_dispatch_in.next))
			break;
		fuzz_dispatch_in.next++;
		if (f->reconnect)
			fuzz_dispatch_reconnect(f);
		else
			fuzz_check(evbuffer_add(fuzz_dispatch_in.out, f->buf,
			    f->len) == 0);
	}
	fuzz_dispatch_flush();
}

/* Read and check responses; EOF means the daemon closed. Return bytes read. */
static int
fuzz_dispatch_receive(void)
{
	ProtobufCMessage *msg;
	int n, r;

	n = evbuffer_read(fuzz_dispatch_in.in, fuzz_dispatch_in.fd, 65536);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		fuzz_dispatch_in.eof = true;
		event_del(&fuzz_dispatch_in.ev_read);
	}
	while ((r = wire_take(fuzz_dispatch_in.in, UINT32_MAX,
	    &swerex__v1__response__descriptor, &msg)) == WIRE_OK) {
		fuzz_dispatch_response((Swerex__V1__Response *)msg);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	/* The daemon only ever sends frames we can read. */
	fuzz_check(r == WIRE_AGAIN);
	if (fuzz_dispatch_in.eof)
		fuzz_check(evbuffer_get_length(fuzz_dispatch_in.in) == 0);
	return n;
}

/* Responses arrived: check them, send what waited for them. */
static void
fuzz_dispatch_read_cb(evutil_socket_t fd, short what, void *arg)
{
	fuzz_dispatch_receive();
	fuzz_dispatch_send();
}

/* The socket has room again. */
static void
fuzz_dispatch_write_cb(evutil_socket_t fd, short what, void *arg)
{
	fuzz_dispatch_flush();
}

/* Mark that a bounded wait is over. */
static void
fuzz_dispatch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Run the loop until done() holds or seconds pass; return done(). */
static bool
fuzz_dispatch_wait(bool (*done)(void), double seconds)
{
	struct event ev;
	bool over = false;

	evtimer_assign(&ev, fuzz_dispatch_srv.base, fuzz_dispatch_timer_cb, &over);
	server_timer_add(&ev, seconds);
	while (!done() && !over)
		event_base_loop(fuzz_dispatch_srv.base, EVLOOP_ONCE);
	evtimer_del(&ev);
	return done();
}

/* Tell whether the input has run its course. */
static bool
fuzz_dispatch_done(void)
{
	if (fuzz_dispatch_in.eof)
		return true;
	if (fuzz_dispatch_in.closing)
		return false;       /* the daemon closes: wait for the EOF */
	if (fuzz_dispatch_in.next < fuzz_dispatch_in.n ||
	    evbuffer_get_length(fuzz_dispatch_in.out) > 0 ||
	    !fuzz_dispatch_answered(fuzz_dispatch_in.n))
		return false;
	/* A frame that says it is longer than it is leaves the daemon
	 * waiting; any other garbage must get an error and a close. */
	return !fuzz_dispatch_in.garbage || fuzz_dispatch_in.garbage_raw;
}

/* Tell whether the daemon let go of the input's connection. */
static bool
fuzz_dispatch_no_conns(void)
{
	return fuzz_dispatch_srv.n_conns == 0;
}

/* Tell whether every session and job of the input is gone. */
static bool
fuzz_dispatch_idle(void)
{
	return fuzz_dispatch_srv.n_sessions == 0 &&
	    TAILQ_EMPTY(&fuzz_dispatch_srv.sessions) &&
	    TAILQ_EMPTY(&fuzz_dispatch_srv.closing) &&
	    TAILQ_EMPTY(&fuzz_dispatch_srv.execs);
}

/* Remove one file of the private tree (nftw callback). */
static int
fuzz_dispatch_rm(const char *path, const struct stat *st, int type,
		 struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* End everything the input started: no bash outlives it. */
static void
fuzz_dispatch_teardown(void)
{
	struct server *srv = &fuzz_dispatch_srv;

	fuzz_dispatch_disconnect();
	/* The daemon sees the EOF and frees the connection. */
	fuzz_check(fuzz_dispatch_wait(fuzz_dispatch_no_conns, 5));
	session_shutdown_all(srv);
	exec_free_all(srv);
	file_free_all(srv);
	if (!fuzz_dispatch_wait(fuzz_dispatch_idle, 5)) {
		fprintf(stderr, "fuzz-dispatch: sessions did not end in 5 s\n");
		abort();
	}
	ident_free_all(srv);
	/* Run the connection's deferred release. */
	event_base_loop(srv->base, EVLOOP_NONBLOCK);
	/* The next input starts from an empty files directory. */
	nftw(fuzz_dispatch_paths[0], fuzz_dispatch_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Stop the daemon and remove the private directory (at exit). */
static void
fuzz_dispatch_exit(void)
{
	fprintf(stderr, "fuzz-dispatch: %lu inputs, %lu requests, %lu final "
	    "responses, %lu reconnects, %lu retries; %lu inputs checked "
	    "strictly, %lu needed pending work ended, %lu closed by the "
	    "daemon\n", fuzz_dispatch_stats.inputs,
	    fuzz_dispatch_stats.requests, fuzz_dispatch_stats.finals,
	    fuzz_dispatch_stats.reconnects, fuzz_dispatch_stats.retries,
	    fuzz_dispatch_stats.strict, fuzz_dispatch_stats.forced,
	    fuzz_dispatch_stats.closed);
	server_free(&fuzz_dispatch_srv);
	nftw(fuzz_dispatch_root, fuzz_dispatch_rm, 16, FTW_DEPTH | FTW_PHYS);
	rmdir(fuzz_dispatch_root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Start the daemon every input talks to, in a private directory. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct server *srv = &fuzz_dispatch_srv;
	const char *tmp = getenv("TMPDIR");
	char home[128];
	size_t i;
	FILE *f;

	snprintf(fuzz_dispatch_root, sizeof fuzz_dispatch_root,
	    "%s/swerex-fuzz-XXXXXX", tmp != NULL && strlen(tmp) < 32 ? tmp :
	    "/tmp");
	fuzz_check(mkdtemp(fuzz_dispatch_root) != NULL);
	for (i = 0; i < FUZZ_DISPATCH_N(fuzz_dispatch_rel); i++)
		snprintf(fuzz_dispatch_paths[i], sizeof fuzz_dispatch_paths[i],
		    "%s/files%s", fuzz_dispatch_root, fuzz_dispatch_rel[i]);
	snprintf(fuzz_dispatch_rc[0], sizeof fuzz_dispatch_rc[0], "%s/rc",
	    fuzz_dispatch_root);
	snprintf(fuzz_dispatch_rc[1], sizeof fuzz_dispatch_rc[1], "%s/no-rc",
	    fuzz_dispatch_root);
	snprintf(home, sizeof home, "%s/home", fuzz_dispatch_root);
	snprintf(fuzz_dispatch_abs, sizeof fuzz_dispatch_abs, "%s/abs",
	    fuzz_dispatch_root);
	fuzz_check(mkdir(fuzz_dispatch_paths[0], 0700) == 0);
	fuzz_check(mkdir(home, 0700) == 0);
	fuzz_check((f = fopen(fuzz_dispatch_rc[0], "w")) != NULL);
	fputs("echo sourced\n", f);
	fclose(f);
	/* Sessions must not run the host's rc files (slow, not ours). */
	setenv("HOME", home, 1);
	unsetenv("BASH_ENV");
	unsetenv("ENV");
	unsetenv("PROMPT_COMMAND");
	log_set_level(getenv("FUZZ_DISPATCH_DEBUG") ? LOG_LVL_DEBUG :
	    LOG_LVL_ERROR);

	memset(srv, 0, sizeof *srv);
	server_config_defaults(&srv->cfg);
	srv->cfg.max_sessions = 3;       /* sessions are the expensive part */
	srv->cfg.max_conns = 8;        /* two reconnects, the old ones closing */
	srv->cfg.max_output = 65536;
	srv->cfg.kill_grace = 0.05;
	srv->cfg.resume_timeout = 0.5;
	fuzz_check(server_init(srv) == 0);
	atexit(fuzz_dispatch_exit);
	return 0;
}

/* Report a request left without its final response, then crash. */
static void
fuzz_dispatch_unanswered(void)
{
	size_t i;

	for (i = 0; i < fuzz_dispatch_in.n; i++) {
		struct fuzz_dispatch_frame *f = &fuzz_dispatch_in.frames[i];

		if (f->expect_final && f->finals == 0)
			fprintf(stderr, "fuzz-dispatch: request %zu (body case "
			    "%d) got no final response\n", i + 1, f->body);
	}
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Send one input's requests on a new connection and check the answers. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server *srv = &fuzz_dispatch_srv;
	size_t i;
	bool strict;

	fuzz_dispatch_in.n = 0;
	fuzz_dispatch_in.next = 0;
	fuzz_dispatch_in.eof = false;
	fuzz_dispatch_in.closing = false;
	fuzz_dispatch_in.garbage = false;
	fuzz_dispatch_in.garbage_raw = false;
	fuzz_dispatch_in.ident = false;
	fuzz_dispatch_in.reconnects = 0;
	fuzz_dispatch_parse(data, size);
	fuzz_dispatch_arena_free();
	if (fuzz_dispatch_in.n == 0)
		return 0;

	fuzz_check((fuzz_dispatch_in.in = evbuffer_new()) != NULL);
	fuzz_check((fuzz_dispatch_in.out = evbuffer_new()) != NULL);
	fuzz_dispatch_connect();
	fuzz_check(srv->n_conns == 1);
	fuzz_dispatch_send();

	if (!fuzz_dispatch_wait(fuzz_dispatch_done, FUZZ_DISPATCH_BOUND)) {
		/* Slow work: ending it must answer what waits on it. */
		fuzz_dispatch_stats.forced++;
		session_shutdown_all(srv);
		exec_free_all(srv);
		fuzz_dispatch_wait(fuzz_dispatch_done, 2);
	}
	/* The daemon closes only after telling why. */
	if (fuzz_dispatch_in.eof)
		fuzz_check(fuzz_dispatch_in.closing);
	strict = !fuzz_dispatch_in.eof && !fuzz_dispatch_in.closing &&
	    !fuzz_dispatch_in.garbage &&
	    fuzz_dispatch_in.next == fuzz_dispatch_in.n;
	if (strict && !fuzz_dispatch_answered(fuzz_dispatch_in.n))
		fuzz_dispatch_unanswered();
	fuzz_dispatch_stats.inputs++;
	fuzz_dispatch_stats.strict += strict;
	fuzz_dispatch_stats.closed += fuzz_dispatch_in.eof;
	fuzz_dispatch_stats.requests += fuzz_dispatch_in.next;

	fuzz_dispatch_teardown();
	evbuffer_free(fuzz_dispatch_in.in);
	evbuffer_free(fuzz_dispatch_in.out);
	for (i = 0; i < fuzz_dispatch_in.n; i++)
		free(fuzz_dispatch_in.frames[i].buf);
	return 0;
}
