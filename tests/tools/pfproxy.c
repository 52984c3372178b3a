/* SPDX-License-Identifier: MIT */
/* A loopback TCP proxy that injects faults for the integration tests. */
#define _GNU_SOURCE

#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Big buffers keep the per-byte cost at zero: each direction moves at most
 * one buffer per poll round, so 64 KiB is what makes loopback rates of
 * several hundred MB/s possible without a second thread per direction.
 */
#define PROXY_BUFSZ		(64 * 1024)
#define PROXY_MAX_CORRUPT	16
#define PROXY_BACKLOG		128
#define PROXY_BACKOFF_MS	100

struct options {
	uint16_t	 listen_port;
	const char	*target_host;
	long		 target_port;	/* -1 until given */
	const char	*port_file;
	const char	*pid_file;
	const char	*record_file;
	const char	*log_file;
	uint64_t	 corrupt_at[PROXY_MAX_CORRUPT];
	size_t		 ncorrupt_at;
	uint64_t	 corrupt_conns;	/* UINT64_MAX means all */
	uint64_t	 corrupt_every;	/* 0 means off */
	bool		 cut;
	uint64_t	 cut_at;
	uint64_t	 cut_conns;	/* UINT64_MAX means all */
	uint64_t	 max_conns;	/* 0 means run until killed */
};

/* One direction of a connection: bytes read from src, written to dst. */
struct flow {
	int		 src;
	int		 dst;
	unsigned char	*buf;
	size_t		 len;	/* bytes held in buf */
	size_t		 off;	/* bytes of buf already sent */
	uint64_t	 in;	/* stream offset of the next byte read */
	uint64_t	 out;	/* bytes forwarded to dst */
	bool		 eof;
	bool		 shut;	/* dst is shut down for writing */
};

struct conn {
	uint64_t	 id;	/* 1-based, in accept order */
	int		 client;
	int		 server;
	bool		 corrupt;
	bool		 cut;
	bool		 record;
	struct flow	 up;	/* client to server */
	struct flow	 down;	/* server to client */
	unsigned char	 bufs[2][PROXY_BUFSZ];
};

/*
 * Everything below is written by main() before the first connection thread
 * starts and only read afterwards, except the counters under live_lock.
 */
static struct options opt = {
	.target_host = "127.0.0.1",
	.target_port = -1,
	.corrupt_conns = UINT64_MAX,
	.cut_conns = UINT64_MAX,
};
static struct sockaddr_storage target_addr;
static socklen_t target_len;
static int log_fd = -1;
static int record_fd = -1;

/*
 * The stop pipe is written once (by the signal handler or by the thread
 * that finishes the last connection under --max-conns) and never read, so
 * it stays readable and wakes every poll() in the process at once.
 */
static int stop_pipe[2] = { -1, -1 };

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t live_cond = PTHREAD_COND_INITIALIZER;
static unsigned live_conns;
static uint64_t finished_conns;

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: pfproxy --target-port P [--target-host H] "
	    "[--listen-port N]\n"
	    "               [--port-file F] [--pid-file F] [--log F] "
	    "[--record F]\n"
	    "               [--corrupt-at N]... [--corrupt-conns K] "
	    "[--corrupt-every N]\n"
	    "               [--cut-at N] [--cut-conns K] [--max-conns N]\n");
}

static void
request_stop(void)
{
	int saved = errno;
	ssize_t n;
	char c = 0;

	/* A full pipe is fine: it is already readable, which is all we need. */
	n = write(stop_pipe[1], &c, 1);
	(void)n;
	errno = saved;
}

static void
on_signal(int sig)
{
	(void)sig;
	request_stop();
}

