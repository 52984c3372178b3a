/* SPDX-License-Identifier: MIT */
/*
 * The store's view for the gateway (engine.h, "The store's view"): the
 * sessions of the whole bucket, listed at most every few seconds and
 * kept, finished objects read by ranged GETs, cancels, store metrics.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "store.h"
#include "clock.h"
#include "engine_int.h"
#include "history.h"
#include "log.h"
#include "registry.h"

_Static_assert(ENGINE_STORE_OPS == S3_METRIC_OPS &&
    ENGINE_STORE_CODES == S3_METRIC_CODES &&
    ENGINE_STORE_BUCKETS == S3_METRIC_BUCKETS, "the store's metrics fit");

/* A listed session: its view, and the chunks held of an ongoing one. */
struct entry {
	struct engine_session_info	 info;
	uint8_t				*bitmap;	/* ongoing only */
};

/*
 * The listing kept. One engine with a store per process (paraflowd), so
 * one listing: it follows the backend it was made from.
 */
struct view {
	pthread_mutex_t		 lock;		/* guards the fields */
	pthread_mutex_t		 listing;	/* one lister at a time */
	const struct backend	*of;
	struct entry		*v;
	size_t			 n;
	uint64_t		 at_us;		/* when listed; 0: never */
	int64_t			 began;		/* Unix s: listing began */
	uint64_t		 gen;
};

static struct view view = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0,
	0, 0, 0
};

/* What one listing gathers. */
struct gather {
	struct backend	*b;
	struct entry	*v;
	size_t		 n, cap;
	const struct view *old;		/* for receipts already read */
	bool		 failed;
};

bool
engine_store_shared(struct engine *e)
{
	return store_shared(e->store);
}

/* The bucket's side of e's store, or NULL (the storage directory). */
static struct backend *
bucket(const struct engine *e)
{
	return store_backend(e->store);
}

static void
entries_free(struct entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].bitmap);
	free(v);
}

/* The bitmap's chunks held, and their bytes, into s. */
static void
count_held(const struct s3store_record *rec, const uint8_t *bitmap,
    struct engine_session_info *s)
{
	for (uint32_t i = 0; i < s->chunks_total; i++)
		if (bitmap[i / 8] & (1u << (i % 8))) {
			s->chunks_acked++;
			s->bytes_received += s3store_chunk_len(rec, i);
		}
}

/* The finished entry of id in the old listing, or NULL (lock held). */
static const struct entry *
old_finished(const struct view *old, const char *id)
{
	for (size_t i = 0; old != NULL && i < old->n; i++)
		if (old->v[i].info.state == ENGINE_COMPLETE &&
		    strcmp(old->v[i].info.id, id) == 0)
			return &old->v[i];
	return NULL;
}

/* A finished session's receipt and time from its commit object into s. */
static bool
finished_receipt(struct backend *b, const struct s3store_record *rec,
    struct engine_session_info *s)
{
	uint8_t receipt[PF_SHA256_LEN];

	if (backend_receipt(b, rec, receipt, &s->finished) != PF_OK)
		return false;
	pf_hex_encode(receipt, sizeof(receipt), s->digest);
	return s->finished > 0;
}

/* The view of rec in state, with what the store holds of it, into e. */
static void
fill(struct backend *b, const struct view *old,
    const struct s3store_record *rec, enum s3store_state state,
    struct entry *e)
{
	struct engine_session_info *s = &e->info;
	const struct entry *was;

