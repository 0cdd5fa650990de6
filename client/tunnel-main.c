/*
 * swerex-tunnel as a process: the command line, listeners, credentials
 * (loaded at start and on SIGHUP), signals and readiness. The connections
 * themselves are tunnel.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/dns.h>

#include "remote.h"
#include "tls.h"
#include "log.h"
#include "tunnel.h"
#include "wire.h"

static const char tunnel_main_usage[] =
"Usage: swerex-tunnel --listen ADDR --connect ADDR [OPTION]...\n"
"Forward swerex connections over TLS, in either direction.\n"
"\n"
"Forward: local clients connect to a Unix socket; each connection gets its\n"
"own TLS connection to a remote swerexd, and the tunnel puts its token into\n"
"the client's Hello:\n"
"  swerex-tunnel --listen unix:PATH --connect tls://HOST:PORT [--ca FILE]\n"
"                [--server-name NAME] [--cert FILE --key FILE]\n"
"                [--token-file FILE]\n"
"Reverse: serve a swerexd that listens on a Unix socket over TLS; a peer's\n"
"first frame must be a Hello with the token:\n"
"  swerex-tunnel --listen tls://HOST:PORT --cert FILE --key FILE\n"
"                [--client-ca FILE] --token-file FILE --connect unix:PATH\n"
"  swerex-tunnel --listen tcp://HOST:PORT --insecure --token-file FILE\n"
"                --connect unix:PATH       (plain TCP, loopback only)\n"
"\n"
"  -l, --listen ADDR          unix:PATH (created 0600; a stale socket file is\n"
"                             replaced, a live one refused), tls://HOST:PORT\n"
"                             or tcp://HOST:PORT (IPv6 as [ADDR]:PORT; port 0\n"
"                             picks a free port)\n"
"  -c, --connect ADDR         tls://HOST:PORT (forward) or unix:PATH (reverse)\n"
"      --ca FILE              forward: CA that signed the remote's certificate\n"
"                             (default: the system's store)\n"
"      --server-name NAME     forward: name or IP the remote's certificate\n"
"                             must match (default: HOST of --connect)\n"
"      --cert FILE            reverse: the server certificate chain (PEM);\n"
"                             forward: a client certificate for mutual TLS\n"
"      --key FILE             the key of --cert (PEM)\n"
"      --client-ca FILE       reverse: require client certificates signed by\n"
"                             this CA (mutual TLS)\n"
"      --token-file FILE      the token (first line); required by a reverse\n"
"                             tunnel; a forward tunnel without one passes the\n"
"                             clients' own tokens through\n"
"      --insecure             allow --listen tcp:// (every address it resolves\n"
"                             to must be loopback)\n"
"      --auth-timeout SECONDS a peer must finish the TLS handshake and send\n"
"                             its Hello within this time (default 10)\n"
"      --connect-timeout SECONDS\n"
"                             keep retrying to reach --connect for a new\n"
"                             connection this long, then close it (default 10)\n"
"      --keepalive SECONDS    TCP keepalive and user timeout: a dead peer is\n"
"                             noticed within this time (default 30; 0 = off)\n"
"      --max-connections N    refuse connections beyond N (default 1024)\n"
"      --ready-fd N           write \"LISTEN=<address>\\n\" for each bound\n"
"                             address, then \"READY=1\\n\" to fd N and close it\n"
"      --log-level LEVEL      error, warn, info (default) or debug\n"
"      --log-target TARGET    stderr (default; without timestamps and with\n"
"                             <N> priority prefixes when stderr is the\n"
"                             journal, per $JOURNAL_STREAM) or syslog\n"
"                             (syslog(3), facility daemon)\n"
"  -h, --help                 show this help and exit\n"
"  -V, --version              show the version and exit\n"
"\n"
"Environment:\n"
"  SWEREX_TOKEN               the token, when --token-file is not given\n"
"  SWEREX_TOKEN_FILE          a file holding the token, when neither\n"
"                             --token-file nor SWEREX_TOKEN is given\n"
"The token is never taken from the command line.\n"
"\n"
"Signals: SIGTERM or SIGINT stop listening, remove the Unix socket, close\n"
"every connection and exit 0; SIGHUP reloads certificates and the token\n"
"(new connections use them, open ones are untouched).\n"
"Exit status: 0 after SIGTERM/SIGINT, 1 on start-up errors (missing\n"
"certificate or token, address in use, ...), 2 on bad usage.\n";

/* Accept again after a pause (see tunnel_main_accept_error_cb). */
static void
tunnel_main_relisten_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	size_t i;

	for (i = 0; i < t->n_listeners; i++)
		evconnlistener_enable(t->listeners[i]);
}

