/* SPDX-License-Identifier: MIT */
/*
 * The storage directory: its root, the staging areas of live sessions
 * (created, written at chunk offsets, removed) and the finished files.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "journal.h"
#include "log.h"
#include "manifest.h"
#include "storage_int.h"

int
storage_open_dir(int dirfd, const char *name)
{
	return pf_open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
}

/*
 * mkdir(2), and if it made the directory, its parent synced: a name that
 * is not synced may be gone after a power loss, with all beneath it.
 */
static int
mkdir_durable(int dirfd, const char *path, mode_t mode)
{
	if (mkdirat(dirfd, path, mode) == -1)
		return errno == EEXIST ? 0 : -1;
	return pf_sync_dir(dirfd, path);
}

/* mkdir -p for the root path only; everything below uses handles. */
static int
mkdir_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir_durable(AT_FDCWD, buf, 0755) == -1)
			return -1;
		*p = '/';
	}
	return mkdir_durable(AT_FDCWD, buf, 0700);
}

enum pf_status
storage_open(const char *dir, enum storage_sync sync, struct storage **out)
{
	struct storage *s;
	enum pf_status rc = PF_EIO;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return PF_ENOMEM;
	s->rootfd = s->stagingfd = -1;
	s->sync = sync;
	if ((s->path = strdup(dir)) == NULL) {
		rc = PF_ENOMEM;
		goto out;
	}
	if (mkdir_parents(dir) == -1) {
		log_error("%s: mkdir %s: %s", __func__, dir, strerror(errno));
		goto out;
	}
	if ((s->rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_error("%s: open %s: %s", __func__, dir, strerror(errno));
		goto out;
	}
	if (mkdir_durable(s->rootfd, STAGING_DIR, 0700) == -1) {
		log_error("%s: mkdir %s/%s: %s", __func__, dir, STAGING_DIR,
		    strerror(errno));
		goto out;
	}
	if ((s->stagingfd = storage_open_dir(s->rootfd, STAGING_DIR)) == -1) {
		log_error("%s: open %s/%s: %s", __func__, dir, STAGING_DIR,
		    strerror(errno));
		goto out;
	}
	*out = s;
	s = NULL;
	rc = PF_OK;
out:
	storage_close(s);
	return rc;
}

void
storage_close(struct storage *s)
{
	if (s == NULL)
		return;
	if (s->stagingfd != -1)
		close(s->stagingfd);
	if (s->rootfd != -1)
		close(s->rootfd);
	free(s->path);
	free(s);
}

const char *
storage_path(const struct storage *s)
{
	return s->path;
}

uint64_t
storage_free_bytes(const struct storage *s)
{
	struct statvfs sv;
	uint64_t avail, promised = atomic_load(&s->promised);

	if (fstatvfs(s->rootfd, &sv) == -1)
		return UINT64_MAX;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return avail > promised ? avail - promised : 0;
}

struct staging *
storage_staging_new(const char *id, enum storage_sync sync)
{
	struct staging *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->dirfd = st->jfd = -1;
	st->sync = sync;
	snprintf(st->id, sizeof(st->id), "%s", id);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->synced, NULL);
	pthread_cond_init(&st->work, NULL);
	return st;
}

static void
staging_free(struct staging *st)
{
	if (st == NULL)
		return;
	journal_stop(st);
	if (st->jfd != -1)
		close(st->jfd);
	payload_close(st->pl);
	if (st->dirfd != -1)
		close(st->dirfd);
	pthread_cond_destroy(&st->synced);
	pthread_cond_destroy(&st->work);
	pthread_mutex_destroy(&st->lock);
	free(st->queue);
	free(st);
}

