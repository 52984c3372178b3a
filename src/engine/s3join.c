/* SPDX-License-Identifier: MIT */
/*
 * What a node needs to serve a session it did not open: the login's
 * session key, which checks a JOIN, and the receipt of a finished
 * session, which answers a resume; and what every node must share: the
 * server key (docs/scale-out.md, "Several nodes").
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "s3store_int.h"

#define COMMIT_MAX	1024	/* bytes of a commit object read */

enum pf_status
s3store_put_key(struct s3store *st, const struct s3store_record *rec,
    const uint8_t key[PF_SHA256_LEN])
{
	char obj[S3_KEY_MAX + 1];
	enum pf_status rc;

	if (!s3store_key_of(st, rec, "key", obj))
		return PF_EBADNAME;
	/* Last writer wins: the newest login is the one that counts. */
	if ((rc = s3_put(st->s3, obj, key, PF_SHA256_LEN, false, NULL)) !=
	    PF_OK)
		return s3store_fail(st, rc, "write", obj);
	return PF_OK;
}

enum pf_status
s3store_get_key(struct s3store *st, const struct s3store_record *rec,
    uint8_t key[PF_SHA256_LEN])
{
	char obj[S3_KEY_MAX + 1];
	uint8_t buf[PF_SHA256_LEN + 1];
	enum pf_status rc;
	size_t n = 0;

	if (!s3store_key_of(st, rec, "key", obj))
		return PF_EBADNAME;
	rc = s3store_get_small(st, obj, buf, sizeof(buf), &n);
	if (rc == PF_OK && n != PF_SHA256_LEN) {
		log_warn("S3 store: %s: not a session key", obj);
		rc = PF_EIO;
	} else if (rc != PF_OK && rc != PF_ENOSESSION)
		s3store_fail(st, rc, "read", obj);
	if (rc == PF_OK)
		memcpy(key, buf, PF_SHA256_LEN);
	pf_wipe(buf, sizeof(buf));
	return rc;
}

enum pf_status
s3store_receipt(struct s3store *st, const struct s3store_record *rec,
    uint8_t receipt[PF_SHA256_LEN], int64_t *when)
{
	char obj[S3_KEY_MAX + 1], body[COMMIT_MAX + 1];
	const char *hex = NULL;
	json_int_t t = 0;
	json_t *j = NULL;
	enum pf_status rc;
	size_t n = 0;

	if (!s3store_key_of(st, rec, "commit", obj))
		return PF_EBADNAME;
	if ((rc = s3store_get_small(st, obj, body, COMMIT_MAX, &n)) != PF_OK) {
		if (rc != PF_ENOSESSION)
			s3store_fail(st, rc, "read", obj);
		return rc;
	}
	if ((j = json_loadb(body, n, 0, NULL)) == NULL ||
	    json_unpack(j, "{s:s,s?I}", "receipt", &hex, "time", &t) == -1 ||
	    strlen(hex) != 2 * PF_SHA256_LEN ||
	    pf_hex_decode(hex, receipt, PF_SHA256_LEN) == -1) {
		log_warn("S3 store: %s: not a commit object", obj);
		rc = PF_EIO;
	}
	if (when != NULL)
		*when = rc == PF_OK ? (int64_t)t : 0;
	json_decref(j);
	return rc;
}

/* The shared server key, beside the sessions: PREFIX.pf/key. */
static bool
cluster_key_name(const struct s3store *st, char out[S3_KEY_MAX + 1])
{
	const char *prefix = st->cfg->prefix != NULL ? st->cfg->prefix : "";
	int n = snprintf(out, S3_KEY_MAX + 1, "%s.pf/key", prefix);

	return n > 0 && n <= S3_KEY_MAX;
}

enum pf_status
s3store_cluster_key(struct s3store *st, uint8_t key[PF_SHA256_LEN])
{
	char obj[S3_KEY_MAX + 1];
	uint8_t mine[PF_SHA256_LEN], buf[PF_SHA256_LEN + 1];
	enum pf_status rc, wrote;
	size_t n = 0;

	if (!cluster_key_name(st, obj))
		return PF_EBADNAME;
	if ((rc = s3store_get_small(st, obj, buf, sizeof(buf), &n)) ==
	    PF_ENOSESSION) {
		/* The first node makes it; one at once wins, the rest read. */
		if ((rc = pf_random(mine, sizeof(mine))) != PF_OK)
			return rc;
		wrote = s3_put(st->s3, obj, mine, sizeof(mine), true, NULL);
		pf_wipe(mine, sizeof(mine));
		/* Read back whatever came of it: a lost answer may be ours. */
		if ((rc = s3store_get_small(st, obj, buf, sizeof(buf), &n)) ==
		    PF_ENOSESSION && wrote != PF_OK && wrote != PF_EBUSY)
			rc = wrote;
	}
	if (rc == PF_OK && n != PF_SHA256_LEN) {
		log_error("S3 store: %s: not a server key", obj);
		rc = PF_EIO;
	} else if (rc != PF_OK)
		s3store_fail(st, rc, "read", obj);
	if (rc == PF_OK)
		memcpy(key, buf, PF_SHA256_LEN);
	pf_wipe(buf, sizeof(buf));
	return rc;
}
