/*
 * Integration tests of swerex-tunnel ($SWEREX_TUNNEL). The end-to-end chain
 * is: client (libswerex, unix URL) -> forward tunnel (unix listen, TLS
 * connect) -> reverse tunnel (TLS listen on 127.0.0.1:0, unix connect) ->
 * swerexd (the harness's, on a Unix socket); one test also points the
 * forward tunnel at swerexd's own TLS listener. Certificates and tokens come
 * from contrib/swerex-certs.sh ($SWEREX_CERTS), made in the test's own temp
 * dir at test time.
 *
 * Tunnels are started with --ready-fd and waited for (LISTEN= tells the
 * port); every wait is bounded, and every tunnel a test started is stopped
 * (SIGTERM, must exit 0) and reaped when the test ends.
 * $SWEREX_TUNNEL_WRAP runs the tunnels under a tool (valgrind); timing and
 * memory checks are then expected to fail, exit statuses are what count.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "raw.h"
#include "tls.h"
#include "wire.h"

#define MIB (1024 * 1024)
/* Tunnels one test may run at once. */
#define TPROC_MAX 8

/* A swerex-tunnel process started by the current test. */
struct tproc {
	pid_t pid;
	int pidfd;
	bool reaped;
	bool exit_expected;	/* the test stopped it or waited for its exit */
	int status;
	char name[32];
	char log[PATH_MAX];
	char listen[256];	/* the first LISTEN= address */
};

static struct tproc *tprocs[TPROC_MAX];
static size_t n_tprocs;
static char tdir[PATH_MAX];	/* the current test's temp dir, or "" */

