/* SPDX-License-Identifier: MIT */
/* The event streams (GET /api/v1/events): subscribers and their queues. */
#ifndef PF_EVENTS_H
#define PF_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "gateway.h"

/*
 * Sends an event to the streams of user (NULL: all) and of admins; data
 * is a reference it takes (NULL: nothing is sent). events_publish takes
 * h->lock and wakes the streams: not with h->lock held. The _locked form
 * is for the monitor, with h->lock held; it leaves the waking to
 * events_wake.
 */
void events_publish(struct httpd *h, const char *event, const char *user,
    json_t *data);
void events_publish_locked(struct httpd *h, const char *event,
    const char *user, json_t *data);

/*
 * Queues a stats event for every stream, counting the sessions each may
 * see, from the engine's counters st, the throughput tp (oldest first)
 * and the total rate; and a heartbeat comment if heartbeat. h->lock held.
 */
void events_send_stats_locked(struct httpd *h, const struct engine_stats *st,
    const uint64_t *tp, double rate, bool heartbeat);

/* Resumes the streams that have something to send. Not with h->lock. */
void events_wake(struct httpd *h);

/*
 * Ends every stream, so the daemon can stop: resumes each suspended one
 * (MHD must not stop with one) and no stream suspends after. Call after
 * monitor_stop, before MHD_stop_daemon.
 */
void events_close(struct httpd *h);

#endif
