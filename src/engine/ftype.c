/* SPDX-License-Identifier: MIT */
/* Classifies a file's first bytes with libmagic, one caller at a time. */
#include "config.h"

#include <pthread.h>
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

struct ftype {
	pthread_mutex_t	 lock;	/* a magic_t is not thread-safe */
	magic_t		 m;
};

struct ftype *
ftype_new(void)
{
	struct ftype *ft;

	if ((ft = calloc(1, sizeof(*ft))) == NULL) {
		log_error("%s: calloc", __func__);
		return NULL;
	}
	pthread_mutex_init(&ft->lock, NULL);
	if ((ft->m = magic_open(FTYPE_FLAGS)) == NULL) {
		log_error("%s: magic_open failed", __func__);
		goto fail;
	}
	if (magic_load(ft->m, NULL) == -1) {
		log_error("%s: cannot load the magic database: %s", __func__,
		    magic_error(ft->m));
		goto fail;
	}
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
	if (ft->m != NULL)
		magic_close(ft->m);
	pthread_mutex_destroy(&ft->lock);
	free(ft);
}

enum pf_status
ftype_classify(struct ftype *ft, const uint8_t *p, size_t n,
    char mime[FTYPE_MIME_MAX])
{
	enum pf_status rc = PF_EINTERNAL;
	const char *t;
	size_t len;

	mime[0] = '\0';
	pthread_mutex_lock(&ft->lock);
	/* An empty buffer is "application/x-empty"; NULL is not allowed. */
	t = magic_buffer(ft->m, n > 0 ? (const void *)p : "", n);
	if (t == NULL) {
		log_warn("%s: libmagic: %s", __func__,
		    magic_error(ft->m) != NULL ? magic_error(ft->m) : "?");
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
	pthread_mutex_unlock(&ft->lock);
	return rc;
}
