/* SPDX-License-Identifier: MIT */
/* Exit codes of paraflow(1), and the login options its commands share. */
#ifndef PF_CLI_H
#define PF_CLI_H

#include <stddef.h>

#include "status.h"

/* Documented in paraflow --help and README.md; MUST NOT change. */
enum cli_exit {
	EXIT_OK = 0,
	EXIT_ERROR = 1,		/* anything not listed below */
	EXIT_USAGE = 2,		/* bad command line */
	EXIT_AUTH = 3,		/* login refused, or server not genuine */
	EXIT_REFUSED = 4,	/* file refused: type, name or size */
	EXIT_NETWORK = 5,	/* cannot connect, connection lost, timeout */
	EXIT_INTEGRITY = 6,	/* chunk retries exhausted, receipt mismatch */
	EXIT_LOCAL_IO = 7,	/* the local file cannot be read or written */
	EXIT_SERVER = 8,	/* server busy, full, or failed */
	EXIT_NOT_FOUND = 9,	/* gateway: no such session (HTTP 404) */
	EXIT_NOT_READY = 10	/* gateway: session not finished (409) */
};

/* The exit code for a failed operation's status. */
int cli_exit_code(enum pf_status s);

/*
 * The user for a login: user if given, else $PARAFLOW_USER, else the
 * seed default. Exits with a usage error if the name is not valid.
 */
const char *cli_resolve_user(const char *user);

/*
 * Picks the password into buf (capacity cap): arg (--secret), else the
 * first line of file (--secret-file), else $PARAFLOW_SECRET, else the seed
 * default. Exits with a usage error if file cannot be read. The caller
 * wipes buf.
 */
void cli_resolve_secret(const char *arg, const char *file, char *buf,
    size_t cap);

#endif
