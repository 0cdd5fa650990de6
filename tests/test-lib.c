/*
 * Unit tests of libswerex against a scripted fake daemon: each test forks a
 * child that accepts a connection on a private socket (Unix, or TCP or TLS
 * on loopback) and plays its part of the protocol with blocking I/O, so the
 * library's behaviour (handshake, conversions, out-of-order replies,
 * streaming, every kind of loss, keepalive, reconnects, TLS verification)
 * is tested without the real swerexd. SIGPIPE keeps its default action on
 * purpose: the library must never raise it.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "swerex.h"
#include "tap.h"
#include "tls.h"
#include "wire.h"

/* A fake daemon: a child process serving one connection (or a few). */
struct fake {
	pid_t pid;
	char dir[64];
	char path[96];
	char url[160];
	int note[2];	/* child to parent: "I got this far" */
};

/* Where a fake listens. */
enum fake_kind {
	FAKE_UNIX,
	FAKE_TCP,	/* 127.0.0.1, plain */
	FAKE_TLS,	/* 127.0.0.1 */
	FAKE_TLS6,	/* ::1 */
};

typedef void (*fake_fn)(int fd);

/* Stop the fake daemon with a diagnostic; the parent sees exit status 1. */
#define FAKE_REQUIRE(c) do { if (!(c)) { \
	printf("# fake daemon: %s:%d: required: %s\n", __FILE__, __LINE__, #c); \
	fflush(stdout); _exit(1); } } while (0)

/* Input buffer of the fake daemon (child only). */
static struct evbuffer *fake_in;
/* The listener, a TLS context and connection, the note pipe (child only). */
static int fake_lfd = -1;
static SSL_CTX *fake_ctx;
static SSL *fake_ssl;
static int fake_note_fd = -1;

/* Read some bytes of the connection: the count, 0 at EOF. */
static ssize_t
fake_read(int fd, char *buf, size_t len)
{
	ssize_t n;

	if (fake_ssl != NULL) {
		n = SSL_read(fake_ssl, buf, (int)len);
		return n > 0 ? n : 0;	/* a TLS error ends it as EOF would */
	}
	do
		n = read(fd, buf, len);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == ECONNRESET)
		return 0;
	FAKE_REQUIRE(n >= 0);
	return n;
}

/* Read the next Request; NULL on EOF. */
static Swerex__V1__Request *
fake_recv(int fd)
{
	ProtobufCMessage *msg;
	char buf[4096];
	ssize_t n;
	int r;

	for (;;) {
		r = wire_take(fake_in, 64 * 1024 * 1024,
		    &swerex__v1__request__descriptor, &msg);
		if (r == WIRE_OK)
			return (Swerex__V1__Request *)msg;
		FAKE_REQUIRE(r == WIRE_AGAIN);
		if ((n = fake_read(fd, buf, sizeof buf)) == 0)
			return NULL;
		evbuffer_add(fake_in, buf, (size_t)n);
	}
}

/*
 * Read the next Request within ms milliseconds (plain sockets only); NULL
 * with *timed_out set if none came, NULL alone on EOF.
 */
static Swerex__V1__Request *
fake_recv_within(int fd, int ms, bool *timed_out)
{
	struct timespec end, now;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	long left;

	*timed_out = false;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (ms % 1000) * 1000000L;
	for (;;) {
		if (evbuffer_get_length(fake_in) >= 5) {
			uint8_t h[5];
			uint32_t len;

			evbuffer_copyout(fake_in, h, 5);
			len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 |
			    (uint32_t)h[3] << 8 | h[4];
			if (evbuffer_get_length(fake_in) >= 5 + (size_t)len)
				return fake_recv(fd);
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (end.tv_sec - now.tv_sec) * 1000 +
		    (end.tv_nsec - now.tv_nsec) / 1000000;
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
			*timed_out = true;
			return NULL;
		}
		{
			char buf[4096];
			ssize_t n = fake_read(fd, buf, sizeof buf);

			if (n == 0)
				return NULL;
			evbuffer_add(fake_in, buf, (size_t)n);
		}
	}
}

/* Write all of len bytes. */
static void
fake_write(int fd, const void *p, size_t len)
{
	const char *c = p;
	ssize_t n;

	while (len > 0) {
		if (fake_ssl != NULL)
			n = SSL_write(fake_ssl, c, (int)len);
		else
			n = write(fd, c, len);
		if (n == -1 && errno == EINTR)
			continue;
		FAKE_REQUIRE(n > 0);
		c += n;
		len -= (size_t)n;
	}
}

/* Send one Response. */
static void
fake_send(int fd, Swerex__V1__Response *resp)
{
	struct evbuffer *out = evbuffer_new();
	size_t len;

	FAKE_REQUIRE(out != NULL && wire_put(out, &resp->base) == 0);
	len = evbuffer_get_length(out);
	fake_write(fd, evbuffer_pullup(out, -1), len);
	evbuffer_free(out);
}

/* Answer the Hello, announcing max_frame. */
static void
fake_hello(int fd, uint64_t max_frame)
{
	Swerex__V1__Request *req = fake_recv(fd);
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__HelloResponse hello = SWEREX__V1__HELLO_RESPONSE__INIT;

	FAKE_REQUIRE(req != NULL);
	FAKE_REQUIRE(req->body_case == SWEREX__V1__REQUEST__BODY_HELLO);
	CHECK_INT(req->hello->protocol_version, 1);
	CHECK_STR(req->hello->client_name, "test-lib");
	CHECK(req->hello->client_version[0] != '\0');
	hello.protocol_version = 1;
	hello.daemon_version = (char *)"fake-1.0";
	hello.max_frame = max_frame;
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hello;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* Answer an IsAlive request with message. */
static void
fake_alive(int fd, uint64_t id, const char *message)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__IsAliveResponse alive = SWEREX__V1__IS_ALIVE_RESPONSE__INIT;

	alive.is_alive = 1;
	alive.message = (char *)message;
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_IS_ALIVE;
	resp.is_alive = &alive;
	fake_send(fd, &resp);
}

/* Answer with an observation of output and, if code >= 0, an exit code. */
static void
fake_observation(int fd, uint64_t id, const char *output, int code)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__BashObservation obs = SWEREX__V1__BASH_OBSERVATION__INIT;

	obs.output.data = (uint8_t *)output;
	obs.output.len = strlen(output);
	obs.output_bytes = obs.output.len;
	if (code >= 0) {
		obs.has_exit_code_case =
		    SWEREX__V1__BASH_OBSERVATION__HAS_EXIT_CODE_EXIT_CODE;
		obs.exit_code = code;
	}
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_OBSERVATION;
	resp.observation = &obs;
	fake_send(fd, &resp);
}

/* Send an output chunk. */
static void
fake_chunk(int fd, uint64_t id, const char *data)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__OutputChunk chunk = SWEREX__V1__OUTPUT_CHUNK__INIT;

	chunk.data.data = (uint8_t *)data;
	chunk.data.len = strlen(data);
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_CHUNK;
	resp.chunk = &chunk;
	fake_send(fd, &resp);
}

/* Send an error of kind for id. */
static void
fake_error(int fd, uint64_t id, int kind, const char *message)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error error = SWEREX__V1__ERROR__INIT;

	error.kind = kind;
	error.message = (char *)message;
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
	resp.error = &error;
	fake_send(fd, &resp);
}

/* Wait for the client to close the connection; require nothing else. */
static void
fake_wait_close(int fd)
{
	Swerex__V1__Request *req = fake_recv(fd);

	if (req != NULL) {
		printf("# fake daemon: unexpected request (body %d)\n",
		    (int)req->body_case);
		fflush(stdout);
		_exit(1);
	}
}

/*
 * Accept the next connection (after a TLS handshake for TLS fakes); reset
 * the input buffer. Return its fd, or -1 if the TLS handshake failed.
 */
static int
fake_accept(void)
{
	int fd;

	do
		fd = accept4(fake_lfd, NULL, NULL, SOCK_CLOEXEC);
	while (fd == -1 && errno == EINTR);
	FAKE_REQUIRE(fd != -1);
	evbuffer_drain(fake_in, evbuffer_get_length(fake_in));
	if (fake_ctx == NULL)
		return fd;
	fake_ssl = SSL_new(fake_ctx);
	FAKE_REQUIRE(fake_ssl != NULL && SSL_set_fd(fake_ssl, fd) == 1);
	if (SSL_accept(fake_ssl) != 1) {
		/*
		 * Read what the client sent until it closes: closing with
		 * unread data would send a reset that can overtake the alert.
		 */
		char buf[4096];

		SSL_free(fake_ssl);
		fake_ssl = NULL;
		shutdown(fd, SHUT_WR);
		while (read(fd, buf, sizeof buf) > 0)
			;
		close(fd);
		return -1;
	}
	return fd;
}

/* Close a connection without a TLS close_notify (a crash, to the client). */
static void
fake_hangup(int fd)
{
	if (fake_ssl != NULL) {
		SSL_free(fake_ssl);
		fake_ssl = NULL;
	}
	if (fd != -1)
		close(fd);
}

/* Close fd and take the next connection (see fake_accept()). */
static int
fake_reaccept(int fd)
{
	fake_hangup(fd);
	return fake_accept();
}

/* Stop listening: the client's next connect is refused. */
static void
fake_unlisten(void)
{
	close(fake_lfd);
	fake_lfd = -1;
}

/* Tell the parent that the fake got this far (see fake_wait_note()). */
static void
fake_note(void)
{
	FAKE_REQUIRE(write(fake_note_fd, "!", 1) == 1);
}

/* Wait until the fake calls fake_note(); false if it exited first. */
static bool
fake_wait_note(struct fake *f)
{
	char c;
	ssize_t n;

	do
		n = read(f->note[0], &c, 1);
	while (n == -1 && errno == EINTR);
	return n == 1;
}

/* Listen on loopback TCP (IPv6 if v6); set *port. The fd, or -1. */
static int
fake_listen_tcp(bool v6, int *port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int lfd;

	memset(&ss, 0, sizeof ss);
	if (v6) {
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		len = sizeof *s6;
	} else {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *s4;
	}
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&ss, len) != 0 ||
	    listen(lfd, 8) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) != 0) {
		if (lfd != -1)
			close(lfd);
		return -1;
	}
	*port = ntohs(v6 ? s6->sin6_port : s4->sin_port);
	return lfd;
}

/*
 * Start a fake daemon of the given kind running fn on its first connection.
 * TLS fakes serve certdir's server certificate and, with client_ca, require
 * a client certificate signed by it; fn gets -1 if the handshake failed.
 */
