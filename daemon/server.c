/*
 * The daemon as a whole: the event loop, listeners (Unix sockets, TLS and
 * loopback TCP, or sockets inherited through systemd's socket activation),
 * signals (SIGCHLD reaping, SIGTERM/SIGINT shutdown, SIGHUP reload) and
 * readiness.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
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
#include <event2/event_struct.h>
#include <event2/listener.h>

#include "attach.h"
#include "auth.h"
#include "cgroup.h"
#include "conn.h"
#include "exec.h"
#include "file.h"
#include "ident.h"
#include "log.h"
#include "proc.h"
#include "server.h"
#include "session.h"
#include "spare.h"
#include "remote.h"
#include "tlsmod.h"
#include "wire.h"

/* After SIGTERM, give up waiting for sessions after the grace plus this. */
#define SERVER_STOP_EXTRA 3.0
/* Seconds a listener rests after running out of descriptors. */
#define SERVER_ACCEPT_PAUSE 0.1
/* The first fd systemd passes (SD_LISTEN_FDS_START). */
#define SERVER_LISTEN_FDS_START 3

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
	cfg->keepalive = 30;
	cfg->auth_timeout = 10;
	cfg->resume_timeout = 120;
	cfg->stuck_timeout = 60;
	cfg->history = 100;
	cfg->scrollback = ATTACH_RING_MAX;
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

/* Listen again after a pause for descriptors. */
static void
server_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server_listener *sl = arg;

	evconnlistener_enable(sl->l);
}

/*
 * Keep serving when accept fails. Out of descriptors, the pending connection
 * stays queued and the socket stays readable: pause this listener for a
 * moment instead of spinning on accept() until a descriptor frees up.
 */
static void
server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct server_listener *sl = arg;
	int err = errno;

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warn("accept on %s: %s", sl->name, strerror(err));
		return;
	}
	log_warn("accept on %s: %s; pausing it for %g s", sl->name,
	    strerror(err), SERVER_ACCEPT_PAUSE);
	evconnlistener_disable(l);
	server_timer_add(&sl->ev_retry, SERVER_ACCEPT_PAUSE);
}

/* Accept a connection. */
static void
server_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		 struct sockaddr *sa, int len, void *arg)
{
	struct server_listener *sl = arg;

	conn_accept(sl->srv, fd, sl->transport, sa);
}

/* Serve a bound, listening socket; fd is taken either way. 0 or -errno. */
static int
server_add_listener(struct server *srv, int fd, enum server_transport t,
		    const char *name, const char *path)
{
	struct server_listener *sl;

	if (srv->n_listeners == SERVER_MAX_LISTEN) {
		log_error("too many listeners (at most %d)", SERVER_MAX_LISTEN);
		close(fd);
		return -EINVAL;
	}
	sl = &srv->listeners[srv->n_listeners];
	memset(sl, 0, sizeof *sl);
	sl->srv = srv;
	sl->transport = t;
	snprintf(sl->name, sizeof sl->name, "%s", name);
	evutil_make_socket_nonblocking(fd);
	sl->l = evconnlistener_new(srv->base, server_accept_cb, sl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 512, fd);
	if (sl->l == NULL) {
		close(fd);
		return -ENOMEM;
	}
	evconnlistener_set_error_cb(sl->l, server_accept_error_cb);
	evtimer_assign(&sl->ev_retry, srv->base, server_accept_retry_cb, sl);
	if (path != NULL && (sl->path = strdup(path)) == NULL) {
		evconnlistener_free(sl->l);
		return -ENOMEM;
	}
	srv->n_listeners++;
	log_info("listening on %s", name);
	return 0;
}


/* Listen on a Unix socket, replacing a stale socket file but never a live one. */
static int
server_listen_unix(struct server *srv, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[sizeof sa.sun_path + 8];
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
		struct stat st;

		/* connect() to a regular file is refused too: never delete one. */
		if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			log_error("%s exists and is not a socket", path);
			close(fd);
			return -EEXIST;
		}
		log_info("replacing stale socket %s", sa.sun_path);
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
	snprintf(name, sizeof name, "unix:%s", path);
	if ((r = server_add_listener(srv, fd, SERVER_UNIX, name, path)) < 0)
		unlink(path);
	return r;
}

/*
 * Listen on TCP: tls://HOST:PORT, or tcp://HOST:PORT (plain, only with
 * --insecure and only on loopback addresses). Every address HOST resolves
 * to is bound; port 0 picks a free port, reported on the ready fd.
 */
