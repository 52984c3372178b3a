/* SPDX-License-Identifier: MIT */
/*
 * A transfer of many files over HTTP: GET /api/v1/sessions/{id}/files
 * (the list, each file's state and receipt) and .../tar (the stored tree
 * as a tar stream, built on the fly).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "response.h"

#define TAR_BLOCK	512
/* A header, a GNU long-name header and the name: enough for any path. */
#define TAR_PENDING	(4 * TAR_BLOCK + 1024)

/* The state of one tar stream. */
struct tar {
	struct engine	*e;
	char		 id[ENGINE_ID_LEN + 1];
	json_t		*list;		/* the transfer's entries */
	size_t		 next;		/* the next entry to start */
	uint8_t		 pend[TAR_PENDING];	/* headers not yet sent */
	size_t		 plen, poff;
	int		 fd;		/* the file being sent, or -1 */
	uint64_t	 left;		/* its bytes still to send */
	size_t		 pad;		/* zeros after it */
	bool		 ended;		/* the two zero blocks queued */
	int64_t		 dir_mtime;	/* the transfer's end: no list has it */
};

/* Handler errors of engine_transfer_files, as HTTP. */
static enum MHD_Result
list_error(const struct gw_call *call, enum pf_status rc)
{
	if (rc == PF_EBUSY)
		return resp_error(call->c, MHD_HTTP_CONFLICT, "not_finished",
		    "session %s is not complete", call->id);
	return resp_error(call->c, MHD_HTTP_NOT_FOUND, "not_found",
	    "no transfer %s", call->id);
}

enum MHD_Result
api_transfer_files(const struct gw_call *call)
{
	json_t *list;
	enum pf_status rc;

	rc = engine_transfer_files(call->h->engine, call->id,
	    call->who.admin ? NULL : call->who.user, &list);
	if (rc != PF_OK)
		return list_error(call, rc);
	return resp_json(call->c, MHD_HTTP_OK, json_pack("{s:s,s:o}",
	    "session", call->id, "files", list));
}

/* True if list entry f is in the tar: stored, file or directory. */
static bool
in_tar(const json_t *f)
{
	return json_integer_value(json_object_get(f, "status")) == 0 &&
	    json_string_value(json_object_get(f, "path")) != NULL;
}

