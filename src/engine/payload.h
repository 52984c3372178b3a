/* SPDX-License-Identifier: MIT */
/*
 * A session's payload on disk: the byte space its chunks are written
 * into, read back from, and synced. A single file's payload is one file,
 * "data", in the staging area, preallocated at OPEN. A transfer's is one
 * backing file per manifest entry with bytes, "p/<hex offset>", holding
 * that entry's range of the payload: named by the entry's payload
 * offset, which an amend keeps for every unchanged file; created at its
 * first write (with its space reserved then), so COMMIT renames it into
 * place instead of copying it out. Bytes no file covers (an amend's dead
 * bytes) are not stored: writes drop them, reads give zeros.
 */
#ifndef PF_PAYLOAD_H
#define PF_PAYLOAD_H

#include <stdint.h>
#include <stddef.h>

#include "status.h"

struct manifest;
struct payload;

/* A single file's payload, in the staging area. */
#define PAYLOAD_DATA_NAME	"data"

/* A transfer's backing files, one per file, in this directory. */
#define PAYLOAD_DIR	"p"

/* Room for "p/" and a 64-bit offset in hex. */
#define PAYLOAD_NAME_MAX	24

/*
 * Creates the payload of size bytes beneath the staging area dirfd
 * (borrowed; it must outlive the payload): for a transfer (mf, borrowed,
 * not NULL) its directory of backing files, after checking the free
 * space holds every file's bytes besides those promised (the counter
 * *promised, shared by the storage's payloads; NULL: none), which its
 * files' bytes join until each is reserved at its first write; else
 * "data", preallocated. Where the filesystem finds space at each write
 * (tmpfs), a transfer's files are not reserved: their bytes stay
 * promised until payload_settled. PF_ENOSPC if the space is not there.
 * *out is new.
 */
enum pf_status payload_create(int dirfd, uint64_t size,
    const struct manifest *mf, _Atomic uint64_t *promised,
    struct payload **out);

/*
 * Opens the payload an earlier payload_create left beneath dirfd, as mf
 * (a transfer's manifest, or NULL) describes it; what its files still
 * need (those without a backing file yet, and where nothing is reserved,
 * what they do not hold) joins *promised. PF_EBADFRAME if a single
 * file's data is missing. *out is new.
 */
enum pf_status payload_open(int dirfd, const struct manifest *mf,
    _Atomic uint64_t *promised, struct payload **out);

/*
 * The bytes [off, off + n) of pl are durable: where the filesystem finds
 * space at each write (pf_space_on_write), so that nothing was reserved,
 * those of them its files hold are no longer promised (an amend's dead
 * bytes never were). NULL is a no-op.
 */
void payload_settled(struct payload *pl, uint64_t off, uint64_t n);

void payload_close(struct payload *pl);

/*
 * For a transfer whose COMMIT was cut short: each file of mf (the
 * manifest pl was opened with) whose backing file is gone is read from
 * its stored path beneath topfd (<root>/<id>, taken), where COMMIT
 * renamed it, so that recovery after a reboot finds its chunks there.
 */
enum pf_status payload_placed_at(struct payload *pl, int topfd,
    const struct manifest *mf);

/*
 * Writes n bytes at payload offset off; thread-safe for disjoint ranges.
 * PF_ENOSPC or PF_EIO.
 */
enum pf_status payload_write(struct payload *pl, uint64_t off,
    const void *p, size_t n);

/*
 * Reads n bytes at off into p. A single file: PF_EIO also if it is
 * shorter. A transfer: what no backing file holds (dead bytes, a file
 * not written yet or lost in a crash), nor its stored place if
 * payload_placed_at gave one, reads as zeros, so a chunk checked against
 * its digest fails and is sent again.
 */
enum pf_status payload_read(struct payload *pl, uint64_t off, void *p,
    size_t n);

/*
 * Makes everything written before the call durable, names of new
 * backing files included: one fdatasync for the data file or a single
 * known backing file, else one syncfs for all. One thread at a time
 * (the session's committer, or its only user).
 */
enum pf_status payload_sync(struct payload *pl);

/*
 * The backing file of a transfer's entry at payload offset off, as a
 * path beneath the staging area ("p/<hex>").
 */
void payload_file_name(uint64_t off, char out[PAYLOAD_NAME_MAX]);

/*
 * Removes the backing files no entry of pl's manifest starts at (an
 * amend's dead files). Best effort: a file left over is dead bytes,
 * removed with the staging area.
 */
void payload_prune(struct payload *pl);

/*
 * Removes a transfer's backing files and their directory beneath the
 * staging area dirfd, if there are any.
 */
void payload_remove(int dirfd);

#endif
