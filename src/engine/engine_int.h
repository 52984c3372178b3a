/* SPDX-License-Identifier: MIT */
/* Engine state shared by engine.c and stream.c only. */
#ifndef PF_ENGINE_INT_H
#define PF_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "auth.h"
#include "engine.h"
#include "net.h"
#include "policy.h"
#include "session.h"
#include "storage.h"

/* One accepted connection; lives in the engine's list while its thread runs. */
struct engine_conn {
	struct engine		*engine;
	struct pf_conn		*conn;
	uint64_t		 id;		/* unique in this process */
	_Atomic bool		 busy;		/* in the middle of a frame */
	pthread_t		 thread;
	struct engine_conn	*next;
};

/* A finished session the gateway still lists. */
struct engine_retired {
	struct engine_session_info info;
	char			*map;	/* chunk map; NULL once stored or dropped */
};

/* Finished sessions: completed ones until deleted, the others bounded. */
struct engine_history {
	pthread_mutex_t		 lock;
	struct engine_retired	*v;
	size_t			 n, cap;
	size_t			 ended;		/* entries not complete */
};

/* Connections per user, for --max-user-connections. */
struct engine_user {
	char			 name[AUTH_MAX_USER + 1];
	unsigned		 conns;
};

struct engine {
	struct engine_config	 cfg;
	struct auth_users	*users;
	struct policy		*policy;
	struct storage		*storage;
	struct session_table	*sessions;
	uint8_t			 secret[PF_SHA256_LEN];	/* fake salts */
	int			 listenfd;
	unsigned		 port;
	pthread_t		 acceptor;
	pthread_t		 reaper;
	bool			 started;
	_Atomic bool		 stopping;

	pthread_mutex_t		 lock;		/* guards conns and users */
	pthread_cond_t		 drained;	/* also wakes the reaper */
	struct engine_conn	*conns;
	unsigned		 nconns;
	uint64_t		 next_conn_id;
	struct engine_user	*users_conns;
	unsigned		 nusers_conns;

	_Atomic uint64_t	 bytes_received;
	_Atomic uint64_t	 chunks_acked;
	_Atomic uint64_t	 chunks_nacked;
	_Atomic uint64_t	 auth_failures;
	_Atomic uint64_t	 sessions_completed;
	_Atomic uint64_t	 chunks_resent;
	_Atomic uint64_t	 sessions_ended[ENGINE_NSTATES];
	_Atomic unsigned	 authenticating;	/* connections */
	_Atomic uint64_t	 hist[ENGINE_HIST_BUCKETS + 1];
	_Atomic uint64_t	 hist_sum_us;
	time_t			 start_time;	/* for uptime */
	struct engine_history	 history;
};

/* Serves one connection until it closes. Runs on the connection's thread. */
void stream_serve(struct engine *e, struct engine_conn *ec);

/*
 * Counts one more connection for user; false (and nothing counted) when
 * the user is at --max-user-connections.
 */
bool engine_user_acquire(struct engine *e, const char *user);
void engine_user_release(struct engine *e, const char *user);

/*
 * Takes s out of the table into the history the gateway lists (in the
 * state it has now).
 */
void engine_retire(struct engine *e, struct session *s);

/*
 * PF_ECANCELLED if session id is listed as cancelled (and, unless user is
 * NULL, is user's); PF_OK otherwise. Only a cancel is final for a client:
 * after a failure or expiry, starting over is the right answer.
 */
enum pf_status engine_ended_reason(struct engine *e, const char *id,
    const char *user);

/* Lists the completed sessions found in storage. At start-up. */
enum pf_status engine_history_load(struct engine *e);
void engine_history_free(struct engine *e);

/* Counts one chunk received in us microseconds, for the histogram. */
void engine_observe_chunk(struct engine *e, uint64_t us);

/*
 * Ends s in state (failed, cancelled, expired): it leaves the table. False
 * if it was not receiving (then nothing changes).
 */
bool engine_end_session(struct engine *e, struct session *s,
    enum session_state state, enum pf_status why);

#endif
