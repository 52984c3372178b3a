/* SPDX-License-Identifier: MIT */
/* One upload session: its fields, chunk states and state machine. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "clock.h"
#include "engine.h"
#include "finalize.h"
#include "journal.h"
#include "judge.h"
#include "manifest.h"
#include "proto.h"
#include "session.h"
#include "storage.h"
#include "backend.h"
#include "store.h"
#include "unpack.h"

enum chunk_state {
	CHUNK_PENDING,
	CHUNK_RECEIVING,
	CHUNK_DONE
};

struct session {
	char		 id[PROTO_ID_LEN + 1];
	char		 user[PROTO_MAX_USER + 1];
	char		 name[PROTO_MAX_NAME + 1];	/* sanitized */
	char		*client_name;	/* as sent; may hold any bytes */
	size_t		 client_name_len;
	char		 peer[64];
	uint64_t	 size;
	uint32_t	 chunk_size;
	uint32_t	 nchunks;
	uint8_t		 head[PROTO_HEAD_LEN];
	size_t		 headlen;
	bool		 tus;			/* see session_file */
	bool		 pieces;		/* see session_file */
	pthread_mutex_t	 lock;			/* guards key and owner */
	uint8_t		 key[PF_SHA256_LEN];	/* the login's session key */
	bool		 key_set;		/* key is one (not zeros) */
	uint64_t	 owner;			/* control connection's id */
	time_t		 created;
	_Atomic int64_t	 finished;		/* time_t it left RECEIVING */

	struct storage	*storage;		/* borrowed */
	struct staging	*staging;		/* owned; NULL once final */
	struct backend	*remote;		/* borrowed: on S3, or NULL */
	struct s3store_record *rec;		/* owned, with remote */
	struct manifest	*mf;			/* a transfer's; or NULL */
	_Atomic(struct judge *) judge;		/* its files judged early */
	unsigned	 amends;		/* of the transfer so far */
	char		 mfname[32];		/* its manifest's file */
	_Atomic uint8_t	*chunks;		/* enum chunk_state each */
	_Atomic uint8_t	*tried;			/* 1: sent at least once */
	uint8_t		*digests;		/* 32 bytes a chunk */

	_Atomic bool	 ready;			/* fields set: may be shown */
	_Atomic int	 state;			/* enum session_state */
	_Atomic int	 end_rc;		/* session_end made durable? */
	_Atomic int64_t	 last_active;		/* time_t of the last chunk */
	_Atomic uint64_t bytes_received;	/* all chunk bytes read */
	_Atomic uint64_t bytes_held;		/* in chunks done */
	_Atomic uint64_t progress_ms;		/* monotonic ms, last byte */
	_Atomic uint32_t chunks_duplicate;	/* sent again though held */
	_Atomic uint32_t chunks_acked;
	_Atomic uint32_t chunks_nacked;
	_Atomic uint32_t chunks_resent;		/* sent more than once */
	_Atomic uint32_t streams;		/* data connections joined */
	_Atomic uint32_t controls;		/* control connections on it */
	_Atomic int	 refs;
	_Atomic int	 error;			/* enum pf_status, 0 if none */
	char		 receipt[PF_SHA256_HEX];
};

/* See session_generation; process-wide, as the gateway needs no more. */
static _Atomic uint64_t generation;

void
session_changed(void)
{
	atomic_fetch_add(&generation, 1);
}

uint64_t
session_generation(void)
{
	return atomic_load(&generation);
}

/*
 * The one place the state changes: from -> to if that is a legal
 * transition (see session.h) and s is in from now. Leaving RECEIVING, or
 * failing, stamps the time s finished.
 */
static bool
transition(struct session *s, enum session_state from, enum session_state to)
{
	int expect = (int)from;
	bool legal;

	switch (from) {
	case SESSION_RECEIVING:
		legal = to == SESSION_ASSEMBLING || to == SESSION_FAILED ||
		    to == SESSION_CANCELLED || to == SESSION_EXPIRED;
		break;
	case SESSION_ASSEMBLING:
		legal = to == SESSION_COMPLETE || to == SESSION_FAILED ||
		    to == SESSION_RECEIVING;
		break;
	default:
		legal = false;
		break;
	}
	if (!legal ||
	    !atomic_compare_exchange_strong(&s->state, &expect, (int)to))
		return false;
	if (from == SESSION_RECEIVING || to == SESSION_FAILED)
		atomic_store(&s->finished, (int64_t)time(NULL));
	session_changed();
	return true;
}

static void
session_free(struct session *s)
{
	int state = atomic_load(&s->state);

	/* Before the staging area goes: the judge reads its files. */
	judge_free(atomic_load(&s->judge));
	if (state == SESSION_FAILED || state == SESSION_CANCELLED ||
	    state == SESSION_EXPIRED)
		storage_staging_discard(s->storage, s->staging);
	else
		storage_staging_close(s->staging);
	pthread_mutex_destroy(&s->lock);
	pf_wipe(s->key, sizeof(s->key));
	free(s->client_name);
	manifest_free(s->mf);
	free((void *)s->chunks);
	free((void *)s->tried);
	free(s->digests);
	free(s->rec);
	free(s);
}

