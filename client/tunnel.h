/*
 * swerex-tunnel internals shared by its two files (private): tunnel.c owns
 * the connections, tunnel-main.c the process (options, listeners,
 * credentials, signals).
 */
#ifndef SWEREX_TUNNEL_H
#define SWEREX_TUNNEL_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stdbool.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/ssl.h>

/* Addresses one --listen may bind (a host name can resolve to several). */
#define TUNNEL_MAX_LISTEN 8
/* Authentication failures remembered (reverse), one slot per address. */
#define TUNNEL_FAIL_SLOTS 256

enum tunnel_scheme { TUNNEL_UNIX, TUNNEL_TLS, TUNNEL_TCP };

/* A parsed unix:PATH, tls://HOST:PORT or tcp://HOST:PORT. */
struct tunnel_addr {
	enum tunnel_scheme scheme;
	char *path;
	char *host;
	char *port;
};

/* The command line. */
struct tunnel_options {
	const char *listen;
	const char *connect;
	const char *ca;
	const char *server_name;
	const char *cert;
	const char *key;
	const char *client_ca;
	const char *token_file;
	bool insecure;
	double auth_timeout;
	double connect_timeout;
	unsigned keepalive;
	unsigned max_conns;
	int ready_fd;
};

/* Authentication failures of one address (reverse). */
struct tunnel_fail {
	int family;		/* 0: free slot */
	unsigned char addr[16];
	unsigned count;
	double last;
};

struct tunnel_conn;

/* The tunnel process: its listeners, credentials and connections. */
struct tunnel {
	struct tunnel_options opt;
	bool reverse;
	struct tunnel_addr listen;
	struct tunnel_addr connect;
	const char *server_name;	/* forward: name the remote must prove */
	struct event_base *base;
	struct evdns_base *dns;		/* forward only */
	SSL_CTX *ctx;			/* client (forward) or server (reverse tls) */
	char *token;
	struct evconnlistener *listeners[TUNNEL_MAX_LISTEN];
	char listen_names[TUNNEL_MAX_LISTEN][128];
	size_t n_listeners;
	char *unix_path;		/* the socket file we created */
	struct event *ev_sig[3];
	struct event *ev_relisten;
	bool stopping;
	/* Owned by tunnel.c: connections, remote addresses, failures. */
	TAILQ_HEAD(, tunnel_conn) conns;
	unsigned n_conns;
	unsigned next_id;
	double limit_logged;		/* when "connection limit" was last said */
	struct evutil_addrinfo *addrs;	/* remote addresses (forward) */
	double addrs_at;
	bool addrs_stale;
	bool resolve_busy;
	struct evdns_getaddrinfo_request *resolve_req;
	TAILQ_HEAD(, tunnel_conn) resolve_waiters;
	struct tunnel_fail fails[TUNNEL_FAIL_SLOTS];
};

/* tunnel.c */
void tunnel_timer_add(struct event *ev, double seconds);
void tunnel_init_conns(struct tunnel *t);
void tunnel_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg);
void tunnel_close_all(struct tunnel *t);
void tunnel_forget_addrs(struct tunnel *t);

#endif
