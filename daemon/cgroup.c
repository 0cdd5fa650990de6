/*
 * Per-session cgroups. Memory and pids limits (SessionLimits.memory, .pids)
 * need a cgroup v2 subtree the daemon may manage, a delegated one: a
 * directory on a cgroup2 file system, writable by us, whose
 * cgroup.controllers offers memory and pids.
 *
 * At start-up the daemon takes --cgroup DIR, or by default its own cgroup
 * (from /proc/self/cgroup and /proc/self/mountinfo) provided it is not the
 * machine's root (a container's cgroup namespace root will do) and holds no
 * process but the daemon. cgroup v2 lets a cgroup hand
 * controllers to its children only while it holds no process itself (the
 * "no internal processes" rule); so when DIR's cgroup.subtree_control lacks
 * memory or pids and the daemon itself is in DIR, the daemon first moves
 * itself into the leaf DIR/daemon, then writes "+memory +pids" there. Any
 * other process in DIR makes it unusable. A session with memory or pids
 * limits gets DIR/session-N, made and limited before its bash starts;
 * swerexd-reaper joins it (--cgroup) before it starts bash, so nothing of the
 * session runs outside it. It is removed when the session is freed;
 * leftovers of a daemon that died (session-* directories) are removed at
 * the next start when empty.
 *
 * Without a usable subtree --cgroup DIR is a start-up error; the default
 * is not: sessions asking for memory or pids limits are refused with the
 * reason kept in srv->cgroup_why. All of this is a few small reads and
 * writes on cgroupfs, which do not block.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "cgroup.h"
#include "log.h"
#include "server.h"

#define CGROUP_FILE_MAX 4096
#define CGROUP_TRIES 16          /* names tried past stale session-N */

/* Read a small cgroupfs file into buf (NUL-terminated); return 0 or -errno. */
static int
cgroup_read(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		r = -errno;
		n = 0;
	}
	buf[n] = '\0';
	close(fd);
	return r;
}

/* Write a string to a cgroupfs file; return 0 or -errno. */
static int
cgroup_write(const char *path, const char *s)
{
	size_t len = strlen(s);
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, s, len) != (ssize_t)len)
		r = -errno;
	close(fd);
	return r;
}

/* Write a string to the file name in directory dir; return 0 or -errno. */
static int
cgroup_set(const char *dir, const char *name, const char *s)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >=
	    sizeof path)
		return -ENAMETOOLONG;
	return cgroup_write(path, s);
}

/* Read the file name in directory dir; return 0 or -errno. */
static int
cgroup_get(const char *dir, const char *name, char *buf, size_t size)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >=
	    sizeof path)
		return -ENAMETOOLONG;
	return cgroup_read(path, buf, size);
}

/* Tell whether a space-separated list holds word. */
static bool
cgroup_has_word(const char *list, const char *word)
{
	size_t len = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word)) != NULL) {
		if ((p == list || isspace((unsigned char)p[-1])) &&
		    (p[len] == '\0' || isspace((unsigned char)p[len])))
			return true;
		p += len;
	}
	return false;
}

/* Find the value of "key N" in a flat-keyed file such as memory.events. */
static uint64_t
cgroup_key(const char *text, const char *key)
{
	size_t len = strlen(key);
	const char *p = text;

	while (*p != '\0') {
		if (strncmp(p, key, len) == 0 && p[len] == ' ')
			return strtoull(p + len + 1, NULL, 10);
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return 0;
}

/* Keep why the subtree cannot be used. */
static void __attribute__((format(printf, 2, 3)))
cgroup_unusable(struct server *srv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(srv->cgroup_why, sizeof srv->cgroup_why, fmt, ap);
	va_end(ap);
}

/*
 * Find the daemon's own cgroup v2 directory: the unified hierarchy's mount
 * point (mountinfo) joined with the path in the "0::" line of
 * /proc/self/cgroup, relative to the mount's root. Return 0 or -1 with the
 * reason kept.
 */
static int
cgroup_own(struct server *srv, char *out, size_t size)
{
	char cg[PATH_MAX], line[2 * PATH_MAX], root[PATH_MAX], mnt[PATH_MAX];
	const char *rel = NULL;
	size_t rlen;
	FILE *f;

	if (cgroup_read("/proc/self/cgroup", line, sizeof line) < 0) {
		cgroup_unusable(srv, "cannot read /proc/self/cgroup");
		return -1;
	}
	/* The unified hierarchy's line is "0::/path". */
	if (strncmp(line, "0::", 3) == 0)
		rel = line + 3;
	else if ((rel = strstr(line, "\n0::")) != NULL)
		rel += 4;
	if (rel == NULL || sscanf(rel, "%4095[^\n]", cg) != 1) {
		cgroup_unusable(srv, "no cgroup v2 (the daemon's cgroups are "
		    "all cgroup v1)");
		return -1;
	}
	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL) {
		cgroup_unusable(srv, "cannot read /proc/self/mountinfo");
		return -1;
	}
	mnt[0] = '\0';
	while (fgets(line, sizeof line, f) != NULL) {
		const char *dash = strstr(line, " - ");

		if (dash == NULL || strncmp(dash, " - cgroup2 ", 11) != 0 ||
		    sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2) {
			mnt[0] = '\0';
			continue;
		}
		break;
	}
	fclose(f);
	if (mnt[0] == '\0') {
		cgroup_unusable(srv, "no cgroup v2 file system is mounted");
		return -1;
	}
	/* Our path is shown from the namespace's root; the mount may be below. */
	rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
	if (strncmp(cg, root, rlen) != 0) {
		cgroup_unusable(srv, "the daemon's cgroup %s is outside the "
		    "cgroup2 mount at %s", cg, mnt);
		return -1;
	}
	/*
	 * The root of a cgroup namespace (a container's) may be a delegated
	 * subtree; the machine's root is not. Only the latter has no
	 * cgroup.type.
	 */
	snprintf(line, sizeof line, "%s/cgroup.type", mnt);
	if ((strcmp(cg + rlen, "/") == 0 || cg[rlen] == '\0') &&
	    access(line, F_OK) < 0) {
		cgroup_unusable(srv, "the daemon runs in the root cgroup of %s, "
		    "which is not a delegated subtree (run it in a cgroup of its "
		    "own, e.g. systemd's Delegate=yes, or pass --cgroup DIR)",
		    mnt);
		return -1;
	}
	if ((size_t)snprintf(out, size, "%s%s", mnt,
	    strcmp(cg + rlen, "/") == 0 ? "" : cg + rlen) >= size) {
		cgroup_unusable(srv, "cgroup path too long");
		return -1;
	}
	return 0;
}