static int
write_all(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;
	ssize_t w;

	while (n > 0) {
		w = write(fd, b, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Each event goes out in one write() on an O_APPEND descriptor, so lines
 * from different connections never interleave and a test reading the log
 * while we run sees only whole lines.
 */
static void __attribute__((format(printf, 1, 2)))
log_event(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (log_fd == -1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write_all(log_fd, line, (size_t)n) == -1)
		fprintf(stderr, "pfproxy: %s: %s\n", __func__, strerror(errno));
}

/* Tests poll for the file, so it must never be seen half written. */
static int
write_file_atomic(const char *path, const char *text)
{
	char *tmp = NULL;
	int fd = -1, rc = -1;

	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) == -1) {
		tmp = NULL;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1)
		goto out;
	if (write_all(fd, text, strlen(text)) == -1)
		goto out;
	if (close(fd) == -1) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		fprintf(stderr, "pfproxy: %s: %s: %s\n", __func__, path,
		    strerror(errno));
	if (fd != -1) {
		close(fd);
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

static int
parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	/* strtoull() accepts "-1" and wraps it; a test asking that is wrong. */
	if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static bool
is_corrupt_at(uint64_t o)
{
	size_t i;

	for (i = 0; i < opt.ncorrupt_at; i++)
		if (opt.corrupt_at[i] == o)
			return true;
	return false;
}

enum {
	OPT_LISTEN_PORT = 256,
	OPT_TARGET_HOST,
	OPT_TARGET_PORT,
	OPT_PORT_FILE,
	OPT_PID_FILE,
	OPT_CORRUPT_AT,
	OPT_CORRUPT_CONNS,
	OPT_CORRUPT_EVERY,
	OPT_CUT_AT,
	OPT_CUT_CONNS,
	OPT_RECORD,
	OPT_LOG,
	OPT_MAX_CONNS,
	OPT_HELP,
};

static const struct option long_opts[] = {
	{ "listen-port", required_argument, NULL, OPT_LISTEN_PORT },
	{ "target-host", required_argument, NULL, OPT_TARGET_HOST },
	{ "target-port", required_argument, NULL, OPT_TARGET_PORT },
	{ "port-file", required_argument, NULL, OPT_PORT_FILE },
	{ "pid-file", required_argument, NULL, OPT_PID_FILE },
	{ "corrupt-at", required_argument, NULL, OPT_CORRUPT_AT },
	{ "corrupt-conns", required_argument, NULL, OPT_CORRUPT_CONNS },
	{ "corrupt-every", required_argument, NULL, OPT_CORRUPT_EVERY },
	{ "cut-at", required_argument, NULL, OPT_CUT_AT },
	{ "cut-conns", required_argument, NULL, OPT_CUT_CONNS },
	{ "record", required_argument, NULL, OPT_RECORD },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Returns 0, or -1 after printing why the command line is unusable. */
static int
parse_args(int argc, char **argv)
{
	uint64_t v;
	int ch, idx = 0;

	while ((ch = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
		if (ch == OPT_HELP) {
			usage(stdout);
			exit(0);
		}
		if (ch == '?')
			return -1;
		if (ch == OPT_TARGET_HOST) {
			opt.target_host = optarg;
			continue;
		}
		if (ch == OPT_PORT_FILE || ch == OPT_PID_FILE ||
		    ch == OPT_RECORD || ch == OPT_LOG) {
			if (*optarg == '\0')
				goto bad;
			if (ch == OPT_PORT_FILE)
				opt.port_file = optarg;
			else if (ch == OPT_PID_FILE)
				opt.pid_file = optarg;
			else if (ch == OPT_RECORD)
				opt.record_file = optarg;
			else
				opt.log_file = optarg;
			continue;
		}
		if (parse_u64(optarg, &v) == -1)
			goto bad;
		switch (ch) {
		case OPT_LISTEN_PORT:
			if (v > 65535)
				goto bad;
			opt.listen_port = (uint16_t)v;
			break;
		case OPT_TARGET_PORT:
			if (v == 0 || v > 65535)
				goto bad;
			opt.target_port = (long)v;
			break;
		case OPT_CORRUPT_AT:
			/* A repeated offset would flip the byte back. */
			if (is_corrupt_at(v))
				break;
			if (opt.ncorrupt_at == PROXY_MAX_CORRUPT) {
				fprintf(stderr, "pfproxy: at most %d "
				    "--corrupt-at\n", PROXY_MAX_CORRUPT);
				return -1;
			}
			opt.corrupt_at[opt.ncorrupt_at++] = v;
			break;
		case OPT_CORRUPT_CONNS:
			opt.corrupt_conns = v;
			break;
		case OPT_CORRUPT_EVERY:
			if (v == 0)
				goto bad;
			opt.corrupt_every = v;
			break;
		case OPT_CUT_AT:
			opt.cut = true;
			opt.cut_at = v;
			break;
		case OPT_CUT_CONNS:
			opt.cut_conns = v;
			break;
		case OPT_MAX_CONNS:
			if (v == 0)
				goto bad;
			opt.max_conns = v;
			break;
		default:
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pfproxy: unexpected argument '%s'\n",
		    argv[optind]);
		return -1;
	}
	if (opt.target_port == -1) {
		fprintf(stderr, "pfproxy: --target-port is required\n");
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "pfproxy: bad value '%s' for --%s\n", optarg,
	    long_opts[idx].name);
	return -1;
}

static int
resolve_target(void)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int err;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%ld", opt.target_port);
	err = getaddrinfo(opt.target_host, port, &hints, &res);
	if (err != 0) {
		fprintf(stderr, "pfproxy: %s: %s: %s\n", __func__,
		    opt.target_host, gai_strerror(err));
		return -1;
	}
	memcpy(&target_addr, res->ai_addr, res->ai_addrlen);
	target_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int
set_socket_opts(int fd)
{
	int one = 1, fl;

	/*
	 * Without TCP_NODELAY the proxy would add Nagle delays the real
	 * client-server path does not have, and small frames would stall.
	 */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		return -1;
	fl = fcntl(fd, F_GETFL);
	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return -1;
	return 0;
}

static void
flip(const struct conn *c, unsigned char *p, uint64_t pos, uint64_t o)
{
	p[o - pos] ^= 0xFF;
	log_event("corrupt conn=%" PRIu64 " offset=%" PRIu64, c->id, o);
}

/* Applies the corruption faults to p, which holds stream bytes [pos, +n). */
static void
corrupt_chunk(const struct conn *c, unsigned char *p, size_t n, uint64_t pos)
{
	uint64_t end = pos + n, every = opt.corrupt_every, o;
	size_t i;

	for (i = 0; i < opt.ncorrupt_at; i++) {
		o = opt.corrupt_at[i];
		if (o >= pos && o < end)
			flip(c, p, pos, o);
	}
	if (every == 0)
		return;
	/* The first offset >= pos of the form k * every - 1. */
	o = (pos / every + 1) * every - 1;
	while (o < end) {
		if (!is_corrupt_at(o))
			flip(c, p, pos, o);
		if (o > UINT64_MAX - every)
			break;
		o += every;
	}
}

static bool
flow_wants_read(const struct conn *c, const struct flow *f)
{
	if (f->eof || f->len != 0)
		return false;
	if (f == &c->up && c->cut && f->in >= opt.cut_at)
		return false;
	return true;
}

/* Reads one buffer if the last one is gone; returns -1 on a fatal error. */
static int
flow_fill(struct conn *c, struct flow *f)
{
	size_t want = PROXY_BUFSZ;
	ssize_t n;

	if (!flow_wants_read(c, f))
		return 0;
	/* Never read past the cut, so exactly cut_at bytes are forwarded. */
	if (f == &c->up && c->cut && opt.cut_at - f->in < want)
		want = (size_t)(opt.cut_at - f->in);
	n = recv(f->src, f->buf, want, 0);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return -1;
	}
	if (n == 0) {
		f->eof = true;
		return 0;
	}
	if (f == &c->up) {
		/* Recorded as the client sent them, before any fault. */
		if (c->record && write_all(record_fd, f->buf, (size_t)n) == -1)
			fprintf(stderr, "pfproxy: record: %s\n",
			    strerror(errno));
		if (c->corrupt)
			corrupt_chunk(c, f->buf, (size_t)n, f->in);
	}
	f->len = (size_t)n;
	f->off = 0;
	f->in += (uint64_t)n;
	return 0;
}

/* Sends what the buffer holds; returns -1 on a fatal error. */
static int
flow_drain(struct flow *f)
{
	ssize_t n;

	if (f->len == 0)
		return 0;
	n = send(f->dst, f->buf + f->off, f->len - f->off, MSG_NOSIGNAL);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		return -1;
	}
	f->off += (size_t)n;
	f->out += (uint64_t)n;
	if (f->off == f->len)
		f->off = f->len = 0;
	return 0;
}

/*
 * Passes an EOF on: the other side may still have a reply to send, which is
 * exactly what a half-closing client expects to receive.
 */
static void
flow_half_close(struct flow *f)
{
	if (!f->eof || f->len != 0 || f->shut)
		return;
	/* ENOTCONN after a reset is harmless: the other flow will fail. */
	(void)shutdown(f->dst, SHUT_WR);
	f->shut = true;
}

static void
conn_relay(struct conn *c)
{
	struct pollfd pfd[3];
	short cev, sev;

	for (;;) {
		if (flow_fill(c, &c->up) == -1 || flow_drain(&c->up) == -1 ||
		    flow_fill(c, &c->down) == -1 ||
		    flow_drain(&c->down) == -1) {
			/* Resets are routine in fault tests, others bugs. */
			if (errno != ECONNRESET && errno != EPIPE)
				fprintf(stderr, "pfproxy: conn=%" PRIu64
				    ": %s\n", c->id, strerror(errno));
			return;
		}
		flow_half_close(&c->up);
		flow_half_close(&c->down);
		if (c->cut && c->up.out >= opt.cut_at) {
			log_event("cut conn=%" PRIu64 " offset=%" PRIu64,
			    c->id, c->up.out);
			return;
		}
		if (c->up.shut && c->down.shut)
			return;

		cev = (short)((flow_wants_read(c, &c->up) ? POLLIN : 0) |
		    (c->down.len != 0 ? POLLOUT : 0));
		sev = (short)((flow_wants_read(c, &c->down) ? POLLIN : 0) |
		    (c->up.len != 0 ? POLLOUT : 0));
		/*
		 * A descriptor we want nothing from is left out: a closed
		 * peer would otherwise report POLLHUP forever and spin us.
		 */
		pfd[0].fd = cev ? c->client : -1;
		pfd[0].events = cev;
		pfd[1].fd = sev ? c->server : -1;
		pfd[1].events = sev;
		pfd[2].fd = stop_pipe[0];
		pfd[2].events = POLLIN;
		if (poll(pfd, 3, -1) == -1) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "pfproxy: %s: poll: %s\n", __func__,
			    strerror(errno));
			return;
		}
		if (pfd[2].revents != 0)
			return;
	}
}

/* Bookkeeping for a finished connection; the caller owns nothing after. */
static void
conn_done(void)
{
	pthread_mutex_lock(&live_lock);
	live_conns--;
	finished_conns++;
	if (opt.max_conns != 0 && finished_conns >= opt.max_conns)
		request_stop();
	pthread_cond_broadcast(&live_cond);
	pthread_mutex_unlock(&live_lock);
}

static void *
conn_thread(void *arg)
{
	struct conn *c = arg;

	c->server = socket(target_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC,
	    0);
	if (c->server == -1 ||
	    connect(c->server, (struct sockaddr *)&target_addr,
	    target_len) == -1 || set_socket_opts(c->server) == -1) {
		log_event("connect-failed conn=%" PRIu64 " error=%s", c->id,
		    strerror(errno));
		goto out;
	}
	c->up.dst = c->down.src = c->server;
	conn_relay(c);
out:
	log_event("close conn=%" PRIu64 " up=%" PRIu64 " down=%" PRIu64,
	    c->id, c->up.out, c->down.out);
	if (c->server != -1)
		close(c->server);
	close(c->client);
	free(c);
	conn_done();
	return NULL;
}

/* Takes ownership of fd; returns -1 if no thread could be started. */
static int
conn_spawn(int fd, uint64_t id)
{
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;
	struct conn *c;
	int err;

	c = calloc(1, sizeof(*c));
	if (c == NULL || set_socket_opts(fd) == -1) {
		fprintf(stderr, "pfproxy: %s: %s\n", __func__,
		    strerror(errno));
		free(c);
		close(fd);
		return -1;
	}
	c->id = id;
	c->client = fd;
	c->server = -1;
	c->corrupt = id <= opt.corrupt_conns &&
	    (opt.ncorrupt_at != 0 || opt.corrupt_every != 0);
	c->cut = opt.cut && id <= opt.cut_conns;
	c->record = id == 1 && record_fd != -1;
	c->up.src = c->down.dst = fd;
	c->up.buf = c->bufs[0];
	c->down.buf = c->bufs[1];

	pthread_mutex_lock(&live_lock);
	live_conns++;
	pthread_mutex_unlock(&live_lock);

	/*
	 * Signals go to main() only, so relay threads never see EINTR from
	 * connect() and SIGTERM handling stays in one place.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&tid, &attr, conn_thread, c);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0) {
		fprintf(stderr, "pfproxy: %s: pthread_create: %s\n", __func__,
		    strerror(err));
		close(fd);
		free(c);
		conn_done();
		return -1;
	}
	return 0;
}

static int
listen_local(uint16_t *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(*port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, PROXY_BACKLOG) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1)
		goto fail;
	*port = ntohs(sin.sin_port);
	return fd;
fail:
	fprintf(stderr, "pfproxy: %s: port %u: %s\n", __func__,
	    (unsigned)*port, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

static void
accept_loop(int lfd)
{
	struct pollfd pfd[2];
	uint64_t accepted = 0;
	bool backoff = false;
	int fd, n;

	for (;;) {
		/* While backing off, the listener is left out of the poll. */
		pfd[0].fd = lfd != -1 && !backoff ? lfd : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = stop_pipe[0];
		pfd[1].events = POLLIN;
		n = poll(pfd, 2, backoff ? PROXY_BACKOFF_MS : -1);
		if (n == -1 && errno != EINTR) {
			fprintf(stderr, "pfproxy: %s: poll: %s\n", __func__,
			    strerror(errno));
			break;
		}
		backoff = false;
		if (n > 0 && pfd[1].revents != 0)
			break;
		if (n <= 0 || pfd[0].fd == -1 || pfd[0].revents == 0)
			continue;

		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1) {
			/*
			 * Out of descriptors or memory: retrying at once would
			 * spin, since the pending connection stays readable.
			 */
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				backoff = true;
			else if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				fprintf(stderr, "pfproxy: %s: accept: %s\n",
				    __func__, strerror(errno));
			continue;
		}
		accepted++;
		log_event("accept %" PRIu64, accepted);
		(void)conn_spawn(fd, accepted);
		if (opt.max_conns != 0 && accepted == opt.max_conns) {
			/* Later clients get a refusal rather than a hang. */
			close(lfd);
			lfd = -1;
		}
	}
	if (lfd != -1)
		close(lfd);
}

