/* SPDX-License-Identifier: MIT */
/* A session's payload: one data file, or a transfer's backing files. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "manifest.h"
#include "payload.h"


/*
 * The bytes [off, off + len) of the payload one backing file holds; and
 * where a COMMIT cut short may have renamed it (payload_placed_at).
 */
struct payload_range {
	uint64_t	 off, len;
	char		*placed;	/* beneath placedfd, or NULL */
};

struct payload {
	int			 dirfd;		/* the staging area's */
	/*
	 * A transfer's files are reserved one by one, as they are first
	 * written: until then their bytes are promised, in *promised (the
	 * storage's, shared by every payload) and in owed (this one's).
	 * Where the filesystem finds space at each write (tmpfs), they are
	 * not reserved (a big file's first write would stop the other
	 * streams writing it while all its pages are allocated): they stay
	 * promised until their chunks are durable (payload_settled). A
	 * single file's data is preallocated at OPEN (its streams share one
	 * inode, whose lock each write would hold while allocating).
	 */
	_Atomic uint64_t	*promised;
	_Atomic uint64_t	 owed;
	bool			 reserves;	/* a file, or not on tmpfs */
	int			 fd;		/* PAYLOAD_DATA_NAME, or -1 */
	int			 pdirfd;	/* PAYLOAD_DIR, or -1 */
	int			 placedfd;	/* <root>/<id>, or -1 */
	struct payload_range	*r;		/* sorted by off */
	size_t			 n;
	atomic_uchar		*dirty;		/* written since a sync */
	/*
	 * The backing file's name is known durable (1), or will be once
	 * the sync under way succeeds (2). The syncing thread's alone.
	 */
	unsigned char		*named;
	bool			 syncfs_covers;	/* pf_syncfs_covers(dirfd) */
};

/* Opens the backing files' directory beneath dirfd. */
static int
open_dir(int dirfd)
{
	return pf_open_beneath(dirfd, PAYLOAD_DIR, O_RDONLY | O_DIRECTORY, 0);
}

void
payload_file_name(uint64_t off, char out[PAYLOAD_NAME_MAX])
{
	snprintf(out, PAYLOAD_NAME_MAX, PAYLOAD_DIR "/%" PRIx64, off);
}

