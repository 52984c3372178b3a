/* SPDX-License-Identifier: MIT */
/* A changed tree laid out over the payload it was interrupted in. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "relayout.h"

/* A file of the old layout. */
struct old_file {
	const char	*path;
	uint64_t	 size, offset;
	int64_t		 mtime;
	json_int_t	 stamp;		/* tree_stamps', or -1: unknown */
};

static int
path_cmp(const void *a, const void *b)
{
	return strcmp(((const struct old_file *)a)->path,
	    ((const struct old_file *)b)->path);
}

/*
 * The files of old into a new array of *n, sorted by path, each checked
 * to lie within size. NULL if malformed or out of memory.
 */
static struct old_file *
read_old(const json_t *old, const json_t *stamps, uint64_t size, size_t *n)
{
	struct old_file *v = calloc(json_array_size(old) + 1, sizeof(*v));
	uint64_t next = 0;
	size_t i, k = 0;
	json_t *e;

	if (v == NULL || !json_is_array(old))
		goto bad;
	json_array_foreach(old, i, e) {
		json_t *off = json_object_get(e, "offset");
		json_int_t sz, mt;
		const char *path;

		if (json_is_true(json_object_get(e, "dir")))
			continue;
		if (json_unpack(e, "{s:s,s:I,s:I}", "path", &path, "size", &sz,
		    "mtime", &mt) == -1 || sz < 0 || (off != NULL &&
		    (!json_is_integer(off) || json_integer_value(off) < 0)))
			goto bad;
		v[k].path = path;
		v[k].size = (uint64_t)sz;
		v[k].mtime = (int64_t)mt;
		v[k].stamp = json_is_integer(json_array_get(stamps, i)) ?
		    json_integer_value(json_array_get(stamps, i)) : -1;
		v[k].offset = off != NULL ? (uint64_t)json_integer_value(off) :
		    next;
		if (v[k].offset > size || v[k].size > size - v[k].offset)
			goto bad;
		next = v[k].offset + v[k].size;
		k++;
	}
	qsort(v, k, sizeof(*v), path_cmp);
	*n = k;
	return v;
bad:
	free(v);
	return NULL;
}

enum pf_status
relayout_amend(struct tree *t, const json_t *old, const json_t *old_stamps,
    uint64_t old_size)
{
	struct old_file *v, key, *hit;
	json_t *stamps = tree_stamps(t);
	uint64_t next = old_size;
	size_t n;

	if (stamps == NULL)
		return PF_ENOMEM;
	if ((v = read_old(old, old_stamps, old_size, &n)) == NULL) {
		json_decref(stamps);
		return PF_EBADFRAME;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct tree_entry *e = &t->e[i];

		if (e->dir)
			continue;
		key.path = e->rel;
		hit = bsearch(&key, v, n, sizeof(*v), path_cmp);
		if (hit != NULL && hit->size == e->size && hit->mtime ==
		    e->mtime && (hit->stamp == -1 || hit->stamp ==
		    json_integer_value(json_array_get(stamps, i)))) {
			e->offset = hit->offset;
			continue;
		}
		/* Changed or new: its bytes are sent, past the old end. */
		e->offset = next;
		next += e->size;
	}
	free(v);
	json_decref(stamps);
	t->total = next;
	t->placed = true;
	return tree_index(t);
}

enum pf_status
relayout_compact(struct tree *t)
{
	t->total = 0;
	for (size_t i = 0; i < t->n; i++) {
		t->e[i].offset = t->total;
		t->total += t->e[i].size;
	}
	t->placed = false;
	return tree_index(t);
}
