/* SPDX-License-Identifier: MIT */
/* Unit tests of the S3 session store's pure parts (s3rec.c). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s3store.h"

#define MiB (1024u * 1024)

static struct s3store_record
rec_of(const char *id, const char *name, uint64_t size, uint32_t chunk)
{
	struct s3store_record r = { 0 };

	strcpy(r.id, id);
	strcpy(r.name, name);
	strcpy(r.user, "alice");
	strcpy(r.upload, "2~abc");
	r.size = size;
	r.chunk_size = chunk;
	return r;
}

/* Keys under PREFIX.pf/s/ID/, and the object under PREFIX files/ID/. */
static void
test_keys(void **state)
{
	struct s3store_record r = rec_of("0f1e-42", "data.bin", 1, 8 * MiB);
	char k[S3_KEY_MAX + 1];

	(void)state;
	assert_true(s3store_key(k, sizeof(k), "t/", &r, "record"));
	assert_string_equal(k, "t/.pf/s/0f1e-42/record");
	assert_true(s3store_key(k, sizeof(k), "", &r, "claim/7"));
	assert_string_equal(k, ".pf/s/0f1e-42/claim/7");
	assert_true(s3store_key(k, sizeof(k), "t/", &r, ""));
	assert_string_equal(k, "t/.pf/s/0f1e-42/");
	assert_true(s3store_key(k, sizeof(k), "t/", &r, NULL));
	assert_string_equal(k, "t/files/0f1e-42/data.bin");
	assert_false(s3store_key(k, 10, "t/", &r, "record"));
}

/* Ids and names that would leave their place in the bucket. */
static void
test_refused(void **state)
{
	struct s3store_record r;
	char k[S3_KEY_MAX + 1];

	(void)state;
	assert_false(s3store_id_ok(""));
	assert_false(s3store_id_ok("a/b"));
	assert_false(s3store_id_ok(".."));
	assert_false(s3store_id_ok("a b"));
	assert_true(s3store_id_ok("6f9619ff-8b86-d011-b42d-00cf4fc964ff"));
	assert_false(s3store_name_ok("."));
	assert_false(s3store_name_ok(".."));
	assert_false(s3store_name_ok("a/b"));
	assert_false(s3store_name_ok("a\nb"));
	assert_false(s3store_name_ok(""));
	assert_true(s3store_name_ok("a b+c.txt"));
	r = rec_of("x", "../up", 1, 8 * MiB);
	assert_false(s3store_key(k, sizeof(k), "", &r, NULL));
	r = rec_of("x/..", "up", 1, 8 * MiB);
	assert_false(s3store_key(k, sizeof(k), "", &r, "record"));
}

static void
test_sums(void **state)
{
	uint8_t d[PF_SHA256_LEN], want[PF_SHA256_LEN];
	char leaf[128], hex[2 * PF_SHA256_LEN + 1];
	uint32_t i;

	(void)state;
	memset(want, 0xab, sizeof(want));
	pf_hex_encode(want, sizeof(want), hex);
	snprintf(leaf, sizeof(leaf), "9999.%s", hex);
	assert_true(s3store_parse_sum(leaf, &i, d));
	assert_int_equal(i, 9999);
	assert_memory_equal(d, want, sizeof(d));
	snprintf(leaf, sizeof(leaf), "0.%s", hex);
	assert_true(s3store_parse_sum(leaf, &i, d));
	assert_int_equal(i, 0);
	snprintf(leaf, sizeof(leaf), "10000.%s", hex);	/* past the parts */
	assert_false(s3store_parse_sum(leaf, &i, d));
	snprintf(leaf, sizeof(leaf), "07.%s", hex);	/* not canonical */
	assert_false(s3store_parse_sum(leaf, &i, d));
	snprintf(leaf, sizeof(leaf), "-1.%s", hex);
	assert_false(s3store_parse_sum(leaf, &i, d));
	snprintf(leaf, sizeof(leaf), "3.%.63s", hex);	/* short */
	assert_false(s3store_parse_sum(leaf, &i, d));
	snprintf(leaf, sizeof(leaf), "3.%.63sg", hex);
	assert_false(s3store_parse_sum(leaf, &i, d));
	assert_false(s3store_parse_sum(".", &i, d));
	assert_false(s3store_parse_sum("3", &i, d));
}

/* The bitmap from ListParts: only parts of the session with the size
   their chunk must have. */
static void
test_bitmap(void **state)
{
	struct s3store_record r = rec_of("x", "f", 2 * 8 * MiB + 5, 8 * MiB);
	uint8_t bm[2] = { 0 };

	(void)state;
	assert_int_equal(s3store_nchunks(&r), 3);
	assert_int_equal(s3store_chunk_len(&r, 2), 5);
	assert_int_equal(s3store_chunk_len(&r, 3), 0);
	assert_true(s3store_mark_part(&r, bm, 1, 8 * MiB));
	assert_true(s3store_mark_part(&r, bm, 3, 5));
	assert_false(s3store_mark_part(&r, bm, 2, 5));	/* short */
	assert_false(s3store_mark_part(&r, bm, 4, 5));	/* past the end */
	assert_false(s3store_mark_part(&r, bm, 0, 0));
	assert_int_equal(bm[0], 0x5);
	assert_int_equal(bm[1], 0);
	r = rec_of("x", "f", 0, 8 * MiB);
	assert_int_equal(s3store_nchunks(&r), 1);
	r = rec_of("x", "f", 10000ull * 8 * MiB + 1, 8 * MiB);
	assert_int_equal(s3store_nchunks(&r), 10001);
}

static void
test_record(void **state)
{
	struct s3store_record r = rec_of("ab-12", "a \"b\".txt", 12345,
	    8 * MiB), back;
	const char *bad;
	char *text;

	(void)state;
	r.created = 1700000000;
	r.head_len = 3;
	memcpy(r.head, "\x7f" "EL", 3);
	assert_non_null(text = s3store_record_encode(&r));
	assert_int_equal(s3store_record_decode(text, strlen(text), &back),
	    PF_OK);
	assert_string_equal(back.id, r.id);
	assert_string_equal(back.user, r.user);
	assert_string_equal(back.name, r.name);
	assert_string_equal(back.upload, r.upload);
	assert_true(back.size == r.size && back.created == r.created);
	assert_int_equal(back.chunk_size, r.chunk_size);
	assert_int_equal(back.head_len, 3);
	assert_memory_equal(back.head, r.head, 3);
	assert_false(back.deleting);
	assert_null(strstr(text, "deleting"));	/* a live record as before */
	free(text);
	/* A tombstone says so, and reads back as one. */
	r.deleting = true;
	assert_non_null(text = s3store_record_encode(&r));
	assert_int_equal(s3store_record_decode(text, strlen(text), &back),
	    PF_OK);
	assert_true(back.deleting);
	assert_string_equal(back.id, r.id);
	free(text);
	assert_int_equal(s3store_record_decode("{}", 2, &back), PF_EIO);
	assert_int_equal(s3store_record_decode("nope", 4, &back), PF_EIO);
	bad = "{\"v\":1,\"id\":\"x\",\"user\":\"u\",\"name\":\"../x\","
	    "\"size\":1,\"chunk_size\":1,\"head\":\"\",\"created\":0,"
	    "\"upload\":\"u\"}";
	assert_int_equal(s3store_record_decode(bad, strlen(bad), &back),
	    PF_EIO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_sums),
		cmocka_unit_test(test_bitmap),
		cmocka_unit_test(test_record),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
