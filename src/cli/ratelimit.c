/* SPDX-License-Identifier: MIT */
/*
 * A shared token bucket, kept as the time its reservations run up to
 * (GCRA): each caller moves that time on by n / rate and sleeps until it
 * is at most BURST ahead of now. Idle time earns at most BURST of credit,
 * so a stream that pauses cannot send a flood afterwards.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "ratelimit.h"

#define BURST_US	50000	/* credit an idle bucket may hold */
#define SLICE_MIN	1024
#define SLICE_MAX	(64 * 1024)

struct ratelimit {
	pthread_mutex_t	 lock;
	uint64_t	 rate;		/* bytes a second */
	uint64_t	 next_us;	/* reservations run up to here */
};

struct ratelimit *
ratelimit_new(uint64_t rate)
{
	struct ratelimit *rl;

	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return NULL;
	pthread_mutex_init(&rl->lock, NULL);
	rl->rate = rate > 0 ? rate : 1;
	rl->next_us = pf_now_us();
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl);
}

size_t
ratelimit_slice(const struct ratelimit *rl)
{
	uint64_t s;

	if (rl == NULL)
		return SIZE_MAX;
	s = rl->rate / 16;
	return s < SLICE_MIN ? SLICE_MIN : s > SLICE_MAX ? SLICE_MAX : s;
}

void
ratelimit_take(struct ratelimit *rl, size_t n)
{
	uint64_t now, until;
	struct timespec ts;

	if (rl == NULL || n == 0)
		return;
	pthread_mutex_lock(&rl->lock);
	now = pf_now_us();
	if (rl->next_us + BURST_US < now)
		rl->next_us = now - BURST_US;
	/* In a double: n * 1e6 may not fit in 64 bits. */
	rl->next_us += (uint64_t)((double)n * 1e6 / (double)rl->rate);
	until = rl->next_us - BURST_US;
	pthread_mutex_unlock(&rl->lock);
	if (until <= now)
		return;
	ts.tv_sec = (time_t)((until - now) / 1000000);
	ts.tv_nsec = (long)((until - now) % 1000000) * 1000;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}
