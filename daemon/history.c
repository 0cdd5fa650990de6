/*
 * Command history of a session: a ring of the last --history commands
 * (BashActions that sent a command). Interactive input (is_interactive_
 * command or _quit) sent while a command runs is not an entry of its own:
 * it feeds that command, and what its answers report (output bytes, the
 * exit code once the program ends) goes to the command's entry. Typed while
 * bash waits at its prompt, it is a command, and an entry.
 *
 * An entry is open from its command's start until its end is known: an
 * answer with an exit code, the prompt coming back with nobody waiting (a
 * client that timed out or went away), or the session's death. While open,
 * each answer adds its output bytes and moves the duration; the first
 * failure reason sticks (a "timeout" followed by the interrupt's exit code
 * 130 reads as both).
 */
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "stats.h"

/* Entries of a new ring; it doubles from there up to --history. */
#define HISTORY_FIRST 8

/* Set up an empty history that will keep cap commands. */
void
history_init(struct history *h, size_t cap)
{
	memset(h, 0, sizeof *h);
	h->cap = cap;
}

/* Give the entry of the newest command, or NULL. */
static struct history_entry *
history_newest(const struct history *h)
{
	if (h->ring == NULL || h->total == 0)
		return NULL;
	return &h->ring[(h->total - 1) % h->size];
}

/*
 * Make room for one more command before the ring wraps: double it (it has
 * not wrapped yet, so entries 0..total-1 stay where they are). 0, or -1
 * when there is no ring at all. Out of memory with a ring, it stops
 * growing and wraps at its current size from then on.
 */
static int
history_grow(struct history *h)
{
	struct history_entry *ring;
	size_t size;

	if (h->ring != NULL && (h->total <= h->size || h->size == h->cap))
		return 0;
	size = h->ring == NULL ? HISTORY_FIRST : h->size * 2;
	if (size > h->cap)
		size = h->cap;
	ring = realloc(h->ring, size * sizeof *ring);
	if (ring == NULL) {
		if (h->ring == NULL)
			return -1;
		h->cap = h->size;
		return 0;
	}
	memset(ring + h->size, 0, (size - h->size) * sizeof *ring);
	h->ring = ring;
	h->size = size;
	return 0;
}

/* Forget what an entry holds. */
static void
history_entry_clear(struct history_entry *e)
{
	free(e->command);
	memset(e, 0, sizeof *e);
}

/* Record a command that was just sent to bash. */
void
history_begin(struct history *h, const char *command, size_t len)
{
	struct history_entry *e;
	struct timespec now;
	size_t cut = len < HISTORY_COMMAND_MAX ? len : HISTORY_COMMAND_MAX;

	h->total++;
	h->open = false;
	if (h->cap == 0)
		return;
	if (history_grow(h) < 0)
		return;
	e = &h->ring[(h->total - 1) % h->size];
	history_entry_clear(e);
	if ((e->command = malloc(cut + 1)) == NULL)
		goto fail;
	stats_utf8_copy(e->command, cut + 1, command, cut);
	e->seq = h->total;
	clock_gettime(CLOCK_REALTIME, &now);
	e->started = (double)now.tv_sec + now.tv_nsec / 1e9;
	clock_gettime(CLOCK_MONOTONIC, &e->t0);
	h->open = true;
	return;

fail:
	/* Out of memory: this command goes unrecorded, the count stays. */
	history_entry_clear(&h->ring[(h->total - 1) % h->size]);
}

/*
 * Add an answer (or the end) of the open command: output_bytes printed
 * since the previous answer, a failure reason or NULL (a static string:
 * it is kept, not copied), whether it ended,
 * and its exit code if known. Nothing open: nothing to do.
 */
void
history_note(struct history *h, uint64_t output_bytes, const char *reason,
	     bool ended, bool has_exit, int exit_code)
{
	struct history_entry *e = history_newest(h);
	struct timespec now;

	if (!h->open || e == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	e->duration = (double)(now.tv_sec - e->t0.tv_sec) +
	    (double)(now.tv_nsec - e->t0.tv_nsec) / 1e9;
	e->output_bytes += output_bytes;
	if (reason != NULL && *reason != '\0' && e->failure_reason == NULL)
		e->failure_reason = reason;
	if (has_exit) {
		e->has_exit_code = true;
		e->exit_code = exit_code;
	}
	if (ended || has_exit)
		h->open = false;
}

/*
 * Fill a HistoryResponse with the newest entries (at most limit when
 * has_limit), oldest first. Strings are borrowed from the ring. Free with
 * history_fill_free(); 0, or -1 when out of memory.
 */
int
history_fill(const struct history *h, bool has_limit, uint32_t limit,
	     Swerex__V1__HistoryResponse *out)
{
	Swerex__V1__HistoryEntry *pe;
	const struct history_entry *e;
	uint64_t n, first, seq;
	size_t i = 0;

	swerex__v1__history_response__init(out);
	out->total = h->total;
	n = h->ring == NULL ? 0 : h->total < h->size ? h->total : h->size;
	if (has_limit && limit < n)
		n = limit;
	if (n == 0)
		return 0;
	out->entries = calloc(n, sizeof *out->entries);
	pe = calloc(n, sizeof *pe);
	if (out->entries == NULL || pe == NULL) {
		free(out->entries);
		free(pe);
		out->entries = NULL;
		return -1;
	}
	first = h->total - n + 1;
	for (seq = first; seq <= h->total; seq++) {
		e = &h->ring[(seq - 1) % h->size];
		if (e->seq != seq)
			continue;       /* unrecorded: memory ran out */
		swerex__v1__history_entry__init(&pe[i]);
		pe[i].command = e->command;
		if (e->has_exit_code) {
			pe[i].has_exit_code_case =
			    SWEREX__V1__HISTORY_ENTRY__HAS_EXIT_CODE_EXIT_CODE;
			pe[i].exit_code = e->exit_code;
		}
		pe[i].started = e->started;
		pe[i].duration = e->duration;
		pe[i].output_bytes = e->output_bytes;
		/* Only read by the encoder. */
		pe[i].failure_reason = (char *)(e->failure_reason != NULL ?
		    e->failure_reason : "");
		pe[i].seq = e->seq;
		out->entries[i] = &pe[i];
		i++;
	}
	out->n_entries = i;
	if (i == 0) {
		free(pe);
		free(out->entries);
		out->entries = NULL;
	}
	return 0;
}

/* Free what history_fill() allocated. */
void
history_fill_free(Swerex__V1__HistoryResponse *out)
{
	if (out->n_entries > 0)
		free(out->entries[0]);
	free(out->entries);
	out->entries = NULL;
	out->n_entries = 0;
}

/* Free the ring and what its entries hold. */
void
history_free(struct history *h)
{
	size_t i;

	if (h->ring != NULL)
		for (i = 0; i < h->size; i++)
			history_entry_clear(&h->ring[i]);
	free(h->ring);
	h->ring = NULL;
	h->open = false;
}
