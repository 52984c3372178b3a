/* SPDX-License-Identifier: MIT */
/*
 * The gateway's door into the engine: uploads sent over HTTP (tus)
 * written into ordinary sessions, in order, at their durable offset.
 *
 * A session keeps its chunk map: such an upload uses the native client's
 * default chunk size, so its receipt is what `paraflow digest` prints.
 * Bytes are hashed and written as they come; a chunk is made durable
 * (data, then its journal record, by the session's committer) once it is
 * whole. A request may end inside a chunk (tus clients send pieces of
 * any size): that chunk is released at its end, so that nothing waits
 * on a request that is over, and the bytes staged in it are noted
 * (struct tail): its answer and HEAD tell the offset past them, and the
 * next request from there claims the chunk again and re-reads its
 * staged start for the digest. A request sent from the start of that
 * chunk instead writes it anew. Tails are in memory: after a restart
 * HEAD tells the end of the chunks held from the start on.
 *
 * Only uploads created here are written here: each carries the mark
 * "origin": "tus" in its metadata (session_tus). A native session, which
 * its client finishes with a receipt of its own, is not found (404), as
 * an unknown one is.
 *
 * A new upload is opened (staging area, metadata synced) at its
 * creation, so it survives a restart before its first byte. Its first
 * bytes, which the policy must judge before any is stored, are kept
 * here (struct pending) until min(size, 512) are there; then judged,
 * written into its metadata as its head, and stored.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_int.h"
#include "gwupload.h"
#include "log.h"
#include "policy.h"
#include "proto.h"
#include "registry.h"
#include "session.h"
#include "storage.h"
#include "store.h"

/* Chunks a write keeps on their way to disk while it reads on. */
#define UP_RING		4

/* A new upload whose first bytes are not judged yet. */
struct pending {
	struct session	*s;		/* a reference */
	bool		 busy;		/* a write has it */
	/* First bytes sent in short requests, held until they are judged. */
	uint8_t		 head[PROTO_HEAD_LEN];
	size_t		 headlen;
	struct pending	*next;
};

/* The names of a new upload, checked. */
struct naming {
	char		 name[PROTO_MAX_NAME + 1];	/* sanitized */
	char		*client_name;	/* as sent, maybe PARTIAL_MARK first */
	size_t		 client_name_len;
};

/*
 * A partial upload of tus concatenation is a session of its own, never
 * stored as a file, copied into the final upload that names it. Its
 * client name starts with PARTIAL_MARK, which no client can send (a
 * name never holds a NUL): the staging metadata keeps it, so a partial
 * upload is still one after a restart.
 */
#define PARTIAL_MARK	"\0tus-partial\0"
#define PARTIAL_MARK_LEN	(sizeof(PARTIAL_MARK) - 1)

/*
 * A final upload of tus concatenation and its parts, for HEAD's
 * Upload-Concat. In memory, the newest GWUP_MAX_FINALS only.
 */
struct final {
	char		 id[ENGINE_ID_LEN + 1];
	char		*parts;		/* their ids, separated by spaces */
	struct final	*next;
};
#define GWUP_MAX_FINALS	1024

/*
 * A chunk a request left unfinished: written from its start to off, and
 * released, for the next request to go on with. By id, as a reference
 * would keep an ended session's staging area.
 */
struct tail {
	char		 id[ENGINE_ID_LEN + 1];
	uint32_t	 idx;
	uint64_t	 off;
	struct tail	*next;
};
#define GWUP_MAX_TAILS	1024

struct gwup {
	pthread_mutex_t	 lock;		/* guards the lists */
	struct pending	*pending;
	struct final	*finals;	/* newest first */
	unsigned	 nfinals;
	struct tail	*tails;
	unsigned	 ntails;
};

/* A chunk of the write on its way to the journal. */
struct up_chunk {
	struct journal_ticket	 t;
	uint32_t		 index;
	uint8_t			 digest[PF_SHA256_LEN];
};

struct engine_upload {
	struct engine		*e;
	struct session		*s;		/* a reference */
	struct pending		*p;		/* owned, until opened */
	bool			 hold;
	bool			 partial;	/* never finalized itself */
	uint64_t		 off;		/* of the next byte */
	uint64_t		 size;
	uint32_t		 cs;
	uint32_t		 idx;		/* the chunk being written */
	uint64_t		 chunk_end;
	bool			 claimed;	/* idx is ours */
	bool			 resumed;	/* began at a tail: */
	uint32_t		 from_idx;	/* its chunk */
	uint64_t		 from;		/* and offset */
	bool			 skip;		/* idx was held already */
	struct pf_sha256	*hash;
	uint8_t			 head[PROTO_HEAD_LEN];
	size_t			 headlen;
	struct up_chunk		 ring[UP_RING];	/* without hold */
	unsigned		 rhead, rn;
	struct up_chunk		*held;		/* with hold */
	uint32_t		 nheld, capheld;
	enum pf_status		 err;
	char			 why[POLICY_WHY_MAX];
};

struct gwup *
gwup_new(void)
{
	struct gwup *g = calloc(1, sizeof(*g));

	if (g != NULL)
		pthread_mutex_init(&g->lock, NULL);
	return g;
}

static void
pending_free(struct pending *p)
{
	if (p == NULL)
		return;
	session_unref(p->s);
	free(p);
}

