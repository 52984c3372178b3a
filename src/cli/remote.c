/* SPDX-License-Identifier: MIT */
/* The gateway's JSON calls, and what each way of failing means to a user. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "gwtrust.h"
#include "remote.h"
#include "text.h"

void
remote_fail(struct remote_error *e, enum pf_status rc, const char *session,
    const char *fmt, ...)
{
	va_list ap;

	e->exit = cli_exit_code(rc);
	snprintf(e->code, sizeof(e->code), "%s", pf_status_name(rc));
	e->http_status = 0;
	snprintf(e->session, sizeof(e->session), "%s",
	    session != NULL ? session : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

struct http *
remote_open(const struct remote_opts *o, struct remote_error *e)
{
	static const struct cli_trust tofu = { .no_tls = false };
	struct http_opts ho = { o->url, o->user, o->secret, o->timeout_s,
	    o->cancel, NULL, NULL };
	struct http *h = NULL;
	struct gwtrust gt;
	char err[sizeof(e->message)];
	enum pf_status rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		remote_fail(e, PF_ENOMEM, NULL, "cannot initialize libcurl");
		return NULL;
	}
	if ((rc = gwtrust_resolve(o->url, o->trust ? o->trust : &tofu,
	    o->timeout_s, o->quiet, &gt, err, sizeof(err))) != PF_OK) {
		remote_fail(e, rc, NULL, "%s", err);
		curl_global_cleanup();
		return NULL;
	}
	ho.pin = gt.pin[0] != '\0' ? gt.pin : NULL;
	ho.cacert = gt.cacert;
	if ((h = http_new(&ho)) == NULL) {
		remote_fail(e, PF_ENOMEM, NULL, "cannot set up an HTTP client");
		curl_global_cleanup();
	}
	return h;
}

void
remote_close(struct http *h)
{
	if (h == NULL)
		return;
	http_free(h);
	curl_global_cleanup();
}

void
remote_clean_text(char *out, size_t cap, const char *s)
{
	const char *p = s;
	size_t n = 0, k;

	while (*p != '\0') {
		if ((k = pf_text_safe_len(p)) == 0) {
			if (n + 1 >= cap)
				break;
			out[n++] = '?';
			p++;
			continue;
		}
		if (n + k >= cap)
			break;	/* never half a character */
		memcpy(out + n, p, k);
		n += k;
		p += k;
	}
	out[n] = '\0';
}

/*
 * The "message" of the gateway's error object, made one short printable
 * line, into out (capacity cap); "" if there is none.
 */
static void
server_message(const struct http_resp *resp, char *out, size_t cap)
{
	json_t *j = NULL;
	const char *m = "";

	if (resp->body != NULL && (j = json_loadb(resp->body, resp->len, 0,
	    NULL)) != NULL)
		m = remote_str(json_object_get(j, "error"), "message");
	/* Server text: no control bytes reach the user's terminal. */
	remote_clean_text(out, cap < 161 ? cap : 161, m);
	json_decref(j);
}

void
remote_fail_http(struct remote_error *e, const struct http *h,
    enum pf_status rc, const struct http_resp *resp, const char *session)
{
	const char *url = http_base(h), *sid = session ? session : "";
	char said[192], why[200];
	long st = resp->status;

	if (rc == PF_ENET || rc == PF_ETIMEOUT) {
		remote_fail(e, rc, sid, "cannot reach %s%s%s: %s", url,
		    *sid ? " for session " : "", sid, resp->err);
		return;
	}
	if (rc != PF_OK) {
		remote_fail(e, rc, sid, "%s%s%s: %s", url, *sid ?
		    ": session " : "", sid, resp->err);
		return;
	}
	server_message(resp, said, sizeof(said));
	if (said[0] != '\0')
		snprintf(why, sizeof(why), ": %s", said);
	else
		why[0] = '\0';
	e->http_status = st;
	snprintf(e->session, sizeof(e->session), "%s", sid);
	if (st == 401) {
		e->exit = EXIT_AUTH;
		snprintf(e->code, sizeof(e->code), "auth_failed");
		snprintf(e->message, sizeof(e->message), "%s refused the "
		    "login (HTTP 401%s): check --user and the password", url,
		    why);
	} else if (st == 429) {
		/* Only failed logins get a 429 from the gateway's API. */
		e->exit = EXIT_AUTH;
		snprintf(e->code, sizeof(e->code), "too_many_requests");
		snprintf(e->message, sizeof(e->message), "%s refused the "
		    "login for now (HTTP 429%s): too many failed; check "
		    "--user and the password", url, why);
	} else if (st == 404) {
		/* Exit 9 means "no such session": not a wrong URL. */
		e->exit = *sid != '\0' ? EXIT_NOT_FOUND : EXIT_ERROR;
		snprintf(e->code, sizeof(e->code), "not_found");
		if (*sid != '\0')
			snprintf(e->message, sizeof(e->message), "%s has no "
			    "session %s (HTTP 404): unknown, deleted, or not "
			    "yours", url, sid);
		else
			snprintf(e->message, sizeof(e->message), "%s: not "
			    "found (HTTP 404%s): is it a paraflowd gateway?",
			    url, why);
	} else if (st == 409) {
		e->exit = EXIT_NOT_READY;
		snprintf(e->code, sizeof(e->code), "not_finished");
		snprintf(e->message, sizeof(e->message), "%s: session %s is "
		    "not finished (HTTP 409%s)", url, sid, why);
	} else if (st >= 500 && st < 600) {
		e->exit = EXIT_SERVER;
		snprintf(e->code, sizeof(e->code), "%s", st == 503 ? "busy" :
		    "internal");
		snprintf(e->message, sizeof(e->message), "%s: server error "
		    "(HTTP %ld%s)%s%s", url, st, why, *sid ? " on session " :
		    "", sid);
	} else {
		e->exit = EXIT_ERROR;
		snprintf(e->code, sizeof(e->code), "http_error");
		snprintf(e->message, sizeof(e->message), "%s: unexpected "
		    "answer (HTTP %ld%s)%s%s", url, st, why, *sid ?
		    " on session " : "", sid);
	}
}

