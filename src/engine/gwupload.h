/* SPDX-License-Identifier: MIT */
/*
 * The engine's table of the gateway's uploads (engine.h declares the
 * engine_upload_* calls themselves): the first bytes of new ones, held
 * until the policy judges them, the chunks writes left unfinished, and
 * the parts of final uploads.
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
