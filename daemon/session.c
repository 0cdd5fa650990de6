/*
 * Bash sessions. Each is an interactive bash on a pty, in its own session
 * and process group, driven by one state machine fed by pty reads, timers
 * and the reaping of bash.
 *
 * How a command runs: bash is started with --noediting (no readline, so no
 * echo of its own, and the pty has ECHO off) and a PROMPT_COMMAND that prints
 * a marker carrying a per-session random token, $? and a syntax flag. A command
 * is sent as one assignment of its text in $'...' quoting, split into short
 * physical lines (a canonical-mode tty line holds at most 4095 bytes), then
 * "__swx_chk && eval" of it. __swx_chk parses the text as a function body
 * without running it, so a syntax error is reported (flag 2) without running
 * anything and without bash waiting for a continuation line, and without a
 * fork. Everything the pty prints up to the next marker is the output.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "attach.h"
#include "capture.h"
#include "cgroup.h"
#include "conn.h"
#include "filter.h"
#include "history.h"
#include "log.h"
#include "proc.h"
#include "reaper.h"
#include "server.h"
#include "session.h"
#include "spare.h"

#define SESSION_NAME_MAX 256
#define SESSION_STARTUP_TIMEOUT 10.0
#define SESSION_INTR_TIMEOUT 0.2
#define SESSION_INTR_RETRY 3
#define SESSION_KILL_WAIT 2.0      /* after SIGKILL of a job, wait for the prompt */
/* While bash may be reading a command line, hold SIGINT back this long. */
#define SESSION_INTR_DEFER_TICK 0.002
#define SESSION_INTR_DEFER_MAX 250
#define SESSION_READ_SIZE 65536
#define SESSION_READS_PER_EVENT 4  /* then yield to other sessions */
/*
 * A pty read returns at most its line discipline's 4 KiB buffer, which the
 * kernel refills from its queue at once: a read about that big means more
 * is likely waiting, so read again in this pass (the writes to the client
 * then coalesce). A shorter one means the program paused; asking again
 * would mostly cost an EAGAIN per command.
 */
#define SESSION_READ_MORE 4000
#define SESSION_ROWS 50
#define SESSION_COLS 200
#define SESSION_SIZE_MAX 10000     /* rows or columns of a terminal */
/* PATH of a clean session environment when the daemon has none. */
#define SESSION_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* SendInput: bytes per request, and input queued for the terminal before
 * more is refused (a program that reads nothing must not grow it). */
#define SESSION_INPUT_MAX 65536
#define SESSION_INPUT_PENDING (256 * 1024)
#define SESSION_LIMIT_MAX (UINT64_C(1) << 62)

/* The limits of SessionLimits, as indexes of struct session's lim[]. */
enum session_limit {
	SESSION_LIM_CPU,
	SESSION_LIM_AS,
	SESSION_LIM_NPROC,
	SESSION_LIM_FSIZE,
	SESSION_LIM_RLIMITS,            /* the ones above are rlimits */
	SESSION_LIM_MEMORY = SESSION_LIM_RLIMITS,
	SESSION_LIM_PIDS,
	SESSION_LIM_N,
};

/*
 * Each limit's name in extra.limit and messages, its SessionLimits field,
 * and for rlimits its resource and its name to swerexd-reaper.
 */
static const struct {
	const char *name;
	const char *field;
	int resource;
	const char *reaper;
} session_limits[SESSION_LIM_N] = {
	{ "cpu", "cpu_seconds", RLIMIT_CPU, "cpu" },
	{ "address_space", "address_space", RLIMIT_AS, "as" },
	{ "nproc", "nproc", RLIMIT_NPROC, "nproc" },
	{ "file_size", "file_size", RLIMIT_FSIZE, "fsize" },
	{ "memory", "memory", -1, NULL },
	{ "pids", "pids", -1, NULL },
};

extern char **environ;

enum session_state {
	SESSION_STARTING,
	SESSION_IDLE,
	SESSION_RUNNING,
	SESSION_DEAD,
};

enum session_wait {
	SESSION_WAIT_NONE,
	SESSION_WAIT_CREATE,
	SESSION_WAIT_RUN,
	SESSION_WAIT_INTERRUPT,
};

/* The one request a session is answering, and how to answer it. */
struct session_waiter {
	enum session_wait type;
	struct req *req;
	Swerex__V1__Check check;
	char *error_msg;
	char *command;
	char **expect;
	size_t n_expect;
	size_t scan;            /* capture offset already searched */
	uint64_t carried;       /* bytes captured before this request began */
	bool stream;
	bool quit;
	bool syntax_check;      /* a wrapped command: flag 2 means syntax error */
	unsigned intr_left;
	unsigned intr_defer;    /* checks left before SIGINT regardless */
	double intr_timeout;
	bool killed;
	double quiet;           /* no_output_timeout in seconds; 0: none */
};

struct session {
	struct server *srv;
	char *name;
	struct session *hnext;
	TAILQ_ENTRY(session) entry;
	bool named;             /* in the name table; else on srv->closing */

	pid_t pid;              /* bash; 0 until its terminal names it */
	pid_t reaper;           /* our child: swerexd-reaper, or bash itself */
	int fd;
	enum session_state state;
	int start_stage;
	bool busy;              /* bash is not at its prompt */
	bool reaped;
	bool eof;
	bool closing;
	bool throttled;         /* pty not read: the streaming peer is behind */
	int wait_status;
	int last_status;
	double created;
	char *last_command;
	bool unseen;            /* a command ended with no request waiting */
	struct termios tio;
	struct timespec last_output; /* while a waiter has a no-output timeout */

	struct filter filter;
	struct capture cap;
	struct evbuffer *wbuf;
	struct event ev_read;
	struct event ev_write;
	struct event ev_timer;  /* startup, command timeout, interrupt retry */
	struct event ev_kill;   /* SIGKILL after the close grace period */
	struct event ev_quiet;  /* the waiter's no-output timeout */
	struct session_waiter w;
	struct req *close_req;
	struct attach_hub *attach;  /* recent raw output, its watchers (attach.c) */
	struct history hist;    /* see history.c */

	uint64_t lim[SESSION_LIM_N];    /* SessionLimits; 0 = none */
	char *cgroup;                   /* its cgroup (memory, pids), or NULL */
	struct cgroup_counters cg_start; /* the cgroup's counters at the run */
};

static void session_read_cb(evutil_socket_t, short, void *);
static void session_dead(struct session *s);
static void session_free(struct session *s);
static void session_unthrottle(void *arg);
static pid_t session_bash_pid(struct session *s);

static const char session_check_fn[] =
	"__swx_chk() { __swx_k=2; "
	"eval \"__swx_f() { :; $__swx_c\"$'\\n}' && "
	"{ unset -f __swx_f; __swx_k=0; }; }\n";

/* Hash a session name. */
static unsigned
session_hash(const char *name)
{
	unsigned h = 2166136261u;

	while (*name)
		h = (h ^ (unsigned char)*name++) * 16777619u;
	return h % SERVER_SESSION_BUCKETS;
}

/* Find a named session. */
static struct session *
session_find(struct server *srv, const char *name)
{
	struct session *s;

	for (s = srv->buckets[session_hash(name)]; s != NULL; s = s->hnext)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* Take a session out of the name table: its name is free for reuse. */
static void
session_unname(struct session *s)
{
	struct session **pp;

	if (!s->named)
		return;
	for (pp = &s->srv->buckets[session_hash(s->name)]; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			break;
		}
	TAILQ_REMOVE(&s->srv->sessions, s, entry);
	TAILQ_INSERT_TAIL(&s->srv->closing, s, entry);
	s->named = false;
	s->srv->n_sessions--;
}

/* Map an empty name to the default one. */
static const char *
session_name(const char *name)
{
	return name == NULL || *name == '\0' ? "default" : name;
}

/* Check a session name; return an error message or NULL. */
static const char *
session_bad_name(const char *name)
{
	const unsigned char *p;

	if (strlen(name) > SESSION_NAME_MAX)
		return "session name longer than 256 bytes";
	for (p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return "session name contains a control character";
	return NULL;
}

/* Look a session up for a request, answering the request if there is none. */
static struct session *
session_lookup(struct server *srv, struct req *r, const char *raw)
{
	const char *name = session_name(raw);
	struct session *s = session_find(srv, name);

	if (s == NULL)
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__SESSION_DOES_NOT_EXIST,
		    NULL, NULL, "session '%.256s' does not exist", name);
	return s;
}

/* Check a timeout in seconds from a request. */
static bool
session_timeout_ok(double t)
{
	return isfinite(t) && t >= 0;
}

/* Forget the waiter's state (its request has been answered or dropped). */
static void
session_waiter_clear(struct session *s)
{
	struct session_waiter *w = &s->w;
	size_t i;

	if (s->throttled)
		session_unthrottle(s);
	if (w->type == SESSION_WAIT_CREATE)
		spare_refill(s->srv);
	for (i = 0; i < w->n_expect; i++)
		free(w->expect[i]);
	free(w->expect);
	free(w->error_msg);
	free(w->command);
	memset(w, 0, sizeof *w);
	evtimer_del(&s->ev_timer);
	evtimer_del(&s->ev_quiet);
}

/*
 * Forget a waiter whose client went away. The command goes on; its output
 * stays in the capture for the session's next observation. A session being
 * created keeps its start-up deadline.
 */
static void
session_detach(struct req *r, void *arg)
{
	struct session *s = arg;

	if (s->w.req != r)
		return;
	s->w.req = NULL;
	free(r);
	if (s->w.type != SESSION_WAIT_CREATE)
		session_waiter_clear(s);
}

/* Make a request the session's waiter. */
static void
session_wait(struct session *s, enum session_wait type, struct req *r)
{
	s->w.type = type;
	s->w.req = r;
	if (r != NULL) {
		r->detach = session_detach;
		r->detach_arg = s;
	}
}

/* Turn the capture, up to upto, into an observation. */
static int
session_observe(struct session *s, size_t upto, size_t skip,
		Swerex__V1__BashObservation *obs)
{
	char *out;
	size_t len;
	uint64_t total;
	bool truncated;

	swerex__v1__bash_observation__init(obs);
	if (capture_take(&s->cap, upto, skip, &out, &len, &total, &truncated) < 0)
		return -ENOMEM;
	obs->output.data = (uint8_t *)out;
	obs->output.len = len;
	obs->truncated = truncated;
	obs->output_bytes = total;
	obs->carried_over = s->w.carried < total ? s->w.carried : total;
	return 0;
}

/* Set the exit code of an observation. */
static void
session_set_exit(Swerex__V1__BashObservation *obs, int code)
{
	obs->has_exit_code_case = SWEREX__V1__BASH_OBSERVATION__HAS_EXIT_CODE_EXIT_CODE;
	obs->exit_code = code;
}

/* Describe a wait status for people. */
static void
session_describe_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	else
		snprintf(buf, size, "status %d", status);
}

