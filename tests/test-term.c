/*
 * Terminal features of sessions (issue 8): the no-output timeout and wait,
 * terminal size and resize (SIGWINCH), and the session's environment and
 * directory at creation.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "harness.h"

/* Run opts of a command with check silent and the harness's timeout. */
static struct swerex_run_opts
term_opts(const char *session, const char *command)
{
	struct swerex_run_opts o = { 0 };

	o.session = session;
	o.command = command;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	o.check = SWEREX_CHECK_SILENT;
	return o;
}

/* Run opts of a wait with check silent and the harness's timeout. */
static struct swerex_run_opts
term_wait_opts(const char *session)
{
	struct swerex_run_opts o = term_opts(session, NULL);

	o.wait = true;
	return o;
}

/* Create a session with options; print a diagnostic and return -1 on failure. */
static int
term_create(struct swerex_client *c, const struct swerex_create_opts *o)
{
	struct swerex_error *err = NULL;

	if (swerex_create_session(c, o, NULL, NULL, &err) == 0)
		return 0;
	harness_show_error("create_session", err);
	swerex_error_free(err);
	return -1;
}

/* Create a session with options and expect an error of kind. */
static void
term_create_fails(struct swerex_client *c, const struct swerex_create_opts *o,
		  enum swerex_error_kind kind, const char *in_message)
{
	struct swerex_error *err = NULL;

	if (swerex_create_session(c, o, NULL, NULL, &err) == 0) {
		tap_diag(__FILE__, __LINE__, "session %s was created", o->session);
		return;
	}
	REQUIRE(err != NULL);
	CHECK_STR(swerex_error_kind_name(err->kind), swerex_error_kind_name(kind));
	if (in_message != NULL && strstr(err->message, in_message) == NULL)
		tap_diag(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"",
		    err->message, in_message);
	swerex_error_free(err);
}

/* Expect a resize to fail with kind. */
static void
term_resize_fails(struct swerex_client *c, const char *session, unsigned rows,
		  unsigned cols, enum swerex_error_kind kind)
{
	struct swerex_error *err = NULL;

	if (swerex_resize(c, session, rows, cols, &err) == 0) {
		tap_diag(__FILE__, __LINE__, "resize to %ux%u succeeded", rows,
		    cols);
		return;
	}
	REQUIRE(err != NULL);
	CHECK_STR(swerex_error_kind_name(err->kind), swerex_error_kind_name(kind));
	swerex_error_free(err);
}

/* State of a session from list_sessions. */
static enum swerex_session_state
term_state(struct swerex_client *c, const char *session)
{
	struct swerex_session_info *s = NULL;
	struct swerex_error *err = NULL;
	enum swerex_session_state st = SWEREX_SESSION_UNKNOWN;
	size_t n = 0, i;

	if (swerex_list_sessions(c, &s, &n, &err) != 0) {
		swerex_error_free(err);
		return st;
	}
	for (i = 0; i < n; i++)
		if (strcmp(s[i].name, session) == 0)
			st = s[i].state;
	swerex_sessions_free(s, n);
	return st;
}

/* Create a file (the event a waiting command looks for). */
static void
term_touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	REQUIRE(fd >= 0);
	close(fd);
}

/*
 * A silent command gets NO_OUTPUT_TIMEOUT with what it printed and keeps
 * running; a wait then gets its output and exit code once it ends.
 */
