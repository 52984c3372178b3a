/* SPDX-License-Identifier: MIT */
/*
 * The listener: accepts connections and runs each on its own thread; the
 * reaper of idle sessions; start-up and shutdown.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine_int.h"
#include "gwupload.h"
#include "judge.h"
#include "keptlists.h"
#include "log.h"
#include "peruser.h"
#include "policy.h"
#include "registry.h"
#include "session.h"
#include "keyfile.h"
#include "storage.h"
#include "store.h"
#include "throttle.h"
#include "wire.h"

#define ACCEPT_POLL_MS	250

/*
 * The server speaks first in the plaintext protocol, so a plaintext
 * client sends nothing: after this long without a TLS ClientHello, the
 * connection is taken for one and told why it cannot go on. A TLS client
 * sends its hello right after connecting.
 */
#define SNIFF_MS	2000

void
engine_config_defaults(struct engine_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->bind = "127.0.0.1";
	cfg->port = PROTO_DEFAULT_PORT;
	cfg->storage_dir = "/var/lib/paraflow";
	cfg->max_connections = 256;
	cfg->max_user_connections = 64;
	cfg->max_sessions = 64;
	cfg->max_user_sessions = 8;
	cfg->max_user_share = 50;
	cfg->idle_timeout_ms = 60000;
	cfg->login_timeout_ms = 10000;
	cfg->max_ip_logins = 8;
	cfg->min_rate = 64 * 1024;
	cfg->stream_nice = 10;
	cfg->staging_ttl_s = 24 * 3600;
	cfg->stop_grace_ms = 10000;
	cfg->login_log_interval_s = 60;
}

/*
 * With --storage s3://...: the store, checked now, so a node that
 * cannot reach it or is refused its keys does not start.
 */
static enum pf_status
open_store(struct engine *e)
{
	char node[64] = "paraflowd";
	struct store_opts o = { e->cfg.s3_target, e->cfg.s3_endpoint,
	    e->cfg.s3_region, e->cfg.s3_credentials, node };
	enum pf_status rc;

	if (gethostname(node, sizeof(node) - 1) == -1)
		snprintf(node, sizeof(node), "paraflowd");
	if ((rc = store_open(&o, &e->store)) != PF_OK)
		return rc;
	/*
	 * Every node the same server key: else a user name could be told
	 * real or not by comparing two nodes' made-up salts, and a download
	 * link made by one node would fail on the next.
	 */
	if ((rc = store_cluster_key(e->store, e->secret)) != PF_OK)
		log_error("cannot read or make the server key in the bucket: "
		    "%s", pf_status_message(rc));
	return rc;
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
	    "password; create real users with --add-user", SCRAM_DEFAULT_USER);
	return auth_users_single(SCRAM_DEFAULT_USER, SCRAM_DEFAULT_PASSWORD,
	    &e->users);
}

/* The server's TLS context, if the native port speaks TLS. */
static enum pf_status
tls_load(struct engine *e)
{
	char err[256];

	if (e->cfg.tls_cert == NULL)
		return PF_OK;
	if (pf_tls_server_new(e->cfg.tls_cert, e->cfg.tls_key, &e->tls, err,
	    sizeof(err)) != PF_OK) {
		log_error("TLS certificate or key unusable: %s", err);
		return PF_EUSAGE;
	}
	return PF_OK;
}

/* The login deadline: a connection idle longer goes anyway. */
static unsigned
login_ms(const struct engine_config *cfg)
{
	return cfg->login_timeout_ms < cfg->idle_timeout_ms ?
	    cfg->login_timeout_ms : cfg->idle_timeout_ms;
}

/*
 * The budget of cfg's limits. Unless told otherwise, connections logging
 * in may take a quarter of the slots: the rest stay for users who have
 * logged in, whatever a flood of peers that never do holds.
 */
