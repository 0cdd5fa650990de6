/*
 * Hostile and faulty peers against a real daemon: clients that vanish in the
 * middle of a command, a stream or an upload, a client that never reads, bytes
 * that are not the protocol, absurd field values, thousands of connections
 * dropped in every state, a connection limit, and a full disk. Each test also
 * keeps a well-behaved client (the harness's) echoing in its own session, and
 * checks the daemon's descriptors and memory through /proc.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "fds.h"
#include "harness.h"
#include "raw.h"
#include "tls.h"
#include "wire.h"

typedef Swerex__V1__Request Request;
typedef Swerex__V1__Response Response;

/* The bound on daemon RSS growth while a client ignores a flood (README). */
#if defined(__SANITIZE_ADDRESS__)
/* The daemon of this build has ASan's redzones and its quarantine of freed
 * memory (up to 256 MiB): only a gross excess is caught here. */
#define FAULT_RSS_GROWTH_KB (256 * 1024)
#else
#define FAULT_RSS_GROWTH_KB (48 * 1024)
#endif
/* Largest echo round trip of the well-behaved client meanwhile (seconds). */
#define FAULT_ECHO_MAX 3.0
/* Connections opened and dropped by churn_10000. */
#define FAULT_CHURN 10000


/* Read one "Key: value" number from /proc/PID/<file>; -1 if absent. */
static long long
fault_proc_num(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* The daemon's resident memory in KiB. */
static long long
fault_rss_kb(pid_t pid)
{
	return fault_proc_num(pid, "status", "VmRSS");
}

/*
 * Wait (bounded) until the daemon holds want descriptors: it frees a lost
 * connection when its loop sees the EOF. Return the last count seen.
 */
static int
fault_wait_fds(pid_t pid, int want, double timeout)
{
	double deadline = harness_now() + timeout;
	int n;

	while ((n = fds_count(pid)) != want && harness_now() < deadline)
		poll(NULL, 0, 20);
	return n;
}

/* Create the well-behaved client's own session. */
static void
fault_other(struct harness *h)
{
	REQUIRE(harness_create(harness_client(h), "other") == 0);
}

/* Check the well-behaved client still gets an echo back; return its time. */
static double
fault_served_at(const char *file, int line, struct harness *h)
{
	double t0 = harness_now();

	harness_check_run_at(file, line, harness_client(h), "other",
	    "echo served", "served\n", 0);
	return harness_now() - t0;
}
#define fault_served(h) fault_served_at(__FILE__, __LINE__, (h))

/* Check the daemon holds base descriptors again after a peer went away. */
static void
fault_fds_back_at(const char *file, int line, struct harness *h, int base)
{
	int n = fault_wait_fds(harness_pid(h), base, 20);

	if (n != base)
		tap_diag(file, line, "daemon holds %d descriptors, %d before", n, base);
}
#define fault_fds_back(h, base) fault_fds_back_at(__FILE__, __LINE__, (h), (base))

/* Send a run (stream or not) under id. */
static bool
fault_send_run(struct raw *r, uint64_t id, const char *session,
	       const char *command, bool stream)
{
	Swerex__V1__BashAction run = SWEREX__V1__BASH_ACTION__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;

	run.command = (char *)command;
	run.session = (char *)session;
	run.stream = stream;
	run.check = SWEREX__V1__CHECK__CHECK_SILENT;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &run;
	return raw_send(r, &req);
}

/* Interrupt a session through the well-behaved client; false on failure. */
static bool
fault_interrupt(struct harness *h, const char *session)
{
	struct swerex_interrupt_opts o = { 0 };
	struct swerex_observation *obs = NULL;
	struct swerex_error *err = NULL;

	o.session = session;
	if (swerex_interrupt(harness_client(h), &o, &obs, &err) != 0) {
		harness_show_error("interrupt", err);
		swerex_error_free(err);
		return false;
	}
	swerex_observation_free(obs);
	return true;
}

/* Check a run's output ends with the C string tail (earlier output may lead). */
static void
fault_run_ends_at(const char *file, int line, struct harness *h,
		  const char *session, const char *command, const char *tail)
{
	struct swerex_observation *o;
	struct swerex_error *err = NULL;
	size_t n = strlen(tail);

	o = harness_run(harness_client(h), session, command, HARNESS_TIMEOUT,
	    SWEREX_CHECK_SILENT, &err);
	if (o == NULL) {
		tap_diag(file, line, "run '%s' in %s failed", command, session);
		harness_show_error("error", err);
		swerex_error_free(err);
		return;
	}
	if (o->output_len < n || memcmp(o->output + o->output_len - n, tail, n) != 0) {
		tap_diag(file, line, "output of '%s' does not end with '%s'", command, tail);
		harness_show_observation("got", o);
	}
	swerex_observation_free(o);
}
#define fault_run_ends(h, s, cmd, tail) \
	fault_run_ends_at(__FILE__, __LINE__, (h), (s), (cmd), (tail))

/* Whether a path exists (a dangling link counts). */
static bool
fault_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Count directory entries whose name contains part (NULL: all). */
static int
fault_entries(const char *dir, const char *part)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    (part == NULL || strstr(de->d_name, part) != NULL))
			n++;
	closedir(d);
	return n;
}

/* Write a whole file; false on failure. */
static bool
fault_put(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, p, n) == (ssize_t)n;
	return close(fd) == 0 && ok;
}

/* Check a file holds exactly the C string want. */
static void
fault_file_is_at(const char *file, int line, const char *path, const char *want)
{
	char buf[256];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		tap_diag(file, line, "%s: %s", path, strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0 || (size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
		tap_diag(file, line, "%s changed", path);
		tap_show("got     ", buf, n < 0 ? 0 : (size_t)n);
		tap_show("expected", want, strlen(want));
	}
}
#define fault_file_is(path, want) fault_file_is_at(__FILE__, __LINE__, (path), (want))

/* A deterministic pseudo-random generator (xorshift64). */
static uint64_t
fault_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Fill a buffer with pseudo-random bytes. */
static void
fault_fill(unsigned char *p, size_t n, uint64_t *x)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(fault_rand(x) >> 32);
}

/*
 * Read what the daemon says after a bad request: an Error (its kind and
 * message returned through *kind; the message must say something) or the
 * connection closed. Return 1 error, 0 closed, -1 neither within 20 s.
 */
static int
fault_refusal_at(const char *file, int line, struct raw *r, int *kind)
{
	Response *resp = NULL;
	int got = raw_recv(r, &resp, 20);

	*kind = -1;
	if (got == 0)
		return 0;
	if (got != 1) {
		tap_diag(file, line, "no error and no close: %s", got == -1 ?
		    "nothing for 20 s" : "an undecodable frame");
		return -1;
	}
	if (resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR) {
		tap_diag(file, line, "expected an error or a close");
		raw_resp_show("got", resp);
		raw_resp_free(resp);
		return -1;
	}
	*kind = (int)resp->error->kind;
	if (resp->error->message == NULL || strlen(resp->error->message) < 8)
		tap_diag(file, line, "the error says nothing useful");
	if (resp->error->message != NULL && strlen(resp->error->message) > 65536)
		tap_diag(file, line, "the error message is %zu bytes long",
		    strlen(resp->error->message));
	raw_resp_free(resp);
	return 1;
}
#define fault_refusal(r, kind) fault_refusal_at(__FILE__, __LINE__, (r), (kind))

