/*
 * File requests: read, atomic write, streamed upload and download.
 *
 * Everything here runs on the loop. Reads and writes of local files are done
 * synchronously in bounded pieces: a ReadFileRequest at most one frame, a
 * WriteFileRequest what one frame carried, an upload one UploadData frame at a
 * time as it arrives, a download FILE_PIECE bytes per entry and a few entries
 * per loop pass.
 *
 * Choices this module makes (the wire contract leaves them open):
 *
 * - WriteFileRequest replaces the file by rename. A symbolic link at the path
 *   is written through (its final target is replaced), as writing to the path
 *   would. The old file's owner and mode are kept unless a mode is given. A
 *   file that cannot be renamed over (a bind-mounted file such as a
 *   container's /etc/hosts: EBUSY, EXDEV), an existing file beside which no
 *   temporary file can be made (EACCES, EPERM, EROFS, ENOENT: a directory we
 *   may not write, /proc), and a device or FIFO are written in place instead
 *   (not atomic; open(2) then reports the file's own error).
 * - A single-file upload that replaces a file keeps that file's owner too.
 * - An upload is staged as ".<name>.swx-up-XXXXXX" beside its target, or, for
 *   a directory upload into a directory that already exists, as
 *   ".swx-up-XXXXXX" inside it, so the commit is a rename on one file system
 *   even when the target is a mount point. A directory upload to a path that
 *   does not exist (or is an empty directory) renames the staged tree into
 *   place. Into an existing directory it merges, as unpacking an archive
 *   there would: staged entries replace files and links of the same name,
 *   directories meeting directories are merged, existing entries that were
 *   not uploaded stay. A directory meeting a non-directory (or the reverse)
 *   is an error found before anything is moved; a merge that fails half-way
 *   for another reason (an I/O error) is not undone.
 * - The first error of an upload is answered at once on its UploadBegin (so
 *   the client can stop sending), and the upload is forgotten: its later
 *   UploadData frames are dropped, and its UploadEnd gets INVALID_REQUEST
 *   ("no such upload"). A client should wait for the UploadBegin's answer.
 * - UploadEnd{abort} discards the staging: the UploadBegin is answered with
 *   INTERRUPTED ("aborted by the client"), the UploadEnd with an empty
 *   UploadResponse (the abort itself succeeded).
 * - Upload entries: the root of a directory upload may be sent as a DIRECTORY
 *   entry with path "" (its mode is used when the staged tree is renamed into
 *   place; a merge keeps the existing directory's mode). Missing parent
 *   directories of an entry are created (mode 0777 & ~umask). Mode 0 means
 *   "not given": 0644 for files, 0777 & ~umask for directories. Modes are
 *   applied with fchmod, so umask does not strip them; directory modes
 *   without u+rwx are applied at commit, so their contents can be written.
 *   Uploaded files are not fsynced (the rename is what makes them appear).
 * - A download of a symbolic link follows it (the tree or file it names is
 *   sent); links inside a tree are sent as links. The root of a directory
 *   download is sent first as a DIRECTORY entry with path "", then entries
 *   depth-first. FIFOs, sockets and devices inside a tree are skipped; asked
 *   for directly (download or read) they are refused. A file's last piece may
 *   be empty (a file whose size is a multiple of FILE_PIECE).
 * - "files" in UploadResponse and DownloadResponse counts regular files and
 *   symbolic links; "bytes" counts file data.
 * - Removing a staging tree (an error, an abort, a lost client) is done at
 *   once on the loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "conn.h"
#include "file.h"
#include "log.h"
#include "server.h"

#define FILE_PIECE (256u * 1024)          /* data per download entry */
#define FILE_EVENT_BYTES FILE_PIECE       /* download data per loop pass: one
					   * piece keeps other peers' p99 low */
#define FILE_EVENT_ENTRIES 64             /* download entries per loop pass */
#define FILE_FRAME_SLACK (64u * 1024)     /* envelope room in a response frame */
#define FILE_MAX_DEPTH 256                /* directory levels of a transfer */
#define FILE_MAX_UPLOADS 1024
#define FILE_MAX_DOWNLOADS 1024
#define FILE_DEFAULT_MODE 0644
#define FILE_TEMP_NAME 200                /* bytes of a name kept in a temp name */

#define FILE_KIND(k) SWEREX__V1__ERROR_KIND__ ## k
#define FILE_ENTRY(t) SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_ ## t

/* An error to answer with: an errno value, or a kind and a message. */
struct file_error {
	Swerex__V1__ErrorKind kind;     /* when err is 0 */
	int err;
	char path[1024];
	char what[512];
};

/* A directory mode applied at commit (it would keep us from writing in it). */
struct file_dirmode {
	struct file_dirmode *next;
	mode_t mode;
	char path[];                    /* relative to the staging root */
};

/* An upload: staged beside (or inside) its target until UploadEnd. */
struct file_upload {
	struct server *srv;
	TAILQ_ENTRY(file_upload) entry;
	struct req *req;                /* the UploadBegin, answered last */
	const void *key;                /* its connection */
	uint64_t id;
	char *target;                   /* without trailing slashes */
	char *stage;                    /* staging directory or file; NULL once gone */
	bool is_directory;
	bool inside;                    /* staged inside the existing target */
	int stage_fd;                   /* the staging directory, or -1 */
	int fd;                         /* the file being written, or -1 */
	char *cur;                      /* its entry path */
	bool started;                   /* a single-file upload had its first piece */
	bool complete;                  /* ... and its last */
	struct file_dirmode *modes;
	uint64_t files;
	uint64_t bytes;
	struct file_error error;
};

/* A download: a walk producing entries as fast as the client reads. */
struct file_download {
	struct server *srv;
	TAILQ_ENTRY(file_download) entry;
	struct req *req;                /* NULL once the client went away */
	char *root;
	struct event ev;                /* produce the next entries */
	bool busy;                      /* inside file_download_cb */
	bool is_directory;
	bool root_sent;
	mode_t root_mode;
	DIR *dirs[FILE_MAX_DEPTH];      /* the open directories of the walk */
	size_t lens[FILE_MAX_DEPTH];    /* length of rel for each of them */
	size_t depth;
	char rel[PATH_MAX];             /* path of the current entry */
	int fd;                         /* the file being sent, or -1 */
	mode_t mode;
	uint64_t files;
	uint64_t bytes;
	struct file_error error;
};

/* One piece of a file being downloaded; the loop is single-threaded. */
static char file_buf[FILE_PIECE];

