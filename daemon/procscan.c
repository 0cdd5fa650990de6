/*
 * Walk every process in /proc with what its stat line says: how the daemon
 * finds what a session left behind when there is no reaper, and how the
 * reaper finds its children without /proc/PID/task/TID/children. libc
 * only: swerexd-reaper links it.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procscan.h"

/* Read what /proc/PID/stat says of pid; -1 if it is gone. */
int
procscan_stat(pid_t pid, struct procscan_stat *st)
{
	char path[64], buf[512], *p;
	long ppid, pgrp, sid;
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold anything; what follows its ")" not. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%c %ld %ld %ld", &st->state, &ppid,
	    &pgrp, &sid) != 4)
		return -1;
	st->pid = pid;
	st->ppid = (pid_t)ppid;
	st->pgrp = (pid_t)pgrp;
	st->sid = (pid_t)sid;
	return 0;
}

/* Call fn for each process /proc lists; -1 if /proc cannot be read. */
int
procscan_each(void (*fn)(const struct procscan_stat *st, void *arg), void *arg)
{
	struct procscan_stat st;
	struct dirent *de;
	DIR *d;

	d = opendir("/proc");
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		if (procscan_stat((pid_t)strtol(de->d_name, NULL, 10), &st) == 0)
			fn(&st, arg);
	}
	closedir(d);
	return 0;
}
