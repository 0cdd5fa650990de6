/*
 * Output filter: finds the per-session prompt marker in the raw pty stream and
 * cleans everything else the way a reader of a terminal expects: "\r\n" (and
 * the "\r\r\n" a program's own "\r\n" becomes under ONLCR) turned into "\n",
 * escape sequences and bells removed. Both stages keep state across reads, so
 * a marker or an escape sequence split over two reads is handled.
 */
#include <string.h>

#include <event2/buffer.h>

#include "filter.h"

/* Bytes the cleaner must look at: everything else is copied as is. */
static const unsigned char filter_special[256] = {
	['\r'] = 1, [0x1b] = 1, [0x07] = 1,
};

/* Set up a filter for a session whose marker carries token. */
void
filter_init(struct filter *f, const char *token)
{
	memset(f, 0, sizeof *f);
	memcpy(f->prefix, "@swx", 4);
	memcpy(f->prefix + 4, token, FILTER_TOKEN_LEN);
	f->prefix[FILTER_PREFIX_LEN - 1] = ':';
}

/* Strip escapes and carriage returns from p into dst; return bytes written. */
size_t
filter_clean(struct filter *f, const char *p, size_t n, char *dst)
{
	char *d = dst;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (f->esc == FILTER_ESC_NONE && f->ncr == 0 && !filter_special[c]) {
			/* Fast path: copy the run of ordinary bytes at once. */
			size_t j = i + 1;

			while (j < n && !filter_special[(unsigned char)p[j]])
				j++;
			memcpy(d, p + i, j - i);
			d += j - i;
			i = j - 1;
			continue;
		}
		switch (f->esc) {
		case FILTER_ESC_NONE:
			break;
		case FILTER_ESC_START:
			if (c == '[')
				f->esc = FILTER_ESC_CSI;
			else if (c == ']' || c == 'P' || c == '_' || c == '^' || c == 'X')
				f->esc = FILTER_ESC_STR;
			else if (c >= 0x20 && c <= 0x2f)
				f->esc = FILTER_ESC_INTER;
			else
				f->esc = FILTER_ESC_NONE;
			continue;
		case FILTER_ESC_CSI:
			if (c >= 0x40 && c <= 0x7e)
				f->esc = FILTER_ESC_NONE;
			else if (c == 0x1b)
				f->esc = FILTER_ESC_START;
			else if (c < 0x20 && c != 0x1b)
				break; /* controls inside CSI are executed; keep them */
			continue;
		case FILTER_ESC_STR:
			if (c == 0x07)
				f->esc = FILTER_ESC_NONE;
			else if (c == 0x1b)
				f->esc = FILTER_ESC_STR_ESC;
			continue;
		case FILTER_ESC_STR_ESC:
			f->esc = c == '\\' ? FILTER_ESC_NONE : FILTER_ESC_STR;
			continue;
		case FILTER_ESC_INTER:
			if (c >= 0x30 && c <= 0x7e)
				f->esc = FILTER_ESC_NONE;
			continue;
		}

		if (c == '\r') {
			/* Runs of carriage returns are capped: they look the same. */
			if (f->ncr < FILTER_CR_MAX)
				f->ncr++;
			continue;
		}
		/*
		 * Escapes and bells print nothing: carriage returns before
		 * them still wait for what comes next ("\r\e[K\n" is "\n").
		 */
		if (c == 0x1b) {
			f->esc = FILTER_ESC_START;
			continue;
		}
		if (c == 0x07)
			continue;
		if (f->ncr > 0 && c != '\n') {
			/* A lone carriage return is kept: progress bars use it. */
			memset(d, '\r', f->ncr);
			d += f->ncr;
		}
		f->ncr = 0;
		*d++ = (char)c;
	}
	return (size_t)(d - dst);
}

/* Clean a span and pass it on. */
static void
filter_emit(struct filter *f, const char *p, size_t n, filter_output_cb out,
	    void *arg)
{
	char buf[4096 + FILTER_CR_MAX];
	size_t chunk, w;

	if (f->raw != NULL && n > 0)
		f->raw(arg, p, n);
	while (n > 0) {
		chunk = n < 4096 ? n : 4096;
		w = filter_clean(f, p, chunk, buf);
		if (w > 0)
			out(arg, buf, w);
		p += chunk;
		n -= chunk;
	}
}

