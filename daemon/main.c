/* swerexd: command line and start-up. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "attach.h"
#include "log.h"
#include "reaper.h"
#include "server.h"
#include "wire.h"

static const char usage_text[] =
"Usage: swerexd [OPTION]...\n"
"Serve pty-backed bash sessions to swerex clients over Unix sockets and TLS.\n"
"\n"
"  -l, --listen ADDR        listen on ADDR; repeatable (at most 8):\n"
"                             unix:PATH or /PATH  a Unix socket, created 0600;\n"
"                               default $XDG_RUNTIME_DIR/swerexd.sock, else\n"
"                               /tmp/swerexd-$UID/swerexd.sock (dir 0700)\n"
"                             tls://HOST:PORT     TLS over TCP ([V6]:PORT; port 0\n"
"                               picks one); needs --tls-cert, --tls-key, a token\n"
"                             tcp://HOST:PORT     plain TCP: only with --insecure\n"
"                               and only on loopback; needs a token\n"
"                           Sockets passed by systemd (LISTEN_FDS) are served\n"
"                           too; then no default socket is made.\n"
"      --tls-cert FILE      server certificate chain (PEM)\n"
"      --tls-key FILE       its private key (PEM)\n"
"      --tls-client-ca FILE require client certificates signed by this CA (mTLS)\n"
"      --token-file FILE    the token TCP clients must send (first line);\n"
"                           default $SWEREXD_TOKEN. Never on the command line.\n"
"      --insecure           allow tcp:// (plain) listeners on loopback\n"
"      --allow-uid UID      Unix sockets: accept only these peer uids\n"
"                           (repeatable; default: whoever can open the socket)\n"
"      --keepalive SECONDS  notice a dead TCP peer within this (default 30)\n"
"      --auth-timeout SECONDS  TCP peers must authenticate within this (10)\n"
"      --resume-timeout SECONDS  keep a reconnecting client's identity, its\n"
"                           cached responses and running requests this long\n"
"                           after its connection is lost (default 120)\n"
"      --stuck-timeout SECONDS  close a connection that reads none of its\n"
"                           output for this long once that output has reached\n"
"                           its 1 MiB cap, until it drains (default 60)\n"
"      --max-sessions N     refuse new sessions beyond N (default 4096)\n"
"      --max-connections N  refuse connections beyond N (default 4096)\n"
"      --max-frame BYTES    largest request frame accepted (default 16777216)\n"
"      --max-output BYTES   default output cap per command; above it the head\n"
"                           and tail are kept (default 67108864)\n"
"      --scrollback BYTES   recent raw terminal output each session keeps\n"
"                           for new attachments, allocated once it prints\n"
"                           (default 16384, at most 1048576; 0: none)\n"
"      --kill-grace SECONDS time between SIGHUP and SIGKILL when a session\n"
"                           is closed (default 1)\n"
"      --history N          keep the last N commands of each session for\n"
"                           HistoryRequest (swerex history); 0 keeps none\n"
"                           (default 100, at most 100000)\n"
"      --cgroup DIR|none    a delegated cgroup v2 directory for sessions with\n"
"                           memory or pids limits: each gets DIR/session-N.\n"
"                           If swerexd itself is in DIR it moves into\n"
"                           DIR/daemon so that DIR may enable memory and pids\n"
"                           for its children. Default: swerexd's own cgroup\n"
"                           when usable (not the machine's root cgroup, no\n"
"                           other process in it), else such sessions are\n"
"                           refused; none: never\n"
"      --ready-fd N         once serving, write a line LISTEN=ADDR per\n"
"                           listener, then READY=1, to fd N and close it\n"
"      --log-level LEVEL    error, warn, info (default) or debug\n"
"      --log-target TARGET  stderr (default; without timestamps and with\n"
"                           <N> priority prefixes when stderr is the\n"
"                           journal, per $JOURNAL_STREAM) or syslog\n"
"                           (syslog(3), facility daemon)\n"
"  -h, --help               show this help and exit\n"
"  -V, --version            show the version and exit\n"
"\n"
"SIGTERM or SIGINT: stop accepting, end every session's processes, remove\n"
"the socket and exit 0. SIGHUP: reload the certificates and the token (new\n"
"connections use them; sessions and connections are kept). Exit status 1 on\n"
"start-up errors (e.g. another swerexd already serving on the socket, a\n"
"missing certificate or token), 2 on bad usage. With --ready-fd, one line\n"
"LISTEN=ADDR per listener (with the real port) precedes READY=1.\n";

/* Parse a number of seconds in [min, max] or exit. */
static double
main_seconds(const char *opt, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min) || v > max) {
		fprintf(stderr, "swerexd: %s: invalid value '%s' (seconds, %g "
		    "to %g)\n", opt, s, min, max);
		exit(2);
	}
	return v;
}