	memset(e, 0, sizeof(*e));
	/* Callers pass only ids of ENGINE_ID_LEN (UUIDs). */
	memcpy(s->id, rec->id, ENGINE_ID_LEN);
	snprintf(s->user, sizeof(s->user), "%s", rec->user);
	snprintf(s->name, sizeof(s->name), "%s", rec->name);
	s->size = rec->size;
	s->chunk_size = rec->chunk_size;
	s->chunks_total = s3store_nchunks(rec);
	s->created = s->updated = rec->created;
	s->state = state == S3STORE_FINISHED ? ENGINE_COMPLETE :
	    state == S3STORE_COMMITTING ? ENGINE_ASSEMBLING :
	    state == S3STORE_CANCELLING ? ENGINE_CANCELLED : ENGINE_RECEIVING;
	if (s->state == ENGINE_CANCELLED)
		s->error = PF_ECANCELLED;
	if (s->state == ENGINE_COMPLETE) {
		s->chunks_acked = s->chunks_total;
		s->bytes_received = s->size;
		/* A finished session never changes: one read of it. */
		if ((was = old_finished(old, s->id)) != NULL) {
			memcpy(s->digest, was->info.digest, sizeof(s->digest));
			s->finished = s->updated = was->info.finished;
		} else if (finished_receipt(b, rec, s))
			s->updated = s->finished;
		if (s->finished == 0)
			s->finished = s->created;
		return;
	}
	if (s->state != ENGINE_RECEIVING ||
	    (e->bitmap = calloc(s->chunks_total / 8 + 1, 1)) == NULL)
		return;
	if (backend_have(b, rec, e->bitmap) == PF_OK)
		count_held(rec, e->bitmap, s);
}

static bool
gather_one(void *arg, const struct s3store_record *rec,
    enum s3store_state state)
{
	struct gather *g = arg;
	struct entry *v;

	/* The gateway's ids are UUIDs: the engine makes no other. A
	   session whose DELETE began is gone already. */
	if (strlen(rec->id) != ENGINE_ID_LEN || state == S3STORE_DELETING)
		return true;
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		if ((v = realloc(g->v, g->cap * sizeof(*v))) == NULL) {
			g->failed = true;
			return false;
		}
		g->v = v;
	}
	fill(g->b, g->old, rec, state, &g->v[g->n++]);
	return true;
}

/* True if a and b show the same sessions. */
static bool
same_listing(const struct entry *a, size_t na, const struct entry *b,
    size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (memcmp(&a[i].info, &b[i].info, sizeof(a[i].info)) != 0)
			return false;
	return true;
}

static int
entry_by_id(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return strcmp(x->info.id, y->info.id);
}

/*
 * Lists the bucket into the view, its entries by id; the caller holds
 * view.listing. False if the store did not list (the view stays).
 */
static bool
relist(struct backend *b)
{
	struct gather g = { .b = b, .old = &view };
	int64_t began = (int64_t)time(NULL);
	bool same;

	/* Only this thread replaces the view's entries: reading them
	   without view.lock is safe here. */
	if (backend_list(b, gather_one, &g) != PF_OK || g.failed) {
		entries_free(g.v, g.n);
		pthread_mutex_lock(&view.lock);
		if (view.of != b) {	/* another store's listing: gone */
			entries_free(view.v, view.n);
			view.v = NULL;
			view.n = 0;
			view.of = b;
		}
		view.at_us = pf_now_us();	/* try again after the ttl */
		pthread_mutex_unlock(&view.lock);
		return false;
	}
	if (g.n > 1)
		qsort(g.v, g.n, sizeof(*g.v), entry_by_id);
	same = view.of == b && same_listing(view.v, view.n, g.v, g.n);
	pthread_mutex_lock(&view.lock);
	if (same) {
		entries_free(g.v, g.n);
	} else {
		entries_free(view.v, view.n);
		view.v = g.v;
		view.n = g.n;
		view.gen++;
	}
	view.of = b;
	view.at_us = pf_now_us();
	view.began = began;
	pthread_mutex_unlock(&view.lock);
	return true;
}

/* True if id is in the view (lock held). */
static bool
in_view(const char *id)
{
	struct entry key;

	snprintf(key.info.id, sizeof(key.info.id), "%s", id);
	return view.n > 0 && bsearch(&key, view.v, view.n, sizeof(*view.v),
	    entry_by_id) != NULL;
}

