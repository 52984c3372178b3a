/* SPDX-License-Identifier: MIT */
/*
 * The rendered session lists: a list is rendered once per change, not
 * once per request. An entry holds the JSON of one view (a user's, or
 * the admins') and one query, with the generations it was rendered at;
 * a request at other generations renders again. A small table, replaced
 * least recently used first. Rendering again reuses the JSON of each
 * session that looks as it did (during an upload, all but one): a table
 * of those by id, emptied when full. Both under h->lists_lock.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "listcache.h"
#include "views.h"

/* A session's JSON, and the copy and rate it was rendered from. */
struct gw_frag {
	struct engine_session_info info;
	json_int_t		 rate;
	char			*text;
	size_t			 len;
};

/*
 * A rendered list, shared by the cache and the responses sending it:
 * the last reference frees it, in whichever thread lets go last.
 */
struct listcache_body {
	_Atomic unsigned	 refs;
	char			*text;
	size_t			 len;
};

struct gw_list {
	char			 key[LISTCACHE_KEY_MAX];
	size_t			 klen;
	struct listcache_gen	 gen;
	struct listcache_body	*body;
	uint64_t		 used;	/* h->lists_clock at the last use */
};

struct listcache_body *
listcache_body_new(char *text, size_t len)
{
	struct listcache_body *b;

	if ((b = malloc(sizeof(*b))) == NULL) {
		free(text);
		return NULL;
	}
	atomic_init(&b->refs, 1);
	b->text = text;
	b->len = len;
	return b;
}

void
listcache_body_unref(void *body)
{
	struct listcache_body *b = body;

	if (b == NULL || atomic_fetch_sub(&b->refs, 1) != 1)
		return;
	free(b->text);
	free(b);
}

struct MHD_Response *
listcache_response(struct listcache_body *b)
{
	struct MHD_Response *r;

	atomic_fetch_add(&b->refs, 1);
	/* MHD calls back when the last connection using r is done. */
	if ((r = MHD_create_response_from_buffer_with_free_callback_cls(
	    b->len, b->text, listcache_body_unref, b)) == NULL)
		listcache_body_unref(b);
	return r;
}

/* The entry of key, or NULL; h->lists_lock held. */
static struct gw_list *
find(struct httpd *h, const void *key, size_t klen)
{
	for (unsigned i = 0; i < GW_LIST_CACHE; i++) {
		struct gw_list *l = h->lists[i];

		if (l != NULL && l->klen == klen &&
		    memcmp(l->key, key, klen) == 0)
			return l;
	}
	return NULL;
}

struct MHD_Response *
listcache_get(struct httpd *h, const void *key, size_t klen,
    const struct listcache_gen *gen)
{
	struct listcache_body *b = NULL;
	struct MHD_Response *r;
	struct gw_list *l;

	pthread_mutex_lock(&h->lists_lock);
	if ((l = find(h, key, klen)) != NULL &&
	    l->gen.engine == gen->engine && l->gen.monitor == gen->monitor) {
		l->used = ++h->lists_clock;
		b = l->body;
		atomic_fetch_add(&b->refs, 1);
	}
	pthread_mutex_unlock(&h->lists_lock);
	if (b == NULL)
		return NULL;
	r = listcache_response(b);
	listcache_body_unref(b);
	return r;
}

void
listcache_put(struct httpd *h, const void *key, size_t klen,
    const struct listcache_gen *gen, struct listcache_body *body)
{
	struct listcache_body *old;
	struct gw_list *l, *victim = NULL;

	if (klen > LISTCACHE_KEY_MAX || body->len > LISTCACHE_BODY_MAX)
		return;
	pthread_mutex_lock(&h->lists_lock);
	if ((l = find(h, key, klen)) == NULL) {
		for (unsigned i = 0; i < GW_LIST_CACHE && l == NULL; i++) {
			if (h->lists[i] == NULL &&
			    (h->lists[i] = calloc(1, sizeof(*l))) != NULL)
				l = h->lists[i];
			else if (h->lists[i] != NULL && (victim == NULL ||
			    h->lists[i]->used < victim->used))
				victim = h->lists[i];
		}
		if (l == NULL)
			l = victim;
	}
	/*
	 * Two threads that rendered the same list at once: the later
	 * generations stay (an engine's never goes back).
	 */
	if (l == NULL || (l->klen == klen && memcmp(l->key, key, klen) == 0 &&
	    (l->gen.engine > gen->engine || (l->gen.engine == gen->engine &&
	    l->gen.monitor > gen->monitor)))) {
		pthread_mutex_unlock(&h->lists_lock);
		return;
	}
	memcpy(l->key, key, klen);
	l->klen = klen;
	l->gen = *gen;
	old = l->body;
	atomic_fetch_add(&body->refs, 1);
	l->body = body;
	l->used = ++h->lists_clock;
	pthread_mutex_unlock(&h->lists_lock);
	listcache_body_unref(old);
}

