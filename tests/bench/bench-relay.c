/*
 * The slow reader of the head-of-line scenario. The floor's slow client
 * takes 4 KiB of the pty every 10 ms; libswerex reads whatever the socket
 * holds, so a client pumped "now and then" is not slow at all. This relay
 * puts the same rate between the daemon and the client: it reads the
 * daemon's side through a libevent token bucket. It runs on a thread with
 * its own event base: libswerex's blocking calls (the slow client's connect
 * and create) do not run the caller's loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "bench-relay.h"

struct relay {
	struct event_base *base;    /* the relay thread's own */
	pthread_t thread;
	bool running;
	int stop[2];                /* a byte on stop[1] ends the thread */
	struct event *ev_stop;
	struct evconnlistener *l;
	struct sockaddr_un target;
	struct ev_token_bucket_cfg *bucket;
	struct bufferevent *client; /* the one client at a time */
	struct bufferevent *daemon;
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];
};

/* Drop the current pair of connections. */
static void
relay_drop(struct relay *r)
{
	if (r->client != NULL)
		bufferevent_free(r->client);
	if (r->daemon != NULL)
		bufferevent_free(r->daemon);
	r->client = r->daemon = NULL;
}

/* Pass what one side sent to the other. */
static void
relay_read_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (bev == r->daemon)
		bufferevent_write_buffer(r->client, in);
	else
		bufferevent_write_buffer(r->daemon, in);
}

/* Either side closed or failed: so does the relay's pair. */
static void
relay_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		relay_drop(arg);
}

/* Take a client and connect its daemon side. */
static void
relay_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int len, void *arg)
{
	struct relay *r = arg;

	relay_drop(r);
	r->client = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
	r->daemon = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (r->client == NULL || r->daemon == NULL) {
		if (r->client == NULL)
			close(fd);
		relay_drop(r);
		return;
	}
	bufferevent_setcb(r->client, relay_read_cb, NULL, relay_event_cb, r);
	bufferevent_setcb(r->daemon, relay_read_cb, NULL, relay_event_cb, r);
	bufferevent_set_rate_limit(r->daemon, r->bucket);
	if (bufferevent_socket_connect(r->daemon, (struct sockaddr *)&r->target,
	    sizeof r->target) < 0) {
		relay_drop(r);
		return;
	}
	bufferevent_enable(r->client, EV_READ | EV_WRITE);
	bufferevent_enable(r->daemon, EV_READ | EV_WRITE);
}

/* Leave the relay thread's loop. */
static void
relay_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Run the relay's loop until told to stop. */
static void *
relay_main(void *arg)
{
	struct relay *r = arg;

	event_base_dispatch(r->base);
	return NULL;
}

/*
 * Listen on listen_path (ready when this returns) and relay to target_path
 * from a thread of its own, reading the target at rate bytes/s in bursts of
 * at most burst bytes.
 */
struct relay *
relay_new(const char *listen_path, const char *target_path, size_t rate,
    size_t burst)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tick;
	struct relay *r;

	if (strlen(listen_path) >= sizeof sa.sun_path ||
	    strlen(target_path) >= sizeof sa.sun_path || burst == 0 ||
	    rate < burst) {
		errno = EINVAL;
		return NULL;
	}
	if ((r = calloc(1, sizeof *r)) == NULL)
		return NULL;
	r->stop[0] = r->stop[1] = -1;
	if ((r->base = event_base_new()) == NULL ||
	    pipe2(r->stop, O_CLOEXEC) < 0 ||
	    (r->ev_stop = event_new(r->base, r->stop[0], EV_READ, relay_stop_cb,
	    r->base)) == NULL || event_add(r->ev_stop, NULL) < 0) {
		relay_free(r);
		return NULL;
	}
	r->target.sun_family = AF_UNIX;
	strcpy(r->target.sun_path, target_path);
	strcpy(r->path, listen_path);
	strcpy(sa.sun_path, listen_path);
	/* One burst per tick: burst / rate seconds. */
	tick.tv_sec = (time_t)(burst / rate);
	tick.tv_usec = (suseconds_t)((double)(burst % rate) / (double)rate * 1e6);
	r->bucket = ev_token_bucket_cfg_new(burst, burst, EV_RATE_LIMIT_MAX,
	    EV_RATE_LIMIT_MAX, &tick);
	unlink(listen_path);
	r->l = evconnlistener_new_bind(r->base, relay_accept_cb, r,
	    LEV_OPT_CLOSE_ON_FREE, 8, (struct sockaddr *)&sa, sizeof sa);
	if (r->bucket == NULL || r->l == NULL ||
	    (errno = pthread_create(&r->thread, NULL, relay_main, r)) != 0) {
		relay_free(r);
		return NULL;
	}
	r->running = true;
	return r;
}

/* Stop the thread, close everything and remove the socket. */
void
relay_free(struct relay *r)
{
	if (r == NULL)
		return;
	if (r->running) {
		while (write(r->stop[1], "", 1) < 0 && errno == EINTR)
			;
		pthread_join(r->thread, NULL);
	}
	relay_drop(r);
	if (r->l != NULL) {
		evconnlistener_free(r->l);
		unlink(r->path);
	}
	if (r->bucket != NULL)
		ev_token_bucket_cfg_free(r->bucket);
	if (r->ev_stop != NULL)
		event_free(r->ev_stop);
	if (r->base != NULL)
		event_base_free(r->base);
	if (r->stop[0] >= 0) {
		close(r->stop[0]);
		close(r->stop[1]);
	}
	free(r);
}
