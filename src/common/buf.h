/* SPDX-License-Identifier: MIT */
/* A growable byte buffer whose owner sets how large it may grow. */
#ifndef PF_BUF_H
#define PF_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Grows by doubling from what was added, never from a length a peer
 * announced, and never past max. Once an append fails (over max, or out
 * of memory) the buffer keeps what it had and every later append fails
 * too: a caller may build a whole text and check failed once at the end.
 * p is NUL-terminated whenever it is not NULL. With secret set, growing
 * copies and wipes the old block (realloc(3) could leave a copy behind)
 * and pf_buf_free wipes too.
 */
struct pf_buf {
	char	*p;
	size_t	 len, cap;
	size_t	 max;		/* bytes len may reach */
	bool	 failed;
	bool	 over;		/* failed: max was reached, not memory */
	bool	 secret;
};

/* An empty buffer that will hold at most max bytes. Allocates nothing. */
void pf_buf_init(struct pf_buf *b, size_t max);

/* Appends n bytes; false (b unchanged, failed set) past max or on ENOMEM. */
bool pf_buf_add(struct pf_buf *b, const void *p, size_t n);

/* pf_buf_add of a string literal, its length counted by the compiler. */
#define PF_BUF_ADD_LIT(b, lit)	pf_buf_add((b), (lit), sizeof(lit) - 1)

/* Appends ,"key": of a JSON object being written (key a literal). */
#define PF_BUF_ADD_KEY(b, key)	PF_BUF_ADD_LIT((b), ",\"" key "\":")

/* Appends formatted text; false as for pf_buf_add. */
bool pf_buf_printf(struct pf_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends v in decimal; false as for pf_buf_add. Cheaper than printf. */
bool pf_buf_add_int(struct pf_buf *b, int64_t v);

/*
 * Appends s as a JSON string: quoted, with '"', '\\' and control
 * characters escaped and the rest as it is, the way jansson writes it.
 * False as for pf_buf_add, and if s is not UTF-8 (b fails, not over).
 */
bool pf_buf_add_json_string(struct pf_buf *b, const char *s);

/*
 * Appends the text of a JSON object, obj ("{...}", compact), with one
 * more member at its end: "key":value, value being JSON text already (a
 * list of 100,000 entries is then written once, not built as a jansson
 * tree). value NULL: obj as it is. key must need no escape. False as
 * for pf_buf_add, and if obj is not "{...}".
 */
bool pf_buf_add_json_with(struct pf_buf *b, const char *obj,
    const char *key, const char *value);

/* Drops the first n bytes (at most len), keeping the rest. */
void pf_buf_consume(struct pf_buf *b, size_t n);

/*
 * Hands the contents over: returns p (NUL-terminated; the caller frees it),
 * *len its length, and leaves b empty. NULL if nothing was ever added.
 */
char *pf_buf_steal(struct pf_buf *b, size_t *len);

/* Frees the contents and leaves b empty (same max); b may be empty. */
void pf_buf_free(struct pf_buf *b);

#endif
