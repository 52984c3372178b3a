/* SPDX-License-Identifier: MIT */
/* /metrics: the engine's counters in the Prometheus text format. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "handlers.h"
#include "response.h"
#include "views.h"

/* The text's cap: some 3 KiB today, far from it with any new metric. */
#define METRICS_MAX	(1u << 20)

static void
metric(struct pf_buf *t, const char *name, const char *type, const char *help)
{
	pf_buf_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* The plain counters: a name, its help, its value. */
static void
add_counters(struct pf_buf *t, const struct engine_stats *st)
{
	const struct {
		const char	*name, *help;
		uint64_t	 value;
	} counters[] = {
		{ "paraflow_received_bytes_total",
		    "Chunk bytes read from clients, re-sent ones included.",
		    st->bytes_received },
		{ "paraflow_chunks_acked_total",
		    "Chunks verified, stored durably and acknowledged.",
		    st->chunks_acked },
		{ "paraflow_chunks_nacked_total",
		    "Chunks that failed their SHA-256 check.",
		    st->chunks_nacked },
		{ "paraflow_chunks_resent_total",
		    "Chunks received more than once.", st->chunks_resent },
		{ "paraflow_auth_failures_total",
		    "Failed logins, native and HTTP.", st->auth_failures },
		{ "paraflow_tls_handshakes_full_total",
		    "Full TLS handshakes on the native port.",
		    st->tls_handshakes_full },
		{ "paraflow_tls_handshakes_resumed_total",
		    "TLS handshakes that resumed a session (data connections).",
		    st->tls_handshakes_resumed },
	};

	for (size_t i = 0; i < sizeof(counters) / sizeof(*counters); i++) {
		metric(t, counters[i].name, "counter", counters[i].help);
		pf_buf_printf(t, "%s %" PRIu64 "\n", counters[i].name,
		    counters[i].value);
	}
}

/* Sessions by state: ended ones since the start, and those known now. */
static void
add_sessions(struct pf_buf *t, const struct engine_stats *st,
    const uint64_t *counts)
{
	metric(t, "paraflow_sessions_ended_total", "counter",
	    "Sessions that ended, by final state.");
	for (int i = ENGINE_COMPLETE; i < ENGINE_NSTATES; i++)
		pf_buf_printf(t, "paraflow_sessions_ended_total"
		    "{state=\"%s\"} %" PRIu64 "\n", views_state_name(i),
		    st->sessions_ended[i]);
	metric(t, "paraflow_sessions", "gauge",
	    "Sessions known to the server, by state.");
	for (int i = 0; i < ENGINE_NSTATES; i++)
		pf_buf_printf(t, "paraflow_sessions{state=\"%s\"} %" PRIu64
		    "\n", views_state_name(i), counts[i]);
}

/* The time from a chunk's header to its ACK, as a histogram. */
static void
add_histogram(struct pf_buf *t, const struct engine_stats *st)
{
	static const char name[] = "paraflow_chunk_receive_seconds";

	metric(t, name, "histogram",
	    "Time from a chunk's header to its durable ACK.");
	for (int i = 0; i < ENGINE_HIST_BUCKETS; i++)
		pf_buf_printf(t, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
		    (double)engine_hist_bounds_us[i] / 1e6, st->hist_counts[i]);
	pf_buf_printf(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name,
	    st->hist_counts[ENGINE_HIST_BUCKETS]);
	pf_buf_printf(t, "%s_sum %.6f\n", name, (double)st->hist_sum_us / 1e6);
	pf_buf_printf(t, "%s_count %" PRIu64 "\n", name,
	    st->hist_counts[ENGINE_HIST_BUCKETS]);
}

/*
 * The store's requests (S3 storage only): counts by operation and
 * outcome, and a latency histogram per operation. Only operations this
 * process has sent are shown, so that a node's page stays short.
 */
static void
add_store(struct pf_buf *t, struct engine *e)
{
	static const char name[] = "paraflow_s3_request_seconds";
	struct engine_store_stats *st;
	const uint64_t *h;

	if (!engine_store_shared(e) || (st = malloc(sizeof(*st))) == NULL)
		return;
	engine_store_stats(e, st);
	metric(t, "paraflow_s3_requests_total", "counter",
	    "Requests to the S3 store, by operation and outcome (HTTP status "
	    "class, or none: no answer), each once whatever its tries.");
	for (unsigned op = 0; op < ENGINE_STORE_OPS; op++)
		for (unsigned k = 0; k < ENGINE_STORE_CODES; k++)
			if (st->requests[op][k] > 0)
				pf_buf_printf(t, "paraflow_s3_requests_total"
				    "{op=\"%s\",code=\"%s\"} %" PRIu64 "\n",
				    st->ops[op], st->codes[k],
				    st->requests[op][k]);
	metric(t, name, "histogram",
	    "Time of a request to the S3 store, its tries and back-offs "
	    "included, by operation.");
	for (unsigned op = 0; op < ENGINE_STORE_OPS; op++) {
		h = st->hist[op];
		if (h[ENGINE_STORE_BUCKETS] == 0)
			continue;
		for (int i = 0; i < ENGINE_STORE_BUCKETS; i++)
			pf_buf_printf(t, "%s_bucket{op=\"%s\",le=\"%g\"} %"
			    PRIu64 "\n", name, st->ops[op],
			    (double)st->bounds_us[i] / 1e6, h[i]);
		pf_buf_printf(t, "%s_bucket{op=\"%s\",le=\"+Inf\"} %" PRIu64
		    "\n", name, st->ops[op], h[ENGINE_STORE_BUCKETS]);
		pf_buf_printf(t, "%s_sum{op=\"%s\"} %.6f\n", name, st->ops[op],
		    (double)st->sum_us[op] / 1e6);
		pf_buf_printf(t, "%s_count{op=\"%s\"} %" PRIu64 "\n", name,
		    st->ops[op], h[ENGINE_STORE_BUCKETS]);
	}
	free(st);
}

enum MHD_Result
metrics_serve(const struct gw_call *call)
{
	struct engine_stats st;
	uint64_t counts[ENGINE_NSTATES];
	struct MHD_Response *r;
	struct pf_buf t;
	size_t len;
	char *text;

	pf_buf_init(&t, METRICS_MAX);
	engine_stats(call->h->engine, &st);
	engine_count_sessions(call->h->engine, NULL, counts);
	add_counters(&t, &st);
	add_sessions(&t, &st, counts);
	metric(&t, "paraflow_connections", "gauge",
	    "Native protocol connections open.");
	pf_buf_printf(&t, "paraflow_connections %u\n", st.connections_open);
	metric(&t, "paraflow_uptime_seconds", "gauge",
	    "Seconds since the server started.");
	pf_buf_printf(&t, "paraflow_uptime_seconds %lld\n",
	    (long long)(time(NULL) - st.started));
	add_histogram(&t, &st);
	add_store(&t, call->h->engine);
	/* One failure fails the rest: checked once, at the end. */
	if (t.failed) {
		pf_buf_free(&t);
		return MHD_NO;
	}
	text = pf_buf_steal(&t, &len);
	if ((r = MHD_create_response_from_buffer(len, text,
	    MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(text);
		return MHD_NO;
	}
	resp_add_common_headers(r);
	MHD_add_response_header(r, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	return resp_queue(call->c, MHD_HTTP_OK, r);
}
