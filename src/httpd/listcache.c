/* SPDX-License-Identifier: MIT */
/*
 * The rendered session lists: a list is rendered once per change, not
 * once per request. An entry holds the JSON of one view (a user's, or
 * the admins') and one query, with the generations it was rendered at;
 * a request at other generations renders again. A small table, replaced
 * least recently used first, under its own lock.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "listcache.h"

struct gw_list {
	char			 key[LISTCACHE_KEY_MAX];
	size_t			 klen;
	struct listcache_gen	 gen;
	char			*body;
	size_t			 len;
	uint64_t		 used;	/* h->lists_clock at the last use */
};

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
	struct MHD_Response *r = NULL;
	struct gw_list *l;

	pthread_mutex_lock(&h->lists_lock);
	if ((l = find(h, key, klen)) != NULL &&
	    l->gen.engine == gen->engine && l->gen.monitor == gen->monitor) {
		l->used = ++h->lists_clock;
		r = MHD_create_response_from_buffer(l->len, l->body,
		    MHD_RESPMEM_MUST_COPY);
	}
	pthread_mutex_unlock(&h->lists_lock);
	return r;
}

void
listcache_put(struct httpd *h, const void *key, size_t klen,
    const struct listcache_gen *gen, const char *body, size_t len)
{
	struct gw_list *l, *victim = NULL;
	char *copy;

	if (klen > LISTCACHE_KEY_MAX || len > LISTCACHE_BODY_MAX ||
	    (copy = malloc(len ? len : 1)) == NULL)
		return;
	memcpy(copy, body, len);
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
		free(copy);
		return;
	}
	memcpy(l->key, key, klen);
	l->klen = klen;
	l->gen = *gen;
	free(l->body);
	l->body = copy;
	l->len = len;
	l->used = ++h->lists_clock;
	pthread_mutex_unlock(&h->lists_lock);
}

void
listcache_clear(struct httpd *h)
{
	for (unsigned i = 0; i < GW_LIST_CACHE; i++) {
		if (h->lists[i] != NULL)
			free(h->lists[i]->body);
		free(h->lists[i]);
		h->lists[i] = NULL;
	}
}
