/* SPDX-License-Identifier: MIT */
/* What s3store.c (sessions, chunks) shares with s3commit.c (COMMIT). */
#ifndef PF_S3STORE_INT_H
#define PF_S3STORE_INT_H

#include "s3store.h"

struct s3store {
	struct s3			*s3;
	const struct s3_config		*cfg;
	const struct s3store_opts	*opts;
	unsigned			 lease_s, wait_s;
};

/*
 * The key of rec's WHAT (s3store_key) into out (S3_KEY_MAX + 1 bytes);
 * false, logged, if it does not fit.
 */
bool s3store_key_of(const struct s3store *st, const struct s3store_record *rec,
    const char *what, char *out);

/* Logs what failed with the store's detail (never a secret); returns rc. */
enum pf_status s3store_fail(const struct s3store *st, enum pf_status rc,
    const char *what, const char *key);

/* PF_OK if the object key exists, PF_ENOSESSION if not, or the error. */
enum pf_status s3store_exists(struct s3store *st, const char *key);

/* Reads a small object (at most cap bytes) into p; *n its length. */
enum pf_status s3store_get_small(struct s3store *st, const char *key,
    void *p, size_t cap, size_t *n);

/*
 * Deletes every key under .pf/s/<id>/claim/ and sums/, and its key: one
 * listing of the session's keys and one DeleteObjects per 1,000 of them,
 * listing again until none is left.
 */
enum pf_status s3store_sweep(struct s3store *st,
    const struct s3store_record *rec);

#endif
