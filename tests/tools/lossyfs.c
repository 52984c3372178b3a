/* SPDX-License-Identifier: MIT */
/*
 * lossyfs: a FUSE passthrough that forgets, on a simulated power loss,
 * everything that was not made durable by a sync: the power-loss tests'
 * filesystem (docs/reliability.md, tests/integ/t_powerloss.sh).
 *
 * Every operation goes through to a backing directory at once, so the
 * program on top sees an ordinary filesystem. Beside it lossyfs keeps the
 * durable image: for each file the content it had at its last fsync or
 * fdatasync (a copy in the store directory), for each directory the
 * entries it had at its last fsync. Files and directories are tracked as
 * nodes of their own, not by path, so a file written, renamed and then
 * synced is durable under the name its directory last synced.
 *
 * At the crash point (--crash-at KIND:GLOB:N, or SIGUSR1) lossyfs
 * replaces the backing directory by the durable image, writes the point
 * to STORE/crashed and fails every later operation with EIO, as a disk
 * without power would. The test then kills the program, unmounts, and
 * mounts again on the same backing directory. With --keep-some SEED the
 * power loss also keeps a random part of the unsynced writes (whole, in
 * part or not at all, each on its own), as a disk that had written some
 * of its cache back, in no particular order, would.
 */
#define FUSE_USE_VERSION 31
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <fuse.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_DEPTH	64

struct entry {
	char		*name;
	size_t		 node;
};

struct node {
	ino_t		 ino;		/* in the backing fs; 0 once gone */
	bool		 dir;
	mode_t		 mode;
	struct entry	*ents;		/* a directory's durable entries */
	size_t		 nents;
};

/* A write not yet synced, which a power loss may still have kept. */
struct pending {
	size_t		 node;
	off_t		 off;
	size_t		 len;
	char		*data;
};

/* The crash point: the count-th operation of kind on a matching path. */
struct point {
	char		 kind[16];
	char		 glob[PATH_MAX];
	unsigned long	 count;
	bool		 after;		/* crash once it has taken effect */
	unsigned long	 seen;
};

static struct {
	int		 backfd;
	int		 storefd;
	struct node	*nodes;
	size_t		 nnodes;
	struct point	 at;
	bool		 armed;
	bool		 crashed;
	FILE		*trace;
	struct pending	*pend;		/* unsynced writes (--keep-some) */
	size_t		 npend;
	bool		 keep_some;
	unsigned	 seed;
	unsigned long	 ops;
	char		 why[PATH_MAX + 64];	/* a crash point passed */
} fs;

static volatile sig_atomic_t crash_now;

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "lossyfs: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", strerror(errno));
	va_end(ap);
	exit(1);
}

/* A FUSE path ("/a/b") as a path relative to the backing directory. */
static const char *
rel(const char *path)
{
	if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0)
		return ".";
	return path[0] == '/' ? path + 1 : path;
}

static size_t
node_by_ino(ino_t ino)
{
	for (size_t i = 0; i < fs.nnodes; i++)
		if (fs.nodes[i].ino == ino)
			return i;
	return SIZE_MAX;
}

static size_t
node_new(ino_t ino, bool dir, mode_t mode)
{
	size_t old = node_by_ino(ino);
	struct node *n;

	/* The backing fs may reuse an inode number: the old node is gone. */
	if (old != SIZE_MAX)
		fs.nodes[old].ino = 0;
	n = realloc(fs.nodes, (fs.nnodes + 1) * sizeof(*n));
	if (n == NULL)
		die("out of memory");
	fs.nodes = n;
	n = &fs.nodes[fs.nnodes];
	memset(n, 0, sizeof(*n));
	n->ino = ino;
	n->dir = dir;
	n->mode = mode & 07777;
	return fs.nnodes++;
}

static void
store_name(size_t id, char buf[32])
{
	snprintf(buf, 32, "%zu", id);
}

