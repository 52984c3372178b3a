/* SPDX-License-Identifier: MIT */
/* The route handlers: what routes.c calls for each line of its table. */
#ifndef PF_HANDLERS_H
#define PF_HANDLERS_H

#include <microhttpd.h>

#include "gateway.h"

/*
 * Each answers one request routed by routes.c, which has checked the
 * method, the caller's access and the {id} of the path before the call:
 * a handler does only its endpoint's work. call is borrowed. MHD threads.
 */

/* api_health.c: GET /healthz, GET /readyz. */
enum MHD_Result api_health_live(const struct gw_call *call);
enum MHD_Result api_health_ready(const struct gw_call *call);

/* metrics.c: GET /metrics, the Prometheus text format. */
enum MHD_Result metrics_serve(const struct gw_call *call);

/* api_sessions.c: the sessions of /api/v1/sessions[/{id}[/chunks|/link]]. */
enum MHD_Result api_sessions_list(const struct gw_call *call);
enum MHD_Result api_sessions_get(const struct gw_call *call);
enum MHD_Result api_sessions_delete(const struct gw_call *call);
enum MHD_Result api_sessions_chunks(const struct gw_call *call);
enum MHD_Result api_sessions_link(const struct gw_call *call);

/* api_files.c: GET /api/v1/sessions/{id}/file, with ranges. */
enum MHD_Result api_files_download(const struct gw_call *call);

/* api_transfer.c: GET /api/v1/sessions/{id}/files and /tar. */
enum MHD_Result api_transfer_files(const struct gw_call *call);
enum MHD_Result api_transfer_tar(const struct gw_call *call);

/* api_stats.c: GET /api/v1/stats. */
enum MHD_Result api_stats_get(const struct gw_call *call);

/* events.c: GET /api/v1/events, the Server-Sent Events stream. */
enum MHD_Result events_subscribe(const struct gw_call *call);

/* assets.c: a file of the dashboard (--www); 404 if it has none. */
enum MHD_Result assets_serve(const struct gw_call *call);

#endif