enum pf_status
storage_write_json(int dirfd, const char *name, const json_t *json)
{
	enum pf_status rc = PF_ENOMEM;
	struct pf_buf b;
	char *text;

	pf_buf_init(&b, MAX_META);
	if ((text = json_dumps(json, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		return PF_ENOMEM;
	/* What storage_read_json could not read back must not be written. */
	if (strlen(text) >= MAX_META) {
		rc = PF_ETOOLARGE;
		goto out;
	}
	if (!pf_buf_printf(&b, "%s\n", text))
		goto out;
	if (pf_write_atomic(dirfd, name, b.p, b.len, 0600) == -1) {
		rc = pf_status_from_errno(errno);
		log_warn("%s: %s: %s", __func__, name, strerror(errno));
		goto out;
	}
	rc = PF_OK;
out:
	pf_buf_free(&b);
	free(text);
	return rc;
}

enum pf_status
storage_staging_create(struct storage *s, const char *id, uint64_t size,
    const struct manifest *mf, const json_t *meta, struct staging **out)
{
	struct staging *st;
	enum pf_status rc = PF_EIO;

	if ((st = storage_staging_new(id, s->sync)) == NULL)
		return PF_ENOMEM;
	if (mkdirat(s->stagingfd, id, 0700) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: mkdir staging %s: %s", __func__, id,
		    strerror(errno));
		staging_free(st);
		return rc;
	}
	if ((st->dirfd = storage_open_dir(s->stagingfd, id)) == -1) {
		log_error("%s: open staging %s: %s", __func__, id,
		    strerror(errno));
		goto out;
	}
	st->jfd = pf_open_beneath(st->dirfd, JOURNAL_NAME,
	    O_RDWR | O_CREAT | O_EXCL, 0600);
	if (st->jfd == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: create %s files: %s", __func__, id,
		    strerror(errno));
		goto out;
	}
	/*
	 * The payload reserves (or promises) its space now, so a full disk
	 * is reported before any chunk is accepted.
	 */
	if ((rc = payload_create(st->dirfd, size, mf, &s->promised,
	    &st->pl)) != PF_OK) {
		log_warn("%s: payload of %s (%llu bytes): %s", __func__, id,
		    (unsigned long long)size, pf_status_message(rc));
		goto out;
	}
	/* The metadata goes last: its presence marks a complete OPEN. */
	if ((rc = storage_write_json(st->dirfd, SESSION_NAME, meta)) != PF_OK)
		goto out;
	if (fsync(st->dirfd) == -1 || fsync(s->stagingfd) == -1) {
		rc = pf_status_from_errno(errno);
		goto out;
	}
	*out = st;
	st = NULL;
	rc = PF_OK;
out:
	if (st != NULL)
		storage_staging_discard(s, st);
	return rc;
}

enum pf_status
storage_staging_put_meta(struct staging *st, const json_t *meta)
{
	enum pf_status rc;

	if ((rc = storage_write_json(st->dirfd, SESSION_NAME, meta)) != PF_OK)
		return rc;
	if (fsync(st->dirfd) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: session %s: %s", __func__, st->id,
		    strerror(errno));
	}
	return rc;
}

enum pf_status
storage_staging_write(struct staging *st, uint64_t off, const void *p,
    size_t n)
{
	enum pf_status rc = payload_write(st->pl, off, p, n);

	if (rc != PF_OK)
		log_warn("%s: %s at %llu: %s", __func__, st->id,
		    (unsigned long long)off, pf_status_message(rc));
	return rc;
}

void
storage_staging_settled(struct staging *st, uint64_t off, uint64_t n)
{
	if (st != NULL)
		payload_settled(st->pl, off, n);
}

/*
 * Unlinks every file in a staging directory, and a transfer's directory
 * of backing files.
 */
static void
empty_dir(int dirfd, const char *id)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	if ((fd = dup(dirfd)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	rewinddir(dir);
	/* The metadata goes first: without it the area is never resumed. */
	unlinkat(dirfd, SESSION_NAME, 0);
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.' &&
		    unlinkat(dirfd, de->d_name, 0) == -1 && errno != ENOENT &&
		    errno != EISDIR)
			log_warn("%s: unlink %s/%s: %s", __func__, id,
			    de->d_name, strerror(errno));
	closedir(dir);
	payload_remove(dirfd);
}

static void drop_unlisted(struct storage *s, const char *id);

void
storage_staging_discard(struct storage *s, struct staging *st)
{
	if (st == NULL)
		return;
	drop_unlisted(s, st->id);
	if (st->dirfd == -1)
		st->dirfd = storage_open_dir(s->stagingfd, st->id);
	if (st->dirfd != -1)
		empty_dir(st->dirfd, st->id);
	if (unlinkat(s->stagingfd, st->id, AT_REMOVEDIR) == -1 &&
	    errno != ENOENT)
		log_warn("%s: rmdir %s: %s", __func__, st->id,
		    strerror(errno));
	staging_free(st);
}

void
storage_staging_close(struct staging *st)
{
	staging_free(st);
}

/*
 * The JSON document in regular file fd, under max bytes: read whole, then
 * parsed (json_loadfd reads a byte per read(2): 150 ms for a transfer's
 * list of 2,000 files). PF_EBADFRAME if it is too large or not JSON.
 */
