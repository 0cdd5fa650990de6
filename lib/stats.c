/*
 * libswerex: daemon statistics (StatsRequest) and session history
 * (HistoryRequest): the requests, their blocking forms, and the public
 * structs converted from the wire's messages and freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "swerex.h"

/* Convert a wire StatsResponse; NULL if memory ran out. */
struct swerex_stats *
stats_convert(const Swerex__V1__StatsResponse *pb)
{
	struct swerex_stats *s;
	const Swerex__V1__ConnStats *pc;
	size_t i;

	if ((s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->uptime = pb->uptime;
	s->sessions_starting = pb->sessions_starting;
	s->sessions_idle = pb->sessions_idle;
	s->sessions_running = pb->sessions_running;
	s->sessions_dead = pb->sessions_dead;
	s->sessions_created = pb->sessions_created;
	s->commands = pb->commands;
	s->executes = pb->executes;
	s->requests = pb->requests;
	s->errors = pb->errors;
	s->bytes_in = pb->bytes_in;
	s->bytes_out = pb->bytes_out;
	s->latency_count = pb->command_latency_count;
	s->latency_sum = pb->command_latency_sum;
	if ((s->daemon_version = convert_string(pb->daemon_version)) == NULL ||
	    (s->prometheus = convert_string(pb->text)) == NULL)
		goto fail;
	if (pb->n_command_latency > 0) {
		s->latency = calloc(pb->n_command_latency, sizeof *s->latency);
		if (s->latency == NULL)
			goto fail;
		s->n_latency = pb->n_command_latency;
		for (i = 0; i < s->n_latency; i++) {
			s->latency[i].le = pb->command_latency[i]->le;
			s->latency[i].count = pb->command_latency[i]->count;
		}
	}
	if (pb->n_connections > 0) {
		s->connections = calloc(pb->n_connections,
		    sizeof *s->connections);
		if (s->connections == NULL)
			goto fail;
		s->n_connections = pb->n_connections;
		for (i = 0; i < s->n_connections; i++) {
			pc = pb->connections[i];
			s->connections[i].id = pc->id;
			s->connections[i].requests = pc->requests;
			s->connections[i].bytes_in = pc->bytes_in;
			s->connections[i].bytes_out = pc->bytes_out;
			s->connections[i].connected = pc->connected;
			if ((s->connections[i].peer =
			    convert_string(pc->peer)) == NULL ||
			    (s->connections[i].client_name =
			    convert_string(pc->client_name)) == NULL)
				goto fail;
		}
	}
	return s;

fail:
	swerex_stats_free(s);
	return NULL;
}

/* Convert a wire HistoryResponse; NULL if memory ran out. */
struct swerex_history *
stats_convert_history(const Swerex__V1__HistoryResponse *pb)
{
	struct swerex_history *h;
	struct swerex_history_entry *e;
	const Swerex__V1__HistoryEntry *pe;
	size_t i;

	if ((h = calloc(1, sizeof *h)) == NULL)
		return NULL;
	h->total = pb->total;
	if (pb->n_entries == 0)
		return h;
	if ((h->entries = calloc(pb->n_entries, sizeof *h->entries)) == NULL)
		goto fail;
	h->n_entries = pb->n_entries;
	for (i = 0; i < h->n_entries; i++) {
		pe = pb->entries[i];
		e = &h->entries[i];
		e->seq = pe->seq;
		e->has_exit_code = pe->has_exit_code_case ==
		    SWEREX__V1__HISTORY_ENTRY__HAS_EXIT_CODE_EXIT_CODE;
		e->exit_code = e->has_exit_code ? pe->exit_code : 0;
		e->started = pe->started;
		e->duration = pe->duration;
		e->output_bytes = pe->output_bytes;
		if ((e->command = convert_string(pe->command)) == NULL ||
		    (e->failure_reason = convert_string(pe->failure_reason)) ==
		    NULL)
			goto fail;
	}
	return h;

fail:
	swerex_history_free(h);
	return NULL;
}

/* Free statistics from swerex_stats(). */
void
swerex_stats_free(struct swerex_stats *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n_connections; i++) {
		free(s->connections[i].peer);
		free(s->connections[i].client_name);
	}
	free(s->connections);
	free(s->latency);
	free(s->daemon_version);
	free(s->prometheus);
	free(s);
}

/* Free a history from swerex_history(). */
void
swerex_history_free(struct swerex_history *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->n_entries; i++) {
		free(h->entries[i].command);
		free(h->entries[i].failure_reason);
	}
	free(h->entries);
	free(h);
}

/* Build and queue a StatsRequest. */
static uint64_t
stats_submit(struct swerex_client *c, bool prometheus, swerex_reply_cb cb,
    void *arg, struct client_wait *w, struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__StatsRequest body = SWEREX__V1__STATS_REQUEST__INIT;

	body.prometheus = prometheus;
	req.body_case = SWEREX__V1__REQUEST__BODY_STATS;
	req.stats = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Build and queue a HistoryRequest; limit < 0: everything kept. */
static uint64_t
stats_submit_history(struct swerex_client *c, const char *session,
    int64_t limit, swerex_reply_cb cb, void *arg, struct client_wait *w,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__HistoryRequest body = SWEREX__V1__HISTORY_REQUEST__INIT;

	body.session = (char *)(session != NULL ? session : "");
	if (limit >= 0) {
		body.has_limit_case = SWEREX__V1__HISTORY_REQUEST__HAS_LIMIT_LIMIT;
		body.limit = limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit;
	}
	req.body_case = SWEREX__V1__REQUEST__BODY_HISTORY;
	req.history = &body;
	return client_submit(c, &req, cb, arg, w, err);
}

/* Queue a StatsRequest. */
uint64_t
swerex_submit_stats(struct swerex_client *c, bool prometheus,
    swerex_reply_cb cb, void *arg, struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return stats_submit(c, prometheus, cb, arg, NULL, err);
}

/* Queue a HistoryRequest. */
uint64_t
swerex_submit_history(struct swerex_client *c, const char *session,
    int64_t limit, swerex_reply_cb cb, void *arg, struct swerex_error **err)
{
	if (client_check(c, err) != 0)
		return 0;
	return stats_submit_history(c, session, limit, cb, arg, NULL, err);
}

/* Ask for the daemon's statistics, blocking. */
int
swerex_stats(struct swerex_client *c, bool prometheus,
    struct swerex_stats **stats, struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (stats != NULL)
		*stats = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = stats_submit(c, prometheus, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_STATS, err) != 0)
		return -1;
	if (stats != NULL)
		*stats = w.stats;
	else
		swerex_stats_free(w.stats);
	return 0;
}

/* Ask for a session's last commands, blocking. */
int
swerex_history(struct swerex_client *c, const char *session, int64_t limit,
    struct swerex_history **history, struct swerex_error **err)
{
	struct client_wait w;
	uint64_t id;

	if (err != NULL)
		*err = NULL;
	if (history != NULL)
		*history = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	memset(&w, 0, sizeof w);
	id = stats_submit_history(c, session, limit, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		return -1;
	if (wait_result(&w, SWEREX_REPLY_HISTORY, err) != 0)
		return -1;
	if (history != NULL)
		*history = w.history;
	else
		swerex_history_free(w.history);
	return 0;
}
