/* SPDX-License-Identifier: MIT */
/*
 * Downloads a finished upload through the gateway. Nothing the server says
 * is taken on trust: the local name is ours, the download stops at the
 * session's size, and the file is kept only if its receipt (computed here,
 * as "paraflow digest" does) is the session's. A partial download is kept
 * in FILE.part (a transfer's file in .FILE.part) and resumed with Range
 * and If-Range; since a .part may hold bytes of another file, a receipt
 * mismatch after a resume says so.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkio.h"
#include "cli.h"
#include "clock.h"
#include "digest.h"
#include "filesum.h"
#include "fsutil.h"
#include "fetch.h"
#include "log.h"
#include "progress.h"
#include "proto.h"

struct fetch {
	const struct remote_opts *o;
	struct http		*h;
	const char		*id;
	const char		*path;		/* the final name */
	const char		*qpath;		/* a transfer's file: its
						   stored path, URL-encoded */
	char			*part;		/* part_name(path) */
	int			 dirfd;		/* where name and name_part
						   are: AT_FDCWD, or a
						   transfer's directory */
	const char		*name;		/* path, seen from dirfd */
	const char		*name_part;	/* part, seen from dirfd */
	int			 fd;		/* the .part, locked */
	dev_t			 dev;		/* and its identity */
	ino_t			 ino;
	uint64_t		 size;		/* the session's */
	uint32_t		 chunk_size;
	char			 digest[PF_SHA256_HEX];	/* the session's */
	uint64_t		 kept;		/* .part bytes from before */
	uint64_t		 offset;	/* where the next byte goes */
	uint64_t		 got;		/* bytes received this run */
	bool			 started;	/* the body has begun */
	bool			 stream;	/* into fd as it comes: no
						   .part, no name to give */
	bool			 to_stdout;	/* fd is standard output */
	bool			 restarted;	/* the server sent it all */
	const struct http_resp	*resp;		/* the answer in progress */
	_Atomic uint64_t	 done;		/* for the progress bar */
	struct remote_error	 e;		/* why the sink stopped */
	struct filesum		*sum;		/* the receipt of what was
						   written since offset 0 */
	_Atomic unsigned	 files;		/* a transfer's, fetched */
	_Atomic unsigned	 here;		/* and of those, found
						   intact: not fetched */
	bool			 transfer;	/* the session says "files" */
	struct fetch		*tree;		/* a transfer's file: the
						   whole fetch, whose bar
						   counts its bytes too */
	mode_t			 umask;		/* the process's, read once */
};

/* Moves f's write position to off, with the progress it reports. */
static void
set_offset(struct fetch *f, uint64_t off)
{
	/* Unsigned: a step back (starting over) wraps to a subtraction. */
	if (f->tree != NULL)
		atomic_fetch_add(&f->tree->done, off - f->offset);
	f->offset = off;
	atomic_store(&f->done, off);
}

