/* SPDX-License-Identifier: MIT */
/*
 * The frames of a control connection: the login (AUTH, PROOF), then
 * OPEN (or resume), COMMIT and ABORT of its session.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amend.h"
#include "auth.h"
#include "buf.h"
#include "control.h"
#include "counters.h"
#include "engine.h"
#include "log.h"
#include "manifest.h"
#include "peruser.h"
#include "policy.h"
#include "registry.h"
#include "reply.h"
#include "session.h"
#include "storage.h"
#include "store.h"
#include "stream_int.h"
#include "throttle.h"
#include "tls.h"
#include "unpack.h"
#include "wire.h"

/* How often a wait for COMMIT looks whether the server is stopping. */
#define HELD_POLL_MS	1000

/*
 * Refuses the login of user from this connection's address while it must
 * wait (ERROR throttled); PF_OK if it may go on. With begin, right before
 * the outcome is known: the attempt is in flight until login_failed or
 * throttle_succeeded (throttle_begin).
 */
static enum pf_status
refuse_throttled(struct stream *st, const char *user, bool begin)
{
	unsigned wait = begin ? throttle_begin(st->env->throttle,
	    st->c->peer, user) : throttle_check(st->env->throttle,
	    st->c->peer, user);

	if (wait == 0)
		return PF_OK;
	log_debug("%s: login throttled for %u s", st->c->peer, wait);
	return reply_throttled(st, wait);
}

/* Counts a failed login; only the first of an interval has a line. */
static void
login_failed(struct stream *st, const char *user, const char *why)
{
	atomic_fetch_add(&st->env->counters->auth_failures, 1);
	if (throttle_failed(st->env->throttle, st->c->peer, user))
		log_warn("%s: login failed%s", st->c->peer, why);
}

enum pf_status
control_on_auth(struct stream *st, const json_t *req)
{
	const char *mech = wire_json_str(req, "mechanism", NULL);
	const char *msg = wire_json_str(req, "message", NULL);
	char *reply = NULL;
	enum pf_status rc;

	uint8_t ex[SCRAM_EXPORTER_LEN];
	bool tls;

	if (st->role != ROLE_NEW || st->auth != NULL)
		return reply_fail(st, PF_EPROTO, "AUTH not expected here");
	/* Over TLS the login is bound to this connection's exporter. */
	tls = pf_conn_tls_exporter(st->c, ex) == PF_OK;
	st->auth = auth_server_new(st->env->users, st->env->secret,
	    tls ? ex : NULL);
	pf_wipe(ex, sizeof(ex));
	if (st->auth == NULL)
		return reply_fail(st, PF_EINTERNAL, "out of memory");
	if (mech == NULL || strcmp(mech, auth_server_mechanism(st->auth)) !=
	    0 || msg == NULL)
		return reply_fail(st, PF_EBADFRAME,
		    "AUTH needs mechanism %s and a "
		    "message", auth_server_mechanism(st->auth));
	rc = auth_server_first(st->auth, msg, &reply);
	if (rc == PF_EAUTH) {
		/* A client talked out of binding: a failed login, no name. */
		if ((rc = refuse_throttled(st, "", true)) != PF_OK)
			return rc;
		login_failed(st, "", ": no channel binding over TLS");
		return reply_fail(st, PF_EAUTH,
		    "channel binding is required over TLS");
	}
	if (rc != PF_OK)
		return reply_fail(st, rc,
		    "malformed SCRAM client-first message");
	/* Before the client spends a PBKDF2 on a proof we would refuse. */
	if ((rc = refuse_throttled(st, auth_server_claimed_user(st->auth),
	    false)) == PF_OK)
		rc = reply_message(st, PROTO_CHALLENGE, reply);
	free(reply);
	return rc;
}

