/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the SCRAM-SHA-256(-PLUS) login on GNU SASL (scram.c,
 * login.c, auth.c) with and without a tls-exporter binding, the users file
 * (users.c) with verifiers made by PostgreSQL, and join proofs.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsasl.h>

#include "auth.h"
#include "login.h"
#include "proto.h"
#include "scram.h"
#include "users.h"
#include "digest.h"
#include "log.h"
#include "status.h"

/* RFC 7677, section 3. */
#define RFC_USER	"user"
#define RFC_PASSWORD	"pencil"
#define RFC_CNONCE	"rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE	"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SALT	"W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_CNONCE RFC_SNONCE ",s=" RFC_SALT ",i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_CNONCE RFC_SNONCE \
	",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* Base64 of 32 and 33 zero bytes: a proof of the right and wrong size. */
#define B64_32	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define B64_33	"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

/* A well-formed verifier line, pieces of which the bad cases break. */
#define GOOD_TAIL	RFC_SALT "$" B64_32 ":" B64_32
#define GOOD_LINE	"alice:SCRAM-SHA-256$4096:" GOOD_TAIL

/* 32 bytes of user name: two make the longest valid one. */
#define A32		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* The fixed nonces of the malformed-message tables. */
#define T_CNONCE	"cnonce"
#define T_SNONCE	"snonce"
#define T_NONCE		T_CNONCE T_SNONCE

static const uint8_t secret[PF_SHA256_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

/* Two tls-exporter values: two different TLS connections. */
static const uint8_t ex1[SCRAM_EXPORTER_LEN] = { 0x11, 0x22, 0x33 };
static const uint8_t ex2[SCRAM_EXPORTER_LEN] = { 0x11, 0x22, 0x34 };

/*
 * A new copy of tmpl with every "@" followed by a key character replaced:
 * the values of keys[i] ("N" -> vals[i]). The nonces GNU SASL makes are
 * random, so message tables name them this way.
 */
static char *
subst(const char *tmpl, const char *keys, const char *const *vals)
{
	char *out = calloc(1, 4 * SCRAM_MAX_MESSAGE), *o = out;
	const char *k;

	assert_non_null(out);
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (p[0] == '@' && p[1] != '\0' &&
		    (k = strchr(keys, p[1])) != NULL) {
			o = stpcpy(o, vals[k - keys]);
			p++;
		} else
			*o++ = *p;
		assert_true(o < out + 3 * SCRAM_MAX_MESSAGE);
	}
	return out;
}

/* The value of attribute "key=" of a SCRAM message, as a new string. */
static char *
attr(const char *msg, char key)
{
	char pat[4] = { ',', key, '=', '\0' };
	const char *p, *e;
	char *out;

	if (strncmp(msg, pat + 1, 2) == 0)
		p = msg + 2;
	else {
		assert_non_null(p = strstr(msg, pat));
		p += 3;
	}
	e = strchr(p, ',');
	out = strndup(p, e ? (size_t)(e - p) : strlen(p));
	assert_non_null(out);
	return out;
}

/* The scratch directory of the whole run, made by group_setup. */
static char tmpdir[] = "/tmp/test_auth.XXXXXX";