/* Declare a test: a daemon from the harness, tunnels reaped afterwards. */
static void tproc_reap_all(void);
#define TTEST_ARGS(name, args) \
	static void name##_body(struct harness *h); \
	static void name(void) { harness_test(#name, name##_body, (args)); \
		tproc_reap_all(); } \
	static void name##_body(struct harness *h)
#define TTEST(name) TTEST_ARGS(name, NULL)

/* A growing argument vector (NULL-terminated). */
struct args {
	const char *v[64];
	int n;
};

/* Append arguments up to a NULL. */
static void
args_add(struct args *a, ...)
{
	const char *s;
	va_list ap;

	va_start(ap, a);
	while ((s = va_arg(ap, const char *)) != NULL && a->n < 62)
		a->v[a->n++] = s;
	va_end(ap);
	a->v[a->n] = NULL;
}

/* Append a NULL-terminated vector (NULL is fine). */
static void
args_addv(struct args *a, const char *const *v)
{
	for (; v != NULL && *v != NULL && a->n < 62; v++)
		a->v[a->n++] = *v;
	a->v[a->n] = NULL;
}

/* Remove one file or directory (nftw callback). */
static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

/* The current test's temp dir (made on first use, short for socket paths). */
static const char *
tdir_get(void)
{
	if (tdir[0] == '\0') {
		snprintf(tdir, sizeof tdir, "/tmp/swerex-tun.XXXXXX");
		if (mkdtemp(tdir) == NULL) {
			tap_diag(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
			tdir[0] = '\0';
			return "/nonexistent";
		}
	}
	return tdir;
}

/* dir/name into buf. */
static const char *
join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	REQUIRE(n > 0 && (size_t)n < len);
	return buf;
}

/* Path of name in the test's temp dir. */
static const char *
tpath(char *buf, size_t len, const char *name)
{
	return join(buf, len, tdir_get(), name);
}

/* Milliseconds left until deadline, for poll(). */
static int
ms_left(double deadline)
{
	double left = deadline - harness_now();

	return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

/*
 * Fork and exec argv with stdout and stderr to log, a private HOME, no
 * token in the environment unless env sets one ("NAME=value" sets, "NAME"
 * unsets). With ready_w >= 0 it becomes the child's fd 3.
 */
static pid_t
spawn(const char *const *argv, const char *const *env, const char *log,
      int ready_w)
{
	pid_t parent = getpid(), pid;
	char home[PATH_MAX];
	sigset_t all, old;
	int logfd, nullfd, sig;

	tpath(home, sizeof home, "home");
	mkdir(home, 0700);
	logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fflush(NULL);
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		/* A tunnel must not outlive a test that crashed. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		for (sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		dup2(nullfd, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		if (ready_w >= 0) {
			if (ready_w == 3)
				fcntl(3, F_SETFD, 0);
			else
				dup2(ready_w, 3);
			closefrom(4);
		} else
			closefrom(3);
		setenv("HOME", home, 1);
		unsetenv("SWEREX_TOKEN");
		unsetenv("SWEREX_TOKEN_FILE");
		for (; env != NULL && *env != NULL; env++) {
			const char *eq = strchr(*env, '=');

			if (eq == NULL)
				unsetenv(*env);
			else {
				char name[128];

				snprintf(name, sizeof name, "%.*s",
				    (int)(eq - *env), *env);
				setenv(name, eq + 1, 1);
			}
		}
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execvp(argv[0], (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (logfd >= 0)
		close(logfd);
	if (nullfd >= 0)
		close(nullfd);
	return pid;
}

/* Wait for a child to exit within timeout; its wait status, or -1. */
static int
wait_child(pid_t pid, int pidfd, double timeout)
{
	double deadline = harness_now() + timeout;
	struct pollfd pfd;
	int st;
	pid_t r;

	for (;;) {
		do
			r = waitpid(pid, &st, WNOHANG);
		while (r < 0 && errno == EINTR);
		if (r == pid)
			return st;
		if (r < 0 || harness_now() >= deadline)
			return -1;
		if (pidfd >= 0) {
			pfd.fd = pidfd;
			pfd.events = POLLIN;
			poll(&pfd, 1, ms_left(deadline));
		} else
			poll(NULL, 0, 10);
	}
}

/* Read up to len - 1 bytes of a file into buf (NUL-terminated). */
static size_t
read_text(const char *path, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return 0;
	while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	return n;
}

/* Print the tail of a log as TAP comments. */
static void
print_log(const char *label, const char *path)
{
	static char buf[16384];
	char *p, *line;
	size_t n;
	int fd;
	off_t size;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0,
	    SEEK_SET);
	n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	printf("# %s log %s:\n", label, path);
	for (p = buf; (line = strsep(&p, "\n")) != NULL;)
		if (*line != '\0')
			printf("# | %s\n", line);
}

/*
 * Run the tunnel binary with args to completion (bad usage, start-up
 * errors); return its wait status (-1: it did not exit in time) and what it
 * printed in out.
 */
static int
tunnel_run(const char *const *args, const char *const *env, char *out,
	   size_t outlen)
{
	const char *bin = getenv("SWEREX_TUNNEL");
	struct args a = { .n = 0 };
	char log[PATH_MAX];
	int pidfd, st;
	pid_t pid;

	REQUIRE(bin != NULL && *bin != '\0');
	tpath(log, sizeof log, "run.log");
	unlink(log);
	args_add(&a, bin, NULL);
	args_addv(&a, args);
	pid = spawn(a.v, env, log, -1);
	REQUIRE(pid > 0);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	st = wait_child(pid, pidfd, 20);
	if (st == -1) {
		kill(pid, SIGKILL);
		wait_child(pid, pidfd, 10);
	}
	if (pidfd >= 0)
		close(pidfd);
	read_text(log, out, outlen);
	return st;
}

/* Whether a wait status is a normal exit with code. */
static bool
exited_with(int st, int code)
{
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == code;
}

/*
 * Put the words of $SWEREX_TUNNEL_WRAP first (e.g. "valgrind -q
 * --error-exitcode=99 --leak-check=full"): a tunnel that valgrind faults
 * then fails the test by not exiting 0. buf holds the words.
 */
static void
wrap_args(struct args *a, char *buf, size_t len)
{
	const char *w = getenv("SWEREX_TUNNEL_WRAP");
	char *p = buf, *word;

	if (w == NULL || *w == '\0')
		return;
	snprintf(buf, len, "%s", w);
	while ((word = strsep(&p, " ")) != NULL && a->n < 40)
		if (*word != '\0')
			a->v[a->n++] = word;
	a->v[a->n] = NULL;
}

/*
 * Start a tunnel with args and wait for READY=1 (the first LISTEN= address
 * goes to p->listen). NULL after a diagnostic when it did not get ready.
 */
static struct tproc *
tproc_start(const char *name, const char *const *args, const char *const *env)
{
	const char *bin = getenv("SWEREX_TUNNEL");
	struct args a = { .n = 0 };
	struct tproc *p;
	double deadline = harness_now() + 60;
	char buf[2048], wrap[1024], *l;
	struct pollfd pfd;
	size_t have = 0;
	ssize_t r;
	int fds[2];

	if (bin == NULL || *bin == '\0') {
		tap_diag(__FILE__, __LINE__, "SWEREX_TUNNEL is not set");
		return NULL;
	}
	if (n_tprocs == TPROC_MAX || (p = calloc(1, sizeof *p)) == NULL)
		return NULL;
	snprintf(p->name, sizeof p->name, "%s", name);
	snprintf(p->log, sizeof p->log, "%s/%s.%zu.log", tdir_get(), name,
	    n_tprocs);
	wrap_args(&a, wrap, sizeof wrap);
	args_add(&a, bin, "--ready-fd", "3", "--log-level", "debug", NULL);
	args_addv(&a, args);
	if (pipe2(fds, O_CLOEXEC) != 0) {
		free(p);
		return NULL;
	}
	p->pid = spawn(a.v, env, p->log, fds[1]);
	close(fds[1]);
	if (p->pid < 0) {
		close(fds[0]);
		free(p);
		return NULL;
	}
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	tprocs[n_tprocs++] = p;

	pfd.fd = fds[0];
	pfd.events = POLLIN;
	buf[0] = '\0';
	while (strstr(buf, "READY=1\n") == NULL) {
		if (poll(&pfd, 1, ms_left(deadline)) <= 0)
			break;
		r = read(fds[0], buf + have, sizeof buf - 1 - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
	}
	close(fds[0]);
	if (strstr(buf, "READY=1\n") == NULL) {
		tap_diag(__FILE__, __LINE__, "tunnel %s not ready (got \"%s\")",
		    name, buf);
		print_log(name, p->log);
		return NULL;
	}
	if ((l = strstr(buf, "LISTEN=")) != NULL)
		sscanf(l + 7, "%255[^\n]", p->listen);
	return p;
}

/* Send SIGTERM and reap: the wait status, or -1 (then it was killed). */
static int
tproc_stop(struct tproc *p)
{
	p->exit_expected = true;
	if (p->reaped)
		return p->status;
	kill(p->pid, SIGTERM);
	p->status = wait_child(p->pid, p->pidfd, 10);
	if (p->status == -1) {
		tap_diag(__FILE__, __LINE__, "tunnel %s did not exit within 10 s "
		    "of SIGTERM", p->name);
		kill(p->pid, SIGKILL);
		wait_child(p->pid, p->pidfd, 10);
	}
	p->reaped = true;
	return p->status;
}

/* Stop every tunnel of the test (each must exit 0), then clean up. */
static void
tproc_reap_all(void)
{
	struct tproc *p;
	size_t i;
	int st;

	for (i = 0; i < n_tprocs; i++) {
		p = tprocs[i];
		if (!p->reaped) {
			st = wait_child(p->pid, p->pidfd, 0);
			if (st != -1) {
				p->reaped = true;
				p->status = st;
				tap_diag(__FILE__, __LINE__, "tunnel %s exited "
				    "during the test (status 0x%x)", p->name, st);
			} else if (!exited_with(tproc_stop(p), 0))
				tap_diag(__FILE__, __LINE__, "tunnel %s did not "
				    "exit 0 on SIGTERM", p->name);
		}
	}
	for (i = 0; i < n_tprocs; i++) {
		p = tprocs[i];
		if (tap_failed_now)
			print_log(p->name, p->log);
		if (p->pidfd >= 0)
			close(p->pidfd);
		free(p);
	}
	n_tprocs = 0;
	if (tdir[0] != '\0')
		nftw(tdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	tdir[0] = '\0';
}

/* Make a certificate set in the temp dir (contrib/swerex-certs.sh). */
static const char *
certs_make(char *buf, size_t len, const char *sub, const char *const *opts)
{
	const char *script = getenv("SWEREX_CERTS");
	struct args a = { .n = 0 };
	char log[PATH_MAX];
	int pidfd, st;
	pid_t pid;

	REQUIRE(script != NULL && *script != '\0');
	tpath(buf, len, sub);
	tpath(log, sizeof log, "certs.log");
	args_add(&a, "/bin/bash", script, buf, NULL);
	args_addv(&a, opts);
	pid = spawn(a.v, NULL, log, -1);
	REQUIRE(pid > 0);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	st = wait_child(pid, pidfd, 60);
	if (pidfd >= 0)
		close(pidfd);
	if (!exited_with(st, 0)) {
		print_log("swerex-certs.sh", log);
		REQUIRE(exited_with(st, 0));
	}
	return buf;
}

/* Write a one-line file (a token). */
static void
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	REQUIRE(fd >= 0);
	REQUIRE(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

/* Start a reverse tunnel: TLS on 127.0.0.1:0 in front of the daemon. */
static struct tproc *
start_reverse(struct harness *h, const char *certs, const char *const *extra)
{
	char cert[PATH_MAX], key[PATH_MAX], token[PATH_MAX];
	struct args a = { .n = 0 };

	join(cert, sizeof cert, certs, "server.pem");
	join(key, sizeof key, certs, "server.key");
	join(token, sizeof token, certs, "token");
	args_add(&a, "--listen", "tls://127.0.0.1:0", "--cert", cert, "--key",
	    key, "--token-file", token, "--connect", harness_url(h), NULL);
	args_addv(&a, extra);
	return tproc_start("reverse", a.v, NULL);
}

/*
 * Start a forward tunnel on sock to addr, trusting certs/ca.pem, with
 * token_file (NULL: none).
 */
static struct tproc *
start_forward(const char *sock, const char *addr, const char *certs,
	      const char *token_file, const char *const *extra)
{
	char listen[PATH_MAX + 8], ca[PATH_MAX];
	struct args a = { .n = 0 };

	snprintf(listen, sizeof listen, "unix:%s", sock);
	join(ca, sizeof ca, certs, "ca.pem");
	args_add(&a, "--listen", listen, "--connect", addr, "--ca", ca, NULL);
	if (token_file != NULL)
		args_add(&a, "--token-file", token_file, NULL);
	args_addv(&a, extra);
	return tproc_start("forward", a.v, NULL);
}

/* Both tunnels in front of a test's daemon. */
struct chain {
	char certs[PATH_MAX];
	char token[PATH_MAX];
	char sock[PATH_MAX];
	char url[PATH_MAX + 8];
	int port;
	struct tproc *rev;
	struct tproc *fwd;
};

/* Start reverse then forward tunnel; the client URL is ch->url. */
static void
chain_start(struct harness *h, struct chain *ch, const char *const *rev_extra,
	    const char *const *fwd_extra)
{
	const char *colon;

	certs_make(ch->certs, sizeof ch->certs, "certs", NULL);
	join(ch->token, sizeof ch->token, ch->certs, "token");
	ch->rev = start_reverse(h, ch->certs, rev_extra);
	REQUIRE(ch->rev != NULL);
	REQUIRE(strncmp(ch->rev->listen, "tls://127.0.0.1:", 16) == 0);
	colon = strrchr(ch->rev->listen, ':');
	ch->port = atoi(colon + 1);
	REQUIRE(ch->port > 0);
	tpath(ch->sock, sizeof ch->sock, "fwd.sock");
	snprintf(ch->url, sizeof ch->url, "unix:%s", ch->sock);
	ch->fwd = start_forward(ch->sock, ch->rev->listen, ch->certs, ch->token,
	    fwd_extra);
	REQUIRE(ch->fwd != NULL);
	CHECK_STR(ch->fwd->listen, ch->url);
}

/* Connect a blocking client to url; NULL after a diagnostic. */
static struct swerex_client *
connect_url(const char *url)
{
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;

	if (swerex_connect(url, "tunnel-tests", &c, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "swerex_connect(%s) failed", url);
		harness_show_error("connect", err);
		swerex_error_free(err);
		return NULL;
	}
	return c;
}

/* Try to connect to url and return the error (NULL if it connected). */
static struct swerex_error *
connect_error(const char *url, double *took)
{
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;
	double t0 = harness_now();

	if (swerex_connect(url, "tunnel-tests", &c, &err) == 0) {
		swerex_client_free(c);
		*took = harness_now() - t0;
		return NULL;
	}
	*took = harness_now() - t0;
	return err;
}

/* A Hello request with a token (NULL: none) and client name. */
static void
hello_init(Swerex__V1__Request *req, Swerex__V1__Hello *hello, uint64_t id,
	   const char *token, const char *name)
{
	swerex__v1__request__init(req);
	swerex__v1__hello__init(hello);
	hello->protocol_version = SWEREX_PROTOCOL_VERSION;
	hello->client_name = (char *)(name != NULL ? name : "tunnel-tests-raw");
	if (token != NULL)
		hello->token = (char *)token;
	req->id = id;
	req->body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req->hello = hello;
}

/* Read a whole small file into a static buffer (a token). */
static const char *
file_text(const char *path)
{
	static char buf[8192];
	size_t n = read_text(path, buf, sizeof buf);

	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return buf;
}

/* "127.0.0.1:port" in a static buffer. */
static const char *
loopback(int port)
{
	static char buf[32];

	snprintf(buf, sizeof buf, "127.0.0.1:%d", port);
	return buf;
}

/*
 * A raw client over TLS to 127.0.0.1:port trusting ca, for frames libswerex
 * will not send; fd -1 after a diagnostic.
 */
static struct raw
tls_raw(int port, const char *ca)
{
	struct raw r = raw_connect_tcp(loopback(port));
	char err[512];
	SSL_CTX *ctx;

	if (r.fd < 0) {
		tap_diag(__FILE__, __LINE__, "connect to port %d: %s", port,
		    strerror(errno));
		return r;
	}
	if ((ctx = tls_client_ctx(ca, NULL, NULL, err, sizeof err)) == NULL) {
		tap_diag(__FILE__, __LINE__, "TLS client context: %s", err);
		raw_close(&r);
		return r;
	}
	/* The SSL keeps its own reference to the context. */
	if (!raw_start_tls(&r, ctx, "127.0.0.1")) {
		tls_error_string(err, sizeof err);
		tap_diag(__FILE__, __LINE__, "TLS handshake: %s", err);
		raw_close(&r);
	}
	SSL_CTX_free(ctx);
	return r;
}

/* Wait for EOF on a plain socket (reading and dropping data); true if seen. */
static bool
sock_wait_eof(int fd, double timeout)
{
	double deadline = harness_now() + timeout;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[4096];
	ssize_t r;

	for (;;) {
		if (poll(&pfd, 1, ms_left(deadline)) <= 0)
			return false;
		r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			return true;
	}
}

/* Whether an error's message contains s. */
static bool
error_says(const struct swerex_error *e, const char *s)
{
	return e != NULL && e->message != NULL && strstr(e->message, s) != NULL;
}

/* Run a command; fail the test and return false if the output differs. */
static bool
run_is(struct swerex_client *c, const char *session, const char *command,
       const char *want)
{
	struct swerex_observation *obs = harness_exec(c, session, command);
	bool ok;

	if (obs == NULL)
		return false;
	ok = tap_mem_eq(obs->output, obs->output_len, want);
	if (!ok) {
		tap_diag(__FILE__, __LINE__, "output of \"%s\" differs", command);
		tap_show("got     ", obs->output, obs->output_len);
		tap_show("expected", want, strlen(want));
	}
	swerex_observation_free(obs);
	return ok;
}

/* Write size bytes of a deterministic pattern to path. */
static void
make_file(const char *path, size_t size, unsigned seed)
{
	static unsigned char buf[65536];
	size_t done = 0, n, i;
	uint32_t x = seed * 2654435761u + 1;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	REQUIRE(fd >= 0);
	while (done < size) {
		n = size - done < sizeof buf ? size - done : sizeof buf;
		for (i = 0; i < n; i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (unsigned char)(x >> 16);
		}
		REQUIRE(write(fd, buf, n) == (ssize_t)n);
		done += n;
	}
	close(fd);
}

/* Whether two files have the same bytes. */
static bool
same_file(const char *a, const char *b)
{
	static char ba[65536], bb[65536];
	int fa = open(a, O_RDONLY | O_CLOEXEC), fb = open(b, O_RDONLY | O_CLOEXEC);
	ssize_t ra, rb;
	bool same = fa >= 0 && fb >= 0;

	while (same) {
		ra = read(fa, ba, sizeof ba);
		rb = read(fb, bb, sizeof bb);
		if (ra != rb || ra < 0 || memcmp(ba, bb, (size_t)ra) != 0)
			same = false;
		if (ra <= 0)
			break;
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return same;
}

/* Commands, streaming, an upload and a download through both tunnels. */
TTEST(chain_run_stream_transfer)
{
	struct chain ch = { .port = 0 };
	struct swerex_client *c;
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	struct harness_chunks chk = { .len = 0 };
	char src[PATH_MAX], sub[PATH_MAX], f[PATH_MAX], dst[PATH_MAX];
	char back[PATH_MAX], a[PATH_MAX], b[PATH_MAX];

	chain_start(h, &ch, NULL, NULL);
	c = connect_url(ch.url);
	REQUIRE(c != NULL);
	CHECK_STR(swerex_daemon_version(c), SWEREX_VERSION);
	REQUIRE(harness_create(c, "s") == 0);
	CHECK(run_is(c, "s", "echo hello; X=42", "hello\n"));
	CHECK(run_is(c, "s", "echo $X", "42\n"));

	/* Streamed chunks arrive through the tunnels and add up. */
	o.session = "s";
	o.command = "for i in 1 2 3; do echo line$i; sleep 0.05; done";
	o.check = SWEREX_CHECK_SILENT;
	o.on_chunk = harness_chunks_add;
	o.chunk_arg = &chk;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("stream", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	CHECK_MEM(obs->output, obs->output_len, "line1\nline2\nline3\n");
	CHECK_MEM(chk.buf, chk.len, "line1\nline2\nline3\n");
	CHECK(chk.n >= 2);
	swerex_observation_free(obs);

	/* A tree up and back down: a 3 MiB file, a small one, a subdir. */
	tpath(src, sizeof src, "tree");
	REQUIRE(mkdir(src, 0755) == 0);
	join(sub, sizeof sub, src, "sub");
	REQUIRE(mkdir(sub, 0755) == 0);
	join(f, sizeof f, src, "big.bin");
	make_file(f, 3 * MIB + 17, 1);
	join(f, sizeof f, src, "sub/small.txt");
	make_file(f, 100, 2);
	join(dst, sizeof dst, harness_dir(h), "up");
	if (swerex_upload(c, src, dst, NULL, NULL, &err) != 0) {
		harness_show_error("upload", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	join(a, sizeof a, src, "big.bin");
	join(b, sizeof b, dst, "big.bin");
	CHECK(same_file(a, b));
	tpath(back, sizeof back, "back");
	if (swerex_download(c, dst, back, NULL, NULL, &err) != 0) {
		harness_show_error("download", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	join(b, sizeof b, back, "big.bin");
	CHECK(same_file(a, b));
	join(a, sizeof a, src, "sub/small.txt");
	join(b, sizeof b, back, "sub/small.txt");
	CHECK(same_file(a, b));
	swerex_client_free(c);
}

#define N_SESSIONS 100

/*
 * Create, run and close n sessions in parallel through the tunnels with
 * the event-driven interface, spread over the clients in cs.
 */
static void
many_sessions(struct event_base *base, struct swerex_client **cs, size_t n_cs)
{
	struct harness_reply *r, *slots[N_SESSIONS];
	struct swerex_create_opts co = { 0 };
	struct swerex_run_opts o = { 0 };
	struct swerex_error *err = NULL;
	static char names[N_SESSIONS][16], cmds[N_SESSIONS][64];
	char want[32];
	int i, bad;

	r = calloc(N_SESSIONS, sizeof *r);
	REQUIRE(r != NULL);
	for (i = 0; i < N_SESSIONS; i++) {
		snprintf(names[i], sizeof names[i], "many-%d", i);
		co.session = names[i];
		slots[i] = &r[i];
		REQUIRE(swerex_submit_create_session(cs[(size_t)i % n_cs], &co,
		    harness_reply_cb, &r[i], &err) != 0);
	}
	if (!harness_drive(base, slots, N_SESSIONS, 120))
		tap_diag(__FILE__, __LINE__, "not every session was created");
	for (i = bad = 0; i < N_SESSIONS; i++) {
		if (r[i].type != SWEREX_REPLY_SESSION_CREATED && bad++ < 3)
			harness_reply_show(names[i], &r[i]);
		harness_reply_clear(&r[i]);
	}
	CHECK_INT(bad, 0);

	for (i = 0; i < N_SESSIONS; i++) {
		snprintf(cmds[i], sizeof cmds[i], "i=%d; echo $((i*i))", i);
		o.session = names[i];
		o.command = cmds[i];
		o.check = SWEREX_CHECK_SILENT;
		o.has_timeout = true;
		o.timeout = HARNESS_TIMEOUT;
		REQUIRE(swerex_submit_run(cs[(size_t)i % n_cs], &o, false,
		    harness_reply_cb, &r[i], &err) != 0);
	}
	if (!harness_drive(base, slots, N_SESSIONS, 120))
		tap_diag(__FILE__, __LINE__, "not every run was answered");
	for (i = bad = 0; i < N_SESSIONS; i++) {
		snprintf(want, sizeof want, "%d\n", i * i);
		if (r[i].type != SWEREX_REPLY_OBSERVATION ||
		    r[i].observation == NULL ||
		    !tap_mem_eq(r[i].observation->output,
		    r[i].observation->output_len, want)) {
			if (bad++ < 3)
				harness_reply_show(names[i], &r[i]);
		}
		harness_reply_clear(&r[i]);
	}
	CHECK_INT(bad, 0);

	for (i = 0; i < N_SESSIONS; i++)
		REQUIRE(swerex_submit_close_session(cs[(size_t)i % n_cs],
		    names[i], harness_reply_cb, &r[i], &err) != 0);
	if (!harness_drive(base, slots, N_SESSIONS, 120))
		tap_diag(__FILE__, __LINE__, "not every session was closed");
	for (i = bad = 0; i < N_SESSIONS; i++) {
		if (r[i].type != SWEREX_REPLY_SESSION_CLOSED && bad++ < 3)
			harness_reply_show(names[i], &r[i]);
		harness_reply_clear(&r[i]);
	}
	CHECK_INT(bad, 0);
	free(r);
}

/* Connect an event-driven client on base to url; NULL after a diagnostic. */
static struct swerex_client *
connect_base(struct event_base *base, const char *url)
{
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;

	if (swerex_connect_base(base, url, "tunnel-tests", &c, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "swerex_connect_base(%s) failed", url);
		harness_show_error("connect", err);
		swerex_error_free(err);
		return NULL;
	}
	return c;
}

/* 100 sessions over one tunnelled connection. */
TTEST(hundred_sessions_one_connection)
{
	struct chain ch = { .port = 0 };
	struct event_base *base;
	struct swerex_client *c;

	if (harness_under_valgrind())
		SKIP("valgrind: too slow for 100 sessions started at once");
	harness_watchdog(400);
	chain_start(h, &ch, NULL, NULL);
	base = event_base_new();
	REQUIRE(base != NULL);
	c = connect_base(base, ch.url);
	if (c != NULL) {
		many_sessions(base, &c, 1);
		CHECK_INT(swerex_pending(c), 0);
		swerex_client_free(c);
	}
	event_base_free(base);
}

/* 100 sessions over ten tunnelled connections, each its own TLS link. */
TTEST(hundred_sessions_ten_connections)
{
	struct chain ch = { .port = 0 };
	struct swerex_client *cs[10] = { NULL };
	struct event_base *base;
	size_t i;
	bool ok = true;

	if (harness_under_valgrind())
		SKIP("valgrind: too slow for 100 sessions started at once");
	harness_watchdog(400);
	chain_start(h, &ch, NULL, NULL);
	base = event_base_new();
	REQUIRE(base != NULL);
	for (i = 0; i < 10; i++)
		ok = ok && (cs[i] = connect_base(base, ch.url)) != NULL;
	if (ok)
		many_sessions(base, cs, 10);
	for (i = 0; i < 10; i++)
		swerex_client_free(cs[i]);
	event_base_free(base);
}

/*
 * A wrong token is refused with UNAUTHENTICATED at connect, and repeated
 * failures from one address are answered more and more slowly; a right
 * token still gets in at once.
 */
TTEST(wrong_token_unauthenticated)
{
	struct chain ch = { .port = 0 };
	struct swerex_error *err;
	struct swerex_client *c;
	char wrong[PATH_MAX], sock[PATH_MAX], url[PATH_MAX + 8];
	double took[3];
	int i;

	chain_start(h, &ch, NULL, NULL);
	tpath(wrong, sizeof wrong, "wrong-token");
	write_file(wrong, "not-the-token\n");
	tpath(sock, sizeof sock, "wrong.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, ch.rev->listen, ch.certs, wrong, NULL) != NULL);
	for (i = 0; i < 3; i++) {
		err = connect_error(url, &took[i]);
		CHECK(err != NULL && err->kind == SWEREX_ERR_UNAUTHENTICATED);
		CHECK(error_says(err, "invalid token"));
		if (err != NULL && err->kind != SWEREX_ERR_UNAUTHENTICATED)
			harness_show_error("wrong token", err);
		swerex_error_free(err);
	}
	printf("# failures answered after %.2f, %.2f, %.2f s\n", took[0],
	    took[1], took[2]);
	CHECK(took[0] >= 0.2 && took[1] >= 0.45 && took[2] >= 0.95);
	CHECK(took[2] < 5);
	/* The same address with the right token is not slowed down. */
	c = connect_url(ch.url);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, NULL) == 0);
	CHECK(run_is(c, NULL, "echo in", "in\n"));
	swerex_client_free(c);
}

/*
 * No token: a forward tunnel without one passes the client's empty token,
 * refused; a raw TLS peer without one gets UNAUTHENTICATED with the id of
 * its Hello, then EOF; a first request that is not a Hello is refused too;
 * the right token over raw TLS gets the daemon's HelloResponse.
 */
TTEST(missing_token)
{
	Swerex__V1__Request req;
	Swerex__V1__Hello hello;
	Swerex__V1__IsAliveRequest alive = SWEREX__V1__IS_ALIVE_REQUEST__INIT;
	Swerex__V1__Response *resp = NULL;
	struct chain ch = { .port = 0 };
	struct swerex_error *err;
	struct raw tc;
	char sock[PATH_MAX], url[PATH_MAX + 8], ca[PATH_MAX];
	double took;
	int r;

	chain_start(h, &ch, NULL, NULL);
	tpath(sock, sizeof sock, "notoken.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, ch.rev->listen, ch.certs, NULL, NULL) != NULL);
	err = connect_error(url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_UNAUTHENTICATED);
	swerex_error_free(err);

	join(ca, sizeof ca, ch.certs, "ca.pem");
	tc = tls_raw(ch.port, ca);
	REQUIRE(tc.fd >= 0);
	hello_init(&req, &hello, 7, NULL, NULL);
	REQUIRE(raw_send(&tc, &req));
	r = raw_recv(&tc, &resp, 10);
	CHECK_INT(r, 1);
	if (r == 1) {
		CHECK_INT(resp->id, 7);
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
		    resp->error->kind == SWEREX__V1__ERROR_KIND__UNAUTHENTICATED);
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
		    strcmp(resp->error->message, "invalid token") == 0);
		raw_resp_free(resp);
	}
	CHECK_INT(raw_recv(&tc, &resp, 10), 0);
	raw_close(&tc);

	tc = tls_raw(ch.port, ca);
	REQUIRE(tc.fd >= 0);
	swerex__v1__request__init(&req);
	req.id = 9;
	req.body_case = SWEREX__V1__REQUEST__BODY_IS_ALIVE;
	req.is_alive = &alive;
	REQUIRE(raw_send(&tc, &req));
	r = raw_recv(&tc, &resp, 10);
	CHECK_INT(r, 1);
	if (r == 1) {
		CHECK_INT(resp->id, 9);
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
		    resp->error->kind == SWEREX__V1__ERROR_KIND__UNAUTHENTICATED);
		raw_resp_free(resp);
	}
	CHECK_INT(raw_recv(&tc, &resp, 10), 0);
	raw_close(&tc);

	tc = tls_raw(ch.port, ca);
	REQUIRE(tc.fd >= 0);
	hello_init(&req, &hello, 3, file_text(ch.token), NULL);
	REQUIRE(raw_send(&tc, &req));
	r = raw_recv(&tc, &resp, 10);
	CHECK_INT(r, 1);
	if (r == 1) {
		CHECK_INT(resp->id, 3);
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO);
		raw_resp_show("hello with the token", resp);
		raw_resp_free(resp);
	}
	raw_close(&tc);
}

static const char *const quick_auth[] = { "--auth-timeout", "1", NULL };

/*
 * A slow-loris peer (one byte, then nothing) and a peer that finishes the
 * handshake but never says Hello are both closed by the auth deadline,
 * while an authenticated client keeps working meanwhile.
 */
TTEST(slow_loris_closed_by_deadline)
{
	struct chain ch = { .port = 0 };
	struct swerex_client *c;
	struct raw tc;
	Swerex__V1__Response *resp = NULL;
	char ca[PATH_MAX];
	struct raw loris_raw;
	double t0, took;
	int loris, i;

	chain_start(h, &ch, quick_auth, NULL);
	c = connect_url(ch.url);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "busy") == 0);

	loris_raw = raw_connect_tcp(loopback(ch.port));
	loris = loris_raw.fd;
	REQUIRE(loris >= 0);
	t0 = harness_now();
	REQUIRE(send(loris, "\x16", 1, MSG_NOSIGNAL) == 1);
	/* The authenticated client is served while the loris waits. */
	for (i = 0; i < 5; i++)
		CHECK(run_is(c, "busy", "echo ok", "ok\n"));
	CHECK(sock_wait_eof(loris, 10));
	took = harness_now() - t0;
	printf("# slow loris closed after %.2f s (auth timeout 1 s)\n", took);
	CHECK(took >= 0.9 && took < 5);
	raw_close(&loris_raw);

	join(ca, sizeof ca, ch.certs, "ca.pem");
	tc = tls_raw(ch.port, ca);
	REQUIRE(tc.fd >= 0);
	t0 = harness_now();
	CHECK_INT(raw_recv(&tc, &resp, 10), 0);
	took = harness_now() - t0;
	CHECK(took < 5);
	raw_close(&tc);
	CHECK(run_is(c, "busy", "echo still", "still\n"));
	swerex_client_free(c);
}

/*
 * Before authentication a frame may hold 8 KiB (as in swerexd, so a Hello
 * with the longest token fits): a header announcing more
 * closes the connection without waiting for the payload; a Hello just under
 * the limit is accepted.
 */
TTEST(preauth_frame_over_8k_closes)
{
	static const unsigned char big[5] = { 0, 0, 0, 0x27, 0x10 }; /* 10000 */
	static char name[8000];
	Swerex__V1__Request req;
	Swerex__V1__Hello hello;
	Swerex__V1__Response *resp = NULL;
	struct chain ch = { .port = 0 };
	struct raw tc;
	char ca[PATH_MAX];
	double t0;
	int r;

	chain_start(h, &ch, NULL, NULL);
	join(ca, sizeof ca, ch.certs, "ca.pem");
	tc = tls_raw(ch.port, ca);
	REQUIRE(tc.fd >= 0);
	t0 = harness_now();
	REQUIRE(raw_write(&tc, big, sizeof big));
	r = raw_recv(&tc, &resp, 10);
	if (r == 1) {
		raw_resp_show("answer to a 10000-byte frame", resp);
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
		    resp->error->kind == SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR);
		raw_resp_free(resp);
		r = raw_recv(&tc, &resp, 10);
	}
	CHECK_INT(r, 0);
	CHECK(harness_now() - t0 < 5);
	raw_close(&tc);

	memset(name, 'n', sizeof name - 1);
	tc = tls_raw(ch.port, ca);
	REQUIRE(tc.fd >= 0);
	hello_init(&req, &hello, 1, file_text(ch.token), name);
	CHECK(protobuf_c_message_get_packed_size(&req.base) < 8192);
	REQUIRE(raw_send(&tc, &req));
	r = raw_recv(&tc, &resp, 10);
	CHECK_INT(r, 1);
	if (r == 1) {
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO);
		raw_resp_free(resp);
	}
	raw_close(&tc);
}

/*
 * A forward tunnel that cannot verify the remote (another CA, a wrong
 * name, an expired certificate) closes the local connection at once: the
 * client's connect fails with SWEREX_ERR_CONNECT instead of hanging.
 */
TTEST(bad_remote_certificate_fails_connect)
{
	static const char *const wrong_name[] = { "--server-name",
		"not-the-server.example", NULL };
	const char *expired_opts[] = { "--expired", "--ca-from", NULL, NULL };
	struct chain ch = { .port = 0 };
	struct swerex_error *err;
	struct tproc *rev2;
	char other[PATH_MAX], expired[PATH_MAX], sock[PATH_MAX];
	char url[PATH_MAX + 8];
	double took;

	chain_start(h, &ch, NULL, NULL);
	certs_make(other, sizeof other, "other", NULL);
	tpath(sock, sizeof sock, "otherca.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, ch.rev->listen, other, ch.token, NULL) != NULL);
	err = connect_error(url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_CONNECT);
	harness_show_error("other CA", err);
	swerex_error_free(err);
	CHECK(took < 5);

	tpath(sock, sizeof sock, "name.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, ch.rev->listen, ch.certs, ch.token,
	    wrong_name) != NULL);
	err = connect_error(url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_CONNECT);
	swerex_error_free(err);
	CHECK(took < 5);

	/* An expired server certificate from the right CA. */
	expired_opts[2] = ch.certs;
	certs_make(expired, sizeof expired, "expired", expired_opts);
	rev2 = start_reverse(h, expired, NULL);
	REQUIRE(rev2 != NULL);
	tpath(sock, sizeof sock, "expired.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, rev2->listen, ch.certs, ch.token, NULL) != NULL);
	err = connect_error(url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_CONNECT);
	swerex_error_free(err);
	CHECK(took < 5);
	/* The good path still works. */
	err = connect_error(ch.url, &took);
	CHECK(err == NULL);
	swerex_error_free(err);
}

/* Whether a reply slot has data containing "started". */
static bool
saw_started(void *arg)
{
	const struct harness_reply *r = arg;

	return r->done || harness_contains(r->data, r->len, "started");
}

/* Whether a reply slot is done. */
static bool
reply_done(void *arg)
{
	return ((const struct harness_reply *)arg)->done;
}

/*
 * A network drop (the forward tunnel killed mid-command): the client fails
 * promptly with SWEREX_ERR_DISCONNECTED; the session lives on in the
 * daemon and is usable after a new tunnel starts and the client reconnects.
 */
TTEST(network_drop_session_survives)
{
	struct chain ch = { .port = 0 };
	struct harness_reply run = { .done = false };
	struct swerex_run_opts o = { 0 };
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	struct swerex_client *c, *ce;
	struct event_base *base;
	double t0, took;
	int pid, st;

	chain_start(h, &ch, NULL, NULL);
	c = connect_url(ch.url);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "keep") == 0);
	CHECK(run_is(c, "keep", "MARK=kept; echo set", "set\n"));
	pid = harness_session_pid(c, "keep");
	CHECK(pid > 0);
	swerex_client_free(c);

	base = event_base_new();
	REQUIRE(base != NULL);
	ce = connect_base(base, ch.url);
	REQUIRE(ce != NULL);
	o.session = "keep";
	o.command = "echo started; sleep 30";
	o.check = SWEREX_CHECK_SILENT;
	REQUIRE(swerex_submit_run(ce, &o, true, harness_reply_cb, &run,
	    &err) != 0);
	CHECK(harness_drive_until(base, saw_started, &run, 20));
	CHECK(!run.done);

	t0 = harness_now();
	st = tproc_stop(ch.fwd);
	CHECK(exited_with(st, 0));
	CHECK(harness_drive_until(base, reply_done, &run, 10));
	took = harness_now() - t0;
	printf("# client saw the drop %.3f s after SIGTERM\n", took);
	CHECK(took < 3);
	CHECK(run.done && run.type == SWEREX_REPLY_ERROR && run.error != NULL &&
	    run.error->kind == SWEREX_ERR_DISCONNECTED);
	if (run.error != NULL && run.error->kind != SWEREX_ERR_DISCONNECTED)
		harness_show_error("after the drop", run.error);
	harness_reply_clear(&run);
	swerex_client_free(ce);
	event_base_free(base);

	/* The daemon never noticed more than a closed connection. */
	CHECK(harness_running(h));
	ch.fwd = start_forward(ch.sock, ch.rev->listen, ch.certs, ch.token,
	    NULL);
	REQUIRE(ch.fwd != NULL);
	c = connect_url(ch.url);
	REQUIRE(c != NULL);
	CHECK_INT(harness_session_pid(c, "keep"), pid);
	io.session = "keep";
	if (swerex_interrupt(c, &io, &obs, &err) != 0) {
		harness_show_error("interrupt", err);
		swerex_error_free(err);
		err = NULL;
	}
	swerex_observation_free(obs);
	CHECK(run_is(c, "keep", "echo $MARK", "kept\n"));
	swerex_client_free(c);
}

/* A field of /proc/<pid>/status in kB (VmRSS, VmHWM), or -1. */
static long
status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':' &&
		    sscanf(line + n + 1, "%ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Bytes a process has read so far (rchar of /proc/<pid>/io), or -1. */
static long long
read_bytes(pid_t pid)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "rchar: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * Wait until both tunnels stop reading: neither reads a byte for a whole
 * half second (checked every 50 ms), within timeout. True if they did.
 */
static bool
wait_stalled(pid_t a, pid_t b, double timeout)
{
	double deadline = harness_now() + timeout, quiet_since = harness_now();
	long long ra = read_bytes(a), rb = read_bytes(b), na, nb;

	while (harness_now() < deadline) {
		poll(NULL, 0, 50);
		na = read_bytes(a);
		nb = read_bytes(b);
		if (na != ra || nb != rb) {
			ra = na;
			rb = nb;
			quiet_since = harness_now();
		} else if (harness_now() - quiet_since >= 0.5)
			return true;
	}
	return false;
}

/*
 * A client that does not read a large streamed output keeps the tunnels'
 * memory bounded: they stop reading, the daemon stops reading the command's
 * pipe, and everything arrives once the client reads again. The output is
 * an execute's (pipes): a session's pty streams too slowly (about 7 MB/s
 * in swerexd) to make 200 MB a quick test.
 */
TTEST(non_reading_client_bounded_memory)
{
	/* See test-files.c: RSS says nothing under ASan's quarantine. */
#ifdef __SANITIZE_ADDRESS__
	const long bound_kb = LONG_MAX;
#else
	const long bound_kb = 40 * 1024;
#endif
	const uint64_t total = 200000000;
	Swerex__V1__Request req;
	Swerex__V1__Hello hello;
	Swerex__V1__ExecuteRequest ex = SWEREX__V1__EXECUTE_REQUEST__INIT;
	Swerex__V1__Response *resp = NULL;
	struct chain ch = { .port = 0 };
	struct raw r;
	uint64_t got = 0, chunks = 0;
	long hwm_f, hwm_r, rss_f0, rss_r0;
	long long fwd_read;
	double t0, secs;
	int rr;

	harness_watchdog(400);
	chain_start(h, &ch, NULL, NULL);
	r = raw_connect(ch.sock);
	REQUIRE(r.fd >= 0);
	hello_init(&req, &hello, 1, NULL, NULL);
	REQUIRE(raw_send(&r, &req));
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO);
	raw_resp_free(resp);
	rss_f0 = status_kb(ch.fwd->pid, "VmRSS");
	rss_r0 = status_kb(ch.rev->pid, "VmRSS");

	swerex__v1__request__init(&req);
	req.id = 2;
	req.body_case = SWEREX__V1__REQUEST__BODY_EXECUTE;
	ex.command = "yes | head -c 200000000";
	ex.shell = true;
	ex.stream = true;
	ex.has_max_output_case =
	    SWEREX__V1__EXECUTE_REQUEST__HAS_MAX_OUTPUT_MAX_OUTPUT;
	ex.max_output = 65536;
	req.execute = &ex;
	REQUIRE(raw_send(&r, &req));
	/* The client reads nothing until the tunnels have stopped reading. */
	CHECK(wait_stalled(ch.fwd->pid, ch.rev->pid, 60));
	hwm_f = status_kb(ch.fwd->pid, "VmHWM");
	hwm_r = status_kb(ch.rev->pid, "VmHWM");
	fwd_read = read_bytes(ch.fwd->pid);
	printf("# stalled: forward VmRSS %ld -> %ld kB (HWM %ld), reverse VmRSS "
	    "%ld -> %ld kB (HWM %ld), forward read %lld bytes\n", rss_f0,
	    status_kb(ch.fwd->pid, "VmRSS"), hwm_f, rss_r0,
	    status_kb(ch.rev->pid, "VmRSS"), hwm_r, fwd_read);
	CHECK(hwm_f > 0 && hwm_f < bound_kb);
	CHECK(hwm_r > 0 && hwm_r < bound_kb);
	/* Far less than the output went through while the client slept. */
	CHECK(fwd_read > 0 && fwd_read < (long long)(total / 10));

	t0 = harness_now();
	for (;;) {
		rr = raw_recv(&r, &resp, 60);
		if (rr != 1)
			break;
		if (resp->id == 2 &&
		    resp->body_case == SWEREX__V1__RESPONSE__BODY_CHUNK) {
			got += resp->chunk->data.len;
			chunks++;
			raw_resp_free(resp);
			continue;
		}
		break;
	}
	secs = harness_now() - t0;
	CHECK_INT(rr, 1);
	REQUIRE(rr == 1);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_EXECUTE);
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_EXECUTE) {
		CHECK_INT(resp->execute->stdout_bytes, total);
		CHECK(resp->execute->stdout_truncated);
	} else
		raw_resp_show("final", resp);
	raw_resp_free(resp);
	CHECK_INT(got, total);
	hwm_f = status_kb(ch.fwd->pid, "VmHWM");
	hwm_r = status_kb(ch.rev->pid, "VmHWM");
	printf("# then %llu bytes in %llu chunks in %.2f s (%.0f MB/s); HWM "
	    "forward %ld kB, reverse %ld kB\n", (unsigned long long)got,
	    (unsigned long long)chunks, secs, got / 1e6 / secs, hwm_f, hwm_r);
	CHECK(hwm_f < bound_kb && hwm_r < bound_kb);
	raw_close(&r);
}