static void
fake_start_on(struct fake *f, enum fake_kind kind, const char *certdir,
    const char *client_ca, fake_fn fn)
{
	struct sockaddr_un sa;
	char cert[256], key[256], msg[256];
	int lfd, fd, port = 0;

	alarm(30);
	snprintf(f->dir, sizeof f->dir, "/tmp/swerex-test-lib.XXXXXX");
	REQUIRE(mkdtemp(f->dir) != NULL);
	snprintf(f->path, sizeof f->path, "%s/s.sock", f->dir);
	REQUIRE(pipe2(f->note, O_CLOEXEC) == 0);
	if (kind == FAKE_UNIX) {
		snprintf(f->url, sizeof f->url, "unix:%s", f->path);
		memset(&sa, 0, sizeof sa);
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(lfd != -1);
		REQUIRE(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
		REQUIRE(listen(lfd, 8) == 0);
	} else {
		lfd = fake_listen_tcp(kind == FAKE_TLS6, &port);
		REQUIRE(lfd != -1);
		snprintf(f->url, sizeof f->url, kind == FAKE_TCP ?
		    "tcp://127.0.0.1:%d" : kind == FAKE_TLS ?
		    "tls://127.0.0.1:%d" : "tls://[::1]:%d", port);
	}

	fflush(stdout);
	f->pid = fork();
	REQUIRE(f->pid != -1);
	if (f->pid == 0) {
		/* Alarms are not inherited: the fake gets its own watchdog. */
		alarm(30);
		signal(SIGPIPE, SIG_IGN);
		tap_failed_now = 0;
		close(f->note[0]);
		fake_note_fd = f->note[1];
		fake_lfd = lfd;
		fake_in = evbuffer_new();
		FAKE_REQUIRE(fake_in != NULL);
		if (kind == FAKE_TLS || kind == FAKE_TLS6) {
			snprintf(cert, sizeof cert, "%s/server.pem", certdir);
			snprintf(key, sizeof key, "%s/server.key", certdir);
			fake_ctx = tls_server_ctx(cert, key, client_ca, msg,
			    sizeof msg);
			if (fake_ctx == NULL)
				printf("# fake daemon: %s\n", msg);
			FAKE_REQUIRE(fake_ctx != NULL);
		}
		fd = fake_accept();
		fn(fd);
		fake_hangup(fd);
		fflush(stdout);
		_exit(tap_failed_now ? 1 : 0);
	}
	close(lfd);
	close(f->note[1]);
}

/* Start a fake daemon on a Unix socket running fn on its one connection. */
static void
fake_start(struct fake *f, fake_fn fn)
{
	fake_start_on(f, FAKE_UNIX, NULL, NULL, fn);
}

/* Reap the fake daemon, check it was happy, and clean up. */
static void
fake_finish(struct fake *f)
{
	int status;

	while (waitpid(f->pid, &status, 0) == -1 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		tap_diag(__FILE__, __LINE__, "fake daemon failed (status 0x%x)",
		    status);
	close(f->note[0]);
	unlink(f->path);
	rmdir(f->dir);
	alarm(0);
}

/* Connect a blocking client to f; fail the test if that fails. */
static struct swerex_client *
fake_connect(struct fake *f)
{
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	if (swerex_connect(f->url, "test-lib", &c, &e) != 0) {
		tap_diag(__FILE__, __LINE__, "connect: %s",
		    e != NULL ? e->message : "?");
		swerex_error_free(e);
		return NULL;
	}
	return c;
}

/* Fake: answer one IsAlive. */
static void
serve_alive(int fd)
{
	Swerex__V1__Request *req;

	fake_hello(fd, 1024 * 1024);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL);
	FAKE_REQUIRE(req->body_case == SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	CHECK(req->id > 1);
	fake_alive(fd, req->id, "fine");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_wait_close(fd);
}

TEST(handshake_and_is_alive)
{
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	bool alive = false;
	char *msg = NULL;

	fake_start(&f, serve_alive);
	c = fake_connect(&f);
	if (c != NULL) {
		CHECK_STR(swerex_daemon_version(c), "fake-1.0");
		CHECK_INT(swerex_pending(c), 0);
		CHECK_INT(swerex_is_alive(c, &alive, &msg, &e), 0);
		CHECK(alive);
		CHECK_STR(msg, "fine");
		CHECK(e == NULL);
		free(msg);
		swerex_client_free(c);
	}
	fake_finish(&f);
}

/* Fake: refuse the Hello. */
static void
serve_refuse(int fd)
{
	Swerex__V1__Request *req = fake_recv(fd);

	FAKE_REQUIRE(req != NULL);
	fake_error(fd, req->id, SWEREX__V1__ERROR_KIND__UNSUPPORTED_VERSION,
	    "too old");
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* Fake: answer the Hello with a protocol version from the future. */
static void
serve_future(int fd)
{
	Swerex__V1__Request *req = fake_recv(fd);
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__HelloResponse hello = SWEREX__V1__HELLO_RESPONSE__INIT;

	FAKE_REQUIRE(req != NULL);
	hello.protocol_version = 2;
	hello.daemon_version = (char *)"9";
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hello;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* Fake: hang up without answering. */
static void
serve_hangup(int fd)
{
	Swerex__V1__Request *req = fake_recv(fd);

	FAKE_REQUIRE(req != NULL);
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

TEST(handshake_failures)
{
	static const fake_fn fns[] = { serve_refuse, serve_future,
	    serve_hangup };
	static const enum swerex_error_kind kinds[] = {
	    SWEREX_ERR_UNSUPPORTED_VERSION, SWEREX_ERR_UNSUPPORTED_VERSION,
	    SWEREX_ERR_CONNECT };
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e;
	size_t i;

	for (i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		fake_start(&f, fns[i]);
		c = (struct swerex_client *)1;
		e = NULL;
		CHECK_INT(swerex_connect(f.url, "test-lib", &c, &e), -1);
		CHECK(c == NULL);
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, kinds[i]);
		if (i == 0)
			CHECK_STR(e->message, "too old");
		swerex_error_free(e);
		fake_finish(&f);
	}
}

TEST(connect_errors)
{
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	CHECK_INT(swerex_connect("unix:/nonexistent/dir/s.sock", "x", &c, &e),
	    -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_CONNECT);
	CHECK(strstr(e->message, "/nonexistent/dir/s.sock") != NULL);
	CHECK(strstr(e->message, strerror(ENOENT)) != NULL);
	swerex_error_free(e);

	e = NULL;
	CHECK_INT(swerex_connect("http://host:1234", "x", &c, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	CHECK(strstr(e->message, "unsupported URL scheme") != NULL);
	swerex_error_free(e);

	/* tls:// and tcp:// need HOST:PORT. */
	e = NULL;
	CHECK_INT(swerex_connect("tls://host", "x", &c, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	CHECK(strstr(e->message, "HOST:PORT") != NULL);
	swerex_error_free(e);
	e = NULL;
	CHECK_INT(swerex_connect("tcp://[::1:7", "x", &c, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);

	/* Nothing listens on port 1 of loopback: refused at once. */
	e = NULL;
	CHECK_INT(swerex_connect("tcp://127.0.0.1:1", "x", &c, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_CONNECT);
	CHECK(strstr(e->message, "127.0.0.1:1") != NULL);
	CHECK(strstr(e->message, strerror(ECONNREFUSED)) != NULL);
	swerex_error_free(e);

	/* A NULL err must not crash. */
	CHECK_INT(swerex_connect("/nonexistent/s.sock", "x", &c, NULL), -1);
	CHECK(c == NULL);
}

TEST(socket_path_resolution)
{
	char *p;

	unsetenv("SWEREX_URL");
	setenv("XDG_RUNTIME_DIR", "/run/user/77", 1);
	p = swerex_socket_path(NULL);
	CHECK_STR(p, "/run/user/77/swerexd.sock");
	free(p);

	unsetenv("XDG_RUNTIME_DIR");
	p = swerex_socket_path(NULL);
	{
		char want[64];

		snprintf(want, sizeof want, "/tmp/swerexd-%lu/swerexd.sock",
		    (unsigned long)getuid());
		CHECK_STR(p, want);
	}
	free(p);

	setenv("SWEREX_URL", "unix:/a/b.sock", 1);
	p = swerex_socket_path(NULL);
	CHECK_STR(p, "/a/b.sock");
	free(p);
	p = swerex_socket_path("/c/d.sock");
	CHECK_STR(p, "/c/d.sock");
	free(p);
	p = swerex_socket_path("unix:///e.sock");
	CHECK_STR(p, "/e.sock");
	free(p);
	CHECK(swerex_socket_path("tls://h:1") == NULL);
	CHECK(swerex_socket_path("tcp://[::1]:1") == NULL);
	CHECK(swerex_socket_path("ftp://h:1") == NULL);
	CHECK(swerex_socket_path("unix:") == NULL);
	unsetenv("SWEREX_URL");
}

/* Fake: check the fields of runs, creates and interrupts; answer each. */
static void
serve_fields(int fd)
{
	Swerex__V1__Request *req;
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__BashObservation obs = SWEREX__V1__BASH_OBSERVATION__INIT;
	Swerex__V1__CreateSessionResponse cs =
	    SWEREX__V1__CREATE_SESSION_RESPONSE__INIT;
	static const uint8_t out[] = "a\0b";

	fake_hello(fd, 1024 * 1024);

	/* A run with every default. */
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	CHECK_STR(req->run->command, "true");
	CHECK_STR(req->run->session, "");
	CHECK_INT(req->run->has_timeout_case,
	    SWEREX__V1__BASH_ACTION__HAS_TIMEOUT__NOT_SET);
	CHECK_INT(req->run->has_max_output_case,
	    SWEREX__V1__BASH_ACTION__HAS_MAX_OUTPUT__NOT_SET);
	CHECK_INT(req->run->check, SWEREX__V1__CHECK__CHECK_RAISE);
	CHECK(!req->run->stream);
	CHECK_INT(req->run->n_expect, 0);
	obs.output.data = (uint8_t *)out;
	obs.output.len = 3;
	obs.has_exit_code_case =
	    SWEREX__V1__BASH_OBSERVATION__HAS_EXIT_CODE_EXIT_CODE;
	obs.exit_code = 0;
	obs.truncated = 1;
	obs.output_bytes = 1000;
	obs.carried_over = 1;
	obs.expect_string = (char *)"$ ";
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_OBSERVATION;
	resp.observation = &obs;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* A run with every option set. */
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	CHECK_STR(req->run->session, "s1");
	CHECK_INT(req->run->has_timeout_case,
	    SWEREX__V1__BASH_ACTION__HAS_TIMEOUT_TIMEOUT);
	CHECK(req->run->timeout == 0.0);
	CHECK_INT(req->run->has_max_output_case,
	    SWEREX__V1__BASH_ACTION__HAS_MAX_OUTPUT_MAX_OUTPUT);
	CHECK_INT(req->run->max_output, 4096);
	CHECK_INT(req->run->check, SWEREX__V1__CHECK__CHECK_IGNORE);
	CHECK(req->run->is_interactive_command);
	CHECK(req->run->is_interactive_quit);
	CHECK_STR(req->run->error_msg, "oops");
	REQUIRE(req->run->n_expect == 2);
	CHECK_STR(req->run->expect[1], ">>> ");
	fake_observation(fd, req->id, "", -1);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* Create with defaults, then with options. */
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_CREATE_SESSION);
	CHECK_STR(req->create_session->session, "");
	CHECK_INT(req->create_session->has_startup_timeout_case,
	    SWEREX__V1__CREATE_SESSION_REQUEST__HAS_STARTUP_TIMEOUT__NOT_SET);
	cs.output.data = (uint8_t *)"motd\n";
	cs.output.len = 5;
	cs.session = (char *)"default";
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_CREATE_SESSION;
	resp.create_session = &cs;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_CREATE_SESSION);
	CHECK_STR(req->create_session->session, "s2");
	CHECK_INT(req->create_session->has_startup_timeout_case,
	    SWEREX__V1__CREATE_SESSION_REQUEST__HAS_STARTUP_TIMEOUT_STARTUP_TIMEOUT);
	CHECK(req->create_session->startup_timeout == 3.5);
	REQUIRE(req->create_session->n_startup_source == 1);
	CHECK_STR(req->create_session->startup_source[0], "/etc/x");
	resp.id = req->id;
	cs.output.len = 0;
	cs.output.data = NULL;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* Interrupts: defaults not sent; n_retry 0 sent when asked. */
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_INTERRUPT);
	CHECK_INT(req->interrupt->has_timeout_case,
	    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_TIMEOUT__NOT_SET);
	CHECK_INT(req->interrupt->has_n_retry_case,
	    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_N_RETRY__NOT_SET);
	fake_observation(fd, req->id, "^C", 130);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_INTERRUPT);
	CHECK_STR(req->interrupt->session, "s3");
	CHECK_INT(req->interrupt->has_timeout_case,
	    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_TIMEOUT_TIMEOUT);
	CHECK(req->interrupt->timeout == 0.5);
	CHECK_INT(req->interrupt->has_n_retry_case,
	    SWEREX__V1__BASH_INTERRUPT_ACTION__HAS_N_RETRY_N_RETRY);
	CHECK_INT(req->interrupt->n_retry, 0);
	fake_observation(fd, req->id, "", -1);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	fake_wait_close(fd);
}

TEST(request_fields_and_conversions)
{
	static const char *const expect[] = { "$ ", ">>> " };
	static const char *const sources[] = { "/etc/x" };
	struct swerex_run_opts run = { .command = "true" };
	struct swerex_create_opts create = { 0 };
	struct swerex_interrupt_opts intr = { 0 };
	struct fake f;
	struct swerex_client *c;
	struct swerex_observation *o = NULL;
	struct swerex_error *e = NULL;
	char *out = NULL;
	size_t len = 99;

	fake_start(&f, serve_fields);
	c = fake_connect(&f);
	if (c == NULL)
		goto done;

	REQUIRE(swerex_run(c, &run, &o, &e) == 0);
	CHECK_INT(o->output_len, 3);
	CHECK(memcmp(o->output, "a\0b", 4) == 0);	/* NUL-terminated */
	CHECK(o->has_exit_code);
	CHECK_INT(o->exit_code, 0);
	CHECK(o->truncated);
	CHECK_INT(o->output_bytes, 1000);
	CHECK_INT(o->carried_over, 1);
	CHECK_STR(o->expect_string, "$ ");
	CHECK_STR(o->failure_reason, "");
	swerex_observation_free(o);

	run.session = "s1";
	run.has_timeout = true;
	run.timeout = 0;
	run.max_output = 4096;
	run.check = SWEREX_CHECK_IGNORE;
	run.is_interactive_command = true;
	run.is_interactive_quit = true;
	run.error_msg = "oops";
	run.expect = expect;
	run.n_expect = 2;
	REQUIRE(swerex_run(c, &run, &o, &e) == 0);
	CHECK(!o->has_exit_code);
	CHECK_INT(o->output_len, 0);
	CHECK_STR(o->output, "");
	swerex_observation_free(o);

	REQUIRE(swerex_create_session(c, NULL, &out, &len, &e) == 0);
	CHECK_MEM(out, len, "motd\n");
	free(out);
	create.session = "s2";
	create.startup_timeout = 3.5;
	create.startup_source = sources;
	create.n_startup_source = 1;
	REQUIRE(swerex_create_session(c, &create, &out, &len, &e) == 0);
	CHECK_INT(len, 0);
	CHECK_STR(out, "");
	free(out);

	REQUIRE(swerex_interrupt(c, NULL, &o, &e) == 0);
	CHECK_STR(o->output, "^C");
	CHECK_INT(o->exit_code, 130);
	swerex_observation_free(o);
	intr.session = "s3";
	intr.timeout = 0.5;
	intr.has_n_retry = true;
	REQUIRE(swerex_interrupt(c, &intr, NULL, &e) == 0);

	swerex_client_free(c);
done:
	fake_finish(&f);
}

/* Fake: answer a run with an error carrying extras and an observation. */
static void
serve_error(int fd)
{
	Swerex__V1__Request *req;
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error error = SWEREX__V1__ERROR__INIT;
	Swerex__V1__Error__ExtraEntry x1 = SWEREX__V1__ERROR__EXTRA_ENTRY__INIT;
	Swerex__V1__Error__ExtraEntry x2 = SWEREX__V1__ERROR__EXTRA_ENTRY__INIT;
	Swerex__V1__Error__ExtraEntry *extra[] = { &x1, &x2 };
	Swerex__V1__BashObservation obs = SWEREX__V1__BASH_OBSERVATION__INIT;
	int i;

	fake_hello(fd, 1024 * 1024);
	for (i = 0; i < 3; i++) {
		req = fake_recv(fd);
		FAKE_REQUIRE(req != NULL &&
		    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
		error.kind = SWEREX__V1__ERROR_KIND__COMMAND_TIMEOUT;
		error.message = (char *)"timed out after 1 s";
		x1.key = (char *)"timeout";
		x1.value = (char *)"1";
		x2.key = (char *)"session";
		x2.value = (char *)"default";
		error.n_extra = 2;
		error.extra = extra;
		obs.output.data = (uint8_t *)"partial";
		obs.output.len = 7;
		error.observation = &obs;
		if (i == 2) {
			/* A kind this library does not know yet. */
			error.kind = (Swerex__V1__ErrorKind)77;
			error.n_extra = 0;
			error.observation = NULL;
		}
		resp.id = req->id;
		resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
		resp.error = &error;
		fake_send(fd, &resp);
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	fake_wait_close(fd);
}

TEST(daemon_errors)
{
	struct swerex_run_opts run = { .command = "sleep 9" };
	struct fake f;
	struct swerex_client *c;
	struct swerex_observation *o = NULL;
	struct swerex_error *e = NULL, *copy;

	fake_start(&f, serve_error);
	c = fake_connect(&f);
	if (c == NULL)
		goto done;
	CHECK_INT(swerex_run(c, &run, &o, &e), -1);
	CHECK(o == NULL);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_COMMAND_TIMEOUT);
	CHECK_STR(swerex_error_kind_name(e->kind), "COMMAND_TIMEOUT");
	CHECK_STR(e->message, "timed out after 1 s");
	CHECK_INT(e->n_extra, 2);
	CHECK_STR(swerex_error_extra(e, "session"), "default");
	CHECK(swerex_error_extra(e, "nope") == NULL);
	REQUIRE(e->observation != NULL);
	CHECK_MEM(e->observation->output, e->observation->output_len,
	    "partial");

	copy = swerex_error_dup(e);
	REQUIRE(copy != NULL);
	CHECK_STR(swerex_error_extra(copy, "timeout"), "1");
	CHECK_MEM(copy->observation->output, copy->observation->output_len,
	    "partial");
	swerex_error_free(copy);
	swerex_error_free(e);

	/* With err NULL the error is freed, not leaked or dereferenced. */
	CHECK_INT(swerex_run(c, &run, NULL, NULL), -1);

	e = NULL;
	CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, 77);
	CHECK_STR(swerex_error_kind_name(e->kind), "UNKNOWN");
	CHECK(e->observation == NULL);
	swerex_error_free(e);
	swerex_client_free(c);
done:
	fake_finish(&f);
}

/* Fake: stream two runs as three chunks each. */
static void
serve_stream(int fd)
{
	Swerex__V1__Request *req;
	int i;

	fake_hello(fd, 1024 * 1024);
	for (i = 0; i < 2; i++) {
		req = fake_recv(fd);
		FAKE_REQUIRE(req != NULL &&
		    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
		CHECK(req->run->stream);
		fake_chunk(fd, req->id, "1\n");
		fake_chunk(fd, req->id, "2\n");
		fake_chunk(fd, req->id, "3\n");
		fake_observation(fd, req->id, "1\n2\n3\n", 0);
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	fake_wait_close(fd);
}

struct chunks {
	char buf[64];
	size_t len;
	int n;
	int final;
	uint64_t id;
	size_t pending_in_chunk;
};

/* Collect streamed output (blocking run). */
static void
collect_chunk(const char *data, size_t len, void *arg)
{
	struct chunks *ch = arg;

	if (ch->len + len <= sizeof ch->buf) {
		memcpy(ch->buf + ch->len, data, len);
		ch->len += len;
	}
	ch->n++;
}

/* Collect streamed output and the final reply (event-driven run). */
static void
collect_reply(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct chunks *ch = arg;

	CHECK_INT(r->id, ch->id);
	if (r->type == SWEREX_REPLY_CHUNK) {
		CHECK(!ch->final);
		ch->pending_in_chunk = swerex_pending(c);
		collect_chunk(r->data, r->len, ch);
		return;
	}
	CHECK_INT(r->type, SWEREX_REPLY_OBSERVATION);
	if (r->type == SWEREX_REPLY_OBSERVATION)
		CHECK_STR(r->observation->output, "1\n2\n3\n");
	CHECK_INT(swerex_pending(c), 0);
	ch->final++;
}

/* Connect an event-driven client to f on base; fail the test if that fails. */
static struct swerex_client *
fake_connect_base(struct fake *f, struct event_base *base)
{
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	if (swerex_connect_base(base, f->url, "test-lib", &c, &e) != 0) {
		tap_diag(__FILE__, __LINE__, "connect: %s",
		    e != NULL ? e->message : "?");
		swerex_error_free(e);
		return NULL;
	}
	return c;
}

/* Run base until *counter reaches n; false if the loop ran dry first. */
static bool
drive(struct event_base *base, const int *counter, int n)
{
	while (*counter < n) {
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			return false;
	}
	return true;
}

TEST(streaming)
{
	struct swerex_run_opts run = { .command = "seq 3" };
	struct event_base *base = event_base_new();
	struct fake f;
	struct swerex_client *c;
	struct swerex_observation *o = NULL;
	struct swerex_error *e = NULL;
	struct chunks ch;

	REQUIRE(base != NULL);
	fake_start(&f, serve_stream);
	c = fake_connect_base(&f, base);
	if (c == NULL)
		goto done;

	/* Blocking, on the caller's base. */
	memset(&ch, 0, sizeof ch);
	run.on_chunk = collect_chunk;
	run.chunk_arg = &ch;
	REQUIRE(swerex_run(c, &run, &o, &e) == 0);
	CHECK_INT(ch.n, 3);
	CHECK_MEM(ch.buf, ch.len, "1\n2\n3\n");
	CHECK_STR(o->output, "1\n2\n3\n");
	swerex_observation_free(o);

	/* Event-driven: chunks, then the final reply. */
	memset(&ch, 0, sizeof ch);
	ch.id = swerex_submit_run(c, &run, true, collect_reply, &ch, &e);
	REQUIRE(ch.id != 0);
	CHECK_INT(swerex_pending(c), 1);
	CHECK(drive(base, &ch.final, 1));
	CHECK_INT(ch.final, 1);
	CHECK_INT(ch.n, 3);
	CHECK_INT(ch.pending_in_chunk, 1);
	CHECK_MEM(ch.buf, ch.len, "1\n2\n3\n");
	swerex_client_free(c);
done:
	fake_finish(&f);
	event_base_free(base);
}

#define MANY 300

/* Fake: read MANY IsAlive requests, answer them in reverse order. */
static void
serve_many(int fd)
{
	Swerex__V1__Request *req[MANY];
	char msg[32];
	int i;

	fake_hello(fd, 1024 * 1024);
	for (i = 0; i < MANY; i++) {
		req[i] = fake_recv(fd);
		FAKE_REQUIRE(req[i] != NULL);
		FAKE_REQUIRE(req[i]->body_case ==
		    SWEREX__V1__REQUEST__BODY_IS_ALIVE);
		if (i > 0)
			CHECK(req[i]->id > req[i - 1]->id);
	}
	for (i = MANY - 1; i >= 0; i--) {
		snprintf(msg, sizeof msg, "m%llu",
		    (unsigned long long)req[i]->id);
		fake_alive(fd, req[i]->id, msg);
		protobuf_c_message_free_unpacked(&req[i]->base, NULL);
	}
	fake_wait_close(fd);
}

struct many {
	uint64_t ids[MANY];
	int seen[MANY];
	int done;
	int bad;
};

/* Check a reply against the id it was submitted under. */
static void
many_cb(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct many *m = arg;
	char want[32];
	size_t i;

	for (i = 0; i < MANY; i++) {
		if (m->ids[i] == r->id)
			break;
	}
	if (i == MANY || r->type != SWEREX_REPLY_ALIVE) {
		m->bad++;
		m->done++;
		return;
	}
	snprintf(want, sizeof want, "m%llu", (unsigned long long)r->id);
	if (strcmp(r->message, want) != 0 || !r->is_alive)
		m->bad++;
	m->seen[i]++;
	m->done++;
}

TEST(many_in_flight_out_of_order)
{
	struct event_base *base = event_base_new();
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	struct many m;
	int i;

	REQUIRE(base != NULL);
	memset(&m, 0, sizeof m);
	fake_start(&f, serve_many);
	c = fake_connect_base(&f, base);
	if (c == NULL)
		goto done;
	for (i = 0; i < MANY; i++) {
		m.ids[i] = swerex_submit_is_alive(c, many_cb, &m, &e);
		REQUIRE(m.ids[i] != 0);
		if (i > 0)
			CHECK(m.ids[i] == m.ids[i - 1] + 1);
	}
	CHECK_INT(swerex_pending(c), MANY);
	CHECK(drive(base, &m.done, MANY));
	CHECK_INT(m.bad, 0);
	for (i = 0; i < MANY; i++)
		CHECK_INT(m.seen[i], 1);
	CHECK_INT(swerex_pending(c), 0);
	swerex_client_free(c);
done:
	fake_finish(&f);
	event_base_free(base);
}

/* A record of the final replies a callback got. */
struct finals {
	int n;
	int chunks;
	enum swerex_error_kind kinds[8];
	char messages[8][128];
};

/* Record a final error reply. */
static void
record_cb(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct finals *fs = arg;

	if (r->type == SWEREX_REPLY_CHUNK) {
		fs->chunks++;
		return;
	}
	if (fs->n < 8 && r->type == SWEREX_REPLY_ERROR) {
		fs->kinds[fs->n] = r->error->kind;
		snprintf(fs->messages[fs->n], sizeof fs->messages[0], "%s",
		    r->error->message);
	} else if (fs->n < 8)
		fs->kinds[fs->n] = (enum swerex_error_kind)-1;
	fs->n++;
}

/* Fake: read three requests, then hang up. */
static void
serve_read3_close(int fd)
{
	Swerex__V1__Request *req;
	int i;

	fake_hello(fd, 1024 * 1024);
	for (i = 0; i < 3; i++) {
		req = fake_recv(fd);
		FAKE_REQUIRE(req != NULL);
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
}

/* Fake: read three requests, then send a connection-level error. */
static void
serve_read3_conn_error(int fd)
{
	serve_read3_close(fd);
	fake_error(fd, 0, SWEREX__V1__ERROR_KIND__PROTOCOL_ERROR,
	    "frame too large");
}

/* Fake: read three requests, then send a frame with a bad flag. */
static void
serve_read3_bad_frame(int fd)
{
	static const uint8_t bad[] = { 1, 0, 0, 0, 0 };

	serve_read3_close(fd);
	fake_write(fd, bad, sizeof bad);
	fake_wait_close(fd);
}

TEST(loss_fails_every_pending_request)
{
	static const fake_fn fns[] = { serve_read3_close,
	    serve_read3_conn_error, serve_read3_bad_frame };
	static const enum swerex_error_kind kinds[] = {
	    SWEREX_ERR_DISCONNECTED, SWEREX_ERR_PROTOCOL, SWEREX_ERR_PROTOCOL };
	struct swerex_run_opts run = { .command = "sleep 100" };
	struct event_base *base = event_base_new();
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	struct finals fs;
	size_t i;
	int j;

	REQUIRE(base != NULL);
	for (i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		memset(&fs, 0, sizeof fs);
		fake_start(&f, fns[i]);
		c = fake_connect_base(&f, base);
		if (c == NULL) {
			fake_finish(&f);
			continue;
		}
		for (j = 0; j < 3; j++)
			REQUIRE(swerex_submit_run(c, &run, true, record_cb, &fs,
			    &e) != 0);
		CHECK(drive(base, &fs.n, 3));
		CHECK_INT(fs.n, 3);
		for (j = 0; j < 3; j++)
			CHECK_INT(fs.kinds[j], kinds[i]);
		if (i == 0)
			CHECK_STR(fs.messages[0], "connection to swerexd lost");
		if (i == 1)
			CHECK_STR(fs.messages[2], "frame too large");
		CHECK_INT(swerex_pending(c), 0);

		/* A dead client fails at once, blocking or not. */
		CHECK_INT(swerex_submit_is_alive(c, record_cb, &fs, &e), 0);
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_DISCONNECTED);
		swerex_error_free(e);
		e = NULL;
		CHECK_INT(swerex_is_alive(c, NULL, NULL, &e), -1);
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_DISCONNECTED);
		swerex_error_free(e);
		e = NULL;
		CHECK_INT(fs.n, 3);
		swerex_client_free(c);
		CHECK_INT(fs.n, 3);	/* each callback runs exactly once */
		fake_finish(&f);
	}
	event_base_free(base);
}

/* Fake: read two requests and wait for the client to go. */
static void
serve_read2_wait(int fd)
{
	Swerex__V1__Request *req;
	int i;

	fake_hello(fd, 1024 * 1024);
	for (i = 0; i < 2; i++) {
		req = fake_recv(fd);
		FAKE_REQUIRE(req != NULL);
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	fake_wait_close(fd);
}

TEST(free_fails_pending)
{
	struct swerex_run_opts run = { .command = "sleep 100" };
	struct event_base *base = event_base_new();
	struct fake f;
	struct swerex_client *c;
	struct finals fs;

	REQUIRE(base != NULL);
	memset(&fs, 0, sizeof fs);
	fake_start(&f, serve_read2_wait);
	c = fake_connect_base(&f, base);
	if (c != NULL) {
		REQUIRE(swerex_submit_run(c, &run, false, record_cb, &fs,
		    NULL) != 0);
		REQUIRE(swerex_submit_run(c, &run, false, record_cb, &fs,
		    NULL) != 0);
		/* Let the requests reach the fake before closing. */
		event_base_loop(base, EVLOOP_NONBLOCK);
		CHECK_INT(fs.n, 0);
		swerex_client_free(c);
		CHECK_INT(fs.n, 2);
		CHECK_INT(fs.kinds[0], SWEREX_ERR_DISCONNECTED);
		CHECK_INT(fs.kinds[1], SWEREX_ERR_DISCONNECTED);
	}
	fake_finish(&f);
	event_base_free(base);
}

/* Fake: stop reading (the client's writes then fail) and wait to be told. */
static void
serve_shut_read(int fd)
{
	char c;

	fake_hello(fd, 64 * 1024 * 1024);
	shutdown(fd, SHUT_RD);
	/* read() sees EOF at once; the fake then exits and the socket closes:
	 * either way the client's writes fail with EPIPE. */
	while (read(fd, &c, 1) > 0)
		;
}

TEST(dead_peer_raises_no_sigpipe)
{
	struct swerex_run_opts run = { 0 };
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	char *big;

	/* SIGPIPE keeps its default action: raising it would kill us. */
	signal(SIGPIPE, SIG_DFL);
	big = malloc(1024 * 1024);
	REQUIRE(big != NULL);
	memset(big, 'x', 1024 * 1024 - 1);
	big[1024 * 1024 - 1] = '\0';
	run.command = big;

	fake_start(&f, serve_shut_read);
	c = fake_connect(&f);
	if (c != NULL) {
		CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_DISCONNECTED);
		swerex_error_free(e);
		swerex_client_free(c);
	}
	free(big);
	fake_finish(&f);
}

/* Fake: announce a small frame limit, then answer one IsAlive. */
static void
serve_small_frames(int fd)
{
	Swerex__V1__Request *req;

	fake_hello(fd, 1024);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL);
	CHECK_INT(req->body_case, SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	fake_alive(fd, req->id, "");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_wait_close(fd);
}

TEST(bad_arguments)
{
	static const char *const holes[] = { "a", NULL };
	struct swerex_run_opts run = { 0 };
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	char big[2048];

	fake_start(&f, serve_small_frames);
	c = fake_connect(&f);
	if (c == NULL)
		goto done;

	CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	CHECK_INT(swerex_run(c, NULL, NULL, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);

	run.command = "true";
	run.expect = holes;
	run.n_expect = 2;
	CHECK_INT(swerex_submit_run(c, &run, false, NULL, NULL, &e), 0);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);

	run.n_expect = 0;
	run.check = (enum swerex_check)9;
	CHECK_INT(swerex_submit_run(c, &run, false, NULL, NULL, &e), 0);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);

	/* Above the daemon's frame limit: refused, connection unharmed. */
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	run.check = SWEREX_CHECK_RAISE;
	run.command = big;
	CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	CHECK_INT(swerex_pending(c), 0);

	CHECK_INT(swerex_is_alive(c, NULL, NULL, &e), 0);
	CHECK_INT(swerex_submit_is_alive(NULL, NULL, NULL, &e), 0);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	swerex_client_free(c);
done:
	fake_finish(&f);
}

struct nested {
	int rc;
	enum swerex_error_kind kind;
	int done;
};

/* Try a blocking call from a callback of the same client. */
static void
nested_cb(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct nested *n = arg;
	struct swerex_error *e = NULL;

	n->rc = swerex_is_alive(c, NULL, NULL, &e);
	n->kind = e != NULL ? e->kind : SWEREX_ERR_UNSPECIFIED;
	swerex_error_free(e);
	n->done++;
}

TEST(blocking_call_in_callback_refused)
{
	struct event_base *base = event_base_new();
	struct fake f;
	struct swerex_client *c;
	struct nested n = { 0 };

	REQUIRE(base != NULL);
	fake_start(&f, serve_alive);
	c = fake_connect_base(&f, base);
	if (c != NULL) {
		REQUIRE(swerex_submit_is_alive(c, nested_cb, &n, NULL) != 0);
		CHECK(drive(base, &n.done, 1));
		CHECK_INT(n.rc, -1);
		CHECK_INT(n.kind, SWEREX_ERR_BAD_ARGUMENT);
		swerex_client_free(c);
	}
	fake_finish(&f);
	event_base_free(base);
}

/* Fake: list two sessions. */
static void
serve_list(int fd)
{
	Swerex__V1__Request *req;
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__ListSessionsResponse list =
	    SWEREX__V1__LIST_SESSIONS_RESPONSE__INIT;
	Swerex__V1__SessionInfo a = SWEREX__V1__SESSION_INFO__INIT;
	Swerex__V1__SessionInfo b = SWEREX__V1__SESSION_INFO__INIT;
	Swerex__V1__SessionInfo *v[] = { &a, &b };
	Swerex__V1__CloseSessionResponse closed =
	    SWEREX__V1__CLOSE_SESSION_RESPONSE__INIT;

	fake_hello(fd, 1024 * 1024);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_LIST_SESSIONS);
	a.name = (char *)"default";
	a.pid = 123;
	a.state = SWEREX__V1__SESSION_STATE__SESSION_STATE_RUNNING;
	a.created = 1700000000.5;
	a.last_command = (char *)"make";
	b.name = (char *)"gone";
	b.state = SWEREX__V1__SESSION_STATE__SESSION_STATE_DEAD;
	b.exit_status = 9;
	list.n_sessions = 2;
	list.sessions = v;
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_LIST_SESSIONS;
	resp.list_sessions = &list;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_CLOSE_SESSION);
	CHECK_STR(req->close_session->session, "gone");
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_CLOSE_SESSION;
	resp.close_session = &closed;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* A reply of the wrong type for a close. */
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL);
	fake_alive(fd, req->id, "");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_wait_close(fd);
}

TEST(sessions_and_close)
{
	struct fake f;
	struct swerex_client *c;
	struct swerex_session_info *s = NULL;
	struct swerex_error *e = NULL;
	size_t n = 0;

	fake_start(&f, serve_list);
	c = fake_connect(&f);
	if (c == NULL)
		goto done;
	REQUIRE(swerex_list_sessions(c, &s, &n, &e) == 0);
	REQUIRE(n == 2);
	CHECK_STR(s[0].name, "default");
	CHECK_INT(s[0].pid, 123);
	CHECK_INT(s[0].state, SWEREX_SESSION_RUNNING);
	CHECK(s[0].created == 1700000000.5);
	CHECK_STR(s[0].last_command, "make");
	CHECK_STR(s[1].name, "gone");
	CHECK_INT(s[1].state, SWEREX_SESSION_DEAD);
	CHECK_INT(s[1].exit_status, 9);
	CHECK_STR(s[1].last_command, "");
	swerex_sessions_free(s, n);

	CHECK_INT(swerex_close_session(c, "gone", &e), 0);
	CHECK_INT(swerex_close_session(c, "x", &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_PROTOCOL);
	swerex_error_free(e);
	swerex_client_free(c);
done:
	fake_finish(&f);
}

#define BIG (32 * 1024 * 1024)

/* Fake: answer a run with a 32 MiB observation. */
static void
serve_big(int fd)
{
	Swerex__V1__Request *req;
	char *out;

	fake_hello(fd, 1024 * 1024);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL);
	out = malloc(BIG + 1);
	FAKE_REQUIRE(out != NULL);
	memset(out, 'z', BIG);
	out[BIG - 1] = '!';
	out[BIG] = '\0';
	fake_observation(fd, req->id, out, 0);
	free(out);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_wait_close(fd);
}

TEST(large_reply)
{
	struct swerex_run_opts run = { .command = "yes z | head -c 32M" };
	struct fake f;
	struct swerex_client *c;
	struct swerex_observation *o = NULL;
	struct swerex_error *e = NULL;

	fake_start(&f, serve_big);
	c = fake_connect(&f);
	if (c != NULL) {
		REQUIRE(swerex_run(c, &run, &o, &e) == 0);
		CHECK_INT(o->output_len, BIG);
		CHECK(o->output[0] == 'z' && o->output[BIG - 1] == '!' &&
		    o->output[BIG] == '\0');
		swerex_observation_free(o);
		swerex_client_free(c);
	}
	fake_finish(&f);
}

/* Send an ExecuteResponse, or an Error of kind carrying it if kind != 0. */
static void
fake_exec_reply(int fd, uint64_t id, Swerex__V1__ExecuteResponse *er,
    int kind, const char *message)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Error error = SWEREX__V1__ERROR__INIT;
	Swerex__V1__Error__ExtraEntry x = SWEREX__V1__ERROR__EXTRA_ENTRY__INIT;
	Swerex__V1__Error__ExtraEntry *extra[] = { &x };

	resp.id = id;
	if (kind == 0) {
		resp.body_case = SWEREX__V1__RESPONSE__BODY_EXECUTE;
		resp.execute = er;
	} else {
		error.kind = kind;
		error.message = (char *)message;
		x.key = (char *)"exit_code";
		x.value = (char *)"1";
		error.n_extra = 1;
		error.extra = extra;
		error.execute = er;
		resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
		resp.error = &error;
	}
	fake_send(fd, &resp);
}

/* Send a labelled output chunk. */
static void
fake_stream_chunk(int fd, uint64_t id, int stream, const char *data)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__OutputChunk chunk = SWEREX__V1__OUTPUT_CHUNK__INIT;

	chunk.data.data = (uint8_t *)data;
	chunk.data.len = strlen(data);
	chunk.stream = (Swerex__V1__OutputStream)stream;
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_CHUNK;
	resp.chunk = &chunk;
	fake_send(fd, &resp);
}

/* Receive the next request and require its body to be of case body. */
static Swerex__V1__Request *
fake_expect(int fd, int body)
{
	Swerex__V1__Request *req = fake_recv(fd);

	FAKE_REQUIRE(req != NULL);
	if ((int)req->body_case != body) {
		printf("# fake daemon: body %d, expected %d\n",
		    (int)req->body_case, body);
		fflush(stdout);
		_exit(1);
	}
	return req;
}

/* Fake: check the fields of executes and answer each. */
static void
serve_exec(int fd)
{
	Swerex__V1__Request *req;
	Swerex__V1__ExecuteRequest *x;
	Swerex__V1__ExecuteResponse er = SWEREX__V1__EXECUTE_RESPONSE__INIT;
	static const uint8_t out[] = "a\0b";

	fake_hello(fd, 1024 * 1024);

	/* Every default. */
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_EXECUTE);
	x = req->execute;
	FAKE_REQUIRE(x->n_argv == 2);
	CHECK_STR(x->argv[0], "echo");
	CHECK_STR(x->argv[1], "hi");
	CHECK(!x->shell);
	CHECK_STR(x->command, "");
	CHECK_INT(x->n_env, 0);
	CHECK(!x->replace_env);
	CHECK_STR(x->cwd, "");
	CHECK(!x->check);
	CHECK_STR(x->error_msg, "");
	CHECK(!x->merge_output_streams);
	CHECK(!x->stream);
	CHECK_INT(x->has_timeout_case,
	    SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT__NOT_SET);
	CHECK_INT(x->has_stdin_case,
	    SWEREX__V1__EXECUTE_REQUEST__HAS_STDIN__NOT_SET);
	CHECK_INT(x->has_max_output_case,
	    SWEREX__V1__EXECUTE_REQUEST__HAS_MAX_OUTPUT__NOT_SET);
	er.stdout.data = (uint8_t *)out;
	er.stdout.len = 3;
	er.stderr.data = (uint8_t *)"err";
	er.stderr.len = 3;
	er.has_exit_code_case =
	    SWEREX__V1__EXECUTE_RESPONSE__HAS_EXIT_CODE_EXIT_CODE;
	er.exit_code = 3;
	er.stdout_truncated = 1;
	er.stdout_bytes = 1000;
	er.stderr_bytes = 3;
	fake_exec_reply(fd, req->id, &er, 0, NULL);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* Every option, streamed: labelled chunks, then killed by a signal. */
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_EXECUTE);
	x = req->execute;
	CHECK_INT(x->n_argv, 0);
	CHECK(x->shell);
	CHECK_STR(x->command, "echo $X");
	FAKE_REQUIRE(x->n_env == 2);
	CHECK_STR(x->env[0]->key, "X");
	CHECK_STR(x->env[0]->value, "1");
	CHECK_STR(x->env[1]->key, "Y");
	CHECK_STR(x->env[1]->value, "a=b");
	CHECK(x->replace_env);
	CHECK_STR(x->cwd, "/tmp");
	CHECK(x->check);
	CHECK_STR(x->error_msg, "oops");
	CHECK(x->merge_output_streams);
	CHECK(x->stream);
	CHECK_INT(x->has_timeout_case,
	    SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT);
	CHECK(x->timeout == 2.5);
	CHECK_INT(x->has_stdin_case,
	    SWEREX__V1__EXECUTE_REQUEST__HAS_STDIN_STDIN);
	CHECK_MEM(x->stdin.data, x->stdin.len, "in");
	CHECK_INT(x->has_max_output_case,
	    SWEREX__V1__EXECUTE_REQUEST__HAS_MAX_OUTPUT_MAX_OUTPUT);
	CHECK_INT(x->max_output, 4096);
	fake_stream_chunk(fd, req->id, 1, "o1");
	fake_stream_chunk(fd, req->id, 2, "e1");
	fake_stream_chunk(fd, req->id, 1, "o2");
	memset(&er, 0, sizeof er);
	swerex__v1__execute_response__init(&er);
	er.stdout.data = (uint8_t *)"o1o2";
	er.stdout.len = 4;
	er.signal = 9;
	er.stderr_truncated = 1;
	fake_exec_reply(fd, req->id, &er, 0, NULL);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* A failure carrying the output. */
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_EXECUTE);
	swerex__v1__execute_response__init(&er);
	er.stdout.data = (uint8_t *)"partial";
	er.stdout.len = 7;
	er.has_exit_code_case =
	    SWEREX__V1__EXECUTE_RESPONSE__HAS_EXIT_CODE_EXIT_CODE;
	er.exit_code = 1;
	er.failure_reason = (char *)"why";
	fake_exec_reply(fd, req->id, &er,
	    SWEREX__V1__ERROR_KIND__NON_ZERO_EXIT_CODE, "failed");
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* Event-driven and streamed, with empty stdin. */
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_EXECUTE);
	x = req->execute;
	CHECK(x->stream);
	CHECK_INT(x->has_stdin_case,
	    SWEREX__V1__EXECUTE_REQUEST__HAS_STDIN_STDIN);
	CHECK_INT(x->stdin.len, 0);
	fake_stream_chunk(fd, req->id, 2, "E");
	fake_stream_chunk(fd, req->id, 1, "O");
	swerex__v1__execute_response__init(&er);
	er.stdout.data = (uint8_t *)"O";
	er.stdout.len = 1;
	er.stderr.data = (uint8_t *)"E";
	er.stderr.len = 1;
	er.has_exit_code_case =
	    SWEREX__V1__EXECUTE_RESPONSE__HAS_EXIT_CODE_EXIT_CODE;
	fake_exec_reply(fd, req->id, &er, 0, NULL);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* Event-driven failure with output. */
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_EXECUTE);
	swerex__v1__execute_response__init(&er);
	er.failure_reason = (char *)"timeout";
	fake_exec_reply(fd, req->id, &er,
	    SWEREX__V1__ERROR_KIND__COMMAND_TIMEOUT, "timeout");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_wait_close(fd);
}

