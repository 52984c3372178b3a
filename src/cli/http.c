/* SPDX-License-Identifier: MIT */
/*
 * One libcurl easy handle set up to trust no server but the one its
 * caller names (a key pin or a CA), and its requests.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "buf.h"
#include "http.h"
#include "log.h"

struct http {
	CURL		*curl;
	char		*base;		/* without a trailing '/' */
	bool		 https;
	unsigned	 timeout_s;
	const volatile sig_atomic_t *cancel;	/* borrowed, or NULL */
	uint64_t	 bytes_read;	/* body bytes, every request */
	char		 errbuf[CURL_ERROR_SIZE];
};

/* One request in flight: what the callbacks need. */
struct xfer {
	struct http		*h;
	const struct http_req	*rq;
	struct http_resp	*resp;
	struct pf_buf		 body;		/* goes to resp->body */
	size_t			 hdr_bytes;	/* header bytes read */
	bool			 full;		/* an error body hit its cap */
	enum pf_status		 rc;		/* why a callback aborted */
};

bool
http_base_valid(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *part = NULL;
	bool ok = false;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		goto out;
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    *host == '\0')
		goto out;
	/* Credentials go in --user; a query would be cut by our paths. */
	if (curl_url_get(u, CURLUPART_USER, &part, 0) != CURLUE_NO_USER ||
	    curl_url_get(u, CURLUPART_QUERY, &part, 0) != CURLUE_NO_QUERY ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) !=
	    CURLUE_NO_FRAGMENT)
		goto out;
	ok = true;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(part);
	curl_url_cleanup(u);
	return ok;
}

const char *
http_base(const struct http *h)
{
	return h->base;
}

uint64_t
http_bytes_read(const struct http *h)
{
	return h->bytes_read;
}

/*
 * Parses the decimal number at *p (digits only: no sign, no space, no
 * overflow) and moves *p past it. False if there is none or it is too big.
 */
static bool
parse_u64(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;

	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	*p = s;
	return true;
}

/*
 * Reads "bytes FIRST-LAST/TOTAL" into r; anything else (a sign, a space,
 * "*", a number past 2^64) leaves r without a range.
 */
static void
parse_content_range(const char *v, struct http_resp *r)
{
	uint64_t first, last, total;

	if (strncasecmp(v, "bytes ", 6) != 0)
		return;
	v += 6;
	if (!parse_u64(&v, &first) || *v++ != '-' ||
	    !parse_u64(&v, &last) || *v++ != '/' ||
	    !parse_u64(&v, &total) || *v != '\0')
		return;
	if (first <= last && last < total) {
		r->has_range = true;
		r->range_first = first;
		r->range_total = total;
	}
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	struct http_resp *r = x->resp;
	size_t len = size * n, vlen;
	const char *v;
	char line[256];

	if (len > HTTP_MAX_HEADERS - x->hdr_bytes) {
		x->rc = PF_EPROTO;
		snprintf(r->err, sizeof(r->err), "the headers of the answer "
		    "are larger than %u bytes", HTTP_MAX_HEADERS);
		return 0;
	}
	x->hdr_bytes += len;
	/* Each answer, redirects included, starts with a status line. */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		r->etag[0] = '\0';
		r->has_range = false;
		return len;
	}
	if (len >= sizeof(line))
		return len;	/* no header we read is that long */
	memcpy(line, p, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if ((v = strchr(line, ':')) == NULL)
		return len;
	for (v++; *v == ' ' || *v == '\t'; v++)
		;
	vlen = strlen(v);
	while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (strncasecmp(line, "etag:", 5) == 0) {
		if (vlen < sizeof(r->etag)) {
			memcpy(r->etag, v, vlen);
			r->etag[vlen] = '\0';
		}
	} else if (strncasecmp(line, "content-range:", 14) == 0) {
		line[(size_t)(v - line) + vlen] = '\0';
		parse_content_range(v, r);
	}
	return len;
}

/*
 * Appends to the body, up to cap bytes; false when that would pass it, or
 * on ENOMEM (x->rc says so). The buffer grows from what arrived, never
 * from a length the server announced.
 */
