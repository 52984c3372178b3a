/* SPDX-License-Identifier: MIT */
/*
 * The server side of the SCRAM-SHA-256 login (RFC 5802, RFC 7677), and of
 * SCRAM-SHA-256-PLUS with tls-exporter channel binding (RFC 9266) over
 * TLS: GNU SASL runs the exchange, this module feeds it the verifiers and
 * the binding and keeps the session key. No function here does I/O on a
 * connection; all messages are strings. The users set comes from users.h,
 * the primitives both sides share from scram.h (src/proto).
 */
#ifndef PF_AUTH_H
#define PF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "proto.h"
#include "scram.h"
#include "status.h"
#include "users.h"

/*
 * Server side of one exchange, on one connection. Not thread-safe; one per
 * connection. users is borrowed and must outlive s. secret (32 bytes,
 * copied) derives stable fake salts for unknown users, so probing does
 * not reveal which users exist (auth_users_fake_verifier).
 */
struct auth_server;

/*
 * A new exchange (free it with auth_server_free), or NULL on ENOMEM or if
 * GNU SASL cannot start. exporter is the connection's tls-exporter value
 * (SCRAM_EXPORTER_LEN bytes, copied) on a TLS connection: the exchange
 * then requires SCRAM-SHA-256-PLUS bound to it. NULL on plaintext: plain
 * SCRAM-SHA-256.
 */
struct auth_server *auth_server_new(const struct auth_users *users,
    const uint8_t secret[PF_SHA256_LEN], const uint8_t *exporter);

/* The one mechanism s accepts (a static string): the PLUS one over TLS. */
const char *auth_server_mechanism(const struct auth_server *s);

/*
 * Takes client-first ("n,,n=user,r=nonce"; "p=tls-exporter,,n=..." over
 * TLS), returns server-first in *server_first (new string). PF_EBADFRAME
 * on a malformed message or channel binding asked on plaintext; PF_EAUTH
 * for "n,," or "y,," over TLS (binding is required there). Plaintext
 * accepts "y,,": the client could bind but the server cannot, which is
 * true. An unknown user still gets a well-formed challenge.
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
 * After a successful auth_server_first: the name the client claims, not
 * yet proven (borrowed from s); NULL before, or after a failure.
 */
const char *auth_server_claimed_user(const struct auth_server *s);

/*
 * After success: K = HMAC(ClientKey, "paraflow session key" ||
 * AuthMessage) into key.
 */
enum pf_status auth_server_session_key(const struct auth_server *s,
    uint8_t key[PF_SHA256_LEN]);

/* Wipes all secrets and frees; NULL is a no-op. */
void auth_server_free(struct auth_server *s);

#endif
