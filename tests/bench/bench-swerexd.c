/*
 * bench-swerexd: load generator for swerexd over libswerex's event-driven
 * interface. One libevent loop drives every session and connection; the
 * daemon is a private one started from --daemon on a temp socket with a
 * private HOME (or an existing one at --socket). Prints CSV lines
 * "swerexd,scenario,param,metric,value,unit" on stdout; diagnostics on stderr.
 * The command line is shared with bench-floor and bench-tmux (see
 * tests/bench/run.sh).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "swerex.h"

/* Every run ends within this many seconds unless --timeout says otherwise. */
#define BENCH_DEFAULT_TIMEOUT 600.0

struct bench_opts {
	const char *scenario;
	long sessions;          /* --sessions, 0: the scenario's default */
	long iterations;        /* --iterations, 0: the scenario's default */
	long connections;       /* --connections, 0: one connection */
	long long bytes;        /* --bytes, 0: the scenario's default */
	bool rc;                /* --rc: sessions source a ~/.bashrc */
	const char *socket;     /* --socket: use this daemon instead */
	const char *daemon;     /* --daemon: start this swerexd */
	double timeout;         /* --timeout: bound of the whole run */
};

struct bench;

/* One session and the commands it still has to run. */
struct bench_sess {
	struct bench *b;
	struct swerex_client *c;
	char name[32];
	long left;              /* echoes still to submit */
	double t0;              /* when the request in flight was sent */
	bool alive;             /* created and not failed */
	bool done;              /* a long command (sleep, stream) ended */
	uint64_t bytes;         /* streamed output received */
};

/* Latencies of one measurement, in µs. */
struct bench_lat {
	double *v;
	size_t n, cap;
};

struct bench {
	struct bench_opts o;
	struct event_base *base;
	struct event *deadline;
	bool timed_out;
	long pending;           /* state machines still running */
	char dir[64];           /* private temp dir: HOME, socket, log */
	char url[160];
	pid_t pid;              /* our daemon, or 0 */
	struct bench_lat lat;   /* latencies of the current measurement */
	struct bench_lat close_lat; /* create: the closes' */
	unsigned long errors;   /* errors in the current measurement */
	bool said_error;        /* first error already told on stderr */
};

/* Monotonic time in seconds. */
static double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Print a diagnostic on stderr. */
static void __attribute__((format(printf, 1, 2)))
bench_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("bench-swerexd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Count one error; tell the first one on stderr. */
static void
bench_error(struct bench *b, const char *what, const struct swerex_error *e)
{
	b->errors++;
	if (b->said_error)
		return;
	b->said_error = true;
	bench_diag("%s: %s: %s", what,
	    e != NULL ? swerex_error_kind_name(e->kind) : "error",
	    e != NULL && e->message != NULL ? e->message : "(no message)");
}

/* Print one CSV metric line. */
static void
bench_metric(const char *scenario, const char *param, const char *metric,
    double value, const char *unit)
{
	printf("swerexd,%s,%s,%s,%.3f,%s\n", scenario, param, metric, value,
	    unit);
	fflush(stdout);
}

/* Record one latency in seconds. */
static void
bench_lat_add(struct bench *b, struct bench_lat *l, double seconds)
{
	double *n;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		n = realloc(l->v, l->cap * sizeof *n);
		if (n == NULL) {
			b->errors++;
			return;
		}
		l->v = n;
	}
	l->v[l->n++] = seconds * 1e6;
}

/* Compare doubles for qsort. */
static int
bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of sorted latencies. */
static double
bench_quantile(const struct bench_lat *l, double q)
{
	size_t i;

	if (l->n == 0)
		return NAN;
	i = (size_t)ceil(q * (double)l->n);
	if (i > 0)
		i--;
	if (i >= l->n)
		i = l->n - 1;
	return l->v[i];
}

/* Print PREFIXp50 and PREFIXp99 of l and empty it. */
static void
bench_report_lat(struct bench_lat *l, const char *scenario, const char *param,
    const char *prefix)
{
	char m[32];

	qsort(l->v, l->n, sizeof *l->v, bench_cmp);
	if (l->n > 0) {
		snprintf(m, sizeof m, "%sp50", prefix);
		bench_metric(scenario, param, m, bench_quantile(l, 0.50), "us");
		snprintf(m, sizeof m, "%sp99", prefix);
		bench_metric(scenario, param, m, bench_quantile(l, 0.99), "us");
	}
	l->n = 0;
}

