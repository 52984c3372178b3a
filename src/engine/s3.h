/* SPDX-License-Identifier: MIT */
/* An S3 client over libcurl: objects and multipart uploads in one bucket. */
#ifndef PF_S3_H
#define PF_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define S3_KEY_MAX	1024	/* bytes of an object key, as S3 allows */
#define S3_ETAG_MAX	80	/* an ETag, quotes and NUL included */
#define S3_ID_MAX	256	/* an upload id, NUL included */
#define S3_PART_MAX	10000	/* part numbers are 1..S3_PART_MAX */
#define S3_DELETE_MAX	1000	/* keys of one DeleteObjects request */

/*
 * Where the store is and how to sign for it. Filled by the caller, then
 * shared read-only by every struct s3 made from it: it MUST outlive them.
 * Strings are the config's own (s3_config_clear frees them and wipes the
 * secret). The secret is never logged.
 */
struct s3_config {
	char		*endpoint;	/* "http://127.0.0.1:8000", no path */
	char		*region;	/* SigV4 region; RGW accepts any */
	char		*bucket;
	char		*prefix;	/* "" or ending in '/': where the
					   engine's keys start */
	char		*access_key;
	char		*secret_key;
	unsigned	 attempts;	/* tries per request (>= 1) */
	unsigned	 backoff_ms;	/* first wait between tries */
	unsigned	 stall_s;	/* a transfer without a byte for this
					   long is a failed try */
	unsigned	 page;		/* entries per list request (1..1000) */
};

/*
 * Fills cfg's defaults: region us-east-1, 5 attempts, 100 ms first
 * back-off (doubled each time, at most 2 s), 30 s stall, pages of 1000.
 */
void s3_config_defaults(struct s3_config *cfg);

/*
 * Sets cfg's keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY if
 * both are set, else from file (may be NULL): lines "aws_access_key_id =
 * X" and "aws_secret_access_key = Y", before any "[section]" or in
 * "[default]", as in ~/.aws/credentials. PF_EUSAGE (logged, without the
 * secret) if neither gives both keys or the file cannot be read.
 */
enum pf_status s3_config_credentials(struct s3_config *cfg, const char *file);

/*
 * Parses a storage target "s3://BUCKET" or "s3://BUCKET/PREFIX" into
 * cfg->bucket and cfg->prefix ("" or PREFIX ending in '/'). PF_EUSAGE,
 * with the reason logged, for anything else: see s3_config_check for the
 * rules of each part.
 */
enum pf_status s3_config_target(struct s3_config *cfg, const char *target);

/*
 * Checks a filled cfg before any request: the endpoint is
 * http(s)://HOST[:PORT] with no path, query or user; the region is 1 to
 * 32 of [a-z0-9-] (it goes into libcurl's colon-separated SigV4 scope);
 * the bucket follows S3's naming rules (3 to 63 of [a-z0-9.-], a letter
 * or digit at each end, no "..", not an IPv4 address); the prefix is at
 * most 512 bytes, without control characters, a leading '/', empty, "."
 * or ".." segments; the keys are set; attempts 1 to 20, page 1 to 1000.
 * PF_EUSAGE with the first problem logged; the secret is never shown.
 */
enum pf_status s3_config_check(const struct s3_config *cfg);

/* Frees cfg's strings (wiping the secret); cfg may be all zero. */
void s3_config_clear(struct s3_config *cfg);

/*
 * libcurl's global init, done once however often it is called, from any
 * thread (a pthread_once), before the first struct s3 is made.
 */
enum pf_status s3_global_init(void);

/*
 * What the store said last, kept for logs: the HTTP status (0 if none
 * came), S3's error code and message ("NoSuchUpload"), its request id,
 * and how many tries the request took.
 */
struct s3_error {
	long		 http;
	char		 code[64];
	char		 message[256];
	char		 request_id[96];
	unsigned	 tries;
	int		 curl;		/* the last try's CURLcode, or 0 */
};

/* Requests made, tries (first and repeated) and new connections opened. */
struct s3_stats {
	uint64_t	requests, tries, connects;
};

/*
 * What every request of this process cost, for /metrics: counts by
 * operation and outcome (the HTTP status class, or none: no answer), and
 * a latency histogram per operation (a request's whole time, its tries
 * and back-offs included). Counted with relaxed atomics, no lock.
 */