enum pf_status
control_on_proof(struct stream *st, const json_t *req)
{
	const char *msg = wire_json_str(req, "message", NULL);
	char user[PROTO_MAX_USER + 1] = "";
	char *reply = NULL;
	enum pf_status rc;

	if (st->role != ROLE_NEW || st->auth == NULL)
		return reply_fail(st, PF_EPROTO, "PROOF not expected here");
	if (msg == NULL)
		return reply_fail(st, PF_EBADFRAME, "PROOF needs a message");
	if (auth_server_claimed_user(st->auth) != NULL)
		snprintf(user, sizeof(user), "%s",
		    auth_server_claimed_user(st->auth));
	/* Connections in parallel got their challenges before the wait. */
	if ((rc = refuse_throttled(st, user, true)) != PF_OK)
		return rc;
	rc = auth_server_final(st->auth, msg, &reply);
	if (rc != PF_OK) {
		login_failed(st, user, "");
		return reply_fail(st, rc == PF_EBADFRAME ? rc : PF_EAUTH,
		    "authentication failed");
	}
	throttle_succeeded(st->env->throttle, st->c->peer, user);
	snprintf(st->user, sizeof(st->user), "%s", auth_server_user(st->auth));
	if (!peruser_acquire(st->env->peruser, st->user)) {
		free(reply);
		return reply_fail(st, PF_EBUSY,
		    "too many connections for user %s",
		    st->user);
	}
	st->counted = true;
	rc = auth_server_session_key(st->auth, st->key);
	if (rc == PF_OK)
		rc = reply_message(st, PROTO_AUTH_OK, reply);
	free(reply);
	auth_server_free(st->auth);
	st->auth = NULL;
	if (rc != PF_OK)
		return rc;
	stream_set_role(st, ROLE_CONTROL);
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
	bool			 amend;		/* a resume with a new
						   manifest (amend.h) */
	char			 resume_id[PROTO_ID_LEN + 1];	/* lowered */
};

/* Chunk size, size limits and head of an OPEN, into o. */
static enum pf_status
check_sizes(struct stream *st, uint64_t chunk_size, const char *head64,
    struct open_req *o)
{
	const struct stream_env *env = st->env;
	/* The check and its message take the same number. */
	uint32_t min = store_min_chunk(env->store);
	long headlen;

	if (!proto_chunk_size_valid(chunk_size))
		return reply_fail(st, PF_EBADFRAME,
		    "chunk size must be a power of "
		    "two from %u to %u", PROTO_MIN_CHUNK, PROTO_MAX_CHUNK);
	o->f.chunk_size = (uint32_t)chunk_size;
	if (chunk_size < min)
		return reply_fail(st, PF_EBADFRAME, "chunk size %llu under "
		    "the store's minimum of %u MiB (S3 parts): send "
		    "--chunk-size %uM or more", (unsigned long long)chunk_size,
		    min >> 20, min >> 20);
	if (env->cfg->max_file_size != 0 &&
	    o->f.size > env->cfg->max_file_size)
		return reply_fail(st, PF_ETOOLARGE, "an upload of %llu bytes "
		    "is over the limit of %llu (--max-file-size: a transfer "
		    "counts all its files)", (unsigned long long)o->f.size,
		    (unsigned long long)env->cfg->max_file_size);
	if (proto_chunk_count(o->f.size, o->f.chunk_size,
	    &o->nchunks) != PF_OK)
		return reply_fail(st, PF_ETOOLARGE, "more than %u chunks",
		    PROTO_MAX_CHUNKS);
	headlen = pf_base64_decode(head64, o->head, sizeof(o->head));
	if (headlen < 0 || (uint64_t)headlen != (o->f.size < PROTO_HEAD_LEN
	    ? o->f.size : PROTO_HEAD_LEN))
		return reply_fail(st, PF_EBADFRAME, "head must hold the first "
		    "min(size, %d) bytes", PROTO_HEAD_LEN);
	o->f.name = o->name;
	o->f.head = o->head;
	o->f.headlen = (size_t)headlen;
	return PF_OK;
}

/*
 * The rest of an OPEN of a transfer (many files): its manifest. Paths
 * and names are judged per file, so a refused file does not refuse the
 * transfer; the head (of the payload, the files back to back) is not
 * judged as content, each file's own first bytes are, at COMMIT.
 */
static enum pf_status
parse_transfer(struct stream *st, const json_t *files, uint64_t chunk_size,
    const char *head64, struct open_req *o)
{
	char why[256];
	enum pf_status rc;

	if (!store_takes_transfers(st->env->store))
		return reply_fail(st, PF_EPROTO, "folder transfers are not "
		    "served with S3 storage yet: send single files");
	if ((rc = manifest_parse(st->env->policy, files, o->f.size,
	    &o->f.manifest, why, sizeof(why))) != PF_OK)
		return reply_fail(st, rc == PF_ENOMEM ? PF_EINTERNAL : rc,
		    "%s", why);
	if (o->f.manifest->total != o->f.size)
		rc = reply_fail(st, PF_EBADFRAME, "size must be the sum of "
		    "the files' sizes");
	else
		rc = check_sizes(st, chunk_size, head64, o);
	if (rc != PF_OK) {
		manifest_free(o->f.manifest);
		o->f.manifest = NULL;
	}
	return rc;
}

