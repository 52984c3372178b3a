/* SPDX-License-Identifier: MIT */
/* The engine's counters and its chunk receive time histogram. */
#include "config.h"

#include "counters.h"

const uint64_t engine_hist_bounds_us[ENGINE_HIST_BUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
	2500000, 5000000, 10000000, 30000000
};

void
counters_observe_chunk(struct counters *c, uint64_t us)
{
	int i;

	for (i = 0; i < ENGINE_HIST_BUCKETS; i++)
		if (us <= engine_hist_bounds_us[i])
			break;
	atomic_fetch_add(&c->hist_sum_us, us);
	atomic_fetch_add(&c->hist[i], 1);
}

void
counters_read(struct counters *c, struct engine_stats *out)
{
	out->bytes_received = atomic_load(&c->bytes_received);
	out->chunks_acked = atomic_load(&c->chunks_acked);
	out->chunks_nacked = atomic_load(&c->chunks_nacked);
	out->chunks_resent = atomic_load(&c->chunks_resent);
	out->auth_failures = atomic_load(&c->auth_failures);
	out->tls_handshakes_full = atomic_load(&c->tls_full);
	out->tls_handshakes_resumed = atomic_load(&c->tls_resumed);
	for (int i = 0; i < ENGINE_NSTATES; i++)
		out->sessions_ended[i] = atomic_load(&c->sessions_ended[i]);
	out->connections_authenticating = atomic_load(&c->authenticating);
	/* Cumulative; sum last so it never lags. */
	for (int i = 0; i <= ENGINE_HIST_BUCKETS; i++)
		out->hist_counts[i] = (i ? out->hist_counts[i - 1] : 0) +
		    atomic_load(&c->hist[i]);
	out->hist_sum_us = atomic_load(&c->hist_sum_us);
}
