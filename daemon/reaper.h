/* swerexd-reaper: the parent of each session's bash (see reaper.c). */
#ifndef SWEREXD_REAPER_H
#define SWEREXD_REAPER_H

/* argv[0] under which swerexd acts as the reaper. */
#define REAPER_NAME "swerexd-reaper"
/* argv[1] of a spare reaper (spare.c), which reads its spec from a pipe. */
#define REAPER_SPARE "--spare"
#define REAPER_SPEC_FD 3

int reaper_main(int argc, char **argv);

#endif
