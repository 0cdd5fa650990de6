/* Session semantics: state, exact output, multi-line commands, check modes. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* Run opts built from a command, a session, a timeout and a check mode. */
static struct swerex_run_opts
run_opts(const char *session, const char *command, double timeout,
	 enum swerex_check check)
{
	struct swerex_run_opts o = { 0 };

	o.session = session;
	o.command = command;
	o.has_timeout = true;
	o.timeout = timeout;
	o.check = check;
	return o;
}

HTEST(state_persists)
{
	struct swerex_client *c = harness_client(h);

	REQUIRE(harness_create(c, "persist") == 0);
	CHECK_RUN(c, "persist", "cd /tmp && export X=1", "", 0);
	CHECK_RUN(c, "persist", "pwd; echo $X", "/tmp\n1\n", 0);
	CHECK_RUN(c, "persist", "Y=local-var", "", 0);
	CHECK_RUN(c, "persist", "echo \"$Y\"", "local-var\n", 0);
}

HTEST(functions_and_aliases_persist)
{
	struct swerex_client *c = harness_client(h);

	REQUIRE(harness_create(c, "fn") == 0);
	CHECK_RUN(c, "fn", "f() { echo fn; }", "", 0);
	CHECK_RUN(c, "fn", "f", "fn\n", 0);
	CHECK_RUN(c, "fn", "alias ll='echo aliased'", "", 0);
	CHECK_RUN(c, "fn", "ll", "aliased\n", 0);
}

HTEST(sessions_are_isolated)
{
	struct swerex_client *c = harness_client(h);

	REQUIRE(harness_create(c, "iso-a") == 0);
	REQUIRE(harness_create(c, "iso-b") == 0);
	CHECK_RUN(c, "iso-a", "x=42", "", 0);
	CHECK_RUN(c, "iso-b", "echo \"[$x]\"", "[]\n", 0);
	CHECK_RUN(c, "iso-a", "echo \"[$x]\"", "[42]\n", 0);
	CHECK_RUN(c, "iso-b", "cd /", "", 0);
	CHECK_RUN(c, "iso-a", "cd /tmp", "", 0);
	CHECK_RUN(c, "iso-b", "pwd", "/\n", 0);
}

HTEST(exact_output)
{
	struct swerex_client *c = harness_client(h);

	REQUIRE(harness_create(c, "exact") == 0);
	CHECK_RUN(c, "exact", "echo hello", "hello\n", 0);
	CHECK_RUN(c, "exact", "echo ''", "\n", 0);
	CHECK_RUN(c, "exact", "printf '\\n\\nx\\n\\n\\n'", "\n\nx\n\n\n", 0);
	CHECK_RUN(c, "exact", "printf '  x'", "  x", 0);
	CHECK_RUN(c, "exact", "printf 'no newline'", "no newline", 0);
	CHECK_RUN(c, "exact", "echo 'hello\\nworld'", "hello\\nworld\n", 0);
	CHECK_RUN(c, "exact", "# hi", "", 0);
	CHECK_RUN(c, "exact", "", "", 0);
	CHECK_RUN(c, "exact", "   ", "", 0);
	CHECK_RUN(c, "exact", "echo err >&2", "err\n", 0);
	CHECK_RUN(c, "exact", "echo out; echo err >&2; echo out2", "out\nerr\nout2\n", 0);
	CHECK_RUN(c, "exact", "printf 'a\\r\\nb\\r\\n'", "a\nb\n", 0);
	CHECK_RUN(c, "exact", "printf '\\033[31mred\\033[0m\\n'", "red\n", 0);
	CHECK_RUN(c, "exact", "printf '\\033[1;32mbold green\\033[0m plain\\n'",
		  "bold green plain\n", 0);
}

HTEST(tabs_and_utf8)
{
	struct swerex_client *c = harness_client(h);

	REQUIRE(harness_create(c, "chars") == 0);
	/* A literal tab in the command must not trigger completion. */
	CHECK_RUN(c, "chars", "echo 'a\tb'", "a\tb\n", 0);
	CHECK_RUN(c, "chars", "cat <<'EOF'\nall:\n\tcc -o x x.c\nEOF",
		  "all:\n\tcc -o x x.c\n", 0);
	CHECK_RUN(c, "chars", "echo 'h\xc3\xa9llo \xe2\x9c\x93'",
		  "h\xc3\xa9llo \xe2\x9c\x93\n", 0);
}

