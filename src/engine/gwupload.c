/* SPDX-License-Identifier: MIT */
/*
 * The gateway's door into the engine: uploads sent over HTTP (tus)
 * written into ordinary sessions, in order, at their durable offset.
 *
 * A session keeps its chunk map: such an upload uses the native client's
 * default chunk size, so its receipt is what `paraflow digest` prints.
 * Bytes are hashed and written as they come; a chunk is made durable
 * (data, then its journal record, by the session's committer) once it is
 * whole. HEAD tells the end of the chunks held from the start on. A
 * request may end inside a chunk (tus clients send pieces of any size):
 * that chunk stays claimed, and its answer tells where the next request
 * goes on (struct tail); the next one re-reads the staged start of the
 * chunk for its digest. A request sent from HEAD's offset instead
 * writes the chunk anew.
 *
 * A new upload has no first bytes yet, which the policy must judge
 * before anything is stored: it is created in the registry (its id, its
 * place in the caps), kept here as pending with its name, and opened
 * (staging area, metadata) by its first write, once that has them.
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

/* Chunks a write keeps on their way to disk while it reads on. */
#define UP_RING		4

/* A new upload waiting for its first bytes. */
struct pending {
	struct session	*s;		/* a reference */
	char		 name[PROTO_MAX_NAME + 1];	/* sanitized */
	char		*client_name;	/* as sent */
	size_t		 client_name_len;
	char		 peer[64];
	bool		 partial;	/* see PARTIAL_MARK */
	/* First bytes sent in short requests, held until they are judged. */
	uint8_t		 head[PROTO_HEAD_LEN];
	size_t		 headlen;
	struct pending	*next;
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
 * still claimed, for the next request to go on with. By id, as a
 * reference would keep an ended session's staging area.
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
	free(p->client_name);
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
 * Takes the pending entry of s out of g (the caller owns it then), or
 * NULL. Entries of sessions that ended meanwhile (the reaper expires
 * idle ones) are dropped on the way.
 */
static struct pending *
pending_take(struct gwup *g, struct session *s)
{
	struct pending **pp, *p, *found = NULL, *gone = NULL;

	pthread_mutex_lock(&g->lock);
	for (pp = &g->pending; (p = *pp) != NULL;) {
		if (p->s == s || session_state(p->s) != SESSION_RECEIVING) {
			*pp = p->next;
			if (p->s == s && found == NULL)
				found = p;
			else {
				p->next = gone;
				gone = p;
			}
			continue;
		}
		pp = &p->next;
	}
	pthread_mutex_unlock(&g->lock);
	while ((p = gone) != NULL) {
		gone = p->next;
		pending_free(p);
	}
	return found;
}

/* Puts p (owned by g from now on) back. */
static void
pending_put(struct gwup *g, struct pending *p)
{
	pthread_mutex_lock(&g->lock);
	p->next = g->pending;
	g->pending = p;
	pthread_mutex_unlock(&g->lock);
}

/* True if s is a partial upload (opened, or pending in g). */
static bool
partial_is(struct gwup *g, struct session *s)
{
	const char *name;
	struct pending *p;
	bool found = false;
	size_t len;

	if (session_ready(s)) {
		name = session_client_name(s, &len);
		return name != NULL && len >= PARTIAL_MARK_LEN &&
		    memcmp(name, PARTIAL_MARK, PARTIAL_MARK_LEN) == 0;
	}
	pthread_mutex_lock(&g->lock);
	for (p = g->pending; p != NULL && !found; p = p->next)
		found = p->s == s && p->partial;
	pthread_mutex_unlock(&g->lock);
	return found;
}

/* Checks n's name and size as control.c's OPEN does; sets p's names. */
static enum pf_status
check_new(struct engine *e, const struct engine_upload_new *n,
    struct pending *p, uint32_t *nchunks, char *why, size_t cap)
{
	uint64_t max = e->cfg.max_file_size;
	enum pf_status rc;
	size_t mark;

