/*
 * Statistics and history: StatsRequest counts exactly what a known sequence
 * of requests does, lists each connection, and renders valid Prometheus
 * text; HistoryRequest returns a session's last commands in order, with
 * exit codes, output sizes and failure reasons, bounded by --history.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "harness.h"

/* Get the daemon's statistics or stop the test. */
static struct swerex_stats *
get_stats(struct swerex_client *c, bool prometheus)
{
	struct swerex_stats *s = NULL;
	struct swerex_error *err = NULL;

	if (swerex_stats(c, prometheus, &s, &err) != 0) {
		harness_show_error("stats", err);
		swerex_error_free(err);
		REQUIRE(!"swerex_stats failed");
	}
	return s;
}

/* Get a session's history (limit < 0: all) or stop the test. */
static struct swerex_history *
get_history(struct swerex_client *c, const char *session, int64_t limit)
{
	struct swerex_history *hi = NULL;
	struct swerex_error *err = NULL;

	if (swerex_history(c, session, limit, &hi, &err) != 0) {
		harness_show_error("history", err);
		swerex_error_free(err);
		REQUIRE(!"swerex_history failed");
	}
	return hi;
}

/* Find a connection by client name, or NULL. */
static const struct swerex_conn_stats *
find_conn(const struct swerex_stats *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->n_connections; i++)
		if (strcmp(s->connections[i].client_name, name) == 0)
			return &s->connections[i];
	return NULL;
}

/* Connect a blocking client under a given name. */
static struct swerex_client *
connect_as(struct harness *h, const char *name)
{
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;

	if (swerex_connect(harness_url(h), name, &c, &err) != 0) {
		harness_show_error("connect", err);
		swerex_error_free(err);
		return NULL;
	}
	return c;
}

/* Check a histogram: 20 fixed buckets, cumulative, +Inf last = count. */
static void
check_histogram(const struct swerex_stats *s)
{
	size_t i;

	REQUIRE(s->n_latency == 20);
	CHECK(s->latency[0].le == 0.0005);
	CHECK(s->latency[18].le == 500);
	CHECK(isinf(s->latency[19].le));
	for (i = 1; i < s->n_latency; i++) {
		CHECK(s->latency[i].le > s->latency[i - 1].le);
		CHECK(s->latency[i].count >= s->latency[i - 1].count);
	}
	CHECK_INT(s->latency[19].count, s->latency_count);
	CHECK_INT(s->latency_count, s->commands);
}

HTEST(counts_follow_requests)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_stats *s0, *s1;
	const struct swerex_conn_stats *c0, *c1;
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;
	struct swerex_exec_result *res = NULL;
	struct swerex_exec_opts eo = { 0 };
	const char *argv[] = { "true" };

	s0 = get_stats(c, false);
	CHECK_INT(s0->sessions_created, 0);
	CHECK_INT(s0->commands, 0);
	CHECK_STR(s0->daemon_version, swerex_daemon_version(c));
	REQUIRE(harness_create(c, "st-a") == 0);
	REQUIRE(harness_create(c, "st-b") == 0);
	CHECK_RUN(c, "st-a", "echo one", "one\n", 0);
	CHECK_RUN(c, "st-b", "true", "", 0);
	obs = harness_run(c, "st-a", "false", HARNESS_TIMEOUT, SWEREX_CHECK_RAISE,
	    &err);
	CHECK(obs == NULL && err != NULL &&
	    err->kind == SWEREX_ERR_NON_ZERO_EXIT_CODE);
	swerex_observation_free(obs);
	swerex_error_free(err);
	err = NULL;
	eo.argv = argv;
	eo.argc = 1;
	CHECK(swerex_execute(c, &eo, &res, &err) == 0);
	swerex_exec_result_free(res);
	swerex_error_free(err);
	err = NULL;
	/* The bad request: closing a session that does not exist. */
	CHECK(swerex_close_session(c, "no-such-session", &err) != 0 &&
	    err != NULL && err->kind == SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);
	s1 = get_stats(c, false);

	CHECK_INT(s1->sessions_created - s0->sessions_created, 2);
	CHECK_INT(s1->sessions_idle, 2);
	CHECK_INT(s1->sessions_starting + s1->sessions_running +
	    s1->sessions_dead, 0);
	CHECK_INT(s1->commands - s0->commands, 3);
	CHECK_INT(s1->executes - s0->executes, 1);
	CHECK_INT(s1->errors - s0->errors, 2);
	/* 2 creates, 3 runs, 1 execute, 1 close, and this stats request. */
	CHECK_INT(s1->requests - s0->requests, 8);
	CHECK(s1->bytes_in > s0->bytes_in);
	CHECK(s1->bytes_out > s0->bytes_out);
	CHECK(s1->uptime >= s0->uptime && s1->uptime > 0);
	check_histogram(s1);
	CHECK(s1->latency_sum > 0);
	CHECK_STR(s1->prometheus, "");

	c0 = find_conn(s0, "swerex-tests");
	c1 = find_conn(s1, "swerex-tests");
	REQUIRE(c0 != NULL && c1 != NULL);
	CHECK_INT(c1->id, c0->id);
	CHECK_INT(c1->requests - c0->requests, 8);
	CHECK(c1->bytes_in > c0->bytes_in && c1->bytes_out > c0->bytes_out);
	/* One client: its bytes are all the daemon's bytes. */
	CHECK_INT(c1->bytes_in, s1->bytes_in);
	swerex_stats_free(s0);
	swerex_stats_free(s1);
}

