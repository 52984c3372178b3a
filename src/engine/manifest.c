/* SPDX-License-Identifier: MIT */
/* A transfer's manifest: parsed, its paths made safe, kept and reloaded. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "manifest.h"
#include "namekey.h"
#include "policy.h"
#include "proto.h"
#include "text.h"

static void own_digests_free(struct own_digests *);

void
manifest_free(struct manifest *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->f[i].client);
		free(m->f[i].path);
		free(m->f[i].reason);
		own_digests_free(atomic_load(&m->f[i].owns));
	}
	free(m->f);
	free(m->spans);
	free(m);
}

size_t
manifest_refused(const struct manifest *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++)
		n += m->f[i].status != PF_OK;
	return n;
}

/* Marks f refused with rc and a reason; the stored path is dropped. */
static void
refuse(struct manifest_file *f, enum pf_status rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
refuse(struct manifest_file *f, enum pf_status rc, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	if (f->status != PF_OK)
		return;
	va_start(ap, fmt);
	/* Cut short, it must not end inside a character: JSON carries it. */
	if (vsnprintf(buf, sizeof(buf), fmt, ap) >= (int)sizeof(buf))
		buf[pf_text_utf8_whole(buf, strlen(buf))] = '\0';
	va_end(ap);
	f->status = rc;
	free(f->reason);
	f->reason = strdup(buf);
	free(f->path);
	f->path = NULL;
}

/*
 * How much of a component of len bytes a reason shows: 64 bytes at
 * most, never part of a character (the reason must stay UTF-8, or the
 * JSON of every answer that carries it cannot be built).
 */
static int
shown_len(const char *s, size_t len)
{
	size_t n = len > 64 ? 64 : len;

	while (n > 0 && n < len && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return (int)n;
}

/*
 * Sanitises f->client one component at a time into f->path, as a single
 * name is (policy_sanitize_name); a path that cannot be kept as given
 * is refused, never rewritten into another place.
 */
static enum pf_status
safe_path(const struct policy *p, struct manifest_file *f)
{
	char comp[PROTO_MAX_NAME + 1], why[POLICY_WHY_MAX];
	char out[PROTO_MAX_PATH + 1];
	const char *s = f->client, *slash;
	size_t len, used = 0, depth = 0;

	if (s[0] == '/' || strlen(s) > PROTO_MAX_PATH) {
		refuse(f, PF_EBADNAME, "%s path", s[0] == '/' ? "absolute" :
		    "over-long");
		return PF_OK;
	}
	for (;;) {
		slash = strchr(s, '/');
		len = slash ? (size_t)(slash - s) : strlen(s);
		if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 &&
		    s[0] == '.' && s[1] == '.') || memchr(s, '\\', len)) {
			refuse(f, PF_EBADNAME, "path component '%.*s' is not "
			    "allowed", shown_len(s, len), s);
			break;
		}
		if (++depth > PROTO_MAX_DEPTH) {
			refuse(f, PF_EBADNAME, "path cannot be stored (at "
			    "most %u levels)", PROTO_MAX_DEPTH);
			break;
		}
		if (policy_sanitize_name(s, len, comp) != PF_OK) {
			refuse(f, PF_EBADNAME, "%s name cannot be stored",
			    slash == NULL ? "file" : "a directory");
			break;
		}
		if (used + strlen(comp) + 1 > PROTO_MAX_PATH) {
			refuse(f, PF_EBADNAME, "path cannot be stored (at "
			    "most %u bytes once sanitised)", PROTO_MAX_PATH);
			break;
		}
		/* The name rules (extension, device names) judge files. */
		if (slash == NULL && !f->dir && policy_check_names(p, s, len,
		    comp, why, sizeof(why)) != PF_OK) {
			refuse(f, PF_EFORBIDDEN, "%s", why);
			break;
		}
		used += (size_t)sprintf(out + used, "%s%s", used ? "/" : "",
		    comp);
		/* Its own length: 1 KiB each was 100 MB for 100,000. */
		if (slash == NULL)
			return (f->path = strdup(out)) == NULL ? PF_ENOMEM :
			    PF_OK;
		s = slash + 1;
	}
	return PF_OK;
}

