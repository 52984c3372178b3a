/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the bounded buffer, the atomic, durable file writer, and
 * opening beneath a directory.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "buf.h"
#include "fsutil.h"
#include "text.h"

static void
test_buf_grows_to_max(void **state)
{
	struct pf_buf b;
	char big[1000];

	(void)state;
	memset(big, 'x', sizeof(big));
	pf_buf_init(&b, 1500);
	assert_null(b.p);
	assert_true(pf_buf_add(&b, "ab", 2));
	assert_true(pf_buf_printf(&b, "%d-%s", 42, "z"));
	assert_string_equal(b.p, "ab42-z");
	assert_int_equal(b.len, 6);
	assert_true(pf_buf_add(&b, big, sizeof(big)));
	assert_int_equal(b.len, 1006);
	/* Past max: refused, the contents kept, and every later add fails. */
	assert_false(pf_buf_add(&b, big, 495));
	assert_true(b.failed);
	assert_int_equal(b.len, 1006);
	assert_false(pf_buf_add(&b, "a", 1));
	assert_int_equal(b.p[b.len], '\0');
	pf_buf_free(&b);
	assert_null(b.p);
	assert_false(b.failed);

	/* Exactly max fits, one more does not. */
	pf_buf_init(&b, 4);
	assert_true(pf_buf_printf(&b, "%s", "abcd"));
	assert_false(pf_buf_printf(&b, "%s", "e"));
	assert_string_equal(b.p, "abcd");
	pf_buf_free(&b);
}

/* Integers and JSON strings as jansson writes them, without printf. */
static void
test_buf_json(void **state)
{
	static const int64_t ints[] = { 0, 7, -1, 10, 1700000000,
	    INT64_MAX, INT64_MIN };
	struct pf_buf b;
	char s[160], *want;
	json_t *j;
	size_t n = 0;

	(void)state;
	pf_buf_init(&b, 1 << 16);
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		assert_true(pf_buf_add_int(&b, ints[i]));
		snprintf(s, sizeof(s), "%" PRId64, ints[i]);
		assert_string_equal(b.p, s);
		pf_buf_free(&b);
	}
	/* Every ASCII character, then UTF-8 of two, three and four bytes. */
	for (int c = 1; c < 128; c++)
		s[n++] = (char)c;
	memcpy(s + n, "\xc3\xa9\xe2\x80\xa8\xf0\x9f\x93\xb7", 10);
	assert_true(pf_buf_add_json_string(&b, s));
	assert_non_null(j = json_string(s));
	assert_non_null(want = json_dumps(j, JSON_ENCODE_ANY));
	assert_string_equal(b.p, want);
	free(want);
	json_decref(j);
	pf_buf_free(&b);
	/* Not UTF-8 (a character cut short, a stray byte): no JSON. */
	assert_false(pf_buf_add_json_string(&b, "ok \xc3"));
	assert_true(b.failed);
	assert_false(b.over);
	pf_buf_free(&b);
	assert_false(pf_buf_add_json_string(&b, "\x80"));
	pf_buf_free(&b);
	/* Too small: fails as over, not as out of memory. */
	pf_buf_init(&b, 4);
	assert_false(pf_buf_add_json_string(&b, "abcd"));
	assert_true(b.over);
	pf_buf_free(&b);
}

/* An object's text with one more member, which parses whole. */
static void
test_buf_json_with(void **state)
{
	static const char *objs[] = { "{}", "{\"a\":1}", "{\"a\":[1,{}]}" };
	struct pf_buf b;
	json_t *j;

	(void)state;
	pf_buf_init(&b, 1 << 16);
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		assert_true(pf_buf_add_json_with(&b, objs[i], "files",
		    "[2,3]"));
		assert_non_null(j = json_loads(b.p, JSON_REJECT_DUPLICATES,
		    NULL));
		assert_int_equal(json_object_size(j), i == 0 ? 1 : 2);
		assert_int_equal(json_array_size(json_object_get(j, "files")),
		    2);
		json_decref(j);
		pf_buf_free(&b);
		/* No value: the object as it is. */
		assert_true(pf_buf_add_json_with(&b, objs[i], "files", NULL));
		assert_string_equal(b.p, objs[i]);
		pf_buf_free(&b);
	}
	/* Not an object's text: nothing to add to. */
	assert_false(pf_buf_add_json_with(&b, "[]", "files", "1"));
	assert_true(b.failed);
	pf_buf_free(&b);
	assert_false(pf_buf_add_json_with(&b, "{", "files", NULL));
	pf_buf_free(&b);
}

