/*
 * The daemon as a whole: the event loop, Unix socket listeners, signals
 * (SIGCHLD reaping, SIGTERM/SIGINT shutdown) and readiness.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "conn.h"
#include "exec.h"
#include "file.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "wire.h"

/* After SIGTERM, give up waiting for sessions after the grace plus this. */
#define SERVER_STOP_EXTRA 3.0

/* Arm a timer for a number of seconds, capped at about four months. */
void
server_timer_add(struct event *ev, double seconds)
{
	struct timeval tv;

	if (seconds > SERVER_MAX_TIMER)
		seconds = SERVER_MAX_TIMER;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	evtimer_add(ev, &tv);
}

/* Fill in the defaults. */
void
server_config_defaults(struct server_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->max_sessions = 4096;
	cfg->max_conns = 4096;
	cfg->max_frame = WIRE_MAX_FRAME_DEFAULT;
	cfg->max_output = 64u * 1024 * 1024;
	cfg->kill_grace = 1.0;
	cfg->ready_fd = -1;
}

/*
 * The default socket: $XDG_RUNTIME_DIR/swerexd.sock, else
 * /tmp/swerexd-UID/swerexd.sock (the directory is created 0700).
 */
char *
server_default_socket(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *p = NULL;

	if (xdg != NULL && *xdg == '/') {
		if (asprintf(&p, "%s/swerexd.sock", xdg) < 0)
			return NULL;
	} else if (asprintf(&p, "/tmp/swerexd-%u/swerexd.sock",
	    (unsigned)getuid()) < 0)
		return NULL;
	return p;
}

/* Make sure the private directory of the default socket exists and is ours. */
static int
server_private_dir(const char *path)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path];
	struct stat st;
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (strncmp(dir, "/tmp/swerexd-", 13) != 0)
		return 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 077) != 0) {
		log_error("%s: not a private directory owned by us", dir);
		return -EPERM;
	}
	return 0;
}

/* Accept a connection. */
static void
server_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		 struct sockaddr *sa, int len, void *arg)
{
	conn_accept(arg, fd);
}

/* Keep serving when accept fails (e.g. out of file descriptors). */
static void
server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	log_warn("accept: %s", strerror(errno));
}

/* Listen on a Unix socket, replacing a stale socket file but never a live one. */
static int
server_listen_unix(struct server *srv, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct evconnlistener *l;
	mode_t old;
	int fd, r;

	if (strlen(path) >= sizeof sa.sun_path) {
		log_error("socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if ((r = server_private_dir(path)) < 0) {
		log_error("%s: %s", path, strerror(-r));
		return r;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		log_error("another swerexd is serving on %s", path);
		close(fd);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED) {
		log_info("replacing stale socket %s", path);
		unlink(path);
	}
	close(fd);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0) {
		r = -errno;
		log_error("bind %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	l = evconnlistener_new(srv->base, server_accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 512, fd);
	if (l == NULL) {
		close(fd);
		unlink(path);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(l, server_accept_error_cb);
	srv->listeners[srv->n_listeners] = l;
	srv->paths[srv->n_listeners] = strdup(path);
	srv->n_listeners++;
	log_info("listening on unix:%s", path);
	return 0;
}

/* Stop listening and remove our socket files. */
static void
server_unlisten(struct server *srv)
{
	size_t i;

	for (i = 0; i < srv->n_listeners; i++) {
		evconnlistener_free(srv->listeners[i]);
		if (srv->paths[i] != NULL)
			unlink(srv->paths[i]);
		free(srv->paths[i]);
	}
	srv->n_listeners = 0;
}

/* Exit the loop once shutdown has reaped every session. */
void
server_check_stopped(struct server *srv)
{
	if (srv->stopping && srv->n_sessions == 0 && TAILQ_EMPTY(&srv->closing))
		event_base_loopexit(srv->base, NULL);
}

/* Stop waiting for sessions that will not go. */
static void
server_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warn("sessions did not exit in time; killing what is left");
	session_free_all(srv);
	event_base_loopexit(srv->base, NULL);
}

/* Begin a clean shutdown. */
static void
server_stop(struct server *srv)
{
	struct timeval tv;
	double t = srv->cfg.kill_grace + SERVER_STOP_EXTRA;

	if (srv->stopping)
		return;
	srv->stopping = true;
	log_info("shutting down");
	server_unlisten(srv);
	conn_free_all(srv);
	file_free_all(srv);
	exec_free_all(srv);
	session_shutdown_all(srv);
	tv.tv_sec = (time_t)t;
	tv.tv_usec = (suseconds_t)((t - (double)tv.tv_sec) * 1e6);
	srv->ev_deadline = evtimer_new(srv->base, server_deadline_cb, srv);
	if (srv->ev_deadline != NULL)
		evtimer_add(srv->ev_deadline, &tv);
	server_check_stopped(srv);
}

/* Handle signals as loop events. */
static void
server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	pid_t pid;
	int status;

	switch (sig) {
	case SIGCHLD:
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (!session_reaped(srv, pid, status))
				exec_reaped(srv, pid, status);
		break;
	case SIGTERM:
	case SIGINT:
		server_stop(srv);
		break;
	default:
		break;
	}
}

/* Raise the descriptor limit: each session holds a pty. */
static void
server_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise RLIMIT_NOFILE: %s", strerror(errno));
	}
}

