/*
 * libswerex transfers: swerex_upload() and swerex_download().
 *
 * An upload walks the local tree (never following a symlink in it) and
 * streams it as UploadData frames of a few entries each, files in pieces
 * read with read(): one piece and one batch of entries are in memory at a
 * time, and the output buffer is kept below TRANSFER_OUT_HIGH. A download
 * writes each entry as it arrives into a staging directory beside the
 * destination and moves the result into place at the end; a download that
 * fails leaves nothing behind.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "client.h"
#include "swerex.h"

/*
 * Output queued beyond this during an upload makes the uploader run the loop
 * until less than half of it is left: memory stays bounded whatever the
 * size of the tree and however slowly the daemon reads.
 */
#define TRANSFER_OUT_HIGH (4u * 1024 * 1024)
/* File data per transfer entry (the wire's limit), and entries per frame. */
#define TRANSFER_PIECE (1024u * 1024)
#define TRANSFER_BATCH 64

/* Open flags of a directory that must not be reached through a symlink. */
#define TRANSFER_DIR_FLAGS (O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC)

/* Map an errno value to the kind swerexd gives the same failure. */
static enum swerex_error_kind
transfer_error_kind(int error)
{
	switch (error) {
	case ENOENT:
		return SWEREX_ERR_FILE_NOT_FOUND;
	case EISDIR:
		return SWEREX_ERR_IS_A_DIRECTORY;
	case ENOTDIR:
		return SWEREX_ERR_NOT_A_DIRECTORY;
	case EACCES:
	case EPERM:
	case EROFS:
		return SWEREX_ERR_PERMISSION_DENIED;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return SWEREX_ERR_NO_SPACE;
	case ENOMEM:
		return SWEREX_ERR_NO_MEMORY;
	default:
		return SWEREX_ERR_FILE_ERROR;
	}
}

/* Add a key and a value to an error's details; 0, or -1 if memory ran out. */
static int
transfer_error_extra(struct swerex_error *e, const char *key, const char *value)
{
	struct swerex_kv *extra;

	extra = reallocarray(e->extra, e->n_extra + 1, sizeof *extra);
	if (extra == NULL)
		return -1;
	e->extra = extra;
	extra[e->n_extra].key = strdup(key);
	extra[e->n_extra].value = strdup(value);
	if (extra[e->n_extra].key == NULL || extra[e->n_extra].value == NULL) {
		free(extra[e->n_extra].key);
		free(extra[e->n_extra].value);
		return -1;
	}
	e->n_extra++;
	return 0;
}

/*
 * Create the error of a failed local file operation, worded as swerexd
 * words its own: "what: path: strerror", with extra path, errno (its name)
 * and strerror. Details that do not fit in memory are left out.
 */
static struct swerex_error *
transfer_error_errno(int error, const char *what, const char *path)
{
	struct swerex_error *e;
	const char *name;

	e = error_new(transfer_error_kind(error), "%s: %s: %s", what, path,
	    strerror(error));
	if (e == NULL)
		return NULL;
	name = strerrorname_np(error);
	if (transfer_error_extra(e, "path", path) == 0 &&
	    transfer_error_extra(e, "errno", name != NULL ? name :
	    "unknown") == 0)
		transfer_error_extra(e, "strerror", strerror(error));
	return e;
}

/* Join a directory and a name with "/"; an empty directory gives the name. */
static char *
transfer_path_join(const char *dir, const char *name)
{
	char *p;

	if (*dir == '\0')
		return strdup(name);
	if (*name == '\0')
		return strdup(dir);
	if (asprintf(&p, "%s/%s", dir, name) == -1)
		return NULL;
	return p;
}

/* Compare two names for qsort(). */
static int
transfer_names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Free a list of names. */
static void
transfer_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Read the names in directory path, sorted, without "." and "..". A symlink
 * at path is followed only if follow is set. Return 0, or an errno value.
 */
static int
transfer_names_read(const char *path, bool follow, char ***namesp, size_t *np)
{
	struct dirent *de;
	DIR *dir;
	char **names = NULL, **grown;
	size_t n = 0, size = 0;
	int fd, error = 0;

	*namesp = NULL;
	*np = 0;
	fd = open(path, follow ? TRANSFER_DIR_FLAGS & ~O_NOFOLLOW :
	    TRANSFER_DIR_FLAGS);
	if (fd == -1)
		return errno;
	if ((dir = fdopendir(fd)) == NULL) {
		error = errno;
		close(fd);
		return error;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(dir)) == NULL) {
			error = errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == size) {
			size = size == 0 ? 16 : size * 2;
			grown = reallocarray(names, size, sizeof *names);
			if (grown == NULL) {
				error = ENOMEM;
				break;
			}
			names = grown;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			error = ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	if (error != 0) {
		transfer_names_free(names, n);
		return error;
	}
	if (n != 0)
		qsort(names, n, sizeof *names, transfer_names_cmp);
	*namesp = names;
	*np = n;
	return 0;
}