/*
 * Takes out of e's history each finished session the listing no longer
 * shows (deleted, through any node): one finished before the listing
 * began would be in it. Failures and cancels stay: the store keeps none.
 */
static void
prune_history(struct engine *e)
{
	struct history *h = registry_history(e->registry);
	struct engine_session_info *v = NULL, gone;
	size_t n = 0;
	bool keep;

	if (history_copy_since(h, INT64_MIN, &v, 0, &n) != PF_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		if (v[i].state != ENGINE_COMPLETE)
			continue;
		pthread_mutex_lock(&view.lock);
		keep = v[i].finished + 1 >= view.began || in_view(v[i].id);
		pthread_mutex_unlock(&view.lock);
		if (!keep && history_take(h, v[i].id, NULL, &gone))
			log_info("session %s is no longer in the store: "
			    "deleted through another node", gone.id);
	}
	free(v);
}

uint64_t
engine_store_refresh(struct engine *e)
{
	const uint64_t ttl = (uint64_t)ENGINE_STORE_LIST_TTL_S * 1000000;
	uint64_t gen;
	bool stale, have;

	if (bucket(e) == NULL)
		return 0;
	pthread_mutex_lock(&view.lock);
	have = view.of == bucket(e) && view.at_us != 0;
	stale = !have || pf_now_us() - view.at_us >= ttl;
	pthread_mutex_unlock(&view.lock);
	/*
	 * One lister at a time. While it lists, the others go on with the
	 * listing there is (a slow store holds up one request, not every
	 * list); only without any do they wait for it.
	 */
	if (stale && (have ? pthread_mutex_trylock(&view.listing) == 0 :
	    pthread_mutex_lock(&view.listing) == 0)) {
		pthread_mutex_lock(&view.lock);
		stale = view.of != bucket(e) || view.at_us == 0 ||
		    pf_now_us() - view.at_us >= ttl;
		pthread_mutex_unlock(&view.lock);
		if (stale && relist(bucket(e)))
			prune_history(e);
		pthread_mutex_unlock(&view.listing);
	}
	pthread_mutex_lock(&view.lock);
	/* Never 0, so that a listing is told from no store at all. */
	gen = view.gen + 1;
	pthread_mutex_unlock(&view.lock);
	return gen;
}

enum pf_status
engine_store_sessions(struct engine *e, struct engine_session_info **out,
    size_t *n)
{
	enum pf_status rc = PF_OK;

	*out = NULL;
	*n = 0;
	if (bucket(e) == NULL)
		return PF_OK;
	pthread_mutex_lock(&view.lock);
	if (view.of == bucket(e) && view.n > 0) {
		if ((*out = malloc(view.n * sizeof(**out))) == NULL)
			rc = PF_ENOMEM;
		for (size_t i = 0; *out != NULL && i < view.n; i++)
			(*out)[i] = view.v[i].info;
		*n = *out != NULL ? view.n : 0;
	}
	pthread_mutex_unlock(&view.lock);
	return rc;
}

/*
 * Session id of the listing into *s and, if map is not NULL and it is
 * ongoing, its chunk map as a new string; false if it is not listed.
 */
static bool
listed(const struct engine *e, const char *id,
    struct engine_session_info *s, char **map, bool *mapped)
{
	bool found = false;

	*mapped = false;
	pthread_mutex_lock(&view.lock);
	for (size_t i = 0; view.of == bucket(e) && i < view.n && !found;
	    i++) {
		const struct entry *x = &view.v[i];

		if (strcmp(x->info.id, id) != 0)
			continue;
		found = true;
		*s = x->info;
		if (map == NULL || x->info.state != ENGINE_RECEIVING ||
		    x->bitmap == NULL || (*map = malloc(s->chunks_total + 1))
		    == NULL)
			continue;
		for (uint32_t k = 0; k < s->chunks_total; k++)
			(*map)[k] = x->bitmap[k / 8] & (1u << (k % 8)) ?
			    ENGINE_CHUNK_DONE : ENGINE_CHUNK_PENDING;
		(*map)[s->chunks_total] = '\0';
		*mapped = true;
	}
	pthread_mutex_unlock(&view.lock);
	return found;
}

