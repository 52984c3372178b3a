/* SPDX-License-Identifier: MIT */
/*
 * Classifies a file's first bytes with libmagic, a few callers at a time,
 * through a sieve (magicsieve.c) where only some types matter.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <magic.h>

#include "ftype.h"
#include "log.h"
#include "magicsieve.h"

/*
 * No decompression (which could also run external programs), and none of
 * the parsers that only refine an answer the policy has already made
 * (ELF is refused by its first four bytes) or cannot use on a few hundred
 * bytes (CDF, the container of .msi, needs its sectors): less code of a
 * C parser runs on bytes a client chose.
 */
#define FTYPE_FLAGS	(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | \
	MAGIC_NO_CHECK_ELF | MAGIC_NO_CHECK_CDF)

/*
 * A magic_t is not thread-safe, and one classification costs ~0.5 ms of
 * CPU (a transfer's COMMIT runs one per file): a few handles, each with
 * its own lock, let that many threads classify at once. The database is
 * mapped, so a handle costs little memory.
 */
#define FTYPE_SLOTS	4

struct ftype_slot {
	pthread_mutex_t	 lock;
	magic_t		 m;
	magic_t		 sieve;		/* NULL: no sieve */
};

struct ftype {
	struct ftype_slot	 slot[FTYPE_SLOTS];
	atomic_uint		 next;	/* where a caller starts looking */
	const char *const	*types;
	size_t			 ntypes;
	struct magicsieve	 sv;	/* the sieves' database */
	atomic_ulong		 matched, whole;	/* ftype_match calls */
};

/*
 * Heads the whole database names one of the policy's types by rules of
 * several kinds (a string at 0, a regex over text, a PE header, a zip
 * entry): a sieve that misses one was cut by a misread of the database.
 */
static const struct {
	const char	*p;
	size_t		 n;
} probes[] = {
#define PROBE(s) { s, sizeof(s) - 1 }
	PROBE("#!/bin/sh\necho hello\n"),
	PROBE("/usr/bin/env python3\nprint(1)\n"),
	PROBE("<?php echo 1; ?>\n"),
	PROBE("@echo off\r\necho hello\r\n"),
	PROBE("REGEDIT4\r\n\r\n[HKEY_CURRENT_USER\\Software]\r\n"),
	PROBE("PK\3\4\24\0\10\0\10\0\0\0!\0\0\0\0\0\0\0\0\0\0\0\0\0"
	    "\24\0\4\0META-INF/MANIFEST.MF\xfe\xca\0\0"),
#undef PROBE
};

/* Opens a handle; the system's database, or the sieve's if sv. */
static magic_t
handle_open(const struct magicsieve *sv)
{
	magic_t m;

	if ((m = magic_open(FTYPE_FLAGS)) == NULL) {
		log_error("%s: magic_open failed", __func__);
		return NULL;
	}
	if ((sv != NULL ? magic_load_buffers(m, (void **)sv->buf,
	    (size_t *)sv->len, sv->nbuf) : magic_load(m, NULL)) == -1) {
		log_error("%s: cannot load the magic database: %s", __func__,
		    magic_error(m));
		magic_close(m);
		return NULL;
	}
	return m;
}

/* Whether libmagic's answer t is one of ft's types. */
static bool
is_type(const struct ftype *ft, const char *t)
{
	size_t len = strcspn(t, ",; \t");

	for (size_t i = 0; i < ft->ntypes; i++)
		if (strlen(ft->types[i]) == len &&
		    memcmp(ft->types[i], t, len) == 0)
			return true;
	return false;
}

/* Whether sieve flags every probe the whole database m names a type. */
static bool
sieve_works(const struct ftype *ft, magic_t m, magic_t sieve)
{
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		const char *t = magic_buffer(m, probes[i].p, probes[i].n);
		const char *s;

		if (t == NULL || !is_type(ft, t))
			continue;
		if ((s = magic_buffer(sieve, probes[i].p, probes[i].n)) ==
		    NULL || !is_type(ft, s)) {
			log_warn("%s: probe %zu is %s, the sieve says %s",
			    __func__, i, t, s != NULL ? s : "nothing");
			return false;
		}
	}
	return true;
}

/*
 * Gives each slot a sieve, or none if the database cannot be cut or the
 * cut one fails a probe: every head then goes to the whole database.
 */
