/* SPDX-License-Identifier: MIT */
/*
 * A transfer's files judged while the rest streams: each file, once
 * every chunk covering it is durable, gets its verdict (the content
 * policy on its first bytes) and its receipt on a small pool of
 * low-priority threads, so that COMMIT only judges what is left. Also
 * the judging of one file itself, which COMMIT (unpack.c) shares.
 */
#ifndef PF_JUDGE_H
#define PF_JUDGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "status.h"

struct manifest;
struct policy;
struct staging;
struct judge;
struct judge_pool;

/* What the policy says of a file's first bytes, and its receipt. */
struct judge_verdict {
	enum pf_status	 status;	/* PF_OK or PF_EFORBIDDEN */
	char		*reason;	/* if refused; owned */
	uint8_t		 receipt[PF_SHA256_LEN];	/* if PF_OK */
	uint64_t	 size;		/* its file's, seen early; else ~0 */
};

/* One judging thread's buffers. */
struct judge_work {
	uint8_t			*buf;
	size_t			 blen;	/* the file's head, in buf */
	uint8_t			*digests;
	struct pf_sha256	*h;
};

enum pf_status judge_work_init(struct judge_work *w);
void judge_work_free(struct judge_work *w);

/*
 * Judges the size bytes of fd as one file: p (NULL: no policy) on its
 * first bytes, then its receipt in chunks of chunk_size, into v (its
 * reason new, its size unknown); a file whose own chunks' digests own
 * the stream gave (or NULL) is not read past its head. A refusal is a
 * verdict (v->status), not an error; PF_EINTERNAL if libmagic failed,
 * PF_EIO, PF_ENOMEM, PF_ECANCELLED if *stop (may be NULL) became true
 * meanwhile.
 */
enum pf_status judge_file(struct judge_work *w, const struct policy *p,
    int fd, uint64_t size, uint32_t chunk_size, const uint8_t *own,
    struct judge_verdict *v, const _Atomic bool *stop);

/*
 * Starts the pool of judging threads (one per CPU, 1 to 4,
 * SCHED_IDLE: below the streams) that judge with p (borrowed). NULL
 * if no thread starts: then nothing is judged early.
 */
struct judge_pool *judge_pool_new(const struct policy *p);

/* Stops the threads. Every judge of the pool MUST be freed before. */
void judge_pool_free(struct judge_pool *jp);

/*
 * Judging of transfer m (borrowed, as st, chunk_size and nchunks: they
 * MUST outlive the judge, and m's entries MUST not change until
 * judge_stop) on pool jp. NULL on ENOMEM or without a pool: then
 * nothing is judged early.
 */
struct judge *judge_new(struct judge_pool *jp, const struct manifest *m,
    struct staging *st, uint32_t chunk_size, uint32_t nchunks);

/*
 * Chunk index is durable (its ACK may go out): the files it completes
 * are queued for judging. Never waits on the judging; thread-safe.
 */
void judge_note_chunk(struct judge *j, uint32_t index);

/*
 * Stops judging j: returns once no thread reads its files any more. The
 * verdicts made so far stay. Idempotent; any thread but a judging one.
 */
void judge_stop(struct judge *j);

/*
 * Entry i's verdict, or NULL if it has none. Only after judge_stop. The
 * verdict stays j's; its reason may be taken (set to NULL).
 */
struct judge_verdict *judge_verdict(struct judge *j, size_t i);

/* How many entries have a verdict. Only after judge_stop. */
size_t judge_count(const struct judge *j);

/* Stops j (judge_stop) and frees it. NULL is a no-op. */
void judge_free(struct judge *j);

#endif
