/* SPDX-License-Identifier: MIT */
/* The table of live sessions, with UUIDv4 ids and reference counts. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "clock.h"
#include "proto.h"
#include "session.h"
#include "storage.h"

struct session_table {
	pthread_mutex_t	  lock;
	struct session	**slots;
	unsigned	  cap;		/* slots allocated */
	unsigned	  max;		/* limit for new sessions */
	unsigned	  count;
};

struct session_table *
session_table_new(unsigned max)
{
	struct session_table *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->slots = calloc(max ? max : 1, sizeof(*t->slots))) == NULL) {
		free(t);
		return NULL;
	}
	t->cap = max ? max : 1;
	t->max = max;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

static void
session_free(struct session *s)
{
	int state = atomic_load(&s->state);

	if (state == SESSION_FAILED || state == SESSION_CANCELLED ||
	    state == SESSION_EXPIRED)
		storage_staging_discard(s->storage, s->staging);
	else
		storage_staging_close(s->staging);
	pthread_mutex_destroy(&s->lock);
	pf_wipe(s->key, sizeof(s->key));
	free(s->client_name);
	free((void *)s->chunks);
	free((void *)s->tried);
	free(s->digests);
	free(s);
}

void
session_table_free(struct session_table *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; i < t->cap; i++)
		if (t->slots[i] != NULL)
			session_unref(t->slots[i]);
	pthread_mutex_destroy(&t->lock);
	free(t->slots);
	free(t);
}

enum pf_status
session_create(struct session_table *t, uint32_t nchunks, const char *id,
    struct session **out)
{
	struct session *s;
	uuid_t uu;
	unsigned slot;
	enum pf_status rc = PF_ENOMEM;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return PF_ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	/* calloc(0) may return NULL; keep one byte so NULL means ENOMEM. */
	s->chunks = calloc(nchunks ? nchunks : 1, sizeof(*s->chunks));
	s->digests = calloc(nchunks ? nchunks : 1, PF_SHA256_LEN);
	s->tried = calloc(nchunks ? nchunks : 1, sizeof(*s->tried));
	if (s->chunks == NULL || s->digests == NULL || s->tried == NULL)
		goto out;
	s->nchunks = nchunks;
	if (id != NULL)
		snprintf(s->id, sizeof(s->id), "%s", id);
	else {
		/* libuuid reads /dev/urandom here: a version 4, random id. */
		uuid_generate_random(uu);
		uuid_unparse_lower(uu, s->id);
	}
	s->created = time(NULL);
	atomic_init(&s->last_active, (int64_t)s->created);
	atomic_init(&s->state, SESSION_RECEIVING);
	atomic_init(&s->refs, 2);

	rc = PF_EBUSY;
	pthread_mutex_lock(&t->lock);
	/*
	 * Recovered sessions (id given) are admitted over the limit: they
	 * hold acknowledged chunks, and a lower limit after a restart must
	 * not throw those away.
	 */
	if (t->count == t->cap && id != NULL) {
		struct session **n = realloc(t->slots, 2 * t->cap *
		    sizeof(*n));

		if (n != NULL) {
			memset(n + t->cap, 0, t->cap * sizeof(*n));
			t->slots = n;
			t->cap *= 2;
		}
	}
	if ((t->count < t->max || id != NULL) && t->count < t->cap) {
		for (slot = 0; t->slots[slot] != NULL; slot++)
			;
		t->slots[slot] = s;
		t->count++;
		rc = PF_OK;
	}
	pthread_mutex_unlock(&t->lock);
	if (rc != PF_OK)
		goto out;
	*out = s;
	s = NULL;
out:
	if (s != NULL)
		session_free(s);
	return rc;
}

enum pf_status
session_lookup(struct session_table *t, const char *id, struct session **out)
{
	enum pf_status rc = PF_ENOSESSION;

	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->cap; i++) {
		struct session *s = t->slots[i];

		if (s != NULL && strcmp(s->id, id) == 0) {
			session_ref(s);
			*out = s;
			rc = PF_OK;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void
session_remove(struct session_table *t, struct session *s)
{
	bool found = false;

	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->cap; i++) {
		if (t->slots[i] == s) {
			t->slots[i] = NULL;
			t->count--;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (found)
		session_unref(s);
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

bool
session_leave_receiving(struct session *s, enum session_state state)
{
	int expect = SESSION_RECEIVING;

	if (!atomic_compare_exchange_strong(&s->state, &expect, (int)state))
		return false;
	atomic_store(&s->finished, (int64_t)time(NULL));
	return true;
}

unsigned
session_count(struct session_table *t)
{
	unsigned n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void
session_get_key(struct session *s, uint8_t key[PF_SHA256_LEN])
{
	pthread_mutex_lock(&s->lock);
	memcpy(key, s->key, PF_SHA256_LEN);
	pthread_mutex_unlock(&s->lock);
}

void
session_take(struct session *s, uint64_t owner,
    const uint8_t key[PF_SHA256_LEN])
{
	pthread_mutex_lock(&s->lock);
	memcpy(s->key, key, PF_SHA256_LEN);
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

void
session_foreach(struct session_table *t,
    void (*fn)(struct session *s, void *arg), void *arg)
{
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->cap; i++)
		if (t->slots[i] != NULL)
			fn(t->slots[i], arg);
	pthread_mutex_unlock(&t->lock);
}

json_t *
session_to_json(const struct session *s, bool staging)
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
	if (j == NULL)
		return NULL;
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

enum pf_status
session_id_from_json(const json_t *meta, char id[SESSION_ID_LEN + 1])
{
	const char *v = json_string_value(json_object_get(meta, "session"));
	uuid_t uu;

	if (v == NULL || strlen(v) != SESSION_ID_LEN || uuid_parse(v, uu) != 0)
		return PF_EBADFRAME;
	memcpy(id, v, SESSION_ID_LEN + 1);
	return PF_OK;
}

enum pf_status
session_from_json(struct session *s, const json_t *meta)
{
	const char *user, *name, *cname, *head64;
	json_int_t size, chunk_size, created;
	size_t cname_len;
	char safe[POLICY_MAX_NAME + 1];
	uint32_t count;
	long headlen;

	if (json_unpack((json_t *)meta, "{s:s,s:s,s:s%,s:I,s:I,s:I,s:s}",
	    "user", &user, "name", &name, "client_name", &cname, &cname_len,
	    "size", &size, "chunk_size", &chunk_size, "created_unix",
	    &created, "head", &head64) == -1)
		return PF_EBADFRAME;
	/* A damaged or edited file is treated like hostile input. */
	if (!auth_user_valid(user) || size < 0 || !proto_chunk_size_valid(
	    (uint64_t)chunk_size) || proto_chunk_count((uint64_t)size,
	    (uint32_t)chunk_size, &count) != PF_OK || count != s->nchunks ||
	    policy_sanitize_name(name, strlen(name), safe) != PF_OK ||
	    strcmp(safe, name) != 0)
		return PF_EBADFRAME;
	headlen = pf_base64_decode(head64, s->head, sizeof(s->head));
	if (headlen < 0 || (uint64_t)headlen != ((uint64_t)size <
	    POLICY_HEAD_LEN ? (uint64_t)size : POLICY_HEAD_LEN))
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
