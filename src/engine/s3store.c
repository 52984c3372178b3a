/* SPDX-License-Identifier: MIT */
/* The S3 session store: sessions, chunks, resume, cancel, listing. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3store_int.h"

#define RECORD_MAX	8192	/* bytes of a record object read */

struct s3store *
s3store_open(const struct s3_config *cfg, const struct s3store_opts *opts)
{
	struct s3store *st;

	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	if ((st->s3 = s3_new(cfg)) == NULL) {
		free(st);
		return NULL;
	}
	st->cfg = cfg;
	st->opts = opts;
	st->lease_s = opts->lease_s ? opts->lease_s : S3STORE_LEASE_S;
	st->wait_s = opts->wait_s ? opts->wait_s : st->lease_s * 3;
	return st;
}

void
s3store_close(struct s3store *st)
{
	if (st == NULL)
		return;
	s3_free(st->s3);
	free(st);
}

struct s3 *
s3store_s3(struct s3store *st)
{
	return st->s3;
}

enum pf_status
s3store_fail(const struct s3store *st, enum pf_status rc, const char *what,
    const char *key)
{
	char line[512];

	log_warn("S3 store: %s %s: %s: %s", what, key, pf_status_name(rc),
	    s3_describe(st->s3, line, sizeof(line)));
	return rc;
}

bool
s3store_key_of(const struct s3store *st, const struct s3store_record *rec,
    const char *what, char *out)
{
	const char *prefix = st->cfg->prefix != NULL ? st->cfg->prefix : "";

	if (s3store_key(out, S3_KEY_MAX + 1, prefix, rec, what))
		return true;
	log_warn("S3 store: session %.64s: no key for %s", rec->id,
	    what != NULL ? what : "its object");
	return false;
}

enum pf_status
s3store_exists(struct s3store *st, const char *key)
{
	return s3_head(st->s3, key, NULL, NULL);
}

/* Collects a small object's bytes, refusing more than fit. */
struct small {
	uint8_t	*p;
	size_t	 cap, n;
};

static bool
to_small(void *arg, const void *p, size_t n)
{
	struct small *sm = arg;

	if (n > sm->cap - sm->n)
		return false;
	memcpy(sm->p + sm->n, p, n);
	sm->n += n;
	return true;
}

enum pf_status
s3store_get_small(struct s3store *st, const char *key, void *p, size_t cap,
    size_t *n)
{
	struct small sm = { .p = p, .cap = cap };
	enum pf_status rc;

	rc = s3_get(st->s3, key, 0, 0, to_small, &sm);
	*n = sm.n;
	return rc;
}

enum pf_status
s3store_create(struct s3store *st, struct s3store_record *rec)
{
	char obj[S3_KEY_MAX + 1], key[S3_KEY_MAX + 1], *text = NULL;
	struct s3store_record seen;
	enum pf_status rc;

	if (rec->chunk_size < S3STORE_MIN_CHUNK) {
		log_warn("S3 store: session %.64s: chunk size %u under the "
		    "store's minimum of %u MiB", rec->id, rec->chunk_size,
		    S3STORE_MIN_CHUNK >> 20);
		return PF_EBADFRAME;
	}
	if (s3store_nchunks(rec) > S3_PART_MAX) {
		log_warn("S3 store: session %.64s: %u chunks, over S3's %d "
		    "parts", rec->id, s3store_nchunks(rec), S3_PART_MAX);
		return PF_ETOOLARGE;
	}
	if (!s3store_key_of(st, rec, NULL, obj) ||
	    !s3store_key_of(st, rec, "record", key))
		return PF_EBADNAME;
	if ((rc = s3_mpu_create(st->s3, obj, rec->upload)) != PF_OK)
		return s3store_fail(st, rc, "create upload", obj);
	if ((text = s3store_record_encode(rec)) == NULL) {
		rc = PF_ENOMEM;
		goto undo;
	}
	rc = s3_put(st->s3, key, text, strlen(text), true, NULL);
	if (rc == PF_OK)
		goto out;
	s3store_fail(st, rc, "write record", key);
	/* An answer lost: the record is ours if it names our upload. */
	if ((rc == PF_ENET || rc == PF_ETIMEOUT) &&
	    s3store_load(st, rec->id, &seen) == PF_OK &&
	    strcmp(seen.upload, rec->upload) == 0) {
		rc = PF_OK;
		goto out;
	}
undo:
	if (s3_mpu_abort(st->s3, obj, rec->upload) != PF_OK)
		s3store_fail(st, PF_EIO, "abort upload", obj);
out:
	free(text);
	return rc;
}

