/* SPDX-License-Identifier: MIT */
/* TLS 1.3 over a pf_conn, certificates and pins (OpenSSL). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "digest.h"
#include "fsutil.h"
#include "tls.h"

#define EXPORTER_LABEL	"EXPORTER-Channel-Binding"	/* RFC 9266 */
#define CERT_DAYS	3650
#define TLS_RECORD_HANDSHAKE	0x16
#define PROTO_MAGIC_FIRST	'P'	/* of "PFLW", every frame's start */

struct pf_tls {
	SSL_CTX		*ctx;
	bool		 server;
	pthread_mutex_t	 lock;		/* guards ticket */
	SSL_SESSION	*ticket;	/* newest; client side */
};

/* Copies OpenSSL's oldest queued error (or what) into err. */
static void
tls_error(char *err, size_t errcap, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (err == NULL || errcap == 0) {
		ERR_clear_error();
		return;
	}
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(err, errcap, "%s: %s", what,
		    ERR_reason_error_string(e) ? ERR_reason_error_string(e) :
		    buf);
	} else
		snprintf(err, errcap, "%s", what);
	ERR_clear_error();
}

static struct pf_tls *
tls_new(const SSL_METHOD *method, bool server)
{
	struct pf_tls *t;

	/*
	 * OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a peer gone
	 * must be an error, never the end of the process.
	 */
	signal(SIGPIPE, SIG_IGN);
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if ((t->ctx = SSL_CTX_new(method)) == NULL) {
		free(t);
		return NULL;
	}
	t->server = server;
	pthread_mutex_init(&t->lock, NULL);
	/* TLS 1.3 only: its handshake is encrypted and it has no
	 * renegotiation; every client here is ours. */
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
	/* AES-128-GCM first: as safe here, and the fastest with AES-NI. */
	SSL_CTX_set_ciphersuites(t->ctx, "TLS_AES_128_GCM_SHA256:"
	    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
	/* The kernel encrypts where it can (no "tls" module here). */
	SSL_CTX_set_options(t->ctx, SSL_OP_ENABLE_KTLS);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_app_data(t->ctx, t);
	return t;
}

void
pf_tls_free(struct pf_tls *t)
{
	if (t == NULL)
		return;
	SSL_SESSION_free(t->ticket);
	SSL_CTX_free(t->ctx);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

enum pf_status
pf_tls_server_new(const char *cert_file, const char *key_file,
    struct pf_tls **out, char *err, size_t errcap)
{
	struct pf_tls *t;

	if ((t = tls_new(TLS_server_method(), true)) == NULL) {
		tls_error(err, errcap, "TLS context");
		return PF_ENOMEM;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
		tls_error(err, errcap, cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) !=
	    1) {
		tls_error(err, errcap, key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		tls_error(err, errcap, "the key does not match the "
		    "certificate");
		goto fail;
	}
	/* One ticket is enough: every data connection resumes from it. */
	SSL_CTX_set_num_tickets(t->ctx, 1);
	*out = t;
	return PF_OK;
fail:
	pf_tls_free(t);
	return PF_EUSAGE;
}

/* Keeps the newest ticket the server sent, for the next connection. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct pf_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	pthread_mutex_lock(&t->lock);
	SSL_SESSION_free(t->ticket);
	t->ticket = sess;
	pthread_mutex_unlock(&t->lock);
	return 1;	/* we keep the reference */
}

enum pf_status
pf_tls_client_new(enum pf_tls_verify verify, const char *cafile,
    struct pf_tls **out, char *err, size_t errcap)
{
	struct pf_tls *t;
	int ok;

	if ((t = tls_new(TLS_client_method(), false)) == NULL) {
		tls_error(err, errcap, "TLS context");
		return PF_ENOMEM;
	}
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_CLIENT |
	    SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(t->ctx, on_new_session);
	if (verify == PF_TLS_VERIFY_CA) {
		ok = cafile != NULL ?
		    SSL_CTX_load_verify_locations(t->ctx, cafile, NULL) :
		    SSL_CTX_set_default_verify_paths(t->ctx);
		if (ok != 1) {
			tls_error(err, errcap, cafile ? cafile :
			    "the system CA store");
			pf_tls_free(t);
			return PF_EUSAGE;
		}
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	*out = t;
	return PF_OK;
}

/* The transport once TLS runs: OpenSSL over the same socket. */

/*
 * What a failed SSL_read_ex or SSL_write_ex (result r) means, said as
 * read(2) and write(2) say it: 0 when reading meets the peer's close, else
 * -1 with errno: EAGAIN when the socket's timeout passed, EPIPE when
 * writing to a peer gone, EPROTO when a record failed its check (or
 * worse).
 */
static ssize_t
io_failed(struct pf_conn *c, int r, bool reading)
{
	ssize_t rc = -1;

	switch (SSL_get_error(c->tls, r)) {
	case SSL_ERROR_ZERO_RETURN:
		if (reading)
			rc = 0;
		else
			errno = EPROTO;
		break;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		break;
	case SSL_ERROR_SYSCALL:
		/* errno 0: the peer closed without a close_notify. */
		if (errno == 0 && reading)
			rc = 0;
		else if (errno == 0)
			errno = EPIPE;
		break;
	default:
		errno = EPROTO;
		break;
	}
	ERR_clear_error();
	return rc;
}

static ssize_t
tls_read(struct pf_conn *c, void *p, size_t n)
{
	size_t got = 0;
	int r = SSL_read_ex(c->tls, p, n, &got);

	return r == 1 ? (ssize_t)got : io_failed(c, r, true);
}

static ssize_t
tls_write(struct pf_conn *c, const void *p, size_t n)
{
	size_t put = 0;
	int r = SSL_write_ex(c->tls, p, n, &put);

	return r == 1 ? (ssize_t)put : io_failed(c, r, false);
}

static void
tls_close(struct pf_conn *c)
{
	if (c->tls != NULL) {
		/* One close_notify, without waiting for the peer's. */
		SSL_shutdown(c->tls);
		SSL_free(c->tls);
		ERR_clear_error();
		c->tls = NULL;
	}
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

static size_t
tls_pending(const struct pf_conn *c)
{
	return SSL_has_pending(c->tls) ? 1 : 0;
}

static const struct pf_conn_ops tls_ops = { tls_read, tls_write, tls_close,
    tls_pending };

/* The socket's receive timeout in ms, for poll(2): -1 for none. */
static int
recv_timeout_ms(int fd)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) == -1 ||
	    (tv.tv_sec == 0 && tv.tv_usec == 0))
		return -1;
	return (int)(tv.tv_sec * 1000 + tv.tv_usec / 1000);
}

/*
 * Client side: sends the ClientHello, then peeks at the first byte of the
 * answer without reading it. A plaintext server has sent its HELLO frame
 * (it speaks first) and a server refusing the connection before TLS a
 * plaintext ERROR frame: PF_EVERSION, and the frame stays on the socket
 * for the caller to read. Anything else is left to the handshake.
 *
 * OpenSSL reads from an empty memory BIO meanwhile, so it never takes in
 * a byte of the answer, however early that comes.
 */
static enum pf_status
peek_answer(struct pf_conn *c, SSL *ssl, char *err, size_t errcap)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	BIO *sock = SSL_get_wbio(ssl), *mem;
	enum pf_status rc = PF_OK;
	int r;
	char b;

	if ((mem = BIO_new(BIO_s_mem())) == NULL || BIO_up_ref(sock) != 1) {
		BIO_free(mem);
		return PF_OK;	/* the handshake will say what is wrong */
	}
	BIO_set_mem_eof_return(mem, -1);	/* empty: "try again" */
	SSL_set0_rbio(ssl, mem);
	r = SSL_do_handshake(ssl);
	if (r == 1 || SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
		goto out;
	ERR_clear_error();
	do
		r = poll(&pfd, 1, recv_timeout_ms(c->fd));
	while (r == -1 && errno == EINTR);
	if (r == 0) {
		snprintf(err, errcap, "TLS handshake timed out");
		rc = PF_ETIMEOUT;
	} else if (recv(c->fd, &b, 1, MSG_PEEK) == 1 &&
	    b == PROTO_MAGIC_FIRST) {
		snprintf(err, errcap, "the server does not speak TLS");
		rc = PF_EVERSION;
	}
out:
	SSL_set0_rbio(ssl, sock);	/* frees mem */
	return rc;
}

/*
 * Runs the handshake of ssl (a client's if client); on success c speaks
 * TLS from now on.
 */
static enum pf_status
handshake(struct pf_conn *c, SSL *ssl, bool client, bool *resumed,
    char *err, size_t errcap)
{
	enum pf_status rc;
	bool verify_failed;
	int r, e;

	if (SSL_set_fd(ssl, c->fd) != 1) {
		tls_error(err, errcap, "TLS");
		return PF_ENOMEM;
	}
	if (client && (rc = peek_answer(c, ssl, err, errcap)) != PF_OK)
		return rc;
	ERR_clear_error();
	errno = 0;
	if ((r = SSL_do_handshake(ssl)) != 1) {
		e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			snprintf(err, errcap, "TLS handshake timed out");
			ERR_clear_error();
			return PF_ETIMEOUT;
		}
		if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
			snprintf(err, errcap, "TLS handshake: %s", errno ?
			    strerror(errno) : "connection closed by peer");
			return PF_ENET;
		}
		/*
		 * Only a certificate that fails the check is the server's
		 * fault to report as such: the verify result alone is not,
		 * as a resumed session carries the first one's (with
		 * PF_TLS_VERIFY_PIN that of an unchecked self-signed
		 * certificate). Anything else, a peer gone or bytes damaged
		 * on the way, is network trouble: worth another try.
		 */
		verify_failed = ERR_GET_REASON(ERR_peek_error()) ==
		    SSL_R_CERTIFICATE_VERIFY_FAILED;
		tls_error(err, errcap, "TLS handshake");
		return verify_failed ? PF_EAUTH : PF_ENET;
	}
	if (resumed != NULL)
		*resumed = SSL_session_reused(ssl) == 1;
	c->tls = ssl;
	c->ops = &tls_ops;
	return PF_OK;
}

