/* SPDX-License-Identifier: MIT */
/* The JSON views of sessions and stats that docs/api.md describes. */
#ifndef PF_VIEWS_H
#define PF_VIEWS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "gateway.h"

/* The API's name of state s ("failed" for one out of range). */
const char *views_state_name(enum engine_state s);

/*
 * The state named by the n bytes at name into *s; false if none is.
 * "authenticating" is a name, of no state: true with *s ENGINE_NSTATES.
 */
bool views_state_parse(const char *name, size_t n, enum engine_state *s);

/*
 * A Session of docs/api.md from snapshot s and its rate (bytes a second):
 * a new reference, NULL on ENOMEM. Any thread.
 */
json_t *views_session_json(const struct engine_session_info *s, double rate);

/*
 * The Stats of docs/api.md from the engine's counters st, the counts by
 * state (engine_count_sessions), GW_THROUGHPUT_LEN throughput samples
 * oldest first, and the total rate: a new reference, NULL on ENOMEM. Reads
 * only h->version; any thread, h->lock held or not.
 */
json_t *views_stats_json(const struct httpd *h, const struct engine_stats *st,
    const uint64_t *counts, const uint64_t *throughput, double rate);

#endif
