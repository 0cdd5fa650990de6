/* swerex: command-line client for swerexd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "swerex.h"

/* Exit statuses besides a command's own exit code. */
#define EXIT_ERROR 1       /* any other error */
#define EXIT_USAGE 2       /* bad command line */
#define EXIT_CONNECTION 3  /* daemon unreachable or connection lost */
#define EXIT_TIMEOUT 124   /* command timed out, as timeout(1) */
#define EXIT_NOT_FOUND 127 /* exec: program not found, as a shell */

/* Largest command read from stdin; the daemon's default frame limit. */
#define COMMAND_MAX (16u * 1024 * 1024)
/* Largest input of write and exec --stdin-file: the library's frame limit. */
#define INPUT_MAX (256u * 1024 * 1024)
/* Bytes a transfer must reach before it shows its progress. */
#define PROGRESS_MIN (4u * 1024 * 1024)

#define CLIENT_NAME "swerex"
/* Bytes typed at once under swerex attach --write (the daemon's own cap). */
#define ATTACH_INPUT_MAX 65536

/* Global options, set before the subcommand. */
static struct {
	const char *url;  /* NULL: the library's default ($SWEREX_URL, ...) */
	bool json;
	/* Connection options; NULL or 0: the library's default (which reads
	 * $SWEREX_CA, $SWEREX_CERT, $SWEREX_KEY, $SWEREX_TOKEN,
	 * $SWEREX_TOKEN_FILE). There is no option for the token itself: the
	 * command line is visible to every user in ps. */
	const char *ca;
	const char *cert;
	const char *key;
	const char *token_file;
	const char *server_name;
	double connect_timeout;
	bool reconnect;
} cli;

struct cli_command {
	const char *name;
	int (*fn)(int, char **);
};

/* Output of a run or interrupt printed so far by --stream. */
struct cli_stream {
	uint64_t printed;
};

/* Output of an exec printed so far by --stream, per stream. */
struct cli_exec_stream {
	uint64_t out;
	uint64_t err;
};

/* Progress of an upload or download, shown on stderr if it is a terminal. */
struct cli_progress {
	const char *verb;
	bool tty;
	bool shown;
	uint64_t bytes;
	uint64_t files;
	struct timespec last;
};

static const char usage_main[] =
"usage: swerex [-S URL] [--json] [CONNECTION OPTIONS] COMMAND [ARGS...]\n"
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
"  resize SESSION ROWS COLS  set the terminal size of a session\n"
"  exec -- ARGV...           run a one-off command outside the sessions\n"
"  read PATH                 print a file of the daemon's host\n"
"  write PATH                replace a file of the daemon's host with stdin\n"
"  upload SRC DST            copy a local file or tree to the daemon's host\n"
"  download SRC DST          copy a file or tree from the daemon's host\n"
"  input SESSION ARG...      type text or keys into a session's program\n"
"  attach SESSION            watch a session's terminal live\n"
"  stats                     show the daemon's statistics\n"
"  history [SESSION]         show the last commands of a session\n"
"\n"
"Options:\n"
"  -S, --socket URL          the daemon: \"unix:/path\" or a path,\n"
"                            \"tls://HOST:PORT\", or \"tcp://HOST:PORT\" (plain,\n"
"                            for a daemon's --insecure loopback listener);\n"
"                            IPv6 as \"[ADDR]:PORT\" (default: $SWEREX_URL,\n"
"                            else $XDG_RUNTIME_DIR/swerexd.sock, else\n"
"                            /tmp/swerexd-$UID/swerexd.sock)\n"
"      --json                print one JSON value on stdout per command\n"
"      --version             print the version and exit\n"
"  -h, --help                print this help and exit\n"
"\n"
"Connection options (--ca, --server-name, --cert and --key: tls:// only):\n"
"      --ca FILE             verify the daemon's certificate against the CA\n"
"                            certificates in FILE (default: $SWEREX_CA, else\n"
"                            the system's store)\n"
"      --server-name NAME    name the daemon's certificate must carry\n"
"                            (default: the URL's host)\n"
"      --cert FILE           client certificate, for daemons that require one\n"
"                            (default: $SWEREX_CERT)\n"
"      --key FILE            its private key (default: $SWEREX_KEY)\n"
"      --token-file FILE     send the token in the first line of FILE\n"
"                            (default for tls:// and tcp://: $SWEREX_TOKEN,\n"
"                            else the file named by $SWEREX_TOKEN_FILE); the\n"
"                            token itself is never taken on the command line,\n"
"                            where ps shows it\n"
"      --connect-timeout SECONDS\n"
"                            give up connecting (TCP, TLS and handshake)\n"
"                            after SECONDS (default: 10)\n"
"      --reconnect           if the connection is lost during the command,\n"
"                            reconnect for up to 30 seconds and retry; a\n"
"                            request that may already have run is retried\n"
"                            only if the daemon still knows this client\n"
"\n"
"Run \"swerex COMMAND --help\" for the options of a command.\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost. run, interrupt and exec exit\n"
"with the command's exit code (see \"swerex run --help\", \"swerex exec\n"
"--help\"); alive exits 1 whenever the daemon is not known to be alive.\n"
"Errors are printed on stderr as \"swerex: KIND: message\"; with --json they\n"
"are also printed on stdout as {\"error\": {\"kind\", \"message\", \"extra\",\n"
"\"observation\"}}, plus \"execute\" for an exec's output. A refused token\n"
"is \"UNAUTHENTICATED\" (exit status 3), a failed certificate check\n"
"\"CONNECT\" with its cause.\n";

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
"                [--rows N] [--cols N] [--env NAME=VALUE]... [--cwd DIR]\n"
"                [--inherit-env]\n"
"                [--limit NAME=VALUE]...\n"
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
"                [--rows N] [--cols N] [--env NAME=VALUE]... [--cwd DIR]\n"
"                [--inherit-env]\n"
"                [--limit NAME=VALUE]...\n"
"\n"
"Start a bash session and print what its startup files printed, as is.\n"
"With --json print {\"session\": NAME, \"output\": STRING}.\n"
"The session's environment is clean: PATH, HOME, USER, LOGNAME, SHELL,\n"
"LANG, LC_* and TZ from the daemon, then the --env variables, then\n"
"TERM=xterm unless --env sets TERM.\n"
"\n"
"Options:\n"
"  -s, --session NAME           session name (default: \"default\")\n"
"      --startup-source FILE    file to source after the rc files; may be\n"
"                               given more than once\n"
"      --startup-timeout SECONDS\n"
"                               how long the startup may take (default: the\n"
"                               daemon's, 10 seconds)\n"
"      --rows N                 terminal rows, 1 to 10000 (default: 50)\n"
"      --cols N                 terminal columns, 1 to 10000 (default: 200)\n"
"      --env NAME=VALUE         set a variable in the session; may be given\n"
"                               more than once (not PS1, PROMPT_COMMAND or\n"
"                               SWEREX_SESSION, which swerexd sets itself)\n"
"      --cwd DIR                bash's directory (default: the daemon's)\n"
"      --inherit-env            start from the daemon's whole environment\n"
"                               instead of a clean one\n"
"      --limit NAME=VALUE       limit the session's resources; repeatable.\n"
"                               Per process (rlimits, bash and each program\n"
"                               it starts): cpu=SECONDS, address_space=BYTES,\n"
"                               nproc=N (processes of the daemon's user; no\n"
"                               effect when the daemon runs as root),\n"
"                               file_size=BYTES. For the whole session (needs\n"
"                               a delegated cgroup v2 on the daemon's side):\n"
"                               memory=BYTES, pids=N. BYTES may end in K, M,\n"
"                               G or T (powers of 1024). A command that one\n"
"                               ends (cpu, file_size, memory, pids) fails\n"
"                               with LIMIT_EXCEEDED\n"
"  -h, --help                   print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error (RESOURCE_EXHAUSTED when a limit\n"
"cannot be applied), 2 on bad usage, 3 if the daemon cannot be reached or\n"
"the connection is lost.\n";

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
"                [--no-output-timeout SECONDS] [--check raise|silent|ignore]\n"
"                [--stream] [--interactive] [--quit] [-e STRING]...\n"
"                [--error-msg MSG] [--] COMMAND...\n"
"       swerex [-S PATH_OR_URL] [--json] run --wait [-s SESSION] [OPTIONS]\n"
"\n"
"Run COMMAND in a session and print its output exactly, byte for byte. The\n"
"words of COMMAND are joined with spaces; a single \"-\" reads the whole\n"
"command from stdin. Put \"--\" before a COMMAND that starts with \"-\".\n"
"With --wait, send no command: wait for the one still running (after\n"
"NO_OUTPUT_TIMEOUT, a timeout or an --expect match) and print what it\n"
"printed since; on a session at its prompt, print what is pending and\n"
"exit with the last exit code at once.\n"
"\n"
"Options:\n"
"  -s, --session SESSION  session to run in (default: \"default\")\n"
"  -t, --timeout SECONDS  give up after SECONDS (default: wait for ever)\n"
"      --no-output-timeout SECONDS\n"
"                         give up when nothing is printed for SECONDS\n"
"                         (NO_OUTPUT_TIMEOUT); the command keeps running:\n"
"                         wait for it with --wait, type with --interactive\n"
"                         or interrupt it\n"
"      --wait             wait for the running command instead of sending one\n"
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
"  124  the command timed out (COMMAND_TIMEOUT or NO_OUTPUT_TIMEOUT)\n"
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