static bool
hex_digest_valid(const char *s)
{
	for (int i = 0; i < PF_SHA256_HEX - 1; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return s[PF_SHA256_HEX - 1] == '\0';
}

/*
 * Reads what the session says about its file: complete, its size, chunk
 * size and receipt, every one checked before use.
 */
static enum pf_status
read_session(struct fetch *f)
{
	json_t *s = NULL;
	const char *state, *digest;
	json_int_t size, cs;
	uint32_t count;
	enum pf_status rc;

	if ((rc = remote_call(f->h, "GET", f->id, &s, &f->e, "/sessions/%s",
	    f->id)) != PF_OK)
		goto out;
	state = remote_str(s, "state");
	if (strcmp(state, "complete") != 0) {
		rc = PF_EINTERNAL;
		f->e.exit = EXIT_NOT_READY;
		snprintf(f->e.code, sizeof(f->e.code), "not_finished");
		f->e.http_status = 0;
		snprintf(f->e.session, sizeof(f->e.session), "%s", f->id);
		snprintf(f->e.message, sizeof(f->e.message), "%s: session %s "
		    "is not finished (%s): nothing to fetch", http_base(f->h),
		    f->id, remote_state_final(state) ? "it ended without "
		    "completing" : "still in progress");
		goto out;
	}
	rc = PF_EPROTO;
	size = remote_int(s, "size");
	cs = remote_int(s, "chunk_size");
	digest = remote_str(s, "digest");
	if (size < 0 || cs < 0 || !proto_chunk_size_valid((uint64_t)cs) ||
	    proto_chunk_count((uint64_t)size, (uint32_t)cs, &count) !=
	    PF_OK || !hex_digest_valid(digest)) {
		remote_fail(&f->e, rc, f->id, "%s: session %s: the size, chunk "
		    "size or receipt the server gives is not valid",
		    http_base(f->h), f->id);
		goto out;
	}
	f->size = (uint64_t)size;
	f->chunk_size = (uint32_t)cs;
	f->transfer = json_object_get(s, "files") != NULL;
	for (int i = 0; i < PF_SHA256_HEX; i++)
		f->digest[i] = (char)tolower((unsigned char)digest[i]);
	rc = PF_OK;
out:
	json_decref(s);
	return rc;
}

/* Room a leaf keeps before its hash when FILE.part would be too long. */
#define PART_LEAF_KEEP	200

/*
 * The name of path's .part: path + ".part", or, for a transfer's file
 * (hidden), its leaf as "." + leaf + ".part", which no file of the
 * transfer can have (a stored name never starts with a dot), where
 * "x.part" may be one. Where that leaf would pass NAME_MAX (a stored
 * name of 250-255 bytes), the leaf's first bytes (cut at a character)
 * and the start of its SHA-256: the same every run, so a cut download
 * still resumes. NULL on ENOMEM.
 */
static char *
part_name(const char *path, bool hidden)
{
	const char *slash = strrchr(path, '/'), *leaf = slash ? slash + 1 :
	    path, *dot = hidden ? "." : "";
	int dir = (int)(leaf - path);
	size_t keep = PART_LEAF_KEEP;
	uint8_t d[PF_SHA256_LEN];
	char hex[PF_SHA256_HEX], *out;

	if (strlen(dot) + strlen(leaf) + sizeof(".part") - 1 <= NAME_MAX)
		return asprintf(&out, "%.*s%s%s.part", dir, path, dot,
		    leaf) == -1 ? NULL : out;
	/* Not in the middle of a UTF-8 sequence. */
	while (keep > 0 && ((unsigned char)leaf[keep] & 0xc0) == 0x80)
		keep--;
	if (pf_sha256(leaf, strlen(leaf), d) != PF_OK)
		return NULL;
	pf_hex_encode(d, 8, hex);
	return asprintf(&out, "%.*s%s%.*s.%s.part", dir, path, dot,
	    (int)keep, leaf, hex) == -1 ? NULL : out;
}

/* Opens and locks the .part; its length is where the download resumes. */
static enum pf_status
open_part(struct fetch *f)
{
	struct stat sb;
	enum pf_status rc = PF_EIO;

	if (fstatat(f->dirfd, f->name, &sb, 0) == 0 && S_ISDIR(sb.st_mode)) {
		remote_fail(&f->e, rc, f->id, f->tree != NULL ? "%s is a "
		    "directory where the transfer has a file: move it away" :
		    "%s is a directory: name the file with -o", f->path);
		goto out;
	}
	/* O_NOFOLLOW: a link planted at FILE.part does not redirect us. */
	f->fd = openat(f->dirfd, f->name_part, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0666);
	if (f->fd == -1) {
		remote_fail(&f->e, rc, f->id, "%s: %s", f->part,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		goto out;
	}
	if (fstat(f->fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		remote_fail(&f->e, rc, f->id, "%s: not a regular file",
		    f->part);
		goto out;
	}
	/*
	 * A hard link is a way round O_NOFOLLOW: writing or truncating it
	 * would change the file it is linked to.
	 */
	if (sb.st_nlink != 1) {
		remote_fail(&f->e, rc, f->id, "%s: has other hard links: "
		    "remove it", f->part);
		goto out;
	}
	f->dev = sb.st_dev;
	f->ino = sb.st_ino;
	if (flock(f->fd, LOCK_EX | LOCK_NB) == -1) {
		remote_fail(&f->e, rc, f->id, "%s: %s", f->part,
		    errno == EWOULDBLOCK ? "another paraflow fetch is "
		    "writing it" : strerror(errno));
		goto out;
	}
	f->kept = (uint64_t)sb.st_size;
	if (f->kept > f->size) {
		/* Not a prefix of this file, whatever it is. */
		log_info("%s is longer than session %s's file: starting over",
		    f->part, f->id);
		if (ftruncate(f->fd, 0) == -1) {
			remote_fail(&f->e, rc, f->id, "%s: %s", f->part,
			    strerror(errno));
			goto out;
		}
		f->kept = 0;
	}
	set_offset(f, f->kept);
	rc = PF_OK;
out:
	return rc;
}

/* Checks the first bytes of an answer: the range asked for, or all. */
static enum pf_status
body_begins(struct fetch *f)
{
	const struct http_resp *r = f->resp;

	f->started = true;
	if (r->status == 206) {
		if (r->has_range && r->range_first == f->offset &&
		    r->range_total == f->size)
			return PF_OK;
		remote_fail(&f->e, PF_EPROTO, f->id, "%s: session %s: the "
		    "server sent another range than bytes %llu- of %llu",
		    http_base(f->h), f->id, (unsigned long long)f->offset,
		    (unsigned long long)f->size);
		return PF_EPROTO;
	}
	if (r->status != 200) {
		remote_fail(&f->e, PF_EPROTO, f->id, "%s: session %s: "
		    "unexpected answer HTTP %ld", http_base(f->h), f->id,
		    r->status);
		return PF_EPROTO;
	}
	if (f->offset > 0) {
		/* If-Range failed, or the server ignores ranges. */
		log_info("the server sent the whole file: starting over");
		if (ftruncate(f->fd, 0) == -1) {
			remote_fail(&f->e, PF_EIO, f->id, "%s: %s", f->part,
			    strerror(errno));
			return PF_EIO;
		}
		set_offset(f, 0);
		f->restarted = true;
	}
	return PF_OK;
}

/* The body sink: appends to the .part, never past the session's size. */
static enum pf_status
part_sink(void *arg, const void *p, size_t n)
{
	struct fetch *f = arg;
	const char *b = p;
	enum pf_status rc;

	if (!f->started && (rc = body_begins(f)) != PF_OK)
		return rc;
	if (n > f->size - f->offset) {
		remote_fail(&f->e, PF_EINTEGRITY, f->id, "%s: session %s: the "
		    "server sent more than the file's %llu bytes; stopped",
		    http_base(f->h), f->id, (unsigned long long)f->size);
		return PF_EINTEGRITY;
	}
	/* From the start (again): the receipt is hashed as it is written. */
	if (f->offset == 0) {
		filesum_free(f->sum);
		f->sum = filesum_new(f->size, f->chunk_size);
	}
	if (f->sum != NULL)
		filesum_add(f->sum, b, n, f->offset);
	while (n > 0) {
		ssize_t k = f->stream ? write(f->fd, b, n) : pwrite(f->fd, b,
		    n, (off_t)f->offset);

		if (k == -1 && errno == EINTR)
			continue;
		if (k <= 0) {
			remote_fail(&f->e, PF_EIO, f->id, "%s: %s", f->stream ?
			    f->path : f->part, k == 0 ? "cannot write" :
			    strerror(errno));
			return PF_EIO;
		}
		b += k;
		n -= (size_t)k;
		set_offset(f, f->offset + (uint64_t)k);
		f->got += (uint64_t)k;
	}
	return PF_OK;
}

/*
 * Downloads what the .part lacks. A 416 (the server disagrees about the
 * length) starts over once without a range.
 */
static enum pf_status
download(struct fetch *f)
{
	char path[128 + 3 * PROTO_MAX_PATH], range[32];
	char etag[PF_SHA256_HEX + 2];
	struct http_req rq = { .method = "GET", .sink = part_sink,
	    .arg = f };
	struct http_resp resp;
	struct progress *bar = NULL;
	enum pf_status rc = PF_OK;

	snprintf(path, sizeof(path), "%s/sessions/%s/file%s%s", REMOTE_API,
	    f->id, f->qpath ? "?path=" : "", f->qpath ? f->qpath : "");
	snprintf(etag, sizeof(etag), "\"%s\"", f->digest);
	rq.path = path;
	f->resp = &resp;
	/* A transfer's file: the transfer's bar counts it. */
	if (!f->o->quiet && !f->o->json && f->tree == NULL)
		bar = progress_start(f->id, f->size, &f->done);
	for (int attempt = 0; attempt < 2; attempt++) {
		f->started = false;
		rq.range = NULL;
		rq.if_range = NULL;
		if (f->offset > 0) {
			snprintf(range, sizeof(range), "%llu-",
			    (unsigned long long)f->offset);
			rq.range = range;
			/* A changed file comes whole, not spliced. */
			rq.if_range = etag;
		}
		rc = http_request(f->h, &rq, &resp);
		if (rc == PF_OK && resp.status == 416 && f->offset > 0) {
			http_resp_clear(&resp);
			log_info("the server refused bytes %llu-: starting "
			    "over", (unsigned long long)f->offset);
			if (ftruncate(f->fd, 0) == -1) {
				remote_fail(&f->e, PF_EIO, f->id, "%s: %s",
				    f->part, strerror(errno));
				rc = PF_EIO;
				goto out;
			}
			set_offset(f, 0);
			f->restarted = true;
			continue;
		}
		break;
	}
	if (rc != PF_OK) {
		/* A sink failure has its message; the rest are the link's. */
		if (f->e.message[0] == '\0')
			remote_fail_http(&f->e, f->h, rc, &resp, f->id);
		goto out;
	}
	if (resp.status < 200 || resp.status > 299) {
		remote_fail_http(&f->e, f->h, rc, &resp, f->id);
		rc = PF_EPROTO;
		goto out;
	}
	/* An empty answer must still be the right one. */
	if (!f->started && (rc = body_begins(f)) != PF_OK)
		goto out;
	if (f->offset != f->size) {
		rc = PF_ENET;
		remote_fail(&f->e, rc, f->id, "%s: session %s: the download "
		    "ended after %llu of %llu bytes", http_base(f->h), f->id,
		    (unsigned long long)f->offset,
		    (unsigned long long)f->size);
	}
out:
	progress_stop(bar);
	http_resp_clear(&resp);
	f->resp = NULL;
	if (rc != PF_OK && (f->e.exit == EXIT_NETWORK ||
	    f->e.exit == EXIT_SERVER) && f->offset > 0 && !f->stream) {
		size_t n = strlen(f->e.message);

		snprintf(f->e.message + n, sizeof(f->e.message) - n, "; %llu "
		    "bytes are kept in %s: run the same command again to "
		    "resume", (unsigned long long)f->offset, f->part);
	}
	return rc;
}

/* Checks the .part's receipt; a wrong one is removed. */
static enum pf_status
check_receipt(struct fetch *f)
{
	char mine[PF_SHA256_HEX];
	enum pf_status rc = PF_EIO;

	/*
	 * Hashed as it was written, unless resumed from an earlier run's
	 * bytes: then read back whole.
	 */
	if ((f->sum == NULL || !filesum_hex(f->sum, mine)) &&
	    chunkio_receipt(f->fd, f->size, f->chunk_size, mine) != PF_OK) {
		remote_fail(&f->e, rc, f->id, "%s: cannot compute the receipt",
		    f->part);
		return rc;
	}
	if (strcmp(mine, f->digest) == 0)
		return PF_OK;
	rc = PF_EINTEGRITY;
	if (f->stream) {
		remote_fail(&f->e, rc, f->id, "session %s: the bytes written "
		    "to %s have receipt %s, not the session's %s", f->id,
		    f->path, mine, f->digest);
		return rc;
	}
	/* Kept, it would fail the same way at every run. */
	unlinkat(f->dirfd, f->name_part, 0);
	if (f->kept > 0 && !f->restarted)
		remote_fail(&f->e, rc, f->id, "session %s: the receipt of the "
		    "download is %s, not %s: the %llu bytes resumed from %s "
		    "were not this file's or were damaged; removed it: run "
		    "the same command again to download the whole file",
		    f->id, mine, f->digest, (unsigned long long)f->kept,
		    f->part);
	else
		remote_fail(&f->e, rc, f->id, "session %s: the file %s sent "
		    "has receipt %s, not the session's %s; removed %s", f->id,
		    http_base(f->h), mine, f->digest, f->part);
	return rc;
}

/* Renames the checked .part into place (the rename not yet durable). */
static enum pf_status
rename_part(struct fetch *f)
{
	struct stat sb;

	/* What is renamed MUST be what was checked, not a file put there. */
	if (fstatat(f->dirfd, f->name_part, &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
	    sb.st_dev != f->dev || sb.st_ino != f->ino) {
		remote_fail(&f->e, PF_EIO, f->id, "%s was replaced during the "
		    "download: not renamed", f->part);
		return PF_EIO;
	}
	if (renameat(f->dirfd, f->name_part, f->dirfd, f->name) == -1) {
		remote_fail(&f->e, PF_EIO, f->id, "cannot rename %s to %s: %s",
		    f->part, f->path, strerror(errno));
		return PF_EIO;
	}
	return PF_OK;
}

/* Syncs the .part, checks its receipt, and renames it into place. */
static enum pf_status
verify_and_keep(struct fetch *f)
{
	enum pf_status rc;

	if (fsync(f->fd) == -1) {
		remote_fail(&f->e, PF_EIO, f->id, "%s: fsync: %s", f->part,
		    strerror(errno));
		return PF_EIO;
	}
	if ((rc = check_receipt(f)) != PF_OK || (rc = rename_part(f)) != PF_OK)
		return rc;
	/*
	 * The rename is durable only once its directory is synced: until
	 * then a power loss may take the file, so it is not yet done.
	 */
	if (pf_sync_dir(f->dirfd, f->name) == -1) {
		remote_fail(&f->e, PF_EIO, f->id, "%s: fsync of its directory: "
		    "%s", f->path, strerror(errno));
		return PF_EIO;
	}
	return PF_OK;
}

/* The outcome of fetching a transfer into directory f->path. */
static void
print_tree(const struct fetch *f, double secs)
{
	char size[16];
	json_t *dir;

	if (f->o->json) {
		dir = json_string(f->path);
		remote_print_json(json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:f}",
		    "status", "ok", "session", f->id, "directory", dir ? dir :
		    json_null(), "files", (json_int_t)f->files, "unchanged",
		    (json_int_t)f->here, "bytes", (json_int_t)f->got,
		    "seconds", secs));
		return;
	}
	progress_format_bytes((double)f->got, size);
	printf("fetched transfer %s to %s/: %u files, %s in %.2f s, every "
	    "receipt checked\n", f->id, f->path, f->files, size, secs);
	if (f->here > 0)
		printf("%u of them were there intact already (size, mtime "
		    "and receipt): not fetched again\n", f->here);
}

static void
print_result(const struct fetch *f, double secs)
{
	char size[16], rate[16];
	json_t *j, *file;
	FILE *out;

	if (f->o->json) {
		/* A file name need not be UTF-8; a JSON string must. */
		file = json_string(f->path);
		j = json_pack("{s:s,s:s,s:o,s:I,s:I,s:I,s:s,s:f}", "status",
		    "ok", "session", f->id, "file", file != NULL ? file :
		    json_null(), "size", (json_int_t)f->size, "bytes",
		    (json_int_t)f->got, "resumed_bytes",
		    (json_int_t)(f->restarted ? 0 : f->kept), "digest",
		    f->digest, "seconds", secs);
		remote_print_json(j);
		return;
	}
	/* Standard output holds the file itself then. */
	out = f->to_stdout ? stderr : stdout;
	progress_format_bytes((double)f->size, size);
	progress_format_bytes(secs > 0 ? (double)f->got / secs : 0, rate);
	fprintf(out, "fetched session %s to %s: %s in %.2f s (%s/s)\n",
	    f->id, f->path, size, secs, rate);
	if (f->kept > 0 && !f->restarted)
		fprintf(out, "resumed: %llu bytes were in %s already\n",
		    (unsigned long long)f->kept, f->part);
	fprintf(out, "receipt %s\n", f->digest);
}

/* A stored path of a transfer, URL-encoded but for '/'; NULL if unsafe. */
static char *
encode_path(const char *p)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *q;

	/* The server's paths are sanitised; one that is not, is refused. */
	if (p[0] == '/' || p[0] == '\0' || strlen(p) > PROTO_MAX_PATH ||
	    strstr(p, "//") || strcmp(p, "..") == 0 || strncmp(p, "../", 3) ==
	    0 || strstr(p, "/../") || (strlen(p) >= 3 &&
	    strcmp(p + strlen(p) - 3, "/..") == 0) || strchr(p, '\\'))
		return NULL;
	if ((q = out = malloc(3 * strlen(p) + 1)) == NULL)
		return NULL;
	for (; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (isalnum(ch) || strchr("-._~/", ch))
			*q++ = (char)ch;
		else {
			*q++ = '%';
			*q++ = hex[ch >> 4];
			*q++ = hex[ch & 15];
		}
	}
	*q = '\0';
	return out;
}

/*
 * Creates directory path and those above it, mode 0777: the directory the
 * user names, where links are the user's own. path is restored on return.
 */
static enum pf_status
make_dirs(char *path)
{
	for (char *s = strchr(path + 1, '/'); ; s = strchr(s + 1, '/')) {
		if (s != NULL)
			*s = '\0';
		if (mkdir(path, 0777) == -1 && errno != EEXIST) {
			if (s != NULL)
				*s = '/';
			return PF_EIO;
		}
		if (s == NULL)
			return PF_OK;
		*s = '/';
	}
}

/*
 * Creates (mode 0777) and opens the directories of rel beneath top, all of
 * it with whole, else all but its last component; the new descriptor, or
 * -1 with errno set. Each step is opened with O_NOFOLLOW from the one
 * before: a symbolic link already in the tree (ELOOP, or ENOTDIR for a
 * file) is refused, never followed out of it.
 */
static int
open_dirs(int top, const char *rel, bool whole)
{
	char *path = strdup(rel), *s, *next;
	int fd, dir = dup(top), saved;

	if (path == NULL || dir == -1)
		goto fail;
	for (s = path; whole ? *s != '\0' : strchr(s, '/') != NULL; s = next) {
		if ((next = strchr(s, '/')) != NULL)
			*next++ = '\0';
		else
			next = s + strlen(s);
		if (mkdirat(dir, s, 0777) == -1 && errno != EEXIST)
			goto fail;
		fd = openat(dir, s, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		close(dir);
		if ((dir = fd) == -1)
			goto fail;
	}
	free(path);
	return dir;
fail:
	saved = errno;
	if (dir != -1)
		close(dir);
	free(path);
	errno = saved;
	return -1;
}

/* Why open_dirs refused, for a message. */
static const char *
open_dirs_error(int err)
{
	return err == ELOOP || err == ENOTDIR ? "a symbolic link or a file "
	    "is in the way of its directory: refused, not followed" :
	    strerror(err);
}

/*
 * A transfer's files, checked, wait for their names in batches: one
 * syncfs makes a batch's data durable before any of them is renamed, one
 * more makes the names durable. Two fsyncs a file before: on a disk that
 * takes 5 ms a sync, 100 s for 10,000 files.
 */
#define FETCH_BATCH	64	/* each holds its .part (locked), its dir */

/*
 * A transfer's files fetched at once, each thread with its own
 * connection: a request a file costs a round trip, which far from the
 * gateway is most of the time (bench/fetch.sh: 5.5x at 4 ms).
 */
#define FETCH_THREADS	8

struct pending {
	struct fetch	 g;
	char		*path, *qpath;	/* g's, owned */
};

struct batch {
	struct pending	 p[FETCH_BATCH];
	size_t		 n;
};

static void
pending_free(struct pending *p)
{
	if (p->g.fd != -1)
		close(p->g.fd);
	if (p->g.dirfd != -1)
		close(p->g.dirfd);
	filesum_free(p->g.sum);
	free(p->g.part);
	free(p->path);
	free(p->qpath);
}

/*
 * Makes the batch's data (names false) or names (true) durable: one
 * syncfs a local filesystem, else an fsync of each file or directory.
 */
static enum pf_status
batch_sync(struct fetch *f, const struct batch *b, bool names)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct fetch *g = &b->p[i].g;
		size_t j = 0;
		int rc;

		if (pf_syncfs_covers(g->fd)) {
			while (j < i && b->p[j].g.dev != g->dev)
				j++;
			if (j < i)
				continue;
			rc = syncfs(g->fd);
		} else
			rc = names ? pf_sync_dir(g->dirfd, g->name) :
			    fsync(g->fd);
		if (rc == -1) {
			remote_fail(&f->e, PF_EIO, f->id, "%s: sync: %s",
			    names ? g->path : g->part, strerror(errno));
			return PF_EIO;
		}
	}
	return PF_OK;
}

