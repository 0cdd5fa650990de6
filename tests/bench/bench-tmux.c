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
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "bench-util.h"
#include "filter.h"

#define TM_BASH "bash --norc --noprofile --noediting -i"

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
	struct bu_opts o;
	struct bu_run run;
	struct bu_lat lat;
	struct bu_dir dir;      /* HOME, and the server's socket */
	char sock[96];
	struct tm_conn **conns;
	int nconns;
	struct tm_sess **panes; /* by tmux pane id */
	int npanes;
	struct tm_sess **sess;  /* by our index */
	int nsess, capsess;
	pid_t server;
	const char *cmd;
	uint64_t expect;
	int debug;              /* BENCH_DEBUG set: trace the control lines */
};

static const char tm_check_fn[] =
	"__swx_chk() { __swx_k=2; "
	"eval \"__swx_f() { :; $__swx_c\"$'\\n}' && "
	"{ unset -f __swx_f; __swx_k=0; }; }\n";

/* Write queued commands as the pipe accepts them. */
static void
tm_flush(struct tm_conn *c)
{
	if (evbuffer_write(c->wbuf, c->in) < 0 && errno != EAGAIN) {
		c->tm->run.errors++;
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
			c->tm->run.errors++;
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
		s->tm->run.errors++;
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
	s->t0 = bu_now();
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
		s->t_ready = bu_now();
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
	    "__swx_k=0; PROMPT_COMMAND='" FILTER_PROMPT_COMMAND "'", tm_check_fn,
	    s->token) < 0) {
		s->tm->run.errors++;
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
			tm->run.errors++;
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
		fprintf(stderr, "%.6f [%d] %.200s\n", bu_now(), c->idx, l);
	if (strncmp(l, "%begin ", 7) == 0) {
		c->in_block = 1;
		return;
	}
	if (strncmp(l, "%end ", 5) == 0 || strncmp(l, "%error ", 7) == 0) {
		c->in_block = 0;
		if (l[1] == 'e' && l[2] == 'r')
			tm->run.errors++;
		if (c->t_first == 0) {
			c->t_first = bu_now();
			bu_run_done(&tm->run);
			return;
		}
		if (c->acts_len > 0) {
			a = (enum tm_act)c->acts[c->acts_head];
			c->acts_head = (c->acts_head + 1) % c->acts_cap;
			c->acts_len--;
		}
		if (a == TM_ACT_DONE || (a == TM_ACT_WAITED && l[2] == 'r'))
			bu_run_done(&tm->run);
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
			bu_diag("tmux says: %s", l);
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
		if (c->tm->run.pending > 0) {
			bu_diag("control client %d lost", c->idx);
			c->tm->run.errors += (unsigned long)c->tm->run.pending;
			c->tm->run.pending = 0;
			event_base_loopbreak(c->tm->run.base);
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
	tm_read(arg, BU_SLOW_CHUNK);
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
	if (asprintf(home, "HOME=%s", tm->dir.home) < 0) {
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
	c->t_spawn = bu_now();
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
	event_assign(&c->ev_read, tm->run.base, c->out, EV_READ | EV_PERSIST,
	    tm_read_cb, c);
	event_assign(&c->ev_write, tm->run.base, c->in, EV_WRITE | EV_PERSIST,
	    tm_write_cb, c);
	event_assign(&c->ev_slow, tm->run.base, -1, EV_PERSIST, tm_slow_cb, c);
	event_add(&c->ev_read, NULL);
	tm->run.pending++;
	return c;

fail:
	bu_diag("control client: %s", strerror(errno));
	tm->run.errors++;
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
		bu_run_wait(&tm->run);
		if (tm->conns[i]->t_first == 0)
			return -1;
	}
	evbuffer_add_printf(tm->conns[0]->wbuf, "display-message -p \"#{pid}\"\n");
	tm_expect(tm->conns[0], TM_ACT_DONE);
	tm->run.pending++;
	tm_flush(tm->conns[0]);
	bu_run_wait(&tm->run);
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
			bu_diag("server ignored SIGTERM");
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
		bu_run_done(&s->tm->run);
}

/* Count the next prompt as the end of what we waited for. */
static void
tm_wait_mark(struct tm_sess *s, int status)
{
	bu_run_done(&s->tm->run);
}

/* Record a command's latency and send the next one, or finish. */
static void
tm_step_mark(struct tm_sess *s, int status)
{
	if (s->markers == 1) {
		bu_run_done(&s->tm->run);
		return;
	}
	bu_lat_add(&s->tm->run, &s->tm->lat, bu_now() - s->t0);
	/* "echo hi" must print exactly "hi\n": else the scheme is broken. */
	if (status != 0 || (s->tm->expect > 0 && s->out != s->tm->expect))
		s->tm->run.errors++;
	s->out = 0;
	if (--s->left > 0)
		tm_send(s, s->tm->cmd, 1);
	else
		bu_run_done(&s->tm->run);
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
		tm->run.errors++;
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
	s->t_start = bu_now();
	tm->sess[tm->nsess++] = s;
	evbuffer_add_printf(c->wbuf, "new-window -d -P -F \"#{pane_id} w%d\" "
	    "\"" TM_BASH "\"\n", s->idx);
	tm_expect(c, TM_ACT_WAITED);
	tm->run.pending++;
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
			s->tm->run.pending++;
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
	bu_run_wait(&tm->run);
}

/* Run m commands in sessions [from, to) at once; return the elapsed time. */
static double
tm_steps(struct tmb *tm, int from, int to, int m, const char *cmd)
{
	double t = bu_now();
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
		tm->run.pending++;
		tm_send(s, cmd, 1);
	}
	bu_run_wait(&tm->run);
	return bu_now() - t;
}

/* Scenario echo: round trips of "echo hi" on one idle session. */
static void
tm_echo(struct tmb *tm)
{
	tm_open(tm, 1);
	tm_steps(tm, 0, 1, tm->o.iterations, "echo hi");
	bu_lat_report(&tm->lat, tm->o.scenario, "", "");
}

/* Scenario create: a window until its first command can run; then close. */
static void
tm_create(struct tmb *tm)
{
	const char *param = tm->o.rc ? "rc" : "";
	struct tm_sess *s;
	double *closing, t;
	int i;

	closing = calloc((size_t)tm->o.iterations, sizeof *closing);
	if (closing == NULL)
		return;
	for (i = 0; i < tm->o.iterations; i++) {
		if ((s = tm_sess_new(tm, tm->conns[0], tm_ready_mark)) == NULL)
			break;
		bu_run_wait(&tm->run);
		if (s->t_ready > 0)
			bu_lat_add(&tm->run, &tm->lat, s->t_ready - s->t_start);
		t = bu_now();
		tm_sess_close(s, 1);
		bu_run_wait(&tm->run);
		closing[i] = bu_now() - t;
	}
	bu_lat_report(&tm->lat, tm->o.scenario, param, "");
	for (i = 0; i < tm->o.iterations; i++)
		bu_lat_add(&tm->run, &tm->lat, closing[i]);
	bu_lat_report(&tm->lat, tm->o.scenario, param, "close_");
	free(closing);
}

/* Scenario concurrent: n windows, m sequential "echo hi" each, at once. */
static void
tm_concurrent(struct tmb *tm)
{
	char param[48];
	double t;

	tm_open(tm, tm->o.sessions);
	t = tm_steps(tm, 0, tm->nsess, tm->o.iterations, "echo hi");
	if (tm->nconns > 1)
		snprintf(param, sizeof param, "n=%ld;conns=%d", tm->o.sessions,
		    tm->nconns);
	else
		snprintf(param, sizeof param, "n=%ld", tm->o.sessions);
	bu_metric("concurrent", param, "cmds_per_s",
	    t > 0 ? (double)tm->lat.n / t : 0, "1/s");
	bu_lat_report(&tm->lat, tm->o.scenario, param, "");
}

/* Scenario hol: B's echo latency idle, behind A's sleep, behind A's stream. */
static void
tm_hol(struct tmb *tm)
{
	struct timeval tv = { 0, BU_SLOW_EVERY_US };
	char stream[96];
	struct tm_sess *a;

	/* A on its own client (conns[1]), which later reads slowly; B on conns[0]. */
	tm_sess_new(tm, tm->conns[1], tm_step_mark);
	tm_sess_new(tm, tm->conns[0], tm_step_mark);
	bu_run_wait(&tm->run);
	a = tm->sess[0];
	tm_steps(tm, 1, 2, tm->o.iterations, "echo hi");
	bu_lat_report(&tm->lat, tm->o.scenario, "", "idle_");

	tm_send(a, "sleep 5", 1);
	a->on_mark = NULL;
	tm_steps(tm, 1, 2, tm->o.iterations, "echo hi");
	bu_lat_report(&tm->lat, tm->o.scenario, "", "sleep_");
	a->on_mark = tm_wait_mark;
	tm->run.pending++;
	bu_run_wait(&tm->run);

	a->on_mark = NULL;
	snprintf(stream, sizeof stream, "head -c %lld /dev/zero | tr '\\0' x",
	    tm->o.bytes > 0 ? tm->o.bytes : 1073741824LL);
	tm_send(a, stream, 1);
	event_del(&a->conn->ev_read);
	event_add(&a->conn->ev_slow, &tv);
	tm_steps(tm, 1, 2, tm->o.iterations, "echo hi");
	bu_lat_report(&tm->lat, tm->o.scenario, "", "stream_");
}

/* Run one command in session 0 and print its output rate. */
static void
tm_rate(struct tmb *tm, const char *cmd, const char *param)
{
	struct tm_sess *s = tm->sess[0];
	double t;

	s->on_mark = tm_wait_mark;
	s->out = 0;
	tm->run.pending++;
	tm_send(s, cmd, 1);
	t = bu_now();
	bu_run_wait(&tm->run);
	t = bu_now() - t;
	bu_metric("throughput", param, "mb_per_s",
	    t > 0 ? (double)s->out / 1e6 / t : 0, "MB/s");
	bu_count("throughput", param, "bytes", (long long)s->out, "B");
}

/* Scenario throughput: B bytes of 'x', then seq 1 2000000, through one window. */
static void
tm_throughput(struct tmb *tm)
{
	long long b = tm->o.bytes > 0 ? tm->o.bytes : 200000000LL;
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
	char param[32];

	snprintf(param, sizeof param, "sessions=%d", n);
	bu_metric("cost", param, "rss", (double)bu_rss_kib(tm->server) / 1024.0,
	    "MiB");
	bu_count("cost", param, "fds", bu_fds(tm->server), "1");
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
		n = points[i] < tm->o.sessions ? points[i] :
		    (int)tm->o.sessions;
		if (n <= done)
			break;
		tm_open(tm, n - done);
		done = n;
		tm_cost_point(tm, n);
	}
	/* CPU of the server over a concurrent run in every open window. */
	cpu = bu_cpu(tm->server);
	t = tm_steps(tm, 0, tm->nsess, tm->o.iterations, "echo hi");
	cpu = bu_cpu(tm->server) - cpu;
	snprintf(param, sizeof param, "n=%d", done);
	if (tm->lat.n > 0)
		bu_metric("cost", param, "cpu_per_cmd",
		    cpu * 1e6 / (double)tm->lat.n, "us");
	bu_metric("cost", param, "cmds_per_s",
	    t > 0 ? (double)tm->lat.n / t : 0, "1/s");
	tm->lat.n = 0;
}

