/*
 * libswerex: client library for swerexd.
 *
 * Two ways to use it:
 *  - Blocking: swerex_connect() then one call per request (swerex_run(), ...).
 *    Each call returns 0 on success or -1 with *err set.
 *  - Event-driven: swerex_connect_base() binds the client to the caller's
 *    libevent base; swerex_submit_*() queue a request and return at once; the
 *    callback runs from the caller's loop when the reply (or, for streamed
 *    runs, each output chunk) arrives. One thread can drive hundreds of
 *    sessions over one connection this way.
 *  Blocking calls also work on an event-driven client: they run the caller's
 *  base until their own reply arrives (other callbacks may run meanwhile).
 *
 * Ownership: every object a function hands back through an out-parameter is
 * owned by the caller and freed with the matching swerex_*_free(). Objects
 * passed to a callback are borrowed and valid only during the callback.
 * A client is not thread-safe; use one per thread.
 *
 * Errors: a call that fails returns -1 (or id 0) and sets *err, except when
 * memory runs out while building the error itself; then *err is NULL.
 *
 * Streaming: chunks carry output as it is printed during the request. Output
 * printed before the request began (see carried_over) is not streamed again;
 * it is at the start of the final observation, which always holds the whole
 * output (subject to the output cap).
 */
#ifndef SWEREX_H
#define SWEREX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct swerex_client;

/* The library exports only what this header declares. */
#if defined(__GNUC__) && !defined(SWEREX_STATIC)
#define SWEREX_API __attribute__((visibility("default")))
#else
#define SWEREX_API
#endif

/* Protocol version this library speaks. */
#define SWEREX_PROTOCOL_VERSION 1

/*
 * Error kinds. Values below 100 are the daemon's (same numbers as the wire's
 * ErrorKind); 100 and above are raised by the library itself.
 */
enum swerex_error_kind {
	SWEREX_ERR_UNSPECIFIED = 0,
	SWEREX_ERR_SESSION_EXISTS = 1,
	SWEREX_ERR_SESSION_DOES_NOT_EXIST = 2,
	SWEREX_ERR_SESSION_BUSY = 3,
	SWEREX_ERR_SESSION_DIED = 4,
	SWEREX_ERR_COMMAND_TIMEOUT = 5,
	SWEREX_ERR_NON_ZERO_EXIT_CODE = 6,
	SWEREX_ERR_NO_EXIT_CODE = 7,
	SWEREX_ERR_BASH_INCORRECT_SYNTAX = 8,
	SWEREX_ERR_INVALID_REQUEST = 9,
	SWEREX_ERR_UNSUPPORTED_VERSION = 10,
	SWEREX_ERR_RESOURCE_EXHAUSTED = 11,
	SWEREX_ERR_INTERNAL = 12,
	SWEREX_ERR_PROTOCOL = 13,
	SWEREX_ERR_SESSION_START_FAILED = 14,
	SWEREX_ERR_INTERRUPTED = 15,   /* a pending run was cut short by an interrupt */
	SWEREX_ERR_FILE_NOT_FOUND = 16,  /* a path, or an execute's program */
	SWEREX_ERR_IS_A_DIRECTORY = 17,
	SWEREX_ERR_NOT_A_DIRECTORY = 18,
	SWEREX_ERR_PERMISSION_DENIED = 19,
	SWEREX_ERR_NO_SPACE = 20,
	SWEREX_ERR_FILE_ERROR = 21,      /* other I/O errors; extra "errno" */
	SWEREX_ERR_UNAUTHENTICATED = 22, /* missing or wrong token */
	/* no_output_timeout passed: the command runs on; the observation
	 * holds what it printed so far */
	SWEREX_ERR_NO_OUTPUT_TIMEOUT = 23,
	SWEREX_ERR_LIMIT_EXCEEDED = 24,  /* a session limit ended the command;
					  * extra "limit", "value", "exit_code" */
	SWEREX_ERR_CONNECT = 100,      /* could not reach the daemon */
	SWEREX_ERR_DISCONNECTED = 101, /* connection lost with the request pending */
	SWEREX_ERR_BAD_ARGUMENT = 102, /* rejected by the library before sending */
	SWEREX_ERR_NO_MEMORY = 103,
};

