/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the login throttle (throttle.c): which keys wait, how
 * addresses are counted, that a flood of new keys does not evict the
 * ones that wait, and that attempts in parallel get no extra guesses.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "log.h"
#include "throttle.h"

/* n failed logins of user from addr. */
static void
fail_n(struct throttle *t, const char *addr, const char *user, int n)
{
	for (int i = 0; i < n; i++)
		throttle_failed(t, addr, user);
}

static void
test_pair(void **state)
{
	struct throttle *t = throttle_new(60);

	(void)state;
	assert_non_null(t);
	fail_n(t, "192.0.2.1:4000", "alice", THROTTLE_PAIR_FREE - 1);
	assert_int_equal(throttle_check(t, "192.0.2.1", "alice"), 0);
	fail_n(t, "192.0.2.1:4001", "alice", 1);
	/* The port does not matter; the first wait is 1 s. */
	assert_int_equal(throttle_check(t, "192.0.2.1:4002", "alice"), 1);
	fail_n(t, "192.0.2.1", "alice", 3);
	assert_int_equal(throttle_check(t, "192.0.2.1", "alice"), 8);
	/* Not the user from elsewhere, nor another user from there. */
	assert_int_equal(throttle_check(t, "192.0.2.2", "alice"), 0);
	assert_int_equal(throttle_check(t, "192.0.2.1", "bob"), 0);
	/* Waits end at THROTTLE_MAX_WAIT_S (18 failures: not the address). */
	fail_n(t, "192.0.2.1", "alice", 10);
	assert_int_equal(throttle_check(t, "192.0.2.1", "alice"),
	    THROTTLE_MAX_WAIT_S);
	/* A success clears the pair (it comes from another door, say). */
	throttle_succeeded(t, "192.0.2.1", "alice");
	assert_int_equal(throttle_check(t, "192.0.2.1", "alice"), 0);
	throttle_free(t);
}

static void
test_address(void **state)
{
	struct throttle *t = throttle_new(60);
	char user[16];

	(void)state;
	for (int i = 0; i < THROTTLE_ADDR_FREE - 1; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		fail_n(t, "198.51.100.7", user, 1);
	}
	assert_int_equal(throttle_check(t, "198.51.100.7", "bob"), 0);
	fail_n(t, "198.51.100.7", "u-last", 1);
	assert_int_equal(throttle_check(t, "198.51.100.7", "bob"), 1);
	assert_int_equal(throttle_check(t, "198.51.100.8", "bob"), 0);
	/* Bob's success there clears his pair, not the address. */
	throttle_succeeded(t, "198.51.100.7", "bob");
	assert_int_equal(throttle_check(t, "198.51.100.7", "bob"), 1);
	throttle_free(t);
}

static void
test_addresses(void **state)
{
	struct throttle *t = throttle_new(60);

	(void)state;
	/* IPv6 counts by /64, in any spelling; mapped IPv4 as IPv4. */
	fail_n(t, "[2001:db8:1:2::1]:443", "alice", THROTTLE_PAIR_FREE);
	assert_int_equal(throttle_check(t, "2001:db8:1:2:ffff::9", "alice"), 1);
	assert_int_equal(throttle_check(t, "[2001:db8:1:3::1]:1", "alice"), 0);
	fail_n(t, "::ffff:203.0.113.5", "carol", THROTTLE_PAIR_FREE);
	assert_int_equal(throttle_check(t, "203.0.113.5:999", "carol"), 1);
	assert_int_equal(throttle_check(t, "fe80::1%eth0", "carol"), 0);
	throttle_free(t);
}

static void
test_flood(void **state)
{
	struct throttle *t = throttle_new(60);
	char addr[32];
	unsigned w;

	(void)state;
	fail_n(t, "192.0.2.9", "alice", THROTTLE_PAIR_FREE + 4);
	/* Ten times the table in fresh keys, each from its own address. */
	for (int i = 0; i < 10 * THROTTLE_SETS * THROTTLE_WAYS; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		fail_n(t, addr, "x", 1);
	}
	/* 16 s, less the time the flood took. */
	w = throttle_check(t, "192.0.2.9", "alice");
	assert_true(w >= 10 && w <= 16);
	throttle_report(t);
	throttle_free(t);
	throttle_free(NULL);
}

/* Attempts begun in parallel get no more than the free failures. */
static void
test_parallel(void **state)
{
	struct throttle *t = throttle_new(60);
	char user[16];

	(void)state;
	for (int i = 0; i < THROTTLE_PAIR_FREE; i++)
		assert_int_equal(throttle_begin(t, "192.0.2.1", "alice"), 0);
	/* The next waits for those in flight; a check alone does not. */
	assert_int_equal(throttle_begin(t, "192.0.2.1:7", "alice"), 1);
	assert_int_equal(throttle_check(t, "192.0.2.1", "alice"), 0);
	assert_int_equal(throttle_begin(t, "192.0.2.1", "bob"), 0);
	throttle_failed(t, "192.0.2.1", "bob");
	/* All fail: the first wait, as for failures one after another. */
	fail_n(t, "192.0.2.1", "alice", THROTTLE_PAIR_FREE);
	assert_int_equal(throttle_begin(t, "192.0.2.1", "alice"), 1);
	/* A success ends its attempt and clears the pair. */
	assert_int_equal(throttle_begin(t, "192.0.2.2", "carol"), 0);
	throttle_succeeded(t, "192.0.2.2", "carol");
	for (int i = 0; i < THROTTLE_PAIR_FREE; i++)
		assert_int_equal(throttle_begin(t, "192.0.2.2", "carol"), 0);
	/* One address, many names: its own free failures, in flight too. */
	for (int i = 0; i < THROTTLE_ADDR_FREE; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		assert_int_equal(throttle_begin(t, "198.51.100.1", user), 0);
	}
	assert_int_equal(throttle_begin(t, "198.51.100.1", "another"), 1);
	throttle_succeeded(t, "198.51.100.1", "u0");
	assert_int_equal(throttle_begin(t, "198.51.100.1", "another"), 0);
	throttle_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pair),
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_addresses),
		cmocka_unit_test(test_flood),
		cmocka_unit_test(test_parallel),
	};

	pf_log_set_level(PF_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
