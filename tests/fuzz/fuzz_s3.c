/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target over what the S3 client parses: with first byte 0 the
 * rest is an answer of the store walked by s3xml_walk (every element's
 * depth and text within the walk's limits); with 1 it is a storage
 * target "s3://BUCKET/PREFIX" (one that passes has a prefix that is
 * empty or ends in '/', and passes the full check with it); with 2 a
 * session record of the S3 store (one that decodes has an id and a name
 * a key may hold, and encodes back to a record that decodes the same);
 * with 3 the last component of a sums key (a parsed index is a part's).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3.h"
#include "s3store.h"
#include "s3xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
element(void *arg, int depth, const char *name, const char *text)
{
	if (depth < 1 || depth > 8 || strlen(text) > S3XML_TEXT_MAX ||
	    *name == '\0')
		abort();
	return true;
}

static void
target(const uint8_t *p, size_t n)
{
	struct s3_config cfg = { 0 };
	char *t;
	size_t k;

	if ((t = strndup((const char *)p, n)) == NULL)
		return;
	s3_config_defaults(&cfg);
	if (s3_config_target(&cfg, t) == PF_OK) {
		k = strlen(cfg.prefix);
		if ((k > 0 && cfg.prefix[k - 1] != '/') ||
		    strstr(cfg.prefix, "//") != NULL)
			abort();
		cfg.endpoint = strdup("http://127.0.0.1:1");
		cfg.region = strdup("us-east-1");
		cfg.access_key = strdup("AK");
		cfg.secret_key = strdup("SK");
		if (s3_config_check(&cfg) != PF_OK)
			abort();
	}
	s3_config_clear(&cfg);
	free(t);
}

static void
record(const uint8_t *p, size_t n)
{
	struct s3store_record r, back;
	char *text;

	if (s3store_record_decode((const char *)p, n, &r) != PF_OK)
		return;
	if (!s3store_id_ok(r.id) || !s3store_name_ok(r.name) ||
	    r.chunk_size == 0 || r.head_len > S3STORE_HEAD_MAX)
		abort();
	if ((text = s3store_record_encode(&r)) == NULL)
		return;
	if (s3store_record_decode(text, strlen(text), &back) != PF_OK ||
	    strcmp(back.name, r.name) != 0 || back.size != r.size ||
	    back.head_len != r.head_len ||
	    memcmp(back.head, r.head, r.head_len) != 0)
		abort();
	free(text);
}

static void
sum(const uint8_t *p, size_t n)
{
	uint8_t d[PF_SHA256_LEN];
	uint32_t i;
	char *t;

	if ((t = strndup((const char *)p, n)) == NULL)
		return;
	if (s3store_parse_sum(t, &i, d) && i >= S3_PART_MAX)
		abort();
	free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char root[32];

	if (size < 1)
		return 0;
	pf_log_set_level(getenv("PF_FUZZ_LOG") != NULL ? PF_LOG_DEBUG :
	    PF_LOG_NONE);
	if (data[0] == 0)
		(void)s3xml_walk((const char *)data + 1, size - 1, element,
		    NULL, root, sizeof(root));
	else if (data[0] == 1)
		target(data + 1, size - 1);
	else if (data[0] == 2)
		record(data + 1, size - 1);
	else if (data[0] == 3)
		sum(data + 1, size - 1);
	return 0;
}
