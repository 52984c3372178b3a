/* SPDX-License-Identifier: MIT */
/* Turns client file names into safe base names and refuses executables. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftype.h"
#include "log.h"
#include "namekey.h"
#include "policy.h"
#include "text.h"

#define EXT_MAX		32	/* bytes in one refused extension */
#define KEEP_EXT_MAX	16	/* bytes after the dot kept whole by a cut */

/*
 * What starts executing by itself when clicked or chmod'ed, found by its
 * first bytes before libmagic is asked: cheaper, and not fooled by what
 * follows. A non-NULL ext is the extension whose --allow-ext lets it in;
 * native code never is.
 */
static const struct {
	const char	*magic;
	size_t		 len;
	const char	*label;
	const char	*ext;
} magics[] = {
	{ "\x7f" "ELF", 4, "ELF executable", NULL },
	{ "MZ", 2, "DOS/PE executable", NULL },
	{ "\xfe\xed\xfa\xce", 4, "Mach-O executable", NULL },
	{ "\xfe\xed\xfa\xcf", 4, "Mach-O executable", NULL },
	{ "\xce\xfa\xed\xfe", 4, "Mach-O executable", NULL },
	{ "\xcf\xfa\xed\xfe", 4, "Mach-O executable", NULL },
	{ "\xca\xfe\xba\xbe", 4, "Mach-O universal executable", NULL },
	{ "\xbe\xba\xfe\xca", 4, "Mach-O universal executable", NULL },
	{ "\0asm", 4, "WebAssembly module", "wasm" },
};

/*
 * The MIME types libmagic gives executables and scripts, each with the
 * extension whose --allow-ext lets it in (NULL: nothing does).
 */
static const struct {
	const char	*mime;
	const char	*ext;
} mimes[] = {
	{ "application/x-executable", NULL },
	{ "application/x-pie-executable", NULL },
	{ "application/x-sharedlib", NULL },
	{ "application/x-dosexec", NULL },
	{ "application/vnd.microsoft.portable-executable", NULL },
	{ "application/x-mach-binary", NULL },
	{ "application/wasm", "wasm" },
	{ "application/java-archive", "jar" },
	{ "application/x-java-applet", "class" },
	{ "application/vnd.debian.binary-package", "deb" },
	{ "application/x-rpm", "rpm" },
	{ "application/vnd.android.package-archive", "apk" },
	{ "application/x-msi", "msi" },
	{ "application/x-ms-shortcut", "lnk" },
	{ "text/x-ms-regedit", "reg" },
	{ "text/x-msdos-batch", "bat" },
	{ "text/x-shellscript", "sh" },
	{ "text/x-python", "py" },
	{ "text/x-script.python", "py" },
	{ "application/x-bytecode.python", "pyc" },
	{ "text/x-perl", "pl" },
	{ "text/x-php", "php" },
	{ "text/x-ruby", "rb" },
	{ "text/x-lua", "lua" },
	{ "text/x-tcl", "tcl" },
	{ "text/x-awk", "awk" },
	{ "application/javascript", "js" },
	{ "text/javascript", "js" },
};

#define NMAGICS	(sizeof(magics) / sizeof(magics[0]))
#define NMIMES	(sizeof(mimes) / sizeof(mimes[0]))

/* Windows device names: such a file name opens the device there. */
static const char *const reserved[] = {
	"con", "prn", "aux", "nul", "conin$", "conout$",
	"com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8", "com9",
	"lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
};

/* One item of an extension list: as given, and folded for comparison. */
struct ext {
	char	 text[EXT_MAX + 1];
	char	*key;
};

/*
 * Immutable once built (ft serializes itself), so any number of threads
 * may share one.
 */
struct policy {
	struct namekey	*nk;
	struct ftype	*ft;
	struct ext	*forbid, *allow;
	size_t		 nforbid, nallow;
	bool		 mime_allowed[NMIMES];
	const char	*mime_types[NMIMES];	/* mimes[].mime, for ft */
};

/*
 * True for the characters a name must not show as they are: controls,
 * which can rewrite a terminal or split a log line, and the invisible and
 * bidirectional format characters, which can make "evil<RLO>txt.exe" read
 * as "evilexe.txt".
 */
static bool
is_unsafe(uint32_t c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x061c ||
	    (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) ||
	    (c >= 0x2066 && c <= 0x2069) || c == 0xfeff;
}