/*
 * Renames the batch's files into place, their data durable before and
 * their names after; on an error the rest stay .part, which the next run
 * checks again.
 */
static enum pf_status
batch_flush(struct fetch *f, struct batch *b)
{
	enum pf_status rc;
	size_t i;

	rc = batch_sync(f, b, false);
	for (i = 0; i < b->n && rc == PF_OK; i++)
		if ((rc = rename_part(&b->p[i].g)) != PF_OK)
			f->e = b->p[i].g.e;
	/* Even after an error: the names of those renamed. */
	if (i > 0) {
		struct remote_error first = f->e;
		size_t n = b->n;

		b->n = i;
		if (batch_sync(f, b, true) != PF_OK) {
			if (rc == PF_OK)
				rc = PF_EIO;
			else
				f->e = first;
		}
		b->n = n;
	}
	for (i = 0; i < b->n; i++)
		pending_free(&b->p[i]);
	b->n = 0;
	return rc;
}

/*
 * Gives the checked file g the mtime and mode bits its list entry e
 * has, as tar does (the mode with the owner's read and write, less the
 * umask). Only a warning if the filesystem will not.
 */
static void
keep_stat(struct fetch *g, const json_t *e, mode_t umask)
{
	json_int_t mode = json_integer_value(json_object_get(e, "mode"));
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT },
	    { .tv_sec = (time_t)json_integer_value(json_object_get(e,
	    "mtime")) } };

	if (futimens(g->fd, ts) == -1 || fchmod(g->fd, (((mode_t)mode &
	    0777) | 0600) & ~umask) == -1)
		log_warn("%s: mtime or mode: %s", g->path, strerror(errno));
}

