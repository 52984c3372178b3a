/* SPDX-License-Identifier: MIT */
/*
 * One connection of the native protocol, from HELLO to close: reads each
 * frame and hands it to control.c (login, sessions) or data.c (JOIN,
 * chunks) by the connection's role; what a frame does to a session is
 * done by session.c (through the registry for what leaves the table).
 */
#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "auth.h"
#include "counters.h"
#include "engine.h"
#include "log.h"
#include "peruser.h"
#include "session.h"
#include "store.h"
#include "control.h"
#include "data.h"
#include "reply.h"
#include "stream.h"
#include "stream_int.h"
#include "tls.h"
#include "wire.h"

/*
 * How long a connection is drained after an ERROR frame: long enough for
 * the rest of a chunk in flight, not for a peer that sends nothing.
 */
#define LINGER_IDLE_MS	250
#define LINGER_MS	2000

static enum pf_status
send_hello(struct stream *st)
{
	enum pf_status rc;
	char *nonce;
	json_t *j;

	if ((rc = pf_random(st->nonce, sizeof(st->nonce))) != PF_OK)
		return rc;
	if ((nonce = pf_base64_encode(st->nonce, sizeof(st->nonce))) == NULL)
		return PF_ENOMEM;
	/* One mechanism: over TLS the bound one, so none can be downgraded. */
	/* features: what a client may ask for beyond one file per OPEN. */
	/* min_chunk_size: so a client can pick its chunk size before OPEN. */
	j = json_pack("{s:s,s:i,s:s,s:[s],s:[s,s,s],s:I}", "server",
	    "paraflowd/" PACKAGE_VERSION, "version", PROTO_VERSION, "nonce",
	    nonce, "mechanisms", pf_conn_is_tls(st->c) ? SCRAM_MECH_PLUS :
	    SCRAM_MECH, "features", "transfer", "amend", "pieces",
	    "min_chunk_size",
	    (json_int_t)store_min_chunk(st->env->store));
	free(nonce);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(st->c, PROTO_HELLO, j);
	json_decref(j);
	return rc;
}

enum pf_status
stream_on_json(struct stream *st, uint8_t type, json_t *req)
{
	switch (type) {
	case PROTO_AUTH:
		return control_on_auth(st, req);
	case PROTO_PROOF:
		return control_on_proof(st, req);
	case PROTO_OPEN:
		return control_on_open(st, req);
	case PROTO_JOIN:
		return data_on_join(st, req);
	case PROTO_COMMIT:
		return control_on_commit(st, req);
	case PROTO_ABORT:
		return control_on_abort(st);
	default:
		return reply_fail(st, PF_EPROTO, "%s is not a client frame",
		    proto_type_name(type));
	}
}

/* Reads one frame and acts on it. Anything but PF_OK ends the connection. */
static enum pf_status
serve_frame(struct stream *st)
{
	struct proto_header h;
	json_t *req = NULL;
	enum pf_status rc;
	uint32_t chunk_size = st->role == ROLE_DATA ?
	    session_chunk_size(st->session) : 0;

	/*
	 * Deadlines, so that no peer holds a slot by trickling bytes: before
	 * login the whole handshake has one (--login-timeout, set by the
	 * engine before TLS, which budget.c enforces too); after it, a frame
	 * header must come within the idle timeout (a control connection
	 * holding a session first waits as long as the transfer makes
	 * progress), and once a frame has started, all of it must arrive at
	 * --min-rate or better.
	 */
	if (st->role == ROLE_CONTROL && st->session != NULL &&
	    (rc = control_wait(st)) != PF_OK)
		return rc;
	if (st->role == ROLE_DATA && (rc = data_wait(st)) != PF_OK)
		return rc;
	if (st->role != ROLE_NEW)
		pf_conn_set_deadline(st->c, st->env->cfg->idle_timeout_ms);
	rc = wire_recv_header(st->c, &h);
	atomic_store(st->busy, true);
	if (rc == PF_EBADFRAME || rc == PF_EVERSION)
		return reply_fail(st, rc,
		    rc == PF_EVERSION ? "protocol version %d "
		    "is spoken here" : "damaged frame header", PROTO_VERSION);
	if (rc != PF_OK)
		return rc;
	/* Refuse what a client never sends before reading a byte of it. */
	if (!proto_from_client(h.type))
		return reply_fail(st, PF_EPROTO, "%s is not a client frame",
		    proto_type_name(h.type));
	if ((rc = proto_check_length(&h, st->role != ROLE_NEW,
	    chunk_size)) != PF_OK)
		return reply_fail(st, rc, "%s frame of %u bytes refused",
		    proto_type_name(h.type), h.length);
	if (st->role != ROLE_NEW)
		pf_conn_set_deadline(st->c, st->env->cfg->idle_timeout_ms +
		    (uint64_t)h.length * 1000 / st->env->cfg->min_rate);
	if (h.type == PROTO_CHUNK)
		return data_on_chunk(st, &h);
	if ((rc = wire_recv_json(st->c, &h, &req)) != PF_OK)
		return pf_status_is_wire(rc) ? reply_fail(st, rc,
		    "payload is not a "
		    "JSON object%s", rc == PF_ETOOLARGE ?
		    " (number too large)" : "") : rc;
	rc = stream_on_json(st, h.type, req);
	json_decref(req);
	return rc;
}

static void
stream_release(struct stream *st, bool answering)
{
	struct session *s = st->session;

	/* Chunks still being synced end first: they are the session's. */
	data_release(st, answering);

	/* A control connection that goes away leaves its session to resume. */
	if (s != NULL && st->role != ROLE_NEW)
		session_detach(s, st->role == ROLE_CONTROL);
	if (st->counted)
		peruser_release(st->env->peruser, st->user);
	session_unref(s);
	auth_server_free(st->auth);
	chunkhash_free(st->hash);
	free(st->buf);
	free(st->chunk);
	pf_wipe(st->key, sizeof(st->key));
}

static void
enable_keepalive(int fd)
{
	int on = 1, idle = 60, intvl = 10, cnt = 6;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

void
stream_serve(const struct stream_env *env, struct pf_conn *c, uint64_t id,
    _Atomic bool *busy, struct budget_ticket *ticket)
{
	struct stream st = { .env = env, .c = c, .id = id, .busy = busy,
	    .ticket = ticket, .role = ROLE_NEW };
	enum pf_status rc;

	atomic_fetch_add(&env->counters->authenticating, 1);
	enable_keepalive(c->fd);
	pf_conn_set_timeout(c, env->cfg->idle_timeout_ms);
	if ((rc = send_hello(&st)) == PF_OK)
		while ((rc = serve_frame(&st)) == PF_OK &&
		    !atomic_load(env->stopping))
			atomic_store(busy, false);
	/* Late logins are counted in budget.c's summary, not one by one. */
	/* A control connection's own idle close is logged by control_wait. */
	if (rc == PF_ETIMEOUT && st.role != ROLE_NEW && !(st.role ==
	    ROLE_CONTROL && st.session != NULL))
		log_info("%s: idle for %u ms, closing", c->peer,
		    env->cfg->idle_timeout_ms);
	else if (rc == PF_ETIMEOUT)
		log_debug("%s: no login in time, closing", c->peer);
	if (st.role == ROLE_NEW)
		atomic_fetch_sub(&env->counters->authenticating, 1);
	stream_release(&st, rc == PF_OK);
	/* After an ERROR, so that a client busy writing a chunk reads it. */
	if (st.errored && !atomic_load(env->stopping))
		(void)pf_conn_drain(c, LINGER_IDLE_MS, LINGER_MS);
}
