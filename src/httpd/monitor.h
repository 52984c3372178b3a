/* SPDX-License-Identifier: MIT */
/* The gateway's monitor: samples the engine for rates and throughput. */
#ifndef PF_MONITOR_H
#define PF_MONITOR_H

#include <stdint.h>

#include "gateway.h"
#include "status.h"

/*
 * Starts and stops the monitor thread, which samples the engine every
 * GW_SAMPLE_MS, publishes what changed as events (events.c) and enforces
 * the request deadlines (conns.c). Call both from the thread that starts
 * and stops the gateway; monitor_stop without a start is a no-op.
 */
enum pf_status monitor_start(struct httpd *h);
void monitor_stop(struct httpd *h);

/*
 * A number that grows with every sample in which a rate, a byte count or
 * an activity time of a session changed: what a session list shows that
 * the engine's generation does not cover. Takes h->lock.
 */
uint64_t monitor_generation(struct httpd *h);

/* The current rate of session id in bytes a second, 0 if unknown. */
double monitor_rate_of(struct httpd *h, const char *id);

/*
 * The last GW_THROUGHPUT_LEN seconds of throughput, oldest first, into tp
 * and the total rate into *rate. Both take h->lock: not with it held.
 */
void monitor_throughput(struct httpd *h, uint64_t tp[GW_THROUGHPUT_LEN],
    double *rate);

#endif
