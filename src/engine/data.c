/* SPDX-License-Identifier: MIT */
/*
 * The frames of a data connection: JOIN of a session, then CHUNKs streamed
 * to the staging file, each verified, made durable and acknowledged.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif
#include <unistd.h>

#include "clock.h"
#include "counters.h"
#include "data.h"
#include "log.h"
#include "peruser.h"
#include "registry.h"
#include "reply.h"
#include "session.h"
#include "store.h"
#include "stream_int.h"
#include "tls.h"
#include "wire.h"

/*
 * Answers a connection holds back while their chunks are synced. The
 * client keeps a few chunks in flight (cli/worker.c, WINDOW); a client
 * that sends more waits for the oldest sync. A few hundred bytes each.
 */
#define DATA_PIPELINE	8

/* How long a JOIN waits for a copy another JOIN is making (50 ms a try). */
#define COPY_TRIES	200

/* The answer to one CHUNK, sent in the order the chunks came. */
struct data_answer {
	struct journal_ticket	 t;	/* synced: the chunk's way to disk */
	bool			 synced;
	int			 type;	/* PROTO_ACK or PROTO_NACK */
	uint32_t		 index;
	uint64_t		 started;	/* us: the chunk histogram */
	uint8_t			 digest[PF_SHA256_LEN];
};

/* A ring of answers; wakefd is written by the committer (journal.c). */
struct data_acks {
	struct data_answer	 a[DATA_PIPELINE];
	unsigned		 head, n;
	int			 wakefd;
};

