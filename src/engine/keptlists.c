/* SPDX-License-Identifier: MIT */
/* A few finished transfers' file lists, the least recently used replaced. */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keptlists.h"

#define KEPT_LISTS	4	/* transfers fetched at once, roughly */
#define KEPT_ID_MAX	64

struct kept {
	char		 id[KEPT_ID_MAX];
	json_t		*list;		/* NULL: a free slot */
	uint64_t	 used;		/* k->clock when last asked for */
};

struct kept_lists {
	pthread_mutex_t	 lock;
	struct kept	 slot[KEPT_LISTS];
	uint64_t	 clock;
};

struct kept_lists *
kept_lists_new(void)
{
	struct kept_lists *k = calloc(1, sizeof(*k));

	if (k != NULL)
		pthread_mutex_init(&k->lock, NULL);
	return k;
}

void
kept_lists_free(struct kept_lists *k)
{
	if (k == NULL)
		return;
	for (size_t i = 0; i < KEPT_LISTS; i++)
		json_decref(k->slot[i].list);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* id's slot, or NULL. Under k->lock. */
static struct kept *
find(struct kept_lists *k, const char *id)
{
	for (size_t i = 0; i < KEPT_LISTS; i++)
		if (k->slot[i].list != NULL && strcmp(k->slot[i].id, id) == 0)
			return &k->slot[i];
	return NULL;
}

json_t *
kept_lists_get(struct kept_lists *k, const char *id,
    json_t *(*load)(void *arg), void *arg)
{
	struct kept *s;
	json_t *list;

	if (strlen(id) >= KEPT_ID_MAX)
		return load(arg);
	pthread_mutex_lock(&k->lock);
	if ((s = find(k, id)) != NULL) {
		s->used = ++k->clock;
		list = json_incref(s->list);
		pthread_mutex_unlock(&k->lock);
		return list;
	}
	pthread_mutex_unlock(&k->lock);
	/* Loaded outside the lock: other transfers' requests go on. */
	if ((list = load(arg)) == NULL)
		return NULL;
	pthread_mutex_lock(&k->lock);
	if ((s = find(k, id)) == NULL) {
		s = &k->slot[0];
		for (size_t i = 1; i < KEPT_LISTS; i++)
			if (k->slot[i].used < s->used)
				s = &k->slot[i];
		json_decref(s->list);
		snprintf(s->id, sizeof(s->id), "%s", id);
		s->list = json_incref(list);
	} else {
		/* Another request loaded it meanwhile: one copy is kept. */
		json_decref(list);
		list = json_incref(s->list);
	}
	s->used = ++k->clock;
	pthread_mutex_unlock(&k->lock);
	return list;
}

void
kept_lists_drop(struct kept_lists *k, const char *id)
{
	struct kept *s;

	pthread_mutex_lock(&k->lock);
	if ((s = find(k, id)) != NULL) {
		json_decref(s->list);
		s->list = NULL;
		s->used = 0;
	}
	pthread_mutex_unlock(&k->lock);
}
