/* SPDX-License-Identifier: MIT */
/* The store's few XML answers walked with expat, one element at a time. */
#ifndef PF_S3XML_H
#define PF_S3XML_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define S3XML_TEXT_MAX	2048	/* bytes of one element's text */

/*
 * Called as each element ends: its depth (1 for the root), its name
 * (without namespace: S3 uses a default one) and its text, NUL-terminated
 * (empty for an element holding others). Returns false to stop the walk.
 */
typedef bool (*s3xml_fn)(void *arg, int depth, const char *name,
    const char *text);

/*
 * Walks p[0..n). root (rootcap bytes) gets the root element's name, so
 * the caller tells an <Error> from the answer it expected. PF_EIO if the
 * text is not well-formed XML, nests deeper than 8, has an element text
 * longer than S3XML_TEXT_MAX, or fn stopped; PF_ENOMEM. Entities and
 * DTDs are refused: the answer comes from the network.
 */
enum pf_status s3xml_walk(const char *p, size_t n, s3xml_fn fn, void *arg,
    char *root, size_t rootcap);

#endif
