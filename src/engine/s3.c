/* SPDX-License-Identifier: MIT */
/* The S3 client's core: configuration, signed requests, tries, errors. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "clock.h"
#include "digest.h"
#include "log.h"
#include "s3_int.h"
#include "s3xml.h"

#define S3_BACKOFF_MAX_MS	2000
#define S3_CRED_LINE		512

struct s3 {
	const struct s3_config	*cfg;
	CURL			*curl;
	struct s3_error		 err;
	struct s3_stats		 st;
	char			 sigv4[128];	/* "aws:amz:REGION:s3" */
	char			 errbuf[CURL_ERROR_SIZE];
};

/* What one try sends and has received. */
struct io {
	struct s3		*s;
	struct s3_req		*r;
	size_t			 sent;		/* of r->body */
	uint64_t		 delivered;	/* to r->sink */
	bool			 sink_stopped;
	const char		*bad;		/* why the answer was
						   refused, or NULL */
};

/*
 * Requests by operation and outcome, and their latencies: process-wide
 * counters every thread adds to with relaxed atomics (no lock per
 * request), read whole by s3_metrics_get for /metrics.
 */
static const char *const op_names[S3_METRIC_OPS] = {
	"put", "get", "head", "delete", "delete_keys", "create_upload",
	"put_part", "list_parts", "complete", "abort", "list_uploads",
	"list", "other"
};
static const char *const code_names[S3_METRIC_CODES] = {
	"2xx", "3xx", "4xx", "5xx", "none"
};
const uint64_t s3_metric_bounds_us[S3_METRIC_BUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000
};
static _Atomic uint64_t m_requests[S3_METRIC_OPS][S3_METRIC_CODES];
static _Atomic uint64_t m_hist[S3_METRIC_OPS][S3_METRIC_BUCKETS + 1];
static _Atomic uint64_t m_sum_us[S3_METRIC_OPS];

const char *
s3_metric_op_name(unsigned op)
{
	return op < S3_METRIC_OPS ? op_names[op] : "other";
}

const char *
s3_metric_code_name(unsigned code)
{
	return code < S3_METRIC_CODES ? code_names[code] : "none";
}

/* True if query (names sorted, "a=x&b=y") names the parameter name. */
static bool
has_param(const char *query, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = query; p != NULL && *p != '\0';
	    p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
		if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == '&' ||
		    p[n] == '\0'))
			return true;
	return false;
}

/* The operation r is, from its method and query (s3ops.c, s3list.c). */
static enum s3_op
op_of(const struct s3_req *r)
{
	const char *q = r->query != NULL ? r->query : "";
	bool upload = has_param(q, "uploadId");

	if (strcmp(r->method, "PUT") == 0)
		return has_param(q, "partNumber") ? S3_OP_PUT_PART : S3_OP_PUT;
	if (strcmp(r->method, "HEAD") == 0)
		return S3_OP_HEAD;
	if (strcmp(r->method, "DELETE") == 0)
		return upload ? S3_OP_ABORT : S3_OP_DELETE;
	if (strcmp(r->method, "POST") == 0)
		return has_param(q, "delete") ? S3_OP_DELETE_KEYS :
		    has_param(q, "uploads") ? S3_OP_CREATE_UPLOAD :
		    upload ? S3_OP_COMPLETE : S3_OP_OTHER;
	if (strcmp(r->method, "GET") != 0)
		return S3_OP_OTHER;
	if (has_param(q, "list-type"))
		return S3_OP_LIST;
	if (has_param(q, "uploads"))
		return S3_OP_LIST_UPLOADS;
	return upload ? S3_OP_LIST_PARTS : S3_OP_GET;
}

