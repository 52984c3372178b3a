/* SPDX-License-Identifier: MIT */
/* Runs the S3 client's operations from a command line (t_s3_client.sh). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "s3.h"

#define TOOL_FILE_MAX	(256u << 20)

static const char usage[] =
"usage: s3tool [--page N] [--attempts N] [--credentials FILE] OP ARGS\n"
"  put KEY FILE [if-absent] | get KEY OUT [OFF LEN] | head KEY\n"
"  delete KEY | mpu-create KEY | mpu-part KEY ID N FILE OFF LEN\n"
"  mpu-parts KEY ID | mpu-complete KEY ID | mpu-abort KEY ID\n"
"  mpu-list [PREFIX] | upload KEY FILE PARTSIZE | probe\n"
"  fill PREFIX N | delete-keys FILE (one key a line)\n"
"environment: S3_ENDPOINT, S3_BUCKET or S3_TARGET (s3://BUCKET/PREFIX),\n"
"  S3_REGION, AWS_ACCESS_KEY_ID,\n"
"  AWS_SECRET_ACCESS_KEY; S3TOOL_HOLD=F: upload waits for F after part 1\n";

static struct s3 *s3;
static const char *op;

static int
fail(enum pf_status rc)
{
	char line[512];

	fprintf(stderr, "s3tool: %s: %s: %s\n", op, pf_status_name(rc),
	    s3_describe(s3, line, sizeof(line)));
	return 1;
}

/* Reads len bytes (0: all) of file from off into a new buffer. */
static char *
slurp(const char *file, uint64_t off, uint64_t len, size_t *n)
{
	struct stat st;
	char *p;
	ssize_t k;
	int fd;

	if ((fd = open(file, O_RDONLY)) == -1 || fstat(fd, &st) == -1) {
		fprintf(stderr, "s3tool: %s: %s\n", file, strerror(errno));
		exit(1);
	}
	if (len == 0)
		len = (uint64_t)st.st_size > off ? st.st_size - off : 0;
	if (len > TOOL_FILE_MAX || (p = malloc(len + 1)) == NULL) {
		fprintf(stderr, "s3tool: %s: too large\n", file);
		exit(1);
	}
	*n = 0;
	while (*n < len && (k = pread(fd, p + *n, len - *n,
	    (off_t)(off + *n))) > 0)
		*n += (size_t)k;
	close(fd);
	return p;
}

static bool
to_fd(void *arg, const void *p, size_t n)
{
	return write(*(int *)arg, p, n) == (ssize_t)n;
}

static bool
print_part(void *arg, const struct s3_part *p)
{
	printf("%u %" PRIu64 " %s\n", p->number, p->size, p->etag);
	return true;
}

/* Collects the parts ListParts gives into arg's array. */
struct parts {
	struct s3_part	*v;
	size_t		 n, cap;
};

static bool
keep_part(void *arg, const struct s3_part *p)
{
	struct parts *ps = arg;
	struct s3_part *v;

	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 16;
		if ((v = realloc(ps->v, ps->cap * sizeof(*v))) == NULL)
			return false;
		ps->v = v;
	}
	ps->v[ps->n++] = *p;
	return true;
}

static bool
print_upload(void *arg, const char *key, const char *id, int64_t initiated)
{
	printf("%s %s\n", key, id);
	return true;
}

/* fill PREFIX N: N objects PREFIX0..PREFIX<N-1> of 1 byte, one process. */
static int
fill(const char *prefix, unsigned long n)
{
	char key[S3_KEY_MAX + 1];
	enum pf_status rc;
	unsigned long i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s%lu", prefix, i);
		if ((rc = s3_put(s3, key, "x", 1, false, NULL)) != PF_OK)
			return fail(rc);
	}
	return 0;
}

/* delete-keys FILE: the keys of FILE (one a line) in DeleteObjects
   requests; prints how many requests that took. */
static int
delete_keys(const char *file)
{
	char line[S3_KEY_MAX + 2], **keys = NULL, **v;
	size_t n = 0, cap = 0;
	struct s3_stats st;
	enum pf_status rc = PF_ENOMEM;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL)
		return fprintf(stderr, "s3tool: %s\n", file), 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((v = realloc(keys, cap * sizeof(*v))) == NULL)
				goto out;
			keys = v;
		}
		if ((keys[n] = strdup(line)) == NULL)
			goto out;
		n++;
	}
	rc = s3_delete_keys(s3, (const char *const *)keys, n);
	s3_get_stats(s3, &st);
	if (rc == PF_OK)
		printf("keys=%zu requests=%" PRIu64 " tries=%" PRIu64 "\n", n,
		    st.requests, st.tries);
