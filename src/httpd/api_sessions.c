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
#include "buf.h"
#include "clock.h"
#include "digest.h"
#include "events.h"
#include "handlers.h"
#include "listcache.h"
#include "monitor.h"
#include "response.h"
#include "views.h"

#define LIST_DEFAULT	50
#define LIST_MAX	500
/* A list's ETag: W/"<first LIST_ETAG_MAC bytes of its MAC, hex>". */
#define LIST_ETAG_MAC	12
#define LIST_ETAG_LEN	(2 * LIST_ETAG_MAC + 5)
/* A state filter "next" repeats: shorter than this. */
#define LIST_STATE_ECHO	200
/* A list's text: 500 sessions of the longest names fit. */
#define LIST_TEXT_MAX	(8u * 1024 * 1024)

_Static_assert(1 + ENGINE_MAX_USER + 1 + 2 * sizeof(uint64_t) + 1 +
    LIST_STATE_ECHO <= LISTCACHE_KEY_MAX, "a list's key fits");

/* Newest first; the id breaks ties so pages are stable. */
static int
newest_first(const void *a, const void *b)
{
	const struct engine_session_info *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? 1 : -1;
	return strcmp(x->id, y->id);
}

static int
by_id(const void *a, const void *b)
{
	const struct engine_session_info *x = a, *y = b;

	return strcmp(x->id, y->id);
}

/*
 * The engine's sessions in *v (a new array of *n), and on S3 storage
 * those of the bucket's listing this node does not hold: its own live
 * view of a session (per chunk, streams, rate) wins over the store's.
 */
static enum pf_status
all_sessions(struct engine *e, struct engine_session_info **v, size_t *n)
{
	struct engine_session_info *st = NULL, *w;
	size_t ns = 0, k;

	if (engine_sessions(e, v, n) != PF_OK)
		return PF_ENOMEM;
	if (engine_store_sessions(e, &st, &ns) != PF_OK || ns == 0) {
		free(st);
		return PF_OK;
	}
	if ((w = realloc(*v, (*n + ns) * sizeof(*w))) == NULL) {
		free(st);
		free(*v);
		*v = NULL;
		return PF_ENOMEM;
	}
	qsort(w, *n, sizeof(*w), by_id);
	k = *n;
	for (size_t i = 0; i < ns; i++)
		if (bsearch(&st[i], w, *n, sizeof(*w), by_id) == NULL)
			w[k++] = st[i];
	*v = w;
	*n = k;
	free(st);
	return PF_OK;
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
	    state && strlen(state) < LIST_STATE_ECHO ? state : "");
	return json_string(link);
}

/*
 * The page after the sessions of a list (their JSON in b already): the
 * rest of the SessionList, as jansson would write it.
 */
static void
list_tail(struct pf_buf *b, const char *state, size_t total,
    uint64_t offset, uint64_t limit, size_t shown)
{
	json_t *j = json_pack("{s:I,s:I,s:I,s:o}", "total", (json_int_t)total,
	    "offset", (json_int_t)offset, "limit", (json_int_t)limit, "next",
	    offset + shown < total ? next_page(state, offset + shown, limit) :
	    json_null());
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) :
	    NULL;

	json_decref(j);
	/* "{...}" follows "...]," without its brace. */
	if (text == NULL || !pf_buf_add(b, "],", 2) ||
	    !pf_buf_add(b, text + 1, strlen(text + 1)))
		b->failed = true;
	free(text);
}

/*
 * The page of sessions the caller may see, newest first, as new compact
 * JSON text (*len bytes); NULL if out of memory. Each session's JSON
 * comes from listcache_session: rendered once per change of it.
 */