/* Answer the waiter with a plain observation. */
static void
session_answer(struct session *s, Swerex__V1__BashObservation *obs)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;

	resp.body_case = SWEREX__V1__RESPONSE__BODY_OBSERVATION;
	resp.observation = obs;
	conn_reply(s->w.req, &resp);
	s->w.req = NULL;
}

/*
 * Tell which of the session's limits ended what just completed: a cgroup
 * counter that grew since the run began (an OOM kill, a fork refused at
 * pids.max), or an exit code of 128 + SIGXCPU or SIGXFSZ while that rlimit
 * is set. code is bash's $? (or 128 + the signal that killed bash). A
 * process killed at the CPU hard limit (SIGKILL, 137) or failing at
 * RLIMIT_AS or RLIMIT_NPROC looks like any other failure: not reported.
 * Return the limit or -1.
 */
static int
session_limit_hit(struct session *s, int code)
{
	struct cgroup_counters now;

	if (s->cgroup != NULL) {
		cgroup_session_counters(s->cgroup, &now);
		if (s->lim[SESSION_LIM_MEMORY] > 0 &&
		    now.oom_kill > s->cg_start.oom_kill)
			return SESSION_LIM_MEMORY;
		if (s->lim[SESSION_LIM_PIDS] > 0 &&
		    now.pids_max > s->cg_start.pids_max)
			return SESSION_LIM_PIDS;
	}
	if (s->lim[SESSION_LIM_CPU] > 0 && code == 128 + SIGXCPU)
		return SESSION_LIM_CPU;
	if (s->lim[SESSION_LIM_FSIZE] > 0 && code == 128 + SIGXFSZ)
		return SESSION_LIM_FSIZE;
	return -1;
}

/* Say how a limit shows when it is hit. */
static const char *
session_limit_how(int lim)
{
	switch (lim) {
	case SESSION_LIM_CPU:
		return "a process used up its CPU seconds and was killed by "
		    "SIGXCPU";
	case SESSION_LIM_FSIZE:
		return "a process wrote past the file size limit and was killed "
		    "by SIGXFSZ";
	case SESSION_LIM_MEMORY:
		return "a process was killed by the OOM killer of the session's "
		    "cgroup (memory.max)";
	case SESSION_LIM_PIDS:
		return "a fork was refused at the session's pids.max";
	default:
		return "";
	}
}

/* Answer the waiter with LIMIT_EXCEEDED: the limit, its value, the output. */
static void
session_limit_fail(struct session *s, Swerex__V1__BashObservation *obs,
		   int status, int lim)
{
	struct session_waiter *w = &s->w;
	char code[16], value[32];
	const char *extra[7];

	snprintf(code, sizeof code, "%d", status);
	snprintf(value, sizeof value, "%llu", (unsigned long long)s->lim[lim]);
	extra[0] = "limit";
	extra[1] = session_limits[lim].name;
	extra[2] = "value";
	extra[3] = value;
	extra[4] = "exit_code";
	extra[5] = code;
	extra[6] = NULL;
	session_set_exit(obs, status);
	obs->failure_reason = "limit exceeded";
	conn_reply_error(w->req, SWEREX__V1__ERROR_KIND__LIMIT_EXCEEDED, obs,
	    extra, "Command '%.1000s' exceeded the session's %s limit "
	    "(%s = %s): %s; exit code %d.", w->command, session_limits[lim].name,
	    session_limits[lim].field, value, session_limit_how(lim), status);
}

/* Answer the waiter with the output up to upto and the way it ended. */
static void
session_complete(struct session *s, size_t upto, size_t skip, int status,
		 int kind, const char *expect)
{
	Swerex__V1__BashObservation obs;
	struct session_waiter *w = &s->w;
	char code[16];
	const char *extra[5];
	int lim;

	if (session_observe(s, upto, skip, &obs) < 0) {
		history_note(&s->hist, 0, "out of memory", expect == NULL,
		    expect == NULL, status);
		conn_reply_error(w->req, SWEREX__V1__ERROR_KIND__INTERNAL, NULL,
		    NULL, "out of memory");
		w->req = NULL;
		session_waiter_clear(s);
		return;
	}
	/* A run, or an interrupt's answer: both tell the open command's end. */
	history_note(&s->hist, obs.output_bytes - obs.carried_over,
	    expect != NULL ? NULL : kind == 2 && w->syntax_check ?
	    "syntax error" : w->killed ? "killed" : NULL, expect == NULL,
	    expect == NULL, status);
	if (expect != NULL) {
		/* A program is still running: there is no exit code yet. */
		obs.expect_string = (char *)expect;
		session_answer(s, &obs);
	} else if (kind == 2 && w->syntax_check) {
		extra[0] = "bash_stdout";
		extra[1] = "";
		extra[2] = "bash_stderr";
		extra[3] = (const char *)obs.output.data;
		extra[4] = NULL;
		session_set_exit(&obs, status);
		obs.failure_reason = "syntax error";
		conn_reply_error(w->req,
		    SWEREX__V1__ERROR_KIND__BASH_INCORRECT_SYNTAX, &obs, extra,
		    "Bash syntax error in command %.200s: %.*s", w->command,
		    (int)(obs.output.len > 1000 ? 1000 : obs.output.len),
		    (const char *)obs.output.data);
	} else if (w->type == SESSION_WAIT_RUN &&
	    (lim = session_limit_hit(s, status)) >= 0) {
		session_limit_fail(s, &obs, status, lim);
	} else if (w->type == SESSION_WAIT_RUN &&
	    w->check == SWEREX__V1__CHECK__CHECK_IGNORE) {
		session_answer(s, &obs);
	} else if (w->type == SESSION_WAIT_RUN &&
	    w->check == SWEREX__V1__CHECK__CHECK_RAISE && status != 0) {
		snprintf(code, sizeof code, "%d", status);
		extra[0] = "exit_code";
		extra[1] = code;
		extra[2] = NULL;
		session_set_exit(&obs, status);
		conn_reply_error(w->req,
		    SWEREX__V1__ERROR_KIND__NON_ZERO_EXIT_CODE, &obs, extra,
		    "%s%sCommand '%.1000s' failed with exit code %d.",
		    w->error_msg ? w->error_msg : "",
		    w->error_msg && *w->error_msg ? "\n" : "", w->command, status);
	} else {
		session_set_exit(&obs, status);
		if (w->killed)
			obs.failure_reason = "the foreground job did not stop on "
			    "SIGINT and was killed with SIGKILL";
		session_answer(s, &obs);
	}
	free(obs.output.data);
	w->req = NULL;
	session_waiter_clear(s);
}

/*
 * Name why a run ended without its exit code, for the history: the
 * observation's own failure reason if it has one, else the error's kind.
 */
static const char *
session_reason(Swerex__V1__ErrorKind kind, const char *given)
{
	const ProtobufCEnumValue *v;

	if (given != NULL && *given != '\0')
		return given;
	switch (kind) {
	case SWEREX__V1__ERROR_KIND__COMMAND_TIMEOUT:
		return "timeout";
	case SWEREX__V1__ERROR_KIND__INTERRUPTED:
		return "interrupted";
	case SWEREX__V1__ERROR_KIND__SESSION_DIED:
		return "session died";
	case SWEREX__V1__ERROR_KIND__NO_OUTPUT_TIMEOUT:
		return "no_output_timeout";
	case SWEREX__V1__ERROR_KIND__LIMIT_EXCEEDED:
		return "limit exceeded";
	default:
		v = protobuf_c_enum_descriptor_get_value(
		    &swerex__v1__error_kind__descriptor, kind);
		return v != NULL ? v->name : "error";
	}
}

/* Answer the waiter with an error and the output so far. */
static void
session_fail(struct session *s, Swerex__V1__ErrorKind kind,
	     const char *const *extra, const char *fmt, const char *arg)
{
	Swerex__V1__BashObservation obs;
	bool run = s->w.type == SESSION_WAIT_RUN ||
	    s->w.type == SESSION_WAIT_INTERRUPT;

	if (session_observe(s, s->cap.len, 0, &obs) < 0) {
		if (run)
			history_note(&s->hist, 0, session_reason(kind, NULL),
			    kind == SWEREX__V1__ERROR_KIND__SESSION_DIED, false, 0);
		conn_reply_error(s->w.req, kind, NULL, extra, fmt, arg);
	} else {
		if (kind == SWEREX__V1__ERROR_KIND__COMMAND_TIMEOUT)
			obs.failure_reason = "timeout";
		else if (kind == SWEREX__V1__ERROR_KIND__NO_OUTPUT_TIMEOUT)
			obs.failure_reason = "no_output_timeout";
		if (run)
			history_note(&s->hist, obs.output_bytes -
			    obs.carried_over, session_reason(kind,
			    obs.failure_reason),
			    kind == SWEREX__V1__ERROR_KIND__SESSION_DIED, false, 0);
		conn_reply_error(s->w.req, kind, &obs, extra, fmt, arg);
		free(obs.output.data);
	}
	s->w.req = NULL;
	session_waiter_clear(s);
}

