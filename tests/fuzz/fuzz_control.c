/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target over the frames a server reads from a connection, run
 * by the server's own handlers against a real storage directory: the
 * frame header, the JSON payload and the control frames (AUTH, PROOF,
 * OPEN or resume, COMMIT, ABORT, JOIN), or CHUNKs on a joined data
 * connection. The first byte picks where the connection stands (logged
 * in, new, or joined to a fresh session); the rest is what the peer
 * sends, as many frames as it holds. Every run also checks that
 * pf_text_escape leaves no control in what it writes.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "control.h"
#include "counters.h"
#include "data.h"
#include "engine.h"
#include "log.h"
#include "peruser.h"
#include "policy.h"
#include "registry.h"
#include "session.h"
#include "storage.h"
#include "store.h"
#include "stream_int.h"
#include "text.h"
#include "throttle.h"
#include "users.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A peer whose bytes are the fuzzer's input; what it is sent is dropped. */
struct feed {
	struct pf_conn	 c;
	const uint8_t	*p;
	size_t		 n;
};

static ssize_t
feed_read(struct pf_conn *c, void *p, size_t n)
{
	struct feed *f = (struct feed *)c;

	if (n > f->n)
		n = f->n;
	memcpy(p, f->p, n);
	f->p += n;
	f->n -= n;
	return (ssize_t)n;
}

static ssize_t
feed_write(struct pf_conn *c, const void *p, size_t n)
{
	(void)c;
	(void)p;
	return (ssize_t)n;
}

static void
feed_close(struct pf_conn *c)
{
	(void)c;
}

static const struct pf_conn_ops feed_ops = { feed_read, feed_write,
	feed_close, NULL };

static struct engine_config cfg;
static struct counters counters;
static struct pf_log_limit refusals;
static struct stream_env env;
static _Atomic bool stopping;
static const uint8_t secret[PF_SHA256_LEN] = { 4, 5, 6 };

/* The engine's parts, as engine_new makes them, over a scratch storage. */
static void
setup(void)
{
	static struct auth_users *users;
	static struct storage *storage;
	static struct store *store;
	const char *tmp = getenv("TMPDIR");
	char dir[256];

	/* PF_FUZZ_LOG=1 shows the log, to follow one input. */
	pf_log_set_level(getenv("PF_FUZZ_LOG") ? PF_LOG_DEBUG : PF_LOG_NONE);
	snprintf(dir, sizeof(dir), "%s/pf-fuzz-control-XXXXXX",
	    tmp ? tmp : "/tmp");
	engine_config_defaults(&cfg);
	cfg.max_file_size = 1 << 20;	/* staging files stay small */
	cfg.no_sync = true;
	if (mkdtemp(dir) == NULL || auth_users_single("paraflow",
	    "secret123", &users) != PF_OK || storage_open(dir,
	    STORAGE_SYNC_NONE, &storage) != PF_OK ||
	    store_open(&(struct store_opts){ .s3_target = NULL }, &store) !=
	    PF_OK)
		abort();
	pf_log_limit_init(&refusals, "refusals", 10, 60);
	env = (struct stream_env){ .cfg = &cfg, .users = users,
	    .secret = secret, .policy = policy_new(NULL, NULL),
	    .storage = storage, .store = store,
	    .registry = registry_new(&(struct registry_limits){ 8, 8, 0, 100 },
	    &counters),
	    .peruser = peruser_new(64), .throttle = throttle_new(60),
	    .counters = &counters, .refusals = &refusals,
	    .stopping = &stopping };
	if (env.policy == NULL || env.registry == NULL ||
	    env.peruser == NULL || env.throttle == NULL)
		abort();
}

/* The session seeds resume and join: its key is all ones. */
#define FIXED_ID	"0a1b2c3d-0000-4000-8000-00000000abcd"

/*
 * A new receiving session of one 100-byte chunk ("pf", then zeros) named
 * f.txt, with id (NULL: a random one); NULL if it cannot be made.
 */
