/* SPDX-License-Identifier: MIT */
/* SCRAM-SHA-256 for server and client, the users file, and join proofs. */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "digest.h"
#include "log.h"
#include "status.h"

/*
 * Longest nonce part either side may contribute. With it every message we
 * build stays far below AUTH_MAX_MESSAGE, so we never send a message that
 * the peer must refuse as overlong.
 */
#define NONCE_MAX	256

#define GS2_HEADER	"n,,"
#define CBIND_NONE	"biws"		/* base64 of GS2_HEADER */
#define USERS_SCHEME	"SCRAM-SHA-256$"
#define USERS_LINE_MAX	1024
#define LABEL_SESSION	"paraflow session key"
#define LABEL_FAKE_SALT	"paraflow fake salt"
#define LABEL_JOIN	"paraflow join"

/* Big enough for the base64 of AUTH_MAX_SALT bytes, the longest field. */
#define B64_FIELD_MAX	(4 * ((AUTH_MAX_SALT + 2) / 3))

/*
 * Where an exchange stands. Any failure moves it to STEP_FAILED and every
 * later call then returns PF_EPROTO: a login gets exactly one try.
 */
enum step {
	STEP_NEW,
	STEP_FIRST,	/* first message done */
	STEP_FINAL,	/* client only: client-final sent */
	STEP_DONE,	/* succeeded */
	STEP_FAILED
};

struct user {
	char			name[AUTH_MAX_USER + 1];
	struct auth_verifier	v;
};

struct auth_users {
	struct user	*v;
	size_t		 n;
	size_t		 cap;
};

struct auth_server {
	const struct auth_users	*users;
	uint8_t			 secret[PF_SHA256_LEN];
	enum step		 step;
	bool			 known;
	bool			 nonce_bad;
	char			 snonce[NONCE_MAX + 1];	/* "": random */
	char			 user[AUTH_MAX_USER + 1];
	char			 nonce[2 * NONCE_MAX + 1];
	char			 first_bare[AUTH_MAX_MESSAGE + 1];
	char			 server_first[AUTH_MAX_MESSAGE + 1];
	struct auth_verifier	 v;
	uint8_t			 key[PF_SHA256_LEN];
};

struct auth_client {
	enum step	step;
	bool		args_bad;
	bool		nonce_bad;
	char		user[AUTH_MAX_USER + 1];
	char		password[AUTH_MAX_PASSWORD + 1];
	size_t		passlen;
	char		cnonce[NONCE_MAX + 1];		/* "": random */
	char		first_bare[AUTH_MAX_MESSAGE + 1];
	uint8_t		server_sig[PF_SHA256_LEN];
	uint8_t		key[PF_SHA256_LEN];
};

/* One "x=value" attribute of a SCRAM message, pointing into the message. */
struct attr {
	const char	*p;
	size_t		 len;
};

/*
 * "paraflow session key" || AuthMessage in one buffer, so the signatures
 * use the tail and K the whole without a second copy.
 */
struct authmsg {
	char	buf[sizeof(LABEL_SESSION) - 1 + 3 * (AUTH_MAX_MESSAGE + 1)];
	size_t	len;		/* of the AuthMessage alone */
};

#define AUTHMSG(m)	((m)->buf + sizeof(LABEL_SESSION) - 1)

static char *
dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
dup_printf(const char *fmt, ...)
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
static void
free_secret(char *s)
{
	if (s == NULL)
		return;
	pf_wipe(s, strlen(s));
	free(s);
}

/* The length cap comes first, so nothing below walks an overlong input. */
static bool
message_ok(const char *msg)
{
	return msg != NULL && strnlen(msg, AUTH_MAX_MESSAGE + 1) <=
	    AUTH_MAX_MESSAGE;
}

/*
 * Splits msg into exactly the attributes named by keys, in that order
 * ("nr" for "n=...,r=..."). The reserved "m=", extensions and empty values
 * are refused: ParaFlow speaks only the subset of RFC 5802 it needs, and
 * a stricter parser is a smaller target.
 */
static bool
split_attrs(const char *msg, const char *keys, struct attr *out)
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

static bool
attr_is(const struct attr *a, const char *s)
{
	return a->len == strlen(s) && memcmp(a->p, s, a->len) == 0;
}

/* RFC 5802: a nonce is printable ASCII other than ','. */
static bool
nonce_valid(const char *p, size_t len, size_t max)
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
static bool
parse_count(const struct attr *a, unsigned *out)
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
static long
decode_attr(const struct attr *a, uint8_t *out, size_t cap)
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

