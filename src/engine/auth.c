/* SPDX-License-Identifier: MIT */
/* The server side of the SCRAM-SHA-256(-PLUS) login, run by GNU SASL. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "digest.h"
#include "log.h"
#include "status.h"

struct auth_server {
	const struct auth_users	*users;
	uint8_t			 secret[PF_SHA256_LEN];
	bool			 plus;		/* exporter holds the binding */
	uint8_t			 exporter[SCRAM_EXPORTER_LEN];
	const char		*gs2;		/* the client's GS2 header */
	enum scram_step		 step;
	bool			 known;
	Gsasl_session		*sctx;
	struct scram_hook	 hook;
	char			 user[PROTO_MAX_USER + 1];
	char			 nonce[2 * SCRAM_NONCE_MAX + 1];
	char			 first_bare[SCRAM_MAX_MESSAGE + 1];
	char			 server_first[SCRAM_MAX_MESSAGE + 1];
	struct auth_verifier	 v;
	uint8_t			 key[PF_SHA256_LEN];
};

/*
 * Answers GNU SASL's questions about the user from the verifier chosen in
 * auth_server_first (a real one or the fake one), never from a password:
 * GSASL_NO_CALLBACK for SaltedPassword makes it use StoredKey/ServerKey.
 */
static int
answer(void *arg, Gsasl_session *sctx, Gsasl_property prop)
{
	struct auth_server *s = arg;
	char iter[16];

	switch (prop) {
	case GSASL_CB_TLS_EXPORTER:
		if (!s->plus)
			return GSASL_NO_CALLBACK;
		return scram_set_base64(sctx, prop, s->exporter,
		    sizeof(s->exporter)) == PF_OK ? GSASL_OK :
		    GSASL_MALLOC_ERROR;
	case GSASL_SCRAM_ITER:
		snprintf(iter, sizeof(iter), "%u", s->v.iterations);
		return gsasl_property_set(sctx, prop, iter);
	case GSASL_SCRAM_SALT:
		return scram_set_base64(sctx, prop, s->v.salt,
		    s->v.saltlen) == PF_OK ? GSASL_OK : GSASL_MALLOC_ERROR;
	case GSASL_SCRAM_SERVERKEY:
		/* GNU SASL 2.2 wants base64 here, whatever its header says. */
		return scram_set_base64(sctx, prop, s->v.server_key,
		    PF_SHA256_LEN) == PF_OK ? GSASL_OK : GSASL_MALLOC_ERROR;
	case GSASL_SCRAM_STOREDKEY:
		return scram_set_base64(sctx, prop, s->v.stored_key,
		    PF_SHA256_LEN) == PF_OK ? GSASL_OK : GSASL_MALLOC_ERROR;
	default:
		return GSASL_NO_CALLBACK;
	}
}

