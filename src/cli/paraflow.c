/* SPDX-License-Identifier: MIT */
/* paraflow: the command-line client and its subcommands. */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "args.h"
#include "chunkio.h"
#include "cli.h"
#include "fetch.h"
#include "folder.h"
#include "http.h"
#include "log.h"
#include "progress.h"
#include "remote.h"
#include "sessions.h"
#include "text.h"
#include "tree.h"
#include "upload.h"

/* Shared by the full help and the help of each gateway command. */
#define GATEWAY_OPTIONS \
"gateway options (list, status, fetch, cancel):\n" \
"      --http URL         the gateway: http:// or https:// (default\n" \
"                         $PARAFLOW_HTTP, else " REMOTE_DEFAULT_URL ")\n" \
"  -u, --user USER, -s, --secret SECRET, --secret-file F\n" \
"                         as for upload; the password goes with every\n" \
"                         request (HTTP Basic), over https by default\n" \
"      --pin P, --cacert FILE, --ca-system\n" \
"                         as for upload, for an https:// gateway (by\n" \
"                         default its key is recorded in known_servers\n" \
"                         on first use, under the gateway's host:port);\n" \
"                         a gateway serving plain HTTP takes http://\n" \
"      --timeout SEC      connect timeout, and the longest a transfer may\n" \
"                         stall (default 30)\n" \
"      --json             print one JSON document on stdout (status\n" \
"                         --watch: one a line per refresh); errors as\n" \
"                         for upload\n" \
"  -q, --quiet            no progress bar\n" \
"  -v, --verbose          log each request\n" \
"  list:   --state LIST   only sessions in these states, comma-separated:\n" \
"                         receiving, assembling, complete, failed,\n" \
"                         cancelled, expired\n" \
"  status: --watch [SEC]  redraw every SEC seconds (default 2) until\n" \
"                         interrupted, or until session ID has finished\n" \
"  fetch:  -o, --output FILE\n" \
"                         where to write (default: the session id; never\n" \
"                         a name from the server). The bytes go to\n" \
"                         FILE.part, resumed by the next run if cut off;\n" \
"                         FILE appears only once the receipt of what came\n" \
"                         equals the session's (as paraflow digest computes\n" \
"                         it); if not, FILE.part is removed (exit 6).\n" \
"                         A transfer (upload PATH...): FILE is a\n" \
"                         directory; each stored file goes to its path\n" \
"                         in it, its own receipt checked\n" \
"          --threads N    a transfer's files fetched at once, each over\n" \
"                         its own connection (default 8, at most 64)\n"

/* Long-only options of upload PATH... */
enum {
	OPT_EXCLUDE = 0x2000,
	OPT_FOLLOW,
	OPT_DRY_RUN
};
#define FOLDER_OPTIONS \
	{ "exclude", required_argument, NULL, OPT_EXCLUDE }, \
	{ "follow-symlinks", no_argument, NULL, OPT_FOLLOW }, \
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN }

#define EXIT_GATEWAY \
"  9  no such session (unknown, deleted, or another user's)\n" \
"  10 the session has not finished (fetch), or is being stored (cancel)\n" \
"  11 upload PATH...: the transfer completed, but some files were refused\n" \
"     (type, name) or changed while being sent; the result lists them\n"

