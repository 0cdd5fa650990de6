/* Daemon statistics: counters bumped on paths already taken, and StatsRequest. */
#ifndef SWEREXD_STATS_H
#define SWEREXD_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "swerex.pb-c.h"

struct req;
struct server;

/* BashAction latency buckets: 0.0005 s to 500 s in a 1-2-5 series, then +Inf. */
#define STATS_BUCKETS 20

/*
 * Plain integers, bumped where the daemon already is: no allocation and no
 * system call per request (the latency clock is the vDSO's).
 */
struct stats {
	struct timespec started;          /* CLOCK_MONOTONIC at start */
	uint64_t sessions_created;        /* sessions that finished starting */
	uint64_t commands;                /* BashActions answered */
	uint64_t executes;                /* ExecuteRequests answered */
	uint64_t requests;                /* frames decoded as requests */
	uint64_t errors;                  /* requests answered with an Error */
	uint64_t bytes_in;                /* frame bytes taken from clients */
	uint64_t bytes_out;               /* frame bytes written to clients */
	uint64_t latency[STATS_BUCKETS];  /* per bucket, not cumulative */
	double latency_sum;               /* seconds */
};

void stats_init(struct stats *st);
void stats_request(struct stats *st, struct req *r, int body);
void stats_answered(const struct req *r, int body_case);
void stats_reply(struct server *srv, struct req *r,
		 const Swerex__V1__StatsRequest *m);
size_t stats_utf8_copy(char *dst, size_t size, const char *src, size_t len);

#endif