static void
test_buf_consume_steal_secret(void **state)
{
	struct pf_buf b;
	size_t len;
	char *p;

	(void)state;
	pf_buf_init(&b, 1 << 20);
	b.secret = true;
	for (int i = 0; i < 1000; i++)
		assert_true(pf_buf_printf(&b, "%03d", i % 1000));
	assert_int_equal(b.len, 3000);
	assert_memory_equal(b.p + 2997, "999", 3);
	pf_buf_consume(&b, 2997);
	assert_string_equal(b.p, "999");
	pf_buf_consume(&b, 10);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.p, "");
	assert_true(pf_buf_add(&b, "tail", 4));
	p = pf_buf_steal(&b, &len);
	assert_int_equal(len, 4);
	assert_string_equal(p, "tail");
	assert_null(b.p);
	assert_int_equal(b.len, 0);
	free(p);
	assert_null(pf_buf_steal(&b, &len));
	assert_int_equal(len, 0);
	pf_buf_free(&b);
}

/* Number of entries in dir other than . and .. */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_write_atomic(void **state)
{
	char dir[] = "/tmp/pf-test-common-XXXXXX", path[128], link[128];
	char got[64];
	struct stat sb;
	ssize_t n;
	int dfd, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.json", dir);

	/* By path, new and replaced, with the mode asked for. */
	assert_int_equal(pf_write_atomic(AT_FDCWD, path, "old\n", 4, 0600), 0);
	assert_int_equal(pf_write_atomic(AT_FDCWD, path, "new!\n", 5, 0644),
	    0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);
	assert_int_equal(sb.st_size, 5);
	fd = open(path, O_RDONLY);
	n = read(fd, got, sizeof(got));
	close(fd);
	assert_int_equal(n, 5);
	assert_memory_equal(got, "new!\n", 5);
	assert_int_equal(count_entries(dir), 1);	/* no temporary left */
	assert_int_equal(pf_sync_dir(AT_FDCWD, path), 0);

	/* Beneath a directory handle, by name. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(pf_write_atomic(dfd, "meta", "{}", 2, 0600), 0);
	assert_int_equal(fstatat(dfd, "meta", &sb, 0), 0);
	assert_int_equal(sb.st_size, 2);
	assert_int_equal(pf_sync_dir(dfd, "meta"), 0);

	/* A symlink in its place is replaced, its target untouched. */
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(pf_write_atomic(AT_FDCWD, link, "x", 1, 0600), 0);
	assert_int_equal(lstat(link, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 5);

	/* A missing directory: -1 with errno, nothing left behind. */
	assert_int_equal(pf_write_atomic(dfd, "no/such", "x", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(pf_sync_dir(dfd, "no/such"), -1);
	assert_int_equal(count_entries(dir), 3);

	unlinkat(dfd, "meta", 0);
	unlinkat(dfd, "link", 0);
	unlinkat(dfd, "state.json", 0);
	close(dfd);
	assert_int_equal(rmdir(dir), 0);
}

/*
 * A write that fails midway (here a file size limit, as a full disk would)
 * leaves the old file whole and no temporary behind.
 */
static void
test_write_atomic_fails_whole(void **state)
{
	char dir[] = "/tmp/pf-test-common-XXXXXX", path[128], got[16];
	static char big[64 * 1024];
	struct rlimit old, small;
	ssize_t n;
	int fd, rc, err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/users", dir);
	assert_int_equal(pf_write_atomic(AT_FDCWD, path, "alice\n", 6, 0600),
	    0);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	/* The soft limit only: raising a hard one back needs a privilege. */
	small.rlim_cur = 16 * 1024;
	small.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	memset(big, 'z', sizeof(big));
	rc = pf_write_atomic(AT_FDCWD, path, big, sizeof(big), 0600);
	err = errno;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, -1);
	assert_int_equal(err, EFBIG);
	fd = open(path, O_RDONLY);
	n = read(fd, got, sizeof(got));
	close(fd);
	assert_int_equal(n, 6);
	assert_memory_equal(got, "alice\n", 6);
	assert_int_equal(count_entries(dir), 1);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* What pf_text_escape keeps, what it escapes, and where it stops. */
static void
test_text_escape(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "plain name.txt", "plain name.txt" },
		{ "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", NULL },
		{ "a\nb\rc\td", "a\\x0ab\\x0dc\\x09d" },
		{ "\x1b[2J\x7f", "\\x1b[2J\\x7f" },
		{ "\xc2\x9b" "1m", "\\xc2\\x9b1m" },
		{ "a\xe2\x80\xae" "b", "a\\xe2\\x80\\xaeb" },
		{ "\xe2\x81\xa6\xe2\x80\x8f\xe2\x80\xa8", "\\xe2\\x81\\xa6"
		    "\\xe2\\x80\\x8f\\xe2\\x80\\xa8" },
		{ "back\\slash", "back\\x5cslash" },
		{ "\xff\xc0\xaf\xed\xa0\x80", "\\xff\\xc0\\xaf\\xed\\xa0"
		    "\\x80" },
		{ "cut \xe2\x82", "cut \\xe2\\x82" },
	};
	char out[128];
	size_t used, n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = pf_text_escape(out, sizeof(out), cases[i].in, &used);
		assert_string_equal(out, cases[i].out ? cases[i].out :
		    cases[i].in);
		assert_int_equal(n, strlen(out));
		assert_int_equal(used, strlen(cases[i].in));
	}
	/* Full: no half escape, no half character, always terminated. */
	n = pf_text_escape(out, 6, "ab\x1b", &used);
	assert_string_equal(out, "ab");
	assert_int_equal(used, 2);
	n = pf_text_escape(out, 4, "ab\xc3\xa9", &used);
	assert_string_equal(out, "ab");
	assert_int_equal(n, 2);
	assert_int_equal(pf_text_escape(out, 1, "abc", NULL), 0);
	assert_string_equal(out, "");
}

