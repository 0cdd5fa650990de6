/* swerexd: command line and start-up. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>

#include "log.h"
#include "server.h"
#include "wire.h"

static const char usage_text[] =
"Usage: swerexd [OPTION]...\n"
"Serve pty-backed bash sessions to swerex clients over a Unix socket.\n"
"\n"
"  -l, --listen ADDR        listen on ADDR (unix:PATH or an absolute path);\n"
"                           repeatable; default $XDG_RUNTIME_DIR/swerexd.sock,\n"
"                           else /tmp/swerexd-$UID/swerexd.sock (dir 0700);\n"
"                           the socket is created 0600\n"
"      --max-sessions N     refuse new sessions beyond N (default 4096)\n"
"      --max-connections N  refuse connections beyond N (default 4096)\n"
"      --max-frame BYTES    largest request frame accepted (default 16777216)\n"
"      --max-output BYTES   default output cap per command; above it the head\n"
"                           and tail are kept (default 67108864)\n"
"      --kill-grace SECONDS time between SIGHUP and SIGKILL when a session\n"
"                           is closed (default 1)\n"
"      --ready-fd N         write \"READY=1\\n\" to fd N and close it once\n"
"                           serving\n"
"      --log-level LEVEL    error, warn, info (default) or debug\n"
"  -h, --help               show this help and exit\n"
"  -V, --version            show the version and exit\n"
"\n"
"SIGTERM or SIGINT: stop accepting, end every session's processes, remove\n"
"the socket and exit 0. Exit status 1 on start-up errors (e.g. another\n"
"swerexd already serving on the socket), 2 on bad usage.\n";

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
	    O_KILL_GRACE, O_READY_FD, O_LOG_LEVEL };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "max-sessions", required_argument, NULL, O_MAX_SESSIONS },
		{ "max-connections", required_argument, NULL, O_MAX_CONNS },
		{ "max-frame", required_argument, NULL, O_MAX_FRAME },
		{ "max-output", required_argument, NULL, O_MAX_OUTPUT },
		{ "kill-grace", required_argument, NULL, O_KILL_GRACE },
		{ "ready-fd", required_argument, NULL, O_READY_FD },
		{ "log-level", required_argument, NULL, O_LOG_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct server srv;
	char *def = NULL, *end;
	int c, r, level;

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
	if (srv.cfg.n_listen == 0) {
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
