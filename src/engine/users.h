/* SPDX-License-Identifier: MIT */
/*
 * The users a server accepts: SCRAM verifiers (never passwords), the users
 * file that holds them, and the check of a plain password (HTTP Basic).
 */
#ifndef PF_USERS_H
#define PF_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "scram.h"
#include "status.h"

#define AUTH_SALT_LEN		16	/* bytes of salt we generate */

/* What the server stores for a user: never the password. */
struct auth_verifier {
	unsigned	iterations;
	uint8_t		salt[SCRAM_MAX_SALT];
	size_t		saltlen;
	uint8_t		stored_key[PF_SHA256_LEN];
	uint8_t		server_key[PF_SHA256_LEN];
};

/*
 * Computes a verifier from a password (SASLprep, then SCRAM's keys) into
 * *out, which the caller wipes. PF_EUSAGE if the salt is empty or longer
 * than SCRAM_MAX_SALT, the password longer than SCRAM_MAX_PASSWORD or the
 * iteration count outside [SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS].
 * Any thread.
 */
enum pf_status auth_verifier_make(const char *password, const uint8_t *salt,
    size_t saltlen, unsigned iterations, struct auth_verifier *out);

/*
 * Formats "user:SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" (base64
 * fields, no newline) into a new string the caller wipes and frees; NULL
 * on ENOMEM or an invalid user. Any thread.
 */
char *auth_verifier_format(const char *user, const struct auth_verifier *v);

/*
 * Parses one users-file line (without its newline) into user (capacity
 * PROTO_MAX_USER + 1) and v. PF_EBADFRAME if the line is malformed. Any
 * thread.
 */
enum pf_status auth_verifier_parse(const char *line, char *user,
    struct auth_verifier *v);

/*
 * The set of users a server accepts. Read-only once made: any number of
 * threads may read one at a time.
 */
struct auth_users;

/*
 * Loads a users file: one verifier line per user; blank lines and lines
 * starting with '#' are skipped. Logs and fails on the first bad line
 * (PF_EBADFRAME) or if the file cannot be read (PF_EIO). *out is new.
 */
enum pf_status auth_users_load(const char *path, struct auth_users **out);

/*
 * A users set with one user whose verifier is made from password with a
 * fresh random salt (the default-credentials mode). *out is new.
 */
enum pf_status auth_users_single(const char *user, const char *password,
    struct auth_users **out);

/* Borrowed pointer to user's verifier, or NULL. */
const struct auth_verifier *auth_users_find(const struct auth_users *u,
    const char *user);

/*
 * The verifier an unknown user gets, into *out: a salt of AUTH_SALT_LEN
 * bytes, HMAC(secret, label || user), the same at every ask and, with
 * the key kept across restarts (keyfile.h), after a restart; the
 * iteration count most of u's users have (the default without users),
 * never one user's in particular; and a StoredKey of zeros that no
 * password hashes to. A login or a password check for a user that does
 * not exist thus looks and costs like one for a real user. secret is 32
 * bytes. PF_EINTERNAL if the HMAC fails.
 */
enum pf_status auth_users_fake_verifier(const struct auth_users *u,
    const uint8_t *secret, const char *user, struct auth_verifier *out);

/* Number of users in u; 0 for NULL. */
size_t auth_users_count(const struct auth_users *u);

/*
 * Checks a plain password (HTTP Basic) against user's verifier: PF_OK, or
 * PF_EAUTH. An unknown user costs the same PBKDF2 as a known one, with
 * the fake verifier of auth_users_fake_verifier (secret: 32 bytes).
 */
enum pf_status auth_users_check(const struct auth_users *u, const char *user,
    const char *password, const uint8_t *secret);

/* Wipes the verifiers and frees; NULL is a no-op. */
void auth_users_free(struct auth_users *u);

/*
 * Adds user with password to the users file at path, replacing an entry of
 * the same name; creates the file 0600 if missing. The file is replaced
 * atomically and durably (pf_write_atomic), so readers never see half of
 * it. iterations 0 means SCRAM_DEFAULT_ITERATIONS. Logs why it failed.
 */
enum pf_status auth_users_add(const char *path, const char *user,
    const char *password, unsigned iterations);

#endif
