/* SPDX-License-Identifier: MIT */
/* Unit tests of the frame codec, limits and chunk math of proto.c. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

/* From Python: hashlib.sha256(b"PFR1" + pack(">QI", ...) + ...). */
#define RECEIPT_HELLO \
	"33c7fbf77f0dea4b0b86d724d145b072242bcf5e173d02f988cbd745a6e5b909"
#define RECEIPT_EMPTY \
	"854ee65017460df1aad004f44fc7811ae35c162ef06607b8877ce272364a2fcd"

static void
encode(int type, uint32_t len, uint8_t out[PROTO_HEADER_LEN])
{
	struct proto_header h = { PROTO_VERSION, (uint8_t)type, 0, len };

	proto_encode_header(&h, out);
}

static void
test_header_round_trip(void **state)
{
	uint8_t buf[PROTO_HEADER_LEN];
	struct proto_header h;

	(void)state;
	for (int t = 1; t <= PROTO_TYPE_MAX; t++) {
		encode(t, 0xdeadbeefu, buf);
		assert_memory_equal(buf, "PFLW", 4);
		assert_int_equal(proto_decode_header(buf, &h), PF_OK);
		assert_int_equal(h.type, t);
		assert_int_equal(h.version, PROTO_VERSION);
		assert_int_equal(h.flags, 0);
		assert_int_equal(h.length, 0xdeadbeefu);
	}
}

/* Every single-bit flip of a header is caught: no damaged header passes. */
static void
test_header_every_bit_flip_refused(void **state)
{
	uint8_t good[PROTO_HEADER_LEN], bad[PROTO_HEADER_LEN];
	struct proto_header h;

	(void)state;
	encode(PROTO_CHUNK, 4 * 1024 * 1024 + 52, good);
	for (int bit = 0; bit < PROTO_HEADER_LEN * 8; bit++) {
		memcpy(bad, good, sizeof(bad));
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_not_equal(proto_decode_header(bad, &h), PF_OK);
	}
}

