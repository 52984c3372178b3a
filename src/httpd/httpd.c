/* SPDX-License-Identifier: MIT */
/* The gateway's daemon: start-up, routing, access, deadlines, responses. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "gateway.h"
#include "log.h"

/* Per request: what the access handler keeps between its calls. */
struct gw_request {
	uint64_t	 body;		/* bytes of body seen (discarded) */
};

void
httpd_config_defaults(struct httpd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->port = 8080;
	cfg->max_connections = 128;
	cfg->max_per_ip = 32;
	cfg->timeout_s = 10;
}

void
gw_common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

enum MHD_Result
gw_queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r)
{
	enum MHD_Result ret;

	if (r == NULL)
		return MHD_NO;
	gw_responding(c);
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
	gw_common_headers(r);
	MHD_add_response_header(r, "Content-Type", "application/json");
	return r;
}

enum MHD_Result
gw_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
	struct MHD_Response *r = json_response(body);

	/* No body (out of memory, or a string jansson refused): a 500. */
	if (r == NULL)
		return gw_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		    "cannot build the answer");
	return gw_queue(c, status, r);
}

enum MHD_Result
gw_error_with(struct MHD_Connection *c, unsigned status, const char *code,
    const char *msg, const char *header, const char *value)
{
	struct MHD_Response *r;

	r = json_response(json_pack("{s:{s:s,s:s}}", "error", "code", code,
	    "message", msg));
	if (r != NULL && header != NULL)
		MHD_add_response_header(r, header, value);
	return gw_queue(c, status, r);
}

enum MHD_Result
gw_error(struct MHD_Connection *c, unsigned status, const char *code,
    const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return gw_error_with(c, status, code, msg, NULL, NULL);
}

enum MHD_Result
gw_unauthorized(struct MHD_Connection *c)
{
	return gw_error_with(c, MHD_HTTP_UNAUTHORIZED, "unauthorized",
	    "sign in with a ParaFlow user (HTTP Basic)", "WWW-Authenticate",
	    "Basic realm=\"paraflow\", charset=\"UTF-8\"");
}

enum MHD_Result
gw_not_allowed(struct MHD_Connection *c, const char *allow)
{
	return gw_error_with(c, MHD_HTTP_METHOD_NOT_ALLOWED,
	    "method_not_allowed", "method not allowed here", "Allow", allow);
}

/* The connection's tracking record (its socket context). */
static struct gw_conn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

void
gw_responding(struct MHD_Connection *c)
{
	struct gw_conn *gc = conn_of(c);

	if (gc != NULL)
		atomic_store(&gc->responding, true);
}

/* The client's address without its port, to count per address. */
static void
client_addr(struct MHD_Connection *c, struct sockaddr_storage *out)
{
	const union MHD_ConnectionInfo *ci;

	memset(out, 0, sizeof(*out));
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	if (ci->client_addr->sa_family == AF_INET6) {
		memcpy(out, ci->client_addr, sizeof(struct sockaddr_in6));
		((struct sockaddr_in6 *)out)->sin6_port = 0;
		((struct sockaddr_in6 *)out)->sin6_flowinfo = 0;
	} else if (ci->client_addr->sa_family == AF_INET) {
		memcpy(out, ci->client_addr, sizeof(struct sockaddr_in));
		((struct sockaddr_in *)out)->sin_port = 0;
	}
}

/* The address part of addr as text, for the log. */
static void
addr_text(const struct sockaddr_storage *addr, char out[INET6_ADDRSTRLEN])
{
	const void *a = addr->ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)addr)->sin_addr;

	if (inet_ntop(addr->ss_family == AF_INET6 ? AF_INET6 : AF_INET, a, out,
	    INET6_ADDRSTRLEN) == NULL)
		snprintf(out, INET6_ADDRSTRLEN, "?");
}

