/* SPDX-License-Identifier: MIT */
/*
 * How paraflow decides that a server is the one it meant: a pin given on
 * the command line, a CA (a file, or the system's) with the host name
 * checked, or else trust on first use through the known-servers file.
 */
#ifndef PF_TRUST_H
#define PF_TRUST_H

#include <stdbool.h>
#include <stddef.h>

#include "net.h"
#include "status.h"
#include "tls.h"

/* What the command line says; zero means TLS with trust on first use. */
struct cli_trust {
	bool		 no_tls;	/* --no-tls: the plaintext protocol */
	const char	*pin;		/* --pin sha256//... */
	const char	*cacert;	/* --cacert FILE */
	bool		 ca_system;	/* --ca-system */
};

/*
 * The TLS client context for t (NULL in *out with --no-tls). PF_EUSAGE
 * with a message in err if the CA file cannot be read or --pin is not a
 * pin.
 */
enum pf_status trust_context(const struct cli_trust *t, struct pf_tls **out,
    char *err, size_t errcap);

/*
 * After the handshake of c with host:port, before a byte is sent: checks
 * the server's key against --pin, or against the known-servers file
 * (recording it on first use and saying so on stderr unless quiet). A CA
 * was checked by the handshake already. PF_EAUTH with a message naming
 * both keys (and the line to delete) if it is not the one trusted.
 * Any thread.
 */
enum pf_status trust_check(const struct cli_trust *t, const struct pf_conn *c,
    const char *host, unsigned port, bool quiet, char *err, size_t errcap);

/*
 * Opens a connection to host:port ready for the protocol: TCP within
 * timeout_ms (also set as its timeout), then, unless t says --no-tls, the
 * TLS handshake with tls and trust_check, before a byte of the protocol
 * is sent. tls is borrowed and may be shared by every connection of an
 * upload: the later ones resume the first one's session. *out is a new
 * connection for the caller to free. Fails with the message in err:
 * PF_EAUTH if the server is not the one trusted (quiet as for
 * trust_check), PF_EPROTO if it speaks plaintext, or the code of the
 * ERROR frame it refused the connection with (busy). Any thread.
 */
enum pf_status trust_connect(const struct cli_trust *t, struct pf_tls *tls,
    const char *host, unsigned port, unsigned timeout_ms, bool quiet,
    struct pf_conn **out, char *err, size_t errcap);

#endif
