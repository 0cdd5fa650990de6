/*
 * Session processes and daemon stop: what sessions start outlives neither
 * the session nor the daemon (SIGTERM or SIGKILL), commands that break their
 * terminal leave a working session or a dead one but never a hang, and
 * sessions start clean (no daemon descriptors, default signal dispositions,
 * an empty signal mask) behind a socket with the documented modes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "harness.h"

#define PROC_MAX 4096            /* processes one test keeps track of */
#define MANY 100                 /* sessions in the SIGTERM test */

/* What /proc/PID/stat says about a process. */
struct proc_stat {
	char state;
	int ppid, pgrp, sid;
};

/* Read /proc/PID/stat; false when the process is gone. */
static bool
proc_stat(int pid, struct proc_stat *st)
{
	char path[64], buf[512], *p;
	bool ok = false;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	if (fgets(buf, sizeof buf, f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL &&
	    sscanf(p + 1, " %c %d %d %d", &st->state, &st->ppid, &st->pgrp,
	    &st->sid) == 4)
		ok = true;
	fclose(f);
	return ok;
}

/* The command name of a process, for diagnostics. */
static const char *
proc_comm(int pid)
{
	static char comm[64];
	char path[64];
	FILE *f;

	snprintf(comm, sizeof comm, "?");
	snprintf(path, sizeof path, "/proc/%d/comm", pid);
	if ((f = fopen(path, "re")) != NULL) {
		if (fgets(comm, sizeof comm, f) != NULL)
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	return comm;
}

/* Whether v is among the n ints at a. */
static bool
int_in(const int *a, size_t n, int v)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (a[i] == v)
			return true;
	return false;
}

/*
 * Append to pids every live process (zombies too, with zombies) whose
 * process group or session is one of the n_ids ids, or whose parent is
 * parent (> 0); return the new count.
 */
static size_t
proc_find(const int *ids, size_t n_ids, int parent, bool zombies, int *pids,
	  size_t n, size_t cap)
{
	struct proc_stat st;
	struct dirent *d;
	DIR *dir;
	int pid;

	if ((dir = opendir("/proc")) == NULL)
		return n;
	while ((d = readdir(dir)) != NULL && n < cap) {
		pid = atoi(d->d_name);
		if (pid <= 0 || !proc_stat(pid, &st))
			continue;
		if (st.state == 'Z' && !zombies)
			continue;
		if ((int_in(ids, n_ids, st.pgrp) || int_in(ids, n_ids, st.sid) ||
		    (parent > 0 && st.ppid == parent)) && !int_in(pids, n, pid))
			pids[n++] = pid;
	}
	closedir(dir);
	return n;
}

/*
 * Wait until no process (zombies included) is left in the groups or
 * sessions ids; report and kill any that are still there at the deadline.
 */
static void
check_groups_gone_at(const char *file, int line, const int *ids, size_t n_ids,
		     double timeout)
{
	static int left[PROC_MAX];
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	double deadline = harness_now() + timeout;
	struct proc_stat st;
	size_t n, i;

	for (;;) {
		n = proc_find(ids, n_ids, 0, true, left, 0, PROC_MAX);
		if (n == 0 || harness_now() > deadline)
			break;
		/* Polling /proc: nothing signals the end of a non-child. */
		nanosleep(&tick, NULL);
	}
	for (i = 0; i < n; i++) {
		if (!proc_stat(left[i], &st))
			continue;
		tap_diag(file, line, "process %d (%s, state %c, pgrp %d, sid %d) "
			 "outlived its session", left[i], proc_comm(left[i]),
			 st.state, st.pgrp, st.sid);
		kill(left[i], SIGKILL);
	}
}
#define CHECK_GROUPS_GONE(ids, n, t) check_groups_gone_at(__FILE__, __LINE__, (ids), (n), (t))

/* Check that each of the n pids exits within timeout; kill survivors. */
static void
check_pids_gone_at(const char *file, int line, const int *pids, size_t n,
		   double timeout)
{
	double deadline = harness_now() + timeout, left;
	size_t i;

	for (i = 0; i < n; i++) {
		left = deadline - harness_now();
		if (pids[i] <= 0 || harness_pid_gone(pids[i], left > 0 ? left : 0))
			continue;
		tap_diag(file, line, "process %d (%s) still runs", pids[i],
			 proc_comm(pids[i]));
		kill(pids[i], SIGKILL);
	}
}
#define CHECK_PIDS_GONE(p, n, t) check_pids_gone_at(__FILE__, __LINE__, (p), (n), (t))

/*
 * Run a command that prints pids, one per line (job notices such as "[1]
 * 1234" are skipped); return how many it printed.
 */
static size_t
run_pids(struct swerex_client *c, const char *session, const char *cmd,
	 int *pids, size_t cap)
{
	struct swerex_observation *obs = harness_exec(c, session, cmd);
	char line[64], *p, *nl, *end;
	size_t n = 0, len;
	long v;

	if (obs == NULL)
		return 0;
	for (p = obs->output; n < cap && p < obs->output + obs->output_len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(obs->output + obs->output_len - p));
		if (nl == NULL)
			nl = obs->output + obs->output_len;
		len = (size_t)(nl - p) < sizeof line - 1 ? (size_t)(nl - p) : sizeof line - 1;
		memcpy(line, p, len);
		line[len] = '\0';
		v = strtol(line, &end, 10);
		if (end != line && *end == '\0' && v > 1)
			pids[n++] = (int)v;
	}
	if (n == 0)
		harness_show_observation("no pids from the command", obs);
	swerex_observation_free(obs);
	return n;
}

