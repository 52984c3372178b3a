/* SPDX-License-Identifier: MIT */
/* Runs the S3 session store's steps from a command line (t_s3_store.sh). */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "proto.h"
#include "s3store.h"

static const char usage[] =
"usage: s3store_tool [--lease S] [--wait S] [--node NAME] OP ID ARGS\n"
"  create ID FILE CHUNK [NAME] | load ID | put ID FILE INDEX...\n"
"  put-bytes ID INDEX DATAFILE | have ID | commit ID FILE | \n"
"  commit-receipt ID HEX | cancel ID | list | read ID OUT [OFF LEN]\n"
"  delete ID: deletes a finished session (or finishes a tombstone's)\n"
"  tombstone ID: only the first step of a delete, as a node that died\n"
"  expire TTL [NOW]: cancel sessions idle over TTL s at NOW (Unix s)\n"
"  after-cancel ID FILE: cancel, then chunk 0 and COMMIT as a node that\n"
"  read the record before would send them\n"
"environment: S3_ENDPOINT, S3_TARGET (s3://BUCKET/PREFIX), S3_REGION,\n"
"  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; S3STORE_STOP_AFTER_COMMIT=F:\n"
"  commit writes F and exits (status 3) right after its commit object\n"
"Each run ends with the S3 requests it made on stderr.\n";

static struct s3store *st;
static const char *op;

static int
fail(enum pf_status rc)
{
	fprintf(stderr, "s3store_tool: %s: %s\n", op, pf_status_name(rc));
	return 1;
}

/* Reads n bytes at off of fd into a new buffer: one chunk at a time. */
static uint8_t *
read_at(int fd, uint64_t off, size_t n)
{
	uint8_t *p = malloc(n + 1);
	size_t got = 0;
	ssize_t k;

	if (p == NULL)
		return NULL;
	while (got < n && (k = pread(fd, p + got, n - got,
	    (off_t)(off + got))) > 0)
		got += (size_t)k;
	if (got != n) {
		free(p);
		return NULL;
	}
	return p;
}

/* The chunk digests of file and its receipt, one chunk in memory. */
static enum pf_status
file_receipt(const struct s3store_record *rec, const char *file,
    uint8_t out[PF_SHA256_LEN])
{
	uint32_t n = s3store_nchunks(rec), i;
	uint8_t *digests, *p;
	enum pf_status rc = PF_EIO;
	int fd;

	if ((fd = open(file, O_RDONLY)) == -1)
		return PF_EIO;
	if ((digests = calloc(n, PF_SHA256_LEN)) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		p = read_at(fd, (uint64_t)i * rec->chunk_size,
		    s3store_chunk_len(rec, i));
		if (p == NULL)
			goto out;
		rc = pf_sha256(p, s3store_chunk_len(rec, i),
		    digests + (size_t)i * PF_SHA256_LEN);
		free(p);
		if (rc != PF_OK)
			goto out;
	}
	rc = proto_receipt(rec->size, rec->chunk_size, digests, n, out);
out:
	free(digests);
	close(fd);
	return rc;
}

static int
create(const char *id, const char *file, const char *chunk, const char *name)
{
	struct s3store_record rec = { 0 };
	enum pf_status rc;
	struct stat sb;
	uint8_t *head;
	int fd;

	if ((fd = open(file, O_RDONLY)) == -1 || fstat(fd, &sb) == -1)
		return fprintf(stderr, "s3store_tool: %s\n", file), 1;
	snprintf(rec.id, sizeof(rec.id), "%s", id);
	snprintf(rec.user, sizeof(rec.user), "alice");
	snprintf(rec.name, sizeof(rec.name), "%s", name);
	rec.size = (uint64_t)sb.st_size;
	rec.chunk_size = (uint32_t)strtoul(chunk, NULL, 10);
	rec.head_len = rec.size < S3STORE_HEAD_MAX ? rec.size :
	    S3STORE_HEAD_MAX;
	if ((head = read_at(fd, 0, rec.head_len)) != NULL)
		memcpy(rec.head, head, rec.head_len);
	free(head);
	close(fd);
	rec.created = (int64_t)time(NULL);
	if ((rc = s3store_create(st, &rec)) != PF_OK)
		return fail(rc);
	printf("%s\n", rec.upload);
	return 0;
}

