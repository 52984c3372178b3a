/* SPDX-License-Identifier: MIT */
/* Turns client file names into safe base names and refuses executables. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"

#define EXT_MAX		32	/* bytes in one refused extension */
#define KEEP_EXT_MAX	16	/* bytes after the dot kept whole by a cut */

/* Immutable once built, so any number of threads may share one. */
struct policy {
	size_t	 n;
	char	 exts[][EXT_MAX + 1];
};

/*
 * Decodes the character at p (n > 0 bytes left) into *cp and returns its
 * length, or 0 if the bytes are not UTF-8. The ranges of the second byte
 * are those of RFC 3629, section 4: they alone rule out overlong forms,
 * surrogates and values over U+10FFFF, so no decoded value needs a check.
 */
static size_t
utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
{
	uint8_t lo = 0x80, hi = 0xbf;
	uint32_t c;
	size_t len, i;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] < 0xc2)		/* continuation, or overlong C0/C1 */
		return 0;
	if (p[0] < 0xe0) {
		len = 2;
		c = p[0] & 0x1f;
	} else if (p[0] < 0xf0) {
		len = 3;
		c = p[0] & 0x0f;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* below U+0800 is overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;	/* U+D800-U+DFFF are surrogates */
	} else if (p[0] < 0xf5) {
		len = 4;
		c = p[0] & 0x07;
		if (p[0] == 0xf0)
			lo = 0x90;	/* below U+10000 is overlong */
		else if (p[0] == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		return 0;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	c = c << 6 | (p[1] & 0x3f);
	for (i = 2; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	*cp = c;
	return len;
}

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
		if ((len = utf8_decode(in + i, to - i, &c)) == 0) {
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
		if ((n = utf8_decode(in + i, len - i, &c)) == 0 || c == 0)
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

/* The ASCII case is folded by hand: tolower() would follow the locale. */
static bool
ext_equal(const char *a, const char *b)
{
	unsigned char x, y;

	do {
		x = (unsigned char)*a++;
		y = (unsigned char)*b++;
		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return false;
	} while (x != '\0');
	return true;
}

/*
 * Adds the item s[0..len) of an extension list to p, or skips it if it is
 * blank. Items with a dot inside ("tar.gz") or a separator are refused
 * rather than stored, since they could never match the last extension of
 * a sanitized name and would only look like protection.
 */
static enum pf_status
add_ext(struct policy *p, const char *s, size_t len)
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
		    (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			break;
	if (len == 0 || len > EXT_MAX || i < len) {
		log_error("%s: bad extension \"%.*s\"", __func__,
		    len > 64 ? 64 : (int)len, s);
		goto out;
	}
	memcpy(p->exts[p->n], s, len);
	p->exts[p->n][len] = '\0';
	p->n++;
	rc = PF_OK;
out:
	return rc;
}

struct policy *
policy_new(const char *exts)
{
	struct policy *p = NULL, *ret = NULL;
	const char *s, *e;
	size_t count = 1;

	if (exts == NULL)
		exts = POLICY_DEFAULT_EXTS;
	for (s = exts; *s != '\0'; s++)
		if (*s == ',')
			count++;
	/* Each comma makes at most one item, so count bounds the table. */
	if (count > (SIZE_MAX - sizeof(*p)) / sizeof(p->exts[0])) {
		log_error("%s: list too long", __func__);
		goto out;
	}
	if ((p = calloc(1, sizeof(*p) + count * sizeof(p->exts[0]))) == NULL) {
		log_error("%s: calloc", __func__);
		goto out;
	}
	for (s = exts;; s = e + 1) {
		if ((e = strchr(s, ',')) == NULL)
			e = s + strlen(s);
		if (add_ext(p, s, (size_t)(e - s)) != PF_OK)
			goto out;
		if (*e == '\0')
			break;
	}
	ret = p;
	p = NULL;
out:
	free(p);
	return ret;
}

void
policy_free(struct policy *p)
{
	free(p);
}

enum pf_status
policy_check_name(const struct policy *p, const char *name)
{
	const char *dot = strrchr(name, '.');
	size_t i;

	/* ".profile" has no extension; sanitized names never look so. */
	if (dot == NULL || dot == name)
		return PF_OK;
	for (i = 0; i < p->n; i++)
		if (ext_equal(dot + 1, p->exts[i]))
			return PF_EFORBIDDEN;
	return PF_OK;
}

/*
 * A file that passes may still be one that runs somewhere; this only
 * stops the kinds that start executing by themselves when clicked or
 * chmod'ed, which is what the extension check cannot see under a false
 * name.
 */
static const struct {
	const char	*magic;
	size_t		 len;
} magics[] = {
	{ "\x7f" "ELF", 4 },
	{ "MZ", 2 },			/* DOS and PE */
	{ "\xfe\xed\xfa\xce", 4 },	/* Mach-O 32-bit, big-endian */
	{ "\xfe\xed\xfa\xcf", 4 },	/* Mach-O 64-bit, big-endian */
	{ "\xce\xfa\xed\xfe", 4 },	/* Mach-O 32-bit, little-endian */
	{ "\xcf\xfa\xed\xfe", 4 },	/* Mach-O 64-bit, little-endian */
	{ "\xca\xfe\xba\xbe", 4 },	/* fat (universal), big-endian */
	{ "\xbe\xba\xfe\xca", 4 },	/* fat, little-endian */
	{ "#!", 2 },
};

enum pf_status
policy_check_content(const uint8_t *head, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(magics) / sizeof(magics[0]); i++)
		if (n >= magics[i].len &&
		    memcmp(head, magics[i].magic, magics[i].len) == 0)
			return PF_EFORBIDDEN;
	return PF_OK;
}
