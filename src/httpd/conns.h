/* SPDX-License-Identifier: MIT */
/* The gateway's connections: per-address cap and whole-request deadline. */
#ifndef PF_CONNS_H
#define PF_CONNS_H

#include <netinet/in.h>
#include <stdbool.h>

#include <sys/socket.h>

#include <microhttpd.h>

#include "gateway.h"

/*
 * MHD's connection notification (cls is the struct httpd): on start, a
 * record of the connection is kept in h->conns, counted against
 * --http-max-per-ip; on close it goes. MHD threads only.
 */
void conns_notify(void *cls, struct MHD_Connection *c, void **ctx,
    enum MHD_ConnectionNotificationCode code);

/*
 * A request of c ended: the next one on the connection gets a fresh
 * deadline. MHD threads, from the completed callback.
 */
void conns_request_done(struct httpd *h, struct MHD_Connection *c);

/*
 * n more bytes of an upload's body came on c (tus.c): each GW_BODY_STEP
 * of them restarts the request's deadline, so an upload may take as long
 * as it goes on at that much per 3 times --http-timeout.
 */
void conns_note_body(struct httpd *h, struct MHD_Connection *c, size_t n);

/* Marks c's request as answered: its deadline stops counting. */
void conns_mark_responding(struct MHD_Connection *c);

/* True if c was opened over --http-max-per-ip (it gets 503 busy). */
bool conns_over_limit(struct MHD_Connection *c);

/*
 * c carries an upload's body (tus.c): it is not closed to make room for
 * new connections unless it stalls for --http-timeout. Until the end of
 * the request.
 */
void conns_mark_uploading(struct MHD_Connection *c);

/* The client's address of c with its port zeroed, to count per address. */
void conns_client_addr(struct MHD_Connection *c,
    struct sockaddr_storage *out);


/*
 * Cuts connections whose request is over 3 times --http-timeout, and,
 * with the table nearly full, those that have waited longest for their
 * request (see GW_SPARE). The monitor thread calls it, without h->lock.
 */
void conns_enforce_deadlines(struct httpd *h);

#endif
