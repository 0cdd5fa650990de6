/*
 * One-off commands (ExecuteRequest): exact and binary-safe output, exit
 * codes, stdin, environment, cwd, timeouts that end the whole process tree,
 * big and capped output, streaming, and commands that never block each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "harness.h"
#include "swerex.h"
#include "tap.h"

/* Options for a shell command with the default test timeout. */
static struct swerex_exec_opts
sh_opts(const char *command)
{
	struct swerex_exec_opts o = { 0 };

	o.shell = true;
	o.command = command;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	return o;
}

/* Options for an argv with the default test timeout. */
static struct swerex_exec_opts
argv_opts(const char *const *argv, size_t argc)
{
	struct swerex_exec_opts o = { 0 };

	o.argv = argv;
	o.argc = argc;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	return o;
}

/* Describe what an execute was asked to run, as a TAP comment. */
static void
show_opts(const struct swerex_exec_opts *o)
{
	size_t i;

	if (o->shell) {
		tap_show("command", o->command, o->command ? strlen(o->command) : 0);
		return;
	}
	for (i = 0; i < o->argc; i++)
		tap_show("argv", o->argv[i], strlen(o->argv[i]));
}

/* Print an exec result as TAP comments. */
static void
show_result(const char *label, const struct swerex_exec_result *r)
{
	if (r == NULL) {
		printf("#   %s: no exec result\n", label);
		return;
	}
	printf("#   %s: exit_code=%s%d signal=%d stdout_bytes=%llu%s "
	       "stderr_bytes=%llu%s failure_reason=\"%s\"\n", label,
	       r->has_exit_code ? "" : "(none) ", r->exit_code, r->signal,
	       (unsigned long long)r->stdout_bytes,
	       r->stdout_truncated ? " (truncated)" : "",
	       (unsigned long long)r->stderr_bytes,
	       r->stderr_truncated ? " (truncated)" : "",
	       r->failure_reason ? r->failure_reason : "(null)");
	tap_show("stdout", r->stdout_data, r->stdout_len);
	tap_show("stderr", r->stderr_data, r->stderr_len);
}

/* Print an error and its exec result as TAP comments. */
static void
show_error(const char *label, const struct swerex_error *err)
{
	harness_show_error(label, err);
	if (err != NULL && err->exec_result != NULL)
		show_result("error exec_result", err->exec_result);
}

/* Run opts and expect success; NULL after a diagnostic otherwise. */
static struct swerex_exec_result *
exec_ok_at(const char *file, int line, struct swerex_client *c,
	   const struct swerex_exec_opts *o)
{
	struct swerex_exec_result *res = NULL;
	struct swerex_error *err = NULL;

	if (swerex_execute(c, o, &res, &err) != 0) {
		tap_diag(file, line, "execute failed");
		show_opts(o);
		show_error("error", err);
		swerex_error_free(err);
		return NULL;
	}
	if (res == NULL)
		tap_diag(file, line, "execute succeeded without a result");
	return res;
}
#define EXEC_OK(c, o) exec_ok_at(__FILE__, __LINE__, (c), (o))

/* Run opts and expect an error of kind; return it, or NULL after a diagnostic. */
static struct swerex_error *
exec_fail_at(const char *file, int line, struct swerex_client *c,
	     const struct swerex_exec_opts *o, enum swerex_error_kind kind)
{
	struct swerex_exec_result *res = NULL;
	struct swerex_error *err = NULL;

	if (swerex_execute(c, o, &res, &err) == 0) {
		tap_diag(file, line, "expected error %s, the execute succeeded",
			 swerex_error_kind_name(kind));
		show_opts(o);
		show_result("result", res);
		swerex_exec_result_free(res);
		return NULL;
	}
	if (err == NULL || err->kind != kind) {
		tap_diag(file, line, "expected error %s, got %s",
			 swerex_error_kind_name(kind),
			 err ? swerex_error_kind_name(err->kind) : "no error object");
		show_opts(o);
		show_error("error", err);
		swerex_error_free(err);
		return NULL;
	}
	return err;
}
#define EXEC_FAIL(c, o, kind) exec_fail_at(__FILE__, __LINE__, (c), (o), (kind))

/* Run a shell command and check stdout, stderr (NULL: don't) and exit code. */
static void
check_sh_at(const char *file, int line, struct swerex_client *c,
	    const char *command, const char *out, const char *errout, int code)
{
	struct swerex_exec_opts o = sh_opts(command);
	struct swerex_exec_result *r = exec_ok_at(file, line, c, &o);

	if (r == NULL)
		return;
	if (!tap_mem_eq(r->stdout_data, r->stdout_len, out) ||
	    (errout != NULL && !tap_mem_eq(r->stderr_data, r->stderr_len, errout)) ||
	    !r->has_exit_code || r->exit_code != code) {
		tap_diag(file, line, "unexpected result");
		tap_show("command ", command, strlen(command));
		show_result("got", r);
		tap_show("expected stdout", out, strlen(out));
		if (errout != NULL)
			tap_show("expected stderr", errout, strlen(errout));
		printf("#   expected exit code %d\n", code);
	}
	swerex_exec_result_free(r);
}
#define CHECK_SH(c, cmd, out, errout, code) \
	check_sh_at(__FILE__, __LINE__, (c), (cmd), (out), (errout), (code))

