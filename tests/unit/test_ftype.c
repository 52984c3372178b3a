/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the sieved content check: over heads of the machine's own
 * files (programs, scripts, libraries, documents, with and without their
 * "#!"), heads cut from the middle of files and random ones, ftype_match
 * gives exactly ftype_classify's verdict, for the policy's refused types
 * and for a list of common ones; and the sieve answers most heads alone.
 */
#include "config.h"

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <magic.h>

#include "ftype.h"

#define HEAD		512	/* PROTO_HEAD_LEN */
#define FILES_MAX	2500	/* files read for heads */
#define RANDOM_HEADS	500

/* The types policy.c refuses (its mimes[]). */
static const char *const refused[] = {
	"application/x-executable", "application/x-pie-executable",
	"application/x-sharedlib", "application/x-dosexec",
	"application/vnd.microsoft.portable-executable",
	"application/x-mach-binary", "application/wasm",
	"application/java-archive", "application/x-java-applet",
	"application/vnd.debian.binary-package", "application/x-rpm",
	"application/vnd.android.package-archive", "application/x-msi",
	"application/x-ms-shortcut", "text/x-ms-regedit",
	"text/x-msdos-batch", "text/x-shellscript", "text/x-python",
	"text/x-script.python", "application/x-bytecode.python",
	"text/x-perl", "text/x-php", "text/x-ruby", "text/x-lua",
	"text/x-tcl", "text/x-awk", "application/javascript",
	"text/javascript",
};

/* Types found by rules of every kind, none of them refused. */
static const char *const common[] = {
	"image/png", "image/jpeg", "application/gzip", "application/zip",
	"application/pdf", "text/x-c", "text/html", "text/xml",
	"application/json", "text/x-makefile", "application/x-tar",
	"font/sfnt", "application/x-object", "text/troff",
};

#define N(a)	(sizeof(a) / sizeof((a)[0]))

struct corpus {
	uint8_t	(*head)[HEAD];
	size_t	*len;
	size_t	 n, cap;
};

static struct corpus corpus;

/* Adds n bytes at p as a head. */
static void
add(const uint8_t *p, size_t n)
{
	if (corpus.n == corpus.cap)
		return;
	memcpy(corpus.head[corpus.n], p, n);
	corpus.len[corpus.n++] = n;
}

/* Takes file path's first bytes, those after its "#!", and its middle. */
static int
take(const char *path, const struct stat *st, int kind, struct FTW *ftw)
{
	uint8_t b[HEAD];
	ssize_t n;
	int fd;

	(void)ftw;
	if (kind != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) == -1)
		return 0;
	if ((n = pread(fd, b, sizeof(b), 0)) >= 0) {
		add(b, (size_t)n);
		if (n > 2 && b[0] == '#' && b[1] == '!')
			add(b + 2, (size_t)n - 2);
	}
	if (st->st_size > 3 * HEAD && (n = pread(fd, b, sizeof(b),
	    st->st_size / 2)) > 0)
		add(b, (size_t)n);
	close(fd);
	return corpus.n + 3 > corpus.cap ? 1 : 0;
}

static int
setup(void **state)
{
	static const char *const dirs[] = {
		"/usr/bin", "/usr/lib/python3", "/usr/share/perl5", "/etc",
		"/usr/share/doc", "/usr/lib/x86_64-linux-gnu", "/usr/share",
	};
	size_t cap = FILES_MAX * 3 + RANDOM_HEADS, i, j;

	(void)state;
	corpus.head = calloc(cap, HEAD);
	corpus.len = calloc(cap, sizeof(size_t));
	assert_non_null(corpus.head);
	assert_non_null(corpus.len);
	corpus.cap = cap - RANDOM_HEADS;
	for (i = 0; i < N(dirs) && corpus.n + 3 <= corpus.cap; i++) {
		size_t stop = corpus.n + (corpus.cap - corpus.n) / 3 + 3;
		size_t keep = corpus.cap;

		/* A share of what is left for each directory. */
		corpus.cap = stop < keep ? stop : keep;
		nftw(dirs[i], take, 16, FTW_PHYS);
		corpus.cap = keep;
	}
	corpus.cap = cap;
	srandom(7);
	for (i = 0; i < RANDOM_HEADS; i++) {
		uint8_t b[HEAD];

		for (j = 0; j < sizeof(b); j++)
			b[j] = (uint8_t)random();
		add(b, 1 + (size_t)random() % sizeof(b));
	}
	print_message("%zu heads\n", corpus.n);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(corpus.head);
	free(corpus.len);
	return 0;
}

static bool
in(const char *const *types, size_t n, const char *t)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(types[i], t) == 0)
			return true;
	return false;
}

/*
 * Every head of the corpus gets from ftype_match exactly what
 * ftype_classify says when that is one of types, else ""; returns how
 * many heads are of one of them.
 */
