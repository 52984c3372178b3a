/* SPDX-License-Identifier: MIT */
/* The S3 operations: objects, and the steps of a multipart upload. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "log.h"
#include "s3_int.h"
#include "s3xml.h"

#define S3_QUERY_MAX	(S3_KEY_MAX * 3 + S3_ID_MAX * 3 + 256)

/* A key S3 would refuse, refused here with a clear word. */
static bool
key_ok(const char *key)
{
	size_t n = key != NULL ? strlen(key) : 0;

	if (n == 0 || n > S3_KEY_MAX) {
		log_warn("S3 key of %zu bytes (1..%d)", n, S3_KEY_MAX);
		return false;
	}
	return true;
}

/* Runs r and frees its answer: for the operations that need none. */
static enum pf_status
simple(struct s3 *s, struct s3_req *r)
{
	enum pf_status rc = s3_request(s, r);

	pf_buf_free(&r->answer);
	return rc;
}

enum pf_status
s3_put(struct s3 *s, const char *key, const void *p, size_t n,
    bool if_absent, char *etag)
{
	struct s3_req r = { .method = "PUT", .key = key, .body = p, .len = n };
	enum pf_status rc;

	if (!key_ok(key))
		return PF_EUSAGE;
	if (if_absent) {
		r.header = "If-None-Match: *";
		r.once = true;
	}
	if ((rc = simple(s, &r)) == PF_OK && etag != NULL)
		memcpy(etag, r.etag, S3_ETAG_MAX);
	return rc;
}

enum pf_status
s3_put_if_match(struct s3 *s, const char *key, const void *p, size_t n,
    const char *match, char *etag)
{
	struct s3_req r = { .method = "PUT", .key = key, .body = p, .len = n,
	    .once = true };
	char hdr[S3_ETAG_MAX + 16];
	size_t len;
	enum pf_status rc;

	if (!key_ok(key) || match == NULL)
		return PF_EUSAGE;
	/* RGW 16 compares the bare ETag: a quoted one never matches. */
	if (*match == '"')
		match++;
	len = strlen(match);
	if (len > 0 && match[len - 1] == '"')
		len--;
	if (len == 0 || len >= S3_ETAG_MAX)
		return PF_EUSAGE;
	snprintf(hdr, sizeof(hdr), "If-Match: %.*s", (int)len, match);
	r.header = hdr;
	if ((rc = simple(s, &r)) == PF_OK && etag != NULL)
		memcpy(etag, r.etag, S3_ETAG_MAX);
	return rc;
}

enum pf_status
s3_get(struct s3 *s, const char *key, uint64_t off, uint64_t len,
    s3_sink_fn sink, void *arg)
{
	struct s3_req r = { .method = "GET", .key = key, .sink = sink,
	    .arg = arg };
	char range[80];

	if (!key_ok(key))
		return PF_EUSAGE;
	if (len > 0 && off + len < off)
		return PF_EUSAGE;
	if (len > 0)
		snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%"
		    PRIu64, off, off + len - 1);
	else
		snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-",
		    off);
	if (off > 0 || len > 0) {
		r.header = range;
		r.ranged = true;
	}
	return simple(s, &r);
}

enum pf_status
s3_head(struct s3 *s, const char *key, uint64_t *size, char *etag)
{
	struct s3_req r = { .method = "HEAD", .key = key };
	enum pf_status rc;

	if (!key_ok(key))
		return PF_EUSAGE;
	if ((rc = simple(s, &r)) != PF_OK)
		return rc;
	if (size != NULL)
		*size = r.length;
	if (etag != NULL)
		memcpy(etag, r.etag, S3_ETAG_MAX);
	return PF_OK;
}

enum pf_status
s3_delete(struct s3 *s, const char *key)
{
	struct s3_req r = { .method = "DELETE", .key = key };

	if (!key_ok(key))
		return PF_EUSAGE;
	return simple(s, &r);
}

/* The query naming one upload: "uploadId=ID", encoded. */
static bool
upload_query(struct pf_buf *q, const char *prefix, const char *id)
{
	if (id == NULL || *id == '\0' || strlen(id) >= S3_ID_MAX)
		return false;
	pf_buf_printf(q, "%suploadId=", prefix);
	return s3_encode(q, id, false);
}