/* A fresh nonce: base64 of AUTH_NONCE_LEN random bytes, into out. */
static enum pf_status
random_nonce(char out[NONCE_MAX + 1])
{
	enum pf_status rc;
	uint8_t raw[AUTH_NONCE_LEN];
	char *b64 = NULL;

	if ((rc = pf_random(raw, sizeof(raw))) != PF_OK)
		goto out;
	rc = PF_ENOMEM;
	if ((b64 = pf_base64_encode(raw, sizeof(raw))) == NULL)
		goto out;
	snprintf(out, NONCE_MAX + 1, "%s", b64);
	rc = PF_OK;
out:
	free(b64);
	return rc;
}

/* Copies a test nonce into out; false if it is not a valid nonce. */
static bool
set_test_nonce(char out[NONCE_MAX + 1], const char *nonce)
{
	size_t len;

	if (nonce == NULL)
		return false;
	len = strnlen(nonce, NONCE_MAX + 1);
	if (!nonce_valid(nonce, len, NONCE_MAX))
		return false;
	memcpy(out, nonce, len);
	out[len] = '\0';
	return true;
}

/*
 * AuthMessage = client-first-bare "," server-first ","
 * client-final-without-proof (RFC 5802, section 3).
 */
static bool
authmsg_build(struct authmsg *m, const char *first_bare,
    const char *server_first, const char *final_np, size_t final_np_len)
{
	size_t cap = sizeof(m->buf) - (sizeof(LABEL_SESSION) - 1);
	int n;

	memcpy(m->buf, LABEL_SESSION, sizeof(LABEL_SESSION) - 1);
	if (final_np_len > INT_MAX)
		return false;
	n = snprintf(AUTHMSG(m), cap, "%s,%s,%.*s", first_bare, server_first,
	    (int)final_np_len, final_np);
	if (n < 0 || (size_t)n >= cap)
		return false;
	m->len = (size_t)n;
	return true;
}

static enum pf_status
authmsg_hmac(const uint8_t key[PF_SHA256_LEN], const struct authmsg *m,
    uint8_t out[PF_SHA256_LEN])
{
	return pf_hmac_sha256(key, PF_SHA256_LEN, AUTHMSG(m), m->len, out);
}

/* K = HMAC(ClientKey, "paraflow session key" || AuthMessage). */
static enum pf_status
authmsg_session_key(const uint8_t client_key[PF_SHA256_LEN],
    const struct authmsg *m, uint8_t out[PF_SHA256_LEN])
{
	return pf_hmac_sha256(client_key, PF_SHA256_LEN, m->buf,
	    sizeof(LABEL_SESSION) - 1 + m->len, out);
}

/*
 * SaltedPassword = Hi(password, salt, i); ClientKey, StoredKey and
 * ServerKey from it. SaltedPassword never leaves this function.
 */
