/* SPDX-License-Identifier: MIT */
/* Status codes shared by every module, and their wire numbers and names. */
#ifndef PF_STATUS_H
#define PF_STATUS_H

/*
 * The values from PF_EAUTH to PF_ETHROTTLED are the wire error codes of
 * docs/protocol.md and MUST NOT change. Values from 100 on are local only:
 * they never travel in an ERROR frame.
 */
enum pf_status {
	PF_OK = 0,
	PF_EAUTH = 1,		/* auth_failed */
	PF_EFORBIDDEN = 2,	/* forbidden_type */
	PF_EBADFRAME = 3,	/* bad_frame */
	PF_ETOOLARGE = 4,	/* too_large */
	PF_ENOSESSION = 5,	/* unknown_session */
	PF_ECHECKSUM = 6,	/* checksum_mismatch */
	PF_ENOSPC = 7,		/* storage_full */
	PF_EBUSY = 8,		/* busy */
	PF_EINTERNAL = 9,	/* internal */
	PF_EVERSION = 10,	/* unsupported_version */
	PF_EPROTO = 11,		/* protocol */
	PF_EBADNAME = 12,	/* bad_name */
	PF_ECANCELLED = 13,	/* cancelled */
	PF_EQUOTA = 14,		/* quota_exceeded */
	PF_ETHROTTLED = 15,	/* throttled: too many failed logins */

	PF_ENET = 100,		/* connection refused, reset or closed */
	PF_ETIMEOUT = 101,	/* peer too slow */
	PF_EIO = 102,		/* local file I/O */
	PF_ENOMEM = 103,
	PF_EUSAGE = 104,	/* bad command line */
	PF_EINTEGRITY = 105	/* retries exhausted, or receipt wrong */
};

#define PF_WIRE_MAX PF_ETHROTTLED

/* Stable snake_case name of a status ("auth_failed"); never NULL. */
const char *pf_status_name(enum pf_status s);

/* A short English description of a status; never NULL. */
const char *pf_status_message(enum pf_status s);

/* True if the status is one that may be sent in an ERROR frame. */
int pf_status_is_wire(int code);

/* Maps an errno value from a storage call to PF_ENOSPC or PF_EIO. */
enum pf_status pf_status_from_errno(int err);

#endif
