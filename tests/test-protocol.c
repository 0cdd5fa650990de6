/*
 * Wire protocol: speak the framing over a raw socket (1 flag byte, 4-byte
 * big-endian length, protobuf) and check how the daemon treats good and bad
 * peers; check the daemon's claim on its socket path.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <event2/buffer.h>

#include "harness.h"
#include "wire.h"

typedef Swerex__V1__Request Request;
typedef Swerex__V1__Response Response;

/* A raw connection: socket and input buffer. */
struct raw {
	int fd;
	struct evbuffer *in;
};

/* Connect to a Unix socket path; fd -1 on failure. */
static struct raw
raw_connect(const char *path)
{
	struct raw r = { -1, NULL };
	struct sockaddr_un sa = { 0 };

	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	r.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r.fd >= 0 && connect(r.fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(r.fd);
		r.fd = -1;
	}
	r.in = evbuffer_new();
	return r;
}

/* Close a raw connection. */
static void
raw_close(struct raw *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	if (r->in != NULL)
		evbuffer_free(r->in);
	r->in = NULL;
}

/* Write all bytes; false on error (EPIPE when the daemon closed). */
static bool
raw_write(struct raw *r, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		w = send(r->fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

/* Append a framed request to out. */
static void
frame_request(struct evbuffer *out, const Request *req)
{
	wire_put(out, &req->base);
}

/* Send the bytes buffered in out and empty it. */
static bool
raw_flush(struct raw *r, struct evbuffer *out)
{
	size_t n = evbuffer_get_length(out);
	unsigned char *p = evbuffer_pullup(out, -1);
	bool ok = raw_write(r, p, n);

	evbuffer_drain(out, n);
	return ok;
}

/* Send one framed request. */
static bool
raw_send(struct raw *r, const Request *req)
{
	struct evbuffer *out = evbuffer_new();
	bool ok;

	frame_request(out, req);
	ok = raw_flush(r, out);
	evbuffer_free(out);
	return ok;
}

/*
 * Receive one response within timeout: 1 got one, 0 EOF, -1 timeout,
 * -2 undecodable frame.
 */
static int
raw_recv(struct raw *r, Response **resp, double timeout)
{
	double deadline = harness_now() + timeout;
	struct pollfd pfd = { r->fd, POLLIN, 0 };
	int ms, t;

	*resp = NULL;
	for (;;) {
		t = wire_take(r->in, 1u << 30, &swerex__v1__response__descriptor,
			      (ProtobufCMessage **)resp);
		if (t == WIRE_OK)
			return 1;
		if (t != WIRE_AGAIN)
			return -2;
		ms = (int)((deadline - harness_now()) * 1000);
		if (ms <= 0)
			return -1;
		if (poll(&pfd, 1, ms) <= 0)
			continue;
		t = evbuffer_read(r->in, r->fd, 65536);
		if (t == 0 || (t < 0 && errno == ECONNRESET))
			return 0;
		if (t < 0 && errno != EINTR && errno != EAGAIN)
			return 0;
	}
}

/* Free a response. */
static void
resp_free(Response *resp)
{
	if (resp != NULL)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* Name the body of a response. */
static const char *
resp_body_name(const Response *resp)
{
	switch (resp->body_case) {
	case SWEREX__V1__RESPONSE__BODY_ERROR: return "error";
	case SWEREX__V1__RESPONSE__BODY_CHUNK: return "chunk";
	case SWEREX__V1__RESPONSE__BODY_HELLO: return "hello";
	case SWEREX__V1__RESPONSE__BODY_IS_ALIVE: return "is_alive";
	case SWEREX__V1__RESPONSE__BODY_CREATE_SESSION: return "create_session";
	case SWEREX__V1__RESPONSE__BODY_OBSERVATION: return "observation";
	case SWEREX__V1__RESPONSE__BODY_CLOSE_SESSION: return "close_session";
	case SWEREX__V1__RESPONSE__BODY_LIST_SESSIONS: return "list_sessions";
	default: return "none";
	}
}

/* Print a response as TAP comments. */
static void
resp_show(const char *label, const Response *resp)
{
	if (resp == NULL) {
		printf("#   %s: none\n", label);
		return;
	}
	printf("#   %s: id %llu body %s", label, (unsigned long long)resp->id,
	       resp_body_name(resp));
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR)
		printf(" kind %s message \"%s\"",
		       swerex_error_kind_name((enum swerex_error_kind)resp->error->kind),
		       resp->error->message);
	printf("\n");
}

/* Receive a response and check it is an error of kind; return it or NULL. */
static Response *
expect_error_at(const char *file, int line, struct raw *r, int kind)
{
	Response *resp = NULL;
	int got = raw_recv(r, &resp, 20);

	if (got != 1) {
		tap_diag(file, line, "expected an Error %s, got %s",
			 swerex_error_kind_name((enum swerex_error_kind)kind),
			 got == 0 ? "EOF" : got == -1 ? "nothing in 20 s" : "an undecodable frame");
		return NULL;
	}
	if (resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR ||
	    (int)resp->error->kind != kind) {
		tap_diag(file, line, "expected an Error %s",
			 swerex_error_kind_name((enum swerex_error_kind)kind));
		resp_show("got", resp);
		resp_free(resp);
		return NULL;
	}
	return resp;
}
#define expect_error(r, kind) expect_error_at(__FILE__, __LINE__, (r), (kind))

/* Check the daemon closes the connection (EOF with nothing more) soon. */
static void
expect_eof_at(const char *file, int line, struct raw *r)
{
	Response *resp = NULL;
	int got = raw_recv(r, &resp, 20);

	if (got == 0)
		return;
	if (got == 1) {
		tap_diag(file, line, "expected the connection to close, got another frame");
		resp_show("frame", resp);
		resp_free(resp);
	} else {
		tap_diag(file, line, "expected the connection to close, %s",
			 got == -1 ? "it stayed open for 20 s" : "got an undecodable frame");
	}
}
#define expect_eof(r) expect_eof_at(__FILE__, __LINE__, (r))

/* Send a Hello with version; return whether it was written. */
static bool
send_hello(struct raw *r, uint64_t id, uint32_t version)
{
	Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;

	hello.protocol_version = version;
	hello.client_name = "test-protocol";
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	return raw_send(r, &req);
}

/* Connect and complete the handshake; fd -1 (after a diagnostic) on failure. */
static struct raw
raw_connect_hello(struct harness *h)
{
	struct raw r = raw_connect(harness_socket_path(h));
	Response *resp = NULL;

	if (r.fd < 0) {
		tap_diag(__FILE__, __LINE__, "connect: %s", strerror(errno));
		return r;
	}
	if (!send_hello(&r, 1, 1) || raw_recv(&r, &resp, 20) != 1 ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_HELLO) {
		tap_diag(__FILE__, __LINE__, "handshake failed");
		resp_show("reply", resp);
		close(r.fd);
		r.fd = -1;
	}
	resp_free(resp);
	return r;
}

/* Fill an is_alive request with id. */
static void
is_alive_request(Request *req, Swerex__V1__IsAliveRequest *body, uint64_t id)
{
	swerex__v1__request__init(req);
	swerex__v1__is_alive_request__init(body);
	req->id = id;
	req->body_case = SWEREX__V1__REQUEST__BODY_IS_ALIVE;
	req->is_alive = body;
}

/* Check the daemon still serves new clients through libswerex. */
static void
check_still_serving_at(const char *file, int line, struct harness *h)
{
	struct swerex_client *c;
	struct swerex_error *err = NULL;
	bool alive = false;
	char *msg = NULL;

	c = harness_connect(h);
	if (c == NULL) {
		tap_diag(file, line, "the daemon no longer accepts clients");
		return;
	}
	if (swerex_is_alive(c, &alive, &msg, &err) != 0) {
		tap_diag(file, line, "is_alive failed");
		harness_show_error("error", err);
		swerex_error_free(err);
	} else if (!alive) {
		tap_diag(file, line, "daemon says it is not alive: %s", msg ? msg : "");
	}
	free(msg);
	swerex_client_free(c);
}
#define check_still_serving(h) check_still_serving_at(__FILE__, __LINE__, (h))

HTEST(hello_current_version)
{
	struct raw r = raw_connect(harness_socket_path(h));
	Response *resp = NULL;

	REQUIRE(r.fd >= 0);
	REQUIRE(send_hello(&r, 42, 1));
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	CHECK_INT(resp->id, 42);
	CHECK_STR(resp_body_name(resp), "hello");
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO) {
		CHECK_INT(resp->hello->protocol_version, 1);
		CHECK(resp->hello->daemon_version != NULL && *resp->hello->daemon_version != '\0');
		CHECK(resp->hello->max_frame > 0);
		printf("# daemon_version \"%s\" max_frame %llu\n", resp->hello->daemon_version,
		       (unsigned long long)resp->hello->max_frame);
	} else {
		resp_show("reply", resp);
	}
	resp_free(resp);
	raw_close(&r);
}

HTEST(hello_unsupported_version)
{
	struct raw r = raw_connect(harness_socket_path(h));
	Response *resp;

	REQUIRE(r.fd >= 0);
	REQUIRE(send_hello(&r, 5, 99));
	resp = expect_error(&r, SWEREX_ERR_UNSUPPORTED_VERSION);
	if (resp != NULL)
		CHECK_INT(resp->id, 5);
	resp_free(resp);
	raw_close(&r);
	check_still_serving(h);
}

HTEST(request_before_hello)
{
	struct raw r = raw_connect(harness_socket_path(h));
	Swerex__V1__IsAliveRequest body;
	Request req;
	Response *resp;

	REQUIRE(r.fd >= 0);
	is_alive_request(&req, &body, 3);
	REQUIRE(raw_send(&r, &req));
	resp = expect_error(&r, SWEREX_ERR_INVALID_REQUEST);
	resp_free(resp);
	expect_eof(&r);
	raw_close(&r);
	check_still_serving(h);
}

HTEST(bad_flag_byte)
{
	struct raw r = raw_connect_hello(h);
	Swerex__V1__IsAliveRequest body;
	struct evbuffer *out;
	Request req;
	Response *resp;

	REQUIRE(r.fd >= 0);
	out = evbuffer_new();
	is_alive_request(&req, &body, 4);
	frame_request(out, &req);
	/* Flag 1 means compressed in gRPC; we do not support it. */
	*evbuffer_pullup(out, 1) = 1;
	REQUIRE(raw_flush(&r, out));
	evbuffer_free(out);
	resp = expect_error(&r, SWEREX_ERR_PROTOCOL);
	resp_free(resp);
	expect_eof(&r);
	raw_close(&r);
	check_still_serving(h);
}

HTEST(huge_length)
{
	static const unsigned char frame[] = { 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
	struct raw r = raw_connect_hello(h);
	Response *resp;

	REQUIRE(r.fd >= 0);
	REQUIRE(raw_write(&r, frame, sizeof frame));
	resp = expect_error(&r, SWEREX_ERR_PROTOCOL);
	resp_free(resp);
	expect_eof(&r);
	raw_close(&r);
	check_still_serving(h);
}

static const char *const small_frame_args[] = { "--max-frame", "1024", NULL };

HTEST_ARGS(frame_above_max_frame, small_frame_args)
{
	struct raw r = raw_connect(harness_socket_path(h));
	Swerex__V1__BashAction run = SWEREX__V1__BASH_ACTION__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;
	Response *resp = NULL;
	char cmd[2048];

	REQUIRE(r.fd >= 0);
	REQUIRE(send_hello(&r, 1, 1));
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	CHECK_STR(resp_body_name(resp), "hello");
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO)
		CHECK_INT(resp->hello->max_frame, 1024);
	resp_free(resp);

	memset(cmd, 'x', sizeof cmd - 1);
	cmd[sizeof cmd - 1] = '\0';
	run.command = cmd;
	req.id = 2;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &run;
	REQUIRE(raw_send(&r, &req));
	resp = expect_error(&r, SWEREX_ERR_PROTOCOL);
	resp_free(resp);
	expect_eof(&r);
	raw_close(&r);
	check_still_serving(h);
}

HTEST(garbage_payload)
{
	/* Field 1, length-delimited, claims 100 bytes but has 2. */
	static const unsigned char frame[] = { 0, 0, 0, 0, 4, 0x0a, 0x64, 'a', 'b' };
	struct raw r = raw_connect_hello(h);
	Response *resp = NULL;
	int got;

	REQUIRE(r.fd >= 0);
	REQUIRE(raw_write(&r, frame, sizeof frame));
	got = raw_recv(&r, &resp, 20);
	if (got != 1 || resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR) {
		tap_diag(__FILE__, __LINE__, "expected an Error for an undecodable payload (got %d)", got);
		resp_show("reply", resp);
	} else {
		printf("# garbage payload answered with %s\n",
		       swerex_error_kind_name((enum swerex_error_kind)resp->error->kind));
		CHECK(resp->error->kind == SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR ||
		      resp->error->kind == SWEREX__V1__ERROR_KIND__INVALID_REQUEST);
	}
	resp_free(resp);
	expect_eof(&r);
	raw_close(&r);
	check_still_serving(h);
}

HTEST(truncated_frame_then_eof)
{
	static const unsigned char frame[] = { 0, 0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	struct raw r = raw_connect_hello(h);
	struct raw r2 = raw_connect(harness_socket_path(h));

	REQUIRE(r.fd >= 0);
	REQUIRE(raw_write(&r, frame, sizeof frame));
	raw_close(&r);
	/* Half a header before hello, then EOF. */
	REQUIRE(r2.fd >= 0);
	REQUIRE(raw_write(&r2, frame, 3));
	raw_close(&r2);
	check_still_serving(h);
	CHECK(harness_running(h));
}

HTEST(responses_carry_request_ids)
{
	struct raw r = raw_connect_hello(h);
	Swerex__V1__IsAliveRequest body[3];
	struct evbuffer *out;
	Request req[3];
	Response *resp;
	bool seen[3] = { false, false, false };
	int i;

	REQUIRE(r.fd >= 0);
	out = evbuffer_new();
	for (i = 0; i < 3; i++) {
		is_alive_request(&req[i], &body[i], 7 + (uint64_t)i);
		frame_request(out, &req[i]);
	}
	/* Three frames in one write. */
	REQUIRE(raw_flush(&r, out));
	evbuffer_free(out);
	for (i = 0; i < 3; i++) {
		resp = NULL;
		if (raw_recv(&r, &resp, 20) != 1) {
			tap_diag(__FILE__, __LINE__, "only %d of 3 responses", i);
			break;
		}
		CHECK_STR(resp_body_name(resp), "is_alive");
		if (resp->id >= 7 && resp->id <= 9 && !seen[resp->id - 7])
			seen[resp->id - 7] = true;
		else
			resp_show("unexpected", resp);
		if (resp->body_case == SWEREX__V1__RESPONSE__BODY_IS_ALIVE)
			CHECK(resp->is_alive->is_alive);
		resp_free(resp);
	}
	CHECK(seen[0] && seen[1] && seen[2]);
	raw_close(&r);
}

HTEST(second_daemon_on_same_path)
{
	struct swerex_error *err = NULL;
	struct harness *h2;
	char *msg = NULL;
	bool alive;
	int st;

	h2 = harness_spawn(harness_socket_path(h), NULL);
	REQUIRE(h2 != NULL);
	CHECK_INT(harness_wait_ready(h2, 20), 0);
	st = harness_wait_exit(h2, 20);
	if (st == -1) {
		tap_diag(__FILE__, __LINE__, "second daemon still running");
		harness_kill(h2);
	} else {
		CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
		printf("# second daemon: %s\n", WIFEXITED(st) ? "exited non-zero" : "killed");
	}
	if (tap_failed_now)
		harness_print_log(h2);
	harness_free(h2);
	/* The first daemon's socket is still there and it still serves. */
	CHECK(access(harness_socket_path(h), F_OK) == 0);
	check_still_serving(h);
	/* And the connection made before the second daemon started still works. */
	alive = false;
	if (swerex_is_alive(harness_client(h), &alive, &msg, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "is_alive on the first connection failed");
		harness_show_error("error", err);
		swerex_error_free(err);
	}
	CHECK(alive);
	free(msg);
}

HTEST(stale_socket_replaced)
{
	struct sockaddr_un sa = { 0 };
	struct harness *h2;
	char path[512];
	int fd, st;

	snprintf(path, sizeof path, "%s/stale.sock", harness_dir(h));
	sa.sun_family = AF_UNIX;
	REQUIRE(strlen(path) < sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	REQUIRE(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	REQUIRE(listen(fd, 1) == 0);
	close(fd);
	/* The file stays; nobody listens on it. */
	REQUIRE(access(path, F_OK) == 0);

	h2 = harness_spawn(path, NULL);
	REQUIRE(h2 != NULL);
	if (harness_wait_ready(h2, 20) != 1) {
		tap_diag(__FILE__, __LINE__, "daemon did not start on a stale socket path");
		harness_print_log(h2);
	} else {
		check_still_serving(h2);
		st = harness_stop(h2);
		CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	harness_free(h2);
}

TAP_MAIN(
	TAP_T(hello_current_version),
	TAP_T(hello_unsupported_version),
	TAP_T(request_before_hello),
	TAP_T(bad_flag_byte),
	TAP_T(huge_length),
	TAP_T(frame_above_max_frame),
	TAP_T(garbage_payload),
	TAP_T(truncated_frame_then_eof),
	TAP_T(responses_carry_request_ids),
	TAP_T(second_daemon_on_same_path),
	TAP_T(stale_socket_replaced),
)