static enum pf_status
derive_keys(const char *password, size_t passlen, const uint8_t *salt,
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

bool
auth_user_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strnlen(name, AUTH_MAX_USER + 1);
	if (len == 0 || len > AUTH_MAX_USER)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		/* Explicit ranges: isalnum() would follow the locale. */
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

enum pf_status
auth_verifier_make(const char *password, const uint8_t *salt, size_t saltlen,
    unsigned iterations, struct auth_verifier *out)
{
	enum pf_status rc = PF_EUSAGE;
	struct auth_verifier v;
	uint8_t client_key[PF_SHA256_LEN];
	size_t passlen;

	memset(&v, 0, sizeof(v));
	if (password == NULL || salt == NULL || saltlen == 0 ||
	    saltlen > AUTH_MAX_SALT || iterations < AUTH_MIN_ITERATIONS ||
	    iterations > AUTH_MAX_ITERATIONS)
		goto out;
	if ((passlen = strnlen(password, AUTH_MAX_PASSWORD + 1)) >
	    AUTH_MAX_PASSWORD)
		goto out;
	v.iterations = iterations;
	memcpy(v.salt, salt, saltlen);
	v.saltlen = saltlen;
	if ((rc = derive_keys(password, passlen, salt, saltlen, iterations,
	    client_key, v.stored_key, v.server_key)) != PF_OK)
		goto out;
	*out = v;
	rc = PF_OK;
out:
	pf_wipe(client_key, sizeof(client_key));
	pf_wipe(&v, sizeof(v));
	return rc;
}

char *
auth_verifier_format(const char *user, const struct auth_verifier *v)
{
	char *salt = NULL, *stored = NULL, *server = NULL, *line = NULL;

	if (!auth_user_valid(user) || v->saltlen == 0 ||
	    v->saltlen > AUTH_MAX_SALT)
		goto out;
	if ((salt = pf_base64_encode(v->salt, v->saltlen)) == NULL ||
	    (stored = pf_base64_encode(v->stored_key, PF_SHA256_LEN)) == NULL ||
	    (server = pf_base64_encode(v->server_key, PF_SHA256_LEN)) == NULL)
		goto out;
	line = dup_printf("%s:%s%u:%s$%s:%s", user, USERS_SCHEME,
	    v->iterations, salt, stored, server);
out:
	free(salt);
	free_secret(stored);
	free_secret(server);
	return line;
}

/* Cuts the text up to delim (or to the end, if delim is '\0') off *p. */
static bool
cut_field(const char **p, char delim, struct attr *a)
{
	const char *end;

	if (delim != '\0')
		end = strchr(*p, delim);
	else
		end = *p + strlen(*p);
	if (end == NULL || end == *p)
		return false;
	a->p = *p;
	a->len = (size_t)(end - *p);
	*p = delim != '\0' ? end + 1 : end;
	return true;
}

enum pf_status
auth_verifier_parse(const char *line, char *user, struct auth_verifier *v)
{
	enum pf_status rc = PF_EBADFRAME;
	struct auth_verifier tmp;
	struct attr name, iter, salt, stored, server;
	char namebuf[AUTH_MAX_USER + 1];
	const char *p = line;
	long n;

	memset(&tmp, 0, sizeof(tmp));
	if (line == NULL || strnlen(line, USERS_LINE_MAX + 1) > USERS_LINE_MAX)
		goto out;
	if (!cut_field(&p, ':', &name) || name.len > AUTH_MAX_USER)
		goto out;
	memcpy(namebuf, name.p, name.len);
	namebuf[name.len] = '\0';
	if (!auth_user_valid(namebuf))
		goto out;
	if (strncmp(p, USERS_SCHEME, sizeof(USERS_SCHEME) - 1) != 0)
		goto out;
	p += sizeof(USERS_SCHEME) - 1;
	/* Base64 never holds ':' or '$', so the cuts are unambiguous. */
	if (!cut_field(&p, ':', &iter) || !cut_field(&p, '$', &salt) ||
	    !cut_field(&p, ':', &stored) || !cut_field(&p, '\0', &server))
		goto out;
	if (!parse_count(&iter, &tmp.iterations) ||
	    tmp.iterations < AUTH_MIN_ITERATIONS ||
	    tmp.iterations > AUTH_MAX_ITERATIONS)
		goto out;
	if ((n = decode_attr(&salt, tmp.salt, sizeof(tmp.salt))) < 1)
		goto out;
	tmp.saltlen = (size_t)n;
	if (decode_attr(&stored, tmp.stored_key, PF_SHA256_LEN) !=
	    PF_SHA256_LEN ||
	    decode_attr(&server, tmp.server_key, PF_SHA256_LEN) !=
	    PF_SHA256_LEN)
		goto out;
	memcpy(user, namebuf, name.len + 1);
	*v = tmp;
	rc = PF_OK;
out:
	pf_wipe(&tmp, sizeof(tmp));
	return rc;
}

static struct auth_users *
users_new(void)
{
	return calloc(1, sizeof(struct auth_users));
}

/*
 * Grows by copying rather than realloc(3), so that no unwiped copy of a
 * verifier is left behind in freed memory.
 */
static enum pf_status
users_append(struct auth_users *u, const char *name,
    const struct auth_verifier *v)
{
	struct user *nv;
	size_t ncap;

	if (u->n == u->cap) {
		ncap = u->cap == 0 ? 4 : 2 * u->cap;
		if (ncap > SIZE_MAX / sizeof(*nv) ||
		    (nv = calloc(ncap, sizeof(*nv))) == NULL)
			return PF_ENOMEM;
		if (u->n > 0) {
			memcpy(nv, u->v, u->n * sizeof(*nv));
			pf_wipe(u->v, u->n * sizeof(*nv));
		}
		free(u->v);
		u->v = nv;
		u->cap = ncap;
	}
	snprintf(u->v[u->n].name, sizeof(u->v[u->n].name), "%s", name);
	u->v[u->n].v = *v;
	u->n++;
	return PF_OK;
}

static bool
blank_line(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r')
			return false;
	return true;
}

enum pf_status
auth_users_load(const char *path, struct auth_users **out)
{
	enum pf_status rc = PF_EIO;
	struct auth_users *u = NULL;
	struct auth_verifier v;
	char name[AUTH_MAX_USER + 1];
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	FILE *f = NULL;

	*out = NULL;
	memset(&v, 0, sizeof(v));
	if ((f = fopen(path, "re")) == NULL) {
		log_error("%s: %s: %s", __func__, path, strerror(errno));
		goto out;
	}
	rc = PF_ENOMEM;
	if ((u = users_new()) == NULL)
		goto out;
	while ((n = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (line[0] == '#' || blank_line(line))
			continue;
		/*
		 * The line itself is never logged: a stray password pasted
		 * into the file must not end up in the logs too.
		 */
		if (strlen(line) != (size_t)n ||
		    auth_verifier_parse(line, name, &v) != PF_OK) {
			log_error("%s: %s:%zu: malformed verifier line",
			    __func__, path, lineno);
			rc = PF_EBADFRAME;
			goto out;
		}
		if (auth_users_find(u, name) != NULL) {
			log_error("%s: %s:%zu: duplicate user name",
			    __func__, path, lineno);
			rc = PF_EBADFRAME;
			goto out;
		}
		if ((rc = users_append(u, name, &v)) != PF_OK)
			goto out;
	}
	if (ferror(f)) {
		log_error("%s: %s: read error", __func__, path);
		rc = PF_EIO;
		goto out;
	}
	*out = u;
	u = NULL;
	rc = PF_OK;
out:
	pf_wipe(&v, sizeof(v));
	if (line != NULL)
		pf_wipe(line, cap);
	free(line);
	if (f != NULL)
		fclose(f);
	auth_users_free(u);
	return rc;
}

enum pf_status
auth_users_single(const char *user, const char *password,
    struct auth_users **out)
{
	enum pf_status rc = PF_EUSAGE;
	struct auth_users *u = NULL;
	struct auth_verifier v;
	uint8_t salt[AUTH_SALT_LEN];

	*out = NULL;
	memset(&v, 0, sizeof(v));
	if (!auth_user_valid(user))
		goto out;
	if ((rc = pf_random(salt, sizeof(salt))) != PF_OK)
		goto out;
	if ((rc = auth_verifier_make(password, salt, sizeof(salt),
	    AUTH_DEFAULT_ITERATIONS, &v)) != PF_OK)
		goto out;
	rc = PF_ENOMEM;
	if ((u = users_new()) == NULL)
		goto out;
	if ((rc = users_append(u, user, &v)) != PF_OK)
		goto out;
	*out = u;
	u = NULL;
	rc = PF_OK;
out:
	pf_wipe(&v, sizeof(v));
	auth_users_free(u);
	return rc;
}

const struct auth_verifier *
auth_users_find(const struct auth_users *u, const char *user)
{
	if (u == NULL || user == NULL)
		return NULL;
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, user) == 0)
			return &u->v[i].v;
	return NULL;
}

