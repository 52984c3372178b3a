/* SPDX-License-Identifier: MIT */
/* The table of live sessions, with UUIDv4 ids and reference counts. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "session.h"
#include "storage.h"

struct session_table {
	pthread_mutex_t	  lock;
	struct session	**slots;
	unsigned	  max;
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
	t->max = max;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

static void
session_free(struct session *s)
{
	if (s->staging != NULL)
		storage_staging_discard(s->storage, s->staging);
	pf_wipe(s->key, sizeof(s->key));
	free(s->client_name);
	free((void *)s->chunks);
	free(s->digests);
	free(s);
}

void
session_table_free(struct session_table *t)
{
	if (t == NULL)
		return;
	for (unsigned i = 0; i < t->max; i++)
		if (t->slots[i] != NULL)
			session_unref(t->slots[i]);
	pthread_mutex_destroy(&t->lock);
	free(t->slots);
	free(t);
}

enum pf_status
session_create(struct session_table *t, uint32_t nchunks, struct session **out)
{
	struct session *s;
	uuid_t uu;
	unsigned slot;
	enum pf_status rc = PF_ENOMEM;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return PF_ENOMEM;
	/* calloc(0) may return NULL; keep one byte so NULL means ENOMEM. */
	s->chunks = calloc(nchunks ? nchunks : 1, sizeof(*s->chunks));
	s->digests = calloc(nchunks ? nchunks : 1, PF_SHA256_LEN);
	if (s->chunks == NULL || s->digests == NULL)
		goto out;
	s->nchunks = nchunks;
	/* libuuid reads /dev/urandom here: a version 4, random id. */
	uuid_generate_random(uu);
	uuid_unparse_lower(uu, s->id);
	s->created = time(NULL);
	atomic_init(&s->state, SESSION_RECEIVING);
	atomic_init(&s->refs, 2);

	rc = PF_EBUSY;
	pthread_mutex_lock(&t->lock);
	if (t->count < t->max) {
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
	for (unsigned i = 0; i < t->max; i++) {
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
	for (unsigned i = 0; i < t->max; i++) {
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

	return atomic_compare_exchange_strong(&s->state, &expect, (int)state);
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