/* Look for the waiter's expect strings in new output. */
static void
session_match(struct session *s)
{
	struct session_waiter *w = &s->w;
	size_t i, best_len = 0, longest = 0;
	ssize_t pos, best = -1;
	size_t idx = 0;

	for (i = 0; i < w->n_expect; i++) {
		size_t n = strlen(w->expect[i]);

		if (n > longest)
			longest = n;
		pos = capture_find(&s->cap, w->expect[i], n, w->scan);
		if (pos >= 0 && (best < 0 || pos < best)) {
			best = pos;
			best_len = n;
			idx = i;
		}
	}
	if (best >= 0) {
		char *e = w->expect[idx];

		w->expect[idx] = NULL;
		session_complete(s, (size_t)best, best_len, 0, 0, e);
		free(e);
		return;
	}
	/* A match may still end in bytes not yet read. */
	w->scan = s->cap.len > longest ? s->cap.len - longest + 1 : 0;
}

/* Read the pty again: the streaming peer caught up or went away. */
static void
session_unthrottle(void *arg)
{
	struct session *s = arg;

	s->throttled = false;
	if (s->fd >= 0 && !s->eof)
		event_add(&s->ev_read, NULL);
}

/* Receive clean output from the filter. */
static void
session_output_cb(void *arg, const char *p, size_t n)
{
	struct session *s = arg;

	if (capture_append(&s->cap, p, n) < 0) {
		log_error("session %s: out of memory for output", s->name);
		return;
	}
	if (s->w.req == NULL)
		return;
	/* Only a note of the time: the no-output timer is re-armed when it fires. */
	if (s->w.quiet > 0)
		clock_gettime(CLOCK_MONOTONIC_COARSE, &s->last_output);
	if (s->w.stream) {
		conn_chunk(s->w.req, SWEREX__V1__OUTPUT_STREAM__OUTPUT_STREAM_TERMINAL,
		    p, n);
		/* Backpressure: bash blocks on its terminal until the peer reads. */
		if (!s->throttled && conn_backlogged(s->w.req, session_unthrottle, s)) {
			s->throttled = true;
			event_del(&s->ev_read);
		}
	}
	if (s->w.n_expect > 0)
		session_match(s);
}

/* Receive raw terminal output (markers left out) for the attachments. */
static void
session_raw_cb(void *arg, const char *p, size_t n)
{
	struct session *s = arg;

	attach_output(&s->attach, p, n, s->srv->cfg.scrollback);
}

/* Send the setup script, sourced rc files and startup files included. */
static void session_send_setup(struct session *s, char **files, size_t n);

/* Handle a prompt marker: bash is ready for the next command. */
static int
session_marker_cb(void *arg, int status, int kind)
{
	struct session *s = arg;
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__CreateSessionResponse cr = SWEREX__V1__CREATE_SESSION_RESPONSE__INIT;
	Swerex__V1__BashObservation obs;

	s->busy = false;
	s->last_status = status;
	if (s->state == SESSION_STARTING) {
		if (s->start_stage++ == 0) {
			/* The first prompt, before the setup script ran. */
			session_bash_pid(s);
			return 0;
		}
		s->state = SESSION_IDLE;
		s->srv->stats.sessions_created++;
		if (s->w.req == NULL) {
			session_waiter_clear(s);
			return 0;
		}
		if (session_observe(s, s->cap.len, 0, &obs) < 0) {
			session_fail(s, SWEREX__V1__ERROR_KIND__INTERNAL, NULL,
			    "%s", "out of memory");
			return 0;
		}
		cr.output = obs.output;
		cr.session = s->name;
		resp.body_case = SWEREX__V1__RESPONSE__BODY_CREATE_SESSION;
		resp.create_session = &cr;
		conn_reply(s->w.req, &resp);
		free(obs.output.data);
		s->w.req = NULL;
		session_waiter_clear(s);
		log_debug("session %s: ready (pid %ld)", s->name, (long)s->pid);
		return 0;
	}
	if (s->w.type == SESSION_WAIT_INTERRUPT && s->w.req != NULL) {
		pid_t fg = tcgetpgrp(s->fd);

		/*
		 * The SIGINT caught bash in the instant before a job took the
		 * terminal: bash printed its prompt, yet the job runs on in the
		 * foreground. Not the end: the interrupt's timer signals it
		 * again, and bash prompts once more when it has gone.
		 */
		if (fg > 1 && fg != session_bash_pid(s)) {
			log_debug("session %s: prompt while job %ld holds the "
			    "terminal; interrupting on", s->name, (long)fg);
			s->busy = true;
			return 0;
		}
	}
	if (s->state == SESSION_RUNNING) {
		s->state = SESSION_IDLE;
		/* A later wait answers for it as its run would have. */
		s->unseen = s->w.req == NULL;
	}
	if (s->w.req != NULL)
		session_complete(s, s->cap.len, 0, status, kind, NULL);
	else
		/* Nobody waits (timed out, or the client went away): it ended. */
		history_note(&s->hist, 0, kind == 2 ? "syntax error" : NULL,
		    true, true, status);
	return 0;
}

/* Write queued input now; what the terminal does not take waits for EV_WRITE. */
static void
session_flush(struct session *s)
{
	if (evbuffer_write(s->wbuf, s->fd) < 0 && errno != EAGAIN &&
	    errno != EINTR) {
		/* bash has gone; the reaping path reports it. */
		evbuffer_drain(s->wbuf, evbuffer_get_length(s->wbuf));
	}
	if (evbuffer_get_length(s->wbuf) == 0)
		event_del(&s->ev_write);
	else
		event_add(&s->ev_write, NULL);
}

/* Queue bytes for bash's terminal. */
static void
session_write(struct session *s, const char *p, size_t n)
{
	evbuffer_add(s->wbuf, p, n);
}

/* Restore the terminal modes if a program left it raw or echoing. */
static void
session_reset_tty(struct session *s)
{
	struct termios t;

	if (tcgetattr(s->fd, &t) == 0 && (t.c_lflag != s->tio.c_lflag ||
	    t.c_iflag != s->tio.c_iflag || t.c_oflag != s->tio.c_oflag))
		tcsetattr(s->fd, TCSANOW, &s->tio);
}

/* Send a wrapped command: checked for syntax, then evaluated at top level. */
static void
session_send_command(struct session *s, const char *cmd, size_t len, bool check)
{
	static const char checked[] = "; __swx_chk && eval \"$__swx_c\"\n";
	static const char plain[] = "; eval \"$__swx_c\"\n";

	filter_encode(s->wbuf, cmd, len);
	if (check)
		evbuffer_add(s->wbuf, checked, sizeof checked - 1);
	else
		evbuffer_add(s->wbuf, plain, sizeof plain - 1);
	session_flush(s);
	s->busy = true;
}

/* Write queued input as the terminal accepts it. */
static void
session_write_cb(evutil_socket_t fd, short what, void *arg)
{
	session_flush(arg);
}