/*
 * One entry of an OPEN's "files"; PF_EBADFRAME if malformed. *placed
 * tells whether it gave an explicit "offset" (a file only).
 */
static enum pf_status
parse_entry(const json_t *e, struct manifest_file *f, bool *placed)
{
	const char *path = json_string_value(json_object_get(e, "path"));
	json_t *dir = json_object_get(e, "dir");
	json_t *off = json_object_get(e, "offset");
	json_int_t size = 0, mode = 0, mtime = 0;

	if (path == NULL || strlen(path) != json_string_length(
	    json_object_get(e, "path")))
		return PF_EBADFRAME;
	f->dir = json_is_true(dir);
	if (!f->dir && json_unpack((json_t *)e, "{s:I,s:I,s:I}", "size",
	    &size, "mode", &mode, "mtime", &mtime) == -1)
		return PF_EBADFRAME;
	if (size < 0 || mode < 0 || mode > 07777)
		return PF_EBADFRAME;
	*placed = !f->dir && off != NULL;
	if (*placed && (!json_is_integer(off) || json_integer_value(off) < 0))
		return PF_EBADFRAME;
	f->offset = *placed ? (uint64_t)json_integer_value(off) : 0;
	/* Bits worth keeping: never setuid, setgid or sticky. */
	f->mode = (uint32_t)mode & 0777;
	f->size = (uint64_t)size;
	f->mtime = (int64_t)mtime;
	if ((f->client = strdup(path)) == NULL)
		return PF_ENOMEM;
	return PF_OK;
}

/* Lists m's files with bytes in m->spans, by offset. PF_ENOMEM. */
static enum pf_status
index_spans(struct manifest *m)
{
	free(m->spans);
	m->nspans = 0;
	if ((m->spans = calloc(m->n + 1, sizeof(*m->spans))) == NULL)
		return PF_ENOMEM;
	for (size_t i = 0; i < m->n; i++)
		if (!m->f[i].dir && m->f[i].size > 0)
			m->spans[m->nspans++] = (struct proto_span){
			    m->f[i].offset, m->f[i].size, (uint32_t)i };
	proto_spans_sort(m->spans, m->nspans);
	return PF_OK;
}

/*
 * Indexes m's files by offset; with explicit offsets (placed) also
 * checks them: every file within size bytes, no two files' bytes
 * overlapping (the bytes between them are dead: never stored), and sets
 * m->total to size. PF_EBADFRAME if not so, PF_ENOMEM.
 */
static enum pf_status
check_layout(struct manifest *m, bool placed, uint64_t size)
{
	const struct proto_span *v;
	enum pf_status rc;

	for (size_t i = 0; placed && i < m->n; i++) {
		const struct manifest_file *f = &m->f[i];

		if (!f->dir && (f->offset > size || f->size > size - f->offset))
			return PF_EBADFRAME;
	}
	if ((rc = index_spans(m)) != PF_OK)
		return rc;
	v = m->spans;
	for (size_t i = 1; i < m->nspans; i++)
		if (v[i - 1].offset + v[i - 1].size > v[i].offset)
			return PF_EBADFRAME;
	if (placed)
		m->total = size;
	return PF_OK;
}

/*
 * A file's own chunks' digests as chunks hashed in pieces bring them,
 * in any order, from any thread.
 */
struct own_digests {
	_Atomic uint32_t	 done;	/* digests in */
	uint32_t		 count;
	_Atomic bool		*set;	/* per own chunk */
	uint8_t			*d;	/* count digests */
};

static struct own_digests *
own_digests_new(uint32_t count)
{
	struct own_digests *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return NULL;
	o->count = count;
	o->set = calloc(count, sizeof(*o->set));
	o->d = malloc((size_t)count * PF_SHA256_LEN);
	if (o->set == NULL || o->d == NULL) {
		own_digests_free(o);
		return NULL;
	}
	return o;
}

