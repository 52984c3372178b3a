/* SPDX-License-Identifier: MIT */
/*
 * The last step of an upload: the client's receipt checked against the
 * chunks held, the data made durable, its metadata written, and the file
 * renamed atomically to its final name.
 */
#ifndef PF_FINALIZE_H
#define PF_FINALIZE_H

#include <stdint.h>

#include <jansson.h>

#include "digest.h"
#include "status.h"

struct storage;
struct staging;

/*
 * Computes the receipt of a file of size bytes in chunks of chunk_size
 * from the n chunk digests (borrowed; 32 bytes each) and compares it with
 * want in constant time. PF_OK if they match, PF_ECHECKSUM otherwise.
 * Pure; any thread.
 */
enum pf_status finalize_check_receipt(uint64_t size, uint32_t chunk_size,
    const uint8_t *digests, uint32_t n, const uint8_t want[PF_SHA256_LEN]);

/*
 * Makes the data of st durable, writes meta (borrowed) as the session's
 * metadata file, renames the data to <root>/<id>/<name> and syncs the
 * directories, then removes the staging area and frees st. A crash at any
 * moment leaves either no file or the whole file under its final name. On
 * failure st stays valid and the caller still owns it; the error is never
 * PF_ECHECKSUM, PF_ECANCELLED or PF_EINTERNAL. One thread per st.
 */
enum pf_status finalize_file(struct storage *s, struct staging *st,
    const char *name, const json_t *meta);

#endif