/* Append a protobuf varint. */
static void
pb_varint(struct evbuffer *b, uint64_t v)
{
	unsigned char c;

	do {
		c = v & 0x7f;
		v >>= 7;
		evbuffer_add(b, &c, 1);
		if (v != 0)
			evbuffer_pullup(b, -1)[evbuffer_get_length(b) - 1] |= 0x80;
	} while (v != 0);
}

/* Append a length-delimited field. */
static void
pb_bytes(struct evbuffer *b, unsigned field, const void *p, size_t n)
{
	pb_varint(b, (uint64_t)field << 3 | 2);
	pb_varint(b, n);
	evbuffer_add(b, p, n);
}

/* Send a payload built by hand as one frame (flag 0, big-endian length). */
static bool
fault_send_payload(struct raw *r, struct evbuffer *payload)
{
	size_t n = evbuffer_get_length(payload);
	unsigned char hdr[5] = { 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
	    (unsigned char)(n >> 8), (unsigned char)n };

	return raw_write(r, hdr, sizeof hdr) && raw_flush(r, payload);
}

/* ---- Clients that vanish ---- */

/* A client gone mid-command: its resources go, the command and session stay. */
HTEST(disconnect_mid_command)
{
	struct swerex_client *c = harness_client(h);
	struct raw a;
	int base, pid;

	fault_other(h);
	REQUIRE(harness_create(c, "work") == 0);
	pid = harness_session_pid(c, "work");
	base = fds_count(harness_pid(h));
	a = raw_connect_hello(h);
	REQUIRE(a.fd >= 0);
	REQUIRE(fault_send_run(&a, 2, "work", "read -r v; echo \"v=$v\"", false));
	/* Requests are taken in order: the run started before this answer. */
	REQUIRE(raw_round_trip(&a, 3, NULL));
	CHECK(fds_count(harness_pid(h)) == base + 1);
	fault_served(h);
	raw_close(&a);
	fault_fds_back(h, base);
	fault_served(h);
	/* The command still waits for its input: give it some. */
	{
		struct swerex_run_opts o = { 0 };
		struct swerex_observation *obs = NULL;
		struct swerex_error *err = NULL;

		o.session = "work";
		o.command = "42";
		o.is_interactive_command = true;
		o.has_timeout = true;
		o.timeout = HARNESS_TIMEOUT;
		o.check = SWEREX_CHECK_SILENT;
		if (swerex_run(c, &o, &obs, &err) != 0) {
			tap_diag(__FILE__, __LINE__, "input to the orphaned command failed");
			harness_show_error("error", err);
			swerex_error_free(err);
		} else {
			CHECK(harness_contains(obs->output, obs->output_len, "v=42"));
			swerex_observation_free(obs);
		}
	}
	CHECK_RUN(c, "work", "echo $v", "42\n", 0);
	CHECK_INT(harness_session_pid(c, "work"), pid);
}

/* A client gone mid-stream: the stream's command runs on, the session is usable. */
HTEST(disconnect_mid_stream)
{
	struct swerex_client *c = harness_client(h);
	Response *resp = NULL;
	struct raw a;
	int base, pid, chunks = 0;

	fault_other(h);
	REQUIRE(harness_create(c, "work") == 0);
	pid = harness_session_pid(c, "work");
	base = fds_count(harness_pid(h));
	a = raw_connect_hello(h);
	REQUIRE(a.fd >= 0);
	REQUIRE(fault_send_run(&a, 2, "work",
	    "i=0; while :; do echo \"line $i\"; i=$((i+1)); done", true));
	while (chunks < 5 && raw_recv(&a, &resp, 20) == 1) {
		chunks += resp->body_case == SWEREX__V1__RESPONSE__BODY_CHUNK;
		raw_resp_free(resp);
		resp = NULL;
	}
	REQUIRE(chunks == 5);
	raw_close(&a);
	fault_fds_back(h, base);
	fault_served(h);
	/* Still printing, so still busy. */
	{
		struct swerex_error *err = NULL;
		struct swerex_observation *o;

		o = harness_run(c, "work", "echo hi", HARNESS_TIMEOUT,
		    SWEREX_CHECK_SILENT, &err);
		CHECK(o == NULL && err != NULL && err->kind == SWEREX_ERR_SESSION_BUSY);
		swerex_observation_free(o);
		swerex_error_free(err);
	}
	CHECK(fault_interrupt(h, "work"));
	fault_run_ends(h, "work", "echo after", "after\n");
	CHECK_INT(harness_session_pid(c, "work"), pid);
	fault_served(h);
}

/* Send UploadBegin. */
static bool
fault_upload_begin(struct raw *r, uint64_t id, const char *target)
{
	Swerex__V1__UploadBegin ub = SWEREX__V1__UPLOAD_BEGIN__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;

	ub.target_path = (char *)target;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN;
	req.upload_begin = &ub;
	return raw_send(r, &req);
}

/* Send UploadData with one piece of the single file (last: it is complete). */
static bool
fault_upload_piece(struct raw *r, uint64_t id, uint64_t upload_id,
		   const void *p, size_t n, bool last)
{
	Swerex__V1__UploadData ud = SWEREX__V1__UPLOAD_DATA__INIT;
	Swerex__V1__TransferEntry e = SWEREX__V1__TRANSFER_ENTRY__INIT, *ep = &e;
	Request req = SWEREX__V1__REQUEST__INIT;

	e.path = "";
	e.type = SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE;
	e.mode = 0644;
	e.data.data = (uint8_t *)p;
	e.data.len = n;
	e.last = last;
	ud.upload_id = upload_id;
	ud.n_entries = 1;
	ud.entries = &ep;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_DATA;
	req.upload_data = &ud;
	return raw_send(r, &req);
}

/*
 * A client gone mid-upload: nothing at a new target, an old target intact,
 * no staging file beside either, the descriptors back.
 */
HTEST(disconnect_mid_upload)
{
	static unsigned char buf[256 * 1024];
	char dir[PATH_MAX], fresh[PATH_MAX + 32], old[PATH_MAX + 32];
	uint64_t x = 77;
	struct raw a;
	int base, i, left;
	double deadline;

	fault_other(h);
	snprintf(dir, sizeof dir, "%s/up", harness_dir(h));
	REQUIRE(mkdir(dir, 0755) == 0);
	snprintf(fresh, sizeof fresh, "%s/fresh.bin", dir);
	snprintf(old, sizeof old, "%s/old.txt", dir);
	REQUIRE(fault_put(old, "original\n", 9));
	base = fds_count(harness_pid(h));
	a = raw_connect_hello(h);
	REQUIRE(a.fd >= 0);
	REQUIRE(fault_upload_begin(&a, 2, fresh));
	REQUIRE(fault_upload_begin(&a, 3, old));
	for (i = 0; i < 4; i++) {
		fault_fill(buf, sizeof buf, &x);
		REQUIRE(fault_upload_piece(&a, 10 + (uint64_t)i, 2, buf, sizeof buf, false));
		REQUIRE(fault_upload_piece(&a, 20 + (uint64_t)i, 3, buf, sizeof buf, false));
	}
	REQUIRE(raw_round_trip(&a, 30, NULL));
	/* Both are staged now: the socket and two open staging files. */
	CHECK_INT(fault_entries(dir, ".swx-up-"), 2);
	CHECK_INT(fds_count(harness_pid(h)), base + 3);
	fault_served(h);
	raw_close(&a);
	fault_fds_back(h, base);
	deadline = harness_now() + 20;
	while ((left = fault_entries(dir, NULL)) != 1 && harness_now() < deadline)
		poll(NULL, 0, 20);
	CHECK_INT(left, 1);
	CHECK(!fault_exists(fresh));
	fault_file_is(old, "original\n");
	fault_served(h);
}