enum pf_status
session_new(uint32_t nchunks, const char *id, const char *user,
    uint64_t size, struct session **out)
{
	struct session *s;
	uuid_t uu;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return PF_ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	/* calloc(0) may return NULL; keep one byte so NULL means ENOMEM. */
	s->chunks = calloc(nchunks ? nchunks : 1, sizeof(*s->chunks));
	s->digests = calloc(nchunks ? nchunks : 1, PF_SHA256_LEN);
	s->tried = calloc(nchunks ? nchunks : 1, sizeof(*s->tried));
	if (s->chunks == NULL || s->digests == NULL || s->tried == NULL) {
		session_free(s);
		return PF_ENOMEM;
	}
	s->nchunks = nchunks;
	if (id != NULL)
		snprintf(s->id, sizeof(s->id), "%s", id);
	else {
		/* libuuid reads /dev/urandom here: a version 4, random id. */
		uuid_generate_random(uu);
		uuid_unparse_lower(uu, s->id);
	}
	if (user != NULL)
		snprintf(s->user, sizeof(s->user), "%s", user);
	s->size = size;
	s->created = time(NULL);
	atomic_init(&s->last_active, (int64_t)s->created);
	atomic_init(&s->progress_ms, pf_now_ms());
	atomic_init(&s->state, SESSION_RECEIVING);
	atomic_init(&s->refs, 1);
	*out = s;
	return PF_OK;
}

void
session_ref(struct session *s)
{
	atomic_fetch_add(&s->refs, 1);
}

void
session_unref(struct session *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	session_free(s);
}

/*
 * The session's metadata as a new JSON object: id, user, name, client
 * name, size, chunk size, creation time, origin; with staging set, also
 * the head
 * (what recovery needs), else the receipt and the transfer counters
 * (bytes received since the last restart, chunks NACKed, chunks sent
 * again though already held).
 */
