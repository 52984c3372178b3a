/* SPDX-License-Identifier: MIT */
/* Who may ask: HTTP Basic logins, download links, per-user visibility. */
#ifndef PF_ACCESS_H
#define PF_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "gateway.h"

enum access_auth {
	ACCESS_AUTH_OK,
	ACCESS_AUTH_FAILED,	/* none, or wrong */
	ACCESS_AUTH_LIMITED	/* too many failed logins: wait */
};

/*
 * Checks the HTTP Basic credentials of c against the engine's users (a
 * login that passed lately comes from a cache, without a PBKDF2) and
 * fills *who. After too many failed logins of that user from the
 * client's address, or of anyone from it (engine_login_wait), it is
 * ACCESS_AUTH_LIMITED without a check, and *retry_after the seconds to
 * wait. MHD threads.
 */
enum access_auth access_check_basic(struct httpd *h, struct MHD_Connection *c,
    struct gw_caller *who, unsigned *retry_after);

/*
 * The token of a download link to the file of session id, valid until
 * expires, into buf (cap bytes). False if it does not fit. Any thread.
 */
bool access_link_token(const struct httpd *h, const char *id,
    int64_t expires, char *buf, size_t cap);

/*
 * Splits token ("<expiry>.<64 lowercase hex>", as access_link_token
 * writes it) into *expires and *mac (borrowed from token). False if it
 * is not exactly that: the expiry is decimal digits without a sign,
 * space or leading zero, within int64_t. Pure; any thread.
 */
bool access_link_parse(const char *token, int64_t *expires,
    const char **mac);

/* True if token (NULL: false) is a valid link to id's file right now. */
bool access_link_valid(const struct httpd *h, const char *id,
    const char *token);

/* True if who may see a session of user: its owner, or an admin. */
bool access_may_see(const struct gw_caller *who, const char *user);

#endif
