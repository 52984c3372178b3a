/* SPDX-License-Identifier: MIT */
/*
 * The sessions the engine knows: the table of live sessions (which holds
 * a reference to each) and the history of finished ones. A session
 * enters the table when it is created or recovered and leaves it, into
 * the history, when it is retired.
 */
#ifndef PF_REGISTRY_H
#define PF_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"
#include "status.h"

struct counters;
struct history;
struct policy;
struct registry;
struct storage;

/* What the table admits: see paraflowd(8) for each. */
struct registry_limits {
	unsigned	 sessions;	/* live sessions: --max-sessions */
	unsigned	 user_sessions;	/* of one user */
	uint64_t	 user_reserved;	/* bytes one user reserves; 0: none */
	unsigned	 user_share;	/* percent of the space free to one */
};

/* What a new session asks for: its user (borrowed) and the bytes. */
struct registry_ask {
	const char	*id;		/* NULL: a fresh UUIDv4 */
	const char	*user;
	uint64_t	 size;		/* to reserve: the file's size */
	uint64_t	 room;		/* free space above the margin kept
					   (--min-free-space); UINT64_MAX:
					   unknown */
	bool		 copy;		/* a copy of a stored session, which
					   its OPEN admitted: only the table's
					   size applies */
};

/*
 * A registry admitting new live sessions within lim (copied), counting
 * ended sessions in c (borrowed; it must outlive the registry). NULL on
 * ENOMEM.
 */
struct registry *registry_new(const struct registry_limits *lim,
    struct counters *c);

/* Frees r and drops its references. No session may be in use. */
void registry_free(struct registry *r);

/*
 * Creates a session of a for nchunks chunks (see session_new), inserts it
 * and returns it in *out with one reference for the caller (plus the
 * table's). Every live session counts, recovered ones too. A user may
 * have at most user_sessions of them, and hold at most user_reserved
 * bytes, and user_share percent of the space free to them (the room
 * plus what they hold), reserved but not yet received: past one of
 * these PF_EQUOTA; when the table is full, or a->id is live already,
 * PF_EBUSY; PF_ENOMEM. On
 * failure why (whycap bytes) says which limit, in a sentence for the
 * client. Any thread.
 */
enum pf_status registry_open(struct registry *r, uint32_t nchunks,
    const struct registry_ask *a, struct session **out, char *why,
    size_t whycap);

/* Finds a live session by id; *out gets a new reference. PF_ENOSESSION. */
enum pf_status registry_lookup(struct registry *r, const char *id,
    struct session **out);

/* Calls fn for every live session (with the table locked: be quick). */
void registry_foreach(struct registry *r,
    void (*fn)(struct session *s, void *arg), void *arg);

/* Number of live sessions. */
unsigned registry_count(struct registry *r);

/*
 * Takes s out of the table into the history (in the state it has now,
 * if it was ready and has left RECEIVING). Any thread.
 */
void registry_retire(struct registry *r, struct session *s);

/*
 * Ends s in state (failed, cancelled, expired) for reason why (see
 * session_end) and retires it. False if it was not receiving (then
 * nothing changes). Any thread.
 */
bool registry_end(struct registry *r, struct session *s,
    enum session_state state, enum pf_status why);

/*
 * PF_ECANCELLED if session id is listed as cancelled (and, unless user is
 * NULL, is user's); PF_OK otherwise. Only a cancel is final for a client:
 * after a failure or expiry, starting over is the right answer.
 */
enum pf_status registry_ended_reason(struct registry *r, const char *id,
    const char *user);

/* The history (borrowed), for the gateway's copies. */
struct history *registry_history(struct registry *r);

/*
 * At start-up: lists the completed sessions found in storage, and turns
 * its staging areas back into live sessions, removing those idle for
 * over ttl_s seconds and those whose name or content policy (borrowed)
 * now refuses. All others are kept, even over the limits (they hold
 * acknowledged chunks): that is logged, and registry_open refuses new
 * sessions until they are under again.
 */
enum pf_status registry_load(struct registry *r, struct storage *storage,
    const struct policy *policy, unsigned ttl_s);

/*
 * For an amend (amend.h): takes live session s out of the table without
 * ending it (its staging area stays); puts it back (admitted whatever
 * the limits, as a recovered one).
 */
void registry_unlist(struct registry *r, struct session *s);

/*
 * The pool (borrowed; it must outlive every session of r) that judges
 * the files of r's transfers early: those recovered from here on, and
 * those given to registry_judge. Before registry_load.
 */
struct judge_pool;
void registry_use_judges(struct registry *r, struct judge_pool *jp);

/* Has transfer s (just opened) judged early: session_judge. */
void registry_judge(struct registry *r, struct session *s);
void registry_relist(struct registry *r, struct session *s);

/*
 * PF_OK if user may hold grow bytes more reserved but not yet received
 * (--max-user-reserved, --max-user-share of room, as registry_open);
 * else PF_EQUOTA, and why says so.
 */
enum pf_status registry_admit_growth(struct registry *r, const char *user,
    uint64_t grow, uint64_t room, char *why, size_t whycap);

/*
 * Brings staging area id (no session on it) back as a live session, as
 * registry_load does at start-up; *out gets a new reference.
 */
enum pf_status registry_reload(struct registry *r, struct storage *storage,
    const struct policy *policy, unsigned ttl_s, const char *id,
    struct session **out);

#endif
