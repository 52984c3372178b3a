/* SPDX-License-Identifier: MIT */
/*
 * A few finished transfers' file lists, the least recently used replaced,
 * each with its entries sorted by path for lookups.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keptlists.h"

#define KEPT_LISTS	4	/* transfers fetched at once, roughly */
#define KEPT_ID_MAX	64

/* An entry's path (borrowed from its list) and its index there. */
struct kept_path {
	const char	*path;
	size_t		 i;
};

struct kept {
	char		 id[KEPT_ID_MAX];
	json_t		*list;		/* NULL: a free slot */
	struct kept_path *paths;	/* sorted by path */
	size_t		 npaths;
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
	for (size_t i = 0; i < KEPT_LISTS; i++) {
		json_decref(k->slot[i].list);
		free(k->slot[i].paths);
	}
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

static int
path_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kept_path *)a)->path,
	    ((const struct kept_path *)b)->path);
}

/* The entries of list with a path, sorted by it; NULL on ENOMEM. */
static struct kept_path *
index_paths(const json_t *list, size_t *n)
{
	struct kept_path *paths = malloc((json_array_size(list) + 1) *
	    sizeof(*paths));
	const json_t *e;
	size_t i;

	*n = 0;
	if (paths == NULL)
		return NULL;
	json_array_foreach(list, i, e) {
		const char *p = json_string_value(json_object_get(e, "path"));

		if (p != NULL)
			paths[(*n)++] = (struct kept_path){ p, i };
	}
	qsort(paths, *n, sizeof(*paths), path_cmp);
	return paths;
}

/* The entry of list named path: a binary search of paths, or a walk. */
static const json_t *
entry_of(const json_t *list, const struct kept_path *paths, size_t n,
    const char *path)
{
	struct kept_path key = { path, 0 };
	const struct kept_path *hit;
	const json_t *e;
	size_t i;

	if (paths != NULL) {
		hit = bsearch(&key, paths, n, sizeof(*paths), path_cmp);
		return hit != NULL ? json_array_get(list, hit->i) : NULL;
	}
	json_array_foreach(list, i, e) {
		const char *p = json_string_value(json_object_get(e, "path"));

		if (p != NULL && strcmp(p, path) == 0)
			return e;
	}
	return NULL;
}

const json_t *
kept_lists_find(struct kept_lists *k, const char *id, const char *path,
    json_t *(*load)(void *arg), void *arg, json_t **listp)
{
	struct kept_path *paths;
	const json_t *e;
	struct kept *s;
	json_t *list;
	size_t n;

	*listp = NULL;
	if (strlen(id) >= KEPT_ID_MAX) {
		if ((*listp = load(arg)) == NULL)
			return NULL;
		return entry_of(*listp, NULL, 0, path);
	}
	pthread_mutex_lock(&k->lock);
	if ((s = find(k, id)) != NULL)
		goto found;
	pthread_mutex_unlock(&k->lock);
	/* Loaded and sorted outside the lock: other transfers go on. */
	if ((list = load(arg)) == NULL)
		return NULL;
	paths = index_paths(list, &n);
	pthread_mutex_lock(&k->lock);
	if ((s = find(k, id)) == NULL) {
		s = &k->slot[0];
		for (size_t i = 1; i < KEPT_LISTS; i++)
			if (k->slot[i].used < s->used)
				s = &k->slot[i];
		json_decref(s->list);
		free(s->paths);
		snprintf(s->id, sizeof(s->id), "%s", id);
		s->list = list;
		s->paths = paths;
		s->npaths = n;
	} else {
		/* Another request loaded it meanwhile: one copy is kept. */
		json_decref(list);
		free(paths);
	}
found:
	s->used = ++k->clock;
	*listp = json_incref(s->list);
	e = entry_of(s->list, s->paths, s->npaths, path);
	pthread_mutex_unlock(&k->lock);
	return e;
}

void
kept_lists_drop(struct kept_lists *k, const char *id)
{
	struct kept *s;

	pthread_mutex_lock(&k->lock);
	if ((s = find(k, id)) != NULL) {
		json_decref(s->list);
		free(s->paths);
		s->list = NULL;
		s->paths = NULL;
		s->used = 0;
	}
	pthread_mutex_unlock(&k->lock);
}