/* Print the errors of the current measurement and reset them. */
static void
bench_report_errors(struct bench *b, const char *scenario, const char *param)
{
	bench_metric(scenario, param, "errors", (double)b->errors, "count");
	b->errors = 0;
	b->said_error = false;
}

/* Print p50, p99 and errors of the current measurement and reset it. */
static void
bench_report(struct bench *b, const char *scenario, const char *param)
{
	bench_report_lat(&b->lat, scenario, param, "");
	bench_report_errors(b, scenario, param);
}

/* The deadline passed: stop every wait. */
static void
bench_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;

	b->timed_out = true;
	bench_diag("deadline of %.0f s reached", b->o.timeout);
	event_base_loopbreak(b->base);
}

/* Run the loop until every state machine has finished or time is up. */
static int
bench_wait(struct bench *b)
{
	while (b->pending > 0 && !b->timed_out)
		if (event_base_loop(b->base, EVLOOP_ONCE) < 0)
			return -1;
	if (b->timed_out) {
		b->errors += (unsigned long)b->pending;
		return -1;
	}
	return 0;
}

/* Raise the soft limit of open files to the hard one (1000 sessions). */
static void
bench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		bench_diag("cannot raise RLIMIT_NOFILE: %s", strerror(errno));
}

/* Make the private temp dir with HOME inside and, with --rc, a ~/.bashrc. */
static int
bench_make_dir(struct bench *b)
{
	char path[128];
	FILE *f;

	snprintf(b->dir, sizeof b->dir, "/tmp/bench-swx-XXXXXX");
	if (mkdtemp(b->dir) == NULL) {
		bench_diag("mkdtemp: %s", strerror(errno));
		b->dir[0] = '\0';
		return -1;
	}
	snprintf(path, sizeof path, "%s/home", b->dir);
	if (mkdir(path, 0700) < 0)
		return -1;
	if (!b->o.rc)
		return 0;
	/* A few lines such as a user's rc file holds. */
	snprintf(path, sizeof path, "%s/home/.bashrc", b->dir);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fputs("export EDITOR=vi LANG=C.UTF-8\n"
	    "alias ll='ls -l' la='ls -A'\n"
	    "HISTSIZE=1000\n"
	    "shopt -s checkwinsize histappend\n"
	    "mkcd() { mkdir -p \"$1\" && cd \"$1\"; }\n"
	    "PATH=\"$HOME/bin:$PATH\"\n", f);
	return fclose(f) == 0 ? 0 : -1;
}

