/* SPDX-License-Identifier: MIT */
/*
 * The login throttle both doors share, the native port's SCRAM login and
 * the gateway's HTTP Basic: failed logins counted per (address, user) and
 * per address, each with an exponential back-off, in a table of fixed
 * size; and the failures summed up in one log line per interval.
 */
#ifndef PF_THROTTLE_H
#define PF_THROTTLE_H

#include <stdbool.h>

/*
 * Failures of one user from one address before it waits; after the n-th
 * it waits 2^(n - FREE) s, at most THROTTLE_MAX_WAIT_S. A score leaks one
 * failure every LEAK_S seconds, so a typo is forgotten in time.
 */
#define THROTTLE_PAIR_FREE	5
#define THROTTLE_PAIR_LEAK_S	600
/* Failures from one address, whatever the user (spraying many names). */
#define THROTTLE_ADDR_FREE	30
#define THROTTLE_ADDR_LEAK_S	60
#define THROTTLE_MAX_WAIT_S	900
/* An attempt that neither fails nor succeeds (a dropped login) lapses. */
#define THROTTLE_ATTEMPT_S	60
/* The table: THROTTLE_SETS sets of THROTTLE_WAYS entries (see .c). */
#define THROTTLE_SETS		512
#define THROTTLE_WAYS		8

struct throttle;

/*
 * A new, empty throttle that sums failures up every log_interval_s
 * seconds; NULL on ENOMEM. Free with throttle_free (NULL: no-op).
 */
struct throttle *throttle_new(unsigned log_interval_s);
void throttle_free(struct throttle *t);

/*
 * Before a login of user from addr is checked: 0 if it may be, otherwise
 * the seconds (>= 1) until it may, and the attempt counts as refused.
 * addr is the client's address as text, with or without a port
 * ("192.0.2.1", "192.0.2.1:4000", "[2001:db8::1]:4000", "::1"); IPv6
 * addresses count by their /64. Any thread.
 */
unsigned throttle_check(struct throttle *t, const char *addr,
    const char *user);

/*
 * Like throttle_check, right before a password or proof is checked; when
 * it may go on (0), the attempt is in flight until throttle_failed or
 * throttle_succeeded ends it (or THROTTLE_ATTEMPT_S pass). Attempts in
 * flight count as failures to come: parallel ones get no more than the
 * free failures of the pair and of the address, and past them one at a
 * time (the others wait 1 s), so no guess slips between check and count.
 */
unsigned throttle_begin(struct throttle *t, const char *addr,
    const char *user);

/*
 * Counts a failed login of user from addr. True if the caller should log
 * it on a line of its own: the first after a quiet interval; the others
 * are in the summary that ends their interval. Any thread.
 */
bool throttle_failed(struct throttle *t, const char *addr, const char *user);

/*
 * A successful login of user from addr clears that pair's failures, not
 * the address's: an attacker's own account must not reset the count of
 * the names it sprays. Any thread.
 */
void throttle_succeeded(struct throttle *t, const char *addr,
    const char *user);

/* Logs the interval's summary once the interval is over. Any thread. */
void throttle_report(struct throttle *t);

#endif
