/* SPDX-License-Identifier: MIT */
/* Copies of engine state for the gateway, and the history of sessions. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

#include "engine_int.h"
#include "log.h"
#include "proto.h"
#include "session.h"
#include "storage.h"

/* Failed, cancelled and expired sessions listed; older ones are dropped. */
#define HISTORY_ENDED_MAX	1000
/* Chunk maps of ended sessions are kept up to this many chunks. */
#define HISTORY_MAP_MAX		65536

const uint64_t engine_hist_bounds_us[ENGINE_HIST_BUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000, 30000000
};

static enum engine_state
state_of(int s)
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

/* Reads a live session. Its strings are fixed once it is ready. */
static void
info_from_session(struct session *s, struct engine_session_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->id, s->id, sizeof(out->id));
	snprintf(out->user, sizeof(out->user), "%s", s->user);
	snprintf(out->name, sizeof(out->name), "%s", s->name);
	snprintf(out->peer, sizeof(out->peer), "%s", s->peer);
	out->state = state_of(atomic_load(&s->state));
	out->error = (enum pf_status)atomic_load(&s->error);
	out->size = s->size;
	out->chunk_size = s->chunk_size;
	out->chunks_total = s->nchunks;
	out->chunks_acked = atomic_load(&s->chunks_acked);
	out->chunks_nacked = atomic_load(&s->chunks_nacked);
	out->chunks_resent = atomic_load(&s->chunks_resent);
	out->streams = atomic_load(&s->streams);
	out->bytes_received = atomic_load(&s->bytes_received);
	out->created = s->created;
	out->updated = atomic_load(&s->last_active);
	if (out->state != ENGINE_RECEIVING)
		out->finished = atomic_load(&s->finished);
	if (out->state == ENGINE_COMPLETE)
		memcpy(out->digest, s->receipt, sizeof(out->digest));
}

static char *
map_of_session(struct session *s)
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

/* Fills out from a completed session's metadata; false if malformed. */
static bool
info_from_meta(const char *id, const json_t *meta,
    struct engine_session_info *out)
{
	const char *user, *name, *digest, *peer = "";
	json_int_t size, chunk_size, created, finished = 0, bytes = 0;
	json_int_t nacked = 0, resent = 0;
	uint32_t count;

	memset(out, 0, sizeof(*out));
	if (json_unpack((json_t *)meta, "{s:s,s:s,s:s,s:I,s:I,s:I,s?s,s?I,"
	    "s?I,s?I,s?I}", "user", &user, "name", &name, "digest", &digest,
	    "size", &size, "chunk_size", &chunk_size, "created_unix",
	    &created, "peer", &peer, "finished_unix", &finished,
	    "bytes_received", &bytes, "chunks_nacked", &nacked,
	    "chunks_resent", &resent) == -1 || size < 0 || chunk_size <= 0 ||
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
	out->created = created;
	out->finished = out->updated = finished ? finished : created;
	return true;
}

/* Appends r to the history, dropping the oldest ended entry if full. */
static enum pf_status
history_add(struct engine_history *h, struct engine_retired *r)
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
		struct engine_retired *v = realloc(h->v, cap * sizeof(*v));

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

static struct engine_retired *
history_find(struct engine_history *h, const char *id)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i].info.id, id) == 0)
			return &h->v[i];
	return NULL;
}

static void
history_drop(struct engine_history *h, struct engine_retired *r)
{
	if (r->info.state != ENGINE_COMPLETE)
		h->ended--;
	free(r->map);
	memmove(r, r + 1, (size_t)(h->v + h->n - r - 1) * sizeof(*r));
	h->n--;
}