enum pf_status
auth_users_check(const struct auth_users *u, const char *user,
    const char *password, const uint8_t *secret)
{
	const struct auth_verifier *v = NULL;
	struct auth_verifier fake, got;
	enum pf_status rc = PF_EAUTH;

	memset(&fake, 0, sizeof(fake));
	if (auth_user_valid(user))
		v = auth_users_find(u, user);
	if (v == NULL) {
		/* StoredKey stays zero: no password hashes to it. */
		fake.iterations = u->n > 0 ? u->v[0].v.iterations :
		    AUTH_DEFAULT_ITERATIONS;
		fake.saltlen = AUTH_SALT_LEN;
		memcpy(fake.salt, secret, AUTH_SALT_LEN);
		v = &fake;
	}
	if (auth_verifier_make(password, v->salt, v->saltlen, v->iterations,
	    &got) == PF_OK && pf_equal_ct(got.stored_key, v->stored_key,
	    PF_SHA256_LEN) && v != &fake)
		rc = PF_OK;
	pf_wipe(&got, sizeof(got));
	return rc;
}

size_t
auth_users_count(const struct auth_users *u)
{
	return u == NULL ? 0 : u->n;
}

void
auth_users_free(struct auth_users *u)
{
	if (u == NULL)
		return;
	/* StoredKey and ServerKey let one impersonate the server: wipe. */
	if (u->v != NULL)
		pf_wipe(u->v, u->cap * sizeof(*u->v));
	free(u->v);
	free(u);
}

