/* SPDX-License-Identifier: MIT */
/* Opening beneath a directory handle; atomic, durable replacement. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif

#include "digest.h"
#include "fsutil.h"

int
pf_open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
#if defined(HAVE_LINUX_OPENAT2_H) && defined(SYS_openat2)
	struct open_how how = { .flags = (uint64_t)(flags | O_NOFOLLOW |
	    O_CLOEXEC), .mode = (flags & O_CREAT) ? mode : 0,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
	    RESOLVE_NO_MAGICLINKS };
	int fd;

	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	/* Older kernels, or seccomp filters that do not know openat2. */
	if (fd != -1 || (errno != ENOSYS && errno != EPERM))
		return fd;
#endif
	return pf_open_walk(dirfd, path, flags, mode);
}

/* Closes fd unless it is dirfd, keeping errno; returns -1. */
static int
walk_fail(int fd, int dirfd, int err)
{
	if (fd != dirfd)
		close(fd);
	errno = err;
	return -1;
}

int
pf_open_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	char name[NAME_MAX + 1];
	const char *p = path, *slash;
	struct stat sb;
	int fd = dirfd, next, err;

	if (*p == '/')
		return walk_fail(fd, dirfd, EXDEV);
	for (;; p = slash + 1) {
		size_t n = (slash = strchr(p, '/')) != NULL ?
		    (size_t)(slash - p) : strlen(p);

		if (n > NAME_MAX)
			return walk_fail(fd, dirfd, ENAMETOOLONG);
		memcpy(name, p, n);
		name[n] = '\0';
		if (strcmp(name, "..") == 0)
			return walk_fail(fd, dirfd, EXDEV);
		if (slash == NULL)
			break;
		if (n == 0 || strcmp(name, ".") == 0)
			continue;
		next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (next == -1) {
			err = errno;
			/* A link opened with O_NOFOLLOW is no directory. */
			if (fstatat(fd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode))
				err = ELOOP;
			return walk_fail(fd, dirfd, err);
		}
		if (fd != dirfd)
			close(fd);
		fd = next;
	}
	next = openat(fd, name[0] != '\0' ? name : ".", flags | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	err = errno;
	if (fd != dirfd)
		close(fd);
	errno = err;
	return next;
}

/* Opens the directory holding path beneath dirfd, for fsync. */
static int
open_parent(int dirfd, const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (slash == NULL)
		return openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (slash == path)
		return open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if ((dir = strndup(path, (size_t)(slash - path))) == NULL)
		return -1;
	fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	return fd;
}

/* fsync of fd (-1: its open failed), then closes it; errno the sync's. */
static int
sync_close(int fd)
{
	int rc, saved;

	if (fd == -1)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
pf_sync_dir(int dirfd, const char *path)
{
	return sync_close(open_parent(dirfd, path));
}

bool
pf_syncfs_covers(int fd)
{
	static const unsigned long local[] = {
		0xEF53,		/* ext2, ext3, ext4 */
		0x58465342,	/* xfs */
		0x9123683E,	/* btrfs */
		0xF2F52010,	/* f2fs */
		0x01021994,	/* tmpfs */
	};
	struct statfs sf;

	if (fstatfs(fd, &sf) == -1)
		return false;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if ((unsigned long)sf.f_type == local[i])
			return true;
	return false;
}

bool
pf_space_on_write(int fd)
{
	struct statfs sf;

	return fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type ==
	    0x01021994;	/* tmpfs */
}

/* fsync of directory dir beneath topfd ("": topfd itself). */
static int
sync_beneath(int topfd, const char *dir)
{
	return dir[0] == '\0' ? fsync(topfd) : sync_close(pf_open_beneath(
	    topfd, dir, O_RDONLY | O_DIRECTORY, 0));
}

/* Cuts path ("a/b") to its directory ("a"; "" for none). */
static void
cut_to_dir(char *path)
{
	char *slash = strrchr(path, '/');

	*(slash != NULL ? slash : path) = '\0';
}

int
pf_sync_dirs(int topfd, const char *path, struct pf_dir_syncs *ds)
{
	char dir[PATH_MAX], d[PATH_MAX];
	size_t len;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	cut_to_dir(dir);
	memcpy(d, dir, sizeof(d));
	for (;; cut_to_dir(d)) {
		len = strlen(d);
		/* The last call's directory or one of its ancestors: synced. */
		if (ds->started && strncmp(ds->prev, d, len) == 0 &&
		    (len == 0 || ds->prev[len] == '\0' || ds->prev[len] == '/'))
			break;
		if (sync_beneath(topfd, d) == -1)
			return -1;
		if (len == 0)
			break;
	}
	ds->started = true;
	memcpy(ds->prev, dir, sizeof(ds->prev));
	return 0;
}

/* Writes all n bytes at p to fd; a short write is ENOSPC. */
static int
write_all(int fd, const void *p, size_t n)
{
	const char *q = p;

	while (n > 0) {
		ssize_t w = write(fd, q, n);

		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		if (w == 0) {
			errno = ENOSPC;
			return -1;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

int
pf_write_atomic(int dirfd, const char *path, const void *p, size_t n,
    mode_t mode)
{
	uint8_t r[6];
	char *tmp = NULL;
	int fd = -1, saved, rc = -1;

	/* Beside path, so that rename(2) is atomic; random, so two writers
	 * never share one. */
	if (pf_random(r, sizeof(r)) != PF_OK) {
		errno = EIO;
		goto out;
	}
	if (asprintf(&tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x", path, r[0], r[1],
	    r[2], r[3], r[4], r[5]) == -1) {
		tmp = NULL;
		errno = ENOMEM;
		goto out;
	}
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	if (fd == -1) {
		free(tmp);
		tmp = NULL;
		goto out;
	}
	/* mode without the umask, as the caller asked. */
	if (fchmod(fd, mode) == -1 || write_all(fd, p, n) == -1 ||
	    fsync(fd) == -1)
		goto out;
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, path) == -1)
		goto out;
	free(tmp);
	tmp = NULL;
	rc = pf_sync_dir(dirfd, path);
out:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (tmp != NULL) {
		unlinkat(dirfd, tmp, 0);
		free(tmp);
	}
	errno = saved;
	return rc;
}
