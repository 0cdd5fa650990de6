/*
 * What every benchmark driver shares: one command line, one CSV format
 * ("impl,scenario,param,metric,value,unit" on stdout), latency quantiles,
 * the run loop and its deadline, the private temp dir and HOME, and the
 * /proc readers that measure the server under test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

/* The driver's name in the CSV ("floor"). */
static const char *bu_impl = "?";

/* The ~/.bashrc that --rc sessions source: a few lines, like a user's. */
static const char bu_bashrc[] =
	"# a few lines, like a user's\nexport EDITOR=vi\n"
	"alias ll='ls -l'\nHISTSIZE=1000\numask 022\n"
	"[ -d \"$HOME/bin\" ] && PATH=\"$HOME/bin:$PATH\"\n";

/* Raise the soft limit of open files to the hard one (1000 sessions). */
static void
bu_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		bu_diag("cannot raise RLIMIT_NOFILE: %s", strerror(errno));
}

/* Set up the process for driver impl: its name and limits. */
void
bu_init(const char *impl)
{
	bu_impl = impl;
	/* A peer that goes away is an error to count, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	bu_raise_nofile();
}

/* Return monotonic time in seconds. */
double
bu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Print a diagnostic on stderr, never into the CSV. */
void
bu_diag(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "bench-%s: ", bu_impl);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Print one CSV metric line; flush, so a killed run keeps what it printed. */
void
bu_metric(const char *scenario, const char *param, const char *metric,
    double value, const char *unit)
{
	printf("%s,%s,%s,%s,%.3f,%s\n", bu_impl, scenario, param, metric,
	    value, unit);
	fflush(stdout);
}

/* Print one CSV line of a whole number (errors, bytes, fds). */
void
bu_count(const char *scenario, const char *param, const char *metric,
    long long value, const char *unit)
{
	printf("%s,%s,%s,%s,%lld,%s\n", bu_impl, scenario, param, metric,
	    value, unit);
	fflush(stdout);
}

/* Record one latency; a sample that finds no memory is an error of r. */
void
bu_lat_add(struct bu_run *r, struct bu_lat *l, double seconds)
{
	double *n;
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap ? 2 * l->cap : 1024;
		n = realloc(l->v, cap * sizeof *n);
		if (n == NULL) {
			r->errors++;
			return;
		}
		l->v = n;
		l->cap = cap;
	}
	l->v[l->n++] = seconds * 1e6;
}

/* Order doubles for qsort. */
static int
bu_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * Return the q-quantile of sorted, non-empty samples, the same way for
 * every driver so that their ratios compare like with like.
 */
static double
bu_quantile(const struct bu_lat *l, double q)
{
	size_t i;

	/* Nearest rank: the smallest sample with a fraction q at or below. */
	i = (size_t)ceil(q * (double)l->n);
	if (i > 0)
		i--;
	if (i >= l->n)
		i = l->n - 1;
	return l->v[i];
}

/* Print PREFIXp50 and PREFIXp99 of l in µs and forget the samples. */
void
bu_lat_report(struct bu_lat *l, const char *scenario, const char *param,
    const char *prefix)
{
	double p50, p99;
	char m[64];

	if (l->n == 0)
		return;
	qsort(l->v, l->n, sizeof *l->v, bu_cmp);
	p50 = bu_quantile(l, 0.50);
	p99 = bu_quantile(l, 0.99);
	snprintf(m, sizeof m, "%sp50", prefix);
	bu_metric(scenario, param, m, p50, "us");
	snprintf(m, sizeof m, "%sp99", prefix);
	bu_metric(scenario, param, m, p99, "us");
	l->n = 0;
}

/* Free the samples of l. */
void
bu_lat_free(struct bu_lat *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Parse a non-negative whole number into *v; -1 if s is not one. */
static int
bu_num(const char *s, long long *v)
{
	char *end;

	errno = 0;
	*v = strtoll(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || *v < 0)
		return -1;
	return 0;
}

/*
 * Parse the command line into o, which holds the driver's defaults. Returns
 * -1 on a command line the driver should answer with its usage.
 */
int
bu_parse(struct bu_opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "scenario", required_argument, NULL, 's' },
		{ "sessions", required_argument, NULL, 'n' },
		{ "iterations", required_argument, NULL, 'm' },
		{ "connections", required_argument, NULL, 'k' },
		{ "rc", no_argument, NULL, 'r' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "socket", required_argument, NULL, 'S' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	long long v = 0;
	int ch;

	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		if (strchr("nmkbt", ch) != NULL && bu_num(optarg, &v) < 0)
			return -1;
		switch (ch) {
		case 's': o->scenario = optarg; break;
		case 'n': o->sessions = (long)v; break;
		case 'm': o->iterations = (long)v; break;
		case 'k': o->connections = (long)v; break;
		case 'r': o->rc = true; break;
		case 'b': o->bytes = v; break;
		case 'S': o->socket = optarg; break;
		case 'd': o->daemon = optarg; break;
		case 't': o->timeout = (double)v; break;
		default: return -1;
		}
	}
	if (o->scenario == NULL || optind != argc)
		return -1;
	return 0;
}