static struct data_acks *
acks_new(void)
{
	struct data_acks *q = calloc(1, sizeof(*q));

	if (q != NULL &&
	    (q->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		log_error("%s: eventfd: %s", __func__, strerror(errno));
		free(q);
		q = NULL;
	}
	return q;
}

/* A new answer at the tail; the caller checked there is room. */
static struct data_answer *
acks_push(struct data_acks *q, int type, uint32_t index, bool synced)
{
	struct data_answer *a = &q->a[(q->head + q->n++) % DATA_PIPELINE];

	a->type = type;
	a->index = index;
	a->synced = synced;
	a->t.wakefd = q->wakefd;
	return a;
}

/* The oldest answer if it is ready, taken off the ring; else NULL. */
static struct data_answer *
acks_pop_ready(struct data_acks *q)
{
	struct data_answer *a = &q->a[q->head];

	if (q->n == 0 || (a->synced && !atomic_load(&a->t.done)))
		return NULL;
	q->head = (q->head + 1) % DATA_PIPELINE;
	q->n--;
	return a;
}

/*
 * Sends answer a, whose sync (if any) is done: the chunk is marked held
 * first, so an ACK is never sent for a chunk the server does not hold.
 */
static enum pf_status
answer(struct stream *st, struct data_answer *a)
{
	struct session *s = st->session;
	const struct stream_env *env = st->env;
	enum pf_status rc;

	if (!a->synced)
		return wire_send_ack(st->c, a->type, a->index);
	/*
	 * The committer may still be writing our wakefd: wait it out, so
	 * data_release can close it however soon a COMMIT follows the ACK.
	 */
	session_settle(s);
	if ((rc = a->t.rc) != PF_OK) {
		session_release_chunk(s, a->index, false);
		/* After a failed sync nothing staged can be trusted. */
		if (session_broken(s))
			registry_end(env->registry, s, SESSION_FAILED, rc);
		return reply_fail(st, rc, "cannot make chunk %lu durable",
		    (unsigned long)a->index);
	}
	session_held_chunk(s, a->index, a->digest);
	atomic_fetch_add(&env->counters->chunks_acked, 1);
	rc = wire_send_ack(st->c, PROTO_ACK, a->index);
	counters_observe_chunk(env->counters, pf_now_us() - a->started);
	return rc;
}

/* Sends the answers that are ready, oldest first, without waiting. */
static enum pf_status
flush(struct stream *st)
{
	struct data_answer *a;
	enum pf_status rc;

	while ((a = acks_pop_ready(st->acks)) != NULL)
		if ((rc = answer(st, a)) != PF_OK)
			return rc;
	return PF_OK;
}

enum pf_status
data_wait(struct stream *st)
{
	struct data_acks *q = st->acks;
	enum pf_status rc;
	uint64_t v;

	for (;;) {
		struct pollfd p[2] = { { .fd = q->wakefd, .events = POLLIN },
		    { .fd = st->c->fd, .events = POLLIN } };
		bool full;

		if ((rc = flush(st)) != PF_OK)
			return rc;
		/* Busy while chunks are on their way to disk (engine_stop). */
		atomic_store(st->busy, q->n > 0);
		if (q->n == 0)
			return PF_OK;
		full = q->n == DATA_PIPELINE;
		/* What TLS decrypted already never shows on the socket. */
		if (!full && st->c->ops->pending != NULL &&
		    st->c->ops->pending(st->c) > 0)
			return PF_OK;
		if (poll(p, full ? 1 : 2, -1) == -1 && errno != EINTR) {
			log_error("%s: poll: %s", __func__, strerror(errno));
			return PF_EINTERNAL;
		}
		if ((p[0].revents & POLLIN) &&
		    read(q->wakefd, &v, sizeof(v)) == -1 && errno != EAGAIN)
			return PF_EINTERNAL;
		if (!full && p[1].revents != 0)
			return PF_OK;
	}
}

void
data_release(struct stream *st, bool answering)
{
	struct data_acks *q = st->acks;
	struct session *s = st->session;
	struct data_answer *a;

	if (q == NULL)
		return;
	while (q->n > 0) {
		a = &q->a[q->head];
		if (a->synced)
			session_wait_chunk(s, &a->t);
		a = acks_pop_ready(q);
		if (answering) {
			answering = answer(st, a) == PF_OK;
			continue;
		}
		if (!a->synced)
			continue;
		/* Durable though unanswered: held, as after a restart. */
		if (a->t.rc == PF_OK)
			session_held_chunk(s, a->index, a->digest);
		else
			session_release_chunk(s, a->index, false);
		if (session_broken(s))
			registry_end(st->env->registry, s, SESSION_FAILED,
			    a->t.rc);
	}
	close(q->wakefd);
	free(q);
	st->acks = NULL;
}

enum pf_status
data_start(struct stream *st, struct session *s)
{
	st->buf = malloc(STREAM_BUF);
	st->hash = chunkhash_new();
	st->acks = acks_new();
	/* A store takes a chunk whole: one buffer per stream, no disk. */
	if (session_remote(s))
		st->chunk = malloc(session_chunk_size(s));
	if (st->buf == NULL || st->hash == NULL || st->acks == NULL ||
	    (session_remote(s) && st->chunk == NULL))
		return PF_ENOMEM;
	st->session = s;
	stream_set_role(st, ROLE_DATA);
	session_attach(s, false);
	return PF_OK;
}

/*
 * Lowers this thread's priority by n: a data connection's thread hashes
 * and copies as long as the CPU lets it, and on a busy machine would keep
 * logins and the gateway's threads waiting (on 2 cores, 103 ms at p99 for
 * a list). On Linux a thread id is a "process" to setpriority; the thread
 * ends with the connection, so the priority needs no restoring.
 */
static void
nicer(unsigned n)
{
#ifdef __linux__
	pid_t tid = (pid_t)syscall(SYS_gettid);
	int now;

	if (n == 0)
		return;
	errno = 0;
	now = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno == 0 && setpriority(PRIO_PROCESS, (id_t)tid,
	    now + (int)n > 19 ? 19 : now + (int)n) == -1)
		log_debug("setpriority: %s", strerror(errno));
#else
	(void)n;
#endif
}

/*
 * Refuses a JOIN of session id (idlen bytes): as cancelled if it was
 * cancelled on purpose, or the client would start over; else unknown.
 */
