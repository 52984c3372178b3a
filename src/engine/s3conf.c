/* SPDX-License-Identifier: MIT */
/* The S3 store's settings checked before any request is made. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "s3.h"

#define S3_PREFIX_MAX	512
#define S3_REGION_MAX	32

static bool
lower_or_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Four dot-separated runs of digits: S3 refuses such bucket names. */
static bool
looks_like_ipv4(const char *b)
{
	int dots = 0;

	for (; *b != '\0'; b++) {
		if (*b == '.')
			dots++;
		else if (*b < '0' || *b > '9')
			return false;
	}
	return dots == 3;
}

static const char *
bucket_problem(const char *b)
{
	size_t n = b != NULL ? strlen(b) : 0, i;

	if (n < 3 || n > 63)
		return "must have 3 to 63 characters";
	for (i = 0; i < n; i++)
		if (!lower_or_digit(b[i]) && b[i] != '.' && b[i] != '-')
			return "may hold only a-z, 0-9, '.' and '-'";
	if (!lower_or_digit(b[0]) || !lower_or_digit(b[n - 1]))
		return "must begin and end with a letter or digit";
	if (strstr(b, "..") != NULL)
		return "must not hold \"..\"";
	if (looks_like_ipv4(b))
		return "must not look like an IP address";
	return NULL;
}

/* A prefix's segments ("a/b/"): none empty, "." or "..". */
static const char *
prefix_problem(const char *p)
{
	const char *seg, *end;
	size_t n = strlen(p), k;

	if (n > S3_PREFIX_MAX)
		return "is longer than 512 bytes";
	for (k = 0; k < n; k++)
		if ((unsigned char)p[k] < 0x20 || p[k] == 0x7f)
			return "holds a control character";
	for (seg = p; *seg != '\0'; seg = *end != '\0' ? end + 1 : end) {
		end = strchr(seg, '/');
		if (end == NULL)
			end = seg + strlen(seg);
		k = (size_t)(end - seg);
		if (k == 0 || (k == 1 && seg[0] == '.') ||
		    (k == 2 && seg[0] == '.' && seg[1] == '.'))
			return "has an empty, '.' or '..' segment";
	}
	return NULL;
}

/* HOST[:PORT] of an endpoint: a name, an IPv4 address or [IPv6]. */
static const char *
authority_problem(const char *a)
{
	const char *port, *c;
	long v;
	char *end;

	if (*a == '\0')
		return "has no host";
	if (strpbrk(a, "/?#@ \t") != NULL)
		return "must be http(s)://HOST[:PORT], without path, query "
		    "or user";
	if (*a == '[') {
		if ((c = strchr(a, ']')) == NULL)
			return "has an unclosed '['";
		port = c[1] == ':' ? c + 1 : NULL;
		if (c[1] != '\0' && port == NULL)
			return "has text after ']'";
	} else {
		port = strchr(a, ':');
		if (port == a)
			return "has no host";
	}
	if (port == NULL)
		return NULL;
	v = strtol(port + 1, &end, 10);
	if (port[1] < '0' || port[1] > '9' || *end != '\0' || v < 1 ||
	    v > 65535)
		return "has a port that is not 1 to 65535";
	return NULL;
}

static const char *
endpoint_problem(const char *e)
{
	const char *a;
	size_t n;

	if (e == NULL)
		return "is not set";
	if (strncmp(e, "http://", 7) == 0)
		a = e + 7;
	else if (strncmp(e, "https://", 8) == 0)
		a = e + 8;
	else
		return "must start with http:// or https://";
	n = strlen(a);
	if (n > 0 && a[n - 1] == '/')
		return "must not end with '/'";
	return authority_problem(a);
}

static const char *
region_problem(const char *r)
{
	size_t n = r != NULL ? strlen(r) : 0, i;

	if (n < 1 || n > S3_REGION_MAX)
		return "must have 1 to 32 characters";
	for (i = 0; i < n; i++)
		if (!lower_or_digit(r[i]) && r[i] != '-')
			return "may hold only a-z, 0-9 and '-'";
	return NULL;
}

enum pf_status
s3_config_target(struct s3_config *cfg, const char *target)
{
	const char *b, *slash, *why;
	char *bucket = NULL, *prefix = NULL;
	size_t n;

	if (strncmp(target, "s3://", 5) != 0) {
		log_error("storage %s: an S3 target is s3://BUCKET/PREFIX",
		    target);
		return PF_EUSAGE;
	}
	b = target + 5;
	slash = strchr(b, '/');
	n = slash != NULL ? (size_t)(slash - b) : strlen(b);
	if ((bucket = strndup(b, n)) == NULL ||
	    (prefix = malloc(strlen(b) - n + 2)) == NULL)
		goto nomem;
	/* "a/b" and "a/b/" name the same place: keys start "a/b/". */
	strcpy(prefix, slash != NULL ? slash + 1 : "");
	n = strlen(prefix);
	if (n > 0 && prefix[n - 1] != '/')
		strcpy(prefix + n, "/");
	if ((why = bucket_problem(bucket)) != NULL) {
		log_error("storage %s: bucket name %s", target, why);
		goto usage;
	}
	if ((why = prefix_problem(prefix)) != NULL) {
		log_error("storage %s: the prefix %s", target, why);
		goto usage;
	}
	free(cfg->bucket);
	free(cfg->prefix);
	cfg->bucket = bucket;
	cfg->prefix = prefix;
	return PF_OK;
nomem:
	free(bucket);
	free(prefix);
	return PF_ENOMEM;
usage:
	free(bucket);
	free(prefix);
	return PF_EUSAGE;
}

enum pf_status
s3_config_check(const struct s3_config *cfg)
{
	const char *why, *what;

	if ((why = endpoint_problem(cfg->endpoint)) != NULL)
		what = "S3 endpoint";
	else if ((why = region_problem(cfg->region)) != NULL)
		what = "S3 region";
	else if ((why = bucket_problem(cfg->bucket)) != NULL)
		what = "S3 bucket name";
	else if ((why = prefix_problem(cfg->prefix != NULL ? cfg->prefix :
	    "")) != NULL)
		what = "S3 prefix";
	else if (cfg->access_key == NULL || *cfg->access_key == '\0' ||
	    cfg->secret_key == NULL || *cfg->secret_key == '\0') {
		what = "S3 credentials";
		why = "are not set";
	} else if (cfg->attempts < 1 || cfg->attempts > 20) {
		what = "S3 attempts";
		why = "must be 1 to 20";
	} else if (cfg->page < 1 || cfg->page > 1000) {
		what = "S3 list page";
		why = "must be 1 to 1000";
	} else
		return PF_OK;
	log_error("%s %s", what, why);
	return PF_EUSAGE;
}
