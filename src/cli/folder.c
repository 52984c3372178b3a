/* SPDX-License-Identifier: MIT */
/* A transfer of many files: dry run, per-file receipts, the report. */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkio.h"
#include "cli.h"
#include "folder.h"
#include "progress.h"
#include "text.h"

/* What the files of a transfer came to. */
struct tally {
	unsigned	 stored, refused, changed, dirs;
	unsigned	 renamed;	/* stored, under a name made safe */
};

/* What the walk skipped, for --json: the first TREE_SKIPS_LISTED. */
static json_t *
skipped_entries(const struct tree *t)
{
	return t->skips != NULL ? json_incref(t->skips) : json_array();
}

int
folder_dry_run(const struct tree *t, bool json)
{
	char p[PF_TEXT_ESC_MAX * 1024 + 1], size[16];
	json_t *j = NULL, *a = json ? json_array() : NULL;

	for (size_t i = 0; i < t->n; i++) {
		const struct tree_entry *e = &t->e[i];

		if (a != NULL) {
			json_array_append_new(a, json_pack("{s:s,s:s,s:I}",
			    "path", e->rel, "type", e->dir ? "dir" : "file",
			    "size", (json_int_t)e->size));
			continue;
		}
		pf_text_escape(p, sizeof(p), e->rel, NULL);
		progress_format_bytes((double)e->size, size);
		printf("%-4s %9s  %s\n", e->dir ? "dir" : "file",
		    e->dir ? "-" : size, p);
	}
	if (json) {
		j = json_pack("{s:s,s:I,s:I,s:I,s:o,s:o}", "status",
		    "dry-run", "files", (json_int_t)t->files, "bytes",
		    (json_int_t)t->total, "skipped", (json_int_t)t->skipped,
		    "skipped_entries", skipped_entries(t), "entries", a);
		if (j != NULL)
			json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(j);
		return EXIT_OK;
	}
	progress_format_bytes((double)t->total, size);
	printf("would send %zu files and %zu directories, %s; %u skipped\n",
	    t->files, t->n - t->files, size, t->skipped);
	return EXIT_OK;
}

/*
 * The report's checks run on this many threads at most: a file the
 * transfer did not read whole (a large one, one resumed) is hashed again.
 */
#define CHECK_THREADS	4

/* Each file's receipt as it is here now, made on a few threads. */
struct folder_check {
	const struct tree	*t;
	uint32_t		 chunk_size;
	atomic_size_t		 next;
	atomic_bool		 stop;		/* not wanted any more */
	char			(*now)[PF_SHA256_HEX];	/* "" if unknown */
	pthread_t		 tid[CHECK_THREADS];
	size_t			 started;
};

/*
 * Local file e's receipt now into hex, or "" if it changed since it was
 * listed or cannot be read.
 */
static void
receipt_now(const struct tree *t, const struct tree_entry *e,
    uint32_t chunk_size, char hex[PF_SHA256_HEX])
{
	struct stat sb;
	int fd;

	/* Hashed as it was sent, and not touched since. */
	if (!atomic_load(&e->changed) && tree_receipt(t, e, chunk_size, hex))
		return;
	hex[0] = '\0';
	if (atomic_load(&e->changed) ||
	    (fd = tree_open(t, e)) == -1)
		return;
	/* Grown, or rewritten, since it was listed: not what was sent. */
	if (fstat(fd, &sb) == -1 || (uint64_t)sb.st_size != e->size ||
	    (int64_t)sb.st_mtim.tv_sec != e->mtime ||
	    chunkio_receipt(fd, e->size, chunk_size, hex) != PF_OK)
		hex[0] = '\0';
	close(fd);
}

static void *
check_thread(void *arg)
{
	struct folder_check *c = arg;
	size_t i;

	while (!atomic_load(&c->stop) &&
	    (i = atomic_fetch_add(&c->next, 1)) < c->t->n)
		if (!c->t->e[i].dir)
			receipt_now(c->t, &c->t->e[i], c->chunk_size,
			    c->now[i]);
	return NULL;
}

struct folder_check *
folder_check_start(const struct tree *t, uint32_t chunk_size)
{
	struct folder_check *c;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = ncpu < 1 ? 1 : ncpu > CHECK_THREADS ? CHECK_THREADS :
	    (size_t)ncpu;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->now = calloc(t->n + 1, sizeof(*c->now))) == NULL) {
		free(c);
		return NULL;
	}
	c->t = t;
	c->chunk_size = chunk_size;
	atomic_init(&c->next, 0);
	atomic_init(&c->stop, false);
	while (c->started < n && pthread_create(&c->tid[c->started], NULL,
	    check_thread, c) == 0)
		c->started++;
	return c;
}

/* Waits for c's threads; the caller's thread ends what none could. */
static void
check_wait(struct folder_check *c)
{
	for (; c->started > 0; c->started--)
		pthread_join(c->tid[c->started - 1], NULL);
	check_thread(c);
}

void
folder_check_wait(struct folder_check *c)
{
	if (c != NULL)
		check_wait(c);
}

void
folder_check_free(struct folder_check *c)
{
	if (c == NULL)
		return;
	/* A COMMIT that failed: no file read again for nothing. */
	atomic_store(&c->stop, true);
	check_wait(c);
	free(c->now);
	free(c);
}

/*
 * Judges entry i (server's list entry f), counted in tl: into a JSON
 * object of the report if json, else NULL and a line for people about a
 * file not stored as it is.
 */
static json_t *
judge(const struct tree_entry *e, const json_t *f, bool same,
    struct tally *tl, bool json)
{
	const char *state = json_string_value(json_object_get(f, "state"));
	const char *digest = json_string_value(json_object_get(f, "digest"));
	const char *reason = json_string_value(json_object_get(f, "reason"));
	const char *stored = json_string_value(json_object_get(f, "path"));
	char p[PF_TEXT_ESC_MAX * 1024 + 1], why[PF_TEXT_ESC_MAX * 512 + 1];

