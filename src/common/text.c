/* SPDX-License-Identifier: MIT */
/* Untrusted text escaped for terminals and logs. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "text.h"

/* Bidirectional controls and line breaks past Latin-1 (3 bytes each). */
static bool
unsafe_three(const unsigned char *p)
{
	if (p[0] != 0xe2)
		return false;
	/* U+200E, U+200F; U+2028, U+2029; U+202A..U+202E. */
	if (p[1] == 0x80)
		return p[2] == 0x8e || p[2] == 0x8f ||
		    (p[2] >= 0xa8 && p[2] <= 0xae);
	/* U+2066..U+2069: the isolates. */
	return p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9;
}

size_t
pf_text_safe_len(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t c;
	size_t len;

	if (p[0] >= 0x20 && p[0] < 0x7f)
		return 1;
	/* NUL, C0, DEL; else a sequence no NUL cuts short, and UTF-8. */
	if (p[0] < 0x80 || (len = pf_text_utf8_decode(p, strnlen(s, 4),
	    &c)) == 0)
		return 0;
	/* C1 (U+0080..U+009F), the Arabic letter mark (U+061C). */
	if (c <= 0x9f || c == 0x61c)
		return 0;
	if (len == 3 && unsafe_three(p))
		return 0;
	return len;
}

size_t
pf_text_escape(char *out, size_t cap, const char *s, size_t *used)
{
	size_t n = 0, k = 0, len;

	while (s[k] != '\0') {
		len = pf_text_safe_len(s + k);
		if (len == 0 || s[k] == '\\') {
			/*
			 * One byte at a time: the rest of an unsafe character
			 * is no valid UTF-8 on its own, so it is escaped too.
			 */
			if (n + PF_TEXT_ESC_MAX >= cap)
				break;
			snprintf(out + n, cap - n, "\\x%02x",
			    (unsigned char)s[k]);
			n += PF_TEXT_ESC_MAX;
			k++;
			continue;
		}
		if (n + len >= cap)
			break;	/* never half a character */
		memcpy(out + n, s + k, len);
		n += len;
		k += len;
	}
	out[n] = '\0';
	if (used != NULL)
		*used = k;
	return n;
}

size_t
pf_text_utf8_whole(const char *s, size_t len)
{
	size_t start = len, want;
	unsigned char lead;

	/* Back to the last character's first byte. */
	while (start > 0 && ((unsigned char)s[start - 1] & 0xc0) == 0x80)
		start--;
	if (start == 0)
		return 0;
	lead = (unsigned char)s[--start];
	want = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	return start + want <= len ? len : start;
}

size_t
pf_text_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp)
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
