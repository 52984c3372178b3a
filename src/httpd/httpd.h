/* SPDX-License-Identifier: MIT */
/*
 * The HTTP gateway: REST status API, metrics, downloads and the dashboard,
 * served by libmicrohttpd next to the engine. The only gateway header the
 * daemon includes.
 */
#ifndef PF_HTTPD_H
#define PF_HTTPD_H

#include <stdbool.h>

#include "engine.h"
#include "status.h"

struct httpd_config {
	const char	*bind;		/* NULL: 127.0.0.1 */
	unsigned	 port;		/* 0: ephemeral */
	bool		 auth_all;	/* also for healthz, readyz, metrics */
	const char	*admins;	/* comma-separated names, or NULL */
	unsigned	 max_connections;
	unsigned	 max_per_ip;
	unsigned	 max_user_events;	/* event streams per user */
	unsigned	 timeout_s;	/* idle; a whole request gets 3 times */
	const char	*www_dir;	/* the dashboard; NULL: none */
	const char	*tls_cert;	/* PEM files; NULL: plain HTTP */
	const char	*tls_key;
};

/* Fills cfg with the defaults documented in paraflowd(8). */
void httpd_config_defaults(struct httpd_config *cfg);

struct httpd;

/*
 * Binds and starts serving e (borrowed; it must outlive the gateway). A
 * bad address or a port in use fails here, at start-up.
 */
enum pf_status httpd_start(const struct httpd_config *cfg, struct engine *e,
    struct httpd **out);

/* The bound TCP port. */
unsigned httpd_port(const struct httpd *h);

/* Closes every connection and frees h. NULL is a no-op. */
void httpd_stop(struct httpd *h);

#endif
