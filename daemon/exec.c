/*
 * One-off commands (SWE-ReX's execute). Each runs in its own session and
 * process group with pipes for its output, stdin from /dev/null unless bytes
 * are given, and is driven by pipe events, a timeout timer and its reaping:
 * nothing waits. A job is answered once the program has been reaped and its
 * pipes are at EOF; if a background process keeps a pipe open after the
 * program exited, the job is answered EXEC_DRAIN seconds later without it.
 * On timeout the whole tree gets SIGTERM, then SIGKILL after the kill grace.
 * A job whose client goes away is killed the same way: nobody can collect it.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "capture.h"
#include "conn.h"
#include "exec.h"
#include "log.h"
#include "proc.h"
#include "server.h"

#define EXEC_DRAIN 1.0          /* seconds to wait for EOF after the exit */
#define EXEC_FINISH_READS 64    /* at the drain deadline: what the pipe holds */
#define EXEC_READ_SIZE 65536

extern char **environ;

/* One output pipe of a job. */
struct exec_pipe {
	struct exec_job *job;
	int fd;
	Swerex__V1__OutputStream stream;
	struct event ev;
	struct capture cap;
};

struct exec_job {
	struct server *srv;
	TAILQ_ENTRY(exec_job) entry;
	struct req *req;
	pid_t pid;
	bool reaped;
	int status;
	bool timed_out;
	bool killing;
	bool check;
	bool stream;
	bool throttled;
	char *error_msg;
	char *what;             /* the command, for messages */
	double timeout;
	struct exec_pipe out;
	struct exec_pipe err;   /* fd -1 when merged into out */
	int in_fd;
	struct evbuffer *in;
	struct event ev_in;
	struct event ev_timer;  /* timeout, then the drain deadline */
	struct event ev_kill;
};

static void exec_finish(struct exec_job *j);

/* Release a job that has been answered and reaped. */
static void
exec_free(struct exec_job *j)
{
	struct exec_pipe *ps[2] = { &j->out, &j->err };
	int i;

	/* A tree being killed is finished off before its job goes. */
	if (j->killing && evtimer_pending(&j->ev_kill, NULL))
		proc_kill_tree(j->pid, SIGKILL);
	TAILQ_REMOVE(&j->srv->execs, j, entry);
	j->srv->n_execs--;
	for (i = 0; i < 2; i++) {
		if (ps[i]->fd >= 0) {
			event_del(&ps[i]->ev);
			close(ps[i]->fd);
		}
		capture_free(&ps[i]->cap);
	}
	if (j->in_fd >= 0) {
		event_del(&j->ev_in);
		close(j->in_fd);
	}
	if (j->in != NULL)
		evbuffer_free(j->in);
	evtimer_del(&j->ev_timer);
	evtimer_del(&j->ev_kill);
	free(j->error_msg);
	free(j->what);
	free(j);
}

/* Stop reading a pipe for good. */
static void
exec_pipe_close(struct exec_pipe *p)
{
	if (p->fd < 0)
		return;
	event_del(&p->ev);
	close(p->fd);
	p->fd = -1;
}

/* Start ending the job's process tree: SIGTERM now, SIGKILL after the grace. */
static void
exec_kill(struct exec_job *j)
{
	if (j->killing)
		return;
	j->killing = true;
	proc_kill_tree(j->pid, SIGTERM);
	proc_kill_tree(j->pid, SIGCONT);
	server_timer_add(&j->ev_kill, j->srv->cfg.kill_grace);
}

/* Send SIGKILL to whatever is left of the tree. */
static void
exec_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_job *j = arg;

	proc_kill_tree(j->pid, SIGKILL);
}

/* Forget the client of a job that went away; the job is ended and freed. */
static void
exec_detach(struct req *r, void *arg)
{
	struct exec_job *j = arg;

	if (j->req != r)
		return;
	free(r);
	j->req = NULL;
	/* Never freed here: this may run inside one of the job's own callbacks
	 * (a streamed chunk whose write failed). It ends as usual, unanswered. */
	if (!j->reaped)
		exec_kill(j);
}

/* Read the pipes again: the streaming peer caught up or went away. */
static void
exec_unthrottle(void *arg)
{
	struct exec_job *j = arg;

	j->throttled = false;
	if (j->out.fd >= 0)
		event_add(&j->out.ev, NULL);
	if (j->err.fd >= 0)
		event_add(&j->err.ev, NULL);
}

