/*
 * Per-session limits: rlimits set by swerexd-reaper for bash and what it
 * starts, memory and pids in a cgroup v2 group per session, LIMIT_EXCEEDED
 * when a command hits one, and clear refusals when a limit is invalid or
 * cannot be applied. The cgroup tests need a cgroup v2 hierarchy that hands
 * memory and pids to its children and the right to make a directory there
 * (root); elsewhere they SKIP saying why.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "raw.h"

/* Create a session with limits; print a diagnostic and return -1 on failure. */
static int
create_limited(struct swerex_client *c, const char *session,
	       const struct swerex_limits *l)
{
	struct swerex_create_opts o = { 0 };
	struct swerex_error *err = NULL;
	char *out = NULL;
	size_t len = 0;

	o.session = session;
	o.limits = l;
	if (swerex_create_session(c, &o, &out, &len, &err) != 0) {
		harness_show_error("create_session", err);
		swerex_error_free(err);
		return -1;
	}
	free(out);
	return 0;
}

/* Try to create a session with limits and return the error it gets, or NULL. */
static struct swerex_error *
create_refused(struct swerex_client *c, const char *session,
	       const struct swerex_limits *l)
{
	struct swerex_create_opts o = { 0 };
	struct swerex_error *err = NULL;
	char *out = NULL;
	size_t len = 0;

	o.session = session;
	o.limits = l;
	if (swerex_create_session(c, &o, &out, &len, &err) == 0) {
		tap_diag(__FILE__, __LINE__, "session '%s' was created", session);
		free(out);
		return NULL;
	}
	return err;
}

/* Run a command (check silent) that must fail with LIMIT_EXCEEDED for limit. */
static void
expect_limit_at(const char *file, int line, struct swerex_client *c,
		const char *session, const char *command, const char *limit,
		const char *value, int exit_code)
{
	struct swerex_run_opts o = { 0 };
	struct swerex_error *err;
	const char *got;

	o.session = session;
	o.command = command;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	o.check = SWEREX_CHECK_SILENT;
	err = harness_expect_error_at(file, line, c, &o,
	    SWEREX_ERR_LIMIT_EXCEEDED);
	if (err == NULL)
		return;
	got = swerex_error_extra(err, "limit");
	if (got == NULL || strcmp(got, limit) != 0)
		tap_diag(file, line, "extra limit is '%s', expected '%s'",
		    got ? got : "(none)", limit);
	got = swerex_error_extra(err, "value");
	if (value != NULL && (got == NULL || strcmp(got, value) != 0))
		tap_diag(file, line, "extra value is '%s', expected '%s'",
		    got ? got : "(none)", value);
	if (err->observation == NULL || !err->observation->has_exit_code)
		tap_diag(file, line, "no observation with an exit code");
	else if (exit_code >= 0 && err->observation->exit_code != exit_code)
		tap_diag(file, line, "exit code %d, expected %d",
		    err->observation->exit_code, exit_code);
	if (strstr(err->message, limit) == NULL)
		tap_diag(file, line, "the message does not name the limit: %s",
		    err->message);
	if (tap_failed_now)
		harness_show_error("error", err);
	swerex_error_free(err);
}
#define EXPECT_LIMIT(c, s, cmd, lim, val, code) \
	expect_limit_at(__FILE__, __LINE__, (c), (s), (cmd), (lim), (val), (code))

HTEST(ulimit_shows_the_limits)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };

	l.cpu_seconds = 7;
	l.address_space = 1ULL << 30;
	l.nproc = 300;
	l.file_size = 1 << 20;
	REQUIRE(create_limited(c, "lim", &l) == 0);
	/* Soft = hard, but CPU time: SIGXCPU at 7 s comes before SIGKILL at 8. */
	CHECK_RUN(c, "lim", "ulimit -St; ulimit -Ht; ulimit -Sv; ulimit -Hv; "
	    "ulimit -Su; ulimit -Hu; ulimit -Sf; ulimit -Hf",
	    "7\n8\n1048576\n1048576\n300\n300\n1024\n1024\n", 0);
	/* What bash starts inherits them. */
	CHECK_RUN(c, "lim", "bash -c 'ulimit -t; ulimit -v; ulimit -u; ulimit -f'",
	    "7\n1048576\n300\n1024\n", 0);
	/* The reaper, bash's parent, stays unlimited so that it can clean up. */
	CHECK_RUN(c, "lim", "grep -E '^Max (cpu time|file size)' "
	    "/proc/$PPID/limits | tr -s ' '",
	    "Max cpu time unlimited unlimited seconds \n"
	    "Max file size unlimited unlimited bytes \n", 0);
	/* A session without limits has none of them. */
	REQUIRE(harness_create(c, "free") == 0);
	CHECK_RUN(c, "free", "ulimit -t; ulimit -f", "unlimited\nunlimited\n", 0);
}

