/*
 * Integration test harness: start the real swerexd (path from $SWEREXD) on a
 * private socket in a fresh temp dir, wait for its readiness on a pipe, talk
 * to it through libswerex, and always stop and reap it.
 *
 * A test written with HTEST() gets its own daemon: harness_test() starts it,
 * runs the body, then sends SIGTERM and checks the daemon exits 0 (a crash or
 * an unclean exit fails the test). When the test failed, the daemon's log is
 * printed as TAP "# " lines. A watchdog (SIGALRM) bounds every test.
 */
#ifndef SWEREX_HARNESS_H
#define SWEREX_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "swerex.h"
#include "tap.h"

struct event_base;
struct harness;

/* Default timeout (seconds) for commands the tests expect to finish. */
#define HARNESS_TIMEOUT 30.0
/* Default per-test watchdog (seconds). */
#define HARNESS_WATCHDOG 90

/*
 * Declare a test run against a fresh daemon started with the extra arguments
 * args (a NULL-terminated array, or NULL). The body sees the daemon as h.
 */
#define HTEST_ARGS(name, args) \
	static void name##_body(struct harness *h); \
	static void name(void) { harness_test(#name, name##_body, (args)); } \
	static void name##_body(struct harness *h)
#define HTEST(name) HTEST_ARGS(name, NULL)

/* Start a daemon, run body, stop and reap every daemon the test started. */
void harness_test(const char *name, void (*body)(struct harness *),
		  const char *const *args);

/* Start a daemon in a fresh temp dir and connect a client; NULL on failure. */
struct harness *harness_start(const char *const *args);
/*
 * Spawn a daemon listening on sock_path (NULL: a socket in its own temp dir)
 * without waiting for it; see harness_wait_ready().
 */
struct harness *harness_spawn(const char *sock_path, const char *const *args);
/* Wait for READY=1: 1 ready, 0 the daemon closed the pipe first, -1 timeout. */
int harness_wait_ready(struct harness *h, double timeout);
/* Wait for the daemon to exit; return its wait status, or -1 on timeout. */
int harness_wait_exit(struct harness *h, double timeout);
/* Send SIGTERM and reap; return the wait status (-1 if it had to be killed). */
int harness_stop(struct harness *h);
/* Send SIGKILL and reap; return the wait status. */
int harness_kill(struct harness *h);
/* Whether the daemon is still running (reaps it if it has exited). */
bool harness_running(struct harness *h);
/* Stop if running, print the log when the current test failed, clean up. */
void harness_free(struct harness *h);

/*
 * The first address from the daemon's LISTEN= lines that starts with prefix
 * (e.g. "tls://" gives "tls://127.0.0.1:40123"), or NULL. Static storage.
 */
const char *harness_listen(struct harness *h, const char *prefix);
/* Path of the daemon's socket. */
const char *harness_socket_path(const struct harness *h);
/* "unix:<socket path>". */
const char *harness_url(const struct harness *h);
/* The daemon's private temp dir (tests may create files in it). */
const char *harness_dir(const struct harness *h);
/* The daemon's pid. */
pid_t harness_pid(const struct harness *h);
/* The client connected by harness_start() (freed by harness_free()). */
struct swerex_client *harness_client(const struct harness *h);
/* Connect another blocking client; NULL (after a diagnostic) on failure. */
struct swerex_client *harness_connect(const struct harness *h);
/* Connect an event-driven client on base; NULL on failure. */
struct swerex_client *harness_connect_base(const struct harness *h,
					   struct event_base *base);
/* Print the daemon's log as TAP comment lines. */
void harness_print_log(const struct harness *h);
/* Re-arm the current test's watchdog to seconds from now. */
void harness_watchdog(unsigned seconds);

/*
 * Whether the daemons run under valgrind (meson test --setup valgrind): for
 * the few checks valgrind itself defeats, which then SKIP saying why.
 */
bool harness_under_valgrind(void);

/* Seconds on the monotonic clock. */
double harness_now(void);
/* Wait until a process (not necessarily our child) has exited. */
bool harness_pid_gone(pid_t pid, double timeout);

/* Create a session; print a diagnostic and return -1 on failure. */
int harness_create(struct swerex_client *c, const char *session);
/* Close a session; print a diagnostic and return -1 on failure. */
int harness_close(struct swerex_client *c, const char *session);
/*
 * Run command in session (timeout < 0: none). Return the observation, or NULL
 * with *err set.
 */
struct swerex_observation *harness_run(struct swerex_client *c,
				       const char *session, const char *command,
				       double timeout, enum swerex_check check,
				       struct swerex_error **err);
/*
 * Run command with check silent and HARNESS_TIMEOUT; on error print it as a
 * test failure and return NULL.
 */
struct swerex_observation *harness_exec_at(const char *file, int line,
					   struct swerex_client *c,
					   const char *session,
					   const char *command);
#define harness_exec(c, s, cmd) harness_exec_at(__FILE__, __LINE__, (c), (s), (cmd))
/* Run and check output (exactly; NULL: don't) and exit code (-1: don't). */
void harness_check_run_at(const char *file, int line, struct swerex_client *c,
			  const char *session, const char *command,
			  const char *output, int exit_code);
#define CHECK_RUN(c, s, cmd, out, code) \
	harness_check_run_at(__FILE__, __LINE__, (c), (s), (cmd), (out), (code))
/*
 * Run opts and expect an error of kind; return the error (caller frees), or
 * NULL after a diagnostic when the run succeeded or failed otherwise.
 */
struct swerex_error *harness_expect_error_at(const char *file, int line,
					     struct swerex_client *c,
					     const struct swerex_run_opts *opts,
					     enum swerex_error_kind kind);
#define EXPECT_ERROR(c, opts, kind) \
	harness_expect_error_at(__FILE__, __LINE__, (c), (opts), (kind))
/* Print an error (kind, message, extras, observation) as TAP comments. */
void harness_show_error(const char *label, const struct swerex_error *err);
/* Print an observation as TAP comments. */
void harness_show_observation(const char *label,
			      const struct swerex_observation *o);
/* Pid of a session from list_sessions, or -1. */
int harness_session_pid(struct swerex_client *c, const char *session);
/* Whether the len bytes at p contain the C string s. */
bool harness_contains(const char *p, size_t len, const char *s);

/* Streamed output collected by harness_chunks_add (up to 4 KiB kept). */
struct harness_chunks {
	char buf[4096];
	size_t len;
	int n;                      /* chunks seen */
};

/* An on_chunk callback appending to the struct harness_chunks in arg. */
void harness_chunks_add(const char *data, size_t len, void *arg);

/* A reply captured by harness_reply_cb (deep copies, owned by the slot). */
struct harness_reply {
	bool done;
	unsigned seq;               /* arrival order, from 1 */
	uint64_t id;
	enum swerex_reply_type type;
	struct swerex_error *error;
	struct swerex_observation *observation;
	char *data;                 /* session-created output or chunks */
	size_t len;
	bool is_alive;
	struct swerex_session_info *sessions;
	size_t n_sessions;
};

/* Record a final reply into the struct harness_reply passed as arg. */
void harness_reply_cb(struct swerex_client *c, const struct swerex_reply *reply,
		      void *arg);
/* Free what a reply slot holds and zero it. */
void harness_reply_clear(struct harness_reply *r);
/* Describe a reply slot in TAP comments. */
void harness_reply_show(const char *label, const struct harness_reply *r);
/*
 * Run base until every one of the n slots is done, or timeout seconds pass.
 * Return true when all are done.
 */
bool harness_drive(struct event_base *base, struct harness_reply **slots,
		   size_t n, double timeout);
/* Run base until done(arg) is true or timeout passes; return done(arg). */
bool harness_drive_until(struct event_base *base, bool (*done)(void *),
			 void *arg, double timeout);

#endif
