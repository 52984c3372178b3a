/* SPDX-License-Identifier: MIT */
/*
 * The file lists of a few finished transfers, kept parsed and sorted by
 * path: a fetch of a transfer asks for each of its files in turn, and
 * each request needs its entry (10,000 files: 10,000 parses of a 2 MB
 * document otherwise, or 10,000 walks of the list).
 */
#ifndef PF_KEPTLISTS_H
#define PF_KEPTLISTS_H

#include <jansson.h>

struct kept_lists;

struct kept_lists *kept_lists_new(void);

void kept_lists_free(struct kept_lists *k);

/*
 * The entry of transfer id's list whose "path" is path, or NULL: found
 * by a binary search in the kept list, which load(arg) (a new reference,
 * or NULL) loads if it is not kept. *list is set to a new reference to
 * the list that holds the entry (NULL if the load failed): json_decref
 * it once done with the entry. The list is shared between threads: read
 * it, never change or encode it (jansson's encoders mark what they
 * visit).
 */
const json_t *kept_lists_find(struct kept_lists *k, const char *id,
    const char *path, json_t *(*load)(void *arg), void *arg,
    json_t **list);

/* Forgets the list of id (the transfer was deleted). */
void kept_lists_drop(struct kept_lists *k, const char *id);

#endif