HTEST(cpu_loop_is_stopped)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };

	l.cpu_seconds = 1;
	REQUIRE(create_limited(c, "cpu", &l) == 0);
	CHECK_RUN(c, "cpu", "echo before", "before\n", 0);
	/* A subshell is a process of its own, with its own CPU seconds. */
	EXPECT_LIMIT(c, "cpu", "echo start; ( while :; do :; done )", "cpu", "1",
	    152);
	/* The session carries on, and so does its state. */
	CHECK_RUN(c, "cpu", "x=1; echo after $x", "after 1\n", 0);
	EXPECT_LIMIT(c, "cpu", "bash -c 'while :; do :; done'", "cpu", "1", 152);
	CHECK_RUN(c, "cpu", "echo $x", "1\n", 0);
	/* An ordinary failure is not a limit. */
	CHECK_RUN(c, "cpu", "false", "", 1);
}

HTEST(file_size_is_bounded)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	char cmd[PATH_MAX + 128];

	l.file_size = 4096;
	REQUIRE(create_limited(c, "fsize", &l) == 0);
	snprintf(cmd, sizeof cmd, "cd '%s'", harness_dir(h));
	CHECK_RUN(c, "fsize", cmd, "", 0);
	CHECK_RUN(c, "fsize", "head -c 4096 /dev/zero > small; stat -c %s small",
	    "4096\n", 0);
	EXPECT_LIMIT(c, "fsize", "head -c 10000 /dev/zero > big", "file_size",
	    "4096", 153);
	CHECK_RUN(c, "fsize", "stat -c %s big", "4096\n", 0);
	/*
	 * bash's own write past the limit fails (EFBIG) rather than killing
	 * the shell: an ordinary failure, and the session lives on.
	 */
	CHECK_RUN(c, "fsize", "echo $(seq 5000) > by-bash 2>/dev/null", "", 1);
	CHECK_RUN(c, "fsize", "stat -c %s by-bash; echo ok", "4096\nok\n", 0);
	/* In a subshell the default action is back: killed and reported. */
	EXPECT_LIMIT(c, "fsize", "( echo $(seq 5000) > sub )", "file_size",
	    "4096", 153);
	CHECK_RUN(c, "fsize", "echo still here", "still here\n", 0);
}

HTEST(check_raise_reports_the_limit_too)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	struct swerex_run_opts o = { 0 };
	struct swerex_error *err;

	l.file_size = 1024;
	REQUIRE(create_limited(c, "raise", &l) == 0);
	o.session = "raise";
	o.command = "head -c 2048 /dev/zero > /dev/null; "
	    "head -c 2048 /dev/zero > \"$HOME/f\"";
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	o.check = SWEREX_CHECK_RAISE;
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_LIMIT_EXCEEDED);
	if (err != NULL) {
		CHECK_STR(swerex_error_extra(err, "limit"), "file_size");
		CHECK_STR(swerex_error_extra(err, "exit_code"), "153");
		CHECK_STR(swerex_error_kind_name(err->kind), "LIMIT_EXCEEDED");
		swerex_error_free(err);
	}
}

/* Fork until refused and print how many forks succeeded, then "EAGAIN". */
static const char fork_until_refused[] =
    "/usr/bin/python3 -c '\n"
    "import errno, os\n"
    "r, w = os.pipe()\n"
    "n = 0\n"
    "try:\n"
    "    while n < 200:\n"
    "        if os.fork() == 0:\n"
    "            os.close(w)\n"
    "            os.read(r, 1)\n"
    "            os._exit(0)\n"
    "        n += 1\n"
    "except OSError as e:\n"
    "    print(n, errno.errorcode[e.errno])\n"
    "'";

