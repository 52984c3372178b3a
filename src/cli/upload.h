/* SPDX-License-Identifier: MIT */
/* The native-protocol sender behind "paraflow upload". */
#ifndef PF_UPLOAD_H
#define PF_UPLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "autotune.h"
#include "digest.h"
#include "proto.h"
#include "status.h"
#include "trust.h"

struct folder_check;
struct tree;

struct upload_opts {
	const char	*file;		/* with tree: its first path */
	const char	*name;		/* name to store; NULL: file's base;
					   a transfer's label with tree */
	struct tree	*tree;		/* a transfer's files, or NULL */
	const char	*host;
	unsigned	 port;
	const char	*user;
	const char	*secret;	/* borrowed; the caller wipes it */
	unsigned	 threads;	/* data connections; 0: auto */
	unsigned	 max_threads;	/* auto's cap */
	uint64_t	 limit_rate;	/* bytes/s for all; 0: none */
	uint32_t	 chunk_size;	/* 0: the server's choice (upload.c) */
	unsigned	 retries;	/* per chunk, after a NACK */
	unsigned	 timeout_ms;	/* per network operation */
	unsigned	 give_up_s;	/* retry until no ACK for this long */
	bool		 no_resume;	/* ignore, replace the state file */
	bool		 progress;
	bool		 quiet;		/* no note of a server's first key */
	const struct cli_trust *trust;	/* how to trust the server */
	struct pf_tls	*tls;		/* NULL with --no-tls; borrowed,
					   shared by every connection */
};

/* Changes of stream count an upload keeps for its result. */
#define UPLOAD_MAX_CHANGES	64

struct upload_result {
	enum pf_status	 status;
	char		 message[1024];	/* why it failed, for people */
	char		 session[PROTO_ID_LEN + 1];
	char		 name[PROTO_MAX_NAME + 1];	/* as stored */
	uint64_t	 bytes;
	uint32_t	 chunks;
	uint32_t	 chunk_size;	/* what the chunks were cut to */
	char		 digest[PF_SHA256_HEX];		/* the receipt */
	double		 seconds;
	unsigned	 retries;	/* chunks sent again after a NACK */
	uint32_t	 resumed_chunks; /* held by the server, not sent */
	unsigned	 reconnects;	/* data connections lost and made
					   again, and logins made again */
	uint64_t	 bytes_sent;	/* chunk data written to sockets */
	/* The data connections: how many, and how auto changed them. */
	unsigned	 streams_max;	/* the most at once */
	unsigned	 streams_final;	/* where auto settled */
	unsigned	 server_cap;	/* the server's limit; 0: not told */
	unsigned	 busy;		/* data connections refused busy */
	unsigned	 nchanges;	/* in changes[], oldest first */
	unsigned	 changes_dropped; /* later ones not kept */
	struct autotune_event changes[UPLOAD_MAX_CHANGES];
	json_t		*files;		/* a transfer's, from COMPLETE; the
					   caller json_decrefs it */
	struct folder_check *check;	/* a transfer's files as they are
					   now, made during COMMIT; the
					   caller frees it (folder.h) */
};

/*
 * Uploads o->file and fills r. Returns r->status: PF_OK, or the first
 * error met (r->message says what happened).
 *
 * Resumable: the server session is recorded in a state file (state.h), and
 * a later run with the same file, server, user, chunk size and name sends
 * only the chunks the server does not hold yet. Once the upload is under
 * way, lost connections are made again, with backoff, until no chunk has
 * been acknowledged for o->give_up_s seconds. Call from one thread.
 */
enum pf_status upload_run(const struct upload_opts *o,
    struct upload_result *r);

#endif
