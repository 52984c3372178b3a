/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the frame codec, limits and chunk math of proto.c, and of
 * the CHUNK head and ACK codec of wire.c over a socketpair.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uuid/uuid.h>

#include "chunkhash.h"
#include "net.h"
#include "proto.h"
#include "wire.h"

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

static void
test_id_valid(void **state)
{
	static const char *const good[] = {
		"0b1f6c4e-3a2d-4f5e-8a9b-0c1d2e3f4a5b",
		"0B1F6C4E-3A2D-4F5E-8A9B-0C1D2E3F4A5B",
		"00000000-0000-0000-0000-000000000000",
		"ffffffff-FFFF-ffff-FFFF-ffffffffffff",
	};
	static const char *const bad[] = {
		"",
		"0b1f6c4e-3a2d-4f5e-8a9b-0c1d2e3f4a5",		/* 35 */
		"0b1f6c4e-3a2d-4f5e-8a9b-0c1d2e3f4a5b0",	/* 37 */
		"0b1f6c4e03a2d-4f5e-8a9b-0c1d2e3f4a5b",
		"0b1f6c4e-3a2d04f5e-8a9b-0c1d2e3f4a5b",
		"0b1f6c4e-3a2d-4f5e08a9b-0c1d2e3f4a5b",
		"0b1f6c4e-3a2d-4f5e-8a9b00c1d2e3f4a5b",
		"0b1f6c4e-3a2d-4f5e-8a9b-0c1d2e3f4a5g",
		"0b1f6c4-e3a2d-4f5e-8a9b-0c1d2e3f4a5b",
		" b1f6c4e-3a2d-4f5e-8a9b-0c1d2e3f4a5b",
		"{b1f6c4e-3a2d-4f5e-8a9b-0c1d2e3f4a5}",
		"../../../../../../../../../etc/pass",
	};

	(void)state;
	assert_false(proto_id_valid(NULL));
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(proto_id_valid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(proto_id_valid(bad[i]));
}

/* Exactly what uuid_parse accepts of 36 characters, as the server checks. */
static void
test_id_valid_as_uuid_parse(void **state)
{
	static const char alphabet[] = "0123456789abcdefABCDEF-gG /";
	char id[PROTO_ID_LEN + 1];
	unsigned seed = 0x5eed1d;
	unsigned accepted = 0;
	uuid_t uu;

	(void)state;
	for (int n = 0; n < 200000; n++) {
		for (int i = 0; i < PROTO_ID_LEN; i++) {
			bool dash = i == 8 || i == 13 || i == 18 || i == 23;

			seed = seed * 1103515245 + 12345;
			/* Mostly the right shape, so both answers occur. */
			if ((seed >> 16) % 64 != 0)
				id[i] = dash ? '-' : alphabet[(seed >> 8) % 22];
			else
				id[i] = alphabet[(seed >> 8) %
				    (sizeof(alphabet) - 1)];
		}
		id[PROTO_ID_LEN] = '\0';
		assert_int_equal(proto_id_valid(id), uuid_parse(id, uu) == 0);
		accepted += proto_id_valid(id);
	}
	print_message("# %u of 200000 ids accepted\n", accepted);
	assert_true(accepted > 1000 && accepted < 199000);
}

/* A connected pair: cl the client's end, sv the server's. */
static void
conn_pair(struct pf_conn **cl, struct pf_conn **sv)
{
	int fds[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_non_null(*cl = pf_conn_new_tcp(fds[0]));
	assert_non_null(*sv = pf_conn_new_tcp(fds[1]));
	pf_conn_set_timeout(*cl, 2000);
	pf_conn_set_timeout(*sv, 2000);
}

/* The server's side: header, length cap, then the chunk head. */
static enum pf_status
recv_chunk(struct pf_conn *sv, uint64_t size, uint32_t cs,
    struct proto_chunk_head *got)
{
	struct proto_header h;
	enum pf_status rc;

	if ((rc = wire_recv_header(sv, &h)) != PF_OK)
		return rc;
	assert_int_equal(h.type, PROTO_CHUNK);
	if ((rc = proto_check_length(&h, true, cs)) != PF_OK)
		return rc;
	return wire_recv_chunk_head(sv, &h, size, cs, got);
}

static void
test_wire_chunk_head_round_trip(void **state)
{
	const uint32_t cs = PROTO_MIN_CHUNK;
	const uint64_t size = 3 * (uint64_t)cs + 5;
	struct pf_conn *cl, *sv;
	struct proto_chunk_head got, last = { 3, 3 * (uint64_t)cs, 5 };
	uint8_t raw[PROTO_HEADER_LEN + PROTO_CHUNK_HEAD_LEN];
	struct proto_header h;

	(void)state;
	conn_pair(&cl, &sv);
	for (uint64_t i = 0; i < 4; i++) {
		struct proto_chunk_head ch = { i, i * cs,
		    proto_chunk_length(size, cs, i) };

		assert_int_equal(wire_send_chunk_head(cl, &ch), PF_OK);
		memset(&got, 0xee, sizeof(got));
		assert_int_equal(recv_chunk(sv, size, cs, &got), PF_OK);
		assert_int_equal(got.index, ch.index);
		assert_int_equal(got.offset, ch.offset);
		assert_int_equal(got.length, ch.length);
	}
	/* On the wire: one header announcing head + data + trailer. */
	assert_int_equal(wire_send_chunk_head(cl, &last), PF_OK);
	assert_int_equal(pf_conn_read_full(sv, raw, sizeof(raw)), PF_OK);
	assert_int_equal(proto_decode_header(raw, &h), PF_OK);
	assert_int_equal(h.length, PROTO_CHUNK_HEAD_LEN + 5 +
	    PROTO_CHUNK_TRAILER_LEN);
	proto_decode_chunk_head(raw + PROTO_HEADER_LEN, &got);
	assert_int_equal(got.index, 3);
	pf_conn_free(cl);
	pf_conn_free(sv);
}

/* Sends a CHUNK header of frame length len and the head ch, by hand. */
static void
send_raw_chunk(struct pf_conn *cl, uint32_t len,
    const struct proto_chunk_head *ch)
{
	struct proto_header h = { PROTO_VERSION, PROTO_CHUNK, 0, len };
	uint8_t raw[PROTO_HEADER_LEN + PROTO_CHUNK_HEAD_LEN];

	proto_encode_header(&h, raw);
	proto_encode_chunk_head(ch, raw + PROTO_HEADER_LEN);
	assert_int_equal(pf_conn_write_full(cl, raw, sizeof(raw)), PF_OK);
}

static void
test_wire_chunk_head_bad(void **state)
{
	const uint32_t cs = PROTO_MIN_CHUNK;
	const uint64_t size = 2 * (uint64_t)cs + 100;	/* 3 chunks */
	const uint32_t whole = PROTO_CHUNK_HEAD_LEN + PROTO_CHUNK_TRAILER_LEN;
	const struct {
		struct proto_chunk_head	ch;
		uint32_t		len;	/* frame length */
	} cases[] = {
		{ { 3, 3 * (uint64_t)cs, 100 }, whole + 100 },	/* index */
		{ { 1ull << 40, 0, cs }, whole + cs },		/* index */
		{ { 1, cs + 1, cs }, whole + cs },		/* offset */
		{ { 1, 0, cs }, whole + cs },			/* offset */
		{ { 1, cs, cs - 1 }, whole + cs - 1 },		/* length */
		{ { 2, 2 * (uint64_t)cs, cs }, whole + cs },	/* length */
		{ { 2, 2 * (uint64_t)cs, 100 }, whole + 101 },	/* frame */
		{ { 1, cs, cs }, whole + cs - 1 },		/* frame */
		{ { 0, 0, cs }, whole },			/* frame */
	};
	struct pf_conn *cl, *sv;
	struct proto_chunk_head got;
	struct proto_header h;

	(void)state;
	conn_pair(&cl, &sv);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		send_raw_chunk(cl, cases[i].len, &cases[i].ch);
		assert_int_equal(wire_recv_header(sv, &h), PF_OK);
		assert_int_equal(wire_recv_chunk_head(sv, &h, size, cs, &got),
		    PF_EBADFRAME);
	}
	/* Cut off inside the head: the read's error, not bad_frame. */
	{
		struct proto_header fh = { PROTO_VERSION, PROTO_CHUNK, 0,
		    whole + cs };
		uint8_t raw[PROTO_HEADER_LEN + 4] = { 0 };

		proto_encode_header(&fh, raw);
		assert_int_equal(pf_conn_write_full(cl, raw, sizeof(raw)),
		    PF_OK);
		pf_conn_free(cl);
		assert_int_equal(wire_recv_header(sv, &h), PF_OK);
		assert_int_equal(wire_recv_chunk_head(sv, &h, size, cs, &got),
		    PF_ENET);
	}
	pf_conn_free(sv);
}

static void
test_wire_ack(void **state)
{
	static const struct {
		int		type;
		uint64_t	index;
	} cases[] = {
		{ PROTO_ACK, 0 }, { PROTO_NACK, 7 },
		{ PROTO_ACK, PROTO_MAX_CHUNKS - 1 }, { PROTO_NACK, 1ull << 40 },
	};
	struct pf_conn *cl, *sv;
	uint8_t raw[PROTO_HEADER_LEN + 8];
	struct proto_header h;
	uint64_t index;
	char err[64];
	int type;

	(void)state;
	conn_pair(&cl, &sv);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(wire_send_ack(sv, cases[i].type,
		    cases[i].index), PF_OK);
		assert_int_equal(wire_expect_ack(cl, &type, &index, err,
		    sizeof(err)), PF_OK);
		assert_int_equal(type, cases[i].type);
		assert_int_equal(index, cases[i].index);
	}
	/* On the wire: a header of length 8, then the index big-endian. */
	assert_int_equal(wire_send_ack(sv, PROTO_NACK, 0x0102030405060708ull),
	    PF_OK);
	assert_int_equal(pf_conn_read_full(cl, raw, sizeof(raw)), PF_OK);
	assert_int_equal(proto_decode_header(raw, &h), PF_OK);
	assert_int_equal(h.type, PROTO_NACK);
	assert_int_equal(h.length, 8);
	assert_memory_equal(raw + PROTO_HEADER_LEN,
	    "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	pf_conn_free(cl);
	pf_conn_free(sv);
}

/*
 * PFC2 from Python (tests/integ/pfwire.py's pieces_digest): 100 bytes
 * (i * 7 % 251), files [0,10) [10,40) [45,70) [70,100), bytes 40-45
 * dead, chunks of 64. Chunk 0: two whole files, dead bytes, a part;
 * chunk 1: a part, a whole file.
 */
#define PFC2_CHUNK0 \
	"d0cfb4bdf8f1f98356c21020dce8023d08e81353f0bbded5cefcfd17d3e84092"
#define PFC2_CHUNK1 \
	"d973fc33fe26cf38f3bcc72bee32336a299be346b2459049f5604343d68871dd"
#define PFC2_WHOLE0 \
	"6490b7aa752bdeadcc2c26e4a38a6a06d79e89d82fb9f6f8ef8cd2d679fe59d0"
#define PFC2_WHOLE1 \
	"0306e512e763a768b1f55765ed6d7b1d62c3a855100d4337d973e04604fd0542"
#define PFC2_WHOLE3 \
	"81c878b178b5e5935e7799c47a37ac6e580f9f1f44ab4755b86fb905ae09c65c"

/* The bytes of the vectors above: i * 7 % 251. */
static void
pfc2_data(uint8_t data[100])
{
	for (size_t i = 0; i < 100; i++)
		data[i] = (uint8_t)(i * 7 % 251);
}

static const struct proto_span pfc2_spans[] = {
	{ 0, 10, 0 }, { 10, 30, 1 }, { 45, 25, 2 }, { 70, 30, 3 },
};

/* Hashes data[off..off+len) as chunk index, fed step bytes at a time. */
static void
pfc2_chunk(struct chunkhash *h, const uint8_t *data, uint64_t index,
    uint64_t off, uint32_t len, size_t step, const struct proto_span *sp,
    char hex[PF_SHA256_HEX])
{
	struct proto_chunk_head ch = { index, off, len };
	uint8_t d[PF_SHA256_LEN];

	assert_int_equal(chunkhash_begin(h, &ch, 64, sp, sp == NULL ? 0 : 4),
	    PF_OK);
	for (uint32_t pos = 0; pos < len; pos += (uint32_t)step) {
		size_t k = len - pos < step ? len - pos : step;

		assert_int_equal(chunkhash_update(h, data + off + pos, k),
		    PF_OK);
	}
	assert_int_equal(chunkhash_final(h, d), PF_OK);
	pf_hex_encode(d, sizeof(d), hex);
}

static void
test_chunkhash_pieces_vector(void **state)
{
	struct chunkhash *h = chunkhash_new();
	const struct chunkhash_whole *w;
	uint8_t data[100];
	char hex[PF_SHA256_HEX];
	size_t n;

	(void)state;
	assert_non_null(h);
	pfc2_data(data);
	/* Any cut of the bytes gives the same digest. */
	for (size_t step = 1; step <= 64; step += 7) {
		pfc2_chunk(h, data, 0, 0, 64, step, pfc2_spans, hex);
		assert_string_equal(hex, PFC2_CHUNK0);
		w = chunkhash_wholes(h, &n);
		assert_int_equal(n, 2);
		assert_int_equal(w[0].file, 0);
		pf_hex_encode(w[0].digest, PF_SHA256_LEN, hex);
		assert_string_equal(hex, PFC2_WHOLE0);
		assert_int_equal(w[1].file, 1);
		pf_hex_encode(w[1].digest, PF_SHA256_LEN, hex);
		assert_string_equal(hex, PFC2_WHOLE1);
		pfc2_chunk(h, data, 1, 64, 36, step, pfc2_spans, hex);
		assert_string_equal(hex, PFC2_CHUNK1);
		w = chunkhash_wholes(h, &n);
		assert_int_equal(n, 1);
		assert_int_equal(w[0].file, 3);
		pf_hex_encode(w[0].digest, PF_SHA256_LEN, hex);
		assert_string_equal(hex, PFC2_WHOLE3);
	}
	chunkhash_free(h);
}

/*
 * Files larger than a chunk, from pfwire.py too: 300 bytes
 * ((i * 13 + 5) % 251), chunks of 64, files [0,20), [64,214) (from a
 * chunk's start: its 3 own chunks whole in chunks 1-3) and [214,300)
 * (not: its own chunk 0 in two pieces, its last, [278,300), whole in
 * chunk 4).
 */
static const char *const pfc2_big[] = {
	"a45047e4509b973cba3dd323bfab9e22ed2823e0e35d66a23ddc60ec8b910993",
	"9de5fef390ee57f438cc6299af240dfecfb58a9719bfd832f2313d70ac06ebfe",
	"7bb6735aff8600b1fce811af1bf2647575fbab1b9b8a9f7cedb3e9e191ff1582",
	"471fb4b09a747b9a16ea7f93e6b8d94f828121fada4d5ddbe85aa31b10890fca",
	"603b09e9dcf8d2b3b5e94262364a772fb3437672e4ac2f31ee77aea20548076f",
};
static const char *const pfc2_big_own[] = {	/* of [64,214) */
	"70035f171970cb23faebb9663257b77dae97c130ff0c0c452406a8f62613b9d6",
	"3ad4ac96f74322d86e9f9e307f6d95a49ac4595d9b988e00a47e0396a5968bbf",
	"2657c40af1dba0681473a81bb85a7812eef0dcf831da0e54febfdebb3ee30f5d",
};

static void
test_chunkhash_pieces_big_files(void **state)
{
	static const struct proto_span sp[] = {
		{ 0, 20, 0 }, { 64, 150, 1 }, { 214, 86, 2 },
	};
	/* Per chunk: the file and own chunk whole in it, after file 0's. */
	static const int want_file[] = { 0, 1, 1, 1, 2 };
	static const int want_index[] = { 0, 0, 1, 2, 1 };
	struct chunkhash *h = chunkhash_new();
	const struct chunkhash_whole *w;
	uint8_t data[300], d[PF_SHA256_LEN];
	char hex[PF_SHA256_HEX];
	size_t n;

	(void)state;
	assert_non_null(h);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)((i * 13 + 5) % 251);
	for (uint32_t c = 0; c < 5; c++) {
		struct proto_chunk_head ch = { c, c * 64u, c < 4 ? 64 : 44 };

		assert_int_equal(chunkhash_begin(h, &ch, 64, sp, 3), PF_OK);
		assert_int_equal(chunkhash_update(h, data + ch.offset,
		    ch.length), PF_OK);
		assert_int_equal(chunkhash_final(h, d), PF_OK);
		pf_hex_encode(d, sizeof(d), hex);
		assert_string_equal(hex, pfc2_big[c]);
		w = chunkhash_wholes(h, &n);
		assert_int_equal(n, 1);
		assert_int_equal(w[0].file, want_file[c]);
		assert_int_equal(w[0].index, want_index[c]);
		if (w[0].file == 1) {
			pf_hex_encode(w[0].digest, PF_SHA256_LEN, hex);
			assert_string_equal(hex, pfc2_big_own[w[0].index]);
		}
	}
	chunkhash_free(h);
}

