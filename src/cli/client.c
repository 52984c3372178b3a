/* SPDX-License-Identifier: MIT */
/* One function per protocol exchange, client side. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "chunkio.h"
#include "client.h"
#include "login.h"
#include "tls.h"
#include "wire.h"

/* True if HELLO j lists mech in its array key ("mechanisms"...). */
static bool
lists(const json_t *j, const char *key, const char *mech)
{
	const json_t *a = json_object_get(j, key), *m;
	size_t i;

	json_array_foreach(a, i, m)
		if (json_is_string(m) && strcmp(json_string_value(m), mech) ==
		    0)
			return true;
	return false;
}

enum pf_status
client_hello(struct pf_conn *c, uint8_t nonce[SCRAM_NONCE_LEN], char *err,
    size_t errcap)
{
	return client_hello_offer(c, nonce, NULL, err, errcap);
}

enum pf_status
client_hello_offer(struct pf_conn *c, uint8_t nonce[SCRAM_NONCE_LEN],
    struct client_offer *offer, char *err, size_t errcap)
{
	const char *n64;
	uint64_t version, min;
	json_t *j = NULL;
	enum pf_status rc;

	if ((rc = wire_expect_json(c, PROTO_HELLO, &j, err, errcap)) != PF_OK)
		return rc;
	rc = PF_EVERSION;
	if (wire_json_u64(j, "version", &version) == -1 ||
	    version != PROTO_VERSION)
		goto out;
	rc = PF_EBADFRAME;
	n64 = wire_json_str(j, "nonce", NULL);
	if (n64 == NULL || pf_base64_decode(n64, nonce, SCRAM_NONCE_LEN) !=
	    SCRAM_NONCE_LEN)
		goto out;
	/*
	 * Over TLS the login must be bound to the channel: a server that
	 * does not offer it is refused rather than logged in to unbound.
	 */
	rc = PF_EAUTH;
	if (pf_conn_is_tls(c) && !lists(j, "mechanisms", SCRAM_MECH_PLUS)) {
		snprintf(err, errcap, "the server does not offer %s over TLS "
		    "(a downgrade?)", SCRAM_MECH_PLUS);
		goto out;
	}
	if (offer != NULL) {
		offer->features = (lists(j, "features", "transfer") ?
		    CLIENT_FEATURE_TRANSFER : 0) | (lists(j, "features",
		    "amend") ? CLIENT_FEATURE_AMEND : 0) | (lists(j,
		    "features", "pieces") ? CLIENT_FEATURE_PIECES : 0);
		/* One we could not send is no help: as if unsaid. */
		offer->min_chunk = wire_json_u64(j, "min_chunk_size",
		    &min) == 0 && proto_chunk_size_valid(min) ?
		    (uint32_t)min : 0;
	}
	rc = PF_OK;
out:
	json_decref(j);
	return rc;
}

/* Sends {"message": msg} (plus mechanism on AUTH) and reads the reply. */
static enum pf_status
scram_step(struct pf_conn *c, const char *mech, int type, const char *msg,
    int want, char **reply, char *err, size_t errcap)
{
	json_t *j;
	const char *m;
	enum pf_status rc;

	j = type == PROTO_AUTH ?
	    json_pack("{s:s,s:s}", "mechanism", mech, "message", msg) :
	    json_pack("{s:s}", "message", msg);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, type, j);
	json_decref(j);
	if (rc != PF_OK)
		return rc;
	if ((rc = wire_expect_json(c, want, &j, err, errcap)) != PF_OK)
		return rc;
	m = wire_json_str(j, "message", NULL);
	*reply = m ? strdup(m) : NULL;
	json_decref(j);
	return *reply != NULL ? PF_OK : PF_EBADFRAME;
}

