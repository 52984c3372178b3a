/* SPDX-License-Identifier: MIT */
/*
 * Upload sessions: the table of live sessions, their ids, per-chunk state
 * and counters. Sessions are reference-counted: the table holds one
 * reference, and every connection working on a session holds another.
 */
#ifndef PF_SESSION_H
#define PF_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "auth.h"
#include "digest.h"
#include "policy.h"
#include "status.h"

#define SESSION_ID_LEN	36	/* canonical UUID text */

enum session_state {
	SESSION_RECEIVING,
	SESSION_ASSEMBLING,
	SESSION_COMPLETE,
	SESSION_FAILED,
	SESSION_CANCELLED,
	SESSION_EXPIRED
};

enum chunk_state {
	CHUNK_PENDING,
	CHUNK_RECEIVING,
	CHUNK_DONE
};

struct staging;
struct storage;

struct session {
	char		 id[SESSION_ID_LEN + 1];
	char		 user[AUTH_MAX_USER + 1];
	char		 name[POLICY_MAX_NAME + 1];	/* sanitized */
	char		*client_name;	/* as sent; may hold any bytes */
	size_t		 client_name_len;
	char		 peer[64];
	uint64_t	 size;
	uint32_t	 chunk_size;
	uint32_t	 nchunks;
	uint8_t		 head[POLICY_HEAD_LEN];
	size_t		 headlen;
	pthread_mutex_t	 lock;			/* guards key and owner */
	uint8_t		 key[PF_SHA256_LEN];	/* the login's session key */
	uint64_t	 owner;			/* control connection's id */
	time_t		 created;
	_Atomic int64_t	 finished;		/* time_t it left RECEIVING */

	struct storage	*storage;		/* borrowed */
	struct staging	*staging;		/* owned; NULL once final */
	_Atomic uint8_t	*chunks;		/* enum chunk_state each */
	_Atomic uint8_t	*tried;			/* 1: sent at least once */
	uint8_t		*digests;		/* 32 bytes a chunk */

	_Atomic bool	 ready;			/* fields set: may be shown */
	_Atomic int	 state;			/* enum session_state */
	_Atomic int64_t	 last_active;		/* time_t of the last chunk */
	_Atomic uint64_t bytes_received;	/* all chunk bytes read */
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

struct session_table;

/* A table admitting at most max live sessions. NULL on ENOMEM. */
struct session_table *session_table_new(unsigned max);

/* Frees the table and drops its references. No session may be in use. */
void session_table_free(struct session_table *t);

/*
 * Creates a session for nchunks chunks, with a fresh UUIDv4 id or, when
 * recovering one, with id; inserts it and returns it in *out with one
 * reference for the caller (plus the table's). PF_EBUSY when the table is
 * full, but recovered sessions are always admitted.
 */
enum pf_status session_create(struct session_table *t, uint32_t nchunks,
    const char *id, struct session **out);

/* Finds a session by id; *out gets a new reference. PF_ENOSESSION if none. */
enum pf_status session_lookup(struct session_table *t, const char *id,
    struct session **out);

/* Removes s from the table (dropping the table's reference), if there. */
void session_remove(struct session_table *t, struct session *s);

/* Takes another reference to s. */
void session_ref(struct session *s);

/*
 * Drops a reference. The last one frees s and its staging area: removed
 * from disk if the session failed, was cancelled or expired, otherwise
 * left there to be resumed (after a restart, say).
 */
void session_unref(struct session *s);

/* Copies the session key into key (under the session's lock). */
void session_get_key(struct session *s, uint8_t key[PF_SHA256_LEN]);

/*
 * Makes control connection owner (a number unique to it) the session's
 * owner, with a new session key.
 */
void session_take(struct session *s, uint64_t owner,
    const uint8_t key[PF_SHA256_LEN]);

/* True if owner is still the session's owner. */
bool session_owned_by(struct session *s, uint64_t owner);

/*
 * The session's metadata as a new JSON object: id, user, name, client
 * name, size, chunk size, creation time; with staging set, also the head
 * (what recovery needs), else the receipt and the transfer counters
 * (bytes received since the last restart, chunks NACKed, chunks sent
 * again though already held).
 */
json_t *session_to_json(const struct session *s, bool staging);

/*
 * Fills a new session's fields from metadata written by session_to_json
 * (staging form), checking every field as if it came from a client.
 * PF_EBADFRAME if anything is missing or out of range.
 */
enum pf_status session_from_json(struct session *s, const json_t *meta);

/* Reads the id of staging metadata into id; PF_EBADFRAME if malformed. */
enum pf_status session_id_from_json(const json_t *meta,
    char id[SESSION_ID_LEN + 1]);

/* Calls fn for every live session (with the table locked: be quick). */
void session_foreach(struct session_table *t,
    void (*fn)(struct session *s, void *arg), void *arg);

/* Moves s from RECEIVING to state; false if it was not RECEIVING. */
bool session_leave_receiving(struct session *s, enum session_state state);

/* Number of live sessions. */
unsigned session_count(struct session_table *t);

#endif
