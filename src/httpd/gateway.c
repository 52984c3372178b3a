/* SPDX-License-Identifier: MIT */
/* The gateway's daemon: libmicrohttpd set up, started and stopped. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "conns.h"
#include "events.h"
#include "gateway.h"
#include "listcache.h"
#include "log.h"
#include "monitor.h"
#include "response.h"
#include "routes.h"
#include "tus.h"

/* Per request (*req_cls): what the access handler keeps between calls. */
struct gw_request {
	uint64_t	 body;		/* bytes of body seen (discarded) */
	bool		 tus;		/* tus.c's: it takes bodies */
	void		*tus_state;
};

void
httpd_config_defaults(struct httpd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port = 8080;
	cfg->max_connections = 128;
	cfg->max_per_ip = 32;
	cfg->max_user_events = 8;
	cfg->timeout_s = 10;
}

/* A request ended: its state goes, the connection's deadline restarts. */
static void
request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct gw_request *rq = *req_cls;

	(void)toe;
	if (rq != NULL)
		tus_request_free(rq->tus_state);
	free(*req_cls);
	*req_cls = NULL;
	conns_request_done(cls, c);
}

/* How a request says where its body ends: its framing headers. */
struct framing {
	const char	*length;	/* the first Content-Length */
	bool		 lengths_differ;
	const char	*coding;	/* the last Transfer-Encoding */
	unsigned	 codings;
};

static enum MHD_Result
note_framing(void *cls, enum MHD_ValueKind kind, const char *key,
    const char *value)
{
	struct framing *f = cls;

	(void)kind;
	if (value == NULL)
		return MHD_YES;
	if (strcasecmp(key, "Content-Length") == 0) {
		if (f->length != NULL && strcmp(f->length, value) != 0)
			f->lengths_differ = true;
		if (f->length == NULL)
			f->length = value;
	} else if (strcasecmp(key, "Transfer-Encoding") == 0) {
		f->coding = value;
		f->codings++;
	}
	return MHD_YES;
}

/*
 * Refuses, and closes the connection after, a request whose body's end
 * two parties could read apart (RFC 9112 6.3: request smuggling): two
 * Content-Lengths that differ, or one beside Transfer-Encoding; and one
 * in a coding other than chunked (RFC 9112 6.1: 501). MHD_YES if none.
 */
static enum MHD_Result
refuse_framing(struct MHD_Connection *c, bool *refused)
{
	struct framing f = { .length = NULL };
	const char *why = NULL;
	unsigned status = MHD_HTTP_BAD_REQUEST;

	MHD_get_connection_values(c, MHD_HEADER_KIND, note_framing, &f);
	if (f.lengths_differ)
		why = "Content-Length given twice, with different values";
	else if (f.codings > 0 && f.length != NULL)
		why = "both Content-Length and Transfer-Encoding";
	else if (f.codings > 1 || (f.codings == 1 &&
	    strcasecmp(f.coding, "chunked") != 0)) {
		why = "a Transfer-Encoding other than chunked";
		status = MHD_HTTP_NOT_IMPLEMENTED;
	}
	if ((*refused = why != NULL))
		return resp_error_with(c, status, status ==
		    MHD_HTTP_BAD_REQUEST ? "bad_request" : "not_implemented",
		    why, "Connection", "close");
	return MHD_YES;
}

/*
 * MHD's access handler: tus requests (their bodies are uploads) go to
 * tus.c; for the others it bounds the request body, which no endpoint
 * takes, then hands the request to the route table.
 */
static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct gw_request *rq = *req_cls;
	const char *length;
	enum MHD_Result ret;
	bool refused;

	(void)version;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*req_cls = rq;
		ret = refuse_framing(c, &refused);
		if (refused)
			return ret;
		if ((rq->tus = tus_path(url)))
			return tus_access(cls, c, url, method, upload_data,
			    upload_data_size, &rq->tus_state);
		/*
		 * Refused before it is read when the length says so and
		 * reading it would cost more than the client's reset.
		 */
		length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    "Content-Length");
		if (length != NULL && strtoull(length, NULL, 10) > GW_DRAIN_MAX)
			return resp_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
			    "too_large", "request body over %d bytes",
			    GW_MAX_BODY);
		return MHD_YES;
	}
	if (rq->tus)
		return tus_access(cls, c, url, method, upload_data,
		    upload_data_size, &rq->tus_state);
	if (*upload_data_size != 0) {
		/*
		 * No endpoint takes a body: drop it. One over the cap is
		 * answered at its end (MHD takes no response while a body
		 * is coming); the request deadline bounds a chunked one.
		 */
		rq->body += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->body > GW_MAX_BODY)
		return resp_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "request body over %d bytes", GW_MAX_BODY);
	return routes_dispatch(cls, c, url, method);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* libmicrohttpd's own messages, at debug level. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http: %s", msg);
}

/* bind and port as a socket address into *ss; false if not an address. */
static bool
bind_address(const char *bind, unsigned port, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, bind, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		return true;
	}
	if (inet_pton(AF_INET6, bind, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		return true;
	}
	return false;
}

