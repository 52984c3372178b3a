/* SPDX-License-Identifier: MIT */
/*
 * The connection budget of the native port: how many connections may be
 * logging in at once, overall and per address, and for how long, so that
 * peers that never log in cannot take the slots of users who do.
 */
#ifndef PF_BUDGET_H
#define PF_BUDGET_H

#include <stdbool.h>
#include <sys/socket.h>

struct budget_limits {
	unsigned	 max_connections;	/* all connections */
	unsigned	 max_logins;	/* of them still logging in */
	unsigned	 max_ip_logins;	/* logging in from one address */
	unsigned	 login_ms;	/* TLS handshake to login, as a whole */
};

struct budget;
struct budget_ticket;

/* A new budget with the limits lim (copied). NULL on ENOMEM. */
struct budget *budget_new(const struct budget_limits *lim);

/* Frees b; every ticket must be released. NULL is a no-op. */
void budget_free(struct budget *b);

/*
 * Admits a new connection on socket fd from addr, with nconns
 * connections open already: *out is its ticket (until budget_release),
 * counted as logging in until budget_logged_in. False when a limit says
 * no; the refusal is counted for the next summary in the log, never
 * logged on its own. The accept thread only.
 */
bool budget_admit(struct budget *b, unsigned nconns, int fd,
    const struct sockaddr_storage *addr, struct budget_ticket **out);

/*
 * The connection of t has logged in (or joined a session): it no longer
 * counts as logging in and its login deadline is off. t NULL: no-op
 * (a connection the budget never saw). Its own thread.
 */
void budget_logged_in(struct budget *b, struct budget_ticket *t);

/*
 * The connection of t ends: its ticket goes. Call before its socket is
 * closed (budget_tick may shut it down until then). NULL is a no-op.
 */
void budget_release(struct budget *b, struct budget_ticket *t);

/*
 * Shuts down connections still logging in past their deadline (their
 * threads then see the connection end), and logs one summary line of
 * what was refused and cut since the last one, at most every few
 * seconds. The accept thread, a few times a second.
 */
void budget_tick(struct budget *b);

#endif
