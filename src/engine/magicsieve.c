/* SPDX-License-Identifier: MIT */
/*
 * Cuts libmagic's compiled database down to the rules that can name given
 * MIME types.
 *
 * Why a head the cut database names none of the types is none of them
 * for the whole database either: libmagic tries the top-level rules of
 * set 0 in the database's order and stops at the first that matches with
 * something to say; each rule's outcome depends on the head alone, except
 * through "use" (a named rule, from set 1) and "indirect" (the whole
 * database at another offset). If the whole database prints type T, the
 * rule R that printed it can name T and is kept, with every named rule;
 * the rules before R in the cut database were before R in the whole one,
 * where none of them stopped the search, so none does here, and R prints
 * T again. The built-in tests (JSON, CSV, tar, text encodings) are the
 * same for both. The other way round does not hold: a rule dropped here
 * may have stopped the whole database before a kept one, which is why a
 * flagged head goes to the whole database (ftype.c).
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <magic.h>

#include "log.h"
#include "magicsieve.h"

/*
 * Format version 18 of the compiled database (file 5.44's VERSIONNO): a
 * header entry, then set 0's entries, then set 1's, each a struct magic
 * of 376 bytes. libmagic itself refuses a file of another version.
 */
#define MGC_MAGIC	0xf11e041cU
#define MGC_VERSION	18
#define MGC_ENTRY	376
#define MGC_SETS	2	/* 0: the rules; 1: the named rules */

/* Where that version's struct magic keeps the fields read here. */
#define E_CONT		0	/* uint16_t cont_level: 0 for a top level */
#define E_TYPE		6	/* uint8_t type */
#define E_VALUE		32	/* value.s: what a "name" or "use" names */
#define E_VALUE_MAX	128
#define E_MIME		224	/* mimetype */
#define E_MIME_MAX	80

#define T_INDIRECT	41
#define T_NAME		45
#define T_USE		46

/* One compiled file of the search path, mapped. */
struct mgc {
	uint8_t		*map;
	size_t		 size;
	uint32_t	 n[MGC_SETS];
};

/* A top-level rule and its continuations. */
struct group {
	const uint8_t	*e;
	size_t		 n;		/* entries */
	size_t		 file;		/* index in the search path's files */
	int		 set;
	bool		 names;		/* can print a type, or runs indirect */
	bool		 reaches;	/* ... or calls a rule that can */
	char		 name[E_VALUE_MAX + 1];	/* a named rule's, or "" */
};

/* The NUL-terminated string field at off of entry e, of at most max. */
static void
field(const uint8_t *e, size_t off, size_t max, char *out)
{
	size_t len = strnlen((const char *)e + off, max);

	memcpy(out, e + off, len);
	out[len] = '\0';
}

/* Whether entry e can print one of types, or runs the whole database. */
static bool
entry_names(const uint8_t *e, const char *const *types, size_t ntypes)
{
	char mime[E_MIME_MAX + 1];
	size_t len, i;

	if (e[E_TYPE] == T_INDIRECT)
		return true;
	field(e, E_MIME, E_MIME_MAX, mime);
	/* "application/x-${x?pie-executable:sharedlib}" is chosen later. */
	if (strstr(mime, "${") != NULL)
		return true;
	len = strcspn(mime, ",; \t");
	for (i = 0; i < ntypes && len > 0; i++)
		if (strlen(types[i]) == len && memcmp(types[i], mime, len) == 0)
			return true;
	return false;
}

/*
 * Whether the text magic file (or directory) path holds rules: libmagic
 * reads it beside the compiled ones, and the sieve cannot cut what is not
 * compiled. Debian's /etc/magic is comments only.
 */
static bool
has_rules(const char *path)
{
	char line[1024];
	bool rules = false;
	struct stat st;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return errno != ENOENT;	/* libmagic skips what is not there */
	if (fstat(fileno(f), &st) == -1 || !S_ISREG(st.st_mode))
		rules = true;
	while (!rules && fgets(line, sizeof(line), f) != NULL)
		rules = line[0] != '#' && line[strspn(line, " \t\r\n")] != '\0';
	fclose(f);
	return rules;
}

