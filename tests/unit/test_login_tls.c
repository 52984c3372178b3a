/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the channel-bound login over real TLS connections (tls.c
 * over socketpairs): both ends of one connection bind to the same
 * tls-exporter, and a man in the middle who terminates TLS with his own
 * certificate and relays the login, or a JOIN proof, to the real server
 * is refused even by a client that trusts him.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "log.h"
#include "login.h"
#include "net.h"
#include "scram.h"
#include "tls.h"
#include "users.h"

static char dir[] = "/tmp/pf-test-login-tls-XXXXXX";
static const uint8_t secret[PF_SHA256_LEN] = { 7 };

/* A server's and a man in the middle's TLS contexts, and a client's. */
static struct pf_tls *server_tls, *mitm_tls, *client_tls;
static struct auth_users *users;

/* One TLS connection: the exporter each end sees. */
struct link {
	uint8_t	server[SCRAM_EXPORTER_LEN];
	uint8_t	client[SCRAM_EXPORTER_LEN];
};

struct acceptor {
	struct pf_tls	*tls;
	int		 fd;
	enum pf_status	 rc;
	uint8_t		 exporter[SCRAM_EXPORTER_LEN];
};

static void *
accept_one(void *arg)
{
	struct acceptor *a = arg;
	struct pf_conn *c = pf_conn_new_tcp(a->fd);
	char err[256];
	bool resumed;

	pf_conn_set_timeout(c, 5000);
	a->rc = pf_tls_accept(a->tls, c, &resumed, err, sizeof(err));
	if (a->rc == PF_OK)
		a->rc = pf_conn_tls_exporter(c, a->exporter);
	pf_conn_free(c);
	return NULL;
}

/* A TLS connection from client_tls to a server with tls; its exporters. */
static void
connect_link(struct pf_tls *tls, struct link *l)
{
	struct acceptor a = { .tls = tls };
	struct pf_conn *c;
	pthread_t th;
	char err[256];
	bool resumed;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	a.fd = sv[0];
	assert_int_equal(pthread_create(&th, NULL, accept_one, &a), 0);
	c = pf_conn_new_tcp(sv[1]);
	pf_conn_set_timeout(c, 5000);
	assert_int_equal(pf_tls_connect(client_tls, c, "127.0.0.1", &resumed,
	    err, sizeof(err)), PF_OK);
	assert_int_equal(pf_conn_tls_exporter(c, l->client), PF_OK);
	pf_conn_free(c);
	pthread_join(th, NULL);
	assert_int_equal(a.rc, PF_OK);
	memcpy(l->server, a.exporter, sizeof(l->server));
}

/*
 * Relays one login between a client bound to cx and a server bound to sx;
 * the server's answer to PROOF. With rebind, the relay rewrites c= to the
 * server side's binding, as a man in the middle would have to.
 */
static enum pf_status
relay_login(const uint8_t *sx, const uint8_t *cx, bool rebind)
{
	struct auth_server *s = auth_server_new(users, secret, sx);
	struct login *c = login_new("alice", "pw", cx);
	char *cf = NULL, *sf = NULL, *cfin = NULL, *sfin = NULL, *cb = NULL;
	char *forged = NULL;
	uint8_t kc[PF_SHA256_LEN], ks[PF_SHA256_LEN];
	enum pf_status rc;

	assert_int_equal(login_first(c, &cf), PF_OK);
	assert_int_equal(strncmp(cf, SCRAM_GS2_PLUS, strlen(SCRAM_GS2_PLUS)),
	    0);
	assert_int_equal(auth_server_first(s, cf, &sf), PF_OK);
	assert_int_equal(login_final(c, sf, &cfin), PF_OK);
	if (rebind) {
		cb = scram_cbind(SCRAM_GS2_PLUS, sx);
		assert_non_null(cb);
		forged = scram_printf("c=%s%s", cb, strchr(cfin, ','));
		assert_non_null(forged);
	}
	rc = auth_server_final(s, forged ? forged : cfin, &sfin);
	if (rc == PF_OK) {
		assert_int_equal(login_verify(c, sfin), PF_OK);
		assert_int_equal(login_session_key(c, kc), PF_OK);
		assert_int_equal(auth_server_session_key(s, ks), PF_OK);
		assert_memory_equal(kc, ks, sizeof(kc));
	}
	free(cf);
	free(sf);
	free(cfin);
	free(sfin);
	free(cb);
	free(forged);
	login_free(c);
	auth_server_free(s);
	return rc;
}