/*
 * Start, in a session, processes that try to outlive it, and print their
 * pids: one daemonised with setsid -f (its own session, no terminal), one
 * double-forked with SIGHUP ignored, one under nohup, one backgrounded by
 * a `trap '' HUP` subshell. The first pid printed is bash's own.
 */
static const char escapees[] =
	"echo $$; f=$(mktemp -u); mkfifo \"$f\"; "
	"setsid -f sh -c 'echo $$ > \"$0\"; exec sleep 3141' \"$f\" "
	"</dev/null >/dev/null 2>&1; read p < \"$f\"; rm -f \"$f\"; echo $p; "
	"( trap '' HUP; ( exec sleep 3142 ) </dev/null >/dev/null 2>&1 & echo $! ); "
	"nohup sleep 3143 </dev/null >/dev/null 2>&1 & echo $!; "
	"( trap '' HUP; exec sleep 3144 ) </dev/null >/dev/null 2>&1 & echo $!";

/*
 * Start the escapees in session; add bash and them to pids and bash's
 * session id to sids. Check they run and that the setsid one did escape.
 */
static void
start_escapees(struct swerex_client *c, const char *session, int *pids,
	       size_t *n, int *sids, size_t *n_sids)
{
	struct proc_stat st;
	int got[8];
	size_t k, m;

	m = run_pids(c, session, escapees, got, 8);
	CHECK_INT(m, 5);
	if (m < 2)
		return;
	/* The daemonised one left bash's session, so a sweep of it misses it. */
	CHECK(proc_stat(got[1], &st) && st.sid != got[0]);
	sids[(*n_sids)++] = got[0];
	for (k = 0; k < m; k++) {
		CHECK(kill(got[k], 0) == 0);
		pids[(*n)++] = got[k];
	}
}

/* The session keeps working with daemonised grandchildren; close ends them. */
HTEST(grandchildren_die_with_session)
{
	struct swerex_client *c = harness_client(h);
	int pids[16], sids[2];
	size_t n = 0, n_sids = 0;

	REQUIRE(harness_create(c, "esc") == 0);
	start_escapees(c, "esc", pids, &n, sids, &n_sids);
	REQUIRE(n == 5);
	CHECK_RUN(c, "esc", "echo still here; (exit 7)", "still here\n", 7);
	CHECK_RUN(c, "esc", "jobs -p | wc -l | tr -d ' '", "2\n", 0);
	REQUIRE(harness_close(c, "esc") == 0);
	CHECK_PIDS_GONE(pids, n, 5);
	CHECK_GROUPS_GONE(sids, n_sids, 5);
	/* The name is free again and a new bash works. */
	REQUIRE(harness_create(c, "esc") == 0);
	CHECK_RUN(c, "esc", "echo new", "new\n", 0);
}

/* `exit` in a session ends what it daemonised too. */
HTEST(grandchildren_die_with_exit)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o = { 0 };
	struct swerex_error *err = NULL;
	struct swerex_observation *obs = NULL;
	int pids[16], sids[2];
	size_t n = 0, n_sids = 0;

	REQUIRE(harness_create(c, "quit") == 0);
	start_escapees(c, "quit", pids, &n, sids, &n_sids);
	REQUIRE(n == 5);
	o.session = "quit";
	o.command = "exit 5";
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	o.check = SWEREX_CHECK_SILENT;
	CHECK(swerex_run(c, &o, &obs, &err) != 0);
	CHECK(err != NULL && err->kind == SWEREX_ERR_SESSION_DIED);
	CHECK_STR(err ? swerex_error_extra(err, "exit_status") : NULL,
	    "exited with status 5");
	swerex_error_free(err);
	swerex_observation_free(obs);
	CHECK_PIDS_GONE(pids, n, 5);
	CHECK_GROUPS_GONE(sids, n_sids, 5);
	REQUIRE(harness_close(c, "quit") == 0);
}

