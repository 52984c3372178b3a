/* SPDX-License-Identifier: MIT */
/*
 * The engine's table of the gateway's new uploads (engine.h declares the
 * engine_upload_* calls themselves): those created and waiting for their
 * first bytes, with the name they will be opened under.
 */
#ifndef PF_GWUPLOAD_H
#define PF_GWUPLOAD_H

struct gwup;

/* An empty table; NULL on ENOMEM. At engine start. */
struct gwup *gwup_new(void);

/*
 * Frees g and drops its references to sessions (before the registry
 * goes). NULL is a no-op.
 */
void gwup_free(struct gwup *g);

#endif
