/*
 * swerexd-reaper: the parent of one session's bash.
 *
 * swerexd starts it in place of bash. It starts bash on the session's
 * terminal and stays its parent as a child subreaper, so that nothing the
 * session starts can leave its tree: a daemon that forks twice and calls
 * setsid is handed back to the reaper when its parent exits, not to init.
 * When bash exits, when swerexd asks (SIGTERM) or when swerexd dies (the
 * reaper's parent-death signal, SIGKILL of swerexd included), it kills every
 * process left in the tree, reaps them, and exits the way bash did so that
 * swerexd sees bash's own wait status.
 *
 * It is a program of its own, linked with libc only, so that each session
 * costs one small process instead of a copy of the daemon's memory. Where it
 * is missing (a static swerexd copied alone), swerexd runs itself under that
 * name instead: main() of swerexd hands over to reaper_main().
 *
 * Usage (by swerexd only):
 *   swerexd-reaper [--rlimit NAME=SOFT:HARD]... [--cgroup DIR] PPID TTY
 *                  PROGRAM [ARG]...
 * PPID is swerexd's pid (to notice that it died before the death signal was
 * armed), TTY the pty slave bash gets as its controlling terminal.
 * --rlimit (NAME cpu, as, nproc or fsize; numbers in the rlimit's unit) is
 * set in bash's process just before exec, so that bash and everything it
 * starts inherit it while the reaper itself stays unlimited and can always
 * clean up. --cgroup DIR: the reaper moves itself into that cgroup v2
 * directory before it starts bash, so that nothing of the session is ever
 * outside it. Anything else before PPID is refused.
 *
 * Or, as a spare started ahead of need (spare.c): swerexd-reaper --spare
 * PPID, which reads all those arguments and the environment from fd 3,
 * and exits quietly if swerexd closes it without sending any.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procscan.h"
#include "reaper.h"

/* How long to wait for a SIGCHLD between two sweeps of the tree. */
#define REAPER_SWEEP_NS (10 * 1000 * 1000)
/* The largest spec a spare accepts: more than any pipe holds at once. */
#define REAPER_SPEC_MAX (1024 * 1024)

extern char **environ;

#define REAPER_MAX_RLIMITS 4

/* An rlimit to set in bash's process. */
struct reaper_rlimit {
	int resource;
	struct rlimit value;
};

/* What the options before PPID asked for. */
struct reaper_opts {
	struct reaper_rlimit rl[REAPER_MAX_RLIMITS];
	size_t n_rl;
	const char *cgroup;
};

/* Say what went wrong on stderr (swerexd's log). */
static void
reaper_warn(const char *what)
{
	fprintf(stderr, "swerexd-reaper[%ld]: %s: %s\n", (long)getpid(), what,
	    strerror(errno));
}

/*
 * Start the program on tty in a session of its own, with an empty signal
 * mask and the session's rlimits (set last: only the program is bound by
 * them); it dies with the reaper should the reaper itself be killed. vfork:
 * the child runs at once (on a busy machine a forked child waits for a CPU
 * while we go on), and it only makes system calls before exec. Return its
 * pid or -1.
 */
