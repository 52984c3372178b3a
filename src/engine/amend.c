/* SPDX-License-Identifier: MIT */
/* Amended resumes: a changed tree resumed without sending it all again. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amend.h"
#include "clock.h"
#include "log.h"
#include "manifest.h"
#include "proto.h"
#include "recovery.h"
#include "registry.h"
#include "storage.h"

/* How long the connections of an interrupted run get to go away. */
#define AMEND_WAIT_MS	10000
#define AMEND_POLL_MS	20

/*
 * Keeps, of the n held records of s (indices, digests), those whose
 * chunk has the same length in the amended payload of size bytes and
 * holds only bytes of files unchanged (runs); returns how many.
 */
static uint32_t
keep_chunks(struct session *s, uint64_t size, const struct manifest_run *r,
    size_t nr, uint32_t *indices, uint8_t *digests, uint32_t n)
{
	uint32_t cs = session_chunk_size(s), nchunks, kept = 0;

	if (proto_chunk_count(size, cs, &nchunks) != PF_OK)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = indices[i];
		uint64_t off = (uint64_t)idx * cs;
		uint32_t len;

		if (idx >= nchunks)
			continue;
		len = proto_chunk_length(size, cs, idx);
		if (len != proto_chunk_length(session_size(s), cs, idx) ||
		    !manifest_runs_cover(r, nr, off, len))
			continue;
		indices[kept] = idx;
		memmove(digests + (size_t)kept * PF_SHA256_LEN, digests +
		    (size_t)i * PF_SHA256_LEN, PF_SHA256_LEN);
		kept++;
	}
	return kept;
}

/* Waits until the caller's reference is the only one left on s. */
static bool
wait_alone(struct session *s)
{
	uint64_t until = pf_now_ms() + AMEND_WAIT_MS;
	struct timespec ts = { 0, AMEND_POLL_MS * 1000000L };

	while (!session_alone(s)) {
		if (pf_now_ms() >= until)
			return false;
		nanosleep(&ts, NULL);
	}
	return true;
}

/*
 * What s is to become (its records, metadata and manifest) into a; the
 * caller frees a's arrays and JSON. PF_ENOMEM.
 */
static enum pf_status
prepare(struct session *s, const struct session_file *f,
    struct recovery_amend *a, char mfname[32], uint32_t *held)
{
	struct manifest_run *runs = NULL;
	uint32_t *indices = NULL;
	uint8_t *digests = NULL;
	size_t nr;
	enum pf_status rc;

	if ((rc = manifest_same_runs(session_manifest(s), f->manifest, &runs,
	    &nr)) != PF_OK || (rc = session_held_records(s, &indices,
	    &digests, held)) != PF_OK)
		goto out;
	a->n = keep_chunks(s, f->size, runs, nr, indices, digests, *held);
	a->indices = indices;
	a->digests = digests;
	indices = NULL;
	digests = NULL;
	rc = PF_ENOMEM;
	if ((a->meta = session_amended_meta(s, f, mfname)) == NULL)
		goto out;
	a->mfname = mfname;
	a->mf = f->manifest;
	a->size = f->size;
	rc = PF_OK;
out:
	free(runs);
	free(indices);
	free(digests);
	return rc;
}

enum pf_status
amend_transfer(const struct amend_env *e, struct session *s,
    const struct session_file *f, struct session **out, char *why,
    size_t whycap)
{
	struct recovery_amend a = { .meta = NULL };
	char id[PROTO_ID_LEN + 1], mfname[32], old[32];
	uint32_t held = 0;
	enum pf_status rc, back;

	*out = NULL;
	snprintf(id, sizeof(id), "%s", session_id(s));
	snprintf(old, sizeof(old), "%s", session_manifest_file(s));
	a.id = id;
	a.old_mfname = old;
	/* Out of the table: no new connection finds it from here on. */
	registry_unlist(e->registry, s);
	if (!wait_alone(s)) {
		/* Unless a connection of the other run ended it meanwhile. */
		if (session_state(s) == SESSION_RECEIVING)
			registry_relist(e->registry, s);
		session_unref(s);
		snprintf(why, whycap, "session %s is still in use by another "
		    "run; try again", id);
		return PF_EBUSY;
	}
	if (session_state(s) != SESSION_RECEIVING) {
		session_unref(s);
		snprintf(why, whycap, "session %s ended meanwhile", id);
		return PF_ENOSESSION;
	}
	/* Alone, it takes no chunk: what it holds is final. */
	rc = prepare(s, f, &a, mfname, &held);
	/* The last reference: its staging area is closed, left on disk. */
	session_unref(s);
	if (rc == PF_OK && (rc = recovery_amend(e->storage, &a)) != PF_OK)
		snprintf(why, whycap, "cannot amend session %s: %s", id,
		    pf_status_message(rc));
	else if (rc != PF_OK)
		snprintf(why, whycap, "out of memory");
	else
		log_info("session %s amended: %zu entries, %llu bytes, %u of "
		    "%u chunks held kept", id, f->manifest->n,
		    (unsigned long long)f->size, a.n, held);
	/* Whichever transfer is on disk now comes back. */
	back = registry_reload(e->registry, e->storage, e->policy, e->ttl_s,
	    id, out);
	if (rc == PF_OK && back != PF_OK) {
		rc = back;
		snprintf(why, whycap, "cannot bring session %s back: %s", id,
		    pf_status_message(rc));
	}
	if (rc != PF_OK) {
		session_unref(*out);
		*out = NULL;
	}
	json_decref((json_t *)a.meta);
	free((void *)a.indices);
	free((void *)a.digests);
	return rc;
}
