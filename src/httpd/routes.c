/* SPDX-License-Identifier: MIT */
/* The gateway's route table and the dispatch of a request through it. */
#include "config.h"

#include <stdio.h>
#include <string.h>


#include "access.h"
#include "conns.h"
#include "handlers.h"
#include "proto.h"
#include "response.h"
#include "routes.h"

/* Methods, as a set. OTHER stands for every method not named here. */
#define M_GET		0x01u
#define M_HEAD		0x02u
#define M_POST		0x04u
#define M_DELETE	0x08u
#define M_OTHER		0x80u
#define M_READ		(M_GET | M_HEAD)
#define M_ANY		0xffu

/* Who may call a route. */
enum access_kind {
	OPEN,		/* anyone */
	PROBE,		/* anyone; HTTP Basic with --http-auth-all */
	BASIC,		/* HTTP Basic */
	LINK		/* HTTP Basic, or a download link (?token=) */
};

/*
 * One route. A pattern is the path, where "{id}" stands for one segment
 * (a session id: a UUID, else 400), "{file}" for the rest of a dashboard
 * path (plain names only: a path that is not matches no route) and "*"
 * for any rest. Routes of one pattern are consecutive and share their
 * access: the first whose methods hold the request's answers it, and if
 * none does, a 405 lists all of theirs in Allow.
 */
struct route {
	const char	*pattern;
	unsigned	 methods;
	enum access_kind access;
	enum MHD_Result	(*handler)(const struct gw_call *);
};

static enum MHD_Result not_found(const struct gw_call *call);

/*
 * The routes. The first match wins, so each catch-all ("*") follows the
 * routes it stands behind; the last entry (no pattern) is the 404. Only
 * the file of a session and a transfer's tar take a download link:
 * elsewhere a ?token= is no login. Under /api the login comes before
 * the 404, as everywhere there, so that the API's paths are not told to
 * strangers.
 */
static const struct route routes[] = {
	{ "/healthz",		M_READ,		PROBE,	api_health_live },
	{ "/readyz",		M_READ,		PROBE,	api_health_ready },
	{ "/metrics",		M_READ,		PROBE,	metrics_serve },
	{ "/api/v1/sessions",	M_READ,		BASIC,	api_sessions_list },
	{ "/api/v1/sessions/{id}", M_READ,	BASIC,	api_sessions_get },
	{ "/api/v1/sessions/{id}", M_DELETE,	BASIC,	api_sessions_delete },
	{ "/api/v1/sessions/{id}/file", M_READ,	LINK,	api_files_download },
	{ "/api/v1/sessions/{id}/link", M_POST,	BASIC,	api_sessions_link },
	{ "/api/v1/sessions/{id}/chunks", M_READ, BASIC, api_sessions_chunks },
	{ "/api/v1/sessions/{id}/files", M_READ, BASIC, api_transfer_files },
	{ "/api/v1/sessions/{id}/tar", M_READ,	LINK,	api_transfer_tar },
	{ "/api/v1/sessions/{id}/*", M_ANY,	BASIC,	not_found },
	{ "/api/v1/stats",	M_READ,		BASIC,	api_stats_get },
	{ "/api/v1/events",	M_GET,		BASIC,	events_subscribe },
	{ "/api",		M_ANY,		BASIC,	not_found },
	{ "/api/*",		M_ANY,		BASIC,	not_found },
	/* A missing file is a 404 whatever the method: assets_serve checks. */
	{ "/{file}",		M_ANY,		OPEN,	assets_serve },
	{ NULL,			M_ANY,		OPEN,	not_found },
};

static enum MHD_Result
not_found(const struct gw_call *call)
{
	return resp_not_found(call->c);
}

static unsigned
method_bit(const char *method)
{
	static const struct {
		const char	*name;
		unsigned	 bit;
	} names[] = {
		{ "GET", M_GET }, { "HEAD", M_HEAD }, { "POST", M_POST },
		{ "DELETE", M_DELETE },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (strcmp(method, names[i].name) == 0)
			return names[i].bit;
	return M_OTHER;
}

/* The Allow header for a set of methods, e.g. "GET, HEAD, DELETE". */
static void
allow_text(unsigned methods, char *out, size_t cap)
{
	static const char *const names[] = { "GET", "HEAD", "POST", "DELETE" };
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (methods & (1u << i))
			len += (size_t)snprintf(out + len, cap - len, "%s%s",
			    len ? ", " : "", names[i]);
}

/* Dashboard paths: plain names only, no dot segments, no hidden files. */
static bool
safe_path(const char *p)
{
	if (*p == '\0' || strlen(p) > 200)
		return false;
	for (const char *q = p; *q != '\0'; q++) {
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		    (*q >= '0' && *q <= '9') || strchr("._-/", *q)))
			return false;
		if ((q == p || q[-1] == '/') && (*q == '.' || *q == '/'))
			return false;
	}
	return true;
}