static char *
list_text(const struct gw_call *call, const char *state, unsigned mask,
    uint64_t offset, uint64_t limit, size_t *len)
{
	static const char head[] = "{\"sessions\":[";
	struct engine_session_info *v = NULL;
	size_t n = 0, total = 0, shown = 0;
	struct pf_buf b;

	pf_buf_init(&b, LIST_TEXT_MAX);
	if (all_sessions(call->h->engine, &v, &n) != PF_OK)
		return NULL;
	qsort(v, n, sizeof(*v), newest_first);
	pf_buf_add(&b, head, sizeof(head) - 1);
	for (size_t i = 0; i < n && !b.failed; i++) {
		if (!access_may_see(&call->who, v[i].user) ||
		    !(mask & (1u << v[i].state)))
			continue;
		if (total++ < offset || shown >= limit)
			continue;
		if ((shown++ > 0 && !pf_buf_add(&b, ",", 1)) ||
		    !listcache_session(call->h, &v[i], monitor_rate_of(call->h,
		    v[i].id), &b))
			b.failed = true;
	}
	free(v);
	list_tail(&b, state, total, offset, limit, shown);
	if (b.failed) {
		pf_buf_free(&b);
		return NULL;
	}
	return pf_buf_steal(&b, len);
}

/*
 * What a list depends on besides the generations, into key: the view
 * (all, for an admin, or one user's) and the query: the state filter as
 * given, which next_page repeats, or only its mask when too long for
 * that. Returns its length.
 */
static size_t
list_key(const struct gw_call *call, const char *state, unsigned mask,
    uint64_t offset, uint64_t limit, char key[LISTCACHE_KEY_MAX])
{
	const char *user = call->who.admin ? "" : call->who.user;
	size_t ulen = strlen(user), slen = state ? strlen(state) : 0;
	char *p = key;

	/* The user's name holds no NUL and the state comes last: one key. */
	*p++ = call->who.admin ? 'A' : 'U';
	memcpy(p, user, ulen + 1);
	p += ulen + 1;
	memcpy(p, &offset, sizeof(offset));
	p += sizeof(offset);
	memcpy(p, &limit, sizeof(limit));
	p += sizeof(limit);
	if (state == NULL)
		*p++ = 'N';
	else if (slen < LIST_STATE_ECHO) {
		*p++ = 'S';
		memcpy(p, state, slen);
		p += slen;
	} else {
		*p++ = 'M';
		memcpy(p, &mask, sizeof(mask));
		p += sizeof(mask);
	}
	return (size_t)(p - key);
}

/*
 * The weak ETag of the list of key at gen: a MAC under the gateway's
 * secret, so it differs between views, queries, changes and restarts and
 * tells nothing of them. The label keeps it apart from the download
 * links' MACs under the same secret.
 */
static bool
list_etag(struct httpd *h, const char *key, size_t klen,
    const struct listcache_gen *gen, char etag[LIST_ETAG_LEN])
{
	static const char label[] = "paraflow list";
	uint8_t msg[sizeof(label) + 2 * sizeof(uint64_t) + LISTCACHE_KEY_MAX];
	uint8_t mac[PF_SHA256_LEN], *p = msg;

	memcpy(p, label, sizeof(label));
	p += sizeof(label);
	memcpy(p, &gen->engine, sizeof(gen->engine));
	p += sizeof(gen->engine);
	memcpy(p, &gen->monitor, sizeof(gen->monitor));
	p += sizeof(gen->monitor);
	memcpy(p, key, klen);
	p += klen;
	if (pf_hmac_sha256(h->secret, sizeof(h->secret), msg,
	    (size_t)(p - msg), mac) != PF_OK)
		return false;
	memcpy(etag, "W/\"", 3);
	pf_hex_encode(mac, LIST_ETAG_MAC, etag + 3);
	memcpy(etag + 3 + 2 * LIST_ETAG_MAC, "\"", 2);
	return true;
}

/*
 * The list of the given page: from the cache if nothing it shows has
 * changed since it was rendered, else rendered and kept; a 304 if the
 * caller's If-None-Match names it.
 */