enum pf_status
s3store_load(struct s3store *st, const char *id, struct s3store_record *rec)
{
	enum pf_status rc = s3store_load_any(st, id, rec);

	return rc == PF_OK && rec->deleting ? PF_ENOSESSION : rc;
}

enum pf_status
s3store_load_any(struct s3store *st, const char *id,
    struct s3store_record *rec)
{
	struct s3store_record ask = { 0 };
	char key[S3_KEY_MAX + 1], *text;
	enum pf_status rc;
	size_t n;

	snprintf(ask.id, sizeof(ask.id), "%s", id);
	if (strlen(id) >= sizeof(ask.id) ||
	    !s3store_key_of(st, &ask, "record", key))
		return PF_ENOSESSION;
	if ((text = malloc(RECORD_MAX + 1)) == NULL)
		return PF_ENOMEM;
	rc = s3store_get_small(st, key, text, RECORD_MAX, &n);
	if (rc == PF_OK) {
		rc = s3store_record_decode(text, n, rec);
		if (rc == PF_OK && strcmp(rec->id, id) != 0)
			rc = PF_EIO;
		if (rc != PF_OK)
			log_warn("S3 store: %s: not a session record", key);
	} else if (rc != PF_ENOSESSION)
		s3store_fail(st, rc, "read record", key);
	free(text);
	return rc;
}

/*
 * Claims chunk index for digest sha256 (If-None-Match). A claim already
 * there with the same digest is the same bytes: fine. *wrote tells
 * whether this call made the claim.
 */
static enum pf_status
claim(struct s3store *st, const char *key, uint32_t index,
    const uint8_t sha256[PF_SHA256_LEN], bool *wrote)
{
	uint8_t had[PF_SHA256_LEN + 1];
	enum pf_status rc, got;
	size_t n;

	*wrote = false;
	if ((rc = s3_put(st->s3, key, sha256, PF_SHA256_LEN, true,
	    NULL)) == PF_OK) {
		*wrote = true;
		return PF_OK;
	}
	if (rc != PF_EBUSY && rc != PF_ENET && rc != PF_ETIMEOUT)
		return s3store_fail(st, rc, "claim", key);
	got = s3store_get_small(st, key, had, sizeof(had), &n);
	if (got == PF_ENOSESSION && rc == PF_EBUSY) {
		/* Claimed, then swept by a cancel. */
		log_warn("S3 store: %s: gone: the session was cancelled", key);
		return PF_ECANCELLED;
	}
	if (got != PF_OK)
		return s3store_fail(st, rc, "claim", key);
	if (n != PF_SHA256_LEN || !pf_equal_ct(had, sha256, PF_SHA256_LEN)) {
		log_warn("S3 store: chunk %u was stored with another digest: "
		    "refused", index);
		return PF_ECHECKSUM;
	}
	return PF_OK;
}

enum pf_status
s3store_put_chunk(struct s3store *st, const struct s3store_record *rec,
    uint32_t index, const void *p, size_t n,
    const uint8_t sha256[PF_SHA256_LEN], const uint8_t body[PF_SHA256_LEN])
{
	char obj[S3_KEY_MAX + 1], key[S3_KEY_MAX + 1], etag[S3_ETAG_MAX];
	char what[32 + 2 * PF_SHA256_LEN], hex[2 * PF_SHA256_LEN + 1];
	enum pf_status rc;
	bool wrote;

	if (index >= s3store_nchunks(rec) ||
	    n != s3store_chunk_len(rec, index)) {
		log_warn("S3 store: session %.64s: chunk %u of %zu bytes does "
		    "not fit", rec->id, index, n);
		return PF_EBADFRAME;
	}
	snprintf(what, sizeof(what), "claim/%u", index);
	if (!s3store_key_of(st, rec, NULL, obj) ||
	    !s3store_key_of(st, rec, what, key))
		return PF_EBADNAME;
	if ((rc = claim(st, key, index, sha256, &wrote)) != PF_OK)
		return rc;
	rc = s3_mpu_put_part(st->s3, obj, rec->upload, index + 1, p, n,
	    body != NULL ? body : sha256, etag);
	if (rc == PF_ENOSESSION) {
		/* The upload is gone: cancelled (or expired). A claim this
		   call made after the cancel swept the keys goes too. */
		if (wrote)
			s3_delete(st->s3, key);
		log_warn("S3 store: session %.64s: chunk %u after a cancel",
		    rec->id, index);
		return PF_ECANCELLED;
	}
	if (rc != PF_OK)
		return s3store_fail(st, rc, "put part of", obj);
	pf_hex_encode(sha256, PF_SHA256_LEN, hex);
	snprintf(what, sizeof(what), "sums/%u.%s", index, hex);
	if (!s3store_key_of(st, rec, what, key))
		return PF_EBADNAME;
	/* The sum only saves COMMIT reading the claim: the part is held. */
	if ((rc = s3_put(st->s3, key, "", 0, false, NULL)) != PF_OK)
		return s3store_fail(st, rc, "write sum", key);
	return PF_OK;
}

