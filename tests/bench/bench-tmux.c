/*
 * The tmux peer: tmux control mode ("tmux -C", Debian's tmux) on a private
 * socket, driven from one libevent loop, as the nearest existing C server of
 * ptys. A connection is one control client attached to its own tmux session;
 * a benchmark session is one window in it running
 * "bash --norc --noprofile --noediting -i". Commands go in with send-keys;
 * completion is the same marker swerexd uses (PROMPT_COMMAND printing
 * "@swx<token>:$?:<kind>;"), found in the %output stream by the daemon's own
 * filter.c (linked through daemon_lib). That is cheaper than a "wait-for"
 * client per command, so tmux is measured at its best.
 *
 * Output: CSV lines "tmux,scenario,param,metric,value,unit" on stdout.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "filter.h"

#define TM_SLOW_CHUNK 4096      /* the slow client reads this much ... */
#define TM_SLOW_EVERY 10000     /* ... every this many µs */
#define TM_DEADLINE 600         /* bound on one whole run, seconds */
#define TM_BASH "bash --norc --noprofile --noediting -i"

#define TM_PROMPT_COMMAND \
	"printf \"@swx%.32s:%%s:%%s;\" \"$?\" \"${__swx_k:-0}\"; PS1="

extern char **environ;

struct tmb;

/*
 * What to do when a command's %end or %error arrives: DONE counts the reply
 * itself as the awaited event; WAITED means something pending waits on the
 * command's effect (a window, a marker), which a failed command never brings.
 */
enum tm_act { TM_ACT_NONE, TM_ACT_DONE, TM_ACT_WAITED };

/* One control client: a "tmux -C" process and its pipes. */
struct tm_conn {
	struct tmb *tm;
	int idx;
	pid_t pid;
	int in, out;            /* its stdin (we write), its stdout (we read) */
	struct evbuffer *wbuf, *rbuf;
	struct event ev_read, ev_write, ev_slow;
	int in_block;
	char *acts;             /* ring of enum tm_act, one per command sent */
	size_t acts_cap, acts_head, acts_len;
	double t_spawn, t_first;
	int gone;
};

/* One benchmark session: a tmux window with one pane. */
struct tm_sess {
	struct tmb *tm;
	struct tm_conn *conn;
	int idx, pane;
	char token[FILTER_TOKEN_LEN + 1];
	struct filter filter;
	int markers, left;
	double t0, t_start, t_ready;
	uint64_t out;
	void (*on_mark)(struct tm_sess *, int status);
};

/* The run: options, the loop, connections, sessions, latencies. */
struct tmb {
	struct event_base *base;
	struct event ev_deadline;
	char dir[64], sock[96];
	const char *scenario;
	int sessions, iterations, connections, rc;
	long long bytes;
	struct tm_conn **conns;
	int nconns;
	struct tm_sess **panes; /* by tmux pane id */
	int npanes;
	struct tm_sess **sess;  /* by our index */
	int nsess, capsess;
	pid_t server;
	double *lat;
	size_t nlat, caplat;
	unsigned errors;
	int pending;
	const char *cmd;
	uint64_t expect;
	int debug;              /* BENCH_DEBUG set: trace the control lines */
	int aborted;            /* deadline or signal: run nothing more */
	struct event ev_int, ev_term;
};

static const char tm_check_fn[] =
	"__swx_chk() { __swx_k=2; "
	"eval \"__swx_f() { :; $__swx_c\"$'\\n}' && "
	"{ unset -f __swx_f; __swx_k=0; }; }\n";

/* Return monotonic time in seconds. */
static double
tm_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Record one latency in seconds. */
static void
tm_lat_add(struct tmb *tm, double v)
{
	double *n;

	if (tm->nlat == tm->caplat) {
		tm->caplat = tm->caplat ? 2 * tm->caplat : 1024;
		if ((n = realloc(tm->lat, tm->caplat * sizeof *n)) == NULL) {
			tm->errors++;
			return;
		}
		tm->lat = n;
	}
	tm->lat[tm->nlat++] = v;
}

/* Order doubles for qsort. */
static int
tm_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Print p50 and p99 of the samples under prefix, then forget them. */
static void
tm_emit_lat(struct tmb *tm, const char *param, const char *prefix)
{
	double p50 = 0, p99 = 0;

	if (tm->nlat > 0) {
		qsort(tm->lat, tm->nlat, sizeof *tm->lat, tm_cmp);
		p50 = tm->lat[(size_t)(0.5 * (double)(tm->nlat - 1) + 0.5)];
		p99 = tm->lat[(size_t)(0.99 * (double)(tm->nlat - 1) + 0.5)];
	}
	printf("tmux,%s,%s,%sp50,%.1f,us\n", tm->scenario, param, prefix, p50 * 1e6);
	printf("tmux,%s,%s,%sp99,%.1f,us\n", tm->scenario, param, prefix, p99 * 1e6);
	tm->nlat = 0;
}

