/* SPDX-License-Identifier: MIT */
/* The listener: accepts connections and runs each on its own thread. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_int.h"
#include "log.h"
#include "wire.h"

#define ACCEPT_POLL_MS	250

void
engine_config_defaults(struct engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->bind = "127.0.0.1";
	cfg->port = PROTO_DEFAULT_PORT;
	cfg->storage_dir = "/var/lib/paraflow";
	cfg->max_connections = 256;
	cfg->max_sessions = 64;
	cfg->idle_timeout_ms = 60000;
}

static enum pf_status
load_users(struct engine *e)
{
	const struct engine_config *cfg = &e->cfg;

	if (cfg->users_file != NULL)
		return auth_users_load(cfg->users_file, &e->users);
	if (!pf_addr_is_loopback(cfg->bind) && !cfg->insecure_default_user) {
		log_error("no --users file: the default password is only "
		    "served on loopback; create users with --add-user, or "
		    "pass --insecure-default-user");
		return PF_EUSAGE;
	}
	log_warn("no --users file: accepting user \"%s\" with the default "
	    "password; create real users with --add-user", AUTH_DEFAULT_USER);
	return auth_users_single(AUTH_DEFAULT_USER, AUTH_DEFAULT_PASSWORD,
	    &e->users);
}

enum pf_status
engine_new(const struct engine_config *cfg, struct engine **out)
{
	struct engine *e;
	enum pf_status rc = PF_ENOMEM;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return PF_ENOMEM;
	e->cfg = *cfg;
	e->listenfd = -1;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->drained, NULL);
	if ((rc = load_users(e)) != PF_OK)
		goto out;
	rc = PF_EUSAGE;
	if ((e->policy = policy_new(cfg->forbidden_exts)) == NULL) {
		log_error("bad list of forbidden extensions");
		goto out;
	}
	rc = PF_ENOMEM;
	if ((e->sessions = session_table_new(cfg->max_sessions)) == NULL)
		goto out;
	if ((rc = pf_random(e->secret, sizeof(e->secret))) != PF_OK ||
	    (rc = storage_open(cfg->storage_dir, &e->storage)) != PF_OK ||
	    (rc = pf_tcp_listen(cfg->bind, cfg->port, &e->listenfd,
	    &e->port)) != PF_OK)
		goto out;
	*out = e;
	e = NULL;
out:
	engine_free(e);
	return rc;
}

unsigned
engine_port(const struct engine *e)
{
	return e->port;
}

static void *
conn_main(void *arg)
{
	struct engine_conn *ec = arg;
	struct engine *e = ec->engine;
	struct engine_conn **pp;

	stream_serve(e, ec->conn);

	/* Unlink and close under the lock: engine_stop may shut it down. */
	pthread_mutex_lock(&e->lock);
	for (pp = &e->conns; *pp != ec; pp = &(*pp)->next)
		;
	*pp = ec->next;
	pf_conn_free(ec->conn);
	if (--e->nconns == 0)
		pthread_cond_broadcast(&e->drained);
	pthread_mutex_unlock(&e->lock);
	free(ec);
	return NULL;
}

/* Refuses a connection over the limit with a busy error, quickly. */
static void
refuse_busy(struct pf_conn *c)
{
	pf_conn_set_timeout(c, 1000);
	wire_send_error(c, PF_EBUSY, "too many connections");
	pf_conn_free(c);
}

static void
accept_one(struct engine *e)
{
	struct engine_conn *ec;
	struct pf_conn *c;
	pthread_attr_t attr;
	int fd;

	fd = accept4(e->listenfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd == -1) {
		/* Out of descriptors: back off instead of spinning. */
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			log_warn("%s: %s; pausing", __func__, strerror(errno));
			usleep(100 * 1000);
		}
		return;
	}
	if ((c = pf_conn_new_tcp(fd)) == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	if (e->nconns >= e->cfg.max_connections) {
		pthread_mutex_unlock(&e->lock);
		log_warn("%s: connection limit %u reached", c->peer,
		    e->cfg.max_connections);
		refuse_busy(c);
		return;
	}
	if ((ec = calloc(1, sizeof(*ec))) == NULL) {
		pthread_mutex_unlock(&e->lock);
		pf_conn_free(c);
		return;
	}
	ec->engine = e;
	ec->conn = c;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&ec->thread, &attr, conn_main, ec) != 0) {
		pthread_mutex_unlock(&e->lock);
		pthread_attr_destroy(&attr);
		log_warn("%s: cannot start a thread", c->peer);
		refuse_busy(c);
		free(ec);
		return;
	}
	pthread_attr_destroy(&attr);
	ec->next = e->conns;
	e->conns = ec;
	e->nconns++;
	pthread_mutex_unlock(&e->lock);
}

static void *
accept_main(void *arg)
{
	struct engine *e = arg;
	struct pollfd pfd = { .fd = e->listenfd, .events = POLLIN };

	while (!atomic_load(&e->stopping)) {
		if (poll(&pfd, 1, ACCEPT_POLL_MS) == 1)
			accept_one(e);
	}
	return NULL;
}

enum pf_status
engine_start(struct engine *e)
{
	if (pthread_create(&e->acceptor, NULL, accept_main, e) != 0) {
		log_error("%s: cannot start the accept thread", __func__);
		return PF_EINTERNAL;
	}
	e->started = true;
	log_info("listening on %s port %u, storage %s", e->cfg.bind, e->port,
	    storage_path(e->storage));
	return PF_OK;
}

void
engine_stop(struct engine *e)
{
	if (!e->started)
		return;
	atomic_store(&e->stopping, true);
	pthread_join(e->acceptor, NULL);
	e->started = false;
	close(e->listenfd);
	e->listenfd = -1;
	pthread_mutex_lock(&e->lock);
	for (struct engine_conn *ec = e->conns; ec != NULL; ec = ec->next)
		shutdown(ec->conn->fd, SHUT_RDWR);
	while (e->nconns > 0)
		pthread_cond_wait(&e->drained, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	if (e->listenfd != -1)
		close(e->listenfd);
	session_table_free(e->sessions);
	storage_close(e->storage);
	policy_free(e->policy);
	auth_users_free(e->users);
	pf_wipe(e->secret, sizeof(e->secret));
	pthread_cond_destroy(&e->drained);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
