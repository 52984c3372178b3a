/* SPDX-License-Identifier: MIT */
/* Lists, shows, watches and cancels sessions through the gateway's API. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "sessions.h"

#define LIST_PAGE	500	/* the gateway's largest page */
#define LIST_MAX	100000	/* sessions read, whatever a server claims */
/* Answer bytes read for one list: pages of huge sessions are no list. */
#define LIST_MAX_BYTES	(64u * 1024 * 1024)
#define ACTIVE_STATES	"authenticating,receiving,assembling"

static const char *const states[] = { "authenticating", "receiving",
    "assembling", "complete", "failed", "cancelled", "expired", NULL };

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/*
 * The session's state if it is one of the API's, else "unknown": the
 * column is padded, so it only ever holds text of our own.
 */
static const char *
state_of(const json_t *s)
{
	const char *st = remote_str(s, "state");

	for (int i = 0; states[i] != NULL; i++)
		if (strcmp(st, states[i]) == 0)
			return states[i];
	return "unknown";
}

/* Percent of the chunks received, or -1 if the server did not say. */
static int
percent(const json_t *s)
{
	json_int_t acked = remote_int(s, "chunks_acked");
	json_int_t total = remote_int(s, "chunks_total");
	int p;

	if (strcmp(state_of(s), "complete") == 0)
		return 100;
	if (acked < 0 || total <= 0)
		return -1;
	if (acked >= total)
		return 100;
	if (total <= INT64_MAX / 100)
		return (int)(acked * 100 / total);
	/* Not acked * 100: a server's numbers may be near INT64_MAX. */
	p = (int)((double)acked * 100 / (double)total);
	return p < 99 ? p : 99;	/* not all: rounding made it 100 */
}

/*
 * One line of a table: id, state, size, done, name; the active ones show
 * their rate instead of their size, to stay within 80 columns.
 */
static void
print_row(FILE *f, const json_t *s, bool active)
{
	const char *id = remote_str(s, "id");
	json_int_t size = remote_int(s, "size");
	double bps = remote_num(s, "rate_bps");
	char num[16], rate[24], pc[16];
	int p = percent(s);

	progress_format_bytes(size >= 0 ? (double)size : 0, num);
	if (size < 0)
		snprintf(num, sizeof(num), "?");
	progress_format_bytes(bps >= 0 ? bps : 0, rate);
	strcat(rate, "/s");
	if (p >= 0)
		snprintf(pc, sizeof(pc), "%d%%", p);
	else
		snprintf(pc, sizeof(pc), "?");
	fprintf(f, "%-36s  %-10s  %12s  %4s  ", proto_id_valid(id) ? id :
	    "?", state_of(s), active ? rate : num, pc);
	remote_put_text(f, remote_str(s, "name"));
	putc('\n', f);
}

static void
print_header(FILE *f, bool active)
{
	fprintf(f, "%-36s  %-10s  %12s  %4s  %s\n", "ID", "STATE",
	    active ? "RATE" : "SIZE", "DONE", "NAME");
}

/* "label     text" with the text escaped; nothing if the text is "". */
static void
print_field(FILE *f, const char *label, const char *text)
{
	if (*text == '\0')
		return;
	fprintf(f, "%-10s", label);
	remote_put_text(f, text);
	putc('\n', f);
}

