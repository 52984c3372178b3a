/* SPDX-License-Identifier: MIT */
/* Classifies a file's first bytes with libmagic, a few callers at a time. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <magic.h>

#include "ftype.h"
#include "log.h"

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
};

struct ftype {
	struct ftype_slot	 slot[FTYPE_SLOTS];
	atomic_uint		 next;	/* where a caller starts looking */
};

/* Opens slot sl's handle and loads the system's database into it. */
static int
slot_open(struct ftype_slot *sl)
{
	if ((sl->m = magic_open(FTYPE_FLAGS)) == NULL) {
		log_error("%s: magic_open failed", __func__);
		return -1;
	}
	if (magic_load(sl->m, NULL) == -1) {
		log_error("%s: cannot load the magic database: %s", __func__,
		    magic_error(sl->m));
		return -1;
	}
	return 0;
}

struct ftype *
ftype_new(void)
{
	struct ftype *ft;

	if ((ft = calloc(1, sizeof(*ft))) == NULL) {
		log_error("%s: calloc", __func__);
		return NULL;
	}
	for (size_t i = 0; i < FTYPE_SLOTS; i++)
		pthread_mutex_init(&ft->slot[i].lock, NULL);
	for (size_t i = 0; i < FTYPE_SLOTS; i++)
		if (slot_open(&ft->slot[i]) == -1)
			goto fail;
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
		pthread_mutex_destroy(&ft->slot[i].lock);
	}
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

enum pf_status
ftype_classify(struct ftype *ft, const uint8_t *p, size_t n,
    char mime[FTYPE_MIME_MAX])
{
	enum pf_status rc = PF_EINTERNAL;
	struct ftype_slot *sl = slot_take(ft);
	const char *t;
	size_t len;

	mime[0] = '\0';
	/* An empty buffer is "application/x-empty"; NULL is not allowed. */
	t = magic_buffer(sl->m, n > 0 ? (const void *)p : "", n);
	if (t == NULL) {
		log_warn("%s: libmagic: %s", __func__,
		    magic_error(sl->m) != NULL ? magic_error(sl->m) : "?");
		goto out;
	}
	/*
	 * "application/x-sharedlib, can't read elf program headers": only
	 * the type itself counts.
	 */
	len = strcspn(t, ",; \t");
	if (len == 0 || len >= FTYPE_MIME_MAX)
		goto out;
	memcpy(mime, t, len);
	mime[len] = '\0';
	rc = PF_OK;
out:
	pthread_mutex_unlock(&sl->lock);
	return rc;
}