static const char usage_resize[] =
"usage: swerex [-S PATH_OR_URL] [--json] resize SESSION ROWS COLS\n"
"\n"
"Set the terminal size of a session (1 to 10000 rows and columns); the\n"
"program in its foreground gets SIGWINCH. Allowed while a command runs.\n"
"With --json print {\"session\", \"rows\", \"cols\"}.\n"
"\n"
"Options:\n"
"  -h, --help  print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_exec[] =
"usage: swerex [-S PATH_OR_URL] [--json] exec [--shell] [--cwd DIR]\n"
"                [--env NAME=VALUE]... [--replace-env] [-t SECONDS] [--merge]\n"
"                [--check] [--stdin-file FILE|-] [--stream] [--] ARGV...\n"
"\n"
"Run a one-off command on the daemon's host, outside the bash sessions, in\n"
"its own process group. Its stdout is printed on stdout and its stderr on\n"
"stderr, byte for byte, once it has ended (as they arrive with --stream).\n"
"Put \"--\" before ARGV when it has options of its own.\n"
"\n"
"Options:\n"
"      --shell              join the words of ARGV with spaces into one\n"
"                           command and run it with /bin/sh -c\n"
"      --cwd DIR            directory to run in (default: the daemon's)\n"
"      --env NAME=VALUE     set a variable; may be given more than once\n"
"      --replace-env        the --env variables are the whole environment\n"
"                           (default: they are added to the daemon's)\n"
"  -t, --timeout SECONDS    stop the command, its whole process group, after\n"
"                           SECONDS (default: wait for ever)\n"
"      --merge              send stderr into stdout, in the order written\n"
"      --check              a non-zero exit is an error (NON_ZERO_EXIT_CODE)\n"
"      --stdin-file FILE|-  give the command FILE (\"-\": all of stdin) as\n"
"                           its stdin (default: /dev/null)\n"
"      --stream             print output as it arrives (not with --json)\n"
"  -h, --help               print this help and exit\n"
"\n"
"The daemon keeps the head and tail of an output above its cap; a note on\n"
"stderr says when that happened. With --json print {\"stdout\", \"stderr\",\n"
"\"exit_code\" (number or null), \"signal\", \"stdout_truncated\",\n"
"\"stderr_truncated\", \"stdout_bytes\", \"stderr_bytes\",\n"
"\"failure_reason\"}, or {\"error\": {...}} with that object as \"execute\"\n"
"when there is output.\n"
"\n"
"Exit status:\n"
"  N        the command's exit code (also with --check, after the error)\n"
"  128+N    the command was killed by signal N\n"
"  1        any other error\n"
"  2        bad usage\n"
"  3        the daemon cannot be reached or the connection was lost\n"
"  124      the command timed out (COMMAND_TIMEOUT); its output so far is\n"
"           printed first\n"
"  127      the program was not found (FILE_NOT_FOUND; also a missing --cwd)\n"
"A command's own exit code may coincide with these; use --json to tell\n"
"them apart.\n";

static const char usage_read[] =
"usage: swerex [-S PATH_OR_URL] [--json] read [--offset N] [--length N] PATH\n"
"\n"
"Print the bytes of a file on the daemon's host on stdout, exactly.\n"
"With --json print {\"content\": STRING, \"size\": N}, where size is the\n"
"file's size and invalid UTF-8 in content becomes U+FFFD.\n"
"\n"
"Options:\n"
"      --offset N  start N bytes into the file (default: 0)\n"
"      --length N  read at most N bytes (default: to the end)\n"
"  -h, --help      print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error (e.g. FILE_NOT_FOUND), 2 on bad\n"
"usage, 3 if the daemon cannot be reached or the connection is lost.\n";

static const char usage_write[] =
"usage: swerex [-S PATH_OR_URL] [--json] write [--mode OCTAL]\n"
"                [--no-create-parents] PATH\n"
"\n"
"Replace a file on the daemon's host with all of stdin, atomically: it is\n"
"written beside PATH and renamed over it. For large files use upload.\n"
"With --json print {\"path\": PATH, \"bytes\": N}.\n"
"\n"
"Options:\n"
"      --mode OCTAL         permission bits (default: those of the file\n"
"                           replaced, else 0644)\n"
"      --no-create-parents  fail if PATH's directory does not exist\n"
"                           (default: create missing directories)\n"
"  -h, --help               print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_upload[] =
"usage: swerex [-S PATH_OR_URL] [--json] upload SRC DST\n"
"\n"
"Copy the local file or directory SRC to DST on the daemon's host. A\n"
"directory's contents land at DST, merged into DST if it is a directory\n"
"already; modes, empty directories and symlinks are kept (symlinks in the\n"
"tree are not followed; sockets, fifos and devices are skipped). Nothing\n"
"changes at DST unless the whole transfer succeeds.\n"
"On a terminal, a transfer of more than a few MiB shows its progress on\n"
"stderr. With --json print {\"source\", \"destination\", \"bytes\",\n"
"\"files\"}.\n"
"\n"
"Options:\n"
"  -h, --help  print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_download[] =
"usage: swerex [-S PATH_OR_URL] [--json] download SRC DST\n"
"\n"
"Copy the file or directory SRC on the daemon's host to the local DST. A\n"
"directory's contents land at DST, merged into DST if it is a directory\n"
"already; a file replaces DST, which must not be a directory. Modes, empty\n"
"directories and symlinks are kept. Missing parents of DST are created\n"
"first. The transfer is written beside DST and moved into place at the\n"
"end: a failed transfer leaves nothing behind (but a merge that fails\n"
"half-way keeps what it moved). On a terminal, a transfer of more than a\n"
"few MiB shows its progress on stderr. With --json print {\"source\",\n"
"\"destination\", \"bytes\", \"files\"}.\n"
"\n"
"Options:\n"
"  -h, --help  print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_input[] =
"usage: swerex [-S PATH_OR_URL] [--json] input [--keys] SESSION ARG...\n"
"\n"
"Type into the program a command runs in SESSION (less, top, a y/n prompt,\n"
"a REPL), exactly as typed: the ARGs are sent one after another, with no\n"
"space between them and no newline added. With --keys each ARG is a key\n"
"name, tmux send-keys style: C-a .. C-z, C-[ / Escape, C-], Enter, Tab,\n"
"BTab, Space, BSpace, Up, Down, Left, Right, Home, End, PageUp, PageDown,\n"
"Insert, Delete, F1 .. F12, a single character as itself, and M- before\n"
"any of them (M-x). The output\n"
"goes to whichever request waits on the session (or to its next run).\n"
"The daemon refuses input while bash is at its prompt (use \"swerex run\")\n"
"and more than 64 KiB at once. With --json print {\"bytes_written\"}.\n"
"\n"
"Options:\n"
"  -k, --keys  the ARGs are key names\n"
"  -h, --help  print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage or an unknown\n"
"key name, 3 if the daemon cannot be reached or the connection is lost.\n";

static const char usage_attach[] =
"usage: swerex [-S PATH_OR_URL] attach [-w] [-d KEY] [--scrollback BYTES]\n"
"                SESSION\n"
"\n"
"Watch SESSION live in this terminal, like tmux attach: first its recent\n"
"output, then everything its terminal prints, escape sequences and all,\n"
"while the agent's requests go on as before. The terminal is put in raw\n"
"mode and restored on exit (detach, the session's end, the daemon's loss,\n"
"SIGTERM, SIGHUP). Read-only by default: typed keys other than the detach\n"
"key are ignored. The detach key (default C-], as in telnet) detaches.\n"
"When stdin is not a terminal, output is streamed until the session ends\n"
"or SIGINT (C-c) detaches; stdin is not read. Output this client does not\n"
"read fast enough is skipped by the daemon (\"[swerex: output skipped]\"),\n"
"never slowing the session.\n"
"\n"
"Options:\n"
"  -w, --write             forward typed keys to the session's program (as\n"
"                          \"swerex input\"; refused while bash is at its\n"
"                          prompt), and give the session this terminal's\n"
"                          size, following its changes\n"
"  -d, --detach-key KEY    key that detaches, a one-byte key name such as\n"
"                          C-] or C-q (default: C-])\n"
"      --scrollback BYTES  recent output shown first (default: the daemon's\n"
"                          16 KiB; 0: none)\n"
"  -h, --help              print this help and exit\n"
"\n"
"Exit status: 0 when detached or the session ended, 1 on an error (e.g. no\n"
"such session), 2 on bad usage, 3 if the daemon cannot be reached or the\n"
"connection is lost; 128+N after signal N.\n";