/* Every field of one session, one per line, for people. */
static void
print_session(FILE *f, const json_t *s)
{
	const char *st = state_of(s), *err = remote_str(s, "error");
	json_int_t size = remote_int(s, "size");
	json_int_t cs = remote_int(s, "chunk_size");
	json_int_t acked = remote_int(s, "chunks_acked");
	json_int_t total = remote_int(s, "chunks_total");
	json_int_t nacked = remote_int(s, "chunks_nacked");
	json_int_t resent = remote_int(s, "chunks_resent");
	double bps = remote_num(s, "rate_bps");
	json_int_t streams = remote_int(s, "streams");
	char a[16], b[16];

	print_field(f, "session", remote_str(s, "id"));
	print_field(f, "name", remote_str(s, "name"));
	print_field(f, "user", remote_str(s, "user"));
	fprintf(f, "%-10s%s", "state", st);
	if (strcmp(st, "complete") != 0 && acked >= 0 && total > 0) {
		progress_format_bytes(cs >= 0 ? (double)cs : 0, a);
		fprintf(f, ", %d%% (%lld of %lld chunks of %s)", percent(s),
		    (long long)acked, (long long)total, a);
	}
	putc('\n', f);
	if (size >= 0) {
		progress_format_bytes((double)size, a);
		fprintf(f, "%-10s%s (%lld bytes)\n", "size", a,
		    (long long)size);
	}
	if (!remote_state_final(st) && bps >= 0) {
		progress_format_bytes(bps, b);
		fprintf(f, "%-10s%s/s over %lld connection%s\n", "rate", b,
		    (long long)(streams > 0 ? streams : 0),
		    streams == 1 ? "" : "s");
	}
	if (nacked > 0 || resent > 0)
		fprintf(f, "%-10s%lld chunks failed their check, %lld were "
		    "sent again\n", "checks", (long long)(nacked > 0 ?
		    nacked : 0), (long long)(resent > 0 ? resent : 0));
	print_field(f, "created", remote_str(s, "created_at"));
	print_field(f, "updated", remote_str(s, "updated_at"));
	print_field(f, "finished", remote_str(s, "finished_at"));
	print_field(f, "receipt", remote_str(s, "digest"));
	if (*err != '\0') {
		fprintf(f, "%-10s", "error");
		remote_put_text(f, err);
		if (*remote_str(s, "error_message") != '\0') {
			fputs(": ", f);
			remote_put_text(f, remote_str(s, "error_message"));
		}
		putc('\n', f);
	}
}

/* What one refresh of "status" shows. */
struct snapshot {
	json_t	*doc;		/* the --json document, new */
	char	*text;		/* the human form, malloc'd */
	bool	 final;		/* the session watched has finished */
};

static void
snapshot_clear(struct snapshot *sn)
{
	json_decref(sn->doc);
	free(sn->text);
	memset(sn, 0, sizeof(*sn));
}

/* The session id, as a document and as text. */
static enum pf_status
snap_one(struct http *h, const char *id, struct snapshot *sn,
    struct remote_error *e)
{
	json_t *s = NULL;
	size_t len;
	FILE *m;
	enum pf_status rc;

	if ((rc = remote_call(h, "GET", id, &s, e, "/sessions/%s", id)) !=
	    PF_OK)
		goto out;
	rc = PF_EPROTO;
	if (strcasecmp(remote_str(s, "id"), id) != 0) {
		remote_fail(e, rc, id, "%s answered for session %s with "
		    "another session", http_base(h), id);
		goto out;
	}
	rc = PF_ENOMEM;
	sn->final = remote_state_final(state_of(s));
	/* Our keys win: "session" is the id in every document we print. */
	if ((sn->doc = json_deep_copy(s)) == NULL ||
	    json_object_set_new(sn->doc, "status", json_string("ok")) ||
	    json_object_set_new(sn->doc, "session", json_string(id)))
		goto out;
	if ((m = open_memstream(&sn->text, &len)) == NULL)
		goto out;
	print_session(m, s);
	if (fclose(m) != 0)
		goto out;
	rc = PF_OK;
out:
	if (rc == PF_ENOMEM)
		remote_fail(e, rc, id, "out of memory");
	json_decref(s);
	return rc;
}

/* Sessions by state and the active ones. */
static enum pf_status
snap_summary(struct http *h, const char *unused, struct snapshot *sn,
    struct remote_error *e)
{
	json_t *stats = NULL, *page = NULL, *counts, *active, *list, *s;
	const json_t *by;
	json_int_t n;
	double bps;
	size_t len, i;
	bool any = false;
	char rt[16];
	FILE *m;
	enum pf_status rc;

