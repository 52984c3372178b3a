/* SPDX-License-Identifier: MIT */
/*
 * The client side of each exchange of the native protocol (HELLO, login,
 * OPEN, JOIN, COMMIT, ABORT) on one connection: no threads, no retries;
 * upload.c decides what to do when one fails. Any thread may call these
 * on a connection it owns.
 */
#ifndef PF_CLIENT_H
#define PF_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "digest.h"
#include "net.h"
#include "proto.h"
#include "scram.h"
#include "status.h"

/* What OPEN asks for. Every field is borrowed. */
struct client_open_req {
	const struct chunk_src *src;	/* the file(s), to read the head */
	uint64_t	 size;
	uint32_t	 chunk_size;
	uint32_t	 chunks;	/* what OPENED must report */
	const char	*name;
	const char	*resume;	/* session id to resume, or NULL */
	const char	*files;		/* a transfer's manifest (its JSON
					   array's text), or NULL */
	size_t		 nfiles;	/* its entries */
	bool		 amend;		/* resume with another manifest */
	bool		 pieces;	/* ask for chunks hashed in pieces */
};

/* How long an ABORT waits for the server to confirm it by closing. */
#define ABORT_WAIT_MS	10000

/* What a server's HELLO offers beyond one file per OPEN. */
#define CLIENT_FEATURE_TRANSFER	0x1u
/* ... and a transfer's files at explicit offsets, amended on resume. */
#define CLIENT_FEATURE_AMEND	0x2u
/* ... and a transfer's chunks hashed in pieces (PFC2). */
#define CLIENT_FEATURE_PIECES	0x4u

/* What OPENED answered. */
struct client_opened {
	char		 session[PROTO_ID_LEN + 1];
	char		 name[PROTO_MAX_NAME + 1];	/* as stored */
	bool		 resumed;
	uint8_t		*have;		/* ceil(chunks / 8) bytes, owned */
	bool		 complete;	/* the resumed session had finished */
	char		 digest[PF_SHA256_HEX];	/* its receipt, if so */
	json_t		*files;		/* and a transfer's files; owned */
	unsigned	 files_refused;	/* a transfer's, refused at OPEN */
	bool		 pieces;	/* a transfer's chunks are hashed in
					   pieces (PFC2), its receipt too */
	/* The server's connection limits; an older server tells none. */
	bool		 limits;
	unsigned	 user_conns;	/* a user may hold at once */
	unsigned	 user_conns_used; /* held, this login's included */
	unsigned	 conns;		/* the server holds at once */
	unsigned	 ip_logins;	/* logging in from one address;
					   0: not told */
};

/*
 * Reads HELLO, checks the protocol version and returns the nonce. On a
 * TLS connection the server must offer SCRAM-SHA-256-PLUS, else PF_EAUTH
 * (a downgrade). Server errors: the ERROR code, its message in err
 * (capacity errcap).
 */
/* What a server's HELLO offers beyond the login. */
struct client_offer {
	unsigned	features;	/* CLIENT_FEATURE_*; none if unsaid */
	uint32_t	min_chunk;	/* the smallest chunk size it takes;
					   0 if unsaid (an older server) */
};

/* client_hello that also tells, in *offer, what the server offers. */
enum pf_status client_hello_offer(struct pf_conn *c,
    uint8_t nonce[SCRAM_NONCE_LEN], struct client_offer *offer, char *err,
    size_t errcap);

enum pf_status client_hello(struct pf_conn *c,
    uint8_t nonce[SCRAM_NONCE_LEN], char *err, size_t errcap);

/*
 * Logs in with SCRAM-SHA-256 (SCRAM-SHA-256-PLUS bound to the connection's
 * tls-exporter when c is TLS) and checks the server's signature; key
 * receives the session key K. PF_EAUTH if the server cannot prove that it
 * holds the user's verifier, or is not at the other end of our TLS
 * channel; network errors and busy come back as such.
 */
enum pf_status client_login(struct pf_conn *c, const char *user,
    const char *secret, uint8_t key[PF_SHA256_LEN], char *err,
    size_t errcap);

/*
 * Sends OPEN (with "resume" if rq->resume is set) and reads OPENED into
 * out; free out->have with client_opened_clear. A "have" bitmap that is
 * missing reads as all zero; one of the wrong length, or with bits set
 * past the last chunk, is PF_EPROTO. PF_EBADNAME if the name is not
 * UTF-8, PF_EIO if the head cannot be read. A resumed session that had
 * finished already answers COMPLETE instead: out->complete is set and
 * out->digest holds the receipt the server stored. out->limits says
 * whether OPENED told the server's connection limits (an older server
 * does not). rq->files makes it the OPEN of a transfer; a COMPLETE then
 * brings the files' list in out->files.
 */
enum pf_status client_open(struct pf_conn *c, const struct client_open_req *rq,
    struct client_opened *out, char *err, size_t errcap);

/* Frees what client_open allocated in o; safe on a zeroed o. */
void client_opened_clear(struct client_opened *o);

/*
 * Reads HELLO and joins session with a proof made with key (and bound to
 * c's own tls-exporter value when c is TLS).
 */
enum pf_status client_join(struct pf_conn *c, const uint8_t key[PF_SHA256_LEN],
    const char *session, char *err, size_t errcap);

/*
 * Sends COMMIT with the receipt (hex) and waits up to timeout_ms for
 * COMPLETE. PF_EINTEGRITY if the server reports another receipt. With
 * files not NULL, *files is the COMPLETE's list of a transfer's files (a
 * new reference, or NULL), asked for short (path, state, reason, digest
 * of each; an older server sends them all).
 */
enum pf_status client_commit(struct pf_conn *c, const char *receipt,
    unsigned timeout_ms, json_t **files, char *err, size_t errcap);

/*
 * Sends ABORT, which makes the server delete the session's staging area,
 * and waits up to ABORT_WAIT_MS for the server to close the connection
 * when it has (PF_ETIMEOUT if it did not).
 */
enum pf_status client_abort(struct pf_conn *c);

#endif