static bool
body_append(struct xfer *x, const char *p, size_t n, size_t cap)
{
	struct pf_buf *b = &x->body;

	if (n > cap || b->len > cap - n)
		return false;
	b->max = cap;
	if (!pf_buf_add(b, p, n)) {
		x->rc = PF_ENOMEM;
		return false;
	}
	return true;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	long code = 0;
	enum pf_status rc;

	curl_easy_getinfo(x->h->curl, CURLINFO_RESPONSE_CODE, &code);
	x->resp->status = code;	/* for the sink */
	x->h->bytes_read += len;
	if (code >= 300 && code < 400)
		return len;	/* a redirect's own body: not ours */
	if (code >= 200 && code < 300) {
		if (x->rq->sink != NULL) {
			if ((rc = x->rq->sink(x->rq->arg, p, len)) == PF_OK)
				return len;
			x->rc = rc;
			return 0;
		}
		if (body_append(x, p, len, x->rq->cap))
			return len;
		if (x->rc == PF_OK) {
			x->rc = PF_EPROTO;
			snprintf(x->resp->err, sizeof(x->resp->err),
			    "the answer is larger than %zu bytes", x->rq->cap);
		}
		return 0;
	}
	/* An error: its status says enough; its message is a bonus. */
	if (body_append(x, p, len, HTTP_MAX_ERROR_BODY))
		return len;
	x->full = x->rc == PF_OK;
	return 0;
}

/* Abandons the transfer once the caller's cancel flag is set. */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
	const struct http *h = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return *h->cancel != 0;
}

/* Sets an option whose failure leaves the handle unusable. */
#define SETOPT(h, opt, v) do {						\
	if (curl_easy_setopt((h)->curl, (opt), (v)) != CURLE_OK) {	\
		log_error("%s: libcurl refused %s", __func__, #opt);	\
		goto out;						\
	}								\
} while (0)

