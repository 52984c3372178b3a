/* SPDX-License-Identifier: MIT */
/*
 * Resumable uploads over HTTP: the tus 1.0.0 protocol under
 * /api/v1/uploads (core, creation, creation-with-upload, termination,
 * checksum, expiration, concatenation), written into the engine's
 * sessions through engine_upload_*. Request bodies are streamed to the
 * engine as MHD hands them over, so a request holds MHD's buffer and no
 * more.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "access.h"
#include "conns.h"
#include "digest.h"
#include "events.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "response.h"
#include "tus.h"

#define TUS_VERSION	"1.0.0"
#define TUS_EXTENSIONS	"creation,creation-with-upload,termination," \
	"checksum,expiration,concatenation"
#define TUS_ROOT	"/api/v1/uploads"
#define TUS_MAX_META	4096	/* bytes of Upload-Metadata */
#define TUS_MAX_PARTS	64	/* partial uploads in a final one */
/* tus's own status: the body does not match its Upload-Checksum. */
#define TUS_CHECKSUM_MISMATCH	460

/* One tus request (*req_cls of gateway.c while it runs). */
struct tus_req {
	struct httpd		*h;
	bool			 started;	/* its headers were handled */
	bool			 create;	/* POST: 201 and Location */
	bool			 located;	/* ... and its Location given */
	bool			 checked;	/* body headers: body_headers */
	char			 id[ENGINE_ID_LEN + 1];
	struct engine_upload	*u;		/* a body being written */
	struct pf_sha256	*sum;		/* with Upload-Checksum */
	uint8_t			 want[PF_SHA256_LEN];
	uint64_t		 body;		/* bytes read */
	uint64_t		 room;		/* bytes the upload can take */
	uint64_t		 err_at;	/* body bytes read at err */
	enum pf_status		 err;		/* of the first failed write */
	char			 why[256];
	bool			 hold;		/* answers wait for the body */
	struct MHD_Response	*held;		/* the answer, once it is in */
	unsigned		 held_status;
};

bool
tus_path(const char *url)
{
	size_t n = strlen(TUS_ROOT);

	return strncmp(url, TUS_ROOT, n) == 0 &&
	    (url[n] == '\0' || url[n] == '/');
}

/* A tus answer: no body, the headers every answer carries. */
static struct MHD_Response *
empty(void)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (r != NULL) {
		resp_add_common_headers(r);
		MHD_add_response_header(r, "Tus-Resumable", TUS_VERSION);
	}
	return r;
}

/*
 * Queues answer r of rq, or keeps it while rq->hold, until the body
 * (up to GW_DRAIN_MAX) is read; see tus_access.
 */
static enum MHD_Result
answer(struct tus_req *rq, struct MHD_Connection *c, unsigned status,
    struct MHD_Response *r)
{
	if (r == NULL)
		return MHD_NO;
	if (!rq->hold)
		return resp_queue(c, status, r);
	if (rq->held != NULL)
		MHD_destroy_response(rq->held);
	rq->held = r;
	rq->held_status = status;
	return MHD_YES;
}

