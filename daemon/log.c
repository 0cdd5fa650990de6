/* Levelled logging to stderr, the journal's stderr or syslog. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_level log_level = LOG_LVL_INFO;
static enum log_target log_target = LOG_TARGET_STDERR;
static bool log_journal;
static const char *log_ident = "swerexd";
static const char *log_names[] = { "error", "warn", "info", "debug" };
/* syslog(3) priorities of the levels, also the journal's "<N>" prefixes. */
static const int log_priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

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

/* Map a target name (stderr, syslog) to its value, or -1. */
int
log_parse_target(const char *s)
{
	if (strcmp(s, "stderr") == 0)
		return LOG_TARGET_STDERR;
	if (strcmp(s, "syslog") == 0)
		return LOG_TARGET_SYSLOG;
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

/*
 * Tell whether stderr is connected to the journal: systemd sets
 * JOURNAL_STREAM to the "device:inode" of the stream it gave us, which stops
 * matching once stderr is redirected elsewhere (or inherited by a program
 * started from a service whose stderr went to a file).
 */
static bool
log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (env == NULL || sscanf(env, "%llu:%llu%n", &dev, &ino, &n) != 2 ||
	    env[n] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/*
 * Choose where messages go; called once, after the options are parsed.
 * On stderr that is the journal, lines lose the timestamp and the program
 * name (journald records both) and start with the syslog priority as
 * "<N>", which journald takes as the message's priority.
 */
void
log_open(enum log_target target)
{
	log_target = target;
	if (target == LOG_TARGET_SYSLOG) {
		/* LOG_NDELAY: connect now, not from the first message. */
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
		return;
	}
	log_journal = log_stderr_is_journal();
}

/* Tell whether messages of a level are printed. */
int
log_enabled(enum log_level level)
{
	return level <= log_level;
}

/* Log one message at a level, with a timestamp when nobody else adds one. */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	char buf[1024], ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (log_target == LOG_TARGET_SYSLOG) {
		syslog(log_priorities[level], "%s", buf);
		return;
	}
	if (log_journal) {
		fprintf(stderr, "<%d>%s: %s\n", log_priorities[level],
		    log_names[level], buf);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld %s[%s]: %s\n", ts, now.tv_nsec / 1000000,
	    log_ident, log_names[level], buf);
}