/* Answer once the program is reaped and its output complete. */
static void
exec_check_done(struct exec_job *j)
{
	if (!j->reaped)
		return;
	if (j->out.fd < 0 && j->err.fd < 0) {
		exec_finish(j);
		return;
	}
	/* A background process holds a pipe: give it a moment, not for ever. */
	if (!evtimer_pending(&j->ev_timer, NULL))
		server_timer_add(&j->ev_timer, EXEC_DRAIN);
}

/* Read a pipe once; return what read() did (EOF and errors close it). */
static ssize_t
exec_pipe_read(struct exec_pipe *p)
{
	static char buf[EXEC_READ_SIZE];
	struct exec_job *j = p->job;
	ssize_t n;

	n = read(p->fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return n;
	if (n <= 0) {
		exec_pipe_close(p);
		return n;
	}
	if (capture_append(&p->cap, buf, (size_t)n) < 0)
		log_error("execute: out of memory for output");
	if (j->stream && j->req != NULL) {
		conn_chunk(j->req, p->stream, buf, (size_t)n);
		if (!j->throttled && conn_backlogged(j->req, exec_unthrottle, j)) {
			j->throttled = true;
			event_del(&j->out.ev);
			if (j->err.fd >= 0)
				event_del(&j->err.ev);
		}
	}
	return n;
}

/* Read a pipe; EOF closes it. */
static void
exec_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_pipe *p = arg;

	if (exec_pipe_read(p) <= 0 && p->fd < 0)
		exec_check_done(p->job);
}

/*
 * Take what a pipe already holds, then close it. The drain deadline may
 * fire in the same loop pass as the pipe's readiness (a loop held up by
 * other work): what the program wrote before it exited is never dropped.
 */
static void
exec_pipe_finish(struct exec_pipe *p)
{
	int i;

	for (i = 0; i < EXEC_FINISH_READS && p->fd >= 0; i++)
		if (exec_pipe_read(p) <= 0)
			break;
	exec_pipe_close(p);
}

/* Feed the given stdin bytes, then close stdin. */
static void
exec_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_job *j = arg;

	if (evbuffer_write(j->in, fd) < 0 && errno != EAGAIN && errno != EINTR)
		evbuffer_drain(j->in, evbuffer_get_length(j->in));
	if (evbuffer_get_length(j->in) > 0)
		return;
	event_del(&j->ev_in);
	close(j->in_fd);
	j->in_fd = -1;
}

/* Fire the timeout (kill the tree) or the drain deadline (answer now). */
static void
exec_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_job *j = arg;

	if (j->reaped) {
		exec_pipe_finish(&j->out);
		exec_pipe_finish(&j->err);
		exec_finish(j);
		return;
	}
	j->timed_out = true;
	exec_kill(j);
}

/* Take a pipe's capture into a response field. */
static void
exec_take(struct exec_pipe *p, ProtobufCBinaryData *data,
	  protobuf_c_boolean *truncated, uint64_t *total)
{
	char *out;
	size_t len;
	bool tr;

	data->data = NULL;
	data->len = 0;
	if (capture_take(&p->cap, p->cap.len, 0, &out, &len, total, &tr) < 0)
		return;
	data->data = (uint8_t *)out;
	data->len = len;
	*truncated = tr;
}

