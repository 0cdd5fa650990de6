/*
 * Daemon statistics. The counters live in struct stats (in struct server)
 * and in each connection (conn.c); they are plain increments on paths the
 * daemon takes anyway: conn.c counts requests, frame bytes and answers
 * (conn_reply() is where every final answer passes, so commands, executes,
 * errors and BashAction latency are counted there from the request's kind),
 * session.c counts sessions that finished starting. Everything else
 * (sessions by state, connections) is gathered when a StatsRequest asks.
 *
 * Bytes are frame bytes (5-byte header and payload): in, the frames taken
 * from a connection's input; out, the bytes that left its output buffer
 * for the socket (for TLS, for the TLS layer; record overhead excluded).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conn.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "stats.h"

/* Upper bounds of the latency buckets in seconds; the last one is +Inf. */
static const double stats_bounds[STATS_BUCKETS - 1] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
	1, 2, 5, 10, 20, 50, 100, 200, 500,
};

/* Start counting from now. */
void
stats_init(struct stats *st)
{
	memset(st, 0, sizeof *st);
	clock_gettime(CLOCK_MONOTONIC, &st->started);
}

/* Give the seconds from t0 to now on the monotonic clock. */
static double
stats_since(const struct timespec *t0)
{
	struct timespec now;
	double d;

	clock_gettime(CLOCK_MONOTONIC, &now);
	d = (double)(now.tv_sec - t0->tv_sec) +
	    (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
	return d > 0 ? d : 0;
}

/* Mark a request for counting when it is answered; time a BashAction. */
void
stats_request(struct stats *st, struct req *r, int body)
{
	r->stats = st;
	r->body = body;
	if (body == SWEREX__V1__REQUEST__BODY_RUN)
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
}

/* Count a final answer of the kind body_case to a request. */
void
stats_answered(const struct req *r, int body_case)
{
	struct stats *st = r->stats;
	double d;
	size_t i;

	if (st == NULL)
		return;
	if (body_case == SWEREX__V1__RESPONSE__BODY_ERROR)
		st->errors++;
	if (r->body == SWEREX__V1__REQUEST__BODY_EXECUTE)
		st->executes++;
	if (r->body != SWEREX__V1__REQUEST__BODY_RUN)
		return;
	st->commands++;
	d = stats_since(&r->t0);
	st->latency_sum += d;
	for (i = 0; i < STATS_BUCKETS - 1 && d > stats_bounds[i]; i++)
		;
	st->latency[i]++;
}

/*
 * Copy at most len bytes of src to dst (size bytes, NUL-terminated), as
 * valid UTF-8: a cut never splits a character and an invalid byte becomes
 * '?'. Strings clients sent go back out in string fields, which some
 * protobuf runtimes (Python's) refuse to decode unless they are UTF-8.
 * Return the length written.
 */
size_t
stats_utf8_copy(char *dst, size_t size, const char *src, size_t len)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t i = 0, o = 0, n, k;

	if (size == 0)
		return 0;
	while (i < len && p[i] != '\0') {
		if (p[i] < 0x80) {
			/* ASCII, nearly every byte of a command: one store. */
			if (o + 1 >= size)
				break;
			dst[o++] = (char)p[i++];
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			n = 2;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			n = 3;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			n = 4;
		else
			n = 0;
		for (k = 1; n > 0 && k < n; k++)
			if (i + k >= len || (p[i + k] & 0xc0) != 0x80)
				n = 0;
		/* Overlong forms, surrogates and values above U+10FFFF. */
		if ((n == 3 && ((p[i] == 0xe0 && p[i + 1] < 0xa0) ||
		    (p[i] == 0xed && p[i + 1] > 0x9f))) ||
		    (n == 4 && ((p[i] == 0xf0 && p[i + 1] < 0x90) ||
		    (p[i] == 0xf4 && p[i + 1] > 0x8f))))
			n = 0;
		if (o + (n > 0 ? n : 1) >= size)
			break;
		if (n == 0) {
			dst[o++] = '?';
			i++;
			continue;
		}
		memcpy(dst + o, p + i, n);
		o += n;
		i += n;
	}
	dst[o] = '\0';
	return o;
}

/* Append a Prometheus label value, escaped. */
static void
stats_label(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			evbuffer_add(b, "\\\\", 2);
		else if (*s == '"')
			evbuffer_add(b, "\\\"", 2);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

/* Append a metric's HELP and TYPE lines. */
static void
stats_head(struct evbuffer *b, const char *name, const char *type,
	   const char *help)
{
	evbuffer_add_printf(b, "# HELP swerexd_%s %s\n# TYPE swerexd_%s %s\n",
	    name, help, name, type);
}

/* Append a metric that is one unlabelled counter. */
static void
stats_counter(struct evbuffer *b, const char *name, const char *help,
	      uint64_t v)
{
	stats_head(b, name, "counter", help);
	evbuffer_add_printf(b, "swerexd_%s %llu\n", name, (unsigned long long)v);
}

/* Append one sample of a per-connection metric. */
static void
stats_conn_sample(struct evbuffer *b, const char *name,
		  const Swerex__V1__ConnStats *cs, const char *value)
{
	evbuffer_add_printf(b, "swerexd_%s{id=\"%llu\",peer=\"", name,
	    (unsigned long long)cs->id);
	stats_label(b, cs->peer);
	evbuffer_add(b, "\",client=\"", 10);
	stats_label(b, cs->client_name);
	evbuffer_add_printf(b, "\"} %s\n", value);
}

/* Write the response in the Prometheus text exposition format (0.0.4). */
static void
stats_text(struct evbuffer *b, const Swerex__V1__StatsResponse *sr)
{
	static const char *const state[] = { "starting", "idle", "running",
	    "dead" };
	const uint32_t count[] = { sr->sessions_starting, sr->sessions_idle,
	    sr->sessions_running, sr->sessions_dead };
	char v[64];
	size_t i;

	stats_head(b, "build_info", "gauge", "The daemon's version.");
	evbuffer_add(b, "swerexd_build_info{version=\"", 28);
	stats_label(b, sr->daemon_version);
	evbuffer_add(b, "\"} 1\n", 5);
	stats_head(b, "uptime_seconds", "gauge",
	    "Seconds since the daemon started.");
	evbuffer_add_printf(b, "swerexd_uptime_seconds %.3f\n", sr->uptime);
	stats_head(b, "sessions", "gauge", "Named sessions by state.");
	for (i = 0; i < 4; i++)
		evbuffer_add_printf(b, "swerexd_sessions{state=\"%s\"} %u\n",
		    state[i], count[i]);
	stats_counter(b, "sessions_created_total",
	    "Sessions that finished starting.", sr->sessions_created);
	stats_counter(b, "commands_total", "BashActions answered.",
	    sr->commands);
	stats_counter(b, "executes_total", "ExecuteRequests answered.",
	    sr->executes);
	stats_counter(b, "requests_total", "Requests received.", sr->requests);
	stats_counter(b, "errors_total", "Requests answered with an error.",
	    sr->errors);
	stats_counter(b, "received_bytes_total",
	    "Frame bytes received from clients.", sr->bytes_in);
	stats_counter(b, "sent_bytes_total", "Frame bytes sent to clients.",
	    sr->bytes_out);
	stats_head(b, "command_duration_seconds", "histogram",
	    "BashAction latency from request to final answer.");
	for (i = 0; i < sr->n_command_latency; i++) {
		if (isinf(sr->command_latency[i]->le))
			snprintf(v, sizeof v, "+Inf");
		else
			snprintf(v, sizeof v, "%g", sr->command_latency[i]->le);
		evbuffer_add_printf(b, "swerexd_command_duration_seconds_bucket"
		    "{le=\"%s\"} %llu\n", v,
		    (unsigned long long)sr->command_latency[i]->count);
	}
	evbuffer_add_printf(b, "swerexd_command_duration_seconds_sum %.9g\n"
	    "swerexd_command_duration_seconds_count %llu\n",
	    sr->command_latency_sum,
	    (unsigned long long)sr->command_latency_count);
	stats_head(b, "connections", "gauge", "Open client connections.");
	evbuffer_add_printf(b, "swerexd_connections %zu\n", sr->n_connections);
	if (sr->n_connections == 0)
		return;
	stats_head(b, "connection_requests_total", "counter",
	    "Requests received on an open connection.");
	for (i = 0; i < sr->n_connections; i++) {
		snprintf(v, sizeof v, "%llu",
		    (unsigned long long)sr->connections[i]->requests);
		stats_conn_sample(b, "connection_requests_total",
		    sr->connections[i], v);
	}
	stats_head(b, "connection_received_bytes_total", "counter",
	    "Frame bytes received on an open connection.");
	for (i = 0; i < sr->n_connections; i++) {
		snprintf(v, sizeof v, "%llu",
		    (unsigned long long)sr->connections[i]->bytes_in);
		stats_conn_sample(b, "connection_received_bytes_total",
		    sr->connections[i], v);
	}
	stats_head(b, "connection_sent_bytes_total", "counter",
	    "Frame bytes sent on an open connection.");
	for (i = 0; i < sr->n_connections; i++) {
		snprintf(v, sizeof v, "%llu",
		    (unsigned long long)sr->connections[i]->bytes_out);
		stats_conn_sample(b, "connection_sent_bytes_total",
		    sr->connections[i], v);
	}
	stats_head(b, "connection_start_time_seconds", "gauge",
	    "When an open connection was accepted, in seconds since the epoch.");
	for (i = 0; i < sr->n_connections; i++) {
		snprintf(v, sizeof v, "%.3f", sr->connections[i]->connected);
		stats_conn_sample(b, "connection_start_time_seconds",
		    sr->connections[i], v);
	}
}

/* Answer StatsRequest. */
void
stats_reply(struct server *srv, struct req *r,
	    const Swerex__V1__StatsRequest *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__StatsResponse sr = SWEREX__V1__STATS_RESPONSE__INIT;
	Swerex__V1__HistogramBucket hb[STATS_BUCKETS], *hbp[STATS_BUCKETS];
	const struct stats *st = &srv->stats;
	Swerex__V1__ConnStats *cs = NULL, **csp = NULL;
	char (*peer)[CONN_PEER_LEN] = NULL;
	struct evbuffer *text = NULL;
	uint32_t states[4];
	uint64_t cum = 0;
	size_t i, n = srv->n_conns + 1;

	if ((cs = calloc(n, sizeof *cs)) == NULL ||
	    (csp = calloc(n, sizeof *csp)) == NULL ||
	    (peer = calloc(n, sizeof *peer)) == NULL)
		goto fail;
	sr.n_connections = conn_stats(srv, cs, peer, n);
	for (i = 0; i < sr.n_connections; i++)
		csp[i] = &cs[i];
	sr.connections = csp;
	session_count(srv, states);
	sr.sessions_starting = states[0];
	sr.sessions_idle = states[1];
	sr.sessions_running = states[2];
	sr.sessions_dead = states[3];
	sr.uptime = stats_since(&st->started);
	sr.sessions_created = st->sessions_created;
	sr.commands = st->commands;
	sr.executes = st->executes;
	sr.requests = st->requests;
	sr.errors = st->errors;
	sr.bytes_in = st->bytes_in;
	sr.bytes_out = st->bytes_out;
	for (i = 0; i < STATS_BUCKETS; i++) {
		swerex__v1__histogram_bucket__init(&hb[i]);
		cum += st->latency[i];
		hb[i].le = i < STATS_BUCKETS - 1 ? stats_bounds[i] : INFINITY;
		hb[i].count = cum;
		hbp[i] = &hb[i];
	}
	sr.n_command_latency = STATS_BUCKETS;
	sr.command_latency = hbp;
	sr.command_latency_count = cum;
	sr.command_latency_sum = st->latency_sum;
	sr.daemon_version = SWEREX_VERSION;
	if (m->prometheus) {
		if ((text = evbuffer_new()) == NULL)
			goto fail;
		stats_text(text, &sr);
		if (evbuffer_add(text, "", 1) < 0 ||
		    (sr.text = (char *)evbuffer_pullup(text, -1)) == NULL)
			goto fail;
	}
	resp.body_case = SWEREX__V1__RESPONSE__BODY_STATS;
	resp.stats = &sr;
	conn_reply(r, &resp);
	goto out;

fail:
	log_warn("cannot answer a stats request: out of memory");
	conn_reply_error(r, SWEREX__V1__ERROR_KIND__INTERNAL, NULL, NULL,
	    "out of memory");
out:
	if (text != NULL)
		evbuffer_free(text);
	free(peer);
	free(csp);
	free(cs);
}