	if (n->namelen > POLICY_MAX_CLIENT_NAME || policy_sanitize_name(
	    n->name, n->namelen, p->name) != PF_OK) {
		snprintf(why, cap, "file name cannot be stored");
		return PF_EBADNAME;
	}
	if ((rc = policy_check_names(e->policy, n->name, n->namelen,
	    p->name, why, cap)) != PF_OK) {
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
	if ((p->client_name = malloc(mark + n->namelen + 1)) == NULL)
		return PF_EINTERNAL;
	memcpy(p->client_name, PARTIAL_MARK, mark);
	memcpy(p->client_name + mark, n->name, n->namelen);
	p->client_name[mark + n->namelen] = '\0';
	p->client_name_len = mark + n->namelen;
	snprintf(p->peer, sizeof(p->peer), "%s", n->peer);
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
 * Opens session s of pending upload p with its first headlen bytes,
 * after the policy judged them: the staging area is created only then.
 */
static enum pf_status
open_with_head(struct engine *e, struct pending *p, const uint8_t *head,
    size_t headlen, char *why, size_t cap)
{
	struct session_file f = { .name = p->name,
	    .client_name = p->client_name,
	    .client_name_len = p->client_name_len, .peer = p->peer,
	    .size = session_size(p->s), .chunk_size = PROTO_DEFAULT_CHUNK,
	    .head = head, .headlen = headlen };
	enum pf_status rc;

	/* A partial upload's head is judged in the final upload. */
	if (!p->partial && (rc = policy_check_head(e->policy, head, headlen,
	    why, cap)) != PF_OK) {
		log_info("%s: upload %s refused: %s", p->peer,
		    session_id(p->s), why);
		rc = rc == PF_EFORBIDDEN ? rc : PF_EINTERNAL;
		registry_end(e->registry, p->s, SESSION_FAILED, rc);
		return rc;
	}
	if ((rc = session_open(p->s, e->storage, &f)) != PF_OK) {
		snprintf(why, cap, "cannot stage %llu bytes",
		    (unsigned long long)session_size(p->s));
		registry_end(e->registry, p->s, SESSION_FAILED, rc);
		return rc;
	}
	log_info("%s: upload %s opened over HTTP by %s: \"%s\", %llu bytes, "
	    "%u chunks", p->peer, session_id(p->s), session_user(p->s),
	    session_name(p->s), (unsigned long long)session_size(p->s),
	    session_nchunks(p->s));
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
	struct pending *p;
	uint32_t nchunks = 0;
	enum pf_status rc;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return PF_EINTERNAL;
	if ((rc = check_new(e, n, p, &nchunks, why, cap)) != PF_OK ||
	    (rc = check_space(e, n->size, &ask.room, why, cap)) != PF_OK)
		goto out;
	if ((rc = registry_open(e->registry, nchunks, &ask, &p->s, why,
	    cap)) != PF_OK) {
		log_info("%s: upload of %llu bytes refused: %s", n->peer,
		    (unsigned long long)n->size, why);
		rc = rc == PF_ENOMEM ? PF_EINTERNAL : rc;
		goto out;
	}
	snprintf(id, ENGINE_ID_LEN + 1, "%s", session_id(p->s));
	p->partial = n->partial;
	if (n->size == 0 && n->partial) {
		rc = open_with_head(e, p, (const uint8_t *)"", 0, why, cap);
		goto out;
	}
	if (n->size == 0) {
		/* Nothing to wait for: judged, opened and stored now. */
		if ((rc = open_with_head(e, p, (const uint8_t *)"", 0, why,
		    cap)) == PF_OK)
			rc = complete(e, p->s);
		goto out;
	}
	pending_put(e->uploads, p);
	p = NULL;
out:
	pending_free(p);
	return rc;
}

/* A live session by id, if user (NULL: anyone) owns it; else NULL. */
static struct session *
lookup(struct engine *e, const char *id, const char *user)
{
	struct session *s;

	if (registry_lookup(e->registry, id, &s) != PF_OK)
		return NULL;
	if (user != NULL && strcmp(session_user(s), user) != 0) {
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

	if (engine_session(e, id, &si) != PF_OK ||
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
	enum pf_status rc;

	memset(out, 0, sizeof(*out));
	if ((s = lookup(e, id, user)) == NULL)
		return info_finished(e, id, user, out);
	/*
	 * All of it durable but not stored (the disk was full at the end):
	 * stored now, or the error, as the offset must not say it is done.
	 */
	if (session_ready(s) && session_state(s) == SESSION_RECEIVING &&
	    session_held_prefix(s) == session_size(s) &&
	    !partial_is(e->uploads, s)) {
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
	out->offset = session_ready(s) ? session_held_prefix(s) : 0;
	out->expires = si.updated + (int64_t)e->cfg.staging_ttl_s;
	out->partial = partial_is(e->uploads, s);
	snprintf(out->name, sizeof(out->name), "%s", session_name(s));
	session_unref(s);
	return PF_OK;
}

/*
 * The tail a request left in ready session s, for a write at off: gone
 * on with (true, in *t; *at is off then), or dropped if off is the
 * durable offset *at (its chunk is written anew), else kept.
 */
static bool
tail_resolve(struct engine *e, struct session *s, uint64_t off,
    uint64_t *at, struct tail *t)
{
	if (!session_ready(s) || !tail_take(e->uploads, s, t))
		return false;
	if (off == t->off) {
		*at = off;
		return true;
	}
	if (off != *at && tail_put(e, s, t->idx, t->off))
		return false;
	session_release_chunk(s, t->idx, false);
	return false;
}

/* Bytes read back at once to digest the start of a chunk gone on with. */
#define REHASH_BUF	(64 * 1024)

/*
 * Goes on with chunk idx, written from its start to u->off and claimed
 * by an earlier request: claimed by u now, its digest fed with what is
 * staged.
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

enum pf_status
engine_upload_begin(struct engine *e, const char *id, const char *user,
    uint64_t off, bool hold, struct engine_upload **out, uint64_t *durable)
{
	struct engine_upload_info info;
	struct pending *p = NULL;
	struct engine_upload *u;
	struct session *s;
	struct tail t = { .off = 0 };
	enum pf_status rc;
	bool resume;
	uint64_t at;

	*out = NULL;
	if ((s = lookup(e, id, user)) == NULL) {
		/* Finished: complete (at its size), or gone. */
		if ((rc = info_finished(e, id, user, &info)) == PF_ENOSESSION)
			return rc;
		*durable = info.offset;
		return rc == PF_OK ? PF_EPROTO : PF_ECANCELLED;
	}
	if (session_state(s) != SESSION_RECEIVING) {
		session_unref(s);
		return PF_EBUSY;
	}
	at = session_ready(s) ? session_held_prefix(s) : 0;
	resume = tail_resolve(e, s, off, &at, &t);
	/* Not ready: a new upload, whose first write opens it. */
	if (!session_ready(s) && (p = pending_take(e->uploads, s)) != NULL) {
		/* Its held first bytes: gone on from, or sent anew. */
		if (off == 0)
			p->headlen = 0;
		at = p->headlen;
	} else if (!session_ready(s)) {
		/* Another write is opening it. */
		session_unref(s);
		return PF_EBUSY;
	}
	if (off != at || (u = calloc(1, sizeof(*u))) == NULL) {
		if (p != NULL)
			pending_put(e->uploads, p);
		if (resume)
			session_release_chunk(s, t.idx, false);
		session_unref(s);
		*durable = at;
		return off != at ? PF_EPROTO : PF_EINTERNAL;
	}
	*u = (struct engine_upload){ .e = e, .s = s, .p = p, .hold = hold,
	    .off = 0, .size = session_size(s),
	    .cs = session_chunk_size(s) ? session_chunk_size(s) :
	    PROTO_DEFAULT_CHUNK, .hash = pf_sha256_new() };
	if (p != NULL) {
		memcpy(u->head, p->head, p->headlen);
		u->headlen = p->headlen;
	} else
		u->off = off;
	u->partial = p != NULL ? p->partial : partial_is(e->uploads, s);
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
	/* Claimed before the judgement: one write opens it. */
	if ((rc = chunk_enter(u)) != PF_OK)
		return rc;
	if ((rc = open_with_head(u->e, pe, u->head, want, u->why,
	    sizeof(u->why))) != PF_OK)
		return rc;
	u->p = NULL;
	pending_free(pe);
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
	bool tail = u->claimed && u->p == NULL && keep && u->err == PF_OK;
	enum pf_status rc = PF_OK;

	while (u->rn > 0)
		ring_pop(u);
	end_held(u, keep);
	*offset = session_ready(s) && session_state(s) == SESSION_RECEIVING ?
	    session_held_prefix(s) : 0;
	/* A chunk left unfinished after durable ones: the next goes on. */
	if (tail && *offset == (uint64_t)u->idx * u->cs &&
	    session_state(s) == SESSION_RECEIVING &&
	    tail_put(e, s, u->idx, u->off))
		*offset = u->off;
	else if (u->claimed)
		session_release_chunk(s, u->idx, false);
	if (u->p != NULL) {
		/*
		 * Not opened: the first bytes so far wait in memory for the
		 * rest of the head (HEAD says 0: none of them is durable).
		 */
		if (keep && u->err == PF_OK) {
			memcpy(u->p->head, u->head, u->headlen);
			u->p->headlen = u->headlen;
		}
		*offset = u->p->headlen;
		pending_put(e->uploads, u->p);
	} else if (*offset == u->size && u->err == PF_OK && !u->partial)
		rc = complete(e, s);
	session_detach(s, false);
	pf_sha256_free(u->hash);
	session_unref(s);
	free(u);
	return rc;
}

enum pf_status
engine_upload_cancel(struct engine *e, const char *id, const char *user)
{
	struct pending *p;
	struct session *s;
	bool cancelled;

	/* A new upload not opened yet is not shown, so not found there. */
	if ((s = lookup(e, id, user)) != NULL && !session_ready(s) &&
	    (p = pending_take(e->uploads, s)) != NULL) {
		registry_end(e->registry, s, SESSION_CANCELLED, PF_ECANCELLED);
		log_info("upload %s cancelled over HTTP before its first "
		    "byte", id);
		pending_free(p);
		session_unref(s);
		return PF_OK;
	}
	session_unref(s);
	return engine_remove_session(e, id, user, &cancelled);
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
		if (s == NULL || !partial_is(e->uploads, s)) {
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

/* Creates the final upload of n (size set) and copies the parts in. */
static enum pf_status
concat_into(struct engine *e, const struct engine_upload_new *n,
    struct session **parts, size_t nparts, char id[ENGINE_ID_LEN + 1],
    char *why, size_t cap)
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
		snprintf(why, cap, "%s", engine_upload_why(u)[0] ?
		    engine_upload_why(u) : pf_status_message(rc));
		engine_upload_end(u, false, &off);
		/* The final upload holds part of a refused file: it goes. */
		engine_upload_cancel(e, id, n->user);
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
	enum pf_status rc;

	if ((parts = calloc(nparts ? nparts : 1, sizeof(*parts))) == NULL)
		return PF_EINTERNAL;
	fin.size = 0;
	fin.partial = false;
	if ((rc = take_parts(e, n->user, ids, nparts, parts, &fin.size, why,
	    cap)) != PF_OK)
		goto out;
	rc = concat_into(e, &fin, parts, nparts, id, why, cap);
	/*
	 * Copied, or refused with the file: the parts are done with. Else
	 * (a cap, the space) they stay for the final upload to be tried
	 * again.
	 */
	for (size_t i = 0; i < nparts && (rc == PF_OK ||
	    rc == PF_EFORBIDDEN); i++)
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
