/* SPDX-License-Identifier: MIT */
/* The REST API under /api/v1: sessions, chunk maps, stats, cancel. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

#include "args.h"
#include "clock.h"
#include "gateway.h"

#define LIST_DEFAULT	50
#define LIST_MAX	500

static const char *const state_names[ENGINE_NSTATES] = {
	[ENGINE_RECEIVING] = "receiving",
	[ENGINE_ASSEMBLING] = "assembling",
	[ENGINE_COMPLETE] = "complete",
	[ENGINE_FAILED] = "failed",
	[ENGINE_CANCELLED] = "cancelled",
	[ENGINE_EXPIRED] = "expired",
};

const char *
gw_state_name(enum engine_state s)
{
	return s < ENGINE_NSTATES ? state_names[s] : "failed";
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
gw_session_json(const struct engine_session_info *s, double rate)
{
	char created[32], updated[32];
	bool ended = s->error != PF_OK && s->state != ENGINE_COMPLETE;

	pf_time_rfc3339(s->created, created);
	pf_time_rfc3339(s->updated, updated);
	/* Strings are JSON-escaped here; HTML escaping is the page's job. */
	return json_pack("{s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:s,s:s,s:o,s:o,s:o,s:o}",
	    "id", s->id, "state", gw_state_name(s->state),
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
}

json_t *
gw_stats_json(struct httpd *h, const struct gw_caller *who)
{
	uint64_t tp[GW_THROUGHPUT_LEN], counts[ENGINE_NSTATES];
	struct engine_stats st;
	double rate;

	engine_stats(h->engine, &st);
	engine_count_sessions(h->engine, who->admin ? NULL : who->user,
	    counts);
	pthread_mutex_lock(&h->lock);
	for (unsigned i = 0; i < GW_THROUGHPUT_LEN; i++)
		tp[i] = h->throughput[(h->throughput_at + i) %
		    GW_THROUGHPUT_LEN];
	rate = h->total_bps;
	pthread_mutex_unlock(&h->lock);
	return gw_stats_build(h, &st, counts, tp, rate);
}

json_t *
gw_stats_build(const struct httpd *h, const struct engine_stats *st,
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
	    "s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:{s:i,s:o}}",
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
	    "connections_open", (json_int_t)st->connections_open,
	    "connections_authenticating",
	    (json_int_t)st->connections_authenticating,
	    "rate_bps", (json_int_t)rate,
	    "throughput", "interval_s", 1, "bps", bps);
}

static bool
valid_id(const char *id)
{
	uuid_t uu;

	return strlen(id) == ENGINE_ID_LEN && uuid_parse(id, uu) == 0;
}

/* Newest first; the id breaks ties so pages are stable. */
static int
newest_first(const void *a, const void *b)
{
	const struct engine_session_info *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? 1 : -1;
	return strcmp(x->id, y->id);
}

/* Parses the state filter into a mask; false if a name is unknown. */
static bool
parse_states(const char *arg, unsigned *mask)
{
	*mask = 0;
	if (arg == NULL || *arg == '\0') {
		*mask = ~0u;
		return true;
	}
	while (*arg != '\0') {
		size_t n = strcspn(arg, ",");
		bool found = n == strlen("authenticating") &&
		    strncmp(arg, "authenticating", n) == 0;

		for (int i = 0; i < ENGINE_NSTATES && !found; i++)
			if (strlen(state_names[i]) == n &&
			    strncmp(arg, state_names[i], n) == 0) {
				*mask |= 1u << i;
				found = true;
			}
		if (!found)
			return false;
		arg += n;
		arg += *arg == ',';
	}
	return true;
}

/* A count parameter: def when absent, else min..max. */
static bool
parse_count(const char *arg, uint64_t def, uint64_t min, uint64_t max,
    uint64_t *out)
{
	if (arg == NULL) {
		*out = def;
		return true;
	}
	return pf_parse_uint(arg, min, max, out) == PF_OK;
}