/* Print the usage, with the scenarios the driver knows, on stderr. */
void
bu_usage(const char *scenarios)
{
	fprintf(stderr, "usage: bench-%s --scenario %s [--sessions N] "
	    "[--iterations M]\n"
	    "       [--connections K] [--rc] [--bytes B] [--socket PATH] "
	    "[--daemon PATH] [--timeout S]\n", bu_impl, scenarios);
}

/* End the run early (deadline or signal): whatever is pending is an error. */
static void
bu_run_abort_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bu_run *r = arg;

	if (fd < 0)
		bu_diag("deadline of %.0f s reached, %ld pending", r->timeout,
		    r->pending);
	else
		bu_diag("stopped by a signal, %ld pending", r->pending);
	r->aborted = true;
	r->errors += (unsigned long)r->pending;
	r->pending = 0;
	event_base_loopbreak(r->base);
}

/*
 * Make r's loop with a deadline timeout seconds away; SIGINT and SIGTERM
 * end the run the same way, so that the driver still reaps what it started.
 */
int
bu_run_init(struct bu_run *r, double timeout)
{
	struct timeval tv = { (time_t)timeout, 0 };

	memset(r, 0, sizeof *r);
	r->timeout = timeout;
	if ((r->base = event_base_new()) == NULL)
		return -1;
	evtimer_assign(&r->ev_deadline, r->base, bu_run_abort_cb, r);
	evsignal_assign(&r->ev_int, r->base, SIGINT, bu_run_abort_cb, r);
	evsignal_assign(&r->ev_term, r->base, SIGTERM, bu_run_abort_cb, r);
	if (evtimer_add(&r->ev_deadline, &tv) < 0 ||
	    evsignal_add(&r->ev_int, NULL) < 0 ||
	    evsignal_add(&r->ev_term, NULL) < 0) {
		bu_run_free(r);
		return -1;
	}
	return 0;
}

/* Count one pending thing as done; stop the loop when none are left. */
void
bu_run_done(struct bu_run *r)
{
	if (--r->pending == 0)
		event_base_loopbreak(r->base);
}

/*
 * Run the loop until nothing is pending, or the run is aborted (-1). One
 * pass at a time, so a count set to zero without bu_run_done still ends it.
 */
int
bu_run_wait(struct bu_run *r)
{
	while (r->pending > 0 && !r->aborted)
		if (event_base_loop(r->base, EVLOOP_ONCE) < 0)
			return -1;
	return r->aborted ? -1 : 0;
}

/* Free r's loop and its events. */
void
bu_run_free(struct bu_run *r)
{
	if (r->base == NULL)
		return;
	event_del(&r->ev_deadline);
	event_del(&r->ev_int);
	event_del(&r->ev_term);
	event_base_free(r->base);
	r->base = NULL;
}

/* Write the ~/.bashrc that --rc sessions source. */
static int
bu_write_rc(struct bu_dir *d)
{
	char path[96];
	FILE *f;

	snprintf(path, sizeof path, "%s/.bashrc", d->home);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(bu_bashrc, f);
	return fclose(f) == 0 ? 0 : -1;
}

/*
 * Make the private temp dir /tmp/bench-IMPL.XXXXXX with HOME inside it and,
 * with rc, a ~/.bashrc. /tmp, not $TMPDIR: sockets go in it, and a Unix
 * socket's path is short.
 */
int
bu_dir_make(struct bu_dir *d, bool rc)
{
	snprintf(d->path, sizeof d->path, "/tmp/bench-%s.XXXXXX", bu_impl);
	if (mkdtemp(d->path) == NULL) {
		bu_diag("mkdtemp: %s", strerror(errno));
		d->path[0] = '\0';
		return -1;
	}
	snprintf(d->home, sizeof d->home, "%s/home", d->path);
	if (mkdir(d->home, 0700) < 0 || (rc && bu_write_rc(d) < 0)) {
		bu_diag("cannot make HOME in %s: %s", d->path, strerror(errno));
		bu_dir_remove(d);
		return -1;
	}
	return 0;
}

/* Remove one file or (emptied) directory for nftw. */
static int
bu_remove_cb(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	if (remove(path) < 0)
		bu_diag("cannot remove %s: %s", path, strerror(errno));
	return 0;
}

/* Remove the temp dir and whatever the run left in it. */
void
bu_dir_remove(struct bu_dir *d)
{
	if (d->path[0] == '\0')
		return;
	nftw(d->path, bu_remove_cb, 16, FTW_DEPTH | FTW_PHYS);
	d->path[0] = '\0';
}

/* Return the resident set of a process in KiB, or -1. */
long
bu_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Count the open fds of a process, or return -1. */
long
bu_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	long n = 0;
	DIR *dir;

	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(dir)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/*
 * Return the CPU time (user + system) of a process in seconds, or -1: from
 * /proc/PID/schedstat in nanoseconds where the kernel has it, else from
 * /proc/PID/stat in clock ticks (10 ms: 20,000 commands of 25 us are only
 * 50 ticks, too coarse to compare two runs).
 */
double
bu_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ns;
	unsigned long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (sscanf(buf, "%llu", &ns) == 1)
				return (double)ns / 1e9;
		}
	}
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the ")" that ends the name. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