/* Record an errno error about a path. */
static void
file_error_errno(struct file_error *e, int err, const char *path,
		 const char *what)
{
	e->err = err;
	e->kind = conn_errno_kind(err);
	snprintf(e->path, sizeof e->path, "%s", path);
	snprintf(e->what, sizeof e->what, "%s", what);
}

/* Record an error of a given kind about a path. */
static void __attribute__((format(printf, 4, 5)))
file_error_kind(struct file_error *e, Swerex__V1__ErrorKind kind,
		const char *path, const char *fmt, ...)
{
	va_list ap;

	e->err = 0;
	e->kind = kind;
	snprintf(e->path, sizeof e->path, "%s", path);
	va_start(ap, fmt);
	vsnprintf(e->what, sizeof e->what, fmt, ap);
	va_end(ap);
}

/* Answer a request with a recorded error. */
static void
file_error_reply(struct req *r, const struct file_error *e)
{
	const char *extra[] = { "path", e->path, NULL };

	if (e->err != 0)
		conn_reply_errno(r, e->err, e->path, "%s", e->what);
	else
		conn_reply_error(r, e->kind, NULL, extra, "%s: %s", e->what,
		    e->path);
}

/* Refuse a request whose path is empty; true if it was refused. */
static bool
file_no_path(struct req *r, const char *path)
{
	if (*path != '\0')
		return false;
	conn_reply_error(r, FILE_KIND(INVALID_REQUEST), NULL, NULL,
	    "the path is empty");
	return true;
}

/* Return the process umask without changing it. */
static mode_t
file_umask(void)
{
	mode_t m = umask(022);

	umask(m);
	return m;
}

/* Tell whether a last path component names no file of its own. */
static bool
file_bad_name(const char *base)
{
	return *base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0;
}

