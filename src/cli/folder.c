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
};

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
		j = json_pack("{s:s,s:I,s:I,s:I,s:o}", "status", "dry-run",
		    "files", (json_int_t)t->files, "bytes",
		    (json_int_t)t->total, "skipped", (json_int_t)t->skipped,
		    "entries", a);
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
#define SAME_THREADS	4

/* True if local file e's receipt now is digest. */
static bool
same_file(const struct tree *t, const struct tree_entry *e,
    uint32_t chunk_size, const char *digest)
{
	char mine[PF_SHA256_HEX];
	struct stat sb;
	bool same;
	int fd;

	if (atomic_load(&e->changed) || digest == NULL)
		return false;
	/* Hashed as it was sent, and not touched since. */
	if (tree_receipt(t, e, chunk_size, mine))
		return strcmp(mine, digest) == 0;
	if ((fd = open(e->local, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	/* Grown, or rewritten, since it was listed: not what was sent. */
	same = fstat(fd, &sb) == 0 && (uint64_t)sb.st_size == e->size &&
	    (int64_t)sb.st_mtim.tv_sec == e->mtime &&
	    chunkio_receipt(fd, e->size, chunk_size, mine) == PF_OK &&
	    strcmp(mine, digest) == 0;
	close(fd);
	return same;
}

/* The files of a transfer checked against the server's list. */
struct same_job {
	const struct tree	*t;
	const json_t		*files;
	uint32_t		 chunk_size;
	atomic_size_t		 next;
	bool			*same;		/* per entry */
};

static void *
same_thread(void *arg)
{
	struct same_job *sj = arg;
	size_t i;

	while ((i = atomic_fetch_add(&sj->next, 1)) < sj->t->n) {
		const struct tree_entry *e = &sj->t->e[i];
		const json_t *f = json_array_get(sj->files, i);

		sj->same[i] = !e->dir && same_file(sj->t, e, sj->chunk_size,
		    json_string_value(json_object_get(f, "digest")));
	}
	return NULL;
}

/*
 * Sets same[i] for each file entry i of t whose local receipt is the one
 * the server listed, on a few threads: for 10,000 files one thread
 * would leave the other CPUs idle while the user waits.
 */
static void
check_files(const struct tree *t, const json_t *files, uint32_t chunk_size,
    bool *same)
{
	struct same_job sj = { t, files, chunk_size, 0, same };
	pthread_t tid[SAME_THREADS];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = ncpu < 1 ? 1 : ncpu > SAME_THREADS ? SAME_THREADS :
	    (size_t)ncpu, started = 0;

	while (started + 1 < n &&
	    pthread_create(&tid[started], NULL, same_thread, &sj) == 0)
		started++;
	same_thread(&sj);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
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
	if (r->resumed_chunks > 0)
		printf("resumed: %u of %u chunks were on the server already\n",
		    r->resumed_chunks, r->chunks);
	printf("session %s\nreceipt %s\n", r->session, r->digest);
	if (!quiet)
		printf("follow it up with: paraflow status %s\n", r->session);
}

int
folder_report(const struct upload_result *r, struct tree *t,
    uint32_t chunk_size, bool json, bool quiet)
{
	struct tally tl = { 0, 0, 0, 0 };
	json_t *a, *j;
	bool partial, *same;

	if (json_array_size(r->files) != t->n) {
		fprintf(stderr, "paraflow: the server listed %zu entries, not "
		    "%zu\n", json_array_size(r->files), t->n);
		return EXIT_INTEGRITY;
	}
	if ((same = calloc(t->n + 1, sizeof(*same))) == NULL ||
	    (a = json_array()) == NULL) {
		free(same);
		fprintf(stderr, "paraflow: out of memory\n");
		return EXIT_ERROR;
	}
	check_files(t, r->files, chunk_size, same);
	for (size_t i = 0; i < t->n; i++) {
		json_t *e = judge(&t->e[i], json_array_get(r->files, i),
		    same[i], &tl, json);

		if (e != NULL)
			json_array_append_new(a, e);
	}
	free(same);
	partial = tl.refused + tl.changed > 0;
	if (!json) {
		json_decref(a);
		print_summary(r, &tl, quiet);
		return partial ? EXIT_PARTIAL : EXIT_OK;
	}
	j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:f,s:I,s:I,s:I,s:I,s:I,"
	    "s:{s:I,s:I,s:I,s:I,s:I},s:o}", "status", partial ? "partial" :
	    "ok", "session", r->session, "name", r->name, "bytes",
	    (json_int_t)r->bytes, "chunks", (json_int_t)r->chunks, "digest",
	    r->digest, "seconds", r->seconds, "retries",
	    (json_int_t)r->retries, "resumed_chunks",
	    (json_int_t)r->resumed_chunks, "reconnects",
	    (json_int_t)r->reconnects, "bytes_sent",
	    (json_int_t)r->bytes_sent, "skipped", (json_int_t)t->skipped,
	    "files", "total", (json_int_t)t->files, "stored",
	    (json_int_t)tl.stored, "refused", (json_int_t)tl.refused,
	    "changed", (json_int_t)tl.changed, "dirs", (json_int_t)tl.dirs,
	    "entries", a);
	if (j != NULL) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(j);
	}
	return partial ? EXIT_PARTIAL : EXIT_OK;
}
