/* SPDX-License-Identifier: MIT */
/*
 * What both ends of the SCRAM-SHA-256(-PLUS) login (RFC 5802, RFC 7677,
 * RFC 9266) share: the GNU SASL context that runs the exchange, its
 * limits, the parsing of message attributes, the AuthMessage, the keys
 * derived from a password, and the join proof that binds a data
 * connection to a login. No I/O; every function may be called from any
 * thread.
 */
#ifndef PF_SCRAM_H
#define PF_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gsasl.h>

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

#define SCRAM_MECH		"SCRAM-SHA-256"
#define SCRAM_MECH_PLUS		"SCRAM-SHA-256-PLUS"
#define SCRAM_EXPORTER_LEN	32	/* bytes of tls-exporter (RFC 9266) */

/* The GS2 headers we speak: no authzid, ever. */
#define SCRAM_GS2_HEADER	"n,,"	/* no binding: client cannot */
#define SCRAM_GS2_YES		"y,,"	/* client can, thinks server cannot */
#define SCRAM_GS2_PLUS		"p=tls-exporter,,"
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

/*
 * The process-wide GNU SASL context, made on first use (any thread; its
 * callback hands each property request to the scram_hook of the session).
 * NULL if GNU SASL cannot start. Borrowed: never free it.
 */
Gsasl *scram_sasl(void);

/*
 * What a session's property callback is: fn(arg, session, property), set
 * on a session with gsasl_session_hook_set(sctx, hook). The hook is
 * borrowed and must outlive the session. fn returns a GSASL_* code.
 */
struct scram_hook {
	int	(*fn)(void *arg, Gsasl_session *sctx, Gsasl_property prop);
	void	*arg;
};

/*
 * Sets property prop of sctx to the base64 of n bytes of p. PF_ENOMEM or
 * PF_EINTERNAL on failure.
 */
enum pf_status scram_set_base64(Gsasl_session *sctx, Gsasl_property prop,
    const uint8_t *p, size_t n);

/*
 * The channel-binding attribute value ("c=") a client-final must carry
 * for gs2 header gs2 and, when it is SCRAM_GS2_PLUS, exporter (32 bytes):
 * base64(gs2 || exporter), a new string, or NULL on ENOMEM.
 */
char *scram_cbind(const char *gs2, const uint8_t *exporter);

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
 * Join proof: HMAC-SHA-256(key, "paraflow join" || session_id || nonce
 * [|| exporter]), key being the session key K of a login; into out.
 * exporter is the data connection's own tls-exporter value (32 bytes), or
 * NULL on a plaintext connection: so a proof relayed from another TLS
 * connection does not match. The client sends it in JOIN, the server
 * computes it again to check.
 */
enum pf_status scram_join_proof(const uint8_t key[PF_SHA256_LEN],
    const char *session_id, const uint8_t *nonce, size_t noncelen,
    const uint8_t *exporter, uint8_t out[PF_SHA256_LEN]);

/*
 * ClientKey = HMAC(SaltedPassword, "Client Key") from the hex
 * SaltedPassword GNU SASL gives (GSASL_SCRAM_SALTED_PASSWORD). PF_EPROTO
 * if hex is not 64 hex digits.
 */
enum pf_status scram_client_key_from_hex(const char *hex,
    uint8_t client_key[PF_SHA256_LEN]);

#endif
