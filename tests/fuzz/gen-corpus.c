/*
 * Write the seed corpus of the fuzz targets: valid frames of each request
 * kind, sequences of them, split, oversize and broken frames, and pty output
 * with markers, escapes and carriage returns. The output depends on nothing
 * but this file:
 *   fuzz-gen-corpus tests/fuzz/corpus
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>

#include "wire.h"

#define GEN_TOKEN "0123456789abcdef0123456789abcdef"
#define GEN_MARK(st, k) "@swx" GEN_TOKEN ":" st ":" k ";"

static const char *gen_dir;

/* Write one corpus file. */
static void
gen_write(const char *target, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", gen_dir, target);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof path, "%s/%s/%s", gen_dir, target, name);
	if ((f = fopen(path, "wb")) == NULL || fwrite(p, 1, n, f) != n ||
	    fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

/* Append a request as a frame whose flag byte is flag (harness bits). */
static void
gen_frame(struct evbuffer *b, Swerex__V1__Request *m, uint8_t flag)
{
	uint8_t *frame;
	size_t len;

	if (wire_encode(&m->base, &frame, &len) < 0)
		exit(1);
	frame[0] = flag;
	evbuffer_add(b, frame, len);
	free(frame);
}

/* Write a buffer as a corpus file, with a prefix of n bytes. */
static void
gen_flush(const char *target, const char *name, const char *prefix,
	  size_t n, struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *p = malloc(n + len + 1);

	memcpy(p, prefix, n);
	evbuffer_remove(b, p + n, len);
	gen_write(target, name, p, n + len);
	free(p);
}

/* The requests of every kind, numbered, as the dispatch harness sees them. */
static size_t
gen_requests(Swerex__V1__Request *r, size_t max)
{
	static Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	static Swerex__V1__IsAliveRequest alive = SWEREX__V1__IS_ALIVE_REQUEST__INIT;
	static Swerex__V1__CreateSessionRequest cs = SWEREX__V1__CREATE_SESSION_REQUEST__INIT;
	static Swerex__V1__BashAction run = SWEREX__V1__BASH_ACTION__INIT;
	static Swerex__V1__BashInterruptAction intr = SWEREX__V1__BASH_INTERRUPT_ACTION__INIT;
	static Swerex__V1__CloseSessionRequest close = SWEREX__V1__CLOSE_SESSION_REQUEST__INIT;
	static Swerex__V1__ListSessionsRequest list = SWEREX__V1__LIST_SESSIONS_REQUEST__INIT;
	static Swerex__V1__ExecuteRequest ex = SWEREX__V1__EXECUTE_REQUEST__INIT;
	static Swerex__V1__ReadFileRequest rf = SWEREX__V1__READ_FILE_REQUEST__INIT;
	static Swerex__V1__WriteFileRequest wf = SWEREX__V1__WRITE_FILE_REQUEST__INIT;
	static Swerex__V1__UploadBegin ub = SWEREX__V1__UPLOAD_BEGIN__INIT;
	static Swerex__V1__UploadData ud = SWEREX__V1__UPLOAD_DATA__INIT;
	static Swerex__V1__TransferEntry te = SWEREX__V1__TRANSFER_ENTRY__INIT;
	static Swerex__V1__TransferEntry *tes[1] = { &te };
	static Swerex__V1__UploadEnd ue = SWEREX__V1__UPLOAD_END__INIT;
	static Swerex__V1__DownloadRequest dl = SWEREX__V1__DOWNLOAD_REQUEST__INIT;
	static Swerex__V1__Ping ping = SWEREX__V1__PING__INIT;
	static char *argv[] = { "echo", "hi" };
	static char *expect[] = { "hi" };
	static uint8_t cid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	    15, 16 };
	size_t n = 0, i;

	for (i = 0; i < max; i++)
		swerex__v1__request__init(&r[i]);
	hello.protocol_version = 1;
	hello.client_name = "seed";
	hello.client_id.data = cid;
	hello.client_id.len = sizeof cid;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	r[n++].hello = &hello;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_IS_ALIVE;
	r[n++].is_alive = &alive;
	cs.session = "a";
	cs.has_startup_timeout_case =
	    SWEREX__V1__CREATE_SESSION_REQUEST__HAS_STARTUP_TIMEOUT_STARTUP_TIMEOUT;
	cs.startup_timeout = 2;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_CREATE_SESSION;
	r[n++].create_session = &cs;
	run.command = "echo hi";
	run.session = "a";
	run.has_timeout_case = SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT;
	run.timeout = 0.2;
	run.check = SWEREX__V1__CHECK__CHECK_SILENT;
	run.stream = true;
	run.n_expect = 1;
	run.expect = expect;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_RUN;
	r[n++].run = &run;
	intr.session = "a";
	r[n].body_case = SWEREX__V1__REQUEST__BODY_INTERRUPT;
	r[n++].interrupt = &intr;
	close.session = "a";
	r[n].body_case = SWEREX__V1__REQUEST__BODY_CLOSE_SESSION;
	r[n++].close_session = &close;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_LIST_SESSIONS;
	r[n++].list_sessions = &list;
	ex.n_argv = 2;
	ex.argv = argv;
	ex.has_timeout_case = SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT;
	ex.timeout = 0.2;
	ex.stream = true;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_EXECUTE;
	r[n++].execute = &ex;
	rf.path = "a";
	r[n].body_case = SWEREX__V1__REQUEST__BODY_READ_FILE;
	r[n++].read_file = &rf;
	wf.path = "a";
	wf.content.data = (uint8_t *)"content\n";
	wf.content.len = 8;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_WRITE_FILE;
	r[n++].write_file = &wf;
	ub.target_path = "b";
	ub.is_directory = true;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN;
	r[n++].upload_begin = &ub;
	te.path = "a";
	te.data.data = (uint8_t *)"data";
	te.data.len = 4;
	te.last = true;
	ud.n_entries = 1;
	ud.entries = tes;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_DATA;
	r[n++].upload_data = &ud;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
	r[n++].upload_end = &ue;
	dl.path = "b";
	r[n].body_case = SWEREX__V1__REQUEST__BODY_DOWNLOAD;
	r[n++].download = &dl;
	ping.payload.data = (uint8_t *)"ping";
	ping.payload.len = 4;
	r[n].body_case = SWEREX__V1__REQUEST__BODY_PING;
	r[n++].ping = &ping;
	for (i = 0; i < n; i++)
		r[i].id = i + 1;
	return n;
}

/* Seeds of fuzz-dispatch: each kind alone, then conversations. */
static void
gen_dispatch(Swerex__V1__Request *r, size_t n)
{
	enum { HELLO, ALIVE, CREATE, RUN, INTR, CLOSE, LIST, EXEC, READ, WRITE,
	    UBEGIN, UDATA, UEND, DOWNLOAD, PING };
	static const int convs[][8] = {
		{ CREATE, RUN, RUN, LIST, CLOSE, -1 },
		{ CREATE, RUN, INTR, RUN, CLOSE, -1 },
		{ WRITE, READ, DOWNLOAD, -1 },
		{ UBEGIN, UDATA, UEND, DOWNLOAD, READ, -1 },
		{ EXEC, EXEC, PING, ALIVE, -1 },
		{ HELLO, CREATE, RUN, -1 },
	};
	struct evbuffer *b = evbuffer_new();
	char name[64];
	size_t i, j;

	for (i = 0; i < n; i++) {
		gen_frame(b, &r[i], 0);
		snprintf(name, sizeof name, "kind-%02zu", i);
		gen_flush("dispatch", name, "", 0, b);
	}
	for (i = 0; i < sizeof convs / sizeof convs[0]; i++) {
		/* Each waits for the one before: a session is ready first. */
		for (j = 0; convs[i][j] >= 0; j++)
			gen_frame(b, &r[convs[i][j]], j > 0 ? 0x01 : 0);
		snprintf(name, sizeof name, "conversation-%zu", i);
		gen_flush("dispatch", name, "", 0, b);
	}
	/* A reconnect while a command runs: with an identity it is retried
	 * and answered once; without one it is lost. */
	r[RUN].run->command = "read x";
	gen_frame(b, &r[HELLO], 0);
	gen_frame(b, &r[CREATE], 0);
	gen_frame(b, &r[RUN], 0x01);
	gen_frame(b, &r[EXEC], 0);
	gen_frame(b, &r[LIST], 0x04);
	gen_frame(b, &r[RUN], 0x01);
	gen_flush("dispatch", "reconnect-identity", "", 0, b);
	gen_frame(b, &r[CREATE], 0);
	gen_frame(b, &r[RUN], 0x01);
	gen_frame(b, &r[UBEGIN], 0);
	gen_frame(b, &r[PING], 0x04);
	gen_flush("dispatch", "reconnect-anonymous", "", 0, b);
	r[RUN].run->command = "echo hi";
	/* All at once, without waiting. */
	for (i = 0; i < n; i++)
		gen_frame(b, &r[i], 0);
	gen_flush("dispatch", "all-kinds", "", 0, b);
	/* A Hello of an unknown version: answered, then the daemon closes. */
	r[HELLO].hello->protocol_version = 9;
	gen_frame(b, &r[HELLO], 0x02);
	gen_frame(b, &r[ALIVE], 0);
	gen_flush("dispatch", "hello-bad-version", "", 0, b);
	r[HELLO].hello->protocol_version = 1;
	/* A frame that is not a Request: a protocol error, then a close. */
	gen_frame(b, &r[ALIVE], 0);
	evbuffer_add(b, "\x80\x00\x00\x00\x03\xff\xff\xff", 8);
	gen_flush("dispatch", "garbage", "", 0, b);
	gen_frame(b, &r[ALIVE], 0);
	evbuffer_add(b, "\xc1\x00\x00\x00\x03\xff\xff\xff", 8);
	gen_flush("dispatch", "garbage-bad-flag", "", 0, b);
	evbuffer_free(b);
}

/* Seeds of fuzz-wire: the limit byte, the cut byte, then the stream. */
static void
gen_wire(Swerex__V1__Request *r, size_t n)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Pong pong = SWEREX__V1__PONG__INIT;
	struct evbuffer *b = evbuffer_new();
	char name[64];
	size_t i;

	for (i = 0; i < n; i++) {
		gen_frame(b, &r[i], 0);
		snprintf(name, sizeof name, "kind-%02zu", i);
		gen_flush("wire", name, "\x03\x03", 2, b);
	}
	for (i = 0; i < n; i++)
		gen_frame(b, &r[i], 0);
	gen_flush("wire", "all-bytewise", "\x03\x00", 2, b);
	for (i = 0; i < n; i++)
		gen_frame(b, &r[i], 0);
	gen_flush("wire", "all-small-cuts", "\x02\x01", 2, b);
	for (i = 0; i < n; i++)
		gen_frame(b, &r[i], 0);
	gen_flush("wire", "all-tiny-limit", "\x00\x02", 2, b);
	/* Oversize, a bad flag, a lie, a truncated frame, not protobuf. */
	gen_frame(b, &r[1], 0);
	evbuffer_add(b, "\x00\xff\xff\xff\xff", 5);
	gen_flush("wire", "oversize-4g", "\x03\x02", 2, b);
	gen_frame(b, &r[1], 0);
	evbuffer_add(b, "\x01\x00\x00\x00\x00", 5);
	gen_flush("wire", "bad-flag", "\x03\x02", 2, b);
	evbuffer_add(b, "\x00\x00\x00\x01\x00" "abc", 8);
	gen_flush("wire", "truncated", "\x03\x01", 2, b);
	evbuffer_add(b, "\x00\x00\x00\x00\x04\xff\xff\xff\xff", 9);
	gen_flush("wire", "not-protobuf", "\x03\x01", 2, b);
	evbuffer_add(b, "\x00\x00\x00\x00\x02\xf2\x01", 7);
	gen_flush("wire", "unknown-field", "\x03\x00", 2, b);
	/* A response, as libswerex reads them. */
	pong.payload.data = (uint8_t *)"payload";
	pong.payload.len = 7;
	resp.id = 5;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_PONG;
	resp.pong = &pong;
	wire_put(b, &resp.base);
	gen_flush("wire", "response-pong", "\x07\x01", 2, b);
	evbuffer_free(b);
}

