/* A raw protocol client for tests: frames written and read by hand. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "raw.h"
#include "swerex.h"
#include "tap.h"
#include "remote.h"
#include "tls.h"
#include "wire.h"

/* Connect to a Unix socket path; fd -1 on failure. */
struct raw
raw_connect(const char *path)
{
	struct raw r = { -1, NULL, NULL };
	struct sockaddr_un sa = { 0 };

	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	r.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r.fd >= 0 && connect(r.fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(r.fd);
		r.fd = -1;
	}
	r.in = evbuffer_new();
	return r;
}

/* Connect to "HOST:PORT" over TCP (blocking); fd -1 on failure. */
struct raw
raw_connect_tcp(const char *hostport)
{
	struct raw r = { -1, NULL, NULL };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char *host, *port, err[128];

	if (remote_split_hostport(hostport, &host, &port, err, sizeof err) < 0)
		return r;
	if (getaddrinfo(host, port, &hints, &res) == 0) {
		r.fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (r.fd >= 0 && connect(r.fd, res->ai_addr, res->ai_addrlen) != 0) {
			close(r.fd);
			r.fd = -1;
		}
		freeaddrinfo(res);
	}
	free(host);
	free(port);
	r.in = evbuffer_new();
	return r;
}

/* Run a TLS handshake on a connected raw client; false on failure. */
bool
raw_start_tls(struct raw *r, SSL_CTX *ctx, const char *name)
{
	if (r->fd < 0 || (r->ssl = SSL_new(ctx)) == NULL)
		return false;
	if (name != NULL)
		tls_client_verify_name(r->ssl, name);
	SSL_set_fd(r->ssl, r->fd);
	return SSL_connect(r->ssl) == 1;
}

/*
 * Send a Hello (token and client_id optional) under id and receive its
 * answer into *resp (NULL on EOF); false when nothing came back.
 */
bool
raw_hello(struct raw *r, const char *token, const void *client_id,
	  size_t id_len, uint64_t id, Swerex__V1__Response **resp)
{
	Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;

	hello.protocol_version = SWEREX_PROTOCOL_VERSION;
	hello.client_name = "swerex-tests-raw";
	hello.token = (char *)(token != NULL ? token : "");
	hello.client_id.data = (uint8_t *)client_id;
	hello.client_id.len = id_len;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	*resp = NULL;
	return raw_send(r, &req) && raw_recv(r, resp, 20) == 1;
}

/* Connect to a test's daemon and say Hello; fd -1 on failure. */
struct raw
raw_connect_hello(struct harness *h)
{
	struct raw r = raw_connect(harness_socket_path(h));
	Swerex__V1__Hello hello = SWEREX__V1__HELLO__INIT;
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__Response *resp = NULL;

	if (r.fd < 0) {
		tap_diag(__FILE__, __LINE__, "connect: %s", strerror(errno));
		return r;
	}
	hello.protocol_version = SWEREX_PROTOCOL_VERSION;
	hello.client_name = "swerex-tests-raw";
	req.id = 1;
	req.body_case = SWEREX__V1__REQUEST__BODY_HELLO;
	req.hello = &hello;
	if (!raw_send(&r, &req) || raw_recv(&r, &resp, 20) != 1 ||
	    resp->body_case != SWEREX__V1__RESPONSE__BODY_HELLO) {
		tap_diag(__FILE__, __LINE__, "handshake failed");
		raw_resp_show("reply", resp);
		close(r.fd);
		r.fd = -1;
	}
	raw_resp_free(resp);
	return r;
}

/* Close the socket and free the buffer. */
void
raw_close(struct raw *r)
{
	if (r->ssl != NULL)
		SSL_free(r->ssl);
	r->ssl = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	if (r->in != NULL)
		evbuffer_free(r->in);
	r->in = NULL;
}

