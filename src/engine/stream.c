/* SPDX-License-Identifier: MIT */
/*
 * One connection of the native protocol, from HELLO to close: login and
 * session control on a control connection, chunks on a data connection.
 * It reads frames and answers them; what a frame does to a session is
 * done by session.c (through the registry for what leaves the table).
 */
#include "config.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "auth.h"
#include "clock.h"
#include "counters.h"
#include "engine.h"
#include "log.h"
#include "peruser.h"
#include "policy.h"
#include "registry.h"
#include "session.h"
#include "storage.h"
#include "stream.h"
#include "tls.h"
#include "wire.h"

/* Chunk data moves through this much memory per data connection. */
#define STREAM_BUF	(256u * 1024)

/* How long a connection is drained after an ERROR frame (see linger). */
#define LINGER_MS	2000

enum role {
	ROLE_NEW,	/* greeted, not logged in or joined */
	ROLE_CONTROL,	/* logged in */
	ROLE_DATA	/* joined a session */
};

struct stream {
	const struct stream_env	*env;
	struct pf_conn		*c;
	uint64_t		 id;		/* the connection's */
	_Atomic bool		*busy;		/* in the middle of a frame */
	enum role		 role;
	bool			 counted;	/* in the user's connections */
	uint8_t			 nonce[SCRAM_NONCE_LEN];
	struct auth_server	*auth;
	char			 user[PROTO_MAX_USER + 1];
	uint8_t			 key[PF_SHA256_LEN];
	struct session		*session;	/* held reference */
	uint8_t			*buf;
	struct pf_sha256	*hash;
	bool			 errored;	/* an ERROR frame was sent */
};

/* Leaves ROLE_NEW: the connection no longer counts as logging in. */
static void
set_role(struct stream *st, enum role role)
{
	if (st->role == ROLE_NEW)
		atomic_fetch_sub(&st->env->counters->authenticating, 1);
	st->role = role;
}

/*
 * Sends an ERROR frame and returns code, so a handler can end with
 * "return fail(st, PF_EXXX, ...)". The connection is then closed.
 */
static enum pf_status
fail(struct stream *st, enum pf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum pf_status
fail(struct stream *st, enum pf_status code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_debug("%s: %s: %s", st->c->peer, pf_status_name(code), msg);
	if (wire_send_error(st->c, code, "%s", msg) == PF_OK)
		st->errored = true;
	return code;
}

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
	j = json_pack("{s:s,s:i,s:s,s:[s]}", "server", "paraflowd/"
	    PACKAGE_VERSION, "version", PROTO_VERSION, "nonce", nonce,
	    "mechanisms", pf_conn_is_tls(st->c) ? SCRAM_MECH_PLUS : SCRAM_MECH);
	free(nonce);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(st->c, PROTO_HELLO, j);
	json_decref(j);
	return rc;
}

/* Sends {"message": msg} as a frame of type. */
static enum pf_status
send_message(struct stream *st, int type, const char *msg)
{
	json_t *j = json_pack("{s:s}", "message", msg);
	enum pf_status rc;

	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(st->c, type, j);
	json_decref(j);
	return rc;
}

static enum pf_status
on_auth(struct stream *st, const json_t *req)
{
	const char *mech = wire_json_str(req, "mechanism", NULL);
	const char *msg = wire_json_str(req, "message", NULL);
	char *reply = NULL;
	enum pf_status rc;

	uint8_t ex[SCRAM_EXPORTER_LEN];
	bool tls;

	if (st->role != ROLE_NEW || st->auth != NULL)
		return fail(st, PF_EPROTO, "AUTH not expected here");
	/* Over TLS the login is bound to this connection's exporter. */
	tls = pf_conn_tls_exporter(st->c, ex) == PF_OK;
	st->auth = auth_server_new(st->env->users, st->env->secret,
	    tls ? ex : NULL);
	pf_wipe(ex, sizeof(ex));
	if (st->auth == NULL)
		return fail(st, PF_EINTERNAL, "out of memory");
	if (mech == NULL || strcmp(mech, auth_server_mechanism(st->auth)) !=
	    0 || msg == NULL)
		return fail(st, PF_EBADFRAME, "AUTH needs mechanism %s and a "
		    "message", auth_server_mechanism(st->auth));
	rc = auth_server_first(st->auth, msg, &reply);
	if (rc == PF_EAUTH) {
		/* A client talked out of binding: a failed login. */
		atomic_fetch_add(&st->env->counters->auth_failures, 1);
		log_warn("%s: login failed: no channel binding over TLS",
		    st->c->peer);
		return fail(st, rc, "channel binding is required over TLS");
	}
	if (rc != PF_OK)
		return fail(st, rc, "malformed SCRAM client-first message");
	rc = send_message(st, PROTO_CHALLENGE, reply);
	free(reply);
	return rc;
}

