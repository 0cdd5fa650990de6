/*
 * bench-swerexd: load generator for swerexd over libswerex's event-driven
 * interface. One libevent loop drives every session and connection; the
 * daemon is a private one started from --daemon on a temp socket with a
 * private HOME (or an existing one at --socket). Prints CSV lines
 * "swerexd,scenario,param,metric,value,unit" on stdout; diagnostics on stderr.
 * The command line is shared with bench-floor and bench-tmux (see
 * tests/bench/run.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench-relay.h"
#include "bench-util.h"
#include "swerex.h"

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

/*
 * The run. o.sessions, o.iterations and o.connections of 0 mean the
 * scenario's default; run.pending counts the state machines still running,
 * run.errors the errors of the current measurement.
 */
struct bench {
	struct bu_opts o;
	struct bu_run run;
	struct bu_dir dir;      /* private temp dir: HOME, socket, log */
	char url[160];
	pid_t pid;              /* our daemon, or 0 */
	struct bu_lat lat;      /* latencies of the current measurement */
	struct bu_lat close_lat; /* create: the closes' */
	/*
	 * The scenario's sessions. Freed only after the clients: a run that
	 * is cut short leaves requests whose callbacks point into them, and
	 * freeing a client runs those callbacks.
	 */
	struct bench_sess *ss;
	bool said_error;        /* first error already told on stderr */
};

/* Count one error; tell the first one on stderr. */
static void
bench_error(struct bench *b, const char *what, const struct swerex_error *e)
{
	b->run.errors++;
	if (b->said_error)
		return;
	b->said_error = true;
	bu_diag("%s: %s: %s", what,
	    e != NULL ? swerex_error_kind_name(e->kind) : "error",
	    e != NULL && e->message != NULL ? e->message : "(no message)");
}

/* Print the errors of the current measurement and reset them. */
static void
bench_report_errors(struct bench *b, const char *scenario, const char *param)
{
	bu_count(scenario, param, "errors", (long long)b->run.errors, "count");
	b->run.errors = 0;
	b->said_error = false;
}