/* Read a whole local file into memory; NULL on failure. */
static char *
slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	ssize_t r;
	size_t n = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf != NULL && n < (size_t)st.st_size) {
		r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (buf != NULL)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* Read a pid a command wrote into a file; 0 if there is none. */
static pid_t
read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	long pid = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return (pid_t)pid;
}

/* The output of `seq 1 n`, built locally. */
static char *
seq_output(unsigned long n, size_t *len)
{
	size_t cap = (size_t)n * 8 + 16, off = 0;
	char *buf = malloc(cap);
	unsigned long i;

	for (i = 1; buf != NULL && i <= n; i++)
		off += (size_t)snprintf(buf + off, cap - off, "%lu\n", i);
	*len = off;
	return buf;
}

/* Fill a buffer with pseudo-random bytes (xorshift64, fixed seed). */
static void
fill_random(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed ? seed : 88172645463325252ull;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
}

/* The replies to one execute: streamed chunks by stream, then the final one. */
struct exec_slot {
	bool done;
	unsigned seq;                 /* arrival order of final replies, from 1 */
	enum swerex_reply_type type;
	struct swerex_error *error;
	struct swerex_exec_result *result;
	struct swerex_observation *observation;
	char *chunk[3];               /* streamed bytes of stream 1 and 2 */
	size_t chunk_len[3];
	unsigned n_chunks;
	unsigned bad_stream;          /* chunks labelled neither 1 nor 2 */
	bool chunk_after_final;
};

static unsigned exec_slot_seq;

/* Append streamed output to a slot. */
static void
exec_slot_add(struct exec_slot *s, int stream, const char *data, size_t len)
{
	char *p;

	if (s->done)
		s->chunk_after_final = true;
	s->n_chunks++;
	if (stream != 1 && stream != 2) {
		s->bad_stream++;
		return;
	}
	p = realloc(s->chunk[stream], s->chunk_len[stream] + len + 1);
	if (p == NULL)
		return;
	memcpy(p + s->chunk_len[stream], data, len);
	s->chunk[stream] = p;
	s->chunk_len[stream] += len;
	p[s->chunk_len[stream]] = '\0';
}

/* on_output callback of the blocking API: collect into an exec_slot. */
static void
exec_slot_output(int stream, const char *data, size_t len, void *arg)
{
	exec_slot_add(arg, stream, data, len);
}

/* Reply callback of the event-driven API: record into the exec_slot arg. */
static void
exec_slot_cb(struct swerex_client *c, const struct swerex_reply *reply, void *arg)
{
	struct exec_slot *s = arg;

	(void)c;
	if (reply->type == SWEREX_REPLY_EXEC_CHUNK) {
		exec_slot_add(s, reply->stream, reply->data, reply->len);
		return;
	}
	if (reply->type == SWEREX_REPLY_CHUNK)
		return;
	if (s->done)
		printf("# a second final reply for request %llu\n",
		       (unsigned long long)reply->id);
	s->done = true;
	s->seq = ++exec_slot_seq;
	s->type = reply->type;
	if (reply->type == SWEREX_REPLY_ERROR && reply->error != NULL)
		s->error = swerex_error_dup(reply->error);
	if (reply->type == SWEREX_REPLY_EXEC && reply->exec_result != NULL)
		s->result = swerex_exec_result_dup(reply->exec_result);
	if (reply->type == SWEREX_REPLY_OBSERVATION && reply->observation != NULL)
		s->observation = swerex_observation_dup(reply->observation);
}

/* Free what a slot holds and zero it. */
static void
exec_slot_clear(struct exec_slot *s)
{
	swerex_error_free(s->error);
	swerex_exec_result_free(s->result);
	swerex_observation_free(s->observation);
	free(s->chunk[1]);
	free(s->chunk[2]);
	memset(s, 0, sizeof *s);
}

/* Describe a slot in TAP comments. */
static void
exec_slot_show(const char *label, const struct exec_slot *s)
{
	if (!s->done) {
		printf("#   %s: no final reply yet (%u chunks)\n", label, s->n_chunks);
		return;
	}
	printf("#   %s: final reply #%u type %d, %u chunks\n", label, s->seq,
	       (int)s->type, s->n_chunks);
	if (s->error != NULL)
		show_error("error", s->error);
	if (s->result != NULL)
		show_result("result", s->result);
	if (s->observation != NULL)
		harness_show_observation("observation", s->observation);
}

struct exec_slots {
	struct exec_slot *slots;
	size_t n;
};

/* Whether every slot of an array has its final reply. */
static bool
exec_slots_done(void *arg)
{
	struct exec_slots *a = arg;
	size_t i;

	for (i = 0; i < a->n; i++)
		if (!a->slots[i].done)
			return false;
	return true;
}

