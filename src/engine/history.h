/* SPDX-License-Identifier: MIT */
/*
 * The history of finished sessions the gateway lists: completed files
 * found in storage or committed since, until deleted, and the newest
 * failed, cancelled or expired sessions. Entries are copies (struct
 * engine_session_info), never live sessions. Every function takes the
 * history's lock, briefly: any thread may call them.
 */
#ifndef PF_HISTORY_H
#define PF_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engine.h"
#include "status.h"

struct history;
struct session;

/* An empty history; NULL on ENOMEM. Free with history_free. */
struct history *history_new(void);
void history_free(struct history *h);

/*
 * Lists a copy of s, which has left RECEIVING, with its chunk map unless
 * it completed (or has too many chunks). Out of memory, it is not listed.
 */
void history_add_session(struct history *h, struct session *s);

/*
 * Lists stored session id from its metadata meta (borrowed), if id is a
 * session id and meta holds; else nothing (PF_OK). PF_ENOMEM.
 */
enum pf_status history_add_stored(struct history *h, const char *id,
    const json_t *meta);

/*
 * PF_ECANCELLED if session id is listed as cancelled (and, unless user is
 * NULL, is user's); PF_OK otherwise.
 */
enum pf_status history_ended_reason(struct history *h, const char *id,
    const char *user);

/*
 * Appends to *v (a malloc'd array of n entries, reallocated here) a copy
 * of every entry that finished at or after since (Unix time); *added
 * tells how many. PF_ENOMEM leaves *v as it was.
 */
enum pf_status history_copy_since(struct history *h, int64_t since,
    struct engine_session_info **v, size_t n, size_t *added);

/* Adds the entries of user (NULL: everyone's) to counts, by state. */
void history_count(struct history *h, const char *user,
    uint64_t counts[ENGINE_NSTATES]);

/*
 * Copies entry id into *out if it is listed and, unless user is NULL,
 * user's. False otherwise.
 */
bool history_get(struct history *h, const char *id, const char *user,
    struct engine_session_info *out);

/*
 * The chunk map of entry id as a new string. PF_ENOSESSION if not listed;
 * PF_EIO if its map was not kept; PF_ENOMEM.
 */
enum pf_status history_chunk_map(struct history *h, const char *id,
    char **out);

/*
 * Takes entry id (if user's, unless user is NULL) out of the list into
 * *out. False if there is none.
 */
bool history_take(struct history *h, const char *id, const char *user,
    struct engine_session_info *out);

/* Lists info again (after history_take); PF_ENOMEM. */
enum pf_status history_put(struct history *h,
    const struct engine_session_info *info);

#endif
