/* SPDX-License-Identifier: MIT */
/* The server side of the SCRAM-SHA-256 login. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "digest.h"
#include "log.h"
#include "status.h"

#define LABEL_FAKE_SALT	"paraflow fake salt"

struct auth_server {
	const struct auth_users	*users;
	uint8_t			 secret[PF_SHA256_LEN];
	enum scram_step		 step;
	bool			 known;
	bool			 nonce_bad;
	char			 snonce[SCRAM_NONCE_MAX + 1];	/* "": random */
	char			 user[PROTO_MAX_USER + 1];
	char			 nonce[2 * SCRAM_NONCE_MAX + 1];
	char			 first_bare[SCRAM_MAX_MESSAGE + 1];
	char			 server_first[SCRAM_MAX_MESSAGE + 1];
	struct auth_verifier	 v;
	uint8_t			 key[PF_SHA256_LEN];
};

struct auth_server *
auth_server_new(const struct auth_users *users,
    const uint8_t secret[PF_SHA256_LEN])
{
	struct auth_server *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->users = users;
	memcpy(s->secret, secret, PF_SHA256_LEN);
	s->step = SCRAM_NEW;
	return s;
}

void
auth_server_set_nonce(struct auth_server *s, const char *nonce)
{
	/* Misuse fails the exchange rather than being silently ignored. */
	if (s->step != SCRAM_NEW)
		s->step = SCRAM_FAILED;
	else if (!scram_set_test_nonce(s->snonce, nonce))
		s->nonce_bad = true;
}

/*
 * The salt an unknown user gets: stable per name, so that asking twice
 * does not tell a made-up user from a real one.
 */
static enum pf_status
fake_salt(const struct auth_server *s, uint8_t out[PF_SHA256_LEN])
{
	char msg[sizeof(LABEL_FAKE_SALT) - 1 + PROTO_MAX_USER];
	size_t ulen = strlen(s->user);

	memcpy(msg, LABEL_FAKE_SALT, sizeof(LABEL_FAKE_SALT) - 1);
	memcpy(msg + sizeof(LABEL_FAKE_SALT) - 1, s->user, ulen);
	return pf_hmac_sha256(s->secret, PF_SHA256_LEN, msg,
	    sizeof(LABEL_FAKE_SALT) - 1 + ulen, out);
}

enum pf_status
auth_server_first(struct auth_server *s, const char *client_first,
    char **server_first)
{
	enum pf_status rc = PF_EPROTO;
	const struct auth_verifier *v;
	struct scram_attr a[2];
	uint8_t fake[PF_SHA256_LEN];
	char *salt = NULL;
	int n;

	*server_first = NULL;
	if (s->step != SCRAM_NEW)
		goto out;
	rc = PF_EBADFRAME;
	/* Only "n,,": no channel binding ("y", "p=") and no authzid. */
	if (!scram_message_ok(client_first) ||
	    strncmp(client_first, SCRAM_GS2_HEADER,
	    sizeof(SCRAM_GS2_HEADER) - 1) != 0)
		goto out;
	if (!scram_split_attrs(client_first + sizeof(SCRAM_GS2_HEADER) - 1,
	    "nr", a))
		goto out;
	/*
	 * Valid names hold neither '=' nor ',', so saslname escapes never
	 * need decoding: a name with "=2C" is simply invalid.
	 */
	if (a[0].len > PROTO_MAX_USER)
		goto out;
	memcpy(s->user, a[0].p, a[0].len);
	s->user[a[0].len] = '\0';
	if (!proto_user_valid(s->user) || !scram_nonce_valid(a[1].p, a[1].len,
	    SCRAM_NONCE_MAX))
		goto out;

	rc = PF_EINTERNAL;
	if (s->nonce_bad)
		goto out;
	if (s->snonce[0] == '\0' &&
	    (rc = scram_random_nonce(s->snonce)) != PF_OK)
		goto out;
	/* Computed for every user, so known ones answer no faster. */
	if ((rc = fake_salt(s, fake)) != PF_OK)
		goto out;
	if ((v = auth_users_find(s->users, s->user)) != NULL) {
		s->v = *v;
		s->known = true;
	} else {
		/* StoredKey stays zero: no ClientKey hashes to it. */
		auth_users_fake_verifier(s->users, fake, AUTH_SALT_LEN, &s->v);
		s->known = false;
	}

	rc = PF_ENOMEM;
	if ((salt = pf_base64_encode(s->v.salt, s->v.saltlen)) == NULL)
		goto out;
	rc = PF_EINTERNAL;
	snprintf(s->nonce, sizeof(s->nonce), "%.*s%s", (int)a[1].len, a[1].p,
	    s->snonce);
	n = snprintf(s->server_first, sizeof(s->server_first), "r=%s,s=%s,i=%u",
	    s->nonce, salt, s->v.iterations);
	if (n < 0 || (size_t)n >= sizeof(s->server_first))
		goto out;
	snprintf(s->first_bare, sizeof(s->first_bare), "%s",
	    client_first + sizeof(SCRAM_GS2_HEADER) - 1);
	rc = PF_ENOMEM;
	if ((*server_first = strdup(s->server_first)) == NULL)
		goto out;
	s->step = SCRAM_FIRST;
	rc = PF_OK;
out:
	if (rc != PF_OK)
		s->step = SCRAM_FAILED;
	pf_wipe(fake, sizeof(fake));
	free(salt);
	return rc;
}

