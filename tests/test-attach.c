/*
 * Raw input (SendInput) and live attach (Attach/Detach), through libswerex
 * against a real daemon: input reaches programs that read keys and lines,
 * C-c interrupts, an attachment sees the scrollback and then live output
 * without the daemon's prompt markers, detach and session end answer it, and
 * a watcher that never reads does not slow the agent or grow the daemon.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <event2/event.h>

#include "harness.h"
#include "raw.h"

/* Keep at most this much of what an attachment received. */
#define WATCH_MAX (4u * 1024 * 1024)

/* What one attachment received, and how it ended. */
struct watch {
	char *buf;
	size_t len;
	int chunks;
	bool ended;
	char reason[64];
	enum swerex_error_kind kind;   /* ended with an error */
	unsigned seq;                  /* order of the end among events */
};

static unsigned event_seq;

/* Append an attachment's bytes to its struct watch. */
static void
watch_chunk(struct swerex_client *c, uint64_t id, const char *data, size_t len,
	    void *arg)
{
	struct watch *w = arg;
	char *p;

	(void)c;
	(void)id;
	w->chunks++;
	if (w->len + len > WATCH_MAX)
		return;
	if ((p = realloc(w->buf, w->len + len + 1)) == NULL)
		return;
	memcpy(p + w->len, data, len);
	w->buf = p;
	w->len += len;
	w->buf[w->len] = '\0';
}

/* Record how an attachment ended. */
static void
watch_end(struct swerex_client *c, uint64_t id, const char *reason,
	  const struct swerex_error *error, void *arg)
{
	struct watch *w = arg;

	(void)c;
	(void)id;
	if (w->ended)
		printf("# a second end for attachment %llu\n",
		    (unsigned long long)id);
	w->ended = true;
	w->seq = ++event_seq;
	if (reason != NULL)
		snprintf(w->reason, sizeof w->reason, "%s", reason);
	if (error != NULL) {
		w->kind = error->kind;
		printf("# attachment %llu ended: %s: %s\n",
		    (unsigned long long)id, swerex_error_kind_name(error->kind),
		    error->message);
	}
}

/* Free what a watch holds. */
static void
watch_clear(struct watch *w)
{
	free(w->buf);
	memset(w, 0, sizeof *w);
}

/* A watch and the bytes it waits for. */
struct watch_wait {
	struct watch *w;
	const char *needle;
};

/* Tell whether the watch received the needle (or ended). */
static bool
watch_has(void *arg)
{
	struct watch_wait *ww = arg;

	return ww->w->ended || (ww->w->buf != NULL &&
	    memmem(ww->w->buf, ww->w->len, ww->needle, strlen(ww->needle)));
}

/* Run base until w received needle; false after a diagnostic on timeout. */
static bool
watch_until(struct event_base *base, struct watch *w, const char *needle)
{
	struct watch_wait ww = { w, needle };

	harness_drive_until(base, watch_has, &ww, HARNESS_TIMEOUT);
	if (w->buf != NULL && memmem(w->buf, w->len, needle, strlen(needle)))
		return true;
	printf("# attachment did not show \"%s\"\n", needle);
	tap_show("received", w->buf, w->len);
	return false;
}

/* Tell whether a watch has ended. */
static bool
watch_ended(void *arg)
{
	return ((struct watch *)arg)->ended;
}

/* Tell whether a reply slot is done. */
static bool
reply_done(void *arg)
{
	return ((struct harness_reply *)arg)->done;
}

/* Record a reply in its slot, numbering it among the events. */
static void
reply_seq_cb(struct swerex_client *c, const struct swerex_reply *reply,
	     void *arg)
{
	struct harness_reply *r = arg;

	harness_reply_cb(c, reply, arg);
	if (reply->type != SWEREX_REPLY_CHUNK)
		r->seq = ++event_seq;
}

/* Start a run on an event-driven client; return its id. */
static uint64_t
submit_run(struct swerex_client *c, const char *session, const char *command,
	   struct harness_reply *slot)
{
	struct swerex_run_opts o = { 0 };
	struct swerex_error *err = NULL;
	uint64_t id;

	o.session = session;
	o.command = command;
	o.check = SWEREX_CHECK_SILENT;
	id = swerex_submit_run(c, &o, false, harness_reply_cb, slot, &err);
	if (id == 0)
		harness_show_error("submit_run", err);
	swerex_error_free(err);
	return id;
}

/* Send input, blocking; false after a diagnostic on error. */
static bool
send_input(struct swerex_client *c, const char *session, const char *data,
	   size_t len)
{
	struct swerex_error *err = NULL;
	uint64_t written = 0;

	if (swerex_send_input(c, session, data, len, &written, &err) != 0) {
		harness_show_error("send_input", err);
		swerex_error_free(err);
		return false;
	}
	CHECK_INT(written, len);
	return true;
}