/* ---- A client that never reads ---- */

/* Find the pid of a child of parent named comm; -1 if none. */
static pid_t
fault_child(pid_t parent, const char *comm)
{
	char path[96], name[64], buf[4096], *p, *end;
	pid_t found = -1;
	long kid;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)parent,
	    (int)parent);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	if (fgets(buf, sizeof buf, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	for (p = buf; found < 0 && (kid = strtol(p, &end, 10)) > 0; p = end) {
		snprintf(path, sizeof path, "/proc/%ld/comm", kid);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fgets(name, sizeof name, f) != NULL) {
			name[strcspn(name, "\n")] = '\0';
			if (strcmp(name, comm) == 0)
				found = (pid_t)kid;
		}
		fclose(f);
	}
	return found;
}

/* A process's state letter from /proc/PID/stat ('R', 'S', ...), or '?'. */
static char
fault_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return '?';
	p = fgets(buf, sizeof buf, f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return '?';
	return p[2];
}

/*
 * Whether a writer is blocked: asleep before and after three echo round
 * trips of the other client, having written nothing meanwhile. (A runnable
 * process starved of CPU on a busy machine is 'R', not 'S'.)
 */
static bool
fault_blocked(struct harness *h, pid_t pid, long long *wrote, double *worst)
{
	long long w1, w2;
	char s1, s2;
	double t;
	int i;

	s1 = fault_state(pid);
	w1 = fault_proc_num(pid, "io", "wchar");
	for (i = 0; i < 3; i++) {
		t = fault_served(h);
		*worst = t > *worst ? t : *worst;
	}
	s2 = fault_state(pid);
	w2 = fault_proc_num(pid, "io", "wchar");
	*wrote = w2;
	return s1 == 'S' && s2 == 'S' && w1 == w2 && w1 >= 0;
}

/*
 * A client streams `yes` and never reads. The daemon stops reading that pty
 * (the writer blocks: asleep, its write count still, while the daemon answers
 * other requests), its RSS stays within FAULT_RSS_GROWTH_KB of the start,
 * and the well-behaved client's echoes stay fast.
 */
HTEST(never_reads_backpressure)
{
	struct swerex_client *c = harness_client(h);
	long long rss0, rss, wrote = -1;
	double deadline, t, worst = 0;
	pid_t bash, yes = -1;
	struct raw a;
	int i, rounds = 0;

	fault_other(h);
	REQUIRE(harness_create(c, "flood") == 0);
	bash = harness_session_pid(c, "flood");
	for (i = 0; i < 5; i++)
		fault_served(h);
	rss0 = fault_rss_kb(harness_pid(h));
	a = raw_connect_hello(h);
	REQUIRE(a.fd >= 0);
	REQUIRE(fault_send_run(&a, 2, "flood", "yes", true));
	deadline = harness_now() + 60;
	while (harness_now() < deadline && (yes = fault_child(bash, "yes")) < 0)
		poll(NULL, 0, 20);
	REQUIRE(yes > 0);
	/* Blocked, having had about the daemon's 1 MiB cap (and the socket's buffer) taken first. */
	while (harness_now() < deadline &&
	    !(fault_blocked(h, yes, &wrote, &worst) && wrote > 1000000))
		rounds++;
	printf("# yes wrote %lld bytes, then blocked (seen after %d rounds of 3 "
	    "echoes)\n", wrote, rounds);
	CHECK(wrote > 1000000 && fault_state(yes) == 'S');
	rss = fault_rss_kb(harness_pid(h));
	printf("# daemon RSS %lld KiB before, %lld KiB while blocked (bound: +%d KiB)\n",
	    rss0, rss, FAULT_RSS_GROWTH_KB);
	CHECK(rss0 > 0 && rss - rss0 < FAULT_RSS_GROWTH_KB);
	for (i = 0; i < 10; i++) {
		t = fault_served(h);
		worst = t > worst ? t : worst;
	}
	printf("# slowest echo of the other client meanwhile: %.1f ms\n", worst * 1e3);
	CHECK(worst < FAULT_ECHO_MAX);
	/* Still blocked after all that. */
	CHECK(fault_state(yes) == 'S' && fault_proc_num(yes, "io", "wchar") == wrote);
	/* The flooded session recovers once interrupted, its reader still away. */
	CHECK(fault_interrupt(h, "flood"));
	fault_run_ends(h, "flood", "echo calm", "calm\n");
	raw_close(&a);
	fault_served(h);
}

static const char *const stuck_args[] = { "--stuck-timeout", "1", NULL };

/*
 * With --stuck-timeout 1, a client that reads nothing of a full output
 * buffer is disconnected (and that is logged); its session is kept.
 */
HTEST_ARGS(stuck_client_disconnected, stuck_args)
{
	struct swerex_client *c = harness_client(h);
	struct pollfd pfd;
	char path[PATH_MAX], line[1024];
	double t0;
	int base, logged = 0;
	struct raw a;
	FILE *log;

	fault_other(h);
	REQUIRE(harness_create(c, "flood") == 0);
	base = fds_count(harness_pid(h));
	a = raw_connect_hello(h);
	REQUIRE(a.fd >= 0);
	REQUIRE(fault_send_run(&a, 2, "flood", "yes", true));
	t0 = harness_now();
	/* Hang-up is reported without reading (reading would unstick it). */
	pfd.fd = a.fd;
	pfd.events = POLLRDHUP;
	pfd.revents = 0;
	CHECK(poll(&pfd, 1, 60000) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP)));
	printf("# disconnected %.1f s after the flood started\n", harness_now() - t0);
	CHECK(harness_now() - t0 >= 1.0);
	raw_close(&a);
	fault_fds_back(h, base);
	snprintf(path, sizeof path, "%s/swerexd.log", harness_dir(h));
	REQUIRE((log = fopen(path, "r")) != NULL);
	while (fgets(line, sizeof line, log) != NULL)
		if (strstr(line, "read nothing") != NULL) {
			printf("# log: %s", line);
			logged++;
		}
	fclose(log);
	CHECK_INT(logged, 1);
	fault_served(h);
	CHECK(fault_interrupt(h, "flood"));
	fault_run_ends(h, "flood", "echo calm", "calm\n");
}

/* Certificates and the arguments of a TLS daemon with --stuck-timeout 1. */
static char fault_certs[64];
static char fault_cert[128], fault_key[128], fault_ca[128], fault_token_file[128];
static char fault_token[256];
static const char *fault_tls_args[12];

/* Remove the certificates at exit. */
static void
fault_tls_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", fault_certs);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", fault_certs);
}