static json_t *
to_json(const struct session *s, bool staging)
{
	char created[32], *head64 = NULL;
	json_t *j;

	if (!pf_time_rfc3339(s->created, created))
		snprintf(created, sizeof(created), "unknown");
	j = json_pack("{s:s,s:s,s:s%,s:I,s:I,s:s,s:s,s:I}",
	    "session", s->id, "name", s->name, "client_name",
	    s->client_name, s->client_name_len, "size", (json_int_t)s->size,
	    "chunk_size", (json_int_t)s->chunk_size, "user", s->user,
	    "created", created, "created_unix", (json_int_t)s->created);
	if (j != NULL && (json_object_set_new(j, "origin", json_string(
	    s->tus ? "tus" : "native")) == -1 || (s->pieces &&
	    json_object_set_new(j, "pieces", json_true()) == -1))) {
		json_decref(j);
		return NULL;
	}
	if (j == NULL)
		return NULL;
	/* A transfer: its manifest is a file of its own (MANIFEST_NAME). */
	if (s->mf != NULL && (json_object_set_new(j, "transfer",
	    json_string(s->mf->digest)) == -1 || json_object_set_new(j,
	    "files", json_integer((json_int_t)s->mf->n)) == -1 ||
	    json_object_set_new(j, "files_refused", json_integer(
	    (json_int_t)manifest_refused(s->mf))) == -1 ||
	    json_object_set_new(j, "manifest", json_string(s->mfname)) ==
	    -1 || json_object_set_new(j, "amends", json_integer(
	    (json_int_t)s->amends)) == -1)) {
		json_decref(j);
		return NULL;
	}
	if (staging) {
		if ((head64 = pf_base64_encode(s->head, s->headlen)) == NULL ||
		    json_object_set_new(j, "head", json_string(head64)) == -1) {
			json_decref(j);
			j = NULL;
		}
		free(head64);
	} else if (json_object_set_new(j, "digest",
	    json_string(s->receipt)) == -1 || json_object_set_new(j,
	    "bytes_received", json_integer((json_int_t)atomic_load(
	    &s->bytes_received))) == -1 || json_object_set_new(j,
	    "chunks_nacked", json_integer(atomic_load(&s->chunks_nacked))) ==
	    -1 || json_object_set_new(j, "chunks_duplicate", json_integer(
	    atomic_load(&s->chunks_duplicate))) == -1 ||
	    json_object_set_new(j, "chunks_resent", json_integer(
	    atomic_load(&s->chunks_resent))) == -1 ||
	    json_object_set_new(j, "peer", json_string(s->peer)) == -1 ||
	    json_object_set_new(j, "finished_unix", json_integer(
	    (json_int_t)time(NULL))) == -1) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* The name of the manifest file after amends amends. */
static void
manifest_name(unsigned amends, char name[32])
{
	if (amends == 0)
		snprintf(name, 32, "%s", MANIFEST_NAME);
	else
		snprintf(name, 32, "manifest.%u.json", amends);
}

/*
 * Reads a restored transfer's manifest back; digest, the number of
 * amends and the manifest's file name from its metadata meta.
 */
static enum pf_status
get_manifest(struct session *s, const json_t *meta, const char *digest)
{
	const char *name = json_string_value(json_object_get(meta,
	    "manifest"));
	json_int_t amends = json_integer_value(json_object_get(meta,
	    "amends"));
	json_t *j;
	enum pf_status rc;

	if (amends < 0 || amends > PROTO_MAX_AMENDS)
		return PF_EBADFRAME;
	s->amends = (unsigned)amends;
	manifest_name(s->amends, s->mfname);
	/* Only the name its count gives: never a path from the file. */
	if (name != NULL && strcmp(name, s->mfname) != 0)
		return PF_EBADFRAME;
	if ((j = storage_staging_get_list(s->staging, s->mfname)) == NULL)
		return PF_EBADFRAME;
	rc = manifest_load(j, s->size, &s->mf);
	json_decref(j);
	if (rc == PF_OK && (strlen(digest) != PF_SHA256_HEX - 1 ||
	    s->mf->total != s->size))
		rc = PF_EBADFRAME;
	if (rc == PF_OK)
		memcpy(s->mf->digest, digest, PF_SHA256_HEX);
	return rc;
}

void
session_judge(struct session *s, struct judge_pool *jp)
{
	struct judge *j;

	if (jp == NULL || s->mf == NULL || s->staging == NULL ||
	    s->remote != NULL || atomic_load(&s->judge) != NULL ||
	    atomic_load(&s->state) != SESSION_RECEIVING)
		return;
	if ((j = judge_new(jp, s->mf, s->staging, s->chunk_size,
	    s->nchunks)) == NULL)
		return;
	/*
	 * Published first, then the chunks held already noted: a chunk
	 * done meanwhile is noted by session_held_chunk, or here, or both.
	 * A COMMIT or an end meanwhile stops it (they read s->judge after
	 * leaving RECEIVING), or this does.
	 */
	atomic_store(&s->judge, j);
	if (atomic_load(&s->state) != SESSION_RECEIVING)
		judge_stop(j);
	for (uint32_t i = 0; i < s->nchunks; i++)
		if (atomic_load(&s->chunks[i]) == CHUNK_DONE)
			judge_note_chunk(j, i);
}

void
session_use_store(struct session *s, const struct store *st)
{
	s->remote = store_backend(st);
}

bool
session_remote(const struct session *s)
{
	return s->remote != NULL;
}

/* The fields of s that file f gives (f's manifest taken over). */
static enum pf_status
open_fields(struct session *s, const struct session_file *f)
{
	s->mf = f->manifest;
	manifest_name(0, s->mfname);
	snprintf(s->name, sizeof(s->name), "%s", f->name);
	snprintf(s->peer, sizeof(s->peer), "%s", f->peer);
	s->chunk_size = f->chunk_size;
	s->tus = f->tus;
	s->pieces = f->pieces && f->manifest != NULL;
	memcpy(s->head, f->head, f->headlen);
	s->headlen = f->headlen;
	if ((s->client_name = malloc(f->client_name_len + 1)) == NULL)
		return PF_EINTERNAL;
	memcpy(s->client_name, f->client_name, f->client_name_len + 1);
	s->client_name_len = f->client_name_len;
	return PF_OK;
}

/* s's record for the store, from its fields; NULL on ENOMEM. */
static struct s3store_record *
new_record(const struct session *s)
{
	struct s3store_record *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	snprintf(r->id, sizeof(r->id), "%s", s->id);
	snprintf(r->user, sizeof(r->user), "%s", s->user);
	snprintf(r->name, sizeof(r->name), "%s", s->name);
	r->size = s->size;
	r->chunk_size = s->chunk_size;
	memcpy(r->head, s->head, s->headlen);
	r->head_len = s->headlen;
	r->created = (int64_t)s->created;
	return r;
}

/*
 * Creates s in the store. Only single files of native clients: a
 * transfer's files and tus are served from the storage directory alone
 * (docs/scale-out.md, what is next).
 */
static enum pf_status
open_remote(struct session *s)
{
	enum pf_status rc;

	if (s->mf != NULL || s->tus)
		return PF_EPROTO;
	if ((s->rec = new_record(s)) == NULL)
		return PF_EINTERNAL;
	/* Nothing of it in the store to cancel: the end is local. */
	if ((rc = backend_create(s->remote, s->rec)) != PF_OK) {
		free(s->rec);
		s->rec = NULL;
	}
	return rc;
}

enum pf_status
session_open(struct session *s, struct storage *storage,
    const struct session_file *f)
{
	enum pf_status rc = PF_EINTERNAL;
	json_t *meta;

	s->storage = storage;
	if (open_fields(s, f) != PF_OK)
		goto out;
	if (s->remote != NULL) {
		if ((rc = open_remote(s)) != PF_OK)
			goto out;
		atomic_store(&s->ready, true);
		session_changed();
		goto out;
	}
	if ((meta = to_json(s, true)) == NULL)
		goto out;
	rc = storage_staging_create(storage, s->id, s->size, s->mf, meta,
	    &s->staging);
	json_decref(meta);
	if (rc != PF_OK)
		goto out;
	if (s->mf != NULL && (rc = storage_staging_put_list(s->staging,
	    s->mfname, s->mf, false)) != PF_OK)
		goto out;
	atomic_store(&s->ready, true);
	session_changed();
out:
	return rc;
}

enum pf_status
session_id_from_json(const json_t *meta, char id[PROTO_ID_LEN + 1])
{
	const char *v = json_string_value(json_object_get(meta, "session"));

	if (v == NULL || !proto_id_valid(v))
		return PF_EBADFRAME;
	memcpy(id, v, PROTO_ID_LEN + 1);
	return PF_OK;
}

/*
 * Fills a new session's fields from metadata written by to_json (staging
 * form), checking every field as if it came from a client. PF_EBADFRAME
 * if anything is missing or out of range.
 */
static enum pf_status
from_json(struct session *s, const json_t *meta)
{
	const char *user, *name, *cname, *head64, *origin = "native";
	json_int_t size, chunk_size, created;
	size_t cname_len;
	char safe[PROTO_MAX_NAME + 1];
	uint32_t count;
	long headlen;

	if (json_unpack((json_t *)meta, "{s:s,s:s,s:s%,s:I,s:I,s:I,s:s,s?s}",
	    "user", &user, "name", &name, "client_name", &cname, &cname_len,
	    "size", &size, "chunk_size", &chunk_size, "created_unix",
	    &created, "head", &head64, "origin", &origin) == -1)
		return PF_EBADFRAME;
	s->tus = strcmp(origin, "tus") == 0;
	s->pieces = json_is_true(json_object_get(meta, "pieces")) &&
	    json_object_get(meta, "transfer") != NULL;
	/* A damaged or edited file is treated like hostile input. */
	if (!proto_user_valid(user) || size < 0 || !proto_chunk_size_valid(
	    (uint64_t)chunk_size) || proto_chunk_count((uint64_t)size,
	    (uint32_t)chunk_size, &count) != PF_OK || count != s->nchunks ||
	    policy_sanitize_name(name, strlen(name), safe) != PF_OK ||
	    strcmp(safe, name) != 0)
		return PF_EBADFRAME;
	/* A tus upload created, its first bytes not judged yet: no head. */
	headlen = pf_base64_decode(head64, s->head, sizeof(s->head));
	if (headlen < 0 || ((uint64_t)headlen != ((uint64_t)size <
	    PROTO_HEAD_LEN ? (uint64_t)size : PROTO_HEAD_LEN) &&
	    !(s->tus && headlen == 0)))
		return PF_EBADFRAME;
	if ((s->client_name = malloc(cname_len + 1)) == NULL)
		return PF_ENOMEM;
	memcpy(s->client_name, cname, cname_len + 1);
	s->client_name_len = cname_len;
	s->headlen = (size_t)headlen;
	snprintf(s->user, sizeof(s->user), "%s", user);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->size = (uint64_t)size;
	s->chunk_size = (uint32_t)chunk_size;
	s->created = (time_t)created;
	return PF_OK;
}

enum pf_status
session_restore(struct session *s, struct storage *storage,
    const json_t *meta, struct staging *st, const uint32_t *indices,
    const uint8_t *digests, uint32_t n, time_t last_active)
{
	const char *transfer;
	enum pf_status rc;

	s->storage = storage;
	if ((rc = from_json(s, meta)) != PF_OK)
		return rc;
	s->staging = st;
	if ((transfer = json_string_value(json_object_get(meta,
	    "transfer"))) != NULL && (rc = get_manifest(s, meta, transfer)) !=
	    PF_OK) {
		s->staging = NULL;	/* still the caller's */
		return rc;
	}
	atomic_store(&s->last_active, (int64_t)last_active);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = indices[i];

		if (idx >= s->nchunks ||
		    atomic_load(&s->chunks[idx]) == CHUNK_DONE)
			continue;
		memcpy(s->digests + (size_t)idx * PF_SHA256_LEN,
		    digests + (size_t)i * PF_SHA256_LEN, PF_SHA256_LEN);
		atomic_store(&s->chunks[idx], CHUNK_DONE);
		atomic_fetch_add(&s->chunks_acked, 1);
		atomic_fetch_add(&s->bytes_held, proto_chunk_length(s->size,
		    s->chunk_size, idx));
	}
	atomic_store(&s->ready, true);
	session_changed();
	return PF_OK;
}

