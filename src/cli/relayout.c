/* SPDX-License-Identifier: MIT */
/* A changed tree laid out over the payload it was interrupted in. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "proto.h"
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

/* Room left before a file moved to a chunk's start: [off, end). */
struct room {
	uint64_t	 off, end;
};

/*
 * At most this share of an aligned payload may be dead bytes (sent,
 * never stored); past it the files stay back to back. A large file
 * aligned saves hashing and reading it again on each side, a dead byte
 * costs sending it: a little of the link for much of the CPU.
 */
#define ALIGN_DEAD_SHARE	64

/* Rooms a small file may look at past the first not filled: bounded,
   or many rooms too small to fill would make placing quadratic. */
#define ALIGN_ROOMS_SEEN	64

/*
 * Places t's files in manifest order, each of chunk_size bytes or more
 * at the next chunk's start, each smaller one in the first room left so
 * that fits, else next; returns the dead bytes (rooms not filled), or
 * UINT64_MAX on ENOMEM.
 */
static uint64_t
place_aligned(struct tree *t, uint32_t chunk_size, size_t nbig)
{
	struct room *rooms = calloc(nbig + 1, sizeof(*rooms));
	uint64_t next = 0, dead = 0;
	size_t nrooms = 0, first = 0;

	if (rooms == NULL)
		return UINT64_MAX;
	for (size_t i = 0; i < t->n; i++) {
		struct tree_entry *e = &t->e[i];
		size_t r = first;

		if (e->dir)
			continue;
		if (e->size >= chunk_size && next % chunk_size != 0) {
			rooms[nrooms].off = next;
			next = (next / chunk_size + 1) * chunk_size;
			rooms[nrooms++].end = next;
		}
		if (e->size < chunk_size)
			while (r < nrooms && r - first < ALIGN_ROOMS_SEEN &&
			    rooms[r].end - rooms[r].off < e->size)
				r++;
		if (r - first == ALIGN_ROOMS_SEEN)
			r = nrooms;
		if (e->size < chunk_size && r < nrooms) {
			e->offset = rooms[r].off;
			rooms[r].off += e->size;
		} else {
			e->offset = next;
			next += e->size;
		}
		/* Rooms filled up are not searched again. */
		while (first < nrooms && rooms[first].off == rooms[first].end)
			first++;
	}
	for (size_t r = 0; r < nrooms; r++)
		dead += rooms[r].end - rooms[r].off;
	free(rooms);
	t->total = next;
	return dead;
}

enum pf_status
relayout_align(struct tree *t, uint32_t chunk_size)
{
	uint64_t dead;
	uint32_t count;
	size_t nbig = 0;
	bool moved = false;

	for (size_t i = 0; i < t->n; i++)
		if (!t->e[i].dir && t->e[i].size >= chunk_size) {
			nbig++;
			moved |= t->e[i].offset % chunk_size != 0;
		}
	if (!moved)
		return PF_OK;
	if ((dead = place_aligned(t, chunk_size, nbig)) == UINT64_MAX)
		return PF_ENOMEM;
	/* Nor may the dead bytes take it past the chunks a session has. */
	if (dead > t->total / ALIGN_DEAD_SHARE ||
	    proto_chunk_count(t->total, chunk_size, &count) != PF_OK)
		return relayout_compact(t);
	t->placed = true;
	return tree_index(t);
}
