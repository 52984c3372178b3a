/* SPDX-License-Identifier: MIT */
/*
 * What the files of one native-protocol connection share: the connection's
 * state. stream.c reads frames and hands them to control.c (login,
 * sessions) or data.c (JOIN, chunks); reply.c answers for all three. No
 * other file includes this.
 */
#ifndef PF_STREAM_INT_H
#define PF_STREAM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "budget.h"
#include "chunkhash.h"
#include "counters.h"
#include "digest.h"
#include "net.h"
#include "proto.h"
#include "scram.h"
#include "stream.h"

/* Chunk data moves through this much memory per data connection. */
#define STREAM_BUF	(256u * 1024)

/* The answers of a data connection held back until their syncs end. */
struct data_acks;

enum role {
	ROLE_NEW,	/* greeted, not logged in or joined */
	ROLE_CONTROL,	/* logged in */
	ROLE_DATA	/* joined a session */
};

struct stream {
	const struct stream_env	*env;
	struct pf_conn		*c;
	uint64_t		 id;		/* the connection's */
	_Atomic bool		*busy;		/* in the middle of a frame */
	struct budget_ticket	*ticket;	/* borrowed, see budget.h */
	enum role		 role;
	bool			 counted;	/* in the user's connections */
	uint8_t			 nonce[SCRAM_NONCE_LEN];
	struct auth_server	*auth;
	char			 user[PROTO_MAX_USER + 1];
	uint8_t			 key[PF_SHA256_LEN];
	struct session		*session;	/* held reference */
	uint8_t			*buf;
	uint8_t			*chunk;	/* on a store: one whole chunk */
	struct chunkhash	*hash;
	struct data_acks	*acks;		/* data connections: data.c */
	bool			 errored;	/* an ERROR frame was sent */
};

/*
 * Hands a client's JSON frame of type (req borrowed) to its handler;
 * answers protocol for a type the client may not send. What the handler
 * returns: PF_OK to go on reading frames.
 */
enum pf_status stream_on_json(struct stream *st, uint8_t type, json_t *req);

/* Leaves ROLE_NEW: the connection no longer counts as logging in. */
static inline void
stream_set_role(struct stream *st, enum role role)
{
	if (st->role == ROLE_NEW) {
		atomic_fetch_sub(&st->env->counters->authenticating, 1);
		budget_logged_in(st->env->budget, st->ticket);
	}
	st->role = role;
}

#endif
