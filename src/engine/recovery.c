/* SPDX-License-Identifier: MIT */
/* Recovery: staging areas read back at start-up, checked after a reboot. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "journal.h"
#include "log.h"
#include "manifest.h"
#include "payload.h"
#include "proto.h"
#include "recovery.h"
#include "storage_int.h"

#define BOOT_NAME	".boot"
#define BOOT_ID_PATH	"/proc/sys/kernel/random/boot_id"
#define BOOT_ID_MAX	64
#define VERIFY_BUF	(1024 * 1024)

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
 * Reads the kernel's boot id into boot_id ("" if unknown) and compares it
 * with the one saved at the last start: true if they differ (or either is
 * unknown), since the machine may have lost unsynced data since, and
 * recovery must check the journaled chunks.
 */
static bool
boot_changed(struct storage *s, char boot_id[BOOT_ID_MAX])
{
	char last[BOOT_ID_MAX];
	int fd;

	boot_id[0] = '\0';
	fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
	if (fd != -1) {
		ssize_t n = read(fd, boot_id, BOOT_ID_MAX - 1);

		close(fd);
		boot_id[n > 0 ? n : 0] = '\0';
		boot_id[strcspn(boot_id, "\n")] = '\0';
	}
	return boot_id[0] == '\0' ||
	    !read_line(s->stagingfd, BOOT_NAME, last, sizeof(last)) ||
	    strcmp(last, boot_id) != 0;
}

/* Saves the boot id once recovery has checked what needed checking. */
static void
save_boot(struct storage *s, const char *boot_id)
{
	if (boot_id[0] == '\0')
		return;
	if (pf_write_atomic(s->stagingfd, BOOT_NAME, boot_id, strlen(boot_id),
	    0600) == -1)
		log_warn("%s: %s: %s", __func__, BOOT_NAME, strerror(errno));
}

/*
 * Reads chunk index back from the payload and checks its digest, hashed
 * in pieces over spans (n) unless spans is NULL.
 */
static bool
chunk_intact(struct staging *st, uint64_t size, uint32_t chunk_size,
    uint32_t index, const uint8_t digest[PF_SHA256_LEN], uint8_t *buf,
    struct chunkhash *h, const struct proto_span *spans, size_t n)
{
	struct proto_chunk_head ch = { index, (uint64_t)index * chunk_size,
	    proto_chunk_length(size, chunk_size, index) };
	uint8_t got[PF_SHA256_LEN];
	uint64_t pos = 0;

	if (chunkhash_begin(h, &ch, chunk_size, spans, n) != PF_OK)
		return false;
	while (pos < ch.length) {
		size_t want = ch.length - pos < VERIFY_BUF ?
		    (size_t)(ch.length - pos) : VERIFY_BUF;
		if (payload_read(st->pl, ch.offset + pos, buf, want) !=
		    PF_OK || chunkhash_update(h, buf, want) != PF_OK)
			return false;
		pos += want;
	}
	return chunkhash_final(h, got) == PF_OK &&
	    memcmp(got, digest, sizeof(got)) == 0;
}

/*
 * After a reboot: keeps only the journal records whose chunk reads back
 * intact, and rewrites the journal if any was dropped, so a later start
 * does not trust them again. m is the transfer's manifest, or NULL.
 */
static enum pf_status
verify_records(struct staging *st, const json_t *meta,
    const struct manifest *m, uint32_t *indices, uint8_t *digests,
    uint32_t *count)
{
	json_int_t size = json_integer_value(json_object_get(meta, "size"));
	json_int_t cs = json_integer_value(json_object_get(meta,
	    "chunk_size"));
	bool pieces = m != NULL && json_is_true(json_object_get(meta,
	    "pieces"));
	struct chunkhash *h = chunkhash_new();
	uint8_t *buf = malloc(VERIFY_BUF);
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
		    (uint32_t)cs, indices[i], d, buf, h, pieces ? m->spans :
		    NULL, pieces ? m->nspans : 0))
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
	if ((rc = journal_rewrite(st, indices, digests, kept)) != PF_OK)
		goto out;
	*count = kept;
