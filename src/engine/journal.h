/* SPDX-License-Identifier: MIT */
/*
 * The journal of a staging area: one checked 48-byte record per
 * acknowledged chunk, appended with group commit, read back at recovery.
 */
#ifndef PF_JOURNAL_H
#define PF_JOURNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "status.h"

#define JOURNAL_REC	48	/* u32 index, u32 0, digest, 8-byte check */

struct staging;

/*
 * Makes chunk index (already written) durable: syncs the data, then
 * appends its record to the journal and syncs that. Returns once the
 * record is durable. Concurrent callers share syncs: while one thread
 * syncs, the others queue their records and the next sync takes them all
 * (group commit). A failed sync marks st broken (storage_staging_broken).
 * Thread-safe.
 */
enum pf_status journal_commit_chunk(struct staging *st, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN]);

/*
 * Reads the journal of st (size bytes long on disk) from its start:
 * *indices and *digests (new arrays; the caller frees them, also on
 * failure) get the n whole, valid records, and a torn or damaged tail is
 * cut off. PF_EIO if the journal cannot be read or cut. At recovery only.
 */
enum pf_status journal_load(struct staging *st, off_t size,
    uint32_t **indices, uint8_t **digests, uint32_t *n);

/*
 * Replaces the journal of st with the n records given (borrowed),
 * atomically and durably (a new file renamed over it). At recovery only.
 */
enum pf_status journal_rewrite(struct staging *st, const uint32_t *indices,
    const uint8_t *digests, uint32_t n);

#endif