static enum pf_status
parse_open(struct stream *st, const json_t *req, struct open_req *o)
{
	const struct stream_env *env = st->env;
	char why[POLICY_WHY_MAX];
	const char *head64;
	enum pf_status rc;
	uint64_t chunk_size;
	size_t resume_len = 0;
	const json_t *files;

	o->f.manifest = NULL;
	o->f.tus = false;
	o->f.client_name = wire_json_str(req, "name",
	    &o->f.client_name_len);
	head64 = wire_json_str(req, "head", NULL);
	o->resume = wire_json_str(req, "resume", &resume_len);
	/* An id is read in either case, and known in lower case. */
	if (o->resume != NULL && proto_id_valid(o->resume)) {
		memcpy(o->resume_id, o->resume, sizeof(o->resume_id));
		proto_id_lower(o->resume_id);
		o->resume = o->resume_id;
	}
	o->amend = json_is_true(json_object_get(req, "amend"));
	o->f.pieces = json_is_true(json_object_get(req, "pieces"));
	if (o->f.client_name == NULL || head64 == NULL ||
	    wire_json_u64(req, "size", &o->f.size) == -1 ||
	    wire_json_u64(req, "chunk_size", &chunk_size) == -1 ||
	    (json_object_get(req, "resume") != NULL &&
	    resume_len != PROTO_ID_LEN))
		return reply_fail(st, PF_EBADFRAME, "OPEN needs name, size, "
		    "chunk_size and head (and resume: a session id)");
	if (o->f.client_name_len > POLICY_MAX_CLIENT_NAME ||
	    policy_sanitize_name(o->f.client_name, o->f.client_name_len,
	    o->name) != PF_OK)
		return reply_fail(st, PF_EBADNAME,
		    "file name cannot be stored");
	if (o->amend && (o->resume == NULL || json_object_get(req,
	    "files") == NULL))
		return reply_fail(st, PF_EBADFRAME, "amend is for resuming a "
		    "transfer: it needs resume and files");
	if ((files = json_object_get(req, "files")) != NULL)
		return parse_transfer(st, files, chunk_size, head64, o);
	if ((rc = policy_check_names(env->policy, o->f.client_name,
	    o->f.client_name_len, o->name, why, sizeof(why))) != PF_OK)
		return rc == PF_EFORBIDDEN ? reply_fail(st, rc, "%s", why) :
		    reply_fail(st, rc == PF_ENOMEM ? PF_EINTERNAL :
		    PF_EBADNAME, "file name cannot be stored");
	if ((rc = check_sizes(st, chunk_size, head64, o)) != PF_OK)
		return rc;
	if (policy_check_head(env->policy, o->head, o->f.headlen, why,
	    sizeof(why)) != PF_OK)
		return reply_fail(st, PF_EFORBIDDEN, "%s", why);
	return PF_OK;
}

/*
 * The connection limits a client fits its streams to (--threads auto), so
 * that it does not run into busy: what one user and the whole server may
 * hold, what this user holds now (this connection included), and how
 * many connections of one address may be logging in at once.
 */
static json_t *
limits_json(const struct stream *st)
{
	const struct engine_config *cfg = st->env->cfg;
	unsigned ip = cfg->max_ip_logins;

	/* 0 means the overall login cap, as engine.c reads it. */
	if (ip == 0)
		ip = cfg->max_login_connections ? cfg->max_login_connections :
		    cfg->max_connections / 4;
	return json_pack("{s:I,s:I,s:I,s:I,s:I}", "user_connections",
	    (json_int_t)cfg->max_user_connections, "user_connections_used",
	    (json_int_t)peruser_count(st->env->peruser, st->user),
	    "connections", (json_int_t)cfg->max_connections, "ip_logins",
	    (json_int_t)(ip > 0 ? ip : 1), "min_chunk_size",
	    (json_int_t)store_min_chunk(st->env->store));
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
	j = json_pack("{s:s,s:I,s:I,s:s,s:b,s:s,s:o}", "session",
	    session_id(s), "chunks", (json_int_t)n, "chunk_size",
	    (json_int_t)session_chunk_size(s), "name", session_name(s),
	    "resumed", resumed, "have", have, "limits", limits_json(st));
	/* pieces: how this session's chunks are hashed, a resume's too. */
	if (j == NULL || (session_manifest(s) != NULL &&
	    (json_object_set_new(j, "files_refused", json_integer(
	    (json_int_t)manifest_refused(session_manifest(s)))) == -1 ||
	    json_object_set_new(j, "pieces", json_boolean(
	    session_pieces(s))) == -1)))
		goto out;
	rc = wire_send_json(st->c, PROTO_OPENED, j);
out:
	json_decref(j);
	free(have);
	free(bits);
	return rc;
}

/* True if finished session meta is the transfer o asks for, or both are
   single files. */
