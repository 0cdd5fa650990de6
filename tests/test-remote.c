/*
 * Remote access of the real swerexd: TLS and loopback TCP listeners, the
 * token, the pre-authentication limits, mTLS, certificate reload, client
 * identities (a retried request never runs twice), ping, and the Unix
 * uid allow-list. The peer is the raw test client over OpenSSL, so what is
 * checked is the daemon itself; libswerex over TLS is tested in test-lib
 * and end to end in test-tunnel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "raw.h"
#include "tls.h"
#include "wire.h"

static char certs[256];         /* CA, server and client certificates */
static char certs2[256];        /* another CA and its certificates */
static char token[256];
static char p_cert[300], p_key[300], p_ca[300], p_token[300];
static char p_xcert[300], p_xkey[300];

/* Daemon arguments of the tests (filled by setup()). */
static const char *tls_args[16];
static const char *mtls_args[16];
static const char *expired_args[16];
static const char *loris_args[16];      /* --auth-timeout 1 */

/* Run a shell command; true when it exits 0. */
static bool
run_sh(const char *cmd)
{
	int st = system(cmd);

	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static char certs_root[64];

/* Remove the certificates at exit. */
static void
cleanup(void)
{
	char cmd[128];

	if (certs_root[0] != '\0') {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs_root);
		run_sh(cmd);
	}
}

/* Make the certificates once per run (swerex-certs.sh, as users would). */
static void
setup(void)
{
	static bool done;
	const char *script = getenv("SWEREX_CERTS");
	char cmd[1024], tmpl[] = "/tmp/swerex-remote-XXXXXX", *d;
	FILE *f;

	if (done)
		return;
	REQUIRE(script != NULL);
	REQUIRE((d = mkdtemp(tmpl)) != NULL);
	snprintf(certs_root, sizeof certs_root, "%s", d);
	atexit(cleanup);
	snprintf(certs, sizeof certs, "%s/a", d);
	snprintf(certs2, sizeof certs2, "%s/b", d);
	snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null && %s %s 2>/dev/null",
	    script, certs, script, certs2);
	REQUIRE(run_sh(cmd));
	snprintf(p_cert, sizeof p_cert, "%s/server.pem", certs);
	snprintf(p_key, sizeof p_key, "%s/server.key", certs);
	snprintf(p_ca, sizeof p_ca, "%s/ca.pem", certs);
	snprintf(p_token, sizeof p_token, "%s/token", certs);
	REQUIRE((f = fopen(p_token, "r")) != NULL);
	REQUIRE(fgets(token, sizeof token, f) != NULL);
	fclose(f);
	token[strcspn(token, "\n")] = '\0';

	tls_args[0] = "--listen";
	tls_args[1] = "tls://127.0.0.1:0";
	tls_args[2] = "--tls-cert";
	tls_args[3] = p_cert;
	tls_args[4] = "--tls-key";
	tls_args[5] = p_key;
	tls_args[6] = "--token-file";
	tls_args[7] = p_token;
	tls_args[8] = NULL;
	memcpy(loris_args, tls_args, sizeof tls_args);
	loris_args[8] = "--auth-timeout";
	loris_args[9] = "1";
	loris_args[10] = NULL;
	memcpy(mtls_args, tls_args, sizeof tls_args);
	mtls_args[8] = "--tls-client-ca";
	mtls_args[9] = p_ca;
	mtls_args[10] = NULL;
	/* certs2 again, with certificates that expired a year ago. */
	snprintf(cmd, sizeof cmd, "mkdir -p %s/x && %s %s/x --ca-from %s "
	    "--expired 2>/dev/null", d, script, d, certs2);
	REQUIRE(run_sh(cmd));
	snprintf(p_xcert, sizeof p_xcert, "%s/x/server.pem", d);
	snprintf(p_xkey, sizeof p_xkey, "%s/x/server.key", d);
	memcpy(expired_args, tls_args, sizeof tls_args);
	expired_args[3] = p_xcert;
	expired_args[5] = p_xkey;
	done = true;
}

/* The daemon's TLS address as "HOST:PORT". */
static const char *
tls_addr(struct harness *h)
{
	const char *a = harness_listen(h, "tls://");

	REQUIRE(a != NULL);
	return a + 6;
}

/* A client context trusting ca, with an optional client certificate. */
static SSL_CTX *
client_ctx(const char *ca, const char *dir_with_client_cert)
{
	char cert[300], key[300], err[256];
	SSL_CTX *ctx;

	if (dir_with_client_cert != NULL) {
		snprintf(cert, sizeof cert, "%s/client.pem", dir_with_client_cert);
		snprintf(key, sizeof key, "%s/client.key", dir_with_client_cert);
	}
	ctx = tls_client_ctx(ca, dir_with_client_cert ? cert : NULL,
	    dir_with_client_cert ? key : NULL, err, sizeof err);
	if (ctx == NULL)
		tap_diag(__FILE__, __LINE__, "%s", err);
	return ctx;
}

