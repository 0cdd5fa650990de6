/* swerex: command-line client for swerexd. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "swerex.h"

/* Exit statuses besides a command's own exit code. */
#define EXIT_ERROR 1       /* any other error */
#define EXIT_USAGE 2       /* bad command line */
#define EXIT_CONNECTION 3  /* daemon unreachable or connection lost */
#define EXIT_TIMEOUT 124   /* command timed out, as timeout(1) */

/* Largest command read from stdin; the daemon's default frame limit. */
#define COMMAND_MAX (16u * 1024 * 1024)

#define CLIENT_NAME "swerex"

/* Global options, set before the subcommand. */
static struct {
	const char *url;  /* NULL: the library's default ($SWEREX_URL, ...) */
	bool json;
} cli;

struct cli_command {
	const char *name;
	int (*fn)(int, char **);
};

/* Output of a run or interrupt printed so far by --stream. */
struct cli_stream {
	uint64_t printed;
};

static const char usage_main[] =
"usage: swerex [-S PATH_OR_URL] [--json] COMMAND [ARGS...]\n"
"       swerex --version | --help\n"
"\n"
"Talk to swerexd, the daemon that runs persistent bash sessions.\n"
"\n"
"Commands:\n"
"  alive                     check that the daemon answers\n"
"  session create            start a bash session\n"
"  session close             end a bash session\n"
"  session list              list the sessions\n"
"  run COMMAND...            run a command in a session\n"
"  interrupt                 interrupt the command running in a session\n"
"\n"
"Options:\n"
"  -S, --socket PATH_OR_URL  daemon socket, \"unix:/path\" or a path (default:\n"
"                            $SWEREX_URL, else $XDG_RUNTIME_DIR/swerexd.sock,\n"
"                            else /tmp/swerexd-$UID/swerexd.sock)\n"
"      --json                print one JSON value on stdout per command\n"
"      --version             print the version and exit\n"
"  -h, --help                print this help and exit\n"
"\n"
"Run \"swerex COMMAND --help\" for the options of a command.\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost. run and interrupt exit with\n"
"the command's exit code (see \"swerex run --help\"); alive exits 1 whenever\n"
"the daemon is not known to be alive. Errors are printed on stderr as\n"
"\"swerex: KIND: message\"; with --json they are also printed on stdout as\n"
"{\"error\": {\"kind\", \"message\", \"extra\", \"observation\"}}.\n";

static const char usage_alive[] =
"usage: swerex [-S PATH_OR_URL] [--json] alive\n"
"\n"
"Ask the daemon whether it is alive and print its message (or \"alive\").\n"
"With --json print {\"alive\": BOOL, \"message\": STRING}.\n"
"\n"
"Options:\n"
"  -h, --help  print this help and exit\n"
"\n"
"Exit status: 0 if the daemon is alive, 1 otherwise (also when it cannot be\n"
"reached), 2 on bad usage.\n";

static const char usage_session[] =
"usage: swerex [-S PATH_OR_URL] [--json] session create [-s NAME]\n"
"                [--startup-source FILE]... [--startup-timeout SECONDS]\n"
"       swerex [-S PATH_OR_URL] [--json] session close [-s NAME]\n"
"       swerex [-S PATH_OR_URL] [--json] session list\n"
"\n"
"Manage bash sessions. Run \"swerex session SUBCOMMAND --help\" for details.\n"
"\n"
"Options:\n"
"  -h, --help  print this help and exit\n";

