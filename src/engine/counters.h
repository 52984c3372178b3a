/* SPDX-License-Identifier: MIT */
/*
 * The engine's counters: one block of atomics that connection threads
 * add to and the gateway reads, with no lock (as wrk's stats).
 */
#ifndef PF_COUNTERS_H
#define PF_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"

struct counters {
	_Atomic uint64_t	 bytes_received;
	_Atomic uint64_t	 chunks_acked;
	_Atomic uint64_t	 chunks_nacked;
	_Atomic uint64_t	 auth_failures;
	_Atomic uint64_t	 chunks_resent;
	_Atomic uint64_t	 tls_full;	/* handshakes */
	_Atomic uint64_t	 tls_resumed;
	_Atomic uint64_t	 sessions_ended[ENGINE_NSTATES];
	_Atomic unsigned	 authenticating;	/* connections */
	_Atomic uint64_t	 hist[ENGINE_HIST_BUCKETS + 1];
	_Atomic uint64_t	 hist_sum_us;
};

/* Counts one chunk received in us microseconds, for the histogram. */
void counters_observe_chunk(struct counters *c, uint64_t us);

/*
 * Copies c into the counter fields of out (the others are left alone):
 * totals, and the histogram made cumulative, as Prometheus wants.
 */
void counters_read(struct counters *c, struct engine_stats *out);

#endif