static int
group_setup(void **state)
{
	(void)state;
	pf_log_set_level(PF_LOG_ERROR);
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
	struct dirent *de;
	char path[512];
	DIR *d;

	(void)state;
	if ((d = opendir(tmpdir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmpdir);
}

static void
tmp_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmpdir, name);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* Returns the file's contents as a new string. */
static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	assert_non_null(f);
	buf = calloc(1, 65536);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static size_t
count_substr(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* Users with the RFC 7677 user, loaded from a file as a server would. */
static struct auth_users *
rfc_users(void)
{
	struct auth_verifier v;
	struct auth_users *u = NULL;
	uint8_t salt[SCRAM_MAX_SALT];
	char path[256], *line, *text;
	long n;

	n = pf_base64_decode(RFC_SALT, salt, sizeof(salt));
	assert_int_equal(n, 16);
	assert_int_equal(auth_verifier_make(RFC_PASSWORD, salt, (size_t)n,
	    4096, &v), PF_OK);
	line = auth_verifier_format(RFC_USER, &v);
	assert_non_null(line);
	text = malloc(strlen(line) + 2);
	assert_non_null(text);
	sprintf(text, "%s\n", line);
	tmp_path(path, sizeof(path), "rfc.users");
	write_file(path, text);
	assert_int_equal(auth_users_load(path, &u), PF_OK);
	assert_int_equal(auth_users_count(u), 1);
	unlink(path);
	free(line);
	free(text);
	return u;
}

/*
 * Runs a whole login; returns the server's status at PROOF and, on
 * success, checks that both ends hold the same session key.
 */
static enum pf_status
login_bound(const struct auth_users *users, const char *user, const char *pw,
    const uint8_t *sx, const uint8_t *cx)
{
	struct auth_server *s = auth_server_new(users, secret, sx);
	struct login *c = login_new(user, pw, cx);
	char *cf = NULL, *sf = NULL, *cfin = NULL, *sfin = NULL;
	uint8_t ks[PF_SHA256_LEN], kc[PF_SHA256_LEN];
	enum pf_status rc;

	assert_non_null(s);
	assert_non_null(c);
	assert_int_equal(login_first(c, &cf), PF_OK);
	/* A client that binds and a server that cannot, or the reverse. */
	if ((rc = auth_server_first(s, cf, &sf)) != PF_OK)
		goto out;
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	rc = auth_server_final(s, cfin, &sfin);
	if (rc == PF_OK) {
		assert_string_equal(auth_server_user(s), user);
		assert_int_equal(login_verify(c, sfin), PF_OK);
		assert_int_equal(auth_server_session_key(s, ks), PF_OK);
		assert_int_equal(login_session_key(c, kc), PF_OK);
		assert_memory_equal(ks, kc, sizeof(ks));
	} else {
		assert_null(sfin);
		assert_null(auth_server_user(s));
		assert_int_equal(auth_server_session_key(s, ks), PF_EPROTO);
	}
out:
	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	auth_server_free(s);
	login_free(c);
	return rc;
}

static enum pf_status
login(const struct auth_users *users, const char *user, const char *pw)
{
	return login_bound(users, user, pw, NULL, NULL);
}

/*
 * GNU SASL makes its own nonces, so the RFC 7677 exchange cannot be
 * replayed through login.c and auth.c: the primitives that are ours (the
 * verifier, the AuthMessage, the signatures) must give the RFC's values,
 * and GNU SASL's verifier the same keys as ours.
 */
static void
test_rfc7677_primitives(void **state)
{
	uint8_t salt[16], ck[PF_SHA256_LEN], stored[PF_SHA256_LEN];
	uint8_t server[PF_SHA256_LEN], sig[PF_SHA256_LEN];
	char gsalted[PF_SHA256_LEN], gck[PF_SHA256_LEN];
	char gserver[PF_SHA256_LEN], gstored[PF_SHA256_LEN], *b64, *want;
	struct scram_authmsg m;

	(void)state;
	assert_int_equal(pf_base64_decode(RFC_SALT, salt, sizeof(salt)), 16);
	assert_int_equal(scram_derive_keys(RFC_PASSWORD, 6, salt, 16, 4096, ck,
	    stored, server), PF_OK);
	assert_int_equal(gsasl_scram_secrets_from_password(GSASL_HASH_SHA256,
	    RFC_PASSWORD, 4096, (const char *)salt, 16, gsalted, gck, gserver,
	    gstored), GSASL_OK);
	assert_memory_equal(ck, gck, sizeof(ck));
	assert_memory_equal(stored, gstored, sizeof(stored));
	assert_memory_equal(server, gserver, sizeof(server));
	assert_true(scram_authmsg_build(&m, &RFC_CLIENT_FIRST[3],
	    RFC_SERVER_FIRST, "c=biws,r=" RFC_CNONCE RFC_SNONCE,
	    strlen("c=biws,r=" RFC_CNONCE RFC_SNONCE)));
	/* ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage). */
	assert_int_equal(scram_authmsg_hmac(stored, &m, sig), PF_OK);
	for (size_t i = 0; i < sizeof(sig); i++)
		sig[i] ^= ck[i];
	b64 = pf_base64_encode(sig, sizeof(sig));
	want = attr(RFC_CLIENT_FINAL, 'p');
	assert_string_equal(b64, want);
	free(b64);
	free(want);
	assert_int_equal(scram_authmsg_hmac(server, &m, sig), PF_OK);
	b64 = pf_base64_encode(sig, sizeof(sig));
	assert_string_equal(b64, &RFC_SERVER_FINAL[2]);	/* after "v=" */
	free(b64);
}

/* K computed here from the messages, independently of auth.c. */
static void
session_key_of(const char *cf_bare, const char *sf, const char *cfin,
    uint8_t k[PF_SHA256_LEN])
{
	static const char label[] = "paraflow session key";
	uint8_t salt[16], salted[PF_SHA256_LEN], ck[PF_SHA256_LEN];
	char msg[2048];
	int n;

	assert_int_equal(pf_base64_decode(RFC_SALT, salt, sizeof(salt)), 16);
	assert_int_equal(pf_pbkdf2_sha256(RFC_PASSWORD, 6, salt, 16, 4096,
	    salted), PF_OK);
	assert_int_equal(pf_hmac_sha256(salted, sizeof(salted), "Client Key",
	    10, ck), PF_OK);
	n = snprintf(msg, sizeof(msg), "%s%s,%s,%.*s", label, cf_bare, sf,
	    (int)(strstr(cfin, ",p=") - cfin), cfin);
	assert_int_equal(pf_hmac_sha256(ck, sizeof(ck), msg, (size_t)n, k),
	    PF_OK);
}

/*
 * The RFC's verifier, from a users file: GNU SASL on both sides logs in
 * with it, and both ends hold the K computed from the three messages.
 */
static void
test_rfc7677_server(void **state)
{
	struct auth_users *u = rfc_users();
	struct auth_server *s;
	struct login *c;
	char *sf = NULL, *sfin = NULL, *cf = NULL, *cfin = NULL, *salt;
	uint8_t ks[PF_SHA256_LEN], kc[PF_SHA256_LEN], want[PF_SHA256_LEN];

	(void)state;
	s = auth_server_new(u, secret, NULL);
	assert_non_null(s);
	c = login_new(RFC_USER, RFC_PASSWORD, NULL);
	assert_null(auth_server_user(s));
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	salt = attr(sf, 's');
	assert_string_equal(salt, RFC_SALT);
	free(salt);
	assert_non_null(strstr(sf, ",i=4096"));
	assert_null(auth_server_user(s));
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	/* No key until the server has proven itself. */
	assert_int_equal(login_session_key(c, kc), PF_EPROTO);
	assert_int_equal(auth_server_final(s, cfin, &sfin), PF_OK);
	assert_string_equal(auth_server_user(s), RFC_USER);
	assert_int_equal(auth_server_session_key(s, ks), PF_OK);
	assert_int_equal(login_verify(c, sfin), PF_OK);
	assert_int_equal(login_session_key(c, kc), PF_OK);
	assert_memory_equal(ks, kc, sizeof(ks));
	session_key_of(cf + 3, sf, cfin, want);
	assert_memory_equal(ks, want, sizeof(ks));

	free(sf);
	free(sfin);
	free(cf);
	free(cfin);
	login_free(c);
	auth_server_free(s);
	auth_users_free(u);
}

static void
test_round_trip(void **state)
{
	struct auth_users *u = NULL;
	struct auth_server *s;
	struct login *c;
	char *cf = NULL, *sf = NULL, *cfin = NULL, *sfin = NULL;
	uint8_t ks[PF_SHA256_LEN], kc[PF_SHA256_LEN], k2[PF_SHA256_LEN];
	const char *r;

	(void)state;
	assert_int_equal(auth_users_single("alice", "correct horse", &u),
	    PF_OK);
	s = auth_server_new(u, secret, NULL);
	c = login_new("alice", "correct horse", NULL);
	assert_int_equal(login_first(c, &cf), PF_OK);
	/* A random nonce: base64 of SCRAM_NONCE_LEN bytes, 24 characters. */
	assert_int_equal(strncmp(cf, "n,,n=alice,r=", 13), 0);
	assert_int_equal(strlen(cf + 13), 24);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	r = cf + 13;
	assert_int_equal(strncmp(sf, "r=", 2), 0);
	assert_int_equal(strncmp(sf + 2, r, 24), 0);
	assert_int_equal(sf[2 + 48], ',');
	assert_non_null(strstr(sf, ",i=4096"));
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	assert_int_equal(auth_server_final(s, cfin, &sfin), PF_OK);
	assert_int_equal(login_verify(c, sfin), PF_OK);
	assert_int_equal(auth_server_session_key(s, ks), PF_OK);
	assert_int_equal(login_session_key(c, kc), PF_OK);
	assert_memory_equal(ks, kc, sizeof(ks));
	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	auth_server_free(s);
	login_free(c);

	/* A second login gets another key: fresh nonces on both sides. */
	s = auth_server_new(u, secret, NULL);
	c = login_new("alice", "correct horse", NULL);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	assert_int_equal(auth_server_final(s, cfin, &sfin), PF_OK);
	assert_int_equal(login_verify(c, sfin), PF_OK);
	assert_int_equal(auth_server_session_key(s, k2), PF_OK);
	assert_memory_not_equal(ks, k2, sizeof(ks));
	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	auth_server_free(s);
	login_free(c);
	auth_users_free(u);
}

static void
test_wrong_password(void **state)
{
	struct auth_users *u = NULL;

	(void)state;
	assert_int_equal(auth_users_single("alice", "right", &u), PF_OK);
	assert_int_equal(login(u, "alice", "right"), PF_OK);
	assert_int_equal(login(u, "alice", "wrong"), PF_EAUTH);
	assert_int_equal(login(u, "alice", ""), PF_EAUTH);
	assert_int_equal(login(u, "alice", "right "), PF_EAUTH);
	auth_users_free(u);
}

/* Server-first for user from a fresh server; returns the decoded salt. */
static long
challenge_salt(const struct auth_users *u, const uint8_t *key,
    const char *user, uint8_t *salt, size_t cap)
{
	struct auth_server *s = auth_server_new(u, key, NULL);
	char cf[256], *sf = NULL, b64[128];
	const char *p, *q;
	long n;

	snprintf(cf, sizeof(cf), "n,,n=%s,r=" T_CNONCE, user);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	assert_int_equal(strncmp(sf, "r=" T_CNONCE, 8), 0);
	p = strstr(sf, ",s=");
	q = strstr(sf, ",i=4096");
	assert_non_null(p);
	assert_non_null(q);
	assert_string_equal(q, ",i=4096");
	snprintf(b64, sizeof(b64), "%.*s", (int)(q - p - 3), p + 3);
	n = pf_base64_decode(b64, salt, cap);
	free(sf);
	auth_server_free(s);
	return n;
}

static void
test_unknown_user(void **state)
{
	static const uint8_t other[PF_SHA256_LEN] = { 9 };
	struct auth_users *u = NULL;
	uint8_t s1[SCRAM_MAX_SALT], s2[SCRAM_MAX_SALT], s3[SCRAM_MAX_SALT];
	uint8_t s4[SCRAM_MAX_SALT], mac[PF_SHA256_LEN];
	char msg[64];

	(void)state;
	assert_int_equal(auth_users_single("alice", "pw", &u), PF_OK);
	/* A well-formed challenge, then failure at PROOF. */
	assert_int_equal(login(u, "mallory", "pw"), PF_EAUTH);

	/* The same made-up salt every time: probing shows nothing. */
	assert_int_equal(challenge_salt(u, secret, "mallory", s1, sizeof(s1)),
	    AUTH_SALT_LEN);
	assert_int_equal(challenge_salt(u, secret, "mallory", s2, sizeof(s2)),
	    AUTH_SALT_LEN);
	assert_memory_equal(s1, s2, AUTH_SALT_LEN);
	/* It is HMAC(secret, "paraflow fake salt" || user), cut. */
	snprintf(msg, sizeof(msg), "paraflow fake salt%s", "mallory");
	assert_int_equal(pf_hmac_sha256(secret, sizeof(secret), msg,
	    strlen(msg), mac), PF_OK);
	assert_memory_equal(s1, mac, AUTH_SALT_LEN);
	/* Another name or another secret: another salt. */
	assert_int_equal(challenge_salt(u, secret, "trudy", s3, sizeof(s3)),
	    AUTH_SALT_LEN);
	assert_memory_not_equal(s1, s3, AUTH_SALT_LEN);
	assert_int_equal(challenge_salt(u, other, "mallory", s4, sizeof(s4)),
	    AUTH_SALT_LEN);
	assert_memory_not_equal(s1, s4, AUTH_SALT_LEN);
	/* A real user gets the real salt, also stable. */
	assert_int_equal(challenge_salt(u, secret, "alice", s3, sizeof(s3)),
	    AUTH_SALT_LEN);
	assert_memory_equal(s3, auth_users_find(u, "alice")->salt,
	    AUTH_SALT_LEN);
	auth_users_free(u);
}

static void
test_replay(void **state)
{
	struct auth_users *u = NULL;
	struct auth_server *s;
	struct login *c;
	char *cf = NULL, *sf = NULL, *cfin = NULL, *sfin = NULL;
	char *sf2 = NULL, *sfin2 = NULL;

	(void)state;
	assert_int_equal(auth_users_single("alice", "pw", &u), PF_OK);
	s = auth_server_new(u, secret, NULL);
	c = login_new("alice", "pw", NULL);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	assert_int_equal(auth_server_final(s, cfin, &sfin), PF_OK);
	auth_server_free(s);

	/* An eavesdropper replays both recorded messages to a new server. */
	s = auth_server_new(u, secret, NULL);
	assert_int_equal(auth_server_first(s, cf, &sf2), PF_OK);
	assert_string_not_equal(sf, sf2);
	assert_int_equal(auth_server_final(s, cfin, &sfin2), PF_EAUTH);
	assert_null(sfin2);
	assert_null(auth_server_user(s));
	auth_server_free(s);

	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	free(sf2);
	login_free(c);
	auth_users_free(u);
}

/*
 * A client of the RFC user against a real server, stopped after
 * client-final; the server's genuine server-final in *sfin (new).
 */
static struct login *
client_at_final(const struct auth_users *u, char **sfin)
{
	struct auth_server *s = auth_server_new(u, secret, NULL);
	struct login *c = login_new(RFC_USER, RFC_PASSWORD, NULL);
	char *cf = NULL, *sf = NULL, *cfin = NULL;

	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	assert_int_equal(auth_server_final(s, cfin, sfin), PF_OK);
	free(cf);
	free(sf);
	free(cfin);
	auth_server_free(s);
	return c;
}

static void
test_bad_server_final(void **state)
{
	static const char *const cases[] = {
		"",
		"v=",
		"v=!!!!",
		"v=AAAA",
		"v=" B64_32,
		"v=" B64_33,
		"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		"@V,x=1",
		"x=1,@V",
		"e=invalid-proof",
		"e=other-error",
	};
	struct auth_users *u = rfc_users();
	struct login *c;
	uint8_t k[PF_SHA256_LEN];
	char *sfin = NULL, *m;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = client_at_final(u, &sfin);
		m = subst(cases[i], "V", (const char *[]){ sfin });
		if (login_verify(c, m) != PF_EAUTH)
			fail_msg("case %zu: \"%s\" accepted", i, m);
		assert_int_equal(login_session_key(c, k), PF_EPROTO);
		/* One try only: not even the right answer helps now. */
		assert_int_equal(login_verify(c, sfin), PF_EPROTO);
		free(m);
		free(sfin);
		login_free(c);
	}
	auth_users_free(u);
}

static char *
repeat(char ch, size_t n, const char *prefix)
{
	size_t plen = strlen(prefix);
	char *s = malloc(plen + n + 1);

	assert_non_null(s);
	memcpy(s, prefix, plen);
	memset(s + plen, ch, n);
	s[plen + n] = '\0';
	return s;
}

static void
test_bad_client_first(void **state)
{
	static const char *const cases[] = {
		"",
		"n=user,r=" T_CNONCE,			/* no gs2 header */
		"p=tls-unique,,n=user,r=" T_CNONCE,	/* channel binding */
		"n,a=user,n=user,r=" T_CNONCE,		/* authzid */
		"n,,n=user",				/* missing r= */
		"n,,n=user,r=",
		"n,,r=" T_CNONCE,
		"n,,r=" T_CNONCE ",n=user",
		"n,,m=ext,n=user,r=" T_CNONCE,		/* reserved m= */
		"n,,n=user,r=" T_CNONCE ",x=ext",	/* extension */
		"n,,n=user,r=" T_CNONCE ",",
		"n,,n=,r=" T_CNONCE,
		"n,,n=us=2Cer,r=" T_CNONCE,
		"n,,n=us er,r=" T_CNONCE,
		"n,,n=user,r=cn\x01once",
		"n,,n=user,r=cn once",
		"n,,N=user,r=" T_CNONCE,
		"n,,n=user,,r=" T_CNONCE,
		"n,,nuser,r=" T_CNONCE,
		/* 65 bytes of user name. */
		"n,,n=" A32 A32 "a,r=" T_CNONCE,
	};
	struct auth_server *s;
	char *sf, *longs[2];

	(void)state;
	longs[0] = repeat('a', SCRAM_MAX_MESSAGE, "n,,n=user,r=");
	longs[1] = repeat('a', 300, "n,,n=user,r=");	/* nonce too long */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]) + 2; i++) {
		const char *m = i < sizeof(cases) / sizeof(cases[0]) ?
		    cases[i] : longs[i - sizeof(cases) / sizeof(cases[0])];

		s = auth_server_new(NULL, secret, NULL);
		sf = (char *)1;
		if (auth_server_first(s, m, &sf) != PF_EBADFRAME)
			fail_msg("case %zu: \"%s\" not bad_frame", i, m);
		assert_null(sf);
		assert_int_equal(auth_server_final(s, "c=biws,r=x,p=" B64_32,
		    &sf), PF_EPROTO);
		auth_server_free(s);
	}
	free(longs[0]);
	free(longs[1]);
}

