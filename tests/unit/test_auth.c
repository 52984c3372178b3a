/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the SCRAM-SHA-256 login (scram.c, login.c, auth.c), the
 * users file (users.c) and join proofs.
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
login(const struct auth_users *users, const char *user, const char *pw)
{
	struct auth_server *s = auth_server_new(users, secret);
	struct login *c = login_new(user, pw);
	char *cf = NULL, *sf = NULL, *cfin = NULL, *sfin = NULL;
	uint8_t ks[PF_SHA256_LEN], kc[PF_SHA256_LEN];
	enum pf_status rc;

	assert_non_null(s);
	assert_non_null(c);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
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
	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	auth_server_free(s);
	login_free(c);
	return rc;
}

static void
test_rfc7677_client(void **state)
{
	struct login *c;
	char *cf = NULL, *cfin = NULL;
	uint8_t k[PF_SHA256_LEN];

	(void)state;
	c = login_new(RFC_USER, RFC_PASSWORD);
	assert_non_null(c);
	login_set_nonce(c, RFC_CNONCE);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_string_equal(cf, RFC_CLIENT_FIRST);
	assert_int_equal(login_final(c, RFC_SERVER_FIRST, &cfin), PF_OK);
	assert_string_equal(cfin, RFC_CLIENT_FINAL);
	/* No key until the server has proven itself. */
	assert_int_equal(login_session_key(c, k), PF_EPROTO);
	assert_int_equal(login_verify(c, RFC_SERVER_FINAL), PF_OK);
	assert_int_equal(login_session_key(c, k), PF_OK);
	free(cf);
	free(cfin);
	login_free(c);
}

/* K computed here from the RFC's inputs, independently of auth.c. */
static void
rfc_session_key(uint8_t k[PF_SHA256_LEN])
{
	static const char am[] = "n=user,r=" RFC_CNONCE "," RFC_SERVER_FIRST
	    ",c=biws,r=" RFC_CNONCE RFC_SNONCE;
	static const char label[] = "paraflow session key";
	uint8_t salt[16], salted[PF_SHA256_LEN], ck[PF_SHA256_LEN];
	char msg[sizeof(label) + sizeof(am)];

	assert_int_equal(pf_base64_decode(RFC_SALT, salt, sizeof(salt)), 16);
	assert_int_equal(pf_pbkdf2_sha256(RFC_PASSWORD, 6, salt, 16, 4096,
	    salted), PF_OK);
	assert_int_equal(pf_hmac_sha256(salted, sizeof(salted), "Client Key",
	    10, ck), PF_OK);
	memcpy(msg, label, sizeof(label) - 1);
	memcpy(msg + sizeof(label) - 1, am, sizeof(am) - 1);
	assert_int_equal(pf_hmac_sha256(ck, sizeof(ck), msg,
	    sizeof(label) - 1 + sizeof(am) - 1, k), PF_OK);
}

static void
test_rfc7677_server(void **state)
{
	struct auth_users *u = rfc_users();
	struct auth_server *s;
	struct login *c;
	char *sf = NULL, *sfin = NULL, *cf = NULL, *cfin = NULL;
	uint8_t ks[PF_SHA256_LEN], kc[PF_SHA256_LEN], want[PF_SHA256_LEN];

	(void)state;
	s = auth_server_new(u, secret);
	assert_non_null(s);
	auth_server_set_nonce(s, RFC_SNONCE);
	assert_null(auth_server_user(s));
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &sf), PF_OK);
	assert_string_equal(sf, RFC_SERVER_FIRST);
	assert_null(auth_server_user(s));
	assert_int_equal(auth_server_final(s, RFC_CLIENT_FINAL, &sfin), PF_OK);
	assert_string_equal(sfin, RFC_SERVER_FINAL);
	assert_string_equal(auth_server_user(s), RFC_USER);
	assert_int_equal(auth_server_session_key(s, ks), PF_OK);

	/* The client on the same vector derives the same K, and the right K. */
	c = login_new(RFC_USER, RFC_PASSWORD);
	login_set_nonce(c, RFC_CNONCE);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	assert_int_equal(login_verify(c, sfin), PF_OK);
	assert_int_equal(login_session_key(c, kc), PF_OK);
	assert_memory_equal(ks, kc, sizeof(ks));
	rfc_session_key(want);
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
	s = auth_server_new(u, secret);
	c = login_new("alice", "correct horse");
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
	s = auth_server_new(u, secret);
	c = login_new("alice", "correct horse");
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
	struct auth_server *s = auth_server_new(u, key);
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
	s = auth_server_new(u, secret);
	c = login_new("alice", "pw");
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	assert_int_equal(auth_server_final(s, cfin, &sfin), PF_OK);
	auth_server_free(s);

	/* An eavesdropper replays both recorded messages to a new server. */
	s = auth_server_new(u, secret);
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