/* Counts one request of op that took us, answered http (0: none). */
static void
count(enum s3_op op, long http, uint64_t us)
{
	unsigned code = http >= 200 && http < 600 ? (unsigned)(http / 100 - 2)
	    : 4;
	unsigned b = 0;

	while (b < S3_METRIC_BUCKETS && us > s3_metric_bounds_us[b])
		b++;
	atomic_fetch_add_explicit(&m_requests[op][code], 1,
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&m_hist[op][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m_sum_us[op], us, memory_order_relaxed);
}

void
s3_metrics_get(struct s3_metrics *out)
{
	for (unsigned op = 0; op < S3_METRIC_OPS; op++) {
		uint64_t sum = 0;

		for (unsigned c = 0; c < S3_METRIC_CODES; c++)
			out->requests[op][c] = atomic_load_explicit(
			    &m_requests[op][c], memory_order_relaxed);
		/* Kept per bucket, given cumulative as Prometheus wants. */
		for (unsigned b = 0; b <= S3_METRIC_BUCKETS; b++) {
			sum += atomic_load_explicit(&m_hist[op][b],
			    memory_order_relaxed);
			out->hist[op][b] = sum;
		}
		out->sum_us[op] = atomic_load_explicit(&m_sum_us[op],
		    memory_order_relaxed);
	}
}

void
s3_config_defaults(struct s3_config *cfg)
{
	cfg->attempts = 5;
	cfg->backoff_ms = 100;
	cfg->stall_s = 30;
	cfg->page = 1000;
}

/* value LINE NAME: the text after "NAME =" on a credentials line. */
static char *
cred_value(char *line, const char *name)
{
	size_t n = strlen(name);
	char *v, *end;

	while (isspace((unsigned char)*line))
		line++;
	if (strncasecmp(line, name, n) != 0)
		return NULL;
	v = line + n;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v++ != '=')
		return NULL;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return v;
}

static enum pf_status
cred_file(struct s3_config *cfg, const char *file)
{
	char line[S3_CRED_LINE], *v;
	bool in_default = true;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL) {
		log_error("S3 credentials file %s: %s", file, strerror(errno));
		return PF_EUSAGE;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '[') {
			in_default = strncmp(line, "[default]", 9) == 0;
			continue;
		}
		if (!in_default)
			continue;
		if ((v = cred_value(line, "aws_access_key_id")) != NULL &&
		    cfg->access_key == NULL)
			cfg->access_key = strdup(v);
		else if ((v = cred_value(line, "aws_secret_access_key")) !=
		    NULL && cfg->secret_key == NULL)
			cfg->secret_key = strdup(v);
	}
	pf_wipe(line, sizeof(line));
	fclose(f);
	return PF_OK;
}

enum pf_status
s3_config_credentials(struct s3_config *cfg, const char *file)
{
	const char *ak = getenv("AWS_ACCESS_KEY_ID");
	const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
	enum pf_status rc;

	free(cfg->access_key);
	if (cfg->secret_key != NULL)
		pf_wipe(cfg->secret_key, strlen(cfg->secret_key));
	free(cfg->secret_key);
	cfg->access_key = cfg->secret_key = NULL;
	if (ak != NULL && *ak != '\0' && sk != NULL && *sk != '\0') {
		cfg->access_key = strdup(ak);
		cfg->secret_key = strdup(sk);
	} else if (file != NULL) {
		if ((rc = cred_file(cfg, file)) != PF_OK)
			return rc;
	}
	if (cfg->access_key == NULL || cfg->secret_key == NULL ||
	    *cfg->access_key == '\0' || *cfg->secret_key == '\0') {
		log_error("S3 credentials: set AWS_ACCESS_KEY_ID and "
		    "AWS_SECRET_ACCESS_KEY, or give a file with "
		    "aws_access_key_id and aws_secret_access_key");
		return PF_EUSAGE;
	}
	return PF_OK;
}

void
s3_config_clear(struct s3_config *cfg)
{
	if (cfg->secret_key != NULL)
		pf_wipe(cfg->secret_key, strlen(cfg->secret_key));
	free(cfg->endpoint);
	free(cfg->region);
	free(cfg->bucket);
	free(cfg->prefix);
	free(cfg->access_key);
	free(cfg->secret_key);
	memset(cfg, 0, sizeof(*cfg));
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

/* curl_global_init is not thread-safe in every libcurl, and each call
   wants its own curl_global_cleanup: once for the process. */
static void
global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

enum pf_status
s3_global_init(void)
{
	(void)pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		log_error("%s: curl_global_init failed", __func__);
		return PF_EINTERNAL;
	}
	return PF_OK;
}

