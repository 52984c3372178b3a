/* SPDX-License-Identifier: MIT */
/* The client side of the SCRAM-SHA-256 login. */
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
	bool		nonce_bad;
	char		user[PROTO_MAX_USER + 1];
	char		password[SCRAM_MAX_PASSWORD + 1];
	size_t		passlen;
	char		cnonce[SCRAM_NONCE_MAX + 1];	/* "": random */
	char		first_bare[SCRAM_MAX_MESSAGE + 1];
	uint8_t		server_sig[PF_SHA256_LEN];
	uint8_t		key[PF_SHA256_LEN];
};

struct login *
login_new(const char *user, const char *password)
{
	struct login *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->step = SCRAM_NEW;
	/* Bad arguments surface as PF_EUSAGE from login_first. */
	if (!proto_user_valid(user) || password == NULL ||
	    (c->passlen = strnlen(password, SCRAM_MAX_PASSWORD + 1)) >
	    SCRAM_MAX_PASSWORD) {
		c->args_bad = true;
		return c;
	}
	memcpy(c->user, user, strlen(user) + 1);
	memcpy(c->password, password, c->passlen);
	c->password[c->passlen] = '\0';
	return c;
}

void
login_set_nonce(struct login *c, const char *nonce)
{
	/* Misuse fails the exchange rather than being silently ignored. */
	if (c->step != SCRAM_NEW)
		c->step = SCRAM_FAILED;
	else if (!scram_set_test_nonce(c->cnonce, nonce))
		c->nonce_bad = true;
}

enum pf_status
login_first(struct login *c, char **out)
{
	enum pf_status rc = PF_EPROTO;

	*out = NULL;
	if (c->step != SCRAM_NEW)
		goto out;
	rc = PF_EUSAGE;
	if (c->args_bad)
		goto out;
	rc = PF_EINTERNAL;
	if (c->nonce_bad)
		goto out;
	if (c->cnonce[0] == '\0' &&
	    (rc = scram_random_nonce(c->cnonce)) != PF_OK)
		goto out;
	snprintf(c->first_bare, sizeof(c->first_bare), "n=%s,r=%s", c->user,
	    c->cnonce);
	rc = PF_ENOMEM;
	if ((*out = scram_printf("%s%s", SCRAM_GS2_HEADER,
	    c->first_bare)) == NULL)
		goto out;
	c->step = SCRAM_FIRST;
	rc = PF_OK;
out:
	if (rc != PF_OK)
		c->step = SCRAM_FAILED;
	return rc;
}

enum pf_status
login_final(struct login *c, const char *server_first, char **out)
{
	enum pf_status rc = PF_EPROTO;
	struct scram_authmsg *m = NULL;
	struct scram_attr a[3];
	uint8_t salt[SCRAM_MAX_SALT], sig[PF_SHA256_LEN];
	uint8_t client_key[PF_SHA256_LEN], stored_key[PF_SHA256_LEN];
	uint8_t server_key[PF_SHA256_LEN];
	char final_np[SCRAM_MAX_MESSAGE + 1], *b64 = NULL;
	size_t cnlen = strlen(c->cnonce);
	unsigned iterations;
	long saltlen;
	int n;

	*out = NULL;
	if (c->step != SCRAM_FIRST)
		goto out;
	rc = PF_EBADFRAME;
	if (!scram_message_ok(server_first) ||
	    !scram_split_attrs(server_first, "rsi", a))
		goto out;
	if (!scram_nonce_valid(a[0].p, a[0].len, 2 * SCRAM_NONCE_MAX))
		goto out;
	if ((saltlen = scram_decode_attr(&a[1], salt, sizeof(salt))) < 1)
		goto out;
	if (!scram_parse_count(&a[2], &iterations))
		goto out;
	rc = PF_EAUTH;
	/* The server must extend our nonce, not replay an old one. */
	if (a[0].len <= cnlen || memcmp(a[0].p, c->cnonce, cnlen) != 0)
		goto out;
	/*
	 * A low count makes a captured proof cheap to brute-force, a huge
	 * one makes us burn CPU for a fake server: refuse both.
	 */
	if (iterations < SCRAM_MIN_ITERATIONS ||
	    iterations > SCRAM_MAX_ITERATIONS)
		goto out;

	if ((rc = scram_derive_keys(c->password, c->passlen, salt,
	    (size_t)saltlen, iterations, client_key, stored_key,
	    server_key)) != PF_OK)
		goto out;
	rc = PF_EINTERNAL;
	n = snprintf(final_np, sizeof(final_np), "c=%s,r=%.*s",
	    SCRAM_CBIND_NONE, (int)a[0].len, a[0].p);
	if (n < 0 || (size_t)n >= sizeof(final_np))
		goto out;
	rc = PF_ENOMEM;
	if ((m = malloc(sizeof(*m))) == NULL)
		goto out;
	rc = PF_EINTERNAL;
	if (!scram_authmsg_build(m, c->first_bare, server_first, final_np,
	    (size_t)n))
		goto out;
	if ((rc = scram_authmsg_hmac(stored_key, m, sig)) != PF_OK ||
	    (rc = scram_authmsg_hmac(server_key, m, c->server_sig)) != PF_OK ||
	    (rc = scram_authmsg_session_key(client_key, m, c->key)) != PF_OK)
		goto out;
	/* ClientProof = ClientKey XOR ClientSignature; sig is reused. */
	for (size_t i = 0; i < PF_SHA256_LEN; i++)
		sig[i] ^= client_key[i];
	rc = PF_ENOMEM;
	if ((b64 = pf_base64_encode(sig, sizeof(sig))) == NULL ||
	    (*out = scram_printf("%s,p=%s", final_np, b64)) == NULL)
		goto out;
	c->step = SCRAM_FINAL;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		c->step = SCRAM_FAILED;
		pf_wipe(c->key, sizeof(c->key));
	}
	/* The password is not needed past this step, whatever happened. */
	pf_wipe(c->password, sizeof(c->password));
	if (m != NULL) {
		pf_wipe(m, sizeof(*m));
		free(m);
	}
	pf_wipe(sig, sizeof(sig));
	pf_wipe(client_key, sizeof(client_key));
	pf_wipe(stored_key, sizeof(stored_key));
	pf_wipe(server_key, sizeof(server_key));
	free(b64);
	return rc;
}

enum pf_status
login_verify(struct login *c, const char *server_final)
{
	enum pf_status rc = PF_EPROTO;
	struct scram_attr a[1];
	uint8_t sig[PF_SHA256_LEN];

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
	if (scram_decode_attr(&a[0], sig, sizeof(sig)) != PF_SHA256_LEN ||
	    !pf_equal_ct(sig, c->server_sig, PF_SHA256_LEN))
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
	pf_wipe(c, sizeof(*c));
	free(c);
}

