/*
 * A rate-limited relay for the benchmarks: a Unix socket that forwards to
 * another, passing requests through at once and responses at a fixed rate.
 * A client behind it is a slow reader as the daemon sees it, whatever its
 * own library reads at a time.
 */
#ifndef SWEREX_BENCH_RELAY_H
#define SWEREX_BENCH_RELAY_H

#include <stddef.h>

struct relay;

struct relay *relay_new(const char *listen_path, const char *target_path,
			size_t rate, size_t burst);
void relay_free(struct relay *r);

#endif