struct exec_seen {
	char labels[16];	/* '1' or '2' per chunk */
	char data[64];
	size_t n;
	size_t len;
	int final;
	enum swerex_reply_type type;
	enum swerex_error_kind kind;
	char failure_reason[16];
	char out[16];
	char err[16];
	size_t pending_in_chunk;
};

/* Record a labelled chunk (blocking execute). */
static void
exec_output(int stream, const char *data, size_t len, void *arg)
{
	struct exec_seen *s = arg;

	if (s->n < sizeof s->labels - 1)
		s->labels[s->n++] = (char)('0' + stream);
	if (s->len + len < sizeof s->data) {
		memcpy(s->data + s->len, data, len);
		s->len += len;
	}
}

/* Record chunks and the final reply (event-driven execute). */
static void
exec_reply(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct exec_seen *s = arg;
	const struct swerex_exec_result *res = NULL;

	if (r->type == SWEREX_REPLY_EXEC_CHUNK) {
		s->pending_in_chunk = swerex_pending(c);
		exec_output(r->stream, r->data, r->len, s);
		return;
	}
	s->final++;
	s->type = r->type;
	if (r->type == SWEREX_REPLY_EXEC)
		res = r->exec_result;
	else if (r->type == SWEREX_REPLY_ERROR) {
		s->kind = r->error->kind;
		res = r->error->exec_result;
	}
	if (res != NULL) {
		snprintf(s->failure_reason, sizeof s->failure_reason, "%s",
		    res->failure_reason);
		snprintf(s->out, sizeof s->out, "%s", res->stdout_data);
		snprintf(s->err, sizeof s->err, "%s", res->stderr_data);
	}
}

