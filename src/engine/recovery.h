/* SPDX-License-Identifier: MIT */
/*
 * Reading staging areas back at start-up: their metadata and journals,
 * checked against the data after a reboot.
 */
#ifndef PF_RECOVERY_H
#define PF_RECOVERY_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "status.h"

struct manifest;
struct storage;
struct staging;

/* Handed to the callback of recovery_scan for each staging area found. */
struct recovery_area {
	const char	*id;
	json_t		*meta;		/* borrowed: session.json */
	uint32_t	 nrecords;
	const uint32_t	*indices;	/* borrowed: journaled chunks */
	const uint8_t	*digests;	/* borrowed: 32 bytes each */
	time_t		 last_active;	/* mtime of the journal */
	struct staging	*staging;	/* the callback may take it (and NULL
					 * this); else it is closed after */
};

/*
 * Reads back every staging area of s: session.json and the journal, whose
 * torn or damaged tail is cut off. After a reboot (the kernel's boot id
 * changed since the last start) every journaled chunk is read back and
 * checked against its digest, since data that was not synced may be lost.
 * Calls cb for each area. An area is removed only on proof that it is
 * unusable: metadata or files missing or malformed (an OPEN cut short),
 * or cb returning PF_EBADFRAME, PF_ENOSESSION or PF_EFORBIDDEN (the
 * file-type policy refuses it now); other errors leave it
 * alone for a later start. At start-up, from one thread.
 */
enum pf_status recovery_scan(struct storage *s,
    enum pf_status (*cb)(void *arg, struct recovery_area *r), void *arg);

/*
 * recovery_scan of the one staging area id (not checked against its
 * digests; the area is never removed here): cb's result, or why the
 * area could not be read. Any thread, with no session on the area.
 */
enum pf_status recovery_one(struct storage *s, const char *id,
    enum pf_status (*cb)(void *arg, struct recovery_area *r), void *arg);

/* An amended transfer, to be written into its staging area (borrowed). */
struct recovery_amend {
	const char	*id;
	uint64_t	 size;		/* of the amended payload */
	const json_t	*meta;		/* its session.json */
	const struct manifest *mf;	/* its manifest, kept as mfname */
	const char	*mfname;
	const char	*old_mfname;	/* removed once the meta is in */
	const uint32_t	*indices;	/* the chunks still held: n */
	const uint8_t	*digests;
	uint32_t	 n;
};

/*
 * Rewrites the staging area of a->id (no session may have it open) as
 * the amended transfer a: the journal cut to the chunks still held, the
 * new manifest, then the metadata in one atomic rename, the point at
 * which a crash brings back the amended transfer instead of the old one
 * (a crash before it brings back the old one with fewer chunks); then
 * the backing files of files a no longer has are removed. PF_EIO,
 * PF_ENOMEM.
 */
enum pf_status recovery_amend(struct storage *s,
    const struct recovery_amend *a);

#endif