/* Make certificates once (contrib/swerex-certs.sh); the daemon's arguments. */
static const char *const *
fault_tls_setup(void)
{
	const char *script = getenv("SWEREX_CERTS");
	char cmd[512];
	FILE *f;

	if (fault_tls_args[0] != NULL)
		return fault_tls_args;
	REQUIRE(script != NULL);
	snprintf(fault_certs, sizeof fault_certs, "/tmp/swerex-fault-XXXXXX");
	REQUIRE(mkdtemp(fault_certs) != NULL);
	atexit(fault_tls_cleanup);
	snprintf(cmd, sizeof cmd, "%s %s/c 2>/dev/null", script, fault_certs);
	REQUIRE(system(cmd) == 0);
	snprintf(fault_cert, sizeof fault_cert, "%s/c/server.pem", fault_certs);
	snprintf(fault_key, sizeof fault_key, "%s/c/server.key", fault_certs);
	snprintf(fault_ca, sizeof fault_ca, "%s/c/ca.pem", fault_certs);
	snprintf(fault_token_file, sizeof fault_token_file, "%s/c/token", fault_certs);
	REQUIRE((f = fopen(fault_token_file, "r")) != NULL);
	REQUIRE(fgets(fault_token, sizeof fault_token, f) != NULL);
	fclose(f);
	fault_token[strcspn(fault_token, "\n")] = '\0';
	fault_tls_args[0] = "--listen";
	fault_tls_args[1] = "tls://127.0.0.1:0";
	fault_tls_args[2] = "--tls-cert";
	fault_tls_args[3] = fault_cert;
	fault_tls_args[4] = "--tls-key";
	fault_tls_args[5] = fault_key;
	fault_tls_args[6] = "--token-file";
	fault_tls_args[7] = fault_token_file;
	fault_tls_args[8] = "--stuck-timeout";
	fault_tls_args[9] = "1";
	fault_tls_args[10] = NULL;
	return fault_tls_args;
}

/* The same over TLS, where the output buffer belongs to a bufferevent. */
HTEST_ARGS(stuck_tls_client_disconnected, fault_tls_setup())
{
	struct swerex_client *c = harness_client(h);
	Response *resp = NULL;
	struct pollfd pfd;
	const char *addr = harness_listen(h, "tls://");
	char err[256];
	SSL_CTX *ctx;
	struct raw a;
	double t0;
	int base;

	fault_other(h);
	REQUIRE(addr != NULL);
	REQUIRE(harness_create(c, "flood") == 0);
	base = fds_count(harness_pid(h));
	ctx = tls_client_ctx(fault_ca, NULL, NULL, err, sizeof err);
	REQUIRE(ctx != NULL);
	a = raw_connect_tcp(addr + 6);
	if (!raw_start_tls(&a, ctx, "127.0.0.1") ||
	    !raw_hello(&a, fault_token, NULL, 0, 1, &resp) ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_HELLO) {
		tap_diag(__FILE__, __LINE__, "TLS hello failed");
		raw_resp_show("reply", resp);
	}
	raw_resp_free(resp);
	if (a.fd >= 0 && fault_send_run(&a, 2, "flood", "yes", true)) {
		t0 = harness_now();
		pfd.fd = a.fd;
		pfd.events = POLLRDHUP;
		pfd.revents = 0;
		CHECK(poll(&pfd, 1, 60000) == 1 &&
		    (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)));
		printf("# TLS peer disconnected %.1f s after the flood started\n",
		    harness_now() - t0);
		CHECK(harness_now() - t0 >= 1.0);
	}
	raw_close(&a);
	SSL_CTX_free(ctx);
	fault_fds_back(h, base);
	fault_served(h);
	CHECK(fault_interrupt(h, "flood"));
	fault_run_ends(h, "flood", "echo calm", "calm\n");
}

/*
 * The same slow client that does read, a little at a time, is not cut off:
 * reading resets the clock.
 */
HTEST_ARGS(slow_reader_kept, stuck_args)
{
	struct swerex_client *c = harness_client(h);
	Response *resp = NULL;
	double t0;
	size_t got = 0;
	struct raw a;

	fault_other(h);
	REQUIRE(harness_create(c, "flood") == 0);
	a = raw_connect_hello(h);
	REQUIRE(a.fd >= 0);
	REQUIRE(fault_send_run(&a, 2, "flood", "yes", true));
	t0 = harness_now();
	/* Read for three stuck-timeouts, each frame after a 50 ms pause. */
	while (harness_now() - t0 < 3.0) {
		poll(NULL, 0, 50);
		if (raw_recv(&a, &resp, 20) != 1)
			break;
		if (resp->body_case == SWEREX__V1__RESPONSE__BODY_CHUNK)
			got += resp->chunk->data.len;
		raw_resp_free(resp);
		resp = NULL;
	}
	printf("# read %zu bytes slowly over %.1f s\n", got, harness_now() - t0);
	CHECK(harness_now() - t0 >= 3.0);
	CHECK(fault_interrupt(h, "flood"));
	raw_close(&a);
	fault_served(h);
}

/* ---- Garbage ---- */

/* Random bytes, alone and behind a valid header, each on a fresh connection. */
HTEST(random_bytes)
{
	static unsigned char buf[65536];
	uint64_t x = 0x5eed;
	int i, kind, errors = 0, closes = 0, base;
	struct raw r;

	fault_other(h);
	base = fds_count(harness_pid(h));
	for (i = 0; i < 40; i++) {
		size_t n = 1 + fault_rand(&x) % sizeof buf;

		r = i % 2 == 0 ? raw_connect(harness_socket_path(h)) : raw_connect_hello(h);
		REQUIRE(r.fd >= 0);
		fault_fill(buf, n, &x);
		if (i % 4 >= 2 && n > 5) {
			/* A valid header: flag 0 and the true length. */
			buf[0] = 0;
			buf[1] = (unsigned char)((n - 5) >> 24);
			buf[2] = (unsigned char)((n - 5) >> 16);
			buf[3] = (unsigned char)((n - 5) >> 8);
			buf[4] = (unsigned char)(n - 5);
		}
		/* The daemon may close before all of it is written. */
		raw_write(&r, buf, n);
		switch (fault_refusal(&r, &kind)) {
		case 1: errors++; break;
		case 0: closes++; break;
		default: break;
		}
		raw_close(&r);
		if (i % 10 == 9)
			fault_served(h);
	}
	printf("# 40 random payloads: %d answered with an error, %d closed\n",
	    errors, closes);
	CHECK_INT(errors + closes, 40);
	fault_fds_back(h, base);
	fault_served(h);
}

/*
 * Valid lengths around payloads that are not protobuf: an invalid wire
 * type, a varint that never ends, a length past the end, a group.
 */
HTEST(invalid_protobuf)
{
	static const struct { const char *what; unsigned char p[16]; size_t n; } bad[] = {
		{ "wire type 7", { 0x0f, 0x01 }, 2 },
		{ "endless varint", { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		    0xff, 0xff, 0xff, 0xff, 0xff, 0x01 }, 13 },
		{ "length past the end", { 0x62, 0x7f, 0x0a }, 3 },
		{ "start group", { 0x63, 0x08, 0x01 }, 3 },
		{ "nested garbage in hello", { 0x52, 0x02, 0xff, 0xff }, 4 },
	};
	struct evbuffer *b;
	size_t i;
	int kind;
	struct raw r;

	fault_other(h);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		r = raw_connect_hello(h);
		REQUIRE(r.fd >= 0);
		REQUIRE((b = evbuffer_new()) != NULL);
		evbuffer_add(b, bad[i].p, bad[i].n);
		REQUIRE(fault_send_payload(&r, b));
		evbuffer_free(b);
		if (fault_refusal(&r, &kind) == 1) {
			printf("# %s: %s\n", bad[i].what,
			    swerex_error_kind_name((enum swerex_error_kind)kind));
			CHECK(kind == SWEREX_ERR_PROTOCOL || kind == SWEREX_ERR_INVALID_REQUEST);
			CHECK(fault_refusal(&r, &kind) == 0);
		}
		raw_close(&r);
		fault_served(h);
	}
}

/*
 * A request whose body is a oneof case this daemon does not know (field 99):
 * INVALID_REQUEST under its id, and the connection goes on.
 */
