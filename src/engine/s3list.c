/* SPDX-License-Identifier: MIT */
/* ListObjectsV2: the keys of a bucket under a prefix, page by page. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3_int.h"
#include "s3xml.h"

#define TOKEN_MAX	1024	/* a continuation token kept between pages */

/* One page as the walk sees it; the entry being read, then handed on. */
struct objects_page {
	s3_object_fn	 fn;
	void		*arg;
	char		 key[S3_KEY_MAX + 1];
	char		 etag[S3_ETAG_MAX];
	uint64_t	 size;
	int64_t		 mtime;
	char		 token[TOKEN_MAX];
	bool		 truncated, stopped, bad;
};

static bool
hand_on(struct objects_page *pg, bool is_prefix)
{
	struct s3_object o = { .key = pg->key, .size = pg->size,
	    .etag = is_prefix ? "" : pg->etag, .is_prefix = is_prefix,
	    .mtime = is_prefix ? 0 : pg->mtime };

	if (pg->key[0] != '\0' && !pg->fn(pg->arg, &o)) {
		pg->stopped = true;
		return false;
	}
	pg->key[0] = pg->etag[0] = '\0';
	pg->size = 0;
	pg->mtime = 0;
	return true;
}

static bool
object_field(void *arg, int depth, const char *name, const char *text)
{
	struct objects_page *pg = arg;

	if (depth == 2 && strcmp(name, "IsTruncated") == 0)
		pg->truncated = strcmp(text, "true") == 0;
	else if (depth == 2 && strcmp(name, "NextContinuationToken") == 0) {
		if (strlen(text) >= sizeof(pg->token))
			pg->bad = true;
		snprintf(pg->token, sizeof(pg->token), "%s", text);
	} else if (depth == 3 && (strcmp(name, "Key") == 0 ||
	    strcmp(name, "Prefix") == 0)) {
		if (strlen(text) > S3_KEY_MAX)
			pg->bad = true;
		snprintf(pg->key, sizeof(pg->key), "%s", text);
	} else if (depth == 3 && strcmp(name, "Size") == 0)
		pg->size = strtoull(text, NULL, 10);
	else if (depth == 3 && strcmp(name, "ETag") == 0)
		snprintf(pg->etag, sizeof(pg->etag), "%s", text);
	else if (depth == 3 && strcmp(name, "LastModified") == 0)
		pg->mtime = s3_parse_time(text);
	else if (depth == 2 && strcmp(name, "Contents") == 0)
		return hand_on(pg, false);
	else if (depth == 2 && strcmp(name, "CommonPrefixes") == 0)
		return hand_on(pg, true);
	return true;
}

/* The query of one page, its names in SigV4's order. */
static bool
objects_query(struct pf_buf *q, const char *prefix, const char *delim,
    const char *token, unsigned page)
{
	pf_buf_free(q);
	if (*token != '\0') {
		pf_buf_printf(q, "continuation-token=");
		s3_encode(q, token, false);
		pf_buf_printf(q, "&");
	}
	if (delim != NULL && *delim != '\0') {
		pf_buf_printf(q, "delimiter=");
		s3_encode(q, delim, false);
		pf_buf_printf(q, "&");
	}
	pf_buf_printf(q, "list-type=2&max-keys=%u&prefix=", page);
	return s3_encode(q, prefix, false);
}

/* Walks one answer; an <Error> in it is the store's error. */
static enum pf_status
objects_answer(struct s3 *s, struct s3_req *r, struct objects_page *pg)
{
	enum pf_status rc;
	char root[48];

	rc = s3xml_walk(r->answer.p, r->answer.len, object_field, pg, root,
	    sizeof(root));
	if (pg->stopped)
		return PF_ECANCELLED;
	if (rc == PF_OK && strcmp(root, "Error") == 0)
		return s3_answer_error(s, r);
	if (rc == PF_OK && pg->bad) {
		log_warn("S3 listing: a key or token over its limit");
		return PF_EIO;
	}
	return rc;
}

enum pf_status
s3_list(struct s3 *s, const char *prefix, const char *delim,
    s3_object_fn fn, void *arg)
{
	struct objects_page *pg;
	struct s3_req r = { .method = "GET" };
	struct pf_buf q;
	enum pf_status rc = PF_ENOMEM;
	char last[TOKEN_MAX];

	if (prefix == NULL || strlen(prefix) > S3_KEY_MAX)
		return PF_EUSAGE;
	pf_buf_init(&q, 3 * (S3_KEY_MAX + TOKEN_MAX) + 256);
	if ((pg = calloc(1, sizeof(*pg))) == NULL)
		return PF_ENOMEM;
	pg->fn = fn;
	pg->arg = arg;
	do {
		snprintf(last, sizeof(last), "%s", pg->token);
		rc = PF_ENOMEM;
		if (!objects_query(&q, prefix, delim, pg->token, s3_page(s)))
			goto out;
		r.query = q.p;
		pg->truncated = false;
		rc = s3_request(s, &r);
		if (rc == PF_OK)
			rc = objects_answer(s, &r, pg);
		pf_buf_free(&r.answer);
		/* A page that does not move on would loop for ever. */
		if (rc == PF_OK && pg->truncated &&
		    (pg->token[0] == '\0' || strcmp(last, pg->token) == 0))
			rc = PF_EIO;
	} while (rc == PF_OK && pg->truncated);
out:
	pf_buf_free(&q);
	free(pg);
	return rc;
}
