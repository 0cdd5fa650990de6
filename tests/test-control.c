/*
 * Control: timeouts, interactive programs, interrupts, session death,
 * concurrency across sessions and connections, daemon shutdown.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "harness.h"

/* Run opts built from a command, a session, a timeout (< 0: none) and check. */
static struct swerex_run_opts
run_opts(const char *session, const char *command, double timeout,
	 enum swerex_check check)
{
	struct swerex_run_opts o = { 0 };

	o.session = session;
	o.command = command;
	if (timeout >= 0) {
		o.has_timeout = true;
		o.timeout = timeout;
	}
	o.check = check;
	return o;
}

/* Run opts for an interactive command or quit with one expect string. */
static struct swerex_run_opts
interactive_opts(const char *session, const char *command, const char *const *expect,
		 size_t n_expect, double timeout)
{
	struct swerex_run_opts o = run_opts(session, command, timeout, SWEREX_CHECK_SILENT);

	o.expect = expect;
	o.n_expect = n_expect;
	return o;
}

/* Run opts and return the observation; fail the test (NULL) on error. */
static struct swerex_observation *
run_ok_at(const char *file, int line, struct swerex_client *c,
	  const struct swerex_run_opts *o)
{
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	if (swerex_run(c, o, &obs, &err) != 0) {
		tap_diag(file, line, "run of \"%s\" in %s failed", o->command,
			 o->session ? o->session : "(default)");
		harness_show_error("error", err);
		swerex_error_free(err);
		return NULL;
	}
	return obs;
}
#define run_ok(c, o) run_ok_at(__FILE__, __LINE__, (c), (o))

/* Interrupt a session and return the observation; fail (NULL) on error. */
static struct swerex_observation *
interrupt_at(const char *file, int line, struct swerex_client *c,
	     const struct swerex_interrupt_opts *io)
{
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	if (swerex_interrupt(c, io, &obs, &err) != 0) {
		tap_diag(file, line, "interrupt of %s failed", io->session);
		harness_show_error("error", err);
		swerex_error_free(err);
		return NULL;
	}
	return obs;
}
#define interrupt_session(c, io) interrupt_at(__FILE__, __LINE__, (c), (io))

/* Queue a run on an event-driven client; fail the test on error. */
static uint64_t
submit_run(struct swerex_client *c, const char *session, const char *command,
	   double timeout, struct harness_reply *r)
{
	struct swerex_run_opts o = run_opts(session, command, timeout, SWEREX_CHECK_SILENT);
	struct swerex_error *err = NULL;
	uint64_t id;

	id = swerex_submit_run(c, &o, false, harness_reply_cb, r, &err);
	if (id == 0) {
		tap_diag(__FILE__, __LINE__, "submit_run(%s) failed", command);
		harness_show_error("error", err);
		swerex_error_free(err);
	}
	return id;
}

/* Whether a reply slot holds an error of kind. */
static bool
reply_is_error(const struct harness_reply *r, enum swerex_error_kind kind)
{
	return r->done && r->type == SWEREX_REPLY_ERROR && r->error != NULL &&
	    r->error->kind == kind;
}

/* Whether a reply slot holds an observation with exactly output. */
static bool
reply_output_is(const struct harness_reply *r, const char *output)
{
	return r->done && r->type == SWEREX_REPLY_OBSERVATION &&
	    r->observation != NULL &&
	    tap_mem_eq(r->observation->output, r->observation->output_len, output);
}

HTEST(timeout_busy_interrupt_recover)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_run_opts o;
	struct swerex_observation *obs;
	struct swerex_error *err;

	REQUIRE(harness_create(c, "to") == 0);
	o = run_opts("to", "echo before; sleep 3; echo after", 1.0, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	if (err != NULL) {
		CHECK(err->observation != NULL);
		if (err->observation != NULL)
			CHECK_MEM(err->observation->output, err->observation->output_len,
				  "before\n");
		swerex_error_free(err);
	}
	/* The command is still running: the session is busy. */
	o = run_opts("to", "echo x", 5, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_BUSY);
	swerex_error_free(err);

	io.session = "to";
	obs = interrupt_session(c, &io);
	if (obs != NULL) {
		if (obs->has_exit_code)
			CHECK_INT(obs->exit_code, 130);
		harness_show_observation("interrupt", obs);
		swerex_observation_free(obs);
	}
	CHECK_RUN(c, "to", "echo asdf", "asdf\n", 0);
}