/* Read what bash's terminal printed; stop at EOF (all slave fds closed). */
static void
session_read_cb(evutil_socket_t fd, short what, void *arg)
{
	static char buf[SESSION_READ_SIZE];
	struct session *s = arg;
	ssize_t n;
	int i;

	for (i = 0; i < SESSION_READS_PER_EVENT; i++) {
		n = read(fd, buf, sizeof buf);
		if (n > 0) {
			filter_feed(&s->filter, buf, (size_t)n, session_output_cb,
			    session_marker_cb, s);
			if ((size_t)n < SESSION_READ_MORE || s->throttled)
				return;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* EIO: the last process holding the terminal has gone. */
		event_del(&s->ev_read);
		s->eof = true;
		return;
	}
}

/*
 * Read whatever the terminal already holds, so that a new request starts
 * after it: output printed before the request counts as carried over, and
 * a command that has just finished is seen as finished.
 */
static void
session_catch_up(struct session *s)
{
	static char buf[SESSION_READ_SIZE];
	ssize_t n;

	while (s->fd >= 0 && !s->eof && !s->throttled &&
	    (n = read(s->fd, buf, sizeof buf)) > 0)
		filter_feed(&s->filter, buf, (size_t)n, session_output_cb,
		    session_marker_cb, s);
}

/*
 * Learn bash's pid. Under swerexd-reaper bash is our grandchild; it leads
 * the session of its terminal, which the pty master names (TIOCGSID) once
 * bash has opened it. Return 0 while it is not known.
 */
static pid_t
session_bash_pid(struct session *s)
{
	pid_t sid = 0;	/* valgrind does not know TIOCGSID writes it */

	if (s->pid <= 0 && s->fd >= 0 && !s->reaped &&
	    ioctl(s->fd, TIOCGSID, &sid) == 0 && sid > 1)
		s->pid = sid;
	return s->pid;
}

/* Signal the job in the foreground of the session's terminal. */
static pid_t
session_signal_fg(struct session *s, int sig)
{
	pid_t fg = tcgetpgrp(s->fd);

	if (fg <= 0)
		fg = session_bash_pid(s);
	/* Never kill(-0): that is the daemon's own process group. */
	if (fg > 1)
		kill(-fg, sig);
	return fg;
}

/*
 * Whether bash itself holds the terminal while a command of ours runs: it
 * may not have read or parsed the whole command line yet. A SIGINT then
 * makes it drop what it parsed and run the rest of the line as a command
 * of its own (the previous command's eval again, or the tail of the text),
 * or, reaching it at its prompt before the line, answer the interrupt and
 * run the line after. Once a program of the command holds the terminal,
 * or bash has been at it for a while (a builtin loop), the line is done.
 */
static bool
session_bash_holds_tty(struct session *s)
{
	pid_t bash = session_bash_pid(s);

	return bash > 1 && tcgetpgrp(s->fd) == bash;
}

/*
 * Send an interrupt's first SIGINT once a program holds the terminal, or
 * after SESSION_INTR_DEFER_MAX ticks of bash holding it (see above).
 */
static void
session_intr_fire(struct session *s)
{
	struct session_waiter *w = &s->w;

	if (w->intr_defer > 0 && session_bash_holds_tty(s)) {
		w->intr_defer--;
		server_timer_add(&s->ev_timer, SESSION_INTR_DEFER_TICK);
		return;
	}
	w->intr_defer = 0;
	session_signal_fg(s, SIGINT);
	server_timer_add(&s->ev_timer, w->intr_timeout);
}

/*
 * Kill every process of the session now. swerexd-reaper does it on SIGTERM
 * and exits once its whole tree is gone; without it, sweep bash's session.
 */
static void
session_kill(struct session *s)
{
	if (s->reaped)
		return;
	if (s->reaper != s->pid)
		kill(s->reaper, SIGTERM);
	else
		proc_kill_tree(s->pid, SIGKILL);
}

/* Fire a session's timer: startup or command timeout, or interrupt retry. */
static void
session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct session_waiter *w = &s->w;
	char t[32];
	const char *extra[3] = { "timeout", t, NULL };

	/*
	 * What the terminal already holds may end the wait: a loop held up by
	 * other work sees the deadline in the same pass as the pty's readiness,
	 * and possibly first (epoll hands over a batch of fds at a time).
	 */
	session_catch_up(s);
	if (w->req == NULL && w->type != SESSION_WAIT_CREATE)
		return;
	switch (w->type) {
	case SESSION_WAIT_CREATE:
		/* Gone before the answer: the name is free when the client hears. */
		session_unname(s);
		s->closing = true;
		session_kill(s);
		session_fail(s, SWEREX__V1__ERROR_KIND__SESSION_START_FAILED, NULL,
		    "session '%.256s' did not start in time", s->name);
		break;
	case SESSION_WAIT_RUN:
		snprintf(t, sizeof t, "%g", w->intr_timeout);
		session_fail(s, SWEREX__V1__ERROR_KIND__COMMAND_TIMEOUT, extra,
		    "timeout after %s seconds while running command", t);
		break;
	case SESSION_WAIT_INTERRUPT:
		if (w->intr_defer > 0)
			session_intr_fire(s);
		else if (w->intr_left > 0) {
			w->intr_left--;
			session_signal_fg(s, SIGINT);
			server_timer_add(&s->ev_timer, w->intr_timeout);
		} else if (!w->killed && tcgetpgrp(s->fd) != session_bash_pid(s) &&
		    tcgetpgrp(s->fd) > 0) {
			w->killed = true;
			session_signal_fg(s, SIGCONT);
			session_signal_fg(s, SIGKILL);
			server_timer_add(&s->ev_timer, SESSION_KILL_WAIT);
		} else {
			snprintf(t, sizeof t, "%g", w->intr_timeout);
			session_fail(s, SWEREX__V1__ERROR_KIND__COMMAND_TIMEOUT, NULL,
			    "%s", "the shell did not return to its prompt after "
			    "the interrupt");
		}
		break;
	default:
		break;
	}
}

/* Seconds from a monotonic time to now. */
static double
session_since(const struct timespec *then)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	return (double)(now.tv_sec - then->tv_sec) +
	    (double)(now.tv_nsec - then->tv_nsec) / 1e9;
}

/*
 * Fire the no-output timer. Output does not re-arm it (that would cost a
 * timer operation per pty read); it only notes the time, and the timer, once
 * it fires, sleeps again for whatever is left since the last output. The
 * command keeps running: the client may wait again, type or interrupt.
 */
static void
session_quiet_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct session_waiter *w = &s->w;
	char t[32];
	const char *extra[3] = { "timeout", t, NULL };
	double left;

	session_catch_up(s);
	if (w->req == NULL || w->type != SESSION_WAIT_RUN || w->quiet <= 0)
		return;
	/* A throttled pty is not quiet: its reader is behind, not the program. */
	left = s->throttled ? w->quiet : w->quiet - session_since(&s->last_output);
	if (left > 0) {
		server_timer_add(&s->ev_quiet, left);
		return;
	}
	snprintf(t, sizeof t, "%g", w->quiet);
	session_fail(s, SWEREX__V1__ERROR_KIND__NO_OUTPUT_TIMEOUT, extra,
	    "no output for %s seconds; the command is still running (wait for "
	    "it, send it input or interrupt it)", t);
}

/* Send SIGKILL to whatever is left after the close grace period. */
static void
session_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_kill(s);
}

/* Make a random hex token. */
static int
session_token(char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[FILTER_TOKEN_LEN / 2];
	size_t i;

	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
		return -errno;
	for (i = 0; i < sizeof r; i++) {
		out[2 * i] = hex[r[i] >> 4];
		out[2 * i + 1] = hex[r[i] & 15];
	}
	out[FILTER_TOKEN_LEN] = '\0';
	return 0;
}

/* Whether environ entry e sets the variable named name. */
static bool
session_env_is(const char *e, const char *name)
{
	size_t n = strlen(name);

	return strncmp(e, name, n) == 0 && e[n] == '=';
}

/* Whether a clean environment keeps the daemon's entry e. */
static bool
session_env_clean(const char *e)
{
	static const char *const keep[] = { "PATH", "HOME", "USER", "LOGNAME",
	    "SHELL", "LANG", "TZ", NULL };
	size_t i;

	for (i = 0; keep[i] != NULL; i++)
		if (session_env_is(e, keep[i]))
			return true;
	return strncmp(e, "LC_", 3) == 0;
}

/* Whether the request's env sets the variable of environ entry e. */
static bool
session_env_given(const Swerex__V1__CreateSessionRequest *m, const char *e)
{
	size_t i;

	for (i = 0; i < m->n_env; i++)
		if (session_env_is(e, m->env[i]->key))
			return true;
	return false;
}