/* Answer the job's request and free what is no longer needed. */
static void
exec_finish(struct exec_job *j)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__ExecuteResponse er = SWEREX__V1__EXECUTE_RESPONSE__INIT;
	Swerex__V1__Error err = SWEREX__V1__ERROR__INIT;
	Swerex__V1__Error__ExtraEntry ent, *entp = &ent;
	char msg[2048], code[16];
	bool failed = false;

	evtimer_del(&j->ev_timer);
	exec_take(&j->out, &er.stdout, &er.stdout_truncated, &er.stdout_bytes);
	exec_take(&j->err, &er.stderr, &er.stderr_truncated, &er.stderr_bytes);
	if (WIFEXITED(j->status)) {
		er.has_exit_code_case =
		    SWEREX__V1__EXECUTE_RESPONSE__HAS_EXIT_CODE_EXIT_CODE;
		er.exit_code = WEXITSTATUS(j->status);
	} else if (WIFSIGNALED(j->status))
		er.signal = WTERMSIG(j->status);
	if (j->timed_out) {
		er.failure_reason = "timeout";
		snprintf(msg, sizeof msg, "timeout after %g seconds while "
		    "running %.1000s", j->timeout, j->what);
		err.kind = SWEREX__V1__ERROR_KIND__COMMAND_TIMEOUT;
		failed = true;
	} else if (j->check && (er.signal != 0 || er.exit_code != 0)) {
		snprintf(code, sizeof code, "%d", er.signal ? 128 + er.signal :
		    er.exit_code);
		swerex__v1__error__extra_entry__init(&ent);
		ent.key = "exit_code";
		ent.value = code;
		err.n_extra = 1;
		err.extra = &entp;
		snprintf(msg, sizeof msg, "%s%sCommand %.1000s failed with %s %d.",
		    j->error_msg ? j->error_msg : "",
		    j->error_msg && *j->error_msg ? "\n" : "", j->what,
		    er.signal ? "signal" : "exit code",
		    er.signal ? er.signal : er.exit_code);
		err.kind = SWEREX__V1__ERROR_KIND__NON_ZERO_EXIT_CODE;
		failed = true;
	}
	if (failed) {
		err.message = msg;
		err.execute = &er;
		resp.body_case = SWEREX__V1__RESPONSE__BODY_ERROR;
		resp.error = &err;
	} else {
		resp.body_case = SWEREX__V1__RESPONSE__BODY_EXECUTE;
		resp.execute = &er;
	}
	conn_reply(j->req, &resp);
	j->req = NULL;
	free(er.stdout.data);
	free(er.stderr.data);
	exec_free(j);
}

/* Take note that a job's program exited; false if pid is not a job's. */
bool
exec_reaped(struct server *srv, pid_t pid, int status)
{
	struct exec_job *j;

	TAILQ_FOREACH(j, &srv->execs, entry)
		if (j->pid == pid && !j->reaped)
			break;
	if (j == NULL)
		return false;
	j->reaped = true;
	j->status = status;
	if (j->in_fd >= 0) {
		event_del(&j->ev_in);
		close(j->in_fd);
		j->in_fd = -1;
	}
	if (j->req == NULL) {
		/* Its client is gone: nobody to answer. */
		exec_free(j);
		return true;
	}
	evtimer_del(&j->ev_timer);
	exec_check_done(j);
	return true;
}

/* Find a program the way execvp would, in the PATH the child will have. */
static char *
exec_which(const char *name, const char *path)
{
	const char *p, *end;
	char *full;
	size_t n;

	if (strchr(name, '/') != NULL)
		return strdup(name);
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; ; p = end + 1) {
		end = strchrnul(p, ':');
		n = (size_t)(end - p);
		if (asprintf(&full, "%.*s%s%s", (int)n, p, n ? "/" : "", name) < 0)
			return NULL;
		if (access(full, X_OK) == 0)
			return full;
		free(full);
		if (*end == '\0')
			break;
	}
	errno = ENOENT;
	return NULL;
}

/* Build the child's environment: the request's, alone or over the daemon's. */
static char **
exec_environ(const Swerex__V1__ExecuteRequest *m, const char **path)
{
	size_t n = 0, i, k = 0, e;
	char **env;

	if (!m->replace_env)
		while (environ[n])
			n++;
	env = calloc(n + m->n_env + 1, sizeof *env);
	if (env == NULL)
		return NULL;
	*path = NULL;
	for (i = 0; i < n; i++) {
		for (e = 0; e < m->n_env; e++) {
			size_t kl = strlen(m->env[e]->key);

			if (strncmp(environ[i], m->env[e]->key, kl) == 0 &&
			    environ[i][kl] == '=')
				break;
		}
		if (e == m->n_env) {
			env[k] = strdup(environ[i]);
			if (env[k] == NULL)
				goto fail;
			if (strncmp(env[k], "PATH=", 5) == 0)
				*path = env[k] + 5;
			k++;
		}
	}
	for (e = 0; e < m->n_env; e++) {
		if (asprintf(&env[k], "%s=%s", m->env[e]->key,
		    m->env[e]->value) < 0) {
			env[k] = NULL;
			goto fail;
		}
		if (strcmp(m->env[e]->key, "PATH") == 0)
			*path = env[k] + 5;
		k++;
	}
	return env;

fail:
	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
	return NULL;
}