/* Remove the temp dir (flat but for home/.bashrc). */
static void
bench_remove_dir(struct bench *b)
{
	char path[160];

	if (b->dir[0] == '\0')
		return;
	snprintf(path, sizeof path, "%s/home/.bashrc", b->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/home", b->dir);
	rmdir(path);
	snprintf(path, sizeof path, "%s/daemon.log", b->dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/s.sock", b->dir);
	unlink(path);
	rmdir(b->dir);
}

/*
 * Start our daemon and wait for READY=1 on its ready fd. Returns the seconds
 * from fork to READY=1, or a negative value on failure.
 */
static double
bench_start_daemon(struct bench *b)
{
	char sock[100], log[100], maxs[32], buf[512];
	const char *argv[16];
	struct pollfd pfd;
	size_t have = 0;
	double t0, left;
	ssize_t r;
	int p[2], fd, argc = 0;

	snprintf(sock, sizeof sock, "%s/s.sock", b->dir);
	snprintf(log, sizeof log, "%s/daemon.log", b->dir);
	snprintf(b->url, sizeof b->url, "unix:%s", sock);
	/* Room for every session the run makes, plus the helpers'. */
	snprintf(maxs, sizeof maxs, "%ld", b->o.sessions + 64);
	argv[argc++] = b->o.daemon;
	argv[argc++] = "--listen";
	argv[argc++] = b->url;
	argv[argc++] = "--ready-fd";
	argv[argc++] = "3";
	argv[argc++] = "--max-sessions";
	argv[argc++] = maxs;
	argv[argc++] = "--max-connections";
	argv[argc++] = maxs;
	argv[argc++] = "--log-level";
	argv[argc++] = "warn";
	argv[argc] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	t0 = bench_now();
	b->pid = fork();
	if (b->pid < 0) {
		close(p[0]);
		close(p[1]);
		b->pid = 0;
		return -1;
	}
	if (b->pid == 0) {
		/* The daemon's output goes to its log, never into the CSV. */
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (p[1] == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(p[1], 3) < 0)
			_exit(127);
		snprintf(buf, sizeof buf, "%s/home", b->dir);
		setenv("HOME", buf, 1);
		unsetenv("SWEREX_URL");
		execv(b->o.daemon, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		left = 20.0 - (bench_now() - t0);
		if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) <= 0) {
			if (errno == EINTR)
				continue;
			bench_diag("daemon not ready within 20 s (log %s)", log);
			break;
		}
		r = read(p[0], buf + have, sizeof buf - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			bench_diag("daemon closed its ready fd (log %s)", log);
			break;
		}
		have += (size_t)r;
		buf[have] = '\0';
		if (strstr(buf, "READY=1\n") != NULL) {
			close(p[0]);
			return bench_now() - t0;
		}
		if (have == sizeof buf - 1)
			break;
	}
	close(p[0]);
	return -1;
}

/* Stop our daemon: SIGTERM, wait up to 10 s for its exit, then SIGKILL. */
static void
bench_stop_daemon(struct bench *b)
{
	struct pollfd pfd;
	int pidfd;

	if (b->pid <= 0)
		return;
	pidfd = (int)syscall(SYS_pidfd_open, b->pid, 0);
	kill(b->pid, SIGTERM);
	if (pidfd >= 0) {
		pfd.fd = pidfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 10000) <= 0) {
			bench_diag("daemon %d ignored SIGTERM; killing it",
			    (int)b->pid);
			kill(b->pid, SIGKILL);
		}
		close(pidfd);
	}
	waitpid(b->pid, NULL, 0);
	b->pid = 0;
}

/* Connect one event-driven client to the daemon on our base. */
static struct swerex_client *
bench_connect(struct bench *b, struct event_base *base)
{
	struct swerex_connect_opts o;
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	swerex_connect_opts_init(&o);
	o.url = b->url;
	o.client_name = "bench-swerexd";
	o.base = base;
	o.keepalive = -1;
	if (swerex_connect_with(&o, &c, &e) < 0) {
		bench_error(b, "connect", e);
		swerex_error_free(e);
		return NULL;
	}
	return c;
}

/* A create_session reply. */
static void
bench_created(struct swerex_client *c, const struct swerex_reply *r,
    void *arg)
{
	struct bench_sess *s = arg;

	if (r->type == SWEREX_REPLY_SESSION_CREATED)
		s->alive = true;
	else
		bench_error(s->b, "create_session", r->error);
	s->b->pending--;
}

/* Create sessions [from, to) at once and wait for them all. */
static int
bench_create(struct bench *b, struct bench_sess *ss, long from, long to)
{
	struct swerex_create_opts co;
	struct swerex_error *e = NULL;
	long i;

	for (i = from; i < to; i++) {
		memset(&co, 0, sizeof co);
		co.session = ss[i].name;
		co.startup_timeout = 60;
		if (swerex_submit_create_session(ss[i].c, &co, bench_created,
		    &ss[i], &e) == 0) {
			bench_error(b, "submit create_session", e);
			swerex_error_free(e);
			e = NULL;
			continue;
		}
		b->pending++;
	}
	return bench_wait(b);
}

/* A close_session reply. */
static void
bench_closed(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct bench_sess *s = arg;

	if (r->type != SWEREX_REPLY_SESSION_CLOSED)
		bench_error(s->b, "close_session", r->error);
	s->alive = false;
	s->b->pending--;
}

/* Close every live session of ss and wait. */
static int
bench_close(struct bench *b, struct bench_sess *ss, long n)
{
	struct swerex_error *e = NULL;
	long i;

	for (i = 0; i < n; i++) {
		if (!ss[i].alive || ss[i].c == NULL)
			continue;
		if (swerex_submit_close_session(ss[i].c, ss[i].name,
		    bench_closed, &ss[i], &e) == 0) {
			bench_error(b, "submit close_session", e);
			swerex_error_free(e);
			e = NULL;
			continue;
		}
		b->pending++;
	}
	return bench_wait(b);
}