/* An error as the API words them, with Tus-Resumable, and a header. */
static enum MHD_Result
fail_with(struct tus_req *rq, struct MHD_Connection *c, unsigned status,
    const char *code, const char *msg, const char *header, const char *value)
{
	struct MHD_Response *r;
	json_t *j;
	char *text;

	j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	text = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(j);
	if (text == NULL || (r = MHD_create_response_from_buffer(
	    strlen(text), text, MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(text);
		return MHD_NO;
	}
	resp_add_common_headers(r);
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Tus-Resumable", TUS_VERSION);
	if (header != NULL)
		MHD_add_response_header(r, header, value);
	return answer(rq, c, status, r);
}

static enum MHD_Result
fail(struct tus_req *rq, struct MHD_Connection *c, unsigned status,
    const char *code, const char *msg)
{
	return fail_with(rq, c, status, code, msg, NULL, NULL);
}

/* A decimal header of c without sign or space into *v; false if not. */
static bool
header_u64(struct MHD_Connection *c, const char *name, uint64_t *v)
{
	const char *s = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	char *end;

	if (s == NULL || *s < '0' || *s > '9' || strlen(s) > 19)
		return false;
	*v = strtoull(s, &end, 10);
	return *end == '\0';
}

static const char *
header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* True if a request body comes (a length over 0, or chunked). */
static bool
has_body(struct MHD_Connection *c)
{
	uint64_t n;

	if (header_u64(c, "Content-Length", &n))
		return n > 0;
	return header(c, "Transfer-Encoding") != NULL;
}

/* The status and error code of a failed engine call. */
static unsigned
http_status(enum pf_status rc, const char **code)
{
	static const struct {
		enum pf_status	 rc;
		unsigned	 status;
		const char	*code;
	} map[] = {
		{ PF_ENOSESSION, 404, "not_found" },
		{ PF_ECANCELLED, 410, "gone" },
		{ PF_EPROTO, 409, "offset_mismatch" },
		{ PF_EBUSY, 423, "locked" },
		{ PF_EQUOTA, 403, "quota_exceeded" },
		{ PF_EFORBIDDEN, 403, "forbidden_type" },
		{ PF_EBADNAME, 400, "bad_name" },
		{ PF_ETOOLARGE, 413, "too_large" },
		{ PF_ENOSPC, 507, "storage_full" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (map[i].rc == rc) {
			*code = map[i].code;
			return map[i].status;
		}
	*code = "internal";
	return 500;
}

/* The error answer of a failed engine call, saying msg. */
static enum MHD_Result
fail_rc(struct tus_req *rq, struct MHD_Connection *c, enum pf_status rc,
    const char *msg)
{
	const char *code;
	unsigned status = http_status(rc, &code);

	return fail(rq, c, status, code, msg);
}

/* Upload-Expires of an upload idle since now: an HTTP date. */
static void
add_expires(struct MHD_Response *r, int64_t expires)
{
	char date[64];
	time_t t = (time_t)expires;
	struct tm tm;

	if (expires > 0 && gmtime_r(&t, &tm) != NULL &&
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT",
	    &tm) > 0)
		MHD_add_response_header(r, "Upload-Expires", date);
}

/* The answer to a body written (or not): offset, and on POST where. */
static enum MHD_Result
answer_offset(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    uint64_t offset)
{
	struct engine_upload_info info;
	struct MHD_Response *r = empty();
	char v[32], where[sizeof(TUS_ROOT) + ENGINE_ID_LEN + 2];

	if (r == NULL)
		return MHD_NO;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)offset);
	MHD_add_response_header(r, "Upload-Offset", v);
	if (engine_upload_info(h->engine, rq->id, NULL, &info) == PF_OK)
		add_expires(r, info.expires);
	if (!rq->create)
		return answer(rq, c, MHD_HTTP_NO_CONTENT, r);
	snprintf(where, sizeof(where), "%s/%s", TUS_ROOT, rq->id);
	MHD_add_response_header(r, "Location", where);
	rq->located = true;
	return answer(rq, c, MHD_HTTP_CREATED, r);
}

/* OPTIONS: what this server speaks. No login: it tells nothing else. */
static enum MHD_Result
discover(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c)
{
	struct MHD_Response *r = empty();
	uint64_t most = engine_upload_max_size(h->engine);
	char max[32];

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Tus-Version", TUS_VERSION);
	MHD_add_response_header(r, "Tus-Extension", TUS_EXTENSIONS);
	MHD_add_response_header(r, "Tus-Checksum-Algorithm", "sha256");
	if (most != 0) {
		snprintf(max, sizeof(max), "%llu", (unsigned long long)most);
		MHD_add_response_header(r, "Tus-Max-Size", max);
	}
	return answer(rq, c, MHD_HTTP_NO_CONTENT, r);
}

/*
 * The filename of Upload-Metadata ("key base64,key base64", keys
 * without value allowed) decoded into out (cap bytes), its length in
 * *n. False if it is malformed or has no filename.
 */
static bool
meta_filename(const char *meta, char *out, size_t cap, size_t *n)
{
	char pair[TUS_MAX_META + 1];
	const char *p = meta;
	long len;

	if (meta == NULL || strlen(meta) > TUS_MAX_META)
		return false;
	while (*p != '\0') {
		size_t k = strcspn(p, ",");

		memcpy(pair, p, k);
		pair[k] = '\0';
		p += k + (p[k] == ',');
		if (strncmp(pair + strspn(pair, " "), "filename ", 9) != 0)
			continue;
		len = pf_base64_decode(pair + strspn(pair, " ") + 9,
		    (uint8_t *)out, cap - 1);
		if (len <= 0 || memchr(out, '\0', (size_t)len) != NULL)
			return false;
		out[len] = '\0';
		*n = (size_t)len;
		return true;
	}
	return false;
}

/* Upload-Checksum "sha256 <base64>" into rq; a 400 answer if bad. */
static bool
parse_checksum(struct tus_req *rq, struct MHD_Connection *c,
    enum MHD_Result *ret)
{
	const char *v = header(c, "Upload-Checksum");

	if (v == NULL)
		return true;
	if (strncmp(v, "sha256 ", 7) != 0 || pf_base64_decode(v + 7,
	    rq->want, sizeof(rq->want)) != PF_SHA256_LEN) {
		*ret = fail(rq, c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "Upload-Checksum must be \"sha256 <base64 of 32 "
		    "bytes>\"");
		return false;
	}
	if ((rq->sum = pf_sha256_new()) == NULL ||
	    pf_sha256_init(rq->sum) != PF_OK) {
		*ret = MHD_NO;
		return false;
	}
	return true;
}

/*
 * Whether media type v (a Content-Type) is type: matched without regard
 * to case, parameters and the blanks around it (RFC 9110 8.3.1).
 */
static bool
media_type_is(const char *v, const char *type)
{
	size_t n = strlen(type);

	if (v == NULL)
		return false;
	v += strspn(v, " \t");
	if (strncasecmp(v, type, n) != 0)
		return false;
	v += n;
	v += strspn(v, " \t");
	return *v == '\0' || *v == ';';
}

/*
 * The headers of a body: its type, and its checksum into rq. On
 * failure the answer is made (see answer()) and *ret is the result.
 */
static bool
body_headers(struct tus_req *rq, struct MHD_Connection *c,
    enum MHD_Result *ret)
{
	const char *type = header(c, "Content-Type");

	if (rq->checked)
		return true;
	if (!media_type_is(type, "application/offset+octet-stream")) {
		*ret = fail(rq, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    "bad_request",
		    "the body must be application/offset+octet-stream");
		return false;
	}
	if (!parse_checksum(rq, c, ret))
		return false;
	rq->checked = true;
	return true;
}

/*
 * Begins writing the body of rq at offset off into upload rq->id of who.
 * On failure the answer is made (see answer()) and *ret is the result.
 */
static bool
begin_body(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who, uint64_t off, enum MHD_Result *ret)
{
	char v[32];
	uint64_t durable = 0, len;
	enum pf_status rc;

	if (!body_headers(rq, c, ret))
		return false;
	rc = engine_upload_begin(h->engine, rq->id, who->admin ? NULL :
	    who->user, off, rq->sum != NULL, &rq->u, &durable);
	/* Complete already, and the client is there too: nothing to do. */
	if (rc == PF_EPROTO && durable == off) {
		*ret = answer_offset(rq, h, c, off);
		return false;
	}
	if (rc == PF_EPROTO) {
		snprintf(v, sizeof(v), "%llu", (unsigned long long)durable);
		*ret = fail_with(rq, c, MHD_HTTP_CONFLICT, "offset_mismatch",
		    "Upload-Offset is not the upload's offset", "Upload-Offset",
		    v);
		return false;
	}
	if (rc != PF_OK) {
		*ret = fail_rc(rq, c, rc, rc == PF_EBUSY ? "the upload is "
		    "being written or finished by another request; try again "
		    "in a moment" : pf_status_message(rc));
		return false;
	}
	rq->room = engine_upload_room(rq->u);
	if (header_u64(c, "Content-Length", &len) && len > rq->room) {
		engine_upload_end(rq->u, false, &durable);
		rq->u = NULL;
		*ret = fail(rq, c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "the body is longer than the rest of the upload");
		return false;
	}
	conns_mark_uploading(c);
	return true;
}

/*
 * POST with Upload-Concat: final;<urls>: the upload joining the partial
 * uploads named, in that order (each URL's last segment is its id).
 */
static enum MHD_Result
create_final(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    struct engine_upload_new *n, const char *list)
{
	char ids[TUS_MAX_PARTS][ENGINE_ID_LEN + 1], why[256];
	const char *part[TUS_MAX_PARTS], *p = list, *seg;
	struct engine_upload_info info;
	enum pf_status rc;
	size_t k, np = 0;

	while (*(p += strspn(p, " ")) != '\0') {
		k = strcspn(p, " ");
		for (seg = p + k; seg > p && seg[-1] != '/'; seg--)
			;
		if (np == TUS_MAX_PARTS || (size_t)(p + k - seg) !=
		    ENGINE_ID_LEN)
			return fail(rq, c, MHD_HTTP_BAD_REQUEST, "bad_request",
			    "Upload-Concat: final; needs 1 to 64 upload URLs");
		memcpy(ids[np], seg, ENGINE_ID_LEN);
		ids[np][ENGINE_ID_LEN] = '\0';
		if (!proto_id_valid(ids[np]))
			return fail(rq, c, MHD_HTTP_NOT_FOUND, "not_found",
			    "no such partial upload");
		proto_id_lower(ids[np]);
		part[np] = ids[np];
		np++;
		p += k;
	}
	if (np == 0 || has_body(c) || header(c, "Upload-Length") != NULL)
		return fail(rq, c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "a final upload names its parts, and has neither "
		    "Upload-Length nor a body");
	if ((rc = engine_upload_concat(h->engine, n, part, np, rq->id, why,
	    sizeof(why))) != PF_OK)
		return fail_rc(rq, c, rc, why);
	rq->create = true;
	if (engine_upload_info(h->engine, rq->id, NULL, &info) != PF_OK)
		info.offset = 0;
	return answer_offset(rq, h, c, info.offset);
}

/* POST: a new upload, maybe with its first bytes (creation-with-upload). */
static enum MHD_Result
create(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who)
{
	struct engine_upload_new n = { .user = who->user };
	struct sockaddr_storage addr;
	char peer[INET6_ADDRSTRLEN], name[TUS_MAX_META], why[256];
	const char *concat = header(c, "Upload-Concat");
	enum MHD_Result ret;
	enum pf_status rc;
	uint64_t len;

	conns_client_addr(c, &addr);
	pf_addr_text(&addr, peer);
	n.peer = peer;
	n.name = name;
	n.partial = concat != NULL && strcmp(concat, "partial") == 0;
	if (!meta_filename(header(c, "Upload-Metadata"), name, sizeof(name),
	    &n.namelen)) {
		if (!n.partial)
			return fail(rq, c, MHD_HTTP_BAD_REQUEST, "bad_request",
			    "Upload-Metadata needs a filename (base64)");
		n.namelen = (size_t)snprintf(name, sizeof(name), "partial");
	}
	if (concat != NULL && strncmp(concat, "final;", 6) == 0)
		return create_final(rq, h, c, &n, concat + 6);
	if ((concat != NULL && !n.partial) ||
	    header(c, "Upload-Defer-Length") != NULL ||
	    !header_u64(c, "Upload-Length", &n.size))
		return fail(rq, c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "POST needs Upload-Length (a number of bytes), and "
		    "Upload-Concat is partial or final;<urls>");
	/* A body that cannot be taken makes no upload the client lacks. */
	if (has_body(c) && !body_headers(rq, c, &ret))
		return ret;
	if (header_u64(c, "Content-Length", &len) && len > n.size)
		return fail(rq, c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "the body is longer than Upload-Length");
	/* PF_EPROTO: the engine's store takes no tus uploads. */
	if ((rc = engine_upload_create(h->engine, &n, rq->id, why,
	    sizeof(why))) == PF_EPROTO)
		return fail(rq, c, MHD_HTTP_NOT_IMPLEMENTED, "not_implemented",
		    why);
	if (rc != PF_OK)
		return fail_rc(rq, c, rc, why);
	rq->create = true;
	rq->h = h;
	if (!has_body(c))
		return answer_offset(rq, h, c, 0);
	if (!begin_body(rq, h, c, who, 0, &ret))
		return ret;
	return MHD_YES;
}

/* Upload-Concat: final;<urls> of a final upload id; else nothing. */
static void
add_final(struct MHD_Response *r, struct httpd *h, const char *id)
{
	char *parts = engine_upload_final_parts(h->engine, id), *v, *p, *save;
	size_t n, cap;

	if (parts == NULL)
		return;
	/* Each id of the list becomes the URL of that upload. */
	cap = 7 + (strlen(parts) / ENGINE_ID_LEN + 1) * (sizeof(TUS_ROOT) +
	    ENGINE_ID_LEN + 1);
	if ((v = malloc(cap)) != NULL) {
		n = (size_t)snprintf(v, cap, "final;");
		for (p = strtok_r(parts, " ", &save); p != NULL && n < cap;
		    p = strtok_r(NULL, " ", &save))
			n += (size_t)snprintf(v + n, cap - n, "%s%s/%s",
			    v[n - 1] == ';' ? "" : " ", TUS_ROOT, p);
		MHD_add_response_header(r, "Upload-Concat", v);
		free(v);
	}
	free(parts);
}

/* HEAD: where the upload is (the durable offset) and how long it is. */
static enum MHD_Result
head(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who)
{
	struct engine_upload_info info;
	struct MHD_Response *r;
	char v[32], *meta, *b64;
	enum pf_status rc;

	rc = engine_upload_info(h->engine, rq->id, who->admin ? NULL :
	    who->user, &info);
	if (rc != PF_OK)
		return fail_rc(rq, c, rc, pf_status_message(rc));
	if ((r = empty()) == NULL)
		return MHD_NO;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)info.offset);
	MHD_add_response_header(r, "Upload-Offset", v);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)info.size);
	MHD_add_response_header(r, "Upload-Length", v);
	add_expires(r, info.state == ENGINE_RECEIVING ? info.expires : 0);
	if (info.partial)
		MHD_add_response_header(r, "Upload-Concat", "partial");
	add_final(r, h, rq->id);
	if (info.name[0] != '\0' && (b64 = pf_base64_encode((const uint8_t *)
	    info.name, strlen(info.name))) != NULL) {
		if ((meta = malloc(strlen(b64) + 16)) != NULL) {
			snprintf(meta, strlen(b64) + 16, "filename %s", b64);
			MHD_add_response_header(r, "Upload-Metadata", meta);
			free(meta);
		}
		free(b64);
	}
	return answer(rq, c, MHD_HTTP_OK, r);
}

