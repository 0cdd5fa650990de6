/*
 * The raw floor: what a perfect in-process implementation of swerexd's
 * session scheme would get. No daemon and no protocol: bash ptys driven
 * directly from one libevent loop, with the same per-session marker
 * (PROMPT_COMMAND printing "@swx<token>:$?:<kind>;"), the same setup script,
 * echo off, and commands sent as a $'...' assignment then "__swx_chk && eval".
 * Marker detection and output cleaning are the daemon's own (daemon/filter.c
 * linked through daemon_lib), so the floor pays for them too.
 *
 * Output: CSV lines "floor,scenario,param,metric,value,unit" on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "filter.h"

#define FL_READ_SIZE 65536
#define FL_SLOW_CHUNK 4096      /* the slow client reads this much ... */
#define FL_SLOW_EVERY 0.01      /* ... this often (about 400 KB/s) */
#define FL_DEADLINE 600.0       /* bound on one whole run */

#define FL_PROMPT_COMMAND \
	"printf \"@swx%.32s:%%s:%%s;\" \"$?\" \"${__swx_k:-0}\"; PS1="

extern char **environ;

struct fl;

/* One bash on a pty; the floor's equivalent of a daemon session. */
struct fl_sess {
	struct fl *fl;
	pid_t pid;
	int fd;
	struct filter filter;
	struct evbuffer *wbuf;
	struct event ev_read;
	struct event ev_write;
	struct event ev_slow;   /* read by a timer: a slow client */
	int markers;            /* prompts seen; the second ends setup */
	int left;               /* commands still to run */
	double t0;              /* when the pending command or setup was sent */
	double t_ready;
	uint64_t out;           /* cleaned output bytes */
	void (*on_mark)(struct fl_sess *, int status);
};

/* The run: options, the loop, collected latencies. */
struct fl {
	struct event_base *base;
	struct event ev_deadline;
	char home[64];
	const char *scenario;
	int sessions, iterations, connections, rc;
	long long bytes;
	double *lat;
	size_t nlat, caplat;
	unsigned errors;
	int pending;            /* sessions or commands still outstanding */
	const char *cmd;        /* what each command step runs */
	uint64_t expect;        /* its output length, if known */
	int aborted;            /* deadline or signal: run nothing more */
	struct event ev_int, ev_term;
};

static void fl_close(struct fl_sess *s);

static const char fl_check_fn[] =
	"__swx_chk() { __swx_k=2; "
	"eval \"__swx_f() { :; $__swx_c\"$'\\n}' && "
	"{ unset -f __swx_f; __swx_k=0; }; }\n";

/* Return monotonic time in seconds. */
static double
fl_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Record one latency in seconds. */
static void
fl_lat_add(struct fl *fl, double v)
{
	double *n;

	if (fl->nlat == fl->caplat) {
		fl->caplat = fl->caplat ? 2 * fl->caplat : 1024;
		n = realloc(fl->lat, fl->caplat * sizeof *n);
		if (n == NULL) {
			fl->errors++;
			return;
		}
		fl->lat = n;
	}
	fl->lat[fl->nlat++] = v;
}

/* Order doubles for qsort. */
static int
fl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Return the q-quantile of the recorded latencies, in microseconds. */
static double
fl_quantile(struct fl *fl, double q)
{
	size_t i;

	if (fl->nlat == 0)
		return 0;
	qsort(fl->lat, fl->nlat, sizeof *fl->lat, fl_cmp);
	i = (size_t)(q * (double)(fl->nlat - 1) + 0.5);
	return fl->lat[i] * 1e6;
}

/* Print p50 and p99 under prefix and forget the samples. */
static void
fl_emit_lat(struct fl *fl, const char *scenario, const char *param,
	    const char *prefix)
{
	char m[64];

	snprintf(m, sizeof m, "%sp50", prefix);
	printf("floor,%s,%s,%s,%.1f,us\n", scenario, param, m, fl_quantile(fl, 0.5));
	snprintf(m, sizeof m, "%sp99", prefix);
	printf("floor,%s,%s,%s,%.1f,us\n", scenario, param, m, fl_quantile(fl, 0.99));
	fl->nlat = 0;
}

