/* SPDX-License-Identifier: MIT */
/* The journal of acknowledged chunks: records, group commit, read back. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "journal.h"
#include "log.h"
#include "proto.h"
#include "storage_int.h"

/* A journal record waiting for the next sync, and who waits for it. */
struct journal_pending {
	uint8_t			 rec[JOURNAL_REC];
	struct journal_ticket	*t;
	int			 wakefd;	/* t's, read before t is done */
};

static void
journal_record(uint32_t index, const uint8_t digest[PF_SHA256_LEN],
    uint8_t rec[JOURNAL_REC])
{
	uint8_t check[PF_SHA256_LEN];

	proto_put_u32(rec, index);
	proto_put_u32(rec + 4, 0);
	memcpy(rec + 8, digest, PF_SHA256_LEN);
	if (pf_sha256(rec, 40, check) != PF_OK)
		memset(check, 0, sizeof(check));
	memcpy(rec + 40, check, 8);
}

static bool
journal_record_valid(const uint8_t rec[JOURNAL_REC])
{
	uint8_t check[PF_SHA256_LEN];

	return proto_get_u32(rec + 4) == 0 && pf_sha256(rec, 40, check) ==
	    PF_OK && memcmp(check, rec + 40, 8) == 0;
}

/*
 * Syncs the data and appends the records of batch to the journal. A
 * short or failed append is cut back to the last whole record, so the
 * journal never holds a torn record followed by good ones. Called by the
 * committer only, so appends never race.
 */
static enum pf_status
sync_batch(struct staging *st, const struct journal_pending *batch, size_t n)
{
	size_t len = n * JOURNAL_REC, done = 0;
	uint8_t *buf;
	enum pf_status rc = PF_EIO;

	if (st->sync == STORAGE_SYNC_FULL &&
	    (rc = payload_sync(st->pl)) != PF_OK) {
		log_error("%s: sync of %s data: %s", __func__, st->id,
		    pf_status_message(rc));
		atomic_store(&st->broken, (int)rc);
		return rc;
	}
	if ((buf = malloc(len)) == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * JOURNAL_REC, batch[i].rec, JOURNAL_REC);
	while (done < len) {
		ssize_t w = pwrite(st->jfd, buf + done, len - done,
		    st->jlen + (off_t)done);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = pf_status_from_errno(w == 0 ? ENOSPC : errno);
			log_error("%s: journal of %s: %s", __func__, st->id,
			    strerror(w == 0 ? ENOSPC : errno));
			if (ftruncate(st->jfd, st->jlen) == -1)
				log_error("%s: cannot cut the journal of %s "
				    "back: %s", __func__, st->id,
				    strerror(errno));
			goto out;
		}
		done += (size_t)w;
	}
	if (st->sync == STORAGE_SYNC_FULL && fdatasync(st->jfd) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: fdatasync %s journal: %s", __func__, st->id,
		    strerror(errno));
		/* What was written may or may not be durable: count it lost. */
		if (ftruncate(st->jfd, st->jlen) == -1)
			log_error("%s: cannot cut the journal of %s back",
			    __func__, st->id);
		atomic_store(&st->broken, (int)rc);
		goto out;
	}
	st->jlen += (off_t)len;
	rc = PF_OK;
out:
	free(buf);
	return rc;
}

/* Wakes the owner of batch[i] unless a later entry of the batch will. */
static void
wake(const struct journal_pending *batch, size_t n, size_t i)
{
	uint64_t one = 1;
	int fd = batch[i].wakefd;

	for (size_t k = i + 1; k < n && fd != -1; k++)
		if (batch[k].wakefd == fd)
			return;
	if (fd != -1 && write(fd, &one, sizeof(one)) == -1)
		log_warn("%s: %s", __func__, strerror(errno));
}

/*
 * The committer of st: one sync for everything queued while the last
 * one ran (group commit), so a stream never waits on the disk to go on
 * receiving. Each ticket's result is published and its owner woken under
 * st->lock (see journal_settle).
 */