static void
test_header_malformed(void **state)
{
	uint8_t buf[PROTO_HEADER_LEN];
	struct proto_header h = { PROTO_VERSION, PROTO_OPEN, 0, 10 };

	(void)state;
	/* Valid check over a wrong version: unsupported_version. */
	h.version = 2;
	proto_encode_header(&h, buf);
	assert_int_equal(proto_decode_header(buf, &h), PF_EVERSION);
	/* Unknown flags, type 0 and a type past the last: bad_frame. */
	h = (struct proto_header){ PROTO_VERSION, PROTO_OPEN, 1, 10 };
	proto_encode_header(&h, buf);
	assert_int_equal(proto_decode_header(buf, &h), PF_EBADFRAME);
	h = (struct proto_header){ PROTO_VERSION, 0, 0, 10 };
	proto_encode_header(&h, buf);
	assert_int_equal(proto_decode_header(buf, &h), PF_EBADFRAME);
	h = (struct proto_header){ PROTO_VERSION, PROTO_TYPE_MAX + 1, 0, 1 };
	proto_encode_header(&h, buf);
	assert_int_equal(proto_decode_header(buf, &h), PF_EBADFRAME);
	/* Wrong magic. */
	encode(PROTO_OPEN, 10, buf);
	memcpy(buf, "HTTP", 4);
	assert_int_equal(proto_decode_header(buf, &h), PF_EBADFRAME);
	/* All zeros. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(proto_decode_header(buf, &h), PF_EBADFRAME);
}

static void
test_length_caps(void **state)
{
	struct proto_header h = { PROTO_VERSION, PROTO_AUTH, 0, 0 };
	const uint32_t cs = PROTO_DEFAULT_CHUNK;

	(void)state;
	h.length = PROTO_MAX_JSON_PREAUTH;
	assert_int_equal(proto_check_length(&h, false, 0), PF_OK);
	h.length++;
	assert_int_equal(proto_check_length(&h, false, 0), PF_ETOOLARGE);
	assert_int_equal(proto_check_length(&h, true, 0), PF_OK);
	h.length = PROTO_MAX_JSON + 1;
	assert_int_equal(proto_check_length(&h, true, 0), PF_ETOOLARGE);
	h.length = UINT32_MAX;
	assert_int_equal(proto_check_length(&h, true, 0), PF_ETOOLARGE);

	h.type = PROTO_CHUNK;
	h.length = 20 + cs + 32;
	assert_int_equal(proto_check_length(&h, true, cs), PF_OK);
	h.length++;
	assert_int_equal(proto_check_length(&h, true, cs), PF_ETOOLARGE);
	h.length = UINT32_MAX;
	assert_int_equal(proto_check_length(&h, true, cs), PF_ETOOLARGE);
	h.length = 51;
	assert_int_equal(proto_check_length(&h, true, cs), PF_EBADFRAME);
	h.length = 52;
	assert_int_equal(proto_check_length(&h, true, 0), PF_EPROTO);

	h.type = PROTO_ACK;
	h.length = 8;
	assert_int_equal(proto_check_length(&h, true, 0), PF_OK);
	h.length = 9;
	assert_int_equal(proto_check_length(&h, true, 0), PF_EBADFRAME);
}

static void
test_chunk_size_valid(void **state)
{
	(void)state;
	assert_true(proto_chunk_size_valid(PROTO_MIN_CHUNK));
	assert_true(proto_chunk_size_valid(PROTO_DEFAULT_CHUNK));
	assert_true(proto_chunk_size_valid(PROTO_MAX_CHUNK));
	assert_false(proto_chunk_size_valid(0));
	assert_false(proto_chunk_size_valid(PROTO_MIN_CHUNK / 2));
	assert_false(proto_chunk_size_valid(PROTO_MAX_CHUNK * 2ull));
	assert_false(proto_chunk_size_valid(PROTO_DEFAULT_CHUNK + 1));
	assert_false(proto_chunk_size_valid(UINT64_MAX));
	assert_false(proto_chunk_size_valid(1ull << 63));
}

static void
test_chunk_count_edges(void **state)
{
	const uint32_t cs = PROTO_DEFAULT_CHUNK;
	uint32_t n;

	(void)state;
	assert_int_equal(proto_chunk_count(0, cs, &n), PF_OK);
	assert_int_equal(n, 0);
	assert_int_equal(proto_chunk_count(1, cs, &n), PF_OK);
	assert_int_equal(n, 1);
	assert_int_equal(proto_chunk_count(cs - 1, cs, &n), PF_OK);
	assert_int_equal(n, 1);
	assert_int_equal(proto_chunk_count(cs, cs, &n), PF_OK);
	assert_int_equal(n, 1);
	assert_int_equal(proto_chunk_count(cs + 1ull, cs, &n), PF_OK);
	assert_int_equal(n, 2);
	assert_int_equal(proto_chunk_count((uint64_t)PROTO_MAX_CHUNKS * cs, cs,
	    &n), PF_OK);
	assert_int_equal(n, PROTO_MAX_CHUNKS);
	assert_int_equal(proto_chunk_count((uint64_t)PROTO_MAX_CHUNKS * cs + 1,
	    cs, &n), PF_ETOOLARGE);
	assert_int_equal(proto_chunk_count(UINT64_MAX, PROTO_MIN_CHUNK, &n),
	    PF_ETOOLARGE);
	assert_int_equal(proto_chunk_count(UINT64_MAX, PROTO_MAX_CHUNK, &n),
	    PF_ETOOLARGE);
}

static void
test_check_chunk(void **state)
{
	const uint32_t cs = PROTO_DEFAULT_CHUNK;
	const uint64_t size = 2ull * cs + 5;
	struct proto_chunk_head c;

	(void)state;
	c = (struct proto_chunk_head){ 0, 0, cs };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_OK);
	c = (struct proto_chunk_head){ 2, 2ull * cs, 5 };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_OK);
	/* Index past the end, wrong offset, wrong length. */
	c = (struct proto_chunk_head){ 3, 3ull * cs, 5 };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_EBADFRAME);
	c = (struct proto_chunk_head){ 1, 0, cs };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_EBADFRAME);
	c = (struct proto_chunk_head){ 2, 2ull * cs, 6 };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_EBADFRAME);
	c = (struct proto_chunk_head){ 1, cs, cs - 1 };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_EBADFRAME);
	/* Huge index whose product with the chunk size would wrap. */
	c = (struct proto_chunk_head){ UINT64_MAX / cs + 1, 0, cs };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_EBADFRAME);
	c = (struct proto_chunk_head){ UINT64_MAX, UINT64_MAX, UINT32_MAX };
	assert_int_equal(proto_check_chunk(&c, size, cs), PF_EBADFRAME);
	/* An empty file has no chunk at all. */
	c = (struct proto_chunk_head){ 0, 0, 0 };
	assert_int_equal(proto_check_chunk(&c, 0, cs), PF_EBADFRAME);
}

