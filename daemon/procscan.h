/* Walk /proc's processes (procscan.c): libc only, for swerexd-reaper too. */
#ifndef SWEREXD_PROCSCAN_H
#define SWEREXD_PROCSCAN_H

#include <sys/types.h>

/* What /proc/PID/stat says of a process. */
struct procscan_stat {
	pid_t pid;
	char state;
	pid_t ppid, pgrp, sid;
};

int procscan_stat(pid_t pid, struct procscan_stat *st);
int procscan_each(void (*fn)(const struct procscan_stat *st, void *arg),
		  void *arg);

#endif