/*
 * Session id read from the store itself (not listed yet): its record,
 * then the object (finished) or the parts (ongoing). A committing or
 * cancelling one shows as ongoing until the next listing.
 */
static enum pf_status
look_up(struct engine *e, const char *id, struct entry *x)
{
	struct s3store_record rec;
	enum pf_status rc;
	uint64_t size;

	if (strlen(id) != ENGINE_ID_LEN)
		return PF_ENOSESSION;
	if ((rc = backend_load(bucket(e), id, &rec)) != PF_OK)
		return rc;
	rc = backend_finished(bucket(e), &rec, &size);
	fill(bucket(e), NULL, &rec, rc == PF_OK && size == rec.size ?
	    S3STORE_FINISHED : S3STORE_ONGOING, x);
	return PF_OK;
}

enum pf_status
engine_store_session(struct engine *e, const char *id,
    struct engine_session_info *out)
{
	struct entry x = { .bitmap = NULL };
	enum pf_status rc;
	bool mapped;

	if (bucket(e) == NULL)
		return PF_ENOSESSION;
	(void)engine_store_refresh(e);
	if (listed(e, id, out, NULL, &mapped))
		return PF_OK;
	if ((rc = look_up(e, id, &x)) == PF_OK)
		*out = x.info;
	free(x.bitmap);
	return rc;
}

enum pf_status
engine_store_chunk_map(struct engine *e, const char *id, char **out)
{
	struct engine_session_info s;
	bool mapped;

	*out = NULL;
	if (bucket(e) == NULL)
		return PF_ENOSESSION;
	(void)engine_store_refresh(e);
	if (!listed(e, id, &s, out, &mapped) &&
	    engine_store_session(e, id, &s) != PF_OK)
		return PF_ENOSESSION;
	if (mapped)
		return PF_OK;
	/* Not ongoing: all held (finished, committing) or none. */
	if ((*out = malloc(s.chunks_total + 1)) == NULL)
		return PF_ENOMEM;
	memset(*out, s.state == ENGINE_CANCELLED ? ENGINE_CHUNK_PENDING :
	    s.state == ENGINE_RECEIVING ? ENGINE_CHUNK_PENDING :
	    ENGINE_CHUNK_DONE, s.chunks_total);
	(*out)[s.chunks_total] = '\0';
	return PF_OK;
}

/*
 * The record of id if user (NULL: anyone) owns it: else PF_ENOSESSION.
 * tomb: a tombstone too (its DELETE to finish).
 */
static enum pf_status
owned(struct engine *e, const char *id, const char *user,
    struct s3store_record *rec, bool tomb)
{
	enum pf_status rc;

	if (bucket(e) == NULL || strlen(id) != ENGINE_ID_LEN)
		return PF_ENOSESSION;
	if ((rc = tomb ? backend_load_any(bucket(e), id, rec) :
	    backend_load(bucket(e), id, rec)) != PF_OK)
		return rc;
	return user == NULL || strcmp(rec->user, user) == 0 ? PF_OK :
	    PF_ENOSESSION;
}