static const char usage_stats[] =
"usage: swerex [-S PATH_OR_URL] [--json] stats [--json] [--prometheus]\n"
"\n"
"Show the daemon's statistics since it started: uptime, sessions by state\n"
"and created, commands (BashActions answered), executes, requests, errors,\n"
"bytes in and out (frame bytes, TLS overhead not included), the latency of\n"
"commands (count, mean, and the bucket bounds that hold 50, 90 and 99 per\n"
"cent of them) and each open connection (ID PEER CLIENT REQUESTS IN OUT\n"
"CONNECTED). This swerex's own connection is one of them.\n"
"With --json print {\"daemon_version\", \"uptime\", \"sessions\": {\"starting\",\n"
"\"idle\", \"running\", \"dead\"}, \"sessions_created\", \"commands\",\n"
"\"executes\", \"requests\", \"errors\", \"bytes_in\", \"bytes_out\",\n"
"\"command_latency\": {\"buckets\": [{\"le\", \"count\"}], \"count\", \"sum\"},\n"
"\"connections\": [{\"id\", \"peer\", \"client_name\", \"requests\",\n"
"\"bytes_in\", \"bytes_out\", \"connected\"}]}; le is in seconds, \"+Inf\" for\n"
"the last bucket, and counts are cumulative.\n"
"\n"
"Options:\n"
"      --json        print JSON (as the global --json)\n"
"      --prometheus  print the statistics in the Prometheus text exposition\n"
"                    format instead (with --json: as \"prometheus\" in the\n"
"                    JSON), e.g. for node_exporter's textfile collector\n"
"  -h, --help        print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error, 2 on bad usage, 3 if the daemon\n"
"cannot be reached or the connection is lost.\n";

static const char usage_history[] =
"usage: swerex [-S PATH_OR_URL] [--json] history [--json] [-n N] [SESSION]\n"
"\n"
"Show the last commands run in SESSION (default: \"default\"), oldest first,\n"
"as a table: SEQ EXIT DURATION OUTPUT STARTED REASON COMMAND, where SEQ\n"
"counts the session's commands from 1, EXIT is \"-\" until the command has\n"
"ended with a known code, DURATION runs to its last answer, OUTPUT is the\n"
"bytes it printed (before truncation), STARTED is ISO 8601 local time,\n"
"REASON is why it did not end normally (timeout, interrupted, session\n"
"died, syntax error, ...) and COMMAND is its first 4096 bytes, control\n"
"characters escaped. Interactive input to a running command is not listed:\n"
"it counts toward that command (typed at bash's own prompt, it is one).\n"
"The daemon keeps its --history (default 100).\n"
"With --json print {\"session\", \"total\", \"entries\": [{\"seq\",\n"
"\"command\", \"exit_code\" (or null), \"started\", \"duration\",\n"
"\"output_bytes\", \"failure_reason\"}]}.\n"
"\n"
"Options:\n"
"  -n, --limit N       show at most the N newest commands\n"
"  -s, --session NAME  the session (instead of SESSION)\n"
"      --json          print JSON (as the global --json)\n"
"  -h, --help          print this help and exit\n"
"\n"
"Exit status: 0 on success, 1 on an error (SESSION_DOES_NOT_EXIST for an\n"
"unknown session), 2 on bad usage, 3 if the daemon cannot be reached or the\n"
"connection is lost.\n";

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

/* Print an exec's result as a JSON object, or null. */
static void
json_exec_result(const struct swerex_exec_result *r)
{
	if (r == NULL) {
		fputs("null", stdout);
		return;
	}
	fputs("{\"stdout\": ", stdout);
	json_string_len(r->stdout_data != NULL ? r->stdout_data : "",
	    r->stdout_len);
	fputs(", \"stderr\": ", stdout);
	json_string_len(r->stderr_data != NULL ? r->stderr_data : "",
	    r->stderr_len);
	fputs(", \"exit_code\": ", stdout);
	if (r->has_exit_code)
		printf("%d", r->exit_code);
	else
		fputs("null", stdout);
	printf(", \"signal\": %d", r->signal);
	printf(", \"stdout_truncated\": %s",
	    r->stdout_truncated ? "true" : "false");
	printf(", \"stderr_truncated\": %s",
	    r->stderr_truncated ? "true" : "false");
	printf(", \"stdout_bytes\": %llu",
	    (unsigned long long)r->stdout_bytes);
	printf(", \"stderr_bytes\": %llu",
	    (unsigned long long)r->stderr_bytes);
	fputs(", \"failure_reason\": ", stdout);
	json_string(r->failure_reason);
	putchar('}');
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
	if (err != NULL && err->exec_result != NULL) {
		fputs(", \"execute\": ", stdout);
		json_exec_result(err->exec_result);
	}
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
	case SWEREX_ERR_UNAUTHENTICATED:
		return EXIT_CONNECTION;
	case SWEREX_ERR_COMMAND_TIMEOUT:
	case SWEREX_ERR_NO_OUTPUT_TIMEOUT:
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

/* Return the exit status named by an error's "exit_code" detail, or 1. */
static int
extra_exit_status(const struct swerex_error *err)
{
	const char	*extra;
	char		*end;
	long		 code;

	extra = swerex_error_extra(err, "exit_code");
	if (extra == NULL)
		return EXIT_ERROR;
	errno = 0;
	code = strtol(extra, &end, 10);
	if (end == extra || *end != '\0' || errno != 0 || code < INT_MIN ||
	    code > INT_MAX)
		return EXIT_ERROR;
	return exit_status_of((int)code);
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

/* Connect to the daemon (on base, if not NULL); 0, or -1 with *err set. */
static int
cli_connect_on(struct event_base *base, struct swerex_client **c,
    struct swerex_error **err)
{
	struct swerex_connect_opts o;

	*c = NULL;
	*err = NULL;
	swerex_connect_opts_init(&o);
	o.base = base;
	o.url = cli.url;
	o.client_name = CLIENT_NAME;
	o.ca_file = cli.ca;
	o.server_name = cli.server_name;
	o.cert_file = cli.cert;
	o.key_file = cli.key;
	o.token_file = cli.token_file;
	o.connect_timeout = cli.connect_timeout;
	o.reconnect = cli.reconnect;
	if (swerex_connect_with(&o, c, err) == 0)
		return 0;
	return -1;
}

/* Connect to the daemon; return 0, or -1 with *err set. */
static int
cli_connect(struct swerex_client **c, struct swerex_error **err)
{
	return cli_connect_on(NULL, c, err);
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
	else
		status = extra_exit_status(err);
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

/* Parse NAME=VALUE of --limit into l; return 0, or -1 if it is bad. */
static int
parse_limit(const char *arg, struct swerex_limits *l)
{
	static const struct {
		const char	*name;
		size_t		 offset;
		bool		 bytes;
	} names[] = {
		{ "cpu", offsetof(struct swerex_limits, cpu_seconds), false },
		{ "cpu_seconds", offsetof(struct swerex_limits, cpu_seconds), false },
		{ "address_space", offsetof(struct swerex_limits, address_space),
		    true },
		{ "nproc", offsetof(struct swerex_limits, nproc), false },
		{ "file_size", offsetof(struct swerex_limits, file_size), true },
		{ "memory", offsetof(struct swerex_limits, memory), true },
		{ "pids", offsetof(struct swerex_limits, pids), false },
	};
	const char		*eq = strchr(arg, '=');
	char			*end;
	unsigned long long	 v;
	unsigned		 shift = 0;
	size_t			 i;

	if (eq == NULL)
		return -1;
	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i].name) == (size_t)(eq - arg) &&
		    strncmp(arg, names[i].name, (size_t)(eq - arg)) == 0)
			break;
	if (i == sizeof names / sizeof names[0] || eq[1] < '0' || eq[1] > '9')
		return -1;
	errno = 0;
	v = strtoull(eq + 1, &end, 10);
	if (errno != 0 || v == 0)
		return -1;
	if (names[i].bytes && *end != '\0' && end[1] == '\0') {
		switch (*end++) {
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		case 'T': shift = 40; break;
		default: return -1;
		}
	}
	if (*end != '\0' || v > (UINT64_MAX >> shift))
		return -1;
	*(uint64_t *)(void *)((char *)l + names[i].offset) = (uint64_t)v << shift;
	return 0;
}

