/* SPDX-License-Identifier: MIT */
/*
 * Byte transport. Protocol code reads and writes a struct pf_conn and never
 * a socket, so a TLS transport can later be slotted in as another ops table
 * without touching it (the wrk "struct sock" idea).
 */
#ifndef PF_NET_H
#define PF_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "clock.h"
#include "status.h"

struct pf_conn;

/*
 * Whether a and b are one client for per-address limits: the same IPv4
 * address (mapped into IPv6 or not), or the same IPv6 /64, since one host
 * or site is given a whole /64 and could spread its connections over it
 * (as the login throttle counts). Other families are never the same.
 */
bool pf_addr_same_host(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b);

/* The address of ss as text (no port) into out; "?" if it has none. */
void pf_addr_text(const struct sockaddr_storage *ss,
    char out[INET6_ADDRSTRLEN]);

struct pf_conn_ops {
	/* Like read(2)/write(2): >0 bytes, 0 on EOF (read), -1 with errno. */
	ssize_t	(*read)(struct pf_conn *c, void *p, size_t n);
	ssize_t	(*write)(struct pf_conn *c, const void *p, size_t n);
	void	(*close)(struct pf_conn *c);
	/* Bytes the transport holds already, readable without waiting. */
	size_t	(*pending)(const struct pf_conn *c);
};

struct pf_conn {
	const struct pf_conn_ops *ops;
	int		 fd;
	char		 peer[64];	/* "addr:port", for logs */
	uint64_t	 deadline;	/* monotonic ms; 0: none */
	void		*tls;		/* the transport's state (tls.c) */
};

/* Wraps a connected TCP socket; takes ownership of fd. NULL on ENOMEM. */
struct pf_conn *pf_conn_new_tcp(int fd);

/* Closes the transport and frees c. NULL is a no-op. */
void pf_conn_free(struct pf_conn *c);

/* Sets the send and receive timeout of c in milliseconds (0: none). */
void pf_conn_set_timeout(struct pf_conn *c, unsigned ms);

/*
 * Sets a deadline ms milliseconds from now (0: none) by which reads and
 * writes must be done, however steadily the peer trickles bytes: the
 * timeout alone only bounds each single wait. The deadline holds even with
 * the timeout off.
 */
void pf_conn_set_deadline(struct pf_conn *c, uint64_t ms);

/*
 * Reads exactly n bytes. PF_ENET on EOF or error, PF_ETIMEOUT when the
 * timeout set with pf_conn_set_timeout passes with no progress or the
 * deadline passes.
 */
enum pf_status pf_conn_read_full(struct pf_conn *c, void *p, size_t n);

/* Writes exactly n bytes; PF_ENET or PF_ETIMEOUT on failure. */
enum pf_status pf_conn_write_full(struct pf_conn *c, const void *p, size_t n);

/*
 * Ends our side (shutdown SHUT_WR) and reads and discards what the peer
 * still sends, until it closes, sends nothing for idle_ms, or ms
 * milliseconds pass in all. Closing at once with unread input makes the
 * kernel send a reset, which can destroy the last frame either side sent
 * before the other read it. PF_OK if the peer closed in time, PF_ETIMEOUT
 * if not.
 */
enum pf_status pf_conn_drain(struct pf_conn *c, unsigned idle_ms,
    unsigned ms);

/*
 * Opens a listening TCP socket on addr:port (addr NULL: all addresses).
 * port 0 picks an ephemeral port; *bound_port receives the real one.
 */
enum pf_status pf_tcp_listen(const char *addr, unsigned port, int *fd,
    unsigned *bound_port);

/* Connects to host:port within timeout_ms; *out is a new connection. */
enum pf_status pf_tcp_connect(const char *host, unsigned port,
    unsigned timeout_ms, struct pf_conn **out);

/* True if addr (numeric or name) only resolves to loopback addresses. */
int pf_addr_is_loopback(const char *addr);

#endif