/* Marks done the chunks set in bits that s does not hold yet. */
static void
hold_bits(struct session *s, const uint8_t *bits)
{
	for (uint32_t i = 0; i < s->nchunks; i++) {
		uint8_t expect = CHUNK_PENDING;

		if (!(bits[i / 8] & (1u << (i % 8))) ||
		    !atomic_compare_exchange_strong(&s->chunks[i], &expect,
		    CHUNK_DONE))
			continue;
		atomic_fetch_add(&s->chunks_acked, 1);
		atomic_fetch_add(&s->bytes_held, proto_chunk_length(s->size,
		    s->chunk_size, i));
	}
}

/* The chunks the store holds now, added to what s holds. */
static enum pf_status
refresh_held(struct session *s)
{
	uint8_t *bits = calloc(1, (size_t)s->nchunks / 8 + 1);
	enum pf_status rc;

	if (bits == NULL)
		return PF_EINTERNAL;
	if ((rc = backend_have(s->remote, s->rec, bits)) == PF_OK)
		hold_bits(s, bits);
	free(bits);
	return rc;
}

enum pf_status
session_restore_remote(struct session *s, const struct store *st,
    const struct s3store_record *rec, const struct session_file *f)
{
	struct session_file own = { .name = rec->name,
	    .client_name = rec->name, .client_name_len = strlen(rec->name),
	    .peer = "", .size = rec->size, .chunk_size = rec->chunk_size,
	    .head = rec->head, .headlen = rec->head_len };
	enum pf_status rc;

	s->remote = store_backend(st);
	if ((rc = open_fields(s, f != NULL ? f : &own)) != PF_OK)
		return rc;
	s->created = (time_t)rec->created;
	/* A login elsewhere holds it; its key comes from the store. */
	s->owner = SESSION_OWNER_ELSEWHERE;
	if ((s->rec = malloc(sizeof(*s->rec))) == NULL)
		return PF_EINTERNAL;
	memcpy(s->rec, rec, sizeof(*s->rec));
	/* Whatever any node stored: the store is the truth, not memory. */
	if ((rc = refresh_held(s)) == PF_OK) {
		atomic_store(&s->ready, true);
		session_changed();
	}
	return rc;
}