HTEST(unknown_oneof_case)
{
	struct evbuffer *b;
	Response *resp = NULL;
	struct raw r;

	fault_other(h);
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);
	REQUIRE((b = evbuffer_new()) != NULL);
	pb_varint(b, 1 << 3 | 0);     /* id = 7 */
	pb_varint(b, 7);
	pb_bytes(b, 99, "\x0a\x03" "abc", 5);  /* body 99 { 1: "abc" } */
	REQUIRE(fault_send_payload(&r, b));
	evbuffer_free(b);
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	raw_resp_show("unknown case", resp);
	CHECK_INT(resp->id, 7);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
	    resp->error->kind == SWEREX__V1__ERROR_KIND__INVALID_REQUEST &&
	    strstr(resp->error->message, "unknown") != NULL);
	raw_resp_free(resp);
	CHECK(raw_round_trip(&r, 8, NULL));
	raw_close(&r);
	fault_served(h);
}

#define BIG (10u * 1024 * 1024)

/* Send a request and expect an error answer (not a success, not silence). */
static void
fault_big_at(const char *file, int line, struct raw *r, Request *req,
	     const char *what)
{
	Response *resp = NULL;
	int got;

	if (!raw_send(r, req)) {
		tap_diag(file, line, "%s: send failed", what);
		return;
	}
	got = raw_recv(r, &resp, 60);
	if (got != 1 || resp->id != req->id ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR) {
		tap_diag(file, line, "%s: expected an error, got %d", what, got);
		raw_resp_show("reply", resp);
	} else {
		printf("# %s: %s \"%.80s%s\" (%zu bytes)\n", what,
		    swerex_error_kind_name((enum swerex_error_kind)resp->error->kind),
		    resp->error->message, strlen(resp->error->message) > 80 ? "..." : "",
		    strlen(resp->error->message));
		CHECK(strlen(resp->error->message) < 65536);
	}
	raw_resp_free(resp);
}
#define fault_big(r, req, what) fault_big_at(__FILE__, __LINE__, (r), (req), (what))

static const char *const big_frame_args[] = { "--max-frame", "100000000", NULL };

/*
 * Every string field of each request 10 MB long, under a --max-frame that
 * lets them be decoded: each is answered with an error, nothing runs.
 */
HTEST_ARGS(ten_mb_strings, big_frame_args)
{
	Swerex__V1__BashAction run = SWEREX__V1__BASH_ACTION__INIT;
	Swerex__V1__CreateSessionRequest cs = SWEREX__V1__CREATE_SESSION_REQUEST__INIT;
	Swerex__V1__BashInterruptAction in = SWEREX__V1__BASH_INTERRUPT_ACTION__INIT;
	Swerex__V1__CloseSessionRequest cl = SWEREX__V1__CLOSE_SESSION_REQUEST__INIT;
	Swerex__V1__ExecuteRequest ex = SWEREX__V1__EXECUTE_REQUEST__INIT;
	Swerex__V1__ExecuteRequest__EnvEntry env = SWEREX__V1__EXECUTE_REQUEST__ENV_ENTRY__INIT;
	Swerex__V1__ExecuteRequest__EnvEntry *envp = &env;
	Swerex__V1__ReadFileRequest rf = SWEREX__V1__READ_FILE_REQUEST__INIT;
	Swerex__V1__WriteFileRequest wf = SWEREX__V1__WRITE_FILE_REQUEST__INIT;
	Swerex__V1__UploadBegin ub = SWEREX__V1__UPLOAD_BEGIN__INIT;
	Swerex__V1__DownloadRequest dl = SWEREX__V1__DOWNLOAD_REQUEST__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;
	char *big, *strs[1];
	long long rss0, rss;
	struct raw r;

	harness_watchdog(300);
	fault_other(h);
	REQUIRE((big = malloc(BIG + 1)) != NULL);
	memset(big, 'x', BIG);
	big[BIG] = '\0';
	strs[0] = big;
	rss0 = fault_rss_kb(harness_pid(h));
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);

	run.command = run.session = run.error_msg = big;
	run.n_expect = 1;
	run.expect = strs;
	req.id = 10;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &run;
	fault_big(&r, &req, "run");

	cs.session = big;
	cs.n_startup_source = 1;
	cs.startup_source = strs;
	req.id = 11;
	req.body_case = SWEREX__V1__REQUEST__BODY_CREATE_SESSION;
	req.create_session = &cs;
	fault_big(&r, &req, "create_session");

	in.session = big;
	in.n_expect = 1;
	in.expect = strs;
	req.id = 12;
	req.body_case = SWEREX__V1__REQUEST__BODY_INTERRUPT;
	req.interrupt = &in;
	fault_big(&r, &req, "interrupt");

	cl.session = big;
	req.id = 13;
	req.body_case = SWEREX__V1__REQUEST__BODY_CLOSE_SESSION;
	req.close_session = &cl;
	fault_big(&r, &req, "close_session");

	ex.n_argv = 1;
	ex.argv = strs;
	ex.command = ex.cwd = ex.error_msg = big;
	env.key = env.value = big;
	ex.n_env = 1;
	ex.env = &envp;
	req.id = 14;
	req.body_case = SWEREX__V1__REQUEST__BODY_EXECUTE;
	req.execute = &ex;
	fault_big(&r, &req, "execute (argv)");
	ex.shell = true;
	req.id = 15;
	fault_big(&r, &req, "execute (shell)");

	rf.path = rf.encoding = rf.errors = big;
	req.id = 16;
	req.body_case = SWEREX__V1__REQUEST__BODY_READ_FILE;
	req.read_file = &rf;
	fault_big(&r, &req, "read_file");

	wf.path = big;
	req.id = 17;
	req.body_case = SWEREX__V1__REQUEST__BODY_WRITE_FILE;
	req.write_file = &wf;
	fault_big(&r, &req, "write_file");

	ub.target_path = big;
	req.id = 18;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN;
	req.upload_begin = &ub;
	fault_big(&r, &req, "upload_begin");

	dl.path = big;
	req.id = 19;
	req.body_case = SWEREX__V1__REQUEST__BODY_DOWNLOAD;
	req.download = &dl;
	fault_big(&r, &req, "download");

	CHECK(raw_round_trip(&r, 20, NULL));
	raw_close(&r);
	rss = fault_rss_kb(harness_pid(h));
	printf("# daemon RSS %lld KiB before, %lld KiB after\n", rss0, rss);
	free(big);
	fault_served(h);
	/* Nothing was created or run. */
	{
		struct swerex_session_info *s = NULL;
		struct swerex_error *err = NULL;
		size_t n = 0;

		CHECK(swerex_list_sessions(harness_client(h), &s, &n, &err) == 0);
		CHECK_INT(n, 1);
		swerex_sessions_free(s, n);
		swerex_error_free(err);
	}
}

