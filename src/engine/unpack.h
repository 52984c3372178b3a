/* SPDX-License-Identifier: MIT */
/*
 * The last step of a transfer: each file of its manifest, already in its
 * own backing file of the payload (payload.h), checked by the content
 * policy on its own first bytes, given its own receipt, and renamed
 * atomically into place as <root>/<id>/<path>: no copy.
 */
#ifndef PF_UNPACK_H
#define PF_UNPACK_H

#include <jansson.h>

#include "status.h"

struct judge;
struct manifest;
struct policy;
struct staging;
struct storage;

/* The file list of a finished transfer, beside its metadata. */
#define UNPACK_FILES_NAME	".paraflow-files.json"

/*
 * Stores the files of m (whose receipt the caller checked) from st's
 * payload: a file p refuses by content gets that status and reason in m
 * and is not stored; the others get their receipt (the receipt of the
 * file alone, in the transfer's chunk size) in m; a file judge (stopped;
 * NULL: none) has a verdict for is not judged again. Their data is durable
 * before any is renamed into place (each chunk was synced before its
 * ACK), and the directories are synced after; then meta
 * (borrowed; its files_refused is brought up to date) and the file list
 * are written and the staging area removed
 * (st freed). On failure st stays the caller's, and COMMIT may be tried
 * again. One thread per st.
 */
enum pf_status unpack_transfer(struct storage *s, struct staging *st,
    uint32_t chunk_size, struct manifest *m, const struct policy *p,
    struct judge *judge, json_t *meta);

#endif
