/* SPDX-License-Identifier: MIT */
/*
 * The gateway's monitor: samples the engine a few times a second to work
 * out rates and throughput, and turns the changes into Server-Sent Events.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "gateway.h"
#include "log.h"

#define RATE_WINDOW_MS	2000
#define SUB_MAX_BYTES	(1u << 20)	/* a subscriber this far behind goes */

/* Ended sessions the monitor still samples, for their last events. */
#define GW_RECENT_S	60

/* One event stream (GET /api/v1/events). Guarded by h->lock. */
struct gw_subscriber {
	struct httpd		*h;
	struct MHD_Connection	*conn;
	struct gw_caller	 who;
	char			*buf;
	size_t			 len, off, cap;
	bool			 suspended;
	bool			 overflow;
	struct gw_subscriber	*next;
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

double
gw_rate_of(struct httpd *h, const char *id)
{
	struct gw_rate *r;
	double bps = 0;

	pthread_mutex_lock(&h->lock);
	if ((r = rate_find(h->rates, h->nrates, id)) != NULL)
		bps = r->bps;
	pthread_mutex_unlock(&h->lock);
	return bps;
}

/* Appends text to s's queue (h->lock held); too far behind, it is cut. */
static void
sub_push(struct gw_subscriber *s, const char *text, size_t n)
{
	if (s->overflow)
		return;
	if (s->len - s->off + n > SUB_MAX_BYTES) {
		s->overflow = true;
		return;
	}
	/*
	 * Drop what was sent before growing: a reader that keeps up but never
	 * quite catches up would otherwise grow the buffer for ever, however
	 * little it lags.
	 */
	if (s->off > 0 && s->len + n > s->cap) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	} else if (s->off > 0 && s->off == s->len)
		s->off = s->len = 0;
	if (s->len + n > s->cap) {
		size_t cap = (s->len + n) * 2;
		char *p = realloc(s->buf, cap);

		if (p == NULL) {
			s->overflow = true;
			return;
		}
		s->buf = p;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, text, n);
	s->len += n;
}

/* Formats one event and queues it for every subscriber who may see it. */
static void
publish(struct httpd *h, const char *event, const char *user, json_t *data)
{
	char *json, *text;
	int n;

	if (data == NULL)
		return;
	json = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(data);
	if (json == NULL)
		return;
	n = asprintf(&text, "event: %s\nid: %llu\ndata: %s\n\n", event,
	    (unsigned long long)++h->next_event_id, json);
	free(json);
	if (n < 0)
		return;
	for (struct gw_subscriber *s = h->subscribers; s; s = s->next)
		if (user == NULL || gw_may_see(&s->who, user))
			sub_push(s, text, (size_t)n);
	free(text);
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
			publish(h, "created", v[i].user, gw_session_json(&v[i],
			    nr[i].bps));
		if (events[i] != NULL)
			publish(h, events[i], v[i].user, gw_session_json(&v[i],
			    nr[i].bps));
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
out:
	free(nr);
	free(events);
	free(created);
}

/* Once a second: throughput, the stats event, the heartbeat. */
static void
every_second(struct httpd *h, const struct engine_stats *st, bool heartbeat)
{
	uint64_t tp[GW_THROUGHPUT_LEN], counts[ENGINE_NSTATES];

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
	for (struct gw_subscriber *s = h->subscribers; s; s = s->next) {
		json_t *j;

		engine_count_sessions(h->engine, s->who.admin ? NULL :
		    s->who.user, counts);
		j = gw_stats_build(h, st, counts, tp, h->total_bps);
		char *json, *text;
		int len;

		json = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (json != NULL && (len = asprintf(&text, "event: stats\n"
		    "data: %s\n\n", json)) >= 0) {
			sub_push(s, text, (size_t)len);
			free(text);
		}
		free(json);
		if (heartbeat)
			sub_push(s, ": heartbeat\n\n", 13);
	}
}

/* Wakes the streams that have something to send (h->lock not held). */
static void
wake_subscribers(struct httpd *h)
{
	struct MHD_Connection *wake[64];
	size_t n;

	do {
		n = 0;
		pthread_mutex_lock(&h->lock);
		for (struct gw_subscriber *s = h->subscribers; s &&
		    n < sizeof(wake) / sizeof(*wake); s = s->next)
			if (s->suspended && (s->len > s->off || s->overflow ||
			    h->stopping)) {
				s->suspended = false;
				wake[n++] = s->conn;
			}
		pthread_mutex_unlock(&h->lock);
		/* Suspended connections cannot close: these are still there. */
		for (size_t i = 0; i < n; i++)
			MHD_resume_connection(wake[i]);
	} while (n == sizeof(wake) / sizeof(*wake));
}

void
gw_publish(struct httpd *h, const char *event, const char *user,
    json_t *data)
{
	pthread_mutex_lock(&h->lock);
	publish(h, event, user, data);
	pthread_mutex_unlock(&h->lock);
	wake_subscribers(h);
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
		gw_enforce_deadlines(h);
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
		wake_subscribers(h);
		pthread_mutex_lock(&h->lock);
		if (!h->stopping)
			pf_cond_wait_ms(&h->wake, &h->lock, GW_SAMPLE_MS);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

enum pf_status
gw_monitor_start(struct httpd *h)
{
	if (pthread_create(&h->monitor, NULL, monitor_main, h) != 0) {
		log_error("cannot start the HTTP monitor thread");
		return PF_EINTERNAL;
	}
	h->monitor_started = true;
	return PF_OK;
}

void
gw_monitor_stop(struct httpd *h)
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

void
gw_events_close(struct httpd *h)
{
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_mutex_unlock(&h->lock);
	wake_subscribers(h);
}

/* MHD asks for more of the stream: queued text, or suspend until some. */
static ssize_t
events_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct gw_subscriber *s = cls;
	struct httpd *h = s->h;
	ssize_t n = 0;

	(void)pos;
	pthread_mutex_lock(&h->lock);
	if (s->len > s->off) {
		n = (ssize_t)(s->len - s->off < max ? s->len - s->off : max);
		memcpy(buf, s->buf + s->off, (size_t)n);
		s->off += (size_t)n;
	} else if (h->stopping || s->overflow)
		n = MHD_CONTENT_READER_END_OF_STREAM;
	else {
		/* Under the lock, so the monitor resumes only after this. */
		s->suspended = true;
		MHD_suspend_connection(s->conn);
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

static void
events_free(void *cls)
{
	struct gw_subscriber *s = cls, **pp;
	struct httpd *h = s->h;

	pthread_mutex_lock(&h->lock);
	for (pp = &h->subscribers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pthread_mutex_unlock(&h->lock);
	free(s->buf);
	free(s);
}

enum MHD_Result
gw_events(struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who)
{
	static const char hello[] = "retry: 3000\n: connected\n\n";
	struct gw_subscriber *s;
	struct MHD_Response *r;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return MHD_NO;
	s->h = h;
	s->conn = c;
	s->who = *who;
	sub_push(s, hello, sizeof(hello) - 1);
	if ((r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
	    events_read, s, events_free)) == NULL) {
		free(s->buf);
		free(s);
		return MHD_NO;
	}
	pthread_mutex_lock(&h->lock);
	s->next = h->subscribers;
	h->subscribers = s;
	pthread_mutex_unlock(&h->lock);
	gw_common_headers(r);
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	return gw_queue(c, MHD_HTTP_OK, r);
}