HTEST(connections_listed_separately)
{
	struct swerex_client *c = harness_client(h), *c2;
	struct swerex_stats *s;
	const struct swerex_conn_stats *a, *b;
	char want[64];
	double now = (double)time(NULL);

	REQUIRE((c2 = connect_as(h, "second-client")) != NULL);
	s = get_stats(c2, false);
	CHECK_INT(s->n_connections, 2);
	a = find_conn(s, "swerex-tests");
	b = find_conn(s, "second-client");
	CHECK(a != NULL && b != NULL);
	if (a != NULL && b != NULL) {
		CHECK(a->id != b->id);
		snprintf(want, sizeof want, "unix:pid=%ld,", (long)getpid());
		CHECK(strncmp(a->peer, want, strlen(want)) == 0);
		CHECK(strncmp(b->peer, want, strlen(want)) == 0);
		/* The second client sent its Hello and this request. */
		CHECK_INT(b->requests, 2);
		CHECK(b->bytes_in > 0 && b->bytes_out > 0);
		CHECK(fabs(b->connected - now) < 60);
		CHECK(a->connected <= b->connected);
	}
	swerex_stats_free(s);
	swerex_client_free(c2);
	/* Gone from the list once closed (the close is seen by the next pass). */
	s = get_stats(c, false);
	while (s->n_connections > 1) {
		swerex_stats_free(s);
		s = get_stats(c, false);
	}
	CHECK(find_conn(s, "second-client") == NULL);
	swerex_stats_free(s);
}

static char certs_dir[64];
static char p_cert[128], p_key[128], p_ca[128], p_token[128], tls_token[256];
static const char *tls_args[9];

/* Remove the certificates at exit. */
static void
certs_cleanup(void)
{
	char cmd[128];

	if (certs_dir[0] != '\0') {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs_dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", certs_dir);
	}
}

/* Make certificates and a token once (swerex-certs.sh); give the args. */
static const char *const *
tls_setup(void)
{
	const char *script = getenv("SWEREX_CERTS");
	char cmd[512], tmpl[] = "/tmp/swerex-stats-XXXXXX", *d;
	FILE *f;

	if (certs_dir[0] != '\0')
		return tls_args;
	REQUIRE(script != NULL);
	REQUIRE((d = mkdtemp(tmpl)) != NULL);
	snprintf(certs_dir, sizeof certs_dir, "%s", d);
	atexit(certs_cleanup);
	snprintf(cmd, sizeof cmd, "%s %s/c >/dev/null 2>&1", script, d);
	REQUIRE(system(cmd) == 0);
	snprintf(p_cert, sizeof p_cert, "%s/c/server.pem", d);
	snprintf(p_key, sizeof p_key, "%s/c/server.key", d);
	snprintf(p_ca, sizeof p_ca, "%s/c/ca.pem", d);
	snprintf(p_token, sizeof p_token, "%s/c/token", d);
	REQUIRE((f = fopen(p_token, "r")) != NULL);
	REQUIRE(fgets(tls_token, sizeof tls_token, f) != NULL);
	fclose(f);
	tls_token[strcspn(tls_token, "\n")] = '\0';
	tls_args[0] = "--listen";
	tls_args[1] = "tls://127.0.0.1:0";
	tls_args[2] = "--tls-cert";
	tls_args[3] = p_cert;
	tls_args[4] = "--tls-key";
	tls_args[5] = p_key;
	tls_args[6] = "--token-file";
	tls_args[7] = p_token;
	tls_args[8] = NULL;
	return tls_args;
}