/* Write all bytes; false on error (EPIPE when the daemon closed). */
bool
raw_write(struct raw *r, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		if (r->ssl != NULL) {
			int k = SSL_write(r->ssl, c, n > INT32_MAX ? INT32_MAX : (int)n);

			if (k <= 0)
				return false;
			c += k;
			n -= (size_t)k;
			continue;
		}
		w = send(r->fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

/* Send the bytes buffered in out and empty it. */
bool
raw_flush(struct raw *r, struct evbuffer *out)
{
	size_t n = evbuffer_get_length(out);
	unsigned char *p = evbuffer_pullup(out, -1);
	bool ok = raw_write(r, p, n);

	evbuffer_drain(out, n);
	return ok;
}

/* Send one framed request. */
bool
raw_send(struct raw *r, const Swerex__V1__Request *req)
{
	struct evbuffer *out = evbuffer_new();
	bool ok;

	if (out == NULL)
		return false;
	wire_put(out, &req->base);
	ok = raw_flush(r, out);
	evbuffer_free(out);
	return ok;
}

/*
 * Receive one response within timeout: 1 got one, 0 EOF (or reset), -1
 * timeout, -2 undecodable frame.
 */
int
raw_recv(struct raw *r, Swerex__V1__Response **resp, double timeout)
{
	double deadline = harness_now() + timeout;
	struct pollfd pfd = { r->fd, POLLIN, 0 };
	int ms, t;

	*resp = NULL;
	for (;;) {
		t = wire_take(r->in, 1u << 30, &swerex__v1__response__descriptor,
			      (ProtobufCMessage **)resp);
		if (t == WIRE_OK)
			return 1;
		if (t != WIRE_AGAIN)
			return -2;
		ms = (int)((deadline - harness_now()) * 1000);
		if (ms <= 0)
			return -1;
		if ((r->ssl == NULL || SSL_pending(r->ssl) == 0) &&
		    poll(&pfd, 1, ms) <= 0)
			continue;
		if (r->ssl != NULL) {
			char buf[16384];

			t = SSL_read(r->ssl, buf, sizeof buf);
			if (t <= 0)
				return 0;
			evbuffer_add(r->in, buf, (size_t)t);
			continue;
		}
		t = evbuffer_read(r->in, r->fd, 65536);
		if (t == 0 || (t < 0 && errno != EINTR && errno != EAGAIN))
			return 0;
	}
}

/* Free a received response (NULL is fine). */
void
raw_resp_free(Swerex__V1__Response *resp)
{
	if (resp != NULL)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* Name the body of a response as the proto does ("hello", "error"...). */
const char *
raw_resp_body_name(const Swerex__V1__Response *resp)
{
	const ProtobufCFieldDescriptor *f;

	f = protobuf_c_message_descriptor_get_field(
	    &swerex__v1__response__descriptor, (unsigned)resp->body_case);
	return f != NULL ? f->name : "none";
}

/* Print a response as a TAP comment. */
void
raw_resp_show(const char *label, const Swerex__V1__Response *resp)
{
	if (resp == NULL) {
		printf("#   %s: none\n", label);
		return;
	}
	printf("#   %s: id %llu body %s", label, (unsigned long long)resp->id,
	       raw_resp_body_name(resp));
	if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR)
		printf(" error %s \"%s\"",
		       swerex_error_kind_name((enum swerex_error_kind)resp->error->kind),
		       resp->error->message);
	printf("\n");
}

/* Send an is_alive request under id. */
bool
raw_send_is_alive(struct raw *r, uint64_t id)
{
	Swerex__V1__IsAliveRequest body = SWEREX__V1__IS_ALIVE_REQUEST__INIT;
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;

	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_IS_ALIVE;
	req.is_alive = &body;
	return raw_send(r, &req);
}

/*
 * Send is_alive under id and read responses until its answer: everything
 * sent before it on this connection has been handled. Other responses are
 * counted in *others (if not NULL). False on EOF or timeout.
 */
bool
raw_round_trip(struct raw *r, uint64_t id, unsigned *others)
{
	Swerex__V1__Response *resp = NULL;
	bool found = false;

	if (!raw_send_is_alive(r, id))
		return false;
	while (!found && raw_recv(r, &resp, 20) == 1) {
		found = resp->id == id;
		if (!found && others != NULL)
			(*others)++;
		raw_resp_free(resp);
	}
	return found;
}