/* SIGTERM of the daemon ends what sessions daemonised; it exits 0. */
HTEST(grandchildren_die_at_stop)
{
	struct swerex_client *c = harness_client(h);
	int pids[32], sids[4], st;
	size_t n = 0, n_sids = 0;

	REQUIRE(harness_create(c, "a") == 0);
	REQUIRE(harness_create(c, "b") == 0);
	start_escapees(c, "a", pids, &n, sids, &n_sids);
	start_escapees(c, "b", pids, &n, sids, &n_sids);
	REQUIRE(n == 10);
	st = harness_stop(h);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(access(harness_socket_path(h), F_OK) != 0);
	CHECK_PIDS_GONE(pids, n, 5);
	CHECK_GROUPS_GONE(sids, n_sids, 5);
}

/*
 * SIGKILL of the daemon: bash, its foreground job and everything the
 * sessions daemonised or shielded from SIGHUP die with it.
 */
HTEST(sigkill_of_daemon_kills_sessions)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	static int pids[PROC_MAX];
	int sids[4], reapers[16], st;
	size_t n = 0, n_sids = 0, n_reapers, i;
	char name[8], cmd[256];
	pid_t daemon = harness_pid(h), r;

	/* Orphans of the killed daemon come to us, so we can reap them. */
	REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof name, "k%zu", i);
		REQUIRE(harness_create(c, name) == 0);
		start_escapees(c, name, pids, &n, sids, &n_sids);
		/* A foreground job still running when the daemon dies. */
		snprintf(cmd, sizeof cmd, "trap '' HUP; sleep 315%zu", i);
		o.session = name;
		o.command = cmd;
		o.has_timeout = true;
		o.timeout = 0.3;
		o.check = SWEREX_CHECK_SILENT;
		CHECK(swerex_run(c, &o, &obs, &err) != 0);
		CHECK(err != NULL && err->kind == SWEREX_ERR_COMMAND_TIMEOUT);
		swerex_error_free(err);
		err = NULL;
	}
	REQUIRE(n == 15);
	n = proc_find(sids, n_sids, 0, false, pids, n, PROC_MAX);
	n_reapers = proc_find(NULL, 0, daemon, false, reapers, 0, 16);
	printf("# %zu processes in 3 sessions, %zu children of the daemon\n",
	    n, n_reapers);
	CHECK(n >= 18);

	st = harness_kill(h);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	CHECK_PIDS_GONE(pids, n, 10);
	CHECK_GROUPS_GONE(sids, n_sids, 5);
	/* Reap the daemon's orphans that came to us; they exit too. */
	for (i = 0; i < n_reapers; i++) {
		CHECK(harness_pid_gone(reapers[i], 10));
		r = waitpid(reapers[i], &st, WNOHANG);
		if (r != reapers[i])
			tap_diag(__FILE__, __LINE__, "child %d of the daemon (%s) "
				 "not reaped: %d", reapers[i],
				 proc_comm(reapers[i]), (int)r);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	/* Anything else orphaned to us means something escaped. */
	while ((r = waitpid(-1, &st, WNOHANG)) > 0)
		if (r != daemon)
			tap_diag(__FILE__, __LINE__, "stray child %d", (int)r);
}

/* Count one byte from the readiness fifo (event callback). */
static void
fifo_read_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];
	ssize_t k;

	while ((k = read(fd, buf, sizeof buf)) > 0)
		*(int *)arg += (int)k;
}

/* Whether every one of the MANY commands has started. */
static bool
all_up(void *arg)
{
	return *(int *)arg >= MANY;
}

static const char *const many_args[] = { "--max-sessions", "200", NULL };

/*
 * SIGTERM while 100 sessions run commands (sleeps, busy loops in bash and
 * in children, nohup'd children): the daemon exits 0 in bounded time, no
 * process of any session's group or session is left (zombies included),
 * the daemon's own children are gone and the socket file is removed.
 */