/* Free an environment from session_environ(). */
static void
session_environ_free(char **env)
{
	size_t i;

	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/* Add a copy of "name=value" to an environment being built. */
static int
session_environ_add(char **env, size_t *k, const char *name,
		    const char *value)
{
	if (asprintf(&env[*k], "%s=%s", name, value) < 0) {
		env[*k] = NULL;
		return -1;
	}
	(*k)++;
	return 0;
}

/*
 * Build bash's environment: a clean one (a few of the daemon's variables),
 * or the daemon's whole one with inherit_env; then the request's env; then
 * what the daemon sets itself: the marker prompt, the session's name and
 * TERM (unless the request names another).
 */
static char **
session_environ(const char *token, const char *name,
		const Swerex__V1__CreateSessionRequest *m)
{
	size_t n = 0, i, k = 0;
	bool path = false, term = false;
	char **env, *prompt = NULL;

	while (environ[n])
		n++;
	env = calloc(n + m->n_env + 6, sizeof *env);
	if (env == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *e = environ[i];

		if ((!m->inherit_env && !session_env_clean(e)) ||
		    session_env_is(e, "PS1") ||
		    session_env_is(e, "PROMPT_COMMAND") ||
		    session_env_is(e, "TERM") ||
		    session_env_is(e, "SWEREX_SESSION") ||
		    session_env_given(m, e))
			continue;
		path |= session_env_is(e, "PATH");
		if ((env[k] = strdup(e)) == NULL)
			goto fail;
		k++;
	}
	for (i = 0; i < m->n_env; i++) {
		path |= strcmp(m->env[i]->key, "PATH") == 0;
		term |= strcmp(m->env[i]->key, "TERM") == 0;
		if (session_environ_add(env, &k, m->env[i]->key,
		    m->env[i]->value) < 0)
			goto fail;
	}
	if (asprintf(&prompt, FILTER_PROMPT_COMMAND, token) < 0) {
		prompt = NULL;
		goto fail;
	}
	if ((!path && session_environ_add(env, &k, "PATH", SESSION_PATH) < 0) ||
	    session_environ_add(env, &k, "SWEREX_SESSION", name) < 0 ||
	    session_environ_add(env, &k, "PS1", "") < 0 ||
	    (!term && session_environ_add(env, &k, "TERM", "xterm") < 0) ||
	    session_environ_add(env, &k, "PROMPT_COMMAND", prompt) < 0)
		goto fail;
	free(prompt);
	return env;

fail:
	free(prompt);
	session_environ_free(env);
	return NULL;
}

/*
 * Put the options for the session's limits into the reaper's argv from
 * index k on: --rlimit NAME=SOFT:HARD for each rlimit (soft = hard, but for
 * CPU time the hard limit is one second above, so that SIGXCPU, which says
 * why, comes before the kernel's SIGKILL at the hard limit), --cgroup DIR.
 * Return the next index.
 */
static size_t
session_reaper_opts(struct session *s, char *cgroup, char **rargv, size_t k,
		    char (*rl)[64])
{
	unsigned long long soft, hard;
	struct rlimit cur;
	int i;

	for (i = 0; i < SESSION_LIM_RLIMITS; i++) {
		if (s->lim[i] == 0)
			continue;
		soft = hard = s->lim[i];
		if (i == SESSION_LIM_CPU)
			hard++;
		/* Unprivileged, the hard limit cannot rise above ours. */
		if (getrlimit(session_limits[i].resource, &cur) == 0 &&
		    cur.rlim_max != RLIM_INFINITY && hard > cur.rlim_max &&
		    geteuid() != 0)
			hard = soft > cur.rlim_max ? soft : cur.rlim_max;
		snprintf(rl[i], sizeof rl[i], "%s=%llu:%llu",
		    session_limits[i].reaper, soft, hard);
		rargv[k++] = "--rlimit";
		rargv[k++] = rl[i];
	}
	if (cgroup != NULL) {
		rargv[k++] = "--cgroup";
		rargv[k++] = cgroup;
	}
	return k;
}

/*
 * Start bash on a new pty: its own session, the pty as its terminal, and
 * swerexd-reaper as its parent when there is one (bash then opens the
 * terminal itself; we learn its pid from the terminal).
 */
static int
session_spawn(struct session *s, const Swerex__V1__CreateSessionRequest *m,
	      char *cgroup, bool *at_pty)
{
	static char *argv[] = { "bash", "--norc", "--noprofile", "--noediting",
	    "-i", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct winsize ws = {
		.ws_row = m->rows > 0 ? m->rows : SESSION_ROWS,
		.ws_col = m->cols > 0 ? m->cols : SESSION_COLS,
	};
	char slave[128], token[FILTER_TOKEN_LEN + 1], ppid[24], **env;
	char rl[SESSION_LIM_RLIMITS][64];
	char *rargv[3 + 2 * SESSION_LIM_RLIMITS + 2 + sizeof argv / sizeof argv[0]];
	size_t k;
	int fd, r;

	*at_pty = true;
	fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (grantpt(fd) < 0 || unlockpt(fd) < 0 ||
	    ptsname_r(fd, slave, sizeof slave) != 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*at_pty = false;
	/* On Linux the master's termios calls act on the slave's settings. */
	tcgetattr(fd, &s->tio);
	s->tio.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL | ECHOCTL | ECHOKE);
	s->tio.c_iflag |= IUTF8;
	tcsetattr(fd, TCSANOW, &s->tio);
	ioctl(fd, TIOCSWINSZ, &ws);

	memcpy(token, s->filter.prefix + 4, FILTER_TOKEN_LEN);
	token[FILTER_TOKEN_LEN] = '\0';
	env = session_environ(token, s->name, m);
	if (env == NULL) {
		close(fd);
		return -ENOMEM;
	}

	proc_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	/* Checked by session_create(); bash inherits it from swerexd-reaper. */
	if (*m->cwd != '\0')
		posix_spawn_file_actions_addchdir_np(&fa, m->cwd);
	if (s->srv->reaper != NULL) {
		/* It keeps our stdio (for its diagnostics) and nothing else. */
		snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
		rargv[0] = REAPER_NAME;
		k = session_reaper_opts(s, cgroup, rargv, 1, rl);
		rargv[k++] = ppid;
		rargv[k++] = slave;
		memcpy(rargv + k, argv, sizeof argv);
		posix_spawn_file_actions_addclosefrom_np(&fa, 3);
		r = 0;
		/* The spare runs in the daemon's directory: not for a cwd. */
		s->reaper = *m->cwd == '\0' ?
		    spare_take(s->srv, rargv + 1, env) : 0;
		if (s->reaper == 0)
			r = posix_spawn(&s->reaper, s->srv->reaper, &fa, &attr,
			    rargv, env);
		s->pid = 0;
	} else {
		/* Opened after setsid and without O_NOCTTY: bash's terminal. */
		posix_spawn_file_actions_addopen(&fa, 0, slave, O_RDWR, 0);
		posix_spawn_file_actions_adddup2(&fa, 0, 1);
		posix_spawn_file_actions_adddup2(&fa, 0, 2);
		posix_spawn_file_actions_addclosefrom_np(&fa, 3);
		r = posix_spawnp(&s->pid, "bash", &fa, &attr, argv, env);
		s->reaper = s->pid;
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	session_environ_free(env);
	if (r != 0) {
		close(fd);
		return -r;
	}
	evutil_make_socket_nonblocking(fd);
	s->fd = fd;
	return 0;
}

/* Allocate a session and start its bash; it takes cgroup if it starts. */
static struct session *
session_new(struct server *srv, const Swerex__V1__CreateSessionRequest *m,
	    const char *name, const uint64_t *lim, char *cgroup, int *err,
	    bool *at_pty)
{
	struct session *s;
	char token[FILTER_TOKEN_LEN + 1];
	struct timespec now;
	int r;

	s = calloc(1, sizeof *s);
	if (s == NULL || (s->name = strdup(name)) == NULL ||
	    (s->wbuf = evbuffer_new()) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	s->srv = srv;
	s->fd = -1;
	history_init(&s->hist, srv->cfg.history);
	if ((r = session_token(token)) < 0)
		goto fail;
	filter_init(&s->filter, token);
	s->filter.raw = session_raw_cb;
	capture_init(&s->cap, srv->cfg.max_output);
	memcpy(s->lim, lim, sizeof s->lim);
	if ((r = session_spawn(s, m, cgroup, at_pty)) < 0)
		goto fail;
	/* The cgroup is the session's from here on. */
	s->cgroup = cgroup;
	clock_gettime(CLOCK_REALTIME, &now);
	s->created = (double)now.tv_sec + now.tv_nsec / 1e9;
	event_assign(&s->ev_read, srv->base, s->fd, EV_READ | EV_PERSIST,
	    session_read_cb, s);
	event_assign(&s->ev_write, srv->base, s->fd, EV_WRITE | EV_PERSIST,
	    session_write_cb, s);
	evtimer_assign(&s->ev_timer, srv->base, session_timer_cb, s);
	evtimer_assign(&s->ev_kill, srv->base, session_kill_cb, s);
	evtimer_assign(&s->ev_quiet, srv->base, session_quiet_cb, s);
	event_add(&s->ev_read, NULL);
	return s;

fail:
	if (s != NULL) {
		if (s->wbuf)
			evbuffer_free(s->wbuf);
		free(s->name);
		free(s);
	}
	*err = r;
	return NULL;
}

/* Read a number from a /proc file, or -1. */
static long long
session_proc_number(const char *path)
{
	long long v = -1;
	FILE *f = fopen(path, "re");

	if (f != NULL) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/*
 * Answer a session that could not start. Running out of a system limit is
 * RESOURCE_EXHAUSTED naming the limit (extra "limit": pty, nofile,
 * file-max, nproc or memory) with its value, so that a harness starting a
 * thousand sessions learns what to raise instead of a bare errno.
 */
static void
session_start_error(struct req *r, int err, bool at_pty)
{
	const char *extra[] = { "limit", NULL, "errno", NULL, NULL };
	struct rlimit rl;
	char why[256];

	extra[3] = strerrorname_np(err) ? strerrorname_np(err) : "unknown";
	if (at_pty && (err == ENOSPC || err == EAGAIN || err == EIO)) {
		long long nr = session_proc_number("/proc/sys/kernel/pty/nr");
		long long max = session_proc_number("/proc/sys/kernel/pty/max");

		extra[1] = "pty";
		if (nr >= 0 && max >= 0 && nr < max)
			/* The kernel has ptys left: a devpts mount's max= is full. */
			snprintf(why, sizeof why, "no pty left in this devpts "
			    "mount (its max= option; %lld of "
			    "/proc/sys/kernel/pty/max = %lld in use system-wide)",
			    nr, max);
		else
			snprintf(why, sizeof why, "no pty left: %lld of "
			    "/proc/sys/kernel/pty/max = %lld in use", nr, max);
	} else if (err == EMFILE) {
		extra[1] = "nofile";
		getrlimit(RLIMIT_NOFILE, &rl);
		snprintf(why, sizeof why, "swerexd is out of file descriptors "
		    "(RLIMIT_NOFILE %llu; each session holds one pty)",
		    (unsigned long long)rl.rlim_cur);
	} else if (err == ENFILE) {
		extra[1] = "file-max";
		snprintf(why, sizeof why, "the system's file table is full "
		    "(/proc/sys/fs/file-max = %lld)",
		    session_proc_number("/proc/sys/fs/file-max"));
	} else if (!at_pty && err == EAGAIN) {
		extra[1] = "nproc";
		getrlimit(RLIMIT_NPROC, &rl);
		snprintf(why, sizeof why, "cannot create a process (RLIMIT_NPROC "
		    "%llu, /proc/sys/kernel/pid_max %lld, or a pids cgroup "
		    "limit)", (unsigned long long)rl.rlim_cur,
		    session_proc_number("/proc/sys/kernel/pid_max"));
	} else if (err == ENOMEM) {
		extra[1] = "memory";
		snprintf(why, sizeof why, "out of memory");
	} else {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__SESSION_START_FAILED,
		    NULL, extra + 2, "cannot start bash: %s%s", at_pty ?
		    "cannot open a pty: " : "", strerror(err));
		return;
	}
	log_warn("cannot start a session: %s", why);
	conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED, NULL,
	    extra, "cannot start bash: %s", why);
}

/* Append a shell-quoted word. */
static void
session_quote(struct evbuffer *b, const char *w)
{
	evbuffer_add(b, "'", 1);
	for (; *w; w++) {
		if (*w == '\'')
			evbuffer_add(b, "'\\''", 4);
		else
			evbuffer_add(b, w, 1);
	}
	evbuffer_add(b, "'", 1);
}

static void
session_send_setup(struct session *s, char **files, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	size_t i, len;
	char *script;

	if (b == NULL)
		return;
	evbuffer_add_printf(b, "export -n PS1 PROMPT_COMMAND SWEREX_SESSION\n%s"
	    "[ -r /etc/bash.bashrc ] && . /etc/bash.bashrc\n"
	    "[ -r ~/.bashrc ] && . ~/.bashrc\n", session_check_fn);
	for (i = 0; i < n; i++) {
		evbuffer_add(b, ". ", 2);
		session_quote(b, files[i]);
		evbuffer_add(b, "\n", 1);
	}
	/*
	 * A write of bash's own (echo > file) past the file size limit would
	 * kill bash with SIGXFSZ, and the session with it: bash catches it and
	 * the write fails with EFBIG instead. Programs it starts get the
	 * default action back at exec and are killed as usual.
	 */
	if (s->lim[SESSION_LIM_FSIZE] > 0)
		evbuffer_add_printf(b, "trap : XFSZ\n");
	evbuffer_add_printf(b, "unset PS0; PS1=; PS2=; "
	    "set +o history +o vi +o emacs +H; __swx_k=0; "
	    "PROMPT_COMMAND='" FILTER_PROMPT_COMMAND "'", s->filter.prefix + 4);
	len = evbuffer_get_length(b);
	script = (char *)evbuffer_pullup(b, -1);
	session_send_command(s, script, len, false);
	evbuffer_free(b);
}

/* Check an environment variable name from a request; NULL if usable. */
static const char *
session_bad_env_name(const char *name)
{
	const char *p;

	if (strcmp(name, "PS1") == 0 || strcmp(name, "PROMPT_COMMAND") == 0 ||
	    strcmp(name, "SWEREX_SESSION") == 0)
		return "is set by swerexd itself (it finds the end of each "
		    "command by its prompt)";
	if (!(*name == '_' || (*name >= 'A' && *name <= 'Z') ||
	    (*name >= 'a' && *name <= 'z')))
		return "is not a shell variable name";
	for (p = name + 1; *p; p++)
		if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return "is not a shell variable name";
	return NULL;
}

/*
 * Check a new session's terminal size, environment and directory before
 * anything is spawned; answer the request and return false if one is bad.
 */
static bool
session_options_ok(struct req *r, const Swerex__V1__CreateSessionRequest *m)
{
	const char *bad;
	struct stat st;
	size_t i;

	if (m->rows > SESSION_SIZE_MAX || m->cols > SESSION_SIZE_MAX) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "terminal size %ux%u: rows and cols must be 1 to %d "
		    "(0: the default, %dx%d)", m->rows, m->cols,
		    SESSION_SIZE_MAX, SESSION_ROWS, SESSION_COLS);
		return false;
	}
	for (i = 0; i < m->n_env; i++)
		if ((bad = session_bad_env_name(m->env[i]->key)) != NULL) {
			conn_reply_error(r,
			    SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL, NULL,
			    "env: '%.200s' %s", m->env[i]->key, bad);
			return false;
		}
	if (*m->cwd != '\0') {
		if (stat(m->cwd, &st) < 0) {
			conn_reply_errno(r, errno, m->cwd, "cwd");
			return false;
		}
		if (!S_ISDIR(st.st_mode)) {
			conn_reply_errno(r, ENOTDIR, m->cwd, "cwd");
			return false;
		}
	}
	return true;
}

/* Copy SessionLimits into lim[] (0 where absent) and note which are set. */
static void
session_limits_copy(const Swerex__V1__SessionLimits *m, uint64_t *lim,
		    bool *set)
{
	memset(lim, 0, SESSION_LIM_N * sizeof *lim);
	memset(set, 0, SESSION_LIM_N * sizeof *set);
	if (m == NULL)
		return;
	/* Unset is 0 and a set case is the field number. */
	set[SESSION_LIM_CPU] = m->has_cpu_seconds_case != 0;
	set[SESSION_LIM_AS] = m->has_address_space_case != 0;
	set[SESSION_LIM_NPROC] = m->has_nproc_case != 0;
	set[SESSION_LIM_FSIZE] = m->has_file_size_case != 0;
	set[SESSION_LIM_MEMORY] = m->has_memory_case != 0;
	set[SESSION_LIM_PIDS] = m->has_pids_case != 0;
	lim[SESSION_LIM_CPU] = set[SESSION_LIM_CPU] ? m->cpu_seconds : 0;
	lim[SESSION_LIM_AS] = set[SESSION_LIM_AS] ? m->address_space : 0;
	lim[SESSION_LIM_NPROC] = set[SESSION_LIM_NPROC] ? m->nproc : 0;
	lim[SESSION_LIM_FSIZE] = set[SESSION_LIM_FSIZE] ? m->file_size : 0;
	lim[SESSION_LIM_MEMORY] = set[SESSION_LIM_MEMORY] ? m->memory : 0;
	lim[SESSION_LIM_PIDS] = set[SESSION_LIM_PIDS] ? m->pids : 0;
}

/*
 * Check a session's limits and whether they can be applied, answering the
 * request if not. A limit of 0 is refused rather than taken as "none" (a
 * session that may not use any CPU, file or process could not even start
 * its shell); absent means none. Return true if refused.
 */
static bool
session_limits_refuse(struct server *srv, struct req *r,
		      const Swerex__V1__SessionLimits *m, uint64_t *lim)
{
	const char *extra[3] = { "limit", NULL, NULL };
	bool set[SESSION_LIM_N];
	int i;

	session_limits_copy(m, lim, set);
	for (i = 0; i < SESSION_LIM_N; i++) {
		extra[1] = session_limits[i].name;
		if ((set[i] && lim[i] == 0) || lim[i] > SESSION_LIMIT_MAX) {
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
			    NULL, extra, "limits.%s must be from 1 to 2^62 (leave "
			    "it out for no limit)", session_limits[i].field);
			return true;
		}
		if (lim[i] == 0)
			continue;
		if (srv->reaper == NULL) {
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
			    NULL, extra, "cannot apply limits.%s: session limits "
			    "need swerexd-reaper, which was not found",
			    session_limits[i].field);
			return true;
		}
		if (i >= SESSION_LIM_RLIMITS && srv->cgroup == NULL) {
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
			    NULL, extra, "cannot apply limits.%s: it needs a "
			    "delegated cgroup v2 subtree, and there is none: %s",
			    session_limits[i].field, srv->cgroup_why);
			return true;
		}
	}
	return false;
}

