/* SPDX-License-Identifier: MIT */
/*
 * Untrusted text made safe to print: a peer's names and messages must not
 * drive a terminal, forge a log line or show other text than they hold.
 */
#ifndef PF_TEXT_H
#define PF_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes pf_text_escape writes for one byte of input ("\xNN"). */
#define PF_TEXT_ESC_MAX	4

/*
 * The length (1..4) of the UTF-8 character at s if it is valid and safe
 * to show as it is; 0 for the NUL, a byte that is not part of valid UTF-8
 * (overlong forms and surrogates too), a control character (C0, DEL, C1),
 * a bidirectional control (U+061C, U+200E, U+200F, U+202A..U+202E,
 * U+2066..U+2069) or a line or paragraph separator (U+2028, U+2029).
 * Reads no further than a NUL. Any thread.
 */
size_t pf_text_safe_len(const char *s);

/*
 * Copies the NUL-terminated s into out (capacity cap > 0) with every
 * byte of what pf_text_safe_len finds unsafe, and every backslash,
 * written as \xNN: one line of valid UTF-8 that shows what s holds, and
 * from which s can be told back. Stops before an escape or a character
 * that would not fit; out is always NUL-terminated. Returns the length
 * written; *used (if not NULL) gets the bytes of s consumed, so a caller
 * may go on with s + *used. Any thread.
 */
size_t pf_text_escape(char *out, size_t cap, const char *s, size_t *used);

/*
 * Decodes the character at p (n > 0 bytes left) into *cp and returns its
 * length, or 0 if the bytes are not UTF-8. The ranges of the second byte
 * are those of RFC 3629, section 4: they alone rule out overlong forms,
 * surrogates and values over U+10FFFF, so no decoded value needs a check.
 * Any thread.
 */
size_t pf_text_utf8_decode(const uint8_t *p, size_t n, uint32_t *cp);

/*
 * The length of s (len bytes of UTF-8, perhaps cut short) without the
 * character its end cuts in two, if it does. Any thread.
 */
size_t pf_text_utf8_whole(const char *s, size_t len);

#endif