/* Output comes back byte for byte, stdout and stderr apart. */
HTEST(exact_output)
{
	struct swerex_client *c = harness_client(h);
	static const char *const echo_argv[] = { "echo", "-n", "\nhello world" };
	struct swerex_exec_opts o = argv_opts(echo_argv, 3);
	struct swerex_exec_result *r;

	CHECK_SH(c, "echo 'hello world'", "hello world\n", "", 0);
	CHECK_SH(c, "echo ''", "\n", "", 0);
	CHECK_SH(c, "", "", "", 0);
	CHECK_SH(c, "printf 'no newline'", "no newline", "", 0);
	CHECK_SH(c, "printf 'a\\r\\nb\\r\\n'", "a\r\nb\r\n", "", 0);
	CHECK_SH(c, "echo out; echo err >&2", "out\n", "err\n", 0);
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_MEM(r->stdout_data, r->stdout_len, "\nhello world");
		CHECK_MEM(r->stderr_data, r->stderr_len, "");
		CHECK(r->has_exit_code && r->exit_code == 0);
		CHECK_INT(r->signal, 0);
		CHECK(!r->stdout_truncated && !r->stderr_truncated);
		CHECK_INT(r->stdout_bytes, 12);
		CHECK_INT(r->stderr_bytes, 0);
		CHECK_STR(r->failure_reason, "");
	}
	swerex_exec_result_free(r);
}

/* Arguments reach the program unchanged: no shell word splitting or globbing. */
HTEST(argv_is_not_reinterpreted)
{
	struct swerex_client *c = harness_client(h);
	static const char *const argv[] = { "printf", "[%s]\\n", "a b", "*",
		"$HOME", "'q'", "" };
	struct swerex_exec_opts o = argv_opts(argv, 7);
	struct swerex_exec_result *r = EXEC_OK(c, &o);

	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len,
			  "[a b]\n[*]\n[$HOME]\n['q']\n[]\n");
	swerex_exec_result_free(r);
}

/* Merged streams keep the order of the writes; stderr stays empty. */
HTEST(merge_output_streams)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = sh_opts("echo a; echo b >&2; echo c; "
					    "printf d >&2; printf 'e\\n'");
	struct swerex_exec_result *r;

	o.merge_output_streams = true;
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_MEM(r->stdout_data, r->stdout_len, "a\nb\nc\nde\n");
		CHECK_MEM(r->stderr_data, r->stderr_len, "");
		CHECK_INT(r->stderr_bytes, 0);
		CHECK_INT(r->stdout_bytes, 9);
	}
	swerex_exec_result_free(r);
	/* Without merging the same command keeps them apart. */
	o.merge_output_streams = false;
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_MEM(r->stdout_data, r->stdout_len, "a\nc\ne\n");
		CHECK_MEM(r->stderr_data, r->stderr_len, "b\nd");
	}
	swerex_exec_result_free(r);
}

/* Exit codes are reported; check turns a failure into NON_ZERO_EXIT_CODE. */
HTEST(exit_codes)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = sh_opts("echo out; echo err >&2; exit 3");
	struct swerex_exec_result *r;
	struct swerex_error *err;
	const char *code;

	/* Without check a failure is just the exit code. */
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK(r->has_exit_code);
		CHECK_INT(r->exit_code, 3);
		CHECK_MEM(r->stdout_data, r->stdout_len, "out\n");
		CHECK_MEM(r->stderr_data, r->stderr_len, "err\n");
	}
	swerex_exec_result_free(r);
	CHECK_SH(c, "exit 255", "", "", 255);
	CHECK_SH(c, "false", "", "", 1);

	/* With check it raises, carrying the output and the code. */
	o.check = true;
	o.error_msg = "custom message";
	err = EXEC_FAIL(c, &o, SWEREX_ERR_NON_ZERO_EXIT_CODE);
	if (err != NULL) {
		REQUIRE(err->message != NULL);
		if (strncmp(err->message, "custom message", 14) != 0) {
			tap_diag(__FILE__, __LINE__, "error_msg does not start the message");
			show_error("error", err);
		}
		code = swerex_error_extra(err, "exit_code");
		CHECK(code == NULL || strcmp(code, "3") == 0);
		REQUIRE(err->exec_result != NULL);
		CHECK_MEM(err->exec_result->stdout_data, err->exec_result->stdout_len, "out\n");
		CHECK_MEM(err->exec_result->stderr_data, err->exec_result->stderr_len, "err\n");
		CHECK(err->exec_result->has_exit_code);
		CHECK_INT(err->exec_result->exit_code, 3);
	}
	swerex_error_free(err);

	/* check passes a zero exit. */
	o = sh_opts("echo fine");
	o.check = true;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, "fine\n");
	swerex_exec_result_free(r);
}

/* A program ended by a signal has no exit code, but the signal. */
HTEST(killed_by_signal)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = sh_opts("echo x; kill -KILL $$");
	struct swerex_exec_result *r = EXEC_OK(c, &o);
	struct swerex_error *err;

	if (r != NULL) {
		CHECK(!r->has_exit_code);
		CHECK_INT(r->signal, SIGKILL);
		CHECK_MEM(r->stdout_data, r->stdout_len, "x\n");
	}
	swerex_exec_result_free(r);
	o.check = true;
	err = EXEC_FAIL(c, &o, SWEREX_ERR_NON_ZERO_EXIT_CODE);
	if (err != NULL && err->exec_result != NULL)
		CHECK_INT(err->exec_result->signal, SIGKILL);
	swerex_error_free(err);
}