static void
test_bad_client_final(void **state)
{
	static const struct {
		const char	*msg;
		enum pf_status	 want;
	} cases[] = {
		{ "", PF_EBADFRAME },
		{ "c=biws,r=@N", PF_EBADFRAME },
		{ "r=@N,p=" B64_32, PF_EBADFRAME },
		{ "c=biws,p=" B64_32, PF_EBADFRAME },
		{ "p=" B64_32 ",c=biws,r=@N", PF_EBADFRAME },
		{ "c=biws,r=@N,p=", PF_EBADFRAME },
		{ "c=biws,r=@N,p=!!!!", PF_EBADFRAME },
		{ "c=biws,r=@N,p=AAAA", PF_EBADFRAME },
		{ "c=biws,r=@N,p=" B64_33, PF_EBADFRAME },
		{ "c=biws,r=@N,p=" B64_32 "AAAA", PF_EBADFRAME },
		{ "c=biws,r=@N,x=1,p=" B64_32, PF_EBADFRAME },
		{ "c=biws,r=@N,p=" B64_32 ",x=1", PF_EBADFRAME },
		{ "m=1,c=biws,r=@N,p=" B64_32, PF_EBADFRAME },
		/* Well-formed but wrong: channel binding, nonce, proof. */
		{ "c=eSws,r=@N,p=" B64_32, PF_EAUTH },
		{ "c=cD10bHMtdW5pcXVlLCw=,r=@N,p=" B64_32, PF_EAUTH },
		{ "c=biws,r=" T_CNONCE ",p=" B64_32, PF_EAUTH },
		{ "c=biws,r=@Nx,p=" B64_32, PF_EAUTH },
		{ "c=biws,r=other,p=" B64_32, PF_EAUTH },
		{ "c=biws,r=@N,p=" B64_32, PF_EAUTH },
	};
	struct auth_users *u = NULL;
	struct auth_server *s;
	char *sf = NULL, *sfin, *overlong, *nonce, *m;

	(void)state;
	assert_int_equal(auth_users_single("alice", "pw", &u), PF_OK);
	overlong = repeat('A', SCRAM_MAX_MESSAGE, "c=biws,r=@N,p=");
	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		bool last = i == sizeof(cases) / sizeof(cases[0]);
		const char *tmpl = last ? overlong : cases[i].msg;
		enum pf_status want = last ? PF_EBADFRAME : cases[i].want;
		enum pf_status got;

		s = auth_server_new(u, secret, NULL);
		assert_int_equal(auth_server_first(s, "n,,n=alice,r=" T_CNONCE,
		    &sf), PF_OK);
		/* The whole nonce: ours, then the server's random part. */
		nonce = attr(sf, 'r');
		assert_int_equal(strncmp(nonce, T_CNONCE, 6), 0);
		m = subst(tmpl, "N", (const char *[]){ nonce });
		sfin = (char *)1;
		if ((got = auth_server_final(s, m, &sfin)) != want)
			fail_msg("case %zu: \"%s\": %d, want %d", i, m, got,
			    want);
		assert_null(sfin);
		assert_null(auth_server_user(s));
		/* At most one PROOF per connection. */
		assert_int_equal(auth_server_final(s, m, &sfin), PF_EPROTO);
		free(sf);
		free(m);
		free(nonce);
		auth_server_free(s);
	}
	free(overlong);
	auth_users_free(u);
}

