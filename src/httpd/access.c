/* SPDX-License-Identifier: MIT */
/* Who may ask: HTTP Basic logins, download links, per-user visibility. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "conns.h"
#include "log.h"
#include "net.h"

/* The MAC of a download link: HMAC(secret, label, id, expiry), hex. */
static bool
link_mac(const struct httpd *h, const char *id, int64_t expires,
    char out[2 * PF_SHA256_LEN + 1])
{
	uint8_t mac[PF_SHA256_LEN];
	char msg[128];
	int n;

	n = snprintf(msg, sizeof(msg), "paraflow download %s %lld", id,
	    (long long)expires);
	if (n < 0 || (size_t)n >= sizeof(msg) || pf_hmac_sha256(h->secret,
	    sizeof(h->secret), msg, (size_t)n, mac) != PF_OK)
		return false;
	pf_hex_encode(mac, sizeof(mac), out);
	return true;
}

bool
access_link_token(const struct httpd *h, const char *id, int64_t expires,
    char *buf, size_t cap)
{
	char mac[2 * PF_SHA256_LEN + 1];
	int n;

	if (!link_mac(h, id, expires, mac))
		return false;
	n = snprintf(buf, cap, "%lld.%s", (long long)expires, mac);
	return n > 0 && (size_t)n < cap;
}

bool
access_link_parse(const char *token, int64_t *expires, const char **mac)
{
	const char *p = token;
	int64_t v = 0;

	if (token == NULL || *p < '1' || *p > '9')
		return false;
	/*
	 * Digits only, as access_link_token writes them: no sign, space or
	 * leading zero, so that one expiry has one spelling.
	 */
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return false;
		v = v * 10 + (*p - '0');
	}
	if (*p != '.' || strlen(p + 1) != 2 * PF_SHA256_LEN ||
	    strspn(p + 1, "0123456789abcdef") != 2 * PF_SHA256_LEN)
		return false;
	*expires = v;
	*mac = p + 1;
	return true;
}

bool
access_link_valid(const struct httpd *h, const char *id, const char *token)
{
	char want[2 * PF_SHA256_LEN + 1];
	const char *mac;
	int64_t expires;

	if (!access_link_parse(token, &expires, &mac) ||
	    expires < (int64_t)time(NULL) || !link_mac(h, id, expires, want))
		return false;
	return pf_equal_ct(want, mac, 2 * PF_SHA256_LEN);
}

bool
access_may_see(const struct gw_caller *who, const char *user)
{
	return who->admin || strcmp(who->user, user) == 0;
}

static bool
is_admin(const struct httpd *h, const char *user)
{
	const char *p = h->cfg.admins;
	size_t len = strlen(user);

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, ",");

		if (n == len && strncmp(p, user, n) == 0)
			return true;
		p += n;
		p += *p == ',';
	}
	return false;
}

/* True if user:password passed PBKDF2 recently (cache by HMAC). */
static bool
login_cached(struct httpd *h, const uint8_t mac[PF_SHA256_LEN],
    bool remember)
{
	int64_t now = (int64_t)time(NULL);
	struct gw_login *oldest = &h->logins[0];
	bool found = false;

	pthread_mutex_lock(&h->logins_lock);
	for (int i = 0; i < GW_AUTH_CACHE; i++) {
		struct gw_login *l = &h->logins[i];

		if (l->expires > now && pf_equal_ct(l->mac, mac,
		    PF_SHA256_LEN)) {
			found = true;
			break;
		}
		if (l->expires < oldest->expires)
			oldest = l;
	}
	if (!found && remember) {
		memcpy(oldest->mac, mac, PF_SHA256_LEN);
		oldest->expires = now + GW_AUTH_TTL_S;
	}
	pthread_mutex_unlock(&h->logins_lock);
	return found;
}

/* The cache key of a login: HMAC(secret, user NUL password). */
static bool
login_mac(const struct httpd *h, const char *user, const char *password,
    uint8_t mac[PF_SHA256_LEN])
{
	size_t ulen = strlen(user), plen = strlen(password);
	char *msg;
	bool ok;

	/* The user name cannot hold a NUL: it separates the two. */
	if ((msg = malloc(ulen + 1 + plen)) == NULL)
		return false;
	memcpy(msg, user, ulen + 1);
	memcpy(msg + ulen + 1, password, plen);
	ok = pf_hmac_sha256(h->secret, sizeof(h->secret), msg, ulen + 1 + plen,
	    mac) == PF_OK;
	pf_wipe(msg, ulen + 1 + plen);
	free(msg);
	return ok;
}

enum access_auth
access_check_basic(struct httpd *h, struct MHD_Connection *c,
    struct gw_caller *who, unsigned *retry_after)
{
	char *user = NULL, *password = NULL;
	uint8_t mac[PF_SHA256_LEN];
	struct sockaddr_storage addr;
	char where[INET6_ADDRSTRLEN];
	enum access_auth rc = ACCESS_AUTH_FAILED;
	size_t ulen;

	memset(who, 0, sizeof(*who));
	*retry_after = 0;
	conns_client_addr(c, &addr);
	pf_addr_text(&addr, where);
	user = MHD_basic_auth_get_username_password(c, &password);
	if (user == NULL || password == NULL ||
	    (ulen = strlen(user)) == 0 || ulen > ENGINE_MAX_USER ||
	    !login_mac(h, user, password, mac))
		goto out;
	/*
	 * The wait comes before the cache: a guesser would otherwise learn
	 * the right password, at no PBKDF2, from a cache hit while the real
	 * user is active.
	 */
	if ((*retry_after = engine_login_wait(h->engine, where, user)) > 0) {
		rc = ACCESS_AUTH_LIMITED;
		goto out;
	}
	if (login_cached(h, mac, false))
		goto ok;
	if (engine_check_password(h->engine, where, user, password,
	    retry_after) != PF_OK) {
		if (*retry_after > 0)
			rc = ACCESS_AUTH_LIMITED;
		goto out;
	}
	login_cached(h, mac, true);
ok:
	snprintf(who->user, sizeof(who->user), "%s", user);
	who->admin = is_admin(h, user);
	rc = ACCESS_AUTH_OK;
out:
	if (password != NULL) {
		pf_wipe(password, strlen(password));
		MHD_free(password);
	}
	if (user != NULL)
		MHD_free(user);
	pf_wipe(mac, sizeof(mac));
	return rc;
}