/* Free an environment from exec_environ(). */
static void
exec_environ_free(char **env)
{
	size_t i;

	if (env == NULL)
		return;
	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/* Describe a command for messages: the shell string or the argv words. */
static char *
exec_describe(const Swerex__V1__ExecuteRequest *m)
{
	struct evbuffer *b;
	char *s;
	size_t i, len;

	if (m->shell)
		return strndup(m->command, 1000);
	b = evbuffer_new();
	if (b == NULL)
		return NULL;
	for (i = 0; i < m->n_argv && evbuffer_get_length(b) < 1000; i++)
		evbuffer_add_printf(b, "%s%s", i ? " " : "", m->argv[i]);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	if (s != NULL) {
		evbuffer_remove(b, s, len);
		s[len] = '\0';
	}
	evbuffer_free(b);
	return s;
}

/* Check a request before anything is spawned; answer it and return -1 if bad. */
static int
exec_validate(struct server *srv, struct req *r,
	      const Swerex__V1__ExecuteRequest *m)
{
	struct stat st;
	size_t i;

	if (m->has_timeout_case ==
	    SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT &&
	    !(isfinite(m->timeout) && m->timeout >= 0)) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "timeout must be a number >= 0");
		return -1;
	}
	if (!m->shell && m->n_argv == 0) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL,
		    NULL, "argv is empty (set shell to run a command string)");
		return -1;
	}
	for (i = 0; i < m->n_env; i++)
		if (*m->env[i]->key == '\0' || strchr(m->env[i]->key, '=')) {
			conn_reply_error(r,
			    SWEREX__V1__ERROR_KIND__INVALID_REQUEST, NULL, NULL,
			    "invalid environment variable name '%.200s'",
			    m->env[i]->key);
			return -1;
		}
	if (*m->cwd != '\0') {
		if (stat(m->cwd, &st) < 0) {
			conn_reply_errno(r, errno, m->cwd, "cwd");
			return -1;
		}
		if (!S_ISDIR(st.st_mode)) {
			conn_reply_errno(r, ENOTDIR, m->cwd, "cwd");
			return -1;
		}
	}
	if (srv->n_execs >= srv->cfg.max_sessions) {
		conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED,
		    NULL, NULL, "too many commands running (limit %zu)",
		    srv->cfg.max_sessions);
		return -1;
	}
	return 0;
}

/* Spawn the program: own session, pipes, stdin, cwd, clean signal state. */
static int
exec_spawn(struct exec_job *j, const Swerex__V1__ExecuteRequest *m,
	   char *const *argv, const char *prog, char **env)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, in[2] = { -1, -1 };
	int r;

	if (pipe2(out, O_CLOEXEC) < 0 ||
	    (!m->merge_output_streams && pipe2(errp, O_CLOEXEC) < 0) ||
	    (m->has_stdin_case == SWEREX__V1__EXECUTE_REQUEST__HAS_STDIN_STDIN &&
	    pipe2(in, O_CLOEXEC) < 0)) {
		r = -errno;
		goto fail;
	}
	proc_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	if (in[0] >= 0)
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1] >= 0 ? errp[1] : out[1], 2);
	if (*m->cwd != '\0')
		posix_spawn_file_actions_addchdir_np(&fa, m->cwd);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	r = posix_spawn(&j->pid, prog, &fa, &attr, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r != 0) {
		r = -r;
		goto fail;
	}
	close(out[1]);
	j->out.fd = out[0];
	if (errp[1] >= 0) {
		close(errp[1]);
		j->err.fd = errp[0];
	}
	if (in[0] >= 0) {
		close(in[0]);
		j->in_fd = in[1];
	}
	return 0;

fail:
	if (out[0] >= 0) { close(out[0]); close(out[1]); }
	if (errp[0] >= 0) { close(errp[0]); close(errp[1]); }
	if (in[0] >= 0) { close(in[0]); close(in[1]); }
	return r;
}

/* Set up a pipe's read event and capture. */
static void
exec_pipe_init(struct exec_job *j, struct exec_pipe *p,
	       Swerex__V1__OutputStream stream, size_t cap)
{
	p->job = j;
	p->stream = stream;
	capture_init(&p->cap, cap);
	if (p->fd < 0)
		return;
	evutil_make_socket_nonblocking(p->fd);
	event_assign(&p->ev, j->srv->base, p->fd, EV_READ | EV_PERSIST,
	    exec_read_cb, p);
	event_add(&p->ev, NULL);
}