HTEST(interactive_input_after_timeout)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs;
	struct swerex_error *err;

	REQUIRE(harness_create(c, "rd") == 0);
	o = run_opts("rd", "read -r line; echo \"got $line\"", 0.3, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	if (err != NULL && err->observation != NULL)
		CHECK_MEM(err->observation->output, err->observation->output_len, "");
	swerex_error_free(err);

	/* Input for the waiting program; the run ends when the prompt is back. */
	o = run_opts("rd", "hello", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	o.is_interactive_command = true;
	obs = run_ok(c, &o);
	if (obs != NULL) {
		CHECK_MEM(obs->output, obs->output_len, "got hello\n");
		CHECK(obs->has_exit_code);
		CHECK_INT(obs->exit_code, 0);
		swerex_observation_free(obs);
	}
	CHECK_RUN(c, "rd", "echo asdf", "asdf\n", 0);
}

/* Wait until fd is readable or timeout seconds pass. */
static bool
wait_readable(int fd, double timeout)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	double deadline = harness_now() + timeout;
	int r;

	for (;;) {
		r = poll(&pfd, 1, (int)((deadline - harness_now()) * 1000) + 1);
		if (r > 0)
			return true;
		if (r == 0 || errno != EINTR || harness_now() > deadline)
			return false;
	}
}

HTEST(carried_over_output)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs;
	char go[512], done[512], cmd[1600], buf[16];
	int go_fd = -1, done_fd = -1;

	REQUIRE(harness_create(c, "carry") == 0);
	snprintf(go, sizeof go, "%s/go", harness_dir(h));
	snprintf(done, sizeof done, "%s/done", harness_dir(h));
	REQUIRE(mkfifo(go, 0600) == 0 && mkfifo(done, 0600) == 0);

	/* A background job prints once we say so, while the session is idle. */
	snprintf(cmd, sizeof cmd,
		 "(read -r _ < '%s'; echo bg-late; echo x > '%s') &", go, done);
	obs = harness_exec(c, "carry", cmd);
	REQUIRE(obs != NULL);
	CHECK(!harness_contains(obs->output, obs->output_len, "bg-late"));
	CHECK_INT(obs->exit_code, 0);
	swerex_observation_free(obs);

	done_fd = open(done, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	go_fd = open(go, O_RDWR | O_CLOEXEC);
	REQUIRE(done_fd >= 0 && go_fd >= 0);
	REQUIRE(write(go_fd, "\n", 1) == 1);
	if (!wait_readable(done_fd, 20))
		tap_diag(__FILE__, __LINE__, "the background job did not finish");
	CHECK(read(done_fd, buf, sizeof buf) > 0);
	close(go_fd);
	close(done_fd);

	/* bg-late was printed before this command was sent: it comes first. */
	obs = harness_exec(c, "carry", "echo next");
	REQUIRE(obs != NULL);
	printf("# observation after the background job: carried_over=%llu\n",
	       (unsigned long long)obs->carried_over);
	tap_show("output", obs->output, obs->output_len);
	CHECK(obs->output_len >= 13 && memcmp(obs->output, "bg-late\nnext\n", 13) == 0);
	CHECK_INT(obs->carried_over, 8);
	CHECK_INT(obs->exit_code, 0);
	swerex_observation_free(obs);
}

HTEST(background_output_during_next_command)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs;
	const char *late, *next;
	double t0;

	REQUIRE(harness_create(c, "bgout") == 0);
	t0 = harness_now();
	obs = harness_exec(c, "bgout", "(sleep 0.5; echo bg-late) &");
	REQUIRE(obs != NULL);
	CHECK(harness_now() - t0 < 0.5 ||
	      !harness_contains(obs->output, obs->output_len, "bg-late"));
	swerex_observation_free(obs);

	/* wait makes the ordering deterministic: bg-late, then next. */
	obs = harness_exec(c, "bgout", "wait; echo next");
	REQUIRE(obs != NULL);
	tap_show("output", obs->output, obs->output_len);
	late = memmem(obs->output, obs->output_len, "bg-late\n", 8);
	next = memmem(obs->output, obs->output_len, "next\n", 5);
	CHECK(late != NULL);
	CHECK(next != NULL);
	CHECK(late == NULL || next == NULL || late < next);
	swerex_observation_free(obs);
}

