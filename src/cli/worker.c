/* SPDX-License-Identifier: MIT */
/*
 * The workers of an upload: per data connection, connect, JOIN, send
 * chunks and read their ACK or NACK; the pool that starts and stops them.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <linux/tcp.h>	/* tcpi_bytes_acked: glibc's tcp_info lacks it */

#include "chunkio.h"
#include "client.h"
#include "clock.h"
#include "log.h"
#include "net.h"
#include "tls.h"
#include "trust.h"
#include "queue.h"
#include "wire.h"
#include "worker.h"

#define WORKER_BUF	CHUNKIO_PIECE
#define WINDOW		2	/* chunks in flight per connection */
/* How long a failed connection is read for answers it still holds. */
#define DRAIN_TIMEOUT_MS	1000

/* Why a worker's connection, or the worker, ended. */
enum worker_end {
	WORKER_ON,		/* not ended */
	WORKER_LOST,		/* the connection failed: make another */
	WORKER_DONE,		/* every chunk is done */
	WORKER_STOPPED,		/* the upload failed, or told to stop */
	WORKER_RELOGIN,		/* the login is stale: the supervisor acts */
	WORKER_GAVE_UP,		/* nothing acknowledged for --give-up */
	WORKER_RETIRED,		/* fewer streams are wanted */
	WORKER_FAILED		/* a permanent error, recorded */
};

/* One worker thread and its data connection. */
struct worker {
	struct job	*j;
	pthread_t	 tid;
	bool		 joinable;	/* tid must be joined */
	bool		 running;	/* under j->lock */
	bool		 retired;	/* under j->lock: not in j->active */
	int		 fd;		/* its socket, under j->lock; or -1 */
	bool		 joined;	/* under j->lock: fd has joined */
	uint32_t	 rng;		/* for jitter */
	struct pf_conn	*c;
	uint8_t		*buf;
	struct chunkhash *h;
	unsigned	 gen;		/* login generation it joined with */
	unsigned	 attempt;	/* connection attempts since an ACK */
	uint32_t	 inflight[WINDOW];	/* oldest first */
	unsigned	 n;
	char		 err[768];
};

struct worker_pool {
	struct job	*j;
	unsigned	 n;
	struct worker	 w[];		/* n slots */
};

static enum worker_end
worker_should_end(struct worker *w)
{
	struct job *j = w->j;
	bool stop;

	pthread_mutex_lock(&j->lock);
	stop = j->stopping || j->r->status != PF_OK;
	pthread_mutex_unlock(&j->lock);
	if (stop)
		return WORKER_STOPPED;
	return queue_all_done(j->q) ? WORKER_DONE : WORKER_ON;
}

/*
 * True once the worker is to retire: fewer streams are wanted than are
 * active, and it is the one that noticed. It then takes no new chunk,
 * waits for the answers to those in flight, and ends: nothing is lost or
 * sent twice.
 */
static bool
worker_retiring(struct worker *w)
{
	struct job *j = w->j;

	pthread_mutex_lock(&j->lock);
	if (!w->retired && j->active > j->target) {
		j->active--;
		w->retired = true;
	}
	pthread_mutex_unlock(&j->lock);
	return w->retired;
}

/*
 * A busy answer to a data connection under --threads auto: the server
 * holds no more of our connections, so this stream retires and the
 * supervisor caps the streams at those still active. The last stream
 * never retires: it waits and tries again like any other.
 */
static bool
worker_busy_retire(struct worker *w)
{
	struct job *j = w->j;

	if (!j->autotune)
		return false;
	pthread_mutex_lock(&j->lock);
	if (!w->retired && j->active > 1) {
		j->active--;
		w->retired = true;
		j->busy_cap = j->active;
		pthread_cond_broadcast(&j->cond);
	}
	pthread_mutex_unlock(&j->lock);
	if (w->retired) {
		atomic_fetch_add(&j->busy, 1);
		log_info("server busy: %s; one stream less", w->err[0] ?
		    w->err : "too many connections");
	}
	return w->retired;
}

