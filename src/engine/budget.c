/* SPDX-License-Identifier: MIT */
/*
 * The connection budget of the native port: caps on connections logging
 * in (overall and per address), the whole-login deadline, and the
 * summary of refusals in the log.
 */
#include "config.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "clock.h"
#include "log.h"
#include "net.h"

/*
 * Refusals are summed up in one line this often: under a flood one line
 * per refused connection would fill the disk and bury everything else.
 */
#define SUMMARY_MS	10000

struct budget_ticket {
	struct sockaddr_storage	 addr;		/* the peer's, port zeroed */
	int			 fd;
	uint64_t		 login_by;	/* monotonic ms */
	bool			 logging_in;
	bool			 cut;		/* shut down by budget_tick */
	struct budget_ticket	*prev, *next;
};

/* What was refused or cut since the last summary. */
struct tally {
	unsigned	 full;		/* over max_connections */
	unsigned	 logins;	/* over max_logins */
	unsigned	 ip;		/* over max_ip_logins */
	unsigned	 late;		/* no login within login_ms */
	uint64_t	 since;		/* ms, the first of them */
	char		 last[INET6_ADDRSTRLEN];	/* last one refused */
};

struct budget {
	struct budget_limits	 lim;
	pthread_mutex_t		 lock;		/* guards what follows */
	struct budget_ticket	*tickets;
	struct tally		 tally;
	uint64_t		 logged_at;	/* last summary, ms; 0: none */
};

struct budget *
budget_new(const struct budget_limits *lim)
{
	struct budget *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->lim = *lim;
	pthread_mutex_init(&b->lock, NULL);
	return b;
}

void
budget_free(struct budget *b)
{
	if (b == NULL)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* Counts one more in *n, a field of b->tally (b->lock held). */
static void
count(struct budget *b, unsigned *n)
{
	if (b->tally.since == 0)
		b->tally.since = pf_now_ms();
	(*n)++;
}

/* Counts a refusal of addr in *n (b->lock held). */
static void
refused(struct budget *b, unsigned *n, const struct sockaddr_storage *addr)
{
	count(b, n);
	pf_addr_text(addr, b->tally.last);
}

bool
budget_admit(struct budget *b, unsigned nconns, int fd,
    const struct sockaddr_storage *addr, struct budget_ticket **out)
{
	struct budget_ticket *t;
	unsigned logins = 0, same = 0;
	bool ok = false;

	*out = NULL;
	pthread_mutex_lock(&b->lock);
	for (t = b->tickets; t != NULL; t = t->next)
		if (t->logging_in) {
			logins++;
			same += pf_addr_same_host(&t->addr, addr);
		}
	/*
	 * The connections over max_logins are kept for users who logged
	 * in: a flood of peers that never do cannot take them. The address
	 * is checked first, so that the summary names the flooding one.
	 */
	if (nconns >= b->lim.max_connections)
		refused(b, &b->tally.full, addr);
	else if (same >= b->lim.max_ip_logins)
		refused(b, &b->tally.ip, addr);
	else if (logins >= b->lim.max_logins)
		refused(b, &b->tally.logins, addr);
	else if ((t = calloc(1, sizeof(*t))) != NULL) {
		t->addr = *addr;
		t->fd = fd;
		t->login_by = pf_now_ms() + b->lim.login_ms;
		t->logging_in = true;
		t->next = b->tickets;
		if (b->tickets != NULL)
			b->tickets->prev = t;
		b->tickets = t;
		*out = t;
		ok = true;
	}
	pthread_mutex_unlock(&b->lock);
	return ok;
}

void
budget_logged_in(struct budget *b, struct budget_ticket *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&b->lock);
	t->logging_in = false;
	pthread_mutex_unlock(&b->lock);
}

void
budget_release(struct budget *b, struct budget_ticket *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&b->lock);
	/* Cut here or by its own read deadline: either way, too slow. */
	if (t->logging_in && (t->cut || pf_now_ms() >= t->login_by))
		count(b, &b->tally.late);
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		b->tickets = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&b->lock);
	free(t);
}

/* Logs what was refused and cut since the last summary (b->lock held). */
static void
summarize(struct budget *b, uint64_t now)
{
	struct tally *y = &b->tally;

	if (y->full + y->logins + y->ip > 0)
		log_warn("refused %u connections in %llu s (last from %s): "
		    "%u over --max-connections %u, %u over "
		    "--max-login-connections %u, %u over --max-ip-logins %u",
		    y->full + y->logins + y->ip,
		    (unsigned long long)(now - y->since) / 1000 + 1,
		    y->last, y->full, b->lim.max_connections, y->logins,
		    b->lim.max_logins, y->ip, b->lim.max_ip_logins);
	if (y->late > 0)
		log_info("closed %u connections that did not log in within "
		    "%u s", y->late, (b->lim.login_ms + 999) / 1000);
	memset(y, 0, sizeof(*y));
	b->logged_at = now;
}

void
budget_tick(struct budget *b)
{
	uint64_t now = pf_now_ms();

	pthread_mutex_lock(&b->lock);
	/*
	 * The deadline bounds the TLS handshake too, which reads with
	 * per-read timeouts only: a peer trickling a byte at a time would
	 * stretch it. The connection's thread sees the shutdown as the
	 * peer gone; its socket stays open until budget_release.
	 */
	for (struct budget_ticket *t = b->tickets; t != NULL; t = t->next)
		if (t->logging_in && !t->cut && now >= t->login_by) {
			shutdown(t->fd, SHUT_RDWR);
			t->cut = true;
		}
	/* The first refusal after a quiet spell shows at once. */
	if (b->tally.since != 0 && (b->logged_at == 0 ||
	    now - b->logged_at >= SUMMARY_MS))
		summarize(b, now);
	pthread_mutex_unlock(&b->lock);
}
