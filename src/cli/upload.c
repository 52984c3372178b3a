/* SPDX-License-Identifier: MIT */
/*
 * The sender: logs in on a control connection, opens a session, and lets
 * a pool of workers, each with its own data connection, pull chunk jobs
 * from a shared queue until every chunk is acknowledged.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkio.h"
#include "log.h"
#include "progress.h"
#include "upload.h"
#include "wire.h"

#define WORKER_BUF	(1024u * 1024)
/* The server syncs the whole file before COMPLETE: allow it time. */
#define COMMIT_TIMEOUT_MS	(15u * 60 * 1000)
#define WINDOW		2	/* chunks in flight per connection */

/* Shared by the workers of one upload. */
struct job_queue {
	pthread_mutex_t	 lock;
	pthread_cond_t	 changed;
	uint32_t	*jobs;		/* ring of chunk indices */
	uint32_t	 cap, head, len;
	uint32_t	 acked, total;
	unsigned	*tries;		/* NACKs per chunk */
	bool		 failed;
};

struct upload {
	const struct upload_opts *o;
	struct upload_result	*r;
	int			 fd;
	uint64_t		 size;
	uint8_t			 key[PF_SHA256_LEN];
	struct job_queue	 q;
	uint8_t			*digests;	/* ours, 32 bytes a chunk */
	_Atomic uint64_t	 bytes_acked;
	_Atomic unsigned	 resent;
	pthread_mutex_t		 err_lock;
};

/* Records the first failure of an upload; later ones are dropped. */
static void
set_error(struct upload *u, enum pf_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_error(struct upload *u, enum pf_status rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&u->err_lock);
	if (u->r->status == PF_OK) {
		u->r->status = rc;
		va_start(ap, fmt);
		vsnprintf(u->r->message, sizeof(u->r->message), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&u->err_lock);
	pthread_mutex_lock(&u->q.lock);
	u->q.failed = true;
	pthread_cond_broadcast(&u->q.changed);
	pthread_mutex_unlock(&u->q.lock);
}

static void
net_error(struct upload *u, enum pf_status rc, const char *what,
    const char *srv)
{
	if (srv[0] != '\0')
		set_error(u, rc, "%s: %s", what, srv);
	else
		set_error(u, rc, "%s: %s", what, pf_status_message(rc));
}

static enum pf_status
queue_init(struct job_queue *q, uint32_t total)
{
	memset(q, 0, sizeof(*q));
	q->cap = total ? total : 1;
	q->jobs = calloc(q->cap, sizeof(*q->jobs));
	q->tries = calloc(q->cap, sizeof(*q->tries));
	if (q->jobs == NULL || q->tries == NULL)
		return PF_ENOMEM;
	for (uint32_t i = 0; i < total; i++)
		q->jobs[i] = i;
	q->len = q->total = total;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->changed, NULL);
	return PF_OK;
}

static void
queue_free(struct job_queue *q)
{
	pthread_cond_destroy(&q->changed);
	pthread_mutex_destroy(&q->lock);
	free(q->jobs);
	free(q->tries);
}

/*
 * Takes the next chunk to send. With wait set, blocks while the queue is
 * empty but chunks are still unacknowledged elsewhere (they may be NACKed
 * and come back). Returns -1 when there is nothing (more) to take.
 */
