/* SPDX-License-Identifier: MIT */
/* Folds file names into the forms the policy compares, through ICU. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "log.h"
#include "namekey.h"

/*
 * The longest text folded, in UTF-16 units at any step. Names arrive
 * capped at 4096 bytes; NFKC may grow a character eighteenfold (U+FDFA),
 * so this bounds the work a hostile name can ask for.
 */
#define FOLD_MAX	(4096 * 20)

/*
 * A name of ASCII characters folds character by character when each
 * character folds to ASCII and no step in between holds a combining mark:
 * no step can then join or reorder two characters' results (a skeleton
 * maps one code point at a time, and NFC composes no ASCII). ICU's answer
 * for each character, kept here, saves a transfer of 10,000 names a third
 * of its OPEN's time.
 */
#define ASCII_MAX	8	/* bytes of one character's fold */

struct namekey {
	const UNormalizer2	*nfkc_cf;	/* ICU's, never freed */
	USpoofChecker		*spoof;
	bool			 table;		/* the table holds */
	bool			 ascii;		/* and is used */
	int32_t			 grow;		/* most units a character
						   takes at any step */
	char			 fold[2][128][ASCII_MAX];  /* [skeleton][c] */
};

/* What one step of a fold does to UTF-16 text. */
enum step { STEP_NFKC_CF, STEP_SKELETON };

/*
 * Applies step to src (n units) into a new buffer in *dst (*dn units),
 * asking ICU for the length first, as its API intends.
 */
static enum pf_status
apply(const struct namekey *k, enum step step, const UChar *src, int32_t n,
    UChar **dst, int32_t *dn)
{
	UErrorCode err = U_ZERO_ERROR;
	UChar *buf = NULL;
	int32_t len = 0, cap;
	enum pf_status rc = PF_EBADNAME;

	for (cap = 0;; cap = len + 1) {
		err = U_ZERO_ERROR;
		if (step == STEP_NFKC_CF)
			len = unorm2_normalize(k->nfkc_cf, src, n, buf, cap,
			    &err);
		else
			len = uspoof_getSkeleton(k->spoof, 0, src, n, buf, cap,
			    &err);
		if (err != U_BUFFER_OVERFLOW_ERROR || buf != NULL)
			break;
		if (len < 0 || len > FOLD_MAX)
			goto out;
		if ((buf = malloc(((size_t)len + 1) * sizeof(UChar))) ==
		    NULL) {
			rc = PF_ENOMEM;
			goto out;
		}
	}
	if (U_FAILURE(err) || len > FOLD_MAX)
		goto out;
	if (buf == NULL && (buf = malloc(sizeof(UChar))) == NULL) {
		rc = PF_ENOMEM;
		goto out;
	}
	*dst = buf;
	*dn = len;
	buf = NULL;
	rc = PF_OK;
out:
	free(buf);
	return rc;
}

/* Converts UTF-16 text into a new NUL-terminated UTF-8 string. */
static enum pf_status
to_utf8(const UChar *s, int32_t n, char **out)
{
	UErrorCode err = U_ZERO_ERROR;
	int32_t len = 0;
	char *buf;

	u_strToUTF8(NULL, 0, &len, s, n, &err);
	if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err))
		return PF_EBADNAME;
	if ((buf = malloc((size_t)len + 1)) == NULL)
		return PF_ENOMEM;
	err = U_ZERO_ERROR;
	u_strToUTF8(buf, len + 1, NULL, s, n, &err);
	if (U_FAILURE(err)) {
		free(buf);
		return PF_EBADNAME;
	}
	*out = buf;
	return PF_OK;
}