/* Split a path into its directory and last name, ignoring trailing slashes. */
static int
file_split(const char *path, char **dir, char **base)
{
	char *copy, *slash;
	size_t len;

	*dir = *base = NULL;
	if ((copy = strdup(path)) == NULL)
		return -ENOMEM;
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	slash = strrchr(copy, '/');
	if (slash == NULL) {
		*dir = strdup(".");
		*base = strdup(copy);
	} else if (slash == copy) {
		*dir = strdup("/");
		*base = strdup(slash + 1);
	} else {
		*slash = '\0';
		*dir = strdup(copy);
		*base = strdup(slash + 1);
	}
	free(copy);
	if (*dir == NULL || *base == NULL) {
		free(*dir);
		free(*base);
		*dir = *base = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Create a directory and its missing parents, as mkdir -p does. */
static int
file_mkdirs(const char *dir)
{
	struct stat st;
	char *p, *s, c;
	int r = 0;

	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if ((p = strdup(dir)) == NULL)
		return -ENOMEM;
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		c = *s;
		*s = '\0';
		if (mkdir(p, 0777) < 0 && errno != EEXIST) {
			r = -errno;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return r;
}

/* Write a whole buffer to a file. */
static int
file_write_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	ssize_t w;

	while (n > 0) {
		w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Remove a tree without following the symbolic links in it. */
static int
file_rmtree_at(int dfd, const char *name, size_t depth)
{
	struct dirent *de;
	DIR *d;
	int fd, n, r = 0;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	if (depth > FILE_MAX_DEPTH + 1)
		return -ELOOP;
	/* Ours and going: let a read-only directory be emptied. */
	fchmodat(dfd, name, 0700, 0);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if ((n = file_rmtree_at(dirfd(d), de->d_name, depth + 1)) < 0 &&
		    r == 0)
			r = n;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && r == 0)
		r = -errno;
	return r;
}

/* The largest content a ReadFileResponse may carry. */
static size_t
file_content_limit(const struct server *srv)
{
	size_t f = srv->cfg.max_frame;

	return f > 2 * FILE_FRAME_SLACK ? f - FILE_FRAME_SLACK : f / 2;
}

/* Handle ReadFileRequest: a file's bytes, or a range of them. */
void
file_read(struct server *srv, struct req *r, const Swerex__V1__ReadFileRequest *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__ReadFileResponse rr = SWEREX__V1__READ_FILE_RESPONSE__INIT;
	const char *extra[] = { "path", m->path, NULL };
	size_t limit = file_content_limit(srv), cap, len = 0, max, left;
	bool ranged = m->has_length_case ==
	    SWEREX__V1__READ_FILE_REQUEST__HAS_LENGTH_LENGTH;
	uint64_t want, off = m->offset;
	char *buf = NULL, *nbuf;
	struct stat st;
	ssize_t n;
	int fd, err;

	if (file_no_path(r, m->path))
		return;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		conn_reply_errno(r, errno, m->path, "cannot read");
		return;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		err = EISDIR;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		conn_reply_error(r, FILE_KIND(FILE_ERROR), NULL, extra,
		    "cannot read: %.1000s: not a regular file", m->path);
		goto out;
	}
	if (off > (uint64_t)INT64_MAX - limit - 1)
		off = (uint64_t)INT64_MAX - limit - 1;  /* far past any end */
	left = (uint64_t)st.st_size > off ? (size_t)((uint64_t)st.st_size - off) : 0;
	/* A length past the end asks for what there is ("to the end"). */
	want = ranged && m->length < left ? m->length : left;
	if (want > limit) {
		conn_reply_error(r, FILE_KIND(RESOURCE_EXHAUSTED), NULL, extra,
		    "cannot read %.1000s: %llu bytes are more than one response "
		    "carries (%zu); read a range (offset and length) or use a "
		    "DownloadRequest", m->path, (unsigned long long)want, limit);
		goto out;
	}
	/* Read until EOF or the length: the size may have changed (or be 0 in /proc). */
	max = ranged && m->length <= limit ? (size_t)m->length : limit + 1;
	cap = left + 4096 < max ? left + 4096 : max;
	if ((buf = malloc(cap > 0 ? cap : 1)) == NULL) {
		err = ENOMEM;
		goto fail;
	}
	while (len < max) {
		if (len == cap) {
			cap = cap > max / 2 ? max : cap * 2;
			if ((nbuf = realloc(buf, cap)) == NULL) {
				err = ENOMEM;
				goto fail;
			}
			buf = nbuf;
		}
		n = pread(fd, buf + len, cap - len, (off_t)(off + len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > limit) {
		conn_reply_error(r, FILE_KIND(RESOURCE_EXHAUSTED), NULL, extra,
		    "cannot read %.1000s: it holds more than one response carries "
		    "(%zu); read a range (offset and length) or use a "
		    "DownloadRequest", m->path, limit);
		goto out;
	}
	rr.content.data = (uint8_t *)buf;
	rr.content.len = len;
	rr.size = (uint64_t)st.st_size;
	if (len > 0 && off + len > rr.size)
		rr.size = off + len;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_READ_FILE;
	resp.read_file = &rr;
	conn_reply(r, &resp);
	goto out;

fail:
	conn_reply_errno(r, err, m->path, "cannot read");
out:
	free(buf);
	close(fd);
}

/* Rewrite a file in place: the fallback for files that cannot be renamed over. */
static int
file_write_inplace(const char *path, const void *p, size_t n, int mode)
{
	int fd, r;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK, FILE_DEFAULT_MODE);
	if (fd < 0)
		return -errno;
	if ((r = file_write_all(fd, p, n)) == 0 && fsync(fd) < 0 &&
	    errno != EINVAL)
		r = -errno;
	if (r == 0 && mode >= 0 && fchmod(fd, (mode_t)mode) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Handle WriteFileRequest: write aside, fsync, rename over the file. */
void
file_write(struct server *srv, struct req *r, const Swerex__V1__WriteFileRequest *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__WriteFileResponse wr = SWEREX__V1__WRITE_FILE_RESPONSE__INIT;
	bool parents = m->has_create_parents_case !=
	    SWEREX__V1__WRITE_FILE_REQUEST__HAS_CREATE_PARENTS_CREATE_PARENTS ||
	    m->create_parents;
	bool has_mode = m->has_mode_case ==
	    SWEREX__V1__WRITE_FILE_REQUEST__HAS_MODE_MODE;
	char *dir = NULL, *base = NULL, *tmp = NULL, *real = NULL;
	const char *target = m->path, *what = "cannot write", *epath = m->path;
	bool exists = false;
	struct stat st;
	mode_t mode;
	int fd = -1, err;

	if (file_no_path(r, m->path))
		return;
	/* A link is written through: its final target is what gets replaced. */
	if (lstat(target, &st) == 0 && S_ISLNK(st.st_mode)) {
		if ((real = realpath(target, NULL)) == NULL) {
			/* Dangling: create what it points to, as open() would. */
			err = -file_write_inplace(target, m->content.data,
			    m->content.len, has_mode ? (int)(m->mode & 07777) : -1);
			if (err != 0)
				goto fail;
			goto done;
		}
		target = real;
	}
	if (file_split(target, &dir, &base) < 0) {
		err = ENOMEM;
		goto fail;
	}
	if (stat(target, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			err = EISDIR;
			goto fail;
		}
		if (!S_ISREG(st.st_mode)) {
			/* A device or FIFO is written to, not replaced. */
			err = -file_write_inplace(target, m->content.data,
			    m->content.len, has_mode ? (int)(m->mode & 07777) : -1);
			if (err != 0)
				goto fail;
			goto done;
		}
		exists = true;
	} else if (errno != ENOENT) {
		err = errno;
		goto fail;
	}
	/* "dir/" names a directory, as open(2) would say. */
	if (file_bad_name(base) || target[strlen(target) - 1] == '/') {
		err = EISDIR;
		goto fail;
	}
	if (!exists && parents && (err = -file_mkdirs(dir)) != 0) {
		what = "cannot create the parent directory";
		epath = dir;
		goto fail;
	}
	if (has_mode)
		mode = m->mode & 07777;
	else
		mode = exists ? st.st_mode & 07777 : FILE_DEFAULT_MODE;
	if (asprintf(&tmp, "%s/.%.*s.swx-XXXXXX", dir, FILE_TEMP_NAME,
	    base) < 0) {
		tmp = NULL;
		err = ENOMEM;
		goto fail;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		err = errno;
		free(tmp);
		tmp = NULL;
		if (exists && (err == EACCES || err == EPERM || err == EROFS ||
		    err == ENOENT)) {
			/*
			 * No file can be made beside it (a directory we may
			 * not write, /proc): rewrite it in place, which fails
			 * (before truncating) if the file is not writable
			 * either, with the error that names the file.
			 */
			err = -file_write_inplace(target, m->content.data,
			    m->content.len, has_mode ? (int)mode : -1);
			if (err != 0)
				goto fail;
			goto done;
		}
		what = "cannot create a file in";
		epath = dir;
		goto fail;
	}
	/* The replacement keeps the old file's owner where we may set it. */
	if (exists && (st.st_uid != geteuid() || st.st_gid != getegid()) &&
	    fchown(fd, st.st_uid, st.st_gid) < 0)
		log_debug("write %s: cannot keep its owner: %s", target,
		    strerror(errno));
	if (fchmod(fd, mode) < 0 ||
	    (err = -file_write_all(fd, m->content.data, m->content.len)) != 0 ||
	    fsync(fd) < 0) {
		if (err == 0)
			err = errno;
		goto fail;
	}
	err = close(fd) < 0 ? errno : 0;
	fd = -1;
	if (err != 0)
		goto fail;
	if (rename(tmp, target) < 0) {
		err = errno;
		if (err != EBUSY && err != EXDEV)
			goto fail;
		/* A mount point (a bind-mounted file) is rewritten in place. */
		err = -file_write_inplace(target, m->content.data,
		    m->content.len, has_mode ? (int)mode : -1);
		if (err != 0)
			goto fail;
		unlink(tmp);
	}
done:
	wr.bytes_written = m->content.len;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_WRITE_FILE;
	resp.write_file = &wr;
	conn_reply(r, &resp);
	goto out;

fail:
	/* Cleaned up first: the client may look as soon as it has the answer. */
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		unlink(tmp);
	conn_reply_errno(r, err, epath, "%s", what);
out:
	free(tmp);
	free(dir);
	free(base);
	free(real);
}

/* Find an upload by its connection and the id of its UploadBegin. */
static struct file_upload *
file_upload_find(struct server *srv, const void *key, uint64_t id)
{
	struct file_upload *u;

	if (key == NULL)
		return NULL;
	TAILQ_FOREACH(u, &srv->uploads, entry)
		if (u->key == key && u->id == id)
			return u;
	return NULL;
}

/* Remove what an upload staged. */
static void
file_upload_discard(struct file_upload *u)
{
	int r;

	if (u->fd >= 0) {
		close(u->fd);
		u->fd = -1;
	}
	if (u->stage_fd >= 0) {
		close(u->stage_fd);
		u->stage_fd = -1;
	}
	if (u->stage == NULL)
		return;
	if ((r = file_rmtree_at(AT_FDCWD, u->stage, 0)) < 0)
		log_warn("upload to %s: cannot remove %s: %s", u->target,
		    u->stage, strerror(-r));
	free(u->stage);
	u->stage = NULL;
}

/* Free an upload, discarding its staging; its request is dropped unanswered. */
static void
file_upload_free(struct file_upload *u)
{
	struct file_dirmode *dm;

	TAILQ_REMOVE(&u->srv->uploads, u, entry);
	if (u->req != NULL) {
		u->req->detach = NULL;
		conn_req_drop(u->req);
	}
	file_upload_discard(u);
	while ((dm = u->modes) != NULL) {
		u->modes = dm->next;
		free(dm);
	}
	free(u->cur);
	free(u->target);
	free(u);
}

/* Take an upload's UploadBegin request away from it, to answer it. */
static struct req *
file_upload_take(struct file_upload *u)
{
	struct req *r = u->req;

	u->req = NULL;
	if (r != NULL)
		r->detach = NULL;
	return r;
}

/* Discard an upload whose client went away. */
static void
file_upload_detach(struct req *r, void *arg)
{
	struct file_upload *u = arg;

	if (u->req != r)
		return;
	file_upload_take(u);
	conn_req_drop(r);
	log_info("upload to %s: client went away; discarded", u->target);
	file_upload_free(u);
}

/* Give up an upload: discard it and answer its UploadBegin with its error. */
static void
file_upload_fail(struct file_upload *u)
{
	struct file_error e = u->error;
	struct req *r = file_upload_take(u);

	log_debug("upload to %s failed: %s: %s", u->target, e.what, e.path);
	file_upload_free(u);
	file_error_reply(r, &e);
}

/* Name an entry for messages: the target joined with the entry path. */
static const char *
file_upload_name(struct file_upload *u, const char *rel, char *buf, size_t size)
{
	/* A name too long for the message is cut: it only names the entry. */
	if (snprintf(buf, size, "%s%s%s", u->target, *rel ? "/" : "", rel) < 0)
		buf[0] = '\0';
	return buf;
}

/* Record an errno error about an entry. */
static int
file_upload_errno(struct file_upload *u, int err, const char *rel,
		  const char *what)
{
	char name[1024];

	file_error_errno(&u->error, err,
	    file_upload_name(u, rel, name, sizeof name), what);
	return -1;
}

/* Record a failed creation; an entry that is there already was sent twice. */
static void
file_upload_exists(struct file_upload *u, int err, const char *rel,
		   const char *what)
{
	if (err == EEXIST)
		file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST), u->target,
		    "entry '%.200s' was sent twice", rel);
	else
		file_upload_errno(u, err, rel, what);
}

/* Check an entry path: relative, no empty, "." or ".." component, not too deep. */
static const char *
file_rel_check(const char *p)
{
	size_t n = 1;
	const char *s, *c;

	if (*p == '/')
		return "is absolute";
	if (strlen(p) >= PATH_MAX)
		return "is too long";
	for (c = p; ; c = s + 1, n++) {
		s = strchrnul(c, '/');
		if (s == c)
			return "has an empty component";
		if ((s - c == 1 && c[0] == '.') ||
		    (s - c == 2 && c[0] == '.' && c[1] == '.'))
			return "has a '.' or '..' component";
		if (*s == '\0')
			break;
	}
	if (n > FILE_MAX_DEPTH)
		return "is too deep";
	return NULL;
}

/*
 * Open the directory that holds an entry inside the staging root, creating
 * missing directories and following no symbolic link. *name is set to the
 * entry's last component (in buf). The caller closes the result unless it
 * is u->stage_fd.
 */
static int
file_upload_parent(struct file_upload *u, const char *rel, char *buf,
		   size_t size, const char **name)
{
	char *c, *s;
	int pfd = u->stage_fd, fd;

	snprintf(buf, size, "%s", rel);
	for (c = buf; (s = strchr(c, '/')) != NULL; c = s + 1) {
		*s = '\0';
		if (mkdirat(pfd, c, 0777) < 0 && errno != EEXIST)
			goto fail;
		fd = openat(pfd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			goto fail;
		if (pfd != u->stage_fd)
			close(pfd);
		pfd = fd;
		*s = '/';
	}
	*name = c;
	return pfd;

fail:
	file_upload_errno(u, errno, buf, "cannot create directory");
	if (pfd != u->stage_fd)
		close(pfd);
	return -1;
}

/* Give a staged directory its mode, now or (if it lacks u+rwx) at commit. */
static int
file_upload_dirmode(struct file_upload *u, int pfd, const char *name,
		    const char *rel, uint32_t raw)
{
	struct file_dirmode *dm;
	mode_t mode = raw != 0 ? raw & 07777 : 0777 & ~file_umask();
	size_t len = strlen(rel);

	if ((mode & 0700) != 0700) {
		if ((dm = malloc(sizeof *dm + len + 1)) == NULL)
			return file_upload_errno(u, ENOMEM, rel, "upload");
		dm->mode = mode;
		memcpy(dm->path, rel, len + 1);
		dm->next = u->modes;
		u->modes = dm;
		return 0;
	}
	if ((*rel == '\0' ? fchmod(u->stage_fd, mode) :
	    fchmodat(pfd, name, mode, 0)) < 0)
		return file_upload_errno(u, errno, rel, "cannot set the mode of");
	return 0;
}

/* Write a piece of the current file; the last piece closes it. */
static int
file_upload_piece(struct file_upload *u, const Swerex__V1__TransferEntry *e)
{
	int err;

	if ((err = -file_write_all(u->fd, e->data.data, e->data.len)) != 0)
		return file_upload_errno(u, err, e->path, "cannot write");
	u->bytes += e->data.len;
	if (!e->last)
		return 0;
	err = close(u->fd) < 0 ? errno : 0;
	u->fd = -1;
	if (err != 0)
		return file_upload_errno(u, err, e->path, "cannot write");
	free(u->cur);
	u->cur = NULL;
	u->files++;
	return 0;
}

/* Take an entry of a single-file upload: pieces of the file itself. */
static int
file_upload_single(struct file_upload *u, const Swerex__V1__TransferEntry *e)
{
	if (*e->path != '\0' || e->type != FILE_ENTRY(FILE)) {
		file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST), u->target,
		    "a file upload takes FILE entries with the path \"\" (got "
		    "type %d, path '%.200s')", (int)e->type, e->path);
		return -1;
	}
	if (u->complete) {
		file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST), u->target,
		    "data after the last piece of the file");
		return -1;
	}
	if (!u->started) {
		u->started = true;
		if (fchmod(u->fd, e->mode != 0 ? e->mode & 07777 :
		    FILE_DEFAULT_MODE) < 0)
			return file_upload_errno(u, errno, "",
			    "cannot set the mode of");
	}
	if (e->last)
		u->complete = true;
	return file_upload_piece(u, e);
}