HTEST_ARGS(tls_connection_counted, tls_setup())
{
	struct swerex_client *c = harness_client(h), *tc = NULL;
	struct swerex_connect_opts o;
	struct swerex_error *err = NULL;
	struct swerex_stats *s;
	const struct swerex_conn_stats *t;
	uint64_t in = 0, out = 0;
	char url[128];
	size_t i;

	swerex_connect_opts_init(&o);
	REQUIRE(harness_listen(h, "tls://") != NULL);
	snprintf(url, sizeof url, "%s", harness_listen(h, "tls://"));
	o.url = url;
	o.client_name = "tls-client";
	o.ca_file = p_ca;
	o.token = tls_token;
	if (swerex_connect_with(&o, &tc, &err) != 0) {
		harness_show_error("connect", err);
		swerex_error_free(err);
		REQUIRE(!"TLS connect failed");
	}
	s = get_stats(tc, false);
	t = find_conn(s, "tls-client");
	REQUIRE(t != NULL);
	CHECK(strncmp(t->peer, "127.0.0.1:", 10) == 0);
	CHECK_INT(t->requests, 2);
	CHECK(t->bytes_in > 0 && t->bytes_out > 0);
	swerex_stats_free(s);
	/* Two open connections, none closed: the totals are their sums. */
	s = get_stats(c, false);
	CHECK_INT(s->n_connections, 2);
	for (i = 0; i < s->n_connections; i++) {
		in += s->connections[i].bytes_in;
		out += s->connections[i].bytes_out;
	}
	CHECK_INT(s->bytes_in, in);
	CHECK_INT(s->bytes_out, out);
	t = find_conn(s, "tls-client");
	/* The TLS client read its stats answer: written in full by now. */
	CHECK(t != NULL && t->bytes_out > 100);
	swerex_stats_free(s);
	swerex_client_free(tc);
}

/* A metric family seen in HELP and TYPE lines. */
struct family {
	char name[128];
	char type[16];
	bool help;
};

/* Whether s starts a valid metric or label name; return its length. */
static size_t
name_len(const char *s, bool colon)
{
	size_t n = 0;

	if (!(isalpha((unsigned char)s[0]) || s[0] == '_' ||
	    (colon && s[0] == ':')))
		return 0;
	while (isalnum((unsigned char)s[n]) || s[n] == '_' ||
	    (colon && s[n] == ':'))
		n++;
	return n;
}

/* Parse a sample value as Prometheus does (Go float, or +Inf/-Inf/NaN). */
static bool
parse_value(const char *s, double *v)
{
	char *end;

	if (strcmp(s, "+Inf") == 0) {
		*v = INFINITY;
		return true;
	}
	if (strcmp(s, "-Inf") == 0 || strcmp(s, "NaN") == 0) {
		*v = strcmp(s, "NaN") == 0 ? NAN : -INFINITY;
		return true;
	}
	*v = strtod(s, &end);
	return end != s && *end == '\0';
}

/*
 * Parse labels {a="x",b="y"} at *p (escapes \\ \" \n only); copy le's
 * value to le when present. Return false when malformed.
 */
static bool
parse_labels(const char **p, char *le, size_t le_size)
{
	const char *s = *p;
	char val[512];
	size_t n, v;
	bool is_le;

	*le = '\0';
	if (*s != '{')
		return true;
	s++;
	while (*s != '}') {
		if ((n = name_len(s, false)) == 0)
			return false;
		is_le = n == 2 && strncmp(s, "le", 2) == 0;
		s += n;
		if (*s++ != '=' || *s++ != '"')
			return false;
		for (v = 0; *s != '"'; s++) {
			if (*s == '\0' || *s == '\n' || v + 1 >= sizeof val)
				return false;
			if (*s == '\\') {
				s++;
				if (*s != '\\' && *s != '"' && *s != 'n')
					return false;
			}
			val[v++] = *s;
		}
		val[v] = '\0';
		s++;
		if (is_le && v < le_size)
			memcpy(le, val, v + 1);
		if (*s == ',')
			s++;
		else if (*s != '}')
			return false;
	}
	*p = s + 1;
	return true;
}

