/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the name sanitizer, the extension and content checks, and
 * the transfer manifests they judge.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "digest.h"
#include "manifest.h"
#include "namekey.h"
#include "policy.h"

#define VECTOR_MAX	65536	/* bytes in one decoded vector field */
#define RANDOM_ROUNDS	100000
#define RANDOM_MAX_LEN	400
#define LONG_EXT	"abcdefghijklmnopqrstuvwxyz0123456"	/* 33 bytes */

/*
 * Runs the sanitizer on a heap copy of exactly len bytes, with no NUL
 * after it, into a heap buffer of exactly the documented capacity, so that
 * AddressSanitizer sees any read or write past either end. Returns a new
 * string the caller frees, or NULL if the name was refused with
 * PF_EBADNAME; any other status fails the test.
 */
static char *
sanitize(const void *in, size_t len)
{
	char *copy, *out;
	enum pf_status rc;

	copy = malloc(len > 0 ? len : 1);
	out = malloc(PROTO_MAX_NAME + 1);
	assert_non_null(copy);
	assert_non_null(out);
	if (len > 0)
		memcpy(copy, in, len);
	rc = policy_sanitize_name(copy, len, out);
	free(copy);
	if (rc == PF_EBADNAME) {
		free(out);
		return NULL;
	}
	assert_int_equal(rc, PF_OK);
	return out;
}

static void
print_hex(const char *label, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	print_error("%s (%zu bytes):", label, n);
	for (i = 0; i < n; i++)
		print_error(" %02x", b[i]);
	print_error("\n");
}

/*
 * Length of the UTF-8 character at p (n bytes left), or 0. Written from
 * the definition, decoding first and judging the value afterwards, so it
 * does not share its method, or its mistakes, with the code under test.
 */