/* The same under the default --max-frame: refused as too large, closed. */
HTEST(ten_mb_strings_default_frame)
{
	Swerex__V1__BashAction run = SWEREX__V1__BASH_ACTION__INIT;
	Swerex__V1__CloseSessionRequest cl = SWEREX__V1__CLOSE_SESSION_REQUEST__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;
	char *big, *strs[1];
	int kind;
	struct raw r;

	harness_watchdog(300);
	fault_other(h);
	REQUIRE((big = malloc(BIG + 1)) != NULL);
	memset(big, 'x', BIG);
	big[BIG] = '\0';
	strs[0] = big;

	/* One 10 MB field fits the 16 MiB default and is decoded. */
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);
	cl.session = big;
	req.id = 3;
	req.body_case = SWEREX__V1__REQUEST__BODY_CLOSE_SESSION;
	req.close_session = &cl;
	fault_big(&r, &req, "close_session");
	CHECK(raw_round_trip(&r, 4, NULL));
	raw_close(&r);

	/* Four do not: PROTOCOL_ERROR and the connection closed. */
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);
	run.command = run.session = run.error_msg = big;
	run.n_expect = 1;
	run.expect = strs;
	req.id = 5;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &run;
	raw_send(&r, &req);   /* may fail part way: the daemon closes */
	CHECK_INT(fault_refusal(&r, &kind), 1);
	CHECK_INT(kind, SWEREX_ERR_PROTOCOL);
	CHECK_INT(fault_refusal(&r, &kind), 0);
	raw_close(&r);
	free(big);
	fault_served(h);
}

/* Expect an error of kind in answer to req on r. */
static void
fault_expect_kind_at(const char *file, int line, struct raw *r, Request *req,
		     int kind, const char *what)
{
	Response *resp = NULL;

	if (!raw_send(r, req) || raw_recv(r, &resp, 20) != 1) {
		tap_diag(file, line, "%s: no answer", what);
		return;
	}
	if (resp->id != req->id || resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR ||
	    (int)resp->error->kind != kind) {
		tap_diag(file, line, "%s: expected %s", what,
		    swerex_error_kind_name((enum swerex_error_kind)kind));
		raw_resp_show("got", resp);
	} else {
		printf("# %s: %s \"%s\"\n", what,
		    swerex_error_kind_name((enum swerex_error_kind)kind),
		    resp->error->message);
	}
	raw_resp_free(resp);
}
#define fault_expect_kind(r, req, kind, what) \
	fault_expect_kind_at(__FILE__, __LINE__, (r), (req), (kind), (what))

/*
 * Negative, NaN and infinite timeouts are INVALID_REQUEST in every request
 * that takes one; a huge finite one is accepted (and cut to what a timer
 * holds), and the command it guards still runs.
 */
HTEST(bad_timeouts)
{
	static const struct { const char *what; double v; } bad[] = {
		{ "negative", -1 }, { "NaN", NAN }, { "+inf", INFINITY },
		{ "-inf", -INFINITY }, { "-0.000001", -1e-6 },
	};
	Swerex__V1__BashAction run = SWEREX__V1__BASH_ACTION__INIT;
	Swerex__V1__CreateSessionRequest cs = SWEREX__V1__CREATE_SESSION_REQUEST__INIT;
	Swerex__V1__BashInterruptAction in = SWEREX__V1__BASH_INTERRUPT_ACTION__INIT;
	Swerex__V1__ExecuteRequest ex = SWEREX__V1__EXECUTE_REQUEST__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;
	char *argv[] = { "true" }, what[64];
	Response *resp = NULL;
	struct raw r;
	size_t i;

	fault_other(h);
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);
	run.command = "echo ran";
	run.session = "other";
	run.has_timeout_case = SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT;
	cs.session = "never";
	cs.has_startup_timeout_case =
	    SWEREX__V1__CREATE_SESSION_REQUEST__HAS_STARTUP_TIMEOUT_STARTUP_TIMEOUT;
	in.session = "other";
	in.has_timeout_case = SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_TIMEOUT_TIMEOUT;
	ex.n_argv = 1;
	ex.argv = argv;
	ex.has_timeout_case = SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		run.timeout = cs.startup_timeout = in.timeout = ex.timeout = bad[i].v;
		req.id = 10 * (i + 1);
		req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
		req.run = &run;
		snprintf(what, sizeof what, "run, %s", bad[i].what);
		fault_expect_kind(&r, &req, SWEREX_ERR_INVALID_REQUEST, what);
		req.id++;
		req.body_case = SWEREX__V1__REQUEST__BODY_CREATE_SESSION;
		req.create_session = &cs;
		snprintf(what, sizeof what, "create_session, %s", bad[i].what);
		fault_expect_kind(&r, &req, SWEREX_ERR_INVALID_REQUEST, what);
		req.id++;
		req.body_case = SWEREX__V1__REQUEST__BODY_INTERRUPT;
		req.interrupt = &in;
		snprintf(what, sizeof what, "interrupt, %s", bad[i].what);
		fault_expect_kind(&r, &req, SWEREX_ERR_INVALID_REQUEST, what);
		req.id++;
		req.body_case = SWEREX__V1__REQUEST__BODY_EXECUTE;
		req.execute = &ex;
		snprintf(what, sizeof what, "execute, %s", bad[i].what);
		fault_expect_kind(&r, &req, SWEREX_ERR_INVALID_REQUEST, what);
	}
	/* Huge but finite: accepted, and the command completes. */
	run.timeout = ex.timeout = 1e300;
	req.id = 100;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &run;
	REQUIRE(raw_send(&r, &req));
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_OBSERVATION &&
	    tap_mem_eq(resp->observation->output.data, resp->observation->output.len,
	    "ran\n"));
	raw_resp_show("run, 1e300", resp);
	raw_resp_free(resp);
	req.id = 101;
	req.body_case = SWEREX__V1__REQUEST__BODY_EXECUTE;
	req.execute = &ex;
	REQUIRE(raw_send(&r, &req));
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_EXECUTE);
	raw_resp_show("execute, 1e300", resp);
	raw_resp_free(resp);
	raw_close(&r);
	CHECK_INT(harness_session_pid(harness_client(h), "never"), -1);
	fault_served(h);
}

/* Send create_session for a name of len bytes (NULs and all). */
static bool
fault_send_create(struct raw *r, uint64_t id, const char *name, size_t len)
{
	struct evbuffer *b = evbuffer_new(), *body = evbuffer_new();
	bool ok = false;

	if (b != NULL && body != NULL) {
		pb_varint(b, 1 << 3 | 0);
		pb_varint(b, id);
		pb_bytes(body, 1, name, len);
		pb_bytes(b, 12, evbuffer_pullup(body, -1), evbuffer_get_length(body));
		ok = fault_send_payload(r, b);
	}
	if (b != NULL)
		evbuffer_free(b);
	if (body != NULL)
		evbuffer_free(body);
	return ok;
}

/*
 * Session names with a slash, a NUL, a newline, and 100 KB long: each is a
 * clear INVALID_REQUEST, or a name that then works exactly as given.
 */