static void
test_bad_server_first(void **state)
{
	static const struct {
		const char	*msg;
		enum pf_status	 want;
	} cases[] = {
		{ "", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT, PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",i=4096", PF_EBADFRAME },
		{ "s=" RFC_SALT ",r=@C" T_SNONCE ",i=4096", PF_EBADFRAME },
		{ "m=1,r=@C" T_SNONCE ",s=" RFC_SALT ",i=4096", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=4096,x=1", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=!!!!,i=4096", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=,i=4096", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
		    PF_EBADFRAME },
		/* 66 bytes of salt, more than SCRAM_MAX_SALT. */
		{ "r=@C" T_SNONCE ",s=" B64_33 B64_33 ",i=4096", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=abc", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=-4096", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=04096", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=0", PF_EBADFRAME },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=4096x", PF_EBADFRAME },
		{ "r=cn\x7fonce,s=" RFC_SALT ",i=4096", PF_EBADFRAME },
		{ "e=other-error", PF_EBADFRAME },
		/* Well-formed, but not from a server we should trust. */
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=1", PF_EAUTH },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=4095", PF_EAUTH },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=10000001", PF_EAUTH },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT ",i=99999999999", PF_EAUTH },
		{ "r=@C" T_SNONCE ",s=" RFC_SALT
		    ",i=999999999999999999999999999999", PF_EAUTH },
		{ "r=@C,s=" RFC_SALT ",i=4096", PF_EAUTH },
		{ "r=@c,s=" RFC_SALT ",i=4096", PF_EAUTH },
		{ "r=@X" T_SNONCE ",s=" RFC_SALT ",i=4096", PF_EAUTH },
	};
	struct login *c;
	char *cf = NULL, *cfin, *overlong, *m, *cn, *shorter, *other;

	(void)state;
	overlong = repeat('a', SCRAM_MAX_MESSAGE, "r=@C" T_SNONCE);
	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		bool last = i == sizeof(cases) / sizeof(cases[0]);
		const char *tmpl = last ? overlong : cases[i].msg;
		enum pf_status want = last ? PF_EBADFRAME : cases[i].want;
		enum pf_status got;

		c = login_new("alice", "pw", NULL);
		assert_int_equal(login_first(c, &cf), PF_OK);
		/* The client's random nonce, one char short, one changed. */
		cn = attr(cf + 3, 'r');
		shorter = strndup(cn, strlen(cn) - 1);
		other = strdup(cn);
		other[0] = other[0] == 'x' ? 'y' : 'x';
		m = subst(tmpl, "CcX", (const char *[]){ cn, shorter, other });
		cfin = (char *)1;
		if ((got = login_final(c, m, &cfin)) != want)
			fail_msg("case %zu: \"%s\": %d, want %d", i, m, got,
			    want);
		assert_null(cfin);
		assert_int_equal(login_verify(c, RFC_SERVER_FINAL),
		    PF_EPROTO);
		free(cf);
		free(m);
		free(cn);
		free(shorter);
		free(other);
		login_free(c);
	}
	free(overlong);
}

/* A client of the RFC user: its client-first and, for server s, final. */
static void
client_messages(struct auth_server *s, char **cf, char **sf, char **cfin)
{
	struct login *c = login_new(RFC_USER, RFC_PASSWORD, NULL);

	assert_int_equal(login_first(c, cf), PF_OK);
	assert_int_equal(auth_server_first(s, *cf, sf), PF_OK);
	assert_int_equal(login_final(c, *sf, cfin), PF_OK);
	login_free(c);
}

static void
test_order(void **state)
{
	struct auth_users *u = rfc_users();
	struct auth_server *s;
	struct login *c;
	char *out = NULL, *cf = NULL, *sf = NULL, *cfin = NULL;
	uint8_t k[PF_SHA256_LEN];

	(void)state;
	/* Server: PROOF before AUTH, AUTH twice, PROOF twice. */
	s = auth_server_new(u, secret, NULL);
	assert_int_equal(auth_server_final(s, RFC_CLIENT_FINAL, &out),
	    PF_EPROTO);
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &out),
	    PF_EPROTO);
	auth_server_free(s);

	s = auth_server_new(u, secret, NULL);
	client_messages(s, &cf, &sf, &cfin);
	assert_int_equal(auth_server_first(s, cf, &out), PF_EPROTO);
	assert_null(out);
	assert_int_equal(auth_server_final(s, cfin, &out), PF_EPROTO);
	auth_server_free(s);
	free(cf);
	free(sf);
	free(cfin);

	s = auth_server_new(u, secret, NULL);
	client_messages(s, &cf, &sf, &cfin);
	assert_int_equal(auth_server_final(s, cfin, &out), PF_OK);
	free(out);
	assert_int_equal(auth_server_final(s, cfin, &out), PF_EPROTO);
	assert_null(out);
	auth_server_free(s);
	free(cf);
	free(sf);
	free(cfin);

	/* Client: final before first, verify before final, first twice. */
	c = login_new(RFC_USER, RFC_PASSWORD, NULL);
	assert_int_equal(login_final(c, RFC_SERVER_FIRST, &out),
	    PF_EPROTO);
	assert_int_equal(login_first(c, &out), PF_EPROTO);
	login_free(c);
	c = login_new(RFC_USER, RFC_PASSWORD, NULL);
	assert_int_equal(login_verify(c, RFC_SERVER_FINAL), PF_EPROTO);
	login_free(c);
	c = login_new(RFC_USER, RFC_PASSWORD, NULL);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(login_first(c, &out), PF_EPROTO);
	assert_null(out);
	assert_int_equal(login_session_key(c, k), PF_EPROTO);
	free(cf);
	login_free(c);

	/* Client: bad arguments are a usage error. */
	c = login_new("bad user", "pw", NULL);
	assert_non_null(c);
	assert_int_equal(login_first(c, &out), PF_EUSAGE);
	assert_null(out);
	login_free(c);
	cf = repeat('x', SCRAM_MAX_PASSWORD + 1, "");
	c = login_new("alice", cf, NULL);
	assert_int_equal(login_first(c, &out), PF_EUSAGE);
	login_free(c);
	free(cf);

	auth_server_free(NULL);
	login_free(NULL);
	auth_users_free(NULL);
	auth_users_free(u);
}