static int
range_cmp(const void *a, const void *b)
{
	const struct payload_range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* pl's ranges: mf's files with bytes, refused ones too (dropped later). */
static enum pf_status
ranges_from(struct payload *pl, const struct manifest *mf)
{
	size_t n = 0;

	pl->r = calloc(mf->n ? mf->n : 1, sizeof(*pl->r));
	pl->dirty = calloc(mf->n ? mf->n : 1, sizeof(*pl->dirty));
	pl->named = calloc(mf->n ? mf->n : 1, 1);
	if (pl->r == NULL || pl->dirty == NULL || pl->named == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < mf->n; i++)
		if (!mf->f[i].dir && mf->f[i].size > 0)
			pl->r[n++] = (struct payload_range){ mf->f[i].offset,
			    mf->f[i].size, NULL };
	qsort(pl->r, n, sizeof(*pl->r), range_cmp);
	pl->n = n;
	return PF_OK;
}

static struct payload *
payload_new(int dirfd, const struct manifest *mf, _Atomic uint64_t *promised)
{
	struct payload *pl = calloc(1, sizeof(*pl));

	if (pl != NULL) {
		pl->dirfd = dirfd;
		pl->fd = pl->pdirfd = pl->placedfd = -1;
		pl->promised = promised;
		pl->syncfs_covers = pf_syncfs_covers(dirfd);
		pl->reserves = mf == NULL || !pf_space_on_write(dirfd);
	}
	return pl;
}

/*
 * n of pl's promised bytes are reserved now, or no longer needed: no
 * more than it still owes (a chunk settled may hold bytes no file
 * takes, or bytes a restart found written and did not promise again).
 */
static void
keep_promise(struct payload *pl, uint64_t n)
{
	uint64_t owed = atomic_load(&pl->owed);

	do {
		if (n > owed)
			n = owed;
	} while (!atomic_compare_exchange_weak(&pl->owed, &owed, owed - n));
	if (pl->promised != NULL)
		atomic_fetch_sub(pl->promised, n);
}

void
payload_close(struct payload *pl)
{
	if (pl == NULL)
		return;
	keep_promise(pl, atomic_load(&pl->owed));
	if (pl->fd != -1)
		close(pl->fd);
	if (pl->pdirfd != -1)
		close(pl->pdirfd);
	if (pl->placedfd != -1)
		close(pl->placedfd);
	for (size_t i = 0; i < pl->n; i++)
		free(pl->r[i].placed);
	free(pl->r);
	free(pl->dirty);
	free(pl->named);
	free(pl);
}

/* Preallocates size bytes of fd: a full disk is found now, not later. */
static enum pf_status
reserve(int fd, uint64_t size)
{
	int err;

	if (size > (uint64_t)INT64_MAX)
		return PF_ETOOLARGE;
	if (size == 0 || (err = posix_fallocate(fd, 0, (off_t)size)) == 0)
		return PF_OK;
	/* Filesystems without fallocate just skip this. */
	if (err == EOPNOTSUPP || err == EINVAL)
		return PF_OK;
	log_warn("%s: reserve %" PRIu64 " bytes: %s", __func__, size,
	    strerror(err));
	return pf_status_from_errno(err);
}

/*
 * Promises the space of pl's files, which are reserved one by one later:
 * PF_ENOSPC unless the free space holds them besides what other
 * transfers were promised. Two OPENs at once cannot both take the last
 * of it.
 */
static enum pf_status
promise_space(struct payload *pl)
{
	struct statvfs sv;
	uint64_t need = 0, avail, was;

	for (size_t i = 0; i < pl->n; i++)
		need += pl->r[i].len;
	if (fstatvfs(pl->dirfd, &sv) == -1)
		avail = UINT64_MAX;
	else
		avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (pl->promised == NULL) {
		atomic_store(&pl->owed, need);
		return avail >= need ? PF_OK : PF_ENOSPC;
	}
	was = atomic_load(pl->promised);
	do {
		if (avail < was || avail - was < need) {
			log_warn("%s: %" PRIu64 " bytes to store, %" PRIu64
			    " free, %" PRIu64 " promised to other transfers",
			    __func__, need, avail, was);
			return PF_ENOSPC;
		}
	} while (!atomic_compare_exchange_weak(pl->promised, &was,
	    was + need));
	atomic_store(&pl->owed, need);
	return PF_OK;
}

/*
 * What a file of len bytes still needs: all of it without a backing file
 * (fstat's result rc, sb), and where nothing was reserved, what it does
 * not hold yet.
 */
static uint64_t
still_needed(const struct payload *pl, int rc, const struct stat *sb,
    uint64_t len)
{
	uint64_t held;

	if (rc == -1)
		return errno == ENOENT ? len : 0;
	if (pl->reserves)
		return 0;
	held = (uint64_t)sb->st_blocks * 512;
	return held < len ? len - held : 0;
}

/* Promises what a transfer's files, opened again, still need. */
static void
promise_missing(struct payload *pl)
{
	char name[PAYLOAD_NAME_MAX];
	struct stat sb;
	uint64_t need = 0;

	for (size_t i = 0; i < pl->n; i++) {
		payload_file_name(pl->r[i].off, name);
		need += still_needed(pl, fstatat(pl->pdirfd, name +
		    sizeof(PAYLOAD_DIR), &sb, AT_SYMLINK_NOFOLLOW), &sb,
		    pl->r[i].len);
	}
	atomic_store(&pl->owed, need);
	if (pl->promised != NULL)
		atomic_fetch_add(pl->promised, need);
}

enum pf_status
payload_create(int dirfd, uint64_t size, const struct manifest *mf,
    _Atomic uint64_t *promised, struct payload **out)
{
	struct payload *pl;
	enum pf_status rc;

	if ((pl = payload_new(dirfd, mf, promised)) == NULL)
		return PF_ENOMEM;
	if (mf == NULL) {
		pl->fd = pf_open_beneath(dirfd, PAYLOAD_DATA_NAME, O_RDWR |
		    O_CREAT | O_EXCL, 0600);
		rc = pl->fd == -1 ? pf_status_from_errno(errno) :
		    reserve(pl->fd, size);
	} else if ((rc = ranges_from(pl, mf)) == PF_OK &&
	    (rc = promise_space(pl)) == PF_OK) {
		if (mkdirat(dirfd, PAYLOAD_DIR, 0700) == -1 ||
		    (pl->pdirfd = open_dir(dirfd)) == -1)
			rc = pf_status_from_errno(errno);
	}
	if (rc != PF_OK) {
		payload_close(pl);
		return rc;
	}
	*out = pl;
	return PF_OK;
}

enum pf_status
payload_open(int dirfd, const struct manifest *mf, _Atomic uint64_t *promised,
    struct payload **out)
{
	struct payload *pl;
	enum pf_status rc = PF_OK;

	if ((pl = payload_new(dirfd, mf, promised)) == NULL)
		return PF_ENOMEM;
	if (mf == NULL) {
		if ((pl->fd = pf_open_beneath(dirfd, PAYLOAD_DATA_NAME,
		    O_RDWR, 0)) == -1)
			rc = errno == ENOENT ? PF_EBADFRAME : PF_EIO;
	} else if ((rc = ranges_from(pl, mf)) == PF_OK) {
		/* An OPEN cut short before it made the directory: make it. */
		if ((mkdirat(dirfd, PAYLOAD_DIR, 0700) == -1 &&
		    errno != EEXIST) || (pl->pdirfd = open_dir(dirfd)) == -1)
			rc = errno == ENOTDIR ? PF_EBADFRAME : PF_EIO;
		else
			promise_missing(pl);
	}
	if (rc != PF_OK) {
		payload_close(pl);
		return rc;
	}
	*out = pl;
	return PF_OK;
}

/* The first range that ends after off (pl->n if none). */
static size_t
first_range(const struct payload *pl, uint64_t off)
{
	size_t lo = 0, hi = pl->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pl->r[mid].off + pl->r[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The bytes of [off, off + n) that pl's files hold. */
static uint64_t
bytes_in_files(const struct payload *pl, uint64_t off, uint64_t n)
{
	uint64_t end = off + n, sum = 0;

	for (size_t i = first_range(pl, off); i < pl->n &&
	    pl->r[i].off < end; i++) {
		const struct payload_range *r = &pl->r[i];
		uint64_t from = r->off > off ? r->off : off;
		uint64_t to = r->off + r->len < end ? r->off + r->len : end;

		sum += to - from;
	}
	return sum;
}

void
payload_settled(struct payload *pl, uint64_t off, uint64_t n)
{
	if (pl != NULL && !pl->reserves)
		keep_promise(pl, bytes_in_files(pl, off, n));
}

enum pf_status
payload_placed_at(struct payload *pl, int topfd, const struct manifest *mf)
{
	pl->placedfd = topfd;
	for (size_t i = 0; i < mf->n; i++) {
		const struct manifest_file *f = &mf->f[i];
		size_t k;

		if (f->dir || f->size == 0 || f->path == NULL)
			continue;
		k = first_range(pl, f->offset);
		if (k == pl->n || pl->r[k].off != f->offset ||
		    pl->r[k].placed != NULL)
			continue;
		if ((pl->r[k].placed = strdup(f->path)) == NULL)
			return PF_ENOMEM;
	}
	return PF_OK;
}

/* Opens range r's backing file, or where COMMIT put it; -1 if neither. */
static int
open_range(const struct payload *pl, const struct payload_range *r)
{
	char name[PAYLOAD_NAME_MAX];
	int fd;

	payload_file_name(r->off, name);
	fd = openat(pl->pdirfd, name + sizeof(PAYLOAD_DIR), O_RDONLY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1 || errno != ENOENT || r->placed == NULL)
		return fd;
	/* Whatever stops it there, the bytes are not: zeros, sent again. */
	if ((fd = pf_open_beneath(pl->placedfd, r->placed, O_RDONLY,
	    0)) == -1)
		errno = ENOENT;
	return fd;
}

/* Writes n bytes of p at off of fd. */
static enum pf_status
pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w == 0 ? ENOSPC : errno;

			log_warn("%s: at %" PRIu64 ": %s", __func__, off,
			    strerror(err));
			return pf_status_from_errno(err);
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return PF_OK;
}

/*
 * Opens range i's backing file for writing, creating it if it is not
 * there yet (*created then). A file written whole by one piece is most
 * likely new, so creating it comes first; and it needs no reserved
 * space, since the write that follows finds a full disk as soon: its
 * promise is kept once that write is done. Where the filesystem finds
 * space at each write, no file is reserved. Returns the fd or -1 (errno
 * set).
 */
static int
open_for_write(struct payload *pl, size_t i, bool whole, bool *created)
{
	char name[PAYLOAD_NAME_MAX];
	const char *base;
	bool create = whole;
	int fd;

	payload_file_name(pl->r[i].off, name);
	base = name + sizeof(PAYLOAD_DIR);
	/* Between the two, another chunk may make the file meanwhile. */
	for (;; create = !create) {
		if (create)
			fd = openat(pl->pdirfd, base, O_WRONLY | O_CREAT |
			    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		else
			fd = openat(pl->pdirfd, base, O_WRONLY | O_NOFOLLOW |
			    O_CLOEXEC);
		if (fd != -1)
			break;
		if (errno != (create ? EEXIST : ENOENT))
			return -1;
	}
	if (!(*created = create) || whole || !pl->reserves)
		return fd;
	/*
	 * Not removed if this fails: another chunk may have opened it
	 * meanwhile and be writing into it.
	 */
	if (reserve(fd, pl->r[i].len) != PF_OK) {
		close(fd);
		errno = ENOSPC;
		return -1;
	}
	keep_promise(pl, pl->r[i].len);
	return fd;
}

/* payload_write for a transfer: each piece into its file. */
static enum pf_status
write_files(struct payload *pl, uint64_t off, const uint8_t *p, size_t n)
{
	uint64_t end = off + n;
	enum pf_status rc;

	for (size_t i = first_range(pl, off); i < pl->n &&
	    pl->r[i].off < end; i++) {
		const struct payload_range *r = &pl->r[i];
		uint64_t from = r->off > off ? r->off : off;
		uint64_t to = r->off + r->len < end ? r->off + r->len : end;
		bool whole = from == r->off && to == r->off + r->len, created;
		int fd;

		if ((fd = open_for_write(pl, i, whole, &created)) == -1) {
			rc = pf_status_from_errno(errno);
			log_warn("%s: file at %" PRIu64 ": %s", __func__,
			    r->off, strerror(errno));
			return rc;
		}
		rc = pwrite_all(fd, p + (from - off), (size_t)(to - from),
		    from - r->off);
		close(fd);
		if (rc != PF_OK)
			return rc;
		/* Made and written whole: its bytes hold their space now. */
		if (created && whole && pl->reserves)
			keep_promise(pl, r->len);
		/* After the write: a sync that clears it covers the write. */
		atomic_store(&pl->dirty[i], 1);
	}
	return PF_OK;
}

enum pf_status
payload_write(struct payload *pl, uint64_t off, const void *p, size_t n)
{
	if (pl->fd != -1)
		return pwrite_all(pl->fd, p, n, off);
	return write_files(pl, off, p, n);
}

/*
 * Reads n bytes at off of fd; what lies past its end reads as zeros if
 * short_ok, else is PF_EIO.
 */
static enum pf_status
pread_all(int fd, uint8_t *p, size_t n, uint64_t off, bool short_ok)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == 0 && short_ok) {
			memset(p, 0, n);
			return PF_OK;
		}
		if (r <= 0) {
			log_warn("%s: at %" PRIu64 ": %s", __func__, off,
			    r == 0 ? "end of file" : strerror(errno));
			return PF_EIO;
		}
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return PF_OK;
}

/* payload_read for a transfer: zeros where no file holds the bytes. */
static enum pf_status
read_files(struct payload *pl, uint64_t off, uint8_t *p, size_t n)
{
	uint64_t end = off + n, pos = off;
	enum pf_status rc;

	for (size_t i = first_range(pl, off); pos < end; i++) {
		const struct payload_range *r = i < pl->n ? &pl->r[i] : NULL;
		uint64_t from = r == NULL || r->off > end ? end : r->off;
		uint64_t to;
		int fd;

		if (from > pos) {
			memset(p + (pos - off), 0, (size_t)(from - pos));
			pos = from;
		}
		if (r == NULL || pos >= end)
			break;
		to = r->off + r->len < end ? r->off + r->len : end;
		fd = open_range(pl, r);
		if (fd == -1 && errno != ENOENT)
			return PF_EIO;
		if (fd == -1)
			memset(p + (pos - off), 0, (size_t)(to - pos));
		else {
			rc = pread_all(fd, p + (pos - off), (size_t)(to - pos),
			    pos - r->off, true);
			close(fd);
			if (rc != PF_OK)
				return rc;
		}
		pos = to;
	}
	return PF_OK;
}

enum pf_status
payload_read(struct payload *pl, uint64_t off, void *p, size_t n)
{
	if (pl->fd != -1)
		return pread_all(pl->fd, p, n, off, false);
	return read_files(pl, off, p, n);
}

/* fdatasync of range i's backing file. */
static int
sync_one(struct payload *pl, size_t i)
{
	char name[PAYLOAD_NAME_MAX];
	int fd, rc;

	payload_file_name(pl->r[i].off, name);
	if ((fd = openat(pl->pdirfd, name + sizeof(PAYLOAD_DIR), O_RDONLY |
	    O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	rc = fdatasync(fd);
	close(fd);
	return rc;
}

/*
 * The backing files' new names: their directory's, and the directory's
 * own name in the staging area. Where syncfs is not enough.
 */
static int
sync_names(struct payload *pl)
{
	return fsync(pl->pdirfd) == -1 ? -1 : fsync(pl->dirfd);
}

/* payload_sync for a transfer. */
static enum pf_status
sync_files(struct payload *pl)
{
	size_t touched = 0, last = 0;
	bool fresh = false;
	int rc = 0;

	for (size_t i = 0; i < pl->n; i++) {
		if (atomic_load(&pl->dirty[i]) == 0 ||
		    atomic_exchange(&pl->dirty[i], 0) == 0)
			continue;
		touched++;
		last = i;
		if (pl->named[i] != 1) {
			pl->named[i] = 2;
			fresh = true;
		}
		/* FUSE or NFS: syncfs would not reach them (fsutil.h). */
		if (!pl->syncfs_covers && rc == 0)
			rc = sync_one(pl, i);
	}
	if (touched == 0)
		return PF_OK;
	/*
	 * One file whose name is durable: its data alone. Else one syncfs,
	 * names included, which costs less than an fdatasync per file and
	 * an fsync of the directory.
	 */
	if (pl->syncfs_covers)
		rc = touched == 1 && !fresh ? sync_one(pl, last) :
		    syncfs(pl->dirfd);
	else if (rc == 0 && fresh)
		rc = sync_names(pl);
	for (size_t i = 0; fresh && i < pl->n; i++)
		if (pl->named[i] == 2)
			pl->named[i] = rc == 0;
	if (rc == 0)
		return PF_OK;
	log_error("%s: %s", __func__, strerror(errno));
	return pf_status_from_errno(errno);
}

enum pf_status
payload_sync(struct payload *pl)
{
	if (pl->fd == -1)
		return sync_files(pl);
	if (fdatasync(pl->fd) == 0)
		return PF_OK;
	log_error("%s: fdatasync: %s", __func__, strerror(errno));
	return pf_status_from_errno(errno);
}

/* True if a range of pl starts at off. */
static bool
starts_range(const struct payload *pl, uint64_t off)
{
	size_t i = first_range(pl, off);

	return i < pl->n && pl->r[i].off == off;
}

/* Calls cb for each entry of the backing files' directory dirfd. */
static void
each_file(int dirfd, void (*cb)(void *arg, int dirfd, const char *name),
    void *arg)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	if ((fd = dup(dirfd)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		log_warn("%s: %s", __func__, strerror(errno));
		return;
	}
	rewinddir(dir);
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			cb(arg, dirfd, de->d_name);
	closedir(dir);
}

static void
unlink_file(void *arg, int dirfd, const char *name)
{
	(void)arg;
	if (unlinkat(dirfd, name, 0) == -1 && errno != ENOENT)
		log_warn("%s: %s: %s", __func__, name, strerror(errno));
}

static void
unlink_dead(void *arg, int dirfd, const char *name)
{
	const struct payload *pl = arg;
	char *end;
	uint64_t off;

	errno = 0;
	off = strtoull(name, &end, 16);
	if (errno != 0 || *end != '\0' || end == name ||
	    !starts_range(pl, off))
		unlink_file(NULL, dirfd, name);
}

void
payload_prune(struct payload *pl)
{
	if (pl->pdirfd != -1)
		each_file(pl->pdirfd, unlink_dead, pl);
}

void
payload_remove(int dirfd)
{
	int pdirfd = open_dir(dirfd);

	if (pdirfd == -1)
		return;
	each_file(pdirfd, unlink_file, NULL);
	close(pdirfd);
	if (unlinkat(dirfd, PAYLOAD_DIR, AT_REMOVEDIR) == -1)
		log_warn("%s: %s", __func__, strerror(errno));
}