static void
notify_connection(void *cls, struct MHD_Connection *c, void **ctx,
    enum MHD_ConnectionNotificationCode code)
{
	struct httpd *h = cls;
	struct gw_conn *gc = *ctx;
	const union MHD_ConnectionInfo *ci;
	unsigned same = 0;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((gc = calloc(1, sizeof(*gc))) == NULL)
			return;
		ci = MHD_get_connection_info(c,
		    MHD_CONNECTION_INFO_CONNECTION_FD);
		gc->fd = ci ? ci->connect_fd : -1;
		gc->since_ms = pf_now_ms();
		client_addr(c, &gc->addr);
		pthread_mutex_lock(&h->conns_lock);
		for (struct gw_conn *o = h->conns; o != NULL; o = o->next)
			if (memcmp(&o->addr, &gc->addr, sizeof(o->addr)) == 0)
				same++;
		gc->over_limit = same >= h->cfg.max_per_ip;
		gc->next = h->conns;
		if (h->conns)
			h->conns->prev = gc;
		h->conns = gc;
		pthread_mutex_unlock(&h->conns_lock);
		*ctx = gc;
		return;
	}
	if (gc == NULL)
		return;
	pthread_mutex_lock(&h->conns_lock);
	if (gc->prev)
		gc->prev->next = gc->next;
	else
		h->conns = gc->next;
	if (gc->next)
		gc->next->prev = gc->prev;
	pthread_mutex_unlock(&h->conns_lock);
	free(gc);
	*ctx = NULL;
}

void
gw_enforce_deadlines(struct httpd *h)
{
	uint64_t now, limit = 3000ull * h->cfg.timeout_s;

	pthread_mutex_lock(&h->conns_lock);
	/*
	 * Read the clock under the lock: a connection that started (or a
	 * request that ended) while this waited for it has since_ms past a
	 * clock read before, and the unsigned difference would wrap and cut
	 * it at once.
	 */
	now = pf_now_ms();
	for (struct gw_conn *gc = h->conns; gc != NULL; gc = gc->next) {
		if (gc->fd == -1 || atomic_load(&gc->responding) ||
		    gc->since_ms > now || now - gc->since_ms < limit)
			continue;
		/*
		 * MHD's own timeout restarts with every byte, so a client
		 * trickling its request would hold the slot for ever. The
		 * event loop sees the shutdown and closes the connection.
		 * gc->fd is still this connection's socket: MHD tells
		 * NOTIFY_CLOSED (which unlinks gc under conns_lock) before it
		 * closes the socket, so the number cannot have been reused.
		 */
		log_info("http: request not complete after %llu s; closing",
		    (unsigned long long)limit / 1000);
		shutdown(gc->fd, SHUT_RDWR);
		gc->fd = -1;
	}
	pthread_mutex_unlock(&h->conns_lock);
}

/* A request ended: the next one on the connection gets a fresh deadline. */
static void
request_completed(void *cls, struct MHD_Connection *c, void **ctx,
    enum MHD_RequestTerminationCode toe)
{
	struct httpd *h = cls;
	struct gw_conn *gc = conn_of(c);

	(void)toe;
	free(*ctx);
	*ctx = NULL;
	if (gc != NULL) {
		pthread_mutex_lock(&h->conns_lock);
		gc->since_ms = pf_now_ms();
		atomic_store(&gc->responding, false);
		pthread_mutex_unlock(&h->conns_lock);
	}
}

/* The MAC of a download link: HMAC(secret, label, id, expiry), hex. */
static bool
link_mac(const struct httpd *h, const char *id, int64_t expires,
    char out[2 * PF_SHA256_LEN + 1])
{
	uint8_t mac[PF_SHA256_LEN];
	char msg[128];
	int n;

	n = snprintf(msg, sizeof(msg), "paraflow download %s %lld", id,
	    (long long)expires);
	if (n < 0 || (size_t)n >= sizeof(msg) || pf_hmac_sha256(h->secret,
	    sizeof(h->secret), msg, (size_t)n, mac) != PF_OK)
		return false;
	pf_hex_encode(mac, sizeof(mac), out);
	return true;
}

