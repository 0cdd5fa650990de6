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
 * and starts the others' reapers as before. The replacement is spawned by
 * a thread (see struct spare_job), so that the loop does not wait for its
 * exec.
 *
 * The hand-over: strings, each ended by a NUL, written in one piece (the
 * reaper reads to end of file): the reaper's arguments after its name, an
 * empty string, the environment, an empty string. A spec larger than a pipe
 * holds at once, or one with an empty string in it, is not handed over; the
 * caller then starts a reaper of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
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

/* Below this RLIMIT_NPROC, no spawning thread (see spare_worker_start). */
#define SPARE_NPROC_THREAD 1024

extern char **environ;

/*
 * A spare being started. posix_spawn returns only once the child has run
 * exec, half a millisecond and more here, and the loop would stand still
 * meanwhile: a refill comes right after a session is ready, just when its
 * client sends the first command. So a thread spawns it and tells the loop
 * on a pipe. The thread touches nothing but the job it is handed.
 *
 * The thread lives as long as the daemon: a reaper is its spawning
 * thread's child, and PR_SET_PDEATHSIG, which ends a reaper when the
 * daemon dies, fires when that thread ends, not the process.
 */
struct spare_job {
	const char *reaper;     /* srv->reaper: spare_free waits for the job */
	char ppid[24];
	int spec_rd;            /* the spec pipe's read end: the spare's fd 3 */
	int spec_wr;            /* its write end: srv->spare_fd once started */
	pid_t pid;              /* set by the spawn */
	int err;                /* set by the spawn: posix_spawn's result */
};

/* The spawning thread and its two pipes, made at the first spare. */
struct spare_worker {
	pthread_t thread;
	int jobs[2];            /* a struct spare_job * to spawn */
	int done[2];            /* the same pointer back, spawned */
	struct event *ev_done;
};

/* Spawn the spare reaper of a job; return posix_spawn's result. */
static int
spare_spawn(struct spare_job *j)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *argv[] = { REAPER_NAME, REAPER_SPARE, j->ppid, NULL };
	int r;

	proc_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	/*
	 * Our stdio for its diagnostics, the spec on fd 3, nothing else: not
	 * even a descriptor the loop opened meanwhile without O_CLOEXEC.
	 */
	posix_spawn_file_actions_adddup2(&fa, j->spec_rd, REAPER_SPEC_FD);
	posix_spawn_file_actions_addclosefrom_np(&fa, REAPER_SPEC_FD + 1);
	r = posix_spawn(&j->pid, j->reaper, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return r;
}

/* Read or write one pointer on a pipe; false if the pipe is gone. */
static bool
spare_pipe_io(int fd, struct spare_job **j, bool out)
{
	ssize_t n;

	do
		n = out ? write(fd, j, sizeof *j) : read(fd, j, sizeof *j);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof *j;
}

/* The spawning thread: jobs in, spawned jobs out; signals stay with the loop. */
static void *
spare_thread(void *arg)
{
	struct spare_worker *w = arg;
	struct spare_job *j;

	while (spare_pipe_io(w->jobs[0], &j, false)) {
		j->err = spare_spawn(j);
		if (!spare_pipe_io(w->done[1], &j, true))
			break;
	}
	return NULL;
}

/* Free a job and what it holds. */
static void
spare_job_free(struct spare_job *j)
{
	if (j == NULL)
		return;
	if (j->spec_rd >= 0)
		close(j->spec_rd);
	if (j->spec_wr >= 0)
		close(j->spec_wr);
	free(j);
}

static void spare_retry(struct server *srv);

/*
 * Take a finished spawn: the new spare, if it started and is still there.
 * One that died before this ran was reaped unknown (it had no pid yet to
 * match): waitpid says so, and its pid may belong to another by now.
 */
static void
spare_done(struct server *srv, struct spare_job *j)
{
	int r;

	srv->spare_job = NULL;
	if (j->err != 0) {
		log_warn("spare reaper: %s: %s", j->reaper, strerror(j->err));
		spare_job_free(j);
		spare_retry(srv);
		return;
	}
	if (waitpid(j->pid, NULL, WNOHANG) != 0) {
		log_warn("spare reaper %ld ended unused", (long)j->pid);
		spare_job_free(j);
		spare_retry(srv);
		return;
	}
	/*
	 * Never block on it: the spec goes in one write or not at all. A
	 * pipe holds 64 KiB, or one page for a user over its pipe quota.
	 */
	fcntl(j->spec_wr, F_SETFL, O_NONBLOCK);
	r = fcntl(j->spec_wr, F_GETPIPE_SZ);
	srv->spare_room = r > 0 ? (size_t)r : 4096;
	srv->spare_fd = j->spec_wr;
	srv->spare_pid = j->pid;
	j->spec_wr = -1;
	spare_job_free(j);
	log_debug("spare reaper %ld started", (long)srv->spare_pid);
}

