/* SPDX-License-Identifier: MIT */
/* What every subcommand shares: exit codes and the login options. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "digest.h"
#include "proto.h"
#include "scram.h"

int
cli_exit_code(enum pf_status s)
{
	switch (s) {
	case PF_OK:
		return EXIT_OK;
	case PF_EAUTH:
	case PF_ETHROTTLED:	/* wrong passwords before; not retried */
		return EXIT_AUTH;
	case PF_EFORBIDDEN:
	case PF_EBADNAME:
	case PF_ETOOLARGE:
		return EXIT_REFUSED;
	case PF_ENET:
	case PF_ETIMEOUT:
		return EXIT_NETWORK;
	case PF_ECHECKSUM:
	case PF_EINTEGRITY:
		return EXIT_INTEGRITY;
	case PF_EIO:
		return EXIT_LOCAL_IO;
	case PF_EUSAGE:
		return EXIT_USAGE;
	case PF_ENOSPC:
	case PF_EQUOTA:
	case PF_EBUSY:
	case PF_EINTERNAL:
	case PF_ENOSESSION:
	case PF_ECANCELLED:
	case PF_EPROTO:
	case PF_EBADFRAME:
	case PF_EVERSION:
		return EXIT_SERVER;
	default:
		return EXIT_ERROR;
	}
}

static const char *
resolve_user(const char *user)
{
	if (user == NULL) {
		user = getenv("PARAFLOW_USER");
		if (user == NULL || *user == '\0')
			user = SCRAM_DEFAULT_USER;
	}
	if (!proto_user_valid(user))
		pf_usage_error("bad user name '%s'", user);
	return user;
}

static void
resolve_secret(const char *arg, const char *file, char *buf, size_t cap)
{
	const char *env = getenv("PARAFLOW_SECRET");

	if (arg != NULL)
		snprintf(buf, cap, "%s", arg);
	else if (file != NULL) {
		if (pf_read_secret_file(file, buf, cap) != PF_OK)
			pf_usage_error("cannot read a password from '%s'",
			    file);
	} else if (env != NULL && *env != '\0')
		snprintf(buf, cap, "%s", env);
	else
		snprintf(buf, cap, "%s", SCRAM_DEFAULT_PASSWORD);
}

bool
cli_login_option(struct cli_login *l, int ch, const char *arg)
{
	switch (ch) {
	case 'u':
		l->user = arg;
		return true;
	case 's':
		l->secret_arg = arg;
		return true;
	case 'S':
		l->secret_file = arg;
		return true;
	case CLI_OPT_NO_TLS:
		l->trust.no_tls = true;
		return true;
	case CLI_OPT_PIN:
		l->trust.pin = arg;
		return true;
	case CLI_OPT_CACERT:
		l->trust.cacert = arg;
		return true;
	case CLI_OPT_CA_SYSTEM:
		l->trust.ca_system = true;
		return true;
	default:
		return false;
	}
}

void
cli_login_resolve(struct cli_login *l)
{
	l->user = resolve_user(l->user);
	resolve_secret(l->secret_arg, l->secret_file, l->secret,
	    sizeof(l->secret));
}

void
cli_login_wipe(struct cli_login *l)
{
	pf_wipe(l->secret, sizeof(l->secret));
}
