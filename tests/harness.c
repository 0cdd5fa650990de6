/* Integration test harness: run the real swerexd on a private socket. */
#include <errno.h>
#include <limits.h>
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

struct harness {
	char *dir;              /* private temp dir, removed at the end */
	char *sock;             /* socket path (in dir unless given) */
	char *url;              /* "unix:" + sock */
	char *log;              /* daemon's stdout and stderr */
	pid_t pid;
	int pidfd;              /* -1 when pidfd_open is not available */
	int ready_fd;           /* read end of the --ready-fd pipe, or -1 */
	char ready[2048];       /* what came through it: LISTEN=... lines */
	bool reaped;
	int status;             /* wait status once reaped */
	bool exit_expected;     /* the test stopped it or waited for its exit */
	struct swerex_client *client;
	struct harness *next;   /* all daemons of the current test */
};

static struct harness *harness_all;
static const char *harness_test_name = "";
static unsigned harness_reply_seq;

/* Seconds on the monotonic clock. */
double
harness_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Milliseconds left until deadline, for poll(). */
static int
harness_ms_left(double deadline)
{
	double left = deadline - harness_now();

	if (left <= 0)
		return 0;
	return (int)(left * 1000) + 1;
}

/* Write a whole buffer to fd (async-signal-safe). */
static void
harness_write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Write a C string to stdout (async-signal-safe). */
static void
harness_say(const char *s)
{
	harness_write_all(STDOUT_FILENO, s, strlen(s));
}

/*
 * Print the tail of a daemon log as "# | " lines. Async-signal-safe, so the
 * watchdog can use it; callers elsewhere flush stdout first.
 */
