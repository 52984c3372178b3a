/* SPDX-License-Identifier: MIT */
/* Expiry in the S3 session store: idle sessions and orphan uploads. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3store_int.h"

#define ORPHANS_MAX	1000	/* old uploads looked at in one pass */

struct expire {
	struct s3store		*st;
	int64_t			 now;
	unsigned		 ttl_s;
	struct s3store_expired	*out;
	enum pf_status		 first;		/* the first error */
};

static void
note(struct expire *ex, enum pf_status rc)
{
	if (rc != PF_OK && ex->first == PF_OK)
		ex->first = rc;
}

static bool
newest(void *arg, const struct s3_object *o)
{
	int64_t *t = arg;

	if (o->mtime > *t)
		*t = o->mtime;
	return true;
}

/*
 * The session's last activity: the newest LastModified of its keys (the
 * record at create, a claim as each chunk begins, its sum as it ends, a
 * cancel), or the record's own time if that is newer.
 */
static enum pf_status
last_activity(struct s3store *st, const struct s3store_record *rec,
    int64_t *t)
{
	char prefix[S3_KEY_MAX + 1];
	enum pf_status rc;

	*t = rec->created;
	if (!s3store_key_of(st, rec, "", prefix))
		return PF_EBADNAME;
	if ((rc = s3_list(st->s3, prefix, NULL, newest, t)) != PF_OK)
		s3store_fail(st, rc, "list", prefix);
	return rc;
}

/* Each listed session: an ongoing one (or a cancel left half done) idle
   past the ttl is cancelled; committing and finished ones never. A
   DELETE left half done is finished now, whatever its age. */
static bool
on_session(void *arg, const struct s3store_record *rec,
    enum s3store_state state)
{
	struct expire *ex = arg;
	enum pf_status rc;
	int64_t t;

	if (state == S3STORE_DELETING) {
		note(ex, s3store_delete(ex->st, rec));
		return true;
	}
	if (state != S3STORE_ONGOING && state != S3STORE_CANCELLING)
		return true;
	if ((rc = last_activity(ex->st, rec, &t)) != PF_OK) {
		note(ex, rc);
		return true;
	}
	if (ex->now - t <= (int64_t)ex->ttl_s)
		return true;
	rc = s3store_cancel(ex->st, rec);
	if (rc == PF_OK) {
		log_info("S3 store: session %.64s idle %" PRId64 " s: "
		    "expired", rec->id, ex->now - t);
		ex->out->sessions++;
	} else if (rc != PF_EBUSY)	/* a COMMIT came first: it stays */
		note(ex, rc);
	return true;
}

/* An old multipart upload under files/, kept to look at after the
   listing (no request runs inside a listing's callback). */
struct upload {
	char	key[S3_KEY_MAX + 1];
	char	id[S3_ID_MAX];
};

struct uploads {
	struct upload	*v;
	size_t		 n;
	int64_t		 before;	/* started before this */
};

static bool
add_upload(void *arg, const char *key, const char *id, int64_t initiated)
{
	struct uploads *u = arg;

	if (initiated == 0 || initiated >= u->before)
		return true;
	snprintf(u->v[u->n].key, sizeof(u->v[u->n].key), "%s", key);
	snprintf(u->v[u->n].id, sizeof(u->v[u->n].id), "%s", id);
	return ++u->n < ORPHANS_MAX;
}

/* Aborts upload u if no record names it: a node died between the
   create and the record, or before its undo. */
static void
orphan(struct expire *ex, const struct upload *u, size_t skip)
{
	struct s3store_record rec;
	char id[S3STORE_ID_MAX];
	size_t n = strcspn(u->key + skip, "/");
	enum pf_status rc;

	if (n == 0 || n >= sizeof(id))
		return;
	memcpy(id, u->key + skip, n);
	id[n] = '\0';
	rc = s3store_load(ex->st, id, &rec);
	if (rc == PF_OK && strcmp(rec.upload, u->id) == 0)
		return;
	if (rc != PF_OK && rc != PF_ENOSESSION) {
		note(ex, rc);
		return;
	}
	rc = s3_mpu_abort(ex->st->s3, u->key, u->id);
	if (rc == PF_OK || rc == PF_ENOSESSION) {
		log_info("S3 store: an upload of session %s that no record "
		    "names: aborted", id);
		ex->out->uploads++;
	} else
		note(ex, s3store_fail(ex->st, rc, "abort upload", u->key));
}

static enum pf_status
orphans(struct expire *ex)
{
	struct uploads u = { .before = ex->now - (int64_t)ex->ttl_s };
	char prefix[S3_KEY_MAX + 1];
	enum pf_status rc;
	size_t i;

	snprintf(prefix, sizeof(prefix), "%sfiles/",
	    ex->st->cfg->prefix != NULL ? ex->st->cfg->prefix : "");
	if ((u.v = calloc(ORPHANS_MAX, sizeof(*u.v))) == NULL)
		return PF_ENOMEM;
	rc = s3_mpu_list(ex->st->s3, prefix, add_upload, &u);
	if (rc == PF_ECANCELLED)	/* full: the rest next pass */
		rc = PF_OK;
	if (rc != PF_OK)
		s3store_fail(ex->st, rc, "list uploads under", prefix);
	for (i = 0; rc == PF_OK && i < u.n; i++)
		orphan(ex, &u.v[i], strlen(prefix));
	free(u.v);
	return rc;
}

enum pf_status
s3store_expire(struct s3store *st, int64_t now, unsigned ttl_s,
    struct s3store_expired *out)
{
	struct expire ex = { st, now, ttl_s, out, PF_OK };
	enum pf_status rc;

	memset(out, 0, sizeof(*out));
	rc = s3store_list(st, on_session, &ex);
	note(&ex, rc);
	note(&ex, orphans(&ex));
	return ex.first;
}
