/*
 * Integration tests of session life cycles: streamed output, the start-up
 * deadline, what close and interrupt do to processes.
 */
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "raw.h"
#include "swerex.h"
#include "tap.h"

/* Read a pid a session's command wrote into a file. */
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

/* Streamed chunks arrive before the final observation and add up to it. */
HTEST(streaming_chunks_add_up)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	struct harness_chunks ch = { .len = 0 };

	REQUIRE(harness_create(c, "stream") == 0);
	o.session = "stream";
	o.command = "for i in 1 2 3; do echo line$i; done; printf end";
	o.check = SWEREX_CHECK_SILENT;
	o.on_chunk = harness_chunks_add;
	o.chunk_arg = &ch;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("stream", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	CHECK_MEM(obs->output, obs->output_len, "line1\nline2\nline3\nend");
	CHECK_MEM(ch.buf, ch.len, "line1\nline2\nline3\nend");
	CHECK(ch.n >= 1);
	CHECK(obs->has_exit_code && obs->exit_code == 0);
	swerex_observation_free(obs);
}

/* A start-up that overruns startup_timeout fails, and leaves nothing behind. */
HTEST(startup_timeout_leaves_nothing)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	struct swerex_session_info *s = NULL;
	struct swerex_error *err = NULL;
	char file[4096], pidfile[4096], *out = NULL;
	const char *src[1] = { file };
	size_t len = 0, n = 0, i;
	pid_t pid;
	FILE *f;
	double t0;

	snprintf(file, sizeof file, "%s/slow-rc.sh", harness_dir(h));
	snprintf(pidfile, sizeof pidfile, "%s/slow.pid", harness_dir(h));
	f = fopen(file, "w");
	REQUIRE(f != NULL);
	fprintf(f, "echo $$ > '%s'\nsleep 3131\n", pidfile);
	fclose(f);

	co.session = "slow";
	co.startup_source = src;
	co.n_startup_source = 1;
	co.startup_timeout = 0.5;
	t0 = harness_now();
	CHECK(swerex_create_session(c, &co, &out, &len, &err) != 0);
	CHECK(harness_now() - t0 < 5);
	REQUIRE(err != NULL);
	CHECK_STR(swerex_error_kind_name(err->kind), "SESSION_START_FAILED");
	swerex_error_free(err);
	err = NULL;

	/* bash and its sleep are gone, and so is the session. */
	pid = read_pid(pidfile);
	CHECK(pid > 0);
	if (pid > 0)
		CHECK(harness_pid_gone(pid, 5));
	REQUIRE(swerex_list_sessions(c, &s, &n, &err) == 0);
	for (i = 0; i < n; i++)
		CHECK(strcmp(s[i].name, "slow") != 0);
	swerex_sessions_free(s, n);
	REQUIRE(harness_create(c, "slow") == 0);
	CHECK_RUN(c, "slow", "echo fine", "fine\n", 0);
}

/* Close ends bash, its foreground job and its background jobs, even
 * those that ignore SIGHUP. */
HTEST(close_kills_process_tree)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	char cmd[8192], bgfile[4096], fgfile[4096];
	pid_t bash, bg, fg;

	REQUIRE(harness_create(c, "tree") == 0);
	bash = harness_session_pid(c, "tree");
	REQUIRE(bash > 0);
	snprintf(bgfile, sizeof bgfile, "%s/bg.pid", harness_dir(h));
	snprintf(fgfile, sizeof fgfile, "%s/fg.pid", harness_dir(h));
	/* Immune to the SIGHUP bash passes on: only the daemon's sweep ends it. */
	snprintf(cmd, sizeof cmd, "nohup sleep 3132 >/dev/null 2>&1 & "
	    "echo $! > '%s'", bgfile);
	obs = harness_exec(c, "tree", cmd);
	swerex_observation_free(obs);
	/* A foreground job that is still running when the session is closed. */
	snprintf(cmd, sizeof cmd, "sh -c 'echo $$ > \"%s\"; exec sleep 3133'",
	    fgfile);
	o.session = "tree";
	o.command = cmd;
	o.has_timeout = true;
	o.timeout = 0.5;
	o.check = SWEREX_CHECK_SILENT;
	CHECK(swerex_run(c, &o, &obs, &err) != 0);
	CHECK(err != NULL && err->kind == SWEREX_ERR_COMMAND_TIMEOUT);
	swerex_error_free(err);
	bg = read_pid(bgfile);
	fg = read_pid(fgfile);
	CHECK(bg > 0 && fg > 0);

	REQUIRE(harness_close(c, "tree") == 0);
	CHECK(harness_pid_gone(bash, 5));
	if (bg > 0)
		CHECK(harness_pid_gone(bg, 5));
	if (fg > 0)
		CHECK(harness_pid_gone(fg, 5));
	err = NULL;
	CHECK(swerex_close_session(c, "tree", &err) != 0);
	CHECK(err != NULL && err->kind == SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);
}