enum pf_status
client_login(struct pf_conn *c, const char *user, const char *secret,
    uint8_t key[PF_SHA256_LEN], char *err, size_t errcap)
{
	struct login *ac;
	uint8_t ex[SCRAM_EXPORTER_LEN];
	char *msg = NULL, *reply = NULL;
	enum pf_status rc = PF_ENOMEM;
	bool tls;

	/* Over TLS always the bound mechanism: client_hello checked it. */
	tls = pf_conn_tls_exporter(c, ex) == PF_OK;
	ac = login_new(user, secret, tls ? ex : NULL);
	pf_wipe(ex, sizeof(ex));
	if (ac == NULL)
		return rc;
	if ((rc = login_first(ac, &msg)) != PF_OK ||
	    (rc = scram_step(c, login_mechanism(ac), PROTO_AUTH, msg,
	    PROTO_CHALLENGE, &reply, err, errcap)) != PF_OK)
		goto out;
	free(msg);
	msg = NULL;
	if ((rc = login_final(ac, reply, &msg)) != PF_OK)
		goto out;
	free(reply);
	reply = NULL;
	if ((rc = scram_step(c, NULL, PROTO_PROOF, msg, PROTO_AUTH_OK, &reply,
	    err, errcap)) != PF_OK)
		goto out;
	/* Mutual: a server that cannot sign does not know our verifier. */
	if ((rc = login_verify(ac, reply)) != PF_OK) {
		snprintf(err, errcap, "server signature is wrong: it is not "
		    "the server that holds this user");
		rc = PF_EAUTH;
		goto out;
	}
	rc = login_session_key(ac, key);
out:
	free(msg);
	free(reply);
	login_free(ac);
	/*
	 * Trouble on the way (the network, a busy server) is reported as
	 * such, so that it can be retried; anything else is a failed login.
	 */
	if (rc != PF_OK && rc != PF_ENET && rc != PF_ETIMEOUT &&
	    rc != PF_EBUSY && rc != PF_ENOMEM && rc != PF_EBADFRAME &&
	    rc != PF_ETHROTTLED)
		rc = PF_EAUTH;
	return rc;
}

/* Decodes "have" of OPENED into o->have (already zeroed, nbytes long). */
static enum pf_status
parse_have(const json_t *j, uint32_t chunks, struct client_opened *o,
    char *err, size_t errcap)
{
	size_t nbytes = ((size_t)chunks + 7) / 8;
	const char *b64 = wire_json_str(j, "have", NULL);
	long n;

	/* An older server sends no bitmap: it holds nothing of ours. */
	if (json_object_get(j, "have") == NULL)
		return PF_OK;
	if (b64 == NULL)
		goto bad;
	/* A bitmap longer than nbytes does not fit: decode says -1. */
	n = pf_base64_decode(b64, o->have, nbytes);
	if (n < 0 || (size_t)n != nbytes)
		goto bad;
	if (chunks % 8 != 0 && (o->have[nbytes - 1] >> (chunks % 8)) != 0)
		goto bad;
	return PF_OK;
bad:
	snprintf(err, errcap, "OPENED has a \"have\" bitmap that is not %zu "
	    "bytes of base64 for %u chunks", nbytes, chunks);
	return PF_EPROTO;
}

/* A count of "limits", at most UINT_MAX; false if absent or not one. */
static bool
limit_of(const json_t *l, const char *key, unsigned *out)
{
	uint64_t v;

	if (wire_json_u64(l, key, &v) == -1)
		return false;
	*out = v > UINT_MAX ? UINT_MAX : (unsigned)v;
	return true;
}

/*
 * Reads "limits" of OPENED, if the server sent it: only a whole one
 * counts, since a client caps its streams with it.
 */
static void
parse_limits(const json_t *j, struct client_opened *o)
{
	const json_t *l = json_object_get(j, "limits");

	o->limits = json_is_object(l) &&
	    limit_of(l, "user_connections", &o->user_conns) &&
	    limit_of(l, "user_connections_used", &o->user_conns_used) &&
	    limit_of(l, "connections", &o->conns) && o->user_conns > 0 &&
	    o->conns > 0;
	if (!o->limits || !limit_of(l, "ip_logins", &o->ip_logins))
		o->ip_logins = 0;
}

/*
 * Sends OPEN j, with rq's manifest as its "files", unless it is longer
 * than a server takes: a transfer's list can be, with many entries or
 * long paths, and is then refused here with what to do, not by the
 * server after it was sent.
 */