static const char usage_text[] =
"Usage: paraflow upload --file FILE [OPTION]...\n"
"       paraflow upload PATH... [OPTION]...\n"
"       paraflow digest [--chunk-size SIZE] FILE...\n"
"       paraflow list [--state STATE[,STATE]...] [GATEWAY OPTION]...\n"
"       paraflow status [ID] [--watch [SEC]] [GATEWAY OPTION]...\n"
"       paraflow fetch ID [-o FILE] [GATEWAY OPTION]...\n"
"       paraflow cancel ID [GATEWAY OPTION]...\n"
"       paraflow --help | --version\n"
"\n"
"Upload a file to a paraflowd server over several TCP streams at once.\n"
"Every chunk is checked with SHA-256 on arrival and sent again if damaged;\n"
"the login is mutual (SCRAM-SHA-256); the server stores the file only when\n"
"the whole-file receipt matches.\n"
"\n"
"upload options:\n"
"  -f, --file FILE        the file to send\n"
"  PATH...                files and directories (recursively) to send as\n"
"                         one transfer: one login, one set of streams,\n"
"                         small files sharing chunks; each file keeps its\n"
"                         own receipt and the server's type checks\n"
"      --exclude GLOB     leave out what GLOB matches (base name or\n"
"                         relative path; ending in /: folders only;\n"
"                         repeatable)\n"
"      --follow-symlinks  send what symlinks point at (default: skip them)\n"
"      --dry-run          list what would be sent, send nothing\n"
"  -H, --host HOST        server address (default 127.0.0.1)\n"
"  -p, --port PORT        server port (default 7878)\n"
"  -t, --threads auto|N   parallel data connections: auto (the default)\n"
"                         starts with 4 and adds streams while the\n"
"                         goodput keeps rising, within the server's limits;\n"
"                         N (1 to 64) uses exactly N\n"
"      --max-threads N    the most streams auto may use (default 64)\n"
"      --limit-rate RATE  send at most RATE bytes a second in all (K, M, G\n"
"                         are 1024-based, as curl's; default no limit)\n"
"  -c, --chunk-size SIZE  chunk size, a power of two from 64K to 64M\n"
"                         (default 4M, or the server's smallest if larger:\n"
"                         8M with S3 storage)\n"
"  -n, --name NAME        name to store the file under (default: the\n"
"                         file's base name; the server sanitizes it)\n"
"  -u, --user USER        user name (default $PARAFLOW_USER, or paraflow)\n"
"  -s, --secret SECRET    password; visible to other local users in the\n"
"                         process list, so prefer one of the next two\n"
"      --secret-file F    read the password from the first line of F\n"
"                         (PARAFLOW_SECRET in the environment also works;\n"
"                         without any, the seed default secret123 is used)\n"
"      --pin sha256//...  accept only the server with this key pin\n"
"                         (paraflowd --fingerprint prints it)\n"
"      --cacert FILE      accept a certificate a CA in FILE signed for\n"
"                         the host name; --ca-system: the system's CAs\n"
"                         (default: trust on first use, the pin recorded\n"
"                         in the state directory's known_servers)\n"
"      --no-tls           the plaintext protocol (server --no-tls)\n"
"      --retries N        re-sends per chunk after a failed check (default 5)\n"
"      --timeout SEC      network timeout (default 60)\n"
"      --give-up SEC      once the upload is under way, lost connections\n"
"                         are made again until no chunk has been\n"
"                         acknowledged for SEC seconds (default 120)\n"
"      --no-resume        start a new upload even if an interrupted one\n"
"                         can be resumed (its state file is replaced)\n"
"      --json             print one JSON object with the result on stdout\n"
"                         (for PATH...: the transfer and every file)\n"
"  -q, --quiet            no progress bar\n"
"  -v, --verbose          log more\n"
"\n"
"An interrupted upload resumes: run the same command again and only the\n"
"chunks the server does not hold yet are sent. The server session is kept\n"
"in a state file in $PARAFLOW_STATE_DIR, else $XDG_STATE_HOME/paraflow,\n"
"else ~/.local/state/paraflow, named <sha256>.json after the server, user,\n"
"file (path, inode, size, mtime), chunk size and name. It is one JSON\n"
"object, mode 0600, without any secret: session, host, port, user, file,\n"
"size, mtime_ns, chunk_size, name, created. It is removed when the upload\n"
"completes, and kept when it fails in a way a rerun can mend.\n"
"\n"
"digest prints the receipt of local files, the whole-file digest paraflowd\n"
"reports for an upload made with the same chunk size (default 4M).\n"
"\n"
"After an upload, paraflow prints its session id (\"session\" in --json)\n"
"and how to follow it up through the server's HTTP gateway:\n"
"  list                   the sessions you can see, newest first\n"
"  status [ID]            one session; without ID a summary: sessions by\n"
"                         state, and the active ones\n"
"  fetch ID               download a finished upload, checking its receipt\n"
"  cancel ID              cancel a running upload, or delete a finished one\n"
"\n"
GATEWAY_OPTIONS
"\n"
"Exit status:\n"
"  0  success\n"
"  1  other error\n"
"  2  usage error\n"
"  3  authentication failed (wrong user or password, or the server could\n"
"     not prove it knows the user)\n"
"  4  file refused by the server (executable type, bad name, too large)\n"
"  5  network failure (refused, reset, timed out, or no progress for\n"
"     --give-up seconds)\n"
"  6  integrity failure (a chunk failed its check too often, or the\n"
"     receipt did not match)\n"
"  7  the local file cannot be read\n"
"  8  server-side failure (busy, storage full, internal error)\n"
EXIT_GATEWAY;