struct http *
http_new(const struct http_opts *o)
{
	struct http *h;
	size_t len;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	if ((h->base = strdup(o->base)) == NULL ||
	    (h->curl = curl_easy_init()) == NULL)
		goto out;
	len = strlen(h->base);
	while (len > 0 && h->base[len - 1] == '/')
		h->base[--len] = '\0';
	h->timeout_s = o->timeout_s;
	/*
	 * Whatever a server says, only HTTP(S), and no more than a few hops;
	 * from https, never down to plain http.
	 */
	h->https = strncasecmp(h->base, "https:", 6) == 0;
	SETOPT(h, CURLOPT_PROTOCOLS_STR, h->https ? "https" : "http,https");
	SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, h->https ? "https" :
	    "http,https");
	if (o->pin != NULL) {
		/* The pin is the trust: a self-signed key is what it names. */
		SETOPT(h, CURLOPT_PINNEDPUBLICKEY, o->pin);
		SETOPT(h, CURLOPT_SSL_VERIFYPEER, 0L);
		SETOPT(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (o->cacert != NULL)
		SETOPT(h, CURLOPT_CAINFO, o->cacert);
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 1L);
	SETOPT(h, CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRS);
	/*
	 * CURLOPT_UNRESTRICTED_AUTH stays off: libcurl sends the password
	 * only to the host (scheme and port) it was given for, never to one
	 * a redirect names.
	 */
	SETOPT(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	SETOPT(h, CURLOPT_USERNAME, o->user);
	SETOPT(h, CURLOPT_PASSWORD, o->secret);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT, (long)o->timeout_s);
	/* A peer that stalls for timeout_s is gone; a slow one is not. */
	SETOPT(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	SETOPT(h, CURLOPT_LOW_SPEED_TIME, (long)o->timeout_s);
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(h, CURLOPT_USERAGENT, "paraflow/" PACKAGE_VERSION);
	SETOPT(h, CURLOPT_ERRORBUFFER, h->errbuf);
	SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
	SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
	if ((h->cancel = o->cancel) != NULL) {
		/* Called about once a second even while nothing arrives. */
		SETOPT(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		SETOPT(h, CURLOPT_XFERINFODATA, h);
		SETOPT(h, CURLOPT_NOPROGRESS, 0L);
	}
	return h;
out:
	http_free(h);
	return NULL;
}

struct http *
http_dup(const struct http *h)
{
	struct http *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	if ((d->base = strdup(h->base)) == NULL ||
	    (d->curl = curl_easy_duphandle(h->curl)) == NULL)
		goto out;
	d->https = h->https;
	d->timeout_s = h->timeout_s;
	d->cancel = h->cancel;
	/* The options that point into h must point into d. */
	SETOPT(d, CURLOPT_ERRORBUFFER, d->errbuf);
	if (d->cancel != NULL)
		SETOPT(d, CURLOPT_XFERINFODATA, d);
	return d;
out:
	http_free(d);
	return NULL;
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	free(h->base);
	free(h);
}

void
http_resp_clear(struct http_resp *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

/* What a failed transfer means to the caller. */
static enum pf_status
curl_status(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return PF_ETIMEOUT;
	case CURLE_OUT_OF_MEMORY:
		return PF_ENOMEM;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		return PF_EAUTH;	/* the server is not the one named */
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_FILESIZE_EXCEEDED:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		return PF_EPROTO;
	default:
		return PF_ENET;
	}
}

enum pf_status
http_request(struct http *h, const struct http_req *rq, struct http_resp *resp)
{
	struct xfer x = { .h = h, .rq = rq, .resp = resp, .rc = PF_OK };
	struct curl_slist *hdrs = NULL, *l;
	char *url = NULL, line[HTTP_ETAG_MAX + 16];
	enum pf_status rc = PF_ENOMEM;
	bool get = strcmp(rq->method, "GET") == 0;
	CURLcode cc;

	memset(resp, 0, sizeof(*resp));
	pf_buf_init(&x.body, 0);	/* body_append sets the cap */
	h->errbuf[0] = '\0';
	if (asprintf(&url, "%s%s", h->base, rq->path) == -1) {
		url = NULL;
		goto out;
	}
	if (rq->if_range != NULL) {
		snprintf(line, sizeof(line), "If-Range: %s", rq->if_range);
		if ((l = curl_slist_append(hdrs, line)) == NULL)
			goto out;
		hdrs = l;
	}
	rc = PF_EINTERNAL;
	SETOPT(h, CURLOPT_URL, url);
	SETOPT(h, CURLOPT_HTTPGET, 1L);
	SETOPT(h, CURLOPT_CUSTOMREQUEST, get ? NULL : rq->method);
	SETOPT(h, CURLOPT_RANGE, rq->range);
	SETOPT(h, CURLOPT_HTTPHEADER, hdrs);
	SETOPT(h, CURLOPT_HEADERDATA, &x);
	SETOPT(h, CURLOPT_WRITEDATA, &x);
	/* A JSON answer has no reason to last; a download may take hours. */
	SETOPT(h, CURLOPT_TIMEOUT, rq->sink != NULL ? 0L :
	    (long)h->timeout_s * 3);
	log_debug("%s %s%s%s", rq->method, url, rq->range ? " range " : "",
	    rq->range ? rq->range : "");
	cc = curl_easy_perform(h->curl);
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
	log_debug("%s %s: %ld, %s", rq->method, url, resp->status,
	    curl_easy_strerror(cc));
	if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && x.full)) {
		rc = PF_OK;
		goto out;
	}
	if (cc == CURLE_WRITE_ERROR && x.rc != PF_OK) {
		rc = x.rc;
		goto out;
	}
	if (cc == CURLE_ABORTED_BY_CALLBACK && h->cancel != NULL &&
	    *h->cancel != 0) {
		rc = PF_ECANCELLED;
		snprintf(resp->err, sizeof(resp->err), "interrupted");
		goto out;
	}
	rc = curl_status(cc);
	snprintf(resp->err, sizeof(resp->err), "%s", h->errbuf[0] != '\0' ?
	    h->errbuf : curl_easy_strerror(cc));
	/* An HTTPS gateway closes a plain HTTP request without a word. */
	if (cc == CURLE_GOT_NOTHING && !h->https)
		snprintf(resp->err, sizeof(resp->err), "%s (an HTTPS gateway? "
		    "give https://)", curl_easy_strerror(cc));
	/* And a plain one answers a TLS hello with what TLS cannot read. */
	if (cc == CURLE_SSL_CONNECT_ERROR)
		snprintf(resp->err, sizeof(resp->err), "%s (a gateway started "
		    "with --http-no-tls? give http://)",
		    curl_easy_strerror(cc));
out:
	/* The handle MUST NOT keep pointers to what is freed here. */
	curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	free(url);
	resp->body = pf_buf_steal(&x.body, &resp->len);
	if (rc != PF_OK) {
		if (resp->err[0] == '\0')
			snprintf(resp->err, sizeof(resp->err), "%s",
			    pf_status_message(rc));
		http_resp_clear(resp);
	}
	return rc;
}