/* Copies all of fd into the store as node id's durable content. */
static int
store_content(size_t id, int fd)
{
	char name[32], buf[65536];
	ssize_t n;
	int in, out;

	/* fd may be open for writing only: read through a handle of ours. */
	snprintf(buf, sizeof(buf), "/proc/self/fd/%d", fd);
	if ((in = open(buf, O_RDONLY)) == -1)
		return -errno;
	store_name(id, name);
	out = openat(fs.storefd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out == -1) {
		close(in);
		return -errno;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			errno = EIO;
			break;
		}
	close(in);
	close(out);
	return n == -1 ? -errno : 0;
}

/* The node of a backing fd, made on first sight (a file made outside). */
static size_t
node_of_fd(int fd)
{
	struct stat sb;
	size_t id;

	if (fstat(fd, &sb) == -1)
		return SIZE_MAX;
	if ((id = node_by_ino(sb.st_ino)) != SIZE_MAX)
		return id;
	id = node_new(sb.st_ino, S_ISDIR(sb.st_mode), sb.st_mode);
	if (!S_ISDIR(sb.st_mode))
		store_content(id, fd);
	return id;
}

static void
entries_free(struct node *n)
{
	for (size_t i = 0; i < n->nents; i++)
		free(n->ents[i].name);
	free(n->ents);
	n->ents = NULL;
	n->nents = 0;
}

/*
 * Makes a directory's present entries its durable ones; with scan set,
 * also the content of everything beneath it (the state at mount).
 */
static int
sync_dir(int dfd, size_t id, bool scan, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (depth > MAX_DEPTH || (fd = dup(dfd)) == -1 ||
	    (d = fdopendir(fd)) == NULL)
		return -EIO;
	rewinddir(d);
	entries_free(&fs.nodes[id]);
	while ((de = readdir(d)) != NULL) {
		struct entry *e;
		size_t child;
		int cfd;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		/* Symbolic links, sockets and fifos are not modelled. */
		cfd = openat(dfd, de->d_name, O_RDONLY | O_NOFOLLOW |
		    O_NONBLOCK);
		if (cfd == -1)
			continue;
		child = node_of_fd(cfd);
		if (child != SIZE_MAX && scan && fs.nodes[child].dir)
			sync_dir(cfd, child, true, depth + 1);
		close(cfd);
		if (child == SIZE_MAX)
			continue;
		e = realloc(fs.nodes[id].ents,
		    (fs.nodes[id].nents + 1) * sizeof(*e));
		if (e == NULL || (e[fs.nodes[id].nents].name =
		    strdup(de->d_name)) == NULL)
			die("out of memory");
		e[fs.nodes[id].nents++].node = child;
		fs.nodes[id].ents = e;
	}
	closedir(d);
	return 0;
}

/* Removes everything beneath dfd. */
static void
empty_tree(int dfd, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (depth > MAX_DEPTH || (fd = dup(dfd)) == -1 ||
	    (d = fdopendir(fd)) == NULL)
		return;
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			continue;
		sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW);
		if (sub != -1) {
			empty_tree(sub, depth + 1);
			close(sub);
		}
		unlinkat(dfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static void
copy_out(size_t id, int dfd, const char *name)
{
	char sname[32], buf[65536];
	ssize_t n;
	int in, out;

	store_name(id, sname);
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL,
	    fs.nodes[id].mode);
	if (out == -1)
		return;
	if ((in = openat(fs.storefd, sname, O_RDONLY)) != -1) {
		while ((n = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, (size_t)n) != n)
				break;
		close(in);
	}
	close(out);
}

/* Builds the durable entries of directory node id beneath dfd. */
static void
rebuild(size_t id, int dfd, int depth)
{
	struct node *n = &fs.nodes[id];

	if (depth > MAX_DEPTH)
		return;
	for (size_t i = 0; i < n->nents; i++) {
		size_t c = n->ents[i].node;
		int sub;

		if (!fs.nodes[c].dir) {
			copy_out(c, dfd, n->ents[i].name);
			continue;
		}
		if (mkdirat(dfd, n->ents[i].name, fs.nodes[c].mode) == -1)
			continue;
		sub = openat(dfd, n->ents[i].name, O_RDONLY | O_DIRECTORY);
		if (sub != -1) {
			rebuild(c, sub, depth + 1);
			close(sub);
		}
	}
}

