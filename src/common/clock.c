/* SPDX-License-Identifier: MIT */
/* Monotonic time and timed condition waits, immune to clock jumps. */
#include "config.h"

#include <stdio.h>
#include <time.h>

#include "clock.h"

uint64_t
pf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
pf_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

bool
pf_time_rfc3339(int64_t t, char out[PF_TIME_LEN])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) != NULL &&
	    strftime(out, PF_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) != 0)
		return true;
	snprintf(out, PF_TIME_LEN, "1970-01-01T00:00:00Z");
	return false;
}

void
pf_cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

int
pf_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, unsigned ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	return pthread_cond_timedwait(c, m, &until);
}