static json_t *
read_json(int fd, size_t max, enum pf_status *rc)
{
	json_error_t err;
	struct stat sb;
	json_t *j = NULL;
	size_t len, got = 0;
	char *buf;

	*rc = PF_EBADFRAME;
	if (fstat(fd, &sb) == -1) {
		*rc = PF_EIO;
		return NULL;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size >= max)
		return NULL;
	len = (size_t)sb.st_size;
	if ((buf = malloc(len)) == NULL) {
		*rc = PF_ENOMEM;
		return NULL;
	}
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == len && (j = json_loadb(buf, len, JSON_REJECT_DUPLICATES |
	    JSON_ALLOW_NUL, &err)) != NULL)
		*rc = PF_OK;
	else if (got < len)
		*rc = PF_EIO;
	free(buf);
	return j;
}

json_t *
storage_read_json(int dirfd, const char *name, enum pf_status *rc)
{
	json_t *j;
	int fd;

	if ((fd = pf_open_beneath(dirfd, name, O_RDONLY, 0)) == -1) {
		*rc = errno == ENOENT ? PF_EBADFRAME : PF_EIO;
		return NULL;
	}
	j = read_json(fd, MAX_META, rc);
	close(fd);
	return j;
}

bool
storage_staging_broken(struct staging *st)
{
	return atomic_load(&st->broken) != PF_OK;
}

enum pf_status
storage_staging_forget(struct staging *st)
{
	enum pf_status rc;

	if (st == NULL || st->dirfd == -1)
		return PF_OK;
	if (unlinkat(st->dirfd, SESSION_NAME, 0) == 0 ? fsync(st->dirfd) == 0 :
	    errno == ENOENT)
		return PF_OK;
	rc = pf_status_from_errno(errno);
	log_error("%s: session %s: %s; a power loss now may bring it back",
	    __func__, st->id, strerror(errno));
	return rc;
}

enum pf_status
storage_put_list(int dirfd, const char *name, const struct manifest *m,
    bool final)
{
	enum pf_status rc = PF_OK;
	struct pf_buf b;

	pf_buf_init(&b, STORAGE_MAX_LIST - 1);
	if (!manifest_dump(m, final ? MANIFEST_FINAL : MANIFEST_STAGED, &b))
		rc = b.over ? PF_ETOOLARGE : PF_ENOMEM;
	else if (pf_write_atomic(dirfd, name, b.p, b.len, 0600) == -1) {
		rc = pf_status_from_errno(errno);
		log_warn("%s: %s: %s", __func__, name, strerror(errno));
	}
	pf_buf_free(&b);
	return rc;
}

json_t *
storage_get_list(int dirfd, const char *name)
{
	enum pf_status rc;
	json_t *j;
	int fd;

	if ((fd = pf_open_beneath(dirfd, name, O_RDONLY, 0)) == -1)
		return NULL;
	j = read_json(fd, STORAGE_MAX_LIST, &rc);
	close(fd);
	return j;
}

enum pf_status
storage_staging_put_list(struct staging *st, const char *name,
    const struct manifest *m, bool final)
{
	return storage_put_list(st->dirfd, name, m, final);
}

json_t *
storage_staging_get_list(struct staging *st, const char *name)
{
	return storage_get_list(st->dirfd, name);
}

json_t *
storage_final_list(struct storage *s, const char *id, const char *name)
{
	json_t *j;
	int dirfd;

	if ((dirfd = storage_open_dir(s->rootfd, id)) == -1)
		return NULL;
	j = storage_get_list(dirfd, name);
	close(dirfd);
	return j;
}

json_t *
storage_final_meta(struct storage *s, const char *id)
{
	enum pf_status rc;
	json_t *meta;
	int dirfd;

	if ((dirfd = storage_open_dir(s->rootfd, id)) == -1)
		return NULL;
	meta = storage_read_json(dirfd, STORAGE_META_NAME, &rc);
	close(dirfd);
	return meta;
}