/*
 * True if url matches pattern; then the {id} segment (maybe empty) is in
 * *id and *idlen, which stay untouched if the pattern has none.
 */
static bool
match(const char *pattern, const char *url, const char **id, size_t *idlen)
{
	const char *p = pattern, *u = url, *seg = NULL;
	size_t seglen = 0;
	bool ok;

	for (;;) {
		if (strcmp(p, "*") == 0) {
			ok = true;
			break;
		}
		if (strcmp(p, "{file}") == 0) {
			ok = *u == '\0' || safe_path(u);
			break;
		}
		if (strncmp(p, "{id}", 4) == 0) {
			seg = u;
			seglen = strcspn(u, "/");
			u += seglen;
			p += 4;
			continue;
		}
		if (*p == '\0' || *p != *u) {
			ok = *p == '\0' && *u == '\0';
			break;
		}
		p++;
		u++;
	}
	if (ok && seg != NULL) {
		*id = seg;
		*idlen = seglen;
	}
	return ok;
}

/*
 * Checks the caller against the route's access kind into call->who; on
 * refusal queues the answer into *ret and returns false.
 */
static bool
check_access(struct gw_call *call, enum access_kind kind,
    enum MHD_Result *ret)
{
	struct httpd *h = call->h;
	struct MHD_Connection *c = call->c;
	unsigned wait;
	char secs[16], msg[96];

	if (kind == OPEN || (kind == PROBE && !h->cfg.auth_all))
		return true;
	/* A link stands for the login of whoever asked for it. */
	if (kind == LINK && MHD_lookup_connection_value(c,
	    MHD_GET_ARGUMENT_KIND, "token") != NULL) {
		call->who.link = true;
		return true;
	}
	switch (access_check_basic(h, c, &call->who, &wait)) {
	case ACCESS_AUTH_OK:
		return true;
	case ACCESS_AUTH_LIMITED:
		snprintf(secs, sizeof(secs), "%u", wait);
		snprintf(msg, sizeof(msg), "too many failed logins; try again "
		    "in %u s", wait);
		*ret = resp_error_with(c, MHD_HTTP_TOO_MANY_REQUESTS,
		    "too_many_requests", msg, "Retry-After", secs);
		return false;
	default:
		*ret = resp_unauthorized(c);
		return false;
	}
}

/* The route of method among those of r's pattern, with their Allow set. */
static const struct route *
pick_method(const struct route *r, unsigned bit, unsigned *allowed)
{
	const struct route *found = NULL;

	*allowed = 0;
	for (const struct route *o = r; o->pattern != NULL &&
	    strcmp(o->pattern, r->pattern) == 0; o++) {
		if (found == NULL && (o->methods & bit))
			found = o;
		*allowed |= o->methods;
	}
	return found;
}

enum MHD_Result
routes_dispatch(struct httpd *h, struct MHD_Connection *c, const char *url,
    const char *method)
{
	struct gw_call call = { .h = h, .c = c, .method = method, .url = url };
	const struct route *r;
	const char *id = NULL;
	size_t idlen = 0;
	unsigned allowed;
	enum MHD_Result ret;
	char allow[64];

	if (conns_over_limit(c))
		return resp_error_with(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
		    "too many connections from this address", "Connection",
		    "close");
	for (r = routes; r->pattern != NULL; r++)
		if (match(r->pattern, url, &id, &idlen))
			break;
	if (!check_access(&call, r->access, &ret))
		return ret;
	if (id != NULL) {
		if (idlen != ENGINE_ID_LEN)
			goto bad_id;
		memcpy(call.id, id, idlen);
		call.id[idlen] = '\0';
		if (!proto_id_valid(call.id))
			goto bad_id;
		proto_id_lower(call.id);
	}
	if (r->pattern != NULL &&
	    (r = pick_method(r, method_bit(method), &allowed)) == NULL) {
		allow_text(allowed, allow, sizeof(allow));
		return resp_not_allowed(c, allow);
	}
	if (call.who.link && !access_link_valid(h, call.id,
	    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token")))
		return resp_error(c, MHD_HTTP_FORBIDDEN, "link_expired",
		    "the download link is not valid (any more)");
	return r->handler(&call);
bad_id:
	return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
	    "a session id is a UUID");
}