static uint32_t
chunk_size_arg(const char *arg)
{
	uint64_t v;

	if (pf_parse_size(arg, &v) != PF_OK || !proto_chunk_size_valid(v))
		pf_usage_error("bad --chunk-size '%s': a power of two from "
		    "64K to 64M", arg);
	return (uint32_t)v;
}

static uint64_t
rate_arg(const char *arg)
{
	uint64_t v;

	if (pf_parse_size(arg, &v) != PF_OK || v < 1024)
		pf_usage_error("bad --limit-rate '%s': bytes a second, at "
		    "least 1K (suffixes K, M, G)", arg);
	return v;
}

/*
 * The data connections of an upload, for --json: how many at most and at
 * the end, the server's limit, and each change auto made. New reference.
 */
static json_t *
streams_json(const struct upload_result *r, bool autotune)
{
	json_t *ch = json_array(), *e;

	for (unsigned i = 0; ch != NULL && i < r->nchanges; i++) {
		const struct autotune_event *ev = &r->changes[i];

		e = json_pack("{s:f,s:I,s:I,s:s,s:f}", "at",
		    (double)ev->at_ms / 1000, "from", (json_int_t)ev->from,
		    "to", (json_int_t)ev->to, "why",
		    autotune_why_name(ev->why), "goodput", ev->rate);
		if (e == NULL || json_array_append_new(ch, e) == -1) {
			json_decref(ch);
			return NULL;
		}
	}
	return json_pack("{s:s,s:I,s:I,s:o,s:I,s:o,s:I}", "mode",
	    autotune ? "auto" : "fixed", "max", (json_int_t)r->streams_max,
	    "final", (json_int_t)r->streams_final, "server_cap",
	    r->server_cap ? json_integer(r->server_cap) : json_null(),
	    "busy", (json_int_t)r->busy, "changes", ch, "changes_dropped",
	    (json_int_t)r->changes_dropped);
}

/* s made printable (text.h) into buf; returns buf. */
static const char *
esc(char *buf, size_t cap, const char *s)
{
	pf_text_escape(buf, cap, s, NULL);
	return buf;
}

/*
 * The outcome, on stdout (or stderr for a failure). Name, session and
 * message may come from the server: escaped for people, and as JSON in
 * ASCII, so no byte of theirs reaches a terminal raw.
 */
