/* SPDX-License-Identifier: MIT */
/* Gateway internals shared by the files of src/httpd. */
#ifndef PF_GATEWAY_H
#define PF_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "digest.h"
#include "engine.h"
#include "httpd.h"

#define GW_SAMPLE_MS		250	/* the monitor's period */
#define GW_THROUGHPUT_LEN	600	/* one-second samples kept */
#define GW_HEARTBEAT_S		10
#define GW_AUTH_CACHE		256	/* logins remembered */
#define GW_AUTH_TTL_S		300
#define GW_MAX_BODY		4096
#define GW_LINK_TTL_S		300	/* download links */
#define GW_FAIL_MAX		10	/* failed logins a minute an address */
#define GW_FAIL_SLOTS		256	/* addresses tracked */

/* One TCP connection, for the request deadline and the per-address cap. */
struct gw_conn {
	int			 fd;
	struct sockaddr_storage	 addr;		/* the client's, port zeroed */
	bool			 over_limit;	/* over --http-max-per-ip */
	uint64_t		 since_ms;	/* request (or idle) start */
	_Atomic bool		 responding;	/* deadline no longer applies */
	struct gw_conn		*prev, *next;
};

/* A login the gateway has checked, by HMAC of user and password. */
struct gw_login {
	uint8_t			 mac[PF_SHA256_LEN];
	int64_t			 expires;
};

/* Per-session rates the monitor works out, sorted by id. */
struct gw_rate {
	char			 id[ENGINE_ID_LEN + 1];
	uint64_t		 bytes[9];	/* the last 2 s of samples */
	uint64_t		 at_ms[9];
	unsigned		 n;
	double			 bps;
	uint32_t		 acked;		/* at the last event */
	int			 state;
};

/* Failed logins of one client address (see failures_of). */
struct gw_failures {
	struct sockaddr_storage	 addr;
	int64_t			 since;		/* start of its minute */
	unsigned		 count;
};

struct gw_subscriber;

struct httpd {
	struct httpd_config	 cfg;
	struct engine		*engine;
	struct MHD_Daemon	*daemon;
	unsigned		 port;
	uint8_t			 secret[PF_SHA256_LEN];
	char			 version[32];

	pthread_mutex_t		 conns_lock;
	struct gw_conn		*conns;

	pthread_mutex_t		 logins_lock;	/* also for failures */
	struct gw_login		 logins[GW_AUTH_CACHE];
	struct gw_failures	 failures[GW_FAIL_SLOTS];

	/* The monitor: rates, throughput, events. */
	pthread_t		 monitor;
	bool			 monitor_started;
	pthread_mutex_t		 lock;		/* guards what follows */
	pthread_cond_t		 wake;
	bool			 stopping;
	struct gw_rate		*rates;
	size_t			 nrates;
	double			 total_bps;
	uint64_t		 throughput[GW_THROUGHPUT_LEN];
	unsigned		 throughput_at;	/* next slot */
	uint64_t		 last_bytes;
	uint64_t		 next_event_id;
	struct gw_subscriber	*subscribers;
};

/* A request's caller: NULL user for open endpoints. */
struct gw_caller {
	char			 user[ENGINE_MAX_USER + 1];
	bool			 admin;
	bool			 known;	/* signed in */
	bool			 link;	/* a download link instead */
};

/* Responses. Each queues one and returns what the handler returns. */
enum MHD_Result gw_error(struct MHD_Connection *c, unsigned status,
    const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
enum MHD_Result gw_json(struct MHD_Connection *c, unsigned status,
    json_t *body);
/* Queues r (NULL: out of memory) and drops the caller's reference. */
enum MHD_Result gw_queue(struct MHD_Connection *c, unsigned status,
    struct MHD_Response *r);
/* An error response with one more header (none if header is NULL). */
enum MHD_Result gw_error_with(struct MHD_Connection *c, unsigned status,
    const char *code, const char *msg, const char *header, const char *value);
enum MHD_Result gw_unauthorized(struct MHD_Connection *c);
enum MHD_Result gw_not_allowed(struct MHD_Connection *c, const char *allow);
void gw_common_headers(struct MHD_Response *r);

/* Marks the request as answered: the request deadline stops counting. */
void gw_responding(struct MHD_Connection *c);

enum gw_auth {
	GW_AUTH_OK,
	GW_AUTH_FAILED,		/* none, or wrong */
	GW_AUTH_LIMITED		/* too many failures from this address */
};

/* Checks HTTP Basic credentials into *who. */
enum gw_auth gw_authenticate(struct httpd *h, struct MHD_Connection *c,
    struct gw_caller *who);

/*
 * A download link's token for session id, valid until expires, into buf;
 * and the check of one (true if valid now).
 */
bool gw_link_token(const struct httpd *h, const char *id, int64_t expires,
    char *buf, size_t cap);
bool gw_link_valid(const struct httpd *h, const char *id, const char *token);

/* True if who may see a session of user. */
bool gw_may_see(const struct gw_caller *who, const char *user);

/*
 * Session and stats JSON, as docs/api.md shows them: new references, NULL
 * on ENOMEM. gw_stats_json takes h->lock: not with it held.
 */
json_t *gw_session_json(const struct engine_session_info *s, double rate);
json_t *gw_stats_json(struct httpd *h, const struct gw_caller *who);
/*
 * The same from counts by state (engine_count_sessions) and throughput
 * oldest first. h->lock not needed.
 */
json_t *gw_stats_build(const struct httpd *h, const struct engine_stats *st,
    const uint64_t *counts, const uint64_t *throughput, double rate);
const char *gw_state_name(enum engine_state s);

/* Route handlers. */
enum MHD_Result gw_api(struct httpd *h, struct MHD_Connection *c,
    const char *method, const char *url, const struct gw_caller *who);
enum MHD_Result gw_file(struct httpd *h, struct MHD_Connection *c,
    const char *method, const char *id, const struct gw_caller *who);
enum MHD_Result gw_metrics(struct httpd *h, struct MHD_Connection *c);
enum MHD_Result gw_events(struct httpd *h, struct MHD_Connection *c,
    const struct gw_caller *who);
enum MHD_Result gw_static(struct httpd *h, struct MHD_Connection *c,
    const char *method, const char *url);

/*
 * The monitor thread: rates, throughput and the event stream. Start and
 * stop from the thread that starts and stops the gateway.
 */
enum pf_status gw_monitor_start(struct httpd *h);
void gw_monitor_stop(struct httpd *h);
/* Current rate of session id (h->lock not held), 0 if unknown. */
double gw_rate_of(struct httpd *h, const char *id);
/*
 * Ends every event stream, so the daemon can stop: resumes each suspended
 * one (MHD must not stop with one) and no stream suspends after. Call
 * after gw_monitor_stop, before MHD_stop_daemon.
 */
void gw_events_close(struct httpd *h);
/*
 * Sends an event to the streams of user (NULL: all) and admins; data is a
 * reference it takes. Takes h->lock: not with it held.
 */
void gw_publish(struct httpd *h, const char *event, const char *user,
    json_t *data);
/* Cuts connections over the whole-request deadline. Monitor thread. */
void gw_enforce_deadlines(struct httpd *h);

#endif
