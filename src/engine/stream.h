/* SPDX-License-Identifier: MIT */
/*
 * One connection of the native protocol, from HELLO to close: it reads
 * frames and calls the session, registry and finalization modules.
 */
#ifndef PF_STREAM_H
#define PF_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net.h"

struct auth_users;
struct budget;
struct budget_ticket;
struct counters;
struct engine_config;
struct peruser;
struct policy;
struct registry;
struct storage;
struct store;
struct throttle;

/* What a connection needs of the engine; all borrowed, set at start-up. */
struct stream_env {
	const struct engine_config *cfg;
	struct auth_users	*users;
	const uint8_t		*secret;	/* PF_SHA256_LEN: fake salts */
	struct policy		*policy;
	struct storage		*storage;
	struct store		*store;		/* sessions kept: store.h */
	struct registry		*registry;
	struct peruser		*peruser;
	struct throttle		*throttle;	/* failed logins */
	struct counters		*counters;
	_Atomic bool		*stopping;	/* the engine is stopping */
	struct budget		*budget;	/* logins, see budget.h */
	struct pf_log_limit	*refusals;	/* lines peers can cause */
};

/*
 * Serves connection c (borrowed; the caller closes it) until it closes
 * or the engine stops. id is a number unique to the connection in this
 * process; *busy is set while a frame is being read or answered, so a
 * stopping engine closes idle connections first. ticket (borrowed) is
 * the connection's in env->budget: it leaves the logins at login or
 * JOIN. The caller sets c's login deadline (it bounds the TLS handshake
 * too). Runs on the connection's own thread.
 */
void stream_serve(const struct stream_env *env, struct pf_conn *c,
    uint64_t id, _Atomic bool *busy, struct budget_ticket *ticket);

#endif