/* Maps the compiled file path into m; 1 if there is none, -1 if unusable. */
static int
mgc_map(const char *path, struct mgc *m)
{
	uint32_t hdr[4];
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 1;
	if (fstat(fd, &st) == -1 || st.st_size < MGC_ENTRY ||
	    (size_t)st.st_size % MGC_ENTRY != 0) {
		close(fd);
		log_warn("%s: %s: not a compiled magic file", __func__, path);
		return -1;
	}
	m->size = (size_t)st.st_size;
	m->map = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		log_warn("%s: %s: mmap: %s", __func__, path, strerror(errno));
		return -1;
	}
	memcpy(hdr, m->map, sizeof(hdr));
	m->n[0] = hdr[2];
	m->n[1] = hdr[3];
	if (hdr[0] != MGC_MAGIC || hdr[1] != MGC_VERSION ||
	    (uint64_t)m->n[0] + m->n[1] != m->size / MGC_ENTRY - 1) {
		log_info("%s: %s: format version %u, this build reads %u",
		    __func__, path, hdr[1], MGC_VERSION);
		munmap(m->map, m->size);
		return -1;
	}
	return 0;
}

/*
 * The compiled file libmagic takes for the search path's component comp
 * ("x" or "x.mgc": "x.mgc") into db; false if a legacy "x.mime.mgc",
 * which libmagic would take instead, is there, or if db is too small.
 */
static bool
db_name(const char *comp, char *db, size_t cap)
{
	size_t len = strlen(comp);
	int base = (int)(len > 4 && strcmp(comp + len - 4, ".mgc") == 0 ?
	    len - 4 : len);

	if ((size_t)snprintf(db, cap, "%.*s.mime.mgc", base, comp) >= cap ||
	    access(db, F_OK) == 0)
		return false;
	snprintf(db, cap, "%.*s.mgc", base, comp);
	return true;
}

/*
 * Maps the compiled files of libmagic's search path (the MAGIC
 * environment variable, or ~/.magic.mgc and the system's) into m, as
 * magic_load(NULL) takes them: "x" is "x.mgc" if that opens, else x's
 * text. Returns how many, or -1.
 */
static long
map_path(struct mgc m[MAGICSIEVE_FILES])
{
	char *path, *comp, *save = NULL, db[4096];
	const char *p = magic_getpath(NULL, 0);	/* 0: FILE_LOAD */
	long n = 0;
	int rc = 0;

	if (p == NULL || (path = strdup(p)) == NULL)
		return -1;
	for (comp = strtok_r(path, ":", &save); comp != NULL && rc != -1;
	    comp = strtok_r(NULL, ":", &save)) {
		if (n == MAGICSIEVE_FILES || !db_name(comp, db, sizeof(db)))
			rc = -1;
		else if ((rc = mgc_map(db, &m[n])) == 0)
			n++;
		else if (rc == 1 && has_rules(comp)) {
			log_info("%s: %s holds rules of its own", __func__,
			    comp);
			rc = -1;
		}
	}
	free(path);
	if (rc == -1) {
		while (n > 0) {
			n--;
			munmap(m[n].map, m[n].size);
		}
		return -1;
	}
	return n;
}

/* Splits the files' entries into groups; returns how many. */
static size_t
split(const struct mgc *m, size_t nfiles, struct group *g)
{
	size_t ng = 0, first, f, i;
	int set;

	for (f = 0; f < nfiles; f++) {
		const uint8_t *e = m[f].map + MGC_ENTRY;

		for (set = 0; set < MGC_SETS; set++) {
			first = ng;
			for (i = 0; i < m[f].n[set]; i++, e += MGC_ENTRY) {
				uint16_t cont;

				memcpy(&cont, e + E_CONT, sizeof(cont));
				if (cont != 0 && ng > first) {
					g[ng - 1].n++;
					continue;
				}
				g[ng] = (struct group){ .e = e, .n = 1,
				    .file = f, .set = set };
				if (e[E_TYPE] == T_NAME)
					field(e, E_VALUE, E_VALUE_MAX,
					    g[ng].name);
				ng++;
			}
		}
	}
	return ng;
}