/* Connect over TLS and say Hello with tok; the connection, fd -1 on failure. */
static struct raw
tls_hello(struct harness *h, SSL_CTX *ctx, const char *tok, const void *cid,
	  size_t cid_len, bool *resumed)
{
	struct raw r = raw_connect_tcp(tls_addr(h));
	Swerex__V1__Response *resp = NULL;

	if (!raw_start_tls(&r, ctx, "127.0.0.1") ||
	    !raw_hello(&r, tok, cid, cid_len, 1, &resp) ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_HELLO) {
		tap_diag(__FILE__, __LINE__, "TLS hello failed");
		raw_resp_show("reply", resp);
		raw_resp_free(resp);
		raw_close(&r);
		return r;
	}
	if (resumed != NULL)
		*resumed = resp->hello->resumed;
	raw_resp_free(resp);
	return r;
}

/* Send a BashAction under id. */
static bool
send_run(struct raw *r, uint64_t id, const char *session, const char *cmd)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__BashAction a = SWEREX__V1__BASH_ACTION__INIT;

	a.session = (char *)session;
	a.command = (char *)cmd;
	a.check = SWEREX__V1__CHECK__CHECK_SILENT;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_RUN;
	req.run = &a;
	return raw_send(r, &req);
}

/* Receive the observation to request id and check its output. */
static void
expect_output(struct raw *r, uint64_t id, const char *output)
{
	Swerex__V1__Response *resp = NULL;

	if (raw_recv(r, &resp, HARNESS_TIMEOUT) != 1 || resp->id != id ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_OBSERVATION) {
		tap_diag(__FILE__, __LINE__, "no observation for request %llu",
		    (unsigned long long)id);
		raw_resp_show("reply", resp);
	} else if (*output == '\0')
		CHECK_INT(resp->observation->output.len, 0);
	else
		CHECK_MEM(resp->observation->output.data,
		    resp->observation->output.len, output);
	raw_resp_free(resp);
}

/* Create a session over a raw connection. */
static void
raw_create(struct raw *r, uint64_t id, const char *session)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__CreateSessionRequest cs = SWEREX__V1__CREATE_SESSION_REQUEST__INIT;
	Swerex__V1__Response *resp = NULL;

	cs.session = (char *)session;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_CREATE_SESSION;
	req.create_session = &cs;
	REQUIRE(raw_send(r, &req));
	REQUIRE(raw_recv(r, &resp, HARNESS_TIMEOUT) == 1);
	if (resp->body_case != SWEREX__V1__RESPONSE__BODY_CREATE_SESSION)
		raw_resp_show("create", resp);
	REQUIRE(resp->body_case == SWEREX__V1__RESPONSE__BODY_CREATE_SESSION);
	raw_resp_free(resp);
}

/* Wait until the daemon closes r (EOF), at most timeout seconds. */
static bool
closed_within(struct raw *r, double timeout)
{
	Swerex__V1__Response *resp = NULL;
	double end = harness_now() + timeout;
	int k;

	while (harness_now() < end) {
		k = raw_recv(r, &resp, end - harness_now());
		raw_resp_free(resp);
		resp = NULL;
		if (k == 0 || k == -2)
			return true;
		if (k == -1)
			return false;
	}
	return false;
}

HTEST_ARGS(tls_sessions_and_ping, (setup(), tls_args))
{
	SSL_CTX *ctx = client_ctx(p_ca, NULL);
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Ping ping = SWEREX__V1__PING__INIT;
	Swerex__V1__Response *resp = NULL;
	struct raw r;

	REQUIRE(ctx != NULL);
	r = tls_hello(h, ctx, token, NULL, 0, NULL);
	REQUIRE(r.fd >= 0);
	CHECK(SSL_version(r.ssl) >= TLS1_2_VERSION);
	raw_create(&r, 2, "t");
	REQUIRE(send_run(&r, 3, "t", "cd /tmp; x=42"));
	expect_output(&r, 3, "");
	REQUIRE(send_run(&r, 4, "t", "echo $x $PWD"));
	expect_output(&r, 4, "42 /tmp\n");

	ping.payload.data = (uint8_t *)"abc";
	ping.payload.len = 3;
	req.id = 5;
	req.body_case = SWEREX__V1__REQUEST__BODY_PING;
	req.ping = &ping;
	REQUIRE(raw_send(&r, &req));
	REQUIRE(raw_recv(&r, &resp, 10) == 1);
	CHECK_INT(resp->id, 5);
	CHECK_INT(resp->body_case, SWEREX__V1__RESPONSE__BODY_PONG);
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_PONG)
		CHECK_MEM(resp->pong->payload.data, resp->pong->payload.len, "abc");
	raw_resp_free(resp);

	/* The Unix socket needs no token, and sees the same sessions. */
	CHECK_RUN(harness_client(h), "t", "echo $x", "42\n", 0);
	raw_close(&r);
	SSL_CTX_free(ctx);
}

