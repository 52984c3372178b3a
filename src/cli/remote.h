/* SPDX-License-Identifier: MIT */
/*
 * What the gateway commands (list, status, fetch, cancel) share: their
 * options, the API calls that answer JSON, the mapping of every failure to
 * an exit code and a one-line message, and safe printing of server text.
 */
#ifndef PF_REMOTE_H
#define PF_REMOTE_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "http.h"
#include "proto.h"
#include "status.h"
#include "trust.h"

#define REMOTE_DEFAULT_URL	"https://127.0.0.1:8080"
#define REMOTE_API		"/api/v1"

struct remote_opts {
	const char	*url;		/* passed http_base_valid */
	const char	*user;
	const char	*secret;	/* borrowed; the caller wipes it */
	unsigned	 timeout_s;
	bool		 json;		/* one JSON document on stdout */
	bool		 quiet;		/* no progress bar, no hints */
	unsigned	 threads;	/* fetch: files at once; 0: default */
	/* Borrowed, or NULL: when set, requests stop (see http_opts). */
	const volatile sig_atomic_t *cancel;
	/* Borrowed: how an https:// gateway is trusted (gwtrust.h). */
	const struct cli_trust *trust;
};

/* Why a gateway command failed. */
struct remote_error {
	int		 exit;		/* enum cli_exit */
	char		 code[32];	/* stable snake_case, for --json */
	long		 http_status;	/* 0: no HTTP answer was involved */
	char		 session[PROTO_ID_LEN + 1];	/* "" if none */
	char		 message[512];	/* one line, for people */
};

/*
 * A new client for o, or NULL with e filled. Calls curl_global_init
 * once; remote_close undoes both. For an https:// URL it settles first
 * which key the gateway must show (gwtrust_resolve): a gateway that is
 * not the one trusted fails here, exit 3 (EXIT_AUTH).
 */
struct http *remote_open(const struct remote_opts *o, struct remote_error *e);

/* Frees h and libcurl's global state. NULL is a no-op for h. */
void remote_close(struct http *h);

/*
 * Sends method (GET or DELETE) to REMOTE_API path (printf-style) and
 * parses the 2xx answer as a JSON object into *out (a new reference).
 * session names the session concerned for messages ("" or NULL if none).
 * Any failure fills e and returns its status; the exit code is e->exit.
 */
enum pf_status remote_call(struct http *h, const char *method,
    const char *session, json_t **out, struct remote_error *e,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Fills e for a failed request: no answer (rc), or resp's HTTP error. */
void remote_fail_http(struct remote_error *e, const struct http *h,
    enum pf_status rc, const struct http_resp *resp, const char *session);

/* Fills e for a failure with status rc (exit code from cli_exit_code). */
void remote_fail(struct remote_error *e, enum pf_status rc,
    const char *session, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Reports e: the --json error object on stdout, or "paraflow: message" on
 * stderr, the message made safe first (remote_clean_text). Returns e->exit.
 */
int remote_report(const struct remote_error *e, bool json);

/*
 * Prints j (stolen) as one compact line on stdout, and flushes. Every
 * character past ASCII is written as \uXXXX, so that no string a server
 * sent (a name holding C1 controls) can drive the terminal. NULL prints
 * nothing.
 */
void remote_print_json(json_t *j);

/* A string member of obj, or "" if absent or not a string (borrowed). */
const char *remote_str(const json_t *obj, const char *key);

/* An integer member of obj, or -1 if absent, not an integer or < 0. */
json_int_t remote_int(const json_t *obj, const char *key);

/*
 * A number member of obj, integer or real, or -1 if absent, not a number
 * or < 0: for rates, which a server may well send as reals.
 */
double remote_num(const json_t *obj, const char *key);

/*
 * Writes server text s to f as pf_text_escape (text.h) makes it: every
 * control character (C0, DEL, C1), bidirectional control, byte of invalid
 * UTF-8 and backslash escaped as \xNN, so that no name can drive the
 * terminal or show other text than it holds.
 */
void remote_put_text(FILE *f, const char *s);

/*
 * Copies s into out (capacity cap > 0), cut at a character boundary, with
 * every byte pf_text_safe_len (text.h) finds unsafe replaced by '?': one
 * printable line, and a valid JSON string, whatever s holds.
 */
void remote_clean_text(char *out, size_t cap, const char *s);

/* True if state is one a session never leaves. */
bool remote_state_final(const char *state);

#endif
