/* SPDX-License-Identifier: MIT */
/*
 * Frame I/O: headers, JSON payloads, ERROR frames, CHUNK heads and ACKs on
 * a connection.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

enum pf_status
wire_send(struct pf_conn *c, int type, const void *p, size_t n)
{
	struct proto_header h = { PROTO_VERSION, (uint8_t)type, 0,
	    (uint32_t)n };
	uint8_t buf[PROTO_HEADER_LEN + 256];
	enum pf_status rc;

	if (n > UINT32_MAX)
		return PF_ETOOLARGE;
	proto_encode_header(&h, buf);
	/* Small frames go out in one write: one packet, no Nagle stall. */
	if (n <= sizeof(buf) - PROTO_HEADER_LEN) {
		if (n > 0)
			memcpy(buf + PROTO_HEADER_LEN, p, n);
		return pf_conn_write_full(c, buf, PROTO_HEADER_LEN + n);
	}
	if ((rc = pf_conn_write_full(c, buf, PROTO_HEADER_LEN)) != PF_OK)
		return rc;
	return pf_conn_write_full(c, p, n);
}

enum pf_status
wire_send_json(struct pf_conn *c, int type, const json_t *j)
{
	enum pf_status rc;
	char *s;

	if ((s = json_dumps(j, JSON_COMPACT)) == NULL)
		return PF_ENOMEM;
	rc = wire_send(c, type, s, strlen(s));
	free(s);
	return rc;
}

enum pf_status
wire_send_error(struct pf_conn *c, enum pf_status code, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	json_t *j;
	enum pf_status rc;

	if (!pf_status_is_wire(code))
		code = PF_EINTERNAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	j = json_pack("{s:i,s:s,s:s}", "code", (int)code, "name",
	    pf_status_name(code), "message", msg);
	if (j == NULL)
		return PF_ENOMEM;
	rc = wire_send_json(c, PROTO_ERROR, j);
	json_decref(j);
	return rc;
}

enum pf_status
wire_recv_header(struct pf_conn *c, struct proto_header *h)
{
	uint8_t buf[PROTO_HEADER_LEN];
	enum pf_status rc;

	if ((rc = pf_conn_read_full(c, buf, sizeof(buf))) != PF_OK)
		return rc;
	return proto_decode_header(buf, h);
}

enum pf_status
wire_recv_json(struct pf_conn *c, const struct proto_header *h, json_t **out)
{
	json_error_t err;
	enum pf_status rc;
	char *buf;

	if ((buf = malloc(h->length + 1)) == NULL)
		return PF_ENOMEM;
	if ((rc = pf_conn_read_full(c, buf, h->length)) != PF_OK)
		goto out;
	/* JSON_ALLOW_NUL: a NUL in a name is then refused as bad_name. */
	*out = json_loadb(buf, h->length, JSON_REJECT_DUPLICATES |
	    JSON_ALLOW_NUL, &err);
	rc = PF_EBADFRAME;
	if (*out == NULL) {
		/* A size past 2^63 - 1 is too large, not malformed. */
		if (json_error_code(&err) == json_error_numeric_overflow)
			rc = PF_ETOOLARGE;
		goto out;
	}
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		goto out;
	}
	rc = PF_OK;
out:
	free(buf);
	return rc;
}

/* Turns a received ERROR frame into its code and message. */
static enum pf_status
error_from_frame(struct pf_conn *c, const struct proto_header *h, char *err,
    size_t errcap)
{
	json_t *j = NULL;
	const char *msg;
	uint64_t code;
	enum pf_status rc;

	if (proto_check_length(h, true, 0) != PF_OK)
		return PF_EBADFRAME;
	if ((rc = wire_recv_json(c, h, &j)) != PF_OK)
		return rc;
	rc = PF_EBADFRAME;
	if (wire_json_u64(j, "code", &code) == 0 &&
	    pf_status_is_wire((int)code))
		rc = (enum pf_status)code;
	if (err != NULL && errcap > 0) {
		msg = wire_json_str(j, "message", NULL);
		snprintf(err, errcap, "%s", msg ? msg : pf_status_message(rc));
	}
	json_decref(j);
	return rc;
}

