/* SPDX-License-Identifier: MIT */
/*
 * The frames of a control connection. Each handler takes the request
 * (borrowed), answers it, and returns PF_OK to go on or a status that
 * ends the connection. The connection's thread only.
 */
#ifndef PF_CONTROL_H
#define PF_CONTROL_H

#include <jansson.h>

#include "status.h"

struct stream;

/* AUTH: the SCRAM client-first message; answers CHALLENGE. */
enum pf_status control_on_auth(struct stream *st, const json_t *req);

/* PROOF: the client-final message; answers AUTH_OK, the login done. */
enum pf_status control_on_proof(struct stream *st, const json_t *req);

/*
 * OPEN: a new session, or the resume of one; answers OPENED. Takes a
 * transfer's "files" out of req once the manifest holds them.
 */
enum pf_status control_on_open(struct stream *st, json_t *req);

/* COMMIT: the receipt; answers COMPLETE once the file is in place. */
enum pf_status control_on_commit(struct stream *st, const json_t *req);

/* ABORT: cancels the session; always ends the connection. */
enum pf_status control_on_abort(struct stream *st);

/*
 * Waits for the next frame of a control connection holding a session:
 * PF_OK once bytes (or EOF) are there to read; PF_ETIMEOUT once none of
 * the session's connections received chunk data for --idle-timeout (the
 * connection is then to be closed, and the session waits for
 * --staging-ttl from now); PF_ENET when the server stops.
 */
enum pf_status control_wait(struct stream *st);

#endif