/*
 * errno of opening path beneath dirfd, with openat2 and by the walk
 * (0: both opened it); the two must agree.
 */
static int
beneath_err(int dirfd, const char *path)
{
	int fd[2] = { pf_open_beneath(dirfd, path, O_RDONLY, 0), -1 };
	int err[2] = { fd[0] == -1 ? errno : 0, 0 };

	fd[1] = pf_open_walk(dirfd, path, O_RDONLY, 0);
	err[1] = fd[1] == -1 ? errno : 0;
	for (int i = 0; i < 2; i++)
		if (fd[i] != -1)
			close(fd[i]);
	assert_int_equal(err[0], err[1]);
	return err[0];
}

/* Neither way through a link, nor out by ".." or "/". */
static void
test_open_beneath(void **state)
{
	char d[] = "/tmp/pf-beneath.XXXXXX", cmd[64];
	int dirfd, fd;

	(void)state;
	assert_non_null(mkdtemp(d));
	assert_true((dirfd = open(d, O_RDONLY | O_DIRECTORY)) != -1);
	assert_int_equal(mkdirat(dirfd, "a", 0700), 0);
	assert_int_equal(mkdirat(dirfd, "a/b", 0700), 0);
	assert_true((fd = openat(dirfd, "a/b/f", O_WRONLY | O_CREAT,
	    0600)) != -1);
	close(fd);
	assert_int_equal(symlinkat("a", dirfd, "l"), 0);
	assert_int_equal(symlinkat("f", dirfd, "a/b/lf"), 0);
	assert_int_equal(beneath_err(dirfd, "a/b/f"), 0);
	assert_int_equal(beneath_err(dirfd, "./a//b/f"), 0);
	assert_int_equal(beneath_err(dirfd, "l/b/f"), ELOOP);
	assert_int_equal(beneath_err(dirfd, "a/b/lf"), ELOOP);
	assert_int_equal(beneath_err(dirfd, "a/../../x"), EXDEV);
	/* The walk refuses any "..", which openat2 takes where it stays. */
	assert_int_equal(pf_open_walk(dirfd, "a/../a/b/f", O_RDONLY, 0), -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(beneath_err(dirfd, "/etc/passwd"), EXDEV);
	assert_int_equal(beneath_err(dirfd, "a/nope/f"), ENOENT);
	close(dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_grows_to_max),
		cmocka_unit_test(test_buf_json),
		cmocka_unit_test(test_buf_json_with),
		cmocka_unit_test(test_buf_consume_steal_secret),
		cmocka_unit_test(test_write_atomic),
		cmocka_unit_test(test_write_atomic_fails_whole),
		cmocka_unit_test(test_text_escape),
		cmocka_unit_test(test_open_beneath),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
