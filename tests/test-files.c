/*
 * File requests: exact reads and atomic writes, their error kinds, streamed
 * upload and download of big files and whole trees (with the daemon's memory
 * watched), and uploads cut short leaving nothing behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/buffer.h>

#include "harness.h"
#include "raw.h"
#include "swerex.h"
#include "tap.h"
#include "wire.h"

typedef Swerex__V1__Request Request;
typedef Swerex__V1__Response Response;

#define MIB (1024u * 1024u)

/* A path in the test's temp dir. */
static const char *
tpath(struct harness *h, char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", harness_dir(h), name);
	return buf;
}

/* Fill a buffer with pseudo-random bytes, continuing the xorshift state *x. */
static void
fill_random(unsigned char *p, size_t n, uint64_t *x)
{
	uint64_t v = *x;
	size_t i;

	for (i = 0; i < n; i += 8) {
		v ^= v << 13;
		v ^= v >> 7;
		v ^= v << 17;
		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
	*x = v;
}

/* Fold bytes into a 64-bit FNV-1a hash. */
static uint64_t
fnv1a(uint64_t hash, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ull;
	}
	return hash;
}

#define FNV_INIT 0xcbf29ce484222325ull

/* Hash a local file in bounded chunks; false if it cannot be read. */
static bool
hash_file(const char *path, uint64_t *hash, uint64_t *size)
{
	static unsigned char buf[1 << 20];
	ssize_t r;
	int fd;

	*hash = FNV_INIT;
	*size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	for (;;) {
		r = read(fd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		*hash = fnv1a(*hash, buf, (size_t)r);
		*size += (uint64_t)r;
	}
	close(fd);
	return r == 0;
}

/* Read a whole local file into memory, up to EOF (/proc sizes are 0). */
static char *
slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf, *nbuf;
	size_t n = 0, cap;
	ssize_t r;
	int fd;

	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	cap = (size_t)st.st_size + 4096;
	buf = malloc(cap + 1);
	while (buf != NULL) {
		if (n == cap) {
			cap *= 2;
			nbuf = realloc(buf, cap + 1);
			if (nbuf == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nbuf;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (buf != NULL)
		buf[n] = '\0';
	*len = n;
	return buf;
}

/* Create a local file with exactly these bytes and mode; false on failure. */
static bool
put_file(const char *path, const void *data, size_t len, mode_t mode)
{
	const char *p = data;
	ssize_t w;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	while (len > 0) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		p += w;
		len -= (size_t)w;
	}
	if (fchmod(fd, mode) < 0)
		len = 1;
	close(fd);
	return len == 0;
}

/* Permission bits of a local path, or -1. */
static int
mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -1;
	return (int)(st.st_mode & 07777);
}

/* Whether a path exists (without following a final symlink). */
static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Names in a directory that start with ".", as one string (empty: none). */
static void
hidden_entries(const char *dir, char *buf, size_t size)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	size_t off = 0;

	buf[0] = '\0';
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		off += (size_t)snprintf(buf + off, size > off ? size - off : 0, "%s ",
					de->d_name);
		if (off >= size)
			break;
	}
	closedir(d);
}