/*
 * Copies in[from..to), valid UTF-8, to out with each unsafe character
 * replaced by '_', stopping before the first character that would pass
 * cap bytes, and returns the bytes written. With out NULL nothing is
 * written and the length of the whole copy is returned, cap aside.
 */
static size_t
map_range(const uint8_t *in, size_t from, size_t to, char *out, size_t cap)
{
	size_t i, len, w, n = 0;
	uint32_t c;
	bool bad;

	for (i = from; i < to; i += len) {
		/*
		 * The caller validated the input, and range ends fall on
		 * ASCII bytes, so this cannot fail; if it did, one '_' per
		 * byte would still keep the result valid and finite.
		 */
		if ((len = pf_text_utf8_decode(in + i, to - i, &c)) == 0) {
			len = 1;
			c = 0;
		}
		bad = is_unsafe(c);
		w = bad ? 1 : len;
		if (out != NULL) {
			if (n + w > cap)
				break;
			if (bad)
				out[n] = '_';
			else
				memcpy(out + n, in + i, len);
		}
		n += w;
	}
	return n;
}

enum pf_status
policy_sanitize_name(const char *name, size_t len, char *out)
{
	const uint8_t *in = (const uint8_t *)name;
	enum pf_status rc = PF_EBADNAME;
	size_t i, n, s, t, dot, olen, extlen = 0;
	uint32_t c;

	out[0] = '\0';
	if (in == NULL || len == 0)
		goto out;

	/*
	 * The directories are thrown away, but a name that is not text as a
	 * whole is refused rather than half repaired: it comes from a buggy
	 * or hostile client.
	 */
	for (i = 0; i < len; i += n)
		if ((n = pf_text_utf8_decode(in + i, len - i, &c)) == 0 ||
		    c == 0)
			goto out;

	/*
	 * Both separators, since names come from Windows clients too. They,
	 * the spaces and the dots are ASCII, which never occurs inside a
	 * multibyte character, so scanning bytes for them is safe.
	 */
	for (s = len; s > 0 && in[s - 1] != '/' && in[s - 1] != '\\'; s--)
		;
	t = len;
	while (s < t && in[s] == ' ')
		s++;
	/*
	 * Windows drops trailing dots and spaces by itself, so "x.exe. " is
	 * x.exe there and must be seen so by the extension check; dropping
	 * them also turns "." and ".." into nothing.
	 */
	while (t > s && (in[t - 1] == ' ' || in[t - 1] == '.'))
		t--;
	if (s == t)
		goto out;

	/*
	 * A dot in first place starts no extension: it becomes '_' below.
	 * extlen counts the dot, and is measured after replacement, as the
	 * extension will be stored.
	 */
	for (dot = t - 1; dot > s && in[dot] != '.'; dot--)
		;
	if (dot > s)
		extlen = map_range(in, dot, t, NULL, 0);

	if (map_range(in, s, t, NULL, 0) <= PROTO_MAX_NAME)
		olen = map_range(in, s, t, out, PROTO_MAX_NAME);
	else if (dot > s && extlen <= KEEP_EXT_MAX + 1) {
		/* Cut the stem, so that "long...pdf" still opens as a PDF. */
		olen = map_range(in, s, dot, out, PROTO_MAX_NAME - extlen);
		olen += map_range(in, dot, t, out + olen, extlen);
	} else
		olen = map_range(in, s, t, out, PROTO_MAX_NAME);

	/* A hidden file is a surprise to whoever lists the directory. */
	if (out[0] == '.')
		out[0] = '_';
	/* A cut can leave dots or spaces of the middle at the end. */
	while (olen > 0 && (out[olen - 1] == ' ' || out[olen - 1] == '.'))
		olen--;
	out[olen] = '\0';

	/* Unreachable after the trimming above; kept as the last word. */
	if (olen == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0) {
		out[0] = '\0';
		goto out;
	}
	rc = PF_OK;
out:
	return rc;
}


/*
 * Writes s[0..len) (valid UTF-8) into out (cap bytes) as printable ASCII
 * between quotes: anything else (and '<') as <U+XXXX>, so that a message
 * shows which character it was ("a.<U+0455>h"), not a look-alike, and
 * carries no byte a terminal or a log reader could take for something
 * else, nor a backslash the log's own escaping would double.
 */
