/* SPDX-License-Identifier: MIT */
/* Unit tests of the S3 client's XML walk (s3xml.c) on hostile answers. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "s3xml.h"

/* What the walk reported, as "depth:name=text;" pieces. */
struct seen {
	char	text[1024];
};

static bool
record(void *arg, int depth, const char *name, const char *text)
{
	struct seen *s = arg;
	size_t n = strlen(s->text);

	snprintf(s->text + n, sizeof(s->text) - n, "%d:%s=%s;", depth, name,
	    text);
	return true;
}

static enum pf_status
walk(const char *xml, struct seen *s, char *root, size_t rootcap)
{
	memset(s, 0, sizeof(*s));
	return s3xml_walk(xml, strlen(xml), record, s, root, rootcap);
}

static void
test_list_parts(void **state)
{
	const char *xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	    "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/"
	    "2006-03-01/\"><IsTruncated>true</IsTruncated><Part>"
	    "<PartNumber>1</PartNumber><ETag>&quot;ab&quot;</ETag></Part>"
	    "</ListPartsResult>";
	struct seen s;
	char root[32];

	assert_int_equal(walk(xml, &s, root, sizeof(root)), PF_OK);
	assert_string_equal(root, "ListPartsResult");
	assert_string_equal(s.text, "2:IsTruncated=true;3:PartNumber=1;"
	    "3:ETag=\"ab\";2:Part=;1:ListPartsResult=;");
}

static void
test_error_root(void **state)
{
	struct seen s;
	char root[32];

	assert_int_equal(walk("<Error><Code>NoSuchUpload</Code>"
	    "<Message></Message></Error>", &s, root, sizeof(root)), PF_OK);
	assert_string_equal(root, "Error");
	assert_string_equal(s.text, "2:Code=NoSuchUpload;2:Message=;"
	    "1:Error=;");
}

/* A DTD could declare entities that expand a few bytes into gigabytes:
   no answer of S3 has one, so any is refused. */
static void
test_dtd_refused(void **state)
{
	struct seen s;
	char root[32];

	assert_int_equal(walk("<?xml version=\"1.0\"?><!DOCTYPE a ["
	    "<!ENTITY x \"xxxxxxxxxx\"><!ENTITY y \"&x;&x;&x;&x;&x;\">]>"
	    "<a>&y;</a>", &s, root, sizeof(root)), PF_EIO);
	assert_string_equal(s.text, "");
}

static void
test_limits(void **state)
{
	static char big[S3XML_TEXT_MAX + 64];
	struct seen s;
	char root[32];

	assert_int_equal(walk("<a><b><c><d><e><f><g><h><i>x</i></h></g></f>"
	    "</e></d></c></b></a>", &s, root, sizeof(root)), PF_EIO);
	assert_int_equal(walk("<a><b><c><d><e><f><g><h>x</h></g></f>"
	    "</e></d></c></b></a>", &s, root, sizeof(root)), PF_OK);
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "<a>", 3);
	memcpy(big + sizeof(big) - 5, "</a>", 5);
	assert_int_equal(walk(big, &s, root, sizeof(root)), PF_EIO);
	assert_int_equal(walk("<a><b>1</b>", &s, root, sizeof(root)),
	    PF_EIO);
	assert_int_equal(walk("", &s, root, sizeof(root)), PF_EIO);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_parts),
		cmocka_unit_test(test_error_root),
		cmocka_unit_test(test_dtd_refused),
		cmocka_unit_test(test_limits),
	};

	pf_log_set_level(PF_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