/*
 * Accept failed (e.g. out of file descriptors): pause accepting for a
 * second instead of spinning on a listener that stays readable.
 */
static void
tunnel_main_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct tunnel *t = arg;
	size_t i;

	log_msg(LOG_LVL_WARN, "accept: %s; pausing for 1 s",
	    strerror(errno));
	for (i = 0; i < t->n_listeners; i++)
		evconnlistener_disable(t->listeners[i]);
	tunnel_timer_add(t->ev_relisten, 1.0);
}

/* Add a listener for a bound, listening socket fd. */
static int
tunnel_main_add_listener(struct tunnel *t, int fd, const char *name)
{
	struct evconnlistener *l;

	if (t->n_listeners == TUNNEL_MAX_LISTEN) {
		log_msg(LOG_LVL_ERROR, "too many addresses to listen on");
		close(fd);
		return -1;
	}
	/* Backlog 0: the socket is listening already. */
	l = evconnlistener_new(t->base, tunnel_accept_cb, t,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l == NULL) {
		log_msg(LOG_LVL_ERROR, "cannot listen on %s", name);
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(l, tunnel_main_accept_error_cb);
	snprintf(t->listen_names[t->n_listeners],
	    sizeof t->listen_names[t->n_listeners], "%s", name);
	t->listeners[t->n_listeners++] = l;
	log_msg(LOG_LVL_INFO, "listening on %s", name);
	return 0;
}

/* Listen on a Unix socket, replacing a stale socket file but never a live one. */
static int
tunnel_main_listen_unix(struct tunnel *t, const char *path)
{
	struct sockaddr_un sa;
	char name[sizeof sa.sun_path + 8];
	struct stat st;
	mode_t old;
	int fd, r;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_msg(LOG_LVL_ERROR, "socket: %s", strerror(errno));
		return -1;
	}
	/* Someone answering on the path owns it; a refused connect means stale. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		log_msg(LOG_LVL_ERROR, "%s is in use by a live listener",
		    path);
		close(fd);
		return -1;
	}
	close(fd);
	/* Only a socket file is ours to replace, never a file of another kind. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_msg(LOG_LVL_ERROR, "%s exists and is not a "
			    "socket", path);
			return -1;
		}
		log_msg(LOG_LVL_INFO, "replacing stale socket %s", path);
		unlink(path);
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_msg(LOG_LVL_ERROR, "socket: %s", strerror(errno));
		return -1;
	}
	/* Created 0600: only our user may connect and use our credentials. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		log_msg(LOG_LVL_ERROR, "cannot listen on %s: %s", path,
		    strerror(errno));
		if (r == 0)
			unlink(path);
		close(fd);
		return -1;
	}
	if ((t->unix_path = strdup(path)) == NULL) {
		unlink(path);
		close(fd);
		return -1;
	}
	snprintf(name, sizeof name, "unix:%s", path);
	return tunnel_main_add_listener(t, fd, name);
}

/*
 * Listen on every address HOST resolves to (start-up, so a blocking lookup
 * is fine). Plain TCP is refused unless every address is loopback.
 */
static int
tunnel_main_listen_inet(struct tunnel *t)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *scheme = t->listen.scheme == TUNNEL_TLS ? "tls" : "tcp";
	char addr[80], name[128];
	int fd, one = 1, r, bound = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	r = getaddrinfo(t->listen.host, t->listen.port, &hints, &res);
	if (r != 0) {
		log_msg(LOG_LVL_ERROR, "cannot resolve %s: %s",
		    t->listen.host, gai_strerror(r));
		return -1;
	}
	if (t->listen.scheme == TUNNEL_TCP) {
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			if (!remote_addr_is_loopback(ai->ai_addr)) {
				remote_addr_format(ai->ai_addr, addr, sizeof addr);
				log_msg(LOG_LVL_ERROR, "refusing plain TCP "
				    "on %s: --insecure allows loopback "
				    "addresses only", addr);
				freeaddrinfo(res);
				return -1;
			}
		}
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		remote_addr_format(ai->ai_addr, addr, sizeof addr);
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, 0);
		if (fd < 0)
			goto fail;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, 128) < 0) {
			/* A host without IPv6 still serves on IPv4. */
			if (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT) {
				log_msg(LOG_LVL_WARN, "cannot listen on "
				    "%s: %s", addr, strerror(errno));
				close(fd);
				continue;
			}
			close(fd);
			goto fail;
		}
		sl = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			remote_addr_format((struct sockaddr *)&ss, addr, sizeof addr);
		snprintf(name, sizeof name, "%s://%s", scheme, addr);
		if (tunnel_main_add_listener(t, fd, name) < 0) {
			freeaddrinfo(res);
			return -1;
		}
		bound++;
	}
	freeaddrinfo(res);
	if (bound == 0) {
		log_msg(LOG_LVL_ERROR, "no address of %s to listen on",
		    t->listen.host);
		return -1;
	}
	return 0;

