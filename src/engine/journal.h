/* SPDX-License-Identifier: MIT */
/*
 * The journal of a staging area: one checked 48-byte record per
 * acknowledged chunk, appended with group commit, read back at recovery.
 */
#ifndef PF_JOURNAL_H
#define PF_JOURNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "status.h"

#define JOURNAL_REC	48	/* u32 index, u32 0, digest, 8-byte check */

struct staging;

/*
 * A chunk on its way to the journal. Its owner MUST keep it in place
 * until done; rc is meaningful once done is true.
 */
struct journal_ticket {
	_Atomic bool	 done;
	enum pf_status	 rc;
	int		 wakefd;	/* eventfd written when done, or -1 */
};

/*
 * Queues chunk index (already written) to be made durable and returns at
 * once: st's committer thread syncs the data, appends the records queued
 * so far to the journal and syncs that (group commit: one sync for all
 * chunks that came while the last one ran), then sets t->rc, t->done and
 * writes 1 to t->wakefd. t->wakefd is set by the caller; the rest of t is
 * reset here. A failed sync marks st broken (storage_staging_broken).
 * Returns PF_OK once queued, or why nothing was queued. Thread-safe.
 */
enum pf_status journal_submit(struct staging *st, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN], struct journal_ticket *t);

/* Waits until t (queued on st) is done and returns its t->rc. */
enum pf_status journal_wait(struct staging *st, struct journal_ticket *t);

/*
 * Returns once st's committer has finished waking the owners of tickets
 * it has marked done: after it, a done ticket's wakefd may be closed.
 */
void journal_settle(struct staging *st);

/*
 * Makes chunk index (already written) durable: journal_submit, then
 * journal_wait. Returns once the record is durable. Thread-safe.
 */
enum pf_status journal_commit_chunk(struct staging *st, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN]);

/* Stops st's committer once the records queued are done. At close. */
void journal_stop(struct staging *st);

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