/* How the exit code of a command is treated (SWE-ReX's `check`). */
enum swerex_check {
	SWEREX_CHECK_RAISE = 0,  /* non-zero exit -> SWEREX_ERR_NON_ZERO_EXIT_CODE */
	SWEREX_CHECK_SILENT = 1, /* exit code reported, never an error */
	SWEREX_CHECK_IGNORE = 2, /* no exit code reported */
};

enum swerex_session_state {
	SWEREX_SESSION_UNKNOWN = 0,
	SWEREX_SESSION_STARTING = 1,
	SWEREX_SESSION_IDLE = 2,
	SWEREX_SESSION_RUNNING = 3,
	SWEREX_SESSION_DEAD = 4,
};

/* What a command printed and how it ended (SWE-ReX's BashObservation). */
struct swerex_observation {
	char *output;            /* NUL-terminated for convenience; may hold NULs */
	size_t output_len;
	bool has_exit_code;
	int exit_code;
	char *failure_reason;    /* "" when none */
	char *expect_string;     /* which expect string matched, "" when none */
	bool truncated;          /* output above the cap: head and tail kept */
	uint64_t output_bytes;   /* bytes printed before truncation */
	uint64_t carried_over;   /* leading bytes printed after an earlier observation */
};

struct swerex_kv {
	char *key;
	char *value;
};

/* What a one-off command printed and how it ended (SWE-ReX's CommandResponse). */
struct swerex_exec_result {
	char *stdout_data;       /* NUL-terminated for convenience; may hold NULs */
	size_t stdout_len;
	char *stderr_data;       /* empty with merge_output_streams */
	size_t stderr_len;
	bool has_exit_code;      /* false when killed by a signal */
	int exit_code;
	int signal;              /* the signal that ended it, or 0 */
	bool stdout_truncated;
	bool stderr_truncated;
	uint64_t stdout_bytes;   /* bytes printed, before truncation */
	uint64_t stderr_bytes;
	char *failure_reason;    /* "" or e.g. "timeout" */
};

/* An error from the daemon or the library. */
struct swerex_error {
	enum swerex_error_kind kind;
	char *message;
	/* Details: bash_stdout, bash_stderr (BASH_INCORRECT_SYNTAX), exit_code
	 * (NON_ZERO_EXIT_CODE, LIMIT_EXCEEDED), exit_status (SESSION_DIED),
	 * limit (RESOURCE_EXHAUSTED, LIMIT_EXCEEDED, SESSION_DIED by a limit),
	 * value (LIMIT_EXCEEDED), timeout; for file and execute errors path,
	 * errno (its name, e.g. "ENOENT") and strerror. */
	struct swerex_kv *extra;
	size_t n_extra;
	struct swerex_observation *observation; /* partial/full output, or NULL */
	struct swerex_exec_result *exec_result; /* an execute's output, or NULL */
};

struct swerex_session_info {
	char *name;
	int pid;
	enum swerex_session_state state;
	double created;          /* seconds since the epoch */
	char *last_command;
	int exit_status;         /* raw wait status once dead */
};

/*
 * Resource limits of a session (SessionLimits), applied to bash and every
 * process it starts; 0 = not limited. The rlimits (cpu_seconds, nproc,
 * address_space, file_size) are per process: each process gets the whole
 * amount, and RLIMIT_NPROC counts all processes of the daemon's user and
 * binds no root daemon. memory and pids bound the session as a whole (a
 * cgroup v2 group of its own); they need a delegated cgroup v2 subtree, else
 * creation fails with SWEREX_ERR_RESOURCE_EXHAUSTED, extra "limit" naming
 * it. A command ended by cpu_seconds, file_size, memory or pids fails with
 * SWEREX_ERR_LIMIT_EXCEEDED.
 */
struct swerex_limits {
	uint64_t cpu_seconds;         /* RLIMIT_CPU: SIGXCPU, then SIGKILL 1 s on */
	uint64_t address_space;       /* RLIMIT_AS, bytes */
	uint64_t nproc;               /* RLIMIT_NPROC */
	uint64_t file_size;           /* RLIMIT_FSIZE, bytes: SIGXFSZ beyond */
	uint64_t memory;              /* cgroup memory.max, bytes, swap closed */
	uint64_t pids;                /* cgroup pids.max: processes, bash too */
};