/* DELETE: termination; a finished upload's file goes too. */
static enum MHD_Result
terminate(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who)
{
	struct engine_session_info s;
	bool cancelled;
	enum pf_status rc;

	/* The owner, to whom (and admins) the event goes. */
	if (engine_session(h->engine, rq->id, &s) != PF_OK)
		s.user[0] = '\0';
	rc = engine_upload_cancel(h->engine, rq->id, who->admin ? NULL :
	    who->user, &cancelled);
	if (rc != PF_OK)
		return fail_rc(rq, c, rc, pf_status_message(rc));
	/* A cancelled one ends in the monitor's sample, as for DELETE. */
	if (!cancelled)
		events_publish(h, "deleted", s.user, json_pack("{s:s}", "id",
		    rq->id));
	return answer(rq, c, MHD_HTTP_NO_CONTENT, empty());
}

/* Whether upload id, the caller's, is a final upload of concatenation. */
static bool
final_of(struct httpd *h, const char *id, const struct gw_caller *who)
{
	struct engine_upload_info info;
	char *parts;

	if (engine_upload_info(h->engine, id, who->admin ? NULL : who->user,
	    &info) != PF_OK || (parts = engine_upload_final_parts(h->engine,
	    id)) == NULL)
		return false;
	free(parts);
	return true;
}