/* A program that does not exist is FILE_NOT_FOUND, named in the message. */
HTEST(program_not_found)
{
	struct swerex_client *c = harness_client(h);
	static const char *const abs_argv[] = { "/nonexistent/prog", "arg" };
	static const char *const path_argv[] = { "no-such-program-xyz" };
	struct swerex_exec_opts o = argv_opts(abs_argv, 2);
	struct swerex_error *err;

	/* valgrind runs posix_spawn's vfork as a fork, so a failed exec
	 * reaches swerexd as exit status 127, not as an error. */
	if (harness_under_valgrind())
		SKIP("valgrind: posix_spawn cannot report exec errors");

	err = EXEC_FAIL(c, &o, SWEREX_ERR_FILE_NOT_FOUND);
	if (err != NULL && !harness_contains(err->message, strlen(err->message),
					     "/nonexistent/prog")) {
		tap_diag(__FILE__, __LINE__, "the message does not name the program");
		show_error("error", err);
	}
	swerex_error_free(err);

	o = argv_opts(path_argv, 1);
	err = EXEC_FAIL(c, &o, SWEREX_ERR_FILE_NOT_FOUND);
	if (err != NULL && !harness_contains(err->message, strlen(err->message),
					     "no-such-program-xyz")) {
		tap_diag(__FILE__, __LINE__, "the message does not name the program");
		show_error("error", err);
	}
	swerex_error_free(err);
	/* The daemon is fine afterwards. */
	CHECK_SH(c, "echo still", "still\n", "", 0);
}

/* Without stdin, stdin is /dev/null: readers see EOF at once (SWE-ReX #281). */
HTEST(stdin_defaults_to_dev_null)
{
	struct swerex_client *c = harness_client(h);
	static const char *const cat_argv[] = { "cat" };
	static const char *const grep_argv[] = { "grep", "x" };
	struct swerex_exec_opts o = argv_opts(cat_argv, 1);
	struct swerex_exec_result *r;
	double t0 = harness_now();

	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_MEM(r->stdout_data, r->stdout_len, "");
		CHECK(r->has_exit_code && r->exit_code == 0);
	}
	swerex_exec_result_free(r);
	o = argv_opts(grep_argv, 2);
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_MEM(r->stdout_data, r->stdout_len, "");
		CHECK(r->has_exit_code && r->exit_code == 1);
	}
	swerex_exec_result_free(r);
	CHECK(harness_now() - t0 < 10);
	CHECK_SH(c, "readlink -f /proc/self/fd/0", "/dev/null\n", "", 0);
}

/* Given stdin bytes reach the program unchanged, however many. */
HTEST(stdin_bytes_exact)
{
	struct swerex_client *c = harness_client(h);
	static const char *const cat_argv[] = { "cat" };
	struct swerex_exec_opts o = argv_opts(cat_argv, 1);
	struct swerex_exec_result *r;
	unsigned char all[256], *big;
	size_t big_len = 1u << 20;
	int i;

	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	o.stdin_data = all;
	o.stdin_len = sizeof all;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_BYTES("cat of all byte values", r->stdout_data, r->stdout_len,
			    all, sizeof all);
	swerex_exec_result_free(r);

	/* An empty stdin is given, not /dev/null, and is just as empty. */
	o.stdin_data = "";
	o.stdin_len = 0;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, "");
	swerex_exec_result_free(r);

	/* More than a pipe holds, while the output pipe fills up as well. */
	big = malloc(big_len);
	REQUIRE(big != NULL);
	fill_random(big, big_len, 281);
	o.stdin_data = big;
	o.stdin_len = big_len;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_BYTES("cat of 1 MiB", r->stdout_data, r->stdout_len, big, big_len);
	swerex_exec_result_free(r);

	/* A program that stops reading early: the rest is dropped, no hang. */
	{
		static const char *const head_argv[] = { "head", "-c", "10" };

		o = argv_opts(head_argv, 3);
		o.stdin_data = big;
		o.stdin_len = big_len;
		r = EXEC_OK(c, &o);
		if (r != NULL) {
			CHECK_BYTES("head -c 10", r->stdout_data, r->stdout_len, big, 10);
			CHECK(r->has_exit_code && r->exit_code == 0);
		}
		swerex_exec_result_free(r);
	}

	/* A program that ignores its stdin does not hang on it. */
	o = sh_opts("echo ignored");
	o.stdin_data = big;
	o.stdin_len = big_len;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, "ignored\n");
	swerex_exec_result_free(r);
	free(big);
}

/* env replaces the environment with replace_env, else adds to it. */
HTEST(environment)
{
	struct swerex_client *c = harness_client(h);
	static const char *const env_argv[] = { "/usr/bin/env" };
	static const char *const printenv_argv[] = { "printenv", "SWEREX_TEST_VAR" };
	const char *env[] = { "FOO=bar" };
	const char *added[] = { "SWEREX_TEST_VAR=hello world=1" };
	struct swerex_exec_opts o = argv_opts(env_argv, 1);
	struct swerex_exec_result *r;

	/* replace_env: the given variables are the whole environment. */
	o.env = env;
	o.n_env = 1;
	o.replace_env = true;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, "FOO=bar\n");
	swerex_exec_result_free(r);

	/* Added to the daemon's environment: visible, PATH still searched. */
	o = argv_opts(printenv_argv, 2);
	o.env = added;
	o.n_env = 1;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, "hello world=1\n");
	swerex_exec_result_free(r);

	o = sh_opts("echo \"$SWEREX_TEST_VAR\"; command -v ls >/dev/null && echo path-ok");
	o.env = added;
	o.n_env = 1;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, "hello world=1\npath-ok\n");
	swerex_exec_result_free(r);

	/* Nothing leaks from one command into the next. */
	CHECK_SH(c, "echo \"[$SWEREX_TEST_VAR]\"", "[]\n", "", 0);
}