static const char usage_session_create[] =
"usage: swerex [-S PATH_OR_URL] [--json] session create [-s NAME]\n"
"                [--startup-source FILE]... [--startup-timeout SECONDS]\n"
"\n"
"Start a bash session and print what its startup files printed, as is.\n"
"With --json print {\"session\": NAME, \"output\": STRING}.\n"
"\n"
"Options:\n"
"  -s, --session NAME           session name (default: \"default\")\n"
"      --startup-source FILE    file to source after the rc files; may be\n"
"                               given more than once\n"
"      --startup-timeout SECONDS\n"
"                               how long the startup may take (default: the\n"
"                               daemon's, 10 seconds)\n"
"  -h, --help                   print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_session_close[] =
"usage: swerex [-S PATH_OR_URL] [--json] session close [-s NAME]\n"
"\n"
"End a bash session. With --json print {\"session\": NAME, \"closed\": true}.\n"
"\n"
"Options:\n"
"  -s, --session NAME  session name (default: \"default\")\n"
"  -h, --help          print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_session_list[] =
"usage: swerex [-S PATH_OR_URL] [--json] session list\n"
"\n"
"List the sessions as a table: NAME PID STATE CREATED LAST-COMMAND, where\n"
"CREATED is in ISO 8601 local time and control characters are escaped.\n"
"With --json print an array of {\"name\", \"pid\", \"state\", \"created\"\n"
"(seconds since the epoch), \"last_command\", \"exit_status\"}.\n"
"\n"
"Options:\n"
"  -h, --help  print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_run[] =
"usage: swerex [-S PATH_OR_URL] [--json] run [-s SESSION] [-t SECONDS]\n"
"                [--check raise|silent|ignore] [--stream] [--interactive]\n"
"                [--quit] [-e STRING]... [--error-msg MSG] [--] COMMAND...\n"
"\n"
"Run COMMAND in a session and print its output exactly, byte for byte. The\n"
"words of COMMAND are joined with spaces; a single \"-\" reads the whole\n"
"command from stdin. Put \"--\" before a COMMAND that starts with \"-\".\n"
"\n"
"Options:\n"
"  -s, --session SESSION  session to run in (default: \"default\")\n"
"  -t, --timeout SECONDS  give up after SECONDS (default: wait for ever)\n"
"      --check raise|silent|ignore\n"
"                         raise (default): a non-zero exit code is an error;\n"
"                         silent: it is reported but is no error;\n"
"                         ignore: no exit code is collected\n"
"      --stream           print output as it arrives (not with --json);\n"
"                         output left over from an earlier command is\n"
"                         printed at the end\n"
"      --interactive      COMMAND is sent to an interactive program running\n"
"                         in the session (no exit code)\n"
"      --quit             COMMAND makes that interactive program quit\n"
"  -e, --expect STRING    return when the output shows STRING; may be given\n"
"                         more than once\n"
"      --error-msg MSG    message of the error raised for a non-zero exit\n"
"  -h, --help             print this help and exit\n"
"\n"
"With --json print {\"output\", \"exit_code\" (number or null),\n"
"\"failure_reason\", \"expect_string\", \"truncated\", \"output_bytes\",\n"
"\"carried_over\"}, or {\"error\": {...}} on an error.\n"
"\n"
"Exit status:\n"
"  N    the command's exit code, when one is known: on success (0 when none\n"
"       was collected) and on NON_ZERO_EXIT_CODE, where the output is\n"
"       printed on stdout and the error on stderr\n"
"  1    any other error (partial output, if any, is printed first)\n"
"  2    bad usage\n"
"  3    the daemon cannot be reached or the connection was lost\n"
"  124  the command timed out (COMMAND_TIMEOUT)\n"
"A command's own exit code may coincide with 1, 2, 3 or 124; use\n"
"--check silent or --json to tell them apart.\n";

static const char usage_interrupt[] =
"usage: swerex [-S PATH_OR_URL] [--json] interrupt [-s SESSION] [-t SECONDS]\n"
"                [-n N_RETRY] [-e STRING]...\n"
"\n"
"Interrupt the command running in a session (SIGINT, retried) and print its\n"
"output.\n"
"\n"
"Options:\n"
"  -s, --session SESSION  session to interrupt (default: \"default\")\n"
"  -t, --timeout SECONDS  seconds between SIGINTs (default: 0.2)\n"
"  -n, --n-retry N        SIGINTs to send at most (default: 3)\n"
"  -e, --expect STRING    output that shows the prompt is back; may be given\n"
"                         more than once\n"
"  -h, --help             print this help and exit\n"
"\n"
"With --json print the same object as \"swerex run --json\".\n"
"\n"
"Exit status: as \"swerex run\": the exit code collected after the interrupt\n"
"(0 when none), 1 on an error, 2 on bad usage, 3 if the daemon cannot be\n"
"reached or the connection is lost, 124 on COMMAND_TIMEOUT.\n";