HTEST(nproc_binds_what_is_not_root)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	struct swerex_observation *obs;
	char cmd[1024];
	unsigned n = 999;
	char what[32] = "";

	if (geteuid() != 0)
		SKIP("needs root, to run a program of the session as nobody");
	l.nproc = 5;
	REQUIRE(create_limited(c, "nproc", &l) == 0);
	/*
	 * RLIMIT_NPROC counts the processes of the real uid and the kernel
	 * exempts root: a program the session runs as nobody is bound by it
	 * (nobody's other processes on the machine count too, so at most 4
	 * forks, maybe fewer).
	 */
	snprintf(cmd, sizeof cmd, "setpriv --reuid=65534 --regid=65534 "
	    "--clear-groups %s", fork_until_refused);
	obs = harness_exec(c, "nproc", cmd);
	REQUIRE(obs != NULL);
	CHECK(sscanf(obs->output, "%u %31s", &n, what) == 2);
	CHECK(n <= 4);
	CHECK_STR(what, "EAGAIN");
	if (tap_failed_now)
		harness_show_observation("forks", obs);
	swerex_observation_free(obs);
	CHECK_RUN(c, "nproc", "echo still here", "still here\n", 0);
}

HTEST(bash_itself_over_cpu_dies_saying_why)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	struct swerex_run_opts o = { 0 };
	struct swerex_error *err;

	l.cpu_seconds = 1;
	REQUIRE(create_limited(c, "self", &l) == 0);
	/* A loop of bash's own burns bash's CPU seconds: bash is killed. */
	o.session = "self";
	o.command = "while :; do :; done";
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_SESSION_DIED);
	if (err != NULL) {
		CHECK_STR(swerex_error_extra(err, "limit"), "cpu");
		CHECK(strstr(err->message, "cpu") != NULL);
		swerex_error_free(err);
	}
	/* The daemon serves other sessions as before. */
	REQUIRE(harness_create(c, "other") == 0);
	CHECK_RUN(c, "other", "echo fine", "fine\n", 0);
}

/* Send CreateSession with raw limits and return the error kind and limit. */
static void
raw_create_expect(struct harness *h, Swerex__V1__SessionLimits *lim,
		  Swerex__V1__ErrorKind kind, const char *limit)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__CreateSessionRequest body =
	    SWEREX__V1__CREATE_SESSION_REQUEST__INIT;
	Swerex__V1__Response *resp = NULL;
	struct raw r = raw_connect_hello(h);
	const char *got = NULL;
	size_t i;

	REQUIRE(r.fd >= 0);
	body.session = "raw";
	body.limits = lim;
	req.id = 7;
	req.body_case = SWEREX__V1__REQUEST__BODY_CREATE_SESSION;
	req.create_session = &body;
	REQUIRE(raw_send(&r, &req));
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	if (resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR ||
	    resp->error->kind != kind) {
		raw_resp_show("unexpected", resp);
		tap_diag(__FILE__, __LINE__, "expected error kind %d", kind);
	} else {
		for (i = 0; i < resp->error->n_extra; i++)
			if (strcmp(resp->error->extra[i]->key, "limit") == 0)
				got = resp->error->extra[i]->value;
		CHECK_STR(got, limit);
		printf("# %s\n", resp->error->message);
	}
	raw_resp_free(resp);
	raw_close(&r);
}

HTEST(invalid_limits_are_refused)
{
	Swerex__V1__SessionLimits lim = SWEREX__V1__SESSION_LIMITS__INIT;
	struct swerex_client *c = harness_client(h);

	/* 0 is not "no limit" (that is leaving it out): refused. */
	lim.has_cpu_seconds_case =
	    SWEREX__V1__SESSION_LIMITS__HAS_CPU_SECONDS_CPU_SECONDS;
	lim.cpu_seconds = 0;
	raw_create_expect(h, &lim, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, "cpu");
	lim.cpu_seconds = 5;
	lim.has_file_size_case = SWEREX__V1__SESSION_LIMITS__HAS_FILE_SIZE_FILE_SIZE;
	lim.file_size = 0;
	raw_create_expect(h, &lim, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
	    "file_size");
	lim.file_size = UINT64_MAX;
	raw_create_expect(h, &lim, SWEREX__V1__ERROR_KIND__INVALID_REQUEST,
	    "file_size");
	/* Nothing was created under that name. */
	CHECK(harness_session_pid(c, "raw") == -1);
	/* An address space too small for bash to start: a clear start failure. */
	{
		struct swerex_limits l = { 0 };
		struct swerex_error *err;

		l.address_space = 4096;
		err = create_refused(c, "tiny", &l);
		if (err != NULL) {
			CHECK_INT(err->kind, SWEREX_ERR_SESSION_START_FAILED);
			swerex_error_free(err);
		}
	}
	CHECK(harness_create(c, "after") == 0);
}