/* Options of swerex_create_session(); zero-initialise, then set. */
struct swerex_create_opts {
	const char *session;          /* NULL or "" = "default" */
	const char *const *startup_source;
	size_t n_startup_source;
	double startup_timeout;       /* seconds; <= 0 = daemon default */
	/* Terminal size, 1 to 10000 each; 0 = the default (50 rows, 200 cols). */
	unsigned rows;
	unsigned cols;
	/* "NAME=value" strings added to the session's environment. NAME must
	 * be a shell variable name; PS1, PROMPT_COMMAND and SWEREX_SESSION are
	 * swerexd's own and refused (SWEREX_ERR_INVALID_REQUEST). */
	const char *const *env;
	size_t n_env;
	const char *cwd;              /* bash's directory; NULL or "" = the daemon's */
	/* Start from the daemon's whole environment. Without it the session
	 * gets only PATH, HOME, USER, LOGNAME, SHELL, LANG, LC_* and TZ from
	 * the daemon, then env, then TERM=xterm (env may set another). */
	bool inherit_env;
	const struct swerex_limits *limits;  /* NULL = none */
};

/* Options of swerex_run(); zero-initialise, then set. */
struct swerex_run_opts {
	const char *command;
	const char *session;          /* NULL or "" = "default" */
	double timeout;               /* seconds; used only when has_timeout */
	bool has_timeout;
	bool is_interactive_command;
	bool is_interactive_quit;
	enum swerex_check check;
	const char *error_msg;
	const char *const *expect;
	size_t n_expect;
	uint64_t max_output;          /* 0 = daemon default */
	/* Streaming: when set, output chunks are delivered here as they arrive. */
	void (*on_chunk)(const char *data, size_t len, void *arg);
	void *chunk_arg;
	/* Seconds without output after which the run fails with
	 * SWEREX_ERR_NO_OUTPUT_TIMEOUT (the output so far in err->observation)
	 * while the command keeps running; <= 0 = none. */
	double no_output_timeout;
	/* Send no command (command may be NULL): wait for the one still
	 * running (after SWEREX_ERR_NO_OUTPUT_TIMEOUT, a timeout or an expect
	 * match); its end gives its exit code and check handling as a run
	 * would. On a session at its prompt, answer at once with the output
	 * since the last observation and the last exit status. */
	bool wait;
};

/* Options of swerex_execute(); zero-initialise, then set. */
struct swerex_exec_opts {
	const char *const *argv;      /* program and arguments, when !shell */
	size_t argc;
	const char *command;          /* run by /bin/sh -c, when shell */
	bool shell;
	double timeout;               /* seconds; used only when has_timeout */
	bool has_timeout;
	const char *const *env;       /* "NAME=value" strings */
	size_t n_env;
	bool replace_env;             /* env is the whole environment (SWE-ReX) */
	const char *cwd;              /* NULL = the daemon's */
	bool check;                   /* non-zero exit -> NON_ZERO_EXIT_CODE */
	const char *error_msg;
	bool merge_output_streams;    /* stderr into stdout, in write order */
	const void *stdin_data;       /* NULL = stdin is /dev/null */
	size_t stdin_len;
	uint64_t max_output;          /* per stream; 0 = daemon default */
	/* Streaming: output as it arrives; stream is 1 (stdout) or 2 (stderr). */
	void (*on_output)(int stream, const char *data, size_t len, void *arg);
	void *output_arg;
};

/* Progress of an upload or download; called after each chunk. */
typedef void (*swerex_progress_cb)(uint64_t bytes_done, uint64_t files_done,
				   void *arg);

/* Options of swerex_interrupt(); zero-initialise, then set. */
struct swerex_interrupt_opts {
	const char *session;          /* NULL or "" = "default" */
	double timeout;               /* seconds between SIGINTs; <= 0 = 0.2 */
	unsigned n_retry;             /* 0 = 3 */
	bool has_n_retry;             /* set to send n_retry even when 0 */
	const char *const *expect;
	size_t n_expect;
};

/*
 * Connection. url is "unix:/path", a bare path, "tls://HOST:PORT",
 * "tcp://HOST:PORT" (plain TCP, for swerexd's --insecure loopback
 * listeners), IPv6 hosts as "[ADDR]:PORT"; or NULL for $SWEREX_URL, else the
 * daemon's default socket ($XDG_RUNTIME_DIR/swerexd.sock, else
 * /tmp/swerexd-$UID/swerexd.sock). client_name is sent in the Hello. TLS
 * settings and the token come from the environment as described at struct
 * swerex_connect_opts; the other options have their defaults.
 */