/* Whether group x calls ("use") a named rule that reaches a type. */
static bool
calls_reaching(const struct group *x, const struct group *g, size_t ng)
{
	char name[E_VALUE_MAX + 1];
	size_t i, j;

	for (i = 0; i < x->n; i++) {
		const uint8_t *e = x->e + i * MGC_ENTRY;

		if (e[E_TYPE] != T_USE)
			continue;
		field(e, E_VALUE, E_VALUE_MAX, name);
		for (j = 0; j < ng; j++)
			if (g[j].reaches && strcmp(g[j].name, name[0] == '^' ?
			    name + 1 : name) == 0)	/* ^: byte-swapped */
				return true;
	}
	return false;
}

/* Marks the groups that can name a type, directly or through calls. */
static void
mark(struct group *g, size_t ng, const char *const *types, size_t ntypes)
{
	bool changed = true;
	size_t i, k;

	for (i = 0; i < ng; i++)
		for (k = 0; k < g[i].n && !g[i].names; k++)
			g[i].names = entry_names(g[i].e + k * MGC_ENTRY,
			    types, ntypes);
	for (i = 0; i < ng; i++)
		g[i].reaches = g[i].names;
	/* Named rules call named rules: until no call reaches further. */
	while (changed) {
		changed = false;
		for (i = 0; i < ng; i++)
			if (!g[i].reaches && g[i].name[0] != '\0' &&
			    calls_reaching(&g[i], g, ng))
				changed = g[i].reaches = true;
	}
	for (i = 0; i < ng; i++)
		if (!g[i].reaches && g[i].set == 0)
			g[i].reaches = calls_reaching(&g[i], g, ng);
}

/* Writes file f's kept groups after a copy of its header into sv. */
static int
write_file(struct magicsieve *sv, const struct mgc *m, size_t f,
    const struct group *g, size_t ng)
{
	uint32_t n[MGC_SETS] = { 0, 0 };
	uint8_t *out, *w;
	size_t i;

	if ((out = malloc(m[f].size)) == NULL) {
		log_error("%s: malloc", __func__);
		return -1;
	}
	w = out + MGC_ENTRY;
	for (i = 0; i < ng; i++) {
		if (g[i].file != f || (g[i].set == 0 && !g[i].reaches))
			continue;
		memcpy(w, g[i].e, g[i].n * MGC_ENTRY);
		w += g[i].n * MGC_ENTRY;
		n[g[i].set] += (uint32_t)g[i].n;
		if (g[i].set == 0)
			sv->kept++;
	}
	memcpy(out, m[f].map, MGC_ENTRY);
	memcpy(out + 2 * sizeof(uint32_t), n, sizeof(n));
	sv->len[sv->nbuf] = (size_t)(w - out);
	/* A third of the size: give the rest back. */
	if ((w = realloc(out, sv->len[sv->nbuf])) != NULL)
		out = w;
	sv->buf[sv->nbuf++] = out;
	return 0;
}

int
magicsieve_build(struct magicsieve *sv, const char *const *types,
    size_t ntypes)
{
	struct mgc m[MAGICSIEVE_FILES] = { 0 };
	struct group *g = NULL;
	size_t entries = 0, ng, i;
	long nfiles;
	int rc = -1;

	memset(sv, 0, sizeof(*sv));
	if ((nfiles = map_path(m)) <= 0)
		return -1;
	for (i = 0; i < (size_t)nfiles; i++)
		entries += m[i].n[0] + (size_t)m[i].n[1];
	if ((g = calloc(entries > 0 ? entries : 1, sizeof(*g))) == NULL) {
		log_error("%s: calloc", __func__);
		goto out;
	}
	ng = split(m, (size_t)nfiles, g);
	mark(g, ng, types, ntypes);
	for (i = 0; i < ng; i++)
		sv->total += g[i].set == 0;
	for (i = 0; i < (size_t)nfiles; i++)
		if (write_file(sv, m, i, g, ng) == -1)
			goto out;
	rc = 0;
out:
	free(g);
	for (i = 0; i < (size_t)nfiles; i++)
		munmap(m[i].map, m[i].size);
	if (rc == -1)
		magicsieve_free(sv);
	return rc;
}

void
magicsieve_free(struct magicsieve *sv)
{
	size_t i;

	for (i = 0; i < sv->nbuf; i++)
		free(sv->buf[i]);
	memset(sv, 0, sizeof(*sv));
}
