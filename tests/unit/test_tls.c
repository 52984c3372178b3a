/* SPDX-License-Identifier: MIT */
/* Unit tests of TLS over a pf_conn: certificates, pins, resumption. */
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net.h"
#include "tls.h"

static char dir[] = "/tmp/pf-test-tls-XXXXXX";
static char cert[256], key[256];

/* One server connection: handshake, echo one message back reversed. */
struct server {
	struct pf_tls	*tls;
	int		 fd;
	bool		 resumed;
	enum pf_status	 rc;
	uint8_t		 exporter[PF_TLS_EXPORTER_LEN];
};

static void *
serve(void *arg)
{
	struct server *s = arg;
	struct pf_conn *c = pf_conn_new_tcp(s->fd);
	char buf[5], err[256], back[5];

	pf_conn_set_timeout(c, 5000);
	s->rc = pf_tls_accept(s->tls, c, &s->resumed, err, sizeof(err));
	if (s->rc != PF_OK) print_message("# server: %s\n", err);
	if (s->rc == PF_OK)
		s->rc = pf_conn_tls_exporter(c, s->exporter);
	if (s->rc == PF_OK &&
	    (s->rc = pf_conn_read_full(c, buf, sizeof(buf))) == PF_OK) {
		for (size_t i = 0; i < sizeof(buf); i++)
			back[i] = buf[sizeof(buf) - 1 - i];
		s->rc = pf_conn_write_full(c, back, sizeof(back));
	}
	pf_conn_free(c);
	return NULL;
}

/*
 * Connects a client with ctx to a server thread over a socketpair and
 * checks one round trip; returns the client's status.
 */
static enum pf_status
round_trip(struct pf_tls *server, struct pf_tls *client, const char *host,
    bool *resumed, char pin[PF_TLS_PIN_LEN + 1])
{
	struct server s = { .tls = server };
	uint8_t exporter[PF_TLS_EXPORTER_LEN];
	struct pf_conn *c;
	pthread_t th;
	char err[256], got[5];
	int sv[2];
	enum pf_status rc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s.fd = sv[0];
	assert_int_equal(pthread_create(&th, NULL, serve, &s), 0);
	c = pf_conn_new_tcp(sv[1]);
	pf_conn_set_timeout(c, 5000);
	rc = pf_tls_connect(client, c, host, resumed, err, sizeof(err));
	if (rc != PF_OK) print_message("# client: %s\n", err);
	if (rc == PF_OK) {
		assert_true(pf_conn_is_tls(c));
		assert_int_equal(pf_conn_tls_pin(c, pin), PF_OK);
		assert_int_equal(pf_conn_tls_exporter(c, exporter), PF_OK);
		assert_int_equal(pf_conn_write_full(c, "hello", 5), PF_OK);
		assert_int_equal(pf_conn_read_full(c, got, 5), PF_OK);
		assert_memory_equal(got, "olleh", 5);
	} else
		assert_false(pf_conn_is_tls(c));
	pf_conn_free(c);	/* closes: a failed server handshake ends */
	pthread_join(th, NULL);
	if (rc == PF_OK) {
		assert_int_equal(s.rc, PF_OK);
		/* Both ends derive the same channel binding. */
		assert_memory_equal(exporter, s.exporter, sizeof(exporter));
		assert_int_equal(s.resumed, *resumed);
	}
	return rc;
}

