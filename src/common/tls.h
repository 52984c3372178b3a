/* SPDX-License-Identifier: MIT */
/*
 * TLS 1.3 for the native port (OpenSSL): the server's certificate, made on
 * first start when none is given; public-key pins in curl's format; and a
 * pf_conn upgraded in place, so protocol code never sees TLS.
 */
#ifndef PF_TLS_H
#define PF_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "status.h"

/* "sha256//" and the base64 of a SHA-256: 8 + 44 characters. */
#define PF_TLS_PIN_LEN		52
#define PF_TLS_EXPORTER_LEN	32	/* RFC 9266 tls-exporter bytes */
#define PF_TLS_CERT_NAME	"cert.pem"
#define PF_TLS_KEY_NAME		"key.pem"

/* How a client decides that the server is the one it meant. */
enum pf_tls_verify {
	PF_TLS_VERIFY_PIN,	/* the caller checks the pin after connect */
	PF_TLS_VERIFY_CA	/* a CA file or the system store, host name */
};

struct pf_tls;

/*
 * A server context from PEM files (the certificate file may hold a
 * chain). PF_EUSAGE with a message in err (capacity errcap) if they do
 * not load or do not match.
 */
enum pf_status pf_tls_server_new(const char *cert_file, const char *key_file,
    struct pf_tls **out, char *err, size_t errcap);

/*
 * A client context. With PF_TLS_VERIFY_CA, cafile names the trusted CAs
 * (NULL: the system store) and the name given to pf_tls_connect must be in
 * the certificate; with PF_TLS_VERIFY_PIN anything is accepted by the
 * handshake and the caller compares pf_conn_tls_pin with what it trusts
 * before it sends a byte. The context keeps the newest session ticket, so
 * later connections resume instead of doing a full handshake.
 */
enum pf_status pf_tls_client_new(enum pf_tls_verify verify, const char *cafile,
    struct pf_tls **out, char *err, size_t errcap);

/* Frees t; connections made with it stay valid. NULL is a no-op. */
void pf_tls_free(struct pf_tls *t);

/*
 * Makes dir/cert.pem and dir/key.pem (mode 0600, dir made 0700 if
 * missing) with a new ECDSA P-256 key and a self-signed certificate for
 * name, unless both exist already. *created says whether it made them.
 */
enum pf_status pf_tls_ensure_self_signed(const char *dir, const char *name,
    bool *created, char *err, size_t errcap);

/* The pin of the first certificate in a PEM file, into pin. */
enum pf_status pf_tls_pin_of_file(const char *cert_file,
    char pin[PF_TLS_PIN_LEN + 1]);

/*
 * Server side: runs the handshake on c (a TCP connection) within c's
 * timeout, then switches c to TLS. *resumed says whether the client
 * resumed a session. On failure c is unchanged (and should be closed);
 * err says why.
 */
enum pf_status pf_tls_accept(struct pf_tls *t, struct pf_conn *c,
    bool *resumed, char *err, size_t errcap);

/*
 * Client side: the same, offering the context's newest session ticket.
 * host is sent as SNI when it is a name, and checked against the
 * certificate with PF_TLS_VERIFY_CA. PF_EVERSION if the server answers
 * with a plaintext frame (it runs without TLS, or refused the connection
 * before TLS): that frame is left unread on c, which is still plaintext,
 * for the caller to read. PF_EAUTH if the certificate fails the CA check;
 * PF_ENET for other failures (the server gone, bytes damaged on the way).
 */
enum pf_status pf_tls_connect(struct pf_tls *t, struct pf_conn *c,
    const char *host, bool *resumed, char *err, size_t errcap);

/* True if c runs over TLS. */
bool pf_conn_is_tls(const struct pf_conn *c);

/* The pin of the peer's certificate; PF_EPROTO if c has none. */
enum pf_status pf_conn_tls_pin(const struct pf_conn *c,
    char pin[PF_TLS_PIN_LEN + 1]);

/* RFC 9266 tls-exporter channel binding of c; PF_EPROTO without TLS. */
enum pf_status pf_conn_tls_exporter(const struct pf_conn *c,
    uint8_t out[PF_TLS_EXPORTER_LEN]);

/* "kTLS" when the kernel encrypts c's writes, else "OpenSSL". */
const char *pf_conn_tls_engine(const struct pf_conn *c);

/*
 * True if the first bytes waiting on fd (peeked, not read) start a TLS
 * handshake record rather than a plaintext frame; waits up to ms.
 * PF_ETIMEOUT or PF_ENET if nothing arrives.
 */
enum pf_status pf_tls_sniff(int fd, unsigned ms, bool *is_tls);

#endif
