/* Frame codec: 1 flag byte, 4-byte big-endian length, protobuf bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* Write the frame of msg, whose packed size is len, at p. */
static void
wire_pack(const ProtobufCMessage *msg, size_t len, uint8_t *p)
{
	p[0] = 0;
	p[1] = (uint8_t)(len >> 24);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 8);
	p[4] = (uint8_t)len;
	protobuf_c_message_pack(msg, p + WIRE_HEADER_LEN);
}

/* Encode msg as one frame in a malloc'd buffer; 0 or -errno. */
int
wire_encode(const ProtobufCMessage *msg, uint8_t **frame, size_t *frame_len)
{
	size_t len = protobuf_c_message_get_packed_size(msg);

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	if ((*frame = malloc(len + WIRE_HEADER_LEN)) == NULL)
		return -ENOMEM;
	wire_pack(msg, len, *frame);
	*frame_len = len + WIRE_HEADER_LEN;
	return 0;
}

/* Append one framed message to out. */
int
wire_put(struct evbuffer *out, const ProtobufCMessage *msg)
{
	struct evbuffer_iovec v;
	size_t len = protobuf_c_message_get_packed_size(msg);

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	if (evbuffer_reserve_space(out, len + WIRE_HEADER_LEN, &v, 1) != 1)
		return -ENOMEM;
	wire_pack(msg, len, v.iov_base);
	v.iov_len = len + WIRE_HEADER_LEN;
	if (evbuffer_commit_space(out, &v, 1) != 0)
		return -ENOMEM;
	return 0;
}

/* Read the header of the next frame without consuming it. */
int
wire_peek_length(struct evbuffer *in, uint8_t *flag, uint32_t *len)
{
	uint8_t h[WIRE_HEADER_LEN];

	if (evbuffer_copyout(in, h, sizeof h) != (ev_ssize_t)sizeof h)
		return WIRE_AGAIN;
	*flag = h[0];
	*len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
	       (uint32_t)h[3] << 8 | h[4];
	return WIRE_OK;
}

/*
 * Take one complete frame from in and unpack it. The length is checked before
 * the payload is waited for, so a hostile peer cannot make the caller buffer
 * more than max_frame + header bytes.
 */
int
wire_take(struct evbuffer *in, size_t max_frame,
	  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg)
{
	uint8_t flag;
	uint32_t len;
	unsigned char *p;
	int r;

	r = wire_peek_length(in, &flag, &len);
	if (r != WIRE_OK)
		return r;
	if (flag != 0)
		return WIRE_E_FLAG;
	if (len > max_frame)
		return WIRE_E_SIZE;
	if (evbuffer_get_length(in) < (size_t)len + WIRE_HEADER_LEN)
		return WIRE_AGAIN;
	p = evbuffer_pullup(in, (ev_ssize_t)len + WIRE_HEADER_LEN);
	if (p == NULL)
		return -ENOMEM;
	*msg = protobuf_c_message_unpack(desc, NULL, len, p + WIRE_HEADER_LEN);
	evbuffer_drain(in, (size_t)len + WIRE_HEADER_LEN);
	return *msg ? WIRE_OK : WIRE_E_DECODE;
}

/* Describe a wire_take() error code. */
const char *
wire_strerror(int code)
{
	switch (code) {
	case WIRE_E_FLAG: return "unsupported frame flag (compression is not supported)";
	case WIRE_E_SIZE: return "frame length above the limit";
	case WIRE_E_DECODE: return "frame payload is not a valid protobuf message";
	default: return code < 0 ? strerror(-code) : "no error";
	}
}
