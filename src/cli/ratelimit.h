/* SPDX-License-Identifier: MIT */
/*
 * The --limit-rate token bucket: one for the whole upload, shared by all
 * its streams, so the limit holds however many there are.
 */
#ifndef PF_RATELIMIT_H
#define PF_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/*
 * A bucket letting rate bytes a second through (rate >= 1), starting now.
 * NULL on ENOMEM. Free with ratelimit_free (NULL is a no-op).
 */
struct ratelimit *ratelimit_new(uint64_t rate);
void ratelimit_free(struct ratelimit *rl);

/*
 * The most a caller should take at once: about 1/16 s of the rate, so
 * that streams take turns finely. NULL rl: SIZE_MAX.
 */
size_t ratelimit_slice(const struct ratelimit *rl);

/*
 * Reserves n bytes and sleeps until they may go. Any thread; a NULL rl
 * returns at once.
 */
void ratelimit_take(struct ratelimit *rl, size_t n);

#endif