static pid_t
reaper_spawn(const char *tty, char **argv, const struct reaper_opts *o)
{
	static const char failed[] = "swerexd-reaper: cannot start the shell\n";
	sigset_t none;
	pid_t pid;
	size_t i;
	int fd;

	sigemptyset(&none);
	pid = vfork();
	if (pid != 0) {
		if (pid < 0)
			reaper_warn("vfork");
		return pid;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (setsid() < 0)
		_exit(127);
	/* Opened after setsid and without O_NOCTTY: it becomes the terminal. */
	fd = open(tty, O_RDWR);
	if (fd < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(127);
	closefrom(3);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 0; i < o->n_rl; i++)
		if (setrlimit(o->rl[i].resource, &o->rl[i].value) < 0)
			break;
	if (i == o->n_rl)
		execvp(argv[0], argv);
	if (write(2, failed, sizeof failed - 1) < 0)
		_exit(127);
	_exit(127);
}

/* SIGKILL one process if it is our child (procscan_each callback). */
static void
reaper_kill_if_child(const struct procscan_stat *st, void *arg)
{
	int *found = arg;

	if (st->ppid == getpid()) {
		kill(st->pid, SIGKILL);
		(*found)++;
	}
}

/* Send SIGKILL to every child of ours found in /proc (the slow way). */
static int
reaper_scan_children(void)
{
	int found = 0;

	if (procscan_each(reaper_kill_if_child, &found) < 0)
		reaper_warn("/proc");
	return found;
}

/*
 * Send SIGKILL to every child of ours; return how many there were. The
 * kernel lists a task's children (CONFIG_PROC_CHILDREN), orphans handed to
 * us included; without that file, scan all of /proc.
 */
static int
reaper_kill_children(void)
{
	char path[64], buf[4096];
	long pid = 0;
	bool digits = false;
	ssize_t n, i;
	int fd, found = 0;

	snprintf(path, sizeof path, "/proc/self/task/%ld/children",
	    (long)getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return reaper_scan_children();
	/* Space-separated pids, read in bounded chunks. */
	while ((n = read(fd, buf, sizeof buf)) > 0) {
		for (i = 0; i < n; i++) {
			if (isdigit((unsigned char)buf[i])) {
				pid = pid * 10 + (buf[i] - '0');
				digits = true;
				continue;
			}
			if (digits && pid > 1) {
				kill((pid_t)pid, SIGKILL);
				found++;
			}
			pid = 0;
			digits = false;
		}
	}
	if (digits && pid > 1) {
		kill((pid_t)pid, SIGKILL);
		found++;
	}
	close(fd);
	return found;
}

/*
 * Kill the whole tree and reap it. Killing our children hands their own
 * children to us (we are their subreaper), so sweep until none is left;
 * each sweep also catches what was forked since the last one.
 */
static void
reaper_kill_all(pid_t bash, int *status)
{
	struct timespec tick = { 0, REAPER_SWEEP_NS };
	sigset_t chld;
	pid_t pid;
	int st;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	for (;;) {
		reaper_kill_children();
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (pid == bash)
				*status = st;
		if (pid < 0 && errno == ECHILD)
			return;
		sigtimedwait(&chld, NULL, &tick);
	}
}

/* Exit with the wait status bash had: the same code, or the same signal. */
static void
reaper_exit(int status)
{
	struct rlimit none = { 0, 0 };
	sigset_t set;
	int sig;

	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	if (WIFSIGNALED(status)) {
		sig = WTERMSIG(status);
		/* bash dumped core if it had to; the reaper has nothing to show. */
		setrlimit(RLIMIT_CORE, &none);
		signal(sig, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		raise(sig);
		_exit(128 + sig);
	}
	_exit(1);
}

/*
 * Split n bytes of NUL-ended strings, a list ended by an empty string, into
 * a NULL-terminated vector of pointers into them. Return the bytes used,
 * or 0 if the list has no end.
 */
static size_t
reaper_split(char *p, size_t n, char ***out)
{
	size_t i, k = 0, count = 0;
	char **v;

	for (i = 0; i < n && p[i] != '\0'; i += strlen(p + i) + 1)
		count++;
	if (i >= n)
		return 0;
	v = calloc(count + 1, sizeof *v);
	if (v == NULL)
		return 0;
	for (i = 0; k < count; i += strlen(p + i) + 1)
		v[k++] = p + i;
	*out = v;
	return i + 1;
}

/*
 * As a spare: read the arguments after our name and the environment from
 * REAPER_SPEC_FD, to its end. Return the new argc (argv and environ point
 * into the spec, kept for good), 0 when swerexd let the spare go unused,
 * -1 on a bad spec.
 */
static int
reaper_read_spec(char ***argvp)
{
	size_t len = 0, size = 4096, used;
	char *buf = NULL, *nbuf, **args, **env, **argv;
	ssize_t n;
	int argc;

	for (;;) {
		if (len == size || buf == NULL) {
			if (buf != NULL)
				size *= 2;
			errno = E2BIG;
			if (size > REAPER_SPEC_MAX ||
			    (nbuf = realloc(buf, size)) == NULL)
				goto fail;
			buf = nbuf;
		}
		n = read(REAPER_SPEC_FD, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(REAPER_SPEC_FD);
	if (len == 0) {
		free(buf);
		return 0;
	}
	errno = EINVAL;
	if ((used = reaper_split(buf, len, &args)) == 0)
		goto fail;
	if (reaper_split(buf + used, len - used, &env) == 0) {
		free(args);
		goto fail;
	}
	for (argc = 0; args[argc] != NULL; argc++)
		;
	argv = calloc((size_t)argc + 2, sizeof *argv);
	if (argv == NULL) {
		free(env);
		free(args);
		goto fail;
	}
	argv[0] = REAPER_NAME;
	memcpy(argv + 1, args, (size_t)argc * sizeof *argv);
	free(args);
	environ = env;
	*argvp = argv;
	return argc + 1;
fail:
	reaper_warn("spare: reading the session's spec");
	free(buf);
	return -1;
}

/* Parse a decimal number that must be all digits; return false if it is not. */
static bool
reaper_number(const char *s, char **end, rlim_t *out)
{
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoull(s, end, 10);
	if (errno != 0 || v >= RLIM_INFINITY)
		return false;
	*out = (rlim_t)v;
	return true;
}

/* Parse NAME=SOFT:HARD into o; return false if it is malformed. */
static bool
reaper_parse_rlimit(const char *arg, struct reaper_opts *o)
{
	static const struct {
		const char *name;
		int resource;
	} names[] = {
		{ "cpu=", RLIMIT_CPU },
		{ "as=", RLIMIT_AS },
		{ "nproc=", RLIMIT_NPROC },
		{ "fsize=", RLIMIT_FSIZE },
	};
	struct reaper_rlimit *rl;
	char *end;
	size_t i, len;

	if (o->n_rl == REAPER_MAX_RLIMITS)
		return false;
	rl = &o->rl[o->n_rl];
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		len = strlen(names[i].name);
		if (strncmp(arg, names[i].name, len) == 0)
			break;
	}
	if (i == sizeof names / sizeof names[0])
		return false;
	rl->resource = names[i].resource;
	if (!reaper_number(arg + len, &end, &rl->value.rlim_cur) ||
	    *end != ':' ||
	    !reaper_number(end + 1, &end, &rl->value.rlim_max) ||
	    *end != '\0' || rl->value.rlim_cur > rl->value.rlim_max)
		return false;
	o->n_rl++;
	return true;
}

/* Parse the options before PPID; return the index of PPID or -1. */
static int
reaper_parse(int argc, char **argv, struct reaper_opts *o)
{
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--rlimit") == 0) {
			if (!reaper_parse_rlimit(argv[i + 1], o))
				return -1;
		} else if (strcmp(argv[i], "--cgroup") == 0 && o->cgroup == NULL &&
		    argv[i + 1][0] == '/')
			o->cgroup = argv[i + 1];
		else
			break;
	}
	if (i >= argc || !isdigit((unsigned char)argv[i][0]) || argc - i < 3)
		return -1;
	return i;
}

/* Move the reaper into the session's cgroup (bash then starts inside it). */
static int
reaper_join(const char *dir)
{
	char path[4096];
	int fd, r = 0;

	if ((size_t)snprintf(path, sizeof path, "%s/cgroup.procs", dir) >=
	    sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* "0" is the writer itself. */
	if (write(fd, "0", 1) != 1)
		r = -1;
	close(fd);
	return r;
}

/* Start bash, wait for it or for the word to stop, then clear the tree. */
int
reaper_main(int argc, char **argv)
{
	struct reaper_opts o;
	sigset_t set;
	siginfo_t si;
	pid_t bash, pid;
	long ppid;
	int status = 0, st, sig, a = 0;
	bool done = false, spare = argc == 3 &&
	    strcmp(argv[1], REAPER_SPARE) == 0;

	memset(&o, 0, sizeof o);
	if (!spare && (a = reaper_parse(argc, argv, &o)) < 0) {
		fprintf(stderr, "usage: swerexd-reaper [--rlimit "
		    "cpu|as|nproc|fsize=SOFT:HARD]... [--cgroup /DIR] PPID TTY "
		    "PROGRAM [ARG]...\n       swerexd-reaper --spare PPID\n"
		    "(started by swerexd for each session)\n");
		return 2;
	}
	ppid = strtol(argv[spare ? 2 : a], NULL, 10);
	/* Signals are taken by sigwaitinfo, never by handlers. */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
		reaper_warn("prctl");
		return 127;
	}
	/* swerexd died before the death signal was armed: nothing to serve. */
	if ((long)getppid() != ppid)
		return 127;
	if (spare) {
		/* Stay armed, then wait (long, maybe) for a session to serve. */
		if ((argc = reaper_read_spec(&argv)) <= 0)
			return argc == 0 ? 0 : 127;
		if ((a = reaper_parse(argc, argv, &o)) < 0 ||
		    strtol(argv[a], NULL, 10) != ppid)
			return 127;
	}
	if (o.cgroup != NULL && reaper_join(o.cgroup) < 0) {
		reaper_warn(o.cgroup);
		return 127;
	}
	bash = reaper_spawn(argv[a + 1], argv + a + 2, &o);
	if (bash < 0)
		return 127;
	while (!done) {
		sig = sigwaitinfo(&set, &si);
		if (sig < 0)
			continue;
		if (sig != SIGCHLD)
			break;
		/* Until bash goes, orphans of the session only need reaping. */
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			if (pid == bash) {
				status = st;
				done = true;
			}
	}
	reaper_kill_all(done ? -1 : bash, &status);
	reaper_exit(status);
	return 1;
}

#ifdef REAPER_STANDALONE
/* Run as swerexd-reaper, the program. */
int
main(int argc, char **argv)
{
	return reaper_main(argc, argv);
}
#endif