/* Count streamed bytes (on_chunk). */
static void
count_bytes(const char *data, size_t len, void *arg)
{
	*(uint64_t *)arg += len;
}

/* Count streamed bytes of an execute (on_output). */
static void
count_output(int stream, const char *data, size_t len, void *arg)
{
	*(uint64_t *)arg += len;
}

/* Time n is_alive round trips; seconds per round trip. */
static double
time_alive(struct swerex_client *c, int n)
{
	double t0 = harness_now();
	bool alive;
	char *msg;
	int i;

	for (i = 0; i < n; i++) {
		msg = NULL;
		if (swerex_is_alive(c, &alive, &msg, NULL) != 0)
			return -1;
		free(msg);
	}
	return (harness_now() - t0) / n;
}

/* Time n runs of "echo x"; seconds per run. */
static double
time_echo(struct swerex_client *c, int n)
{
	double t0 = harness_now();
	int i;

	for (i = 0; i < n; i++)
		if (!run_is(c, "m", "echo x", "x\n"))
			return -1;
	return (harness_now() - t0) / n;
}

/* Stream bytes of yes through an execute (pipes); MB/s, or -1. */
static double
time_exec_stream(struct swerex_client *c, uint64_t bytes)
{
	struct swerex_exec_opts o = { 0 };
	struct swerex_exec_result *res = NULL;
	struct swerex_error *err = NULL;
	char cmd[64];
	uint64_t got = 0;
	double t0 = harness_now(), secs;

	snprintf(cmd, sizeof cmd, "yes | head -c %llu",
	    (unsigned long long)bytes);
	o.command = cmd;
	o.shell = true;
	o.max_output = 65536;
	o.on_output = count_output;
	o.output_arg = &got;
	if (swerex_execute(c, &o, &res, &err) != 0) {
		harness_show_error("execute", err);
		swerex_error_free(err);
		return -1;
	}
	secs = harness_now() - t0;
	CHECK_INT(got, bytes);
	CHECK_INT(res->stdout_bytes, bytes);
	swerex_exec_result_free(res);
	return bytes / 1e6 / secs;
}