enum pf_status
session_refresh(struct session *s, bool *finished)
{
	uint64_t size;
	enum pf_status rc;

	*finished = false;
	if (s->remote == NULL)
		return PF_OK;
	if ((rc = backend_finished(s->remote, s->rec, &size)) == PF_OK) {
		*finished = true;
		return PF_OK;
	}
	if (rc != PF_ENOSESSION)
		return rc;
	if ((rc = refresh_held(s)) == PF_OK)
		session_changed();
	return rc;
}

const struct s3store_record *
session_record(const struct session *s)
{
	return s->rec;
}

enum pf_status
session_publish_key(struct session *s)
{
	uint8_t key[PF_SHA256_LEN];
	enum pf_status rc;

	if (s->remote == NULL)
		return PF_OK;
	session_get_key(s, key);
	rc = backend_put_key(s->remote, s->rec, key);
	pf_wipe(key, sizeof(key));
	return rc;
}

enum pf_status
session_reload_key(struct session *s)
{
	uint8_t key[PF_SHA256_LEN];
	enum pf_status rc;

	if (s->remote == NULL)
		return PF_ENOSESSION;
	if ((rc = backend_get_key(s->remote, s->rec, key)) == PF_OK) {
		pthread_mutex_lock(&s->lock);
		memcpy(s->key, key, PF_SHA256_LEN);
		s->key_set = true;
		pthread_mutex_unlock(&s->lock);
	}
	pf_wipe(key, sizeof(key));
	return rc;
}

bool
session_alone(struct session *s)
{
	return atomic_load(&s->refs) == 1 && atomic_load(&s->streams) == 0 &&
	    atomic_load(&s->controls) == 0;
}

unsigned
session_amends(const struct session *s)
{
	return s->amends;
}

const struct proto_span *
session_spans(const struct session *s, size_t *n)
{
	*n = s->pieces ? s->mf->nspans : 0;
	return s->pieces ? s->mf->spans : NULL;
}

void
session_note_wholes(struct session *s, const struct chunkhash *h)
{
	if (s->pieces)
		manifest_note_wholes(s->mf, h, s->chunk_size);
}

bool
session_pieces(const struct session *s)
{
	return s->pieces;
}

const char *
session_manifest_file(const struct session *s)
{
	return s->mfname;
}

enum pf_status
session_held_records(struct session *s, uint32_t **indices,
    uint8_t **digests, uint32_t *n)
{
	uint32_t k = 0;

	*indices = calloc((size_t)s->nchunks + 1, sizeof(**indices));
	*digests = calloc((size_t)s->nchunks + 1, PF_SHA256_LEN);
	if (*indices == NULL || *digests == NULL)
		return PF_ENOMEM;
	for (uint32_t i = 0; i < s->nchunks; i++) {
		if (atomic_load(&s->chunks[i]) != CHUNK_DONE)
			continue;
		(*indices)[k] = i;
		memcpy(*digests + (size_t)k * PF_SHA256_LEN, s->digests +
		    (size_t)i * PF_SHA256_LEN, PF_SHA256_LEN);
		k++;
	}
	*n = k;
	return PF_OK;
}

json_t *
session_amended_meta(const struct session *s, const struct session_file *f,
    char mfname[32])
{
	json_t *j = to_json(s, true);
	char *head64 = pf_base64_encode(f->head, f->headlen);

	manifest_name(s->amends + 1, mfname);
	if (j == NULL || head64 == NULL || json_object_set_new(j, "size",
	    json_integer((json_int_t)f->size)) == -1 || json_object_set_new(j,
	    "head", json_string(head64)) == -1 || json_object_set_new(j,
	    "transfer", json_string(f->manifest->digest)) == -1 ||
	    json_object_set_new(j, "files", json_integer((json_int_t)
	    f->manifest->n)) == -1 || json_object_set_new(j, "files_refused",
	    json_integer((json_int_t)manifest_refused(f->manifest))) == -1 ||
	    json_object_set_new(j, "manifest", json_string(mfname)) == -1 ||
	    json_object_set_new(j, "amends", json_integer((json_int_t)
	    s->amends + 1)) == -1) {
		json_decref(j);
		j = NULL;
	}
	free(head64);
	return j;
}

bool
session_matches(struct session *s, const char *user,
    const struct session_file *f)
{
	return atomic_load(&s->state) == SESSION_RECEIVING &&
	    strcmp(s->user, user) == 0 && strcmp(s->name, f->name) == 0 &&
	    s->size == f->size && s->chunk_size == f->chunk_size &&
	    s->headlen == f->headlen &&
	    memcmp(s->head, f->head, f->headlen) == 0 &&
	    (s->mf == NULL) == (f->manifest == NULL) && (s->mf == NULL ||
	    strcmp(s->mf->digest, f->manifest->digest) == 0);
}

enum session_claim
session_claim_chunk(struct session *s, uint32_t index, bool *resent)
{
	uint8_t expect = CHUNK_PENDING;

	*resent = false;
	if (!atomic_compare_exchange_strong(&s->chunks[index], &expect,
	    CHUNK_RECEIVING)) {
		if (expect != CHUNK_DONE)
			return SESSION_BUSY;
		atomic_fetch_add(&s->chunks_duplicate, 1);
		*resent = true;
	} else if (atomic_load(&s->tried[index]) > 0)
		*resent = true;
	else
		atomic_store(&s->tried[index], 1);
	if (*resent) {
		atomic_store(&s->tried[index], 2);
		atomic_fetch_add(&s->chunks_resent, 1);
		session_changed();
	}
	return expect == CHUNK_DONE ? SESSION_HELD : SESSION_CLAIMED;
}