enum pf_status
pf_tls_accept(struct pf_tls *t, struct pf_conn *c, bool *resumed, char *err,
    size_t errcap)
{
	enum pf_status rc;
	SSL *ssl;

	if ((ssl = SSL_new(t->ctx)) == NULL) {
		tls_error(err, errcap, "TLS");
		return PF_ENOMEM;
	}
	SSL_set_accept_state(ssl);
	if ((rc = handshake(c, ssl, false, resumed, err, errcap)) != PF_OK)
		SSL_free(ssl);
	return rc;
}

/* True if host is a numeric IPv4 or IPv6 address. */
static bool
is_ip(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 ||
	    inet_pton(AF_INET6, host, buf) == 1;
}

enum pf_status
pf_tls_connect(struct pf_tls *t, struct pf_conn *c, const char *host,
    bool *resumed, char *err, size_t errcap)
{
	enum pf_status rc = PF_ENOMEM;
	SSL_SESSION *sess;
	SSL *ssl;

	if ((ssl = SSL_new(t->ctx)) == NULL) {
		tls_error(err, errcap, "TLS");
		return PF_ENOMEM;
	}
	if (!is_ip(host) && SSL_set_tlsext_host_name(ssl, host) != 1)
		goto fail;
	if (SSL_CTX_get_verify_mode(t->ctx) & SSL_VERIFY_PEER) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		if ((is_ip(host) ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) :
		    SSL_set1_host(ssl, host)) != 1)
			goto fail;
	}
	/*
	 * Each connection resumes from its own copy of the ticket: OpenSSL
	 * writes to the session of a connection as it runs (and marks it
	 * unresumable when one ends badly), so connections sharing one
	 * object would spoil it for the others.
	 */
	pthread_mutex_lock(&t->lock);
	sess = t->ticket != NULL ? SSL_SESSION_dup(t->ticket) : NULL;
	pthread_mutex_unlock(&t->lock);
	if (sess != NULL) {
		SSL_set_session(ssl, sess);
		SSL_SESSION_free(sess);
	}
	SSL_set_connect_state(ssl);
	if ((rc = handshake(c, ssl, true, resumed, err, errcap)) == PF_OK)
		return PF_OK;