/*
 * Whether g's file is in place already, as an earlier fetch left it:
 * its size and mtime those of list entry e (rsync's quick check), and
 * its receipt g's. Only then is it not fetched again.
 */
static bool
already_here(const struct fetch *g, const json_t *e)
{
	char mine[PF_SHA256_HEX];
	struct stat sb;
	bool same;
	int fd;

	if (fstatat(g->dirfd, g->name, &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
	    !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != g->size ||
	    sb.st_mtime != (time_t)json_integer_value(json_object_get(e,
	    "mtime")))
		return false;
	/* O_NONBLOCK: a FIFO put there meanwhile must not hang the open. */
	if ((fd = openat(g->dirfd, g->name, O_RDONLY | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC)) == -1)
		return false;
	same = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) &&
	    (uint64_t)sb.st_size == g->size && chunkio_receipt(fd, g->size,
	    g->chunk_size, mine) == PF_OK && strcmp(mine, g->digest) == 0;
	close(fd);
	return same;
}

/*
 * Fetches file entry e of transfer f into dir/<its path>, as one file is
 * fetched (resumable .part, receipt checked), with the file's own
 * receipt, into *out: it waits in a batch for its name. *here if the
 * file was there intact already (already_here): nothing in *out then.
 */
static enum pf_status
fetch_file(struct fetch *f, const char *dir, int top, const json_t *e,
    struct pending *out, bool *here)
{
	const char *p = json_string_value(json_object_get(e, "path"));
	const char *d = json_string_value(json_object_get(e, "digest"));
	json_int_t size = json_integer_value(json_object_get(e, "size"));
	struct fetch g = { .o = f->o, .h = f->h, .id = f->id, .fd = -1,
	    .dirfd = -1, .chunk_size = f->chunk_size,
	    .tree = f->tree != NULL ? f->tree : f };
	char *path = NULL, *q = NULL;
	const char *leaf;
	enum pf_status rc = PF_EPROTO;