static const char *no_cgroup_args[] = { "--cgroup", "none", NULL };

HTEST_ARGS(cgroup_limits_refused_without_cgroup, no_cgroup_args)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	struct swerex_error *err;

	l.memory = 64 << 20;
	err = create_refused(c, "mem", &l);
	REQUIRE(err != NULL);
	CHECK_INT(err->kind, SWEREX_ERR_RESOURCE_EXHAUSTED);
	CHECK_STR(swerex_error_extra(err, "limit"), "memory");
	CHECK(strstr(err->message, "cgroup") != NULL);
	CHECK(strstr(err->message, "--cgroup none") != NULL);
	printf("# %s\n", err->message);
	swerex_error_free(err);

	memset(&l, 0, sizeof l);
	l.cpu_seconds = 10;
	l.pids = 10;
	err = create_refused(c, "pids", &l);
	REQUIRE(err != NULL);
	CHECK_INT(err->kind, SWEREX_ERR_RESOURCE_EXHAUSTED);
	CHECK_STR(swerex_error_extra(err, "limit"), "pids");
	swerex_error_free(err);
	/* Nothing was left behind: the names are free. */
	memset(&l, 0, sizeof l);
	l.cpu_seconds = 10;
	CHECK(create_limited(c, "pids", &l) == 0);
}

TEST(cgroup_option_checked_at_start)
{
	char dir[] = "/tmp/swerex-cg-XXXXXX", log[PATH_MAX], buf[8192];
	const char *args[] = { "--cgroup", dir, NULL };
	const char *relative[] = { "--cgroup", "relative/dir", NULL };
	struct harness *d;
	ssize_t n;
	int fd, st;

	REQUIRE(mkdtemp(dir) != NULL);
	/* Not a cgroup v2 directory: an explicit --cgroup is a start-up error. */
	d = harness_spawn(NULL, args);
	REQUIRE(d != NULL);
	CHECK(harness_wait_ready(d, 20) == 0);
	st = harness_wait_exit(d, 20);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
	snprintf(log, sizeof log, "%s/swerexd.log", harness_dir(d));
	fd = open(log, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(strstr(buf, "is not on a cgroup v2 file system") != NULL);
	if (tap_failed_now)
		harness_print_log(d);
	harness_free(d);
	rmdir(dir);

	d = harness_spawn(NULL, relative);
	REQUIRE(d != NULL);
	CHECK(harness_wait_ready(d, 20) == 0);
	st = harness_wait_exit(d, 20);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 2);
	harness_free(d);
}

/*
 * The cgroup tests' own delegated directory: a new child of the cgroup v2
 * root, which must hand memory and pids to its children.
 */
static char cg_dir[PATH_MAX + 64];
static char cg_why[PATH_MAX + 1024];

/* Find the cgroup v2 mount point; return false if there is none. */
static bool
cg_mount(char *out, size_t size)
{
	char line[2 * PATH_MAX], mnt[PATH_MAX];
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof line, f) != NULL) {
		const char *dash = strstr(line, " - ");

		if (dash != NULL && strncmp(dash, " - cgroup2 ", 11) == 0 &&
		    sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1)
			found = true;
	}
	fclose(f);
	if (found)
		snprintf(out, size, "%s", mnt);
	return found;
}

/* Read a small file into buf; return false if it cannot be read. */
static bool
cg_read(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return true;
}

