/* Bounded output buffer of a session: keeps the head and the tail. */
#ifndef SWEREXD_CAPTURE_H
#define SWEREXD_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Below the limit the buffer is exact. Above it, the first limit/2 bytes are
 * kept, then the last limit/8 to limit/2 bytes (the tail slides; it is
 * compacted with one memmove each time it fills, so appending stays O(1)
 * amortised and memory stays below limit plus one append).
 */
struct capture {
	char *buf;
	size_t len;
	size_t alloc;
	size_t limit;
	uint64_t total;     /* bytes appended since the last take */
	uint64_t dropped;   /* bytes dropped from the middle */
};

void capture_init(struct capture *c, size_t limit);
void capture_set_limit(struct capture *c, size_t limit);
int capture_append(struct capture *c, const char *p, size_t n);
ssize_t capture_find(const struct capture *c, const char *needle, size_t nlen,
		     size_t from);
int capture_take(struct capture *c, size_t upto, size_t skip, char **out,
		 size_t *outlen, uint64_t *total, bool *truncated);
void capture_free(struct capture *c);

#endif