/* Count one outstanding thing as done; stop the loop when none are left. */
static void
tm_done(struct tmb *tm)
{
	if (--tm->pending == 0)
		event_base_loopbreak(tm->base);
}

/* Run the loop until everything pending is done or the deadline passes. */
static void
tm_run(struct tmb *tm)
{
	if (tm->pending > 0 && !tm->aborted)
		event_base_dispatch(tm->base);
}

/* Stop a run that takes too long: everything still pending is an error. */
static void
tm_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tmb *tm = arg;

	fprintf(stderr, "bench-tmux: %s, %d pending\n", fd < 0 ?
	    "deadline reached" : "stopped by a signal", tm->pending);
	tm->aborted = 1;
	tm->errors += (unsigned)tm->pending;
	tm->pending = 0;
	event_base_loopbreak(tm->base);
}

/* Write queued commands as the pipe accepts them. */
static void
tm_flush(struct tm_conn *c)
{
	if (evbuffer_write(c->wbuf, c->in) < 0 && errno != EAGAIN) {
		c->tm->errors++;
		evbuffer_drain(c->wbuf, evbuffer_get_length(c->wbuf));
	}
	if (evbuffer_get_length(c->wbuf) > 0)
		event_add(&c->ev_write, NULL);
	else
		event_del(&c->ev_write);
}

/* Resume writing when the pipe has room. */
static void
tm_write_cb(evutil_socket_t fd, short what, void *arg)
{
	tm_flush(arg);
}

/* Remember what to do with the reply of the next command sent. */
static void
tm_expect(struct tm_conn *c, enum tm_act a)
{
	char *n;
	size_t i;

	if (c->acts_len == c->acts_cap) {
		n = malloc(c->acts_cap ? 2 * c->acts_cap : 64);
		if (n == NULL) {
			c->tm->errors++;
			return;
		}
		for (i = 0; i < c->acts_len; i++)
			n[i] = c->acts[(c->acts_head + i) % c->acts_cap];
		free(c->acts);
		c->acts = n;
		c->acts_head = 0;
		c->acts_cap = c->acts_cap ? 2 * c->acts_cap : 64;
	}
	c->acts[(c->acts_head + c->acts_len++) % c->acts_cap] = (char)a;
}

/* Append s in tmux double quotes: only \, " and $ are special there. */
static void
tm_quote(struct evbuffer *b, const char *s)
{
	evbuffer_add(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"' || *s == '$')
			evbuffer_add(b, "\\", 1);
		evbuffer_add(b, s, 1);
	}
	evbuffer_add(b, "\"", 1);
}

/* Type a command into a pane the way swerexd sends it, then Enter. */
static void
tm_send(struct tm_sess *s, const char *cmd, int check)
{
	struct evbuffer *line = evbuffer_new();
	struct tm_conn *c = s->conn;

	if (line == NULL) {
		s->tm->errors++;
		return;
	}
	/* The daemon's own encoding; short commands fit on one line. */
	filter_encode(line, cmd, strlen(cmd));
	evbuffer_add_printf(line, "; %seval \"$__swx_c\"",
	    check ? "__swx_chk && " : "");
	evbuffer_add(line, "", 1);
	evbuffer_add_printf(c->wbuf, "send-keys -t %%%d -l ", s->pane);
	tm_quote(c->wbuf, (const char *)evbuffer_pullup(line, -1));
	evbuffer_add_printf(c->wbuf, " ; send-keys -t %%%d Enter\n", s->pane);
	evbuffer_free(line);
	tm_expect(c, TM_ACT_NONE);
	tm_expect(c, TM_ACT_WAITED);
	s->t0 = tm_now();
	tm_flush(c);
}

/* Count cleaned output. */
static void
tm_output_cb(void *arg, const char *p, size_t n)
{
	struct tm_sess *s = arg;

	s->out += n;
}

/* Handle a prompt marker: the first one ends the setup. */
static int
tm_marker_cb(void *arg, int status, int kind)
{
	struct tm_sess *s = arg;

	if (++s->markers == 1)
		s->t_ready = tm_now();
	if (s->on_mark)
		s->on_mark(s, status);
	return 0;
}

