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
	pthread_t		 thread;
	struct engine_conn	*next;
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
	bool			 started;
	_Atomic bool		 stopping;

	pthread_mutex_t		 lock;		/* guards conns */
	pthread_cond_t		 drained;
	struct engine_conn	*conns;
	unsigned		 nconns;

	_Atomic uint64_t	 bytes_received;
	_Atomic uint64_t	 chunks_acked;
	_Atomic uint64_t	 chunks_nacked;
	_Atomic uint64_t	 auth_failures;
	_Atomic uint64_t	 sessions_completed;
};

/* Serves one connection until it closes. Runs on the connection's thread. */
void stream_serve(struct engine *e, struct pf_conn *c);

#endif