/* A client on the RFC vector, stopped after client-final. */
static struct login *
rfc_client_at_final(void)
{
	struct login *c = login_new(RFC_USER, RFC_PASSWORD);
	char *cf = NULL, *cfin = NULL;

	login_set_nonce(c, RFC_CNONCE);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(login_final(c, RFC_SERVER_FIRST, &cfin), PF_OK);
	free(cf);
	free(cfin);
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
		RFC_SERVER_FINAL ",x=1",
		"x=1," RFC_SERVER_FINAL,
		"e=invalid-proof",
		"e=other-error",
	};
	struct login *c;
	uint8_t k[PF_SHA256_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = rfc_client_at_final();
		if (login_verify(c, cases[i]) != PF_EAUTH)
			fail_msg("case %zu: \"%s\" accepted", i, cases[i]);
		assert_int_equal(login_session_key(c, k), PF_EPROTO);
		/* One try only: not even the right answer helps now. */
		assert_int_equal(login_verify(c, RFC_SERVER_FINAL),
		    PF_EPROTO);
		login_free(c);
	}
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
		"y,,n=user,r=" T_CNONCE,
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

		s = auth_server_new(NULL, secret);
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
		{ "c=biws,r=" T_NONCE, PF_EBADFRAME },
		{ "r=" T_NONCE ",p=" B64_32, PF_EBADFRAME },
		{ "c=biws,p=" B64_32, PF_EBADFRAME },
		{ "p=" B64_32 ",c=biws,r=" T_NONCE, PF_EBADFRAME },
		{ "c=biws,r=" T_NONCE ",p=", PF_EBADFRAME },
		{ "c=biws,r=" T_NONCE ",p=!!!!", PF_EBADFRAME },
		{ "c=biws,r=" T_NONCE ",p=AAAA", PF_EBADFRAME },
		{ "c=biws,r=" T_NONCE ",p=" B64_33, PF_EBADFRAME },
		{ "c=biws,r=" T_NONCE ",p=" B64_32 "AAAA", PF_EBADFRAME },
		{ "c=biws,r=" T_NONCE ",x=1,p=" B64_32, PF_EBADFRAME },
		{ "c=biws,r=" T_NONCE ",p=" B64_32 ",x=1", PF_EBADFRAME },
		{ "m=1,c=biws,r=" T_NONCE ",p=" B64_32, PF_EBADFRAME },
		/* Well-formed but wrong: channel binding, nonce, proof. */
		{ "c=eSws,r=" T_NONCE ",p=" B64_32, PF_EAUTH },
		{ "c=cD10bHMtdW5pcXVlLCw=,r=" T_NONCE ",p=" B64_32, PF_EAUTH },
		{ "c=biws,r=" T_CNONCE ",p=" B64_32, PF_EAUTH },
		{ "c=biws,r=" T_NONCE "x,p=" B64_32, PF_EAUTH },
		{ "c=biws,r=other,p=" B64_32, PF_EAUTH },
		{ "c=biws,r=" T_NONCE ",p=" B64_32, PF_EAUTH },
	};
	struct auth_users *u = NULL;
	struct auth_server *s;
	char *sf = NULL, *sfin, *overlong;

	(void)state;
	assert_int_equal(auth_users_single("alice", "pw", &u), PF_OK);
	overlong = repeat('A', SCRAM_MAX_MESSAGE, "c=biws,r=" T_NONCE ",p=");
	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		bool last = i == sizeof(cases) / sizeof(cases[0]);
		const char *m = last ? overlong : cases[i].msg;
		enum pf_status want = last ? PF_EBADFRAME : cases[i].want;
		enum pf_status got;

		s = auth_server_new(u, secret);
		auth_server_set_nonce(s, T_SNONCE);
		assert_int_equal(auth_server_first(s, "n,,n=alice,r=" T_CNONCE,
		    &sf), PF_OK);
		sfin = (char *)1;
		if ((got = auth_server_final(s, m, &sfin)) != want)
			fail_msg("case %zu: \"%s\": %d, want %d", i, m, got,
			    want);
		assert_null(sfin);
		assert_null(auth_server_user(s));
		/* At most one PROOF per connection. */
		assert_int_equal(auth_server_final(s, m, &sfin), PF_EPROTO);
		free(sf);
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
		{ "r=" T_NONCE ",s=" RFC_SALT, PF_EBADFRAME },
		{ "r=" T_NONCE ",i=4096", PF_EBADFRAME },
		{ "s=" RFC_SALT ",r=" T_NONCE ",i=4096", PF_EBADFRAME },
		{ "m=1,r=" T_NONCE ",s=" RFC_SALT ",i=4096", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=4096,x=1", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=!!!!,i=4096", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=,i=4096", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ,i=4096",
		    PF_EBADFRAME },
		/* 66 bytes of salt, more than SCRAM_MAX_SALT. */
		{ "r=" T_NONCE ",s=" B64_33 B64_33 ",i=4096", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=abc", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=-4096", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=04096", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=0", PF_EBADFRAME },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=4096x", PF_EBADFRAME },
		{ "r=cn\x7fonce,s=" RFC_SALT ",i=4096", PF_EBADFRAME },
		{ "e=other-error", PF_EBADFRAME },
		/* Well-formed, but not from a server we should trust. */
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=1", PF_EAUTH },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=4095", PF_EAUTH },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=10000001", PF_EAUTH },
		{ "r=" T_NONCE ",s=" RFC_SALT ",i=99999999999", PF_EAUTH },
		{ "r=" T_NONCE ",s=" RFC_SALT
		    ",i=999999999999999999999999999999", PF_EAUTH },
		{ "r=" T_CNONCE ",s=" RFC_SALT ",i=4096", PF_EAUTH },
		{ "r=cnonc,s=" RFC_SALT ",i=4096", PF_EAUTH },
		{ "r=xnonce" T_SNONCE ",s=" RFC_SALT ",i=4096", PF_EAUTH },
	};
	struct login *c;
	char *cf = NULL, *cfin, *overlong;

	(void)state;
	overlong = repeat('a', SCRAM_MAX_MESSAGE, "r=" T_NONCE);
	for (size_t i = 0; i <= sizeof(cases) / sizeof(cases[0]); i++) {
		bool last = i == sizeof(cases) / sizeof(cases[0]);
		const char *m = last ? overlong : cases[i].msg;
		enum pf_status want = last ? PF_EBADFRAME : cases[i].want;
		enum pf_status got;

		c = login_new("alice", "pw");
		login_set_nonce(c, T_CNONCE);
		assert_int_equal(login_first(c, &cf), PF_OK);
		cfin = (char *)1;
		if ((got = login_final(c, m, &cfin)) != want)
			fail_msg("case %zu: \"%s\": %d, want %d", i, m, got,
			    want);
		assert_null(cfin);
		assert_int_equal(login_verify(c, RFC_SERVER_FINAL),
		    PF_EPROTO);
		free(cf);
		login_free(c);
	}
	free(overlong);
}

