/* SPDX-License-Identifier: MIT */
/* The gateway's route table and the dispatch of a request through it. */
#ifndef PF_ROUTES_H
#define PF_ROUTES_H

#include <microhttpd.h>

#include "gateway.h"

/*
 * Answers the request of c for url by method: finds its route in the
 * table, checks the caller's access, the session id of the path and the
 * method, then calls the route's handler. Returns what the handler (or
 * the error answer) returns. The request body has been read. MHD threads.
 */
enum MHD_Result routes_dispatch(struct httpd *h, struct MHD_Connection *c,
    const char *url, const char *method);

#endif