SWEREX_API int swerex_connect(const char *url, const char *client_name,
		   struct swerex_client **out, struct swerex_error **err);
SWEREX_API int swerex_connect_base(struct event_base *base, const char *url,
			const char *client_name, struct swerex_client **out,
			struct swerex_error **err);
/*
 * Close the connection; pending callbacks get SWEREX_ERR_DISCONNECTED. Must
 * not be called from a callback of the same client. Sessions live on in the
 * daemon.
 */
SWEREX_API void swerex_client_free(struct swerex_client *c);
/* The daemon's version string from the handshake (owned by the client). */
SWEREX_API const char *swerex_daemon_version(const struct swerex_client *c);
/* Resolve url as swerex_connect() does; returns a malloc'd path or NULL. */
SWEREX_API char *swerex_socket_path(const char *url);

/*
 * Options of swerex_connect_with(). Initialise with swerex_connect_opts_init()
 * (later versions may add fields), then set what you need. NULL or 0 means
 * the default named.
 */
struct swerex_connect_opts {
	const char *url;          /* as for swerex_connect() */
	const char *client_name;  /* sent in the Hello; NULL: "libswerex" */
	struct event_base *base;  /* NULL: a private base (blocking use) */
	/* tls:// only. The daemon's certificate is verified against ca_file
	 * (NULL: $SWEREX_CA, else the system's store) and must match
	 * server_name (NULL: the URL's host; an IP address is matched against
	 * the certificate's IP addresses). A failed verification is
	 * SWEREX_ERR_CONNECT naming the cause ("certificate verify failed:
	 * hostname mismatch"); files that cannot be loaded are
	 * SWEREX_ERR_BAD_ARGUMENT. */
	const char *ca_file;
	const char *server_name;
	const char *cert_file;    /* client certificate (mTLS); NULL: $SWEREX_CERT */
	const char *key_file;     /* its key; NULL: $SWEREX_KEY */
	/* Token, sent in every Hello: token, else the first line of
	 * token_file; for tls:// and tcp:// URLs, else $SWEREX_TOKEN, else the
	 * file named by $SWEREX_TOKEN_FILE (a Unix socket ignores tokens, so
	 * the environment is not read for one). A refused token is
	 * SWEREX_ERR_UNAUTHENTICATED with the daemon's message. */
	const char *token;
	const char *token_file;
	double connect_timeout;   /* connect + TLS + Hello, seconds; 0: 10 */
	/* When nothing has come from the daemon for this long while the
	 * client's base runs, send a ping; with nothing for twice as long, the
	 * connection is taken as lost (SWEREX_ERR_DISCONNECTED, "swerexd did not
	 * answer for 20 s (keepalive)", or a reconnect). The timer runs only
	 * while the base runs: blocking calls run it, a blocking client between
	 * calls does not, and the time between calls is not counted. It costs
	 * nothing per frame. Seconds; 0: 10; < 0: no pings. TCP keepalive
	 * (probes after this long, given up after about twice as long) is on
	 * for tls:// and tcp:// regardless. */
	double keepalive;
	/*
	 * On a lost connection (EOF, an I/O error, keepalive), reconnect with
	 * backoff (50 ms, doubling up to 2 s) instead of failing the pending
	 * requests, and send them again under their ids. The client presents
	 * the same random identity on every connection; swerexd answers a
	 * request it already ran from its cache of recent responses (or lets
	 * the retry join the first attempt still running) instead of running
	 * it twice. If swerexd no longer knows the identity (restarted, or the
	 * client was away too long), only requests that are safe to repeat
	 * (is_alive, list_sessions, read_file, download) are sent again; the
	 * others fail with SWEREX_ERR_DISCONNECTED. Streams that had delivered
	 * output or entries, and uploads, fail as soon as the loss is seen:
	 * their data cannot be replayed. Requests submitted while reconnecting
	 * wait and go out after it. A refused token or protocol version ends
	 * reconnecting at once; otherwise, once reconnect_timeout is spent,
	 * everything fails with SWEREX_ERR_DISCONNECTED ("gave up reconnecting
	 * after 30 s: <last error>"). Reconnecting runs from a timer on the
	 * client's base (so, like keepalive, only while it runs), and each
	 * attempt blocks that base for at most min(connect_timeout, time left):
	 * connect, TLS and Hello are done synchronously (a name lookup, too,
	 * and that one is bounded only by the resolver's own timeouts). The
	 * first connection is not retried: swerex_connect_with() fails if it
	 * fails.
	 */
	bool reconnect;
	double reconnect_timeout; /* give up after this many seconds; 0: 30 */
};