static enum pf_status
refuse_join(struct stream *st, const char *id, size_t idlen)
{
	char sid[PROTO_ID_LEN + 1];
	enum pf_status rc;

	snprintf(sid, sizeof(sid), "%.*s", (int)idlen, id);
	if ((rc = registry_ended_reason(st->env->registry, sid, NULL)) !=
	    PF_OK)
		return reply_fail(st, rc, "session ended: %s",
		    pf_status_message(rc));
	return reply_fail(st, PF_ENOSESSION, "no such session");
}

/*
 * A new live copy of stored session id (another node holds its login),
 * from its record, in *out (the caller's reference). PF_EBUSY if another
 * JOIN is making it (look it up again), else the store's or registry's
 * status.
 */
static enum pf_status
new_copy(struct stream *st, const char *id, struct session **out)
{
	const struct stream_env *env = st->env;
	struct s3store_record rec;
	struct registry_ask ask = { .id = id, .room = UINT64_MAX,
	    .copy = true };
	struct session *s = NULL;
	char why[256];
	enum pf_status rc;

	if ((rc = store_load(env->store, id, &rec)) != PF_OK)
		return rc;
	ask.user = rec.user;
	ask.size = rec.size;
	if ((rc = registry_open(env->registry, s3store_nchunks(&rec), &ask,
	    &s, why, sizeof(why))) != PF_OK) {
		if (rc != PF_EBUSY)
			log_info("%s: no copy of session %s here: %s",
			    st->c->peer, id, why);
		return rc;
	}
	if ((rc = session_restore_remote(s, env->store, &rec, NULL)) !=
	    PF_OK) {
		registry_retire(env->registry, s);
		session_unref(s);
		return rc;
	}
	log_info("%s: session %s joined from the store (%u of %u chunks "
	    "held)", st->c->peer, id, session_chunks_acked(s),
	    session_nchunks(s));
	*out = s;
	return PF_OK;
}

/*
 * The live session id in *out (a new reference): the table's, else, on
 * the store, a copy made from its record. Two JOINs at once make one
 * copy: the second waits until the first's is ready.
 */
static enum pf_status
find_session(struct stream *st, const char *id, struct session **out)
{
	struct timespec nap = { 0, 50 * 1000000L };
	struct session *s;
	enum pf_status rc = PF_ENOSESSION;

	for (int i = 0; i < COPY_TRIES; i++) {
		if (registry_lookup(st->env->registry, id, &s) == PF_OK) {
			if (session_ready(s) ||
			    !store_shared(st->env->store)) {
				*out = s;
				return PF_OK;
			}
			session_unref(s);
		} else if (!store_shared(st->env->store))
			return PF_ENOSESSION;
		else if ((rc = new_copy(st, id, out)) != PF_EBUSY ||
		    registry_lookup(st->env->registry, id, &s) != PF_OK)
			return rc;
		else
			session_unref(s);
		nanosleep(&nap, NULL);
	}
	return PF_EBUSY;
}

/*
 * True if proof is this connection's JOIN proof for s: keyed by the
 * session key, bound to this connection's nonce and TLS channel.
 */
static bool
proof_ok(struct stream *st, struct session *s,
    const uint8_t proof[PF_SHA256_LEN])
{
	uint8_t want[PF_SHA256_LEN], key[PF_SHA256_LEN];
	uint8_t ex[SCRAM_EXPORTER_LEN];
	bool tls, ok = false;

	if (session_get_key(s, key)) {
		tls = pf_conn_tls_exporter(st->c, ex) == PF_OK;
		ok = scram_join_proof(key, session_id(s), st->nonce,
		    sizeof(st->nonce), tls ? ex : NULL, want) == PF_OK &&
		    pf_equal_ct(proof, want, sizeof(want));
	}
	pf_wipe(key, sizeof(key));
	pf_wipe(ex, sizeof(ex));
	return ok;
}