static enum pf_status
put_one(const struct s3store_record *rec, int fd, uint32_t i)
{
	uint8_t d[PF_SHA256_LEN], *p;
	size_t n = s3store_chunk_len(rec, i);
	enum pf_status rc;

	if ((p = read_at(fd, (uint64_t)i * rec->chunk_size, n)) == NULL)
		return PF_EIO;
	if ((rc = pf_sha256(p, n, d)) == PF_OK)
		rc = s3store_put_chunk(st, rec, i, p, n, d, NULL);
	free(p);
	return rc;
}

/* put ID FILE INDEX...: chunks of FILE; put-bytes ID INDEX DATAFILE: a
   chunk's bytes from a file of their own (to send other bytes). */
static int
put(const struct s3store_record *rec, int argc, char **argv, bool whole)
{
	enum pf_status rc = PF_OK;
	int fd, i;

	if ((fd = open(argv[0], O_RDONLY)) == -1)
		return fprintf(stderr, "s3store_tool: %s\n", argv[0]), 1;
	if (!whole) {
		uint8_t d[PF_SHA256_LEN], *p;
		struct stat sb;

		fstat(fd, &sb);
		p = read_at(fd, 0, (size_t)sb.st_size);
		if (p != NULL && (rc = pf_sha256(p, (size_t)sb.st_size,
		    d)) == PF_OK)
			rc = s3store_put_chunk(st, rec,
			    (uint32_t)strtoul(argv[1], NULL, 10), p,
			    (size_t)sb.st_size, d, NULL);
		free(p);
	}
	for (i = 1; whole && i < argc && rc == PF_OK; i++)
		rc = put_one(rec, fd, (uint32_t)strtoul(argv[i], NULL, 10));
	close(fd);
	return rc == PF_OK ? 0 : fail(rc);
}

static int
have(const struct s3store_record *rec)
{
	uint32_t n = s3store_nchunks(rec), i;
	uint8_t *bm = malloc(n / 8 + 1);
	enum pf_status rc;
	const char *sep = "";

	if (bm == NULL)
		return fail(PF_ENOMEM);
	if ((rc = s3store_have(st, rec, bm)) == PF_OK) {
		for (i = 0; i < n; i++)
			if (bm[i / 8] & (1u << (i % 8))) {
				printf("%s%u", sep, i);
				sep = " ";
			}
		printf("\n");
	}
	free(bm);
	return rc == PF_OK ? 0 : fail(rc);
}

/* S3STORE_STOP_AFTER_COMMIT=F: a committer that dies right after its
   commit object, leaving the lease to lapse. */
static void
stop_here(void *arg)
{
	const char *f = arg;
	FILE *fp;

	if ((fp = fopen(f, "w")) != NULL) {
		fputs("stopped\n", fp);
		fclose(fp);
	}
	_exit(3);
}

static int
commit(const struct s3store_record *rec, const char *arg, bool hex)
{
	uint8_t r[PF_SHA256_LEN];
	enum pf_status rc;

	if (hex)
		rc = pf_hex_decode(arg, r, sizeof(r)) < 0 ? PF_EUSAGE : PF_OK;
	else
		rc = file_receipt(rec, arg, r);
	if (rc == PF_OK)
		rc = s3store_commit(st, rec, r);
	if (rc == PF_OK)
		printf("committed\n");
	return rc == PF_OK ? 0 : fail(rc);
}

static bool
to_fd(void *arg, const void *p, size_t n)
{
	return write(*(int *)arg, p, n) == (ssize_t)n;
}