HTEST_ARGS(wrong_and_missing_token_refused, (setup(), tls_args))
{
	SSL_CTX *ctx = client_ctx(p_ca, NULL);
	Swerex__V1__Response *resp = NULL;
	struct raw good, bad;
	char prefix[256], longer[300];
	/* A token's prefix or extension is no more the token than junk. */
	const char *toks[] = { "not-the-token", "", prefix, longer };
	size_t i;

	REQUIRE(ctx != NULL);
	snprintf(prefix, sizeof prefix, "%.*s", (int)strlen(token) - 1, token);
	snprintf(longer, sizeof longer, "%sx", token);
	good = tls_hello(h, ctx, token, NULL, 0, NULL);
	REQUIRE(good.fd >= 0);
	raw_create(&good, 2, "g");
	for (i = 0; i < sizeof toks / sizeof *toks; i++) {
		bad = raw_connect_tcp(tls_addr(h));
		REQUIRE(raw_start_tls(&bad, ctx, "127.0.0.1"));
		REQUIRE(raw_hello(&bad, toks[i], NULL, 0, 7, &resp));
		CHECK_INT(resp->id, 7);
		CHECK_INT(resp->body_case, SWEREX__V1__RESPONSE__BODY_ERROR);
		if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR)
			CHECK_INT(resp->error->kind,
			    SWEREX__V1__ERROR_KIND__UNAUTHENTICATED);
		raw_resp_free(resp);
		/* Then the daemon closes the connection. */
		CHECK(closed_within(&bad, 20));
		raw_close(&bad);
	}
	/* The authenticated client never noticed. */
	REQUIRE(send_run(&good, 3, "g", "echo still here"));
	expect_output(&good, 3, "still here\n");
	raw_close(&good);
	SSL_CTX_free(ctx);
}

HTEST_ARGS(repeated_failures_slowed_down, (setup(), tls_args))
{
	SSL_CTX *ctx = client_ctx(p_ca, NULL);
	Swerex__V1__Response *resp = NULL;
	double t0, first = 0, third = 0;
	struct raw bad;
	int i;

	/* Under valgrind each TLS handshake takes longer than the delays. */
	if (harness_under_valgrind()) {
		SSL_CTX_free(ctx);
		SKIP("valgrind: its slowdown drowns the delays measured");
	}

	REQUIRE(ctx != NULL);
	for (i = 1; i <= 3; i++) {
		bad = raw_connect_tcp(tls_addr(h));
		REQUIRE(raw_start_tls(&bad, ctx, "127.0.0.1"));
		t0 = harness_now();
		REQUIRE(raw_hello(&bad, "guess", NULL, 0, 1, &resp));
		CHECK_INT(resp->body_case, SWEREX__V1__RESPONSE__BODY_ERROR);
		raw_resp_free(resp);
		if (i == 1)
			first = harness_now() - t0;
		if (i == 3)
			third = harness_now() - t0;
		raw_close(&bad);
	}
	/* 0.25 s, 0.5 s, 1 s: each failure from an address waits longer. */
	printf("# refusal delays: first %.3f s, third %.3f s\n", first, third);
	CHECK(third >= 0.9);
	CHECK(third > first * 2);
	SSL_CTX_free(ctx);
}

HTEST_ARGS(slow_loris_closed_by_deadline, (setup(), loris_args))
{
	SSL_CTX *ctx = client_ctx(p_ca, NULL);
	struct raw good, tcp_only, tls_silent;

	REQUIRE(ctx != NULL);
	good = tls_hello(h, ctx, token, NULL, 0, NULL);
	REQUIRE(good.fd >= 0);
	raw_create(&good, 2, "g");
	/* One byte of a TLS record and then nothing; and a handshake with no
	 * Hello after it. --auth-timeout is 1 s for this test. */
	tcp_only = raw_connect_tcp(tls_addr(h));
	REQUIRE(tcp_only.fd >= 0);
	REQUIRE(send(tcp_only.fd, "\x16", 1, MSG_NOSIGNAL) == 1);
	tls_silent = raw_connect_tcp(tls_addr(h));
	REQUIRE(raw_start_tls(&tls_silent, ctx, "127.0.0.1"));
	CHECK(closed_within(&tcp_only, 20));
	CHECK(closed_within(&tls_silent, 20));
	REQUIRE(send_run(&good, 3, "g", "echo ok"));
	expect_output(&good, 3, "ok\n");
	raw_close(&tcp_only);
	raw_close(&tls_silent);
	raw_close(&good);
	SSL_CTX_free(ctx);
}

HTEST_ARGS(large_frame_before_hello_closed, (setup(), tls_args))
{
	SSL_CTX *ctx = client_ctx(p_ca, NULL);
	Swerex__V1__Response *resp = NULL;
	unsigned char hdr[5] = { 0, 0, 1, 0, 0 };   /* 64 KiB announced */
	struct raw r;

	REQUIRE(ctx != NULL);
	r = raw_connect_tcp(tls_addr(h));
	REQUIRE(raw_start_tls(&r, ctx, "127.0.0.1"));
	REQUIRE(raw_write(&r, hdr, sizeof hdr));
	/* Refused from the header alone: a protocol error, then EOF. */
	REQUIRE(raw_recv(&r, &resp, 20) == 1);
	CHECK_INT(resp->body_case, SWEREX__V1__RESPONSE__BODY_ERROR);
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR)
		CHECK_INT(resp->error->kind, SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR);
	raw_resp_free(resp);
	CHECK(closed_within(&r, 20));
	raw_close(&r);
	SSL_CTX_free(ctx);
}