static bool
created_id(void *arg, int depth, const char *name, const char *text)
{
	if (depth == 2 && strcmp(name, "UploadId") == 0)
		snprintf(arg, S3_ID_MAX, "%s", text);
	return true;
}

enum pf_status
s3_mpu_create(struct s3 *s, const char *key, char *id)
{
	/* libcurl 7.88 signs the query as written: "uploads" needs its
	   "=", or the store computes another signature. */
	struct s3_req r = { .method = "POST", .key = key,
	    .query = "uploads=", .once = true };
	enum pf_status rc;
	char root[48];

	if (!key_ok(key))
		return PF_EUSAGE;
	id[0] = '\0';
	if ((rc = s3_request(s, &r)) != PF_OK)
		goto out;
	rc = s3xml_walk(r.answer.p, r.answer.len, created_id, id, root,
	    sizeof(root));
	if (rc == PF_OK && strcmp(root, "Error") == 0)
		rc = s3_answer_error(s, &r);
	else if (rc == PF_OK && id[0] == '\0')
		rc = PF_EIO;
	if (rc != PF_OK)
		log_warn("S3 create upload %s: unexpected answer", key);
out:
	pf_buf_free(&r.answer);
	return rc;
}

enum pf_status
s3_mpu_put_part(struct s3 *s, const char *key, const char *id,
    unsigned part, const void *p, size_t n, const uint8_t *sha256,
    char *etag)
{
	struct s3_req r = { .method = "PUT", .key = key, .body = p, .len = n,
	    .sha256 = sha256 };
	struct pf_buf q;
	enum pf_status rc = PF_EUSAGE;

	pf_buf_init(&q, S3_QUERY_MAX);
	if (!key_ok(key) || part < 1 || part > S3_PART_MAX)
		goto out;
	/* Sorted by name, as SigV4 signs it. */
	pf_buf_printf(&q, "partNumber=%u", part);
	if (!upload_query(&q, "&", id))
		goto out;
	r.query = q.p;
	if ((rc = simple(s, &r)) == PF_OK) {
		if (r.etag[0] == '\0')
			rc = PF_EIO;
		else
			memcpy(etag, r.etag, S3_ETAG_MAX);
	}
out:
	pf_buf_free(&q);
	return rc;
}

/* One page of ListParts, as the walk sees it. */
struct parts_page {
	s3_part_fn	 fn;
	void		*arg;
	struct s3_part	 cur;
	bool		 truncated, stopped;
	unsigned	 next;
};

static bool
part_field(void *arg, int depth, const char *name, const char *text)
{
	struct parts_page *pg = arg;

	if (depth == 2 && strcmp(name, "IsTruncated") == 0)
		pg->truncated = strcmp(text, "true") == 0;
	else if (depth == 2 && strcmp(name, "NextPartNumberMarker") == 0)
		pg->next = (unsigned)strtoul(text, NULL, 10);
	else if (depth == 3 && strcmp(name, "PartNumber") == 0)
		pg->cur.number = (unsigned)strtoul(text, NULL, 10);
	else if (depth == 3 && strcmp(name, "Size") == 0)
		pg->cur.size = strtoull(text, NULL, 10);
	else if (depth == 3 && strcmp(name, "ETag") == 0)
		snprintf(pg->cur.etag, sizeof(pg->cur.etag), "%s", text);
	else if (depth == 2 && strcmp(name, "Part") == 0) {
		if (!pg->fn(pg->arg, &pg->cur)) {
			pg->stopped = true;
			return false;
		}
		memset(&pg->cur, 0, sizeof(pg->cur));
	}
	return true;
}

/* Walks one answer of a list; an <Error> in it, or a page that does not
   move on, is an error. */
static enum pf_status
list_answer(struct s3 *s, struct s3_req *r, s3xml_fn fn, void *pg,
    const bool *stopped)
{
	enum pf_status rc;
	char root[48];

	rc = s3xml_walk(r->answer.p, r->answer.len, fn, pg, root,
	    sizeof(root));
	if (*stopped)
		return PF_ECANCELLED;
	if (rc == PF_OK && strcmp(root, "Error") == 0)
		return s3_answer_error(s, r);
	return rc;
}