HTEST_ARGS(sigterm_with_100_busy_sessions, many_args)
{
	struct swerex_client *c = harness_client(h), *ce;
	static struct harness_reply runs[MANY];
	static int pids[PROC_MAX];
	int bash[MANY], kids[MANY + 8], up = 0, rfd, wfd, st;
	size_t n = 0, n_kids, i;
	char name[16], fifo[512], cmd[1024];
	struct event_base *base;
	struct event *ev;
	double t0;

	harness_watchdog(170);
	base = event_base_new();
	REQUIRE(base != NULL);
	ce = harness_connect_base(h, base);
	REQUIRE(ce != NULL);
	snprintf(fifo, sizeof fifo, "%s/up", harness_dir(h));
	REQUIRE(mkfifo(fifo, 0600) == 0);
	rfd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	REQUIRE(rfd >= 0);
	/* Our own writer keeps the fifo from reporting EOF between commands. */
	wfd = open(fifo, O_WRONLY | O_CLOEXEC);
	REQUIRE(wfd >= 0);
	t0 = harness_now();
	for (i = 0; i < MANY; i++) {
		snprintf(name, sizeof name, "m%zu", i);
		REQUIRE(harness_create(c, name) == 0);
		bash[i] = harness_session_pid(c, name);
		REQUIRE(bash[i] > 1);
	}
	printf("# %d sessions created in %.2f s\n", MANY, harness_now() - t0);
	for (i = 0; i < MANY; i++) {
		switch (i % 4) {
		case 0:
			snprintf(cmd, sizeof cmd, "printf x > '%s'; sleep 100", fifo);
			break;
		case 1: /* bash itself spins (niced: the box is shared) */
			snprintf(cmd, sizeof cmd, "renice -n 19 -p $$ >/dev/null; "
			    "printf x > '%s'; while :; do :; done", fifo);
			break;
		case 2:
			snprintf(cmd, sizeof cmd, "nice -n 19 sh -c 'printf x > \"$0\"; "
			    "while :; do :; done' '%s'", fifo);
			break;
		default:
			snprintf(cmd, sizeof cmd, "nohup sleep 100 </dev/null "
			    ">/dev/null 2>&1 & printf x > '%s'; sleep 100", fifo);
			break;
		}
		snprintf(name, sizeof name, "m%zu", i);
		REQUIRE(swerex_submit_run(ce, &(struct swerex_run_opts){
		    .session = name, .command = cmd,
		    .check = SWEREX_CHECK_SILENT }, false, harness_reply_cb,
		    &runs[i], NULL) != 0);
	}
	ev = event_new(base, rfd, EV_READ | EV_PERSIST, fifo_read_cb, &up);
	REQUIRE(ev != NULL);
	event_add(ev, NULL);
	if (!harness_drive_until(base, all_up, &up, 60))
		tap_diag(__FILE__, __LINE__, "only %d of %d commands started", up, MANY);
	event_free(ev);
	close(rfd);
	close(wfd);
	REQUIRE(up >= MANY);
	n = proc_find(bash, MANY, 0, false, pids, 0, PROC_MAX);
	n_kids = proc_find(NULL, 0, harness_pid(h), false, kids, 0, MANY + 8);
	printf("# %zu processes in the sessions, %zu children of the daemon\n",
	    n, n_kids);
	/* At least every bash (a command may not have forked yet). */
	CHECK(n >= MANY);

	t0 = harness_now();
	st = harness_stop(h);
	printf("# daemon exited %.2f s after SIGTERM\n", harness_now() - t0);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(harness_now() - t0 < 10);
	if (access(harness_socket_path(h), F_OK) == 0)
		tap_diag(__FILE__, __LINE__, "socket file %s left behind",
			 harness_socket_path(h));
	CHECK_GROUPS_GONE(bash, MANY, 5);
	CHECK_PIDS_GONE(pids, n, 5);
	CHECK_PIDS_GONE(kids, n_kids, 5);

	/* Freeing the client ends what it still waited for. */
	swerex_client_free(ce);
	for (i = 0; i < MANY; i++) {
		CHECK(runs[i].done);
		harness_reply_clear(&runs[i]);
	}
	event_base_free(base);
}

/* Run a command with a timeout; return the observation or NULL with *err. */
static struct swerex_observation *
run_bounded(struct swerex_client *c, const char *session, const char *cmd,
	    double timeout, struct swerex_error **err)
{
	struct swerex_observation *obs = NULL;

	*err = NULL;
	if (swerex_run(c, &(struct swerex_run_opts){ .session = session,
	    .command = cmd, .has_timeout = true, .timeout = timeout,
	    .check = SWEREX_CHECK_SILENT }, &obs, err) != 0)
		return NULL;
	return obs;
}

/*
 * Run cmd, then "echo after; (exit 3)": each either works (the second with
 * exit code 3 and the output after, "after\n" unless NULL) or reports
 * SESSION_DIED, within a bound. Return whether the session still works.
 */
static bool
survives_at(const char *file, int line, struct swerex_client *c,
	    const char *session, const char *cmd, const char *after)
{
	struct swerex_observation *obs;
	struct swerex_error *err;
	double t0 = harness_now();
	bool alive = true;
	int step;

	for (step = 0; step < 2 && alive; step++) {
		obs = run_bounded(c, session, step == 0 ? cmd : "echo after; (exit 3)",
		    10, &err);
		if (obs == NULL && err != NULL && err->kind == SWEREX_ERR_SESSION_DIED) {
			printf("# %s: the session died (%s)\n", cmd, err->message);
			alive = false;
		} else if (obs == NULL) {
			tap_diag(file, line, "after \"%s\": step %d failed", cmd, step);
			harness_show_error("error", err);
			alive = false;
		} else if (step == 1 && (!tap_mem_eq(obs->output, obs->output_len,
		    after ? after : "after\n") || !obs->has_exit_code ||
		    obs->exit_code != 3)) {
			tap_diag(file, line, "after \"%s\": wrong result", cmd);
			harness_show_observation("observation", obs);
		}
		swerex_observation_free(obs);
		swerex_error_free(err);
	}
	if (harness_now() - t0 > 15)
		tap_diag(file, line, "\"%s\" took %.1f s", cmd, harness_now() - t0);
	return alive;
}
#define SURVIVES(c, s, cmd, after) survives_at(__FILE__, __LINE__, (c), (s), (cmd), (after))

