/* SPDX-License-Identifier: MIT */
/* The client side of the SCRAM-SHA-256(-PLUS) login, run by GNU SASL. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "login.h"
#include "proto.h"

struct login {
	enum scram_step	step;
	bool		args_bad;
	bool		plus;
	uint8_t		exporter[SCRAM_EXPORTER_LEN];
	Gsasl_session	*sctx;
	struct scram_hook hook;
	char		user[PROTO_MAX_USER + 1];
	char		password[SCRAM_MAX_PASSWORD + 1];
	char		cnonce[SCRAM_NONCE_MAX + 1];
	char		first_bare[SCRAM_MAX_MESSAGE + 1];
	char		server_first[SCRAM_MAX_MESSAGE + 1];
	char		final_np[SCRAM_MAX_MESSAGE + 1];
	uint8_t		key[PF_SHA256_LEN];
};

/* What GNU SASL asks of the client: name, password and binding. */
static int
answer(void *arg, Gsasl_session *sctx, Gsasl_property prop)
{
	struct login *c = arg;

	switch (prop) {
	case GSASL_AUTHID:
		return gsasl_property_set(sctx, prop, c->user);
	case GSASL_PASSWORD:
		return gsasl_property_set(sctx, prop, c->password);
	case GSASL_CB_TLS_EXPORTER:
		if (!c->plus)
			return GSASL_NO_CALLBACK;
		return scram_set_base64(sctx, prop, c->exporter,
		    sizeof(c->exporter)) == PF_OK ? GSASL_OK :
		    GSASL_MALLOC_ERROR;
	default:
		return GSASL_NO_CALLBACK;
	}
}

struct login *
login_new(const char *user, const char *password, const uint8_t *exporter)
{
	struct login *c;
	size_t passlen;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->step = SCRAM_NEW;
	c->hook.fn = answer;
	c->hook.arg = c;
	if (exporter != NULL) {
		c->plus = true;
		memcpy(c->exporter, exporter, SCRAM_EXPORTER_LEN);
	}
	/* Bad arguments surface as PF_EUSAGE from login_first. */
	if (!proto_user_valid(user) || password == NULL ||
	    (passlen = strnlen(password, SCRAM_MAX_PASSWORD + 1)) >
	    SCRAM_MAX_PASSWORD) {
		c->args_bad = true;
		return c;
	}
	memcpy(c->user, user, strlen(user) + 1);
	memcpy(c->password, password, passlen);
	c->password[passlen] = '\0';
	return c;
}

const char *
login_mechanism(const struct login *c)
{
	return c->plus ? SCRAM_MECH_PLUS : SCRAM_MECH;
}

/*
 * One step of GNU SASL; its output as a new string in *out (NULL allowed
 * when out is NULL: the last step has none). PF_EAUTH if it refuses.
 */
static enum pf_status
sasl_step(struct login *c, const char *in, char **out)
{
	char *o = NULL;
	size_t olen = 0;
	enum pf_status rc = PF_EAUTH;
	int grc;

	grc = gsasl_step(c->sctx, in, in ? strlen(in) : 0, &o, &olen);
	if (grc != GSASL_OK && grc != GSASL_NEEDS_MORE)
		goto out;
	rc = PF_OK;
	if (out == NULL)
		goto out;
	rc = PF_EINTERNAL;
	if (o != NULL && olen <= SCRAM_MAX_MESSAGE &&
	    (*out = scram_printf("%.*s", (int)olen, o)) != NULL)
		rc = PF_OK;
out:
	gsasl_free(o);
	return rc;
}

enum pf_status
login_first(struct login *c, char **out)
{
	enum pf_status rc = PF_EPROTO;
	const char *gs2 = c->plus ? SCRAM_GS2_PLUS : SCRAM_GS2_HEADER;
	struct scram_attr a[2];
	Gsasl *ctx;

	*out = NULL;
	if (c->step != SCRAM_NEW)
		goto out;
	rc = PF_EUSAGE;
	if (c->args_bad)
		goto out;
	rc = PF_EINTERNAL;
	if ((ctx = scram_sasl()) == NULL ||
	    gsasl_client_start(ctx, login_mechanism(c), &c->sctx) != GSASL_OK)
		goto out;
	gsasl_session_hook_set(c->sctx, &c->hook);
	if ((rc = sasl_step(c, NULL, out)) != PF_OK)
		goto out;
	/* Ours to relay: the AuthMessage needs client-first-bare. */
	rc = PF_EINTERNAL;
	if (strncmp(*out, gs2, strlen(gs2)) != 0 ||
	    !scram_split_attrs(*out + strlen(gs2), "nr", a) ||
	    a[1].len > SCRAM_NONCE_MAX)
		goto out;
	snprintf(c->first_bare, sizeof(c->first_bare), "%s",
	    *out + strlen(gs2));
	memcpy(c->cnonce, a[1].p, a[1].len);
	c->cnonce[a[1].len] = '\0';
	c->step = SCRAM_FIRST;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		c->step = SCRAM_FAILED;
		free(*out);
		*out = NULL;
	}
	return rc;
}

