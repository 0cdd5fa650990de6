/* Processes of sessions and one-off commands: clean spawns, tree sweeps. */
#ifndef SWEREXD_PROC_H
#define SWEREXD_PROC_H

#include <spawn.h>
#include <sys/types.h>

void proc_kill_tree(pid_t sid, int sig);
void proc_spawnattr_init(posix_spawnattr_t *attr);
char *proc_find_file(const char *name, const char *dir);
char *proc_find_reaper(void);

#endif
