/* SPDX-License-Identifier: MIT */
/* GET /api/v1/sessions/{id}/file: a finished upload, with ranges. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "api_files_int.h"
#include "handlers.h"
#include "response.h"

/* A download from the store: bytes held per GET, and per MHD call. */
#define STORE_WINDOW	(1u << 20)
#define STORE_BLOCK	(32u * 1024)

/*
 * Digits to a number; one past UINT64_MAX stays UINT64_MAX (a position
 * no file reaches: RFC 9110 sets no limit on the digits).
 */
static bool
parse_u64(const char **p, uint64_t *out)
{
	uint64_t v = 0;

	if (**p < '0' || **p > '9')
		return false;
	while (**p >= '0' && **p <= '9') {
		unsigned d = (unsigned)(**p - '0');

		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
		(*p)++;
	}
	*out = v;
	return true;
}

/*
 * One "bytes=" range (RFC 9110 14.1.2). Syntax we do not serve (several
 * ranges, other units, garbage) is ignored, as the RFC allows: the whole
 * file goes out.
 */
void
api_files_parse_range(const char *hdr, uint64_t size, struct range *r)
{
	uint64_t a, b;
	const char *p = hdr;

	r->first = 0;
	r->len = size;
	r->partial = r->unsatisfiable = false;
	/* The unit, as any token, in any case (RFC 9110 14.1). */
	if (hdr == NULL || strncasecmp(p, "bytes=", 6) != 0)
		return;
	p += 6;
	if (*p == '-') {
		p++;
		if (!parse_u64(&p, &b) || *p != '\0')
			return;
		if (b == 0) {
			r->unsatisfiable = true;
			return;
		}
		/* Satisfiable, but no byte to send: the whole, empty file. */
		if (size == 0)
			return;
		r->first = b >= size ? 0 : size - b;
	} else {
		if (!parse_u64(&p, &a) || *p++ != '-')
			return;
		b = UINT64_MAX;
		if (*p != '\0' && !parse_u64(&p, &b))
			return;
		if (*p != '\0' || b < a)
			return;
		if (a >= size) {
			r->unsatisfiable = true;
			return;
		}
		r->first = a;
		if (b < size - 1)
			size = b + 1;
	}
	r->len = size - r->first;
	r->partial = true;
}

/* Content-Disposition with an ASCII fallback and the UTF-8 name (RFC 6266). */
static void
disposition(const char *name, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	char ascii[ENGINE_MAX_NAME + 1], enc[3 * ENGINE_MAX_NAME + 1];
	size_t i, k = 0;

	for (i = 0; name[i] != '\0' && i < ENGINE_MAX_NAME; i++) {
		unsigned char ch = (unsigned char)name[i];

		ascii[i] = ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' ?
		    '_' : (char)ch;
		/* attr-char of RFC 8187; everything else percent-encoded. */
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("!#$&+-.^_`|~", ch))
			enc[k++] = (char)ch;
		else {
			enc[k++] = '%';
			enc[k++] = hex[ch >> 4];
			enc[k++] = hex[ch & 15];
		}
	}
	ascii[i] = '\0';
	enc[k] = '\0';
	snprintf(out, cap, "attachment; filename=\"%s\"; filename*=UTF-8''%s",
	    ascii, enc);
}

static void
http_date(int64_t t, char buf[64])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, 64, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		buf[0] = '\0';
}

/* The bytes of one download from the store: one window in memory. */
struct store_body {
	struct engine_store_file *f;
	uint64_t		 first, len;	/* the range sent */
	uint8_t			*win;		/* STORE_WINDOW bytes */
	uint64_t		 win_off;	/* file offset of win[0] */
	size_t			 win_len;
};

/*
 * MHD asks for the bytes at pos of the range: served from the window,
 * which a ranged GET fills first if they are not in it. A store that
 * fails ends the connection short of Content-Length, so the client
 * sees a broken download, never a complete-looking short one.
 */
static ssize_t
store_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct store_body *sb = cls;
	uint64_t at = sb->first + pos, left = sb->len - pos;
	size_t n;

	if (pos >= sb->len)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (at < sb->win_off || at >= sb->win_off + sb->win_len) {
		sb->win_len = 0;
		if (sb->win == NULL && (sb->win = malloc(STORE_WINDOW)) == NULL)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		n = left < STORE_WINDOW ? (size_t)left : STORE_WINDOW;
		if (engine_store_read(sb->f, at, sb->win, n) != PF_OK)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		sb->win_off = at;
		sb->win_len = n;
	}
	n = (size_t)(sb->win_off + sb->win_len - at);
	if (n > max)
		n = max;
	memcpy(buf, sb->win + (at - sb->win_off), n);
	return (ssize_t)n;
}

