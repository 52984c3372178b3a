/* SPDX-License-Identifier: MIT */
/*
 * Staging areas: positional writes, the journal of acknowledged chunks
 * with group commit, recovery, and atomic finalization.
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

#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "storage.h"

#define STAGING_DIR	".staging"
#define DATA_NAME	"data"
#define SESSION_NAME	"session.json"
#define JOURNAL_NAME	"journal"
#define JOURNAL_REC	48	/* u32 index, u32 0, digest, 8-byte check */
#define MAX_META	(64 * 1024)
#define BOOT_NAME	".boot"
#define BOOT_ID_PATH	"/proc/sys/kernel/random/boot_id"
#define VERIFY_BUF	(1024 * 1024)

struct storage {
	char			*path;
	int			 rootfd;
	int			 stagingfd;
	enum storage_sync	 sync;
	bool			 verify;	/* rebooted: check journals */
	char			 boot_id[64];
	_Atomic unsigned long	 probes;	/* names of storage_writable */
};

/* A record waiting for the next journal sync, and who waits for it. */
struct pending {
	uint8_t		 rec[JOURNAL_REC];
	bool		*done;
	enum pf_status	*rc;
};

struct staging {
	char			 id[64];
	int			 dirfd;
	int			 fd;
	int			 jfd;
	enum storage_sync	 sync;

	/* Group commit: see storage_commit_chunk. */
	pthread_mutex_t		 lock;
	pthread_cond_t		 synced;
	struct pending		*queue;
	size_t			 queued, cap;
	bool			 syncing;
	off_t			 jlen;	/* bytes of whole records */
	_Atomic int		 broken;	/* a sync failed: pf_status */
};

