/* Unit tests of the frame codec (lib/wire.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "tap.h"
#include "wire.h"

/* Append a raw frame header to buf. */
static void
put_header(struct evbuffer *buf, uint8_t flag, uint32_t len)
{
	uint8_t h[WIRE_HEADER_LEN];

	h[0] = flag;
	h[1] = (uint8_t)(len >> 24);
	h[2] = (uint8_t)(len >> 16);
	h[3] = (uint8_t)(len >> 8);
	h[4] = (uint8_t)len;
	evbuffer_add(buf, h, sizeof h);
}

/* Frame a Run request with the given id and command into buf. */
static void
put_run(struct evbuffer *buf, uint64_t id, const char *command)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__BashAction run = SWEREX__V1__BASH_ACTION__INIT;

	run.command = (char *)command;
	run.session = (char *)"s1";
	run.has_timeout_case = SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT;
	run.timeout = 2.5;
	run.check = SWEREX__V1__CHECK__CHECK_SILENT;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &run;
	REQUIRE(wire_put(buf, &req.base) == 0);
}

/* Take one Request from buf; return the wire_take() code. */
static int
take_request(struct evbuffer *buf, size_t max, Swerex__V1__Request **req)
{
	ProtobufCMessage *msg = NULL;
	int r;

	r = wire_take(buf, max, &swerex__v1__request__descriptor, &msg);
	*req = (Swerex__V1__Request *)msg;
	return r;
}

TEST(round_trip)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Request *req;
	uint8_t flag;
	uint32_t len;

	REQUIRE(buf != NULL);
	put_run(buf, 42, "echo hi");
	REQUIRE(wire_peek_length(buf, &flag, &len) == WIRE_OK);
	CHECK_INT(flag, 0);
	CHECK_INT(evbuffer_get_length(buf), (size_t)len + WIRE_HEADER_LEN);

	REQUIRE(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req) == WIRE_OK);
	CHECK_INT(evbuffer_get_length(buf), 0);
	CHECK_INT(req->id, 42);
	REQUIRE(req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	CHECK_STR(req->run->command, "echo hi");
	CHECK_STR(req->run->session, "s1");
	CHECK_INT(req->run->has_timeout_case,
	    SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT);
	CHECK(req->run->timeout == 2.5);
	CHECK_INT(req->run->check, SWEREX__V1__CHECK__CHECK_SILENT);
	CHECK_INT(req->run->has_max_output_case,
	    SWEREX__V1__BASH_ACTION__HAS_MAX_OUTPUT__NOT_SET);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	evbuffer_free(buf);
}

TEST(empty_message)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Request empty = SWEREX__V1__REQUEST__INIT, *req;

	REQUIRE(buf != NULL);
	REQUIRE(wire_put(buf, &empty.base) == 0);
	CHECK_INT(evbuffer_get_length(buf), WIRE_HEADER_LEN);
	REQUIRE(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req) == WIRE_OK);
	CHECK_INT(req->id, 0);
	CHECK_INT(req->body_case, SWEREX__V1__REQUEST__BODY__NOT_SET);
	CHECK_INT(evbuffer_get_length(buf), 0);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	evbuffer_free(buf);
}

TEST(one_byte_at_a_time)
{
	struct evbuffer *src = evbuffer_new(), *buf = evbuffer_new();
	Swerex__V1__Request *req = NULL;
	unsigned char *frame;
	size_t n, i;
	int r;

	REQUIRE(src != NULL && buf != NULL);
	put_run(src, 7, "cat /etc/hostname");
	n = evbuffer_get_length(src);
	frame = evbuffer_pullup(src, -1);
	REQUIRE(frame != NULL);

	for (i = 0; i < n; i++) {
		r = take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req);
		if (r != WIRE_AGAIN) {
			tap_diag(__FILE__, __LINE__,
			    "wire_take gave %d after %zu of %zu bytes", r, i, n);
			break;
		}
		CHECK_INT(evbuffer_get_length(buf), i);
		evbuffer_add(buf, frame + i, 1);
	}
	REQUIRE(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req) == WIRE_OK);
	CHECK_INT(req->id, 7);
	REQUIRE(req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	CHECK_STR(req->run->command, "cat /etc/hostname");
	CHECK_INT(evbuffer_get_length(buf), 0);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	evbuffer_free(src);
	evbuffer_free(buf);
}

TEST(two_frames_in_one_buffer)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Request *req;

	REQUIRE(buf != NULL);
	put_run(buf, 1, "first");
	put_run(buf, 2, "second");

	REQUIRE(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req) == WIRE_OK);
	CHECK_INT(req->id, 1);
	CHECK_STR(req->run->command, "first");
	protobuf_c_message_free_unpacked(&req->base, NULL);

	REQUIRE(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req) == WIRE_OK);
	CHECK_INT(req->id, 2);
	CHECK_STR(req->run->command, "second");
	protobuf_c_message_free_unpacked(&req->base, NULL);

	CHECK_INT(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req), WIRE_AGAIN);
	CHECK_INT(evbuffer_get_length(buf), 0);
	evbuffer_free(buf);
}