static void
quote(const char *s, size_t len, char *out, size_t cap)
{
	const uint8_t *in = (const uint8_t *)s;
	size_t i, n, w = 1;
	uint32_t c;
	char one[16];

	out[0] = '\'';
	for (i = 0; i < len; i += n) {
		if ((n = pf_text_utf8_decode(in + i, len - i, &c)) == 0) {
			n = 1;
			c = 0xfffd;
		}
		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '<')
			snprintf(one, sizeof(one), "%c", (char)c);
		else
			snprintf(one, sizeof(one), "<U+%04X>", (unsigned)c);
		/* Room for this, "...", the quote and the NUL. */
		if (w + strlen(one) + 5 > cap) {
			snprintf(out + w, cap - w, "...");
			w += 3;
			break;
		}
		memcpy(out + w, one, strlen(one));
		w += strlen(one);
	}
	snprintf(out + w, cap - w, "'");
}

/* The ASCII case is folded by hand: tolower() would follow the locale. */
static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 'a' - 'A') : c;
}

/*
 * Adds the item s[0..len) of an extension list to the list at *v (*n
 * items), or skips it if it is blank. Items with a dot inside ("tar.gz")
 * or a separator are refused rather than stored, since they could never
 * match the last extension of a name and would only look like protection.
 */
static enum pf_status
add_ext(struct policy *p, struct ext *v, size_t *n, const char *s,
    size_t len)
{
	enum pf_status rc = PF_EUSAGE;
	size_t i;

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0) {
		rc = PF_OK;
		goto out;
	}
	if (*s == '.') {
		s++;
		len--;
	}
	for (i = 0; i < len; i++)
		if (s[i] == '/' || s[i] == '\\' || s[i] == '.' ||
		    s[i] == ':' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			break;
	if (len == 0 || len > EXT_MAX || i < len ||
	    (rc = namekey_fold(p->nk, s, len, true, &v[*n].key)) != PF_OK) {
		log_error("%s: bad extension \"%.*s\"", __func__,
		    len > 64 ? 64 : (int)len, s);
		rc = PF_EUSAGE;
		goto out;
	}
	for (i = 0; i < len; i++)
		v[*n].text[i] = lower(s[i]);
	v[*n].text[len] = '\0';
	(*n)++;
	rc = PF_OK;
out:
	return rc;
}

/* Parses the comma-separated list exts into a new array at *v, *n long. */
static enum pf_status
parse_list(struct policy *p, const char *exts, struct ext **v, size_t *n)
{
	const char *s, *e;
	size_t count = 1;
	enum pf_status rc;

	for (s = exts; *s != '\0'; s++)
		if (*s == ',')
			count++;
	/* Each comma makes at most one item, so count bounds the array. */
	if ((*v = calloc(count, sizeof(**v))) == NULL) {
		log_error("%s: calloc", __func__);
		return PF_ENOMEM;
	}
	for (s = exts;; s = e + 1) {
		if ((e = strchr(s, ',')) == NULL)
			e = s + strlen(s);
		if ((rc = add_ext(p, *v, n, s, (size_t)(e - s))) != PF_OK)
			return rc;
		if (*e == '\0')
			break;
	}
	return PF_OK;
}

/* Finds the item of v whose key is key; NULL if none. */
static const struct ext *
find_ext(const struct ext *v, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].key, key) == 0)
			return &v[i];
	return NULL;
}

/* True if --allow-ext names ext (plain ASCII, lower case). */
static bool
allowed(const struct policy *p, const char *ext)
{
	char *key;
	bool yes;

	if (ext == NULL || namekey_fold(p->nk, ext, strlen(ext), true,
	    &key) != PF_OK)
		return false;
	yes = find_ext(p->allow, p->nallow, key) != NULL;
	free(key);
	return yes;
}

struct policy *
policy_new(const char *forbidden, const char *allow)
{
	struct policy *p, *ret = NULL;
	size_t i;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		log_error("%s: calloc", __func__);
		return NULL;
	}
	for (i = 0; i < NMIMES; i++)
		p->mime_types[i] = mimes[i].mime;
	if ((p->nk = namekey_new()) == NULL ||
	    (p->ft = ftype_new(p->mime_types, NMIMES)) == NULL)
		goto out;
	if (parse_list(p, forbidden != NULL ? forbidden : POLICY_DEFAULT_EXTS,
	    &p->forbid, &p->nforbid) != PF_OK || parse_list(p, allow != NULL ?
	    allow : "", &p->allow, &p->nallow) != PF_OK)
		goto out;
	for (i = 0; i < NMIMES; i++)
		p->mime_allowed[i] = allowed(p, mimes[i].ext);
	ret = p;
	p = NULL;