	(void)unused;
	if ((rc = remote_call(h, "GET", NULL, &stats, e, "/stats")) != PF_OK ||
	    (rc = remote_call(h, "GET", NULL, &page, e,
	    "/sessions?state=" ACTIVE_STATES "&limit=%d", LIST_PAGE)) !=
	    PF_OK)
		goto out;
	rc = PF_ENOMEM;
	by = json_object_get(stats, "sessions");
	list = json_object_get(page, "sessions");
	counts = json_object();
	active = json_array();
	sn->doc = json_pack("{s:s,s:s,s:o,s:o}", "status", "ok", "server",
	    http_base(h), "counts", counts, "active", active);
	if (sn->doc == NULL ||
	    (m = open_memstream(&sn->text, &len)) == NULL)
		goto out;
	fprintf(m, "%-10s%s", "server", http_base(h));
	if (*remote_str(stats, "version") != '\0') {
		fputs(" (paraflowd ", m);
		remote_put_text(m, remote_str(stats, "version"));
		putc(')', m);
	}
	fprintf(m, "\n%-10s", "sessions");
	for (i = 0; states[i] != NULL; i++) {
		if ((n = remote_int(by, states[i])) < 0)
			continue;
		json_object_set_new(counts, states[i], json_integer(n));
		if (n > 0)
			fprintf(m, "%s%lld %s", any ? ", " : "", (long long)n,
			    states[i]);
		any = any || n > 0;
	}
	fprintf(m, "%s\n", any ? "" : "none");
	if ((bps = remote_num(stats, "rate_bps")) >= 0) {
		/* A double past 2^63 does not convert: that rate is no rate. */
		json_object_set_new(sn->doc, "rate_bps", json_integer(
		    bps < 9e18 ? (json_int_t)bps : (json_int_t)9e18));
		progress_format_bytes(bps, rt);
		fprintf(m, "%-10s%s/s\n", "rate", rt);
	}
	json_array_foreach(list, i, s)
		if (json_is_object(s))
			json_array_append(active, s);
	if (json_array_size(active) > 0) {
		fprintf(m, "\n");
		print_header(m, true);
		json_array_foreach(active, i, s)
			print_row(m, s, true);
	}
	if (fclose(m) != 0)
		goto out;
	rc = PF_OK;
out:
	if (rc == PF_ENOMEM)
		remote_fail(e, rc, NULL, "out of memory");
	json_decref(stats);
	json_decref(page);
	return rc;
}

/* Terminal rows text takes at width columns, for redrawing in place. */
static unsigned
rows_of(const char *text, unsigned width)
{
	unsigned rows = 0, cols = 0;

	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '\n') {
			rows += cols == 0 ? 1 : (cols + width - 1) / width;
			cols = 0;
		} else if ((*p & 0xc0) != 0x80)
			cols++;		/* not a UTF-8 continuation byte */
	}
	return rows + (cols + width - 1) / width;
}

static unsigned
term_width(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Shows a refresh: over the last one on a terminal, after it elsewhere. */
static void
show(const struct remote_opts *o, const struct snapshot *sn, bool tty,
    unsigned *shown)
{
	if (o->json) {
		remote_print_json(json_incref(sn->doc));
		return;
	}
	if (*shown > 0) {
		if (tty)
			printf("\033[%uA\r\033[J", *shown);
		else
			putchar('\n');
	}
	fputs(sn->text, stdout);
	fflush(stdout);
	*shown = rows_of(sn->text, term_width());
}

/*
 * Sleeps s seconds, or less if SIGINT or SIGTERM comes. The signals are
 * blocked while the flag is tested and let in only inside pselect, so
 * that one arriving just before the sleep cannot go unnoticed for s
 * seconds.
 */
static void
nap(unsigned s)
{
	struct timespec end, now, left;
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &block, &old) == -1)
		return;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)s;
	while (!interrupted) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			break;
		if (pselect(0, NULL, NULL, NULL, &left, &old) == 0 ||
		    errno != EINTR)
			break;
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

int
sessions_status(const struct remote_opts *o, const char *id,
    unsigned watch_s)
{
	enum pf_status (*snap)(struct http *, const char *,
	    struct snapshot *, struct remote_error *) =
	    id != NULL ? snap_one : snap_summary;
	struct snapshot sn = { NULL, NULL, false };
	struct remote_opts wo = *o;
	struct remote_error e;
	struct sigaction sa;
	struct http *h;
	bool tty = isatty(STDOUT_FILENO), seen = false;
	unsigned shown = 0;
	int status = EXIT_OK;

	if (watch_s > 0) {
		/*
		 * No SA_RESTART: a signal cuts the nap short; and a request
		 * in flight is abandoned (wo.cancel) rather than waited for,
		 * which could take the whole timeout on a stalled server.
		 */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		wo.cancel = &interrupted;
	}
	if ((h = remote_open(&wo, &e)) == NULL)
		return remote_report(&e, o->json);
	for (;;) {
		if (snap(h, id, &sn, &e) == PF_OK) {
			show(o, &sn, tty, &shown);
			seen = true;
		} else if (interrupted)
			break;	/* what was cut off is no error */
		else if (watch_s > 0 && seen && (e.exit == EXIT_NETWORK ||
		    e.exit == EXIT_SERVER)) {
			/* A watch outlives a server restart or a blip. */
			remote_report(&e, o->json);
			shown = 0;
		} else {
			status = remote_report(&e, o->json);
			break;
		}
		if (watch_s == 0 || sn.final || interrupted)
			break;
		snapshot_clear(&sn);
		nap(watch_s);
		if (interrupted)
			break;
	}
	snapshot_clear(&sn);
	remote_close(h);
	return status;
}