out:
	chunkhash_free(h);
	free(buf);
	return rc;
}

/*
 * A transfer's manifest as its metadata meta names it, or NULL (*rc
 * PF_EBADFRAME if it is missing or malformed) for a single file.
 */
static struct manifest *
load_manifest(int dirfd, const json_t *meta, enum pf_status *rc)
{
	const char *name = json_string_value(json_object_get(meta,
	    "manifest"));
	json_int_t size = json_integer_value(json_object_get(meta, "size"));
	struct manifest *m = NULL;
	json_t *j;

	*rc = PF_OK;
	if (json_object_get(meta, "transfer") == NULL)
		return NULL;
	*rc = PF_EBADFRAME;
	/* A name in the area, never a path (session.c checks it again). */
	if (name == NULL || name[0] == '.' || strchr(name, '/') != NULL ||
	    size < 0 || (j = storage_get_list(dirfd, name)) == NULL)
		return NULL;
	*rc = manifest_load(j, (uint64_t)size, &m);
	json_decref(j);
	return m;
}

/*
 * Opens st's payload as m (its manifest, or NULL) describes it; a
 * transfer's files a COMMIT cut short renamed into <root>/<id> are read
 * there.
 */
static enum pf_status
open_payload(struct storage *s, struct staging *st, const struct manifest *m)
{
	enum pf_status rc;
	int topfd;

	rc = payload_open(st->dirfd, m, &s->promised, &st->pl);
	if (rc == PF_OK && m != NULL &&
	    (topfd = storage_open_dir(s->rootfd, st->id)) != -1)
		rc = payload_placed_at(st->pl, topfd, m);
	return rc;
}

/*
 * A transfer staged before its files had backing files of their own
 * (one data file): keeps the session, but none of its chunks, which
 * are sent again into backing files.
 */
