/* SPDX-License-Identifier: MIT */
/* Resume state files: where they live, what they hold, atomic updates. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "digest.h"
#include "fsutil.h"
#include "log.h"
#include "state.h"

/* Tries to take a lock file that another process is removing. */
#define LOCK_TRIES	5

struct state {
	char		*dir;
	char		*file;		/* <dir>/<key>.json */
	char		*lock;		/* <dir>/<key>.lock */
	int		 lock_fd;
	/* What the file must say to be ours. */
	char		*host;
	unsigned	 port;
	char		*user;
	char		*real;		/* realpath of the file */
	uint64_t	 size;
	int64_t		 mtime_ns;
	uint32_t	 chunk_size;
	char		*name;
};

char *
state_dir(void)
{
	const char *env = getenv("PARAFLOW_STATE_DIR");
	char *dir = NULL;

	if (env != NULL && *env != '\0')
		return strdup(env);
	/* The XDG spec says a relative XDG_STATE_HOME is to be ignored. */
	env = getenv("XDG_STATE_HOME");
	if (env != NULL && *env == '/') {
		if (asprintf(&dir, "%s/paraflow", env) == -1)
			dir = NULL;
		return dir;
	}
	env = getenv("HOME");
	if (env != NULL && *env != '\0') {
		if (asprintf(&dir, "%s/.local/state/paraflow", env) == -1)
			dir = NULL;
		return dir;
	}
	return NULL;
}

