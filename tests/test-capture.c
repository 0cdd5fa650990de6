/* Unit tests of the bounded output capture. */
#include "tap.h"
#include "capture.h"

TEST(exact_below_limit)
{
	struct capture c;
	char *out;
	size_t len;
	uint64_t total;
	bool tr;

	capture_init(&c, 1024);
	capture_append(&c, "hello ", 6);
	capture_append(&c, "world", 5);
	REQUIRE(capture_take(&c, c.len, 0, &out, &len, &total, &tr) == 0);
	CHECK_MEM(out, len, "hello world");
	CHECK_INT(total, 11);
	CHECK(!tr);
	CHECK_INT(c.len, 0);
	free(out);
	capture_free(&c);
}

TEST(head_and_tail_kept)
{
	struct capture c;
	char line[32], *out;
	size_t len, n;
	uint64_t total, sum = 0;
	bool tr;
	int i;

	capture_init(&c, 1000);
	for (i = 1; i <= 10000; i++) {
		n = (size_t)snprintf(line, sizeof line, "%d\n", i);
		capture_append(&c, line, n);
		sum += n;
		CHECK(c.len <= 1000);
	}
	REQUIRE(capture_take(&c, c.len, 0, &out, &len, &total, &tr) == 0);
	CHECK(tr);
	CHECK_INT(total, sum);
	CHECK(strncmp(out, "1\n2\n3\n", 6) == 0);
	CHECK(len > 9 && strcmp(out + len - 11, "9999\n10000\n") == 0);
	CHECK(strstr(out, "truncated") != NULL);
	CHECK(len < 1000 + 100);
	free(out);
	capture_free(&c);
}

TEST(find_and_split)
{
	struct capture c;
	char *out;
	size_t len;
	uint64_t total;
	bool tr;
	ssize_t pos;

	capture_init(&c, 1024);
	capture_append(&c, "Python 3\n>>> rest", 17);
	pos = capture_find(&c, ">>> ", 4, 0);
	CHECK_INT(pos, 9);
	REQUIRE(capture_take(&c, (size_t)pos, 4, &out, &len, &total, &tr) == 0);
	CHECK_MEM(out, len, "Python 3\n");
	CHECK_MEM(c.buf, c.len, "rest");
	CHECK_INT(capture_find(&c, "zzz", 3, 0), -1);
	free(out);
	capture_free(&c);
}

TAP_MAIN(TAP_T(exact_below_limit), TAP_T(head_and_tail_kept),
    TAP_T(find_and_split))
