/* SPDX-License-Identifier: MIT */
/* A transfer's files, staged in their own files, checked, renamed. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "fsutil.h"
#include "judge.h"
#include "log.h"
#include "manifest.h"
#include "payload.h"
#include "policy.h"
#include "proto.h"
#include "storage_int.h"
#include "unpack.h"

/*
 * The files are staged by up to UNPACK_WORKERS threads (no more than
 * the CPUs), each taking UNPACK_BATCH entries at a time (neighbours in
 * manifest order share a directory): a file's policy check (libmagic,
 * ~0.5 ms) and its receipt are CPU, and thousands of them made COMMIT
 * far longer than the transfer of the data. The caller names each batch
 * as soon as it is staged, in order: renames between directories go one
 * at a time (the filesystem's rename lock), so one thread does them all,
 * while the others stage.
 */
#define UNPACK_WORKERS	4
#define UNPACK_BATCH	32
#define UNPACK_PER_WORKER 256	/* files below which one more is not worth it */

/* What the workers share. */
struct unpack_job {
	struct manifest		*m;
	const struct policy	*p;
	struct judge		*judge;		/* early verdicts, or NULL */
	atomic_size_t		 early;		/* of them used */
	atomic_size_t		 streamed;	/* receipts the stream gave */
	atomic_size_t		 next;		/* the next entry to take */
	atomic_int		 rc;		/* first failure, or PF_OK */
	/* Under lock: each batch staged, and the stagers still at it. */
	pthread_mutex_t		 lock;
	pthread_cond_t		 change;	/* either changed */
	bool			*staged;	/* per batch */
	size_t			 nstaged;	/* batches staged */
	size_t			 stagers;
	uint64_t		 staged_ms;	/* when the last one was */
};

/* One worker's copies. */
struct unpack {
	struct unpack_job	*job;
	struct staging		*st;
	uint32_t		 chunk_size;
	int			 topfd;		/* <root>/<id> */
	char			 dirpath[PROTO_MAX_PATH + 1];	/* cached */
	int			 dirfd;		/* of dirpath, or -1 */
	bool			 fsync_each;	/* syncfs is not enough */
	struct judge_work	 w;
	pthread_t		 tid;
};

/*
 * Opens the directory dir (a stored relative path; "" for the top),
 * creating what is missing if create; the last one opened is kept.
 */
static int
open_dir(struct unpack *u, const char *dir, bool create)
{
	char part[PROTO_MAX_PATH + 1];
	int fd;

	if (u->dirfd != -1 && strcmp(u->dirpath, dir) == 0)
		return u->dirfd;
	if (u->dirfd != -1 && u->dirfd != u->topfd)
		close(u->dirfd);
	u->dirfd = -1;
	if (dir[0] == '\0') {
		u->dirpath[0] = '\0';
		return u->dirfd = u->topfd;
	}
	snprintf(part, sizeof(part), "%s", dir);
	for (char *slash = part; create && slash != NULL; ) {
		slash = strchr(slash + 1, '/');
		if (slash != NULL)
			*slash = '\0';
		/* Every component beneath topfd: no symlink, no "..". */
		if (mkdirat(u->topfd, part, 0700) == -1 && errno != EEXIST)
			return -1;
		if (slash != NULL)
			*slash++ = '/';
	}
	if ((fd = pf_open_beneath(u->topfd, dir, O_RDONLY | O_DIRECTORY,
	    0)) == -1)
		return -1;
	snprintf(u->dirpath, sizeof(u->dirpath), "%s", dir);
	return u->dirfd = fd;
}

/* Splits path into its directory (into dir) and its base name. */
static const char *
split(const char *path, char dir[PROTO_MAX_PATH + 1])
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		dir[0] = '\0';
		return path;
	}
	snprintf(dir, PROTO_MAX_PATH + 1, "%.*s", (int)(slash - path), path);
	return slash + 1;
}

