/* SPDX-License-Identifier: MIT */
/*
 * What a node needs to serve a session it did not open: the login's
 * session key, which checks a JOIN, and the receipt of a finished
 * session, which answers a resume (docs/scale-out.md, "Several nodes").
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
