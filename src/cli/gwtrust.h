/* SPDX-License-Identifier: MIT */
/*
 * How the gateway commands trust an HTTPS gateway: the same --pin,
 * --cacert / --ca-system or known-servers entry as the native port, turned
 * into what libcurl checks. Main thread only.
 */
#ifndef PF_GWTRUST_H
#define PF_GWTRUST_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "tls.h"
#include "trust.h"

/* What libcurl is told to accept for one gateway URL. */
struct gwtrust {
	bool		 tls;		/* an https:// URL */
	/* The key the gateway must show; "": a CA checks it instead. */
	char		 pin[PF_TLS_PIN_LEN + 1];
	const char	*cacert;	/* the CA file; NULL: the system's */
};

/*
 * Settles out for url (which passed http_base_valid) under t (borrowed):
 * nothing to check for http://; for https://, the pin of --pin, or the CA
 * of --cacert / --ca-system (out->cacert borrows t's), or else, trust on
 * first use: a TLS handshake of our own with the gateway gives its pin,
 * which trust_check compares with (or records in) the known-servers file
 * under the gateway's host:port, saying so on stderr unless quiet. Waits
 * up to timeout_s for the handshake. PF_EAUTH when the gateway's key is
 * not the one recorded (err names both and the line to delete), PF_EUSAGE
 * for a bad --pin or CA file, PF_ENET / PF_ETIMEOUT / PF_EPROTO when no
 * TLS handshake could be made, with the reason in err (capacity errcap).
 */
enum pf_status gwtrust_resolve(const char *url, const struct cli_trust *t,
    unsigned timeout_s, bool quiet, struct gwtrust *out, char *err,
    size_t errcap);

#endif