/* A program reading one key gets the key: no newline needed. */
HTEST(input_read_one_key)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct harness_reply run = { 0 };

	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "keys") == 0);
	REQUIRE(submit_run(c, "keys", "read -n1 k; echo \"got [$k]\"", &run));
	REQUIRE(send_input(c, "keys", "y", 1));
	CHECK(harness_drive_until(base, reply_done, &run, HARNESS_TIMEOUT));
	REQUIRE(run.type == SWEREX_REPLY_OBSERVATION);
	CHECK(harness_contains(run.observation->output,
	    run.observation->output_len, "got [y]"));
	CHECK_INT(run.observation->exit_code, 0);
	harness_reply_clear(&run);
	/* The session goes on normally afterwards. */
	CHECK_RUN(c, "keys", "echo next", "next\n", 0);
	swerex_client_free(c);
	event_base_free(base);
}

/* A line read by `read` arrives in pieces and ends at the newline sent. */
HTEST(input_read_line)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct harness_reply run = { 0 };

	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "line") == 0);
	REQUIRE(submit_run(c, "line", "read line; echo \"line=[$line]\"", &run));
	REQUIRE(send_input(c, "line", "hello ", 6));
	REQUIRE(send_input(c, "line", "world\n", 6));
	CHECK(harness_drive_until(base, reply_done, &run, HARNESS_TIMEOUT));
	REQUIRE(run.type == SWEREX_REPLY_OBSERVATION);
	CHECK(harness_contains(run.observation->output,
	    run.observation->output_len, "line=[hello world]"));
	harness_reply_clear(&run);
	swerex_client_free(c);
	event_base_free(base);
}

/* A Python REPL line typed with send_input runs in the REPL. */
HTEST(input_python_repl)
{
	struct swerex_client *c = harness_client(h);
	static const char *const prompt[] = { ">>> " };
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	if (access("/usr/bin/python3", X_OK) != 0)
		SKIP("no /usr/bin/python3");
	REQUIRE(harness_create(c, "py") == 0);
	o.session = "py";
	o.command = "/usr/bin/python3 -q -i";
	o.expect = prompt;
	o.n_expect = 1;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("python", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	CHECK_STR(obs->expect_string, ">>> ");
	swerex_observation_free(obs);
	REQUIRE(send_input(c, "py", "print(6 * 7)\n", 13));
	/* Leave the REPL; its observation holds what the line printed. */
	memset(&o, 0, sizeof o);
	o.session = "py";
	o.command = "exit()";
	o.is_interactive_quit = true;
	o.check = SWEREX_CHECK_SILENT;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("exit()", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	CHECK(harness_contains(obs->output, obs->output_len, "42"));
	swerex_observation_free(obs);
	CHECK_RUN(c, "py", "echo back", "back\n", 0);
}

/* Tell whether a streamed run printed "started" (its job is in front). */
static bool
run_started(void *arg)
{
	struct harness_reply *r = arg;

	return r->done || (r->data != NULL && strstr(r->data, "started"));
}

/*
 * C-c sent as input stops `sleep 30`: the run ends at once with 130. It is
 * sent once the job, in the foreground, printed: typed earlier, C-c would
 * reach bash itself (while it reads the line, it flushes it; while it forks
 * the job, the job is not interrupted), as on any terminal.
 */
HTEST(input_ctrl_c_interrupts)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct swerex_run_opts o = { 0 };
	struct harness_reply run = { 0 };
	char key[SWEREX_KEY_MAX];
	double t0;
	int n;

	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "cc") == 0);
	n = swerex_key_bytes("C-c", key);
	REQUIRE(n == 1 && key[0] == 3);
	o.session = "cc";
	o.command = "sh -c 'echo started; exec sleep 30'";
	o.check = SWEREX_CHECK_SILENT;
	REQUIRE(swerex_submit_run(c, &o, true, harness_reply_cb, &run, NULL));
	t0 = harness_now();
	REQUIRE(harness_drive_until(base, run_started, &run, HARNESS_TIMEOUT));
	REQUIRE(!run.done);
	REQUIRE(send_input(c, "cc", key, 1));
	CHECK(harness_drive_until(base, reply_done, &run, 10));
	REQUIRE(run.type == SWEREX_REPLY_OBSERVATION);
	CHECK(run.observation->has_exit_code);
	CHECK_INT(run.observation->exit_code, 130);
	CHECK(harness_now() - t0 < 10);
	harness_reply_clear(&run);
	swerex_client_free(c);
	event_base_free(base);
}

/*
 * Wait (bounded) until a session is back at its prompt: list_sessions says
 * idle. Polled: the daemon announces nothing when a command ends unasked.
 */
