/* SPDX-License-Identifier: MIT */
/*
 * A chunk's digest, hashed as its bytes stream: "PFC1" over the bytes,
 * or, for a transfer that asked for pieces, "PFC2" over the digests of
 * its pieces (the chunk cut where a file starts or ends and where one of
 * its own chunks does, the file cut alone). Each of a file's own chunks
 * that lies whole in a chunk then has, from that one pass, the digest
 * its receipt needs: each byte is hashed once per side
 * (docs/protocol.md).
 */
#ifndef PF_CHUNKHASH_H
#define PF_CHUNKHASH_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "proto.h"

/* A file with bytes in a transfer's payload; a layout sorts them. */
struct proto_span {
	uint64_t	offset, size;
	uint32_t	file;		/* the caller's index */
};

/* An own chunk of a file whole in the chunk just hashed: its digest. */
struct chunkhash_whole {
	uint32_t	file;
	uint32_t	index;		/* of the file's own chunks */
	uint8_t		digest[PF_SHA256_LEN];
};

struct chunkhash;

/* NULL on ENOMEM. */
struct chunkhash *chunkhash_new(void);

void chunkhash_free(struct chunkhash *h);

/*
 * Starts the digest of chunk c of a payload cut in chunk_size chunks:
 * PFC1 if spans is NULL, else PFC2 with the pieces that spans (n of
 * them, sorted by offset, not overlapping; borrowed until
 * chunkhash_final) cut, their files' own chunks being chunk_size too.
 */
enum pf_status chunkhash_begin(struct chunkhash *h,
    const struct proto_chunk_head *c, uint32_t chunk_size,
    const struct proto_span *spans, size_t n);

/* Hashes the chunk's next n bytes; never past its length. */
enum pf_status chunkhash_update(struct chunkhash *h, const void *p, size_t n);

/*
 * The chunk's digest, once all its bytes are in (PF_EBADFRAME if not).
 * Then, for PFC2, chunkhash_wholes lists the own chunks whole in it.
 */
enum pf_status chunkhash_final(struct chunkhash *h,
    uint8_t out[PF_SHA256_LEN]);

/* The own chunks whole in the chunk last finished: *n of them, h's. */
const struct chunkhash_whole *chunkhash_wholes(const struct chunkhash *h,
    size_t *n);

/*
 * Whether chunks hashed in pieces bring every own chunk of a file of
 * size bytes (more than none) at offset whole, and so its receipt: it
 * starts at a chunk's start, or lies within one chunk.
 */
bool proto_own_chunks_whole(uint64_t offset, uint64_t size,
    uint32_t chunk_size);

/*
 * The first of spans (n, sorted by offset) whose bytes end after off;
 * n if none.
 */
size_t proto_span_after(const struct proto_span *spans, size_t n,
    uint64_t off);

/* Sorts spans by offset. */
void proto_spans_sort(struct proto_span *spans, size_t n);

#endif
