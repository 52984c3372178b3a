/* SPDX-License-Identifier: MIT */
/* The login throttle: failures per (address, user) and per address. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "digest.h"
#include "log.h"
#include "throttle.h"

#define ADDR_LEN	(INET6_ADDRSTRLEN + 4)	/* and "/64" */
#define TAG_LEN		16
#define NENTRIES	(THROTTLE_SETS * THROTTLE_WAYS)

/*
 * One counted key: a pair (address, user) or an address. Only a tag of
 * the keyed hash of the key is kept, so the table holds no user names;
 * an address entry keeps its address for the summary line.
 */
struct entry {
	uint8_t		 tag[TAG_LEN];
	bool		 used;
	bool		 is_addr;
	unsigned	 count;		/* failures, leaking */
	uint64_t	 last_ms;	/* count's time */
	uint64_t	 until_ms;	/* refused until then */
	unsigned	 window;	/* failed or refused, this interval */
	unsigned	 flying;	/* attempts begun, not ended */
	uint64_t	 flying_ms;	/* when the last one began */
	char		 addr[ADDR_LEN];
};

struct throttle {
	pthread_mutex_t	 lock;		/* guards all that follows */
	uint8_t		 key[PF_SHA256_LEN];	/* for the table's hash */
	uint64_t	 interval_ms;
	uint64_t	 window_ms;	/* start of the interval; 0: none */
	uint64_t	 closed_ms;	/* when the last one with lines ended */
	unsigned	 failures;	/* in this interval */
	unsigned	 refused;
	bool		 logged;	/* its first failure, on its own line */
	struct entry	 e[NENTRIES];
};

struct throttle *
throttle_new(unsigned log_interval_s)
{
	struct throttle *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	/* Random per process: no one can aim a key at a set of the table. */
	if (pf_random(t->key, sizeof(t->key)) != PF_OK) {
		free(t);
		return NULL;
	}
	t->interval_ms = 1000ULL * (log_interval_s > 0 ? log_interval_s : 1);
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void
throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	pf_wipe(t, sizeof(*t));
	free(t);
}

/*
 * The address part of addr (text, maybe with a port) as the throttle
 * counts it: IPv4 as it is (an IPv4-mapped IPv6 address too), IPv6 by its
 * /64, which is what one host or one customer usually gets.
 */
static void
norm_addr(const char *addr, char out[ADDR_LEN])
{
	char buf[ADDR_LEN];
	struct in6_addr a6;
	const char *p = addr;
	size_t n;

	if (*p == '[')
		n = strcspn(++p, "]");
	else if (strchr(p, ':') != strrchr(p, ':'))
		n = strlen(p);		/* a bare IPv6 address */
	else
		n = strcspn(p, ":");	/* IPv4, and its port if any */
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	buf[strcspn(buf, "%")] = '\0';	/* a zone, "fe80::1%eth0" */
	if (inet_pton(AF_INET6, buf, &a6) != 1) {
		snprintf(out, ADDR_LEN, "%s", buf);
		return;
	}
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		inet_ntop(AF_INET, &a6.s6_addr[12], out, ADDR_LEN);
		return;
	}
	memset(&a6.s6_addr[8], 0, 8);
	inet_ntop(AF_INET6, &a6, out, INET6_ADDRSTRLEN);
	strcat(out, "/64");
}

/*
 * The entry's count leaked down to now, whole failures only, and the
 * time that count is of into *last (if not NULL); e is not changed.
 */
static unsigned
count_at(const struct entry *e, uint64_t now, uint64_t *last)
{
	uint64_t leak = 1000ULL * (e->is_addr ? THROTTLE_ADDR_LEAK_S :
	    THROTTLE_PAIR_LEAK_S);
	uint64_t k = (now - e->last_ms) / leak;

	if (last != NULL)
		*last = k >= e->count ? now : e->last_ms + k * leak;
	return k >= e->count ? 0 : e->count - (unsigned)k;
}

/*
 * Which entry of a full set gives way: one that refuses nothing now, the
 * lowest count first; only when all of them refuse, the one whose wait
 * ends first. Flooding the table with fresh keys (each new one has a
 * count of one) therefore pushes out other fresh keys, not the ones
 * that wait: the keys that back off are the last to go.
 */
static struct entry *
victim(struct entry *set, uint64_t now)
{
	struct entry *v = &set[0];

	for (int i = 1; i < THROTTLE_WAYS; i++) {
		struct entry *e = &set[i];
		bool vw = v->until_ms > now, ew = e->until_ms > now;

		if (vw != ew ? vw : vw ? e->until_ms < v->until_ms :
		    count_at(e, now, NULL) < count_at(v, now, NULL))
			v = e;
	}
	return v;
}