struct s3 *
s3_new(const struct s3_config *cfg)
{
	struct s3 *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->cfg = cfg;
	snprintf(s->sigv4, sizeof(s->sigv4), "aws:amz:%s:s3",
	    cfg->region != NULL ? cfg->region : "us-east-1");
	if ((s->curl = curl_easy_init()) == NULL) {
		free(s);
		return NULL;
	}
	return s;
}

void
s3_free(struct s3 *s)
{
	if (s == NULL)
		return;
	curl_easy_cleanup(s->curl);
	free(s);
}

const struct s3_error *
s3_last_error(const struct s3 *s)
{
	return &s->err;
}

void
s3_set_error(struct s3 *s, const char *code, const char *message)
{
	snprintf(s->err.code, sizeof(s->err.code), "%s", code);
	snprintf(s->err.message, sizeof(s->err.message), "%s", message);
}

const struct s3_config *
s3_cfg(const struct s3 *s)
{
	return s->cfg;
}

unsigned
s3_page(const struct s3 *s)
{
	return s->cfg->page > 0 && s->cfg->page <= 1000 ? s->cfg->page : 1000;
}

void
s3_get_stats(const struct s3 *s, struct s3_stats *st)
{
	*st = s->st;
}

const char *
s3_describe(const struct s3 *s, char *buf, size_t n)
{
	const struct s3_error *e = &s->err;

	if (e->http == 0)
		snprintf(buf, n, "no answer from the store: %s, %u tr%s",
		    e->message[0] != '\0' ? e->message : "unknown",
		    e->tries, e->tries == 1 ? "y" : "ies");
	else
		snprintf(buf, n, "HTTP %ld %s%s%s%s%s, %u tr%s", e->http,
		    e->code[0] != '\0' ? e->code : "(no S3 code)",
		    e->message[0] != '\0' ? ": " : "", e->message,
		    e->request_id[0] != '\0' ? ", request " : "",
		    e->request_id, e->tries, e->tries == 1 ? "y" : "ies");
	return buf;
}

int64_t
s3_parse_time(const char *text)
{
	struct tm tm;
	int y, mo, d, h, mi, sec;

	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi,
	    &sec) != 6 || y < 1970 || mo < 1 || mo > 12)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm);
}

bool
s3_encode(struct pf_buf *b, const char *text, bool keep_slash)
{
	const unsigned char *c;

	for (c = (const unsigned char *)text; *c != '\0'; c++) {
		if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		    (*c >= '0' && *c <= '9') || *c == '-' || *c == '.' ||
		    *c == '_' || *c == '~' || (keep_slash && *c == '/'))
			pf_buf_add(b, c, 1);
		else
			pf_buf_printf(b, "%%%02X", *c);
	}
	return !b->failed;
}

/* The status an HTTP answer and S3 error code map to (s3.h lists them). */
static enum pf_status
status_of(long http, const char *code)
{
	if (strcmp(code, "BadDigest") == 0 ||
	    strcmp(code, "XAmzContentSHA256Mismatch") == 0)
		return PF_ECHECKSUM;
	if (strcmp(code, "QuotaExceeded") == 0)
		return PF_EQUOTA;
	if (strcmp(code, "EntityTooLarge") == 0 || http == 416)
		return PF_ETOOLARGE;
	if (http == 401 || http == 403)
		return PF_EAUTH;
	if (http == 404)
		return PF_ENOSESSION;
	if (http == 409 || http == 412)
		return PF_EBUSY;
	if (http >= 400 && http < 500)
		return PF_EPROTO;
	return PF_EIO;
}

static bool
error_field(void *arg, int depth, const char *name, const char *text)
{
	struct s3_error *e = arg;

	if (depth != 2)
		return true;
	if (strcmp(name, "Code") == 0)
		snprintf(e->code, sizeof(e->code), "%s", text);
	else if (strcmp(name, "Message") == 0)
		snprintf(e->message, sizeof(e->message), "%s", text);
	else if (strcmp(name, "RequestId") == 0)
		snprintf(e->request_id, sizeof(e->request_id), "%s", text);
	return true;
}

