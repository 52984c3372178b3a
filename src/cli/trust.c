/* SPDX-License-Identifier: MIT */
/* Which server keys paraflow accepts: a pin, a CA, or the one seen first. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "known.h"
#include "log.h"
#include "state.h"
#include "trust.h"

/* Workers check their connections at once: one file update at a time. */
static pthread_mutex_t known_lock = PTHREAD_MUTEX_INITIALIZER;

enum pf_status
trust_context(const struct cli_trust *t, struct pf_tls **out, char *err,
    size_t errcap)
{
	*out = NULL;
	if (t->no_tls)
		return PF_OK;
	if (t->pin != NULL && (strncmp(t->pin, "sha256//", 8) != 0 ||
	    strlen(t->pin) != PF_TLS_PIN_LEN)) {
		snprintf(err, errcap, "--pin %s: not a pin (sha256// and 44 "
		    "base64 characters, as paraflowd --fingerprint prints)",
		    t->pin);
		return PF_EUSAGE;
	}
	if (t->cacert != NULL || t->ca_system)
		return pf_tls_client_new(PF_TLS_VERIFY_CA, t->cacert, out, err,
		    errcap);
	return pf_tls_client_new(PF_TLS_VERIFY_PIN, NULL, out, err, errcap);
}

/* Trust on first use: the known-servers file decides. */
static enum pf_status
check_known(const char *pin, const char *host, unsigned port, bool quiet,
    char *err, size_t errcap)
{
	char old[PF_TLS_PIN_LEN + 1], key[300], *dir, *file = NULL;
	enum known_verdict verdict;
	enum pf_status rc = PF_EAUTH;
	unsigned line = 0;

	known_key(host, port, key, sizeof(key));
	if ((dir = state_dir()) == NULL) {
		snprintf(err, errcap, "no state directory to remember the "
		    "server's key in: give --pin %s (after checking it with "
		    "the server's administrator) or --cacert", pin);
		return PF_EAUTH;
	}
	if (state_make_dirs(dir) != PF_OK ||
	    asprintf(&file, "%s/%s", dir, KNOWN_FILE_NAME) == -1) {
		file = NULL;
		snprintf(err, errcap, "%s: cannot make the state directory",
		    dir);
		goto out;
	}
	pthread_mutex_lock(&known_lock);
	rc = known_check(file, host, port, pin, &verdict, old, &line);
	pthread_mutex_unlock(&known_lock);
	if (rc != PF_OK) {
		snprintf(err, errcap, "%s: cannot read or update it", file);
		rc = PF_EAUTH;
		goto out;
	}
	if (verdict == KNOWN_NEW && !quiet)
		fprintf(stderr, "paraflow: first connection to %s: accepted "
		    "its key %s (recorded in %s)\n", key, pin, file);
	if (verdict == KNOWN_MISMATCH) {
		snprintf(err, errcap, "the server at %s shows the key %s, but "
		    "%s line %u records %s for it. Someone may be in the "
		    "middle; if the server's key changed on purpose, delete "
		    "that line (sed -i '%ud' %s) and connect again", key, pin,
		    file, line, old, line, file);
		rc = PF_EAUTH;
	}
out:
	free(file);
	free(dir);
	return rc;
}

enum pf_status
trust_check(const struct cli_trust *t, const struct pf_conn *c,
    const char *host, unsigned port, bool quiet, char *err, size_t errcap)
{
	char pin[PF_TLS_PIN_LEN + 1];

	if (t->no_tls || t->cacert != NULL || t->ca_system)
		return PF_OK;
	if (pf_conn_tls_pin(c, pin) != PF_OK) {
		snprintf(err, errcap, "the server showed no certificate");
		return PF_EAUTH;
	}
	if (t->pin == NULL)
		return check_known(pin, host, port, quiet, err, errcap);
	if (strcmp(pin, t->pin) != 0) {
		snprintf(err, errcap, "the server's key is %s, not the %s "
		    "given with --pin", pin, t->pin);
		return PF_EAUTH;
	}
	return PF_OK;
}

/*
 * The server answered the ClientHello with a plaintext frame: a HELLO if
 * it runs without TLS, an ERROR if it refused the connection (busy).
 */
static enum pf_status
plaintext_answer(struct pf_conn *c, char *err, size_t errcap)
{
	uint8_t nonce[SCRAM_NONCE_LEN];
	enum pf_status rc;

	if ((rc = client_hello(c, nonce, err, errcap)) != PF_OK)
		return rc;
	snprintf(err, errcap, "the server speaks plaintext: it runs with "
	    "--no-tls; say --no-tls too, only on a trusted link");
	return PF_EPROTO;
}

enum pf_status
trust_connect(const struct cli_trust *t, struct pf_tls *tls,
    const char *host, unsigned port, unsigned timeout_ms, bool quiet,
    struct pf_conn **out, char *err, size_t errcap)
{
	struct pf_conn *c = NULL;
	bool resumed = false;
	enum pf_status rc;

	err[0] = '\0';
	if ((rc = pf_tcp_connect(host, port, timeout_ms, &c)) != PF_OK)
		goto out;
	pf_conn_set_timeout(c, timeout_ms);
	if (t->no_tls)
		goto out;
	rc = pf_tls_connect(tls, c, host, &resumed, err, errcap);
	if (rc == PF_EVERSION)
		rc = plaintext_answer(c, err, errcap);
	if (rc != PF_OK)
		goto out;
	log_debug("%s: TLS 1.3, %s (%s)", c->peer, resumed ? "resumed" :
	    "full handshake", pf_conn_tls_engine(c));
	rc = trust_check(t, c, host, port, quiet, err, errcap);
out:
	if (rc == PF_OK)
		*out = c;
	else
		pf_conn_free(c);
	return rc;
}