HTEST_ARGS(old_tls_and_wrong_ca_refused, (setup(), tls_args))
{
	SSL_CTX *old = client_ctx(p_ca, NULL), *other;
	char ca2[300];
	struct raw r;

	REQUIRE(old != NULL);
	/* TLS 1.1 at most (and the security level that still allows it). */
	SSL_CTX_set_min_proto_version(old, TLS1_VERSION);
	SSL_CTX_set_max_proto_version(old, TLS1_1_VERSION);
	SSL_CTX_set_cipher_list(old, "DEFAULT:@SECLEVEL=0");
	r = raw_connect_tcp(tls_addr(h));
	CHECK(!raw_start_tls(&r, old, "127.0.0.1"));
	raw_close(&r);
	SSL_CTX_free(old);

	/* A client that trusts another CA does not accept the daemon. */
	snprintf(ca2, sizeof ca2, "%s/ca.pem", certs2);
	REQUIRE((other = client_ctx(ca2, NULL)) != NULL);
	r = raw_connect_tcp(tls_addr(h));
	CHECK(!raw_start_tls(&r, other, "127.0.0.1"));
	raw_close(&r);
	/* Nor one that expects another name. */
	SSL_CTX_free(other);
	REQUIRE((other = client_ctx(p_ca, NULL)) != NULL);
	r = raw_connect_tcp(tls_addr(h));
	CHECK(!raw_start_tls(&r, other, "wrong.example"));
	raw_close(&r);
	SSL_CTX_free(other);
	CHECK(harness_running(h));
}

HTEST_ARGS(mtls_requires_client_certificate, (setup(), mtls_args))
{
	SSL_CTX *anon = client_ctx(p_ca, NULL), *other, *with;
	Swerex__V1__Response *resp = NULL;
	struct raw r;

	REQUIRE(anon != NULL);
	/* TLS 1.3 finishes the client's side of the handshake before the
	 * server checks the certificate: the refusal arrives on first read. */
	r = raw_connect_tcp(tls_addr(h));
	if (raw_start_tls(&r, anon, "127.0.0.1"))
		CHECK(!raw_hello(&r, token, NULL, 0, 1, &resp) || resp == NULL);
	raw_resp_free(resp);
	resp = NULL;
	raw_close(&r);

	/* A client certificate from another CA is refused too. */
	REQUIRE((other = client_ctx(p_ca, certs2)) != NULL);
	r = raw_connect_tcp(tls_addr(h));
	if (raw_start_tls(&r, other, "127.0.0.1"))
		CHECK(!raw_hello(&r, token, NULL, 0, 1, &resp) || resp == NULL);
	raw_resp_free(resp);
	raw_close(&r);

	REQUIRE((with = client_ctx(p_ca, certs)) != NULL);
	r = tls_hello(h, with, token, NULL, 0, NULL);
	CHECK(r.fd >= 0);
	raw_close(&r);
	SSL_CTX_free(anon);
	SSL_CTX_free(other);
	SSL_CTX_free(with);
}

HTEST_ARGS(retry_answered_from_cache_not_run_twice, (setup(), tls_args))
{
	static const unsigned char cid[16] = "0123456789abcdef";
	static const unsigned char cid2[16] = "fedcba9876543210";
	SSL_CTX *ctx = client_ctx(p_ca, NULL);
	struct swerex_observation *o;
	char cmd[512], count[512];
	bool resumed = true;
	struct raw a, b;

	REQUIRE(ctx != NULL);
	snprintf(count, sizeof count, "wc -l < %s/ran", harness_dir(h));
	snprintf(cmd, sizeof cmd, "echo x >> %s/ran; sleep 0.5; echo done",
	    harness_dir(h));

	REQUIRE(harness_create(harness_client(h), "probe") == 0);
	a = tls_hello(h, ctx, token, cid, sizeof cid, &resumed);
	REQUIRE(a.fd >= 0);
	CHECK(!resumed);
	raw_create(&a, 2, "r");
	/* The connection is lost while request 3 runs. */
	REQUIRE(send_run(&a, 3, "r", cmd));
	raw_close(&a);

	b = tls_hello(h, ctx, token, cid, sizeof cid, &resumed);
	REQUIRE(b.fd >= 0);
	CHECK(resumed);
	/* The retry joins the first attempt; a second retry hits the cache. */
	REQUIRE(send_run(&b, 3, "r", cmd));
	expect_output(&b, 3, "done\n");
	REQUIRE(send_run(&b, 3, "r", cmd));
	expect_output(&b, 3, "done\n");
	/* A request that had completed before the loss is replayed too. */
	raw_close(&b);
	b = tls_hello(h, ctx, token, cid, sizeof cid, &resumed);
	REQUIRE(b.fd >= 0);
	REQUIRE(send_run(&b, 3, "r", cmd));
	expect_output(&b, 3, "done\n");
	o = harness_exec(harness_client(h), "probe", count);
	if (o != NULL)
		CHECK_MEM(o->output, o->output_len, "1\n");
	swerex_observation_free(o);
	/* A new request id runs. */
	REQUIRE(send_run(&b, 4, "r", "echo new"));
	expect_output(&b, 4, "new\n");
	raw_close(&b);

	/* Another identity is not resumed and shares nothing. */
	b = tls_hello(h, ctx, token, cid2, sizeof cid2, &resumed);
	REQUIRE(b.fd >= 0);
	CHECK(!resumed);
	raw_close(&b);
	SSL_CTX_free(ctx);
}