/*
 * With --keep-some: the disk may have written some unsynced writes before
 * the power went, in any order and a write in part (whole 512-byte
 * sectors). Each is dropped, kept whole or kept in part, at random.
 */
static void
keep_some(void)
{
	char name[32];
	int fd;

	for (size_t i = 0; i < fs.npend; i++) {
		struct pending *p = &fs.pend[i];
		size_t len = p->len;

		switch (rand_r(&fs.seed) % 3) {
		case 0:
			continue;
		case 1:
			len = (size_t)rand_r(&fs.seed) % (len / 512 + 1) * 512;
			break;
		}
		store_name(p->node, name);
		if (len == 0 || (fd = openat(fs.storefd, name, O_WRONLY)) == -1)
			continue;
		if (pwrite(fd, p->data, len, p->off) != (ssize_t)len)
			fprintf(stderr, "lossyfs: cannot keep a write\n");
		close(fd);
	}
}

/* Forgets the unsynced writes of node id (it was synced), or all. */
static void
pending_drop(size_t id)
{
	size_t kept = 0;

	for (size_t i = 0; i < fs.npend; i++) {
		if (id == SIZE_MAX || fs.pend[i].node == id) {
			free(fs.pend[i].data);
			continue;
		}
		fs.pend[kept++] = fs.pend[i];
	}
	fs.npend = kept;
}

static void
pending_add(int fd, const char *buf, size_t n, off_t off)
{
	struct pending *p;
	size_t id = node_of_fd(fd);

	if (id == SIZE_MAX)
		return;
	p = realloc(fs.pend, (fs.npend + 1) * sizeof(*p));
	if (p == NULL || (p[fs.npend].data = malloc(n)) == NULL)
		die("out of memory");
	memcpy(p[fs.npend].data, buf, n);
	p[fs.npend].node = id;
	p[fs.npend].off = off;
	p[fs.npend].len = n;
	fs.pend = p;
	fs.npend++;
}

/* The power loss: the backing directory becomes the durable image. */
static void
crash(const char *why)
{
	int fd;

	fs.crashed = true;
	if (fs.keep_some)
		keep_some();
	pending_drop(SIZE_MAX);
	empty_tree(fs.backfd, 0);
	rebuild(0, fs.backfd, 0);
	fsync(fs.backfd);
	fd = openat(fs.storefd, "crashed", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd != -1) {
		dprintf(fd, "%s\n", why);
		close(fd);
	}
	fprintf(stderr, "lossyfs: power lost at %s (operation %lu)\n", why,
	    fs.ops);
	if (fs.trace != NULL)
		fflush(fs.trace);
}

/*
 * Called before each operation of kind on path (and path2): counts it,
 * and returns true if the power is off for it.
 */
static bool
lost(const char *kind, const char *path, const char *path2)
{
	char *why = fs.why;
	bool match;

	if (fs.crashed)
		return true;
	fs.ops++;
	if (fs.trace != NULL)
		fprintf(fs.trace, "%s %s%s%s\n", kind, rel(path),
		    path2 ? " " : "", path2 ? rel(path2) : "");
	if (crash_now) {
		crash(fs.why[0] != '\0' ? fs.why : "SIGUSR1");
		return true;
	}
	match = fs.armed && strcmp(kind, fs.at.kind) == 0 &&
	    (fnmatch(fs.at.glob, rel(path), 0) == 0 || (path2 != NULL &&
	    fnmatch(fs.at.glob, rel(path2), 0) == 0));
	if (!match || ++fs.at.seen != fs.at.count)
		return false;
	fs.armed = false;
	snprintf(why, sizeof(fs.why), "%s:%s:%lu%s (%s%s%s)", fs.at.kind,
	    fs.at.glob, fs.at.count, fs.at.after ? "+" : "", rel(path),
	    path2 ? " -> " : "", path2 ? rel(path2) : "");
	if (fs.at.after) {
		/* The operation takes effect; the power goes at the next. */
		crash_now = 1;
		fprintf(stderr, "lossyfs: %s done, power goes next\n", why);
		return false;
	}
	crash(why);
	return true;
}

