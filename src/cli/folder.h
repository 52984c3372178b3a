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
 * Starts computing, on a few threads, the receipt of each file of t as
 * it is here now, for chunk_size chunks: from what the transfer read if
 * the file is as listed still, else by reading it again. Runs while the
 * server commits, so that the report waits for neither. NULL on ENOMEM.
 * No one may read t's files for the transfer until it is waited for.
 */
struct folder_check *folder_check_start(const struct tree *t,
    uint32_t chunk_size);
/* Waits until c is done (NULL: nothing). */
void folder_check_wait(struct folder_check *c);
/* Stops c (the files not checked yet stay unknown), then frees it. */
void folder_check_free(struct folder_check *c);

/*
 * Reports a finished transfer r of t (r->status PF_OK): checks the
 * receipt the server gives each stored file against the local file (one
 * that differs changed while it was sent; r->check if the upload made
 * one, else made now), prints each refused or changed file and a
 * summary (or one JSON object with every file), and returns EXIT_OK,
 * EXIT_PARTIAL if any file was not stored as it is, or EXIT_REFUSED if
 * every file was refused (nothing stored). streams (a reference it
 * takes; NULL: none) is the JSON of the streams used, as for one file.
 */
int folder_report(const struct upload_result *r, struct tree *t,
    uint32_t chunk_size, json_t *streams, bool json, bool quiet);

#endif