/* Stream bytes of yes through a session's run (pty); MB/s, or -1. */
static double
time_run_stream(struct swerex_client *c, uint64_t bytes)
{
	struct swerex_run_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;
	char cmd[64];
	uint64_t got = 0;
	double t0 = harness_now(), secs;

	snprintf(cmd, sizeof cmd, "yes | head -c %llu",
	    (unsigned long long)bytes);
	o.session = "m";
	o.command = cmd;
	o.check = SWEREX_CHECK_SILENT;
	o.max_output = 65536;
	o.on_chunk = count_bytes;
	o.chunk_arg = &got;
	if (swerex_run(c, &o, &obs, &err) != 0) {
		harness_show_error("run", err);
		swerex_error_free(err);
		return -1;
	}
	secs = harness_now() - t0;
	CHECK_INT(got, bytes);
	CHECK_INT(obs->output_bytes, bytes);
	swerex_observation_free(obs);
	return bytes / 1e6 / secs;
}

/*
 * Measure round trips and streamed throughput directly and through both
 * tunnels (printed; the test checks that every byte arrives).
 */
TTEST(measure_direct_vs_tunnels)
{
#ifdef __SANITIZE_ADDRESS__
	const uint64_t exec_bytes = 50000000, run_bytes = 2000000;
#else
	const uint64_t exec_bytes = 200000000, run_bytes = 20000000;
#endif
	struct chain ch = { .port = 0 };
	struct swerex_client *d = harness_client(h), *t;
	double ad, at, ed, et, xd, xt, rd, rt;

	harness_watchdog(400);
	chain_start(h, &ch, NULL, NULL);
	t = connect_url(ch.url);
	REQUIRE(t != NULL);
	REQUIRE(harness_create(d, "m") == 0);
	ad = time_alive(d, 500);
	at = time_alive(t, 500);
	ed = time_echo(d, 100);
	et = time_echo(t, 100);
	xd = time_exec_stream(d, exec_bytes);
	xt = time_exec_stream(t, exec_bytes);
	rd = time_run_stream(d, run_bytes);
	rt = time_run_stream(t, run_bytes);
	printf("# is_alive round trip: direct %.0f us, through both tunnels "
	    "%.0f us\n", ad * 1e6, at * 1e6);
	printf("# run \"echo x\": direct %.2f ms, through both tunnels %.2f ms\n",
	    ed * 1e3, et * 1e3);
	printf("# execute streaming %llu bytes (pipes): direct %.0f MB/s, "
	    "through both tunnels %.0f MB/s\n", (unsigned long long)exec_bytes,
	    xd, xt);
	printf("# run streaming %llu bytes (pty): direct %.1f MB/s, through "
	    "both tunnels %.1f MB/s\n", (unsigned long long)run_bytes, rd, rt);
	CHECK(ad > 0 && at > 0 && ed > 0 && et > 0 && xd > 0 && xt > 0 &&
	    rd > 0 && rt > 0);
	swerex_client_free(t);
}

