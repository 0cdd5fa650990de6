/* libswerex internals shared by its files (private, not installed). */
#ifndef SWEREX_CLIENT_H
#define SWEREX_CLIENT_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "net.h"
#include "swerex.h"
#include "swerex.pb-c.h"

/*
 * Final replies of requests that only blocking calls make; they are never
 * handed to a callback, so they are not in the public enum.
 */
#define CLIENT_REPLY_READ_FILE 1000
#define CLIENT_REPLY_WRITE_FILE 1001
#define CLIENT_REPLY_UPLOAD 1002
#define CLIENT_REPLY_DOWNLOAD 1003

struct client_wait;

/* Handle a streamed download entry; -1 (with w->error set) abandons it. */
typedef int (*client_entry_cb)(struct client_wait *w,
    const Swerex__V1__TransferEntry *entry);

/* Where a blocking call waits for its final reply. */
struct client_wait {
	int done;
	enum swerex_reply_type type;
	struct swerex_error *error;
	struct swerex_observation *observation;
	char *data;
	size_t len;
	bool is_alive;
	char *message;
	struct swerex_session_info *sessions;
	size_t n_sessions;
	struct swerex_exec_result *exec_result;
	struct swerex_stats *stats;
	struct swerex_history *history;
	uint64_t size;		/* read: the file's size */
	uint64_t bytes;		/* write, upload, download: bytes done */
	uint64_t files;		/* upload, download: files done */
	bool is_directory;	/* download: the source was a directory */
	void (*on_chunk)(const char *, size_t, void *);
	void *chunk_arg;
	void (*on_output)(int, const char *, size_t, void *);
	void *output_arg;
	client_entry_cb on_entry;
	void *entry_arg;
};

struct client_request;
TAILQ_HEAD(client_requests, client_request);

/* Length of the random identity a reconnecting client presents. */
#define CLIENT_ID_LEN 16

/* A connection to swerexd and the requests waiting on it. */
struct swerex_client {
	struct event_base *base;
	int own_base;
	int dead;		/* lost for good: every request failed */
	int in_callback;

	struct net net;		/* fd -1 while reconnecting or dead */
	struct evbuffer *in;
	struct evbuffer *out;
	struct event *read_ev;
	struct event *write_ev;

	char *daemon_version;
	uint64_t max_frame;		/* daemon's limit, 0 if unknown */
	uint64_t next_id;

	/* Pending requests: hashed by id, and listed in the order sent. */
	struct client_request **buckets;
	size_t n_buckets;
	size_t n_pending;
	struct client_requests requests;

	/* How to connect again, from struct swerex_connect_opts. */
	struct net_target target;
	SSL_CTX *ssl_ctx;		/* tls:// only */
	char *server_name;		/* NULL: the URL's host */
	char *client_name;
	char *token;			/* NULL: none */
	double connect_timeout;
	double keepalive;		/* seconds; <= 0: no pings */

	/* Keepalive: ticks of keepalive / CLIENT_KEEPALIVE_TICKS. */
	struct event *keepalive_ev;
	bool rx;			/* bytes came in since the last tick */
	unsigned int quiet;		/* ticks in a row without bytes */

	/* Reconnect. */
	bool reconnect;
	double reconnect_timeout;
	uint8_t identity[CLIENT_ID_LEN];
	struct event *reconnect_ev;
	bool reconnecting;
	struct timespec give_up;	/* when reconnecting stops */
	unsigned int backoff;		/* next wait, in milliseconds */
	unsigned int gen;		/* connections lost so far */
	unsigned int reconnects;
	char last_error[512];		/* why the last attempt failed */
};

/* swerex.c: errors, requests and blocking calls. */
struct swerex_error *error_new(enum swerex_error_kind kind, const char *fmt,
			       ...) __attribute__((format(printf, 2, 3)));
void error_give(struct swerex_error **err, struct swerex_error *e);
void error_set(struct swerex_error **err, enum swerex_error_kind kind,
	       const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint64_t client_queue(struct swerex_client *c, Swerex__V1__Request *req,
		      struct swerex_error **err);
uint64_t client_submit(struct swerex_client *c, Swerex__V1__Request *req,
		       swerex_reply_cb cb, void *arg, struct client_wait *w,
		       struct swerex_error **err);
void client_forget(struct swerex_client *c, uint64_t id);
int client_can_block(struct swerex_client *c, struct swerex_error **err);
int client_check(struct swerex_client *c, struct swerex_error **err);
int client_wait(struct swerex_client *c, uint64_t id, struct client_wait *w,
		struct swerex_error **err);
void client_kick(struct swerex_client *c);
int wait_result(struct client_wait *w, enum swerex_reply_type expected,
		struct swerex_error **err);
void wait_clear(struct client_wait *w);

/* convert.c: the public structs from the wire's messages. */
char *convert_bytes(const void *p, size_t len);
char *convert_string(const char *s);
struct swerex_observation *
convert_observation(const Swerex__V1__BashObservation *pb);
struct swerex_exec_result *
convert_exec_result(const Swerex__V1__ExecuteResponse *pb);
struct swerex_error *convert_error(const Swerex__V1__Error *pb);
int convert_sessions(const Swerex__V1__ListSessionsResponse *pb,
		     struct swerex_session_info **out, size_t *n);

/* stats.c: statistics and history. */
struct swerex_stats *stats_convert(const Swerex__V1__StatsResponse *pb);
struct swerex_history *stats_convert_history(
    const Swerex__V1__HistoryResponse *pb);

#endif