static int
server_listen_tcp(struct server *srv, const char *hostport,
		  enum server_transport t)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl;
	char *host = NULL, *port = NULL, err[256], addr[80], name[96];
	int fd = -1, r = -EINVAL, one = 1, n = 0;

	if (remote_split_hostport(hostport, &host, &port, err, sizeof err) < 0) {
		log_error("%s", err);
		return -EINVAL;
	}
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		log_error("cannot resolve %s: %s", host, gai_strerror(r));
		r = -EINVAL;
		goto out;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (t == SERVER_TCP && !remote_addr_is_loopback(ai->ai_addr)) {
			remote_addr_format(ai->ai_addr, addr, sizeof addr);
			log_error("tcp://%s: %s is not a loopback address; plain "
			    "TCP is only allowed on loopback (use tls://)",
			    hostport, addr);
			r = -EPERM;
			goto out;
		}
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			r = -errno;
			goto out;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, 512) < 0) {
			r = -errno;
			remote_addr_format(ai->ai_addr, addr, sizeof addr);
			log_error("cannot listen on %s: %s", addr, strerror(errno));
			close(fd);
			goto out;
		}
		sl = sizeof ss;
		getsockname(fd, (struct sockaddr *)&ss, &sl);
		remote_addr_format((struct sockaddr *)&ss, addr, sizeof addr);
		snprintf(name, sizeof name, "%s://%s",
		    t == SERVER_TLS ? "tls" : "tcp", addr);
		if ((r = server_add_listener(srv, fd, t, name, NULL)) < 0)
			goto out;
		n++;
	}
	r = n > 0 ? 0 : -EADDRNOTAVAIL;
out:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	free(port);
	return r;
}

/*
 * Serve the sockets systemd passed (LISTEN_FDS, LISTEN_PID): Unix sockets
 * as ours (their files belong to systemd and are left in place), TCP ones as
 * TLS when a certificate is configured, else plain on loopback with
 * --insecure. Return how many, or -errno.
 */
static int
server_listen_inherited(struct server *srv)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	struct sockaddr_storage ss;
	enum server_transport t;
	char name[160], addr[80];
	socklen_t sl;
	long i, n;
	int fd, r;

	if (pid == NULL || fds == NULL || strtol(pid, NULL, 10) != getpid())
		return 0;
	n = strtol(fds, NULL, 10);
	/* Not for our children. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	for (i = 0; i < n; i++) {
		fd = SERVER_LISTEN_FDS_START + (int)i;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		sl = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
			log_error("inherited fd %d: %s", fd, strerror(errno));
			return -errno;
		}
		if (ss.ss_family == AF_UNIX) {
			t = SERVER_UNIX;
			snprintf(name, sizeof name, "unix:%s",
			    ((struct sockaddr_un *)&ss)->sun_path);
		} else {
			remote_addr_format((struct sockaddr *)&ss, addr, sizeof addr);
			if (srv->cfg.tls_cert != NULL)
				t = SERVER_TLS;
			else if (srv->cfg.insecure &&
			    remote_addr_is_loopback((struct sockaddr *)&ss))
				t = SERVER_TCP;
			else {
				log_error("inherited socket %s: TCP needs "
				    "--tls-cert/--tls-key (or --insecure on "
				    "loopback)", addr);
				return -EINVAL;
			}
			snprintf(name, sizeof name, "%s://%s",
			    t == SERVER_TLS ? "tls" : "tcp", addr);
		}
		if ((r = server_add_listener(srv, fd, t, name, NULL)) < 0)
			return r;
	}
	return (int)n;
}

/*
 * Load (or reload, on SIGHUP) the TLS context; 0 or -1 (the old one stays).
 * The first load brings in the TLS module: a daemon without TLS never
 * maps OpenSSL.
 */
static int
server_tls_load(struct server *srv)
{
	struct tlsmod_ctx *ctx;
	char err[512];

	if (srv->cfg.tls_cert == NULL && srv->cfg.tls_key == NULL)
		return 0;
	if (srv->tls == NULL && (srv->tls = tlsmod_load(err, sizeof err)) == NULL) {
		log_error("%s", err);
		return -1;
	}
	ctx = srv->tls->ctx_new(srv->cfg.tls_cert, srv->cfg.tls_key,
	    srv->cfg.tls_client_ca, err, sizeof err);
	if (ctx == NULL) {
		log_error("%s", err);
		return -1;
	}
	/* Connections keep a reference to the context they started with. */
	if (srv->tls_ctx != NULL)
		srv->tls->ctx_free(srv->tls_ctx);
	srv->tls_ctx = ctx;
	return 0;
}

/* Reread certificates and the token; connections keep what they had. */
static void
server_reload(struct server *srv)
{
	int r1 = server_tls_load(srv), r2 = auth_load_token(srv);

	if (r1 == 0 && r2 == 0)
		log_info("reloaded certificates and token");
	else
		log_error("reload failed; still using the previous settings");
}