/* A whole file's piece digest is its own receipt's chunk digest. */
static void
test_chunkhash_whole_is_own_chunk(void **state)
{
	struct chunkhash *h = chunkhash_new();
	struct pf_sha256 *s = pf_sha256_new();
	struct proto_chunk_head own = { 0, 0, 30 };
	uint8_t data[100], d[PF_SHA256_LEN];
	const struct chunkhash_whole *w;
	char hex[PF_SHA256_HEX];
	size_t n;

	(void)state;
	assert_non_null(h);
	assert_non_null(s);
	pfc2_data(data);
	pfc2_chunk(h, data, 0, 0, 64, 64, pfc2_spans, hex);
	w = chunkhash_wholes(h, &n);
	assert_int_equal(n, 2);
	assert_int_equal(proto_chunk_digest_begin(s, &own), PF_OK);
	assert_int_equal(pf_sha256_update(s, data + 10, 30), PF_OK);
	assert_int_equal(pf_sha256_final(s, d), PF_OK);
	assert_memory_equal(w[1].digest, d, sizeof(d));
	pf_sha256_free(s);
	chunkhash_free(h);
}

/* Without spans it is PFC1, as proto_chunk_digest_begin makes it. */
static void
test_chunkhash_whole_chunk_is_pfc1(void **state)
{
	struct chunkhash *h = chunkhash_new();
	struct pf_sha256 *s = pf_sha256_new();
	struct proto_chunk_head ch = { 1, 64, 36 };
	uint8_t data[100], d[PF_SHA256_LEN], got[PF_SHA256_LEN];
	char hex[PF_SHA256_HEX], want[PF_SHA256_HEX];
	size_t n;

	(void)state;
	assert_non_null(h);
	assert_non_null(s);
	pfc2_data(data);
	pfc2_chunk(h, data, 1, 64, 36, 5, NULL, hex);
	(void)chunkhash_wholes(h, &n);
	assert_int_equal(n, 0);
	assert_int_equal(proto_chunk_digest_begin(s, &ch), PF_OK);
	assert_int_equal(pf_sha256_update(s, data + 64, 36), PF_OK);
	assert_int_equal(pf_sha256_final(s, d), PF_OK);
	pf_hex_encode(d, sizeof(d), want);
	assert_string_equal(hex, want);
	assert_string_not_equal(hex, PFC2_CHUNK1);
	/* Past its length, or short of it: refused. */
	assert_int_equal(chunkhash_begin(h, &ch, 64, pfc2_spans, 4), PF_OK);
	assert_int_equal(chunkhash_update(h, data, 37), PF_EBADFRAME);
	assert_int_equal(chunkhash_update(h, data, 35), PF_OK);
	assert_int_equal(chunkhash_final(h, got), PF_EBADFRAME);
	pf_sha256_free(s);
	chunkhash_free(h);
}

/* A file's own chunks come whole from aligned files and unsplit ones. */
static void
test_own_chunks_whole(void **state)
{
	(void)state;
	assert_true(proto_own_chunks_whole(0, 10, 4));	/* at a start */
	assert_true(proto_own_chunks_whole(8, 100, 4));
	assert_true(proto_own_chunks_whole(1, 3, 4));	/* within one */
	assert_true(proto_own_chunks_whole(5, 1, 4));
	assert_false(proto_own_chunks_whole(1, 4, 4));	/* across two */
	assert_false(proto_own_chunks_whole(5, 100, 4));
	assert_false(proto_own_chunks_whole(0, 0, 4));	/* no bytes */
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
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_id_valid_as_uuid_parse),
		cmocka_unit_test(test_wire_chunk_head_round_trip),
		cmocka_unit_test(test_wire_chunk_head_bad),
		cmocka_unit_test(test_wire_ack),
		cmocka_unit_test(test_chunkhash_pieces_vector),
		cmocka_unit_test(test_chunkhash_whole_is_own_chunk),
		cmocka_unit_test(test_chunkhash_pieces_big_files),
		cmocka_unit_test(test_chunkhash_whole_chunk_is_pfc1),
		cmocka_unit_test(test_own_chunks_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