/* Write queued input as the terminal accepts it. */
static void
fl_flush(struct fl_sess *s)
{
	if (evbuffer_write(s->wbuf, s->fd) < 0 && errno != EAGAIN) {
		s->fl->errors++;
		evbuffer_drain(s->wbuf, evbuffer_get_length(s->wbuf));
	}
	if (evbuffer_get_length(s->wbuf) > 0)
		event_add(&s->ev_write, NULL);
	else
		event_del(&s->ev_write);
}

/* Resume writing when the terminal has room. */
static void
fl_write_cb(evutil_socket_t fd, short what, void *arg)
{
	fl_flush(arg);
}

/* Send a command the way swerexd does: checked, then evaluated. */
static void
fl_send(struct fl_sess *s, const char *cmd, int check)
{
	static const char checked[] = "; __swx_chk && eval \"$__swx_c\"\n";
	static const char plain[] = "; eval \"$__swx_c\"\n";

	filter_encode(s->wbuf, cmd, strlen(cmd));
	if (check)
		evbuffer_add(s->wbuf, checked, sizeof checked - 1);
	else
		evbuffer_add(s->wbuf, plain, sizeof plain - 1);
	s->t0 = fl_now();
	fl_flush(s);
}

/* Count cleaned output. */
static void
fl_output_cb(void *arg, const char *p, size_t n)
{
	struct fl_sess *s = arg;

	s->out += n;
}

/* Handle a prompt marker: the first is bash's own, before setup ran. */
static int
fl_marker_cb(void *arg, int status, int kind)
{
	struct fl_sess *s = arg;

	if (++s->markers == 1)
		return 0;
	if (s->markers == 2)
		s->t_ready = fl_now();
	if (s->on_mark)
		s->on_mark(s, status);
	return 0;
}

/* Read and filter what the terminal holds, up to max bytes. */
static ssize_t
fl_read(struct fl_sess *s, size_t max)
{
	static char buf[FL_READ_SIZE];
	ssize_t n;

	n = read(s->fd, buf, max < sizeof buf ? max : sizeof buf);
	if (n > 0)
		filter_feed(&s->filter, buf, (size_t)n, fl_output_cb,
		    fl_marker_cb, s);
	else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		/* EIO: bash is gone. */
		event_del(&s->ev_read);
		event_del(&s->ev_slow);
		if (s->markers < 2 || s->left > 0)
			s->fl->errors++;
	}
	return n;
}

/* Read the terminal as fast as it produces. */
static void
fl_read_cb(evutil_socket_t fd, short what, void *arg)
{
	fl_read(arg, FL_READ_SIZE);
}

/* Read a little, as a client that reads slowly would. */
static void
fl_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	fl_read(arg, FL_SLOW_CHUNK);
}

/* Build bash's environment: ours, with the marker prompt and a private HOME. */
static char **
fl_environ(struct fl *fl, const char *token, char **own)
{
	size_t n = 0, i, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 5, sizeof *env);
	if (env == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "PS1=", 4) != 0 &&
		    strncmp(environ[i], "PROMPT_COMMAND=", 15) != 0 &&
		    strncmp(environ[i], "TERM=", 5) != 0 &&
		    strncmp(environ[i], "HOME=", 5) != 0)
			env[k++] = environ[i];
	if (asprintf(&own[0], "PROMPT_COMMAND=" FL_PROMPT_COMMAND, token) < 0) {
		free(env);
		return NULL;
	}
	if (asprintf(&own[1], "HOME=%s", fl->home) < 0) {
		free(own[0]);
		free(env);
		return NULL;
	}
	env[k++] = own[0];
	env[k++] = own[1];
	env[k++] = "PS1=";
	env[k++] = "TERM=xterm";
	env[k] = NULL;
	return env;
}