/* Take one entry of a directory upload. */
static int
file_upload_entry(struct file_upload *u, const Swerex__V1__TransferEntry *e)
{
	char buf[PATH_MAX];
	const char *why, *name;
	struct stat st;
	int pfd, fd, r = -1;

	if (!u->is_directory)
		return file_upload_single(u, e);
	if (u->fd >= 0) {
		/* The pieces of a file arrive in order, one file at a time. */
		if (e->type == FILE_ENTRY(FILE) && strcmp(e->path, u->cur) == 0)
			return file_upload_piece(u, e);
		file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST), u->target,
		    "entry '%.200s' began before file '%.200s' had its last "
		    "piece", e->path, u->cur);
		return -1;
	}
	if (*e->path == '\0') {
		if (e->type != FILE_ENTRY(DIRECTORY)) {
			file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST),
			    u->target, "the root of a directory upload can only "
			    "be a DIRECTORY entry");
			return -1;
		}
		/* Merged into an existing directory: that one keeps its mode. */
		return u->inside ? 0 : file_upload_dirmode(u, -1, "", "", e->mode);
	}
	if ((why = file_rel_check(e->path)) != NULL) {
		file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST), u->target,
		    "entry path '%.200s' %s", e->path, why);
		return -1;
	}
	if ((pfd = file_upload_parent(u, e->path, buf, sizeof buf, &name)) < 0)
		return -1;
	switch (e->type) {
	case FILE_ENTRY(DIRECTORY):
		if (mkdirat(pfd, name, 0700) < 0 && (errno != EEXIST ||
		    fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))) {
			file_upload_errno(u, errno, e->path,
			    "cannot create directory");
			break;
		}
		r = file_upload_dirmode(u, pfd, name, e->path, e->mode);
		break;
	case FILE_ENTRY(SYMLINK):
		if (*e->link_target == '\0') {
			file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST),
			    u->target, "symbolic link '%.200s' has no target",
			    e->path);
			break;
		}
		if (symlinkat(e->link_target, pfd, name) < 0) {
			file_upload_exists(u, errno, e->path,
			    "cannot create symbolic link");
			break;
		}
		u->files++;
		r = 0;
		break;
	case FILE_ENTRY(FILE):
		fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd < 0) {
			file_upload_exists(u, errno, e->path, "cannot create");
			break;
		}
		u->fd = fd;
		if ((u->cur = strdup(e->path)) == NULL) {
			file_upload_errno(u, ENOMEM, e->path, "upload");
			break;
		}
		if (fchmod(fd, e->mode != 0 ? e->mode & 07777 :
		    FILE_DEFAULT_MODE) < 0) {
			file_upload_errno(u, errno, e->path,
			    "cannot set the mode of");
			break;
		}
		r = file_upload_piece(u, e);
		break;
	default:
		file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST), u->target,
		    "entry '%.200s' has an unknown type %d", e->path,
		    (int)e->type);
		break;
	}
	if (pfd != u->stage_fd)
		close(pfd);
	return r;
}

