/* SPDX-License-Identifier: MIT */
/* Frame and chunk encoding, limits and digests of the native protocol. */
#include "config.h"

#include <string.h>

#include "proto.h"

static const char *type_names[] = {
	"?", "HELLO", "AUTH", "CHALLENGE", "PROOF", "AUTH_OK", "OPEN",
	"OPENED", "JOIN", "JOINED", "CHUNK", "ACK", "NACK", "COMMIT",
	"COMPLETE", "ABORT", "ERROR"
};

bool
proto_id_valid(const char *id)
{
	if (id == NULL || strnlen(id, PROTO_ID_LEN + 1) != PROTO_ID_LEN)
		return false;
	for (size_t i = 0; i < PROTO_ID_LEN; i++) {
		char c = id[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') ||
		    (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

void
proto_id_lower(char *id)
{
	for (; *id != '\0'; id++)
		if (*id >= 'A' && *id <= 'F')
			*id = (char)(*id - 'A' + 'a');
}

bool
proto_user_valid(const char *name)
{
	size_t len;

	if (name == NULL)
		return false;
	len = strnlen(name, PROTO_MAX_USER + 1);
	if (len == 0 || len > PROTO_MAX_USER)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		/* Explicit ranges: isalnum() would follow the locale. */
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '@' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

bool
proto_from_client(int type)
{
	switch (type) {
	case PROTO_AUTH:
	case PROTO_PROOF:
	case PROTO_OPEN:
	case PROTO_JOIN:
	case PROTO_CHUNK:
	case PROTO_COMMIT:
	case PROTO_ABORT:
		return true;
	default:
		return false;
	}
}

const char *
proto_type_name(int type)
{
	if (type < 1 || type > PROTO_TYPE_MAX)
		return "?";
	return type_names[type];
}

void
proto_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint64_t
proto_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void
proto_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint32_t
proto_get_u32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | p[i];
	return v;
}

static void
header_check(const uint8_t *p, uint8_t out[4])
{
	uint8_t d[PF_SHA256_LEN];

	/* SHA-256 of 12 bytes cannot fail short of a broken libcrypto. */
	if (pf_sha256(p, 12, d) != PF_OK)
		memset(d, 0, sizeof(d));
	memcpy(out, d, 4);
}

void
proto_encode_header(const struct proto_header *h, uint8_t out[PROTO_HEADER_LEN])
{
	memcpy(out, PROTO_MAGIC, 4);
	out[4] = h->version;
	out[5] = h->type;
	out[6] = (uint8_t)(h->flags >> 8);
	out[7] = (uint8_t)h->flags;
	proto_put_u32(out + 8, h->length);
	header_check(out, out + 12);
}

enum pf_status
proto_decode_header(const uint8_t in[PROTO_HEADER_LEN], struct proto_header *h)
{
	uint8_t check[4];

	if (memcmp(in, PROTO_MAGIC, 4) != 0)
		return PF_EBADFRAME;
	header_check(in, check);
	if (memcmp(check, in + 12, 4) != 0)
		return PF_EBADFRAME;
	h->version = in[4];
	h->type = in[5];
	h->flags = (uint16_t)(in[6] << 8 | in[7]);
	h->length = proto_get_u32(in + 8);
	if (h->version != PROTO_VERSION)
		return PF_EVERSION;
	if (h->flags != 0 || h->type < 1 || h->type > PROTO_TYPE_MAX)
		return PF_EBADFRAME;
	return PF_OK;
}

enum pf_status
proto_check_length(const struct proto_header *h, bool authed,
    uint32_t chunk_size)
{
	switch (h->type) {
	case PROTO_CHUNK:
		if (chunk_size == 0)
			return PF_EPROTO;
		if (h->length < PROTO_CHUNK_HEAD_LEN + PROTO_CHUNK_TRAILER_LEN)
			return PF_EBADFRAME;
		if (h->length - PROTO_CHUNK_HEAD_LEN -
		    PROTO_CHUNK_TRAILER_LEN > chunk_size)
			return PF_ETOOLARGE;
		return PF_OK;
	case PROTO_ACK:
	case PROTO_NACK:
		return h->length == 8 ? PF_OK : PF_EBADFRAME;
	case PROTO_OPENED:
		return h->length > PROTO_MAX_OPENED ? PF_ETOOLARGE : PF_OK;
	/* A transfer's manifest, and its files' receipts: after login. */
	case PROTO_OPEN:
		return h->length > (authed ? PROTO_MAX_OPEN :
		    PROTO_MAX_JSON_PREAUTH) ? PF_ETOOLARGE : PF_OK;
	case PROTO_COMPLETE:
		return h->length > (authed ? PROTO_MAX_COMPLETE :
		    PROTO_MAX_JSON_PREAUTH) ? PF_ETOOLARGE : PF_OK;
	default:
		if (h->length > (authed ? PROTO_MAX_JSON :
		    PROTO_MAX_JSON_PREAUTH))
			return PF_ETOOLARGE;
		return PF_OK;
	}
}

void
proto_encode_chunk_head(const struct proto_chunk_head *c,
    uint8_t out[PROTO_CHUNK_HEAD_LEN])
{
	proto_put_u64(out, c->index);
	proto_put_u64(out + 8, c->offset);
	proto_put_u32(out + 16, c->length);
}

void
proto_decode_chunk_head(const uint8_t in[PROTO_CHUNK_HEAD_LEN],
    struct proto_chunk_head *c)
{
	c->index = proto_get_u64(in);
	c->offset = proto_get_u64(in + 8);
	c->length = proto_get_u32(in + 16);
}

bool
proto_chunk_size_valid(uint64_t chunk_size)
{
	return chunk_size >= PROTO_MIN_CHUNK && chunk_size <= PROTO_MAX_CHUNK &&
	    (chunk_size & (chunk_size - 1)) == 0;
}

enum pf_status
proto_chunk_count(uint64_t size, uint32_t chunk_size, uint32_t *count)
{
	uint64_t n = size / chunk_size + (size % chunk_size != 0);

	if (n > PROTO_MAX_CHUNKS)
		return PF_ETOOLARGE;
	*count = (uint32_t)n;
	return PF_OK;
}

uint32_t
proto_chunk_length(uint64_t size, uint32_t chunk_size, uint64_t index)
{
	uint64_t off = index * chunk_size;

	return size - off < chunk_size ? (uint32_t)(size - off) : chunk_size;
}

enum pf_status
proto_check_chunk(const struct proto_chunk_head *c, uint64_t size,
    uint32_t chunk_size)
{
	uint32_t count;

	if (proto_chunk_count(size, chunk_size, &count) != PF_OK ||
	    c->index >= count)
		return PF_EBADFRAME;
	/* index < 2^20 and chunk_size <= 2^26: the product fits in 46 bits. */
	if (c->offset != c->index * chunk_size ||
	    c->length != proto_chunk_length(size, chunk_size, c->index))
		return PF_EBADFRAME;
	return PF_OK;
}

enum pf_status
proto_chunk_digest_begin(struct pf_sha256 *h, const struct proto_chunk_head *c)
{
	uint8_t head[PROTO_CHUNK_HEAD_LEN];
	enum pf_status rc;

	proto_encode_chunk_head(c, head);
	if ((rc = pf_sha256_init(h)) != PF_OK ||
	    (rc = pf_sha256_update(h, "PFC1", 4)) != PF_OK)
		return rc;
	return pf_sha256_update(h, head, sizeof(head));
}

enum pf_status
proto_receipt(uint64_t size, uint32_t chunk_size, const uint8_t *digests,
    uint32_t count, uint8_t out[PF_SHA256_LEN])
{
	struct pf_sha256 *h;
	uint8_t prefix[16];
	enum pf_status rc = PF_ENOMEM;

	if ((h = pf_sha256_new()) == NULL)
		goto out;
	memcpy(prefix, "PFR1", 4);
	proto_put_u64(prefix + 4, size);
	proto_put_u32(prefix + 12, chunk_size);
	if ((rc = pf_sha256_init(h)) != PF_OK ||
	    (rc = pf_sha256_update(h, prefix, sizeof(prefix))) != PF_OK ||
	    (rc = pf_sha256_update(h, digests,
	    (size_t)count * PF_SHA256_LEN)) != PF_OK)
		goto out;
	rc = pf_sha256_final(h, out);
out:
	pf_sha256_free(h);
	return rc;
}