/*
 * Checks server-first before GNU SASL sees it: well formed, our nonce
 * extended, an iteration count in range (GNU SASL has no upper bound).
 */
static enum pf_status
check_server_first(const struct login *c, const char *server_first)
{
	struct scram_attr a[3];
	uint8_t salt[SCRAM_MAX_SALT];
	size_t cnlen = strlen(c->cnonce);
	unsigned iterations;

	if (!scram_message_ok(server_first) ||
	    !scram_split_attrs(server_first, "rsi", a))
		return PF_EBADFRAME;
	if (!scram_nonce_valid(a[0].p, a[0].len, 2 * SCRAM_NONCE_MAX) ||
	    scram_decode_attr(&a[1], salt, sizeof(salt)) < 1 ||
	    !scram_parse_count(&a[2], &iterations))
		return PF_EBADFRAME;
	/* The server must extend our nonce, not replay an old one. */
	if (a[0].len <= cnlen || memcmp(a[0].p, c->cnonce, cnlen) != 0)
		return PF_EAUTH;
	/*
	 * A low count makes a captured proof cheap to brute-force, a huge
	 * one makes us burn CPU for a fake server: refuse both.
	 */
	if (iterations < SCRAM_MIN_ITERATIONS ||
	    iterations > SCRAM_MAX_ITERATIONS)
		return PF_EAUTH;
	return PF_OK;
}

/*
 * K = HMAC(ClientKey, "paraflow session key" || AuthMessage), ClientKey
 * from the SaltedPassword GNU SASL computed.
 */
static enum pf_status
derive_session_key(struct login *c)
{
	enum pf_status rc = PF_ENOMEM;
	struct scram_authmsg *m;
	uint8_t client_key[PF_SHA256_LEN];

	if ((m = malloc(sizeof(*m))) == NULL)
		return rc;
	rc = PF_EINTERNAL;
	if (!scram_authmsg_build(m, c->first_bare, c->server_first,
	    c->final_np, strlen(c->final_np)))
		goto out;
	if ((rc = scram_client_key_from_hex(gsasl_property_fast(c->sctx,
	    GSASL_SCRAM_SALTED_PASSWORD), client_key)) != PF_OK)
		goto out;
	rc = scram_authmsg_session_key(client_key, m, c->key);
out:
	pf_wipe(m, sizeof(*m));
	free(m);
	pf_wipe(client_key, sizeof(client_key));
	return rc;
}

enum pf_status
login_final(struct login *c, const char *server_first, char **out)
{
	enum pf_status rc = PF_EPROTO;
	const char *p;

	*out = NULL;
	if (c->step != SCRAM_FIRST)
		goto out;
	if ((rc = check_server_first(c, server_first)) != PF_OK)
		goto out;
	snprintf(c->server_first, sizeof(c->server_first), "%s",
	    server_first);
	rc = sasl_step(c, server_first, out);
	/* GNU SASL's copy of the password goes as soon as it is used. */
	gsasl_property_free(c->sctx, GSASL_PASSWORD);
	if (rc != PF_OK)
		goto out;
	rc = PF_EINTERNAL;
	if ((p = strstr(*out, ",p=")) == NULL)
		goto out;
	snprintf(c->final_np, sizeof(c->final_np), "%.*s", (int)(p - *out),
	    *out);
	if ((rc = derive_session_key(c)) != PF_OK)
		goto out;
	c->step = SCRAM_FINAL;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		c->step = SCRAM_FAILED;
		pf_wipe(c->key, sizeof(c->key));
		free(*out);
		*out = NULL;
	}
	/* The password is not needed past this step, whatever happened. */
	pf_wipe(c->password, sizeof(c->password));
	return rc;
}

enum pf_status
login_verify(struct login *c, const char *server_final)
{
	enum pf_status rc = PF_EPROTO;
	struct scram_attr a[1];

	if (c->step != SCRAM_FINAL)
		goto out;
	/*
	 * Anything but a correct "v=" is a server we cannot trust,
	 * including "e=..." and garbage.
	 */
	rc = PF_EAUTH;
	if (!scram_message_ok(server_final) ||
	    !scram_split_attrs(server_final, "v", a))
		goto out;
	if ((rc = sasl_step(c, server_final, NULL)) != PF_OK)
		goto out;
	c->step = SCRAM_DONE;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		c->step = SCRAM_FAILED;
		pf_wipe(c->key, sizeof(c->key));
	}
	return rc;
}

enum pf_status
login_session_key(const struct login *c,
    uint8_t key[PF_SHA256_LEN])
{
	if (c->step != SCRAM_DONE)
		return PF_EPROTO;
	memcpy(key, c->key, PF_SHA256_LEN);
	return PF_OK;
}

void
login_free(struct login *c)
{
	if (c == NULL)
		return;
	gsasl_finish(c->sctx);
	pf_wipe(c, sizeof(*c));
	free(c);
}