static void
print_result(const struct upload_result *r, const char *file, bool json,
    bool quiet, bool autotune)
{
	char size[16], rate[16];
	char m[PF_TEXT_ESC_MAX * sizeof(r->message) + 1];
	char n[PF_TEXT_ESC_MAX * sizeof(r->name) + 1];
	char f[PF_TEXT_ESC_MAX * 1024 + 1];
	char sid[PF_TEXT_ESC_MAX * sizeof(r->session) + 1];
	json_t *j;

	/* The message may also be cut mid-character: escaped, it is UTF-8. */
	esc(m, sizeof(m), r->message);
	if (json) {
		if (r->status == PF_OK)
			j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:f,s:I}",
			    "status", "ok", "session", r->session, "name",
			    r->name, "bytes", (json_int_t)r->bytes, "chunks",
			    (json_int_t)r->chunks, "chunk_size",
			    (json_int_t)r->chunk_size, "digest", r->digest,
			    "seconds", r->seconds, "retries",
			    (json_int_t)r->retries);
		else
			j = json_pack("{s:s,s:{s:s,s:s},s:s,s:I}", "status",
			    "error", "error", "code",
			    pf_status_name(r->status), "message", m,
			    "session", r->session, "retries",
			    (json_int_t)r->retries);
		/* Both shapes: what resuming saved and what it cost. */
		if (j != NULL && json_object_update_new(j, json_pack(
		    "{s:I,s:I,s:I,s:o}", "resumed_chunks",
		    (json_int_t)r->resumed_chunks, "reconnects",
		    (json_int_t)r->reconnects, "bytes_sent",
		    (json_int_t)r->bytes_sent, "streams",
		    streams_json(r, autotune))) == -1) {
			json_decref(j);
			j = NULL;
		}
		if (j != NULL) {
			json_dumpf(j, stdout, JSON_COMPACT |
			    JSON_ENSURE_ASCII);
			putchar('\n');
			json_decref(j);
		}
		return;
	}
	esc(f, sizeof(f), file);
	if (r->status != PF_OK) {
		fprintf(stderr, "paraflow: %s: %s\n", f, m);
		return;
	}
	esc(sid, sizeof(sid), r->session);
	progress_format_bytes((double)r->bytes, size);
	/* The rate of this run: what it sent, not what was there already. */
	progress_format_bytes(r->seconds > 0 ? r->bytes_sent / r->seconds : 0,
	    rate);
	printf("uploaded %s as %s: %s in %.2f s (%s/s), %u chunks, "
	    "%u re-sent\n", f, esc(n, sizeof(n), r->name), size, r->seconds,
	    rate, r->chunks, r->retries);
	if (r->resumed_chunks > 0)
		printf("resumed: %u of %u chunks were on the server already\n",
		    r->resumed_chunks, r->chunks);
	if (r->reconnects > 0)
		printf("reconnected %u times\n", r->reconnects);
	if (autotune)
		printf("streams: %u at the end, %u at most (auto, %u "
		    "changes)\n", r->streams_final, r->streams_max,
		    r->nchanges + r->changes_dropped);
	printf("session %s\n", sid);
	printf("receipt %s\n", r->digest);
	if (!quiet)
		printf("follow it up with: paraflow status %s\n"
		    "                   paraflow fetch %s\n", sid, sid);
}

/*
 * Runs an upload with options o and the login's user, password and trust
 * (one TLS context for all its connections); prints the outcome. The
 * exit status.
 */
static int
upload_with(struct upload_opts *o, struct cli_login *login, bool json,
    bool quiet)
{
	struct upload_result r;
	struct pf_tls *tls = NULL;
	char err[512];
	int rc;

	cli_login_resolve(login);
	o->user = login->user;
	o->secret = login->secret;
	o->trust = &login->trust;
	o->quiet = quiet;
	if (trust_context(&login->trust, &tls, err, sizeof(err)) != PF_OK)
		pf_usage_error("%s", err);
	o->tls = tls;
	upload_run(o, &r);
	pf_tls_free(tls);
	cli_login_wipe(login);
	if (o->tree != NULL && r.status == PF_OK)
		rc = folder_report(&r, o->tree, r.chunk_size, json ?
		    streams_json(&r, o->threads == 0) : NULL, json, quiet);
	else {
		print_result(&r, o->file, json, quiet, o->threads == 0);
		rc = cli_exit_code(r.status);
	}
	folder_check_free(r.check);
	json_decref(r.files);
	return rc;
}