HTEST_ARGS(sighup_reloads_certificates, (setup(), tls_args))
{
	SSL_CTX *ctx1 = client_ctx(p_ca, NULL), *ctx2;
	char cmd[2048], ca2[300];
	struct raw before, after = { -1, NULL, NULL };
	double end;

	REQUIRE(ctx1 != NULL);
	snprintf(ca2, sizeof ca2, "%s/ca.pem", certs2);
	REQUIRE((ctx2 = client_ctx(ca2, NULL)) != NULL);
	before = tls_hello(h, ctx1, token, NULL, 0, NULL);
	REQUIRE(before.fd >= 0);
	raw_create(&before, 2, "s");

	/* The certificate files are replaced by another CA's; SIGHUP. */
	snprintf(cmd, sizeof cmd, "cp %s %s %s/ && cp %s/server.pem %s && "
	    "cp %s/server.key %s", p_cert, p_key, harness_dir(h), certs2,
	    p_cert, certs2, p_key);
	REQUIRE(run_sh(cmd));
	REQUIRE(kill(harness_pid(h), SIGHUP) == 0);
	/* The signal is handled by the daemon's loop some time after kill()
	 * returns: handshakes are retried until one sees the new certificate. */
	for (end = harness_now() + 20; harness_now() < end; raw_close(&after)) {
		after = raw_connect_tcp(tls_addr(h));
		if (raw_start_tls(&after, ctx2, "127.0.0.1"))
			break;
	}
	CHECK(after.ssl != NULL && SSL_is_init_finished(after.ssl));
	raw_close(&after);
	/* The connection from before keeps its session. */
	REQUIRE(send_run(&before, 3, "s", "echo kept"));
	expect_output(&before, 3, "kept\n");
	raw_close(&before);
	/* Put the first set back for the tests after this one. */
	snprintf(cmd, sizeof cmd, "cp %s/server.pem %s && cp %s/server.key %s",
	    harness_dir(h), p_cert, harness_dir(h), p_key);
	REQUIRE(run_sh(cmd));
	SSL_CTX_free(ctx1);
	SSL_CTX_free(ctx2);
}

/* Start a daemon with args and expect it to refuse to start (exit 1). */
static void
expect_refused(const char *const *args, const char *what)
{
	struct harness *d = harness_spawn(NULL, args);
	int st;

	REQUIRE(d != NULL);
	CHECK(harness_wait_ready(d, 20) == 0);
	st = harness_wait_exit(d, 20);
	if (!(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1)) {
		tap_diag(__FILE__, __LINE__, "%s: not refused (status %d)", what, st);
		harness_print_log(d);
	}
	harness_free(d);
}

TEST(unsafe_configurations_refused)
{
	const char *no_token[] = { "--listen", "tls://127.0.0.1:0", "--tls-cert",
	    p_cert, "--tls-key", p_key, NULL };
	const char *no_cert[] = { "--listen", "tls://127.0.0.1:0",
	    "--token-file", p_token, NULL };
	const char *plain[] = { "--listen", "tcp://127.0.0.1:0", "--token-file",
	    p_token, NULL };
	const char *public[] = { "--listen", "tcp://0.0.0.0:0", "--insecure",
	    "--token-file", p_token, NULL };

	setup();
	unsetenv("SWEREXD_TOKEN");
	expect_refused(no_token, "TLS without a token");
	expect_refused(no_cert, "TLS without a certificate");
	expect_refused(plain, "plain TCP without --insecure");
	expect_refused(public, "plain TCP on a public address");
}

static const char *insecure_args[] = { "--listen", "tcp://127.0.0.1:0",
    "--insecure", "--token-file", NULL, NULL };

HTEST_ARGS(insecure_loopback_tcp, (setup(), insecure_args[4] = p_token,
    insecure_args))
{
	const char *a = harness_listen(h, "tcp://");
	Swerex__V1__Response *resp = NULL;
	struct raw r;

	REQUIRE(a != NULL);
	r = raw_connect_tcp(a + 6);
	REQUIRE(r.fd >= 0);
	REQUIRE(raw_hello(&r, token, NULL, 0, 1, &resp));
	CHECK_INT(resp->body_case, SWEREX__V1__RESPONSE__BODY_HELLO);
	raw_resp_free(resp);
	raw_create(&r, 2, "p");
	REQUIRE(send_run(&r, 3, "p", "echo plain"));
	expect_output(&r, 3, "plain\n");
	raw_close(&r);
}

