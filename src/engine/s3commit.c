/* SPDX-License-Identifier: MIT */
/*
 * COMMIT on the S3 session store: the digests gathered from the bucket,
 * the receipt checked, then one node (the one whose `commit` object was
 * written first, or that took a lapsed one over) completes the upload.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"
#include "proto.h"
#include "s3store_int.h"

#define COMMIT_MAX	1024	/* bytes of a commit object read */
#define POLL_MS		200	/* between looks at another's commit */

/* What a COMMIT gathers: each chunk's digest and part. */
struct gather {
	const struct s3store_record	*rec;
	uint32_t			 n;
	uint8_t				*digests;	/* n * 32 */
	uint8_t				*have;		/* digest known */
	struct s3_part			*parts;		/* n, by index */
	size_t				 skip;		/* bytes of the
							   sums prefix */
	bool				 conflict;
};

static bool
on_sum(void *arg, const struct s3_object *o)
{
	struct gather *g = arg;
	uint8_t d[PF_SHA256_LEN];
	uint32_t i;

	if (o->is_prefix || strlen(o->key) < g->skip ||
	    !s3store_parse_sum(o->key + g->skip, &i, d) || i >= g->n)
		return true;
	if (g->have[i] && memcmp(g->digests + (size_t)i * PF_SHA256_LEN, d,
	    PF_SHA256_LEN) != 0)
		g->conflict = true;
	memcpy(g->digests + (size_t)i * PF_SHA256_LEN, d, PF_SHA256_LEN);
	g->have[i] = 1;
	return true;
}

static bool
on_part(void *arg, const struct s3_part *p)
{
	struct gather *g = arg;

	if (p->number >= 1 && p->number <= g->n &&
	    p->size == s3store_chunk_len(g->rec, p->number - 1))
		g->parts[p->number - 1] = *p;
	return true;
}

/* The digests: the sums listing, then the claim of any gap (a node that
   died between the part and its sum). PF_EPROTO if a chunk has none. */
static enum pf_status
gather_digests(struct s3store *st, struct gather *g)
{
	char key[S3_KEY_MAX + 1], what[32];
	enum pf_status rc;
	uint32_t i;
	size_t n;

	if (!s3store_key_of(st, g->rec, "sums/", key))
		return PF_EBADNAME;
	g->skip = strlen(key);
	if ((rc = s3_list(st->s3, key, NULL, on_sum, g)) != PF_OK)
		return s3store_fail(st, rc, "list", key);
	if (g->conflict) {
		log_warn("S3 store: session %.64s: two sums for one chunk",
		    g->rec->id);
		return PF_EIO;
	}
	for (i = 0; i < g->n; i++) {
		if (g->have[i])
			continue;
		snprintf(what, sizeof(what), "claim/%u", i);
		if (!s3store_key_of(st, g->rec, what, key))
			return PF_EBADNAME;
		rc = s3store_get_small(st, key, g->digests +
		    (size_t)i * PF_SHA256_LEN, PF_SHA256_LEN, &n);
		if (rc == PF_ENOSESSION || (rc == PF_OK &&
		    n != PF_SHA256_LEN)) {
			log_warn("S3 store: session %.64s: chunk %u of %u "
			    "missing", g->rec->id, i, g->n);
			return PF_EPROTO;
		}
		if (rc != PF_OK)
			return s3store_fail(st, rc, "read", key);
		g->have[i] = 1;
	}
	return PF_OK;
}

/* The parts, each of its chunk's size; PF_EPROTO if one is missing. */
static enum pf_status
gather_parts(struct s3store *st, struct gather *g, const char *obj)
{
	enum pf_status rc;
	uint32_t i;

	rc = s3_mpu_list_parts(st->s3, obj, g->rec->upload, on_part, g);
	if (rc == PF_ENOSESSION) {
		log_warn("S3 store: session %.64s: no upload: cancelled",
		    g->rec->id);
		return PF_ECANCELLED;
	}
	if (rc != PF_OK)
		return s3store_fail(st, rc, "list parts", obj);
	for (i = 0; i < g->n; i++)
		if (g->parts[i].number != i + 1) {
			log_warn("S3 store: session %.64s: part %u of %u "
			    "missing", g->rec->id, i + 1, g->n);
			return PF_EPROTO;
		}
	return PF_OK;
}

/* True if the finished object is there with rec's size. */
static bool
finished(struct s3store *st, const char *obj, const struct s3store_record *rec)
{
	uint64_t size;

	return s3_head(st->s3, obj, &size, NULL) == PF_OK && size == rec->size;
}