static bool
same_transfer(const json_t *meta, const struct open_req *o)
{
	const char *d = json_string_value(json_object_get(meta, "transfer"));

	if (o->f.manifest == NULL)
		return d == NULL;
	return d != NULL && strcmp(d, o->f.manifest->digest) == 0;
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
		return reply_fail(st, PF_ENOSESSION,
		    "no session %s", o->resume);
	}
	json_decref(meta);
	if ((rc = registry_ended_reason(st->env->registry, id,
	    st->user)) != PF_OK)
		return reply_fail(st, rc, "session %s ended: %s", id,
		    pf_status_message(rc));
	meta = storage_final_meta(st->env->storage, id);
	if (meta == NULL || json_unpack(meta, "{s:s,s:s,s:I,s:I,s:s}", "user",
	    &user, "name", &name, "size", &size, "chunk_size", &chunk_size,
	    "digest", &digest) == -1 || strcmp(user, st->user) != 0 ||
	    strcmp(name, o->name) != 0 || (uint64_t)size != o->f.size ||
	    (uint64_t)chunk_size != o->f.chunk_size ||
	    !same_transfer(meta, o)) {
		rc = reply_fail(st, PF_ENOSESSION,
		    "no session %s to resume for "
		    "this file", o->resume);
		goto out;
	}
	j = json_pack("{s:s,s:s,s:I,s:s,s:s++}", "session", id, "name", name,
	    "size", size, "digest", digest, "path", id, "/", name);
	/* pieces: the client checks the receipt, made of such digests. */
	if (j != NULL && o->f.manifest != NULL && (json_object_set_new(j,
	    "files", storage_final_list(st->env->storage, id,
	    UNPACK_FILES_NAME)) == -1 || json_object_set_new(j, "pieces",
	    json_boolean(json_is_true(json_object_get(meta, "pieces")))) ==
	    -1)) {
		json_decref(j);
		j = NULL;
	}
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

/* The free space above --min-free-space, which an OPEN of size leaves. */
static enum pf_status
check_space(struct stream *st, uint64_t size, uint64_t *room)
{
	uint64_t avail = storage_free_bytes(st->env->storage);
	uint64_t keep = st->env->cfg->min_free_space;

	*room = UINT64_MAX;
	/* A store's space is not this node's to count. */
	if (avail == UINT64_MAX || !store_counts_free_space(st->env->store))
		return PF_OK;
	if (avail < size || avail - size < keep)
		return reply_fail(st, PF_ENOSPC,
		    "%llu bytes would leave less than "
		    "the %llu bytes kept free", (unsigned long long)size,
		    (unsigned long long)keep);
	*room = avail - keep;
	return PF_OK;
}

/*
 * Makes s (the caller's reference) this connection's session and answers
 * OPENED; how ("resumed", "amended") is for the log.
 */
static enum pf_status
take_over(struct stream *st, struct session *s, const char *how)
{
	enum pf_status rc;

	session_take(s, st->id, st->key);
	/* On the store every node checks JOINs against the newest key. */
	if ((rc = session_publish_key(s)) != PF_OK) {
		session_unref(s);
		return reply_fail(st, PF_EBUSY, "the store cannot be written "
		    "now (%s); try again", pf_status_message(rc));
	}
	session_touch(s);
	session_note_progress(s);
	session_attach(s, true);
	st->session = s;
	if ((rc = send_opened(st, s, true)) != PF_OK)
		return rc;
	log_info("%s: session %s %s by %s with %u of %u chunks",
	    st->c->peer, session_id(s), how, session_user(s),
	    session_chunks_acked(s), session_nchunks(s));
	return PF_OK;
}

/*
 * A resume of live session s (the caller's reference, dropped) for
 * other bytes. The user's own native session, the file changed since
 * (its first bytes, with size and mtime kept): its client will never
 * send what it holds, so it ends now rather than wait out
 * --staging-ttl, counted against the user's sessions and space; a
 * resume that matched would have taken it over from any connection
 * all the same. The client opens a new session either way.
 */
static enum pf_status
refuse_resume(struct stream *st, const struct open_req *o,
    struct session *s)
{
	bool mine = !session_tus(s) && session_state(s) ==
	    SESSION_RECEIVING && strcmp(session_user(s), st->user) == 0;

	if (mine) {
		log_info("%s: session %s cancelled: resumed for other bytes",
		    st->c->peer, session_id(s));
		registry_end(st->env->registry, s, SESSION_CANCELLED,
		    PF_ECANCELLED);
	}
	session_unref(s);
	return reply_fail(st, PF_ENOSESSION, mine ? "session %s held other "
	    "bytes than this file's: cancelled" : "no session %s to resume "
	    "for this file", o->resume);
}

