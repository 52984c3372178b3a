/* SPDX-License-Identifier: MIT */
/* Unit tests of the S3 client's percent-encoding (s3_encode) for SigV4,
   and of its reading of the store's times (s3_parse_time). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "s3_int.h"

/* Encodes text into a bounded buffer and checks the result. */
static void
expect(const char *text, bool keep_slash, const char *want)
{
	struct pf_buf b;

	pf_buf_init(&b, 4096);
	assert_true(s3_encode(&b, text, keep_slash));
	assert_string_equal(b.p != NULL ? b.p : "", want);
	pf_buf_free(&b);
}

/* SigV4 (and S3) want RFC 3986: unreserved bytes as they are, '~'
   included; every other byte %XX in upper case; a space is %20, never
   '+', and a '+' is %2B. */
static void
test_unreserved(void **state)
{
	(void)state;
	expect("AZaz09-._~", false, "AZaz09-._~");
	expect("", false, "");
}

static void
test_reserved(void **state)
{
	(void)state;
	expect("a b+c", false, "a%20b%2Bc");
	expect("&=?#%", false, "%26%3D%3F%23%25");
	expect("*'()!$,;:@", false, "%2A%27%28%29%21%24%2C%3B%3A%40");
}

/* UTF-8 goes byte by byte, upper-case hex. */
static void
test_utf8(void **state)
{
	(void)state;
	expect("\xc3\xbc~", false, "%C3%BC~");
	expect("\xe2\x82\xac", false, "%E2%82%AC");
}

/* '/' separates a key's path segments (kept) but is data in a query
   value (encoded); dot segments are left alone either way. */
static void
test_slash(void **state)
{
	(void)state;
	expect("a/../b/./c", true, "a/../b/./c");
	expect("a/../b", false, "a%2F..%2Fb");
	expect("dir/a b+c.txt", true, "dir/a%20b%2Bc.txt");
}

/* The caller's cap holds: an overflow is reported, not truncated. */
static void
test_cap(void **state)
{
	struct pf_buf b;

	(void)state;
	pf_buf_init(&b, 8);
	assert_false(s3_encode(&b, "   ", false));
	pf_buf_free(&b);
}

/* LastModified and Initiated as RGW and AWS write them; anything else
   is 0, which expiry reads as "no time". */
static void
test_time(void **state)
{
	(void)state;
	assert_int_equal(s3_parse_time("1970-01-01T00:00:00.000Z"), 0);
	assert_int_equal(s3_parse_time("2026-12-05T01:41:33.123Z"),
	    1796434893);
	assert_int_equal(s3_parse_time("2024-02-29T23:59:59Z"), 1709251199);
	assert_int_equal(s3_parse_time("yesterday"), 0);
	assert_int_equal(s3_parse_time(""), 0);
	assert_int_equal(s3_parse_time("2026-13-05T01:41:33Z"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unreserved),
		cmocka_unit_test(test_reserved),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_slash),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_time),
	};

	pf_log_set_level(PF_LOG_NONE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
