/* SPDX-License-Identifier: MIT */
/*
 * The local side of a transfer: the files and directories under the
 * paths given, in a fixed order, and their bytes read back to back as
 * one payload (the "virtual file" the chunks cut).
 */
#ifndef PF_TREE_H
#define PF_TREE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "buf.h"
#include "chunkhash.h"
#include "digest.h"
#include "filesum.h"
#include "status.h"

struct tree_entry {
	char		*local;		/* path to open */
	char		*rel;		/* path sent: relative, '/'-separated */
	bool		 dir;
	uint64_t	 size;
	uint64_t	 offset;	/* in the payload */
	uint32_t	 mode;		/* permission bits */
	int64_t		 mtime;		/* seconds */
	int		 root;		/* its root folder in the
					   tree's folders, or -1 */
	size_t		 below;		/* where in local the path
					   beneath that root starts */
	struct timespec	 mtim, ctim;	/* as listed, for tree_receipt */
	_Atomic bool	 changed;	/* not as listed when read */
	_Atomic bool	 summing;	/* a thread feeds sum now */
	_Atomic bool	 unlisted;	/* read when not as listed */
	struct filesum	*sum;		/* its receipt, from the reads */
};

#define TREE_SKIPS_LISTED	1000

/* A root folder: its path, and held open (the first few), or -1. */
struct tree_root {
	char		*path;
	int		 fd;
};

/* Root folders held open at once: beyond, each read opens its root. */
#define TREE_HELD_ROOTS	32

struct tree {
	size_t			 n, cap;
	struct tree_entry	*e;
	uint64_t		 total;		/* payload bytes */
	size_t			 files;		/* entries that are files */
	unsigned		 skipped;	/* symlinks, devices, ... */
	json_t			*skips;		/* the first TREE_SKIPS_LISTED
						   of them: path, reason */
	bool			 follow;	/* --follow-symlinks */
	struct tree_root	*folders;	/* the roots that are folders */
	size_t			 nfolders;
	uint32_t		 sum_chunk;	/* receipts hashed as files
						   are read, in chunks of
						   this; 0: not */
	bool			 placed;	/* laid out by relayout.c:
						   offsets sent, gaps dead */
	struct proto_span	*spans;		/* files with bytes, by
						   offset (tree_index) */
	size_t			 nspans;
	bool			 pieces;	/* chunks hashed in pieces
						   (PFC2) */
	char			 digest[PF_SHA256_HEX];	/* of the manifest */
	char			 roots[PF_SHA256_HEX];	/* of the paths given */
	_Atomic size_t		 unreadable;	/* 1 + the entry a read of
						   failed last; 0: none */
	_Atomic int		 unreadable_errno;
};

struct tree_opts {
	const char *const *exclude;	/* globs, nexclude of them */
	size_t		 nexclude;
	bool		 follow_symlinks;
	bool		 quiet;		/* no warning per skipped entry */
};

/*
 * Walks paths (npaths of them; files and directories, recursively) into a
 * new tree in *out. A directory's entries are stored under its base name
 * ("photos/a.jpg"); a file under its base name. Excluded entries (a glob
 * matching the base name or the relative path) are left out, directories
 * with all they hold; symlinks (unless o->follow_symlinks), devices,
 * FIFOs and sockets are skipped with a warning. PF_EIO with err filled
 * if a path cannot be read; PF_EUSAGE if nothing is left to send.
 */
enum pf_status tree_build(const char *const *paths, size_t npaths,
    const struct tree_opts *o, struct tree **out, char *err, size_t cap);

void tree_free(struct tree *t);

/*
 * The "files" array of an OPEN for t: path, size, mode, mtime (and if
 * t->placed, offset) of each file, and {"path","dir":true} for each
 * directory. New reference.
 */
json_t *tree_manifest(const struct tree *t);

/*
 * Each entry's change stamp, in manifest order: its ctime in ns as
 * listed (0 for a directory). A file rewritten in place within the same
 * second, at the same size, has the manifest's mtime still; not this.
 * NULL on ENOMEM.
 */
json_t *tree_stamps(const struct tree *t);

/*
 * tree_manifest's and tree_stamps' arrays appended to b as json_dumps
 * writes them compact, written here: a jansson tree of 100,000 objects,
 * dumped for the OPEN and again for the resume state, was most of what
 * the client did before its first chunk. False as for pf_buf_add.
 */
bool tree_add_manifest(const struct tree *t, struct pf_buf *b);
bool tree_add_stamps(const struct tree *t, struct pf_buf *b);

/*
 * Indexes the files of t by offset, after their offsets were set (or
 * changed: relayout.h). PF_ENOMEM. Main thread, no worker reading.
 */
enum pf_status tree_index(struct tree *t);

/*
 * Reads n bytes of the payload at off into buf: the files back to back,
 * or where t->placed put them, zeros between them.
 * A file that is not as listed any more (size or mtime) is marked
 * changed, and the transfer goes on (the file's receipt will tell);
 * PF_EIO if a file cannot be opened (tree_open) or read, or is shorter
 * than listed: zeros for its missing bytes would be stored as its own.
 * Any thread.
 */
enum pf_status tree_pread(struct tree *t, void *buf, size_t n, uint64_t off);

/*
 * The file a tree_pread could not read, and why, as "PATH: reason" in
 * out (of cap bytes); "" if none failed.
 */
void tree_read_error(struct tree *t, char *out, size_t cap);

/*
 * Opens file e of t to read: beneath its root directory, held open since
 * the walk, through no symbolic link unless t->follow (a folder replaced
 * by a link meanwhile fails with ELOOP). Returns the fd, or -1 (errno).
 */
int tree_open(const struct tree *t, const struct tree_entry *e);

/*
 * From now on tree_pread hashes each file it reads from start to end, in
 * order, into its receipt for chunk_size chunks; with pieces (the chunks
 * are hashed in pieces, PFC2), not the files whose own chunks lie whole
 * in the payload's (in one, or from a chunk's start on):
 * tree_note_wholes gives them theirs. Main thread, no worker reading.
 */
void tree_sum_receipts(struct tree *t, uint32_t chunk_size, bool pieces);

/*
 * The spans to hash t's chunks of *chunk_size bytes in pieces with (*n
 * of them), or NULL if they are hashed whole (PFC1).
 */
const struct proto_span *tree_spans(const struct tree *t, size_t *n,
    uint32_t *chunk_size);

/*
 * The files' own chunks whole in the chunk h has just hashed in pieces
 * join their receipts, if they were read as listed. Any thread.
 */
void tree_note_wholes(struct tree *t, const struct chunkhash *h);

/*
 * True with e's receipt for chunk_size chunks in hex if tree_pread
 * hashed all of e, in order, and e is now as listed (size, mtime and
 * ctime): what was read is what is on disk. False otherwise, and the
 * caller must hash the file itself.
 */
bool tree_receipt(const struct tree *t, const struct tree_entry *e,
    uint32_t chunk_size, char hex[PF_SHA256_HEX]);

#endif