static void bench_echo_next(struct bench_sess *s);

/* An `echo hi` reply: record it, send the next one or finish. */
static void
bench_echoed(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct bench_sess *s = arg;
	double dt = bench_now() - s->t0;

	if (r->type == SWEREX_REPLY_CHUNK)
		return;
	if (r->type == SWEREX_REPLY_OBSERVATION &&
	    r->observation->output_len >= 2 &&
	    memcmp(r->observation->output, "hi", 2) == 0) {
		bench_lat_add(s->b, &s->b->lat, dt);
	} else {
		bench_error(s->b, "echo hi", r->type == SWEREX_REPLY_ERROR ?
		    r->error : NULL);
		s->left = 0;
	}
	if (s->left > 0 && !s->b->timed_out)
		bench_echo_next(s);
	else
		s->b->pending--;
}

/* Submit the next `echo hi` of a session. */
static void
bench_echo_next(struct bench_sess *s)
{
	struct swerex_run_opts ro;
	struct swerex_error *e = NULL;

	memset(&ro, 0, sizeof ro);
	ro.command = "echo hi";
	ro.session = s->name;
	s->left--;
	s->t0 = bench_now();
	if (swerex_submit_run(s->c, &ro, false, bench_echoed, s, &e) == 0) {
		bench_error(s->b, "submit run", e);
		swerex_error_free(e);
		s->b->pending--;
	}
}

/*
 * Run m sequential echoes in each live session of ss, all at once. Returns
 * the elapsed seconds, or a negative value on a timeout.
 */
static double
bench_echoes(struct bench *b, struct bench_sess *ss, long n, long m)
{
	double t0 = bench_now();
	long i;

	for (i = 0; i < n; i++) {
		if (!ss[i].alive || m <= 0)
			continue;
		ss[i].left = m;
		b->pending++;
		bench_echo_next(&ss[i]);
	}
	if (bench_wait(b) < 0)
		return -1;
	return bench_now() - t0;
}

/* Allocate n sessions spread round robin over the clients. */
static struct bench_sess *
bench_sessions(struct bench *b, long n, struct swerex_client **cs, long k,
    const char *prefix)
{
	struct bench_sess *ss = calloc((size_t)n, sizeof *ss);
	long i;

	if (ss == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		ss[i].b = b;
		ss[i].c = cs[i % k];
		snprintf(ss[i].name, sizeof ss[i].name, "%s%ld", prefix, i);
	}
	return ss;
}

/* Scenario echo: round trips of `echo hi` on one idle session. */
static int
bench_echo(struct bench *b, struct swerex_client *c)
{
	struct bench_sess *ss = bench_sessions(b, 1, &c, 1, "echo");
	long m = b->o.iterations ? b->o.iterations : 10000;

	if (ss == NULL)
		return -1;
	bench_create(b, ss, 0, 1);
	bench_echoes(b, ss, 1, m);
	bench_report(b, "echo", "");
	bench_close(b, ss, 1);
	free(ss);
	return 0;
}

/* A create-scenario step: created, first echo done, closed. */
static void
bench_create_step(struct swerex_client *c, const struct swerex_reply *r,
    void *arg)
{
	struct bench_sess *s = arg;
	struct swerex_error *e = NULL;
	struct swerex_run_opts ro;

	if (r->type == SWEREX_REPLY_CHUNK)
		return;
	if (r->type == SWEREX_REPLY_ERROR) {
		bench_error(s->b, "create step", r->error);
		s->b->pending--;
		return;
	}
	if (r->type == SWEREX_REPLY_SESSION_CREATED) {
		s->alive = true;
		memset(&ro, 0, sizeof ro);
		ro.command = "echo hi";
		ro.session = s->name;
		if (swerex_submit_run(c, &ro, false, bench_create_step, s,
		    &e) != 0)
			return;
	} else if (r->type == SWEREX_REPLY_OBSERVATION) {
		bench_lat_add(s->b, &s->b->lat, bench_now() - s->t0);
		s->t0 = bench_now();
		if (swerex_submit_close_session(c, s->name, bench_create_step,
		    s, &e) != 0)
			return;
	} else {
		/* SESSION_CLOSED: this iteration is over. */
		bench_lat_add(s->b, &s->b->close_lat, bench_now() - s->t0);
		s->alive = false;
		s->b->pending--;
		return;
	}
	bench_error(s->b, "submit", e);
	swerex_error_free(e);
	s->b->pending--;
}

