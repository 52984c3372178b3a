/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the client's chunk reader: a chunk read through a mapping
 * of the file (a sink that only hands bytes to the kernel) and one read
 * through a buffer give the sink the same bytes and the same digest, and
 * a file cut short in the middle of a chunk ends either way as PF_EIO,
 * the mapped way by catching the SIGBUS, again and again.
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

#include "chunkio.h"
#include "log.h"

/* One chunk: 3 pieces mapped (512 KiB), 9 read (CHUNKIO_PIECE). */
#define SIZE	(1024 * 1024 + 1000)

/* A sink that keeps what it gets, and may cut the file on the way. */
struct keep {
	uint8_t		*got;
	size_t		 len, calls;
	int		 fd;
	size_t		 cut_after;	/* calls; 0: never */
};

static enum pf_status
keep_write(void *arg, const void *p, size_t n)
{
	struct keep *k = arg;

	memcpy(k->got + k->len, p, n);
	k->len += n;
	/* Cut to one byte: every later page of the chunk is gone. */
	if (++k->calls == k->cut_after)
		assert_int_equal(ftruncate(k->fd, 1), 0);
	return PF_OK;
}

/* A file of SIZE known bytes in a temporary directory; its fd. */
static int
make_file(uint8_t *want)
{
	char path[] = "/tmp/pf-chunkio.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd != -1);
	unlink(path);
	for (size_t i = 0; i < SIZE; i++)
		want[i] = (uint8_t)(i * 7 + i / 4096);
	assert_int_equal(write(fd, want, SIZE), SIZE);
	return fd;
}

/* Reads the file's one chunk into k with sink kernel_only or not. */
static enum pf_status
read_chunk(int fd, struct keep *k, bool kernel_only,
    uint8_t digest[PF_SHA256_LEN])
{
	struct chunk_src src = { fd, NULL };
	struct proto_chunk_head ch = { 0, 0, SIZE };
	struct chunkio_sink sink = { keep_write, k, kernel_only };
	struct pf_sha256 *h = pf_sha256_new();
	uint8_t *buf = malloc(CHUNKIO_PIECE);
	enum pf_status rc;

	assert_non_null(h);
	assert_non_null(buf);
	rc = chunkio_read(&src, &ch, buf, CHUNKIO_PIECE, h, &sink, digest);
	pf_sha256_free(h);
	free(buf);
	return rc;
}

static void
test_mapped_and_read_agree(void **state)
{
	uint8_t *want = malloc(SIZE), d1[PF_SHA256_LEN], d2[PF_SHA256_LEN];
	struct keep a = { malloc(SIZE), 0, 0, -1, 0 };
	struct keep b = { malloc(SIZE), 0, 0, -1, 0 };
	int fd;

	(void)state;
	assert_non_null(want);
	fd = make_file(want);
	assert_int_equal(read_chunk(fd, &a, true, d1), PF_OK);
	assert_int_equal(read_chunk(fd, &b, false, d2), PF_OK);
	assert_int_equal(a.len, SIZE);
	assert_int_equal(b.len, SIZE);
	assert_memory_equal(a.got, want, SIZE);
	assert_memory_equal(b.got, want, SIZE);
	assert_memory_equal(d1, d2, PF_SHA256_LEN);
	assert_int_equal(a.calls, 3);
	assert_int_equal(b.calls, 9);
	close(fd);
	free(want);
	free(a.got);
	free(b.got);
}

static void
test_cut_short_is_eio(void **state)
{
	uint8_t *want = malloc(SIZE), d[PF_SHA256_LEN];
	struct keep k = { malloc(SIZE), 0, 0, -1, 1 };

	(void)state;
	assert_non_null(want);
	/*
	 * Mapped, three times in one thread: each time the hash of the
	 * second piece meets SIGBUS, and the handler must be armed again.
	 */
	for (int i = 0; i < 3; i++) {
		k.fd = make_file(want);
		k.len = k.calls = 0;
		assert_int_equal(read_chunk(k.fd, &k, true, d), PF_EIO);
		assert_int_equal(k.calls, 1);
		close(k.fd);
	}
	/* Through the buffer: a short read. */
	k.fd = make_file(want);
	k.len = k.calls = 0;
	assert_int_equal(read_chunk(k.fd, &k, false, d), PF_EIO);
	assert_int_equal(k.calls, 1);
	close(k.fd);
	free(want);
	free(k.got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		/*
		 * First: cmocka puts its own SIGBUS handler in place around
		 * each test, and chunkio's, installed once on first use, must
		 * be installed during this one.
		 */
		cmocka_unit_test(test_cut_short_is_eio),
		cmocka_unit_test(test_mapped_and_read_agree),
	};

	pf_log_set_level(PF_LOG_NONE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