HTEST(no_output_timeout_then_wait)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs = NULL;
	struct swerex_error *err, *e = NULL;
	char go[PATH_MAX], cmd[PATH_MAX + 128];
	double t0;

	REQUIRE(harness_create(c, "q") == 0);
	snprintf(go, sizeof go, "%s/go", harness_dir(h));
	snprintf(cmd, sizeof cmd, "echo start; while [ ! -e '%s' ]; do "
	    "sleep 0.05; done; echo finished; (exit 3)", go);
	o = term_opts("q", cmd);
	o.no_output_timeout = 0.5;
	t0 = harness_now();
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_NO_OUTPUT_TIMEOUT);
	REQUIRE(err != NULL);
	CHECK(harness_now() - t0 >= 0.5);
	CHECK_STR(swerex_error_extra(err, "timeout"), "0.5");
	REQUIRE(err->observation != NULL);
	CHECK_MEM(err->observation->output, err->observation->output_len,
	    "start\n");
	CHECK_STR(err->observation->failure_reason, "no_output_timeout");
	CHECK(!err->observation->has_exit_code);
	swerex_error_free(err);

	/* Still running: a new command is refused, the state says so. */
	CHECK_INT(term_state(c, "q"), SWEREX_SESSION_RUNNING);
	o = term_opts("q", "echo no");
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_BUSY);
	swerex_error_free(err);

	term_touch(go);
	o = term_wait_opts("q");
	if (swerex_run(c, &o, &obs, &e) != 0) {
		harness_show_error("wait", e);
		swerex_error_free(e);
		tap_diag(__FILE__, __LINE__, "wait failed");
		return;
	}
	CHECK_MEM(obs->output, obs->output_len, "finished\n");
	CHECK(obs->has_exit_code);
	CHECK_INT(obs->exit_code, 3);
	swerex_observation_free(obs);
	CHECK_INT(term_state(c, "q"), SWEREX_SESSION_IDLE);
	CHECK_RUN(c, "q", "echo after", "after\n", 0);
}

/*
 * A command printing more often than the no-output timeout is not cut. Its
 * pauses are bash's own "read -t 0.1" on the idle terminal, not a sleep(1)
 * to fork each time, so that a loaded machine does not stretch them.
 */
HTEST(steady_output_does_not_fire)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	REQUIRE(harness_create(c, "steady") == 0);
	o = term_opts("steady", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; "
	    "read -t 0.1; done; true");
	o.no_output_timeout = 0.5;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("run", err);
		swerex_error_free(err);
		tap_diag(__FILE__, __LINE__, "the steady command was cut");
		return;
	}
	CHECK_MEM(obs->output, obs->output_len,
	    "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
	CHECK_INT(obs->exit_code, 0);
	swerex_observation_free(obs);
}

/*
 * Waiting again after a no-output timeout times out again; an interrupt
 * then ends the command. A plain timeout shorter than the no-output one
 * wins, and an expect string seen first ends the run before either.
 */
HTEST(no_output_timeout_with_others)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	struct harness_chunks ch = { 0 };
	const char *expect[] = { "name?" };

	REQUIRE(harness_create(c, "o") == 0);
	o = term_opts("o", "sleep 30");
	o.no_output_timeout = 0.3;
	swerex_error_free(EXPECT_ERROR(c, &o, SWEREX_ERR_NO_OUTPUT_TIMEOUT));
	o = term_wait_opts("o");
	o.no_output_timeout = 0.3;
	swerex_error_free(EXPECT_ERROR(c, &o, SWEREX_ERR_NO_OUTPUT_TIMEOUT));
	io.session = "o";
	if (swerex_interrupt(c, &io, &obs, &err) != 0) {
		harness_show_error("interrupt", err);
		swerex_error_free(err);
		REQUIRE(!"interrupt failed");
	}
	swerex_observation_free(obs);
	CHECK_RUN(c, "o", "echo back", "back\n", 0);

	/* timeout first: COMMAND_TIMEOUT, not NO_OUTPUT_TIMEOUT. */
	o = term_opts("o", "sleep 30");
	o.timeout = 0.3;
	o.no_output_timeout = 20;
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	if (err != NULL && err->observation != NULL)
		CHECK_STR(err->observation->failure_reason, "timeout");
	swerex_error_free(err);
	io.session = "o";
	obs = NULL;
	err = NULL;
	if (swerex_interrupt(c, &io, &obs, &err) != 0) {
		swerex_error_free(err);
		REQUIRE(!"interrupt failed");
	}
	swerex_observation_free(obs);

	/* Streamed: the chunks, then the error with the same output. */
	o = term_opts("o", "echo one; sleep 30");
	o.no_output_timeout = 0.3;
	o.on_chunk = harness_chunks_add;
	o.chunk_arg = &ch;
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_NO_OUTPUT_TIMEOUT);
	CHECK_MEM(ch.buf, ch.len, "one\n");
	if (err != NULL && err->observation != NULL)
		CHECK_MEM(err->observation->output,
		    err->observation->output_len, "one\n");
	swerex_error_free(err);

	/* An expect string while a no-output timeout runs: the match ends it. */
	obs = NULL;
	err = NULL;
	if (swerex_interrupt(c, &io, &obs, &err) != 0) {
		swerex_error_free(err);
		REQUIRE(!"interrupt failed");
	}
	swerex_observation_free(obs);
	o = term_opts("o", "printf 'name? '; read n; echo \"hi $n\"");
	o.no_output_timeout = 20;
	o.expect = expect;
	o.n_expect = 1;
	obs = NULL;
	err = NULL;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("expect", err);
		swerex_error_free(err);
		REQUIRE(!"expect run failed");
	}
	CHECK_STR(obs->expect_string, "name?");
	swerex_observation_free(obs);
	o = term_opts("o", "bob");
	o.is_interactive_command = true;
	o.expect = NULL;
	o.n_expect = 0;
	obs = NULL;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("input", err);
		swerex_error_free(err);
		REQUIRE(!"input failed");
	}
	CHECK(harness_contains(obs->output, obs->output_len, "hi bob"));
	swerex_observation_free(obs);
}

