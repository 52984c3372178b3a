/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target over everything a peer controls before and after login:
 * frame headers and their caps, chunk heads, SCRAM messages (plain and
 * channel-bound), file names and base64. The first byte picks the parser;
 * the rest is its input.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "users.h"
#include "policy.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct auth_users *users;
static const uint8_t secret[PF_SHA256_LEN] = { 1, 2, 3 };

static void
fuzz_frame(const uint8_t *p, size_t n)
{
	struct proto_header h;
	struct proto_chunk_head c;

	if (n < PROTO_HEADER_LEN + PROTO_CHUNK_HEAD_LEN)
		return;
	if (proto_decode_header(p, &h) != PF_OK)
		return;
	proto_check_length(&h, false, 0);
	if (proto_check_length(&h, true, PROTO_DEFAULT_CHUNK) != PF_OK)
		return;
	proto_decode_chunk_head(p + PROTO_HEADER_LEN, &c);
	proto_check_chunk(&c, proto_get_u64(p + 4), PROTO_MIN_CHUNK);
	proto_check_chunk(&c, proto_get_u64(p + 4), PROTO_MAX_CHUNK);
}

/*
 * The input holds client-first and client-final separated by a NUL; plus
 * runs the exchange as over TLS (SCRAM-SHA-256-PLUS, a fixed exporter).
 */
static void
fuzz_scram(const char *s, size_t n, bool plus)
{
	static const uint8_t exporter[SCRAM_EXPORTER_LEN] = { 9, 8, 7 };
	struct auth_server *srv = auth_server_new(users, secret,
	    plus ? exporter : NULL);
	char *reply = NULL;
	size_t first = strnlen(s, n);

	if (srv == NULL)
		return;
	if (auth_server_first(srv, s, &reply) == PF_OK && first < n) {
		free(reply);
		reply = NULL;
		auth_server_final(srv, s + first + 1, &reply);
	}
	free(reply);
	auth_server_free(srv);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[PROTO_MAX_NAME + 1];
	uint8_t out[512];
	char *s;

	if (size < 1)
		return 0;
	if (users == NULL && auth_users_single("user", "pencil",
	    &users) != PF_OK)
		abort();
	/* A NUL-terminated copy: the string parsers take C strings. */
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		fuzz_frame(data + 1, size - 1);
		break;
	case 1:
		fuzz_scram(s, size - 1, (data[0] & 0x80) != 0);
		break;
	case 2:
		if (policy_sanitize_name((const char *)data + 1, size - 1,
		    name) == PF_OK && (strchr(name, '/') != NULL ||
		    strcmp(name, "..") == 0 || strlen(name) > PROTO_MAX_NAME))
			abort();
		break;
	case 3:
		pf_base64_decode(s, out, sizeof(out));
		policy_check_content(data + 1, size - 1);
		break;
	}
	free(s);
	return 0;
}
