/* SPDX-License-Identifier: MIT */
/*
 * A tree laid out over the payload of an interrupted transfer whose
 * files changed since (an amended resume, docs/protocol.md): unchanged
 * files keep their place, so the chunks the server holds of them stay
 * good; changed and new files go past the old payload's end.
 */
#ifndef PF_RELAYOUT_H
#define PF_RELAYOUT_H

#include <stdint.h>

#include <jansson.h>

#include "status.h"
#include "tree.h"

/*
 * Lays t out over old, the "files" an OPEN sent for a payload of
 * old_size bytes (borrowed; with offsets or back to back): a file that
 * old lists with the same path, size and mtime, and whose change stamp
 * is that of old_stamps (tree_stamps of that run, borrowed; NULL or a
 * missing one: not compared), keeps its offset, the others follow one
 * another from old_size on; t->total is where the last ends (at least
 * old_size), t->placed is set. PF_EBADFRAME (t unchanged) if old is not
 * such a list, PF_ENOMEM. Main thread, no worker reading.
 */
enum pf_status relayout_amend(struct tree *t, const json_t *old,
    const json_t *old_stamps, uint64_t old_size);

/*
 * Lays t out so that each file of chunk_size bytes or more starts where
 * a chunk does: hashed in pieces, every own chunk of it is then a whole
 * chunk, and its receipt comes from the chunks' pass. The files keep
 * manifest order, but that a smaller file fills the room left before
 * an earlier large one if it fits. Only if the files back to back would
 * put a large file elsewhere, and the room left unfilled (dead bytes,
 * sent and never stored) is at most 1/64 of the payload and does not
 * take it past PROTO_MAX_CHUNKS: then t->placed is set; else t is
 * left, or put back, back to back.
 * PF_ENOMEM. Main thread, no worker reading.
 */
enum pf_status relayout_align(struct tree *t, uint32_t chunk_size);

/* Lays t out back to back again, as tree_build did. PF_ENOMEM. */
enum pf_status relayout_compact(struct tree *t);

#endif