	*here = false;
	if (p == NULL || (q = encode_path(p)) == NULL || d == NULL ||
	    strlen(d) != PF_SHA256_HEX - 1 || !hex_digest_valid(d) ||
	    size < 0) {
		remote_fail(&f->e, rc, f->id, "session %s: an entry the "
		    "server lists is not valid", f->id);
		goto out;
	}
	if (asprintf(&path, "%s/%s", dir, p) == -1 ||
	    (g.part = part_name(path, true)) == NULL) {
		rc = PF_ENOMEM;
		goto out;
	}
	g.path = path;
	g.qpath = q;
	g.size = (uint64_t)size;
	memcpy(g.digest, d, PF_SHA256_HEX);
	leaf = strrchr(p, '/');
	g.name = leaf != NULL ? leaf + 1 : p;
	g.name_part = strrchr(g.part, '/') + 1;
	if ((g.dirfd = open_dirs(top, p, false)) == -1) {
		rc = PF_EIO;
		remote_fail(&f->e, rc, f->id, "%s: %s", path,
		    open_dirs_error(errno));
		goto out;
	}
	if ((*here = already_here(&g, e))) {
		/* The bar counts it as done. */
		atomic_fetch_add(&g.tree->done, g.size);
		rc = PF_OK;
		goto out;
	}
	rc = open_part(&g);
	if (rc == PF_OK && g.offset < g.size)
		rc = download(&g);
	if (rc == PF_OK && (rc = check_receipt(&g)) == PF_OK)
		keep_stat(&g, e, g.tree->umask);
	f->got += g.got;
	if (rc != PF_OK) {
		f->e = g.e;
		goto out;
	}
	/* g.name points into the list, which stays. */
	*out = (struct pending){ g, path, q };
	return PF_OK;
out:
	pending_free(&(struct pending){ g, path, q });
	return rc;
}