/* Whether UTF-16 text n units long is ASCII. */
static bool
is_ascii16(const UChar *s, int32_t n)
{
	for (int32_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return false;
	return true;
}

/* Whether UTF-16 text n units long holds no combining mark. */
static bool
no_marks16(const UChar *s, int32_t n)
{
	int32_t i = 0;
	UChar32 c;

	while (i < n) {
		U16_NEXT(s, i, n, c);
		if (u_getCombiningClass(c) != 0)
			return false;
	}
	return true;
}

/* What fold_icu says of its text besides the fold. */
struct fold_note {
	bool	by_char;	/* can be made character by character */
	int32_t	most;		/* units at the longest step */
};

/* ICU's fold of s into *out; *note about it. */
static enum pf_status
fold_icu(const struct namekey *k, const char *s, size_t len, bool skeleton,
    char **out, struct fold_note *note)
{
	UErrorCode err = U_ZERO_ERROR;
	UChar *a = NULL, *b = NULL;
	int32_t an = 0, bn = 0;
	enum pf_status rc = PF_EBADNAME;

	*out = NULL;
	if (len > FOLD_MAX / 2)
		goto out;
	/* UTF-8 never takes fewer bytes than UTF-16 takes units. */
	if ((a = malloc((len + 1) * sizeof(UChar))) == NULL) {
		rc = PF_ENOMEM;
		goto out;
	}
	u_strFromUTF8(a, (int32_t)len + 1, &an, s, (int32_t)len, &err);
	if (U_FAILURE(err))
		goto out;
	if ((rc = apply(k, STEP_NFKC_CF, a, an, &b, &bn)) != PF_OK)
		goto out;
	note->by_char = is_ascii16(a, an) && is_ascii16(b, bn);
	note->most = an > bn ? an : bn;
	if (skeleton) {
		/* The skeleton may map to capitals again: fold once more. */
		free(a);
		a = NULL;
		if ((rc = apply(k, STEP_SKELETON, b, bn, &a, &an)) != PF_OK)
			goto out;
		free(b);
		b = NULL;
		if ((rc = apply(k, STEP_NFKC_CF, a, an, &b, &bn)) != PF_OK)
			goto out;
		note->by_char = note->by_char && no_marks16(a, an) &&
		    is_ascii16(b, bn);
		if (an > note->most || bn > note->most)
			note->most = an > bn ? an : bn;
	}
	rc = to_utf8(b, bn, out);
out:
	free(a);
	free(b);
	return rc;
}

enum pf_status
namekey_fold(const struct namekey *k, const char *s, size_t len,
    bool skeleton, char **out)
{
	struct fold_note note;
	size_t i, n = 0;
	char *p;

	for (i = 0; k->ascii && i < len && s[i] != '\0' &&
	    (unsigned char)s[i] < 0x80; i++)
		n += strlen(k->fold[skeleton][(unsigned char)s[i]]);
	/* Where ICU may find a step too long, it says so itself. */
	if (!k->ascii || i < len || len > FOLD_MAX / 2 ||
	    len > (size_t)(FOLD_MAX / k->grow))
		return fold_icu(k, s, len, skeleton, out, &note);
	if ((*out = p = malloc(n + 1)) == NULL)
		return PF_ENOMEM;
	for (i = 0; i < len; i++) {
		const char *f = k->fold[skeleton][(unsigned char)s[i]];

		while (*f != '\0')
			*p++ = *f++;
	}
	*p = '\0';
	return PF_OK;
}

/* Fills k's table from ICU; false if some character cannot be in it. */
static bool
ascii_table(struct namekey *k)
{
	k->grow = 1;
	for (int sk = 0; sk < 2; sk++)
		for (int c = 1; c < 128; c++) {
			char in = (char)c, *out;
			struct fold_note note;
			bool kept;

			if (fold_icu(k, &in, 1, sk, &out, &note) != PF_OK)
				return false;
			if ((kept = note.by_char && strlen(out) < ASCII_MAX))
				strcpy(k->fold[sk][c], out);
			if (note.most > k->grow)
				k->grow = note.most;
			free(out);
			if (!kept)
				return false;
		}
	return true;
}

struct namekey *
namekey_new(void)
{
	UErrorCode err = U_ZERO_ERROR;
	struct namekey *k;

	if ((k = calloc(1, sizeof(*k))) == NULL) {
		log_error("%s: calloc", __func__);
		return NULL;
	}
	k->nfkc_cf = unorm2_getNFKCCasefoldInstance(&err);
	if (U_SUCCESS(err))
		k->spoof = uspoof_open(&err);
	if (U_FAILURE(err)) {
		log_error("%s: ICU: %s", __func__, u_errorName(err));
		namekey_free(k);
		return NULL;
	}
	if (!(k->table = k->ascii = ascii_table(k)))
		log_info("names: ICU's folds of ASCII are not character by "
		    "character; every name goes through ICU");
	return k;
}

bool
namekey_ascii(struct namekey *k, bool on)
{
	k->ascii = on && k->table;
	return k->ascii;
}

void
namekey_free(struct namekey *k)
{
	if (k == NULL)
		return;
	if (k->spoof != NULL)
		uspoof_close(k->spoof);
	free(k);
}