/*
 * A wait on a session at its prompt answers at once with the last status;
 * a command that ended unobserved is answered as its run would have been.
 */
HTEST(wait_idle)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	char go[PATH_MAX], cmd[PATH_MAX + 128];
	double t0;

	REQUIRE(harness_create(c, "w") == 0);
	CHECK_RUN(c, "w", "(exit 4)", "", 4);
	o = term_wait_opts("w");
	REQUIRE(swerex_run(c, &o, &obs, &err) == 0);
	CHECK_MEM(obs->output, obs->output_len, "");
	CHECK(obs->has_exit_code);
	CHECK_INT(obs->exit_code, 4);
	swerex_observation_free(obs);

	/* A command that ends after its NO_OUTPUT_TIMEOUT, with nobody waiting. */
	snprintf(go, sizeof go, "%s/go", harness_dir(h));
	snprintf(cmd, sizeof cmd, "while [ ! -e '%s' ]; do sleep 0.05; done; "
	    "echo late; (exit 5)", go);
	o = term_opts("w", cmd);
	o.no_output_timeout = 0.2;
	swerex_error_free(EXPECT_ERROR(c, &o, SWEREX_ERR_NO_OUTPUT_TIMEOUT));
	term_touch(go);
	/* Wait for its prompt (the state), bounded. */
	t0 = harness_now();
	while (term_state(c, "w") != SWEREX_SESSION_IDLE &&
	    harness_now() - t0 < HARNESS_TIMEOUT)
		usleep(10000);
	REQUIRE(term_state(c, "w") == SWEREX_SESSION_IDLE);
	o = term_wait_opts("w");
	o.check = SWEREX_CHECK_RAISE;
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_NON_ZERO_EXIT_CODE);
	if (err != NULL && err->observation != NULL) {
		CHECK_MEM(err->observation->output,
		    err->observation->output_len, "late\n");
		CHECK_INT(err->observation->exit_code, 5);
	}
	swerex_error_free(err);
	/* Seen now: a second wait has nothing new and does not raise again. */
	o = term_wait_opts("w");
	o.check = SWEREX_CHECK_RAISE;
	obs = NULL;
	err = NULL;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("second wait", err);
		swerex_error_free(err);
		REQUIRE(!"second wait failed");
	}
	CHECK_MEM(obs->output, obs->output_len, "");
	CHECK_INT(obs->exit_code, 5);
	swerex_observation_free(obs);

	/* A wait with a command is refused. */
	o = term_wait_opts("w");
	o.command = "echo x";
	swerex_error_free(EXPECT_ERROR(c, &o, SWEREX_ERR_INVALID_REQUEST));
}