/* Tell whether systemd passed us listening sockets. */
static bool
main_activated(void)
{
	const char *pid = getenv("LISTEN_PID");

	return pid != NULL && getenv("LISTEN_FDS") != NULL &&
	    strtol(pid, NULL, 10) == (long)getpid();
}

/* Parse a size argument or exit. */
static size_t
main_size(const char *opt, const char *s, size_t min)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] == '-' || v < min ||
	    v > (unsigned long long)SIZE_MAX / 2) {
		fprintf(stderr, "swerexd: %s: invalid value '%s' (at least %zu)\n",
		    opt, s, min);
		exit(2);
	}
	return (size_t)v;
}

int
main(int argc, char **argv)
{
	enum { O_MAX_SESSIONS = 256, O_MAX_CONNS, O_MAX_FRAME, O_MAX_OUTPUT,
	    O_KILL_GRACE, O_READY_FD, O_LOG_LEVEL, O_TLS_CERT, O_TLS_KEY,
	    O_TLS_CLIENT_CA, O_TOKEN_FILE, O_INSECURE, O_ALLOW_UID, O_KEEPALIVE,
	    O_AUTH_TIMEOUT, O_RESUME_TIMEOUT, O_LOG_TARGET, O_STUCK_TIMEOUT,
	    O_SCROLLBACK, O_HISTORY, O_CGROUP };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "max-sessions", required_argument, NULL, O_MAX_SESSIONS },
		{ "max-connections", required_argument, NULL, O_MAX_CONNS },
		{ "max-frame", required_argument, NULL, O_MAX_FRAME },
		{ "max-output", required_argument, NULL, O_MAX_OUTPUT },
		{ "kill-grace", required_argument, NULL, O_KILL_GRACE },
		{ "ready-fd", required_argument, NULL, O_READY_FD },
		{ "log-level", required_argument, NULL, O_LOG_LEVEL },
		{ "log-target", required_argument, NULL, O_LOG_TARGET },
		{ "tls-cert", required_argument, NULL, O_TLS_CERT },
		{ "tls-key", required_argument, NULL, O_TLS_KEY },
		{ "tls-client-ca", required_argument, NULL, O_TLS_CLIENT_CA },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "allow-uid", required_argument, NULL, O_ALLOW_UID },
		{ "keepalive", required_argument, NULL, O_KEEPALIVE },
		{ "auth-timeout", required_argument, NULL, O_AUTH_TIMEOUT },
		{ "resume-timeout", required_argument, NULL, O_RESUME_TIMEOUT },
		{ "stuck-timeout", required_argument, NULL, O_STUCK_TIMEOUT },
		{ "scrollback", required_argument, NULL, O_SCROLLBACK },
		{ "history", required_argument, NULL, O_HISTORY },
		{ "cgroup", required_argument, NULL, O_CGROUP },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct server srv;
	char *def = NULL, *end;
	enum log_target target = LOG_TARGET_STDERR;
	int c, r, level;

	/* swerexd-reaper, when swerexd runs itself under that name. */
	end = strrchr(argv[0], '/');
	if (strcmp(end != NULL ? end + 1 : argv[0], REAPER_NAME) == 0)
		return reaper_main(argc, argv);
	memset(&srv, 0, sizeof srv);
	server_config_defaults(&srv.cfg);
	while ((c = getopt_long(argc, argv, "l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (srv.cfg.n_listen == SERVER_MAX_LISTEN) {
				fprintf(stderr, "swerexd: at most %d --listen\n",
				    SERVER_MAX_LISTEN);
				return 2;
			}
			srv.cfg.listen[srv.cfg.n_listen++] = optarg;
			break;
		case O_MAX_SESSIONS:
			srv.cfg.max_sessions = main_size("--max-sessions", optarg, 0);
			break;
		case O_MAX_CONNS:
			srv.cfg.max_conns = main_size("--max-connections", optarg, 1);
			break;
		case O_MAX_FRAME:
			srv.cfg.max_frame = main_size("--max-frame", optarg, 1024);
			if (srv.cfg.max_frame > UINT32_MAX)
				srv.cfg.max_frame = UINT32_MAX;
			break;
		case O_MAX_OUTPUT:
			srv.cfg.max_output = main_size("--max-output", optarg, 1024);
			break;
		case O_SCROLLBACK:
			srv.cfg.scrollback = main_size("--scrollback", optarg, 0);
			if (srv.cfg.scrollback > ATTACH_RING_LIMIT) {
				fprintf(stderr, "swerexd: --scrollback: at most "
				    "%u\n", ATTACH_RING_LIMIT);
				return 2;
			}
			break;
		case O_KILL_GRACE:
			srv.cfg.kill_grace = strtod(optarg, &end);
			if (*end != '\0' || !(srv.cfg.kill_grace >= 0) ||
			    srv.cfg.kill_grace > 3600) {
				fprintf(stderr, "swerexd: --kill-grace: invalid "
				    "value '%s'\n", optarg);
				return 2;
			}
			break;
		case O_READY_FD:
			srv.cfg.ready_fd = (int)main_size("--ready-fd", optarg, 0);
			if (fcntl(srv.cfg.ready_fd, F_SETFD, FD_CLOEXEC) < 0) {
				fprintf(stderr, "swerexd: --ready-fd %d: %s\n",
				    srv.cfg.ready_fd, strerror(errno));
				return 2;
			}
			break;
		case O_LOG_LEVEL:
			if ((level = log_parse_level(optarg)) < 0) {
				fprintf(stderr, "swerexd: --log-level: unknown "
				    "level '%s'\n", optarg);
				return 2;
			}
			log_set_level((enum log_level)level);
			break;
		case O_LOG_TARGET:
			if ((r = log_parse_target(optarg)) < 0) {
				fprintf(stderr, "swerexd: --log-target: unknown "
				    "target '%s' (stderr or syslog)\n", optarg);
				return 2;
			}
			target = (enum log_target)r;
			break;
		case O_TLS_CERT:
			srv.cfg.tls_cert = optarg;
			break;
		case O_TLS_KEY:
			srv.cfg.tls_key = optarg;
			break;
		case O_TLS_CLIENT_CA:
			srv.cfg.tls_client_ca = optarg;
			break;
		case O_TOKEN_FILE:
			srv.cfg.token_file = optarg;
			break;
		case O_INSECURE:
			srv.cfg.insecure = true;
			break;
		case O_ALLOW_UID:
			if (srv.cfg.n_allow_uid == SERVER_MAX_UIDS) {
				fprintf(stderr, "swerexd: at most %d --allow-uid\n",
				    SERVER_MAX_UIDS);
				return 2;
			}
			srv.cfg.allow_uid[srv.cfg.n_allow_uid++] =
			    (unsigned)main_size("--allow-uid", optarg, 0);
			break;
		case O_KEEPALIVE:
			srv.cfg.keepalive = main_seconds("--keepalive", optarg, 1,
			    86400);
			break;
		case O_AUTH_TIMEOUT:
			srv.cfg.auth_timeout = main_seconds("--auth-timeout",
			    optarg, 0.01, 3600);
			break;
		case O_RESUME_TIMEOUT:
			srv.cfg.resume_timeout = main_seconds("--resume-timeout",
			    optarg, 0, 86400);
			break;
		case O_STUCK_TIMEOUT:
			srv.cfg.stuck_timeout = main_seconds("--stuck-timeout",
			    optarg, 0.01, 86400);
			break;
		case O_HISTORY:
			srv.cfg.history = main_size("--history", optarg, 0);
			if (srv.cfg.history > 100000) {
				fprintf(stderr, "swerexd: --history: at most "
				    "100000\n");
				return 2;
			}
			break;
		case O_CGROUP:
			if (optarg[0] != '/' && strcmp(optarg, "none") != 0) {
				fprintf(stderr, "swerexd: --cgroup: '%s' is neither "
				    "an absolute path nor none\n", optarg);
				return 2;
			}
			srv.cfg.cgroup = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("swerexd %s (protocol %d)\n", SWEREX_VERSION,
			    SWEREX__V1__PROTOCOL_VERSION__PROTOCOL_VERSION_CURRENT);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "swerexd: unexpected argument '%s'\n", argv[optind]);
		fputs(usage_text, stderr);
		return 2;
	}
	if ((srv.cfg.tls_cert == NULL) != (srv.cfg.tls_key == NULL)) {
		fprintf(stderr, "swerexd: --tls-cert and --tls-key go together\n");
		return 2;
	}
	log_open(target);
	if (srv.cfg.n_listen == 0 && !main_activated()) {
		def = server_default_socket();
		if (def == NULL)
			return 1;
		srv.cfg.listen[srv.cfg.n_listen++] = def;
	}
	r = server_init(&srv);
	if (r == 0)
		r = server_run(&srv);
	else
		r = 1;
	server_free(&srv);
	free(def);
	return r;
}