/* Scenario create: creation until the first command ran, then close; M times. */
static int
bench_create_scn(struct bench *b, struct swerex_client *c)
{
	long m = b->o.iterations ? b->o.iterations : 100, i;
	struct swerex_create_opts co;
	struct swerex_error *e = NULL;
	struct bench_sess s;

	memset(&s, 0, sizeof s);
	s.b = b;
	s.c = c;
	for (i = 0; i < m && !b->timed_out; i++) {
		snprintf(s.name, sizeof s.name, "create%ld", i);
		memset(&co, 0, sizeof co);
		co.session = s.name;
		co.startup_timeout = 60;
		s.t0 = bench_now();
		if (swerex_submit_create_session(c, &co, bench_create_step, &s,
		    &e) == 0) {
			bench_error(b, "submit create_session", e);
			swerex_error_free(e);
			e = NULL;
			continue;
		}
		b->pending++;
		bench_wait(b);
	}
	/* Params and metric names as bench-floor prints them. */
	bench_report_lat(&b->close_lat, "create", b->o.rc ? "rc" : "", "close_");
	bench_report(b, "create", b->o.rc ? "rc" : "");
	return 0;
}

/* Scenario concurrent: N sessions, M echoes each, over 1 or K connections. */
static int
bench_concurrent(struct bench *b, struct swerex_client *c)
{
	long n = b->o.sessions ? b->o.sessions : 10;
	long m = b->o.iterations ? b->o.iterations : 100;
	long k = b->o.connections > 0 ? b->o.connections : 1, i, ok;
	struct swerex_client **cs;
	struct bench_sess *ss = NULL;
	char param[64];
	double t;
	int rc = -1;

	if (k > n)
		k = n;
	cs = calloc((size_t)k, sizeof *cs);
	if (cs == NULL)
		return -1;
	cs[0] = c;
	for (i = 1; i < k; i++) {
		cs[i] = bench_connect(b, b->base);
		if (cs[i] == NULL)
			goto fail;
	}
	ss = bench_sessions(b, n, cs, k, "c");
	if (ss == NULL)
		goto fail;
	if (k > 1)
		snprintf(param, sizeof param, "n=%ld;conns=%ld", n, k);
	else
		snprintf(param, sizeof param, "n=%ld", n);
	t = bench_now();
	bench_create(b, ss, 0, n);
	bench_metric("concurrent", param, "create_all", (bench_now() - t) * 1e3,
	    "ms");
	t = bench_echoes(b, ss, n, m);
	ok = (long)b->lat.n;
	if (t > 0)
		bench_metric("concurrent", param, "cmds_per_s", (double)ok / t,
		    "1/s");
	bench_report(b, "concurrent", param);
	bench_close(b, ss, n);
	rc = 0;
fail:
	for (i = 1; i < k; i++)
		if (cs[i] != NULL)
			swerex_client_free(cs[i]);
	free(ss);
	free(cs);
	return rc;
}

/* A long command (sleep, stream) in session A: chunks and its end. */
static void
bench_long_reply(struct swerex_client *c, const struct swerex_reply *r,
    void *arg)
{
	struct bench_sess *s = arg;

	if (r->type == SWEREX_REPLY_CHUNK) {
		s->bytes += r->len;
		return;
	}
	s->done = true;
	if (r->type == SWEREX_REPLY_ERROR &&
	    r->error->kind != SWEREX_ERR_DISCONNECTED)
		bench_error(s->b, "long command", r->error);
	s->b->pending--;
}

/* Let the slow client read what has come: it drains once per tick only. */
static void
bench_slow_pump(evutil_socket_t fd, short what, void *arg)
{
	event_base_loop(arg, EVLOOP_NONBLOCK);
}

/*
 * Scenario hol: B's echo latency idle, while A runs `sleep 5`, and while A
 * streams --bytes of output to a client that reads only every 20 ms.
 */
