/* SPDX-License-Identifier: MIT */
/*
 * The storage directory: per-session staging files written at chunk
 * offsets, and the atomic move of a verified file to its final name.
 *
 * Layout:  <root>/.staging/<session>/data    staging file, 0600
 *          <root>/<session>/<name>           finished file, 0600
 *          <root>/<session>/.paraflow.json   its metadata
 * Sanitized names never start with '.', so they cannot collide with the
 * metadata file. Every path is opened relative to a directory handle.
 */
#ifndef PF_STORAGE_H
#define PF_STORAGE_H

#include <stdint.h>

#include <jansson.h>

#include "status.h"

#define STORAGE_META_NAME	".paraflow.json"

struct storage;
struct staging;

/*
 * Opens (creating if needed, 0700) the storage directory and its .staging
 * subdirectory. *out is new; free with storage_close.
 */
enum pf_status storage_open(const char *dir, struct storage **out);
void storage_close(struct storage *s);

/* The directory's absolute path as given (borrowed). */
const char *storage_path(const struct storage *s);

/*
 * Creates the staging area of session id and preallocates size bytes.
 * PF_ENOSPC if the space is not there. *out is new.
 */
enum pf_status storage_staging_create(struct storage *s, const char *id,
    uint64_t size, struct staging **out);

/*
 * Writes n bytes at off into the staging file. Thread-safe: chunks of one
 * session are written concurrently at disjoint offsets. PF_ENOSPC or PF_EIO.
 */
enum pf_status storage_staging_write(struct staging *st, uint64_t off,
    const void *p, size_t n);

/*
 * Makes the staging data durable, writes meta (borrowed) as the session's
 * metadata file, renames the data to <root>/<id>/<name> and syncs the
 * directories, then removes the staging area. A crash at any moment leaves
 * either no file or the whole file under its final name.
 */
enum pf_status storage_finalize(struct storage *s, struct staging *st,
    const char *name, const json_t *meta);

/* Removes the staging area and frees st. NULL is a no-op. */
void storage_staging_discard(struct storage *s, struct staging *st);

#endif
