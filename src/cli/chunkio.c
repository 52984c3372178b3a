/* SPDX-License-Identifier: MIT */
/* Reads a chunk of a local file in pieces, hashing each byte once. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkio.h"
#include "log.h"
#include "tree.h"

#define CHUNKIO_BUF	CHUNKIO_PIECE
/*
 * A mapped chunk is hashed and sent in pieces this large. The size does
 * not matter to the client's CPU here, but larger sends wake the server's
 * stream less often: 512 KiB cost the server 0.05 CPU-s per GiB less than
 * 128 KiB (docs/performance.md).
 */
#define MAPPED_PIECE	(512u * 1024)

/*
 * A SIGBUS in this thread while it reads a mapped chunk jumps here (NULL:
 * not reading one). A file cut short under a mapping raises it.
 */
static _Thread_local sigjmp_buf *bus_jump;
static struct sigaction bus_prev;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static bool bus_ready;		/* the handler is in place */

static void
on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)si;
	(void)ctx;
	if (bus_jump != NULL)
		siglongjmp(*bus_jump, 1);
	/* Not a mapped read of ours: handled as if we had no handler. */
	sigaction(sig, &bus_prev, NULL);
	raise(sig);
}

static void
bus_install(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
	    .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	bus_ready = sigaction(SIGBUS, &sa, &bus_prev) == 0;
}

void
chunkio_read_error(const struct chunk_src *src, char *out, size_t cap)
{
	out[0] = '\0';
	if (src->tree != NULL)
		tree_read_error(src->tree, out, cap);
	if (out[0] == '\0')
		snprintf(out, cap, "the file");
}

enum pf_status
chunkio_pread(const struct chunk_src *src, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	if (src->tree != NULL)
		return tree_pread(src->tree, buf, n, off);
	while (got < n) {
		ssize_t r = pread(src->fd, (uint8_t *)buf + got, n - got,
		    (off_t)(off + got));

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return PF_EIO;
		got += (size_t)r;
	}
	return PF_OK;
}

/*
 * Hashes the k bytes at p, a mapping. A SIGBUS on the way (the file was
 * cut short) ends it as PF_EIO: only our own reads of a mapping are ever
 * jumped out of.
 */
static enum pf_status
hash_piece(const uint8_t *p, size_t k, struct chunkhash *h)
{
	sigjmp_buf jump;
	sigset_t bus;
	enum pf_status rc;

	/*
	 * The mask is not saved (that costs a system call per piece): after
	 * a jump SIGBUS, blocked while its handler ran, is unblocked here.
	 */
	if (sigsetjmp(jump, 0) != 0) {
		bus_jump = NULL;
		sigemptyset(&bus);
		sigaddset(&bus, SIGBUS);
		pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
		return PF_EIO;
	}
	bus_jump = &jump;
	rc = chunkhash_update(h, p, k);
	bus_jump = NULL;
	return rc;
}

/*
 * chunkio_read for a file whose pieces only go to the kernel: hashes and
 * sends from a mapping of the chunk, so its bytes are not copied out of
 * the page cache first (docs/performance.md, CPU per byte). A file cut
 * short under the mapping raises SIGBUS where our hash touches the
 * missing pages, and fails a plain send with EFAULT where the kernel
 * does: both end as PF_EIO. False if the chunk is not to be or cannot be
 * mapped (read it then); else true, with the outcome in *rc.
 */
static bool
read_mapped(const struct chunk_src *src, const struct proto_chunk_head *ch,
    struct chunkhash *h, const struct chunkio_sink *sink, enum pf_status *rc)
{
	uint64_t lead = ch->offset % (uint64_t)sysconf(_SC_PAGESIZE);
	size_t len = (size_t)(lead + ch->length), k;
	struct stat sb;
	uint8_t *m;

	if (src->tree != NULL || ch->length == 0 ||
	    (sink != NULL && !sink->kernel_only))
		return false;
	pthread_once(&bus_once, bus_install);
	if (!bus_ready)
		return false;
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, src->fd,
	    (off_t)(ch->offset - lead));
	if (m == MAP_FAILED)
		return false;
	(void)madvise(m, len, MADV_SEQUENTIAL);
	*rc = PF_OK;
	for (uint64_t pos = 0; *rc == PF_OK && pos < ch->length; pos += k) {
		const uint8_t *p = m + lead + pos;

		k = ch->length - pos < MAPPED_PIECE ?
		    (size_t)(ch->length - pos) : MAPPED_PIECE;
		if ((*rc = hash_piece(p, k, h)) == PF_OK && sink != NULL)
			*rc = sink->write(sink->arg, p, k);
	}
	munmap(m, len);
	/* A failed send may be the kernel's EFAULT on a file cut short. */
	if (*rc != PF_OK && *rc != PF_EIO && fstat(src->fd, &sb) == 0 &&
	    (uint64_t)sb.st_size < ch->offset + ch->length)
		*rc = PF_EIO;
	if (*rc == PF_EIO)
		log_error("read at %llu: file shrank",
		    (unsigned long long)ch->offset);
	return true;
}