/* The bytes the peer's TCP acknowledged on socket fd; 0 if unknown. */
static uint64_t
tcp_acked(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (fd == -1 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ==
	    -1 || len < offsetof(struct tcp_info, tcpi_bytes_acked) +
	    sizeof(ti.tcpi_bytes_acked))
		return 0;
	return ti.tcpi_bytes_acked;
}

/*
 * Sets or clears the worker's connection, so the supervisor can cut it;
 * a connection cleared adds what its peer acknowledged to j->tcp_closed.
 */
static void
worker_set_conn(struct worker *w, struct pf_conn *c)
{
	pthread_mutex_lock(&w->j->lock);
	if (c == NULL)
		w->j->tcp_closed += tcp_acked(w->fd);
	w->fd = c != NULL ? c->fd : -1;
	w->joined = false;
	pthread_mutex_unlock(&w->j->lock);
	if (c == NULL) {
		pf_conn_free(w->c);
		w->c = NULL;
	}
}

/*
 * Decides what a failure means for a worker. Network trouble and busy:
 * connect again. auth_failed or unknown_session: the login is stale; if
 * the supervisor has logged in again since the worker read the key, it
 * retries at once with the new one, otherwise the supervisor must log in
 * again. Anything else ends the upload.
 */
static enum worker_end
worker_trouble(struct worker *w, enum pf_status rc, const char *what)
{
	struct job *j = w->j;
	enum worker_end end;

	if (job_transient(rc)) {
		job_note_trouble(j, rc, what, w->err);
		if (w->attempt == 0)
			w->attempt = 1;
		return WORKER_LOST;
	}
	if (rc == PF_EAUTH || rc == PF_ENOSESSION) {
		pthread_mutex_lock(&j->lock);
		if (w->gen == j->gen) {
			j->relogin = true;
			pthread_cond_broadcast(&j->cond);
			end = WORKER_RELOGIN;
		} else {
			w->attempt = 0;
			end = WORKER_LOST;
		}
		pthread_mutex_unlock(&j->lock);
		log_info("%s: %s; the login is stale", what, w->err[0] ?
		    w->err : pf_status_message(rc));
		return end;
	}
	job_net_error(j, rc, what, w->err);
	return WORKER_FAILED;
}

/* Connects and joins the session, again and again if need be. */
static enum worker_end
worker_connect(struct worker *w)
{
	struct job *j = w->j;
	uint8_t key[PF_SHA256_LEN];
	char sid[PROTO_ID_LEN + 1];
	const char *what;
	struct pf_conn *c;
	enum worker_end end;
	enum pf_status rc;

	for (;;) {
		if ((end = worker_should_end(w)) != WORKER_ON)
			return end;
		if (worker_retiring(w))
			return WORKER_RETIRED;
		if (w->attempt > 0) {
			if (job_gave_up(j))
				return WORKER_GAVE_UP;
			job_pause_ms(j, job_until_give_up(j,
			    job_backoff_ms(w->attempt, &w->rng)));
			if ((end = worker_should_end(w)) != WORKER_ON)
				return end;
		}
		w->attempt++;
		w->err[0] = '\0';
		c = NULL;
		what = "cannot open a data connection";
		if (!job_connect_enter(j))
			return WORKER_STOPPED;
		rc = trust_connect(j->o->trust, j->o->tls, j->o->host,
		    j->o->port, j->o->timeout_ms, true, &c, w->err,
		    sizeof(w->err));
		if (rc == PF_OK) {
			what = "cannot join the session";
			w->c = c;
			worker_set_conn(w, c);
			pthread_mutex_lock(&j->lock);
			memcpy(key, j->key, sizeof(key));
			memcpy(sid, j->session, sizeof(sid));
			w->gen = j->gen;
			pthread_mutex_unlock(&j->lock);
			rc = client_join(c, key, sid, w->err, sizeof(w->err));
			pf_wipe(key, sizeof(key));
			if (rc == PF_OK) {
				pthread_mutex_lock(&j->lock);
				w->joined = true;
				pthread_mutex_unlock(&j->lock);
				job_connect_leave(j);
				return WORKER_ON;
			}
			worker_set_conn(w, NULL);
		}
		job_connect_leave(j);
		if (rc == PF_EBUSY && worker_busy_retire(w))
			return WORKER_RETIRED;
		end = worker_trouble(w, rc, what);
		if (end != WORKER_LOST)
			return end;
	}
}