/* Print a message prefixed "swerex: " on stderr. */
static void __attribute__((format(printf, 1, 2)))
cli_warnx(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("swerex: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Print a usage error and the usage text on stderr; return EXIT_USAGE. */
static int __attribute__((format(printf, 2, 3)))
cli_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fputs("swerex: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fputs(usage, stderr);
	return EXIT_USAGE;
}

/* Print the usage text on stdout for --help; return 0. */
static int
cli_help(const char *usage)
{
	fputs(usage, stdout);
	return 0;
}

/* Return the length of the valid UTF-8 sequence at p, or 0 if invalid. */
static size_t
utf8_sequence(const unsigned char *p, size_t left)
{
	unsigned char	lo = 0x80, hi = 0xbf;
	size_t		n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;
	if (left < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	}
	return n;
}

/* Print len bytes as a JSON string; invalid UTF-8 becomes U+FFFD. */
static void
json_string_len(const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	putchar('"');
	while (i < len) {
		switch (p[i]) {
		case '"':
			fputs("\\\"", stdout);
			break;
		case '\\':
			fputs("\\\\", stdout);
			break;
		case '\b':
			fputs("\\b", stdout);
			break;
		case '\f':
			fputs("\\f", stdout);
			break;
		case '\n':
			fputs("\\n", stdout);
			break;
		case '\r':
			fputs("\\r", stdout);
			break;
		case '\t':
			fputs("\\t", stdout);
			break;
		default:
			if (p[i] < 0x20 || p[i] == 0x7f) {
				printf("\\u%04x", p[i]);
				break;
			}
			n = utf8_sequence(p + i, len - i);
			if (n == 0) {
				fputs("\\ufffd", stdout);
				break;
			}
			fwrite(p + i, 1, n, stdout);
			i += n;
			continue;
		}
		i++;
	}
	putchar('"');
}

/* Print a NUL-terminated string (NULL as "") as a JSON string. */
static void
json_string(const char *s)
{
	if (s == NULL)
		s = "";
	json_string_len(s, strlen(s));
}

/* Print a double as a JSON number, or null if it is not finite. */
static void
json_double(double d)
{
	if (isfinite(d))
		printf("%.6f", d);
	else
		fputs("null", stdout);
}

/* Print an observation as a JSON object, or null. */
static void
json_observation(const struct swerex_observation *o)
{
	if (o == NULL) {
		fputs("null", stdout);
		return;
	}
	fputs("{\"output\": ", stdout);
	json_string_len(o->output != NULL ? o->output : "", o->output_len);
	fputs(", \"exit_code\": ", stdout);
	if (o->has_exit_code)
		printf("%d", o->exit_code);
	else
		fputs("null", stdout);
	fputs(", \"failure_reason\": ", stdout);
	json_string(o->failure_reason);
	fputs(", \"expect_string\": ", stdout);
	json_string(o->expect_string);
	printf(", \"truncated\": %s", o->truncated ? "true" : "false");
	printf(", \"output_bytes\": %llu",
	    (unsigned long long)o->output_bytes);
	printf(", \"carried_over\": %llu}",
	    (unsigned long long)o->carried_over);
}

/* Return the name of an error's kind, never NULL. */
static const char *
error_kind_name(const struct swerex_error *err)
{
	const char	*name;

	if (err == NULL)
		return "UNSPECIFIED";
	name = swerex_error_kind_name(err->kind);
	return name != NULL ? name : "UNSPECIFIED";
}

/* Print an error as a JSON object and a newline on stdout. */
static void
json_error(const struct swerex_error *err)
{
	size_t	i;

	fputs("{\"error\": {\"kind\": ", stdout);
	json_string(error_kind_name(err));
	fputs(", \"message\": ", stdout);
	json_string(err != NULL ? err->message : "unknown error");
	fputs(", \"extra\": {", stdout);
	for (i = 0; err != NULL && i < err->n_extra; i++) {
		if (i != 0)
			fputs(", ", stdout);
		json_string(err->extra[i].key);
		fputs(": ", stdout);
		json_string(err->extra[i].value);
	}
	fputs("}, \"observation\": ", stdout);
	json_observation(err != NULL ? err->observation : NULL);
	fputs("}}\n", stdout);
}

/* Print an error on stderr: "swerex: KIND: message", then details. */
static void
error_print(const struct swerex_error *err)
{
	const char	*message, *bash_stderr;
	size_t		 len;

	message = (err != NULL) ? err->message : "unknown error";
	if (message == NULL)
		message = "";
	len = strlen(message);
	while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
		len--;
	if (len > INT_MAX)
		len = INT_MAX;
	if (len != 0)
		cli_warnx("%s: %.*s", error_kind_name(err), (int)len, message);
	else
		cli_warnx("%s", error_kind_name(err));
	if (err == NULL || err->kind != SWEREX_ERR_BASH_INCORRECT_SYNTAX)
		return;

	/* The daemon's message usually quotes bash already; not twice. */
	bash_stderr = swerex_error_extra(err, "bash_stderr");
	if (bash_stderr == NULL || *bash_stderr == '\0' ||
	    strstr(message, bash_stderr) != NULL)
		return;
	len = strlen(bash_stderr);
	fputs(bash_stderr, stderr);
	if (bash_stderr[len - 1] != '\n')
		fputc('\n', stderr);
}

/* Return the exit status for an error other than NON_ZERO_EXIT_CODE. */
static int
error_status(const struct swerex_error *err)
{
	if (err == NULL)
		return EXIT_ERROR;
	switch (err->kind) {
	case SWEREX_ERR_CONNECT:
	case SWEREX_ERR_DISCONNECTED:
		return EXIT_CONNECTION;
	case SWEREX_ERR_COMMAND_TIMEOUT:
		return EXIT_TIMEOUT;
	default:
		return EXIT_ERROR;
	}
}

/* Report an error on stderr (and as JSON with --json); return its status. */
static int
error_report(const struct swerex_error *err)
{
	if (cli.json)
		json_error(err);
	error_print(err);
	return error_status(err);
}

/* Map a command's exit code to a process exit status, non-zero stays so. */
static int
exit_status_of(int code)
{
	if (code >= 0 && code <= 255)
		return code;
	if ((code & 0xff) == 0)
		return 1;
	return code & 0xff;
}

/* Parse a number of seconds: finite and not negative. */
static int
parse_seconds(const char *s, double *out)
{
	char	*end;
	double	 d;

	errno = 0;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !isfinite(d) || d < 0)
		return -1;
	*out = d;
	return 0;
}

/* Parse an unsigned 32-bit count. */
static int
parse_count(const char *s, unsigned *out)
{
	char			*end;
	unsigned long long	 v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0 || v > UINT_MAX)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Connect to the daemon; return 0, or -1 with *err set. */
static int
cli_connect(struct swerex_client **c, struct swerex_error **err)
{
	*c = NULL;
	*err = NULL;
	if (swerex_connect(cli.url, CLIENT_NAME, c, err) == 0)
		return 0;
	return -1;
}

/* Write the output of an observation not already printed by --stream. */
static void
observation_print(const struct swerex_observation *o,
    const struct cli_stream *stream)
{
	size_t	carried, done;

	if (o == NULL || o->output == NULL)
		return;
	if (stream == NULL) {
		fwrite(o->output, 1, o->output_len, stdout);
		return;
	}

	/*
	 * Chunks carry what was printed after the request began; the leading
	 * carried_over bytes (late output of an earlier command) never came
	 * as chunks, so print them now. A truncated observation keeps only
	 * head and tail of what was streamed, so nothing else is missing.
	 */
	carried = o->carried_over < o->output_len ?
	    (size_t)o->carried_over : o->output_len;
	fwrite(o->output, 1, carried, stdout);
	if (o->truncated || stream->printed >= o->output_len - carried)
		return;
	done = carried + (size_t)stream->printed;
	fwrite(o->output + done, 1, o->output_len - done, stdout);
}

/*
 * Print the result of a run or interrupt and return the exit status: the
 * command's exit code when known, else that of the error.
 */
static int
observation_finish(int rc, struct swerex_observation *obs,
    struct swerex_error *err, const struct cli_stream *stream)
{
	const struct swerex_observation	*o;
	const char			*extra;
	char				*end;
	long				 code;
	int				 status;

	if (rc == 0) {
		if (cli.json) {
			json_observation(obs);
			putchar('\n');
		} else
			observation_print(obs, stream);
		if (obs == NULL || !obs->has_exit_code)
			return 0;
		return exit_status_of(obs->exit_code);
	}

	o = (err != NULL) ? err->observation : NULL;
	if (cli.json)
		json_error(err);
	else if (err != NULL && err->kind != SWEREX_ERR_BASH_INCORRECT_SYNTAX) {
		/* A syntax error's output is bash's complaint: for stderr. */
		observation_print(o, stream);
	}
	error_print(err);
	if (err == NULL || err->kind != SWEREX_ERR_NON_ZERO_EXIT_CODE)
		return error_status(err);

	if (o != NULL && o->has_exit_code)
		status = exit_status_of(o->exit_code);
	else {
		status = EXIT_ERROR;
		extra = swerex_error_extra(err, "exit_code");
		if (extra != NULL) {
			errno = 0;
			code = strtol(extra, &end, 10);
			if (end != extra && *end == '\0' && errno == 0 &&
			    code >= INT_MIN && code <= INT_MAX)
				status = exit_status_of((int)code);
		}
	}
	return status != 0 ? status : EXIT_ERROR;
}

/* Check that the daemon is alive. */
static int
cmd_alive(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c;
	struct swerex_error		*err = NULL;
	char				*message = NULL;
	bool				 alive = false;
	int				 ch;

	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cli_help(usage_alive);
		default:
			return cli_usage_error(usage_alive, NULL);
		}
	}
	if (optind != argc)
		return cli_usage_error(usage_alive, "unexpected argument: %s",
		    argv[optind]);

	if (cli_connect(&c, &err) != 0 ||
	    swerex_is_alive(c, &alive, &message, &err) != 0) {
		error_report(err);
		swerex_error_free(err);
		swerex_client_free(c);
		return EXIT_ERROR;
	}
	if (cli.json) {
		printf("{\"alive\": %s, \"message\": ", alive ? "true" : "false");
		json_string(message);
		fputs("}\n", stdout);
	} else if (message != NULL && *message != '\0')
		printf("%s\n", message);
	else
		puts(alive ? "alive" : "not alive");
	free(message);
	swerex_client_free(c);
	return alive ? 0 : EXIT_ERROR;
}