/* Start a bash on a new pty and send it the setup script. */
static struct fl_sess *
fl_spawn(struct fl *fl, void (*on_mark)(struct fl_sess *, int))
{
	static char *argv[] = { "bash", "--norc", "--noprofile", "--noediting",
	    "-i", NULL };
	static const char hex[] = "0123456789abcdef";
	struct winsize ws = { .ws_row = 50, .ws_col = 200 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	unsigned char r[FILTER_TOKEN_LEN / 2];
	char slave[128], token[FILTER_TOKEN_LEN + 1], *own[2], **env;
	struct evbuffer *setup;
	struct termios tio;
	struct fl_sess *s;
	size_t i;
	int e;

	s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->fl = fl;
	s->fd = -1;
	s->on_mark = on_mark;
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		goto fail;
	for (i = 0; i < sizeof r; i++) {
		token[2 * i] = hex[r[i] >> 4];
		token[2 * i + 1] = hex[r[i] & 15];
	}
	token[FILTER_TOKEN_LEN] = '\0';
	filter_init(&s->filter, token);
	if ((s->wbuf = evbuffer_new()) == NULL)
		goto fail;
	s->fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s->fd < 0 || grantpt(s->fd) < 0 || unlockpt(s->fd) < 0 ||
	    ptsname_r(s->fd, slave, sizeof slave) != 0)
		goto fail;
	tcgetattr(s->fd, &tio);
	tio.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL | ECHOCTL | ECHOKE);
	tio.c_iflag |= IUTF8;
	tcsetattr(s->fd, TCSANOW, &tio);
	ioctl(s->fd, TIOCSWINSZ, &ws);
	if ((env = fl_environ(fl, token, own)) == NULL)
		goto fail;
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID |
	    POSIX_SPAWN_SETSIGMASK);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, slave, O_RDWR, 0);
	posix_spawn_file_actions_adddup2(&fa, 0, 1);
	posix_spawn_file_actions_adddup2(&fa, 0, 2);
	e = posix_spawnp(&s->pid, "bash", &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(own[0]);
	free(own[1]);
	free(env);
	if (e != 0) {
		s->pid = 0;
		goto fail;
	}
	evutil_make_socket_nonblocking(s->fd);
	event_assign(&s->ev_read, fl->base, s->fd, EV_READ | EV_PERSIST,
	    fl_read_cb, s);
	event_assign(&s->ev_write, fl->base, s->fd, EV_WRITE | EV_PERSIST,
	    fl_write_cb, s);
	event_assign(&s->ev_slow, fl->base, -1, EV_PERSIST, fl_slow_cb, s);
	event_add(&s->ev_read, NULL);

	/* The daemon's setup script, sent at once: ready at the second prompt. */
	if ((setup = evbuffer_new()) == NULL) {
		fl->errors++;
		fl_close(s);
		return NULL;
	}
	evbuffer_add_printf(setup, "export -n PS1 PROMPT_COMMAND\n%s"
	    "[ -r /etc/bash.bashrc ] && . /etc/bash.bashrc\n"
	    "[ -r ~/.bashrc ] && . ~/.bashrc\n"
	    "unset PS0; PS1=; PS2=; set +o history +o vi +o emacs +H; "
	    "__swx_k=0; PROMPT_COMMAND='" FL_PROMPT_COMMAND "'", fl_check_fn,
	    token);
	evbuffer_add(setup, "", 1);
	fl_send(s, (const char *)evbuffer_pullup(setup, -1), 0);
	evbuffer_free(setup);
	return s;

fail:
	fl->errors++;
	if (s->fd >= 0)
		close(s->fd);
	if (s->wbuf)
		evbuffer_free(s->wbuf);
	free(s);
	return NULL;
}

/* Kill a session's bash and its jobs, reap it, free it. */
static void
fl_close(struct fl_sess *s)
{
	pid_t fg;

	if (s == NULL)
		return;
	fg = tcgetpgrp(s->fd);
	if (fg > 0 && fg != s->pid)
		kill(-fg, SIGKILL);
	event_del(&s->ev_read);
	event_del(&s->ev_write);
	event_del(&s->ev_slow);
	close(s->fd);
	kill(s->pid, SIGHUP);
	waitpid(s->pid, NULL, 0);
	evbuffer_free(s->wbuf);
	free(s);
}

/* Count one outstanding thing as done; stop the loop when none are left. */
static void
fl_done(struct fl *fl)
{
	if (--fl->pending == 0)
		event_base_loopbreak(fl->base);
}

/* Stop a run that takes too long: everything still pending is an error. */
static void
fl_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fl *fl = arg;

	fprintf(stderr, "bench-floor: %s, %d pending\n", fd < 0 ?
	    "deadline reached" : "stopped by a signal", fl->pending);
	fl->aborted = 1;
	fl->errors += (unsigned)fl->pending;
	fl->pending = 0;
	event_base_loopbreak(fl->base);
}