/* Parse the options, start tmux, run one scenario, stop tmux, clean up. */
int
main(int argc, char **argv)
{
	struct tmb tm = { .o.sessions = 10, .o.iterations = 100,
	    .o.connections = 1, .o.timeout = BU_DEFAULT_TIMEOUT };
	const char *sc;
	int c, k, r = 0;

	bu_init("tmux");
	/* --socket and --daemon are accepted and ignored: tmux gets its own. */
	if (bu_parse(&tm.o, argc, argv) < 0 || tm.o.sessions < 1 ||
	    tm.o.iterations < 1 || tm.o.connections < 1) {
		bu_usage("echo|create|concurrent|hol|throughput|cost|startup");
		return 1;
	}
	sc = tm.o.scenario;
	tm.debug = getenv("BENCH_DEBUG") != NULL;
	if (bu_dir_make(&tm.dir, tm.o.rc) < 0)
		return 1;
	snprintf(tm.sock, sizeof tm.sock, "%s/s", tm.dir.path);
	/* A signal ends the run like the deadline: tmux is still stopped. */
	if (bu_run_init(&tm.run, tm.o.timeout) < 0) {
		bu_dir_remove(&tm.dir);
		bu_diag("cannot set up");
		return 1;
	}

	/* hol needs a second client for A; concurrent may ask for K. */
	k = strcmp(sc, "hol") == 0 ? 2 :
	    strcmp(sc, "concurrent") == 0 ? (int)tm.o.connections : 1;
	if (tm_start(&tm, k) < 0) {
		bu_diag("tmux did not start");
		r = -1;
	} else if (strcmp(sc, "startup") == 0) {
		bu_metric("startup", "", "first_reply",
		    (tm.conns[0]->t_first - tm.conns[0]->t_spawn) * 1e6, "us");
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
		bu_diag("unknown scenario '%s'", sc);
		r = -1;
	}
	bu_count(sc, "", "errors", (long long)tm.run.errors, "count");
	tm_stop(&tm);
	for (c = 0; c < tm.nsess; c++)
		free(tm.sess[c]);
	free(tm.sess);
	free(tm.panes);
	bu_lat_free(&tm.lat);
	bu_run_free(&tm.run);
	bu_dir_remove(&tm.dir);
	return r < 0 ? 1 : 0;
}
