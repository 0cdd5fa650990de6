/*
 * Shared by the fuzz targets: invariant checks, and split points (a byte of
 * the input picks how a stream is cut into reads, so the fuzzer explores the
 * cuts as it explores bytes).
 */
#ifndef SWEREX_FUZZ_H
#define SWEREX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A broken invariant is a crash: libFuzzer keeps the input that caused it. */
#define fuzz_check(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
	    #cond); \
	abort(); } } while (0)

struct fuzz_split {
	uint32_t state;
	unsigned mode;
};

/* Seed the cuts of an n-byte stream from one input byte. */
static inline void
fuzz_split_init(struct fuzz_split *s, uint8_t seed, size_t n)
{
	s->mode = seed & 3;
	/* Never zero: xorshift would stay at zero. */
	s->state = 0x9e3779b9u ^ ((uint32_t)seed << 8) ^ (uint32_t)n;
	if (s->state == 0)
		s->state = 1;
}

/* Give the size of the next read, at most left (left > 0). */
static inline size_t
fuzz_split_next(struct fuzz_split *s, size_t left)
{
	size_t k;

	s->state ^= s->state << 13;
	s->state ^= s->state >> 17;
	s->state ^= s->state << 5;
	switch (s->mode) {
	case 0:
		k = 1;                          /* a byte at a time */
		break;
	case 1:
		k = 1 + s->state % 7;           /* tiny reads */
		break;
	case 2:
		k = 1 + s->state % 97;          /* around a header or a marker */
		break;
	default:
		k = 1 + s->state % left;        /* anything */
		break;
	}
	return k < left ? k : left;
}

#endif