static size_t
same_verdicts(const char *const *types, size_t ntypes)
{
	struct ftype *ft = ftype_new(types, ntypes);
	unsigned long matched, whole;
	char full[FTYPE_MIME_MAX], sieved[FTYPE_MIME_MAX];
	size_t hits = 0, i;

	assert_non_null(ft);
	/* Debian 12's libmagic: its database can be sieved. */
	if (magic_version() == 544)
		assert_true(ftype_sieve_rules(ft) > 0);
	for (i = 0; i < corpus.n; i++) {
		assert_int_equal(ftype_classify(ft, corpus.head[i],
		    corpus.len[i], full), PF_OK);
		assert_int_equal(ftype_match(ft, corpus.head[i],
		    corpus.len[i], sieved), PF_OK);
		if (!in(types, ntypes, full))
			full[0] = '\0';
		else
			hits++;
		if (strcmp(full, sieved) != 0)
			fail_msg("head %zu (%zu bytes): libmagic says '%s', "
			    "the sieve '%s'", i, corpus.len[i], full, sieved);
	}
	ftype_match_counts(ft, &matched, &whole);
	assert_int_equal(matched, corpus.n);
	print_message("%zu sieve rules, %zu heads of the types, %lu of %lu "
	    "went to the whole database\n", ftype_sieve_rules(ft), hits,
	    whole, matched);
	/* Those of the types, and a few the sieve flags in vain. */
	if (ftype_sieve_rules(ft) > 0)
		assert_true(whole < hits + corpus.n / 10);
	ftype_free(ft);
	return hits;
}

static void
test_refused_types(void **state)
{
	(void)state;
	/* Programs and scripts, of which /usr/bin has many. */
	assert_true(same_verdicts(refused, N(refused)) > 50);
}

static void
test_common_types(void **state)
{
	(void)state;
	assert_true(same_verdicts(common, N(common)) > 50);
}

/* Random heads are none of the refused types, and never need the whole. */
static void
test_random_heads_sieved(void **state)
{
	struct ftype *ft = ftype_new(refused, N(refused));
	unsigned long matched, whole;
	char mime[FTYPE_MIME_MAX];
	uint8_t b[HEAD];
	size_t i, j;

	(void)state;
	assert_non_null(ft);
	if (ftype_sieve_rules(ft) == 0)
		skip();
	srandom(11);
	for (i = 0; i < 200; i++) {
		for (j = 0; j < sizeof(b); j++)
			b[j] = (uint8_t)random();
		b[0] = 'x';	/* not "MZ", "#!" or another refused start */
		assert_int_equal(ftype_match(ft, b, sizeof(b), mime), PF_OK);
		assert_string_equal(mime, "");
	}
	assert_int_equal(ftype_match(ft, (const uint8_t *)"#!/bin/sh\n", 10,
	    mime), PF_OK);
	assert_string_equal(mime, "text/x-shellscript");
	ftype_match_counts(ft, &matched, &whole);
	assert_int_equal(matched, 201);
	assert_int_equal(whole, 1);
	ftype_free(ft);
}

/* Writes text into a new temporary file; returns its name (free it). */
static char *
temp_file(const char *text)
{
	char *path = strdup("/tmp/pf-magic.XXXXXX");
	int fd;

	assert_non_null(path);
	assert_true((fd = mkstemp(path)) != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

/*
 * A search path with a text file of rules (MAGIC, as file(1) takes it)
 * gets no sieve, and every head goes to the whole database, which holds
 * those rules; comments beside the system's compiled file do not stop
 * the sieve.
 */
static void
test_text_rules_no_sieve(void **state)
{
	char *rules = temp_file("# ParaFlow's test\n0\tstring\tPFTEST\t"
	    "test\n!:mime\ttext/x-shellscript\n");
	char *comments = temp_file("# comments only\n\n");
	char path[256], mime[FTYPE_MIME_MAX];
	unsigned long matched, whole;
	struct ftype *ft;

	(void)state;
	assert_int_equal(setenv("MAGIC", rules, 1), 0);
	assert_non_null(ft = ftype_new(refused, N(refused)));
	assert_int_equal(ftype_sieve_rules(ft), 0);
	assert_int_equal(ftype_match(ft, (const uint8_t *)"PFTEST x", 8,
	    mime), PF_OK);
	assert_string_equal(mime, "text/x-shellscript");
	assert_int_equal(ftype_match(ft, (const uint8_t *)"PFTESX x", 8,
	    mime), PF_OK);
	assert_string_equal(mime, "");
	ftype_match_counts(ft, &matched, &whole);
	assert_int_equal(whole, 2);
	ftype_free(ft);

	snprintf(path, sizeof(path), "%s:/usr/share/misc/magic.mgc",
	    comments);
	assert_int_equal(setenv("MAGIC", path, 1), 0);
	assert_non_null(ft = ftype_new(refused, N(refused)));
	if (magic_version() == 544)
		assert_true(ftype_sieve_rules(ft) > 0);
	ftype_free(ft);
	unsetenv("MAGIC");
	unlink(rules);
	unlink(comments);
	free(rules);
	free(comments);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_heads_sieved),
		cmocka_unit_test(test_refused_types),
		cmocka_unit_test(test_common_types),
		cmocka_unit_test(test_text_rules_no_sieve),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
