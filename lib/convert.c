/*
 * libswerex results: the public structs (errors, observations, execute
 * results, session lists) converted from the wire's messages, copied and
 * freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "swerex.h"

/* Copy len bytes into a new NUL-terminated buffer. */
char *
convert_bytes(const void *p, size_t len)
{
	char *s;

	if (len == SIZE_MAX)
		return NULL;
	s = malloc(len + 1);
	if (s == NULL)
		return NULL;
	if (len != 0)
		memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Duplicate a string, reading NULL as "". */
char *
convert_string(const char *s)
{
	return strdup(s != NULL ? s : "");
}

/* Convert a wire observation. */
struct swerex_observation *
convert_observation(const Swerex__V1__BashObservation *pb)
{
	struct swerex_observation *o;

	o = calloc(1, sizeof *o);
	if (o == NULL)
		return NULL;
	o->output = convert_bytes(pb->output.data, pb->output.len);
	o->output_len = pb->output.len;
	o->failure_reason = convert_string(pb->failure_reason);
	o->expect_string = convert_string(pb->expect_string);
	if (o->output == NULL || o->failure_reason == NULL ||
	    o->expect_string == NULL)
		goto fail;
	o->has_exit_code = pb->has_exit_code_case ==
	    SWEREX__V1__BASH_OBSERVATION__HAS_EXIT_CODE_EXIT_CODE;
	o->exit_code = o->has_exit_code ? pb->exit_code : 0;
	o->truncated = pb->truncated;
	o->output_bytes = pb->output_bytes;
	o->carried_over = pb->carried_over;
	return o;

fail:
	swerex_observation_free(o);
	return NULL;
}

/* Convert a wire execute response; both buffers are NUL-terminated. */
struct swerex_exec_result *
convert_exec_result(const Swerex__V1__ExecuteResponse *pb)
{
	struct swerex_exec_result *r;

	r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	r->stdout_data = convert_bytes(pb->stdout.data, pb->stdout.len);
	r->stdout_len = pb->stdout.len;
	r->stderr_data = convert_bytes(pb->stderr.data, pb->stderr.len);
	r->stderr_len = pb->stderr.len;
	r->failure_reason = convert_string(pb->failure_reason);
	if (r->stdout_data == NULL || r->stderr_data == NULL ||
	    r->failure_reason == NULL) {
		swerex_exec_result_free(r);
		return NULL;
	}
	r->has_exit_code = pb->has_exit_code_case ==
	    SWEREX__V1__EXECUTE_RESPONSE__HAS_EXIT_CODE_EXIT_CODE;
	r->exit_code = r->has_exit_code ? pb->exit_code : 0;
	r->signal = pb->signal;
	r->stdout_truncated = pb->stdout_truncated;
	r->stderr_truncated = pb->stderr_truncated;
	r->stdout_bytes = pb->stdout_bytes;
	r->stderr_bytes = pb->stderr_bytes;
	return r;
}

/* Convert a wire error; the kind number is kept even if unknown here. */
struct swerex_error *
convert_error(const Swerex__V1__Error *pb)
{
	struct swerex_error *e;
	size_t i;

	e = calloc(1, sizeof *e);
	if (e == NULL)
		return NULL;
	e->kind = (enum swerex_error_kind)pb->kind;
	e->message = convert_string(pb->message);
	if (e->message == NULL)
		goto fail;
	if (pb->n_extra != 0) {
		e->extra = calloc(pb->n_extra, sizeof *e->extra);
		if (e->extra == NULL)
			goto fail;
		e->n_extra = pb->n_extra;
		for (i = 0; i < pb->n_extra; i++) {
			e->extra[i].key = convert_string(pb->extra[i]->key);
			e->extra[i].value = convert_string(pb->extra[i]->value);
			if (e->extra[i].key == NULL || e->extra[i].value == NULL)
				goto fail;
		}
	}
	if (pb->observation != NULL) {
		e->observation = convert_observation(pb->observation);
		if (e->observation == NULL)
			goto fail;
	}
	if (pb->execute != NULL) {
		e->exec_result = convert_exec_result(pb->execute);
		if (e->exec_result == NULL)
			goto fail;
	}
	return e;

fail:
	swerex_error_free(e);
	return NULL;
}

/* Convert a wire session list; 0, or -1 if memory ran out. */
int
convert_sessions(const Swerex__V1__ListSessionsResponse *pb,
    struct swerex_session_info **out, size_t *n)
{
	const Swerex__V1__SessionInfo *pi;
	struct swerex_session_info *s;
	size_t i;

	*out = NULL;
	*n = 0;
	if (pb->n_sessions == 0)
		return 0;
	s = calloc(pb->n_sessions, sizeof *s);
	if (s == NULL)
		return -1;
	for (i = 0; i < pb->n_sessions; i++) {
		pi = pb->sessions[i];
		s[i].name = convert_string(pi->name);
		s[i].last_command = convert_string(pi->last_command);
		if (s[i].name == NULL || s[i].last_command == NULL) {
			swerex_sessions_free(s, pb->n_sessions);
			return -1;
		}
		s[i].pid = pi->pid;
		s[i].state = (enum swerex_session_state)pi->state;
		s[i].created = pi->created;
		s[i].exit_status = pi->exit_status;
	}
	*out = s;
	*n = pb->n_sessions;
	return 0;
}

/* Copy an observation. */
struct swerex_observation *
swerex_observation_dup(const struct swerex_observation *o)
{
	struct swerex_observation *copy;

	if (o == NULL)
		return NULL;
	copy = calloc(1, sizeof *copy);
	if (copy == NULL)
		return NULL;
	*copy = *o;
	copy->output = convert_bytes(o->output, o->output != NULL ?
	    o->output_len : 0);
	copy->output_len = o->output != NULL ? o->output_len : 0;
	copy->failure_reason = convert_string(o->failure_reason);
	copy->expect_string = convert_string(o->expect_string);
	if (copy->output == NULL || copy->failure_reason == NULL ||
	    copy->expect_string == NULL) {
		swerex_observation_free(copy);
		return NULL;
	}
	return copy;
}

/* Copy an execute's result. */
struct swerex_exec_result *
swerex_exec_result_dup(const struct swerex_exec_result *r)
{
	struct swerex_exec_result *copy;

	if (r == NULL)
		return NULL;
	copy = calloc(1, sizeof *copy);
	if (copy == NULL)
		return NULL;
	*copy = *r;
	copy->stdout_len = r->stdout_data != NULL ? r->stdout_len : 0;
	copy->stdout_data = convert_bytes(r->stdout_data, copy->stdout_len);
	copy->stderr_len = r->stderr_data != NULL ? r->stderr_len : 0;
	copy->stderr_data = convert_bytes(r->stderr_data, copy->stderr_len);
	copy->failure_reason = convert_string(r->failure_reason);
	if (copy->stdout_data == NULL || copy->stderr_data == NULL ||
	    copy->failure_reason == NULL) {
		swerex_exec_result_free(copy);
		return NULL;
	}
	return copy;
}

/* Copy an error, with its extra entries, observation and execute result. */
struct swerex_error *
swerex_error_dup(const struct swerex_error *e)
{
	struct swerex_error *copy;
	size_t i;

	if (e == NULL)
		return NULL;
	copy = calloc(1, sizeof *copy);
	if (copy == NULL)
		return NULL;
	copy->kind = e->kind;
	copy->message = convert_string(e->message);
	if (copy->message == NULL)
		goto fail;
	if (e->n_extra != 0 && e->extra != NULL) {
		copy->extra = calloc(e->n_extra, sizeof *copy->extra);
		if (copy->extra == NULL)
			goto fail;
		copy->n_extra = e->n_extra;
		for (i = 0; i < e->n_extra; i++) {
			copy->extra[i].key = convert_string(e->extra[i].key);
			copy->extra[i].value =
			    convert_string(e->extra[i].value);
			if (copy->extra[i].key == NULL ||
			    copy->extra[i].value == NULL)
				goto fail;
		}
	}
	if (e->observation != NULL) {
		copy->observation = swerex_observation_dup(e->observation);
		if (copy->observation == NULL)
			goto fail;
	}
	if (e->exec_result != NULL) {
		copy->exec_result = swerex_exec_result_dup(e->exec_result);
		if (copy->exec_result == NULL)
			goto fail;
	}
	return copy;

fail:
	swerex_error_free(copy);
	return NULL;
}

/* Free an observation. */
void
swerex_observation_free(struct swerex_observation *o)
{
	if (o == NULL)
		return;
	free(o->output);
	free(o->failure_reason);
	free(o->expect_string);
	free(o);
}

/* Free an error. */
void
swerex_error_free(struct swerex_error *e)
{
	size_t i;

	if (e == NULL)
		return;
	free(e->message);
	for (i = 0; i < e->n_extra; i++) {
		free(e->extra[i].key);
		free(e->extra[i].value);
	}
	free(e->extra);
	swerex_observation_free(e->observation);
	swerex_exec_result_free(e->exec_result);
	free(e);
}

/* Free an execute's result. */
void
swerex_exec_result_free(struct swerex_exec_result *r)
{
	if (r == NULL)
		return;
	free(r->stdout_data);
	free(r->stderr_data);
	free(r->failure_reason);
	free(r);
}

/* Free a session list from swerex_list_sessions(). */
void
swerex_sessions_free(struct swerex_session_info *s, size_t n)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(s[i].name);
		free(s[i].last_command);
	}
	free(s);
}

