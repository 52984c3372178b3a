/* SPDX-License-Identifier: MIT */
/*
 * The client side of the SCRAM-SHA-256 login, and of SCRAM-SHA-256-PLUS
 * with tls-exporter channel binding over TLS: GNU SASL makes the messages
 * and checks the server's; this module adds our limits and the session
 * key. No I/O; all messages are strings. One struct login per exchange,
 * used by one thread at a time.
 */
#ifndef PF_LOGIN_H
#define PF_LOGIN_H

#include "digest.h"
#include "scram.h"
#include "status.h"

/* One exchange, client side. */
struct login;

/*
 * A new exchange for user with password (both copied; the copy of the
 * password is wiped once client-final is made; GNU SASL applies SASLprep
 * to it). exporter is the connection's tls-exporter value
 * (SCRAM_EXPORTER_LEN bytes, copied) on a TLS connection: the exchange is
 * then SCRAM-SHA-256-PLUS bound to it; NULL for plain SCRAM-SHA-256 with
 * "n,,". NULL on ENOMEM. An invalid user or an overlong password surfaces
 * as PF_EUSAGE from login_first. Free it with login_free.
 */
struct login *login_new(const char *user, const char *password,
    const uint8_t *exporter);

/* The mechanism c speaks, for the AUTH frame (a static string). */
const char *login_mechanism(const struct login *c);

/* Returns client-first in *out (new string the caller frees). */
enum pf_status login_first(struct login *c, char **out);

/*
 * Takes server-first, checks that its nonce extends ours and its iteration
 * count is within [SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS]; returns
 * client-final in *out (new). PF_EAUTH or PF_EBADFRAME on failure.
 */
enum pf_status login_final(struct login *c, const char *server_first,
    char **out);

/*
 * Checks server-final's signature: PF_OK, or PF_EAUTH (server not genuine,
 * or over TLS not on the connection we bound).
 */
enum pf_status login_verify(struct login *c, const char *server_final);

/*
 * After login_verify succeeded: the session key K into key, which the
 * caller wipes. PF_EPROTO before.
 */
enum pf_status login_session_key(const struct login *c,
    uint8_t key[PF_SHA256_LEN]);

/* Wipes all secrets and frees; NULL is a no-op. */
void login_free(struct login *c);

#endif