static void
test_self_signed_and_pin(void **state)
{
	char pin[PF_TLS_PIN_LEN + 1], again[PF_TLS_PIN_LEN + 1], err[256];
	struct stat sb;
	bool created;

	(void)state;
	assert_int_equal(pf_tls_ensure_self_signed(dir, "paraflow.test",
	    &created, err, sizeof(err)), PF_OK);
	assert_true(created);
	assert_int_equal(stat(key, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(stat(cert, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(pf_tls_pin_of_file(cert, pin), PF_OK);
	assert_int_equal(strlen(pin), PF_TLS_PIN_LEN);
	assert_memory_equal(pin, "sha256//", 8);
	/* A second start keeps the pair, so the pin stays. */
	assert_int_equal(pf_tls_ensure_self_signed(dir, "paraflow.test",
	    &created, err, sizeof(err)), PF_OK);
	assert_false(created);
	assert_int_equal(pf_tls_pin_of_file(cert, again), PF_OK);
	assert_string_equal(pin, again);
}

static void
test_pin_mode_and_resumption(void **state)
{
	struct pf_tls *server, *client;
	char pin[PF_TLS_PIN_LEN + 1], want[PF_TLS_PIN_LEN + 1], err[256];
	bool resumed;

	(void)state;
	assert_int_equal(pf_tls_server_new(cert, key, &server, err,
	    sizeof(err)), PF_OK);
	assert_int_equal(pf_tls_client_new(PF_TLS_VERIFY_PIN, NULL, &client,
	    err, sizeof(err)), PF_OK);
	assert_int_equal(pf_tls_pin_of_file(cert, want), PF_OK);
	assert_int_equal(round_trip(server, client, "127.0.0.1", &resumed,
	    pin), PF_OK);
	assert_false(resumed);
	assert_string_equal(pin, want);
	/* The ticket of the first connection makes the next ones cheap. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(round_trip(server, client, "127.0.0.1",
		    &resumed, pin), PF_OK);
		assert_true(resumed);
		assert_string_equal(pin, want);
	}
	pf_tls_free(client);
	pf_tls_free(server);
}

static void
test_ca_mode_checks_the_name(void **state)
{
	struct pf_tls *server, *client;
	char pin[PF_TLS_PIN_LEN + 1], err[256];
	bool resumed;

	(void)state;
	assert_int_equal(pf_tls_server_new(cert, key, &server, err,
	    sizeof(err)), PF_OK);
	assert_int_equal(pf_tls_client_new(PF_TLS_VERIFY_CA, cert, &client,
	    err, sizeof(err)), PF_OK);
	assert_int_equal(round_trip(server, client, "localhost", &resumed,
	    pin), PF_OK);
	assert_int_equal(round_trip(server, client, "paraflow.test",
	    &resumed, pin), PF_OK);
	pf_tls_free(client);
	/* A fresh client: no ticket to skip the check with. */
	assert_int_equal(pf_tls_client_new(PF_TLS_VERIFY_CA, cert, &client,
	    err, sizeof(err)), PF_OK);
	assert_int_equal(round_trip(server, client, "other.example",
	    &resumed, pin), PF_EAUTH);
	pf_tls_free(client);
	/* The system store does not know a self-signed certificate. */
	assert_int_equal(pf_tls_client_new(PF_TLS_VERIFY_CA, NULL, &client,
	    err, sizeof(err)), PF_OK);
	assert_int_equal(round_trip(server, client, "localhost", &resumed,
	    pin), PF_EAUTH);
	pf_tls_free(client);
	pf_tls_free(server);
}

static void
test_bad_files(void **state)
{
	struct pf_tls *t;
	char err[256], other[256];
	bool created;

	(void)state;
	err[0] = '\0';
	assert_int_equal(pf_tls_server_new("/nonexistent/cert.pem", key, &t,
	    err, sizeof(err)), PF_EUSAGE);
	assert_true(strstr(err, "/nonexistent/cert.pem") != NULL);
	/* A key of another pair. */
	snprintf(other, sizeof(other), "%s/other", dir);
	assert_int_equal(pf_tls_ensure_self_signed(other, "x", &created, err,
	    sizeof(err)), PF_OK);
	snprintf(other, sizeof(other), "%s/other/key.pem", dir);
	assert_int_equal(pf_tls_server_new(cert, other, &t, err,
	    sizeof(err)), PF_EUSAGE);
	assert_true(strstr(err, "match") != NULL);
}

static void
test_sniff(void **state)
{
	int sv[2];
	bool is_tls = true;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(pf_tls_sniff(sv[0], 50, &is_tls), PF_ETIMEOUT);
	assert_int_equal(write(sv[1], "PFLW", 4), 4);
	assert_int_equal(pf_tls_sniff(sv[0], 1000, &is_tls), PF_OK);
	assert_false(is_tls);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], "\x16\x03\x01", 3), 3);
	assert_int_equal(pf_tls_sniff(sv[0], 1000, &is_tls), PF_OK);
	assert_true(is_tls);
	close(sv[1]);
	close(sv[0]);
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(cert, sizeof(cert), "%s/%s", dir, PF_TLS_CERT_NAME);
	snprintf(key, sizeof(key), "%s/%s", dir, PF_TLS_KEY_NAME);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_self_signed_and_pin),
		cmocka_unit_test(test_pin_mode_and_resumption),
		cmocka_unit_test(test_ca_mode_checks_the_name),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_sniff),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
