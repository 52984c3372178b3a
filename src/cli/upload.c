/* SPDX-License-Identifier: MIT */
/*
 * The sender's supervisor. upload_run logs in on a control connection,
 * opens or resumes a session, and runs a pool of workers (worker.c), each
 * with its own data connection, that pull chunks from a shared queue
 * until every chunk is acknowledged; then it commits. What the two share
 * is in struct job (job.c).
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autotune.h"
#include "buf.h"
#include "chunkio.h"
#include "client.h"
#include "clock.h"
#include "folder.h"
#include "job.h"
#include "log.h"
#include "net.h"
#include "progress.h"
#include "queue.h"
#include "state.h"
#include "relayout.h"
#include "tree.h"
#include "trust.h"
#include "upload.h"
#include "worker.h"

/* The server syncs the whole file before COMPLETE: allow it time. */
#define COMMIT_TIMEOUT_MS	(15u * 60 * 1000)
/* How often --threads auto looks at the goodput. */
#define TICK_MS			100
/* Threads that hash the chunks the server held, under --threads auto. */
#define AUTO_DIGEST_THREADS	4

/* What woke the supervisor. */
enum wake {
	WAKE_FAILED,
	WAKE_DONE,		/* every chunk is done */
	WAKE_RELOGIN,		/* a worker found the login stale */
	WAKE_IDLE,		/* no worker is left */
	WAKE_TICK		/* time for --threads auto to look */
};

/* The supervisor's own state; what workers see is in j. */
struct upload {
	struct job		 j;
	char			*name;		/* the name asked for */
	char			*files;		/* a transfer's manifest: the
						   text of its JSON array */
	struct state		*state;		/* NULL: not resumable */
	bool			 state_gone;	/* the state file was removed */
	struct pf_conn		*ctl;		/* the control connection */
	bool			 resume;	/* session: one to resume */
	bool			 amend;		/* ... with a changed tree */
	bool			 started;	/* an OPENED came in this run */
	bool			 committed;	/* COMMIT sent, answer lost */
	bool			 finished;	/* the server had done it */
	uint32_t		 rng;
	struct worker_pool	*pool;
	struct autotune		 at;		/* --threads auto */
	uint64_t		 start_ms;
};


/* Waits until the workers need the supervisor. */
static enum wake
wait_workers(struct upload *u)
{
	struct job *j = &u->j;
	uint64_t tick = pf_now_ms() + TICK_MS, now;
	enum wake why;

	pthread_mutex_lock(&j->lock);
	for (;;) {
		if (j->r->status != PF_OK) {
			why = WAKE_FAILED;
			break;
		}
		if (queue_all_done(j->q)) {
			why = WAKE_DONE;
			break;
		}
		if (j->relogin) {
			why = WAKE_RELOGIN;
			break;
		}
		if (j->running == 0) {
			why = WAKE_IDLE;
			break;
		}
		if (!j->autotune) {
			pthread_cond_wait(&j->cond, &j->lock);
			continue;
		}
		if ((now = pf_now_ms()) >= tick) {
			why = WAKE_TICK;
			break;
		}
		pf_cond_wait_ms(&j->cond, &j->lock, (unsigned)(tick - now));
	}
	pthread_mutex_unlock(&j->lock);
	return why;
}

/* Takes in a change of stream count: the target, the log, the result. */
static void
streams_record(struct upload *u, const struct autotune_event *ev)
{
	struct job *j = &u->j;
	struct upload_result *r = j->r;

	pthread_mutex_lock(&j->lock);
	j->target = autotune_level(&u->at);
	pthread_mutex_unlock(&j->lock);
	/* A kept step down reports the goodput of the level it kept. */
	if (ev->rate > 0)
		log_info("streams: %u -> %u (%s; goodput %.1f MB/s with %u)",
		    ev->from, ev->to, autotune_why_name(ev->why),
		    ev->rate / 1e6, ev->why == AUTOTUNE_FEWER ? ev->to :
		    ev->from);
	else
		log_info("streams: %u -> %u (%s)", ev->from, ev->to,
		    autotune_why_name(ev->why));
	if (r->nchanges < UPLOAD_MAX_CHANGES)
		r->changes[r->nchanges++] = *ev;
	else
		r->changes_dropped++;
}

