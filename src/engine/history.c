/* SPDX-License-Identifier: MIT */
/* The history of finished sessions, as copies the gateway lists. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "digest.h"
#include "history.h"
#include "log.h"
#include "proto.h"
#include "session.h"

/* Failed, cancelled and expired sessions listed; older ones are dropped. */
#define HISTORY_ENDED_MAX	1000
/* Chunk maps of ended sessions are kept up to this many chunks. */
#define HISTORY_MAP_MAX		65536

/* A finished session the gateway still lists. */
struct retired {
	struct engine_session_info info;
	char			*map;	/* chunk map; NULL if not kept */
};

/* Finished sessions: completed ones until deleted, the others bounded. */
struct history {
	pthread_mutex_t		 lock;
	struct retired		*v;
	size_t			 n, cap;
	size_t			 ended;		/* entries not complete */
};

struct history *
history_new(void)
{
	struct history *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

void
history_free(struct history *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].map);
	free(h->v);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Fills out from a completed session's metadata; false if malformed. */
static bool
info_from_meta(const char *id, const json_t *meta,
    struct engine_session_info *out)
{
	const char *user, *name, *digest, *peer = "", *origin = "native";
	json_int_t size, chunk_size, created, finished = 0, bytes = 0;
	json_int_t nacked = 0, resent = 0, files = 0;
	uint32_t count;

	memset(out, 0, sizeof(*out));
	if (json_unpack((json_t *)meta, "{s:s,s:s,s:s,s:I,s:I,s:I,s?s,s?I,"
	    "s?I,s?I,s?I,s?I,s?s}", "user", &user, "name", &name, "digest",
	    &digest, "size", &size, "chunk_size", &chunk_size, "created_unix",
	    &created, "peer", &peer, "finished_unix", &finished,
	    "bytes_received", &bytes, "chunks_nacked", &nacked,
	    "chunks_resent", &resent, "files", &files, "origin", &origin) ==
	    -1 || size < 0 ||
	    chunk_size <= 0 || files < 0 || files > PROTO_MAX_FILES ||
	    chunk_size > UINT32_MAX || strlen(digest) != PF_SHA256_HEX - 1 ||
	    proto_chunk_count((uint64_t)size, (uint32_t)chunk_size,
	    &count) != PF_OK)
		return false;
	snprintf(out->id, sizeof(out->id), "%s", id);
	snprintf(out->user, sizeof(out->user), "%s", user);
	snprintf(out->name, sizeof(out->name), "%s", name);
	snprintf(out->peer, sizeof(out->peer), "%s", peer);
	snprintf(out->digest, sizeof(out->digest), "%s", digest);
	out->state = ENGINE_COMPLETE;
	out->size = (uint64_t)size;
	out->chunk_size = (uint32_t)chunk_size;
	out->chunks_total = out->chunks_acked = count;
	out->chunks_nacked = (uint32_t)nacked;
	out->chunks_resent = (uint32_t)resent;
	out->bytes_received = (uint64_t)bytes;
	out->files = (uint32_t)files;
	out->tus = strcmp(origin, "tus") == 0;
	out->created = created;
	out->finished = out->updated = finished ? finished : created;
	return true;
}

/* Appends r to the history, dropping the oldest ended entry if full. */
static enum pf_status
add(struct history *h, struct retired *r)
{
	if (r->info.state != ENGINE_COMPLETE &&
	    h->ended >= HISTORY_ENDED_MAX) {
		for (size_t i = 0; i < h->n; i++) {
			if (h->v[i].info.state == ENGINE_COMPLETE)
				continue;
			free(h->v[i].map);
			memmove(h->v + i, h->v + i + 1, (h->n - i - 1) *
			    sizeof(*h->v));
			h->n--;
			h->ended--;
			break;
		}
	}
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct retired *v = realloc(h->v, cap * sizeof(*v));

		if (v == NULL)
			return PF_ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	h->v[h->n++] = *r;
	if (r->info.state != ENGINE_COMPLETE)
		h->ended++;
	return PF_OK;
}

/* Entry id, if it is listed and (unless user is NULL) user's. */
static struct retired *
find(struct history *h, const char *id, const char *user)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i].info.id, id) == 0)
			return user == NULL || strcmp(h->v[i].info.user,
			    user) == 0 ? &h->v[i] : NULL;
	return NULL;
}

static void
drop(struct history *h, struct retired *r)
{
	if (r->info.state != ENGINE_COMPLETE)
		h->ended--;
	free(r->map);
	memmove(r, r + 1, (size_t)(h->v + h->n - r - 1) * sizeof(*r));
	h->n--;
}