/* A second wait while one waits gets SESSION_BUSY; the first runs on. */
HTEST(wait_busy)
{
	struct swerex_client *c = harness_client(h), *ec;
	struct event_base *base;
	struct harness_reply r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	struct harness_reply *second[] = { &r2 }, *all[] = { &r1, &r3 };
	struct swerex_run_opts o;
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_error *err = NULL;

	REQUIRE(harness_create(c, "b") == 0);
	o = term_opts("b", "sleep 30");
	o.no_output_timeout = 0.2;
	swerex_error_free(EXPECT_ERROR(c, &o, SWEREX_ERR_NO_OUTPUT_TIMEOUT));
	base = event_base_new();
	REQUIRE(base != NULL);
	ec = harness_connect_base(h, base);
	if (ec == NULL) {
		event_base_free(base);
		REQUIRE(!"no client");
	}
	o = term_wait_opts("b");
	/* Requests of one connection are served in order: r1 waits first. */
	CHECK(swerex_submit_run(ec, &o, false, harness_reply_cb, &r1, &err) > 0);
	CHECK(swerex_submit_run(ec, &o, false, harness_reply_cb, &r2, &err) > 0);
	CHECK(harness_drive(base, second, 1, HARNESS_TIMEOUT));
	CHECK(!r1.done);
	CHECK_INT(r2.type, SWEREX_REPLY_ERROR);
	if (r2.error != NULL)
		CHECK_INT(r2.error->kind, SWEREX_ERR_SESSION_BUSY);
	io.session = "b";
	CHECK(swerex_submit_interrupt(ec, &io, harness_reply_cb, &r3, &err) > 0);
	CHECK(harness_drive(base, all, 2, HARNESS_TIMEOUT));
	CHECK_INT(r1.type, SWEREX_REPLY_ERROR);
	if (r1.error != NULL)
		CHECK_INT(r1.error->kind, SWEREX_ERR_INTERRUPTED);
	CHECK_INT(r3.type, SWEREX_REPLY_OBSERVATION);
	harness_reply_clear(&r1);
	harness_reply_clear(&r2);
	harness_reply_clear(&r3);
	swerex_client_free(ec);
	event_base_free(base);
	CHECK_RUN(c, "b", "echo ok", "ok\n", 0);
}

/* The size given at creation, the default one, and a resize, as stty sees them. */
HTEST(terminal_size)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	struct swerex_error *err = NULL;

	REQUIRE(harness_create(c, "dflt") == 0);
	CHECK_RUN(c, "dflt", "stty size", "50 200\n", 0);
	co.session = "small";
	co.rows = 30;
	co.cols = 100;
	REQUIRE(term_create(c, &co) == 0);
	CHECK_RUN(c, "small", "stty size; tput cols; tput lines",
	    "30 100\n100\n30\n", 0);
	if (swerex_resize(c, "small", 40, 120, &err) != 0) {
		harness_show_error("resize", err);
		swerex_error_free(err);
		REQUIRE(!"resize failed");
	}
	CHECK_RUN(c, "small", "stty size", "40 120\n", 0);
	CHECK_RUN(c, "dflt", "stty size", "50 200\n", 0);
}

/* The program in the foreground gets SIGWINCH when the size changes. */
HTEST(resize_sends_sigwinch)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	const char *expect[] = { "ready" };

	REQUIRE(harness_create(c, "winch") == 0);
	o = term_opts("winch", "bash -c 'trap \"echo winch \\$(stty size); "
	    "kill \\$!; exit 7\" WINCH; sleep 30 & echo ready; wait'");
	o.expect = expect;
	o.n_expect = 1;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("run", err);
		swerex_error_free(err);
		REQUIRE(!"the trap did not start");
	}
	swerex_observation_free(obs);
	obs = NULL;
	if (swerex_resize(c, "winch", 24, 80, &err) != 0) {
		harness_show_error("resize", err);
		swerex_error_free(err);
		REQUIRE(!"resize failed");
	}
	o = term_wait_opts("winch");
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("wait", err);
		swerex_error_free(err);
		REQUIRE(!"wait failed");
	}
	CHECK_MEM(obs->output, obs->output_len, "\nwinch 24 80\n");
	CHECK_INT(obs->exit_code, 7);
	swerex_observation_free(obs);
}

/* Sizes out of range and unknown sessions are refused. */
HTEST(bad_sizes)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };

	co.session = "huge";
	co.rows = 10001;
	term_create_fails(c, &co, SWEREX_ERR_INVALID_REQUEST, "rows and cols");
	co.rows = 10;
	co.cols = 100000;
	term_create_fails(c, &co, SWEREX_ERR_INVALID_REQUEST, "rows and cols");
	CHECK_INT(term_state(c, "huge"), SWEREX_SESSION_UNKNOWN);
	REQUIRE(harness_create(c, "r") == 0);
	term_resize_fails(c, "r", 0, 80, SWEREX_ERR_INVALID_REQUEST);
	term_resize_fails(c, "r", 24, 0, SWEREX_ERR_INVALID_REQUEST);
	term_resize_fails(c, "r", 24, 10001, SWEREX_ERR_INVALID_REQUEST);
	term_resize_fails(c, "nope", 24, 80, SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	CHECK_RUN(c, "r", "stty size", "50 200\n", 0);
}