/* Fill o with the defaults. */
SWEREX_API void swerex_connect_opts_init(struct swerex_connect_opts *o);
/* Connect with options; the handshake is done on return. 0, or -1 and *err. */
SWEREX_API int swerex_connect_with(const struct swerex_connect_opts *o,
			struct swerex_client **out,
			struct swerex_error **err);
/* How many times the client has reconnected (0 without reconnect). */
SWEREX_API unsigned swerex_reconnects(const struct swerex_client *c);

/* Blocking calls. Return 0, or -1 with *err set (free with swerex_error_free). */
SWEREX_API int swerex_is_alive(struct swerex_client *c, bool *alive, char **message,
		    struct swerex_error **err);
SWEREX_API int swerex_create_session(struct swerex_client *c,
			  const struct swerex_create_opts *opts,
			  char **output, size_t *output_len,
			  struct swerex_error **err);
SWEREX_API int swerex_run(struct swerex_client *c, const struct swerex_run_opts *opts,
	       struct swerex_observation **obs, struct swerex_error **err);
SWEREX_API int swerex_interrupt(struct swerex_client *c,
		     const struct swerex_interrupt_opts *opts,
		     struct swerex_observation **obs, struct swerex_error **err);
SWEREX_API int swerex_close_session(struct swerex_client *c, const char *session,
			 struct swerex_error **err);
SWEREX_API int swerex_list_sessions(struct swerex_client *c,
			 struct swerex_session_info **sessions, size_t *n,
			 struct swerex_error **err);

/*
 * One-off commands and files. A failed execute's output (non-zero exit with
 * check, timeout) is in err->exec_result.
 */
SWEREX_API int swerex_execute(struct swerex_client *c,
			      const struct swerex_exec_opts *opts,
			      struct swerex_exec_result **res,
			      struct swerex_error **err);
/* Read length bytes from offset (length < 0: to the end); *data is
 * NUL-terminated for convenience. size, if not NULL, gets the file's size. */
SWEREX_API int swerex_read_file(struct swerex_client *c, const char *path,
				uint64_t offset, int64_t length, char **data,
				size_t *len, uint64_t *size,
				struct swerex_error **err);
/* Replace path atomically. mode < 0: 0644, or the old file's mode. */
SWEREX_API int swerex_write_file(struct swerex_client *c, const char *path,
				 const void *data, size_t len, int mode,
				 bool create_parents, struct swerex_error **err);
/*
 * Copy a local file or directory tree to the daemon's host; a directory's
 * contents land at remote_dst (SWE-ReX's semantics). Streamed in bounded
 * chunks; modes, empty directories and symlinks are kept. Nothing appears at
 * remote_dst unless the whole transfer succeeds.
 */
SWEREX_API int swerex_upload(struct swerex_client *c, const char *local_src,
			     const char *remote_dst, swerex_progress_cb progress,
			     void *progress_arg, struct swerex_error **err);
/* Copy a file or directory tree from the daemon's host, the same way. */
SWEREX_API int swerex_download(struct swerex_client *c, const char *remote_src,
			       const char *local_dst, swerex_progress_cb progress,
			       void *progress_arg, struct swerex_error **err);

/* Event-driven interface. */
enum swerex_reply_type {
	SWEREX_REPLY_ERROR,
	SWEREX_REPLY_CHUNK,          /* more replies follow for this id */
	SWEREX_REPLY_ALIVE,
	SWEREX_REPLY_SESSION_CREATED,
	SWEREX_REPLY_OBSERVATION,
	SWEREX_REPLY_SESSION_CLOSED,
	SWEREX_REPLY_SESSIONS,
	SWEREX_REPLY_EXEC,           /* final reply of swerex_submit_execute */
	SWEREX_REPLY_EXEC_CHUNK,     /* more replies follow; stream in `stream` */
	SWEREX_REPLY_RESIZED,        /* final reply of swerex_submit_resize */
	SWEREX_REPLY_INPUT_SENT,     /* swerex_submit_send_input: bytes in `len` */
	SWEREX_REPLY_ATTACH_END,     /* an attachment ended: reason in `message` */
	SWEREX_REPLY_DETACHED,       /* swerex_submit_detach */
	SWEREX_REPLY_STATS,          /* final reply of swerex_submit_stats */
	SWEREX_REPLY_HISTORY,        /* final reply of swerex_submit_history */
};