static int
bench_hol(struct bench *b, struct swerex_client *c)
{
	long m = b->o.iterations ? b->o.iterations : 1000;
	long long bytes = b->o.bytes ? b->o.bytes : 1LL << 30;
	struct timeval tick = { 0, 20000 };
	struct event_base *slow_base = NULL;
	struct swerex_client *slow = NULL;
	struct swerex_create_opts co;
	struct swerex_run_opts ro;
	struct swerex_error *e = NULL;
	struct event *pump = NULL;
	struct bench_sess *ss;
	char cmd[128];
	int rc = -1;

	ss = bench_sessions(b, 3, &c, 1, "hol");
	if (ss == NULL)
		return -1;
	bench_create(b, ss, 0, 2);
	if (!ss[0].alive || !ss[1].alive)
		goto fail;

	bench_echoes(b, &ss[1], 1, m);
	bench_report_lat(&b->lat, "hol", "", "idle_");

	/* A's sleep ends B's run early, so B is measured only while it runs. */
	memset(&ro, 0, sizeof ro);
	ro.command = "sleep 5";
	ro.session = ss[0].name;
	ss[0].done = false;
	if (swerex_submit_run(c, &ro, false, bench_long_reply, &ss[0], &e) == 0)
		goto fail;
	b->pending++;
	ss[1].left = m;
	b->pending++;
	bench_echo_next(&ss[1]);
	while (b->pending > 1 && !ss[0].done && !b->timed_out)
		event_base_loop(b->base, EVLOOP_ONCE);
	/* B's echo in flight still counts; no new one after A's end. */
	ss[1].left = 0;
	bench_wait(b);
	bench_report_lat(&b->lat, "hol", "", "sleep_");

	/* The slow reader has its own connection and base, pumped by a timer. */
	slow_base = event_base_new();
	if (slow_base == NULL)
		goto fail;
	slow = bench_connect(b, slow_base);
	if (slow == NULL)
		goto fail;
	ss[2].c = slow;
	memset(&co, 0, sizeof co);
	co.session = ss[2].name;
	if (swerex_create_session(slow, &co, NULL, NULL, &e) < 0)
		goto fail;
	ss[2].alive = true;
	snprintf(cmd, sizeof cmd, "head -c %lld /dev/zero | tr '\\0' x", bytes);
	memset(&ro, 0, sizeof ro);
	ro.command = cmd;
	ro.session = ss[2].name;
	ro.max_output = 1 << 20;
	if (swerex_submit_run(slow, &ro, true, bench_long_reply, &ss[2],
	    &e) == 0)
		goto fail;
	pump = event_new(b->base, -1, EV_PERSIST, bench_slow_pump, slow_base);
	if (pump == NULL || event_add(pump, &tick) < 0)
		goto fail;
	/* B starts once output flows. */
	while (ss[2].bytes == 0 && !ss[2].done && !b->timed_out)
		event_base_loop(b->base, EVLOOP_ONCE);
	ss[1].left = m;
	b->pending++;
	bench_echo_next(&ss[1]);
	bench_wait(b);
	if (ss[2].done)
		bench_diag("hol: the stream ended before B was done; "
		    "raise --bytes");
	bench_report_lat(&b->lat, "hol", "", "stream_");
	bench_diag("hol: slow reader got %llu bytes",
	    (unsigned long long)ss[2].bytes);
	rc = 0;
fail:
	if (e != NULL) {
		bench_error(b, "hol", e);
		swerex_error_free(e);
	}
	if (pump != NULL)
		event_free(pump);
	/* Freeing the slow client fails its stream; close its session too. */
	if (slow != NULL) {
		/* Its callback runs once more (DISCONNECTED) and counts down. */
		if (!ss[2].done)
			b->pending++;
		swerex_client_free(slow);
		ss[2].c = c;
	}
	if (slow_base != NULL)
		event_base_free(slow_base);
	b->pending = 0;
	bench_close(b, ss, 3);
	bench_report_errors(b, "hol", "");
	free(ss);
	return rc;
}