/* Run the loop until every pending thing is done or the deadline passes. */
static void
fl_run(struct fl *fl)
{
	if (fl->pending > 0 && !fl->aborted)
		event_base_dispatch(fl->base);
}

/* Count a session's next prompt as the end of what we waited for. */
static void
fl_wait_mark(struct fl_sess *s, int status)
{
	fl_done(s->fl);
}

/* Setup done: count the session as ready. */
static void
fl_ready_mark(struct fl_sess *s, int status)
{
	if (s->markers == 2)
		fl_done(s->fl);
}

/* Record a command's latency and send the next one, or finish. */
static void
fl_step_mark(struct fl_sess *s, int status)
{
	if (s->markers == 2) {
		fl_done(s->fl);
		return;
	}
	fl_lat_add(s->fl, fl_now() - s->t0);
	/* "echo hi" must print exactly "hi\n": else the scheme is broken. */
	if (status != 0 || (s->fl->expect > 0 && s->out != s->fl->expect))
		s->fl->errors++;
	s->out = 0;
	if (--s->left > 0)
		fl_send(s, s->fl->cmd, 1);
	else
		fl_done(s->fl);
}

/* Start sessions and wait until all are ready. */
static int
fl_open(struct fl *fl, struct fl_sess **v, int n)
{
	int i, r = 0;

	for (i = 0; i < n; i++) {
		v[i] = fl_spawn(fl, fl_step_mark);
		if (v[i] == NULL) {
			r = -1;
			break;
		}
		fl->pending++;
	}
	fl_run(fl);
	return r;
}

/* Run m commands in each of n sessions at once; return the elapsed time. */
static double
fl_steps(struct fl *fl, struct fl_sess **v, int n, int m, const char *cmd)
{
	double t;
	int i;

	fl->cmd = cmd;
	fl->expect = strcmp(cmd, "echo hi") == 0 ? 3 : 0;
	t = fl_now();
	for (i = 0; i < n; i++) {
		if (v[i] == NULL)
			continue;
		v[i]->left = m;
		v[i]->out = 0;
		fl->pending++;
		fl_send(v[i], cmd, 1);
	}
	fl_run(fl);
	return fl_now() - t;
}

/* Scenario echo: round trips of "echo hi" on one idle session. */
static int
fl_echo(struct fl *fl)
{
	struct fl_sess *s = NULL;

	if (fl_open(fl, &s, 1) == 0)
		fl_steps(fl, &s, 1, fl->iterations, "echo hi");
	fl_close(s);
	fl_emit_lat(fl, "echo", "", "");
	return 0;
}

/* Scenario create: start a session until its first command can run; close. */
static int
fl_create(struct fl *fl)
{
	double *closing;
	struct fl_sess *s;
	double t;
	int i;

	closing = calloc((size_t)fl->iterations, sizeof *closing);
	if (closing == NULL)
		return -1;
	for (i = 0; i < fl->iterations; i++) {
		t = fl_now();
		s = fl_spawn(fl, fl_ready_mark);
		if (s == NULL)
			continue;
		fl->pending++;
		fl_run(fl);
		if (s->t_ready > 0)
			fl_lat_add(fl, s->t_ready - t);
		t = fl_now();
		fl_close(s);
		closing[i] = fl_now() - t;
	}
	fl_emit_lat(fl, "create", fl->rc ? "rc" : "", "");
	for (i = 0; i < fl->iterations; i++)
		fl_lat_add(fl, closing[i]);
	fl_emit_lat(fl, "create", fl->rc ? "rc" : "", "close_");
	free(closing);
	return 0;
}

