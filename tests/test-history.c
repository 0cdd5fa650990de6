/* Unit tests of a session's command ring and the UTF-8-safe copy it uses. */
#include "tap.h"
#include "history.h"
#include "stats.h"

/* Fill a response and check its sequence numbers are first..last. */
static void
check_seqs(const struct history *h, bool has_limit, uint32_t limit,
	   uint64_t first, uint64_t last)
{
	Swerex__V1__HistoryResponse r;
	size_t i;

	REQUIRE(history_fill(h, has_limit, limit, &r) == 0);
	CHECK_INT(r.total, h->total);
	CHECK_INT(r.n_entries, last >= first ? last - first + 1 : 0);
	for (i = 0; i < r.n_entries; i++)
		CHECK_INT(r.entries[i]->seq, first + i);
	history_fill_free(&r);
}

TEST(ring_wraps_and_limits)
{
	struct history h;
	char cmd[16];
	int i;

	history_init(&h, 3);
	check_seqs(&h, false, 0, 1, 0);
	CHECK(h.ring == NULL);          /* nothing allocated while idle */
	for (i = 1; i <= 7; i++) {
		snprintf(cmd, sizeof cmd, "cmd%d", i);
		history_begin(&h, cmd, strlen(cmd));
		history_note(&h, 2, NULL, true, true, 0);
	}
	CHECK_INT(h.total, 7);
	check_seqs(&h, false, 0, 5, 7);
	check_seqs(&h, true, 2, 6, 7);
	check_seqs(&h, true, 0, 1, 0);
	check_seqs(&h, true, 100, 5, 7);
	history_free(&h);
}

/* The ring starts small and doubles up to its cap; the order holds. */
TEST(ring_grows_in_order)
{
	struct history h;
	Swerex__V1__HistoryResponse r;
	char cmd[16];
	int i;

	history_init(&h, 20);
	for (i = 1; i <= 50; i++) {
		snprintf(cmd, sizeof cmd, "cmd%d", i);
		history_begin(&h, cmd, strlen(cmd));
		history_note(&h, (uint64_t)i, NULL, true, true, i % 7);
		if (i == 1)
			CHECK(h.size < 20);      /* one command: a few entries */
		check_seqs(&h, false, 0, i > 20 ? (uint64_t)i - 19 : 1,
		    (uint64_t)i);
	}
	CHECK_INT(h.size, 20);
	REQUIRE(history_fill(&h, true, 3, &r) == 0);
	REQUIRE(r.n_entries == 3);
	CHECK_STR(r.entries[0]->command, "cmd48");
	CHECK_INT(r.entries[0]->output_bytes, 48);
	CHECK_INT(r.entries[2]->exit_code, 50 % 7);
	history_fill_free(&r);
	history_free(&h);
}

TEST(disabled_counts_only)
{
	struct history h;

	history_init(&h, 0);
	history_begin(&h, "true", 4);
	history_note(&h, 5, "timeout", false, false, 0);
	CHECK(h.ring == NULL);
	CHECK_INT(h.total, 1);
	check_seqs(&h, false, 0, 1, 0);
	history_free(&h);
}

TEST(answers_add_up_until_the_end)
{
	struct history h;
	Swerex__V1__HistoryResponse r;

	history_init(&h, 10);
	history_begin(&h, "sleep 9", 7);
	/* A timeout: not the end; the first reason sticks. */
	history_note(&h, 3, "timeout", false, false, 0);
	history_note(&h, 4, "interrupted", false, false, 0);
	CHECK(h.open);
	/* The interrupt's answer carries the exit code: the end. */
	history_note(&h, 1, NULL, true, true, 130);
	CHECK(!h.open);
	/* Nothing open: later answers change nothing. */
	history_note(&h, 100, "session died", true, false, 0);
	REQUIRE(history_fill(&h, false, 0, &r) == 0);
	REQUIRE(r.n_entries == 1);
	CHECK_STR(r.entries[0]->command, "sleep 9");
	CHECK_INT(r.entries[0]->output_bytes, 8);
	CHECK_STR(r.entries[0]->failure_reason, "timeout");
	CHECK(r.entries[0]->has_exit_code_case ==
	    SWEREX__V1__HISTORY_ENTRY__HAS_EXIT_CODE_EXIT_CODE);
	CHECK_INT(r.entries[0]->exit_code, 130);
	CHECK(r.entries[0]->duration >= 0 && r.entries[0]->started > 0);
	history_fill_free(&r);
	history_free(&h);
}

TEST(long_commands_cut)
{
	struct history h;
	Swerex__V1__HistoryResponse r;
	static char big[HISTORY_COMMAND_MAX + 100];

	memset(big, 'x', sizeof big - 1);
	history_init(&h, 2);
	history_begin(&h, big, strlen(big));
	REQUIRE(history_fill(&h, false, 0, &r) == 0);
	REQUIRE(r.n_entries == 1);
	CHECK_INT(strlen(r.entries[0]->command), HISTORY_COMMAND_MAX);
	CHECK(!r.entries[0]->has_exit_code_case);
	history_fill_free(&r);
	history_free(&h);
}

TEST(utf8_copy)
{
	char out[8];

	CHECK_INT(stats_utf8_copy(out, sizeof out, "abc", 3), 3);
	CHECK_STR(out, "abc");
	/* é is two bytes: a cut never splits it. */
	CHECK_INT(stats_utf8_copy(out, 7, "abcde\xc3\xa9", 7), 5);
	CHECK_STR(out, "abcde");
	CHECK_INT(stats_utf8_copy(out, sizeof out, "a\xc3\xa9", 3), 3);
	CHECK_STR(out, "a\xc3\xa9");
	/* Invalid bytes, overlong forms and surrogates become '?'. */
	stats_utf8_copy(out, sizeof out, "a\xff" "b", 3);
	CHECK_STR(out, "a?b");
	stats_utf8_copy(out, sizeof out, "\xc0\xaf", 2);
	CHECK_STR(out, "??");
	stats_utf8_copy(out, sizeof out, "\xed\xa0\x80", 3);
	CHECK_STR(out, "???");
	/* A character cut by len is invalid, not read past. */
	stats_utf8_copy(out, sizeof out, "\xe2\x9c\x93", 2);
	CHECK_STR(out, "??");
	CHECK_INT(stats_utf8_copy(out, 1, "abc", 3), 0);
	CHECK_STR(out, "");
}

TAP_MAIN(TAP_T(ring_wraps_and_limits), TAP_T(ring_grows_in_order),
	 TAP_T(disabled_counts_only),
	 TAP_T(answers_add_up_until_the_end), TAP_T(long_commands_cut),
	 TAP_T(utf8_copy))
