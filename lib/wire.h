/* Frame codec shared by swerexd and libswerex (internal, not installed). */
#ifndef SWEREX_WIRE_H
#define SWEREX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <protobuf-c/protobuf-c.h>

#include "swerex.pb-c.h"

#define WIRE_HEADER_LEN 5
#define WIRE_MAX_FRAME_DEFAULT (16u * 1024 * 1024)

/* wire_take() results; negative values are -errno. */
enum {
	WIRE_OK = 0,      /* a frame was taken */
	WIRE_AGAIN = 1,   /* not enough bytes buffered yet */
	WIRE_E_FLAG = 2,  /* unknown flag byte */
	WIRE_E_SIZE = 3,  /* length above the limit */
	WIRE_E_DECODE = 4 /* payload is not a valid message */
};

int wire_put(struct evbuffer *out, const ProtobufCMessage *msg);
int wire_encode(const ProtobufCMessage *msg, uint8_t **frame, size_t *len);
int wire_take(struct evbuffer *in, size_t max_frame,
	      const ProtobufCMessageDescriptor *desc, ProtobufCMessage **msg);
int wire_peek_length(struct evbuffer *in, uint8_t *flag, uint32_t *len);
const char *wire_strerror(int code);

#endif
