/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the session state machine: chunk claims, commit with a
 * right and a wrong receipt, ends that only a receiving session takes,
 * the bytes a session holds reserved, and the change generation the
 * gateway's list cache relies on.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"
#include "session.h"
#include "storage.h"

#define CS	PROTO_MIN_CHUNK
#define CHUNKS	3

static char dir[64];
static struct storage *storage;
static uint8_t file[CHUNKS * CS];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pf-session.XXXXXX");
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(file); i++)
		file[i] = (uint8_t)(i * 7 + i / CS);
	return storage_open(dir, STORAGE_SYNC_FULL, &storage) == PF_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	storage_close(storage);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

/* A new, opened session for file; the caller unrefs it. */
static struct session *
opened(void)
{
	struct session *s;
	struct session_file f = { .name = "f.bin",
	    .client_name = "f.bin", .client_name_len = 5, .peer = "test",
	    .size = sizeof(file), .chunk_size = CS, .head = file,
	    .headlen = PROTO_HEAD_LEN };

	assert_int_equal(session_new(CHUNKS, NULL, "alice", sizeof(file), &s),
	    PF_OK);
	assert_int_equal(session_open(s, storage, &f), PF_OK);
	assert_true(session_ready(s));
	assert_int_equal(session_state(s), SESSION_RECEIVING);
	return s;
}

/* Claims, writes and makes durable chunk i; its digest goes to d. */
static void
put_chunk(struct session *s, uint32_t i, uint8_t d[PF_SHA256_LEN])
{
	struct proto_chunk_head ch = { i, (uint64_t)i * CS, CS };
	struct pf_sha256 *h = pf_sha256_new();
	bool resent;

	assert_int_equal(session_claim_chunk(s, i, &resent), SESSION_CLAIMED);
	assert_int_equal(session_write_chunk(s, ch.offset, file + ch.offset,
	    CS), PF_OK);
	assert_int_equal(proto_chunk_digest_begin(h, &ch), PF_OK);
	assert_int_equal(pf_sha256_update(h, file + ch.offset, CS), PF_OK);
	assert_int_equal(pf_sha256_final(h, d), PF_OK);
	pf_sha256_free(h);
	assert_int_equal(session_done_chunk(s, i, d), PF_OK);
}

static void
test_claims(void **state)
{
	struct session *s = opened();
	uint8_t d[PF_SHA256_LEN];
	bool resent;

	(void)state;
	assert_int_equal(session_claim_chunk(s, 1, &resent), SESSION_CLAIMED);
	assert_false(resent);
	assert_int_equal(session_claim_chunk(s, 1, &resent), SESSION_BUSY);
	session_release_chunk(s, 1, true);
	assert_int_equal(session_chunks_nacked(s), 1);
	session_release_chunk(s, 1, false);
	put_chunk(s, 0, d);
	assert_int_equal(session_chunks_acked(s), 1);
	assert_int_equal(session_claim_chunk(s, 0, &resent), SESSION_HELD);
	assert_true(resent);
	assert_int_equal(session_chunks_duplicate(s), 1);
	/* Chunk 1 was tried before: claimed again, it counts as re-sent. */
	assert_int_equal(session_claim_chunk(s, 1, &resent), SESSION_CLAIMED);
	assert_true(resent);
	assert_true(session_end(s, SESSION_CANCELLED, PF_ECANCELLED));
	session_unref(s);
}

static void
test_commit(void **state)
{
	struct session *s = opened();
	uint8_t d[CHUNKS * PF_SHA256_LEN], receipt[PF_SHA256_LEN];
	char path[256];

	(void)state;
	/* What counts against the user's share: declared, not yet held. */
	assert_int_equal(session_reserved(s), sizeof(file));
	for (uint32_t i = 0; i < CHUNKS; i++) {
		put_chunk(s, i, d + i * PF_SHA256_LEN);
		assert_int_equal(session_reserved(s), (CHUNKS - 1 - i) * CS);
	}
	assert_int_equal(proto_receipt(sizeof(file), CS, d, CHUNKS, receipt),
	    PF_OK);
	assert_int_equal(session_commit(s, receipt, NULL), PF_OK);
	assert_int_equal(session_state(s), SESSION_COMPLETE);
	assert_int_equal(strlen(session_receipt(s)), 64);
	snprintf(path, sizeof(path), "%s/%s/f.bin", dir, session_id(s));
	assert_int_equal(access(path, F_OK), 0);
	/* Done is done: nothing ends it any more. */
	assert_false(session_end(s, SESSION_CANCELLED, PF_ECANCELLED));
	assert_int_equal(session_commit(s, receipt, NULL), PF_ECANCELLED);
	session_unref(s);
}

static void
test_wrong_receipt_fails(void **state)
{
	struct session *s = opened();
	uint8_t d[PF_SHA256_LEN], wrong[PF_SHA256_LEN] = { 1 };

	(void)state;
	for (uint32_t i = 0; i < CHUNKS; i++)
		put_chunk(s, i, d);
	assert_int_equal(session_commit(s, wrong, NULL), PF_ECHECKSUM);
	assert_int_equal(session_state(s), SESSION_FAILED);
	assert_int_equal(session_error(s), PF_ECHECKSUM);
	assert_false(session_end(s, SESSION_CANCELLED, PF_ECANCELLED));
	session_unref(s);
}

static void
test_end_once(void **state)
{
	struct session *s = opened();
	uint8_t receipt[PF_SHA256_LEN] = { 0 };

	(void)state;
	assert_true(session_end(s, SESSION_EXPIRED, PF_ENOSESSION));
	assert_int_equal(session_state(s), SESSION_EXPIRED);
	assert_int_equal(session_error(s), PF_ENOSESSION);
	assert_int_equal(session_reserved(s), 0);
	assert_false(session_end(s, SESSION_FAILED, PF_EIO));
	assert_int_equal(session_error(s), PF_ENOSESSION);
	assert_int_equal(session_commit(s, receipt, NULL), PF_ECANCELLED);
	session_unref(s);
}

/* The generation moved since *g (then *g is the new one). */
static bool
moved(uint64_t *g)
{
	uint64_t now = session_generation();
	bool yes = now > *g;

	*g = now;
	return yes;
}

/*
 * Every change a list shows at chunk granularity moves the generation,
 * after it is made: a session ready, a stream, each chunk ACKed, NACKed
 * or sent again, the state and its error. Bytes of a chunk arriving do
 * not (the gateway's monitor covers them).
 */
static void
test_generation(void **state)
{
	uint64_t g = session_generation();
	struct session *s = opened();
	uint8_t d[PF_SHA256_LEN];
	bool resent;

	(void)state;
	assert_true(moved(&g));
	session_attach(s, false);
	assert_true(moved(&g));
	assert_int_equal(session_claim_chunk(s, 0, &resent), SESSION_CLAIMED);
	session_count_bytes(s, CS / 2);
	assert_false(moved(&g));
	session_release_chunk(s, 0, true);
	assert_true(moved(&g));
	assert_int_equal(session_claim_chunk(s, 0, &resent), SESSION_CLAIMED);
	assert_true(resent);
	assert_true(moved(&g));
	session_release_chunk(s, 0, false);
	put_chunk(s, 0, d);
	assert_true(moved(&g));
	session_detach(s, false);
	assert_true(moved(&g));
	assert_true(session_end(s, SESSION_CANCELLED, PF_ECANCELLED));
	assert_true(moved(&g));
	/* Nothing changed: nothing moves. */
	assert_false(session_end(s, SESSION_FAILED, PF_EIO));
	assert_false(moved(&g));
	session_unref(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_receipt_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_once, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_generation, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
