/* Process trees of sessions and one-off commands. */
#ifndef SWEREXD_PROC_H
#define SWEREXD_PROC_H

#include <sys/types.h>

void proc_kill_tree(pid_t sid, int sig);

#endif
