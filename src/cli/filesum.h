/* SPDX-License-Identifier: MIT */
/*
 * A file's receipt (proto_receipt) hashed from its bytes as a transfer
 * reads them, so the report after COMMIT need not read the file again.
 */
#ifndef PF_FILESUM_H
#define PF_FILESUM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "status.h"

struct filesum;

/* A receipt of a size-byte file cut in chunk_size chunks. NULL: ENOMEM. */
struct filesum *filesum_new(uint64_t size, uint32_t chunk_size);

void filesum_free(struct filesum *s);

/*
 * Hashes p[0..n), the file's bytes at pos. Bytes must come in order: a
 * gap, or bytes of a range not yet reached, end the sum (filesum_hex is
 * false from then on); bytes already hashed are ignored. One thread at
 * a time.
 */
void filesum_add(struct filesum *s, const void *p, size_t n, uint64_t pos);

/*
 * Chunk index's digest, hashed elsewhere (a transfer's chunk hashed in
 * pieces held all of it). A sum is fed by filesum_add or by this, not
 * both. Any thread; each chunk counts once.
 */
void filesum_put(struct filesum *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN]);

/* True once every byte is hashed, with the receipt in hex. */
bool filesum_hex(const struct filesum *s, char hex[PF_SHA256_HEX]);

#endif
