/* SPDX-License-Identifier: MIT */
/* A transfer's files judged as soon as their chunks are durable. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "judge.h"
#include "log.h"
#include "manifest.h"
#include "payload.h"
#include "policy.h"
#include "proto.h"
#include "storage_int.h"

#define JUDGE_BUF	(1024u * 1024)

/*
 * One thread per CPU judges (4 at most). The threads run as SCHED_IDLE
 * (else at nice 19), below the data connections (--stream-nice), so a
 * stream never waits for the CPU on them: they use the time the streams
 * leave idle, mostly while a group commit waits on the disk, and that
 * idle time is spread over every CPU (one per two judged about 20 %
 * fewer files before COMMIT: docs/performance.md).
 */
#define JUDGE_THREADS_MAX 4
#define JUDGE_NICE	19
#define JUDGE_TAKE	8	/* files a thread takes from a judge at once */

struct judge_pool {
	const struct policy	*p;
	pthread_mutex_t		 lock;
	pthread_cond_t		 work;	/* a judge has files ready */
	pthread_cond_t		 idle;	/* a judge's last thread left it */
	struct judge		*head, *tail;	/* judges with files ready */
	bool			 stopping;
	size_t			 n;
	pthread_t		 tid[JUDGE_THREADS_MAX];
};

struct judge {
	struct judge_pool	*jp;
	const struct manifest	*m;
	struct staging		*st;
	uint32_t		 chunk_size, nchunks;
	_Atomic bool		 stop;	/* read while a file is judged */

	/* Under jp->lock. */
	uint8_t			*seen;	/* a bit per chunk noted */
	uint32_t		*order;	/* entries with bytes, by offset */
	size_t			 norder;
	uint32_t		*missing;	/* per entry: chunks to come */
	uint32_t		*ready;	/* entries to judge: a FIFO */
	size_t			 rhead, rtail;	/* each entry in once */
	struct judge		*next;	/* in jp's queue */
	bool			 queued, stopped;
	unsigned		 busy;	/* threads judging its files */
	size_t			 judged;	/* verdicts made */

	/* Each entry's, written by the thread judging it. */
	struct judge_verdict	*v;
	uint8_t			*has;	/* v[i] holds a verdict */
};

enum pf_status
judge_work_init(struct judge_work *w)
{
	w->blen = 0;
	w->digests = NULL;
	w->buf = malloc(JUDGE_BUF);
	w->h = pf_sha256_new();
	return w->buf != NULL && w->h != NULL ? PF_OK : PF_ENOMEM;
}

void
judge_work_free(struct judge_work *w)
{
	free(w->buf);
	free(w->digests);
	pf_sha256_free(w->h);
	w->buf = w->digests = NULL;
	w->h = NULL;
}

/*
 * Reads n (<= JUDGE_BUF) bytes at off of fd into w->buf, unless it
 * holds them already: a small file is read once, for its check and its
 * receipt.
 */
static enum pf_status
read_at(struct judge_work *w, int fd, size_t n, uint64_t off)
{
	size_t got = 0;

	if (off == 0 && n <= w->blen)
		return PF_OK;
	w->blen = 0;
	while (got < n) {
		ssize_t r = pread(fd, w->buf + got, n - got,
		    (off_t)(off + got));

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			log_error("%s: read at %llu: %s", __func__,
			    (unsigned long long)(off + got),
			    r == 0 ? "short" : strerror(errno));
			return PF_EIO;
		}
		got += (size_t)r;
	}
	if (off == 0)
		w->blen = n;
	return PF_OK;
}

