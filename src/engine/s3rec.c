/* SPDX-License-Identifier: MIT */
/* The S3 session store's pure parts: keys, records, sums, bitmaps. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "s3store.h"

bool
s3store_id_ok(const char *id)
{
	size_t i, n = strlen(id);

	if (n == 0 || n >= S3STORE_ID_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'z') ||
		    (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-'))
			return false;
	return true;
}

/* A name is the last component of the object's key: it may not leave
   files/<id>/ nor hold control characters. */
bool
s3store_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n >= S3STORE_NAME_MAX || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0)
		return false;
	for (i = 0; i < n; i++)
		if (name[i] == '/' || (unsigned char)name[i] < 0x20 ||
		    name[i] == 0x7f)
			return false;
	return true;
}

bool
s3store_key(char *out, size_t n, const char *prefix,
    const struct s3store_record *rec, const char *what)
{
	int k;

	if (!s3store_id_ok(rec->id))
		return false;
	if (what != NULL)
		k = snprintf(out, n, "%s.pf/s/%s/%s", prefix, rec->id, what);
	else if (s3store_name_ok(rec->name))
		k = snprintf(out, n, "%sfiles/%s/%s", prefix, rec->id,
		    rec->name);
	else
		return false;
	return k > 0 && (size_t)k < n && (size_t)k <= S3_KEY_MAX;
}

bool
s3store_parse_sum(const char *leaf, uint32_t *index,
    uint8_t digest[PF_SHA256_LEN])
{
	const char *dot = strchr(leaf, '.');
	unsigned long v = 0;
	const char *p;

	if (dot == NULL || dot == leaf || dot - leaf > 5 ||
	    (dot - leaf > 1 && *leaf == '0') ||
	    strlen(dot + 1) != 2 * PF_SHA256_LEN)
		return false;
	for (p = leaf; p < dot; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v >= S3_PART_MAX)
		return false;
	if (pf_hex_decode(dot + 1, digest, PF_SHA256_LEN) < 0)
		return false;
	*index = (uint32_t)v;
	return true;
}

uint32_t
s3store_nchunks(const struct s3store_record *rec)
{
	uint64_t n;

	if (rec->chunk_size == 0)
		return 0;
	n = (rec->size + rec->chunk_size - 1) / rec->chunk_size;
	if (n == 0)
		return 1;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

uint64_t
s3store_chunk_len(const struct s3store_record *rec, uint32_t i)
{
	uint64_t off = (uint64_t)i * rec->chunk_size;

	if (off >= rec->size)
		return 0;
	return rec->size - off < rec->chunk_size ? rec->size - off :
	    rec->chunk_size;
}

bool
s3store_mark_part(const struct s3store_record *rec, uint8_t *bitmap,
    unsigned part, uint64_t size)
{
	uint32_t n = s3store_nchunks(rec);

	if (part < 1 || part > n || size != s3store_chunk_len(rec, part - 1))
		return false;
	bitmap[(part - 1) / 8] |= (uint8_t)(1u << ((part - 1) % 8));
	return true;
}

char *
s3store_record_encode(const struct s3store_record *rec)
{
	char *head, *text = NULL;
	json_t *o;

	if ((head = pf_base64_encode(rec->head, rec->head_len)) == NULL)
		return NULL;
	o = json_pack("{s:i, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s}",
	    "v", 1, "id", rec->id, "user", rec->user, "name", rec->name,
	    "size", (json_int_t)rec->size,
	    "chunk_size", (json_int_t)rec->chunk_size, "head", head,
	    "created", (json_int_t)rec->created, "upload", rec->upload);
	/* Only a tombstone says so: a live record reads as before. */
	if (o != NULL && rec->deleting && json_object_set_new(o, "deleting",
	    json_true()) == -1) {
		json_decref(o);
		o = NULL;
	}
	if (o != NULL)
		text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	free(head);
	return text;
}

/* Copies a string field of at most cap - 1 bytes. */
static bool
copy_field(char *out, size_t cap, const char *in)
{
	size_t n = strlen(in);

	if (n == 0 || n >= cap)
		return false;
	memcpy(out, in, n + 1);
	return true;
}

enum pf_status
s3store_record_decode(const char *p, size_t n, struct s3store_record *rec)
{
	const char *id, *user, *name, *head, *upload;
	json_int_t v, size, chunk, created;
	int deleting = 0;
	json_error_t err;
	json_t *o;
	long hl;
	enum pf_status rc = PF_EIO;

	memset(rec, 0, sizeof(*rec));
	if ((o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &err)) == NULL)
		return PF_EIO;
	if (json_unpack(o, "{s:I, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:s, "
	    "s?b}", "v", &v, "id", &id, "user", &user, "name", &name, "size",
	    &size, "chunk_size", &chunk, "head", &head, "created", &created,
	    "upload", &upload, "deleting", &deleting) != 0 || v != 1 ||
	    size < 0 || chunk <= 0 || chunk > UINT32_MAX ||
	    strlen(head) > 4 * S3STORE_HEAD_MAX / 3 + 4)
		goto out;
	if (!copy_field(rec->id, sizeof(rec->id), id) ||
	    !copy_field(rec->user, sizeof(rec->user), user) ||
	    !copy_field(rec->name, sizeof(rec->name), name) ||
	    !copy_field(rec->upload, sizeof(rec->upload), upload) ||
	    !s3store_id_ok(rec->id) || !s3store_name_ok(rec->name))
		goto out;
	if ((hl = pf_base64_decode(head, rec->head, sizeof(rec->head))) < 0)
		goto out;
	rec->head_len = (size_t)hl;
	rec->size = (uint64_t)size;
	rec->chunk_size = (uint32_t)chunk;
	rec->created = (int64_t)created;
	rec->deleting = deleting != 0;
	rc = PF_OK;
out:
	json_decref(o);
	return rc;
}
