/* SPDX-License-Identifier: MIT */
/*
 * The native wire format of docs/protocol.md: frame headers, chunk heads,
 * limits, chunk digests and the receipt. Pure functions: no I/O here.
 */
#ifndef PF_PROTO_H
#define PF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "status.h"

#define PROTO_MAGIC		"PFLW"
#define PROTO_VERSION		1
#define PROTO_HEADER_LEN	16
#define PROTO_CHUNK_HEAD_LEN	20	/* index, offset, length */
#define PROTO_CHUNK_TRAILER_LEN	PF_SHA256_LEN
#define PROTO_MAX_JSON_PREAUTH	4096
#define PROTO_MAX_JSON		65536
#define PROTO_MAX_OPENED	(256u * 1024)	/* holds a chunk bitmap */
#define PROTO_MIN_CHUNK		(64u * 1024)
#define PROTO_MAX_CHUNK		(64u * 1024 * 1024)
#define PROTO_DEFAULT_CHUNK	(4u * 1024 * 1024)
#define PROTO_MAX_CHUNKS	(1u << 20)
#define PROTO_DEFAULT_PORT	7878
#define PROTO_ID_LEN		36	/* a session id: canonical UUID text */
#define PROTO_MAX_NAME		255	/* bytes of a stored name (NAME_MAX) */
#define PROTO_HEAD_LEN		512	/* bytes of content sent in OPEN */
#define PROTO_MAX_OPEN		(8u * 1024 * 1024)	/* OPEN of a transfer */
#define PROTO_MAX_COMPLETE	(32u * 1024 * 1024)	/* its COMPLETE */
#define PROTO_MAX_FILES		100000	/* entries in a transfer */
#define PROTO_MAX_PATH		1024	/* bytes of a stored relative path */
#define PROTO_MAX_DEPTH		64	/* components in such a path */
#define PROTO_MAX_AMENDS	64	/* amended resumes of a transfer */
#define PROTO_MAX_USER		64	/* bytes in a user name */

enum proto_type {
	PROTO_HELLO = 1,
	PROTO_AUTH,
	PROTO_CHALLENGE,
	PROTO_PROOF,
	PROTO_AUTH_OK,
	PROTO_OPEN,
	PROTO_OPENED,
	PROTO_JOIN,
	PROTO_JOINED,
	PROTO_CHUNK,
	PROTO_ACK,
	PROTO_NACK,
	PROTO_COMMIT,
	PROTO_COMPLETE,
	PROTO_ABORT,
	PROTO_ERROR,
	PROTO_TYPE_MAX = PROTO_ERROR
};

struct proto_header {
	uint8_t		version;
	uint8_t		type;
	uint16_t	flags;
	uint32_t	length;
};

struct proto_chunk_head {
	uint64_t	index;
	uint64_t	offset;
	uint32_t	length;
};

/*
 * True if id is a session id as the server makes them: the canonical text
 * of a UUID (36 characters, '-' at 8, 13, 18 and 23, hex digits of either
 * case elsewhere). Any thread.
 */
bool proto_id_valid(const char *id);

/*
 * Lowers the hex digits of id, a valid one: a UUID is read in either
 * case and written (and stored) in lower case (RFC 9562).
 */
void proto_id_lower(char *id);

/*
 * True if name is a valid user name: 1..PROTO_MAX_USER bytes of
 * [A-Za-z0-9._@+-]. Restricting the alphabet makes SASLprep the identity
 * and keeps names safe in logs, files and JSON. Any thread.
 */
bool proto_user_valid(const char *name);

/* True if a client may send frames of this type. */
bool proto_from_client(int type);

/* Name of a frame type for logs ("CHUNK"); never NULL. */
const char *proto_type_name(int type);

/* Encodes h into out, filling magic and check. */
void proto_encode_header(const struct proto_header *h,
    uint8_t out[PROTO_HEADER_LEN]);

/*
 * Decodes and validates a received header: magic, check, version, flags,
 * type. PF_EBADFRAME on damage, PF_EVERSION on another version. The length
 * is NOT checked here; use proto_check_length in the receiver's state.
 */
enum pf_status proto_decode_header(const uint8_t in[PROTO_HEADER_LEN],
    struct proto_header *h);

/*
 * Checks a header's length against the cap for its type. authed selects
 * the pre- or post-login JSON cap; chunk_size is the session's chunk size
 * (0 when no session is joined, which refuses CHUNK). PF_ETOOLARGE or
 * PF_EBADFRAME.
 */
enum pf_status proto_check_length(const struct proto_header *h, bool authed,
    uint32_t chunk_size);

void proto_encode_chunk_head(const struct proto_chunk_head *c,
    uint8_t out[PROTO_CHUNK_HEAD_LEN]);
void proto_decode_chunk_head(const uint8_t in[PROTO_CHUNK_HEAD_LEN],
    struct proto_chunk_head *c);

/* True if chunk_size is a power of two from PROTO_MIN_CHUNK to _MAX_CHUNK. */
bool proto_chunk_size_valid(uint64_t chunk_size);

/*
 * Number of chunks of a file: ceil(size / chunk_size). PF_ETOOLARGE if it
 * exceeds PROTO_MAX_CHUNKS. chunk_size must be valid.
 */
enum pf_status proto_chunk_count(uint64_t size, uint32_t chunk_size,
    uint32_t *count);

/*
 * Checks that c describes chunk c->index of a file of size bytes cut in
 * chunk_size pieces: index < count, offset == index * chunk_size, length
 * == the chunk's real length. PF_EBADFRAME otherwise. No overflow is
 * possible: count <= 2^20 and chunk_size <= 2^26.
 */
enum pf_status proto_check_chunk(const struct proto_chunk_head *c,
    uint64_t size, uint32_t chunk_size);

/* Length of chunk index in a file of size bytes. index must be valid. */
uint32_t proto_chunk_length(uint64_t size, uint32_t chunk_size,
    uint64_t index);

/*
 * Starts a chunk digest: h is (re)initialized and fed "PFC1" and the
 * encoded head. Feed the data with pf_sha256_update, then pf_sha256_final.
 */
enum pf_status proto_chunk_digest_begin(struct pf_sha256 *h,
    const struct proto_chunk_head *c);

/*
 * The receipt of a file: SHA-256("PFR1" || u64 size || u32 chunk_size ||
 * digests[0..count)). digests holds count * 32 bytes.
 */
enum pf_status proto_receipt(uint64_t size, uint32_t chunk_size,
    const uint8_t *digests, uint32_t count, uint8_t out[PF_SHA256_LEN]);

/* Big-endian helpers. */
void proto_put_u64(uint8_t *p, uint64_t v);
uint64_t proto_get_u64(const uint8_t *p);
void proto_put_u32(uint8_t *p, uint32_t v);
uint32_t proto_get_u32(const uint8_t *p);

#endif
