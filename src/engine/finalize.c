/* SPDX-License-Identifier: MIT */
/* Finalization: receipt check, sync, metadata, atomic rename. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "finalize.h"
#include "log.h"
#include "proto.h"
#include "storage_int.h"

enum pf_status
finalize_check_receipt(uint64_t size, uint32_t chunk_size,
    const uint8_t *digests, uint32_t n, const uint8_t want[PF_SHA256_LEN])
{
	uint8_t got[PF_SHA256_LEN];

	if (proto_receipt(size, chunk_size, digests, n, got) != PF_OK ||
	    !pf_equal_ct(got, want, sizeof(got)))
		return PF_ECHECKSUM;
	return PF_OK;
}

enum pf_status
finalize_file(struct storage *s, struct staging *st, const char *name,
    const json_t *meta)
{
	enum pf_status rc = PF_EIO;
	bool renamed = false;
	int finalfd = -1;

	if (atomic_load(&st->broken) != PF_OK)
		return (enum pf_status)atomic_load(&st->broken);
	if ((rc = payload_sync(st->pl)) != PF_OK) {
		log_error("%s: sync %s: %s", __func__, st->id,
		    pf_status_message(rc));
		goto out;
	}
	/* The directory may be left from an attempt cut short: reuse it. */
	if ((mkdirat(s->rootfd, st->id, 0700) == -1 && errno != EEXIST) ||
	    (finalfd = storage_open_dir(s->rootfd, st->id)) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: mkdir %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	if ((rc = storage_write_json(finalfd, STORAGE_META_NAME, meta)) !=
	    PF_OK)
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
	/*
	 * The staging area stops being resumable for good: until its
	 * directory is synced, a power loss may bring back its metadata
	 * and the data under its old name, and the finished upload would
	 * be recovered as a live session too.
	 */
	storage_staging_forget(st);
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