/* Emit held carriage returns and forget escape state: a command ended. */
void
filter_flush(struct filter *f, filter_output_cb out, void *arg)
{
	char cr[FILTER_CR_MAX];

	if (f->ncr > 0) {
		memset(cr, '\r', f->ncr);
		out(arg, cr, f->ncr);
		f->ncr = 0;
	}
	f->esc = FILTER_ESC_NONE;
}

/* Give up on a partial marker: its bytes were output after all. */
static void
filter_unhold(struct filter *f, filter_output_cb out, void *arg)
{
	size_t n = f->nhold;

	f->nhold = 0;
	filter_emit(f, f->hold, n, out, arg);
}

/*
 * Feed raw bytes. Output is passed to out in order; each complete marker ends
 * the output before it (held carriage returns are flushed first) and is passed
 * to mark. Bytes that may start a marker are held until it is decided.
 */
void
filter_feed(struct filter *f, const char *p, size_t n, filter_output_cb out,
	    filter_marker_cb mark, void *arg)
{
	const char *end = p + n, *at;
	unsigned char c;

	while (p < end) {
		if (f->nhold == 0) {
			at = memchr(p, '@', (size_t)(end - p));
			if (at == NULL) {
				filter_emit(f, p, (size_t)(end - p), out, arg);
				return;
			}
			if (at > p)
				filter_emit(f, p, (size_t)(at - p), out, arg);
			p = at;
			f->hold[f->nhold++] = *p++;
			f->status = 0;
			f->ndigits = 0;
			continue;
		}
		c = (unsigned char)*p;
		if (f->nhold < FILTER_PREFIX_LEN) {
			if (c != (unsigned char)f->prefix[f->nhold]) {
				filter_unhold(f, out, arg);
				continue; /* reconsider c: it may be an '@' */
			}
			f->hold[f->nhold++] = (char)c;
			p++;
			continue;
		}
		/* Past the prefix: STATUS ":" KIND ";" */
		if (f->ndigits < 4 && c >= '0' && c <= '9' && f->ndigits < 3) {
			f->status = f->status * 10 + (c - '0');
			f->ndigits++;
		} else if (f->ndigits > 0 && f->ndigits < 4 && c == ':') {
			f->ndigits = 4; /* now expecting KIND */
			f->kind = -1;
		} else if (f->ndigits == 4 && f->kind < 0 && c >= '0' && c <= '9') {
			f->kind = c - '0';
		} else if (f->ndigits == 4 && f->kind >= 0 && c == ';') {
			p++;
			f->nhold = 0;
			filter_flush(f, out, arg);
			if (mark(arg, f->status, f->kind))
				return;
			continue;
		} else {
			filter_unhold(f, out, arg);
			continue;
		}
		f->hold[f->nhold++] = (char)c;
		p++;
	}
}

/*
 * Append a command as the assignment __swx_c=$'...', split over short
 * continued lines (a tty line holds at most 4095 bytes). Also used by the
 * benchmarks' floor and tmux drivers, so all three type the same bytes.
 */
void
filter_encode(struct evbuffer *out, const char *cmd, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char buf[FILTER_LINE + 16];
	size_t i, n = 0, line = 0;

	evbuffer_add(out, "__swx_c=$'", 10);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)cmd[i];

		if (line >= FILTER_LINE) {
			memcpy(buf + n, "'\\\n$'", 5);
			n += 5;
			evbuffer_add(out, buf, n);
			n = 0;
			line = 0;
		}
		if (c == '\\' || c == '\'') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
			line += 2;
		} else if (c == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
			line += 2;
		} else if (c < 0x20 || c == 0x7f) {
			buf[n++] = '\\';
			buf[n++] = 'x';
			buf[n++] = hex[c >> 4];
			buf[n++] = hex[c & 15];
			line += 4;
		} else {
			buf[n++] = (char)c;
			line++;
		}
	}
	buf[n++] = '\'';
	evbuffer_add(out, buf, n);
}
