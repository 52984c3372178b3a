/* SPDX-License-Identifier: MIT */
/* The rendered session lists, kept per view and query for one generation. */
#ifndef PF_LISTCACHE_H
#define PF_LISTCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "buf.h"
#include "gateway.h"

/* Bytes of a key: the view, the query's values (see api_sessions.c). */
#define LISTCACHE_KEY_MAX	320
/* The longest body kept: a page of 500 sessions is about 300 KB. */
#define LISTCACHE_BODY_MAX	(512 * 1024)

/*
 * When a rendered list is still right: the engine's generation
 * (engine_generation) and the monitor's (monitor_generation), both read
 * before the copies it was made from.
 */
struct listcache_gen {
	uint64_t	 engine;
	uint64_t	 monitor;
};

/*
 * A new MHD response holding a copy of the list rendered for key (klen
 * bytes, borrowed) at gen, or NULL if there is none (or no memory). MHD
 * threads.
 */
struct MHD_Response *listcache_get(struct httpd *h, const void *key,
    size_t klen, const struct listcache_gen *gen);

/*
 * Keeps a copy of body (len bytes, borrowed), the list rendered for key
 * at gen, in place of the entry used longest ago; bodies over
 * LISTCACHE_BODY_MAX are not kept. MHD threads.
 */
void listcache_put(struct httpd *h, const void *key, size_t klen,
    const struct listcache_gen *gen, const char *body, size_t len);

/*
 * Appends the JSON of session s at rate (views_session_json's, compact)
 * to b: the text kept from when s last looked the same, else rendered
 * now and kept. False if it could not (out of memory, b full). MHD
 * threads.
 */
bool listcache_session(struct httpd *h, const struct engine_session_info *s,
    double rate, struct pf_buf *b);

/* Frees every entry; at stop, when no request runs. */
void listcache_clear(struct httpd *h);

#endif