enum pf_status
auth_server_final(struct auth_server *s, const char *client_final,
    char **server_final)
{
	enum pf_status rc = PF_EPROTO;
	struct scram_authmsg *m = NULL;
	struct scram_attr a[3];
	uint8_t proof[PF_SHA256_LEN], sig[PF_SHA256_LEN];
	uint8_t client_key[PF_SHA256_LEN], hash[PF_SHA256_LEN];
	char *b64 = NULL;
	bool match;

	*server_final = NULL;
	if (s->step != SCRAM_FIRST)
		goto out;
	rc = PF_EBADFRAME;
	if (!scram_message_ok(client_final) ||
	    !scram_split_attrs(client_final, "crp", a))
		goto out;
	if (scram_decode_attr(&a[2], proof, sizeof(proof)) != PF_SHA256_LEN)
		goto out;
	rc = PF_EAUTH;
	/* The nonce check is what defeats a replayed client-final. */
	if (!scram_attr_is(&a[0], SCRAM_CBIND_NONE) ||
	    !scram_attr_is(&a[1], s->nonce))
		goto out;

	rc = PF_ENOMEM;
	if ((m = malloc(sizeof(*m))) == NULL)
		goto out;
	rc = PF_EINTERNAL;
	/* Without the proof: everything before ",p=". */
	if (!scram_authmsg_build(m, s->first_bare, s->server_first,
	    client_final, (size_t)(a[2].p - 3 - client_final)))
		goto out;
	if ((rc = scram_authmsg_hmac(s->v.stored_key, m, sig)) != PF_OK)
		goto out;
	for (size_t i = 0; i < PF_SHA256_LEN; i++)
		client_key[i] = proof[i] ^ sig[i];
	if ((rc = pf_sha256(client_key, sizeof(client_key), hash)) != PF_OK)
		goto out;
	/* Same work for an unknown user; only then does it fail. */
	match = pf_equal_ct(hash, s->v.stored_key, PF_SHA256_LEN);
	if (!match || !s->known) {
		log_info("%s: login failed for user %s", __func__, s->user);
		rc = PF_EAUTH;
		goto out;
	}
	if ((rc = scram_authmsg_hmac(s->v.server_key, m, sig)) != PF_OK ||
	    (rc = scram_authmsg_session_key(client_key, m, s->key)) != PF_OK)
		goto out;
	rc = PF_ENOMEM;
	if ((b64 = pf_base64_encode(sig, sizeof(sig))) == NULL ||
	    (*server_final = scram_printf("v=%s", b64)) == NULL)
		goto out;
	s->step = SCRAM_DONE;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		s->step = SCRAM_FAILED;
		pf_wipe(s->key, sizeof(s->key));
	}
	if (m != NULL) {
		pf_wipe(m, sizeof(*m));
		free(m);
	}
	pf_wipe(proof, sizeof(proof));
	pf_wipe(sig, sizeof(sig));
	pf_wipe(client_key, sizeof(client_key));
	pf_wipe(hash, sizeof(hash));
	free(b64);
	return rc;
}

const char *
auth_server_user(const struct auth_server *s)
{
	return s->step == SCRAM_DONE ? s->user : NULL;
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
	pf_wipe(s, sizeof(*s));
	free(s);
}
