/*
 * soak: mixed load against a private swerexd for a given time (issue 6).
 *
 * One libevent loop drives W workers, each on its own event-driven libswerex
 * connection and its own session: echo, seq, failing commands, timeouts
 * followed by an interrupt, interrupts of a pending run, streamed runs,
 * one-off executes, list_sessions, sessions closed and made again,
 * connections closed (and, with a run in flight, dropped) and made again.
 * Timers add a file worker (write_file/read_file, upload and download of a
 * small tree, on a blocking client) and a raw worker speaking the framing by
 * hand: it pipelines requests under ids of its own and counts every answer
 * per id, so a daemon that answers twice is caught even though libswerex
 * would hide it, and it drops connections mid-request and mid-frame.
 *
 * Every request has a number of our own; each is answered exactly once with
 * the expected result or the run fails. The daemon's RSS and fd count are
 * sampled every few seconds. Rules, checked at the end:
 *  - RSS: a least-squares line through the samples of the second half of
 *    the load may rise by at most max(2 MiB, 10% of the mean) over that
 *    half (warm-up, the first half, is free to grow).
 *  - fds: with the load stopped, every session closed and the same single
 *    connection open as before the load, the fd count is back to exactly
 *    its value from before the load (within 10 s).
 *  - the daemon exits 0 on SIGTERM.
 * With --no-rss (a sanitizer build: ASan's quarantine holds freed memory
 * by design) the RSS rule is reported as skipped. Output is TAP with the
 * summary as "# " lines; the exit status is non-zero on any failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "fds.h"
#include "swerex.h"
#include "wire.h"

#define SOAK_MAX_WORKERS 32
#define SOAK_MAX_SAMPLES 4096
#define SOAK_CHUNKS_MAX (64 * 1024)
#define SOAK_SHOW_MAX 20            /* failures told in full */
#define SOAK_RAW_BATCH 12           /* requests a raw round pipelines */
#define SOAK_FILE_MAX 65536
#define SOAK_STOP_MAX 120.0         /* seconds the workers get to stop */

enum soak_kind {
	SOAK_CONNECT, SOAK_CREATE, SOAK_CLOSE, SOAK_ECHO, SOAK_SEQ,
	SOAK_EXIT, SOAK_RAISE, SOAK_TIMEOUT, SOAK_INTERRUPT, SOAK_STREAM,
	SOAK_EXEC, SOAK_LIST, SOAK_DROP, SOAK_WRITE, SOAK_READ, SOAK_UPLOAD,
	SOAK_DOWNLOAD, SOAK_RAW, SOAK_RAW_DROP, SOAK_N_KINDS
};

static const char *const soak_kind_names[SOAK_N_KINDS] = {
	"connect", "create", "close", "echo", "seq", "exit", "raise",
	"timeout", "interrupt", "stream", "execute", "list", "drop",
	"write_file", "read_file", "upload", "download", "raw", "raw_drop"
};

struct soak;
struct soak_worker;

/* One request sent, and what its answer must be. Owned by soak->reqs. */
struct soak_req {
	struct soak_req *next;
	struct soak_worker *w;
	enum soak_kind kind;
	uint64_t seq;               /* our own number, unique in the run */
	uint64_t id;                /* the library's id */
	unsigned answers;           /* final replies seen */
	long n;                     /* the kind's parameter */
	bool want_disconnect;       /* dropped on purpose */
};

/* A worker: one connection, one session, one action at a time. */
struct soak_worker {
	struct soak *s;
	int idx;
	struct swerex_client *c;
	struct event *ev;           /* runs soak_step; also the interrupt delay */
	char session[48];
	bool has_session;
	unsigned gen;               /* sessions made so far */
	int outstanding;            /* requests of the action not yet answered */
	enum soak_kind act;
	int phase;                  /* of act; 0: pick a new action */
	bool interrupt_due;         /* ev fires to send an interrupt */
	bool done;                  /* stopped: session closed, client freed */
	char chunks[SOAK_CHUNKS_MAX];
	size_t chunks_len;
};

/* One sample of the daemon. */
struct soak_sample {
	double t;                   /* seconds since the load began */
	long rss_kib;
	int fds;
	int sessions;               /* sessions our workers hold */
};

struct soak {
	double seconds;             /* of load */
	int n_workers;
	double interval;            /* between samples */
	uint64_t seed, rng;
	const char *daemon;
	unsigned without;           /* actions left out (--without), by kind bit */
	bool no_rss;                /* --no-rss: a sanitizer's RSS says nothing */
	struct event_base *base;
	struct event *ev_sample, *ev_files, *ev_raw, *ev_end, *ev_abort;
	char dir[64];
	char sock[100];
	char url[160];
	pid_t pid;
	double t0;                  /* load start */
	bool stopping;
	int workers_done;
	struct soak_worker w[SOAK_MAX_WORKERS];
	struct swerex_client *fc;   /* blocking: files, and the quiet connection */
	struct soak_req *reqs;
	uint64_t next_seq;
	unsigned long sent[SOAK_N_KINDS];
	unsigned long answered[SOAK_N_KINDS];
	unsigned long bad[SOAK_N_KINDS];
	unsigned long lost, dup, failures, shown;
	uint64_t raw_id;
	unsigned long rounds;       /* file and raw rounds */
	struct soak_sample samples[SOAK_MAX_SAMPLES];
	size_t n_samples;
	long base_rss;
	int base_fds;
};

static void soak_step_cb(evutil_socket_t, short, void *);

