/* SPDX-License-Identifier: MIT */
/*
 * The storage interface (store.h): the storage directory, the default,
 * keeps no state here beyond what storage.c does; the S3 side is
 * backend.c, to which each answer for a bucket is passed on.
 */
#include "config.h"

#include <stdlib.h>

#include "backend.h"
#include "store.h"

struct store {
	struct backend	*s3;		/* owned, or NULL: the directory */
};

enum pf_status
store_open(const struct store_opts *o, struct store **out)
{
	struct backend_s3_opts so = { o->s3_target, o->s3_endpoint,
	    o->s3_region, o->s3_credentials, o->node };
	struct store *st;
	enum pf_status rc;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return PF_ENOMEM;
	if (o->s3_target != NULL &&
	    (rc = backend_s3_open(&so, &st->s3)) != PF_OK) {
		free(st);
		return rc;
	}
	*out = st;
	return PF_OK;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	backend_close(st->s3);
	free(st);
}

uint32_t
store_min_chunk(const struct store *st)
{
	return backend_min_chunk(st->s3);
}

/* Not built on S3 yet (docs/scale-out.md): one object per session. */
bool
store_takes_transfers(const struct store *st)
{
	return st->s3 == NULL;
}

bool
store_takes_tus(const struct store *st)
{
	return st->s3 == NULL;
}

/* A bucket's space is not this node's to count. */
bool
store_counts_free_space(const struct store *st)
{
	return st->s3 == NULL;
}

bool
store_shared(const struct store *st)
{
	return st->s3 != NULL;
}

enum pf_status
store_cluster_key(struct store *st, uint8_t key[PF_SHA256_LEN])
{
	return st->s3 != NULL ? backend_cluster_key(st->s3, key) : PF_OK;
}

void
store_expire(struct store *st, unsigned ttl_s)
{
	if (st->s3 != NULL)
		backend_expire(st->s3, ttl_s);
}

enum pf_status
store_load(struct store *st, const char *id, struct s3store_record *r)
{
	return st->s3 != NULL ? backend_load(st->s3, id, r) : PF_ENOSESSION;
}

enum pf_status
store_finished(struct store *st, const struct s3store_record *r,
    uint64_t *size)
{
	return st->s3 != NULL ? backend_finished(st->s3, r, size) :
	    PF_ENOSESSION;
}

enum pf_status
store_receipt(struct store *st, const struct s3store_record *r,
    uint8_t receipt[PF_SHA256_LEN], int64_t *when)
{
	return st->s3 != NULL ? backend_receipt(st->s3, r, receipt, when) :
	    PF_ENOSESSION;
}

struct backend *
store_backend(const struct store *st)
{
	return st->s3;
}