static enum pf_status
on_proof(struct stream *st, const json_t *req)
{
	const char *msg = wire_json_str(req, "message", NULL);
	char *reply = NULL;
	enum pf_status rc;

	if (st->role != ROLE_NEW || st->auth == NULL)
		return fail(st, PF_EPROTO, "PROOF not expected here");
	if (msg == NULL)
		return fail(st, PF_EBADFRAME, "PROOF needs a message");
	rc = auth_server_final(st->auth, msg, &reply);
	if (rc != PF_OK) {
		atomic_fetch_add(&st->env->counters->auth_failures, 1);
		log_warn("%s: login failed", st->c->peer);
		return fail(st, rc == PF_EBADFRAME ? rc : PF_EAUTH,
		    "authentication failed");
	}
	snprintf(st->user, sizeof(st->user), "%s", auth_server_user(st->auth));
	if (!peruser_acquire(st->env->peruser, st->user)) {
		free(reply);
		return fail(st, PF_EBUSY, "too many connections for user %s",
		    st->user);
	}
	st->counted = true;
	rc = auth_server_session_key(st->auth, st->key);
	if (rc == PF_OK)
		rc = send_message(st, PROTO_AUTH_OK, reply);
	free(reply);
	auth_server_free(st->auth);
	st->auth = NULL;
	if (rc != PF_OK)
		return rc;
	set_role(st, ROLE_CONTROL);
	log_info("%s: user %s logged in", st->c->peer, st->user);
	return PF_OK;
}

/* What an OPEN asks for, checked against policy and limits. */
struct open_req {
	struct session_file	 f;	/* user and peer set by on_open */
	char			 name[PROTO_MAX_NAME + 1];
	uint8_t			 head[PROTO_HEAD_LEN];
	uint32_t		 nchunks;
	const char		*resume;	/* session id, or NULL */
};

static enum pf_status
parse_open(struct stream *st, const json_t *req, struct open_req *o)
{
	const struct stream_env *env = st->env;
	const char *head64;
	uint64_t chunk_size;
	size_t resume_len = 0;
	long headlen;

	o->f.client_name = wire_json_str(req, "name",
	    &o->f.client_name_len);
	head64 = wire_json_str(req, "head", NULL);
	o->resume = wire_json_str(req, "resume", &resume_len);
	if (o->f.client_name == NULL || head64 == NULL ||
	    wire_json_u64(req, "size", &o->f.size) == -1 ||
	    wire_json_u64(req, "chunk_size", &chunk_size) == -1 ||
	    (json_object_get(req, "resume") != NULL &&
	    resume_len != PROTO_ID_LEN))
		return fail(st, PF_EBADFRAME, "OPEN needs name, size, "
		    "chunk_size and head (and resume: a session id)");
	if (o->f.client_name_len > POLICY_MAX_CLIENT_NAME ||
	    policy_sanitize_name(o->f.client_name, o->f.client_name_len,
	    o->name) != PF_OK)
		return fail(st, PF_EBADNAME, "file name cannot be stored");
	if (policy_check_name(env->policy, o->name) != PF_OK)
		return fail(st, PF_EFORBIDDEN, "executable file type refused "
		    "by name");
	if (!proto_chunk_size_valid(chunk_size))
		return fail(st, PF_EBADFRAME, "chunk size must be a power of "
		    "two from %u to %u", PROTO_MIN_CHUNK, PROTO_MAX_CHUNK);
	o->f.chunk_size = (uint32_t)chunk_size;
	if (env->cfg->max_file_size != 0 &&
	    o->f.size > env->cfg->max_file_size)
		return fail(st, PF_ETOOLARGE, "file of %llu bytes is over the "
		    "limit of %llu", (unsigned long long)o->f.size,
		    (unsigned long long)env->cfg->max_file_size);
	if (proto_chunk_count(o->f.size, o->f.chunk_size,
	    &o->nchunks) != PF_OK)
		return fail(st, PF_ETOOLARGE, "more than %u chunks",
		    PROTO_MAX_CHUNKS);
	headlen = pf_base64_decode(head64, o->head, sizeof(o->head));
	if (headlen < 0 || (uint64_t)headlen != (o->f.size < PROTO_HEAD_LEN
	    ? o->f.size : PROTO_HEAD_LEN))
		return fail(st, PF_EBADFRAME, "head must hold the first "
		    "min(size, %d) bytes", PROTO_HEAD_LEN);
	o->f.name = o->name;
	o->f.head = o->head;
	o->f.headlen = (size_t)headlen;
	if (policy_check_content(o->head, o->f.headlen) != PF_OK)
		return fail(st, PF_EFORBIDDEN, "executable content refused");
	return PF_OK;
}

