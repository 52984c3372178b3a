/* SPDX-License-Identifier: MIT */
/* The monotonic clock, and condition waits that time out on it. */
#ifndef PF_CLOCK_H
#define PF_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Milliseconds, and microseconds, on the monotonic clock. */
uint64_t pf_now_ms(void);
uint64_t pf_now_us(void);

#define PF_TIME_LEN	32	/* room for an RFC 3339 UTC time */

/*
 * Formats Unix time t as RFC 3339 UTC ("2026-11-26T02:00:00Z") into out;
 * false (and out "1970-01-01T00:00:00Z") if t cannot be represented.
 */
bool pf_time_rfc3339(int64_t t, char out[PF_TIME_LEN]);

/* Initializes c so that pf_cond_wait_ms times it on the monotonic clock. */
void pf_cond_init_monotonic(pthread_cond_t *c);

/*
 * Waits on c (initialized with pf_cond_init_monotonic; m held) for at
 * most ms milliseconds. Returns 0 when woken, ETIMEDOUT otherwise.
 */
int pf_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, unsigned ms);

#endif