/* Start a session. */
static int
cmd_session_create(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "session", required_argument, NULL, 's' },
		{ "startup-source", required_argument, NULL, 'f' },
		{ "startup-timeout", required_argument, NULL, 'T' },
		{ "rows", required_argument, NULL, 'r' },
		{ "cols", required_argument, NULL, 'c' },
		{ "env", required_argument, NULL, 'E' },
		{ "cwd", required_argument, NULL, 'C' },
		{ "inherit-env", no_argument, NULL, 'I' },
		{ "limit", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_create_opts	 opts;
	struct swerex_limits		 limits;
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	const char			**sources, **env;
	char				*output = NULL;
	size_t				 output_len = 0;
	int				 ch, status = 0;

	memset(&opts, 0, sizeof opts);
	memset(&limits, 0, sizeof limits);
	sources = calloc((size_t)argc + 1, sizeof *sources);
	env = calloc((size_t)argc + 1, sizeof *env);
	if (sources == NULL || env == NULL) {
		cli_warnx("out of memory");
		free(sources);
		free(env);
		return EXIT_ERROR;
	}
	opts.startup_source = sources;
	opts.env = env;
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
		case 'r':
		case 'c':
			if (parse_count(optarg, ch == 'r' ? &opts.rows :
			    &opts.cols) != 0) {
				status = cli_usage_error(usage_session_create,
				    "bad --%s: %s", ch == 'r' ? "rows" : "cols",
				    optarg);
				goto out;
			}
			break;
		case 'E':
			if (strchr(optarg, '=') == NULL || *optarg == '=') {
				status = cli_usage_error(usage_session_create,
				    "bad --env: %s (want NAME=VALUE)", optarg);
				goto out;
			}
			env[opts.n_env++] = optarg;
			break;
		case 'C':
			opts.cwd = optarg;
			break;
		case 'I':
			opts.inherit_env = true;
			break;
		case 'L':
			if (parse_limit(optarg, &limits) != 0) {
				status = cli_usage_error(usage_session_create,
				    "bad --limit: %s (NAME=VALUE, VALUE at least "
				    "1)", optarg);
				goto out;
			}
			opts.limits = &limits;
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
	free(env);
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
		{ "no-output-timeout", required_argument, NULL, 'N' },
		{ "wait", no_argument, NULL, 'W' },
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
		case 'N':
			if (parse_seconds(optarg, &opts.no_output_timeout) != 0 ||
			    opts.no_output_timeout == 0) {
				status = cli_usage_error(usage_run,
				    "bad --no-output-timeout: %s (want seconds "
				    "> 0)", optarg);
				goto out;
			}
			break;
		case 'W':
			opts.wait = true;
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
	if (argc == 0 && !opts.wait) {
		status = cli_usage_error(usage_run, "missing COMMAND");
		goto out;
	}
	if (argc > 0 && opts.wait) {
		status = cli_usage_error(usage_run, "--wait takes no COMMAND");
		goto out;
	}
	if (streaming && cli.json) {
		status = cli_usage_error(usage_run,
		    "--stream cannot be used with --json");
		goto out;
	}

	if (opts.wait) {
		/* No command: the one still running is waited for. */
	} else if (argc == 1 && strcmp(argv[0], "-") == 0) {
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

/* Set the terminal size of a session. */
static int
cmd_resize(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	unsigned			 rows, cols;
	int				 ch, status = 0;

	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cli_help(usage_resize);
		default:
			return cli_usage_error(usage_resize, NULL);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 3)
		return cli_usage_error(usage_resize, "want SESSION ROWS COLS");
	if (parse_count(argv[1], &rows) != 0 || parse_count(argv[2], &cols) != 0)
		return cli_usage_error(usage_resize, "bad size: %s %s", argv[1],
		    argv[2]);
	if (cli_connect(&c, &err) != 0 ||
	    swerex_resize(c, argv[0], rows, cols, &err) != 0)
		status = error_report(err);
	else if (cli.json) {
		fputs("{\"session\": ", stdout);
		json_string(*argv[0] != '\0' ? argv[0] : "default");
		printf(", \"rows\": %u, \"cols\": %u}\n", rows, cols);
	}
	swerex_error_free(err);
	swerex_client_free(c);
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

/* Read all of a file ("-": stdin) into memory; 0, or -1 (reported). */
static int
read_all(const char *path, char **bufp, size_t *lenp)
{
	char	*buf = NULL, *nbuf;
	size_t	 len = 0, size = 0;
	ssize_t	 n;
	int	 fd;

	*bufp = NULL;
	*lenp = 0;
	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		cli_warnx("%s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == size) {
			if (size > INPUT_MAX) {
				cli_warnx("%s: larger than %u bytes",
				    fd == STDIN_FILENO ? "stdin" : path,
				    INPUT_MAX);
				goto fail;
			}
			size = (size == 0) ? 65536 : size * 2;
			if (size > INPUT_MAX + 1)
				size = INPUT_MAX + 1;
			if ((nbuf = realloc(buf, size)) == NULL) {
				cli_warnx("out of memory");
				goto fail;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			cli_warnx("%s: %s", fd == STDIN_FILENO ? "stdin" : path,
			    strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	*bufp = buf;
	*lenp = len;
	return 0;

fail:
	if (fd != STDIN_FILENO)
		close(fd);
	free(buf);
	return -1;
}

/* Parse an unsigned 64-bit number of bytes. */
static int
parse_u64(const char *s, uint64_t *out)
{
	char			*end;
	unsigned long long	 v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0)
		return -1;
	*out = v;
	return 0;
}

/* Return the exit status a shell would give an exec's result. */
static int
exec_status(const struct swerex_exec_result *r)
{
	if (r == NULL)
		return 0;
	if (r->has_exit_code)
		return exit_status_of(r->exit_code);
	if (r->signal > 0)
		return r->signal < 128 ? 128 + r->signal : 255;
	return 0;
}

/* Print a streamed chunk of an exec's output on stdout or stderr at once. */
static void
exec_output(int stream, const char *data, size_t len, void *arg)
{
	struct cli_exec_stream	*s = arg;

	if (stream == 2) {
		fflush(stdout);
		fwrite(data, 1, len, stderr);
		s->err += len;
	} else {
		fwrite(data, 1, len, stdout);
		fflush(stdout);
		s->out += len;
	}
}

/* Print what --stream did not print already of one output stream. */
static void
exec_print_rest(FILE *fp, const char *data, size_t len, bool truncated,
    uint64_t printed, bool streamed)
{
	if (data == NULL)
		return;
	if (!streamed)
		fwrite(data, 1, len, fp);
	else if (!truncated && printed < len)
		fwrite(data + printed, 1, len - (size_t)printed, fp);
}

/* Print an exec's output, and a note on stderr for a truncated stream. */
static void
exec_print(const struct swerex_exec_result *r,
    const struct cli_exec_stream *s)
{
	if (r == NULL)
		return;
	exec_print_rest(stdout, r->stdout_data, r->stdout_len,
	    r->stdout_truncated, s != NULL ? s->out : 0, s != NULL);
	fflush(stdout);
	exec_print_rest(stderr, r->stderr_data, r->stderr_len,
	    r->stderr_truncated, s != NULL ? s->err : 0, s != NULL);
	if (r->stdout_truncated)
		cli_warnx("note: stdout truncated: %zu of %llu bytes kept",
		    r->stdout_len, (unsigned long long)r->stdout_bytes);
	if (r->stderr_truncated)
		cli_warnx("note: stderr truncated: %zu of %llu bytes kept",
		    r->stderr_len, (unsigned long long)r->stderr_bytes);
}

/*
 * Print the result of an exec and return the exit status: the command's,
 * as a shell gives it, else that of the error.
 */
static int
exec_finish(int rc, const struct swerex_exec_result *res,
    const struct swerex_error *err, const struct cli_exec_stream *stream)
{
	const struct swerex_exec_result	*r;
	int				 status;

	if (rc == 0) {
		if (cli.json) {
			json_exec_result(res);
			putchar('\n');
		} else
			exec_print(res, stream);
		return exec_status(res);
	}

	r = (err != NULL) ? err->exec_result : NULL;
	if (cli.json)
		json_error(err);
	else
		exec_print(r, stream);
	error_print(err);
	if (err == NULL)
		return EXIT_ERROR;
	switch (err->kind) {
	case SWEREX_ERR_NON_ZERO_EXIT_CODE:
		status = r != NULL ? exec_status(r) : extra_exit_status(err);
		return status != 0 ? status : EXIT_ERROR;
	case SWEREX_ERR_FILE_NOT_FOUND:
		return EXIT_NOT_FOUND;
	default:
		return error_status(err);
	}
}

/* Run a one-off command. */
static int
cmd_exec(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "shell", no_argument, NULL, 'x' },
		{ "cwd", required_argument, NULL, 'C' },
		{ "env", required_argument, NULL, 'E' },
		{ "replace-env", no_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 't' },
		{ "merge", no_argument, NULL, 'M' },
		{ "check", no_argument, NULL, 'c' },
		{ "stdin-file", required_argument, NULL, 'i' },
		{ "stream", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_exec_opts		 opts;
	struct cli_exec_stream		 stream = { 0, 0 };
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	struct swerex_exec_result	*res = NULL;
	const char			**env, *stdin_file = NULL;
	char				*command = NULL, *input = NULL;
	size_t				 input_len = 0;
	bool				 streaming = false;
	int				 ch, rc, status = 0;

	memset(&opts, 0, sizeof opts);
	env = calloc((size_t)argc + 1, sizeof *env);
	if (env == NULL) {
		cli_warnx("out of memory");
		return EXIT_ERROR;
	}
	opts.env = env;
	while ((ch = getopt_long(argc, argv, "+t:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'x':
			opts.shell = true;
			break;
		case 'C':
			opts.cwd = optarg;
			break;
		case 'E':
			if (optarg[0] == '=' || strchr(optarg, '=') == NULL) {
				status = cli_usage_error(usage_exec,
				    "bad --env: %s (NAME=VALUE)", optarg);
				goto out;
			}
			env[opts.n_env++] = optarg;
			break;
		case 'R':
			opts.replace_env = true;
			break;
		case 't':
			if (parse_seconds(optarg, &opts.timeout) != 0) {
				status = cli_usage_error(usage_exec,
				    "bad --timeout: %s", optarg);
				goto out;
			}
			opts.has_timeout = true;
			break;
		case 'M':
			opts.merge_output_streams = true;
			break;
		case 'c':
			opts.check = true;
			break;
		case 'i':
			stdin_file = optarg;
			break;
		case 'S':
			streaming = true;
			break;
		case 'h':
			status = cli_help(usage_exec);
			goto out;
		default:
			status = cli_usage_error(usage_exec, NULL);
			goto out;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		status = cli_usage_error(usage_exec, "missing ARGV");
		goto out;
	}
	if (streaming && cli.json) {
		status = cli_usage_error(usage_exec,
		    "--stream cannot be used with --json");
		goto out;
	}

	if (opts.shell) {
		if ((command = join_words(argc, argv)) == NULL) {
			cli_warnx("out of memory");
			status = EXIT_ERROR;
			goto out;
		}
		opts.command = command;
	} else {
		opts.argv = (const char *const *)argv;
		opts.argc = (size_t)argc;
	}
	if (stdin_file != NULL) {
		if (read_all(stdin_file, &input, &input_len) != 0) {
			status = EXIT_ERROR;
			goto out;
		}
		opts.stdin_data = input != NULL ? input : "";
		opts.stdin_len = input_len;
	}
	if (streaming) {
		opts.on_output = exec_output;
		opts.output_arg = &stream;
	}

	if (cli_connect(&c, &err) != 0) {
		status = error_report(err);
		goto out;
	}
	rc = swerex_execute(c, &opts, &res, &err);
	status = exec_finish(rc, res, err, streaming ? &stream : NULL);

out:
	swerex_exec_result_free(res);
	swerex_error_free(err);
	swerex_client_free(c);
	free(input);
	free(command);
	free(env);
	return status;
}

/* Print a file of the daemon's host. */
static int
cmd_read(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "offset", required_argument, NULL, 'o' },
		{ "length", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	char				*data = NULL;
	size_t				 len = 0;
	uint64_t			 offset = 0, length, size = 0;
	int64_t				 want = -1;
	int				 ch, status = 0;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			if (parse_u64(optarg, &offset) != 0)
				return cli_usage_error(usage_read,
				    "bad --offset: %s", optarg);
			break;
		case 'l':
			if (parse_u64(optarg, &length) != 0 ||
			    length > INT64_MAX)
				return cli_usage_error(usage_read,
				    "bad --length: %s", optarg);
			want = (int64_t)length;
			break;
		case 'h':
			return cli_help(usage_read);
		default:
			return cli_usage_error(usage_read, NULL);
		}
	}
	if (optind == argc)
		return cli_usage_error(usage_read, "missing PATH");
	if (optind + 1 != argc)
		return cli_usage_error(usage_read, "unexpected argument: %s",
		    argv[optind + 1]);

	if (cli_connect(&c, &err) != 0 ||
	    swerex_read_file(c, argv[optind], offset, want, &data, &len, &size,
	    &err) != 0)
		status = error_report(err);
	else if (cli.json) {
		fputs("{\"content\": ", stdout);
		json_string_len(data, len);
		printf(", \"size\": %llu}\n", (unsigned long long)size);
	} else
		fwrite(data, 1, len, stdout);
	free(data);
	swerex_error_free(err);
	swerex_client_free(c);
	return status;
}

/* Replace a file of the daemon's host with stdin. */
static int
cmd_write(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "no-create-parents", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	char				*data = NULL, *end;
	size_t				 len = 0;
	unsigned long			 v;
	bool				 parents = true;
	int				 ch, mode = -1, status = 0;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			errno = 0;
			v = strtoul(optarg, &end, 8);
			if (*optarg < '0' || *optarg > '7' || *end != '\0' ||
			    errno != 0 || v > 07777)
				return cli_usage_error(usage_write,
				    "bad --mode: %s (octal, at most 7777)",
				    optarg);
			mode = (int)v;
			break;
		case 'P':
			parents = false;
			break;
		case 'h':
			return cli_help(usage_write);
		default:
			return cli_usage_error(usage_write, NULL);
		}
	}
	if (optind == argc)
		return cli_usage_error(usage_write, "missing PATH");
	if (optind + 1 != argc)
		return cli_usage_error(usage_write, "unexpected argument: %s",
		    argv[optind + 1]);

	if (read_all("-", &data, &len) != 0)
		return EXIT_ERROR;
	if (cli_connect(&c, &err) != 0 ||
	    swerex_write_file(c, argv[optind], data, len, mode, parents,
	    &err) != 0)
		status = error_report(err);
	else if (cli.json) {
		fputs("{\"path\": ", stdout);
		json_string(argv[optind]);
		printf(", \"bytes\": %zu}\n", len);
	}
	free(data);
	swerex_error_free(err);
	swerex_client_free(c);
	return status;
}

/* Show a transfer's progress on a terminal, at most ten times a second. */
static void
progress_show(uint64_t bytes, uint64_t files, void *arg)
{
	struct cli_progress	*p = arg;
	struct timespec		 now;
	long long		 ms;

	p->bytes = bytes;
	p->files = files;
	if (!p->tty || bytes < PROGRESS_MIN)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(now.tv_sec - p->last.tv_sec) * 1000 +
	    (now.tv_nsec - p->last.tv_nsec) / 1000000;
	if (p->shown && ms < 100)
		return;
	p->last = now;
	p->shown = true;
	fprintf(stderr, "\rswerex: %s: %.1f MiB, %llu file%s\033[K", p->verb,
	    (double)bytes / (1024 * 1024), (unsigned long long)files,
	    files == 1 ? "" : "s");
}

/* Erase the progress line, if one is shown. */
static void
progress_clear(struct cli_progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}

/* Copy a file or tree to (upload) or from the daemon's host. */
static int
cli_transfer(int argc, char **argv, bool upload)
{
	static const struct option	 longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*usage = upload ? usage_upload :
					    usage_download;
	struct cli_progress		 p;
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	int				 ch, rc, status = 0;

	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			return cli_help(usage);
		default:
			return cli_usage_error(usage, NULL);
		}
	}
	if (argc - optind < 2)
		return cli_usage_error(usage, "missing SRC or DST");
	if (argc - optind > 2)
		return cli_usage_error(usage, "unexpected argument: %s",
		    argv[optind + 2]);

	memset(&p, 0, sizeof p);
	p.verb = upload ? "upload" : "download";
	p.tty = isatty(STDERR_FILENO);
	if (cli_connect(&c, &err) != 0) {
		status = error_report(err);
		goto out;
	}
	if (upload)
		rc = swerex_upload(c, argv[optind], argv[optind + 1],
		    progress_show, &p, &err);
	else
		rc = swerex_download(c, argv[optind], argv[optind + 1],
		    progress_show, &p, &err);
	progress_clear(&p);
	if (rc != 0)
		status = error_report(err);
	else if (cli.json) {
		fputs("{\"source\": ", stdout);
		json_string(argv[optind]);
		fputs(", \"destination\": ", stdout);
		json_string(argv[optind + 1]);
		printf(", \"bytes\": %llu, \"files\": %llu}\n",
		    (unsigned long long)p.bytes, (unsigned long long)p.files);
	}
out:
	swerex_error_free(err);
	swerex_client_free(c);
	return status;
}