static uint64_t
round_block(uint64_t n)
{
	return (n + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

/* One ustar header block for name (at most 100 bytes used) into b. */
static void
header(uint8_t b[TAR_BLOCK], const char *name, char type, uint32_t mode,
    uint64_t size, int64_t mtime)
{
	unsigned sum = 0;

	memset(b, 0, TAR_BLOCK);
	snprintf((char *)b, 100, "%s", name);
	snprintf((char *)b + 100, 8, "%07o", mode & 0777);
	snprintf((char *)b + 108, 8, "%07o", 0);
	snprintf((char *)b + 116, 8, "%07o", 0);
	if (size < (1ull << 33))
		snprintf((char *)b + 124, 12, "%011llo",
		    (unsigned long long)size & 077777777777ull);
	else {	/* GNU base-256: the high bit, then big-endian */
		b[124] = 0x80;
		for (int i = 0; i < 8; i++)
			b[135 - i] = (uint8_t)(size >> (8 * i));
	}
	/* 11 octal digits: from 1970 to the year 4147. */
	snprintf((char *)b + 136, 12, "%011llo", (unsigned long long)
	    (mtime > 0 ? mtime : 0) & 077777777777ull);
	b[156] = (uint8_t)type;
	memcpy(b + 257, "ustar", 6);
	memcpy(b + 263, "00", 2);
	memset(b + 148, ' ', 8);
	for (size_t i = 0; i < TAR_BLOCK; i++)
		sum += b[i];
	snprintf((char *)b + 148, 8, "%06o", sum);
}

/* The bytes entry f takes in the tar (headers, data, padding). */
static uint64_t
entry_bytes(const json_t *f)
{
	bool dir = json_is_true(json_object_get(f, "dir"));
	/* As start_entry names it: a directory ends with '/'. */
	size_t len = strlen(json_string_value(json_object_get(f, "path"))) +
	    (dir ? 1 : 0);
	uint64_t n = TAR_BLOCK;

	if (len > 99)
		n += TAR_BLOCK + round_block(len + 1);
	if (!dir)
		n += round_block((uint64_t)json_integer_value(
		    json_object_get(f, "size")));
	return n;
}

/* Queues the headers of entry f (a GNU long name first if needed). */
static void
start_entry(struct tar *t, const json_t *f)
{
	bool dir = json_is_true(json_object_get(f, "dir"));
	const char *path = json_string_value(json_object_get(f, "path"));
	char name[1100];
	size_t len;

	snprintf(name, sizeof(name), "%s%s", path, dir ? "/" : "");
	len = strlen(name);
	t->plen = t->poff = 0;
	if (len > 99) {
		header(t->pend, "././@LongLink", 'L', 0644, len + 1, 0);
		memset(t->pend + TAR_BLOCK, 0, round_block(len + 1));
		memcpy(t->pend + TAR_BLOCK, name, len);
		t->plen = TAR_BLOCK + round_block(len + 1);
	}
	t->left = dir ? 0 : (uint64_t)json_integer_value(json_object_get(f,
	    "size"));
	header(t->pend + t->plen, name, dir ? '5' : '0', dir ? 0755 :
	    (uint32_t)json_integer_value(json_object_get(f, "mode")) | 0600,
	    t->left, dir ? t->dir_mtime : json_integer_value(
	    json_object_get(f, "mtime")));
	t->plen += TAR_BLOCK;
	t->pad = (size_t)(round_block(t->left) - t->left);
}

/* Moves to the next entry in the tar; false at the end of the list. */
static bool
next_entry(struct tar *t)
{
	const json_t *f;

	while (t->next < json_array_size(t->list)) {
		f = json_array_get(t->list, t->next++);
		if (!in_tar(f))
			continue;
		start_entry(t, f);
		if (t->left > 0 && engine_open_listed_file(t->e, t->id,
		    t->list, t->next - 1, &t->fd) != PF_OK)
			t->fd = -2;	/* gone meanwhile: the stream fails */
		return true;
	}
	return false;
}

static ssize_t
tar_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct tar *t = cls;
	ssize_t n;

	(void)pos;
	if (t->poff == t->plen && t->left == 0 && t->pad == 0) {
		if (t->fd >= 0)
			close(t->fd);
		t->fd = -1;
		if (!next_entry(t)) {
			if (t->ended)
				return MHD_CONTENT_READER_END_OF_STREAM;
			memset(t->pend, 0, 2 * TAR_BLOCK);
			t->plen = 2 * TAR_BLOCK;
			t->poff = 0;
			t->ended = true;
		}
	}
	if (t->poff < t->plen) {
		size_t k = t->plen - t->poff;

		n = (ssize_t)(k < max ? k : max);
		memcpy(buf, t->pend + t->poff, (size_t)n);
		t->poff += (size_t)n;
		return n;
	}
	if (t->left > 0) {
		if (t->fd < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		n = read(t->fd, buf, t->left < max ? (size_t)t->left : max);
		if (n <= 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		t->left -= (uint64_t)n;
		return n;
	}
	n = (ssize_t)(t->pad < max ? t->pad : max);
	memset(buf, 0, (size_t)n);
	t->pad -= (size_t)n;
	return n;
}

static void
tar_free(void *cls)
{
	struct tar *t = cls;

	if (t->fd >= 0)
		close(t->fd);
	json_decref(t->list);
	free(t);
}

enum MHD_Result
api_transfer_tar(const struct gw_call *call)
{
	struct engine_session_info si;
	struct MHD_Response *r;
	struct tar *t;
	uint64_t total = 2 * TAR_BLOCK;
	enum pf_status rc;
	char cd[128];
	json_t *list, *f;
	size_t i;

	/* A link (routes.c checked it) opens the tar for anyone. */
	rc = engine_transfer_files(call->h->engine, call->id,
	    call->who.admin || call->who.link ? NULL : call->who.user, &list);
	if (rc != PF_OK)
		return list_error(call, rc);
	json_array_foreach(list, i, f)
		if (in_tar(f))
			total += entry_bytes(f);
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		json_decref(list);
		return MHD_NO;
	}
	t->e = call->h->engine;
	t->list = list;
	t->fd = -1;
	snprintf(t->id, sizeof(t->id), "%s", call->id);
	/* A directory's mtime, as tar -x sets it: when the transfer ended. */
	if (engine_session(t->e, call->id, &si) == PF_OK)
		t->dir_mtime = si.finished;
	if ((r = MHD_create_response_from_callback(total, 64 * 1024,
	    tar_read, t, tar_free)) == NULL) {
		tar_free(t);
		return MHD_NO;
	}
	snprintf(cd, sizeof(cd), "attachment; filename=\"%s.tar\"", call->id);
	MHD_add_response_header(r, "Content-Type", "application/x-tar");
	MHD_add_response_header(r, "Content-Disposition", cd);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Cache-Control", "private, no-cache");
	return resp_queue(call->c, MHD_HTTP_OK, r);
}