/* The options of "paraflow upload PATH..." beyond those of --file. */
struct folder_args {
	const char	*exclude[64];
	struct tree_opts to;
	bool		 dry_run;
};

/* Takes in an option of upload PATH...; false if ch is none of them. */
static bool
folder_option(struct folder_args *fa, int ch, const char *arg)
{
	switch (ch) {
	case OPT_EXCLUDE:
		if (fa->to.nexclude == sizeof(fa->exclude) /
		    sizeof(fa->exclude[0]))
			pf_usage_error("%s", "at most 64 --exclude");
		fa->exclude[fa->to.nexclude++] = arg;
		return true;
	case OPT_FOLLOW:
		fa->to.follow_symlinks = true;
		return true;
	case OPT_DRY_RUN:
		fa->dry_run = true;
		return true;
	default:
		return false;
	}
}

/*
 * Builds the transfer of paths (argc of them) into o and runs it (or
 * lists it, with --dry-run); without paths, uploads o->file. The exit
 * status.
 */
/*
 * Says why the walk of upload PATH... failed, as an upload's error is
 * said: one JSON document with --json (err escaped: a name need not be
 * UTF-8), else a line on stderr.
 */
static void
walk_failed(enum pf_status st, const char *err, bool json)
{
	char m[PF_TEXT_ESC_MAX * 1024 + 1];
	json_t *j;

	pf_text_escape(m, sizeof(m), err, NULL);
	if (!json) {
		fprintf(stderr, "paraflow: %s\n", m);
		return;
	}
	j = json_pack("{s:s,s:{s:s,s:s}}", "status", "error", "error", "code",
	    pf_status_name(st), "message", m);
	if (j != NULL) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
		putchar('\n');
		json_decref(j);
	}
}

static int
upload_paths(struct upload_opts *o, struct folder_args *fa, char **paths,
    int argc, struct cli_login *login, bool json, bool quiet)
{
	char err[1024], label[PROTO_MAX_NAME + 1];
	struct tree *t;
	const char *base;
	enum pf_status st;
	int rc;

	if (argc == 0 && o->file == NULL)
		pf_usage_error("%s", "upload needs --file FILE or PATH...");
	if (argc == 0 && (fa->dry_run || fa->to.nexclude > 0 ||
	    fa->to.follow_symlinks))
		pf_usage_error("%s", "--exclude, --follow-symlinks and "
		    "--dry-run go with PATH...");
	if (argc == 0)
		return upload_with(o, login, json, quiet);
	if (o->file != NULL)
		pf_usage_error("%s", "give --file FILE or PATH..., not both");
	fa->to.exclude = fa->exclude;
	fa->to.quiet = json;
	if ((st = tree_build((const char *const *)paths, (size_t)argc,
	    &fa->to, &t, err, sizeof(err))) != PF_OK) {
		walk_failed(st, err, json);
		return cli_exit_code(st);
	}
	if (fa->dry_run) {
		rc = folder_dry_run(t, json);
		tree_free(t);
		return rc;
	}
	/* The label the transfer is listed under: its first top entry. */
	base = t->e[0].rel;
	snprintf(label, sizeof(label), "%.*s", (int)strcspn(base, "/"), base);
	o->tree = t;
	o->file = paths[0];
	if (o->name == NULL)
		o->name = label;
	rc = upload_with(o, login, json, quiet);
	tree_free(t);
	return rc;
}