static int
open_dir(int dirfd, const char *name)
{
	return pf_open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
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
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

/* Reads a short text file beneath dirfd into buf, without its newline. */
static bool
read_line(int dirfd, const char *name, char *buf, size_t cap)
{
	ssize_t n;
	int fd;

	if ((fd = pf_open_beneath(dirfd, name, O_RDONLY, 0)) == -1)
		return false;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

/*
 * Compares the kernel's boot id with the one saved at the last start: if
 * they differ (or either is unknown), the machine may have lost unsynced
 * data since, and recovery must check the journaled chunks.
 */
static void
check_boot(struct storage *s)
{
	char last[sizeof(s->boot_id)];
	int fd;

	fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
	if (fd != -1) {
		ssize_t n = read(fd, s->boot_id, sizeof(s->boot_id) - 1);

		close(fd);
		s->boot_id[n > 0 ? n : 0] = '\0';
		s->boot_id[strcspn(s->boot_id, "\n")] = '\0';
	}
	s->verify = s->boot_id[0] == '\0' ||
	    !read_line(s->stagingfd, BOOT_NAME, last, sizeof(last)) ||
	    strcmp(last, s->boot_id) != 0;
}

/* Saves the boot id once recovery has checked what needed checking. */
static void
save_boot(struct storage *s)
{
	int fd;

	if (s->boot_id[0] == '\0')
		return;
	fd = pf_open_beneath(s->stagingfd, BOOT_NAME ".tmp",
	    O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		return;
	if (write(fd, s->boot_id, strlen(s->boot_id)) ==
	    (ssize_t)strlen(s->boot_id) && fsync(fd) == 0)
		renameat(s->stagingfd, BOOT_NAME ".tmp", s->stagingfd,
		    BOOT_NAME);
	close(fd);
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
	if (mkdirat(s->rootfd, STAGING_DIR, 0700) == -1 && errno != EEXIST) {
		log_error("%s: mkdir %s/%s: %s", __func__, dir, STAGING_DIR,
		    strerror(errno));
		goto out;
	}
	if ((s->stagingfd = open_dir(s->rootfd, STAGING_DIR)) == -1) {
		log_error("%s: open %s/%s: %s", __func__, dir, STAGING_DIR,
		    strerror(errno));
		goto out;
	}
	check_boot(s);
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

	if (fstatvfs(s->rootfd, &sv) == -1)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

static struct staging *
staging_new(const char *id, enum storage_sync sync)
{
	struct staging *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->dirfd = st->fd = st->jfd = -1;
	st->sync = sync;
	snprintf(st->id, sizeof(st->id), "%s", id);
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->synced, NULL);
	return st;
}

static void
staging_free(struct staging *st)
{
	if (st == NULL)
		return;
	if (st->jfd != -1)
		close(st->jfd);
	if (st->fd != -1)
		close(st->fd);
	if (st->dirfd != -1)
		close(st->dirfd);
	pthread_cond_destroy(&st->synced);
	pthread_mutex_destroy(&st->lock);
	free(st->queue);
	free(st);
}

/* Writes json to name beneath dirfd through a synced temporary file. */
static enum pf_status
write_json(int dirfd, const char *name, const json_t *json)
{
	char tmp[64];
	enum pf_status rc = PF_EIO;
	char *text = NULL;
	size_t len;
	int fd = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	if ((text = json_dumps(json, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		return PF_ENOMEM;
	/* What read_meta could not read back must not be written. */
	if ((len = strlen(text)) >= MAX_META) {
		free(text);
		return PF_ETOOLARGE;
	}
	fd = pf_open_beneath(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		goto fail;
	errno = ENOSPC;	/* what a short write means */
	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) == -1)
		goto fail;
	if (renameat(dirfd, tmp, dirfd, name) == -1)
		goto fail;
	rc = PF_OK;
	goto out;
fail:
	rc = pf_status_from_errno(errno);
	log_warn("%s: %s: %s", __func__, name, strerror(errno));
	unlinkat(dirfd, tmp, 0);
out:
	if (fd != -1)
		close(fd);
	free(text);
	return rc;
}

enum pf_status
storage_staging_create(struct storage *s, const char *id, uint64_t size,
    const json_t *meta, struct staging **out)
{
	struct staging *st;
	enum pf_status rc = PF_EIO;
	int err;

	if ((st = staging_new(id, s->sync)) == NULL)
		return PF_ENOMEM;
	if (mkdirat(s->stagingfd, id, 0700) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: mkdir staging %s: %s", __func__, id,
		    strerror(errno));
		staging_free(st);
		return rc;
	}
	if ((st->dirfd = open_dir(s->stagingfd, id)) == -1) {
		log_error("%s: open staging %s: %s", __func__, id,
		    strerror(errno));
		goto out;
	}
	st->fd = pf_open_beneath(st->dirfd, DATA_NAME, O_RDWR | O_CREAT | O_EXCL,
	    0600);
	st->jfd = pf_open_beneath(st->dirfd, JOURNAL_NAME,
	    O_RDWR | O_CREAT | O_EXCL, 0600);
	if (st->fd == -1 || st->jfd == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: create %s files: %s", __func__, id,
		    strerror(errno));
		goto out;
	}
	/*
	 * Reserve the space now so a full disk is reported before any chunk
	 * is accepted. Filesystems without fallocate just skip this.
	 */
	if (size > 0 && (size > (uint64_t)INT64_MAX ||
	    (err = posix_fallocate(st->fd, 0, (off_t)size)) != 0)) {
		if (size > (uint64_t)INT64_MAX)
			err = EFBIG;
		if (err != EOPNOTSUPP && err != EINVAL) {
			rc = pf_status_from_errno(err);
			log_warn("%s: reserve %llu bytes for %s: %s", __func__,
			    (unsigned long long)size, id, strerror(err));
			goto out;
		}
	}
	/* The metadata goes last: its presence marks a complete OPEN. */
	if ((rc = write_json(st->dirfd, SESSION_NAME, meta)) != PF_OK)
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
storage_staging_write(struct staging *st, uint64_t off, const void *p,
    size_t n)
{
	const char *b = p;

	while (n > 0) {
		ssize_t w = pwrite(st->fd, b, n, (off_t)off);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w == 0 ? ENOSPC : errno;

			log_warn("%s: %s at %llu: %s", __func__, st->id,
			    (unsigned long long)off, strerror(err));
			return pf_status_from_errno(err);
		}
		b += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return PF_OK;
}

enum pf_status
storage_finalize(struct storage *s, struct staging *st, const char *name,
    const json_t *meta)
{
	enum pf_status rc = PF_EIO;
	bool renamed = false;
	int finalfd = -1;

	if (atomic_load(&st->broken) != PF_OK)
		return (enum pf_status)atomic_load(&st->broken);
	if (fdatasync(st->fd) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: fdatasync %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	/* The directory may be left from an attempt cut short: reuse it. */
	if ((mkdirat(s->rootfd, st->id, 0700) == -1 && errno != EEXIST) ||
	    (finalfd = open_dir(s->rootfd, st->id)) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: mkdir %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	if ((rc = write_json(finalfd, STORAGE_META_NAME, meta)) != PF_OK)
		goto out;
	/* The one step that makes the file visible under its name. */
	if (renameat(st->dirfd, DATA_NAME, finalfd, name) == -1 &&
	    !(errno == ENOENT && faccessat(finalfd, name, F_OK,
	    AT_SYMLINK_NOFOLLOW) == 0)) {
		rc = pf_status_from_errno(errno);
		log_error("%s: rename %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	renamed = true;
	if (fsync(finalfd) == -1 || fsync(s->rootfd) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: fsync dir %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	rc = PF_OK;
out:
	if (finalfd != -1) {
		/* Never leave metadata that points at no file. */
		if (!renamed) {
			unlinkat(finalfd, STORAGE_META_NAME, 0);
			unlinkat(s->rootfd, st->id, AT_REMOVEDIR);
		}
		close(finalfd);
	}
	if (rc == PF_OK)
		storage_staging_discard(s, st);
	return rc;
}

/* Unlinks every file in a staging directory (there are no subdirectories). */
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
		    unlinkat(dirfd, de->d_name, 0) == -1 && errno != ENOENT)
			log_warn("%s: unlink %s/%s: %s", __func__, id,
			    de->d_name, strerror(errno));
	closedir(dir);
}

void
storage_staging_discard(struct storage *s, struct staging *st)
{
	if (st == NULL)
		return;
	if (st->dirfd == -1)
		st->dirfd = open_dir(s->stagingfd, st->id);
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

static void
journal_record(uint32_t index, const uint8_t digest[PF_SHA256_LEN],
    uint8_t rec[JOURNAL_REC])
{
	uint8_t check[PF_SHA256_LEN];

	proto_put_u32(rec, index);
	proto_put_u32(rec + 4, 0);
	memcpy(rec + 8, digest, PF_SHA256_LEN);
	if (pf_sha256(rec, 40, check) != PF_OK)
		memset(check, 0, sizeof(check));
	memcpy(rec + 40, check, 8);
}

static bool
journal_record_valid(const uint8_t rec[JOURNAL_REC])
{
	uint8_t check[PF_SHA256_LEN];

	return proto_get_u32(rec + 4) == 0 && pf_sha256(rec, 40, check) ==
	    PF_OK && memcmp(check, rec + 40, 8) == 0;
}

/*
 * Syncs the data and appends the records of batch to the journal. A
 * short or failed append is cut back to the last whole record, so the
 * journal never holds a torn record followed by good ones.
 */
static enum pf_status
sync_batch(struct staging *st, const struct pending *batch, size_t n)
{
	size_t len = n * JOURNAL_REC, done = 0;
	uint8_t *buf;
	enum pf_status rc = PF_EIO;

	if (st->sync == STORAGE_SYNC_FULL && fdatasync(st->fd) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: fdatasync %s data: %s", __func__, st->id,
		    strerror(errno));
		atomic_store(&st->broken, (int)rc);
		return rc;
	}
	if ((buf = malloc(len)) == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * JOURNAL_REC, batch[i].rec, JOURNAL_REC);
	while (done < len) {
		ssize_t w = pwrite(st->jfd, buf + done, len - done,
		    st->jlen + (off_t)done);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = pf_status_from_errno(w == 0 ? ENOSPC : errno);
			log_error("%s: journal of %s: %s", __func__, st->id,
			    strerror(w == 0 ? ENOSPC : errno));
			if (ftruncate(st->jfd, st->jlen) == -1)
				log_error("%s: cannot cut the journal of %s "
				    "back: %s", __func__, st->id,
				    strerror(errno));
			goto out;
		}
		done += (size_t)w;
	}
	if (st->sync == STORAGE_SYNC_FULL && fdatasync(st->jfd) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: fdatasync %s journal: %s", __func__, st->id,
		    strerror(errno));
		/* What was written may or may not be durable: count it lost. */
		if (ftruncate(st->jfd, st->jlen) == -1)
			log_error("%s: cannot cut the journal of %s back",
			    __func__, st->id);
		atomic_store(&st->broken, (int)rc);
		goto out;
	}
	st->jlen += (off_t)len;
	rc = PF_OK;
out:
	free(buf);
	return rc;
}

enum pf_status
storage_commit_chunk(struct staging *st, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN])
{
	enum pf_status rc = PF_EINTERNAL;
	struct pending *batch;
	bool done = false;
	size_t n;

	if (atomic_load(&st->broken) != PF_OK)
		return (enum pf_status)atomic_load(&st->broken);
	pthread_mutex_lock(&st->lock);
	if (st->queued == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		struct pending *q = realloc(st->queue, cap * sizeof(*q));

		if (q == NULL) {
			pthread_mutex_unlock(&st->lock);
			return PF_ENOMEM;
		}
		st->queue = q;
		st->cap = cap;
	}
	journal_record(index, digest, st->queue[st->queued].rec);
	st->queue[st->queued].done = &done;
	st->queue[st->queued].rc = &rc;
	st->queued++;
	while (!done) {
		if (st->syncing) {
			pthread_cond_wait(&st->synced, &st->lock);
			continue;
		}
		/* Lead one sync for everything queued so far, ours included. */
		st->syncing = true;
		batch = st->queue;
		n = st->queued;
		st->queue = NULL;
		st->queued = st->cap = 0;
		pthread_mutex_unlock(&st->lock);
		enum pf_status brc = sync_batch(st, batch, n);
		pthread_mutex_lock(&st->lock);
		for (size_t i = 0; i < n; i++) {
			*batch[i].rc = brc;
			*batch[i].done = true;
		}
		free(batch);
		st->syncing = false;
		pthread_cond_broadcast(&st->synced);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/*
 * Reads a metadata file beneath dirfd; NULL if missing (*rc PF_EBADFRAME),
 * unreadable (PF_EIO) or malformed (PF_EBADFRAME).
 */
static json_t *
read_json(int dirfd, const char *name, enum pf_status *rc)
{
	json_error_t err;
	char *buf;
	ssize_t n;
	json_t *j = NULL;
	int fd;

	if ((fd = pf_open_beneath(dirfd, name, O_RDONLY, 0)) == -1) {
		*rc = errno == ENOENT ? PF_EBADFRAME : PF_EIO;
		return NULL;
	}
	if ((buf = malloc(MAX_META)) == NULL) {
		close(fd);
		*rc = PF_ENOMEM;
		return NULL;
	}
	n = read(fd, buf, MAX_META);
	close(fd);
	*rc = n == -1 ? PF_EIO : PF_EBADFRAME;
	if (n > 0 && n < MAX_META)
		j = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES |
		    JSON_ALLOW_NUL, &err);
	free(buf);
	return j;
}

/* Reads chunk index back from the data file and checks its digest. */
static bool
chunk_intact(struct staging *st, uint64_t size, uint32_t chunk_size,
    uint32_t index, const uint8_t digest[PF_SHA256_LEN], uint8_t *buf,
    struct pf_sha256 *h)
{
	struct proto_chunk_head ch = { index, (uint64_t)index * chunk_size,
	    proto_chunk_length(size, chunk_size, index) };
	uint8_t got[PF_SHA256_LEN];
	uint64_t pos = 0;

	if (proto_chunk_digest_begin(h, &ch) != PF_OK)
		return false;
	while (pos < ch.length) {
		size_t want = ch.length - pos < VERIFY_BUF ?
		    (size_t)(ch.length - pos) : VERIFY_BUF;
		ssize_t n = pread(st->fd, buf, want, (off_t)(ch.offset + pos));

		if (n <= 0 || pf_sha256_update(h, buf, (size_t)n) != PF_OK)
			return false;
		pos += (uint64_t)n;
	}
	return pf_sha256_final(h, got) == PF_OK &&
	    memcmp(got, digest, sizeof(got)) == 0;
}

/*
 * After a reboot: keeps only the journal records whose chunk reads back
 * intact, and rewrites the journal if any was dropped, so a later start
 * does not trust them again.
 */
static enum pf_status
verify_records(struct staging *st, const json_t *meta, uint32_t *indices,
    uint8_t *digests, uint32_t *count)
{
	json_int_t size = json_integer_value(json_object_get(meta, "size"));
	json_int_t cs = json_integer_value(json_object_get(meta,
	    "chunk_size"));
	struct pf_sha256 *h = pf_sha256_new();
	uint8_t *buf = malloc(VERIFY_BUF), rec[JOURNAL_REC];
	uint32_t n = *count, kept = 0, chunks;
	enum pf_status rc = PF_ENOMEM;

	if (h == NULL || buf == NULL)
		goto out;
	rc = PF_EBADFRAME;
	if (size < 0 || !proto_chunk_size_valid((uint64_t)cs) ||
	    proto_chunk_count((uint64_t)size, (uint32_t)cs, &chunks) != PF_OK)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *d = digests + (size_t)i * PF_SHA256_LEN;

		if (indices[i] >= chunks || !chunk_intact(st, (uint64_t)size,
		    (uint32_t)cs, indices[i], d, buf, h))
			continue;
		indices[kept] = indices[i];
		memmove(digests + (size_t)kept * PF_SHA256_LEN, d,
		    PF_SHA256_LEN);
		kept++;
	}
	rc = PF_OK;
	if (kept == n)
		goto out;
	log_warn("%s: session %s: %u of %u journaled chunks did not survive "
	    "and will be sent again", __func__, st->id, n - kept, n);
	rc = PF_EIO;
	if (ftruncate(st->jfd, 0) == -1)
		goto out;
	st->jlen = 0;
	for (uint32_t i = 0; i < kept; i++) {
		journal_record(indices[i], digests + (size_t)i * PF_SHA256_LEN,
		    rec);
		if (pwrite(st->jfd, rec, sizeof(rec), st->jlen) !=
		    (ssize_t)sizeof(rec))
			goto out;
		st->jlen += JOURNAL_REC;
	}
	if (fdatasync(st->jfd) == -1)
		goto out;
	*count = kept;
	rc = PF_OK;
out:
	pf_sha256_free(h);
	free(buf);
	return rc;
}

/*
 * Opens one staging area and reads its journal into r. PF_EBADFRAME if
 * the area is provably unusable (to be removed); another error if it could
 * not be read now (to be left alone).
 */
static enum pf_status
recover_one(struct storage *s, const char *id, struct storage_recovered *r,
    uint32_t **indices, uint8_t **digests)
{
	struct staging *st;
	uint8_t rec[JOURNAL_REC];
	struct stat sb;
	uint32_t n = 0, cap = 0;
	enum pf_status rc;
	ssize_t got;

	if ((st = staging_new(id, s->sync)) == NULL)
		return PF_ENOMEM;
	r->staging = st;
	if ((st->dirfd = open_dir(s->stagingfd, id)) == -1)
		return errno == ENOENT || errno == ENOTDIR ? PF_EBADFRAME :
		    PF_EIO;
	if ((r->meta = read_json(st->dirfd, SESSION_NAME, &rc)) == NULL)
		return rc;
	st->fd = pf_open_beneath(st->dirfd, DATA_NAME, O_RDWR, 0);
	if (st->fd != -1)
		st->jfd = pf_open_beneath(st->dirfd, JOURNAL_NAME, O_RDWR, 0);
	if (st->fd == -1 || st->jfd == -1 || fstat(st->jfd, &sb) == -1)
		return errno == ENOENT ? PF_EBADFRAME : PF_EIO;
	r->last_active = sb.st_mtime;
	while ((got = pread(st->jfd, rec, sizeof(rec), st->jlen)) ==
	    (ssize_t)sizeof(rec) && journal_record_valid(rec)) {
		if (n == cap) {
			uint32_t *ni;
			uint8_t *nd;

			cap = cap ? 2 * cap : 64;
			ni = realloc(*indices, cap * sizeof(**indices));
			if (ni != NULL)
				*indices = ni;
			nd = realloc(*digests, (size_t)cap * PF_SHA256_LEN);
			if (nd != NULL)
				*digests = nd;
			if (ni == NULL || nd == NULL)
				return PF_ENOMEM;
		}
		(*indices)[n] = proto_get_u32(rec);
		memcpy(*digests + (size_t)n * PF_SHA256_LEN, rec + 8,
		    PF_SHA256_LEN);
		n++;
		st->jlen += JOURNAL_REC;
	}
	if (got == -1)
		return PF_EIO;	/* a read error is not the journal's end */
	/* A crash mid-append leaves a torn tail: cut it off. */
	if (sb.st_size != st->jlen) {
		log_warn("%s: session %s: journal cut back from %lld to %lld "
		    "bytes", __func__, id, (long long)sb.st_size,
		    (long long)st->jlen);
		if (ftruncate(st->jfd, st->jlen) == -1)
			return PF_EIO;
	}
	if (s->verify && n > 0 &&
	    (rc = verify_records(st, r->meta, *indices, *digests, &n)) != PF_OK)
		return rc;
	r->nrecords = n;
	r->indices = *indices;
	r->digests = *digests;
	return PF_OK;
}

enum pf_status
storage_recover(struct storage *s,
    enum pf_status (*cb)(void *arg, struct storage_recovered *r), void *arg)
{
	struct dirent *de;
	unsigned told = 0;
	DIR *dir;
	int fd;

	if ((fd = dup(s->stagingfd)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		log_error("%s: %s", __func__, strerror(errno));
		return PF_EIO;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL) {
		struct storage_recovered r = { .id = de->d_name };
		uint32_t *indices = NULL;
		uint8_t *digests = NULL;
		enum pf_status rc;

		if (de->d_name[0] == '.')
			continue;
		if (s->verify && !told++)
			log_info("first start since boot: checking journaled "
			    "chunks");
		rc = recover_one(s, de->d_name, &r, &indices, &digests);
		if (rc == PF_OK)
			rc = cb(arg, &r);
		if (rc == PF_EBADFRAME || rc == PF_ENOSESSION) {
			log_warn("%s: removing staging area %s: %s", __func__,
			    de->d_name, rc == PF_EBADFRAME ? "unusable" :
			    "expired");
			storage_staging_discard(s, r.staging);
		} else {
			if (rc != PF_OK)
				log_error("%s: cannot recover staging area "
				    "%s now (%s); leaving it for a later "
				    "start", __func__, de->d_name,
				    pf_status_message(rc));
			storage_staging_close(r.staging);
		}
		json_decref(r.meta);
		free(indices);
		free(digests);
	}
	closedir(dir);
	save_boot(s);
	return PF_OK;
}

bool
storage_staging_broken(struct staging *st)
{
	return atomic_load(&st->broken) != PF_OK;
}

void
storage_staging_forget(struct staging *st)
{
	if (st == NULL || st->dirfd == -1)
		return;
	if (unlinkat(st->dirfd, SESSION_NAME, 0) == 0)
		fsync(st->dirfd);
}

json_t *
storage_final_meta(struct storage *s, const char *id)
{
	enum pf_status rc;
	json_t *meta;
	int dirfd;

	if ((dirfd = open_dir(s->rootfd, id)) == -1)
		return NULL;
	meta = read_json(dirfd, STORAGE_META_NAME, &rc);
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
	int dirfd;

	*fd = -1;
	if ((dirfd = open_dir(s->rootfd, id)) == -1 ||
	    (*fd = pf_open_beneath(dirfd, name, O_RDONLY, 0)) == -1) {
		rc = errno == ENOENT ? PF_ENOSESSION :
		    pf_status_from_errno(errno);
		if (rc != PF_ENOSESSION)
			log_error("%s: %s/%s: %s", __func__, id, name,
			    strerror(errno));
	}
	if (dirfd != -1)
		close(dirfd);
	return rc;
}

enum pf_status
storage_final_remove(struct storage *s, const char *id, const char *name)
{
	enum pf_status rc = PF_OK;
	int dirfd;

	if ((dirfd = open_dir(s->rootfd, id)) == -1)
		return errno == ENOENT ? PF_OK : pf_status_from_errno(errno);
	/* Metadata first: a crash midway leaves a file no one lists. */
	if ((unlinkat(dirfd, STORAGE_META_NAME, 0) == -1 && errno != ENOENT) ||
	    (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT) ||
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
