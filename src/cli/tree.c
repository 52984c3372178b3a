/* SPDX-License-Identifier: MIT */
/* The files under the paths of a transfer, and their bytes as one. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "proto.h"
#include "text.h"
#include "tree.h"

/* Deeper than this, a followed symlink most likely loops. */
#define TREE_MAX_DEPTH	PROTO_MAX_DEPTH

/* A directory being walked: the ones above the current path. */
struct walk_up {
	dev_t	 dev;
	ino_t	 ino;
};

struct walk {
	struct tree		*t;
	const struct tree_opts	*o;
	char			*err;
	size_t			 cap;
	struct walk_up		 up[TREE_MAX_DEPTH + 2];
	unsigned		 nup;
	int			 root;		/* the root walked: in rootfd,
						   or -1 */
	size_t			 below;		/* the length of its path, and
						   the '/' after it */
};

void
tree_free(struct tree *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].local);
		free(t->e[i].rel);
		filesum_free(t->e[i].sum);
	}
	free(t->e);
	for (size_t i = 0; i < t->nfolders; i++) {
		if (t->folders[i].fd != -1)
			close(t->folders[i].fd);
		free(t->folders[i].path);
	}
	free(t->folders);
	free(t->spans);
	json_decref(t->skips);
	free(t);
}

/*
 * Whether an --exclude matches rel (base, its last name); one that ends
 * in '/' matches folders only (dir), as in rsync and .gitignore.
 */
static bool
excluded(const struct tree_opts *o, const char *rel, const char *base,
    bool dir)
{
	char cut[PATH_MAX];

	for (size_t i = 0; i < o->nexclude; i++) {
		const char *pat = o->exclude[i];
		size_t len = strlen(pat);

		/* Only a folders' pattern is copied, without its '/'. */
		if (len > 1 && pat[len - 1] == '/') {
			if (!dir || len > sizeof(cut))
				continue;
			memcpy(cut, pat, len - 1);
			cut[len - 1] = '\0';
			pat = cut;
		}
		if (fnmatch(pat, base, 0) == 0 ||
		    fnmatch(pat, rel, FNM_PATHNAME) == 0)
			return true;
	}
	return false;
}

/* Appends an entry; local and rel are copied. */
static enum pf_status
add(struct walk *w, const char *local, const char *rel,
    const struct stat *sb)
{
	struct tree *t = w->t;
	struct tree_entry *e;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;

		if ((e = realloc(t->e, cap * sizeof(*e))) == NULL)
			return PF_ENOMEM;
		t->e = e;
		t->cap = cap;
	}
	e = &t->e[t->n];
	memset(e, 0, sizeof(*e));
	if ((e->local = strdup(local)) == NULL ||
	    (e->rel = strdup(rel)) == NULL) {
		free(e->local);
		return PF_ENOMEM;
	}
	e->dir = S_ISDIR(sb->st_mode);
	e->size = e->dir ? 0 : (uint64_t)sb->st_size;
	e->mode = (uint32_t)sb->st_mode & 0777;
	e->mtime = (int64_t)sb->st_mtim.tv_sec;
	e->mtim = sb->st_mtim;
	e->ctim = sb->st_ctim;
	/* Beneath its root, opened beneath it (tree_open). */
	e->root = strlen(local) > w->below ? w->root : -1;
	e->below = e->root != -1 ? w->below : 0;
	e->offset = t->total;
	t->total += e->size;
	t->files += !e->dir;
	t->n++;
	return PF_OK;
}

static int
name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static enum pf_status walk_path(struct walk *w, const char *local,
    const char *rel, unsigned depth);