static bool
wait_idle(struct swerex_client *c, const char *session)
{
	double deadline = harness_now() + HARNESS_TIMEOUT;
	struct swerex_session_info *info = NULL;
	struct swerex_error *err = NULL;
	bool idle = false;
	size_t i, n = 0;

	while (!idle && harness_now() < deadline) {
		if (swerex_list_sessions(c, &info, &n, &err) != 0) {
			harness_show_error("list_sessions", err);
			swerex_error_free(err);
			return false;
		}
		for (i = 0; i < n; i++)
			if (strcmp(info[i].name, session) == 0 &&
			    info[i].state == SWEREX_SESSION_IDLE)
				idle = true;
		swerex_sessions_free(info, n);
		if (!idle)
			poll(NULL, 0, 20);
	}
	if (!idle)
		printf("# session %s did not come back to its prompt\n", session);
	return idle;
}

/* Interrupt a session that is idle: its answer carries the last status. */
static int
last_status(struct swerex_client *c, const char *session)
{
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	int code = -1;

	io.session = session;
	if (swerex_interrupt(c, &io, &obs, &err) != 0) {
		harness_show_error("interrupt", err);
		swerex_error_free(err);
		return -1;
	}
	if (obs->has_exit_code)
		code = obs->exit_code;
	swerex_observation_free(obs);
	return code;
}

/*
 * The timed-out case: a run gave up on `sleep 30` (the session stays
 * busy); C-c sent as input brings bash back to its prompt, and the
 * following interrupt, with nothing left to signal, reports the 130.
 */
HTEST(input_ctrl_c_after_timeout)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	REQUIRE(harness_create(c, "cct") == 0);
	obs = harness_run(c, "cct", "sleep 30", 0.5, SWEREX_CHECK_SILENT, &err);
	REQUIRE(obs == NULL && err != NULL);
	CHECK_INT(err->kind, SWEREX_ERR_COMMAND_TIMEOUT);
	swerex_error_free(err);
	REQUIRE(send_input(c, "cct", "\003", 1));
	REQUIRE(wait_idle(c, "cct"));
	CHECK_INT(last_status(c, "cct"), 130);
	CHECK_RUN(c, "cct", "echo ok", "ok\n", 0);
}

/* A pager a run timed out on quits on the "q" sent to it. */
HTEST(input_quits_less)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	if (access("/usr/bin/less", X_OK) != 0)
		SKIP("no /usr/bin/less");
	REQUIRE(harness_create(c, "pager") == 0);
	obs = harness_run(c, "pager", "seq 1000 | less", 0.5,
	    SWEREX_CHECK_SILENT, &err);
	REQUIRE(obs == NULL && err != NULL);
	CHECK_INT(err->kind, SWEREX_ERR_COMMAND_TIMEOUT);
	CHECK(err->observation != NULL && harness_contains(
	    err->observation->output, err->observation->output_len, "\n2\n"));
	swerex_error_free(err);
	REQUIRE(send_input(c, "pager", "q", 1));
	REQUIRE(wait_idle(c, "pager"));
	CHECK_INT(last_status(c, "pager"), 0);
	CHECK_RUN(c, "pager", "echo after-less", "after-less\n", 0);
}

/* Refusals: no such session, bash at its prompt, too much at once. */
HTEST(input_refused)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_error *err = NULL;
	char *big;

	CHECK(swerex_send_input(c, "nope", "x", 1, NULL, &err) == -1);
	CHECK(err != NULL && err->kind == SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);
	REQUIRE(harness_create(c, "idle") == 0);
	CHECK(swerex_send_input(c, "idle", "ls\n", 3, NULL, &err) == -1);
	CHECK(err != NULL && err->kind == SWEREX_ERR_INVALID_REQUEST);
	swerex_error_free(err);
	big = calloc(1, 65537);
	REQUIRE(big != NULL);
	CHECK(swerex_send_input(c, "idle", big, 65537, NULL, &err) == -1);
	CHECK(err != NULL && err->kind == SWEREX_ERR_INVALID_REQUEST);
	swerex_error_free(err);
	free(big);
	/* Nothing of it reached bash. */
	CHECK_RUN(c, "idle", "echo still", "still\n", 0);
}

/*
 * Input a program does not read piles up to a bound: then RESOURCE_EXHAUSTED
 * (limit=input) instead of memory without end. The terminal is raw, so the
 * kernel stops taking it (a canonical one drops a line's excess instead).
 */
HTEST(input_bounded)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;
	char *chunk;
	int i, refused = -1;

	REQUIRE(harness_create(c, "full") == 0);
	obs = harness_run(c, "full", "stty raw -echo; sleep 60", 0.5,
	    SWEREX_CHECK_SILENT, &err);
	REQUIRE(obs == NULL && err != NULL);
	swerex_error_free(err);
	err = NULL;
	chunk = malloc(65536);
	REQUIRE(chunk != NULL);
	memset(chunk, 'x', 65536);
	for (i = 0; i < 16 && refused < 0; i++)
		if (swerex_send_input(c, "full", chunk, 65536, NULL, &err) != 0)
			refused = i;
	free(chunk);
	printf("# refused after %d chunks of 64 KiB\n", refused);
	CHECK(refused >= 3 && refused <= 8);
	CHECK(err != NULL && err->kind == SWEREX_ERR_RESOURCE_EXHAUSTED);
	CHECK_STR(swerex_error_extra(err, "limit"), "input");
	swerex_error_free(err);
	/* The junk would be read as commands later: the session goes. */
	CHECK(harness_close(c, "full") == 0);
}

