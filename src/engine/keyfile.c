/* SPDX-License-Identifier: MIT */
/* The server's login key, kept across restarts in the storage directory. */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "keyfile.h"
#include "log.h"

/* Makes a new key at path (0600, written atomically and durably). */
static enum pf_status
make_key(const char *path, uint8_t key[PF_SHA256_LEN])
{
	enum pf_status rc;

	if ((rc = pf_random(key, PF_SHA256_LEN)) != PF_OK)
		return rc;
	if (pf_write_atomic(AT_FDCWD, path, key, PF_SHA256_LEN, 0600) == -1) {
		log_error("%s: %s: %s", __func__, path, strerror(errno));
		return PF_EIO;
	}
	log_info("made a new login key in %s", path);
	return PF_OK;
}

enum pf_status
keyfile_load(const char *storage, uint8_t key[PF_SHA256_LEN])
{
	char dir[4096], path[4096];
	enum pf_status rc = PF_EIO;
	struct stat sb;
	int fd = -1;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", storage,
	    KEYFILE_DIR) >= sizeof(dir) || (size_t)snprintf(path,
	    sizeof(path), "%s/%s", storage, KEYFILE_NAME) >= sizeof(path)) {
		log_error("%s: storage path too long", __func__);
		goto out;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_error("%s: %s: %s", __func__, dir, strerror(errno));
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			rc = make_key(path, key);
		else
			log_error("%s: %s: %s", __func__, path,
			    strerror(errno));
		goto out;
	}
	/* A damaged key is not replaced silently: say so, stop. */
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode) ||
	    sb.st_size != PF_SHA256_LEN ||
	    read(fd, key, PF_SHA256_LEN) != PF_SHA256_LEN) {
		log_error("%s: not a key of %d bytes; remove it and a new one "
		    "is made (unknown users then get new salts)", path,
		    PF_SHA256_LEN);
		goto out;
	}
	if (sb.st_mode & 077)
		log_warn("%s: readable by others than its owner: chmod 600 it",
		    path);
	rc = PF_OK;
out:
	if (fd != -1)
		close(fd);
	if (rc != PF_OK)
		pf_wipe(key, PF_SHA256_LEN);
	return rc;
}
