/* SPDX-License-Identifier: MIT */
/* Opening files beneath a directory handle, so a path cannot leave it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef HAVE_LINUX_OPENAT2_H
#include <linux/openat2.h>
#endif

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
	return openat(dirfd, path, flags | O_NOFOLLOW | O_CLOEXEC, mode);
}
