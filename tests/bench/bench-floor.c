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
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "bench-util.h"
#include "filter.h"

#define FL_READ_SIZE 65536

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
	struct bu_opts o;
	struct bu_run run;      /* pending: sessions or commands outstanding */
	struct bu_lat lat;
	struct bu_dir dir;
	const char *cmd;        /* what each command step runs */
	uint64_t expect;        /* its output length, if known */
};

static void fl_close(struct fl_sess *s);

static const char fl_check_fn[] =
	"__swx_chk() { __swx_k=2; "
	"eval \"__swx_f() { :; $__swx_c\"$'\\n}' && "
	"{ unset -f __swx_f; __swx_k=0; }; }\n";

/* Write queued input as the terminal accepts it. */
static void
fl_flush(struct fl_sess *s)
{
	if (evbuffer_write(s->wbuf, s->fd) < 0 && errno != EAGAIN) {
		s->fl->run.errors++;
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
	s->t0 = bu_now();
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
		s->t_ready = bu_now();
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
			s->fl->run.errors++;
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
	fl_read(arg, BU_SLOW_CHUNK);
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
	if (asprintf(&own[0], "PROMPT_COMMAND=" FILTER_PROMPT_COMMAND, token) < 0) {
		free(env);
		return NULL;
	}
	if (asprintf(&own[1], "HOME=%s", fl->dir.home) < 0) {
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
	event_assign(&s->ev_read, fl->run.base, s->fd, EV_READ | EV_PERSIST,
	    fl_read_cb, s);
	event_assign(&s->ev_write, fl->run.base, s->fd, EV_WRITE | EV_PERSIST,
	    fl_write_cb, s);
	event_assign(&s->ev_slow, fl->run.base, -1, EV_PERSIST, fl_slow_cb, s);
	event_add(&s->ev_read, NULL);

	/* The daemon's setup script, sent at once: ready at the second prompt. */
	if ((setup = evbuffer_new()) == NULL) {
		fl->run.errors++;
		fl_close(s);
		return NULL;
	}
	evbuffer_add_printf(setup, "export -n PS1 PROMPT_COMMAND\n%s"
	    "[ -r /etc/bash.bashrc ] && . /etc/bash.bashrc\n"
	    "[ -r ~/.bashrc ] && . ~/.bashrc\n"
	    "unset PS0; PS1=; PS2=; set +o history +o vi +o emacs +H; "
	    "__swx_k=0; PROMPT_COMMAND='" FILTER_PROMPT_COMMAND "'", fl_check_fn,
	    token);
	evbuffer_add(setup, "", 1);
	fl_send(s, (const char *)evbuffer_pullup(setup, -1), 0);
	evbuffer_free(setup);
	return s;

fail:
	fl->run.errors++;
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

/* Count a session's next prompt as the end of what we waited for. */
static void
fl_wait_mark(struct fl_sess *s, int status)
{
	bu_run_done(&s->fl->run);
}

/* Setup done: count the session as ready. */
static void
fl_ready_mark(struct fl_sess *s, int status)
{
	if (s->markers == 2)
		bu_run_done(&s->fl->run);
}

/* Record a command's latency and send the next one, or finish. */
static void
fl_step_mark(struct fl_sess *s, int status)
{
	if (s->markers == 2) {
		bu_run_done(&s->fl->run);
		return;
	}
	bu_lat_add(&s->fl->run, &s->fl->lat, bu_now() - s->t0);
	/* "echo hi" must print exactly "hi\n": else the scheme is broken. */
	if (status != 0 || (s->fl->expect > 0 && s->out != s->fl->expect))
		s->fl->run.errors++;
	s->out = 0;
	if (--s->left > 0)
		fl_send(s, s->fl->cmd, 1);
	else
		bu_run_done(&s->fl->run);
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
		fl->run.pending++;
	}
	bu_run_wait(&fl->run);
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
	t = bu_now();
	for (i = 0; i < n; i++) {
		if (v[i] == NULL)
			continue;
		v[i]->left = m;
		v[i]->out = 0;
		fl->run.pending++;
		fl_send(v[i], cmd, 1);
	}
	bu_run_wait(&fl->run);
	return bu_now() - t;
}

/* Scenario echo: round trips of "echo hi" on one idle session. */
static int
fl_echo(struct fl *fl)
{
	struct fl_sess *s = NULL;

	if (fl_open(fl, &s, 1) == 0)
		fl_steps(fl, &s, 1, fl->o.iterations, "echo hi");
	fl_close(s);
	bu_lat_report(&fl->lat, "echo", "", "");
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

	closing = calloc((size_t)fl->o.iterations, sizeof *closing);
	if (closing == NULL)
		return -1;
	for (i = 0; i < fl->o.iterations; i++) {
		t = bu_now();
		s = fl_spawn(fl, fl_ready_mark);
		if (s == NULL)
			continue;
		fl->run.pending++;
		bu_run_wait(&fl->run);
		if (s->t_ready > 0)
			bu_lat_add(&fl->run, &fl->lat, s->t_ready - t);
		t = bu_now();
		fl_close(s);
		closing[i] = bu_now() - t;
	}
	bu_lat_report(&fl->lat, "create", fl->o.rc ? "rc" : "", "");
	for (i = 0; i < fl->o.iterations; i++)
		bu_lat_add(&fl->run, &fl->lat, closing[i]);
	bu_lat_report(&fl->lat, "create", fl->o.rc ? "rc" : "", "close_");
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
	int i, n = (int)fl->o.sessions;

	v = calloc((size_t)n, sizeof *v);
	if (v == NULL)
		return -1;
	if (fl_open(fl, v, n) == 0)
		t = fl_steps(fl, v, n, fl->o.iterations, "echo hi");
	/* No connections here; K only names the row the driver compares. */
	if (fl->o.connections > 1)
		snprintf(param, sizeof param, "n=%d;conns=%ld", n,
		    fl->o.connections);
	else
		snprintf(param, sizeof param, "n=%d", n);
	bu_metric("concurrent", param, "cmds_per_s",
	    t > 0 ? (double)fl->lat.n / t : 0, "1/s");
	bu_lat_report(&fl->lat, "concurrent", param, "");
	for (i = 0; i < n; i++)
		fl_close(v[i]);
	free(v);
	return 0;
}

/*
 * Scenario cost: this process's CPU time per command over the concurrent
 * scenario's load (every session runs M echoes at once). It does all a
 * daemon's per-command pty work, with no protocol and no socket: the floor
 * for the daemon's CPU per command.
 */
static int
fl_cost(struct fl *fl)
{
	struct fl_sess **v;
	char param[32];
	double cpu0, t = 0;
	int i, n = (int)fl->o.sessions;

	v = calloc((size_t)n, sizeof *v);
	if (v == NULL)
		return -1;
	if (fl_open(fl, v, n) == 0) {
		cpu0 = bu_cpu(getpid());
		t = fl_steps(fl, v, n, fl->o.iterations, "echo hi");
		snprintf(param, sizeof param, "n=%d", n);
		if (t > 0 && fl->lat.n > 0 && cpu0 >= 0)
			bu_metric("cost", param, "cpu_per_cmd",
			    (bu_cpu(getpid()) - cpu0) * 1e6 /
			    (double)fl->lat.n, "us");
	}
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
	fl_steps(fl, &v[1], 1, fl->o.iterations, "echo hi");
	bu_lat_report(&fl->lat, "hol", "", "idle_");

	/* A runs sleep 5: nothing to read; B must not notice. */
	fl_send(v[0], "sleep 5", 1);
	v[0]->on_mark = NULL;
	fl_steps(fl, &v[1], 1, fl->o.iterations, "echo hi");
	bu_lat_report(&fl->lat, "hol", "", "sleep_");
	if (bu_now() - v[0]->t0 > 5)
		bu_diag("hol: B outlasted A's sleep");
	/* Let the sleep end, so that the stream starts at once. */
	v[0]->on_mark = fl_wait_mark;
	fl->run.pending++;
	bu_run_wait(&fl->run);

	/* A streams; its reader takes a little every tick, like a slow client. */
	event_del(&v[0]->ev_read);
	snprintf(stream, sizeof stream, "head -c %lld /dev/zero | tr '\\0' x",
	    fl->o.bytes > 0 ? fl->o.bytes : 1073741824LL);
	fl_send(v[0], stream, 1);
	{
		struct timeval tv = { 0, BU_SLOW_EVERY_US };

		event_add(&v[0]->ev_slow, &tv);
	}
	fl_steps(fl, &v[1], 1, fl->o.iterations, "echo hi");
	bu_lat_report(&fl->lat, "hol", "", "stream_");
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
	fl->run.pending++;
	fl_send(s, cmd, 1);
	t = bu_now();
	bu_run_wait(&fl->run);
	t = bu_now() - t;
	out = s->out;
	bu_metric("throughput", param, "mb_per_s",
	    t > 0 ? (double)out / 1e6 / t : 0, "MB/s");
	bu_count("throughput", param, "bytes", (long long)out, "B");
}

/* Scenario throughput: B bytes of 'x', then seq 1 2000000, through one session. */
static int
fl_throughput(struct fl *fl)
{
	struct fl_sess *s = NULL;
	char cmd[96], param[48];
	long long b = fl->o.bytes > 0 ? fl->o.bytes : 200000000LL;

	if (fl_open(fl, &s, 1) == 0) {
		snprintf(cmd, sizeof cmd, "head -c %lld /dev/zero | tr '\\0' x", b);
		snprintf(param, sizeof param, "bytes=%lld", b);
		fl_rate(fl, s, cmd, param);
		fl_rate(fl, s, "seq 1 2000000", "seq=2000000");
	}
	fl_close(s);
	return 0;
}

/* Parse the options, run one scenario, clean up. */
int
main(int argc, char **argv)
{
	struct fl fl = { .o.sessions = 10, .o.iterations = 100,
	    .o.timeout = BU_DEFAULT_TIMEOUT };
	const char *sc;
	int r;

	bu_init("floor");
	/* --socket and --daemon are accepted and ignored: no daemon here. */
	if (bu_parse(&fl.o, argc, argv) < 0 || fl.o.sessions < 1 ||
	    fl.o.iterations < 1) {
		bu_usage("echo|create|concurrent|hol|throughput|cost");
		return 1;
	}
	sc = fl.o.scenario;
	/* No daemon: no start-up to measure; print nothing. */
	if (strcmp(sc, "startup") == 0)
		return 0;
	if (bu_dir_make(&fl.dir, fl.o.rc) < 0)
		return 1;
	/* A signal ends the run like the deadline: every bash is still reaped. */
	if (bu_run_init(&fl.run, fl.o.timeout) < 0) {
		bu_dir_remove(&fl.dir);
		return 1;
	}

	if (strcmp(sc, "echo") == 0)
		r = fl_echo(&fl);
	else if (strcmp(sc, "create") == 0)
		r = fl_create(&fl);
	else if (strcmp(sc, "concurrent") == 0)
		r = fl_concurrent(&fl);
	else if (strcmp(sc, "hol") == 0)
		r = fl_hol(&fl);
	else if (strcmp(sc, "cost") == 0)
		r = fl_cost(&fl);
	else if (strcmp(sc, "throughput") == 0)
		r = fl_throughput(&fl);
	else {
		bu_diag("unknown scenario '%s'", sc);
		r = -1;
	}
	bu_count(sc, "", "errors", (long long)fl.run.errors, "count");
	bu_run_free(&fl.run);
	bu_lat_free(&fl.lat);
	bu_dir_remove(&fl.dir);
	if (r < 0)
		bu_diag("%s failed", sc);
	return r < 0 ? 1 : 0;
}
