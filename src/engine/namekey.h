/* SPDX-License-Identifier: MIT */
/* The comparison forms of a file name: NFKC casefold and UTS #39 skeleton. */
#ifndef PF_NAMEKEY_H
#define PF_NAMEKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

struct namekey;

/*
 * Returns the ICU objects the folds need (the NFKC_Casefold normalizer
 * and a spoof checker), or NULL if ICU cannot give them. Immutable once
 * made: any number of threads may use one at the same time.
 */
struct namekey *namekey_new(void);

void namekey_free(struct namekey *k);

/*
 * Whether k folds ASCII names from its table of ICU's answers per
 * character (the default, where the table holds) or through ICU, so that
 * tests can compare the two: never on a key threads share. Returns
 * whether the table is used.
 */
bool namekey_ascii(struct namekey *k, bool on);

/*
 * Folds s (len bytes of valid UTF-8) into a new NUL-terminated UTF-8
 * string in *out, which the caller frees:
 *  - NFKC_Casefold (UAX #15 and the Unicode property of that name):
 *    compatibility forms ("ｓ" -> "s", "¹" -> "1") and case folded, and
 *    every default-ignorable character (ZWSP, ZWJ, soft hyphen, bidi
 *    marks, variation selectors) removed;
 *  - with skeleton, then the UTS #39 skeleton of that, folded again, so
 *    that two strings a reader cannot tell apart ("ѕh" in Cyrillic and
 *    "sh") fold to the same bytes.
 * PF_EBADNAME if ICU refuses the text, PF_ENOMEM on ENOMEM.
 */
enum pf_status namekey_fold(const struct namekey *k, const char *s,
    size_t len, bool skeleton, char **out);

#endif