/* True if a list shows a and b the same (a field-wise ==). */
static bool
same_info(const struct engine_session_info *a,
    const struct engine_session_info *b)
{
	return a->state == b->state && a->error == b->error &&
	    a->size == b->size && a->chunk_size == b->chunk_size &&
	    a->chunks_total == b->chunks_total &&
	    a->chunks_acked == b->chunks_acked &&
	    a->chunks_nacked == b->chunks_nacked &&
	    a->chunks_resent == b->chunks_resent &&
	    a->streams == b->streams &&
	    a->bytes_received == b->bytes_received &&
	    a->created == b->created && a->updated == b->updated &&
	    a->finished == b->finished && strcmp(a->id, b->id) == 0 &&
	    strcmp(a->user, b->user) == 0 && strcmp(a->name, b->name) == 0 &&
	    strcmp(a->peer, b->peer) == 0 &&
	    strcmp(a->digest, b->digest) == 0;
}

/* The slot of id in h->frags: its entry's, or the empty one it goes in. */
static unsigned
frag_slot(const struct httpd *h, const char *id)
{
	uint32_t x = 2166136261u;	/* FNV-1a */
	unsigned i;

	for (const char *p = id; *p != '\0'; p++)
		x = (x ^ (uint8_t)*p) * 16777619u;
	for (i = x % GW_FRAGS; h->frags[i] != NULL; i = (i + 1) % GW_FRAGS)
		if (strcmp(h->frags[i]->info.id, id) == 0)
			break;
	return i;
}

static void
frags_clear(struct httpd *h)
{
	for (unsigned i = 0; i < GW_FRAGS; i++) {
		if (h->frags[i] != NULL)
			free(h->frags[i]->text);
		free(h->frags[i]);
		h->frags[i] = NULL;
	}
	h->nfrags = 0;
}

/*
 * The JSON of s at rate, rendered now, in the table in place of what
 * was kept of s; NULL if out of memory. h->lists_lock held.
 */
static struct gw_frag *
frag_render(struct httpd *h, const struct engine_session_info *s,
    json_int_t rate)
{
	json_t *j = views_session_json(s, (double)rate);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) :
	    NULL;
	struct gw_frag *f;
	unsigned i;

	json_decref(j);
	if (text == NULL)
		return NULL;
	/* Full (a table over 3/4 probes slowly): start again. */
	if (h->frags[i = frag_slot(h, s->id)] == NULL &&
	    h->nfrags >= GW_FRAGS / 4 * 3) {
		frags_clear(h);
		i = frag_slot(h, s->id);
	}
	if ((f = h->frags[i]) == NULL) {
		if ((f = calloc(1, sizeof(*f))) == NULL) {
			free(text);
			return NULL;
		}
		h->frags[i] = f;
		h->nfrags++;
	}
	free(f->text);
	f->info = *s;
	f->rate = rate;
	f->text = text;
	f->len = strlen(text);
	return f;
}

bool
listcache_session(struct httpd *h, const struct engine_session_info *s,
    double rate, struct pf_buf *b)
{
	/* The rate as the view shows it: whole bytes, while receiving. */
	json_int_t shown = s->state == ENGINE_RECEIVING ? (json_int_t)rate : 0;
	struct gw_frag *f;
	bool ok;

	pthread_mutex_lock(&h->lists_lock);
	f = h->frags[frag_slot(h, s->id)];
	if (f == NULL || f->rate != shown || !same_info(&f->info, s))
		f = frag_render(h, s, shown);
	ok = f != NULL && pf_buf_add(b, f->text, f->len);
	pthread_mutex_unlock(&h->lists_lock);
	return ok;
}

void
listcache_clear(struct httpd *h)
{
	for (unsigned i = 0; i < GW_LIST_CACHE; i++) {
		if (h->lists[i] != NULL)
			listcache_body_unref(h->lists[i]->body);
		free(h->lists[i]);
		h->lists[i] = NULL;
	}
	frags_clear(h);
}