/* Takes the tail of s out of g into *out (true), if it has one. */
static bool
tail_take(struct gwup *g, struct session *s, struct tail *out)
{
	struct tail **tp, *t;

	pthread_mutex_lock(&g->lock);
	for (tp = &g->tails; (t = *tp) != NULL; tp = &t->next)
		if (strcmp(t->id, session_id(s)) == 0) {
			*tp = t->next;
			g->ntails--;
			break;
		}
	pthread_mutex_unlock(&g->lock);
	if (t == NULL)
		return false;
	*out = *t;
	free(t);
	return true;
}

/* Copies the tail of s into *out (true), if it has one. */
static bool
tail_peek(struct gwup *g, struct session *s, struct tail *out)
{
	struct tail *t;

	pthread_mutex_lock(&g->lock);
	for (t = g->tails; t != NULL; t = t->next)
		if (strcmp(t->id, session_id(s)) == 0) {
			*out = *t;
			break;
		}
	pthread_mutex_unlock(&g->lock);
	return t != NULL;
}

/*
 * Keeps the tail of chunk idx of s, written to off; false if not (too
 * many, ENOMEM). The tails of sessions that ended are dropped first.
 */
static bool
tail_put(struct engine *e, struct session *s, uint32_t idx, uint64_t off)
{
	struct gwup *g = e->uploads;
	struct tail **tp, *t;
	struct session *x;
	bool live;

	pthread_mutex_lock(&g->lock);
	for (tp = &g->tails; (t = *tp) != NULL;) {
		live = registry_lookup(e->registry, t->id, &x) == PF_OK;
		if (live) {
			live = session_state(x) == SESSION_RECEIVING;
			session_unref(x);
		}
		if (!live) {
			*tp = t->next;
			g->ntails--;
			free(t);
			continue;
		}
		tp = &t->next;
	}
	if (g->ntails < GWUP_MAX_TAILS && (t = calloc(1, sizeof(*t))) !=
	    NULL) {
		snprintf(t->id, sizeof(t->id), "%s", session_id(s));
		t->idx = idx;
		t->off = off;
		t->next = g->tails;
		g->tails = t;
		g->ntails++;
	}
	pthread_mutex_unlock(&g->lock);
	return t != NULL;
}

/* Frees the finals of g past the newest keep. g->lock held (or gone). */
static void
finals_trim(struct gwup *g, unsigned keep)
{
	struct final **fp = &g->finals, *f;
	unsigned i;

	for (i = 0; *fp != NULL && i < keep; i++)
		fp = &(*fp)->next;
	while ((f = *fp) != NULL) {
		*fp = f->next;
		free(f->parts);
		free(f);
		g->nfinals--;
	}
}

/* Notes final upload id, joined from the nparts ids; ENOMEM: not. */
static void
finals_add(struct gwup *g, const char *id, const char *const *ids,
    size_t nparts)
{
	struct final *f = calloc(1, sizeof(*f));

	if (f == NULL || (f->parts = malloc(nparts * (ENGINE_ID_LEN + 1) +
	    1)) == NULL) {
		free(f);
		return;
	}
	snprintf(f->id, sizeof(f->id), "%s", id);
	f->parts[0] = '\0';
	for (size_t i = 0; i < nparts; i++) {
		if (i > 0)
			strcat(f->parts, " ");
		strncat(f->parts, ids[i], ENGINE_ID_LEN);
	}
	pthread_mutex_lock(&g->lock);
	f->next = g->finals;
	g->finals = f;
	if (++g->nfinals > GWUP_MAX_FINALS)
		finals_trim(g, GWUP_MAX_FINALS);
	pthread_mutex_unlock(&g->lock);
}

char *
engine_upload_final_parts(struct engine *e, const char *id)
{
	struct gwup *g = e->uploads;
	char *parts = NULL;

	pthread_mutex_lock(&g->lock);
	for (struct final *f = g->finals; f != NULL; f = f->next)
		if (strcmp(f->id, id) == 0) {
			parts = strdup(f->parts);
			break;
		}
	pthread_mutex_unlock(&g->lock);
	return parts;
}

