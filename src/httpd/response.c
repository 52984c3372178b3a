/* SPDX-License-Identifier: MIT */
/* Building and queueing the gateway's answers: JSON, errors, headers. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conns.h"
#include "gateway.h"
#include "response.h"

void
resp_add_common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

enum MHD_Result
resp_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	/* Over HTTPS, browsers are told never to try plain HTTP here. */
	if (MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION) !=
	    NULL)
		MHD_add_response_header(r, "Strict-Transport-Security",
		    GW_HSTS);
	conns_mark_responding(c);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A JSON response holding body (a reference it takes); NULL on ENOMEM. */
static struct MHD_Response *
json_response(json_t *body)
{
	struct MHD_Response *r;
	char *text;

	text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) :
	    NULL;
	json_decref(body);
	if (text == NULL || (r = MHD_create_response_from_buffer(strlen(text),
	    text, MHD_RESPMEM_MUST_FREE)) == NULL) {
		free(text);
		return NULL;
	}
	resp_add_common_headers(r);
	MHD_add_response_header(r, "Content-Type", "application/json");
	return r;
}

enum MHD_Result
resp_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
	struct MHD_Response *r = json_response(body);

	/* No body (out of memory, or a string jansson refused): a 500. */
	if (r == NULL)
		return resp_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
		    "internal", "cannot build the answer");
	return resp_queue(c, status, r);
}

bool
resp_etag_matches(const char *hdr, const char *etag, bool weak)
{
	size_t n = strlen(etag);
	const char *p = hdr;

	if (strcmp(hdr, "*") == 0)
		return true;
	while ((p = strstr(p, etag)) != NULL) {
		if ((p == hdr || p[-1] == ' ' || p[-1] == ',' || (weak &&
		    p - hdr >= 2 && p[-2] == 'W' && p[-1] == '/')) &&
		    (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
			return true;
		p += n;
	}
	return false;
}

enum MHD_Result
resp_tagged(struct MHD_Connection *c, struct MHD_Response *r,
    const char *etag, bool not_modified)
{
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	/*
	 * Kept by the browser, never by a shared cache (the answer is the
	 * caller's), and asked again each time with If-None-Match.
	 */
	MHD_add_response_header(r, "Cache-Control", "private, no-cache");
	MHD_add_response_header(r, "Vary", "Authorization");
	MHD_add_response_header(r, "ETag", etag);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	return resp_queue(c, not_modified ? MHD_HTTP_NOT_MODIFIED :
	    MHD_HTTP_OK, r);
}

enum MHD_Result
resp_error_with(struct MHD_Connection *c, unsigned status, const char *code,
    const char *msg, const char *header, const char *value)
{
	struct MHD_Response *r;

	r = json_response(json_pack("{s:{s:s,s:s}}", "error", "code", code,
	    "message", msg));
	if (r != NULL && header != NULL)
		MHD_add_response_header(r, header, value);
	return resp_queue(c, status, r);
}

enum MHD_Result
resp_error(struct MHD_Connection *c, unsigned status, const char *code,
    const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return resp_error_with(c, status, code, msg, NULL, NULL);
}

enum MHD_Result
resp_unauthorized(struct MHD_Connection *c)
{
	return resp_error_with(c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
	    "sign in with a ParaFlow user (HTTP Basic)", "WWW-Authenticate",
	    "Basic realm=\"paraflow\", charset=\"UTF-8\"");
}

enum MHD_Result
resp_not_allowed(struct MHD_Connection *c, const char *allow)
{
	return resp_error_with(c, MHD_HTTP_METHOD_NOT_ALLOWED,
	    "method_not_allowed", "method not allowed here", "Allow", allow);
}

enum MHD_Result
resp_not_found(struct MHD_Connection *c)
{
	return resp_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such path");
}