static size_t
utf8_char(const uint8_t *p, size_t n, uint32_t *cp)
{
	static const uint32_t min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t len, i;
	uint32_t c;

	if (p[0] < 0x80)
		len = 1, c = p[0];
	else if ((p[0] & 0xe0) == 0xc0)
		len = 2, c = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, c = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, c = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static int
is_format_char(uint32_t c)
{
	return c == 0x061c || (c >= 0x200b && c <= 0x200f) ||
	    (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) ||
	    c == 0xfeff;
}

/*
 * Fails the test unless name holds every promise of policy.h, and is a
 * fixed point: sanitizing a sanitized name must not change it, or the
 * name the client is told would differ from a second upload's.
 */
static void
check_output(const char *name, const void *in, size_t inlen)
{
	const uint8_t *p = (const uint8_t *)name;
	size_t len = strlen(name), i, n;
	const char *why = NULL;
	uint32_t c = 0;
	char *again;

	if (len < 1 || len > PROTO_MAX_NAME)
		why = "length";
	else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		why = "dot name";
	else if (name[0] == ' ' || name[0] == '.')
		why = "leading space or dot";
	else if (name[len - 1] == ' ' || name[len - 1] == '.')
		why = "trailing space or dot";
	for (i = 0; why == NULL && i < len; i += n) {
		if ((n = utf8_char(p + i, len - i, &c)) == 0)
			why = "invalid UTF-8";
		else if (c == '/' || c == '\\')
			why = "separator";
		else if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
			why = "control character";
		else if (is_format_char(c))
			why = "format character";
	}
	if (why == NULL) {
		again = sanitize(name, len);
		if (again == NULL || strcmp(again, name) != 0)
			why = "not idempotent";
		free(again);
	}
	if (why != NULL) {
		print_hex("input", in, inlen);
		print_hex("output", name, len);
		fail_msg("sanitized name breaks an invariant: %s", why);
	}
}

static int
hex_digit(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Decodes one field of the vectors file (see its header) into buf.
 * Returns 0, or -1 if the field is malformed or longer than cap.
 */
static int
decode_field(const char *f, uint8_t *buf, size_t cap, size_t *len)
{
	const char *run, *hexend, *end;
	unsigned long reps;
	size_t n = 0, k, r;
	char *stop;

	*len = 0;
	if (strcmp(f, "-") == 0)
		return 0;
	for (run = f; *run != '\0'; run = *end == ' ' ? end + 1 : end) {
		for (hexend = run; hex_digit(*hexend) >= 0; hexend++)
			;
		if (hexend == run || (hexend - run) % 2 != 0)
			return -1;
		end = hexend;
		reps = 1;
		if (*end == '*') {
			reps = strtoul(end + 1, &stop, 10);
			if (stop == end + 1 || reps == 0 || reps > cap)
				return -1;
			end = stop;
		}
		if (*end != ' ' && *end != '\0')
			return -1;
		if (*end == ' ' && end[1] == '\0')
			return -1;
		for (r = 0; r < reps; r++) {
			for (k = 0; run + k < hexend; k += 2) {
				if (n == cap)
					return -1;
				buf[n++] = (uint8_t)(hex_digit(run[k]) << 4 |
				    hex_digit(run[k + 1]));
			}
		}
	}
	*len = n;
	return 0;
}

/*
 * Opens the vectors file. Automake exports srcdir to tests, which keeps
 * this working in a VPATH build and in make distcheck; PF_VECTORS_DIR
 * overrides it for a run by hand.
 */
static FILE *
open_vectors(const char *file)
{
	const char *dir, *srcdir;
	char path[4096];
	FILE *fp;

	if ((dir = getenv("PF_VECTORS_DIR")) != NULL)
		snprintf(path, sizeof(path), "%s/%s", dir, file);
	else if ((srcdir = getenv("srcdir")) != NULL)
		snprintf(path, sizeof(path), "%s/tests/vectors/%s", srcdir,
		    file);
	else
		snprintf(path, sizeof(path), "tests/vectors/%s", file);
	if ((fp = fopen(path, "r")) == NULL)
		fail_msg("cannot open %s (set srcdir or PF_VECTORS_DIR)", path);
	return fp;
}

static void
test_name_vectors(void **state)
{
	static uint8_t in[VECTOR_MAX], want[VECTOR_MAX];
	size_t inlen, wantlen, cap = 0;
	unsigned lineno = 0, count = 0, failed = 0;
	char *line = NULL, *f_in, *f_want, *tab, *got;
	const char *desc;
	ssize_t r;
	FILE *fp;

	(void)state;
	fp = open_vectors("names.txt");
	while ((r = getline(&line, &cap, fp)) != -1) {
		lineno++;
		while (r > 0 && (line[r - 1] == '\n' || line[r - 1] == '\r'))
			line[--r] = '\0';
		if (r == 0 || line[0] == '#')
			continue;
		f_in = line;
		if ((f_want = strchr(f_in, '\t')) == NULL)
			fail_msg("names.txt:%u: no expected field", lineno);
		*f_want++ = '\0';
		desc = "";
		if ((tab = strchr(f_want, '\t')) != NULL) {
			*tab = '\0';
			desc = tab + 1;
		}
		if (decode_field(f_in, in, sizeof(in), &inlen) == -1)
			fail_msg("names.txt:%u: bad input field", lineno);
		if (strcmp(f_want, "ERROR") != 0 &&
		    decode_field(f_want, want, sizeof(want), &wantlen) == -1)
			fail_msg("names.txt:%u: bad expected field", lineno);
		count++;

		got = sanitize(in, inlen);
		if (strcmp(f_want, "ERROR") == 0) {
			if (got != NULL) {
				print_error("names.txt:%u: %s: want ERROR\n",
				    lineno, desc);
				print_hex("got", got, strlen(got));
				failed++;
			}
		} else if (got == NULL) {
			print_error("names.txt:%u: %s: got ERROR\n", lineno,
			    desc);
			failed++;
		} else if (strlen(got) != wantlen ||
		    memcmp(got, want, wantlen) != 0) {
			print_error("names.txt:%u: %s: mismatch\n", lineno,
			    desc);
			print_hex("want", want, wantlen);
			print_hex("got", got, strlen(got));
			failed++;
		} else
			check_output(got, in, inlen);
		free(got);
	}
	assert_false(ferror(fp));
	free(line);
	fclose(fp);
	assert_int_equal(failed, 0);
	/* A truncated or misplaced file must not pass as an empty one. */
	assert_true(count >= 100);
}

static void
test_name_args(void **state)
{
	char out[PROTO_MAX_NAME + 1];

	(void)state;
	assert_int_equal(policy_sanitize_name(NULL, 0, out), PF_EBADNAME);
	assert_int_equal(policy_sanitize_name("abc", 0, out), PF_EBADNAME);
	/* Only len counts: bytes after it, NUL or not, are not read. */
	assert_int_equal(policy_sanitize_name("abc/def", 3, out), PF_OK);
	assert_string_equal(out, "abc");
	assert_int_equal(policy_sanitize_name("ab\0cd", 2, out), PF_OK);
	assert_string_equal(out, "ab");
	assert_int_equal(policy_sanitize_name("ab\0cd", 5, out), PF_EBADNAME);
}

/* splitmix64: small, and the same sequence on every platform. */
static uint64_t
next_random(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * Random bytes alone are nearly never UTF-8, so most names are built from
 * pieces chosen to meet the sanitizer's rules: spaces, dots, controls,
 * format characters and characters of each length. A third of those have
 * no separator and no random byte, so that long base names reach the cut.
 */
static size_t
random_name(uint64_t *s, uint8_t *buf)
{
	static const char *pieces[] = {
		"a", "Z", "0", "_", "-", ".", ".", " ", " ", "..", "exe", "txt",
		"\t", "\x01", "\x1f", "\x7f", "\xc2\x85", "\xc2\xa0",
		"\xc3\xa9", "\xd8\x9c", "\xe2\x80\x8b", "\xe2\x80\xae",
		"\xe2\x81\xa6", "\xe2\x82\xac", "\xef\xbb\xbf",
		"\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
		"/", "\\",	/* the separators stay last */
	};
	const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
	size_t want, n = 0, k, len, choice;
	const char *piece;
	uint8_t one;

	want = next_random(s) % (RANDOM_MAX_LEN + 1);
	switch (next_random(s) % 4) {
	case 0:
		for (n = 0; n < want; n++)
			buf[n] = (uint8_t)next_random(s);
		return n;
	case 1:
		choice = npieces - 2;
		break;
	default:
		choice = npieces + 1;
		break;
	}
	while (n < want) {
		k = next_random(s) % choice;
		if (k >= npieces) {
			/* Now and then a byte of anything, NUL included. */
			if (next_random(s) % 8 != 0)
				continue;
			one = (uint8_t)next_random(s);
			piece = (const char *)&one;
			len = 1;
		} else {
			piece = pieces[k];
			len = strlen(piece);
		}
		/* A piece cut by the end is a truncated sequence: good too. */
		if (len > want - n)
			len = want - n;
		memcpy(buf + n, piece, len);
		n += len;
	}
	return n;
}

static void
test_name_random(void **state)
{
	static uint8_t buf[RANDOM_MAX_LEN];
	uint64_t seed = 0x5eed0f9a7af10e5ULL, s;
	unsigned i, ok = 0, cut = 0;
	const char *env;
	size_t len;
	char *got;

	(void)state;
	if ((env = getenv("PF_TEST_SEED")) != NULL)
		seed = strtoull(env, NULL, 0);
	s = seed;
	for (i = 0; i < RANDOM_ROUNDS; i++) {
		len = random_name(&s, buf);
		if ((got = sanitize(buf, len)) == NULL)
			continue;
		ok++;
		if (strlen(got) > PROTO_MAX_NAME - 4)
			cut++;
		check_output(got, buf, len);
		free(got);
	}
	print_message("# seed %#llx: %u of %u names accepted, %u near 255 "
	    "bytes\n", (unsigned long long)seed, ok, RANDOM_ROUNDS, cut);
	/* Without enough accepted names the invariants were not tested. */
	assert_true(ok >= RANDOM_ROUNDS / 10);
	assert_true(cut >= 100);
}

static void
test_ext_default(void **state)
{
	struct policy *p;
	char *list, *item, *save, name[64];

	(void)state;
	assert_non_null(p = policy_new(NULL, NULL));
	assert_int_equal(policy_check_name(p, "setup.EXE"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "run.Sh"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "x.AppImage"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "a.b.ps1"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "archive.exe.txt"), PF_OK);
	assert_int_equal(policy_check_name(p, "noext"), PF_OK);
	assert_int_equal(policy_check_name(p, "exe"), PF_OK);
	assert_int_equal(policy_check_name(p, "_exe"), PF_OK);
	assert_int_equal(policy_check_name(p, ".exe"), PF_OK);
	assert_int_equal(policy_check_name(p, "x.exe_"), PF_OK);
	assert_int_equal(policy_check_name(p, "x.ex"), PF_OK);
	assert_int_equal(policy_check_name(p, "x.exee"), PF_OK);
	assert_int_equal(policy_check_name(p, "x.e"), PF_OK);
	assert_int_equal(policy_check_name(p, "report.pdf"), PF_OK);
	assert_int_equal(policy_check_name(p, "x."), PF_OK);

	/* Every default item is refused, in upper case too. */
	assert_non_null(list = strdup(POLICY_DEFAULT_EXTS));
	for (item = strtok_r(list, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		snprintf(name, sizeof(name), "f.%s", item);
		assert_int_equal(policy_check_name(p, name), PF_EFORBIDDEN);
		for (char *c = name; *c != '\0'; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = (char)(*c - 'a' + 'A');
		assert_int_equal(policy_check_name(p, name), PF_EFORBIDDEN);
	}
	free(list);
	policy_free(p);
}

static void
test_ext_custom(void **state)
{
	struct policy *p;
	char list[64];

	(void)state;
	assert_non_null(p = policy_new("foo,.BAR", NULL));
	assert_int_equal(policy_check_name(p, "x.bar"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "x.Bar"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "x.FOO"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "x.exe"), PF_OK);
	assert_int_equal(policy_check_name(p, "x.sh"), PF_OK);
	assert_int_equal(policy_check_name(p, "x.fo"), PF_OK);
	assert_int_equal(policy_check_name(p, "x..bar"), PF_EFORBIDDEN);
	policy_free(p);

	/* Spaces around items and empty items are fine. */
	assert_non_null(p = policy_new(" foo , \t.bar\t,, ,", NULL));
	assert_int_equal(policy_check_name(p, "x.foo"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "x.bar"), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "x.exe"), PF_OK);
	assert_int_equal(policy_check_name(p, "x."), PF_OK);
	policy_free(p);

	/* 32 bytes is the longest item, with or without its dot. */
	snprintf(list, sizeof(list), "%.32s", LONG_EXT);
	assert_non_null(p = policy_new(list, NULL));
	policy_free(p);
	snprintf(list, sizeof(list), "x,.%.32s", LONG_EXT);
	assert_non_null(p = policy_new(list, NULL));
	policy_free(p);
}

static void
test_ext_empty(void **state)
{
	struct policy *p;

	(void)state;
	assert_non_null(p = policy_new("", NULL));
	assert_int_equal(policy_check_name(p, "x.exe"), PF_OK);
	assert_int_equal(policy_check_name(p, "x.sh"), PF_OK);
	assert_int_equal(policy_check_name(p, "x."), PF_OK);
	policy_free(p);
	assert_non_null(p = policy_new(" , ,", NULL));
	assert_int_equal(policy_check_name(p, "x.exe"), PF_OK);
	policy_free(p);
}

static void
test_ext_malformed(void **state)
{
	static const char *bad[] = {
		"exe,a/b", "/", "exe,\\", ".", "exe, . ", "..exe", "tar.gz",
		"exe,e\x01", "e\x7f", LONG_EXT, "." LONG_EXT,
		"a," LONG_EXT ",b",
	};
	size_t i;

	(void)state;
	assert_int_equal(strlen(LONG_EXT), 33);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct policy *p = policy_new(bad[i], NULL);

		if (p != NULL) {
			policy_free(p);
			fail_msg("policy_new accepted \"%s\"", bad[i]);
		}
	}
	policy_free(NULL);
}

static void
test_content_magics(void **state)
{
	static const struct {
		const char	*head;
		size_t		 n;
	} exe[] = {
		{ "\x7f" "ELF", 4 },
		{ "\x7f" "ELF\x02\x01\x01", 7 },
		{ "MZ", 2 },
		{ "MZ\x90\x00\x03", 5 },
		{ "\xfe\xed\xfa\xce", 4 },
		{ "\xfe\xed\xfa\xcf", 4 },
		{ "\xce\xfa\xed\xfe", 4 },
		{ "\xcf\xfa\xed\xfe\x07\x00\x00\x01", 8 },
		{ "\xca\xfe\xba\xbe", 4 },
		{ "\xbe\xba\xfe\xca", 4 },
		{ "#!", 2 },
		{ "#!/bin/sh\n", 10 },
		/* A shell skips these before it reads the "#!". */
		{ " #!/bin/sh", 10 },
		{ "\xef\xbb\xbf#!/bin/sh", 12 },
		{ "\r\n\t#!", 5 },
		{ "\0asm\x01\0\0\0", 8 },
	};
	uint8_t big[PROTO_HEAD_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(exe) / sizeof(exe[0]); i++) {
		if (policy_check_content((const uint8_t *)exe[i].head,
		    exe[i].n) != PF_EFORBIDDEN)
			fail_msg("magic %zu not refused", i);
	}
	memset(big, 0, sizeof(big));
	memcpy(big, "\x7f" "ELF", 4);
	assert_int_equal(policy_check_content(big, sizeof(big)),
	    PF_EFORBIDDEN);
}

static void
test_content_near_misses(void **state)
{
	static const struct {
		const char	*head;
		size_t		 n;
	} ok[] = {
		{ "", 0 },
		{ "M", 1 },
		{ "#", 1 },
		{ "\x7f" "EL", 3 },
		{ "\x7f" "elf", 4 },
		{ "mz", 2 },
		{ "Mz", 2 },
		{ "ZM", 2 },
		{ "# comment\n", 10 },
		{ "!#", 2 },
		{ "x\x7f" "ELF", 5 },
		{ "\xfe\xed\xfa", 3 },
		{ "\xca\xfe\xba", 3 },
		{ "\xca\xfe\xba\xbf", 4 },
		{ "\xfe\xed\xfa\xcd", 4 },
		{ "\xcf\xfa\xed\xff", 4 },
		{ "%PDF-1.7\n", 9 },
		{ "hello, world\n", 13 },
		{ "\x89PNG\r\n\x1a\n", 8 },
		{ "PK\x03\x04", 4 },
	};
	size_t i;

	(void)state;
	assert_int_equal(policy_check_content(NULL, 0), PF_OK);
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (policy_check_content((const uint8_t *)ok[i].head,
		    ok[i].n) != PF_OK)
			fail_msg("harmless head %zu refused", i);
	}
	/* Only n counts: the magic's missing bytes are not looked at. */
	assert_int_equal(policy_check_content((const uint8_t *)"MZ", 1), PF_OK);
	assert_int_equal(policy_check_content((const uint8_t *)"#!", 1), PF_OK);
}

/* One name and what policy_check_names must say of it. */
struct name_case {
	const char	*name;
	enum pf_status	 rc;
	const char	*why;	/* the reason, exactly */
};

static void
check_names(const struct policy *p, const struct name_case *c, size_t n)
{
	char safe[PROTO_MAX_NAME + 1], why[POLICY_WHY_MAX];
	enum pf_status rc;
	size_t i;

	for (i = 0; i < n; i++) {
		if (policy_sanitize_name(c[i].name, strlen(c[i].name),
		    safe) != PF_OK)
			fail_msg("case %zu: sanitize refused it", i);
		rc = policy_check_names(p, c[i].name, strlen(c[i].name), safe,
		    why, sizeof(why));
		if (rc != c[i].rc || strcmp(why, c[i].why) != 0)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i,
			    rc, why, c[i].rc, c[i].why);
	}
}

static void
test_names_normalised(void **state)
{
	static const struct name_case cases[] = {
		{ "run.sh", PF_EFORBIDDEN, "extension .sh" },
		{ "dir/X.PY", PF_EFORBIDDEN, "extension .py" },
		/* Look-alikes: Cyrillic, fullwidth, invisible. */
		{ "a.\xd1\x95h", PF_EFORBIDDEN,
		    "extension .sh (after normalising 'a.<U+0455>h')" },
		{ "a.\xef\xbd\x93h", PF_EFORBIDDEN,
		    "extension .sh (after normalising 'a.<U+FF53>h')" },
		{ "a.s\xe2\x80\x8bh", PF_EFORBIDDEN,
		    "extension .sh (after normalising 'a.s<U+200B>h')" },
		{ "a.s\xc2\xadh", PF_EFORBIDDEN,
		    "extension .sh (after normalising 'a.s<U+00AD>h')" },
		{ "a.e\xe2\x80\x8dxe", PF_EFORBIDDEN,
		    "extension .exe (after normalising 'a.e<U+200D>xe')" },
		{ "a.\xe2\x80\x8e" "exe", PF_EFORBIDDEN,
		    "extension .exe (after normalising 'a.<U+200E>exe')" },
		{ "A.\xd0\x95XE", PF_EFORBIDDEN,
		    "extension .exe (after normalising 'A.<U+0415>XE')" },
		{ "a\xef\xbc\x8esh", PF_EFORBIDDEN,
		    "extension .sh (after normalising 'a<U+FF0E>sh')" },
		{ "x.\xf0\x9d\x90\xac\xf0\x9d\x90\xa1", PF_EFORBIDDEN,
		    "extension .sh (after normalising "
		    "'x.<U+1D42C><U+1D421>')" },
		/* NTFS streams and what Windows drops. */
		{ "a.exe::$DATA", PF_EFORBIDDEN,
		    "extension .exe (after normalising 'a.exe::$DATA')" },
		{ "a.exe:stream", PF_EFORBIDDEN,
		    "extension .exe (after normalising 'a.exe:stream')" },
		{ "a.exe. .:x", PF_EFORBIDDEN,
		    "extension .exe (after normalising 'a.exe. .:x')" },
		/* Devices. */
		{ "CON", PF_EFORBIDDEN,
		    "reserved Windows device name con (name 'CON')" },
		{ "con.txt", PF_EFORBIDDEN,
		    "reserved Windows device name con (name 'con.txt')" },
		{ "Nul.tar.gz", PF_EFORBIDDEN,
		    "reserved Windows device name nul (name 'Nul.tar.gz')" },
		{ "aux .log", PF_EFORBIDDEN,
		    "reserved Windows device name aux (name 'aux .log')" },
		{ "lpt9", PF_EFORBIDDEN,
		    "reserved Windows device name lpt9 (name 'lpt9')" },
		{ "COM\xc2\xb9.txt", PF_EFORBIDDEN,
		    "reserved Windows device name com1 "
		    "(name 'COM<U+00B9>.txt')" },
		{ "x/prn:a", PF_EFORBIDDEN,
		    "reserved Windows device name prn (name 'prn:a')" },
		{ "CONOUT$", PF_EFORBIDDEN,
		    "reserved Windows device name conout$ (name 'CONOUT$')" },
		/* Near misses, and ordinary names. */
		{ "console.log", PF_OK, "" },
		{ "com10.txt", PF_OK, "" },
		{ "lpt", PF_OK, "" },
		{ "con_x", PF_OK, "" },
		{ "caf\xc3\xa9.txt", PF_OK, "" },
		{ "cafe\xcc\x81.txt", PF_OK, "" },
		{ "\xe6\x97\xa5\xe6\x9c\xac.txt", PF_OK, "" },
		{ "report.tar.gz", PF_OK, "" },
		{ "a.exe.txt", PF_OK, "" },
		{ "firmware.bin", PF_OK, "" },
		{ "a.txt:x.exe", PF_OK, "" },
		{ "x.shx", PF_OK, "" },
	};
	struct policy *p;

	(void)state;
	assert_non_null(p = policy_new(NULL, NULL));
	check_names(p, cases, sizeof(cases) / sizeof(cases[0]));
	policy_free(p);
}

static void
test_names_allowed(void **state)
{
	static const struct name_case cases[] = {
		{ "x.py", PF_OK, "" },
		{ "x.PY", PF_OK, "" },
		/* The same skeleton: Cyrillic "р" is "p". */
		{ "x.\xd1\x80y", PF_OK, "" },
		{ "x.sh", PF_EFORBIDDEN, "extension .sh" },
		{ "CON.py", PF_EFORBIDDEN,
		    "reserved Windows device name con (name 'CON.py')" },
	};
	char why[POLICY_WHY_MAX];
	struct policy *p;

	(void)state;
	assert_non_null(p = policy_new(NULL, "py"));
	check_names(p, cases, sizeof(cases) / sizeof(cases[0]));
	policy_free(p);
	/* An allowed extension that is not refused anyway changes nothing. */
	assert_non_null(p = policy_new("foo", ".bar, baz"));
	assert_int_equal(policy_check_names(p, "a.foo", 5, "a.foo", why,
	    sizeof(why)), PF_EFORBIDDEN);
	assert_int_equal(policy_check_name(p, "a.bar"), PF_OK);
	policy_free(p);
	assert_null(policy_new(NULL, "tar.gz"));
}

/* One head and what policy_check_head must say of it. */
struct head_case {
	const char	*head;
	size_t		 n;
	const char	*why;	/* "" for PF_OK */
};

static void
check_heads(const struct policy *p, const struct head_case *c, size_t n)
{
	char why[POLICY_WHY_MAX];
	enum pf_status rc;
	size_t i;

	for (i = 0; i < n; i++) {
		rc = policy_check_head(p, (const uint8_t *)c[i].head, c[i].n,
		    why, sizeof(why));
		if (rc != (c[i].why[0] != '\0' ? PF_EFORBIDDEN : PF_OK) ||
		    strcmp(why, c[i].why) != 0)
			fail_msg("head %zu: got %d \"%s\", want \"%s\"", i, rc,
			    why, c[i].why);
	}
}

#define H(s)	s, sizeof(s) - 1

static void
test_content_libmagic(void **state)
{
	static const struct head_case cases[] = {
		{ H("\x7f" "ELF\x02\x01\x01"),
		    "content: ELF executable (magic bytes)" },
		{ H("\0asm\x01\0\0\0"),
		    "content: WebAssembly module (magic bytes)" },
		{ H("\xef\xbb\xbf#!/bin/sh\necho hi\n"),
		    "content: text/x-shellscript (libmagic)" },
		{ H("  #!/bin/sh\necho hi\n"),
		    "content: text/x-shellscript (libmagic)" },
		{ H("#!/usr/bin/env python3\nprint(1)\n"),
		    "content: text/x-script.python (libmagic)" },
		{ H("import os\nimport sys\n\ndef main():\n    print(1)\n"),
		    "content: text/x-script.python (libmagic)" },
		{ H("<?php echo 1; ?>\n"), "content: text/x-php (libmagic)" },
		{ H("@echo off\r\necho hi\r\n"),
		    "content: text/x-msdos-batch (libmagic)" },
		{ H("Windows Registry Editor Version 5.00\r\n\r\n"),
		    "content: text/x-ms-regedit (libmagic)" },
		{ H("L\0\0\0\x01\x14\x02\0\0\0\0\0\xc0\0\0\0\0\0\0\x46"),
		    "content: application/x-ms-shortcut (libmagic)" },
		{ H("!<arch>\ndebian-binary   1342177280  0     0     100644  "
		    "4         `\n2.0\n"),
		    "content: application/vnd.debian.binary-package "
		    "(libmagic)" },
		{ H("\xca\xfe\xba\xbe\0\0\0\x34"),
		    "content: Mach-O universal executable (magic bytes)" },
		{ H("#!/opt/odd/interpreter\nrun\n"),
		    "content: #! script (text/plain)" },
		{ H("hello, world\n"), "" },
		{ H("caf\xc3\xa9 au lait\n"), "" },
		{ H("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), "" },
		{ H("\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "" },
		{ H("\x1f\x8b\x08\0\0\0\0\0\0\x03"), "" },
		/* libmagic's "DOS executable (COM)" guesses: random data. */
		{ H("\xeb\x1c\x2e\x2b\xb8\x56\x9d\x80\x6c\x12\x51\xdc"
		    "\xc9\xbe\xe3\x89\x12\x0e\xba\xee\xa3\xc2\xd8\x54"
		    "\x5a\x78\x76\x0c\x5a\xa6\x58\x45"), "" },
		{ H("\xb8\xc5\xd7\x14\x84\xf8\xcf\x9b\xf4\xb7\x6f\x47"
		    "\x90\x47\x30\x80\x4b\x9e\x32\x25\xa9\xf1\x33\xb5"
		    "\xde\xa1\x68\xf4\xe2\x85\x1f\x07"), "" },
		{ H(""), "" },
	};
	static const struct head_case allow_py[] = {
		{ H("#!/usr/bin/env python3\nprint(1)\n"), "" },
		{ H("import os\nimport sys\n\ndef main():\n    print(1)\n"),
		    "" },
		{ H("#!/bin/sh\necho hi\n"),
		    "content: text/x-shellscript (libmagic)" },
		{ H("\x7f" "ELF\x02\x01\x01"),
		    "content: ELF executable (magic bytes)" },
	};
	struct policy *p;

	(void)state;
	assert_non_null(p = policy_new(NULL, NULL));
	check_heads(p, cases, sizeof(cases) / sizeof(cases[0]));
	policy_free(p);
	assert_non_null(p = policy_new(NULL, "py"));
	check_heads(p, allow_py, sizeof(allow_py) / sizeof(allow_py[0]));
	policy_free(p);
}

/* The manifest as jansson would write it: what manifest_dump must match. */
static char *
reference_dump(const struct manifest *m, enum manifest_form form)
{
	bool final = form != MANIFEST_STAGED;
	json_t *a = json_array(), *e;
	char *text;

	for (size_t i = 0; i < m->n; i++) {
		const struct manifest_file *f = &m->f[i];

		if (form == MANIFEST_SHORT)
			e = json_pack("{s:s?,s:s*}", "path", f->path,
			    "reason", f->reason);
		else
			e = json_pack("{s:s,s:s?,s:b,s:I,s:I,s:I,s:i,s:s?}",
			    "client", f->client, "path", f->path, "dir",
			    f->dir, "size", (json_int_t)f->size, "mode",
			    (json_int_t)f->mode, "mtime", (json_int_t)f->mtime,
			    "status", (int)f->status, "reason", f->reason);
		assert_non_null(e);
		if (!final && !f->dir)
			json_object_set_new(e, "offset",
			    json_integer((json_int_t)f->offset));
		if (final)
			json_object_set_new(e, "state", json_string(
			    f->status == PF_OK ? "stored" :
			    pf_status_name(f->status)));
		if (final && f->digest[0])
			json_object_set_new(e, "digest",
			    json_string(f->digest));
		json_array_append_new(a, e);
	}
	text = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return text;
}

static void
test_manifest_dump(void **state)
{
	/* Every control character, quotes, backslashes, UTF-8, DEL. */
	static const char *tricky = "q\"b\\s/\x01\x07\b\t\n\x0b\f\r\x1f"
	    "\x7f \xc3\xa9\xe2\x80\xa8\xf0\x9f\x93\xb7.txt";
	json_t *files = json_pack("[{s:s,s:i,s:i,s:I},{s:s,s:i,s:i,s:I},"
	    "{s:s,s:i,s:i,s:I},{s:s,s:b},{s:s,s:i,s:i,s:I}]",
	    "path", tricky, "size", 3, "mode", 0644, "mtime",
	    (json_int_t)1700000000,
	    "path", "dir/\xc3\xa9 \xc3\xbc/x.bin", "size", 5, "mode", 0600,
	    "mtime", (json_int_t)-5,
	    "path", "../evil", "size", 1, "mode", 0644, "mtime",
	    (json_int_t)0,
	    "path", "d", "dir", 1,
	    "path", "empty", "size", 0, "mode", 0, "mtime", (json_int_t)0);
	struct manifest *m = NULL, *back = NULL;
	struct policy *p;
	struct pf_buf b;
	char why[256], *want;
	json_t *j;

	(void)state;
	assert_non_null(files);
	assert_non_null(p = policy_new(NULL, NULL));
	assert_int_equal(manifest_parse(p, files, 9, &m, why, sizeof(why)),
	    PF_OK);
	assert_int_equal(m->n, 5);
	assert_int_not_equal(m->f[2].status, PF_OK);	/* "..": refused */
	memset(m->f[0].digest, 'a', PF_SHA256_HEX - 1);
	for (int form = MANIFEST_STAGED; form <= MANIFEST_SHORT; form++) {
		pf_buf_init(&b, 1 << 20);
		assert_true(manifest_dump(m, form, &b));
		want = reference_dump(m, form);
		assert_string_equal(b.p, want);
		free(want);
		if (form == MANIFEST_STAGED) {
			/* And it reads back as the same manifest. */
			assert_non_null(j = json_loads(b.p, 0, NULL));
			assert_int_equal(manifest_load(j, 9, &back), PF_OK);
			json_decref(j);
			assert_int_equal(back->n, m->n);
			for (size_t i = 0; i < m->n; i++) {
				assert_string_equal(back->f[i].client,
				    m->f[i].client);
				if (m->f[i].size > 0)
					assert_int_equal(back->f[i].offset,
					    m->f[i].offset);
				assert_int_equal(back->f[i].status,
				    m->f[i].status);
			}
			manifest_free(back);
		}
		pf_buf_free(&b);
	}
	/* Over the buffer's cap: refused as too large, not as ENOMEM. */
	pf_buf_init(&b, 64);
	assert_false(manifest_dump(m, MANIFEST_FINAL, &b));
	assert_true(b.over);
	pf_buf_free(&b);
	manifest_free(m);
	json_decref(files);
	policy_free(p);
}

/* ASCII names fold from the table exactly as ICU folds them. */
static void
test_namekey_ascii(void **state)
{
	static const char *names[] = { "rn", "m", "1lI|", "0O", "Con.TXT",
	    "a`b'c", "\x01\x1f\x7f", "x y\tz", "", "README.md" };
	struct namekey *k = namekey_new();
	char s[64], *fast, *icu;

	(void)state;
	assert_non_null(k);
	srandom(42);
	for (size_t i = 0; i < 2000 + sizeof(names) / sizeof(names[0]);
	    i++) {
		size_t len;

		if (i < sizeof(names) / sizeof(names[0])) {
			len = strlen(names[i]);
			memcpy(s, names[i], len);
		} else {
			len = (size_t)random() % sizeof(s);
			for (size_t j = 0; j < len; j++)
				s[j] = (char)(1 + random() % 127);
		}
		for (int sk = 0; sk < 2; sk++) {
			/* Debian 12's ICU keeps ASCII within ASCII. */
			assert_true(namekey_ascii(k, true));
			assert_int_equal(namekey_fold(k, s, len, sk, &fast),
			    PF_OK);
			namekey_ascii(k, false);
			assert_int_equal(namekey_fold(k, s, len, sk, &icu),
			    PF_OK);
			assert_string_equal(fast, icu);
			free(fast);
			free(icu);
		}
	}
	namekey_free(k);
}

/*
 * A reason that quotes a long path is cut short, never inside a
 * character: the lists that carry it stay JSON.
 */
static void
test_manifest_long_reason(void **state)
{
	char parent[700], child[710], why[256], *e = NULL;
	struct manifest *m = NULL;
	struct policy *p;
	struct pf_buf b;
	json_t *files, *j;
	size_t n = 0;

	(void)state;
	/* "ab/" then three components of 100 "é": 605 bytes. */
	n += (size_t)snprintf(parent + n, sizeof(parent) - n, "ab");
	for (int c = 0; c < 3; c++) {
		parent[n++] = '/';
		for (int i = 0; i < 100; i++) {
			parent[n++] = '\xc3';
			parent[n++] = '\xa9';
		}
	}
	parent[n] = '\0';
	snprintf(child, sizeof(child), "%s/x", parent);
	files = json_pack("[{s:s,s:i,s:i,s:i},{s:s,s:i,s:i,s:i}]", "path",
	    parent, "size", 1, "mode", 0644, "mtime", 0, "path", child,
	    "size", 1, "mode", 0644, "mtime", 0);
	assert_non_null(files);
	assert_non_null(p = policy_new(NULL, NULL));
	assert_int_equal(manifest_parse(p, files, 2, &m, why, sizeof(why)),
	    PF_OK);
	/* The child of a file: refused, its reason quoting the parent. */
	assert_int_equal(m->f[1].status, PF_EBADNAME);
	assert_true(strlen(m->f[1].reason) < 512);
	assert_memory_equal(m->f[1].reason, "'ab/", 4);
	pf_buf_init(&b, 1 << 20);
	assert_true(manifest_dump(m, MANIFEST_FINAL, &b));
	assert_non_null(j = json_loads(b.p, 0, NULL));
	assert_int_equal(json_unpack(j, "[{},{s:s}]", "reason", &e), 0);
	assert_string_equal(e, m->f[1].reason);
	json_decref(j);
	pf_buf_free(&b);
	manifest_free(m);
	json_decref(files);
	policy_free(p);
}

/* m's digest is that of jansson's compact, sorted text of files. */
static void
assert_list_digest(const json_t *files, uint64_t size)
{
	struct manifest *m = NULL;
	struct policy *p;
	uint8_t md[PF_SHA256_LEN];
	char why[256], want[PF_SHA256_HEX], *text;

	assert_non_null(p = policy_new(NULL, NULL));
	assert_int_equal(manifest_parse(p, files, size, &m, why, sizeof(why)),
	    PF_OK);
	assert_non_null(text = json_dumps(files, JSON_COMPACT |
	    JSON_SORT_KEYS));
	assert_int_equal(pf_sha256(text, strlen(text), md), PF_OK);
	pf_hex_encode(md, sizeof(md), want);
	assert_string_equal(m->digest, want);
	free(text);
	manifest_free(m);
	policy_free(p);
}

static void
test_manifest_digest(void **state)
{
	static const char *tricky = "q\"b\\s/\x01\x07\b\t\n\x0b\f\r\x1f"
	    "\x7f \xc3\xa9\xe2\x80\xa8\xf0\x9f\x93\xb7.txt";
	char path[64];
	json_t *files, *e;

	(void)state;
	/* The usual forms: a setuid mode kept as sent, a negative mtime. */
	files = json_pack("[{s:s,s:i,s:i,s:I},{s:s,s:b},{s:s,s:I,s:i,s:I},"
	    "{s:s,s:i,s:i,s:I}]", "path", tricky, "size", 3, "mode", 04755,
	    "mtime", (json_int_t)1700000000, "path", "d", "dir", 1, "path",
	    "d/big", "size", (json_int_t)1 << 40, "mode", 0600, "mtime",
	    (json_int_t)-5, "path", "d/empty", "size", 0, "mode", 0, "mtime",
	    (json_int_t)0);
	assert_non_null(files);
	assert_list_digest(files, 3 + ((uint64_t)1 << 40));
	/* Offsets given: the usual form too. */
	json_object_set_new(json_array_get(files, 0), "offset",
	    json_integer(0));
	json_object_set_new(json_array_get(files, 2), "offset",
	    json_integer(4096));
	json_object_set_new(json_array_get(files, 3), "offset",
	    json_integer(3));
	assert_list_digest(files, 4096 + ((uint64_t)1 << 40));
	/* Members parse_entry does not read: jansson writes those entries. */
	json_object_set_new(json_array_get(files, 1), "mode", json_integer(7));
	json_object_set_new(json_array_get(files, 2), "x", json_pack("[i,s]",
	    1, "\xc3\xa9"));
	json_object_set_new(json_array_get(files, 3), "dir", json_false());
	assert_list_digest(files, 4096 + ((uint64_t)1 << 40));
	json_decref(files);
	/* More text than is hashed at once, odd entries in between. */
	assert_non_null(files = json_array());
	for (int i = 0; i < 3000; i++) {
		snprintf(path, sizeof(path), "dir%02d/file-%05d-%s.dat",
		    i % 10, i, "abcdefghijklmnopqrstuvwxyz");
		e = json_pack("{s:s,s:i,s:i,s:I}", "path", path, "size", 1,
		    "mode", 0644, "mtime", (json_int_t)i * 1000003);
		if (i % 997 == 0)
			json_object_set_new(e, "note", json_string("odd"));
		json_array_append_new(files, e);
	}
	assert_list_digest(files, 3000);
	json_decref(files);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_vectors),
		cmocka_unit_test(test_name_args),
		cmocka_unit_test(test_name_random),
		cmocka_unit_test(test_ext_default),
		cmocka_unit_test(test_ext_custom),
		cmocka_unit_test(test_ext_empty),
		cmocka_unit_test(test_ext_malformed),
		cmocka_unit_test(test_content_magics),
		cmocka_unit_test(test_content_near_misses),
		cmocka_unit_test(test_names_normalised),
		cmocka_unit_test(test_names_allowed),
		cmocka_unit_test(test_manifest_dump),
		cmocka_unit_test(test_manifest_long_reason),
		cmocka_unit_test(test_manifest_digest),
		cmocka_unit_test(test_namekey_ascii),
		cmocka_unit_test(test_content_libmagic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
