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

/* Call fn for each process /proc lists; -1 if /proc cannot be read. */
int
procscan_each(void (*fn)(const struct procscan_stat *st, void *arg), void *arg)
{
	char path[64], buf[512], *p;
	struct procscan_stat st;
	struct dirent *de;
	long ppid, pgrp, sid;
	ssize_t n;
	DIR *d;
	int fd;

	d = opendir("/proc");
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		st.pid = (pid_t)strtol(de->d_name, NULL, 10);
		snprintf(path, sizeof path, "/proc/%ld/stat", (long)st.pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* The command name may hold anything; what follows its ")" not. */
		p = strrchr(buf, ')');
		if (p == NULL || sscanf(p + 2, "%c %ld %ld %ld", &st.state, &ppid,
		    &pgrp, &sid) != 4)
			continue;
		st.ppid = (pid_t)ppid;
		st.pgrp = (pid_t)pgrp;
		st.sid = (pid_t)sid;
		fn(&st, arg);
	}
	closedir(d);
	return 0;
}