enum s3_op {
	S3_OP_PUT, S3_OP_GET, S3_OP_HEAD, S3_OP_DELETE, S3_OP_DELETE_KEYS,
	S3_OP_CREATE_UPLOAD, S3_OP_PUT_PART, S3_OP_LIST_PARTS,
	S3_OP_COMPLETE, S3_OP_ABORT, S3_OP_LIST_UPLOADS, S3_OP_LIST,
	S3_OP_OTHER
};
#define S3_METRIC_OPS		13
#define S3_METRIC_CODES		5	/* 2xx 3xx 4xx 5xx none */
#define S3_METRIC_BUCKETS	13
extern const uint64_t s3_metric_bounds_us[S3_METRIC_BUCKETS];

struct s3_metrics {
	uint64_t	requests[S3_METRIC_OPS][S3_METRIC_CODES];
	/* Cumulative counts per bound of s3_metric_bounds_us, then +Inf. */
	uint64_t	hist[S3_METRIC_OPS][S3_METRIC_BUCKETS + 1];
	uint64_t	sum_us[S3_METRIC_OPS];
};

/* The names of an operation ("put_part") and of an outcome ("2xx"). */
const char *s3_metric_op_name(unsigned op);
const char *s3_metric_code_name(unsigned code);

/* The process's counts so far into *out. Any thread. */
void s3_metrics_get(struct s3_metrics *out);

struct s3;

/*
 * One client for one thread: it keeps one libcurl handle, so requests
 * after the first reuse its connection. cfg is borrowed and MUST outlive
 * it. NULL on ENOMEM. A struct s3 MUST NOT be used by two threads at once.
 */
struct s3 *s3_new(const struct s3_config *cfg);
void s3_free(struct s3 *s);

/* The last request's error (borrowed, valid until the next request). */
const struct s3_error *s3_last_error(const struct s3 *s);

/*
 * The last error as one line for a log ("HTTP 404 NoSuchUpload: ...,
 * request tx00..., 1 try"; "connection refused, 5 tries"), written to
 * buf (size n); returns buf.
 */
const char *s3_describe(const struct s3 *s, char *buf, size_t n);

void s3_get_stats(const struct s3 *s, struct s3_stats *st);

/*
 * Every operation returns PF_OK, or after the tries a failure:
 *   PF_ENET, PF_ETIMEOUT  no answer (connection refused, reset, stalled)
 *   PF_EAUTH              403: wrong keys, signature, or access denied
 *   PF_ENOSESSION         404: no such key, upload or bucket
 *   PF_EBUSY              409/412: a condition failed (the key exists)
 *   PF_ECHECKSUM          the body did not match its SHA-256 (BadDigest)
 *   PF_ETOOLARGE          416 or EntityTooLarge
 *   PF_EQUOTA             QuotaExceeded
 *   PF_EPROTO             any other 4xx (EntityTooSmall, InvalidPart...)
 *   PF_EIO                5xx after the last try, or a malformed answer
 *   PF_ENOMEM, PF_EINTERNAL
 * 5xx answers and lost connections are tried again after a back-off;
 * s3_last_error() tells the details. Keys are plain (not encoded) and
 * sent as they are: "a/../b" is a key of its own, not "b".
 * A conditional PUT, s3_mpu_create and s3_mpu_complete are not sent
 * again once the store may have acted on them: PF_ENET or PF_ETIMEOUT
 * from them means the outcome is unknown, and the caller finds out (HEAD
 * the key, list the uploads) instead of trusting a second answer.
 */

/*
 * PUT p[0..n) as key. With if_absent, only if no object has that key
 * (If-None-Match: *, which RGW honours): PF_EBUSY if one does. The body's
 * SHA-256 is sent, so the store refuses a body changed on the way. etag
 * (S3_ETAG_MAX, may be NULL) gets the new object's ETag.
 */
enum pf_status s3_put(struct s3 *s, const char *key, const void *p, size_t n,
    bool if_absent, char *etag);

/*
 * PUT p[0..n) as key only if the object's ETag is still match (quoted
 * or not; If-Match, which RGW 16 honours with the bare ETag): a
 * compare-and-swap. PF_EBUSY if the ETag changed, PF_ENOSESSION if the
 * key is gone. Not sent again once the store may have acted on it.
 */
enum pf_status s3_put_if_match(struct s3 *s, const char *key, const void *p,
    size_t n, const char *match, char *etag);

/*
 * Called with each piece of an object's body, in order; returns false to
 * stop the transfer (the GET then fails with PF_EIO).
 */
typedef bool (*s3_sink_fn)(void *arg, const void *p, size_t n);

/*
 * GET key's bytes [off, off + len) (len 0: to the end) into sink. Retried
 * only while sink has had no byte. A ranged GET answered with the whole
 * object (200, not 206) is PF_EIO before sink sees a byte.
 */