/* Start python3, print through it, quit it, and check the shell is back. */
static void
python_round(struct swerex_client *c, const char *session)
{
	static const char *const prompt[] = { ">>> " };
	struct swerex_run_opts o;
	struct swerex_observation *obs;

	o = interactive_opts(session, "python3", prompt, 1, HARNESS_TIMEOUT);
	obs = run_ok(c, &o);
	REQUIRE(obs != NULL);
	CHECK_STR(obs->expect_string, ">>> ");
	CHECK(!obs->has_exit_code);
	swerex_observation_free(obs);

	o = interactive_opts(session, "print('hello world')", prompt, 1, HARNESS_TIMEOUT);
	o.is_interactive_command = true;
	obs = run_ok(c, &o);
	REQUIRE(obs != NULL);
	CHECK(harness_contains(obs->output, obs->output_len, "hello world"));
	CHECK(!harness_contains(obs->output, obs->output_len, "print("));
	CHECK_STR(obs->expect_string, ">>> ");
	if (tap_failed_now)
		harness_show_observation("print", obs);
	swerex_observation_free(obs);

	o = run_opts(session, "quit()", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	o.is_interactive_quit = true;
	obs = run_ok(c, &o);
	REQUIRE(obs != NULL);
	swerex_observation_free(obs);

	CHECK_RUN(c, session, "echo hi", "hi\n", 0);
}

HTEST(interactive_python)
{
	struct swerex_client *c = harness_client(h);

	REQUIRE(harness_create(c, "py") == 0);
	python_round(c, "py");
	python_round(c, "py");
}

HTEST(interactive_expect_timeout)
{
	static const char *const never[] = { "NEVER" };
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs;
	struct swerex_error *err;

	REQUIRE(harness_create(c, "pynever") == 0);
	o = interactive_opts("pynever", "python3", never, 1, 0.5);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	swerex_error_free(err);

	o = run_opts("pynever", "quit()", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	o.is_interactive_quit = true;
	obs = run_ok(c, &o);
	swerex_observation_free(obs);
	CHECK_RUN(c, "pynever", "echo ok", "ok\n", 0);
}

HTEST(interrupt_sleep)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_run_opts o;
	struct swerex_observation *obs;
	struct swerex_error *err;
	double t0;

	REQUIRE(harness_create(c, "intr") == 0);
	o = run_opts("intr", "sleep 10", 0.3, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	swerex_error_free(err);
	io.session = "intr";
	t0 = harness_now();
	obs = interrupt_session(c, &io);
	CHECK(harness_now() - t0 < 5);
	if (obs != NULL && obs->has_exit_code)
		CHECK_INT(obs->exit_code, 130);
	swerex_observation_free(obs);
	CHECK_RUN(c, "intr", "echo asdf", "asdf\n", 0);
}

HTEST(interrupt_program_ignoring_sigint)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_run_opts o;
	struct swerex_observation *obs;
	struct swerex_error *err;
	double t0;

	REQUIRE(harness_create(c, "less") == 0);
	obs = harness_exec(c, "less", "command -v less");
	REQUIRE(obs != NULL);
	if (!obs->has_exit_code || obs->exit_code != 0) {
		printf("# skip: less is not installed\n");
		swerex_observation_free(obs);
		return;
	}
	swerex_observation_free(obs);

	o = run_opts("less", "echo blargh | less -+F", 0.5, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	swerex_error_free(err);

	io.session = "less";
	io.n_retry = 2;
	io.has_n_retry = true;
	io.timeout = 0.2;
	t0 = harness_now();
	obs = interrupt_session(c, &io);
	CHECK(harness_now() - t0 < 10);
	if (obs != NULL) {
		printf("# interrupt of less: failure_reason \"%s\"\n", obs->failure_reason);
		CHECK(obs->failure_reason != NULL && *obs->failure_reason != '\0');
		swerex_observation_free(obs);
	}
	CHECK_RUN(c, "less", "echo ok", "ok\n", 0);
}

HTEST(exit_kills_session)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_session_info *s = NULL;
	struct swerex_run_opts o;
	struct swerex_error *err = NULL;
	const char *st;
	size_t n = 0, i;

	REQUIRE(harness_create(c, "mortal") == 0);
	o = run_opts("mortal", "exit 3", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_DIED);
	if (err != NULL) {
		st = swerex_error_extra(err, "exit_status");
		CHECK(st != NULL);
		printf("# exit_status extra: %s\n", st ? st : "(none)");
		swerex_error_free(err);
	}
	o = run_opts("mortal", "echo hi", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_DIED);
	swerex_error_free(err);

	err = NULL;
	if (swerex_list_sessions(c, &s, &n, &err) == 0) {
		for (i = 0; i < n; i++) {
			if (strcmp(s[i].name, "mortal") != 0)
				continue;
			CHECK_INT(s[i].state, SWEREX_SESSION_DEAD);
			CHECK(WIFEXITED(s[i].exit_status) && WEXITSTATUS(s[i].exit_status) == 3);
		}
		swerex_sessions_free(s, n);
	} else {
		tap_diag(__FILE__, __LINE__, "list_sessions failed");
		harness_show_error("error", err);
		swerex_error_free(err);
	}

	REQUIRE(harness_close(c, "mortal") == 0);
	REQUIRE(harness_create(c, "mortal") == 0);
	CHECK_RUN(c, "mortal", "echo reborn", "reborn\n", 0);
}

HTEST(bash_killed_from_outside)
{
	struct swerex_client *c = harness_client(h), *ce;
	struct harness_reply run = { 0 }, ls = { 0 }, *slot;
	struct swerex_run_opts o;
	struct swerex_error *err = NULL;
	struct event_base *base;
	size_t i;
	int pid;

	REQUIRE(harness_create(c, "victim") == 0);
	pid = harness_session_pid(c, "victim");
	REQUIRE(pid > 0);
	base = event_base_new();
	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);

	REQUIRE(submit_run(ce, "victim", "sleep 100", -1, &run) != 0);
	REQUIRE(swerex_submit_list_sessions(ce, harness_reply_cb, &ls, &err) != 0);
	slot = &ls;
	REQUIRE(harness_drive(base, &slot, 1, 20));
	CHECK(!run.done);
	for (i = 0; i < ls.n_sessions; i++) {
		if (strcmp(ls.sessions[i].name, "victim") == 0)
			CHECK_INT(ls.sessions[i].state, SWEREX_SESSION_RUNNING);
	}

	REQUIRE(kill(pid, SIGKILL) == 0);
	slot = &run;
	if (!harness_drive(base, &slot, 1, 20))
		tap_diag(__FILE__, __LINE__, "no reply to the run after bash was killed");
	CHECK(reply_is_error(&run, SWEREX_ERR_SESSION_DIED));
	if (tap_failed_now)
		harness_reply_show("run", &run);

	o = run_opts("victim", "echo hi", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_DIED);
	swerex_error_free(err);
	CHECK(harness_close(c, "victim") == 0);

	swerex_client_free(ce);
	event_base_free(base);
	harness_reply_clear(&run);
	harness_reply_clear(&ls);
}

