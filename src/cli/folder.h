/* SPDX-License-Identifier: MIT */
/*
 * "paraflow upload PATH...": what is special about sending many files as
 * one transfer: the dry run, each file's receipt checked against the
 * local file, and the report per file. Main thread only.
 */
#ifndef PF_FOLDER_H
#define PF_FOLDER_H

#include <stdbool.h>

#include "tree.h"
#include "upload.h"

/*
 * Prints what a transfer of t would send (--dry-run): each entry and a
 * summary, or one JSON object with json. Returns the exit status.
 */
int folder_dry_run(const struct tree *t, bool json);

/*
 * Reports a finished transfer r of t (r->status PF_OK): checks the
 * receipt the server gives each stored file against the local file (one
 * that differs changed while it was sent), prints each refused or
 * changed file and a summary (or one JSON object with every file), and
 * returns EXIT_OK, or EXIT_PARTIAL if any file was not stored as it is.
 */
int folder_report(const struct upload_result *r, struct tree *t,
    uint32_t chunk_size, bool json, bool quiet);

#endif
