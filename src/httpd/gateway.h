/* SPDX-License-Identifier: MIT */
/* The gateway's shared state: limits, struct httpd, a request's caller. */
#ifndef PF_GATEWAY_H
#define PF_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "buf.h"
#include "digest.h"
#include "engine.h"
#include "httpd.h"

#define GW_SAMPLE_MS		250	/* the monitor's period */
#define GW_THROUGHPUT_LEN	600	/* one-second samples kept */
#define GW_HEARTBEAT_S		10
#define GW_AUTH_CACHE		256	/* logins remembered */
#define GW_AUTH_TTL_S		300
#define GW_MAX_BODY		4096
/*
 * A refused request's body up to this long is read (and dropped) before
 * the answer: libmicrohttpd closes a connection answered with bytes
 * unread, and a client still sending gets a reset, not the answer. Also
 * what tus reads on after a refusal in the middle of a body.
 */
#define GW_DRAIN_MAX		(1024 * 1024)
#define GW_BODY_STEP		(256 * 1024)	/* see conns_note_body */
#define GW_LINK_TTL_S		300	/* download links */
#define GW_LIST_CACHE		16	/* rendered session lists kept */
#define GW_FRAGS		4096	/* slots for rendered sessions */
#define GW_MAX_PEM		(1024 * 1024)	/* a key, a chain */
/*
 * Ordinary requests keep this many connections (or an eighth of
 * --http-max-connections, if more): past it a new connection pushes out
 * the one that has waited longest, over GW_EVICT_MS, for its request.
 */
#define GW_SPARE		4
#define GW_EVICT_MS		1000
/* One year; browsers want at least that before they trust the header. */
#define GW_HSTS			"max-age=31536000"
/*
 * TLS 1.3 only, as on the native port, and its order of ciphers:
 * AES-128-GCM first, the fastest with AES-NI and as safe here, whatever
 * the client prefers (curl and wrk put AES-256 first).
 */
#define GW_TLS_PRIORITIES	"NORMAL:-VERS-ALL:+VERS-TLS1.3:" \
	"-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"%SERVER_PRECEDENCE"

/* A login the gateway has checked, by HMAC of user and password. */
struct gw_login {
	uint8_t			 mac[PF_SHA256_LEN];
	int64_t			 expires;
};

struct gw_conn;		/* conns.c */
struct gw_list;		/* listcache.c */
struct gw_frag;		/* listcache.c */
struct gw_rate;		/* monitor.c */
struct gw_subscriber;	/* events.c */

/*
 * One gateway. gateway.c creates and frees it; each part touches only its
 * own fields, under the lock named beside them.
 */
struct httpd {
	struct httpd_config	 cfg;
	struct engine		*engine;
	struct MHD_Daemon	*daemon;
	unsigned		 port;
	/* The PEM texts MHD serves HTTPS with, kept while it runs. */
	struct pf_buf		 tls_cert;
	struct pf_buf		 tls_key;	/* secret: wiped */
	uint8_t			 secret[PF_SHA256_LEN];
	char			 version[32];

	/* conns.c: open connections. */
	pthread_mutex_t		 conns_lock;
	struct gw_conn		*conns;
	unsigned		 nconns;

	/* access.c: the login cache (the engine throttles failures). */
	pthread_mutex_t		 logins_lock;
	struct gw_login		 logins[GW_AUTH_CACHE];

	/* listcache.c: rendered session lists. */
	pthread_mutex_t		 lists_lock;
	struct gw_list		*lists[GW_LIST_CACHE];
	uint64_t		 lists_clock;
	struct gw_frag		*frags[GW_FRAGS];
	unsigned		 nfrags;

	/* monitor.c and events.c: rates, throughput, event streams. */
	pthread_t		 monitor;
	bool			 monitor_started;
	pthread_mutex_t		 lock;		/* guards what follows */
	pthread_cond_t		 wake;
	bool			 stopping;
	struct gw_rate		*rates;
	size_t			 nrates;
	uint64_t		 rates_gen;	/* grows as sampled values do */
	double			 total_bps;
	uint64_t		 throughput[GW_THROUGHPUT_LEN];
	unsigned		 throughput_at;	/* next slot */
	uint64_t		 last_bytes;
	uint64_t		 next_event_id;
	struct gw_subscriber	*subscribers;
};

/* A request's caller: an empty user for open endpoints. */
struct gw_caller {
	char			 user[ENGINE_MAX_USER + 1];
	bool			 admin;
	bool			 link;	/* a download link instead */
};

/*
 * One routed request, as routes.c hands it to a handler: the gateway, the
 * connection, what was asked, the {id} of the path (a valid UUID, or empty
 * when the route has none) and who asks. Borrowed for the handler's call.
 */
struct gw_call {
	struct httpd		*h;
	struct MHD_Connection	*c;
	const char		*method;
	const char		*url;
	char			 id[ENGINE_ID_LEN + 1];
	struct gw_caller	 who;
};

#endif