bool
gw_link_token(const struct httpd *h, const char *id, int64_t expires,
    char *buf, size_t cap)
{
	char mac[2 * PF_SHA256_LEN + 1];
	int n;

	if (!link_mac(h, id, expires, mac))
		return false;
	n = snprintf(buf, cap, "%lld.%s", (long long)expires, mac);
	return n > 0 && (size_t)n < cap;
}

bool
gw_link_valid(const struct httpd *h, const char *id, const char *token)
{
	char want[2 * PF_SHA256_LEN + 1];
	const char *dot = strchr(token, '.');
	long long expires;
	char *end;

	if (dot == NULL || strlen(dot + 1) != 2 * PF_SHA256_LEN)
		return false;
	expires = strtoll(token, &end, 10);
	if (end != dot || expires < (long long)time(NULL) ||
	    !link_mac(h, id, expires, want))
		return false;
	return pf_equal_ct(want, dot + 1, 2 * PF_SHA256_LEN);
}

/* True for GET|HEAD /api/v1/sessions/{id}/file?token=...: no login. */
static bool
is_link(struct MHD_Connection *c, const char *url)
{
	static const char prefix[] = "/api/v1/sessions/";
	size_t n = strlen(url);

	return strncmp(url, prefix, sizeof(prefix) - 1) == 0 && n > 5 &&
	    strcmp(url + n - 5, "/file") == 0 && MHD_lookup_connection_value(
	    c, MHD_GET_ARGUMENT_KIND, "token") != NULL;
}

bool
gw_may_see(const struct gw_caller *who, const char *user)
{
	return who->admin || strcmp(who->user, user) == 0;
}

static bool
is_admin(const struct httpd *h, const char *user)
{
	const char *p = h->cfg.admins;
	size_t len = strlen(user);

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, ",");

		if (n == len && strncmp(p, user, n) == 0)
			return true;
		p += n;
		p += *p == ',';
	}
	return false;
}

/* True if user:password passed PBKDF2 recently (cache by HMAC). */
static bool
login_cached(struct httpd *h, const uint8_t mac[PF_SHA256_LEN],
    bool remember)
{
	int64_t now = (int64_t)time(NULL);
	struct gw_login *oldest = &h->logins[0];
	bool found = false;

	pthread_mutex_lock(&h->logins_lock);
	for (int i = 0; i < GW_AUTH_CACHE; i++) {
		struct gw_login *l = &h->logins[i];

		if (l->expires > now && pf_equal_ct(l->mac, mac,
		    PF_SHA256_LEN)) {
			found = true;
			break;
		}
		if (l->expires < oldest->expires)
			oldest = l;
	}
	if (!found && remember) {
		memcpy(oldest->mac, mac, PF_SHA256_LEN);
		oldest->expires = now + GW_AUTH_TTL_S;
	}
	pthread_mutex_unlock(&h->logins_lock);
	return found;
}

/* The cache key of a login: HMAC(secret, user NUL password). */
static bool
login_mac(const struct httpd *h, const char *user, const char *password,
    uint8_t mac[PF_SHA256_LEN])
{
	size_t ulen = strlen(user), plen = strlen(password);
	char *msg;
	bool ok;

	/* The user name cannot hold a NUL: it separates the two. */
	if ((msg = malloc(ulen + 1 + plen)) == NULL)
		return false;
	memcpy(msg, user, ulen + 1);
	memcpy(msg + ulen + 1, password, plen);
	ok = pf_hmac_sha256(h->secret, sizeof(h->secret), msg, ulen + 1 + plen,
	    mac) == PF_OK;
	pf_wipe(msg, ulen + 1 + plen);
	free(msg);
	return ok;
}

/*
 * The failed logins of one client address in the current minute (under
 * logins_lock). Over GW_FAIL_MAX the address waits out the minute: every
 * wrong password costs a PBKDF2, which is what a guesser would spend.
 */