static int64_t
queue_pop(struct job_queue *q, bool wait)
{
	int64_t idx = -1;

	pthread_mutex_lock(&q->lock);
	while (wait && q->len == 0 && !q->failed && q->acked < q->total)
		pthread_cond_wait(&q->changed, &q->lock);
	if (q->len > 0 && !q->failed) {
		idx = q->jobs[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
	}
	pthread_mutex_unlock(&q->lock);
	return idx;
}

static void
queue_push(struct job_queue *q, uint32_t idx)
{
	pthread_mutex_lock(&q->lock);
	q->jobs[(q->head + q->len) % q->cap] = idx;
	q->len++;
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
}

static void
queue_ack(struct job_queue *q)
{
	pthread_mutex_lock(&q->lock);
	if (++q->acked == q->total)
		pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
}

/* Reads HELLO and returns its nonce; checks the protocol version. */
static enum pf_status
read_hello(struct pf_conn *c, uint8_t nonce[AUTH_NONCE_LEN], char *err,
    size_t errcap)
{
	const char *n64;
	uint64_t version;
	json_t *j = NULL;
	enum pf_status rc;

	if ((rc = wire_expect_json(c, PROTO_HELLO, &j, err, errcap)) != PF_OK)
		return rc;
	rc = PF_EVERSION;
	if (wire_json_u64(j, "version", &version) == -1 ||
	    version != PROTO_VERSION)
		goto out;
	rc = PF_EBADFRAME;
	n64 = wire_json_str(j, "nonce", NULL);
	if (n64 == NULL || pf_base64_decode(n64, nonce, AUTH_NONCE_LEN) !=
	    AUTH_NONCE_LEN)
		goto out;
	rc = PF_OK;
out:
	json_decref(j);
	return rc;
}

/* Sends {"message": msg} (plus mechanism on AUTH) and reads the reply. */
static enum pf_status
scram_step(struct pf_conn *c, int type, const char *msg, int want,
    char **reply, char *err, size_t errcap)
{
	json_t *j;
	const char *m;
	enum pf_status rc;

	j = type == PROTO_AUTH ?
	    json_pack("{s:s,s:s}", "mechanism", "SCRAM-SHA-256", "message",
	    msg) : json_pack("{s:s}", "message", msg);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, type, j);
	json_decref(j);
	if (rc != PF_OK)
		return rc;
	if ((rc = wire_expect_json(c, want, &j, err, errcap)) != PF_OK)
		return rc;
	m = wire_json_str(j, "message", NULL);
	*reply = m ? strdup(m) : NULL;
	json_decref(j);
	return *reply != NULL ? PF_OK : PF_EBADFRAME;
}

/* SCRAM-SHA-256 login; on success the session key is in u->key. */
static enum pf_status
login(struct upload *u, struct pf_conn *c, char *err, size_t errcap)
{
	struct auth_client *ac;
	char *msg = NULL, *reply = NULL;
	enum pf_status rc = PF_ENOMEM;

	if ((ac = auth_client_new(u->o->user, u->o->secret)) == NULL)
		return PF_ENOMEM;
	if ((rc = auth_client_first(ac, &msg)) != PF_OK ||
	    (rc = scram_step(c, PROTO_AUTH, msg, PROTO_CHALLENGE, &reply,
	    err, errcap)) != PF_OK)
		goto out;
	free(msg);
	msg = NULL;
	if ((rc = auth_client_final(ac, reply, &msg)) != PF_OK)
		goto out;
	free(reply);
	reply = NULL;
	if ((rc = scram_step(c, PROTO_PROOF, msg, PROTO_AUTH_OK, &reply,
	    err, errcap)) != PF_OK)
		goto out;
	/* Mutual: a server that cannot sign does not know our verifier. */
	if ((rc = auth_client_verify(ac, reply)) != PF_OK) {
		snprintf(err, errcap, "server signature is wrong: it is not "
		    "the server that holds this user");
		goto out;
	}
	rc = auth_client_session_key(ac, u->key);
out:
	free(msg);
	free(reply);
	auth_client_free(ac);
	return rc;
}

static enum pf_status
open_session(struct upload *u, struct pf_conn *c, char *err, size_t errcap)
{
	uint8_t head[POLICY_HEAD_LEN];
	size_t headlen = u->size < sizeof(head) ? (size_t)u->size :
	    sizeof(head);
	char *head64 = NULL, *path = NULL;
	const char *name = u->o->name, *sid, *sname;
	uint64_t chunks;
	json_t *j = NULL, *jname;
	enum pf_status rc = PF_EIO;

	if (headlen > 0 && pread(u->fd, head, headlen, 0) != (ssize_t)headlen)
		return PF_EIO;
	rc = PF_ENOMEM;
	if ((head64 = pf_base64_encode(head, headlen)) == NULL)
		goto out;
	if (name == NULL) {
		if ((path = strdup(u->o->file)) == NULL)
			goto out;
		name = basename(path);
	}
	/* jansson refuses invalid UTF-8; so would any server. */
	if ((jname = json_string(name)) == NULL) {
		snprintf(err, errcap, "the name is not valid UTF-8");
		rc = PF_EBADNAME;
		goto out;
	}
	j = json_pack("{s:o,s:I,s:I,s:s}", "name", jname, "size",
	    (json_int_t)u->size, "chunk_size", (json_int_t)u->o->chunk_size,
	    "head", head64);
	if (j == NULL)
		goto out;
	if ((rc = wire_send_json(c, PROTO_OPEN, j)) != PF_OK)
		goto out;
	json_decref(j);
	j = NULL;
	if ((rc = wire_expect_json(c, PROTO_OPENED, &j, err, errcap)) != PF_OK)
		goto out;
	rc = PF_EBADFRAME;
	sid = wire_json_str(j, "session", NULL);
	sname = wire_json_str(j, "name", NULL);
	if (sid == NULL || strlen(sid) != SESSION_ID_LEN || sname == NULL ||
	    wire_json_u64(j, "chunks", &chunks) == -1 ||
	    chunks != u->r->chunks)
		goto out;
	snprintf(u->r->session, sizeof(u->r->session), "%s", sid);
	snprintf(u->r->name, sizeof(u->r->name), "%s", sname);
	rc = PF_OK;
out:
	json_decref(j);
	free(head64);
	free(path);
	return rc;
}