/*
 * True if proof is right for s; a stored session's key may be newer than
 * this node's copy (a login on another node resumed it), so it is read
 * from the store once more before a proof is refused.
 */
static bool
join_proof_ok(struct stream *st, struct session *s,
    const uint8_t proof[PF_SHA256_LEN])
{
	uint8_t key[PF_SHA256_LEN];
	bool had = session_get_key(s, key);

	pf_wipe(key, sizeof(key));
	if (proof_ok(st, s, proof))
		return true;
	if (!session_remote(s) || session_reload_key(s) != PF_OK ||
	    !proof_ok(st, s, proof))
		return false;
	if (had)
		log_info("%s: session %s: a newer key read from the store "
		    "(a login elsewhere)", st->c->peer, session_id(s));
	return true;
}

enum pf_status
data_on_join(struct stream *st, const json_t *req)
{
	struct session *s = NULL;
	uint8_t proof[PF_SHA256_LEN];
	char sid[PROTO_ID_LEN + 1];
	const char *id, *proof64;
	size_t idlen;
	enum pf_status rc;
	json_t *j;

	if (st->role != ROLE_NEW || st->auth != NULL)
		return reply_fail(st, PF_EPROTO, "JOIN not expected here");
	id = wire_json_str(req, "session", &idlen);
	proof64 = wire_json_str(req, "proof", NULL);
	if (id == NULL || idlen != PROTO_ID_LEN || proof64 == NULL ||
	    pf_base64_decode(proof64, proof, sizeof(proof)) != sizeof(proof))
		return reply_fail(st, PF_EBADFRAME,
		    "JOIN needs a session id and "
		    "a 32-byte proof");
	snprintf(sid, sizeof(sid), "%.*s", (int)idlen, id);
	rc = find_session(st, sid, &s);
	/* The store did not answer: the client tries the JOIN again. */
	if (rc != PF_OK && rc != PF_ENOSESSION && rc != PF_ECANCELLED)
		return reply_fail(st, PF_EBUSY, "session %s cannot be read "
		    "now: %s", sid, pf_status_message(rc));
	/* Owner 0: recovered after a restart, no login holds it yet. */
	if (rc != PF_OK || session_state(s) != SESSION_RECEIVING ||
	    session_owned_by(s, 0)) {
		session_unref(s);
		return refuse_join(st, id, idlen);
	}
	if (!join_proof_ok(st, s, proof)) {
		session_unref(s);
		atomic_fetch_add(&st->env->counters->auth_failures, 1);
		pf_log_limited(st->env->refusals, PF_LOG_WARN, "%s: join proof "
		    "refused", st->c->peer);
		return reply_fail(st, PF_EAUTH, "join proof refused");
	}
	if (!peruser_acquire(st->env->peruser, session_user(s))) {
		rc = reply_fail(st, PF_EBUSY,
		    "too many connections for user %s",
		    session_user(s));
		session_unref(s);
		return rc;
	}
	snprintf(st->user, sizeof(st->user), "%s", session_user(s));
	st->counted = true;
	session_touch(s);
	if (data_start(st, s) != PF_OK) {
		session_unref(s);
		return reply_fail(st, PF_EINTERNAL, "out of memory");
	}
	nicer(st->env->cfg->stream_nice);
	if ((j = json_pack("{s:s}", "session", session_id(s))) == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(st->c, PROTO_JOINED, j);
	json_decref(j);
	return rc;
}

/* Reads and drops n bytes of a chunk that is not to be stored. */
static enum pf_status
drain(struct stream *st, uint64_t n)
{
	enum pf_status rc;

	while (n > 0) {
		size_t k = n < STREAM_BUF ? (size_t)n : STREAM_BUF;

		if ((rc = pf_conn_read_full(st->c, st->buf, k)) != PF_OK)
			return rc;
		session_count_bytes(st->session, k);
		n -= k;
	}
	return PF_OK;
}

/*
 * Streams the data of claimed chunk ch from the connection into the
 * staging file, hashing as it goes, then reads the digest the client
 * sent into want and the one computed into got. *head_differs tells
 * whether chunk 0 did not start with the declared head (then nothing
 * more of it was stored).
 */
static enum pf_status
receive_chunk(struct stream *st, const struct proto_chunk_head *ch,
    uint8_t got[PF_SHA256_LEN], uint8_t want[PF_SHA256_LEN],
    bool *head_differs)
{
	struct session *s = st->session;
	uint64_t pos = 0;
	enum pf_status rc;

	const struct proto_span *spans;
	size_t nspans;

	*head_differs = false;
	spans = session_spans(s, &nspans);
	if ((rc = chunkhash_begin(st->hash, ch, session_chunk_size(s), spans,
	    nspans)) != PF_OK)
		return rc;
	while (pos < ch->length) {
		size_t k = ch->length - pos < STREAM_BUF ?
		    (size_t)(ch->length - pos) : STREAM_BUF;

		/* Earlier chunks' ACKs go out as soon as they are synced. */
		if ((rc = flush(st)) != PF_OK ||
		    (rc = pf_conn_read_full(st->c, st->buf, k)) != PF_OK)
			return rc;
		session_count_bytes(s, k);
		atomic_fetch_add(&st->env->counters->bytes_received, k);
		/*
		 * The declared head must be what really arrives. Damage in
		 * transit looks the same, so the verdict waits for the digest;
		 * meanwhile nothing more of this chunk is stored.
		 */
		if (ch->index == 0 && pos == 0 &&
		    session_head_differs(s, st->buf))
			*head_differs = true;
		if ((rc = chunkhash_update(st->hash, st->buf, k)) != PF_OK)
			return rc;
		if (!*head_differs && st->chunk != NULL)
			memcpy(st->chunk + pos, st->buf, k);
		else if (!*head_differs)
			rc = session_write_chunk(s, ch->offset + pos, st->buf,
			    k);
		if (rc != PF_OK)
			return reply_fail(st, rc, "cannot store chunk %llu",
			    (unsigned long long)ch->index);
		pos += k;
	}
	if ((rc = pf_conn_read_full(st->c, want, PF_SHA256_LEN)) != PF_OK)
		return rc;
	return chunkhash_final(st->hash, got);
}

/*
 * Claimed chunk ch, verified (digest got), whole in st->chunk, to the
 * store; its ACK is queued once the store holds it (the durable ACK),
 * behind the answers before it. A chunk the store refuses is released
 * to be sent again, or ends the session if the store ended it.
 */
static enum pf_status
put_chunk(struct stream *st, const struct proto_chunk_head *ch,
    const uint8_t got[PF_SHA256_LEN])
{
	struct session *s = st->session;
	uint32_t i = (uint32_t)ch->index;
	uint64_t started = pf_now_us();
	uint8_t body[PF_SHA256_LEN];
	enum pf_status rc;

	/* The store checks the bytes against their plain SHA-256: a
	   second pass, from memory (the chunk digest covers its head). */
	if ((rc = pf_sha256(st->chunk, (size_t)ch->length, body)) != PF_OK)
		return reply_fail(st, rc, "cannot hash chunk %lu",
		    (unsigned long)i);
	rc = session_put_chunk(s, i, st->chunk, (size_t)ch->length, got,
	    body);
	if (rc == PF_ECHECKSUM) {
		/* Another node holds other bytes for it: never ours. */
		session_release_chunk(s, i, true);
		atomic_fetch_add(&st->env->counters->chunks_nacked, 1);
		acks_push(st->acks, PROTO_NACK, i, false);
		return flush(st);
	}
	if (rc != PF_OK) {
		session_release_chunk(s, i, false);
		if (rc == PF_ECANCELLED)
			registry_end(st->env->registry, s, SESSION_CANCELLED,
			    rc);
		return reply_fail(st, rc, "the store did not take chunk %lu",
		    (unsigned long)i);
	}
	atomic_fetch_add(&st->env->counters->chunks_acked, 1);
	counters_observe_chunk(st->env->counters, pf_now_us() - started);
	log_debug("%s: session %s chunk %lu stored in S3", st->c->peer,
	    session_id(s), (unsigned long)i);
	acks_push(st->acks, PROTO_ACK, i, false);
	return flush(st);
}

/*
 * One CHUNK frame: claims the chunk, receives it and queues its answer:
 * ACK once synced, or NACK. Only the connection that claimed a chunk
 * writes it, so an acknowledged chunk is never overwritten.
 */
enum pf_status
data_on_chunk(struct stream *st, const struct proto_header *h)
{
	struct session *s = st->session;
	const struct stream_env *env = st->env;
	struct proto_chunk_head ch;
	uint8_t got[PF_SHA256_LEN], want[PF_SHA256_LEN];
	uint64_t started = pf_now_us();
	struct data_answer *a;
	enum session_claim claim;
	bool head_differs, resent;
	enum pf_status rc;

	rc = wire_recv_chunk_head(st->c, h, session_size(s),
	    session_chunk_size(s), &ch);
	if (rc == PF_EBADFRAME)
		return reply_fail(st, PF_EBADFRAME, "chunk head out of range");
	if (rc != PF_OK)
		return rc;
	if (session_state(s) != SESSION_RECEIVING)
		return reply_ended(st);
	claim = session_claim_chunk(s, (uint32_t)ch.index, &resent);
	if (resent)
		atomic_fetch_add(&env->counters->chunks_resent, 1);
	if (claim != SESSION_CLAIMED) {
		/* Done already (ACK again) or being received elsewhere. */
		if ((rc = drain(st, (uint64_t)ch.length +
		    PROTO_CHUNK_TRAILER_LEN)) != PF_OK)
			return rc;
		acks_push(st->acks, claim == SESSION_HELD ? PROTO_ACK :
		    PROTO_NACK, (uint32_t)ch.index, false);
		return flush(st);
	}
	if ((rc = receive_chunk(st, &ch, got, want, &head_differs)) != PF_OK)
		goto release;
	if (!pf_equal_ct(got, want, sizeof(got))) {
		session_release_chunk(s, (uint32_t)ch.index, true);
		atomic_fetch_add(&env->counters->chunks_nacked, 1);
		log_info("%s: session %s chunk %llu failed its check",
		    st->c->peer, session_id(s), (unsigned long long)ch.index);
		acks_push(st->acks, PROTO_NACK, (uint32_t)ch.index, false);
		return flush(st);
	}
	if (head_differs) {
		registry_end(env->registry, s, SESSION_FAILED, PF_EFORBIDDEN);
		rc = reply_fail(st, PF_EFORBIDDEN,
		    "chunk 0 does not start with the "
		    "declared head");
		goto release;
	}
	if (st->chunk != NULL)
		return put_chunk(st, &ch, got);
	/* Its files' own digests: the judge need not read them back. */
	session_note_wholes(s, st->hash);
	/*
	 * The ACK is a promise: data, then journal, on stable storage. The
	 * committer syncs while this connection reads the next chunk.
	 */
	a = acks_push(st->acks, PROTO_ACK, (uint32_t)ch.index, true);
	a->started = started;
	memcpy(a->digest, got, sizeof(got));
	if ((rc = session_sync_chunk(s, (uint32_t)ch.index, got, &a->t)) !=
	    PF_OK) {
		st->acks->n--;
		if (session_broken(s))
			registry_end(env->registry, s, SESSION_FAILED, rc);
		rc = reply_fail(st, rc, "cannot make chunk %llu durable",
		    (unsigned long long)ch.index);
		goto release;
	}
	return flush(st);
release:
	session_release_chunk(s, (uint32_t)ch.index, false);
	return rc;
}
