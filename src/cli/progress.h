/* SPDX-License-Identifier: MIT */
/* A progress bar on stderr (bytes, rate, ETA), drawn by its own thread. */
#ifndef PF_PROGRESS_H
#define PF_PROGRESS_H

#include <stdatomic.h>
#include <stdint.h>

struct progress;

/*
 * Starts drawing progress towards total bytes, reading *done (borrowed,
 * updated by other threads) five times a second; the rate counts only
 * what was added to *done after the start. label is copied. Returns
 * NULL (and draws nothing) if stderr is not a terminal or on ENOMEM.
 */
struct progress *progress_start(const char *label, uint64_t total,
    const _Atomic uint64_t *done);

/*
 * Items counted beside the bytes (a transfer's files): done(arg) is
 * called by the drawing thread at each redraw and must be thread-safe.
 */
struct progress_items {
	const char	*what;		/* "files" */
	unsigned	 total;
	unsigned	(*done)(void *arg);
	void		*arg;
};

/* As progress_start, also drawing "done/total what" from items (copied). */
struct progress *progress_start_items(const char *label, uint64_t total,
    const _Atomic uint64_t *done, const struct progress_items *items);

/* Draws a last line, ends it with a newline and frees p. NULL is a no-op. */
void progress_stop(struct progress *p);

/* Formats n bytes as "12.3 MiB" into out (capacity 16). */
void progress_format_bytes(double n, char *out);

#endif
