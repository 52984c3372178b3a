/* SPDX-License-Identifier: MIT */
/* The probes: /healthz (the process answers), /readyz (it can take files). */
#include "config.h"

#include "handlers.h"
#include "response.h"

enum MHD_Result
api_health_live(const struct gw_call *call)
{
	return resp_json(call->c, MHD_HTTP_OK, json_pack("{s:s}", "status",
	    "ok"));
}

enum MHD_Result
api_health_ready(const struct gw_call *call)
{
	if (!engine_ready(call->h->engine))
		return resp_error(call->c, MHD_HTTP_SERVICE_UNAVAILABLE,
		    "not_ready",
		    "the engine is stopping or storage is not writable");
	return resp_json(call->c, MHD_HTTP_OK, json_pack("{s:s}", "status",
	    "ready"));
}
