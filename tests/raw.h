/*
 * A raw protocol client for tests that must speak the framing themselves
 * (bad frames, partial uploads, connections dropped on purpose).
 */
#ifndef SWEREX_TEST_RAW_H
#define SWEREX_TEST_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "swerex.pb-c.h"

struct harness;

struct raw {
	int fd;                 /* -1 when not connected */
	struct evbuffer *in;
	SSL *ssl;               /* after raw_start_tls() */
};

struct raw raw_connect(const char *path);
struct raw raw_connect_tcp(const char *hostport);
bool raw_start_tls(struct raw *r, SSL_CTX *ctx, const char *name);
bool raw_hello(struct raw *r, const char *token, const void *client_id,
	       size_t id_len, uint64_t id, Swerex__V1__Response **resp);
struct raw raw_connect_hello(struct harness *h);
void raw_close(struct raw *r);
bool raw_write(struct raw *r, const void *p, size_t n);
bool raw_flush(struct raw *r, struct evbuffer *out);
bool raw_send(struct raw *r, const Swerex__V1__Request *req);
int raw_recv(struct raw *r, Swerex__V1__Response **resp, double timeout);
const char *raw_resp_body_name(const Swerex__V1__Response *resp);
void raw_resp_free(Swerex__V1__Response *resp);
void raw_resp_show(const char *label, const Swerex__V1__Response *resp);
bool raw_send_is_alive(struct raw *r, uint64_t id);
bool raw_round_trip(struct raw *r, uint64_t id, unsigned *others);

#endif