/*
 * Client-final with cbind and nonce of our choosing but a proof that is
 * right for them (the RFC user's password, the messages cf_bare and sf),
 * as a client knowing the password could forge it: only the server's own
 * checks of c= and r= can refuse it.
 */
static char *
forge_client_final(const char *cf_bare, const char *sf, const char *cbind,
    const char *nonce)
{
	uint8_t salt[16], salted[PF_SHA256_LEN], ck[PF_SHA256_LEN];
	uint8_t sk[PF_SHA256_LEN], sig[PF_SHA256_LEN];
	char np[256], am[1024], *b64, *out;

	snprintf(np, sizeof(np), "c=%s,r=%s", cbind, nonce);
	snprintf(am, sizeof(am), "%s,%s,%s", cf_bare, sf, np);
	assert_int_equal(pf_base64_decode(RFC_SALT, salt, sizeof(salt)), 16);
	assert_int_equal(pf_pbkdf2_sha256(RFC_PASSWORD, 6, salt, 16, 4096,
	    salted), PF_OK);
	assert_int_equal(pf_hmac_sha256(salted, sizeof(salted), "Client Key",
	    10, ck), PF_OK);
	assert_int_equal(pf_sha256(ck, sizeof(ck), sk), PF_OK);
	assert_int_equal(pf_hmac_sha256(sk, sizeof(sk), am, strlen(am), sig),
	    PF_OK);
	for (size_t i = 0; i < sizeof(sig); i++)
		sig[i] ^= ck[i];
	b64 = pf_base64_encode(sig, sizeof(sig));
	assert_non_null(b64);
	out = malloc(strlen(np) + strlen(b64) + 4);
	assert_non_null(out);
	sprintf(out, "%s,p=%s", np, b64);
	free(b64);
	return out;
}

/*
 * One forged case: the server's answer to client-first cf, then to cbind
 * and the nonce template (@N: the whole nonce, @S: the server's part).
 */
static enum pf_status
forged_login(const struct auth_users *u, const uint8_t *exporter,
    const char *cf, const char *gs2, const char *cbind, const char *tmpl)
{
	struct auth_server *s = auth_server_new(u, secret, exporter);
	char *sf = NULL, *sfin = NULL, *cfin, *nonce, *n;
	enum pf_status rc;

	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	nonce = attr(sf, 'r');
	n = subst(tmpl, "NS", (const char *[]){ nonce,
	    nonce + strlen(RFC_CNONCE) });
	cfin = forge_client_final(cf + strlen(gs2), sf, cbind, n);
	rc = auth_server_final(s, cfin, &sfin);
	assert_true((rc == PF_OK) == (sfin != NULL));
	free(sf);
	free(sfin);
	free(cfin);
	free(nonce);
	free(n);
	auth_server_free(s);
	return rc;
}

static void
test_nonce_and_binding_checked(void **state)
{
	static const struct {
		const char	*cbind;
		const char	*nonce;
		enum pf_status	 want;
	} cases[] = {
		{ "biws", "@N", PF_OK },	/* control */
		{ "biws", RFC_CNONCE, PF_EAUTH },
		{ "biws", "@Nx", PF_EAUTH },
		{ "biws", "x@S", PF_EAUTH },
		{ "eSws", "@N", PF_EAUTH },
		{ "biwx", "@N", PF_EAUTH },
	};
	struct auth_users *u = rfc_users();
	enum pf_status got;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = forged_login(u, NULL, RFC_CLIENT_FIRST, SCRAM_GS2_HEADER,
		    cases[i].cbind, cases[i].nonce);
		if (got != cases[i].want)
			fail_msg("case %zu: %d, want %d", i, got,
			    cases[i].want);
	}
	auth_users_free(u);
}

/*
 * RFC 9266 over TLS: the binding must be "p=tls-exporter" with this
 * connection's exporter; "n" and "y" there are a downgrade. Without TLS,
 * "y" is fine (the server indeed cannot bind) and "p" cannot be honoured.
 */
static void
test_channel_binding(void **state)
{
	static const char plus_cf[] = SCRAM_GS2_PLUS "n=user,r=" RFC_CNONCE;
	static const char yes_cf[] = SCRAM_GS2_YES "n=user,r=" RFC_CNONCE;
	struct auth_users *u = rfc_users();
	struct auth_server *s;
	char *sf, *cb1, *cb2;

	(void)state;
	cb1 = scram_cbind(SCRAM_GS2_PLUS, ex1);
	cb2 = scram_cbind(SCRAM_GS2_PLUS, ex2);
	assert_non_null(cb1);
	assert_non_null(cb2);
	sf = scram_cbind(SCRAM_GS2_HEADER, NULL);
	assert_string_equal(sf, SCRAM_CBIND_NONE);
	free(sf);
	sf = scram_cbind(SCRAM_GS2_YES, NULL);
	assert_string_equal(sf, "eSws");
	free(sf);
	assert_null(scram_cbind(SCRAM_GS2_PLUS, NULL));
	assert_int_equal(forged_login(u, ex1, plus_cf, SCRAM_GS2_PLUS, cb1,
	    "@N"), PF_OK);
	assert_int_equal(forged_login(u, ex1, plus_cf, SCRAM_GS2_PLUS, cb2,
	    "@N"), PF_EAUTH);
	assert_int_equal(forged_login(u, ex1, plus_cf, SCRAM_GS2_PLUS,
	    SCRAM_CBIND_NONE, "@N"), PF_EAUTH);
	assert_int_equal(forged_login(u, ex1, plus_cf, SCRAM_GS2_PLUS, "eSws",
	    "@N"), PF_EAUTH);
	/* Plaintext: "y,," logs in, bound to "y,," itself. */
	assert_int_equal(forged_login(u, NULL, yes_cf, SCRAM_GS2_YES, "eSws",
	    "@N"), PF_OK);
	assert_int_equal(forged_login(u, NULL, yes_cf, SCRAM_GS2_YES,
	    SCRAM_CBIND_NONE, "@N"), PF_EAUTH);
	/* Over TLS, "n" and "y" fail at once; "p" without TLS is malformed. */
	s = auth_server_new(u, secret, ex1);
	assert_string_equal(auth_server_mechanism(s), SCRAM_MECH_PLUS);
	assert_int_equal(auth_server_first(s, yes_cf, &sf), PF_EAUTH);
	assert_null(sf);
	auth_server_free(s);
	s = auth_server_new(u, secret, ex1);
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &sf),
	    PF_EAUTH);
	auth_server_free(s);
	s = auth_server_new(u, secret, NULL);
	assert_string_equal(auth_server_mechanism(s), SCRAM_MECH);
	assert_int_equal(auth_server_first(s, plus_cf, &sf), PF_EBADFRAME);
	auth_server_free(s);
	free(cb1);
	free(cb2);
	auth_users_free(u);
}

