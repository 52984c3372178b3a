/* SPDX-License-Identifier: MIT */
/* A chunk's digest as its bytes stream: PFC1, or PFC2 over pieces. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chunkhash.h"

struct chunkhash {
	struct pf_sha256	*outer;		/* the chunk's digest */
	struct pf_sha256	*piece;		/* PFC2: the piece at pos */
	const struct proto_span	*spans;		/* NULL: PFC1 */
	size_t			 nspans, next;	/* the span at or after pos */
	uint64_t		 start, pos, end;	/* the chunk's bytes */
	uint64_t		 piece_end;	/* pos if no piece is open */
	uint32_t		 chunk_size;	/* of files' own chunks too */
	bool			 whole;		/* the open piece is an own
						   chunk of a file */
	uint32_t		 file, index;	/* ... this one */
	struct chunkhash_whole	*wholes;
	size_t			 nwholes, cap;
};

struct chunkhash *
chunkhash_new(void)
{
	struct chunkhash *h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	if ((h->outer = pf_sha256_new()) == NULL ||
	    (h->piece = pf_sha256_new()) == NULL) {
		chunkhash_free(h);
		return NULL;
	}
	return h;
}

void
chunkhash_free(struct chunkhash *h)
{
	if (h == NULL)
		return;
	pf_sha256_free(h->outer);
	pf_sha256_free(h->piece);
	free(h->wholes);
	free(h);
}

bool
proto_own_chunks_whole(uint64_t offset, uint64_t size, uint32_t chunk_size)
{
	return size > 0 && (offset % chunk_size == 0 ||
	    offset / chunk_size == (offset + size - 1) / chunk_size);
}

size_t
proto_span_after(const struct proto_span *spans, size_t n, uint64_t off)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (spans[mid].offset + spans[mid].size <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
by_offset(const void *a, const void *b)
{
	const struct proto_span *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

void
proto_spans_sort(struct proto_span *spans, size_t n)
{
	if (n > 1)
		qsort(spans, n, sizeof(*spans), by_offset);
}

enum pf_status
chunkhash_begin(struct chunkhash *h, const struct proto_chunk_head *c,
    uint32_t chunk_size, const struct proto_span *spans, size_t n)
{
	uint8_t head[PROTO_CHUNK_HEAD_LEN];
	enum pf_status rc;

	if (spans != NULL && chunk_size == 0)
		return PF_EBADFRAME;
	h->chunk_size = chunk_size;
	h->spans = spans;
	h->nspans = n;
	h->start = h->pos = h->piece_end = c->offset;
	h->end = c->offset + c->length;
	h->nwholes = 0;
	if (spans == NULL)
		return proto_chunk_digest_begin(h->outer, c);
	h->next = proto_span_after(spans, n, c->offset);
	proto_encode_chunk_head(c, head);
	if ((rc = pf_sha256_init(h->outer)) != PF_OK ||
	    (rc = pf_sha256_update(h->outer, "PFC2", 4)) != PF_OK)
		return rc;
	return pf_sha256_update(h->outer, head, sizeof(head));
}

/*
 * Opens the piece at h->pos: an own chunk of a file (the file cut alone)
 * wholly in the chunk, hashed as that own chunk so the file's receipt
 * can use it; or a part of one, or bytes no file covers (both hashed as
 * "PFP1" || bytes).
 */
static enum pf_status
open_piece(struct chunkhash *h)
{
	const struct proto_span *s;
	enum pf_status rc;

	while (h->next < h->nspans &&
	    h->spans[h->next].offset + h->spans[h->next].size <= h->pos)
		h->next++;
	s = h->next < h->nspans ? &h->spans[h->next] : NULL;
	h->whole = false;
	if (s == NULL || s->offset >= h->end)
		h->piece_end = h->end;
	else if (s->offset > h->pos)
		h->piece_end = s->offset;
	else {
		uint64_t j = (h->pos - s->offset) / h->chunk_size;
		uint64_t own = s->offset + j * h->chunk_size;
		uint64_t own_end = s->size - j * h->chunk_size >
		    h->chunk_size ? own + h->chunk_size : s->offset + s->size;

		h->piece_end = own_end < h->end ? own_end : h->end;
		h->whole = own == h->pos && own_end <= h->end;
		h->file = s->file;
		h->index = (uint32_t)j;
	}
	if (h->whole) {
		struct proto_chunk_head own = { h->index, (uint64_t)h->index *
		    h->chunk_size, (uint32_t)(h->piece_end - h->pos) };

		return proto_chunk_digest_begin(h->piece, &own);
	}
	if ((rc = pf_sha256_init(h->piece)) != PF_OK)
		return rc;
	return pf_sha256_update(h->piece, "PFP1", 4);
}

/* Closes the open piece: its digest joins the chunk's. */
static enum pf_status
close_piece(struct chunkhash *h)
{
	uint8_t d[PF_SHA256_LEN];
	enum pf_status rc;

	if ((rc = pf_sha256_final(h->piece, d)) != PF_OK)
		return rc;
	if (h->whole) {
		if (h->nwholes == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 64;
			struct chunkhash_whole *w = realloc(h->wholes,
			    cap * sizeof(*w));

			if (w == NULL)
				return PF_ENOMEM;
			h->wholes = w;
			h->cap = cap;
		}
		h->wholes[h->nwholes].file = h->file;
		h->wholes[h->nwholes].index = h->index;
		memcpy(h->wholes[h->nwholes++].digest, d, sizeof(d));
	}
	return pf_sha256_update(h->outer, d, sizeof(d));
}

enum pf_status
chunkhash_update(struct chunkhash *h, const void *p, size_t n)
{
	const uint8_t *b = p;
	enum pf_status rc;

	if (n > h->end - h->pos)
		return PF_EBADFRAME;
	if (h->spans == NULL) {
		h->pos += n;
		return pf_sha256_update(h->outer, p, n);
	}
	while (n > 0) {
		size_t take;

		if (h->piece_end == h->pos && (rc = open_piece(h)) != PF_OK)
			return rc;
		take = h->piece_end - h->pos < n ?
		    (size_t)(h->piece_end - h->pos) : n;
		if ((rc = pf_sha256_update(h->piece, b, take)) != PF_OK)
			return rc;
		b += take;
		n -= take;
		h->pos += take;
		if (h->pos == h->piece_end && (rc = close_piece(h)) != PF_OK)
			return rc;
	}
	return PF_OK;
}

enum pf_status
chunkhash_final(struct chunkhash *h, uint8_t out[PF_SHA256_LEN])
{
	if (h->pos != h->end)
		return PF_EBADFRAME;
	return pf_sha256_final(h->outer, out);
}

const struct chunkhash_whole *
chunkhash_wholes(const struct chunkhash *h, size_t *n)
{
	*n = h->nwholes;
	return h->wholes;
}