/* PATCH: bytes at Upload-Offset. */
static enum MHD_Result
patch(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who)
{
	enum MHD_Result ret;
	uint64_t off;

	if (!header_u64(c, "Upload-Offset", &off))
		return fail(rq, c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "PATCH needs Upload-Offset (a number of bytes)");
	/* tus concatenation: a final upload is its parts, never written. */
	if (final_of(h, rq->id, who))
		return fail(rq, c, MHD_HTTP_FORBIDDEN, "final_upload",
		    "a final upload (Upload-Concat: final) takes no PATCH");
	if (!begin_body(rq, h, c, who, off, &ret))
		return ret;
	return MHD_YES;
}

/*
 * The login, as routes.c checks it for HTTP Basic routes; on refusal
 * the answer is made (see answer()) and *ret is the result.
 */
static bool
login(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    struct gw_caller *who, enum MHD_Result *ret)
{
	unsigned wait;
	char secs[16];

	switch (access_check_basic(h, c, who, &wait)) {
	case ACCESS_AUTH_OK:
		return true;
	case ACCESS_AUTH_LIMITED:
		snprintf(secs, sizeof(secs), "%u", wait);
		*ret = fail_with(rq, c, MHD_HTTP_TOO_MANY_REQUESTS,
		    "too_many_requests", "too many failed logins; try again "
		    "later", "Retry-After", secs);
		return false;
	default:
		*ret = fail_with(rq, c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		    "sign in with a ParaFlow user (HTTP Basic)",
		    "WWW-Authenticate",
		    "Basic realm=\"paraflow\", charset=\"UTF-8\"");
		return false;
	}
}

