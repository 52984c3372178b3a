/* SPDX-License-Identifier: MIT */
/* A file's receipt, hashed in order from the bytes read to send it. */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "filesum.h"
#include "proto.h"

struct filesum {
	struct pf_sha256	*h;		/* the chunk being hashed */
	uint64_t		 size, done;	/* bytes hashed, in order */
	uint32_t		 chunk_size, count;
	uint8_t			*digests;	/* one per chunk */
	_Atomic bool		*set;		/* per chunk: filesum_put */
	_Atomic uint32_t	 put;		/* chunks put */
	bool			 dead, ready;
	char			 hex[PF_SHA256_HEX];
};

struct filesum *
filesum_new(uint64_t size, uint32_t chunk_size)
{
	struct filesum *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->size = size;
	s->chunk_size = chunk_size;
	if (!proto_chunk_size_valid(chunk_size) ||
	    proto_chunk_count(size, chunk_size, &s->count) != PF_OK)
		s->dead = true;
	else if ((s->digests = calloc((size_t)s->count + 1, PF_SHA256_LEN)) ==
	    NULL || (s->set = calloc((size_t)s->count + 1,
	    sizeof(*s->set))) == NULL) {
		filesum_free(s);
		return NULL;
	}
	return s;
}

void
filesum_free(struct filesum *s)
{
	if (s == NULL)
		return;
	pf_sha256_free(s->h);
	free(s->digests);
	free(s->set);
	free(s);
}

/* Ends the sum: the hash and digests are not needed any more. */
static void
finish(struct filesum *s, bool ready)
{
	uint8_t receipt[PF_SHA256_LEN];

	if (ready && proto_receipt(s->size, s->chunk_size, s->digests,
	    s->count, receipt) == PF_OK) {
		pf_hex_encode(receipt, sizeof(receipt), s->hex);
		s->ready = true;
	} else
		s->dead = true;
	pf_sha256_free(s->h);
	free(s->digests);
	s->h = NULL;
	s->digests = NULL;
}

void
filesum_add(struct filesum *s, const void *p, size_t n, uint64_t pos)
{
	const uint8_t *b = p;

	if (s->dead || s->ready || pos + n <= s->done)
		return;
	if (pos > s->done || pos + n > s->size ||
	    (s->h == NULL && (s->h = pf_sha256_new()) == NULL)) {
		finish(s, false);
		return;
	}
	b += s->done - pos;
	n -= (size_t)(s->done - pos);
	while (n > 0) {
		uint32_t i = (uint32_t)(s->done / s->chunk_size);
		struct proto_chunk_head ch = { i, (uint64_t)i * s->chunk_size,
		    proto_chunk_length(s->size, s->chunk_size, i) };
		uint64_t left = ch.offset + ch.length - s->done;
		size_t take = left < n ? (size_t)left : n;

		if ((s->done == ch.offset &&
		    proto_chunk_digest_begin(s->h, &ch) != PF_OK) ||
		    pf_sha256_update(s->h, b, take) != PF_OK) {
			finish(s, false);
			return;
		}
		b += take;
		n -= take;
		s->done += take;
		if (s->done == ch.offset + ch.length &&
		    pf_sha256_final(s->h, s->digests +
		    (size_t)i * PF_SHA256_LEN) != PF_OK) {
			finish(s, false);
			return;
		}
	}
	if (s->done == s->size)
		finish(s, true);
}

void
filesum_put(struct filesum *s, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN])
{
	/* Each chunk once: the last one in makes the receipt. */
	if (s->set == NULL || index >= s->count ||
	    atomic_exchange(&s->set[index], true))
		return;
	memcpy(s->digests + (size_t)index * PF_SHA256_LEN, digest,
	    PF_SHA256_LEN);
	if (atomic_fetch_add(&s->put, 1) + 1 == s->count)
		finish(s, true);
}

bool
filesum_hex(const struct filesum *s, char hex[PF_SHA256_HEX])
{
	if (!s->ready)
		return false;
	memcpy(hex, s->hex, PF_SHA256_HEX);
	return true;
}
