/* SPDX-License-Identifier: MIT */
/*
 * The sender. A supervisor (upload_run) logs in on a control connection,
 * opens or resumes a session, and runs a pool of workers, each with its
 * own data connection, that pull chunks from a shared queue until every
 * chunk is acknowledged; then it commits.
 *
 * Nothing is lost to a dropped connection: a worker puts its chunks in
 * flight back in the queue and joins again; when the login goes stale
 * (the server restarted, or another login took the session over) or the
 * control connection dies, the supervisor logs in again and resumes the
 * session, whose "have" bitmap tells which chunks the server holds. It
 * gives up only on a permanent error, or when no chunk has been
 * acknowledged for --give-up seconds.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunkio.h"
#include "client.h"
#include "log.h"
#include "net.h"
#include "progress.h"
#include "queue.h"
#include "state.h"
#include "upload.h"
#include "wire.h"

#define WORKER_BUF	(1024u * 1024)
/* The server syncs the whole file before COMPLETE: allow it time. */
#define COMMIT_TIMEOUT_MS	(15u * 60 * 1000)
#define WINDOW		2	/* chunks in flight per connection */
#define BACKOFF_FIRST_MS	100
#define BACKOFF_MAX_MS		5000
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
	WORKER_FAILED		/* a permanent error, recorded */
};

/* What woke the supervisor. */
enum wake {
	WAKE_FAILED,
	WAKE_DONE,		/* every chunk is done */
	WAKE_RELOGIN,		/* a worker found the login stale */
	WAKE_IDLE		/* no worker is left */
};

struct upload;

/* One worker thread and its data connection. */
struct worker {
	struct upload	*u;
	pthread_t	 tid;
	bool		 joinable;	/* tid must be joined */
	bool		 running;	/* under u->lock */
	int		 fd;		/* its socket, under u->lock; or -1 */
	uint32_t	 rng;		/* for jitter */
	struct pf_conn	*c;
	uint8_t		*buf;
	struct pf_sha256 *h;
	unsigned	 gen;		/* login generation it joined with */
	unsigned	 attempt;	/* connection attempts since an ACK */
	uint32_t	 inflight[WINDOW];	/* oldest first */
	unsigned	 n;
	char		 err[256];
};

struct upload {
	const struct upload_opts *o;
	struct upload_result	*r;
	int			 fd;
	uint64_t		 size;
	char			*name;		/* the name asked for */
	struct chunk_queue	*q;
	struct state		*state;		/* NULL: not resumable */
	bool			 state_gone;	/* the state file was removed */
	uint8_t			*digests;	/* ours, 32 bytes a chunk */
	struct pf_conn		*ctl;		/* the supervisor's */
	bool			 resume;	/* session: one to resume */
	bool			 started;	/* an OPENED came in this run */
	bool			 committed;	/* COMMIT sent, answer lost */
	bool			 finished;	/* the server had done it */
	uint64_t		 give_up_ms;
	uint32_t		 rng;
	struct worker		*workers;	/* o->threads slots */

	/* Guards what follows, and r->status and r->message. */
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;		/* CLOCK_MONOTONIC */
	uint8_t			 key[PF_SHA256_LEN];
	char			 session[PROTO_ID_LEN + 1];
	unsigned		 gen;		/* login generation */
	bool			 relogin;	/* gen found stale */
	bool			 stopping;	/* workers must end */
	unsigned		 running;
	char			 trouble[256];	/* the last transient error */

	_Atomic uint64_t	 last_ack_ms;
	_Atomic uint64_t	 bytes_sent;
	_Atomic unsigned	 resent;
	_Atomic unsigned	 reconnects;
};

