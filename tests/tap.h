/*
 * Minimal TAP test harness: each TEST is one "ok"/"not ok" line; CHECK*
 * macros record a failure with its location and keep going, REQUIRE* stop
 * the current test. main() comes from TAP_MAIN(tests...).
 */
#ifndef SWEREX_TAP_H
#define SWEREX_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

struct tap_test {
	const char *name;
	void (*fn)(void);
};

extern int tap_failed_now;
extern jmp_buf tap_abort;
/* Set by a test that could not run here: reported "# SKIP", not as a pass. */
extern const char *tap_skip;

static inline void
tap_diag(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("# %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	tap_failed_now = 1;
}

#define TEST(name) static void name(void)
#define CHECK(c) do { if (!(c)) tap_diag(__FILE__, __LINE__, "check failed: %s", #c); } while (0)
/* Stop the current test and report it as "ok N - name # SKIP reason". */
#define SKIP(reason) do { tap_skip = (reason); longjmp(tap_abort, 1); } while (0)
#define REQUIRE(c) do { if (!(c)) { tap_diag(__FILE__, __LINE__, "required: %s", #c); longjmp(tap_abort, 1); } } while (0)
#define CHECK_INT(a, b) do { long long _a = (a), _b = (b); if (_a != _b) \
	tap_diag(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, _a, #b, _b); } while (0)
/* Compare a byte string (with length) to a C string, printing both escaped. */
#define CHECK_MEM(p, n, s) do { if (!tap_mem_eq((p), (n), (s))) { \
	tap_diag(__FILE__, __LINE__, "%s differs from %s", #p, #s); \
	tap_show("got     ", (p), (n)); tap_show("expected", (s), strlen(s)); } } while (0)
#define CHECK_STR(a, b) do { const char *_a = (a), *_b = (b); \
	if (!_a || !_b || strcmp(_a, _b) != 0) tap_diag(__FILE__, __LINE__, \
	"%s is \"%s\", expected \"%s\"", #a, _a ? _a : "(null)", _b ? _b : "(null)"); } while (0)

static inline int
tap_mem_eq(const void *p, size_t n, const char *s)
{
	return p != NULL && n == strlen(s) && memcmp(p, s, n) == 0;
}

/* Compare two byte strings, naming the first difference. */
static inline void
tap_bytes_at(const char *file, int line, const char *what, const void *got,
	     size_t got_len, const void *want, size_t want_len)
{
	const unsigned char *a = got, *b = want;
	size_t i, n = got_len < want_len ? got_len : want_len;

	if (got_len == want_len && (n == 0 || (a != NULL && memcmp(a, b, n) == 0)))
		return;
	for (i = 0; a != NULL && i < n && a[i] == b[i]; i++)
		;
	tap_diag(file, line, "%s: %zu bytes, expected %zu; first difference at "
		 "offset %zu", what, got_len, want_len, i);
	if (a != NULL && i < n)
		printf("#   got 0x%02x, expected 0x%02x\n", a[i], b[i]);
}
#define CHECK_BYTES(what, p, n, q, m) \
	tap_bytes_at(__FILE__, __LINE__, (what), (p), (n), (q), (m))

static inline void
tap_show(const char *label, const void *p, size_t n)
{
	const unsigned char *c = p;
	size_t i;

	printf("#   %s (%zu): \"", label, n);
	for (i = 0; c && i < n && i < 400; i++) {
		if (c[i] == '\n') printf("\\n");
		else if (c[i] == '\r') printf("\\r");
		else if (c[i] < 0x20 || c[i] >= 0x7f) printf("\\x%02x", c[i]);
		else putchar(c[i]);
	}
	printf("%s\"\n", i < n ? "..." : "");
}

static inline int
tap_run(const struct tap_test *t, size_t n)
{
	volatile size_t i;
	volatile int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("1..%zu\n", n);
	for (i = 0; i < n; i++) {
		tap_failed_now = 0;
		tap_skip = NULL;
		if (setjmp(tap_abort) == 0)
			t[i].fn();
		if (tap_skip != NULL && !tap_failed_now) {
			printf("ok %zu - %s # SKIP %s\n", i + 1, t[i].name, tap_skip);
			continue;
		}
		printf("%sok %zu - %s\n", tap_failed_now ? "not " : "", i + 1, t[i].name);
		failed += tap_failed_now;
	}
	return failed ? 1 : 0;
}

#define TAP_T(fn) { #fn, fn }
#define TAP_MAIN(...) \
	int tap_failed_now; jmp_buf tap_abort; const char *tap_skip; \
	int main(void) { static const struct tap_test t[] = { __VA_ARGS__ }; \
	return tap_run(t, sizeof t / sizeof t[0]); }

#endif