struct auth_server *
auth_server_new(const struct auth_users *users,
    const uint8_t secret[PF_SHA256_LEN], const uint8_t *exporter)
{
	struct auth_server *s;
	Gsasl *ctx;

	if ((ctx = scram_sasl()) == NULL ||
	    (s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->users = users;
	memcpy(s->secret, secret, PF_SHA256_LEN);
	if (exporter != NULL) {
		s->plus = true;
		memcpy(s->exporter, exporter, SCRAM_EXPORTER_LEN);
	}
	s->step = SCRAM_NEW;
	s->hook.fn = answer;
	s->hook.arg = s;
	if (gsasl_server_start(ctx, auth_server_mechanism(s), &s->sctx) !=
	    GSASL_OK) {
		free(s);
		return NULL;
	}
	gsasl_session_hook_set(s->sctx, &s->hook);
	return s;
}

const char *
auth_server_mechanism(const struct auth_server *s)
{
	return s->plus ? SCRAM_MECH_PLUS : SCRAM_MECH;
}

/*
 * The GS2 header of client-first, as one of ours, or NULL with *rc set.
 * Over TLS only "p=tls-exporter" passes: "n" and "y" there are a client
 * that was talked out of binding, a downgrade (RFC 5802, section 6).
 * Without TLS "n" and "y" pass, "p" cannot be honoured.
 */
static const char *
parse_gs2(const struct auth_server *s, const char *msg, enum pf_status *rc)
{
	static const char *const gs2[] = { SCRAM_GS2_PLUS, SCRAM_GS2_HEADER,
	    SCRAM_GS2_YES };

	*rc = PF_EBADFRAME;
	for (size_t i = 0; i < sizeof(gs2) / sizeof(gs2[0]); i++) {
		if (strncmp(msg, gs2[i], strlen(gs2[i])) != 0)
			continue;
		if ((i == 0) != s->plus) {
			*rc = s->plus ? PF_EAUTH : PF_EBADFRAME;
			return NULL;
		}
		return gs2[i];
	}
	return NULL;
}

/* Runs one step of GNU SASL; its output as a new string in *out. */
static enum pf_status
sasl_step(struct auth_server *s, const char *in, char **out)
{
	char *o = NULL;
	size_t olen = 0;
	int grc;

	*out = NULL;
	grc = gsasl_step(s->sctx, in, strlen(in), &o, &olen);
	if ((grc == GSASL_OK || grc == GSASL_NEEDS_MORE) && o != NULL &&
	    olen <= SCRAM_MAX_MESSAGE)
		*out = scram_printf("%.*s", (int)olen, o);
	gsasl_free(o);
	if (grc != GSASL_OK && grc != GSASL_NEEDS_MORE)
		return PF_EAUTH;
	return *out != NULL ? PF_OK : PF_EINTERNAL;
}

/* Takes the name and nonce of client-first-bare into s; PF_EBADFRAME. */
static enum pf_status
parse_first_bare(struct auth_server *s, const char *bare)
{
	struct scram_attr a[2];

	if (!scram_split_attrs(bare, "nr", a))
		return PF_EBADFRAME;
	/*
	 * Valid names hold neither '=' nor ',', so saslname escapes never
	 * need decoding: a name with "=2C" is simply invalid.
	 */
	if (a[0].len > PROTO_MAX_USER)
		return PF_EBADFRAME;
	memcpy(s->user, a[0].p, a[0].len);
	s->user[a[0].len] = '\0';
	if (!proto_user_valid(s->user) || !scram_nonce_valid(a[1].p, a[1].len,
	    SCRAM_NONCE_MAX))
		return PF_EBADFRAME;
	snprintf(s->first_bare, sizeof(s->first_bare), "%s", bare);
	return PF_OK;
}

enum pf_status
auth_server_first(struct auth_server *s, const char *client_first,
    char **server_first)
{
	enum pf_status rc = PF_EPROTO;
	const struct auth_verifier *v;
	struct scram_attr a[3];
	struct auth_verifier fake;

	memset(&fake, 0, sizeof(fake));
	*server_first = NULL;
	if (s->step != SCRAM_NEW)
		goto out;
	rc = PF_EBADFRAME;
	if (!scram_message_ok(client_first) ||
	    (s->gs2 = parse_gs2(s, client_first, &rc)) == NULL)
		goto out;
	if ((rc = parse_first_bare(s, client_first + strlen(s->gs2))) !=
	    PF_OK)
		goto out;
	/* Computed for every user, so known ones answer no faster. */
	if ((rc = auth_users_fake_verifier(s->users, s->secret, s->user,
	    &fake)) != PF_OK)
		goto out;
	/* The fake StoredKey stays zero: no ClientKey hashes to it. */
	v = auth_users_find(s->users, s->user);
	s->known = v != NULL;
	s->v = s->known ? *v : fake;
	if ((rc = sasl_step(s, client_first, server_first)) != PF_OK)
		goto out;
	rc = PF_EINTERNAL;
	if (!scram_message_ok(*server_first) ||
	    !scram_split_attrs(*server_first, "rsi", a) ||
	    a[0].len >= sizeof(s->nonce))
		goto out;
	memcpy(s->nonce, a[0].p, a[0].len);
	s->nonce[a[0].len] = '\0';
	snprintf(s->server_first, sizeof(s->server_first), "%s",
	    *server_first);
	s->step = SCRAM_FIRST;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		s->step = SCRAM_FAILED;
		free(*server_first);
		*server_first = NULL;
	}
	pf_wipe(&fake, sizeof(fake));
	return rc;
}

/*
 * After GNU SASL accepted the proof: ClientKey = ClientProof XOR
 * HMAC(StoredKey, AuthMessage), and from it the session key K.
 */
static enum pf_status
derive_session_key(struct auth_server *s, const char *client_final,
    const struct scram_attr *proof64)
{
	enum pf_status rc = PF_ENOMEM;
	struct scram_authmsg *m;
	uint8_t proof[PF_SHA256_LEN], client_key[PF_SHA256_LEN];

	if ((m = malloc(sizeof(*m))) == NULL)
		return rc;
	rc = PF_EINTERNAL;
	/* Without the proof: everything before ",p=". */
	if (scram_decode_attr(proof64, proof, sizeof(proof)) !=
	    PF_SHA256_LEN || !scram_authmsg_build(m, s->first_bare,
	    s->server_first, client_final,
	    (size_t)(proof64->p - 3 - client_final)))
		goto out;
	if ((rc = scram_authmsg_hmac(s->v.stored_key, m, client_key)) !=
	    PF_OK)
		goto out;
	for (size_t i = 0; i < PF_SHA256_LEN; i++)
		client_key[i] ^= proof[i];
	rc = scram_authmsg_session_key(client_key, m, s->key);
out:
	pf_wipe(m, sizeof(*m));
	free(m);
	pf_wipe(proof, sizeof(proof));
	pf_wipe(client_key, sizeof(client_key));
	return rc;
}

/*
 * Checks what GNU SASL would also check, so that a malformed message is
 * PF_EBADFRAME and a wrong binding or nonce PF_EAUTH whatever its version
 * says: the "c=" value must be exactly what this connection expects.
 */
static enum pf_status
check_final(const struct auth_server *s, const char *client_final,
    struct scram_attr a[3])
{
	uint8_t proof[PF_SHA256_LEN];
	enum pf_status rc = PF_EBADFRAME;
	char *cbind = NULL;

	if (!scram_message_ok(client_final) ||
	    !scram_split_attrs(client_final, "crp", a))
		goto out;
	if (scram_decode_attr(&a[2], proof, sizeof(proof)) != PF_SHA256_LEN)
		goto out;
	rc = PF_ENOMEM;
	if ((cbind = scram_cbind(s->gs2, s->plus ? s->exporter : NULL)) ==
	    NULL)
		goto out;
	rc = PF_EAUTH;
	/* The nonce check is what defeats a replayed client-final. */
	if (!scram_attr_is(&a[0], cbind) || !scram_attr_is(&a[1], s->nonce))
		goto out;
	rc = PF_OK;
out:
	free(cbind);
	return rc;
}

enum pf_status
auth_server_final(struct auth_server *s, const char *client_final,
    char **server_final)
{
	enum pf_status rc = PF_EPROTO;
	struct scram_attr a[3];

	*server_final = NULL;
	if (s->step != SCRAM_FIRST)
		goto out;
	if ((rc = check_final(s, client_final, a)) != PF_OK)
		goto out;
	/* GNU SASL does the same work for an unknown user; then it fails. */
	rc = sasl_step(s, client_final, server_final);
	if (rc != PF_OK || !s->known) {
		log_debug("%s: login failed for user %s", __func__, s->user);
		rc = PF_EAUTH;
		goto out;
	}
	if ((rc = derive_session_key(s, client_final, &a[2])) != PF_OK)
		goto out;
	s->step = SCRAM_DONE;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		s->step = SCRAM_FAILED;
		pf_wipe(s->key, sizeof(s->key));
		free(*server_final);
		*server_final = NULL;
	}
	return rc;
}

const char *
auth_server_user(const struct auth_server *s)
{
	return s->step == SCRAM_DONE ? s->user : NULL;
}

const char *
auth_server_claimed_user(const struct auth_server *s)
{
	return s->step == SCRAM_FIRST || s->step == SCRAM_DONE ? s->user :
	    NULL;
}

enum pf_status
auth_server_session_key(const struct auth_server *s,
    uint8_t key[PF_SHA256_LEN])
{
	if (s->step != SCRAM_DONE)
		return PF_EPROTO;
	memcpy(key, s->key, PF_SHA256_LEN);
	return PF_OK;
}

void
auth_server_free(struct auth_server *s)
{
	if (s == NULL)
		return;
	gsasl_finish(s->sctx);
	pf_wipe(s, sizeof(*s));
	free(s);
}
