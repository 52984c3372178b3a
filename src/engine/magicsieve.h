/* SPDX-License-Identifier: MIT */
/*
 * libmagic's database cut down to the rules that can name given MIME
 * types. Classifying a 512-byte head with the whole database (15,000
 * rules) costs 0.2-0.5 ms of CPU; with the cut one, a tenth of that. A
 * head the cut database names none of the types cannot be any of them
 * for the whole one either (magicsieve.c says why), so only the heads it
 * flags need the whole database's word.
 */
#ifndef PF_MAGICSIEVE_H
#define PF_MAGICSIEVE_H

#include <stddef.h>

#define MAGICSIEVE_FILES	4	/* compiled files in the search path */

struct magicsieve {
	void	*buf[MAGICSIEVE_FILES];	/* for magic_load_buffers() */
	size_t	 len[MAGICSIEVE_FILES];
	size_t	 nbuf;
	size_t	 kept, total;		/* top-level rules */
};

/*
 * Builds sv from the database magic_load(NULL) loads: each compiled file
 * in its search path keeps the rules (with their continuations) that can
 * name one of types (the MIME type alone, as MAGIC_MIME_TYPE prints it),
 * call a named rule that can, or run the database again at another
 * offset, and every named rule. 0 on success; -1, with the reason
 * logged, if the database is not one this code can read (a compiled file
 * of another format version, rules in a text file): then there is no
 * sieve, and every head needs the whole database.
 */
int magicsieve_build(struct magicsieve *sv, const char *const *types,
    size_t ntypes);

void magicsieve_free(struct magicsieve *sv);

#endif
