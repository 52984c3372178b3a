/* SPDX-License-Identifier: MIT */
/*
 * What both ends of the SCRAM-SHA-256 login (RFC 5802, RFC 7677) share:
 * its limits, the parsing of message attributes, nonces, the AuthMessage,
 * the keys derived from a password, and the join proof that binds a data
 * connection to a login. No I/O; every function may be called from any
 * thread.
 */
#ifndef PF_SCRAM_H
#define PF_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "status.h"

#define SCRAM_DEFAULT_ITERATIONS	4096
#define SCRAM_MIN_ITERATIONS	4096
#define SCRAM_MAX_ITERATIONS	10000000
#define SCRAM_MAX_SALT		64	/* bytes of salt we accept */
#define SCRAM_NONCE_LEN		18	/* raw bytes; 24 base64 characters */
#define SCRAM_MAX_PASSWORD	1024
#define SCRAM_MAX_MESSAGE	1024	/* longest SCRAM message accepted */
/*
 * Longest nonce part either side may contribute. With it every message we
 * build stays far below SCRAM_MAX_MESSAGE, so we never send a message that
 * the peer must refuse as overlong.
 */
#define SCRAM_NONCE_MAX		256
#define SCRAM_DEFAULT_USER	"paraflow"
#define SCRAM_DEFAULT_PASSWORD	"secret123"

#define SCRAM_GS2_HEADER	"n,,"
#define SCRAM_CBIND_NONE	"biws"		/* base64 of SCRAM_GS2_HEADER */
#define SCRAM_LABEL_SESSION	"paraflow session key"

/*
 * Where an exchange stands, on either side. Any failure moves it to
 * SCRAM_FAILED and every later call then returns PF_EPROTO: a login gets
 * exactly one try.
 */
enum scram_step {
	SCRAM_NEW,
	SCRAM_FIRST,	/* first message done */
	SCRAM_FINAL,	/* client only: client-final sent */
	SCRAM_DONE,	/* succeeded */
	SCRAM_FAILED
};

/* One "x=value" attribute of a message, pointing into the message. */
struct scram_attr {
	const char	*p;
	size_t		 len;
};

/*
 * "paraflow session key" || AuthMessage in one buffer, so the signatures
 * use the tail and K the whole without a second copy. Holds secrets once
 * hashed with: the owner wipes it.
 */
struct scram_authmsg {
	char	buf[sizeof(SCRAM_LABEL_SESSION) - 1 +
	    3 * (SCRAM_MAX_MESSAGE + 1)];
	size_t	len;		/* of the AuthMessage alone */
};

/* A new string formatted as printf(3) does; NULL on ENOMEM. */
char *scram_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wipes and frees a string that held a secret; NULL is a no-op. */
void scram_free_secret(char *s);

/*
 * True if msg is a message short enough to parse: the length cap comes
 * first, so nothing walks an overlong input.
 */
bool scram_message_ok(const char *msg);

/*
 * Splits msg into exactly the attributes named by keys, in that order
 * ("nr" for "n=...,r=..."), into out (one per key; they point into msg).
 * The reserved "m=", extensions and empty values are refused: ParaFlow
 * speaks only the subset of RFC 5802 it needs, and a stricter parser is a
 * smaller target.
 */
bool scram_split_attrs(const char *msg, const char *keys,
    struct scram_attr *out);

/* True if attribute a is exactly the string s. */
bool scram_attr_is(const struct scram_attr *a, const char *s);

/* RFC 5802: a nonce is 1..max bytes of printable ASCII other than ','. */
bool scram_nonce_valid(const char *p, size_t len, size_t max);

/*
 * Parses an RFC 5802 posit-number (no sign, no leading zero) into *out. A
 * value too big for unsigned saturates, so the caller's range check
 * refuses it rather than a silent wrap accepting it.
 */
bool scram_parse_count(const struct scram_attr *a, unsigned *out);

/*
 * Decodes a base64 attribute of at most the base64 length of
 * SCRAM_MAX_SALT bytes into out (capacity cap): the decoded length, or -1.
 */
long scram_decode_attr(const struct scram_attr *a, uint8_t *out, size_t cap);

/* A fresh nonce: base64 of SCRAM_NONCE_LEN random bytes, into out. */
enum pf_status scram_random_nonce(char out[SCRAM_NONCE_MAX + 1]);

/* Copies a test nonce into out; false if it is not a valid nonce. */
bool scram_set_test_nonce(char out[SCRAM_NONCE_MAX + 1], const char *nonce);

/*
 * Builds AuthMessage = client-first-bare "," server-first ","
 * client-final-without-proof (RFC 5802, section 3) into m. False if it
 * does not fit.
 */
bool scram_authmsg_build(struct scram_authmsg *m, const char *first_bare,
    const char *server_first, const char *final_np, size_t final_np_len);

/* HMAC(key, AuthMessage): a client or server signature. */
enum pf_status scram_authmsg_hmac(const uint8_t key[PF_SHA256_LEN],
    const struct scram_authmsg *m, uint8_t out[PF_SHA256_LEN]);

/*
 * The session key K = HMAC(ClientKey, "paraflow session key" ||
 * AuthMessage).
 */
enum pf_status scram_authmsg_session_key(
    const uint8_t client_key[PF_SHA256_LEN], const struct scram_authmsg *m,
    uint8_t out[PF_SHA256_LEN]);

/*
 * SaltedPassword = Hi(password, salt, i); ClientKey, StoredKey and
 * ServerKey from it. SaltedPassword never leaves this function; the caller
 * wipes the keys.
 */
enum pf_status scram_derive_keys(const char *password, size_t passlen,
    const uint8_t *salt, size_t saltlen, unsigned iterations,
    uint8_t client_key[PF_SHA256_LEN], uint8_t stored_key[PF_SHA256_LEN],
    uint8_t server_key[PF_SHA256_LEN]);

/*
 * Join proof: HMAC-SHA-256(key, "paraflow join" || session_id || nonce),
 * key being the session key K of a login; into out. The client sends it in
 * JOIN, the server computes it again to check.
 */
enum pf_status scram_join_proof(const uint8_t key[PF_SHA256_LEN],
    const char *session_id, const uint8_t *nonce, size_t noncelen,
    uint8_t out[PF_SHA256_LEN]);

#endif