enum pf_status
engine_store_remove(struct engine *e, const char *id, const char *user,
    bool *deleted, char owner[ENGINE_MAX_USER + 1])
{
	struct engine_session_info gone;
	struct s3store_record rec;
	enum pf_status rc;

	*deleted = false;
	owner[0] = '\0';
	if ((rc = owned(e, id, user, &rec, true)) != PF_OK)
		return rc;
	snprintf(owner, ENGINE_MAX_USER + 1, "%s", rec.user);
	/* A cancel refuses once a commit began; a finished one is
	   deleted, a committing one refused again (PF_EBUSY). */
	rc = rec.deleting ? PF_EBUSY : backend_cancel(bucket(e), &rec);
	if (rc == PF_EBUSY && (rc = backend_delete(bucket(e), &rec)) ==
	    PF_OK)
		*deleted = true;
	if (rc != PF_OK)
		return rc;
	log_info("session %s %s in the store over HTTP by %s", id,
	    *deleted ? "deleted" : "cancelled", user != NULL ? user :
	    "an admin");
	/* This node's own entry of it goes at once, the other nodes' at
	   their next listing (prune_history). */
	if (*deleted)
		(void)history_take(registry_history(e->registry), id, NULL,
		    &gone);
	/* The next list shows it gone, not in the old state. */
	pthread_mutex_lock(&view.lock);
	view.at_us = 0;
	pthread_mutex_unlock(&view.lock);
	return PF_OK;
}

struct engine_store_file {
	struct backend		*b;
	struct s3store_record	 rec;
};

enum pf_status
engine_store_open(struct engine *e, const char *id, const char *user,
    struct engine_store_file **out, struct engine_session_info *info)
{
	struct engine_store_file *f;
	struct entry x = { .bitmap = NULL };
	enum pf_status rc;
	uint64_t size;

	*out = NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return PF_ENOMEM;
	f->b = bucket(e);
	if ((rc = owned(e, id, user, &f->rec, false)) != PF_OK)
		goto out;
	rc = backend_finished(f->b, &f->rec, &size);
	if (rc == PF_ENOSESSION || (rc == PF_OK && size != f->rec.size)) {
		rc = PF_EBUSY;
		goto out;
	}
	if (rc != PF_OK)
		goto out;
	fill(f->b, NULL, &f->rec, S3STORE_FINISHED, &x);
	*info = x.info;
	if (info->digest[0] == '\0') {
		rc = PF_EIO;	/* a finished object has its receipt */
		goto out;
	}
	*out = f;
	f = NULL;
out:
	free(f);
	return rc;
}

/* Where a read's bytes go: p, at most left more. */
struct fill_buf {
	uint8_t	*p;
	size_t	 left;
};

static bool
to_buf(void *arg, const void *p, size_t n)
{
	struct fill_buf *fb = arg;

	if (n > fb->left)
		return false;
	memcpy(fb->p, p, n);
	fb->p += n;
	fb->left -= n;
	return true;
}

enum pf_status
engine_store_read(struct engine_store_file *f, uint64_t off, void *p,
    size_t n)
{
	struct fill_buf fb = { p, n };
	enum pf_status rc;

	if (n == 0)
		return PF_OK;
	rc = backend_read(f->b, &f->rec, off, n, to_buf, &fb);
	if (rc == PF_OK && fb.left != 0) {
		log_warn("session %s: the store gave %zu of %zu bytes at %llu",
		    f->rec.id, n - fb.left, n, (unsigned long long)off);
		rc = PF_EIO;
	}
	return rc;
}

void
engine_store_close(struct engine_store_file *f)
{
	free(f);
}

void
engine_store_stats(struct engine *e, struct engine_store_stats *out)
{
	struct s3_metrics m;

	(void)e;
	s3_metrics_get(&m);
	memcpy(out->requests, m.requests, sizeof(out->requests));
	memcpy(out->hist, m.hist, sizeof(out->hist));
	memcpy(out->sum_us, m.sum_us, sizeof(out->sum_us));
	memcpy(out->bounds_us, s3_metric_bounds_us, sizeof(out->bounds_us));
	for (unsigned i = 0; i < ENGINE_STORE_OPS; i++)
		out->ops[i] = s3_metric_op_name(i);
	for (unsigned i = 0; i < ENGINE_STORE_CODES; i++)
		out->codes[i] = s3_metric_code_name(i);
}
