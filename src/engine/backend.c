/* SPDX-License-Identifier: MIT */
/*
 * The S3 side of the storage interface (backend.h): the store's settings,
 * checked at start, and a pool of store handles, one per call in flight,
 * so that each thread's requests reuse a connection without the threads
 * sharing one.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "log.h"
#include "proto.h"

/* A handle lent to no call, kept for the next. */
struct pooled {
	struct s3store	*st;
	struct pooled	*next;
};

struct backend {
	struct s3_config	 cfg;
	struct s3store_opts	 opts;
	char			 node[S3STORE_NODE_MAX];
	pthread_mutex_t		 lock;		/* guards idle */
	struct pooled		*idle;
};

static char *
dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/* The settings of o into b->cfg, checked: PF_EUSAGE (logged). */
static enum pf_status
configure(struct backend *b, const struct backend_s3_opts *o)
{
	struct s3_config *c = &b->cfg;

	s3_config_defaults(c);
	if (o->endpoint == NULL) {
		log_error("S3 storage needs --s3-endpoint URL");
		return PF_EUSAGE;
	}
	c->endpoint = dup_or_null(o->endpoint);
	c->region = dup_or_null(o->region != NULL ? o->region : "us-east-1");
	if (c->endpoint == NULL || c->region == NULL)
		return PF_ENOMEM;
	if (s3_config_target(c, o->target) != PF_OK ||
	    s3_config_credentials(c, o->credentials) != PF_OK ||
	    s3_config_check(c) != PF_OK)
		return PF_EUSAGE;
	return s3_global_init();
}

/* Borrows a handle (a pooled one, else a new one); NULL on ENOMEM. */
static struct s3store *
take(struct backend *b)
{
	struct pooled *p;
	struct s3store *st;

	pthread_mutex_lock(&b->lock);
	if ((p = b->idle) != NULL)
		b->idle = p->next;
	pthread_mutex_unlock(&b->lock);
	if (p == NULL)
		return s3store_open(&b->cfg, &b->opts);
	st = p->st;
	free(p);
	return st;
}

/* Gives st back to the pool (closing it if memory runs out). */
static void
give(struct backend *b, struct s3store *st)
{
	struct pooled *p = malloc(sizeof(*p));

	if (p == NULL) {
		s3store_close(st);
		return;
	}
	p->st = st;
	pthread_mutex_lock(&b->lock);
	p->next = b->idle;
	b->idle = p;
	pthread_mutex_unlock(&b->lock);
}

/* Proves the store answers and takes writes: the probe, logged. */
static enum pf_status
probe(struct backend *b)
{
	struct s3store *st = take(b);
	char why[512];
	enum pf_status rc;

	if (st == NULL)
		return PF_ENOMEM;
	if ((rc = s3_probe(s3store_s3(st))) != PF_OK)
		log_error("S3 store %s (bucket %s) refuses a write under "
		    "%s.pf/: %s: %s", b->cfg.endpoint, b->cfg.bucket,
		    b->cfg.prefix, pf_status_message(rc),
		    s3_describe(s3store_s3(st), why, sizeof(why)));
	give(b, st);
	return rc;
}

enum pf_status
backend_s3_open(const struct backend_s3_opts *o, struct backend **out)
{
	struct backend *b;
	enum pf_status rc;

	*out = NULL;
	if ((b = calloc(1, sizeof(*b))) == NULL)
		return PF_ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	snprintf(b->node, sizeof(b->node), "%s",
	    o->node != NULL ? o->node : "paraflowd");
	b->opts.node = b->node;
	b->opts.lease_s = S3STORE_LEASE_S;
	b->opts.wait_s = 3 * S3STORE_LEASE_S;
	if ((rc = configure(b, o)) != PF_OK || (rc = probe(b)) != PF_OK) {
		backend_close(b);
		return rc;
	}
	log_info("storage: S3 bucket %s, prefix \"%s\", at %s", b->cfg.bucket,
	    b->cfg.prefix, b->cfg.endpoint);
	*out = b;
	return PF_OK;
}

uint32_t
backend_min_chunk(const struct backend *b)
{
	return b != NULL ? S3STORE_MIN_CHUNK : PROTO_MIN_CHUNK;
}