/* Send the setup script: echo off, then the daemon's own setup. */
static void
tm_setup(struct tm_sess *s)
{
	char *script;

	if (asprintf(&script, "stty -echo; %s"
	    "[ -r /etc/bash.bashrc ] && . /etc/bash.bashrc\n"
	    "[ -r ~/.bashrc ] && . ~/.bashrc\n"
	    "unset PS0; PS1=; PS2=; set +o history +o vi +o emacs +H; "
	    "__swx_k=0; PROMPT_COMMAND='" TM_PROMPT_COMMAND "'", tm_check_fn,
	    s->token) < 0) {
		s->tm->errors++;
		return;
	}
	tm_send(s, script, 0);
	free(script);
}

/* Decode tmux's octal escapes in %output data and feed the pane's filter. */
static void
tm_pane_output(struct tmb *tm, int pane, const char *p, size_t n)
{
	static char buf[65536];
	struct tm_sess *s;
	size_t i, k = 0;

	if (pane < 0 || pane >= tm->npanes || (s = tm->panes[pane]) == NULL)
		return;
	for (i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 3 < n) {
			buf[k++] = (char)(((p[i + 1] - '0') << 6) |
			    ((p[i + 2] - '0') << 3) | (p[i + 3] - '0'));
			i += 3;
		} else
			buf[k++] = p[i];
		if (k == sizeof buf) {
			filter_feed(&s->filter, buf, k, tm_output_cb,
			    tm_marker_cb, s);
			k = 0;
		}
	}
	if (k > 0)
		filter_feed(&s->filter, buf, k, tm_output_cb, tm_marker_cb, s);
}

/* Learn a new window's pane id from new-window's reply, and set it up. */
static void
tm_pane_new(struct tmb *tm, int pane, int idx)
{
	struct tm_sess **n, *s;
	int cap;

	if (idx < 0 || idx >= tm->nsess || (s = tm->sess[idx]) == NULL)
		return;
	if (pane >= tm->npanes) {
		cap = pane * 2 + 16;
		if ((n = realloc(tm->panes, (size_t)cap * sizeof *n)) == NULL) {
			tm->errors++;
			return;
		}
		memset(n + tm->npanes, 0, (size_t)(cap - tm->npanes) * sizeof *n);
		tm->panes = n;
		tm->npanes = cap;
	}
	tm->panes[pane] = s;
	s->pane = pane;
	tm_setup(s);
}

/* Handle one line from a control client. */
static void
tm_line(struct tm_conn *c, char *l, size_t n)
{
	struct tmb *tm = c->tm;
	char *end;
	long pane, idx;
	enum tm_act a = TM_ACT_NONE;

	if (tm->debug)
		fprintf(stderr, "%.6f [%d] %.200s\n", tm_now(), c->idx, l);
	if (strncmp(l, "%begin ", 7) == 0) {
		c->in_block = 1;
		return;
	}
	if (strncmp(l, "%end ", 5) == 0 || strncmp(l, "%error ", 7) == 0) {
		c->in_block = 0;
		if (l[1] == 'e' && l[2] == 'r')
			tm->errors++;
		if (c->t_first == 0) {
			c->t_first = tm_now();
			tm_done(tm);
			return;
		}
		if (c->acts_len > 0) {
			a = (enum tm_act)c->acts[c->acts_head];
			c->acts_head = (c->acts_head + 1) % c->acts_cap;
			c->acts_len--;
		}
		if (a == TM_ACT_DONE || (a == TM_ACT_WAITED && l[2] == 'r'))
			tm_done(tm);
		return;
	}
	if (c->in_block) {
		/* Our replies: "%PANE wIDX" from new-window, or the server pid. */
		if (l[0] == '%' && isdigit((unsigned char)l[1])) {
			pane = strtol(l + 1, &end, 10);
			if (end[0] == ' ' && end[1] == 'w') {
				idx = strtol(end + 2, NULL, 10);
				tm_pane_new(tm, (int)pane, (int)idx);
			}
		} else if (isdigit((unsigned char)l[0]))
			tm->server = (pid_t)atol(l);
		else
			fprintf(stderr, "bench-tmux: tmux says: %s\n", l);
		return;
	}
	if (strncmp(l, "%output %", 9) == 0) {
		pane = strtol(l + 9, &end, 10);
		if (*end == ' ')
			end++;
		tm_pane_output(tm, (int)pane, end, n - (size_t)(end - l));
	}
}