/*
 * Reads the PEM file path into b (at most GW_MAX_PEM bytes): GnuTLS takes
 * the key and certificate from memory only, as MHD hands them over.
 */
static enum pf_status
read_pem(const char *path, struct pf_buf *b)
{
	enum pf_status rc = PF_EUSAGE;
	char chunk[4096];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		log_error("HTTPS: cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!pf_buf_add(b, chunk, n))
			break;
	if (ferror(f) || b->failed || b->len == 0) {
		log_error("HTTPS: cannot read %s (empty, unreadable or over "
		    "%d bytes)", path, GW_MAX_PEM);
		goto out;
	}
	rc = PF_OK;
out:
	pf_wipe(chunk, sizeof(chunk));
	fclose(f);
	return rc;
}

/* Starts MHD on h->cfg's address (bind); h->daemon NULL if it cannot. */
static void
start_daemon(struct httpd *h, const char *bind,
    const struct sockaddr_storage *ss)
{
	const struct httpd_config *cfg = &h->cfg;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *di;
	/* HTTPS when httpd_start read a key: its options, else none. */
	struct MHD_OptionItem tls[] = {
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key.p },
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert.p },
		{ MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)GW_TLS_PRIORITIES },
		{ MHD_OPTION_END, 0, NULL }
	};

	if (ss->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (h->tls_key.p != NULL)
		flags |= MHD_USE_TLS;
	else
		tls[0].option = MHD_OPTION_END;
	h->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL,
	    access_handler, h,
	    MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)ss,
	    MHD_OPTION_THREAD_POOL_SIZE, 2u,
	    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
	    /* Over max_per_ip a request gets 503; past twice, no accept. */
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, 2 * cfg->max_per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
	    MHD_OPTION_NOTIFY_CONNECTION, conns_notify, h,
	    MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	    MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
	if (h->daemon == NULL) {
		log_error("cannot serve HTTP%s on %s port %u (in use?%s)",
		    h->tls_key.p ? "S" : "", bind, cfg->port, h->tls_key.p ?
		    " or a key GnuTLS cannot use" : "");
		return;
	}
	di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : cfg->port;
}

enum pf_status
httpd_start(const struct httpd_config *cfg, struct engine *e,
    struct httpd **out)
{
	const char *bind = cfg->bind ? cfg->bind : "127.0.0.1";
	struct sockaddr_storage ss;
	struct httpd *h;
	enum pf_status rc = PF_ENOMEM;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return PF_ENOMEM;
	h->cfg = *cfg;
	h->engine = e;
	snprintf(h->version, sizeof(h->version), "%s", PACKAGE_VERSION);
	pthread_mutex_init(&h->conns_lock, NULL);
	pthread_mutex_init(&h->logins_lock, NULL);
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->lists_lock, NULL);
	pf_cond_init_monotonic(&h->wake);
	pf_buf_init(&h->tls_cert, GW_MAX_PEM);
	pf_buf_init(&h->tls_key, GW_MAX_PEM);
	h->tls_key.secret = true;
	/* Links made by any node (or before a restart) stay good. */
	if ((rc = engine_derive_key(e, "paraflow download links",
	    h->secret)) != PF_OK)
		goto out;
	if (cfg->tls_cert != NULL && ((rc = read_pem(cfg->tls_cert,
	    &h->tls_cert)) != PF_OK || (rc = read_pem(cfg->tls_key,
	    &h->tls_key)) != PF_OK))
		goto out;
	if (!bind_address(bind, cfg->port, &ss)) {
		log_error("--http-bind %s: not an IP address", bind);
		rc = PF_EUSAGE;
		goto out;
	}
	start_daemon(h, bind, &ss);
	if (h->daemon == NULL) {
		rc = PF_ENET;
		goto out;
	}
	if ((rc = monitor_start(h)) != PF_OK)
		goto out;
	log_info("HTTP gateway on %s port %u (%s)", bind, h->port,
	    h->tls_key.p != NULL ? "HTTPS" : "plain HTTP, no TLS");
	*out = h;
	h = NULL;
out:
	httpd_stop(h);
	return rc;
}

unsigned
httpd_port(const struct httpd *h)
{
	return h->port;
}

void
httpd_stop(struct httpd *h)
{
	if (h == NULL)
		return;
	monitor_stop(h);
	if (h->daemon != NULL) {
		/* MHD must not stop with suspended connections. */
		events_close(h);
		MHD_stop_daemon(h->daemon);
	}
	pf_wipe(h->logins, sizeof(h->logins));
	pf_wipe(h->secret, sizeof(h->secret));
	pf_buf_free(&h->tls_key);
	pf_buf_free(&h->tls_cert);
	/* The monitor's rates: request threads read them until MHD stops. */
	free(h->rates);
	listcache_clear(h);
	pthread_mutex_destroy(&h->lists_lock);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->logins_lock);
	pthread_mutex_destroy(&h->conns_lock);
	free(h);
}
