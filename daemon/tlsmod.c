/*
 * Find and load swerexd's TLS module (see tlsmod.h), once, the first time
 * a TLS context is wanted. It stays loaded: OpenSSL cannot be unloaded
 * safely (its exit handlers live in libcrypto).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"
#include "tlsmod.h"

#ifdef SWEREXD_TLS_BUILTIN

extern const struct tlsmod sslmod_ops;

/* A static build has the module linked in. */
const struct tlsmod *
tlsmod_load(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	return &sslmod_ops;
}

#else

#define TLSMOD_NAME "swerexd-tls.so"

static const struct tlsmod *tlsmod_ops;

/*
 * Load the module beside our executable (the build tree), else from the
 * installed module directory. It must come from the same version, since
 * nothing else checks that struct tlsmod matches. NULL with err filled in.
 */
const struct tlsmod *
tlsmod_load(char *err, size_t errlen)
{
	const struct tlsmod *ops;
	char *path;
	void *h;

	if (tlsmod_ops != NULL)
		return tlsmod_ops;
	path = proc_find_file(TLSMOD_NAME, SWEREXD_MODULEDIR);
	if (path == NULL) {
		snprintf(err, errlen, "TLS is not available: %s is neither "
		    "beside swerexd nor in %s", TLSMOD_NAME, SWEREXD_MODULEDIR);
		return NULL;
	}
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (h == NULL) {
		snprintf(err, errlen, "TLS is not available: %s", dlerror());
		goto fail;
	}
	ops = dlsym(h, "sslmod_ops");
	if (ops == NULL) {
		snprintf(err, errlen, "TLS is not available: %s is not "
		    "swerexd's TLS module", path);
		goto fail;
	}
	if (ops->abi != TLSMOD_ABI || strcmp(ops->version, SWEREX_VERSION) != 0) {
		snprintf(err, errlen, "TLS is not available: %s is from "
		    "swerexd %s, this is %s", path, ops->abi == TLSMOD_ABI ?
		    ops->version : "of another version", SWEREX_VERSION);
		goto fail;
	}
	free(path);
	tlsmod_ops = ops;
	return ops;

fail:
	/* RTLD_NODELETE: the handle is not closed, nothing is unmapped. */
	free(path);
	return NULL;
}

#endif