enum pf_status
s3_mpu_list_parts(struct s3 *s, const char *key, const char *id,
    s3_part_fn fn, void *arg)
{
	struct parts_page pg = { .fn = fn, .arg = arg };
	struct s3_req r = { .method = "GET", .key = key };
	struct pf_buf q;
	enum pf_status rc = PF_EUSAGE;
	unsigned marker = 0;

	pf_buf_init(&q, S3_QUERY_MAX);
	if (!key_ok(key))
		goto out;
	do {
		pf_buf_free(&q);
		pf_buf_printf(&q, "max-parts=%u&part-number-marker=%u",
		    s3_page(s), marker);
		rc = PF_EUSAGE;
		if (!upload_query(&q, "&", id))
			goto out;
		r.query = q.p;
		pg.truncated = false;
		pg.next = 0;
		rc = s3_request(s, &r);
		if (rc == PF_OK)
			rc = list_answer(s, &r, part_field, &pg, &pg.stopped);
		pf_buf_free(&r.answer);
		if (rc == PF_OK && pg.truncated && pg.next <= marker)
			rc = PF_EIO;
		marker = pg.next;
	} while (rc == PF_OK && pg.truncated);
out:
	pf_buf_free(&q);
	return rc;
}

/* Text made safe inside an XML element. */
static void
xml_text(struct pf_buf *b, const char *t)
{
	for (; *t != '\0'; t++) {
		if (*t == '&')
			pf_buf_printf(b, "&amp;");
		else if (*t == '<')
			pf_buf_printf(b, "&lt;");
		else if (*t == '>')
			pf_buf_printf(b, "&gt;");
		else
			pf_buf_add(b, t, 1);
	}
}

enum pf_status
s3_mpu_complete(struct s3 *s, const char *key, const char *id,
    const struct s3_part *parts, size_t n)
{
	struct s3_req r = { .method = "POST", .key = key, .once = true };
	struct pf_buf q, body;
	enum pf_status rc = PF_EUSAGE;
	size_t i;

	pf_buf_init(&q, S3_QUERY_MAX);
	pf_buf_init(&body, (size_t)S3_PART_MAX * (S3_ETAG_MAX + 64) + 128);
	if (!key_ok(key) || n == 0 || n > S3_PART_MAX ||
	    !upload_query(&q, "", id))
		goto out;
	pf_buf_printf(&body, "<CompleteMultipartUpload>");
	for (i = 0; i < n; i++) {
		pf_buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>",
		    parts[i].number);
		xml_text(&body, parts[i].etag);
		pf_buf_printf(&body, "</ETag></Part>");
	}
	rc = PF_ENOMEM;
	if (!pf_buf_printf(&body, "</CompleteMultipartUpload>"))
		goto out;
	r.query = q.p;
	r.body = body.p;
	r.len = body.len;
	/* S3 answers 200 at once and may report a failed assembly in the
	   body: an <Error> root is that. */
	if ((rc = s3_request(s, &r)) == PF_OK && r.answer.len > 0 &&
	    strstr(r.answer.p, "<Error>") != NULL)
		rc = s3_answer_error(s, &r);
	pf_buf_free(&r.answer);
out:
	pf_buf_free(&q);
	pf_buf_free(&body);
	return rc;
}

/* The failures a quiet DeleteObjects answer lists. */
struct deleted {
	char		 first[64];	/* the first failure's code */
	char		 code[64];
	size_t		 failed;
};

static bool
delete_field(void *arg, int depth, const char *name, const char *text)
{
	struct deleted *d = arg;

	if (depth == 3 && strcmp(name, "Code") == 0)
		snprintf(d->code, sizeof(d->code), "%s", text);
	else if (depth == 2 && strcmp(name, "Error") == 0) {
		/* Gone already is what the caller wanted: a try whose
		   answer was lost, or another node's cleanup. */
		if (strcmp(d->code, "NoSuchKey") != 0 && d->failed++ == 0)
			snprintf(d->first, sizeof(d->first), "%s", d->code);
		d->code[0] = '\0';
	}
	return true;
}

