/* SPDX-License-Identifier: MIT */
/* Unit tests of option parsing, secret reading and text encodings. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "args.h"
#include "digest.h"

static void
test_parse_size(void **state)
{
	static const struct {
		const char	*in;
		uint64_t	 want;
	} good[] = {
		{ "0", 0 }, { "4096", 4096 }, { "64K", 65536 },
		{ "4M", 4194304 }, { "4MiB", 4194304 }, { "4mb", 4194304 },
		{ "1G", 1ull << 30 }, { "2T", 2ull << 40 },
		{ "16777215T", 16777215ull << 40 },
	};
	static const char *bad[] = {
		"", "-1", "K", "4X", "4MM", "4 M", " 4", "16777216T",
		"99999999999999999999", "0x10",
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(pf_parse_size(good[i].in, &v), PF_OK);
		assert_true(v == good[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pf_parse_size(bad[i], &v), PF_EUSAGE);
}

static void
test_parse_uint(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(pf_parse_uint("8", 1, 64, &v), PF_OK);
	assert_int_equal(v, 8);
	assert_int_equal(pf_parse_uint("0", 1, 64, &v), PF_EUSAGE);
	assert_int_equal(pf_parse_uint("65", 1, 64, &v), PF_EUSAGE);
	assert_int_equal(pf_parse_uint("-1", 0, 64, &v), PF_EUSAGE);
	assert_int_equal(pf_parse_uint("8x", 0, 64, &v), PF_EUSAGE);
	assert_int_equal(pf_parse_uint(NULL, 0, 64, &v), PF_EUSAGE);
}

static void
test_read_secret(void **state)
{
	char buf[16];
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "pencil\r\nrest", 12), 12);
	close(p[1]);
	assert_int_equal(pf_read_secret_fd(p[0], buf, sizeof(buf)), PF_OK);
	assert_string_equal(buf, "pencil");
	close(p[0]);

	/* Too long for the buffer, and empty: both refused. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "0123456789abcdefXYZ\n", 20), 20);
	close(p[1]);
	assert_int_equal(pf_read_secret_fd(p[0], buf, sizeof(buf)),
	    PF_EUSAGE);
	close(p[0]);
	assert_int_equal(pipe(p), 0);
	close(p[1]);
	assert_int_equal(pf_read_secret_fd(p[0], buf, sizeof(buf)),
	    PF_EUSAGE);
	close(p[0]);
}

static void
test_base64(void **state)
{
	uint8_t out[16];
	char *s;

	(void)state;
	/* RFC 4648 test vectors. */
	s = pf_base64_encode((const uint8_t *)"foobar", 6);
	assert_string_equal(s, "Zm9vYmFy");
	free(s);
	s = pf_base64_encode((const uint8_t *)"fo", 2);
	assert_string_equal(s, "Zm8=");
	free(s);
	s = pf_base64_encode((const uint8_t *)"", 0);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(pf_base64_decode("Zm9vYg==", out, sizeof(out)), 4);
	assert_memory_equal(out, "foob", 4);
	assert_int_equal(pf_base64_decode("", out, sizeof(out)), 0);
	/* Non-canonical or too long input is refused. */
	assert_int_equal(pf_base64_decode("Zm9vYg=", out, sizeof(out)), -1);
	assert_int_equal(pf_base64_decode("Zm9v Yg==", out, sizeof(out)), -1);
	assert_int_equal(pf_base64_decode("Zm=vYg==", out, sizeof(out)), -1);
	assert_int_equal(pf_base64_decode("Zm9vYmFy", out, 5), -1);
	assert_int_equal(pf_base64_decode("Zm9v!mFy", out, sizeof(out)), -1);
}

static void
test_hex(void **state)
{
	static const uint8_t bytes[] = { 0x00, 0xab, 0xff, 0x10 };
	char hex[9];
	uint8_t out[4];

	(void)state;
	pf_hex_encode(bytes, sizeof(bytes), hex);
	assert_string_equal(hex, "00abff10");
	assert_int_equal(pf_hex_decode("00ABff10", out, 4), 0);
	assert_memory_equal(out, bytes, 4);
	assert_int_equal(pf_hex_decode("00abff1", out, 4), -1);
	assert_int_equal(pf_hex_decode("00abff1g", out, 4), -1);
	assert_int_equal(pf_hex_decode("00abff1000", out, 4), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_uint),
		cmocka_unit_test(test_read_secret),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
