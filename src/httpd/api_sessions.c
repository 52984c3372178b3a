/* SPDX-License-Identifier: MIT */
/* The sessions of the REST API: list, one, its chunk map, DELETE, links. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "args.h"
#include "clock.h"
#include "events.h"
#include "handlers.h"
#include "monitor.h"
#include "response.h"
#include "views.h"

#define LIST_DEFAULT	50
#define LIST_MAX	500

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
	enum engine_state s;

	*mask = 0;
	if (arg == NULL || *arg == '\0') {
		*mask = ~0u;
		return true;
	}
	while (*arg != '\0') {
		size_t n = strcspn(arg, ",");

		if (!views_state_parse(arg, n, &s))
			return false;
		if (s < ENGINE_NSTATES)
			*mask |= 1u << s;
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

/* The "next" of a page: the link to the one after, or null at the end. */
static json_t *
next_page(const char *state, uint64_t offset, uint64_t limit)
{
	char link[512];

	snprintf(link, sizeof(link), "/api/v1/sessions?offset=%" PRIu64
	    "&limit=%" PRIu64 "%s%s", offset, limit, state ? "&state=" : "",
	    state && strlen(state) < 200 ? state : "");
	return json_string(link);
}

enum MHD_Result
api_sessions_list(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	const char *state = MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "state");
	struct engine_session_info *v = NULL;
	uint64_t limit, offset;
	unsigned mask;
	size_t n = 0, total = 0, shown = 0;
	json_t *list;

	if (!parse_states(state, &mask))
		return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "unknown state in \"state\"");
	if (!parse_count(MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "limit"), LIST_DEFAULT, 1, LIST_MAX,
	    &limit) || !parse_count(MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "offset"), 0, 0, 1ul << 31, &offset))
		return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "limit must be 1 to %d, offset a count", LIST_MAX);
	if (engine_sessions(call->h->engine, &v, &n) != PF_OK ||
	    (list = json_array()) == NULL) {
		free(v);
		return resp_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "out of memory");
	}
	qsort(v, n, sizeof(*v), newest_first);
	for (size_t i = 0; i < n; i++) {
		if (!access_may_see(&call->who, v[i].user) ||
		    !(mask & (1u << v[i].state)))
			continue;
		if (total++ < offset || shown >= limit)
			continue;
		json_array_append_new(list, views_session_json(&v[i],
		    monitor_rate_of(call->h, v[i].id)));
		shown++;
	}
	free(v);
	return resp_json(c, MHD_HTTP_OK, json_pack("{s:o,s:I,s:I,s:I,s:o}",
	    "sessions", list, "total", (json_int_t)total, "offset",
	    (json_int_t)offset, "limit", (json_int_t)limit, "next",
	    offset + shown < total ? next_page(state, offset + shown, limit) :
	    json_null()));
}

/* The session if the caller may see it; else answers 404, returns false. */
static bool
find_session(const struct gw_call *call, struct engine_session_info *out,
    enum MHD_Result *ret)
{
	if (engine_session(call->h->engine, call->id, out) == PF_OK &&
	    access_may_see(&call->who, out->user))
		return true;
	*ret = resp_error(call->c, MHD_HTTP_NOT_FOUND, "not_found",
	    "no session %s", call->id);
	return false;
}

enum MHD_Result
api_sessions_get(const struct gw_call *call)
{
	struct engine_session_info s;
	enum MHD_Result ret;

	if (!find_session(call, &s, &ret))
		return ret;
	return resp_json(call->c, MHD_HTTP_OK, views_session_json(&s,
	    monitor_rate_of(call->h, call->id)));
}

enum MHD_Result
api_sessions_chunks(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	const char *id = call->id;
	struct engine_session_info s;
	enum MHD_Result ret;
	enum pf_status rc;
	char *map;

	if (!find_session(call, &s, &ret))
		return ret;
	if ((rc = engine_chunk_map(call->h->engine, id, &map)) == PF_EIO)
		return resp_json(c, MHD_HTTP_OK, json_pack("{s:s,s:I,s:I,s:n}",
		    "id", id, "chunks_total", (json_int_t)s.chunks_total,
		    "chunk_size", (json_int_t)s.chunk_size, "map"));
	if (rc != PF_OK)
		return resp_error(c, rc == PF_ENOSESSION ? MHD_HTTP_NOT_FOUND :
		    MHD_HTTP_INTERNAL_SERVER_ERROR, rc == PF_ENOSESSION ?
		    "not_found" : "internal", "%s", pf_status_message(rc));
	ret = resp_json(c, MHD_HTTP_OK, json_pack("{s:s,s:I,s:I,s:s%}",
	    "id", id, "chunks_total", (json_int_t)strlen(map), "chunk_size",
	    (json_int_t)s.chunk_size, "map", map, strlen(map)));
	free(map);
	return ret;
}

enum MHD_Result
api_sessions_delete(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	const char *id = call->id;
	struct engine_session_info s;
	bool cancelled;
	enum pf_status rc;

	/* The owner, to whom (and admins) the event goes. */
	if (engine_session(call->h->engine, id, &s) != PF_OK)
		s.user[0] = '\0';
	rc = engine_remove_session(call->h->engine, id, call->who.admin ?
	    NULL : call->who.user, &cancelled);
	if (rc == PF_ENOSESSION)
		return resp_error(c, MHD_HTTP_NOT_FOUND, "not_found",
		    "no session %s", id);
	if (rc == PF_EBUSY)
		return resp_error(c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is being assembled; try again", id);
	if (rc != PF_OK)
		return resp_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "cannot remove session %s: %s", id,
		    pf_status_message(rc));
	/* A cancelled one ends in the monitor's sample, with its event. */
	if (!cancelled)
		events_publish(call->h, "deleted", s.user, json_pack("{s:s}",
		    "id", id));
	return resp_json(c, MHD_HTTP_OK, json_pack("{s:s,s:s}", "id", id,
	    "action", cancelled ? "cancelled" : "deleted"));
}

/*
 * A short-lived link to the file that needs no login, for a browser
 * download: a page cannot put credentials on a plain link, and fetching
 * the file into the page would hold all of it in memory.
 */
enum MHD_Result
api_sessions_link(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	const char *id = call->id;
	struct engine_session_info s;
	int64_t expires = (int64_t)time(NULL) + GW_LINK_TTL_S;
	char token[128], url[256], at[32];
	enum MHD_Result ret;

	if (!find_session(call, &s, &ret))
		return ret;
	if (s.state != ENGINE_COMPLETE)
		return resp_error(c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is not complete", id);
	if (!access_link_token(call->h, id, expires, token, sizeof(token)))
		return resp_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "cannot make a link");
	snprintf(url, sizeof(url), "/api/v1/sessions/%s/file?token=%s", id,
	    token);
	pf_time_rfc3339(expires, at);
	return resp_json(c, MHD_HTTP_OK, json_pack("{s:s,s:s}", "url", url,
	    "expires_at", at));
}