/* Print p50, p99 and errors of the current measurement and reset it. */
static void
bench_report(struct bench *b, const char *scenario, const char *param)
{
	bu_lat_report(&b->lat, scenario, param, "");
	bench_report_errors(b, scenario, param);
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

	snprintf(sock, sizeof sock, "%s/s.sock", b->dir.path);
	snprintf(log, sizeof log, "%s/daemon.log", b->dir.path);
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
	t0 = bu_now();
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
		setenv("HOME", b->dir.home, 1);
		unsetenv("SWEREX_URL");
		execv(b->o.daemon, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	for (;;) {
		left = 20.0 - (bu_now() - t0);
		if (left <= 0 || poll(&pfd, 1, (int)(left * 1000) + 1) <= 0) {
			if (errno == EINTR)
				continue;
			bu_diag("daemon not ready within 20 s (log %s)", log);
			break;
		}
		r = read(p[0], buf + have, sizeof buf - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			bu_diag("daemon closed its ready fd (log %s)", log);
			break;
		}
		have += (size_t)r;
		buf[have] = '\0';
		if (strstr(buf, "READY=1\n") != NULL) {
			close(p[0]);
			return bu_now() - t0;
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
			bu_diag("daemon %d ignored SIGTERM; killing it",
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
bench_connect_to(struct bench *b, struct event_base *base, const char *url)
{
	struct swerex_connect_opts o;
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	swerex_connect_opts_init(&o);
	o.url = url;
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

/* Connect a client to the daemon on base. */
static struct swerex_client *
bench_connect(struct bench *b, struct event_base *base)
{
	return bench_connect_to(b, base, b->url);
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
	bu_run_done(&s->b->run);
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
		b->run.pending++;
	}
	return bu_run_wait(&b->run);
}

/* A close_session reply. */
static void
bench_closed(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct bench_sess *s = arg;

	if (r->type != SWEREX_REPLY_SESSION_CLOSED)
		bench_error(s->b, "close_session", r->error);
	s->alive = false;
	bu_run_done(&s->b->run);
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
		b->run.pending++;
	}
	return bu_run_wait(&b->run);
}

static void bench_echo_next(struct bench_sess *s);

/* An `echo hi` reply: record it, send the next one or finish. */
static void
bench_echoed(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct bench_sess *s = arg;
	double dt = bu_now() - s->t0;

	if (r->type == SWEREX_REPLY_CHUNK)
		return;
	if (r->type == SWEREX_REPLY_OBSERVATION &&
	    r->observation->output_len >= 2 &&
	    memcmp(r->observation->output, "hi", 2) == 0) {
		bu_lat_add(&s->b->run, &s->b->lat, dt);
	} else {
		bench_error(s->b, "echo hi", r->type == SWEREX_REPLY_ERROR ?
		    r->error : NULL);
		s->left = 0;
	}
	if (s->left > 0 && !s->b->run.aborted)
		bench_echo_next(s);
	else
		bu_run_done(&s->b->run);
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
	s->t0 = bu_now();
	if (swerex_submit_run(s->c, &ro, false, bench_echoed, s, &e) == 0) {
		bench_error(s->b, "submit run", e);
		swerex_error_free(e);
		bu_run_done(&s->b->run);
	}
}

/*
 * Run m sequential echoes in each live session of ss, all at once. Returns
 * the elapsed seconds, or a negative value on a timeout.
 */
static double
bench_echoes(struct bench *b, struct bench_sess *ss, long n, long m)
{
	double t0 = bu_now();
	long i;

	for (i = 0; i < n; i++) {
		if (!ss[i].alive || m <= 0)
			continue;
		ss[i].left = m;
		b->run.pending++;
		bench_echo_next(&ss[i]);
	}
	if (bu_run_wait(&b->run) < 0)
		return -1;
	return bu_now() - t0;
}

/* Allocate the run's n sessions spread round robin over the clients. */
static struct bench_sess *
bench_sessions(struct bench *b, long n, struct swerex_client **cs, long k,
    const char *prefix)
{
	struct bench_sess *ss;
	long i;

	/* One scenario a run: there are never sessions already. */
	if (b->ss != NULL || (ss = calloc((size_t)n, sizeof *ss)) == NULL)
		return NULL;
	b->ss = ss;
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
		bu_run_done(&s->b->run);
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
		bu_lat_add(&s->b->run, &s->b->lat, bu_now() - s->t0);
		s->t0 = bu_now();
		if (swerex_submit_close_session(c, s->name, bench_create_step,
		    s, &e) != 0)
			return;
	} else {
		/* SESSION_CLOSED: this iteration is over. */
		bu_lat_add(&s->b->run, &s->b->close_lat, bu_now() - s->t0);
		s->alive = false;
		bu_run_done(&s->b->run);
		return;
	}
	bench_error(s->b, "submit", e);
	swerex_error_free(e);
	bu_run_done(&s->b->run);
}

/* Scenario create: creation until the first command ran, then close; M times. */
static int
bench_create_scn(struct bench *b, struct swerex_client *c)
{
	long m = b->o.iterations ? b->o.iterations : 100, i;
	struct swerex_create_opts co;
	struct swerex_error *e = NULL;
	struct bench_sess *s;

	if ((s = bench_sessions(b, 1, &c, 1, "create")) == NULL)
		return -1;
	for (i = 0; i < m && !b->run.aborted; i++) {
		snprintf(s->name, sizeof s->name, "create%ld", i);
		memset(&co, 0, sizeof co);
		co.session = s->name;
		co.startup_timeout = 60;
		s->t0 = bu_now();
		if (swerex_submit_create_session(c, &co, bench_create_step, s,
		    &e) == 0) {
			bench_error(b, "submit create_session", e);
			swerex_error_free(e);
			e = NULL;
			continue;
		}
		b->run.pending++;
		bu_run_wait(&b->run);
	}
	/* Params and metric names as bench-floor prints them. */
	bu_lat_report(&b->close_lat, "create", b->o.rc ? "rc" : "", "close_");
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
		cs[i] = bench_connect(b, b->run.base);
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
	t = bu_now();
	bench_create(b, ss, 0, n);
	bu_metric("concurrent", param, "create_all", (bu_now() - t) * 1e3,
	    "ms");
	t = bench_echoes(b, ss, n, m);
	ok = (long)b->lat.n;
	if (t > 0)
		bu_metric("concurrent", param, "cmds_per_s", (double)ok / t,
		    "1/s");
	bench_report(b, "concurrent", param);
	bench_close(b, ss, n);
	rc = 0;
fail:
	for (i = 1; i < k; i++)
		if (cs[i] != NULL)
			swerex_client_free(cs[i]);
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
	bu_run_done(&s->b->run);
}

/*
 * Scenario hol: B's echo latency idle, while A runs `sleep 5`, and while A
 * streams --bytes of output to a client that reads slowly: through a relay
 * that takes the daemon's output at the floor's slow-client rate.
 */
static int
bench_hol(struct bench *b, struct swerex_client *c)
{
	long m = b->o.iterations ? b->o.iterations : 1000;
	long long bytes = b->o.bytes ? b->o.bytes : 1LL << 30;
	struct swerex_client *slow = NULL;
	struct relay *relay = NULL;
	char relay_path[100], relay_url[110];
	struct swerex_create_opts co;
	struct swerex_run_opts ro;
	struct swerex_error *e = NULL;
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
	bu_lat_report(&b->lat, "hol", "", "idle_");

	/* A's sleep ends B's run early, so B is measured only while it runs. */
	memset(&ro, 0, sizeof ro);
	ro.command = "sleep 5";
	ro.session = ss[0].name;
	ss[0].done = false;
	if (swerex_submit_run(c, &ro, false, bench_long_reply, &ss[0], &e) == 0)
		goto fail;
	b->run.pending++;
	ss[1].left = m;
	b->run.pending++;
	bench_echo_next(&ss[1]);
	while (b->run.pending > 1 && !ss[0].done && !b->run.aborted)
		event_base_loop(b->run.base, EVLOOP_ONCE);
	/* B's echo in flight still counts; no new one after A's end. */
	ss[1].left = 0;
	bu_run_wait(&b->run);
	bu_lat_report(&b->lat, "hol", "", "sleep_");

	/*
	 * The slow reader: its own connection, through the relay. libswerex
	 * reads all the socket holds, so slowing its loop down would not do.
	 */
	if (strncmp(b->url, "unix:", 5) != 0) {
		bu_diag("hol: the slow reader needs a unix: daemon address");
		goto fail;
	}
	snprintf(relay_path, sizeof relay_path, "%s/slow.sock", b->dir.path);
	snprintf(relay_url, sizeof relay_url, "unix:%s", relay_path);
	relay = relay_new(relay_path, b->url + 5,
	    BU_SLOW_CHUNK * (1000000 / BU_SLOW_EVERY_US), BU_SLOW_CHUNK);
	if (relay == NULL) {
		bu_diag("hol: cannot start the relay: %s", strerror(errno));
		goto fail;
	}
	slow = bench_connect_to(b, b->run.base, relay_url);
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
	/* B starts once output flows. */
	while (ss[2].bytes == 0 && !ss[2].done && !b->run.aborted)
		event_base_loop(b->run.base, EVLOOP_ONCE);
	ss[1].left = m;
	b->run.pending++;
	bench_echo_next(&ss[1]);
	bu_run_wait(&b->run);
	if (ss[2].done)
		bu_diag("hol: the stream ended before B was done; "
		    "raise --bytes");
	bu_lat_report(&b->lat, "hol", "", "stream_");
	bu_diag("hol: slow reader got %llu bytes",
	    (unsigned long long)ss[2].bytes);
	rc = 0;
fail:
	if (e != NULL) {
		bench_error(b, "hol", e);
		swerex_error_free(e);
	}
	/* Freeing the slow client fails its stream; close its session too. */
	if (slow != NULL) {
		/* Its callback runs once more (DISCONNECTED) and counts down. */
		if (!ss[2].done)
			b->run.pending++;
		swerex_client_free(slow);
		ss[2].c = c;
	}
	relay_free(relay);
	b->run.pending = 0;
	bench_close(b, ss, 3);
	bench_report_errors(b, "hol", "");
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
	t0 = bu_now();
	if (swerex_submit_run(s->c, &ro, true, bench_long_reply, s, &e) == 0) {
		bench_error(b, "submit run", e);
		swerex_error_free(e);
	} else {
		b->run.pending++;
		bu_run_wait(&b->run);
		bu_metric("throughput", param, "mb_per_s",
		    (double)s->bytes / 1e6 / (bu_now() - t0), "MB/s");
		bu_count("throughput", param, "bytes", (long long)s->bytes,
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
	return 0;
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
		bu_diag("cost needs a daemon of our own (--daemon)");
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
		bu_metric("cost", param, "rss",
		    (double)bu_rss_kib(b->pid) / 1024.0, "MiB");
		bu_count("cost", param, "fds", bu_fds(b->pid), "count");
		bu_count("cost", param, "errors", (long long)b->run.errors,
		    "count");
		b->run.errors = 0;
	}
	cpu0 = bu_cpu(b->pid);
	t = bench_echoes(b, ss, have, m);
	snprintf(param, sizeof param, "n=%ld", have);
	if (t > 0 && b->lat.n > 0)
		bu_metric("cost", param, "cpu_per_cmd",
		    (bu_cpu(b->pid) - cpu0) * 1e6 / (double)b->lat.n, "us");
	bench_report(b, "cost", param);
	bench_close(b, ss, have);
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
			b->run.errors++;
		else
			bu_lat_add(&b->run, &b->lat, t);
		bench_stop_daemon(b);
	}
	bench_report(b, "startup", "");
	return 0;
}

/* Parse the options, start the daemon, run one scenario, clean up. */
int
main(int argc, char **argv)
{
	struct bench b;
	struct swerex_client *c = NULL;
	const char *scn;
	int rc = 1;

	memset(&b, 0, sizeof b);
	b.o.timeout = BU_DEFAULT_TIMEOUT;
	bu_init("swerexd");
	if (bu_parse(&b.o, argc, argv) < 0) {
		bu_usage("echo|create|concurrent|hol|throughput|cost|startup");
		return 2;
	}
	scn = b.o.scenario;
	if (b.o.daemon == NULL && b.o.socket == NULL)
		b.o.daemon = getenv("SWEREXD");
	if (b.o.daemon == NULL && b.o.socket == NULL) {
		bu_diag("need --daemon PATH or --socket PATH");
		return 1;
	}
	if (strcmp(scn, "cost") == 0 || strcmp(scn, "concurrent") == 0) {
		if (b.o.sessions == 0)
			b.o.sessions = strcmp(scn, "cost") == 0 ? 1000 : 10;
	}

	/* A signal ends the run like the deadline: the daemon still stops. */
	if (bu_run_init(&b.run, b.o.timeout) < 0)
		return 1;
	if (b.o.daemon != NULL && bu_dir_make(&b.dir, b.o.rc) < 0)
		goto out;
	if (strcmp(scn, "startup") == 0) {
		if (b.o.daemon == NULL) {
			bu_diag("startup needs --daemon");
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
	c = bench_connect(&b, b.run.base);
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
		bu_diag("unknown scenario %s", scn);
		rc = -1;
	}
	rc = rc < 0 || b.run.aborted;
out:
	if (c != NULL)
		swerex_client_free(c);
	bench_stop_daemon(&b);
	free(b.ss);
	bu_dir_remove(&b.dir);
	bu_run_free(&b.run);
	bu_lat_free(&b.lat);
	bu_lat_free(&b.close_lat);
	return rc;
}