/* Start a session. */
static int
cmd_session_create(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "session", required_argument, NULL, 's' },
		{ "startup-source", required_argument, NULL, 'f' },
		{ "startup-timeout", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_create_opts	 opts;
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	const char			**sources;
	char				*output = NULL;
	size_t				 output_len = 0;
	int				 ch, status = 0;

	memset(&opts, 0, sizeof opts);
	sources = calloc((size_t)argc + 1, sizeof *sources);
	if (sources == NULL) {
		cli_warnx("out of memory");
		return EXIT_ERROR;
	}
	opts.startup_source = sources;
	while ((ch = getopt_long(argc, argv, "+s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			opts.session = optarg;
			break;
		case 'f':
			sources[opts.n_startup_source++] = optarg;
			break;
		case 'T':
			if (parse_seconds(optarg, &opts.startup_timeout) != 0) {
				status = cli_usage_error(usage_session_create,
				    "bad --startup-timeout: %s", optarg);
				goto out;
			}
			break;
		case 'h':
			status = cli_help(usage_session_create);
			goto out;
		default:
			status = cli_usage_error(usage_session_create, NULL);
			goto out;
		}
	}
	if (optind != argc) {
		status = cli_usage_error(usage_session_create,
		    "unexpected argument: %s", argv[optind]);
		goto out;
	}

	if (cli_connect(&c, &err) != 0 ||
	    swerex_create_session(c, &opts, &output, &output_len, &err) != 0) {
		status = error_report(err);
		goto out;
	}
	if (cli.json) {
		fputs("{\"session\": ", stdout);
		json_string(opts.session != NULL && *opts.session != '\0' ?
		    opts.session : "default");
		fputs(", \"output\": ", stdout);
		json_string_len(output != NULL ? output : "", output_len);
		fputs("}\n", stdout);
	} else if (output != NULL)
		fwrite(output, 1, output_len, stdout);

out:
	free(output);
	swerex_error_free(err);
	swerex_client_free(c);
	free(sources);
	return status;
}

/* Close a session. */
static int
cmd_session_close(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "session", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	const char			*session = NULL;
	int				 ch, status = 0;

	while ((ch = getopt_long(argc, argv, "+s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			session = optarg;
			break;
		case 'h':
			return cli_help(usage_session_close);
		default:
			return cli_usage_error(usage_session_close, NULL);
		}
	}
	if (optind != argc)
		return cli_usage_error(usage_session_close,
		    "unexpected argument: %s", argv[optind]);

	if (cli_connect(&c, &err) != 0 ||
	    swerex_close_session(c, session, &err) != 0)
		status = error_report(err);
	else if (cli.json) {
		fputs("{\"session\": ", stdout);
		json_string(session != NULL && *session != '\0' ?
		    session : "default");
		fputs(", \"closed\": true}\n", stdout);
	}
	swerex_error_free(err);
	swerex_client_free(c);
	return status;
}

/* Return the name of a session state. */
static const char *
session_state_name(enum swerex_session_state state)
{
	switch (state) {
	case SWEREX_SESSION_STARTING:
		return "starting";
	case SWEREX_SESSION_IDLE:
		return "idle";
	case SWEREX_SESSION_RUNNING:
		return "running";
	case SWEREX_SESSION_DEAD:
		return "dead";
	default:
		return "unknown";
	}
}

/* Return the printed width of s with control characters escaped. */
static size_t
field_width(const char *s)
{
	const unsigned char	*p;
	size_t			 n = 0;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\t' || *p == '\r' || *p == '\\')
			n += 2;
		else if (*p < 0x20 || *p == 0x7f)
			n += 4;
		else
			n++;
	}
	return n;
}

/* Print s with control characters escaped, padded to width. */
static void
field_print(const char *s, size_t width)
{
	const unsigned char	*p;
	size_t			 w;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p == '\r')
			fputs("\\r", stdout);
		else if (*p == '\\')
			fputs("\\\\", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
	for (w = field_width(s); w < width; w++)
		putchar(' ');
}

/* Format seconds since the epoch as ISO 8601 local time with offset. */
static void
format_time(double t, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 secs;
	long		 off;
	char		 date[32];

	/* Years beyond 9999 are not ISO 8601 without agreement; show none. */
	if (!isfinite(t) || t <= 0 || t >= 253402300800.0) {
		snprintf(buf, len, "-");
		return;
	}
	secs = (time_t)t;
	if (localtime_r(&secs, &tm) == NULL ||
	    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(buf, len, "-");
		return;
	}
	off = tm.tm_gmtoff / 60;
	snprintf(buf, len, "%s%c%02ld:%02ld", date, off < 0 ? '-' : '+',
	    labs(off) / 60, labs(off) % 60);
}

/* Print the sessions as a JSON array. */
static void
sessions_print_json(const struct swerex_session_info *s, size_t n)
{
	size_t	i;

	putchar('[');
	for (i = 0; i < n; i++) {
		fputs(i == 0 ? "{" : ", {", stdout);
		fputs("\"name\": ", stdout);
		json_string(s[i].name);
		printf(", \"pid\": %d, \"state\": ", s[i].pid);
		json_string(session_state_name(s[i].state));
		fputs(", \"created\": ", stdout);
		json_double(s[i].created);
		fputs(", \"last_command\": ", stdout);
		json_string(s[i].last_command);
		printf(", \"exit_status\": %d}", s[i].exit_status);
	}
	fputs("]\n", stdout);
}

/* Print the sessions as a table. */
static void
sessions_print_table(const struct swerex_session_info *s, size_t n)
{
	char	 created[64], pid[16];
	size_t	 i, name_w = strlen("NAME"), pid_w = strlen("PID"), w;
	size_t	 state_w = strlen("starting");

	for (i = 0; i < n; i++) {
		w = field_width(s[i].name != NULL ? s[i].name : "");
		if (w > name_w)
			name_w = w;
		w = (size_t)snprintf(pid, sizeof pid, "%d", s[i].pid);
		if (w > pid_w)
			pid_w = w;
	}
	printf("%-*s  %*s  %-*s  %-25s  %s\n", (int)name_w, "NAME",
	    (int)pid_w, "PID", (int)state_w, "STATE", "CREATED",
	    "LAST-COMMAND");
	for (i = 0; i < n; i++) {
		field_print(s[i].name != NULL ? s[i].name : "", name_w);
		format_time(s[i].created, created, sizeof created);
		printf("  %*d  %-*s  %-25s  ", (int)pid_w, s[i].pid,
		    (int)state_w, session_state_name(s[i].state), created);
		field_print(s[i].last_command != NULL ? s[i].last_command : "",
		    0);
		putchar('\n');
	}
}

/* List the sessions. */
static int
cmd_session_list(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	struct swerex_session_info	*sessions = NULL;
	size_t				 n = 0;
	int				 ch, status = 0;

	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cli_help(usage_session_list);
		default:
			return cli_usage_error(usage_session_list, NULL);
		}
	}
	if (optind != argc)
		return cli_usage_error(usage_session_list,
		    "unexpected argument: %s", argv[optind]);

	if (cli_connect(&c, &err) != 0 ||
	    swerex_list_sessions(c, &sessions, &n, &err) != 0)
		status = error_report(err);
	else if (cli.json)
		sessions_print_json(sessions, n);
	else
		sessions_print_table(sessions, n);
	swerex_sessions_free(sessions, n);
	swerex_error_free(err);
	swerex_client_free(c);
	return status;
}

