/* SPDX-License-Identifier: MIT */
/*
 * The storage interface: where sessions keep their bytes, the storage
 * directory (storage.c, which session.c drives itself) or an S3 bucket
 * (backend.c). The engine makes one struct store at start from its
 * settings; the rest of the engine asks it what it takes and what to do,
 * never which one runs: only this module, session.c and the two
 * implementations (and s3view.c, the bucket's view) know.
 */
#ifndef PF_STORE_H
#define PF_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "digest.h"
#include "s3store.h"
#include "status.h"

struct backend;
struct store;

/* What paraflowd was told; all borrowed. s3_target NULL: the directory. */
struct store_opts {
	const char	*s3_target;	/* "s3://BUCKET/PREFIX", or NULL */
	const char	*s3_endpoint;
	const char	*s3_region;	/* NULL: us-east-1 */
	const char	*s3_credentials;	/* a file; NULL: AWS_* */
	const char	*node;		/* this node's name */
};

/*
 * A new store in *out: the storage directory (which storage_open opens),
 * or the bucket, checked now (backend_s3_open) so that a node that cannot
 * reach it does not start. PF_EUSAGE, PF_ENOMEM or the store's status.
 */
enum pf_status store_open(const struct store_opts *o, struct store **out);
void store_close(struct store *st);

/* What it takes. The smallest chunk size of an OPEN (and HELLO's). */
uint32_t store_min_chunk(const struct store *st);
/* Folder transfers (OPEN with "files"), and so amended resume. */
bool store_takes_transfers(const struct store *st);
/* Uploads through the gateway's tus door (gwupload.c). */
bool store_takes_tus(const struct store *st);
/* Whether this node's free space (--min-free-space) bounds an OPEN. */
bool store_counts_free_space(const struct store *st);

/*
 * True if nodes share the store: a session id this node does not hold
 * may be in it (a resume or a JOIN loads a copy, store_load), and a
 * session here may be such a copy, still being loaded. False: this
 * node's registry and history are all there is.
 */
bool store_shared(const struct store *st);

/*
 * The key all nodes of a shared store use, into key; a node's own store
 * leaves key (the key file's) as it is. PF_OK or the store's status.
 */
enum pf_status store_cluster_key(struct store *st,
    uint8_t key[PF_SHA256_LEN]);
/* One expiry pass over the shared store's idle sessions; else nothing. */
void store_expire(struct store *st, unsigned ttl_s);

/*
 * A shared store's session records (backend.h): id's record, whether its
 * object is finished (its size in *size), its receipt. PF_ENOSESSION on
 * a node's own store, which keeps none.
 */
enum pf_status store_load(struct store *st, const char *id,
    struct s3store_record *r);
enum pf_status store_finished(struct store *st,
    const struct s3store_record *r, uint64_t *size);
enum pf_status store_receipt(struct store *st,
    const struct s3store_record *r, uint8_t receipt[PF_SHA256_LEN],
    int64_t *when);

/* The bucket's side (session.c, s3view.c), or NULL: the directory. */
struct backend *store_backend(const struct store *st);

#endif
