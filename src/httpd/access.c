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
access_link_valid(const struct httpd *h, const char *id, const char *token)
{
	char want[2 * PF_SHA256_LEN + 1];
	const char *dot;
	long long expires;
	char *end;

	if (token == NULL || (dot = strchr(token, '.')) == NULL ||
	    strlen(dot + 1) != 2 * PF_SHA256_LEN)
		return false;
	expires = strtoll(token, &end, 10);
	if (end != dot || expires < (long long)time(NULL) ||
	    !link_mac(h, id, expires, want))
		return false;
	return pf_equal_ct(want, dot + 1, 2 * PF_SHA256_LEN);
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

/*
 * The failed logins of one client address in the current minute (under
 * logins_lock). Over GW_FAIL_MAX the address waits out the minute: every
 * wrong password costs a PBKDF2, which is what a guesser would spend.
 */
static struct gw_failures *
failures_of(struct httpd *h, const struct sockaddr_storage *addr,
    int64_t now, bool take)
{
	struct gw_failures *f, *oldest = &h->failures[0];

	for (int i = 0; i < GW_FAIL_SLOTS; i++) {
		f = &h->failures[i];
		if (memcmp(&f->addr, addr, sizeof(*addr)) == 0) {
			if (now - f->since >= 60) {
				f->since = now;
				f->count = 0;
			}
			return f;
		}
		if (f->since < oldest->since)
			oldest = f;
	}
	if (!take)
		return NULL;
	oldest->addr = *addr;
	oldest->since = now;
	oldest->count = 0;
	return oldest;
}

/* True if addr has used up its failed logins of the minute. */
static bool
limited(struct httpd *h, const struct sockaddr_storage *addr, int64_t now)
{
	struct gw_failures *f;
	bool over;

	pthread_mutex_lock(&h->logins_lock);
	f = failures_of(h, addr, now, false);
	over = f != NULL && f->count >= GW_FAIL_MAX;
	pthread_mutex_unlock(&h->logins_lock);
	return over;
}

/* Counts and logs a failed login from addr. */
static void
failed(struct httpd *h, const struct sockaddr_storage *addr, int64_t now)
{
	char where[INET6_ADDRSTRLEN];

	engine_count_auth_failure(h->engine);
	conns_addr_text(addr, where);
	pthread_mutex_lock(&h->logins_lock);
	if (failures_of(h, addr, now, true)->count++ == GW_FAIL_MAX - 1)
		log_warn("http: %s: %d failed logins within a minute; "
		    "refusing its logins for the rest of it", where,
		    GW_FAIL_MAX);
	pthread_mutex_unlock(&h->logins_lock);
	log_warn("http: %s: login failed", where);
}

enum access_auth
access_check_basic(struct httpd *h, struct MHD_Connection *c,
    struct gw_caller *who)
{
	char *user = NULL, *password = NULL;
	uint8_t mac[PF_SHA256_LEN];
	struct sockaddr_storage addr;
	int64_t now = (int64_t)time(NULL);
	enum access_auth rc = ACCESS_AUTH_FAILED;
	size_t ulen;

	memset(who, 0, sizeof(*who));
	conns_client_addr(c, &addr);
	user = MHD_basic_auth_get_username_password(c, &password);
	if (user == NULL || password == NULL ||
	    (ulen = strlen(user)) == 0 || ulen > ENGINE_MAX_USER ||
	    !login_mac(h, user, password, mac))
		goto out;
	if (login_cached(h, mac, false))
		goto ok;
	if (limited(h, &addr, now)) {
		rc = ACCESS_AUTH_LIMITED;
		goto out;
	}
	if (engine_check_password(h->engine, user, password) != PF_OK) {
		failed(h, &addr, now);
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