/* Remove path and all below it, never following symlinks; best effort. */
static void
transfer_rmtree(const char *path)
{
	struct stat st;
	char **names, *child;
	size_t n, i;

	if (lstat(path, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlink(path);
		return;
	}
	if (transfer_names_read(path, false, &names, &n) == 0) {
		for (i = 0; i < n; i++) {
			if ((child = transfer_path_join(path,
			    names[i])) != NULL)
				transfer_rmtree(child);
			free(child);
		}
		transfer_names_free(names, n);
	}
	rmdir(path);
}

/* Give the file bytes per entry: 1 MiB, less if the daemon's frames are. */
static size_t
transfer_piece(const struct swerex_client *c)
{
	if (c->max_frame != 0 && c->max_frame / 4 < TRANSFER_PIECE)
		return c->max_frame / 4 > 0 ? (size_t)(c->max_frame / 4) : 1;
	return TRANSFER_PIECE;
}

/* Report progress, if asked; blocking calls on c are refused meanwhile. */
static void
transfer_progress(struct swerex_client *c, swerex_progress_cb cb, void *arg,
    uint64_t bytes, uint64_t files)
{
	if (cb == NULL)
		return;
	c->in_callback++;
	cb(bytes, files, arg);
	c->in_callback--;
}

/* Read up to len bytes, fewer only at end of file; the count, or -1. */
static ssize_t
transfer_read_full(int fd, char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, buf + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* An upload in progress, with the batch of entries for the next frame. */
struct transfer_upload {
	struct swerex_client *c;
	struct client_wait *w;		/* the UploadBegin's slot */
	uint64_t id;			/* the UploadBegin's: the transfer's */
	size_t piece;			/* file bytes per entry */
	char *buf;			/* a piece as read */
	char link[PATH_MAX];		/* a symlink's target as read */
	Swerex__V1__TransferEntry entries[TRANSFER_BATCH];
	Swerex__V1__TransferEntry *ptrs[TRANSFER_BATCH];
	size_t n;
	size_t batch_bytes;		/* about their encoded size */
	uint64_t bytes;
	uint64_t files;
	swerex_progress_cb progress;
	void *progress_arg;
	struct swerex_error *error;	/* why the upload stopped here */
};

/* Free the entries of the batch. */
static void
transfer_upload_clear(struct transfer_upload *u)
{
	Swerex__V1__TransferEntry *e;
	size_t i;

	for (i = 0; i < u->n; i++) {
		e = &u->entries[i];
		free(e->path);
		if (e->type == SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_SYMLINK)
			free(e->link_target);
		free(e->data.data);
	}
	u->n = 0;
	u->batch_bytes = 0;
}

/*
 * Let the upload make progress: write what the socket takes and handle what
 * came in, without waiting; but while more than TRANSFER_OUT_HIGH is queued,
 * wait until half of it is sent. Return 0, or -1 when the transfer's final
 * reply came (it is in u->w) or the loop cannot run (u->error).
 */
static int
transfer_upload_pump(struct transfer_upload *u)
{
	struct swerex_client *c = u->c;
	int flags = EVLOOP_NONBLOCK;

	while (!u->w->done) {
		if (event_base_loop(c->base, flags) == -1) {
			error_set(&u->error, SWEREX_ERR_INTERNAL, "cannot run "
			    "the event base (blocking call from inside one "
			    "of its callbacks?)");
			return -1;
		}
		if (evbuffer_get_length(c->out) <= (flags == EVLOOP_NONBLOCK ?
		    TRANSFER_OUT_HIGH : TRANSFER_OUT_HIGH / 2))
			break;
		flags = EVLOOP_ONCE;
	}
	return u->w->done ? -1 : 0;
}

/*
 * Send the batch as one UploadData frame. Data frames get no reply: each
 * has an id of its own, but nothing waits for it in the pending table.
 * Return 0, or -1 (see transfer_upload_pump()).
 */
static int
transfer_upload_flush(struct transfer_upload *u)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__UploadData body = SWEREX__V1__UPLOAD_DATA__INIT;
	uint64_t id;

	if (u->n != 0) {
		body.upload_id = u->id;
		body.n_entries = u->n;
		body.entries = u->ptrs;
		req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_DATA;
		req.upload_data = &body;
		id = client_queue(u->c, &req, &u->error);
		transfer_upload_clear(u);
		if (id == 0)
			return -1;
	}
	return transfer_upload_pump(u);
}

/*
 * Add an entry to the batch, sending the batch first if the entry would not
 * fit. data (len bytes, from malloc, or NULL) is taken over. 0, or -1.
 */
static int
transfer_upload_add(struct transfer_upload *u, const char *path,
    Swerex__V1__EntryType type, uint32_t mode, const char *target,
    uint8_t *data, size_t len, bool last)
{
	Swerex__V1__TransferEntry *e;
	size_t cost;

	cost = strlen(path) + (target != NULL ? strlen(target) : 0) + len + 32;
	if (u->n == TRANSFER_BATCH ||
	    (u->n != 0 && u->batch_bytes + cost > u->piece)) {
		if (transfer_upload_flush(u) != 0) {
			free(data);
			return -1;
		}
	}
	e = &u->entries[u->n];
	swerex__v1__transfer_entry__init(e);
	e->path = strdup(path);
	if (target != NULL)
		e->link_target = strdup(target);
	if (e->path == NULL || e->link_target == NULL) {
		free(e->path);
		if (target != NULL)
			free(e->link_target);
		free(data);
		error_set(&u->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	e->type = type;
	e->mode = mode;
	e->data.data = data;
	e->data.len = len;
	e->last = last;
	u->ptrs[u->n++] = e;
	u->batch_bytes += cost;
	return 0;
}

/*
 * Send a regular file as entries of at most one piece each: the first
 * carries the mode, the last has last set; an empty file is one entry. One
 * byte is read ahead after a full piece to know whether it was the last,
 * whatever st_size said.
 */
static int
transfer_upload_file(struct transfer_upload *u, const char *path,
    const char *rel)
{
	struct stat st;
	uint8_t *data;
	ssize_t n;
	size_t have;
	bool first = true, last = false;
	int fd, ahead = -1;
	char byte;

	fd = open(path, O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC);
	if (fd == -1) {
		u->error = transfer_error_errno(errno, "cannot open", path);
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		u->error = transfer_error_errno(errno, "cannot stat", path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		error_set(&u->error, SWEREX_ERR_BAD_ARGUMENT,
		    "%s: not a regular file", path);
		goto fail;
	}
	while (!last) {
		have = 0;
		if (ahead != -1) {
			u->buf[have++] = (char)ahead;
			ahead = -1;
		}
		if ((n = transfer_read_full(fd, u->buf + have,
		    u->piece - have)) == -1)
			goto read_fail;
		have += (size_t)n;
		if (have < u->piece)
			last = true;
		else {
			if ((n = transfer_read_full(fd, &byte, 1)) == -1)
				goto read_fail;
			if (n == 0)
				last = true;
			else
				ahead = (unsigned char)byte;
		}
		data = NULL;
		if (have != 0) {
			if ((data = malloc(have)) == NULL) {
				error_set(&u->error, SWEREX_ERR_NO_MEMORY,
				    "out of memory");
				goto fail;
			}
			memcpy(data, u->buf, have);
		}
		if (transfer_upload_add(u, rel,
		    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE,
		    first ? (uint32_t)(st.st_mode & 07777) : 0, NULL, data,
		    have, last) != 0)
			goto fail;
		first = false;
		u->bytes += have;
		if (last)
			u->files++;
		transfer_progress(u->c, u->progress, u->progress_arg, u->bytes,
		    u->files);
	}
	close(fd);
	return 0;

read_fail:
	u->error = transfer_error_errno(errno, "cannot read", path);
fail:
	close(fd);
	return -1;
}

/*
 * Send the entries below a directory, each directory before its contents
 * so that empty ones arrive too. Symlinks are sent as symlinks (and count
 * as files, as the daemon counts them); sockets, fifos and devices cannot
 * be sent and are skipped.
 */
static int
transfer_upload_dir(struct transfer_upload *u, const char *path,
    const char *rel)
{
	struct stat st;
	char **names, *cpath, *crel;
	size_t n, i;
	ssize_t len;
	bool follow;
	int error, rc = 0;

	/* Only the source itself may be a symlink, followed as stat() did. */
	follow = *rel == '\0';
	if ((error = transfer_names_read(path, follow, &names, &n)) != 0) {
		u->error = transfer_error_errno(error, "cannot read directory",
		    path);
		return -1;
	}
	for (i = 0; i < n && rc == 0; i++) {
		cpath = transfer_path_join(path, names[i]);
		crel = transfer_path_join(rel, names[i]);
		if (cpath == NULL || crel == NULL) {
			error_set(&u->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			rc = -1;
		} else if (lstat(cpath, &st) != 0) {
			u->error = transfer_error_errno(errno, "cannot stat",
			    cpath);
			rc = -1;
		} else if (S_ISDIR(st.st_mode)) {
			rc = transfer_upload_add(u, crel,
			    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_DIRECTORY,
			    st.st_mode & 07777, NULL, NULL, 0, false);
			if (rc == 0)
				rc = transfer_upload_dir(u, cpath, crel);
		} else if (S_ISLNK(st.st_mode)) {
			len = readlink(cpath, u->link, sizeof u->link);
			if (len == -1 || (size_t)len == sizeof u->link) {
				u->error = transfer_error_errno(len == -1 ?
				    errno : ENAMETOOLONG, "cannot read link",
				    cpath);
				rc = -1;
			} else {
				u->link[len] = '\0';
				rc = transfer_upload_add(u, crel,
				    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_SYMLINK,
				    st.st_mode & 07777, u->link, NULL, 0, true);
				u->files++;
			}
		} else if (S_ISREG(st.st_mode))
			rc = transfer_upload_file(u, cpath, crel);
		free(cpath);
		free(crel);
	}
	transfer_names_free(names, n);
	return rc;
}

/*
 * Give up an upload from this side: tell the daemon to discard it and
 * forget its UploadBegin, whose reply (if any) is then dropped.
 */
static void
transfer_upload_abort(struct transfer_upload *u)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__UploadEnd end = SWEREX__V1__UPLOAD_END__INIT;
	struct swerex_client *c = u->c;

	client_forget(c, u->id);
	if (c->dead)
		return;
	end.upload_id = u->id;
	end.abort = 1;
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
	req.upload_end = &end;
	if (client_queue(c, &req, NULL) != 0)
		client_kick(c);
}

/*
 * Wait for the final reply of the UploadBegin, or an error answering the
 * UploadEnd (whose reply the contract does not promise). 0, or -1.
 */
static int
transfer_upload_wait(struct transfer_upload *u, struct client_wait *w_end)
{
	struct swerex_client *c = u->c;

	client_kick(c);
	while (!u->w->done &&
	    !(w_end->done && w_end->type == SWEREX_REPLY_ERROR)) {
		if (event_base_loop(c->base, EVLOOP_ONCE) != 0) {
			error_set(&u->error, SWEREX_ERR_INTERNAL, "cannot run "
			    "the event base (blocking call from inside one "
			    "of its callbacks?)");
			return -1;
		}
	}
	return 0;
}

/* Copy a local file or directory tree to remote_dst, blocking. */
int
swerex_upload(struct swerex_client *c, const char *local_src,
    const char *remote_dst, swerex_progress_cb progress, void *progress_arg,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__UploadBegin begin = SWEREX__V1__UPLOAD_BEGIN__INIT;
	Swerex__V1__UploadEnd end = SWEREX__V1__UPLOAD_END__INIT;
	struct client_wait w, w_end;
	struct transfer_upload *u;
	struct stat st;
	uint64_t end_id = 0;
	int rc;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	if (local_src == NULL || remote_dst == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "no source or destination");
		return -1;
	}
	/* The source itself is followed if it is a symlink, as cp does. */
	if (stat(local_src, &st) != 0) {
		error_give(err, transfer_error_errno(errno, "cannot upload",
		    local_src));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "%s: not a regular file or a directory", local_src);
		return -1;
	}
	if ((u = calloc(1, sizeof *u)) == NULL) {
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	u->c = c;
	u->w = &w;
	u->piece = transfer_piece(c);
	u->progress = progress;
	u->progress_arg = progress_arg;
	if ((u->buf = malloc(u->piece)) == NULL) {
		free(u);
		error_set(err, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	memset(&w, 0, sizeof w);
	memset(&w_end, 0, sizeof w_end);

	begin.target_path = (char *)remote_dst;
	begin.is_directory = S_ISDIR(st.st_mode);
	req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_BEGIN;
	req.upload_begin = &begin;
	if ((u->id = client_submit(c, &req, NULL, NULL, &w, err)) == 0) {
		rc = -1;
		goto out;
	}

	/* A directory's own mode goes first, as "" (downloads do the same). */
	if (S_ISDIR(st.st_mode)) {
		rc = transfer_upload_add(u, "",
		    SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_DIRECTORY,
		    st.st_mode & 07777, NULL, NULL, 0, false);
		if (rc == 0)
			rc = transfer_upload_dir(u, local_src, "");
	} else
		rc = transfer_upload_file(u, local_src, "");
	if (rc == 0)
		rc = transfer_upload_flush(u);
	if (rc == 0) {
		end.upload_id = u->id;
		req.body_case = SWEREX__V1__REQUEST__BODY_UPLOAD_END;
		req.upload_end = &end;
		end_id = client_submit(c, &req, NULL, NULL, &w_end, &u->error);
		if (end_id != 0)
			transfer_upload_wait(u, &w_end);
	}

	if (w.done) {
		/* The transfer's final reply: success only after the end. */
		rc = wait_result(&w,
		    (enum swerex_reply_type)CLIENT_REPLY_UPLOAD, err);
		if (rc == 0 && end_id == 0) {
			error_set(err, SWEREX_ERR_PROTOCOL, "swerexd finished "
			    "the upload before it was sent");
			rc = -1;
		}
	} else if (w_end.done && w_end.type == SWEREX_REPLY_ERROR) {
		client_forget(c, u->id);
		rc = wait_result(&w_end, SWEREX_REPLY_ERROR, err);
	} else {
		transfer_upload_abort(u);
		error_give(err, u->error);
		u->error = NULL;
		rc = -1;
	}
	client_forget(c, end_id);
	wait_clear(&w_end);
out:
	swerex_error_free(u->error);
	transfer_upload_clear(u);
	free(u->buf);
	free(u);
	return rc;
}

/* A directory whose mode is set once the download is in place. */
struct transfer_download_dir {
	char *path;			/* the entry's path */
	mode_t mode;
};

/* A download being written into its staging directory. */
struct transfer_download {
	struct swerex_client *c;
	const char *dst;
	char *stage;			/* ".<name>.swx-dl-XXXXXX" beside dst */
	int stage_fd;
	bool root_made;			/* stage/root, the download, exists */
	bool root_is_dir;
	int fd;				/* the file being written, or -1 */
	char *file;			/* its entry path */
	mode_t file_mode;
	struct transfer_download_dir *dirs;
	size_t n_dirs;
	uint64_t bytes;
	uint64_t files;
	swerex_progress_cb progress;
	void *progress_arg;
	struct swerex_error *error;	/* why the download stopped here */
};

/*
 * Check an entry's path: "" (the root) or relative components that are not
 * empty, "." or "..". Whatever the daemon sends stays below the root.
 */
static bool
transfer_download_path_ok(const char *path)
{
	const char *p, *slash;
	size_t len;

	if (*path == '\0')
		return true;
	if (*path == '/' || strlen(path) >= PATH_MAX / 2)
		return false;
	for (p = path;; p = slash + 1) {
		slash = strchr(p, '/');
		len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (slash == NULL)
			return true;
	}
}

/* Record a failed local operation on an entry, naming its local path. */
static void
transfer_download_fail(struct transfer_download *d, int error, const char *what,
    const char *path)
{
	char *local;

	local = transfer_path_join(d->dst, path);
	d->error = transfer_error_errno(error, what,
	    local != NULL ? local : d->dst);
	free(local);
}

/* Make stage/root a directory, unless it is one already. */
static int
transfer_download_root_dir(struct transfer_download *d)
{
	if (d->root_made) {
		if (d->root_is_dir)
			return 0;
		d->error = error_new(SWEREX_ERR_PROTOCOL, "swerexd sent "
		    "entries below a download that is not a directory");
		return -1;
	}
	if (mkdirat(d->stage_fd, "root", 0777) != 0) {
		d->error = transfer_error_errno(errno, "cannot create",
		    d->stage);
		return -1;
	}
	d->root_made = d->root_is_dir = true;
	return 0;
}

/*
 * Open the directory an entry goes into, creating missing directories on
 * the way, and point *name at the entry's last component (in *copy, to be
 * freed). Every directory is opened with O_NOFOLLOW: no entry reaches
 * through a symlink, sent earlier or not, out of the staging directory.
 */
static int
transfer_download_parent(struct transfer_download *d, const char *path,
    int *dfdp, char **copyp, const char **namep)
{
	char *copy, *p, *slash;
	int dfd, nfd;

	*dfdp = -1;
	*copyp = NULL;
	if (*path == '\0') {
		if (d->root_made) {
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent the root of a download twice");
			return -1;
		}
		if ((*dfdp = fcntl(d->stage_fd, F_DUPFD_CLOEXEC, 0)) == -1) {
			transfer_download_fail(d, errno, "cannot open", "");
			return -1;
		}
		*namep = "root";
		return 0;
	}
	if (transfer_download_root_dir(d) != 0)
		return -1;
	if ((copy = strdup(path)) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	if ((dfd = openat(d->stage_fd, "root", TRANSFER_DIR_FLAGS)) == -1) {
		transfer_download_fail(d, errno, "cannot open", "");
		free(copy);
		return -1;
	}
	for (p = copy; (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		*slash = '\0';
		nfd = openat(dfd, p, TRANSFER_DIR_FLAGS);
		if (nfd == -1 && errno == ENOENT) {
			if (mkdirat(dfd, p, 0777) != 0 && errno != EEXIST) {
				transfer_download_fail(d, errno,
				    "cannot create", path);
				goto fail;
			}
			nfd = openat(dfd, p, TRANSFER_DIR_FLAGS);
		}
		if (nfd == -1) {
			if (errno == ELOOP || errno == ENOTDIR)
				d->error = error_new(SWEREX_ERR_PROTOCOL,
				    "refusing entry \"%s\" from swerexd: it is "
				    "below a symlink or a file", path);
			else
				transfer_download_fail(d, errno, "cannot open",
				    path);
			goto fail;
		}
		close(dfd);
		dfd = nfd;
	}
	*dfdp = dfd;
	*copyp = copy;
	*namep = p;
	return 0;

fail:
	close(dfd);
	free(copy);
	return -1;
}

/*
 * Create a directory entry (or find it made already as a parent). Its mode
 * is set now with the owner's rwx added so its contents can be written;
 * a mode without them is set again once the download is in place. Mode 0
 * is the default: 0777 less the umask.
 */
static int
transfer_download_mkdir(struct transfer_download *d, const char *path,
    mode_t mode)
{
	struct transfer_download_dir *dirs;
	struct stat st;
	const char *name;
	char *copy;
	int dfd, rc = -1;

	if (*path == '\0' && d->root_made && d->root_is_dir) {
		/* Made as the parent of entries that came first. */
		if ((dfd = fcntl(d->stage_fd, F_DUPFD_CLOEXEC, 0)) == -1) {
			transfer_download_fail(d, errno, "cannot open", "");
			return -1;
		}
		name = "root";
		copy = NULL;
	} else if (transfer_download_parent(d, path, &dfd, &copy, &name) != 0)
		return -1;
	else if (mkdirat(dfd, name, mode != 0 ? 0700 : 0777) != 0) {
		if (errno != EEXIST) {
			transfer_download_fail(d, errno, "cannot create", path);
			goto out;
		}
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISDIR(st.st_mode)) {
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent \"%s\" twice", path);
			goto out;
		}
	}
	if (*path == '\0')
		d->root_made = d->root_is_dir = true;
	mode &= 07777;
	if (mode == 0) {
		rc = 0;
		goto out;
	}
	if (fchmodat(dfd, name, mode | 0700, 0) != 0) {
		transfer_download_fail(d, errno, "cannot set the mode of",
		    path);
		goto out;
	}
	if ((mode & 0700) != 0700) {
		dirs = reallocarray(d->dirs, d->n_dirs + 1, sizeof *dirs);
		if (dirs == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			goto out;
		}
		d->dirs = dirs;
		if ((dirs[d->n_dirs].path = strdup(path)) == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			goto out;
		}
		dirs[d->n_dirs++].mode = mode;
	}
	rc = 0;
out:
	close(dfd);
	free(copy);
	return rc;
}

/* Create a symlink entry. */
static int
transfer_download_symlink(struct transfer_download *d, const char *path,
    const char *target)
{
	const char *name;
	char *copy;
	int dfd, rc = 0;

	if (transfer_download_parent(d, path, &dfd, &copy, &name) != 0)
		return -1;
	if (symlinkat(target != NULL ? target : "", dfd, name) != 0) {
		transfer_download_fail(d, errno, "cannot create symlink", path);
		rc = -1;
	} else {
		d->files++;
		if (*path == '\0') {
			d->root_made = true;
			d->root_is_dir = false;
		}
	}
	close(dfd);
	free(copy);
	return rc;
}

/* Create the file of an entry and keep it open for its pieces. */
static int
transfer_download_open(struct transfer_download *d, const char *path,
    mode_t mode)
{
	const char *name;
	char *copy;
	int dfd;

	if (transfer_download_parent(d, path, &dfd, &copy, &name) != 0)
		return -1;
	d->fd = openat(dfd, name, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC,
	    0600);
	if (d->fd == -1)
		transfer_download_fail(d, errno, "cannot create", path);
	close(dfd);
	free(copy);
	if (d->fd == -1)
		return -1;
	if ((d->file = strdup(path)) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	/* Mode 0 is the default, as the wire says. */
	d->file_mode = mode != 0 ? mode & 07777 : 0644;
	if (*path == '\0') {
		d->root_made = true;
		d->root_is_dir = false;
	}
	return 0;
}

/* Append a piece to the open file; close it with its mode after the last. */
static int
transfer_download_write(struct transfer_download *d, const uint8_t *data,
    size_t len, bool last)
{
	ssize_t n;
	size_t done = 0;
	int fd;

	while (done < len) {
		n = write(d->fd, data + done, len - done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			transfer_download_fail(d, errno, "cannot write",
			    d->file);
			return -1;
		}
		done += (size_t)n;
	}
	d->bytes += len;
	if (!last)
		return 0;
	fd = d->fd;
	d->fd = -1;
	if (fchmod(fd, d->file_mode) != 0) {
		transfer_download_fail(d, errno, "cannot set the mode of",
		    d->file);
		close(fd);
		return -1;
	}
	if (close(fd) != 0) {
		transfer_download_fail(d, errno, "cannot write", d->file);
		return -1;
	}
	free(d->file);
	d->file = NULL;
	d->files++;
	return 0;
}

/* Write one streamed entry of a download (a client_entry_cb). */
static int
transfer_download_entry(struct client_wait *w,
    const Swerex__V1__TransferEntry *e)
{
	struct transfer_download *d = w->entry_arg;
	const char *path = e->path != NULL ? e->path : "";
	int rc;

	if (!transfer_download_path_ok(path)) {
		d->error = error_new(SWEREX_ERR_PROTOCOL, "refusing entry "
		    "\"%s\" from swerexd: not a relative path below the "
		    "destination", path);
		goto fail;
	}
	if (d->fd != -1) {
		if (e->type != SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE ||
		    strcmp(path, d->file) != 0) {
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent \"%s\" before the end of \"%s\"",
			    path, d->file);
			goto fail;
		}
		rc = 0;
	} else {
		switch (e->type) {
		case SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_DIRECTORY:
			rc = transfer_download_mkdir(d, path, e->mode);
			break;
		case SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_SYMLINK:
			rc = transfer_download_symlink(d, path, e->link_target);
			break;
		case SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE:
			rc = transfer_download_open(d, path, e->mode);
			break;
		default:
			d->error = error_new(SWEREX_ERR_PROTOCOL,
			    "swerexd sent an entry of unknown type %d",
			    (int)e->type);
			rc = -1;
			break;
		}
	}
	if (rc != 0)
		goto fail;
	if (e->type == SWEREX__V1__ENTRY_TYPE__ENTRY_TYPE_FILE) {
		if (transfer_download_write(d, e->data.data, e->data.len,
		    e->last) != 0)
			goto fail;
		transfer_progress(d->c, d->progress, d->progress_arg, d->bytes,
		    d->files);
	}
	return 0;

fail:
	w->error = d->error;
	d->error = NULL;
	return -1;
}

/*
 * Move the entries of directory src into the existing directory dst,
 * merging directories found on both sides; a file replaces a file.
 */
static int
transfer_download_merge(struct transfer_download *d, const char *src,
    const char *dst)
{
	struct stat st;
	char **names, *s, *t;
	size_t n, i;
	int error, rc = 0;

	if ((error = transfer_names_read(src, false, &names, &n)) != 0) {
		d->error = transfer_error_errno(error, "cannot read directory",
		    src);
		return -1;
	}
	for (i = 0; i < n && rc == 0; i++) {
		s = transfer_path_join(src, names[i]);
		t = transfer_path_join(dst, names[i]);
		if (s == NULL || t == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			rc = -1;
		} else if (rename(s, t) != 0) {
			error = errno;
			if ((error == EEXIST || error == ENOTEMPTY) &&
			    lstat(t, &st) == 0 && S_ISDIR(st.st_mode))
				rc = transfer_download_merge(d, s, t);
			else {
				d->error = transfer_error_errno(error,
				    "cannot move into place", t);
				rc = -1;
			}
		}
		free(s);
		free(t);
	}
	transfer_names_free(names, n);
	return rc;
}

/*
 * Check that the download ended cleanly and move it into place: a
 * directory's contents land at dst (merged into dst if it is a directory),
 * a file or symlink replaces dst. Then set the modes left for last.
 */
static int
transfer_download_finish(struct transfer_download *d,
    const struct client_wait *w)
{
	struct stat st;
	char *root, *path;
	size_t i;
	int fd, rc;

	if (d->fd != -1) {
		d->error = error_new(SWEREX_ERR_PROTOCOL, "the download ended "
		    "in the middle of \"%s\"", d->file);
		return -1;
	}
	if (!d->root_made) {
		/* Nothing was sent: an empty directory or an empty file. */
		if (w->is_directory)
			rc = mkdirat(d->stage_fd, "root", 0777);
		else if ((fd = openat(d->stage_fd, "root", O_WRONLY|O_CREAT|
		    O_EXCL|O_CLOEXEC, 0666)) == -1)
			rc = -1;
		else
			rc = close(fd);
		if (rc != 0) {
			d->error = transfer_error_errno(errno, "cannot create",
			    d->stage);
			return -1;
		}
		d->root_made = true;
		d->root_is_dir = w->is_directory;
	} else if (d->root_is_dir != w->is_directory) {
		d->error = error_new(SWEREX_ERR_PROTOCOL, "swerexd sent a %s "
		    "but called it a %s", d->root_is_dir ? "directory" : "file",
		    w->is_directory ? "directory" : "file");
		return -1;
	}

	if ((root = transfer_path_join(d->stage, "root")) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	if (d->root_is_dir && stat(d->dst, &st) == 0 && S_ISDIR(st.st_mode))
		rc = transfer_download_merge(d, root, d->dst);
	else if ((rc = rename(root, d->dst)) != 0)
		d->error = transfer_error_errno(errno, "cannot move into place",
		    d->dst);
	free(root);
	if (rc != 0)
		return -1;

	/* Children were created after their parents: set theirs first. */
	for (i = d->n_dirs; i-- > 0;) {
		if ((path = transfer_path_join(d->dst,
		    d->dirs[i].path)) == NULL) {
			error_set(&d->error, SWEREX_ERR_NO_MEMORY,
			    "out of memory");
			return -1;
		}
		rc = chmod(path, d->dirs[i].mode);
		if (rc != 0)
			d->error = transfer_error_errno(errno,
			    "cannot set the mode of", path);
		free(path);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* Create the missing directories of path, as mkdir -p does. */
static int
transfer_download_mkparents(struct transfer_download *d, char *path)
{
	struct stat st;
	char *p, c;
	int error;

	for (p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		error = mkdir(path, 0777) != 0 ? errno : 0;
		if (error != 0 && error != EEXIST &&
		    (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) {
			d->error = transfer_error_errno(error, "cannot create",
			    path);
			*p = c;
			return -1;
		}
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/* Create the staging directory beside dst, and its missing parents. */
static int
transfer_download_stage(struct transfer_download *d)
{
	char *copy, *slash, *name;
	const char *dir;
	size_t len;
	int rc = -1;

	if ((copy = strdup(d->dst)) == NULL) {
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		return -1;
	}
	len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	if ((slash = strrchr(copy, '/')) == NULL) {
		dir = ".";
		name = copy;
	} else if (slash == copy) {
		dir = "/";
		name = slash + 1;
	} else {
		*slash = '\0';
		dir = copy;
		name = slash + 1;
	}
	if (*name == '\0' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0) {
		error_set(&d->error, SWEREX_ERR_BAD_ARGUMENT,
		    "bad destination: %s", d->dst);
		goto out;
	}
	if (dir == copy && transfer_download_mkparents(d, copy) != 0)
		goto out;
	if (asprintf(&d->stage, "%s/.%.200s.swx-dl-XXXXXX", dir, name) == -1) {
		d->stage = NULL;
		error_set(&d->error, SWEREX_ERR_NO_MEMORY, "out of memory");
		goto out;
	}
	if (mkdtemp(d->stage) == NULL) {
		d->error = transfer_error_errno(errno, "cannot create",
		    d->stage);
		free(d->stage);
		d->stage = NULL;
		goto out;
	}
	if ((d->stage_fd = open(d->stage, TRANSFER_DIR_FLAGS)) == -1) {
		d->error = transfer_error_errno(errno, "cannot open", d->stage);
		goto out;
	}
	rc = 0;
out:
	free(copy);
	return rc;
}

/* Remove what is left of a download's staging and free its state. */
static void
transfer_download_free(struct transfer_download *d)
{
	size_t i;

	if (d->fd != -1)
		close(d->fd);
	if (d->stage_fd != -1)
		close(d->stage_fd);
	if (d->stage != NULL)
		transfer_rmtree(d->stage);
	free(d->stage);
	free(d->file);
	for (i = 0; i < d->n_dirs; i++)
		free(d->dirs[i].path);
	free(d->dirs);
	swerex_error_free(d->error);
}

/* Copy a remote file or directory tree to local_dst, blocking. */
int
swerex_download(struct swerex_client *c, const char *remote_src,
    const char *local_dst, swerex_progress_cb progress, void *progress_arg,
    struct swerex_error **err)
{
	Swerex__V1__Request req = SWEREX__V1__REQUEST__INIT;
	Swerex__V1__DownloadRequest body = SWEREX__V1__DOWNLOAD_REQUEST__INIT;
	struct client_wait w;
	struct transfer_download d;
	uint64_t id;
	int rc = -1;

	if (err != NULL)
		*err = NULL;
	if (client_can_block(c, err) != 0)
		return -1;
	if (remote_src == NULL || local_dst == NULL) {
		error_set(err, SWEREX_ERR_BAD_ARGUMENT,
		    "no source or destination");
		return -1;
	}
	memset(&d, 0, sizeof d);
	d.c = c;
	d.dst = local_dst;
	d.fd = -1;
	d.stage_fd = -1;
	d.progress = progress;
	d.progress_arg = progress_arg;
	if (transfer_download_stage(&d) != 0)
		goto fail;

	memset(&w, 0, sizeof w);
	w.on_entry = transfer_download_entry;
	w.entry_arg = &d;
	body.path = (char *)remote_src;
	req.body_case = SWEREX__V1__REQUEST__BODY_DOWNLOAD;
	req.download = &body;
	id = client_submit(c, &req, NULL, NULL, &w, err);
	if (id == 0 || client_wait(c, id, &w, err) != 0)
		goto out;
	if (wait_result(&w, (enum swerex_reply_type)CLIENT_REPLY_DOWNLOAD,
	    err) != 0)
		goto out;
	if (transfer_download_finish(&d, &w) != 0)
		goto fail;
	rc = 0;
	goto out;

fail:
	error_give(err, d.error);
	d.error = NULL;
out:
	transfer_download_free(&d);
	return rc;
}