static struct budget *
budget_new_for(const struct engine_config *cfg)
{
	struct budget_limits lim = { .max_connections = cfg->max_connections,
	    .max_logins = cfg->max_login_connections,
	    .max_ip_logins = cfg->max_ip_logins,
	    .login_ms = login_ms(cfg) };

	if (lim.max_logins == 0)
		lim.max_logins = cfg->max_connections / 4;
	if (lim.max_logins == 0 || lim.max_logins > cfg->max_connections)
		lim.max_logins = cfg->max_connections;
	if (lim.max_ip_logins == 0)
		lim.max_ip_logins = lim.max_logins;
	return budget_new(&lim);
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
	/* Anyone can fail a handshake or a proof at will: not a line each. */
	pf_log_limit_init(&e->refusals, "refused handshakes and join proofs",
	    10, cfg->login_log_interval_s);
	e->start_time = time(NULL);
	pthread_mutex_init(&e->lock, NULL);
	pf_cond_init_monotonic(&e->drained);
	if ((rc = load_users(e)) != PF_OK || (rc = tls_load(e)) != PF_OK)
		goto out;
	rc = PF_EUSAGE;
	if ((e->policy = policy_new(cfg->forbidden_exts,
	    cfg->allowed_exts)) == NULL) {
		log_error("bad list of forbidden or allowed extensions, or "
		    "no libmagic or ICU data");
		goto out;
	}
	rc = PF_ENOMEM;
	if ((e->registry = registry_new(&(struct registry_limits){
	    cfg->max_sessions, cfg->max_user_sessions, cfg->max_user_reserved,
	    cfg->max_user_share }, &e->counters)) == NULL ||
	    (e->peruser = peruser_new(cfg->max_user_connections)) == NULL ||
	    (e->budget = budget_new_for(cfg)) == NULL ||
	    (e->throttle = throttle_new(cfg->login_log_interval_s)) == NULL ||
	    (e->uploads = gwup_new()) == NULL ||
	    (e->lists = kept_lists_new()) == NULL)
		goto out;
	/* Without its threads files are judged at COMMIT only, as before. */
	e->judges = judge_pool_new(e->policy);
	registry_use_judges(e->registry, e->judges);
	if ((rc = storage_open(cfg->storage_dir, cfg->no_sync ?
	    STORAGE_SYNC_NONE : STORAGE_SYNC_FULL, &e->storage)) != PF_OK ||
	    (rc = keyfile_load(storage_path(e->storage), e->secret)) !=
	    PF_OK ||
	    (rc = open_store(e)) != PF_OK ||
	    (rc = registry_load(e->registry, e->storage, e->policy,
	    cfg->staging_ttl_s)) != PF_OK ||
	    (rc = pf_tcp_listen(cfg->bind, cfg->port, &e->listenfd,
	    &e->port)) != PF_OK)
		goto out;
	e->env = (struct stream_env){ .cfg = &e->cfg, .users = e->users,
	    .secret = e->secret, .policy = e->policy, .storage = e->storage,
	    .store = e->store,
	    .registry = e->registry, .peruser = e->peruser,
	    .throttle = e->throttle, .budget = e->budget,
	    .refusals = &e->refusals,
	    .counters = &e->counters, .stopping = &e->stopping };
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

enum pf_status
engine_derive_key(const struct engine *e, const char *label,
    uint8_t out[32])
{
	return pf_hmac_sha256(e->secret, sizeof(e->secret), label,
	    strlen(label), out);
}

/*
 * Runs the TLS handshake on a new connection, within the login deadline
 * (budget.c cuts a handshake that outlasts it). A client that speaks
 * plaintext is told so in a plaintext ERROR frame, as it expects one.
 * False: close the connection.
 */
static bool
conn_secure(struct engine *e, struct pf_conn *c)
{
	unsigned ms = login_ms(&e->cfg);
	bool is_tls = false, resumed = false;
	char err[256];
	enum pf_status rc;

	pf_conn_set_timeout(c, ms);
	rc = pf_tls_sniff(c->fd, ms < SNIFF_MS ? ms : SNIFF_MS, &is_tls);
	if (rc == PF_ENET)
		return false;
	if (!is_tls) {
		pf_log_limited(&e->refusals, PF_LOG_INFO, "%s: a plaintext "
		    "client on the TLS port; refused", c->peer);
		wire_send_error(c, PF_EPROTO, "this server speaks TLS: drop "
		    "--no-tls");
		return false;
	}
	if (pf_tls_accept(e->tls, c, &resumed, err, sizeof(err)) != PF_OK) {
		/* Cut at the login deadline: budget.c's summary counts it. */
		if (pf_now_ms() >= c->deadline)
			log_debug("%s: %s", c->peer, err);
		else
			pf_log_limited(&e->refusals, PF_LOG_INFO, "%s: %s",
			    c->peer, err);
		return false;
	}
	atomic_fetch_add(resumed ? &e->counters.tls_resumed :
	    &e->counters.tls_full, 1);
	log_debug("%s: TLS 1.3, %s (%s)", c->peer, resumed ? "resumed" :
	    "full handshake", pf_conn_tls_engine(c));
	return true;
}

static void *
conn_main(void *arg)
{
	struct engine_conn *ec = arg;
	struct engine *e = ec->engine;
	struct engine_conn **pp;

	/* One deadline from TCP accept to login, TLS handshake included. */
	pf_conn_set_deadline(ec->conn, login_ms(&e->cfg));
	if (e->tls == NULL || conn_secure(e, ec->conn))
		stream_serve(&e->env, ec->conn, ec->id, &ec->busy,
		    ec->ticket);

	/* Unlink and close under the lock: engine_stop may shut it down. */
	pthread_mutex_lock(&e->lock);
	for (pp = &e->conns; *pp != ec; pp = &(*pp)->next)
		;
	*pp = ec->next;
	budget_release(e->budget, ec->ticket);
	pf_conn_free(ec->conn);
	/*
	 * Free this thread's crypto state after its last OpenSSL call (the
	 * close above) and before it counts as gone: the thread is
	 * detached, so once nconns drops engine_stop may let the process
	 * exit (and OpenSSL clean up) while the thread is still ending.
	 */
	pf_thread_cleanup();
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
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
	socklen_t sl = sizeof(ss);
	struct budget_ticket *ticket;
	struct engine_conn *ec;
	struct pf_conn *c;
	pthread_attr_t attr;
	int fd;

	fd = accept4(e->listenfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
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
	/* Refusals are counted there and logged in a summary. */
	if (!budget_admit(e->budget, e->nconns, c->fd, &ss, &ticket)) {
		pthread_mutex_unlock(&e->lock);
		refuse_busy(c);
		return;
	}
	if ((ec = calloc(1, sizeof(*ec))) == NULL) {
		budget_release(e->budget, ticket);
		pthread_mutex_unlock(&e->lock);
		pf_conn_free(c);
		return;
	}
	ec->engine = e;
	ec->conn = c;
	ec->ticket = ticket;
	ec->id = ++e->next_conn_id;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&ec->thread, &attr, conn_main, ec) != 0) {
		pthread_mutex_unlock(&e->lock);
		pthread_attr_destroy(&attr);
		log_warn("%s: cannot start a thread", c->peer);
		budget_release(e->budget, ticket);
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
		budget_tick(e->budget);
	}
	return NULL;
}

