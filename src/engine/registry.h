/* SPDX-License-Identifier: MIT */
/*
 * The sessions the engine knows: the table of live sessions (which holds
 * a reference to each) and the history of finished ones. A session
 * enters the table when it is created or recovered and leaves it, into
 * the history, when it is retired.
 */
#ifndef PF_REGISTRY_H
#define PF_REGISTRY_H

#include <stdint.h>

#include "session.h"
#include "status.h"

struct counters;
struct history;
struct policy;
struct registry;
struct storage;

/*
 * A registry admitting at most max new live sessions, counting ended
 * sessions in c (borrowed; it must outlive the registry). NULL on ENOMEM.
 */
struct registry *registry_new(unsigned max, struct counters *c);

/* Frees r and drops its references. No session may be in use. */
void registry_free(struct registry *r);

/*
 * Creates a session for nchunks chunks (see session_new), inserts it and
 * returns it in *out with one reference for the caller (plus the
 * table's). PF_EBUSY when the table is full, but recovered sessions (id
 * given) are always admitted. Any thread.
 */
enum pf_status registry_create(struct registry *r, uint32_t nchunks,
    const char *id, struct session **out);

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
 * now refuses.
 */
enum pf_status registry_load(struct registry *r, struct storage *storage,
    const struct policy *policy, unsigned ttl_s);

#endif