static struct session *
new_session(const char *id)
{
	static const uint8_t head[100] = { 'p', 'f' };
	static uint8_t key[PF_SHA256_LEN];
	struct registry_ask ask = { .id = id, .user = "paraflow",
	    .size = sizeof(head), .room = UINT64_MAX };
	struct session_file f = { .name = "f.txt",
	    .client_name = "f.txt", .client_name_len = 5, .peer = "fuzz",
	    .size = sizeof(head), .chunk_size = PROTO_MIN_CHUNK,
	    .head = head, .headlen = sizeof(head) };
	struct session *s;
	char why[128];

	memset(key, 1, sizeof(key));
	if (registry_open(env.registry, 1, &ask, &s, why, sizeof(why)) !=
	    PF_OK)
		return NULL;
	session_take(s, 99, key);
	if (session_open(s, env.storage, &f) != PF_OK) {
		registry_end(env.registry, s, SESSION_FAILED, PF_EIO);
		session_unref(s);
		return NULL;
	}
	return s;
}

/* Makes sure the session of FIXED_ID is there, left by the last run. */
static void
keep_fixed(void)
{
	struct session *s = NULL;

	if (registry_lookup(env.registry, FIXED_ID, &s) != PF_OK ||
	    session_state(s) != SESSION_RECEIVING) {
		if (s != NULL)
			registry_retire(env.registry, s);
		session_unref(s);
		s = new_session(FIXED_ID);
	}
	session_unref(s);
}

/* A data connection joined to a new session. */
static bool
join_fresh(struct stream *st)
{
	struct session *s = new_session(NULL);

	if (s == NULL)
		return false;
	if (data_start(st, s) != PF_OK) {
		session_unref(s);
		return false;
	}
	return true;
}

/* One frame, checked and dispatched as stream.c's serve_frame does. */
static enum pf_status
one_frame(struct stream *st)
{
	struct proto_header h;
	json_t *req = NULL;
	enum pf_status rc;

	if ((rc = wire_recv_header(st->c, &h)) != PF_OK)
		return rc;
	if (!proto_from_client(h.type) || proto_check_length(&h, st->role !=
	    ROLE_NEW, st->role == ROLE_DATA ?
	    session_chunk_size(st->session) : 0) != PF_OK)
		return PF_EPROTO;
	if (h.type == PROTO_CHUNK)
		return st->role == ROLE_DATA ? data_on_chunk(st, &h) :
		    PF_EPROTO;
	if ((rc = wire_recv_json(st->c, &h, &req)) != PF_OK)
		return rc;
	rc = stream_on_json(st, h.type, req);
	json_decref(req);
	return rc;
}

/* What stream.c's stream_release does; a session left over is ended. */
static void
release(struct stream *st)
{
	struct session *s = st->session;

	data_release(st, false);
	if (s != NULL && st->role != ROLE_NEW)
		session_detach(s, st->role == ROLE_CONTROL);
	if (s != NULL)
		registry_end(env.registry, s, SESSION_CANCELLED,
		    PF_ECANCELLED);
	if (st->counted)
		peruser_release(env.peruser, st->user);
	session_unref(s);
	auth_server_free(st->auth);
	chunkhash_free(st->hash);
	free(st->buf);
}

/* pf_text_escape's promise: no control and no bidi control comes out. */
static void
check_escape(const uint8_t *data, size_t size)
{
	char in[512], out[4 * sizeof(in) + 1];
	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1, k, len;

	memcpy(in, data, n);
	in[n] = '\0';
	n = pf_text_escape(out, sizeof(out), in, &k);
	if (k != strlen(in) || n != strlen(out))
		abort();
	for (k = 0; k < n; k += len)
		if ((len = pf_text_safe_len(out + k)) == 0)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feed f = { .c = { .ops = &feed_ops, .fd = -1, .peer = "fuzz" } };
	_Atomic bool busy = false;
	struct stream st = { .env = &env, .c = &f.c, .id = 1, .busy = &busy,
	    .role = ROLE_NEW, .key = { 1 } };

	if (size < 1)
		return 0;
	if (env.cfg == NULL)
		setup();
	check_escape(data, size);
	f.p = data + 1;
	f.n = size - 1;
	keep_fixed();
	/* The role is set directly: no login counts as in progress. */
	switch (data[0] % 3) {
	case 0:
		/* Logged in, as control_on_proof leaves a connection. */
		snprintf(st.user, sizeof(st.user), "paraflow");
		st.role = ROLE_CONTROL;
		break;
	case 2:
		if (!join_fresh(&st)) {
			release(&st);
			return 0;
		}
		break;
	}
	while (f.n > 0 && one_frame(&st) == PF_OK)
		;
	release(&st);
	return 0;
}
