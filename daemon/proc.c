/*
 * Processes: clean spawn attributes, signalling what a session leader left
 * behind, and finding swerexd-reaper, the parent of each session's bash.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "procscan.h"
#include "reaper.h"

/* What proc_kill_tree() is after, for procscan_each(). */
struct proc_tree {
	pid_t sid;
	int sig;
};

/* Signal one process if it is in the session. */
static void
proc_kill_one(const struct procscan_stat *st, void *arg)
{
	struct proc_tree *t = arg;

	if (st->sid == t->sid)
		kill(st->pid, t->sig);
}

/*
 * Signal every process in the session sid (and its process group): the
 * /proc scan finds jobs in other process groups, as well as children that
 * escaped to the background without leaving the session.
 */
void
proc_kill_tree(pid_t sid, int sig)
{
	struct proc_tree t = { sid, sig };

	/* kill(-0) or kill(-1) would reach the daemon's group or everyone. */
	if (sid <= 1)
		return;
	if (kill(-sid, sig) < 0 && errno != ESRCH)
		log_debug("kill(-%ld): %s", (long)sid, strerror(errno));
	procscan_each(proc_kill_one, &t);
}


/*
 * Set up spawn attributes for a child that starts clean: in a session (and
 * process group) of its own, every signal at its default disposition and
 * none blocked, whatever the daemon ignores or blocks.
 */
void
proc_spawnattr_init(posix_spawnattr_t *attr)
{
	sigset_t all, none;

	/*
	 * Every bit, not sigfillset(): that leaves out glibc's internal
	 * signals (32 and 33), and posix_spawn then sets them to SIG_IGN in
	 * the child, an ignore that survives exec into every session.
	 */
	memset(&all, 0xff, sizeof all);
	sigemptyset(&none);
	posix_spawnattr_init(attr);
	posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSID |
	    POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigdefault(attr, &all);
	posix_spawnattr_setsigmask(attr, &none);
}

/*
 * Find a file of ours: beside our own executable (the build tree, or all
 * installed in one directory), else in dir. Return a path to free, or NULL.
 */
char *
proc_find_file(const char *name, const char *dir)
{
	char self[PATH_MAX], *slash, *path = NULL;
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL)
			*slash = '\0';
		if (asprintf(&path, "%s/%s", self, name) < 0)
			return NULL;
		if (access(path, R_OK) == 0)
			return path;
		free(path);
	}
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	if (access(path, R_OK) == 0)
		return path;
	free(path);
	return NULL;
}

/*
 * Find swerexd-reaper (see proc_find_file), else fall back on our own
 * executable, which acts as the reaper when run under its name (dearer to
 * start when dynamically linked). Return a path to free, or NULL.
 */
char *
proc_find_reaper(void)
{
	char *path = proc_find_file(REAPER_NAME, SWEREXD_LIBEXECDIR);

	if (path != NULL && access(path, X_OK) == 0)
		return path;
	free(path);
	if (access("/proc/self/exe", X_OK) == 0)
		return strdup("/proc/self/exe");
	return NULL;
}