static int
cmd_upload(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-threads", required_argument, NULL, 'M' },
		{ "limit-rate", required_argument, NULL, 'L' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "name", required_argument, NULL, 'n' },
		CLI_LOGIN_OPTIONS,
		{ "retries", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "give-up", required_argument, NULL, 'G' },
		{ "no-resume", no_argument, NULL, 'N' },
		FOLDER_OPTIONS,
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct upload_opts o = { .host = "127.0.0.1",
	    .port = PROTO_DEFAULT_PORT, .threads = 0,
	    .max_threads = 64,
	    .chunk_size = 0, .retries = 5,
	    .timeout_ms = 60000, .give_up_s = 120, .progress = true };
	struct cli_login login = { .user = NULL };
	struct folder_args fa = { .dry_run = false };
	bool json = false, quiet = false;
	int ch, verbosity = PF_LOG_WARN;

	while ((ch = getopt_long(argc, argv, "f:H:p:t:c:n:" CLI_LOGIN_SHORT
	    "qvh", opts, NULL)) != -1) {
		if (cli_login_option(&login, ch, optarg) ||
		    folder_option(&fa, ch, optarg))
			continue;
		switch (ch) {
		case 'f':
			o.file = optarg;
			break;
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			o.port = pf_arg_uint("port", optarg, 1, 65535);
			break;
		case 't':
			o.threads = strcmp(optarg, "auto") == 0 ? 0 :
			    pf_arg_uint("threads", optarg, 1, 64);
			break;
		case 'M':
			o.max_threads = pf_arg_uint("max-threads", optarg, 1,
			    64);
			break;
		case 'L':
			o.limit_rate = rate_arg(optarg);
			break;
		case 'c':
			o.chunk_size = chunk_size_arg(optarg);
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'r':
			o.retries = pf_arg_uint("retries", optarg, 0, 1000);
			break;
		case 'T':
			o.timeout_ms = 1000 * pf_arg_uint("timeout", optarg, 1,
			    86400);
			break;
		case 'G':
			o.give_up_s = pf_arg_uint("give-up", optarg, 1, 86400);
			break;
		case 'N':
			o.no_resume = true;
			break;

		case 'j':
			json = true;
			o.progress = false;
			break;
		case 'q':
			o.progress = false;
			quiet = true;
			break;
		case 'v':
			verbosity = PF_LOG_DEBUG;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'paraflow --help' for more "
			    "information.\n");
			return EXIT_USAGE;
		}
	}
	pf_log_set_level((enum pf_log_level)verbosity);
	return upload_paths(&o, &fa, argv + optind, argc - optind, &login,
	    json, quiet);
}

static int
cmd_digest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	uint32_t chunk_size = PROTO_DEFAULT_CHUNK;
	char hex[PF_SHA256_HEX];
	int ch, status = EXIT_OK;

	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			chunk_size = chunk_size_arg(optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind == argc)
		pf_usage_error("%s", "digest needs a FILE");
	for (int i = optind; i < argc; i++) {
		struct stat sb;
		int fd = open(argv[i], O_RDONLY | O_CLOEXEC);

		if (fd == -1 || fstat(fd, &sb) == -1 ||
		    chunkio_receipt(fd, (uint64_t)sb.st_size, chunk_size,
		    hex) != PF_OK) {
			fprintf(stderr, "paraflow: %s: cannot compute the "
			    "receipt\n", argv[i]);
			status = EXIT_LOCAL_IO;
		} else
			printf("%s  %s\n", hex, argv[i]);
		if (fd != -1)
			close(fd);
	}
	return status;
}

/* The commands that talk to the HTTP gateway. */
enum remote_cmd {
	CMD_LIST,
	CMD_STATUS,
	CMD_FETCH,
	CMD_CANCEL
};