/* Handle UploadBegin: check the target and create the staging area. */
void
file_upload_begin(struct server *srv, struct req *r,
		  const Swerex__V1__UploadBegin *m)
{
	bool parents = m->has_create_parents_case !=
	    SWEREX__V1__UPLOAD_BEGIN__HAS_CREATE_PARENTS_CREATE_PARENTS ||
	    m->create_parents;
	struct file_upload *u = NULL;
	char *dir = NULL, *base = NULL;
	const char *what = "cannot upload to", *epath = m->target_path;
	bool exists = false;
	struct stat st;
	size_t n = 0;
	int err, len;

	if (file_no_path(r, m->target_path))
		return;
	if (file_upload_find(srv, conn_key(r), r->id) != NULL) {
		conn_reply_error(r, FILE_KIND(INVALID_REQUEST), NULL, NULL,
		    "upload %llu is already in progress on this connection",
		    (unsigned long long)r->id);
		return;
	}
	TAILQ_FOREACH(u, &srv->uploads, entry)
		n++;
	if (n >= FILE_MAX_UPLOADS) {
		conn_reply_error(r, FILE_KIND(RESOURCE_EXHAUSTED), NULL, NULL,
		    "too many uploads in progress (limit %d)", FILE_MAX_UPLOADS);
		return;
	}
	if ((u = calloc(1, sizeof *u)) == NULL) {
		conn_reply_errno(r, ENOMEM, m->target_path, "%s", what);
		return;
	}
	u->srv = srv;
	u->key = conn_key(r);
	u->id = r->id;
	u->is_directory = m->is_directory;
	u->fd = u->stage_fd = -1;
	TAILQ_INSERT_TAIL(&srv->uploads, u, entry);
	/* A link is uploaded through, as for WriteFileRequest. */
	if (lstat(m->target_path, &st) == 0 && S_ISLNK(st.st_mode))
		u->target = realpath(m->target_path, NULL);
	if (u->target == NULL && (u->target = strdup(m->target_path)) == NULL) {
		err = ENOMEM;
		goto fail;
	}
	len = (int)strlen(u->target);
	while (len > 1 && u->target[len - 1] == '/')
		u->target[--len] = '\0';
	if (file_split(u->target, &dir, &base) < 0) {
		err = ENOMEM;
		goto fail;
	}

	if (stat(u->target, &st) == 0) {
		if (m->is_directory && !S_ISDIR(st.st_mode)) {
			err = ENOTDIR;
			goto fail;
		}
		if (!m->is_directory && S_ISDIR(st.st_mode)) {
			err = EISDIR;
			goto fail;
		}
		u->inside = m->is_directory;
		exists = true;
	} else if (errno != ENOENT) {
		err = errno;
		goto fail;
	} else if (parents && (err = -file_mkdirs(dir)) != 0) {
		what = "cannot create the parent directory";
		epath = dir;
		goto fail;
	}
	if (!u->inside && file_bad_name(base)) {
		err = EISDIR;
		goto fail;
	}
	if (u->inside)
		len = asprintf(&u->stage, "%s/.swx-up-XXXXXX", u->target);
	else
		len = asprintf(&u->stage, "%s/.%.*s.swx-up-XXXXXX", dir,
		    FILE_TEMP_NAME, base);
	if (len < 0) {
		u->stage = NULL;
		err = ENOMEM;
		goto fail;
	}
	what = "cannot create the staging area in";
	epath = u->inside ? u->target : dir;
	if (m->is_directory) {
		if (mkdtemp(u->stage) == NULL) {
			err = errno;
			free(u->stage);
			u->stage = NULL;
			goto fail;
		}
		u->stage_fd = open(u->stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (u->stage_fd < 0 ||
		    fchmod(u->stage_fd, 0777 & ~file_umask()) < 0) {
			err = errno;
			goto fail;
		}
	} else {
		if ((u->fd = mkostemp(u->stage, O_CLOEXEC)) < 0) {
			err = errno;
			free(u->stage);
			u->stage = NULL;
			goto fail;
		}
		if (fchmod(u->fd, FILE_DEFAULT_MODE) < 0) {
			err = errno;
			goto fail;
		}
		/* A replaced file keeps its owner, as with WriteFileRequest. */
		if (exists && (st.st_uid != geteuid() || st.st_gid != getegid()) &&
		    fchown(u->fd, st.st_uid, st.st_gid) < 0)
			log_debug("upload %s: cannot keep its owner: %s",
			    u->target, strerror(errno));
	}
	u->req = r;
	r->detach = file_upload_detach;
	r->detach_arg = u;
	log_debug("upload %llu to %s: staged at %s", (unsigned long long)u->id,
	    u->target, u->stage);
	free(dir);
	free(base);
	return;

fail:
	conn_reply_errno(r, err, epath, "%s", what);
	file_upload_free(u);
	free(dir);
	free(base);
}

/* Handle UploadData: write its entries into the staging area. */
void
file_upload_data(struct server *srv, struct req *r,
		 const Swerex__V1__UploadData *m)
{
	struct file_upload *u = file_upload_find(srv, conn_key(r), m->upload_id);
	size_t i;

	conn_req_drop(r);
	/* Unknown: it failed (and was answered) or was never begun. */
	if (u == NULL || u->req == NULL)
		return;
	for (i = 0; i < m->n_entries; i++) {
		if (file_upload_entry(u, m->entries[i]) < 0) {
			file_upload_fail(u);
			return;
		}
	}
}

/* State of a merge of a staged tree into an existing directory. */
struct file_merge {
	struct file_upload *u;
	bool move;              /* false: only look for conflicts */
	char rel[PATH_MAX];
};

/*
 * Merge the staged directory src into dst: entries dst lacks are moved in,
 * files and links replace files and links, directories meeting directories
 * are merged. With move false, nothing changes; a conflict (a directory
 * meeting a non-directory) is reported.
 */
static int
file_merge(struct file_merge *mg, int src, int dst, size_t depth)
{
	struct file_upload *u = mg->u;
	size_t len = strlen(mg->rel);
	struct stat ss, ds;
	struct dirent *de;
	int fd, sfd, dfd, r = 0;
	DIR *d;

	if (depth > FILE_MAX_DEPTH)
		return file_upload_errno(u, ELOOP, mg->rel, "cannot merge");
	fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		file_upload_errno(u, errno, mg->rel, "cannot read staged");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		mg->rel[len] = '\0';
		if (len + strlen(de->d_name) + 2 > sizeof mg->rel) {
			r = file_upload_errno(u, ENAMETOOLONG, mg->rel,
			    "cannot merge");
			break;
		}
		snprintf(mg->rel + len, sizeof mg->rel - len, "%s%s",
		    len ? "/" : "", de->d_name);
		if (fstatat(src, de->d_name, &ss, AT_SYMLINK_NOFOLLOW) < 0) {
			r = file_upload_errno(u, errno, mg->rel, "cannot merge");
			break;
		}
		if (fstatat(dst, de->d_name, &ds, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = file_upload_errno(u, errno, mg->rel,
				    "cannot merge into");
			else if (mg->move && renameat(src, de->d_name, dst,
			    de->d_name) < 0)
				r = file_upload_errno(u, errno, mg->rel,
				    "cannot move into place");
			continue;
		}
		if (S_ISDIR(ss.st_mode) && S_ISDIR(ds.st_mode)) {
			sfd = openat(src, de->d_name, O_PATH | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			dfd = openat(dst, de->d_name, O_PATH | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (sfd < 0 || dfd < 0)
				r = file_upload_errno(u, errno, mg->rel,
				    "cannot merge into");
			else
				r = file_merge(mg, sfd, dfd, depth + 1);
			if (sfd >= 0)
				close(sfd);
			if (dfd >= 0)
				close(dfd);
			if (r == 0 && mg->move)
				unlinkat(src, de->d_name, AT_REMOVEDIR);
		} else if (S_ISDIR(ss.st_mode) || S_ISDIR(ds.st_mode)) {
			r = file_upload_errno(u, S_ISDIR(ds.st_mode) ? EISDIR :
			    ENOTDIR, mg->rel, S_ISDIR(ds.st_mode) ?
			    "cannot replace a directory with a file" :
			    "cannot replace a file with a directory");
		} else if (mg->move && renameat(src, de->d_name, dst,
		    de->d_name) < 0)
			r = file_upload_errno(u, errno, mg->rel,
			    "cannot move into place");
	}
	mg->rel[len] = '\0';
	closedir(d);
	return r;
}

/* Merge the staging tree into the existing target directory. */
static int
file_upload_merge(struct file_upload *u)
{
	struct file_merge *mg;
	int dst, r;

	dst = open(u->target, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dst < 0)
		return file_upload_errno(u, errno, "", "cannot upload into");
	if ((mg = calloc(1, sizeof *mg)) == NULL) {
		close(dst);
		return file_upload_errno(u, ENOMEM, "", "upload");
	}
	mg->u = u;
	r = file_merge(mg, u->stage_fd, dst, 0);
	if (r == 0) {
		mg->move = true;
		r = file_merge(mg, u->stage_fd, dst, 0);
	}
	free(mg);
	close(dst);
	return r;
}

/* Put a finished upload in place. */
static int
file_upload_commit(struct file_upload *u)
{
	struct file_dirmode *dm;
	int err;

	if (u->fd >= 0 && (u->is_directory || u->started)) {
		file_error_kind(&u->error, FILE_KIND(INVALID_REQUEST), u->target,
		    "file '%.200s' did not get its last piece",
		    u->cur != NULL ? u->cur : "");
		return -1;
	}
	if (!u->is_directory) {
		if (u->fd >= 0) {
			/* No entry at all: an empty file. */
			err = close(u->fd) < 0 ? errno : 0;
			u->fd = -1;
			if (err != 0)
				return file_upload_errno(u, err, "", "cannot write");
		}
		if (rename(u->stage, u->target) < 0)
			return file_upload_errno(u, errno, "", "cannot upload to");
		free(u->stage);
		u->stage = NULL;
		return 0;
	}
	for (dm = u->modes; dm != NULL; dm = dm->next) {
		if ((*dm->path == '\0' ? fchmod(u->stage_fd, dm->mode) :
		    fchmodat(u->stage_fd, dm->path, dm->mode, 0)) < 0)
			return file_upload_errno(u, errno, dm->path,
			    "cannot set the mode of");
	}
	if (!u->inside) {
		if (rename(u->stage, u->target) == 0) {
			free(u->stage);
			u->stage = NULL;
			return 0;
		}
		/* Created meanwhile: a directory is merged into. */
		if (errno != ENOTEMPTY && errno != EEXIST)
			return file_upload_errno(u, errno, "", "cannot upload to");
	}
	return file_upload_merge(u);
}

/* Handle UploadEnd: commit (or abort) and answer both requests. */
void
file_upload_end(struct server *srv, struct req *r, const Swerex__V1__UploadEnd *m)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__UploadResponse ur = SWEREX__V1__UPLOAD_RESPONSE__INIT;
	struct file_upload *u = file_upload_find(srv, conn_key(r), m->upload_id);
	struct file_error e;
	struct req *begin;

	if (u == NULL || u->req == NULL) {
		conn_reply_error(r, FILE_KIND(INVALID_REQUEST), NULL, NULL,
		    "no upload %llu in progress on this connection (it failed "
		    "and was answered, or was never begun)",
		    (unsigned long long)m->upload_id);
		return;
	}
	resp.body_case = SWEREX__V1__RESPONSE__BODY_UPLOAD;
	resp.upload = &ur;
	if (m->abort) {
		file_error_kind(&e, FILE_KIND(INTERRUPTED), u->target,
		    "upload aborted by the client; nothing was written to");
		begin = file_upload_take(u);
		file_upload_free(u);
		file_error_reply(begin, &e);
		conn_reply(r, &resp);
		return;
	}
	if (file_upload_commit(u) < 0) {
		e = u->error;
		begin = file_upload_take(u);
		file_upload_free(u);
		file_error_reply(begin, &e);
		file_error_reply(r, &e);
		return;
	}
	log_debug("upload %llu to %s: %llu files, %llu bytes",
	    (unsigned long long)u->id, u->target, (unsigned long long)u->files,
	    (unsigned long long)u->bytes);
	ur.files = u->files;
	ur.bytes = u->bytes;
	begin = file_upload_take(u);
	file_upload_free(u);
	conn_reply(begin, &resp);
	conn_reply(r, &resp);
}

/* Free a download; its request, if any, is dropped unanswered. */
static void
file_download_free(struct file_download *dl)
{
	TAILQ_REMOVE(&dl->srv->downloads, dl, entry);
	event_del(&dl->ev);
	if (dl->req != NULL) {
		dl->req->detach = NULL;
		conn_req_drop(dl->req);
	}
	if (dl->fd >= 0)
		close(dl->fd);
	while (dl->depth > 0)
		closedir(dl->dirs[--dl->depth]);
	free(dl->root);
	free(dl);
}

/* Forget a download whose client went away; freed now or by its callback. */
static void
file_download_detach(struct req *r, void *arg)
{
	struct file_download *dl = arg;

	if (dl->req != r)
		return;
	dl->req = NULL;
	conn_req_drop(r);
	log_debug("download %s: client went away%s", dl->root,
	    dl->busy ? " while an entry was sent" : "");
	if (!dl->busy)
		file_download_free(dl);
}

/* Produce again: the client caught up (or went away: then detach follows). */
static void
file_download_resume(void *arg)
{
	struct file_download *dl = arg;

	if (conn_req_attached(dl->req))
		event_active(&dl->ev, EV_TIMEOUT, 0);
}

/* Name the current entry of a download for messages. */
static const char *
file_download_name(struct file_download *dl, char *buf, size_t size)
{
	snprintf(buf, size, "%.400s%s%.600s", dl->root, *dl->rel ? "/" : "",
	    dl->rel);
	return buf;
}

/* Record an errno error about the current entry of a download. */
static int
file_download_errno(struct file_download *dl, int err, const char *what)
{
	char name[1024];

	file_error_errno(&dl->error, err,
	    file_download_name(dl, name, sizeof name), what);
	return -1;
}

/* Stream one entry of a download. */
static void
file_download_send(struct file_download *dl, Swerex__V1__EntryType type,
		   mode_t mode, const char *link, const char *data, size_t n,
		   bool last)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__TransferEntry te = SWEREX__V1__TRANSFER_ENTRY__INIT;

	te.path = dl->rel;
	te.type = type;
	te.mode = mode & 07777;
	if (link != NULL)
		te.link_target = (char *)link;
	te.data.data = (uint8_t *)data;
	te.data.len = n;
	te.last = last;
	resp.body_case = SWEREX__V1__RESPONSE__BODY_ENTRY;
	resp.entry = &te;
	conn_stream(dl->req, &resp);
}

/* Send the next piece of the current file; a short read is its end. */
static int
file_download_piece(struct file_download *dl, size_t *bytes)
{
	size_t len = 0;
	ssize_t n;

	while (len < sizeof file_buf) {
		n = read(dl->fd, file_buf + len, sizeof file_buf - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return file_download_errno(dl, errno, "cannot read");
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*bytes += len;
	dl->bytes += len;
	if (len < sizeof file_buf) {
		close(dl->fd);
		dl->fd = -1;
		dl->files++;
	}
	file_download_send(dl, FILE_ENTRY(FILE), dl->mode, NULL, file_buf, len,
	    dl->fd < 0);
	return 1;
}

/* Take the next entry of the walk: 1 if one was sent, 0 at the end, -1 on error. */
static int
file_download_step(struct file_download *dl, size_t *bytes)
{
	char link[PATH_MAX], name[1024];
	struct dirent *de;
	struct stat st;
	size_t len;
	ssize_t n;
	DIR *d;
	int fd;

	if (dl->fd >= 0)
		return file_download_piece(dl, bytes);
	if (!dl->root_sent) {
		dl->root_sent = true;
		file_download_send(dl, FILE_ENTRY(DIRECTORY), dl->root_mode, NULL,
		    NULL, 0, false);
		return 1;
	}
	while (dl->depth > 0) {
		d = dl->dirs[dl->depth - 1];
		len = dl->lens[dl->depth - 1];
		dl->rel[len] = '\0';
		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				return file_download_errno(dl, errno,
				    "cannot read directory");
			closedir(d);
			dl->depth--;
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (len + strlen(de->d_name) + 2 > sizeof dl->rel)
			return file_download_errno(dl, ENAMETOOLONG,
			    "cannot download");
		snprintf(dl->rel + len, sizeof dl->rel - len, "%s%s",
		    len ? "/" : "", de->d_name);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;  /* gone since it was listed */
			return file_download_errno(dl, errno, "cannot download");
		}
		if (S_ISDIR(st.st_mode)) {
			if (dl->depth == FILE_MAX_DEPTH) {
				file_error_kind(&dl->error, FILE_KIND(FILE_ERROR),
				    file_download_name(dl, name, sizeof name),
				    "cannot download a tree deeper than %d "
				    "levels", FILE_MAX_DEPTH);
				return -1;
			}
			fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0)
				return file_download_errno(dl, errno,
				    "cannot open directory");
			if ((dl->dirs[dl->depth] = fdopendir(fd)) == NULL) {
				close(fd);
				return file_download_errno(dl, errno,
				    "cannot open directory");
			}
			dl->lens[dl->depth++] = strlen(dl->rel);
			file_download_send(dl, FILE_ENTRY(DIRECTORY), st.st_mode,
			    NULL, NULL, 0, false);
			return 1;
		}
		if (S_ISLNK(st.st_mode)) {
			n = readlinkat(dirfd(d), de->d_name, link, sizeof link);
			if (n < 0 || (size_t)n >= sizeof link)
				return file_download_errno(dl, n < 0 ? errno :
				    ENAMETOOLONG, "cannot read symbolic link");
			link[n] = '\0';
			dl->files++;
			file_download_send(dl, FILE_ENTRY(SYMLINK), 0777, link,
			    NULL, 0, true);
			return 1;
		}
		if (!S_ISREG(st.st_mode)) {
			log_debug("download %s: skipping special file %s",
			    dl->root, dl->rel);
			continue;
		}
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0 && errno == ENOENT)
			continue;  /* gone since it was listed */
		if (fd < 0)
			return file_download_errno(dl, errno, "cannot read");
		dl->fd = fd;
		dl->mode = st.st_mode;
		return file_download_piece(dl, bytes);
	}
	return 0;
}