/* Handle ExecuteRequest. */
void
exec_start(struct server *srv, struct req *r, const Swerex__V1__ExecuteRequest *m)
{
	char *sh_argv[] = { "sh", "-c", NULL, NULL };
	struct exec_job *j = NULL;
	char **env = NULL, *prog = NULL, **argv = NULL;
	const char *path;
	size_t cap;
	int err;

	if (exec_validate(srv, r, m) < 0)
		return;
	j = calloc(1, sizeof *j);
	if (j == NULL || (env = exec_environ(m, &path)) == NULL ||
	    (j->what = exec_describe(m)) == NULL ||
	    (m->error_msg && (j->error_msg = strdup(m->error_msg)) == NULL)) {
		err = ENOMEM;
		goto fail;
	}
	j->srv = srv;
	j->out.fd = j->err.fd = j->in_fd = -1;
	if (m->shell) {
		/* An empty command runs as ":" would: nothing, status 0. */
		sh_argv[2] = m->command;
		prog = strdup("/bin/sh");
	} else {
		/* protobuf-c's repeated strings are not NULL-terminated. */
		argv = calloc(m->n_argv + 1, sizeof *argv);
		if (argv == NULL) {
			err = ENOMEM;
			goto fail;
		}
		memcpy(argv, m->argv, m->n_argv * sizeof *argv);
		prog = exec_which(m->argv[0], path);
	}
	if (prog == NULL) {
		err = errno;
		conn_reply_errno(r, err, m->argv[0], "program not found");
		goto out;
	}
	err = -exec_spawn(j, m, argv ? argv : sh_argv, prog, env);
	if (err != 0) {
		if (err == ENOENT || err == EACCES || err == ENOEXEC)
			conn_reply_errno(r, err, prog, "cannot run program");
		else
			conn_reply_errno(r, err, prog, "cannot start command");
		goto out;
	}
	cap = m->has_max_output_case ==
	    SWEREX__V1__EXECUTE_REQUEST__HAS_MAX_OUTPUT_MAX_OUTPUT &&
	    m->max_output > 0 ? m->max_output : srv->cfg.max_output;
	exec_pipe_init(j, &j->out, SWEREX__V1__OUTPUT_STREAM__OUTPUT_STREAM_STDOUT,
	    cap);
	exec_pipe_init(j, &j->err, SWEREX__V1__OUTPUT_STREAM__OUTPUT_STREAM_STDERR,
	    cap);
	evtimer_assign(&j->ev_timer, srv->base, exec_timer_cb, j);
	evtimer_assign(&j->ev_kill, srv->base, exec_kill_cb, j);
	if (j->in_fd >= 0) {
		j->in = evbuffer_new();
		evutil_make_socket_nonblocking(j->in_fd);
		event_assign(&j->ev_in, srv->base, j->in_fd, EV_WRITE | EV_PERSIST,
		    exec_write_cb, j);
		if (j->in != NULL)
			evbuffer_add(j->in, m->stdin.data, m->stdin.len);
		event_add(&j->ev_in, NULL);
	}
	j->check = m->check;
	j->stream = m->stream;
	j->req = r;
	r->detach = exec_detach;
	r->detach_arg = j;
	TAILQ_INSERT_TAIL(&srv->execs, j, entry);
	srv->n_execs++;
	if (m->has_timeout_case == SWEREX__V1__EXECUTE_REQUEST__HAS_TIMEOUT_TIMEOUT) {
		j->timeout = m->timeout;
		server_timer_add(&j->ev_timer, m->timeout);
	}
	log_debug("execute: pid %ld: %s", (long)j->pid, j->what);
	free(argv);
	free(prog);
	exec_environ_free(env);
	return;

fail:
	conn_reply_error(r, SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED, NULL,
	    NULL, "cannot start command: %s", strerror(err));
out:
	free(argv);
	free(prog);
	exec_environ_free(env);
	if (j != NULL) {
		free(j->what);
		free(j->error_msg);
		free(j);
	}
}

/* Kill every job's tree and free the jobs (shutdown). */
void
exec_free_all(struct server *srv)
{
	struct exec_job *j;

	while ((j = TAILQ_FIRST(&srv->execs)) != NULL) {
		if (!j->reaped)
			proc_kill_tree(j->pid, SIGKILL);
		if (j->req != NULL) {
			conn_reply_error(j->req,
			    SWEREX__V1__ERROR_KIND__RESOURCE_EXHAUSTED, NULL, NULL,
			    "swerexd is shutting down");
			j->req = NULL;
		}
		exec_free(j);
	}
}
