/* SPDX-License-Identifier: MIT */
/*
 * The file lists of a few finished transfers, kept parsed: a fetch of a
 * transfer asks for each of its files in turn, and each request needs the
 * list (10,000 files: 10,000 parses of a 2 MB document otherwise).
 */
#ifndef PF_KEPTLISTS_H
#define PF_KEPTLISTS_H

#include <jansson.h>

struct kept_lists;

struct kept_lists *kept_lists_new(void);

void kept_lists_free(struct kept_lists *k);

/*
 * A new reference to the list of transfer id, loaded by load(arg) (a new
 * reference, or NULL) if it is not kept; NULL if that fails. The list is
 * shared between threads: read it, never change or encode it (jansson's
 * encoders mark what they visit).
 */
json_t *kept_lists_get(struct kept_lists *k, const char *id,
    json_t *(*load)(void *arg), void *arg);

/* Forgets the list of id (the transfer was deleted). */
void kept_lists_drop(struct kept_lists *k, const char *id);

#endif
