/* SPDX-License-Identifier: MIT */
/*
 * The frames of a data connection. Each handler answers its frame and
 * returns PF_OK to go on or a status that ends the connection. The
 * connection's thread only.
 */
#ifndef PF_DATA_H
#define PF_DATA_H

#include <stdbool.h>

#include <jansson.h>

#include "proto.h"
#include "status.h"

struct session;
struct stream;

/* JOIN: the data connection's proof for a session; answers JOINED. */
enum pf_status data_on_join(struct stream *st, const json_t *req);

/*
 * CHUNK with header h: streams the chunk to the staging file, hashing
 * it, and queues it to be made durable (ACK) or answers NACK. Answers go
 * out in the order the chunks came, each ACK once its chunk's data and
 * journal record are synced: the connection goes on receiving meanwhile.
 */
enum pf_status data_on_chunk(struct stream *st, const struct proto_header *h);

/*
 * Before the next frame of a data connection: sends the answers that are
 * ready and waits, while answers are pending, until either the next frame
 * starts to arrive or more answers are ready; with DATA_PIPELINE answers
 * pending it waits for the oldest. PF_OK to read the next frame.
 */
enum pf_status data_wait(struct stream *st);

/*
 * Makes st a data connection of s (its reference passes to st): the
 * buffers and the answer queue a CHUNK needs. PF_ENOMEM (what was
 * allocated is data_release's and the stream's to free; s stays the
 * caller's). After the JOIN proof, and in the control-frame fuzz target.
 */
enum pf_status data_start(struct stream *st, struct session *s);

/*
 * At the end of a data connection: waits for every chunk still being
 * synced and marks it held (or releases it if its sync failed); with
 * answering set, sends the answers too (a stop between frames). Frees what
 * data_start allocated.
 */
void data_release(struct stream *st, bool answering);

#endif