/* A reply; everything in it is borrowed for the callback's duration. */
struct swerex_reply {
	uint64_t id;
	enum swerex_reply_type type;
	const struct swerex_error *error;             /* REPLY_ERROR */
	const struct swerex_observation *observation; /* REPLY_OBSERVATION */
	const char *data;     /* REPLY_CHUNK data, REPLY_SESSION_CREATED output */
	size_t len;
	bool is_alive;        /* REPLY_ALIVE */
	const char *message;  /* REPLY_ALIVE */
	const struct swerex_session_info *sessions;   /* REPLY_SESSIONS */
	size_t n_sessions;
	const struct swerex_exec_result *exec_result; /* REPLY_EXEC */
	int stream;           /* REPLY_EXEC_CHUNK: 1 stdout, 2 stderr */
	const struct swerex_stats *stats;             /* REPLY_STATS */
	const struct swerex_history *history;         /* REPLY_HISTORY */
};

/* Called once per reply; for a streamed run, once per chunk and once at the end. */
typedef void (*swerex_reply_cb)(struct swerex_client *c,
				const struct swerex_reply *reply, void *arg);

/*
 * Queue a request. Return its id (> 0), or 0 with *err set. The callback is
 * called exactly once with a final reply (possibly after chunks), also when
 * the connection is lost or the client freed (SWEREX_ERR_DISCONNECTED).
 * For swerex_submit_run, opts->on_chunk is ignored: set stream to get
 * SWEREX_REPLY_CHUNK replies.
 */
