/* SPDX-License-Identifier: MIT */
/* The chunk board: a FIFO of chunks to send and the state of every chunk. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "net.h"
#include "proto.h"
#include "queue.h"

enum state {
	QUEUED,		/* in the ring, waiting for a connection */
	INFLIGHT,	/* owned by one worker */
	ACKED,		/* acknowledged to this process */
	HELD		/* the server reported it in "have" */
};

struct chunk {
	uint8_t		 state;
	uint8_t		 forgiven;	/* NACKs forgiven, for the caller */
	uint16_t	 tries;		/* NACKs counted */
	uint32_t	 orphaned;	/* ms since born + 1 when lost, or 0 */
};

struct chunk_queue {
	pthread_mutex_t	 lock;
	pthread_cond_t	 changed;
	struct chunk	*chunks;
	/*
	 * Every chunk is in the ring at most once (only a QUEUED chunk is),
	 * so a ring of count slots never overflows.
	 */
	uint32_t	*ring;
	uint32_t	 cap, head, len;
	uint32_t	 count, done, held;
	uint64_t	 size;
	uint32_t	 chunk_size;
	uint64_t	 born_ms;
	bool		 stopped;
	_Atomic uint64_t done_bytes;
};

bool
queue_bit(const uint8_t *map, uint32_t idx)
{
	return (map[idx / 8] >> (idx % 8)) & 1;
}

static uint64_t
chunk_bytes(const struct chunk_queue *q, uint32_t idx)
{
	return proto_chunk_length(q->size, q->chunk_size, idx);
}

struct chunk_queue *
queue_new(uint64_t size, uint32_t chunk_size, uint32_t count)
{
	struct chunk_queue *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->cap = count ? count : 1;
	q->chunks = calloc(q->cap, sizeof(*q->chunks));
	q->ring = calloc(q->cap, sizeof(*q->ring));
	if (q->chunks == NULL || q->ring == NULL) {
		free(q->chunks);
		free(q->ring);
		free(q);
		return NULL;
	}
	for (uint32_t i = 0; i < count; i++)
		q->ring[i] = i;
	q->len = q->count = count;
	q->size = size;
	q->chunk_size = chunk_size;
	q->born_ms = pf_now_ms();
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->changed, NULL);
	return q;
}

void
queue_free(struct chunk_queue *q)
{
	if (q == NULL)
		return;
	pthread_cond_destroy(&q->changed);
	pthread_mutex_destroy(&q->lock);
	free(q->chunks);
	free(q->ring);
	free(q);
}

/* Puts idx at the end of the ring. Called with the lock held. */
static void
push(struct chunk_queue *q, uint32_t idx)
{
	q->chunks[idx].state = QUEUED;
	q->ring[(q->head + q->len) % q->cap] = idx;
	q->len++;
}

uint32_t
queue_load_have(struct chunk_queue *q, const uint8_t *have, bool fresh)
{
	uint32_t got = 0;
	uint64_t bytes = 0;

	pthread_mutex_lock(&q->lock);
	/* The ring is rebuilt in index order, without the chunks held. */
	q->head = q->len = 0;
	if (fresh) {
		q->done = q->held = 0;
		q->stopped = false;
	}
	for (uint32_t i = 0; i < q->count; i++) {
		struct chunk *c = &q->chunks[i];
		bool has = queue_bit(have, i);

		if (fresh)
			memset(c, 0, sizeof(*c));
		else if (c->state == ACKED && !has)
			/*
			 * An ACK promises durability; sending the chunk again
			 * would hide a server that broke that promise, and
			 * COMMIT will report the chunk missing instead.
			 */
			log_warn("the server no longer holds chunk %u, "
			    "which it acknowledged", i);
		if (c->state == ACKED || c->state == HELD) {
			bytes += chunk_bytes(q, i);
			continue;
		}
		if (c->state == INFLIGHT)
			continue;
		if (has) {
			c->state = HELD;
			q->done++;
			q->held++;
			got++;
			bytes += chunk_bytes(q, i);
		} else
			push(q, i);
	}
	atomic_store(&q->done_bytes, bytes);
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
	return got;
}