/* Lowers auto's cap to max streams. */
static void
streams_cap(struct upload *u, unsigned max)
{
	struct autotune_event ev;

	if (autotune_cap(&u->at, max, pf_now_ms() - u->start_ms, &ev))
		streams_record(u, &ev);
}

/* One look at the goodput under --threads auto (a tick). */
static void
streams_tune(struct upload *u)
{
	struct job *j = &u->j;
	struct autotune_sample s = { 0 };
	struct autotune_event ev;
	unsigned busy;

	/*
	 * The time right after the bytes: a wait for the lock between the
	 * two would make a short interval look faster than it was.
	 */
	s.delivered = worker_pool_delivered(u->pool);
	s.now_ms = pf_now_ms() - u->start_ms;
	s.acks = atomic_load(&j->acks);
	s.left = queue_left(j->q);
	s.joining = worker_pool_joining(u->pool);

	pthread_mutex_lock(&j->lock);
	busy = j->busy_cap;
	j->busy_cap = 0;
	s.draining = j->running > j->active ? j->running - j->active : 0;
	pthread_mutex_unlock(&j->lock);
	if (busy > 0)
		streams_cap(u, busy);
	if (autotune_step(&u->at, &s, &ev))
		streams_record(u, &ev);
}

/*
 * Fits the streams to the connection limits an OPENED told: auto caps
 * itself; a fixed --threads over them is only noted (its extra streams
 * wait for room, as before).
 */
static void
streams_fit(struct upload *u, const struct client_opened *op)
{
	struct job *j = &u->j;
	unsigned mine, room;

	pthread_mutex_lock(&j->lock);
	mine = j->active;
	pthread_mutex_unlock(&j->lock);
	room = autotune_room(op->limits, op->user_conns, op->user_conns_used,
	    op->conns, mine);
	pthread_mutex_lock(&j->lock);
	/* One login slot of our address is left for the control's. */
	j->connect_max = op->ip_logins > 1 ? op->ip_logins - 1 : op->limits ?
	    1 : j->connect_max;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	if (op->limits)
		j->r->server_cap = room;
	else
		log_info("the server does not tell its limits: at most %u "
		    "streams", room);
	if (j->autotune)
		streams_cap(u, room);
	else if (op->limits && j->o->threads > room)
		log_info("--threads %u: the server has room for %u data "
		    "connections of this user now", j->o->threads, room);
}

/*
 * The payload of tree t as laid out now: its size, chunk count and
 * manifest.
 */