static void
harness_print_log_tail(const char *path)
{
	static char buf[24 * 1024];
	ssize_t n = 0, r;
	off_t size;
	size_t i, start;
	int fd;

	if (path == NULL)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof buf)
		lseek(fd, size - (off_t)sizeof buf, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	while (n < (ssize_t)sizeof buf) {
		r = read(fd, buf + n, sizeof buf - (size_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	harness_say("# daemon log ");
	harness_say(path);
	harness_say(size > (off_t)sizeof buf ? " (tail):\n" : ":\n");
	start = 0;
	if (size > (off_t)sizeof buf) {
		/* Skip the partial first line. */
		while (start < (size_t)n && buf[start] != '\n')
			start++;
		start++;
	}
	for (i = start; i < (size_t)n; i++) {
		if (buf[i] != '\n' && i + 1 != (size_t)n)
			continue;
		harness_say("# | ");
		harness_write_all(STDOUT_FILENO, buf + start, i - start);
		if (buf[i] != '\n')
			harness_write_all(STDOUT_FILENO, buf + i, 1);
		harness_say("\n");
		start = i + 1;
	}
}

/* Print the daemon's log as TAP comment lines. */
void
harness_print_log(const struct harness *h)
{
	fflush(stdout);
	harness_print_log_tail(h->log);
}

/* Report a test that outlived its watchdog, stop the daemons and exit. */
static void
harness_watchdog_fired(int sig)
{
	struct harness *h;

	(void)sig;
	harness_say("# watchdog: test ");
	harness_say(harness_test_name);
	harness_say(" did not finish in time; stopping\n");
	for (h = harness_all; h != NULL; h = h->next) {
		if (!h->reaped)
			kill(h->pid, SIGTERM);
		harness_print_log_tail(h->log);
	}
	harness_say("not ok - watchdog fired\n");
	_exit(1);
}

/* Re-arm the current test's watchdog to seconds from now. */
void
harness_watchdog(unsigned seconds)
{
	alarm(seconds);
}

/* Install signal dispositions the tests need (once). */
static void
harness_init(void)
{
	static bool done;
	struct sigaction sa;

	if (done)
		return;
	done = true;
	/* Sockets closed by the daemon must give EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = harness_watchdog_fired;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
}

/* Remove one file or directory (nftw callback). */
static int
harness_rm_one(const char *path, const struct stat *st, int flag,
	       struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* Make a temp dir with a short path (socket paths are limited to 107 bytes). */
static char *
harness_mkdtemp(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl;

	if (base == NULL || *base == '\0' || strlen(base) > 60)
		base = "/tmp";
	if (asprintf(&tmpl, "%s/swerex-test.XXXXXX", base) < 0)
		return NULL;
	if (mkdtemp(tmpl) == NULL) {
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

/*
 * Spawn a daemon listening on sock_path (NULL: a socket in its own temp dir)
 * without waiting for it; see harness_wait_ready().
 */
struct harness *
harness_spawn(const char *sock_path, const char *const *args)
{
	const char *bin = getenv("SWEREXD"), *level;
	const char *argv[64];
	struct harness *h;
	sigset_t all, old;
	int p[2], logfd, nullfd, argc = 0, sig;
	pid_t parent = getpid();
	char home[PATH_MAX];

	harness_init();
	if (bin == NULL || *bin == '\0') {
		tap_diag(__FILE__, __LINE__, "SWEREXD is not set (path of the daemon binary)");
		return NULL;
	}
	level = getenv("SWEREX_TEST_LOG_LEVEL");
	if (level == NULL || *level == '\0')
		level = "debug";

	h = calloc(1, sizeof *h);
	if (h == NULL)
		return NULL;
	h->pidfd = -1;
	h->ready_fd = -1;
	h->dir = harness_mkdtemp();
	if (h->dir == NULL) {
		tap_diag(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
		free(h);
		return NULL;
	}
	if (sock_path != NULL)
		h->sock = strdup(sock_path);
	else if (asprintf(&h->sock, "%s/swerexd.sock", h->dir) < 0)
		h->sock = NULL;
	if (asprintf(&h->url, "unix:%s", h->sock) < 0)
		h->url = NULL;
	if (asprintf(&h->log, "%s/swerexd.log", h->dir) < 0)
		h->log = NULL;

	argv[argc++] = bin;
	argv[argc++] = "--listen";
	argv[argc++] = h->url;
	argv[argc++] = "--ready-fd";
	argv[argc++] = "3";
	argv[argc++] = "--log-level";
	argv[argc++] = level;
	for (; args != NULL && *args != NULL && argc < 63; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;

	if (pipe2(p, O_CLOEXEC) != 0) {
		tap_diag(__FILE__, __LINE__, "pipe2: %s", strerror(errno));
		return h;
	}
	logfd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fflush(NULL);
	/* A private HOME: the host's ~/.bashrc (slow, stateful) never runs. */
	snprintf(home, sizeof home, "%s/home", h->dir);
	mkdir(home, 0700);

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	h->pid = fork();
	if (h->pid == 0) {
		/* The daemon shuts down cleanly if the test process dies. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		dup2(nullfd, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		if (p[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(p[1], 3);
		closefrom(4);
		setenv("HOME", home, 1);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execv(bin, (char *const *)argv);
		dprintf(STDERR_FILENO, "harness: exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	if (h->pid < 0) {
		tap_diag(__FILE__, __LINE__, "fork: %s", strerror(errno));
		close(p[0]);
		h->reaped = true;
		h->exit_expected = true;
		h->pid = 0;
	} else {
		h->ready_fd = p[0];
		h->pidfd = (int)syscall(SYS_pidfd_open, h->pid, 0);
	}
	h->next = harness_all;
	harness_all = h;
	return h;
}

/* Wait for READY=1: 1 ready, 0 the daemon closed the pipe first, -1 timeout. */
int
harness_wait_ready(struct harness *h, double timeout)
{
	double deadline = harness_now() + timeout;
	char *buf = h->ready;
	size_t have = 0;
	struct pollfd pfd;
	ssize_t r;

	if (h->ready_fd < 0)
		return 0;
	pfd.fd = h->ready_fd;
	pfd.events = POLLIN;
	for (;;) {
		r = poll(&pfd, 1, harness_ms_left(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return -1;
		r = read(h->ready_fd, buf + have, sizeof h->ready - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		if (strstr(buf, "READY=1\n") != NULL) {
			close(h->ready_fd);
			h->ready_fd = -1;
			return 1;
		}
		if (have == sizeof h->ready - 1)
			break;
	}
	close(h->ready_fd);
	h->ready_fd = -1;
	return 0;
}

/* Reap the daemon if it has exited; return true if it has. */
static bool
harness_reap(struct harness *h)
{
	pid_t r;
	int st;

	if (h->reaped)
		return true;
	do
		r = waitpid(h->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == h->pid || (r < 0 && errno == ECHILD)) {
		h->reaped = true;
		h->status = r == h->pid ? st : -1;
		if (h->pidfd >= 0) {
			close(h->pidfd);
			h->pidfd = -1;
		}
		return true;
	}
	return false;
}

/* Wait until the daemon exits or timeout passes; true if it was reaped. */
static bool
harness_wait_reaped(struct harness *h, double timeout)
{
	double deadline = harness_now() + timeout;
	struct pollfd pfd;

	while (!harness_reap(h)) {
		if (harness_now() >= deadline)
			return false;
		if (h->pidfd >= 0) {
			pfd.fd = h->pidfd;
			pfd.events = POLLIN;
			poll(&pfd, 1, harness_ms_left(deadline));
		} else {
			/* No pidfd: poll the exit with short naps. */
			poll(NULL, 0, 10);
		}
	}
	return true;
}

/* Wait for the daemon to exit; return its wait status, or -1 on timeout. */
int
harness_wait_exit(struct harness *h, double timeout)
{
	h->exit_expected = true;
	if (!harness_wait_reaped(h, timeout))
		return -1;
	return h->status;
}

/* Send SIGKILL and reap; return the wait status. */
int
harness_kill(struct harness *h)
{
	h->exit_expected = true;
	if (h->reaped)
		return h->status;
	kill(h->pid, SIGKILL);
	harness_wait_reaped(h, 30);
	return h->status;
}

/* Send SIGTERM and reap; return the wait status (-1 if it had to be killed). */
int
harness_stop(struct harness *h)
{
	h->exit_expected = true;
	if (h->client != NULL) {
		swerex_client_free(h->client);
		h->client = NULL;
	}
	if (h->reaped)
		return h->status;
	kill(h->pid, SIGTERM);
	if (harness_wait_reaped(h, 10))
		return h->status;
	tap_diag(__FILE__, __LINE__, "daemon %d did not exit within 10 s of SIGTERM; killing it",
		 (int)h->pid);
	harness_kill(h);
	return -1;
}

/* Whether the daemon is still running (reaps it if it has exited). */
bool
harness_running(struct harness *h)
{
	return !harness_reap(h);
}

/* Describe a wait status in a static buffer. */
static const char *
harness_status_str(int st)
{
	static char buf[64];

	if (st == -1)
		snprintf(buf, sizeof buf, "unknown (not reaped)");
	else if (WIFEXITED(st))
		snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, sizeof buf, "killed by signal %d (%s)", WTERMSIG(st),
			 strsignal(WTERMSIG(st)));
	else
		snprintf(buf, sizeof buf, "status 0x%x", st);
	return buf;
}

/* Stop if running, print the log when the current test failed, clean up. */
void
harness_free(struct harness *h)
{
	struct harness **pp;

	if (h == NULL)
		return;
	for (pp = &harness_all; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	if (h->client != NULL) {
		swerex_client_free(h->client);
		h->client = NULL;
	}
	if (!h->reaped)
		harness_stop(h);
	if (h->ready_fd >= 0)
		close(h->ready_fd);
	if (tap_failed_now)
		harness_print_log(h);
	if (h->dir != NULL)
		nftw(h->dir, harness_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(h->dir);
	free(h->sock);
	free(h->url);
	free(h->log);
	free(h);
}

/* Start a daemon in a fresh temp dir and connect a client; NULL on failure. */
struct harness *
harness_start(const char *const *args)
{
	struct harness *h;
	struct swerex_error *err = NULL;
	int r;

	h = harness_spawn(NULL, args);
	if (h == NULL)
		return NULL;
	r = harness_wait_ready(h, 20);
	if (r != 1) {
		if (r < 0)
			tap_diag(__FILE__, __LINE__, "daemon not ready within 20 s");
		else if (harness_wait_exit(h, 10) != -1)
			tap_diag(__FILE__, __LINE__, "daemon exited before READY=1: %s",
				 harness_status_str(h->status));
		else
			tap_diag(__FILE__, __LINE__, "daemon closed the ready fd without READY=1");
		harness_free(h);
		return NULL;
	}
	if (swerex_connect(h->url, "swerex-tests", &h->client, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "swerex_connect(%s) failed", h->url);
		harness_show_error("connect", err);
		swerex_error_free(err);
		harness_free(h);
		return NULL;
	}
	return h;
}

/* Whether the daemons run under valgrind (see harness.h). */
bool
harness_under_valgrind(void)
{
	return getenv("SWEREX_VALGRIND_DIR") != NULL;
}

/* Start a daemon, run body, stop and reap every daemon the test started. */
void
harness_test(const char *name, void (*body)(struct harness *),
	     const char *const *args)
{
	struct harness *h;
	jmp_buf saved;
	int st;

	harness_init();
	harness_test_name = name;
	memcpy(saved, tap_abort, sizeof saved);
	alarm(HARNESS_WATCHDOG);
	h = harness_start(args);
	if (h != NULL && setjmp(tap_abort) == 0)
		body(h);
	alarm(0);
	memcpy(tap_abort, saved, sizeof saved);

	while ((h = harness_all) != NULL) {
		if (h->client != NULL) {
			swerex_client_free(h->client);
			h->client = NULL;
		}
		if (!h->exit_expected) {
			if (!harness_running(h)) {
				tap_diag(__FILE__, __LINE__, "daemon exited during the test: %s",
					 harness_status_str(h->status));
			} else {
				st = harness_stop(h);
				if (st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
					tap_diag(__FILE__, __LINE__,
						 "daemon did not exit 0 on SIGTERM: %s",
						 harness_status_str(st));
			}
		}
		harness_free(h);
	}
}

/* The first address the daemon listens on that starts with prefix, or NULL. */
const char *
harness_listen(struct harness *h, const char *prefix)
{
	static char addr[256];
	const char *p = h->ready, *end;

	while ((p = strstr(p, "LISTEN=")) != NULL) {
		p += 7;
		end = strchr(p, '\n');
		if (end != NULL && strncmp(p, prefix, strlen(prefix)) == 0 &&
		    (size_t)(end - p) < sizeof addr) {
			memcpy(addr, p, (size_t)(end - p));
			addr[end - p] = '\0';
			return addr;
		}
	}
	return NULL;
}

/* Path of the daemon's socket. */
const char *
harness_socket_path(const struct harness *h)
{
	return h->sock;
}

/* "unix:<socket path>". */
const char *
harness_url(const struct harness *h)
{
	return h->url;
}

/* The daemon's private temp dir (tests may create files in it). */
const char *
harness_dir(const struct harness *h)
{
	return h->dir;
}

/* The daemon's pid. */
pid_t
harness_pid(const struct harness *h)
{
	return h->pid;
}

/* The client connected by harness_start() (freed by harness_free()). */
struct swerex_client *
harness_client(const struct harness *h)
{
	return h->client;
}

/* Connect another blocking client; NULL (after a diagnostic) on failure. */
struct swerex_client *
harness_connect(const struct harness *h)
{
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;

	if (swerex_connect(h->url, "swerex-tests", &c, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "swerex_connect(%s) failed", h->url);
		harness_show_error("connect", err);
		swerex_error_free(err);
		return NULL;
	}
	return c;
}

/* Connect an event-driven client on base; NULL on failure. */
struct swerex_client *
harness_connect_base(const struct harness *h, struct event_base *base)
{
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;

	if (swerex_connect_base(base, h->url, "swerex-tests", &c, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "swerex_connect_base(%s) failed", h->url);
		harness_show_error("connect", err);
		swerex_error_free(err);
		return NULL;
	}
	return c;
}

/* Print a byte string escaped and shortened, after a label. */
static void
harness_show_bytes(const char *label, const char *p, size_t n)
{
	size_t i, shown = n > 300 ? 200 : n;

	printf("#   %s (%zu bytes): \"", label, n);
	for (i = 0; p != NULL && i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (i == shown) {
			printf("\"...\"");
			i = n - 80;
			ch = (unsigned char)p[i];
			shown = n;
		}
		if (ch == '\n')
			printf("\\n");
		else if (ch == '\r')
			printf("\\r");
		else if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
	printf("\"\n");
}

/* Print an observation as TAP comments. */
void
harness_show_observation(const char *label, const struct swerex_observation *o)
{
	if (o == NULL) {
		printf("#   %s: no observation\n", label);
		return;
	}
	printf("#   %s: exit_code=%s%d truncated=%d output_bytes=%llu carried_over=%llu\n",
	       label, o->has_exit_code ? "" : "(none) ", o->exit_code,
	       o->truncated, (unsigned long long)o->output_bytes,
	       (unsigned long long)o->carried_over);
	harness_show_bytes("output", o->output, o->output_len);
	if (o->failure_reason != NULL && *o->failure_reason != '\0')
		printf("#   failure_reason: %s\n", o->failure_reason);
	if (o->expect_string != NULL && *o->expect_string != '\0')
		printf("#   expect_string: \"%s\"\n", o->expect_string);
}

/* Print an error (kind, message, extras, observation) as TAP comments. */
void
harness_show_error(const char *label, const struct swerex_error *err)
{
	size_t i;

	if (err == NULL) {
		printf("#   %s: no error object\n", label);
		return;
	}
	printf("#   %s: %s: %s\n", label, swerex_error_kind_name(err->kind),
	       err->message ? err->message : "(null)");
	for (i = 0; i < err->n_extra; i++)
		harness_show_bytes(err->extra[i].key, err->extra[i].value,
				   err->extra[i].value ? strlen(err->extra[i].value) : 0);
	if (err->observation != NULL)
		harness_show_observation("error observation", err->observation);
}

/* Create a session; print a diagnostic and return -1 on failure. */
int
harness_create(struct swerex_client *c, const char *session)
{
	struct swerex_create_opts o = { 0 };
	struct swerex_error *err = NULL;
	char *out = NULL;
	size_t len = 0;

	o.session = session;
	if (swerex_create_session(c, &o, &out, &len, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "create_session(%s) failed",
			 session ? session : "(default)");
		harness_show_error("error", err);
		swerex_error_free(err);
		return -1;
	}
	free(out);
	return 0;
}

/* Close a session; print a diagnostic and return -1 on failure. */
int
harness_close(struct swerex_client *c, const char *session)
{
	struct swerex_error *err = NULL;

	if (swerex_close_session(c, session, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "close_session(%s) failed",
			 session ? session : "(default)");
		harness_show_error("error", err);
		swerex_error_free(err);
		return -1;
	}
	return 0;
}

/* Run command in session (timeout < 0: none); observation or NULL + *err. */
struct swerex_observation *
harness_run(struct swerex_client *c, const char *session, const char *command,
	    double timeout, enum swerex_check check, struct swerex_error **err)
{
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;

	o.command = command;
	o.session = session;
	if (timeout >= 0) {
		o.has_timeout = true;
		o.timeout = timeout;
	}
	o.check = check;
	*err = NULL;
	if (swerex_run(c, &o, &obs, err) != 0)
		return NULL;
	return obs;
}

/* Run with check silent and HARNESS_TIMEOUT; on error fail and return NULL. */
struct swerex_observation *
harness_exec_at(const char *file, int line, struct swerex_client *c,
		const char *session, const char *command)
{
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;

	obs = harness_run(c, session, command, HARNESS_TIMEOUT,
			  SWEREX_CHECK_SILENT, &err);
	if (obs == NULL) {
		tap_diag(file, line, "run failed in session %s",
			 session ? session : "(default)");
		harness_show_bytes("command", command, strlen(command));
		harness_show_error("error", err);
		swerex_error_free(err);
	}
	return obs;
}

/* Run and check output (exactly) and exit code (-1: don't check). */
void
harness_check_run_at(const char *file, int line, struct swerex_client *c,
		     const char *session, const char *command,
		     const char *output, int exit_code)
{
	struct swerex_observation *obs;

	obs = harness_exec_at(file, line, c, session, command);
	if (obs == NULL)
		return;
	if (output != NULL && !tap_mem_eq(obs->output, obs->output_len, output)) {
		tap_diag(file, line, "output of the command differs");
		harness_show_bytes("command ", command, strlen(command));
		harness_show_bytes("got     ", obs->output, obs->output_len);
		harness_show_bytes("expected", output, strlen(output));
	}
	if (exit_code >= 0 && (!obs->has_exit_code || obs->exit_code != exit_code)) {
		tap_diag(file, line, "exit code %s%d, expected %d",
			 obs->has_exit_code ? "" : "(none) ", obs->exit_code, exit_code);
		harness_show_bytes("command", command, strlen(command));
	}
	swerex_observation_free(obs);
}

/* Run opts and expect an error of kind; return it, or NULL after a diagnostic. */
struct swerex_error *
harness_expect_error_at(const char *file, int line, struct swerex_client *c,
			const struct swerex_run_opts *opts,
			enum swerex_error_kind kind)
{
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	if (swerex_run(c, opts, &obs, &err) == 0) {
		tap_diag(file, line, "expected error %s, the run succeeded",
			 swerex_error_kind_name(kind));
		harness_show_bytes("command", opts->command, strlen(opts->command));
		harness_show_observation("observation", obs);
		swerex_observation_free(obs);
		return NULL;
	}
	if (err == NULL || err->kind != kind) {
		tap_diag(file, line, "expected error %s, got %s",
			 swerex_error_kind_name(kind),
			 err ? swerex_error_kind_name(err->kind) : "no error object");
		harness_show_bytes("command", opts->command, strlen(opts->command));
		harness_show_error("error", err);
		swerex_error_free(err);
		return NULL;
	}
	return err;
}

/* Pid of a session from list_sessions, or -1. */
int
harness_session_pid(struct swerex_client *c, const char *session)
{
	struct swerex_session_info *s = NULL;
	struct swerex_error *err = NULL;
	size_t n = 0, i;
	int pid = -1;

	if (session == NULL || *session == '\0')
		session = "default";
	if (swerex_list_sessions(c, &s, &n, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "list_sessions failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (s[i].name != NULL && strcmp(s[i].name, session) == 0)
			pid = s[i].pid;
	}
	swerex_sessions_free(s, n);
	return pid;
}

/* Whether the len bytes at p contain the C string s. */
bool
harness_contains(const char *p, size_t len, const char *s)
{
	return p != NULL && memmem(p, len, s, strlen(s)) != NULL;
}

/* Copy session infos deeply. */
static struct swerex_session_info *
harness_sessions_copy(const struct swerex_session_info *s, size_t n)
{
	struct swerex_session_info *copy;
	size_t i;

	copy = calloc(n ? n : 1, sizeof *copy);
	if (copy == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		copy[i] = s[i];
		copy[i].name = strdup(s[i].name ? s[i].name : "");
		copy[i].last_command = strdup(s[i].last_command ? s[i].last_command : "");
	}
	return copy;
}

/* Append a streamed chunk to a struct harness_chunks. */
void
harness_chunks_add(const char *data, size_t len, void *arg)
{
	struct harness_chunks *ch = arg;

	if (ch->len + len <= sizeof ch->buf) {
		memcpy(ch->buf + ch->len, data, len);
		ch->len += len;
	}
	ch->n++;
}

/* Record a final reply into the struct harness_reply passed as arg. */
void
harness_reply_cb(struct swerex_client *c, const struct swerex_reply *reply,
		 void *arg)
{
	struct harness_reply *r = arg;
	char *p;

	(void)c;
	if (reply->type == SWEREX_REPLY_CHUNK) {
		p = realloc(r->data, r->len + reply->len + 1);
		if (p == NULL)
			return;
		memcpy(p + r->len, reply->data, reply->len);
		r->data = p;
		r->len += reply->len;
		r->data[r->len] = '\0';
		return;
	}
	if (r->done)
		printf("# harness: a second final reply for request %llu\n",
		       (unsigned long long)reply->id);
	r->done = true;
	r->seq = ++harness_reply_seq;
	r->id = reply->id;
	r->type = reply->type;
	switch (reply->type) {
	case SWEREX_REPLY_ERROR:
		r->error = swerex_error_dup(reply->error);
		break;
	case SWEREX_REPLY_OBSERVATION:
		r->observation = swerex_observation_dup(reply->observation);
		break;
	case SWEREX_REPLY_SESSION_CREATED:
		free(r->data);
		r->data = malloc(reply->len + 1);
		if (r->data != NULL) {
			memcpy(r->data, reply->data, reply->len);
			r->data[reply->len] = '\0';
			r->len = reply->len;
		}
		break;
	case SWEREX_REPLY_ALIVE:
		r->is_alive = reply->is_alive;
		break;
	case SWEREX_REPLY_SESSIONS:
		r->sessions = harness_sessions_copy(reply->sessions, reply->n_sessions);
		r->n_sessions = reply->n_sessions;
		break;
	default:
		break;
	}
}

/* Free what a reply slot holds and zero it. */
void
harness_reply_clear(struct harness_reply *r)
{
	size_t i;

	swerex_error_free(r->error);
	swerex_observation_free(r->observation);
	free(r->data);
	for (i = 0; r->sessions != NULL && i < r->n_sessions; i++) {
		free(r->sessions[i].name);
		free(r->sessions[i].last_command);
	}
	free(r->sessions);
	memset(r, 0, sizeof *r);
}

/* Describe a reply slot in TAP comments. */
void
harness_reply_show(const char *label, const struct harness_reply *r)
{
	static const char *names[] = { "ERROR", "CHUNK", "ALIVE",
		"SESSION_CREATED", "OBSERVATION", "SESSION_CLOSED", "SESSIONS" };

	if (!r->done) {
		printf("#   %s: no reply yet\n", label);
		return;
	}
	printf("#   %s: reply #%u id %llu type %s\n", label, r->seq,
	       (unsigned long long)r->id,
	       (unsigned)r->type < sizeof names / sizeof names[0] ? names[r->type] : "?");
	if (r->error != NULL)
		harness_show_error("error", r->error);
	if (r->observation != NULL)
		harness_show_observation("observation", r->observation);
}

/* Mark a drive deadline as passed (timer callback). */
static void
harness_drive_expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Run base until done(arg) is true or timeout passes; return done(arg). */
bool
harness_drive_until(struct event_base *base, bool (*done)(void *), void *arg,
		    double timeout)
{
	struct event *timer;
	struct timeval tv;
	bool expired = false;

	timer = evtimer_new(base, harness_drive_expired, &expired);
	if (timer == NULL)
		return done(arg);
	tv.tv_sec = (time_t)timeout;
	tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
	evtimer_add(timer, &tv);
	while (!done(arg) && !expired) {
		if (event_base_loop(base, EVLOOP_ONCE) < 0)
			break;
	}
	event_free(timer);
	return done(arg);
}

struct harness_slots {
	struct harness_reply **slots;
	size_t n;
};

/* Whether every slot has its final reply. */
static bool
harness_slots_done(void *arg)
{
	struct harness_slots *s = arg;
	size_t i;

	for (i = 0; i < s->n; i++) {
		if (!s->slots[i]->done)
			return false;
	}
	return true;
}

/* Run base until every one of the n slots is done, or timeout seconds pass. */
bool
harness_drive(struct event_base *base, struct harness_reply **slots, size_t n,
	      double timeout)
{
	struct harness_slots s = { slots, n };

	return harness_drive_until(base, harness_slots_done, &s, timeout);
}

/* Wait until a process (not necessarily our child) has exited. */
bool
harness_pid_gone(pid_t pid, double timeout)
{
	struct pollfd pfd = { .events = POLLIN };
	int r;

	pfd.fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd.fd < 0)
		return errno == ESRCH;
	r = poll(&pfd, 1, (int)(timeout * 1000));
	close(pfd.fd);
	return r == 1;
}