HTEST(multi_line)
{
	struct swerex_client *c = harness_client(h);

	REQUIRE(harness_create(c, "ml") == 0);
	CHECK_RUN(c, "ml", "echo a\necho b", "a\nb\n", 0);
	CHECK_RUN(c, "ml", "false\ntrue", "", 0);
	CHECK_RUN(c, "ml", "true\nfalse", "", 1);
	CHECK_RUN(c, "ml", "python3 <<EOF\nprint(1+1)\nEOF", "2\n", 0);
	CHECK_RUN(c, "ml", "for i in 1 2 3; do\n  echo \"i=$i\"\ndone", "i=1\ni=2\ni=3\n", 0);
	CHECK_RUN(c, "ml", "if true; then\n  echo yes\nelse\n  echo no\nfi", "yes\n", 0);
	CHECK_RUN(c, "ml", "g() {\n  echo \"g:$1\"\n}\ng arg", "g:arg\n", 0);
	CHECK_RUN(c, "ml", "echo a \\\n b", "a b\n", 0);
	CHECK_RUN(c, "ml", "A=(); false", "", 1);
	CHECK_RUN(c, "ml", "a=1; b=1; [[ $a == $b ]]", "", 0);
	CHECK_RUN(c, "ml", "a=1; b=2; [[ $a == $b ]]", "", 1);
	CHECK_RUN(c, "ml", "echo 'hw';A=();echo 'asdf'", "hw\nasdf\n", 0);
	CHECK_RUN(c, "ml", "echo 'multi\nline string'", "multi\nline string\n", 0);
}

HTEST(background_job_returns_at_once)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;
	double t0;

	REQUIRE(harness_create(c, "bg") == 0);
	t0 = harness_now();
	obs = harness_run(c, "bg", "(sleep 10) &", 5, SWEREX_CHECK_SILENT, &err);
	if (obs == NULL) {
		tap_diag(__FILE__, __LINE__, "a background job made the run fail");
		harness_show_error("error", err);
		swerex_error_free(err);
		return;
	}
	CHECK(harness_now() - t0 < 5);
	CHECK(obs->has_exit_code);
	CHECK_INT(obs->exit_code, 0);
	/* bash may print a job line such as "[1] 12345": not asserted exactly. */
	printf("# background job output: %.*s\n", (int)obs->output_len, obs->output);
	swerex_observation_free(obs);
	CHECK_RUN(c, "bg", "echo after", "after\n", 0);
}

HTEST(fake_markers_do_not_end_output)
{
	static const char line[] =
	    "SHELLPS1PREFIX $ # >>> @swx0123456789abcdef0123456789abcdef:0:0;\n";
	struct swerex_client *c = harness_client(h);
	char *expected;
	size_t i, n = 0;

	REQUIRE(harness_create(c, "fake") == 0);
	expected = malloc(3000 * (sizeof line - 1) + 8);
	REQUIRE(expected != NULL);
	for (i = 0; i < 3000; i++) {
		memcpy(expected + n, line, sizeof line - 1);
		n += sizeof line - 1;
	}
	memcpy(expected + n, "done\n", 6);
	CHECK_RUN(c, "fake", "for i in $(seq 1 3000); do echo "
		  "'SHELLPS1PREFIX $ # >>> @swx0123456789abcdef0123456789abcdef:0:0;'; "
		  "done; echo done", expected, 0);
	free(expected);
	/* The session is in sync afterwards. */
	CHECK_RUN(c, "fake", "echo next", "next\n", 0);
}

HTEST(long_command)
{
	struct swerex_client *c = harness_client(h);
	const char *head = "cat <<'EOF'\n", *tail = "EOF";
	size_t cap = 256 * 1024, n = 0, i;
	char *text, *cmd;

	REQUIRE(harness_create(c, "long") == 0);
	text = malloc(cap);
	cmd = malloc(cap + 64);
	REQUIRE(text != NULL && cmd != NULL);
	for (i = 0; n < 200 * 1024; i++) {
		if (i == 1000) {
			/* One line of 10,000 characters. */
			memset(text + n, 'W', 9999);
			text[n + 9999] = '\n';
			n += 10000;
			continue;
		}
		n += (size_t)snprintf(text + n, cap - n,
		    "line %05zu: the quick brown fox jumps over the lazy dog; "
		    "'quotes' \"double\" $dollar `tick` \\back\n", i);
	}
	text[n] = '\0';
	snprintf(cmd, cap + 64, "%s%s%s", head, text, tail);
	printf("# command is %zu bytes, expected output %zu bytes\n", strlen(cmd), n);
	CHECK_RUN(c, "long", cmd, text, 0);
	CHECK_RUN(c, "long", "echo after", "after\n", 0);
	free(text);
	free(cmd);
}