/* cwd is where the command runs; a bad cwd is refused with its kind. */
HTEST(working_directory)
{
	struct swerex_client *c = harness_client(h);
	static const char *const pwd_argv[] = { "pwd" };
	struct swerex_exec_opts o = sh_opts("pwd");
	struct swerex_exec_result *r;
	struct swerex_error *err;
	char real[PATH_MAX], want[PATH_MAX + 2], missing[PATH_MAX + 32];
	char file[PATH_MAX + 32];
	FILE *f;

	REQUIRE(realpath(harness_dir(h), real) != NULL);
	snprintf(want, sizeof want, "%s\n", real);
	o.cwd = real;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, want);
	swerex_exec_result_free(r);
	o = argv_opts(pwd_argv, 1);
	o.cwd = real;
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len, want);
	swerex_exec_result_free(r);

	snprintf(missing, sizeof missing, "%s/no-such-dir", real);
	o = sh_opts("pwd");
	o.cwd = missing;
	err = EXEC_FAIL(c, &o, SWEREX_ERR_FILE_NOT_FOUND);
	swerex_error_free(err);

	snprintf(file, sizeof file, "%s/plain-file", real);
	f = fopen(file, "w");
	REQUIRE(f != NULL);
	fclose(f);
	o.cwd = file;
	err = EXEC_FAIL(c, &o, SWEREX_ERR_NOT_A_DIRECTORY);
	swerex_error_free(err);
}

/* A timeout is COMMAND_TIMEOUT with what was printed before it. */
HTEST(timeout_keeps_partial_output)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = sh_opts("echo before; echo on-stderr >&2; sleep 100");
	struct swerex_error *err;
	double t0;

	o.timeout = 0.5;
	t0 = harness_now();
	err = EXEC_FAIL(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	CHECK(harness_now() - t0 < 10);
	if (err != NULL) {
		REQUIRE(err->exec_result != NULL);
		CHECK_MEM(err->exec_result->stdout_data, err->exec_result->stdout_len,
			  "before\n");
		CHECK_MEM(err->exec_result->stderr_data, err->exec_result->stderr_len,
			  "on-stderr\n");
		CHECK(err->exec_result->failure_reason != NULL &&
		      *err->exec_result->failure_reason != '\0');
		CHECK(!err->exec_result->has_exit_code);
		CHECK(err->exec_result->signal != 0);
	}
	swerex_error_free(err);
	CHECK_SH(c, "echo after", "after\n", "", 0);
}

/*
 * On timeout the whole tree goes: background children, a grandchild whose
 * parent already exited, one in its own process group, one that ignores
 * SIGTERM and SIGHUP. Each writes its pid before the final sleep.
 */
HTEST(timeout_kills_process_tree)
{
	struct swerex_client *c = harness_client(h);
	static const char *const names[] = { "bg", "orphan", "pgrp", "stubborn",
		"nohup", "main" };
	char cmd[8192], path[PATH_MAX];
	const char *d = harness_dir(h);
	struct swerex_exec_opts o;
	struct swerex_error *err;
	pid_t pid;
	size_t i;

	snprintf(cmd, sizeof cmd,
	    "sleep 3201 & echo $! > '%s/bg.pid'; "
	    "sh -c 'sleep 3202 & echo $! > \"%s/orphan.pid\"'; "
	    "bash -c 'set -m; sleep 3203 & echo $! > \"%s/pgrp.pid\"'; "
	    "sh -c 'trap \"\" TERM HUP INT; sleep 3204 & echo $! > \"%s/stubborn.pid\"'; "
	    "nohup sleep 3205 >/dev/null 2>&1 & echo $! > '%s/nohup.pid'; "
	    "echo $$ > '%s/main.pid'; echo ready; sleep 3200",
	    d, d, d, d, d, d);
	o = sh_opts(cmd);
	o.timeout = 2;
	err = EXEC_FAIL(c, &o, SWEREX_ERR_COMMAND_TIMEOUT);
	if (err != NULL && err->exec_result != NULL)
		CHECK_MEM(err->exec_result->stdout_data, err->exec_result->stdout_len,
			  "ready\n");
	swerex_error_free(err);
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s.pid", d, names[i]);
		pid = read_pid(path);
		if (pid <= 0) {
			tap_diag(__FILE__, __LINE__, "no pid in %s", path);
			continue;
		}
		if (!harness_pid_gone(pid, 5))
			tap_diag(__FILE__, __LINE__, "%s process %d still runs after the timeout",
				 names[i], (int)pid);
	}
}