/* Both ends on GNU SASL, bound to equal or different exporters. */
static void
test_plus_round_trip(void **state)
{
	struct auth_users *u = NULL;
	struct login *c;

	(void)state;
	assert_int_equal(auth_users_single("alice", "pw", &u), PF_OK);
	c = login_new("alice", "pw", ex1);
	assert_string_equal(login_mechanism(c), SCRAM_MECH_PLUS);
	login_free(c);
	c = login_new("alice", "pw", NULL);
	assert_string_equal(login_mechanism(c), SCRAM_MECH);
	login_free(c);
	assert_int_equal(login_bound(u, "alice", "pw", ex1, ex1), PF_OK);
	assert_int_equal(login_bound(u, "alice", "wrong", ex1, ex1),
	    PF_EAUTH);
	assert_int_equal(login_bound(u, "mallory", "pw", ex1, ex1), PF_EAUTH);
	/* A relay between two TLS connections: each end sees its own. */
	assert_int_equal(login_bound(u, "alice", "pw", ex1, ex2), PF_EAUTH);
	/* A client that does not bind over TLS, or binds without TLS. */
	assert_int_equal(login_bound(u, "alice", "pw", ex1, NULL), PF_EAUTH);
	assert_int_equal(login_bound(u, "alice", "pw", NULL, ex1),
	    PF_EBADFRAME);
	auth_users_free(u);
}

/* Server-final is checked by GNU SASL on the bound path too. */
static void
test_plus_server_final_checked(void **state)
{
	struct auth_users *u = NULL;
	struct auth_server *s1;
	struct login *c;
	char *cf = NULL, *sf = NULL, *cfin = NULL, *sfin = NULL;

	(void)state;
	assert_int_equal(auth_users_single("alice", "pw", &u), PF_OK);
	s1 = auth_server_new(u, secret, ex1);
	c = login_new("alice", "pw", ex1);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(auth_server_first(s1, cf, &sf), PF_OK);
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	assert_int_equal(auth_server_final(s1, cfin, &sfin), PF_OK);
	/* The genuine answer passes; a flipped bit in it does not. */
	sfin[3] = sfin[3] == 'A' ? 'B' : 'A';
	assert_int_equal(login_verify(c, sfin), PF_EAUTH);
	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	login_free(c);
	auth_server_free(s1);
	auth_users_free(u);
}

static void
test_verifier_round_trip(void **state)
{
	struct auth_verifier v, w;
	uint8_t salt[SCRAM_MAX_SALT];
	char user[PROTO_MAX_USER + 1], *line;

	(void)state;
	for (size_t i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(auth_verifier_make("pw", salt, 16, 5000, &v), PF_OK);
	assert_int_equal(v.iterations, 5000);
	assert_int_equal(v.saltlen, 16);
	line = auth_verifier_format("a.b@c", &v);
	assert_non_null(line);
	assert_int_equal(strncmp(line, "a.b@c:SCRAM-SHA-256$5000:", 25), 0);
	assert_null(strchr(line, '\n'));
	memset(&w, 0xff, sizeof(w));
	assert_int_equal(auth_verifier_parse(line, user, &w), PF_OK);
	assert_string_equal(user, "a.b@c");
	assert_int_equal(w.iterations, v.iterations);
	assert_int_equal(w.saltlen, v.saltlen);
	assert_memory_equal(w.salt, v.salt, v.saltlen);
	assert_memory_equal(w.stored_key, v.stored_key, PF_SHA256_LEN);
	assert_memory_equal(w.server_key, v.server_key, PF_SHA256_LEN);
	free(line);

	/* The longest salt we accept round-trips too. */
	assert_int_equal(auth_verifier_make("pw", salt, SCRAM_MAX_SALT, 4096,
	    &v), PF_OK);
	line = auth_verifier_format("bob", &v);
	assert_int_equal(auth_verifier_parse(line, user, &w), PF_OK);
	assert_int_equal(w.saltlen, SCRAM_MAX_SALT);
	assert_memory_equal(w.salt, salt, SCRAM_MAX_SALT);
	free(line);

	/* Bad inputs to make and format. */
	assert_int_equal(auth_verifier_make("pw", salt, 0, 4096, &v),
	    PF_EUSAGE);
	assert_int_equal(auth_verifier_make("pw", salt, SCRAM_MAX_SALT + 1,
	    4096, &v), PF_EUSAGE);
	assert_int_equal(auth_verifier_make("pw", salt, 16, 1, &v), PF_EUSAGE);
	assert_int_equal(auth_verifier_make("pw", salt, 16,
	    SCRAM_MAX_ITERATIONS + 1, &v), PF_EUSAGE);
	assert_null(auth_verifier_format("bad user", &v));
}

static void
test_verifier_parse_bad(void **state)
{
	static const struct {
		const char	*line;
		enum pf_status	 want;
	} cases[] = {
		{ GOOD_LINE, PF_OK },
		{ "bob:SCRAM-SHA-256$10000000:" GOOD_TAIL, PF_OK },
		{ "", PF_EBADFRAME },
		{ "alice", PF_EBADFRAME },
		{ "alice:", PF_EBADFRAME },
		{ ":SCRAM-SHA-256$4096:" GOOD_TAIL, PF_EBADFRAME },
		{ "al ice:SCRAM-SHA-256$4096:" GOOD_TAIL, PF_EBADFRAME },
		{ "al=ice:SCRAM-SHA-256$4096:" GOOD_TAIL, PF_EBADFRAME },
		{ "#alice:SCRAM-SHA-256$4096:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-1$4096:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:scram-sha-256$4096:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$abc:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$04096:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$1000:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$10000001:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$99999999999:" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096" GOOD_TAIL, PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096:$" B64_32 ":" B64_32,
		    PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096:!!!!$" B64_32 ":" B64_32,
		    PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096:" RFC_SALT "$" B64_32,
		    PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096:" RFC_SALT "$" B64_32 ":",
		    PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096:" RFC_SALT "$AAAA:" B64_32,
		    PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096:" RFC_SALT "$" B64_32 ":" B64_33,
		    PF_EBADFRAME },
		{ "alice:SCRAM-SHA-256$4096:" RFC_SALT "$" B64_33 ":" B64_32,
		    PF_EBADFRAME },
		{ GOOD_LINE ":" B64_32, PF_EBADFRAME },
		{ GOOD_LINE "\r", PF_EBADFRAME },
		{ GOOD_LINE " ", PF_EBADFRAME },
		{ " " GOOD_LINE, PF_EBADFRAME },
	};
	struct auth_verifier v;
	char user[PROTO_MAX_USER + 1];
	enum pf_status got;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = auth_verifier_parse(cases[i].line, user, &v);
		if (got != cases[i].want)
			fail_msg("case %zu: \"%s\": %d, want %d", i,
			    cases[i].line, got, cases[i].want);
	}
}