/* Stream one command's output through a session; print its MB/s. */
static void
bench_stream(struct bench *b, struct bench_sess *s, const char *cmd,
    const char *param)
{
	struct swerex_run_opts ro;
	struct swerex_error *e = NULL;
	double t0;

	memset(&ro, 0, sizeof ro);
	ro.command = cmd;
	ro.session = s->name;
	ro.max_output = 1 << 20;
	s->bytes = 0;
	s->done = false;
	t0 = bench_now();
	if (swerex_submit_run(s->c, &ro, true, bench_long_reply, s, &e) == 0) {
		bench_error(b, "submit run", e);
		swerex_error_free(e);
	} else {
		b->pending++;
		bench_wait(b);
		bench_metric("throughput", param, "mb_per_s",
		    (double)s->bytes / 1e6 / (bench_now() - t0), "MB/s");
		bench_metric("throughput", param, "bytes", (double)s->bytes,
		    "B");
	}
	bench_report(b, "throughput", param);
}

/* Scenario throughput: --bytes of 'x' through one session, and seq. */
static int
bench_throughput(struct bench *b, struct swerex_client *c)
{
	long long bytes = b->o.bytes ? b->o.bytes : 200000000;
	struct bench_sess *ss = bench_sessions(b, 1, &c, 1, "tp");
	char cmd[128], param[64];

	if (ss == NULL)
		return -1;
	bench_create(b, ss, 0, 1);
	snprintf(cmd, sizeof cmd, "head -c %lld /dev/zero | tr '\\0' x", bytes);
	snprintf(param, sizeof param, "bytes=%lld", bytes);
	bench_stream(b, ss, cmd, param);
	bench_stream(b, ss, "seq 1 2000000", "seq=2000000");
	bench_close(b, ss, 1);
	free(ss);
	return 0;
}

