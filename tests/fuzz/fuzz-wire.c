/*
 * fuzz-wire: the frame codec (lib/wire.c) as swerexd's conn.c and
 * libswerex drive it, fed an arbitrary byte stream cut into arbitrary reads.
 *
 * Input: byte 0 picks the frame limit (bits 0-1) and whether the payload is
 * a Request or a Response (bit 2); byte 1 picks the cuts; the rest is the
 * stream. Invariants:
 *   - each read is its own exact-size allocation handed to the buffer by
 *     reference, so reading past the input is an ASan error;
 *   - an oversize length or a bad flag is refused as soon as its header is
 *     there, and the buffer never holds more than limit + header bytes;
 *   - a decoded message re-encodes (wire_encode and wire_put alike) to a
 *     frame that decodes to a message with the same encoding (but see
 *     fuzz_wire_has_field0);
 *   - the frames, errors and re-encodings are the same whatever the cuts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "fuzz.h"
#include "wire.h"

/* Frame limits: tiny, small, the daemon's limit before Hello, the default. */
static const size_t fuzz_wire_limits[4] = {
	16, 300, 8192, WIRE_MAX_FRAME_DEFAULT
};

/* What a pass over the stream saw: result codes and re-encoded frames. */
struct fuzz_wire_log {
	uint8_t *p;
	size_t len;
	size_t alloc;
};

/* Append bytes to a log. */
static void
fuzz_wire_log_add(struct fuzz_wire_log *l, const void *p, size_t n)
{
	size_t a;

	if (l->len + n > l->alloc) {
		a = l->alloc ? l->alloc : 256;
		while (a < l->len + n)
			a *= 2;
		l->p = realloc(l->p, a);
		fuzz_check(l->p != NULL);
		l->alloc = a;
	}
	memcpy(l->p + l->len, p, n);
	l->len += n;
}

/* Free a read handed to the buffer by reference. */
static void
fuzz_wire_unref(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

/*
 * Tell whether a message (or one inside it) kept an unknown field numbered
 * 0. libprotobuf-c 1.4 accepts such a tag when its varint is overlong
 * (0x82 0x00), keeps it, writes it back as 0x02 and then refuses that: the
 * one known way a decoded message does not re-encode to a valid frame.
 */
static bool
fuzz_wire_has_field0(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const ProtobufCFieldDescriptor *f;
	const char *base = (const char *)m;
	ProtobufCMessage *const *sub;
	size_t i, j, n;

	for (i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return true;
	for (i = 0; i < d->n_fields; i++) {
		f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			sub = *(ProtobufCMessage *const *const *)(base + f->offset);
		} else {
			if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
			    *(const uint32_t *)(base + f->quantifier_offset) !=
			    f->id)
				continue;
			n = 1;
			sub = (ProtobufCMessage *const *)(base + f->offset);
		}
		for (j = 0; j < n; j++)
			if (sub[j] != NULL && fuzz_wire_has_field0(sub[j]))
				return true;
	}
	return false;
}

/* Re-encode a decoded message both ways, decode that again, compare. */
static void
fuzz_wire_roundtrip(const ProtobufCMessage *msg,
		    const ProtobufCMessageDescriptor *desc,
		    struct fuzz_wire_log *log)
{
	ProtobufCMessage *again = NULL;
	struct evbuffer *b;
	uint8_t *frame, *frame2;
	size_t len, len2;
	uint32_t hl;

	fuzz_check(wire_encode(msg, &frame, &len) == 0);
	fuzz_check(len >= WIRE_HEADER_LEN && frame[0] == 0);
	hl = (uint32_t)frame[1] << 24 | (uint32_t)frame[2] << 16 |
	    (uint32_t)frame[3] << 8 | frame[4];
	fuzz_check(hl == len - WIRE_HEADER_LEN);

	/* wire_put writes the same bytes as wire_encode. */
	b = evbuffer_new();
	fuzz_check(b != NULL);
	fuzz_check(wire_put(b, msg) == 0);
	fuzz_check(evbuffer_get_length(b) == len);
	fuzz_check(memcmp(evbuffer_pullup(b, -1), frame, len) == 0);

	/* The frame decodes, whole, to a message with the same encoding. */
	if (wire_take(b, WIRE_MAX_FRAME_DEFAULT, desc, &again) != WIRE_OK) {
		fuzz_check(fuzz_wire_has_field0(msg));
		fuzz_wire_log_add(log, "0", 1);
		evbuffer_free(b);
		free(frame);
		return;
	}
	fuzz_check(evbuffer_get_length(b) == 0);
	fuzz_check(wire_encode(again, &frame2, &len2) == 0);
	fuzz_check(len2 == len && memcmp(frame, frame2, len) == 0);