static enum pf_status
join(struct upload *u, struct pf_conn *c, char *err, size_t errcap)
{
	uint8_t nonce[AUTH_NONCE_LEN], proof[PF_SHA256_LEN];
	char *proof64;
	json_t *j;
	enum pf_status rc;

	if ((rc = read_hello(c, nonce, err, errcap)) != PF_OK ||
	    (rc = auth_join_proof(u->key, u->r->session, nonce, sizeof(nonce),
	    proof)) != PF_OK)
		return rc;
	if ((proof64 = pf_base64_encode(proof, sizeof(proof))) == NULL)
		return PF_ENOMEM;
	j = json_pack("{s:s,s:s}", "session", u->r->session, "proof",
	    proof64);
	free(proof64);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, PROTO_JOIN, j);
	json_decref(j);
	if (rc != PF_OK)
		return rc;
	return wire_expect_json(c, PROTO_JOINED, NULL, err, errcap);
}

static enum pf_status
send_piece(void *arg, const void *p, size_t n)
{
	return pf_conn_write_full(arg, p, n);
}

/* Sends chunk idx as one CHUNK frame, hashing it as it is read. */
static enum pf_status
send_chunk(struct upload *u, struct pf_conn *c, uint32_t idx, uint8_t *buf,
    struct pf_sha256 *h)
{
	uint32_t cs = u->o->chunk_size;
	struct proto_chunk_head ch = { idx, (uint64_t)idx * cs,
	    proto_chunk_length(u->size, cs, idx) };
	struct proto_header fh = { PROTO_VERSION, PROTO_CHUNK, 0,
	    PROTO_CHUNK_HEAD_LEN + ch.length + PROTO_CHUNK_TRAILER_LEN };
	uint8_t head[PROTO_HEADER_LEN + PROTO_CHUNK_HEAD_LEN];
	uint8_t digest[PF_SHA256_LEN];
	enum pf_status rc;

	proto_encode_header(&fh, head);
	proto_encode_chunk_head(&ch, head + PROTO_HEADER_LEN);
	if ((rc = pf_conn_write_full(c, head, sizeof(head))) != PF_OK)
		return rc;
	rc = chunkio_read(u->fd, &ch, buf, WORKER_BUF, h, send_piece, c,
	    digest);
	if (rc != PF_OK)
		return rc;
	/* Kept for the receipt; a re-send recomputes the same value. */
	memcpy(u->digests + (size_t)idx * PF_SHA256_LEN, digest,
	    sizeof(digest));
	return pf_conn_write_full(c, digest, sizeof(digest));
}

/* Handles one ACK or NACK for the oldest chunk in flight. */
static enum pf_status
read_response(struct upload *u, struct pf_conn *c, uint32_t idx, char *err,
    size_t errcap)
{
	uint64_t got;
	int type;
	enum pf_status rc;
	unsigned tries;

	if ((rc = wire_expect_ack(c, &type, &got, err, errcap)) != PF_OK)
		return rc;
	/* Responses come in sending order; the index is only a cross-check. */
	if (type == PROTO_ACK && got != idx) {
		snprintf(err, errcap, "ACK for chunk %llu, expected %u",
		    (unsigned long long)got, idx);
		return PF_EPROTO;
	}
	if (type == PROTO_ACK) {
		atomic_fetch_add(&u->bytes_acked,
		    proto_chunk_length(u->size, u->o->chunk_size, idx));
		queue_ack(&u->q);
		return PF_OK;
	}
	pthread_mutex_lock(&u->q.lock);
	tries = ++u->q.tries[idx];
	pthread_mutex_unlock(&u->q.lock);
	if (tries > u->o->retries) {
		snprintf(err, errcap, "chunk %u failed its check %u times",
		    idx, tries);
		return PF_EINTEGRITY;
	}
	atomic_fetch_add(&u->resent, 1);
	log_debug("chunk %u NACKed, sending it again", idx);
	queue_push(&u->q, idx);
	return PF_OK;
}

