/* SPDX-License-Identifier: MIT */
/* What s3.c (requests, tries, errors) gives s3ops.c (the operations). */
#ifndef PF_S3_INT_H
#define PF_S3_INT_H

#include "buf.h"
#include "s3.h"

#define S3_ANSWER_MAX	(4u << 20)	/* bytes of an XML answer kept */

/* One request; the caller fills the first part and reads the second. */
struct s3_req {
	const char	*method;	/* "GET", "PUT", "POST", "HEAD"... */
	const char	*key;		/* plain; NULL for the bucket */
	const char	*query;		/* encoded, sorted by name, or NULL */
	const void	*body;		/* sent as is (PUT, POST) */
	size_t		 len;
	const uint8_t	*sha256;	/* body's digest, or NULL: computed */
	const char	*header;	/* one more header line, or NULL */
	bool		 md5;		/* send Content-MD5 (DeleteObjects
					   wants it) */
	bool		 once;		/* not idempotent: see s3_request */
	bool		 ranged;	/* a Range was asked: only a 206
					   body goes to sink */
	s3_sink_fn	 sink;		/* a 2xx body goes here if set */
	void		*arg;

	long		 http;		/* the answer's status */
	struct pf_buf	 answer;	/* its body (unless sink took it) */
	char		 etag[S3_ETAG_MAX];
	uint64_t	 length;	/* Content-Length, if sent */
};

/*
 * Sends r, trying again after a back-off on 5xx and lost connections
 * (cfg->attempts in all). With r->once (a request the store MUST NOT
 * act on twice) it is tried again only if the store cannot have acted
 * on it: the connection was refused, or the store answered a failure.
 * Returns PF_OK for a 2xx answer, else the status s3.h lists, with
 * s3_last_error() filled. The caller frees r->answer (pf_buf_free)
 * either way.
 */
enum pf_status s3_request(struct s3 *s, struct s3_req *r);

/*
 * Appends text to b, percent-encoded as SigV4 wants: unreserved bytes as
 * they are, '/' too if keep_slash (a key's path), the rest %XX.
 */
bool s3_encode(struct pf_buf *b, const char *text, bool keep_slash);

/*
 * Takes the error out of an XML <Error> answer into s3_last_error() and
 * returns the status its code maps to (for a 200 answer that is one).
 */
enum pf_status s3_answer_error(struct s3 *s, struct s3_req *r);

/*
 * An S3 time ("2026-12-05T01:41:33.000Z") as Unix seconds; 0 if text is
 * not one.
 */
int64_t s3_parse_time(const char *text);

/* Sets the last error's S3 code and message (an error inside a 2xx). */
void s3_set_error(struct s3 *s, const char *code, const char *message);

/* The config s was made from (borrowed). */
const struct s3_config *s3_cfg(const struct s3 *s);

/* Entries per list request: cfg->page, 1000 if unset. */
unsigned s3_page(const struct s3 *s);

#endif