enum pf_status
session_write_chunk(struct session *s, uint64_t off, const void *p, size_t n)
{
	return storage_staging_write(s->staging, off, p, n);
}

enum pf_status
session_put_chunk(struct session *s, uint32_t index, const void *p,
    size_t n, const uint8_t digest[PF_SHA256_LEN],
    const uint8_t body[PF_SHA256_LEN])
{
	enum pf_status rc;

	if ((rc = backend_put_chunk(s->remote, s->rec, index, p, n,
	    digest, body)) == PF_OK)
		session_held_chunk(s, index, digest);
	return rc;
}

enum pf_status
session_done_chunk(struct session *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN])
{
	enum pf_status rc;

	if ((rc = journal_commit_chunk(s->staging, index, digest)) != PF_OK)
		return rc;
	session_held_chunk(s, index, digest);
	return PF_OK;
}

enum pf_status
session_sync_chunk(struct session *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN], struct journal_ticket *t)
{
	return journal_submit(s->staging, index, digest, t);
}

void
session_held_chunk(struct session *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN])
{
	uint64_t len = proto_chunk_length(s->size, s->chunk_size, index);

	/* Before the chunk is done: a COMMIT may free the staging then. */
	storage_staging_settled(s->staging, (uint64_t)index * s->chunk_size,
	    len);
	memcpy(s->digests + (size_t)index * PF_SHA256_LEN, digest,
	    PF_SHA256_LEN);
	atomic_store(&s->last_active, (int64_t)time(NULL));
	atomic_store(&s->chunks[index], CHUNK_DONE);
	judge_note_chunk(atomic_load(&s->judge), index);
	atomic_fetch_add(&s->chunks_acked, 1);
	atomic_fetch_add(&s->bytes_held, len);
	/* A slow sync is progress too: the chunk was all there. */
	atomic_store(&s->progress_ms, pf_now_ms());
	session_changed();
}

enum pf_status
session_wait_chunk(struct session *s, struct journal_ticket *t)
{
	return journal_wait(s->staging, t);
}

void
session_settle(struct session *s)
{
	journal_settle(s->staging);
}

void
session_release_chunk(struct session *s, uint32_t index, bool nacked)
{
	atomic_store(&s->chunks[index], CHUNK_PENDING);
	if (nacked) {
		atomic_fetch_add(&s->chunks_nacked, 1);
		session_changed();
	}
}

enum session_claim
session_reclaim_chunk(struct session *s, uint32_t index)
{
	uint8_t expect = CHUNK_PENDING;

	if (atomic_compare_exchange_strong(&s->chunks[index], &expect,
	    CHUNK_RECEIVING))
		return SESSION_CLAIMED;
	return expect == CHUNK_DONE ? SESSION_HELD : SESSION_BUSY;
}

bool
session_chunk_busy(struct session *s, uint32_t index)
{
	return index < s->nchunks &&
	    atomic_load(&s->chunks[index]) == CHUNK_RECEIVING;
}

bool
session_broken(struct session *s)
{
	return s->remote == NULL && storage_staging_broken(s->staging);
}

/*
 * A session on the store ended: its upload aborted and its keys gone
 * (s3store_cancel), so no node can bring it back. A store that already
 * forgot it (expired elsewhere) is as good.
 */
static enum pf_status
end_remote(struct session *s)
{
	enum pf_status rc;

	if (s->rec == NULL)
		return PF_OK;
	rc = backend_cancel(s->remote, s->rec);
	return rc == PF_ENOSESSION || rc == PF_ECANCELLED ? PF_OK : rc;
}

bool
session_end(struct session *s, enum session_state state, enum pf_status why)
{
	if (!transition(s, SESSION_RECEIVING, state))
		return false;
	judge_stop(atomic_load(&s->judge));
	atomic_store(&s->error, (int)why);
	session_changed();
	/* A crash from here on must not bring the session back. */
	if (s->remote != NULL)
		atomic_store(&s->end_rc, (int)end_remote(s));
	else
		atomic_store(&s->end_rc, (int)storage_staging_forget(
		    s->staging));
	return true;
}

enum pf_status
session_end_status(struct session *s)
{
	return (enum pf_status)atomic_load(&s->end_rc);
}

/*
 * COMMIT on the store, which checks the receipt against the digests it
 * holds (a resumed session's earlier chunks were checked by whichever
 * node took them) and completes the upload once, whichever node asks.
 */
static enum pf_status
commit_remote(struct session *s, const uint8_t want[PF_SHA256_LEN])
{
	enum pf_status rc = backend_commit(s->remote, s->rec, want);
	uint8_t *all;

	if (rc == PF_ECHECKSUM || rc == PF_ECANCELLED) {
		transition(s, SESSION_ASSEMBLING, SESSION_FAILED);
		atomic_store(&s->error, (int)rc);
		session_changed();
		/* A wrong receipt fails the session for every node, as the
		   staging area goes on local storage. */
		if (rc == PF_ECHECKSUM)
			atomic_store(&s->end_rc, (int)end_remote(s));
		return rc;
	}
	if (rc != PF_OK) {
		transition(s, SESSION_ASSEMBLING, SESSION_RECEIVING);
		return rc;
	}
	/* Other nodes may have taken chunks this one never saw. */
	if ((all = malloc((size_t)s->nchunks / 8 + 1)) != NULL) {
		memset(all, 0xff, (size_t)s->nchunks / 8 + 1);
		hold_bits(s, all);
		free(all);
	}
	pf_hex_encode(want, PF_SHA256_LEN, s->receipt);
	transition(s, SESSION_ASSEMBLING, SESSION_COMPLETE);
	return PF_OK;
}