/* fsync(2) on the directory, so that the rename itself is durable. */
static void
sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return;
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1)
		log_warn("%s: %s: %s", __func__, dir, strerror(errno));
	if (fd != -1)
		close(fd);
	free(dir);
}

enum pf_status
auth_users_add(const char *path, const char *user, const char *password,
    unsigned iterations)
{
	enum pf_status rc = PF_EUSAGE;
	struct auth_verifier v;
	uint8_t salt[AUTH_SALT_LEN];
	char *entry = NULL, *tmp = NULL, *line = NULL;
	size_t cap = 0, ulen;
	ssize_t n;
	FILE *in = NULL, *outf = NULL;
	bool created = false, replaced = false;
	int fd = -1, closed;

	memset(&v, 0, sizeof(v));
	if (!auth_user_valid(user)) {
		log_error("%s: invalid user name", __func__);
		goto out;
	}
	if (iterations == 0)
		iterations = AUTH_DEFAULT_ITERATIONS;
	if ((rc = pf_random(salt, sizeof(salt))) != PF_OK)
		goto out;
	if ((rc = auth_verifier_make(password, salt, sizeof(salt), iterations,
	    &v)) != PF_OK) {
		if (rc == PF_EUSAGE)
			log_error("%s: password too long or iteration count "
			    "outside [%u, %u]", __func__, AUTH_MIN_ITERATIONS,
			    AUTH_MAX_ITERATIONS);
		goto out;
	}
	rc = PF_ENOMEM;
	if ((entry = auth_verifier_format(user, &v)) == NULL ||
	    (tmp = dup_printf("%s.XXXXXX", path)) == NULL)
		goto out;

	rc = PF_EIO;
	if ((in = fopen(path, "re")) == NULL && errno != ENOENT) {
		log_error("%s: %s: %s", __func__, path, strerror(errno));
		goto out;
	}
	/* Same directory as path, so that rename(2) is atomic. */
	if ((fd = mkstemp(tmp)) == -1) {
		log_error("%s: mkstemp %s: %s", __func__, tmp, strerror(errno));
		goto out;
	}
	created = true;
	if (fchmod(fd, 0600) == -1) {
		log_error("%s: fchmod %s: %s", __func__, tmp, strerror(errno));
		goto out;
	}
	if ((outf = fdopen(fd, "w")) == NULL) {
		log_error("%s: fdopen: %s", __func__, strerror(errno));
		goto out;
	}
	fd = -1;	/* outf owns it now */

	ulen = strlen(user);
	while (in != NULL && (n = getline(&line, &cap, in)) != -1) {
		/* '#' is not a user name character: comments never match. */
		if ((size_t)n > ulen && strncmp(line, user, ulen) == 0 &&
		    line[ulen] == ':') {
			if (!replaced)
				fprintf(outf, "%s\n", entry);
			replaced = true;
			continue;
		}
		fwrite(line, 1, (size_t)n, outf);
		if (line[n - 1] != '\n')
			fputc('\n', outf);
	}
	if (in != NULL && ferror(in)) {
		log_error("%s: %s: read error", __func__, path);
		goto out;
	}
	if (!replaced)
		fprintf(outf, "%s\n", entry);
	if (ferror(outf) || fflush(outf) == EOF || fsync(fileno(outf)) == -1) {
		log_error("%s: write %s: %s", __func__, tmp, strerror(errno));
		goto out;
	}
	closed = fclose(outf);
	outf = NULL;
	if (closed == EOF) {
		log_error("%s: close %s: %s", __func__, tmp, strerror(errno));
		goto out;
	}
	if (rename(tmp, path) == -1) {
		log_error("%s: rename %s: %s", __func__, path, strerror(errno));
		goto out;
	}
	created = false;
	sync_dir(path);
	rc = PF_OK;
out:
	if (outf != NULL)
		fclose(outf);
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	if (in != NULL)
		fclose(in);
	if (line != NULL)
		pf_wipe(line, cap);
	free(line);
	free(tmp);
	free_secret(entry);
	pf_wipe(&v, sizeof(v));
	return rc;
}