/* The headers of a request: answered (or the answer kept, see answer()),
   or its body awaited. */
static enum MHD_Result
start(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    const char *url, const char *method)
{
	const char *id = url + strlen(TUS_ROOT), *v;
	struct gw_caller who = { .admin = false };
	enum MHD_Result ret;
	uint64_t len;
	bool one;

	/*
	 * tus: what a client that cannot send PATCH or DELETE means, by a
	 * POST; never by a safe method (RFC 9110 9.2.1), which a link or a
	 * prefetch may send.
	 */
	if (strcmp(method, "POST") == 0 &&
	    (v = header(c, "X-HTTP-Method-Override")) != NULL)
		method = v;
	if (conns_over_limit(c))
		return fail_with(rq, c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
		    "too many connections from this address", "Connection",
		    "close");
	/* Only an upload's bytes are a body; elsewhere the gateway's cap. */
	if (strcmp(method, "POST") != 0 && strcmp(method, "PATCH") != 0 &&
	    header_u64(c, "Content-Length", &len) && len > GW_MAX_BODY)
		return fail(rq, c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "request body over 4096 bytes");
	if (strcmp(method, "OPTIONS") == 0)
		return discover(rq, h, c);
	v = header(c, "Tus-Resumable");
	if (v == NULL || strcmp(v, TUS_VERSION) != 0)
		return fail_with(rq, c, MHD_HTTP_PRECONDITION_FAILED,
		    "unsupported_version", "Tus-Resumable must be "
		    TUS_VERSION, "Tus-Version", TUS_VERSION);
	if (!login(rq, h, c, &who, &ret))
		return ret;
	/* The collection, with or without a slash; else one upload. */
	one = *id == '/' && id[1] != '\0';
	if (one) {
		if (strlen(++id) != ENGINE_ID_LEN || !proto_id_valid(id))
			return fail(rq, c, MHD_HTTP_NOT_FOUND, "not_found",
			    "no such upload");
		snprintf(rq->id, sizeof(rq->id), "%s", id);
		proto_id_lower(rq->id);
	}
	if (!one && strcmp(method, "POST") == 0)
		return create(rq, h, c, &who);
	if (one && strcmp(method, "HEAD") == 0)
		return head(rq, h, c, &who);
	if (one && strcmp(method, "PATCH") == 0)
		return patch(rq, h, c, &who);
	if (one && strcmp(method, "DELETE") == 0)
		return terminate(rq, h, c, &who);
	return fail_with(rq, c, MHD_HTTP_METHOD_NOT_ALLOWED,
	    "method_not_allowed", "method not allowed here", "Allow", one ?
	    "HEAD, PATCH, DELETE, OPTIONS" : "POST, OPTIONS");
}