/* For the operations that change nothing: is the power off? */
static bool
powered_off(void)
{
	if (crash_now && !fs.crashed)
		crash(fs.why[0] != '\0' ? fs.why : "SIGUSR1");
	return fs.crashed;
}

#define CHECK(kind, p, p2)	do {					\
	if (lost((kind), (p), (p2)))					\
		return -EIO;						\
} while (0)

static int
lfs_getattr(const char *path, struct stat *sb, struct fuse_file_info *fi)
{
	int r;

	if (powered_off())
		return -EIO;
	if (fi != NULL)
		r = fstat((int)fi->fh, sb);
	else
		r = fstatat(fs.backfd, rel(path), sb, AT_SYMLINK_NOFOLLOW);
	return r == -1 ? -errno : 0;
}

static int
lfs_access(const char *path, int mask)
{
	if (powered_off())
		return -EIO;
	return faccessat(fs.backfd, rel(path), mask, 0) == -1 ? -errno : 0;
}

static int
lfs_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd;

	if (powered_off())
		return -EIO;
	fd = openat(fs.backfd, rel(path), O_RDONLY | O_DIRECTORY);
	if (fd == -1)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int
lfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct dirent *de;
	DIR *d;
	int fd;

	(void)path;
	(void)off;
	(void)flags;
	if (powered_off())
		return -EIO;
	if ((fd = dup((int)fi->fh)) == -1 || (d = fdopendir(fd)) == NULL)
		return -EIO;
	rewinddir(d);
	while ((de = readdir(d)) != NULL)
		if (fill(buf, de->d_name, NULL, 0, 0) != 0)
			break;
	closedir(d);
	return 0;
}

static int
lfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int
lfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	size_t id;

	(void)datasync;
	CHECK("fsyncdir", path, NULL);
	if ((id = node_of_fd((int)fi->fh)) == SIZE_MAX)
		return -EIO;
	return sync_dir((int)fi->fh, id, false, 0);
}

static int
lfs_mkdir(const char *path, mode_t mode)
{
	struct stat sb;

	CHECK("mkdir", path, NULL);
	if (mkdirat(fs.backfd, rel(path), mode) == -1)
		return -errno;
	if (fstatat(fs.backfd, rel(path), &sb, AT_SYMLINK_NOFOLLOW) == 0)
		node_new(sb.st_ino, true, sb.st_mode);
	return 0;
}

/*
 * Before path's last link goes: its node stays in the durable image, but
 * the backing fs may give its inode number to a new file.
 */
static size_t
last_link(const char *path)
{
	struct stat sb;

	if (fstatat(fs.backfd, rel(path), &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
	    (!S_ISDIR(sb.st_mode) && sb.st_nlink > 1))
		return SIZE_MAX;
	return node_by_ino(sb.st_ino);
}

/* Returns r; if it is a success, the node id is gone from the live fs. */
static int
forget(int r, size_t id)
{
	if (r == 0 && id != SIZE_MAX)
		fs.nodes[id].ino = 0;
	return r;
}

static int
lfs_unlink(const char *path)
{
	size_t id;

	CHECK("unlink", path, NULL);
	id = last_link(path);
	return forget(unlinkat(fs.backfd, rel(path), 0) == -1 ? -errno : 0,
	    id);
}

static int
lfs_rmdir(const char *path)
{
	size_t id;

	CHECK("rmdir", path, NULL);
	id = last_link(path);
	return forget(unlinkat(fs.backfd, rel(path), AT_REMOVEDIR) == -1 ?
	    -errno : 0, id);
}

static int
lfs_rename(const char *from, const char *to, unsigned int flags)
{
	size_t id;

	CHECK("rename", from, to);
	id = (flags & RENAME_NOREPLACE) ? SIZE_MAX : last_link(to);
	/* The same file under both names: rename(2) does nothing. */
	if (id != SIZE_MAX && id == last_link(from))
		id = SIZE_MAX;
	return forget(renameat2(fs.backfd, rel(from), fs.backfd, rel(to),
	    flags) == -1 ? -errno : 0, id);
}

static int
lfs_link(const char *from, const char *to)
{
	(void)from;
	(void)to;
	return -EPERM;	/* hard links are not modelled */
}

static int
lfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int r;

	if (powered_off())
		return -EIO;
	if (fi != NULL)
		r = fchmod((int)fi->fh, mode);
	else
		r = fchmodat(fs.backfd, rel(path), mode, 0);
	return r == -1 ? -errno : 0;
}

