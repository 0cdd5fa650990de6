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
#include "raw.h"
#include "wire.h"

typedef Swerex__V1__Request Request;
typedef Swerex__V1__Response Response;

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
		raw_resp_show("got", resp);
		raw_resp_free(resp);
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
		raw_resp_show("frame", resp);
		raw_resp_free(resp);
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
	CHECK_STR(raw_resp_body_name(resp), "hello");
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO) {
		CHECK_INT(resp->hello->protocol_version, 1);
		CHECK(resp->hello->daemon_version != NULL && *resp->hello->daemon_version != '\0');
		CHECK(resp->hello->max_frame > 0);
		printf("# daemon_version \"%s\" max_frame %llu\n", resp->hello->daemon_version,
		       (unsigned long long)resp->hello->max_frame);
	} else {
		raw_resp_show("reply", resp);
	}
	raw_resp_free(resp);
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
	raw_resp_free(resp);
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
	raw_resp_free(resp);
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
	wire_put(out, &req.base);
	/* Flag 1 means compressed in gRPC; we do not support it. */
	*evbuffer_pullup(out, 1) = 1;
	REQUIRE(raw_flush(&r, out));
	evbuffer_free(out);
	resp = expect_error(&r, SWEREX_ERR_PROTOCOL);
	raw_resp_free(resp);
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
	raw_resp_free(resp);
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
	CHECK_STR(raw_resp_body_name(resp), "hello");
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO)
		CHECK_INT(resp->hello->max_frame, 1024);
	raw_resp_free(resp);

	memset(cmd, 'x', sizeof cmd - 1);
	cmd[sizeof cmd - 1] = '\0';
	run.command = cmd;
	req.id = 2;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &run;
	REQUIRE(raw_send(&r, &req));
	resp = expect_error(&r, SWEREX_ERR_PROTOCOL);
	raw_resp_free(resp);
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
		raw_resp_show("reply", resp);
	} else {
		printf("# garbage payload answered with %s\n",
		       swerex_error_kind_name((enum swerex_error_kind)resp->error->kind));
		CHECK(resp->error->kind == SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR ||
		      resp->error->kind == SWEREX__V1__ERROR_KIND__INVALID_REQUEST);
	}
	raw_resp_free(resp);
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
		wire_put(out, &req[i].base);
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
		CHECK_STR(raw_resp_body_name(resp), "is_alive");
		if (resp->id >= 7 && resp->id <= 9 && !seen[resp->id - 7])
			seen[resp->id - 7] = true;
		else
			raw_resp_show("unexpected", resp);
		if (resp->body_case == SWEREX__V1__RESPONSE__BODY_IS_ALIVE)
			CHECK(resp->is_alive->is_alive);
		raw_resp_free(resp);
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

HTEST(regular_file_at_socket_path_kept)
{
	struct harness *h2;
	char path[512], buf[16] = "";
	FILE *f;
	int st;

	snprintf(path, sizeof path, "%s/not-a-socket", harness_dir(h));
	REQUIRE((f = fopen(path, "w")) != NULL);
	fputs("precious", f);
	fclose(f);
	h2 = harness_spawn(path, NULL);
	REQUIRE(h2 != NULL);
	CHECK(harness_wait_ready(h2, 20) == 0);
	st = harness_wait_exit(h2, 20);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
	harness_free(h2);
	/* The file is still there, untouched. */
	REQUIRE((f = fopen(path, "r")) != NULL);
	CHECK(fgets(buf, sizeof buf, f) != NULL);
	fclose(f);
	CHECK_STR(buf, "precious");
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
	TAP_T(regular_file_at_socket_path_kept),
)