HTEST(odd_session_names)
{
	static const struct { const char *what; const char *name; size_t len; } odd[] = {
		{ "slash", "a/b", 3 },
		{ "leading slash", "/etc/passwd", 11 },
		{ "dot-dot", "../../x", 7 },
		{ "NUL", "a\0b", 3 },
		{ "trailing NUL", "nul\0", 4 },
		{ "newline", "a\nb", 3 },
		{ "carriage return", "a\rb", 3 },
		{ "escape", "a\033[2Jb", 6 },
	};
	struct swerex_client *c = harness_client(h);
	Response *resp = NULL;
	char *big;
	size_t i;
	struct raw r;

	fault_other(h);
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);
	for (i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		resp = NULL;
		REQUIRE(fault_send_create(&r, 10 + i, odd[i].name, odd[i].len));
		REQUIRE(raw_recv(&r, &resp, 30) == 1);
		printf("# %s:", odd[i].what);
		raw_resp_show("", resp);
		if (resp->body_case == SWEREX__V1__RESPONSE__BODY_CREATE_SESSION) {
			/* Accepted: then under exactly that name. */
			CHECK(memchr(odd[i].name, '\0', odd[i].len) == NULL);
			CHECK_STR(resp->create_session->session, odd[i].name);
			CHECK_RUN(c, odd[i].name, "echo named", "named\n", 0);
			CHECK(harness_close(c, odd[i].name) == 0);
		} else {
			CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
			    resp->error->kind == SWEREX__V1__ERROR_KIND__INVALID_REQUEST);
		}
		raw_resp_free(resp);
	}
	/* A NUL must not alias the name before it. */
	CHECK_INT(harness_session_pid(c, "a"), -1);
	CHECK_INT(harness_session_pid(c, "nul"), -1);

	REQUIRE((big = malloc(100 * 1024)) != NULL);
	memset(big, 'n', 100 * 1024);
	REQUIRE(fault_send_create(&r, 50, big, 100 * 1024));
	REQUIRE(raw_recv(&r, &resp, 30) == 1);
	raw_resp_show("100 KB name", resp);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
	    resp->error->kind == SWEREX__V1__ERROR_KIND__INVALID_REQUEST &&
	    strlen(resp->error->message) < 4096);
	raw_resp_free(resp);
	free(big);
	CHECK(raw_round_trip(&r, 51, NULL));
	raw_close(&r);
	fault_served(h);
}

/* Send a request with body field number body holding the encoded evbuffer. */
static bool
fault_send_body(struct raw *r, uint64_t id, unsigned body, struct evbuffer *b)
{
	struct evbuffer *req = evbuffer_new();
	bool ok = false;

	if (req != NULL) {
		pb_varint(req, 1 << 3 | 0);
		pb_varint(req, id);
		pb_bytes(req, body, evbuffer_pullup(b, -1), evbuffer_get_length(b));
		ok = fault_send_payload(r, req);
		evbuffer_free(req);
	}
	evbuffer_drain(b, evbuffer_get_length(b));
	return ok;
}

/* Expect INVALID_REQUEST under id whose message names field. */
static void
fault_expect_nul_at(const char *file, int line, struct raw *r, uint64_t id,
		    const char *field)
{
	Response *resp = NULL;
	char want[64];

	snprintf(want, sizeof want, "'%s'", field);
	if (raw_recv(r, &resp, 20) != 1 || resp->id != id ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_ERROR ||
	    resp->error->kind != SWEREX__V1__ERROR_KIND__INVALID_REQUEST ||
	    strstr(resp->error->message, want) == NULL) {
		tap_diag(file, line, "expected INVALID_REQUEST naming %s", want);
		raw_resp_show("got", resp);
	}
	raw_resp_free(resp);
}
#define fault_expect_nul(r, id, field) \
	fault_expect_nul_at(__FILE__, __LINE__, (r), (id), (field))

/*
 * A NUL inside a string anywhere in a request (a path, a map key, a nested
 * entry's path) is refused; nothing is done under the name cut short.
 */
HTEST(nul_in_strings)
{
	struct evbuffer *b, *e;
	char path[PATH_MAX + 16];
	size_t n;
	struct raw r;

	fault_other(h);
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);
	REQUIRE((b = evbuffer_new()) != NULL && (e = evbuffer_new()) != NULL);

	n = (size_t)snprintf(path, sizeof path, "%s/a", harness_dir(h));
	memcpy(path + n, "\0b", 3);
	pb_bytes(b, 1, path, n + 2);       /* WriteFileRequest.path */
	pb_bytes(b, 2, "data", 4);
	REQUIRE(fault_send_body(&r, 2, 19, b));
	fault_expect_nul(&r, 2, "path");
	path[n] = '\0';
	CHECK(!fault_exists(path));

	pb_bytes(e, 1, "A\0B", 3);          /* env entry key */
	pb_bytes(e, 2, "v", 1);
	pb_bytes(b, 1, "true", 4);         /* ExecuteRequest.argv */
	pb_bytes(b, 5, evbuffer_pullup(e, -1), evbuffer_get_length(e));
	evbuffer_drain(e, evbuffer_get_length(e));
	REQUIRE(fault_send_body(&r, 3, 17, b));
	fault_expect_nul(&r, 3, "key");

	pb_bytes(e, 1, "dir\0/x", 6);       /* TransferEntry.path */
	pb_varint(b, 1 << 3 | 0);          /* UploadData.upload_id */
	pb_varint(b, 99);
	pb_bytes(b, 2, evbuffer_pullup(e, -1), evbuffer_get_length(e));
	REQUIRE(fault_send_body(&r, 4, 21, b));
	fault_expect_nul(&r, 4, "path");

	/* Bytes fields may hold anything. */
	pb_bytes(b, 1, path, n);           /* WriteFileRequest.path */
	pb_bytes(b, 2, "x\0y", 3);
	REQUIRE(fault_send_body(&r, 5, 19, b));
	{
		Response *resp = NULL;

		CHECK(raw_recv(&r, &resp, 20) == 1 &&
		    resp->body_case == SWEREX__V1__RESPONSE__BODY_WRITE_FILE);
		raw_resp_show("write with a NUL in its content", resp);
		raw_resp_free(resp);
	}
	evbuffer_free(b);
	evbuffer_free(e);
	CHECK(raw_round_trip(&r, 6, NULL));
	raw_close(&r);
	fault_served(h);
}

/* ---- Connection churn and limits ---- */

/*
 * 10,000 connections opened and dropped: before the Hello, after it, in the
 * middle of a frame, after Hello with a request half sent. The daemon's
 * descriptors return to where they started and it keeps serving.
 */
HTEST(churn_10000)
{
	static const unsigned char half[] = { 0, 0, 0, 0, 40, 0x08, 0x01, 0x5a };
	double t0 = harness_now();
	Response *resp = NULL;
	int base, i, peak = 0, n;
	struct raw r;

	harness_watchdog(600);
	fault_other(h);
	base = fds_count(harness_pid(h));
	for (i = 0; i < FAULT_CHURN; i++) {
		switch (i % 4) {
		case 0:     /* before Hello */
			r = raw_connect(harness_socket_path(h));
			break;
		case 1:     /* after the Hello exchange */
			r = raw_connect_hello(h);
			break;
		case 2:     /* mid-frame, before Hello */
			r = raw_connect(harness_socket_path(h));
			if (r.fd >= 0)
				raw_write(&r, half, sizeof half);
			break;
		default:    /* Hello sent, answer unread, then half a request */
			r = raw_connect(harness_socket_path(h));
			if (r.fd >= 0 && raw_hello(&r, NULL, NULL, 0, 1, &resp))
				raw_write(&r, half, sizeof half);
			raw_resp_free(resp);
			resp = NULL;
			break;
		}
		if (r.fd < 0) {
			tap_diag(__FILE__, __LINE__, "connection %d failed: %s", i,
			    strerror(errno));
			raw_close(&r);
			break;
		}
		raw_close(&r);
		if (i % 1000 == 999) {
			n = fds_count(harness_pid(h));
			peak = n > peak ? n : peak;
			fault_served(h);
		}
	}
	printf("# %d connections in %.1f s; daemon fds %d at start, at most %d "
	    "seen during\n", i, harness_now() - t0, base, peak);
	CHECK_INT(i, FAULT_CHURN);
	fault_fds_back(h, base);
	CHECK(harness_running(h));
	fault_served(h);
}

static const char *const four_conns[] = { "--max-connections", "4", NULL };

/*
 * --max-connections 4 (the harness's client is one): a fifth connection is
 * told why and closed while the first four work; once one closes, a new
 * one is accepted.
 */