/* Hashes size bytes of fd as the chunks of a file alone: its receipt. */
static enum pf_status
hash_file(struct judge_work *w, int fd, uint64_t size, uint32_t cs,
    uint8_t receipt[PF_SHA256_LEN], const _Atomic bool *stop)
{
	uint32_t count, i;
	enum pf_status rc;

	if ((rc = proto_chunk_count(size, cs, &count)) != PF_OK)
		return rc;
	free(w->digests);
	if ((w->digests = malloc(((size_t)count + 1) * PF_SHA256_LEN)) == NULL)
		return PF_ENOMEM;
	for (i = 0; i < count; i++) {
		struct proto_chunk_head ch = { i, (uint64_t)i * cs,
		    proto_chunk_length(size, cs, i) };

		if ((rc = proto_chunk_digest_begin(w->h, &ch)) != PF_OK)
			return rc;
		for (uint64_t pos = 0; pos < ch.length; ) {
			size_t n = ch.length - pos < JUDGE_BUF ?
			    (size_t)(ch.length - pos) : JUDGE_BUF;

			if (stop != NULL && atomic_load(stop))
				return PF_ECANCELLED;
			if ((rc = read_at(w, fd, n, ch.offset + pos)) !=
			    PF_OK || (rc = pf_sha256_update(w->h, w->buf,
			    n)) != PF_OK)
				return rc;
			pos += n;
		}
		if ((rc = pf_sha256_final(w->h, w->digests +
		    (size_t)i * PF_SHA256_LEN)) != PF_OK)
			return rc;
	}
	return proto_receipt(size, cs, w->digests, count, receipt);
}

enum pf_status
judge_file(struct judge_work *w, const struct policy *p, int fd,
    uint64_t size, uint32_t chunk_size, const uint8_t *own,
    struct judge_verdict *v, const _Atomic bool *stop)
{
	size_t n = size < PROTO_HEAD_LEN ? (size_t)size : PROTO_HEAD_LEN;
	/* With its digest streamed, only the head is read. */
	size_t first = own != NULL ? n : size < JUDGE_BUF ? (size_t)size :
	    JUDGE_BUF;
	char why[POLICY_WHY_MAX];
	enum pf_status rc;

	v->status = PF_OK;
	v->reason = NULL;
	v->size = UINT64_MAX;
	w->blen = 0;
	/* The first piece, which the receipt then finds in the buffer. */
	if ((rc = read_at(w, fd, first, 0)) != PF_OK)
		return rc;
	if (p != NULL && (rc = policy_check_head(p, w->buf, n, why,
	    sizeof(why))) != PF_OK) {
		if (rc != PF_EFORBIDDEN)
			return rc;	/* libmagic failed: try again */
		v->status = PF_EFORBIDDEN;
		v->reason = strdup(why);
		return PF_OK;
	}
	if (own != NULL) {
		uint32_t count;

		if ((rc = proto_chunk_count(size, chunk_size, &count)) != PF_OK)
			return rc;
		return proto_receipt(size, chunk_size, own, count, v->receipt);
	}
	return hash_file(w, fd, size, chunk_size, v->receipt, stop);
}

/*
 * Judges entry i of j in its backing file: reads only (a change, even of
 * its mtime, would give the next group commit's sync more to write). Its
 * size then spares COMMIT a look of its own. A failure leaves no
 * verdict: COMMIT judges the file again.
 */
static bool
judge_entry(struct judge *j, struct judge_work *w, uint32_t i)
{
	const struct manifest_file *f = &j->m->f[i];
	struct judge_verdict *v = &j->v[i];
	char name[PAYLOAD_NAME_MAX];
	int fd = -1;

	if (f->size > 0) {
		payload_file_name(f->offset, name);
		if ((fd = openat(j->st->dirfd, name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC)) == -1)
			return false;
	}
	if (judge_file(w, j->jp->p, fd, f->size, j->chunk_size,
	    manifest_streamed(f, j->chunk_size), v, &j->stop) == PF_OK) {
		struct stat sb;

		if (fd != -1 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
			v->size = (uint64_t)sb.st_size;
		j->has[i] = 1;
	} else {
		free(v->reason);
		v->reason = NULL;
	}
	if (fd != -1)
		close(fd);
	return j->has[i] != 0;
}

static void
enqueue(struct judge_pool *jp, struct judge *j)
{
	j->next = NULL;
	if (jp->tail != NULL)
		jp->tail->next = j;
	else
		jp->head = j;
	jp->tail = j;
	j->queued = true;
	pthread_cond_signal(&jp->work);
}

static void
dequeue(struct judge_pool *jp, struct judge *j)
{
	struct judge **pp = &jp->head, *prev = NULL;

	while (*pp != NULL && *pp != j) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp == NULL)
		return;
	*pp = j->next;
	if (jp->tail == j)
		jp->tail = prev;
	j->queued = false;
}