/* Interrupting an idle session returns at once with the last exit code. */
HTEST(interrupt_idle_session)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	REQUIRE(harness_create(c, "idle") == 0);
	CHECK_RUN(c, "idle", "(exit 4)", "", 4);
	io.session = "idle";
	if (swerex_interrupt(c, &io, &obs, &err) != 0) {
		harness_show_error("interrupt", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	CHECK_MEM(obs->output, obs->output_len, "");
	CHECK(obs->has_exit_code && obs->exit_code == 4);
	swerex_observation_free(obs);
	CHECK_RUN(c, "idle", "echo still", "still\n", 0);
}

/*
 * Out of file descriptors: session creation fails with RESOURCE_EXHAUSTED
 * naming the limit, the daemon keeps serving its clients, a client that
 * connects meanwhile is served once descriptors free up, and a freed slot
 * is usable.
 */
HTEST(fd_limit_named_and_recovered)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	struct rlimit rl = { 48, 48 };
	struct swerex_error *err = NULL;
	Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Response *resp = NULL;
	struct raw late;
	char name[32], path[600], line[512];
	int i, made = 0, n_accept = 0;
	FILE *log;
	bool alive = false;

	/* valgrind keeps fds of its own just under the soft limit. */
	if (harness_under_valgrind())
		SKIP("valgrind: its own fds sit under a low RLIMIT_NOFILE");

	/* The daemon raised its soft limit at start; cut it down now. */
	REQUIRE(prlimit(harness_pid(h), RLIMIT_NOFILE, &rl, NULL) == 0);
	for (i = 0; i < 64; i++) {
		snprintf(name, sizeof name, "s%d", i);
		co.session = name;
		if (swerex_create_session(c, &co, NULL, NULL, &err) != 0)
			break;
		made++;
	}
	REQUIRE(err != NULL);
	printf("# %d sessions before: %s\n", made, err->message);
	CHECK(made > 0 && made < 48);
	CHECK_INT(err->kind, SWEREX_ERR_RESOURCE_EXHAUSTED);
	CHECK_STR(swerex_error_extra(err, "limit"), "nofile");
	CHECK(harness_contains(err->message, strlen(err->message),
	    "RLIMIT_NOFILE 48"));
	swerex_error_free(err);
	err = NULL;

	CHECK(swerex_is_alive(c, &alive, NULL, &err) == 0 && alive);
	/* A new client now waits in the listen queue: the daemon cannot take
	 * it (and must not spin trying) until descriptors free up. */
	late = raw_connect(harness_socket_path(h));
	REQUIRE(late.fd >= 0);
	hello.protocol_version = SWEREX_PROTOCOL_VERSION;
	req.id = 1;
	req.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	REQUIRE(raw_send(&late, &req));
	REQUIRE(harness_close(c, "s0") == 0);
	REQUIRE(harness_close(c, "s1") == 0);
	CHECK(raw_recv(&late, &resp, 20) == 1 &&
	    resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO);
	raw_resp_free(resp);
	raw_close(&late);
	/* It paused accepting rather than retrying in a loop. */
	snprintf(path, sizeof path, "%s/swerexd.log", harness_dir(h));
	REQUIRE((log = fopen(path, "r")) != NULL);
	while (fgets(line, sizeof line, log) != NULL)
		n_accept += strstr(line, "accept on") != NULL;
	fclose(log);
	printf("# %d accept failures logged\n", n_accept);
	CHECK(n_accept >= 1 && n_accept < 50);
	co.session = "again";
	if (swerex_create_session(c, &co, NULL, NULL, &err) != 0)
		harness_show_error("create after close", err);
	CHECK(err == NULL);
	swerex_error_free(err);
	CHECK_RUN(c, "again", "echo ok", "ok\n", 0);
}

static const char *const two_sessions[] = { "--max-sessions", "2", NULL };

HTEST_ARGS(max_sessions_named, two_sessions)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_create_opts co = { 0 };
	struct swerex_error *err = NULL;

	REQUIRE(harness_create(c, "a") == 0);
	REQUIRE(harness_create(c, "b") == 0);
	co.session = "c";
	CHECK(swerex_create_session(c, &co, NULL, NULL, &err) != 0);
	REQUIRE(err != NULL);
	CHECK_INT(err->kind, SWEREX_ERR_RESOURCE_EXHAUSTED);
	CHECK_STR(swerex_error_extra(err, "limit"), "max-sessions");
	swerex_error_free(err);
	REQUIRE(harness_close(c, "a") == 0);
	CHECK(harness_create(c, "c") == 0);
}

TAP_MAIN(
	TAP_T(streaming_chunks_add_up),
	TAP_T(startup_timeout_leaves_nothing),
	TAP_T(close_kills_process_tree),
	TAP_T(interrupt_idle_session),
	TAP_T(fd_limit_named_and_recovered),
	TAP_T(max_sessions_named),
)