enum pf_status
s3_answer_error(struct s3 *s, struct s3_req *r)
{
	char root[32];

	s->err.code[0] = s->err.message[0] = '\0';
	if (r->answer.len > 0 &&
	    s3xml_walk(r->answer.p, r->answer.len, error_field, &s->err, root,
	    sizeof(root)) == PF_OK && strcmp(root, "Error") != 0)
		s->err.code[0] = '\0';
	if (r->http >= 200 && r->http < 300 && s->err.code[0] == '\0')
		snprintf(s->err.code, sizeof(s->err.code), "InternalError");
	return status_of(r->http, s->err.code);
}

/* Response headers: the ETag, the length, the request id for logs. */
static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct io *io = arg;
	size_t len = size * n, k;
	char line[256], *v;

	k = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
	memcpy(line, p, k);
	line[k] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if ((v = strchr(line, ':')) == NULL)
		return len;
	*v++ = '\0';
	v += strspn(v, " \t");
	if (strcasecmp(line, "ETag") == 0)
		snprintf(io->r->etag, sizeof(io->r->etag), "%s", v);
	else if (strcasecmp(line, "Content-Length") == 0)
		io->r->length = strtoull(v, NULL, 10);
	else if (strcasecmp(line, "x-amz-request-id") == 0)
		snprintf(io->s->err.request_id, sizeof(io->s->err.request_id),
		    "%s", v);
	return len;
}

/* The body: a 2xx one to the sink if there is one, the rest kept (up to
   S3_ANSWER_MAX: past that the transfer stops). */
static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct io *io = arg;
	size_t len = size * n;
	long http = 0;

	curl_easy_getinfo(io->s->curl, CURLINFO_RESPONSE_CODE, &http);
	/* A store that ignores Range answers 200 with the whole object:
	   those bytes are not the ones the sink asked for. */
	if (io->r->sink != NULL && io->r->ranged && http == 200) {
		io->bad = "the whole object (200) for a ranged GET";
		return 0;
	}
	if (io->r->sink != NULL && http >= 200 && http < 300) {
		if (!io->r->sink(io->r->arg, p, len)) {
			io->sink_stopped = true;
			return 0;
		}
		io->delivered += len;
		return len;
	}
	if (!pf_buf_add(&io->r->answer, p, len)) {
		io->bad = "an answer over S3_ANSWER_MAX bytes";
		return 0;
	}
	return len;
}

static size_t
on_read(char *p, size_t size, size_t n, void *arg)
{
	struct io *io = arg;
	size_t k = io->r->len - io->sent;

	if (k > size * n)
		k = size * n;
	memcpy(p, (const char *)io->r->body + io->sent, k);
	io->sent += k;
	return k;
}

/* libcurl rewinds the body when it must send it again. */
static int
on_seek(void *arg, curl_off_t off, int origin)
{
	struct io *io = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > io->r->len)
		return CURL_SEEKFUNC_CANTSEEK;
	io->sent = (size_t)off;
	return CURL_SEEKFUNC_OK;
}

/* The URL, path style (http://host:port/bucket/key?query): names in the
   host do not resolve on a loopback store. */
static bool
make_url(const struct s3 *s, const struct s3_req *r, struct pf_buf *url)
{
	pf_buf_printf(url, "%s/", s->cfg->endpoint);
	s3_encode(url, s->cfg->bucket, false);
	if (r->key != NULL) {
		pf_buf_add(url, "/", 1);
		s3_encode(url, r->key, true);
	}
	if (r->query != NULL)
		pf_buf_printf(url, "?%s", r->query);
	return !url->failed;
}

/*
 * Content-MD5, which S3 requires of DeleteObjects. libcurl 7.88 signs
 * every header the caller sets, this one too, as SigV4 allows.
 */
static bool
add_md5(struct curl_slist **h, const struct s3_req *r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char line[64];
	char *b64;
	struct curl_slist *h2;

	if (EVP_Digest(r->body, r->len, md, &mdlen, EVP_md5(), NULL) != 1 ||
	    (b64 = pf_base64_encode(md, mdlen)) == NULL)
		return false;
	snprintf(line, sizeof(line), "Content-MD5: %s", b64);
	free(b64);
	if ((h2 = curl_slist_append(*h, line)) == NULL)
		return false;
	*h = h2;
	return true;
}