/* Make cg_dir, or say in cg_why why it cannot be made here. */
static bool
cg_make(void)
{
	static unsigned seq;
	char mnt[PATH_MAX], path[PATH_MAX + 64], ctl[512];

	if (!cg_mount(mnt, sizeof mnt)) {
		snprintf(cg_why, sizeof cg_why, "no cgroup v2 file system is "
		    "mounted");
		return false;
	}
	snprintf(path, sizeof path, "%s/cgroup.subtree_control", mnt);
	if (!cg_read(path, ctl, sizeof ctl)) {
		snprintf(cg_why, sizeof cg_why, "cannot read %s", path);
		return false;
	}
	if (strstr(ctl, "memory") == NULL || strstr(ctl, "pids") == NULL) {
		snprintf(cg_why, sizeof cg_why, "the cgroup v2 root %s does not "
		    "hand memory and pids to its children (cgroup.subtree_control "
		    "'%s'; on hybrid systems cgroup v1 holds them)", mnt, ctl);
		return false;
	}
	snprintf(cg_dir, sizeof cg_dir, "%s/swerex-test-%ld-%u", mnt,
	    (long)getpid(), ++seq);
	if (mkdir(cg_dir, 0755) < 0) {
		snprintf(cg_why, sizeof cg_why, "cannot create %s: %s", cg_dir,
		    strerror(errno));
		return false;
	}
	return true;
}

/* Remove cg_dir and anything the daemon left in it; return the leftovers. */
static int
cg_remove(void)
{
	char path[PATH_MAX + 64 + 260];
	struct dirent *de;
	int left = 0;
	DIR *d;

	d = opendir(cg_dir);
	if (d != NULL) {
		while ((de = readdir(d)) != NULL) {
			struct stat st;

			snprintf(path, sizeof path, "%s/%s", cg_dir, de->d_name);
			if (de->d_name[0] == '.' || stat(path, &st) < 0 ||
			    !S_ISDIR(st.st_mode))
				continue;
			left++;
			printf("# left behind: %s\n", path);
			rmdir(path);
		}
		closedir(d);
	}
	rmdir(cg_dir);
	return left;
}

/* Run body against a daemon given --cgroup cg_dir, or SKIP saying why not. */
static void
cg_test(const char *name, void (*body)(struct harness *))
{
	const char *args[] = { "--cgroup", cg_dir, NULL };

	if (!cg_make()) {
		/* In the vm suite's guest they must run: a skip there hides them. */
		if (getenv("SWEREX_REQUIRE_CGROUP") != NULL) {
			tap_diag(__FILE__, __LINE__, "cannot run: %s", cg_why);
			return;
		}
		SKIP(cg_why);
	}
	harness_test(name, body, args);
	/* The daemon removed its sessions' cgroups; nothing is left. */
	CHECK_INT(cg_remove(), 0);
}