static enum pf_status
send_open(struct pf_conn *c, const json_t *j, const struct client_open_req *rq,
    char *err, size_t errcap)
{
	struct pf_buf b;
	enum pf_status rc = PF_ENOMEM;
	char *s;

	if ((s = json_dumps(j, JSON_COMPACT)) == NULL)
		return rc;
	/* The list, the OPEN's bulk, is text already. */
	pf_buf_init(&b, SIZE_MAX / 2);
	pf_buf_add_json_with(&b, s, "files", rq->files);
	free(s);
	if (b.failed)
		goto out;
	if (b.len > PROTO_MAX_OPEN) {
		snprintf(err, errcap, "the list of the transfer's %zu entries "
		    "takes %.1f MiB, more than the %u MiB one transfer may "
		    "list: send the folder in parts", rq->nfiles,
		    (double)b.len / (1024 * 1024),
		    PROTO_MAX_OPEN / (1024 * 1024));
		rc = PF_ETOOLARGE;
		goto out;
	}
	rc = wire_send(c, PROTO_OPEN, b.p, b.len);
out:
	pf_buf_free(&b);
	return rc;
}

enum pf_status
client_open(struct pf_conn *c, const struct client_open_req *rq,
    struct client_opened *out, char *err, size_t errcap)
{
	uint8_t head[PROTO_HEAD_LEN];
	size_t headlen = rq->size < sizeof(head) ? (size_t)rq->size :
	    sizeof(head);
	char *head64 = NULL;
	const char *sid, *sname;
	uint64_t chunks, chunk_size;
	json_t *j = NULL, *jname;
	enum pf_status rc = PF_EIO;
	int type;

	memset(out, 0, sizeof(*out));
	if (headlen > 0 && chunkio_pread(rq->src, head, headlen, 0) !=
	    PF_OK) {
		char what[PATH_MAX + 128];

		chunkio_read_error(rq->src, what, sizeof(what));
		snprintf(err, errcap, "cannot read %s", what);
		return rc;
	}
	rc = PF_ENOMEM;
	/* Room for a bitmap of the maximum size, whatever the server says. */
	if ((out->have = calloc(1, ((size_t)rq->chunks + 7) / 8 + 1)) ==
	    NULL || (head64 = pf_base64_encode(head, headlen)) == NULL)
		goto out;
	/* jansson refuses invalid UTF-8; so would any server. */
	if ((jname = json_string(rq->name)) == NULL) {
		snprintf(err, errcap, "the name is not valid UTF-8");
		rc = PF_EBADNAME;
		goto out;
	}
	j = json_pack("{s:o,s:I,s:I,s:s}", "name", jname, "size",
	    (json_int_t)rq->size, "chunk_size", (json_int_t)rq->chunk_size,
	    "head", head64);
	if (j == NULL || (rq->resume != NULL && json_object_set_new(j,
	    "resume", json_string(rq->resume)) == -1) ||
	    (rq->amend && rq->resume != NULL && json_object_set_new(j,
	    "amend", json_true()) == -1) || (rq->pieces && rq->files !=
	    NULL && json_object_set_new(j, "pieces", json_true()) == -1))
		goto out;
	if ((rc = send_open(c, j, rq, err, errcap)) != PF_OK)
		goto out;
	json_decref(j);
	j = NULL;
	if ((rc = wire_expect_either(c, PROTO_OPENED, PROTO_COMPLETE, &type,
	    &j, err, errcap)) != PF_OK)
		goto out;
	rc = PF_EBADFRAME;
	sid = wire_json_str(j, "session", NULL);
	sname = wire_json_str(j, "name", NULL);
	if (type == PROTO_COMPLETE) {
		const char *digest = wire_json_str(j, "digest", NULL);

		if (rq->resume == NULL || sid == NULL ||
		    strcmp(sid, rq->resume) != 0 || sname == NULL ||
		    strlen(sname) > PROTO_MAX_NAME || digest == NULL ||
		    strlen(digest) != PF_SHA256_HEX - 1) {
			snprintf(err, errcap, "COMPLETE does not match the "
			    "OPEN");
			goto out;
		}
		snprintf(out->session, sizeof(out->session), "%s", sid);
		snprintf(out->name, sizeof(out->name), "%s", sname);
		snprintf(out->digest, sizeof(out->digest), "%s", digest);
		out->files = json_incref(json_object_get(j, "files"));
		out->pieces = json_is_true(json_object_get(j, "pieces"));
		out->complete = out->resumed = true;
		rc = PF_OK;
		goto out;
	}
	/* The id goes into state files and names: well-formed only. */
	if (!proto_id_valid(sid) || sname == NULL ||
	    strlen(sname) > PROTO_MAX_NAME ||
	    wire_json_u64(j, "chunks", &chunks) == -1 ||
	    chunks != rq->chunks || (json_object_get(j, "chunk_size") &&
	    (wire_json_u64(j, "chunk_size", &chunk_size) == -1 ||
	    chunk_size != rq->chunk_size))) {
		snprintf(err, errcap, "OPENED does not match the OPEN");
		goto out;
	}
	if ((rc = parse_have(j, rq->chunks, out, err, errcap)) != PF_OK)
		goto out;
	snprintf(out->session, sizeof(out->session), "%s", sid);
	snprintf(out->name, sizeof(out->name), "%s", sname);
	out->resumed = json_is_true(json_object_get(j, "resumed"));
	out->files_refused = (unsigned)json_integer_value(json_object_get(j,
	    "files_refused"));
	/* An older server answers none: its chunks are hashed whole. */
	out->pieces = rq->files != NULL && json_is_true(json_object_get(j,
	    "pieces"));
	parse_limits(j, out);
	rc = PF_OK;
out:
	if (rc != PF_OK)
		client_opened_clear(out);
	json_decref(j);
	free(head64);
	return rc;
}