/* SIGTERM: exit 0, the socket file removed; live and stale socket rules. */
TTEST(sigterm_and_socket_rules)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct chain ch = { .port = 0 };
	struct stat st;
	struct tproc *p;
	char out[4096], listen[PATH_MAX + 8], stale[PATH_MAX];
	const char *args[8];
	int fd;

	chain_start(h, &ch, NULL, NULL);
	REQUIRE(stat(ch.sock, &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0600);

	/* A second tunnel on the live socket refuses to start. */
	snprintf(listen, sizeof listen, "unix:%s", ch.sock);
	args[0] = "--listen";
	args[1] = listen;
	args[2] = "--connect";
	args[3] = ch.rev->listen;
	args[4] = NULL;
	CHECK(exited_with(tunnel_run(args, NULL, out, sizeof out), 1));
	CHECK(strstr(out, "in use") != NULL);
	CHECK(stat(ch.sock, &st) == 0);

	CHECK(exited_with(tproc_stop(ch.fwd), 0));
	CHECK(stat(ch.sock, &st) != 0 && errno == ENOENT);
	CHECK(exited_with(tproc_stop(ch.rev), 0));

	/* A stale socket file (nobody listening) is replaced. */
	tpath(stale, sizeof stale, "stale.sock");
	REQUIRE(strlen(stale) < sizeof sa.sun_path);
	memcpy(sa.sun_path, stale, strlen(stale) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	close(fd);
	p = start_forward(stale, "tls://127.0.0.1:1", ch.certs, NULL, NULL);
	REQUIRE(p != NULL);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	close(fd);
	CHECK(exited_with(tproc_stop(p), 0));
	CHECK(access(stale, F_OK) != 0);

	/* A path that is not a socket is never replaced. */
	write_file(stale, "precious\n");
	snprintf(listen, sizeof listen, "unix:%s", stale);
	args[1] = listen;
	CHECK(exited_with(tunnel_run(args, NULL, out, sizeof out), 1));
	CHECK(strstr(out, "not a socket") != NULL);
	CHECK_STR(file_text(stale), "precious");
}

static const char *const one_conn[] = { "--max-connections", "1", NULL };

/*
 * --max-connections: a connection beyond the limit is closed at once (the
 * client's connect fails, nothing hangs) and the one inside keeps working;
 * once it is gone, a new one gets in.
 */
TTEST(connection_limit)
{
	struct chain ch = { .port = 0 };
	struct swerex_client *a, *b = NULL;
	struct swerex_error *err;
	double took, deadline;

	chain_start(h, &ch, NULL, one_conn);
	a = connect_url(ch.url);
	REQUIRE(a != NULL);
	REQUIRE(harness_create(a, "one") == 0);
	err = connect_error(ch.url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_CONNECT);
	swerex_error_free(err);
	CHECK(took < 2);
	CHECK(run_is(a, "one", "echo still", "still\n"));
	swerex_client_free(a);
	/* The tunnel frees the slot when it sees the EOF: retry until then. */
	deadline = harness_now() + 10;
	while (b == NULL && harness_now() < deadline) {
		struct swerex_error *e = NULL;

		if (swerex_connect(ch.url, "tunnel-tests", &b, &e) != 0) {
			swerex_error_free(e);
			b = NULL;
			poll(NULL, 0, 10);
		}
	}
	REQUIRE(b != NULL);
	CHECK(run_is(b, "one", "echo next", "next\n"));
	swerex_client_free(b);
}

/* Expect the tunnel to exit with code and print want (NULL: anything). */
static void
expect_exit_at(int line, int code, const char *want, const char *const *env,
	       const char *const *args)
{
	char out[16384];
	int st = tunnel_run(args, env, out, sizeof out);

	if (!exited_with(st, code)) {
		tap_diag(__FILE__, line, "expected exit %d, got status 0x%x", code,
		    st);
		printf("#   output: %s\n", out);
	} else if (want != NULL && strstr(out, want) == NULL) {
		tap_diag(__FILE__, line, "output lacks \"%s\"", want);
		printf("#   output: %s\n", out);
	}
}
#define EXPECT_EXIT(code, want, env, ...) do { \
	const char *const _a[] = { __VA_ARGS__, NULL }; \
	expect_exit_at(__LINE__, (code), (want), (env), _a); } while (0)