TEST(execute_requests_and_results)
{
	static const char *const argv[] = { "echo", "hi" };
	static const char *const env[] = { "X=1", "Y=a=b" };
	static const char *const bad_env[] = { "X=1", "NOEQUALS" };
	static const char *const empty_name[] = { "=x" };
	struct event_base *base = event_base_new();
	struct swerex_exec_opts o;
	struct exec_seen seen;
	struct fake f;
	struct swerex_client *c;
	struct swerex_exec_result *r = NULL, *copy;
	struct swerex_error *e = NULL, *ecopy;

	REQUIRE(base != NULL);
	fake_start(&f, serve_exec);
	c = fake_connect_base(&f, base);
	if (c == NULL)
		goto done;

	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.argc = 2;
	REQUIRE(swerex_execute(c, &o, &r, &e) == 0);
	CHECK_INT(r->stdout_len, 3);
	CHECK(memcmp(r->stdout_data, "a\0b", 4) == 0);	/* NUL-terminated */
	CHECK_MEM(r->stderr_data, r->stderr_len, "err");
	CHECK(r->stderr_data[3] == '\0');
	CHECK(r->has_exit_code);
	CHECK_INT(r->exit_code, 3);
	CHECK_INT(r->signal, 0);
	CHECK(r->stdout_truncated);
	CHECK(!r->stderr_truncated);
	CHECK_INT(r->stdout_bytes, 1000);
	CHECK_INT(r->stderr_bytes, 3);
	CHECK_STR(r->failure_reason, "");
	copy = swerex_exec_result_dup(r);
	REQUIRE(copy != NULL);
	CHECK(memcmp(copy->stdout_data, "a\0b", 4) == 0);
	CHECK_MEM(copy->stderr_data, copy->stderr_len, "err");
	CHECK_INT(copy->exit_code, 3);
	swerex_exec_result_free(copy);
	swerex_exec_result_free(r);

	memset(&seen, 0, sizeof seen);
	memset(&o, 0, sizeof o);
	o.shell = true;
	o.command = "echo $X";
	o.env = env;
	o.n_env = 2;
	o.replace_env = true;
	o.cwd = "/tmp";
	o.check = true;
	o.error_msg = "oops";
	o.merge_output_streams = true;
	o.stdin_data = "in";
	o.stdin_len = 2;
	o.max_output = 4096;
	o.has_timeout = true;
	o.timeout = 2.5;
	o.on_output = exec_output;
	o.output_arg = &seen;
	REQUIRE(swerex_execute(c, &o, &r, &e) == 0);
	CHECK_STR(seen.labels, "121");
	CHECK_MEM(seen.data, seen.len, "o1e1o2");
	CHECK(!r->has_exit_code);
	CHECK_INT(r->signal, 9);
	CHECK(r->stderr_truncated);
	CHECK_STR(r->stdout_data, "o1o2");
	CHECK_STR(r->stderr_data, "");
	swerex_exec_result_free(r);

	/* An error carries the output; copies keep it. */
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.argc = 1;
	CHECK_INT(swerex_execute(c, &o, &r, &e), -1);
	CHECK(r == NULL);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_NON_ZERO_EXIT_CODE);
	CHECK_STR(swerex_error_extra(e, "exit_code"), "1");
	REQUIRE(e->exec_result != NULL);
	CHECK_MEM(e->exec_result->stdout_data, e->exec_result->stdout_len,
	    "partial");
	CHECK_INT(e->exec_result->exit_code, 1);
	CHECK_STR(e->exec_result->failure_reason, "why");
	CHECK(e->observation == NULL);
	ecopy = swerex_error_dup(e);
	REQUIRE(ecopy != NULL && ecopy->exec_result != NULL);
	CHECK_STR(ecopy->exec_result->stdout_data, "partial");
	swerex_error_free(ecopy);
	swerex_error_free(e);
	e = NULL;

	/* Refused before sending. */
	o.env = bad_env;
	o.n_env = 2;
	CHECK_INT(swerex_execute(c, &o, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	CHECK(strstr(e->message, "NOEQUALS") != NULL);
	swerex_error_free(e);
	o.env = empty_name;
	o.n_env = 1;
	CHECK_INT(swerex_submit_execute(c, &o, false, exec_reply, &seen, &e),
	    0);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	o.env = NULL;
	o.n_env = 0;
	o.argc = 0;
	CHECK_INT(swerex_execute(c, &o, NULL, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	o.shell = true;
	CHECK_INT(swerex_execute(c, &o, NULL, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	CHECK_INT(swerex_execute(c, NULL, NULL, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	e = NULL;
	CHECK_INT(swerex_pending(c), 0);

	/* Event-driven: EXEC_CHUNK with labels, then EXEC. */
	memset(&seen, 0, sizeof seen);
	memset(&o, 0, sizeof o);
	o.argv = argv;
	o.argc = 1;
	o.stdin_data = "";
	REQUIRE(swerex_submit_execute(c, &o, true, exec_reply, &seen, &e) != 0);
	CHECK(drive(base, &seen.final, 1));
	CHECK_STR(seen.labels, "21");
	CHECK_MEM(seen.data, seen.len, "EO");
	CHECK_INT(seen.pending_in_chunk, 1);
	CHECK_INT(seen.type, SWEREX_REPLY_EXEC);
	CHECK_STR(seen.out, "O");
	CHECK_STR(seen.err, "E");

	memset(&seen, 0, sizeof seen);
	REQUIRE(swerex_submit_execute(c, &o, false, exec_reply, &seen, &e) !=
	    0);
	CHECK(drive(base, &seen.final, 1));
	CHECK_INT(seen.type, SWEREX_REPLY_ERROR);
	CHECK_INT(seen.kind, SWEREX_ERR_COMMAND_TIMEOUT);
	CHECK_STR(seen.failure_reason, "timeout");
	CHECK_INT(swerex_pending(c), 0);
	swerex_client_free(c);
done:
	fake_finish(&f);
	event_base_free(base);
}

/* Fake: check the fields of reads and writes and answer each. */
static void
serve_files(int fd)
{
	Swerex__V1__Request *req;
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__ReadFileResponse rf = SWEREX__V1__READ_FILE_RESPONSE__INIT;
	Swerex__V1__WriteFileResponse wf =
	    SWEREX__V1__WRITE_FILE_RESPONSE__INIT;

	fake_hello(fd, 1024 * 1024);

	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_READ_FILE);
	CHECK_STR(req->read_file->path, "/a");
	CHECK_INT(req->read_file->offset, 0);
	CHECK_INT(req->read_file->has_length_case,
	    SWEREX__V1__READ_FILE_REQUEST__HAS_LENGTH__NOT_SET);
	rf.content.data = (uint8_t *)"x\0y";
	rf.content.len = 3;
	rf.size = 10;
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_READ_FILE;
	resp.read_file = &rf;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_READ_FILE);
	CHECK_STR(req->read_file->path, "/b");
	CHECK_INT(req->read_file->offset, 5);
	CHECK_INT(req->read_file->has_length_case,
	    SWEREX__V1__READ_FILE_REQUEST__HAS_LENGTH_LENGTH);
	CHECK_INT(req->read_file->length, 0);
	rf.content.data = NULL;
	rf.content.len = 0;
	resp.id = req->id;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_WRITE_FILE);
	CHECK_STR(req->write_file->path, "/c");
	CHECK_MEM(req->write_file->content.data, req->write_file->content.len,
	    "data");
	CHECK_INT(req->write_file->has_mode_case,
	    SWEREX__V1__WRITE_FILE_REQUEST__HAS_MODE__NOT_SET);
	CHECK_INT(req->write_file->has_create_parents_case,
	    SWEREX__V1__WRITE_FILE_REQUEST__HAS_CREATE_PARENTS_CREATE_PARENTS);
	CHECK(req->write_file->create_parents);
	wf.bytes_written = 4;
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_WRITE_FILE;
	resp.write_file = &wf;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);

	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_WRITE_FILE);
	CHECK_STR(req->write_file->path, "/d/e");
	CHECK_INT(req->write_file->content.len, 0);
	CHECK_INT(req->write_file->has_mode_case,
	    SWEREX__V1__WRITE_FILE_REQUEST__HAS_MODE_MODE);
	CHECK_INT(req->write_file->mode, 0755);
	CHECK_INT(req->write_file->has_create_parents_case,
	    SWEREX__V1__WRITE_FILE_REQUEST__HAS_CREATE_PARENTS_CREATE_PARENTS);
	CHECK(!req->write_file->create_parents);
	fake_error(fd, req->id, SWEREX__V1__ERROR_KIND__FILE_NOT_FOUND,
	    "no /d");
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* A reply of the wrong type for a read. */
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_READ_FILE);
	resp.id = req->id;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_wait_close(fd);
}

TEST(read_and_write_requests)
{
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	char *data = NULL;
	size_t len = 99;
	uint64_t size = 99;

	fake_start(&f, serve_files);
	c = fake_connect(&f);
	if (c == NULL)
		goto done;
	REQUIRE(swerex_read_file(c, "/a", 0, -1, &data, &len, &size, &e) == 0);
	CHECK_INT(len, 3);
	CHECK(memcmp(data, "x\0y", 4) == 0);
	CHECK_INT(size, 10);
	free(data);
	REQUIRE(swerex_read_file(c, "/b", 5, 0, &data, &len, NULL, &e) == 0);
	CHECK_INT(len, 0);
	CHECK_STR(data, "");
	free(data);

	CHECK_INT(swerex_write_file(c, "/c", "data", 4, -1, true, &e), 0);
	CHECK_INT(swerex_write_file(c, "/d/e", NULL, 0, 0755, false, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_FILE_NOT_FOUND);
	CHECK_STR(swerex_error_kind_name(e->kind), "FILE_NOT_FOUND");
	swerex_error_free(e);

	CHECK_INT(swerex_write_file(c, "/f", "x", 1, 010000, true, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	CHECK_INT(swerex_write_file(c, NULL, "x", 1, -1, true, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	CHECK_INT(swerex_read_file(c, NULL, 0, -1, &data, &len, NULL, &e), -1);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);

	CHECK_INT(swerex_read_file(c, "/g", 0, -1, &data, &len, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_PROTOCOL);
	CHECK(data == NULL);
	swerex_error_free(e);
	CHECK_INT(swerex_pending(c), 0);
	swerex_client_free(c);
done:
	fake_finish(&f);
}

#define UP_BIG (2 * 1024 * 1024 + 512 * 1024)
#define UP_HUGE (24 * 1024 * 1024)

/* Give the byte at offset i of the big upload file. */
static uint8_t
up_byte(size_t i)
{
	return (uint8_t)((i * 7 + 3) & 0xff);
}

/* Receive one upload (begin, data, end) and log its entries into buf. */
static void
fake_upload(int fd, const char *target, bool is_dir, char *buf, size_t size,
    uint64_t *bytes)
{
	Swerex__V1__Request *req, *begin;
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__UploadResponse ur = SWEREX__V1__UPLOAD_RESPONSE__INIT;
	Swerex__V1__TransferEntry *e;
	uint64_t last_id, files = 0;
	size_t i, j, len = 0, big_off = 0;
	bool done = false;

	*bytes = 0;
	buf[0] = '\0';
	begin = fake_expect(fd, SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN);
	CHECK_STR(begin->upload_begin->target_path, target);
	CHECK_INT(begin->upload_begin->is_directory, is_dir);
	CHECK_INT(begin->upload_begin->has_create_parents_case,
	    SWEREX__V1__UPLOAD_BEGIN__HAS_CREATE_PARENTS__NOT_SET);
	last_id = begin->id;
	while (!done) {
		req = fake_recv(fd);
		FAKE_REQUIRE(req != NULL);
		/* Ids stay unique: data frames have ids of their own. */
		CHECK(req->id > last_id);
		last_id = req->id;
		switch (req->body_case) {
		case SWEREX__V1__REQUEST__BODY_UPLOAD_DATA:
			CHECK_INT(req->upload_data->upload_id, begin->id);
			CHECK(req->upload_data->n_entries >= 1 &&
			    req->upload_data->n_entries <= 64);
			for (i = 0; i < req->upload_data->n_entries; i++) {
				e = req->upload_data->entries[i];
				CHECK(e->data.len <= 1024 * 1024);
				len += (size_t)snprintf(buf + len, size - len,
				    "%s|%d|%o|%s|%zu|%d\n", e->path,
				    (int)e->type, e->mode, e->link_target,
				    e->data.len, (int)e->last);
				FAKE_REQUIRE(len < size);
				*bytes += e->data.len;
				if (e->last)
					files++;
				if (strcmp(e->path, "big.bin") != 0)
					continue;
				for (j = 0; j < e->data.len; j++) {
					if (e->data.data[j] !=
					    up_byte(big_off + j))
						break;
				}
				CHECK_INT(j, e->data.len);
				big_off += e->data.len;
			}
			break;
		case SWEREX__V1__REQUEST__BODY_UPLOAD_END:
			CHECK_INT(req->upload_end->upload_id, begin->id);
			CHECK(!req->upload_end->abort);
			done = true;
			break;
		default:
			FAKE_REQUIRE(!"unexpected request during an upload");
		}
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	ur.files = files;
	ur.bytes = *bytes;
	resp.id = begin->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_UPLOAD;
	resp.upload = &ur;
	fake_send(fd, &resp);
	protobuf_c_message_free_unpacked(&begin->base, NULL);
}

/* Fake: take a tree, a single file, then refuse an upload at once. */
static void
serve_upload(int fd)
{
	static const char tree[] =
	    "|1|751||0|0\n"
	    "a.txt|0|644||5|1\n"
	    "big.bin|0|644||1048576|0\n"
	    "big.bin|0|0||1048576|0\n"
	    "big.bin|0|0||524288|1\n"
	    "bin|1|755||0|0\n"
	    "bin/run.sh|0|755||10|1\n"
	    "empty|1|700||0|0\n"
	    "link|2|777|a.txt|0|1\n"
	    "sub|1|755||0|0\n"
	    "sub/deep|1|750||0|0\n"
	    "sub/deep/x|0|600||1|1\n"
	    "zero|0|644||0|1\n";
	Swerex__V1__Request *req, *begin;
	char log[4096];
	uint64_t bytes, id;

	fake_hello(fd, 64 * 1024 * 1024);
	fake_upload(fd, "/remote/tree", true, log, sizeof log, &bytes);
	CHECK_STR(log, tree);
	CHECK_INT(bytes, UP_BIG + 16);
	fake_upload(fd, "/remote/file", false, log, sizeof log, &bytes);
	CHECK_STR(log, "|0|644||5|1\n");

	/* Refused at once: the client stops sending soon. */
	begin = fake_expect(fd, SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN);
	id = begin->id;
	fake_error(fd, id, SWEREX__V1__ERROR_KIND__PERMISSION_DENIED,
	    "no way");
	protobuf_c_message_free_unpacked(&begin->base, NULL);
	bytes = 0;
	for (;;) {
		req = fake_recv(fd);
		FAKE_REQUIRE(req != NULL);
		if (req->body_case != SWEREX__V1__REQUEST__BODY_UPLOAD_DATA)
			break;
		CHECK_INT(req->upload_data->upload_id, id);
		bytes += req->upload_data->entries[0]->data.len;
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	CHECK_INT(req->body_case, SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	if (bytes >= UP_HUGE / 2)
		printf("# fake daemon: %llu bytes sent after the error\n",
		    (unsigned long long)bytes);
	CHECK(bytes < UP_HUGE / 2);
	fake_alive(fd, req->id, "");
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* A local failure half-way: the client aborts the upload. */
	begin = fake_expect(fd, SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN);
	id = begin->id;
	protobuf_c_message_free_unpacked(&begin->base, NULL);
	for (;;) {
		req = fake_recv(fd);
		FAKE_REQUIRE(req != NULL);
		if (req->body_case != SWEREX__V1__REQUEST__BODY_UPLOAD_DATA)
			break;
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	FAKE_REQUIRE(req->body_case == SWEREX__V1__REQUEST__BODY_UPLOAD_END);
	CHECK_INT(req->upload_end->upload_id, id);
	CHECK(req->upload_end->abort);
	/* Both answered, as swerexd does; the client dropped them. */
	fake_error(fd, id, SWEREX__V1__ERROR_KIND__INTERRUPTED, "aborted");
	fake_error(fd, req->id, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, "no");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	fake_alive(fd, req->id, "");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_wait_close(fd);
}

/* Write len bytes of fill (NULL: the big pattern) to dir/name, with mode. */
static void
put_file(const char *dir, const char *name, const char *fill, size_t len,
    mode_t mode)
{
	char path[512];
	uint8_t *buf;
	size_t i;
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	buf = malloc(len + 1);
	REQUIRE(buf != NULL);
	for (i = 0; i < len; i++)
		buf[i] = fill != NULL ? (uint8_t)fill[i] : up_byte(i);
	fp = fopen(path, "w");
	REQUIRE(fp != NULL);
	REQUIRE(len == 0 || fwrite(buf, 1, len, fp) == len);
	REQUIRE(fclose(fp) == 0);
	REQUIRE(chmod(path, mode) == 0);
	free(buf);
}

/* Make directory dir/name with mode. */
static void
put_dir(const char *dir, const char *name, mode_t mode)
{
	char path[512];

	snprintf(path, sizeof path, "%s/%s", dir, name);
	REQUIRE(mkdir(path, 0700) == 0 && chmod(path, mode) == 0);
}

/* Remove a whole test tree, however deep and whatever its modes. */
static void
tree_remove(const char *path)
{
	char cmd[600];

	snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' 2>/dev/null; "
	    "rm -rf '%s'", path, path);
	if (system(cmd) != 0)
		tap_diag(__FILE__, __LINE__, "cannot remove %s", path);
}

/* Make dir/name hold a file, then a tree deeper than PATH_MAX. */
static void
put_deep_tree(const char *dir, const char *name)
{
	char path[512], comp[101];
	int fd, nfd, i;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	REQUIRE(mkdir(path, 0755) == 0);
	put_file(path, "a", "a", 1, 0644);
	memset(comp, 'd', 100);
	comp[100] = '\0';
	fd = open(path, O_RDONLY | O_DIRECTORY);
	REQUIRE(fd != -1);
	for (i = 0; i < 45; i++) {
		REQUIRE(mkdirat(fd, comp, 0755) == 0);
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY);
		close(fd);
		REQUIRE(nfd != -1);
		fd = nfd;
	}
	close(fd);
}

struct up_progress {
	struct swerex_client *c;
	int calls;
	uint64_t bytes;
	uint64_t files;
	size_t max_pending;
};

/* Record progress and how many requests wait for a reply meanwhile. */
static void
up_progress_cb(uint64_t bytes, uint64_t files, void *arg)
{
	struct up_progress *p = arg;

	p->calls++;
	if (bytes < p->bytes || files < p->files)
		p->max_pending = 99;	/* never goes back */
	p->bytes = bytes;
	p->files = files;
	if (swerex_pending(p->c) > p->max_pending)
		p->max_pending = swerex_pending(p->c);
}

TEST(upload_framing)
{
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	struct up_progress p;
	char dir[64], src[96], path[160];
	int fd;

	snprintf(dir, sizeof dir, "/tmp/swerex-test-up.XXXXXX");
	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(src, sizeof src, "%s/src", dir);
	REQUIRE(mkdir(src, 0700) == 0 && chmod(src, 0751) == 0);
	put_file(src, "a.txt", "hello", 5, 0644);
	put_file(src, "big.bin", NULL, UP_BIG, 0644);
	put_dir(src, "bin", 0755);
	put_file(src, "bin/run.sh", "#!/bin/sh\n", 10, 0755);
	put_dir(src, "empty", 0700);
	snprintf(path, sizeof path, "%s/fifo", src);
	REQUIRE(mkfifo(path, 0600) == 0);	/* skipped */
	snprintf(path, sizeof path, "%s/link", src);
	REQUIRE(symlink("a.txt", path) == 0);
	put_dir(src, "sub", 0755);
	put_dir(src, "sub/deep", 0750);
	put_file(src, "sub/deep/x", "x", 1, 0600);
	put_file(src, "zero", "", 0, 0644);
	snprintf(path, sizeof path, "%s/huge", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	REQUIRE(fd != -1 && ftruncate(fd, UP_HUGE) == 0 && close(fd) == 0);

	fake_start(&f, serve_upload);
	c = fake_connect(&f);
	if (c == NULL)
		goto done;

	/* A missing source: nothing is sent. */
	CHECK_INT(swerex_upload(c, "/nonexistent/src", "/x", NULL, NULL, &e),
	    -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_FILE_NOT_FOUND);
	CHECK_STR(swerex_error_extra(e, "errno"), "ENOENT");
	CHECK_STR(swerex_error_extra(e, "path"), "/nonexistent/src");
	swerex_error_free(e);
	e = NULL;

	memset(&p, 0, sizeof p);
	p.c = c;
	if (swerex_upload(c, src, "/remote/tree", up_progress_cb, &p, &e) != 0)
		tap_diag(__FILE__, __LINE__, "upload: %s",
		    e != NULL ? e->message : "?");
	CHECK(e == NULL);
	/* Only the UploadBegin ever waits for a reply. */
	CHECK_INT(p.max_pending, 1);
	CHECK_INT(p.bytes, UP_BIG + 16);
	CHECK_INT(p.files, 6);
	CHECK_INT(p.calls, 7);
	CHECK_INT(swerex_pending(c), 0);

	snprintf(path, sizeof path, "%s/a.txt", src);
	CHECK_INT(swerex_upload(c, path, "/remote/file", NULL, NULL, &e), 0);
	CHECK_INT(swerex_pending(c), 0);

	snprintf(path, sizeof path, "%s/huge", dir);
	CHECK_INT(swerex_upload(c, path, "/remote/huge", NULL, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_PERMISSION_DENIED);
	CHECK_STR(e->message, "no way");
	swerex_error_free(e);
	e = NULL;
	CHECK_INT(swerex_pending(c), 0);
	CHECK_INT(swerex_is_alive(c, NULL, NULL, &e), 0);

	/* A local failure half-way: aborted, and nothing waits any more. */
	put_deep_tree(dir, "deep");
	snprintf(path, sizeof path, "%s/deep", dir);
	CHECK_INT(swerex_upload(c, path, "/remote/deep", NULL, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_FILE_ERROR);
	CHECK_STR(swerex_error_extra(e, "errno"), "ENAMETOOLONG");
	swerex_error_free(e);
	e = NULL;
	CHECK_INT(swerex_pending(c), 0);
	CHECK_INT(swerex_is_alive(c, NULL, NULL, &e), 0);
	CHECK_INT(swerex_pending(c), 0);
	swerex_client_free(c);
done:
	fake_finish(&f);
	tree_remove(dir);
}

/* Send a download entry. */
static void
fake_entry(int fd, uint64_t id, const char *path, int type, unsigned mode,
    const char *target, const char *data, bool last)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__TransferEntry e = SWEREX__V1__TRANSFER_ENTRY__INIT;

	e.path = (char *)path;
	e.type = (Swerex__V1__EntryType)type;
	e.mode = mode;
	if (target != NULL)
		e.link_target = (char *)target;
	if (data != NULL) {
		e.data.data = (uint8_t *)data;
		e.data.len = strlen(data);
	}
	e.last = last;
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ENTRY;
	resp.entry = &e;
	fake_send(fd, &resp);
}

/* End a download. */
static void
fake_download_end(int fd, uint64_t id, bool is_dir)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__DownloadResponse dr = SWEREX__V1__DOWNLOAD_RESPONSE__INIT;

	dr.is_directory = is_dir;
	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_DOWNLOAD;
	resp.download = &dr;
	fake_send(fd, &resp);
}

/* Receive a DownloadRequest for path; give its id. */
static uint64_t
fake_download_req(int fd, const char *path)
{
	Swerex__V1__Request *req;
	uint64_t id;

	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_DOWNLOAD);
	CHECK_STR(req->download->path, path);
	id = req->id;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return id;
}

/* The download test's directory, for the fake to aim a symlink at. */
static char dl_dir[64];

/* Fake: send trees, a file, and broken or hostile downloads. */
static void
serve_download(int fd)
{
	Swerex__V1__Request *req;
	uint64_t id;

	fake_hello(fd, 1024 * 1024);

	id = fake_download_req(fd, "/r/tree");
	fake_entry(fd, id, "", 1, 0750, NULL, NULL, false);
	fake_entry(fd, id, "d", 1, 0755, NULL, NULL, false);
	fake_entry(fd, id, "d/f.txt", 0, 0640, NULL, "ab", false);
	fake_entry(fd, id, "d/f.txt", 0, 0, NULL, "c", true);
	fake_entry(fd, id, "empty", 1, 0700, NULL, NULL, false);
	fake_entry(fd, id, "l", 2, 0777, "d/f.txt", NULL, false);
	fake_entry(fd, id, "x", 0, 0755, NULL, NULL, true);
	fake_entry(fd, id, "ro", 1, 0555, NULL, NULL, false);
	fake_entry(fd, id, "ro/in", 0, 0444, NULL, "in", true);
	fake_entry(fd, id, "deep/a/b", 0, 0644, NULL, "b", true);
	fake_entry(fd, id, "dflt", 1, 0, NULL, NULL, false);
	fake_entry(fd, id, "dflt/f", 0, 0, NULL, "f", true);
	fake_download_end(fd, id, true);

	/* Into the existing tree: merged. */
	id = fake_download_req(fd, "/r/more");
	fake_entry(fd, id, "new.txt", 0, 0644, NULL, "n", true);
	fake_entry(fd, id, "d/f.txt", 0, 0600, NULL, "xyz", true);
	fake_entry(fd, id, "d/g", 0, 0644, NULL, "g", true);
	fake_download_end(fd, id, true);

	id = fake_download_req(fd, "/r/file");
	fake_entry(fd, id, "", 0, 0600, NULL, "single", true);
	fake_download_end(fd, id, false);

	/* Hostile: the client gives up; the rest is dropped. */
	id = fake_download_req(fd, "/r/evil");
	fake_entry(fd, id, "ok", 0, 0644, NULL, "1", true);
	fake_entry(fd, id, "../evil", 0, 0644, NULL, "bad", true);
	fake_entry(fd, id, "more", 0, 0644, NULL, "2", true);
	fake_download_end(fd, id, true);
	req = fake_expect(fd, SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	fake_alive(fd, req->id, "");
	protobuf_c_message_free_unpacked(&req->base, NULL);

	/* Hostile: through a symlink sent first, or absolute. */
	id = fake_download_req(fd, "/r/escape");
	fake_entry(fd, id, "l", 2, 0777, dl_dir, NULL, false);
	fake_entry(fd, id, "l/evil", 0, 0644, NULL, "bad", true);
	fake_download_end(fd, id, true);
	id = fake_download_req(fd, "/r/abs");
	fake_entry(fd, id, "/tmp/evil", 0, 0644, NULL, "bad", true);
	fake_download_end(fd, id, true);

	/* The daemon fails half-way. */
	id = fake_download_req(fd, "/r/gone");
	fake_entry(fd, id, "a", 0, 0644, NULL, "1", true);
	fake_error(fd, id, SWEREX__V1__ERROR_KIND__FILE_NOT_FOUND, "gone");

	/* A file onto an existing directory. */
	id = fake_download_req(fd, "/r/file2");
	fake_entry(fd, id, "", 0, 0644, NULL, "z", true);
	fake_download_end(fd, id, false);
	fake_wait_close(fd);
}

/* Read a small local file into buf as a string; its length, or -1. */
static ssize_t
get_file(const char *dir, const char *name, char *buf, size_t size)
{
	char path[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n >= 0 ? n : 0] = '\0';
	return n;
}

/* Give the permission bits of dir/name (not following a symlink), or -1. */
static int
get_mode(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (lstat(path, &st) != 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

/* Count what a download left behind in dir: staging directories. */
static int
count_staging(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strstr(de->d_name, ".swx-dl-") != NULL)
			n++;
	}
	closedir(d);
	return n;
}

TEST(download_writes_tree)
{
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	struct up_progress p;
	char out[128], path[192], buf[64];
	struct stat st;
	mode_t dl_umask;

	dl_umask = umask(022);
	umask(dl_umask);
	snprintf(dl_dir, sizeof dl_dir, "/tmp/swerex-test-dl.XXXXXX");
	REQUIRE(mkdtemp(dl_dir) != NULL);
	snprintf(out, sizeof out, "%s/out", dl_dir);
	fake_start(&f, serve_download);
	c = fake_connect(&f);
	if (c == NULL)
		goto done;

	memset(&p, 0, sizeof p);
	p.c = c;
	if (swerex_download(c, "/r/tree", out, up_progress_cb, &p, &e) != 0)
		tap_diag(__FILE__, __LINE__, "download: %s",
		    e != NULL ? e->message : "?");
	CHECK(e == NULL);
	CHECK_INT(get_file(out, "d/f.txt", buf, sizeof buf), 3);
	CHECK_STR(buf, "abc");
	CHECK_INT(get_mode(out, "d/f.txt"), 0640);
	CHECK_INT(get_mode(out, "d"), 0755);
	CHECK_INT(get_mode(out, "empty"), 0700);
	CHECK_INT(get_mode(out, "x"), 0755);
	CHECK_INT(get_file(out, "x", buf, sizeof buf), 0);
	CHECK_INT(get_mode(out, "ro"), 0555);
	CHECK_INT(get_mode(out, "ro/in"), 0444);
	CHECK_INT(get_file(out, "deep/a/b", buf, sizeof buf), 1);
	snprintf(path, sizeof path, "%s/l", out);
	CHECK_INT(readlink(path, buf, sizeof buf), 7);
	CHECK(memcmp(buf, "d/f.txt", 7) == 0);
	CHECK_INT(get_mode(dl_dir, "out"), 0750);
	/* Mode 0: the defaults, 0644 and 0777 less the umask. */
	CHECK_INT(get_mode(out, "dflt/f"), 0644);
	CHECK_INT(get_mode(out, "dflt"), 0777 & ~dl_umask);
	CHECK_INT(p.bytes, 7);
	CHECK_INT(p.files, 6);
	CHECK_INT(p.max_pending, 1);
	CHECK_INT(count_staging(dl_dir), 0);
	CHECK_INT(swerex_pending(c), 0);

	/* Into an existing directory: merged, a file replaces a file. */
	CHECK_INT(swerex_download(c, "/r/more", out, NULL, NULL, &e), 0);
	CHECK_INT(get_file(out, "d/f.txt", buf, sizeof buf), 3);
	CHECK_STR(buf, "xyz");
	CHECK_INT(get_mode(out, "d/f.txt"), 0600);
	CHECK_INT(get_file(out, "d/g", buf, sizeof buf), 1);
	CHECK_INT(get_file(out, "new.txt", buf, sizeof buf), 1);
	CHECK_INT(get_mode(out, "x"), 0755);	/* still there */
	CHECK_INT(count_staging(dl_dir), 0);

	/* A single file, with missing parents made. */
	snprintf(path, sizeof path, "%s/p1/p2/file.txt", dl_dir);
	CHECK_INT(swerex_download(c, "/r/file", path, NULL, NULL, &e), 0);
	CHECK_INT(get_file(dl_dir, "p1/p2/file.txt", buf, sizeof buf), 6);
	CHECK_STR(buf, "single");
	CHECK_INT(get_mode(dl_dir, "p1/p2/file.txt"), 0600);
	snprintf(path, sizeof path, "%s/p1/p2", dl_dir);
	CHECK_INT(count_staging(path), 0);

	/* "../evil" is refused; nothing is left anywhere. */
	snprintf(path, sizeof path, "%s/out4", dl_dir);
	CHECK_INT(swerex_download(c, "/r/evil", path, NULL, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_PROTOCOL);
	CHECK(strstr(e->message, "../evil") != NULL);
	swerex_error_free(e);
	e = NULL;
	CHECK(lstat(path, &st) == -1);
	CHECK_INT(get_mode(dl_dir, "evil"), -1);
	CHECK_INT(count_staging(dl_dir), 0);
	/* The abandoned transfer is read and dropped. */
	CHECK_INT(swerex_is_alive(c, NULL, NULL, &e), 0);
	CHECK_INT(swerex_pending(c), 0);

	snprintf(path, sizeof path, "%s/out5", dl_dir);
	CHECK_INT(swerex_download(c, "/r/escape", path, NULL, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_PROTOCOL);
	swerex_error_free(e);
	e = NULL;
	CHECK_INT(get_mode(dl_dir, "evil"), -1);
	CHECK(lstat(path, &st) == -1);
	CHECK_INT(swerex_download(c, "/r/abs", path, NULL, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_PROTOCOL);
	swerex_error_free(e);
	e = NULL;
	CHECK(lstat("/tmp/evil", &st) == -1);
	CHECK_INT(count_staging(dl_dir), 0);

	snprintf(path, sizeof path, "%s/out6", dl_dir);
	CHECK_INT(swerex_download(c, "/r/gone", path, NULL, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_FILE_NOT_FOUND);
	swerex_error_free(e);
	e = NULL;
	CHECK(lstat(path, &st) == -1);
	CHECK_INT(count_staging(dl_dir), 0);

	CHECK_INT(swerex_download(c, "/r/file2", out, NULL, NULL, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_IS_A_DIRECTORY);
	swerex_error_free(e);
	e = NULL;
	CHECK(stat(out, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK_INT(count_staging(dl_dir), 0);
	CHECK_INT(swerex_pending(c), 0);
	swerex_client_free(c);
done:
	fake_finish(&f);
	tree_remove(dl_dir);
}

/* Seconds on the monotonic clock. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Connect to url with options o (client name "test-lib"); NULL on failure. */
static struct swerex_client *
opts_connect(struct swerex_connect_opts *o, const char *url)
{
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	o->url = url;
	o->client_name = "test-lib";
	if (swerex_connect_with(o, &c, &e) != 0) {
		tap_diag(__FILE__, __LINE__, "connect %s: %s", url,
		    e != NULL ? e->message : "?");
		swerex_error_free(e);
		return NULL;
	}
	return c;
}

/*
 * Answer a Hello with resumed as given, and hand the Hello back for the
 * caller to check (and free).
 */
static Swerex__V1__Request *
fake_hello_take(int fd, bool resumed)
{
	Swerex__V1__Request *req = fake_recv(fd);
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__HelloResponse hello = SWEREX__V1__HELLO_RESPONSE__INIT;

	FAKE_REQUIRE(req != NULL);
	FAKE_REQUIRE(req->body_case == SWEREX__V1__REQUEST__BODY_HELLO);
	CHECK_STR(req->hello->client_name, "test-lib");
	hello.protocol_version = 1;
	hello.daemon_version = (char *)"fake-1.0";
	hello.max_frame = 64 * 1024 * 1024;
	hello.resumed = resumed;
	resp.id = req->id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_HELLO;
	resp.hello = &hello;
	fake_send(fd, &resp);
	return req;
}

/* Answer a Ping with a Pong of the same id. */
static void
fake_pong(int fd, uint64_t id)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__Pong pong = SWEREX__V1__PONG__INIT;

	resp.id = id;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_PONG;
	resp.pong = &pong;
	fake_send(fd, &resp);
}

/* Read requests until the client closes; only pings are allowed. */
static int
fake_drain_pings(int fd)
{
	Swerex__V1__Request *req;
	int pings = 0;

	while ((req = fake_recv(fd)) != NULL) {
		if (req->body_case != SWEREX__V1__REQUEST__BODY_PING) {
			printf("# fake daemon: unexpected request (body %d)\n",
			    (int)req->body_case);
			fflush(stdout);
			_exit(1);
		}
		pings++;
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	return pings;
}

/* Fake: answer the Hello, then read everything and answer nothing. */
static void
serve_silent(int fd)
{
	Swerex__V1__Request *req;
	int pings = 0, runs = 0;

	fake_hello(fd, 1024 * 1024);
	while ((req = fake_recv(fd)) != NULL) {
		if (req->body_case == SWEREX__V1__REQUEST__BODY_PING) {
			CHECK(req->id > 1);
			pings++;
		} else if (req->body_case == SWEREX__V1__REQUEST__BODY_RUN)
			runs++;
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	CHECK_INT(runs, 1);
	CHECK(pings >= 1);	/* the client asked before giving up */
}

TEST(keepalive_gives_up_on_a_silent_daemon)
{
	struct swerex_run_opts run = { .command = "sleep 100" };
	struct swerex_connect_opts o;
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	double t0, took;

	fake_start(&f, serve_silent);
	swerex_connect_opts_init(&o);
	o.keepalive = 0.3;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		/* The peer is up but mute: the call must not hang. */
		t0 = now_s();
		CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
		took = now_s() - t0;
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_DISCONNECTED);
		CHECK_STR(e->message,
		    "swerexd did not answer for 0.6 s (keepalive)");
		CHECK(took >= 0.5);
		CHECK(took < 1.2);
		if (took < 0.5 || took >= 1.2)
			printf("# gave up after %.3f s\n", took);
		swerex_error_free(e);
		e = NULL;
		/* The loss is final without reconnect. */
		CHECK_INT(swerex_is_alive(c, NULL, NULL, &e), -1);
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_DISCONNECTED);
		swerex_error_free(e);
		swerex_client_free(c);
	}
	fake_finish(&f);
}

/* Fake: answer pings at once, and the run only after 1.5 s. */
static void
serve_slow_run_with_pongs(int fd)
{
	Swerex__V1__Request *req;
	uint64_t id;
	double end;
	bool timed_out = false;
	int pings = 0, left;

	fake_hello(fd, 1024 * 1024);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	id = req->id;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	end = now_s() + 1.5;
	while ((left = (int)((end - now_s()) * 1000)) > 0) {
		req = fake_recv_within(fd, left, &timed_out);
		if (req == NULL)
			break;
		FAKE_REQUIRE(req->body_case == SWEREX__V1__REQUEST__BODY_PING);
		CHECK(req->id > id);
		fake_pong(fd, req->id);
		pings++;
		protobuf_c_message_free_unpacked(&req->base, NULL);
	}
	FAKE_REQUIRE(timed_out || left <= 0);
	/* About one ping per 0.375 s of quiet. */
	CHECK(pings >= 2);
	fake_observation(fd, id, "late\n", 0);
	fake_drain_pings(fd);
}

TEST(keepalive_pongs_keep_a_long_call_alive)
{
	struct swerex_run_opts run = { .command = "sleep 1.5" };
	struct swerex_connect_opts o;
	struct fake f;
	struct swerex_client *c;
	struct swerex_observation *obs = NULL;
	struct swerex_error *e = NULL;
	double t0;

	fake_start(&f, serve_slow_run_with_pongs);
	swerex_connect_opts_init(&o);
	o.keepalive = 0.3;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		t0 = now_s();
		CHECK_INT(swerex_run(c, &run, &obs, &e), 0);
		CHECK(e == NULL);
		if (e != NULL)
			printf("# %s\n", e->message);
		CHECK(now_s() - t0 >= 1.4);
		if (obs != NULL)
			CHECK_STR(obs->output, "late\n");
		swerex_observation_free(obs);
		swerex_error_free(e);
		swerex_client_free(c);
	}
	fake_finish(&f);
}

/* The token the next fake expects in the Hello ("" for none). */
static const char *fake_want_token;

/* Fake: check the Hello's token and that no identity came, then wait. */
static void
serve_token(int fd)
{
	Swerex__V1__Request *hello;

	FAKE_REQUIRE(fd != -1);
	hello = fake_hello_take(fd, false);
	CHECK_STR(hello->hello->token, fake_want_token);
	CHECK_INT(hello->hello->client_id.len, 0);
	protobuf_c_message_free_unpacked(&hello->base, NULL);
	fake_drain_pings(fd);
}

/* Write s to path; false on failure. */
static bool
file_put(const char *path, const char *s)
{
	FILE *fp = fopen(path, "w");
	bool ok;

	if (fp == NULL)
		return false;
	ok = fputs(s, fp) >= 0;
	return fclose(fp) == 0 && ok;
}

/* Connect to a fake of kind that expects want, with o; check it is happy. */
static void
token_case(enum fake_kind kind, struct swerex_connect_opts *o,
    const char *want)
{
	struct fake f;
	struct swerex_client *c;

	fake_want_token = want;
	fake_start_on(&f, kind, NULL, NULL, serve_token);
	c = opts_connect(o, f.url);
	swerex_client_free(c);
	fake_finish(&f);
}

TEST(token_sent_in_hello)
{
	struct swerex_connect_opts o;
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;
	char dir[] = "/tmp/swerex-test-lib.XXXXXX", file[64], bad[64];

	REQUIRE(mkdtemp(dir) != NULL);
	snprintf(file, sizeof file, "%s/token", dir);
	snprintf(bad, sizeof bad, "%s/missing", dir);
	REQUIRE(file_put(file, "from-file\n"));
	unsetenv("SWEREX_TOKEN");
	unsetenv("SWEREX_TOKEN_FILE");

	swerex_connect_opts_init(&o);
	o.token = "from-opts";
	token_case(FAKE_UNIX, &o, "from-opts");

	swerex_connect_opts_init(&o);
	o.token_file = file;
	token_case(FAKE_TCP, &o, "from-file");

	/* opts win over the environment. */
	setenv("SWEREX_TOKEN", "from-env", 1);
	swerex_connect_opts_init(&o);
	o.token = "from-opts";
	token_case(FAKE_TCP, &o, "from-opts");

	swerex_connect_opts_init(&o);
	token_case(FAKE_TCP, &o, "from-env");

	/* A Unix socket ignores tokens: the environment's is not sent. */
	swerex_connect_opts_init(&o);
	token_case(FAKE_UNIX, &o, "");

	unsetenv("SWEREX_TOKEN");
	setenv("SWEREX_TOKEN_FILE", file, 1);
	swerex_connect_opts_init(&o);
	token_case(FAKE_TCP, &o, "from-file");

	/* A token file that cannot be read is the caller's mistake. */
	swerex_connect_opts_init(&o);
	o.url = "tcp://127.0.0.1:1";
	o.token_file = bad;
	CHECK_INT(swerex_connect_with(&o, &c, &e), -1);
	CHECK(c == NULL);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	CHECK(strstr(e->message, bad) != NULL);
	swerex_error_free(e);
	unsetenv("SWEREX_TOKEN_FILE");

	unlink(file);
	rmdir(dir);
}

/* Fake: refuse the Hello's token. */
static void
serve_unauthenticated(int fd)
{
	Swerex__V1__Request *req = fake_recv(fd);

	FAKE_REQUIRE(req != NULL);
	CHECK_STR(req->hello->token, "wrong");
	fake_error(fd, req->id, SWEREX__V1__ERROR_KIND__UNAUTHENTICATED,
	    "invalid token");
	protobuf_c_message_free_unpacked(&req->base, NULL);
}

TEST(unauthenticated_is_surfaced)
{
	struct swerex_connect_opts o;
	struct fake f;
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	fake_start_on(&f, FAKE_TCP, NULL, NULL, serve_unauthenticated);
	swerex_connect_opts_init(&o);
	o.url = f.url;
	o.client_name = "test-lib";
	o.token = "wrong";
	CHECK_INT(swerex_connect_with(&o, &c, &e), -1);
	CHECK(c == NULL);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_UNAUTHENTICATED);
	CHECK_STR(e->message, "invalid token");
	CHECK_STR(swerex_error_kind_name(e->kind), "UNAUTHENTICATED");
	swerex_error_free(e);
	fake_finish(&f);
}

/* Check that a Hello carries a 16-byte identity equal to id (if given). */
static void
fake_check_identity(const Swerex__V1__Request *hello, uint8_t *id)
{
	CHECK_INT(hello->hello->client_id.len, 16);
	if (hello->hello->client_id.len != 16)
		return;
	if (id[0] == 0 && memcmp(id, id + 1, 15) == 0)
		memcpy(id, hello->hello->client_id.data, 16);
	else
		CHECK(memcmp(id, hello->hello->client_id.data, 16) == 0);
}

/*
 * Fake: on the first connection stream a chunk of run A, read run B and
 * hang up; on the second (resumed) expect B again under its id, then the
 * is_alive C queued while reconnecting; answer both, and one more is_alive.
 */
static void
serve_reconnect_resumed(int fd)
{
	Swerex__V1__Request *req, *hello;
	uint8_t id[16] = { 0 };
	uint64_t a, b, hello2;

	hello = fake_hello_take(fd, false);
	fake_check_identity(hello, id);
	protobuf_c_message_free_unpacked(&hello->base, NULL);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	CHECK_STR(req->run->command, "a");
	a = req->id;
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_chunk(fd, a, "a1\n");
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	CHECK_STR(req->run->command, "b");
	b = req->id;
	protobuf_c_message_free_unpacked(&req->base, NULL);

	fd = fake_reaccept(fd);
	hello = fake_hello_take(fd, true);
	fake_check_identity(hello, id);
	hello2 = hello->id;
	CHECK(hello2 > b);	/* ids are never reused */
	protobuf_c_message_free_unpacked(&hello->base, NULL);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	CHECK_INT(req->id, b);
	CHECK_STR(req->run->command, "b");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	/* Numbered while reconnecting, before the new Hello: still new. */
	CHECK(req->id > b && req->id != hello2);
	fake_alive(fd, req->id, "c");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_observation(fd, b, "b-out\n", 0);

	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	fake_alive(fd, req->id, "d");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_drain_pings(fd);
	fake_hangup(fd);
}

/* What the reconnect tests' callbacks saw. */
struct rc_state {
	struct finals a, b, c;
	int c_alive;
	char c_message[16];
	int b_obs;
	char b_output[16];
};

/* Record run B's final reply. */
static void
rc_b_cb(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct rc_state *st = arg;

	if (r->type == SWEREX_REPLY_OBSERVATION) {
		st->b_obs++;
		snprintf(st->b_output, sizeof st->b_output, "%s",
		    r->observation->output);
	}
	record_cb(c, r, &st->b);
}

/* Record is_alive C's final reply. */
static void
rc_c_cb(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct rc_state *st = arg;

	if (r->type == SWEREX_REPLY_ALIVE) {
		st->c_alive++;
		snprintf(st->c_message, sizeof st->c_message, "%s",
		    r->message);
	}
	record_cb(c, r, &st->c);
}

/* Record run A's replies; when it fails, submit C (we are reconnecting). */
static void
rc_a_cb(struct swerex_client *c, const struct swerex_reply *r, void *arg)
{
	struct rc_state *st = arg;

	record_cb(c, r, &st->a);
	if (r->type == SWEREX_REPLY_ERROR)
		CHECK(swerex_submit_is_alive(c, rc_c_cb, st, NULL) != 0);
}

TEST(reconnect_resends_pending_requests)
{
	struct swerex_run_opts a = { .command = "a" }, b = { .command = "b" };
	struct swerex_connect_opts o;
	struct event_base *base = event_base_new();
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	struct rc_state st;
	char *msg = NULL;

	REQUIRE(base != NULL);
	memset(&st, 0, sizeof st);
	fake_start(&f, serve_reconnect_resumed);
	swerex_connect_opts_init(&o);
	o.base = base;
	o.reconnect = true;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		REQUIRE(swerex_submit_run(c, &a, true, rc_a_cb, &st, &e) != 0);
		REQUIRE(swerex_submit_run(c, &b, false, rc_b_cb, &st, &e) != 0);
		CHECK(drive(base, &st.c.n, 1));
		CHECK(drive(base, &st.b.n, 1));
		/* A had streamed output: it cannot be replayed. */
		CHECK_INT(st.a.chunks, 1);
		CHECK_INT(st.a.n, 1);
		CHECK_INT(st.a.kinds[0], SWEREX_ERR_DISCONNECTED);
		CHECK(strstr(st.a.messages[0], "cannot be resumed") != NULL);
		CHECK_INT(st.b_obs, 1);
		CHECK_STR(st.b_output, "b-out\n");
		CHECK_INT(st.c_alive, 1);
		CHECK_STR(st.c_message, "c");
		CHECK_INT(swerex_reconnects(c), 1);
		/* One more round trip: B was answered once and only once. */
		CHECK_INT(swerex_is_alive(c, NULL, &msg, &e), 0);
		CHECK_STR(msg, "d");
		free(msg);
		CHECK_INT(st.b.n, 1);
		CHECK_INT(swerex_pending(c), 0);
		swerex_client_free(c);
	}
	fake_finish(&f);
	event_base_free(base);
}

/*
 * Fake: read run R and is_alive I, hang up; on the second connection say
 * the client is unknown and expect only I again.
 */
static void
serve_reconnect_unknown(int fd)
{
	Swerex__V1__Request *req, *hello;
	uint8_t id[16] = { 0 };
	uint64_t alive;

	hello = fake_hello_take(fd, false);
	fake_check_identity(hello, id);
	protobuf_c_message_free_unpacked(&hello->base, NULL);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	alive = req->id;
	protobuf_c_message_free_unpacked(&req->base, NULL);

	fd = fake_reaccept(fd);
	hello = fake_hello_take(fd, false);
	fake_check_identity(hello, id);
	protobuf_c_message_free_unpacked(&hello->base, NULL);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_IS_ALIVE);
	CHECK_INT(req->id, alive);
	fake_alive(fd, req->id, "again");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_drain_pings(fd);	/* and never the run */
	fake_hangup(fd);
}

TEST(reconnect_to_a_daemon_that_forgot_the_client)
{
	struct swerex_run_opts run = { .command = "make" };
	struct swerex_connect_opts o;
	struct event_base *base = event_base_new();
	struct fake f;
	struct swerex_client *c;
	struct rc_state st;

	REQUIRE(base != NULL);
	memset(&st, 0, sizeof st);
	fake_start(&f, serve_reconnect_unknown);
	swerex_connect_opts_init(&o);
	o.base = base;
	o.reconnect = true;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		REQUIRE(swerex_submit_run(c, &run, false, rc_b_cb, &st,
		    NULL) != 0);
		REQUIRE(swerex_submit_is_alive(c, rc_c_cb, &st, NULL) != 0);
		CHECK(drive(base, &st.b.n, 1));
		CHECK(drive(base, &st.c.n, 1));
		/* The run may or may not have run: it is not repeated. */
		CHECK_INT(st.b_obs, 0);
		CHECK_INT(st.b.kinds[0], SWEREX_ERR_DISCONNECTED);
		CHECK(strstr(st.b.messages[0], "no longer knew this client") !=
		    NULL);
		CHECK_INT(st.c_alive, 1);
		CHECK_STR(st.c_message, "again");
		CHECK_INT(swerex_reconnects(c), 1);
		swerex_client_free(c);
	}
	fake_finish(&f);
	event_base_free(base);
}

/* Fake: take a run, then hang up and stop listening. */
static void
serve_vanish(int fd)
{
	Swerex__V1__Request *req;

	fake_hello(fd, 1024 * 1024);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_unlisten();
}

/* Fake: take a run, hang up, and refuse the token on the way back. */
static void
serve_revoke(int fd)
{
	Swerex__V1__Request *req;

	fake_hello(fd, 1024 * 1024);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_RUN);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fd = fake_reaccept(fd);
	req = fake_recv(fd);
	FAKE_REQUIRE(req != NULL &&
	    req->body_case == SWEREX__V1__REQUEST__BODY_HELLO);
	fake_error(fd, req->id, SWEREX__V1__ERROR_KIND__UNAUTHENTICATED,
	    "token revoked");
	protobuf_c_message_free_unpacked(&req->base, NULL);
	fake_hangup(fd);
	fake_unlisten();
}

TEST(reconnect_gives_up)
{
	struct swerex_run_opts run = { .command = "make" };
	struct swerex_connect_opts o;
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	double t0, took;

	/* Nobody comes back: DISCONNECTED once reconnect_timeout is spent. */
	fake_start(&f, serve_vanish);
	swerex_connect_opts_init(&o);
	o.reconnect = true;
	o.reconnect_timeout = 0.5;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		t0 = now_s();
		CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
		took = now_s() - t0;
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_DISCONNECTED);
		CHECK(strncmp(e->message, "gave up reconnecting after 0.5 s: ",
		    34) == 0);
		CHECK(strstr(e->message, strerror(ECONNREFUSED)) != NULL);
		if (e->kind != SWEREX_ERR_DISCONNECTED)
			printf("# %s\n", e->message);
		CHECK(took >= 0.45 && took < 2.0);
		CHECK_INT(swerex_reconnects(c), 0);
		swerex_error_free(e);
		e = NULL;
		swerex_client_free(c);
	}
	fake_finish(&f);

	/* A refused token is final: no waiting for the timeout. */
	fake_start(&f, serve_revoke);
	o.reconnect_timeout = 20;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		t0 = now_s();
		CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
		took = now_s() - t0;
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_UNAUTHENTICATED);
		CHECK_STR(e->message, "cannot reconnect: token revoked");
		CHECK(took < 5);
		swerex_error_free(e);
		swerex_client_free(c);
	}
	fake_finish(&f);
}

/* Run contrib/swerex-certs.sh into dir (with --expired); true if it worked. */
static bool
certs_make(const char *dir, bool expired)
{
	const char *script = getenv("SWEREX_CERTS");
	pid_t pid;
	int status;

	if (script == NULL) {
		tap_diag(__FILE__, __LINE__, "SWEREX_CERTS is not set "
		    "(run through meson test)");
		return false;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (expired)
			execl(script, script, dir, "--expired", (char *)NULL);
		else
			execl(script, script, dir, (char *)NULL);
		_exit(127);
	}
	if (pid == -1)
		return false;
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Remove what certs_make() wrote, and dir. */
static void
certs_remove(const char *dir)
{
	static const char *const names[] = { "ca.pem", "ca.key", "server.pem",
	    "server.key", "client.pem", "client.key", "token" };
	char path[128];
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* A certificate directory made by certs_make() in a temporary directory. */
struct certs {
	char dir[64];
	char ca[96];
	char cert[96];
	char key[96];
};

/* Make certificates (expired ones) into a fresh temporary directory. */
static bool
certs_new(struct certs *cs, bool expired)
{
	snprintf(cs->dir, sizeof cs->dir, "/tmp/swerex-test-certs.XXXXXX");
	if (mkdtemp(cs->dir) == NULL)
		return false;
	snprintf(cs->ca, sizeof cs->ca, "%s/ca.pem", cs->dir);
	snprintf(cs->cert, sizeof cs->cert, "%s/client.pem", cs->dir);
	snprintf(cs->key, sizeof cs->key, "%s/client.key", cs->dir);
	if (certs_make(cs->dir, expired))
		return true;
	certs_remove(cs->dir);
	return false;
}

TEST(tls_connects_and_verifies_the_name)
{
	struct swerex_connect_opts o;
	struct certs cs;
	struct fake f;
	struct swerex_client *c;
	char url[128];
	bool alive = false;

	REQUIRE(certs_new(&cs, false));
	unsetenv("SWEREX_CA");

	/* By IP address (matched against the certificate's IP SANs). */
	fake_start_on(&f, FAKE_TLS, cs.dir, NULL, serve_alive);
	swerex_connect_opts_init(&o);
	o.ca_file = cs.ca;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		CHECK_STR(swerex_daemon_version(c), "fake-1.0");
		CHECK_INT(swerex_is_alive(c, &alive, NULL, NULL), 0);
		CHECK(alive);
		swerex_client_free(c);
	}
	fake_finish(&f);

	/* By name, with the CA from the environment. */
	fake_start_on(&f, FAKE_TLS, cs.dir, NULL, serve_alive);
	snprintf(url, sizeof url, "tls://localhost:%s", strrchr(f.url, ':') + 1);
	setenv("SWEREX_CA", cs.ca, 1);
	swerex_connect_opts_init(&o);
	c = opts_connect(&o, url);
	if (c != NULL) {
		alive = false;
		CHECK_INT(swerex_is_alive(c, &alive, NULL, NULL), 0);
		CHECK(alive);
		swerex_client_free(c);
	}
	unsetenv("SWEREX_CA");
	fake_finish(&f);

	/* IPv6 loopback. */
	fake_start_on(&f, FAKE_TLS6, cs.dir, NULL, serve_alive);
	swerex_connect_opts_init(&o);
	o.ca_file = cs.ca;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		alive = false;
		CHECK_INT(swerex_is_alive(c, &alive, NULL, NULL), 0);
		CHECK(alive);
		swerex_client_free(c);
	}
	fake_finish(&f);
	certs_remove(cs.dir);
}

/* Fake: expect the client to refuse the TLS handshake. */
static void
serve_tls_refused(int fd)
{
	CHECK_INT(fd, -1);
}

/* Connect to a TLS fake and expect CONNECT with why in the message. */
static void
tls_refused_case(const char *certdir, const char *ca, const char *name,
    const char *why)
{
	struct swerex_connect_opts o;
	struct fake f;
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	fake_start_on(&f, FAKE_TLS, certdir, NULL, serve_tls_refused);
	swerex_connect_opts_init(&o);
	o.url = f.url;
	o.client_name = "test-lib";
	o.ca_file = ca;
	o.server_name = name;
	CHECK_INT(swerex_connect_with(&o, &c, &e), -1);
	CHECK(c == NULL);
	if (e != NULL) {
		CHECK_INT(e->kind, SWEREX_ERR_CONNECT);
		CHECK(strstr(e->message, why) != NULL);
		if (strstr(e->message, why) == NULL)
			printf("# got \"%s\"\n", e->message);
	} else
		CHECK(e != NULL);
	swerex_error_free(e);
	fake_finish(&f);
}

TEST(tls_verification_failures)
{
	struct certs good, old;

	REQUIRE(certs_new(&good, false));
	if (!certs_new(&old, true)) {
		certs_remove(good.dir);
		REQUIRE(!"certs_new(expired)");
	}
	/* Signed by a CA the client does not trust. */
	tls_refused_case(good.dir, old.ca, NULL, "certificate verify failed: "
	    "unable to get local issuer certificate");
	/* The right CA, the wrong name. */
	tls_refused_case(good.dir, good.ca, "wrong.example",
	    "certificate verify failed: hostname mismatch");
	/* The right CA, an expired certificate. */
	tls_refused_case(old.dir, old.ca, NULL,
	    "certificate verify failed: certificate has expired");
	certs_remove(good.dir);
	certs_remove(old.dir);
}

TEST(tls_client_certificate)
{
	struct swerex_connect_opts o;
	struct certs cs;
	struct fake f;
	struct swerex_client *c = NULL;
	struct swerex_error *e = NULL;

	REQUIRE(certs_new(&cs, false));
	/* A client certificate from the environment. */
	fake_start_on(&f, FAKE_TLS, cs.dir, cs.ca, serve_alive);
	setenv("SWEREX_CERT", cs.cert, 1);
	setenv("SWEREX_KEY", cs.key, 1);
	swerex_connect_opts_init(&o);
	o.ca_file = cs.ca;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		CHECK_INT(swerex_is_alive(c, NULL, NULL, NULL), 0);
		swerex_client_free(c);
	}
	unsetenv("SWEREX_CERT");
	unsetenv("SWEREX_KEY");
	fake_finish(&f);

	/* Without one the daemon refuses (in TLS 1.3, after the handshake). */
	fake_start_on(&f, FAKE_TLS, cs.dir, cs.ca, serve_tls_refused);
	swerex_connect_opts_init(&o);
	o.url = f.url;
	o.client_name = "test-lib";
	o.ca_file = cs.ca;
	c = NULL;
	CHECK_INT(swerex_connect_with(&o, &c, &e), -1);
	CHECK(c == NULL);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_CONNECT);
	CHECK(strstr(e->message, "certificate required") != NULL);
	swerex_error_free(e);
	fake_finish(&f);

	/* A certificate without its key is refused before connecting. */
	swerex_connect_opts_init(&o);
	o.url = "tls://127.0.0.1:1";
	o.ca_file = cs.ca;
	o.cert_file = cs.cert;
	e = NULL;
	CHECK_INT(swerex_connect_with(&o, &c, &e), -1);
	REQUIRE(e != NULL);
	CHECK_INT(e->kind, SWEREX_ERR_BAD_ARGUMENT);
	swerex_error_free(e);
	certs_remove(cs.dir);
}

/* Fake: answer the Hello over TLS, hang up and tell the parent. */
static void
serve_tls_hangup(int fd)
{
	FAKE_REQUIRE(fd != -1);
	fake_hello(fd, 64 * 1024 * 1024);
	fake_hangup(fd);
	fake_note();
}

TEST(tls_dead_peer_raises_no_sigpipe)
{
	struct swerex_run_opts run = { 0 };
	struct swerex_connect_opts o;
	struct certs cs;
	struct fake f;
	struct swerex_client *c;
	struct swerex_error *e = NULL;
	size_t size = 8 * 1024 * 1024;
	char *big;

	/* SIGPIPE keeps its default action: raising it would kill us. */
	signal(SIGPIPE, SIG_DFL);
	REQUIRE(certs_new(&cs, false));
	big = malloc(size);
	REQUIRE(big != NULL);
	memset(big, 'x', size - 1);
	big[size - 1] = '\0';
	run.command = big;

	fake_start_on(&f, FAKE_TLS, cs.dir, NULL, serve_tls_hangup);
	swerex_connect_opts_init(&o);
	o.ca_file = cs.ca;
	c = opts_connect(&o, f.url);
	if (c != NULL) {
		/* Write only once the peer is gone: the writes must fail. */
		CHECK(fake_wait_note(&f));
		CHECK_INT(swerex_run(c, &run, NULL, &e), -1);
		REQUIRE(e != NULL);
		CHECK_INT(e->kind, SWEREX_ERR_DISCONNECTED);
		swerex_error_free(e);
		swerex_client_free(c);
	}
	free(big);
	fake_finish(&f);
	certs_remove(cs.dir);
}

TEST(kind_names_and_copies)
{
	struct swerex_observation o = { 0 }, *copy;
	struct swerex_kv kv = { (char *)"k", (char *)"v" };
	struct swerex_error err = { 0 }, *ecopy;

	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_SESSION_EXISTS),
	    "SESSION_EXISTS");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_CONNECT), "CONNECT");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_DISCONNECTED),
	    "DISCONNECTED");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_BAD_ARGUMENT),
	    "BAD_ARGUMENT");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_NO_MEMORY), "NO_MEMORY");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_FILE_NOT_FOUND),
	    "FILE_NOT_FOUND");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_IS_A_DIRECTORY),
	    "IS_A_DIRECTORY");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_NOT_A_DIRECTORY),
	    "NOT_A_DIRECTORY");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_PERMISSION_DENIED),
	    "PERMISSION_DENIED");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_NO_SPACE), "NO_SPACE");
	CHECK_STR(swerex_error_kind_name(SWEREX_ERR_FILE_ERROR), "FILE_ERROR");

	o.output = (char *)"x\0y";
	o.output_len = 3;
	o.has_exit_code = true;
	o.exit_code = 2;
	o.failure_reason = (char *)"why";
	copy = swerex_observation_dup(&o);
	REQUIRE(copy != NULL);
	CHECK_INT(copy->output_len, 3);
	CHECK(memcmp(copy->output, "x\0y", 4) == 0);
	CHECK_INT(copy->exit_code, 2);
	CHECK_STR(copy->failure_reason, "why");
	CHECK_STR(copy->expect_string, "");
	swerex_observation_free(copy);

	err.kind = SWEREX_ERR_NON_ZERO_EXIT_CODE;
	err.message = (char *)"exit 2";
	err.extra = &kv;
	err.n_extra = 1;
	err.observation = &o;
	ecopy = swerex_error_dup(&err);
	REQUIRE(ecopy != NULL);
	CHECK_STR(swerex_error_extra(ecopy, "k"), "v");
	CHECK_INT(ecopy->observation->exit_code, 2);
	swerex_error_free(ecopy);

	CHECK(swerex_error_dup(NULL) == NULL);
	CHECK(swerex_observation_dup(NULL) == NULL);
	swerex_error_free(NULL);
	swerex_observation_free(NULL);
	swerex_exec_result_free(NULL);
	CHECK(swerex_exec_result_dup(NULL) == NULL);
	swerex_sessions_free(NULL, 0);
	swerex_client_free(NULL);
	CHECK(swerex_error_extra(NULL, "k") == NULL);
}