/* Sends OPENED with the bitmap of the chunks s holds. */
static enum pf_status
send_opened(struct stream *st, struct session *s, bool resumed)
{
	uint32_t n = session_nchunks(s);
	uint8_t *bits;
	char *have = NULL;
	json_t *j = NULL;
	enum pf_status rc = PF_ENOMEM;

	if ((bits = session_held_bitmap(s)) == NULL)
		return PF_ENOMEM;
	if ((have = pf_base64_encode(bits, (n + 7) / 8)) == NULL)
		goto out;
	j = json_pack("{s:s,s:I,s:I,s:s,s:b,s:s}", "session", session_id(s),
	    "chunks", (json_int_t)n, "chunk_size",
	    (json_int_t)session_chunk_size(s), "name", session_name(s),
	    "resumed", resumed, "have", have);
	if (j == NULL)
		goto out;
	rc = wire_send_json(st->c, PROTO_OPENED, j);
out:
	json_decref(j);
	free(have);
	free(bits);
	return rc;
}

/*
 * OPEN with "resume" for a session no longer in the table: if it finished
 * (the COMPLETE was lost with a connection), say so again, so the client
 * does not upload the file a second time.
 */
static enum pf_status
resume_finished(struct stream *st, const struct open_req *o)
{
	const char *user, *name, *digest;
	json_int_t size, chunk_size;
	char id[PROTO_ID_LEN + 1];
	enum pf_status rc = PF_ENOSESSION;
	json_t *meta, *j = NULL;

	/* A path component from a client: only a well-formed id. */
	meta = json_pack("{s:s}", "session", o->resume);
	if (meta == NULL || session_id_from_json(meta, id) != PF_OK) {
		json_decref(meta);
		return fail(st, PF_ENOSESSION, "no session %s", o->resume);
	}
	json_decref(meta);
	if ((rc = registry_ended_reason(st->env->registry, id,
	    st->user)) != PF_OK)
		return fail(st, rc, "session %s ended: %s", id,
		    pf_status_message(rc));
	meta = storage_final_meta(st->env->storage, id);
	if (meta == NULL || json_unpack(meta, "{s:s,s:s,s:I,s:I,s:s}", "user",
	    &user, "name", &name, "size", &size, "chunk_size", &chunk_size,
	    "digest", &digest) == -1 || strcmp(user, st->user) != 0 ||
	    strcmp(name, o->name) != 0 || (uint64_t)size != o->f.size ||
	    (uint64_t)chunk_size != o->f.chunk_size) {
		rc = fail(st, PF_ENOSESSION, "no session %s to resume for "
		    "this file", o->resume);
		goto out;
	}
	j = json_pack("{s:s,s:s,s:I,s:s,s:s++}", "session", id, "name", name,
	    "size", size, "digest", digest, "path", id, "/", name);
	if (j == NULL) {
		rc = PF_ENOMEM;
		goto out;
	}
	log_info("%s: session %s was complete already; telling %s again",
	    st->c->peer, id, st->user);
	rc = wire_send_json(st->c, PROTO_COMPLETE, j);
out:
	json_decref(j);
	json_decref(meta);
	return rc;
}

