/* SPDX-License-Identifier: MIT */
/*
 * What the supervisor of an upload and its workers share: the file, the
 * chunk queue, the current login and session, the first error, and the
 * give-up clock; and the rules both follow on failure (which errors are
 * retried, how long to back off, when to give up).
 */
#ifndef PF_JOB_H
#define PF_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chunkio.h"
#include "digest.h"
#include "proto.h"
#include "queue.h"
#include "ratelimit.h"
#include "status.h"
#include "upload.h"

struct job {
	const struct upload_opts *o;
	struct upload_result	*r;
	struct chunk_src	 src;		/* the file, or files */
	uint64_t		 size;
	uint32_t		 chunk_size;	/* o's, or the one picked
						   (upload.c) */
	struct chunk_queue	*q;
	uint8_t			*digests;	/* ours, 32 bytes a chunk */
	uint64_t		 give_up_ms;
	bool			 autotune;	/* --threads auto */
	struct ratelimit	*limit;		/* --limit-rate, or NULL */

	/* Guards what follows, and r->status and r->message. */
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;		/* CLOCK_MONOTONIC */
	uint8_t			 key[PF_SHA256_LEN];
	char			 session[PROTO_ID_LEN + 1];
	unsigned		 gen;		/* login generation */
	bool			 relogin;	/* gen found stale */
	bool			 stopping;	/* workers must end */
	unsigned		 running;	/* workers */
	unsigned		 target;	/* streams wanted */
	unsigned		 active;	/* workers not retiring */
	unsigned		 peak;		/* the most active at once */
	uint64_t		 tcp_closed;	/* bytes the server's TCP
						   acknowledged on closed
						   data connections */
	unsigned		 busy_cap;	/* streams when the server
						   said busy; 0: never */
	unsigned		 connecting;	/* data connections logging
						   in */
	unsigned		 connect_max;	/* at once, at most */
	char			 trouble[256];	/* the last transient error */

	_Atomic uint64_t	 last_ack_ms;
	_Atomic uint64_t	 acks;		/* ACKs in this run */
	_Atomic unsigned	 busy;		/* data connections refused */
	_Atomic uint64_t	 bytes_sent;
	_Atomic unsigned	 resent;
	_Atomic unsigned	 reconnects;
};

/*
 * Sets j up for options o and result r (both borrowed; they outlive j):
 * the lock, the condition and the give-up clock, started now. The file,
 * queue and digests are the supervisor's to fill in. Undo with
 * job_destroy. Supervisor only, before any worker runs.
 */
void job_init(struct job *j, const struct upload_opts *o,
    struct upload_result *r);

/* Wipes the key and destroys the lock; frees nothing else. */
void job_destroy(struct job *j);

/*
 * Records the first failure of an upload (status rc and a message for
 * people) and stops every worker. Any thread.
 */
void job_set_error(struct job *j, enum pf_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * job_set_error with "what: why", why being srv (the server's words) if
 * not empty, else rc's message. Any thread.
 */
void job_net_error(struct job *j, enum pf_status rc, const char *what,
    const char *srv);

/* True once the upload has failed. Any thread. */
bool job_failed(struct job *j);

/*
 * Remembers a failure that will be retried, for the message if the
 * upload gives up later; logs it. Any thread.
 */
void job_note_trouble(struct job *j, enum pf_status rc, const char *what,
    const char *srv);

/* True for failures that another connection or login may not meet. */
bool job_transient(enum pf_status rc);

/* True once no chunk has been acknowledged for --give-up. Any thread. */
bool job_gave_up(struct job *j);

/* A backoff of ms, cut short where --give-up would pass during it. */
unsigned job_until_give_up(struct job *j, unsigned ms);

/* Fails the upload as given up, naming the last trouble. Any thread. */
void job_give_up_error(struct job *j);

/*
 * The backoff before attempt (1, 2, ...): 100 ms doubling up to 5 s, each
 * drawn from [d/2, d]; rng is the caller's own jitter state (not 0).
 */
unsigned job_backoff_ms(unsigned attempt, uint32_t *rng);

/* Sleeps ms, or less if the upload fails, stops or gets done. */
void job_pause_ms(struct job *j, unsigned ms);

/* Wakes the supervisor and every pause. Any thread. */
void job_wake_all(struct job *j);

/*
 * Waits until fewer than j->connect_max data connections are logging in
 * (the server caps those of one address), and counts one more; false if
 * the upload stops meanwhile. job_connect_leave when it has joined or
 * failed. Workers only.
 */
bool job_connect_enter(struct job *j);
void job_connect_leave(struct job *j);

#endif