struct auth_server *
auth_server_new(const struct auth_users *users,
    const uint8_t secret[PF_SHA256_LEN])
{
	struct auth_server *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->users = users;
	memcpy(s->secret, secret, PF_SHA256_LEN);
	s->step = STEP_NEW;
	return s;
}

void
auth_server_set_nonce(struct auth_server *s, const char *nonce)
{
	/* Misuse fails the exchange rather than being silently ignored. */
	if (s->step != STEP_NEW)
		s->step = STEP_FAILED;
	else if (!set_test_nonce(s->snonce, nonce))
		s->nonce_bad = true;
}

/*
 * The salt an unknown user gets: stable per name, so that asking twice
 * does not tell a made-up user from a real one.
 */
static enum pf_status
fake_salt(const struct auth_server *s, uint8_t out[PF_SHA256_LEN])
{
	char msg[sizeof(LABEL_FAKE_SALT) - 1 + AUTH_MAX_USER];
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
	struct attr a[2];
	uint8_t fake[PF_SHA256_LEN];
	char *salt = NULL;
	int n;

	*server_first = NULL;
	if (s->step != STEP_NEW)
		goto out;
	rc = PF_EBADFRAME;
	/* Only "n,,": no channel binding ("y", "p=") and no authzid. */
	if (!message_ok(client_first) ||
	    strncmp(client_first, GS2_HEADER, sizeof(GS2_HEADER) - 1) != 0)
		goto out;
	if (!split_attrs(client_first + sizeof(GS2_HEADER) - 1, "nr", a))
		goto out;
	/*
	 * Valid names hold neither '=' nor ',', so saslname escapes never
	 * need decoding: a name with "=2C" is simply invalid.
	 */
	if (a[0].len > AUTH_MAX_USER)
		goto out;
	memcpy(s->user, a[0].p, a[0].len);
	s->user[a[0].len] = '\0';
	if (!auth_user_valid(s->user) || !nonce_valid(a[1].p, a[1].len,
	    NONCE_MAX))
		goto out;

	rc = PF_EINTERNAL;
	if (s->nonce_bad)
		goto out;
	if (s->snonce[0] == '\0' && (rc = random_nonce(s->snonce)) != PF_OK)
		goto out;
	/* Computed for every user, so known ones answer no faster. */
	if ((rc = fake_salt(s, fake)) != PF_OK)
		goto out;
	if ((v = auth_users_find(s->users, s->user)) != NULL) {
		s->v = *v;
		s->known = true;
	} else {
		/*
		 * StoredKey stays zero: no ClientKey hashes to it. The
		 * iteration count is a real user's, so it gives nothing away
		 * where all users share one (as --add-user makes them).
		 */
		memset(&s->v, 0, sizeof(s->v));
		s->v.iterations = s->users->n > 0 ?
		    s->users->v[0].v.iterations : AUTH_DEFAULT_ITERATIONS;
		memcpy(s->v.salt, fake, AUTH_SALT_LEN);
		s->v.saltlen = AUTH_SALT_LEN;
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
	    client_first + sizeof(GS2_HEADER) - 1);
	rc = PF_ENOMEM;
	if ((*server_first = strdup(s->server_first)) == NULL)
		goto out;
	s->step = STEP_FIRST;
	rc = PF_OK;
out:
	if (rc != PF_OK)
		s->step = STEP_FAILED;
	pf_wipe(fake, sizeof(fake));
	free(salt);
	return rc;
}

enum pf_status
auth_server_final(struct auth_server *s, const char *client_final,
    char **server_final)
{
	enum pf_status rc = PF_EPROTO;
	struct authmsg *m = NULL;
	struct attr a[3];
	uint8_t proof[PF_SHA256_LEN], sig[PF_SHA256_LEN];
	uint8_t client_key[PF_SHA256_LEN], hash[PF_SHA256_LEN];
	char *b64 = NULL;
	bool match;

	*server_final = NULL;
	if (s->step != STEP_FIRST)
		goto out;
	rc = PF_EBADFRAME;
	if (!message_ok(client_final) || !split_attrs(client_final, "crp", a))
		goto out;
	if (decode_attr(&a[2], proof, sizeof(proof)) != PF_SHA256_LEN)
		goto out;
	rc = PF_EAUTH;
	/* The nonce check is what defeats a replayed client-final. */
	if (!attr_is(&a[0], CBIND_NONE) || !attr_is(&a[1], s->nonce))
		goto out;

	rc = PF_ENOMEM;
	if ((m = malloc(sizeof(*m))) == NULL)
		goto out;
	rc = PF_EINTERNAL;
	/* Without the proof: everything before ",p=". */
	if (!authmsg_build(m, s->first_bare, s->server_first, client_final,
	    (size_t)(a[2].p - 3 - client_final)))
		goto out;
	if ((rc = authmsg_hmac(s->v.stored_key, m, sig)) != PF_OK)
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
	if ((rc = authmsg_hmac(s->v.server_key, m, sig)) != PF_OK ||
	    (rc = authmsg_session_key(client_key, m, s->key)) != PF_OK)
		goto out;
	rc = PF_ENOMEM;
	if ((b64 = pf_base64_encode(sig, sizeof(sig))) == NULL ||
	    (*server_final = dup_printf("v=%s", b64)) == NULL)
		goto out;
	s->step = STEP_DONE;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		s->step = STEP_FAILED;
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
	return s->step == STEP_DONE ? s->user : NULL;
}