/*
 * How long a copy of a stored session stays in memory with no connection
 * here: it is only a cache (any node makes one again from the store).
 */
#define REMOTE_CACHE_S	30

/*
 * Collects sessions idle past --staging-ttl with nobody attached, and
 * copies of stored sessions idle here past REMOTE_CACHE_S.
 */
struct reap {
	struct session	**victims;
	unsigned	  n, cap;
	time_t		  before, before_remote;
};

/* True if s is to go: ended (local) or dropped from memory (stored). */
static bool
reapable(struct session *s, const struct reap *r)
{
	return session_idle_since(s, session_remote(s) ? r->before_remote :
	    r->before);
}

static void
reap_check(struct session *s, void *arg)
{
	struct reap *r = arg;

	if (r->n < r->cap && reapable(s, r)) {
		session_ref(s);
		r->victims[r->n++] = s;
	}
}

static void
reap(struct engine *e)
{
	struct reap r = { .cap = registry_count(e->registry) };

	if (r.cap == 0 ||
	    (r.victims = calloc(r.cap, sizeof(*r.victims))) == NULL)
		return;
	r.before = time(NULL) - (time_t)e->cfg.staging_ttl_s;
	r.before_remote = time(NULL) - (time_t)(e->cfg.staging_ttl_s <
	    REMOTE_CACHE_S ? e->cfg.staging_ttl_s : REMOTE_CACHE_S);
	registry_foreach(e->registry, reap_check, &r);
	for (unsigned i = 0; i < r.n; i++) {
		/*
		 * Someone may have come back since the table was scanned. A
		 * stored session is not ended here: other nodes may serve
		 * it, and s3store_expire judges its activity on all of them.
		 */
		if (session_remote(r.victims[i]) &&
		    reapable(r.victims[i], &r)) {
			log_debug("session %s idle here; dropping its copy",
			    session_id(r.victims[i]));
			registry_retire(e->registry, r.victims[i]);
		} else if (reapable(r.victims[i], &r)) {
			log_info("session %s idle for over %u s; removing it",
			    session_id(r.victims[i]), e->cfg.staging_ttl_s);
			registry_end(e->registry, r.victims[i],
			    SESSION_EXPIRED, PF_ENOSESSION);
		}
		session_unref(r.victims[i]);
	}
	free(r.victims);
}

