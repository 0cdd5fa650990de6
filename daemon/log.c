/* Levelled logging to stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

static enum log_level log_level = LOG_LVL_INFO;
static const char *log_ident = "swerexd";
static const char *log_names[] = { "error", "warn", "info", "debug" };

/* Map a level name to its value, or -1. */
int
log_parse_level(const char *s)
{
	int i;

	for (i = 0; i <= LOG_LVL_DEBUG; i++)
		if (strcmp(s, log_names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return LOG_LVL_WARN;
	return -1;
}

/* Name the program in every line (swerexd, swerex-tunnel). */
void
log_set_ident(const char *ident)
{
	log_ident = ident;
}

/* Set the most verbose level that is printed. */
void
log_set_level(enum log_level level)
{
	log_level = level;
}

/* Tell whether messages of a level are printed. */
int
log_enabled(enum log_level level)
{
	return level <= log_level;
}

/* Print one line with a timestamp and the level. */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[1024], ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03ld %s[%s]: %s\n", ts, now.tv_nsec / 1000000,
	    log_ident, log_names[level], buf);
}
