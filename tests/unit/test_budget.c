/* SPDX-License-Identifier: MIT */
/* Unit tests of the native port's connection budget (budget.c). */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "budget.h"

#define NT	16

static struct sockaddr_storage
addr4(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	a->sin_family = AF_INET;
	a->sin_port = htons(40000);
	assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage
addr6(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(40000);
	assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
	return ss;
}

/* Admits from text with nconns open; true if admitted, ticket in t[i]. */
static bool
admit(struct budget *b, unsigned nconns, const char *text,
    struct budget_ticket **t)
{
	struct sockaddr_storage ss = strchr(text, ':') != NULL ? addr6(text) :
	    addr4(text);

	return budget_admit(b, nconns, -1, &ss, t);
}

/* An IPv6 /64 is one address to the cap; a mapped IPv4 its IPv4. */
static void
test_ipv6_prefix(void **state)
{
	struct budget_limits lim = { .max_connections = 10, .max_logins = 8,
	    .max_ip_logins = 2, .login_ms = 10000 };
	struct budget_ticket *t[NT] = { NULL }, *x;
	struct budget *b = budget_new(&lim);

	(void)state;
	assert_non_null(b);
	assert_true(admit(b, 0, "2001:db8:1:2::1", &t[0]));
	assert_true(admit(b, 1, "2001:db8:1:2:ffff::7", &t[1]));
	assert_false(admit(b, 2, "2001:db8:1:2:abcd::9", &x));
	assert_true(admit(b, 2, "2001:db8:1:3::1", &t[2]));
	assert_true(admit(b, 3, "192.0.2.1", &t[3]));
	assert_true(admit(b, 4, "::ffff:192.0.2.1", &t[4]));
	assert_false(admit(b, 5, "192.0.2.1", &x));
	for (int i = 0; i < NT; i++)
		budget_release(b, t[i]);
	budget_free(b);
}

/* The caps: all connections, those logging in, those from one address. */
static void
test_caps(void **state)
{
	struct budget_limits lim = { .max_connections = 10, .max_logins = 4,
	    .max_ip_logins = 2, .login_ms = 10000 };
	struct budget_ticket *t[NT] = { NULL }, *x;
	struct budget *b = budget_new(&lim);

	(void)state;
	assert_non_null(b);
	assert_true(admit(b, 0, "10.0.0.1", &t[0]));
	assert_true(admit(b, 1, "10.0.0.1", &t[1]));
	/* A third from 10.0.0.1 is over --max-ip-logins; others are not. */
	assert_false(admit(b, 2, "10.0.0.1", &x));
	assert_null(x);
	assert_true(admit(b, 2, "10.0.0.2", &t[2]));
	assert_true(admit(b, 3, "10.0.0.3", &t[3]));
	/* Four logging in: the fifth waits, whoever it is. */
	assert_false(admit(b, 4, "10.0.0.4", &x));
	/* One logs in: its slot for logins is free, its address too. */
	budget_logged_in(b, t[0]);
	assert_true(admit(b, 4, "10.0.0.1", &t[4]));
	/* The connection limit holds for all. */
	assert_false(admit(b, 10, "10.0.0.5", &x));
	for (int i = 0; i < NT; i++)
		budget_release(b, t[i]);
	budget_release(b, NULL);
	budget_free(b);
	budget_free(NULL);
}

/* Past its deadline, a connection still logging in is shut down. */
static void
test_deadline(void **state)
{
	struct budget_limits lim = { .max_connections = 10, .max_logins = 4,
	    .max_ip_logins = 4, .login_ms = 50 };
	struct sockaddr_storage ss = addr4("10.0.0.1");
	struct budget_ticket *late, *quick;
	int sv[2], sq[2];
	char c;
	struct budget *b = budget_new(&lim);

	(void)state;
	assert_non_null(b);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sq), 0);
	assert_true(budget_admit(b, 0, sv[0], &ss, &late));
	assert_true(budget_admit(b, 1, sq[0], &ss, &quick));
	budget_logged_in(b, quick);
	budget_tick(b);
	/* Not yet: the shutdown would show as EOF on our end. */
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
	usleep(100 * 1000);
	budget_tick(b);
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), 0);
	/* The one that logged in has no deadline. */
	assert_int_equal(recv(sq[1], &c, 1, MSG_DONTWAIT), -1);
	budget_release(b, late);
	budget_release(b, quick);
	budget_free(b);
	for (int i = 0; i < 2; i++) {
		close(sv[i]);
		close(sq[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_ipv6_prefix),
		cmocka_unit_test(test_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