/* Copy a local file or tree to the daemon's host. */
static int
cmd_upload(int argc, char **argv)
{
	return cli_transfer(argc, argv, true);
}

/* Copy a file or tree from the daemon's host. */
static int
cmd_download(int argc, char **argv)
{
	return cli_transfer(argc, argv, false);
}

/* Type text or keys into a session's program. */
static int
cmd_input(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "keys", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client	*c = NULL;
	struct swerex_error	*err = NULL;
	const char		*session;
	char			*buf = NULL, key[SWEREX_KEY_MAX];
	size_t			 len = 0, size = 0, n;
	uint64_t		 written = 0;
	bool			 keys = false;
	int			 ch, i, k, status = 0;

	while ((ch = getopt_long(argc, argv, "+kh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			keys = true;
			break;
		case 'h':
			return cli_help(usage_input);
		default:
			return cli_usage_error(usage_input, NULL);
		}
	}
	if (argc - optind < 2)
		return cli_usage_error(usage_input, argc == optind ?
		    "missing SESSION" : "missing input");
	session = argv[optind++];
	for (i = optind; i < argc; i++)
		size += keys ? SWEREX_KEY_MAX : strlen(argv[i]);
	if ((buf = malloc(size + 1)) == NULL) {
		cli_warnx("out of memory");
		return EXIT_ERROR;
	}
	for (i = optind; i < argc; i++) {
		if (!keys) {
			n = strlen(argv[i]);
			memcpy(buf + len, argv[i], n);
			len += n;
			continue;
		}
		if ((k = swerex_key_bytes(argv[i], key)) < 0) {
			status = cli_usage_error(usage_input,
			    "unknown key name: %s", argv[i]);
			goto out;
		}
		memcpy(buf + len, key, (size_t)k);
		len += (size_t)k;
	}
	if (cli_connect(&c, &err) != 0 ||
	    swerex_send_input(c, session, buf, len, &written, &err) != 0) {
		status = error_report(err);
		goto out;
	}
	if (cli.json)
		printf("{\"bytes_written\": %llu}\n",
		    (unsigned long long)written);

out:
	swerex_error_free(err);
	swerex_client_free(c);
	free(buf);
	return status;
}

/* State of swerex attach. */
struct attach_cli {
	struct event_base	*base;
	struct swerex_client	*c;
	const char		*session;
	uint64_t		 id;
	bool			 tty;		/* stdin is a terminal, now raw */
	bool			 write;
	unsigned char		 detach_key;
	bool			 detaching;
	bool			 ended;
	bool			 refused_shown;	/* a refused input was reported */
	char			 reason[64];
	struct swerex_error	*error;
	int			 signal;	/* that ended it, or 0 */
	struct event		*ev_stdin;
	struct event		*ev_sig[4];
	struct event		*ev_winch;	/* --write: follow our size */
	const char		*key_name;
};

/* The terminal's modes before raw mode; restored at every exit. */
static struct termios	attach_saved;
static bool		attach_raw;

/* Put the terminal back as it was. */
static void
attach_restore(void)
{
	if (attach_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &attach_saved);
		attach_raw = false;
	}
}