/* Find a family by name. */
static struct family *
family_find(struct family *f, size_t n, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(f[i].name) == len && strncmp(f[i].name, name, len) == 0)
			return &f[i];
	return NULL;
}

/*
 * Check Prometheus text exposition: every line a HELP, a TYPE or a sample
 * "name{labels} value"; each sample's family declared by HELP and TYPE
 * before it; the histogram's buckets cumulative, ending with le="+Inf"
 * equal to _count. Return the value of sample want (exact line name and
 * labels) in *got.
 */
static bool
check_exposition(const char *text, const char *want, double *got)
{
	struct family fam[64];
	size_t nfam = 0, n, base;
	char line[2048], le[64], last_le[64] = "";
	const char *p = text, *nl, *s;
	struct family *f;
	double v, last_bucket = -1, count = -1;
	bool ok = true;

	*got = NAN;
	while (*p != '\0') {
		nl = strchr(p, '\n');
		if (nl == NULL) {
			printf("# text does not end in a newline\n");
			return false;
		}
		n = (size_t)(nl - p);
		if (n >= sizeof line) {
			printf("# line too long\n");
			return false;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (strncmp(line, "# HELP ", 7) == 0 ||
		    strncmp(line, "# TYPE ", 7) == 0) {
			s = line + 7;
			if ((n = name_len(s, true)) == 0 || s[n] != ' ') {
				printf("# bad comment line: %s\n", line);
				return false;
			}
			f = family_find(fam, nfam, s, n);
			if (f == NULL) {
				if (nfam == 64)
					return false;
				f = &fam[nfam++];
				memset(f, 0, sizeof *f);
				snprintf(f->name, sizeof f->name, "%.*s", (int)n, s);
			}
			if (line[2] == 'H')
				f->help = true;
			else {
				snprintf(f->type, sizeof f->type, "%s", s + n + 1);
				if (strcmp(f->type, "counter") != 0 &&
				    strcmp(f->type, "gauge") != 0 &&
				    strcmp(f->type, "histogram") != 0) {
					printf("# bad type: %s\n", line);
					return false;
				}
			}
			continue;
		}
		if (line[0] == '#' || line[0] == '\0') {
			printf("# unexpected line: '%s'\n", line);
			return false;
		}
		s = line;
		if ((n = name_len(s, true)) == 0) {
			printf("# bad metric name: %s\n", line);
			return false;
		}
		/* A histogram's samples belong to the family without suffix. */
		f = family_find(fam, nfam, s, n);
		base = n;
		if (f == NULL) {
			static const char *const sfx[] = { "_bucket", "_sum",
			    "_count" };
			size_t k;

			for (k = 0; k < 3 && f == NULL; k++)
				if (n > strlen(sfx[k]) && strncmp(s + n -
				    strlen(sfx[k]), sfx[k], strlen(sfx[k])) == 0) {
					base = n - strlen(sfx[k]);
					f = family_find(fam, nfam, s, base);
					if (f != NULL &&
					    strcmp(f->type, "histogram") != 0)
						f = NULL;
				}
		}
		if (f == NULL || !f->help || f->type[0] == '\0') {
			printf("# sample without HELP and TYPE: %s\n", line);
			return false;
		}
		s += n;
		if (!parse_labels(&s, le, sizeof le) || *s++ != ' ' ||
		    !parse_value(s, &v)) {
			printf("# bad sample: %s\n", line);
			return false;
		}
		if (strncmp(line, want, strlen(want)) == 0 &&
		    line[strlen(want)] == ' ')
			*got = v;
		if (strcmp(f->type, "histogram") == 0 && base != n) {
			if (strcmp(line + base, "_count") == 0 ||
			    strncmp(line + base, "_count ", 7) == 0)
				count = v;
			else if (strncmp(line + base, "_bucket", 7) == 0) {
				if (*le == '\0' || v < last_bucket) {
					printf("# bucket not cumulative: %s\n",
					    line);
					ok = false;
				}
				last_bucket = v;
				snprintf(last_le, sizeof last_le, "%s", le);
			}
		}
	}
	if (strcmp(last_le, "+Inf") != 0 || last_bucket != count) {
		printf("# histogram: last le=\"%s\" %g, _count %g\n", last_le,
		    last_bucket, count);
		ok = false;
	}
	return ok;
}

HTEST(prometheus_text_is_valid)
{
	struct swerex_client *c = harness_client(h), *odd;
	struct swerex_stats *s;
	double v;
	FILE *fp;
	char path[512], cmd[1024];

	REQUIRE(harness_create(c, "prom") == 0);
	CHECK_RUN(c, "prom", "echo x", "x\n", 0);
	CHECK_RUN(c, "prom", "sleep 0.01", "", 0);
	/* Label values must be escaped. */
	REQUIRE((odd = connect_as(h, "we\"ird\\name\nline2")) != NULL);
	s = get_stats(c, true);
	REQUIRE(s->prometheus != NULL && *s->prometheus != '\0');
	CHECK(check_exposition(s->prometheus, "swerexd_commands_total", &v));
	CHECK(v == (double)s->commands && v == 2);
	CHECK(check_exposition(s->prometheus,
	    "swerexd_command_duration_seconds_count", &v));
	CHECK(v == 2);
	CHECK(check_exposition(s->prometheus,
	    "swerexd_sessions{state=\"idle\"}", &v));
	CHECK(v == 1);
	CHECK(check_exposition(s->prometheus, "swerexd_connections", &v));
	CHECK(v == 2);
	CHECK(strstr(s->prometheus, "client=\"we\\\"ird\\\\name\\nline2\"") !=
	    NULL);
	if (tap_failed_now)
		tap_show("text", s->prometheus, strlen(s->prometheus));
	/* promtool, where Debian's prometheus package is installed. */
	if (access("/usr/bin/promtool", X_OK) == 0) {
		snprintf(path, sizeof path, "%s/metrics.prom", harness_dir(h));
		REQUIRE((fp = fopen(path, "w")) != NULL);
		fputs(s->prometheus, fp);
		fclose(fp);
		snprintf(cmd, sizeof cmd, "/usr/bin/promtool check metrics "
		    "< '%s' >/dev/null 2>&1", path);
		/* Exit 3 is lint advice only (e.g. per-connection labels). */
		v = system(cmd);
		CHECK(WIFEXITED((int)v) && (WEXITSTATUS((int)v) == 0 ||
		    WEXITSTATUS((int)v) == 3));
	} else
		printf("# promtool not installed: only the built-in parser ran\n");
	swerex_stats_free(s);
	swerex_client_free(odd);
}

/* Check one history entry. */
static void
check_entry_at(int line, const struct swerex_history_entry *e, uint64_t seq,
	       const char *command, int exit_code, uint64_t output_bytes,
	       const char *reason)
{
	if (e->seq != seq || strcmp(e->command, command) != 0 ||
	    (exit_code >= 0) != e->has_exit_code ||
	    (exit_code >= 0 && e->exit_code != exit_code) ||
	    e->output_bytes != output_bytes ||
	    strcmp(e->failure_reason, reason) != 0 || e->duration < 0 ||
	    e->started <= 0)
		tap_diag(__FILE__, line, "entry %llu '%s' exit %s%d output %llu "
		    "reason '%s' duration %g; expected %llu '%s' exit %d output "
		    "%llu reason '%s'", (unsigned long long)e->seq, e->command,
		    e->has_exit_code ? "" : "none ", e->exit_code,
		    (unsigned long long)e->output_bytes, e->failure_reason,
		    e->duration, (unsigned long long)seq, command, exit_code,
		    (unsigned long long)output_bytes, reason);
}
#define CHECK_ENTRY(e, seq, cmd, code, bytes, reason) \
	check_entry_at(__LINE__, (e), (seq), (cmd), (code), (bytes), (reason))

HTEST(history_records_commands)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;
	struct swerex_interrupt_opts io = { 0 };
	struct swerex_run_opts ro = { 0 };
	struct swerex_history *hi;
	double t;

	REQUIRE(harness_create(c, "hist") == 0);
	hi = get_history(c, "hist", -1);
	CHECK_INT(hi->n_entries, 0);
	CHECK_INT(hi->total, 0);
	swerex_history_free(hi);

	CHECK_RUN(c, "hist", "echo one", "one\n", 0);
	CHECK_RUN(c, "hist", "printf abc; (exit 3)", "abc", 3);
	/* Timed out, then interrupted: both are told. */
	t = harness_now();
	obs = harness_run(c, "hist", "sleep 30", 0.3, SWEREX_CHECK_SILENT, &err);
	CHECK(obs == NULL && err != NULL &&
	    err->kind == SWEREX_ERR_COMMAND_TIMEOUT);
	swerex_error_free(err);
	err = NULL;
	io.session = "hist";
	CHECK(swerex_interrupt(c, &io, &obs, &err) == 0);
	swerex_observation_free(obs);
	swerex_error_free(err);
	err = NULL;
	t = harness_now() - t;
	/* Input to a running command is no entry: it feeds that command. */
	obs = harness_run(c, "hist", "read -r x; echo \"got $x\"", 0.3,
	    SWEREX_CHECK_SILENT, &err);
	CHECK(obs == NULL && err != NULL &&
	    err->kind == SWEREX_ERR_COMMAND_TIMEOUT);
	swerex_error_free(err);
	err = NULL;
	ro.session = "hist";
	ro.command = "hello";
	ro.is_interactive_command = true;
	ro.check = SWEREX_CHECK_SILENT;
	ro.has_timeout = true;
	ro.timeout = HARNESS_TIMEOUT;
	CHECK(swerex_run(c, &ro, &obs, &err) == 0);
	CHECK(obs != NULL && strcmp(obs->output, "got hello\n") == 0);
	swerex_observation_free(obs);
	swerex_error_free(err);
	err = NULL;
	/* A syntax error runs nothing but is a command all the same. */
	obs = harness_run(c, "hist", "if then fi", HARNESS_TIMEOUT,
	    SWEREX_CHECK_SILENT, &err);
	CHECK(err != NULL && err->kind == SWEREX_ERR_BASH_INCORRECT_SYNTAX);
	swerex_observation_free(obs);
	swerex_error_free(err);
	err = NULL;
	/* Input typed at bash's own prompt runs as a command: an entry. */
	ro.command = "echo typed";
	CHECK(swerex_run(c, &ro, &obs, &err) == 0);
	swerex_observation_free(obs);
	swerex_error_free(err);

	hi = get_history(c, "hist", -1);
	CHECK_INT(hi->total, 6);
	REQUIRE(hi->n_entries == 6);
	CHECK_ENTRY(&hi->entries[0], 1, "echo one", 0, 4, "");
	CHECK_ENTRY(&hi->entries[1], 2, "printf abc; (exit 3)", 3, 3, "");
	CHECK_ENTRY(&hi->entries[2], 3, "sleep 30", 130, hi->entries[2].output_bytes,
	    "timeout");
	CHECK(hi->entries[2].duration >= 0.3 && hi->entries[2].duration <= t + 1);
	CHECK_ENTRY(&hi->entries[3], 4, "read -r x; echo \"got $x\"", 0, 10,
	    "timeout");
	CHECK(hi->entries[4].seq == 5 && hi->entries[4].has_exit_code &&
	    strcmp(hi->entries[4].failure_reason, "syntax error") == 0);
	CHECK_ENTRY(&hi->entries[5], 6, "echo typed", 0, 6, "");
	CHECK(hi->entries[0].started <= hi->entries[1].started &&
	    hi->entries[1].started <= hi->entries[2].started);
	swerex_history_free(hi);

	/* A limit gives the newest, still oldest first. */
	hi = get_history(c, "hist", 2);
	CHECK_INT(hi->total, 6);
	REQUIRE(hi->n_entries == 2);
	CHECK_INT(hi->entries[0].seq, 5);
	CHECK_INT(hi->entries[1].seq, 6);
	swerex_history_free(hi);
	hi = get_history(c, "hist", 0);
	CHECK_INT(hi->n_entries, 0);
	CHECK_INT(hi->total, 6);
	swerex_history_free(hi);
}