void
engine_retire(struct engine *e, struct session *s)
{
	struct engine_retired r = { .map = NULL };
	int state = atomic_load(&s->state);

	if (atomic_load(&s->ready) && state != SESSION_RECEIVING) {
		info_from_session(s, &r.info);
		r.info.streams = 0;
		if (state != SESSION_COMPLETE && s->nchunks <= HISTORY_MAP_MAX)
			r.map = map_of_session(s);
		atomic_fetch_add(&e->sessions_ended[r.info.state], 1);
		pthread_mutex_lock(&e->history.lock);
		if (history_add(&e->history, &r) != PF_OK)
			free(r.map);
		pthread_mutex_unlock(&e->history.lock);
	}
	session_remove(e->sessions, s);
}

enum pf_status
engine_ended_reason(struct engine *e, const char *id, const char *user)
{
	struct engine_retired *r;
	enum pf_status rc = PF_OK;

	pthread_mutex_lock(&e->history.lock);
	if ((r = history_find(&e->history, id)) != NULL &&
	    r->info.state == ENGINE_CANCELLED &&
	    (user == NULL || strcmp(r->info.user, user) == 0))
		rc = PF_ECANCELLED;
	pthread_mutex_unlock(&e->history.lock);
	return rc;
}

static enum pf_status
load_one(void *arg, const char *id, const json_t *meta)
{
	struct engine *e = arg;
	struct engine_retired r = { .map = NULL };
	uuid_t uu;

	if (uuid_parse(id, uu) != 0)
		return PF_OK;
	if (!info_from_meta(id, meta, &r.info)) {
		log_warn("stored session %s has bad metadata; not listing it",
		    id);
		return PF_OK;
	}
	return history_add(&e->history, &r);
}

enum pf_status
engine_history_load(struct engine *e)
{
	return storage_final_foreach(e->storage, load_one, e);
}

void
engine_history_free(struct engine *e)
{
	for (size_t i = 0; i < e->history.n; i++)
		free(e->history.v[i].map);
	free(e->history.v);
	pthread_mutex_destroy(&e->history.lock);
}

struct collect {
	struct engine_session_info	*v;
	size_t				 n, cap;
	bool				 failed;
};

static void
collect_one(struct session *s, void *arg)
{
	struct collect *c = arg;

	if (!atomic_load(&s->ready) || c->failed)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct engine_session_info *v = realloc(c->v, cap *
		    sizeof(*v));

		if (v == NULL) {
			c->failed = true;
			return;
		}
		c->v = v;
		c->cap = cap;
	}
	info_from_session(s, &c->v[c->n++]);
}

enum pf_status
engine_sessions(struct engine *e, struct engine_session_info **out,
    size_t *n)
{
	return engine_sessions_since(e, INT64_MIN, out, n);
}

enum pf_status
engine_sessions_since(struct engine *e, int64_t since,
    struct engine_session_info **out, size_t *n)
{
	struct collect c = { .v = NULL };
	struct engine_session_info *v = NULL;
	size_t live, ended = 0;

	session_foreach(e->sessions, collect_one, &c);
	if (c.failed) {
		free(c.v);
		return PF_ENOMEM;
	}
	live = c.n;
	/* Only a copy under the lock: engine_retire waits for it. */
	pthread_mutex_lock(&e->history.lock);
	if ((v = realloc(c.v, (live + e->history.n + 1) * sizeof(*v))) !=
	    NULL) {
		c.v = v;
		for (size_t i = 0; i < e->history.n; i++)
			if (e->history.v[i].info.finished >= since)
				v[live + ended++] = e->history.v[i].info;
	}
	pthread_mutex_unlock(&e->history.lock);
	if (v == NULL) {
		free(c.v);
		return PF_ENOMEM;
	}
	/*
	 * A session being retired is in both for a moment: the live copy
	 * stays. This is live x finished comparisons, hence after the lock.
	 */
	for (size_t i = 0; i < ended; i++) {
		size_t j;

		for (j = 0; j < live; j++)
			if (strcmp(v[j].id, v[live + i].id) == 0)
				break;
		if (j == live)
			v[c.n++] = v[live + i];
	}
	*out = v;
	*n = c.n;
	return PF_OK;
}