/* Monotonic time in seconds. */
static double
soak_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A pseudo-random number (xorshift64*), reproducible from --seed. */
static uint64_t
soak_rand(struct soak *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

/* A pseudo-random number in [0, n). */
static long
soak_pick(struct soak *s, long n)
{
	return (long)(soak_rand(s) % (uint64_t)n);
}

/* Count a failure; tell the first few as TAP comments. */
static void __attribute__((format(printf, 3, 4)))
soak_fail(struct soak *s, enum soak_kind kind, const char *fmt, ...)
{
	va_list ap;

	s->failures++;
	if (kind < SOAK_N_KINDS)
		s->bad[kind]++;
	if (s->shown++ >= SOAK_SHOW_MAX)
		return;
	printf("# FAIL %s: ", kind < SOAK_N_KINDS ? soak_kind_names[kind] : "-");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Describe an error for a failure message (static storage). */
static const char *
soak_errstr(const struct swerex_error *e)
{
	static char buf[256];

	if (e == NULL)
		return "(no error)";
	snprintf(buf, sizeof buf, "%s: %s", swerex_error_kind_name(e->kind),
	    e->message != NULL ? e->message : "");
	return buf;
}

/* Make a request record owned by s. */
static struct soak_req *
soak_req_new(struct soak *s, struct soak_worker *w, enum soak_kind kind,
    long n)
{
	struct soak_req *r = calloc(1, sizeof *r);

	if (r == NULL) {
		fprintf(stderr, "soak: out of memory\n");
		exit(2);
	}
	r->w = w;
	r->kind = kind;
	r->n = n;
	r->seq = ++s->next_seq;
	r->next = s->reqs;
	s->reqs = r;
	s->sent[kind]++;
	return r;
}

/* Record the one final answer a synchronous call got. */
static void
soak_req_answered(struct soak *s, struct soak_req *r)
{
	r->answers++;
	s->answered[r->kind]++;
}

/* Daemon RSS in KiB from /proc, or -1. */
static long
soak_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Whether len bytes at p are exactly the C string want. */
static bool
soak_eq(const char *p, size_t len, const char *want)
{
	return p != NULL && len == strlen(want) && memcmp(p, want, len) == 0;
}

/* Write "1\n2\n...n\n" into buf; return its length. */
static size_t
soak_seq_text(char *buf, size_t size, long n)
{
	size_t len = 0;
	long i;

	for (i = 1; i <= n && len + 24 < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%ld\n", i);
	return len;
}

/* Schedule the worker's next step from the loop (never inside a callback). */
static void
soak_schedule(struct soak_worker *w, double delay)
{
	struct timeval tv;

	tv.tv_sec = (time_t)delay;
	tv.tv_usec = (suseconds_t)((delay - (double)tv.tv_sec) * 1e6);
	evtimer_add(w->ev, &tv);
}

/* Check an observation's output and exit code; false after a failure. */
static bool
soak_check_obs(struct soak *s, struct soak_req *r,
    const struct swerex_reply *rep, const char *out, int code)
{
	const struct swerex_observation *o = rep->observation;

	if (rep->type != SWEREX_REPLY_OBSERVATION || o == NULL) {
		soak_fail(s, r->kind, "#%" PRIu64 " (%s): wanted an observation, "
		    "got %s", r->seq, r->w->session, rep->type ==
		    SWEREX_REPLY_ERROR ? soak_errstr(rep->error) : "another reply");
		return false;
	}
	if (out != NULL && !soak_eq(o->output, o->output_len, out)) {
		soak_fail(s, r->kind, "#%" PRIu64 " (%s): output %.*s%s, wanted "
		    "%.60s", r->seq, r->w->session, (int)(o->output_len > 60 ?
		    60 : o->output_len), o->output, o->output_len > 60 ? "..." :
		    "", out);
		return false;
	}
	if (code >= 0 && (!o->has_exit_code || o->exit_code != code)) {
		soak_fail(s, r->kind, "#%" PRIu64 ": exit code %d (has %d), "
		    "wanted %d", r->seq, o->exit_code, o->has_exit_code, code);
		return false;
	}
	return true;
}

/* Check an error reply's kind; false after a failure. */
static bool
soak_check_err(struct soak *s, struct soak_req *r,
    const struct swerex_reply *rep, enum swerex_error_kind kind)
{
	if (rep->type == SWEREX_REPLY_ERROR && rep->error != NULL &&
	    rep->error->kind == kind)
		return true;
	soak_fail(s, r->kind, "#%" PRIu64 " (%s): wanted %s, got %s", r->seq,
	    r->w->session, swerex_error_kind_name(kind),
	    rep->type == SWEREX_REPLY_ERROR ? soak_errstr(rep->error) :
	    "a success");
	return false;
}

/* Check a final reply against what its request expects. */
static void
soak_check(struct soak *s, struct soak_req *r, const struct swerex_reply *rep)
{
	struct soak_worker *w = r->w;
	const struct swerex_exec_result *x;
	char want[SOAK_CHUNKS_MAX];
	size_t i;

	if (r->want_disconnect) {
		/* On a slow day the answer beats the drop: also right. */
		if (rep->type != SWEREX_REPLY_OBSERVATION)
			soak_check_err(s, r, rep, SWEREX_ERR_DISCONNECTED);
		else
			soak_check_obs(s, r, rep, "late\n", 0);
		return;
	}
	switch (r->kind) {
	case SOAK_CREATE:
		if (rep->type != SWEREX_REPLY_SESSION_CREATED)
			soak_fail(s, r->kind, "%s: %s", w->session,
			    soak_errstr(rep->error));
		else
			w->has_session = true;
		break;
	case SOAK_CLOSE:
		if (rep->type != SWEREX_REPLY_SESSION_CLOSED)
			soak_fail(s, r->kind, "%s: %s", w->session,
			    soak_errstr(rep->error));
		w->has_session = false;
		break;
	case SOAK_ECHO:
		snprintf(want, sizeof want, "soak-%" PRIu64 "\n", r->seq);
		soak_check_obs(s, r, rep, want, 0);
		break;
	case SOAK_SEQ:
		want[soak_seq_text(want, sizeof want, r->n)] = '\0';
		soak_check_obs(s, r, rep, want, 0);
		break;
	case SOAK_EXIT:
		soak_check_obs(s, r, rep, "", (int)r->n);
		break;
	case SOAK_RAISE:
		if (soak_check_err(s, r, rep, SWEREX_ERR_NON_ZERO_EXIT_CODE)) {
			const char *code = swerex_error_extra(rep->error,
			    "exit_code");

			if (code == NULL || atol(code) != r->n)
				soak_fail(s, r->kind, "#%" PRIu64 ": exit_code "
				    "%s, wanted %ld", r->seq, code ? code :
				    "(none)", r->n);
		}
		break;
	case SOAK_TIMEOUT:
		/* n: 0 the run that times out, 1 its interrupt, 2 the check. */
		if (r->n == 0) {
			if (soak_check_err(s, r, rep, SWEREX_ERR_COMMAND_TIMEOUT) &&
			    (rep->error->observation == NULL || !soak_eq(
			    rep->error->observation->output,
			    rep->error->observation->output_len, "before\n")))
				soak_fail(s, r->kind, "#%" PRIu64 ": partial "
				    "output is not \"before\\n\"", r->seq);
		} else if (r->n == 1)
			soak_check_obs(s, r, rep, NULL, -1);
		else
			soak_check_obs(s, r, rep, "after\n", 0);
		break;
	case SOAK_INTERRUPT:
		if (r->n == 0)
			soak_check_err(s, r, rep, SWEREX_ERR_INTERRUPTED);
		else if (r->n == 1)
			soak_check_obs(s, r, rep, NULL, -1);
		else
			soak_check_obs(s, r, rep, "back\n", 0);
		break;
	case SOAK_DROP:
		/* After the drop: the interrupt, then the session works. */
		if (r->n == 1)
			soak_check_obs(s, r, rep, NULL, -1);
		else
			soak_check_obs(s, r, rep, "back\n", 0);
		break;
	case SOAK_STREAM:
		want[soak_seq_text(want, sizeof want, r->n)] = '\0';
		if (soak_check_obs(s, r, rep, want, 0) &&
		    !soak_eq(w->chunks, w->chunks_len, want))
			soak_fail(s, r->kind, "#%" PRIu64 ": chunks (%zu bytes) "
			    "differ from the output", r->seq, w->chunks_len);
		break;
	case SOAK_EXEC:
		x = rep->exec_result;
		if (rep->type != SWEREX_REPLY_EXEC || x == NULL) {
			soak_fail(s, r->kind, "#%" PRIu64 ": %s", r->seq,
			    soak_errstr(rep->error));
			break;
		}
		snprintf(want, sizeof want, "out-%" PRIu64 "\n", r->seq);
		if (!soak_eq(x->stdout_data, x->stdout_len, want) ||
		    !soak_eq(x->stderr_data, x->stderr_len, "err\n") ||
		    !x->has_exit_code || x->exit_code != (int)r->n)
			soak_fail(s, r->kind, "#%" PRIu64 ": stdout %.40s stderr "
			    "%.40s exit %d", r->seq, x->stdout_data,
			    x->stderr_data, x->exit_code);
		break;
	case SOAK_LIST:
		if (rep->type != SWEREX_REPLY_SESSIONS) {
			soak_fail(s, r->kind, "%s", soak_errstr(rep->error));
			break;
		}
		for (i = 0; i < rep->n_sessions; i++)
			if (strcmp(rep->sessions[i].name, w->session) == 0)
				break;
		if (i == rep->n_sessions)
			soak_fail(s, r->kind, "#%" PRIu64 ": %s not listed",
			    r->seq, w->session);
		break;
	default:
		soak_fail(s, r->kind, "#%" PRIu64 ": unexpected reply", r->seq);
	}
}

/* The callback of every request a worker submits. */
static void
soak_reply_cb(struct swerex_client *c, const struct swerex_reply *rep,
    void *arg)
{
	struct soak_req *r = arg;
	struct soak_worker *w = r->w;
	struct soak *s = w->s;
	size_t n;

	if (rep->type == SWEREX_REPLY_CHUNK) {
		n = rep->len;
		if (n > sizeof w->chunks - w->chunks_len)
			n = sizeof w->chunks - w->chunks_len;
		memcpy(w->chunks + w->chunks_len, rep->data, n);
		w->chunks_len += n;
		/*
		 * Interrupt only once the command runs: an interrupt that
		 * beats bash to the command line is answered at the prompt,
		 * and the command then runs on (see the report of issue 6).
		 */
		if (w->interrupt_due && !evtimer_pending(w->ev, NULL) &&
		    memmem(w->chunks, w->chunks_len, "started\n", 8) != NULL)
			soak_schedule(w, 0.001 * (double)soak_pick(s, 50));
		return;
	}
	if (rep->id != r->id)
		soak_fail(s, r->kind, "#%" PRIu64 ": answer for id %" PRIu64
		    " came with id %" PRIu64, r->seq, r->id, rep->id);
	if (++r->answers > 1) {
		s->dup++;
		soak_fail(s, r->kind, "#%" PRIu64 " answered %u times", r->seq,
		    r->answers);
		return;
	}
	s->answered[r->kind]++;
	soak_check(s, r, rep);
	/* A dropped request was taken off outstanding when it was sent. */
	if (!r->want_disconnect && --w->outstanding == 0)
		soak_schedule(w, 0);
}

/* Submit a run in the worker's session; false (after a failure) if refused. */
static bool
soak_run(struct soak_worker *w, enum soak_kind kind, long n,
    const char *command, double timeout, enum swerex_check check, bool stream)
{
	struct swerex_run_opts o = { 0 };
	struct swerex_error *e = NULL;
	struct soak_req *r = soak_req_new(w->s, w, kind, n);

	o.command = command;
	o.session = w->session;
	o.check = check;
	if (timeout > 0) {
		o.has_timeout = true;
		o.timeout = timeout;
	}
	w->chunks_len = 0;
	r->id = swerex_submit_run(w->c, &o, stream, soak_reply_cb, r, &e);
	if (r->id == 0) {
		r->answers = 1;     /* refused locally: nothing to wait for */
		soak_fail(w->s, kind, "submit: %s", soak_errstr(e));
		swerex_error_free(e);
		return false;
	}
	w->outstanding++;
	return true;
}

/* Submit an interrupt of the worker's session. */
static bool
soak_interrupt(struct soak_worker *w, enum soak_kind kind, long n)
{
	struct swerex_interrupt_opts o = { 0 };
	struct swerex_error *e = NULL;
	struct soak_req *r = soak_req_new(w->s, w, kind, n);

	o.session = w->session;
	r->id = swerex_submit_interrupt(w->c, &o, soak_reply_cb, r, &e);
	if (r->id == 0) {
		r->answers = 1;
		soak_fail(w->s, kind, "submit: %s", soak_errstr(e));
		swerex_error_free(e);
		return false;
	}
	w->outstanding++;
	return true;
}

/* Submit a one-off command printing on both streams. */
static bool
soak_exec(struct soak_worker *w)
{
	struct swerex_exec_opts o = { 0 };
	struct swerex_error *e = NULL;
	struct soak_req *r = soak_req_new(w->s, w, SOAK_EXEC,
	    soak_pick(w->s, 4));
	char cmd[96];

	snprintf(cmd, sizeof cmd, "echo out-%" PRIu64 "; echo err >&2; exit %ld",
	    r->seq, r->n);
	o.command = cmd;
	o.shell = true;
	o.has_timeout = true;
	o.timeout = 30;
	r->id = swerex_submit_execute(w->c, &o, false, soak_reply_cb, r, &e);
	if (r->id == 0) {
		r->answers = 1;
		soak_fail(w->s, SOAK_EXEC, "submit: %s", soak_errstr(e));
		swerex_error_free(e);
		return false;
	}
	w->outstanding++;
	return true;
}

/* Submit create, close or list; false (after a failure) if refused. */
static bool
soak_simple(struct soak_worker *w, enum soak_kind kind)
{
	struct swerex_create_opts co = { 0 };
	struct swerex_error *e = NULL;
	struct soak_req *r = soak_req_new(w->s, w, kind, 0);

	if (kind == SOAK_CREATE) {
		co.session = w->session;
		r->id = swerex_submit_create_session(w->c, &co, soak_reply_cb,
		    r, &e);
	} else if (kind == SOAK_CLOSE)
		r->id = swerex_submit_close_session(w->c, w->session,
		    soak_reply_cb, r, &e);
	else
		r->id = swerex_submit_list_sessions(w->c, soak_reply_cb, r, &e);
	if (r->id == 0) {
		r->answers = 1;
		soak_fail(w->s, kind, "submit: %s", soak_errstr(e));
		swerex_error_free(e);
		return false;
	}
	w->outstanding++;
	return true;
}

/* Connect an event-driven client for a worker; false after a failure. */
static bool
soak_connect(struct soak_worker *w)
{
	struct swerex_connect_opts o;
	struct swerex_error *e = NULL;
	struct soak_req *r = soak_req_new(w->s, w, SOAK_CONNECT, 0);

	swerex_connect_opts_init(&o);
	o.url = w->s->url;
	o.client_name = "soak";
	o.base = w->s->base;
	o.keepalive = -1;
	soak_req_answered(w->s, r);
	if (swerex_connect_with(&o, &w->c, &e) < 0) {
		soak_fail(w->s, SOAK_CONNECT, "worker %d: %s", w->idx,
		    soak_errstr(e));
		swerex_error_free(e);
		w->c = NULL;
		return false;
	}
	return true;
}

/* Free a worker's client: pending requests are answered DISCONNECTED now. */
static void
soak_disconnect(struct soak_worker *w)
{
	struct swerex_client *c = w->c;

	w->c = NULL;
	swerex_client_free(c);
}

/* Start the next phase of the current action, or a new action. */
static void
soak_next(struct soak_worker *w)
{
	struct soak *s = w->s;
	char cmd[128];
	long p;

	if (w->phase == 0) {
		p = soak_pick(s, 100);
		w->act = p < 24 ? SOAK_ECHO : p < 36 ? SOAK_SEQ : p < 44 ?
		    SOAK_EXIT : p < 50 ? SOAK_RAISE : p < 55 ? SOAK_TIMEOUT :
		    p < 60 ? SOAK_INTERRUPT : p < 70 ? SOAK_STREAM : p < 84 ?
		    SOAK_EXEC : p < 88 ? SOAK_LIST : p < 92 ? SOAK_DROP :
		    SOAK_CLOSE;
		if (s->without & 1u << w->act)
			w->act = SOAK_ECHO;
	}
	switch (w->act) {
	case SOAK_ECHO:
		p = (long)(s->next_seq + 1);
		snprintf(cmd, sizeof cmd, "echo soak-%ld", p);
		soak_run(w, SOAK_ECHO, 0, cmd, 30, SWEREX_CHECK_RAISE, false);
		break;
	case SOAK_SEQ:
	case SOAK_STREAM:
		p = 1 + soak_pick(s, w->act == SOAK_SEQ ? 300 : 3000);
		snprintf(cmd, sizeof cmd, "seq 1 %ld", p);
		soak_run(w, w->act, p, cmd, 30, SWEREX_CHECK_RAISE,
		    w->act == SOAK_STREAM);
		break;
	case SOAK_EXIT:
		p = 1 + soak_pick(s, 120);
		snprintf(cmd, sizeof cmd, "(exit %ld)", p);
		soak_run(w, SOAK_EXIT, p, cmd, 30, SWEREX_CHECK_SILENT, false);
		break;
	case SOAK_RAISE:
		p = 1 + soak_pick(s, 9);
		snprintf(cmd, sizeof cmd, "echo oops; (exit %ld)", p);
		soak_run(w, SOAK_RAISE, p, cmd, 30, SWEREX_CHECK_RAISE, false);
		break;
	case SOAK_TIMEOUT:
		/* Times out with the command still running; an interrupt
		 * ends it; the session answers normally after. */
		if (w->phase == 0)
			soak_run(w, SOAK_TIMEOUT, 0, "echo before; sleep 60",
			    1.0, SWEREX_CHECK_SILENT, false);
		else if (w->phase == 1)
			soak_interrupt(w, SOAK_TIMEOUT, 1);
		else
			soak_run(w, SOAK_TIMEOUT, 2, "echo after", 30,
			    SWEREX_CHECK_RAISE, false);
		w->phase = w->phase == 2 ? 0 : w->phase + 1;
		return;
	case SOAK_INTERRUPT:
		/* A run with no timeout, interrupted while it is pending. */
		if (w->phase == 0) {
			/* The interrupt goes once "started" is streamed. */
			if (soak_run(w, SOAK_INTERRUPT, 0,
			    "echo started; sleep 60", 0, SWEREX_CHECK_SILENT,
			    true))
				w->interrupt_due = true;
			w->phase = 2;
			return;
		}
		soak_run(w, SOAK_INTERRUPT, 2, "echo back", 30,
		    SWEREX_CHECK_RAISE, false);
		w->phase = 0;
		return;
	case SOAK_DROP:
		/* The connection goes with a run in flight; a new one
		 * interrupts whatever is left and the session works on. */
		if (w->phase == 0) {
			if (soak_run(w, SOAK_DROP, 0, "sleep 1; echo late",
			    30, SWEREX_CHECK_RAISE, false)) {
				s->reqs->want_disconnect = true;
				w->outstanding--;   /* answered by the free */
				soak_schedule(w, 0.01 * (double)soak_pick(s, 10));
			}
			w->phase = 1;
			return;
		}
		if (w->phase == 1) {
			soak_disconnect(w);
			if (soak_connect(w))
				soak_interrupt(w, SOAK_DROP, 1);
			else
				soak_schedule(w, 0.2);
			w->phase = 2;
			return;
		}
		soak_run(w, SOAK_DROP, 2, "echo back", 30, SWEREX_CHECK_RAISE,
		    false);
		w->phase = 0;
		return;
	case SOAK_EXEC:
		/* Pipelined: executes don't need the session. */
		for (p = 1 + soak_pick(s, 3); p > 0; p--)
			soak_exec(w);
		break;
	case SOAK_LIST:
		soak_simple(w, SOAK_LIST);
		break;
	case SOAK_CLOSE:
		soak_simple(w, SOAK_CLOSE);
		break;
	default:
		break;
	}
	w->phase = 0;
}

/* Advance a worker: connect, make its session, run the next action. */
static void
soak_step(struct soak_worker *w)
{
	struct soak *s = w->s;

	if (w->outstanding > 0 || w->done)
		return;
	if (s->stopping && w->phase == 0) {
		if (w->c != NULL && w->has_session) {
			soak_simple(w, SOAK_CLOSE);
			return;
		}
		if (w->c != NULL)
			soak_disconnect(w);
		w->done = true;
		if (++s->workers_done == s->n_workers)
			event_base_loopexit(s->base, NULL);
		return;
	}
	if (w->c == NULL && !soak_connect(w)) {
		soak_schedule(w, 0.2);
		return;
	}
	if (!w->has_session) {
		/* Now and then a fresh connection for the fresh session. */
		if (w->gen > 0 && soak_pick(s, 3) == 0) {
			soak_disconnect(w);
			if (!soak_connect(w)) {
				soak_schedule(w, 0.2);
				return;
			}
		}
		snprintf(w->session, sizeof w->session, "w%d-%u", w->idx,
		    w->gen++);
		soak_simple(w, SOAK_CREATE);
		return;
	}
	soak_next(w);
	if (w->outstanding == 0 && !evtimer_pending(w->ev, NULL))
		soak_schedule(w, 0);
}

/* A worker's timer: a delayed interrupt, or the next step. */
static void
soak_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct soak_worker *w = arg;

	if (w->interrupt_due) {
		w->interrupt_due = false;
		if (w->c != NULL)
			soak_interrupt(w, SOAK_INTERRUPT, 1);
		return;
	}
	soak_step(w);
}

/* Fill a file with n pseudo-random bytes; 0 or -1. */
static int
soak_make_file(struct soak *s, const char *path, size_t n, char *buf)
{
	size_t i;
	int fd;

	for (i = 0; i < n; i++)
		buf[i] = (char)soak_rand(s);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, buf, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* Read a whole small file into buf; its length, or -1. */
static ssize_t
soak_slurp(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, size);
	close(fd);
	return n;
}

/* Remove one path for nftw. */
static int
soak_rm_one(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	return remove(path);
}

/* Remove a tree; missing is fine. */
static void
soak_rm_tree(const char *path)
{
	nftw(path, soak_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Make the local tree the file worker uploads. */
static int
soak_make_tree(struct soak *s)
{
	static char buf[8192];
	char path[256];

	snprintf(path, sizeof path, "%s/tree", s->dir);
	if (mkdir(path, 0755) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/tree/sub", s->dir);
	if (mkdir(path, 0750) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/tree/sub/empty", s->dir);
	if (mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/tree/a.txt", s->dir);
	if (soak_make_file(s, path, 100, buf) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/tree/sub/b.bin", s->dir);
	if (soak_make_file(s, path, sizeof buf, buf) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/tree/link", s->dir);
	if (symlink("a.txt", path) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/local", s->dir);
	if (mkdir(path, 0700) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/remote", s->dir);
	return mkdir(path, 0700);
}

/* Whether the tree at dst holds what the source tree holds. */
static bool
soak_same_tree(struct soak *s, const char *dst)
{
	static char a[8192], b[8192];
	static const char *const files[] = { "a.txt", "sub/b.bin" };
	char pa[256], pb[256];
	struct stat st;
	ssize_t na, nb;
	size_t i;

	for (i = 0; i < sizeof files / sizeof *files; i++) {
		snprintf(pa, sizeof pa, "%s/tree/%s", s->dir, files[i]);
		snprintf(pb, sizeof pb, "%s/%s", dst, files[i]);
		na = soak_slurp(pa, a, sizeof a);
		nb = soak_slurp(pb, b, sizeof b);
		if (na < 0 || na != nb || memcmp(a, b, (size_t)na) != 0)
			return false;
	}
	snprintf(pb, sizeof pb, "%s/link", dst);
	na = readlink(pb, a, sizeof a - 1);
	if (na != 5 || memcmp(a, "a.txt", 5) != 0)
		return false;
	snprintf(pb, sizeof pb, "%s/sub/empty", dst);
	return stat(pb, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 07777) == 0700;
}

/* One round of the file worker: write/read back, upload, download. */
static void
soak_files_cb(evutil_socket_t fd, short what, void *arg)
{
	static char buf[SOAK_FILE_MAX];
	struct soak *s = arg;
	struct swerex_error *e = NULL;
	struct timeval tv = { 0, 300000 };
	char path[256], src[256], dst[256], *data = NULL;
	struct soak_req *r;
	size_t n, len = 0, i;
	uint64_t size = 0;

	if (s->stopping)
		return;
	s->rounds++;
	n = (size_t)soak_pick(s, SOAK_FILE_MAX);
	for (i = 0; i < n; i++)
		buf[i] = (char)soak_rand(s);
	r = soak_req_new(s, NULL, SOAK_WRITE, (long)n);
	snprintf(path, sizeof path, "%s/remote/f%" PRIu64 "/x", s->dir, r->seq);
	soak_req_answered(s, r);
	if (swerex_write_file(s->fc, path, buf, n, -1, true, &e) < 0) {
		soak_fail(s, SOAK_WRITE, "%s: %s", path, soak_errstr(e));
		goto out;
	}
	r = soak_req_new(s, NULL, SOAK_READ, (long)n);
	soak_req_answered(s, r);
	if (swerex_read_file(s->fc, path, 0, -1, &data, &len, &size, &e) < 0) {
		soak_fail(s, SOAK_READ, "%s: %s", path, soak_errstr(e));
		goto out;
	}
	if (len != n || size != n || memcmp(data, buf, n) != 0)
		soak_fail(s, SOAK_READ, "%s: %zu bytes back of %zu", path, len, n);
	free(data);
	data = NULL;
	snprintf(dst, sizeof dst, "%s/remote/f%" PRIu64, s->dir, r->seq - 1);
	soak_rm_tree(dst);

	snprintf(src, sizeof src, "%s/tree", s->dir);
	r = soak_req_new(s, NULL, SOAK_UPLOAD, 0);
	snprintf(path, sizeof path, "%s/remote/up%" PRIu64, s->dir, r->seq);
	soak_req_answered(s, r);
	if (swerex_upload(s->fc, src, path, NULL, NULL, &e) < 0) {
		soak_fail(s, SOAK_UPLOAD, "%s: %s", path, soak_errstr(e));
		goto out;
	}
	r = soak_req_new(s, NULL, SOAK_DOWNLOAD, 0);
	snprintf(dst, sizeof dst, "%s/local/down%" PRIu64, s->dir, r->seq);
	soak_req_answered(s, r);
	if (swerex_download(s->fc, path, dst, NULL, NULL, &e) < 0)
		soak_fail(s, SOAK_DOWNLOAD, "%s: %s", path, soak_errstr(e));
	else if (!soak_same_tree(s, path) || !soak_same_tree(s, dst))
		soak_fail(s, SOAK_DOWNLOAD, "%s: the tree differs", dst);
	soak_rm_tree(path);
	soak_rm_tree(dst);
out:
	swerex_error_free(e);
	free(data);
	evtimer_add(s->ev_files, &tv);
}

/* Connect a raw socket to the daemon; the fd, or -1. */
static int
soak_raw_connect(struct soak *s)
{
	struct sockaddr_un sa = { 0 };
	int fd;

	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Append one framed request to out. */
static void
soak_raw_put(struct evbuffer *out, uint64_t id, Swerex__V1__Request *req)
{
	req->id = id;
	wire_put(out, &req->base);
}

/* Write the first n bytes of out to fd; false on error. */
static bool
soak_raw_flush(int fd, struct evbuffer *out, size_t n)
{
	int w;

	while (n > 0) {
		w = evbuffer_write_atmost(out, fd, (ev_ssize_t)n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		n -= (size_t)w;
	}
	return true;
}

/*
 * Queue the raw round's requests: Hello under id base, then executes and
 * is_alive/list_sessions under base+1..base+n.
 */
static void
soak_raw_batch(struct evbuffer *out, uint64_t base, int n, bool exec_only)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	Swerex__V1__IsAliveRequest alive = SWEREX__V1__IS_ALIVE_REQUEST__INIT;
	Swerex__V1__ListSessionsRequest list =
	    SWEREX__V1__LIST_SESSIONS_REQUEST__INIT;
	Swerex__V1__ExecuteRequest ex = SWEREX__V1__EXECUTE_REQUEST__INIT;
	int i;

	hello.protocol_version = SWEREX_PROTOCOL_VERSION;
	hello.client_name = "soak-raw";
	req.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	soak_raw_put(out, base, &req);
	ex.command = exec_only ? "sleep 0.2; echo dropped" : "echo raw";
	ex.shell = true;
	for (i = 1; i <= n; i++) {
		if (exec_only || i % 3 == 0) {
			req.body_case = SWEREX__V1__REQUEST__BODY_EXECUTE;
			req.execute = &ex;
		} else if (i % 3 == 1) {
			req.body_case = SWEREX__V1__REQUEST__BODY_IS_ALIVE;
			req.is_alive = &alive;
		} else {
			req.body_case = SWEREX__V1__REQUEST__BODY_LIST_SESSIONS;
			req.list_sessions = &list;
		}
		soak_raw_put(out, base + (uint64_t)i, &req);
	}
}

/*
 * Read responses until every id in [base, base+n] is answered or 20 s pass;
 * count each id's answers and check their bodies.
 */
static void
soak_raw_collect(struct soak *s, int fd, struct evbuffer *in, uint64_t base,
    int n)
{
	unsigned got[SOAK_RAW_BATCH + 1] = { 0 };
	double deadline = soak_now() + 20;
	struct pollfd pfd = { fd, POLLIN, 0 };
	Swerex__V1__Response *resp;
	int left = n + 1, t, k;
	uint64_t i;

	while (left > 0) {
		t = wire_take(in, WIRE_MAX_FRAME_DEFAULT,
		    &swerex__v1__response__descriptor,
		    (ProtobufCMessage **)&resp);
		if (t == WIRE_AGAIN) {
			k = (int)((deadline - soak_now()) * 1000);
			if (k <= 0 || poll(&pfd, 1, k) <= 0 ||
			    evbuffer_read(in, fd, 65536) <= 0)
				break;
			continue;
		}
		if (t != WIRE_OK) {
			soak_fail(s, SOAK_RAW, "bad frame: %s", wire_strerror(t));
			return;
		}
		i = resp->id - base;
		if (resp->id < base || i > (uint64_t)n)
			soak_fail(s, SOAK_RAW, "answer to unknown id %" PRIu64,
			    resp->id);
		else if (++got[i] > 1) {
			s->dup++;
			soak_fail(s, SOAK_RAW, "id %" PRIu64 " answered %u times",
			    resp->id, got[i]);
		} else {
			left--;
			s->answered[SOAK_RAW]++;
			if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR ||
			    (resp->body_case == SWEREX__V1__RESPONSE__BODY_EXECUTE &&
			    !soak_eq((char *)resp->execute->stdout.data,
			    resp->execute->stdout.len, "raw\n")))
				soak_fail(s, SOAK_RAW, "id %" PRIu64 ": bad "
				    "answer (body %d)", resp->id,
				    (int)resp->body_case);
		}
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	if (left > 0) {
		s->lost += (unsigned long)left;
		soak_fail(s, SOAK_RAW, "%d of %d ids unanswered", left, n + 1);
	}
}

/*
 * One round of the raw worker: a pipelined batch whose answers are counted
 * per id; then a connection dropped with executes in flight, or one cut in
 * the middle of a frame.
 */
static void
soak_raw_cb(evutil_socket_t unused, short what, void *arg)
{
	struct soak *s = arg;
	struct timeval tv = { 0, 500000 };
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	size_t half;
	int fd;

	if (s->stopping || in == NULL || out == NULL)
		goto done;
	s->sent[SOAK_RAW] += SOAK_RAW_BATCH + 1;
	if ((fd = soak_raw_connect(s)) < 0) {
		s->lost += SOAK_RAW_BATCH + 1;
		soak_fail(s, SOAK_RAW, "connect: %s", strerror(errno));
		goto done;
	}
	s->raw_id += 1000;
	soak_raw_batch(out, s->raw_id, SOAK_RAW_BATCH, false);
	if (!soak_raw_flush(fd, out, evbuffer_get_length(out)))
		soak_fail(s, SOAK_RAW, "write: %s", strerror(errno));
	soak_raw_collect(s, fd, in, s->raw_id, SOAK_RAW_BATCH);
	close(fd);

	/* Dropped on purpose: nobody reads these answers. */
	s->sent[SOAK_RAW_DROP]++;
	s->answered[SOAK_RAW_DROP]++;
	if ((fd = soak_raw_connect(s)) < 0) {
		soak_fail(s, SOAK_RAW_DROP, "connect: %s", strerror(errno));
		goto done;
	}
	evbuffer_drain(out, evbuffer_get_length(out));
	soak_raw_batch(out, 1, 3, true);
	/* Every other time, the last frame's tail is never sent. */
	half = evbuffer_get_length(out) - (s->rounds % 2 ? 0 : 7);
	soak_raw_flush(fd, out, half);
	close(fd);
done:
	evbuffer_free(in);
	evbuffer_free(out);
	if (!s->stopping)
		evtimer_add(s->ev_raw, &tv);
}

/* Take one sample of the daemon. */
static void
soak_sample(struct soak *s)
{
	struct soak_sample *p;
	int i;

	if (s->n_samples == SOAK_MAX_SAMPLES)
		return;
	p = &s->samples[s->n_samples++];
	p->t = soak_now() - s->t0;
	p->rss_kib = soak_rss_kib(s->pid);
	p->fds = fds_count(s->pid);
	p->sessions = 0;
	for (i = 0; i < s->n_workers; i++)
		p->sessions += s->w[i].has_session;
}

/* The sampling timer. */
static void
soak_sample_cb(evutil_socket_t fd, short what, void *arg)
{
	struct soak *s = arg;
	struct timeval tv;

	soak_sample(s);
	tv.tv_sec = (time_t)s->interval;
	tv.tv_usec = (suseconds_t)((s->interval - (double)tv.tv_sec) * 1e6);
	if (!s->stopping)
		evtimer_add(s->ev_sample, &tv);
}

/* The end of the load: workers finish their action, close and stop. */
static void
soak_end_cb(evutil_socket_t fd, short what, void *arg)
{
	struct soak *s = arg;
	int i;

	s->stopping = true;
	soak_sample(s);
	for (i = 0; i < s->n_workers; i++)
		if (!s->w[i].done && s->w[i].outstanding == 0 &&
		    !evtimer_pending(s->w[i].ev, NULL))
			soak_schedule(&s->w[i], 0);
}

/* Give up on workers that did not stop: their requests count as lost. */
static void
soak_abort_cb(evutil_socket_t fd, short what, void *arg)
{
	struct soak *s = arg;

	printf("# %d of %d workers still waiting %.0f s after the end\n",
	    s->n_workers - s->workers_done, s->n_workers, SOAK_STOP_MAX);
	event_base_loopexit(s->base, NULL);
}

/* Make the private temp dir: HOME for the daemon, trees for the files. */
static int
soak_make_dir(struct soak *s)
{
	char path[128];

	snprintf(s->dir, sizeof s->dir, "/tmp/soak-swx-XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		s->dir[0] = '\0';
		return -1;
	}
	snprintf(path, sizeof path, "%s/home", s->dir);
	if (mkdir(path, 0700) < 0)
		return -1;
	snprintf(s->sock, sizeof s->sock, "%s/s.sock", s->dir);
	snprintf(s->url, sizeof s->url, "unix:%s", s->sock);
	return soak_make_tree(s);
}

/* Start the daemon and wait (up to 60 s) for READY=1 on its ready fd. */
static int
soak_start_daemon(struct soak *s)
{
	char log[128], home[128], buf[512];
	const char *argv[16];
	struct pollfd pfd;
	size_t have = 0;
	double deadline;
	ssize_t r;
	int p[2], fd, argc = 0;

	snprintf(log, sizeof log, "%s/daemon.log", s->dir);
	snprintf(home, sizeof home, "%s/home", s->dir);
	argv[argc++] = s->daemon;
	argv[argc++] = "--listen";
	argv[argc++] = s->url;
	argv[argc++] = "--ready-fd";
	argv[argc++] = "3";
	argv[argc++] = "--log-level";
	argv[argc++] = "warn";
	argv[argc] = NULL;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if ((s->pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		s->pid = 0;
		return -1;
	}
	if (s->pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (p[1] == 3)
			fcntl(3, F_SETFD, 0);
		else if (dup2(p[1], 3) < 0)
			_exit(127);
		setenv("HOME", home, 1);
		unsetenv("SWEREX_URL");
		execv(s->daemon, (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	deadline = soak_now() + 60;
	while (have < sizeof buf - 1) {
		if (poll(&pfd, 1, (int)((deadline - soak_now()) * 1000) + 1) <= 0) {
			if (errno == EINTR && soak_now() < deadline)
				continue;
			break;
		}
		r = read(p[0], buf + have, sizeof buf - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		if (strstr(buf, "READY=1\n") != NULL) {
			close(p[0]);
			return 0;
		}
	}
	close(p[0]);
	fprintf(stderr, "soak: daemon not ready (log %s)\n", log);
	return -1;
}

/* Stop the daemon: SIGTERM, 20 s, then SIGKILL; its wait status or -1. */
static int
soak_stop_daemon(struct soak *s)
{
	struct pollfd pfd;
	int pidfd, st = -1;

	if (s->pid <= 0)
		return -1;
	pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	kill(s->pid, SIGTERM);
	if (pidfd >= 0) {
		pfd.fd = pidfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 20000) <= 0) {
			fprintf(stderr, "soak: daemon ignored SIGTERM\n");
			kill(s->pid, SIGKILL);
		}
		close(pidfd);
	}
	if (waitpid(s->pid, &st, 0) < 0)
		st = -1;
	s->pid = 0;
	return st;
}

/* Print the daemon's log as comments. */
static void
soak_show_log(struct soak *s)
{
	char path[128], line[512];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof path, "%s/daemon.log", s->dir);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL && n++ < 50)
		printf("# log: %s", line);
	fclose(f);
}

/*
 * Fit a line to the RSS of the samples from the load's second half; the
 * rise over that half in KiB through *rise, the mean through *mean.
 */
static void
soak_rss_trend(struct soak *s, double *rise, double *mean)
{
	double half = s->seconds / 2, sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
	double x, y, slope, t_first = -1, t_last = 0;
	size_t i;

	*rise = 0;
	*mean = 0;
	for (i = 0; i < s->n_samples; i++) {
		if (s->samples[i].t < half || s->samples[i].rss_kib < 0)
			continue;
		x = s->samples[i].t;
		y = (double)s->samples[i].rss_kib;
		if (t_first < 0)
			t_first = x;
		t_last = x;
		sx += x;
		sy += y;
		sxx += x * x;
		sxy += x * y;
		n++;
	}
	if (n < 2 || n * sxx - sx * sx <= 0)
		return;
	slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
	*rise = slope * (t_last - t_first);
	*mean = sy / n;
}

/* The sample nearest to time t. */
static const struct soak_sample *
soak_sample_at(struct soak *s, double t)
{
	const struct soak_sample *best = &s->samples[0];
	size_t i;

	for (i = 1; i < s->n_samples; i++)
		if (fabs(s->samples[i].t - t) < fabs(best->t - t))
			best = &s->samples[i];
	return best;
}

/*
 * Wait (up to 10 s) until the daemon, load over and every session closed,
 * has as many fds as before the load; the last count seen. The daemon
 * reaps and closes asynchronously and gives no event for it, so this
 * asks again every 50 ms.
 */
static int
soak_settle_fds(struct soak *s, int *sessions)
{
	struct swerex_session_info *info = NULL;
	struct swerex_error *e = NULL;
	double deadline = soak_now() + 10;
	struct timespec ts = { 0, 50000000 };
	size_t n = 0;
	int fds;

	for (;;) {
		*sessions = -1;
		if (swerex_list_sessions(s->fc, &info, &n, &e) == 0) {
			*sessions = (int)n;
			swerex_sessions_free(info, n);
		} else {
			swerex_error_free(e);
			e = NULL;
		}
		fds = fds_count(s->pid);
		if ((fds == s->base_fds && *sessions == 0) ||
		    soak_now() > deadline)
			return fds;
		nanosleep(&ts, NULL);
	}
}

/* Print the summary as comments. */
static void
soak_summary(struct soak *s, double took)
{
	const struct soak_sample *a, *m, *z;
	unsigned long sent = 0, ans = 0;
	int k;

	printf("# soak: %.0f s of load (%.0f s in all), %d workers, seed %" PRIu64
	    "%s\n", s->seconds, took, s->n_workers, s->seed, s->without ?
	    " (some actions left out)" : "");
	printf("# %-12s %10s %10s %8s\n", "kind", "sent", "answered", "bad");
	for (k = 0; k < SOAK_N_KINDS; k++) {
		printf("# %-12s %10lu %10lu %8lu\n", soak_kind_names[k],
		    s->sent[k], s->answered[k], s->bad[k]);
		sent += s->sent[k];
		ans += s->answered[k];
	}
	printf("# %-12s %10lu %10lu %8lu\n", "total", sent, ans, s->failures);
	printf("# lost %lu, answered twice %lu, failures %lu\n", s->lost, s->dup,
	    s->failures);
	if (s->n_samples == 0)
		return;
	a = &s->samples[0];
	m = soak_sample_at(s, s->seconds / 2);
	z = soak_sample_at(s, s->seconds);
	printf("# daemon before load: rss %ld KiB, fds %d\n", s->base_rss,
	    s->base_fds);
	printf("# daemon at %5.0f s: rss %ld KiB, fds %d, sessions %d\n", a->t,
	    a->rss_kib, a->fds, a->sessions);
	printf("# daemon at %5.0f s: rss %ld KiB, fds %d, sessions %d\n", m->t,
	    m->rss_kib, m->fds, m->sessions);
	printf("# daemon at %5.0f s: rss %ld KiB, fds %d, sessions %d\n", z->t,
	    z->rss_kib, z->fds, z->sessions);
}

/* Mark every request not answered yet as lost. */
static void
soak_count_lost(struct soak *s)
{
	struct soak_req *r;

	for (r = s->reqs; r != NULL; r = r->next)
		if (r->answers == 0) {
			s->lost++;
			soak_fail(s, r->kind, "#%" PRIu64 " (id %" PRIu64
			    ") never answered", r->seq, r->id);
		}
}

/* Free the request records. */
static void
soak_free_reqs(struct soak *s)
{
	struct soak_req *r, *next;

	for (r = s->reqs; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
	s->reqs = NULL;
}

/* Leave out the session actions named in a comma-separated list. */
static int
soak_without(struct soak *s, const char *list)
{
	char buf[256], *tok, *save = NULL;
	int k;

	snprintf(buf, sizeof buf, "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		for (k = SOAK_SEQ; k <= SOAK_DROP; k++)
			if (strcmp(tok, soak_kind_names[k]) == 0)
				break;
		if (k > SOAK_DROP && strcmp(tok, "close") != 0)
			return -1;
		s->without |= 1u << (k > SOAK_DROP ? SOAK_CLOSE : k);
	}
	return 0;
}

/* Print usage. */
static void
soak_usage(void)
{
	fprintf(stderr, "usage: soak [--seconds S | --minutes M] [--workers N] "
	    "[--interval S] [--seed N] [--daemon PATH] [--no-rss]\n"
	    "            [--without KIND,...]  (raise, timeout, interrupt, "
	    "stream, execute, list, drop, close)\n"
	    "  runs mixed load against a private swerexd (default $SWEREXD) "
	    "and prints TAP\n");
}

/* Parse the options, run the load, judge it. */
int
main(int argc, char **argv)
{
	static struct soak s;
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "minutes", required_argument, NULL, 'm' },
		{ "workers", required_argument, NULL, 'w' },
		{ "interval", required_argument, NULL, 'i' },
		{ "seed", required_argument, NULL, 'r' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "without", required_argument, NULL, 'x' },
		{ "no-rss", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_connect_opts co;
	struct swerex_error *e = NULL;
	struct timeval tv;
	double t_start, rise, mean, bound;
	int c, i, fds, sessions, st, rc = 1;
	bool ok;

	s.seconds = 600;
	s.n_workers = 6;
	s.interval = 0;
	s.seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
	s.daemon = getenv("SWEREXD");
	while ((c = getopt_long(argc, argv, "s:m:w:i:r:d:x:nh", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 's': s.seconds = atof(optarg); break;
		case 'm': s.seconds = atof(optarg) * 60; break;
		case 'w': s.n_workers = atoi(optarg); break;
		case 'i': s.interval = atof(optarg); break;
		case 'r': s.seed = strtoull(optarg, NULL, 0); break;
		case 'd': s.daemon = optarg; break;
		case 'n': s.no_rss = true; break;
		case 'x':
			if (soak_without(&s, optarg) < 0) {
				soak_usage();
				return 2;
			}
			break;
		default: soak_usage(); return c == 'h' ? 0 : 2;
		}
	}
	if (s.daemon == NULL || s.seconds < 4 || s.n_workers < 1 ||
	    s.n_workers > SOAK_MAX_WORKERS) {
		soak_usage();
		return 2;
	}
	/* About 120 samples whatever the length, none closer than 0.5 s. */
	if (s.interval <= 0)
		s.interval = s.seconds / 120 < 0.5 ? 0.5 : s.seconds / 120;
	s.rng = s.seed ? s.seed : 1;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_start = soak_now();

	if (soak_make_dir(&s) < 0 || soak_start_daemon(&s) < 0) {
		printf("not ok 1 - start a private swerexd\n");
		if (s.dir[0] != '\0')
			soak_show_log(&s);
		goto out;
	}
	if ((s.base = event_base_new()) == NULL)
		goto out;
	swerex_connect_opts_init(&co);
	co.url = s.url;
	co.client_name = "soak-files";
	co.keepalive = -1;
	if (swerex_connect_with(&co, &s.fc, &e) < 0) {
		printf("not ok 1 - connect: %s\n", soak_errstr(e));
		swerex_error_free(e);
		goto out;
	}
	s.base_rss = soak_rss_kib(s.pid);
	s.base_fds = fds_count(s.pid);
	for (i = 0; i < s.n_workers; i++) {
		s.w[i].s = &s;
		s.w[i].idx = i;
		s.w[i].ev = evtimer_new(s.base, soak_step_cb, &s.w[i]);
		if (s.w[i].ev == NULL)
			goto out;
		soak_schedule(&s.w[i], 0);
	}
	s.ev_sample = evtimer_new(s.base, soak_sample_cb, &s);
	s.ev_files = evtimer_new(s.base, soak_files_cb, &s);
	s.ev_raw = evtimer_new(s.base, soak_raw_cb, &s);
	s.ev_end = evtimer_new(s.base, soak_end_cb, &s);
	s.ev_abort = evtimer_new(s.base, soak_abort_cb, &s);
	if (s.ev_sample == NULL || s.ev_files == NULL || s.ev_raw == NULL ||
	    s.ev_end == NULL || s.ev_abort == NULL)
		goto out;
	s.t0 = soak_now();
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	evtimer_add(s.ev_sample, &tv);
	evtimer_add(s.ev_files, &tv);
	evtimer_add(s.ev_raw, &tv);
	tv.tv_sec = (time_t)s.seconds;
	tv.tv_usec = (suseconds_t)((s.seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(s.ev_end, &tv);
	/* Stopping takes at most the longest action: bound it anyway. */
	tv.tv_sec += (time_t)SOAK_STOP_MAX;
	evtimer_add(s.ev_abort, &tv);
	event_base_loop(s.base, 0);
	ok = s.workers_done == s.n_workers;

	fds = soak_settle_fds(&s, &sessions);
	printf("# daemon after load: rss %ld KiB, fds %d, sessions %d\n",
	    soak_rss_kib(s.pid), fds, sessions);
	soak_count_lost(&s);
	soak_summary(&s, soak_now() - t_start);
	rc = 0;
	printf("1..6\n");
	printf("%s 1 - the load ran %.0f s and every worker stopped cleanly\n",
	    ok ? "ok" : "not ok", s.seconds);
	if (!ok)
		rc = 1;
	printf("%s 2 - every request answered exactly once (%lu lost, %lu "
	    "twice)\n", s.lost == 0 && s.dup == 0 ? "ok" : "not ok", s.lost,
	    s.dup);
	printf("%s 3 - every answer as expected (%lu failures)\n",
	    s.failures == 0 ? "ok" : "not ok", s.failures);
	if (s.lost || s.dup || s.failures)
		rc = 1;
	soak_rss_trend(&s, &rise, &mean);
	bound = mean / 10 > 2048 ? mean / 10 : 2048;
	if (s.no_rss)
		printf("ok 4 - daemon RSS bounded # SKIP --no-rss (%+.0f KiB "
		    "over the second half)\n", rise);
	else {
		printf("%s 4 - daemon RSS bounded: %+.0f KiB over the second "
		    "half (fit), limit %.0f KiB\n", rise <= bound ? "ok" :
		    "not ok", rise, bound);
		if (rise > bound)
			rc = 1;
	}
	printf("%s 5 - daemon fds back to %d after the load (%d, %d "
	    "sessions)\n", fds == s.base_fds && sessions == 0 ? "ok" :
	    "not ok", s.base_fds, fds, sessions);
	if (fds != s.base_fds || sessions != 0)
		rc = 1;
	swerex_client_free(s.fc);
	s.fc = NULL;
	st = soak_stop_daemon(&s);
	printf("%s 6 - daemon exits 0 on SIGTERM (status %d)\n",
	    st == 0 ? "ok" : "not ok", st);
	if (st != 0)
		rc = 1;
	if (rc != 0)
		soak_show_log(&s);
out:
	if (s.fc != NULL)
		swerex_client_free(s.fc);
	for (i = 0; i < s.n_workers; i++) {
		if (s.w[i].c != NULL)
			swerex_client_free(s.w[i].c);
		if (s.w[i].ev != NULL)
			event_free(s.w[i].ev);
	}
	if (s.ev_sample != NULL)
		event_free(s.ev_sample);
	if (s.ev_files != NULL)
		event_free(s.ev_files);
	if (s.ev_raw != NULL)
		event_free(s.ev_raw);
	if (s.ev_end != NULL)
		event_free(s.ev_end);
	if (s.ev_abort != NULL)
		event_free(s.ev_abort);
	if (s.base != NULL)
		event_base_free(s.base);
	soak_stop_daemon(&s);
	soak_free_reqs(&s);
	if (s.dir[0] != '\0')
		soak_rm_tree(s.dir);
	return rc;
}