int64_t
queue_pop(struct chunk_queue *q, bool wait)
{
	int64_t idx = -1;

	pthread_mutex_lock(&q->lock);
	while (wait && q->len == 0 && !q->stopped && q->done < q->count)
		pthread_cond_wait(&q->changed, &q->lock);
	if (q->len > 0 && !q->stopped) {
		idx = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		q->chunks[idx].state = INFLIGHT;
	}
	pthread_mutex_unlock(&q->lock);
	return idx;
}

void
queue_requeue(struct chunk_queue *q, uint32_t idx, bool orphan)
{
	struct chunk *c = &q->chunks[idx];

	pthread_mutex_lock(&q->lock);
	if (c->state == INFLIGHT) {
		if (orphan && c->orphaned == 0)
			c->orphaned = (uint32_t)(pf_now_ms() - q->born_ms + 1);
		push(q, idx);
		pthread_cond_broadcast(&q->changed);
	}
	pthread_mutex_unlock(&q->lock);
}

bool
queue_ack(struct chunk_queue *q, uint32_t idx)
{
	struct chunk *c = &q->chunks[idx];
	bool last = false;

	pthread_mutex_lock(&q->lock);
	if (c->state == INFLIGHT) {
		c->state = ACKED;
		c->orphaned = 0;
		q->done++;
		atomic_fetch_add(&q->done_bytes, chunk_bytes(q, idx));
		if (q->done == q->count) {
			last = true;
			pthread_cond_broadcast(&q->changed);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return last;
}

enum queue_nack
queue_nack(struct chunk_queue *q, uint32_t idx, unsigned retries,
    uint64_t grace_ms, unsigned *count)
{
	struct chunk *c = &q->chunks[idx];
	enum queue_nack verdict;

	pthread_mutex_lock(&q->lock);
	if (c->orphaned != 0 &&
	    pf_now_ms() - q->born_ms + 1 - c->orphaned < grace_ms) {
		if (c->forgiven < UINT8_MAX)
			c->forgiven++;
		*count = c->forgiven;
		verdict = QUEUE_NACK_FORGIVEN;
	} else {
		if (c->tries < UINT16_MAX)
			c->tries++;
		*count = c->tries;
		verdict = c->tries > retries ? QUEUE_NACK_EXHAUSTED :
		    QUEUE_NACK_RETRY;
	}
	pthread_mutex_unlock(&q->lock);
	return verdict;
}

void
queue_stop(struct chunk_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stopped = true;
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
}

bool
queue_all_done(struct chunk_queue *q)
{
	return queue_left(q) == 0;
}

uint32_t
queue_left(struct chunk_queue *q)
{
	uint32_t left;

	pthread_mutex_lock(&q->lock);
	left = q->count - q->done;
	pthread_mutex_unlock(&q->lock);
	return left;
}

uint32_t
queue_held(struct chunk_queue *q)
{
	uint32_t held;

	pthread_mutex_lock(&q->lock);
	held = q->held;
	pthread_mutex_unlock(&q->lock);
	return held;
}

/* The bitmap of the chunks held, and of those acknowledged with acked. */
static void
bitmap(struct chunk_queue *q, uint8_t *out, bool acked)
{
	pthread_mutex_lock(&q->lock);
	memset(out, 0, ((size_t)q->count + 7) / 8);
	for (uint32_t i = 0; i < q->count; i++)
		if (q->chunks[i].state == HELD ||
		    (acked && q->chunks[i].state == ACKED))
			out[i / 8] |= (uint8_t)(1u << (i % 8));
	pthread_mutex_unlock(&q->lock);
}

void
queue_held_bitmap(struct chunk_queue *q, uint8_t *out)
{
	bitmap(q, out, false);
}

void
queue_done_bitmap(struct chunk_queue *q, uint8_t *out)
{
	bitmap(q, out, true);
}

const _Atomic uint64_t *
queue_done_bytes(const struct chunk_queue *q)
{
	return &q->done_bytes;
}