static mode_t
file_mode(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

static size_t
dir_entries(void)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(tmpdir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
test_users_add(void **state)
{
	struct auth_users *u = NULL;
	char path[256], *text;

	(void)state;
	tmp_path(path, sizeof(path), "add.users");
	/* Created 0600 when missing, whatever the umask allows. */
	assert_int_equal(auth_users_add(path, "alice", "pw1", 0), PF_OK);
	assert_int_equal(file_mode(path), 0600);
	assert_int_equal(auth_users_add(path, "bob", "pw2", 5000), PF_OK);
	text = read_file(path);
	assert_non_null(strstr(text, "alice:SCRAM-SHA-256$4096:"));
	assert_non_null(strstr(text, "\nbob:SCRAM-SHA-256$5000:"));
	free(text);
	assert_int_equal(auth_users_load(path, &u), PF_OK);
	assert_int_equal(auth_users_count(u), 2);
	assert_int_equal(login(u, "alice", "pw1"), PF_OK);
	assert_int_equal(login(u, "bob", "pw2"), PF_OK);
	auth_users_free(u);

	/* Comments and others survive a replacement; alice has one line. */
	text = read_file(path);
	write_file(path, "# users\n\n");
	{
		FILE *f = fopen(path, "a");

		fputs(text, f);
		/* A duplicate, without a final newline. */
		fputs("alice:SCRAM-SHA-256$4096:" GOOD_TAIL, f);
		fclose(f);
	}
	free(text);
	chmod(path, 0644);
	assert_int_equal(auth_users_add(path, "alice", "pw3", 0), PF_OK);
	assert_int_equal(file_mode(path), 0600);
	text = read_file(path);
	assert_int_equal(strncmp(text, "# users\n\n", 9), 0);
	assert_int_equal(count_substr(text, "alice:"), 1);
	assert_int_equal(count_substr(text, "bob:"), 1);
	assert_int_equal(text[strlen(text) - 1], '\n');
	free(text);
	assert_int_equal(auth_users_load(path, &u), PF_OK);
	assert_int_equal(auth_users_count(u), 2);
	assert_int_equal(login(u, "alice", "pw3"), PF_OK);
	assert_int_equal(login(u, "alice", "pw1"), PF_EAUTH);
	assert_int_equal(login(u, "bob", "pw2"), PF_OK);
	auth_users_free(u);

	/* A name that is a prefix of another does not replace it. */
	assert_int_equal(auth_users_add(path, "bo", "pw4", 0), PF_OK);
	text = read_file(path);
	assert_int_equal(count_substr(text, "bob:"), 1);
	assert_int_equal(count_substr(text, "\nbo:"), 1);
	free(text);

	/* Refusals leave the file alone and no temporary behind. */
	assert_int_equal(auth_users_add(path, "bad user", "pw", 0), PF_EUSAGE);
	assert_int_equal(auth_users_add(path, "carol", "pw", 100), PF_EUSAGE);
	assert_int_equal(dir_entries(), 1);
	unlink(path);
}

static void
test_users_single(void **state)
{
	struct auth_users *u = NULL, *u2 = NULL;

	(void)state;
	assert_int_equal(auth_users_single(SCRAM_DEFAULT_USER,
	    SCRAM_DEFAULT_PASSWORD, &u), PF_OK);
	assert_int_equal(auth_users_count(u), 1);
	assert_non_null(auth_users_find(u, SCRAM_DEFAULT_USER));
	assert_null(auth_users_find(u, "other"));
	assert_int_equal(auth_users_find(u, SCRAM_DEFAULT_USER)->iterations,
	    SCRAM_DEFAULT_ITERATIONS);
	/* A fresh salt each time. */
	assert_int_equal(auth_users_single(SCRAM_DEFAULT_USER,
	    SCRAM_DEFAULT_PASSWORD, &u2), PF_OK);
	assert_memory_not_equal(auth_users_find(u, SCRAM_DEFAULT_USER)->salt,
	    auth_users_find(u2, SCRAM_DEFAULT_USER)->salt, AUTH_SALT_LEN);
	assert_int_equal(login(u, SCRAM_DEFAULT_USER, SCRAM_DEFAULT_PASSWORD),
	    PF_OK);
	auth_users_free(u);
	auth_users_free(u2);
	assert_int_equal(auth_users_single("", "pw", &u), PF_EUSAGE);
	assert_null(u);
	assert_int_equal(auth_users_count(NULL), 0);
}

/* Runs auth_users_load with stderr captured into *log (new string). */
static enum pf_status
load_logged(const char *path, struct auth_users **u, char **log)
{
	char logpath[256];
	enum pf_status rc;
	int fd, saved;

	tmp_path(logpath, sizeof(logpath), "stderr.log");
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	rc = auth_users_load(path, u);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	*log = read_file(logpath);
	unlink(logpath);
	return rc;
}

/*
 * An unknown user's verifier: the iteration count most users have (not
 * the first one's; of two as common, the higher), a salt as long as real
 * ones that depends on the secret and the name only.
 */
static void
test_fake_verifier(void **state)
{
	uint8_t k1[PF_SHA256_LEN] = { 1 }, k2[PF_SHA256_LEN] = { 2 };
	struct auth_verifier a, b;
	struct auth_users *u = NULL;
	char path[256];

	(void)state;
	tmp_path(path, sizeof(path), "fake.users");
	write_file(path, "bob:SCRAM-SHA-256$10000:" GOOD_TAIL "\n" GOOD_LINE
	    "\ncarol:SCRAM-SHA-256$4096:" GOOD_TAIL "\n");
	assert_int_equal(auth_users_load(path, &u), PF_OK);
	assert_int_equal(auth_users_fake_verifier(u, k1, "x", &a), PF_OK);
	assert_int_equal(a.iterations, 4096);
	assert_int_equal(a.saltlen, AUTH_SALT_LEN);
	assert_int_equal(auth_users_fake_verifier(u, k1, "x", &b), PF_OK);
	assert_memory_equal(a.salt, b.salt, AUTH_SALT_LEN);
	assert_int_equal(auth_users_fake_verifier(u, k1, "y", &b), PF_OK);
	assert_memory_not_equal(a.salt, b.salt, AUTH_SALT_LEN);
	assert_int_equal(auth_users_fake_verifier(u, k2, "x", &b), PF_OK);
	assert_memory_not_equal(a.salt, b.salt, AUTH_SALT_LEN);
	auth_users_free(u);

	write_file(path, GOOD_LINE "\nbob:SCRAM-SHA-256$10000:" GOOD_TAIL
	    "\n");
	assert_int_equal(auth_users_load(path, &u), PF_OK);
	assert_int_equal(auth_users_fake_verifier(u, k1, "x", &a), PF_OK);
	assert_int_equal(a.iterations, 10000);
	auth_users_free(u);
	assert_int_equal(auth_users_fake_verifier(NULL, k1, "x", &a), PF_OK);
	assert_int_equal(a.iterations, SCRAM_DEFAULT_ITERATIONS);
	unlink(path);
}

static void
test_users_load(void **state)
{
	struct auth_users *u = NULL;
	char path[256], *log;
	FILE *f;

	(void)state;
	tmp_path(path, sizeof(path), "load.users");

	assert_int_equal(load_logged(path, &u, &log), PF_EIO);
	assert_null(u);
	assert_non_null(strstr(log, path));
	free(log);

	write_file(path, "");
	assert_int_equal(auth_users_load(path, &u), PF_OK);
	assert_int_equal(auth_users_count(u), 0);
	auth_users_free(u);

	write_file(path, "# comment\n\n   \n" GOOD_LINE "\n"
	    "bob:SCRAM-SHA-256$4096:" GOOD_TAIL);
	assert_int_equal(auth_users_load(path, &u), PF_OK);
	assert_int_equal(auth_users_count(u), 2);
	assert_non_null(auth_users_find(u, "alice"));
	assert_non_null(auth_users_find(u, "bob"));
	auth_users_free(u);

	/* The bad line is named by number, its content never shown. */
	write_file(path, "# comment\n" GOOD_LINE "\n"
	    "carol:hunter2-pasted-password\n");
	assert_int_equal(load_logged(path, &u, &log), PF_EBADFRAME);
	assert_null(u);
	assert_non_null(strstr(log, path));
	assert_non_null(strstr(log, ":3"));
	assert_null(strstr(log, "hunter2"));
	assert_null(strstr(log, "carol"));
	free(log);

	write_file(path, GOOD_LINE "\n# x\n" GOOD_LINE "\n");
	assert_int_equal(load_logged(path, &u, &log), PF_EBADFRAME);
	assert_null(u);
	assert_non_null(strstr(log, ":3"));
	free(log);

	/* A NUL inside a line must not hide the rest of it. */
	f = fopen(path, "w");
	fputs(GOOD_LINE, f);
	fputc('\0', f);
	fputs("junk\n", f);
	fclose(f);
	assert_int_equal(load_logged(path, &u, &log), PF_EBADFRAME);
	free(log);
	unlink(path);
}

static void
test_user_valid(void **state)
{
	static const char *const good[] = {
		"a", "alice", "A.b_c@d+e-f", "0", "paraflow",
		A32 A32,
	};
	static const char *const bad[] = {
		"", "al ice", "a:b", "a,b", "a=b", "a=2Cb", "caf\xc3\xa9",
		"a\tb", "a/b", "a\nb", "a$b", "#a", "a\"b",
		A32 A32 "a",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!proto_user_valid(good[i]))
			fail_msg("\"%s\" refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (proto_user_valid(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
	assert_false(proto_user_valid(NULL));
}

static void
test_join_proof(void **state)
{
	static const uint8_t nonce[] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01 };
	static const char sid[] = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
	uint8_t key[PF_SHA256_LEN], key2[PF_SHA256_LEN];
	uint8_t a[PF_SHA256_LEN], b[PF_SHA256_LEN], want[PF_SHA256_LEN];
	uint8_t msg[128];
	size_t len;

	(void)state;
	memset(key, 0x42, sizeof(key));
	memcpy(key2, key, sizeof(key));
	key2[31] ^= 1;

	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce), NULL,
	    a), PF_OK);
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce), NULL,
	    b), PF_OK);
	assert_memory_equal(a, b, sizeof(a));

	/* Exactly HMAC(K, "paraflow join" || session || nonce). */
	len = 0;
	memcpy(msg, "paraflow join", 13);
	len += 13;
	memcpy(msg + len, sid, strlen(sid));
	len += strlen(sid);
	memcpy(msg + len, nonce, sizeof(nonce));
	len += sizeof(nonce);
	assert_int_equal(pf_hmac_sha256(key, sizeof(key), msg, len, want),
	    PF_OK);
	assert_memory_equal(a, want, sizeof(a));

	assert_int_equal(scram_join_proof(key, "1b4e28ba-2fa1-41d2-883f-"
	    "0016d3cca428", nonce, sizeof(nonce), NULL, b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce) - 1,
	    NULL, b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(scram_join_proof(key2, sid, nonce, sizeof(nonce), NULL,
	    b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(scram_join_proof(key, sid, NULL, 0, NULL, b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));

	/* Over TLS: HMAC(K, "paraflow join" || session || nonce || ex). */
	memcpy(msg + len, ex1, sizeof(ex1));
	assert_int_equal(pf_hmac_sha256(key, sizeof(key), msg,
	    len + sizeof(ex1), want), PF_OK);
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce), ex1,
	    b), PF_OK);
	assert_memory_equal(b, want, sizeof(b));
	assert_memory_not_equal(a, b, sizeof(a));
	/* Relayed from another TLS connection: another proof. */
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce), ex2,
	    a), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
}