/* Key names give the bytes a terminal sends. */
TEST(key_names)
{
	char k[SWEREX_KEY_MAX];

	CHECK_INT(swerex_key_bytes("C-a", k), 1);
	CHECK_INT(k[0], 1);
	CHECK_INT(swerex_key_bytes("C-Z", k), 1);
	CHECK_INT(k[0], 26);
	CHECK_INT(swerex_key_bytes("C-]", k), 1);
	CHECK_INT(k[0], 0x1d);
	CHECK_INT(swerex_key_bytes("C-[", k), 1);
	CHECK_INT(k[0], 0x1b);
	CHECK_INT(swerex_key_bytes("C-@", k), 1);
	CHECK_INT(k[0], 0);
	CHECK_INT(swerex_key_bytes("Escape", k), 1);
	CHECK_INT(swerex_key_bytes("Enter", k), 1);
	CHECK_INT(k[0], '\r');
	CHECK_INT(swerex_key_bytes("BSpace", k), 1);
	CHECK_INT(k[0], 0x7f);
	CHECK_INT(swerex_key_bytes("Up", k), 3);
	CHECK(memcmp(k, "\033[A", 3) == 0);
	CHECK_INT(swerex_key_bytes("PageDown", k), 4);
	CHECK(memcmp(k, "\033[6~", 4) == 0);
	CHECK_INT(swerex_key_bytes("F1", k), 3);
	CHECK(memcmp(k, "\033OP", 3) == 0);
	CHECK_INT(swerex_key_bytes("F12", k), 5);
	CHECK(memcmp(k, "\033[24~", 5) == 0);
	CHECK_INT(swerex_key_bytes("M-x", k), 2);
	CHECK(memcmp(k, "\033x", 2) == 0);
	CHECK_INT(swerex_key_bytes("M-Up", k), 4);
	CHECK_INT(swerex_key_bytes("q", k), 1);
	CHECK_INT(k[0], 'q');
	CHECK_INT(swerex_key_bytes("Nonsense", k), -1);
	CHECK_INT(swerex_key_bytes("C-", k), -1);
	CHECK_INT(swerex_key_bytes("C-ab", k), -1);
}

/* Attach to a session; REQUIRE-style failure returns 0. */
static uint64_t
attach(struct swerex_client *c, const char *session, struct watch *w)
{
	struct swerex_error *err = NULL;
	uint64_t id;

	id = swerex_submit_attach(c, session, NULL, watch_chunk, watch_end, w,
	    &err);
	if (id == 0)
		harness_show_error("attach", err);
	swerex_error_free(err);
	return id;
}

/*
 * An attachment shows the scrollback, then the live output of the agent's
 * commands (from this connection and another), raw: escape sequences and
 * CR LF kept, the prompt markers never.
 */
HTEST(attach_scrollback_then_live)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct swerex_client *agent = harness_client(h);
	struct watch w = { 0 };
	struct swerex_error *err = NULL;

	REQUIRE(c != NULL);
	REQUIRE(harness_create(agent, "watched") == 0);
	CHECK_RUN(agent, "watched", "echo before-attach", "before-attach\n", 0);
	REQUIRE(attach(c, "watched", &w));
	REQUIRE(watch_until(base, &w, "before-attach\r\n"));
	CHECK(!w.ended);
	CHECK_RUN(agent, "watched", "echo live-output", "live-output\n", 0);
	CHECK(watch_until(base, &w, "live-output\r\n"));
	CHECK_RUN(agent, "watched", "printf '\\033[31mred\\033[0m\\n'", "red\n", 0);
	CHECK(watch_until(base, &w, "\033[31mred\033[0m\r\n"));
	/* The agent's requests on this very connection work while attached. */
	CHECK_RUN(c, "watched", "echo same-conn; false", "same-conn\n", 1);
	CHECK(watch_until(base, &w, "same-conn\r\n"));
	/* A syntax error, a failing command, output without a newline. */
	CHECK(harness_run(c, "watched", "if then", 5, SWEREX_CHECK_SILENT,
	    &err) == NULL);
	swerex_error_free(err);
	err = NULL;
	CHECK_RUN(c, "watched", "printf tail-no-newline", "tail-no-newline", 0);
	CHECK(watch_until(base, &w, "tail-no-newline"));
	CHECK(w.buf != NULL && memmem(w.buf, w.len, "@swx", 4) == NULL);
	CHECK(w.buf != NULL && memmem(w.buf, w.len, "__swx", 5) == NULL);
	CHECK(!w.ended);
	harness_close(agent, "watched");
	harness_drive_until(base, watch_ended, &w, HARNESS_TIMEOUT);
	CHECK(w.ended);
	CHECK_STR(w.reason, "session ended");
	CHECK(w.buf != NULL && memmem(w.buf, w.len, "@swx", 4) == NULL);
	watch_clear(&w);
	swerex_client_free(c);
	event_base_free(base);
}