/* Writes a piece of chunk data, counting what the socket took. */
static enum pf_status
send_piece(void *arg, const void *p, size_t n)
{
	struct worker *w = arg;
	const char *b = p;

	/* pf_conn_write_full, but bytes_sent also counts a cut-off piece. */
	while (n > 0) {
		size_t m = n < ratelimit_slice(w->j->limit) ? n :
		    ratelimit_slice(w->j->limit);
		ssize_t k;

		ratelimit_take(w->j->limit, m);
		k = w->c->ops->write(w->c, b, m);

		if (k > 0) {
			atomic_fetch_add(&w->j->bytes_sent, (uint64_t)k);
			b += k;
			n -= (size_t)k;
		} else if (k < 0 && errno == EINTR)
			continue;
		else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return PF_ETIMEOUT;
		else
			return PF_ENET;
	}
	return PF_OK;
}

/* Sends chunk idx as one CHUNK frame, hashing it as it is read. */
static enum pf_status
send_chunk(struct worker *w, uint32_t idx)
{
	struct job *j = w->j;
	uint32_t cs = j->chunk_size;
	struct proto_chunk_head ch = { idx, (uint64_t)idx * cs,
	    proto_chunk_length(j->size, cs, idx) };
	/* OpenSSL must not read the mapping itself: see chunkio_sink. */
	struct chunkio_sink sink = { send_piece, w, !pf_conn_is_tls(w->c) };
	uint8_t digest[PF_SHA256_LEN];
	enum pf_status rc;

	if ((rc = wire_send_chunk_head(w->c, &ch)) != PF_OK)
		return rc;
	rc = chunkio_read(&j->src, &ch, w->buf, WORKER_BUF, w->h, &sink,
	    digest);
	if (rc != PF_OK)
		return rc;
	/*
	 * Kept for the receipt; only the worker that has the chunk in flight
	 * writes its slot, and a re-send computes the same value.
	 */
	memcpy(j->digests + (size_t)idx * PF_SHA256_LEN, digest,
	    sizeof(digest));
	return pf_conn_write_full(w->c, digest, sizeof(digest));
}

/* Handles the ACK or NACK of the oldest chunk in flight. */
static enum pf_status
read_response(struct worker *w)
{
	struct job *j = w->j;
	uint32_t idx = w->inflight[0];
	uint64_t got;
	unsigned count;
	int type;
	enum pf_status rc;

	rc = wire_expect_ack(w->c, &type, &got, w->err, sizeof(w->err));
	if (rc != PF_OK)
		return rc;
	/* Responses come in sending order; the index is only a cross-check. */
	if (type == PROTO_ACK && got != idx) {
		snprintf(w->err, sizeof(w->err), "ACK for chunk %llu, "
		    "expected %u", (unsigned long long)got, idx);
		return PF_EPROTO;
	}
	memmove(w->inflight, w->inflight + 1, --w->n * sizeof(w->inflight[0]));
	if (type == PROTO_ACK) {
		/* What the power-loss test holds the server to (-v). */
		log_debug("chunk %u acknowledged", idx);
		atomic_fetch_add(&j->acks, 1);
		atomic_store(&j->last_ack_ms, pf_now_ms());
		w->attempt = 0;
		if (queue_ack(j->q, idx))
			job_wake_all(j);
		return PF_OK;
	}
	switch (queue_nack(j->q, idx, j->o->retries, j->give_up_ms, &count)) {
	case QUEUE_NACK_EXHAUSTED:
		snprintf(w->err, sizeof(w->err), "chunk %u failed its check "
		    "%u times", idx, count);
		return PF_EINTEGRITY;
	case QUEUE_NACK_FORGIVEN:
		/*
		 * The server NACKs a chunk that another connection is
		 * receiving, and the one we lost with it may not be dead
		 * there yet: wait a little rather than send it in a loop.
		 */
		log_debug("chunk %u NACKed while its lost connection may "
		    "still hold it", idx);
		job_pause_ms(j, job_backoff_ms(count, &w->rng));
		break;
	case QUEUE_NACK_RETRY:
		log_debug("chunk %u NACKed, sending it again", idx);
		break;
	}
	atomic_fetch_add(&j->resent, 1);
	queue_requeue(j->q, idx, false);
	return PF_OK;
}

