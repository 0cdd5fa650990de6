/* Descriptors a process holds, as tests count them. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fds.h"

/*
 * Count a daemon's open descriptors, pipes left out: the spec pipe of its
 * spare reaper comes and goes on its own (two of them while one starts),
 * and what tests count are sockets and files. -1 if it is gone.
 */
int
fds_count(pid_t pid)
{
	char path[32], link[64], target[32];
	struct dirent *de;
	ssize_t len;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof link, "%s/%.16s", path, de->d_name);
		len = readlink(link, target, sizeof target - 1);
		if (len > 0 && (target[len] = '\0', strncmp(target, "pipe:", 5) == 0))
			continue;
		n++;
	}
	closedir(d);
	return n;
}