/* The body of one DeleteObjects request; false for a key XML cannot
   carry (a control character: XML 1.0 has no way to write most). */
static bool
delete_body(struct pf_buf *b, const char *const *keys, size_t n)
{
	const char *c;
	size_t i;

	pf_buf_printf(b, "<Delete><Quiet>true</Quiet>");
	for (i = 0; i < n; i++) {
		if (!key_ok(keys[i]))
			return false;
		for (c = keys[i]; *c != '\0'; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f) {
				log_warn("S3 delete: a key with a control "
				    "character");
				return false;
			}
		pf_buf_printf(b, "<Object><Key>");
		xml_text(b, keys[i]);
		pf_buf_printf(b, "</Key></Object>");
	}
	pf_buf_printf(b, "</Delete>");
	return true;
}

/* One DeleteObjects request of n <= S3_DELETE_MAX keys. */
static enum pf_status
delete_batch(struct s3 *s, const char *const *keys, size_t n)
{
	struct s3_req r = { .method = "POST", .query = "delete=",
	    .md5 = true };
	struct deleted d = { .failed = 0 };
	char msg[64];
	struct pf_buf body;
	enum pf_status rc = PF_EUSAGE;
	char root[48];

	/* A key escaped: at most 5 bytes ("&amp;") for each of its bytes. */
	pf_buf_init(&body, n * (S3_KEY_MAX * 5 + 32) + 64);
	if (!delete_body(&body, keys, n))
		goto out;
	rc = PF_ENOMEM;
	if (body.failed)
		goto out;
	r.body = body.p;
	r.len = body.len;
	if ((rc = s3_request(s, &r)) != PF_OK)
		goto out;
	rc = s3xml_walk(r.answer.p, r.answer.len, delete_field, &d, root,
	    sizeof(root));
	if (rc == PF_OK && strcmp(root, "Error") == 0)
		rc = s3_answer_error(s, &r);
	else if (rc == PF_OK && d.failed > 0) {
		snprintf(msg, sizeof(msg), "%zu of %zu keys not deleted",
		    d.failed, n);
		s3_set_error(s, d.first, msg);
		rc = PF_EIO;
	}
out:
	pf_buf_free(&r.answer);
	pf_buf_free(&body);
	return rc;
}

enum pf_status
s3_delete_keys(struct s3 *s, const char *const *keys, size_t n)
{
	enum pf_status rc = PF_OK;
	size_t i, k;

	for (i = 0; i < n && rc == PF_OK; i += k) {
		k = n - i < S3_DELETE_MAX ? n - i : S3_DELETE_MAX;
		rc = delete_batch(s, keys + i, k);
	}
	return rc;
}

enum pf_status
s3_mpu_abort(struct s3 *s, const char *key, const char *id)
{
	struct s3_req r = { .method = "DELETE", .key = key };
	struct pf_buf q;
	enum pf_status rc = PF_EUSAGE;

	pf_buf_init(&q, S3_QUERY_MAX);
	if (key_ok(key) && upload_query(&q, "", id)) {
		r.query = q.p;
		rc = simple(s, &r);
		/* A 404 after a try whose answer was lost is that try's
		   work: a first try that found nothing would have got the
		   404 itself, and 404 is not tried again. */
		if (rc == PF_ENOSESSION && s3_last_error(s)->tries > 1)
			rc = PF_OK;
	}
	pf_buf_free(&q);
	return rc;
}

/* One page of ListMultipartUploads. */
struct uploads_page {
	s3_upload_fn	 fn;
	void		*arg;
	char		 key[S3_KEY_MAX + 1];
	char		 id[S3_ID_MAX];
	char		 next_key[S3_KEY_MAX + 1];
	char		 next_id[S3_ID_MAX];
	int64_t		 initiated;
	bool		 truncated, stopped;
};