static struct gw_failures *
failures_of(struct httpd *h, const struct sockaddr_storage *addr,
    int64_t now, bool take)
{
	struct gw_failures *f, *oldest = &h->failures[0];

	for (int i = 0; i < GW_FAIL_SLOTS; i++) {
		f = &h->failures[i];
		if (memcmp(&f->addr, addr, sizeof(*addr)) == 0) {
			if (now - f->since >= 60) {
				f->since = now;
				f->count = 0;
			}
			return f;
		}
		if (f->since < oldest->since)
			oldest = f;
	}
	if (!take)
		return NULL;
	oldest->addr = *addr;
	oldest->since = now;
	oldest->count = 0;
	return oldest;
}

enum gw_auth
gw_authenticate(struct httpd *h, struct MHD_Connection *c,
    struct gw_caller *who)
{
	char *user = NULL, *password = NULL;
	uint8_t mac[PF_SHA256_LEN];
	struct sockaddr_storage addr;
	char where[INET6_ADDRSTRLEN];
	struct gw_failures *f;
	int64_t now = (int64_t)time(NULL);
	enum gw_auth rc = GW_AUTH_FAILED;
	size_t ulen;

	memset(who, 0, sizeof(*who));
	client_addr(c, &addr);
	user = MHD_basic_auth_get_username_password(c, &password);
	if (user == NULL || password == NULL ||
	    (ulen = strlen(user)) == 0 || ulen > ENGINE_MAX_USER ||
	    !login_mac(h, user, password, mac))
		goto out;
	if (login_cached(h, mac, false))
		goto ok;
	pthread_mutex_lock(&h->logins_lock);
	f = failures_of(h, &addr, now, false);
	if (f != NULL && f->count >= GW_FAIL_MAX)
		rc = GW_AUTH_LIMITED;
	pthread_mutex_unlock(&h->logins_lock);
	if (rc == GW_AUTH_LIMITED)
		goto out;
	if (engine_check_password(h->engine, user, password) == PF_OK) {
		login_cached(h, mac, true);
		goto ok;
	}
	engine_count_auth_failure(h->engine);
	addr_text(&addr, where);
	pthread_mutex_lock(&h->logins_lock);
	if ((f = failures_of(h, &addr, now, true))->count++ == GW_FAIL_MAX - 1)
		log_warn("http: %s: %d failed logins within a minute; "
		    "refusing its logins for the rest of it", where,
		    GW_FAIL_MAX);
	pthread_mutex_unlock(&h->logins_lock);
	log_warn("http: %s: login failed", where);
	goto out;
ok:
	snprintf(who->user, sizeof(who->user), "%s", user);
	who->admin = is_admin(h, user);
	who->known = true;
	rc = GW_AUTH_OK;
out:
	if (password != NULL) {
		pf_wipe(password, strlen(password));
		MHD_free(password);
	}
	if (user != NULL)
		MHD_free(user);
	pf_wipe(mac, sizeof(mac));
	return rc;
}

static bool
method_is(const char *method, const char *m)
{
	return strcmp(method, m) == 0;
}

static enum MHD_Result
health(struct httpd *h, struct MHD_Connection *c, const char *method,
    bool ready)
{
	if (!method_is(method, "GET") && !method_is(method, "HEAD"))
		return gw_not_allowed(c, "GET, HEAD");
	if (ready && !engine_ready(h->engine))
		return gw_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not_ready",
		    "the engine is stopping or storage is not writable");
	return gw_json(c, MHD_HTTP_OK, json_pack("{s:s}", "status",
	    ready ? "ready" : "ok"));
}

