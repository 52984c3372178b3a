/* SPDX-License-Identifier: MIT */
/* A growable byte buffer whose owner sets how large it may grow. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "digest.h"
#include "text.h"

#define BUF_FIRST	256

void
pf_buf_init(struct pf_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

/* Makes room for n more bytes and the NUL; false past max or on ENOMEM. */
static bool
reserve(struct pf_buf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->failed)
		return false;
	if (n > b->max || b->len > b->max - n) {
		b->over = true;
		goto fail;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return true;
	for (cap = b->cap ? b->cap : BUF_FIRST; cap < want; cap *= 2)
		;
	if (cap > b->max + 1)
		cap = b->max + 1;
	if (b->secret) {
		if ((p = malloc(cap)) == NULL)
			goto fail;
		if (b->p != NULL) {
			memcpy(p, b->p, b->len + 1);
			pf_wipe(b->p, b->cap);
			free(b->p);
		}
	} else if ((p = realloc(b->p, cap)) == NULL)
		goto fail;
	b->p = p;
	b->cap = cap;
	return true;
fail:
	b->failed = true;
	return false;
}

bool
pf_buf_add(struct pf_buf *b, const void *p, size_t n)
{
	if (!reserve(b, n))
		return false;
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return true;
}

bool
pf_buf_printf(struct pf_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n)) {
		b->failed = true;
		return false;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return true;
}

bool
pf_buf_add_int(struct pf_buf *b, int64_t v)
{
	char d[24], *p = d + sizeof(d);
	/* -v overflows for INT64_MIN; its magnitude as unsigned does not. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		*--p = '-';
	return pf_buf_add(b, p, (size_t)(d + sizeof(d) - p));
}

/* Writes c's JSON escape into e: a short one where JSON has one. */
static size_t
json_escape(unsigned char c, char e[7])
{
	char named;

	switch (c) {
	case '"':	named = '"'; break;
	case '\\':	named = '\\'; break;
	case '\b':	named = 'b'; break;
	case '\f':	named = 'f'; break;
	case '\n':	named = 'n'; break;
	case '\r':	named = 'r'; break;
	case '\t':	named = 't'; break;
	default:
		return (size_t)snprintf(e, 7, "\\u%04X", c);
	}
	e[0] = '\\';
	e[1] = named;
	return 2;
}

bool
pf_buf_add_json_string(struct pf_buf *b, const char *s)
{
	const char *run = s;
	uint32_t cp;
	size_t n;
	char e[7];

	PF_BUF_ADD_LIT(b, "\"");
	for (;; s += n) {
		unsigned char c = (unsigned char)*s;

		n = 1;
		if (c >= 0x80) {
			/* Not UTF-8: no JSON, as jansson would refuse it. */
			if ((n = pf_text_utf8_decode((const uint8_t *)s,
			    strnlen(s, 4), &cp)) == 0) {
				b->failed = true;
				return false;
			}
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		pf_buf_add(b, run, (size_t)(s - run));
		if (c == '\0')
			break;
		pf_buf_add(b, e, json_escape(c, e));
		run = s + 1;
	}
	return PF_BUF_ADD_LIT(b, "\"");
}

bool
pf_buf_add_json_with(struct pf_buf *b, const char *obj, const char *key,
    const char *value)
{
	size_t n = strlen(obj);

	if (n < 2 || obj[0] != '{' || obj[n - 1] != '}') {
		b->failed = true;
		return false;
	}
	if (value == NULL)
		return pf_buf_add(b, obj, n);
	pf_buf_add(b, obj, n - 1);
	if (n > 2)
		PF_BUF_ADD_LIT(b, ",");
	PF_BUF_ADD_LIT(b, "\"");
	pf_buf_add(b, key, strlen(key));
	PF_BUF_ADD_LIT(b, "\":");
	pf_buf_add(b, value, strlen(value));
	return PF_BUF_ADD_LIT(b, "}");
}

void
pf_buf_consume(struct pf_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->p, b->p + n, b->len - n);
		b->len -= n;
	}
	if (b->p != NULL)
		b->p[b->len] = '\0';
}

char *
pf_buf_steal(struct pf_buf *b, size_t *len)
{
	char *p = b->p;

	if (len != NULL)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = b->over = false;
	return p;
}

void
pf_buf_free(struct pf_buf *b)
{
	if (b->p != NULL && b->secret)
		pf_wipe(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = b->over = false;
}