/* Number of entries in a directory other than . and .., or -1. */
static int
count_entries(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Check no staging entry (a name starting with ".") is left in dir. */
static void
check_no_staging_at(const char *file, int line, const char *dir)
{
	char names[1024];

	hidden_entries(dir, names, sizeof names);
	if (names[0] != '\0')
		tap_diag(file, line, "left behind in %s: %s", dir, names);
}
#define CHECK_NO_STAGING(dir) check_no_staging_at(__FILE__, __LINE__, (dir))

/* Write through the daemon; diagnose and return -1 on failure. */
static int
write_ok_at(const char *file, int line, struct swerex_client *c, const char *path,
	    const void *data, size_t len, int mode, bool create_parents)
{
	struct swerex_error *err = NULL;

	if (swerex_write_file(c, path, data, len, mode, create_parents, &err) == 0)
		return 0;
	tap_diag(file, line, "write_file(%s) failed", path);
	harness_show_error("error", err);
	swerex_error_free(err);
	return -1;
}
#define WRITE_OK(c, path, data, len, mode, cp) \
	write_ok_at(__FILE__, __LINE__, (c), (path), (data), (len), (mode), (cp))

/* Read through the daemon; diagnose and return NULL on failure. */
static char *
read_ok_at(const char *file, int line, struct swerex_client *c, const char *path,
	   uint64_t offset, int64_t length, size_t *len, uint64_t *size)
{
	struct swerex_error *err = NULL;
	char *data = NULL;

	*len = 0;
	if (swerex_read_file(c, path, offset, length, &data, len, size, &err) == 0)
		return data;
	tap_diag(file, line, "read_file(%s) failed", path);
	harness_show_error("error", err);
	swerex_error_free(err);
	return NULL;
}
#define READ_OK(c, path, off, length, len, size) \
	read_ok_at(__FILE__, __LINE__, (c), (path), (off), (length), (len), (size))

/* Check an error has the expected kind; diagnose otherwise. Frees it. */
static void
check_kind_at(const char *file, int line, const char *what, int ret,
	      struct swerex_error *err, enum swerex_error_kind kind)
{
	if (ret == 0)
		tap_diag(file, line, "%s: expected %s, it succeeded", what,
			 swerex_error_kind_name(kind));
	else if (err == NULL || err->kind != kind) {
		tap_diag(file, line, "%s: expected %s, got %s", what,
			 swerex_error_kind_name(kind),
			 err ? swerex_error_kind_name(err->kind) : "no error object");
		harness_show_error("error", err);
	}
	swerex_error_free(err);
}

/* Expect read_file(path) to fail with kind. */
static void
read_fails_at(const char *file, int line, struct swerex_client *c,
	      const char *path, enum swerex_error_kind kind)
{
	struct swerex_error *err = NULL;
	char *data = NULL;
	size_t len = 0;
	int r;

	r = swerex_read_file(c, path, 0, -1, &data, &len, NULL, &err);
	free(data);
	check_kind_at(file, line, path, r, err, kind);
}
#define READ_FAILS(c, path, kind) read_fails_at(__FILE__, __LINE__, (c), (path), (kind))

/* Expect write_file(path) to fail with kind. */
static void
write_fails_at(const char *file, int line, struct swerex_client *c,
	       const char *path, bool create_parents, enum swerex_error_kind kind)
{
	struct swerex_error *err = NULL;
	int r;

	r = swerex_write_file(c, path, "new", 3, -1, create_parents, &err);
	check_kind_at(file, line, path, r, err, kind);
}
#define WRITE_FAILS(c, path, cp, kind) \
	write_fails_at(__FILE__, __LINE__, (c), (path), (cp), (kind))

/* Every byte value survives a write and a read. */
HTEST(write_read_all_byte_values)
{
	struct swerex_client *c = harness_client(h);
	unsigned char all[256];
	char path[PATH_MAX], *got, *local;
	size_t len, local_len;
	uint64_t size = 0;
	int i;

	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	tpath(h, path, sizeof path, "all.bin");
	REQUIRE(WRITE_OK(c, path, all, sizeof all, -1, true) == 0);
	got = READ_OK(c, path, 0, -1, &len, &size);
	CHECK_BYTES("read back", got, len, all, sizeof all);
	CHECK_INT(size, 256);
	if (got != NULL)
		CHECK_INT(got[len], 0);
	free(got);
	local = slurp(path, &local_len);
	CHECK_BYTES("on disk", local, local_len, all, sizeof all);
	free(local);

	/* An empty file is a file too. */
	tpath(h, path, sizeof path, "empty");
	REQUIRE(WRITE_OK(c, path, "", 0, -1, true) == 0);
	got = READ_OK(c, path, 0, -1, &len, &size);
	CHECK(got != NULL);
	CHECK_INT(len, 0);
	CHECK_INT(size, 0);
	free(got);
	CHECK(exists(path));
}

/* 5 MiB of random bytes survive a write and a read. */
HTEST(random_5mib_round_trip)
{
	struct swerex_client *c = harness_client(h);
	size_t n = 5 * MIB, len, local_len;
	unsigned char *data = malloc(n);
	uint64_t x = 5, size = 0;
	char path[PATH_MAX], *got, *local;

	REQUIRE(data != NULL);
	fill_random(data, n, &x);
	tpath(h, path, sizeof path, "random.bin");
	REQUIRE(WRITE_OK(c, path, data, n, -1, true) == 0);
	got = READ_OK(c, path, 0, -1, &len, &size);
	CHECK_BYTES("read back", got, len, data, n);
	CHECK_INT(size, n);
	free(got);
	local = slurp(path, &local_len);
	CHECK_BYTES("on disk", local, local_len, data, n);
	free(local);
	free(data);
}

/* SWE-ReX's own case: a 1 MiB file written outside is read whole. */
HTEST(read_1mib)
{
	struct swerex_client *c = harness_client(h);
	unsigned char *data = malloc(MIB);
	uint64_t x = 1, size = 0;
	char path[PATH_MAX], *got;
	size_t len;

	REQUIRE(data != NULL);
	fill_random(data, MIB, &x);
	tpath(h, path, sizeof path, "one-mib.bin");
	REQUIRE(put_file(path, data, MIB, 0644));
	got = READ_OK(c, path, 0, -1, &len, &size);
	CHECK_BYTES("1 MiB", got, len, data, MIB);
	CHECK_INT(size, MIB);
	free(got);
	free(data);
}

/* offset and length select a range; size is the whole file's. */
HTEST(read_range)
{
	struct swerex_client *c = harness_client(h);
	char path[PATH_MAX], *got;
	size_t len;
	uint64_t size;

	tpath(h, path, sizeof path, "digits");
	REQUIRE(put_file(path, "0123456789", 10, 0644));
	size = 0;
	got = READ_OK(c, path, 3, 4, &len, &size);
	CHECK_MEM(got, len, "3456");
	CHECK_INT(size, 10);
	free(got);
	got = READ_OK(c, path, 7, -1, &len, &size);
	CHECK_MEM(got, len, "789");
	free(got);
	got = READ_OK(c, path, 0, 0, &len, &size);
	CHECK_MEM(got, len, "");
	free(got);
	got = READ_OK(c, path, 8, 100, &len, &size);
	CHECK_MEM(got, len, "89");
	free(got);
	got = READ_OK(c, path, 10, -1, &len, &size);
	CHECK_MEM(got, len, "");
	CHECK_INT(size, 10);
	free(got);
}

/* Failed reads have the kind their cause names. */
HTEST(read_errors)
{
	struct swerex_client *c = harness_client(h);
	char path[PATH_MAX], file[PATH_MAX];

	READ_FAILS(c, tpath(h, path, sizeof path, "missing"), SWEREX_ERR_FILE_NOT_FOUND);
	/* The details name the path and the errno. */
	{
		struct swerex_error *err = NULL;
		char *data = NULL;
		size_t len = 0;

		if (swerex_read_file(c, path, 0, -1, &data, &len, NULL, &err) != 0 &&
		    err != NULL) {
			CHECK_STR(swerex_error_extra(err, "path"), path);
			CHECK_STR(swerex_error_extra(err, "errno"), "ENOENT");
		}
		free(data);
		swerex_error_free(err);
	}
	READ_FAILS(c, tpath(h, path, sizeof path, "missing/deeper"),
		   SWEREX_ERR_FILE_NOT_FOUND);
	READ_FAILS(c, harness_dir(h), SWEREX_ERR_IS_A_DIRECTORY);
	tpath(h, file, sizeof file, "plain");
	REQUIRE(put_file(file, "x", 1, 0644));
	READ_FAILS(c, tpath(h, path, sizeof path, "plain/x"), SWEREX_ERR_NOT_A_DIRECTORY);
	/* The connection is fine afterwards. */
	{
		size_t len;
		char *got = READ_OK(c, file, 0, -1, &len, NULL);

		CHECK_MEM(got, len, "x");
		free(got);
	}
}

/* Missing parents are created unless create_parents is false. */
HTEST(write_create_parents)
{
	struct swerex_client *c = harness_client(h);
	char path[PATH_MAX], dir[PATH_MAX], *got;
	size_t len;

	tpath(h, path, sizeof path, "p/q/r/file.txt");
	REQUIRE(WRITE_OK(c, path, "deep\n", 5, -1, true) == 0);
	got = slurp(path, &len);
	CHECK_MEM(got, len, "deep\n");
	free(got);

	tpath(h, path, sizeof path, "x/y/file.txt");
	WRITE_FAILS(c, path, false, SWEREX_ERR_FILE_NOT_FOUND);
	CHECK(!exists(tpath(h, dir, sizeof dir, "x")));
	/* create_parents false with the parent present is an ordinary write. */
	tpath(h, path, sizeof path, "p/flat.txt");
	CHECK(WRITE_OK(c, path, "flat", 4, -1, false) == 0);
	got = slurp(path, &len);
	CHECK_MEM(got, len, "flat");
	free(got);
}

/*
 * Root is not stopped by permissions, but sysfs refuses new files (EACCES),
 * which the daemon must report as PERMISSION_DENIED.
 */
HTEST(write_permission_denied)
{
	struct swerex_client *c = harness_client(h);
	char path[PATH_MAX];
	int fd, e;

	snprintf(path, sizeof path, "/sys/swerex-test-%d", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	e = errno;
	if (fd >= 0) {
		close(fd);
		unlink(path);
		printf("# %s is writable here; nothing to test\n", path);
		return;
	}
	printf("# creating %s locally: %s\n", path, strerrorname_np(e));
	if (e == EACCES || e == EPERM || e == EROFS)
		WRITE_FAILS(c, path, true, SWEREX_ERR_PERMISSION_DENIED);
	CHECK(!exists(path));
}

/* A replaced file is a new file: a reader of the old one keeps the old bytes. */
HTEST(write_is_atomic_replace)
{
	struct swerex_client *c = harness_client(h);
	char dir[PATH_MAX], path[PATH_MAX], old[64], *got;
	struct stat before, after;
	ssize_t n;
	size_t len;
	int fd;

	tpath(h, dir, sizeof dir, "atomic");
	REQUIRE(mkdir(dir, 0755) == 0);
	tpath(h, path, sizeof path, "atomic/f");
	REQUIRE(put_file(path, "old content", 11, 0640));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	REQUIRE(fstat(fd, &before) == 0);
	REQUIRE(WRITE_OK(c, path, "new content, longer", 19, -1, true) == 0);
	n = pread(fd, old, sizeof old, 0);
	CHECK_MEM(old, n < 0 ? 0 : (size_t)n, "old content");
	close(fd);
	REQUIRE(stat(path, &after) == 0);
	CHECK(after.st_ino != before.st_ino);
	got = slurp(path, &len);
	CHECK_MEM(got, len, "new content, longer");
	free(got);
	/* Without a mode the old file's is kept. */
	CHECK_INT(mode_of(path), 0640);
	CHECK_INT(count_entries(dir), 1);
	CHECK_NO_STAGING(dir);
}

/* A write that fails leaves the target and its directory as they were. */
HTEST(failed_write_keeps_old)
{
	struct swerex_client *c = harness_client(h);
	char dir[PATH_MAX], path[PATH_MAX], inner[PATH_MAX], *got;
	size_t len;

	tpath(h, dir, sizeof dir, "keep");
	REQUIRE(mkdir(dir, 0755) == 0);
	/* The target is a directory: refused, the directory untouched. */
	tpath(h, path, sizeof path, "keep/d");
	REQUIRE(mkdir(path, 0755) == 0);
	tpath(h, inner, sizeof inner, "keep/d/inside");
	REQUIRE(put_file(inner, "inside", 6, 0644));
	WRITE_FAILS(c, path, true, SWEREX_ERR_IS_A_DIRECTORY);
	got = slurp(inner, &len);
	CHECK_MEM(got, len, "inside");
	free(got);
	CHECK_INT(count_entries(path), 1);

	/* The path runs through a file: refused, the file untouched. */
	tpath(h, path, sizeof path, "keep/file");
	REQUIRE(put_file(path, "old", 3, 0644));
	tpath(h, inner, sizeof inner, "keep/file/x");
	WRITE_FAILS(c, inner, true, SWEREX_ERR_NOT_A_DIRECTORY);
	WRITE_FAILS(c, inner, false, SWEREX_ERR_NOT_A_DIRECTORY);
	got = slurp(path, &len);
	CHECK_MEM(got, len, "old");
	free(got);
	CHECK_INT(mode_of(path), 0644);
	CHECK_INT(count_entries(dir), 2);
	CHECK_NO_STAGING(dir);
}

/* The mode given is the mode the file gets, whatever the umask. */
HTEST(write_modes)
{
	struct swerex_client *c = harness_client(h);
	static const int modes[] = { 0755, 0600, 0640, 0777, 0666, 0700, 0444 };
	char path[PATH_MAX], name[32];
	size_t i;

	for (i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		snprintf(name, sizeof name, "mode-%o", modes[i]);
		tpath(h, path, sizeof path, name);
		if (WRITE_OK(c, path, "#!/bin/sh\necho ran\n", 19, modes[i], true) != 0)
			continue;
		if (mode_of(path) != modes[i])
			tap_diag(__FILE__, __LINE__, "%s has mode %o, asked for %o",
				 name, mode_of(path), modes[i]);
	}
	/* A new file without a mode is 0644. */
	tpath(h, path, sizeof path, "default-mode");
	REQUIRE(WRITE_OK(c, path, "x", 1, -1, true) == 0);
	CHECK_INT(mode_of(path), 0644);
	/* Rewriting without a mode keeps the old one, exec bit included. */
	tpath(h, path, sizeof path, "mode-755");
	REQUIRE(WRITE_OK(c, path, "#!/bin/sh\necho again\n", 21, -1, true) == 0);
	CHECK_INT(mode_of(path), 0755);
	/* A given mode replaces the old one. */
	REQUIRE(WRITE_OK(c, path, "x", 1, 0600, true) == 0);
	CHECK_INT(mode_of(path), 0600);
}

/* The daemon's resident memory as seen from the progress callbacks. */
struct rss_watch {
	pid_t pid;
	long max_kb;
	unsigned calls;
	uint64_t last_bytes;
	uint64_t last_files;
	bool went_back;
};

/* A field of /proc/<pid>/status in kB (VmRSS, VmHWM), or -1. */
static long
status_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':' &&
		    sscanf(line + n + 1, "%ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* VmRSS of a process in kB, or -1. */
static long
rss_kb(pid_t pid)
{
	return status_kb(pid, "VmRSS");
}

/* Progress callback: sample the daemon's RSS. */
static void
rss_progress(uint64_t bytes_done, uint64_t files_done, void *arg)
{
	struct rss_watch *w = arg;
	long kb = rss_kb(w->pid);

	if (kb > w->max_kb)
		w->max_kb = kb;
	if (bytes_done < w->last_bytes)
		w->went_back = true;
	w->calls++;
	w->last_bytes = bytes_done;
	w->last_files = files_done;
}

/* Write size bytes of pseudo-random data to path in bounded chunks; hash them. */
static bool
make_big_file(const char *path, uint64_t size, uint64_t *hash)
{
	static unsigned char buf[1 << 20];
	uint64_t x = 200, done = 0;
	size_t n, off;
	ssize_t w;
	int fd;

	*hash = FNV_INIT;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return false;
	while (done < size) {
		n = size - done < sizeof buf ? (size_t)(size - done) : sizeof buf;
		fill_random(buf, n, &x);
		*hash = fnv1a(*hash, buf, n);
		for (off = 0; off < n; off += (size_t)w) {
			w = write(fd, buf + off, n - off);
			if (w < 0 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0) {
				close(fd);
				return false;
			}
		}
		done += n;
	}
	return close(fd) == 0;
}

/*
 * 200 MiB up and back down, compared by hash; the daemon's RSS stays bounded
 * while the bytes stream through it.
 */
HTEST(upload_download_200mib)
{
	struct swerex_client *c = harness_client(h);
	const uint64_t size = 200ull * MIB;
	/*
	 * The memory bound is asserted in the plain build only: under ASan the
	 * daemon's freed memory sits in the allocator's quarantine (256 MiB by
	 * default), so RSS says nothing about what the daemon holds.
	 */
#ifdef __SANITIZE_ADDRESS__
	const long bound_kb = LONG_MAX;
#else
	const long bound_kb = 64 * 1024;
#endif
	struct rss_watch up = { .pid = harness_pid(h) }, down = up;
	struct swerex_error *err = NULL;
	char src[PATH_MAX], dst[PATH_MAX], back[PATH_MAX];
	uint64_t hash_src, hash, got_size;
	long base_kb = rss_kb(harness_pid(h)), hwm;
	double t0;

	if (harness_under_valgrind())
		SKIP("valgrind: the RSS bound does not allow for its shadow memory");

	tpath(h, src, sizeof src, "big.src");
	tpath(h, dst, sizeof dst, "uploaded/big.bin");
	tpath(h, back, sizeof back, "big.back");
	t0 = harness_now();
	REQUIRE(make_big_file(src, size, &hash_src));
	printf("# 200 MiB written in %.2f s; daemon VmRSS %ld kB before\n",
	       harness_now() - t0, base_kb);

	t0 = harness_now();
	if (swerex_upload(c, src, dst, rss_progress, &up, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "upload failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		err = NULL;
	}
	hwm = status_kb(harness_pid(h), "VmHWM");
	printf("# upload: %.2f s, %u progress calls, daemon VmRSS max %ld kB, "
	       "VmHWM %ld kB\n", harness_now() - t0, up.calls, up.max_kb, hwm);
	CHECK(hwm > 0 && hwm < bound_kb);
	CHECK(hash_file(dst, &hash, &got_size));
	CHECK_INT(got_size, size);
	CHECK(hash == hash_src);
	CHECK(up.calls > 1);
	CHECK_INT(up.last_bytes, size);
	CHECK(!up.went_back);
	CHECK(up.max_kb > 0 && up.max_kb < bound_kb);
	CHECK_INT(mode_of(dst), 0644);
	CHECK_NO_STAGING(harness_dir(h));
	tpath(h, back, sizeof back, "uploaded");
	CHECK_NO_STAGING(back);

	tpath(h, back, sizeof back, "big.back");
	t0 = harness_now();
	if (swerex_download(c, dst, back, rss_progress, &down, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "download failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		err = NULL;
	}
	hwm = status_kb(harness_pid(h), "VmHWM");
	printf("# download: %.2f s, %u progress calls, daemon VmRSS max %ld kB, "
	       "VmHWM %ld kB\n", harness_now() - t0, down.calls, down.max_kb, hwm);
	CHECK(hwm > 0 && hwm < bound_kb);
	CHECK(hash_file(back, &hash, &got_size));
	CHECK_INT(got_size, size);
	CHECK(hash == hash_src);
	CHECK(down.calls > 1);
	CHECK_INT(down.last_bytes, size);
	CHECK(!down.went_back);
	CHECK(down.max_kb > 0 && down.max_kb < bound_kb);
}

/* Build the test tree under root; false on failure. */
static bool
make_tree(const char *root)
{
	static const struct {
		const char *path;
		char type;              /* d dir, f file, l symlink */
		int mode;
		const char *data;       /* file content or link target */
	} spec[] = {
		{ "", 'd', 0755, NULL },
		{ "a", 'd', 0755, NULL },
		{ "a/b", 'd', 0750, NULL },
		{ "a/b/c", 'd', 0700, NULL },
		{ "a/b/c/deep.txt", 'f', 0644, "deep\n" },
		{ "empty", 'd', 0755, NULL },
		{ "run.sh", 'f', 0755, "#!/bin/sh\necho run\n" },
		{ "secret", 'f', 0600, "s" },
		{ "open", 'f', 0777, "o" },
		{ "zero", 'f', 0644, "" },
		{ ".hidden", 'f', 0644, "dot file\n" },
		{ "name with spaces", 'f', 0644, "spaces\n" },
		{ "link", 'l', 0, "a/b/c/deep.txt" },
		{ "dirlink", 'l', 0, "a" },
		{ "dangling", 'l', 0, "no/such/target" },
		{ "a/up", 'l', 0, "../run.sh" },
	};
	unsigned char all[256], *big;
	uint64_t x = 3;
	char path[PATH_MAX + 64];
	size_t i;
	bool ok = true;

	for (i = 0; i < sizeof spec / sizeof spec[0] && ok; i++) {
		snprintf(path, sizeof path, "%s%s%s", root, *spec[i].path ? "/" : "",
			 spec[i].path);
		if (spec[i].type == 'd')
			ok = mkdir(path, 0700) == 0 && chmod(path, (mode_t)spec[i].mode) == 0;
		else if (spec[i].type == 'f')
			ok = put_file(path, spec[i].data, strlen(spec[i].data),
				      (mode_t)spec[i].mode);
		else
			ok = symlink(spec[i].data, path) == 0;
	}
	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	snprintf(path, sizeof path, "%s/a/all.bin", root);
	ok = ok && put_file(path, all, sizeof all, 0644);
	/* Several entries' worth (entries carry at most 1 MiB). */
	big = malloc(3 * MIB + 17);
	if (big == NULL)
		return false;
	fill_random(big, 3 * MIB + 17, &x);
	snprintf(path, sizeof path, "%s/a/b/big.bin", root);
	ok = ok && put_file(path, big, 3 * MIB + 17, 0640);
	free(big);
	return ok;
}

/* Compare two trees on disk: types, modes, link targets, contents, names. */
static unsigned
compare_tree_at(const char *file, int line, const char *a, const char *b,
		bool root)
{
	struct stat sa, sb;
	struct dirent **la = NULL, **lb = NULL;
	char pa[PATH_MAX], pb[PATH_MAX], ta[PATH_MAX], tb[PATH_MAX];
	char *da, *db;
	size_t na, nb;
	ssize_t ra, rb;
	unsigned n = 1;
	int ca, cb, i, j;

	if (lstat(a, &sa) < 0) {
		tap_diag(file, line, "cannot lstat %s: %s", a, strerror(errno));
		return 0;
	}
	if (lstat(b, &sb) < 0) {
		tap_diag(file, line, "%s is missing", b);
		return 0;
	}
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
		tap_diag(file, line, "%s has type 0%o, %s has 0%o", b,
			 sb.st_mode & S_IFMT, a, sa.st_mode & S_IFMT);
		return 0;
	}
	if (!S_ISLNK(sa.st_mode) && !root &&
	    (sa.st_mode & 07777) != (sb.st_mode & 07777))
		tap_diag(file, line, "%s has mode %o, expected %o", b,
			 sb.st_mode & 07777, sa.st_mode & 07777);
	if (S_ISLNK(sa.st_mode)) {
		ra = readlink(a, ta, sizeof ta - 1);
		rb = readlink(b, tb, sizeof tb - 1);
		ta[ra < 0 ? 0 : ra] = '\0';
		tb[rb < 0 ? 0 : rb] = '\0';
		if (strcmp(ta, tb) != 0)
			tap_diag(file, line, "%s points to \"%s\", expected \"%s\"", b, tb, ta);
	} else if (S_ISREG(sa.st_mode)) {
		da = slurp(a, &na);
		db = slurp(b, &nb);
		if (da == NULL || db == NULL || na != nb || memcmp(da, db, na) != 0)
			tap_diag(file, line, "%s differs from %s (%zu and %zu bytes)",
				 b, a, nb, na);
		free(da);
		free(db);
	} else if (S_ISDIR(sa.st_mode)) {
		ca = scandir(a, &la, NULL, alphasort);
		cb = scandir(b, &lb, NULL, alphasort);
		if (ca < 0 || cb < 0) {
			tap_diag(file, line, "cannot list %s or %s", a, b);
			/* Free whichever listing there is, compare nothing. */
			for (i = 0; i < ca; i++)
				free(la[i]);
			for (i = 0; i < cb; i++)
				free(lb[i]);
			free(la);
			free(lb);
			return n;
		}
		/* Walk both sorted listings: report extras and gaps, recurse on the rest. */
		for (i = 0, j = 0; i < ca || j < cb; ) {
			int cmp = i == ca ? 1 : j == cb ? -1 :
			    strcmp(la[i]->d_name, lb[j]->d_name);

			if (cmp < 0) {
				tap_diag(file, line, "%s/%s is missing", b, la[i]->d_name);
				i++;
				continue;
			}
			if (cmp > 0) {
				tap_diag(file, line, "%s/%s should not be there", b,
					 lb[j]->d_name);
				j++;
				continue;
			}
			if (strcmp(la[i]->d_name, ".") != 0 &&
			    strcmp(la[i]->d_name, "..") != 0) {
				snprintf(pa, sizeof pa, "%s/%s", a, la[i]->d_name);
				snprintf(pb, sizeof pb, "%s/%s", b, lb[j]->d_name);
				n += compare_tree_at(file, line, pa, pb, false);
			}
			i++;
			j++;
		}
		for (i = 0; i < ca; i++)
			free(la[i]);
		for (i = 0; i < cb; i++)
			free(lb[i]);
		free(la);
		free(lb);
	}
	return n;
}
#define COMPARE_TREE(a, b) compare_tree_at(__FILE__, __LINE__, (a), (b), true)

/* A tree keeps types, modes, link targets and contents both ways. */
HTEST(upload_download_tree)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_exec_opts o = { 0 };
	struct swerex_exec_result *res = NULL;
	struct swerex_error *err = NULL;
	struct rss_watch w = { .pid = harness_pid(h) };
	char src[PATH_MAX], dst[PATH_MAX], back[PATH_MAX], run[PATH_MAX + 16];
	unsigned n;

	tpath(h, src, sizeof src, "tree.src");
	tpath(h, dst, sizeof dst, "remote/tree");
	tpath(h, back, sizeof back, "tree.back");
	REQUIRE(make_tree(src));

	if (swerex_upload(c, src, dst, rss_progress, &w, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "upload failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	n = COMPARE_TREE(src, dst);
	printf("# uploaded tree: %u entries compared, last progress %llu bytes "
	       "%llu files\n", n, (unsigned long long)w.last_bytes,
	       (unsigned long long)w.last_files);
	CHECK_INT(n, 18);
	CHECK_NO_STAGING(harness_dir(h));
	tpath(h, run, sizeof run, "remote");
	CHECK_NO_STAGING(run);
	/* The executable bit works where it landed. */
	snprintf(run, sizeof run, "%s/run.sh", dst);
	o.argv = (const char *const[]){ run };
	o.argc = 1;
	o.has_timeout = true;
	o.timeout = HARNESS_TIMEOUT;
	if (swerex_execute(c, &o, &res, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "running the uploaded run.sh failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		err = NULL;
	} else {
		CHECK_MEM(res->stdout_data, res->stdout_len, "run\n");
	}
	swerex_exec_result_free(res);

	if (swerex_download(c, dst, back, NULL, NULL, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "download failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		REQUIRE(0);
	}
	n = COMPARE_TREE(src, back);
	printf("# downloaded tree: %u entries compared\n", n);
	CHECK_INT(n, 18);
	CHECK_NO_STAGING(harness_dir(h));
}

/* A single file goes up (replacing one) and comes back with its mode. */
HTEST(upload_download_single_file)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_error *err = NULL;
	char src[PATH_MAX], dst[PATH_MAX], back[PATH_MAX], *got;
	size_t len;

	tpath(h, src, sizeof src, "one.sh");
	REQUIRE(put_file(src, "#!/bin/sh\necho one\n", 19, 0750));
	tpath(h, dst, sizeof dst, "new/parents/one.sh");
	if (swerex_upload(c, src, dst, NULL, NULL, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "upload failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		err = NULL;
	}
	got = slurp(dst, &len);
	CHECK_MEM(got, len, "#!/bin/sh\necho one\n");
	free(got);
	CHECK_INT(mode_of(dst), 0750);

	/* Uploading over an existing file replaces it. */
	REQUIRE(put_file(src, "second\n", 7, 0644));
	if (swerex_upload(c, src, dst, NULL, NULL, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "second upload failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		err = NULL;
	}
	got = slurp(dst, &len);
	CHECK_MEM(got, len, "second\n");
	free(got);
	CHECK_INT(mode_of(dst), 0644);

	tpath(h, back, sizeof back, "one.back");
	if (swerex_download(c, dst, back, NULL, NULL, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "download failed");
		harness_show_error("error", err);
		swerex_error_free(err);
		err = NULL;
	}
	got = slurp(back, &len);
	CHECK_MEM(got, len, "second\n");
	free(got);
	CHECK_INT(mode_of(back), 0644);
}

/* A missing source fails the transfer and creates nothing. */
HTEST(transfer_errors)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_error *err = NULL;
	char src[PATH_MAX], dst[PATH_MAX];
	int r;

	tpath(h, src, sizeof src, "no-such-remote");
	tpath(h, dst, sizeof dst, "local-copy");
	r = swerex_download(c, src, dst, NULL, NULL, &err);
	check_kind_at(__FILE__, __LINE__, "download of a missing path", r, err,
		      SWEREX_ERR_FILE_NOT_FOUND);
	err = NULL;
	CHECK(!exists(dst));

	tpath(h, src, sizeof src, "no-such-local");
	tpath(h, dst, sizeof dst, "remote-copy");
	r = swerex_upload(c, src, dst, NULL, NULL, &err);
	CHECK(r != 0);
	if (r != 0 && err != NULL)
		printf("# upload of a missing source: %s: %s\n",
		       swerex_error_kind_name(err->kind), err->message);
	swerex_error_free(err);
	err = NULL;
	CHECK(!exists(dst));
	/* The client is still usable. */
	{
		bool alive = false;
		char *msg = NULL;

		CHECK(swerex_is_alive(c, &alive, &msg, &err) == 0 && alive);
		swerex_error_free(err);
		free(msg);
	}
}

/* Send UploadBegin with id for a single file or a tree at target. */
static bool
raw_upload_begin(struct raw *r, uint64_t id, const char *target, bool is_dir)
{
	Swerex__V1__UploadBegin ub = SWEREX__V1__UPLOAD_BEGIN__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;

	ub.target_path = (char *)target;
	ub.is_directory = is_dir;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN;
	req.upload_begin = &ub;
	return raw_send(r, &req);
}

/* Send UploadData carrying one entry. */
static bool
raw_upload_entry(struct raw *r, uint64_t id, uint64_t upload_id,
		 const char *path, Swerex__V1__EntryType type, uint32_t mode,
		 const void *data, size_t len, bool last)
{
	Swerex__V1__UploadData ud = SWEREX__V1__UPLOAD_DATA__INIT;
	Swerex__V1__TransferEntry e = SWEREX__V1__TRANSFER_ENTRY__INIT, *ep = &e;
	Request req = SWEREX__V1__REQUEST__INIT;

	e.path = (char *)path;
	e.type = type;
	e.mode = mode;
	e.data.data = (uint8_t *)data;
	e.data.len = len;
	e.last = last;
	ud.upload_id = upload_id;
	ud.n_entries = 1;
	ud.entries = &ep;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_DATA;
	req.upload_data = &ud;
	return raw_send(r, &req);
}

/* Send UploadEnd (commit, or abort). */
static bool
raw_upload_end(struct raw *r, uint64_t id, uint64_t upload_id, bool abort_it)
{
	Swerex__V1__UploadEnd ue = SWEREX__V1__UPLOAD_END__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;

	ue.upload_id = upload_id;
	ue.abort = abort_it;
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
	req.upload_end = &ue;
	return raw_send(r, &req);
}

/* Round trip on the library's client: the daemon has run its loop since. */
static void
sync_daemon(struct swerex_client *c)
{
	struct swerex_error *err = NULL;
	bool alive = false;
	char *msg = NULL;

	if (swerex_is_alive(c, &alive, &msg, &err) != 0) {
		tap_diag(__FILE__, __LINE__, "is_alive failed");
		harness_show_error("error", err);
	}
	swerex_error_free(err);
	free(msg);
}

/*
 * Wait (bounded) until dir holds no entries: the daemon cleans up a lost
 * upload when it sees the EOF. Return how many 20 ms waits it took, or -1.
 */
static int
wait_dir_empty(const char *dir, double timeout)
{
	double deadline = harness_now() + timeout;
	int waits = 0;

	while (count_entries(dir) != 0) {
		if (harness_now() > deadline)
			return -1;
		poll(NULL, 0, 20);
		waits++;
	}
	return waits;
}

/* List a directory's entries as a TAP comment. */
static void
show_dir(const char *label, const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	printf("# %s:", label);
	while (d != NULL && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			printf(" %s", de->d_name);
	printf("\n");
	if (d != NULL)
		closedir(d);
}

/* An upload whose connection is lost leaves nothing at the target or beside it. */
HTEST(interrupted_upload_leaves_nothing)
{
	struct raw r = raw_connect_hello(h);
	unsigned char buf[64 * 1024];
	char dir[PATH_MAX], target[PATH_MAX], tree[PATH_MAX];
	uint64_t x = 9;
	unsigned others = 0;
	int i, waits;

	REQUIRE(r.fd >= 0);
	tpath(h, dir, sizeof dir, "lost");
	REQUIRE(mkdir(dir, 0755) == 0);
	tpath(h, target, sizeof target, "lost/file.bin");
	tpath(h, tree, sizeof tree, "lost/tree");

	/* A single file, half sent. */
	REQUIRE(raw_upload_begin(&r, 2, target, false));
	for (i = 0; i < 4; i++) {
		fill_random(buf, sizeof buf, &x);
		REQUIRE(raw_upload_entry(&r, 3 + (uint64_t)i, 2, "",
		    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE, 0644, buf, sizeof buf,
		    false));
	}
	/* A tree, with a directory, a complete file and half of another. */
	REQUIRE(raw_upload_begin(&r, 10, tree, true));
	REQUIRE(raw_upload_entry(&r, 11, 10, "sub",
	    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_DIRECTORY, 0755, NULL, 0, true));
	REQUIRE(raw_upload_entry(&r, 12, 10, "sub/done.txt",
	    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE, 0644, "done\n", 5, true));
	REQUIRE(raw_upload_entry(&r, 13, 10, "half.bin",
	    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE, 0644, buf, sizeof buf, false));
	/* Everything above has been handled: the daemon answers what follows. */
	CHECK(raw_round_trip(&r, 20, &others));
	CHECK_INT(others, 0);
	show_dir("staged while the uploads are open", dir);
	CHECK(!exists(target));
	CHECK(!exists(tree));

	raw_close(&r);
	/* Let the daemon see the EOF; then wait for the clean-up, bounded. */
	sync_daemon(harness_client(h));
	waits = wait_dir_empty(dir, 5);
	if (waits < 0) {
		tap_diag(__FILE__, __LINE__, "the lost uploads left entries behind");
		show_dir("left", dir);
	} else if (waits > 0) {
		printf("# clean-up needed %d waits of 20 ms after the round trip\n", waits);
	}
	CHECK(!exists(target));
	CHECK(!exists(tree));
	CHECK_NO_STAGING(dir);

	/* The same target can be uploaded to afterwards. */
	{
		struct swerex_error *err = NULL;
		char src[PATH_MAX], *got;
		size_t len;

		tpath(h, src, sizeof src, "after.txt");
		REQUIRE(put_file(src, "after\n", 6, 0644));
		if (swerex_upload(harness_client(h), src, target, NULL, NULL, &err) != 0) {
			tap_diag(__FILE__, __LINE__, "upload after the lost one failed");
			harness_show_error("error", err);
			swerex_error_free(err);
		}
		got = slurp(target, &len);
		CHECK_MEM(got, len, "after\n");
		free(got);
	}
}

/* An aborted upload is discarded and the target left as it was. */
HTEST(aborted_upload_keeps_target)
{
	struct raw r = raw_connect_hello(h);
	char dir[PATH_MAX], target[PATH_MAX], *got;
	Response *resp = NULL;
	size_t len;
	int got_resp;

	REQUIRE(r.fd >= 0);
	tpath(h, dir, sizeof dir, "abort");
	REQUIRE(mkdir(dir, 0755) == 0);
	tpath(h, target, sizeof target, "abort/file.txt");
	REQUIRE(put_file(target, "original\n", 9, 0644));
	REQUIRE(raw_upload_begin(&r, 2, target, false));
	REQUIRE(raw_upload_entry(&r, 3, 2, "",
	    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE, 0755, "replacement\n", 12, true));
	REQUIRE(raw_upload_end(&r, 4, 2, true));
	/* The transfer's final response comes under the UploadBegin's id. */
	got_resp = raw_recv(&r, &resp, 20);
	CHECK_INT(got_resp, 1);
	if (got_resp == 1) {
		raw_resp_show("abort answered", resp);
		CHECK(resp->id == 2 || resp->id == 4);
	}
	raw_resp_free(resp);
	got = slurp(target, &len);
	CHECK_MEM(got, len, "original\n");
	free(got);
	CHECK_INT(mode_of(target), 0644);
	CHECK_INT(count_entries(dir), 1);
	CHECK_NO_STAGING(dir);
	raw_close(&r);
}

/* Entries that would leave the target are refused; nothing lands anywhere. */
HTEST(upload_refuses_escaping_paths)
{
	static const char *const bad[] = { "../escaped", "sub/../../escaped",
		"/tmp/swerex-absolute-escape", ".." };
	char dir[PATH_MAX], target[PATH_MAX], outside[PATH_MAX];
	Response *resp = NULL;
	size_t i;
	int got;

	tpath(h, dir, sizeof dir, "jail");
	REQUIRE(mkdir(dir, 0755) == 0);
	tpath(h, target, sizeof target, "jail/tree");
	tpath(h, outside, sizeof outside, "jail/escaped");
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct raw r = raw_connect_hello(h);
		bool error_seen = false, alive_seen = false;

		REQUIRE(r.fd >= 0);
		REQUIRE(raw_upload_begin(&r, 2, target, true));
		raw_upload_entry(&r, 3, 2, bad[i],
		    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE, 0644, "evil\n", 5, true);
		raw_upload_end(&r, 4, 2, false);
		raw_send_is_alive(&r, 5);
		/*
		 * Read until the transfer is answered, or until an error was seen
		 * and the is_alive after it answered (or the connection ends).
		 */
		while ((got = raw_recv(&r, &resp, 20)) == 1) {
			bool final = resp->id == 2 || resp->id == 4;

			if (resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR)
				error_seen = true;
			else if (final) {
				tap_diag(__FILE__, __LINE__, "entry \"%s\" accepted", bad[i]);
				raw_resp_show("response", resp);
			}
			if (resp->id == 5)
				alive_seen = true;
			raw_resp_free(resp);
			if (final || (error_seen && alive_seen))
				break;
		}
		if (!error_seen)
			tap_diag(__FILE__, __LINE__, "entry \"%s\": no error (%s)", bad[i],
				 got == 0 ? "connection closed" : got == -1 ? "timeout" :
				 "answered without an error");
		raw_close(&r);
		CHECK(!exists(outside));
		CHECK(!exists(target));
		CHECK(!exists("/tmp/swerex-absolute-escape"));
	}
	sync_daemon(harness_client(h));
	if (wait_dir_empty(dir, 5) < 0) {
		tap_diag(__FILE__, __LINE__, "refused uploads left entries behind");
		show_dir("left", dir);
	}
}

/* Send a ReadFileRequest with id (length < 0: to the end). */
static bool
raw_read_file(struct raw *r, uint64_t id, const char *path, int64_t length)
{
	Swerex__V1__ReadFileRequest rf = SWEREX__V1__READ_FILE_REQUEST__INIT;
	Request req = SWEREX__V1__REQUEST__INIT;

	rf.path = (char *)path;
	if (length >= 0) {
		rf.has_length_case = SWEREX__V1__READ_FILE_REQUEST__HAS_LENGTH_LENGTH;
		rf.length = (uint64_t)length;
	}
	req.id = id;
	req.body_case = SWEREX__V1__REQUEST__BODY_READ_FILE;
	req.read_file = &rf;
	return raw_send(r, &req);
}

/* Files in /proc say they are empty; a read still returns what they hold. */
HTEST(read_proc_file)
{
	struct swerex_client *c = harness_client(h);
	char *want, *got;
	size_t want_len, len;
	uint64_t size = 0;

	want = slurp("/proc/version", &want_len);
	REQUIRE(want != NULL && want_len > 0);
	got = READ_OK(c, "/proc/version", 0, -1, &len, &size);
	CHECK_BYTES("/proc/version", got, len, want, want_len);
	free(got);
	free(want);
}

/*
 * A FIFO without a writer and an endless device are answered (with an error
 * or what there is) and the daemon goes on serving: nothing blocks its loop,
 * nothing is read without bound. The device is read by a second daemon under
 * an address-space limit, so a regression fails instead of eating the host.
 */
HTEST(special_files_do_not_block)
{
	struct swerex_client *c = harness_client(h);
	struct swerex_error *err = NULL;
	struct harness *h2;
	struct rlimit old, lim;
	struct raw r = raw_connect_hello(h), r2;
	char fifo[PATH_MAX], dir[PATH_MAX], local[PATH_MAX];
	Response *resp = NULL;
	unsigned others = 0;
	int got, fd, ret;

	REQUIRE(r.fd >= 0);
	tpath(h, fifo, sizeof fifo, "fifo");
	REQUIRE(mkfifo(fifo, 0644) == 0);
	REQUIRE(raw_read_file(&r, 2, fifo, -1));
	got = raw_recv(&r, &resp, 10);
	if (got != 1) {
		tap_diag(__FILE__, __LINE__, "read_file of a FIFO not answered in 10 s");
		/* Free the daemon: a writer lets a blocked open() return. */
		fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
	} else {
		raw_resp_show("read_file of a FIFO", resp);
		CHECK_INT(resp->id, 2);
	}
	raw_resp_free(resp);
	CHECK(raw_round_trip(&r, 3, &others));
	raw_close(&r);

	/* Downloads meet the FIFO alone and inside a tree. */
	harness_watchdog(60);
	tpath(h, local, sizeof local, "fifo.copy");
	ret = swerex_download(c, fifo, local, NULL, NULL, &err);
	if (ret == 0)
		printf("# download of a FIFO succeeded\n");
	else
		printf("# download of a FIFO: %s: %s\n",
		       err ? swerex_error_kind_name(err->kind) : "?",
		       err && err->message ? err->message : "");
	swerex_error_free(err);
	err = NULL;
	tpath(h, dir, sizeof dir, "with-fifo");
	REQUIRE(mkdir(dir, 0755) == 0);
	tpath(h, fifo, sizeof fifo, "with-fifo/fifo");
	REQUIRE(mkfifo(fifo, 0644) == 0);
	tpath(h, fifo, sizeof fifo, "with-fifo/file");
	REQUIRE(put_file(fifo, "file\n", 5, 0644));
	tpath(h, local, sizeof local, "with-fifo.copy");
	ret = swerex_download(c, dir, local, NULL, NULL, &err);
	if (ret == 0)
		printf("# download of a tree with a FIFO succeeded; copy holds %d entries\n",
		       count_entries(local));
	else
		printf("# download of a tree with a FIFO: %s: %s\n",
		       err ? swerex_error_kind_name(err->kind) : "?",
		       err && err->message ? err->message : "");
	swerex_error_free(err);
	err = NULL;
	sync_daemon(c);

	/*
	 * An endless device, by a daemon that cannot take much memory, so that
	 * a regression fails here instead of eating the host. Not under ASan,
	 * whose shadow memory needs terabytes of address space: the plain
	 * build runs the same test with the limit.
	 */
	REQUIRE(getrlimit(RLIMIT_AS, &old) == 0);
	lim = old;
#ifndef __SANITIZE_ADDRESS__
	lim.rlim_cur = 2048ull * MIB;
#endif
	if (old.rlim_max != RLIM_INFINITY && lim.rlim_cur > old.rlim_max)
		lim.rlim_cur = old.rlim_max;
	REQUIRE(setrlimit(RLIMIT_AS, &lim) == 0);
	h2 = harness_start(NULL);
	setrlimit(RLIMIT_AS, &old);
	REQUIRE(h2 != NULL);
	r2 = raw_connect_hello(h2);
	REQUIRE(r2.fd >= 0);
	REQUIRE(raw_read_file(&r2, 2, "/dev/zero", -1));
	got = raw_recv(&r2, &resp, 20);
	CHECK_INT(got, 1);
	if (got == 1) {
		raw_resp_show("read_file of /dev/zero", resp);
		CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR);
	}
	raw_resp_free(resp);
	REQUIRE(raw_read_file(&r2, 3, "/dev/zero", 10));
	got = raw_recv(&r2, &resp, 20);
	CHECK_INT(got, 1);
	if (got == 1) {
		raw_resp_show("read_file of 10 bytes of /dev/zero", resp);
		if (resp->body_case == SWEREX__V1__RESPONSE__BODY_READ_FILE)
			CHECK_BYTES("10 bytes of /dev/zero", resp->read_file->content.data,
				    resp->read_file->content.len, "\0\0\0\0\0\0\0\0\0\0", 10);
		else
			CHECK(resp->body_case == SWEREX__V1__RESPONSE__BODY_ERROR);
	}
	raw_resp_free(resp);
	CHECK(raw_round_trip(&r2, 4, &others));
	CHECK_INT(others, 0);
	raw_close(&r2);
	CHECK(harness_running(h2));
}

TAP_MAIN(
	TAP_T(write_read_all_byte_values),
	TAP_T(random_5mib_round_trip),
	TAP_T(read_1mib),
	TAP_T(read_range),
	TAP_T(read_errors),
	TAP_T(write_create_parents),
	TAP_T(write_permission_denied),
	TAP_T(write_is_atomic_replace),
	TAP_T(failed_write_keeps_old),
	TAP_T(write_modes),
	TAP_T(upload_download_200mib),
	TAP_T(upload_download_tree),
	TAP_T(upload_download_single_file),
	TAP_T(transfer_errors),
	TAP_T(interrupted_upload_leaves_nothing),
	TAP_T(aborted_upload_keeps_target),
	TAP_T(upload_refuses_escaping_paths),
	TAP_T(read_proc_file),
	TAP_T(special_files_do_not_block),
)