static void
store_free(void *cls)
{
	struct store_body *sb = cls;

	engine_store_close(sb->f);
	free(sb->win);
	free(sb);
}

/*
 * A response of len bytes of the file at first: from fd (sendfile(2))
 * or from f (ranged GETs). It owns fd or f once made; NULL (the caller
 * still owns them) if it could not be.
 */
static struct MHD_Response *
body(int fd, struct engine_store_file *f, uint64_t first, uint64_t len)
{
	struct store_body *sb;
	struct MHD_Response *r;

	if (f == NULL)
		return MHD_create_response_from_fd_at_offset64(len, fd, first);
	if ((sb = calloc(1, sizeof(*sb))) == NULL)
		return NULL;
	sb->first = first;
	sb->len = len;
	if ((r = MHD_create_response_from_callback(len, STORE_BLOCK,
	    store_read, sb, store_free)) == NULL) {
		free(sb);
		return NULL;
	}
	sb->f = f;
	return r;
}

/* Lets go of a file no response took. */
static void
release(int fd, struct engine_store_file *f)
{
	if (fd >= 0)
		close(fd);
	engine_store_close(f);
}

/*
 * HTTP-date v (RFC 9110 5.6.7: IMF-fixdate, or the obsolete RFC 850 and
 * asctime forms) into *t; false if it is none of them.
 */
static bool
http_date_parse(const char *v, int64_t *t)
{
	static const char *const forms[] = { "%a, %d %b %Y %H:%M:%S GMT",
	    "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y" };

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		struct tm tm = { 0 };
		const char *end = strptime(v, forms[i], &tm);

		if (end != NULL && *end == '\0') {
			*t = (int64_t)timegm(&tm);
			return true;
		}
	}
	return false;
}

/*
 * The preconditions of RFC 9110 13.1.1 and 13.1.4, evaluated first: true
 * if If-Match names another tag, or, without If-Match, the file changed
 * after If-Unmodified-Since.
 */
static bool
precondition_failed(struct MHD_Connection *c, const char *etag,
    int64_t modified)
{
	const char *im = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "If-Match");
	const char *ius = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "If-Unmodified-Since");
	int64_t since;

	/* If-Match compares strongly; an invalid date is ignored. */
	if (im != NULL)
		return !resp_etag_matches(im, etag, false);
	return ius != NULL && http_date_parse(ius, &since) && modified > since;
}

/* The file of s, from fd or (fd -1) from the store's f; takes both. */
static enum MHD_Result
send_file(struct MHD_Connection *c, int fd, struct engine_store_file *f,
    const struct engine_session_info *s)
{
	const char *range_hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "Range");
	const char *if_range = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "If-Range");
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "If-None-Match");
	char etag[ENGINE_DIGEST_HEX + 2], cd[1200], date[64], cr[96];
	struct MHD_Response *r;
	struct range rg;
	unsigned status = MHD_HTTP_OK;
	int64_t since;

	snprintf(etag, sizeof(etag), "\"%s\"", s->digest);
	if (precondition_failed(c, etag, s->finished)) {
		release(fd, f);
		return resp_error(c, MHD_HTTP_PRECONDITION_FAILED,
		    "precondition_failed", "the file is not the one the "
		    "request's If-Match or If-Unmodified-Since names");
	}
	if (inm != NULL && resp_etag_matches(inm, etag, true)) {
		/*
		 * The file itself, of which MHD sends no byte with a 304: a
		 * 304 may state only the length the 200 would have.
		 */
		r = s->size ? body(fd, f, 0, s->size) :
		    MHD_create_response_from_buffer(0, NULL,
		    MHD_RESPMEM_PERSISTENT);
		if (r == NULL || s->size == 0)
			release(fd, f);
		status = MHD_HTTP_NOT_MODIFIED;
		goto queue;
	}
	/* An entity tag, or the date of Last-Modified exactly. */
	if (if_range != NULL && (if_range[0] == '"' ? strcmp(if_range,
	    etag) != 0 : !http_date_parse(if_range, &since) ||
	    since != s->finished))
		range_hdr = NULL;
	api_files_parse_range(range_hdr, s->size, &rg);
	if (rg.unsatisfiable) {
		release(fd, f);
		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, s->size);
		return resp_error_with(c, MHD_HTTP_RANGE_NOT_SATISFIABLE,
		    "range_not_satisfiable", "the range is outside the file",
		    "Content-Range", cr);
	}
	if (rg.len == 0) {
		release(fd, f);
		r = MHD_create_response_from_buffer(0, NULL,
		    MHD_RESPMEM_PERSISTENT);
	} else	/* sendfile(2) or ranged GETs; the response owns fd or f. */
		r = body(fd, f, rg.first, rg.len);
	if (r == NULL) {
		if (rg.len != 0)
			release(fd, f);
		return MHD_NO;
	}
	if (rg.partial) {
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%"
		    PRIu64, rg.first, rg.first + rg.len - 1, s->size);
		MHD_add_response_header(r, "Content-Range", cr);
		status = MHD_HTTP_PARTIAL_CONTENT;
	}
	disposition(s->name, cd, sizeof(cd));
	MHD_add_response_header(r, "Content-Type",
	    "application/octet-stream");
	MHD_add_response_header(r, "Content-Disposition", cd);
	MHD_add_response_header(r, "Accept-Ranges", "bytes");
