/*
 * fuzz-filter: the pty output filter (daemon/filter.c) and the capture it
 * feeds (daemon/capture.c), with arbitrary bytes cut into arbitrary reads.
 *
 * Input: byte 0 picks the capture limit, byte 1 the cuts, byte 2 what is
 * taken from the capture; the rest is the raw pty stream. Invariants:
 *   - the output and the markers are the same whole and cut;
 *   - the markers are exactly the complete "@swx" TOKEN ":" 1-3 digits ":"
 *     digit ";" in the input (a plain scan finds the same list);
 *   - no output byte is ESC or BEL, the output is never longer than the
 *     input, no "\r\n" survives (unless an escape or a bell stood between
 *     the two: the carriage return is kept then); held marker bytes and
 *     carriage returns stay within their bounds;
 *   - the capture keeps everything below its limit, else the exact head and
 *     a tail of the stream, never more than the limit; take hands out what
 *     was kept.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "filter.h"
#include "fuzz.h"

#define FUZZ_FILTER_TOKEN "0123456789abcdef0123456789abcdef"
#define FUZZ_FILTER_MARKS 4096

/* What a pass produced: the clean output and the markers within it. */
struct fuzz_filter_sink {
	char *out;
	size_t len;
	size_t alloc;
	size_t nmarks;
	int status[FUZZ_FILTER_MARKS];
	int kind[FUZZ_FILTER_MARKS];
	size_t at[FUZZ_FILTER_MARKS];  /* output length at each marker */
	struct capture cap;
	uint64_t appended;
};

/* Collect clean output, into the sink and its capture. */
static void
fuzz_filter_out(void *arg, const char *p, size_t n)
{
	struct fuzz_filter_sink *s = arg;
	size_t a;

	fuzz_check(n > 0);
	if (s->len + n > s->alloc) {
		a = s->alloc ? s->alloc : 1024;
		while (a < s->len + n)
			a *= 2;
		s->out = realloc(s->out, a);
		fuzz_check(s->out != NULL);
		s->alloc = a;
	}
	memcpy(s->out + s->len, p, n);
	s->len += n;
	fuzz_check(capture_append(&s->cap, p, n) == 0);
	s->appended += n;
	/* Memory stays below the limit plus one append, allocation within 2x. */
	fuzz_check(s->cap.len <= s->cap.limit);
	fuzz_check(s->cap.alloc <= 2 * s->cap.limit || s->cap.alloc <= 4096);
	fuzz_check(s->cap.total == s->appended);
}

/* Record a marker where it ended the output. */
static int
fuzz_filter_mark(void *arg, int status, int kind)
{
	struct fuzz_filter_sink *s = arg;

	fuzz_check(s->nmarks < FUZZ_FILTER_MARKS);
	s->status[s->nmarks] = status;
	s->kind[s->nmarks] = kind;
	s->at[s->nmarks++] = s->len;
	return 0;
}

/* Run the filter over the stream, whole or in cuts. */
static void
fuzz_filter_pass(const char *p, size_t n, size_t limit,
		 struct fuzz_split *cuts, struct fuzz_filter_sink *s)
{
	struct filter f;
	size_t off = 0, k;
	char *chunk;

	filter_init(&f, FUZZ_FILTER_TOKEN);
	capture_init(&s->cap, limit);
	while (off < n) {
		k = cuts != NULL ? fuzz_split_next(cuts, n - off) : n - off;
		/* Its own allocation: reading past a read is an ASan error. */
		chunk = malloc(k);
		fuzz_check(chunk != NULL);
		memcpy(chunk, p + off, k);
		filter_feed(&f, chunk, k, fuzz_filter_out, fuzz_filter_mark, s);
		free(chunk);
		off += k;
		fuzz_check(f.nhold <= sizeof f.hold);
		fuzz_check(f.ncr <= FILTER_CR_MAX);
	}
	filter_flush(&f, fuzz_filter_out, s);
}

/* Match a marker at p; return its length, or 0. */
static size_t
fuzz_filter_marker_at(const char *p, size_t n, int *status, int *kind)
{
	static const char prefix[] = "@swx" FUZZ_FILTER_TOKEN ":";
	size_t i = sizeof prefix - 1, d = 0;

	if (n < i || memcmp(p, prefix, i) != 0)
		return 0;
	*status = 0;
	while (i < n && d < 3 && p[i] >= '0' && p[i] <= '9') {
		*status = *status * 10 + (p[i++] - '0');
		d++;
	}
	if (d == 0 || i + 3 > n || p[i] != ':' || p[i + 1] < '0' ||
	    p[i + 1] > '9' || p[i + 2] != ';')
		return 0;
	*kind = p[i + 1] - '0';
	return i + 3;
}