/* Run n numbered commands in a session. */
static void
run_numbered(struct swerex_client *c, const char *session, int n)
{
	char cmd[64], out[64];
	int i;

	for (i = 1; i <= n; i++) {
		snprintf(cmd, sizeof cmd, "echo cmd%d", i);
		snprintf(out, sizeof out, "cmd%d\n", i);
		CHECK_RUN(c, session, cmd, out, 0);
	}
}

static const char *const history3[] = { "--history", "3", NULL };

HTEST_ARGS(history_ring_wraps, history3)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_history *hi;

	REQUIRE(harness_create(c, "ring") == 0);
	run_numbered(c, "ring", 5);
	hi = get_history(c, "ring", -1);
	CHECK_INT(hi->total, 5);
	REQUIRE(hi->n_entries == 3);
	CHECK_ENTRY(&hi->entries[0], 3, "echo cmd3", 0, 5, "");
	CHECK_ENTRY(&hi->entries[1], 4, "echo cmd4", 0, 5, "");
	CHECK_ENTRY(&hi->entries[2], 5, "echo cmd5", 0, 5, "");
	swerex_history_free(hi);
	hi = get_history(c, "ring", 10);
	CHECK_INT(hi->n_entries, 3);
	swerex_history_free(hi);
}

static const char *const history0[] = { "--history", "0", NULL };