static enum MHD_Result
list_answer(const struct gw_call *call, const char *state, unsigned mask,
    uint64_t offset, uint64_t limit)
{
	struct MHD_Connection *c = call->c;
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "If-None-Match");
	char key[LISTCACHE_KEY_MAX], etag[LIST_ETAG_LEN], *text;
	struct listcache_body *body;
	struct listcache_gen gen;
	struct MHD_Response *r;
	size_t klen, len;
	bool fresh;

	/*
	 * Read before the copies: a change after them makes a new tag. On
	 * S3 storage the bucket's listing (kept ENGINE_STORE_LIST_TTL_S)
	 * counts too: a sum of two counters that only grow changes when
	 * either does.
	 */
	gen.engine = engine_generation(call->h->engine) +
	    engine_store_refresh(call->h->engine);
	gen.monitor = monitor_generation(call->h);
	klen = list_key(call, state, mask, offset, limit, key);
	if (!list_etag(call->h, key, klen, &gen, etag))
		return resp_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "cannot tag the list");
	/*
	 * The tag's quoted part: W/"x" and "x" both match (weakly). A 304
	 * states the 200's length: the kept list's, which it mostly is.
	 */
	fresh = inm != NULL && resp_etag_matches(inm, etag + 2, true);
	if ((r = listcache_get(call->h, key, klen, &gen)) != NULL)
		return resp_tagged(c, r, etag, fresh);
	if ((text = list_text(call, state, mask, offset, limit, &len)) ==
	    NULL || (body = listcache_body_new(text, len)) == NULL)
		return resp_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "out of memory");
	listcache_put(call->h, key, klen, &gen, body);
	r = listcache_response(body);
	listcache_body_unref(body);
	return resp_tagged(c, r, etag, fresh);
}

enum MHD_Result
api_sessions_list(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	const char *state = MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "state");
	uint64_t limit, offset;
	unsigned mask;

	if (!parse_states(state, &mask))
		return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "unknown state in \"state\"");
	if (!parse_count(MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "limit"), LIST_DEFAULT, 1, LIST_MAX,
	    &limit) || !parse_count(MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "offset"), 0, 0, 1ul << 31, &offset))
		return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "limit must be 1 to %d, offset a count", LIST_MAX);
	return list_answer(call, state, mask, offset, limit);
}

/* The session if the caller may see it; else answers 404, returns false. */
static bool
find_session(const struct gw_call *call, struct engine_session_info *out,
    enum MHD_Result *ret)
{
	struct engine *e = call->h->engine;

	/* On a shared store, a listing due first takes out of this node's
	   own what another node deleted. */
	if (engine_store_shared(e))
		(void)engine_store_refresh(e);
	if ((engine_session(e, call->id, out) == PF_OK ||
	    engine_store_session(e, call->id, out) == PF_OK) &&
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
	if ((rc = engine_chunk_map(call->h->engine, id, &map)) ==
	    PF_ENOSESSION)
		rc = engine_store_chunk_map(call->h->engine, id, &map);
	if (rc == PF_EIO)
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

/* True if s (user "" if unknown) is a session this node takes chunks of. */
static bool
live_here(const struct engine_session_info *s)
{
	return s->user[0] != '\0' && (s->state == ENGINE_RECEIVING ||
	    s->state == ENGINE_ASSEMBLING);
}

/*
 * DELETE of a session in the bucket that this node does not take chunks
 * of: an ongoing one is cancelled in the store (its upload aborted, its
 * keys deleted), and the node that holds it, if any, finds it cancelled
 * at its next chunk; a finished one is deleted (its object and keys),
 * from any node, as the storage directory deletes its file.
 */
static enum MHD_Result
store_delete(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	char owner[ENGINE_MAX_USER + 1];
	enum pf_status rc;
	bool deleted;

	rc = engine_store_remove(call->h->engine, call->id, call->who.admin ?
	    NULL : call->who.user, &deleted, owner);
	if (rc == PF_ENOSESSION)
		return resp_error(c, MHD_HTTP_NOT_FOUND, "not_found",
		    "no session %s", call->id);
	if (rc == PF_EBUSY)
		return resp_error(c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is being committed; try again", call->id);
	if (rc != PF_OK)
		return resp_error(c, MHD_HTTP_BAD_GATEWAY, "store_failed",
		    "the store cannot remove session %s: %s", call->id,
		    pf_status_message(rc));
	if (deleted)
		events_publish(call->h, "deleted", owner, json_pack("{s:s}",
		    "id", call->id));
	return resp_json(c, MHD_HTTP_OK, json_pack("{s:s,s:s}", "id",
	    call->id, "action", deleted ? "deleted" : "cancelled"));
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
	if (engine_store_shared(call->h->engine) && !live_here(&s))
		return store_delete(call);
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