/* The lowest priority for this thread (see JUDGE_THREADS_MAX). */
static void
lower_priority(void)
{
#ifdef SCHED_IDLE
	struct sched_param sp = { .sched_priority = 0 };

	if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0)
		return;
#endif
#ifdef __linux__
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
	    JUDGE_NICE) == -1)
		log_debug("%s: setpriority: %s", __func__, strerror(errno));
#endif
}

/*
 * A judging thread: takes a few ready files of the first judge in the
 * queue (which goes to the back if it has more: turns between
 * transfers), judges them without the lock, and so on.
 */
static void *
pool_main(void *arg)
{
	struct judge_pool *jp = arg;
	struct judge_work w;
	uint32_t take[JUDGE_TAKE];
	struct judge *j;
	size_t n, got;

	lower_priority();
	if (judge_work_init(&w) != PF_OK) {
		judge_work_free(&w);
		return NULL;
	}
	pthread_mutex_lock(&jp->lock);
	for (;;) {
		while (!jp->stopping && jp->head == NULL)
			pthread_cond_wait(&jp->work, &jp->lock);
		if (jp->stopping)
			break;
		j = jp->head;
		dequeue(jp, j);
		for (n = 0; n < JUDGE_TAKE && j->rhead < j->rtail; n++)
			take[n] = j->ready[j->rhead++];
		if (j->rhead < j->rtail)
			enqueue(jp, j);
		j->busy++;
		pthread_mutex_unlock(&jp->lock);
		got = 0;
		for (size_t k = 0; k < n && !atomic_load(&j->stop); k++)
			got += judge_entry(j, &w, take[k]);
		pthread_mutex_lock(&jp->lock);
		j->judged += got;
		/* All it has ready is judged: the tests wait for this line. */
		if (j->busy == 1 && j->rhead == j->rtail && !j->stopped)
			log_debug("%s: %zu files judged early so far",
			    j->st->id, j->judged);
		if (--j->busy == 0 && j->stopped)
			pthread_cond_broadcast(&jp->idle);
	}
	pthread_mutex_unlock(&jp->lock);
	judge_work_free(&w);
	return NULL;
}

struct judge_pool *
judge_pool_new(const struct policy *p)
{
	struct judge_pool *jp;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = cpus > 1 ? (size_t)cpus : 1;

	if ((jp = calloc(1, sizeof(*jp))) == NULL)
		return NULL;
	jp->p = p;
	pthread_mutex_init(&jp->lock, NULL);
	pthread_cond_init(&jp->work, NULL);
	pthread_cond_init(&jp->idle, NULL);
	if (want > JUDGE_THREADS_MAX)
		want = JUDGE_THREADS_MAX;
	for (; jp->n < want; jp->n++)
		if (pthread_create(&jp->tid[jp->n], NULL, pool_main, jp) != 0)
			break;
	if (jp->n == 0) {
		log_warn("%s: no thread started: files are judged at COMMIT "
		    "only", __func__);
		judge_pool_free(jp);
		return NULL;
	}
	return jp;
}

void
judge_pool_free(struct judge_pool *jp)
{
	if (jp == NULL)
		return;
	pthread_mutex_lock(&jp->lock);
	jp->stopping = true;
	pthread_cond_broadcast(&jp->work);
	pthread_mutex_unlock(&jp->lock);
	for (size_t i = 0; i < jp->n; i++)
		pthread_join(jp->tid[i], NULL);
	pthread_cond_destroy(&jp->idle);
	pthread_cond_destroy(&jp->work);
	pthread_mutex_destroy(&jp->lock);
	free(jp);
}

struct by_offset {
	uint64_t	 off;
	uint32_t	 i;
};