/* Bad usage exits 2, start-up errors exit 1, each with a clear message. */
TTEST(usage_and_startup_errors)
{
	static const char *const options[] = { "--listen", "--connect", "--ca",
		"--server-name", "--cert", "--key", "--client-ca", "--token-file",
		"--insecure", "--auth-timeout", "--connect-timeout",
		"--keepalive", "--max-connections", "--ready-fd", "--log-level",
		"--help", "--version", "SWEREX_TOKEN", "SWEREX_TOKEN_FILE",
		NULL };
	static const char *const no_args[] = { NULL };
	static const char *const help[] = { "--help", NULL };
	static const char *const with_token[] = { "--listen", "unix:/tmp/x.sock",
		"--connect", "tls://127.0.0.1:1", "--token", "s3cr3t", NULL };
	char out[16384], certs[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	char token_env[PATH_MAX + 32], tok[PATH_MAX];
	const char *env[2] = { NULL, NULL };
	size_t i;

	CHECK(exited_with(tunnel_run(no_args, NULL, out, sizeof out), 2));
	CHECK(strstr(out, "--listen") != NULL);
	CHECK(exited_with(tunnel_run(help, NULL, out, sizeof out), 0));
	for (i = 0; options[i] != NULL; i++)
		if (strstr(out, options[i]) == NULL)
			tap_diag(__FILE__, __LINE__, "--help does not mention %s",
			    options[i]);
	EXPECT_EXIT(0, "swerex-tunnel " SWEREX_VERSION, NULL, "--version");
	EXPECT_EXIT(2, "unrecognized", NULL, "--bogus");
	/* Not even taken for --token-file, nor repeated in the message. */
	CHECK(exited_with(tunnel_run(with_token, NULL, out, sizeof out), 2));
	CHECK(strstr(out, "never taken from the command line") != NULL);
	CHECK(strstr(out, "s3cr3t") == NULL);
	EXPECT_EXIT(2, "--connect", NULL, "--listen", "unix:/tmp/x.sock");
	EXPECT_EXIT(2, "forward", NULL, "--listen", "unix:/tmp/x.sock",
	    "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(2, "unsupported address", NULL, "--listen", "http://x:1",
	    "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(2, "HOST:PORT", NULL, "--listen", "tls://nohost",
	    "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(2, "--auth-timeout", NULL, "--listen", "tls://127.0.0.1:0",
	    "--connect", "unix:/tmp/y.sock", "--auth-timeout", "0");
	EXPECT_EXIT(2, "--client-ca", NULL, "--listen", "unix:/tmp/x.sock",
	    "--connect", "tls://127.0.0.1:1", "--client-ca", "/dev/null");
	EXPECT_EXIT(2, "unexpected argument", NULL, "--listen",
	    "unix:/tmp/x.sock", "--connect", "tls://127.0.0.1:1", "extra");

	certs_make(certs, sizeof certs, "certs", NULL);
	join(cert, sizeof cert, certs, "server.pem");
	join(key, sizeof key, certs, "server.key");
	join(tok, sizeof tok, certs, "token");
	EXPECT_EXIT(1, "needs a token", NULL, "--listen", "tls://127.0.0.1:0",
	    "--cert", cert, "--key", key, "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(1, "certificate and a key", NULL, "--listen",
	    "tls://127.0.0.1:0", "--token-file", tok, "--connect",
	    "unix:/tmp/y.sock");
	EXPECT_EXIT(1, "cannot load the certificate", NULL, "--listen",
	    "tls://127.0.0.1:0", "--cert", "/nonexistent.pem", "--key", key,
	    "--token-file", tok, "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(1, "token file", NULL, "--listen", "tls://127.0.0.1:0",
	    "--cert", cert, "--key", key, "--token-file", "/nonexistent",
	    "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(1, "--insecure", NULL, "--listen", "tcp://127.0.0.1:0",
	    "--token-file", tok, "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(1, "loopback", NULL, "--listen", "tcp://0.0.0.0:0",
	    "--insecure", "--token-file", tok, "--connect", "unix:/tmp/y.sock");
	EXPECT_EXIT(1, "cannot load the CA", NULL, "--listen",
	    "unix:/tmp/x-tunnel-test.sock", "--connect", "tls://127.0.0.1:1",
	    "--ca", "/nonexistent.pem");
	/* The token may come from the environment, never the command line. */
	snprintf(token_env, sizeof token_env, "SWEREX_TOKEN_FILE=%s", "/nonexistent");
	env[0] = token_env;
	EXPECT_EXIT(1, "token file /nonexistent", env, "--listen",
	    "tls://127.0.0.1:0", "--cert", cert, "--key", key, "--connect",
	    "unix:/tmp/y.sock");
}

/*
 * Plain TCP on loopback with --insecure: the token is still required, and
 * the token may come from $SWEREX_TOKEN.
 */
TTEST(insecure_tcp_loopback)
{
	char url[PATH_MAX + 8];
	Swerex__V1__Request req;
	Swerex__V1__Hello hello;
	Swerex__V1__Response *resp = NULL;
	struct tproc *p;
	struct raw r;
	const char *args[8];
	static const char *const env[] = { "SWEREX_TOKEN=plain-secret", NULL };
	int port, rr;

	snprintf(url, sizeof url, "%s", harness_url(h));
	args[0] = "--listen";
	args[1] = "tcp://127.0.0.1:0";
	args[2] = "--insecure";
	args[3] = "--connect";
	args[4] = url;
	args[5] = NULL;
	p = tproc_start("insecure", args, env);
	REQUIRE(p != NULL);
	REQUIRE(strncmp(p->listen, "tcp://127.0.0.1:", 16) == 0);
	port = atoi(strrchr(p->listen, ':') + 1);

	r = raw_connect_tcp(loopback(port));
	REQUIRE(r.fd >= 0);
	hello_init(&req, &hello, 5, "wrong", NULL);
	REQUIRE(raw_send(&r, &req));
	rr = raw_recv(&r, &resp, 10);
	CHECK_INT(rr, 1);
	if (rr == 1) {
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
		    resp->error->kind == SWEREX__V1__ERROR_KIND__UNAUTHENTICATED);
		raw_resp_free(resp);
	}
	raw_close(&r);

	r = raw_connect_tcp(loopback(port));
	REQUIRE(r.fd >= 0);
	hello_init(&req, &hello, 6, "plain-secret", NULL);
	REQUIRE(raw_send(&r, &req));
	rr = raw_recv(&r, &resp, 10);
	CHECK_INT(rr, 1);
	if (rr == 1) {
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO);
		raw_resp_free(resp);
	}
	raw_close(&r);
}