/* The spawning thread handed a job back. */
static void
spare_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct spare_job *j;

	if (spare_pipe_io(fd, &j, false))
		spare_done(arg, j);
}

/*
 * Start the spawning thread; false if it cannot be or should not be: the
 * loop then spawns spares itself, and waits on each. A thread counts as a
 * process against RLIMIT_NPROC: under a tight limit it would take the
 * place of a session's bash.
 */
static bool
spare_worker_start(struct server *srv)
{
	static struct spare_worker worker;   /* lives as long as its thread */
	struct spare_worker *w = &worker;
	struct rlimit rl;
	sigset_t all, old;
	int r;

	if (srv->spare_worker != NULL)
		return true;
	if (srv->spare_no_worker)
		return false;
	srv->spare_no_worker = true;     /* until it is running */
	if (getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < SPARE_NPROC_THREAD)
		return false;
	w->jobs[0] = w->jobs[1] = w->done[0] = w->done[1] = -1;
	if (pipe2(w->jobs, O_CLOEXEC) < 0 || pipe2(w->done, O_CLOEXEC) < 0)
		goto fail;
	w->ev_done = event_new(srv->base, w->done[0], EV_READ | EV_PERSIST,
	    spare_done_cb, srv);
	if (w->ev_done == NULL || event_add(w->ev_done, NULL) < 0)
		goto fail;
	/* Created with every signal blocked: it inherits the mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&w->thread, NULL, spare_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0) {
		log_warn("spare reaper: thread: %s", strerror(r));
		goto fail;
	}
	srv->spare_worker = w;
	srv->spare_no_worker = false;
	return true;

fail:
	if (w->ev_done != NULL)
		event_free(w->ev_done);
	w->ev_done = NULL;
	for (r = 0; r < 2; r++) {
		if (w->jobs[r] >= 0)
			close(w->jobs[r]);
		if (w->done[r] >= 0)
			close(w->done[r]);
	}
	return false;
}

/* Start a spare reaper if there is none, nor one starting. */
static void
spare_start(struct server *srv)
{
	struct spare_job *j;
	int p[2];

	if (srv->spare_pid > 0 || srv->spare_job != NULL ||
	    srv->reaper == NULL || srv->stopping)
		return;
	if ((j = calloc(1, sizeof *j)) == NULL)
		return;
	j->spec_rd = j->spec_wr = -1;
	snprintf(j->ppid, sizeof j->ppid, "%ld", (long)getpid());
	j->reaper = srv->reaper;
	if (pipe2(p, O_CLOEXEC) < 0) {
		log_warn("spare reaper: pipe: %s", strerror(errno));
		spare_job_free(j);
		return;
	}
	j->spec_rd = p[0];
	j->spec_wr = p[1];
	srv->spare_job = j;
	if (spare_worker_start(srv) &&
	    spare_pipe_io(srv->spare_worker->jobs[1], &j, true))
		return;
	/* No thread: spawn here, the loop waits this once. */
	j->err = spare_spawn(j);
	spare_done(srv, j);
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
	srv->spare_job = NULL;
	srv->spare_worker = NULL;
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

/*
 * Stop keeping a spare; the one waiting exits when its pipe closes. One
 * being started is waited for (a few milliseconds), then let go the same
 * way. The spawning thread stays, blocked, until the process ends.
 */
void
spare_free(struct server *srv)
{
	struct spare_job *j;

	if (srv->ev_spare == NULL)
		return;
	if (srv->spare_job != NULL && srv->spare_worker != NULL &&
	    spare_pipe_io(srv->spare_worker->done[0], &j, false))
		spare_done(srv, j);
	spare_drop(srv);
	if (srv->spare_worker != NULL) {
		event_free(srv->spare_worker->ev_done);
		srv->spare_worker->ev_done = NULL;
	}
	event_free(srv->ev_spare);
	srv->ev_spare = NULL;
}
