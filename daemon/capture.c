/* Session output capture with head-and-tail truncation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"

#define CAPTURE_MIN_LIMIT 64

/* Start an empty capture holding at most about limit bytes. */
void
capture_init(struct capture *c, size_t limit)
{
	memset(c, 0, sizeof *c);
	capture_set_limit(c, limit);
}

/* Change the limit; takes effect from the next append. */
void
capture_set_limit(struct capture *c, size_t limit)
{
	c->limit = limit < CAPTURE_MIN_LIMIT ? CAPTURE_MIN_LIMIT : limit;
}

/* Make room for n more bytes. */
static int
capture_reserve(struct capture *c, size_t n)
{
	size_t want = c->len + n, a;
	char *p;

	if (want <= c->alloc)
		return 0;
	a = c->alloc ? c->alloc : 4096;
	while (a < want)
		a *= 2;
	p = realloc(c->buf, a);
	if (p == NULL)
		return -ENOMEM;
	c->buf = p;
	c->alloc = a;
	return 0;
}

/*
 * Drop the middle so the tail region holds its last limit/8 bytes. Letting
 * the tail grow to limit/2 between compactions keeps the copying to about a
 * third of a byte per byte appended.
 */
static void
capture_compact(struct capture *c)
{
	size_t head = c->limit / 2, keep = c->limit / 8;
	size_t tail = c->len - head;

	if (tail <= keep)
		return;
	memmove(c->buf + head, c->buf + c->len - keep, keep);
	c->dropped += tail - keep;
	c->len = head + keep;
}

/* Append output, dropping from the middle once above the limit. */
int
capture_append(struct capture *c, const char *p, size_t n)
{
	size_t room, k;

	c->total += n;
	while (n > 0) {
		if (c->len >= c->limit)
			capture_compact(c);
		room = c->limit - c->len;
		if (c->dropped > 0 || c->len + n > c->limit)
			room = c->limit / 8 > room ? room : c->limit / 8;
		k = n < room ? n : room;
		if (k == 0) {
			capture_compact(c);
			continue;
		}
		if (capture_reserve(c, k) < 0)
			return -ENOMEM;
		memcpy(c->buf + c->len, p, k);
		c->len += k;
		p += k;
		n -= k;
	}
	return 0;
}

/*
 * Find needle at or after offset from; return its offset or -1. Matches never
 * span the dropped middle: only the head or only the tail is searched.
 */
ssize_t
capture_find(const struct capture *c, const char *needle, size_t nlen,
	     size_t from)
{
	size_t head = c->limit / 2;
	const char *m;

	if (nlen == 0 || c->len < nlen)
		return -1;
	if (c->dropped > 0 && from < head) {
		m = memmem(c->buf + from, head - from, needle, nlen);
		if (m != NULL)
			return m - c->buf;
		from = head;
	}
	if (from >= c->len)
		return -1;
	m = memmem(c->buf + from, c->len - from, needle, nlen);
	return m ? m - c->buf : -1;
}

/*
 * Hand out the first upto bytes (with a truncation note where the middle was
 * dropped), discard the skip bytes after them and keep the rest for later.
 * *total gets the number of bytes the handed-out part originally had.
 */
int
capture_take(struct capture *c, size_t upto, size_t skip, char **out,
	     size_t *outlen, uint64_t *total, bool *truncated)
{
	char note[96];
	size_t head = c->limit / 2, nn = 0, rest;
	char *o;
	int split = c->dropped > 0 && upto > head;

	if (upto + skip > c->len)
		return -EINVAL;
	if (split)
		nn = (size_t)snprintf(note, sizeof note,
		    "\n[... swerex: %llu bytes of output truncated ...]\n",
		    (unsigned long long)c->dropped);
	o = malloc(upto + nn + 1);
	if (o == NULL)
		return -ENOMEM;
	if (split) {
		memcpy(o, c->buf, head);
		memcpy(o + head, note, nn);
		memcpy(o + head + nn, c->buf + head, upto - head);
	} else if (upto > 0)
		memcpy(o, c->buf, upto);
	o[upto + nn] = '\0';
	*out = o;
	*outlen = upto + nn;
	*truncated = split;
	rest = c->len - upto - skip;
	*total = c->total - rest - skip;
	/*
	 * What is left is contiguous unless a match was found in the head of an
	 * already truncated capture; then the gap is forgotten (it was reported
	 * nowhere, but such a capture only arises when nobody waited for output).
	 */
	if (rest > 0)
		memmove(c->buf, c->buf + upto + skip, rest);
	c->len = rest;
	c->dropped = 0;
	c->total = rest;
	if (c->len == 0) {
		/* Idle sessions hold no output memory. */
		free(c->buf);
		c->buf = NULL;
		c->alloc = 0;
	}
	return 0;
}

/* Release the buffer. */
void
capture_free(struct capture *c)
{
	free(c->buf);
	memset(c, 0, sizeof *c);
}