/* OPEN with "resume": take over a session this user opened before. */
static enum pf_status
resume_session(struct stream *st, const struct open_req *o)
{
	struct session *s = NULL;
	enum pf_status rc;

	if (registry_lookup(st->env->registry, o->resume, &s) != PF_OK)
		return resume_finished(st, o);
	if (!session_matches(s, st->user, &o->f)) {
		session_unref(s);
		return fail(st, PF_ENOSESSION, "no session %s to resume for "
		    "this file", o->resume);
	}
	session_take(s, st->id, st->key);
	session_touch(s);
	session_attach(s, true);
	st->session = s;
	if ((rc = send_opened(st, s, true)) != PF_OK)
		return rc;
	log_info("%s: session %s resumed by %s with %u of %u chunks",
	    st->c->peer, session_id(s), session_user(s),
	    session_chunks_acked(s), session_nchunks(s));
	return PF_OK;
}

static enum pf_status
on_open(struct stream *st, const json_t *req)
{
	const struct stream_env *env = st->env;
	struct session *s = NULL;
	struct open_req o;
	uint64_t avail;
	enum pf_status rc;

	if (st->role != ROLE_CONTROL || st->session != NULL)
		return fail(st, PF_EPROTO, "OPEN not expected here");
	if ((rc = parse_open(st, req, &o)) != PF_OK)
		return rc;
	/*
	 * While a session is open the control connection legitimately idles
	 * for as long as the transfer takes; TCP keepalive finds dead peers.
	 */
	pf_conn_set_timeout(st->c, 0);
	if (o.resume != NULL)
		return resume_session(st, &o);
	avail = storage_free_bytes(env->storage);
	if (avail != UINT64_MAX && (avail < o.f.size ||
	    avail - o.f.size < env->cfg->min_free_space))
		return fail(st, PF_ENOSPC, "%llu bytes would leave less than "
		    "the %llu bytes kept free", (unsigned long long)o.f.size,
		    (unsigned long long)env->cfg->min_free_space);
	if ((rc = registry_create(env->registry, o.nchunks, NULL, &s)) !=
	    PF_OK)
		return fail(st, rc, rc == PF_EBUSY ? "too many sessions" :
		    "out of memory");
	session_take(s, st->id, st->key);
	o.f.user = st->user;
	o.f.peer = st->c->peer;
	if ((rc = session_open(s, env->storage, &o.f)) != PF_OK) {
		rc = rc == PF_EINTERNAL ? fail(st, rc, "out of memory") :
		    fail(st, rc, "cannot stage %llu bytes",
		    (unsigned long long)o.f.size);
		goto out;
	}
	if ((rc = send_opened(st, s, false)) != PF_OK)
		goto out;
	log_info("%s: session %s opened by %s: \"%s\", %llu bytes, %u chunks",
	    st->c->peer, session_id(s), session_user(s), session_name(s),
	    (unsigned long long)o.f.size, o.nchunks);
	session_attach(s, true);
	st->session = s;
	s = NULL;
out:
	if (s != NULL) {
		registry_end(env->registry, s, SESSION_FAILED, rc);
		session_unref(s);
	}
	return rc;
}

/*
 * Refuses a JOIN of session id (idlen bytes): as cancelled if it was
 * cancelled on purpose, or the client would start over; else unknown.
 */
static enum pf_status
refuse_join(struct stream *st, const char *id, size_t idlen)
{
	char sid[PROTO_ID_LEN + 1];
	enum pf_status rc;

	snprintf(sid, sizeof(sid), "%.*s", (int)idlen, id);
	if ((rc = registry_ended_reason(st->env->registry, sid, NULL)) !=
	    PF_OK)
		return fail(st, rc, "session ended: %s",
		    pf_status_message(rc));
	return fail(st, PF_ENOSESSION, "no such session");
}