enum pf_status
remote_call(struct http *h, const char *method, const char *session,
    json_t **out, struct remote_error *e, const char *fmt, ...)
{
	struct http_req rq = { .method = method, .cap = HTTP_MAX_JSON };
	struct http_resp resp = { 0 };
	char path[512] = REMOTE_API;
	const size_t api = sizeof(REMOTE_API) - 1;
	json_error_t jerr;
	json_t *j = NULL;
	va_list ap;
	int n;
	enum pf_status rc = PF_EUSAGE;

	*out = NULL;
	va_start(ap, fmt);
	n = vsnprintf(path + api, sizeof(path) - api, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(path) - api) {
		/* Cut, it would ask for something else. */
		remote_fail(e, rc, session, "the request is too long (over %zu "
		    "bytes)", sizeof(path) - 1);
		goto out;
	}
	rq.path = path;
	rc = http_request(h, &rq, &resp);
	if (rc != PF_OK || resp.status < 200 || resp.status > 299) {
		remote_fail_http(e, h, rc, &resp, session);
		if (rc == PF_OK)
			rc = PF_EPROTO;
		goto out;
	}
	rc = PF_EPROTO;
	j = json_loadb(resp.body != NULL ? resp.body : "", resp.len,
	    JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		remote_fail(e, rc, session, "%s: the answer to %s %s is not a "
		    "JSON object%s%s", http_base(h), method, path, j ? "" :
		    ": ", j ? "" : jerr.text);
		json_decref(j);
		goto out;
	}
	*out = j;
	rc = PF_OK;
out:
	http_resp_clear(&resp);
	return rc;
}

int
remote_report(const struct remote_error *e, bool json)
{
	char msg[sizeof(e->message)];
	json_t *j;

	/*
	 * The message may hold server text, or be cut in the middle of a
	 * character; json_pack would refuse it and print nothing.
	 */
	remote_clean_text(msg, sizeof(msg), e->message);
	if (!json) {
		fprintf(stderr, "paraflow: %s\n", msg);
		return e->exit;
	}
	j = json_pack("{s:s,s:{s:s,s:s}}", "status", "error", "error",
	    "code", e->code, "message", msg);
	if (j != NULL && e->http_status != 0)
		json_object_set_new(json_object_get(j, "error"),
		    "http_status", json_integer(e->http_status));
	if (j != NULL && e->session[0] != '\0')
		json_object_set_new(j, "session", json_string(e->session));
	if (j != NULL)
		remote_print_json(j);
	return e->exit;
}

void
remote_print_json(json_t *j)
{
	if (j == NULL)
		return;
	json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	putchar('\n');
	fflush(stdout);
	json_decref(j);
}

const char *
remote_str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "";
}

json_int_t
remote_int(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	return json_integer_value(v);
}

double
remote_num(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_number(v) || !(json_number_value(v) >= 0))
		return -1;
	return json_number_value(v);
}

void
remote_put_text(FILE *f, const char *s)
{
	char buf[256];
	size_t n, used;

	while (*s != '\0') {
		n = pf_text_escape(buf, sizeof(buf), s, &used);
		fwrite(buf, 1, n, f);
		s += used;
	}
}

bool
remote_state_final(const char *state)
{
	return strcmp(state, "complete") == 0 ||
	    strcmp(state, "failed") == 0 ||
	    strcmp(state, "cancelled") == 0 ||
	    strcmp(state, "expired") == 0;
}