HTEST_ARGS(max_connections_refused, four_conns)
{
	struct raw r[3], extra;
	Response *resp = NULL;
	double deadline;
	int i, got;
	bool accepted = false;

	fault_other(h);
	for (i = 0; i < 3; i++) {
		r[i] = raw_connect_hello(h);
		REQUIRE(r[i].fd >= 0);
	}
	extra = raw_connect(harness_socket_path(h));
	REQUIRE(extra.fd >= 0);
	got = raw_recv(&extra, &resp, 20);
	raw_resp_show("fifth connection", resp);
	CHECK(got == 1 && resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
	    resp->error->kind == SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED &&
	    strstr(resp->error->message, "max-connections") != NULL);
	raw_resp_free(resp);
	resp = NULL;
	if (got == 1)
		CHECK(raw_recv(&extra, &resp, 20) == 0);
	raw_close(&extra);
	/* The first four still work. */
	for (i = 0; i < 3; i++)
		CHECK(raw_round_trip(&r[i], 9, NULL));
	fault_served(h);
	raw_close(&r[0]);
	/* The daemon frees the slot when it sees the EOF: retry until then. */
	deadline = harness_now() + 20;
	while (!accepted && harness_now() < deadline) {
		extra = raw_connect(harness_socket_path(h));
		REQUIRE(extra.fd >= 0);
		accepted = raw_hello(&extra, NULL, NULL, 0, 1, &resp) &&
		    resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO;
		raw_resp_free(resp);
		resp = NULL;
		if (accepted)
			CHECK(raw_round_trip(&extra, 2, NULL));
		raw_close(&extra);
		if (!accepted)
			poll(NULL, 0, 20);
	}
	CHECK(accepted);
	for (i = 1; i < 3; i++)
		raw_close(&r[i]);
	fault_served(h);
}

/* ---- A full disk ---- */

/* Send write_file for path with n bytes of content. */
static bool
fault_send_write(struct raw *r, uint64_t id, const char *path, const void *p,
		 size_t n)
{
	Swerex__V1__WriteFileRequest wf = SWEREX__V1__WRITE_FILE_REQUEST__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;

	wf.path = (char *)path;
	wf.content.data = (uint8_t *)p;
	wf.content.len = n;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_WRITE_FILE;
	req.write_file = &wf;
	return raw_send(r, &req);
}

/* Read the final answer to id (skipping others) into *resp; false if none. */
static bool
fault_answer(struct raw *r, uint64_t id, Response **resp)
{
	while (raw_recv(r, resp, 30) == 1) {
		if ((*resp)->id == id)
			return true;
		raw_resp_free(*resp);
	}
	*resp = NULL;
	return false;
}

/* Mount a 1 MiB tmpfs on dir in a private mount namespace; false + reason. */
static bool
fault_small_fs(const char *dir, char *why, size_t size)
{
	if (unshare(CLONE_NEWNS) < 0) {
		snprintf(why, size, "unshare(CLONE_NEWNS): %s", strerror(errno));
		return false;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		snprintf(why, size, "making mounts private: %s", strerror(errno));
		return false;
	}
	if (mount("swerex-test", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") < 0) {
		snprintf(why, size, "mount -t tmpfs: %s", strerror(errno));
		return false;
	}
	return true;
}

/* The 1 MiB tmpfs of full_disk. */
static char fault_fs[PATH_MAX];

/*
 * write_file and an upload onto a full 1 MiB tmpfs: NO_SPACE, the previous
 * file intact, no temporary file left.
 */
static void
full_disk_body(struct harness *h)
{
	static unsigned char big[2 * 1024 * 1024];
	char target[PATH_MAX + 32];
	Response *resp = NULL;
	uint64_t x = 3;
	struct raw r;
	int i;

	fault_other(h);
	snprintf(target, sizeof target, "%s/kept.txt", fault_fs);
	REQUIRE(fault_put(target, "previous\n", 9));
	fault_fill(big, sizeof big, &x);
	r = raw_connect_hello(h);
	REQUIRE(r.fd >= 0);

	REQUIRE(fault_send_write(&r, 2, target, big, sizeof big));
	REQUIRE(fault_answer(&r, 2, &resp));
	raw_resp_show("write_file 2 MiB onto 1 MiB", resp);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
	    resp->error->kind == SWEREX__V1__ERROR_KIND__NO_SPACE);
	raw_resp_free(resp);
	fault_file_is(target, "previous\n");
	CHECK_INT(fault_entries(fault_fs, NULL), 1);

	REQUIRE(fault_upload_begin(&r, 3, target));
	for (i = 0; i < 4; i++)
		if (!fault_upload_piece(&r, 4 + (uint64_t)i, 3, big + i * 512 * 1024,
		    512 * 1024, i == 3))
			break;
	{
		Swerex__V1__UploadEnd ue = SWEREX__V1__UPLOAD_END__INIT;
		Request req = SWEREX__V1__REQUEST__INIT;

		ue.upload_id = 3;
		req.id = 9;
		req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
		req.upload_end = &ue;
		CHECK(raw_send(&r, &req));
	}
	REQUIRE(fault_answer(&r, 3, &resp));
	raw_resp_show("upload 2 MiB onto 1 MiB", resp);
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR &&
	    resp->error->kind == SWEREX__V1__ERROR_KIND__NO_SPACE);
	raw_resp_free(resp);
	CHECK(raw_round_trip(&r, 20, NULL));
	fault_file_is(target, "previous\n");
	CHECK_INT(fault_entries(fault_fs, NULL), 1);

	/* Space is there again for a small write. */
	REQUIRE(fault_send_write(&r, 30, target, "next\n", 5));
	REQUIRE(fault_answer(&r, 30, &resp));
	CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_WRITE_FILE);
	raw_resp_free(resp);
	fault_file_is(target, "next\n");
	raw_close(&r);
	fault_served(h);
}

/*
 * Run full_disk_body against a daemon started inside a private mount
 * namespace of this process, where a 1 MiB tmpfs is mounted; skipped where
 * that cannot be done (not root, no namespaces).
 */
TEST(full_disk)
{
	static char why[256];

	snprintf(fault_fs, sizeof fault_fs, "%s/swerex-fault-fs.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	REQUIRE(mkdtemp(fault_fs) != NULL);
	if (fault_small_fs(fault_fs, why, sizeof why)) {
		harness_test("full_disk", full_disk_body, NULL);
		if (umount2(fault_fs, MNT_DETACH) < 0)
			tap_diag(__FILE__, __LINE__, "umount %s: %s", fault_fs,
			    strerror(errno));
	} else {
		tap_skip = why;
	}
	rmdir(fault_fs);
}

TAP_MAIN(
	TAP_T(disconnect_mid_command),
	TAP_T(disconnect_mid_stream),
	TAP_T(disconnect_mid_upload),
	TAP_T(never_reads_backpressure),
	TAP_T(stuck_client_disconnected),
	TAP_T(stuck_tls_client_disconnected),
	TAP_T(slow_reader_kept),
	TAP_T(random_bytes),
	TAP_T(invalid_protobuf),
	TAP_T(unknown_oneof_case),
	TAP_T(ten_mb_strings),
	TAP_T(ten_mb_strings_default_frame),
	TAP_T(bad_timeouts),
	TAP_T(odd_session_names),
	TAP_T(nul_in_strings),
	TAP_T(churn_10000),
	TAP_T(max_connections_refused),
	TAP_T(full_disk),
)