enum pf_status
chunkio_read(const struct chunk_src *src, const struct proto_chunk_head *ch,
    uint8_t *buf, size_t bufsz, struct chunkhash *h,
    const struct chunkio_sink *sink, uint8_t digest[PF_SHA256_LEN])
{
	const struct proto_span *spans = NULL;
	size_t nspans = 0;
	uint32_t cs = 0;
	uint64_t pos = 0;
	enum pf_status rc;

	if (src->tree != NULL)
		spans = tree_spans(src->tree, &nspans, &cs);
	if ((rc = chunkhash_begin(h, ch, cs, spans, nspans)) != PF_OK)
		return rc;
	if (read_mapped(src, ch, h, sink, &rc))
		return rc == PF_OK ? chunkhash_final(h, digest) : rc;
	while (pos < ch->length) {
		size_t want = ch->length - pos < bufsz ?
		    (size_t)(ch->length - pos) : bufsz;
		ssize_t n;

		/* A transfer's files: read whole, a short file zero-filled. */
		if (src->tree != NULL)
			n = tree_pread(src->tree, buf, want, ch->offset +
			    pos) == PF_OK ? (ssize_t)want : -1;
		else
			n = pread(src->fd, buf, want,
			    (off_t)(ch->offset + pos));

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_error("read at %llu: %s",
			    (unsigned long long)(ch->offset + pos),
			    n == 0 ? "file shrank" : strerror(errno));
			return PF_EIO;
		}
		if ((rc = chunkhash_update(h, buf, (size_t)n)) != PF_OK)
			return rc;
		if (sink != NULL &&
		    (rc = sink->write(sink->arg, buf, (size_t)n)) != PF_OK)
			return rc;
		pos += (uint64_t)n;
	}
	if ((rc = chunkhash_final(h, digest)) == PF_OK && spans != NULL)
		tree_note_wholes(src->tree, h);
	return rc;
}

enum pf_status
chunkio_receipt(int fd, uint64_t size, uint32_t chunk_size,
    char hex[PF_SHA256_HEX])
{
	struct chunk_src src = { fd, NULL };

	return chunkio_receipt_src(&src, size, chunk_size, hex);
}

enum pf_status
chunkio_receipt_src(const struct chunk_src *src, uint64_t size,
    uint32_t chunk_size, char hex[PF_SHA256_HEX])
{
	struct chunkhash *h = NULL;
	uint8_t *buf = NULL, *digests = NULL, receipt[PF_SHA256_LEN];
	uint32_t count;
	enum pf_status rc;

	if ((rc = proto_chunk_count(size, chunk_size, &count)) != PF_OK)
		return rc;
	rc = PF_ENOMEM;
	h = chunkhash_new();
	buf = malloc(CHUNKIO_BUF);
	digests = malloc(((size_t)count + 1) * PF_SHA256_LEN);
	if (h == NULL || buf == NULL || digests == NULL)
		goto out;
	for (uint32_t i = 0; i < count; i++) {
		struct proto_chunk_head ch = { i, (uint64_t)i * chunk_size,
		    proto_chunk_length(size, chunk_size, i) };

		rc = chunkio_read(src, &ch, buf, CHUNKIO_BUF, h, NULL,
		    digests + (size_t)i * PF_SHA256_LEN);
		if (rc != PF_OK)
			goto out;
	}
	if ((rc = proto_receipt(size, chunk_size, digests, count,
	    receipt)) == PF_OK)
		pf_hex_encode(receipt, sizeof(receipt), hex);
out:
	chunkhash_free(h);
	free(buf);
	free(digests);
	return rc;
}

/* Shared by the threads of chunkio_digest_chunks. */
struct digest_job {
	const struct chunk_src	*src;
	uint64_t		 size;
	uint32_t		 chunk_size, count;
	const uint8_t		*want;
	uint8_t			*digests;
	_Atomic uint32_t	 next;		/* the next chunk to consider */
	_Atomic int		 rc;		/* the first failure */
};

static void *
digest_main(void *arg)
{
	struct digest_job *job = arg;
	struct chunkhash *h = chunkhash_new();
	uint8_t *buf = malloc(CHUNKIO_BUF);
	enum pf_status rc = PF_ENOMEM;
	uint32_t i;

	if (h == NULL || buf == NULL)
		goto out;
	rc = PF_OK;
	while (rc == PF_OK && atomic_load(&job->rc) == PF_OK &&
	    (i = atomic_fetch_add(&job->next, 1)) < job->count) {
		struct proto_chunk_head ch = { i, (uint64_t)i * job->chunk_size,
		    proto_chunk_length(job->size, job->chunk_size, i) };

		if (!(job->want[i / 8] >> (i % 8) & 1))
			continue;
		rc = chunkio_read(job->src, &ch, buf, CHUNKIO_BUF, h, NULL,
		    job->digests + (size_t)i * PF_SHA256_LEN);
	}
out:
	if (rc != PF_OK) {
		int none = PF_OK;

		atomic_compare_exchange_strong(&job->rc, &none, (int)rc);
	}
	chunkhash_free(h);
	free(buf);
	return NULL;
}

enum pf_status
chunkio_digest_chunks(const struct chunk_src *src, uint64_t size,
    uint32_t chunk_size, uint32_t count, const uint8_t *want,
    uint8_t *digests, unsigned threads)
{
	struct digest_job job = { .src = src, .size = size,
	    .chunk_size = chunk_size, .count = count, .want = want,
	    .digests = digests };
	pthread_t *tids;
	unsigned started = 0;

	if (threads == 0)
		threads = 1;
	if ((tids = calloc(threads, sizeof(*tids))) == NULL)
		return PF_ENOMEM;
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, digest_main,
		    &job) != 0)
			break;
	/* Without any thread, this one does the work. */
	if (started == 0)
		digest_main(&job);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	return (enum pf_status)atomic_load(&job.rc);
}