static void
test_chunk_head_round_trip(void **state)
{
	struct proto_chunk_head in = { 0x0102030405060708ull,
	    0x1112131415161718ull, 0x21222324u }, out;
	uint8_t buf[PROTO_CHUNK_HEAD_LEN];
	static const uint8_t want[PROTO_CHUNK_HEAD_LEN] = {
		1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
		0x17, 0x18, 0x21, 0x22, 0x23, 0x24
	};

	(void)state;
	proto_encode_chunk_head(&in, buf);
	assert_memory_equal(buf, want, sizeof(want));
	proto_decode_chunk_head(buf, &out);
	assert_true(out.index == in.index && out.offset == in.offset &&
	    out.length == in.length);
}

/* The chunk digest covers index, offset and length, not just the data. */
static void
test_chunk_digest_binds_position(void **state)
{
	struct pf_sha256 *h = pf_sha256_new();
	struct proto_chunk_head a = { 1, PROTO_MIN_CHUNK, 3 }, b = a;
	uint8_t da[PF_SHA256_LEN], db[PF_SHA256_LEN], plain[PF_SHA256_LEN];

	(void)state;
	assert_non_null(h);
	assert_int_equal(proto_chunk_digest_begin(h, &a), PF_OK);
	assert_int_equal(pf_sha256_update(h, "abc", 3), PF_OK);
	assert_int_equal(pf_sha256_final(h, da), PF_OK);
	b.index = 2;
	assert_int_equal(proto_chunk_digest_begin(h, &b), PF_OK);
	assert_int_equal(pf_sha256_update(h, "abc", 3), PF_OK);
	assert_int_equal(pf_sha256_final(h, db), PF_OK);
	assert_memory_not_equal(da, db, sizeof(da));
	assert_int_equal(pf_sha256("abc", 3, plain), PF_OK);
	assert_memory_not_equal(da, plain, sizeof(da));
	pf_sha256_free(h);
}

/*
 * A fixed vector: the receipt of a 5-byte file "hello" with 64 KiB chunks,
 * computed independently with Python's hashlib from docs/protocol.md.
 */
static void
test_receipt_vector(void **state)
{
	struct pf_sha256 *h = pf_sha256_new();
	struct proto_chunk_head c = { 0, 0, 5 };
	uint8_t d[PF_SHA256_LEN], r[PF_SHA256_LEN];
	char hex[PF_SHA256_HEX];

	(void)state;
	assert_int_equal(proto_chunk_digest_begin(h, &c), PF_OK);
	assert_int_equal(pf_sha256_update(h, "hello", 5), PF_OK);
	assert_int_equal(pf_sha256_final(h, d), PF_OK);
	assert_int_equal(proto_receipt(5, PROTO_MIN_CHUNK, d, 1, r), PF_OK);
	pf_hex_encode(r, sizeof(r), hex);
	assert_string_equal(hex, RECEIPT_HELLO);
	/* The empty file's receipt hashes only the prefix. */
	assert_int_equal(proto_receipt(0, PROTO_DEFAULT_CHUNK, NULL, 0, r),
	    PF_OK);
	pf_hex_encode(r, sizeof(r), hex);
	assert_string_equal(hex, RECEIPT_EMPTY);
	pf_sha256_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_header_every_bit_flip_refused),
		cmocka_unit_test(test_header_malformed),
		cmocka_unit_test(test_length_caps),
		cmocka_unit_test(test_chunk_size_valid),
		cmocka_unit_test(test_chunk_count_edges),
		cmocka_unit_test(test_check_chunk),
		cmocka_unit_test(test_chunk_head_round_trip),
		cmocka_unit_test(test_chunk_digest_binds_position),
		cmocka_unit_test(test_receipt_vector),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
