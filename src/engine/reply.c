/* SPDX-License-Identifier: MIT */
/* How a connection answers: ERROR frames, message frames, refusals. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "reply.h"
#include "session.h"
#include "stream_int.h"
#include "wire.h"

enum pf_status
reply_fail(struct stream *st, enum pf_status code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("%s: %s: %s", st->c->peer, pf_status_name(code), msg);
	if (wire_send_error(st->c, code, "%s", msg) == PF_OK)
		st->errored = true;
	return code;
}

enum pf_status
reply_throttled(struct stream *st, unsigned retry_after)
{
	char msg[80];
	json_t *j;

	snprintf(msg, sizeof(msg), "too many failed logins: try again in "
	    "%u s", retry_after);
	j = json_pack("{s:i,s:s,s:s,s:I}", "code", (int)PF_ETHROTTLED,
	    "name", pf_status_name(PF_ETHROTTLED), "message", msg,
	    "retry_after", (json_int_t)retry_after);
	if (j == NULL)
		return PF_ENOMEM;
	if (wire_send_json(st->c, PROTO_ERROR, j) == PF_OK)
		st->errored = true;
	json_decref(j);
	return PF_ETHROTTLED;
}

/* Sends {"message": msg} as a frame of type. */
enum pf_status
reply_message(struct stream *st, int type, const char *msg)
{
	json_t *j = json_pack("{s:s}", "message", msg);
	enum pf_status rc;

	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(st->c, type, j);
	json_decref(j);
	return rc;
}

/* Refuses work on a session that failed, or was cancelled or expired. */
enum pf_status
reply_ended(struct stream *st)
{
	enum pf_status why = session_error(st->session);

	if (why == PF_OK)
		why = PF_ECANCELLED;
	return reply_fail(st, why, "session ended: %s", pf_status_message(why));
}