/* Give the value of key in e->extra, or NULL. */
const char *
swerex_error_extra(const struct swerex_error *e, const char *key)
{
	size_t i;

	if (e == NULL || key == NULL)
		return NULL;
	for (i = 0; i < e->n_extra; i++) {
		if (e->extra[i].key != NULL && strcmp(e->extra[i].key, key) == 0)
			return e->extra[i].value;
	}
	return NULL;
}

/* Give the upper-case name of an error kind. */
const char *
swerex_error_kind_name(enum swerex_error_kind kind)
{
	switch (kind) {
	case SWEREX_ERR_UNSPECIFIED: return "UNSPECIFIED";
	case SWEREX_ERR_SESSION_EXISTS: return "SESSION_EXISTS";
	case SWEREX_ERR_SESSION_DOES_NOT_EXIST: return "SESSION_DOES_NOT_EXIST";
	case SWEREX_ERR_SESSION_BUSY: return "SESSION_BUSY";
	case SWEREX_ERR_SESSION_DIED: return "SESSION_DIED";
	case SWEREX_ERR_COMMAND_TIMEOUT: return "COMMAND_TIMEOUT";
	case SWEREX_ERR_NON_ZERO_EXIT_CODE: return "NON_ZERO_EXIT_CODE";
	case SWEREX_ERR_NO_EXIT_CODE: return "NO_EXIT_CODE";
	case SWEREX_ERR_BASH_INCORRECT_SYNTAX: return "BASH_INCORRECT_SYNTAX";
	case SWEREX_ERR_INVALID_REQUEST: return "INVALID_REQUEST";
	case SWEREX_ERR_UNSUPPORTED_VERSION: return "UNSUPPORTED_VERSION";
	case SWEREX_ERR_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
	case SWEREX_ERR_INTERNAL: return "INTERNAL";
	case SWEREX_ERR_PROTOCOL: return "PROTOCOL_ERROR";
	case SWEREX_ERR_SESSION_START_FAILED: return "SESSION_START_FAILED";
	case SWEREX_ERR_INTERRUPTED: return "INTERRUPTED";
	case SWEREX_ERR_FILE_NOT_FOUND: return "FILE_NOT_FOUND";
	case SWEREX_ERR_IS_A_DIRECTORY: return "IS_A_DIRECTORY";
	case SWEREX_ERR_NOT_A_DIRECTORY: return "NOT_A_DIRECTORY";
	case SWEREX_ERR_PERMISSION_DENIED: return "PERMISSION_DENIED";
	case SWEREX_ERR_NO_SPACE: return "NO_SPACE";
	case SWEREX_ERR_FILE_ERROR: return "FILE_ERROR";
	case SWEREX_ERR_UNAUTHENTICATED: return "UNAUTHENTICATED";
	case SWEREX_ERR_NO_OUTPUT_TIMEOUT: return "NO_OUTPUT_TIMEOUT";
	case SWEREX_ERR_LIMIT_EXCEEDED: return "LIMIT_EXCEEDED";
	case SWEREX_ERR_CONNECT: return "CONNECT";
	case SWEREX_ERR_DISCONNECTED: return "DISCONNECTED";
	case SWEREX_ERR_BAD_ARGUMENT: return "BAD_ARGUMENT";
	case SWEREX_ERR_NO_MEMORY: return "NO_MEMORY";
	}
	return "UNKNOWN";
}