struct count {
	const char	*user;
	uint64_t	*counts;
};

static void
count_one(struct session *s, void *arg)
{
	struct count *c = arg;
	int state = atomic_load(&s->state);

	/* Ended ones are being retired: the history counts them. */
	if (atomic_load(&s->ready) && (state == SESSION_RECEIVING ||
	    state == SESSION_ASSEMBLING) && (c->user == NULL ||
	    strcmp(s->user, c->user) == 0))
		c->counts[state_of(state)]++;
}

void
engine_count_sessions(struct engine *e, const char *user,
    uint64_t counts[ENGINE_NSTATES])
{
	struct count c = { user, counts };

	memset(counts, 0, ENGINE_NSTATES * sizeof(*counts));
	/* A session being retired may be counted twice for a moment. */
	session_foreach(e->sessions, count_one, &c);
	pthread_mutex_lock(&e->history.lock);
	for (size_t i = 0; i < e->history.n; i++)
		if (user == NULL || strcmp(e->history.v[i].info.user,
		    user) == 0)
			counts[e->history.v[i].info.state]++;
	pthread_mutex_unlock(&e->history.lock);
}

/* A ready live session by id, with a reference; NULL if none. */
static struct session *
live_session(struct engine *e, const char *id)
{
	struct session *s;

	if (session_lookup(e->sessions, id, &s) != PF_OK)
		return NULL;
	if (!atomic_load(&s->ready)) {
		session_unref(s);
		return NULL;
	}
	return s;
}

enum pf_status
engine_session(struct engine *e, const char *id,
    struct engine_session_info *out)
{
	struct engine_retired *r;
	struct session *s;
	enum pf_status rc = PF_ENOSESSION;

	if ((s = live_session(e, id)) != NULL) {
		info_from_session(s, out);
		session_unref(s);
		return PF_OK;
	}
	pthread_mutex_lock(&e->history.lock);
	if ((r = history_find(&e->history, id)) != NULL) {
		*out = r->info;
		rc = PF_OK;
	}
	pthread_mutex_unlock(&e->history.lock);
	return rc;
}

enum pf_status
engine_chunk_map(struct engine *e, const char *id, char **out)
{
	struct engine_retired *r;
	struct session *s;
	enum pf_status rc = PF_ENOSESSION;

	*out = NULL;
	if ((s = live_session(e, id)) != NULL) {
		*out = map_of_session(s);
		session_unref(s);
		return *out ? PF_OK : PF_ENOMEM;
	}
	pthread_mutex_lock(&e->history.lock);
	if ((r = history_find(&e->history, id)) == NULL)
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
	pthread_mutex_unlock(&e->history.lock);
	return rc;
}

void
engine_stats(struct engine *e, struct engine_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->started = e->start_time;
	out->bytes_received = atomic_load(&e->bytes_received);
	out->chunks_acked = atomic_load(&e->chunks_acked);
	out->chunks_nacked = atomic_load(&e->chunks_nacked);
	out->chunks_resent = atomic_load(&e->chunks_resent);
	out->auth_failures = atomic_load(&e->auth_failures);
	for (int i = 0; i < ENGINE_NSTATES; i++)
		out->sessions_ended[i] = atomic_load(&e->sessions_ended[i]);
	pthread_mutex_lock(&e->lock);
	out->connections_open = e->nconns;
	pthread_mutex_unlock(&e->lock);
	out->connections_authenticating = atomic_load(&e->authenticating);
	/* Cumulative, as Prometheus wants; sum last so it never lags. */
	for (int i = 0; i <= ENGINE_HIST_BUCKETS; i++)
		out->hist_counts[i] = (i ? out->hist_counts[i - 1] : 0) +
		    atomic_load(&e->hist[i]);
	out->hist_sum_us = atomic_load(&e->hist_sum_us);
}