fail:
	log_msg(LOG_LVL_ERROR, "cannot listen on %s: %s", addr,
	    strerror(errno));
	freeaddrinfo(res);
	return -1;
}

/*
 * Load the token: --token-file, else $SWEREX_TOKEN, else the file named by
 * $SWEREX_TOKEN_FILE (the order libswerex uses). 0, or -1 with err.
 */
static int
tunnel_main_token_load(const struct tunnel_options *o, char **out, char *err,
		  size_t errlen)
{
	const char *file;

	if (o->token_file != NULL)
		return remote_token_load(o->token_file, NULL, out, err, errlen);
	if (remote_token_load(NULL, "SWEREX_TOKEN", out, err, errlen) < 0)
		return -1;
	if (*out == NULL && (file = getenv("SWEREX_TOKEN_FILE")) != NULL &&
	    *file != '\0')
		return remote_token_load(file, NULL, out, err, errlen);
	return 0;
}

/* Load the TLS context and the token the mode needs. 0, or -1 with err. */
static int
tunnel_main_creds_load(struct tunnel *t, SSL_CTX **ctx, char **token, char *err,
		  size_t errlen)
{
	const struct tunnel_options *o = &t->opt;

	*ctx = NULL;
	*token = NULL;
	if (tunnel_main_token_load(o, token, err, errlen) < 0)
		return -1;
	if (t->reverse && *token == NULL) {
		snprintf(err, errlen, "a %s listener needs a token "
		    "(--token-file, $SWEREX_TOKEN or $SWEREX_TOKEN_FILE)",
		    t->listen.scheme == TUNNEL_TLS ? "TLS" : "TCP");
		return -1;
	}
	if (!t->reverse)
		*ctx = tls_client_ctx(o->ca, o->cert, o->key, err, errlen);
	else if (t->listen.scheme == TUNNEL_TLS)
		*ctx = tls_server_ctx(o->cert, o->key, o->client_ca, err,
		    errlen);
	else
		return 0;
	if (*ctx == NULL) {
		free(*token);
		*token = NULL;
		return -1;
	}
	return 0;
}

/* Reload certificates and the token (SIGHUP); keep the old ones on error. */
static void
tunnel_main_reload(struct tunnel *t)
{
	SSL_CTX *ctx;
	char *token, err[512];

	if (tunnel_main_creds_load(t, &ctx, &token, err, sizeof err) < 0) {
		log_msg(LOG_LVL_ERROR, "reload failed, keeping the "
		    "current credentials: %s", err);
		return;
	}
	/* Open connections hold their own reference to the old context. */
	if (t->ctx != NULL)
		SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	free(t->token);
	t->token = token;
	log_msg(LOG_LVL_INFO, "reloaded certificates and token");
}

/* Stop listening, remove our socket, close every connection, exit the loop. */
static void
tunnel_main_stop(struct tunnel *t)
{
	size_t i;

	if (t->stopping)
		return;
	t->stopping = true;
	log_msg(LOG_LVL_INFO, "shutting down");
	for (i = 0; i < t->n_listeners; i++)
		evconnlistener_free(t->listeners[i]);
	t->n_listeners = 0;
	if (t->unix_path != NULL)
		unlink(t->unix_path);
	tunnel_close_all(t);
	event_base_loopexit(t->base, NULL);
}

/* Handle signals as loop events. */
static void
tunnel_main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct tunnel *t = arg;

	if (sig == SIGHUP)
		tunnel_main_reload(t);
	else
		tunnel_main_stop(t);
}

