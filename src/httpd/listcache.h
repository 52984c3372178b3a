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

/* A rendered list: its text, shared by the cache and responses. */
struct listcache_body;

/*
 * A new body of len bytes of text (taken: a malloc'd block, freed with
 * the body), with one reference, the caller's; NULL (text freed) on
 * ENOMEM. Any thread.
 */
struct listcache_body *listcache_body_new(char *text, size_t len);

/* Drops a reference to body (a struct listcache_body); NULL: no-op. */
void listcache_body_unref(void *body);

/*
 * A new MHD response sending b, without a copy: it holds a reference
 * until MHD is done with it. NULL on ENOMEM. Any thread.
 */
struct MHD_Response *listcache_response(struct listcache_body *b);

/*
 * A new MHD response sending the list rendered for key (klen bytes,
 * borrowed) at gen, or NULL if there is none (or no memory). MHD
 * threads.
 */
struct MHD_Response *listcache_get(struct httpd *h, const void *key,
    size_t klen, const struct listcache_gen *gen);

/*
 * Keeps body (with a reference of its own), the list rendered for key
 * at gen, in place of the entry used longest ago; bodies over
 * LISTCACHE_BODY_MAX are not kept. MHD threads.
 */
void listcache_put(struct httpd *h, const void *key, size_t klen,
    const struct listcache_gen *gen, struct listcache_body *body);

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
