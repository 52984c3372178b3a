/* SPDX-License-Identifier: MIT */
/* Plain TCP transport, listen and connect. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

static ssize_t
tcp_read(struct pf_conn *c, void *p, size_t n)
{
	return recv(c->fd, p, n, 0);
}

static ssize_t
tcp_write(struct pf_conn *c, const void *p, size_t n)
{
	/* MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE. */
	return send(c->fd, p, n, MSG_NOSIGNAL);
}

static void
tcp_close(struct pf_conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

static const struct pf_conn_ops tcp_ops = { tcp_read, tcp_write, tcp_close,
    NULL };

static void
format_peer(int fd, char *out, size_t len)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host),
		    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, len, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
	    host, port);
}

struct pf_conn *
pf_conn_new_tcp(int fd)
{
	struct pf_conn *c;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return NULL;
	}
	c->ops = &tcp_ops;
	c->fd = fd;
	/* Frames are written whole or in large pieces; don't wait on Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	format_peer(fd, c->peer, sizeof(c->peer));
	return c;
}

void
pf_conn_free(struct pf_conn *c)
{
	if (c == NULL)
		return;
	c->ops->close(c);
	free(c);
}

void
pf_conn_set_timeout(struct pf_conn *c, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000,
	    .tv_usec = (ms % 1000) * 1000 };

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void
pf_conn_set_deadline(struct pf_conn *c, uint64_t ms)
{
	c->deadline = ms ? pf_now_ms() + ms : 0;
}

/*
 * Waits until c can be read (or written), but not past its deadline: the
 * socket timeout alone bounds each wait, not the whole exchange, and is
 * off entirely on an idle control connection. PF_OK, or PF_ETIMEOUT.
 */
static enum pf_status
wait_ready(struct pf_conn *c, short events)
{
	struct pollfd pfd = { .fd = c->fd, .events = events };
	uint64_t now;
	int r;

	/* What TLS decrypted already never shows on the socket. */
	if (c->deadline == 0 || (events == POLLIN && c->ops->pending != NULL &&
	    c->ops->pending(c) > 0))
		return PF_OK;
	do {
		if ((now = pf_now_ms()) >= c->deadline)
			return PF_ETIMEOUT;
		r = poll(&pfd, 1, (int)(c->deadline - now < INT32_MAX ?
		    c->deadline - now : INT32_MAX));
	} while (r == -1 && errno == EINTR);
	return r == 0 ? PF_ETIMEOUT : PF_OK;
}

enum pf_status
pf_conn_read_full(struct pf_conn *c, void *p, size_t n)
{
	char *b = p;

	while (n > 0) {
		ssize_t r;

		if (wait_ready(c, POLLIN) != PF_OK)
			return PF_ETIMEOUT;
		r = c->ops->read(c, b, n);
		if (r > 0) {
			b += r;
			n -= (size_t)r;
		} else if (r == 0)
			return PF_ENET;
		else if (errno == EINTR)
			continue;
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return PF_ETIMEOUT;
		else
			return PF_ENET;
	}
	return PF_OK;
}

enum pf_status
pf_conn_drain(struct pf_conn *c, unsigned idle_ms, unsigned ms)
{
	char sink[16384];
	ssize_t n;

	shutdown(c->fd, SHUT_WR);
	pf_conn_set_timeout(c, idle_ms);
	pf_conn_set_deadline(c, ms);
	for (;;) {
		if (wait_ready(c, POLLIN) != PF_OK)
			return PF_ETIMEOUT;
		if ((n = c->ops->read(c, sink, sizeof(sink))) > 0 ||
		    (n == -1 && errno == EINTR))
			continue;
		/* EOF, or a reset: either way the peer is done. */
		return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK) ?
		    PF_ETIMEOUT : PF_OK;
	}
}

enum pf_status
pf_conn_write_full(struct pf_conn *c, const void *p, size_t n)
{
	const char *b = p;

	while (n > 0) {
		ssize_t w;

		if (wait_ready(c, POLLOUT) != PF_OK)
			return PF_ETIMEOUT;
		w = c->ops->write(c, b, n);
		if (w > 0) {
			b += w;
			n -= (size_t)w;
		} else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return PF_ETIMEOUT;
		else
			return PF_ENET;
	}
	return PF_OK;
}