static void *
committer(void *arg)
{
	struct staging *st = arg;
	struct journal_pending *batch;
	enum pf_status rc;
	size_t n;

	pthread_mutex_lock(&st->lock);
	for (;;) {
		while (st->queued == 0 && !st->closing)
			pthread_cond_wait(&st->work, &st->lock);
		if (st->queued == 0)
			break;
		batch = st->queue;
		n = st->queued;
		st->queue = NULL;
		st->queued = st->cap = 0;
		pthread_mutex_unlock(&st->lock);
		rc = sync_batch(st, batch, n);
		pthread_mutex_lock(&st->lock);
		/* Once done, a ticket is its owner's again: not read after. */
		for (size_t i = 0; i < n; i++) {
			batch[i].t->rc = rc;
			atomic_store(&batch[i].t->done, true);
		}
		for (size_t i = 0; i < n; i++)
			wake(batch, n, i);
		free(batch);
		pthread_cond_broadcast(&st->synced);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

enum pf_status
journal_submit(struct staging *st, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN], struct journal_ticket *t)
{
	enum pf_status rc = PF_ENOMEM;

	atomic_store(&t->done, false);
	t->rc = PF_EINTERNAL;
	if (atomic_load(&st->broken) != PF_OK)
		return (enum pf_status)atomic_load(&st->broken);
	pthread_mutex_lock(&st->lock);
	if (!st->running) {
		if (pthread_create(&st->thread, NULL, committer, st) != 0) {
			log_error("%s: cannot start the committer of %s",
			    __func__, st->id);
			rc = PF_EINTERNAL;
			goto out;
		}
		st->running = true;
	}
	if (st->queued == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		struct journal_pending *q = realloc(st->queue,
		    cap * sizeof(*q));

		if (q == NULL)
			goto out;
		st->queue = q;
		st->cap = cap;
	}
	journal_record(index, digest, st->queue[st->queued].rec);
	st->queue[st->queued].t = t;
	st->queue[st->queued].wakefd = t->wakefd;
	st->queued++;
	pthread_cond_signal(&st->work);
	rc = PF_OK;
out:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

enum pf_status
journal_wait(struct staging *st, struct journal_ticket *t)
{
	pthread_mutex_lock(&st->lock);
	while (!atomic_load(&t->done))
		pthread_cond_wait(&st->synced, &st->lock);
	pthread_mutex_unlock(&st->lock);
	return t->rc;
}

void
journal_settle(struct staging *st)
{
	pthread_mutex_lock(&st->lock);
	pthread_mutex_unlock(&st->lock);
}

enum pf_status
journal_commit_chunk(struct staging *st, uint32_t index,
    const uint8_t digest[PF_SHA256_LEN])
{
	struct journal_ticket t = { .wakefd = -1 };
	enum pf_status rc;

	if ((rc = journal_submit(st, index, digest, &t)) != PF_OK)
		return rc;
	return journal_wait(st, &t);
}

void
journal_stop(struct staging *st)
{
	pthread_mutex_lock(&st->lock);
	st->closing = true;
	pthread_cond_signal(&st->work);
	pthread_mutex_unlock(&st->lock);
	if (st->running)
		pthread_join(st->thread, NULL);
	st->running = false;
}

enum pf_status
journal_load(struct staging *st, off_t size, uint32_t **indices,
    uint8_t **digests, uint32_t *count)
{
	uint8_t rec[JOURNAL_REC];
	uint32_t n = 0, cap = 0;
	ssize_t got;

	st->jlen = 0;
	while ((got = pread(st->jfd, rec, sizeof(rec), st->jlen)) ==
	    (ssize_t)sizeof(rec) && journal_record_valid(rec)) {
		if (n == cap) {
			uint32_t *ni;
			uint8_t *nd;

			cap = cap ? 2 * cap : 64;
			ni = realloc(*indices, cap * sizeof(**indices));
			if (ni != NULL)
				*indices = ni;
			nd = realloc(*digests, (size_t)cap * PF_SHA256_LEN);
			if (nd != NULL)
				*digests = nd;
			if (ni == NULL || nd == NULL)
				return PF_ENOMEM;
		}
		(*indices)[n] = proto_get_u32(rec);
		memcpy(*digests + (size_t)n * PF_SHA256_LEN, rec + 8,
		    PF_SHA256_LEN);
		n++;
		st->jlen += JOURNAL_REC;
	}
	if (got == -1)
		return PF_EIO;	/* a read error is not the journal's end */
	/* A crash mid-append leaves a torn tail: cut it off. */
	if (size != st->jlen) {
		log_warn("%s: session %s: journal cut back from %lld to %lld "
		    "bytes", __func__, st->id, (long long)size,
		    (long long)st->jlen);
		if (ftruncate(st->jfd, st->jlen) == -1)
			return PF_EIO;
	}
	*count = n;
	return PF_OK;
}

enum pf_status
journal_rewrite(struct staging *st, const uint32_t *indices,
    const uint8_t *digests, uint32_t n)
{
	size_t len = (size_t)n * JOURNAL_REC;
	uint8_t *buf = malloc(len > 0 ? len : 1);
	enum pf_status rc = PF_OK;
	int fd;

	if (buf == NULL)
		return PF_ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		journal_record(indices[i], digests + (size_t)i * PF_SHA256_LEN,
		    buf + (size_t)i * JOURNAL_REC);
	/*
	 * Beside it and renamed over it, never truncated in place: a power
	 * loss in between must leave the old journal or the new one, not an
	 * empty one that forgets chunks still intact.
	 */
	if (pf_write_atomic(st->dirfd, JOURNAL_NAME, buf, len, 0600) == -1 ||
	    (fd = pf_open_beneath(st->dirfd, JOURNAL_NAME, O_RDWR, 0)) == -1)
		rc = pf_status_from_errno(errno);
	else {
		close(st->jfd);
		st->jfd = fd;
		st->jlen = len;
	}
	free(buf);
	return rc;
}