fail:
	if (rc == PF_ENOMEM)
		tls_error(err, errcap, "TLS");
	SSL_free(ssl);
	return rc;
}

bool
pf_conn_is_tls(const struct pf_conn *c)
{
	return c->tls != NULL;
}

/* The pin of cert's public key: sha256//base64(SHA-256(SPKI)). */
static enum pf_status
pin_of(X509 *cert, char pin[PF_TLS_PIN_LEN + 1])
{
	uint8_t md[PF_SHA256_LEN];
	unsigned char *der = NULL;
	char *b64;
	int n;

	if ((n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der)) <= 0)
		return PF_EPROTO;
	if (pf_sha256(der, (size_t)n, md) != PF_OK) {
		OPENSSL_free(der);
		return PF_ENOMEM;
	}
	OPENSSL_free(der);
	if ((b64 = pf_base64_encode(md, sizeof(md))) == NULL)
		return PF_ENOMEM;
	snprintf(pin, PF_TLS_PIN_LEN + 1, "sha256//%s", b64);
	free(b64);
	return PF_OK;
}

enum pf_status
pf_conn_tls_pin(const struct pf_conn *c, char pin[PF_TLS_PIN_LEN + 1])
{
	X509 *cert;

	if (c->tls == NULL ||
	    (cert = SSL_get0_peer_certificate(c->tls)) == NULL)
		return PF_EPROTO;
	return pin_of(cert, pin);
}