/* Tell whoever started us where we listen and that we serve. */
static void
tunnel_main_ready(struct tunnel *t)
{
	char buf[TUNNEL_MAX_LISTEN * 140 + 16];
	size_t i, n = 0;
	ssize_t w;

	if (t->opt.ready_fd < 0)
		return;
	for (i = 0; i < t->n_listeners; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "LISTEN=%s\n",
		    t->listen_names[i]);
	n += (size_t)snprintf(buf + n, sizeof buf - n, "READY=1\n");
	w = write(t->opt.ready_fd, buf, n);
	if (w != (ssize_t)n)
		log_msg(LOG_LVL_WARN, "ready fd %d: %s", t->opt.ready_fd,
		    w < 0 ? strerror(errno) : "short write");
	close(t->opt.ready_fd);
	t->opt.ready_fd = -1;
}

/* Set up the loop, signals, credentials and listeners. 0, or -1 (logged). */
static int
tunnel_main_init(struct tunnel *t)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	char err[512];
	size_t i;

	tunnel_init_conns(t);
	signal(SIGPIPE, SIG_IGN);
	if ((t->base = event_base_new()) == NULL)
		return -1;
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		t->ev_sig[i] = evsignal_new(t->base, sigs[i], tunnel_main_signal_cb, t);
		if (t->ev_sig[i] == NULL || evsignal_add(t->ev_sig[i], NULL) < 0)
			return -1;
	}
	if ((t->ev_relisten = evtimer_new(t->base, tunnel_main_relisten_cb, t)) == NULL)
		return -1;
	if (tunnel_main_creds_load(t, &t->ctx, &t->token, err, sizeof err) < 0) {
		log_msg(LOG_LVL_ERROR, "%s", err);
		return -1;
	}
	if (!t->reverse && t->token == NULL)
		log_msg(LOG_LVL_INFO, "no token: clients' own tokens are "
		    "passed through");
	if (!t->reverse) {
		/* No resolv.conf is fine: numeric hosts and /etc/hosts work. */
		t->dns = evdns_base_new(t->base,
		    EVDNS_BASE_INITIALIZE_NAMESERVERS |
		    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (t->dns == NULL)
			t->dns = evdns_base_new(t->base,
			    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (t->dns == NULL) {
			log_msg(LOG_LVL_ERROR, "cannot set up a resolver");
			return -1;
		}
	}
	if (t->listen.scheme == TUNNEL_UNIX)
		return tunnel_main_listen_unix(t, t->listen.path);
	return tunnel_main_listen_inet(t);
}

/* Release everything (after the loop ended, or a failed start). */
static void
tunnel_main_free(struct tunnel *t)
{
	size_t i;

	t->stopping = true;
	for (i = 0; i < t->n_listeners; i++)
		evconnlistener_free(t->listeners[i]);
	t->n_listeners = 0;
	tunnel_close_all(t);
	/* Run the deferred releases and the lookup's cancellation. */
	if (t->base != NULL)
		event_base_loop(t->base, EVLOOP_NONBLOCK);
	if (t->dns != NULL)
		evdns_base_free(t->dns, 1);
	tunnel_forget_addrs(t);
	for (i = 0; i < sizeof t->ev_sig / sizeof t->ev_sig[0]; i++)
		if (t->ev_sig[i] != NULL)
			event_free(t->ev_sig[i]);
	if (t->ev_relisten != NULL)
		event_free(t->ev_relisten);
	if (t->base != NULL)
		event_base_free(t->base);
	if (t->ctx != NULL)
		SSL_CTX_free(t->ctx);
	free(t->token);
	free(t->unix_path);
	free(t->listen.path);
	free(t->listen.host);
	free(t->listen.port);
	free(t->connect.path);
	free(t->connect.host);
	free(t->connect.port);
}

/* Parse unix:PATH, tls://HOST:PORT or tcp://HOST:PORT. 0, or -1 with err. */
static int
tunnel_main_addr_parse(const char *s, struct tunnel_addr *a, char *err,
		  size_t errlen)
{
	struct sockaddr_un sun;

	memset(a, 0, sizeof *a);
	if (strncmp(s, "unix:", 5) == 0 || s[0] == '/') {
		const char *p = s[0] == '/' ? s : s + 5;

		a->scheme = TUNNEL_UNIX;
		if (*p == '\0' || strlen(p) >= sizeof sun.sun_path) {
			snprintf(err, errlen, "bad socket path in '%s' (empty "
			    "or longer than %zu bytes)", s,
			    sizeof sun.sun_path - 1);
			return -1;
		}
		if ((a->path = strdup(p)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	if (strncmp(s, "tls://", 6) == 0)
		a->scheme = TUNNEL_TLS;
	else if (strncmp(s, "tcp://", 6) == 0)
		a->scheme = TUNNEL_TCP;
	else {
		snprintf(err, errlen, "unsupported address '%s' (use unix:PATH, "
		    "tls://HOST:PORT or tcp://HOST:PORT)", s);
		return -1;
	}
	return remote_split_hostport(s + 6, &a->host, &a->port, err, errlen);
}

/* Parse a number of seconds in (0, 86400] or exit 2. */
static double
tunnel_main_parse_seconds(const char *opt, const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 86400) {
		fprintf(stderr, "swerex-tunnel: %s: invalid value '%s' (seconds, "
		    "above 0)\n", opt, s);
		exit(2);
	}
	return v;
}

/* Parse an unsigned number in [min, max] or exit 2. */
static unsigned
tunnel_main_parse_uint(const char *opt, const char *s, unsigned min, unsigned max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min ||
	    v > max) {
		fprintf(stderr, "swerex-tunnel: %s: invalid value '%s' (%u to "
		    "%u)\n", opt, s, min, max);
		exit(2);
	}
	return (unsigned)v;
}

/* Complain about bad usage and exit 2. */
static void __attribute__((noreturn, format(printf, 1, 2)))
tunnel_main_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("swerex-tunnel: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'swerex-tunnel --help'.\n", stderr);
	exit(2);
}

/* Work out the mode from the addresses and check the options fit it. */
static void
tunnel_main_check_usage(struct tunnel *t)
{
	const struct tunnel_options *o = &t->opt;
	char err[512];

	if (o->listen == NULL || o->connect == NULL)
		tunnel_main_usage_error("both --listen and --connect are required");
	if (tunnel_main_addr_parse(o->listen, &t->listen, err, sizeof err) < 0)
		tunnel_main_usage_error("--listen: %s", err);
	if (tunnel_main_addr_parse(o->connect, &t->connect, err, sizeof err) < 0)
		tunnel_main_usage_error("--connect: %s", err);
	if (t->listen.scheme == TUNNEL_UNIX && t->connect.scheme == TUNNEL_TLS)
		t->reverse = false;
	else if (t->listen.scheme != TUNNEL_UNIX &&
	    t->connect.scheme == TUNNEL_UNIX)
		t->reverse = true;
	else
		tunnel_main_usage_error("use --listen unix:PATH with --connect "
		    "tls://HOST:PORT (forward), or --listen tls:// or tcp:// "
		    "with --connect unix:PATH (reverse)");
	if (t->reverse && (o->ca != NULL || o->server_name != NULL))
		tunnel_main_usage_error("--ca and --server-name are for a forward "
		    "tunnel (use --client-ca for client certificates)");
	if (!t->reverse && (o->client_ca != NULL || o->insecure))
		tunnel_main_usage_error("--client-ca and --insecure are for a "
		    "reverse tunnel");
	if (t->reverse && t->listen.scheme == TUNNEL_TCP &&
	    (o->cert != NULL || o->key != NULL || o->client_ca != NULL))
		tunnel_main_usage_error("--cert, --key and --client-ca need --listen "
		    "tls://");
	t->server_name = o->server_name != NULL ? o->server_name :
	    t->connect.host;
}

int
main(int argc, char **argv)
{
	enum { O_CA = 256, O_SERVER_NAME, O_CERT, O_KEY, O_CLIENT_CA,
	    O_TOKEN_FILE, O_TOKEN, O_INSECURE, O_AUTH_TIMEOUT, O_CONNECT_TIMEOUT,
	    O_KEEPALIVE, O_MAX_CONNS, O_READY_FD, O_LOG_LEVEL, O_LOG_TARGET };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "ca", required_argument, NULL, O_CA },
		{ "server-name", required_argument, NULL, O_SERVER_NAME },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "client-ca", required_argument, NULL, O_CLIENT_CA },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		/* Exact, so that getopt does not take it for --token-file. */
		{ "token", required_argument, NULL, O_TOKEN },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "auth-timeout", required_argument, NULL, O_AUTH_TIMEOUT },
		{ "connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT },
		{ "keepalive", required_argument, NULL, O_KEEPALIVE },
		{ "max-connections", required_argument, NULL, O_MAX_CONNS },
		{ "ready-fd", required_argument, NULL, O_READY_FD },
		{ "log-level", required_argument, NULL, O_LOG_LEVEL },
		{ "log-target", required_argument, NULL, O_LOG_TARGET },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static struct tunnel t;
	enum log_target target = LOG_TARGET_STDERR;
	int ch, r, level;

	log_set_ident("swerex-tunnel");

	t.opt.auth_timeout = 10;
	t.opt.connect_timeout = 10;
	t.opt.keepalive = 30;
	t.opt.max_conns = 1024;
	t.opt.ready_fd = -1;
	while ((ch = getopt_long(argc, argv, "l:c:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			t.opt.listen = optarg;
			break;
		case 'c':
			t.opt.connect = optarg;
			break;
		case O_CA:
			t.opt.ca = optarg;
			break;
		case O_SERVER_NAME:
			t.opt.server_name = optarg;
			break;
		case O_CERT:
			t.opt.cert = optarg;
			break;
		case O_KEY:
			t.opt.key = optarg;
			break;
		case O_CLIENT_CA:
			t.opt.client_ca = optarg;
			break;
		case O_TOKEN_FILE:
			t.opt.token_file = optarg;
			break;
		case O_TOKEN:
			tunnel_main_usage_error("the token is never taken from "
			    "the command line (other users can read it there); "
			    "use --token-file, $SWEREX_TOKEN or "
			    "$SWEREX_TOKEN_FILE");
		case O_INSECURE:
			t.opt.insecure = true;
			break;
		case O_AUTH_TIMEOUT:
			t.opt.auth_timeout = tunnel_main_parse_seconds(
			    "--auth-timeout", optarg);
			break;
		case O_CONNECT_TIMEOUT:
			t.opt.connect_timeout = tunnel_main_parse_seconds(
			    "--connect-timeout", optarg);
			break;
		case O_KEEPALIVE:
			t.opt.keepalive = tunnel_main_parse_uint("--keepalive",
			    optarg, 0, 86400);
			break;
		case O_MAX_CONNS:
			t.opt.max_conns = tunnel_main_parse_uint("--max-connections",
			    optarg, 1, 1000000);
			break;
		case O_READY_FD:
			t.opt.ready_fd = (int)tunnel_main_parse_uint("--ready-fd",
			    optarg, 0, INT_MAX);
			if (fcntl(t.opt.ready_fd, F_SETFD, FD_CLOEXEC) < 0)
				tunnel_main_usage_error("--ready-fd %d: %s",
				    t.opt.ready_fd, strerror(errno));
			break;
		case O_LOG_LEVEL:
			if ((level = log_parse_level(optarg)) < 0)
				tunnel_main_usage_error("--log-level: unknown level "
				    "'%s'", optarg);
			log_set_level((enum log_level)level);
			break;
		case O_LOG_TARGET:
			if ((r = log_parse_target(optarg)) < 0)
				tunnel_main_usage_error("--log-target: unknown "
				    "target '%s' (stderr or syslog)", optarg);
			target = (enum log_target)r;
			break;
		case 'h':
			fputs(tunnel_main_usage, stdout);
			return 0;
		case 'V':
			printf("swerex-tunnel %s (protocol %d)\n", SWEREX_VERSION,
			    SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
			return 0;
		default:
			fputs("Try 'swerex-tunnel --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc)
		tunnel_main_usage_error("unexpected argument '%s'", argv[optind]);
	tunnel_main_check_usage(&t);
	if (t.reverse && t.listen.scheme == TUNNEL_TCP && !t.opt.insecure) {
		fprintf(stderr, "swerex-tunnel: refusing plain TCP without "
		    "--insecure (use tls://)\n");
		tunnel_main_free(&t);
		return 1;
	}
	log_open(target);
	r = tunnel_main_init(&t);
	if (r == 0) {
		tunnel_main_ready(&t);
		r = event_base_dispatch(t.base) < 0 ? 1 : 0;
	} else
		r = 1;
	if (t.unix_path != NULL && !t.stopping)
		unlink(t.unix_path);
	tunnel_main_free(&t);
	return r;
}