#define CGTEST(name) \
	static void name##_body(struct harness *h); \
	static void name(void) { cg_test(#name, name##_body); } \
	static void name##_body(struct harness *h)

/* The cgroup directory bash of a session runs in, from /proc, or "". */
static void
session_cgroup(struct swerex_client *c, const char *session, char *out,
	       size_t size)
{
	char path[64], buf[PATH_MAX + 8], mnt[PATH_MAX];
	const char *p;
	int pid = harness_session_pid(c, session);

	out[0] = '\0';
	snprintf(path, sizeof path, "/proc/%d/cgroup", pid);
	if (pid <= 0 || !cg_read(path, buf, sizeof buf) || !cg_mount(mnt, sizeof mnt))
		return;
	p = strstr(buf, "0::");
	if (p != NULL)
		snprintf(out, size, "%s%s", mnt, p + 3);
}

CGTEST(cgroup_memory_is_enforced)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	char cg[PATH_MAX], max[64], path[PATH_MAX + 32];

	l.memory = 64 << 20;
	REQUIRE(create_limited(c, "mem", &l) == 0);
	session_cgroup(c, "mem", cg, sizeof cg);
	CHECK(strncmp(cg, cg_dir, strlen(cg_dir)) == 0);
	snprintf(path, sizeof path, "%s/memory.max", cg);
	CHECK(cg_read(path, max, sizeof max) && strcmp(max, "67108864") == 0);
	/* 256 MiB in a 64 MiB session: the OOM killer of its cgroup ends it. */
	EXPECT_LIMIT(c, "mem", "python3 -c \"b = bytearray(256 << 20); "
	    "b[::4096] = b'x' * (len(b) // 4096)\"", "memory", "67108864", 137);
	CHECK_RUN(c, "mem", "echo alive", "alive\n", 0);
	CHECK_RUN(c, "mem", "python3 -c \"b = bytearray(8 << 20); print(len(b))\"",
	    "8388608\n", 0);
}

CGTEST(cgroup_pids_are_bounded)
{
	static const char fork_bomb[] =
	    "python3 -c '\n"
	    "import os\n"
	    "r, w = os.pipe()\n"
	    "n = 0\n"
	    "try:\n"
	    "    while n < 1000:\n"
	    "        if os.fork() == 0:\n"
	    "            os.close(w)\n"
	    "            os.read(r, 1)\n"
	    "            os._exit(0)\n"
	    "        n += 1\n"
	    "except OSError:\n"
	    "    pass\n"
	    "print(\"forks\", n)\n"
	    "'";
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	struct swerex_run_opts o = { 0 };
	struct swerex_error *err;

	l.pids = 8;
	REQUIRE(create_limited(c, "pids", &l) == 0);
	/* bash and python count; the reaper does not: 6 forks succeed. */
	o.session = "pids";
	o.command = fork_bomb;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	o.check = SWEREX_CHECK_SILENT;
	err = EXPECT_ERROR(c, &o, SWEREX_ERR_LIMIT_EXCEEDED);
	if (err != NULL) {
		CHECK_STR(swerex_error_extra(err, "limit"), "pids");
		CHECK(err->observation != NULL &&
		    tap_mem_eq(err->observation->output,
		    err->observation->output_len, "forks 6\n"));
		if (tap_failed_now)
			harness_show_error("fork bomb", err);
		swerex_error_free(err);
	}
	/* Its children went with it; the session forks again. */
	CHECK_RUN(c, "pids", "for i in 1 2 3; do /bin/true; done; echo ok",
	    "ok\n", 0);
}

CGTEST(cgroup_removed_after_close)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_limits l = { 0 };
	char cg[PATH_MAX];
	struct stat st;

	l.pids = 100;
	l.memory = 256 << 20;
	REQUIRE(create_limited(c, "gone", &l) == 0);
	session_cgroup(c, "gone", cg, sizeof cg);
	REQUIRE(strncmp(cg, cg_dir, strlen(cg_dir)) == 0);
	CHECK(stat(cg, &st) == 0);
	/*
	 * A daemonised process of the session does not keep it. (Started
	 * from a subshell: bash's job notice "[1] PID" stays out of the output.)
	 */
	CHECK_RUN(c, "gone", "(setsid sleep 100 > /dev/null 2>&1 &); "
	    "echo started", "started\n", 0);
	REQUIRE(harness_close(c, "gone") == 0);
	CHECK(stat(cg, &st) < 0 && errno == ENOENT);
	/* A session without memory or pids limits gets no cgroup of its own. */
	REQUIRE(harness_create(c, "plain") == 0);
	session_cgroup(c, "plain", cg, sizeof cg);
	CHECK(strncmp(cg, cg_dir, strlen(cg_dir)) != 0 ||
	    strstr(cg, "/session-") == NULL);
}

TAP_MAIN(
	{ "ulimit_shows_the_limits", ulimit_shows_the_limits },
	{ "cpu_loop_is_stopped", cpu_loop_is_stopped },
	{ "file_size_is_bounded", file_size_is_bounded },
	{ "check_raise_reports_the_limit_too", check_raise_reports_the_limit_too },
	{ "nproc_binds_what_is_not_root", nproc_binds_what_is_not_root },
	{ "bash_itself_over_cpu_dies_saying_why", bash_itself_over_cpu_dies_saying_why },
	{ "invalid_limits_are_refused", invalid_limits_are_refused },
	{ "cgroup_limits_refused_without_cgroup", cgroup_limits_refused_without_cgroup },
	{ "cgroup_option_checked_at_start", cgroup_option_checked_at_start },
	{ "cgroup_memory_is_enforced", cgroup_memory_is_enforced },
	{ "cgroup_pids_are_bounded", cgroup_pids_are_bounded },
	{ "cgroup_removed_after_close", cgroup_removed_after_close },
)