/* scrollback = 0 sends no history; a smaller one only the tail. */
HTEST(attach_scrollback_option)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct swerex_attach_opts o = { 0 };
	struct watch none = { 0 }, tail = { 0 };
	struct swerex_error *err = NULL;

	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "sb") == 0);
	CHECK_RUN(c, "sb", "echo old-line; echo recent-line", NULL, 0);
	o.has_scrollback = true;
	o.scrollback = 0;
	REQUIRE(swerex_submit_attach(c, "sb", &o, watch_chunk, watch_end, &none,
	    &err));
	o.scrollback = 14;   /* "recent-line\r\n" is 13 */
	REQUIRE(swerex_submit_attach(c, "sb", &o, watch_chunk, watch_end, &tail,
	    &err));
	CHECK_RUN(c, "sb", "echo marker-now", "marker-now\n", 0);
	CHECK(watch_until(base, &none, "marker-now"));
	CHECK(watch_until(base, &tail, "marker-now"));
	CHECK(memmem(none.buf, none.len, "line", 4) == NULL);
	CHECK(memmem(tail.buf, tail.len, "recent-line\r\n", 13) != NULL);
	CHECK(memmem(tail.buf, tail.len, "old-line", 8) == NULL);
	harness_close(c, "sb");
	harness_drive_until(base, watch_ended, &tail, HARNESS_TIMEOUT);
	CHECK_STR(none.reason, "session ended");
	CHECK_STR(tail.reason, "session ended");
	watch_clear(&none);
	watch_clear(&tail);
	swerex_client_free(c);
	event_base_free(base);
}

static const char *const no_scrollback[] = { "--scrollback", "0", NULL };

/* With --scrollback 0 nothing is kept: an attachment sees live output only. */
HTEST_ARGS(attach_without_scrollback, no_scrollback)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct watch w = { 0 };

	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "nosb") == 0);
	CHECK_RUN(c, "nosb", "echo old-line", "old-line\n", 0);
	REQUIRE(attach(c, "nosb", &w));
	CHECK_RUN(c, "nosb", "echo new-line", "new-line\n", 0);
	CHECK(watch_until(base, &w, "new-line\r\n"));
	CHECK(memmem(w.buf, w.len, "old-line", 8) == NULL);
	harness_close(c, "nosb");
	harness_drive_until(base, watch_ended, &w, HARNESS_TIMEOUT);
	CHECK_STR(w.reason, "session ended");
	watch_clear(&w);
	swerex_client_free(c);
	event_base_free(base);
}

/*
 * Two attachments (two connections) both see the output; detaching one
 * answers the attachment ("detached") before the detach, and the other goes
 * on until the session ends.
 */
HTEST(attach_two_and_detach)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c1 = harness_connect_base(h, base);
	struct swerex_client *c2 = harness_connect_base(h, base);
	struct swerex_client *agent = harness_client(h);
	struct watch w1 = { 0 }, w2 = { 0 };
	struct harness_reply det = { 0 }, bad = { 0 };
	struct swerex_error *err = NULL;
	uint64_t id1, id2;

	REQUIRE(c1 != NULL && c2 != NULL);
	REQUIRE(harness_create(agent, "two") == 0);
	REQUIRE((id1 = attach(c1, "two", &w1)) != 0);
	REQUIRE((id2 = attach(c2, "two", &w2)) != 0);
	CHECK_RUN(agent, "two", "echo to-both", "to-both\n", 0);
	CHECK(watch_until(base, &w1, "to-both"));
	CHECK(watch_until(base, &w2, "to-both"));
	/* An id of another connection is not this one's to end. */
	REQUIRE(swerex_submit_detach(c2, id1 == id2 ? id2 + 100 : id1,
	    harness_reply_cb, &bad, &err));
	REQUIRE(swerex_submit_detach(c1, id1, reply_seq_cb, &det, &err));
	CHECK(harness_drive_until(base, reply_done, &det, HARNESS_TIMEOUT));
	CHECK(harness_drive_until(base, reply_done, &bad, HARNESS_TIMEOUT));
	CHECK_INT(det.type, SWEREX_REPLY_DETACHED);
	CHECK(w1.ended);
	CHECK_STR(w1.reason, "detached");
	CHECK(w1.seq != 0 && w1.seq < det.seq);
	if (id1 != id2) {
		CHECK_INT(bad.type, SWEREX_REPLY_ERROR);
		CHECK(bad.error && bad.error->kind == SWEREX_ERR_INVALID_REQUEST);
	}
	CHECK(!w2.ended);
	CHECK_RUN(agent, "two", "echo only-second", "only-second\n", 0);
	CHECK(watch_until(base, &w2, "only-second"));
	CHECK(memmem(w1.buf, w1.len, "only-second", 11) == NULL);
	harness_reply_clear(&det);
	harness_reply_clear(&bad);
	/* The same id again: nothing left to detach. */
	CHECK(swerex_detach(c1, id1, &err) == -1);
	CHECK(err != NULL && err->kind == SWEREX_ERR_INVALID_REQUEST);
	swerex_error_free(err);
	harness_close(agent, "two");
	harness_drive_until(base, watch_ended, &w2, HARNESS_TIMEOUT);
	CHECK_STR(w2.reason, "session ended");
	watch_clear(&w1);
	watch_clear(&w2);
	swerex_client_free(c1);
	swerex_client_free(c2);
	event_base_free(base);
}

