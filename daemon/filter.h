/*
 * The shell side of the session protocol: commands encoded for bash's
 * terminal, and raw pty bytes turned into clean output and prompt markers.
 */
#ifndef SWEREXD_FILTER_H
#define SWEREXD_FILTER_H

#include <stddef.h>

#define FILTER_TOKEN_LEN 32
/* Encoded command bytes per physical terminal line. */
#define FILTER_LINE 1024

struct evbuffer;

/*
 * A marker is what the session's PROMPT_COMMAND prints:
 *   "@swx" TOKEN ":" STATUS ":" KIND ";"
 * TOKEN is 32 random hex digits chosen per session, STATUS is $? (0-255) and
 * KIND is 0 (command ran) or 2 (syntax check failed). '@' occurs only at the
 * start, so a failed partial match never hides the start of a real one.
 */
#define FILTER_PREFIX_LEN (4 + FILTER_TOKEN_LEN + 1)
#define FILTER_CR_MAX 256
#define FILTER_MARKER_MAX (FILTER_PREFIX_LEN + 3 + 1 + 1 + 1)

/*
 * The shell side of the marker (a printf format: the session's token as
 * its %.32s): printed by PROMPT_COMMAND, not expanded in PS1: after a
 * parse error at end of input inside eval, bash prints a PS1 it expanded
 * before the line ran, with a stale $?. PS1 is emptied each time so that
 * scripts that prepend to it (virtualenv's activate) add no noise. It is
 * written to the terminal itself (bash's own fd 255, /dev/tty if that
 * fails), so that a command that sent bash's stdout elsewhere (exec >file)
 * does not hide it, and a stdout or stderr a command closed (exec >&-) is
 * reopened on the terminal: the session keeps working. Each of these costs
 * bash syscalls per command: no path is opened unless something is wrong.
 */
#define FILTER_PROMPT_COMMAND \
	"__swx_s=$?; { : 9>&1; } 2>&- || exec >/dev/tty; " \
	"{ : 9>&2; } || exec 2>/dev/tty; " \
	"printf -v __swx_m \"@swx%.32s:%%s:%%s;\" \"$__swx_s\" \"${__swx_k:-0}\"; " \
	"printf %%s \"$__swx_m\" 2>&- >&255 || printf %%s \"$__swx_m\" >/dev/tty; " \
	"PS1="

typedef void (*filter_output_cb)(void *arg, const char *p, size_t n);
/* Return non-zero to stop feeding: the rest of the input is dropped. */
typedef int (*filter_marker_cb)(void *arg, int status, int kind);

enum filter_esc {
	FILTER_ESC_NONE,
	FILTER_ESC_START,  /* saw ESC */
	FILTER_ESC_CSI,    /* ESC [ ... final byte */
	FILTER_ESC_STR,    /* OSC/DCS/APC/PM/SOS ... BEL or ESC \ */
	FILTER_ESC_STR_ESC,/* ESC inside a string */
	FILTER_ESC_INTER,  /* ESC intermediate ... final byte */
};

struct filter {
	char prefix[FILTER_PREFIX_LEN];
	char hold[FILTER_MARKER_MAX];  /* bytes of a possible marker */
	size_t nhold;
	int status;                    /* digits parsed so far */
	int kind;
	unsigned ndigits;
	enum filter_esc esc;
	size_t ncr;                    /* carriage returns waiting for their \n */
	/* If set: every byte that is not a marker, uncleaned, before out sees
	 * it (what a terminal attached to the session should show). */
	filter_output_cb raw;
};

void filter_init(struct filter *f, const char *token);
void filter_feed(struct filter *f, const char *p, size_t n,
		 filter_output_cb out, filter_marker_cb mark, void *arg);
void filter_flush(struct filter *f, filter_output_cb out, void *arg);
size_t filter_clean(struct filter *f, const char *p, size_t n, char *dst);

void filter_encode(struct evbuffer *out, const char *cmd, size_t len);

#endif