TAP_MAIN(
	TAP_T(handshake_and_is_alive),
	TAP_T(handshake_failures),
	TAP_T(connect_errors),
	TAP_T(socket_path_resolution),
	TAP_T(request_fields_and_conversions),
	TAP_T(daemon_errors),
	TAP_T(streaming),
	TAP_T(many_in_flight_out_of_order),
	TAP_T(loss_fails_every_pending_request),
	TAP_T(free_fails_pending),
	TAP_T(dead_peer_raises_no_sigpipe),
	TAP_T(bad_arguments),
	TAP_T(blocking_call_in_callback_refused),
	TAP_T(sessions_and_close),
	TAP_T(large_reply),
	TAP_T(execute_requests_and_results),
	TAP_T(read_and_write_requests),
	TAP_T(upload_framing),
	TAP_T(download_writes_tree),
	TAP_T(keepalive_gives_up_on_a_silent_daemon),
	TAP_T(keepalive_pongs_keep_a_long_call_alive),
	TAP_T(token_sent_in_hello),
	TAP_T(unauthenticated_is_surfaced),
	TAP_T(reconnect_resends_pending_requests),
	TAP_T(reconnect_to_a_daemon_that_forgot_the_client),
	TAP_T(reconnect_gives_up),
	TAP_T(tls_connects_and_verifies_the_name),
	TAP_T(tls_verification_failures),
	TAP_T(tls_client_certificate),
	TAP_T(tls_dead_peer_raises_no_sigpipe),
	TAP_T(kind_names_and_copies)
)