queue:
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "ETag", etag);
	http_date(s->finished, date);
	if (date[0] != '\0')
		MHD_add_response_header(r, "Last-Modified", date);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "private, no-cache");
	return resp_queue(c, status, r);
}

/*
 * ?path=P of a transfer: file P as a stored one (the transfer's details
 * in s, checked for the caller already), with its own receipt as ETag.
 */
static enum MHD_Result
transfer_file(const struct gw_call *call, const char *path,
    struct engine_session_info *s)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	struct stat sb;
	int fd;

	if (engine_open_transfer_file(call->h->engine, call->id, path, &fd,
	    s->digest) != PF_OK)
		return resp_error(call->c, MHD_HTTP_NOT_FOUND, "not_found",
		    "transfer %s stores no file of that path", call->id);
	if (fstat(fd, &sb) == -1) {
		close(fd);
		return resp_error(call->c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "cannot read that file");
	}
	s->size = (uint64_t)sb.st_size;
	snprintf(s->name, sizeof(s->name), "%s", base);
	/* Last-Modified: the file's own time, never in the future (RFC
	   9110 8.8.2.1), as curl -R and wget -N would keep it. */
	s->finished = sb.st_mtime < time(NULL) ? (int64_t)sb.st_mtime :
	    (int64_t)time(NULL);
	return send_file(call->c, fd, NULL, s);
}

/*
 * A finished upload in the store (S3 storage), whichever node took it:
 * streamed by ranged GETs of STORE_WINDOW bytes, with the headers of a
 * local file (its receipt as ETag). A store has no transfers yet.
 */
static enum MHD_Result
store_file(const struct gw_call *call, const char *path)
{
	struct MHD_Connection *c = call->c;
	struct engine_store_file *f;
	struct engine_session_info s;
	enum pf_status rc;

	rc = engine_store_open(call->h->engine, call->id, call->who.admin ||
	    call->who.link ? NULL : call->who.user, &f, &s);
	if (rc == PF_OK && path != NULL) {
		engine_store_close(f);
		return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "session %s is one file: no path", call->id);
	}
	if (rc == PF_ENOSESSION)
		return resp_error(c, MHD_HTTP_NOT_FOUND, "not_found",
		    "no session %s", call->id);
	if (rc == PF_EBUSY)
		return resp_error(c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is not complete", call->id);
	if (rc != PF_OK)
		return resp_error(c, MHD_HTTP_BAD_GATEWAY, "store_failed",
		    "the store cannot give the file of session %s: %s",
		    call->id, pf_status_message(rc));
	return send_file(c, -1, f, &s);
}

enum MHD_Result
api_files_download(const struct gw_call *call)
{
	struct MHD_Connection *c = call->c;
	const char *id = call->id;
	const char *path = NULL;
	size_t path_len = 0;
	struct engine_session_info s;
	enum pf_status rc;
	int fd;

	MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, "path",
	    sizeof("path") - 1, &path, &path_len);
	/* "a%00b" would be matched as "a": a path has no NUL byte. */
	if (path != NULL && strlen(path) != path_len)
		return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "a path holds no NUL byte");
	if (engine_store_shared(call->h->engine))
		return store_file(call, path);
	/* A link (routes.c checked it) opens the file for anyone. */
	rc = engine_open_file(call->h->engine, id, call->who.admin ||
	    call->who.link ? NULL : call->who.user, &fd, &s);
	if (rc == PF_EPROTO && path != NULL)
		return transfer_file(call, path, &s);
	if (rc == PF_EPROTO)
		return resp_error(c, MHD_HTTP_CONFLICT, "is_transfer",
		    "session %s holds many files: GET its /files, /tar, "
		    "or /file?path=PATH", id);
	if (rc == PF_OK && path != NULL) {
		close(fd);
		return resp_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "session %s is one file: no path", id);
	}
	if (rc == PF_ENOSESSION)
		return resp_error(c, MHD_HTTP_NOT_FOUND, "not_found",
		    "no session %s", id);
	if (rc == PF_EBUSY)
		return resp_error(c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is not complete", id);
	if (rc != PF_OK)
		return resp_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "cannot open the file of session %s", id);
	return send_file(c, fd, NULL, &s);
}