HTEST(check_modes)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs;
	struct swerex_error *err;

	REQUIRE(harness_create(c, "check") == 0);
	/* Silent: the exit code is reported, never an error. */
	CHECK_RUN(c, "check", "doesntexist", NULL, 127);
	CHECK_RUN(c, "check", "false && true", "", 1);
	CHECK_RUN(c, "check", "exit_with() { return $1; }; exit_with 42", "", 42);

	/* Raise: a non-zero exit is an error carrying the observation. */
	o = run_opts("check", "false", HARNESS_TIMEOUT, SWEREX_CHECK_RAISE);
	o.error_msg = "my prefix";
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_NON_ZERO_EXIT_CODE);
	if (err != NULL) {
		REQUIRE(err->observation != NULL);
		CHECK(err->observation->has_exit_code);
		CHECK_INT(err->observation->exit_code, 1);
		REQUIRE(err->message != NULL);
		if (strncmp(err->message, "my prefix", 9) != 0)
			tap_diag(__FILE__, __LINE__, "message \"%s\" does not start with the error_msg",
				 err->message);
		swerex_error_free(err);
	}
	o = run_opts("check", "echo raised; exit_with 3", HARNESS_TIMEOUT, SWEREX_CHECK_RAISE);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_NON_ZERO_EXIT_CODE);
	if (err != NULL) {
		REQUIRE(err->observation != NULL);
		CHECK_INT(err->observation->exit_code, 3);
		CHECK_MEM(err->observation->output, err->observation->output_len, "raised\n");
		swerex_error_free(err);
	}
	/* Raise with exit 0 is a plain observation. */
	o = run_opts("check", "echo fine", HARNESS_TIMEOUT, SWEREX_CHECK_RAISE);
	obs = NULL;
	err = NULL;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "check raise with exit 0 failed");
		harness_show_error("error", err);
		swerex_error_free(err);
	} else {
		CHECK_MEM(obs->output, obs->output_len, "fine\n");
		CHECK(obs->has_exit_code);
		CHECK_INT(obs->exit_code, 0);
		swerex_observation_free(obs);
	}

	/* Ignore: no exit code at all. */
	obs = harness_run(c, "check", "echo ignored; false", HARNESS_TIMEOUT,
			  SWEREX_CHECK_IGNORE, &err);
	if (obs == NULL) {
		tap_diag(__FILE__, __LINE__, "check ignore failed");
		harness_show_error("error", err);
		swerex_error_free(err);
	} else {
		CHECK(!obs->has_exit_code);
		CHECK_MEM(obs->output, obs->output_len, "ignored\n");
		swerex_observation_free(obs);
	}
	/* The exit code of the previous command does not leak into the next. */
	CHECK_RUN(c, "check", "true", "", 0);
}

HTEST(syntax_errors)
{
	static const char *bad[] = { "(a", "a='", "for", "echo ok; if", "echo $(" };
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_error *err;
	const char *stderr_text;
	double t0;
	size_t i;

	REQUIRE(harness_create(c, "syntax") == 0);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o = run_opts("syntax", bad[i], 10, SWEREX_CHECK_SILENT);
		t0 = harness_now();
		err = EXPECT_ERROR(c, &o, SWEREX_ERR_BASH_INCORRECT_SYNTAX);
		if (harness_now() - t0 > 5)
			tap_diag(__FILE__, __LINE__, "syntax error for \"%s\" took %.1f s",
				 bad[i], harness_now() - t0);
		if (err != NULL) {
			stderr_text = swerex_error_extra(err, "bash_stderr");
			if (stderr_text == NULL || (strstr(stderr_text, "syntax error") == NULL &&
			    strstr(stderr_text, "unexpected") == NULL)) {
				tap_diag(__FILE__, __LINE__,
					 "bash_stderr for \"%s\" does not explain the error", bad[i]);
				harness_show_error("error", err);
			}
			swerex_error_free(err);
		}
		CHECK_RUN(c, "syntax", "echo ok", "ok\n", 0);
	}
	/* Nothing of the rejected commands ran. */
	CHECK_RUN(c, "syntax", "echo \"${a-unset}\"", "unset\n", 0);
}