void
client_opened_clear(struct client_opened *o)
{
	free(o->have);
	o->have = NULL;
	json_decref(o->files);
	o->files = NULL;
}

enum pf_status
client_join(struct pf_conn *c, const uint8_t key[PF_SHA256_LEN],
    const char *session, char *err, size_t errcap)
{
	uint8_t nonce[SCRAM_NONCE_LEN], proof[PF_SHA256_LEN];
	uint8_t ex[SCRAM_EXPORTER_LEN];
	char *proof64;
	json_t *j;
	enum pf_status rc;
	bool tls;

	if ((rc = client_hello(c, nonce, err, errcap)) != PF_OK)
		return rc;
	/* Bound to this data connection's own TLS channel, if any. */
	tls = pf_conn_tls_exporter(c, ex) == PF_OK;
	rc = scram_join_proof(key, session, nonce, sizeof(nonce),
	    tls ? ex : NULL, proof);
	pf_wipe(ex, sizeof(ex));
	if (rc != PF_OK)
		return rc;
	if ((proof64 = pf_base64_encode(proof, sizeof(proof))) == NULL)
		return PF_ENOMEM;
	j = json_pack("{s:s,s:s}", "session", session, "proof", proof64);
	free(proof64);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, PROTO_JOIN, j);
	json_decref(j);
	if (rc != PF_OK)
		return rc;
	return wire_expect_json(c, PROTO_JOINED, NULL, err, errcap);
}

enum pf_status
client_commit(struct pf_conn *c, const char *receipt, unsigned timeout_ms,
    json_t **files, char *err, size_t errcap)
{
	const char *digest;
	json_t *j;
	enum pf_status rc;

	/* A transfer's list in short: the rest is what the client sent. */
	if ((j = json_pack("{s:s,s:s*}", "digest", receipt, "files",
	    files != NULL ? "short" : NULL)) == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, PROTO_COMMIT, j);
	json_decref(j);
	if (rc != PF_OK)
		return rc;
	pf_conn_set_timeout(c, timeout_ms);
	if ((rc = wire_expect_json(c, PROTO_COMPLETE, &j, err,
	    errcap)) != PF_OK)
		return rc;
	digest = wire_json_str(j, "digest", NULL);
	rc = digest != NULL && strcmp(digest, receipt) == 0 ? PF_OK :
	    PF_EINTEGRITY;
	if (rc != PF_OK)
		snprintf(err, errcap, "server reports another receipt");
	else if (files != NULL)
		*files = json_incref(json_object_get(j, "files"));
	json_decref(j);
	return rc;
}

enum pf_status
client_abort(struct pf_conn *c)
{
	json_t *j = json_object();
	enum pf_status rc;

	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, PROTO_ABORT, j);
	json_decref(j);
	/*
	 * The server closes the connection once the staging area is gone:
	 * wait for that, so that neither our exit nor a proxy closing
	 * behind us can drop the ABORT before it is read.
	 */
	if (rc == PF_OK)
		rc = pf_conn_drain(c, ABORT_WAIT_MS, ABORT_WAIT_MS);
	return rc;
}