HTEST_ARGS(history_disabled, history0)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_history *hi;

	REQUIRE(harness_create(c, "none") == 0);
	run_numbered(c, "none", 2);
	hi = get_history(c, "none", -1);
	CHECK_INT(hi->n_entries, 0);
	CHECK_INT(hi->total, 2);
	swerex_history_free(hi);
}

HTEST(history_errors_and_death)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_history *hi = NULL;
	struct swerex_observation *obs;
	struct swerex_error *err = NULL;

	CHECK(swerex_history(c, "nope", -1, &hi, &err) != 0 && hi == NULL &&
	    err != NULL && err->kind == SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);
	err = NULL;
	/* A command that ends its shell: the entry says so. */
	REQUIRE(harness_create(c, "dies") == 0);
	obs = harness_run(c, "dies", "exit 7", HARNESS_TIMEOUT,
	    SWEREX_CHECK_SILENT, &err);
	CHECK(err != NULL && err->kind == SWEREX_ERR_SESSION_DIED);
	swerex_observation_free(obs);
	swerex_error_free(err);
	err = NULL;
	hi = get_history(c, "dies", -1);
	REQUIRE(hi->n_entries == 1);
	/* bash says "exit" as it leaves. */
	CHECK_ENTRY(&hi->entries[0], 1, "exit 7", -1, 5, "session died");
	swerex_history_free(hi);
	hi = NULL;
	/* Closed: its history goes with it. */
	REQUIRE(harness_close(c, "dies") == 0);
	CHECK(swerex_history(c, "dies", -1, &hi, &err) != 0 &&
	    err != NULL && err->kind == SWEREX_ERR_SESSION_DOES_NOT_EXIST);
	swerex_error_free(err);
}

