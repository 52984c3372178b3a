/* SPDX-License-Identifier: MIT */
/*
 * The server's login key: 32 random bytes made on first start and kept
 * in STORAGE/.auth/key (0600), so that what it derives (the salts of
 * users who do not exist) is the same after a restart.
 */
#ifndef PF_KEYFILE_H
#define PF_KEYFILE_H

#include <stdint.h>

#include "digest.h"
#include "status.h"

#define KEYFILE_DIR	".auth"
#define KEYFILE_NAME	".auth/key"

/*
 * Reads the key of the storage directory storage into key, making it
 * (and its directory, 0700) first if there is none. PF_EIO, logged, if
 * it cannot be read or written, or the file is not a key; key is then
 * wiped. At start-up only.
 */
enum pf_status keyfile_load(const char *storage, uint8_t key[PF_SHA256_LEN]);

#endif