enum pf_status
storage_final_foreach(struct storage *s,
    enum pf_status (*cb)(void *arg, const char *id, const json_t *meta),
    void *arg)
{
	struct dirent *de;
	enum pf_status rc = PF_OK;
	DIR *dir;
	int fd;

	if ((fd = dup(s->rootfd)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		log_error("%s: %s", __func__, strerror(errno));
		return pf_status_from_errno(errno);
	}
	rewinddir(dir);
	while (rc == PF_OK && (de = readdir(dir)) != NULL) {
		json_t *meta;

		if (de->d_name[0] == '.' ||
		    (meta = storage_final_meta(s, de->d_name)) == NULL)
			continue;
		rc = cb(arg, de->d_name, meta);
		json_decref(meta);
	}
	closedir(dir);
	return rc;
}

enum pf_status
storage_final_open(struct storage *s, const char *id, const char *name,
    int *fd)
{
	enum pf_status rc = PF_OK;
	struct stat sb;
	int dirfd;

	*fd = -1;
	if ((dirfd = storage_open_dir(s->rootfd, id)) == -1 ||
	    (*fd = pf_open_beneath(dirfd, name, O_RDONLY, 0)) == -1) {
		rc = errno == ENOENT ? PF_ENOSESSION :
		    pf_status_from_errno(errno);
		if (rc != PF_ENOSESSION)
			log_error("%s: %s/%s: %s", __func__, id, name,
			    strerror(errno));
	} else if (fstat(*fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		/* A transfer's top directory is not a file to serve. */
		close(*fd);
		*fd = -1;
		rc = PF_EPROTO;
	}
	if (dirfd != -1)
		close(dirfd);
	return rc;
}

/*
 * Removes everything in directory dirfd: a file, or a transfer's tree
 * (which the server made: directories and files, never a symlink).
 */
static int
remove_all(int dirfd)
{
	struct dirent *de;
	DIR *dir;
	int fd, rc = 0;

	if ((fd = dup(dirfd)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	rewinddir(dir);
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		if (errno != EISDIR && errno != EPERM)
			rc = -1;
		else if ((sub = storage_open_dir(dirfd, de->d_name)) == -1)
			rc = -1;
		else {
			rc = remove_all(sub);
			close(sub);
			if (rc == 0)
				rc = unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
		}
	}
	closedir(dir);
	return rc;
}

/*
 * Removes <root>/<id> if it has no metadata: what a COMMIT cut short (a
 * crash while it named a transfer's files) left of a session that then
 * ended. Nothing lists those files, and nothing else would free them.
 */
static void
drop_unlisted(struct storage *s, const char *id)
{
	int dirfd;

	if ((dirfd = storage_open_dir(s->rootfd, id)) == -1)
		return;
	if (faccessat(dirfd, STORAGE_META_NAME, F_OK,
	    AT_SYMLINK_NOFOLLOW) == -1 && errno == ENOENT) {
		if (remove_all(dirfd) == -1 ||
		    unlinkat(s->rootfd, id, AT_REMOVEDIR) == -1)
			log_warn("%s: %s: %s", __func__, id, strerror(errno));
		else
			log_info("session %s: removed the files its unfinished "
			    "COMMIT had named", id);
	}
	close(dirfd);
}

enum pf_status
storage_final_remove(struct storage *s, const char *id, const char *name)
{
	enum pf_status rc = PF_OK;
	int dirfd;

	if ((dirfd = storage_open_dir(s->rootfd, id)) == -1)
		return errno == ENOENT ? PF_OK : pf_status_from_errno(errno);
	/* Metadata first: a crash midway leaves a file no one lists. */
	if ((unlinkat(dirfd, STORAGE_META_NAME, 0) == -1 && errno != ENOENT) ||
	    (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT &&
	    errno != EISDIR) || remove_all(dirfd) == -1 ||
	    unlinkat(s->rootfd, id, AT_REMOVEDIR) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: %s: %s", __func__, id, strerror(errno));
	} else if (fsync(s->rootfd) == -1)
		rc = pf_status_from_errno(errno);
	close(dirfd);
	return rc;
}

bool
storage_writable(struct storage *s)
{
	/*
	 * A name of its own for each probe: readiness checks run on several
	 * gateway threads at once, and with one shared name one check would
	 * remove the file of another, which then finds it gone and reports
	 * storage unwritable.
	 */
	char probe[48];
	int fd;

	snprintf(probe, sizeof(probe), ".probe.%lu",
	    atomic_fetch_add(&s->probes, 1));
	if ((fd = pf_open_beneath(s->stagingfd, probe, O_WRONLY | O_CREAT |
	    O_TRUNC, 0600)) == -1)
		return false;
	close(fd);
	return unlinkat(s->stagingfd, probe, 0) == 0;
}

enum pf_status
storage_staging_read(struct staging *st, uint64_t off, void *p, size_t n)
{
	enum pf_status rc = payload_read(st->pl, off, p, n);

	if (rc != PF_OK)
		log_warn("%s: %s at %llu: %s", __func__, st->id,
		    (unsigned long long)off, pf_status_message(rc));
	return rc;
}