static void *
reaper_main(void *arg)
{
	struct engine *e = arg;
	unsigned every = e->cfg.staging_ttl_s / 4;

	if (every > 60)
		every = 60;
	/* It also ends the failed-login summaries' intervals. */
	if (every > e->cfg.login_log_interval_s)
		every = e->cfg.login_log_interval_s;
	if (every == 0)
		every = 1;
	pthread_mutex_lock(&e->lock);
	while (!atomic_load(&e->stopping)) {
		pf_cond_wait_ms(&e->drained, &e->lock, every * 1000);
		if (atomic_load(&e->stopping))
			break;
		pthread_mutex_unlock(&e->lock);
		reap(e);
		/* Any node may expire the store's idle sessions. */
		store_expire(e->store, e->cfg.staging_ttl_s);
		throttle_report(e->throttle);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

enum pf_status
engine_start(struct engine *e)
{
	if (pthread_create(&e->acceptor, NULL, accept_main, e) != 0) {
		log_error("%s: cannot start the accept thread", __func__);
		return PF_EINTERNAL;
	}
	if (pthread_create(&e->reaper, NULL, reaper_main, e) != 0) {
		log_error("%s: cannot start the reaper thread", __func__);
		atomic_store(&e->stopping, true);
		pthread_join(e->acceptor, NULL);
		return PF_EINTERNAL;
	}
	e->started = true;
	log_info("listening on %s port %u, storage %s, %u sessions to resume",
	    e->cfg.bind, e->port, storage_path(e->storage),
	    registry_count(e->registry));
	return PF_OK;
}

/* Closes connections between frames; with all set, every connection. */
static void
shut_idle(struct engine *e, bool all)
{
	for (struct engine_conn *ec = e->conns; ec != NULL; ec = ec->next)
		if (all || !atomic_load(&ec->busy))
			shutdown(ec->conn->fd, SHUT_RDWR);
}

void
engine_stop(struct engine *e)
{
	uint64_t until;

	if (!e->started)
		return;
	atomic_store(&e->stopping, true);
	pthread_join(e->acceptor, NULL);
	pthread_mutex_lock(&e->lock);
	pthread_cond_broadcast(&e->drained);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->reaper, NULL);
	e->started = false;
	close(e->listenfd);
	e->listenfd = -1;
	/*
	 * Chunks in flight may finish (and be synced and ACKed) for a grace
	 * period; connections waiting between frames go at once.
	 */
	until = pf_now_ms() + e->cfg.stop_grace_ms;
	pthread_mutex_lock(&e->lock);
	while (e->nconns > 0 && pf_now_ms() < until) {
		shut_idle(e, false);
		pf_cond_wait_ms(&e->drained, &e->lock, 100);
	}
	shut_idle(e, true);
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
	/* Its pending uploads hold references to sessions of the table. */
	gwup_free(e->uploads);
	registry_free(e->registry);
	/* After the sessions: each stopped its judge. */
	judge_pool_free(e->judges);
	kept_lists_free(e->lists);
	peruser_free(e->peruser);
	budget_free(e->budget);
	throttle_free(e->throttle);
	pf_log_limit_destroy(&e->refusals);
	storage_close(e->storage);
	store_close(e->store);
	policy_free(e->policy);
	auth_users_free(e->users);
	pf_tls_free(e->tls);
	pf_wipe(e->secret, sizeof(e->secret));
	pthread_cond_destroy(&e->drained);
	pthread_mutex_destroy(&e->lock);
	free(e);
}
