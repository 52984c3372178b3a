/* SPDX-License-Identifier: MIT */
/* The event streams (GET /api/v1/events): subscribers and their queues. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "buf.h"
#include "events.h"
#include "handlers.h"
#include "response.h"
#include "views.h"

#define SUB_MAX_BYTES	(1u << 20)	/* a subscriber this far behind goes */

/* One event stream (GET /api/v1/events). Guarded by h->lock. */
struct gw_subscriber {
	struct httpd		*h;
	struct MHD_Connection	*conn;
	struct gw_caller	 who;
	struct pf_buf		 queue;		/* text to send */
	size_t			 off;		/* of it sent already */
	bool			 suspended;
	bool			 overflow;
	struct gw_subscriber	*next;
};

/* Appends text to s's queue (h->lock held); too far behind, it is cut. */
static void
sub_push(struct gw_subscriber *s, const char *text, size_t n)
{
	struct pf_buf *q = &s->queue;

	if (s->overflow)
		return;
	if (q->len - s->off + n > SUB_MAX_BYTES) {
		s->overflow = true;
		return;
	}
	/*
	 * Drop what was sent before growing: a reader that keeps up but never
	 * quite catches up would otherwise grow the buffer for ever, however
	 * little it lags. Then the queue holds at most SUB_MAX_BYTES.
	 */
	if (s->off > 0 && (s->off == q->len || q->len + n >= q->cap)) {
		pf_buf_consume(q, s->off);
		s->off = 0;
	}
	if (!pf_buf_add(q, text, n))
		s->overflow = true;
}

void
events_publish_locked(struct httpd *h, const char *event, const char *user,
    json_t *data)
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
		if (user == NULL || access_may_see(&s->who, user))
			sub_push(s, text, (size_t)n);
	free(text);
}

void
events_publish(struct httpd *h, const char *event, const char *user,
    json_t *data)
{
	pthread_mutex_lock(&h->lock);
	events_publish_locked(h, event, user, data);
	pthread_mutex_unlock(&h->lock);
	events_wake(h);
}

void
events_send_stats_locked(struct httpd *h, const struct engine_stats *st,
    const uint64_t *tp, double rate, bool heartbeat)
{
	uint64_t counts[ENGINE_NSTATES];

	for (struct gw_subscriber *s = h->subscribers; s; s = s->next) {
		char *json, *text;
		json_t *j;
		int len;

		engine_count_sessions(h->engine, s->who.admin ? NULL :
		    s->who.user, counts);
		j = views_stats_json(h, st, counts, tp, rate);
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

void
events_wake(struct httpd *h)
{
	struct MHD_Connection *wake[64];
	size_t n;

	do {
		n = 0;
		pthread_mutex_lock(&h->lock);
		for (struct gw_subscriber *s = h->subscribers; s &&
		    n < sizeof(wake) / sizeof(*wake); s = s->next)
			if (s->suspended && (s->queue.len > s->off ||
			    s->overflow || h->stopping)) {
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
events_close(struct httpd *h)
{
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_mutex_unlock(&h->lock);
	events_wake(h);
}

/* MHD asks for more of the stream: queued text, or suspend until some. */
static ssize_t
events_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct gw_subscriber *s = cls;
	struct httpd *h = s->h;
	size_t queued;
	ssize_t n = 0;

	(void)pos;
	pthread_mutex_lock(&h->lock);
	queued = s->queue.len - s->off;
	if (queued > 0) {
		n = (ssize_t)(queued < max ? queued : max);
		memcpy(buf, s->queue.p + s->off, (size_t)n);
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
	pf_buf_free(&s->queue);
	free(s);
}

/* Why a new stream may not join the others. */
enum refusal {
	ADMITTED,
	OVER_USER,	/* the user's streams: 429 */
	OVER_ALL	/* everyone's: 503 */
};

/*
 * At most --http-max-user-events streams per user, and at most half the
 * connections for all, so that streams, which stay open, leave room for
 * ordinary requests. h->lock held.
 */
static enum refusal
refusal(struct httpd *h, const struct gw_subscriber *s)
{
	unsigned all = 0, mine = 0;

	for (struct gw_subscriber *o = h->subscribers; o; o = o->next) {
		all++;
		mine += strcmp(o->who.user, s->who.user) == 0;
	}
	if (mine >= h->cfg.max_user_events)
		return OVER_USER;
	if (all >= h->cfg.max_connections / 2)
		return OVER_ALL;
	return ADMITTED;
}

/* Answers a stream refused for why. */
static enum MHD_Result
refuse(const struct gw_call *call, enum refusal why)
{
	char msg[128];

	if (why == OVER_USER) {
		snprintf(msg, sizeof(msg), "this user has %u event streams "
		    "open already", call->h->cfg.max_user_events);
		return resp_error_with(call->c, MHD_HTTP_TOO_MANY_REQUESTS,
		    "too_many_requests", msg, "Retry-After", "60");
	}
	return resp_error_with(call->c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
	    "too many event streams open", "Retry-After", "60");
}

enum MHD_Result
events_subscribe(const struct gw_call *call)
{
	static const char hello[] = "retry: 3000\n: connected\n\n";
	struct httpd *h = call->h;
	struct gw_subscriber *s;
	struct MHD_Response *r;
	enum refusal why;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return MHD_NO;
	s->h = h;
	s->conn = call->c;
	s->who = call->who;
	pf_buf_init(&s->queue, SUB_MAX_BYTES);
	sub_push(s, hello, sizeof(hello) - 1);
	if ((r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
	    events_read, s, events_free)) == NULL) {
		pf_buf_free(&s->queue);
		free(s);
		return MHD_NO;
	}
	pthread_mutex_lock(&h->lock);
	if ((why = refusal(h, s)) == ADMITTED) {
		s->next = h->subscribers;
		h->subscribers = s;
	}
	pthread_mutex_unlock(&h->lock);
	if (why != ADMITTED) {
		MHD_destroy_response(r);	/* frees s */
		return refuse(call, why);
	}
	resp_add_common_headers(r);
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	return resp_queue(call->c, MHD_HTTP_OK, r);
}
