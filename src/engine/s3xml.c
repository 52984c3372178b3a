/* SPDX-License-Identifier: MIT */
/* Walks the store's XML answers with expat, reporting each element's text. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <expat.h>

#include "log.h"
#include "s3xml.h"

#define S3XML_DEPTH	8

struct walk {
	XML_Parser	 parser;
	s3xml_fn	 fn;
	void		*arg;
	int		 depth;
	bool		 failed;
	char		*root;
	size_t		 rootcap;
	size_t		 len;
	char		 text[S3XML_TEXT_MAX + 1];
};

static void
stop(struct walk *w)
{
	w->failed = true;
	XML_StopParser(w->parser, XML_FALSE);
}

/* The text of an element is what came since it (or its last child)
   opened: an element holding others reports it empty. */
static void XMLCALL
on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct walk *w = arg;

	if (w->failed)
		return;
	if (++w->depth > S3XML_DEPTH) {
		stop(w);
		return;
	}
	if (w->depth == 1 && w->rootcap > 0)
		snprintf(w->root, w->rootcap, "%s", name);
	w->len = 0;
}

static void XMLCALL
on_end(void *arg, const XML_Char *name)
{
	struct walk *w = arg;

	if (w->failed)
		return;
	w->text[w->len] = '\0';
	if (!w->fn(w->arg, w->depth, name, w->text))
		stop(w);
	w->depth--;
	w->len = 0;
}

static void XMLCALL
on_text(void *arg, const XML_Char *s, int n)
{
	struct walk *w = arg;

	if (w->failed || n <= 0)
		return;
	if ((size_t)n > S3XML_TEXT_MAX - w->len) {
		stop(w);
		return;
	}
	memcpy(w->text + w->len, s, (size_t)n);
	w->len += (size_t)n;
}

/* No answer of S3 has a DTD; one that does is refused before it can
   declare an entity (the "billion laughs"). */
static void XMLCALL
on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int internal)
{
	stop(arg);
}

enum pf_status
s3xml_walk(const char *p, size_t n, s3xml_fn fn, void *arg, char *root,
    size_t rootcap)
{
	struct walk w;
	enum pf_status rc = PF_EIO;

	memset(&w, 0, sizeof(w));
	w.fn = fn;
	w.arg = arg;
	w.root = root;
	w.rootcap = rootcap;
	if (rootcap > 0)
		root[0] = '\0';
	if (n > (size_t)INT_MAX)
		return PF_EIO;
	if ((w.parser = XML_ParserCreate("UTF-8")) == NULL) {
		log_error("%s: XML_ParserCreate", __func__);
		return PF_ENOMEM;
	}
	XML_SetUserData(w.parser, &w);
	XML_SetElementHandler(w.parser, on_start, on_end);
	XML_SetCharacterDataHandler(w.parser, on_text);
	XML_SetStartDoctypeDeclHandler(w.parser, on_doctype);
	if (XML_Parse(w.parser, p, (int)n, XML_TRUE) != XML_STATUS_OK ||
	    w.failed) {
		log_debug("%s: %s at line %lu", __func__,
		    w.failed ? "refused" :
		    XML_ErrorString(XML_GetErrorCode(w.parser)),
		    (unsigned long)XML_GetCurrentLineNumber(w.parser));
		goto out;
	}
	rc = PF_OK;
out:
	XML_ParserFree(w.parser);
	return rc;
}