/* Resident set of a process in KiB, or -1. */
static long
bench_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Open fds of a process, or -1. */
static long
bench_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	long n = 0;
	DIR *dir;

	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (dir == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* CPU time (user + system) of a process in seconds, or -1. */
static double
bench_cpu(pid_t pid)
{
	unsigned long ut, st;
	char path[64], buf[1024], *p;
	ssize_t r;
	int fd;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	/* Fields after the command name, which may hold spaces. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * Scenario cost: the daemon's RSS and fds at 0, 100, 1000 idle sessions (up
 * to --sessions), then its CPU per command over M echoes in each session.
 */
static int
bench_cost(struct bench *b, struct swerex_client *c)
{
	static const long levels[] = { 0, 100, 1000 };
	long n = b->o.sessions ? b->o.sessions : 1000;
	long m = b->o.iterations ? b->o.iterations : 20, have = 0, lv;
	struct bench_sess *ss;
	double cpu0, t;
	char param[32];
	size_t i;

	if (b->pid <= 0) {
		bench_diag("cost needs a daemon of our own (--daemon)");
		return -1;
	}
	ss = bench_sessions(b, n, &c, 1, "cost");
	if (ss == NULL)
		return -1;
	for (i = 0; i <= sizeof levels / sizeof *levels; i++) {
		lv = i < sizeof levels / sizeof *levels ? levels[i] : n;
		if (lv > n || (i == sizeof levels / sizeof *levels &&
		    (lv == have)))
			continue;
		bench_create(b, ss, have, lv);
		have = lv;
		snprintf(param, sizeof param, "sessions=%ld", lv);
		bench_metric("cost", param, "rss",
		    (double)bench_rss_kib(b->pid) / 1024.0, "MiB");
		bench_metric("cost", param, "fds", (double)bench_fds(b->pid),
		    "count");
		bench_metric("cost", param, "errors", (double)b->errors,
		    "count");
		b->errors = 0;
	}
	cpu0 = bench_cpu(b->pid);
	t = bench_echoes(b, ss, have, m);
	snprintf(param, sizeof param, "n=%ld", have);
	if (t > 0 && b->lat.n > 0)
		bench_metric("cost", param, "cpu_per_cmd",
		    (bench_cpu(b->pid) - cpu0) * 1e6 / (double)b->lat.n, "us");
	bench_report(b, "cost", param);
	bench_close(b, ss, have);
	free(ss);
	return 0;
}

/* Scenario startup: exec of swerexd until READY=1; M times. */
static int
bench_startup(struct bench *b)
{
	long m = b->o.iterations ? b->o.iterations : 20, i;
	double t;

	for (i = 0; i < m; i++) {
		t = bench_start_daemon(b);
		if (t < 0)
			b->errors++;
		else
			bench_lat_add(b, &b->lat, t);
		bench_stop_daemon(b);
	}
	bench_report(b, "startup", "");
	return 0;
}

/* Print the usage on stderr and exit 2. */
static void __attribute__((noreturn))
bench_usage(void)
{
	fputs("usage: bench-swerexd --scenario NAME [--sessions N] "
	    "[--iterations M]\n"
	    "       [--connections K] [--rc] [--bytes B] [--socket PATH] "
	    "[--daemon PATH] [--timeout S]\n"
	    "scenarios: echo create concurrent hol throughput cost startup\n",
	    stderr);
	exit(2);
}

/* Parse a non-negative number or die with the usage. */
static long long
bench_num(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 0)
		bench_usage();
	return v;
}

/* Parse the options, start the daemon, run one scenario, clean up. */
int
main(int argc, char **argv)
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
	struct timeval tv;
	struct bench b;
	struct swerex_client *c = NULL;
	const char *scn;
	int ch, rc = 1;

	memset(&b, 0, sizeof b);
	b.o.timeout = BENCH_DEFAULT_TIMEOUT;
	while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (ch) {
		case 's': b.o.scenario = optarg; break;
		case 'n': b.o.sessions = (long)bench_num(optarg); break;
		case 'm': b.o.iterations = (long)bench_num(optarg); break;
		case 'k': b.o.connections = (long)bench_num(optarg); break;
		case 'r': b.o.rc = true; break;
		case 'b': b.o.bytes = bench_num(optarg); break;
		case 'S': b.o.socket = optarg; break;
		case 'd': b.o.daemon = optarg; break;
		case 't': b.o.timeout = (double)bench_num(optarg); break;
		default: bench_usage();
		}
	}
	scn = b.o.scenario;
	if (scn == NULL || optind != argc)
		bench_usage();
	if (b.o.daemon == NULL && b.o.socket == NULL)
		b.o.daemon = getenv("SWEREXD");
	if (b.o.daemon == NULL && b.o.socket == NULL) {
		bench_diag("need --daemon PATH or --socket PATH");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	bench_raise_nofile();
	if (strcmp(scn, "cost") == 0 || strcmp(scn, "concurrent") == 0) {
		if (b.o.sessions == 0)
			b.o.sessions = strcmp(scn, "cost") == 0 ? 1000 : 10;
	}

	b.base = event_base_new();
	if (b.base == NULL)
		return 1;
	b.deadline = evtimer_new(b.base, bench_deadline, &b);
	tv.tv_sec = (time_t)b.o.timeout;
	tv.tv_usec = 0;
	if (b.deadline == NULL || evtimer_add(b.deadline, &tv) < 0)
		goto out;
	if (b.o.daemon != NULL && bench_make_dir(&b) < 0) {
		bench_diag("cannot make a temp dir");
		goto out;
	}
	if (strcmp(scn, "startup") == 0) {
		if (b.o.daemon == NULL) {
			bench_diag("startup needs --daemon");
			goto out;
		}
		rc = bench_startup(&b) < 0;
		goto out;
	}
	if (b.o.daemon != NULL) {
		if (bench_start_daemon(&b) < 0)
			goto out;
	} else {
		snprintf(b.url, sizeof b.url, "unix:%s", b.o.socket);
	}
	c = bench_connect(&b, b.base);
	if (c == NULL)
		goto out;
	if (strcmp(scn, "echo") == 0)
		rc = bench_echo(&b, c);
	else if (strcmp(scn, "create") == 0)
		rc = bench_create_scn(&b, c);
	else if (strcmp(scn, "concurrent") == 0)
		rc = bench_concurrent(&b, c);
	else if (strcmp(scn, "hol") == 0)
		rc = bench_hol(&b, c);
	else if (strcmp(scn, "throughput") == 0)
		rc = bench_throughput(&b, c);
	else if (strcmp(scn, "cost") == 0)
		rc = bench_cost(&b, c);
	else {
		bench_diag("unknown scenario %s", scn);
		rc = -1;
	}
	rc = rc < 0 || b.timed_out;
out:
	if (c != NULL)
		swerex_client_free(c);
	bench_stop_daemon(&b);
	bench_remove_dir(&b);
	if (b.deadline != NULL)
		event_free(b.deadline);
	if (b.base != NULL)
		event_base_free(b.base);
	free(b.lat.v);
	free(b.close_lat.v);
	return rc;
}
