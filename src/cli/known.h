/* SPDX-License-Identifier: MIT */
/*
 * Trust on first use, as ssh does: the known-servers file in the client's
 * state directory maps host:port to the public-key pin the server showed
 * the first time.
 */
#ifndef PF_KNOWN_H
#define PF_KNOWN_H

#include <stddef.h>

#include "status.h"
#include "tls.h"

#define KNOWN_FILE_NAME	"known_servers"

enum known_verdict {
	KNOWN_MATCH,		/* recorded, with this pin */
	KNOWN_NEW,		/* not recorded: now it is */
	KNOWN_MISMATCH		/* recorded with another pin: refuse */
};

/*
 * Looks up host:port in file and compares its pin with pin. Unknown, it
 * records the pair (creating file, mode 0600, in a directory that MUST
 * exist) and
 * says KNOWN_NEW. On KNOWN_MISMATCH, old gets the recorded pin and *line
 * the line to delete to accept the new one. PF_EIO if the file cannot be
 * read or written.
 */
enum pf_status known_check(const char *file, const char *host, unsigned port,
    const char *pin, enum known_verdict *verdict,
    char old[PF_TLS_PIN_LEN + 1], unsigned *line);

/* The key of host:port in the file: "host:port", "[v6]:port". */
void known_key(const char *host, unsigned port, char *out, size_t cap);

#endif