enum pf_status
pf_tcp_listen(const char *addr, unsigned port, int *fdp, unsigned *bound_port)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char service[8];
	int fd = -1, one = 1, err;
	enum pf_status rc = PF_ENET;

	snprintf(service, sizeof(service), "%u", port);
	if ((err = getaddrinfo(addr, service, &hints, &res)) != 0) {
		log_error("%s: %s: %s", __func__, addr ? addr : "*",
		    gai_strerror(err));
		return PF_ENET;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
		errno = err;
	}
	if (fd == -1) {
		log_error("%s: %s:%u: %s", __func__, addr ? addr : "*", port,
		    strerror(errno));
		goto out;
	}
	if (bound_port != NULL) {
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
			close(fd);
			goto out;
		}
		*bound_port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	}
	*fdp = fd;
	rc = PF_OK;
out:
	freeaddrinfo(res);
	return rc;
}

static int
connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, unsigned ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int flags = fcntl(fd, F_GETFL), err = 0;
	socklen_t el = sizeof(err);

	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		return -1;
	if (connect(fd, sa, len) == -1) {
		if (errno != EINPROGRESS)
			return -1;
		if (poll(&pfd, 1, (int)ms) != 1) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1)
			return -1;
		if (err != 0) {
			errno = err;
			return -1;
		}
	}
	return fcntl(fd, F_SETFL, flags);
}

enum pf_status
pf_tcp_connect(const char *host, unsigned port, unsigned timeout_ms,
    struct pf_conn **out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
	    .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	char service[8];
	int fd = -1, err;

	snprintf(service, sizeof(service), "%u", port);
	if ((err = getaddrinfo(host, service, &hints, &res)) != 0) {
		log_debug("%s: %s: %s", __func__, host, gai_strerror(err));
		return PF_ENET;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1)
			continue;
		if (connect_timeout(fd, ai->ai_addr, ai->ai_addrlen,
		    timeout_ms) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
		errno = err;
	}
	freeaddrinfo(res);
	if (fd == -1) {
		log_debug("%s: %s:%u: %s", __func__, host, port,
		    strerror(errno));
		return PF_ENET;
	}
	if ((*out = pf_conn_new_tcp(fd)) == NULL)
		return PF_ENOMEM;
	return PF_OK;
}

int
pf_addr_is_loopback(const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE };
	struct addrinfo *res = NULL, *ai;
	int loop = 1;

	if (addr == NULL || getaddrinfo(addr, NULL, &hints, &res) != 0)
		return 0;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			struct sockaddr_in *sin = (void *)ai->ai_addr;

			if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
				loop = 0;
		} else if (ai->ai_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (void *)ai->ai_addr;

			if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
				loop = 0;
		} else
			loop = 0;
	}
	freeaddrinfo(res);
	return loop;
}

/* The part of an address pf_addr_same_host compares; its length or 0. */
static size_t
host_key(const struct sockaddr_storage *ss, uint8_t key[8])
{
	const struct in6_addr *a6;

	if (ss->ss_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return 4;
	}
	if (ss->ss_family != AF_INET6)
		return 0;
	a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		memcpy(key, &a6->s6_addr[12], 4);
		return 4;
	}
	memcpy(key, a6->s6_addr, 8);
	return 8;
}

bool
pf_addr_same_host(const struct sockaddr_storage *a,
    const struct sockaddr_storage *b)
{
	uint8_t ka[8], kb[8];
	size_t n = host_key(a, ka);

	return n != 0 && host_key(b, kb) == n && memcmp(ka, kb, n) == 0;
}

void
pf_addr_text(const struct sockaddr_storage *ss, char out[INET6_ADDRSTRLEN])
{
	const void *a = ss->ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if ((ss->ss_family != AF_INET && ss->ss_family != AF_INET6) ||
	    inet_ntop(ss->ss_family, a, out, INET6_ADDRSTRLEN) == NULL)
		snprintf(out, INET6_ADDRSTRLEN, "?");
}