/*
 * OPEN with "resume" and "amend" of live session s (the caller's
 * reference, taken over): the same transfer (user, name, chunk size)
 * with a new manifest. The payload may grow within the limits of a new
 * OPEN, at most PROTO_MAX_AMENDS times.
 */
static enum pf_status
amend_session(struct stream *st, const struct open_req *o,
    struct session *s)
{
	const struct stream_env *env = st->env;
	struct amend_env e = { env->registry, env->storage, env->policy,
	    env->cfg->staging_ttl_s };
	uint64_t grow = o->f.size > session_size(s) ? o->f.size -
	    session_size(s) : 0, room;
	char why[256];
	enum pf_status rc;

	if (session_tus(s) || session_manifest(s) == NULL ||
	    session_state(s) != SESSION_RECEIVING ||
	    strcmp(session_user(s), st->user) != 0 ||
	    strcmp(session_name(s), o->name) != 0 ||
	    session_chunk_size(s) != o->f.chunk_size) {
		session_unref(s);
		return reply_fail(st, PF_ENOSESSION, "no transfer %s to amend "
		    "for this one", o->resume);
	}
	if (session_amends(s) >= PROTO_MAX_AMENDS) {
		session_unref(s);
		return reply_fail(st, PF_ENOSESSION, "transfer %s was amended "
		    "%u times already: send it anew", o->resume,
		    PROTO_MAX_AMENDS);
	}
	if ((rc = check_space(st, grow, &room)) != PF_OK ||
	    (rc = registry_admit_growth(env->registry, st->user, grow, room,
	    why, sizeof(why))) != PF_OK) {
		session_unref(s);
		return rc == PF_EQUOTA ? reply_fail(st, rc, "%s", why) : rc;
	}
	if ((rc = amend_transfer(&e, s, &o->f, &s, why, sizeof(why))) !=
	    PF_OK)
		return reply_fail(st, rc == PF_ENOMEM ? PF_EINTERNAL : rc,
		    "%s", why);
	return take_over(st, s, "amended");
}

/* True if stored record r is file o of user, as session_matches. */
static bool
record_matches(const struct s3store_record *r, const char *user,
    const struct open_req *o)
{
	return strcmp(r->user, user) == 0 && strcmp(r->name, o->name) == 0 &&
	    r->size == o->f.size && r->chunk_size == o->f.chunk_size &&
	    r->head_len == o->f.headlen &&
	    memcmp(r->head, o->f.head, r->head_len) == 0;
}

/*
 * A resumed session on the store that another node (or this one, its
 * COMPLETE lost) finished: COMPLETE again, with the receipt its commit
 * object holds, as resume_finished does from the storage directory.
 */
static enum pf_status
finished_stored(struct stream *st, const struct s3store_record *rec)
{
	uint8_t receipt[PF_SHA256_LEN];
	char hex[PF_SHA256_HEX];
	enum pf_status rc;
	json_t *j;

	if ((rc = store_receipt(st->env->store, rec, receipt,
	    NULL)) != PF_OK)
		return reply_fail(st, PF_EBUSY, "the store cannot be read "
		    "now (%s); try again", pf_status_message(rc));
	pf_hex_encode(receipt, sizeof(receipt), hex);
	j = json_pack("{s:s,s:s,s:I,s:s,s:s++}", "session", rec->id, "name",
	    rec->name, "size", (json_int_t)rec->size, "digest", hex, "path",
	    rec->id, "/", rec->name);
	if (j == NULL)
		return PF_ENOMEM;
	log_info("%s: session %s was complete already (in the store); "
	    "telling %s again", st->c->peer, rec->id, st->user);
	rc = wire_send_json(st->c, PROTO_COMPLETE, j);
	json_decref(j);
	return rc;
}

/*
 * OPEN with "resume" of a session this node does not hold (another node
 * took it, or this one restarted): its record comes from the store, and
 * the chunks held from ListParts. A finished one is answered COMPLETE.
 */