static enum pf_status
drop_old_layout(struct staging *st, const json_t *meta)
{
	enum pf_status rc;

	if (json_object_get(meta, "transfer") == NULL ||
	    faccessat(st->dirfd, DATA_NAME, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
		return PF_OK;
	log_warn("%s: session %s: staged by an older version; its chunks "
	    "will be sent again", __func__, st->id);
	if ((rc = journal_rewrite(st, NULL, NULL, 0)) != PF_OK)
		return rc;
	if (unlinkat(st->dirfd, DATA_NAME, 0) == -1)
		log_warn("%s: session %s: %s", __func__, st->id,
		    strerror(errno));
	return PF_OK;
}

/*
 * Opens one staging area and reads its journal into r. PF_EBADFRAME if
 * the area is provably unusable (to be removed); another error if it could
 * not be read now (to be left alone).
 */
static enum pf_status
recover_one(struct storage *s, bool verify, const char *id,
    struct recovery_area *r, uint32_t **indices, uint8_t **digests)
{
	struct manifest *m = NULL;
	struct staging *st;
	struct stat sb;
	uint32_t n = 0;
	enum pf_status rc;

	if ((st = storage_staging_new(id, s->sync)) == NULL)
		return PF_ENOMEM;
	r->staging = st;
	if ((st->dirfd = storage_open_dir(s->stagingfd, id)) == -1)
		return errno == ENOENT || errno == ENOTDIR ? PF_EBADFRAME :
		    PF_EIO;
	if ((r->meta = storage_read_json(st->dirfd, SESSION_NAME, &rc)) ==
	    NULL)
		return rc;
	m = load_manifest(st->dirfd, r->meta, &rc);
	if (rc != PF_OK || (rc = open_payload(s, st, m)) != PF_OK)
		goto out;
	if ((st->jfd = pf_open_beneath(st->dirfd, JOURNAL_NAME, O_RDWR,
	    0)) == -1) {
		rc = errno == ENOENT ? PF_EBADFRAME : PF_EIO;
		goto out;
	}
	if ((rc = drop_old_layout(st, r->meta)) != PF_OK)
		goto out;
	rc = PF_EIO;
	if (fstat(st->jfd, &sb) == -1)
		goto out;
	r->last_active = sb.st_mtime;
	if ((rc = journal_load(st, sb.st_size, indices, digests, &n)) !=
	    PF_OK || (verify && n > 0 && (rc = verify_records(st, r->meta, m,
	    *indices, *digests, &n)) != PF_OK))
		goto out;
	r->nrecords = n;
	r->indices = *indices;
	r->digests = *digests;
out:
	manifest_free(m);
	return rc;
}

enum pf_status
recovery_scan(struct storage *s,
    enum pf_status (*cb)(void *arg, struct recovery_area *r), void *arg)
{
	char boot_id[BOOT_ID_MAX];
	bool verify = boot_changed(s, boot_id);
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
		struct recovery_area r = { .id = de->d_name };
		uint32_t *indices = NULL;
		uint8_t *digests = NULL;
		enum pf_status rc;

		if (de->d_name[0] == '.')
			continue;
		if (verify && !told++)
			log_info("first start since boot: checking journaled "
			    "chunks");
		rc = recover_one(s, verify, de->d_name, &r, &indices,
		    &digests);
		if (rc == PF_OK)
			rc = cb(arg, &r);
		if (rc == PF_EBADFRAME || rc == PF_ENOSESSION ||
		    rc == PF_EFORBIDDEN) {
			log_warn("%s: removing staging area %s: %s", __func__,
			    de->d_name, rc == PF_EBADFRAME ? "unusable" :
			    rc == PF_EFORBIDDEN ? "refused" : "expired");
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
	save_boot(s, boot_id);
	return PF_OK;
}

enum pf_status
recovery_one(struct storage *s, const char *id,
    enum pf_status (*cb)(void *arg, struct recovery_area *r), void *arg)
{
	struct recovery_area r = { .id = id };
	uint32_t *indices = NULL;
	uint8_t *digests = NULL;
	enum pf_status rc;

	if ((rc = recover_one(s, false, id, &r, &indices, &digests)) == PF_OK)
		rc = cb(arg, &r);
	storage_staging_close(r.staging);
	json_decref(r.meta);
	free(indices);
	free(digests);
	return rc;
}

enum pf_status
recovery_amend(struct storage *s, const struct recovery_amend *a)
{
	struct staging *st;
	enum pf_status rc = PF_EIO;

	if ((st = storage_staging_new(a->id, s->sync)) == NULL)
		return PF_ENOMEM;
	if ((st->dirfd = storage_open_dir(s->stagingfd, a->id)) == -1 ||
	    (st->jfd = pf_open_beneath(st->dirfd, JOURNAL_NAME, O_RDWR,
	    0)) == -1) {
		log_error("%s: session %s: %s", __func__, a->id,
		    strerror(errno));
		goto out;
	}
	/*
	 * Each step leaves an area the old metadata still describes (fewer
	 * chunks journaled, a manifest file it does not name), until the
	 * metadata is replaced in one rename. The backing files of
	 * unchanged files stay where they are (named by their offsets).
	 */
	if ((rc = payload_open(st->dirfd, a->mf, &s->promised, &st->pl)) !=
	    PF_OK ||
	    (rc = journal_rewrite(st, a->indices, a->digests, a->n)) !=
	    PF_OK || (rc = storage_staging_put_list(st, a->mfname,
	    a->mf, false)) != PF_OK || (rc = storage_staging_put_meta(st,
	    a->meta)) != PF_OK)
		goto out;
	if (strcmp(a->old_mfname, a->mfname) != 0 && unlinkat(st->dirfd,
	    a->old_mfname, 0) == -1 && errno != ENOENT)
		log_warn("%s: session %s: remove %s: %s", __func__, a->id,
		    a->old_mfname, strerror(errno));
	/* Only now dead: the old metadata held chunks in them. */
	payload_prune(st->pl);
out:
	storage_staging_close(st);
	return rc;
}
