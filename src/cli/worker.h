/* SPDX-License-Identifier: MIT */
/*
 * The workers of an upload: threads that each make a data connection,
 * join the session and send chunks from the queue, WINDOW at a time,
 * until every chunk is acknowledged; lost connections are made again.
 * How many run is the supervisor's choice (j->target), and may change.
 */
#ifndef PF_WORKER_H
#define PF_WORKER_H

#include "job.h"

/* A fixed number of worker slots for one upload. */
struct worker_pool;

/*
 * A pool of n slots working for j (borrowed; it outlives the pool), with
 * no thread started yet. NULL on ENOMEM. Supervisor only.
 */
struct worker_pool *worker_pool_new(struct job *j, unsigned n);

/*
 * Joins the threads that have ended, then starts workers in the free
 * slots until j->target are active (not retiring), or as many as chunks
 * are left. Workers over j->target retire by themselves: each finishes
 * the chunks it has in flight and ends. Fails the job if none can run.
 * Supervisor only.
 */
void worker_pool_spawn(struct worker_pool *p);

/*
 * Makes every worker end: sets j->stopping and shuts their connections
 * down so that none waits out a timeout. Returns when all have; the
 * chunks they had in flight are back in the queue. Supervisor only.
 */
void worker_pool_stop(struct worker_pool *p);

/*
 * The bytes the server's TCP has acknowledged on every data connection
 * of the pool so far, closed ones included: a goodput that grows
 * smoothly. Supervisor only.
 */
uint64_t worker_pool_delivered(struct worker_pool *p);

/* Streams wanted that have not joined the session yet. */
unsigned worker_pool_joining(struct worker_pool *p);

/* Stops the workers and frees the pool; NULL is a no-op. */
void worker_pool_free(struct worker_pool *p);

#endif
