/* Per-session cgroup v2 groups for memory and pids limits. */
#ifndef SWEREXD_CGROUP_H
#define SWEREXD_CGROUP_H

#include <stdbool.h>
#include <stdint.h>

struct server;

/* Counters of a session's cgroup that grow when a limit is hit. */
struct cgroup_counters {
	uint64_t oom_kill;      /* memory.events oom_kill */
	uint64_t pids_max;      /* pids.events max: forks refused */
};

int cgroup_init(struct server *srv);
void cgroup_free(struct server *srv);
int cgroup_session_create(struct server *srv, uint64_t memory, uint64_t pids,
			  char **path);
void cgroup_session_counters(const char *path, struct cgroup_counters *c);
void cgroup_session_remove(const char *path);

#endif
