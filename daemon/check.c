/*
 * Checks on a request's encoded bytes. protobuf-c hands string fields over
 * as C strings, so "a\0b" would silently become "a": a session name, a path
 * or a command cut short at a NUL the client sent. The encoded message is
 * walked once, by its descriptor, before it is decoded, to refuse that.
 * Anything malformed is left for the decoder to reject.
 */
#include <string.h>

#include "check.h"

/* Nested messages deeper than this are not looked into (ours nest 3 deep). */
#define CHECK_MAX_DEPTH 8

/* Read a varint; 0, or -1 if it runs past the end or past 10 bytes. */
static int
check_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	unsigned shift;

	*v = 0;
	for (shift = 0; *p < end && shift < 70; shift += 7) {
		uint8_t b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return 0;
	}
	return -1;
}

/* Name the first string field holding a NUL, or NULL; see check_nul(). */
static const char *
check_nul_at(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
	     size_t n, unsigned depth)
{
	const uint8_t *end = p + n;
	const ProtobufCFieldDescriptor *f;
	const char *bad;
	uint64_t tag, len;

	while (p < end) {
		if (check_varint(&p, end, &tag) < 0 || tag >> 3 > UINT32_MAX)
			return NULL;
		switch (tag & 7) {
		case 0:
			if (check_varint(&p, end, &len) < 0)
				return NULL;
			continue;
		case 1:
			len = 8;
			break;
		case 5:
			len = 4;
			break;
		case 2:
			if (check_varint(&p, end, &len) < 0)
				return NULL;
			break;
		default:
			return NULL;
		}
		if (len > (uint64_t)(end - p))
			return NULL;
		f = (tag & 7) == 2 ? protobuf_c_message_descriptor_get_field(desc,
		    (unsigned)(tag >> 3)) : NULL;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING &&
		    memchr(p, '\0', (size_t)len) != NULL)
			return f->name;
		if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
		    depth < CHECK_MAX_DEPTH &&
		    (bad = check_nul_at(f->descriptor, p, (size_t)len,
		    depth + 1)) != NULL)
			return bad;
		p += len;
	}
	return NULL;
}

/*
 * Name the first string field (at any depth, map entries included) of the
 * encoded message p[0..n) that holds a NUL byte; NULL if none does.
 */
const char *
check_nul(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n)
{
	return check_nul_at(desc, p, n, 0);
}