enum pf_status
pf_tls_pin_of_file(const char *cert_file, char pin[PF_TLS_PIN_LEN + 1])
{
	enum pf_status rc = PF_EIO;
	FILE *f;
	X509 *cert;

	if ((f = fopen(cert_file, "re")) == NULL)
		return PF_EIO;
	if ((cert = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		rc = pin_of(cert, pin);
		X509_free(cert);
	}
	fclose(f);
	ERR_clear_error();
	return rc;
}

enum pf_status
pf_conn_tls_exporter(const struct pf_conn *c, uint8_t out[PF_TLS_EXPORTER_LEN])
{
	if (c->tls == NULL)
		return PF_EPROTO;
	/* RFC 9266: this label, no context. */
	if (SSL_export_keying_material(c->tls, out, PF_TLS_EXPORTER_LEN,
	    EXPORTER_LABEL, sizeof(EXPORTER_LABEL) - 1, NULL, 0, 0) != 1) {
		ERR_clear_error();
		return PF_EPROTO;
	}
	return PF_OK;
}

const char *
pf_conn_tls_engine(const struct pf_conn *c)
{
	if (c->tls != NULL && BIO_get_ktls_send(SSL_get_wbio(c->tls)))
		return "kTLS";
	return "OpenSSL";
}

enum pf_status
pf_tls_sniff(int fd, unsigned ms, bool *is_tls)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	unsigned char b;
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, (int)ms);
	while (r == -1 && errno == EINTR);
	if (r == 0)
		return PF_ETIMEOUT;
	do
		n = recv(fd, &b, 1, MSG_PEEK);
	while (n == -1 && errno == EINTR);
	if (n != 1)
		return PF_ENET;
	*is_tls = b == TLS_RECORD_HANDSHAKE;
	return PF_OK;
}

/* Writes what a PEM writer produces through pf_write_atomic. */
static int
write_pem(const char *path, BIO *mem)
{
	char *p;
	long n = BIO_get_mem_data(mem, &p);

	return n < 0 ? -1 : pf_write_atomic(AT_FDCWD, path, p, (size_t)n,
	    0600);
}

/* A self-signed certificate for name over key, valid for CERT_DAYS. */
static X509 *
make_cert(EVP_PKEY *key, const char *name)
{
	X509 *x = X509_new();
	X509_NAME *subj;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	uint8_t serial[16];
	BIGNUM *bn = NULL;
	char san[512];
	bool ok = false;

	if (x == NULL || pf_random(serial, sizeof(serial)) != PF_OK)
		goto out;
	serial[0] &= 0x7f;	/* positive */
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
	    X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL) ==
	    NULL || X509_set_pubkey(x, key) != 1)
		goto out;
	subj = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
	    (const unsigned char *)name, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, subj) != 1)
		goto out;
	/* Checkable by name with --cacert, too: the host name, localhost
	 * and the loopback addresses. */
	snprintf(san, sizeof(san), "DNS:%s,DNS:localhost,IP:127.0.0.1,"
	    "IP:::1", name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    san)) == NULL)
		goto out;
	ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	    "critical,CA:TRUE")) == NULL)
		goto out;
	ok = ok && X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
out:
	BN_free(bn);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

enum pf_status
pf_tls_ensure_self_signed(const char *dir, const char *name, bool *created,
    char *err, size_t errcap)
{
	char cert_path[4096], key_path[4096];
	enum pf_status rc = PF_EIO;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	BIO *kb = NULL, *cb = NULL;

	*created = false;
	snprintf(cert_path, sizeof(cert_path), "%s/%s", dir, PF_TLS_CERT_NAME);
	snprintf(key_path, sizeof(key_path), "%s/%s", dir, PF_TLS_KEY_NAME);
	if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0)
		return PF_OK;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errcap, "%s: %s", dir, strerror(errno));
		return PF_EIO;
	}
	if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (cert = make_cert(key, name)) == NULL ||
	    (kb = BIO_new(BIO_s_secmem())) == NULL ||
	    (cb = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_bio_X509(cb, cert) != 1) {
		tls_error(err, errcap, "cannot make a certificate");
		rc = PF_ENOMEM;
		goto out;
	}
	/* The key first: a certificate alone is never taken for a pair. */
	if (write_pem(key_path, kb) == -1 || write_pem(cert_path, cb) == -1) {
		snprintf(err, errcap, "%s: %s", dir, strerror(errno));
		goto out;
	}
	*created = true;
	rc = PF_OK;
out:
	BIO_free(kb);	/* cleared as it is freed */
	BIO_free(cb);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