/* Scenario concurrent: n sessions, m sequential "echo hi" each, at once. */
static int
fl_concurrent(struct fl *fl)
{
	struct fl_sess **v;
	char param[32];
	double t = 0;
	int i, n = fl->sessions;

	v = calloc((size_t)n, sizeof *v);
	if (v == NULL)
		return -1;
	if (fl_open(fl, v, n) == 0)
		t = fl_steps(fl, v, n, fl->iterations, "echo hi");
	/* No connections here; K only names the row the driver compares. */
	if (fl->connections > 1)
		snprintf(param, sizeof param, "n=%d;conns=%d", n, fl->connections);
	else
		snprintf(param, sizeof param, "n=%d", n);
	printf("floor,concurrent,%s,cmds_per_s,%.1f,1/s\n", param,
	    t > 0 ? (double)fl->nlat / t : 0);
	fl_emit_lat(fl, "concurrent", param, "");
	for (i = 0; i < n; i++)
		fl_close(v[i]);
	free(v);
	return 0;
}

/* Scenario hol: B's echo latency idle, behind A's sleep, behind A's stream. */
static int
fl_hol(struct fl *fl)
{
	struct fl_sess *v[2] = { NULL, NULL };
	char stream[96];

	if (fl_open(fl, v, 2) < 0)
		goto out;
	fl_steps(fl, &v[1], 1, fl->iterations, "echo hi");
	fl_emit_lat(fl, "hol", "", "idle_");

	/* A runs sleep 5: nothing to read; B must not notice. */
	fl_send(v[0], "sleep 5", 1);
	v[0]->on_mark = NULL;
	fl_steps(fl, &v[1], 1, fl->iterations, "echo hi");
	fl_emit_lat(fl, "hol", "", "sleep_");
	if (fl_now() - v[0]->t0 > 5)
		fprintf(stderr, "bench-floor: hol: B outlasted A's sleep\n");
	/* Let the sleep end, so that the stream starts at once. */
	v[0]->on_mark = fl_wait_mark;
	fl->pending++;
	fl_run(fl);

	/* A streams; its reader takes a little every tick, like a slow client. */
	event_del(&v[0]->ev_read);
	snprintf(stream, sizeof stream, "head -c %lld /dev/zero | tr '\\0' x",
	    fl->bytes > 0 ? fl->bytes : 1073741824LL);
	fl_send(v[0], stream, 1);
	{
		struct timeval tv = { 0, (suseconds_t)(FL_SLOW_EVERY * 1e6) };

		event_add(&v[0]->ev_slow, &tv);
	}
	fl_steps(fl, &v[1], 1, fl->iterations, "echo hi");
	fl_emit_lat(fl, "hol", "", "stream_");
out:
	fl_close(v[0]);
	fl_close(v[1]);
	return 0;
}

/* Run one command in s; print its output rate. */
static void
fl_rate(struct fl *fl, struct fl_sess *s, const char *cmd, const char *param)
{
	uint64_t out;
	double t;

	s->on_mark = fl_wait_mark;
	s->out = 0;
	fl->pending++;
	fl_send(s, cmd, 1);
	t = fl_now();
	fl_run(fl);
	t = fl_now() - t;
	out = s->out;
	printf("floor,throughput,%s,mb_per_s,%.1f,MB/s\n", param,
	    t > 0 ? (double)out / 1e6 / t : 0);
	printf("floor,throughput,%s,bytes,%llu,B\n", param,
	    (unsigned long long)out);
}

/* Scenario throughput: B bytes of 'x', then seq 1 2000000, through one session. */
static int
fl_throughput(struct fl *fl)
{
	struct fl_sess *s = NULL;
	char cmd[96], param[48];
	long long b = fl->bytes > 0 ? fl->bytes : 200000000LL;

	if (fl_open(fl, &s, 1) == 0) {
		snprintf(cmd, sizeof cmd, "head -c %lld /dev/zero | tr '\\0' x", b);
		snprintf(param, sizeof param, "bytes=%lld", b);
		fl_rate(fl, s, cmd, param);
		fl_rate(fl, s, "seq 1 2000000", "seq=2000000");
	}
	fl_close(s);
	return 0;
}

/* Write the small ~/.bashrc that --rc sources. */
static int
fl_write_rc(struct fl *fl)
{
	char path[96];
	FILE *f;

	snprintf(path, sizeof path, "%s/.bashrc", fl->home);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs("# a few lines, like a user's\nexport EDITOR=vi\n"
	    "alias ll='ls -l'\nHISTSIZE=1000\numask 022\n"
	    "[ -d \"$HOME/bin\" ] && PATH=\"$HOME/bin:$PATH\"\n", f);
	return fclose(f) == 0 ? 0 : -1;
}

