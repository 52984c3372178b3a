/* SPDX-License-Identifier: MIT */
/*
 * What the gateway asks of the engine (engine.h): copies of live and
 * finished sessions, counters, cancel and delete, stored files, logins.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "history.h"
#include "keptlists.h"
#include "log.h"
#include "registry.h"
#include "session.h"
#include "storage.h"
#include "throttle.h"
#include "unpack.h"

struct collect {
	struct engine_session_info	*v;
	size_t				 n, cap;
	bool				 failed;
};

static void
collect_one(struct session *s, void *arg)
{
	struct collect *c = arg;

	if (!session_ready(s) || c->failed)
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
	session_info(s, &c->v[c->n++]);
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
	struct engine_session_info *v;
	size_t live, ended = 0;

	registry_foreach(e->registry, collect_one, &c);
	if (c.failed || history_copy_since(registry_history(e->registry),
	    since, &c.v, c.n, &ended) != PF_OK) {
		free(c.v);
		return PF_ENOMEM;
	}
	v = c.v;
	live = c.n;
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
	enum session_state state = session_state(s);

	/* Ended ones are being retired: the history counts them. */
	if (session_ready(s) && (state == SESSION_RECEIVING ||
	    state == SESSION_ASSEMBLING) && (c->user == NULL ||
	    strcmp(session_user(s), c->user) == 0))
		c->counts[state == SESSION_RECEIVING ? ENGINE_RECEIVING :
		    ENGINE_ASSEMBLING]++;
}

void
engine_count_sessions(struct engine *e, const char *user,
    uint64_t counts[ENGINE_NSTATES])
{
	struct count c = { user, counts };

	memset(counts, 0, ENGINE_NSTATES * sizeof(*counts));
	/* A session being retired may be counted twice for a moment. */
	registry_foreach(e->registry, count_one, &c);
	history_count(registry_history(e->registry), user, counts);
}

/* A ready live session by id, with a reference; NULL if none. */
static struct session *
live_session(struct engine *e, const char *id)
{
	struct session *s;

	if (registry_lookup(e->registry, id, &s) != PF_OK)
		return NULL;
	if (!session_ready(s)) {
		session_unref(s);
		return NULL;
	}
	return s;
}

enum pf_status
engine_session(struct engine *e, const char *id,
    struct engine_session_info *out)
{
	struct session *s;

	if ((s = live_session(e, id)) != NULL) {
		session_info(s, out);
		session_unref(s);
		return PF_OK;
	}
	return history_get(registry_history(e->registry), id, NULL, out) ?
	    PF_OK : PF_ENOSESSION;
}

enum pf_status
engine_chunk_map(struct engine *e, const char *id, char **out)
{
	struct session *s;

	*out = NULL;
	if ((s = live_session(e, id)) != NULL) {
		*out = session_chunk_map(s);
		session_unref(s);
		return *out ? PF_OK : PF_ENOMEM;
	}
	return history_chunk_map(registry_history(e->registry), id, out);
}

uint64_t
engine_generation(struct engine *e)
{
	(void)e;
	return session_generation();
}

void
engine_stats(struct engine *e, struct engine_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->started = e->start_time;
	counters_read(&e->counters, out);
	pthread_mutex_lock(&e->lock);
	out->connections_open = e->nconns;
	pthread_mutex_unlock(&e->lock);
}

/* Cancels live session s for user (NULL: an admin). */
static enum pf_status
cancel_live(struct engine *e, struct session *s, const char *user,
    bool *cancelled)
{
	enum pf_status rc;

	if (user != NULL && strcmp(session_user(s), user) != 0)
		return PF_ENOSESSION;
	if (!registry_end(e->registry, s, SESSION_CANCELLED, PF_ECANCELLED))
		return PF_EBUSY;	/* assembling; a moment later, gone */
	/* Answered as done, the cancel must outlive a power loss. */
	if ((rc = session_end_status(s)) != PF_OK)
		return rc;
	log_info("session %s cancelled over HTTP by %s", session_id(s),
	    user ? user : "an admin");
	*cancelled = true;
	return PF_OK;
}

enum pf_status
engine_remove_session(struct engine *e, const char *id, const char *user,
    bool *cancelled)
{
	struct history *h = registry_history(e->registry);
	struct engine_session_info gone;
	struct session *s;
	enum pf_status rc;

	*cancelled = false;
	if ((s = live_session(e, id)) != NULL) {
		rc = cancel_live(e, s, user, cancelled);
		session_unref(s);
		return rc;
	}
	/*
	 * The entry leaves the history first and the file goes after, outside
	 * its lock: registry_retire (a transfer ending) waits for that lock
	 * and must not wait for unlinks and an fsync besides. Meanwhile the
	 * session is simply not there any more.
	 */
	if (!history_take(h, id, user, &gone))
		return PF_ENOSESSION;
	if (gone.state == ENGINE_COMPLETE && (rc = storage_final_remove(
	    e->storage, gone.id, gone.name)) != PF_OK) {
		/* Still (partly) stored: list it again. */
		if (history_put(h, &gone) != PF_OK)
			log_warn("%s: session %s could not be listed again",
			    __func__, gone.id);
		return rc;
	}
	kept_lists_drop(e->lists, gone.id);
	log_info("session %s (\"%s\") deleted", gone.id, gone.name);
	return PF_OK;
}