static int
lfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, r;

	CHECK("truncate", path, NULL);
	if (fi != NULL)
		return ftruncate((int)fi->fh, size) == -1 ? -errno : 0;
	if ((fd = openat(fs.backfd, rel(path), O_WRONLY)) == -1)
		return -errno;
	r = ftruncate(fd, size) == -1 ? -errno : 0;
	close(fd);
	return r;
}

static int
lfs_utimens(const char *path, const struct timespec tv[2],
    struct fuse_file_info *fi)
{
	int r;

	if (powered_off())
		return -EIO;
	if (fi != NULL)
		r = futimens((int)fi->fh, tv);
	else
		r = utimensat(fs.backfd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
	return r == -1 ? -errno : 0;
}

static int
lfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd;

	CHECK("create", path, NULL);
	fd = openat(fs.backfd, rel(path), (fi->flags & ~O_NOFOLLOW) | O_CREAT,
	    mode);
	if (fd == -1)
		return -errno;
	/* A new file's durable content is empty until its first sync. */
	node_of_fd(fd);
	fi->fh = (uint64_t)fd;
	return 0;
}

static int
lfs_open(const char *path, struct fuse_file_info *fi)
{
	int fd;

	if (powered_off())
		return -EIO;
	if ((fi->flags & O_TRUNC) != 0)
		CHECK("truncate", path, NULL);
	fd = openat(fs.backfd, rel(path), fi->flags & ~O_NOFOLLOW);
	if (fd == -1)
		return -errno;
	node_of_fd(fd);
	fi->fh = (uint64_t)fd;
	return 0;
}

static int
lfs_read(const char *path, char *buf, size_t n, off_t off,
    struct fuse_file_info *fi)
{
	ssize_t r;

	(void)path;
	if (powered_off())
		return -EIO;
	r = pread((int)fi->fh, buf, n, off);
	return r == -1 ? -errno : (int)r;
}

static int
lfs_write(const char *path, const char *buf, size_t n, off_t off,
    struct fuse_file_info *fi)
{
	ssize_t r;

	CHECK("write", path, NULL);
	r = pwrite((int)fi->fh, buf, n, off);
	if (r > 0 && fs.keep_some)
		pending_add((int)fi->fh, buf, (size_t)r, off);
	return r == -1 ? -errno : (int)r;
}

static int
lfs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	if (powered_off())
		return -EIO;
	return fstatvfs(fs.backfd, sv) == -1 ? -errno : 0;
}

static int
lfs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int
lfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	size_t id;

	(void)datasync;	/* fdatasync also makes the size durable */
	CHECK("fsync", path, NULL);
	if (fsync((int)fi->fh) == -1)
		return -errno;
	if ((id = node_of_fd((int)fi->fh)) == SIZE_MAX)
		return -EIO;
	pending_drop(id);
	return store_content(id, (int)fi->fh);
}

static int
lfs_fallocate(const char *path, int mode, off_t off, off_t len,
    struct fuse_file_info *fi)
{
	CHECK("fallocate", path, NULL);
	if (fallocate((int)fi->fh, mode, off, len) == -1)
		return -errno;
	return 0;
}

