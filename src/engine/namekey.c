/* SPDX-License-Identifier: MIT */
/* Folds file names into the forms the policy compares, through ICU. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include <unicode/unorm2.h>
#include <unicode/uspoof.h>
#include <unicode/ustring.h>

#include "log.h"
#include "namekey.h"

/*
 * The longest text folded, in UTF-16 units at any step. Names arrive
 * capped at 4096 bytes; NFKC may grow a character eighteenfold (U+FDFA),
 * so this bounds the work a hostile name can ask for.
 */
#define FOLD_MAX	(4096 * 20)

struct namekey {
	const UNormalizer2	*nfkc_cf;	/* ICU's, never freed */
	USpoofChecker		*spoof;
};

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
	return k;
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

enum pf_status
namekey_fold(const struct namekey *k, const char *s, size_t len,
    bool skeleton, char **out)
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
	}
	rc = to_utf8(b, bn, out);
out:
	free(a);
	free(b);
	return rc;
}