static int
read_obj(const struct s3store_record *rec, int argc, char **argv)
{
	uint64_t off = 0, len = 0;
	enum pf_status rc;
	int fd;

	if (argc == 3) {
		off = strtoull(argv[1], NULL, 10);
		len = strtoull(argv[2], NULL, 10);
	}
	if ((fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		return fprintf(stderr, "s3store_tool: %s\n", argv[0]), 1;
	rc = s3store_read(st, rec, off, len, to_fd, &fd);
	close(fd);
	return rc == PF_OK ? 0 : fail(rc);
}

static bool
print_session(void *arg, const struct s3store_record *rec,
    enum s3store_state state)
{
	static const char *names[] = { "ongoing", "committing", "finished",
	    "cancelling", "deleting" };

	(void)arg;
	printf("%s %s %s %" PRIu64 " %s\n", rec->id, rec->user, rec->name,
	    rec->size, names[state]);
	return true;
}

/* The first step of s3store_delete only: the record as a tombstone,
   then this "node" dies. */
static int
tombstone(struct s3store_record *rec, const char *prefix)
{
	char key[S3_KEY_MAX + 1], *text;
	enum pf_status rc;

	rec->deleting = true;
	if (!s3store_key(key, sizeof(key), prefix, rec, "record") ||
	    (text = s3store_record_encode(rec)) == NULL)
		return fail(PF_EIO);
	rc = s3_put(s3store_s3(st), key, text, strlen(text), false, NULL);
	free(text);
	return rc == PF_OK ? 0 : fail(rc);
}

/* A delete, from a tombstone too (as a DELETE again does). */
static int
delete_session(const char *id)
{
	struct s3store_record rec;
	enum pf_status rc;

	if ((rc = s3store_load_any(st, id, &rec)) != PF_OK ||
	    (rc = s3store_delete(st, &rec)) != PF_OK)
		return fail(rc);
	return 0;
}

/* A node holding the record still sends a chunk and a COMMIT after
   another node cancelled: both are refused. */
static int
after_cancel(const struct s3store_record *rec, const char *file)
{
	uint8_t r[PF_SHA256_LEN];
	enum pf_status rc, put_rc, commit_rc;
	int fd;

	if ((rc = s3store_cancel(st, rec)) != PF_OK)
		return fail(rc);
	if ((fd = open(file, O_RDONLY)) == -1)
		return fail(PF_EIO);
	put_rc = put_one(rec, fd, 0);
	close(fd);
	if ((rc = file_receipt(rec, file, r)) != PF_OK)
		return fail(rc);
	commit_rc = s3store_commit(st, rec, r);
	printf("put=%s commit=%s\n", pf_status_name(put_rc),
	    pf_status_name(commit_rc));
	return 0;
}

/* The operations on a session that exists: its record is read first,
   as a node that did not create it would. */
static int
on_session(int argc, char **argv, const char *prefix)
{
	struct s3store_record rec;
	enum pf_status rc;

	if ((rc = s3store_load(st, argv[0], &rec)) != PF_OK)
		return fail(rc);
	if (strcmp(op, "load") == 0 && argc == 1) {
		printf("user=%s name=%s size=%" PRIu64 " chunk=%u head=%zu\n",
		    rec.user, rec.name, rec.size, rec.chunk_size,
		    rec.head_len);
		return 0;
	}
	if (strcmp(op, "put") == 0 && argc >= 3)
		return put(&rec, argc - 1, argv + 1, true);
	if (strcmp(op, "put-bytes") == 0 && argc == 3) {
		char *v[2] = { argv[2], argv[1] };
		return put(&rec, 2, v, false);
	}
	if (strcmp(op, "have") == 0 && argc == 1)
		return have(&rec);
	if (strcmp(op, "commit") == 0 && argc == 2)
		return commit(&rec, argv[1], false);
	if (strcmp(op, "commit-receipt") == 0 && argc == 2)
		return commit(&rec, argv[1], true);
	if (strcmp(op, "cancel") == 0 && argc == 1)
		return (rc = s3store_cancel(st, &rec)) == PF_OK ? 0 : fail(rc);
	if (strcmp(op, "tombstone") == 0 && argc == 1)
		return tombstone(&rec, prefix);
	if (strcmp(op, "after-cancel") == 0 && argc == 2)
		return after_cancel(&rec, argv[1]);
	if (strcmp(op, "read") == 0 && (argc == 2 || argc == 4))
		return read_obj(&rec, argc - 1, argv + 1);
	return fputs(usage, stderr), 2;
}

static int
expire(const char *ttl, const char *now)
{
	struct s3store_expired ex;
	enum pf_status rc;

	rc = s3store_expire(st, now != NULL ? strtoll(now, NULL, 10) :
	    (int64_t)time(NULL), (unsigned)strtoul(ttl, NULL, 10), &ex);
	if (rc != PF_OK)
		return fail(rc);
	printf("sessions=%u uploads=%u\n", ex.sessions, ex.uploads);
	return 0;
}

static char *
env_dup(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	if ((v == NULL || *v == '\0') && (v = dflt) == NULL) {
		fprintf(stderr, "s3store_tool: %s is not set\n", name);
		exit(2);
	}
	return strdup(v);
}

int
main(int argc, char **argv)
{
	struct s3store_opts opts = { .node = "tool" };
	struct s3_config cfg = { 0 };
	struct s3_stats stats;
	enum pf_status rc;
	char *target;
	int ret;

	pf_log_set_prog("s3store_tool");
	s3_config_defaults(&cfg);
	for (argc--, argv++; argc >= 2 && strncmp(argv[0], "--", 2) == 0;
	    argc -= 2, argv += 2) {
		if (strcmp(argv[0], "--lease") == 0)
			opts.lease_s = (unsigned)strtoul(argv[1], NULL, 10);
		else if (strcmp(argv[0], "--wait") == 0)
			opts.wait_s = (unsigned)strtoul(argv[1], NULL, 10);
		else if (strcmp(argv[0], "--node") == 0)
			opts.node = argv[1];
		else
			break;
	}
	if (argc < 1)
		return fputs(usage, stderr), 2;
	op = argv[0];
	if ((opts.hook_arg = getenv("S3STORE_STOP_AFTER_COMMIT")) != NULL)
		opts.after_commit_object = stop_here;
	cfg.endpoint = env_dup("S3_ENDPOINT", NULL);
	cfg.region = env_dup("S3_REGION", "us-east-1");
	target = env_dup("S3_TARGET", NULL);
	rc = s3_config_target(&cfg, target);
	free(target);
	if (rc != PF_OK || s3_config_credentials(&cfg, NULL) != PF_OK ||
	    s3_config_check(&cfg) != PF_OK || s3_global_init() != PF_OK ||
	    (st = s3store_open(&cfg, &opts)) == NULL) {
		s3_config_clear(&cfg);
		return 2;
	}
	if (strcmp(op, "create") == 0 && (argc == 4 || argc == 5))
		ret = create(argv[1], argv[2], argv[3],
		    argc == 5 ? argv[4] : "data.bin");
	else if (strcmp(op, "list") == 0 && argc == 1)
		ret = (rc = s3store_list(st, print_session, NULL)) == PF_OK ?
		    0 : fail(rc);
	else if (strcmp(op, "expire") == 0 && (argc == 2 || argc == 3))
		ret = expire(argv[1], argc == 3 ? argv[2] : NULL);
	else if (strcmp(op, "delete") == 0 && argc == 2)
		ret = delete_session(argv[1]);
	else if (argc >= 2)
		ret = on_session(argc - 1, argv + 1, cfg.prefix != NULL ?
		    cfg.prefix : "");
	else
		ret = (fputs(usage, stderr), 2);
	s3_get_stats(s3store_s3(st), &stats);
	fprintf(stderr, "s3store_tool: %s: %" PRIu64 " S3 requests, %"
	    PRIu64 " tries\n", op, stats.requests, stats.tries);
	s3store_close(st);
	s3_config_clear(&cfg);
	return ret;
}