enum pf_status
state_make_dirs(const char *dir)
{
	char *p = strdup(dir), *s, c;
	struct stat sb;
	enum pf_status rc = PF_ENOMEM;

	if (p == NULL)
		goto out;
	rc = PF_EIO;
	for (s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		c = *s;
		*s = '\0';
		/*
		 * A directory made here has its parent synced: otherwise a
		 * power loss may take it, with the state files synced in it.
		 */
		if (mkdir(p, 0700) == 0 ? pf_sync_dir(AT_FDCWD, p) == -1 :
		    errno != EEXIST) {
			log_info("cannot create %s: %s", p, strerror(errno));
			goto out;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	if (stat(dir, &sb) == -1 || !S_ISDIR(sb.st_mode)) {
		log_info("%s is not a directory", dir);
		goto out;
	}
	rc = PF_OK;
out:
	free(p);
	return rc;
}

static enum pf_status
hash_field(struct pf_sha256 *h, const char *s)
{
	/* The NUL ends each field, so no two keys run together alike. */
	return pf_sha256_update(h, s, strlen(s) + 1);
}

static enum pf_status
hash_number(struct pf_sha256 *h, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return hash_field(h, buf);
}

/* The file name of a state: hex SHA-256 of everything that identifies it. */
static enum pf_status
state_key(const struct state_id *id, const char *real, int64_t mtime_ns,
    char hex[PF_SHA256_HEX])
{
	struct pf_sha256 *h = pf_sha256_new();
	uint8_t md[PF_SHA256_LEN];
	enum pf_status rc = PF_ENOMEM;

	if (h == NULL)
		return rc;
	if ((rc = pf_sha256_init(h)) != PF_OK ||
	    (rc = hash_field(h, id->host)) != PF_OK ||
	    (rc = hash_number(h, id->port)) != PF_OK ||
	    (rc = hash_field(h, id->user)) != PF_OK ||
	    (rc = hash_field(h, real)) != PF_OK ||
	    (rc = hash_number(h, (uint64_t)id->sb->st_dev)) != PF_OK ||
	    (rc = hash_number(h, (uint64_t)id->sb->st_ino)) != PF_OK ||
	    (rc = hash_number(h, (uint64_t)id->sb->st_size)) != PF_OK ||
	    (rc = hash_number(h, (uint64_t)mtime_ns)) != PF_OK ||
	    (rc = hash_number(h, id->chunk_size)) != PF_OK ||
	    (rc = hash_field(h, id->name)) != PF_OK ||
	    (rc = pf_sha256_final(h, md)) != PF_OK)
		goto out;
	pf_hex_encode(md, sizeof(md), hex);
out:
	pf_sha256_free(h);
	return rc;
}

/*
 * Takes the lock file. Another process may unlink it (after its upload
 * completed) between our open and our flock; then we hold a lock on a
 * file nobody else will see, so we check that the path still names it.
 */
/*
 * Removes KEY.json.tmp-* in dir: what a run killed while it rewrote the
 * state file left (pf_write_atomic). Only with KEY's lock held, so that
 * no other run is writing one.
 */
static void
remove_stale_temps(const char *dir, const char *key)
{
	char prefix[PF_SHA256_HEX + 16];
	struct dirent *d;
	DIR *dp;

	if ((dp = opendir(dir)) == NULL)
		return;
	snprintf(prefix, sizeof(prefix), "%s.json.tmp-", key);
	while ((d = readdir(dp)) != NULL)
		if (strncmp(d->d_name, prefix, strlen(prefix)) == 0 &&
		    unlinkat(dirfd(dp), d->d_name, 0) == 0)
			log_debug("removed %s/%s, left by a run that was "
			    "killed", dir, d->d_name);
	closedir(dp);
}

static enum pf_status
take_lock(struct state *st)
{
	struct stat held, named;

	for (int i = 0; i < LOCK_TRIES; i++) {
		st->lock_fd = open(st->lock, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (st->lock_fd == -1) {
			log_info("cannot open %s: %s", st->lock,
			    strerror(errno));
			return PF_EIO;
		}
		if (flock(st->lock_fd, LOCK_EX | LOCK_NB) == -1) {
			if (errno == EWOULDBLOCK)
				log_info("another paraflow is running this "
				    "upload; this one will not be resumable");
			else
				log_info("cannot lock %s: %s", st->lock,
				    strerror(errno));
			return PF_EBUSY;
		}
		if (fstat(st->lock_fd, &held) == 0 &&
		    stat(st->lock, &named) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			return PF_OK;
		close(st->lock_fd);
		st->lock_fd = -1;
	}
	return PF_EBUSY;
}

static void
state_free(struct state *st)
{
	if (st == NULL)
		return;
	if (st->lock_fd != -1)
		close(st->lock_fd);
	free(st->dir);
	free(st->file);
	free(st->lock);
	free(st->host);
	free(st->user);
	free(st->real);
	free(st->name);
	free(st);
}

enum pf_status
state_open(const struct state_id *id, struct state **out)
{
	struct state *st;
	char key[PF_SHA256_HEX];
	enum pf_status rc = PF_ENOMEM;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return rc;
	st->lock_fd = -1;
	st->port = id->port;
	st->size = (uint64_t)id->sb->st_size;
	st->mtime_ns = (int64_t)id->sb->st_mtim.tv_sec * 1000000000 +
	    id->sb->st_mtim.tv_nsec;
	st->chunk_size = id->chunk_size;
	if ((st->host = strdup(id->host)) == NULL ||
	    (st->user = strdup(id->user)) == NULL ||
	    (st->name = strdup(id->name)) == NULL)
		goto out;
	if ((st->real = realpath(id->path, NULL)) == NULL) {
		rc = errno == ENOMEM ? PF_ENOMEM : PF_OK;
		log_info("%s: %s; this upload will not be resumable",
		    id->path, strerror(errno));
		goto out;
	}
	if ((st->dir = state_dir()) == NULL) {
		log_info("no $PARAFLOW_STATE_DIR, $XDG_STATE_HOME or $HOME; "
		    "this upload will not be resumable");
		rc = PF_OK;
		goto out;
	}
	if ((rc = state_key(id, st->real, st->mtime_ns, key)) != PF_OK) {
		log_info("cannot name the state file: %s",
		    pf_status_message(rc));
		rc = rc == PF_ENOMEM ? rc : PF_OK;
		goto out;
	}
	rc = PF_ENOMEM;
	if (asprintf(&st->file, "%s/%s.json", st->dir, key) == -1 ||
	    asprintf(&st->lock, "%s/%s.lock", st->dir, key) == -1) {
		st->file = st->lock = NULL;
		goto out;
	}
	/* Without a directory or a lock the upload simply is not resumable. */
	if (state_make_dirs(st->dir) != PF_OK || take_lock(st) != PF_OK) {
		rc = PF_OK;
		goto out;
	}
	remove_stale_temps(st->dir, key);
	*out = st;
	st = NULL;
	rc = PF_OK;
out:
	state_free(st);
	return rc;
}

static bool
str_is(const json_t *j, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(j, key));

	return v != NULL && strcmp(v, want) == 0;
}

static bool
int_is(const json_t *j, const char *key, int64_t want)
{
	const json_t *v = json_object_get(j, key);

	return json_is_integer(v) && json_integer_value(v) == want;
}

void
state_load(struct state *st, char sid[PROTO_ID_LEN + 1], json_t **layout)
{
	json_error_t err;
	const char *s;
	json_t *j;

	sid[0] = '\0';
	if (layout != NULL)
		*layout = NULL;
	if ((j = json_load_file(st->file, JSON_REJECT_DUPLICATES,
	    &err)) == NULL) {
		if (access(st->file, F_OK) == 0)
			log_info("%s: %s; ignoring it", st->file, err.text);
		return;
	}
	s = json_string_value(json_object_get(j, "session"));
	if (s == NULL || strlen(s) != PROTO_ID_LEN ||
	    !str_is(j, "host", st->host) || !int_is(j, "port", st->port) ||
	    !str_is(j, "user", st->user) || !str_is(j, "file", st->real) ||
	    !int_is(j, "size", (int64_t)st->size) ||
	    !int_is(j, "mtime_ns", st->mtime_ns) ||
	    !int_is(j, "chunk_size", st->chunk_size) ||
	    !str_is(j, "name", st->name))
		log_info("%s does not describe this upload; ignoring it",
		    st->file);
	else {
		memcpy(sid, s, PROTO_ID_LEN + 1);
		if (layout != NULL)
			*layout = json_incref(json_object_get(j, "layout"));
	}
	json_decref(j);
}

enum pf_status
state_save(struct state *st, const char *sid, const char *layout)
{
	char created[32], *text = NULL;
	time_t now = time(NULL);
	struct pf_buf b;
	json_t *j;
	enum pf_status rc = PF_ENOMEM;

	pf_time_rfc3339(now, created);
	pf_buf_init(&b, SIZE_MAX / 2);
	/* json_pack refuses a string that is not UTF-8 (a path may not be). */
	j = json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:s,s:s}",
	    "session", sid, "host", st->host, "port", (json_int_t)st->port,
	    "user", st->user, "file", st->real, "size", (json_int_t)st->size,
	    "mtime_ns", (json_int_t)st->mtime_ns, "chunk_size",
	    (json_int_t)st->chunk_size, "name", st->name, "created", created);
	if (j == NULL || (text = json_dumps(j, JSON_COMPACT)) == NULL) {
		log_warn("cannot record the resume state (is the path valid "
		    "UTF-8?); this upload will not be resumable");
		goto out;
	}
	/* The layout, a transfer's whole list, is text already. */
	pf_buf_add_json_with(&b, text, "layout", layout);
	if (!PF_BUF_ADD_LIT(&b, "\n")) {
		log_warn("cannot record the resume state: out of memory; "
		    "this upload will not be resumable");
		goto out;
	}
	rc = PF_EIO;
	/* A crash leaves the old state or the new one, never half of it. */
	if (pf_write_atomic(AT_FDCWD, st->file, b.p, b.len, 0600) == -1) {
		log_warn("cannot write %s: %s", st->file, strerror(errno));
		goto out;
	}
	rc = PF_OK;
out:
	pf_buf_free(&b);
	free(text);
	json_decref(j);
	return rc;
}

void
state_remove(struct state *st)
{
	if (unlink(st->file) == -1 && errno != ENOENT)
		log_warn("cannot remove %s: %s", st->file, strerror(errno));
}

void
state_close(struct state *st)
{
	if (st == NULL)
		return;
	/*
	 * Without a state file the lock guards nothing. We still hold it, so
	 * no other process is using either file meanwhile.
	 */
	if (access(st->file, F_OK) == -1 && errno == ENOENT)
		unlink(st->lock);
	state_free(st);
}

const char *
state_path(const struct state *st)
{
	return st->file;
}