/* Interrupt a session from an event-driven client and drive both replies. */
static void
interrupt_and_drain(struct event_base *base, struct swerex_client *ce,
		    const char *session, struct harness_reply *pending)
{
	struct swerex_interrupt_opts io = { 0 };
	struct harness_reply ir = { 0 }, *slots[2] = { pending, &ir };
	struct swerex_error *err = NULL;

	io.session = session;
	if (swerex_submit_interrupt(ce, &io, harness_reply_cb, &ir, &err) == 0) {
		tap_diag(__FILE__, __LINE__, "submit_interrupt failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		return;
	}
	if (!harness_drive(base, slots, 2, 20)) {
		tap_diag(__FILE__, __LINE__, "no reply to the interrupted run or the interrupt");
		harness_reply_show("run", pending);
		harness_reply_show("interrupt", &ir);
	}
	CHECK(ir.type == SWEREX_REPLY_OBSERVATION);
	if (ir.type != SWEREX_REPLY_OBSERVATION)
		harness_reply_show("interrupt", &ir);
	harness_reply_clear(&ir);
}

/*
 * An interrupt that lands while bash is still reading a command line (it
 * reads a byte at a time) must not leave the rest of the line to run as a
 * command of its own: the previous command's eval ran again, so its output
 * showed up in the next observation. Lines of growing length, interrupted
 * as soon as they are sent, catch bash at different points of the line.
 */
HTEST(interrupt_mid_command_line)
{
	struct swerex_client *c = harness_client(h), *ce;
	struct harness_reply run = { 0 };
	struct event_base *base;
	char old[32], want[32], *cmd;
	size_t i, pad;

	REQUIRE(harness_create(c, "mid") == 0);
	base = event_base_new();
	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	REQUIRE((cmd = malloc(4200)) != NULL);
	for (i = 0; i < 40 && !tap_failed_now; i++) {
		snprintf(old, sizeof old, "echo old-%zu", i);
		snprintf(want, sizeof want, "old-%zu\n", i);
		CHECK_RUN(c, "mid", old, want, 0);
		pad = (i % 8) * 500;
		memcpy(cmd, ": ", 2);
		memset(cmd + 2, 'x', pad);
		snprintf(cmd + 2 + pad, 64, "; sleep 30; echo late-%zu", i);
		REQUIRE(submit_run(ce, "mid", cmd, -1, &run) != 0);
		interrupt_and_drain(base, ce, "mid", &run);
		harness_reply_clear(&run);
		memset(&run, 0, sizeof run);
		/* Nothing of the interrupted line, nor the old command, runs. */
		CHECK_RUN(c, "mid", "echo back", "back\n", 0);
		if (tap_failed_now)
			printf("# failed at round %zu (%zu bytes of padding)\n", i,
			    pad);
	}
	free(cmd);
	swerex_client_free(ce);
	event_base_free(base);
}

HTEST(no_head_of_line_blocking_one_connection)
{
	struct swerex_client *c = harness_client(h), *ce;
	struct harness_reply ra = { 0 }, rb = { 0 }, al = { 0 }, *slots[2] = { &rb, &al };
	struct swerex_error *err = NULL;
	struct event_base *base;

	REQUIRE(harness_create(c, "hol-a") == 0);
	REQUIRE(harness_create(c, "hol-b") == 0);
	base = event_base_new();
	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);

	REQUIRE(submit_run(ce, "hol-a", "sleep 30", -1, &ra) != 0);
	REQUIRE(submit_run(ce, "hol-b", "echo b", 10, &rb) != 0);
	REQUIRE(swerex_submit_is_alive(ce, harness_reply_cb, &al, &err) != 0);
	if (!harness_drive(base, slots, 2, 20))
		tap_diag(__FILE__, __LINE__, "replies behind a long command did not arrive");
	CHECK(reply_output_is(&rb, "b\n"));
	CHECK(al.done && al.type == SWEREX_REPLY_ALIVE && al.is_alive);
	CHECK(!ra.done);
	if (tap_failed_now) {
		harness_reply_show("a", &ra);
		harness_reply_show("b", &rb);
	}
	interrupt_and_drain(base, ce, "hol-a", &ra);
	CHECK(ra.done);
	harness_reply_show("interrupted run", &ra);

	swerex_client_free(ce);
	event_base_free(base);
	harness_reply_clear(&ra);
	harness_reply_clear(&rb);
	harness_reply_clear(&al);
}