static void *
lfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	/*
	 * No caching in the kernel, so every operation reaches lossyfs, and
	 * unlink removes at once (no .fuse_hidden renames of open files).
	 */
	cfg->entry_timeout = cfg->attr_timeout = cfg->negative_timeout = 0;
	cfg->hard_remove = 1;
	cfg->use_ino = 1;
	cfg->direct_io = 1;
	return NULL;
}

static const struct fuse_operations lfs_ops = {
	.init = lfs_init,
	.getattr = lfs_getattr,
	.access = lfs_access,
	.opendir = lfs_opendir,
	.readdir = lfs_readdir,
	.releasedir = lfs_releasedir,
	.fsyncdir = lfs_fsyncdir,
	.mkdir = lfs_mkdir,
	.unlink = lfs_unlink,
	.rmdir = lfs_rmdir,
	.rename = lfs_rename,
	.link = lfs_link,
	.chmod = lfs_chmod,
	.truncate = lfs_truncate,
	.utimens = lfs_utimens,
	.create = lfs_create,
	.open = lfs_open,
	.read = lfs_read,
	.write = lfs_write,
	.statfs = lfs_statfs,
	.release = lfs_release,
	.fsync = lfs_fsync,
	.fallocate = lfs_fallocate,
};

static void
on_usr1(int sig)
{
	(void)sig;
	crash_now = 1;
}

/* KIND:GLOB:N or KIND:GLOB:N+ (the glob may hold colons itself). */
static int
parse_point(const char *spec, struct point *p)
{
	const char *a = strchr(spec, ':'), *b = strrchr(spec, ':');
	char *end;

	if (a == NULL || a == b || (size_t)(a - spec) >= sizeof(p->kind) ||
	    (size_t)(b - a - 1) >= sizeof(p->glob))
		return -1;
	memset(p, 0, sizeof(*p));
	memcpy(p->kind, spec, (size_t)(a - spec));
	memcpy(p->glob, a + 1, (size_t)(b - a - 1));
	errno = 0;
	p->count = strtoul(b + 1, &end, 10);
	p->after = *end == '+';
	if (p->after)
		end++;
	return errno != 0 || p->count == 0 || *end != '\0' ? -1 : 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: lossyfs [--crash-at KIND:GLOB:N[+]] "
	    "[--keep-some SEED] "
	    "[--trace FILE] BACKDIR STOREDIR MOUNTPOINT\n"
	    "KIND: write fsync fsyncdir create mkdir rename unlink rmdir "
	    "truncate fallocate\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static char f[] = "-f", single[] = "-s", o[] = "-o",
	    opts[] = "default_permissions,fsname=lossyfs";
	char *fargv[] = { argv[0], NULL, f, single, o, opts, NULL };
	struct stat sb;
	int i = 1;

	for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
		if (strcmp(argv[i], "--crash-at") == 0) {
			if (parse_point(argv[i + 1], &fs.at) == -1)
				usage();
			fs.armed = true;
		} else if (strcmp(argv[i], "--keep-some") == 0) {
			fs.keep_some = true;
			fs.seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
		} else if (strcmp(argv[i], "--trace") == 0) {
			if ((fs.trace = fopen(argv[i + 1], "w")) == NULL)
				die("%s", argv[i + 1]);
			setvbuf(fs.trace, NULL, _IOLBF, 0);
		} else
			usage();
	}
	if (argc - i != 3)
		usage();
	if ((fs.backfd = open(argv[i], O_RDONLY | O_DIRECTORY)) == -1)
		die("%s", argv[i]);
	if ((fs.storefd = open(argv[i + 1], O_RDONLY | O_DIRECTORY)) == -1)
		die("%s", argv[i + 1]);
	if (fstat(fs.backfd, &sb) == -1)
		die("%s", argv[i]);
	/* What is there at mount is durable: the last power loss kept it. */
	node_new(sb.st_ino, true, sb.st_mode);
	if (sync_dir(fs.backfd, 0, true, 0) != 0)
		die("scan %s", argv[i]);
	signal(SIGUSR1, on_usr1);
	fargv[1] = argv[i + 2];
	return fuse_main(6, fargv, &lfs_ops, NULL);
}
