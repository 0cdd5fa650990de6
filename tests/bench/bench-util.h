/*
 * What every benchmark driver shares (bench-swerexd, bench-floor,
 * bench-tmux): the command line, the CSV output, latency samples and their
 * quantiles, the run loop with its deadline, the private temp dir and HOME,
 * and the /proc readers.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>

/* Every run ends within this many seconds unless --timeout says otherwise. */
#define BU_DEFAULT_TIMEOUT 600

/* The command line every driver takes (see tests/bench/run.sh). */
struct bu_opts {
	const char *scenario;
	long sessions;          /* --sessions; the driver presets its default */
	long iterations;        /* --iterations; likewise */
	long connections;       /* --connections; likewise */
	long long bytes;        /* --bytes, 0: the scenario's default */
	bool rc;                /* --rc: sessions source a ~/.bashrc */
	const char *socket;     /* --socket: an existing daemon */
	const char *daemon;     /* --daemon: the swerexd to start */
	double timeout;         /* --timeout: bound on the whole run, seconds */
};

/* Latency samples of one measurement, in µs. */
struct bu_lat {
	double *v;
	size_t n, cap;
};

/*
 * The loop of a run: what is still pending, the errors counted, and the
 * deadline and signals that end it early.
 */
struct bu_run {
	struct event_base *base;
	struct event ev_deadline;
	struct event ev_int, ev_term;
	long pending;           /* things still outstanding */
	bool aborted;           /* deadline or signal: run nothing more */
	unsigned long errors;
	double timeout;
};

/*
 * The slow client of the hol scenario, the same for every driver: it takes
 * BU_SLOW_CHUNK bytes every BU_SLOW_EVERY_US µs (about 400 KB/s).
 */
#define BU_SLOW_CHUNK 4096
#define BU_SLOW_EVERY_US 10000

/* The private temp dir; HOME is its "home" subdirectory. */
struct bu_dir {
	char path[64];
	char home[80];
};

void bu_init(const char *impl);
double bu_now(void);
void bu_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void bu_metric(const char *scenario, const char *param, const char *metric,
    double value, const char *unit);
void bu_count(const char *scenario, const char *param, const char *metric,
    long long value, const char *unit);

void bu_lat_add(struct bu_run *r, struct bu_lat *l, double seconds);
void bu_lat_report(struct bu_lat *l, const char *scenario, const char *param,
    const char *prefix);
void bu_lat_free(struct bu_lat *l);

int bu_parse(struct bu_opts *o, int argc, char **argv);
void bu_usage(const char *scenarios);

int bu_run_init(struct bu_run *r, double timeout);
void bu_run_done(struct bu_run *r);
int bu_run_wait(struct bu_run *r);
void bu_run_free(struct bu_run *r);

int bu_dir_make(struct bu_dir *d, bool rc);
void bu_dir_remove(struct bu_dir *d);

long bu_rss_kib(pid_t pid);
long bu_fds(pid_t pid);
double bu_cpu(pid_t pid);

#endif