/* Attaching to nothing fails; a client that goes away frees its attachment. */
HTEST(attach_errors_and_client_loss)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct swerex_client *agent = harness_client(h);
	struct watch w = { 0 }, gone = { 0 };

	REQUIRE(c != NULL);
	REQUIRE(attach(c, "missing", &w));
	harness_drive_until(base, watch_ended, &w, HARNESS_TIMEOUT);
	CHECK(w.ended && w.reason[0] == '\0');
	CHECK_INT(w.kind, SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	watch_clear(&w);
	REQUIRE(harness_create(agent, "lost") == 0);
	REQUIRE(attach(c, "lost", &gone));
	CHECK_RUN(agent, "lost", "echo seen", "seen\n", 0);
	CHECK(watch_until(base, &gone, "seen"));
	/* The library fails it locally; the daemon drops it with the socket. */
	swerex_client_free(c);
	CHECK(gone.ended);
	CHECK_INT(gone.kind, SWEREX_ERR_DISCONNECTED);
	CHECK_RUN(agent, "lost", "echo after-loss", "after-loss\n", 0);
	harness_close(agent, "lost");
	CHECK(harness_running(h));
	watch_clear(&gone);
	event_base_free(base);
}

/* Resident memory of a process in KiB, or -1. */
static long long
rss_kb(pid_t pid)
{
	char path[64], line[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			v = strtoll(line + 6, NULL, 10);
	fclose(f);
	return v;
}

/* Run a command that prints bytes x's, capped; return seconds or -1. */
static double
flood(struct swerex_client *c, const char *session, long bytes)
{
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	char cmd[128];
	double t0 = harness_now();

	snprintf(cmd, sizeof cmd, "head -c %ld /dev/zero | tr '\\0' x", bytes);
	o.session = session;
	o.command = cmd;
	o.check = SWEREX_CHECK_SILENT;
	o.max_output = 4096;
	o.has_timeout = true;
	o.timeout = 120;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("flood", err);
		swerex_error_free(err);
		return -1;
	}
	CHECK_INT(obs->output_bytes, bytes);
	swerex_observation_free(obs);
	return harness_now() - t0;
}

/*
 * An attached client that never reads: the agent's flood arrives complete
 * and about as fast as without it, the daemon's memory stays bounded, and
 * once the watcher reads again it is told that output was skipped.
 */
HTEST(attach_never_reading_does_not_slow)
{
	struct swerex_client *agent = harness_client(h);
	Swerex__V1__AttachRequest ar = SWEREX__V1__ATTACH_REQUEST__INIT;
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Response *resp = NULL;
	long long rss0, rss;
	double alone, watched;
	const long bytes = 20L * 1000 * 1000;
	bool notice = false;
	struct raw r;
	int got;

	harness_watchdog(240);
	REQUIRE(harness_create(agent, "flood") == 0);
	alone = flood(agent, "flood", bytes);
	REQUIRE(alone >= 0);
	rss0 = rss_kb(harness_pid(h));
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);
	ar.session = "flood";
	req.id = 7;
	req.body_case = SWEREX__V1__REQUEST__BODY_ATTACH;
	req.attach = &ar;
	REQUIRE(raw_send(&r, &req));
	/* The attachment is in place once a request after it is answered. */
	REQUIRE(raw_round_trip(&r, 8, NULL));
	watched = flood(agent, "flood", bytes);
	rss = rss_kb(harness_pid(h));
	printf("# %ld bytes: %.2f s alone, %.2f s with a watcher that never "
	    "reads; daemon RSS %lld -> %lld KiB\n", bytes, alone, watched,
	    rss0, rss);
	CHECK(watched >= 0 && watched < 3 * alone + 2);
	CHECK(rss0 > 0 && rss - rss0 < 16 * 1024);
	CHECK_RUN(agent, "flood", "echo after", "after\n", 0);
	/* Reading again: the backlog drains and the notice follows. */
	while (!notice && (got = raw_recv(&r, &resp, 20)) == 1) {
		if (resp->body_case == SWEREX__V1__RESPONSE__BODY_CHUNK &&
		    resp->chunk->data.len > 0 &&
		    memmem(resp->chunk->data.data, resp->chunk->data.len,
		    "[swerex: output skipped]", 24) != NULL)
			notice = true;
		raw_resp_free(resp);
		resp = NULL;
	}
	CHECK(notice);
	raw_close(&r);
	CHECK_RUN(agent, "flood", "echo done", "done\n", 0);
}