struct have_ctx {
	const struct s3store_record	*rec;
	uint8_t				*bitmap;
};

static bool
mark(void *arg, const struct s3_part *part)
{
	struct have_ctx *h = arg;

	if (!s3store_mark_part(h->rec, h->bitmap, part->number, part->size))
		log_warn("S3 store: session %.64s: part %u of %llu bytes "
		    "left out", h->rec->id, part->number,
		    (unsigned long long)part->size);
	return true;
}

enum pf_status
s3store_have(struct s3store *st, const struct s3store_record *rec,
    uint8_t *bitmap)
{
	struct have_ctx h = { rec, bitmap };
	char obj[S3_KEY_MAX + 1];
	uint32_t n = s3store_nchunks(rec), i;
	enum pf_status rc;
	uint64_t size;

	memset(bitmap, 0, n / 8 + 1);
	if (!s3store_key_of(st, rec, NULL, obj))
		return PF_EBADNAME;
	rc = s3_mpu_list_parts(st->s3, obj, rec->upload, mark, &h);
	if (rc == PF_OK)
		return PF_OK;
	if (rc != PF_ENOSESSION)
		return s3store_fail(st, rc, "list parts", obj);
	/* The upload is gone: completed (every chunk held) or cancelled. */
	if (s3_head(st->s3, obj, &size, NULL) == PF_OK && size == rec->size) {
		for (i = 0; i < n; i++)
			bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
		return PF_OK;
	}
	log_warn("S3 store: session %.64s: no upload: cancelled", rec->id);
	return PF_ECANCELLED;
}

/* Collects up to S3_DELETE_MAX claim/, sums/ and key keys of a listing. */
struct batch {
	char	**keys;
	size_t	  n, skip;	/* skip: bytes of .pf/s/<id>/ */
};

static bool
collect(void *arg, const struct s3_object *o)
{
	struct batch *b = arg;
	const char *leaf = o->key + b->skip;

	/* The key goes too: a finished or cancelled session has no JOIN. */
	if (o->is_prefix || (strncmp(leaf, "claim/", 6) != 0 &&
	    strncmp(leaf, "sums/", 5) != 0 && strcmp(leaf, "key") != 0))
		return true;
	if ((b->keys[b->n] = strdup(o->key)) == NULL)
		return false;
	return ++b->n < S3_DELETE_MAX;
}

enum pf_status
s3store_sweep(struct s3store *st, const struct s3store_record *rec)
{
	struct batch b = { 0 };
	char prefix[S3_KEY_MAX + 1];
	enum pf_status rc;
	size_t i;

	if (!s3store_key_of(st, rec, "", prefix))
		return PF_EBADNAME;
	b.skip = strlen(prefix);
	if ((b.keys = calloc(S3_DELETE_MAX, sizeof(*b.keys))) == NULL)
		return PF_ENOMEM;
	do {
		b.n = 0;
		rc = s3_list(st->s3, prefix, NULL, collect, &b);
		if (rc == PF_ECANCELLED && b.n == S3_DELETE_MAX)
			rc = PF_OK;
		if (rc != PF_OK)
			s3store_fail(st, rc, "list", prefix);
		if (rc == PF_OK && b.n > 0 && (rc = s3_delete_keys(st->s3,
		    (const char *const *)b.keys, b.n)) != PF_OK)
			s3store_fail(st, rc, "delete keys under", prefix);
		for (i = 0; i < b.n; i++)
			free(b.keys[i]);
	} while (rc == PF_OK && b.n == S3_DELETE_MAX);
	free(b.keys);
	return rc;
}