enum pf_status s3_get(struct s3 *s, const char *key, uint64_t off,
    uint64_t len, s3_sink_fn sink, void *arg);

/* HEAD key: its size and ETag (etag: S3_ETAG_MAX, may be NULL). */
enum pf_status s3_head(struct s3 *s, const char *key, uint64_t *size,
    char *etag);

/* DELETE key (PF_OK also if it did not exist: S3 answers 204 both ways). */
enum pf_status s3_delete(struct s3 *s, const char *key);

/*
 * Deletes keys[0..n) with DeleteObjects (POST ?delete, quiet), at most
 * S3_DELETE_MAX keys a request, in order. A key that does not exist is
 * deleted as far as the caller cares (PF_OK), so a request tried again
 * is harmless. A key the store reports it could not delete is PF_EIO
 * (s3_last_error: the first one's code, and how many), after the rest
 * of its request; the requests after it are not sent. A key with a
 * control character, which XML 1.0 cannot carry, is PF_EUSAGE before
 * any request.
 */
enum pf_status s3_delete_keys(struct s3 *s, const char *const *keys,
    size_t n);

/* Starts a multipart upload of key; id (S3_ID_MAX) gets its upload id. */
enum pf_status s3_mpu_create(struct s3 *s, const char *key, char *id);

/*
 * Uploads part number part (1..S3_PART_MAX) of upload id from p[0..n).
 * sha256 (32 bytes) is the body's digest if the caller has it, else NULL
 * (computed here): the store checks it. etag (S3_ETAG_MAX) gets the
 * part's ETag, which s3_mpu_complete needs.
 */
enum pf_status s3_mpu_put_part(struct s3 *s, const char *key, const char *id,
    unsigned part, const void *p, size_t n, const uint8_t *sha256,
    char *etag);

struct s3_part {
	unsigned	number;
	uint64_t	size;
	char		etag[S3_ETAG_MAX];
};

/*
 * Calls fn for each part of upload id that the store holds, in part
 * order, fetching pages of cfg->page. fn returns false to stop
 * (PF_ECANCELLED then).
 */
typedef bool (*s3_part_fn)(void *arg, const struct s3_part *part);
enum pf_status s3_mpu_list_parts(struct s3 *s, const char *key,
    const char *id, s3_part_fn fn, void *arg);

/*
 * Completes upload id from parts[0..n) (ascending numbers, the ETags the
 * part PUTs answered). An error in a 200 answer, which S3 may send after
 * a long assembly, is an error. PF_ENOSESSION if the upload is gone:
 * already completed or aborted.
 */
enum pf_status s3_mpu_complete(struct s3 *s, const char *key, const char *id,
    const struct s3_part *parts, size_t n);

/*
 * Proves the store takes writes where the engine will make its keys:
 * creates PREFIX.pf/probe-<random> if absent, then deletes it. The
 * status of the first step that failed (s3_last_error tells more).
 */
enum pf_status s3_probe(struct s3 *s);

/*
 * Aborts upload id, freeing its parts. PF_ENOSESSION if there was no
 * such upload; PF_OK if a try whose answer was lost aborted it.
 */
enum pf_status s3_mpu_abort(struct s3 *s, const char *key, const char *id);

/*
 * Calls fn with the key, id and start (Unix seconds by the store's clock,
 * 0 if it gave none) of each multipart upload in progress whose
 * key starts with prefix ("" for all), fetching pages of cfg->page. fn
 * returns false to stop (PF_ECANCELLED).
 */
typedef bool (*s3_upload_fn)(void *arg, const char *key, const char *id,
    int64_t initiated);
enum pf_status s3_mpu_list(struct s3 *s, const char *prefix, s3_upload_fn fn,
    void *arg);

/* An entry of a listing: an object, or a common prefix (no size). */
struct s3_object {
	const char	*key;		/* the whole key, or the prefix */
	uint64_t	 size;
	const char	*etag;		/* "" for a prefix */
	int64_t		 mtime;		/* LastModified, Unix seconds by
					   the store's clock; 0 for a prefix */
	bool		 is_prefix;
};

/*
 * ListObjectsV2: calls fn for each object whose key starts with prefix,
 * in key order, fetching pages of cfg->page. With a delimiter (may be
 * NULL), keys holding it after the prefix are rolled up into one common
 * prefix each (is_prefix), given in the page that holds them. The
 * entry's strings are borrowed for the call. fn returns false to stop
 * (PF_ECANCELLED).
 */
typedef bool (*s3_object_fn)(void *arg, const struct s3_object *o);
enum pf_status s3_list(struct s3 *s, const char *prefix, const char *delim,
    s3_object_fn fn, void *arg);

#endif