static void
own_digests_free(struct own_digests *o)
{
	if (o == NULL)
		return;
	free(o->set);
	free(o->d);
	free(o);
}

/* Own chunk j's digest d of file f, cut in count chunks. */
static void
note_own(struct manifest_file *f, uint32_t count, uint32_t j,
    const uint8_t *d)
{
	struct own_digests *o = atomic_load(&f->owns), *mine;

	if (o == NULL) {
		/* The first of the file's chunks in: one array wins. */
		if ((mine = own_digests_new(count)) == NULL)
			return;
		if (atomic_compare_exchange_strong(&f->owns, &o, mine))
			o = mine;
		else
			own_digests_free(mine);
	}
	/*
	 * A chunk received again (its first copy never made durable) may
	 * bring other bytes: the last digest counts. No judge reads it
	 * before the chunk is durable.
	 */
	if (j >= o->count)
		return;
	memcpy(o->d + (size_t)j * PF_SHA256_LEN, d, PF_SHA256_LEN);
	if (!atomic_exchange(&o->set[j], true))
		atomic_fetch_add(&o->done, 1);
}

void
manifest_note_wholes(struct manifest *m, const struct chunkhash *h,
    uint32_t chunk_size)
{
	size_t n;
	const struct chunkhash_whole *w = chunkhash_wholes(h, &n);

	for (size_t i = 0; i < n; i++) {
		struct manifest_file *f = &m->f[w[i].file];
		uint32_t count;

		/* Its receipt streams only if all its own chunks do. */
		if (!proto_own_chunks_whole(f->offset, f->size, chunk_size) ||
		    proto_chunk_count(f->size, chunk_size, &count) != PF_OK)
			continue;
		if (count > 1) {
			note_own(f, count, w[i].index, w[i].digest);
			continue;
		}
		/* One chunk brought it, the last time it was received. */
		memcpy(f->own, w[i].digest, sizeof(f->own));
		atomic_store(&f->streamed, true);
	}
}

const uint8_t *
manifest_streamed(const struct manifest_file *f, uint32_t chunk_size)
{
	const struct own_digests *o = atomic_load(&f->owns);

	if (f->size <= chunk_size)
		return atomic_load(&f->streamed) ? f->own : NULL;
	return o != NULL && atomic_load(&o->done) == o->count ? o->d : NULL;
}

/* Entries and their case-folded stored paths, for sorting. */
struct key {
	char	*k;
	size_t	 i;
};

static int
key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	return c ? c : (x->i > y->i) - (x->i < y->i);
}