/* Whether a slot has its final reply or a whole line of streamed stdout. */
static bool
exec_slot_has_line(void *arg)
{
	struct exec_slot *s = arg;

	return s->done || (s->chunk[1] != NULL &&
			   memchr(s->chunk[1], '\n', s->chunk_len[1]) != NULL);
}

/* Output is binary-safe: random bytes and every byte value. */
HTEST(binary_output)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o;
	struct swerex_exec_result *r;
	unsigned char all[256];
	char cmd[PATH_MAX + 2048], path[PATH_MAX], *file;
	size_t len = 0, off;
	int i;

	/* Random bytes: what the command printed equals what it wrote. */
	snprintf(path, sizeof path, "%s/rand.bin", harness_dir(h));
	snprintf(cmd, sizeof cmd, "head -c 1000000 /dev/urandom | tee '%s'", path);
	o = sh_opts(cmd);
	r = EXEC_OK(c, &o);
	file = slurp(path, &len);
	CHECK(file != NULL);
	CHECK_INT(len, 1000000);
	if (r != NULL && file != NULL) {
		CHECK_BYTES("random stdout", r->stdout_data, r->stdout_len, file, len);
		CHECK_INT(r->stdout_bytes, 1000000);
		CHECK(!r->stdout_truncated);
	}
	swerex_exec_result_free(r);
	free(file);

	/* Every byte value, on stdout and on stderr. */
	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	off = (size_t)snprintf(cmd, sizeof cmd, "printf '");
	for (i = 0; i < 256; i++)
		off += (size_t)snprintf(cmd + off, sizeof cmd - off, "\\%03o", i);
	snprintf(cmd + off, sizeof cmd - off, "'");
	o = sh_opts(cmd);
	r = EXEC_OK(c, &o);
	if (r != NULL)
		CHECK_BYTES("printf of all byte values", r->stdout_data,
			    r->stdout_len, all, sizeof all);
	swerex_exec_result_free(r);
	snprintf(cmd + off, sizeof cmd - off, "' >&2");
	o = sh_opts(cmd);
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_BYTES("printf of all byte values to stderr", r->stderr_data,
			    r->stderr_len, all, sizeof all);
		CHECK_INT(r->stdout_len, 0);
	}
	swerex_exec_result_free(r);
}

/* Output below the cap comes back whole, however big. */
HTEST(big_output_whole)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = sh_opts("seq 1 2000000");
	struct swerex_exec_result *r;
	size_t len;
	char *want = seq_output(2000000, &len);

	REQUIRE(want != NULL);
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_BYTES("seq 1 2000000", r->stdout_data, r->stdout_len, want, len);
		CHECK_INT(r->stdout_bytes, len);
		CHECK(!r->stdout_truncated);
		CHECK(r->has_exit_code && r->exit_code == 0);
	}
	swerex_exec_result_free(r);
	free(want);
}

/* Check a capped stream: head and tail kept, the full size reported. */
static void
check_capped_at(const char *file, int line, const char *what, const char *p,
		size_t n, bool truncated, uint64_t bytes, const char *full,
		size_t full_len, uint64_t cap)
{
	if (!truncated)
		tap_diag(file, line, "%s: not flagged truncated", what);
	if (bytes != full_len)
		tap_diag(file, line, "%s: %llu bytes reported, printed %zu", what,
			 (unsigned long long)bytes, full_len);
	if (n >= full_len || n > 2 * cap + 256)
		tap_diag(file, line, "%s: %zu bytes kept of %zu with a cap of %llu",
			 what, n, full_len, (unsigned long long)cap);
	if (p == NULL || n < 200 || memcmp(p, full, 100) != 0 ||
	    memcmp(p + n - 100, full + full_len - 100, 100) != 0) {
		tap_diag(file, line, "%s: head or tail not kept", what);
		tap_show("got", p, n);
	}
}
#define CHECK_CAPPED(what, p, n, tr, bytes, full, full_len, cap) \
	check_capped_at(__FILE__, __LINE__, (what), (p), (n), (tr), (bytes), \
			(full), (full_len), (cap))

/* Above max_output a stream keeps head and tail and reports its size. */
HTEST(output_cap)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = sh_opts("seq 1 100000; echo small >&2");
	struct swerex_exec_result *r;
	size_t len;
	char *full = seq_output(100000, &len);

	REQUIRE(full != NULL);
	o.max_output = 1000;
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_CAPPED("stdout", r->stdout_data, r->stdout_len,
			     r->stdout_truncated, r->stdout_bytes, full, len, 1000);
		/* The cap is per stream: a small stderr is whole. */
		CHECK_MEM(r->stderr_data, r->stderr_len, "small\n");
		CHECK(!r->stderr_truncated);
		CHECK_INT(r->stderr_bytes, 6);
		CHECK(r->has_exit_code && r->exit_code == 0);
	}
	swerex_exec_result_free(r);

	o = sh_opts("echo small; seq 1 100000 >&2");
	o.max_output = 1000;
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_CAPPED("stderr", r->stderr_data, r->stderr_len,
			     r->stderr_truncated, r->stderr_bytes, full, len, 1000);
		CHECK_MEM(r->stdout_data, r->stdout_len, "small\n");
		CHECK(!r->stdout_truncated);
	}
	swerex_exec_result_free(r);

	/* Output exactly at the cap is not truncated. */
	o = sh_opts("head -c 1000 /dev/zero");
	o.max_output = 1000;
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_INT(r->stdout_len, 1000);
		CHECK(!r->stdout_truncated);
	}
	swerex_exec_result_free(r);
	free(full);
}

