/* SPDX-License-Identifier: MIT */
/* SHA-256, HMAC, PBKDF2, random bytes and text encodings, via OpenSSL EVP. */
#ifndef PF_DIGEST_H
#define PF_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define PF_SHA256_LEN	32
#define PF_SHA256_HEX	(2 * PF_SHA256_LEN + 1)

struct pf_sha256;	/* opaque incremental hash */

/* Returns a new hash context, or NULL on allocation failure. */
struct pf_sha256 *pf_sha256_new(void);
/* Starts (or restarts) a hash. */
enum pf_status pf_sha256_init(struct pf_sha256 *h);
enum pf_status pf_sha256_update(struct pf_sha256 *h, const void *p, size_t n);
/* Writes the 32-byte digest to out; the context may then be re-inited. */
enum pf_status pf_sha256_final(struct pf_sha256 *h, uint8_t *out);
void pf_sha256_free(struct pf_sha256 *h);

/* One-shot SHA-256 of p[0..n). */
enum pf_status pf_sha256(const void *p, size_t n, uint8_t out[PF_SHA256_LEN]);

/* HMAC-SHA-256 of msg under key; out receives 32 bytes. */
enum pf_status pf_hmac_sha256(const void *key, size_t keylen, const void *msg,
    size_t msglen, uint8_t out[PF_SHA256_LEN]);

/* PBKDF2-HMAC-SHA-256 with 32 bytes of output (SCRAM's Hi()). */
enum pf_status pf_pbkdf2_sha256(const char *pass, size_t passlen,
    const uint8_t *salt, size_t saltlen, unsigned iterations,
    uint8_t out[PF_SHA256_LEN]);

/* Fills p with n bytes from the CSPRNG. */
enum pf_status pf_random(void *p, size_t n);

/* Constant-time comparison of two buffers of length n. */
bool pf_equal_ct(const void *a, const void *b, size_t n);

/* Writes 2n lowercase hex digits and a NUL to out (size 2n+1). */
void pf_hex_encode(const uint8_t *p, size_t n, char *out);
/* Decodes exactly n bytes from 2n hex digits; -1 if malformed. */
int pf_hex_decode(const char *hex, uint8_t *out, size_t n);

/*
 * Base64 (RFC 4648, with padding). pf_base64_encode returns a new string
 * the caller frees, or NULL. pf_base64_decode writes at most cap bytes to
 * out and returns the decoded length, or -1 if the input is malformed or
 * would not fit.
 */
char *pf_base64_encode(const uint8_t *p, size_t n);
long pf_base64_decode(const char *b64, uint8_t *out, size_t cap);

/* Frees the calling thread's crypto state; call last in a thread. */
void pf_thread_cleanup(void);

/* Wipes a secret; use before free. */
void pf_wipe(void *p, size_t n);

#endif
