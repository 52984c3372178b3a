/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the staging journal: group commit from many threads,
 * tickets done only once their records are on disk, a failed append,
 * recovery, a torn tail, a damaged record, and the check of journaled
 * chunks after a reboot. Also a transfer's space: promised, reserved or
 * settled.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "proto.h"
#include "journal.h"
#include "manifest.h"
#include "payload.h"
#include "recovery.h"
#include "storage.h"
#include "storage_int.h"

#define CS	PROTO_MIN_CHUNK
#define CHUNKS	16
#define ID	"0b7e1f3c-9c1a-4f6e-8d2b-5a4c3b2a1f00"
#define ID2	"0b7e1f3c-9c1a-4f6e-8d2b-5a4c3b2a1f02"

static char dir[64];

static json_t *
meta(void)
{
	return json_pack("{s:s,s:I,s:I}", "session", ID, "size",
	    (json_int_t)CHUNKS * CS, "chunk_size", (json_int_t)CS);
}

/* Writes chunk i (bytes of value i) and returns its digest. */
static void
put_chunk(struct staging *st, uint32_t i, uint8_t digest[PF_SHA256_LEN])
{
	uint8_t *buf = malloc(CS);
	struct proto_chunk_head ch = { i, (uint64_t)i * CS, CS };
	struct pf_sha256 *h = pf_sha256_new();

	assert_non_null(buf);
	memset(buf, (int)i, CS);
	assert_int_equal(storage_staging_write(st, ch.offset, buf, CS), PF_OK);
	assert_int_equal(proto_chunk_digest_begin(h, &ch), PF_OK);
	assert_int_equal(pf_sha256_update(h, buf, CS), PF_OK);
	assert_int_equal(pf_sha256_final(h, digest), PF_OK);
	pf_sha256_free(h);
	free(buf);
}

struct committer {
	struct staging	*st;
	uint32_t	 first;
};

static void *
commit_four(void *arg)
{
	struct committer *c = arg;
	uint8_t d[PF_SHA256_LEN];

	for (uint32_t i = c->first; i < c->first + 4; i++) {
		put_chunk(c->st, i, d);
		if (journal_commit_chunk(c->st, i, d) != PF_OK)
			return (void *)1;
	}
	return NULL;
}

struct found {
	int		 areas;
	uint32_t	 records;
	uint32_t	 seen[CHUNKS];
};

static enum pf_status
collect(void *arg, struct recovery_area *r)
{
	struct found *f = arg;

	f->areas++;
	f->records = r->nrecords;
	for (uint32_t i = 0; i < r->nrecords && i < CHUNKS; i++)
		f->seen[i] = r->indices[i];
	storage_staging_close(r->staging);
	r->staging = NULL;
	return PF_OK;
}

static struct found
recover(void)
{
	struct storage *s;
	struct found f = { 0 };

	assert_int_equal(storage_open(dir, STORAGE_SYNC_FULL, &s), PF_OK);
	assert_int_equal(recovery_scan(s, collect, &f), PF_OK);
	storage_close(s);
	return f;
}

static char *
path(const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/.staging/%s/%s", dir, ID, name);
	return p;
}