static enum pf_status
resume_stored(struct stream *st, const struct open_req *o)
{
	const struct stream_env *env = st->env;
	struct s3store_record rec;
	struct session_file f = o->f;
	struct registry_ask ask = { .id = o->resume, .user = st->user,
	    .size = o->f.size, .room = UINT64_MAX, .copy = true };
	struct session *s = NULL;
	char why[256];
	uint64_t size;
	enum pf_status rc, ended;

	if (!proto_id_valid(o->resume))
		return reply_fail(st, PF_ENOSESSION, "no session %s",
		    o->resume);
	rc = store_load(env->store, o->resume, &rec);
	/* The store did not answer: not a reason to start over. */
	if (rc != PF_OK && rc != PF_ENOSESSION)
		return reply_fail(st, PF_EBUSY, "the store cannot be read "
		    "now (%s); try again", pf_status_message(rc));
	if (rc == PF_OK && record_matches(&rec, st->user, o) &&
	    store_finished(env->store, &rec, &size) == PF_OK)
		return finished_stored(st, &rec);
	/* A cancel this node saw is final, as without a store. */
	if ((ended = registry_ended_reason(env->registry, o->resume,
	    st->user)) != PF_OK)
		return reply_fail(st, ended, "session %s ended: %s",
		    o->resume, pf_status_message(ended));
	if (rc != PF_OK || !record_matches(&rec, st->user, o))
		return reply_fail(st, PF_ENOSESSION, "no session %s to "
		    "resume for this file", o->resume);
	if ((rc = registry_open(env->registry, o->nchunks, &ask, &s, why,
	    sizeof(why))) != PF_OK)
		return reply_fail(st, rc == PF_ENOMEM ? PF_EINTERNAL : rc,
		    "%s", why);
	f.peer = st->c->peer;
	if ((rc = session_restore_remote(s, env->store, &rec, &f)) !=
	    PF_OK) {
		registry_retire(env->registry, s);
		session_unref(s);
		return reply_fail(st, rc == PF_ECANCELLED ? rc : PF_ENOSESSION,
		    "session %s cannot be resumed: %s", o->resume,
		    pf_status_message(rc));
	}
	return take_over(st, s, "resumed from the store");
}

/*
 * OPEN with "resume" of stored session s (the caller's reference) that
 * this node holds a copy of: other nodes may have taken chunks since, or
 * finished it, so the store says which chunks are held.
 */
static enum pf_status
resume_copy(struct stream *st, struct session *s)
{
	bool finished;
	enum pf_status rc;

	if ((rc = session_refresh(s, &finished)) != PF_OK) {
		session_unref(s);
		return reply_fail(st, PF_EBUSY, "the store cannot be read "
		    "now (%s); try again", pf_status_message(rc));
	}
	if (finished) {
		/* Committed elsewhere: the copy is of no more use here. */
		registry_retire(st->env->registry, s);
		rc = finished_stored(st, session_record(s));
		session_unref(s);
		return rc;
	}
	return take_over(st, s, "resumed");
}

/* OPEN with "resume": take over a session this user opened before. */
static enum pf_status
resume_session(struct stream *st, const struct open_req *o)
{
	struct session *s = NULL;

	if (registry_lookup(st->env->registry, o->resume, &s) != PF_OK)
		return store_shared(st->env->store) ? resume_stored(st, o) :
		    resume_finished(st, o);
	/*
	 * Its COMMIT is being carried out (the connection that sent it may be
	 * gone): "unknown" would have the client upload the file again. In a
	 * moment it is complete (then resume_finished says so) or receiving.
	 */
	/* A copy another connection is making from the store. */
	if (!session_ready(s)) {
		session_unref(s);
		return reply_fail(st, PF_EBUSY, "session %s is being "
		    "loaded; try again", o->resume);
	}
	if (session_state(s) == SESSION_ASSEMBLING &&
	    strcmp(session_user(s), st->user) == 0) {
		session_unref(s);
		return reply_fail(st, PF_EBUSY, "session %s is being "
		    "committed; try again", o->resume);
	}
	if (o->amend && !session_matches(s, st->user, &o->f))
		return amend_session(st, o, s);
	/* A tus upload is the gateway's, as a native one is not tus's. */
	if (session_tus(s) || !session_matches(s, st->user, &o->f)) {
		/* Its COMMIT began since the check above: as there. */
		if (!session_tus(s) && session_state(s) != SESSION_RECEIVING &&
		    strcmp(session_user(s), st->user) == 0) {
			session_unref(s);
			return reply_fail(st, PF_EBUSY, "session %s is being "
			    "committed; try again", o->resume);
		}
		return refuse_resume(st, o, s);
	}
	return session_remote(s) ? resume_copy(st, s) :
	    take_over(st, s, "resumed");
}

