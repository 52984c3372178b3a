/* SPDX-License-Identifier: MIT */
/* GET /api/v1/stats: the server's counters, as the caller may see them. */
#include "config.h"

#include "handlers.h"
#include "monitor.h"
#include "response.h"
#include "views.h"

enum MHD_Result
api_stats_get(const struct gw_call *call)
{
	uint64_t tp[GW_THROUGHPUT_LEN], counts[ENGINE_NSTATES];
	struct httpd *h = call->h;
	struct engine_stats st;
	double rate;

	engine_stats(h->engine, &st);
	/* Sessions are counted as listed: an admin's all, a user's own. */
	engine_count_sessions(h->engine, call->who.admin ? NULL :
	    call->who.user, counts);
	monitor_throughput(h, tp, &rate);
	return resp_json(call->c, MHD_HTTP_OK, views_stats_json(h, &st,
	    counts, tp, rate));
}
