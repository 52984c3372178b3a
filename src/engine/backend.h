/* SPDX-License-Identifier: MIT */
/*
 * Where sessions keep their bytes: the storage directory (storage.h, the
 * default, served by session.c itself) or an S3 bucket (s3store.h). A
 * session on S3 calls these for what differs: create, one chunk written
 * and made durable, the chunks held at resume, commit, cancel, and the
 * finished file. One struct backend per engine, shared by all threads:
 * it lends each call a store handle (one connection) from a pool.
 */
#ifndef PF_BACKEND_H
#define PF_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "s3store.h"
#include "status.h"

struct backend;

/* What paraflowd was told about the store; all borrowed. */
struct backend_s3_opts {
	const char	*target;	/* "s3://BUCKET/PREFIX" */
	const char	*endpoint;
	const char	*region;	/* NULL: us-east-1 */
	const char	*credentials;	/* a file, or NULL: AWS_* vars */
	const char	*node;		/* this node's name */
};

/*
 * Checks the settings, the keys and the store (a signed write and
 * delete under PREFIX.pf/, s3_probe) and returns a new backend in *out.
 * PF_EUSAGE for bad settings, else the store's status; the reason is
 * logged, never a secret. At start-up.
 */
enum pf_status backend_s3_open(const struct backend_s3_opts *o,
    struct backend **out);
void backend_close(struct backend *b);

/*
 * The smallest chunk size b takes (S3STORE_MIN_CHUNK, also the default);
 * b NULL: the storage directory's. OPEN's check and its message both
 * take it from here (store_min_chunk).
 */
uint32_t backend_min_chunk(const struct backend *b);

/* As s3store.h's functions of the same names, on a pooled handle. */
enum pf_status backend_create(struct backend *b, struct s3store_record *r);
enum pf_status backend_load(struct backend *b, const char *id,
    struct s3store_record *r);
enum pf_status backend_load_any(struct backend *b, const char *id,
    struct s3store_record *r);
enum pf_status backend_put_chunk(struct backend *b,
    const struct s3store_record *r, uint32_t index, const void *p,
    size_t n, const uint8_t sha256[PF_SHA256_LEN],
    const uint8_t body[PF_SHA256_LEN]);
enum pf_status backend_have(struct backend *b,
    const struct s3store_record *r, uint8_t *bitmap);
enum pf_status backend_commit(struct backend *b,
    const struct s3store_record *r, const uint8_t receipt[PF_SHA256_LEN]);
enum pf_status backend_cancel(struct backend *b,
    const struct s3store_record *r);
enum pf_status backend_delete(struct backend *b,
    const struct s3store_record *r);
/* PF_OK if r's finished object is in the bucket (its size in *size). */
enum pf_status backend_finished(struct backend *b,
    const struct s3store_record *r, uint64_t *size);
/* As s3store_put_key, s3store_get_key and s3store_receipt (s3join.c). */
enum pf_status backend_put_key(struct backend *b,
    const struct s3store_record *r, const uint8_t key[PF_SHA256_LEN]);
enum pf_status backend_get_key(struct backend *b,
    const struct s3store_record *r, uint8_t key[PF_SHA256_LEN]);
enum pf_status backend_receipt(struct backend *b,
    const struct s3store_record *r, uint8_t receipt[PF_SHA256_LEN],
    int64_t *when);
/* The key all nodes of the bucket share (s3store_cluster_key). */
enum pf_status backend_cluster_key(struct backend *b,
    uint8_t key[PF_SHA256_LEN]);
/* One expiry pass over the whole bucket (s3store_expire), logged. */
void backend_expire(struct backend *b, unsigned ttl_s);

/*
 * The gateway's reads of the store (s3view.c), on pooled handles as
 * above: every session of the bucket (s3store_list), bytes of a finished
 * object (s3store_read: sink is called in the caller's thread); its
 * receipt is backend_receipt's.
 */
enum pf_status backend_list(struct backend *b, s3store_list_fn fn,
    void *arg);
enum pf_status backend_read(struct backend *b,
    const struct s3store_record *r, uint64_t off, uint64_t len,
    s3_sink_fn sink, void *arg);

#endif