/* env and cwd at creation; TERM may be set, the prompt variables may not. */
HTEST(env_and_cwd)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	const char *env[] = { "FOO=bar", "X_1=a b=c", "TERM=dumb" };
	const char *bad_env[] = { "PROMPT_COMMAND=echo hi" };
	const char *bad_name[] = { "1X=y" };
	const char *bad_dash[] = { "A-B=y" };
	char dir[PATH_MAX], file[PATH_MAX + 8], want[PATH_MAX + 64];

	REQUIRE(realpath(harness_dir(h), dir) != NULL);
	co.session = "e";
	co.env = env;
	co.n_env = 3;
	co.cwd = dir;
	REQUIRE(term_create(c, &co) == 0);
	snprintf(want, sizeof want, "bar|a b=c|dumb\n%s\n", dir);
	CHECK_RUN(c, "e", "echo \"$FOO|$X_1|$TERM\"; pwd", want, 0);
	/* Exported: programs the session starts see them. */
	CHECK_RUN(c, "e", "printenv FOO", "bar\n", 0);

	co.session = "bad";
	co.cwd = NULL;
	co.env = bad_env;
	co.n_env = 1;
	term_create_fails(c, &co, SWEREX_ERR_INVALID_REQUEST, "PROMPT_COMMAND");
	co.env = bad_name;
	term_create_fails(c, &co, SWEREX_ERR_INVALID_REQUEST, "1X");
	co.env = bad_dash;
	term_create_fails(c, &co, SWEREX_ERR_INVALID_REQUEST, "A-B");
	co.env = NULL;
	co.n_env = 0;
	snprintf(file, sizeof file, "%s/none", dir);
	co.cwd = file;
	term_create_fails(c, &co, SWEREX_ERR_FILE_NOT_FOUND, "cwd");
	term_touch(file);
	term_create_fails(c, &co, SWEREX_ERR_NOT_A_DIRECTORY, "cwd");
	CHECK_INT(term_state(c, "bad"), SWEREX_SESSION_UNKNOWN);
}

/*
 * The daemon's own variables stay out of sessions unless inherit_env; the
 * clean environment still has PATH and HOME.
 */
HTEST(env_clean_by_default)
{
	struct harness *h2;
	struct swerex_client *c;
	struct swerex_create_opts co = { 0 };

	/* A second daemon that has the variable in its environment. */
	setenv("SWEREX_TERM_SECRET", "leaked", 1);
	h2 = harness_start(NULL);
	unsetenv("SWEREX_TERM_SECRET");
	REQUIRE(h2 != NULL);
	c = harness_client(h2);
	REQUIRE(harness_create(c, "clean") == 0);
	CHECK_RUN(c, "clean", "echo \"[${SWEREX_TERM_SECRET-unset}]\"",
	    "[unset]\n", 0);
	CHECK_RUN(c, "clean", "command -v ls >/dev/null && [ -n \"$HOME\" ] && "
	    "[ -d \"$HOME\" ] && echo ok", "ok\n", 0);
	CHECK_RUN(c, "clean", "echo $TERM", "xterm\n", 0);
	co.session = "inherit";
	co.inherit_env = true;
	REQUIRE(term_create(c, &co) == 0);
	CHECK_RUN(c, "inherit", "echo \"[${SWEREX_TERM_SECRET-unset}]\"",
	    "[leaked]\n", 0);
	CHECK_RUN(c, "inherit", "echo $TERM", "xterm\n", 0);
	(void)h;
}

TAP_MAIN(
	TAP_T(no_output_timeout_then_wait),
	TAP_T(steady_output_does_not_fire),
	TAP_T(no_output_timeout_with_others),
	TAP_T(wait_idle),
	TAP_T(wait_busy),
	TAP_T(terminal_size),
	TAP_T(resize_sends_sigwinch),
	TAP_T(bad_sizes),
	TAP_T(env_and_cwd),
	TAP_T(env_clean_by_default),
)
