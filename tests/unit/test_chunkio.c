/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the client's chunk reader: a chunk read through a mapping
 * of the file (a sink that only hands bytes to the kernel) and one read
 * through a buffer give the sink the same bytes and the same digest, and
 * a file cut short in the middle of a chunk ends either way as PF_EIO,
 * the mapped way by catching the SIGBUS, again and again. A receipt
 * summed from a transfer's reads (filesum) is chunkio_receipt's, and only
 * when every byte came, in order.
 */
#include "config.h"

#include <fcntl.h>
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
#include <jansson.h>

#include "chunkio.h"
#include "filesum.h"
#include "log.h"
#include "tree.h"

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
	struct chunkhash *h = chunkhash_new();
	uint8_t *buf = malloc(CHUNKIO_PIECE);
	enum pf_status rc;

	assert_non_null(h);
	assert_non_null(buf);
	rc = chunkio_read(&src, &ch, buf, CHUNKIO_PIECE, h, &sink, digest);
	chunkhash_free(h);
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

/* The receipt of the first size bytes of fd, read back, for cs chunks. */
static void
receipt_of(int fd, uint64_t size, uint32_t cs, char hex[PF_SHA256_HEX])
{
	assert_int_equal(chunkio_receipt(fd, size, cs, hex), PF_OK);
}

/* Sums want[0..size) in pieces of piece bytes; true if it is ready. */
static bool
sum_pieces(const uint8_t *want, uint64_t size, uint32_t cs, size_t piece,
    char hex[PF_SHA256_HEX])
{
	struct filesum *s = filesum_new(size, cs);
	bool ready;

	assert_non_null(s);
	for (uint64_t pos = 0; pos < size; pos += piece) {
		size_t n = size - pos < piece ? (size_t)(size - pos) : piece;

		filesum_add(s, want + pos, n, pos);
		/* A piece read again (a chunk sent again) changes nothing. */
		if (pos % 3 == 0)
			filesum_add(s, want + pos, n, pos);
	}
	ready = filesum_hex(s, hex);
	filesum_free(s);
	return ready;
}

static void
test_filesum_is_the_receipt(void **state)
{
	static const uint64_t sizes[] = { 1, 4096, 65536, 65537, 200000,
	    SIZE };
	static const size_t pieces[] = { 1000, 4096, 65536, 131072 };
	uint8_t *want = malloc(SIZE);
	char mine[PF_SHA256_HEX], sum[PF_SHA256_HEX];
	int fd;

	(void)state;
	assert_non_null(want);
	fd = make_file(want);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		receipt_of(fd, sizes[i], 65536, mine);
		for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]);
		    k++) {
			assert_true(sum_pieces(want, sizes[i], 65536,
			    pieces[k], sum));
			assert_string_equal(sum, mine);
		}
	}
	close(fd);
	free(want);
}

static void
test_filesum_needs_every_byte_in_order(void **state)
{
	uint8_t *want = malloc(SIZE);
	char hex[PF_SHA256_HEX];
	struct filesum *s;
	int fd;

	(void)state;
	assert_non_null(want);
	fd = make_file(want);
	close(fd);
	/* The second half before the first: a gap, and the sum ends. */
	assert_non_null(s = filesum_new(200000, 65536));
	filesum_add(s, want + 100000, 100000, 100000);
	filesum_add(s, want, 100000, 0);
	filesum_add(s, want + 100000, 100000, 100000);
	assert_false(filesum_hex(s, hex));
	filesum_free(s);
	/* All but the last byte. */
	assert_non_null(s = filesum_new(200000, 65536));
	filesum_add(s, want, 199999, 0);
	assert_false(filesum_hex(s, hex));
	/* More bytes than the file has. */
	filesum_add(s, want + 199999, 2, 199999);
	assert_false(filesum_hex(s, hex));
	filesum_free(s);
	/* Overlapping pieces count each byte once. */
	assert_non_null(s = filesum_new(200000, 65536));
	filesum_add(s, want, 150000, 0);
	filesum_add(s, want + 100000, 100000, 100000);
	assert_true(filesum_hex(s, hex));
	filesum_free(s);
	free(want);
}

/* t's manifest and stamps, written by hand, as jansson writes them. */
static void
assert_tree_texts(const struct tree *t)
{
	json_t *m = tree_manifest(t), *st = tree_stamps(t);
	char *want_m, *want_st;
	struct pf_buf b;

	assert_non_null(m);
	assert_non_null(st);
	assert_non_null(want_m = json_dumps(m, JSON_COMPACT));
	assert_non_null(want_st = json_dumps(st, JSON_COMPACT));
	pf_buf_init(&b, 1 << 20);
	assert_true(tree_add_manifest(t, &b));
	assert_string_equal(b.p, want_m);
	pf_buf_consume(&b, b.len);
	assert_true(tree_add_stamps(t, &b));
	assert_string_equal(b.p, want_st);
	pf_buf_free(&b);
	free(want_m);
	free(want_st);
	json_decref(m);
	json_decref(st);
}

/*
 * The tree's digest is that of jansson's text for its sorted manifest,
 * and the manifest's text for OPEN is jansson's, laid out or not.
 */
static void
test_tree_digest_is_jansson_text(void **state)
{
	static const char *names[] = { "q\"b", "back\\slash", "tab\there",
	    "new\nline", "\001ctl", "caf\xc3\xa9", "sp ace", "e" };
	char dir[] = "/tmp/pf-tree.XXXXXX", path[512], err[256];
	const char *paths[1] = { dir };
	struct tree_opts o = { .quiet = true };
	struct timespec ts[2] = { { -5, 0 }, { -5, 0 } };
	uint8_t md[PF_SHA256_LEN];
	char want[PF_SHA256_HEX], *text;
	struct tree *t;
	json_t *m;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/sub/%s", dir, names[i]);
		assert_true((fd = open(path, O_WRONLY | O_CREAT, 0640)) != -1);
		assert_int_equal(write(fd, names[i], strlen(names[i])),
		    (ssize_t)strlen(names[i]));
		/* A time before the epoch: a negative mtime. */
		assert_int_equal(futimens(fd, ts), 0);
		close(fd);
	}
	snprintf(path, sizeof(path), "%s/empty", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(tree_build(paths, 1, &o, &t, err, sizeof(err)),
	    PF_OK);
	assert_non_null(m = tree_manifest(t));
	assert_non_null(text = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS));
	assert_int_equal(pf_sha256(text, strlen(text), md), PF_OK);
	pf_hex_encode(md, sizeof(md), want);
	assert_string_equal(t->digest, want);
	/* Names that needed escapes, and a negative mtime, are in it. */
	assert_non_null(strstr(text, "/tab\\there\""));
	assert_non_null(strstr(text, "\"mtime\":-5"));
	free(text);
	json_decref(m);
	assert_tree_texts(t);
	t->placed = true;
	for (size_t i = 0; i < t->n; i++)
		t->e[i].offset = (uint64_t)i * 65536 + (i % 2 ? 1ull << 40 : 0);
	assert_tree_texts(t);
	tree_free(t);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
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
		cmocka_unit_test(test_filesum_is_the_receipt),
		cmocka_unit_test(test_filesum_needs_every_byte_in_order),
		cmocka_unit_test(test_tree_digest_is_jansson_text),
	};

	pf_log_set_level(PF_LOG_NONE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
