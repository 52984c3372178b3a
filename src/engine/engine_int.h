/* SPDX-License-Identifier: MIT */
/*
 * The engine's own state, shared by the two files that implement
 * engine.h: engine.c (listener, threads) and snapshot.c (the gateway's
 * copies). Nothing below them includes it.
 */
#ifndef PF_ENGINE_INT_H
#define PF_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "budget.h"
#include "counters.h"
#include "digest.h"
#include "engine.h"
#include "log.h"
#include "net.h"
#include "stream.h"
#include "tls.h"

/* One accepted connection; lives in the engine's list while its thread runs. */
struct engine_conn {
	struct engine		*engine;
	struct pf_conn		*conn;
	uint64_t		 id;		/* unique in this process */
	_Atomic bool		 busy;		/* in the middle of a frame */
	struct budget_ticket	*ticket;	/* its place in the budget */
	pthread_t		 thread;
	struct engine_conn	*next;
};

struct judge_pool;

struct engine {
	struct engine_config	 cfg;
	struct pf_log_limit	 refusals;	/* peers' failures, logged */
	struct auth_users	*users;
	struct policy		*policy;
	struct storage		*storage;
	struct store		*store;		/* sessions kept: store.h */
	struct registry		*registry;	/* live and finished sessions */
	struct peruser		*peruser;	/* connections per user */
	struct budget		*budget;	/* who may log in */
	struct throttle		*throttle;	/* failed logins */
	struct gwup		*uploads;	/* gwupload.h */
	struct judge_pool	*judges;	/* judge.h, or NULL */
	struct kept_lists	*lists;		/* keptlists.h */
	struct pf_tls		*tls;		/* NULL: plaintext port */
	struct counters		 counters;
	struct stream_env	 env;		/* what connections borrow */
	uint8_t			 secret[PF_SHA256_LEN];	/* keyfile.h */
	int			 listenfd;
	unsigned		 port;
	pthread_t		 acceptor;
	pthread_t		 reaper;
	bool			 started;
	_Atomic bool		 stopping;

	pthread_mutex_t		 lock;		/* guards conns */
	pthread_cond_t		 drained;	/* also wakes the reaper */
	struct engine_conn	*conns;
	unsigned		 nconns;
	uint64_t		 next_conn_id;
	time_t			 start_time;	/* for uptime */
};

#endif