enum pf_status
s3store_cancel(struct s3store *st, const struct s3store_record *rec)
{
	char obj[S3_KEY_MAX + 1], key[S3_KEY_MAX + 1];
	const char *node = st->opts->node != NULL ? st->opts->node : "";
	enum pf_status rc;

	if (!s3store_key_of(st, rec, NULL, obj) ||
	    !s3store_key_of(st, rec, "commit", key))
		return PF_EBADNAME;
	if ((rc = s3store_exists(st, key)) == PF_OK) {
		log_warn("S3 store: session %.64s: cancel after a commit "
		    "began: refused", rec->id);
		return PF_EBUSY;
	}
	if (rc != PF_ENOSESSION)
		return s3store_fail(st, rc, "look for", key);
	if (!s3store_key_of(st, rec, "cancel", key))
		return PF_EBADNAME;
	rc = s3_put(st->s3, key, node, strlen(node), true, NULL);
	if (rc != PF_OK && rc != PF_EBUSY)
		return s3store_fail(st, rc, "write", key);
	rc = s3_mpu_abort(st->s3, obj, rec->upload);
	if (rc != PF_OK && rc != PF_ENOSESSION)
		return s3store_fail(st, rc, "abort upload", obj);
	if (rc == PF_ENOSESSION && s3_head(st->s3, obj, NULL, NULL) == PF_OK) {
		/* A COMMIT that began after our look completed first: the
		   session is finished, and stays so. */
		s3_delete(st->s3, key);
		log_warn("S3 store: session %.64s: completed before the "
		    "cancel: refused", rec->id);
		return PF_EBUSY;
	}
	if ((rc = s3store_sweep(st, rec)) != PF_OK)
		return rc;
	/* The cancel goes last: until then a COMMIT still finds it. */
	if (!s3store_key_of(st, rec, "record", obj))
		return PF_EBADNAME;
	if ((rc = s3_delete(st->s3, obj)) != PF_OK)
		return s3store_fail(st, rc, "delete", obj);
	if ((rc = s3_delete(st->s3, key)) != PF_OK)
		return s3store_fail(st, rc, "delete", key);
	return PF_OK;
}

/* Deletes key; one already gone is fine (a step run again). */
static enum pf_status
drop(struct s3store *st, const char *key)
{
	enum pf_status rc = s3_delete(st->s3, key);

	if (rc != PF_OK && rc != PF_ENOSESSION)
		return s3store_fail(st, rc, "delete", key);
	return PF_OK;
}

/* Rewrites rec's record as a tombstone if it is finished: else PF_EBUSY. */
static enum pf_status
tombstone(struct s3store *st, const struct s3store_record *rec,
    const char *obj, const char *key)
{
	struct s3store_record tomb = *rec;
	enum pf_status rc;
	uint64_t size;
	char *text;

	rc = s3_head(st->s3, obj, &size, NULL);
	if (rc == PF_ENOSESSION || (rc == PF_OK && size != rec->size)) {
		log_warn("S3 store: session %.64s: DELETE before it is "
		    "finished: refused", rec->id);
		return PF_EBUSY;
	}
	if (rc != PF_OK)
		return s3store_fail(st, rc, "head", obj);
	tomb.deleting = true;
	if ((text = s3store_record_encode(&tomb)) == NULL)
		return PF_ENOMEM;
	if ((rc = s3_put(st->s3, key, text, strlen(text), false, NULL)) !=
	    PF_OK)
		s3store_fail(st, rc, "write tombstone", key);
	free(text);
	return rc;
}

enum pf_status
s3store_delete(struct s3store *st, const struct s3store_record *rec)
{
	static const char *const marks[] = { "commit", "cancel" };
	char obj[S3_KEY_MAX + 1], key[S3_KEY_MAX + 1];
	enum pf_status rc;

	if (!s3store_key_of(st, rec, NULL, obj) ||
	    !s3store_key_of(st, rec, "record", key))
		return PF_EBADNAME;
	/* From the tombstone on, no node tells of the session: then the
	   object can go, and nothing is ever listed finished without it. */
	if (!rec->deleting && (rc = tombstone(st, rec, obj, key)) != PF_OK)
		return rc;
	if ((rc = drop(st, obj)) != PF_OK ||
	    (rc = s3store_sweep(st, rec)) != PF_OK)
		return rc;
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		if (!s3store_key_of(st, rec, marks[i], obj))
			return PF_EBADNAME;
		if ((rc = drop(st, obj)) != PF_OK)
			return rc;
	}
	/* The tombstone goes last: until then a call again finds it. */
	if ((rc = drop(st, key)) != PF_OK)
		return rc;
	log_info("S3 store: session %.64s deleted", rec->id);
	return PF_OK;
}