/* Recreate a session that died (by closing the dead one first). */
static void
revive(struct swerex_client *c, const char *session)
{
	REQUIRE(harness_close(c, session) == 0);
	REQUIRE(harness_create(c, session) == 0);
}

/*
 * Commands that close bash's stdout or stderr leave a working session (the
 * terminal is reopened); one that sends stdout elsewhere gets no output but
 * no hang either; one that closes stdin ends bash: SESSION_DIED, no hang.
 */
HTEST(closed_stdout_no_hang)
{
	static const struct {
		const char *cmd, *after;
		bool dies;
	} cases[] = {
		{ "exec >&-", "after\n", false },
		{ "exec 1>&- 2>&-", "after\n", false },
		{ "exec 2>&-; ls /nonexistent-swx", "after\n", false },
		{ "exec >/dev/null", "", false },
		{ "exec 0<&-", NULL, true },
	};
	struct swerex_client *c = harness_client(h);
	size_t i;
	bool alive;

	REQUIRE(harness_create(c, "out") == 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		alive = SURVIVES(c, "out", cases[i].cmd, cases[i].after);
		if (alive == cases[i].dies)
			tap_diag(__FILE__, __LINE__, "\"%s\": the session %s",
				 cases[i].cmd, alive ? "lives on" : "died");
		/* A fresh session for each case. */
		revive(c, "out");
	}
	/* stderr closed then reopened carries error messages again. */
	CHECK_RUN(c, "out", "exec 2>&-; echo x", "x\n", 0);
	CHECK_RUN(c, "out", "ls /nonexistent-swx 2>&1 | grep -c nonexistent",
	    "1\n", 0);
}

/* Terminal modes a program may leave behind do not break the next command. */
HTEST(terminal_modes_no_hang)
{
	static const char *const cmds[] = { "stty raw", "stty -echo",
	    "stty echo", "stty -icanon", "stty raw -echo isig; cat /dev/null",
	    "stty -opost -onlcr", "stty icanon echo" };
	struct swerex_client *c = harness_client(h);
	size_t i;

	REQUIRE(harness_create(c, "tty") == 0);
	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (!SURVIVES(c, "tty", cmds[i], NULL))
			revive(c, "tty");
		CHECK_RUN(c, "tty", "printf 'a\\nb\\n'", "a\nb\n", 0);
	}
}

/*
 * Check `ls -l /proc/PID/fd` output: only the allowed fd numbers, each on
 * the pty slave (/dev/pts/N) when want_pts, never a socket or a pty master.
 */
static void
check_fds_at(const char *file, int line, const char *what, const char *out,
	     size_t len, const char *const *allowed, bool want_pts)
{
	char buf[8192], *l, *save = NULL, *arrow, *fd;
	size_t i, n = 0;
	bool ok;

	snprintf(buf, sizeof buf, "%.*s", (int)len, out);
	for (l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if ((arrow = strstr(l, " -> ")) == NULL)
			continue;
		*arrow = '\0';
		fd = strrchr(l, ' ') ? strrchr(l, ' ') + 1 : l;
		arrow += 4;
		n++;
		for (i = 0, ok = false; allowed[i] != NULL; i++)
			ok |= strcmp(fd, allowed[i]) == 0;
		if (!ok)
			tap_diag(file, line, "%s: unexpected fd %s -> %s", what, fd, arrow);
		else if (strncmp(arrow, "socket:", 7) == 0 || strstr(arrow, "ptmx") ||
		    (want_pts && strncmp(arrow, "/dev/pts/", 9) != 0))
			tap_diag(file, line, "%s: fd %s -> %s", what, fd, arrow);
	}
	if (n < 3)
		tap_diag(file, line, "%s: only %zu fds listed", what, n);
}
#define CHECK_FDS(w, o, n, a, p) check_fds_at(__FILE__, __LINE__, (w), (o), (n), (a), (p))

/*
 * No daemon descriptor reaches a session, even with other clients and
 * sessions open: bash holds its terminal on 0, 1, 2 and 255 (its own copy)
 * and nothing else, a child of it likewise on 0, 1, 2; the reaper above bash
 * holds only the daemon's stdio; a one-off command holds only its pipes.
 */