/* The CLI under a pty of our own, and what it printed. */
struct tty {
	pid_t pid;
	int master;
	char buf[65536];
	size_t len;
};

/* Start `swerex attach` with extra arguments on a new pty; false if not. */
static bool
tty_start(struct tty *t, struct harness *h, const char *session,
	  const char *opt)
{
	const char *cli = getenv("SWEREX_CLI");
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };

	memset(t, 0, sizeof *t);
	t->master = -1;
	if (cli == NULL)
		return false;
	t->pid = forkpty(&t->master, NULL, NULL, &ws);
	if (t->pid < 0)
		return false;
	if (t->pid == 0) {
		if (opt != NULL)
			execl(cli, "swerex", "-S", harness_url(h), "attach", opt,
			    session, (char *)NULL);
		else
			execl(cli, "swerex", "-S", harness_url(h), "attach",
			    session, (char *)NULL);
		_exit(127);
	}
	return true;
}

/* Read the pty until it showed needle; false on EOF or after 20 s. */
static bool
tty_until(struct tty *t, const char *needle)
{
	double deadline = harness_now() + 20;
	struct pollfd pfd = { t->master, POLLIN, 0 };
	ssize_t n;

	while (!memmem(t->buf, t->len, needle, strlen(needle))) {
		if (harness_now() > deadline ||
		    poll(&pfd, 1, 200) < 0 || t->len == sizeof t->buf)
			break;
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		n = read(t->master, t->buf + t->len, sizeof t->buf - t->len);
		if (n <= 0)
			break;
		t->len += (size_t)n;
	}
	if (memmem(t->buf, t->len, needle, strlen(needle)))
		return true;
	printf("# the attached terminal did not show \"%s\"\n", needle);
	tap_show("shown", t->buf, t->len);
	return false;
}

/* Tell whether the pty is in raw mode (no line editing, no echo). */
static bool
tty_raw(const struct tty *t)
{
	struct termios tio;

	return tcgetattr(t->master, &tio) == 0 &&
	    !(tio.c_lflag & (ICANON | ECHO | ISIG));
}

/* Tell whether the pty is back in its cooked, echoing mode. */
static bool
tty_cooked(const struct tty *t)
{
	struct termios tio;

	return tcgetattr(t->master, &tio) == 0 &&
	    (tio.c_lflag & ICANON) && (tio.c_lflag & ECHO) &&
	    (tio.c_lflag & ISIG);
}

/* Wait (bounded) for the CLI to exit; its wait status, or -1. */
static int
tty_wait(struct tty *t)
{
	double deadline = harness_now() + 20;
	char buf[4096];
	int status;
	pid_t r;

	for (;;) {
		r = waitpid(t->pid, &status, WNOHANG);
		if (r == t->pid)
			break;
		if (harness_now() > deadline) {
			kill(t->pid, SIGKILL);
			waitpid(t->pid, &status, 0);
			status = -1;
			break;
		}
		/* Drain the pty meanwhile; a full one would block the CLI. */
		struct pollfd pfd = { t->master, POLLIN, 0 };
		if (poll(&pfd, 1, 50) > 0 && read(t->master, buf, sizeof buf) <= 0)
			poll(NULL, 0, 20);	/* pty closed: only the exit is left */
	}
	t->pid = 0;
	return status;
}

/* Kill what is left and close the pty. */
static void
tty_close(struct tty *t)
{
	if (t->pid > 0) {
		kill(t->pid, SIGKILL);
		waitpid(t->pid, NULL, 0);
	}
	if (t->master >= 0)
		close(t->master);
}

/*
 * `swerex attach` on a terminal: raw mode, the scrollback and live output
 * shown, typed keys ignored when read-only, C-] detaches, and the terminal
 * is back in its modes when it says so.
 */