/* on_output gets labelled chunks that add up to the final output. */
HTEST(streamed_output)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = sh_opts(
	    "for i in 1 2 3; do echo out$i; echo err$i >&2; done");
	struct swerex_exec_result *r;
	struct exec_slot s = { 0 };
	size_t len;
	char *full;

	o.on_output = exec_slot_output;
	o.output_arg = &s;
	r = EXEC_OK(c, &o);
	if (r != NULL) {
		CHECK_MEM(r->stdout_data, r->stdout_len, "out1\nout2\nout3\n");
		CHECK_MEM(r->stderr_data, r->stderr_len, "err1\nerr2\nerr3\n");
	}
	CHECK(s.n_chunks >= 2);
	CHECK_INT(s.bad_stream, 0);
	CHECK_MEM(s.chunk[1], s.chunk_len[1], "out1\nout2\nout3\n");
	CHECK_MEM(s.chunk[2], s.chunk_len[2], "err1\nerr2\nerr3\n");
	swerex_exec_result_free(r);
	exec_slot_clear(&s);

	/* Merged output is all stdout. */
	o.merge_output_streams = true;
	r = EXEC_OK(c, &o);
	CHECK_MEM(s.chunk[1], s.chunk_len[1],
		  "out1\nerr1\nout2\nerr2\nout3\nerr3\n");
	CHECK_INT(s.chunk_len[2], 0);
	if (r != NULL)
		CHECK_MEM(r->stdout_data, r->stdout_len,
			  "out1\nerr1\nout2\nerr2\nout3\nerr3\n");
	swerex_exec_result_free(r);
	exec_slot_clear(&s);

	/* Many chunks still add up to the whole. */
	full = seq_output(300000, &len);
	REQUIRE(full != NULL);
	o = sh_opts("seq 1 300000");
	o.on_output = exec_slot_output;
	o.output_arg = &s;
	r = EXEC_OK(c, &o);
	CHECK_BYTES("streamed seq", s.chunk[1], s.chunk_len[1], full, len);
	if (r != NULL)
		CHECK_BYTES("final seq", r->stdout_data, r->stdout_len, full, len);
	swerex_exec_result_free(r);
	exec_slot_clear(&s);
	free(full);
}

/* Streamed chunks of the event-driven API come before the final reply. */
HTEST(streamed_output_event_driven)
{
	struct event_base *base = event_base_new();
	struct swerex_client *ce;
	struct swerex_exec_opts o = sh_opts("echo a; echo b >&2; echo c");
	struct swerex_error *err = NULL;
	struct exec_slot s = { 0 };

	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	REQUIRE(swerex_submit_execute(ce, &o, true, exec_slot_cb, &s, &err) != 0);
	CHECK(harness_drive_until(base, exec_slot_has_line, &s, 20));
	CHECK(harness_drive_until(base, exec_slots_done,
				  &(struct exec_slots){ &s, 1 }, 20));
	CHECK_INT(s.type, SWEREX_REPLY_EXEC);
	CHECK(!s.chunk_after_final);
	CHECK_INT(s.bad_stream, 0);
	CHECK_MEM(s.chunk[1], s.chunk_len[1], "a\nc\n");
	CHECK_MEM(s.chunk[2], s.chunk_len[2], "b\n");
	if (s.result != NULL) {
		CHECK_MEM(s.result->stdout_data, s.result->stdout_len, "a\nc\n");
		CHECK_MEM(s.result->stderr_data, s.result->stderr_len, "b\n");
	} else {
		exec_slot_show("execute", &s);
	}
	swerex_client_free(ce);
	event_base_free(base);
	exec_slot_clear(&s);
}

/* A client that goes away takes its running command with it. */
HTEST(disconnect_kills_command)
{
	struct event_base *base = event_base_new();
	struct swerex_client *ce;
	struct swerex_exec_opts o = sh_opts("echo $$; exec sleep 3300");
	struct swerex_error *err = NULL;
	struct exec_slot s = { 0 };
	pid_t pid = 0;

	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	REQUIRE(swerex_submit_execute(ce, &o, true, exec_slot_cb, &s, &err) != 0);
	/* The pid arrives as streamed output while the command runs. */
	CHECK(harness_drive_until(base, exec_slot_has_line, &s, 20));
	if (s.done)
		exec_slot_show("execute", &s);
	CHECK(!s.done);
	if (s.chunk[1] != NULL)
		pid = (pid_t)atol(s.chunk[1]);
	swerex_client_free(ce);
	event_base_free(base);
	/* Freeing the client answers the pending request itself. */
	CHECK(s.done && s.type == SWEREX_REPLY_ERROR && s.error != NULL &&
	      s.error->kind == SWEREX_ERR_DISCONNECTED);
	exec_slot_clear(&s);
	REQUIRE(pid > 0);
	CHECK(harness_pid_gone(pid, 5));
	CHECK_SH(harness_client(h), "echo alive", "alive\n", "", 0);
}