static enum MHD_Result
list_sessions(struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who)
{
	const char *state = MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "state");
	struct engine_session_info *v = NULL;
	uint64_t limit, offset;
	unsigned mask;
	size_t n = 0, total = 0, shown = 0;
	json_t *list, *next;
	char link[512];

	if (!parse_states(state, &mask))
		return gw_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "unknown state in \"state\"");
	if (!parse_count(MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "limit"), LIST_DEFAULT, 1, LIST_MAX,
	    &limit) || !parse_count(MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "offset"), 0, 0, 1ul << 31, &offset))
		return gw_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "limit must be 1 to %d, offset a count", LIST_MAX);
	if (engine_sessions(h->engine, &v, &n) != PF_OK ||
	    (list = json_array()) == NULL) {
		free(v);
		return gw_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		    "out of memory");
	}
	qsort(v, n, sizeof(*v), newest_first);
	for (size_t i = 0; i < n; i++) {
		if (!gw_may_see(who, v[i].user) ||
		    !(mask & (1u << v[i].state)))
			continue;
		if (total++ < offset || shown >= limit)
			continue;
		json_array_append_new(list, gw_session_json(&v[i],
		    gw_rate_of(h, v[i].id)));
		shown++;
	}
	free(v);
	next = json_null();
	if (offset + shown < total) {
		snprintf(link, sizeof(link), "/api/v1/sessions?offset=%" PRIu64
		    "&limit=%" PRIu64 "%s%s", offset + shown, limit, state ?
		    "&state=" : "", state && strlen(state) < 200 ? state : "");
		next = json_string(link);
	}
	return gw_json(c, MHD_HTTP_OK, json_pack("{s:o,s:I,s:I,s:I,s:o}",
	    "sessions", list, "total", (json_int_t)total, "offset",
	    (json_int_t)offset, "limit", (json_int_t)limit, "next", next));
}

/* The session if who may see it; else answers 404 and returns false. */
static bool
find_session(struct httpd *h, struct MHD_Connection *c, const char *id,
    const struct gw_caller *who, struct engine_session_info *out,
    enum MHD_Result *ret)
{
	if (engine_session(h->engine, id, out) == PF_OK &&
	    gw_may_see(who, out->user))
		return true;
	*ret = gw_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no session %s",
	    id);
	return false;
}

static enum MHD_Result
chunk_map(struct httpd *h, struct MHD_Connection *c, const char *id,
    const struct gw_caller *who)
{
	struct engine_session_info s;
	enum MHD_Result ret;
	enum pf_status rc;
	char *map;

	if (!find_session(h, c, id, who, &s, &ret))
		return ret;
	if ((rc = engine_chunk_map(h->engine, id, &map)) == PF_EIO)
		return gw_json(c, MHD_HTTP_OK, json_pack("{s:s,s:I,s:I,s:n}",
		    "id", id, "chunks_total", (json_int_t)s.chunks_total,
		    "chunk_size", (json_int_t)s.chunk_size, "map"));
	if (rc != PF_OK)
		return gw_error(c, rc == PF_ENOSESSION ? MHD_HTTP_NOT_FOUND :
		    MHD_HTTP_INTERNAL_SERVER_ERROR, rc == PF_ENOSESSION ?
		    "not_found" : "internal", "%s", pf_status_message(rc));
	ret = gw_json(c, MHD_HTTP_OK, json_pack("{s:s,s:I,s:I,s:s%}",
	    "id", id, "chunks_total", (json_int_t)strlen(map), "chunk_size",
	    (json_int_t)s.chunk_size, "map", map, strlen(map)));
	free(map);
	return ret;
}

static enum MHD_Result
remove_session(struct httpd *h, struct MHD_Connection *c, const char *id,
    const struct gw_caller *who)
{
	struct engine_session_info s;
	bool cancelled;
	enum pf_status rc;

	/* The owner, to whom (and admins) the event goes. */
	if (engine_session(h->engine, id, &s) != PF_OK)
		s.user[0] = '\0';
	rc = engine_remove_session(h->engine, id, who->admin ? NULL :
	    who->user, &cancelled);
	if (rc == PF_ENOSESSION)
		return gw_error(c, MHD_HTTP_NOT_FOUND, "not_found",
		    "no session %s", id);
	if (rc == PF_EBUSY)
		return gw_error(c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is being assembled; try again", id);
	if (rc != PF_OK)
		return gw_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		    "cannot remove session %s: %s", id,
		    pf_status_message(rc));
	if (!cancelled)
		gw_publish(h, "deleted", s.user, json_pack("{s:s}", "id", id));
	return gw_json(c, MHD_HTTP_OK, json_pack("{s:s,s:s}", "id", id,
	    "action", cancelled ? "cancelled" : "deleted"));
}

