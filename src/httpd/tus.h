/* SPDX-License-Identifier: MIT */
/* Resumable uploads over HTTP: tus 1.0.0 under /api/v1/uploads. */
#ifndef PF_TUS_H
#define PF_TUS_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#include "gateway.h"

/* True if url is tus's: /api/v1/uploads or below. */
bool tus_path(const char *url);

/*
 * MHD's access handler for a tus url: every call of one request, from
 * its headers (*ctx NULL: a new state is kept there) through each piece
 * of its body (streamed to the engine) to its end. It checks the login,
 * the per-address cap and Tus-Resumable itself. MHD threads.
 */
enum MHD_Result tus_access(struct httpd *h, struct MHD_Connection *c,
    const char *url, const char *method, const char *data, size_t *size,
    void **ctx);

/*
 * Frees the state of a request (NULL: no-op). If its body was cut off,
 * what is durable of it stays. From MHD's completed callback.
 */
void tus_request_free(void *ctx);

#endif