/* A free TCP port on 127.0.0.1 (bound and released; racy but local). */
static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static const char *const short_connect[] = { "--connect-timeout", "1.5", NULL };

/*
 * A remote that is not there yet: the forward tunnel keeps retrying, and
 * the client's Hello goes through once the remote appears; a remote that
 * never appears closes the local connection after --connect-timeout.
 */
TTEST(connect_retry_then_give_up)
{
	Swerex__V1__Request req;
	Swerex__V1__Hello hello;
	Swerex__V1__Response *resp = NULL;
	char certs[PATH_MAX], token[PATH_MAX], sock[PATH_MAX], addr[64];
	char cert[PATH_MAX], key[PATH_MAX], listen[80], url[PATH_MAX + 8];
	struct swerex_error *err;
	struct tproc *rev;
	struct raw r;
	const char *args[16];
	double took;
	int port, rr;

	certs_make(certs, sizeof certs, "certs", NULL);
	join(token, sizeof token, certs, "token");
	port = free_port();
	REQUIRE(port > 0);
	snprintf(addr, sizeof addr, "tls://127.0.0.1:%d", port);
	tpath(sock, sizeof sock, "retry.sock");
	REQUIRE(start_forward(sock, addr, certs, token, NULL) != NULL);

	r = raw_connect(sock);
	REQUIRE(r.fd >= 0);
	hello_init(&req, &hello, 1, NULL, NULL);
	REQUIRE(raw_send(&r, &req));
	/* Nothing can answer yet: the remote does not exist. */
	CHECK_INT(raw_recv(&r, &resp, 0.3), -1);
	join(cert, sizeof cert, certs, "server.pem");
	join(key, sizeof key, certs, "server.key");
	snprintf(listen, sizeof listen, "tls://127.0.0.1:%d", port);
	args[0] = "--listen";
	args[1] = listen;
	args[2] = "--cert";
	args[3] = cert;
	args[4] = "--key";
	args[5] = key;
	args[6] = "--token-file";
	args[7] = token;
	args[8] = "--connect";
	args[9] = harness_url(h);
	args[10] = NULL;
	rev = tproc_start("reverse", args, NULL);
	REQUIRE(rev != NULL);
	rr = raw_recv(&r, &resp, 10);
	CHECK_INT(rr, 1);
	if (rr == 1) {
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO);
		raw_resp_free(resp);
	}
	raw_close(&r);

	/* Nobody ever listens here: EOF after the connect timeout. */
	port = free_port();
	snprintf(addr, sizeof addr, "tls://127.0.0.1:%d", port);
	tpath(sock, sizeof sock, "never.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, addr, certs, token, short_connect) != NULL);
	err = connect_error(url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_CONNECT);
	swerex_error_free(err);
	printf("# gave up after %.2f s (--connect-timeout 1.5)\n", took);
	CHECK(took >= 1.0 && took < 5);
}