/* The commit object's body; its receipt in hex is want's. */
static char *
commit_body(struct s3store *st, const uint8_t want[PF_SHA256_LEN])
{
	char hex[2 * PF_SHA256_LEN + 1], *text;
	uint8_t nonce[8];
	char nhex[2 * sizeof(nonce) + 1];
	json_t *o;

	/* A nonce tells this node's write from any other's, after an
	   answer that was lost. */
	if (pf_random(nonce, sizeof(nonce)) != PF_OK)
		return NULL;
	pf_hex_encode(nonce, sizeof(nonce), nhex);
	pf_hex_encode(want, PF_SHA256_LEN, hex);
	o = json_pack("{s:s, s:s, s:s, s:I}", "node",
	    st->opts->node != NULL ? st->opts->node : "", "receipt", hex,
	    "nonce", nhex, "time", (json_int_t)time(NULL));
	text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return text;
}

/*
 * The session is finished already (a COMMIT again, or after another
 * node's): PF_OK if want is the receipt its commit object holds.
 */
static enum pf_status
again(struct s3store *st, const struct s3store_record *rec,
    const uint8_t want[PF_SHA256_LEN])
{
	char key[S3_KEY_MAX + 1], body[COMMIT_MAX + 1];
	char hex[2 * PF_SHA256_LEN + 1];
	enum pf_status rc;
	size_t n;

	if (!s3store_key_of(st, rec, "commit", key))
		return PF_EBADNAME;
	if ((rc = s3store_get_small(st, key, body, COMMIT_MAX, &n)) != PF_OK)
		return s3store_fail(st, rc, "read", key);
	body[n] = '\0';
	pf_hex_encode(want, PF_SHA256_LEN, hex);
	snprintf(key, sizeof(key), "\"receipt\":\"%s\"", hex);
	if (strstr(body, key) == NULL) {
		log_warn("S3 store: session %.64s: COMMIT again with another "
		    "receipt", rec->id);
		return PF_ECHECKSUM;
	}
	return PF_OK;
}

/* This node writes the commit: cancel checked, then the complete. */
static enum pf_status
complete(struct s3store *st, struct gather *g, const char *obj,
    const char *commit)
{
	char key[S3_KEY_MAX + 1];
	enum pf_status rc;

	if (st->opts->after_commit_object != NULL)
		st->opts->after_commit_object(st->opts->hook_arg);
	if (!s3store_key_of(st, g->rec, "cancel", key))
		return PF_EBADNAME;
	if ((rc = s3store_exists(st, key)) == PF_OK) {
		s3_delete(st->s3, commit);
		log_warn("S3 store: session %.64s: cancelled during COMMIT",
		    g->rec->id);
		return PF_ECANCELLED;
	}
	rc = s3_mpu_complete(st->s3, obj, g->rec->upload, g->parts, g->n);
	if (rc != PF_OK) {
		s3store_fail(st, rc, "complete", obj);
		/* The upload gone or the answer lost: the object tells. */
		if (rc != PF_ENOSESSION && rc != PF_ENET && rc != PF_ETIMEOUT)
			return rc;
		if (!finished(st, obj, g->rec))
			return rc == PF_ENOSESSION ? PF_ECANCELLED : rc;
	}
	log_info("S3 store: session %.64s completed, %u parts", g->rec->id,
	    g->n);
	/* The claims and sums served their turn; record and commit stay. */
	s3store_sweep(st, g->rec);
	return PF_OK;
}

/*
 * Another node holds the commit (its ETag was etag): waits for the
 * object, and takes the commit over once the same ETag has stood for
 * the lease (measured here, so the nodes' clocks do not matter).
 * PF_OK when the object is there; *mine when this node now holds it.
 */
static enum pf_status
wait_other(struct s3store *st, struct gather *g, const char *obj,
    const char *commit, const char *body, bool *mine)
{
	uint64_t start = pf_now_ms(), since = start;
	char etag[S3_ETAG_MAX] = "", now[S3_ETAG_MAX];
	struct timespec ts = { 0, POLL_MS * 1000000L };
	enum pf_status rc;

	*mine = false;
	while (pf_now_ms() - start < (uint64_t)st->wait_s * 1000) {
		if (finished(st, obj, g->rec))
			return PF_OK;
		rc = s3_head(st->s3, commit, NULL, now);
		/* Withdrawn (its node met a cancel): write it again. */
		if (rc == PF_ENOSESSION && s3_put(st->s3, commit, body,
		    strlen(body), true, NULL) == PF_OK) {
			*mine = true;
			return PF_OK;
		}
		if (rc == PF_OK && strcmp(now, etag) != 0) {
			memcpy(etag, now, sizeof(etag));
			since = pf_now_ms();
		}
		if (rc == PF_OK && pf_now_ms() - since >=
		    (uint64_t)st->lease_s * 1000) {
			rc = s3_put_if_match(st->s3, commit, body,
			    strlen(body), etag, NULL);
			if (rc == PF_OK) {
				log_warn("S3 store: session %.64s: the commit "
				    "lapsed after %u s: taken over",
				    g->rec->id, st->lease_s);
				*mine = true;
				return PF_OK;
			}
			since = pf_now_ms();
		}
		nanosleep(&ts, NULL);
	}
	log_warn("S3 store: session %.64s: another node's commit neither "
	    "ended nor lapsed in %u s", g->rec->id, st->wait_s);
	return PF_ETIMEOUT;
}