/* Tell whether the pid list of cgroup.procs holds a pid other than ours. */
static bool
cgroup_others(const char *procs)
{
	long self = (long)getpid();
	const char *p = procs;
	char *end;
	long pid;

	while (*p != '\0') {
		pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid != self)
			return true;
		p = end;
		while (isspace((unsigned char)*p))
			p++;
	}
	return false;
}

/*
 * Enable memory and pids for DIR's children, moving the daemon into the
 * leaf DIR/daemon first if it lives in DIR. Return 0 or -1, reason kept.
 */
static int
cgroup_enable(struct server *srv, const char *dir)
{
	char buf[CGROUP_FILE_MAX], leaf[PATH_MAX], pid[32];
	int r;

	if (cgroup_get(dir, "cgroup.subtree_control", buf, sizeof buf) < 0) {
		cgroup_unusable(srv, "cannot read %s/cgroup.subtree_control",
		    dir);
		return -1;
	}
	if (cgroup_has_word(buf, "memory") && cgroup_has_word(buf, "pids"))
		return 0;
	if ((r = cgroup_get(dir, "cgroup.procs", buf, sizeof buf)) < 0) {
		cgroup_unusable(srv, "cannot read %s/cgroup.procs", dir);
		return -1;
	}
	if (cgroup_others(buf)) {
		cgroup_unusable(srv, "%s holds processes other than swerexd, so "
		    "cgroup v2 cannot enable controllers for its children (give "
		    "swerexd a cgroup of its own)", dir);
		return -1;
	}
	if (buf[0] != '\0') {
		if ((size_t)snprintf(leaf, sizeof leaf, "%s/daemon", dir) >=
		    sizeof leaf || (mkdir(leaf, 0755) < 0 && errno != EEXIST)) {
			cgroup_unusable(srv, "cannot create %s/daemon: %s", dir,
			    strerror(errno));
			return -1;
		}
		snprintf(pid, sizeof pid, "%ld", (long)getpid());
		if ((r = cgroup_set(leaf, "cgroup.procs", pid)) < 0) {
			cgroup_unusable(srv, "cannot move swerexd into %s: %s",
			    leaf, strerror(-r));
			return -1;
		}
		log_info("moved into %s so that %s can hold the sessions' "
		    "cgroups", leaf, dir);
	}
	if ((r = cgroup_set(dir, "cgroup.subtree_control", "+memory +pids")) < 0) {
		cgroup_unusable(srv, "cannot enable memory and pids in "
		    "%s/cgroup.subtree_control: %s", dir, strerror(-r));
		return -1;
	}
	return 0;
}

/* Remove empty session-* directories a daemon that died left behind. */
static void
cgroup_clean(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "session-", 8) != 0 ||
		    (size_t)snprintf(path, sizeof path, "%s/%s", dir,
		    de->d_name) >= sizeof path)
			continue;
		if (rmdir(path) == 0)
			log_debug("removed the stale cgroup %s", path);
	}
	closedir(d);
}