/* Seeds of fuzz-filter: the limit, cut and take bytes, then pty output. */
static void
gen_filter(void)
{
	static const struct { const char *name, *text; } seeds[] = {
		{ "markers", "hi\r\n" GEN_MARK("0", "0") "next\r\n"
		    GEN_MARK("127", "2") },
		{ "crlf", "a\r\nb\r\r\nc\rd\r\r\r\n" GEN_MARK("1", "0") },
		{ "escapes", "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b]2;t\x1b\\"
		    "\x1b(B\x1bPdcs\x1b\\\a" GEN_MARK("0", "0") },
		{ "partial-markers", "@swx0123@swx" GEN_TOKEN ":12@@swx" GEN_TOKEN
		    ":1:0" "@swx" GEN_TOKEN ":1234:0;" GEN_MARK("255", "0") },
		{ "wrong-token", "@swxffffffffffffffffffffffffffffffff:0:0;"
		    GEN_MARK("0", "0") },
		{ "split-escape", "\x1b[3" "1m" "\x1b" "]x\x1b" "\\" "\r" },
		{ "cr-before-marker", "progress\r\r\r" GEN_MARK("0", "0") "\n" },
	};
	char buf[1024];
	size_t i, len;

	for (i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
		len = strlen(seeds[i].text);
		buf[0] = (char)(i * 37);        /* capture limit */
		buf[1] = (char)i;               /* cuts */
		buf[2] = (char)(i * 91);        /* what is taken */
		memcpy(buf + 3, seeds[i].text, len);
		gen_write("filter", seeds[i].name, buf, len + 3);
	}
	/* Long runs: carriage returns past the cap, output past the limit. */
	buf[0] = 0;
	buf[1] = 3;
	buf[2] = (char)200;
	memset(buf + 3, '\r', 600);
	memcpy(buf + 603, "x\n", 2);
	gen_write("filter", "cr-run", buf, 605);
	for (i = 0; i < 900; i++)
		buf[3 + i] = "line\r\n"[i % 6];
	gen_write("filter", "over-limit", buf, 903);
}

int
main(int argc, char **argv)
{
	Swerex__V1__Request r[32];
	size_t n;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz-gen-corpus DIR\n");
		return 2;
	}
	gen_dir = argv[1];
	if (mkdir(gen_dir, 0755) < 0 && errno != EEXIST) {
		perror(gen_dir);
		return 1;
	}
	n = gen_requests(r, 32);
	gen_wire(r, n);
	gen_dispatch(r, n);
	gen_filter();
	return 0;
}