/*
 * A write failed: the server may have said why in an ERROR frame before
 * it closed. Returns that error, or rc if there is none to read.
 */
static enum pf_status
why_closed(struct pf_conn *c, enum pf_status rc, char *err, size_t errcap)
{
	enum pf_status why;
	uint64_t idx;
	int type;

	pf_conn_set_timeout(c, 1000);
	why = wire_expect_ack(c, &type, &idx, err, errcap);
	if (pf_status_is_wire(why) && why != PF_EPROTO)
		return why;
	err[0] = '\0';
	return rc;
}

static void *
worker_main(void *arg)
{
	struct upload *u = arg;
	struct pf_conn *c = NULL;
	struct pf_sha256 *h = pf_sha256_new();
	uint8_t *buf = malloc(WORKER_BUF);
	uint32_t inflight[WINDOW];
	unsigned n = 0;
	char err[256] = "";
	enum pf_status rc = PF_ENOMEM;

	if (h == NULL || buf == NULL) {
		set_error(u, rc, "out of memory");
		goto out;
	}
	rc = pf_tcp_connect(u->o->host, u->o->port, u->o->timeout_ms, &c);
	if (rc != PF_OK) {
		net_error(u, rc, "cannot open a data connection", "");
		goto out;
	}
	pf_conn_set_timeout(c, u->o->timeout_ms);
	if ((rc = join(u, c, err, sizeof(err))) != PF_OK) {
		net_error(u, rc, "cannot join the session", err);
		goto out;
	}
	for (;;) {
		int64_t idx = -1;

		/* Keep WINDOW chunks in flight: no idling on ACKs. */
		if (n < WINDOW)
			idx = queue_pop(&u->q, n == 0);
		if (idx >= 0) {
			rc = send_chunk(u, c, (uint32_t)idx, buf, h);
			if (rc != PF_OK && rc != PF_EIO)
				rc = why_closed(c, rc, err, sizeof(err));
			if (rc != PF_OK) {
				net_error(u, rc, rc == PF_EIO ? "cannot read "
				    "the file" : "chunk refused", err);
				goto out;
			}
			inflight[n++] = (uint32_t)idx;
			continue;
		}
		if (n == 0)
			break;
		rc = read_response(u, c, inflight[0], err, sizeof(err));
		if (rc != PF_OK) {
			net_error(u, rc, "chunk refused", err);
			goto out;
		}
		memmove(inflight, inflight + 1, --n * sizeof(inflight[0]));
	}
out:
	pf_conn_free(c);
	pf_sha256_free(h);
	free(buf);
	return NULL;
}

static enum pf_status
run_workers(struct upload *u)
{
	unsigned n = u->o->threads, started = 0;
	pthread_t *tids;

	if (n > u->r->chunks)
		n = u->r->chunks;
	if (n == 0)
		return PF_OK;
	if ((tids = calloc(n, sizeof(*tids))) == NULL)
		return PF_ENOMEM;
	for (; started < n; started++)
		if (pthread_create(&tids[started], NULL, worker_main, u) != 0)
			break;
	if (started == 0)
		set_error(u, PF_ENOMEM, "cannot start worker threads");
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	return u->r->status;
}