enum pf_status
session_commit(struct session *s, const uint8_t want[PF_SHA256_LEN],
    const struct policy *p)
{
	struct judge *j;
	enum pf_status rc;
	json_t *meta;

	if (!transition(s, SESSION_RECEIVING, SESSION_ASSEMBLING))
		return PF_ECANCELLED;
	/* What it judged so far stays; the rest is COMMIT's. */
	j = atomic_load(&s->judge);
	judge_stop(j);
	if (s->remote != NULL)
		return commit_remote(s, want);
	if (finalize_check_receipt(s->size, s->chunk_size, s->digests,
	    s->nchunks, want) != PF_OK) {
		transition(s, SESSION_ASSEMBLING, SESSION_FAILED);
		atomic_store(&s->error, (int)PF_ECHECKSUM);
		session_changed();
		storage_staging_forget(s->staging);
		return PF_ECHECKSUM;
	}
	pf_hex_encode(want, PF_SHA256_LEN, s->receipt);
	rc = PF_EINTERNAL;
	if ((meta = to_json(s, false)) != NULL) {
		rc = s->mf != NULL ? unpack_transfer(s->storage, s->staging,
		    s->chunk_size, s->mf, p, j, meta) :
		    finalize_file(s->storage, s->staging, s->name, meta);
		json_decref(meta);
	}
	if (rc != PF_OK) {
		/* Every chunk is still held: COMMIT may be tried again. */
		transition(s, SESSION_ASSEMBLING, SESSION_RECEIVING);
		return rc;
	}
	s->staging = NULL;
	transition(s, SESSION_ASSEMBLING, SESSION_COMPLETE);
	return PF_OK;
}

void
session_take(struct session *s, uint64_t owner,
    const uint8_t key[PF_SHA256_LEN])
{
	pthread_mutex_lock(&s->lock);
	memcpy(s->key, key, PF_SHA256_LEN);
	s->key_set = true;
	s->owner = owner;
	pthread_mutex_unlock(&s->lock);
}

bool
session_owned_by(struct session *s, uint64_t owner)
{
	bool yes;

	pthread_mutex_lock(&s->lock);
	yes = s->owner == owner;
	pthread_mutex_unlock(&s->lock);
	return yes;
}

bool
session_get_key(struct session *s, uint8_t key[PF_SHA256_LEN])
{
	bool set;

	pthread_mutex_lock(&s->lock);
	memcpy(key, s->key, PF_SHA256_LEN);
	set = s->key_set;
	pthread_mutex_unlock(&s->lock);
	return set;
}

void
session_attach(struct session *s, bool control)
{
	atomic_fetch_add(control ? &s->controls : &s->streams, 1);
	session_changed();
}

void
session_detach(struct session *s, bool control)
{
	atomic_fetch_sub(control ? &s->controls : &s->streams, 1);
	session_changed();
}

void
session_touch(struct session *s)
{
	atomic_store(&s->last_active, (int64_t)time(NULL));
}

void
session_count_bytes(struct session *s, uint64_t n)
{
	atomic_fetch_add(&s->bytes_received, n);
	atomic_store(&s->progress_ms, pf_now_ms());
}

void
session_note_progress(struct session *s)
{
	atomic_store(&s->progress_ms, pf_now_ms());
}

uint64_t
session_idle_ms(struct session *s)
{
	uint64_t now = pf_now_ms(), then = atomic_load(&s->progress_ms);

	return now > then ? now - then : 0;
}

uint64_t
session_reserved(struct session *s)
{
	uint64_t held = atomic_load(&s->bytes_held);

	if (atomic_load(&s->state) != SESSION_RECEIVING)
		return 0;
	return s->size > held ? s->size - held : 0;
}

bool
session_head_differs(struct session *s, const void *p)
{
	return memcmp(p, s->head, s->headlen) != 0;
}

bool
session_idle_since(struct session *s, time_t before)
{
	return atomic_load(&s->streams) == 0 &&
	    atomic_load(&s->controls) == 0 &&
	    atomic_load(&s->last_active) < (int64_t)before &&
	    atomic_load(&s->state) == SESSION_RECEIVING;
}

uint8_t *
session_held_bitmap(struct session *s)
{
	uint8_t *bits;

	if ((bits = calloc(1, (size_t)s->nchunks / 8 + 1)) == NULL)
		return NULL;
	for (uint32_t i = 0; i < s->nchunks; i++)
		if (atomic_load(&s->chunks[i]) == CHUNK_DONE)
			bits[i / 8] |= (uint8_t)(1u << (i % 8));
	return bits;
}

static enum engine_state
engine_state_of(int s)
{
	switch (s) {
	case SESSION_RECEIVING:		return ENGINE_RECEIVING;
	case SESSION_ASSEMBLING:	return ENGINE_ASSEMBLING;
	case SESSION_COMPLETE:		return ENGINE_COMPLETE;
	case SESSION_CANCELLED:		return ENGINE_CANCELLED;
	case SESSION_EXPIRED:		return ENGINE_EXPIRED;
	default:			return ENGINE_FAILED;
	}
}

