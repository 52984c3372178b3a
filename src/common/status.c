/* SPDX-License-Identifier: MIT */
/* Names and messages of the status codes. */
#include "config.h"

#include <errno.h>
#include <stddef.h>

#include "status.h"

static const struct {
	enum pf_status	 status;
	const char	*name;
	const char	*message;
} table[] = {
	{ PF_OK, "ok", "success" },
	{ PF_EAUTH, "auth_failed", "authentication failed" },
	{ PF_EFORBIDDEN, "forbidden_type", "executable files are refused" },
	{ PF_EBADFRAME, "bad_frame", "malformed frame" },
	{ PF_ETOOLARGE, "too_large", "size over the server's limit" },
	{ PF_ENOSESSION, "unknown_session", "unknown or expired session" },
	{ PF_ECHECKSUM, "checksum_mismatch", "checksum mismatch" },
	{ PF_ENOSPC, "storage_full", "no space left on the server" },
	{ PF_EBUSY, "busy", "server busy, try again later" },
	{ PF_EINTERNAL, "internal", "internal server error" },
	{ PF_EVERSION, "unsupported_version", "unsupported protocol version" },
	{ PF_EPROTO, "protocol", "unexpected frame" },
	{ PF_EBADNAME, "bad_name", "file name cannot be stored" },
	{ PF_ECANCELLED, "cancelled", "session cancelled" },
	{ PF_EQUOTA, "quota_exceeded", "over the user's share of the server" },
	{ PF_ETHROTTLED, "throttled", "too many failed logins; try later" },
	{ PF_ENET, "network", "network failure" },
	{ PF_ETIMEOUT, "timeout", "timed out" },
	{ PF_EIO, "io", "local I/O error" },
	{ PF_ENOMEM, "no_memory", "out of memory" },
	{ PF_EUSAGE, "usage", "bad usage" },
	{ PF_EINTEGRITY, "integrity", "data could not be verified" },
};

static int
find(enum pf_status s)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].status == s)
			return (int)i;
	return -1;
}

const char *
pf_status_name(enum pf_status s)
{
	int i = find(s);

	return i < 0 ? "unknown" : table[i].name;
}

const char *
pf_status_message(enum pf_status s)
{
	int i = find(s);

	return i < 0 ? "unknown error" : table[i].message;
}

int
pf_status_is_wire(int code)
{
	return code >= PF_EAUTH && code <= PF_WIRE_MAX;
}

enum pf_status
pf_status_from_errno(int err)
{
	switch (err) {
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return PF_ENOSPC;
	case ENOMEM:
		return PF_ENOMEM;
	default:
		return PF_EIO;
	}
}
