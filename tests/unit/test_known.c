/* SPDX-License-Identifier: MIT */
/* Unit tests of the known-servers file (trust on first use). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "known.h"

#define PIN_A	"sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define PIN_B	"sha256//BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="

static void
test_first_use_then_match_then_mismatch(void **state)
{
	char dir[] = "/tmp/pf-test-known-XXXXXX", file[128], old[64];
	char text[1024], cmd[256];
	enum known_verdict v;
	unsigned line = 0;
	struct stat sb;
	FILE *f;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	/* The state directory may not exist yet. */
	snprintf(file, sizeof(file), "%s/%s", dir, KNOWN_FILE_NAME);
	assert_int_equal(known_check(file, "127.0.0.1", 7878, PIN_A, &v, old,
	    &line), PF_OK);
	assert_int_equal(v, KNOWN_NEW);
	assert_int_equal(stat(file, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(known_check(file, "127.0.0.1", 7878, PIN_A, &v, old,
	    &line), PF_OK);
	assert_int_equal(v, KNOWN_MATCH);
	/* Another port of the same host is another server. */
	assert_int_equal(known_check(file, "127.0.0.1", 9000, PIN_B, &v, old,
	    &line), PF_OK);
	assert_int_equal(v, KNOWN_NEW);
	assert_int_equal(known_check(file, "::1", 7878, PIN_B, &v, old,
	    &line), PF_OK);
	assert_int_equal(v, KNOWN_NEW);
	/* A new key on a known server: refused, naming the line. */
	assert_int_equal(known_check(file, "127.0.0.1", 7878, PIN_B, &v, old,
	    &line), PF_OK);
	assert_int_equal(v, KNOWN_MISMATCH);
	assert_string_equal(old, PIN_A);
	f = fopen(file, "r");
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_non_null(strstr(text, "\n127.0.0.1:7878 " PIN_A "\n"));
	assert_non_null(strstr(text, "\n[::1]:7878 " PIN_B "\n"));
	/* That line is the one named. */
	snprintf(cmd, sizeof(cmd), "sed -n %up '%s' | "
	    "grep -q '^127.0.0.1:7878 '", line, file);
	assert_int_equal(system(cmd), 0);
	/* Deleted, the new key is taken. */
	snprintf(cmd, sizeof(cmd), "sed -i %ud '%s'", line, file);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(known_check(file, "127.0.0.1", 7878, PIN_B, &v, old,
	    &line), PF_OK);
	assert_int_equal(v, KNOWN_NEW);
	assert_int_equal(known_check(file, "127.0.0.1", 7878, PIN_B, &v, old,
	    &line), PF_OK);
	assert_int_equal(v, KNOWN_MATCH);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void
test_unwritable(void **state)
{
	enum known_verdict v;
	char old[64];
	unsigned line;

	(void)state;
	assert_int_equal(known_check("/proc/nonexistent/dir/known", "h", 1,
	    PIN_A, &v, old, &line), PF_EIO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_use_then_match_then_mismatch),
		cmocka_unit_test(test_unwritable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