/*
 * The payload hash header. libcurl 7.88 signs sha256("") unless this
 * header is there, while RGW then assumes UNSIGNED-PAYLOAD: every request
 * would fail with SignatureDoesNotMatch. With the body's real digest the
 * store also refuses a body changed on the way.
 */
static struct curl_slist *
make_headers(const struct s3_req *r)
{
	uint8_t md[PF_SHA256_LEN];
	char line[64 + PF_SHA256_LEN * 2 + 1];
	struct curl_slist *h, *h2;

	if (r->sha256 != NULL)
		memcpy(md, r->sha256, sizeof(md));
	else if (pf_sha256(r->body, r->len, md) != PF_OK)
		return NULL;
	memcpy(line, "x-amz-content-sha256: ", 22);
	pf_hex_encode(md, sizeof(md), line + 22);
	if ((h = curl_slist_append(NULL, line)) == NULL)
		return NULL;
	if (r->md5 && !add_md5(&h, r)) {
		curl_slist_free_all(h);
		return NULL;
	}
	if (r->header != NULL) {
		if ((h2 = curl_slist_append(h, r->header)) == NULL) {
			curl_slist_free_all(h);
			return NULL;
		}
		h = h2;
	}
	return h;
}

static bool
set_method(CURL *c, const struct s3_req *r, struct io *io)
{
	if (strcmp(r->method, "PUT") == 0)
		/* A length, not chunked encoding: RGW answers that 411. */
		return curl_easy_setopt(c, CURLOPT_UPLOAD, 1L) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read) ==
		    CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_READDATA, io) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek) ==
		    CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_SEEKDATA, io) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)r->len) == CURLE_OK;
	if (strcmp(r->method, "POST") == 0)
		return curl_easy_setopt(c, CURLOPT_POST, 1L) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
		    r->len > 0 ? (const char *)r->body : "") == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->len) == CURLE_OK;
	if (strcmp(r->method, "HEAD") == 0)
		return curl_easy_setopt(c, CURLOPT_NOBODY, 1L) == CURLE_OK;
	if (strcmp(r->method, "GET") != 0)
		return curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method) ==
		    CURLE_OK;
	return true;
}

/*
 * The options that decide what is sent, where, and how it is signed. One
 * that libcurl refuses (out of memory; a libcurl without SigV4) fails the
 * request rather than sending another, unsigned or squashed, one.
 */
static bool
set_request(struct s3 *s, const struct s3_req *r, const char *url,
    struct curl_slist *headers)
{
	CURL *c = s->curl;

	return curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") ==
	    CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_USERNAME, s->cfg->access_key) ==
	    CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_PASSWORD, s->cfg->secret_key) ==
	    CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
	    /* A key is a name, not a path: without this libcurl squashes
	       "./" and "../" segments, and key "a/../b" writes object "b". */
	    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L) == CURLE_OK &&
	    /* libcurl sends a request again by itself when a reused
	       connection dies before the answer: a request that MUST NOT
	       be acted on twice gets a connection of its own. */
	    (!r->once ||
	    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK);
}

/* One try of r: its CURLcode; r->http gets the status if one came. */
static CURLcode
try_once(struct s3 *s, struct s3_req *r, const char *url,
    struct curl_slist *headers, struct io *io)
{
	CURL *c = s->curl;
	long stall = s->cfg->stall_s > 0 ? (long)s->cfg->stall_s : 30;
	long connects = 0;
	CURLcode cc;

	/* A reset keeps the handle's connections: the next try, and the
	   next request, reuse them. */
	curl_easy_reset(c);
	memset(io, 0, sizeof(*io));
	io->s = s;
	io->r = r;
	r->http = 0;
	r->etag[0] = '\0';
	r->length = 0;
	pf_buf_free(&r->answer);
	s->errbuf[0] = '\0';
	if (!set_request(s, r, url, headers) || !set_method(c, r, io))
		return CURLE_FAILED_INIT;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, io);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, io);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, stall < 10 ? stall : 10L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->http);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	s->st.tries++;
	s->st.connects += (uint64_t)connects;
	return cc;
}