static bool
upload_field(void *arg, int depth, const char *name, const char *text)
{
	struct uploads_page *pg = arg;

	if (depth == 2 && strcmp(name, "IsTruncated") == 0)
		pg->truncated = strcmp(text, "true") == 0;
	else if (depth == 2 && strcmp(name, "NextKeyMarker") == 0)
		snprintf(pg->next_key, sizeof(pg->next_key), "%s", text);
	else if (depth == 2 && strcmp(name, "NextUploadIdMarker") == 0)
		snprintf(pg->next_id, sizeof(pg->next_id), "%s", text);
	else if (depth == 3 && strcmp(name, "Key") == 0)
		snprintf(pg->key, sizeof(pg->key), "%s", text);
	else if (depth == 3 && strcmp(name, "UploadId") == 0)
		snprintf(pg->id, sizeof(pg->id), "%s", text);
	else if (depth == 3 && strcmp(name, "Initiated") == 0)
		pg->initiated = s3_parse_time(text);
	else if (depth == 2 && strcmp(name, "Upload") == 0) {
		if (!pg->fn(pg->arg, pg->key, pg->id, pg->initiated)) {
			pg->stopped = true;
			return false;
		}
		pg->key[0] = pg->id[0] = '\0';
		pg->initiated = 0;
	}
	return true;
}

/* The query of one page, its names in SigV4's order; markers are left
   out until the store gave some. */
static bool
uploads_query(struct pf_buf *q, const char *prefix,
    const struct uploads_page *pg, unsigned page)
{
	pf_buf_free(q);
	if (pg->next_key[0] != '\0') {
		pf_buf_printf(q, "key-marker=");
		s3_encode(q, pg->next_key, false);
		pf_buf_printf(q, "&");
	}
	pf_buf_printf(q, "max-uploads=%u", page);
	if (*prefix != '\0') {
		pf_buf_printf(q, "&prefix=");
		s3_encode(q, prefix, false);
	}
	if (pg->next_id[0] != '\0') {
		pf_buf_printf(q, "&upload-id-marker=");
		s3_encode(q, pg->next_id, false);
	}
	return pf_buf_printf(q, "&uploads=");
}

enum pf_status
s3_mpu_list(struct s3 *s, const char *prefix, s3_upload_fn fn, void *arg)
{
	struct uploads_page *pg;
	struct s3_req r = { .method = "GET" };
	struct pf_buf q;
	enum pf_status rc = PF_ENOMEM;
	char last[S3_KEY_MAX + S3_ID_MAX + 2], now[sizeof(last)];

	pf_buf_init(&q, S3_QUERY_MAX);
	if ((pg = calloc(1, sizeof(*pg))) == NULL)
		return PF_ENOMEM;
	pg->fn = fn;
	pg->arg = arg;
	do {
		snprintf(last, sizeof(last), "%s/%s", pg->next_key,
		    pg->next_id);
		if (!uploads_query(&q, prefix, pg,
		    s3_page(s)))
			goto out;
		r.query = q.p;
		pg->truncated = false;
		rc = s3_request(s, &r);
		if (rc == PF_OK)
			rc = list_answer(s, &r, upload_field, pg,
			    &pg->stopped);
		pf_buf_free(&r.answer);
		snprintf(now, sizeof(now), "%s/%s", pg->next_key,
		    pg->next_id);
		if (rc == PF_OK && pg->truncated && strcmp(last, now) == 0)
			rc = PF_EIO;
	} while (rc == PF_OK && pg->truncated);
out:
	pf_buf_free(&q);
	free(pg);
	return rc;
}

enum pf_status
s3_probe(struct s3 *s)
{
	const char *prefix = s3_cfg(s)->prefix;
	uint8_t rnd[8];
	char hex[2 * sizeof(rnd) + 1], key[S3_KEY_MAX + 1];
	enum pf_status rc;

	if ((rc = pf_random(rnd, sizeof(rnd))) != PF_OK)
		return rc;
	pf_hex_encode(rnd, sizeof(rnd), hex);
	if ((size_t)snprintf(key, sizeof(key), "%s.pf/probe-%s",
	    prefix != NULL ? prefix : "", hex) >= sizeof(key))
		return PF_EUSAGE;
	if ((rc = s3_put(s, key, "probe\n", 6, true, NULL)) != PF_OK)
		return rc;
	return s3_delete(s, key);
}
