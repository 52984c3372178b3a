/* SPDX-License-Identifier: MIT */
/* The users a server accepts: verifiers, the users file, password checks. */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "digest.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "scram.h"
#include "status.h"
#include "users.h"

#define USERS_SCHEME	"SCRAM-SHA-256$"
#define USERS_LINE_MAX	1024
#define LABEL_FAKE_SALT	"paraflow fake salt"

struct user {
	char			name[PROTO_MAX_USER + 1];
	struct auth_verifier	v;
};

struct auth_users {
	struct user	*v;
	size_t		 n;
	size_t		 cap;
	unsigned	 fake_iterations;	/* what most users have */
};

enum pf_status
auth_verifier_make(const char *password, const uint8_t *salt, size_t saltlen,
    unsigned iterations, struct auth_verifier *out)
{
	enum pf_status rc = PF_EUSAGE;
	struct auth_verifier v;
	uint8_t client_key[PF_SHA256_LEN], salted[PF_SHA256_LEN];
	size_t passlen;

	memset(&v, 0, sizeof(v));
	if (password == NULL || salt == NULL || saltlen == 0 ||
	    saltlen > SCRAM_MAX_SALT || iterations < SCRAM_MIN_ITERATIONS ||
	    iterations > SCRAM_MAX_ITERATIONS)
		goto out;
	if ((passlen = strnlen(password, SCRAM_MAX_PASSWORD + 1)) >
	    SCRAM_MAX_PASSWORD)
		goto out;
	v.iterations = iterations;
	memcpy(v.salt, salt, saltlen);
	v.saltlen = saltlen;
	/*
	 * GNU SASL applies SASLprep to the password first, as its client and
	 * PostgreSQL do. A password SASLprep refuses is used as it is, which
	 * is also what PostgreSQL does.
	 */
	if (gsasl_scram_secrets_from_password(GSASL_HASH_SHA256, password,
	    iterations, (const char *)salt, saltlen, (char *)salted,
	    (char *)client_key, (char *)v.server_key,
	    (char *)v.stored_key) != GSASL_OK &&
	    (rc = scram_derive_keys(password, passlen, salt, saltlen,
	    iterations, client_key, v.stored_key, v.server_key)) != PF_OK)
		goto out;
	*out = v;
	rc = PF_OK;
out:
	pf_wipe(client_key, sizeof(client_key));
	pf_wipe(salted, sizeof(salted));
	pf_wipe(&v, sizeof(v));
	return rc;
}

char *
auth_verifier_format(const char *user, const struct auth_verifier *v)
{
	char *salt = NULL, *stored = NULL, *server = NULL, *line = NULL;

	if (!proto_user_valid(user) || v->saltlen == 0 ||
	    v->saltlen > SCRAM_MAX_SALT)
		goto out;
	if ((salt = pf_base64_encode(v->salt, v->saltlen)) == NULL ||
	    (stored = pf_base64_encode(v->stored_key, PF_SHA256_LEN)) == NULL ||
	    (server = pf_base64_encode(v->server_key, PF_SHA256_LEN)) == NULL)
		goto out;
	line = scram_printf("%s:%s%u:%s$%s:%s", user, USERS_SCHEME,
	    v->iterations, salt, stored, server);
out:
	free(salt);
	scram_free_secret(stored);
	scram_free_secret(server);
	return line;
}