void
session_info(struct session *s, struct engine_session_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->id, s->id, sizeof(out->id));
	snprintf(out->user, sizeof(out->user), "%s", s->user);
	snprintf(out->name, sizeof(out->name), "%s", s->name);
	snprintf(out->peer, sizeof(out->peer), "%s", s->peer);
	out->state = engine_state_of(atomic_load(&s->state));
	out->error = (enum pf_status)atomic_load(&s->error);
	out->size = s->size;
	out->chunk_size = s->chunk_size;
	out->chunks_total = s->nchunks;
	out->chunks_acked = atomic_load(&s->chunks_acked);
	out->chunks_nacked = atomic_load(&s->chunks_nacked);
	out->chunks_resent = atomic_load(&s->chunks_resent);
	out->streams = atomic_load(&s->streams);
	out->bytes_received = atomic_load(&s->bytes_received);
	out->files = s->mf != NULL ? (uint32_t)s->mf->n : 0;
	out->tus = s->tus;
	out->created = s->created;
	out->updated = atomic_load(&s->last_active);
	if (out->state != ENGINE_RECEIVING)
		out->finished = atomic_load(&s->finished);
	if (out->state == ENGINE_COMPLETE)
		memcpy(out->digest, s->receipt, sizeof(out->digest));
}

char *
session_chunk_map(struct session *s)
{
	char *map;

	if ((map = malloc((size_t)s->nchunks + 1)) == NULL)
		return NULL;
	for (uint32_t i = 0; i < s->nchunks; i++) {
		uint8_t c = atomic_load(&s->chunks[i]);
		uint8_t sent = atomic_load(&s->tried[i]);

		if (c == CHUNK_DONE)
			map[i] = sent > 1 ? ENGINE_CHUNK_RESENT :
			    ENGINE_CHUNK_DONE;
		else if (c == CHUNK_RECEIVING)
			map[i] = ENGINE_CHUNK_RECEIVING;
		else
			map[i] = sent ? ENGINE_CHUNK_RETRY :
			    ENGINE_CHUNK_PENDING;
	}
	map[s->nchunks] = '\0';
	return map;
}

const struct manifest *
session_manifest(const struct session *s)
{
	return s->mf;
}

const char *
session_id(const struct session *s)
{
	return s->id;
}

const char *
session_user(const struct session *s)
{
	return s->user;
}

const char *
session_name(const struct session *s)
{
	return s->name;
}

bool
session_tus(const struct session *s)
{
	return s->tus;
}

bool
session_head_judged(const struct session *s)
{
	return s->headlen == (s->size < PROTO_HEAD_LEN ? s->size :
	    PROTO_HEAD_LEN);
}

enum pf_status
session_set_head(struct session *s, const uint8_t *head, size_t n)
{
	enum pf_status rc;
	json_t *meta;

	if (n > sizeof(s->head))
		return PF_EINTERNAL;
	memcpy(s->head, head, n);
	s->headlen = n;
	/* Ended meanwhile (a DELETE): its metadata is gone and stays so. */
	if (atomic_load(&s->state) != SESSION_RECEIVING)
		return PF_ECANCELLED;
	if ((meta = to_json(s, true)) == NULL)
		return PF_EINTERNAL;
	rc = storage_staging_put_meta(s->staging, meta);
	json_decref(meta);
	return rc;
}

const char *
session_client_name(const struct session *s, size_t *len)
{
	*len = s->client_name_len;
	return s->client_name;
}

uint64_t
session_size(const struct session *s)
{
	return s->size;
}

uint32_t
session_chunk_size(const struct session *s)
{
	return s->chunk_size;
}

uint32_t
session_nchunks(const struct session *s)
{
	return s->nchunks;
}

const char *
session_receipt(const struct session *s)
{
	return s->receipt;
}

enum session_state
session_state(struct session *s)
{
	return (enum session_state)atomic_load(&s->state);
}

bool
session_ready(struct session *s)
{
	return atomic_load(&s->ready);
}

enum pf_status
session_error(struct session *s)
{
	return (enum pf_status)atomic_load(&s->error);
}

uint32_t
session_chunks_acked(struct session *s)
{
	return atomic_load(&s->chunks_acked);
}

uint32_t
session_chunks_nacked(struct session *s)
{
	return atomic_load(&s->chunks_nacked);
}

uint32_t
session_chunks_duplicate(struct session *s)
{
	return atomic_load(&s->chunks_duplicate);
}

uint64_t
session_bytes_received(struct session *s)
{
	return atomic_load(&s->bytes_received);
}

uint64_t
session_held_prefix(struct session *s)
{
	uint64_t off = 0;

	for (uint32_t i = 0; i < s->nchunks &&
	    atomic_load(&s->chunks[i]) == CHUNK_DONE; i++)
		off += proto_chunk_length(s->size, s->chunk_size, i);
	return off;
}

enum pf_status
session_commit_held(struct session *s)
{
	uint8_t want[PF_SHA256_LEN];
	enum pf_status rc;

	/* Every chunk is done, so its digest stays as it is. */
	if ((rc = proto_receipt(s->size, s->chunk_size, s->digests,
	    s->nchunks, want)) != PF_OK)
		return rc == PF_ENOMEM ? PF_EINTERNAL : rc;
	/* A gateway upload is one file: no manifest for a policy to judge. */
	return session_commit(s, want, NULL);
}

enum pf_status
session_read_staged(struct session *s, uint64_t off, void *p, size_t n)
{
	return storage_staging_read(s->staging, off, p, n);
}