/* Replies of the event-driven test. */
struct ev_replies {
	int done;
	uint64_t commands;
	size_t entries;
	bool stats_ok;
	bool history_ok;
};

/* Record a stats or history reply. */
static void
ev_reply_cb(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct ev_replies *e = arg;

	if (r->type == SWEREX_REPLY_STATS && r->stats != NULL) {
		e->stats_ok = true;
		e->commands = r->stats->commands;
	} else if (r->type == SWEREX_REPLY_HISTORY && r->history != NULL) {
		e->history_ok = true;
		e->entries = r->history->n_entries;
	} else if (r->type == SWEREX_REPLY_ERROR)
		harness_show_error("reply", r->error);
	e->done++;
}

/* Whether both replies came. */
static bool
ev_done(void *arg)
{
	return ((struct ev_replies *)arg)->done == 2;
}

HTEST(submit_forms)
{
	struct swerex_client *c = harness_client(h), *ec;
	struct event_base *base;
	struct swerex_error *err = NULL;
	struct ev_replies e = { 0 };

	REQUIRE(harness_create(c, "ev") == 0);
	run_numbered(c, "ev", 2);
	REQUIRE((base = event_base_new()) != NULL);
	ec = harness_connect_base(h, base);
	REQUIRE(ec != NULL);
	CHECK(swerex_submit_stats(ec, false, ev_reply_cb, &e, &err) > 0);
	CHECK(swerex_submit_history(ec, "ev", 1, ev_reply_cb, &e, &err) > 0);
	CHECK(harness_drive_until(base, ev_done, &e, HARNESS_TIMEOUT));
	CHECK(e.stats_ok && e.commands == 2);
	CHECK(e.history_ok && e.entries == 1);
	swerex_error_free(err);
	swerex_client_free(ec);
	event_base_free(base);
}

TAP_MAIN(TAP_T(counts_follow_requests), TAP_T(connections_listed_separately),
	 TAP_T(prometheus_text_is_valid), TAP_T(history_records_commands),
	 TAP_T(history_ring_wraps), TAP_T(history_disabled),
	 TAP_T(history_errors_and_death), TAP_T(submit_forms),
	 TAP_T(tls_connection_counted))
