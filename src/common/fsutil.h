/* SPDX-License-Identifier: MIT */
/*
 * Files on disk: opening beneath a directory handle, so a path cannot leave
 * it, and writing so that a crash or a power loss leaves the old content or
 * the new, never a mix.
 */
#ifndef PF_FSUTIL_H
#define PF_FSUTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Opens path (relative) beneath dirfd, refusing symlinks in any component
 * (ELOOP) and ".." or "/" out of it (EXDEV): openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) where the kernel has it (Linux 5.6+), else
 * pf_open_walk. O_NOFOLLOW and O_CLOEXEC are added. Returns the fd, or -1
 * with errno set.
 */
int pf_open_beneath(int dirfd, const char *path, int flags, mode_t mode);

/*
 * pf_open_beneath without openat2: path walked one name at a time, each
 * directory on the way opened with O_NOFOLLOW. The same refusals, and
 * any ".." (EXDEV), even one that stays beneath dirfd.
 */
int pf_open_walk(int dirfd, const char *path, int flags, mode_t mode);

/*
 * fsync(2) of the directory that holds path (relative to dirfd, which may
 * be AT_FDCWD): what makes a create, rename or unlink in it durable.
 * Returns 0, or -1 with errno set.
 */
int pf_sync_dir(int dirfd, const char *path);

/*
 * True if syncfs(2) on fd's filesystem makes all of its data and names
 * durable: the local ones the kernel writes itself (ext2/3/4, xfs,
 * btrfs, f2fs, tmpfs). FUSE (sshfs, a FUSE daemon of one's own), NFS
 * and SMB need an fsync of each file and directory, which they pass on;
 * a FUSE daemon never hears of a syncfs.
 */
bool pf_syncfs_covers(int fd);

/*
 * Whether fd's filesystem finds a file's space as it is written, and
 * fails that write if there is none (tmpfs), so that reserving it ahead
 * only allocates every page sooner (0.2 s a GiB, under the file's lock).
 */
bool pf_space_on_write(int fd);

/* What pf_sync_dirs() synced last: zeroed before the first call. */
struct pf_dir_syncs {
	char	prev[PATH_MAX];
	bool	started;
};

/*
 * fsync of the directory that holds path (relative to topfd and beneath
 * it; a name without "/" is in topfd) and of each of its ancestors up to
 * topfd: what makes the names made in them durable where syncfs is not
 * enough. Skips those the call before synced (its directory and their
 * ancestors), so a sorted list of paths costs about one fsync a
 * directory. Returns 0, or -1 with errno set.
 */
int pf_sync_dirs(int topfd, const char *path, struct pf_dir_syncs *ds);

/*
 * Replaces path (relative to dirfd, which may be AT_FDCWD) with the n
 * bytes at p, atomically and durably: a temporary file beside it is
 * written, fsynced and renamed over path, then the directory is synced.
 * A reader, and a restart after a power loss, sees the old content or the
 * new one. The new file gets mode. A symlink at path is replaced, never
 * followed. Returns 0, or -1 with errno set (a short write is ENOSPC);
 * the temporary file is gone either way.
 */
int pf_write_atomic(int dirfd, const char *path, const void *p, size_t n,
    mode_t mode);

#endif