HTEST(no_head_of_line_blocking_two_connections)
{
	struct swerex_client *c = harness_client(h), *c1, *c2;
	struct harness_reply ra = { 0 }, rb = { 0 }, al = { 0 }, *slots[2] = { &rb, &al };
	struct swerex_error *err = NULL;
	struct event_base *base;

	REQUIRE(harness_create(c, "hol-a") == 0);
	REQUIRE(harness_create(c, "hol-b") == 0);
	base = event_base_new();
	REQUIRE(base != NULL);
	c1 = harness_connect_base(h, base);
	c2 = harness_connect_base(h, base);
	REQUIRE(c1 != NULL && c2 != NULL);

	REQUIRE(submit_run(c1, "hol-a", "sleep 30", -1, &ra) != 0);
	REQUIRE(submit_run(c2, "hol-b", "echo b", 10, &rb) != 0);
	REQUIRE(swerex_submit_is_alive(c2, harness_reply_cb, &al, &err) != 0);
	if (!harness_drive(base, slots, 2, 20))
		tap_diag(__FILE__, __LINE__, "replies on another connection were held up");
	CHECK(reply_output_is(&rb, "b\n"));
	CHECK(al.done && al.is_alive);
	CHECK(!ra.done);
	interrupt_and_drain(base, c2, "hol-a", &ra);
	CHECK(ra.done);

	swerex_client_free(c1);
	swerex_client_free(c2);
	event_base_free(base);
	harness_reply_clear(&ra);
	harness_reply_clear(&rb);
	harness_reply_clear(&al);
}

