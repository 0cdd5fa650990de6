/* Descriptors a process holds, as tests count them (tests/fds.c). */
#ifndef SWEREX_TESTS_FDS_H
#define SWEREX_TESTS_FDS_H

#include <sys/types.h>

int fds_count(pid_t pid);

#endif