void
gwup_free(struct gwup *g)
{
	struct pending *p, *next;
	struct tail *t;

	if (g == NULL)
		return;
	for (p = g->pending; p != NULL; p = next) {
		next = p->next;
		pending_free(p);
	}
	finals_trim(g, 0);
	while ((t = g->tails) != NULL) {
		g->tails = t->next;
		free(t);
	}
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/*
 * Drops the entries of g whose session ended (the reaper expires idle
 * ones, DELETE cancels them) and that no write has: their references
 * would keep the staging areas.
 */
static void
pending_prune(struct gwup *g)
{
	struct pending **pp, *p, *gone = NULL;

	pthread_mutex_lock(&g->lock);
	for (pp = &g->pending; (p = *pp) != NULL;) {
		if (!p->busy && session_state(p->s) != SESSION_RECEIVING) {
			*pp = p->next;
			p->next = gone;
			gone = p;
			continue;
		}
		pp = &p->next;
	}
	pthread_mutex_unlock(&g->lock);
	while ((p = gone) != NULL) {
		gone = p->next;
		pending_free(p);
	}
}

/*
 * The pending entry of s for a write into *out (busy then), made if s
 * has none yet (a new upload, or one recovered at start-up); PF_EBUSY if
 * another write has it, PF_EINTERNAL on ENOMEM.
 */
static enum pf_status
pending_get(struct gwup *g, struct session *s, struct pending **out)
{
	struct pending *p;
	enum pf_status rc = PF_OK;

	pending_prune(g);
	pthread_mutex_lock(&g->lock);
	for (p = g->pending; p != NULL && p->s != s; p = p->next)
		;
	if (p == NULL && (p = calloc(1, sizeof(*p))) != NULL) {
		session_ref(s);
		p->s = s;
		p->next = g->pending;
		g->pending = p;
	}
	if (p == NULL)
		rc = PF_EINTERNAL;
	else if (p->busy)
		rc = PF_EBUSY;
	else
		p->busy = true;
	pthread_mutex_unlock(&g->lock);
	*out = rc == PF_OK ? p : NULL;
	return rc;
}

/* Gives p back after a write: for the next one, or dropped with drop. */
static void
pending_put(struct gwup *g, struct pending *p, bool drop)
{
	struct pending **pp;

	pthread_mutex_lock(&g->lock);
	p->busy = false;
	if (drop) {
		for (pp = &g->pending; *pp != NULL && *pp != p;
		    pp = &(*pp)->next)
			;
		if (*pp == p)
			*pp = p->next;
	}
	pthread_mutex_unlock(&g->lock);
	if (drop)
		pending_free(p);
}

/* True if s is a partial upload. */
static bool
partial_is(const struct session *s)
{
	const char *name;
	size_t len;

	name = session_client_name(s, &len);
	return name != NULL && len >= PARTIAL_MARK_LEN &&
	    memcmp(name, PARTIAL_MARK, PARTIAL_MARK_LEN) == 0;
}

/* Checks n's name and size as control.c's OPEN does; sets nm. */
static enum pf_status
check_new(struct engine *e, const struct engine_upload_new *n,
    struct naming *nm, uint32_t *nchunks, char *why, size_t cap)
{
	uint64_t max = e->cfg.max_file_size;
	enum pf_status rc;
	size_t mark;

	if (n->namelen > POLICY_MAX_CLIENT_NAME || policy_sanitize_name(
	    n->name, n->namelen, nm->name) != PF_OK) {
		snprintf(why, cap, "file name cannot be stored");
		return PF_EBADNAME;
	}
	if ((rc = policy_check_names(e->policy, n->name, n->namelen,
	    nm->name, why, cap)) != PF_OK) {
		if (rc != PF_EFORBIDDEN)
			snprintf(why, cap, "file name cannot be stored");
		return rc == PF_EFORBIDDEN ? rc : rc == PF_ENOMEM ?
		    PF_EINTERNAL : PF_EBADNAME;
	}
	if (max != 0 && n->size > max) {
		snprintf(why, cap, "file of %llu bytes is over the limit of "
		    "%llu", (unsigned long long)n->size,
		    (unsigned long long)max);
		return PF_ETOOLARGE;
	}
	if (proto_chunk_count(n->size, PROTO_DEFAULT_CHUNK, nchunks) !=
	    PF_OK) {
		snprintf(why, cap, "more than %u chunks", PROTO_MAX_CHUNKS);
		return PF_ETOOLARGE;
	}
	mark = n->partial ? PARTIAL_MARK_LEN : 0;
	if ((nm->client_name = malloc(mark + n->namelen + 1)) == NULL)
		return PF_EINTERNAL;
	memcpy(nm->client_name, PARTIAL_MARK, mark);
	memcpy(nm->client_name + mark, n->name, n->namelen);
	nm->client_name[mark + n->namelen] = '\0';
	nm->client_name_len = mark + n->namelen;
	return PF_OK;
}

/* The free space above --min-free-space once size is taken, in *room. */
static enum pf_status
check_space(struct engine *e, uint64_t size, uint64_t *room, char *why,
    size_t cap)
{
	uint64_t avail = storage_free_bytes(e->storage);
	uint64_t keep = e->cfg.min_free_space;

	*room = UINT64_MAX;
	if (avail == UINT64_MAX)
		return PF_OK;
	if (avail < size || avail - size < keep) {
		snprintf(why, cap, "%llu bytes would leave less than the %llu "
		    "bytes kept free", (unsigned long long)size,
		    (unsigned long long)keep);
		return PF_ENOSPC;
	}
	*room = avail - keep;
	return PF_OK;
}

/*
 * Opens new session s of n with names nm: its staging area and its
 * metadata, synced, marked as tus's, without a head until its first
 * bytes are judged (judge_head). On failure s is ended.
 */
static enum pf_status
open_new(struct engine *e, struct session *s,
    const struct engine_upload_new *n, const struct naming *nm, char *why,
    size_t cap)
{
	struct session_file f = { .name = nm->name,
	    .client_name = nm->client_name,
	    .client_name_len = nm->client_name_len, .peer = n->peer,
	    .size = n->size, .chunk_size = PROTO_DEFAULT_CHUNK,
	    .head = (const uint8_t *)"", .headlen = 0, .tus = true };
	enum pf_status rc;

	if ((rc = session_open(s, e->storage, &f)) != PF_OK) {
		snprintf(why, cap, "cannot stage %llu bytes",
		    (unsigned long long)n->size);
		registry_end(e->registry, s, SESSION_FAILED, rc);
		return rc;
	}
	log_info("%s: upload %s created over HTTP by %s: \"%s\", %llu bytes, "
	    "%u chunks", n->peer, session_id(s), session_user(s),
	    session_name(s), (unsigned long long)session_size(s),
	    session_nchunks(s));
	return PF_OK;
}

/*
 * Judges the first headlen bytes of new upload s (all of them, or 512)
 * and keeps them as its head; on refusal or failure s is ended.
 */
static enum pf_status
judge_head(struct engine *e, struct session *s, const uint8_t *head,
    size_t headlen, char *why, size_t cap)
{
	enum pf_status rc;

	/* A partial upload's head is judged in the final upload. */
	if (!partial_is(s) && (rc = policy_check_head(e->policy, head,
	    headlen, why, cap)) != PF_OK) {
		log_info("upload %s refused: %s", session_id(s), why);
		rc = rc == PF_EFORBIDDEN ? rc : PF_EINTERNAL;
		registry_end(e->registry, s, SESSION_FAILED, rc);
		return rc;
	}
	if (headlen > 0 && (rc = session_set_head(s, head, headlen)) !=
	    PF_OK) {
		snprintf(why, cap, rc == PF_ECANCELLED ? "the upload was "
		    "cancelled" : "cannot store the upload's metadata");
		registry_end(e->registry, s, SESSION_FAILED, rc);
		return rc;
	}
	return PF_OK;
}

/* Finalizes s, all of whose chunks are held, and lets it go. */
static enum pf_status
complete(struct engine *e, struct session *s)
{
	enum pf_status rc;

	if ((rc = session_commit_held(s)) != PF_OK) {
		/* Another write finishing it at once: it is (being) done. */
		if (rc != PF_ECANCELLED)
			log_warn("upload %s: cannot store the file: %s",
			    session_id(s), pf_status_message(rc));
		return rc == PF_ECANCELLED ? PF_OK : rc;
	}
	log_info("upload %s complete: \"%s\", %llu bytes, receipt %s; %llu "
	    "bytes received", session_id(s), session_name(s),
	    (unsigned long long)session_size(s), session_receipt(s),
	    (unsigned long long)session_bytes_received(s));
	registry_retire(e->registry, s);
	return PF_OK;
}

enum pf_status
engine_upload_create(struct engine *e, const struct engine_upload_new *n,
    char id[ENGINE_ID_LEN + 1], char *why, size_t cap)
{
	struct registry_ask ask = { .user = n->user, .size = n->size };
	struct naming nm = { .client_name = NULL };
	struct session *s = NULL;
	uint32_t nchunks = 0;
	enum pf_status rc;

	pending_prune(e->uploads);
	if (!store_takes_tus(e->store)) {
		snprintf(why, cap, "uploads over tus are not served with S3 "
		    "storage yet: use paraflow upload");
		return PF_EPROTO;
	}
	if ((rc = check_new(e, n, &nm, &nchunks, why, cap)) != PF_OK ||
	    (rc = check_space(e, n->size, &ask.room, why, cap)) != PF_OK)
		goto out;
	if ((rc = registry_open(e->registry, nchunks, &ask, &s, why,
	    cap)) != PF_OK) {
		log_info("%s: upload of %llu bytes refused: %s", n->peer,
		    (unsigned long long)n->size, why);
		rc = rc == PF_ENOMEM ? PF_EINTERNAL : rc;
		goto out;
	}
	snprintf(id, ENGINE_ID_LEN + 1, "%s", session_id(s));
	if ((rc = open_new(e, s, n, &nm, why, cap)) != PF_OK)
		goto out;
	/* Nothing to wait for: judged and stored now (a part: kept). */
	if (n->size == 0 && (rc = judge_head(e, s, (const uint8_t *)"", 0,
	    why, cap)) == PF_OK && !n->partial)
		rc = complete(e, s);
out:
	session_unref(s);
	free(nm.client_name);
	return rc;
}

/*
 * A live tus session by id, if user (NULL: anyone) owns it; else NULL.
 * A native one is not found: see the top of this file.
 */
static struct session *
lookup(struct engine *e, const char *id, const char *user)
{
	struct session *s;

	if (registry_lookup(e->registry, id, &s) != PF_OK)
		return NULL;
	if ((user != NULL && strcmp(session_user(s), user) != 0) ||
	    !session_ready(s) || !session_tus(s)) {
		session_unref(s);
		return NULL;
	}
	return s;
}

/* Upload id as the history has it: complete, or ended otherwise. */
static enum pf_status
info_finished(struct engine *e, const char *id, const char *user,
    struct engine_upload_info *out)
{
	struct engine_session_info si;

	if (engine_session(e, id, &si) != PF_OK || !si.tus ||
	    (user != NULL && strcmp(si.user, user) != 0))
		return PF_ENOSESSION;
	out->state = si.state;
	out->size = si.size;
	snprintf(out->name, sizeof(out->name), "%s", si.name);
	if (si.state == ENGINE_COMPLETE) {
		out->offset = si.size;
		memcpy(out->digest, si.digest, sizeof(out->digest));
		return PF_OK;
	}
	return si.state == ENGINE_RECEIVING ? PF_ENOSESSION : PF_ECANCELLED;
}

enum pf_status
engine_upload_info(struct engine *e, const char *id, const char *user,
    struct engine_upload_info *out)
{
	struct engine_session_info si;
	struct session *s;
	struct tail t;
	enum pf_status rc;

	memset(out, 0, sizeof(*out));
	if ((s = lookup(e, id, user)) == NULL)
		return info_finished(e, id, user, out);
	/*
	 * All of it durable but not stored (the disk was full at the end):
	 * stored now, or the error, as the offset must not say it is done.
	 */
	if (session_ready(s) && session_state(s) == SESSION_RECEIVING &&
	    session_held_prefix(s) == session_size(s) && !partial_is(s)) {
		/* Another request storing it at once: it is in progress. */
		if ((rc = complete(e, s)) != PF_OK ||
		    info_finished(e, id, user, out) == PF_OK) {
			session_unref(s);
			return rc;
		}
	}
	session_info(s, &si);
	out->state = si.state;
	out->size = session_size(s);
	out->offset = session_held_prefix(s);
	/* The bytes a request left in the next chunk count: tus says so. */
	if (tail_peek(e->uploads, s, &t) && out->offset ==
	    (uint64_t)t.idx * session_chunk_size(s))
		out->offset = t.off;
	out->expires = si.updated + (int64_t)e->cfg.staging_ttl_s;
	out->partial = partial_is(s);
	snprintf(out->name, sizeof(out->name), "%s", session_name(s));
	session_unref(s);
	return PF_OK;
}

/*
 * The tail a request left in s, for a write at off, where *at is the
 * end of the chunks held: gone on with (*resume, its chunk claimed
 * again, in *t; *at is off then); dropped if off is *at (its chunk is
 * written anew) or its chunk was held meanwhile; else kept, and *at is
 * its offset, as HEAD says. PF_EBUSY if another write has its chunk.
 */
static enum pf_status
tail_resolve(struct engine *e, struct session *s, uint64_t off,
    uint64_t *at, struct tail *t, bool *resume)
{
	*resume = false;
	if (!tail_take(e->uploads, s, t)) {
		/*
		 * Past the chunks held, with no tail to go on from: a
		 * request writing the next chunk has it (a retry sent while
		 * the first still runs), or the offset is wrong.
		 */
		return off > *at && session_chunk_busy(s, (uint32_t)(*at /
		    session_chunk_size(s))) ? PF_EBUSY : PF_OK;
	}
	if (*at != (uint64_t)t->idx * session_chunk_size(s) || off == *at)
		return PF_OK;
	if (off != t->off) {
		if (tail_put(e, s, t->idx, t->off))
			*at = t->off;
		return PF_OK;
	}
	switch (session_reclaim_chunk(s, t->idx)) {
	case SESSION_CLAIMED:
		*at = off;
		*resume = true;
		return PF_OK;
	case SESSION_BUSY:
		tail_put(e, s, t->idx, t->off);
		return PF_EBUSY;
	default:
		return PF_OK;
	}
}

/* Bytes read back at once to digest the start of a chunk gone on with. */
#define REHASH_BUF	(64 * 1024)

/*
 * Goes on with chunk idx, written from its start to u->off by an earlier
 * request and claimed again for u: its digest fed with what is staged.
 */
static enum pf_status
resume_chunk(struct engine_upload *u, uint32_t idx)
{
	struct proto_chunk_head ch = { .index = idx,
	    .offset = (uint64_t)idx * u->cs };
	enum pf_status rc;
	uint8_t *buf;
	size_t k;

	ch.length = proto_chunk_length(u->size, u->cs, idx);
	u->idx = idx;
	u->chunk_end = ch.offset + ch.length;
	u->claimed = true;
	if ((rc = proto_chunk_digest_begin(u->hash, &ch)) != PF_OK)
		return rc;
	if ((buf = malloc(REHASH_BUF)) == NULL)
		return PF_EINTERNAL;
	for (uint64_t o = ch.offset; o < u->off && rc == PF_OK; o += k) {
		k = u->off - o < REHASH_BUF ? (size_t)(u->off - o) :
		    REHASH_BUF;
		if ((rc = session_read_staged(u->s, o, buf, k)) == PF_OK)
			rc = pf_sha256_update(u->hash, buf, k);
	}
	free(buf);
	return rc;
}

/*
 * Where a write into s may begin, in *at, and what it goes on with: the
 * pending first bytes of a new upload (*p), or a tail (*resume, *t).
 */
static enum pf_status
begin_at(struct engine *e, struct session *s, uint64_t off, uint64_t *at,
    struct pending **p, struct tail *t, bool *resume)
{
	enum pf_status rc;

	*resume = false;
	if (session_head_judged(s)) {
		*at = session_held_prefix(s);
		return tail_resolve(e, s, off, at, t, resume);
	}
	if ((rc = pending_get(e->uploads, s, p)) != PF_OK)
		return rc;
	/* Its held first bytes: gone on from, or sent anew. */
	if (off == 0)
		(*p)->headlen = 0;
	*at = (*p)->headlen;
	return PF_OK;
}

enum pf_status
engine_upload_begin(struct engine *e, const char *id, const char *user,
    uint64_t off, bool hold, struct engine_upload **out, uint64_t *durable)
{
	struct engine_upload_info info;
	struct pending *p = NULL;
	struct engine_upload *u;
	struct session *s;
	struct tail t = { .off = 0 };
	enum pf_status rc = PF_EBUSY;
	bool resume = false;
	uint64_t at = 0;

	*out = NULL;
	if ((s = lookup(e, id, user)) == NULL) {
		/* Finished: complete (at its size), or gone. */
		if ((rc = info_finished(e, id, user, &info)) == PF_ENOSESSION)
			return rc;
		*durable = info.offset;
		return rc == PF_OK ? PF_EPROTO : PF_ECANCELLED;
	}
	if (session_state(s) != SESSION_RECEIVING || (rc = begin_at(e, s,
	    off, &at, &p, &t, &resume)) != PF_OK) {
		session_unref(s);
		return rc == PF_EINTERNAL ? rc : PF_EBUSY;
	}
	if (off != at || (u = calloc(1, sizeof(*u))) == NULL) {
		if (p != NULL)
			pending_put(e->uploads, p, false);
		if (resume) {
			tail_put(e, s, t.idx, t.off);
			session_release_chunk(s, t.idx, false);
		}
		session_unref(s);
		*durable = at;
		return off != at ? PF_EPROTO : PF_EINTERNAL;
	}
	*u = (struct engine_upload){ .e = e, .s = s, .p = p, .hold = hold,
	    .off = 0, .size = session_size(s),
	    .cs = session_chunk_size(s), .hash = pf_sha256_new(),
	    .partial = partial_is(s) };
	if (p != NULL) {
		memcpy(u->head, p->head, p->headlen);
		u->headlen = p->headlen;
	} else
		u->off = off;
	u->resumed = resume;
	u->from_idx = u->idx = t.idx;
	u->from = t.off;
	session_attach(s, false);
	session_touch(s);
	rc = u->hash == NULL ? PF_EINTERNAL : resume ? resume_chunk(u, t.idx) :
	    PF_OK;
	if (rc != PF_OK) {
		u->claimed = resume;
		u->err = rc;
		engine_upload_end(u, false, durable);
		return rc;
	}
	*out = u;
	return PF_OK;
}

/* Marks chunk c, synced with result rc, held (or released). */
static void
settle(struct engine_upload *u, const struct up_chunk *c, enum pf_status rc)
{
	if (rc == PF_OK) {
		session_held_chunk(u->s, c->index, c->digest);
		atomic_fetch_add(&u->e->counters.chunks_acked, 1);
		return;
	}
	session_release_chunk(u->s, c->index, false);
	if (u->err == PF_OK)
		u->err = rc;
	/* After a failed sync nothing staged can be trusted. */
	if (session_broken(u->s))
		registry_end(u->e->registry, u->s, SESSION_FAILED, rc);
}

/* Waits for the oldest chunk of the ring and settles it. */
static void
ring_pop(struct engine_upload *u)
{
	struct up_chunk *c = &u->ring[u->rhead];

	settle(u, c, session_wait_chunk(u->s, &c->t));
	u->rhead = (u->rhead + 1) % UP_RING;
	u->rn--;
}

/* Chunk u->idx is whole, with digest d: on its way to disk, or held. */
static enum pf_status
chunk_whole(struct engine_upload *u, const uint8_t d[PF_SHA256_LEN])
{
	struct up_chunk *c;
	enum pf_status rc;

	if (u->hold) {
		if (u->nheld == u->capheld) {
			uint32_t cap = u->capheld ? 2 * u->capheld : 8;

			if ((c = realloc(u->held, cap * sizeof(*c))) == NULL)
				return PF_EINTERNAL;
			u->held = c;
			u->capheld = cap;
		}
		c = &u->held[u->nheld++];
	} else {
		if (u->rn == UP_RING)
			ring_pop(u);
		c = &u->ring[(u->rhead + u->rn) % UP_RING];
	}
	c->index = u->idx;
	c->t.wakefd = -1;
	memcpy(c->digest, d, PF_SHA256_LEN);
	u->claimed = false;
	if (u->hold)
		return PF_OK;
	if ((rc = session_sync_chunk(u->s, u->idx, d, &c->t)) != PF_OK) {
		settle(u, c, rc);
		return rc;
	}
	u->rn++;
	return PF_OK;
}

/* Enters chunk u->off / cs: claims it (or skips it if held already). */
static enum pf_status
chunk_enter(struct engine_upload *u)
{
	struct proto_chunk_head ch;
	bool resent;

	/* Cancelled (DELETE) or failed meanwhile: nothing more is taken. */
	if (session_state(u->s) != SESSION_RECEIVING) {
		snprintf(u->why, sizeof(u->why), "the upload was %s",
		    session_state(u->s) == SESSION_CANCELLED ? "cancelled" :
		    "ended");
		return PF_ECANCELLED;
	}
	u->idx = (uint32_t)(u->off / u->cs);
	ch.index = u->idx;
	ch.offset = (uint64_t)u->idx * u->cs;
	ch.length = proto_chunk_length(u->size, u->cs, u->idx);
	u->chunk_end = ch.offset + ch.length;
	switch (session_claim_chunk(u->s, u->idx, &resent)) {
	case SESSION_BUSY:
		snprintf(u->why, sizeof(u->why), "another request is writing "
		    "this part of the upload; try again in a moment");
		return PF_EBUSY;
	case SESSION_HELD:
		u->skip = true;
		break;
	default:
		u->skip = false;
		u->claimed = true;
		break;
	}
	if (resent)
		atomic_fetch_add(&u->e->counters.chunks_resent, 1);
	return u->skip ? PF_OK : proto_chunk_digest_begin(u->hash, &ch);
}

/* Stores n bytes at u->off, within the size, of an opened session. */
static enum pf_status
store(struct engine_upload *u, const uint8_t *p, size_t n)
{
	uint8_t d[PF_SHA256_LEN];
	enum pf_status rc;

	while (n > 0) {
		size_t k;

		if (!u->claimed && !u->skip &&
		    (rc = chunk_enter(u)) != PF_OK)
			return rc;
		k = u->chunk_end - u->off < n ? (size_t)(u->chunk_end -
		    u->off) : n;
		session_count_bytes(u->s, k);
		atomic_fetch_add(&u->e->counters.bytes_received, k);
		if (!u->skip && ((rc = pf_sha256_update(u->hash, p, k)) !=
		    PF_OK || (rc = session_write_chunk(u->s, u->off, p, k)) !=
		    PF_OK))
			return rc;
		u->off += k;
		p += k;
		n -= k;
		/* Chunks synced meanwhile count now: HEAD reports them. */
		while (u->rn > 0 && atomic_load(&u->ring[u->rhead].t.done))
			ring_pop(u);
		if (u->off < u->chunk_end)
			continue;
		if (u->skip) {
			u->skip = false;
			continue;
		}
		if ((rc = pf_sha256_final(u->hash, d)) != PF_OK ||
		    (rc = chunk_whole(u, d)) != PF_OK)
			return rc;
	}
	return PF_OK;
}

/*
 * The first bytes of a new upload, kept until min(size, PROTO_HEAD_LEN)
 * are there: then judged, and the session opened and written.
 */
static enum pf_status
take_head(struct engine_upload *u, const uint8_t **p, size_t *n)
{
	size_t want = u->size < PROTO_HEAD_LEN ? (size_t)u->size :
	    PROTO_HEAD_LEN;
	size_t k = want - u->headlen < *n ? want - u->headlen : *n;
	struct pending *pe = u->p;
	enum pf_status rc;

	memcpy(u->head + u->headlen, *p, k);
	u->headlen += k;
	*p += k;
	*n -= k;
	if (u->headlen < want)
		return PF_OK;
	/* Claimed before the judgement: one write stores it. */
	if ((rc = chunk_enter(u)) != PF_OK)
		return rc;
	if ((rc = judge_head(u->e, u->s, u->head, want, u->why,
	    sizeof(u->why))) != PF_OK)
		return rc;
	u->p = NULL;
	pending_put(u->e->uploads, pe, true);
	return store(u, u->head, want);
}

enum pf_status
engine_upload_write(struct engine_upload *u, const void *p, size_t n)
{
	const uint8_t *b = p;

	if (u->err != PF_OK)
		return u->err;
	if (n > u->size - u->off - (u->p ? u->headlen : 0)) {
		snprintf(u->why, sizeof(u->why), "more bytes than the "
		    "upload's length of %llu", (unsigned long long)u->size);
		return u->err = PF_ETOOLARGE;
	}
	if (u->p != NULL && (u->err = take_head(u, &b, &n)) != PF_OK)
		return u->err;
	if (n > 0 && (u->err = store(u, b, n)) != PF_OK &&
	    u->why[0] == '\0')
		snprintf(u->why, sizeof(u->why), "%s",
		    pf_status_message(u->err));
	return u->err;
}

uint64_t
engine_upload_room(const struct engine_upload *u)
{
	return u->size - u->off - (u->p != NULL ? u->headlen : 0);
}

uint64_t
engine_upload_max_size(const struct engine *e)
{
	return e->cfg.max_file_size;
}

const char *
engine_upload_why(const struct engine_upload *u)
{
	return u->why;
}

/* The chunks held back (hold): made durable with keep, else released. */
static void
end_held(struct engine_upload *u, bool keep)
{
	enum pf_status rc;
	uint32_t i, sent = 0;

	for (i = 0; i < u->nheld && keep; i++, sent++)
		if ((rc = session_sync_chunk(u->s, u->held[i].index,
		    u->held[i].digest, &u->held[i].t)) != PF_OK)
			break;
	for (i = 0; i < u->nheld; i++) {
		if (i < sent)
			settle(u, &u->held[i], session_wait_chunk(u->s,
			    &u->held[i].t));
		else
			session_release_chunk(u->s, u->held[i].index, false);
	}
	free(u->held);
}

enum pf_status
engine_upload_end(struct engine_upload *u, bool keep, uint64_t *offset)
{
	struct engine *e = u->e;
	struct session *s = u->s;
	/* Cut off by its excess, what came before stays (docs/api.md). */
	bool tail = u->claimed && u->p == NULL && keep &&
	    (u->err == PF_OK || u->err == PF_ETOOLARGE), restored = false;
	enum pf_status rc = PF_OK;

	while (u->rn > 0)
		ring_pop(u);
	/*
	 * Nothing of it kept (refused, its checksum wrong): the tail it
	 * began at is where it was, its bytes below this request's
	 * untouched; put back while its chunk is still claimed.
	 */
	if (!keep && u->resumed && session_state(s) == SESSION_RECEIVING &&
	    session_held_prefix(s) == (uint64_t)u->from_idx * u->cs &&
	    tail_put(e, s, u->from_idx, u->from))
		restored = true;
	end_held(u, keep);
	*offset = session_ready(s) && session_state(s) == SESSION_RECEIVING ?
	    session_held_prefix(s) : 0;
	/*
	 * A chunk left unfinished after durable ones: noted for the next
	 * request to go on, and released, so that nobody waits on this one.
	 */
	if (tail && *offset == (uint64_t)u->idx * u->cs &&
	    session_state(s) == SESSION_RECEIVING &&
	    tail_put(e, s, u->idx, u->off))
		*offset = u->off;
	else if (restored)
		*offset = u->from;
	if (u->claimed)
		session_release_chunk(s, u->idx, false);
	if (u->p != NULL) {
		/*
		 * Not judged: the first bytes so far wait in memory for the
		 * rest of the head (HEAD says 0: none of them is stored).
		 */
		if (keep && u->err == PF_OK) {
			memcpy(u->p->head, u->head, u->headlen);
			u->p->headlen = u->headlen;
		}
		*offset = u->p->headlen;
		pending_put(e->uploads, u->p,
		    session_state(s) != SESSION_RECEIVING);
	} else if (*offset == u->size && u->err == PF_OK && !u->partial)
		rc = complete(e, s);
	session_detach(s, false);
	pf_sha256_free(u->hash);
	session_unref(s);
	free(u);
	return rc;
}

enum pf_status
engine_upload_cancel(struct engine *e, const char *id, const char *user,
    bool *cancelled)
{
	struct engine_upload_info info;
	struct session *s;
	enum pf_status rc;
	bool dropped;

	/* Only tus's own: live, or finished (a stored file goes too). */
	if ((s = lookup(e, id, user)) == NULL && (rc = info_finished(e, id,
	    user, &info)) == PF_ENOSESSION)
		return rc;
	session_unref(s);
	rc = engine_remove_session(e, id, user, cancelled != NULL ?
	    cancelled : &dropped);
	/* Its first bytes held in memory go with it. */
	pending_prune(e->uploads);
	return rc;
}

/* Bytes copied at once from a part into the final upload. */
#define CONCAT_BUF	(1024 * 1024)

/*
 * Takes the nparts parts ids of user into parts (references), checking
 * each is a complete partial upload; their total size in *size.
 */
static enum pf_status
take_parts(struct engine *e, const char *user, const char *const *ids,
    size_t nparts, struct session **parts, uint64_t *size, char *why,
    size_t cap)
{
	for (size_t i = 0; i < nparts; i++) {
		struct session *s = lookup(e, ids[i], user);

		parts[i] = s;
		if (s == NULL || !partial_is(s)) {
			snprintf(why, cap, "no partial upload %s", ids[i]);
			return PF_ENOSESSION;
		}
		if (!session_ready(s) || session_held_prefix(s) !=
		    session_size(s)) {
			snprintf(why, cap, "partial upload %s is not "
			    "complete", ids[i]);
			return PF_EPROTO;
		}
		*size += session_size(s);
		if (*size < session_size(s)) {
			snprintf(why, cap, "the parts are too large together");
			return PF_ETOOLARGE;
		}
	}
	return PF_OK;
}

/* Writes the bytes of the parts in order into u. */
static enum pf_status
copy_parts(struct engine_upload *u, struct session **parts, size_t nparts,
    uint8_t *buf)
{
	enum pf_status rc;

	for (size_t i = 0; i < nparts; i++) {
		uint64_t size = session_size(parts[i]);

		for (uint64_t off = 0; off < size; off += CONCAT_BUF) {
			size_t k = size - off < CONCAT_BUF ?
			    (size_t)(size - off) : CONCAT_BUF;

			if ((rc = session_read_staged(parts[i], off, buf,
			    k)) != PF_OK || (rc = engine_upload_write(u, buf,
			    k)) != PF_OK)
				return rc;
		}
	}
	return PF_OK;
}

/*
 * Creates the final upload of n (size set) and copies the parts in;
 * *judged if their bytes were refused (not the name, say).
 */
static enum pf_status
concat_into(struct engine *e, const struct engine_upload_new *n,
    struct session **parts, size_t nparts, char id[ENGINE_ID_LEN + 1],
    char *why, size_t cap, bool *judged)
{
	struct engine_upload *u = NULL;
	uint64_t off = 0;
	uint8_t *buf;
	enum pf_status rc;

	if ((buf = malloc(CONCAT_BUF)) == NULL)
		return PF_EINTERNAL;
	if ((rc = engine_upload_create(e, n, id, why, cap)) != PF_OK ||
	    n->size == 0)
		goto out;
	if ((rc = engine_upload_begin(e, id, n->user, 0, false, &u, &off)) !=
	    PF_OK) {
		snprintf(why, cap, "%s", pf_status_message(rc));
		goto out;
	}
	if ((rc = copy_parts(u, parts, nparts, buf)) != PF_OK) {
		*judged = rc == PF_EFORBIDDEN;
		snprintf(why, cap, "%s", engine_upload_why(u)[0] ?
		    engine_upload_why(u) : pf_status_message(rc));
		engine_upload_end(u, false, &off);
		/* The final upload holds part of a refused file: it goes. */
		engine_upload_cancel(e, id, n->user, NULL);
		goto out;
	}
	if ((rc = engine_upload_end(u, true, &off)) == PF_OK &&
	    off != n->size)
		rc = PF_EIO;
	if (rc != PF_OK)
		snprintf(why, cap, "%s", pf_status_message(rc));
out:
	free(buf);
	return rc;
}

enum pf_status
engine_upload_concat(struct engine *e, const struct engine_upload_new *n,
    const char *const *ids, size_t nparts, char id[ENGINE_ID_LEN + 1],
    char *why, size_t cap)
{
	struct engine_upload_new fin = *n;
	struct session **parts;
	bool judged = false;
	enum pf_status rc;

	if ((parts = calloc(nparts ? nparts : 1, sizeof(*parts))) == NULL)
		return PF_EINTERNAL;
	fin.size = 0;
	fin.partial = false;
	if ((rc = take_parts(e, n->user, ids, nparts, parts, &fin.size, why,
	    cap)) != PF_OK)
		goto out;
	rc = concat_into(e, &fin, parts, nparts, id, why, cap, &judged);
	/*
	 * Copied, or their bytes refused: the parts are done with. Else (a
	 * cap, the space, the name) they stay for the final upload to be
	 * tried again.
	 */
	for (size_t i = 0; i < nparts && (rc == PF_OK || judged); i++)
		registry_end(e->registry, parts[i], rc == PF_OK ?
		    SESSION_CANCELLED : SESSION_FAILED, rc);
	if (rc == PF_OK) {
		finals_add(e->uploads, id, ids, nparts);
		log_info("upload %s is the concatenation of %zu parts", id,
		    nparts);
	}
out:
	for (size_t i = 0; i < nparts; i++)
		session_unref(parts[i]);
	free(parts);
	return rc;
}