static int
open_append(const char *path)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd == -1)
		fprintf(stderr, "pfproxy: %s: %s\n", path, strerror(errno));
	return fd;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	uint16_t port;
	char text[32];
	int lfd, rc = 1;

	if (parse_args(argc, argv) == -1) {
		usage(stderr);
		return 2;
	}
	if (resolve_target() == -1)
		return 1;
	if (opt.log_file != NULL && (log_fd = open_append(opt.log_file)) == -1)
		return 1;
	if (opt.record_file != NULL &&
	    (record_fd = open_append(opt.record_file)) == -1)
		goto out;
	if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		fprintf(stderr, "pfproxy: pipe2: %s\n", strerror(errno));
		goto out;
	}

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	port = opt.listen_port;
	if ((lfd = listen_local(&port)) == -1)
		goto out;
	/* The port file goes last: once it exists, we are accepting. */
	if (opt.pid_file != NULL) {
		snprintf(text, sizeof(text), "%ld\n", (long)getpid());
		if (write_file_atomic(opt.pid_file, text) == -1) {
			close(lfd);
			goto out;
		}
	}
	if (opt.port_file != NULL) {
		snprintf(text, sizeof(text), "%u\n", (unsigned)port);
		if (write_file_atomic(opt.port_file, text) == -1) {
			close(lfd);
			goto out;
		}
	}

	accept_loop(lfd);

	/* Relay threads saw the stop pipe too; wait for their close lines. */
	pthread_mutex_lock(&live_lock);
	while (live_conns > 0)
		pthread_cond_wait(&live_cond, &live_lock);
	pthread_mutex_unlock(&live_lock);
	rc = 0;
out:
	if (stop_pipe[0] != -1) {
		close(stop_pipe[0]);
		close(stop_pipe[1]);
	}
	if (record_fd != -1)
		close(record_fd);
	if (log_fd != -1)
		close(log_fd);
	return rc;
}
