/* SPDX-License-Identifier: MIT */
/*
 * The manifest of a transfer (many files in one session): each entry's
 * path as sent and as it will be stored, size, place in the transfer's
 * payload, mode, mtime, and whether it may be stored (and why not).
 */
#ifndef PF_MANIFEST_H
#define PF_MANIFEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "chunkhash.h"
#include "digest.h"
#include "status.h"

struct own_digests;
struct pf_buf;
struct policy;

struct manifest_file {
	char		*client;	/* the path as sent (valid UTF-8) */
	char		*path;		/* stored relative path; NULL if
					   refused */
	bool		 dir;		/* a directory entry, no bytes */
	uint64_t	 size;
	uint64_t	 offset;	/* in the transfer's payload */
	uint32_t	 mode;		/* permission bits, 0777 at most */
	int64_t		 mtime;		/* seconds since the epoch */
	enum pf_status	 status;	/* PF_OK, or why it is not stored */
	char		*reason;	/* for people, if status != PF_OK */
	char		 digest[PF_SHA256_HEX];	/* receipt once stored */
	/* The digests of its own chunks (the file cut alone) that chunks
	   hashed in pieces brought whole, of which its receipt is made:
	   of a file of one chunk in own, once streamed; else in owns. */
	uint8_t		 own[PF_SHA256_LEN];
	_Atomic bool	 streamed;
	_Atomic(struct own_digests *) owns;
};

struct manifest {
	size_t			 n;
	struct manifest_file	*f;
	uint64_t		 total;	/* payload bytes, refused included */
	char			 digest[PF_SHA256_HEX];	/* of what was sent */
	struct proto_span	*spans;	/* the files with bytes, by offset */
	size_t			 nspans;
};

/*
 * Parses the "files" array of an OPEN (borrowed) of size payload bytes
 * into a new manifest in *out: PF_EBADFRAME (why says what) if it is not
 * an array of entries {"path","size","mode","mtime"} (with "offset" on
 * every file or on none) or {"path","dir":true}, has more than
 * PROTO_MAX_FILES entries, sizes that overflow, or offsets that put a
 * file past size or over another; PF_ENOMEM. Without offsets the files
 * lie back to back (total is their sum); with them total is size, and
 * the bytes no file covers are dead. A path
 * that cannot be stored safely (absolute, "..", empty or over-long
 * components, a component refused by p's name rules, a case-insensitive
 * duplicate, a file below a file) is not an error of the whole: its entry
 * gets a status and a reason. Any thread.
 */
enum pf_status manifest_parse(const struct policy *p, const json_t *files,
    uint64_t size, struct manifest **out, char *why, size_t cap);

/* What manifest_dump writes of each entry. */
enum manifest_form {
	MANIFEST_STAGED,	/* all, with offsets, as manifest_load reads */
	MANIFEST_FINAL,		/* all, with the state and the receipt */
	MANIFEST_SHORT		/* path, state, reason and receipt alone */
};

/* Appends the manifest to b as a JSON array; false as pf_buf_add. */
bool manifest_dump(const struct manifest *m, enum manifest_form form,
    struct pf_buf *b);

/*
 * Reads back what manifest_dump (MANIFEST_STAGED) wrote for a payload of
 * size bytes, checking each stored path and offset again as if a client
 * had sent it. PF_EBADFRAME if anything is malformed.
 */
enum pf_status manifest_load(const json_t *j, uint64_t size,
    struct manifest **out);

void manifest_free(struct manifest *m);

/*
 * The files' own chunks whole in the chunk h has just hashed in pieces,
 * over m's spans, in chunk_size chunks, keep their digests. Any thread;
 * the chunk's durability, noted after, publishes them.
 */
void manifest_note_wholes(struct manifest *m, const struct chunkhash *h,
    uint32_t chunk_size);

/*
 * The digests of all of f's own chunks (of chunk_size bytes) if the
 * stream gave them all, else NULL.
 */
const uint8_t *manifest_streamed(const struct manifest_file *f,
    uint32_t chunk_size);

/* How many entries are refused (status not PF_OK). */
size_t manifest_refused(const struct manifest *m);

/* A range of payload bytes [off, end). */
struct manifest_run {
	uint64_t	 off, end;
};

/*
 * The payload ranges an amended manifest nw shares with old: its files
 * that old lists with the same path as sent, offset, size and mtime,
 * merged where they touch, sorted. *out is a new array of *n runs (free
 * it); PF_ENOMEM.
 */
enum pf_status manifest_same_runs(const struct manifest *old,
    const struct manifest *nw, struct manifest_run **out, size_t *n);

/* True if [off, off + len) lies inside one of the n runs r. */
bool manifest_runs_cover(const struct manifest_run *r, size_t n,
    uint64_t off, uint64_t len);

#endif