/* The entries of directory local, in byte order of their names. */
static enum pf_status
walk_dir(struct walk *w, const char *local, const char *rel, unsigned depth)
{
	struct dirent **names = NULL;
	enum pf_status rc = PF_OK;
	int n;

	if ((n = scandir(local, &names, NULL, name_cmp)) == -1) {
		snprintf(w->err, w->cap, "%s: %s", local, strerror(errno));
		return PF_EIO;
	}
	for (int i = 0; i < n; i++) {
		const char *d = names[i]->d_name;
		char *l = NULL, *r = NULL;

		if (rc == PF_OK && strcmp(d, ".") != 0 &&
		    strcmp(d, "..") != 0) {
			if (asprintf(&l, "%s/%s", local, d) == -1)
				l = NULL;
			if (asprintf(&r, "%s/%s", rel, d) == -1)
				r = NULL;
			rc = l && r ? walk_path(w, l, r, depth + 1) : PF_ENOMEM;
			free(l);
			free(r);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

/*
 * Skips what cannot be sent, with a warning, and lists the first ones
 * for --json (their paths escaped as the log does: a name may be no
 * text).
 */
static enum pf_status
skip(struct walk *w, const char *local, const char *what)
{
	char path[PATH_MAX * 4 + 1];

	w->t->skipped++;
	if (!w->o->quiet)
		log_warn("skipping %s: %s", local, what);
	if (w->t->skipped > TREE_SKIPS_LISTED)
		return PF_OK;
	pf_text_escape(path, sizeof(path), local, NULL);
	if (w->t->skips == NULL && (w->t->skips = json_array()) == NULL)
		return PF_ENOMEM;
	return json_array_append_new(w->t->skips, json_pack("{s:s,s:s}",
	    "path", path, "reason", what)) == 0 ? PF_OK : PF_ENOMEM;
}

/*
 * Why local (sb, stat's) cannot be read, listed if it is a directory; or
 * NULL. The kernel is asked only where the mode bits do not let every
 * class read (and list), so that ACLs and root's rights are its call.
 */
static const char *
unreadable_why(const char *local, const struct stat *sb)
{
	mode_t all = S_ISDIR(sb->st_mode) ? 0555 : 0444;

	if ((sb->st_mode & all) == all || faccessat(AT_FDCWD, local,
	    S_ISDIR(sb->st_mode) ? R_OK | X_OK : R_OK, AT_EACCESS) == 0)
		return NULL;
	return S_ISDIR(sb->st_mode) ? "a folder that cannot be listed" :
	    "a file that cannot be read";
}

/* True if name is valid UTF-8, as a manifest's names must be. */
static bool
utf8_name(const char *name)
{
	json_t *j = json_string(name);

	json_decref(j);
	return j != NULL;
}

static enum pf_status
walk_path(struct walk *w, const char *local, const char *rel, unsigned depth)
{
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	const char *bad;
	struct stat sb;
	enum pf_status rc;

	if (excluded(w->o, rel, base, false))
		return PF_OK;
	if (!utf8_name(base))
		return skip(w, local, "a name that is not valid UTF-8");
	if (lstat(local, &sb) == -1) {
		snprintf(w->err, w->cap, "%s: %s", local, strerror(errno));
		return PF_EIO;
	}
	if (S_ISLNK(sb.st_mode)) {
		if (!w->o->follow_symlinks)
			return skip(w, local, "a symbolic link (not followed "
			    "without --follow-symlinks)");
		if (stat(local, &sb) == -1)
			return skip(w, local, errno == ENOENT ?
			    "a dangling symbolic link" : strerror(errno));
	}
	if (depth > TREE_MAX_DEPTH) {
		char why[48];

		snprintf(why, sizeof(why), "more than %d levels deep",
		    TREE_MAX_DEPTH);
		return skip(w, local, why);
	}
	if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))
		return skip(w, local, S_ISFIFO(sb.st_mode) ? "a FIFO" :
		    S_ISSOCK(sb.st_mode) ? "a socket" : "a device file");
	if (S_ISDIR(sb.st_mode) && excluded(w->o, rel, base, true))
		return PF_OK;
	if ((bad = unreadable_why(local, &sb)) != NULL)
		return skip(w, local, bad);
	/* Stopped here: a tree of links may hold millions. */
	if (w->t->n >= PROTO_MAX_FILES) {
		snprintf(w->err, w->cap, "more than %u entries, the most one "
		    "transfer lists: send the tree in parts", PROTO_MAX_FILES);
		return PF_ETOOLARGE;
	}
	if (S_ISREG(sb.st_mode))
		return add(w, local, rel, &sb);
	/* A followed link back to a directory above: once is enough. */
	for (unsigned i = 0; i < w->nup; i++)
		if (w->up[i].dev == sb.st_dev && w->up[i].ino == sb.st_ino)
			return skip(w, local, "a symbolic link loop (to a "
			    "directory it is in)");
	if ((rc = add(w, local, rel, &sb)) != PF_OK)
		return rc;
	w->up[w->nup++] = (struct walk_up){ sb.st_dev, sb.st_ino };
	rc = walk_dir(w, local, rel, depth);
	w->nup--;
	return rc;
}

/* The base name a root path is stored under ("photos" for "a/photos/"). */
static char *
root_name(const char *path)
{
	char *copy = strdup(path), *base, *out = NULL;
	size_t len;

	if (copy == NULL)
		return NULL;
	/* basename() drops trailing slashes; "." and "/" have no name. */
	while ((len = strlen(copy)) > 1 && copy[len - 1] == '/')
		copy[len - 1] = '\0';
	base = basename(copy);
	if (strcmp(base, "/") != 0 && strcmp(base, "..") != 0)
		out = strdup(strcmp(base, ".") == 0 ? "" : base);
	free(copy);
	return out;
}

/* Opens root folder path, not through a link at its end. */
static int
open_root(const char *path)
{
	return open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * Notes root folder path, for the walk's entries to be opened beneath
 * it: a folder replaced by a link after the walk must not lead the
 * reads out of the tree. The first TREE_HELD_ROOTS are held open (one
 * swapped itself is still the one read); the rest are opened at each
 * read. Nothing if path is no folder.
 */
static enum pf_status
hold_root(struct walk *w, const char *path)
{
	struct tree *t = w->t;
	struct tree_root *v;
	struct stat sb;
	int fd = -1;

	w->root = -1;
	w->below = SIZE_MAX;
	if (t->follow || lstat(path, &sb) == -1 || !S_ISDIR(sb.st_mode))
		return PF_OK;
	if ((v = realloc(t->folders, (t->nfolders + 1) * sizeof(*v))) == NULL)
		return PF_ENOMEM;
	t->folders = v;
	if (t->nfolders < TREE_HELD_ROOTS && (fd = open_root(path)) == -1)
		return PF_OK;	/* the walk says why */
	if ((v[t->nfolders].path = strdup(path)) == NULL) {
		if (fd != -1)
			close(fd);
		return PF_ENOMEM;
	}
	v[t->nfolders].fd = fd;
	w->root = (int)t->nfolders++;
	w->below = strlen(path) + 1;
	return PF_OK;
}

/* The walk of one root: "." means its entries, each at the top. */
static enum pf_status
walk_root(struct walk *w, const char *path)
{
	char *name = root_name(path);
	enum pf_status rc;

	if (name == NULL) {
		snprintf(w->err, w->cap, "%s: give a directory by name (or .)",
		    path);
		return PF_EUSAGE;
	}
	if (hold_root(w, path) != PF_OK) {
		free(name);
		return PF_ENOMEM;
	}
	if (name[0] == '\0') {
		struct dirent **names = NULL;
		int n = scandir(path, &names, NULL, name_cmp);

		rc = n == -1 ? PF_EIO : PF_OK;
		for (int i = 0; i < n; i++) {
			char *l = NULL;
			const char *d = names[i]->d_name;

			if (rc == PF_OK && strcmp(d, ".") && strcmp(d, "..")) {
				rc = asprintf(&l, "%s/%s", path, d) == -1 ?
				    PF_ENOMEM : walk_path(w, l, d, 1);
				free(l);
			}
			free(names[i]);
		}
		free(names);
		if (n == -1)
			snprintf(w->err, w->cap, "%s: %s", path,
			    strerror(errno));
	} else
		rc = walk_path(w, path, name, 1);
	free(name);
	return rc;
}

json_t *
tree_manifest(const struct tree *t)
{
	json_t *a = json_array(), *e;

	for (size_t i = 0; a != NULL && i < t->n; i++) {
		const struct tree_entry *x = &t->e[i];

		e = x->dir ? json_pack("{s:s,s:b}", "path", x->rel, "dir", 1) :
		    json_pack("{s:s,s:I,s:I,s:I}", "path", x->rel, "size",
		    (json_int_t)x->size, "mode", (json_int_t)x->mode, "mtime",
		    (json_int_t)x->mtime);
		/* Only a laid out tree says where: an older server reads
		   no offsets (the client asks for "amend" first). */
		if (e != NULL && t->placed && !x->dir && json_object_set_new(e,
		    "offset", json_integer((json_int_t)x->offset)) == -1) {
			json_decref(e);
			e = NULL;
		}
		if (e == NULL || json_array_append_new(a, e) == -1) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

/* Entry i's change stamp (tree_stamps): its ctime in ns, 0 for a dir. */
static int64_t
stamp_of(const struct tree_entry *e)
{
	return e->dir ? 0 : (int64_t)e->ctim.tv_sec * 1000000000 +
	    e->ctim.tv_nsec;
}

json_t *
tree_stamps(const struct tree *t)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < t->n; i++)
		if (json_array_append_new(a, json_integer(
		    (json_int_t)stamp_of(&t->e[i]))) == -1) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

bool
tree_add_stamps(const struct tree *t, struct pf_buf *b)
{
	PF_BUF_ADD_LIT(b, "[");
	for (size_t i = 0; i < t->n; i++) {
		if (i > 0)
			PF_BUF_ADD_LIT(b, ",");
		pf_buf_add_int(b, stamp_of(&t->e[i]));
	}
	return PF_BUF_ADD_LIT(b, "]");
}

bool
tree_add_manifest(const struct tree *t, struct pf_buf *b)
{
	PF_BUF_ADD_LIT(b, "[");
	for (size_t i = 0; i < t->n; i++) {
		const struct tree_entry *x = &t->e[i];

		if (i > 0)
			PF_BUF_ADD_LIT(b, ",");
		PF_BUF_ADD_LIT(b, "{\"path\":");
		pf_buf_add_json_string(b, x->rel);
		if (x->dir) {
			PF_BUF_ADD_LIT(b, ",\"dir\":true}");
			continue;
		}
		PF_BUF_ADD_KEY(b, "size");
		pf_buf_add_int(b, (int64_t)x->size);
		PF_BUF_ADD_KEY(b, "mode");
		pf_buf_add_int(b, x->mode);
		PF_BUF_ADD_KEY(b, "mtime");
		pf_buf_add_int(b, x->mtime);
		if (t->placed) {
			PF_BUF_ADD_KEY(b, "offset");
			pf_buf_add_int(b, (int64_t)x->offset);
		}
		PF_BUF_ADD_LIT(b, "}");
	}
	return PF_BUF_ADD_LIT(b, "]");
}

/*
 * The digest that names the manifest (for the resume state): of the text
 * jansson writes for tree_manifest with sorted keys, written here by
 * hand (that tree of 10,000 objects cost a transfer 20 ms before its
 * first chunk). Every name is UTF-8: the walk skips the others. Made
 * before any layout: no offsets.
 */
static enum pf_status
tree_hash(struct tree *t)
{
	uint8_t md[PF_SHA256_LEN];
	enum pf_status rc = PF_ENOMEM;
	struct pf_buf b;

	pf_buf_init(&b, SIZE_MAX / 2);
	PF_BUF_ADD_LIT(&b, "[");
	for (size_t i = 0; i < t->n; i++) {
		const struct tree_entry *x = &t->e[i];

		if (i > 0)
			PF_BUF_ADD_LIT(&b, ",");
		PF_BUF_ADD_LIT(&b, "{");
		if (x->dir) {
			PF_BUF_ADD_LIT(&b, "\"dir\":true");
		} else {
			PF_BUF_ADD_LIT(&b, "\"mode\":");
			pf_buf_add_int(&b, x->mode);
			PF_BUF_ADD_KEY(&b, "mtime");
			pf_buf_add_int(&b, x->mtime);
		}
		PF_BUF_ADD_KEY(&b, "path");
		pf_buf_add_json_string(&b, x->rel);
		if (!x->dir) {
			PF_BUF_ADD_KEY(&b, "size");
			pf_buf_add_int(&b, (int64_t)x->size);
		}
		PF_BUF_ADD_LIT(&b, "}");
	}
	if (PF_BUF_ADD_LIT(&b, "]"))
		rc = pf_sha256(b.p, b.len, md);
	pf_buf_free(&b);
	if (rc == PF_OK)
		pf_hex_encode(md, sizeof(md), t->digest);
	return rc;
}

/* The digest of the paths given (made absolute where they exist). */
static enum pf_status
roots_hash(struct tree *t, const char *const *paths, size_t npaths)
{
	struct pf_sha256 *h = pf_sha256_new();
	uint8_t md[PF_SHA256_LEN];
	enum pf_status rc = PF_ENOMEM;

	if (h == NULL || (rc = pf_sha256_init(h)) != PF_OK)
		goto out;
	for (size_t i = 0; i < npaths && rc == PF_OK; i++) {
		char *real = realpath(paths[i], NULL);
		const char *p = real != NULL ? real : paths[i];

		/* The NUL ends each path: no two lists hash alike. */
		rc = pf_sha256_update(h, p, strlen(p) + 1);
		free(real);
	}
	if (rc == PF_OK && (rc = pf_sha256_final(h, md)) == PF_OK)
		pf_hex_encode(md, sizeof(md), t->roots);
out:
	pf_sha256_free(h);
	return rc;
}

static int
rel_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Checks that no two paths given are sent under one name (the same path
 * twice, two folders of one name, "." holding another): the server
 * would refuse the second after it came whole.
 */
static enum pf_status
distinct_tops(const struct tree *t, char *err, size_t cap)
{
	char **top = malloc((t->n + 1) * sizeof(*top));
	enum pf_status rc = PF_OK;
	size_t n = 0;

	if (top == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		if (strchr(t->e[i].rel, '/') == NULL)
			top[n++] = t->e[i].rel;
	qsort(top, n, sizeof(*top), rel_cmp);
	for (size_t i = 1; i < n && rc == PF_OK; i++)
		if (strcmp(top[i - 1], top[i]) == 0) {
			snprintf(err, cap, "two of the paths given would both "
			    "be sent as \"%s\": send them apart, or rename "
			    "one", top[i]);
			rc = PF_EUSAGE;
		}
	free(top);
	return rc;
}

enum pf_status
tree_build(const char *const *paths, size_t npaths,
    const struct tree_opts *o, struct tree **out, char *err, size_t cap)
{
	struct walk w = { .o = o, .err = err, .cap = cap };
	enum pf_status rc = PF_ENOMEM;

	*out = NULL;
	err[0] = '\0';
	if ((w.t = calloc(1, sizeof(*w.t))) == NULL)
		goto out;
	w.t->follow = o->follow_symlinks;
	for (size_t i = 0; i < npaths; i++)
		if ((rc = walk_root(&w, paths[i])) != PF_OK)
			goto out;
	rc = PF_EUSAGE;
	if (w.t->n == 0) {
		snprintf(err, cap, "nothing to send");
		goto out;
	}
	if ((rc = distinct_tops(w.t, err, cap)) != PF_OK)
		goto out;
	if ((rc = tree_index(w.t)) != PF_OK ||
	    (rc = roots_hash(w.t, paths, npaths)) != PF_OK ||
	    (rc = tree_hash(w.t)) != PF_OK) {
		snprintf(err, cap, "out of memory");
		goto out;
	}
	*out = w.t;
	w.t = NULL;
out:
	if (rc == PF_ENOMEM && err[0] == '\0')
		snprintf(err, cap, "out of memory");
	tree_free(w.t);
	return rc;
}

enum pf_status
tree_index(struct tree *t)
{
	struct proto_span *v = calloc(t->n + 1, sizeof(*v));
	size_t k = 0;

	if (v == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < t->n; i++)
		if (!t->e[i].dir && t->e[i].size > 0)
			v[k++] = (struct proto_span){ t->e[i].offset,
			    t->e[i].size, (uint32_t)i };
	proto_spans_sort(v, k);
	free(t->spans);
	t->spans = v;
	t->nspans = k;
	return PF_OK;
}

static bool
same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/*
 * True if sb is e's file as listed: any write since moves its ctime,
 * which no one can set back.
 */
static bool
as_listed(const struct tree_entry *e, const struct stat *sb)
{
	return (uint64_t)sb->st_size == e->size &&
	    same_time(&sb->st_mtim, &e->mtim) &&
	    same_time(&sb->st_ctim, &e->ctim);
}

/*
 * Hashes e's bytes p[0..len) at pos into its receipt. Another thread
 * feeding it now (a file over two chunks) leaves a gap instead, which
 * ends the sum: the report hashes the file again.
 */
static void
sum_entry(struct tree *t, struct tree_entry *e, const uint8_t *p, size_t len,
    uint64_t pos)
{
	if (atomic_exchange(&e->summing, true))
		return;
	if (e->sum == NULL && pos == 0)
		e->sum = filesum_new(e->size, t->sum_chunk);
	if (e->sum != NULL)
		filesum_add(e->sum, p, len, pos);
	atomic_store(&e->summing, false);
}

/* True if, hashed in pieces, e's chunks' passes give its receipt. */
static bool
own_chunks_whole(const struct tree *t, const struct tree_entry *e)
{
	return proto_own_chunks_whole(e->offset, e->size, t->sum_chunk);
}

/* Notes that file e cannot be read (errno): tree_read_error. */
static enum pf_status
unreadable(struct tree *t, struct tree_entry *e)
{
	int err = errno;

	atomic_store(&t->unreadable_errno, err);
	atomic_store(&t->unreadable, (size_t)(e - t->e) + 1);
	log_error("%s: %s", e->local, strerror(err));
	return PF_EIO;
}

void
tree_read_error(struct tree *t, char *out, size_t cap)
{
	size_t i = atomic_load(&t->unreadable);
	int err = atomic_load(&t->unreadable_errno);

	if (i == 0 || i > t->n)
		out[0] = '\0';
	else
		snprintf(out, cap, "%s: %s", t->e[i - 1].local,
		    err == ELOOP && !t->follow ? "a symbolic link on its path "
		    "(not followed without --follow-symlinks)" :
		    err == ENODATA ? "it shrank while it was being sent" :
		    strerror(err));
}

int
tree_open(const struct tree *t, const struct tree_entry *e)
{
	const struct tree_root *r;
	int dirfd, fd, err;

	if (e->root == -1)
		return open(e->local, O_RDONLY | O_CLOEXEC | (t->follow ? 0 :
		    O_NOFOLLOW));
	r = &t->folders[e->root];
	if ((dirfd = r->fd != -1 ? r->fd : open_root(r->path)) == -1)
		return -1;
	fd = pf_open_beneath(dirfd, e->local + e->below, O_RDONLY, 0);
	err = errno;
	if (dirfd != r->fd)
		close(dirfd);
	errno = err;
	return fd;
}

/* Reads len bytes of file e at pos into p; PF_EIO if it cannot (shrank). */
static enum pf_status
read_entry(struct tree *t, struct tree_entry *e, uint8_t *p, size_t len,
    uint64_t pos)
{
	struct stat sb;
	size_t got = 0;
	bool listed;
	int fd;

	if ((fd = tree_open(t, e)) == -1)
		return unreadable(t, e);
	if (fstat(fd, &sb) == -1 || (uint64_t)sb.st_size != e->size ||
	    (int64_t)sb.st_mtim.tv_sec != e->mtime)
		atomic_store(&e->changed, true);
	listed = as_listed(e, &sb);
	while (got < len) {
		ssize_t r = pread(fd, p + got, len - got, (off_t)(pos + got));

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			unreadable(t, e);
			close(fd);
			return PF_EIO;
		}
		/* Zeros in its place would be stored as its bytes. */
		if (r == 0) {
			atomic_store(&e->changed, true);
			close(fd);
			errno = ENODATA;
			return unreadable(t, e);
		}
		got += (size_t)r;
	}
	close(fd);
	if (!listed)
		atomic_store(&e->unlisted, true);
	else if (t->sum_chunk != 0 && !(t->pieces && own_chunks_whole(t, e)))
		sum_entry(t, e, p, len, pos);
	return PF_OK;
}

enum pf_status
tree_pread(struct tree *t, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	enum pf_status rc;

	if (off > t->total || n > t->total - off)
		return PF_EIO;
	while (n > 0) {
		size_t k = proto_span_after(t->spans, t->nspans, off), len;
		struct tree_entry *e = k < t->nspans ?
		    &t->e[t->spans[k].file] : NULL;

		if (e == NULL || off < e->offset) {
			/* Dead bytes (an amended layout's): zeros. */
			len = e == NULL || e->offset - off > n ? n :
			    (size_t)(e->offset - off);
			memset(p, 0, len);
		} else {
			uint64_t left = e->size - (off - e->offset);

			len = left < n ? (size_t)left : n;
			if ((rc = read_entry(t, e, p, len, off - e->offset)) !=
			    PF_OK)
				return rc;
		}
		p += len;
		off += len;
		n -= len;
	}
	return PF_OK;
}

void
tree_sum_receipts(struct tree *t, uint32_t chunk_size, bool pieces)
{
	/* Sums of another hashing are fed otherwise: dropped. */
	if (t->sum_chunk != chunk_size || t->pieces != pieces)
		for (size_t i = 0; i < t->n; i++) {
			filesum_free(t->e[i].sum);
			t->e[i].sum = NULL;
		}
	t->sum_chunk = chunk_size;
	t->pieces = pieces;
	/* Made now: the chunks' passes may put into one at once. */
	for (size_t i = 0; pieces && i < t->n; i++) {
		struct tree_entry *e = &t->e[i];

		if (!e->dir && e->sum == NULL && own_chunks_whole(t, e))
			e->sum = filesum_new(e->size, chunk_size);
	}
}

const struct proto_span *
tree_spans(const struct tree *t, size_t *n, uint32_t *chunk_size)
{
	*n = t->nspans;
	*chunk_size = t->sum_chunk;
	return t->pieces ? t->spans : NULL;
}

void
tree_note_wholes(struct tree *t, const struct chunkhash *h)
{
	size_t n;
	const struct chunkhash_whole *w = chunkhash_wholes(h, &n);

	for (size_t i = 0; i < n; i++) {
		struct tree_entry *e = &t->e[w[i].file];

		/*
		 * Read as listed only: else the report hashes it again. A
		 * file whose other own chunks straddle chunks is summed
		 * from its bytes instead, never both ways.
		 */
		if (!atomic_load(&e->unlisted) && e->sum != NULL &&
		    own_chunks_whole(t, e))
			filesum_put(e->sum, w[i].index, w[i].digest);
	}
}

bool
tree_receipt(const struct tree *t, const struct tree_entry *e,
    uint32_t chunk_size, char hex[PF_SHA256_HEX])
{
	struct stat sb;

	if (chunk_size != t->sum_chunk || e->sum == NULL ||
	    !filesum_hex(e->sum, hex))
		return false;
	if ((t->follow ? stat(e->local, &sb) : lstat(e->local, &sb)) == -1)
		return false;
	return S_ISREG(sb.st_mode) && as_listed(e, &sb);
}
