/* SPDX-License-Identifier: MIT */
/*
 * The HTTP transport of the gateway commands: one libcurl handle, one
 * request at a time, answers read into a capped buffer or handed to a sink.
 * Nothing here knows the API; remote.c does. Use from one thread.
 */
#ifndef PF_HTTP_H
#define PF_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/*
 * The largest JSON answer read: a bigger one is a broken or hostile peer.
 * The largest a gateway gives is a transfer's file list: its paths (at
 * most the 8 MiB an OPEN lists) twice, as sent and as stored, and some
 * 250 bytes more an entry, of at most 100,000: under 40 MiB.
 */
#define HTTP_MAX_JSON		(64u * 1024 * 1024)
/* How much of an error answer is kept, for its message. */
#define HTTP_MAX_ERROR_BODY	(64u * 1024)
#define HTTP_MAX_REDIRS		3
#define HTTP_ETAG_MAX		128
/*
 * Header bytes read per request, redirects and interim answers included:
 * libcurl keeps every header line for its own use, so a server sending
 * them without end would otherwise fill our memory.
 */
#define HTTP_MAX_HEADERS	(256u * 1024)

struct http;

struct http_opts {
	const char	*base;		/* http[s]://host[:port][/prefix] */
	const char	*user;
	const char	*secret;	/* borrowed; libcurl keeps a copy */
	unsigned	 timeout_s;	/* connect, and longest stall */
	/*
	 * Borrowed, or NULL: once *cancel is non-zero (a signal handler sets
	 * it), the request in flight is abandoned within a second and
	 * http_request returns PF_ECANCELLED.
	 */
	const volatile sig_atomic_t *cancel;
	/*
	 * For an https:// base, the server accepted: the one whose key has
	 * pin (sha256//..., curl's CURLOPT_PINNEDPUBLICKEY; the pin is the
	 * whole trust), or with pin NULL one a CA of cacert signed for the
	 * host name (cacert NULL: the system's CAs). Borrowed.
	 */
	const char	*pin;
	const char	*cacert;
};

/*
 * Receives the body of a 2xx answer, piece by piece. Returns PF_OK to go
 * on; anything else aborts the transfer and becomes http_request's status.
 * While it runs, the http_resp given to http_request holds the status and
 * headers of the answer being received.
 */
typedef enum pf_status (*http_sink)(void *arg, const void *p, size_t n);

struct http_req {
	const char	*method;	/* "GET", "DELETE" */
	const char	*path;		/* after the base: "/api/v1/..." */
	const char	*range;		/* "100-", or NULL */
	const char	*if_range;	/* an ETag, quoted, or NULL */
	size_t		 cap;		/* body limit when sink is NULL */
	http_sink	 sink;		/* NULL: the body goes to resp->body */
	void		*arg;
};

struct http_resp {
	long		 status;	/* the final answer's, or 0 */
	char		*body;		/* NUL-terminated, owned; see below */
	size_t		 len;
	char		 etag[HTTP_ETAG_MAX];	/* "" if none or too long */
	bool		 has_range;	/* Content-Range was given: */
	uint64_t	 range_first;	/* bytes first-last/total */
	uint64_t	 range_total;
	char		 err[256];	/* why, when the request failed */
};

/*
 * True if url is an http:// or https:// URL that can serve as a base:
 * with a host, without user info, query or fragment.
 */
bool http_base_valid(const char *url);

/*
 * Returns a new client for o (o->base MUST pass http_base_valid), or NULL
 * on ENOMEM or if libcurl refuses a setting. The strings are copied.
 * Call curl_global_init before, from the main thread.
 */
struct http *http_new(const struct http_opts *o);

/*
 * A second client with h's options (its own connection, counters at 0),
 * for another thread; NULL on ENOMEM.
 */
struct http *http_dup(const struct http *h);

/*
 * Frees h. NULL is a no-op. libcurl frees its copy of the secret without
 * wiping it: nothing we can reach holds one.
 */
void http_free(struct http *h);

/*
 * Sends rq and waits for the answer; resp is overwritten. PF_OK if an
 * answer came, whatever its status (resp->status): the body of a 2xx
 * answer went to rq->sink, or to resp->body if rq->sink is NULL (at most
 * rq->cap bytes); the body of any other answer to resp->body (at most
 * HTTP_MAX_ERROR_BODY, cut there). Free resp->body with http_resp_clear.
 * Otherwise:
 *   PF_ENET / PF_ETIMEOUT  no answer (refused, reset, stalled, no TLS)
 *   PF_EAUTH               the server's key or certificate is not the
 *                          one trusted (see http_opts)
 *   PF_EPROTO              a body or headers over their cap, or a bad
 *                          redirect or answer
 *   PF_ECANCELLED          *o->cancel was set (see http_opts)
 *   PF_ENOMEM, or what the sink returned
 * with the reason in resp->err.
 */
enum pf_status http_request(struct http *h, const struct http_req *rq,
    struct http_resp *resp);

/* Frees resp->body; safe on a zeroed resp. */
void http_resp_clear(struct http_resp *resp);

/* The base URL as given (borrowed), for messages. */
const char *http_base(const struct http *h);

/*
 * Body bytes received by h over all its requests so far, error answers
 * and bodies given to sinks included: lets a caller that makes many
 * requests bound what a server can make it hold.
 */
uint64_t http_bytes_read(const struct http *h);

#endif