/* Manage sessions: dispatch to create, close or list. */
static int
cmd_session(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct cli_command	 commands[] = {
		{ "create", cmd_session_create },
		{ "close", cmd_session_close },
		{ "list", cmd_session_list },
	};
	static char			 create_name[] = "swerex session create";
	static char			 close_name[] = "swerex session close";
	static char			 list_name[] = "swerex session list";
	static char			*names[] = {
		create_name, close_name, list_name
	};
	size_t				 i;
	int				 ch;

	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cli_help(usage_session);
		default:
			return cli_usage_error(usage_session, NULL);
		}
	}
	if (optind == argc)
		return cli_usage_error(usage_session, "missing subcommand");
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		argc -= optind;
		argv += optind;
		argv[0] = names[i];
		optind = 0;
		return commands[i].fn(argc, argv);
	}
	return cli_usage_error(usage_session, "unknown subcommand: %s",
	    argv[optind]);
}

/* Read all of stdin into a NUL-terminated string; NULL on error. */
static char *
read_stdin(void)
{
	char	*buf = NULL, *nbuf;
	size_t	 len = 0, size = 0;
	ssize_t	 n;

	for (;;) {
		if (len == size) {
			if (size > COMMAND_MAX) {
				cli_warnx("command on stdin is longer than %u "
				    "bytes", COMMAND_MAX);
				goto fail;
			}
			size = (size == 0) ? 65536 : size * 2;
			if (size > COMMAND_MAX + 1)
				size = COMMAND_MAX + 1;
			if ((nbuf = realloc(buf, size + 1)) == NULL) {
				cli_warnx("out of memory");
				goto fail;
			}
			buf = nbuf;
		}
		n = read(STDIN_FILENO, buf + len, size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			cli_warnx("read stdin: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		cli_warnx("command on stdin contains a NUL byte");
		goto fail;
	}
	return buf;

fail:
	free(buf);
	return NULL;
}

/* Join words with single spaces into a new string; NULL if out of memory. */
static char *
join_words(int argc, char **argv)
{
	char	*s, *p;
	size_t	 len = 1, n;
	int	 i;

	for (i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	if ((s = malloc(len)) == NULL)
		return NULL;
	p = s;
	for (i = 0; i < argc; i++) {
		if (i != 0)
			*p++ = ' ';
		n = strlen(argv[i]);
		memcpy(p, argv[i], n);
		p += n;
	}
	*p = '\0';
	return s;
}

/* Print a streamed output chunk at once. */
static void
run_chunk(const char *data, size_t len, void *arg)
{
	struct cli_stream	*stream = arg;

	fwrite(data, 1, len, stdout);
	fflush(stdout);
	stream->printed += len;
}

/* Run a command in a session. */
static int
cmd_run(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "session", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "check", required_argument, NULL, 'c' },
		{ "stream", no_argument, NULL, 'S' },
		{ "interactive", no_argument, NULL, 'i' },
		{ "quit", no_argument, NULL, 'q' },
		{ "expect", required_argument, NULL, 'e' },
		{ "error-msg", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_run_opts		 opts;
	struct cli_stream		 stream = { 0 };
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	struct swerex_observation	*obs = NULL;
	const char			**expect;
	char				*command = NULL;
	bool				 streaming = false;
	int				 ch, rc, status = 0;

	memset(&opts, 0, sizeof opts);
	opts.check = SWEREX_CHECK_RAISE;
	expect = calloc((size_t)argc + 1, sizeof *expect);
	if (expect == NULL) {
		cli_warnx("out of memory");
		return EXIT_ERROR;
	}
	opts.expect = expect;
	while ((ch = getopt_long(argc, argv, "+s:t:e:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			opts.session = optarg;
			break;
		case 't':
			if (parse_seconds(optarg, &opts.timeout) != 0) {
				status = cli_usage_error(usage_run,
				    "bad --timeout: %s", optarg);
				goto out;
			}
			opts.has_timeout = true;
			break;
		case 'c':
			if (strcmp(optarg, "raise") == 0)
				opts.check = SWEREX_CHECK_RAISE;
			else if (strcmp(optarg, "silent") == 0)
				opts.check = SWEREX_CHECK_SILENT;
			else if (strcmp(optarg, "ignore") == 0)
				opts.check = SWEREX_CHECK_IGNORE;
			else {
				status = cli_usage_error(usage_run,
				    "bad --check: %s (raise, silent or ignore)",
				    optarg);
				goto out;
			}
			break;
		case 'S':
			streaming = true;
			break;
		case 'i':
			opts.is_interactive_command = true;
			break;
		case 'q':
			opts.is_interactive_quit = true;
			break;
		case 'e':
			expect[opts.n_expect++] = optarg;
			break;
		case 'm':
			opts.error_msg = optarg;
			break;
		case 'h':
			status = cli_help(usage_run);
			goto out;
		default:
			status = cli_usage_error(usage_run, NULL);
			goto out;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		status = cli_usage_error(usage_run, "missing COMMAND");
		goto out;
	}
	if (streaming && cli.json) {
		status = cli_usage_error(usage_run,
		    "--stream cannot be used with --json");
		goto out;
	}

	if (argc == 1 && strcmp(argv[0], "-") == 0) {
		if ((command = read_stdin()) == NULL) {
			status = EXIT_ERROR;
			goto out;
		}
	} else if ((command = join_words(argc, argv)) == NULL) {
		cli_warnx("out of memory");
		status = EXIT_ERROR;
		goto out;
	}
	opts.command = command;
	if (streaming) {
		opts.on_chunk = run_chunk;
		opts.chunk_arg = &stream;
	}

	if (cli_connect(&c, &err) != 0) {
		status = error_report(err);
		goto out;
	}
	rc = swerex_run(c, &opts, &obs, &err);
	status = observation_finish(rc, obs, err,
	    streaming ? &stream : NULL);

out:
	swerex_observation_free(obs);
	swerex_error_free(err);
	swerex_client_free(c);
	free(command);
	free(expect);
	return status;
}

/* Interrupt the command running in a session. */
static int
cmd_interrupt(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "session", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "n-retry", required_argument, NULL, 'n' },
		{ "expect", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_interrupt_opts	 opts;
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	struct swerex_observation	*obs = NULL;
	const char			**expect;
	int				 ch, rc, status = 0;

	memset(&opts, 0, sizeof opts);
	expect = calloc((size_t)argc + 1, sizeof *expect);
	if (expect == NULL) {
		cli_warnx("out of memory");
		return EXIT_ERROR;
	}
	opts.expect = expect;
	while ((ch = getopt_long(argc, argv, "+s:t:n:e:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			opts.session = optarg;
			break;
		case 't':
			if (parse_seconds(optarg, &opts.timeout) != 0 ||
			    opts.timeout == 0) {
				status = cli_usage_error(usage_interrupt,
				    "bad --timeout: %s", optarg);
				goto out;
			}
			break;
		case 'n':
			if (parse_count(optarg, &opts.n_retry) != 0) {
				status = cli_usage_error(usage_interrupt,
				    "bad --n-retry: %s", optarg);
				goto out;
			}
			opts.has_n_retry = true;
			break;
		case 'e':
			expect[opts.n_expect++] = optarg;
			break;
		case 'h':
			status = cli_help(usage_interrupt);
			goto out;
		default:
			status = cli_usage_error(usage_interrupt, NULL);
			goto out;
		}
	}
	if (optind != argc) {
		status = cli_usage_error(usage_interrupt,
		    "unexpected argument: %s", argv[optind]);
		goto out;
	}

	if (cli_connect(&c, &err) != 0) {
		status = error_report(err);
		goto out;
	}
	rc = swerex_interrupt(c, &opts, &obs, &err);
	status = observation_finish(rc, obs, err, NULL);

out:
	swerex_observation_free(obs);
	swerex_error_free(err);
	swerex_client_free(c);
	free(expect);
	return status;
}

/* Parse the global options and run the subcommand. */
int
main(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "json", no_argument, NULL, 'j' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct cli_command	 commands[] = {
		{ "alive", cmd_alive },
		{ "session", cmd_session },
		{ "run", cmd_run },
		{ "interrupt", cmd_interrupt },
	};
	static char			 alive_name[] = "swerex alive";
	static char			 session_name[] = "swerex session";
	static char			 run_name[] = "swerex run";
	static char			 interrupt_name[] = "swerex interrupt";
	static char			*names[] = {
		alive_name, session_name, run_name, interrupt_name
	};
	static char			 main_name[] = "swerex";
	const char			*url;
	size_t				 i;
	int				 ch, status = -1;

	argv[0] = main_name;	/* getopt's messages then start "swerex: " */
	while ((ch = getopt_long(argc, argv, "+S:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'S':
			cli.url = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'V':
			printf("swerex %s\n", SWEREX_VERSION);
			status = 0;
			goto out;
		case 'h':
			status = cli_help(usage_main);
			goto out;
		default:
			return cli_usage_error(usage_main, NULL);
		}
	}
	if (cli.url == NULL && (url = getenv("SWEREX_URL")) != NULL &&
	    *url != '\0')
		cli.url = url;
	if (optind == argc)
		return cli_usage_error(usage_main, "missing command");

	for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[optind], commands[i].name) != 0)
			continue;
		argc -= optind;
		argv += optind;
		argv[0] = names[i];
		optind = 0;	/* reinitialise getopt for the subcommand */
		status = commands[i].fn(argc, argv);
		break;
	}
	if (status == -1)
		return cli_usage_error(usage_main, "unknown command: %s",
		    argv[optind]);

out:
	if (fflush(stdout) != 0)
		fprintf(stderr, "swerex: write stdout: %s\n", strerror(errno));
	else if (ferror(stdout))
		fprintf(stderr, "swerex: write stdout: error\n");
	else
		return status;
	return status == 0 ? EXIT_ERROR : status;
}