/*
 * Mutual TLS: with --client-ca the reverse tunnel refuses a forward tunnel
 * without a client certificate and accepts one that has it.
 */
TTEST(mutual_tls)
{
	struct chain ch = { .port = 0 };
	struct swerex_client *c;
	struct swerex_error *err;
	struct tproc *rev;
	char ca[PATH_MAX], ccert[PATH_MAX], ckey[PATH_MAX], sock[PATH_MAX];
	char url[PATH_MAX + 8];
	const char *extra[8];
	double took;

	chain_start(h, &ch, NULL, NULL);
	join(ca, sizeof ca, ch.certs, "ca.pem");
	extra[0] = "--client-ca";
	extra[1] = ca;
	extra[2] = NULL;
	rev = start_reverse(h, ch.certs, extra);
	REQUIRE(rev != NULL);

	tpath(sock, sizeof sock, "nocert.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, rev->listen, ch.certs, ch.token, NULL) != NULL);
	err = connect_error(url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_CONNECT);
	swerex_error_free(err);
	CHECK(took < 5);

	join(ccert, sizeof ccert, ch.certs, "client.pem");
	join(ckey, sizeof ckey, ch.certs, "client.key");
	extra[0] = "--cert";
	extra[1] = ccert;
	extra[2] = "--key";
	extra[3] = ckey;
	extra[4] = NULL;
	tpath(sock, sizeof sock, "cert.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, rev->listen, ch.certs, ch.token, extra) != NULL);
	c = connect_url(url);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, NULL) == 0);
	CHECK(run_is(c, NULL, "echo mtls", "mtls\n"));
	swerex_client_free(c);
}

/* Whether the tunnel's log has a line containing s (within timeout). */
static bool
log_shows(const struct tproc *p, const char *s, double timeout)
{
	static char buf[65536];
	double deadline = harness_now() + timeout;

	for (;;) {
		read_text(p->log, buf, sizeof buf);
		if (strstr(buf, s) != NULL)
			return true;
		if (harness_now() >= deadline)
			return false;
		poll(NULL, 0, 20);
	}
}

/*
 * SIGHUP reloads the token: new connections need the new one, a connection
 * made before keeps working.
 */
TTEST(sighup_reloads_token)
{
	struct chain ch = { .port = 0 };
	struct swerex_client *before, *c;
	struct swerex_error *err;
	char newtok[PATH_MAX], sock[PATH_MAX], url[PATH_MAX + 8];
	double took;

	chain_start(h, &ch, NULL, NULL);
	before = connect_url(ch.url);
	REQUIRE(before != NULL);
	tpath(newtok, sizeof newtok, "new-token");
	write_file(newtok, "rotated-token\n");
	/* The reverse tunnel reads its token file again: put the new one there. */
	write_file(ch.token, "rotated-token\n");
	REQUIRE(kill(ch.rev->pid, SIGHUP) == 0);
	/* The reload is a loop event: its log line says it happened. */
	CHECK(log_shows(ch.rev, "reloaded certificates and token", 10));

	/* The forward tunnel still holds the old token in memory. */
	err = connect_error(ch.url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_UNAUTHENTICATED);
	swerex_error_free(err);
	tpath(sock, sizeof sock, "new.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, ch.rev->listen, ch.certs, newtok, NULL) != NULL);
	c = connect_url(url);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, NULL) == 0);
	CHECK(run_is(c, NULL, "echo new", "new\n"));
	swerex_client_free(c);
	CHECK(run_is(before, NULL, "echo old", "old\n"));
	swerex_client_free(before);
}

/*
 * A forward tunnel straight to swerexd's own TLS listener: the tunnel's
 * token gets the client in, a wrong one is refused by the daemon itself,
 * and a network drop leaves the session usable.
 */
TTEST(forward_to_daemon_tls_listener)
{
	struct swerex_client *c;
	struct swerex_error *err;
	struct harness *d;
	struct tproc *fwd;
	char certs[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], token[PATH_MAX];
	char wrong[PATH_MAX], sock[PATH_MAX], url[PATH_MAX + 8];
	const char *args[12], *addr;
	double took;
	int pid;

	certs_make(certs, sizeof certs, "certs", NULL);
	join(cert, sizeof cert, certs, "server.pem");
	join(key, sizeof key, certs, "server.key");
	join(token, sizeof token, certs, "token");
	args[0] = "--listen";
	args[1] = "tls://127.0.0.1:0";
	args[2] = "--tls-cert";
	args[3] = cert;
	args[4] = "--tls-key";
	args[5] = key;
	args[6] = "--token-file";
	args[7] = token;
	args[8] = NULL;
	d = harness_spawn(NULL, args);
	REQUIRE(d != NULL);
	REQUIRE(harness_wait_ready(d, 20) == 1);
	addr = harness_listen(d, "tls://");
	REQUIRE(addr != NULL);

	tpath(sock, sizeof sock, "direct.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	fwd = start_forward(sock, addr, certs, token, NULL);
	REQUIRE(fwd != NULL);
	c = connect_url(url);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "tls") == 0);
	CHECK(run_is(c, "tls", "cd /tmp; echo $PWD", "/tmp\n"));
	pid = harness_session_pid(c, "tls");
	swerex_client_free(c);

	/* A drop between the tunnel and the daemon: the session stays. */
	CHECK(exited_with(tproc_stop(fwd), 0));
	fwd = start_forward(sock, addr, certs, token, NULL);
	REQUIRE(fwd != NULL);
	c = connect_url(url);
	REQUIRE(c != NULL);
	CHECK_INT(harness_session_pid(c, "tls"), pid);
	CHECK(run_is(c, "tls", "pwd", "/tmp\n"));
	swerex_client_free(c);

	tpath(wrong, sizeof wrong, "wrong-token");
	write_file(wrong, "nope\n");
	tpath(sock, sizeof sock, "wrong.sock");
	snprintf(url, sizeof url, "unix:%s", sock);
	REQUIRE(start_forward(sock, addr, certs, wrong, NULL) != NULL);
	err = connect_error(url, &took);
	CHECK(err != NULL && err->kind == SWEREX_ERR_UNAUTHENTICATED);
	if (err != NULL && err->kind != SWEREX_ERR_UNAUTHENTICATED)
		harness_show_error("wrong token at swerexd", err);
	swerex_error_free(err);
}

/* Connect with options; NULL after a diagnostic. */
static struct swerex_client *
connect_opts(const struct swerex_connect_opts *o)
{
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;

	if (swerex_connect_with(o, &c, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "swerex_connect_with(%s) failed",
		    o->url);
		harness_show_error("connect", err);
		swerex_error_free(err);
		return NULL;
	}
	return c;
}

/*
 * libswerex's own transports with the tunnels: tls:// straight to a
 * reverse tunnel (token from a file), and a unix: client with reconnect on
 * that rides out a restart of its forward tunnel (the Hello, client
 * identity included, is passed on intact).
 */
TTEST(libswerex_tls_and_reconnect)
{
	struct swerex_connect_opts o;
	struct chain ch = { .port = 0 };
	struct swerex_client *c;
	char ca[PATH_MAX];

	chain_start(h, &ch, NULL, NULL);
	join(ca, sizeof ca, ch.certs, "ca.pem");
	swerex_connect_opts_init(&o);
	o.url = ch.rev->listen;
	o.ca_file = ca;
	o.token_file = ch.token;
	c = connect_opts(&o);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "direct-tls") == 0);
	CHECK(run_is(c, "direct-tls", "echo over tls", "over tls\n"));
	swerex_client_free(c);

	swerex_connect_opts_init(&o);
	o.url = ch.url;
	o.reconnect = true;
	o.reconnect_timeout = 20;
	c = connect_opts(&o);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "re") == 0);
	CHECK(run_is(c, "re", "V=before; echo $V", "before\n"));
	CHECK(exited_with(tproc_stop(ch.fwd), 0));
	ch.fwd = start_forward(ch.sock, ch.rev->listen, ch.certs, ch.token,
	    NULL);
	REQUIRE(ch.fwd != NULL);
	CHECK(run_is(c, "re", "echo $V again", "before again\n"));
	CHECK(swerex_reconnects(c) >= 1);
	swerex_client_free(c);
}

TAP_MAIN(
	TAP_T(chain_run_stream_transfer),
	TAP_T(hundred_sessions_one_connection),
	TAP_T(hundred_sessions_ten_connections),
	TAP_T(wrong_token_unauthenticated),
	TAP_T(missing_token),
	TAP_T(slow_loris_closed_by_deadline),
	TAP_T(preauth_frame_over_8k_closes),
	TAP_T(bad_remote_certificate_fails_connect),
	TAP_T(network_drop_session_survives),
	TAP_T(non_reading_client_bounded_memory),
	TAP_T(measure_direct_vs_tunnels),
	TAP_T(sigterm_and_socket_rules),
	TAP_T(connection_limit),
	TAP_T(usage_and_startup_errors),
	TAP_T(insecure_tcp_loopback),
	TAP_T(connect_retry_then_give_up),
	TAP_T(mutual_tls),
	TAP_T(sighup_reloads_token),
	TAP_T(forward_to_daemon_tls_listener),
	TAP_T(libswerex_tls_and_reconnect),
)