/*
 * Opens tests/vectors/name. Automake exports srcdir to tests;
 * PF_VECTORS_DIR overrides it.
 */
static FILE *
open_vectors(const char *name)
{
	const char *dir = getenv("PF_VECTORS_DIR"), *srcdir = getenv("srcdir");
	char path[512];
	FILE *fp;

	if (dir != NULL)
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	else
		snprintf(path, sizeof(path), "%s/tests/vectors/%s",
		    srcdir != NULL ? srcdir : ".", name);
	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s (set srcdir or PF_VECTORS_DIR)", path);
	return fp;
}

/*
 * Verifiers PostgreSQL made (tests/vectors/make_pg_scram.sh), non-ASCII
 * passwords among them: each logs in through GNU SASL on both ends, with
 * and without binding, and passes the HTTP Basic check; a wrong password
 * does neither; ours computes the same keys from the same salt.
 */
static void
test_pg_vectors(void **state)
{
	FILE *fp = open_vectors("pg_scram.txt");
	char line[1024], entry[1024], path[256], name[PROTO_MAX_USER + 1];
	char *user, *pw, *ver;
	struct auth_verifier v, mine;
	struct auth_users *u;
	unsigned n = 0;

	(void)state;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (line[0] == '#')
			continue;
		line[strcspn(line, "\n")] = '\0';
		user = strtok(line, "\t");
		pw = strtok(NULL, "\t");
		ver = strtok(NULL, "\t");
		assert_non_null(ver);
		snprintf(entry, sizeof(entry), "%s:%s", user, ver);
		assert_int_equal(auth_verifier_parse(entry, name, &v), PF_OK);
		assert_int_equal(auth_verifier_make(pw, v.salt, v.saltlen,
		    v.iterations, &mine), PF_OK);
		assert_memory_equal(mine.stored_key, v.stored_key,
		    PF_SHA256_LEN);
		assert_memory_equal(mine.server_key, v.server_key,
		    PF_SHA256_LEN);
		/* Loaded from a users file, as paraflowd would. */
		tmp_path(path, sizeof(path), "pg.users");
		snprintf(entry, sizeof(entry), "%s:%s\n", user, ver);
		write_file(path, entry);
		u = NULL;
		assert_int_equal(auth_users_load(path, &u), PF_OK);
		unlink(path);
		assert_int_equal(login(u, user, pw), PF_OK);
		assert_int_equal(login_bound(u, user, pw, ex1, ex1), PF_OK);
		assert_int_equal(auth_users_check(u, user, pw, secret), PF_OK);
		assert_int_equal(login(u, user, "pencil!"), PF_EAUTH);
		assert_int_equal(auth_users_check(u, user, "p\xc3\xa4ss",
		    secret), PF_EAUTH);
		/* SASLprep: U+2168 is "IX", U+00A0 a space. */
		if (strcmp(user, "roman") == 0)
			assert_int_equal(login(u, user, "IX"), PF_OK);
		if (strcmp(user, "nbsp") == 0)
			assert_int_equal(login(u, user, "a b"), PF_OK);
		auth_users_free(u);
		n++;
	}
	fclose(fp);
	assert_int_equal(n, 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_primitives),
		cmocka_unit_test(test_rfc7677_server),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_unknown_user),
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_bad_server_final),
		cmocka_unit_test(test_bad_client_first),
		cmocka_unit_test(test_bad_client_final),
		cmocka_unit_test(test_bad_server_first),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_nonce_and_binding_checked),
		cmocka_unit_test(test_channel_binding),
		cmocka_unit_test(test_plus_round_trip),
		cmocka_unit_test(test_plus_server_final_checked),
		cmocka_unit_test(test_pg_vectors),
		cmocka_unit_test(test_verifier_round_trip),
		cmocka_unit_test(test_verifier_parse_bad),
		cmocka_unit_test(test_users_add),
		cmocka_unit_test(test_users_single),
		cmocka_unit_test(test_users_load),
		cmocka_unit_test(test_fake_verifier),
		cmocka_unit_test(test_user_valid),
		cmocka_unit_test(test_join_proof),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
