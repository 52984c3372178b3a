/* SPDX-License-Identifier: MIT */
/*
 * What every paraflow(1) subcommand shares: the exit code a failure
 * gives, and the login options (-u, -s, --secret-file). Main thread only.
 */
#ifndef PF_CLI_H
#define PF_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "scram.h"
#include "status.h"
#include "trust.h"

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
	EXIT_NOT_READY = 10,	/* gateway: session not finished (409) */
	EXIT_PARTIAL = 11	/* transfer: some files refused or changed */
};

/* The exit code for a failed operation's status. */
int cli_exit_code(enum pf_status s);

/* Option values of the login's long-only options. */
enum {
	CLI_OPT_NO_TLS = 0x1000,
	CLI_OPT_PIN,
	CLI_OPT_CACERT,
	CLI_OPT_CA_SYSTEM
};

/*
 * The long options of the login and of the server's trust, for a
 * subcommand's option table.
 */
#define CLI_LOGIN_OPTIONS \
	{ "user", required_argument, NULL, 'u' }, \
	{ "secret", required_argument, NULL, 's' }, \
	{ "secret-file", required_argument, NULL, 'S' }, \
	{ "no-tls", no_argument, NULL, CLI_OPT_NO_TLS }, \
	{ "pin", required_argument, NULL, CLI_OPT_PIN }, \
	{ "cacert", required_argument, NULL, CLI_OPT_CACERT }, \
	{ "ca-system", no_argument, NULL, CLI_OPT_CA_SYSTEM }

/* The short options of the login, for a subcommand's getopt string. */
#define CLI_LOGIN_SHORT	"u:s:"

/*
 * The login a subcommand was given. Zero it, feed it every option with
 * cli_login_option, then call cli_login_resolve once; wipe it with
 * cli_login_wipe when done. The strings point into argv or the
 * environment; secret is the password itself.
 */
struct cli_login {
	const char	*user;
	const char	*secret_arg;	/* -s */
	const char	*secret_file;	/* --secret-file */
	char		 secret[SCRAM_MAX_PASSWORD + 1];
	struct cli_trust trust;		/* --no-tls, --pin, --cacert... */
};

/*
 * Takes option ch (a getopt_long result) with its argument arg if it is
 * one of the login's: true then, false for any other option.
 */
bool cli_login_option(struct cli_login *l, int ch, const char *arg);

/*
 * Settles the login: the user as given, else $PARAFLOW_USER, else the
 * seed default; the password from -s, else the first line of
 * --secret-file, else $PARAFLOW_SECRET, else the seed default. Exits with
 * a usage error (status 2) if the user name is not valid or the secret
 * file cannot be read.
 */
void cli_login_resolve(struct cli_login *l);

/* Wipes the password. */
void cli_login_wipe(struct cli_login *l);

#endif
