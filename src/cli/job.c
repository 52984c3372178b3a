/* SPDX-License-Identifier: MIT */
/* The state an upload's supervisor and workers share, and their rules. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "job.h"
#include "log.h"

#define BACKOFF_FIRST_MS	100
#define BACKOFF_MAX_MS		5000
/* Data connections logging in at once when the server does not say. */
#define JOB_CONNECT_UNTOLD	4

void
job_init(struct job *j, const struct upload_opts *o, struct upload_result *r)
{
	j->o = o;
	j->r = r;
	j->src.fd = -1;
	j->chunk_size = o->chunk_size ? o->chunk_size : PROTO_DEFAULT_CHUNK;
	pthread_mutex_init(&j->lock, NULL);
	pf_cond_init_monotonic(&j->cond);
	j->give_up_ms = (uint64_t)o->give_up_s * 1000;
	j->autotune = o->threads == 0;
	j->connect_max = JOB_CONNECT_UNTOLD;
	j->target = o->threads;
	atomic_store(&j->last_ack_ms, pf_now_ms());
}

void
job_destroy(struct job *j)
{
	pf_wipe(j->key, sizeof(j->key));
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
}

void
job_set_error(struct job *j, enum pf_status rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&j->lock);
	if (j->r->status == PF_OK) {
		j->r->status = rc;
		va_start(ap, fmt);
		vsnprintf(j->r->message, sizeof(j->r->message), fmt, ap);
		va_end(ap);
	}
	j->stopping = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (j->q != NULL)
		queue_stop(j->q);
}

void
job_net_error(struct job *j, enum pf_status rc, const char *what,
    const char *srv)
{
	if (srv[0] != '\0')
		job_set_error(j, rc, "%s: %s", what, srv);
	else
		job_set_error(j, rc, "%s: %s", what, pf_status_message(rc));
}

bool
job_failed(struct job *j)
{
	bool f;

	pthread_mutex_lock(&j->lock);
	f = j->r->status != PF_OK;
	pthread_mutex_unlock(&j->lock);
	return f;
}

/* Remembers a failure that will be retried, for the give-up message. */
void
job_note_trouble(struct job *j, enum pf_status rc, const char *what,
    const char *srv)
{
	pthread_mutex_lock(&j->lock);
	snprintf(j->trouble, sizeof(j->trouble), "%s: %s", what,
	    srv[0] != '\0' ? srv : pf_status_message(rc));
	log_info("%s; trying again", j->trouble);
	pthread_mutex_unlock(&j->lock);
}

/* Failures that another connection or login may not meet. */
bool
job_transient(enum pf_status rc)
{
	return rc == PF_ENET || rc == PF_ETIMEOUT || rc == PF_EBUSY;
}

bool
job_gave_up(struct job *j)
{
	return pf_now_ms() - atomic_load(&j->last_ack_ms) > j->give_up_ms;
}

/* A backoff of ms, cut short where --give-up would pass during it. */
unsigned
job_until_give_up(struct job *j, unsigned ms)
{
	uint64_t end = atomic_load(&j->last_ack_ms) + j->give_up_ms + 1;
	uint64_t now = pf_now_ms();

	if (now >= end)
		return 0;
	return end - now < ms ? (unsigned)(end - now) : ms;
}

void
job_give_up_error(struct job *j)
{
	char last[sizeof(j->trouble)];

	pthread_mutex_lock(&j->lock);
	memcpy(last, j->trouble, sizeof(last));
	pthread_mutex_unlock(&j->lock);
	job_set_error(j, PF_ENET, "gave up: no chunk acknowledged for %u s "
	    "(--give-up %u)%s%s; run the same command again to resume",
	    j->o->give_up_s, j->o->give_up_s, last[0] ? "; last error: " : "",
	    last);
}

/* 100 ms doubling up to 5 s, each drawn from [d/2, d] (jitter). */
unsigned
job_backoff_ms(unsigned attempt, uint32_t *rng)
{
	unsigned d = BACKOFF_MAX_MS;

	if (attempt > 0 && attempt < 8)
		d = BACKOFF_FIRST_MS << (attempt - 1);
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	/* xorshift32: spreads retries of many workers; not for secrets. */
	*rng ^= *rng << 13;
	*rng ^= *rng >> 17;
	*rng ^= *rng << 5;
	return d / 2 + *rng % (d / 2 + 1);
}

/* Sleeps ms, or less if the upload fails, stops or gets done. */
void
job_pause_ms(struct job *j, unsigned ms)
{
	uint64_t until = pf_now_ms() + ms, now;

	pthread_mutex_lock(&j->lock);
	while (!j->stopping && !queue_all_done(j->q) &&
	    (now = pf_now_ms()) < until)
		pf_cond_wait_ms(&j->cond, &j->lock, (unsigned)(until - now));
	pthread_mutex_unlock(&j->lock);
}

/* Wakes the supervisor and every pause. */
void
job_wake_all(struct job *j)
{
	pthread_mutex_lock(&j->lock);
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

bool
job_connect_enter(struct job *j)
{
	bool ok;

	pthread_mutex_lock(&j->lock);
	while (!j->stopping && j->connecting >= j->connect_max)
		pthread_cond_wait(&j->cond, &j->lock);
	ok = !j->stopping;
	if (ok)
		j->connecting++;
	pthread_mutex_unlock(&j->lock);
	return ok;
}

void
job_connect_leave(struct job *j)
{
	pthread_mutex_lock(&j->lock);
	j->connecting--;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}