enum pf_status
control_on_open(struct stream *st, json_t *req)
{
	const struct stream_env *env = st->env;
	struct session *s = NULL;
	struct registry_ask ask = { .user = st->user };
	struct open_req o;
	char why[256];
	enum pf_status rc;

	if (st->role != ROLE_CONTROL || st->session != NULL)
		return reply_fail(st, PF_EPROTO, "OPEN not expected here");
	if ((rc = parse_open(st, req, &o)) != PF_OK)
		return rc;
	/*
	 * A transfer's list is in the manifest now: its tree (half a KB an
	 * entry) is freed before the session writes it out again.
	 */
	json_object_del(req, "files");
	/*
	 * While a session is open the control connection waits as long as
	 * the transfer makes progress (see control_wait), not a fixed time.
	 */
	pf_conn_set_timeout(st->c, 0);
	if (o.resume != NULL) {
		rc = resume_session(st, &o);
		manifest_free(o.f.manifest);
		return rc;
	}
	ask.size = o.f.size;
	if ((rc = check_space(st, o.f.size, &ask.room)) != PF_OK) {
		manifest_free(o.f.manifest);
		return rc;
	}
	if ((rc = registry_open(env->registry, o.nchunks, &ask, &s, why,
	    sizeof(why))) != PF_OK) {
		manifest_free(o.f.manifest);
		if (rc != PF_ENOMEM)
			log_info("%s: OPEN of %llu bytes refused: %s",
			    st->c->peer, (unsigned long long)o.f.size, why);
		return reply_fail(st, rc == PF_ENOMEM ? PF_EINTERNAL : rc,
		    "%s", why);
	}
	session_take(s, st->id, st->key);
	o.f.peer = st->c->peer;
	session_use_store(s, env->store);
	/* session_open takes the manifest over, whatever it returns. */
	if ((rc = session_open(s, env->storage, &o.f)) != PF_OK) {
		rc = rc == PF_EINTERNAL ? reply_fail(st, rc, "out of memory") :
		    reply_fail(st, rc, "cannot stage %llu bytes",
		    (unsigned long long)o.f.size);
		goto out;
	}
	registry_judge(env->registry, s);
	/* Where every node checks this session's JOINs (store only). */
	if ((rc = session_publish_key(s)) != PF_OK) {
		rc = reply_fail(st, PF_EBUSY, "the store cannot be written "
		    "now (%s); try again", pf_status_message(rc));
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
 * True if stored session s made progress on other nodes: the store
 * holds chunks this node's copy did not know of (its data connections
 * may all be elsewhere), or the session finished. A chunk still on its
 * way to another node does not show.
 */
static bool
progress_elsewhere(struct session *s)
{
	uint32_t before = session_chunks_acked(s);
	bool finished;

	if (!session_remote(s) || session_refresh(s, &finished) != PF_OK ||
	    (!finished && session_chunks_acked(s) == before))
		return false;
	session_note_progress(s);
	return true;
}

enum pf_status
control_wait(struct stream *st)
{
	struct pollfd pfd = { .fd = st->c->fd, .events = POLLIN };
	uint64_t limit = st->env->cfg->idle_timeout_ms, idle;
	struct session *s = st->session;
	int r;

	for (;;) {
		bool held;

		/* What TLS decrypted already never shows on the socket. */
		if (st->c->ops->pending != NULL && st->c->ops->pending(st->c))
			return PF_OK;
		/*
		 * With every chunk held, the client is hashing the chunks it
		 * sent before (for the receipt), as long as reading the file
		 * takes: no chunk comes, and COMMIT will.
		 */
		held = session_chunks_acked(s) == session_nchunks(s);
		if (!held && (idle = session_idle_ms(s)) >= limit &&
		    !progress_elsewhere(s))
			break;
		if (!held && idle >= limit)
			continue;
		/* Then look again: data connections may have made progress. */
		r = poll(&pfd, 1, held ? HELD_POLL_MS : (int)(limit - idle));
		if (r == 1 || (r == -1 && errno != EINTR))
			return PF_OK;	/* the read says what came */
		if (atomic_load(st->env->stopping))
			return PF_ENET;
	}
	/* From now on the session waits, resumable, for --staging-ttl. */
	session_touch(s);
	log_info("%s: session %s made no progress for %llu s; closing its "
	    "control connection (it stays resumable for %u s)", st->c->peer,
	    session_id(s), (unsigned long long)idle / 1000,
	    st->env->cfg->staging_ttl_s);
	return PF_ETIMEOUT;
}

/*
 * s's COMPLETE into b, its transfer's list as form has it: false (b
 * failed) without memory or past PROTO_MAX_COMPLETE.
 */
static bool
complete_text(struct session *s, enum manifest_form form, struct pf_buf *b)
{
	const struct manifest *m = session_manifest(s);
	json_t *j;
	char *head;

	j = json_pack("{s:s,s:s,s:I,s:s,s:s++}", "session", session_id(s),
	    "name", session_name(s), "size", (json_int_t)session_size(s),
	    "digest", session_receipt(s), "path", session_id(s), "/",
	    session_name(s));
	head = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	pf_buf_free(b);
	pf_buf_init(b, PROTO_MAX_COMPLETE);
	if (head == NULL)
		return false;
	/* Its members, then a transfer's: where each file went, or why
	   it did not. */
	pf_buf_add(b, head, strlen(head) - 1);
	free(head);
	if (m != NULL) {
		PF_BUF_ADD_KEY(b, "files");
		manifest_dump(m, form, b);
	}
	return PF_BUF_ADD_LIT(b, "}");
}

/* Tells the client its file is stored, and lets the session go. */
static enum pf_status
send_complete(struct stream *st, enum manifest_form form)
{
	struct session *s = st->session;
	enum pf_status rc = PF_OK;
	struct pf_buf b;

	log_info("%s: session %s complete: \"%s\", %llu bytes, receipt %s; "
	    "%llu bytes received, %u chunks NACKed, %u already held",
	    st->c->peer, session_id(s), session_name(s),
	    (unsigned long long)session_size(s), session_receipt(s),
	    (unsigned long long)session_bytes_received(s),
	    session_chunks_nacked(s), session_chunks_duplicate(s));
	pf_buf_init(&b, PROTO_MAX_COMPLETE);
	/* Too long whole (long reasons, say): what the client lacks fits. */
	if (!complete_text(s, form, &b) && b.over && form != MANIFEST_SHORT) {
		log_warn("%s: session %s: its list is too long to send whole; "
		    "sent short", st->c->peer, session_id(s));
		complete_text(s, MANIFEST_SHORT, &b);
	}
	if (b.failed)
		rc = b.over ? PF_ETOOLARGE : PF_ENOMEM;
	registry_retire(st->env->registry, s);
	session_detach(s, true);
	session_unref(s);
	st->session = NULL;
	/* Without a session, an idle control connection times out again. */
	pf_conn_set_timeout(st->c, st->env->cfg->idle_timeout_ms);
	if (rc == PF_OK)
		rc = wire_send(st->c, PROTO_COMPLETE, b.p, b.len);
	else
		reply_fail(st, rc, "stored, but the answer cannot be made: %s",
		    pf_status_message(rc));
	pf_buf_free(&b);
	return rc;
}

enum pf_status
control_on_commit(struct stream *st, const json_t *req)
{
	struct session *s = st->session;
	uint8_t want[PF_SHA256_LEN];
	const char *hex = wire_json_str(req, "digest", NULL);
	const char *files = wire_json_str(req, "files", NULL);
	enum pf_status rc;

	if (st->role != ROLE_CONTROL || s == NULL)
		return reply_fail(st, PF_EPROTO, "COMMIT not expected here");
	if (!session_owned_by(s, st->id))
		return reply_fail(st, PF_ECANCELLED,
		    "session was resumed by another "
		    "connection");
	if (hex == NULL || pf_hex_decode(hex, want, sizeof(want)) == -1)
		return reply_fail(st, PF_EBADFRAME,
		    "COMMIT needs a hex digest");
	if (session_state(s) != SESSION_RECEIVING)
		return reply_fail(st, session_error(s) ? session_error(s) :
		    PF_ECANCELLED, "session is no longer receiving");
	/* On the store other nodes took chunks too: the store checks. */
	if (!session_remote(s) && session_chunks_acked(s) !=
	    session_nchunks(s))
		return reply_fail(st, PF_EPROTO, "%u of %u chunks received",
		    session_chunks_acked(s), session_nchunks(s));
	switch ((rc = session_commit(s, want, st->env->policy))) {
	case PF_OK:
		/* "files":"short" asks for less; anything else, all. */
		return send_complete(st, files != NULL &&
		    strcmp(files, "short") == 0 ? MANIFEST_SHORT :
		    MANIFEST_FINAL);
	case PF_ECANCELLED:
		return reply_fail(st, rc, "session is no longer receiving");
	case PF_ECHECKSUM:
		registry_retire(st->env->registry, s);
		return reply_fail(st, rc, "receipt does not match the chunks "
		    "received");
	case PF_EINTERNAL:
		return reply_fail(st, rc, "out of memory");
	case PF_EPROTO:
		return reply_fail(st, rc, "a chunk is missing in the store");
	default:
		return reply_fail(st, rc, "cannot store the file");
	}
}

enum pf_status
control_on_abort(struct stream *st)
{
	if (st->role != ROLE_CONTROL || st->session == NULL)
		return reply_fail(st, PF_EPROTO, "ABORT not expected here");
	if (!session_owned_by(st->session, st->id))
		return reply_fail(st, PF_ECANCELLED,
		    "session was resumed by another "
		    "connection");
	log_info("%s: session %s aborted by client", st->c->peer,
	    session_id(st->session));
	registry_end(st->env->registry, st->session, SESSION_CANCELLED,
	    PF_ECANCELLED);
	return PF_ECANCELLED;
}
