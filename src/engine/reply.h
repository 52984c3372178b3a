/* SPDX-License-Identifier: MIT */
/* How a connection answers: ERROR frames, message frames, refusals. */
#ifndef PF_REPLY_H
#define PF_REPLY_H

#include "status.h"

struct stream;

/*
 * Sends an ERROR frame and returns code, so a handler can end with
 * "return reply_fail(st, PF_EXXX, ...)". The connection is then closed.
 */
enum pf_status
reply_fail(struct stream *st, enum pf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Refuses a login with ERROR throttled, its "retry_after" the seconds
 * until one may be tried again; returns PF_ETHROTTLED.
 */
enum pf_status reply_throttled(struct stream *st, unsigned retry_after);

/* Sends {"message": msg} as a frame of type. */
enum pf_status reply_message(struct stream *st, int type, const char *msg);

/*
 * Refuses work on the connection's session, which failed, was cancelled
 * or expired, with the reason it ended; returns that code.
 */
enum pf_status reply_ended(struct stream *st);

#endif