	fuzz_wire_log_add(log, &len, sizeof len);
	fuzz_wire_log_add(log, frame, len);
	protobuf_c_message_free_unpacked(again, NULL);
	evbuffer_free(b);
	free(frame);
	free(frame2);
}

/*
 * Take every complete frame as conn_process() does; return false once the
 * connection would be closed (an error).
 */
static bool
fuzz_wire_take_all(struct evbuffer *in, size_t limit,
		   const ProtobufCMessageDescriptor *desc,
		   struct fuzz_wire_log *log)
{
	ProtobufCMessage *msg;
	uint8_t flag, code;
	uint32_t len;
	int r;

	for (;;) {
		msg = NULL;
		r = wire_take(in, limit, desc, &msg);
		/* Cut passes see AGAIN between reads: only the rest is logged. */
		code = (uint8_t)r;
		if (r != WIRE_AGAIN)
			fuzz_wire_log_add(log, &code, 1);
		switch (r) {
		case WIRE_OK:
			fuzz_check(msg != NULL);
			fuzz_wire_roundtrip(msg, desc, log);
			protobuf_c_message_free_unpacked(msg, NULL);
			continue;
		case WIRE_AGAIN:
			/* Waiting only for an acceptable frame, never past it. */
			if (wire_peek_length(in, &flag, &len) == WIRE_OK) {
				fuzz_check(flag == 0 && len <= limit);
				fuzz_check(evbuffer_get_length(in) <
				    (size_t)len + WIRE_HEADER_LEN);
			} else
				fuzz_check(evbuffer_get_length(in) <
				    WIRE_HEADER_LEN);
			return true;
		case WIRE_E_FLAG:
			fuzz_check(wire_peek_length(in, &flag, &len) == WIRE_OK);
			fuzz_check(flag != 0);
			return false;
		case WIRE_E_SIZE:
			/* Refused on the header alone. */
			fuzz_check(wire_peek_length(in, &flag, &len) == WIRE_OK);
			fuzz_check(flag == 0 && len > limit);
			return false;
		case WIRE_E_DECODE:
			fuzz_check(msg == NULL);
			return false;
		default:
			fuzz_check(!"unexpected wire_take result");
		}
	}
}

/* Feed the stream in reads (all at once unless cuts is given). */
static void
fuzz_wire_pass(const uint8_t *p, size_t n, size_t limit,
	       const ProtobufCMessageDescriptor *desc, struct fuzz_split *cuts,
	       struct fuzz_wire_log *log)
{
	struct evbuffer *in = evbuffer_new();
	size_t off = 0, k;
	uint8_t *chunk;

	fuzz_check(in != NULL);
	while (off < n) {
		/* conn_read_cb reads only while at most one frame is held. */
		fuzz_check(evbuffer_get_length(in) <= limit + WIRE_HEADER_LEN);
		k = cuts != NULL ? fuzz_split_next(cuts, n - off) : n - off;
		chunk = malloc(k);
		fuzz_check(chunk != NULL);
		memcpy(chunk, p + off, k);
		fuzz_check(evbuffer_add_reference(in, chunk, k, fuzz_wire_unref,
		    NULL) == 0);
		off += k;
		if (!fuzz_wire_take_all(in, limit, desc, log))
			break;
	}
	evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode the stream whole and cut; both must see the same frames. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *desc;
	struct fuzz_wire_log whole = { 0 }, cut = { 0 };
	struct fuzz_split cuts;
	size_t limit;

	if (size < 2)
		return 0;
	limit = fuzz_wire_limits[data[0] & 3];
	desc = data[0] & 4 ? &swerex__v1__response__descriptor :
	    &swerex__v1__request__descriptor;
	fuzz_split_init(&cuts, data[1], size - 2);
	fuzz_wire_pass(data + 2, size - 2, limit, desc, NULL, &whole);
	fuzz_wire_pass(data + 2, size - 2, limit, desc, &cuts, &cut);
	fuzz_check(whole.len == cut.len);
	fuzz_check(whole.len == 0 || memcmp(whole.p, cut.p, whole.len) == 0);
	free(whole.p);
	free(cut.p);
	return 0;
}