/* The first of keys not below k. */
static size_t
key_lower(const struct key *keys, size_t n, const char *k)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(keys[mid].k, k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The entry the stored tree has under key k: the first of those with k
 * still stored (keys sort by key, then by index), or NULL.
 */
static struct manifest_file *
kept_under(struct manifest *m, const struct key *keys, size_t n,
    const char *k)
{
	for (size_t i = key_lower(keys, n, k); i < n &&
	    strcmp(keys[i].k, k) == 0; i++)
		if (m->f[keys[i].i].status == PF_OK)
			return &m->f[keys[i].i];
	return NULL;
}

/*
 * Where no entry names directory k ("a/" in a hand-made list): the first
 * entry still stored beneath it, whose path gives that directory's
 * stored name; NULL if none. k has room for one more byte.
 */
static struct manifest_file *
first_beneath(struct manifest *m, const struct key *keys, size_t n,
    char *k)
{
	size_t len = strlen(k);
	struct manifest_file *f = NULL;

	k[len] = '/';
	k[len + 1] = '\0';
	for (size_t i = key_lower(keys, n, k); i < n &&
	    strncmp(keys[i].k, k, len + 1) == 0; i++)
		if (m->f[keys[i].i].status == PF_OK) {
			f = &m->f[keys[i].i];
			break;
		}
	k[len] = '\0';
	return f;
}

/* The length of path's first depth components; 0 if it has fewer. */
static size_t
dirs_len(const char *path, size_t depth)
{
	const char *p = path, *slash = NULL;

	while (depth-- > 0) {
		if ((slash = strchr(p, '/')) == NULL)
			return 0;
		p = slash + 1;
	}
	return slash != NULL ? (size_t)(slash - path) : 0;
}

/* True if path's first depth components are the len bytes of dir. */
static bool
in_dir(const char *path, size_t depth, const char *dir, size_t len)
{
	return len > 0 && dirs_len(path, depth) == len &&
	    memcmp(path, dir, len) == 0;
}

/*
 * Refuses entry keys[i] if a directory above it is a file in the tree,
 * or is stored under another name that folds the same ("A" for its
 * "a", which a case-insensitive filesystem could not keep apart).
 */
static void
refuse_below(struct manifest *m, const struct key *keys, size_t n, size_t i)
{
	struct manifest_file *f = &m->f[keys[i].i], *up;
	const char *k = keys[i].k, *slash;
	char prefix[PROTO_MAX_PATH * 4 + 2];
	size_t depth = 0;

	for (slash = strchr(k, '/'); slash != NULL && f->status == PF_OK;
	    slash = strchr(slash + 1, '/')) {
		/* Folding may lengthen a path: a prefix too long is no key. */
		if ((size_t)(slash - k) >= sizeof(prefix) - 1)
			break;
		memcpy(prefix, k, (size_t)(slash - k));
		prefix[slash - k] = '\0';
		depth++;
		if ((up = kept_under(m, keys, n, prefix)) != NULL && !up->dir)
			refuse(f, PF_EBADNAME, "'%s' is a file", up->client);
		else if (up != NULL && !in_dir(f->path, depth, up->path,
		    strlen(up->path)))
			refuse(f, PF_EBADNAME, "its directory has the same "
			    "stored name as '%s'", up->client);
		else if (up == NULL && (up = first_beneath(m, keys, n,
		    prefix)) != NULL && !in_dir(f->path, depth, up->path,
		    dirs_len(up->path, depth)))
			refuse(f, PF_EBADNAME, "its directory has the same "
			    "stored name as that of '%s'", up->client);
	}
}

/*
 * Refuses the later of two entries whose stored paths fold to the same
 * key (case, compatibility forms), unless both are the same directory;
 * then what lies below a file or below such a refused directory.
 */
static enum pf_status
refuse_clashes(const struct policy *p, struct manifest *m)
{
	const struct namekey *nk = policy_namekey(p);
	struct key *keys = calloc(m->n + 1, sizeof(*keys));
	size_t n = 0;
	enum pf_status rc = PF_ENOMEM;

	if (keys == NULL)
		goto out;
	for (size_t i = 0; i < m->n; i++) {
		struct manifest_file *f = &m->f[i];

		if (f->path == NULL)
			continue;
		rc = namekey_fold(nk, f->path, strlen(f->path), false,
		    &keys[n].k);
		if (rc == PF_ENOMEM)
			goto out;
		if (rc != PF_OK) {
			refuse(f, PF_EBADNAME, "path cannot be compared");
			continue;
		}
		keys[n++].i = i;
	}
	qsort(keys, n, sizeof(*keys), key_cmp);
	/* The first of a run of equal keys is never refused here. */
	for (size_t i = 1, first = 0; i < n; i++) {
		struct manifest_file *a, *b = &m->f[keys[i].i];

		if (strcmp(keys[first].k, keys[i].k) != 0) {
			first = i;
			continue;
		}
		a = &m->f[keys[first].i];
		if (!(a->dir && b->dir && strcmp(a->path, b->path) == 0))
			refuse(b, PF_EBADNAME, "same stored name as '%s'",
			    a->client);
	}
	for (size_t i = 0; i < n; i++)
		refuse_below(m, keys, n, i);
	rc = PF_OK;
out:
	for (size_t i = 0; keys != NULL && i < m->n; i++)
		free(keys[i].k);
	free(keys);
	return rc;
}

/* A manifest with room for n entries, all zero (m->n counts those read);
 * NULL without memory. */
static struct manifest *
manifest_new(size_t n)
{
	struct manifest *m = calloc(1, sizeof(*m));

	if (m != NULL && (m->f = calloc(n, sizeof(*m->f))) == NULL) {
		free(m);
		m = NULL;
	}
	return m;
}

/* Places f after the files before it; false if the sizes overflow. */
static bool
place(struct manifest *m, struct manifest_file *f)
{
	if (m->total + f->size < m->total)
		return false;
	f->offset = m->total;
	m->total += f->size;
	return true;
}

/* json_dump_callback's sink: each piece of the text into the hash. */
static int
hash_text(const char *p, size_t n, void *h)
{
	return pf_sha256_update(h, p, n) == PF_OK ? 0 : -1;
}

/*
 * True if entry e holds only what parse_entry read (path and dir; or
 * path, size, mode, mtime and perhaps offset), parse_entry having
 * checked their types: then canon_entry writes its text.
 */
static bool
canon_form(const json_t *e, const struct manifest_file *f)
{
	if (f->dir)
		return json_object_size(e) == 2 &&
		    json_is_true(json_object_get(e, "dir"));
	return json_object_size(e) == 4u + (json_object_get(e, "offset") !=
	    NULL);
}

/* Appends integer member key of e, in decimal as jansson writes it. */
static void
add_member(struct pf_buf *b, const json_t *e, const char *key)
{
	pf_buf_add_int(b, (int64_t)json_integer_value(json_object_get(e,
	    key)));
}

/* Appends entry e (of canon_form) as jansson writes it: sorted keys. */
static void
canon_entry(struct pf_buf *b, const json_t *e, const struct manifest_file *f)
{
	if (f->dir) {
		PF_BUF_ADD_LIT(b, "{\"dir\":true,\"path\":");
		pf_buf_add_json_string(b, f->client);
		PF_BUF_ADD_LIT(b, "}");
		return;
	}
	PF_BUF_ADD_LIT(b, "{\"mode\":");
	add_member(b, e, "mode");
	PF_BUF_ADD_KEY(b, "mtime");
	add_member(b, e, "mtime");
	if (json_object_get(e, "offset") != NULL) {
		PF_BUF_ADD_KEY(b, "offset");
		add_member(b, e, "offset");
	}
	PF_BUF_ADD_KEY(b, "path");
	pf_buf_add_json_string(b, f->client);
	PF_BUF_ADD_KEY(b, "size");
	add_member(b, e, "size");
	PF_BUF_ADD_LIT(b, "}");
}

/* Hashes b's text and empties it; false if b or the hash failed. */
static bool
hash_buf(struct pf_sha256 *h, struct pf_buf *b)
{
	bool ok = !b->failed && (b->len == 0 || pf_sha256_update(h, b->p,
	    b->len) == PF_OK);

	pf_buf_consume(b, b->len);
	return ok;
}

/* The list's text is hashed this many bytes at a time. */
#define DIGEST_TEXT_MAX	(64 * 1024)

/*
 * SHA-256 of files' compact text, keys sorted, as jansson writes it: each
 * entry of the usual form written here (jansson's dump took a fifth of
 * an OPEN), any other by jansson, as it would inside the array. The text
 * of 100,000 entries is never held whole (about 10 MB).
 */
static enum pf_status
list_digest(const json_t *files, const struct manifest *m,
    uint8_t md[PF_SHA256_LEN])
{
	struct pf_sha256 *h;
	struct pf_buf b;
	enum pf_status rc = PF_ENOMEM;
	bool ok;

	if ((h = pf_sha256_new()) == NULL)
		return rc;
	pf_buf_init(&b, SIZE_MAX / 2);
	if ((rc = pf_sha256_init(h)) != PF_OK)
		goto out;
	rc = PF_ENOMEM;
	ok = PF_BUF_ADD_LIT(&b, "[");
	for (size_t i = 0; ok && i < m->n; i++) {
		const json_t *e = json_array_get(files, i);

		if (i > 0)
			PF_BUF_ADD_LIT(&b, ",");
		if (canon_form(e, &m->f[i])) {
			canon_entry(&b, e, &m->f[i]);
			ok = b.len < DIGEST_TEXT_MAX || hash_buf(h, &b);
		} else {
			/* Not of the usual form: jansson's own text of it. */
			ok = hash_buf(h, &b) && json_dump_callback(e,
			    hash_text, h, JSON_COMPACT | JSON_SORT_KEYS) == 0;
		}
	}
	if (ok && PF_BUF_ADD_LIT(&b, "]") && hash_buf(h, &b))
		rc = pf_sha256_final(h, md);
out:
	pf_buf_free(&b);
	pf_sha256_free(h);
	return rc;
}

enum pf_status
manifest_parse(const struct policy *p, const json_t *files, uint64_t size,
    struct manifest **out, char *why, size_t cap)
{
	struct manifest *m;
	enum pf_status rc = PF_ENOMEM;
	size_t n = json_array_size(files), placed = 0, nfiles = 0;
	uint8_t md[PF_SHA256_LEN];
	bool at;

	*out = NULL;
	if (!json_is_array(files) || n == 0 || n > PROTO_MAX_FILES) {
		snprintf(why, cap, "files must list 1 to %u entries",
		    PROTO_MAX_FILES);
		return PF_EBADFRAME;
	}
	if ((m = manifest_new(n)) == NULL)
		goto out;
	for (m->n = 0; m->n < n; m->n++) {
		struct manifest_file *f = &m->f[m->n];

		if ((rc = parse_entry(json_array_get(files, m->n), f, &at)) !=
		    PF_OK) {
			snprintf(why, cap, "files[%zu] needs path, size, mode "
			    "and mtime (or dir)", m->n);
			goto out;
		}
		placed += at;
		nfiles += !f->dir;
		if (!at && !place(m, f)) {
			rc = PF_EBADFRAME;
			snprintf(why, cap, "sizes overflow");
			goto out;
		}
		if ((rc = safe_path(p, f)) != PF_OK)
			goto out;
	}
	/* Offsets: all files give one, or none does. */
	if ((placed > 0 && placed != nfiles) || (rc = check_layout(m,
	    placed > 0, size)) != PF_OK) {
		rc = rc == PF_ENOMEM ? rc : PF_EBADFRAME;
		snprintf(why, cap, "offsets must be given for every file, each "
		    "within size, none overlapping");
		goto out;
	}
	if ((rc = refuse_clashes(p, m)) != PF_OK)
		goto out;
	/* What a resume must send again, byte for byte, to match. */
	if ((rc = list_digest(files, m, md)) != PF_OK)
		goto out;
	pf_hex_encode(md, sizeof(md), m->digest);
	*out = m;
	m = NULL;
out:
	if (rc == PF_ENOMEM)
		snprintf(why, cap, "out of memory");
	if (m != NULL && m->f != NULL)
		m->n = n;	/* unfilled entries are zero */
	manifest_free(m);
	return rc;
}

/* Appends s as a JSON string, or null. */
static void
add_string(struct pf_buf *b, const char *s)
{
	if (s != NULL)
		pf_buf_add_json_string(b, s);
	else
		PF_BUF_ADD_LIT(b, "null");
}

/* Opens entry f whole: all it holds, its offset too if staged. */
static void
dump_whole(const struct manifest_file *f, bool staged, struct pf_buf *b)
{
	PF_BUF_ADD_LIT(b, "{\"client\":");
	pf_buf_add_json_string(b, f->client);
	PF_BUF_ADD_KEY(b, "path");
	add_string(b, f->path);
	PF_BUF_ADD_KEY(b, "dir");
	if (f->dir)
		PF_BUF_ADD_LIT(b, "true");
	else
		PF_BUF_ADD_LIT(b, "false");
	PF_BUF_ADD_KEY(b, "size");
	pf_buf_add_int(b, (int64_t)f->size);
	PF_BUF_ADD_KEY(b, "mode");
	pf_buf_add_int(b, f->mode);
	PF_BUF_ADD_KEY(b, "mtime");
	pf_buf_add_int(b, f->mtime);
	PF_BUF_ADD_KEY(b, "status");
	pf_buf_add_int(b, (int)f->status);
	PF_BUF_ADD_KEY(b, "reason");
	add_string(b, f->reason);
	/* Where its bytes lie: staging's business, not a list's. */
	if (staged && !f->dir) {
		PF_BUF_ADD_KEY(b, "offset");
		pf_buf_add_int(b, (int64_t)f->offset);
	}
}

/* Opens entry f short: what a client that sent it lacks. */
static void
dump_short(const struct manifest_file *f, struct pf_buf *b)
{
	PF_BUF_ADD_LIT(b, "{\"path\":");
	add_string(b, f->path);
	if (f->reason != NULL) {
		PF_BUF_ADD_KEY(b, "reason");
		add_string(b, f->reason);
	}
}

/* Written by hand: building, dumping and freeing jansson trees of the
   manifest (at OPEN and twice at COMMIT) took 14 % of the server's CPU in
   a transfer of 10,000 small files; and printf, half of what was left. */
bool
manifest_dump(const struct manifest *m, enum manifest_form form,
    struct pf_buf *b)
{
	PF_BUF_ADD_LIT(b, "[");
	for (size_t i = 0; i < m->n; i++) {
		const struct manifest_file *f = &m->f[i];

		if (i > 0)
			PF_BUF_ADD_LIT(b, ",");
		if (form == MANIFEST_SHORT)
			dump_short(f, b);
		else
			dump_whole(f, form == MANIFEST_STAGED, b);
		/* A list's: how it ended. */
		if (form != MANIFEST_STAGED) {
			PF_BUF_ADD_KEY(b, "state");
			add_string(b, f->status == PF_OK ? "stored" :
			    pf_status_name(f->status));
		}
		if (form != MANIFEST_STAGED && f->digest[0]) {
			PF_BUF_ADD_KEY(b, "digest");
			add_string(b, f->digest);
		}
		PF_BUF_ADD_LIT(b, "}");
	}
	return PF_BUF_ADD_LIT(b, "]");
}

/* One entry as manifest_dump wrote it, its path checked again;
 * *placed if it has an offset (older areas have none). */
static enum pf_status
load_entry(const json_t *e, struct manifest_file *f, bool *placed)
{
	json_t *off = json_object_get(e, "offset");

	const char *client, *path, *reason;
	json_int_t size, mode, mtime;
	int dir, status;
	char comp[PROTO_MAX_NAME + 1];

	/* path and reason may be null: read apart from the rest. */
	path = json_string_value(json_object_get(e, "path"));
	reason = json_string_value(json_object_get(e, "reason"));
	if (json_unpack((json_t *)e, "{s:s,s:b,s:I,s:I,s:I,s:i}", "client",
	    &client, "dir", &dir, "size", &size, "mode", &mode, "mtime",
	    &mtime, "status", &status) == -1 || size < 0 || mode < 0 ||
	    mode > 0777 ||
	    (status != PF_OK && !pf_status_is_wire(status)) ||
	    (path == NULL) != (status != PF_OK))
		return PF_EBADFRAME;
	for (const char *s = path; s != NULL; ) {
		const char *slash = strchr(s, '/');
		size_t len = slash ? (size_t)(slash - s) : strlen(s);

		if (len > PROTO_MAX_NAME || policy_sanitize_name(s, len,
		    comp) != PF_OK || strlen(comp) != len ||
		    memcmp(comp, s, len) != 0)
			return PF_EBADFRAME;
		s = slash ? slash + 1 : NULL;
	}
	*placed = off != NULL && !dir;
	if (*placed && (!json_is_integer(off) || json_integer_value(off) < 0))
		return PF_EBADFRAME;
	f->offset = *placed ? (uint64_t)json_integer_value(off) : 0;
	f->dir = dir;
	f->size = (uint64_t)size;
	f->mode = (uint32_t)mode;
	f->mtime = (int64_t)mtime;
	f->status = (enum pf_status)status;
	if ((f->client = strdup(client)) == NULL || (path != NULL &&
	    (f->path = strdup(path)) == NULL) || (reason != NULL &&
	    (f->reason = strdup(reason)) == NULL))
		return PF_ENOMEM;
	return PF_OK;
}

enum pf_status
manifest_load(const json_t *j, uint64_t size, struct manifest **out)
{
	struct manifest *m;
	size_t n = json_array_size(j), placed = 0, nfiles = 0;
	enum pf_status rc = PF_ENOMEM;
	bool at;

	*out = NULL;
	if (!json_is_array(j) || n == 0 || n > PROTO_MAX_FILES)
		return PF_EBADFRAME;
	if ((m = manifest_new(n)) == NULL)
		goto out;
	for (m->n = 0; m->n < n; m->n++) {
		struct manifest_file *f = &m->f[m->n];

		if ((rc = load_entry(json_array_get(j, m->n), f, &at)) !=
		    PF_OK)
			goto out;
		placed += at;
		nfiles += !f->dir;
		if (!at && !place(m, f)) {
			rc = PF_EBADFRAME;
			goto out;
		}
	}
	/* Offsets on every file (written since amends came) or on none. */
	if ((rc = check_layout(m, placed > 0, size)) != PF_OK)
		goto out;
	rc = PF_EBADFRAME;
	if (placed > 0 ? placed != nfiles : m->total != size)
		goto out;
	*out = m;
	m = NULL;
	rc = PF_OK;
out:
	if (m != NULL && m->f != NULL)
		m->n = n;	/* unfilled entries are zero */
	manifest_free(m);
	return rc;
}

static int
by_client(const void *a, const void *b)
{
	return strcmp((*(const struct manifest_file *const *)a)->client,
	    (*(const struct manifest_file *const *)b)->client);
}

static int
run_cmp(const void *a, const void *b)
{
	const struct manifest_run *x = a, *y = b;

	return (x->off > y->off) - (x->off < y->off);
}

/* Merges sorted runs that touch; returns how many are left. */
static size_t
merge_runs(struct manifest_run *r, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (k > 0 && r[k - 1].end == r[i].off)
			r[k - 1].end = r[i].end;
		else
			r[k++] = r[i];
	}
	return k;
}