HTEST(sessions_outlive_their_client)
{
	struct swerex_client *c = harness_client(h), *c1;
	struct harness_reply r1 = { 0 }, al = { 0 }, *slot = &al;
	struct swerex_run_opts o;
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;
	struct event_base *base;
	char *msg = NULL;
	bool alive;

	REQUIRE(harness_create(c, "own") == 0);
	base = event_base_new();
	REQUIRE(base != NULL);
	c1 = harness_connect_base(h, base);
	REQUIRE(c1 != NULL);
	REQUIRE(submit_run(c1, "own", "read -r v; echo \"v=$v\"", -1, &r1) != 0);
	/* Requests are handled in order: once is_alive is answered, the run started. */
	REQUIRE(swerex_submit_is_alive(c1, harness_reply_cb, &al, &err) != 0);
	REQUIRE(harness_drive(base, &slot, 1, 20));
	CHECK(!r1.done);
	swerex_client_free(c1);
	CHECK(reply_is_error(&r1, SWEREX_ERR_DISCONNECTED));
	if (!reply_is_error(&r1, SWEREX_ERR_DISCONNECTED))
		harness_reply_show("pending run after free", &r1);
	event_base_free(base);
	/*
	 * The daemon sees c1's EOF no later than the loop pass that answers
	 * a request sent after it: one round trip orders the two.
	 */
	alive = false;
	if (swerex_is_alive(c, &alive, &msg, &err) != 0) {
		harness_show_error("is_alive", err);
		swerex_error_free(err);
		err = NULL;
	}
	CHECK(alive);
	free(msg);

	o = run_opts("own", "42", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	o.is_interactive_command = true;
	obs = run_ok(c, &o);
	if (obs != NULL) {
		CHECK_MEM(obs->output, obs->output_len, "v=42\n");
		swerex_observation_free(obs);
	}
	CHECK_RUN(c, "own", "echo $v", "42\n", 0);
	harness_reply_clear(&r1);
	harness_reply_clear(&al);
}

#define N_MANY 50

static const char *const many_args[] = { "--max-sessions", "64", NULL };

HTEST_ARGS(many_in_flight, many_args)
{
	struct harness_reply *r, *slots[N_MANY];
	struct swerex_create_opts co = { 0 };
	struct swerex_error *err = NULL;
	struct event_base *base;
	struct swerex_client *ce;
	char names[N_MANY][16], cmds[N_MANY][64], want[32];
	int i, bad = 0;

	/* Sessions then start slower than their start-up limit. */
	if (harness_under_valgrind())
		SKIP("valgrind: too slow for 50 sessions started at once");
	base = event_base_new();
	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	r = calloc(N_MANY, sizeof *r);
	REQUIRE(r != NULL);

	for (i = 0; i < N_MANY; i++) {
		snprintf(names[i], sizeof names[i], "many-%d", i);
		co.session = names[i];
		slots[i] = &r[i];
		REQUIRE(swerex_submit_create_session(ce, &co, harness_reply_cb, &r[i], &err) != 0);
	}
	if (!harness_drive(base, slots, N_MANY, 60))
		tap_diag(__FILE__, __LINE__, "not every session was created in 60 s");
	for (i = 0; i < N_MANY; i++) {
		if (r[i].type != SWEREX_REPLY_SESSION_CREATED && bad++ < 3)
			harness_reply_show(names[i], &r[i]);
		harness_reply_clear(&r[i]);
	}
	CHECK_INT(bad, 0);

	for (i = 0; i < N_MANY; i++) {
		snprintf(cmds[i], sizeof cmds[i], "i=%d; echo $((i*i))", i);
		REQUIRE(submit_run(ce, names[i], cmds[i], HARNESS_TIMEOUT, &r[i]) != 0);
	}
	if (!harness_drive(base, slots, N_MANY, 60))
		tap_diag(__FILE__, __LINE__, "not every run was answered in 60 s");
	bad = 0;
	for (i = 0; i < N_MANY; i++) {
		snprintf(want, sizeof want, "%d\n", i * i);
		if (!reply_output_is(&r[i], want) || !r[i].observation->has_exit_code ||
		    r[i].observation->exit_code != 0) {
			if (bad++ < 3) {
				printf("# session %s, expected \"%d\\n\"\n", names[i], i * i);
				harness_reply_show(names[i], &r[i]);
			}
		}
		harness_reply_clear(&r[i]);
	}
	CHECK_INT(bad, 0);

	for (i = 0; i < N_MANY; i++)
		REQUIRE(swerex_submit_close_session(ce, names[i], harness_reply_cb, &r[i], &err) != 0);
	if (!harness_drive(base, slots, N_MANY, 60))
		tap_diag(__FILE__, __LINE__, "not every session was closed in 60 s");
	bad = 0;
	for (i = 0; i < N_MANY; i++) {
		if (r[i].type != SWEREX_REPLY_SESSION_CLOSED && bad++ < 3)
			harness_reply_show(names[i], &r[i]);
		harness_reply_clear(&r[i]);
	}
	CHECK_INT(bad, 0);
	CHECK_INT(swerex_pending(ce), 0);
	free(r);
	swerex_client_free(ce);
	event_base_free(base);
}

/* Append to pids every process whose session id is sid; return the new count. */
static size_t
session_members(int sid, int *pids, size_t n, size_t cap)
{
	char path[64], buf[512], *p;
	struct dirent *d;
	int pid, ppid, pgrp, s;
	char state;
	DIR *dir;
	FILE *f;

	dir = opendir("/proc");
	if (dir == NULL)
		return n;
	while ((d = readdir(dir)) != NULL && n < cap) {
		pid = atoi(d->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof path, "/proc/%d/stat", pid);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof buf, f) != NULL && (p = strrchr(buf, ')')) != NULL &&
		    sscanf(p + 1, " %c %d %d %d", &state, &ppid, &pgrp, &s) == 4 &&
		    s == sid && state != 'Z')
			pids[n++] = pid;
		fclose(f);
	}
	closedir(dir);
	return n;
}

