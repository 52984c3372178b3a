/* SPDX-License-Identifier: MIT */
/* /metrics: the engine's counters in the Prometheus text format. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"

/* A growing text buffer; after a failure everything no-ops. */
struct text {
	char	*p;
	size_t	 len, cap;
	bool	 failed;
};

static void text_add(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	if (t->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= t->cap - t->len) {
		if ((p = realloc(t->p, 2 * t->cap + (size_t)n)) == NULL)
			goto fail;
		t->p = p;
		t->cap = 2 * t->cap + (size_t)n;
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
	}
	if (n < 0)
		goto fail;
	t->len += (size_t)n;
	return;
fail:
	t->failed = true;
}

static void
metric(struct text *t, const char *name, const char *type, const char *help)
{
	text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The plain counters: a name, its help, its value. */
static void
add_counters(struct text *t, const struct engine_stats *st)
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
	};

	for (size_t i = 0; i < sizeof(counters) / sizeof(*counters); i++) {
		metric(t, counters[i].name, "counter", counters[i].help);
		text_add(t, "%s %" PRIu64 "\n", counters[i].name,
		    counters[i].value);
	}
}

enum MHD_Result
gw_metrics(struct httpd *h, struct MHD_Connection *c)
{
	struct engine_stats st;
	uint64_t counts[ENGINE_NSTATES];
	struct MHD_Response *r;
	struct text t = { .failed = false };

	t.cap = 8192;
	if ((t.p = malloc(t.cap)) == NULL)
		return MHD_NO;
	engine_stats(h->engine, &st);
	engine_count_sessions(h->engine, NULL, counts);

	add_counters(&t, &st);
	metric(&t, "paraflow_sessions_ended_total", "counter",
	    "Sessions that ended, by final state.");
	for (int i = ENGINE_COMPLETE; i < ENGINE_NSTATES; i++)
		text_add(&t, "paraflow_sessions_ended_total{state=\"%s\"} %"
		    PRIu64 "\n", gw_state_name(i), st.sessions_ended[i]);
	metric(&t, "paraflow_sessions", "gauge",
	    "Sessions known to the server, by state.");
	for (int i = 0; i < ENGINE_NSTATES; i++)
		text_add(&t, "paraflow_sessions{state=\"%s\"} %" PRIu64 "\n",
		    gw_state_name(i), counts[i]);
	metric(&t, "paraflow_connections", "gauge",
	    "Native protocol connections open.");
	text_add(&t, "paraflow_connections %u\n", st.connections_open);
	metric(&t, "paraflow_uptime_seconds", "gauge",
	    "Seconds since the server started.");
	text_add(&t, "paraflow_uptime_seconds %lld\n",
	    (long long)(time(NULL) - st.started));
	metric(&t, "paraflow_chunk_receive_seconds", "histogram",
	    "Time from a chunk's header to its durable ACK.");
	for (int i = 0; i < ENGINE_HIST_BUCKETS; i++)
		text_add(&t, "paraflow_chunk_receive_seconds_bucket{le=\"%g\"} %"
		    PRIu64 "\n", (double)engine_hist_bounds_us[i] / 1e6,
		    st.hist_counts[i]);
	text_add(&t, "paraflow_chunk_receive_seconds_bucket{le=\"+Inf\"} %"
	    PRIu64 "\n", st.hist_counts[ENGINE_HIST_BUCKETS]);
	text_add(&t, "paraflow_chunk_receive_seconds_sum %.6f\n",
	    (double)st.hist_sum_us / 1e6);
	text_add(&t, "paraflow_chunk_receive_seconds_count %" PRIu64 "\n",
	    st.hist_counts[ENGINE_HIST_BUCKETS]);
	if (t.failed) {
		free(t.p);
		return MHD_NO;
	}
	if ((r = MHD_create_response_from_buffer(t.len, t.p,
	    MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(t.p);
		return MHD_NO;
	}
	gw_common_headers(r);
	MHD_add_response_header(r, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	return gw_queue(c, MHD_HTTP_OK, r);
}