/* Adds p to batch b (which owns it then), flushing b first if full. */
static enum pf_status
batch_add(struct fetch *f, struct batch *b, struct pending *p)
{
	enum pf_status rc;

	if (b->n == FETCH_BATCH && (rc = batch_flush(f, b)) != PF_OK) {
		pending_free(p);
		return rc;
	}
	b->p[b->n++] = *p;
	return PF_OK;
}

/*
 * Where syncfs is not enough: an fsync of the directory of each stored
 * entry of list beneath top, and of each of its ancestors.
 */
static int
sync_listed_dirs(int top, const json_t *list)
{
	struct pf_dir_syncs *ds = calloc(1, sizeof(*ds));
	const json_t *e;
	size_t i;
	int rc = 0;

	if (ds == NULL)
		return -1;
	json_array_foreach(list, i, e) {
		const char *p = json_string_value(json_object_get(e, "path"));

		if (json_integer_value(json_object_get(e, "status")) == 0 &&
		    p != NULL && (rc = pf_sync_dirs(top, p, ds)) == -1)
			break;
	}
	free(ds);
	return rc;
}

/* True if list entry e is a file the server stored. */
static bool
stored_file(const json_t *e)
{
	return json_integer_value(json_object_get(e, "status")) == 0 &&
	    json_is_string(json_object_get(e, "path")) &&
	    !json_is_true(json_object_get(e, "dir"));
}

/* The transfer's files fetched so far, for its bar. */
static unsigned
files_done(void *arg)
{
	struct fetch *f = arg;

	return atomic_load(&f->files);
}

/*
 * The bar of a transfer's fetch: the bytes and the count of the files of
 * list it stores, one line for them all (not one a file).
 */
static struct progress *
tree_bar(struct fetch *f, const json_t *list)
{
	struct progress_items items = { "files", 0, files_done, f };
	uint64_t total = 0;
	const json_t *e;
	size_t i;

	if (f->o->quiet || f->o->json)
		return NULL;
	json_array_foreach(list, i, e) {
		json_int_t size = json_integer_value(json_object_get(e,
		    "size"));

		if (!stored_file(e))
			continue;
		items.total++;
		total += size > 0 ? (uint64_t)size : 0;
	}
	return progress_start_items(f->id, total, &f->done, &items);
}

/* A transfer's fetch, shared by the threads that fetch its files. */
struct tree_run {
	struct fetch	*f;		/* the whole fetch: its bar, error */
	const char	*dir;
	int		 top;
	const json_t	*list;
	_Atomic size_t	 next;		/* the next entry of list to take */
	_Atomic bool	 failed;	/* take no more */
	pthread_mutex_t	 lock;		/* batch, rc, f->e, f->got */
	struct batch	*batch;		/* files waiting for their names */
	enum pf_status	 rc;		/* the first failure */
};

/* One thread of a transfer's fetch, with its own gateway connection. */
struct tree_worker {
	struct tree_run	*t;
	struct fetch	 w;	/* its client, its error, its bytes */
	pthread_t	 tid;
	bool		 started;
};


/* Records rc, w's outcome, as the fetch's if it is the first failure. */
static void
tree_fail(struct tree_run *t, struct fetch *w, enum pf_status rc)
{
	if (rc == PF_OK || t->rc != PF_OK)
		return;
	t->rc = rc;
	t->f->e = w->e;
	atomic_store(&t->failed, true);
}

/*
 * Fetches the files of t->list one after another, taking each from the
 * shared index; the checked ones join the shared batch (under the lock,
 * so its syncs stay one pair a batch whatever the threads).
 */
