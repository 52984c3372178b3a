/* SPDX-License-Identifier: MIT */
/* "paraflow list", "status" and "cancel": sessions seen through the gateway. */
#ifndef PF_SESSIONS_H
#define PF_SESSIONS_H

#include "remote.h"

/*
 * Prints every session the user can see, newest first; state (a state or
 * a comma-separated list, checked by the caller) filters them, NULL for
 * all. Returns the exit status.
 */
int sessions_list(const struct remote_opts *o, const char *state);

/*
 * Prints session id (a valid id), or with id NULL a summary: sessions by
 * state and the active ones. With watch_s > 0, refreshes every watch_s
 * seconds (in place on a terminal, one JSON line each with o->json) until
 * SIGINT or SIGTERM, or until session id has finished. Returns the exit
 * status: 0 for any state, including failed ones.
 */
int sessions_status(const struct remote_opts *o, const char *id,
    unsigned watch_s);

/*
 * Cancels session id if it is receiving, or deletes it if it has finished,
 * and says which. Returns the exit status.
 */
int sessions_cancel(const struct remote_opts *o, const char *id);

#endif