static void
test_bound_login_direct(void **state)
{
	struct link l;

	(void)state;
	connect_link(server_tls, &l);
	assert_memory_equal(l.server, l.client, SCRAM_EXPORTER_LEN);
	assert_int_equal(relay_login(l.server, l.client, false), PF_OK);
}

/*
 * The client trusts the man in the middle's certificate (told to, or
 * fooled): its TLS connection ends at him. He opens his own to the real
 * server and relays the login. The exporters of the two connections
 * differ, so the server refuses, whether the binding is left alone or
 * rewritten (the proof covers it).
 */
static void
test_mitm_relay_refused(void **state)
{
	struct link to_mitm, to_server;

	(void)state;
	connect_link(mitm_tls, &to_mitm);
	connect_link(server_tls, &to_server);
	assert_memory_not_equal(to_mitm.client, to_server.server,
	    SCRAM_EXPORTER_LEN);
	assert_int_equal(relay_login(to_server.server, to_mitm.client, false),
	    PF_EAUTH);
	assert_int_equal(relay_login(to_server.server, to_mitm.client, true),
	    PF_EAUTH);
}

/* A JOIN proof made on one data connection does not pass on another. */
static void
test_join_bound_to_connection(void **state)
{
	static const uint8_t nonce[SCRAM_NONCE_LEN] = { 1, 2, 3 };
	static const char sid[] = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
	uint8_t key[PF_SHA256_LEN], a[PF_SHA256_LEN], b[PF_SHA256_LEN];
	struct link l1, l2;

	(void)state;
	memset(key, 0x42, sizeof(key));
	connect_link(server_tls, &l1);
	connect_link(server_tls, &l2);
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce),
	    l1.client, a), PF_OK);
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce),
	    l1.server, b), PF_OK);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(scram_join_proof(key, sid, nonce, sizeof(nonce),
	    l2.server, b), PF_OK);
	assert_memory_not_equal(a, b, sizeof(a));
}

static int
setup(void **state)
{
	char sub[256], cert[320], key[320], err[256];
	bool created;

	(void)state;
	pf_log_set_level(PF_LOG_ERROR);
	if (mkdtemp(dir) == NULL)
		return -1;
	for (int i = 0; i < 2; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", dir, i ? "mitm" : "server");
		snprintf(cert, sizeof(cert), "%s/%s", sub, PF_TLS_CERT_NAME);
		snprintf(key, sizeof(key), "%s/%s", sub, PF_TLS_KEY_NAME);
		if (pf_tls_ensure_self_signed(sub, "paraflow.test", &created,
		    err, sizeof(err)) != PF_OK ||
		    pf_tls_server_new(cert, key, i ? &mitm_tls : &server_tls,
		    err, sizeof(err)) != PF_OK)
			return -1;
	}
	if (pf_tls_client_new(PF_TLS_VERIFY_PIN, NULL, &client_tls, err,
	    sizeof(err)) != PF_OK)
		return -1;
	return auth_users_single("alice", "pw", &users) == PF_OK ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	pf_tls_free(server_tls);
	pf_tls_free(mitm_tls);
	pf_tls_free(client_tls);
	auth_users_free(users);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bound_login_direct),
		cmocka_unit_test(test_mitm_relay_refused),
		cmocka_unit_test(test_join_bound_to_connection),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