/* Read what a control client printed; handle complete lines. */
static void
tm_read(struct tm_conn *c, int max)
{
	size_t n;
	char *l;
	int r;

	r = evbuffer_read(c->rbuf, c->out, max);
	if (r <= 0 && (r == 0 || (errno != EAGAIN && errno != EINTR))) {
		event_del(&c->ev_read);
		event_del(&c->ev_slow);
		c->gone = 1;
		/* A lost client answers nothing more: end the wait now. */
		if (c->tm->pending > 0) {
			fprintf(stderr, "bench-tmux: control client %d lost\n",
			    c->idx);
			c->tm->errors += (unsigned)c->tm->pending;
			c->tm->pending = 0;
			event_base_loopbreak(c->tm->base);
		}
	}
	while ((l = evbuffer_readln(c->rbuf, &n, EVBUFFER_EOL_LF)) != NULL) {
		tm_line(c, l, n);
		free(l);
	}
}

/* Read a control client as fast as it writes. */
static void
tm_read_cb(evutil_socket_t fd, short what, void *arg)
{
	tm_read(arg, 65536);
}

/* Read a little, as a client that reads slowly would. */
static void
tm_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	tm_read(arg, TM_SLOW_CHUNK);
}

/* Build the environment for tmux: ours, with a private HOME, outside tmux. */
static char **
tm_environ(struct tmb *tm, char **home)
{
	size_t n = 0, i, k = 0;
	char **env;

	while (environ[n])
		n++;
	if ((env = calloc(n + 3, sizeof *env)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "HOME=", 5) != 0 &&
		    strncmp(environ[i], "TMUX", 4) != 0 &&
		    strncmp(environ[i], "PS1=", 4) != 0 &&
		    strncmp(environ[i], "PROMPT_COMMAND=", 15) != 0 &&
		    strncmp(environ[i], "SHELL=", 6) != 0)
			env[k++] = environ[i];
	if (asprintf(home, "HOME=%s", tm->dir) < 0) {
		free(env);
		return NULL;
	}
	env[k++] = *home;
	env[k++] = "SHELL=/bin/bash";
	env[k] = NULL;
	return env;
}

/* Start a control client with its own tmux session; count it as pending. */
static struct tm_conn *
tm_conn_new(struct tmb *tm, int idx)
{
	char name[32], *home = NULL, **env;
	char *argv[] = { "tmux", "-S", tm->sock, "-f", "/dev/null", "-C",
	    "new-session", "-s", name, TM_BASH, NULL };
	posix_spawn_file_actions_t fa;
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, e;
	struct tm_conn *c;

	snprintf(name, sizeof name, "c%d", idx);
	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	c->tm = tm;
	c->idx = idx;
	if ((c->wbuf = evbuffer_new()) == NULL ||
	    (c->rbuf = evbuffer_new()) == NULL ||
	    pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
	    (env = tm_environ(tm, &home)) == NULL)
		goto fail;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	c->t_spawn = tm_now();
	e = posix_spawnp(&c->pid, "tmux", &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(home);
	free(env);
	if (e != 0) {
		errno = e;
		goto fail;
	}
	close(pin[0]);
	close(pout[1]);
	c->in = pin[1];
	c->out = pout[0];
	evutil_make_socket_nonblocking(c->in);
	evutil_make_socket_nonblocking(c->out);
	event_assign(&c->ev_read, tm->base, c->out, EV_READ | EV_PERSIST,
	    tm_read_cb, c);
	event_assign(&c->ev_write, tm->base, c->in, EV_WRITE | EV_PERSIST,
	    tm_write_cb, c);
	event_assign(&c->ev_slow, tm->base, -1, EV_PERSIST, tm_slow_cb, c);
	event_add(&c->ev_read, NULL);
	tm->pending++;
	return c;

fail:
	perror("bench-tmux: control client");
	tm->errors++;
	if (pin[0] >= 0) {
		close(pin[0]);
		close(pin[1]);
	}
	if (pout[0] >= 0) {
		close(pout[0]);
		close(pout[1]);
	}
	if (c->wbuf)
		evbuffer_free(c->wbuf);
	if (c->rbuf)
		evbuffer_free(c->rbuf);
	free(c);
	return NULL;
}

/* Start k control clients: the first starts the server; learn its pid. */
static int
tm_start(struct tmb *tm, int k)
{
	int i;

	if ((tm->conns = calloc((size_t)k, sizeof *tm->conns)) == NULL)
		return -1;
	for (i = 0; i < k; i++) {
		/*
		 * One at a time: clients after the first must find the server
		 * the first started (started together, the server was seen to
		 * exit under them).
		 */
		if ((tm->conns[i] = tm_conn_new(tm, i)) == NULL)
			return -1;
		tm->nconns++;
		tm_run(tm);
		if (tm->conns[i]->t_first == 0)
			return -1;
	}
	evbuffer_add_printf(tm->conns[0]->wbuf, "display-message -p \"#{pid}\"\n");
	tm_expect(tm->conns[0], TM_ACT_DONE);
	tm->pending++;
	tm_flush(tm->conns[0]);
	tm_run(tm);
	return tm->server > 0 ? 0 : -1;
}

/* Stop a server whose pid we never learnt, through its socket. */
static void
tm_kill_server(struct tmb *tm)
{
	char *argv[] = { "tmux", "-S", tm->sock, "kill-server", NULL };
	pid_t pid;

	if (posix_spawnp(&pid, "tmux", NULL, NULL, argv, environ) == 0)
		waitpid(pid, NULL, 0);
}

/* Stop every client and the server; wait for all of them to exit. */
static void
tm_stop(struct tmb *tm)
{
	struct pollfd pfd;
	struct tm_conn *c;
	int i, pidfd = -1;

	/* Closing both pipes ends a client even if it is blocked writing. */
	for (i = 0; i < tm->nconns; i++) {
		c = tm->conns[i];
		event_del(&c->ev_read);
		event_del(&c->ev_write);
		event_del(&c->ev_slow);
		close(c->in);
		close(c->out);
		kill(c->pid, SIGTERM);
	}
	if (tm->server > 0) {
		pidfd = (int)syscall(SYS_pidfd_open, tm->server, 0);
		kill(tm->server, SIGTERM);
	}
	if (tm->server <= 0 && access(tm->sock, F_OK) == 0)
		tm_kill_server(tm);
	if (pidfd >= 0) {
		pfd.fd = pidfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 10000) != 1) {
			fprintf(stderr, "bench-tmux: server ignored SIGTERM\n");
			kill(tm->server, SIGKILL);
			poll(&pfd, 1, 10000);
		}
		close(pidfd);
	}
	for (i = 0; i < tm->nconns; i++) {
		c = tm->conns[i];
		waitpid(c->pid, NULL, 0);
		evbuffer_free(c->wbuf);
		evbuffer_free(c->rbuf);
		free(c->acts);
		free(c);
	}
	free(tm->conns);
	tm->nconns = 0;
}