/* Handle CreateSessionRequest. */
void
session_create(struct server *srv, struct req *r,
	       const Swerex__V1__CreateSessionRequest *m)
{
	const char *name = session_name(m->session), *bad;
	double timeout = SESSION_STARTUP_TIMEOUT;
	uint64_t lim[SESSION_LIM_N];
	struct session *s;
	char *cgroup = NULL;
	size_t i;
	bool at_pty = false;
	int err = 0;

	if ((bad = session_bad_name(name)) != NULL) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "%s", bad);
		return;
	}
	if (m->has_startup_timeout_case ==
	    SWEREX__V1__CREATE_SESSION_REQUEST__HAS_STARTUP_TIMEOUT_STARTUP_TIMEOUT) {
		if (!session_timeout_ok(m->startup_timeout)) {
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
			    NULL, NULL, "startup_timeout must be a number >= 0");
			return;
		}
		timeout = m->startup_timeout;
	}
	if (!session_options_ok(r, m))
		return;
	if (session_find(srv, name) != NULL) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__SESSION_EXISTS, NULL,
		    NULL, "session '%s' already exists", name);
		return;
	}
	if (srv->n_sessions >= srv->cfg.max_sessions) {
		static const char *const extra[] = { "limit", "max-sessions",
		    NULL };

		conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
		    NULL, extra, "too many sessions (--max-sessions %zu)",
		    srv->cfg.max_sessions);
		return;
	}
	for (i = 0; i < m->n_startup_source; i++) {
		if (access(m->startup_source[i], R_OK) < 0) {
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
			    NULL, NULL, "startup_source %.1000s: %s",
			    m->startup_source[i], strerror(errno));
			return;
		}
	}
	if (session_limits_refuse(srv, r, m->limits, lim))
		return;
	if (lim[SESSION_LIM_MEMORY] > 0 || lim[SESSION_LIM_PIDS] > 0) {
		static const char *const extra[] = { "limit", "cgroup", NULL };

		/* One more for the reaper, which is in the cgroup too. */
		err = cgroup_session_create(srv, lim[SESSION_LIM_MEMORY],
		    lim[SESSION_LIM_PIDS] > 0 ? lim[SESSION_LIM_PIDS] + 1 : 0,
		    &cgroup);
		if (err < 0) {
			conn_reply_error(r,
			    SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED, NULL, extra,
			    "cannot make the session's cgroup under %s: %s",
			    srv->cgroup, strerror(-err));
			return;
		}
	}
	s = session_new(srv, m, name, lim, cgroup, &err, &at_pty);
	if (s == NULL) {
		if (cgroup != NULL) {
			cgroup_session_remove(cgroup);
			free(cgroup);
		}
		session_start_error(r, -err, at_pty);
		return;
	}
	s->hnext = srv->buckets[session_hash(name)];
	srv->buckets[session_hash(name)] = s;
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	s->named = true;
	srv->n_sessions++;
	s->state = SESSION_STARTING;
	session_wait(s, SESSION_WAIT_CREATE, r);
	session_send_setup(s, m->startup_source, m->n_startup_source);
	server_timer_add(&s->ev_timer, timeout);
	log_debug("session %s: started pid %ld", name, (long)s->reaper);
}

/* Refuse a request on a session that cannot take it; return true if refused. */
static bool
session_refuse(struct session *s, struct req *r)
{
	char st[64];
	const char *extra[3] = { "exit_status", st, NULL };

	if (s->state == SESSION_DEAD) {
		session_describe_status(s->wait_status, st, sizeof st);
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__SESSION_DIED, NULL,
		    extra, "session '%.256s' has died: bash %s", s->name, st);
		return true;
	}
	if (s->state == SESSION_STARTING) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__SESSION_BUSY, NULL,
		    NULL, "session '%.256s' is still starting", s->name);
		return true;
	}
	return false;
}