enum pf_status
auth_server_session_key(const struct auth_server *s,
    uint8_t key[PF_SHA256_LEN])
{
	if (s->step != STEP_DONE)
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

struct auth_client *
auth_client_new(const char *user, const char *password)
{
	struct auth_client *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->step = STEP_NEW;
	/* Bad arguments surface as PF_EUSAGE from auth_client_first. */
	if (!auth_user_valid(user) || password == NULL ||
	    (c->passlen = strnlen(password, AUTH_MAX_PASSWORD + 1)) >
	    AUTH_MAX_PASSWORD) {
		c->args_bad = true;
		return c;
	}
	memcpy(c->user, user, strlen(user) + 1);
	memcpy(c->password, password, c->passlen);
	c->password[c->passlen] = '\0';
	return c;
}

void
auth_client_set_nonce(struct auth_client *c, const char *nonce)
{
	/* Misuse fails the exchange rather than being silently ignored. */
	if (c->step != STEP_NEW)
		c->step = STEP_FAILED;
	else if (!set_test_nonce(c->cnonce, nonce))
		c->nonce_bad = true;
}

enum pf_status
auth_client_first(struct auth_client *c, char **out)
{
	enum pf_status rc = PF_EPROTO;

	*out = NULL;
	if (c->step != STEP_NEW)
		goto out;
	rc = PF_EUSAGE;
	if (c->args_bad)
		goto out;
	rc = PF_EINTERNAL;
	if (c->nonce_bad)
		goto out;
	if (c->cnonce[0] == '\0' && (rc = random_nonce(c->cnonce)) != PF_OK)
		goto out;
	snprintf(c->first_bare, sizeof(c->first_bare), "n=%s,r=%s", c->user,
	    c->cnonce);
	rc = PF_ENOMEM;
	if ((*out = dup_printf("%s%s", GS2_HEADER, c->first_bare)) == NULL)
		goto out;
	c->step = STEP_FIRST;
	rc = PF_OK;
out:
	if (rc != PF_OK)
		c->step = STEP_FAILED;
	return rc;
}

enum pf_status
auth_client_final(struct auth_client *c, const char *server_first, char **out)
{
	enum pf_status rc = PF_EPROTO;
	struct authmsg *m = NULL;
	struct attr a[3];
	uint8_t salt[AUTH_MAX_SALT], sig[PF_SHA256_LEN];
	uint8_t client_key[PF_SHA256_LEN], stored_key[PF_SHA256_LEN];
	uint8_t server_key[PF_SHA256_LEN];
	char final_np[AUTH_MAX_MESSAGE + 1], *b64 = NULL;
	size_t cnlen = strlen(c->cnonce);
	unsigned iterations;
	long saltlen;
	int n;

	*out = NULL;
	if (c->step != STEP_FIRST)
		goto out;
	rc = PF_EBADFRAME;
	if (!message_ok(server_first) || !split_attrs(server_first, "rsi", a))
		goto out;
	if (!nonce_valid(a[0].p, a[0].len, 2 * NONCE_MAX))
		goto out;
	if ((saltlen = decode_attr(&a[1], salt, sizeof(salt))) < 1)
		goto out;
	if (!parse_count(&a[2], &iterations))
		goto out;
	rc = PF_EAUTH;
	/* The server must extend our nonce, not replay an old one. */
	if (a[0].len <= cnlen || memcmp(a[0].p, c->cnonce, cnlen) != 0)
		goto out;
	/*
	 * A low count makes a captured proof cheap to brute-force, a huge
	 * one makes us burn CPU for a fake server: refuse both.
	 */
	if (iterations < AUTH_MIN_ITERATIONS ||
	    iterations > AUTH_MAX_ITERATIONS)
		goto out;

	if ((rc = derive_keys(c->password, c->passlen, salt, (size_t)saltlen,
	    iterations, client_key, stored_key, server_key)) != PF_OK)
		goto out;
	rc = PF_EINTERNAL;
	n = snprintf(final_np, sizeof(final_np), "c=%s,r=%.*s", CBIND_NONE,
	    (int)a[0].len, a[0].p);
	if (n < 0 || (size_t)n >= sizeof(final_np))
		goto out;
	rc = PF_ENOMEM;
	if ((m = malloc(sizeof(*m))) == NULL)
		goto out;
	rc = PF_EINTERNAL;
	if (!authmsg_build(m, c->first_bare, server_first, final_np,
	    (size_t)n))
		goto out;
	if ((rc = authmsg_hmac(stored_key, m, sig)) != PF_OK ||
	    (rc = authmsg_hmac(server_key, m, c->server_sig)) != PF_OK ||
	    (rc = authmsg_session_key(client_key, m, c->key)) != PF_OK)
		goto out;
	/* ClientProof = ClientKey XOR ClientSignature; sig is reused. */
	for (size_t i = 0; i < PF_SHA256_LEN; i++)
		sig[i] ^= client_key[i];
	rc = PF_ENOMEM;
	if ((b64 = pf_base64_encode(sig, sizeof(sig))) == NULL ||
	    (*out = dup_printf("%s,p=%s", final_np, b64)) == NULL)
		goto out;
	c->step = STEP_FINAL;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		c->step = STEP_FAILED;
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
auth_client_verify(struct auth_client *c, const char *server_final)
{
	enum pf_status rc = PF_EPROTO;
	struct attr a[1];
	uint8_t sig[PF_SHA256_LEN];

	if (c->step != STEP_FINAL)
		goto out;
	/*
	 * Anything but a correct "v=" is a server we cannot trust,
	 * including "e=..." and garbage.
	 */
	rc = PF_EAUTH;
	if (!message_ok(server_final) || !split_attrs(server_final, "v", a))
		goto out;
	if (decode_attr(&a[0], sig, sizeof(sig)) != PF_SHA256_LEN ||
	    !pf_equal_ct(sig, c->server_sig, PF_SHA256_LEN))
		goto out;
	c->step = STEP_DONE;
	rc = PF_OK;
out:
	if (rc != PF_OK) {
		c->step = STEP_FAILED;
		pf_wipe(c->key, sizeof(c->key));
	}
	return rc;
}

enum pf_status
auth_client_session_key(const struct auth_client *c,
    uint8_t key[PF_SHA256_LEN])
{
	if (c->step != STEP_DONE)
		return PF_EPROTO;
	memcpy(key, c->key, PF_SHA256_LEN);
	return PF_OK;
}

void
auth_client_free(struct auth_client *c)
{
	if (c == NULL)
		return;
	pf_wipe(c, sizeof(*c));
	free(c);
}

enum pf_status
auth_join_proof(const uint8_t key[PF_SHA256_LEN], const char *session_id,
    const uint8_t *nonce, size_t noncelen, uint8_t out[PF_SHA256_LEN])
{
	enum pf_status rc = PF_EINTERNAL;
	size_t idlen, len;
	uint8_t *msg = NULL;

	if (session_id == NULL || (nonce == NULL && noncelen > 0))
		goto out;
	idlen = strlen(session_id);
	if (noncelen > SIZE_MAX - sizeof(LABEL_JOIN) - idlen)
		goto out;
	len = sizeof(LABEL_JOIN) - 1 + idlen + noncelen;
	rc = PF_ENOMEM;
	if ((msg = malloc(len)) == NULL)
		goto out;
	memcpy(msg, LABEL_JOIN, sizeof(LABEL_JOIN) - 1);
	memcpy(msg + sizeof(LABEL_JOIN) - 1, session_id, idlen);
	if (noncelen > 0)
		memcpy(msg + sizeof(LABEL_JOIN) - 1 + idlen, nonce, noncelen);
	rc = pf_hmac_sha256(key, PF_SHA256_LEN, msg, len, out);
out:
	free(msg);
	return rc;
}
