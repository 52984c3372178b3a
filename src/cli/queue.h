/* SPDX-License-Identifier: MIT */
/*
 * The chunk board of one upload: for every chunk, whether it waits to be
 * sent, is in flight on one data connection, or is done (acknowledged to
 * this process, or held by the server already). Shared by the workers.
 */
#ifndef PF_QUEUE_H
#define PF_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"

struct chunk_queue;

/* What queue_nack decided about a chunk the server asked for again. */
enum queue_nack {
	QUEUE_NACK_RETRY,	/* counted against the limit; send again */
	QUEUE_NACK_FORGIVEN,	/* maybe still held by a lost connection */
	QUEUE_NACK_EXHAUSTED	/* the retry limit is used up */
};

/*
 * A board for a file of size bytes in count chunks of chunk_size, every
 * chunk queued in index order. NULL on ENOMEM. Free with queue_free.
 */
struct chunk_queue *queue_new(uint64_t size, uint32_t chunk_size,
    uint32_t count);

/* Frees q. NULL is a no-op. No thread may be using q any more. */
void queue_free(struct chunk_queue *q);

/*
 * Takes in what the server reports it holds: have is a bitmap of
 * ceil(count / 8) bytes (bit i % 8 of byte i / 8 is chunk i), borrowed.
 *
 * fresh: a new server session. Every chunk becomes queued in index order
 * unless have holds it; nothing may be in flight (stop and join the
 * workers first), and a stop (queue_stop) is lifted.
 *
 * Otherwise the same session again: queued chunks that have holds are
 * taken off the queue; chunks in flight stay with their connection (the
 * server answers them with ACK), and acknowledged chunks stay done, so a
 * chunk acknowledged to us is never sent again.
 *
 * Returns how many chunks became done through have.
 */
uint32_t queue_load_have(struct chunk_queue *q, const uint8_t *have,
    bool fresh);

/*
 * Takes the next queued chunk and marks it in flight for the caller, who
 * then owns it until it hands it back (queue_ack, queue_requeue). With
 * wait, blocks while nothing is queued but some chunks are still in flight
 * elsewhere (they may come back). Returns -1 when there is nothing to take
 * now (without wait), every chunk is done, or the queue is stopped.
 */
int64_t queue_pop(struct chunk_queue *q, bool wait);

/*
 * Puts chunk idx, in flight for the caller, back at the end of the queue.
 * orphan says its connection was lost while it was in flight: the server
 * may still be receiving it for a while, see queue_nack.
 */
void queue_requeue(struct chunk_queue *q, uint32_t idx, bool orphan);

/*
 * Chunk idx, in flight for the caller, was acknowledged. Returns true if
 * it was the last chunk not done.
 */
bool queue_ack(struct chunk_queue *q, uint32_t idx);

/*
 * Chunk idx, in flight for the caller, was NACKed; it stays in flight for
 * the caller, who requeues it unless the limit is reached. A NACK within
 * grace_ms of the chunk's connection being lost is forgiven (the server
 * NACKs a chunk another connection, maybe a dead one, is receiving); any
 * other counts against retries. *count receives the NACKs of that kind.
 */
enum queue_nack queue_nack(struct chunk_queue *q, uint32_t idx,
    unsigned retries, uint64_t grace_ms, unsigned *count);

/* Makes queue_pop return -1 and wakes every waiter. */
void queue_stop(struct chunk_queue *q);

/* True when every chunk is done. */
bool queue_all_done(struct chunk_queue *q);

/* How many chunks are not done (queued or in flight). */
uint32_t queue_left(struct chunk_queue *q);

/* Chunks done because the server held them (see queue_load_have). */
uint32_t queue_held(struct chunk_queue *q);

/*
 * Writes the bitmap of the chunks done through have into out (ceil(count /
 * 8) bytes): the chunks whose digest this process may not have computed.
 */
void queue_held_bitmap(struct chunk_queue *q, uint8_t *out);

/* The same for every chunk done: held, or acknowledged to this process. */
void queue_done_bitmap(struct chunk_queue *q, uint8_t *out);

/* Bytes of the chunks done, for a progress bar; borrowed from q. */
const _Atomic uint64_t *queue_done_bytes(const struct chunk_queue *q);

/* True if bit idx of the bitmap map is set. */
bool queue_bit(const uint8_t *map, uint32_t idx);

#endif