/* Count a fifo that became readable (event callback). */
static void
fifo_readable(evutil_socket_t fd, short what, void *arg)
{
	(*(int *)arg)++;
}

/* Whether all five fifos reported. */
static bool
five_up(void *arg)
{
	return *(int *)arg >= 5;
}

HTEST(shutdown_kills_every_session)
{
	struct event *up[5];
	int up_count = 0;
	struct swerex_client *c = harness_client(h), *ce;
	struct harness_reply runs[5] = { { 0 } };
	struct event_base *base;
	char names[5][16], fifo[512], cmds[5][1200], buf[32];
	int fds[5], pids[64], pidfds[64], bash[5], i, st;
	size_t n = 0, k;
	struct pollfd pfd;
	double t0;

	base = event_base_new();
	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	for (i = 0; i < 5; i++) {
		snprintf(names[i], sizeof names[i], "down-%d", i);
		REQUIRE(harness_create(c, names[i]) == 0);
		bash[i] = harness_session_pid(c, names[i]);
		REQUIRE(bash[i] > 0);
		/* The command reports on a fifo once sleep is running. */
		snprintf(fifo, sizeof fifo, "%s/up-%d", harness_dir(h), i);
		REQUIRE(mkfifo(fifo, 0600) == 0);
		fds[i] = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		REQUIRE(fds[i] >= 0);
		snprintf(cmds[i], sizeof cmds[i],
			 "sh -c 'echo $$ > \"%s\"; exec sleep 100'", fifo);
		REQUIRE(submit_run(ce, names[i], cmds[i], -1, &runs[i]) != 0);
	}
	/* Drive the client (it writes the requests) until every fifo reports. */
	for (i = 0; i < 5; i++) {
		up[i] = event_new(base, fds[i], EV_READ, fifo_readable, &up_count);
		REQUIRE(up[i] != NULL);
		event_add(up[i], NULL);
	}
	if (!harness_drive_until(base, five_up, &up_count, 20))
		tap_diag(__FILE__, __LINE__, "only %d of 5 commands started", up_count);
	for (i = 0; i < 5; i++) {
		event_free(up[i]);
		CHECK(read(fds[i], buf, sizeof buf) > 0);
		close(fds[i]);
	}
	REQUIRE(up_count == 5);
	for (i = 0; i < 5; i++)
		n = session_members(bash[i], pids, n, 64);
	printf("# %zu processes in the 5 sessions\n", n);
	CHECK(n >= 10);
	for (k = 0; k < n; k++)
		pidfds[k] = (int)syscall(SYS_pidfd_open, pids[k], 0);

	t0 = harness_now();
	st = harness_stop(h);
	printf("# daemon exited %.2f s after SIGTERM\n", harness_now() - t0);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(harness_now() - t0 < 5);
	if (access(harness_socket_path(h), F_OK) == 0)
		tap_diag(__FILE__, __LINE__, "socket file %s left behind", harness_socket_path(h));

	for (k = 0; k < n; k++) {
		bool gone;

		if (pidfds[k] >= 0) {
			pfd.fd = pidfds[k];
			pfd.events = POLLIN;
			gone = poll(&pfd, 1, 5000) == 1;
			close(pidfds[k]);
		} else {
			gone = kill(pids[k], 0) != 0 && errno == ESRCH;
		}
		if (!gone) {
			char comm[64] = "?", path[64];
			FILE *f;

			snprintf(path, sizeof path, "/proc/%d/comm", pids[k]);
			if ((f = fopen(path, "r")) != NULL) {
				if (fgets(comm, sizeof comm, f) != NULL)
					comm[strcspn(comm, "\n")] = '\0';
				fclose(f);
			}
			tap_diag(__FILE__, __LINE__, "process %d (%s) survived the shutdown",
				 pids[k], comm);
			kill(pids[k], SIGKILL);
		}
	}
	for (i = 0; i < 5; i++)
		CHECK(kill(bash[i], 0) != 0 && errno == ESRCH);

	swerex_client_free(ce);
	for (i = 0; i < 5; i++) {
		CHECK(runs[i].done);
		harness_reply_clear(&runs[i]);
	}
	event_base_free(base);
}

TAP_MAIN(
	TAP_T(timeout_busy_interrupt_recover),
	TAP_T(interactive_input_after_timeout),
	TAP_T(carried_over_output),
	TAP_T(background_output_during_next_command),
	TAP_T(interactive_python),
	TAP_T(interactive_expect_timeout),
	TAP_T(interrupt_sleep),
	TAP_T(interrupt_program_ignoring_sigint),
	TAP_T(exit_kills_session),
	TAP_T(bash_killed_from_outside),
	TAP_T(interrupt_mid_command_line),
	TAP_T(no_head_of_line_blocking_one_connection),
	TAP_T(no_head_of_line_blocking_two_connections),
	TAP_T(sessions_outlive_their_client),
	TAP_T(many_in_flight),
	TAP_T(shutdown_kills_every_session),
)