/*
 * A short-lived link to the file that needs no login, for a browser
 * download: a page cannot put credentials on a plain link, and fetching
 * the file into the page would hold all of it in memory.
 */
static enum MHD_Result
make_link(struct httpd *h, struct MHD_Connection *c, const char *id,
    const struct gw_caller *who)
{
	struct engine_session_info s;
	int64_t expires = (int64_t)time(NULL) + GW_LINK_TTL_S;
	char token[128], url[256], at[32];
	enum MHD_Result ret;

	if (!find_session(h, c, id, who, &s, &ret))
		return ret;
	if (s.state != ENGINE_COMPLETE)
		return gw_error(c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is not complete", id);
	if (!gw_link_token(h, id, expires, token, sizeof(token)))
		return gw_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		    "cannot make a link");
	snprintf(url, sizeof(url), "/api/v1/sessions/%s/file?token=%s", id,
	    token);
	pf_time_rfc3339(expires, at);
	return gw_json(c, MHD_HTTP_OK, json_pack("{s:s,s:s}", "url", url,
	    "expires_at", at));
}

/* /api/v1/sessions/{id}[/sub] */
static enum MHD_Result
one_session(struct httpd *h, struct MHD_Connection *c, const char *method,
    const char *rest, const struct gw_caller *who)
{
	char id[ENGINE_ID_LEN + 1];
	const char *sub = strchr(rest, '/');
	size_t idlen = sub ? (size_t)(sub - rest) : strlen(rest);
	struct engine_session_info s;
	enum MHD_Result ret;

	if (idlen != ENGINE_ID_LEN)
		goto bad_id;
	memcpy(id, rest, idlen);
	id[idlen] = '\0';
	if (!valid_id(id))
		goto bad_id;
	if (sub == NULL && who->link)
		return gw_unauthorized(c);
	if (sub == NULL) {
		if (strcmp(method, "DELETE") == 0)
			return remove_session(h, c, id, who);
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return gw_not_allowed(c, "GET, HEAD, DELETE");
		if (!find_session(h, c, id, who, &s, &ret))
			return ret;
		return gw_json(c, MHD_HTTP_OK, gw_session_json(&s,
		    gw_rate_of(h, id)));
	}
	if (strcmp(sub, "/file") == 0)
		return gw_file(h, c, method, id, who);
	if (who->link)
		return gw_unauthorized(c);
	if (strcmp(sub, "/link") == 0) {
		if (strcmp(method, "POST") != 0)
			return gw_not_allowed(c, "POST");
		return make_link(h, c, id, who);
	}
	if (strcmp(sub, "/chunks") == 0) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return gw_not_allowed(c, "GET, HEAD");
		return chunk_map(h, c, id, who);
	}
	return gw_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
bad_id:
	return gw_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
	    "a session id is a UUID");
}

enum MHD_Result
gw_api(struct httpd *h, struct MHD_Connection *c, const char *method,
    const char *url, const struct gw_caller *who)
{
	static const char sessions[] = "/api/v1/sessions";
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (strcmp(url, sessions) == 0) {
		if (!get)
			return gw_not_allowed(c, "GET, HEAD");
		return list_sessions(h, c, who);
	}
	if (strncmp(url, sessions, sizeof(sessions) - 1) == 0 &&
	    url[sizeof(sessions) - 1] == '/')
		return one_session(h, c, method, url + sizeof(sessions), who);
	if (strcmp(url, "/api/v1/stats") == 0) {
		if (!get)
			return gw_not_allowed(c, "GET, HEAD");
		return gw_json(c, MHD_HTTP_OK, gw_stats_json(h, who));
	}
	if (strcmp(url, "/api/v1/events") == 0) {
		if (strcmp(method, "GET") != 0)
			return gw_not_allowed(c, "GET");
		return gw_events(h, c, who);
	}
	return gw_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
}