out:
	policy_free(p);
	return ret;
}

static void
free_list(struct ext *v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i].key);
	free(v);
}

const struct namekey *
policy_namekey(const struct policy *p)
{
	return p->nk;
}

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	free_list(p->forbid, p->nforbid);
	free_list(p->allow, p->nallow);
	ftype_free(p->ft);
	namekey_free(p->nk);
	free(p);
}

/*
 * The length of the part of the folded name k that Windows would use:
 * up to the first ':' (what follows names an NTFS stream: "a.exe::$DATA"
 * is a.exe), without trailing dots and spaces (which Windows drops).
 */
static size_t
windows_len(const char *k)
{
	size_t n = strcspn(k, ":");

	while (n > 0 && (k[n - 1] == '.' || k[n - 1] == ' '))
		n--;
	return n;
}

/* The reserved device name k[0..n) stands for, or NULL. */
static const char *
reserved_name(const char *k, size_t n)
{
	size_t i, stem;

	/* "CON.txt" and "con .tar.gz" open the device too. */
	for (stem = 0; stem < n && k[stem] != '.'; stem++)
		;
	while (stem > 0 && k[stem - 1] == ' ')
		stem--;
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strlen(reserved[i]) == stem &&
		    memcmp(k, reserved[i], stem) == 0)
			return reserved[i];
	return NULL;
}

/*
 * Explains in why the refusal of the extension x of the name s[0..len):
 * with the name as sent when it is not plainly "<something>.<x>".
 */
static void
explain_ext(const struct ext *x, const char *s, size_t len, char *why,
    size_t cap)
{
	size_t n = strlen(x->text), i;
	bool plain = len > n && s[len - n - 1] == '.';
	char q[POLICY_WHY_MAX];

	for (i = 0; plain && i < n; i++)
		plain = lower(s[len - n + i]) == x->text[i];
	if (plain) {
		snprintf(why, cap, "extension .%s", x->text);
		return;
	}
	quote(s, len, q, sizeof(q) - 64);
	snprintf(why, cap, "extension .%s (after normalising %s)", x->text, q);
}

/*
 * Checks one name (valid UTF-8): its base name, as Windows and a reader
 * would see it.
 */
static enum pf_status
check_one(const struct policy *p, const char *s, size_t len, char *why,
    size_t cap)
{
	char *k = NULL, q[POLICY_WHY_MAX];
	const struct ext *x;
	const char *r, *dot;
	size_t b, n, start;
	enum pf_status rc;

	for (b = len; b > 0 && s[b - 1] != '/' && s[b - 1] != '\\'; b--)
		;
	s += b;
	len -= b;
	/* Devices: compatibility forms and case, as Windows reads "COM¹". */
	if ((rc = namekey_fold(p->nk, s, len, false, &k)) != PF_OK)
		goto out;
	for (start = 0; k[start] == ' '; start++)
		;
	n = windows_len(k + start);
	if ((r = reserved_name(k + start, n)) != NULL) {
		quote(s, len, q, sizeof(q) - 64);
		snprintf(why, cap, "reserved Windows device name %s (name %s)",
		    r, q);
		rc = PF_EFORBIDDEN;
		goto out;
	}
	free(k);
	/* Extensions: also what only looks like one ("ѕh", "ｓh"). */
	if ((rc = namekey_fold(p->nk, s, len, true, &k)) != PF_OK)
		goto out;
	for (start = 0; k[start] == ' '; start++)
		;
	n = windows_len(k + start);
	k[start + n] = '\0';
	/* A dot in first place starts no extension (".profile"). */
	dot = strrchr(k + start, '.');
	if (dot != NULL && dot > k + start &&
	    (x = find_ext(p->forbid, p->nforbid, dot + 1)) != NULL &&
	    find_ext(p->allow, p->nallow, dot + 1) == NULL) {
		explain_ext(x, s, len, why, cap);
		rc = PF_EFORBIDDEN;
	}
out:
	free(k);
	return rc;
}

