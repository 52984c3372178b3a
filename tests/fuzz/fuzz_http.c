/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target over the gateway's parsers of request text: the Range
 * header, If-None-Match / If-Range ETag lists and download-link tokens.
 * The first byte picks the parser; the rest is its input. Beyond "no
 * crash", each checks what its callers rely on: a range inside the file,
 * a token valid only as made.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "api_files_int.h"
#include "gateway.h"
#include "proto.h"
#include "response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct httpd *gw;

/* 8 bytes of file size, then the header value. */
static void
fuzz_range(const uint8_t *p, size_t n, const char *s)
{
	struct range r;
	uint64_t size;

	if (n < 8)
		return;
	size = proto_get_u64(p);
	/* Sizes a file may have, and the edges around them. */
	if (p[0] & 0x80)
		size &= 0xffff;
	api_files_parse_range(s + 8, size, &r);
	if (r.partial && (r.unsatisfiable || r.len == 0 || r.first >= size ||
	    r.len > size - r.first))
		abort();
	if (!r.partial && !r.unsatisfiable && (r.first != 0 || r.len != size))
		abort();
}

/* The header value, a NUL, then the ETag. */
static void
fuzz_etag(const char *s, size_t n)
{
	size_t hl = strnlen(s, n);
	const char *etag = hl < n ? s + hl + 1 : "\"x\"";

	if (*etag == '\0')
		return;		/* the gateway's ETags are never empty */
	resp_etag_matches(s, etag, true);
	resp_etag_matches(s, etag, false);
	if (!resp_etag_matches(etag, etag, false))
		abort();
}

/* The session id, a NUL, then the token. */
static void
fuzz_link(const char *s, size_t n)
{
	size_t il = strnlen(s, n);
	const char *token = il < n ? s + il + 1 : NULL;
	char made[128];

	if (il > PROTO_ID_LEN)
		return;
	/* Nobody can guess a MAC: a fuzzed token is never valid. */
	if (token != NULL && access_link_valid(gw, s, token) &&
	    !(access_link_token(gw, s, strtoll(token, NULL, 10), made,
	    sizeof(made)) && strcmp(made, token) == 0))
		abort();
	/* What the gateway makes for this id is valid until it expires. */
	if (!access_link_token(gw, s, (int64_t)time(NULL) + 60, made,
	    sizeof(made)) || !access_link_valid(gw, s, made))
		abort();
	made[strlen(made) - 1] ^= 1;
	if (access_link_valid(gw, s, made))
		abort();
	if (access_link_token(gw, s, (int64_t)time(NULL) - 1, made,
	    sizeof(made)) && access_link_valid(gw, s, made))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size < 1)
		return 0;
	if (gw == NULL) {
		if ((gw = calloc(1, sizeof(*gw))) == NULL)
			abort();
		memset(gw->secret, 7, sizeof(gw->secret));
	}
	/* A NUL-terminated copy, as MHD hands header values over. */
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		fuzz_range(data + 1, size - 1, s);
		break;
	case 1:
		fuzz_etag(s, size - 1);
		break;
	case 2:
		fuzz_link(s, size - 1);
		break;
	}
	free(s);
	return 0;
}