/* Remove the private HOME. */
static void
fl_rm_home(struct fl *fl)
{
	char path[96];

	snprintf(path, sizeof path, "%s/.bashrc", fl->home);
	unlink(path);
	snprintf(path, sizeof path, "%s/.bash_history", fl->home);
	unlink(path);
	rmdir(fl->home);
}

/* Print usage and fail. */
static int
fl_usage(void)
{
	fprintf(stderr, "usage: bench-floor --scenario echo|create|concurrent|"
	    "hol|throughput [--sessions N] [--iterations M] [--connections K]"
	    " [--rc] [--bytes B] [--socket PATH] [--daemon PATH]\n");
	return 1;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "scenario", required_argument, NULL, 's' },
		{ "sessions", required_argument, NULL, 'n' },
		{ "iterations", required_argument, NULL, 'm' },
		{ "connections", required_argument, NULL, 'k' },
		{ "rc", no_argument, NULL, 'r' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "socket", required_argument, NULL, 'S' },
		{ "daemon", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct fl fl = { .sessions = 10, .iterations = 100 };
	struct timeval dl = { (time_t)FL_DEADLINE, 0 };
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': fl.scenario = optarg; break;
		case 'n': fl.sessions = atoi(optarg); break;
		case 'm': fl.iterations = atoi(optarg); break;
		case 'r': fl.rc = 1; break;
		case 'b': fl.bytes = atoll(optarg); break;
		case 'k': fl.connections = atoi(optarg); break;
		case 'S': case 'd': break; /* no daemon */
		default: return fl_usage();
		}
	}
	if (fl.scenario == NULL || fl.sessions < 1 || fl.iterations < 1)
		return fl_usage();
	/* No daemon: cost and startup do not apply; print nothing. */
	if (strcmp(fl.scenario, "cost") == 0 || strcmp(fl.scenario, "startup") == 0)
		return 0;
	signal(SIGPIPE, SIG_IGN);
	snprintf(fl.home, sizeof fl.home, "/tmp/bench-floor.XXXXXX");
	if (mkdtemp(fl.home) == NULL) {
		perror("bench-floor: mkdtemp");
		return 1;
	}
	if (fl.rc && fl_write_rc(&fl) < 0) {
		fl_rm_home(&fl);
		fprintf(stderr, "bench-floor: cannot write ~/.bashrc\n");
		return 1;
	}
	if ((fl.base = event_base_new()) == NULL) {
		fl_rm_home(&fl);
		return 1;
	}
	evtimer_assign(&fl.ev_deadline, fl.base, fl_deadline_cb, &fl);
	evtimer_add(&fl.ev_deadline, &dl);
	/* A signal ends the run the same way, so that every bash is reaped. */
	evsignal_assign(&fl.ev_int, fl.base, SIGINT, fl_deadline_cb, &fl);
	evsignal_assign(&fl.ev_term, fl.base, SIGTERM, fl_deadline_cb, &fl);
	evsignal_add(&fl.ev_int, NULL);
	evsignal_add(&fl.ev_term, NULL);

	if (strcmp(fl.scenario, "echo") == 0)
		r = fl_echo(&fl);
	else if (strcmp(fl.scenario, "create") == 0)
		r = fl_create(&fl);
	else if (strcmp(fl.scenario, "concurrent") == 0)
		r = fl_concurrent(&fl);
	else if (strcmp(fl.scenario, "hol") == 0)
		r = fl_hol(&fl);
	else if (strcmp(fl.scenario, "throughput") == 0)
		r = fl_throughput(&fl);
	else {
		fprintf(stderr, "bench-floor: unknown scenario '%s'\n",
		    fl.scenario);
		r = -1;
	}
	printf("floor,%s,,errors,%u,count\n", fl.scenario, fl.errors);
	event_del(&fl.ev_deadline);
	event_del(&fl.ev_int);
	event_del(&fl.ev_term);
	event_base_free(fl.base);
	free(fl.lat);
	fl_rm_home(&fl);
	if (r < 0)
		fprintf(stderr, "bench-floor: %s failed\n", fl.scenario);
	return r < 0 ? 1 : 0;
}