enum pf_status
s3store_head(struct s3store *st, const struct s3store_record *rec,
    uint64_t *size, char *etag)
{
	char obj[S3_KEY_MAX + 1];
	enum pf_status rc;

	if (!s3store_key_of(st, rec, NULL, obj))
		return PF_EBADNAME;
	if ((rc = s3_head(st->s3, obj, size, etag)) != PF_OK &&
	    rc != PF_ENOSESSION)
		s3store_fail(st, rc, "head", obj);
	return rc;
}

enum pf_status
s3store_read(struct s3store *st, const struct s3store_record *rec,
    uint64_t off, uint64_t len, s3_sink_fn sink, void *arg)
{
	char obj[S3_KEY_MAX + 1];
	enum pf_status rc;

	if (!s3store_key_of(st, rec, NULL, obj))
		return PF_EBADNAME;
	if ((rc = s3_get(st->s3, obj, off, len, sink, arg)) != PF_OK)
		s3store_fail(st, rc, "read", obj);
	return rc;
}

/* The ids of the sessions in the bucket, collected before any is read:
   a listing's callback makes no request of its own. */
struct ids {
	char	(*v)[S3STORE_ID_MAX];
	size_t	  n, cap;
	size_t	  skip;		/* bytes of PREFIX.pf/s/ */
};

static bool
add_id(void *arg, const struct s3_object *o)
{
	struct ids *ids = arg;
	const char *id = o->key + ids->skip;
	size_t n = strlen(o->key) - ids->skip;
	void *v;

	if (!o->is_prefix || n < 2 || n > S3STORE_ID_MAX)
		return true;
	if (ids->n == ids->cap) {
		ids->cap = ids->cap ? ids->cap * 2 : 64;
		if ((v = realloc(ids->v, ids->cap * sizeof(*ids->v))) == NULL)
			return false;
		ids->v = v;
	}
	memcpy(ids->v[ids->n], id, n - 1);
	ids->v[ids->n][n - 1] = '\0';
	if (s3store_id_ok(ids->v[ids->n]))
		ids->n++;
	return true;
}

/* Which of record, commit and cancel a session's listing shows. */
struct marks {
	size_t	skip;
	bool	commit, cancel;
};

static bool
add_mark(void *arg, const struct s3_object *o)
{
	struct marks *m = arg;
	const char *leaf = o->key + m->skip;

	if (!o->is_prefix && strcmp(leaf, "commit") == 0)
		m->commit = true;
	else if (!o->is_prefix && strcmp(leaf, "cancel") == 0)
		m->cancel = true;
	return true;
}

/* Where session rec stands: one listing of its keys, one HEAD. */
static enum pf_status
state_of(struct s3store *st, const struct s3store_record *rec,
    enum s3store_state *state)
{
	char key[S3_KEY_MAX + 1];
	struct marks m = { 0 };
	enum pf_status rc;
	uint64_t size;

	if (!s3store_key_of(st, rec, "", key))
		return PF_EBADNAME;
	m.skip = strlen(key);
	if ((rc = s3_list(st->s3, key, "/", add_mark, &m)) != PF_OK)
		return s3store_fail(st, rc, "list", key);
	*state = S3STORE_ONGOING;
	if (m.cancel)
		*state = S3STORE_CANCELLING;
	else if (m.commit)
		*state = s3store_head(st, rec, &size, NULL) == PF_OK &&
		    size == rec->size ? S3STORE_FINISHED :
		    S3STORE_COMMITTING;
	return PF_OK;
}

enum pf_status
s3store_list(struct s3store *st, s3store_list_fn fn, void *arg)
{
	struct s3store_record rec;
	struct ids ids = { 0 };
	enum s3store_state state;
	char prefix[S3_KEY_MAX + 1];
	enum pf_status rc;
	size_t i;

	snprintf(prefix, sizeof(prefix), "%s.pf/s/",
	    st->cfg->prefix != NULL ? st->cfg->prefix : "");
	ids.skip = strlen(prefix);
	if ((rc = s3_list(st->s3, prefix, "/", add_id, &ids)) != PF_OK) {
		s3store_fail(st, rc, "list", prefix);
		goto out;
	}
	for (i = 0; i < ids.n; i++) {
		rc = s3store_load_any(st, ids.v[i], &rec);
		if (rc == PF_ENOSESSION || rc == PF_EIO)
			continue;
		state = S3STORE_DELETING;
		if (rc == PF_OK && !rec.deleting)
			rc = state_of(st, &rec, &state);
		if (rc != PF_OK)
			goto out;
		if (!fn(arg, &rec, state)) {
			rc = PF_ECANCELLED;
			goto out;
		}
	}
	rc = PF_OK;
out:
	free(ids.v);
	return rc;
}