int
sessions_list(const struct remote_opts *o, const char *state)
{
	struct remote_error e;
	struct http *h;
	json_t *all = json_array(), *page = NULL, *list, *s, *doc;
	size_t offset = 0, i;
	int status = EXIT_OK;

	if ((h = remote_open(o, &e)) == NULL)
		goto fail;
	if (all == NULL) {
		remote_fail(&e, PF_ENOMEM, NULL, "out of memory");
		goto fail;
	}
	/*
	 * Page by page, with offsets we count ourselves: a server's "next"
	 * is never followed, and no server can keep us reading forever.
	 */
	while (offset < LIST_MAX) {
		if (http_bytes_read(h) > LIST_MAX_BYTES) {
			remote_fail(&e, PF_EPROTO, NULL, "%s: the session list "
			    "is larger than %u MiB: stopped", http_base(h),
			    LIST_MAX_BYTES >> 20);
			goto fail;
		}
		if (remote_call(h, "GET", NULL, &page, &e,
		    "/sessions?limit=%d&offset=%zu%s%s", LIST_PAGE, offset,
		    state != NULL ? "&state=" : "", state != NULL ? state :
		    "") != PF_OK)
			goto fail;
		list = json_object_get(page, "sessions");
		if (!json_is_array(list)) {
			remote_fail(&e, PF_EPROTO, NULL, "%s: the session list "
			    "has no \"sessions\" array", http_base(h));
			goto fail;
		}
		json_array_foreach(list, i, s)
			if (json_is_object(s))
				json_array_append(all, s);
		offset += json_array_size(list);
		if (json_array_size(list) == 0 ||
		    !json_is_string(json_object_get(page, "next")) ||
		    (json_int_t)offset >= remote_int(page, "total"))
			break;
		json_decref(page);
		page = NULL;
	}
	if (o->json) {
		doc = json_pack("{s:s,s:I,s:O}", "status", "ok", "total",
		    (json_int_t)json_array_size(all), "sessions", all);
		if (doc == NULL) {
			remote_fail(&e, PF_ENOMEM, NULL, "out of memory");
			goto fail;
		}
		remote_print_json(doc);
	} else if (json_array_size(all) == 0)
		printf("no sessions%s%s\n", state ? " in state " : "",
		    state ? state : "");
	else {
		print_header(stdout, false);
		json_array_foreach(all, i, s)
			print_row(stdout, s, false);
	}
	goto out;
fail:
	status = remote_report(&e, o->json);
out:
	json_decref(page);
	json_decref(all);
	remote_close(h);
	return status;
}

int
sessions_cancel(const struct remote_opts *o, const char *id)
{
	struct remote_error e;
	struct http *h;
	json_t *ans = NULL;
	const char *action;
	int status = EXIT_OK;

	if ((h = remote_open(o, &e)) == NULL)
		goto fail;
	if (remote_call(h, "DELETE", id, &ans, &e, "/sessions/%s", id) !=
	    PF_OK)
		goto fail;
	action = remote_str(ans, "action");
	if (strcmp(action, "cancelled") != 0 &&
	    strcmp(action, "deleted") != 0) {
		remote_fail(&e, PF_EPROTO, id, "%s: session %s: the answer "
		    "says neither cancelled nor deleted", http_base(h), id);
		goto fail;
	}
	if (o->json)
		remote_print_json(json_pack("{s:s,s:s,s:s}", "status", "ok",
		    "session", id, "action", action));
	else
		printf("%s session %s\n", action, id);
	goto out;
fail:
	status = remote_report(&e, o->json);
out:
	json_decref(ans);
	remote_close(h);
	return status;
}
