/*
 * Who may talk to the daemon. TCP peers prove themselves with the token in
 * their Hello; a peer that gets it wrong is answered later each time it
 * tries again (per address), which makes guessing slow even over many
 * connections. Unix peers are trusted by the socket's file mode, narrowed
 * further by an optional list of uids (SO_PEERCRED).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "server.h"
#include "remote.h"

/* Addresses remembered; the oldest is forgotten first. */
#define AUTH_SLOTS 256
/* Failures older than this are forgiven. */
#define AUTH_FORGET 600
/* Delay of the n-th failure: AUTH_DELAY_BASE * 2^(n-1), at most AUTH_DELAY_MAX. */
#define AUTH_DELAY_BASE 0.25
#define AUTH_DELAY_MAX 8.0

struct auth_failure {
	char addr[64];
	unsigned n;
	time_t last;
};

/* Load (or reload) the token from --token-file or $SWEREXD_TOKEN. */
int
auth_load_token(struct server *srv)
{
	char err[512], *tok;

	if (remote_token_load(srv->cfg.token_file, "SWEREXD_TOKEN", &tok, err,
	    sizeof err) < 0) {
		log_error("%s", err);
		return -1;
	}
	if (tok == NULL)
		return 0;
	if (strlen(tok) < 16)
		log_warn("the token is shorter than 16 characters; anyone who "
		    "can reach a TCP listener may guess it");
	free(srv->token);
	srv->token = tok;
	return 0;
}

/* Tell whether a Hello's token is the daemon's. */
bool
auth_token_ok(const struct server *srv, const char *token)
{
	return srv->token != NULL && remote_token_equal(srv->token, token);
}

/* Record a failure from addr; give the seconds to wait before answering. */
double
auth_failed(struct server *srv, const char *addr)
{
	struct auth_failure *f, *slot = NULL, *oldest = NULL;
	time_t now = time(NULL);
	double delay;
	size_t i;

	if (srv->auth_failures == NULL &&
	    (srv->auth_failures = calloc(AUTH_SLOTS, sizeof *f)) == NULL)
		return AUTH_DELAY_MAX;
	for (i = 0; i < AUTH_SLOTS; i++) {
		f = &srv->auth_failures[i];
		if (f->n > 0 && strcmp(f->addr, addr) == 0) {
			slot = f;
			break;
		}
		/* A free slot, else the least recent address. */
		if (oldest == NULL || (oldest->n != 0 &&
		    (f->n == 0 || f->last < oldest->last)))
			oldest = f;
	}
	if (slot == NULL) {
		slot = oldest;
		memset(slot, 0, sizeof *slot);
		snprintf(slot->addr, sizeof slot->addr, "%s", addr);
	} else if (now - slot->last > AUTH_FORGET)
		slot->n = 0;
	slot->n++;
	slot->last = now;
	delay = AUTH_DELAY_BASE;
	for (i = 1; i < slot->n && delay < AUTH_DELAY_MAX; i++)
		delay *= 2;
	if (delay > AUTH_DELAY_MAX)
		delay = AUTH_DELAY_MAX;
	log_warn("authentication failure %u from %s; answering in %.2f s",
	    slot->n, addr, delay);
	return delay;
}

/* Tell whether the peer of a Unix socket may connect. */
bool
auth_uid_allowed(const struct server *srv, int fd, unsigned *uid)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	size_t i;

	*uid = (unsigned)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return srv->cfg.n_allow_uid == 0;
	*uid = cred.uid;
	if (srv->cfg.n_allow_uid == 0)
		return true;
	for (i = 0; i < srv->cfg.n_allow_uid; i++)
		if (srv->cfg.allow_uid[i] == cred.uid)
			return true;
	return false;
}

/* Forget the token and the failure table. */
void
auth_free(struct server *srv)
{
	free(srv->auth_failures);
	srv->auth_failures = NULL;
	free(srv->token);
	srv->token = NULL;
}