/* Setup done: count the session as ready. */
static void
tm_ready_mark(struct tm_sess *s, int status)
{
	if (s->markers == 1)
		tm_done(s->tm);
}

/* Count the next prompt as the end of what we waited for. */
static void
tm_wait_mark(struct tm_sess *s, int status)
{
	tm_done(s->tm);
}

/* Record a command's latency and send the next one, or finish. */
static void
tm_step_mark(struct tm_sess *s, int status)
{
	if (s->markers == 1) {
		tm_done(s->tm);
		return;
	}
	tm_lat_add(s->tm, tm_now() - s->t0);
	/* "echo hi" must print exactly "hi\n": else the scheme is broken. */
	if (status != 0 || (s->tm->expect > 0 && s->out != s->tm->expect))
		s->tm->errors++;
	s->out = 0;
	if (--s->left > 0)
		tm_send(s, s->tm->cmd, 1);
	else
		tm_done(s->tm);
}

/* Ask for a new window on connection c; it is set up when tmux answers. */
static struct tm_sess *
tm_sess_new(struct tmb *tm, struct tm_conn *c, void (*on_mark)(struct tm_sess *, int))
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[FILTER_TOKEN_LEN / 2];
	struct tm_sess *s, **n;
	size_t i;

	if (tm->nsess == tm->capsess) {
		tm->capsess = tm->capsess ? 2 * tm->capsess : 64;
		if ((n = realloc(tm->sess, (size_t)tm->capsess * sizeof *n)) == NULL)
			return NULL;
		tm->sess = n;
	}
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		free(s);
		tm->errors++;
		return NULL;
	}
	for (i = 0; i < sizeof r; i++) {
		s->token[2 * i] = hex[r[i] >> 4];
		s->token[2 * i + 1] = hex[r[i] & 15];
	}
	filter_init(&s->filter, s->token);
	s->tm = tm;
	s->conn = c;
	s->idx = tm->nsess;
	s->pane = -1;
	s->on_mark = on_mark;
	s->t_start = tm_now();
	tm->sess[tm->nsess++] = s;
	evbuffer_add_printf(c->wbuf, "new-window -d -P -F \"#{pane_id} w%d\" "
	    "\"" TM_BASH "\"\n", s->idx);
	tm_expect(c, TM_ACT_WAITED);
	tm->pending++;
	tm_flush(c);
	return s;
}

