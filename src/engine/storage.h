/* SPDX-License-Identifier: MIT */
/*
 * The storage directory: per-session staging areas (metadata, a data file
 * written at chunk offsets, and a journal of acknowledged chunks: see
 * journal.h) and the finished files. Recovery of staging areas after a
 * restart is in recovery.h, the move of a verified file to its final name
 * in finalize.h.
 *
 * Layout:  <root>/.staging/<session>/session.json   metadata, synced
 *          <root>/.staging/<session>/data           staging file, 0600
 *          <root>/.staging/<session>/p/<hex>        a transfer's files
 *          <root>/.staging/<session>/journal        acknowledged chunks
 *          <root>/<session>/<name>                  finished file, 0600
 *          <root>/<session>/.paraflow.json          its metadata
 * Sanitized names never start with '.', so they cannot collide with the
 * metadata file. Every path is opened relative to a directory handle.
 */
#ifndef PF_STORAGE_H
#define PF_STORAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "digest.h"
#include "status.h"

#define STORAGE_META_NAME	".paraflow.json"

struct manifest;
struct storage;
struct staging;

/* When an acknowledged chunk is on stable storage. */
enum storage_sync {
	STORAGE_SYNC_FULL,	/* fdatasync data, then journal: power-safe */
	STORAGE_SYNC_NONE	/* page cache: survives a crash of paraflowd */
};

/*
 * Opens (creating if needed, 0700) the storage directory and its .staging
 * subdirectory. *out is new; free with storage_close.
 */
enum pf_status storage_open(const char *dir, enum storage_sync sync,
    struct storage **out);
void storage_close(struct storage *s);

/* The directory's path as given (borrowed). */
const char *storage_path(const struct storage *s);

/*
 * Bytes free for unprivileged writers on the storage filesystem, less
 * those promised to transfers' files not yet reserved (payload.h), or
 * UINT64_MAX if unknown.
 */
uint64_t storage_free_bytes(const struct storage *s);

/*
 * Creates the staging area of session id: writes and syncs meta (borrowed)
 * as session.json, creates the journal, and the payload of size bytes
 * (payload.h): a transfer's (mf, borrowed, not NULL) backing files, or
 * one file's data, preallocated. PF_ENOSPC if the space is not there.
 * *out is new.
 */
enum pf_status storage_staging_create(struct storage *s, const char *id,
    uint64_t size, const struct manifest *mf, const json_t *meta,
    struct staging **out);

/*
 * Replaces st's metadata with meta (borrowed), atomically, and syncs it
 * and the directory: what a crash brings back is either, whole.
 */
enum pf_status storage_staging_put_meta(struct staging *st,
    const json_t *meta);

/*
 * Writes n bytes at off into the payload. Thread-safe: chunks of one
 * session are written concurrently at disjoint offsets. PF_ENOSPC or PF_EIO.
 */
enum pf_status storage_staging_write(struct staging *st, uint64_t off,
    const void *p, size_t n);

/* The bytes [off, off + n) of st's payload are durable: payload_settled. */
void storage_staging_settled(struct staging *st, uint64_t off, uint64_t n);

/*
 * Reads n bytes at off of the payload into p (tus concatenation copies
 * partial uploads so). PF_EIO, also if a single file is shorter.
 */
enum pf_status storage_staging_read(struct staging *st, uint64_t off,
    void *p, size_t n);

/*
 * True once a sync of st failed (see journal_commit_chunk). The kernel
 * may then have dropped dirty pages that no later sync will write, so
 * nothing more of st can be trusted: the session must fail.
 */
bool storage_staging_broken(struct staging *st);

/*
 * Removes st's metadata at once, so a crash before the area is removed
 * cannot bring an ended session back. Returns PF_OK once that is
 * durable (or there was nothing to remove), else why not (logged).
 * Thread-safe.
 */
enum pf_status storage_staging_forget(struct staging *st);

/*
 * The metadata of finished session id (a new reference), or NULL if there
 * is none. id MUST be a validated session id.
 */
json_t *storage_final_meta(struct storage *s, const char *id);

/*
 * Calls cb for each finished session in storage (a directory holding
 * metadata), with its directory name and metadata (borrowed); stops at the
 * first error cb returns.
 */
enum pf_status storage_final_foreach(struct storage *s,
    enum pf_status (*cb)(void *arg, const char *id, const json_t *meta),
    void *arg);

/*
 * Opens finished file <root>/<id>/<name> for reading into *fd; PF_EPROTO
 * if it is not a regular file (a transfer's directory).
 */
enum pf_status storage_final_open(struct storage *s, const char *id,
    const char *name, int *fd);

/*
 * Removes a finished session: its file (or a transfer's tree), metadata
 * and directory.
 */
enum pf_status storage_final_remove(struct storage *s, const char *id,
    const char *name);

/*
 * A transfer's manifest files, too large for the metadata cap: writes m
 * (manifest_dump, final or not) as name, synced, in st's staging area or
 * in dirfd; and reads it back as a new reference (NULL if missing or
 * malformed). Up to STORAGE_MAX_LIST bytes, else PF_ETOOLARGE.
 */
#define STORAGE_MAX_LIST	(64u * 1024 * 1024)
enum pf_status storage_staging_put_list(struct staging *st, const char *name,
    const struct manifest *m, bool final);
json_t *storage_staging_get_list(struct staging *st, const char *name);
enum pf_status storage_put_list(int dirfd, const char *name,
    const struct manifest *m, bool final);
json_t *storage_get_list(int dirfd, const char *name);

/* storage_get_list of name in finished session id's directory. */
json_t *storage_final_list(struct storage *s, const char *id,
    const char *name);

/* True if a file can be created and removed in the storage root now. */
bool storage_writable(struct storage *s);

/* Removes the staging area and frees st. NULL is a no-op. */
void storage_staging_discard(struct storage *s, struct staging *st);

/* Closes st, leaving the staging area on disk to resume. NULL is a no-op. */
void storage_staging_close(struct staging *st);

#endif