/* Put stdin's terminal in raw mode; 0, or -1 (reported). */
static int
attach_make_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &attach_saved) < 0) {
		cli_warnx("cannot read the terminal's modes: %s",
		    strerror(errno));
		return -1;
	}
	t = attach_saved;
	cfmakeraw(&t);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0) {
		cli_warnx("cannot set the terminal's modes: %s",
		    strerror(errno));
		return -1;
	}
	attach_raw = true;
	atexit(attach_restore);
	return 0;
}

/* Write all of a buffer to a file descriptor. */
static void
attach_write_all(int fd, const char *p, size_t n)
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

/* Print a notice on stderr, on a line of its own in a raw terminal. */
static void __attribute__((format(printf, 2, 3)))
attach_notice(const struct attach_cli *a, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	attach_write_all(STDERR_FILENO, a->tty ? "\r\n[swerex: " : "[swerex: ",
	    a->tty ? 11 : 9);
	attach_write_all(STDERR_FILENO, buf, (size_t)n);
	attach_write_all(STDERR_FILENO, a->tty ? "]\r\n" : "]\n",
	    a->tty ? 3 : 2);
}

/* Show the session's terminal output. */
static void
attach_chunk(struct swerex_client *c, uint64_t id, const char *data,
    size_t len, void *arg)
{
	(void)c;
	(void)id;
	(void)arg;
	attach_write_all(STDOUT_FILENO, data, len);
}

/* The attachment ended: leave the loop. */
static void
attach_end(struct swerex_client *c, uint64_t id, const char *reason,
    const struct swerex_error *error, void *arg)
{
	struct attach_cli *a = arg;

	(void)c;
	(void)id;
	if (a->ended)
		return;		/* already over: the client is being freed */
	a->ended = true;
	if (reason != NULL)
		snprintf(a->reason, sizeof a->reason, "%s", reason);
	else if (error != NULL)
		a->error = swerex_error_dup(error);
	event_base_loopbreak(a->base);
}

/* Report a refused input once (bash at its prompt, usually). */
static void
attach_input_reply(struct swerex_client *c, const struct swerex_reply *reply,
    void *arg)
{
	struct attach_cli *a = arg;

	(void)c;
	if (reply->type != SWEREX_REPLY_ERROR || a->refused_shown || a->ended)
		return;
	a->refused_shown = true;
	attach_notice(a, "input refused: %s", reply->error->message);
}

/* Ask the daemon to end the attachment; the end arrives as usual. */
static void
attach_detach(struct attach_cli *a)
{
	struct swerex_error *err = NULL;

	if (a->detaching || a->ended)
		return;
	a->detaching = true;
	if (swerex_submit_detach(a->c, a->id, NULL, NULL, &err) == 0) {
		a->error = err;
		event_base_loopbreak(a->base);
	}
}

/* Forward typed bytes (with --write) up to the detach key. */
static void
attach_stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct attach_cli *a = arg;
	char buf[4096], *k;
	ssize_t n;
	size_t len;

	(void)what;
	n = read(fd, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* The terminal went away: nobody is watching any more. */
		event_del(a->ev_stdin);
		attach_detach(a);
		return;
	}
	len = (size_t)n;
	k = memchr(buf, a->detach_key, len);
	if (k != NULL)
		len = (size_t)(k - buf);
	if (a->write && len > 0 && !a->detaching &&
	    swerex_submit_send_input(a->c, a->session, buf, len,
	    attach_input_reply, a, NULL) == 0)
		attach_notice(a, "cannot send input");
	if (k != NULL)
		attach_detach(a);
}

/* Say how the attachment works, once it is in place. */
static void
attach_hello(struct attach_cli *a)
{
	attach_notice(a, "attached to %s, %s; %s detaches", a->session,
	    a->write ? "keys go to its program" :
	    "read-only: typed keys are ignored (--write to type)",
	    a->key_name);
}

/* The session took (or refused) our size: now say hello. */
static void
attach_resized(struct swerex_client *c, const struct swerex_reply *reply,
    void *arg)
{
	struct attach_cli *a = arg;

	(void)c;
	if (a->ended)
		return;
	if (reply->type == SWEREX_REPLY_ERROR)
		attach_notice(a, "cannot resize: %s", reply->error->message);
	attach_hello(a);
}

/*
 * With --write, give the session this terminal's size (a program it runs
 * draws for it); call back when done, or say hello now if it cannot.
 */
static void
attach_resize(struct attach_cli *a, swerex_reply_cb cb)
{
	struct winsize ws;

	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 &&
	    ws.ws_col > 0 && swerex_submit_resize(a->c, a->session, ws.ws_row,
	    ws.ws_col, cb, a, NULL) != 0)
		return;
	if (cb != NULL)
		attach_hello(a);
}

/* SIGWINCH: our terminal changed size; the session follows. */
static void
attach_winch_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	attach_resize(arg, NULL);
}

/* A signal: detach on SIGINT, otherwise leave at once. */
static void
attach_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct attach_cli *a = arg;

	(void)what;
	if (sig == SIGINT && !a->tty && !a->detaching) {
		attach_detach(a);
		return;
	}
	a->signal = (int)sig;
	event_base_loopbreak(a->base);
}

