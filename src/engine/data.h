/* SPDX-License-Identifier: MIT */
/*
 * The frames of a data connection. Each handler answers its frame and
 * returns PF_OK to go on or a status that ends the connection. The
 * connection's thread only.
 */
#ifndef PF_DATA_H
#define PF_DATA_H

#include <jansson.h>

#include "proto.h"
#include "status.h"

struct stream;

/* JOIN: the data connection's proof for a session; answers JOINED. */
enum pf_status data_on_join(struct stream *st, const json_t *req);

/*
 * CHUNK with header h: streams the chunk to the staging file, hashing
 * it, and answers ACK once it is durable, or NACK.
 */
enum pf_status data_on_chunk(struct stream *st, const struct proto_header *h);

#endif