static enum pf_status
tree_payload(struct upload *u, struct tree *t)
{
	struct job *j = &u->j;
	struct pf_buf b;

	j->size = t->total;
	if (proto_chunk_count(j->size, j->chunk_size,
	    &j->r->chunks) != PF_OK) {
		job_set_error(j, PF_ETOOLARGE, "more than %u chunks; use a "
		    "larger --chunk-size", PROTO_MAX_CHUNKS);
		return PF_ETOOLARGE;
	}
	pf_buf_init(&b, SIZE_MAX / 2);
	free(u->files);
	if (!tree_add_manifest(t, &b) ||
	    (u->files = pf_buf_steal(&b, NULL)) == NULL) {
		pf_buf_free(&b);
		u->files = NULL;
		job_set_error(j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	return PF_OK;
}

/* A new queue (and digests) for the payload as it is now. */
static enum pf_status
make_queue(struct upload *u)
{
	struct job *j = &u->j;

	queue_free(j->q);
	free(j->digests);
	j->r->bytes = j->size;
	if ((j->q = queue_new(j->size, j->chunk_size, j->r->chunks)) ==
	    NULL || (j->digests = calloc((size_t)j->r->chunks + 1,
	    PF_SHA256_LEN)) == NULL) {
		job_set_error(j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	return PF_OK;
}

/*
 * Without --chunk-size the server picks: 4 MiB, or its smallest chunk
 * size if larger (8 MiB on S3, whose parts must be 5 MiB or more). Only
 * before the first OPEN, and for one file: a transfer's layout, which an
 * amended resume keeps, is cut to the size it was planned with.
 */
static enum pf_status
fit_chunk_size(struct upload *u, uint32_t min)
{
	struct job *j = &u->j;
	uint32_t cs = min > PROTO_DEFAULT_CHUNK ? min : PROTO_DEFAULT_CHUNK;

	if (j->o->chunk_size != 0 || j->o->tree != NULL || u->started ||
	    cs == j->chunk_size)
		return PF_OK;
	if (proto_chunk_count(j->size, cs, &j->r->chunks) != PF_OK) {
		job_set_error(j, PF_ETOOLARGE, "%s: more than %u chunks of "
		    "the server's %u bytes", j->o->file, PROTO_MAX_CHUNKS, cs);
		return PF_ETOOLARGE;
	}
	j->chunk_size = cs;
	return make_queue(u);
}

/*
 * A transfer's files as one payload; what names it for the resume state
 * (sb) is the first path's inode and the paths given, not the files:
 * the same command run again finds the transfer it was interrupted in,
 * changed or not (an amended resume).
 */
static enum pf_status
open_tree(struct upload *u, struct stat *sb)
{
	struct job *j = &u->j;
	struct tree *t = j->o->tree;
	uint8_t md[PF_SHA256_LEN];

	j->src.tree = t;
	if (stat(j->o->file, sb) == -1)
		memset(sb, 0, sizeof(*sb));
	sb->st_size = 0;
	pf_hex_decode(t->roots, md, sizeof(md));
	/* 30 + 24 bits of the digest: st_mtim in ns must not overflow. */
	sb->st_mtim.tv_sec = (time_t)((uint32_t)md[0] << 22 |
	    (uint32_t)md[1] << 14 | (uint32_t)md[2] << 6 | md[3] >> 2);
	sb->st_mtim.tv_nsec = (long)((uint32_t)md[4] << 16 |
	    (uint32_t)md[5] << 8 | md[6]);
	if (tree_payload(u, t) != PF_OK)
		return j->r->status;
	if ((u->name = strdup(j->o->name)) == NULL) {
		job_set_error(j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	return PF_OK;
}

/*
 * The tree changed since the interrupted run that laid out layout (the
 * state's: "files" and "size"): lays it out again so that its unchanged
 * files keep their chunks (relayout.h), and marks the resume an amend
 * if the manifest is not what the server holds. Without a usable
 * layout the resume goes on as before (the server judges it).
 */
static enum pf_status
plan_amend(struct upload *u, const json_t *layout)
{
	struct tree *t = u->j.o->tree;
	const json_t *old = json_object_get(layout, "files");
	const json_t *stamps = json_object_get(layout, "stamps");
	json_int_t size = json_integer_value(json_object_get(layout,
	    "size"));
	json_t *now, *files;
	bool same;
	enum pf_status rc;

	if (old == NULL || size < 0)
		return PF_OK;
	/* A state saved before stamps were: the manifest alone decides. */
	if ((now = tree_stamps(t)) == NULL || (files = tree_manifest(t)) ==
	    NULL) {
		json_decref(now);
		goto nomem;
	}
	same = json_equal(files, old) && (stamps == NULL ||
	    json_equal(now, stamps));
	json_decref(files);
	json_decref(now);
	if (same)
		return PF_OK;
	if (relayout_amend(t, old, stamps, (uint64_t)size) != PF_OK) {
		log_info("the saved layout is not usable; resuming as is");
		return PF_OK;
	}
	if ((rc = tree_payload(u, t)) != PF_OK)
		return rc;
	if ((files = tree_manifest(t)) == NULL)
		goto nomem;
	u->amend = !json_equal(files, old);
	json_decref(files);
	if (u->amend)
		log_info("the files changed since the interrupted run: "
		    "amending session %s (%llu bytes of payload)",
		    u->j.session, (unsigned long long)t->total);
	return PF_OK;
nomem:
	/* The run's outcome, not a silent end: open_state's caller stops. */
	job_set_error(&u->j, PF_ENOMEM, "out of memory");
	return PF_ENOMEM;
}

/*
 * Back to the tree laid out back to back, in a new transfer: the server
 * cannot amend (an older one) or lost the session. Before any OPENED.
 */
static enum pf_status
unamend(struct upload *u)
{
	struct tree *t = u->j.o->tree;
	enum pf_status rc;

	u->amend = false;
	u->resume = false;
	if (relayout_compact(t) != PF_OK) {
		job_set_error(&u->j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	if ((rc = tree_payload(u, t)) != PF_OK)
		return rc;
	return make_queue(u);
}

/*
 * A new transfer to a server that hashes chunks in pieces and takes
 * offsets: its large files start where chunks do (relayout_align), so
 * that their receipts too come from the chunks' pass. Before any OPENED.
 */
static enum pf_status
align_tree(struct upload *u, unsigned features)
{
	struct tree *t = u->j.o->tree;
	enum pf_status rc;

	if (t->placed || (features & (CLIENT_FEATURE_AMEND |
	    CLIENT_FEATURE_PIECES)) != (CLIENT_FEATURE_AMEND |
	    CLIENT_FEATURE_PIECES))
		return PF_OK;
	if (relayout_align(t, u->j.chunk_size) != PF_OK) {
		job_set_error(&u->j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	if (!t->placed)
		return PF_OK;
	if ((rc = tree_payload(u, t)) != PF_OK)
		return rc;
	return make_queue(u);
}

/*
 * One try at a control connection: connect, HELLO, login, OPEN (resuming
 * u->j.session if u->resume). On success *cp is the new connection and key
 * the new session key; on failure what names the step that failed.
 */
static enum pf_status
control_try(struct upload *u, struct pf_conn **cp, struct client_opened *op,
    uint8_t key[PF_SHA256_LEN], char *what, size_t whatcap, char *err,
    size_t errcap)
{
	struct job *j = &u->j;
	const struct upload_opts *o = j->o;
	struct client_open_req rq;
	uint8_t nonce[SCRAM_NONCE_LEN];
	struct pf_conn *c = NULL;
	struct client_offer offer;
	enum pf_status rc;

	err[0] = '\0';
	snprintf(what, whatcap, "cannot connect to %s port %u", o->host,
	    o->port);
	if ((rc = trust_connect(o->trust, o->tls, o->host, o->port,
	    o->timeout_ms, o->quiet, &c, err, errcap)) != PF_OK)
		goto out;
	snprintf(what, whatcap, "no greeting from server");
	if ((rc = client_hello_offer(c, nonce, &offer, err, errcap)) != PF_OK ||
	    (rc = fit_chunk_size(u, offer.min_chunk)) != PF_OK)
		goto out;
	/* An older server would take the OPEN for one file: ask first. */
	if (u->files != NULL && !(offer.features & CLIENT_FEATURE_TRANSFER)) {
		snprintf(what, whatcap, "cannot send a folder");
		snprintf(err, errcap, "this server does not take transfers of "
		    "many files (an older paraflowd): upgrade it, or send "
		    "each file with --file");
		rc = PF_EVERSION;
		goto out;
	}
	/* Nor would an older one read offsets: the tree back to back. */
	if (o->tree != NULL && o->tree->placed &&
	    !(offer.features & CLIENT_FEATURE_AMEND)) {
		if (u->started) {
			snprintf(what, whatcap, "cannot resume");
			snprintf(err, errcap, "the server no longer takes "
			    "files at offsets (an older paraflowd now?): run "
			    "the upload again");
			rc = PF_EVERSION;
			goto out;
		}
		log_info("this server cannot amend a transfer (an older "
		    "paraflowd): sending the files in a new one");
		if ((rc = unamend(u)) != PF_OK)
			goto out;
	}
	if (o->tree != NULL && !u->started && !u->resume &&
	    (rc = align_tree(u, offer.features)) != PF_OK)
		goto out;
	rq = (struct client_open_req){ &j->src, j->size, j->chunk_size,
	    j->r->chunks, u->name, u->resume ? j->session : NULL, u->files,
	    o->tree != NULL ? o->tree->n : 0, u->amend,
	    (offer.features & CLIENT_FEATURE_PIECES) != 0 };
	snprintf(what, whatcap, "login failed");
	if ((rc = client_login(c, o->user, o->secret, key, err,
	    errcap)) != PF_OK)
		goto out;
	snprintf(what, whatcap, "upload refused");
	if ((rc = client_open(c, &rq, op, err, errcap)) != PF_OK)
		goto out;
	/* The workers hash as the session was opened; it cannot change. */
	if (o->tree != NULL && u->started && !op->complete &&
	    strcmp(op->session, j->session) == 0 &&
	    op->pieces != o->tree->pieces) {
		client_opened_clear(op);
		snprintf(what, whatcap, "cannot resume");
		snprintf(err, errcap, "session %s is now hashed %s by the "
		    "server (another paraflowd version?): run the upload "
		    "again", j->session, op->pieces ? "in pieces" : "whole");
		rc = PF_EVERSION;
		goto out;
	}
	*cp = c;
	c = NULL;
out:
	pf_conn_free(c);
	return rc;
}

/* Records session sid, and a transfer's layout, in the state file. */
static enum pf_status
save_state(struct upload *u, const char *sid)
{
	struct pf_buf b;
	enum pf_status rc = PF_ENOMEM;

	if (u->files == NULL)
		return state_save(u->state, sid, NULL);
	pf_buf_init(&b, SIZE_MAX / 2);
	PF_BUF_ADD_LIT(&b, "{\"size\":");
	pf_buf_add_int(&b, (int64_t)u->j.size);
	PF_BUF_ADD_KEY(&b, "files");
	pf_buf_add(&b, u->files, strlen(u->files));
	PF_BUF_ADD_KEY(&b, "stamps");
	tree_add_stamps(u->j.o->tree, &b);
	if (PF_BUF_ADD_LIT(&b, "}"))
		rc = state_save(u->state, sid, b.p);
	pf_buf_free(&b);
	return rc;
}

/*
 * Takes a new OPENED in: a new session (the first, or one replacing a
 * session the server lost) starts the queue over from its "have"; the
 * same session again only takes off the queue what the server holds.
 */
static void
control_apply(struct upload *u, struct pf_conn *c, struct client_opened *op,
    const uint8_t key[PF_SHA256_LEN])
{
	struct job *j = &u->j;
	bool fresh = !u->resume || strcmp(op->session, j->session) != 0;
	uint32_t held;

	if (fresh && u->started) {
		log_warn("session %s is gone; starting over in session %s",
		    j->session, op->session);
		/* No worker may go on with the old session's chunks. */
		worker_pool_stop(u->pool);
	}
	/* Closed only now: a server may end a session with its control. */
	pf_conn_free(u->ctl);
	u->ctl = c;
	pthread_mutex_lock(&j->lock);
	memcpy(j->key, key, sizeof(j->key));
	memcpy(j->session, op->session, sizeof(j->session));
	j->gen++;
	j->relogin = false;
	j->stopping = j->r->status != PF_OK;
	pthread_mutex_unlock(&j->lock);
	streams_fit(u, op);
	/* Each file's receipt, as its bytes go: the report reads none. No
	   worker reads yet, or any more: the hashing can change. */
	if (j->o->tree != NULL && (fresh || !u->started))
		tree_sum_receipts(j->o->tree, j->chunk_size, op->pieces);
	held = queue_load_have(j->q, op->have, fresh || !u->started);
	snprintf(j->r->name, sizeof(j->r->name), "%s", op->name);
	if (held > 0)
		log_info("session %s: the server holds %u of %u chunks "
		    "already", op->session, held, j->r->chunks);
	if (u->started)
		atomic_fetch_add(&j->reconnects, 1);
	/* An amend keeps the id: the layout is new all the same. */
	if ((fresh || u->amend) && u->state != NULL && save_state(u,
	    op->session) == PF_OK)
		u->state_gone = false;
	u->amend = false;
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
control_was_complete(struct upload *u, struct pf_conn *c,
    const struct client_opened *op)
{
	struct job *j = &u->j;
	size_t len = ((size_t)j->r->chunks + 7) / 8 + 1;
	char mine[PF_SHA256_HEX];
	uint8_t *all;
	enum pf_status rc;

	pf_conn_free(c);
	if (j->o->tree != NULL)
		tree_sum_receipts(j->o->tree, j->chunk_size, op->pieces);
	rc = chunkio_receipt_src(&j->src, j->size, j->chunk_size, mine);
	if (rc != PF_OK) {
		job_set_error(j, rc, "%s: cannot compute the receipt",
		    j->o->file);
		return rc;
	}
	if (strcmp(mine, op->digest) != 0) {
		job_set_error(j, PF_EINTEGRITY, "session %s finished with "
		    "receipt %s, but the file's is %s", op->session,
		    op->digest, mine);
		return PF_EINTEGRITY;
	}
	log_info("session %s had finished already", op->session);
	memcpy(j->session, op->session, sizeof(j->session));
	snprintf(j->r->name, sizeof(j->r->name), "%s", op->name);
	memcpy(j->r->digest, mine, sizeof(mine));
	j->r->files = json_incref(op->files);
	/* Every chunk counts as held, as for any resumed session. */
	if ((all = malloc(len)) == NULL) {
		job_set_error(j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	memset(all, 0xff, len);
	queue_load_have(j->q, all, !u->started);
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
control_setup(struct upload *u)
{
	struct job *j = &u->j;
	struct client_opened op = { .have = NULL };
	struct pf_conn *c = NULL;
	uint8_t key[PF_SHA256_LEN];
	char what[128], err[768];
	unsigned attempt = 0;
	enum pf_status rc;

	for (;;) {
		if (attempt > 0) {
			if (job_gave_up(j)) {
				job_give_up_error(j);
				return j->r->status;
			}
			job_pause_ms(j, job_until_give_up(j,
			    job_backoff_ms(attempt, &u->rng)));
			if (job_failed(j))
				return j->r->status;
		}
		attempt++;
		rc = control_try(u, &c, &op, key, what, sizeof(what), err,
		    sizeof(err));
		if (rc == PF_OK)
			break;
		/*
		 * Cancelled before this run (its first answer says so, not
		 * one after a retry, which a cancel may have met): the rerun
		 * is a new upload.
		 */
		if (u->resume && (rc == PF_ENOSESSION || (rc ==
		    PF_ECANCELLED && !u->started && attempt == 1))) {
			if (u->state != NULL) {
				state_remove(u->state);
				u->state_gone = true;
			}
			if (u->committed) {
				job_set_error(j, PF_ENET, "the connection was "
				    "lost after COMMIT, and the server no "
				    "longer knows session %s: it most likely "
				    "stored the file (receipt %s)", j->session,
				    j->r->digest);
				return j->r->status;
			}
			if (rc == PF_ECANCELLED)
				log_warn("session %s was cancelled: opening "
				    "a new one", j->session);
			else
				log_info("the server will not resume session "
				    "%s (%s); opening a new one", j->session,
				    err);
			u->resume = false;
			attempt = 0;
			/* A new transfer is laid out anew. */
			if (!u->started && j->o->tree != NULL &&
			    j->o->tree->placed && unamend(u) != PF_OK)
				return j->r->status;
			continue;
		}
		if (job_transient(rc) && (u->started || rc == PF_EBUSY)) {
			job_note_trouble(j, rc, what, err);
			continue;
		}
		if (rc == PF_EIO)
			job_set_error(j, rc, "%s: %s", j->o->file, err);
		else
			job_net_error(j, rc, what, err);
		return rc;
	}
	if (op.complete)
		rc = control_was_complete(u, c, &op);
	else
		control_apply(u, c, &op, key);
	pf_wipe(key, sizeof(key));
	client_opened_clear(&op);
	return rc;
}

/* Commits; the digests of chunks the server held are computed first. */
static enum pf_status
commit(struct upload *u, char *err, size_t errcap)
{
	struct job *j = &u->j;
	uint32_t n = j->r->chunks;
	uint8_t *held, receipt[PF_SHA256_LEN];
	enum pf_status rc = PF_ENOMEM;

	err[0] = '\0';
	if ((held = malloc(((size_t)n + 7) / 8 + 1)) == NULL)
		return rc;
	queue_held_bitmap(j->q, held);
	rc = chunkio_digest_chunks(&j->src, j->size, j->chunk_size, n, held,
	    j->digests, j->o->threads ? j->o->threads : AUTO_DIGEST_THREADS);
	free(held);
	if (rc != PF_OK) {
		snprintf(err, errcap, "cannot read %s", j->o->file);
		return rc;
	}
	if ((rc = proto_receipt(j->size, j->chunk_size, j->digests, n,
	    receipt)) != PF_OK)
		return rc;
	pf_hex_encode(receipt, sizeof(receipt), j->r->digest);
	/* The report's local checks, while the server checks its side. */
	if (u->files != NULL)
		j->r->check = folder_check_start(j->o->tree, j->chunk_size);
	rc = client_commit(u->ctl, j->r->digest, j->o->timeout_ms >
	    COMMIT_TIMEOUT_MS ? j->o->timeout_ms : COMMIT_TIMEOUT_MS,
	    u->files != NULL ? &j->r->files : NULL, err, errcap);
	/* Before any worker may read the files again (a retry). */
	if (rc == PF_OK)
		folder_check_wait(j->r->check);
	else {
		folder_check_free(j->r->check);
		j->r->check = NULL;
	}
	return rc;
}

/* Runs the workers and commits, logging in again as often as needed. */
static enum pf_status
supervise(struct upload *u)
{
	struct job *j = &u->j;
	char err[256];
	uint64_t seen;
	unsigned relogins = 0;
	enum pf_status rc;
	enum wake why;

	for (;;) {
		if (u->finished)
			return PF_OK;
		if (queue_left(j->q) > 0) {
			worker_pool_spawn(u->pool);
			seen = atomic_load(&j->last_ack_ms);
			while ((why = wait_workers(u)) == WAKE_TICK) {
				streams_tune(u);
				if (queue_left(j->q) > 0)
					worker_pool_spawn(u->pool);
			}
			switch (why) {
			case WAKE_FAILED:
				return j->r->status;
			case WAKE_DONE:
				continue;
			case WAKE_RELOGIN:
			case WAKE_IDLE:
			case WAKE_TICK:
				break;
			}
			if (job_gave_up(j)) {
				job_give_up_error(j);
				return j->r->status;
			}
			/* Logins that lead nowhere are spaced out too. */
			if (atomic_load(&j->last_ack_ms) != seen)
				relogins = 0;
			if (relogins++ > 0)
				job_pause_ms(j, job_backoff_ms(relogins - 1,
				    &u->rng));
			log_info("logging in again to resume session %s",
			    j->session);
			if ((rc = control_setup(u)) != PF_OK)
				return rc;
			continue;
		}
		if (job_failed(j))
			return j->r->status;
		rc = commit(u, err, sizeof(err));
		if (rc == PF_OK)
			return PF_OK;
		if (!job_transient(rc)) {
			if (rc == PF_EIO)
				job_set_error(j, rc, "%s", err);
			else
				job_net_error(j, rc, "commit failed", err);
			return rc;
		}
		/* The control connection died: resume, then commit again. */
		job_note_trouble(j, rc, "commit", err);
		u->committed = true;
		if ((rc = control_setup(u)) != PF_OK)
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
	case PF_EQUOTA:
	case PF_EAUTH:
	case PF_ETHROTTLED:
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
	struct job *j = &u->j;
	const char *base;
	char *path;

	if (j->o->tree != NULL)
		return open_tree(u, sb);
	if ((j->src.fd = open(j->o->file, O_RDONLY | O_CLOEXEC)) == -1) {
		job_set_error(j, PF_EIO, "%s: %s", j->o->file, strerror(errno));
		return PF_EIO;
	}
	if (fstat(j->src.fd, sb) == -1 || !S_ISREG(sb->st_mode)) {
		job_set_error(j, PF_EIO, "%s: not a regular file", j->o->file);
		return PF_EIO;
	}
	j->size = (uint64_t)sb->st_size;
	if (proto_chunk_count(j->size, j->chunk_size,
	    &j->r->chunks) != PF_OK) {
		job_set_error(j, PF_ETOOLARGE, "%s: more than %u chunks; use a "
		    "larger --chunk-size", j->o->file, PROTO_MAX_CHUNKS);
		return PF_ETOOLARGE;
	}
	if (j->o->name != NULL)
		u->name = strdup(j->o->name);
	else if ((path = strdup(j->o->file)) != NULL) {
		base = basename(path);
		u->name = strdup(base);
		free(path);
	}
	if (u->name == NULL) {
		job_set_error(j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	return PF_OK;
}

/* Finds the state file, and the session to resume from it. */
static enum pf_status
open_state(struct upload *u, const struct stat *sb)
{
	struct job *j = &u->j;
	const struct upload_opts *o = j->o;
	struct state_id id = { o->host, o->port, o->user, o->file, sb,
	    o->chunk_size, u->name };

	if (state_open(&id, &u->state) != PF_OK) {
		job_set_error(j, PF_ENOMEM, "out of memory");
		return PF_ENOMEM;
	}
	if (u->state != NULL && !o->no_resume) {
		json_t *layout = NULL;
		enum pf_status rc = PF_OK;

		state_load(u->state, j->session, o->tree != NULL ? &layout :
		    NULL);
		if (j->session[0] != '\0') {
			u->resume = true;
			log_info("resuming session %s (from %s)", j->session,
			    state_path(u->state));
			if (layout != NULL)
				rc = plan_amend(u, layout);
		}
		json_decref(layout);
		return rc;
	}
	return PF_OK;
}

static enum pf_status
upload_init(struct upload *u, const struct upload_opts *o,
    struct upload_result *r)
{
	job_init(&u->j, o, r);
	pf_random(&u->rng, sizeof(u->rng));
	u->rng |= 1;
	u->start_ms = pf_now_ms();
	if (o->threads == 0) {
		autotune_init(&u->at, o->max_threads);
		u->j.target = autotune_level(&u->at);
	}
	if (o->limit_rate > 0 &&
	    (u->j.limit = ratelimit_new(o->limit_rate)) == NULL)
		return PF_ENOMEM;
	/* Slots for the most streams there may be. */
	if ((u->pool = worker_pool_new(&u->j, o->threads ? o->threads :
	    o->max_threads)) == NULL)
		return PF_ENOMEM;
	return PF_OK;
}

/* Stops everything; keeps or removes the state as the outcome says. */
static void
upload_finish(struct upload *u)
{
	struct job *j = &u->j;
	struct upload_result *r = j->r;

	/* First: no worker may still read the file or the queue. */
	worker_pool_free(u->pool);
	u->pool = NULL;
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
		memcpy(r->session, j->session, sizeof(r->session));
	if (j->q != NULL)
		r->resumed_chunks = queue_held(j->q);
	r->retries = atomic_load(&j->resent);
	r->reconnects = atomic_load(&j->reconnects);
	r->bytes_sent = atomic_load(&j->bytes_sent);
	r->busy = atomic_load(&j->busy);
	/* Workers have ended: j->peak is no longer written. */
	r->streams_max = j->peak;
	r->streams_final = j->autotune ? autotune_settled(&u->at) :
	    j->o->threads;
	/* No more streams than chunks ever ran. */
	if (r->streams_final > r->chunks)
		r->streams_final = r->chunks;
	ratelimit_free(j->limit);
	if (j->src.fd != -1)
		close(j->src.fd);
	free(u->files);
	queue_free(j->q);
	free(j->digests);
	free(u->name);
	job_destroy(j);
}

/* What the progress bar needs to count a transfer's files done. */
struct files_done {
	const struct tree	*t;
	struct chunk_queue	*q;
	uint32_t		 chunk_size;
	uint8_t			*map;		/* a bitmap of every chunk */
};

/*
 * The files whose bytes are all in chunks done (an empty file is done at
 * once); called by the progress bar's thread.
 */
static unsigned
count_files_done(void *arg)
{
	struct files_done *fd = arg;
	unsigned n = 0;

	queue_done_bitmap(fd->q, fd->map);
	for (size_t i = 0; i < fd->t->n; i++) {
		const struct tree_entry *e = &fd->t->e[i];
		uint32_t c, last;

		if (e->dir)
			continue;
		if (e->size == 0) {
			n++;
			continue;
		}
		c = (uint32_t)(e->offset / fd->chunk_size);
		last = (uint32_t)((e->offset + e->size - 1) / fd->chunk_size);
		while (c <= last && queue_bit(fd->map, c))
			c++;
		n += c > last;
	}
	return n;
}

enum pf_status
upload_run(const struct upload_opts *o, struct upload_result *r)
{
	struct upload u = { .rng = 0 };
	struct progress *bar = NULL;
	struct files_done fd = { o->tree, NULL, 0, NULL };
	struct stat sb;
	double start = now_seconds();

	memset(r, 0, sizeof(*r));
	if (upload_init(&u, o, r) != PF_OK) {
		job_set_error(&u.j, PF_ENOMEM, "out of memory");
		goto out;
	}
	if (open_file(&u, &sb) != PF_OK || open_state(&u, &sb) != PF_OK ||
	    make_queue(&u) != PF_OK || control_setup(&u) != PF_OK)
		goto out;
	fd.chunk_size = u.j.chunk_size;
	if (o->progress && o->tree != NULL &&
	    (fd.map = malloc(((size_t)r->chunks + 7) / 8)) != NULL) {
		struct progress_items items = { "files",
		    (unsigned)o->tree->files, count_files_done, &fd };

		/* A transfer: its files done, beside the bytes. */
		fd.q = u.j.q;
		bar = progress_start_items(r->name, u.j.size,
		    queue_done_bytes(u.j.q), &items);
	} else if (o->progress)
		bar = progress_start(r->name, u.j.size,
		    queue_done_bytes(u.j.q));
	supervise(&u);
	progress_stop(bar);
out:
	free(fd.map);
	r->chunk_size = u.j.chunk_size;
	upload_finish(&u);
	r->seconds = now_seconds() - start;
	return r->status;
}
