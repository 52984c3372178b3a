/* SPDX-License-Identifier: MIT */
/* The gateway's connections: per-address cap and whole-request deadline. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conns.h"
#include "log.h"
#include "net.h"

/* One TCP connection, for the request deadline and the per-address cap. */
struct gw_conn {
	int			 fd;
	struct sockaddr_storage	 addr;		/* the client's, port zeroed */
	bool			 over_limit;	/* over --http-max-per-ip */
	uint64_t		 since_ms;	/* request (or idle) start */
	uint64_t		 body;		/* body bytes since then */
	_Atomic bool		 responding;	/* deadline no longer applies */
	_Atomic bool		 uploading;	/* a tus body is coming */
	struct gw_conn		*prev, *next;
};

/* The connection's tracking record (its socket context). */
static struct gw_conn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

void
conns_mark_responding(struct MHD_Connection *c)
{
	struct gw_conn *gc = conn_of(c);

	if (gc != NULL)
		atomic_store(&gc->responding, true);
}

void
conns_mark_uploading(struct MHD_Connection *c)
{
	struct gw_conn *gc = conn_of(c);

	if (gc != NULL)
		atomic_store(&gc->uploading, true);
}

bool
conns_over_limit(struct MHD_Connection *c)
{
	struct gw_conn *gc = conn_of(c);

	return gc != NULL && gc->over_limit;
}

void
conns_client_addr(struct MHD_Connection *c, struct sockaddr_storage *out)
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

/*
 * The connection that has waited longest, over GW_EVICT_MS, for a request
 * to come in whole (idle or trickling), or NULL. Answers being sent
 * (event streams, too) do not count, nor upload bodies unless they
 * stalled for the idle timeout: a client may pause between pieces of a
 * file, and cutting it would cost a resume. h->conns_lock held.
 */
static struct gw_conn *
longest_waiting(struct httpd *h, uint64_t now, unsigned *live)
{
	uint64_t idle = 1000ull * h->cfg.timeout_s;
	struct gw_conn *oldest = NULL;

	*live = 0;
	for (struct gw_conn *gc = h->conns; gc != NULL; gc = gc->next) {
		if (gc->fd == -1)
			continue;
		(*live)++;
		if (!atomic_load(&gc->responding) &&
		    gc->since_ms + GW_EVICT_MS <= now &&
		    (!atomic_load(&gc->uploading) ||
		    gc->since_ms + idle <= now) &&
		    (oldest == NULL || gc->since_ms < oldest->since_ms))
			oldest = gc;
	}
	return oldest;
}

/*
 * Keeps GW_SPARE connections (or an eighth) free for requests that come
 * in at once: past that, the connections that have waited longest for
 * their request are shut down, so slow or silent peers cannot take every
 * slot. MHD sees the shutdown and closes them. h->conns_lock held.
 */
static void
make_room(struct httpd *h, uint64_t now)
{
	unsigned max = h->cfg.max_connections, spare = max / 8, live;
	struct gw_conn *gc;

	if (spare < GW_SPARE)
		spare = GW_SPARE;
	if (max <= 2 * spare || h->nconns + spare < max)
		return;
	while ((gc = longest_waiting(h, now, &live)) != NULL &&
	    live + spare >= max) {
		log_debug("http: %u connections open; closing one that has "
		    "waited %llu ms for a request", live,
		    (unsigned long long)(now - gc->since_ms));
		shutdown(gc->fd, SHUT_RDWR);
		gc->fd = -1;
	}
}

/* A new connection: tracked, and counted against its address's cap. */
static void
conn_started(struct httpd *h, struct MHD_Connection *c, void **ctx)
{
	const union MHD_ConnectionInfo *ci;
	struct gw_conn *gc;
	unsigned same = 0;

	if ((gc = calloc(1, sizeof(*gc))) == NULL)
		return;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	gc->fd = ci ? ci->connect_fd : -1;
	gc->since_ms = pf_now_ms();
	conns_client_addr(c, &gc->addr);
	pthread_mutex_lock(&h->conns_lock);
	for (struct gw_conn *o = h->conns; o != NULL; o = o->next)
		if (pf_addr_same_host(&o->addr, &gc->addr))
			same++;
	gc->over_limit = same >= h->cfg.max_per_ip;
	make_room(h, pf_now_ms());
	gc->next = h->conns;
	if (h->conns)
		h->conns->prev = gc;
	h->conns = gc;
	h->nconns++;
	pthread_mutex_unlock(&h->conns_lock);
	*ctx = gc;
}

void
conns_notify(void *cls, struct MHD_Connection *c, void **ctx,
    enum MHD_ConnectionNotificationCode code)
{
	struct httpd *h = cls;
	struct gw_conn *gc = *ctx;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		conn_started(h, c, ctx);
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
	h->nconns--;
	pthread_mutex_unlock(&h->conns_lock);
	free(gc);
	*ctx = NULL;
}

void
conns_note_body(struct httpd *h, struct MHD_Connection *c, size_t n)
{
	struct gw_conn *gc = conn_of(c);

	if (gc == NULL)
		return;
	pthread_mutex_lock(&h->conns_lock);
	/* Every GW_BODY_STEP bytes of an upload, its deadline starts over. */
	if ((gc->body += n) >= GW_BODY_STEP) {
		gc->body = 0;
		gc->since_ms = pf_now_ms();
	}
	pthread_mutex_unlock(&h->conns_lock);
}

void
conns_request_done(struct httpd *h, struct MHD_Connection *c)
{
	struct gw_conn *gc = conn_of(c);

	if (gc == NULL)
		return;
	pthread_mutex_lock(&h->conns_lock);
	gc->since_ms = pf_now_ms();
	gc->body = 0;
	atomic_store(&gc->responding, false);
	atomic_store(&gc->uploading, false);
	pthread_mutex_unlock(&h->conns_lock);
}

void
conns_enforce_deadlines(struct httpd *h)
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
	make_room(h, now);
	pthread_mutex_unlock(&h->conns_lock);
}