static enum pf_status
on_join(struct stream *st, const json_t *req)
{
	struct session *s = NULL;
	uint8_t proof[PF_SHA256_LEN], want[PF_SHA256_LEN], key[PF_SHA256_LEN];
	uint8_t ex[SCRAM_EXPORTER_LEN];
	const char *id, *proof64;
	bool tls;
	size_t idlen;
	enum pf_status rc;
	json_t *j;

	if (st->role != ROLE_NEW || st->auth != NULL)
		return fail(st, PF_EPROTO, "JOIN not expected here");
	id = wire_json_str(req, "session", &idlen);
	proof64 = wire_json_str(req, "proof", NULL);
	if (id == NULL || idlen != PROTO_ID_LEN || proof64 == NULL ||
	    pf_base64_decode(proof64, proof, sizeof(proof)) != sizeof(proof))
		return fail(st, PF_EBADFRAME, "JOIN needs a session id and "
		    "a 32-byte proof");
	/* Owner 0: recovered after a restart, no login holds it yet. */
	if (registry_lookup(st->env->registry, id, &s) != PF_OK ||
	    session_state(s) != SESSION_RECEIVING || session_owned_by(s, 0)) {
		session_unref(s);
		return refuse_join(st, id, idlen);
	}
	session_get_key(s, key);
	/* Bound to this data connection's own TLS channel, if any. */
	tls = pf_conn_tls_exporter(st->c, ex) == PF_OK;
	rc = scram_join_proof(key, session_id(s), st->nonce, sizeof(st->nonce),
	    tls ? ex : NULL, want);
	pf_wipe(key, sizeof(key));
	pf_wipe(ex, sizeof(ex));
	if (rc != PF_OK || !pf_equal_ct(proof, want, sizeof(want))) {
		session_unref(s);
		atomic_fetch_add(&st->env->counters->auth_failures, 1);
		log_warn("%s: join proof refused", st->c->peer);
		return fail(st, PF_EAUTH, "join proof refused");
	}
	if (!peruser_acquire(st->env->peruser, session_user(s))) {
		rc = fail(st, PF_EBUSY, "too many connections for user %s",
		    session_user(s));
		session_unref(s);
		return rc;
	}
	snprintf(st->user, sizeof(st->user), "%s", session_user(s));
	st->counted = true;
	session_touch(s);
	st->buf = malloc(STREAM_BUF);
	st->hash = pf_sha256_new();
	if (st->buf == NULL || st->hash == NULL) {
		session_unref(s);
		return fail(st, PF_EINTERNAL, "out of memory");
	}
	st->session = s;
	set_role(st, ROLE_DATA);
	session_attach(s, false);
	if ((j = json_pack("{s:s}", "session", session_id(s))) == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(st->c, PROTO_JOINED, j);
	json_decref(j);
	return rc;
}

/* Reads and drops n bytes of a chunk that is not to be stored. */
static enum pf_status
drain(struct stream *st, uint64_t n)
{
	enum pf_status rc;

	while (n > 0) {
		size_t k = n < STREAM_BUF ? (size_t)n : STREAM_BUF;

		if ((rc = pf_conn_read_full(st->c, st->buf, k)) != PF_OK)
			return rc;
		session_count_bytes(st->session, k);
		n -= k;
	}
	return PF_OK;
}

/* Refuses work on a session that failed, or was cancelled or expired. */
static enum pf_status
refuse_ended(struct stream *st)
{
	enum pf_status why = session_error(st->session);

	if (why == PF_OK)
		why = PF_ECANCELLED;
	return fail(st, why, "session ended: %s", pf_status_message(why));
}

/*
 * Streams the data of claimed chunk ch from the connection into the
 * staging file, hashing as it goes, then reads the digest the client
 * sent into want and the one computed into got. *head_differs tells
 * whether chunk 0 did not start with the declared head (then nothing
 * more of it was stored).
 */
static enum pf_status
receive_chunk(struct stream *st, const struct proto_chunk_head *ch,
    uint8_t got[PF_SHA256_LEN], uint8_t want[PF_SHA256_LEN],
    bool *head_differs)
{
	struct session *s = st->session;
	uint64_t pos = 0;
	enum pf_status rc;

	*head_differs = false;
	if ((rc = proto_chunk_digest_begin(st->hash, ch)) != PF_OK)
		return rc;
	while (pos < ch->length) {
		size_t k = ch->length - pos < STREAM_BUF ?
		    (size_t)(ch->length - pos) : STREAM_BUF;

		if ((rc = pf_conn_read_full(st->c, st->buf, k)) != PF_OK)
			return rc;
		session_count_bytes(s, k);
		atomic_fetch_add(&st->env->counters->bytes_received, k);
		/*
		 * The declared head must be what really arrives. Damage in
		 * transit looks the same, so the verdict waits for the digest;
		 * meanwhile nothing more of this chunk is stored.
		 */
		if (ch->index == 0 && pos == 0 &&
		    session_head_differs(s, st->buf))
			*head_differs = true;
		if ((rc = pf_sha256_update(st->hash, st->buf, k)) != PF_OK)
			return rc;
		if (!*head_differs)
			rc = session_write_chunk(s, ch->offset + pos, st->buf,
			    k);
		if (rc != PF_OK)
			return fail(st, rc, "cannot store chunk %llu",
			    (unsigned long long)ch->index);
		pos += k;
	}
	if ((rc = pf_conn_read_full(st->c, want, PF_SHA256_LEN)) != PF_OK)
		return rc;
	return pf_sha256_final(st->hash, got);
}

/*
 * One CHUNK frame: claims the chunk, receives it and answers ACK or
 * NACK. Only the connection that claimed a chunk writes it, so an
 * acknowledged chunk is never overwritten.
 */
static enum pf_status
on_chunk(struct stream *st, const struct proto_header *h)
{
	struct session *s = st->session;
	const struct stream_env *env = st->env;
	struct proto_chunk_head ch;
	uint8_t got[PF_SHA256_LEN], want[PF_SHA256_LEN];
	uint64_t started = pf_now_us();
	enum session_claim claim;
	bool head_differs, resent;
	enum pf_status rc;

	rc = wire_recv_chunk_head(st->c, h, session_size(s),
	    session_chunk_size(s), &ch);
	if (rc == PF_EBADFRAME)
		return fail(st, PF_EBADFRAME, "chunk head out of range");
	if (rc != PF_OK)
		return rc;
	if (session_state(s) != SESSION_RECEIVING)
		return refuse_ended(st);
	claim = session_claim_chunk(s, (uint32_t)ch.index, &resent);
	if (resent)
		atomic_fetch_add(&env->counters->chunks_resent, 1);
	if (claim != SESSION_CLAIMED) {
		/* Done already (ACK again) or being received elsewhere. */
		if ((rc = drain(st, (uint64_t)ch.length +
		    PROTO_CHUNK_TRAILER_LEN)) != PF_OK)
			return rc;
		return wire_send_ack(st->c, claim == SESSION_HELD ? PROTO_ACK :
		    PROTO_NACK, ch.index);
	}
	if ((rc = receive_chunk(st, &ch, got, want, &head_differs)) != PF_OK)
		goto release;
	if (!pf_equal_ct(got, want, sizeof(got))) {
		session_release_chunk(s, (uint32_t)ch.index, true);
		atomic_fetch_add(&env->counters->chunks_nacked, 1);
		log_info("%s: session %s chunk %llu failed its check",
		    st->c->peer, session_id(s), (unsigned long long)ch.index);
		return wire_send_ack(st->c, PROTO_NACK, ch.index);
	}
	if (head_differs) {
		registry_end(env->registry, s, SESSION_FAILED, PF_EFORBIDDEN);
		rc = fail(st, PF_EFORBIDDEN, "chunk 0 does not start with the "
		    "declared head");
		goto release;
	}
	/* The ACK is a promise: data, then journal, on stable storage. */
	if ((rc = session_done_chunk(s, (uint32_t)ch.index, got)) != PF_OK) {
		/* After a failed sync nothing staged can be trusted. */
		if (session_broken(s))
			registry_end(env->registry, s, SESSION_FAILED, rc);
		rc = fail(st, rc, "cannot make chunk %llu durable",
		    (unsigned long long)ch.index);
		goto release;
	}
	atomic_fetch_add(&env->counters->chunks_acked, 1);
	rc = wire_send_ack(st->c, PROTO_ACK, ch.index);
	counters_observe_chunk(env->counters, pf_now_us() - started);
	return rc;
release:
	session_release_chunk(s, (uint32_t)ch.index, false);
	return rc;
}

/* Tells the client its file is stored, and lets the session go. */
static enum pf_status
send_complete(struct stream *st)
{
	struct session *s = st->session;
	enum pf_status rc;
	json_t *j;

	log_info("%s: session %s complete: \"%s\", %llu bytes, receipt %s; "
	    "%llu bytes received, %u chunks NACKed, %u already held",
	    st->c->peer, session_id(s), session_name(s),
	    (unsigned long long)session_size(s), session_receipt(s),
	    (unsigned long long)session_bytes_received(s),
	    session_chunks_nacked(s), session_chunks_duplicate(s));
	j = json_pack("{s:s,s:s,s:I,s:s,s:s++}", "session", session_id(s),
	    "name", session_name(s), "size", (json_int_t)session_size(s),
	    "digest", session_receipt(s), "path", session_id(s), "/",
	    session_name(s));
	registry_retire(st->env->registry, s);
	session_detach(s, true);
	session_unref(s);
	st->session = NULL;
	/* Without a session, an idle control connection times out again. */
	pf_conn_set_timeout(st->c, st->env->cfg->idle_timeout_ms);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(st->c, PROTO_COMPLETE, j);
	json_decref(j);
	return rc;
}

static enum pf_status
on_commit(struct stream *st, const json_t *req)
{
	struct session *s = st->session;
	uint8_t want[PF_SHA256_LEN];
	const char *hex = wire_json_str(req, "digest", NULL);
	enum pf_status rc;

	if (st->role != ROLE_CONTROL || s == NULL)
		return fail(st, PF_EPROTO, "COMMIT not expected here");
	if (!session_owned_by(s, st->id))
		return fail(st, PF_ECANCELLED, "session was resumed by another "
		    "connection");
	if (hex == NULL || pf_hex_decode(hex, want, sizeof(want)) == -1)
		return fail(st, PF_EBADFRAME, "COMMIT needs a hex digest");
	if (session_state(s) != SESSION_RECEIVING)
		return fail(st, session_error(s) ? session_error(s) :
		    PF_ECANCELLED, "session is no longer receiving");
	if (session_chunks_acked(s) != session_nchunks(s))
		return fail(st, PF_EPROTO, "%u of %u chunks received",
		    session_chunks_acked(s), session_nchunks(s));
	switch ((rc = session_commit(s, want))) {
	case PF_OK:
		return send_complete(st);
	case PF_ECANCELLED:
		return fail(st, rc, "session is no longer receiving");
	case PF_ECHECKSUM:
		registry_retire(st->env->registry, s);
		return fail(st, rc, "receipt does not match the chunks "
		    "received");
	case PF_EINTERNAL:
		return fail(st, rc, "out of memory");
	default:
		return fail(st, rc, "cannot store the file");
	}
}

static enum pf_status
on_abort(struct stream *st)
{
	if (st->role != ROLE_CONTROL || st->session == NULL)
		return fail(st, PF_EPROTO, "ABORT not expected here");
	if (!session_owned_by(st->session, st->id))
		return fail(st, PF_ECANCELLED, "session was resumed by another "
		    "connection");
	log_info("%s: session %s aborted by client", st->c->peer,
	    session_id(st->session));
	registry_end(st->env->registry, st->session, SESSION_CANCELLED,
	    PF_ECANCELLED);
	return PF_ECANCELLED;
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
	 * login the whole handshake has one (set in stream_serve); after it,
	 * a frame header must come within the idle timeout (except on a
	 * control connection waiting out its transfer), and once a frame has
	 * started, all of it must arrive at --min-rate or better.
	 */
	if (st->role != ROLE_NEW)
		pf_conn_set_deadline(st->c, st->role == ROLE_CONTROL &&
		    st->session != NULL ? 0 : st->env->cfg->idle_timeout_ms);
	rc = wire_recv_header(st->c, &h);
	atomic_store(st->busy, true);
	if (rc == PF_EBADFRAME || rc == PF_EVERSION)
		return fail(st, rc, rc == PF_EVERSION ? "protocol version %d "
		    "is spoken here" : "damaged frame header", PROTO_VERSION);
	if (rc != PF_OK)
		return rc;
	/* Refuse what a client never sends before reading a byte of it. */
	if (!proto_from_client(h.type))
		return fail(st, PF_EPROTO, "%s is not a client frame",
		    proto_type_name(h.type));
	if ((rc = proto_check_length(&h, st->role != ROLE_NEW,
	    chunk_size)) != PF_OK)
		return fail(st, rc, "%s frame of %u bytes refused",
		    proto_type_name(h.type), h.length);
	if (st->role != ROLE_NEW)
		pf_conn_set_deadline(st->c, st->env->cfg->idle_timeout_ms +
		    (uint64_t)h.length * 1000 / st->env->cfg->min_rate);
	if (h.type == PROTO_CHUNK)
		return on_chunk(st, &h);
	if ((rc = wire_recv_json(st->c, &h, &req)) != PF_OK)
		return pf_status_is_wire(rc) ? fail(st, rc, "payload is not a "
		    "JSON object%s", rc == PF_ETOOLARGE ?
		    " (number too large)" : "") : rc;
	switch (h.type) {
	case PROTO_AUTH:
		rc = on_auth(st, req);
		break;
	case PROTO_PROOF:
		rc = on_proof(st, req);
		break;
	case PROTO_OPEN:
		rc = on_open(st, req);
		break;
	case PROTO_JOIN:
		rc = on_join(st, req);
		break;
	case PROTO_COMMIT:
		rc = on_commit(st, req);
		break;
	case PROTO_ABORT:
		rc = on_abort(st);
		break;
	default:
		rc = fail(st, PF_EPROTO, "%s is not a client frame",
		    proto_type_name(h.type));
		break;
	}
	json_decref(req);
	return rc;
}

static void
stream_release(struct stream *st)
{
	struct session *s = st->session;

	/* A control connection that goes away leaves its session to resume. */
	if (s != NULL && st->role != ROLE_NEW)
		session_detach(s, st->role == ROLE_CONTROL);
	if (st->counted)
		peruser_release(st->env->peruser, st->user);
	session_unref(s);
	auth_server_free(st->auth);
	pf_sha256_free(st->hash);
	free(st->buf);
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

/*
 * After an ERROR frame, stop writing and read what the peer still sends
 * for a moment before closing. Closing at once with unread input makes
 * the kernel send a reset, which can destroy the ERROR frame before a
 * client busy writing a chunk gets to read it.
 */
static void
linger(struct stream *st)
{
	struct timespec start, now;
	char sink[16384];

	shutdown(st->c->fd, SHUT_WR);
	pf_conn_set_timeout(st->c, 250);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		ssize_t n = st->c->ops->read(st->c, sink, sizeof(sink));

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (n <= 0 || (now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 > LINGER_MS)
			break;
	}
}

void
stream_serve(const struct stream_env *env, struct pf_conn *c, uint64_t id,
    _Atomic bool *busy)
{
	struct stream st = { .env = env, .c = c, .id = id, .busy = busy,
	    .role = ROLE_NEW };
	enum pf_status rc;

	atomic_fetch_add(&env->counters->authenticating, 1);
	enable_keepalive(c->fd);
	pf_conn_set_timeout(c, env->cfg->idle_timeout_ms);
	pf_conn_set_deadline(c, env->cfg->idle_timeout_ms);
	if ((rc = send_hello(&st)) == PF_OK)
		while ((rc = serve_frame(&st)) == PF_OK &&
		    !atomic_load(env->stopping))
			atomic_store(busy, false);
	if (rc == PF_ETIMEOUT)
		log_info("%s: idle for %u ms, closing", c->peer,
		    env->cfg->idle_timeout_ms);
	if (st.role == ROLE_NEW)
		atomic_fetch_sub(&env->counters->authenticating, 1);
	stream_release(&st);
	if (st.errored && !atomic_load(env->stopping))
		linger(&st);
}