static enum MHD_Result
route(struct httpd *h, struct MHD_Connection *c, const char *url,
    const char *method)
{
	struct gw_caller who;
	bool open_path = strcmp(url, "/healthz") == 0 ||
	    strcmp(url, "/readyz") == 0 || strcmp(url, "/metrics") == 0;
	bool api = strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0;

	memset(&who, 0, sizeof(who));
	if (conn_of(c) != NULL && conn_of(c)->over_limit)
		return gw_error_with(c, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
		    "too many connections from this address", "Connection",
		    "close");
	if (api && is_link(c, url))
		who.link = true;
	else if (api || (open_path && h->cfg.auth_all)) {
		switch (gw_authenticate(h, c, &who)) {
		case GW_AUTH_OK:
			break;
		case GW_AUTH_LIMITED:
			return gw_error_with(c, MHD_HTTP_TOO_MANY_REQUESTS,
			    "too_many_requests", "too many failed logins from "
			    "this address; try again in a minute",
			    "Retry-After", "60");
		default:
			return gw_unauthorized(c);
		}
	}
	if (strcmp(url, "/healthz") == 0)
		return health(h, c, method, false);
	if (strcmp(url, "/readyz") == 0)
		return health(h, c, method, true);
	if (strcmp(url, "/metrics") == 0) {
		if (!method_is(method, "GET") && !method_is(method, "HEAD"))
			return gw_not_allowed(c, "GET, HEAD");
		return gw_metrics(h, c);
	}
	if (api)
		return gw_api(h, c, method, url, &who);
	return gw_static(h, c, method, url);
}

static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **ctx)
{
	struct httpd *h = cls;
	struct gw_request *rq = *ctx;
	const char *length;

	(void)version;
	(void)upload_data;
	if (rq == NULL) {
		if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*ctx = rq;
		/* Refused before it is read, when the length says so. */
		length = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    "Content-Length");
		if (length != NULL && strtoull(length, NULL, 10) > GW_MAX_BODY)
			return gw_error(c, MHD_HTTP_CONTENT_TOO_LARGE,
			    "too_large", "request body over %d bytes",
			    GW_MAX_BODY);
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		/*
		 * No endpoint takes a body: drop it. A chunked one over the
		 * cap is answered at its end (MHD takes no response while
		 * a body is coming); the request deadline bounds it.
		 */
		rq->body += *upload_data_size;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->body > GW_MAX_BODY)
		return gw_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "too_large",
		    "request body over %d bytes", GW_MAX_BODY);
	return route(h, c, url, method);
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http: %s", msg);
}

enum pf_status
httpd_start(const struct httpd_config *cfg, struct engine *e,
    struct httpd **out)
{
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	struct sockaddr *sa;
	const union MHD_DaemonInfo *di;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	const char *bind = cfg->bind ? cfg->bind : "127.0.0.1";
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
	pf_cond_init_monotonic(&h->wake);
	if ((rc = pf_random(h->secret, sizeof(h->secret))) != PF_OK)
		goto out;

	memset(&a4, 0, sizeof(a4));
	memset(&a6, 0, sizeof(a6));
	if (inet_pton(AF_INET, bind, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)cfg->port);
		sa = (struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, bind, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)cfg->port);
		sa = (struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		log_error("--http-bind %s: not an IP address", bind);
		rc = PF_EUSAGE;
		goto out;
	}
	h->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL,
	    access_handler, h,
	    MHD_OPTION_SOCK_ADDR, sa,
	    MHD_OPTION_THREAD_POOL_SIZE, 2u,
	    MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
	    /* Over max_per_ip a request gets 503; past twice, no accept. */
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, 2 * cfg->max_per_ip,
	    MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
	    MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h,
	    MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	    MHD_OPTION_END);
	if (h->daemon == NULL) {
		log_error("cannot serve HTTP on %s port %u (in use?)", bind,
		    cfg->port);
		rc = PF_ENET;
		goto out;
	}
	di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : cfg->port;
	if ((rc = gw_monitor_start(h)) != PF_OK)
		goto out;
	log_info("HTTP gateway on %s port %u", bind, h->port);
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
	gw_monitor_stop(h);
	if (h->daemon != NULL) {
		/* MHD must not stop with suspended connections. */
		gw_events_close(h);
		MHD_stop_daemon(h->daemon);
	}
	pf_wipe(h->logins, sizeof(h->logins));
	pf_wipe(h->secret, sizeof(h->secret));
	free(h->rates);
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->logins_lock);
	pthread_mutex_destroy(&h->conns_lock);
	free(h);
}