	if (state == NULL)
		state = "unknown";
	if (strcmp(state, "stored") == 0 && stored != NULL &&
	    strcmp(stored, e->rel) != 0)
		tl->renamed++;
	if (strcmp(state, "stored") != 0)
		tl->refused++;
	else if (e->dir)
		tl->dirs++;
	else if (!same) {
		state = "changed";
		reason = "changed while it was sent: stored as it was read; "
		    "run the upload again";
		tl->changed++;
	} else
		tl->stored++;
	if (!json) {
		if (strcmp(state, "stored") == 0)
			return NULL;
		pf_text_escape(p, sizeof(p), e->rel, NULL);
		pf_text_escape(why, sizeof(why), reason ? reason : "", NULL);
		fprintf(stderr, "paraflow: %s: %s: %s\n", p, state, why);
		return NULL;
	}
	return json_pack("{s:s,s:s,s:s?,s:I,s:s,s:s?,s:s?}", "path", e->rel,
	    "type", e->dir ? "dir" : "file", "stored_as", stored, "size",
	    (json_int_t)e->size, "state", state, "reason", reason, "digest",
	    digest);
}

/* Prints the summary of a transfer for people. */
static void
print_summary(const struct upload_result *r, const struct tally *tl,
    bool quiet)
{
	char size[16], rate[16];

	progress_format_bytes((double)r->bytes, size);
	progress_format_bytes(r->seconds > 0 ? r->bytes_sent / r->seconds : 0,
	    rate);
	printf("uploaded %u files and %u directories: %s in %.2f s (%s/s), "
	    "%u chunks, %u re-sent\n", tl->stored, tl->dirs, size,
	    r->seconds, rate, r->chunks, r->retries);
	if (tl->refused + tl->changed > 0)
		printf("not stored as they are here: %u refused, %u changed\n",
		    tl->refused, tl->changed);
	if (tl->renamed > 0)
		printf("%u stored under a name made safe (a leading dot, a "
		    "control character...): --json gives each stored_as\n",
		    tl->renamed);
	if (r->resumed_chunks > 0)
		printf("resumed: %u of %u chunks were on the server already\n",
		    r->resumed_chunks, r->chunks);
	printf("session %s\nreceipt %s\n", r->session, r->digest);
	if (!quiet)
		printf("follow it up with: paraflow status %s\n", r->session);
}

/* True if entry i of t is a file whose receipt here is digest. */
static bool
same_file(const struct folder_check *c, size_t i, const char *digest)
{
	return !c->t->e[i].dir && digest != NULL && c->now[i][0] != '\0' &&
	    strcmp(c->now[i], digest) == 0;
}

int
folder_report(const struct upload_result *r, struct tree *t,
    uint32_t chunk_size, json_t *streams, bool json, bool quiet)
{
	struct tally tl = { 0, 0, 0, 0, 0 };
	struct folder_check *c = r->check;
	json_t *a, *j;
	bool partial, refused;
	int rc;

	if (json_array_size(r->files) != t->n) {
		json_decref(streams);
		fprintf(stderr, "paraflow: the server listed %zu entries, not "
		    "%zu\n", json_array_size(r->files), t->n);
		return EXIT_INTEGRITY;
	}
	/* Made while the server committed, or now. */
	if ((c == NULL && (c = folder_check_start(t, chunk_size)) == NULL) ||
	    (a = json_array()) == NULL) {
		if (c != r->check)
			folder_check_free(c);
		json_decref(streams);
		fprintf(stderr, "paraflow: out of memory\n");
		return EXIT_ERROR;
	}
	folder_check_wait(c);
	for (size_t i = 0; i < t->n; i++) {
		const json_t *f = json_array_get(r->files, i);
		json_t *e = judge(&t->e[i], f, same_file(c, i,
		    json_string_value(json_object_get(f, "digest"))), &tl,
		    json);

		if (e != NULL)
			json_array_append_new(a, e);
	}
	if (c != r->check)
		folder_check_free(c);
	partial = tl.refused + tl.changed > 0;
	refused = tl.refused > 0 && tl.stored + tl.changed == 0;
	rc = refused ? EXIT_REFUSED : partial ? EXIT_PARTIAL : EXIT_OK;
	if (!json) {
		json_decref(a);
		json_decref(streams);
		print_summary(r, &tl, quiet);
		return rc;
	}
	j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:f,s:I,s:I,s:I,s:I,s:I,"
	    "s:o,s:{s:I,s:I,s:I,s:I,s:I},s:o,s:o}", "status", refused ?
	    "refused" : partial ? "partial" : "ok", "session", r->session,
	    "name", r->name, "bytes", (json_int_t)r->bytes, "chunks",
	    (json_int_t)r->chunks, "chunk_size", (json_int_t)chunk_size,
	    "digest", r->digest, "seconds",
	    r->seconds, "retries", (json_int_t)r->retries, "resumed_chunks",
	    (json_int_t)r->resumed_chunks, "reconnects",
	    (json_int_t)r->reconnects, "bytes_sent",
	    (json_int_t)r->bytes_sent, "skipped", (json_int_t)t->skipped,
	    "skipped_entries", skipped_entries(t), "files", "total",
	    (json_int_t)t->files, "stored", (json_int_t)tl.stored,
	    "refused", (json_int_t)tl.refused,
	    "changed", (json_int_t)tl.changed, "dirs", (json_int_t)tl.dirs,
	    "entries", a, "streams", streams != NULL ? streams :
	    json_null());
	if (j != NULL) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(j);
	}
	return rc;
}
