/* SPDX-License-Identifier: MIT */
/*
 * The gateway's monitor: samples the engine a few times a second to work
 * out rates and throughput, and hands the changes to the event streams.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "conns.h"
#include "events.h"
#include "log.h"
#include "monitor.h"
#include "views.h"

#define RATE_WINDOW_MS	2000

/* Ended sessions the monitor still samples, for their last events. */
#define GW_RECENT_S	60

/* Per-session rates the monitor works out, sorted by id. */
struct gw_rate {
	char			 id[ENGINE_ID_LEN + 1];
	uint64_t		 bytes[9];	/* the last 2 s of samples */
	uint64_t		 at_ms[9];
	unsigned		 n;
	double			 bps;
	uint32_t		 acked;		/* at the last event */
	int			 state;
	int64_t			 updated;	/* at the last sample */
};

static int
by_id(const void *a, const void *b)
{
	return strcmp(((const struct gw_rate *)a)->id,
	    ((const struct gw_rate *)b)->id);
}

static struct gw_rate *
rate_find(struct gw_rate *v, size_t n, const char *id)
{
	struct gw_rate key;

	snprintf(key.id, sizeof(key.id), "%s", id);
	return n ? bsearch(&key, v, n, sizeof(*v), by_id) : NULL;
}

uint64_t
monitor_generation(struct httpd *h)
{
	uint64_t gen;

	pthread_mutex_lock(&h->lock);
	gen = h->rates_gen;
	pthread_mutex_unlock(&h->lock);
	return gen;
}

double
monitor_rate_of(struct httpd *h, const char *id)
{
	struct gw_rate *r;
	double bps = 0;

	pthread_mutex_lock(&h->lock);
	if ((r = rate_find(h->rates, h->nrates, id)) != NULL)
		bps = r->bps;
	pthread_mutex_unlock(&h->lock);
	return bps;
}

static const char *
end_event(enum engine_state s)
{
	switch (s) {
	case ENGINE_COMPLETE:	return "completed";
	case ENGINE_CANCELLED:	return "cancelled";
	case ENGINE_EXPIRED:	return "expired";
	default:		return "failed";
	}
}

/* Drops the oldest sample of r. */
static void
rate_shift(struct gw_rate *r)
{
	memmove(r->bytes, r->bytes + 1, (r->n - 1) * sizeof(*r->bytes));
	memmove(r->at_ms, r->at_ms + 1, (r->n - 1) * sizeof(*r->at_ms));
	r->n--;
}

/* Adds a byte count at now and works out the rate over the window. */
static void
rate_sample(struct gw_rate *r, uint64_t bytes, uint64_t now, bool running)
{
	if (r->n == sizeof(r->bytes) / sizeof(*r->bytes))
		rate_shift(r);
	r->bytes[r->n] = bytes;
	r->at_ms[r->n++] = now;
	while (r->n > 2 && now - r->at_ms[0] > RATE_WINDOW_MS)
		rate_shift(r);
	r->bps = 0;
	if (running && r->n > 1 && now > r->at_ms[0] &&
	    r->bytes[r->n - 1] >= r->bytes[0])
		r->bps = (double)(r->bytes[r->n - 1] - r->bytes[0]) * 1000.0 /
		    (double)(now - r->at_ms[0]);
}

/*
 * True if a list may show s other than at the last sample (old, NULL if
 * none; r the new one): its rate, or what changes without the engine's
 * generation (bytes of a chunk arriving, the activity time). Only a
 * receiving session shows a rate or changes so; one that ended did so
 * with a new engine generation.
 */
static bool
list_changed(const struct gw_rate *old, const struct gw_rate *r,
    const struct engine_session_info *s)
{
	if (s->state != ENGINE_RECEIVING)
		return false;
	return old == NULL || old->bps != r->bps || old->updated !=
	    s->updated || old->n == 0 || old->bytes[old->n - 1] !=
	    s->bytes_received;
}

/*
 * Works out the new rate table from a snapshot (h->lock held) and
 * publishes what changed since the last one: at most one event per
 * session per sample, so progress comes at most 1000/GW_SAMPLE_MS times
 * a second. The first sample publishes nothing: what existed before
 * anyone listened is not news.
 */