static const struct {
	const char	*name;
	const char	*help;
} remote_cmds[] = {
	[CMD_LIST] = { "list",
"Usage: paraflow list [--state STATE[,STATE]...] [GATEWAY OPTION]...\n"
"\n"
"Lists the sessions you can see (an admin: all), newest first: id, state,\n"
"size, share of chunks received, and name.\n" },
	[CMD_STATUS] = { "status",
"Usage: paraflow status [ID] [--watch [SEC]] [GATEWAY OPTION]...\n"
"\n"
"Shows session ID: state, progress, rate, checks failed, receipt, error.\n"
"Without ID, a summary: your sessions by state, and the active ones.\n"
"With --watch, redraws until interrupted, or until session ID has\n"
"finished; the exit status is 0 whatever the state.\n" },
	[CMD_FETCH] = { "fetch",
"Usage: paraflow fetch ID [-o FILE] [GATEWAY OPTION]...\n"
"\n"
"Downloads the file of finished session ID to FILE (default: a file named\n"
"after ID), and keeps it only if its receipt is the session's.\n" },
	[CMD_CANCEL] = { "cancel",
"Usage: paraflow cancel ID [GATEWAY OPTION]...\n"
"\n"
"Cancels session ID if it is receiving (its uploader stops with the error\n"
"\"cancelled\"), or deletes it and its file if it has finished; prints\n"
"\"cancelled\" or \"deleted\".\n" },
};

static void
remote_help(enum remote_cmd cmd)
{
	printf("%s\n%s\nExit status: as in paraflow --help, and\n%s",
	    remote_cmds[cmd].help, GATEWAY_OPTIONS, EXIT_GATEWAY);
}

/* True if list is one state or a comma-separated list of states. */
static bool
states_valid(const char *list)
{
	static const char *const known[] = { "authenticating", "receiving",
	    "assembling", "complete", "failed", "cancelled", "expired" };
	const char *p = list;

	for (;;) {
		size_t n = strcspn(p, ",");
		bool found = false;

		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strlen(known[i]) == n &&
			    strncmp(p, known[i], n) == 0)
				found = true;
		if (!found)
			return false;
		if (p[n] == '\0')
			return true;
		p += n + 1;
	}
}

/* True if s is a number: what may follow --watch as its value. */
static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* What a gateway command was given on its command line. */
struct remote_args {
	enum remote_cmd		 cmd;
	const char		*name;
	struct remote_opts	 o;
	struct cli_login	 login;
	const char		*out, *state, *id, *watch;
	bool			 watching;
	unsigned		 watch_s;
	int			 verbosity;
};

/* Parses the options into a: -1 to go on, or the exit status to return. */
static int
remote_parse(struct remote_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "http", required_argument, NULL, 'U' },
		CLI_LOGIN_OPTIONS,
		{ "timeout", required_argument, NULL, 'T' },
		{ "output", required_argument, NULL, 'o' },
		{ "threads", required_argument, NULL, 'N' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "state", required_argument, NULL, 'A' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, CLI_LOGIN_SHORT "o:qvh", opts,
	    NULL)) != -1) {
		if (cli_login_option(&a->login, ch, optarg))
			continue;
		switch (ch) {
		case 'U':
			a->o.url = optarg;
			break;
		case 'T':
			a->o.timeout_s = pf_arg_uint("timeout", optarg, 1,
			    86400);
			break;
		case 'o':
			a->out = optarg;
			break;
		case 'N':
			a->o.threads = pf_arg_uint("threads", optarg, 1, 64);
			break;
		case 'w':
			a->watching = true;
			/* "--watch 5" as well as "--watch=5": ids are no
			 * numbers, so a number after it is its value. */
			if (optarg != NULL)
				a->watch = optarg;
			else if (optind < argc && all_digits(argv[optind]))
				a->watch = argv[optind++];
			break;
		case 'A':
			a->state = optarg;
			break;
		case 'j':
			a->o.json = true;
			a->o.quiet = true;
			break;
		case 'q':
			a->o.quiet = true;
			break;
		case 'v':
			a->verbosity = PF_LOG_DEBUG;
			break;
		case 'h':
			remote_help(a->cmd);
			return EXIT_OK;
		default:
			fprintf(stderr, "Try 'paraflow %s --help' for more "
			    "information.\n", a->name);
			return EXIT_USAGE;
		}
	}
	return -1;
}

