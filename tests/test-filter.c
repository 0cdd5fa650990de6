/* Unit tests of the pty output filter: markers, CRLF, escape stripping. */
#include "tap.h"
#include "filter.h"

#define TOKEN "0123456789abcdef0123456789abcdef"
#define MARK(st, k) "@swx" TOKEN ":" st ":" k ";"

struct sink {
	char out[8192];
	size_t len;
	int marks, status[8], kind[8];
	size_t at[8];   /* output length when each marker came */
};

static void
sink_out(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	memcpy(s->out + s->len, p, n);
	s->len += n;
}

static int
sink_mark(void *arg, int status, int kind)
{
	struct sink *s = arg;

	s->status[s->marks] = status;
	s->kind[s->marks] = kind;
	s->at[s->marks++] = s->len;
	return 0;
}

/* Feed in pieces of size step (0 = all at once). */
static void
feed(struct sink *s, const char *in, size_t step)
{
	struct filter f;
	size_t n = strlen(in), i;

	memset(s, 0, sizeof *s);
	filter_init(&f, TOKEN);
	if (step == 0)
		step = n;
	for (i = 0; i < n; i += step)
		filter_feed(&f, in + i, n - i < step ? n - i : step, sink_out,
		    sink_mark, s);
	filter_flush(&f, sink_out, s);
}

TEST(marker_whole_and_split)
{
	static const char in[] = "hi\r\n" MARK("0", "0") "x" MARK("127", "2");
	struct sink s;
	size_t step;

	for (step = 0; step <= 7; step++) {
		feed(&s, in, step);
		CHECK_MEM(s.out, s.len, "hi\nx");
		CHECK_INT(s.marks, 2);
		CHECK_INT(s.status[0], 0);
		CHECK_INT(s.at[0], 3);
		CHECK_INT(s.status[1], 127);
		CHECK_INT(s.kind[1], 2);
	}
}

TEST(fake_markers_are_output)
{
	static const char in[] =
	    "@swx0123456789abcdef0123456789abcdeX:0:0;"   /* wrong token */
	    "@swx" TOKEN ":x:0;"                          /* bad status */
	    "@@swx" TOKEN ":12:0" "SHELLPS1PREFIX";       /* no ';' */
	struct sink s;

	feed(&s, in, 0);
	CHECK_INT(s.marks, 0);
	CHECK_MEM(s.out, s.len, in);
	feed(&s, in, 1);
	CHECK_INT(s.marks, 0);
	CHECK_MEM(s.out, s.len, in);
}

TEST(at_sign_restarts_match)
{
	struct sink s;

	feed(&s, "a@sw@" "swx" TOKEN ":3:0;", 1);
	CHECK_INT(s.marks, 1);
	CHECK_INT(s.status[0], 3);
	CHECK_MEM(s.out, s.len, "a@sw");
}

TEST(crlf_and_lone_cr)
{
	struct sink s;

	feed(&s, "a\r\nb\r\r\nc\rd\r", 1);
	CHECK_MEM(s.out, s.len, "a\nb\nc\rd\r");
	feed(&s, "x\r" MARK("0", "0"), 0);
	CHECK_MEM(s.out, s.len, "x\r");
}

TEST(escapes_stripped)
{
	static const char in[] = "\033[31mred\033[0m \033]0;title\007t"
	    "\033]8;;http://x\033\\link\033(Bok\033=\007!\033[?2004h";
	struct sink s;
	size_t step;

	for (step = 0; step <= 3; step++) {
		feed(&s, in, step);
		CHECK_MEM(s.out, s.len, "red tlinkok!");
	}
}

/*
 * Carriage returns before an escape or a bell wait for what comes next: a
 * line that ends "\r\e[K\n" (a cleared progress line) is a plain "\n"; a
 * progress bar's "\r\e[K50%" keeps its "\r".
 */
TEST(cr_across_escapes)
{
	static const char in[] = "a\r\033[K\nb\r\007\r\nc\r\033[2K50%\n";
	struct sink s;
	size_t step;

	for (step = 0; step <= 3; step++) {
		feed(&s, in, step);
		CHECK_MEM(s.out, s.len, "a\nb\nc\r50%\n");
	}
}

TAP_MAIN(TAP_T(marker_whole_and_split), TAP_T(fake_markers_are_output),
    TAP_T(at_sign_restarts_match), TAP_T(crlf_and_lone_cr),
    TAP_T(escapes_stripped), TAP_T(cr_across_escapes))