enum pf_status
wire_expect_json(struct pf_conn *c, int want, json_t **out, char *err,
    size_t errcap)
{
	return wire_expect_either(c, want, want, NULL, out, err, errcap);
}

enum pf_status
wire_expect_either(struct pf_conn *c, int want, int or, int *got,
    json_t **out, char *err, size_t errcap)
{
	struct proto_header h;
	json_t *j = NULL;
	enum pf_status rc;

	if ((rc = wire_recv_header(c, &h)) != PF_OK)
		return rc;
	if (h.type == PROTO_ERROR)
		return error_from_frame(c, &h, err, errcap);
	if (got != NULL)
		*got = h.type;
	if (h.type != want && h.type != or) {
		if (err != NULL && errcap > 0)
			snprintf(err, errcap, "expected %s, got %s",
			    proto_type_name(want), proto_type_name(h.type));
		return PF_EPROTO;
	}
	if ((rc = proto_check_length(&h, true, 0)) != PF_OK)
		return rc;
	if ((rc = wire_recv_json(c, &h, &j)) != PF_OK)
		return rc;
	if (out != NULL)
		*out = j;
	else
		json_decref(j);
	return PF_OK;
}

enum pf_status
wire_expect_ack(struct pf_conn *c, int *type, uint64_t *index, char *err,
    size_t errcap)
{
	struct proto_header h;
	uint8_t buf[8];
	enum pf_status rc;

	if ((rc = wire_recv_header(c, &h)) != PF_OK)
		return rc;
	if (h.type == PROTO_ERROR)
		return error_from_frame(c, &h, err, errcap);
	if (h.type != PROTO_ACK && h.type != PROTO_NACK)
		return PF_EPROTO;
	if ((rc = proto_check_length(&h, true, 0)) != PF_OK ||
	    (rc = pf_conn_read_full(c, buf, sizeof(buf))) != PF_OK)
		return rc;
	*type = h.type;
	*index = proto_get_u64(buf);
	return PF_OK;
}

enum pf_status
wire_send_chunk_head(struct pf_conn *c, const struct proto_chunk_head *ch)
{
	struct proto_header fh = { PROTO_VERSION, PROTO_CHUNK, 0,
	    PROTO_CHUNK_HEAD_LEN + ch->length + PROTO_CHUNK_TRAILER_LEN };
	uint8_t head[PROTO_HEADER_LEN + PROTO_CHUNK_HEAD_LEN];

	/* One write for both: the data that follows may be much larger. */
	proto_encode_header(&fh, head);
	proto_encode_chunk_head(ch, head + PROTO_HEADER_LEN);
	return pf_conn_write_full(c, head, sizeof(head));
}

enum pf_status
wire_recv_chunk_head(struct pf_conn *c, const struct proto_header *h,
    uint64_t size, uint32_t chunk_size, struct proto_chunk_head *ch)
{
	uint8_t head[PROTO_CHUNK_HEAD_LEN];
	enum pf_status rc;

	if ((rc = pf_conn_read_full(c, head, sizeof(head))) != PF_OK)
		return rc;
	proto_decode_chunk_head(head, ch);
	/* 64-bit sum: a length near 2^32 must not wrap into a match. */
	if (proto_check_chunk(ch, size, chunk_size) != PF_OK ||
	    h->length != PROTO_CHUNK_HEAD_LEN + (uint64_t)ch->length +
	    PROTO_CHUNK_TRAILER_LEN)
		return PF_EBADFRAME;
	return PF_OK;
}

enum pf_status
wire_send_ack(struct pf_conn *c, int type, uint64_t index)
{
	uint8_t p[8];

	proto_put_u64(p, index);
	return wire_send(c, type, p, sizeof(p));
}

const char *
wire_json_str(const json_t *obj, const char *key, size_t *len)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return NULL;
	if (len != NULL)
		*len = json_string_length(v);
	return json_string_value(v);
}

int
wire_json_u64(const json_t *obj, const char *key, uint64_t *v)
{
	json_t *j = json_object_get(obj, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*v = (uint64_t)json_integer_value(j);
	return 0;
}