/*
 * A write failed. The server may have answered the chunks sent before
 * (an acknowledged chunk must not be sent again), and may have said why
 * it closed in an ERROR frame: reads what is there. Returns the ERROR's
 * code, or rc if there is none.
 */
static enum pf_status
drain(struct worker *w, enum pf_status rc)
{
	enum pf_status why;

	pf_conn_set_timeout(w->c, DRAIN_TIMEOUT_MS);
	while (w->n > 0) {
		if ((why = read_response(w)) == PF_OK)
			continue;
		if (why == PF_EINTEGRITY ||
		    (pf_status_is_wire(why) && why != PF_EPROTO))
			return why;
		break;
	}
	w->err[0] = '\0';
	return rc;
}

/* Gives the chunks in flight back to the queue. */
static void
requeue_inflight(struct worker *w, bool orphan)
{
	for (unsigned i = 0; i < w->n; i++)
		queue_requeue(w->j->q, w->inflight[i], orphan);
	w->n = 0;
}

/* Sends chunks on a joined connection, WINDOW at a time, until it ends. */
static enum worker_end
worker_transfer(struct worker *w)
{
	struct job *j = w->j;
	enum worker_end end;
	enum pf_status rc;

	w->n = 0;
	for (;;) {
		int64_t idx = -1;

		w->err[0] = '\0';
		/* Keep WINDOW chunks in flight: no idling on ACKs. */
		if (w->n < WINDOW && !worker_retiring(w))
			idx = queue_pop(j->q, w->n == 0);
		if (idx >= 0) {
			w->inflight[w->n++] = (uint32_t)idx;
			rc = send_chunk(w, (uint32_t)idx);
			if (rc == PF_EIO) {
				char what[PATH_MAX + 128];

				chunkio_read_error(&j->src, what, sizeof(what));
				job_set_error(j, rc, "cannot read %s", what);
				return WORKER_FAILED;
			}
			if (rc != PF_OK) {
				rc = drain(w, rc);
				goto trouble;
			}
			continue;
		}
		if (w->n == 0 && w->retired)
			return WORKER_RETIRED;
		if (w->n == 0) {
			end = worker_should_end(w);
			return end == WORKER_ON ? WORKER_STOPPED : end;
		}
		if (worker_should_end(w) == WORKER_STOPPED) {
			requeue_inflight(w, true);
			return WORKER_STOPPED;
		}
		if ((rc = read_response(w)) != PF_OK)
			goto trouble;
	}
trouble:
	end = worker_trouble(w, rc, job_transient(rc) ? "data connection lost" :
	    "chunk refused");
	requeue_inflight(w, true);
	return end;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct job *j = w->j;
	bool again = false;
	enum worker_end end = WORKER_FAILED;

	w->h = chunkhash_new();
	w->buf = malloc(WORKER_BUF);
	if (w->h == NULL || w->buf == NULL) {
		job_set_error(j, PF_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		if ((end = worker_connect(w)) != WORKER_ON)
			break;
		if (again)
			log_info("data connection made again");
		end = worker_transfer(w);
		worker_set_conn(w, NULL);
		if (end != WORKER_LOST)
			break;
		/*
		 * Counted when the connection is lost, not when it is made
		 * again: other workers may finish the job first.
		 */
		atomic_fetch_add(&j->reconnects, 1);
		again = true;
	}
out:
	worker_set_conn(w, NULL);
	chunkhash_free(w->h);
	free(w->buf);
	w->h = NULL;
	w->buf = NULL;
	pthread_mutex_lock(&j->lock);
	w->running = false;
	j->running--;
	if (!w->retired)
		j->active--;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* Joins the threads of workers that have ended. */
static void
reap(struct worker_pool *p)
{
	struct job *j = p->j;

	for (unsigned i = 0; i < p->n; i++) {
		struct worker *w = &p->w[i];
		bool running;

		pthread_mutex_lock(&j->lock);
		running = w->running;
		pthread_mutex_unlock(&j->lock);
		if (w->joinable && !running) {
			pthread_join(w->tid, NULL);
			w->joinable = false;
		}
	}
}

void
worker_pool_stop(struct worker_pool *p)
{
	struct job *j = p->j;

	if (j->q == NULL)
		return;
	pthread_mutex_lock(&j->lock);
	j->stopping = true;
	for (unsigned i = 0; i < p->n; i++)
		if (p->w[i].fd != -1)
			shutdown(p->w[i].fd, SHUT_RDWR);
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	queue_stop(j->q);
	for (unsigned i = 0; i < p->n; i++)
		if (p->w[i].joinable) {
			pthread_join(p->w[i].tid, NULL);
			p->w[i].joinable = false;
		}
}

void
worker_pool_spawn(struct worker_pool *p)
{
	struct job *j = p->j;
	uint32_t want = queue_left(j->q);
	unsigned have = 0;

	reap(p);
	pthread_mutex_lock(&j->lock);
	have = j->active;
	if (want > j->target)
		want = j->target;
	pthread_mutex_unlock(&j->lock);
	for (unsigned i = 0; i < p->n && have < want; i++) {
		struct worker *w = &p->w[i];

		if (w->joinable)
			continue;
		w->attempt = 0;
		w->n = 0;
		pf_random(&w->rng, sizeof(w->rng));
		w->rng |= 1;
		pthread_mutex_lock(&j->lock);
		w->running = true;
		w->retired = false;
		j->running++;
		if (++j->active > j->peak)
			j->peak = j->active;
		pthread_mutex_unlock(&j->lock);
		if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
			pthread_mutex_lock(&j->lock);
			w->running = false;
			j->running--;
			j->active--;
			pthread_mutex_unlock(&j->lock);
			break;
		}
		w->joinable = true;
		have++;
	}
	if (have == 0 && want > 0)
		job_set_error(j, PF_ENOMEM, "cannot start worker threads");
}

uint64_t
worker_pool_delivered(struct worker_pool *p)
{
	struct job *j = p->j;
	uint64_t sum;

	pthread_mutex_lock(&j->lock);
	sum = j->tcp_closed;
	for (unsigned i = 0; i < p->n; i++)
		sum += tcp_acked(p->w[i].fd);
	pthread_mutex_unlock(&j->lock);
	return sum;
}

unsigned
worker_pool_joining(struct worker_pool *p)
{
	struct job *j = p->j;
	unsigned n = 0;

	pthread_mutex_lock(&j->lock);
	for (unsigned i = 0; i < p->n; i++)
		n += p->w[i].running && !p->w[i].retired && !p->w[i].joined;
	pthread_mutex_unlock(&j->lock);
	return n;
}

struct worker_pool *
worker_pool_new(struct job *j, unsigned n)
{
	struct worker_pool *p;

	if ((p = calloc(1, sizeof(*p) + (size_t)n * sizeof(p->w[0]))) == NULL)
		return NULL;
	p->j = j;
	p->n = n;
	for (unsigned i = 0; i < n; i++) {
		p->w[i].j = j;
		p->w[i].fd = -1;
	}
	return p;
}

void
worker_pool_free(struct worker_pool *p)
{
	if (p == NULL)
		return;
	worker_pool_stop(p);
	free(p);
}