/* Answer a download whose walk ended (or failed), and free it. */
static void
file_download_finish(struct file_download *dl, int r)
{
	Swerex__V1__Response resp = SWEREX__V1__RESPONSE__INIT;
	Swerex__V1__DownloadResponse dr = SWEREX__V1__DOWNLOAD_RESPONSE__INIT;
	struct req *req = dl->req;

	dl->req = NULL;
	req->detach = NULL;
	if (r < 0)
		file_error_reply(req, &dl->error);
	else {
		dr.is_directory = dl->is_directory;
		dr.files = dl->files;
		dr.bytes = dl->bytes;
		resp.body_case = SWEREX__V1__RESPONSE__BODY_DOWNLOAD;
		resp.download = &dr;
		log_debug("download %s: %llu files, %llu bytes", dl->root,
		    (unsigned long long)dl->files, (unsigned long long)dl->bytes);
		conn_reply(req, &resp);
	}
	file_download_free(dl);
}

/* Produce a few entries, then yield; stop while the client is behind. */
static void
file_download_cb(evutil_socket_t fd, short what, void *arg)
{
	struct file_download *dl = arg;
	size_t bytes = 0, entries = 0;
	int r;

	dl->busy = true;
	while (dl->req != NULL) {
		if (entries == FILE_EVENT_ENTRIES || bytes >= FILE_EVENT_BYTES) {
			/* Let other peers in; go on in the next loop pass. */
			event_active(&dl->ev, EV_TIMEOUT, 0);
			break;
		}
		if (conn_backlogged(dl->req, file_download_resume, dl))
			break;
		entries++;
		if ((r = file_download_step(dl, &bytes)) <= 0) {
			file_download_finish(dl, r);
			return;
		}
	}
	dl->busy = false;
	/* The client went away while an entry was being sent. */
	if (dl->req == NULL)
		file_download_free(dl);
}