/* The temporary name of entry i: a dot name no stored name can have. */
static void
temp_name(size_t i, char out[32])
{
	snprintf(out, 32, ".pf-part-%zu", i);
}

/*
 * Opens file f's staging file: its backing file in the payload, or an
 * empty one made now beside its final name as temp. A file an attempt
 * cut short has renamed into place already is found there.
 */
static int
open_staged(struct unpack *u, const struct manifest_file *f,
    const char *temp)
{
	char dir[PROTO_MAX_PATH + 1], name[PAYLOAD_NAME_MAX];
	const char *base = split(f->path, dir);
	int dfd, fd;

	if (f->size == 0)
		return (dfd = open_dir(u, dir, true)) == -1 ? -1 : openat(dfd,
		    temp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	payload_file_name(f->offset, name);
	fd = openat(u->st->dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1 || errno != ENOENT)
		return fd;
	if ((dfd = open_dir(u, dir, false)) == -1)
		return -1;
	return openat(dfd, base, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * Gives f verdict v: refused (its reason taken from v), or its receipt.
 */
static void
apply(struct manifest_file *f, struct judge_verdict *v)
{
	if (v->status == PF_OK) {
		pf_hex_encode(v->receipt, sizeof(v->receipt), f->digest);
		return;
	}
	f->status = v->status;
	f->reason = v->reason;
	v->reason = NULL;
	free(f->path);
	f->path = NULL;
}

/*
 * Checks file i's first bytes against the policy and computes its
 * receipt, in its staging file (nothing is copied), unless it was judged
 * early. A refusal is recorded in f, not an error.
 */
static enum pf_status
stage_file(struct unpack *u, const struct policy *p, struct manifest_file *f,
    size_t i)
{
	struct judge_verdict own, *v = judge_verdict(u->job->judge, i);
	char tmp[32];
	struct timespec ts[2];
	struct stat sb;
	enum pf_status rc = PF_OK;
	int fd;

	if (v != NULL)
		atomic_fetch_add(&u->job->early, 1);
	/* Its receipt, judged early or now, is made of that digest. */
	if (manifest_streamed(f, u->chunk_size) != NULL)
		atomic_fetch_add(&u->job->streamed, 1);
	/* Refused early: it is never opened. */
	if (v != NULL && v->status != PF_OK) {
		apply(f, v);
		return PF_OK;
	}
	ts[0].tv_sec = ts[1].tv_sec = (time_t)f->mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	/* Passed early, at its size: its mtime is all it lacks. */
	if (v != NULL && f->size > 0 && v->size == f->size &&
	    !u->fsync_each) {
		char name[PAYLOAD_NAME_MAX];

		payload_file_name(f->offset, name);
		if (utimensat(u->st->dirfd, name, ts, AT_SYMLINK_NOFOLLOW) ==
		    0) {
			apply(f, v);
			return PF_OK;
		}
		/* Named already by an attempt cut short, say. */
	}
	temp_name(i, tmp);
	if ((fd = open_staged(u, f, tmp)) == -1) {
		log_error("%s: %s: %s", __func__, f->path, strerror(errno));
		return pf_status_from_errno(errno);
	}
	if (v == NULL) {
		if ((rc = judge_file(&u->w, p, fd, f->size, u->chunk_size,
		    manifest_streamed(f, u->chunk_size), &own, NULL)) !=
		    PF_OK)
			goto out;
		v = &own;
	}
	apply(f, v);
	if (f->status != PF_OK)
		goto out;
	/* Longer if an amend shrank the file that has its offset now. */
	if (fstat(fd, &sb) == -1 || ((uint64_t)sb.st_size > f->size &&
	    ftruncate(fd, (off_t)f->size) == -1)) {
		log_error("%s: %s: %s", __func__, f->path, strerror(errno));
		rc = pf_status_from_errno(errno);
		goto out;
	}
	if (futimens(fd, ts) == -1)
		log_warn("%s: %s: mtime: %s", __func__, f->path,
		    strerror(errno));
	if (u->fsync_each && fsync(fd) == -1) {
		log_error("%s: %s: fsync: %s", __func__, f->path,
		    strerror(errno));
		rc = pf_status_from_errno(errno);
	}
out:
	close(fd);
	return rc;
}

/*
 * Gives staged entries from to end their names, and makes the empty
 * directories.
 */
static enum pf_status
place_range(struct unpack *u, struct manifest *m, size_t from, size_t end)
{
	char dir[PROTO_MAX_PATH + 1], tmp[32], name[PAYLOAD_NAME_MAX];
	const char *base;
	int dfd;

	for (size_t i = from; i < end; i++) {
		struct manifest_file *f = &m->f[i];

		if (f->status != PF_OK)
			continue;
		if (f->dir) {
			if (open_dir(u, f->path, true) == -1)
				goto fail;
			continue;
		}
		base = split(f->path, dir);
		if ((dfd = open_dir(u, dir, true)) == -1)
			goto fail;
		if (f->size == 0) {
			temp_name(i, tmp);
			if (renameat(dfd, tmp, dfd, base) == -1)
				goto fail;
			continue;
		}
		/* Renamed already by an attempt cut short: done. */
		payload_file_name(f->offset, name);
		if (renameat(u->st->dirfd, name, dfd, base) == -1 &&
		    !(errno == ENOENT && faccessat(dfd, base, F_OK,
		    AT_SYMLINK_NOFOLLOW) == 0))
			goto fail;
	}
	return PF_OK;
fail:
	log_error("%s: %s: %s", __func__, u->st->id, strerror(errno));
	return pf_status_from_errno(errno);
}

/*
 * Where syncfs is not enough: an fsync of every directory that got a
 * name (each file's, each made directory's parent, up to the top). Not
 * of the backing files' directory: until the metadata is written a
 * power loss must leave the backing files there too, where recovery
 * reads the chunks back.
 */
static int
sync_dirs(struct unpack *u, const struct manifest *m)
{
	struct pf_dir_syncs ds = { .started = false };

	for (size_t i = 0; i < m->n; i++)
		if (m->f[i].status == PF_OK &&
		    pf_sync_dirs(u->topfd, m->f[i].path, &ds) == -1)
			return -1;
	return 0;
}

/* Makes the names durable, if the storage syncs at all. */
static enum pf_status
sync_all(struct unpack *u, const struct manifest *m)
{
	if (u->st->sync == STORAGE_SYNC_NONE || (u->fsync_each ?
	    sync_dirs(u, m) : syncfs(u->topfd)) == 0)
		return PF_OK;
	log_error("%s: sync: %s", __func__, strerror(errno));
	return pf_status_from_errno(errno);
}

/* Records rc as the job's failure, unless one came first. */
static void
job_fail(struct unpack_job *job, enum pf_status rc)
{
	int ok = PF_OK;

	atomic_compare_exchange_strong(&job->rc, &ok, (int)rc);
}

/* The end of the batch that starts at entry i. */
static size_t
batch_end(const struct unpack_job *job, size_t i)
{
	return i + UNPACK_BATCH < job->m->n ? i + UNPACK_BATCH : job->m->n;
}

/* Stages batches of entries until none is left or a worker failed. */
static enum pf_status
stage_batches(struct unpack *u)
{
	struct unpack_job *job = u->job;
	size_t i, end;
	enum pf_status rc;

	while (atomic_load(&job->rc) == PF_OK &&
	    (i = atomic_fetch_add(&job->next, UNPACK_BATCH)) < job->m->n) {
		size_t batch = i / UNPACK_BATCH;

		for (end = batch_end(job, i); i < end; i++) {
			struct manifest_file *f = &job->m->f[i];

			if (atomic_load(&job->rc) != PF_OK)
				return PF_OK;
			if (f->status == PF_OK && !f->dir &&
			    (rc = stage_file(u, job->p, f, i)) != PF_OK) {
				job_fail(job, rc);
				return rc;
			}
		}
		pthread_mutex_lock(&job->lock);
		job->staged[batch] = true;
		if (++job->nstaged == (job->m->n + UNPACK_BATCH - 1) /
		    UNPACK_BATCH)
			job->staged_ms = pf_now_ms();
		pthread_cond_broadcast(&job->change);
		pthread_mutex_unlock(&job->lock);
	}
	return PF_OK;
}

static void *
worker_main(void *arg)
{
	struct unpack_job *job = ((struct unpack *)arg)->job;

	stage_batches(arg);
	pthread_mutex_lock(&job->lock);
	job->stagers--;
	pthread_cond_broadcast(&job->change);
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

/* Gives u its own buffer and hash; the rest is the caller's. */
static enum pf_status
worker_init(struct unpack *u)
{
	u->dirfd = -1;
	return judge_work_init(&u->w);
}

static void
worker_free(struct unpack *u)
{
	if (u->dirfd != -1 && u->dirfd != u->topfd)
		close(u->dirfd);
	u->dirfd = -1;
	judge_work_free(&u->w);
}

/* How many threads stage m: one per CPU, a few at most, enough work each. */
static size_t
worker_count(const struct manifest *m)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = 1 + m->n / UNPACK_PER_WORKER;

	if (cpus < 1)
		cpus = 1;
	if (n > (size_t)cpus)
		n = (size_t)cpus;
	return n < UNPACK_WORKERS ? n : UNPACK_WORKERS;
}

/*
 * Names the batches in order, each once it is staged; PF_OK once all
 * are, else the first failure (a stager's, or its own).
 */
static enum pf_status
name_batches(struct unpack *u)
{
	struct unpack_job *job = u->job;
	enum pf_status rc;
	bool ready;

	for (size_t i = 0; i < job->m->n; i += UNPACK_BATCH) {
		pthread_mutex_lock(&job->lock);
		while (!(ready = job->staged[i / UNPACK_BATCH]) &&
		    job->stagers > 0 && atomic_load(&job->rc) == PF_OK)
			pthread_cond_wait(&job->change, &job->lock);
		pthread_mutex_unlock(&job->lock);
		if (!ready)
			return (rc = (enum pf_status)atomic_load(&job->rc)) !=
			    PF_OK ? rc : PF_EINTERNAL;
		if ((rc = place_range(u, job->m, i, batch_end(job, i))) !=
		    PF_OK) {
			job_fail(job, rc);
			return rc;
		}
	}
	return PF_OK;
}

/*
 * Stages every file on up to UNPACK_WORKERS threads and names them on
 * u's (the caller's), each entry one stager's alone (its status, reason
 * and receipt in m). Without a thread, u stages them all first.
 */
static enum pf_status
stage_and_name(struct unpack *u)
{
	struct unpack_job *job = u->job;
	struct unpack w[UNPACK_WORKERS];
	size_t n = worker_count(job->m), started = 0;
	enum pf_status rc;

	for (size_t k = 0; k < n; k++) {
		w[k] = *u;
		pthread_mutex_lock(&job->lock);
		job->stagers++;
		pthread_mutex_unlock(&job->lock);
		if (worker_init(&w[k]) != PF_OK ||
		    pthread_create(&w[k].tid, NULL, worker_main, &w[k]) != 0) {
			log_warn("%s: %s: a worker did not start", __func__,
			    u->st->id);
			pthread_mutex_lock(&job->lock);
			job->stagers--;
			pthread_mutex_unlock(&job->lock);
			worker_free(&w[k]);
			break;
		}
		started++;
	}
	if (started == 0)
		stage_batches(u);
	rc = name_batches(u);
	for (size_t k = 0; k < started; k++) {
		pthread_join(w[k].tid, NULL);
		worker_free(&w[k]);
	}
	return rc;
}

/*
 * Checks every file and names it; see unpack_transfer. Their data is
 * durable already (each chunk was synced before its ACK).
 */
static enum pf_status
unpack_all(struct unpack *u)
{
	enum pf_status rc;
	uint64_t t[4];

	t[0] = pf_now_ms();
	if ((rc = stage_and_name(u)) != PF_OK)
		return rc;
	t[1] = u->job->staged_ms > t[0] ? u->job->staged_ms : t[0];
	t[2] = pf_now_ms();
	/* One sync for all: thousands of fsyncs would cost far more. */
	rc = sync_all(u, u->job->m);
	t[3] = pf_now_ms();
	/* Named in: what naming took past the last batch's staging. */
	log_info("%s: %zu entries: staged in %llu ms (no copy), %zu judged "
	    "early, %zu receipts streamed, named in %llu, names synced in "
	    "%llu", u->st->id, u->job->m->n, (unsigned long long)(t[1] -
	    t[0]), atomic_load(&u->job->early), atomic_load(
	    &u->job->streamed), (unsigned long long)(t[2] - t[1]),
	    (unsigned long long)(t[3] - t[2]));
	return rc;
}

enum pf_status
unpack_transfer(struct storage *s, struct staging *st, uint32_t chunk_size,
    struct manifest *m, const struct policy *p, struct judge *judge,
    json_t *meta)
{
	struct unpack_job job = { .m = m, .p = p, .judge = judge,
	    .rc = PF_OK };
	struct unpack u = { .job = &job, .st = st, .chunk_size = chunk_size,
	    .topfd = -1, .dirfd = -1 };
	enum pf_status rc;

	if (atomic_load(&st->broken) != PF_OK)
		return (enum pf_status)atomic_load(&st->broken);
	pthread_mutex_init(&job.lock, NULL);
	pthread_cond_init(&job.change, NULL);
	if ((job.staged = calloc(m->n / UNPACK_BATCH + 1,
	    sizeof(*job.staged))) == NULL) {
		rc = PF_ENOMEM;
		goto out;
	}
	if ((rc = worker_init(&u)) != PF_OK)
		goto out;
	/* The directory may be left from an attempt cut short: reuse it. */
	if ((mkdirat(s->rootfd, st->id, 0700) == -1 && errno != EEXIST) ||
	    (u.topfd = storage_open_dir(s->rootfd, st->id)) == -1) {
		rc = pf_status_from_errno(errno);
		log_error("%s: mkdir %s: %s", __func__, st->id,
		    strerror(errno));
		goto out;
	}
	u.fsync_each = st->sync != STORAGE_SYNC_NONE &&
	    !pf_syncfs_covers(u.topfd);
	if ((rc = unpack_all(&u)) != PF_OK)
		goto out;
	/* The metadata last: the gateway lists what has it. */
	if (json_object_set_new(meta, "files_refused", json_integer(
	    (json_int_t)manifest_refused(m))) == -1) {
		rc = PF_ENOMEM;
		goto out;
	}
	if ((rc = storage_put_list(u.topfd, UNPACK_FILES_NAME, m, true)) !=
	    PF_OK || (rc = storage_write_json(u.topfd, STORAGE_META_NAME,
	    meta)) != PF_OK)
		goto out;
	if (fsync(u.topfd) == -1 || fsync(s->rootfd) == -1) {
		rc = pf_status_from_errno(errno);
		goto out;
	}
	storage_staging_forget(st);
	rc = PF_OK;
out:
	worker_free(&u);
	free(job.staged);
	pthread_cond_destroy(&job.change);
	pthread_mutex_destroy(&job.lock);
	if (u.topfd != -1)
		close(u.topfd);
	if (rc == PF_OK)
		storage_staging_discard(s, st);
	return rc;
}