/* Check the markers against a plain scan of the input. */
static void
fuzz_filter_check_marks(const char *p, size_t n,
			const struct fuzz_filter_sink *s)
{
	size_t i = 0, m = 0, k;
	int status, kind;

	while (i < n) {
		k = fuzz_filter_marker_at(p + i, n - i, &status, &kind);
		if (k == 0) {
			i++;
			continue;
		}
		fuzz_check(m < s->nmarks);
		fuzz_check(s->status[m] == status && s->kind[m] == kind);
		m++;
		i += k;
	}
	fuzz_check(m == s->nmarks);
}

/* Check what the output may not contain. */
static void
fuzz_filter_check_output(const char *p, size_t n,
			 const struct fuzz_filter_sink *s)
{
	size_t i, m = 0;

	fuzz_check(s->len <= n);
	if (s->len == 0)
		return;
	fuzz_check(memchr(s->out, 0x1b, s->len) == NULL);
	fuzz_check(memchr(s->out, 0x07, s->len) == NULL);
	/* "\r\e[K\n" keeps its "\r": a carriage return before an escape
	 * is output (a progress bar redraws its line that way). */
	if (memchr(p, 0x1b, n) != NULL || memchr(p, 0x07, n) != NULL)
		return;
	for (i = 0; i + 1 < s->len; i++) {
		/* A marker between them flushes the carriage return. */
		while (m < s->nmarks && s->at[m] <= i)
			m++;
		if (m < s->nmarks && s->at[m] == i + 1)
			continue;
		fuzz_check(!(s->out[i] == '\r' && s->out[i + 1] == '\n'));
	}
}

/* Check what the capture kept of the output, then take part of it. */
static void
fuzz_filter_check_capture(struct fuzz_filter_sink *s, uint8_t how)
{
	struct capture *c = &s->cap;
	size_t head = c->limit / 2, tail, upto, skip;
	uint64_t total;
	bool truncated;
	char *o;
	size_t olen;
	ssize_t at;

	if (c->dropped == 0) {
		fuzz_check(c->len == s->len);
		fuzz_check(c->len == 0 || memcmp(c->buf, s->out, c->len) == 0);
	} else {
		/* The exact head, then the stream's last bytes. */
		fuzz_check(c->len > head && c->len <= c->limit);
		tail = c->len - head;
		fuzz_check(tail >= c->limit / 8);
		fuzz_check(c->dropped + c->len == s->len);
		fuzz_check(memcmp(c->buf, s->out, head) == 0);
		fuzz_check(memcmp(c->buf + head, s->out + s->len - tail, tail) == 0);
	}

	/* A find agrees with memmem over the part it searches. */
	at = capture_find(c, "\n", 1, 0);
	if (at >= 0)
		fuzz_check((size_t)at < c->len && c->buf[at] == '\n');
	else
		fuzz_check(c->len == 0 || memchr(c->buf, '\n', c->len) == NULL);

	upto = c->len == 0 ? 0 : (how * (c->len + 1)) / 256;
	skip = (how & 1) && upto < c->len ? 1 : 0;
	fuzz_check(capture_take(c, c->len + 1, 0, &o, &olen, &total,
	    &truncated) == -EINVAL);
	fuzz_check(capture_take(c, upto, skip, &o, &olen, &total,
	    &truncated) == 0);
	fuzz_check(o[olen] == '\0');
	fuzz_check(truncated == (olen != upto));
	if (!truncated)
		fuzz_check(upto == 0 || memcmp(o, s->out, upto) == 0);
	fuzz_check(total <= s->appended);
	free(o);
	capture_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Filter the stream whole and cut; compare, and check both. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fuzz_filter_sink whole, cut;
	struct fuzz_split cuts;
	const char *p = (const char *)data + 3;
	size_t n, limit;

	if (size < 3)
		return 0;
	n = size - 3;
	limit = 64 + (size_t)data[0] * 16;
	fuzz_split_init(&cuts, data[1], n);
	memset(&whole, 0, sizeof whole);
	memset(&cut, 0, sizeof cut);
	fuzz_filter_pass(p, n, limit, NULL, &whole);
	fuzz_filter_pass(p, n, limit, &cuts, &cut);

	fuzz_check(whole.len == cut.len);
	fuzz_check(whole.len == 0 || memcmp(whole.out, cut.out, whole.len) == 0);
	fuzz_check(whole.nmarks == cut.nmarks);
	fuzz_check(memcmp(whole.status, cut.status,
	    whole.nmarks * sizeof whole.status[0]) == 0);
	fuzz_check(memcmp(whole.kind, cut.kind,
	    whole.nmarks * sizeof whole.kind[0]) == 0);
	fuzz_check(memcmp(whole.at, cut.at,
	    whole.nmarks * sizeof whole.at[0]) == 0);
	fuzz_filter_check_marks(p, n, &whole);
	fuzz_filter_check_output(p, n, &whole);
	fuzz_filter_check_capture(&whole, data[2]);
	fuzz_filter_check_capture(&cut, data[2]);
	free(whole.out);
	free(cut.out);
	return 0;
}