/* Copy the expect strings of a request into the waiter. */
static int
session_set_expect(struct session_waiter *w, char **expect, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	w->expect = calloc(n, sizeof *w->expect);
	if (w->expect == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (*expect[i] == '\0')
			continue;
		if ((w->expect[w->n_expect] = strdup(expect[i])) == NULL)
			return -ENOMEM;
		w->n_expect++;
	}
	return 0;
}

/*
 * Answer a wait on a session at its prompt at once: with what it printed
 * since the last observation and its last exit status, treated as the run
 * would have been if that command ended with no request waiting for it.
 */
static void
session_wait_idle(struct session *s)
{
	Swerex__V1__BashObservation obs;

	if (s->unseen) {
		s->unseen = false;
		session_complete(s, s->cap.len, 0, s->last_status, 0, NULL);
		return;
	}
	if (session_observe(s, s->cap.len, 0, &obs) < 0) {
		session_fail(s, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, "%s",
		    "out of memory");
		return;
	}
	session_set_exit(&obs, s->last_status);
	session_answer(s, &obs);
	free(obs.output.data);
	session_waiter_clear(s);
}

/* Handle BashAction: a command, input for the program that is running, or a wait. */
void
session_run(struct server *srv, struct req *r, const Swerex__V1__BashAction *m)
{
	bool interactive = m->is_interactive_command || m->is_interactive_quit;
	struct session_waiter *w;
	struct session *s;
	size_t len = strlen(m->command);

	if (m->has_timeout_case == SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT &&
	    !session_timeout_ok(m->timeout)) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "timeout must be a number >= 0");
		return;
	}
	if (m->has_no_output_timeout_case ==
	    SWEREX__V1__BASH_ACTION__HAS_NO_OUTPUT_TIMEOUT_NO_OUTPUT_TIMEOUT &&
	    !(isfinite(m->no_output_timeout) && m->no_output_timeout > 0)) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "no_output_timeout must be a number > 0");
		return;
	}
	if (m->wait && (interactive || len > 0)) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "wait sends no command: leave command empty and "
		    "is_interactive_command unset");
		return;
	}
	if ((s = session_lookup(srv, r, m->session)) == NULL || session_refuse(s, r))
		return;
	session_catch_up(s);
	if (s->w.req != NULL || (s->busy && !interactive && !m->wait)) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__SESSION_BUSY, NULL, NULL,
		    "session '%.256s' is running a command; wait for it, send "
		    "input with is_interactive_command or interrupt it", s->name);
		return;
	}
	w = &s->w;
	w->check = m->check;
	w->stream = m->stream;
	w->quit = m->is_interactive_quit;
	w->carried = s->cap.total;
	w->scan = 0;
	if ((m->error_msg && (w->error_msg = strdup(m->error_msg)) == NULL) ||
	    (w->command = strndup(m->wait && s->last_command ? s->last_command :
	    m->command, 4096)) == NULL ||
	    (!w->quit && session_set_expect(w, m->expect, m->n_expect) < 0)) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, NULL,
		    "out of memory");
		session_waiter_clear(s);
		return;
	}
	session_wait(s, SESSION_WAIT_RUN, r);
	/* What a limit hit during this run adds to the counters shows it. */
	if (s->cgroup != NULL)
		cgroup_session_counters(s->cgroup, &s->cg_start);
	capture_set_limit(&s->cap,
	    m->has_max_output_case == SWEREX__V1__BASH_ACTION__HAS_MAX_OUTPUT_MAX_OUTPUT &&
	    m->max_output > 0 ? m->max_output : srv->cfg.max_output);
	if (m->wait && !s->busy) {
		session_wait_idle(s);
		return;
	}
	if (m->has_timeout_case == SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT) {
		w->intr_timeout = m->timeout;
		server_timer_add(&s->ev_timer, m->timeout);
	}
	if (m->has_no_output_timeout_case ==
	    SWEREX__V1__BASH_ACTION__HAS_NO_OUTPUT_TIMEOUT_NO_OUTPUT_TIMEOUT) {
		w->quiet = m->no_output_timeout;
		clock_gettime(CLOCK_MONOTONIC_COARSE, &s->last_output);
		server_timer_add(&s->ev_quiet, w->quiet);
	}
	if (m->wait) {
		/* The command runs on; its prompt or output ends the wait. */
	} else if (interactive) {
		/* Typed at bash's own prompt, input is a command all the same. */
		if (!s->busy)
			history_begin(&s->hist, m->command, len);
		/* Input as typed: the program running sees it on its terminal. */
		session_write(s, m->command, len);
		session_write(s, "\n", 1);
		session_flush(s);
	} else {
		free(s->last_command);
		s->last_command = strndup(m->command, 4096);
		s->unseen = false;
		session_reset_tty(s);
		w->syntax_check = true;
		history_begin(&s->hist, m->command, len);
		session_send_command(s, m->command, len, true);
		s->state = SESSION_RUNNING;
	}
	/* Output that is already there may hold what is expected. */
	if (w->n_expect > 0 && s->cap.len > 0)
		session_match(s);
}

/* Handle BashInterruptAction: SIGINT the foreground job, then SIGKILL it. */
void
session_interrupt(struct server *srv, struct req *r,
		  const Swerex__V1__BashInterruptAction *m)
{
	struct session_waiter *w;
	struct session *s;
	Swerex__V1__BashObservation obs;
	double timeout = SESSION_INTR_TIMEOUT;
	unsigned n_retry = SESSION_INTR_RETRY;

	if (m->has_timeout_case ==
	    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_TIMEOUT_TIMEOUT) {
		if (!session_timeout_ok(m->timeout)) {
			conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
			    NULL, NULL, "timeout must be a number >= 0");
			return;
		}
		timeout = m->timeout;
	}
	if (m->has_n_retry_case ==
	    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_N_RETRY_N_RETRY)
		n_retry = m->n_retry > 100 ? 100 : m->n_retry;
	if ((s = session_lookup(srv, r, m->session)) == NULL || session_refuse(s, r))
		return;
	session_catch_up(s);
	w = &s->w;
	if (w->req != NULL)
		session_fail(s, SWEREX__V1__ERROR_KIND__INTERRUPTED, NULL,
		    "%s", "interrupted: the session received an interrupt "
		    "request; the rest of the output goes to it");
	session_wait(s, SESSION_WAIT_INTERRUPT, r);
	w->carried = s->cap.total;
	if (!s->busy) {
		/* Nothing runs: answer with what is there and the last status. */
		s->unseen = false;
		if (session_observe(s, s->cap.len, 0, &obs) == 0) {
			session_set_exit(&obs, s->last_status);
			session_answer(s, &obs);
			free(obs.output.data);
		} else
			session_fail(s, SWEREX__V1__ERROR_KIND__INTERNAL, NULL,
			    "%s", "out of memory");
		session_waiter_clear(s);
		return;
	}
	if (session_set_expect(w, m->expect, m->n_expect) < 0) {
		session_fail(s, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, "%s",
		    "out of memory");
		return;
	}
	w->intr_timeout = timeout;
	w->intr_left = n_retry > 0 ? n_retry - 1 : 0;
	w->intr_defer = SESSION_INTR_DEFER_MAX;
	session_intr_fire(s);
}

/*
 * Handle ResizeRequest: set the terminal's size. The kernel sends SIGWINCH
 * to the terminal's foreground process group when the size changes, so a
 * running program learns of it as in a terminal emulator.
 */
void
session_resize(struct server *srv, struct req *r,
	       const Swerex__V1__ResizeRequest *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__ResizeResponse rr = SWEREX__V1__RESIZE_RESPONSE__INIT;
	struct winsize ws = { .ws_row = m->rows, .ws_col = m->cols };
	struct session *s;

	if (m->rows < 1 || m->rows > SESSION_SIZE_MAX || m->cols < 1 ||
	    m->cols > SESSION_SIZE_MAX) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "terminal size %ux%u: rows and cols must be 1 to %d",
		    m->rows, m->cols, SESSION_SIZE_MAX);
		return;
	}
	if ((s = session_lookup(srv, r, m->session)) == NULL || session_refuse(s, r))
		return;
	if (ioctl(s->fd, TIOCSWINSZ, &ws) < 0) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, NULL,
		    "cannot resize the terminal of session '%.256s': %s",
		    s->name, strerror(errno));
		return;
	}
	resp.body_case = SWEREX__V1__RESPONSE__BODY_RESIZE;
	resp.resize = &rr;
	conn_reply(r, &resp);
}

/* Handle CloseSessionRequest: SIGHUP now, SIGKILL after the grace period. */
void
session_close(struct server *srv, struct req *r, const char *raw)
{
	struct session *s;

	if ((s = session_lookup(srv, r, raw)) == NULL)
		return;
	session_unname(s);
	s->closing = true;
	if (s->w.req != NULL)
		session_fail(s, SWEREX__V1__ERROR_KIND__SESSION_DIED, NULL,
		    "session '%.256s' was closed", s->name);
	s->close_req = r;
	if (s->state == SESSION_DEAD) {
		session_free(s);
		return;
	}
	session_signal_fg(s, SIGHUP);
	session_signal_fg(s, SIGCONT);
	if (session_bash_pid(s) > 1)
		kill(-s->pid, SIGHUP);
	else
		session_kill(s); /* bash is not even on its terminal yet */
	server_timer_add(&s->ev_kill, srv->cfg.kill_grace);
}