static void *
tree_worker_main(void *arg)
{
	struct tree_worker *tw = arg;
	struct tree_run *t = tw->t;
	size_t n = json_array_size(t->list), i;
	enum pf_status rc = PF_OK;
	struct pending p;
	bool here = false;

	while (!atomic_load(&t->failed) &&
	    (i = atomic_fetch_add(&t->next, 1)) < n) {
		const json_t *e = json_array_get(t->list, i);

		if (!stored_file(e))
			continue;
		rc = fetch_file(&tw->w, t->dir, t->top, e, &p, &here);
		pthread_mutex_lock(&t->lock);
		if (rc == PF_OK && here)
			atomic_fetch_add(&t->f->here, 1);
		if (rc == PF_OK && (here || (rc = batch_add(&tw->w, t->batch,
		    &p)) == PF_OK))
			atomic_fetch_add(&t->f->files, 1);
		tree_fail(t, &tw->w, rc);
		pthread_mutex_unlock(&t->lock);
		if (rc != PF_OK)
			break;
	}
	pthread_mutex_lock(&t->lock);
	t->f->got += tw->w.got;
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

/* Makes the directories list names (the empty ones too) beneath top. */
static enum pf_status
make_listed_dirs(struct fetch *f, const char *dir, int top,
    const json_t *list)
{
	const json_t *e;
	size_t i;
	int fd;

	json_array_foreach(list, i, e) {
		const char *p = json_string_value(json_object_get(e, "path"));
		char *safe;

		if (json_integer_value(json_object_get(e, "status")) != 0 ||
		    p == NULL || !json_is_true(json_object_get(e, "dir")))
			continue;
		if ((safe = encode_path(p)) == NULL) {
			remote_fail(&f->e, PF_EPROTO, f->id, "session %s: an "
			    "entry the server lists is not valid", f->id);
			return PF_EPROTO;
		}
		free(safe);
		if ((fd = open_dirs(top, p, true)) == -1) {
			remote_fail(&f->e, PF_EIO, f->id, "%s/%s: %s", dir, p,
			    open_dirs_error(errno));
			return PF_EIO;
		}
		close(fd);
	}
	return PF_OK;
}

/* Runs the fetch of t's files on up to threads threads; t->rc says. */
static void
fetch_files(struct tree_run *t, unsigned threads)
{
	struct tree_worker *tw = calloc(threads, sizeof(*tw));
	unsigned k;

	if (tw == NULL) {
		remote_fail(&t->f->e, PF_ENOMEM, t->f->id, "out of memory");
		t->rc = PF_ENOMEM;
		return;
	}
	for (k = 0; k < threads; k++) {
		tw[k].t = t;
		tw[k].w = (struct fetch){ .o = t->f->o, .id = t->f->id,
		    .chunk_size = t->f->chunk_size, .tree = t->f, .fd = -1,
		    .dirfd = -1 };
		/* The first shares the fetch's connection. */
		tw[k].w.h = k == 0 ? t->f->h : http_dup(t->f->h);
		if (tw[k].w.h == NULL || (k > 0 && pthread_create(&tw[k].tid,
		    NULL, tree_worker_main, &tw[k]) != 0))
			break;
		tw[k].started = k > 0;
	}
	/* Fewer threads than asked for (ENOMEM): the rest do it all. */
	tree_worker_main(&tw[0]);
	for (unsigned j = 1; j < threads; j++) {
		if (tw[j].started)
			pthread_join(tw[j].tid, NULL);
		if (tw[j].w.h != NULL)
			http_free(tw[j].w.h);
	}
	free(tw);
}

/*
 * A transfer: every stored entry of list into directory dir, each file
 * with its own receipt checked, o->threads files at once. dir is the
 * user's, made if need be; what the server names goes beneath it and
 * never through a link (open_dirs).
 */
static enum pf_status
fetch_tree(struct fetch *f, const char *dir, const json_t *list)
{
	struct tree_run t = { .f = f, .dir = dir, .list = list,
	    .rc = PF_OK };
	struct progress *bar;
	enum pf_status flushed;
	unsigned threads = f->o->threads ? f->o->threads : FETCH_THREADS;
	size_t nfiles = 0, i;
	const json_t *e;
	char *copy;

	if ((copy = strdup(dir)) == NULL || (t.batch = calloc(1,
	    sizeof(*t.batch))) == NULL) {
		free(copy);
		return PF_ENOMEM;
	}
	if (make_dirs(copy) != PF_OK || (t.top = open(dir, O_RDONLY |
	    O_DIRECTORY | O_CLOEXEC)) == -1) {
		free(copy);
		free(t.batch);
		remote_fail(&f->e, PF_EIO, f->id, "%s: %s", dir,
		    strerror(errno));
		return PF_EIO;
	}
	free(copy);
	json_array_foreach(list, i, e)
		nfiles += stored_file(e);
	if (threads > nfiles)
		threads = nfiles > 0 ? (unsigned)nfiles : 1;
	pthread_mutex_init(&t.lock, NULL);
	bar = tree_bar(f, list);
	if ((t.rc = make_listed_dirs(f, dir, t.top, list)) == PF_OK)
		fetch_files(&t, threads);
	progress_stop(bar);
	/* Those checked before an error keep their names all the same. */
	if ((flushed = batch_flush(f, t.batch)) != PF_OK && t.rc == PF_OK)
		t.rc = flushed;
	/* The directories' names too, the empty ones' included. */
	if (t.rc == PF_OK && (pf_syncfs_covers(t.top) ? syncfs(t.top) :
	    sync_listed_dirs(t.top, list)) == -1) {
		t.rc = PF_EIO;
		remote_fail(&f->e, t.rc, f->id, "%s: sync: %s", dir,
		    strerror(errno));
	}
	pthread_mutex_destroy(&t.lock);
	free(t.batch);
	close(t.top);
	return t.rc;
}

/* Whether sb is standard output's file. */
static bool
is_stdout(const struct stat *sb)
{
	struct stat out;

	return fstat(STDOUT_FILENO, &out) == 0 && sb->st_dev == out.st_dev &&
	    sb->st_ino == out.st_ino && sb->st_rdev == out.st_rdev;
}

/* Whether fd is standard output's file (-o /dev/stdout, say). */
static bool
same_as_stdout(int fd)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 && is_stdout(&sb);
}

