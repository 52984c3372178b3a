/* SPDX-License-Identifier: MIT */
/*
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) for both ends, the users file of
 * verifiers, and the join proof that binds a data connection to a login.
 * No function here does I/O on a connection; all messages are strings.
 */
#ifndef PF_AUTH_H
#define PF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "status.h"

#define AUTH_DEFAULT_ITERATIONS	4096
#define AUTH_MIN_ITERATIONS	4096
#define AUTH_MAX_ITERATIONS	10000000
#define AUTH_SALT_LEN		16	/* bytes of salt we generate */
#define AUTH_MAX_SALT		64	/* bytes of salt we accept */
#define AUTH_NONCE_LEN		18	/* raw bytes; 24 base64 characters */
#define AUTH_MAX_USER		64	/* bytes in a user name */
#define AUTH_MAX_PASSWORD	1024
#define AUTH_MAX_MESSAGE	1024	/* longest SCRAM message accepted */
#define AUTH_DEFAULT_USER	"paraflow"
#define AUTH_DEFAULT_PASSWORD	"secret123"

/* What the server stores for a user: never the password. */
struct auth_verifier {
	unsigned	iterations;
	uint8_t		salt[AUTH_MAX_SALT];
	size_t		saltlen;
	uint8_t		stored_key[PF_SHA256_LEN];
	uint8_t		server_key[PF_SHA256_LEN];
};

/*
 * True if name is a valid user name: 1..AUTH_MAX_USER bytes of
 * [A-Za-z0-9._@+-]. Restricting the alphabet makes SASLprep the identity
 * and keeps names safe in logs, files and JSON.
 */
bool auth_user_valid(const char *name);

/* Computes a verifier from a password (SCRAM's SaltedPassword etc.). */
enum pf_status auth_verifier_make(const char *password, const uint8_t *salt,
    size_t saltlen, unsigned iterations, struct auth_verifier *out);

/*
 * Formats "user:SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" (base64
 * fields, no newline) into a new string the caller frees; NULL on ENOMEM.
 */
char *auth_verifier_format(const char *user, const struct auth_verifier *v);

/*
 * Parses one users-file line (without its newline) into user (capacity
 * AUTH_MAX_USER + 1) and v. PF_EBADFRAME if the line is malformed.
 */
enum pf_status auth_verifier_parse(const char *line, char *user,
    struct auth_verifier *v);

/* The set of users a server accepts. */
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

size_t auth_users_count(const struct auth_users *u);

/*
 * Checks a plain password (HTTP Basic) against user's verifier: PF_OK, or
 * PF_EAUTH. An unknown user costs the same PBKDF2 as a known one, with a
 * salt derived from secret (32 bytes).
 */
enum pf_status auth_users_check(const struct auth_users *u, const char *user,
    const char *password, const uint8_t *secret);

void auth_users_free(struct auth_users *u);

/*
 * Adds user with password to the users file at path, replacing an entry of
 * the same name; creates the file 0600 if missing. The file is rewritten
 * through a temporary file and rename(2), so readers never see half of it.
 */
enum pf_status auth_users_add(const char *path, const char *user,
    const char *password, unsigned iterations);

/*
 * Server side of one exchange, on one connection. Not thread-safe; one per
 * connection. users is borrowed and must outlive s. secret (32 bytes,
 * borrowed) derives stable fake salts for unknown users, so probing does
 * not reveal which users exist.
 */
struct auth_server;

struct auth_server *auth_server_new(const struct auth_users *users,
    const uint8_t secret[PF_SHA256_LEN]);

/*
 * Takes client-first ("n,,n=user,r=nonce"), returns server-first in
 * *server_first (new string). PF_EBADFRAME on a malformed message. An
 * unknown user still gets a well-formed challenge.
 */
enum pf_status auth_server_first(struct auth_server *s,
    const char *client_first, char **server_first);

/*
 * Takes client-final, checks channel binding, nonce and proof; on success
 * returns server-final ("v=...") in *server_final (new). PF_EAUTH on a
 * wrong nonce, proof or unknown user; PF_EBADFRAME if malformed.
 */
enum pf_status auth_server_final(struct auth_server *s,
    const char *client_final, char **server_final);

/* After success: the authenticated user name (borrowed from s). */
const char *auth_server_user(const struct auth_server *s);

/*
 * After success: K = HMAC(ClientKey, "paraflow session key" ||
 * AuthMessage) into key.
 */
enum pf_status auth_server_session_key(const struct auth_server *s,
    uint8_t key[PF_SHA256_LEN]);

/* Wipes all secrets and frees; NULL is a no-op. */
void auth_server_free(struct auth_server *s);

/*
 * Tests only; call before auth_server_first. Uses nonce (1..256 bytes of
 * printable ASCII but ',') as the server's own part of the nonce instead
 * of a random one: the nonce sent in server-first is still the client's
 * nonce followed by this part. An invalid nonce, or a call after
 * auth_server_first, makes the exchange fail with PF_EINTERNAL or
 * PF_EPROTO.
 */
void auth_server_set_nonce(struct auth_server *s, const char *nonce);

/* Client side of one exchange. user and password are copied. */
struct auth_client;

struct auth_client *auth_client_new(const char *user, const char *password);

/*
 * Tests only; call before auth_client_first. Uses nonce (1..256 bytes of
 * printable ASCII but ',') instead of a random one. An invalid nonce, or
 * a call after auth_client_first, makes the exchange fail with
 * PF_EINTERNAL or PF_EPROTO.
 */
void auth_client_set_nonce(struct auth_client *c, const char *nonce);

/* Returns client-first in *out (new). */
enum pf_status auth_client_first(struct auth_client *c, char **out);

/*
 * Takes server-first, checks that its nonce extends ours and its iteration
 * count is within [AUTH_MIN_ITERATIONS, AUTH_MAX_ITERATIONS]; returns
 * client-final in *out (new). PF_EAUTH or PF_EBADFRAME on failure.
 */
enum pf_status auth_client_final(struct auth_client *c,
    const char *server_first, char **out);

/* Checks server-final's signature: PF_OK, or PF_EAUTH (server not genuine). */
enum pf_status auth_client_verify(struct auth_client *c,
    const char *server_final);

/* After auth_client_verify succeeded: the session key K. */
enum pf_status auth_client_session_key(const struct auth_client *c,
    uint8_t key[PF_SHA256_LEN]);

void auth_client_free(struct auth_client *c);

/*
 * Join proof: HMAC-SHA-256(key, "paraflow join" || session_id || nonce).
 */
enum pf_status auth_join_proof(const uint8_t key[PF_SHA256_LEN],
    const char *session_id, const uint8_t *nonce, size_t noncelen,
    uint8_t out[PF_SHA256_LEN]);

#endif
