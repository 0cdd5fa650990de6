/* The last commands of a session, in a fixed-size ring (HistoryRequest). */
#ifndef SWEREXD_HISTORY_H
#define SWEREXD_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "swerex.pb-c.h"

/* Bytes of a command's text that are kept. */
#define HISTORY_COMMAND_MAX 4096

struct history_entry {
	char *command;             /* at most HISTORY_COMMAND_MAX bytes */
	const char *failure_reason; /* a static string, or NULL: none */
	uint64_t seq;
	uint64_t output_bytes;
	double started;            /* seconds since the epoch */
	double duration;           /* seconds, to its last answer or its end */
	struct timespec t0;        /* CLOCK_MONOTONIC at the start */
	int exit_code;
	bool has_exit_code;
};

/*
 * The ring is allocated at the first command and doubles as commands come
 * until it holds cap, so idle sessions cost only this struct and a session
 * that ran a few commands a few entries. open is the entry whose command has not ended yet: answers
 * that come before it ends (a timeout, an expect match, interactive input
 * sent to it) add to that entry.
 */
struct history {
	struct history_entry *ring;  /* NULL until the first command */
	size_t size;                 /* entries allocated, at most cap */
	size_t cap;                  /* --history; 0: nothing is kept */
	uint64_t total;              /* commands begun */
	bool open;                   /* the newest entry has not ended */
};

void history_init(struct history *h, size_t cap);
void history_begin(struct history *h, const char *command, size_t len);
void history_note(struct history *h, uint64_t output_bytes,
		  const char *reason, bool ended, bool has_exit, int exit_code);
int history_fill(const struct history *h, bool has_limit, uint32_t limit,
		 Swerex__V1__HistoryResponse *out);
void history_fill_free(Swerex__V1__HistoryResponse *out);
void history_free(struct history *h);

#endif
