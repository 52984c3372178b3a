/* SPDX-License-Identifier: MIT */
/* Building and queueing the gateway's answers: JSON, errors, headers. */
#ifndef PF_RESPONSE_H
#define PF_RESPONSE_H

#include <stdbool.h>

#include <jansson.h>
#include <microhttpd.h>

/*
 * Each function here queues one answer on c and returns what an MHD
 * access handler returns (MHD_NO when nothing could be queued). Any MHD
 * thread may call them, from the handler of c's request.
 */

/*
 * Queues r (NULL: out of memory) and drops the caller's reference to it;
 * over HTTPS it adds Strict-Transport-Security first.
 */
enum MHD_Result resp_queue(struct MHD_Connection *c, unsigned status,
    struct MHD_Response *r);

/* body as compact JSON; takes the reference. NULL body: a 500 instead. */
enum MHD_Result resp_json(struct MHD_Connection *c, unsigned status,
    json_t *body);

/*
 * True if hdr, a list of entity tags (If-None-Match, If-Match), names
 * etag (its quoted part), or is "*"; W/ tags count only if weak (the
 * weak comparison of If-None-Match; If-Match's is strong). Pure.
 */
bool resp_etag_matches(const char *hdr, const char *etag, bool weak);

/*
 * Queues r, a JSON body (its reference taken), as a 200 validated by
 * etag (borrowed, quoted, e.g. W/"..."), or if not_modified as a 304
 * that sends none of it but states its length (a 304 may state only the
 * 200's); both revalidate (Cache-Control: private, no-cache) instead of
 * the no-store of other answers.
 */
enum MHD_Result resp_tagged(struct MHD_Connection *c, struct MHD_Response *r,
    const char *etag, bool not_modified);

/* The Error body of docs/api.md, {"error":{"code","message"}}. */
enum MHD_Result resp_error(struct MHD_Connection *c, unsigned status,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same with one more header (none if header is NULL). */
enum MHD_Result resp_error_with(struct MHD_Connection *c, unsigned status,
    const char *code, const char *msg, const char *header, const char *value);

/* 401 with the WWW-Authenticate challenge of HTTP Basic. */
enum MHD_Result resp_unauthorized(struct MHD_Connection *c);

/* 405 with allow (borrowed) as the Allow header. */
enum MHD_Result resp_not_allowed(struct MHD_Connection *c, const char *allow);

/* 404 not_found, "no such path". */
enum MHD_Result resp_not_found(struct MHD_Connection *c);

/* Adds the headers every API answer carries (no caching, nosniff) to r. */
void resp_add_common_headers(struct MHD_Response *r);

#endif