static int
cmp_offset(const void *a, const void *b)
{
	const struct by_offset *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * j's files by offset, with the chunks each waits for; an empty file
 * waits for none and is ready at once. Before j is shared.
 */
static enum pf_status
plan(struct judge *j)
{
	const struct manifest *m = j->m;
	struct by_offset *b = calloc(m->n + 1, sizeof(*b));

	if (b == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < m->n; i++) {
		const struct manifest_file *f = &m->f[i];

		if (f->status != PF_OK || f->dir || f->path == NULL)
			continue;
		if (f->size == 0) {
			j->ready[j->rtail++] = (uint32_t)i;
			continue;
		}
		j->missing[i] = (uint32_t)((f->offset + f->size - 1) /
		    j->chunk_size - f->offset / j->chunk_size + 1);
		b[j->norder++] = (struct by_offset){ f->offset, (uint32_t)i };
	}
	qsort(b, j->norder, sizeof(*b), cmp_offset);
	for (size_t k = 0; k < j->norder; k++)
		j->order[k] = b[k].i;
	free(b);
	return PF_OK;
}

struct judge *
judge_new(struct judge_pool *jp, const struct manifest *m,
    struct staging *st, uint32_t chunk_size, uint32_t nchunks)
{
	struct judge *j;
	size_t n = m->n + 1;

	if (jp == NULL || chunk_size == 0 || (j = calloc(1,
	    sizeof(*j))) == NULL)
		return NULL;
	*j = (struct judge){ .jp = jp, .m = m, .st = st,
	    .chunk_size = chunk_size, .nchunks = nchunks };
	j->seen = calloc((size_t)nchunks / 8 + 1, 1);
	j->order = calloc(n, sizeof(*j->order));
	j->missing = calloc(n, sizeof(*j->missing));
	j->ready = calloc(n, sizeof(*j->ready));
	j->v = calloc(n, sizeof(*j->v));
	j->has = calloc(n, 1);
	if (j->seen == NULL || j->order == NULL || j->missing == NULL ||
	    j->ready == NULL || j->v == NULL || j->has == NULL ||
	    plan(j) != PF_OK) {
		j->stopped = true;
		judge_free(j);
		return NULL;
	}
	if (j->rtail > 0) {
		pthread_mutex_lock(&jp->lock);
		enqueue(jp, j);
		pthread_mutex_unlock(&jp->lock);
	}
	return j;
}

/* The first of j's files by offset that ends after off. */
static size_t
first_after(const struct judge *j, uint64_t off)
{
	size_t lo = 0, hi = j->norder;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct manifest_file *f = &j->m->f[j->order[mid]];

		if (f->offset + f->size <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
judge_note_chunk(struct judge *j, uint32_t index)
{
	uint64_t lo, hi;
	size_t before;

	if (j == NULL || index >= j->nchunks)
		return;
	lo = (uint64_t)index * j->chunk_size;
	hi = lo + j->chunk_size;
	pthread_mutex_lock(&j->jp->lock);
	if (j->stopped || (j->seen[index / 8] & (1u << (index % 8))))
		goto out;
	j->seen[index / 8] |= (uint8_t)(1u << (index % 8));
	before = j->rtail;
	/* The files never overlap: by offset, they end in order too. */
	for (size_t k = first_after(j, lo); k < j->norder; k++) {
		uint32_t i = j->order[k];

		if (j->m->f[i].offset >= hi)
			break;
		if (j->missing[i] > 0 && --j->missing[i] == 0)
			j->ready[j->rtail++] = i;
	}
	if (j->rtail > before && !j->queued)
		enqueue(j->jp, j);
out:
	pthread_mutex_unlock(&j->jp->lock);
}

void
judge_stop(struct judge *j)
{
	if (j == NULL)
		return;
	pthread_mutex_lock(&j->jp->lock);
	j->stopped = true;
	atomic_store(&j->stop, true);
	if (j->queued)
		dequeue(j->jp, j);
	while (j->busy > 0)
		pthread_cond_wait(&j->jp->idle, &j->jp->lock);
	pthread_mutex_unlock(&j->jp->lock);
}

struct judge_verdict *
judge_verdict(struct judge *j, size_t i)
{
	if (j == NULL || i >= j->m->n || !j->has[i])
		return NULL;
	return &j->v[i];
}

size_t
judge_count(const struct judge *j)
{
	size_t n = 0;

	for (size_t i = 0; j != NULL && i < j->m->n; i++)
		n += j->has[i];
	return n;
}

void
judge_free(struct judge *j)
{
	if (j == NULL)
		return;
	judge_stop(j);
	for (size_t i = 0; j->v != NULL && i < j->m->n; i++)
		free(j->v[i].reason);
	free(j->seen);
	free(j->order);
	free(j->missing);
	free(j->ready);
	free(j->v);
	free(j->has);
	free(j);
}