SWEREX_API uint64_t swerex_submit_is_alive(struct swerex_client *c, swerex_reply_cb cb,
				void *arg, struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_create_session(struct swerex_client *c,
				      const struct swerex_create_opts *opts,
				      swerex_reply_cb cb, void *arg,
				      struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_run(struct swerex_client *c,
			   const struct swerex_run_opts *opts, bool stream,
			   swerex_reply_cb cb, void *arg,
			   struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_interrupt(struct swerex_client *c,
				 const struct swerex_interrupt_opts *opts,
				 swerex_reply_cb cb, void *arg,
				 struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_close_session(struct swerex_client *c,
				     const char *session, swerex_reply_cb cb,
				     void *arg, struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_list_sessions(struct swerex_client *c,
				     swerex_reply_cb cb, void *arg,
				     struct swerex_error **err);
/* opts->on_output is ignored: set stream to get SWEREX_REPLY_EXEC_CHUNK. */
SWEREX_API uint64_t swerex_submit_execute(struct swerex_client *c,
					  const struct swerex_exec_opts *opts,
					  bool stream, swerex_reply_cb cb,
					  void *arg, struct swerex_error **err);
/*
 * Set a session's terminal size (1 to 10000 rows and columns); the program
 * in its foreground gets SIGWINCH. Allowed while a command runs.
 */
SWEREX_API int swerex_resize(struct swerex_client *c, const char *session,
			     unsigned rows, unsigned cols,
			     struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_resize(struct swerex_client *c,
					 const char *session, unsigned rows,
					 unsigned cols, swerex_reply_cb cb,
					 void *arg, struct swerex_error **err);
/*
 * Daemon statistics (swerex_stats). Counters run from the daemon's start.
 * Bytes are frame bytes (5-byte header and protobuf payload): in, the
 * frames taken from clients; out, the bytes written to their sockets (for
 * TLS, handed to TLS; record overhead not included).
 */
struct swerex_histogram_bucket {
	double le;               /* upper bound in seconds; INFINITY for the last */
	uint64_t count;          /* cumulative: answers that took <= le */
};

/* One open connection, as the daemon sees it. */
struct swerex_conn_stats {
	uint64_t id;             /* the daemon's connection number */
	char *peer;              /* "HOST:PORT", or "unix:pid=N,uid=N" */
	char *client_name;       /* from its Hello */
	uint64_t requests;
	uint64_t bytes_in;
	uint64_t bytes_out;
	double connected;        /* seconds since the epoch */
};

struct swerex_stats {
	double uptime;           /* seconds */
	char *daemon_version;
	unsigned sessions_starting;
	unsigned sessions_idle;
	unsigned sessions_running;
	unsigned sessions_dead;
	uint64_t sessions_created;   /* sessions that finished starting */
	uint64_t commands;           /* BashActions answered (runs, any outcome) */
	uint64_t executes;           /* ExecuteRequests answered */
	uint64_t requests;           /* every request, this one included */
	uint64_t errors;             /* requests answered with an error */
	uint64_t bytes_in;
	uint64_t bytes_out;
	/* BashAction latency, request to final answer: fixed buckets from
	 * 0.0005 s to 500 s (1-2-5) and +Inf, cumulative. */
	struct swerex_histogram_bucket *latency;
	size_t n_latency;
	uint64_t latency_count;      /* equals commands */
	double latency_sum;          /* seconds */
	struct swerex_conn_stats *connections;
	size_t n_connections;
	/* The same in the Prometheus text exposition format, if asked; else "". */
	char *prometheus;
};

/* One command of a session's history (swerex_history). */
struct swerex_history_entry {
	uint64_t seq;            /* 1 for the session's first command */
	char *command;           /* its first 4096 bytes */
	bool has_exit_code;      /* false until it ended with a known code */
	int exit_code;
	double started;          /* seconds since the epoch */
	double duration;         /* seconds to its last answer (or its end) */
	uint64_t output_bytes;   /* printed, before truncation */
	char *failure_reason;    /* "" or "timeout", "interrupted", ... */
};

struct swerex_history {
	struct swerex_history_entry *entries;  /* oldest first */
	size_t n_entries;
	uint64_t total;          /* commands run in the session so far */
};

/*
 * Ask for the daemon's statistics; with prometheus, stats->prometheus holds
 * them in the Prometheus text format as well. Free with swerex_stats_free().
 */
SWEREX_API int swerex_stats(struct swerex_client *c, bool prometheus,
			    struct swerex_stats **stats,
			    struct swerex_error **err);
/*
 * The last commands of a session (the daemon keeps --history of them,
 * default 100): limit < 0 for all it keeps, else at most limit, the newest.
 * SWEREX_ERR_SESSION_DOES_NOT_EXIST for an unknown session. Free with
 * swerex_history_free().
 */
SWEREX_API int swerex_history(struct swerex_client *c, const char *session,
			      int64_t limit, struct swerex_history **history,
			      struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_stats(struct swerex_client *c,
					bool prometheus, swerex_reply_cb cb,
					void *arg, struct swerex_error **err);
SWEREX_API uint64_t swerex_submit_history(struct swerex_client *c,
					  const char *session, int64_t limit,
					  swerex_reply_cb cb, void *arg,
					  struct swerex_error **err);
SWEREX_API void swerex_stats_free(struct swerex_stats *s);
SWEREX_API void swerex_history_free(struct swerex_history *h);

/* Number of requests still waiting for their final reply. */
SWEREX_API size_t swerex_pending(const struct swerex_client *c);

/*
 * Raw input and live attach.
 *
 * swerex_send_input() writes bytes to a session's terminal exactly as typed:
 * no newline is added, control keys are their bytes (see swerex_key_bytes()).
 * It is meant for the program a command is running (less, top, a y/n
 * prompt, a REPL): the output goes to whichever request waits on the
 * session, or stays for the session's next observation. The daemon refuses
 * it with SWEREX_ERR_INVALID_REQUEST while bash sits at its prompt (input
 * would run outside any request: use swerex_run()), or when data is longer
 * than 64 KiB; with SWEREX_ERR_RESOURCE_EXHAUSTED (extra limit=input) when
 * 256 KiB of earlier input still waits for the program to read it. The
 * input is queued behind what the daemon itself wrote to the terminal, in
 * order. On success *written (if not NULL) is the number of bytes accepted.
 */
SWEREX_API int swerex_send_input(struct swerex_client *c, const char *session,
				 const void *data, size_t len,
				 uint64_t *written, struct swerex_error **err);
/* Queue a SendInput; the reply is SWEREX_REPLY_INPUT_SENT (len: bytes). */
SWEREX_API uint64_t swerex_submit_send_input(struct swerex_client *c,
					     const char *session,
					     const void *data, size_t len,
					     swerex_reply_cb cb, void *arg,
					     struct swerex_error **err);

/* Longest byte sequence swerex_key_bytes() writes. */
#define SWEREX_KEY_MAX 16

/*
 * Turn a key name, tmux send-keys style, into the bytes a terminal sends
 * for it (xterm): C-a .. C-z (also C-A, ^a), C-@ / C-Space (a NUL byte),
 * C-[ (Escape), C-\, C-], C-^, C-_, Escape / Esc, Enter (CR), Tab, BTab,
 * Space, BSpace / Backspace (DEL), Up, Down, Left, Right, Home, End,
 * PageUp / PgUp / PPage, PageDown / PgDn / NPage, Insert / IC,
 * Delete / DC, F1 .. F12, and a single character as itself; "M-" before
 * any of them (M-x, M-Up) prefixes Escape. Names are case-sensitive except the letter after C-. Writes at
 * most SWEREX_KEY_MAX bytes to out and returns how many (a key may be a
 * NUL byte), or -1 for an unknown name.
 */
SWEREX_API int swerex_key_bytes(const char *name, char out[SWEREX_KEY_MAX]);

/* Options of swerex_submit_attach(); zero-initialise, then set. */
struct swerex_attach_opts {
	/* Tell the daemon this attachment will send input (advisory: the
	 * daemon logs it; swerex_send_input() works without it). */
	bool read_write;
	/* Bytes of recent terminal output sent first; used only when
	 * has_scrollback (the default is the daemon's 16 KiB, its maximum;
	 * 0 sends none). */
	uint64_t scrollback;
	bool has_scrollback;
};

/* Terminal bytes of an attachment, raw (escape sequences kept). */
typedef void (*swerex_attach_chunk_cb)(struct swerex_client *c, uint64_t id,
				       const char *data, size_t len,
				       void *arg);
/*
 * End of an attachment: reason is the daemon's ("detached", "session
 * ended") and error NULL, or reason NULL and error set (the session does
 * not exist or is dead, or SWEREX_ERR_DISCONNECTED). Called exactly once.
 */
typedef void (*swerex_attach_end_cb)(struct swerex_client *c, uint64_t id,
				     const char *reason,
				     const struct swerex_error *error,
				     void *arg);

/*
 * Watch a session's terminal live: on_chunk gets the recent output
 * (scrollback) and then everything the terminal prints, raw, without the
 * daemon's prompt markers, until swerex_submit_detach(), the session's end
 * or the connection's end; then on_end. The agent's own requests on the
 * session work as before. If this client's connection does not keep up,
 * the daemon drops output for it (never slowing the session) and sends
 * "\r\n[swerex: output skipped]\r\n" once it has caught up. Return the
 * attachment's id, or 0 with *err set. An attachment is not resumed after
 * a reconnect: it ends with SWEREX_ERR_DISCONNECTED once it delivered
 * output.
 */
SWEREX_API uint64_t swerex_submit_attach(struct swerex_client *c,
					 const char *session,
					 const struct swerex_attach_opts *opts,
					 swerex_attach_chunk_cb on_chunk,
					 swerex_attach_end_cb on_end, void *arg,
					 struct swerex_error **err);
/*
 * End an attachment made on this client: its on_end gets "detached"
 * before this request's reply (SWEREX_REPLY_DETACHED).
 */
SWEREX_API uint64_t swerex_submit_detach(struct swerex_client *c,
					 uint64_t attach_id, swerex_reply_cb cb,
					 void *arg, struct swerex_error **err);
/* End an attachment, blocking. */
SWEREX_API int swerex_detach(struct swerex_client *c, uint64_t attach_id,
			     struct swerex_error **err);

/* Copies and frees. */
SWEREX_API struct swerex_observation *swerex_observation_dup(const struct swerex_observation *o);
SWEREX_API struct swerex_error *swerex_error_dup(const struct swerex_error *e);
SWEREX_API void swerex_observation_free(struct swerex_observation *o);
SWEREX_API void swerex_error_free(struct swerex_error *e);
SWEREX_API void swerex_sessions_free(struct swerex_session_info *s, size_t n);
SWEREX_API void swerex_exec_result_free(struct swerex_exec_result *r);
SWEREX_API struct swerex_exec_result *swerex_exec_result_dup(const struct swerex_exec_result *r);
/* Value of key in e->extra, or NULL. */
SWEREX_API const char *swerex_error_extra(const struct swerex_error *e, const char *key);
/* Upper-case name of a kind, e.g. "COMMAND_TIMEOUT"; never NULL. */
SWEREX_API const char *swerex_error_kind_name(enum swerex_error_kind kind);

#ifdef __cplusplus
}
#endif

#endif
