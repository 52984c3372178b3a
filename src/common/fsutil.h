/* SPDX-License-Identifier: MIT */
/* Opening files beneath a directory handle, so a path cannot leave it. */
#ifndef PF_FSUTIL_H
#define PF_FSUTIL_H

#include <sys/types.h>

/*
 * Opens path (relative) beneath dirfd, refusing symlinks in any component
 * and ".." out of it: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) where
 * the kernel has it (Linux 5.6+); elsewhere openat with O_NOFOLLOW, which
 * guards the last component only. O_NOFOLLOW and O_CLOEXEC are added.
 * Returns the fd, or -1 with errno set.
 */
int pf_open_beneath(int dirfd, const char *path, int flags, mode_t mode);

#endif