/* Set up the loop, signals and listeners. */
int
server_init(struct server *srv)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };
	struct event_config *ec;
	size_t i;
	int r;

	TAILQ_INIT(&srv->sessions);
	TAILQ_INIT(&srv->closing);
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->execs);
	TAILQ_INIT(&srv->uploads);
	TAILQ_INIT(&srv->downloads);
	signal(SIGPIPE, SIG_IGN);
	server_raise_nofile();

	ec = event_config_new();
	if (ec == NULL)
		return -ENOMEM;
	/* Ptys are not supported by every backend; epoll handles them. */
	event_config_avoid_method(ec, "select");
	srv->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (srv->base == NULL)
		return -ENOMEM;
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		srv->ev_sig[i] = evsignal_new(srv->base, sigs[i],
		    server_signal_cb, srv);
		if (srv->ev_sig[i] == NULL || evsignal_add(srv->ev_sig[i], NULL) < 0)
			return -ENOMEM;
	}
	for (i = 0; i < srv->cfg.n_listen; i++) {
		const char *l = srv->cfg.listen[i];

		if (strncmp(l, "unix:", 5) == 0)
			l += 5;
		else if (*l != '/') {
			log_error("unsupported listen address '%s' (use unix:PATH)", l);
			return -EINVAL;
		}
		if ((r = server_listen_unix(srv, l)) < 0)
			return r;
	}
	return 0;
}

/* Signal readiness to whoever started us. */
static void
server_ready(struct server *srv)
{
	static const char msg[] = "READY=1\n";
	ssize_t n;

	if (srv->cfg.ready_fd < 0)
		return;
	n = write(srv->cfg.ready_fd, msg, sizeof msg - 1);
	if (n != (ssize_t)sizeof msg - 1)
		log_warn("ready fd %d: %s", srv->cfg.ready_fd, strerror(errno));
	close(srv->cfg.ready_fd);
	srv->cfg.ready_fd = -1;
}

/* Serve until shut down. */
int
server_run(struct server *srv)
{
	server_ready(srv);
	if (event_base_dispatch(srv->base) < 0)
		return 1;
	return srv->exit_code;
}

/* Release everything. */
void
server_free(struct server *srv)
{
	size_t i;

	server_unlisten(srv);
	conn_free_all(srv);
	file_free_all(srv);
	exec_free_all(srv);
	session_free_all(srv);
	/* Run the deferred releases of connections torn down above. */
	if (srv->base != NULL)
		event_base_loop(srv->base, EVLOOP_NONBLOCK);
	for (i = 0; i < sizeof srv->ev_sig / sizeof srv->ev_sig[0]; i++)
		if (srv->ev_sig[i] != NULL)
			event_free(srv->ev_sig[i]);
	if (srv->ev_deadline != NULL)
		event_free(srv->ev_deadline);
	if (srv->base != NULL)
		event_base_free(srv->base);
}