enum pf_status
policy_check_names(const struct policy *p, const char *client, size_t len,
    const char *safe, char *why, size_t cap)
{
	enum pf_status rc;

	why[0] = '\0';
	/*
	 * The name as sent holds what the safe name replaced (a ZWSP in
	 * "s<ZWSP>h" became '_'); the safe name is what is stored, and a cut
	 * to 255 bytes can give it an extension the other lacks. Mostly
	 * they are the same, and one check says it for both.
	 */
	if ((rc = check_one(p, client, len, why, cap)) == PF_OK &&
	    (strlen(safe) != len || memcmp(safe, client, len) != 0))
		rc = check_one(p, safe, strlen(safe), why, cap);
	return rc;
}

enum pf_status
policy_check_name(const struct policy *p, const char *name)
{
	char why[POLICY_WHY_MAX];

	return policy_check_names(p, name, strlen(name), name, why,
	    sizeof(why));
}

/*
 * Where "#!" starts in head[0..n), past a UTF-8 byte order mark and
 * white space (which a shell run on the file skips too); -1 if nowhere.
 */
static long
shebang(const uint8_t *head, size_t n)
{
	size_t i = 0;

	if (n >= 3 && memcmp(head, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < n && (head[i] == ' ' || head[i] == '\t' ||
	    head[i] == '\r' || head[i] == '\n'))
		i++;
	return n - i >= 2 && head[i] == '#' && head[i + 1] == '!' ?
	    (long)i : -1;
}

/* The index in magics of the one head starts with, or -1. */
static long
find_magic(const uint8_t *head, size_t n)
{
	size_t i;

	for (i = 0; i < NMAGICS; i++)
		if (n >= magics[i].len &&
		    memcmp(head, magics[i].magic, magics[i].len) == 0)
			return (long)i;
	return -1;
}

enum pf_status
policy_check_content(const uint8_t *head, size_t n)
{
	return find_magic(head, n) >= 0 || shebang(head, n) >= 0 ?
	    PF_EFORBIDDEN : PF_OK;
}

/*
 * True for libmagic's "DOS executable (COM)": a COM file has no magic, so
 * libmagic guesses one from a first byte that is a jump or a move, and 1
 * random head in 120 (compressed or encrypted data) would be refused. A
 * DOS or Windows program proper starts with "MZ", which is refused above
 * whatever follows; .com names are refused by extension.
 */
static bool
com_guess(const char *mime, const uint8_t *head, size_t n)
{
	return strcmp(mime, "application/x-dosexec") == 0 &&
	    (n < 2 || memcmp(head, "MZ", 2) != 0);
}

enum pf_status
policy_check_head(const struct policy *p, const uint8_t *head, size_t n,
    char *why, size_t cap)
{
	char mime[FTYPE_MIME_MAX];
	long m = find_magic(head, n), bang = shebang(head, n);
	size_t i;

	why[0] = '\0';
	if (m >= 0 && !allowed(p, magics[m].ext)) {
		snprintf(why, cap, "content: %s (magic bytes)",
		    magics[m].label);
		return PF_EFORBIDDEN;
	}
	/* A script is known by what follows its "#!", not by the spaces. */
	if (bang > 0) {
		head += bang;
		n -= (size_t)bang;
	}
	/*
	 * Only a script's type is wanted whatever it is (for the reason
	 * given below); any other head only needs to be none of mimes.
	 */
	if ((bang >= 0 ? ftype_classify : ftype_match)(p->ft, head, n,
	    mime) != PF_OK) {
		/* Unknown is not harmless: the caller refuses, and says so. */
		snprintf(why, cap, "content: not classified (libmagic)");
		return PF_EINTERNAL;
	}
	for (i = 0; i < NMIMES; i++)
		if (strcmp(mime, mimes[i].mime) == 0)
			break;
	if (i < NMIMES && !p->mime_allowed[i] && !com_guess(mime, head, n)) {
		snprintf(why, cap, "content: %s (libmagic)", mime);
		return PF_EFORBIDDEN;
	}
	/* Any other "#!" runs an interpreter libmagic has no name for. */
	if (bang >= 0 && i == NMIMES) {
		snprintf(why, cap, "content: #! script (%s)", mime);
		return PF_EFORBIDDEN;
	}
	return PF_OK;
}