/* Tell whether a process maps a file whose name holds what. */
static bool
maps_holds(pid_t pid, const char *what)
{
	char path[64], line[4096];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = strstr(line, what) != NULL;
	fclose(f);
	return found;
}

/*
 * A daemon without TLS maps no OpenSSL (it took more than half of the start
 * of a dynamically linked daemon); one with TLS loads swerexd-tls.so.
 */
HTEST_ARGS(tls_module_loaded_only_for_tls, (setup(), NULL))
{
	SSL_CTX *ctx = client_ctx(p_ca, NULL);
	struct harness *d;
	struct raw r;

	REQUIRE(ctx != NULL);
	CHECK(!maps_holds(harness_pid(h), "libssl"));
	CHECK(!maps_holds(harness_pid(h), "libcrypto"));
	CHECK(!maps_holds(harness_pid(h), "swerexd-tls.so"));
	d = harness_start(tls_args);
	REQUIRE(d != NULL);
	CHECK(maps_holds(harness_pid(d), "swerexd-tls.so"));
	CHECK(maps_holds(harness_pid(d), "libssl"));
	/* And it serves TLS through it. */
	r = tls_hello(d, ctx, token, NULL, 0, NULL);
	CHECK(r.fd >= 0);
	raw_close(&r);
	SSL_CTX_free(ctx);
	harness_stop(d);
	harness_free(d);
}

/* Without its TLS module, a daemon asked for TLS says so and exits 1. */
TEST(tls_module_missing_is_a_clear_error)
{
	const char *bin = getenv("SWEREXD_BINARY"), *mod = getenv("SWEREXD_MODULEDIR");
	char dir[] = "/tmp/swerex-nomod-XXXXXX", cmd[2048], installed[1024];
	char out[4096] = "";
	FILE *f;
	size_t n;
	int st;

	setup();
	REQUIRE(bin != NULL && mod != NULL);
	snprintf(installed, sizeof installed, "%s/swerexd-tls.so", mod);
	if (access(installed, F_OK) == 0)
		SKIP("a module is installed in SWEREXD_MODULEDIR; a copy would load it");
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(cmd, sizeof cmd, "cp '%s' %s/swerexd && HOME=%s %s/swerexd "
	    "--listen unix:%s/s --listen tls://127.0.0.1:0 --tls-cert %s "
	    "--tls-key %s --token-file %s 2> %s/err", bin, dir, dir, dir, dir,
	    p_cert, p_key, p_token, dir);
	st = system(cmd);
	CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1);
	snprintf(cmd, sizeof cmd, "%s/err", dir);
	if ((f = fopen(cmd, "re")) != NULL) {
		n = fread(out, 1, sizeof out - 1, f);
		out[n] = '\0';
		fclose(f);
	}
	CHECK(strstr(out, "TLS is not available") != NULL);
	CHECK(strstr(out, "swerexd-tls.so") != NULL);
	CHECK(strstr(out, mod) != NULL);
	if (tap_failed_now)
		printf("# stderr: %s\n", out);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	run_sh(cmd);
}

static const char *other_uid_args[] = { "--allow-uid", "4242", NULL };

HTEST_ARGS(unix_uid_allow_list, NULL)
{
	char uid[32];
	const char *mine[] = { "--allow-uid", "4242", "--allow-uid", uid, NULL };
	Swerex__V1__Response *resp = NULL;
	struct harness *d;
	struct raw r;

	/* The harness's own daemon has no list; start two more. */
	d = harness_spawn(NULL, other_uid_args);
	REQUIRE(d != NULL);
	REQUIRE(harness_wait_ready(d, 20) == 1);
	r = raw_connect(harness_socket_path(d));
	REQUIRE(r.fd >= 0);
	/* Closed at once: the Hello gets no answer. */
	CHECK(!raw_hello(&r, NULL, NULL, 0, 1, &resp));
	raw_resp_free(resp);
	raw_close(&r);

	snprintf(uid, sizeof uid, "%u", (unsigned)getuid());
	d = harness_spawn(NULL, mine);
	REQUIRE(d != NULL);
	REQUIRE(harness_wait_ready(d, 20) == 1);
	r = raw_connect(harness_socket_path(d));
	REQUIRE(r.fd >= 0);
	CHECK(raw_hello(&r, NULL, NULL, 0, 1, &resp) &&
	    resp->body_case == SWEREX__V1__RESPONSE__BODY_HELLO);
	raw_resp_free(resp);
	raw_close(&r);
}

/* Connect libswerex over TLS to the test's daemon. */
static struct swerex_client *
lib_connect(struct harness *h, const char *ca, const char *name,
	    const char *tok, bool reconnect, const char *url,
	    struct swerex_error **err)
{
	struct swerex_connect_opts o;
	struct swerex_client *c = NULL;
	char u[300];

