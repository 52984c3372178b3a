/* SPDX-License-Identifier: MIT */
/* The SCRAM-SHA-256 primitives and the GNU SASL context both ends share. */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "scram.h"
#include "status.h"

#define LABEL_JOIN	"paraflow join"

/* Big enough for the base64 of SCRAM_MAX_SALT bytes, the longest field. */
#define B64_FIELD_MAX	(4 * ((SCRAM_MAX_SALT + 2) / 3))

#define AUTHMSG(m)	((m)->buf + sizeof(SCRAM_LABEL_SESSION) - 1)

static Gsasl *sasl;
static pthread_once_t sasl_once = PTHREAD_ONCE_INIT;

/* Hands a property request to the hook of the session that asks. */
static int
sasl_callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
	struct scram_hook *h = gsasl_session_hook_get(sctx);

	(void)ctx;
	if (h == NULL || h->fn == NULL)
		return GSASL_NO_CALLBACK;
	return h->fn(h->arg, sctx, prop);
}

static void
sasl_start(void)
{
	Gsasl *ctx;

	if (gsasl_init(&ctx) != GSASL_OK)
		return;
	gsasl_callback_set(ctx, sasl_callback);
	sasl = ctx;
}

/*
 * One context for the process: it only holds the mechanism table and the
 * callback, which sessions on any thread may share.
 */
Gsasl *
scram_sasl(void)
{
	pthread_once(&sasl_once, sasl_start);
	return sasl;
}

enum pf_status
scram_set_base64(Gsasl_session *sctx, Gsasl_property prop, const uint8_t *p,
    size_t n)
{
	char *b64;
	int grc;

	if ((b64 = pf_base64_encode(p, n)) == NULL)
		return PF_ENOMEM;
	grc = gsasl_property_set(sctx, prop, b64);
	pf_wipe(b64, strlen(b64));
	free(b64);
	return grc == GSASL_OK ? PF_OK : PF_ENOMEM;
}

char *
scram_cbind(const char *gs2, const uint8_t *exporter)
{
	uint8_t buf[sizeof(SCRAM_GS2_PLUS) - 1 + SCRAM_EXPORTER_LEN];
	size_t n = strlen(gs2);

	if (n > sizeof(SCRAM_GS2_PLUS) - 1)
		return NULL;
	memcpy(buf, gs2, n);
	if (strcmp(gs2, SCRAM_GS2_PLUS) == 0) {
		if (exporter == NULL)
			return NULL;
		memcpy(buf + n, exporter, SCRAM_EXPORTER_LEN);
		n += SCRAM_EXPORTER_LEN;
	}
	return pf_base64_encode(buf, n);
}

enum pf_status
scram_client_key_from_hex(const char *hex, uint8_t client_key[PF_SHA256_LEN])
{
	uint8_t salted[PF_SHA256_LEN];
	enum pf_status rc = PF_EPROTO;
	unsigned v;

	if (hex == NULL || strlen(hex) != 2 * PF_SHA256_LEN)
		goto out;
	for (size_t i = 0; i < PF_SHA256_LEN; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			goto out;
		salted[i] = (uint8_t)v;
	}
	rc = pf_hmac_sha256(salted, sizeof(salted), "Client Key", 10,
	    client_key);
out:
	pf_wipe(salted, sizeof(salted));
	return rc;
}

char *
scram_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* Frees a string that held a secret. */
void
scram_free_secret(char *s)
{
	if (s == NULL)
		return;
	pf_wipe(s, strlen(s));
	free(s);
}

/* The length cap comes first, so nothing below walks an overlong input. */
bool
scram_message_ok(const char *msg)
{
	return msg != NULL && strnlen(msg, SCRAM_MAX_MESSAGE + 1) <=
	    SCRAM_MAX_MESSAGE;
}

/*
 * Splits msg into exactly the attributes named by keys, in that order
 * ("nr" for "n=...,r=..."). The reserved "m=", extensions and empty values
 * are refused: ParaFlow speaks only the subset of RFC 5802 it needs, and
 * a stricter parser is a smaller target.
 */
bool
scram_split_attrs(const char *msg, const char *keys, struct scram_attr *out)
{
	const char *p = msg, *end;

	for (size_t i = 0; keys[i] != '\0'; i++) {
		/* Short-circuit: p[1] is read only if p[0] is not the NUL. */
		if (p[0] != keys[i] || p[1] != '=')
			return false;
		p += 2;
		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		if (end == p)
			return false;
		out[i].p = p;
		out[i].len = (size_t)(end - p);
		if (keys[i + 1] == '\0')
			return *end == '\0';
		if (*end != ',')
			return false;
		p = end + 1;
	}
	return false;
}

bool
scram_attr_is(const struct scram_attr *a, const char *s)
{
	return a->len == strlen(s) && memcmp(a->p, s, a->len) == 0;
}

