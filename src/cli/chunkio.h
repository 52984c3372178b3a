/* SPDX-License-Identifier: MIT */
/* Reading one chunk of a local file while hashing it, once. */
#ifndef PF_CHUNKIO_H
#define PF_CHUNKIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkhash.h"
#include "digest.h"
#include "proto.h"

struct tree;

/*
 * A chunk read into a buffer is read, hashed and sent in pieces this
 * large: small enough to stay in a core's L2 cache from the read, which
 * copies a piece in, through the hash to the send (1 MiB pieces cost the
 * client 0.07 CPU-s per GiB more; docs/performance.md).
 */
#define CHUNKIO_PIECE	(128u * 1024)

/* Where chunks are read: one file (fd), or a transfer's files (tree). */
struct chunk_src {
	int		 fd;
	struct tree	*tree;		/* if not NULL, fd is not used */
};

/*
 * What a read of src that gave PF_EIO could not read, and why, for a
 * message: "PATH: reason" for a transfer's file, else "the file".
 */
void chunkio_read_error(const struct chunk_src *src, char *out, size_t cap);

/* Reads n bytes of src at off into buf: PF_OK, or PF_EIO if short. */
enum pf_status chunkio_pread(const struct chunk_src *src, void *buf,
    size_t n, uint64_t off);

/* Where the pieces of a chunk go once hashed. */
struct chunkio_sink {
	/* Takes one piece (borrowed); PF_OK to go on. */
	enum pf_status	(*write)(void *arg, const void *p, size_t n);
	void		*arg;
	/*
	 * True if write only hands the bytes to the kernel (a plain send):
	 * they may then point into a mapping of the file, where the kernel
	 * fails with EFAULT past a cut. Else (OpenSSL reads them, and a
	 * SIGBUS must never jump out of it) they are read into buf.
	 */
	bool		 kernel_only;
};

/*
 * Reads chunk ch of src, feeds it piece by piece to the chunk digest h and
 * each piece then to sink (if not NULL), and writes the chunk digest to
 * digest: PFC2 if src is a transfer's files hashed in pieces (then the
 * files whole in the chunk get their receipts from it), else PFC1. A
 * file's chunk is mapped if sink is NULL or kernel_only (pieces of 512
 * KiB); else, and for a transfer's files or a file that cannot be
 * mapped, it is read through buf (pieces of bufsz bytes). PF_EIO if the
 * file is shorter than it was (it changed under us). Installs a SIGBUS
 * handler on first use, for mapped reads of a file cut short; any thread
 * may call it.
 */
enum pf_status chunkio_read(const struct chunk_src *src,
    const struct proto_chunk_head *ch,
    uint8_t *buf, size_t bufsz, struct chunkhash *h,
    const struct chunkio_sink *sink, uint8_t digest[PF_SHA256_LEN]);

/*
 * The receipt of a whole local file, as the server computes it (see
 * docs/protocol.md). hex receives 65 bytes.
 */
enum pf_status chunkio_receipt(int fd, uint64_t size, uint32_t chunk_size,
    char hex[PF_SHA256_HEX]);

/* chunkio_receipt of the payload src: a file, or a transfer's files. */
enum pf_status chunkio_receipt_src(const struct chunk_src *src,
    uint64_t size, uint32_t chunk_size, char hex[PF_SHA256_HEX]);

/*
 * Computes the digest of every chunk of src (size bytes in count chunks of
 * chunk_size) whose bit is set in want (bit i % 8 of byte i / 8), into
 * digests (32 bytes a chunk, at the chunk's place), reading with up to
 * threads threads at once. PF_EIO if the file cannot be read.
 */
enum pf_status chunkio_digest_chunks(const struct chunk_src *src,
    uint64_t size,
    uint32_t chunk_size, uint32_t count, const uint8_t *want,
    uint8_t *digests, unsigned threads);

#endif