enum pf_status
engine_open_file(struct engine *e, const char *id, const char *user,
    int *fd, struct engine_session_info *info)
{
	*fd = -1;
	/*
	 * Opened outside the history's lock, which transfers take to retire
	 * sessions. A file deleted meanwhile (or missing from storage) is
	 * PF_ENOSESSION: a 404, not a "not complete".
	 */
	if (history_get(registry_history(e->registry), id, user, info))
		return info->state == ENGINE_COMPLETE ? storage_final_open(
		    e->storage, id, info->name, fd) : PF_EBUSY;
	/* Not finished (yet): the caller tells 404 from 409 by this. */
	if (engine_session(e, id, info) == PF_OK &&
	    (user == NULL || strcmp(info->user, user) == 0))
		return PF_EBUSY;
	return PF_ENOSESSION;
}

/*
 * PF_OK if id is a finished transfer (of user, unless NULL) with info
 * filled; PF_EBUSY if it is not finished (yet), PF_ENOSESSION if unknown
 * (or another's) or not a transfer.
 */
static enum pf_status
finished_transfer(struct engine *e, const char *id, const char *user,
    struct engine_session_info *info)
{
	if (!history_get(registry_history(e->registry), id, user, info))
		return engine_session(e, id, info) == PF_OK && (user ==
		    NULL || strcmp(info->user, user) == 0) ? PF_EBUSY :
		    PF_ENOSESSION;
	if (info->state != ENGINE_COMPLETE)
		return PF_EBUSY;
	return info->files > 0 ? PF_OK : PF_ENOSESSION;
}

enum pf_status
engine_transfer_files(struct engine *e, const char *id, const char *user,
    json_t **files)
{
	struct engine_session_info info;
	enum pf_status rc;

	*files = NULL;
	if ((rc = finished_transfer(e, id, user, &info)) != PF_OK)
		return rc;
	if ((*files = storage_final_list(e->storage, id,
	    UNPACK_FILES_NAME)) == NULL)
		return PF_ENOSESSION;
	return PF_OK;
}

struct list_load {
	struct storage	*storage;
	const char	*id;
};

static json_t *
load_list(void *arg)
{
	struct list_load *l = arg;

	return storage_final_list(l->storage, l->id, UNPACK_FILES_NAME);
}

enum pf_status
engine_open_transfer_file(struct engine *e, const char *id,
    const char *path, int *fd, char digest[ENGINE_DIGEST_HEX])
{
	struct engine_session_info info;
	struct list_load l = { e->storage, id };
	const json_t *f;
	json_t *list;
	const char *p;
	enum pf_status rc = PF_ENOSESSION;

	*fd = -1;
	if (finished_transfer(e, id, NULL, &info) != PF_OK)
		return PF_ENOSESSION;
	/* The list is shared (keptlists.h): only read here. */
	f = kept_lists_find(e->lists, id, path, load_list, &l, &list);
	p = json_string_value(json_object_get(f, "path"));
	/* Only a path the list names as stored: nothing else opens. */
	if (p != NULL && !json_is_true(json_object_get(f, "dir")) &&
	    json_integer_value(json_object_get(f, "status")) == 0) {
		snprintf(digest, ENGINE_DIGEST_HEX, "%s",
		    json_string_value(json_object_get(f, "digest")) ?
		    json_string_value(json_object_get(f, "digest")) : "");
		rc = storage_final_open(e->storage, id, p, fd);
	}
	json_decref(list);
	return rc;
}

enum pf_status
engine_open_listed_file(struct engine *e, const char *id, const json_t *list,
    size_t i, int *fd)
{
	const json_t *f = json_array_get(list, i);
	const char *p = json_string_value(json_object_get(f, "path"));

	*fd = -1;
	if (p == NULL || json_is_true(json_object_get(f, "dir")) ||
	    json_integer_value(json_object_get(f, "status")) != 0)
		return PF_ENOSESSION;
	return storage_final_open(e->storage, id, p, fd);
}

bool
engine_ready(struct engine *e)
{
	return e->started && !atomic_load(&e->stopping) &&
	    storage_writable(e->storage);
}

unsigned
engine_login_wait(struct engine *e, const char *addr, const char *user)
{
	return throttle_check(e->throttle, addr, user);
}

enum pf_status
engine_check_password(struct engine *e, const char *addr, const char *user,
    const char *password, unsigned *wait)
{
	/* Begun only now: a cached login is no attempt to count. */
	if ((*wait = throttle_begin(e->throttle, addr, user)) > 0)
		return PF_ETHROTTLED;
	if (auth_users_check(e->users, user, password, e->secret) == PF_OK) {
		throttle_succeeded(e->throttle, addr, user);
		return PF_OK;
	}
	atomic_fetch_add(&e->counters.auth_failures, 1);
	if (throttle_failed(e->throttle, addr, user))
		log_warn("http: %s: login failed", addr);
	return PF_EAUTH;
}