/* A piece of the body: to the engine, and into the checksum. */
static enum MHD_Result
take(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c,
    const char *data, size_t n)
{
	rq->body += n;
	conns_note_body(h, c, n);
	if (rq->sum != NULL && pf_sha256_update(rq->sum, data, n) != PF_OK)
		rq->err = PF_EINTERNAL;
	if (rq->err == PF_OK && (rq->err = engine_upload_write(rq->u, data,
	    n)) != PF_OK)
		snprintf(rq->why, sizeof(rq->why), "%s",
		    engine_upload_why(rq->u));
	/* Refused: read a little on to answer, not a whole file. */
	if (rq->err != PF_OK && rq->err_at == 0)
		rq->err_at = rq->body;
	if (rq->err != PF_OK && rq->body - rq->err_at > GW_DRAIN_MAX)
		return MHD_NO;
	return MHD_YES;
}

/*
 * Whether what rq's body wrote stays: unless it failed, or, cut off by
 * its excess (what came before stays), it had a checksum none can check.
 */
static bool
keeps(const struct tus_req *rq)
{
	return rq->err == PF_OK || (rq->err == PF_ETOOLARGE &&
	    rq->sum == NULL);
}

/* The body is all there: kept or not, and the answer. */
static enum MHD_Result
finish(struct tus_req *rq, struct httpd *h, struct MHD_Connection *c)
{
	uint8_t got[PF_SHA256_LEN];
	bool sum_ok = true;
	enum pf_status rc;
	uint64_t offset;

	if (rq->sum != NULL && rq->err == PF_OK)
		sum_ok = pf_sha256_final(rq->sum, got) == PF_OK &&
		    pf_equal_ct(got, rq->want, sizeof(got));
	rc = engine_upload_end(rq->u, keeps(rq) && sum_ok, &offset);
	rq->u = NULL;
	if (rq->err != PF_OK)
		return fail_rc(rq, c, rq->err,
		    rq->why[0] ? rq->why : pf_status_message(rq->err));
	if (!sum_ok)
		return fail(rq, c, TUS_CHECKSUM_MISMATCH, "checksum_mismatch",
		    "the body does not match Upload-Checksum; nothing of it "
		    "was kept");
	if (rc != PF_OK)
		return fail_rc(rq, c, rc, pf_status_message(rc));
	return answer_offset(rq, h, c, offset);
}