HTEST(big_output)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;
	size_t cap = 16 * 1024 * 1024, n = 0, i;
	char *expected;
	double t0;

	harness_watchdog(170);
	REQUIRE(harness_create(c, "big") == 0);
	expected = malloc(cap);
	REQUIRE(expected != NULL);
	for (i = 1; i <= 2000000; i++)
		n += (size_t)snprintf(expected + n, cap - n, "%zu\n", i);
	t0 = harness_now();
	obs = harness_run(c, "big", "seq 1 2000000", 120, SWEREX_CHECK_SILENT, &err);
	printf("# seq 1 2000000 (%zu bytes) took %.2f s\n", n, harness_now() - t0);
	if (obs == NULL) {
		tap_diag(__FILE__, __LINE__, "seq 1 2000000 failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		free(expected);
		return;
	}
	CHECK(!obs->truncated);
	CHECK_INT(obs->output_len, n);
	CHECK_INT(obs->output_bytes, n);
	CHECK_INT(obs->exit_code, 0);
	if (obs->output_len != n || memcmp(obs->output, expected, n) != 0) {
		for (i = 0; i < n && i < obs->output_len && obs->output[i] == expected[i]; i++)
			;
		tap_diag(__FILE__, __LINE__, "output differs from seq's at byte %zu", i);
		tap_show("got     ", obs->output + (i > 20 ? i - 20 : 0),
			 obs->output_len - (i > 20 ? i - 20 : 0) > 60 ? 60
			 : obs->output_len - (i > 20 ? i - 20 : 0));
		tap_show("expected", expected + (i > 20 ? i - 20 : 0), 60);
	}
	swerex_observation_free(obs);
	free(expected);
	CHECK_RUN(c, "big", "echo small", "small\n", 0);
}

HTEST(output_cap)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	size_t full = 0, i;
	char num[16];

	REQUIRE(harness_create(c, "cap") == 0);
	for (i = 1; i <= 100000; i++)
		full += (size_t)snprintf(num, sizeof num, "%zu\n", i);
	o = run_opts("cap", "seq 1 100000", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	o.max_output = 100000;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "capped run failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		return;
	}
	CHECK(obs->truncated);
	CHECK_INT(obs->output_bytes, full);
	CHECK(obs->output_len <= 100000 + 200);
	CHECK(obs->output_len >= 1000);
	CHECK(obs->output_len >= 4 && memcmp(obs->output, "1\n2\n", 4) == 0);
	CHECK(obs->output_len >= 13 &&
	      memcmp(obs->output + obs->output_len - 13, "99999\n100000\n", 13) == 0);
	CHECK(obs->has_exit_code && obs->exit_code == 0);
	if (tap_failed_now)
		harness_show_observation("capped", obs);
	swerex_observation_free(obs);

	/* Below the cap nothing is cut. */
	o = run_opts("cap", "seq 1 1000", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	o.max_output = 100000;
	obs = NULL;
	err = NULL;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "run under the cap failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		return;
	}
	CHECK(!obs->truncated);
	CHECK_INT(obs->output_len, 3893);
	CHECK_INT(obs->output_bytes, 3893);
	swerex_observation_free(obs);
}

HTEST(list_sessions)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_session_info *s = NULL, *a = NULL, *b = NULL;
	struct swerex_error *err = NULL;
	double now = (double)time(NULL);
	size_t n = 0, i;

	REQUIRE(harness_create(c, "ls-a") == 0);
	REQUIRE(harness_create(c, "ls-b") == 0);
	CHECK_RUN(c, "ls-a", "echo listed", "listed\n", 0);
	if (swerex_list_sessions(c, &s, &n, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "list_sessions failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		return;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(s[i].name, "ls-a") == 0)
			a = &s[i];
		else if (strcmp(s[i].name, "ls-b") == 0)
			b = &s[i];
	}
	CHECK(a != NULL);
	CHECK(b != NULL);
	if (a != NULL && b != NULL) {
		CHECK_INT(a->state, SWEREX_SESSION_IDLE);
		CHECK_INT(b->state, SWEREX_SESSION_IDLE);
		CHECK(a->pid > 0);
		CHECK(b->pid > 0);
		CHECK(a->pid != b->pid);
		CHECK(a->pid > 0 && kill(a->pid, 0) == 0);
		CHECK_STR(a->last_command, "echo listed");
		CHECK(a->created > now - 120 && a->created < now + 120);
	}
	swerex_sessions_free(s, n);

	/* A closed session is no longer listed. */
	REQUIRE(harness_close(c, "ls-b") == 0);
	s = NULL;
	n = 0;
	REQUIRE(swerex_list_sessions(c, &s, &n, &err) == 0);
	for (i = 0; i < n; i++)
		CHECK(strcmp(s[i].name, "ls-b") != 0);
	swerex_sessions_free(s, n);
}