static void
sieves_open(struct ftype *ft)
{
	size_t i;

	if (magicsieve_build(&ft->sv, ft->types, ft->ntypes) == -1)
		goto none;
	for (i = 0; i < FTYPE_SLOTS; i++)
		if ((ft->slot[i].sieve = handle_open(&ft->sv)) == NULL)
			goto none;
	if (!sieve_works(ft, ft->slot[0].m, ft->slot[0].sieve))
		goto none;
	log_info("content types: a sieve of %zu of libmagic's %zu rules, "
	    "the rest only for the heads it flags", ft->sv.kept,
	    ft->sv.total);
	return;
none:
	log_warn("content types: no sieve, every head goes through the "
	    "whole database (slower)");
	for (i = 0; i < FTYPE_SLOTS; i++)
		if (ft->slot[i].sieve != NULL) {
			magic_close(ft->slot[i].sieve);
			ft->slot[i].sieve = NULL;
		}
	magicsieve_free(&ft->sv);
}

struct ftype *
ftype_new(const char *const *types, size_t ntypes)
{
	struct ftype *ft;

	if ((ft = calloc(1, sizeof(*ft))) == NULL) {
		log_error("%s: calloc", __func__);
		return NULL;
	}
	ft->types = types;
	ft->ntypes = ntypes;
	for (size_t i = 0; i < FTYPE_SLOTS; i++)
		pthread_mutex_init(&ft->slot[i].lock, NULL);
	for (size_t i = 0; i < FTYPE_SLOTS; i++)
		if ((ft->slot[i].m = handle_open(NULL)) == NULL)
			goto fail;
	if (ntypes > 0)
		sieves_open(ft);
	return ft;
fail:
	ftype_free(ft);
	return NULL;
}

void
ftype_free(struct ftype *ft)
{
	if (ft == NULL)
		return;
	for (size_t i = 0; i < FTYPE_SLOTS; i++) {
		if (ft->slot[i].m != NULL)
			magic_close(ft->slot[i].m);
		if (ft->slot[i].sieve != NULL)
			magic_close(ft->slot[i].sieve);
		pthread_mutex_destroy(&ft->slot[i].lock);
	}
	magicsieve_free(&ft->sv);
	free(ft);
}

/* A free slot, locked; if all are busy, waits for one. */
static struct ftype_slot *
slot_take(struct ftype *ft)
{
	unsigned start = atomic_fetch_add(&ft->next, 1u);

	for (unsigned i = 0; i < FTYPE_SLOTS; i++) {
		struct ftype_slot *sl = &ft->slot[(start + i) % FTYPE_SLOTS];

		if (pthread_mutex_trylock(&sl->lock) == 0)
			return sl;
	}
	pthread_mutex_lock(&ft->slot[start % FTYPE_SLOTS].lock);
	return &ft->slot[start % FTYPE_SLOTS];
}

/* libmagic's answer for p[0..n) into mime; the slot is locked. */
static enum pf_status
answer(magic_t m, const uint8_t *p, size_t n, char mime[FTYPE_MIME_MAX])
{
	const char *t;
	size_t len;

	mime[0] = '\0';
	/* An empty buffer is "application/x-empty"; NULL is not allowed. */
	if ((t = magic_buffer(m, n > 0 ? (const void *)p : "", n)) == NULL) {
		log_warn("%s: libmagic: %s", __func__,
		    magic_error(m) != NULL ? magic_error(m) : "?");
		return PF_EINTERNAL;
	}
	/*
	 * "application/x-sharedlib, can't read elf program headers": only
	 * the type itself counts.
	 */
	len = strcspn(t, ",; \t");
	if (len == 0 || len >= FTYPE_MIME_MAX)
		return PF_EINTERNAL;
	memcpy(mime, t, len);
	mime[len] = '\0';
	return PF_OK;
}

enum pf_status
ftype_classify(struct ftype *ft, const uint8_t *p, size_t n,
    char mime[FTYPE_MIME_MAX])
{
	struct ftype_slot *sl = slot_take(ft);
	enum pf_status rc = answer(sl->m, p, n, mime);

	pthread_mutex_unlock(&sl->lock);
	return rc;
}

enum pf_status
ftype_match(struct ftype *ft, const uint8_t *p, size_t n,
    char mime[FTYPE_MIME_MAX])
{
	struct ftype_slot *sl = slot_take(ft);
	enum pf_status rc = PF_OK;

	if (sl->sieve == NULL || (rc = answer(sl->sieve, p, n, mime)) !=
	    PF_OK || is_type(ft, mime)) {
		rc = answer(sl->m, p, n, mime);
		atomic_fetch_add(&ft->whole, 1);
	}
	pthread_mutex_unlock(&sl->lock);
	atomic_fetch_add(&ft->matched, 1);
	if (rc == PF_OK && !is_type(ft, mime))
		mime[0] = '\0';
	return rc;
}

size_t
ftype_sieve_rules(const struct ftype *ft)
{
	return ft->sv.kept;
}

void
ftype_match_counts(struct ftype *ft, unsigned long *matched,
    unsigned long *whole)
{
	*matched = atomic_load(&ft->matched);
	*whole = atomic_load(&ft->whole);
}