/*
 * A long command blocks neither a quick command nor a session run on the
 * same connection: both are answered while it is still pending.
 */
HTEST(no_head_of_line_blocking)
{
	struct swerex_client *c = harness_client(h);
	struct event_base *base = event_base_new();
	struct swerex_client *ce;
	struct swerex_exec_opts slow = sh_opts("sleep 30"), quick = sh_opts("echo quick");
	struct swerex_run_opts ro = { 0 };
	struct swerex_error *err = NULL;
	struct exec_slot s[3] = { 0 };
	struct exec_slots fast = { s + 1, 2 };

	REQUIRE(base != NULL);
	REQUIRE(harness_create(c, "hol") == 0);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	slow.timeout = 60;
	REQUIRE(swerex_submit_execute(ce, &slow, false, exec_slot_cb, &s[0], &err) != 0);
	REQUIRE(swerex_submit_execute(ce, &quick, false, exec_slot_cb, &s[1], &err) != 0);
	ro.session = "hol";
	ro.command = "echo session";
	ro.has_timeout = true;
	ro.timeout = HARNESS_TIMEOUT;
	ro.check = SWEREX_CHECK_SILENT;
	REQUIRE(swerex_submit_run(ce, &ro, false, exec_slot_cb, &s[2], &err) != 0);
	/* Well before the sleep could end. */
	CHECK(harness_drive_until(base, exec_slots_done, &fast, 20));
	CHECK(!s[0].done);
	CHECK_INT(s[1].type, SWEREX_REPLY_EXEC);
	if (s[1].result != NULL)
		CHECK_MEM(s[1].result->stdout_data, s[1].result->stdout_len, "quick\n");
	else
		exec_slot_show("quick", &s[1]);
	CHECK_INT(s[2].type, SWEREX_REPLY_OBSERVATION);
	if (s[2].observation != NULL)
		CHECK_MEM(s[2].observation->output, s[2].observation->output_len,
			  "session\n");
	else
		exec_slot_show("run", &s[2]);
	/* Another connection is not held up either. */
	CHECK_SH(c, "echo other", "other\n", "", 0);
	CHECK(!s[0].done);
	if (s[0].done)
		exec_slot_show("slow", &s[0]);
	/* The daemon kills the sleep when its client goes. */
	swerex_client_free(ce);
	event_base_free(base);
	exec_slot_clear(&s[0]);
	exec_slot_clear(&s[1]);
	exec_slot_clear(&s[2]);
}

/* Many executes in flight on one connection are each answered right. */
HTEST(many_concurrent)
{
	enum { N = 50 };
	struct event_base *base = event_base_new();
	struct swerex_client *ce;
	struct swerex_exec_opts o;
	struct swerex_error *err = NULL;
	struct exec_slot *s = calloc(N, sizeof *s);
	struct exec_slots all = { s, N };
	char cmd[N][128], want_out[32], want_err[32];
	int i;

	REQUIRE(base != NULL && s != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	for (i = 0; i < N; i++) {
		snprintf(cmd[i], sizeof cmd[i],
			 "echo out%d; echo err%d >&2; exit %d", i, i, i % 7);
		o = sh_opts(cmd[i]);
		if (swerex_submit_execute(ce, &o, false, exec_slot_cb, &s[i], &err) == 0) {
			tap_diag(__FILE__, __LINE__, "submit %d failed", i);
			show_error("error", err);
			swerex_error_free(err);
			err = NULL;
		}
	}
	CHECK(harness_drive_until(base, exec_slots_done, &all, 60));
	for (i = 0; i < N; i++) {
		snprintf(want_out, sizeof want_out, "out%d\n", i);
		snprintf(want_err, sizeof want_err, "err%d\n", i);
		if (s[i].type != SWEREX_REPLY_EXEC || s[i].result == NULL ||
		    !tap_mem_eq(s[i].result->stdout_data, s[i].result->stdout_len, want_out) ||
		    !tap_mem_eq(s[i].result->stderr_data, s[i].result->stderr_len, want_err) ||
		    !s[i].result->has_exit_code || s[i].result->exit_code != i % 7) {
			tap_diag(__FILE__, __LINE__, "execute %d answered wrongly", i);
			exec_slot_show("execute", &s[i]);
		}
	}
	swerex_client_free(ce);
	event_base_free(base);
	for (i = 0; i < N; i++)
		exec_slot_clear(&s[i]);
	free(s);
}

TAP_MAIN(
	TAP_T(exact_output),
	TAP_T(argv_is_not_reinterpreted),
	TAP_T(merge_output_streams),
	TAP_T(exit_codes),
	TAP_T(killed_by_signal),
	TAP_T(program_not_found),
	TAP_T(stdin_defaults_to_dev_null),
	TAP_T(stdin_bytes_exact),
	TAP_T(environment),
	TAP_T(working_directory),
	TAP_T(timeout_keeps_partial_output),
	TAP_T(timeout_kills_process_tree),
	TAP_T(binary_output),
	TAP_T(big_output_whole),
	TAP_T(output_cap),
	TAP_T(streamed_output),
	TAP_T(streamed_output_event_driven),
	TAP_T(disconnect_kills_command),
	TAP_T(no_head_of_line_blocking),
	TAP_T(many_concurrent),
)
