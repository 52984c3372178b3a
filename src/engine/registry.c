/* SPDX-License-Identifier: MIT */
/* The registry: live sessions in a table, finished ones in a history. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "digest.h"
#include "history.h"
#include "log.h"
#include "policy.h"
#include "proto.h"
#include "recovery.h"
#include "registry.h"
#include "storage.h"

struct registry {
	pthread_mutex_t	  lock;
	struct session	**slots;
	unsigned	  cap;		/* slots allocated */
	struct registry_limits lim;	/* for new sessions */
	unsigned	  count;
	struct history	 *history;
	struct counters	 *counters;	/* borrowed */
	struct judge_pool *judges;	/* borrowed, or NULL */
};

struct registry *
registry_new(const struct registry_limits *lim, struct counters *c)
{
	unsigned max = lim->sessions;
	struct registry *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->slots = calloc(max ? max : 1, sizeof(*r->slots));
	r->history = history_new();
	if (r->slots == NULL || r->history == NULL) {
		history_free(r->history);
		free(r->slots);
		free(r);
		return NULL;
	}
	r->cap = max ? max : 1;
	r->lim = *lim;
	r->counters = c;
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
registry_free(struct registry *r)
{
	if (r == NULL)
		return;
	for (unsigned i = 0; i < r->cap; i++)
		if (r->slots[i] != NULL)
			session_unref(r->slots[i]);
	history_free(r->history);
	pthread_mutex_destroy(&r->lock);
	free(r->slots);
	free(r);
}

/* Puts s in a free slot (the caller holds the lock). False if full. */
static bool
insert(struct registry *r, struct session *s, bool recovered)
{
	unsigned slot;

	/*
	 * Recovered sessions are admitted over the limit: they hold
	 * acknowledged chunks, and a lower limit after a restart must not
	 * throw those away.
	 */
	if (r->count == r->cap && recovered) {
		struct session **n = realloc(r->slots, 2 * r->cap *
		    sizeof(*n));

		if (n != NULL) {
			memset(n + r->cap, 0, r->cap * sizeof(*n));
			r->slots = n;
			r->cap *= 2;
		}
	}
	if ((r->count >= r->lim.sessions && !recovered) || r->count >= r->cap)
		return false;
	for (slot = 0; r->slots[slot] != NULL; slot++)
		;
	r->slots[slot] = s;
	r->count++;
	return true;
}

/* True if a live session has id; with r's lock held. */
static bool
listed(const struct registry *r, const char *id)
{
	for (unsigned i = 0; i < r->cap; i++)
		if (r->slots[i] != NULL && strcmp(session_id(r->slots[i]),
		    id) == 0)
			return true;
	return false;
}

/* Adds a, saturating: sums of declared sizes must not wrap. */
static uint64_t
add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/*
 * The live sessions of user and the bytes they hold reserved but not yet
 * received (the caller holds the lock).
 */
static void
user_usage(struct registry *r, const char *user, unsigned *n,
    uint64_t *reserved)
{
	*n = 0;
	*reserved = 0;
	for (unsigned i = 0; i < r->cap; i++) {
		struct session *s = r->slots[i];

		if (s != NULL && strcmp(session_user(s), user) == 0) {
			(*n)++;
			*reserved = add_sat(*reserved, session_reserved(s));
		}
	}
}

/* pct percent of n, without overflow. */
static uint64_t
percent(uint64_t n, unsigned pct)
{
	return n / 100 * pct + n % 100 * pct / 100;
}

/*
 * Checks a new session of a against the limits (the caller holds the
 * lock): PF_OK, PF_EQUOTA when its user would go over one of theirs,
 * PF_EBUSY when the server is at --max-sessions; why then says which.
 */
static enum pf_status
admit(struct registry *r, const struct registry_ask *a, char *why,
    size_t whycap)
{
	const struct registry_limits *l = &r->lim;
	uint64_t mine, want, share;
	unsigned n;

	user_usage(r, a->user, &n, &mine);
	want = add_sat(mine, a->size);
	if (n >= l->user_sessions) {
		snprintf(why, whycap, "user %s has %u sessions open, "
		    "--max-user-sessions is %u: finish, resume or cancel one "
		    "first", a->user, n, l->user_sessions);
		return PF_EQUOTA;
	}
	if (l->user_reserved != 0 && want > l->user_reserved) {
		snprintf(why, whycap, "user %s would hold %llu bytes declared "
		    "but not yet sent, over --max-user-reserved %llu",
		    a->user, (unsigned long long)want,
		    (unsigned long long)l->user_reserved);
		return PF_EQUOTA;
	}
	/* The room free to this user: the free space plus their own. */
	share = percent(add_sat(a->room, mine), l->user_share);
	if (a->room != UINT64_MAX && want > share) {
		snprintf(why, whycap, "user %s would hold %llu bytes declared "
		    "but not yet sent, over their share: %u%% of the %llu "
		    "bytes free to them (--max-user-share)", a->user,
		    (unsigned long long)want, l->user_share,
		    (unsigned long long)add_sat(a->room, mine));
		return PF_EQUOTA;
	}
	if (r->count >= l->sessions) {
		snprintf(why, whycap, "too many sessions: %u open, "
		    "--max-sessions is %u", r->count, l->sessions);
		return PF_EBUSY;
	}
	return PF_OK;
}

enum pf_status
registry_open(struct registry *r, uint32_t nchunks,
    const struct registry_ask *a, struct session **out, char *why,
    size_t whycap)
{
	struct session *s;
	enum pf_status rc;

	if ((rc = session_new(nchunks, a->id, a->user, a->size, &s)) !=
	    PF_OK) {
		snprintf(why, whycap, "out of memory");
		return rc;
	}
	session_ref(s);		/* the table's */
	pthread_mutex_lock(&r->lock);
	/* Checked and inserted under one lock: two OPENs cannot both fit. */
	if (a->id != NULL && listed(r, a->id)) {
		/* Two resumes of one stored session at once: one wins. */
		snprintf(why, whycap, "session %s is being resumed by another "
		    "connection; try again", a->id);
		rc = PF_EBUSY;
	} else if ((a->copy || (rc = admit(r, a, why, whycap)) == PF_OK) &&
	    !insert(r, s, false)) {
		snprintf(why, whycap, "too many sessions");
		rc = PF_EBUSY;
	}
	pthread_mutex_unlock(&r->lock);
	if (rc != PF_OK) {
		session_unref(s);
		session_unref(s);
		return rc;
	}
	*out = s;
	return PF_OK;
}

/* A recovered session, admitted whatever the limits (see revive). */
static enum pf_status
recover(struct registry *r, uint32_t nchunks, const char *id,
    struct session **out)
{
	struct session *s;
	enum pf_status rc;
	bool in;

	if ((rc = session_new(nchunks, id, NULL, 0, &s)) != PF_OK)
		return rc;
	session_ref(s);		/* the table's */
	pthread_mutex_lock(&r->lock);
	in = insert(r, s, true);
	pthread_mutex_unlock(&r->lock);
	if (!in) {
		session_unref(s);
		session_unref(s);
		return PF_ENOMEM;
	}
	*out = s;
	return PF_OK;
}

enum pf_status
registry_lookup(struct registry *r, const char *id, struct session **out)
{
	enum pf_status rc = PF_ENOSESSION;

	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->cap; i++) {
		struct session *s = r->slots[i];

		if (s != NULL && strcmp(session_id(s), id) == 0) {
			session_ref(s);
			*out = s;
			rc = PF_OK;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

void
registry_foreach(struct registry *r,
    void (*fn)(struct session *s, void *arg), void *arg)
{
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->cap; i++)
		if (r->slots[i] != NULL)
			fn(r->slots[i], arg);
	pthread_mutex_unlock(&r->lock);
}

unsigned
registry_count(struct registry *r)
{
	unsigned n;

	pthread_mutex_lock(&r->lock);
	n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Removes s from the table (dropping the table's reference), if there. */
static void
remove_live(struct registry *r, struct session *s)
{
	bool found = false;

	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < r->cap; i++) {
		if (r->slots[i] == s) {
			r->slots[i] = NULL;
			r->count--;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (found) {
		/* Its history entry (streams 0) now shows instead. */
		session_changed();
		session_unref(s);
	}
}

void
registry_retire(struct registry *r, struct session *s)
{
	enum session_state state = session_state(s);
	struct engine_session_info info;

	if (session_ready(s) && state != SESSION_RECEIVING) {
		session_info(s, &info);
		atomic_fetch_add(&r->counters->sessions_ended[info.state], 1);
		history_add_session(r->history, s);
	}
	remove_live(r, s);
}

bool
registry_end(struct registry *r, struct session *s, enum session_state state,
    enum pf_status why)
{
	if (!session_end(s, state, why))
		return false;
	registry_retire(r, s);
	return true;
}

enum pf_status
registry_ended_reason(struct registry *r, const char *id, const char *user)
{
	return history_ended_reason(r->history, id, user);
}

struct history *
registry_history(struct registry *r)
{
	return r->history;
}

/* What the callbacks of registry_load need. */
struct load {
	struct registry		*r;
	struct storage		*storage;
	const struct policy	*policy;
	unsigned		 ttl_s;
};

/*
 * True if the policy in force now refuses a staged upload (metadata
 * meta) by its name or its first bytes: it may have been accepted under
 * an older, looser one. Says why in the log.
 */
static bool
refused_now(const struct load *l, const char *id, const json_t *meta)
{
	const char *cname, *name, *head64;
	uint8_t head[PROTO_HEAD_LEN];
	char why[POLICY_WHY_MAX];
	size_t cname_len;
	long n;

	/*
	 * A transfer's label and payload head are not judged at OPEN
	 * either: each file is, by its own name at OPEN and its own first
	 * bytes at COMMIT (an amend reads the session back here too).
	 */
	if (json_object_get(meta, "transfer") != NULL)
		return false;
	/* Malformed metadata is session_restore's to refuse. */
	if (json_unpack((json_t *)meta, "{s:s%,s:s,s:s}", "client_name",
	    &cname, &cname_len, "name", &name, "head", &head64) == -1 ||
	    (n = pf_base64_decode(head64, head, sizeof(head))) < 0)
		return false;
	/*
	 * Only a definite refusal removes it: content libmagic failed on
	 * keeps its acknowledged chunks, as it did before this start.
	 */
	if (policy_check_names(l->policy, cname, cname_len, name, why,
	    sizeof(why)) != PF_EFORBIDDEN && policy_check_head(l->policy,
	    head, (size_t)n, why, sizeof(why)) != PF_EFORBIDDEN)
		return false;
	log_warn("session %s: refused by the file-type policy: %s; "
	    "removing it", id, why);
	return true;
}

/* Turns one staging area found at start-up back into a live session. */
static enum pf_status
revive(void *arg, struct recovery_area *a)
{
	struct load *l = arg;
	struct session *s = NULL;
	char id[PROTO_ID_LEN + 1];
	json_int_t size, chunk_size;
	uint32_t count;
	enum pf_status rc;

	if (session_id_from_json(a->meta, id) != PF_OK ||
	    strcmp(id, a->id) != 0 || json_unpack(a->meta, "{s:I,s:I}",
	    "size", &size, "chunk_size", &chunk_size) == -1 || size < 0 ||
	    !proto_chunk_size_valid((uint64_t)chunk_size) ||
	    proto_chunk_count((uint64_t)size, (uint32_t)chunk_size,
	    &count) != PF_OK) {
		log_warn("staging area %s has bad metadata; removing it",
		    a->id);
		return PF_EBADFRAME;
	}
	if (time(NULL) - a->last_active > (time_t)l->ttl_s) {
		log_info("session %s idle for over %u s; removing it", a->id,
		    l->ttl_s);
		return PF_ENOSESSION;
	}
	if (refused_now(l, id, a->meta))
		return PF_EFORBIDDEN;
	if ((rc = recover(l->r, count, id, &s)) != PF_OK) {
		log_warn("session %s: %s; removing it", id,
		    pf_status_message(rc));
		return rc;
	}
	if ((rc = session_restore(s, l->storage, a->meta, a->staging,
	    a->indices, a->digests, a->nrecords, a->last_active)) != PF_OK) {
		log_warn("staging area %s has bad metadata; removing it", id);
		registry_end(l->r, s, SESSION_FAILED, rc);
		session_unref(s);
		return rc;
	}
	a->staging = NULL;
	session_judge(s, l->r->judges);
	log_info("session %s recovered: \"%s\", %u of %u chunks held", id,
	    session_name(s), session_chunks_acked(s), count);
	session_unref(s);
	return PF_OK;
}

static enum pf_status
list_stored(void *arg, const char *id, const json_t *meta)
{
	struct load *l = arg;

	return history_add_stored(l->r->history, id, meta);
}

/*
 * Says so when the sessions recovered are over a limit. They are all
 * kept, as they hold acknowledged chunks; admit() refuses new ones
 * until enough of them end or expire.
 */
static void
report_over(struct registry *r)
{
	uint64_t reserved;
	unsigned n;

	if (r->count > r->lim.sessions)
		log_warn("%u sessions recovered, over --max-sessions %u: all "
		    "are kept, and new sessions are refused until fewer "
		    "remain", r->count, r->lim.sessions);
	/* Nobody can be over with fewer in all; else a scan per user. */
	for (unsigned i = 0; i < r->cap && r->count > r->lim.user_sessions;
	    i++) {
		const char *user;
		bool seen = false;

		if (r->slots[i] == NULL)
			continue;
		user = session_user(r->slots[i]);
		for (unsigned j = 0; j < i && !seen; j++)
			seen = r->slots[j] != NULL &&
			    strcmp(session_user(r->slots[j]), user) == 0;
		user_usage(r, user, &n, &reserved);
		if (!seen && n > r->lim.user_sessions)
			log_warn("user %s has %u sessions recovered, over "
			    "--max-user-sessions %u: all are kept, and their "
			    "new sessions are refused until fewer remain",
			    user, n, r->lim.user_sessions);
	}
}

enum pf_status
registry_load(struct registry *r, struct storage *storage,
    const struct policy *policy, unsigned ttl_s)
{
	struct load l = { r, storage, policy, ttl_s };
	enum pf_status rc;

	if ((rc = recovery_scan(storage, revive, &l)) != PF_OK)
		return rc;
	pthread_mutex_lock(&r->lock);
	report_over(r);
	pthread_mutex_unlock(&r->lock);
	return storage_final_foreach(storage, list_stored, &l);
}

void
registry_unlist(struct registry *r, struct session *s)
{
	remove_live(r, s);
}

void
registry_use_judges(struct registry *r, struct judge_pool *jp)
{
	r->judges = jp;
}

void
registry_judge(struct registry *r, struct session *s)
{
	session_judge(s, r->judges);
}

void
registry_relist(struct registry *r, struct session *s)
{
	bool in;

	session_ref(s);		/* the table's */
	pthread_mutex_lock(&r->lock);
	in = insert(r, s, true);
	pthread_mutex_unlock(&r->lock);
	if (!in)
		session_unref(s);
	else
		session_changed();
}

enum pf_status
registry_admit_growth(struct registry *r, const char *user, uint64_t grow,
    uint64_t room, char *why, size_t whycap)
{
	const struct registry_limits *l = &r->lim;
	uint64_t mine, want, share;
	enum pf_status rc = PF_OK;
	unsigned n;

	pthread_mutex_lock(&r->lock);
	user_usage(r, user, &n, &mine);
	want = add_sat(mine, grow);
	share = percent(add_sat(room, mine), l->user_share);
	if ((l->user_reserved != 0 && want > l->user_reserved) ||
	    (room != UINT64_MAX && want > share)) {
		snprintf(why, whycap, "user %s would hold %llu bytes declared "
		    "but not yet sent, over --max-user-reserved or "
		    "--max-user-share", user, (unsigned long long)want);
		rc = PF_EQUOTA;
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

enum pf_status
registry_reload(struct registry *r, struct storage *storage,
    const struct policy *policy, unsigned ttl_s, const char *id,
    struct session **out)
{
	struct load l = { r, storage, policy, ttl_s };
	enum pf_status rc;

	if ((rc = recovery_one(storage, id, revive, &l)) != PF_OK)
		return rc;
	return registry_lookup(r, id, out);
}