/* Close a session's window; with done, count its reply as pending. */
static void
tm_sess_close(struct tm_sess *s, int done)
{
	struct tm_conn *c = s->conn;

	if (s->pane >= 0) {
		evbuffer_add_printf(c->wbuf, "kill-pane -t %%%d\n", s->pane);
		tm_expect(c, done ? TM_ACT_DONE : TM_ACT_NONE);
		if (done)
			s->tm->pending++;
		tm_flush(c);
		s->tm->panes[s->pane] = NULL;
	}
	s->tm->sess[s->idx] = NULL;
	free(s);
}

/* Open n sessions spread over the connections; wait until all are ready. */
static void
tm_open(struct tmb *tm, int n)
{
	int i;

	for (i = 0; i < n; i++)
		tm_sess_new(tm, tm->conns[i % tm->nconns], tm_step_mark);
	tm_run(tm);
}

/* Run m commands in sessions [from, to) at once; return the elapsed time. */
static double
tm_steps(struct tmb *tm, int from, int to, int m, const char *cmd)
{
	double t = tm_now();
	int i;

	tm->cmd = cmd;
	tm->expect = strcmp(cmd, "echo hi") == 0 ? 3 : 0;
	for (i = from; i < to; i++) {
		struct tm_sess *s = tm->sess[i];

		if (s == NULL || s->pane < 0)
			continue;
		s->on_mark = tm_step_mark;
		s->left = m;
		s->out = 0;
		tm->pending++;
		tm_send(s, cmd, 1);
	}
	tm_run(tm);
	return tm_now() - t;
}

/* Read a number from a /proc/PID/status line such as "VmRSS:". */
static long
tm_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, strlen(key)) == 0)
			v = atol(line + strlen(key));
	fclose(f);
	return v;
}

/* Count a process's open fds. */
static int
tm_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* Return a process's user+system CPU time in seconds. */
static double
tm_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the ")" that ends the name. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Scenario echo: round trips of "echo hi" on one idle session. */
static void
tm_echo(struct tmb *tm)
{
	tm_open(tm, 1);
	tm_steps(tm, 0, 1, tm->iterations, "echo hi");
	tm_emit_lat(tm, "", "");
}

/* Scenario create: a window until its first command can run; then close. */
static void
tm_create(struct tmb *tm)
{
	const char *param = tm->rc ? "rc" : "";
	struct tm_sess *s;
	double *closing, t;
	int i;

	if ((closing = calloc((size_t)tm->iterations, sizeof *closing)) == NULL)
		return;
	for (i = 0; i < tm->iterations; i++) {
		if ((s = tm_sess_new(tm, tm->conns[0], tm_ready_mark)) == NULL)
			break;
		tm_run(tm);
		if (s->t_ready > 0)
			tm_lat_add(tm, s->t_ready - s->t_start);
		t = tm_now();
		tm_sess_close(s, 1);
		tm_run(tm);
		closing[i] = tm_now() - t;
	}
	tm_emit_lat(tm, param, "");
	for (i = 0; i < tm->iterations; i++)
		tm_lat_add(tm, closing[i]);
	tm_emit_lat(tm, param, "close_");
	free(closing);
}

/* Scenario concurrent: n windows, m sequential "echo hi" each, at once. */
static void
tm_concurrent(struct tmb *tm)
{
	char param[48];
	double t;

	tm_open(tm, tm->sessions);
	t = tm_steps(tm, 0, tm->nsess, tm->iterations, "echo hi");
	if (tm->nconns > 1)
		snprintf(param, sizeof param, "n=%d;conns=%d", tm->sessions, tm->nconns);
	else
		snprintf(param, sizeof param, "n=%d", tm->sessions);
	printf("tmux,concurrent,%s,cmds_per_s,%.1f,1/s\n", param,
	    t > 0 ? (double)tm->nlat / t : 0);
	tm_emit_lat(tm, param, "");
}

