/* SPDX-License-Identifier: MIT */
/* The JSON views of sessions and stats that docs/api.md describes. */
#include "config.h"

#include <string.h>
#include <time.h>

#include "clock.h"
#include "views.h"

static const char *const state_names[ENGINE_NSTATES] = {
	[ENGINE_RECEIVING] = "receiving",
	[ENGINE_ASSEMBLING] = "assembling",
	[ENGINE_COMPLETE] = "complete",
	[ENGINE_FAILED] = "failed",
	[ENGINE_CANCELLED] = "cancelled",
	[ENGINE_EXPIRED] = "expired",
};

const char *
views_state_name(enum engine_state s)
{
	return s < ENGINE_NSTATES ? state_names[s] : "failed";
}

bool
views_state_parse(const char *name, size_t n, enum engine_state *s)
{
	/* Sessions logging in are not sessions yet: it names none. */
	if (n == strlen("authenticating") &&
	    strncmp(name, "authenticating", n) == 0) {
		*s = ENGINE_NSTATES;
		return true;
	}
	for (int i = 0; i < ENGINE_NSTATES; i++)
		if (strlen(state_names[i]) == n &&
		    strncmp(name, state_names[i], n) == 0) {
			*s = (enum engine_state)i;
			return true;
		}
	return false;
}

/* A JSON string, or null when s is empty. */
static json_t *
string_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

static json_t *
time_or_null(int64_t t)
{
	char buf[32];

	if (t == 0)
		return json_null();
	pf_time_rfc3339(t, buf);
	return json_string(buf);
}

json_t *
views_session_json(const struct engine_session_info *s, double rate)
{
	char created[32], updated[32];
	bool ended = s->error != PF_OK && s->state != ENGINE_COMPLETE;
	json_t *j;

	pf_time_rfc3339(s->created, created);
	pf_time_rfc3339(s->updated, updated);
	/* Strings are JSON-escaped here; HTML escaping is the page's job. */
	j = json_pack("{s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:s,s:s,s:o,s:o,s:o,s:o}",
	    "id", s->id, "state", views_state_name(s->state),
	    "name", s->name, "user", s->user,
	    "client_addr", string_or_null(s->peer),
	    "size", (json_int_t)s->size,
	    "chunk_size", (json_int_t)s->chunk_size,
	    "chunks_total", (json_int_t)s->chunks_total,
	    "chunks_acked", (json_int_t)s->chunks_acked,
	    "chunks_nacked", (json_int_t)s->chunks_nacked,
	    "chunks_resent", (json_int_t)s->chunks_resent,
	    "bytes_received", (json_int_t)s->bytes_received,
	    "rate_bps", (json_int_t)(s->state == ENGINE_RECEIVING ? rate : 0),
	    "streams", (json_int_t)s->streams,
	    "created_at", created, "updated_at", updated,
	    "finished_at", time_or_null(s->finished),
	    "digest", string_or_null(s->digest),
	    "error", ended ? json_string(pf_status_name(s->error)) :
	    json_null(),
	    "error_message", ended ? json_string(pf_status_message(
	    s->error)) : json_null());
	/* Only a transfer has it: a client tells one by its presence. */
	if (j != NULL && s->files > 0 && json_object_set_new(j, "files",
	    json_integer((json_int_t)s->files)) == -1) {
		json_decref(j);
		return NULL;
	}
	return j;
}

json_t *
views_stats_json(const struct httpd *h, const struct engine_stats *st,
    const uint64_t *counts, const uint64_t *throughput, double rate)
{
	char started[32];
	json_t *bps;

	if ((bps = json_array()) == NULL)
		return NULL;
	for (unsigned i = 0; i < GW_THROUGHPUT_LEN; i++)
		json_array_append_new(bps, json_integer((json_int_t)
		    throughput[i]));
	pf_time_rfc3339(st->started, started);
	return json_pack("{s:s,s:s,s:I,s:{s:i,s:I,s:I,s:I,s:I,s:I,s:I},"
	    "s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:i,s:o}}",
	    "version", h->version, "started_at", started,
	    "uptime_s", (json_int_t)(time(NULL) - st->started),
	    "sessions", "authenticating", 0,
	    "receiving", (json_int_t)counts[ENGINE_RECEIVING],
	    "assembling", (json_int_t)counts[ENGINE_ASSEMBLING],
	    "complete", (json_int_t)counts[ENGINE_COMPLETE],
	    "failed", (json_int_t)counts[ENGINE_FAILED],
	    "cancelled", (json_int_t)counts[ENGINE_CANCELLED],
	    "expired", (json_int_t)counts[ENGINE_EXPIRED],
	    "bytes_received", (json_int_t)st->bytes_received,
	    "chunks_acked", (json_int_t)st->chunks_acked,
	    "chunks_nacked", (json_int_t)st->chunks_nacked,
	    "chunks_resent", (json_int_t)st->chunks_resent,
	    "auth_failures", (json_int_t)st->auth_failures,
	    "tls_handshakes_full", (json_int_t)st->tls_handshakes_full,
	    "tls_handshakes_resumed", (json_int_t)st->tls_handshakes_resumed,
	    "connections_open", (json_int_t)st->connections_open,
	    "connections_authenticating",
	    (json_int_t)st->connections_authenticating,
	    "rate_bps", (json_int_t)rate,
	    "throughput", "interval_s", 1, "bps", bps);
}