out:
	fclose(f);
	while (n > 0)
		free(keys[--n]);
	free(keys);
	return rc == PF_OK ? 0 : fail(rc);
}

/* S3TOOL_HOLD=F: says F.ready, then waits (60 s at most) for F, so a
   test can stop the store between two parts. */
static void
hold(void)
{
	const char *f = getenv("S3TOOL_HOLD");
	char ready[4096];
	FILE *fp;
	int i;

	if (f == NULL)
		return;
	snprintf(ready, sizeof(ready), "%s.ready", f);
	if ((fp = fopen(ready, "w")) != NULL) {
		fputs("held\n", fp);
		fclose(fp);
	}
	for (i = 0; i < 1200 && access(f, F_OK) != 0; i++)
		usleep(50000);
}

/* A whole multipart upload, one part in memory at a time; ListParts must
   show what the part PUTs answered before the upload completes. */
static int
upload(const char *key, const char *file, uint64_t psize)
{
	struct parts mine = { 0 }, listed = { 0 };
	struct s3_part part;
	struct s3_stats st;
	struct stat sb;
	char id[S3_ID_MAX], *p;
	uint64_t off = 0;
	enum pf_status rc;
	size_t n, i;
	int ret = 1;

	if (stat(file, &sb) == -1 || psize == 0)
		return fprintf(stderr, "s3tool: %s\n", file), 1;
	if ((rc = s3_mpu_create(s3, key, id)) != PF_OK)
		return fail(rc);
	for (part.number = 1; off < (uint64_t)sb.st_size; part.number++) {
		p = slurp(file, off, (uint64_t)sb.st_size - off < psize ?
		    (uint64_t)sb.st_size - off : psize, &n);
		rc = s3_mpu_put_part(s3, key, id, part.number, p, n, NULL,
		    part.etag);
		free(p);
		if (rc != PF_OK)
			goto out;
		part.size = n;
		keep_part(&mine, &part);
		off += n;
		if (part.number == 1)
			hold();
	}
	if ((rc = s3_mpu_list_parts(s3, key, id, keep_part, &listed)) !=
	    PF_OK)
		goto out;
	for (i = 0; i < mine.n; i++)
		if (listed.n != mine.n ||
		    strcmp(listed.v[i].etag, mine.v[i].etag) != 0 ||
		    listed.v[i].size != mine.v[i].size) {
			fprintf(stderr, "s3tool: ListParts differs at %zu\n",
			    i);
			goto out;
		}
	if ((rc = s3_mpu_complete(s3, key, id, mine.v, mine.n)) != PF_OK)
		goto out;
	s3_get_stats(s3, &st);
	printf("parts=%zu requests=%" PRIu64 " tries=%" PRIu64
	    " connects=%" PRIu64 "\n", mine.n, st.requests, st.tries,
	    st.connects);
	ret = 0;
out:
	if (rc != PF_OK)
		ret = fail(rc);
	free(mine.v);
	free(listed.v);
	return ret;
}

static int
complete(const char *key, const char *id)
{
	struct parts ps = { 0 };
	enum pf_status rc;

	rc = s3_mpu_list_parts(s3, key, id, keep_part, &ps);
	if (rc == PF_OK)
		rc = s3_mpu_complete(s3, key, id, ps.v, ps.n);
	free(ps.v);
	return rc == PF_OK ? 0 : fail(rc);
}

static int
get(int argc, char **argv)
{
	uint64_t off = 0, len = 0;
	enum pf_status rc;
	int fd;

	if (argc == 4) {
		off = strtoull(argv[2], NULL, 10);
		len = strtoull(argv[3], NULL, 10);
	}
	if ((fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644)) == -1)
		return fprintf(stderr, "s3tool: %s\n", argv[1]), 1;
	rc = s3_get(s3, argv[0], off, len, to_fd, &fd);
	close(fd);
	return rc == PF_OK ? 0 : fail(rc);
}

