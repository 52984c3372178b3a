/* SPDX-License-Identifier: MIT */
/* Staging files, positional writes and atomic finalization. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif

#include "log.h"
#include "storage.h"

#define STAGING_DIR	".staging"
#define DATA_NAME	"data"

struct storage {
	char	*path;
	int	 rootfd;
	int	 stagingfd;
};

struct staging {
	char	 id[64];
	int	 dirfd;
	int	 fd;
};

/*
 * Opens name (one component) beneath dirfd, refusing symlinks anywhere;
 * openat2(RESOLVE_BENEATH) where the kernel has it, openat otherwise.
 */
static int
open_beneath(int dirfd, const char *name, int flags, mode_t mode)
{
	int fd;

#if defined(HAVE_LINUX_OPENAT2_H) && defined(SYS_openat2)
	struct open_how how = { .flags = (uint64_t)(flags | O_NOFOLLOW |
	    O_CLOEXEC), .mode = (flags & O_CREAT) ? mode : 0,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	    RESOLVE_NO_MAGICLINKS };

	fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	if (fd != -1 || (errno != ENOSYS && errno != EPERM))
		return fd;
#endif
	fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
	return fd;
}

static int
open_dir(int dirfd, const char *name)
{
	return open_beneath(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
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

enum pf_status
storage_open(const char *dir, struct storage **out)
{
	struct storage *s;
	enum pf_status rc = PF_EIO;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return PF_ENOMEM;
	s->rootfd = s->stagingfd = -1;
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

static void
staging_free(struct staging *st)
{
	if (st == NULL)
		return;
	if (st->fd != -1)
		close(st->fd);
	if (st->dirfd != -1)
		close(st->dirfd);
	free(st);
}

enum pf_status
storage_staging_create(struct storage *s, const char *id, uint64_t size,
    struct staging **out)
{
	struct staging *st;
	enum pf_status rc = PF_EIO;
	int err;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return PF_ENOMEM;
	st->dirfd = st->fd = -1;
	snprintf(st->id, sizeof(st->id), "%s", id);
	if (mkdirat(s->stagingfd, id, 0700) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: mkdir staging %s: %s", __func__, id,
		    strerror(errno));
		free(st);
		return rc;
	}
	if ((st->dirfd = open_dir(s->stagingfd, id)) == -1) {
		log_error("%s: open staging %s: %s", __func__, id,
		    strerror(errno));
		goto out;
	}
	st->fd = open_beneath(st->dirfd, DATA_NAME, O_RDWR | O_CREAT | O_EXCL,
	    0600);
	if (st->fd == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: create %s/data: %s", __func__, id,
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

/* Writes meta to name beneath dirfd through a temporary file. */
static enum pf_status
write_meta(int dirfd, const json_t *meta)
{
	static const char tmp[] = STORAGE_META_NAME ".tmp";
	enum pf_status rc = PF_EIO;
	char *s = NULL;
	int fd = -1;

	if ((s = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL)
		return PF_ENOMEM;
	fd = open_beneath(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		goto fail;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s) ||
	    write(fd, "\n", 1) != 1 || fsync(fd) == -1)
		goto fail;
	if (renameat(dirfd, tmp, dirfd, STORAGE_META_NAME) == -1)
		goto fail;
	rc = PF_OK;
	goto out;
fail:
	rc = pf_status_from_errno(errno);
	log_warn("%s: %s", __func__, strerror(errno));
	unlinkat(dirfd, tmp, 0);
out:
	if (fd != -1)
		close(fd);
	free(s);
	return rc;
}

enum pf_status
storage_finalize(struct storage *s, struct staging *st, const char *name,
    const json_t *meta)
{
	enum pf_status rc = PF_EIO;
	bool renamed = false;
	int finalfd = -1;

	if (fdatasync(st->fd) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: fdatasync %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	if (mkdirat(s->rootfd, st->id, 0700) == -1 ||
	    (finalfd = open_dir(s->rootfd, st->id)) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: mkdir %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	if ((rc = write_meta(finalfd, meta)) != PF_OK)
		goto out;
	/* The one step that makes the file visible under its name. */
	if (renameat(st->dirfd, DATA_NAME, finalfd, name) == -1) {
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

void
storage_staging_discard(struct storage *s, struct staging *st)
{
	if (st == NULL)
		return;
	if (st->dirfd != -1 && unlinkat(st->dirfd, DATA_NAME, 0) == -1 &&
	    errno != ENOENT)
		log_warn("%s: unlink %s/data: %s", __func__, st->id,
		    strerror(errno));
	if (unlinkat(s->stagingfd, st->id, AT_REMOVEDIR) == -1 &&
	    errno != ENOENT)
		log_warn("%s: rmdir %s: %s", __func__, st->id,
		    strerror(errno));
	staging_free(st);
}