/* Watch a session's terminal live. */
static int
cmd_attach(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "write", no_argument, NULL, 'w' },
		{ "detach-key", required_argument, NULL, 'd' },
		{ "scrollback", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const int		 sigs[4] = { SIGINT, SIGTERM, SIGHUP,
	    SIGQUIT };
	struct attach_cli		 a;
	struct swerex_attach_opts	 o;
	struct swerex_error		*err = NULL;
	const char			*key_name = "C-]";
	char				 key[SWEREX_KEY_MAX];
	int				 ch, i, status = 0;

	memset(&a, 0, sizeof a);
	memset(&o, 0, sizeof o);
	while ((ch = getopt_long(argc, argv, "+wd:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'w':
			a.write = true;
			break;
		case 'd':
			key_name = optarg;
			break;
		case 'b':
			if (parse_u64(optarg, &o.scrollback) != 0)
				return cli_usage_error(usage_attach,
				    "bad --scrollback: %s", optarg);
			o.has_scrollback = true;
			break;
		case 'h':
			return cli_help(usage_attach);
		default:
			return cli_usage_error(usage_attach, NULL);
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(usage_attach, argc == optind ?
		    "missing SESSION" : "unexpected argument: %s",
		    argv[optind + 1 < argc ? optind + 1 : optind]);
	a.session = argv[optind];
	if (swerex_key_bytes(key_name, key) != 1)
		return cli_usage_error(usage_attach, "bad --detach-key: %s "
		    "(want a one-byte key such as C-] or C-q)", key_name);
	a.detach_key = (unsigned char)key[0];
	o.read_write = a.write;
	a.tty = isatty(STDIN_FILENO);

	if ((a.base = event_base_new()) == NULL) {
		cli_warnx("out of memory");
		return EXIT_ERROR;
	}
	if (cli_connect_on(a.base, &a.c, &err) != 0) {
		status = error_report(err);
		goto out;
	}
	for (i = 0; i < 4; i++) {
		a.ev_sig[i] = evsignal_new(a.base, sigs[i], attach_signal_cb,
		    &a);
		if (a.ev_sig[i] == NULL || evsignal_add(a.ev_sig[i], NULL) < 0) {
			cli_warnx("cannot watch signals");
			status = EXIT_ERROR;
			goto out;
		}
	}
	a.id = swerex_submit_attach(a.c, a.session, &o, attach_chunk,
	    attach_end, &a, &err);
	if (a.id == 0) {
		status = error_report(err);
		goto out;
	}
	if (a.tty) {
		if (attach_make_raw() < 0) {
			status = EXIT_ERROR;
			goto out;
		}
		a.ev_stdin = event_new(a.base, STDIN_FILENO,
		    EV_READ | EV_PERSIST, attach_stdin_cb, &a);
		if (a.ev_stdin == NULL || event_add(a.ev_stdin, NULL) < 0) {
			status = EXIT_ERROR;
			goto out;
		}
		a.key_name = key_name;
		if (!a.write)
			attach_hello(&a);
		else {
			a.ev_winch = evsignal_new(a.base, SIGWINCH,
			    attach_winch_cb, &a);
			if (a.ev_winch == NULL ||
			    evsignal_add(a.ev_winch, NULL) < 0) {
				status = EXIT_ERROR;
				goto out;
			}
			attach_resize(&a, attach_resized);
		}
	}
	while (!a.ended && a.signal == 0 && a.error == NULL)
		if (event_base_loop(a.base, EVLOOP_ONCE) < 0)
			break;
	attach_restore();
	if (a.signal != 0) {
		status = 128 + a.signal;
	} else if (a.error != NULL) {
		if (a.tty)
			fputs("\r\n", stderr);
		status = error_report(a.error);
	} else if (a.ended) {
		if (a.tty)
			fputs("\r\n", stderr);
		fprintf(stderr, "[swerex: %s]\n", a.reason);
	}

out:
	attach_restore();
	swerex_error_free(err);
	swerex_error_free(a.error);
	/* The client first: it may still call back into a (DISCONNECTED). */
	a.ended = true;
	swerex_client_free(a.c);
	if (a.ev_stdin != NULL)
		event_free(a.ev_stdin);
	if (a.ev_winch != NULL)
		event_free(a.ev_winch);
	for (i = 0; i < 4; i++)
		if (a.ev_sig[i] != NULL)
			event_free(a.ev_sig[i]);
	event_base_free(a.base);
	return status;
}

/* Print a bucket bound in seconds as JSON: a number, or "+Inf". */
static void
json_bound(double le)
{
	if (isinf(le))
		fputs("\"+Inf\"", stdout);
	else
		printf("%g", le);
}

/* Print statistics as one JSON object. */
static void
stats_print_json(const struct swerex_stats *s, bool prometheus)
{
	const struct swerex_conn_stats	*cs;
	size_t				 i;

	fputs("{\"daemon_version\": ", stdout);
	json_string(s->daemon_version);
	fputs(", \"uptime\": ", stdout);
	json_double(s->uptime);
	printf(", \"sessions\": {\"starting\": %u, \"idle\": %u, "
	    "\"running\": %u, \"dead\": %u}", s->sessions_starting,
	    s->sessions_idle, s->sessions_running, s->sessions_dead);
	printf(", \"sessions_created\": %llu, \"commands\": %llu, "
	    "\"executes\": %llu, \"requests\": %llu, \"errors\": %llu, "
	    "\"bytes_in\": %llu, \"bytes_out\": %llu",
	    (unsigned long long)s->sessions_created,
	    (unsigned long long)s->commands, (unsigned long long)s->executes,
	    (unsigned long long)s->requests, (unsigned long long)s->errors,
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out);
	fputs(", \"command_latency\": {\"buckets\": [", stdout);
	for (i = 0; i < s->n_latency; i++) {
		fputs(i == 0 ? "{\"le\": " : ", {\"le\": ", stdout);
		json_bound(s->latency[i].le);
		printf(", \"count\": %llu}",
		    (unsigned long long)s->latency[i].count);
	}
	printf("], \"count\": %llu, \"sum\": ",
	    (unsigned long long)s->latency_count);
	json_double(s->latency_sum);
	fputs("}, \"connections\": [", stdout);
	for (i = 0; i < s->n_connections; i++) {
		cs = &s->connections[i];
		printf("%s{\"id\": %llu, \"peer\": ", i == 0 ? "" : ", ",
		    (unsigned long long)cs->id);
		json_string(cs->peer);
		fputs(", \"client_name\": ", stdout);
		json_string(cs->client_name);
		printf(", \"requests\": %llu, \"bytes_in\": %llu, "
		    "\"bytes_out\": %llu, \"connected\": ",
		    (unsigned long long)cs->requests,
		    (unsigned long long)cs->bytes_in,
		    (unsigned long long)cs->bytes_out);
		json_double(cs->connected);
		putchar('}');
	}
	putchar(']');
	if (prometheus) {
		fputs(", \"prometheus\": ", stdout);
		json_string(s->prometheus);
	}
	fputs("}\n", stdout);
}

/* Give the smallest bucket bound holding the fraction q of the commands. */
static double
stats_quantile(const struct swerex_stats *s, double q)
{
	size_t	i;

	for (i = 0; i < s->n_latency; i++)
		if ((double)s->latency[i].count >= q * (double)s->latency_count)
			return s->latency[i].le;
	return INFINITY;
}

/* Print a latency bound for people: "<= 0.005 s", or "> 500 s". */
static void
stats_print_bound(const struct swerex_stats *s, const char *label, double q)
{
	double	le = stats_quantile(s, q);

	if (isinf(le))
		printf(", %s > %g s", label, s->n_latency > 1 ?
		    s->latency[s->n_latency - 2].le : 0);
	else
		printf(", %s <= %g s", label, le);
}

/* Print statistics for people. */
static void
stats_print_text(const struct swerex_stats *s)
{
	const struct swerex_conn_stats	*cs;
	char				 when[64];
	unsigned long long		 up = (unsigned long long)s->uptime;
	size_t				 i, peer_w = strlen("PEER"), w;
	size_t				 name_w = strlen("CLIENT");

	printf("swerexd %s, up %llud %02llu:%02llu:%02llu\n",
	    s->daemon_version, up / 86400, up / 3600 % 24, up / 60 % 60,
	    up % 60);
	printf("sessions:    %u idle, %u running, %u starting, %u dead; "
	    "%llu created\n", s->sessions_idle, s->sessions_running,
	    s->sessions_starting, s->sessions_dead,
	    (unsigned long long)s->sessions_created);
	printf("requests:    %llu, %llu answered with an error\n",
	    (unsigned long long)s->requests, (unsigned long long)s->errors);
	printf("commands:    %llu; executes: %llu\n",
	    (unsigned long long)s->commands, (unsigned long long)s->executes);
	printf("bytes:       %llu in, %llu out\n",
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out);
	printf("latency:     %llu commands", (unsigned long long)s->latency_count);
	if (s->latency_count > 0) {
		printf(", mean %.3f s", s->latency_sum /
		    (double)s->latency_count);
		stats_print_bound(s, "p50", 0.5);
		stats_print_bound(s, "p90", 0.9);
		stats_print_bound(s, "p99", 0.99);
	}
	printf("\nconnections: %zu\n", s->n_connections);
	for (i = 0; i < s->n_connections; i++) {
		if ((w = field_width(s->connections[i].peer)) > peer_w)
			peer_w = w;
		if ((w = field_width(s->connections[i].client_name)) > name_w)
			name_w = w;
	}
	printf("  %6s  %-*s  %-*s  %8s  %12s  %12s  %s\n", "ID", (int)peer_w,
	    "PEER", (int)name_w, "CLIENT", "REQUESTS", "IN", "OUT",
	    "CONNECTED");
	for (i = 0; i < s->n_connections; i++) {
		cs = &s->connections[i];
		printf("  %6llu  ", (unsigned long long)cs->id);
		field_print(cs->peer, peer_w);
		fputs("  ", stdout);
		field_print(cs->client_name, name_w);
		format_time(cs->connected, when, sizeof when);
		printf("  %8llu  %12llu  %12llu  %s\n",
		    (unsigned long long)cs->requests,
		    (unsigned long long)cs->bytes_in,
		    (unsigned long long)cs->bytes_out, when);
	}
}

/* Show the daemon's statistics. */
static int
cmd_stats(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	struct swerex_stats		*st = NULL;
	bool				 prometheus = false;
	int				 ch, status = 0;

	while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			cli.json = true;
			break;
		case 'p':
			prometheus = true;
			break;
		case 'h':
			return cli_help(usage_stats);
		default:
			return cli_usage_error(usage_stats, NULL);
		}
	}
	if (optind != argc)
		return cli_usage_error(usage_stats, "unexpected argument: %s",
		    argv[optind]);

	if (cli_connect(&c, &err) != 0 ||
	    swerex_stats(c, prometheus, &st, &err) != 0)
		status = error_report(err);
	else if (cli.json)
		stats_print_json(st, prometheus);
	else if (prometheus)
		fputs(st->prometheus, stdout);
	else
		stats_print_text(st);
	swerex_stats_free(st);
	swerex_error_free(err);
	swerex_client_free(c);
	return status;
}

/* Print a history as one JSON object. */
static void
history_print_json(const char *session, const struct swerex_history *hi)
{
	const struct swerex_history_entry	*e;
	size_t					 i;

	fputs("{\"session\": ", stdout);
	json_string(session);
	printf(", \"total\": %llu, \"entries\": [",
	    (unsigned long long)hi->total);
	for (i = 0; i < hi->n_entries; i++) {
		e = &hi->entries[i];
		printf("%s{\"seq\": %llu, \"command\": ", i == 0 ? "" : ", ",
		    (unsigned long long)e->seq);
		json_string(e->command);
		fputs(", \"exit_code\": ", stdout);
		if (e->has_exit_code)
			printf("%d", e->exit_code);
		else
			fputs("null", stdout);
		fputs(", \"started\": ", stdout);
		json_double(e->started);
		fputs(", \"duration\": ", stdout);
		json_double(e->duration);
		printf(", \"output_bytes\": %llu, \"failure_reason\": ",
		    (unsigned long long)e->output_bytes);
		json_string(e->failure_reason);
		putchar('}');
	}
	fputs("]}\n", stdout);
}

/* Print a history as a table. */
static void
history_print_table(const struct swerex_history *hi)
{
	const struct swerex_history_entry	*e;
	char					 started[64], code[16];
	size_t					 i, reason_w = strlen("REASON"), w;

	for (i = 0; i < hi->n_entries; i++)
		if ((w = field_width(hi->entries[i].failure_reason)) > reason_w)
			reason_w = w;
	printf("%6s  %4s  %9s  %10s  %-25s  %-*s  %s\n", "SEQ", "EXIT",
	    "DURATION", "OUTPUT", "STARTED", (int)reason_w, "REASON",
	    "COMMAND");
	for (i = 0; i < hi->n_entries; i++) {
		e = &hi->entries[i];
		if (e->has_exit_code)
			snprintf(code, sizeof code, "%d", e->exit_code);
		else
			snprintf(code, sizeof code, "-");
		format_time(e->started, started, sizeof started);
		printf("%6llu  %4s  %8.3fs  %10llu  %-25s  ",
		    (unsigned long long)e->seq, code, e->duration,
		    (unsigned long long)e->output_bytes, started);
		field_print(*e->failure_reason != '\0' ? e->failure_reason :
		    "-", reason_w);
		fputs("  ", stdout);
		field_print(e->command, 0);
		putchar('\n');
	}
}

/* Show the last commands of a session. */
static int
cmd_history(int argc, char **argv)
{
	static const struct option	 longopts[] = {
		{ "limit", required_argument, NULL, 'n' },
		{ "session", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct swerex_client		*c = NULL;
	struct swerex_error		*err = NULL;
	struct swerex_history		*hi = NULL;
	const char			*session = NULL;
	unsigned			 limit;
	int64_t				 want = -1;
	int				 ch, status = 0;

	while ((ch = getopt_long(argc, argv, "+n:s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (parse_count(optarg, &limit) != 0)
				return cli_usage_error(usage_history,
				    "bad --limit: %s", optarg);
			want = limit;
			break;
		case 's':
			session = optarg;
			break;
		case 'j':
			cli.json = true;
			break;
		case 'h':
			return cli_help(usage_history);
		default:
			return cli_usage_error(usage_history, NULL);
		}
	}
	if (optind < argc && session == NULL)
		session = argv[optind++];
	if (optind != argc)
		return cli_usage_error(usage_history, "unexpected argument: %s",
		    argv[optind]);
	if (session == NULL || *session == '\0')
		session = "default";

	if (cli_connect(&c, &err) != 0 ||
	    swerex_history(c, session, want, &hi, &err) != 0)
		status = error_report(err);
	else if (cli.json)
		history_print_json(session, hi);
	else
		history_print_table(hi);
	swerex_history_free(hi);
	swerex_error_free(err);
	swerex_client_free(c);
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
		{ "ca", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "server-name", required_argument, NULL, 'N' },
		{ "connect-timeout", required_argument, NULL, 'O' },
		{ "reconnect", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 }
	};
	static const struct cli_command	 commands[] = {
		{ "alive", cmd_alive },
		{ "session", cmd_session },
		{ "run", cmd_run },
		{ "interrupt", cmd_interrupt },
		{ "exec", cmd_exec },
		{ "resize", cmd_resize },
		{ "read", cmd_read },
		{ "write", cmd_write },
		{ "upload", cmd_upload },
		{ "download", cmd_download },
		{ "input", cmd_input },
		{ "attach", cmd_attach },
		{ "stats", cmd_stats },
		{ "history", cmd_history },
	};
	static char			 alive_name[] = "swerex alive";
	static char			 session_name[] = "swerex session";
	static char			 run_name[] = "swerex run";
	static char			 interrupt_name[] = "swerex interrupt";
	static char			 exec_name[] = "swerex exec";
	static char			 read_name[] = "swerex read";
	static char			 write_name[] = "swerex write";
	static char			 upload_name[] = "swerex upload";
	static char			 download_name[] = "swerex download";
	static char			 resize_name[] = "swerex resize";
	static char			 input_name[] = "swerex input";
	static char			 attach_name[] = "swerex attach";
	static char			 stats_name[] = "swerex stats";
	static char			 history_name[] = "swerex history";
	static char			*names[] = {
		alive_name, session_name, run_name, interrupt_name, exec_name,
		resize_name, read_name, write_name, upload_name, download_name,
		input_name, attach_name, stats_name, history_name
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
		case 'A':
			cli.ca = optarg;
			break;
		case 'C':
			cli.cert = optarg;
			break;
		case 'K':
			cli.key = optarg;
			break;
		case 'T':
			cli.token_file = optarg;
			break;
		case 'N':
			cli.server_name = optarg;
			break;
		case 'O':
			if (parse_seconds(optarg, &cli.connect_timeout) != 0 ||
			    cli.connect_timeout == 0)
				return cli_usage_error(usage_main, "bad "
				    "--connect-timeout: %s (want seconds > 0)",
				    optarg);
			break;
		case 'R':
			cli.reconnect = true;
			break;
		case 'V':
			printf("swerex %s (protocol %d)\n", SWEREX_VERSION,
			    SWEREX_PROTOCOL_VERSION);
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
