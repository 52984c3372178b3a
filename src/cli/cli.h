/* SPDX-License-Identifier: MIT */
/* Exit codes of paraflow(1) and their mapping from status codes. */
#ifndef PF_CLI_H
#define PF_CLI_H

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
	EXIT_SERVER = 8		/* server busy, full, or failed */
};

/* The exit code for a failed operation's status. */
int cli_exit_code(enum pf_status s);

#endif