/* The single-writer step: whoever writes `commit` first completes. */
static enum pf_status
decide(struct s3store *st, struct gather *g, const char *obj,
    const uint8_t want[PF_SHA256_LEN])
{
	char key[S3_KEY_MAX + 1], seen[COMMIT_MAX + 1], *body;
	enum pf_status rc;
	bool mine = false;
	size_t n;

	if (!s3store_key_of(st, g->rec, "commit", key))
		return PF_EBADNAME;
	if ((body = commit_body(st, want)) == NULL)
		return PF_ENOMEM;
	rc = s3_put(st->s3, key, body, strlen(body), true, NULL);
	if (rc == PF_ENET || rc == PF_ETIMEOUT) {
		/* The answer was lost: the object says whose write won. */
		if (s3store_get_small(st, key, seen, COMMIT_MAX, &n) ==
		    PF_OK && n == strlen(body) && memcmp(seen, body, n) == 0)
			rc = PF_OK;
		else
			rc = PF_EBUSY;
	}
	if (rc == PF_OK)
		mine = true;
	else if (rc == PF_EBUSY) {
		log_info("S3 store: session %.64s: another node commits; "
		    "waiting for it", g->rec->id);
		rc = wait_other(st, g, obj, key, body, &mine);
	}
	else
		s3store_fail(st, rc, "write", key);
	if (rc == PF_OK && mine)
		rc = complete(st, g, obj, key);
	free(body);
	return rc;
}

/* The receipt from the digests gathered, compared with want. */
static enum pf_status
check_receipt(const struct gather *g, const uint8_t want[PF_SHA256_LEN])
{
	uint8_t got[PF_SHA256_LEN];

	if (proto_receipt(g->rec->size, g->rec->chunk_size, g->digests, g->n,
	    got) != PF_OK || !pf_equal_ct(got, want, PF_SHA256_LEN)) {
		log_warn("S3 store: session %.64s: wrong receipt at COMMIT",
		    g->rec->id);
		return PF_ECHECKSUM;
	}
	return PF_OK;
}

enum pf_status
s3store_commit(struct s3store *st, const struct s3store_record *rec,
    const uint8_t receipt[PF_SHA256_LEN])
{
	struct gather g = { .rec = rec, .n = s3store_nchunks(rec) };
	char obj[S3_KEY_MAX + 1], key[S3_KEY_MAX + 1];
	enum pf_status rc = PF_EBADNAME;

	if (!s3store_key_of(st, rec, NULL, obj))
		goto out;
	if (finished(st, obj, rec)) {
		rc = again(st, rec, receipt);
		goto out;
	}
	if (!s3store_key_of(st, rec, "cancel", key))
		goto out;
	if ((rc = s3store_exists(st, key)) == PF_OK ||
	    (rc == PF_ENOSESSION && s3store_key_of(st, rec, "record", key) &&
	    (rc = s3store_exists(st, key)) == PF_ENOSESSION)) {
		log_warn("S3 store: session %.64s: COMMIT after a cancel",
		    rec->id);
		rc = PF_ECANCELLED;
		goto out;
	}
	if (rc != PF_OK) {
		s3store_fail(st, rc, "look for", key);
		goto out;
	}
	rc = PF_ENOMEM;
	g.digests = calloc(g.n, PF_SHA256_LEN);
	g.have = calloc(g.n, 1);
	g.parts = calloc(g.n, sizeof(*g.parts));
	if (g.digests == NULL || g.have == NULL || g.parts == NULL)
		goto out;
	if ((rc = gather_digests(st, &g)) == PF_OK &&
	    (rc = check_receipt(&g, receipt)) == PF_OK &&
	    (rc = gather_parts(st, &g, obj)) == PF_OK)
		rc = decide(st, &g, obj, receipt);
	/* Another node completed it meanwhile (the upload and its claims
	   gone under our listings): a COMMIT again, not a cancel. */
	if ((rc == PF_ECANCELLED || rc == PF_EPROTO) && finished(st, obj, rec))
		rc = again(st, rec, receipt);
out:
	free(g.digests);
	free(g.have);
	free(g.parts);
	return rc;
}