enum MHD_Result
tus_access(struct httpd *h, struct MHD_Connection *c, const char *url,
    const char *method, const char *data, size_t *size, void **ctx)
{
	struct tus_req *rq = *ctx;
	enum MHD_Result ret;
	uint64_t len;

	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*ctx = rq;
		/*
		 * Without a body, answered once the request is all in: an
		 * answer queued before that closes the connection.
		 */
		if (!has_body(c))
			return MHD_YES;
		rq->started = true;
		/* Answers come after a short body, once it is read. */
		rq->hold = header(c, "Transfer-Encoding") == NULL &&
		    header_u64(c, "Content-Length", &len) &&
		    len <= GW_DRAIN_MAX;
		ret = start(rq, h, c, url, method);
		rq->hold = false;
		return ret;
	}
	if (!rq->started) {
		/* A body no header announced: dropped. */
		if (*size != 0) {
			*size = 0;
			return MHD_YES;
		}
		rq->started = true;
		ret = start(rq, h, c, url, method);
		/* An empty PATCH: its end is now. */
		return ret == MHD_YES && rq->u != NULL ? finish(rq, h, c) :
		    ret;
	}
	if (rq->u == NULL) {
		/*
		 * Answered at the start: the body is read and dropped, each
		 * GW_BODY_STEP of it restarting the deadline (a slow client
		 * still gets its answer); no more than GW_DRAIN_MAX.
		 */
		if (*size != 0) {
			rq->body += *size;
			conns_note_body(h, c, *size);
			*size = 0;
			return rq->body <= GW_DRAIN_MAX ? MHD_YES : MHD_NO;
		}
		if (rq->held == NULL)
			return MHD_NO;
		ret = resp_queue(c, rq->held_status, rq->held);
		rq->held = NULL;
		return ret;
	}
	if (*size != 0) {
		ret = take(rq, h, c, data, *size);
		*size = 0;
		return ret;
	}
	return finish(rq, h, c);
}

void
tus_request_free(void *ctx)
{
	struct tus_req *rq = ctx;
	struct engine_session_info s;
	uint64_t offset;

	if (rq == NULL)
		return;
	/*
	 * The client went away mid-body, or was cut off past its excess:
	 * what is durable stays.
	 */
	if (rq->u != NULL)
		engine_upload_end(rq->u, keeps(rq) && rq->sum == NULL,
		    &offset);
	/*
	 * Made by this POST, whose answer never gave its Location (its body
	 * failed or was cut): no client can resume it, and it would count
	 * against its user's sessions until it expired. One that ended
	 * (refused, or stored) keeps its record.
	 */
	if (rq->create && !rq->located && rq->h != NULL &&
	    engine_session(rq->h->engine, rq->id, &s) == PF_OK &&
	    s.state == ENGINE_RECEIVING &&
	    engine_upload_cancel(rq->h->engine, rq->id, NULL, NULL) == PF_OK)
		log_info("tus upload %s: created, but its POST failed: "
		    "cancelled", rq->id);
	if (rq->held != NULL)
		MHD_destroy_response(rq->held);
	pf_sha256_free(rq->sum);
	free(rq);
}
