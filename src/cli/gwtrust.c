/* SPDX-License-Identifier: MIT */
/* Which key an HTTPS gateway must show: a pin, a CA, or the one seen first. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "gwtrust.h"
#include "net.h"

/*
 * Whether url is https, and its host (brackets of an IPv6 address
 * removed) into host (capacity cap) and port into *port; false if url has
 * no host.
 */
static bool
url_parts(const char *url, bool *https, char *host, size_t cap,
    unsigned *port)
{
	CURLU *u = curl_url();
	char *s = NULL, *h = NULL, *p = NULL;
	size_t len;
	bool ok = false;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) !=
	    CURLUE_OK)
		goto out;
	*https = strcmp(s, "https") == 0;
	len = strlen(h);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		memmove(h, h + 1, len - 2);
		h[len - 2] = '\0';
	}
	if ((len = strlen(h)) >= cap)
		goto out;
	memcpy(host, h, len + 1);
	*port = (unsigned)strtoul(p, NULL, 10);
	ok = true;
out:
	curl_free(s);
	curl_free(h);
	curl_free(p);
	curl_url_cleanup(u);
	return ok;
}

/*
 * Trust on first use: shakes hands with host:port and has trust_check
 * accept its key (or refuse it), which goes into out->pin.
 */
static enum pf_status
first_use(const char *url, const char *host, unsigned port,
    const struct cli_trust *t, unsigned timeout_s, bool quiet,
    struct gwtrust *out, char *err, size_t errcap)
{
	struct pf_tls *ctx = NULL;
	struct pf_conn *c = NULL;
	char why[256];
	bool resumed;
	enum pf_status rc;

	if ((rc = trust_context(t, &ctx, err, errcap)) != PF_OK)
		goto out;
	if ((rc = pf_tcp_connect(host, port, timeout_s * 1000u, &c)) !=
	    PF_OK) {
		snprintf(err, errcap, "cannot reach %s: %s", url,
		    pf_status_message(rc));
		goto out;
	}
	pf_conn_set_timeout(c, timeout_s * 1000u);
	if ((rc = pf_tls_connect(ctx, c, host, &resumed, why,
	    sizeof(why))) != PF_OK) {
		snprintf(err, errcap, "%s: no TLS handshake (%s); a gateway "
		    "started with --http-no-tls is reached with http://", url,
		    why);
		/* Like any gateway we cannot talk to: exit 5, not 8. */
		if (rc == PF_EPROTO)
			rc = PF_ENET;
		goto out;
	}
	if ((rc = trust_check(t, c, host, port, quiet, err, errcap)) !=
	    PF_OK)
		goto out;
	rc = pf_conn_tls_pin(c, out->pin);
out:
	pf_conn_free(c);
	pf_tls_free(ctx);
	return rc;
}

enum pf_status
gwtrust_resolve(const char *url, const struct cli_trust *t,
    unsigned timeout_s, bool quiet, struct gwtrust *out, char *err,
    size_t errcap)
{
	/* The URL's scheme says TLS or not; --no-tls is the native port's. */
	struct cli_trust tls = *t;
	struct pf_tls *ctx = NULL;
	char host[256];
	unsigned port;
	enum pf_status rc;

	memset(out, 0, sizeof(*out));
	if (!url_parts(url, &out->tls, host, sizeof(host), &port)) {
		snprintf(err, errcap, "%s: no host to connect to", url);
		return PF_EUSAGE;
	}
	if (!out->tls)
		return PF_OK;
	tls.no_tls = false;
	if (tls.pin == NULL && tls.cacert == NULL && !tls.ca_system)
		return first_use(url, host, port, &tls, timeout_s, quiet, out,
		    err, errcap);
	/* The options checked as for the native port; the context unused. */
	if ((rc = trust_context(&tls, &ctx, err, errcap)) != PF_OK)
		return rc;
	pf_tls_free(ctx);
	if (tls.pin != NULL)
		snprintf(out->pin, sizeof(out->pin), "%s", tls.pin);
	else
		out->cacert = tls.cacert;
	return PF_OK;
}