HTEST(no_fd_leaks)
{
	static const char *const bash_fds[] = { "0", "1", "2", "255", NULL };
	static const char *const std_fds[] = { "0", "1", "2", NULL };
	static const struct {
		const char *what, *cmd;
		const char *const *allowed;
		bool pts;
	} cases[] = {
		{ "bash", "ls -l /proc/$$/fd", bash_fds, true },
		{ "child of bash", "sh -c 'ls -l /proc/$$/fd; true'", std_fds, true },
		{ "parent of bash", "ls -l /proc/$PPID/fd", std_fds, false },
	};
	struct swerex_client *c = harness_client(h), *c2;
	struct swerex_observation *obs;
	struct swerex_exec_opts eo = { 0 };
	struct swerex_exec_result *res = NULL;
	struct swerex_error *err = NULL;
	size_t i;

	c2 = harness_connect(h);
	REQUIRE(c2 != NULL);
	REQUIRE(harness_create(c2, "other") == 0);
	REQUIRE(harness_create(c, "fds") == 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		obs = harness_exec(c, "fds", cases[i].cmd);
		REQUIRE(obs != NULL);
		CHECK_FDS(cases[i].what, obs->output, obs->output_len,
		    cases[i].allowed, cases[i].pts);
		if (tap_failed_now)
			harness_show_observation(cases[i].what, obs);
		swerex_observation_free(obs);
	}

	eo.shell = true;
	eo.command = "ls -l /proc/$$/fd; true";
	if (swerex_execute(c, &eo, &res, &err) != 0) {
		harness_show_error("execute", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	CHECK(res->has_exit_code && res->exit_code == 0);
	CHECK_FDS("one-off command", res->stdout_data, res->stdout_len, std_fds,
	    false);
	if (tap_failed_now)
		printf("# one-off command fds:\n%s", res->stdout_data);
	swerex_exec_result_free(res);
	swerex_client_free(c2);
}

/* Remove one entry of a tree (nftw callback). */
static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* A daemon started by hand (not through the harness), dirty on purpose. */
struct dirty {
	pid_t pid;
	uid_t uid;
	char home[64];
	char sock[256];
	char dir[256];
};

/*
 * Start swerexd as uid with its default socket (no --listen, no
 * XDG_RUNTIME_DIR), umask 0, SIGUSR1, SIGPIPE and SIGTSTP ignored and
 * SIGUSR2, SIGALRM, SIGCHLD and SIGTERM blocked; wait for READY=1. False
 * on failure.
 */
static bool
dirty_start(struct dirty *d, uid_t uid)
{
	const char *bin = getenv("SWEREXD");
	char buf[1024], *l;
	struct pollfd pfd;
	sigset_t blk;
	size_t len = 0;
	ssize_t k;
	int p[2];
	double deadline;

	memset(d, 0, sizeof *d);
	buf[0] = '\0';
	d->uid = uid;
	snprintf(d->home, sizeof d->home, "/tmp/swerex-proc-home.XXXXXX");
	if (bin == NULL || mkdtemp(d->home) == NULL || chown(d->home, uid, uid) < 0 ||
	    pipe2(p, O_CLOEXEC) < 0)
		return false;
	fflush(NULL);
	d->pid = fork();
	if (d->pid == 0) {
		/* SIGKILL: it is started with SIGTERM blocked. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGUSR1, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		signal(SIGTSTP, SIG_IGN);
		sigemptyset(&blk);
		sigaddset(&blk, SIGUSR2);
		sigaddset(&blk, SIGALRM);
		sigaddset(&blk, SIGCHLD);
		sigaddset(&blk, SIGTERM);
		sigprocmask(SIG_SETMASK, &blk, NULL);
		umask(0);
		if (chdir("/") < 0 || dup2(p[1], 3) < 0 ||
		    (getuid() != uid && (setgid(uid) < 0 || setuid(uid) < 0)))
			_exit(127);
		unsetenv("XDG_RUNTIME_DIR");
		setenv("HOME", d->home, 1);
		execl(bin, bin, "--ready-fd", "3", "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (d->pid < 0) {
		close(p[0]);
		return false;
	}
	deadline = harness_now() + 20;
	pfd.fd = p[0];
	pfd.events = POLLIN;
	while (len < sizeof buf - 1 && !strstr(buf, "READY=1") &&
	    harness_now() < deadline &&
	    poll(&pfd, 1, (int)((deadline - harness_now()) * 1000) + 1) == 1) {
		if ((k = read(p[0], buf + len, sizeof buf - 1 - len)) <= 0)
			break;
		len += (size_t)k;
		buf[len] = '\0';
	}
	close(p[0]);
	if (strstr(buf, "READY=1") == NULL ||
	    (l = strstr(buf, "LISTEN=unix:")) == NULL)
		return false;
	l += 12;
	snprintf(d->sock, sizeof d->sock, "%.*s", (int)strcspn(l, "\n"), l);
	snprintf(d->dir, sizeof d->dir, "%s", d->sock);
	if (strrchr(d->dir, '/'))
		*strrchr(d->dir, '/') = '\0';
	return true;
}

/* Stop the hand-started daemon; return its wait status or -1. */
static int
dirty_stop(struct dirty *d)
{
	int st = -1;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	if (!harness_pid_gone(d->pid, 10))
		kill(d->pid, SIGKILL);
	if (waitpid(d->pid, &st, 0) != d->pid)
		st = -1;
	d->pid = 0;
	return st;
}

/* Check the three Sig lines of a /proc/PID/status are all zero. */
static void
check_sig_clean_at(const char *file, int line, const char *what,
		   const char *out, size_t len)
{
	static const char want[] = "SigBlk:\t0000000000000000\n"
	    "SigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n";

	if (!tap_mem_eq(out, len, want)) {
		tap_diag(file, line, "%s does not start clean", what);
		tap_show("got     ", out, len);
		tap_show("expected", want, strlen(want));
	}
}
#define CHECK_SIG_CLEAN(w, o, n) check_sig_clean_at(__FILE__, __LINE__, (w), (o), (n))

/*
 * A daemon started with a umask of 0, signals ignored and blocked, and no
 * XDG_RUNTIME_DIR: its default socket directory is /tmp/swerexd-UID, 0700
 * and owned by UID, the socket in it 0600 (as README and --help say); what
 * a session's bash starts, and one-off commands, start with no signal
 * ignored (glibc's internal ones included), blocked or caught; SIGTERM exits
 * 0 and removes the socket.
 */
TEST(dirty_daemon_clean_sessions)
{
	/* cat's own status: it catches nothing, unlike grep. */
	static const char sigs[] = "cat /proc/self/status | grep -E '^Sig(Blk|Ign|Cgt)'";
	struct swerex_client *c = NULL;
	struct swerex_observation *obs;
	struct swerex_exec_opts eo = { 0 };
	struct swerex_exec_result *res = NULL;
	struct swerex_error *err = NULL;
	struct dirty d = { 0 };
	struct stat st;
	char url[300], probe[64];
	uid_t uid = getuid();
	int status;

	/* The daemon runs as another uid, which valgrind's wrapper and logs
	 * do not allow for; this test is about privileges and signals. */
	if (harness_under_valgrind())
		SKIP("valgrind: its wrapper cannot run as another uid");
	harness_watchdog(90);
	/* As root, a uid of our own: /tmp/swerexd-UID must not exist yet. */
	if (uid == 0) {
		for (uid = 61000 + (uid_t)(getpid() % 3000); ; uid++) {
			snprintf(probe, sizeof probe, "/tmp/swerexd-%u", (unsigned)uid);
			if (access(probe, F_OK) != 0)
				break;
		}
	}
	snprintf(probe, sizeof probe, "/tmp/swerexd-%u", (unsigned)uid);
	if (!dirty_start(&d, uid)) {
		tap_diag(__FILE__, __LINE__, "cannot start swerexd as uid %u",
			 (unsigned)uid);
		goto out;
	}
	CHECK_STR(d.dir, probe);
	if (lstat(d.dir, &st) == 0) {
		CHECK(S_ISDIR(st.st_mode));
		CHECK_INT(st.st_mode & 07777, 0700);
		CHECK_INT(st.st_uid, uid);
	} else
		tap_diag(__FILE__, __LINE__, "%s: %s", d.dir, strerror(errno));
	if (lstat(d.sock, &st) == 0) {
		CHECK(S_ISSOCK(st.st_mode));
		CHECK_INT(st.st_mode & 0777, 0600);
	} else
		tap_diag(__FILE__, __LINE__, "%s: %s", d.sock, strerror(errno));

	snprintf(url, sizeof url, "unix:%s", d.sock);
	if (swerex_connect(url, "swerex-tests", &c, &err) != 0) {
		harness_show_error("connect", err);
		swerex_error_free(err);
		tap_diag(__FILE__, __LINE__, "cannot connect to %s", url);
		goto out;
	}
	if (harness_create(c, "sig") != 0)
		goto out;
	obs = harness_exec(c, "sig", sigs);
	if (obs != NULL) {
		CHECK_SIG_CLEAN("a child of bash", obs->output, obs->output_len);
		swerex_observation_free(obs);
	}
	eo.shell = true;
	eo.command = sigs;
	if (swerex_execute(c, &eo, &res, &err) == 0) {
		CHECK_SIG_CLEAN("a one-off command", res->stdout_data, res->stdout_len);
		swerex_exec_result_free(res);
	} else {
		harness_show_error("execute", err);
		swerex_error_free(err);
		tap_diag(__FILE__, __LINE__, "execute failed");
	}
	/* With SIGCHLD left blocked, the daemon would never see bash end. */
	obs = run_bounded(c, "sig", "exec true", 10, &err);
	CHECK(obs == NULL && err != NULL && err->kind == SWEREX_ERR_SESSION_DIED);
	swerex_observation_free(obs);
	swerex_error_free(err);
out:
	swerex_client_free(c);
	status = dirty_stop(&d);
	CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (d.sock[0] != '\0' && access(d.sock, F_OK) == 0) {
		tap_diag(__FILE__, __LINE__, "socket %s left behind", d.sock);
		unlink(d.sock);
	}
	if (d.dir[0] != '\0' && uid != getuid())
		rmdir(d.dir);
	if (d.home[0] != '\0')
		nftw(d.home, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	alarm(0);
}

/* A socket made with --listen is 0600 too. */
/*
 * The daemon's spare reaper (a child of the daemon running swerexd-reaper
 * with no child of its own, waiting for the next session): wait up to
 * timeout for one; 0 if none came.
 */
static int
spare_find(pid_t daemon, double timeout)
{
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	double deadline = harness_now() + timeout;
	int kids[64], sub[1];
	size_t n, i;

	for (;;) {
		n = proc_find(NULL, 0, daemon, false, kids, 0, 64);
		/* Not yet exec'd, it is still a copy of the daemon. */
		for (i = 0; i < n; i++)
			if (proc_find(NULL, 0, kids[i], true, sub, 0, 1) == 0 &&
			    strcmp(proc_comm(kids[i]), "swerexd-reaper") == 0)
				return kids[i];
		if (harness_now() > deadline)
			return 0;
		/* Polling /proc: nothing signals a non-child's start. */
		nanosleep(&tick, NULL);
	}
}

/*
 * A spare reaper waits for the next session, holding nothing but stdio and
 * its spec pipe. Killed, it is replaced, and sessions start all the while.
 */
HTEST(spare_reaper_replaced)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs;
	char path[64], link[96], target[128];
	struct dirent *d;
	ssize_t len;
	size_t n = 0;
	int spare, again;
	DIR *dir;

	REQUIRE(harness_create(c, "a") == 0);
	spare = spare_find(harness_pid(h), 10);
	REQUIRE(spare > 0);
	/* Its spec pipe on 3; nothing of the daemon's: no socket, no pty. */
	snprintf(path, sizeof path, "/proc/%d/fd", spare);
	REQUIRE((dir = opendir(path)) != NULL);
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(link, sizeof link, "%s/%.16s", path, d->d_name);
		len = readlink(link, target, sizeof target - 1);
		target[len > 0 ? len : 0] = '\0';
		printf("# spare fd %s -> %s\n", d->d_name, target);
		if (strcmp(d->d_name, "3") == 0)
			CHECK(strncmp(target, "pipe:", 5) == 0);
		CHECK(strncmp(target, "socket:", 7) != 0 &&
		    strncmp(target, "/dev/pts", 8) != 0 &&
		    strcmp(target, "/dev/ptmx") != 0);
		n++;
	}
	closedir(dir);
	CHECK(n >= 4);

	kill(spare, SIGKILL);
	CHECK(harness_pid_gone(spare, 10));
	REQUIRE(harness_create(c, "b") == 0);
	obs = harness_exec(c, "b", "echo $((40 + 2))");
	REQUIRE(obs != NULL);
	CHECK_MEM(obs->output, obs->output_len, "42\n");
	swerex_observation_free(obs);
	again = spare_find(harness_pid(h), 10);
	CHECK(again > 0 && again != spare);
	REQUIRE(harness_create(c, "c") == 0);
	obs = harness_exec(c, "c", "echo $$ $PPID");
	REQUIRE(obs != NULL);
	/* The spare became c's reaper: bash's parent. */
	if (again > 0) {
		char want[32];

		snprintf(want, sizeof want, " %d\n", again);
		CHECK(obs->output_len > strlen(want) &&
		    strcmp(obs->output + obs->output_len - strlen(want),
		    want) == 0);
		if (tap_failed_now)
			harness_show_observation("c", obs);
	}
	swerex_observation_free(obs);
}

HTEST(listen_socket_mode)
{
	struct stat st;

	REQUIRE(lstat(harness_socket_path(h), &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0600);
}

TAP_MAIN(
	TAP_T(grandchildren_die_with_session),
	TAP_T(grandchildren_die_with_exit),
	TAP_T(grandchildren_die_at_stop),
	TAP_T(sigkill_of_daemon_kills_sessions),
	TAP_T(closed_stdout_no_hang),
	TAP_T(terminal_modes_no_hang),
	TAP_T(no_fd_leaks),
	TAP_T(dirty_daemon_clean_sessions),
	TAP_T(listen_socket_mode),
	TAP_T(spare_reaper_replaced),
	TAP_T(sigterm_with_100_busy_sessions),
)