void
backend_close(struct backend *b)
{
	struct pooled *p;

	if (b == NULL)
		return;
	while ((p = b->idle) != NULL) {
		b->idle = p->next;
		s3store_close(p->st);
		free(p);
	}
	pthread_mutex_destroy(&b->lock);
	s3_config_clear(&b->cfg);
	free(b);
}

/*
 * Each call below borrows a handle for the one store operation; the
 * store logs its own errors with their detail.
 */
#define WITH_STORE(b, call)					\
	do {							\
		struct s3store *st_ = take(b);			\
		enum pf_status rc_ = PF_ENOMEM;			\
								\
		if (st_ != NULL) {				\
			rc_ = (call);				\
			give((b), st_);				\
		}						\
		return rc_;					\
	} while (0)

enum pf_status
backend_create(struct backend *b, struct s3store_record *r)
{
	WITH_STORE(b, s3store_create(st_, r));
}

enum pf_status
backend_load(struct backend *b, const char *id, struct s3store_record *r)
{
	WITH_STORE(b, s3store_load(st_, id, r));
}

enum pf_status
backend_load_any(struct backend *b, const char *id, struct s3store_record *r)
{
	WITH_STORE(b, s3store_load_any(st_, id, r));
}

enum pf_status
backend_put_chunk(struct backend *b, const struct s3store_record *r,
    uint32_t index, const void *p, size_t n,
    const uint8_t sha256[PF_SHA256_LEN], const uint8_t body[PF_SHA256_LEN])
{
	WITH_STORE(b, s3store_put_chunk(st_, r, index, p, n, sha256, body));
}

enum pf_status
backend_have(struct backend *b, const struct s3store_record *r,
    uint8_t *bitmap)
{
	WITH_STORE(b, s3store_have(st_, r, bitmap));
}

enum pf_status
backend_commit(struct backend *b, const struct s3store_record *r,
    const uint8_t receipt[PF_SHA256_LEN])
{
	WITH_STORE(b, s3store_commit(st_, r, receipt));
}

enum pf_status
backend_cancel(struct backend *b, const struct s3store_record *r)
{
	WITH_STORE(b, s3store_cancel(st_, r));
}

enum pf_status
backend_delete(struct backend *b, const struct s3store_record *r)
{
	WITH_STORE(b, s3store_delete(st_, r));
}

enum pf_status
backend_finished(struct backend *b, const struct s3store_record *r,
    uint64_t *size)
{
	WITH_STORE(b, s3store_head(st_, r, size, NULL));
}

enum pf_status
backend_put_key(struct backend *b, const struct s3store_record *r,
    const uint8_t key[PF_SHA256_LEN])
{
	WITH_STORE(b, s3store_put_key(st_, r, key));
}

enum pf_status
backend_get_key(struct backend *b, const struct s3store_record *r,
    uint8_t key[PF_SHA256_LEN])
{
	WITH_STORE(b, s3store_get_key(st_, r, key));
}

enum pf_status
backend_receipt(struct backend *b, const struct s3store_record *r,
    uint8_t receipt[PF_SHA256_LEN], int64_t *when)
{
	WITH_STORE(b, s3store_receipt(st_, r, receipt, when));
}

enum pf_status
backend_cluster_key(struct backend *b, uint8_t key[PF_SHA256_LEN])
{
	WITH_STORE(b, s3store_cluster_key(st_, key));
}

void
backend_expire(struct backend *b, unsigned ttl_s)
{
	struct s3store_expired ex = { 0, 0 };
	struct s3store *st = take(b);

	if (st == NULL)
		return;
	(void)s3store_expire(st, (int64_t)time(NULL), ttl_s, &ex);
	give(b, st);
	if (ex.sessions > 0 || ex.uploads > 0)
		log_info("S3 store: %u idle sessions and %u orphan uploads "
		    "expired (idle over %u s)", ex.sessions, ex.uploads,
		    ttl_s);
}

/* The gateway's reads (backend.h): listing, object bytes, receipts. */

enum pf_status
backend_list(struct backend *b, s3store_list_fn fn, void *arg)
{
	WITH_STORE(b, s3store_list(st_, fn, arg));
}

enum pf_status
backend_read(struct backend *b, const struct s3store_record *r,
    uint64_t off, uint64_t len, s3_sink_fn sink, void *arg)
{
	WITH_STORE(b, s3store_read(st_, r, off, len, sink, arg));
}