/* Records the first failure of an upload and stops every worker. */
static void
set_error(struct upload *u, enum pf_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_error(struct upload *u, enum pf_status rc, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&u->lock);
	if (u->r->status == PF_OK) {
		u->r->status = rc;
		va_start(ap, fmt);
		vsnprintf(u->r->message, sizeof(u->r->message), fmt, ap);
		va_end(ap);
	}
	u->stopping = true;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	if (u->q != NULL)
		queue_stop(u->q);
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

static bool
failed(struct upload *u)
{
	bool f;

	pthread_mutex_lock(&u->lock);
	f = u->r->status != PF_OK;
	pthread_mutex_unlock(&u->lock);
	return f;
}

/* Remembers a failure that will be retried, for the give-up message. */
static void
note_trouble(struct upload *u, enum pf_status rc, const char *what,
    const char *srv)
{
	pthread_mutex_lock(&u->lock);
	snprintf(u->trouble, sizeof(u->trouble), "%s: %s", what,
	    srv[0] != '\0' ? srv : pf_status_message(rc));
	log_info("%s; trying again", u->trouble);
	pthread_mutex_unlock(&u->lock);
}

/* Failures that another connection or login may not meet. */
static bool
transient(enum pf_status rc)
{
	return rc == PF_ENET || rc == PF_ETIMEOUT || rc == PF_EBUSY;
}

static bool
gave_up(struct upload *u)
{
	return pf_now_ms() - atomic_load(&u->last_ack_ms) > u->give_up_ms;
}

/* A backoff of ms, cut short where --give-up would pass during it. */
static unsigned
until_give_up(struct upload *u, unsigned ms)
{
	uint64_t end = atomic_load(&u->last_ack_ms) + u->give_up_ms + 1;
	uint64_t now = pf_now_ms();

	if (now >= end)
		return 0;
	return end - now < ms ? (unsigned)(end - now) : ms;
}

static void
give_up_error(struct upload *u)
{
	char last[sizeof(u->trouble)];

	pthread_mutex_lock(&u->lock);
	memcpy(last, u->trouble, sizeof(last));
	pthread_mutex_unlock(&u->lock);
	set_error(u, PF_ENET, "gave up: no chunk acknowledged for %u s "
	    "(--give-up %u)%s%s; run the same command again to resume",
	    u->o->give_up_s, u->o->give_up_s, last[0] ? "; last error: " : "",
	    last);
}

/* 100 ms doubling up to 5 s, each drawn from [d/2, d] (jitter). */
static unsigned
backoff_ms(unsigned attempt, uint32_t *rng)
{
	unsigned d = BACKOFF_MAX_MS;

	if (attempt > 0 && attempt < 8)
		d = BACKOFF_FIRST_MS << (attempt - 1);
	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	/* xorshift32: spreads retries of many workers; not for secrets. */
	*rng ^= *rng << 13;
	*rng ^= *rng >> 17;
	*rng ^= *rng << 5;
	return d / 2 + *rng % (d / 2 + 1);
}

/* Sleeps ms, or less if the upload fails, stops or gets done. */
static void
pause_ms(struct upload *u, unsigned ms)
{
	uint64_t until = pf_now_ms() + ms, now;

	pthread_mutex_lock(&u->lock);
	while (!u->stopping && !queue_all_done(u->q) &&
	    (now = pf_now_ms()) < until)
		pf_cond_wait_ms(&u->cond, &u->lock, (unsigned)(until - now));
	pthread_mutex_unlock(&u->lock);
}

/* Wakes the supervisor and every pause. */
static void
wake_all(struct upload *u)
{
	pthread_mutex_lock(&u->lock);
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
}

/* --- Workers --------------------------------------------------------- */

static enum worker_end
worker_should_end(struct worker *w)
{
	struct upload *u = w->u;
	bool stop;

	pthread_mutex_lock(&u->lock);
	stop = u->stopping || u->r->status != PF_OK;
	pthread_mutex_unlock(&u->lock);
	if (stop)
		return WORKER_STOPPED;
	return queue_all_done(u->q) ? WORKER_DONE : WORKER_ON;
}

/* Sets or clears the worker's connection, so the supervisor can cut it. */
static void
worker_set_conn(struct worker *w, struct pf_conn *c)
{
	pthread_mutex_lock(&w->u->lock);
	w->fd = c != NULL ? c->fd : -1;
	pthread_mutex_unlock(&w->u->lock);
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
	struct upload *u = w->u;
	enum worker_end end;

	if (transient(rc)) {
		note_trouble(u, rc, what, w->err);
		if (w->attempt == 0)
			w->attempt = 1;
		return WORKER_LOST;
	}
	if (rc == PF_EAUTH || rc == PF_ENOSESSION) {
		pthread_mutex_lock(&u->lock);
		if (w->gen == u->gen) {
			u->relogin = true;
			pthread_cond_broadcast(&u->cond);
			end = WORKER_RELOGIN;
		} else {
			w->attempt = 0;
			end = WORKER_LOST;
		}
		pthread_mutex_unlock(&u->lock);
		log_info("%s: %s; the login is stale", what, w->err[0] ?
		    w->err : pf_status_message(rc));
		return end;
	}
	net_error(u, rc, what, w->err);
	return WORKER_FAILED;
}

/* Connects and joins the session, again and again if need be. */
static enum worker_end
worker_connect(struct worker *w)
{
	struct upload *u = w->u;
	uint8_t key[PF_SHA256_LEN];
	char sid[PROTO_ID_LEN + 1];
	const char *what;
	struct pf_conn *c;
	enum worker_end end;
	enum pf_status rc;

	for (;;) {
		if ((end = worker_should_end(w)) != WORKER_ON)
			return end;
		if (w->attempt > 0) {
			if (gave_up(u))
				return WORKER_GAVE_UP;
			pause_ms(u, until_give_up(u, backoff_ms(w->attempt,
			    &w->rng)));
			if ((end = worker_should_end(w)) != WORKER_ON)
				return end;
		}
		w->attempt++;
		w->err[0] = '\0';
		c = NULL;
		what = "cannot open a data connection";
		rc = pf_tcp_connect(u->o->host, u->o->port, u->o->timeout_ms,
		    &c);
		if (rc == PF_OK) {
			what = "cannot join the session";
			w->c = c;
			worker_set_conn(w, c);
			pf_conn_set_timeout(c, u->o->timeout_ms);
			pthread_mutex_lock(&u->lock);
			memcpy(key, u->key, sizeof(key));
			memcpy(sid, u->session, sizeof(sid));
			w->gen = u->gen;
			pthread_mutex_unlock(&u->lock);
			rc = client_join(c, key, sid, w->err, sizeof(w->err));
			pf_wipe(key, sizeof(key));
			if (rc == PF_OK)
				return WORKER_ON;
			worker_set_conn(w, NULL);
		}
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
		ssize_t k = w->c->ops->write(w->c, b, n);

		if (k > 0) {
			atomic_fetch_add(&w->u->bytes_sent, (uint64_t)k);
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
	struct upload *u = w->u;
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
	if ((rc = pf_conn_write_full(w->c, head, sizeof(head))) != PF_OK)
		return rc;
	rc = chunkio_read(u->fd, &ch, w->buf, WORKER_BUF, w->h, send_piece, w,
	    digest);
	if (rc != PF_OK)
		return rc;
	/*
	 * Kept for the receipt; only the worker that has the chunk in flight
	 * writes its slot, and a re-send computes the same value.
	 */
	memcpy(u->digests + (size_t)idx * PF_SHA256_LEN, digest,
	    sizeof(digest));
	return pf_conn_write_full(w->c, digest, sizeof(digest));
}

/* Handles the ACK or NACK of the oldest chunk in flight. */
static enum pf_status
read_response(struct worker *w)
{
	struct upload *u = w->u;
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
		atomic_store(&u->last_ack_ms, pf_now_ms());
		w->attempt = 0;
		if (queue_ack(u->q, idx))
			wake_all(u);
		return PF_OK;
	}
	switch (queue_nack(u->q, idx, u->o->retries, u->give_up_ms, &count)) {
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
		pause_ms(u, backoff_ms(count, &w->rng));
		break;
	case QUEUE_NACK_RETRY:
		log_debug("chunk %u NACKed, sending it again", idx);
		break;
	}
	atomic_fetch_add(&u->resent, 1);
	queue_requeue(u->q, idx, false);
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
		queue_requeue(w->u->q, w->inflight[i], orphan);
	w->n = 0;
}

/* Sends chunks on a joined connection, WINDOW at a time, until it ends. */
static enum worker_end
worker_transfer(struct worker *w)
{
	struct upload *u = w->u;
	enum worker_end end;
	enum pf_status rc;

	w->n = 0;
	for (;;) {
		int64_t idx = -1;

		w->err[0] = '\0';
		/* Keep WINDOW chunks in flight: no idling on ACKs. */
		if (w->n < WINDOW)
			idx = queue_pop(u->q, w->n == 0);
		if (idx >= 0) {
			w->inflight[w->n++] = (uint32_t)idx;
			rc = send_chunk(w, (uint32_t)idx);
			if (rc == PF_EIO) {
				set_error(u, rc, "cannot read the file: %s",
				    pf_status_message(rc));
				return WORKER_FAILED;
			}
			if (rc != PF_OK) {
				rc = drain(w, rc);
				goto trouble;
			}
			continue;
		}
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
	end = worker_trouble(w, rc, transient(rc) ? "data connection lost" :
	    "chunk refused");
	requeue_inflight(w, true);
	return end;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct upload *u = w->u;
	bool again = false;
	enum worker_end end = WORKER_FAILED;

	w->h = pf_sha256_new();
	w->buf = malloc(WORKER_BUF);
	if (w->h == NULL || w->buf == NULL) {
		set_error(u, PF_ENOMEM, "out of memory");
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
		atomic_fetch_add(&u->reconnects, 1);
		again = true;
	}
out:
	worker_set_conn(w, NULL);
	pf_sha256_free(w->h);
	free(w->buf);
	w->h = NULL;
	w->buf = NULL;
	pthread_mutex_lock(&u->lock);
	w->running = false;
	u->running--;
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* --- Supervisor ------------------------------------------------------ */

/* Joins the threads of workers that have ended. */
static void
reap_workers(struct upload *u)
{
	for (unsigned i = 0; i < u->o->threads; i++) {
		struct worker *w = &u->workers[i];
		bool running;

		pthread_mutex_lock(&u->lock);
		running = w->running;
		pthread_mutex_unlock(&u->lock);
		if (w->joinable && !running) {
			pthread_join(w->tid, NULL);
			w->joinable = false;
		}
	}
}

/*
 * Makes every worker end: their connections are shut down so none waits
 * out a timeout. Returns when all have. Chunks they had in flight are
 * back in the queue.
 */
static void
stop_workers(struct upload *u)
{
	if (u->q == NULL)
		return;
	pthread_mutex_lock(&u->lock);
	u->stopping = true;
	for (unsigned i = 0; i < u->o->threads; i++)
		if (u->workers[i].fd != -1)
			shutdown(u->workers[i].fd, SHUT_RDWR);
	pthread_cond_broadcast(&u->cond);
	pthread_mutex_unlock(&u->lock);
	queue_stop(u->q);
	for (unsigned i = 0; i < u->o->threads; i++)
		if (u->workers[i].joinable) {
			pthread_join(u->workers[i].tid, NULL);
			u->workers[i].joinable = false;
		}
}

/* Starts workers in the free slots, as many as chunks are left. */
static void
spawn_workers(struct upload *u)
{
	uint32_t want = queue_left(u->q);
	unsigned have = 0;

	reap_workers(u);
	pthread_mutex_lock(&u->lock);
	have = u->running;
	pthread_mutex_unlock(&u->lock);
	for (unsigned i = 0; i < u->o->threads && have < want; i++) {
		struct worker *w = &u->workers[i];

		if (w->joinable)
			continue;
		w->attempt = 0;
		w->n = 0;
		pf_random(&w->rng, sizeof(w->rng));
		w->rng |= 1;
		pthread_mutex_lock(&u->lock);
		w->running = true;
		u->running++;
		pthread_mutex_unlock(&u->lock);
		if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
			pthread_mutex_lock(&u->lock);
			w->running = false;
			u->running--;
			pthread_mutex_unlock(&u->lock);
			break;
		}
		w->joinable = true;
		have++;
	}
	if (have == 0)
		set_error(u, PF_ENOMEM, "cannot start worker threads");
}

/* Waits until the workers need the supervisor. */
static enum wake
wait_workers(struct upload *u)
{
	enum wake why;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		if (u->r->status != PF_OK) {
			why = WAKE_FAILED;
			break;
		}
		if (queue_all_done(u->q)) {
			why = WAKE_DONE;
			break;
		}
		if (u->relogin) {
			why = WAKE_RELOGIN;
			break;
		}
		if (u->running == 0) {
			why = WAKE_IDLE;
			break;
		}
		pthread_cond_wait(&u->cond, &u->lock);
	}
	pthread_mutex_unlock(&u->lock);
	return why;
}

/*
 * One try at a control connection: connect, HELLO, login, OPEN (resuming
 * u->session if u->resume). On success *cp is the new connection and key
 * the new session key; on failure what names the step that failed.
 */
static enum pf_status
session_try(struct upload *u, struct pf_conn **cp, struct client_opened *op,
    uint8_t key[PF_SHA256_LEN], char *what, size_t whatcap, char *err,
    size_t errcap)
{
	const struct upload_opts *o = u->o;
	struct client_open_req rq = { u->fd, u->size, o->chunk_size,
	    u->r->chunks, u->name, u->resume ? u->session : NULL };
	uint8_t nonce[SCRAM_NONCE_LEN];
	struct pf_conn *c = NULL;
	enum pf_status rc;

	err[0] = '\0';
	snprintf(what, whatcap, "cannot connect to %s port %u", o->host,
	    o->port);
	if ((rc = pf_tcp_connect(o->host, o->port, o->timeout_ms, &c)) !=
	    PF_OK)
		goto out;
	pf_conn_set_timeout(c, o->timeout_ms);
	snprintf(what, whatcap, "no greeting from server");
	if ((rc = client_hello(c, nonce, err, errcap)) != PF_OK)
		goto out;
	snprintf(what, whatcap, "login failed");
	if ((rc = client_login(c, o->user, o->secret, key, err,
	    errcap)) != PF_OK)
		goto out;
	snprintf(what, whatcap, "upload refused");
	if ((rc = client_open(c, &rq, op, err, errcap)) != PF_OK)
		goto out;
	*cp = c;
	c = NULL;
out:
	pf_conn_free(c);
	return rc;
}

/*
 * Takes a new OPENED in: a new session (the first, or one replacing a
 * session the server lost) starts the queue over from its "have"; the
 * same session again only takes off the queue what the server holds.
 */
static void
session_apply(struct upload *u, struct pf_conn *c, struct client_opened *op,
    const uint8_t key[PF_SHA256_LEN])
{
	bool fresh = !u->resume || strcmp(op->session, u->session) != 0;
	uint32_t held;

	if (fresh && u->started) {
		log_warn("session %s is gone; starting over in session %s",
		    u->session, op->session);
		/* No worker may go on with the old session's chunks. */
		stop_workers(u);
	}
	/* Closed only now: a server may end a session with its control. */
	pf_conn_free(u->ctl);
	u->ctl = c;
	pthread_mutex_lock(&u->lock);
	memcpy(u->key, key, sizeof(u->key));
	memcpy(u->session, op->session, sizeof(u->session));
	u->gen++;
	u->relogin = false;
	u->stopping = u->r->status != PF_OK;
	pthread_mutex_unlock(&u->lock);
	held = queue_load_have(u->q, op->have, fresh || !u->started);
	snprintf(u->r->name, sizeof(u->r->name), "%s", op->name);
	if (held > 0)
		log_info("session %s: the server holds %u of %u chunks "
		    "already", op->session, held, u->r->chunks);
	if (u->started)
		atomic_fetch_add(&u->reconnects, 1);
	if (fresh && u->state != NULL && state_save(u->state,
	    op->session) == PF_OK)
		u->state_gone = false;
	u->resume = true;
	u->started = true;
	u->committed = false;
}

/*
 * The session being resumed had finished: its COMPLETE was lost with a
 * connection (or a killed client). The file counts as uploaded only if
 * the server's receipt is that of the local file.
 */
static enum pf_status
session_was_complete(struct upload *u, struct pf_conn *c,
    const struct client_opened *op)
{
	size_t len = ((size_t)u->r->chunks + 7) / 8 + 1;
	char mine[PF_SHA256_HEX];
	uint8_t *all;
	enum pf_status rc;

	pf_conn_free(c);
	rc = chunkio_receipt(u->fd, u->size, u->o->chunk_size, mine);
	if (rc != PF_OK) {
		set_error(u, rc, "%s: cannot compute the receipt", u->o->file);
		return rc;
	}
	if (strcmp(mine, op->digest) != 0) {
		set_error(u, PF_EINTEGRITY, "session %s finished with receipt "
		    "%s, but the file's is %s", op->session, op->digest, mine);
		return PF_EINTEGRITY;
	}
	log_info("session %s had finished already", op->session);
	memcpy(u->session, op->session, sizeof(u->session));
	snprintf(u->r->name, sizeof(u->r->name), "%s", op->name);
	memcpy(u->r->digest, mine, sizeof(mine));
	/* Every chunk counts as held, as for any resumed session. */
	if ((all = malloc(len)) == NULL) {
		set_error(u, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	memset(all, 0xff, len);
	queue_load_have(u->q, all, !u->started);
	free(all);
	u->started = true;
	u->finished = true;
	return PF_OK;
}

/*
 * Logs in and opens the session, resuming the current one once the upload
 * is under way. Before that, only busy is retried: a wrong address should
 * fail at once. Afterwards network errors and busy are retried too, with
 * backoff, until nothing has been acknowledged for --give-up.
 */
static enum pf_status
session_setup(struct upload *u)
{
	struct client_opened op = { .have = NULL };
	struct pf_conn *c = NULL;
	uint8_t key[PF_SHA256_LEN];
	char what[128], err[256];
	unsigned attempt = 0;
	enum pf_status rc;

	for (;;) {
		if (attempt > 0) {
			if (gave_up(u)) {
				give_up_error(u);
				return u->r->status;
			}
			pause_ms(u, until_give_up(u, backoff_ms(attempt,
			    &u->rng)));
			if (failed(u))
				return u->r->status;
		}
		attempt++;
		rc = session_try(u, &c, &op, key, what, sizeof(what), err,
		    sizeof(err));
		if (rc == PF_OK)
			break;
		if (rc == PF_ENOSESSION && u->resume) {
			if (u->state != NULL) {
				state_remove(u->state);
				u->state_gone = true;
			}
			if (u->committed) {
				set_error(u, PF_ENET, "the connection was lost "
				    "after COMMIT, and the server no longer "
				    "knows session %s: it most likely stored "
				    "the file (receipt %s)", u->session,
				    u->r->digest);
				return u->r->status;
			}
			log_info("the server does not know session %s (%s); "
			    "opening a new one", u->session, err);
			u->resume = false;
			attempt = 0;
			continue;
		}
		if (transient(rc) && (u->started || rc == PF_EBUSY)) {
			note_trouble(u, rc, what, err);
			continue;
		}
		if (rc == PF_EIO)
			set_error(u, rc, "%s: %s", u->o->file, err);
		else
			net_error(u, rc, what, err);
		return rc;
	}
	if (op.complete)
		rc = session_was_complete(u, c, &op);
	else
		session_apply(u, c, &op, key);
	pf_wipe(key, sizeof(key));
	client_opened_clear(&op);
	return rc;
}

/* Commits; the digests of chunks the server held are computed first. */
static enum pf_status
commit(struct upload *u, char *err, size_t errcap)
{
	uint32_t n = u->r->chunks;
	uint8_t *held, receipt[PF_SHA256_LEN];
	enum pf_status rc = PF_ENOMEM;

	err[0] = '\0';
	if ((held = malloc(((size_t)n + 7) / 8 + 1)) == NULL)
		return rc;
	queue_held_bitmap(u->q, held);
	rc = chunkio_digest_chunks(u->fd, u->size, u->o->chunk_size, n, held,
	    u->digests, u->o->threads);
	free(held);
	if (rc != PF_OK) {
		snprintf(err, errcap, "cannot read %s", u->o->file);
		return rc;
	}
	if ((rc = proto_receipt(u->size, u->o->chunk_size, u->digests, n,
	    receipt)) != PF_OK)
		return rc;
	pf_hex_encode(receipt, sizeof(receipt), u->r->digest);
	return client_commit(u->ctl, u->r->digest, u->o->timeout_ms >
	    COMMIT_TIMEOUT_MS ? u->o->timeout_ms : COMMIT_TIMEOUT_MS, err,
	    errcap);
}

/* Runs the workers and commits, logging in again as often as needed. */
static enum pf_status
supervise(struct upload *u)
{
	char err[256];
	uint64_t seen;
	unsigned relogins = 0;
	enum pf_status rc;

	for (;;) {
		if (u->finished)
			return PF_OK;
		if (queue_left(u->q) > 0) {
			spawn_workers(u);
			seen = atomic_load(&u->last_ack_ms);
			switch (wait_workers(u)) {
			case WAKE_FAILED:
				return u->r->status;
			case WAKE_DONE:
				continue;
			case WAKE_RELOGIN:
			case WAKE_IDLE:
				break;
			}
			if (gave_up(u)) {
				give_up_error(u);
				return u->r->status;
			}
			/* Logins that lead nowhere are spaced out too. */
			if (atomic_load(&u->last_ack_ms) != seen)
				relogins = 0;
			if (relogins++ > 0)
				pause_ms(u, backoff_ms(relogins - 1, &u->rng));
			log_info("logging in again to resume session %s",
			    u->session);
			if ((rc = session_setup(u)) != PF_OK)
				return rc;
			continue;
		}
		if (failed(u))
			return u->r->status;
		rc = commit(u, err, sizeof(err));
		if (rc == PF_OK)
			return PF_OK;
		if (!transient(rc)) {
			if (rc == PF_EIO)
				set_error(u, rc, "%s", err);
			else
				net_error(u, rc, "commit failed", err);
			return rc;
		}
		/* The control connection died: resume, then commit again. */
		note_trouble(u, rc, "commit", err);
		u->committed = true;
		if ((rc = session_setup(u)) != PF_OK)
			return rc;
	}
}

/* Failures after which the session is of no further use. */
static bool
ends_session(enum pf_status rc)
{
	switch (rc) {
	case PF_ENET:
	case PF_ETIMEOUT:
	case PF_ENOSPC:		/* a rerun resumes once there is room */
	case PF_EAUTH:
	case PF_EBUSY:
	case PF_EIO:
	case PF_ENOMEM:
	case PF_EINTERNAL:
		return false;
	default:
		return true;
	}
}

static double
now_seconds(void)
{
	return (double)pf_now_ms() / 1000;
}

static enum pf_status
open_file(struct upload *u, struct stat *sb)
{
	const char *base;
	char *path;

	if ((u->fd = open(u->o->file, O_RDONLY | O_CLOEXEC)) == -1) {
		set_error(u, PF_EIO, "%s: %s", u->o->file, strerror(errno));
		return PF_EIO;
	}
	if (fstat(u->fd, sb) == -1 || !S_ISREG(sb->st_mode)) {
		set_error(u, PF_EIO, "%s: not a regular file", u->o->file);
		return PF_EIO;
	}
	u->size = (uint64_t)sb->st_size;
	if (proto_chunk_count(u->size, u->o->chunk_size,
	    &u->r->chunks) != PF_OK) {
		set_error(u, PF_ETOOLARGE, "%s: more than %u chunks; use a "
		    "larger --chunk-size", u->o->file, PROTO_MAX_CHUNKS);
		return PF_ETOOLARGE;
	}
	if (u->o->name != NULL)
		u->name = strdup(u->o->name);
	else if ((path = strdup(u->o->file)) != NULL) {
		base = basename(path);
		u->name = strdup(base);
		free(path);
	}
	if (u->name == NULL) {
		set_error(u, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	return PF_OK;
}

/* Finds the state file, and the session to resume from it. */
static enum pf_status
open_state(struct upload *u, const struct stat *sb)
{
	const struct upload_opts *o = u->o;
	struct state_id id = { o->host, o->port, o->user, o->file, sb,
	    o->chunk_size, u->name };

	if (state_open(&id, &u->state) != PF_OK) {
		set_error(u, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	if (u->state != NULL && !o->no_resume) {
		state_load(u->state, u->session);
		if (u->session[0] != '\0') {
			u->resume = true;
			log_info("resuming session %s (from %s)", u->session,
			    state_path(u->state));
		}
	}
	return PF_OK;
}

static enum pf_status
upload_init(struct upload *u)
{
	pthread_mutex_init(&u->lock, NULL);
	pf_cond_init_monotonic(&u->cond);
	u->workers = calloc(u->o->threads, sizeof(*u->workers));
	if (u->workers == NULL)
		return PF_ENOMEM;
	for (unsigned i = 0; i < u->o->threads; i++) {
		u->workers[i].u = u;
		u->workers[i].fd = -1;
	}
	pf_random(&u->rng, sizeof(u->rng));
	u->rng |= 1;
	u->give_up_ms = (uint64_t)u->o->give_up_s * 1000;
	atomic_store(&u->last_ack_ms, pf_now_ms());
	return PF_OK;
}

/* Stops everything; keeps or removes the state as the outcome says. */
static void
upload_finish(struct upload *u)
{
	struct upload_result *r = u->r;

	if (u->workers != NULL)
		stop_workers(u);
	if (r->status == PF_OK || (u->started && ends_session(r->status))) {
		/* A session that cannot complete is deleted at once. */
		if (r->status != PF_OK && u->ctl != NULL)
			client_abort(u->ctl);
		if (u->state != NULL)
			state_remove(u->state);
	} else if (u->state != NULL && u->started && !u->state_gone)
		log_info("kept %s: run the same command again to resume",
		    state_path(u->state));
	state_close(u->state);
	pf_conn_free(u->ctl);
	if (u->started)
		memcpy(r->session, u->session, sizeof(r->session));
	if (u->q != NULL)
		r->resumed_chunks = queue_held(u->q);
	r->retries = atomic_load(&u->resent);
	r->reconnects = atomic_load(&u->reconnects);
	r->bytes_sent = atomic_load(&u->bytes_sent);
	if (u->fd != -1)
		close(u->fd);
	queue_free(u->q);
	free(u->digests);
	free(u->workers);
	free(u->name);
	pf_wipe(u->key, sizeof(u->key));
	pthread_cond_destroy(&u->cond);
	pthread_mutex_destroy(&u->lock);
}

enum pf_status
upload_run(const struct upload_opts *o, struct upload_result *r)
{
	struct upload u = { .o = o, .r = r, .fd = -1 };
	struct progress *bar = NULL;
	struct stat sb;
	double start = now_seconds();

	memset(r, 0, sizeof(*r));
	if (upload_init(&u) != PF_OK) {
		set_error(&u, PF_ENOMEM, "out of memory");
		goto out;
	}
	if (open_file(&u, &sb) != PF_OK)
		goto out;
	r->bytes = u.size;
	if ((u.q = queue_new(u.size, o->chunk_size, r->chunks)) == NULL ||
	    (u.digests = calloc((size_t)r->chunks + 1, PF_SHA256_LEN)) ==
	    NULL) {
		set_error(&u, PF_ENOMEM, "out of memory");
		goto out;
	}
	if (open_state(&u, &sb) != PF_OK || session_setup(&u) != PF_OK)
		goto out;
	if (o->progress)
		bar = progress_start(r->name, u.size, queue_done_bytes(u.q));
	supervise(&u);
	progress_stop(bar);
out:
	upload_finish(&u);
	r->seconds = now_seconds() - start;
	return r->status;
}