	swerex_connect_opts_init(&o);
	snprintf(u, sizeof u, "%s", url != NULL ? url : harness_listen(h, "tls://"));
	o.url = u;
	o.client_name = "test-remote";
	o.ca_file = ca;
	o.server_name = name;
	o.token = tok;
	o.connect_timeout = 20;
	o.reconnect = reconnect;
	o.reconnect_timeout = 30;
	*err = NULL;
	if (swerex_connect_with(&o, &c, err) != 0)
		return NULL;
	return c;
}

HTEST_ARGS(lib_tls_end_to_end, (setup(), tls_args))
{
	struct swerex_run_opts ro = { 0 };
	struct swerex_observation *o = NULL;
	struct swerex_error *err = NULL;
	struct swerex_client *c;
	struct harness_chunks chunks = { .len = 0 };
	char src[512], dst[512], cmd[2048];

	c = lib_connect(h, p_ca, NULL, token, false, NULL, &err);
	if (c == NULL)
		harness_show_error("connect", err);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "e") == 0);
	CHECK_RUN(c, "e", "cd /tmp; y=7", "", 0);
	CHECK_RUN(c, "e", "echo $y $PWD", "7 /tmp\n", 0);

	/* Streaming: chunks arrive before the final observation. */
	ro.command = "for i in 1 2 3; do echo line$i; done";
	ro.session = "e";
	ro.check = SWEREX_CHECK_SILENT;
	ro.on_chunk = harness_chunks_add;
	ro.chunk_arg = &chunks;
	if (swerex_run(c, &ro, &o, &err) != 0)
		harness_show_error("stream", err);
	REQUIRE(o != NULL);
	CHECK_MEM(o->output, o->output_len, "line1\nline2\nline3\n");
	CHECK_MEM(chunks.buf, chunks.len, "line1\nline2\nline3\n");
	swerex_observation_free(o);

	/* A tree up and back down over TLS. */
	snprintf(src, sizeof src, "%s/up", harness_dir(h));
	snprintf(dst, sizeof dst, "%s/down", harness_dir(h));
	snprintf(cmd, sizeof cmd, "mkdir -p %s/d && head -c 3000000 /dev/urandom "
	    "> %s/d/big && echo hi > %s/small", src, src, src);
	REQUIRE(run_sh(cmd));
	snprintf(cmd, sizeof cmd, "%s/remote", harness_dir(h));
	if (swerex_upload(c, src, cmd, NULL, NULL, &err) != 0)
		harness_show_error("upload", err);
	if (swerex_download(c, cmd, dst, NULL, NULL, &err) != 0)
		harness_show_error("download", err);
	snprintf(cmd, sizeof cmd, "diff -r %s %s", src, dst);
	CHECK(run_sh(cmd));
	swerex_error_free(err);
	swerex_client_free(c);
}

HTEST_ARGS(lib_tls_refuses_bad_peers, (setup(), tls_args))
{
	struct swerex_error *err = NULL;
	struct swerex_client *c;
	char ca2[300];

	snprintf(ca2, sizeof ca2, "%s/ca.pem", certs2);
	c = lib_connect(h, ca2, NULL, token, false, NULL, &err);
	CHECK(c == NULL && err != NULL && err->kind == SWEREX_ERR_CONNECT);
	if (err != NULL)
		printf("# wrong CA: %s\n", err->message);
	swerex_error_free(err);
	swerex_client_free(c);

	c = lib_connect(h, p_ca, "wrong.example", token, false, NULL, &err);
	CHECK(c == NULL && err != NULL && err->kind == SWEREX_ERR_CONNECT);
	if (err != NULL)
		printf("# hostname mismatch: %s\n", err->message);
	swerex_error_free(err);
	swerex_client_free(c);

	c = lib_connect(h, p_ca, NULL, "wrong-token", false, NULL, &err);
	CHECK(c == NULL && err != NULL &&
	    err->kind == SWEREX_ERR_UNAUTHENTICATED);
	swerex_error_free(err);
	swerex_client_free(c);
}

HTEST_ARGS(lib_tls_expired_certificate, (setup(), expired_args))
{
	struct swerex_error *err = NULL;
	struct swerex_client *c;
	char ca[300];

	snprintf(ca, sizeof ca, "%s/ca.pem", certs2);
	c = lib_connect(h, ca, NULL, token, false, NULL, &err);
	CHECK(c == NULL && err != NULL && err->kind == SWEREX_ERR_CONNECT);
	if (err != NULL)
		printf("# expired: %s\n", err->message);
	swerex_error_free(err);
	swerex_client_free(c);
}

/*
 * A TCP relay between the client and the daemon, in a child process, so
 * the test can cut the network by killing it. Returns its pid; the port it
 * listens on goes to *port (fixed across restarts when given).
 */