/* The operations but upload and get; argv[0] is the key. */
static int
run(int argc, char **argv)
{
	char id[S3_ID_MAX], etag[S3_ETAG_MAX], *p;
	enum pf_status rc = PF_EUSAGE;
	uint64_t size;
	size_t n;

	if (strcmp(op, "put") == 0 && argc >= 2) {
		p = slurp(argv[1], 0, 0, &n);
		rc = s3_put(s3, argv[0], p, n, argc > 2, etag);
		free(p);
		if (rc == PF_OK)
			printf("%s\n", etag);
	} else if (strcmp(op, "head") == 0 && argc == 1) {
		if ((rc = s3_head(s3, argv[0], &size, etag)) == PF_OK)
			printf("size=%" PRIu64 " etag=%s\n", size, etag);
	} else if (strcmp(op, "delete") == 0 && argc == 1) {
		rc = s3_delete(s3, argv[0]);
	} else if (strcmp(op, "mpu-create") == 0 && argc == 1) {
		if ((rc = s3_mpu_create(s3, argv[0], id)) == PF_OK)
			printf("%s\n", id);
	} else if (strcmp(op, "mpu-part") == 0 && argc == 6) {
		p = slurp(argv[3], strtoull(argv[4], NULL, 10),
		    strtoull(argv[5], NULL, 10), &n);
		rc = s3_mpu_put_part(s3, argv[0], argv[1],
		    (unsigned)strtoul(argv[2], NULL, 10), p, n, NULL, etag);
		free(p);
		if (rc == PF_OK)
			printf("%s\n", etag);
	} else if (strcmp(op, "mpu-parts") == 0 && argc == 2) {
		rc = s3_mpu_list_parts(s3, argv[0], argv[1], print_part, NULL);
	} else if (strcmp(op, "mpu-abort") == 0 && argc == 2) {
		rc = s3_mpu_abort(s3, argv[0], argv[1]);
	} else if (strcmp(op, "mpu-list") == 0 && argc <= 1) {
		rc = s3_mpu_list(s3, argc ? argv[0] : "", print_upload, NULL);
	} else {
		fputs(usage, stderr);
		return 2;
	}
	return rc == PF_OK ? 0 : fail(rc);
}

static char *
env_dup(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	if ((v == NULL || *v == '\0') && (v = dflt) == NULL) {
		fprintf(stderr, "s3tool: %s is not set\n", name);
		exit(2);
	}
	return strdup(v);
}

int
main(int argc, char **argv)
{
	struct s3_config cfg = { 0 };
	const char *creds = NULL;
	enum pf_status st = PF_OK;
	int rc;

	pf_log_set_prog("s3tool");
	s3_config_defaults(&cfg);
	for (argc--, argv++; argc >= 2 && strncmp(argv[0], "--", 2) == 0;
	    argc -= 2, argv += 2) {
		if (strcmp(argv[0], "--page") == 0)
			cfg.page = (unsigned)strtoul(argv[1], NULL, 10);
		else if (strcmp(argv[0], "--attempts") == 0)
			cfg.attempts = (unsigned)strtoul(argv[1], NULL, 10);
		else if (strcmp(argv[0], "--credentials") == 0)
			creds = argv[1];
		else
			break;
	}
	if (argc < 1)
		return fputs(usage, stderr), 2;
	op = argv[0];
	cfg.endpoint = env_dup("S3_ENDPOINT", NULL);
	cfg.region = env_dup("S3_REGION", "us-east-1");
	if (getenv("S3_TARGET") != NULL)
		st = s3_config_target(&cfg, getenv("S3_TARGET"));
	else if ((cfg.bucket = env_dup("S3_BUCKET", NULL)) != NULL)
		st = (cfg.prefix = strdup("")) != NULL ? PF_OK : PF_ENOMEM;
	if (st != PF_OK || s3_config_credentials(&cfg, creds) != PF_OK ||
	    s3_config_check(&cfg) != PF_OK || s3_global_init() != PF_OK ||
	    (s3 = s3_new(&cfg)) == NULL) {
		s3_config_clear(&cfg);
		return 2;
	}
	if (strcmp(op, "probe") == 0 && argc == 1)
		rc = (st = s3_probe(s3)) == PF_OK ? 0 : fail(st);
	else if (strcmp(op, "upload") == 0 && argc == 4)
		rc = upload(argv[1], argv[2], strtoull(argv[3], NULL, 10));
	else if (strcmp(op, "fill") == 0 && argc == 3)
		rc = fill(argv[1], strtoul(argv[2], NULL, 10));
	else if (strcmp(op, "delete-keys") == 0 && argc == 2)
		rc = delete_keys(argv[1]);
	else if (strcmp(op, "mpu-complete") == 0 && argc == 3)
		rc = complete(argv[1], argv[2]);
	else if (strcmp(op, "get") == 0 && (argc == 3 || argc == 5))
		rc = get(argc - 1, argv + 1);
	else if (argc >= 2 || strcmp(op, "mpu-list") == 0)
		rc = run(argc - 1, argv + 1);
	else
		rc = (fputs(usage, stderr), 2);
	s3_free(s3);
	s3_config_clear(&cfg);
	return rc;
}