/*
 * Whether -o names no file to keep but somewhere to write to: "-" or
 * standard output's file (/dev/stdout), or a device or FIFO that is
 * there already (/dev/null, a pipe), which a .part renamed over it
 * would replace.
 */
static bool
output_is_stream(const char *path)
{
	struct stat sb;

	return strcmp(path, "-") == 0 || (stat(path, &sb) == 0 &&
	    (S_ISCHR(sb.st_mode) || S_ISBLK(sb.st_mode) ||
	    S_ISFIFO(sb.st_mode) || (S_ISREG(sb.st_mode) &&
	    is_stdout(&sb))));
}

/*
 * -o path as a symbolic link names the file it leads to, as for cp and
 * curl (a rename over the link would replace the link): into *path,
 * then owned by *own. PF_EIO if it leads nowhere.
 */
static enum pf_status
follow_output(struct fetch *f, char **own)
{
	struct stat sb;

	*own = NULL;
	if (lstat(f->path, &sb) == -1 || !S_ISLNK(sb.st_mode))
		return PF_OK;
	if ((*own = realpath(f->path, NULL)) == NULL) {
		remote_fail(&f->e, PF_EIO, f->id, "%s: a symbolic link to "
		    "nothing that can be written (%s)", f->path,
		    strerror(errno));
		return PF_EIO;
	}
	f->path = *own;
	return PF_OK;
}

/*
 * One file into stream target f->path, in order as it comes, its
 * receipt checked as it is written: nothing to resume, nothing renamed.
 */
static enum pf_status
fetch_stream(struct fetch *f)
{
	enum pf_status rc;

	f->fd = strcmp(f->path, "-") == 0 ? dup(STDOUT_FILENO) :
	    open(f->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (f->fd == -1) {
		remote_fail(&f->e, PF_EIO, f->id, "%s: %s", f->path,
		    strerror(errno));
		return PF_EIO;
	}
	f->stream = true;
	if ((f->to_stdout = same_as_stdout(f->fd)) && f->o->json) {
		remote_fail(&f->e, PF_EUSAGE, f->id, "--json writes to "
		    "standard output, where -o %s would write the file",
		    f->path);
		return PF_EUSAGE;
	}
	set_offset(f, 0);
	if (f->size > 0 && (rc = download(f)) != PF_OK)
		return rc;
	return check_receipt(f);
}

int
fetch_run(const struct remote_opts *o, const char *id, const char *out)
{
	struct fetch f = { .o = o, .id = id, .path = out ? out : id,
	    .fd = -1, .dirfd = AT_FDCWD };
	uint64_t start = pf_now_ms();
	json_t *list = NULL;
	char *followed = NULL;
	int status = EXIT_OK;

	/* Said before anything is asked of the gateway. */
	if (o->json && strcmp(f.path, "-") == 0) {
		remote_fail(&f.e, PF_EUSAGE, id, "--json writes to standard "
		    "output, where -o - would write the file");
		goto fail;
	}
	if ((f.h = remote_open(o, &f.e)) == NULL)
		goto fail;
	if (!output_is_stream(f.path) && follow_output(&f, &followed) != PF_OK)
		goto fail;
	if ((f.part = part_name(f.path, false)) == NULL) {
		remote_fail(&f.e, PF_ENOMEM, id, "out of memory");
		goto fail;
	}
	f.name = f.path;
	f.name_part = f.part;
	f.umask = umask(0);
	umask(f.umask);
	if (read_session(&f) != PF_OK)
		goto fail;
	if (output_is_stream(f.path)) {
		if (f.transfer) {
			remote_fail(&f.e, PF_EUSAGE, id, "session %s is a "
			    "transfer of many files: -o names a directory "
			    "for it, not %s", id, f.path);
			goto fail;
		}
		if (fetch_stream(&f) != PF_OK)
			goto fail;
		print_result(&f, (double)(pf_now_ms() - start) / 1000);
		goto done;
	}
	/* A transfer of many files (its session counts them) lists them. */
	if (f.transfer) {
		if (remote_call(f.h, "GET", id, &list, &f.e,
		    "/sessions/%s/files", id) != PF_OK)
			goto fail;
		if (!json_is_array(json_object_get(list, "files"))) {
			remote_fail(&f.e, PF_EPROTO, id, "session %s: the "
			    "server lists no files for a transfer", id);
			goto fail;
		}
		if (fetch_tree(&f, f.path, json_object_get(list, "files")) !=
		    PF_OK)
			goto fail;
		print_tree(&f, (double)(pf_now_ms() - start) / 1000);
		goto done;
	}
	if (open_part(&f) != PF_OK)
		goto fail;
	if (f.offset < f.size && download(&f) != PF_OK)
		goto fail;
	if (verify_and_keep(&f) != PF_OK)
		goto fail;
	print_result(&f, (double)(pf_now_ms() - start) / 1000);
	goto done;
fail:
	status = remote_report(&f.e, o->json);
done:
	json_decref(list);
	if (f.fd != -1)
		close(f.fd);
	filesum_free(f.sum);
	free(f.part);
	free(followed);
	remote_close(f.h);
	return status;
}