static enum pf_status
commit(struct upload *u, struct pf_conn *c, char *err, size_t errcap)
{
	uint8_t receipt[PF_SHA256_LEN];
	const char *digest;
	json_t *j;
	enum pf_status rc;

	rc = proto_receipt(u->size, u->o->chunk_size, u->digests,
	    u->r->chunks, receipt);
	if (rc != PF_OK)
		return rc;
	pf_hex_encode(receipt, sizeof(receipt), u->r->digest);
	if ((j = json_pack("{s:s}", "digest", u->r->digest)) == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, PROTO_COMMIT, j);
	json_decref(j);
	if (rc != PF_OK)
		return rc;
	if (u->o->timeout_ms < COMMIT_TIMEOUT_MS)
		pf_conn_set_timeout(c, COMMIT_TIMEOUT_MS);
	if ((rc = wire_expect_json(c, PROTO_COMPLETE, &j, err,
	    errcap)) != PF_OK)
		return rc;
	digest = wire_json_str(j, "digest", NULL);
	rc = digest != NULL && strcmp(digest, u->r->digest) == 0 ? PF_OK :
	    PF_EINTEGRITY;
	if (rc != PF_OK)
		snprintf(err, errcap, "server reports another receipt");
	json_decref(j);
	return rc;
}

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum pf_status
open_file(struct upload *u)
{
	struct stat sb;

	if ((u->fd = open(u->o->file, O_RDONLY | O_CLOEXEC)) == -1) {
		set_error(u, PF_EIO, "%s: %s", u->o->file, strerror(errno));
		return PF_EIO;
	}
	if (fstat(u->fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		set_error(u, PF_EIO, "%s: not a regular file", u->o->file);
		return PF_EIO;
	}
	u->size = (uint64_t)sb.st_size;
	if (proto_chunk_count(u->size, u->o->chunk_size,
	    &u->r->chunks) != PF_OK) {
		set_error(u, PF_ETOOLARGE, "%s: more than %u chunks; use a "
		    "larger --chunk-size", u->o->file, PROTO_MAX_CHUNKS);
		return PF_ETOOLARGE;
	}
	return PF_OK;
}

enum pf_status
upload_run(const struct upload_opts *o, struct upload_result *r)
{
	struct upload u = { .o = o, .r = r, .fd = -1 };
	struct pf_conn *c = NULL;
	struct progress *bar = NULL;
	uint8_t nonce[AUTH_NONCE_LEN];
	char err[256] = "";
	double start = now_seconds();
	enum pf_status rc;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&u.err_lock, NULL);
	if (open_file(&u) != PF_OK)
		goto out;
	r->bytes = u.size;
	if (queue_init(&u.q, r->chunks) != PF_OK ||
	    (u.digests = calloc((size_t)r->chunks + 1, PF_SHA256_LEN)) ==
	    NULL) {
		set_error(&u, PF_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = pf_tcp_connect(o->host, o->port, o->timeout_ms, &c)) !=
	    PF_OK) {
		set_error(&u, rc, "cannot connect to %s port %u", o->host,
		    o->port);
		goto out;
	}
	pf_conn_set_timeout(c, o->timeout_ms);
	if ((rc = read_hello(c, nonce, err, sizeof(err))) != PF_OK) {
		net_error(&u, rc, "no greeting from server", err);
		goto out;
	}
	if ((rc = login(&u, c, err, sizeof(err))) != PF_OK) {
		net_error(&u, rc == PF_EBADFRAME ? rc : PF_EAUTH,
		    "login failed", err);
		goto out;
	}
	if ((rc = open_session(&u, c, err, sizeof(err))) != PF_OK) {
		net_error(&u, rc, "upload refused", err);
		goto out;
	}
	if (o->progress)
		bar = progress_start(r->name, u.size, &u.bytes_acked);
	rc = run_workers(&u);
	progress_stop(bar);
	if (rc != PF_OK)
		goto out;
	if ((rc = commit(&u, c, err, sizeof(err))) != PF_OK)
		net_error(&u, rc, "commit failed", err);
out:
	if (c != NULL && r->status != PF_OK && r->session[0] != '\0') {
		json_t *abort_req = json_object();

		if (abort_req != NULL)
			wire_send_json(c, PROTO_ABORT, abort_req);
		json_decref(abort_req);
	}
	pf_conn_free(c);
	if (u.fd != -1)
		close(u.fd);
	if (r->chunks > 0 || u.q.jobs != NULL)
		queue_free(&u.q);
	free(u.digests);
	pf_wipe(u.key, sizeof(u.key));
	pthread_mutex_destroy(&u.err_lock);
	r->retries = atomic_load(&u.resent);
	r->seconds = now_seconds() - start;
	return r->status;
}