enum pf_status
manifest_same_runs(const struct manifest *old, const struct manifest *nw,
    struct manifest_run **out, size_t *nout)
{
	const struct manifest_file **v = calloc(old->n + 1, sizeof(*v));
	struct manifest_run *r = calloc(nw->n + 1, sizeof(*r));
	size_t nv = 0, n = 0;

	*out = NULL;
	*nout = 0;
	if (v == NULL || r == NULL) {
		free(v);
		free(r);
		return PF_ENOMEM;
	}
	for (size_t i = 0; i < old->n; i++)
		if (!old->f[i].dir)
			v[nv++] = &old->f[i];
	qsort(v, nv, sizeof(*v), by_client);
	for (size_t i = 0; i < nw->n; i++) {
		const struct manifest_file *f = &nw->f[i], *key = f, **hit;

		if (f->dir || f->size == 0)
			continue;
		hit = bsearch(&key, v, nv, sizeof(*v), by_client);
		if (hit != NULL && (*hit)->offset == f->offset &&
		    (*hit)->size == f->size && (*hit)->mtime == f->mtime) {
			r[n].off = f->offset;
			r[n++].end = f->offset + f->size;
		}
	}
	free(v);
	qsort(r, n, sizeof(*r), run_cmp);
	*nout = merge_runs(r, n);
	*out = r;
	return PF_OK;
}

bool
manifest_runs_cover(const struct manifest_run *r, size_t n, uint64_t off,
    uint64_t len)
{
	size_t lo = 0, hi = n;

	/* The last run that starts at or before off. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r[mid].off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && off + len <= r[lo - 1].end;
}
