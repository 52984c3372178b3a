/* SPDX-License-Identifier: MIT */
/*
 * Frame I/O over a struct pf_conn, shared by the server and the client:
 * headers, JSON payloads, ERROR frames, and the binary CHUNK head and
 * ACK/NACK. A connection is used by one thread at a time; every function
 * here may be called from any thread that holds the connection.
 */
#ifndef PF_WIRE_H
#define PF_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "net.h"
#include "proto.h"
#include "status.h"

/* Sends one frame: header plus n bytes of payload (p may be NULL if n 0). */
enum pf_status wire_send(struct pf_conn *c, int type, const void *p, size_t n);

/* Sends j (borrowed) as the JSON payload of a frame. */
enum pf_status wire_send_json(struct pf_conn *c, int type, const json_t *j);

/* Sends an ERROR frame for code with a printf-style human message. */
enum pf_status wire_send_error(struct pf_conn *c, enum pf_status code,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads and validates one frame header (not its length; see proto.h). */
enum pf_status wire_recv_header(struct pf_conn *c, struct proto_header *h);

/*
 * Reads the h->length bytes of payload and parses them as a JSON object
 * into *out (new reference). The length MUST have been checked against a
 * cap already. PF_EBADFRAME if it is not a JSON object, PF_ETOOLARGE if
 * it holds an integer past 2^63 - 1.
 */
enum pf_status wire_recv_json(struct pf_conn *c, const struct proto_header *h,
    json_t **out);

/*
 * Client side: reads one frame and expects it to be of type want with a
 * JSON payload (*out, new reference; pass NULL to discard it). An ERROR
 * frame returns its code and copies its message into err (capacity
 * errcap); a frame of another type returns PF_EPROTO.
 */
enum pf_status wire_expect_json(struct pf_conn *c, int want, json_t **out,
    char *err, size_t errcap);

/* Like wire_expect_json, taking a frame of type want or or; *got says which. */
enum pf_status wire_expect_either(struct pf_conn *c, int want, int or,
    int *got, json_t **out, char *err, size_t errcap);

/*
 * Client side: like wire_expect_json for ACK or NACK; *type gets which,
 * *index the chunk index.
 */
enum pf_status wire_expect_ack(struct pf_conn *c, int *type, uint64_t *index,
    char *err, size_t errcap);

/*
 * Client side: sends the frame header of a CHUNK frame and the 20-byte
 * chunk head ch (borrowed) in one write. The ch->length bytes of data and
 * the PROTO_CHUNK_TRAILER_LEN-byte digest MUST follow on c, in that order,
 * before any other frame. PF_ENET or PF_ETIMEOUT if the write fails.
 */
enum pf_status wire_send_chunk_head(struct pf_conn *c,
    const struct proto_chunk_head *ch);

/*
 * Server side: after wire_recv_header returned a CHUNK header h whose
 * length passed proto_check_length, reads the chunk head into *ch and
 * checks it against the session's file of size bytes in chunk_size pieces
 * (proto_check_chunk) and h->length against head + ch->length + trailer.
 * A read error returns its status (PF_ENET, PF_ETIMEOUT), a head that does
 * not fit PF_EBADFRAME; *ch is filled in either case once read. The data
 * and the trailer are left on c for the caller.
 */
enum pf_status wire_recv_chunk_head(struct pf_conn *c,
    const struct proto_header *h, uint64_t size, uint32_t chunk_size,
    struct proto_chunk_head *ch);

/*
 * Server side: sends an ACK or a NACK (type PROTO_ACK or PROTO_NACK) for
 * chunk index. PF_ENET or PF_ETIMEOUT if the write fails.
 */
enum pf_status wire_send_ack(struct pf_conn *c, int type, uint64_t index);

/* Borrowed string member key of obj, or NULL; *len gets its length. */
const char *wire_json_str(const json_t *obj, const char *key, size_t *len);

/* Non-negative integer member key of obj: 0, or -1 if missing or wrong. */
int wire_json_u64(const json_t *obj, const char *key, uint64_t *v);

#endif
