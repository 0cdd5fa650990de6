/*
 * An external program built against an installed libswerex by
 * test-install.sh, through pkg-config only (meson does not build it).
 * Usage: install-example URL. Creates a session, runs a command in it and
 * prints three lines: the file libswerex was loaded from, the daemon's
 * version and the command's output.
 */
/* For dladdr(3), which says where libswerex was loaded from. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <swerex.h>

/* Print an error as "install-example: KIND: message" and free it. */
static int
example_fail(const char *what, struct swerex_error *err)
{
	fprintf(stderr, "install-example: %s: %s: %s\n", what,
	    err != NULL ? swerex_error_kind_name(err->kind) : "NO_MEMORY",
	    err != NULL ? err->message : "out of memory");
	swerex_error_free(err);
	return 1;
}

int
main(int argc, char **argv)
{
	struct swerex_create_opts co = { .session = "example" };
	struct swerex_run_opts ro = { .command = "echo $((6 * 7))",
	    .session = "example" };
	struct swerex_observation *obs = NULL;
	struct swerex_client *c = NULL;
	struct swerex_error *err = NULL;
	Dl_info info;
	int status = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: install-example URL\n");
		return 2;
	}
	/* Which libswerex answered: the DESTDIR's, or this program itself. */
	if (dladdr((void *)swerex_connect, &info) == 0 ||
	    info.dli_fname == NULL) {
		fprintf(stderr, "install-example: dladdr found no object\n");
		return 1;
	}
	printf("library=%s\n", info.dli_fname);
	if (swerex_connect(argv[1], "install-example", &c, &err) < 0)
		return example_fail("connect", err);
	printf("daemon=%s\n", swerex_daemon_version(c));
	if (swerex_create_session(c, &co, NULL, NULL, &err) < 0) {
		status = example_fail("create_session", err);
		goto out;
	}
	if (swerex_run(c, &ro, &obs, &err) < 0) {
		status = example_fail("run", err);
		goto out;
	}
	printf("output=%.*s", (int)obs->output_len, obs->output);
	swerex_observation_free(obs);
	status = swerex_close_session(c, "example", &err) < 0 ?
	    example_fail("close_session", err) : 0;
out:
	swerex_client_free(c);
	return status;
}