/* Handle DownloadRequest: start streaming a file or a tree. */
void
file_download(struct server *srv, struct req *r,
	      const Swerex__V1__DownloadRequest *m)
{
	const char *extra[] = { "path", m->path, NULL };
	struct file_download *dl;
	struct stat st;
	size_t n = 0;
	int err, fd;

	if (file_no_path(r, m->path))
		return;
	TAILQ_FOREACH(dl, &srv->downloads, entry)
		n++;
	if (n >= FILE_MAX_DOWNLOADS) {
		conn_reply_error(r, FILE_KIND(RESOURCE_EXHAUSTED), NULL, NULL,
		    "too many downloads in progress (limit %d)",
		    FILE_MAX_DOWNLOADS);
		return;
	}
	/* The path itself is followed if it is a link; links inside are not. */
	if (stat(m->path, &st) < 0) {
		conn_reply_errno(r, errno, m->path, "cannot download");
		return;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		conn_reply_error(r, FILE_KIND(FILE_ERROR), NULL, extra,
		    "cannot download %.1000s: not a regular file or directory",
		    m->path);
		return;
	}
	if ((dl = calloc(1, sizeof *dl)) == NULL ||
	    (dl->root = strdup(m->path)) == NULL) {
		free(dl);
		conn_reply_errno(r, ENOMEM, m->path, "cannot download");
		return;
	}
	dl->srv = srv;
	dl->fd = -1;
	event_assign(&dl->ev, srv->base, -1, 0, file_download_cb, dl);
	TAILQ_INSERT_TAIL(&srv->downloads, dl, entry);
	if (S_ISDIR(st.st_mode)) {
		dl->is_directory = true;
		dl->root_mode = st.st_mode;
		fd = open(m->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || (dl->dirs[0] = fdopendir(fd)) == NULL) {
			err = errno;
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		dl->lens[0] = 0;
		dl->depth = 1;
	} else {
		dl->root_sent = true;
		dl->fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK);
		if (dl->fd < 0 || fstat(dl->fd, &st) < 0) {
			err = errno;
			goto fail;
		}
		if (!S_ISREG(st.st_mode)) {
			err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
			goto fail;
		}
		dl->mode = st.st_mode;
	}
	dl->req = r;
	r->detach = file_download_detach;
	r->detach_arg = dl;
	event_active(&dl->ev, EV_TIMEOUT, 0);
	return;

fail:
	conn_reply_errno(r, err, m->path, "cannot download");
	file_download_free(dl);
}

/* Abort every transfer (shutdown): staging is removed, nothing is answered. */
void
file_free_all(struct server *srv)
{
	struct file_upload *u;
	struct file_download *dl;

	while ((u = TAILQ_FIRST(&srv->uploads)) != NULL)
		file_upload_free(u);
	while ((dl = TAILQ_FIRST(&srv->downloads)) != NULL)
		file_download_free(dl);
}