/* Scenario hol: B's echo latency idle, behind A's sleep, behind A's stream. */
static void
tm_hol(struct tmb *tm)
{
	struct timeval tv = { 0, TM_SLOW_EVERY };
	char stream[96];
	struct tm_sess *a;

	/* A on its own client (conns[1]), which later reads slowly; B on conns[0]. */
	tm_sess_new(tm, tm->conns[1], tm_step_mark);
	tm_sess_new(tm, tm->conns[0], tm_step_mark);
	tm_run(tm);
	a = tm->sess[0];
	tm_steps(tm, 1, 2, tm->iterations, "echo hi");
	tm_emit_lat(tm, "", "idle_");

	tm_send(a, "sleep 5", 1);
	a->on_mark = NULL;
	tm_steps(tm, 1, 2, tm->iterations, "echo hi");
	tm_emit_lat(tm, "", "sleep_");
	a->on_mark = tm_wait_mark;
	tm->pending++;
	tm_run(tm);

	a->on_mark = NULL;
	snprintf(stream, sizeof stream, "head -c %lld /dev/zero | tr '\\0' x",
	    tm->bytes > 0 ? tm->bytes : 1073741824LL);
	tm_send(a, stream, 1);
	event_del(&a->conn->ev_read);
	event_add(&a->conn->ev_slow, &tv);
	tm_steps(tm, 1, 2, tm->iterations, "echo hi");
	tm_emit_lat(tm, "", "stream_");
}

/* Run one command in session 0 and print its output rate. */
static void
tm_rate(struct tmb *tm, const char *cmd, const char *param)
{
	struct tm_sess *s = tm->sess[0];
	double t;

	s->on_mark = tm_wait_mark;
	s->out = 0;
	tm->pending++;
	tm_send(s, cmd, 1);
	t = tm_now();
	tm_run(tm);
	t = tm_now() - t;
	printf("tmux,throughput,%s,mb_per_s,%.1f,MB/s\n", param,
	    t > 0 ? (double)s->out / 1e6 / t : 0);
	printf("tmux,throughput,%s,bytes,%llu,B\n", param,
	    (unsigned long long)s->out);
}

/* Scenario throughput: B bytes of 'x', then seq 1 2000000, through one window. */
static void
tm_throughput(struct tmb *tm)
{
	long long b = tm->bytes > 0 ? tm->bytes : 200000000LL;
	char cmd[96], param[48];

	tm_open(tm, 1);
	snprintf(cmd, sizeof cmd, "head -c %lld /dev/zero | tr '\\0' x", b);
	snprintf(param, sizeof param, "bytes=%lld", b);
	tm_rate(tm, cmd, param);
	tm_rate(tm, "seq 1 2000000", "seq=2000000");
}

/* Print the server's RSS and fds with n idle sessions open. */
static void
tm_cost_point(struct tmb *tm, int n)
{
	printf("tmux,cost,sessions=%d,rss,%.1f,MiB\n", n,
	    (double)tm_status_kb(tm->server, "VmRSS:") / 1024.0);
	printf("tmux,cost,sessions=%d,fds,%d,1\n", n, tm_fds(tm->server));
}

/* Scenario cost: RSS and fds at 0, 100, 1000 windows; CPU per command. */
static void
tm_cost(struct tmb *tm)
{
	static const int points[] = { 100, 1000 };
	double cpu, t;
	size_t i;
	int n, done = 0;
	char param[48];

	tm_cost_point(tm, 0);
	for (i = 0; i < sizeof points / sizeof points[0]; i++) {
		n = points[i] < tm->sessions ? points[i] : tm->sessions;
		if (n <= done)
			break;
		tm_open(tm, n - done);
		done = n;
		tm_cost_point(tm, n);
	}
	/* CPU of the server over a concurrent run in every open window. */
	cpu = tm_cpu(tm->server);
	t = tm_steps(tm, 0, tm->nsess, tm->iterations, "echo hi");
	cpu = tm_cpu(tm->server) - cpu;
	snprintf(param, sizeof param, "n=%d", done);
	if (tm->nlat > 0)
		printf("tmux,cost,%s,cpu_per_cmd,%.1f,us\n", param,
		    cpu * 1e6 / (double)tm->nlat);
	printf("tmux,cost,%s,cmds_per_s,%.1f,1/s\n", param,
	    t > 0 ? (double)tm->nlat / t : 0);
	tm->nlat = 0;
}