/*
 * The entry of the key (is_addr: the address alone; else the pair), or
 * NULL if it has none and create is false. Under t->lock.
 */
static struct entry *
lookup(struct throttle *t, bool is_addr, const char *addr, const char *user,
    bool create, uint64_t now)
{
	uint8_t h[PF_SHA256_LEN];
	char msg[1 + ADDR_LEN + 1 + 256];
	struct entry *set, *e = NULL;
	uint32_t idx;
	int n;

	n = snprintf(msg, sizeof(msg), "%c%s%c%.255s", is_addr ? 'a' : 'p',
	    addr, '\0', is_addr ? "" : user);
	if (n < 0 || (size_t)n >= sizeof(msg) ||
	    pf_hmac_sha256(t->key, sizeof(t->key), msg, (size_t)n, h) != PF_OK)
		return NULL;
	idx = ((uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
	    (uint32_t)h[2] << 8 | h[3]) % THROTTLE_SETS;
	set = &t->e[idx * THROTTLE_WAYS];
	for (int i = 0; i < THROTTLE_WAYS; i++)
		if (set[i].used && set[i].is_addr == is_addr &&
		    memcmp(set[i].tag, h + 4, TAG_LEN) == 0)
			return &set[i];
	if (!create)
		return NULL;
	for (int i = 0; i < THROTTLE_WAYS && e == NULL; i++)
		if (!set[i].used)
			e = &set[i];
	if (e == NULL)
		e = victim(set, now);
	memset(e, 0, sizeof(*e));
	memcpy(e->tag, h + 4, TAG_LEN);
	e->used = true;
	e->is_addr = is_addr;
	e->last_ms = now;
	if (is_addr)
		snprintf(e->addr, sizeof(e->addr), "%s", addr);
	return e;
}

/* Seconds, rounded up, until e stops refusing; 0 if it does not. */
static unsigned
wait_of(const struct entry *e, uint64_t now)
{
	if (e == NULL || e->until_ms <= now)
		return 0;
	return (unsigned)((e->until_ms - now + 999) / 1000);
}

/*
 * Ends the interval if it is over: its summary into line (cap bytes),
 * true if there is one to log. Under t->lock.
 */
static bool
close_window(struct throttle *t, uint64_t now, char *line, size_t cap)
{
	const struct entry *top = NULL;
	unsigned naddr = 0;
	bool have;
	int n;

	if (t->window_ms == 0 || now - t->window_ms < t->interval_ms)
		return false;
	/* A lone failure had its own line already. */
	have = t->failures > 1 || t->refused > 0;
	for (int i = 0; i < NENTRIES; i++) {
		struct entry *e = &t->e[i];

		if (e->used && e->is_addr && e->window > 0) {
			naddr++;
			if (top == NULL || e->window > top->window)
				top = e;
		}
	}
	n = snprintf(line, cap, "login: %u failed logins and %u attempts "
	    "refused while throttled in the last %llu s, from %u addresses",
	    t->failures, t->refused,
	    (unsigned long long)((now - t->window_ms) / 1000), naddr);
	if (top != NULL && n > 0 && (size_t)n < cap)
		snprintf(line + n, cap - (size_t)n, ", most from %s (%u)",
		    top->addr, top->window);
	for (int i = 0; i < NENTRIES; i++)
		t->e[i].window = 0;
	t->window_ms = 0;
	t->failures = t->refused = 0;
	t->logged = false;
	if (have)
		t->closed_ms = now;
	return have;
}

/* Opens an interval at now unless one is open. Under t->lock. */
static void
open_window(struct throttle *t, uint64_t now)
{
	if (t->window_ms == 0)
		t->window_ms = now > 0 ? now : 1;
}

/* Attempts of e in flight at now: none once the last began long ago. */
static unsigned
flying_at(const struct entry *e, uint64_t now)
{
	if (e == NULL || now - e->flying_ms > 1000ULL * THROTTLE_ATTEMPT_S)
		return 0;
	return e->flying;
}

/*
 * Whether one more attempt on e must wait for those in flight: they
 * already reach e's free failures (or, past them, one is in flight).
 */
static bool
crowded(const struct entry *e, uint64_t now)
{
	unsigned n = flying_at(e, now);

	return n > 0 && count_at(e, now, NULL) + n >= (e->is_addr ?
	    THROTTLE_ADDR_FREE : THROTTLE_PAIR_FREE);
}

/* One more attempt in flight on e (NULL: none to count it on). */
static void
fly(struct entry *e, uint64_t now)
{
	if (e == NULL)
		return;
	e->flying = flying_at(e, now) + 1;
	e->flying_ms = now;
}

/* An attempt of e has ended. */
static void
land(struct entry *e, uint64_t now)
{
	if (e != NULL && flying_at(e, now) > 0)
		e->flying--;
}

/* throttle_check, and with begin, throttle_begin. */
static unsigned
admit(struct throttle *t, const char *addr, const char *user, bool begin)
{
	uint64_t now = pf_now_ms();
	struct entry *ep, *ea;
	unsigned w, wa;
	char a[ADDR_LEN], line[256];
	bool report;

	norm_addr(addr, a);
	pthread_mutex_lock(&t->lock);
	report = close_window(t, now, line, sizeof(line));
	ep = lookup(t, false, a, user, false, now);
	ea = lookup(t, true, a, user, false, now);
	w = wait_of(ep, now);
	if ((wa = wait_of(ea, now)) > w)
		w = wa;
	if (w == 0 && begin && (crowded(ep, now) || crowded(ea, now)))
		w = 1;
	if (w == 0 && begin) {
		fly(lookup(t, false, a, user, true, now), now);
		fly(lookup(t, true, a, user, true, now), now);
	}
	if (w > 0) {
		open_window(t, now);
		t->refused++;
		if (ea != NULL)
			ea->window++;
	}
	pthread_mutex_unlock(&t->lock);
	if (report)
		log_warn("%s", line);
	return w;
}

unsigned
throttle_check(struct throttle *t, const char *addr, const char *user)
{
	return admit(t, addr, user, false);
}

unsigned
throttle_begin(struct throttle *t, const char *addr, const char *user)
{
	return admit(t, addr, user, true);
}

/* One more failure on e: its count, and its wait past the free ones. */
static void
count_failure(struct entry *e, uint64_t now)
{
	unsigned free_n = e->is_addr ? THROTTLE_ADDR_FREE : THROTTLE_PAIR_FREE;
	uint64_t wait_s, until;
	unsigned over;

	e->count = count_at(e, now, &e->last_ms) + 1;
	e->window++;
	if (e->count < free_n)
		return;
	over = e->count - free_n;
	wait_s = over >= 10 ? THROTTLE_MAX_WAIT_S : 1ULL << over;
	if (wait_s > THROTTLE_MAX_WAIT_S)
		wait_s = THROTTLE_MAX_WAIT_S;
	until = now + 1000 * wait_s;
	if (until > e->until_ms)
		e->until_ms = until;
}

bool
throttle_failed(struct throttle *t, const char *addr, const char *user)
{
	uint64_t now = pf_now_ms();
	char a[ADDR_LEN], line[256];
	struct entry *e;
	bool report, first;

	norm_addr(addr, a);
	pthread_mutex_lock(&t->lock);
	report = close_window(t, now, line, sizeof(line));
	open_window(t, now);
	t->failures++;
	/* Not while summaries go on: failures that never stop. */
	first = !t->logged && (t->closed_ms == 0 ||
	    now - t->closed_ms >= t->interval_ms);
	t->logged = true;
	if ((e = lookup(t, false, a, user, true, now)) != NULL) {
		land(e, now);
		count_failure(e, now);
	}
	if ((e = lookup(t, true, a, user, true, now)) != NULL) {
		land(e, now);
		count_failure(e, now);
	}
	pthread_mutex_unlock(&t->lock);
	if (report)
		log_warn("%s", line);
	return first;
}

void
throttle_succeeded(struct throttle *t, const char *addr, const char *user)
{
	uint64_t now = pf_now_ms();
	char a[ADDR_LEN];
	struct entry *e;

	norm_addr(addr, a);
	pthread_mutex_lock(&t->lock);
	if ((e = lookup(t, false, a, user, false, now)) != NULL)
		memset(e, 0, sizeof(*e));
	land(lookup(t, true, a, user, false, now), now);
	pthread_mutex_unlock(&t->lock);
}

void
throttle_report(struct throttle *t)
{
	char line[256];
	bool report;

	pthread_mutex_lock(&t->lock);
	report = close_window(t, pf_now_ms(), line, sizeof(line));
	pthread_mutex_unlock(&t->lock);
	if (report)
		log_warn("%s", line);
}
