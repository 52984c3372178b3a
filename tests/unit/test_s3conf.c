/* SPDX-License-Identifier: MIT */
/* Unit tests of the S3 settings' checks (s3conf.c): targets and endpoints. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "s3.h"

/* A config that passes, with target and endpoint as given. */
static enum pf_status
check(const char *target, const char *endpoint, const char *region,
    char *prefix, size_t cap)
{
	struct s3_config cfg = { 0 };
	enum pf_status rc;

	s3_config_defaults(&cfg);
	cfg.endpoint = strdup(endpoint);
	cfg.region = strdup(region);
	cfg.access_key = strdup("AK");
	cfg.secret_key = strdup("SK");
	if ((rc = s3_config_target(&cfg, target)) == PF_OK) {
		rc = s3_config_check(&cfg);
		if (prefix != NULL)
			snprintf(prefix, cap, "%s", cfg.prefix);
	}
	s3_config_clear(&cfg);
	return rc;
}

static void
test_targets(void **state)
{
	static const struct {
		const char	*target, *prefix;
	} good[] = {
		{ "s3://bkt", "" },
		{ "s3://bkt/", "" },
		{ "s3://bkt/a", "a/" },
		{ "s3://bkt/a/b/", "a/b/" },
		{ "s3://my.bucket-1/uploads 2026/x", "uploads 2026/x/" },
		{ "s3://b-0", "" },
	};
	static const char *bad[] = {
		"bkt/a", "s3:/bkt", "S3://bkt", "s3://", "s3://ab",
		"s3://Bkt", "s3://bk_t", "s3://-bkt", "s3://bkt-",
		"s3://bk..t", "s3://192.168.1.1", "s3://bkt//a",
		"s3://bkt/a//b", "s3://bkt/./a", "s3://bkt/a/..",
		"s3://bkt/a\nb", "s3://bkt/\x7f",
		/* 64 characters: one too many. */
		("s3://a2345678901234567890123456789012345678901234567890"
		    "12345678901234"),
	};
	char prefix[64];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(check(good[i].target, "http://h:1",
		    "us-east-1", prefix, sizeof(prefix)), PF_OK);
		assert_string_equal(prefix, good[i].prefix);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check(bad[i], "http://h:1", "us-east-1",
		    NULL, 0), PF_EUSAGE);
}

static void
test_endpoints(void **state)
{
	static const char *good[] = {
		"http://127.0.0.1:8000", "https://s3.example.org",
		"http://[::1]:7480", "http://rgw", "https://h:65535",
	};
	static const char *bad[] = {
		"127.0.0.1:8000", "ftp://h", "http://", "http://h/",
		"http://h/path", "http://h?x=1", "http://user:pw@h",
		"http://h:0", "http://h:65536", "http://h:x", "http://h:",
		"http://:80", "http://[::1", "http://[::1]x",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(check("s3://bkt", good[i], "us-east-1", NULL,
		    0), PF_OK);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(check("s3://bkt", bad[i], "us-east-1", NULL,
		    0), PF_EUSAGE);
}

/* The region goes into libcurl's "aws:amz:REGION:s3": no ':' in it. */
static void
test_regions(void **state)
{
	assert_int_equal(check("s3://bkt", "http://h", "eu-west-1", NULL, 0),
	    PF_OK);
	assert_int_equal(check("s3://bkt", "http://h", "default", NULL, 0),
	    PF_OK);
	assert_int_equal(check("s3://bkt", "http://h", "a:b", NULL, 0),
	    PF_EUSAGE);
	assert_int_equal(check("s3://bkt", "http://h", "", NULL, 0),
	    PF_EUSAGE);
	assert_int_equal(check("s3://bkt", "http://h",
	    "a23456789012345678901234567890123", NULL, 0), PF_EUSAGE);
}

static void
test_limits(void **state)
{
	struct s3_config cfg = { 0 };

	s3_config_defaults(&cfg);
	cfg.endpoint = strdup("http://h");
	cfg.region = strdup("us-east-1");
	assert_int_equal(s3_config_target(&cfg, "s3://bkt/p"), PF_OK);
	assert_int_equal(s3_config_check(&cfg), PF_EUSAGE);	/* no keys */
	cfg.access_key = strdup("AK");
	cfg.secret_key = strdup("SK");
	assert_int_equal(s3_config_check(&cfg), PF_OK);
	cfg.attempts = 0;
	assert_int_equal(s3_config_check(&cfg), PF_EUSAGE);
	cfg.attempts = 3;
	cfg.page = 1001;
	assert_int_equal(s3_config_check(&cfg), PF_EUSAGE);
	s3_config_clear(&cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_regions),
		cmocka_unit_test(test_limits),
	};

	pf_log_set_level(PF_LOG_NONE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