TEST(response_round_trip)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT, *got;
	Swerex__V1__BashObservation obs = SWEREX__V1__BASH_OBSERVATION__INIT;
	ProtobufCMessage *msg = NULL;
	static const uint8_t out[] = "a\0b\n";

	REQUIRE(buf != NULL);
	obs.output.data = (uint8_t *)out;
	obs.output.len = sizeof out - 1;
	obs.has_exit_code_case =
	    SWEREX__V1__BASH_OBSERVATION__HAS_EXIT_CODE_EXIT_CODE;
	obs.exit_code = 0;
	resp.id = 9;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_OBSERVATION;
	resp.observation = &obs;
	REQUIRE(wire_put(buf, &resp.base) == 0);

	REQUIRE(wire_take(buf, WIRE_MAX_FRAME_DEFAULT,
	    &swerex__v1__response__descriptor, &msg) == WIRE_OK);
	got = (Swerex__V1__Response *)msg;
	CHECK_INT(got->id, 9);
	REQUIRE(got->body_case == SWEREX__V1__RESPONSE__BODY_OBSERVATION);
	CHECK_INT(got->observation->output.len, 4);
	CHECK(memcmp(got->observation->output.data, out, 4) == 0);
	/* Presence survives a zero value. */
	CHECK_INT(got->observation->has_exit_code_case,
	    SWEREX__V1__BASH_OBSERVATION__HAS_EXIT_CODE_EXIT_CODE);
	CHECK_INT(got->observation->exit_code, 0);
	protobuf_c_message_free_unpacked(msg, NULL);
	evbuffer_free(buf);
}

TEST(nonzero_flag)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Request *req = NULL;

	REQUIRE(buf != NULL);
	put_header(buf, 1, 0);
	CHECK_INT(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req), WIRE_E_FLAG);
	CHECK(req == NULL);
	/* An error leaves the buffer alone: the caller drops the peer. */
	CHECK_INT(evbuffer_get_length(buf), WIRE_HEADER_LEN);
	CHECK(wire_strerror(WIRE_E_FLAG) != NULL);
	evbuffer_free(buf);
}

TEST(size_above_limit_before_payload)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Request *req = NULL;
	uint8_t h[WIRE_HEADER_LEN] = { 0, 0, 0, 1, 1 };	/* 257 */

	REQUIRE(buf != NULL);
	/* Four header bytes: not enough to judge yet. */
	evbuffer_add(buf, h, 4);
	CHECK_INT(take_request(buf, 256, &req), WIRE_AGAIN);
	/* The fifth makes the length known: rejected with no payload in. */
	evbuffer_add(buf, h + 4, 1);
	CHECK_INT(take_request(buf, 256, &req), WIRE_E_SIZE);
	CHECK(req == NULL);

	/* A length equal to the limit is allowed and waits for its payload. */
	evbuffer_drain(buf, evbuffer_get_length(buf));
	put_header(buf, 0, 256);
	CHECK_INT(take_request(buf, 256, &req), WIRE_AGAIN);
	evbuffer_free(buf);
}

TEST(garbage_payload)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Request *req = NULL;
	static const uint8_t junk[] = { 0xff, 0xff, 0xff };

	REQUIRE(buf != NULL);
	put_header(buf, 0, sizeof junk);
	evbuffer_add(buf, junk, sizeof junk);
	put_run(buf, 5, "after");

	CHECK_INT(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req),
	    WIRE_E_DECODE);
	CHECK(req == NULL);
	/* The bad frame is consumed; the next one is intact. */
	REQUIRE(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req) == WIRE_OK);
	CHECK_INT(req->id, 5);
	CHECK_STR(req->run->command, "after");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	CHECK_INT(evbuffer_get_length(buf), 0);
	evbuffer_free(buf);
}

TEST(length_all_ones)
{
	struct evbuffer *buf = evbuffer_new();
	Swerex__V1__Request *req = NULL;
	uint8_t flag;
	uint32_t len;

	REQUIRE(buf != NULL);
	put_header(buf, 0, 0xFFFFFFFFu);
	REQUIRE(wire_peek_length(buf, &flag, &len) == WIRE_OK);
	CHECK(len == 0xFFFFFFFFu);
	CHECK_INT(take_request(buf, WIRE_MAX_FRAME_DEFAULT, &req), WIRE_E_SIZE);
	CHECK_INT(take_request(buf, UINT32_MAX - 1, &req), WIRE_E_SIZE);
	/* With no limit at all the length must not wrap: it waits. */
	CHECK_INT(take_request(buf, SIZE_MAX, &req), WIRE_AGAIN);
	CHECK(req == NULL);
	CHECK_INT(evbuffer_get_length(buf), WIRE_HEADER_LEN);
	evbuffer_free(buf);
}

TAP_MAIN(
	TAP_T(round_trip),
	TAP_T(empty_message),
	TAP_T(one_byte_at_a_time),
	TAP_T(two_frames_in_one_buffer),
	TAP_T(response_round_trip),
	TAP_T(nonzero_flag),
	TAP_T(size_above_limit_before_payload),
	TAP_T(garbage_payload),
	TAP_T(length_all_ones)
)