/* Cuts the text up to delim (or to the end, if delim is '\0') off *p. */
static bool
cut_field(const char **p, char delim, struct scram_attr *a)
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
	struct scram_attr name, iter, salt, stored, server;
	char namebuf[PROTO_MAX_USER + 1];
	const char *p = line;
	long n;

	memset(&tmp, 0, sizeof(tmp));
	if (line == NULL || strnlen(line, USERS_LINE_MAX + 1) > USERS_LINE_MAX)
		goto out;
	if (!cut_field(&p, ':', &name) || name.len > PROTO_MAX_USER)
		goto out;
	memcpy(namebuf, name.p, name.len);
	namebuf[name.len] = '\0';
	if (!proto_user_valid(namebuf))
		goto out;
	if (strncmp(p, USERS_SCHEME, sizeof(USERS_SCHEME) - 1) != 0)
		goto out;
	p += sizeof(USERS_SCHEME) - 1;
	/* Base64 never holds ':' or '$', so the cuts are unambiguous. */
	if (!cut_field(&p, ':', &iter) || !cut_field(&p, '$', &salt) ||
	    !cut_field(&p, ':', &stored) || !cut_field(&p, '\0', &server))
		goto out;
	if (!scram_parse_count(&iter, &tmp.iterations) ||
	    tmp.iterations < SCRAM_MIN_ITERATIONS ||
	    tmp.iterations > SCRAM_MAX_ITERATIONS)
		goto out;
	if ((n = scram_decode_attr(&salt, tmp.salt, sizeof(tmp.salt))) < 1)
		goto out;
	tmp.saltlen = (size_t)n;
	if (scram_decode_attr(&stored, tmp.stored_key, PF_SHA256_LEN) !=
	    PF_SHA256_LEN ||
	    scram_decode_attr(&server, tmp.server_key, PF_SHA256_LEN) !=
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

static int
cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/*
 * The iteration count most users have (of two as common, the higher);
 * the default for no users or if out of memory. Unknown users get it, so
 * that they look like the many, whatever order the file is in.
 */
static unsigned
common_iterations(const struct auth_users *u)
{
	unsigned *it, best = SCRAM_DEFAULT_ITERATIONS;
	size_t bestn = 0, i, j;

	if (u->n == 0 || (it = calloc(u->n, sizeof(*it))) == NULL)
		return best;
	for (i = 0; i < u->n; i++)
		it[i] = u->v[i].v.iterations;
	qsort(it, u->n, sizeof(*it), cmp_unsigned);
	for (i = 0; i < u->n; i = j) {
		for (j = i; j < u->n && it[j] == it[i]; j++)
			;
		if (j - i >= bestn) {
			bestn = j - i;
			best = it[i];
		}
	}
	free(it);
	return best;
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
	char name[PROTO_MAX_USER + 1];
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
	u->fake_iterations = common_iterations(u);
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
	if (!proto_user_valid(user))
		goto out;
	if ((rc = pf_random(salt, sizeof(salt))) != PF_OK)
		goto out;
	if ((rc = auth_verifier_make(password, salt, sizeof(salt),
	    SCRAM_DEFAULT_ITERATIONS, &v)) != PF_OK)
		goto out;
	rc = PF_ENOMEM;
	if ((u = users_new()) == NULL)
		goto out;
	if ((rc = users_append(u, user, &v)) != PF_OK)
		goto out;
	u->fake_iterations = common_iterations(u);
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
	memset(&got, 0, sizeof(got));
	if (proto_user_valid(user))
		v = auth_users_find(u, user);
	if (v == NULL) {
		if (auth_users_fake_verifier(u, secret, user, &fake) != PF_OK)
			goto out;
		v = &fake;
	}
	if (auth_verifier_make(password, v->salt, v->saltlen, v->iterations,
	    &got) == PF_OK && pf_equal_ct(got.stored_key, v->stored_key,
	    PF_SHA256_LEN) && v != &fake)
		rc = PF_OK;
out:
	pf_wipe(&got, sizeof(got));
	pf_wipe(&fake, sizeof(fake));
	return rc;
}

enum pf_status
auth_users_fake_verifier(const struct auth_users *u, const uint8_t *secret,
    const char *user, struct auth_verifier *out)
{
	char msg[sizeof(LABEL_FAKE_SALT) - 1 + PROTO_MAX_USER];
	size_t ulen = strnlen(user, PROTO_MAX_USER);
	uint8_t salt[PF_SHA256_LEN];
	enum pf_status rc;

	memset(out, 0, sizeof(*out));
	out->iterations = u != NULL && u->n > 0 ? u->fake_iterations :
	    SCRAM_DEFAULT_ITERATIONS;
	memcpy(msg, LABEL_FAKE_SALT, sizeof(LABEL_FAKE_SALT) - 1);
	memcpy(msg + sizeof(LABEL_FAKE_SALT) - 1, user, ulen);
	rc = pf_hmac_sha256(secret, PF_SHA256_LEN, msg,
	    sizeof(LABEL_FAKE_SALT) - 1 + ulen, salt);
	/* As long as the salts --add-user makes. */
	out->saltlen = AUTH_SALT_LEN;
	memcpy(out->salt, salt, AUTH_SALT_LEN);
	pf_wipe(salt, sizeof(salt));
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


/*
 * The verifier line of user with password and a fresh salt, in *entry
 * (new; the caller wipes it with scram_free_secret).
 */
static enum pf_status
make_entry(const char *user, const char *password, unsigned iterations,
    char **entry)
{
	enum pf_status rc;
	struct auth_verifier v;
	uint8_t salt[AUTH_SALT_LEN];

	memset(&v, 0, sizeof(v));
	if ((rc = pf_random(salt, sizeof(salt))) != PF_OK)
		goto out;
	if ((rc = auth_verifier_make(password, salt, sizeof(salt), iterations,
	    &v)) != PF_OK) {
		if (rc == PF_EUSAGE)
			log_error("%s: password too long or iteration count "
			    "outside [%u, %u]", __func__, SCRAM_MIN_ITERATIONS,
			    SCRAM_MAX_ITERATIONS);
		goto out;
	}
	rc = PF_ENOMEM;
	if ((*entry = auth_verifier_format(user, &v)) == NULL)
		goto out;
	rc = PF_OK;
out:
	pf_wipe(&v, sizeof(v));
	return rc;
}

/*
 * The new content of the users file into b (initialized here, secret):
 * the lines of the file at path, if it exists, with user's line replaced
 * by entry, or entry appended. b's cap comes from the file's size, which
 * the result cannot exceed by more than the entry.
 */
static enum pf_status
rewrite_users(const char *path, const char *user, const char *entry,
    struct pf_buf *b)
{
	enum pf_status rc = PF_EIO;
	size_t cap = 0, ulen = strlen(user), elen = strlen(entry);
	bool replaced = false;
	char *line = NULL;
	struct stat sb;
	ssize_t n;
	FILE *in;

	if ((in = fopen(path, "re")) == NULL && errno != ENOENT) {
		log_error("%s: %s: %s", __func__, path, strerror(errno));
		return rc;
	}
	/* Every line kept, a newline after the last one, and the entry. */
	pf_buf_init(b, (in != NULL && fstat(fileno(in), &sb) == 0 ?
	    (size_t)sb.st_size + 1 : 0) + elen + 1);
	b->secret = true;
	while (in != NULL && (n = getline(&line, &cap, in)) != -1) {
		/* '#' is not a user name character: comments never match. */
		if ((size_t)n > ulen && strncmp(line, user, ulen) == 0 &&
		    line[ulen] == ':') {
			if (!replaced)
				pf_buf_printf(b, "%s\n", entry);
			replaced = true;
			continue;
		}
		pf_buf_add(b, line, (size_t)n);
		if (line[n - 1] != '\n')
			pf_buf_add(b, "\n", 1);
	}
	if (in != NULL && ferror(in)) {
		log_error("%s: %s: read error", __func__, path);
		goto out;
	}
	if (!replaced)
		pf_buf_printf(b, "%s\n", entry);
	rc = PF_ENOMEM;
	if (b->failed) {
		log_error("%s: %s grew while being read, or out of memory",
		    __func__, path);
		goto out;
	}
	rc = PF_OK;
out:
	if (in != NULL)
		fclose(in);
	if (line != NULL)
		pf_wipe(line, cap);
	free(line);
	return rc;
}

enum pf_status
auth_users_add(const char *path, const char *user, const char *password,
    unsigned iterations)
{
	enum pf_status rc = PF_EUSAGE;
	struct pf_buf b;
	char *entry = NULL;

	pf_buf_init(&b, 0);
	if (!proto_user_valid(user)) {
		log_error("%s: invalid user name", __func__);
		goto out;
	}
	if (iterations == 0)
		iterations = SCRAM_DEFAULT_ITERATIONS;
	if ((rc = make_entry(user, password, iterations, &entry)) != PF_OK ||
	    (rc = rewrite_users(path, user, entry, &b)) != PF_OK)
		goto out;
	rc = PF_EIO;
	/* A new file too: b.p is NULL only if nothing was added. */
	if (pf_write_atomic(AT_FDCWD, path, b.p, b.len, 0600) == -1) {
		log_error("%s: write %s: %s", __func__, path, strerror(errno));
		goto out;
	}
	rc = PF_OK;
out:
	pf_buf_free(&b);
	scram_free_secret(entry);
	return rc;
}