void
engine_observe_chunk(struct engine *e, uint64_t us)
{
	int i;

	for (i = 0; i < ENGINE_HIST_BUCKETS; i++)
		if (us <= engine_hist_bounds_us[i])
			break;
	atomic_fetch_add(&e->hist_sum_us, us);
	atomic_fetch_add(&e->hist[i], 1);
}

enum pf_status
engine_remove_session(struct engine *e, const char *id, const char *user,
    bool *cancelled)
{
	struct engine_retired *r, gone = { .map = NULL };
	struct session *s;
	enum pf_status rc = PF_ENOSESSION;

	*cancelled = false;
	if ((s = live_session(e, id)) != NULL) {
		if (user != NULL && strcmp(s->user, user) != 0)
			rc = PF_ENOSESSION;
		else if (!engine_end_session(e, s, SESSION_CANCELLED,
		    PF_ECANCELLED))
			rc = PF_EBUSY;	/* assembling; a moment later, gone */
		else {
			log_info("session %s cancelled over HTTP by %s", s->id,
			    user ? user : "an admin");
			*cancelled = true;
			rc = PF_OK;
		}
		session_unref(s);
		return rc;
	}
	/*
	 * The entry leaves the history first and the file goes after, outside
	 * the lock: engine_retire (a transfer ending) waits for that lock and
	 * must not wait for unlinks and an fsync besides. Meanwhile the
	 * session is simply not there any more.
	 */
	pthread_mutex_lock(&e->history.lock);
	if ((r = history_find(&e->history, id)) != NULL &&
	    (user == NULL || strcmp(r->info.user, user) == 0)) {
		gone.info = r->info;
		history_drop(&e->history, r);
		rc = PF_OK;
	}
	pthread_mutex_unlock(&e->history.lock);
	if (rc != PF_OK)
		return rc;
	if (gone.info.state == ENGINE_COMPLETE && (rc = storage_final_remove(
	    e->storage, gone.info.id, gone.info.name)) != PF_OK) {
		/* Still (partly) stored: list it again. */
		pthread_mutex_lock(&e->history.lock);
		if (history_add(&e->history, &gone) != PF_OK)
			log_warn("%s: session %s could not be listed again",
			    __func__, gone.info.id);
		pthread_mutex_unlock(&e->history.lock);
		return rc;
	}
	log_info("session %s (\"%s\") deleted", gone.info.id, gone.info.name);
	return PF_OK;
}

enum pf_status
engine_open_file(struct engine *e, const char *id, const char *user,
    int *fd, struct engine_session_info *info)
{
	struct engine_retired *r;
	bool listed = false;

	*fd = -1;
	pthread_mutex_lock(&e->history.lock);
	if ((r = history_find(&e->history, id)) != NULL &&
	    (user == NULL || strcmp(r->info.user, user) == 0)) {
		*info = r->info;
		listed = true;
	}
	pthread_mutex_unlock(&e->history.lock);
	/*
	 * Opened outside the lock, which transfers take to retire sessions.
	 * A file deleted meanwhile (or missing from storage) is PF_ENOSESSION:
	 * a 404, not a "not complete".
	 */
	if (listed)
		return info->state == ENGINE_COMPLETE ? storage_final_open(
		    e->storage, id, info->name, fd) : PF_EBUSY;
	/* Not finished (yet): the caller tells 404 from 409 by this. */
	if (engine_session(e, id, info) == PF_OK &&
	    (user == NULL || strcmp(info->user, user) == 0))
		return PF_EBUSY;
	return PF_ENOSESSION;
}

bool
engine_ready(struct engine *e)
{
	return e->started && !atomic_load(&e->stopping) &&
	    storage_writable(e->storage);
}

enum pf_status
engine_check_password(struct engine *e, const char *user,
    const char *password)
{
	return auth_users_check(e->users, user, password, e->secret);
}

void
engine_count_auth_failure(struct engine *e)
{
	atomic_fetch_add(&e->auth_failures, 1);
}
