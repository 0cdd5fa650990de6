/* The daemon: configuration, listeners, signals, and the tables they share. */
#ifndef SWEREXD_SERVER_H
#define SWEREXD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/event_struct.h>

#include "stats.h"

struct event_base;
struct tlsmod;
struct tlsmod_ctx;
struct evconnlistener;
struct event;
struct session;
struct conn;
struct ssl_ctx_st;

#define SERVER_MAX_LISTEN 8
#define SERVER_MAX_UIDS 32
#define SERVER_SESSION_BUCKETS 4096
#define SERVER_MAX_TIMER 1e7    /* seconds: longer timeouts are cut to this */

struct server_config {
	const char *listen[SERVER_MAX_LISTEN];
	size_t n_listen;
	size_t max_sessions;
	size_t max_conns;
	size_t max_frame;
	size_t max_output;
	size_t scrollback;       /* bytes of raw output kept per session */
	double kill_grace;       /* seconds between SIGHUP and SIGKILL */
	int ready_fd;
	/* Remote access (TCP listeners). */
	const char *tls_cert;
	const char *tls_key;
	const char *tls_client_ca;
	const char *token_file;  /* NULL: $SWEREXD_TOKEN */
	bool insecure;           /* allow tcp:// (plain) on loopback */
	double keepalive;        /* seconds to notice a dead TCP peer */
	double auth_timeout;     /* seconds from accept to a valid Hello */
	double resume_timeout;   /* seconds a client identity outlives its connection */
	double stuck_timeout;    /* seconds a peer may leave full output unread */
	unsigned allow_uid[SERVER_MAX_UIDS];  /* Unix peers; none: any */
	size_t n_allow_uid;
	size_t history;          /* commands kept per session (0: none) */
	const char *cgroup;      /* --cgroup DIR or "none"; NULL: our own */
};

/* What kind of peers a listener serves. */
enum server_transport {
	SERVER_UNIX,
	SERVER_TCP,     /* plain TCP, loopback only (--insecure) */
	SERVER_TLS,
};

struct server_listener {
	struct server *srv;
	struct evconnlistener *l;
	struct event ev_retry;  /* re-enables l after running out of fds */
	enum server_transport transport;
	char *path;             /* a Unix socket file we created and remove */
	char name[128];         /* as written to the ready fd */
};

struct server {
	struct server_config cfg;
	struct event_base *base;
	struct server_listener listeners[SERVER_MAX_LISTEN];
	size_t n_listeners;
	const struct tlsmod *tls;        /* loaded with the first TLS context */
	struct tlsmod_ctx *tls_ctx;      /* current context; SIGHUP replaces it */
	char *token;                     /* required on TCP listeners */
	struct event *ev_sig[4];
	struct event *ev_deadline;
	bool stopping;
	int exit_code;
	char *reaper;                    /* swerexd-reaper's path, or NULL */

	/* Owned by spare.c: a reaper started ahead of the next session. */
	pid_t spare_pid;
	struct spare_job *spare_job;     /* one being started, or NULL */
	struct spare_worker *spare_worker; /* the thread that starts them */
	bool spare_no_worker;            /* none: the loop starts them */
	int spare_fd;                    /* its spec pipe */
	size_t spare_room;               /* what the pipe takes at once */
	struct event *ev_spare;

	/* Owned by session.c. */
	struct session *buckets[SERVER_SESSION_BUCKETS];
	TAILQ_HEAD(, session) sessions;  /* named, in creation order */
	TAILQ_HEAD(, session) closing;   /* unnamed, waiting to be reaped */
	size_t n_sessions;

	/* Owned by conn.c. */
	TAILQ_HEAD(, conn) conns;
	size_t n_conns;

	/* Owned by exec.c: one-off commands still running or being reaped. */
	TAILQ_HEAD(, exec_job) execs;
	size_t n_execs;

	/* Owned by auth.c: recent authentication failures by address. */
	struct auth_failure *auth_failures;

	/* Owned by ident.c: client identities and their response caches. */
	TAILQ_HEAD(, ident) idents;
	size_t n_idents;
	size_t ident_bytes;

	/* Owned by attach.c: live attachments to sessions. */
	TAILQ_HEAD(, attach) attaches;

	/* Owned by stats.c: counters since start. */
	struct stats stats;

	/* Owned by cgroup.c: where sessions' cgroups go (memory, pids limits). */
	char *cgroup;                    /* a delegated cgroup v2 dir, or NULL */
	char cgroup_why[512];            /* why there is none */
	uint64_t cgroup_next;            /* number of the last session-N */

	/* Owned by file.c: transfers in progress. */
	TAILQ_HEAD(, file_upload) uploads;
	TAILQ_HEAD(, file_download) downloads;
};

void server_config_defaults(struct server_config *cfg);
int server_init(struct server *srv);
int server_run(struct server *srv);
void server_free(struct server *srv);
void server_check_stopped(struct server *srv);
void server_timer_add(struct event *ev, double seconds);
char *server_default_socket(void);

#endif