/* Checks what remote_parse left, and the operands; exits if it is wrong. */
static void
remote_check(struct remote_args *a, int argc, char **argv)
{
	enum remote_cmd cmd = a->cmd;
	const char *name = a->name;

	if (a->out != NULL && cmd != CMD_FETCH)
		pf_usage_error("%s takes no --output", name);
	if (a->o.threads != 0 && cmd != CMD_FETCH)
		pf_usage_error("%s takes no --threads", name);
	if (a->out != NULL && *a->out == '\0')
		pf_usage_error("%s", "--output needs a file name");
	if (a->watching && cmd != CMD_STATUS)
		pf_usage_error("%s takes no --watch", name);
	if (a->watching)
		a->watch_s = a->watch != NULL ? pf_arg_uint("watch", a->watch,
		    1, 86400) : 2;
	if (a->state != NULL && cmd != CMD_LIST)
		pf_usage_error("%s takes no --state", name);
	if (a->state != NULL && !states_valid(a->state))
		pf_usage_error("bad --state '%s': one or more of receiving, "
		    "assembling, complete, failed, cancelled, expired, "
		    "authenticating, with commas between", a->state);
	if (optind < argc && cmd != CMD_LIST)
		a->id = argv[optind++];
	if (optind < argc)
		pf_usage_error("unexpected argument '%s'", argv[optind]);
	if (a->id == NULL && (cmd == CMD_FETCH || cmd == CMD_CANCEL))
		pf_usage_error("%s needs a session ID", name);
	if (a->id != NULL && !proto_id_valid(a->id))
		pf_usage_error("'%s' is not a session id (a UUID, as upload "
		    "and list print it)", a->id);
	if (!http_base_valid(a->o.url))
		pf_usage_error("bad gateway URL '%s'%s: give http://HOST[:PORT]"
		    " or https://HOST[:PORT], without user or query", a->o.url,
		    a->o.url == getenv("PARAFLOW_HTTP") ?
		    " (from PARAFLOW_HTTP)" : "");
}

static int
cmd_remote(enum remote_cmd cmd, int argc, char **argv)
{
	struct remote_args a = { .cmd = cmd, .name = remote_cmds[cmd].name,
	    .o = { .timeout_s = 30 }, .verbosity = PF_LOG_WARN };
	int status;

	a.o.url = getenv("PARAFLOW_HTTP");
	if (a.o.url == NULL || *a.o.url == '\0')
		a.o.url = REMOTE_DEFAULT_URL;
	if ((status = remote_parse(&a, argc, argv)) != -1)
		return status;
	remote_check(&a, argc, argv);
	pf_log_set_level((enum pf_log_level)a.verbosity);
	cli_login_resolve(&a.login);
	a.o.user = a.login.user;
	a.o.secret = a.login.secret;
	a.o.trust = &a.login.trust;
	switch (cmd) {
	case CMD_LIST:
		status = sessions_list(&a.o, a.state);
		break;
	case CMD_STATUS:
		status = sessions_status(&a.o, a.id, a.watch_s);
		break;
	case CMD_FETCH:
		status = fetch_run(&a.o, a.id, a.out);
		break;
	case CMD_CANCEL:
	default:
		status = sessions_cancel(&a.o, a.id);
		break;
	}
	cli_login_wipe(&a.login);
	return status;
}

int
main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	pf_log_set_prog("paraflow");
	pf_log_set_level(PF_LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	if (cmd == NULL) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
		printf("paraflow %s\n", PACKAGE_VERSION);
		return EXIT_OK;
	}
	/* Subcommands parse their own options from argv[1] on. */
	if (strcmp(cmd, "upload") == 0)
		return cmd_upload(argc - 1, argv + 1);
	if (strcmp(cmd, "digest") == 0)
		return cmd_digest(argc - 1, argv + 1);
	for (size_t i = 0; i < sizeof(remote_cmds) / sizeof(remote_cmds[0]);
	    i++)
		if (strcmp(cmd, remote_cmds[i].name) == 0)
			return cmd_remote((enum remote_cmd)i, argc - 1,
			    argv + 1);
	pf_usage_error("unknown command '%s'", cmd);
}