static pid_t
relay_start(const char *target, int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof sa;
	int one = 1, lfd, p[2];
	pid_t pid;
	char c;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)*port);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(lfd, 8) < 0 || pipe(p) < 0)
		return -1;
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	*port = ntohs(sa.sin_port);
	if ((pid = fork()) != 0) {
		close(lfd);
		close(p[1]);
		/* Listening already; the child says when it runs. */
		(void)!read(p[0], &c, 1);
		close(p[0]);
		return pid;
	}
	close(p[0]);
	(void)!write(p[1], "r", 1);
	close(p[1]);
	for (;;) {
		struct raw up = raw_connect_tcp(target);
		struct pollfd pf[2];
		char buf[65536];
		int cfd = accept(lfd, NULL, NULL), i;
		ssize_t n;

		if (cfd < 0 || up.fd < 0)
			_exit(1);
		pf[0].fd = cfd;
		pf[1].fd = up.fd;
		pf[0].events = pf[1].events = POLLIN;
		for (;;) {
			if (poll(pf, 2, -1) < 0)
				_exit(1);
			for (i = 0; i < 2; i++) {
				if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				n = read(pf[i].fd, buf, sizeof buf);
				if (n <= 0 || write(pf[1 - i].fd, buf, (size_t)n) != n)
					goto next;
			}
		}
next:
		close(cfd);
		raw_close(&up);
	}
}

/* Stop a relay and reap it. */
static void
relay_stop(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

HTEST_ARGS(lib_reconnect_after_network_drop, (setup(), tls_args))
{
	struct swerex_run_opts ro = { 0 };
	struct harness_reply rep = { 0 }, *slots[1] = { &rep };
	struct swerex_error *err = NULL;
	struct swerex_observation *o;
	struct swerex_client *c;
	struct event_base *base = event_base_new();
	struct swerex_connect_opts opts;
	char url[64], cmd[512], count[512];
	int port = 0;
	pid_t relay;

	REQUIRE(base != NULL);
	REQUIRE(harness_create(harness_client(h), "probe") == 0);
	REQUIRE((relay = relay_start(tls_addr(h), &port)) > 0);
	snprintf(url, sizeof url, "tls://127.0.0.1:%d", port);
	swerex_connect_opts_init(&opts);
	opts.url = url;
	opts.ca_file = p_ca;
	opts.token = token;
	opts.base = base;
	opts.reconnect = true;
	opts.reconnect_timeout = 30;
	opts.connect_timeout = 5;
	if (swerex_connect_with(&opts, &c, &err) != 0)
		harness_show_error("connect", err);
	REQUIRE(c != NULL);
	REQUIRE(harness_create(c, "n") == 0);

	/* The network drops while the command runs, and comes back. */
	snprintf(cmd, sizeof cmd, "echo x >> %s/ran; sleep 1; echo done",
	    harness_dir(h));
	snprintf(count, sizeof count, "wc -l < %s/ran", harness_dir(h));
	ro.command = cmd;
	ro.session = "n";
	ro.check = SWEREX_CHECK_SILENT;
	REQUIRE(swerex_submit_run(c, &ro, false, harness_reply_cb, &rep, &err) != 0);
	/* Wait until the command has started on the daemon. */
	{
		double end = harness_now() + 20;
		char started[600];

		snprintf(started, sizeof started, "test -s %s/ran && echo started",
		    harness_dir(h));
		while (harness_now() < end) {
			o = harness_exec(harness_client(h), "probe", started);
			if (o != NULL && o->output_len > 0) {
				swerex_observation_free(o);
				break;
			}
			swerex_observation_free(o);
			event_base_loop(base, EVLOOP_NONBLOCK);
		}
	}
	relay_stop(relay);
	REQUIRE((relay = relay_start(tls_addr(h), &port)) > 0);
	CHECK(harness_drive(base, slots, 1, 60));
	CHECK(rep.type == SWEREX_REPLY_OBSERVATION);
	if (rep.observation != NULL)
		CHECK_MEM(rep.observation->output, rep.observation->output_len,
		    "done\n");
	else
		harness_reply_show("run", &rep);
	CHECK(swerex_reconnects(c) >= 1);
	/* It ran once, and the session is usable. */
	o = harness_exec(harness_client(h), "probe", count);
	if (o != NULL)
		CHECK_MEM(o->output, o->output_len, "1\n");
	swerex_observation_free(o);
	CHECK_RUN(c, "n", "echo after", "after\n", 0);
	harness_reply_clear(&rep);
	swerex_client_free(c);
	relay_stop(relay);
	event_base_free(base);
}

TAP_MAIN(
	TAP_T(tls_sessions_and_ping),
	TAP_T(wrong_and_missing_token_refused),
	TAP_T(repeated_failures_slowed_down),
	TAP_T(slow_loris_closed_by_deadline),
	TAP_T(large_frame_before_hello_closed),
	TAP_T(old_tls_and_wrong_ca_refused),
	TAP_T(mtls_requires_client_certificate),
	TAP_T(retry_answered_from_cache_not_run_twice),
	TAP_T(sighup_reloads_certificates),
	TAP_T(unsafe_configurations_refused),
	TAP_T(insecure_loopback_tcp),
	TAP_T(unix_uid_allow_list),
	TAP_T(tls_module_loaded_only_for_tls),
	TAP_T(tls_module_missing_is_a_clear_error),
	TAP_T(lib_tls_end_to_end),
	TAP_T(lib_tls_refuses_bad_peers),
	TAP_T(lib_tls_expired_certificate),
	TAP_T(lib_reconnect_after_network_drop),
)