static void
test_order(void **state)
{
	struct auth_users *u = rfc_users();
	struct auth_server *s;
	struct login *c;
	char *out = NULL, *cf = NULL;
	uint8_t k[PF_SHA256_LEN];

	(void)state;
	/* Server: PROOF before AUTH, AUTH twice, PROOF twice. */
	s = auth_server_new(u, secret);
	assert_int_equal(auth_server_final(s, RFC_CLIENT_FINAL, &out),
	    PF_EPROTO);
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &out),
	    PF_EPROTO);
	auth_server_free(s);

	s = auth_server_new(u, secret);
	auth_server_set_nonce(s, RFC_SNONCE);
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &out), PF_OK);
	free(out);
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &out),
	    PF_EPROTO);
	assert_null(out);
	assert_int_equal(auth_server_final(s, RFC_CLIENT_FINAL, &out),
	    PF_EPROTO);
	auth_server_free(s);

	s = auth_server_new(u, secret);
	auth_server_set_nonce(s, RFC_SNONCE);
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &out), PF_OK);
	free(out);
	assert_int_equal(auth_server_final(s, RFC_CLIENT_FINAL, &out), PF_OK);
	free(out);
	assert_int_equal(auth_server_final(s, RFC_CLIENT_FINAL, &out),
	    PF_EPROTO);
	assert_null(out);
	auth_server_free(s);

	/* set_nonce: invalid, or too late. */
	s = auth_server_new(u, secret);
	auth_server_set_nonce(s, "bad,nonce");
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &out),
	    PF_EINTERNAL);
	auth_server_free(s);
	s = auth_server_new(u, secret);
	assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &out), PF_OK);
	free(out);
	auth_server_set_nonce(s, RFC_SNONCE);
	assert_int_equal(auth_server_final(s, RFC_CLIENT_FINAL, &out),
	    PF_EPROTO);
	auth_server_free(s);

	/* Client: final before first, verify before final, first twice. */
	c = login_new(RFC_USER, RFC_PASSWORD);
	assert_int_equal(login_final(c, RFC_SERVER_FIRST, &out),
	    PF_EPROTO);
	assert_int_equal(login_first(c, &out), PF_EPROTO);
	login_free(c);
	c = login_new(RFC_USER, RFC_PASSWORD);
	assert_int_equal(login_verify(c, RFC_SERVER_FINAL), PF_EPROTO);
	login_free(c);
	c = login_new(RFC_USER, RFC_PASSWORD);
	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(login_first(c, &out), PF_EPROTO);
	assert_null(out);
	assert_int_equal(login_session_key(c, k), PF_EPROTO);
	free(cf);
	login_free(c);
	c = login_new(RFC_USER, RFC_PASSWORD);
	login_set_nonce(c, "");
	assert_int_equal(login_first(c, &out), PF_EINTERNAL);
	login_free(c);

	/* Client: bad arguments are a usage error. */
	c = login_new("bad user", "pw");
	assert_non_null(c);
	assert_int_equal(login_first(c, &out), PF_EUSAGE);
	assert_null(out);
	login_free(c);
	cf = repeat('x', SCRAM_MAX_PASSWORD + 1, "");
	c = login_new("alice", cf);
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
 * right for them, as a client knowing the password could forge it: only
 * the server's own checks of c= and r= can refuse it.
 */