/* RFC 5802: a nonce is printable ASCII other than ','. */
bool
scram_nonce_valid(const char *p, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

/*
 * Parses an RFC 5802 posit-number (no sign, no leading zero). A value too
 * big for unsigned saturates, so the caller's range check refuses it
 * rather than a silent wrap accepting it.
 */
bool
scram_parse_count(const struct scram_attr *a, unsigned *out)
{
	unsigned long long v = 0;

	if (a->len == 0 || a->p[0] == '0')
		return false;
	for (size_t i = 0; i < a->len; i++) {
		if (a->p[i] < '0' || a->p[i] > '9')
			return false;
		if (v <= UINT_MAX)
			v = v * 10 + (unsigned)(a->p[i] - '0');
	}
	*out = v > UINT_MAX ? UINT_MAX : (unsigned)v;
	return true;
}

/* Decodes a base64 attribute; the decoded length, or -1. */
long
scram_decode_attr(const struct scram_attr *a, uint8_t *out, size_t cap)
{
	char buf[B64_FIELD_MAX + 1];
	long n;

	if (a->len > B64_FIELD_MAX)
		return -1;
	memcpy(buf, a->p, a->len);
	buf[a->len] = '\0';
	n = pf_base64_decode(buf, out, cap);
	pf_wipe(buf, sizeof(buf));
	return n;
}

/*
 * AuthMessage = client-first-bare "," server-first ","
 * client-final-without-proof (RFC 5802, section 3).
 */
bool
scram_authmsg_build(struct scram_authmsg *m, const char *first_bare,
    const char *server_first, const char *final_np, size_t final_np_len)
{
	size_t cap = sizeof(m->buf) - (sizeof(SCRAM_LABEL_SESSION) - 1);
	int n;

	memcpy(m->buf, SCRAM_LABEL_SESSION, sizeof(SCRAM_LABEL_SESSION) - 1);
	if (final_np_len > INT_MAX)
		return false;
	n = snprintf(AUTHMSG(m), cap, "%s,%s,%.*s", first_bare, server_first,
	    (int)final_np_len, final_np);
	if (n < 0 || (size_t)n >= cap)
		return false;
	m->len = (size_t)n;
	return true;
}

enum pf_status
scram_authmsg_hmac(const uint8_t key[PF_SHA256_LEN],
    const struct scram_authmsg *m, uint8_t out[PF_SHA256_LEN])
{
	return pf_hmac_sha256(key, PF_SHA256_LEN, AUTHMSG(m), m->len, out);
}

/* K = HMAC(ClientKey, "paraflow session key" || AuthMessage). */
enum pf_status
scram_authmsg_session_key(const uint8_t client_key[PF_SHA256_LEN],
    const struct scram_authmsg *m, uint8_t out[PF_SHA256_LEN])
{
	return pf_hmac_sha256(client_key, PF_SHA256_LEN, m->buf,
	    sizeof(SCRAM_LABEL_SESSION) - 1 + m->len, out);
}

/*
 * SaltedPassword = Hi(password, salt, i); ClientKey, StoredKey and
 * ServerKey from it. SaltedPassword never leaves this function.
 */
enum pf_status
scram_derive_keys(const char *password, size_t passlen, const uint8_t *salt,
    size_t saltlen, unsigned iterations, uint8_t client_key[PF_SHA256_LEN],
    uint8_t stored_key[PF_SHA256_LEN], uint8_t server_key[PF_SHA256_LEN])
{
	enum pf_status rc;
	uint8_t salted[PF_SHA256_LEN];

	if ((rc = pf_pbkdf2_sha256(password, passlen, salt, saltlen,
	    iterations, salted)) != PF_OK)
		goto out;
	if ((rc = pf_hmac_sha256(salted, sizeof(salted), "Client Key", 10,
	    client_key)) != PF_OK)
		goto out;
	if ((rc = pf_sha256(client_key, PF_SHA256_LEN, stored_key)) != PF_OK)
		goto out;
	rc = pf_hmac_sha256(salted, sizeof(salted), "Server Key", 10,
	    server_key);
out:
	pf_wipe(salted, sizeof(salted));
	return rc;
}

enum pf_status
scram_join_proof(const uint8_t key[PF_SHA256_LEN], const char *session_id,
    const uint8_t *nonce, size_t noncelen, const uint8_t *exporter,
    uint8_t out[PF_SHA256_LEN])
{
	size_t exlen = exporter != NULL ? SCRAM_EXPORTER_LEN : 0;
	enum pf_status rc = PF_EINTERNAL;
	size_t idlen, len;
	uint8_t *msg = NULL;

	if (session_id == NULL || (nonce == NULL && noncelen > 0))
		goto out;
	idlen = strlen(session_id);
	if (noncelen > SIZE_MAX - sizeof(LABEL_JOIN) - idlen - exlen)
		goto out;
	len = sizeof(LABEL_JOIN) - 1 + idlen + noncelen + exlen;
	rc = PF_ENOMEM;
	if ((msg = malloc(len)) == NULL)
		goto out;
	memcpy(msg, LABEL_JOIN, sizeof(LABEL_JOIN) - 1);
	memcpy(msg + sizeof(LABEL_JOIN) - 1, session_id, idlen);
	if (noncelen > 0)
		memcpy(msg + sizeof(LABEL_JOIN) - 1 + idlen, nonce, noncelen);
	if (exlen > 0)
		memcpy(msg + len - exlen, exporter, exlen);
	rc = pf_hmac_sha256(key, PF_SHA256_LEN, msg, len, out);
out:
	free(msg);
	return rc;
}