/*
 * Worth another try: the store was unreachable or said it failed. A
 * request that MUST NOT be acted on twice is not sent again once it may
 * have reached the store (the answer was lost): a conditional PUT would
 * then fail on its own object (412), a complete on its own upload (404),
 * a create would leave an upload behind.
 */
static bool
transient(CURLcode cc, long http, bool once)
{
	if (once && cc != CURLE_OK && cc != CURLE_COULDNT_CONNECT)
		return false;
	switch (cc) {
	case CURLE_OK:
		return http >= 500 || http == 408 || http == 429;
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

/* Waits before try n + 1: doubling from cfg->backoff_ms, at most 2 s,
   each wait between half and all of that, so clients spread out. */
static void
back_off(const struct s3 *s, unsigned n)
{
	uint64_t ms = s->cfg->backoff_ms;
	uint32_t r = 0;
	struct timespec ts;

	while (n-- > 1 && ms < S3_BACKOFF_MAX_MS)
		ms *= 2;
	if (ms > S3_BACKOFF_MAX_MS)
		ms = S3_BACKOFF_MAX_MS;
	if (ms == 0)
		return;
	(void)pf_random(&r, sizeof(r));
	ms = ms / 2 + r % (ms / 2 + 1);
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* The status of a try that got no answer; its curl message kept. */
static enum pf_status
no_answer(struct s3 *s, CURLcode cc, const struct io *io)
{
	s->err.curl = (int)cc;
	snprintf(s->err.message, sizeof(s->err.message), "%s",
	    s->errbuf[0] != '\0' ? s->errbuf : curl_easy_strerror(cc));
	if (io->bad != NULL)
		snprintf(s->err.message, sizeof(s->err.message), "%s",
		    io->bad);
	if (cc == CURLE_FAILED_INIT) {
		snprintf(s->err.message, sizeof(s->err.message),
		    "libcurl refused an option of the request");
		return PF_EINTERNAL;
	}
	if (io->sink_stopped || io->bad != NULL)
		return PF_EIO;
	return cc == CURLE_OPERATION_TIMEDOUT ? PF_ETIMEOUT : PF_ENET;
}

enum pf_status
s3_request(struct s3 *s, struct s3_req *r)
{
	enum pf_status rc = PF_ENOMEM;
	struct curl_slist *headers = NULL;
	struct pf_buf url;
	struct io io;
	unsigned attempts = s->cfg->attempts > 0 ? s->cfg->attempts : 1;
	CURLcode cc = CURLE_OK;
	uint64_t t0 = pf_now_us();

	memset(&s->err, 0, sizeof(s->err));
	pf_buf_init(&url, S3_KEY_MAX * 3 + 4096);
	pf_buf_init(&r->answer, S3_ANSWER_MAX);
	if (!make_url(s, r, &url) || (headers = make_headers(r)) == NULL)
		goto out;
	s->st.requests++;
	for (s->err.tries = 1;; s->err.tries++) {
		s->err.request_id[0] = '\0';
		cc = try_once(s, r, url.p, headers, &io);
		if (s->err.tries >= attempts || io.delivered > 0 ||
		    io.sink_stopped || io.bad != NULL ||
		    !transient(cc, r->http, r->once))
			break;
		log_debug("S3 %s %s: try %u failed (%s, HTTP %ld), again",
		    r->method, r->key != NULL ? r->key : "", s->err.tries,
		    curl_easy_strerror(cc), r->http);
		back_off(s, s->err.tries);
	}
	s->err.http = cc == CURLE_OK ? r->http : 0;
	if (cc != CURLE_OK)
		rc = no_answer(s, cc, &io);
	else if (r->http >= 200 && r->http < 300)
		rc = PF_OK;
	else
		rc = s3_answer_error(s, r);
	count(op_of(r), s->err.http, pf_now_us() - t0);
out:
	curl_slist_free_all(headers);
	pf_buf_free(&url);
	return rc;
}