static char *
forge_client_final(const char *cbind, const char *nonce)
{
	uint8_t salt[16], salted[PF_SHA256_LEN], ck[PF_SHA256_LEN];
	uint8_t sk[PF_SHA256_LEN], sig[PF_SHA256_LEN];
	char np[256], am[1024], *b64, *out;

	snprintf(np, sizeof(np), "c=%s,r=%s", cbind, nonce);
	snprintf(am, sizeof(am), "%s,%s,%s", &RFC_CLIENT_FIRST[3],
	    RFC_SERVER_FIRST, np);
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

static void
test_nonce_and_binding_checked(void **state)
{
	static const struct {
		const char	*cbind;
		const char	*nonce;
		enum pf_status	 want;
	} cases[] = {
		{ "biws", RFC_CNONCE RFC_SNONCE, PF_OK },	/* control */
		{ "biws", RFC_CNONCE, PF_EAUTH },
		{ "biws", RFC_CNONCE RFC_SNONCE "x", PF_EAUTH },
		{ "biws", "x" RFC_SNONCE, PF_EAUTH },
		{ "eSws", RFC_CNONCE RFC_SNONCE, PF_EAUTH },
		{ "biwx", RFC_CNONCE RFC_SNONCE, PF_EAUTH },
	};
	struct auth_users *u = rfc_users();
	struct auth_server *s;
	char *sf = NULL, *sfin = NULL, *cfin;
	enum pf_status got;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cfin = forge_client_final(cases[i].cbind, cases[i].nonce);
		s = auth_server_new(u, secret);
		auth_server_set_nonce(s, RFC_SNONCE);
		assert_int_equal(auth_server_first(s, RFC_CLIENT_FIRST, &sf),
		    PF_OK);
		if ((got = auth_server_final(s, cfin, &sfin)) != cases[i].want)
			fail_msg("case %zu: %d, want %d", i, got,
			    cases[i].want);
		if (i == 0)
			assert_string_equal(cfin, RFC_CLIENT_FINAL);
		free(sf);
		free(sfin);
		sfin = NULL;
		free(cfin);
		auth_server_free(s);
	}
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

	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce), a),
	    PF_OK);
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce), b),
	    PF_OK);
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
	    "0016d3cca428", nonce, sizeof(nonce), b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce) - 1,
	    b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(scram_join_proof(key2, sid, nonce, sizeof(nonce), b),
	    PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(scram_join_proof(key, sid, NULL, 0, b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7677_client),
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
		cmocka_unit_test(test_verifier_round_trip),
		cmocka_unit_test(test_verifier_parse_bad),
		cmocka_unit_test(test_users_add),
		cmocka_unit_test(test_users_single),
		cmocka_unit_test(test_users_load),
		cmocka_unit_test(test_user_valid),
		cmocka_unit_test(test_join_proof),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