HTEST(cli_attach_on_a_terminal)
{
	struct swerex_client *agent = harness_client(h);
	struct tty t;
	int status;

	if (getenv("SWEREX_CLI") == NULL)
		SKIP("SWEREX_CLI not set");
	REQUIRE(harness_create(agent, "tty") == 0);
	CHECK_RUN(agent, "tty", "echo from-before", "from-before\n", 0);
	REQUIRE(tty_start(&t, h, "tty", NULL));
	CHECK(tty_until(&t, "from-before\r\n"));
	CHECK(tty_until(&t, "read-only"));
	CHECK(tty_raw(&t));
	/* Read-only: this key must not reach the session (it would be refused
	 * anyway, bash being at its prompt; the CLI does not even send it). */
	CHECK(write(t.master, "x", 1) == 1);
	CHECK_RUN(agent, "tty", "echo live-line", "live-line\n", 0);
	CHECK(tty_until(&t, "live-line\r\n"));
	CHECK(write(t.master, "\035", 1) == 1);
	CHECK(tty_until(&t, "[swerex: detached]"));
	CHECK(tty_cooked(&t));
	status = tty_wait(&t);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(memmem(t.buf, t.len, "@swx", 4) == NULL);
	tty_close(&t);
	CHECK_RUN(agent, "tty", "echo after", "after\n", 0);
}

/*
 * `swerex attach --write`: the session takes the terminal's size and
 * follows it; typed keys reach the program the agent's command runs;
 * SIGTERM ends the CLI with the terminal restored.
 */
HTEST(cli_attach_write_and_signal)
{
	struct event_base *base = event_base_new();
	struct swerex_client *c = harness_connect_base(h, base);
	struct harness_reply run = { 0 };
	struct winsize big = { .ws_row = 40, .ws_col = 132 };
	bool resized = false;
	struct tty t;
	int status, i;

	if (getenv("SWEREX_CLI") == NULL)
		SKIP("SWEREX_CLI not set");
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "rw") == 0);
	REQUIRE(tty_start(&t, h, "rw", "--write"));
	CHECK(tty_until(&t, "keys go to its program"));
	/* The session took the attached terminal's size before the notice. */
	CHECK_RUN(c, "rw", "stty size", "24 80\n", 0);
	/* And follows it: the CLI gets SIGWINCH when its terminal changes. */
	CHECK(ioctl(t.master, TIOCSWINSZ, &big) == 0);
	for (i = 0; i < 200 && !resized; i++) {
		struct swerex_observation *obs = harness_exec(c, "rw",
		    "stty size");

		resized = obs != NULL && obs->output_len == 7 &&
		    memcmp(obs->output, "40 132\n", 7) == 0;
		swerex_observation_free(obs);
	}
	CHECK(resized);
	REQUIRE(submit_run(c, "rw", "read -n1 k; echo \"typed [$k]\"", &run));
	/* The run is in place once a request after it is answered. */
	CHECK(swerex_send_input(c, "rw", "", 0, NULL, NULL) == 0);
	CHECK(write(t.master, "q", 1) == 1);
	CHECK(harness_drive_until(base, reply_done, &run, HARNESS_TIMEOUT));
	REQUIRE(run.type == SWEREX_REPLY_OBSERVATION);
	CHECK(harness_contains(run.observation->output,
	    run.observation->output_len, "typed [q]"));
	CHECK(tty_until(&t, "typed [q]\r\n"));
	CHECK(tty_raw(&t));
	kill(t.pid, SIGTERM);
	status = tty_wait(&t);
	CHECK(status != -1 && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 128 + SIGTERM);
	CHECK(tty_cooked(&t));
	tty_close(&t);
	harness_reply_clear(&run);
	swerex_client_free(c);
	event_base_free(base);
}

/*
 * The daemon dies under an attached terminal: the CLI says the connection
 * was lost, exits 3 and leaves the terminal as it found it.
 */
TEST(cli_attach_daemon_lost)
{
	struct harness *h;
	struct tty t;
	int status;

	if (getenv("SWEREX_CLI") == NULL)
		SKIP("SWEREX_CLI not set");
	h = harness_start(NULL);
	REQUIRE(h != NULL);
	if (harness_create(harness_client(h), "lost") != 0 ||
	    !tty_start(&t, h, "lost", NULL)) {
		harness_free(h);
		REQUIRE(0);
	}
	CHECK(tty_until(&t, "read-only"));
	CHECK(tty_raw(&t));
	harness_kill(h);
	CHECK(tty_until(&t, "DISCONNECTED"));
	status = tty_wait(&t);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 3);
	CHECK(tty_cooked(&t));
	tty_close(&t);
	harness_free(h);
}

TAP_MAIN(
	TAP_T(key_names),
	TAP_T(input_read_one_key),
	TAP_T(input_read_line),
	TAP_T(input_python_repl),
	TAP_T(input_ctrl_c_interrupts),
	TAP_T(input_ctrl_c_after_timeout),
	TAP_T(input_quits_less),
	TAP_T(input_refused),
	TAP_T(input_bounded),
	TAP_T(attach_scrollback_then_live),
	TAP_T(attach_scrollback_option),
	TAP_T(attach_without_scrollback),
	TAP_T(attach_two_and_detach),
	TAP_T(attach_errors_and_client_loss),
	TAP_T(attach_never_reading_does_not_slow),
	TAP_T(cli_attach_on_a_terminal),
	TAP_T(cli_attach_write_and_signal),
	TAP_T(cli_attach_daemon_lost),
)