HTEST(create_and_close_errors)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	struct swerex_run_opts o;
	struct swerex_error *err = NULL;
	char *out = NULL;
	size_t len = 0;

	REQUIRE(harness_create(c, "dup") == 0);
	co.session = "dup";
	if (swerex_create_session(c, &co, &out, &len, &err) == 0) {
		tap_diag(__FILE__, __LINE__, "creating an existing session succeeded");
		free(out);
	} else {
		CHECK_INT(err->kind, SWEREX_ERR_SESSION_EXISTS);
		swerex_error_free(err);
		err = NULL;
	}
	/* The existing session was not disturbed. */
	CHECK_RUN(c, "dup", "echo still", "still\n", 0);

	REQUIRE(harness_close(c, "dup") == 0);
	if (swerex_close_session(c, "dup", &err) == 0) {
		tap_diag(__FILE__, __LINE__, "closing a closed session succeeded");
	} else {
		CHECK_INT(err->kind, SWEREX_ERR_SESSION_DOES_NOT_EXIST);
		swerex_error_free(err);
		err = NULL;
	}

	o = run_opts("nosuch", "echo hi", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);
	o = run_opts("dup", "echo hi", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);

	/* The name can be used again. */
	REQUIRE(harness_create(c, "dup") == 0);
	CHECK_RUN(c, "dup", "echo again", "again\n", 0);
}

HTEST(startup_source)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	struct swerex_error *err = NULL;
	const char *src[1];
	char path[512], *out = NULL;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s/startup.sh", harness_dir(h));
	f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs("export FROM_STARTUP=yes; echo started\n", f);
	fclose(f);
	src[0] = path;
	co.session = "startup";
	co.startup_source = src;
	co.n_startup_source = 1;
	if (swerex_create_session(c, &co, &out, &len, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "create with startup_source failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		return;
	}
	if (!harness_contains(out, len, "started")) {
		tap_diag(__FILE__, __LINE__, "create output lacks what the startup file printed");
		tap_show("output", out, len);
	}
	free(out);
	CHECK_RUN(c, "startup", "echo $FROM_STARTUP", "yes\n", 0);
}

HTEST(startup_source_missing)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	struct swerex_error *err = NULL;
	const char *src[1];
	char path[512], *out = NULL;
	size_t len = 0;
	int r;

	snprintf(path, sizeof path, "%s/does-not-exist.sh", harness_dir(h));
	src[0] = path;
	co.session = "nostartup";
	co.startup_source = src;
	co.n_startup_source = 1;
	r = swerex_create_session(c, &co, &out, &len, &err);
	if (r != 0) {
		/* An error must say which file and why. */
		printf("# outcome: create failed with %s: %s\n",
		       swerex_error_kind_name(err->kind), err->message);
		harness_show_error("error", err);
		CHECK(err->message != NULL && (strstr(err->message, "does-not-exist.sh") ||
		      strstr(err->message, "No such file")));
		swerex_error_free(err);
		/* A failed create leaves no half-made session behind. */
		REQUIRE(harness_create(c, "nostartup") == 0);
		CHECK_RUN(c, "nostartup", "echo ok", "ok\n", 0);
	} else {
		printf("# outcome: create succeeded with output:\n");
		tap_show("output", out, len);
		CHECK(harness_contains(out, len, "No such file"));
		CHECK(harness_contains(out, len, "does-not-exist.sh"));
		free(out);
		CHECK_RUN(c, "nostartup", "echo ok", "ok\n", 0);
	}
}

HTEST(default_session)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o;
	struct swerex_error *err;

	REQUIRE(harness_create(c, NULL) == 0);
	CHECK_RUN(c, NULL, "V=7", "", 0);
	CHECK_RUN(c, NULL, "echo $V", "7\n", 0);
	CHECK_RUN(c, "default", "echo $V", "7\n", 0);
	CHECK_RUN(c, "", "echo $V", "7\n", 0);
	CHECK(harness_session_pid(c, "default") > 0);
	REQUIRE(harness_close(c, NULL) == 0);
	o = run_opts(NULL, "echo hi", HARNESS_TIMEOUT, SWEREX_CHECK_SILENT);
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);
}

TAP_MAIN(
	TAP_T(state_persists),
	TAP_T(functions_and_aliases_persist),
	TAP_T(sessions_are_isolated),
	TAP_T(exact_output),
	TAP_T(tabs_and_utf8),
	TAP_T(multi_line),
	TAP_T(background_job_returns_at_once),
	TAP_T(fake_markers_do_not_end_output),
	TAP_T(long_command),
	TAP_T(check_modes),
	TAP_T(syntax_errors),
	TAP_T(big_output),
	TAP_T(output_cap),
	TAP_T(list_sessions),
	TAP_T(create_and_close_errors),
	TAP_T(startup_source),
	TAP_T(startup_source_missing),
	TAP_T(default_session),
)