/* Entries in the staging area (data, journal, session.json). */
static int
entries(void)
{
	char p[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(p, sizeof(p), "%s/.staging/%s", dir, ID);
	assert_non_null(d = opendir(p));
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	struct storage *s;
	struct staging *st;
	struct committer c[4];
	pthread_t t[4];
	json_t *m = meta();
	void *ret;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/pf-storage.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(storage_open(dir, STORAGE_SYNC_FULL, &s), PF_OK);
	assert_int_equal(storage_staging_create(s, ID, (uint64_t)CHUNKS * CS,
	    NULL, m, &st), PF_OK);
	json_decref(m);
	/* Four threads commit four chunks each: syncs are shared. */
	for (int i = 0; i < 4; i++) {
		c[i] = (struct committer){ st, (uint32_t)i * 4 };
		assert_int_equal(pthread_create(&t[i], NULL, commit_four,
		    &c[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	storage_staging_close(st);
	storage_close(s);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static void
test_all_commits_recovered(void **state)
{
	struct found f = recover();
	int mask = 0;

	(void)state;
	assert_int_equal(f.areas, 1);
	assert_int_equal(f.records, CHUNKS);
	for (uint32_t i = 0; i < CHUNKS; i++)
		mask |= 1 << f.seen[i];
	assert_int_equal(mask, (1 << CHUNKS) - 1);
}

static void
test_torn_tail_cut(void **state)
{
	int fd = open(path("journal"), O_WRONLY | O_APPEND);
	struct found f;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "torn record", 11), 11);
	close(fd);
	f = recover();
	assert_int_equal(f.records, CHUNKS);
	fd = open(path("journal"), O_RDONLY);
	assert_int_equal(lseek(fd, 0, SEEK_END), CHUNKS * 48);
	close(fd);
}

static void
test_damaged_record_ends_journal(void **state)
{
	int fd = open(path("journal"), O_WRONLY);
	uint8_t junk = 0x5a;

	(void)state;
	assert_true(fd >= 0);
	/* A flipped digest byte in record 10: it and what follows go. */
	assert_int_equal(pwrite(fd, &junk, 1, 10 * 48 + 20), 1);
	close(fd);
	assert_int_equal(recover().records, 10);
}

static void
test_reboot_checks_chunks(void **state)
{
	struct stat before, after;
	char p[256];
	int fd;

	(void)state;
	/* Another boot id, as after a reboot; and chunk 3's data lost. */
	snprintf(p, sizeof(p), "%s/.staging/.boot", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, "another-boot", 12), 12);
	close(fd);
	fd = open(path("data"), O_WRONLY);
	assert_int_equal(pwrite(fd, "\0\0\0\0", 4, 3 * CS + 100), 4);
	close(fd);
	assert_int_equal(stat(path("journal"), &before), 0);
	assert_int_equal(recover().records, CHUNKS - 1);
	/*
	 * The journal was rewritten as a new file renamed over the old one
	 * (never truncated in place), and nothing is left beside it: the
	 * next start, same boot, agrees.
	 */
	assert_int_equal(stat(path("journal"), &after), 0);
	assert_true(before.st_ino != after.st_ino);
	assert_int_equal(after.st_size, (CHUNKS - 1) * 48);
	assert_int_equal(entries(), 3);
	assert_int_equal(recover().records, CHUNKS - 1);
}

static void
test_missing_metadata_removes_area(void **state)
{
	(void)state;
	assert_int_equal(unlink(path("session.json")), 0);
	assert_int_equal(recover().areas, 0);
	assert_int_equal(access(path("data"), F_OK), -1);
}

/* A staging area ID2 beside the one setup made, and its storage. */
static struct staging *
second_area(struct storage **s)
{
	struct staging *st;
	json_t *m = meta();

	assert_int_equal(storage_open(dir, STORAGE_SYNC_FULL, s), PF_OK);
	assert_int_equal(storage_staging_create(*s, ID2,
	    (uint64_t)CHUNKS * CS, NULL, m, &st), PF_OK);
	json_decref(m);
	return st;
}

static off_t
journal_size(const char *id)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/.staging/%s/journal", dir, id);
	assert_int_equal(stat(p, &sb), 0);
	return sb.st_size;
}

/*
 * The asynchronous path a stream uses: every chunk submitted at once,
 * none waited for. A ticket is done (and its wakefd written) only once
 * its record is in the journal, tickets finish in the order submitted,
 * and the journal ends with every record once.
 */
static void
test_ticket_done_after_record(void **state)
{
	struct journal_ticket t[CHUNKS];
	uint8_t d[PF_SHA256_LEN];
	struct storage *s;
	struct staging *st = second_area(&s);
	struct pollfd p = { .events = POLLIN };
	unsigned done = 0;
	uint64_t v;

	(void)state;
	p.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(p.fd >= 0);
	for (uint32_t i = 0; i < CHUNKS; i++) {
		put_chunk(st, i, d);
		t[i].wakefd = p.fd;
		assert_int_equal(journal_submit(st, i, d, &t[i]), PF_OK);
	}
	while (done < CHUNKS) {
		assert_int_equal(poll(&p, 1, 10000), 1);
		assert_int_equal(read(p.fd, &v, sizeof(v)), sizeof(v));
		while (done < CHUNKS && atomic_load(&t[done].done)) {
			assert_int_equal(t[done].rc, PF_OK);
			done++;
			assert_true(journal_size(ID2) >= (off_t)done * 48);
		}
		/* Never a later ticket done before an earlier one. */
		for (unsigned k = done; k < CHUNKS; k++)
			assert_false(atomic_load(&t[k].done));
	}
	journal_settle(st);
	close(p.fd);
	assert_int_equal(journal_size(ID2), CHUNKS * 48);
	storage_staging_close(st);
	storage_close(s);
}

/*
 * An append that fails (here: the journal cannot be written) fails the
 * tickets of its batch and wakes their owner, cuts nothing good, and
 * leaves the area usable: the same chunk commits once the journal can be
 * written again, as after a full disk is freed.
 */
static void
test_failed_append_fails_tickets(void **state)
{
	struct journal_ticket t[2] = { { .wakefd = -1 }, { .wakefd = -1 } };
	uint8_t d[PF_SHA256_LEN];
	struct storage *s;
	struct staging *st = second_area(&s);
	int saved, ro;
	uint64_t v;

	(void)state;
	t[0].wakefd = t[1].wakefd = eventfd(0, EFD_CLOEXEC);
	put_chunk(st, 0, d);
	saved = dup(st->jfd);
	ro = open("/dev/null", O_RDONLY);
	assert_true(saved >= 0 && ro >= 0 && t[0].wakefd >= 0);
	assert_int_equal(dup2(ro, st->jfd), st->jfd);
	assert_int_equal(journal_submit(st, 0, d, &t[0]), PF_OK);
	assert_int_equal(journal_submit(st, 0, d, &t[1]), PF_OK);
	assert_int_not_equal(journal_wait(st, &t[0]), PF_OK);
	assert_int_not_equal(journal_wait(st, &t[1]), PF_OK);
	assert_int_equal(read(t[0].wakefd, &v, sizeof(v)), sizeof(v));
	assert_false(storage_staging_broken(st));
	assert_int_equal(dup2(saved, st->jfd), st->jfd);
	assert_int_equal(journal_size(ID2), 0);
	assert_int_equal(journal_commit_chunk(st, 0, d), PF_OK);
	assert_int_equal(journal_size(ID2), 48);
	close(saved);
	close(ro);
	close(t[0].wakefd);
	storage_staging_close(st);
	storage_close(s);
}

/*
 * A transfer of two files (3 chunks and 1, a chunk of dead bytes between
 * them, as an amend leaves) beneath parent: promised at OPEN. Where the
 * filesystem finds space at each write (tmpfs), the first piece of the
 * big file reserves nothing, and its bytes stay promised until settled,
 * the files' bytes of each chunk alone (never more than owed); elsewhere
 * that piece
 * reserves the whole file, whose promise is then kept. Opened again,
 * the payload promises what its files still need.
 */
static void
check_transfer_space(const char *parent, bool tmpfs)
{
	struct manifest_file f[2] = { { .size = 3 * CS, .offset = 0 },
	    { .size = CS, .offset = 4 * CS } };
	struct manifest m = { .n = 2, .f = f, .total = 5 * CS };
	_Atomic uint64_t promised = 0;
	char d[PATH_MAX], cmd[PATH_MAX + 16];
	struct payload *pl;
	uint8_t *buf = calloc(1, CS);
	struct stat sb;
	int dirfd;

	snprintf(d, sizeof(d), "%s/pf-space.XXXXXX", parent);
	assert_non_null(buf);
	assert_non_null(mkdtemp(d));
	assert_true((dirfd = open(d, O_RDONLY | O_DIRECTORY)) != -1);
	assert_int_equal(pf_space_on_write(dirfd), tmpfs);
	assert_int_equal(payload_create(dirfd, 5 * CS, &m, &promised, &pl),
	    PF_OK);
	assert_int_equal(promised, 4 * CS);
	assert_int_equal(payload_write(pl, 0, buf, CS), PF_OK);
	assert_int_equal(fstatat(dirfd, "p/0", &sb, 0), 0);
	if (tmpfs) {
		assert_true((uint64_t)sb.st_blocks * 512 < 3 * CS);
		assert_int_equal(promised, 4 * CS);
		payload_settled(pl, 3 * CS, CS);
		assert_int_equal(promised, 4 * CS);
		payload_settled(pl, 0, CS);
		assert_int_equal(promised, 3 * CS);
		payload_settled(pl, 2 * CS, 3 * CS);
		assert_int_equal(promised, CS);
		payload_settled(pl, 0, 10 * CS);
		assert_int_equal(promised, 0);
	} else {
		assert_true((uint64_t)sb.st_blocks * 512 >= 3 * CS);
		assert_int_equal(promised, CS);
		payload_settled(pl, 0, CS);
		assert_int_equal(promised, CS);
	}
	payload_close(pl);
	assert_int_equal(promised, 0);
	assert_int_equal(payload_open(dirfd, &m, &promised, &pl), PF_OK);
	assert_int_equal(promised, tmpfs ? 3 * CS : CS);
	payload_close(pl);
	assert_int_equal(promised, 0);
	close(dirfd);
	free(buf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d);
	assert_int_equal(system(cmd), 0);
}

static void
test_transfer_space(void **state)
{
	int fd;

	(void)state;
	/* Where the tests build (a disk, normally), and /dev/shm. */
	assert_true((fd = open(".", O_RDONLY | O_DIRECTORY)) != -1);
	if (!pf_space_on_write(fd))
		check_transfer_space(".", false);
	close(fd);
	if ((fd = open("/dev/shm", O_RDONLY | O_DIRECTORY)) != -1 &&
	    pf_space_on_write(fd))
		check_transfer_space("/dev/shm", true);
	else
		print_message("# no tmpfs at /dev/shm: its half skipped\n");
	if (fd != -1)
		close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_all_commits_recovered,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_cut, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_damaged_record_ends_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reboot_checks_chunks,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_missing_metadata_removes_area, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_ticket_done_after_record, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_append_fails_tickets, setup, teardown),
		cmocka_unit_test(test_transfer_space),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