static void
update_sessions(struct httpd *h, const struct engine_session_info *v,
    size_t n, uint64_t now, bool first)
{
	struct gw_rate *nr = calloc(n ? n : 1, sizeof(*nr));
	const char **events = calloc(n ? n : 1, sizeof(*events));
	bool *created = calloc(n ? n : 1, sizeof(*created));
	bool changed = false;

	if (nr == NULL || events == NULL || created == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct engine_session_info *s = &v[i];
		struct gw_rate *old = rate_find(h->rates, h->nrates, s->id);
		struct gw_rate *r = &nr[i];

		if (old != NULL)
			*r = *old;
		else {
			snprintf(r->id, sizeof(r->id), "%s", s->id);
			r->state = (int)ENGINE_RECEIVING;
			r->acked = s->chunks_acked;
			created[i] = !first;
		}
		rate_sample(r, s->bytes_received, now,
		    s->state == ENGINE_RECEIVING);
		changed |= list_changed(old, r, s);
		r->updated = s->updated;
		/*
		 * A session that began and ended between two samples is new
		 * and finished at once: it gets both events, so that a client
		 * waiting for "completed" is not left waiting.
		 */
		if ((old != NULL || created[i]) && r->state != (int)s->state &&
		    s->state >= ENGINE_COMPLETE)
			events[i] = end_event(s->state);
		else if (old != NULL && (r->acked != s->chunks_acked ||
		    r->state != (int)s->state))
			events[i] = "progress";
		r->state = (int)s->state;
		r->acked = s->chunks_acked;
	}
	for (size_t i = 0; i < n; i++) {
		if (created[i])
			events_publish_locked(h, "created", v[i].user,
			    views_session_json(&v[i], nr[i].bps));
		if (events[i] != NULL)
			events_publish_locked(h, events[i], v[i].user,
			    views_session_json(&v[i], nr[i].bps));
	}
	/*
	 * Sessions that leave the sample (ended over a minute ago) say
	 * nothing: a DELETE publishes its own event.
	 */
	qsort(nr, n, sizeof(*nr), by_id);
	free(h->rates);
	h->rates = nr;
	h->nrates = n;
	nr = NULL;
	/* What lists show between two engine generations: see docs/api.md. */
	if (changed)
		h->rates_gen++;
out:
	free(nr);
	free(events);
	free(created);
}

/* Once a second: throughput, the stats event, the heartbeat. */
static void
every_second(struct httpd *h, const struct engine_stats *st, bool heartbeat)
{
	uint64_t tp[GW_THROUGHPUT_LEN];

	h->throughput[h->throughput_at] = st->bytes_received >= h->last_bytes ?
	    st->bytes_received - h->last_bytes : 0;
	h->throughput_at = (h->throughput_at + 1) % GW_THROUGHPUT_LEN;
	h->last_bytes = st->bytes_received;
	h->total_bps = 0;
	for (size_t i = 0; i < h->nrates; i++)
		h->total_bps += h->rates[i].bps;
	for (unsigned i = 0; i < GW_THROUGHPUT_LEN; i++)
		tp[i] = h->throughput[(h->throughput_at + i) %
		    GW_THROUGHPUT_LEN];
	events_send_stats_locked(h, st, tp, h->total_bps, heartbeat);
}

void
monitor_throughput(struct httpd *h, uint64_t tp[GW_THROUGHPUT_LEN],
    double *rate)
{
	pthread_mutex_lock(&h->lock);
	for (unsigned i = 0; i < GW_THROUGHPUT_LEN; i++)
		tp[i] = h->throughput[(h->throughput_at + i) %
		    GW_THROUGHPUT_LEN];
	*rate = h->total_bps;
	pthread_mutex_unlock(&h->lock);
}

static void *
monitor_main(void *arg)
{
	struct httpd *h = arg;
	uint64_t next_second = 0, next_beat = 0;
	bool first = true;

	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		struct engine_session_info *v = NULL;
		struct engine_stats st;
		uint64_t now;
		size_t n = 0;

		pthread_mutex_unlock(&h->lock);
		now = pf_now_ms();
		engine_stats(h->engine, &st);
		/* Live and lately ended: not every stored file, 4 times a s. */
		if (engine_sessions_since(h->engine, (int64_t)time(NULL) -
		    GW_RECENT_S, &v, &n) != PF_OK)
			n = 0;
		conns_enforce_deadlines(h);
		pthread_mutex_lock(&h->lock);
		update_sessions(h, v, n, now, first);
		if (first)
			h->last_bytes = st.bytes_received;
		if (now >= next_second) {
			bool beat = now >= next_beat;

			every_second(h, &st, beat && !first);
			next_second = now + 1000;
			if (beat)
				next_beat = now + GW_HEARTBEAT_S * 1000;
		}
		first = false;
		pthread_mutex_unlock(&h->lock);
		free(v);
		events_wake(h);
		pthread_mutex_lock(&h->lock);
		if (!h->stopping)
			pf_cond_wait_ms(&h->wake, &h->lock, GW_SAMPLE_MS);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

enum pf_status
monitor_start(struct httpd *h)
{
	if (pthread_create(&h->monitor, NULL, monitor_main, h) != 0) {
		log_error("cannot start the HTTP monitor thread");
		return PF_EINTERNAL;
	}
	h->monitor_started = true;
	return PF_OK;
}

void
monitor_stop(struct httpd *h)
{
	if (!h->monitor_started)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_broadcast(&h->wake);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->monitor, NULL);
	h->monitor_started = false;
}