/* Answer whoever waits on a dead session and free it if it was closed. */
static void
session_dead(struct session *s)
{
	char st[64], msg[400];
	const char *extra[5] = { "exit_status", st, NULL, NULL, NULL };
	bool starting = s->state == SESSION_STARTING;
	int lim;

	s->state = SESSION_DEAD;
	session_describe_status(s->wait_status, st, sizeof st);
	/* bash itself may be what the limit killed (the reaper died alike). */
	lim = session_limit_hit(s, WIFSIGNALED(s->wait_status) ?
	    128 + WTERMSIG(s->wait_status) : -1);
	if (lim >= 0) {
		extra[2] = "limit";
		extra[3] = session_limits[lim].name;
	}
	log_debug("session %s: bash %s", s->name, st);
	/*
	 * Jobs left behind die with their shell: swerexd-reaper has killed
	 * them before it exited; without it, or if it was killed itself,
	 * sweep bash's session.
	 */
	if (s->reaper == s->pid || (WIFSIGNALED(s->wait_status) &&
	    WTERMSIG(s->wait_status) == SIGKILL))
		proc_kill_tree(s->pid, SIGKILL);
	event_del(&s->ev_read);
	event_del(&s->ev_write);
	evtimer_del(&s->ev_kill);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->w.req != NULL) {
		if (starting)
			session_fail(s, SWEREX__V1__ERROR_KIND__SESSION_START_FAILED,
			    extra, "bash of session '%.256s' exited during start-up",
			    s->name);
		else {
			if (lim >= 0)
				snprintf(msg, sizeof msg, "session '%.256s' has "
				    "died: bash itself exceeded the session's %s "
				    "limit (%s = %llu)", s->name,
				    session_limits[lim].name,
				    session_limits[lim].field,
				    (unsigned long long)s->lim[lim]);
			else
				snprintf(msg, sizeof msg, "session '%.256s' has "
				    "died", s->name);
			session_fail(s, SWEREX__V1__ERROR_KIND__SESSION_DIED, extra,
			    "%s", msg);
		}
	}
	/* A command nobody waited for ends with its shell. */
	history_note(&s->hist, 0, "session died", true, false, 0);
	attach_end(&s->attach, "session ended");
	if (starting)
		session_unname(s);
	if (!s->named)
		session_free(s);
}

/* Take note that bash was reaped; return false if pid is not a session's. */
bool
session_reaped(struct server *srv, pid_t pid, int status)
{
	static char buf[SESSION_READ_SIZE];
	struct session *s = NULL, *t;
	ssize_t n;

	TAILQ_FOREACH(t, &srv->sessions, entry)
		if (t->reaper == pid && !t->reaped) {
			s = t;
			break;
		}
	if (s == NULL)
		TAILQ_FOREACH(t, &srv->closing, entry)
			if (t->reaper == pid && !t->reaped) {
				s = t;
				break;
			}
	if (s == NULL)
		return false;
	s->reaped = true;
	s->wait_status = status;
	/* Collect what bash printed before it went. */
	while (!s->eof && s->fd >= 0 &&
	    (n = read(s->fd, buf, sizeof buf)) > 0)
		filter_feed(&s->filter, buf, (size_t)n, session_output_cb,
		    session_marker_cb, s);
	filter_flush(&s->filter, session_output_cb, s);
	session_dead(s);
	server_check_stopped(srv);
	return true;
}

/* Release a session that nothing refers to any more. */
static void
session_free(struct session *s)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__CloseSessionResponse cr = SWEREX__V1__CLOSE_SESSION_RESPONSE__INIT;

	if (s->close_req != NULL) {
		resp.body_case = SWEREX__V1__RESPONSE__BODY_CLOSE_SESSION;
		resp.close_session = &cr;
		conn_reply(s->close_req, &resp);
	}
	if (s->w.req != NULL)
		session_fail(s, SWEREX__V1__ERROR_KIND__SESSION_DIED, NULL,
		    "session '%.256s' was closed", s->name);
	if (s->named)
		session_unname(s);
	TAILQ_REMOVE(&s->srv->closing, s, entry);
	event_del(&s->ev_read);
	event_del(&s->ev_write);
	evtimer_del(&s->ev_timer);
	evtimer_del(&s->ev_kill);
	if (s->fd >= 0)
		close(s->fd);
	session_waiter_clear(s);
	attach_end(&s->attach, "session ended");
	if (s->cgroup != NULL) {
		cgroup_session_remove(s->cgroup);
		free(s->cgroup);
	}
	capture_free(&s->cap);
	evbuffer_free(s->wbuf);
	history_free(&s->hist);
	free(s->last_command);
	free(s->name);
	free(s);
}

/* Fill a ListSessionsResponse; free it with session_list_free(). */
int
session_list(struct server *srv, Swerex__V1__ListSessionsResponse *out)
{
	Swerex__V1__SessionInfo *info;
	struct session *s;
	size_t i = 0;

	out->sessions = calloc(srv->n_sessions + 1, sizeof *out->sessions);
	info = calloc(srv->n_sessions + 1, sizeof *info);
	if (out->sessions == NULL || info == NULL) {
		free(out->sessions);
		free(info);
		out->sessions = NULL;
		return -ENOMEM;
	}
	TAILQ_FOREACH(s, &srv->sessions, entry) {
		swerex__v1__session_info__init(&info[i]);
		info[i].name = s->name;
		info[i].pid = session_bash_pid(s);
		info[i].created = s->created;
		info[i].last_command = s->last_command ? s->last_command : "";
		info[i].exit_status = s->state == SESSION_DEAD ? s->wait_status : 0;
		switch (s->state) {
		case SESSION_STARTING:
			info[i].state = SWEREX__V1__SESSION_STATE__SESSION_STATE_STARTING;
			break;
		case SESSION_DEAD:
			info[i].state = SWEREX__V1__SESSION_STATE__SESSION_STATE_DEAD;
			break;
		default:
			info[i].state = s->busy ?
			    SWEREX__V1__SESSION_STATE__SESSION_STATE_RUNNING :
			    SWEREX__V1__SESSION_STATE__SESSION_STATE_IDLE;
		}
		out->sessions[i] = &info[i];
		i++;
	}
	out->n_sessions = i;
	if (i == 0)
		free(info);
	return 0;
}

/* Free what session_list() allocated. */
void
session_list_free(Swerex__V1__ListSessionsResponse *out)
{
	if (out->n_sessions > 0)
		free(out->sessions[0]);
	free(out->sessions);
}

/* Close every session for shutdown. */
void
session_shutdown_all(struct server *srv)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		session_close(srv, NULL, s->name);
}

/* Kill and free every session at once (last resort at exit). */
void
session_free_all(struct server *srv)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&srv->sessions)) != NULL)
		session_unname(s);
	while ((s = TAILQ_FIRST(&srv->closing)) != NULL) {
		session_kill(s);
		session_free(s);
	}
}

/* Handle SendInputRequest: bytes for the running program, as typed. */
void
session_send_input(struct server *srv, struct req *r,
		   const Swerex__V1__SendInputRequest *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__SendInputResponse sr = SWEREX__V1__SEND_INPUT_RESPONSE__INIT;
	static const char *const extra[] = { "limit", "input", NULL };
	struct session *s;

	if (m->data.len > SESSION_INPUT_MAX) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "input of %zu bytes: at most %d per request",
		    m->data.len, SESSION_INPUT_MAX);
		return;
	}
	if ((s = session_lookup(srv, r, m->session)) == NULL || session_refuse(s, r))
		return;
	session_catch_up(s);
	if (!s->busy) {
		/*
		 * Bash itself would read it: a line would run outside the
		 * daemon's bookkeeping, a partial one would spoil the next
		 * command.
		 */
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "session '%.256s' is at its prompt: no program reads "
		    "input; run a command instead", s->name);
		return;
	}
	if (evbuffer_get_length(s->wbuf) + m->data.len > SESSION_INPUT_PENDING) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
		    NULL, extra, "session '%.256s' has %zu bytes of input its "
		    "program has not read yet", s->name,
		    evbuffer_get_length(s->wbuf));
		return;
	}
	/* Behind whatever the daemon queued before: the order is kept. */
	session_write(s, (const char *)m->data.data, m->data.len);
	session_flush(s);
	sr.bytes_written = m->data.len;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_SEND_INPUT;
	resp.send_input = &sr;
	conn_reply(r, &resp);
}

/* Handle AttachRequest: watch a session's terminal (attach.c). */
void
session_attach(struct server *srv, struct req *r,
	       const Swerex__V1__AttachRequest *m)
{
	struct session *s;

	if ((s = session_lookup(srv, r, m->session)) == NULL)
		return;
	if (s->state == SESSION_DEAD && session_refuse(s, r))
		return;
	/* What the terminal holds now belongs to the scrollback. */
	session_catch_up(s);
	attach_add(srv, &s->attach, r, m, s->name);
}

/* Count the named sessions by state: starting, idle, running, dead. */
void
session_count(struct server *srv, uint32_t n[4])
{
	struct session *s;

	memset(n, 0, 4 * sizeof *n);
	TAILQ_FOREACH(s, &srv->sessions, entry) {
		if (s->state == SESSION_STARTING)
			n[0]++;
		else if (s->state == SESSION_DEAD)
			n[3]++;
		else if (s->busy)
			n[2]++;
		else
			n[1]++;
	}
}

/* Answer HistoryRequest: the session's last commands, oldest first. */
void
session_history(struct server *srv, struct req *r,
		const Swerex__V1__HistoryRequest *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__HistoryResponse hr;
	struct session *s;

	if ((s = session_lookup(srv, r, m->session)) == NULL)
		return;
	if (history_fill(&s->hist, m->has_limit_case ==
	    SWEREX__V1__HISTORY_REQUEST__HAS_LIMIT_LIMIT, m->limit, &hr) < 0) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, NULL,
		    "out of memory");
		return;
	}
	resp.body_case = SWEREX__V1__RESPONSE__BODY_HISTORY;
	resp.history = &hr;
	conn_reply(r, &resp);
	history_fill_free(&hr);
}