/* Write the small ~/.bashrc that --rc sources. */
static int
tm_write_rc(struct tmb *tm)
{
	char path[96];
	FILE *f;

	snprintf(path, sizeof path, "%s/.bashrc", tm->dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs("# a few lines, like a user's\nexport EDITOR=vi\n"
	    "alias ll='ls -l'\nHISTSIZE=1000\numask 022\n"
	    "[ -d \"$HOME/bin\" ] && PATH=\"$HOME/bin:$PATH\"\n", f);
	return fclose(f) == 0 ? 0 : -1;
}

/* Remove the private directory: HOME and the socket. */
static void
tm_rm_dir(struct tmb *tm)
{
	static const char *files[] = { ".bashrc", ".bash_history", "s" };
	char path[96];
	size_t i;

	for (i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", tm->dir, files[i]);
		unlink(path);
	}
	rmdir(tm->dir);
}

/* Print usage and fail. */
static int
tm_usage(void)
{
	fprintf(stderr, "usage: bench-tmux --scenario echo|create|concurrent|"
	    "hol|throughput|cost|startup [--sessions N] [--iterations M] "
	    "[--connections K] [--rc] [--bytes B] [--socket PATH] "
	    "[--daemon PATH]\n");
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
	struct tmb tm = { .sessions = 10, .iterations = 100, .connections = 1 };
	struct timeval dl = { TM_DEADLINE, 0 };
	const char *sc;
	int c, k, r = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': tm.scenario = optarg; break;
		case 'n': tm.sessions = atoi(optarg); break;
		case 'm': tm.iterations = atoi(optarg); break;
		case 'k': tm.connections = atoi(optarg); break;
		case 'r': tm.rc = 1; break;
		case 'b': tm.bytes = atoll(optarg); break;
		case 'S': case 'd': break; /* tmux gets its own private socket */
		default: return tm_usage();
		}
	}
	if ((sc = tm.scenario) == NULL || tm.sessions < 1 ||
	    tm.iterations < 1 || tm.connections < 1)
		return tm_usage();
	tm.debug = getenv("BENCH_DEBUG") != NULL;
	signal(SIGPIPE, SIG_IGN);
	snprintf(tm.dir, sizeof tm.dir, "/tmp/bench-tmux.XXXXXX");
	if (mkdtemp(tm.dir) == NULL) {
		perror("bench-tmux: mkdtemp");
		return 1;
	}
	snprintf(tm.sock, sizeof tm.sock, "%s/s", tm.dir);
	if ((tm.rc && tm_write_rc(&tm) < 0) ||
	    (tm.base = event_base_new()) == NULL) {
		tm_rm_dir(&tm);
		fprintf(stderr, "bench-tmux: cannot set up\n");
		return 1;
	}
	evtimer_assign(&tm.ev_deadline, tm.base, tm_deadline_cb, &tm);
	evtimer_add(&tm.ev_deadline, &dl);
	/* A signal ends the run the same way, so that tmux is still stopped. */
	evsignal_assign(&tm.ev_int, tm.base, SIGINT, tm_deadline_cb, &tm);
	evsignal_assign(&tm.ev_term, tm.base, SIGTERM, tm_deadline_cb, &tm);
	evsignal_add(&tm.ev_int, NULL);
	evsignal_add(&tm.ev_term, NULL);

	/* hol needs a second client for A; concurrent may ask for K. */
	k = strcmp(sc, "hol") == 0 ? 2 :
	    strcmp(sc, "concurrent") == 0 ? tm.connections : 1;
	if (tm_start(&tm, k) < 0) {
		fprintf(stderr, "bench-tmux: tmux did not start\n");
		r = -1;
	} else if (strcmp(sc, "startup") == 0) {
		printf("tmux,startup,,first_reply,%.1f,us\n",
		    (tm.conns[0]->t_first - tm.conns[0]->t_spawn) * 1e6);
	} else if (strcmp(sc, "echo") == 0)
		tm_echo(&tm);
	else if (strcmp(sc, "create") == 0)
		tm_create(&tm);
	else if (strcmp(sc, "concurrent") == 0)
		tm_concurrent(&tm);
	else if (strcmp(sc, "hol") == 0)
		tm_hol(&tm);
	else if (strcmp(sc, "throughput") == 0)
		tm_throughput(&tm);
	else if (strcmp(sc, "cost") == 0)
		tm_cost(&tm);
	else {
		fprintf(stderr, "bench-tmux: unknown scenario '%s'\n", sc);
		r = -1;
	}
	printf("tmux,%s,,errors,%u,count\n", sc, tm.errors);
	tm_stop(&tm);
	for (c = 0; c < tm.nsess; c++)
		free(tm.sess[c]);
	free(tm.sess);
	free(tm.panes);
	free(tm.lat);
	event_del(&tm.ev_deadline);
	event_del(&tm.ev_int);
	event_del(&tm.ev_term);
	event_base_free(tm.base);
	tm_rm_dir(&tm);
	return r < 0 ? 1 : 0;
}