/* Check that dir is a delegated cgroup v2 directory and prepare it. */
static int
cgroup_setup(struct server *srv, const char *dir)
{
	char buf[CGROUP_FILE_MAX];
	struct statfs fs;

	if (statfs(dir, &fs) < 0) {
		cgroup_unusable(srv, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC) {
		cgroup_unusable(srv, "%s is not on a cgroup v2 file system", dir);
		return -1;
	}
	if (cgroup_get(dir, "cgroup.controllers", buf, sizeof buf) < 0) {
		cgroup_unusable(srv, "cannot read %s/cgroup.controllers", dir);
		return -1;
	}
	if (!cgroup_has_word(buf, "memory") || !cgroup_has_word(buf, "pids")) {
		cgroup_unusable(srv, "the memory or pids controller is missing "
		    "from %s/cgroup.controllers (not delegated, or bound to "
		    "cgroup v1)", dir);
		return -1;
	}
	if (access(dir, W_OK) < 0) {
		cgroup_unusable(srv, "%s is not writable by swerexd (not "
		    "delegated)", dir);
		return -1;
	}
	if (cgroup_enable(srv, dir) < 0)
		return -1;
	cgroup_clean(dir);
	return 0;
}

/*
 * Find and prepare the subtree sessions' cgroups go under. Return -1 only
 * when --cgroup DIR was given and cannot be used.
 */
int
cgroup_init(struct server *srv)
{
	const char *want = srv->cfg.cgroup;
	char dir[PATH_MAX];

	srv->cgroup = NULL;
	if (want != NULL && strcmp(want, "none") == 0) {
		cgroup_unusable(srv, "disabled by --cgroup none");
		return 0;
	}
	if (want == NULL) {
		if (cgroup_own(srv, dir, sizeof dir) < 0 ||
		    cgroup_setup(srv, dir) < 0) {
			log_debug("no cgroup for memory and pids limits: %s",
			    srv->cgroup_why);
			return 0;
		}
		want = dir;
	} else if (cgroup_setup(srv, want) < 0) {
		log_error("--cgroup %s: %s", want, srv->cgroup_why);
		return -1;
	}
	srv->cgroup = strdup(want);
	if (srv->cgroup == NULL)
		return -1;
	log_debug("sessions' cgroups go under %s", srv->cgroup);
	return 0;
}

/* Forget the subtree. */
void
cgroup_free(struct server *srv)
{
	free(srv->cgroup);
	srv->cgroup = NULL;
}

/*
 * Make a session's cgroup with its limits (0 = none); return 0 with the
 * new directory in *path, or -errno. Swap is closed (memory.swap.max 0,
 * where the kernel has it) so that memory.max bounds the session's memory
 * rather than pushing it to swap.
 */
int
cgroup_session_create(struct server *srv, uint64_t memory, uint64_t pids,
		      char **path)
{
	char *dir = NULL, num[32];
	int r = -EEXIST, i;

	for (i = 0; i < CGROUP_TRIES && r == -EEXIST; i++) {
		free(dir);
		if (asprintf(&dir, "%s/session-%" PRIu64, srv->cgroup,
		    ++srv->cgroup_next) < 0)
			return -ENOMEM;
		r = mkdir(dir, 0755) < 0 ? -errno : 0;
	}
	if (r < 0)
		goto fail;
	if (memory > 0) {
		snprintf(num, sizeof num, "%" PRIu64, memory);
		if ((r = cgroup_set(dir, "memory.max", num)) < 0)
			goto fail_rmdir;
		r = cgroup_set(dir, "memory.swap.max", "0");
		if (r < 0 && r != -ENOENT)
			goto fail_rmdir;
	}
	if (pids > 0) {
		snprintf(num, sizeof num, "%" PRIu64, pids);
		if ((r = cgroup_set(dir, "pids.max", num)) < 0)
			goto fail_rmdir;
	}
	*path = dir;
	return 0;

fail_rmdir:
	rmdir(dir);
fail:
	log_warn("cannot make a session cgroup %s: %s", dir ? dir : "",
	    strerror(-r));
	free(dir);
	return r;
}

/* Read the counters of a session's cgroup (0 where unreadable). */
void
cgroup_session_counters(const char *path, struct cgroup_counters *c)
{
	char buf[1024];

	memset(c, 0, sizeof *c);
	if (cgroup_get(path, "memory.events", buf, sizeof buf) == 0)
		c->oom_kill = cgroup_key(buf, "oom_kill");
	if (cgroup_get(path, "pids.events", buf, sizeof buf) == 0)
		c->pids_max = cgroup_key(buf, "max");
}

/*
 * Remove a session's cgroup. Its processes are gone once the reaper was
 * reaped; if some are not (the daemon exits without waiting), kill them
 * (cgroup.kill) and leave the directory for the next start to remove.
 */
void
cgroup_session_remove(const char *path)
{
	int err;

	if (rmdir(path) == 0 || errno == ENOENT)
		return;
	err = errno;
	if (err == EBUSY)
		cgroup_set(path, "cgroup.kill", "1");
	log_debug("cannot remove the cgroup %s: %s", path, strerror(err));
}