void
history_add_session(struct history *h, struct session *s)
{
	struct retired r = { .map = NULL };

	session_info(s, &r.info);
	r.info.streams = 0;
	if (r.info.state != ENGINE_COMPLETE &&
	    session_nchunks(s) <= HISTORY_MAP_MAX)
		r.map = session_chunk_map(s);
	pthread_mutex_lock(&h->lock);
	if (add(h, &r) != PF_OK)
		free(r.map);
	pthread_mutex_unlock(&h->lock);
	session_changed();
}

enum pf_status
history_add_stored(struct history *h, const char *id, const json_t *meta)
{
	struct retired r = { .map = NULL };
	enum pf_status rc;

	if (!proto_id_valid(id))
		return PF_OK;
	if (!info_from_meta(id, meta, &r.info)) {
		log_warn("stored session %s has bad metadata; not listing it",
		    id);
		return PF_OK;
	}
	pthread_mutex_lock(&h->lock);
	rc = add(h, &r);
	pthread_mutex_unlock(&h->lock);
	session_changed();
	return rc;
}

enum pf_status
history_ended_reason(struct history *h, const char *id, const char *user)
{
	struct retired *r;
	enum pf_status rc = PF_OK;

	pthread_mutex_lock(&h->lock);
	if ((r = find(h, id, user)) != NULL &&
	    r->info.state == ENGINE_CANCELLED)
		rc = PF_ECANCELLED;
	pthread_mutex_unlock(&h->lock);
	return rc;
}

enum pf_status
history_copy_since(struct history *h, int64_t since,
    struct engine_session_info **v, size_t n, size_t *added)
{
	struct engine_session_info *nv;

	*added = 0;
	pthread_mutex_lock(&h->lock);
	if ((nv = realloc(*v, (n + h->n + 1) * sizeof(*nv))) != NULL) {
		*v = nv;
		for (size_t i = 0; i < h->n; i++)
			if (h->v[i].info.finished >= since)
				nv[n + (*added)++] = h->v[i].info;
	}
	pthread_mutex_unlock(&h->lock);
	return nv != NULL ? PF_OK : PF_ENOMEM;
}

void
history_count(struct history *h, const char *user,
    uint64_t counts[ENGINE_NSTATES])
{
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < h->n; i++)
		if (user == NULL || strcmp(h->v[i].info.user, user) == 0)
			counts[h->v[i].info.state]++;
	pthread_mutex_unlock(&h->lock);
}

bool
history_get(struct history *h, const char *id, const char *user,
    struct engine_session_info *out)
{
	struct retired *r;

	pthread_mutex_lock(&h->lock);
	if ((r = find(h, id, user)) != NULL)
		*out = r->info;
	pthread_mutex_unlock(&h->lock);
	return r != NULL;
}

enum pf_status
history_chunk_map(struct history *h, const char *id, char **out)
{
	struct retired *r;
	enum pf_status rc = PF_ENOSESSION;

	*out = NULL;
	pthread_mutex_lock(&h->lock);
	if ((r = find(h, id, NULL)) == NULL)
		goto out;
	if (r->info.state == ENGINE_COMPLETE) {
		rc = PF_ENOMEM;
		if ((*out = malloc((size_t)r->info.chunks_total + 1)) == NULL)
			goto out;
		memset(*out, ENGINE_CHUNK_DONE, r->info.chunks_total);
		(*out)[r->info.chunks_total] = '\0';
		rc = PF_OK;
	} else if (r->map == NULL)
		rc = PF_EIO;
	else
		rc = (*out = strdup(r->map)) ? PF_OK : PF_ENOMEM;
out:
	pthread_mutex_unlock(&h->lock);
	return rc;
}

bool
history_take(struct history *h, const char *id, const char *user,
    struct engine_session_info *out)
{
	struct retired *r;

	pthread_mutex_lock(&h->lock);
	if ((r = find(h, id, user)) != NULL) {
		*out = r->info;
		drop(h, r);
	}
	pthread_mutex_unlock(&h->lock);
	session_changed();
	return r != NULL;
}

enum pf_status
history_put(struct history *h, const struct engine_session_info *info)
{
	struct retired r = { .info = *info, .map = NULL };
	enum pf_status rc;

	pthread_mutex_lock(&h->lock);
	rc = add(h, &r);
	pthread_mutex_unlock(&h->lock);
	session_changed();
	return rc;
}
