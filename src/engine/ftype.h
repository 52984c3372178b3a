/* SPDX-License-Identifier: MIT */
/* A file's type from its first bytes, as libmagic (behind file(1)) sees it. */
#ifndef PF_FTYPE_H
#define PF_FTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define FTYPE_MIME_MAX	80	/* bytes of a MIME type, NUL included */

struct ftype;

/*
 * Opens libmagic and loads its database once (the system's, as file(1)
 * uses), and a sieve of it for ftype_match() when types (ntypes MIME
 * types, kept by the caller until ftype_free()) are given. NULL if the
 * database cannot be loaded: the caller must not go on without it. Any
 * thread may use the result: a magic_t is not thread-safe, so it holds a
 * few, and up to that many calls run at once.
 */
struct ftype *ftype_new(const char *const *types, size_t ntypes);

void ftype_free(struct ftype *ft);

/*
 * Writes the MIME type of p[0..n) ("text/x-shellscript") into mime
 * (FTYPE_MIME_MAX bytes), without the details libmagic may add after it.
 * Compressed data is not opened and nothing is run. PF_EINTERNAL if
 * libmagic gives no answer.
 */
enum pf_status ftype_classify(struct ftype *ft, const uint8_t *p, size_t n,
    char mime[FTYPE_MIME_MAX]);

/*
 * ftype_classify()'s answer if it is one of ftype_new()'s types, else ""
 * in mime: the same verdict, about ten times cheaper where the database
 * could be sieved (most heads never reach the whole of it).
 */
enum pf_status ftype_match(struct ftype *ft, const uint8_t *p, size_t n,
    char mime[FTYPE_MIME_MAX]);

/* How many of libmagic's top-level rules the sieve holds; 0: no sieve. */
size_t ftype_sieve_rules(const struct ftype *ft);

/* ftype_match() calls so far, and how many needed the whole database. */
void ftype_match_counts(struct ftype *ft, unsigned long *matched,
    unsigned long *whole);

#endif
