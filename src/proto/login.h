/* SPDX-License-Identifier: MIT */
/*
 * The client side of the SCRAM-SHA-256 login: the messages a client sends
 * and the checks it makes of the server's. No I/O; all messages are
 * strings. One struct login per exchange, used by one thread at a time.
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
 * password is wiped once client-final is made). NULL on ENOMEM. An invalid
 * user or an overlong password surfaces as PF_EUSAGE from login_first.
 * Free it with login_free.
 */
struct login *login_new(const char *user, const char *password);

/*
 * Tests only; call before login_first. Uses nonce (1..256 bytes of
 * printable ASCII but ',') instead of a random one. An invalid nonce, or
 * a call after login_first, makes the exchange fail with PF_EINTERNAL or
 * PF_EPROTO.
 */
void login_set_nonce(struct login *c, const char *nonce);

/* Returns client-first in *out (new string the caller frees). */
enum pf_status login_first(struct login *c, char **out);

/*
 * Takes server-first, checks that its nonce extends ours and its iteration
 * count is within [SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS]; returns
 * client-final in *out (new). PF_EAUTH or PF_EBADFRAME on failure.
 */
enum pf_status login_final(struct login *c, const char *server_first,
    char **out);

/* Checks server-final's signature: PF_OK, or PF_EAUTH (server not genuine). */
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