/* Stop listening and remove our socket files. */
static void
server_unlisten(struct server *srv)
{
	struct server_listener *sl;
	size_t i;

	for (i = 0; i < srv->n_listeners; i++) {
		sl = &srv->listeners[i];
		event_del(&sl->ev_retry);
		evconnlistener_free(sl->l);
		if (sl->path != NULL)
			unlink(sl->path);
		free(sl->path);
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
	ident_free_all(srv);
	file_free_all(srv);
	exec_free_all(srv);
	spare_free(srv);
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
			if (!session_reaped(srv, pid, status) &&
			    !spare_reaped(srv, pid, status))
				exec_reaped(srv, pid, status);
		break;
	case SIGTERM:
	case SIGINT:
		server_stop(srv);
		break;
	case SIGHUP:
		server_reload(srv);
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

/* Refuse configurations that would expose sessions without protection. */
static int
server_check_listeners(struct server *srv)
{
	bool tcp = false, tls = false;
	size_t i;

	for (i = 0; i < srv->n_listeners; i++) {
		tcp |= srv->listeners[i].transport == SERVER_TCP;
		tls |= srv->listeners[i].transport == SERVER_TLS;
	}
	if (tcp && !srv->cfg.insecure) {
		log_error("plain TCP listeners need --insecure (and loopback)");
		return -EINVAL;
	}
	if (tls && srv->tls_ctx == NULL) {
		log_error("TLS listeners need --tls-cert and --tls-key");
		return -EINVAL;
	}
	if ((tcp || tls) && srv->token == NULL) {
		log_error("TCP listeners need a token: --token-file FILE or "
		    "$SWEREXD_TOKEN");
		return -EINVAL;
	}
	return 0;
}

/* Set up the loop, signals and listeners. */
int
server_init(struct server *srv)
{
	static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP };
	struct event_config *ec;
	sigset_t none;
	size_t i;
	int r;

	TAILQ_INIT(&srv->sessions);
	TAILQ_INIT(&srv->closing);
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->execs);
	TAILQ_INIT(&srv->uploads);
	TAILQ_INIT(&srv->downloads);
	TAILQ_INIT(&srv->attaches);
	TAILQ_INIT(&srv->idents);
	stats_init(&srv->stats);
	/* A mask inherited from whoever started us would hide SIGCHLD or SIGTERM. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	server_raise_nofile();
	srv->reaper = proc_find_reaper();
	if (srv->reaper == NULL)
		log_warn("swerexd-reaper not found: what a session daemonises "
		    "may outlive it, and every process of a session may "
		    "outlive a killed swerexd");
	else
		log_debug("sessions run under %s", srv->reaper);
	if (cgroup_init(srv) < 0)
		return -EINVAL;

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
	if (server_tls_load(srv) < 0 || auth_load_token(srv) < 0)
		return -EINVAL;
	if ((r = server_listen_inherited(srv)) < 0)
		return r;
	for (i = 0; i < srv->cfg.n_listen; i++) {
		const char *l = srv->cfg.listen[i];

		if (strncmp(l, "tls://", 6) == 0)
			r = server_listen_tcp(srv, l + 6, SERVER_TLS);
		else if (strncmp(l, "tcp://", 6) == 0)
			r = server_listen_tcp(srv, l + 6, SERVER_TCP);
		else if (strncmp(l, "unix:", 5) == 0)
			r = server_listen_unix(srv, l + 5);
		else if (*l == '/')
			r = server_listen_unix(srv, l);
		else {
			log_error("unsupported listen address '%s' (use unix:PATH, "
			    "tls://HOST:PORT or tcp://HOST:PORT)", l);
			return -EINVAL;
		}
		if (r < 0)
			return r;
	}
	if ((r = spare_init(srv)) < 0)
		return r;
	return server_check_listeners(srv);
}

/* Signal readiness to whoever started us. */
static void
server_ready(struct server *srv)
{
	char msg[SERVER_MAX_LISTEN * 160 + 16];
	size_t i, len = 0;
	ssize_t n;

	if (srv->cfg.ready_fd < 0)
		return;
	/* Where we listen first: port 0 picks one the starter must learn. */
	for (i = 0; i < srv->n_listeners; i++)
		len += (size_t)snprintf(msg + len, sizeof msg - len, "LISTEN=%s\n",
		    srv->listeners[i].name);
	len += (size_t)snprintf(msg + len, sizeof msg - len, "READY=1\n");
	n = write(srv->cfg.ready_fd, msg, len);
	if (n != (ssize_t)len)
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
	ident_free_all(srv);
	file_free_all(srv);
	exec_free_all(srv);
	spare_free(srv);
	session_free_all(srv);
	auth_free(srv);
	free(srv->reaper);
	srv->reaper = NULL;
	cgroup_free(srv);
	if (srv->tls_ctx != NULL)
		srv->tls->ctx_free(srv->tls_ctx);
	srv->tls_ctx = NULL;
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
