/*
 * A spare swerexd-reaper, started ahead of need.
 *
 * Starting a session used to start the reaper (a fork and an exec) and then
 * bash, one after the other: the reaper's start was on the path of every
 * CreateSession, about a fifth of it on a busy machine. The daemon keeps one
 * reaper started and waiting on a pipe; a new session hands it its argv and
 * environment. The replacement is started once that session is ready (or
 * failed to start): not while its bash starts, which it would slow down on
 * a busy machine, and not ahead of that bash for the last process a user's
 * RLIMIT_NPROC allows. A burst of creations takes the spare for the first
 * and starts the others' reapers as before.
 *
 * The hand-over: strings, each ended by a NUL, written in one piece (the
 * reaper reads to end of file): the reaper's arguments after its name, an
 * empty string, the environment, an empty string. A spec larger than a pipe
 * holds at once, or one with an empty string in it, is not handed over; the
 * caller then starts a reaper of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "log.h"
#include "proc.h"
#include "reaper.h"
#include "server.h"
#include "spare.h"

/* A spare that died on its own is replaced only after this long, and one
 * taken by a session that never finished its start (spare_refill). */
#define SPARE_RETRY 1.0

extern char **environ;

/* Start a spare reaper if there is none. */
static void
spare_start(struct server *srv)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char ppid[24];
	char *argv[] = { REAPER_NAME, REAPER_SPARE, ppid, NULL };
	int p[2], r;

	if (srv->spare_pid > 0 || srv->reaper == NULL || srv->stopping)
		return;
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_warn("spare reaper: pipe: %s", strerror(errno));
		return;
	}
	snprintf(ppid, sizeof ppid, "%ld", (long)getpid());
	proc_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	/* Our stdio for its diagnostics, the spec on fd 3, nothing else. */
	posix_spawn_file_actions_adddup2(&fa, p[0], REAPER_SPEC_FD);
	posix_spawn_file_actions_addclosefrom_np(&fa, REAPER_SPEC_FD + 1);
	r = posix_spawn(&srv->spare_pid, srv->reaper, &fa, &attr, argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(p[0]);
	if (r != 0) {
		log_warn("spare reaper: %s: %s", srv->reaper, strerror(r));
		srv->spare_pid = 0;
		close(p[1]);
		return;
	}
	/*
	 * Never block on it: the spec goes in one write or not at all. A
	 * pipe holds 64 KiB, or one page for a user over its pipe quota.
	 */
	fcntl(p[1], F_SETFL, O_NONBLOCK);
	r = fcntl(p[1], F_GETPIPE_SZ);
	srv->spare_room = r > 0 ? (size_t)r : 4096;
	srv->spare_fd = p[1];
	log_debug("spare reaper %ld started", (long)srv->spare_pid);
}

/* Start the spare from the loop: after a hand-over, or after a retry delay. */
static void
spare_cb(evutil_socket_t fd, short what, void *arg)
{
	spare_start(arg);
}

/* Start a new spare after a while. */
static void
spare_retry(struct server *srv)
{
	struct timeval tv = { (time_t)SPARE_RETRY, 0 };

	if (!srv->stopping)
		evtimer_add(srv->ev_spare, &tv);
}

/* Let go of the current spare: it reads end of file and exits. */
static void
spare_drop(struct server *srv)
{
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	srv->spare_fd = -1;
	srv->spare_pid = 0;
}

/* Prepare the spare's state and start one once the loop runs (after ready). */
int
spare_init(struct server *srv)
{
	srv->spare_fd = -1;
	srv->spare_pid = 0;
	srv->ev_spare = evtimer_new(srv->base, spare_cb, srv);
	if (srv->ev_spare == NULL)
		return -ENOMEM;
	event_active(srv->ev_spare, EV_TIMEOUT, 0);
	return 0;
}

/* Append a string and its NUL; refuse an empty one (it ends a list). */
static int
spare_add(struct evbuffer *b, const char *s)
{
	if (*s == '\0')
		return -1;
	return evbuffer_add(b, s, strlen(s) + 1);
}

/*
 * Hand argv (the reaper's arguments after its name, NULL-terminated) and
 * env to the spare. Return its pid, now the caller's child to wait for, or
 * 0 when there is no spare or the spec cannot go over (the caller starts a
 * reaper of its own then).
 */
pid_t
spare_take(struct server *srv, char *const *argv, char *const *env)
{
	struct evbuffer *b;
	pid_t pid = 0;
	ssize_t n;
	size_t i, len;
	int ok = 0;

	if (srv->spare_pid <= 0 || (b = evbuffer_new()) == NULL)
		return 0;
	for (i = 0; argv[i] != NULL && ok == 0; i++)
		ok = spare_add(b, argv[i]);
	ok |= evbuffer_add(b, "", 1);
	for (i = 0; env[i] != NULL && ok == 0; i++)
		ok = spare_add(b, env[i]);
	ok |= evbuffer_add(b, "", 1);
	len = evbuffer_get_length(b);
	if (ok != 0 || len > srv->spare_room) {
		evbuffer_free(b);
		return 0;
	}
	/* The spare reads nothing until the spec is whole: a full pipe is empty. */
	n = write(srv->spare_fd, evbuffer_pullup(b, -1), len);
	evbuffer_free(b);
	if (n == (ssize_t)len)
		pid = srv->spare_pid;
	else {
		/* A short spec would start a wrong bash: end it instead. */
		log_warn("spare reaper: write: %s", n < 0 ? strerror(errno) :
		    "short");
		kill(srv->spare_pid, SIGKILL);
	}
	spare_drop(srv);
	spare_retry(srv);
	return pid;
}

/* Start a new spare on the next loop pass (a session using one is ready). */
void
spare_refill(struct server *srv)
{
	if (srv->ev_spare != NULL && srv->spare_pid <= 0 && !srv->stopping)
		event_active(srv->ev_spare, EV_TIMEOUT, 0);
}

/* Take a reaped child: the spare, which died before it was used? */
bool
spare_reaped(struct server *srv, pid_t pid, int status)
{
	if (pid != srv->spare_pid || pid <= 0)
		return false;
	log_warn("spare reaper %ld ended unused (status %#x)", (long)pid,
	    status);
	spare_drop(srv);
	spare_retry(srv);
	return true;
}

/* Stop keeping a spare; the one waiting exits when its pipe closes. */
void
spare_free(struct server *srv)
{
	if (srv->ev_spare == NULL)
		return;
	spare_drop(srv);
	event_free(srv->ev_spare);
	srv->ev_spare = NULL;
}
