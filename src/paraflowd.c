/* SPDX-License-Identifier: MIT */
/* paraflowd: configuration, start-up and shutdown of the receiver. */
#include "config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "auth.h"
#include "engine.h"
#include "fsutil.h"
#include "tls.h"
#include "httpd.h"
#include "log.h"
#include "proto.h"

static const char usage_text[] =
"Usage: paraflowd [OPTION]...\n"
"       paraflowd --users FILE --add-user NAME [--iterations N]\n"
"\n"
"Receive files over the ParaFlow native chunk protocol: several TCP streams\n"
"per upload, every chunk checked with SHA-256, users authenticated with\n"
"SCRAM-SHA-256, every upload a UUIDv4 session with its own staging area.\n"
"\n"
"Options:\n"
"  -p, --port PORT           TCP port for control and data (default 7878;\n"
"                            0 picks a free one)\n"
"  -b, --bind ADDR           address to listen on (default 127.0.0.1)\n"
"  -s, --storage DIR         storage directory (default /var/lib/paraflow)\n"
"  -u, --users FILE          users file of SCRAM verifiers (see below)\n"
"      --insecure-default-user\n"
"                            without --users, accept user \"paraflow\" with\n"
"                            password \"secret123\" even off loopback\n"
"      --forbidden-ext LIST  comma-separated extensions to refuse, replacing\n"
"                            the default list (exe,sh,bat,cmd,com,msi,ps1,\n"
"                            dll,py,js,...); \"\" refuses none by name\n"
"      --allow-ext LIST      extensions to let through all the same, and\n"
"                            the scripts tied to them (py: Python)\n"
"      --max-file-size SIZE  refuse larger uploads (K, M, G, T suffixes;\n"
"                            a transfer's files count together)\n"
"      --min-free-space SIZE refuse uploads that would leave less free space\n"
"      --max-sessions N      sessions open at once, resumable ones included\n"
"                            (default 64)\n"
"      --max-connections N   connections at once (default 256)\n"
"      --max-user-connections N\n"
"                            connections at once per user (default 64)\n"
"      --max-user-sessions N sessions open at once per user, resumable ones\n"
"                            included (default 8)\n"
"      --max-user-reserved SIZE\n"
"                            bytes one user may have declared but not yet\n"
"                            sent, over all their sessions (default 0: no\n"
"                            fixed cap, only the share below)\n"
"      --max-user-share PCT  percent of the free space one user's unsent\n"
"                            bytes may hold (default 50; 100 lets one\n"
"                            upload fill the disk)\n"
"      --idle-timeout SEC    close connections idle this long, and a\n"
"                            session's control connection once no chunk\n"
"                            data came for that long (default 60)\n"
"      --login-timeout SEC   a connection must finish TLS and log in (or\n"
"                            join) within SEC seconds (default 10)\n"
"      --max-login-connections N\n"
"                            connections still logging in at once (default\n"
"                            a quarter of --max-connections): the rest are\n"
"                            kept for users who have logged in\n"
"      --max-ip-logins N     connections logging in at once from one\n"
"                            address (default 8)\n"
"      --min-rate SIZE       a frame must arrive at least this fast once it\n"
"                            has started, in bytes/s (default 64K), so a\n"
"                            peer cannot hold a slot by trickling bytes\n"
"      --stream-nice N       run data connections' threads N nice levels\n"
"                            below the rest, so logins and the gateway\n"
"                            answer fast during uploads (0-19, default 10)\n"
"      --staging-ttl SEC     remove sessions idle this long (default 86400);\n"
"                            until then an interrupted upload resumes\n"
"      --sync MODE           full (default): an ACK means data and journal\n"
"                            are synced to disk (survives power loss);\n"
"                            none: no fdatasync (survives a crash of\n"
"                            paraflowd only)\n"
"      --stop-grace SEC      on SIGTERM, let chunks in flight finish for up\n"
"                            to SEC seconds (default 10)\n"
"      --port-file FILE      write the bound port to FILE once listening\n"
"      --login-log-interval SEC\n"
"                            sum failed logins (they are throttled) up in\n"
"                            one log line every SEC seconds (default 60)\n"
"\n"
"TLS (TLS 1.3 on the native port and the gateway, on by default):\n"
"      --tls-cert FILE       the certificate (PEM; a chain may follow it)\n"
"      --tls-key FILE        its private key (PEM)\n"
"      --tls-dir DIR         without --tls-cert: where the self-signed pair\n"
"                            made on first start lives (default\n"
"                            STORAGE/.tls)\n"
"      --fingerprint         print the certificate's public-key pin\n"
"                            (sha256//..., the form curl's pinned public\n"
"                            key takes) and exit, making the pair first\n"
"                            if needed\n"
"      --no-tls              speak the plaintext protocol (trusted links,\n"
"                            benchmarks); clients must say --no-tls too\n"
"      --http-no-tls         serve the gateway over plain HTTP\n"
"\n"
"HTTP gateway (REST status API, metrics, downloads, dashboard):\n"
"      --http-port PORT      HTTP port (default 8080; 0 picks a free one)\n"
"      --http-bind ADDR      address to serve HTTP on (default 127.0.0.1)\n"
"      --no-http             serve no HTTP at all\n"
"      --http-port-file FILE write the bound HTTP port to FILE\n"
"      --admin NAME          NAME sees and acts on every user's sessions\n"
"                            (repeatable); others see only their own\n"
"      --http-auth-all       require a login for /healthz, /readyz and\n"
"                            /metrics too (open by default)\n"
"      --http-max-connections N\n"
"                            HTTP connections at once (default 128)\n"
"      --http-max-per-ip N   HTTP connections per client address (default\n"
"                            32)\n"
"      --http-max-user-events N\n"
"                            event streams per user (default 8); all\n"
"                            users' together take at most half of\n"
"                            --http-max-connections\n"
"      --http-timeout SEC    close idle HTTP connections after SEC seconds,\n"
"                            and any request not received in 3 x SEC\n"
"                            (default 10)\n"
"      --www DIR             serve the dashboard from DIR (default\n"
"                            " PF_WWW_DIR ")\n"
"  -v, --verbose             log more (repeat for debug)\n"
"  -q, --quiet               log errors and warnings only\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n"
"\n"
"User management:\n"
"      --add-user NAME       add or replace NAME in the --users file; the\n"
"                            password is read from the terminal (twice), or\n"
"                            from the first line of standard input when it\n"
"                            is not a terminal; never from the command line\n"
"      --iterations N        PBKDF2 iterations for --add-user (default 4096)\n"
"\n"
"Without --users, paraflowd accepts one user, \"paraflow\", with the password\n"
"\"secret123\", logs a warning, and refuses to start on a non-loopback\n"
"address unless --insecure-default-user is given.\n"
"\n"
"Executables and scripts are refused by extension (after Unicode\n"
"normalisation), by content (libmagic), and as Windows device names.\n"
"Uploads in progress are kept in DIR/.staging and survive a restart: a\n"
"client that runs the same upload again sends only the missing chunks.\n"
"Finished files are stored as DIR/<session-id>/<sanitized name>.\n"
"\n"
"Exit status: 0 after a clean stop (SIGTERM or SIGINT), 1 on a start-up\n"
"error, 2 on a usage error.\n";

enum {
	OPT_INSECURE = 256,
	OPT_FORBIDDEN,
	OPT_ALLOW_EXT,
	OPT_MAX_FILE,
	OPT_MAX_SESSIONS,
	OPT_MAX_CONNS,
	OPT_IDLE,
	OPT_PORT_FILE,
	OPT_ADD_USER,
	OPT_ITERATIONS,
	OPT_MIN_FREE,
	OPT_MAX_USER_CONNS,
	OPT_MIN_RATE,
	OPT_STAGING_TTL,
	OPT_SYNC,
	OPT_STOP_GRACE,
	OPT_HTTP_PORT,
	OPT_HTTP_BIND,
	OPT_NO_HTTP,
	OPT_HTTP_PORT_FILE,
	OPT_ADMIN,
	OPT_HTTP_AUTH_ALL,
	OPT_HTTP_MAX_CONNS,
	OPT_HTTP_MAX_PER_IP,
	OPT_HTTP_TIMEOUT,
	OPT_WWW,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_DIR,
	OPT_FINGERPRINT,
	OPT_NO_TLS,
	OPT_HTTP_NO_TLS,
	OPT_MAX_USER_SESSIONS,
	OPT_MAX_USER_RESERVED,
	OPT_MAX_USER_SHARE,
	OPT_LOGIN_TIMEOUT,
	OPT_MAX_LOGINS,
	OPT_MAX_IP_LOGINS,
	OPT_STREAM_NICE,
	OPT_HTTP_MAX_USER_EVENTS,
	OPT_LOGIN_LOG,
	OPT_S3_ENDPOINT,
	OPT_S3_REGION,
	OPT_S3_CREDENTIALS,
	OPT_NODE_DIR
};

static const struct option options[] = {
	{ "port", required_argument, NULL, 'p' },
	{ "bind", required_argument, NULL, 'b' },
	{ "storage", required_argument, NULL, 's' },
	{ "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },
	{ "s3-region", required_argument, NULL, OPT_S3_REGION },
	{ "s3-credentials", required_argument, NULL, OPT_S3_CREDENTIALS },
	{ "node-dir", required_argument, NULL, OPT_NODE_DIR },
	{ "users", required_argument, NULL, 'u' },
	{ "insecure-default-user", no_argument, NULL, OPT_INSECURE },
	{ "forbidden-ext", required_argument, NULL, OPT_FORBIDDEN },
	{ "allow-ext", required_argument, NULL, OPT_ALLOW_EXT },
	{ "max-file-size", required_argument, NULL, OPT_MAX_FILE },
	{ "max-sessions", required_argument, NULL, OPT_MAX_SESSIONS },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNS },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "login-timeout", required_argument, NULL, OPT_LOGIN_TIMEOUT },
	{ "max-login-connections", required_argument, NULL, OPT_MAX_LOGINS },
	{ "max-ip-logins", required_argument, NULL, OPT_MAX_IP_LOGINS },
	{ "stream-nice", required_argument, NULL, OPT_STREAM_NICE },
	{ "port-file", required_argument, NULL, OPT_PORT_FILE },
	{ "add-user", required_argument, NULL, OPT_ADD_USER },
	{ "iterations", required_argument, NULL, OPT_ITERATIONS },
	{ "min-free-space", required_argument, NULL, OPT_MIN_FREE },
	{ "max-user-connections", required_argument, NULL,
	    OPT_MAX_USER_CONNS },
	{ "max-user-sessions", required_argument, NULL,
	    OPT_MAX_USER_SESSIONS },
	{ "max-user-reserved", required_argument, NULL,
	    OPT_MAX_USER_RESERVED },
	{ "max-user-share", required_argument, NULL, OPT_MAX_USER_SHARE },
	{ "min-rate", required_argument, NULL, OPT_MIN_RATE },
	{ "staging-ttl", required_argument, NULL, OPT_STAGING_TTL },
	{ "sync", required_argument, NULL, OPT_SYNC },
	{ "stop-grace", required_argument, NULL, OPT_STOP_GRACE },
	{ "http-port", required_argument, NULL, OPT_HTTP_PORT },
	{ "http-bind", required_argument, NULL, OPT_HTTP_BIND },
	{ "no-http", no_argument, NULL, OPT_NO_HTTP },
	{ "http-port-file", required_argument, NULL, OPT_HTTP_PORT_FILE },
	{ "admin", required_argument, NULL, OPT_ADMIN },
	{ "http-auth-all", no_argument, NULL, OPT_HTTP_AUTH_ALL },
	{ "http-max-connections", required_argument, NULL,
	    OPT_HTTP_MAX_CONNS },
	{ "http-max-per-ip", required_argument, NULL, OPT_HTTP_MAX_PER_IP },
	{ "http-max-user-events", required_argument, NULL,
	    OPT_HTTP_MAX_USER_EVENTS },
	{ "http-timeout", required_argument, NULL, OPT_HTTP_TIMEOUT },
	{ "www", required_argument, NULL, OPT_WWW },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-dir", required_argument, NULL, OPT_TLS_DIR },
	{ "fingerprint", no_argument, NULL, OPT_FINGERPRINT },
	{ "no-tls", no_argument, NULL, OPT_NO_TLS },
	{ "http-no-tls", no_argument, NULL, OPT_HTTP_NO_TLS },
	{ "login-log-interval", required_argument, NULL, OPT_LOGIN_LOG },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

/* What the command line says about TLS. */
struct tls_opts {
	const char	*cert, *key;	/* given; else the self-signed pair */
	const char	*dir;		/* of the self-signed pair */
	bool		 off;		/* --no-tls */
	bool		 http_off;	/* --http-no-tls */
	bool		 fingerprint;	/* --fingerprint */
	char		 cert_buf[4096], key_buf[4096];
};

/*
 * Settles which certificate and key serve TLS: the ones given, or the
 * self-signed pair in the TLS directory, made on first start. Logs (or,
 * for --fingerprint, prints) the pin. 0, or -1 after saying why.
 */
static int
tls_setup(struct tls_opts *t, const char *storage)
{
	char pin[PF_TLS_PIN_LEN + 1], err[512], dir[4096];
	bool created = false;

	if ((t->cert == NULL) != (t->key == NULL)) {
		log_error("--tls-cert and --tls-key go together");
		return -1;
	}
	if (t->cert == NULL) {
		if (t->dir == NULL) {
			snprintf(dir, sizeof(dir), "%s/.tls", storage);
			t->dir = dir;
			/* The storage directory may be new. */
			mkdir(storage, 0750);
		}
		if (pf_tls_ensure_self_signed(t->dir, "paraflowd", &created,
		    err, sizeof(err)) != PF_OK) {
			log_error("TLS: %s", err);
			return -1;
		}
		snprintf(t->cert_buf, sizeof(t->cert_buf), "%s/%s", t->dir,
		    PF_TLS_CERT_NAME);
		snprintf(t->key_buf, sizeof(t->key_buf), "%s/%s", t->dir,
		    PF_TLS_KEY_NAME);
		t->cert = t->cert_buf;
		t->key = t->key_buf;
		t->dir = NULL;	/* dir may be this frame's */
	}
	if (pf_tls_pin_of_file(t->cert, pin) != PF_OK) {
		log_error("%s: no certificate to read", t->cert);
		return -1;
	}
	if (t->fingerprint)
		printf("%s\n", pin);
	else if (created)
		log_info("TLS: made a self-signed certificate, %s; its "
		    "fingerprint is %s", t->cert, pin);
	else
		log_info("TLS: certificate %s, fingerprint %s", t->cert, pin);
	return 0;
}

/* --add-user: read the password off argv and write the verifier. */
static int
add_user(const char *users, const char *user, unsigned iterations)
{
	char pass[SCRAM_MAX_PASSWORD + 1], again[SCRAM_MAX_PASSWORD + 1];
	enum pf_status rc;

	if (users == NULL)
		pf_usage_error("%s", "--add-user needs --users FILE");
	if (!proto_user_valid(user))
		pf_usage_error("bad user name '%s': use 1-64 of A-Z a-z 0-9 "
		    ". _ @ + -", user);
	if (isatty(STDIN_FILENO)) {
		rc = pf_read_secret_tty("Password: ", pass, sizeof(pass));
		if (rc == PF_OK)
			rc = pf_read_secret_tty("Again: ", again,
			    sizeof(again));
		if (rc == PF_OK && strcmp(pass, again) != 0) {
			fprintf(stderr, "paraflowd: passwords differ\n");
			rc = PF_EUSAGE;
		}
		pf_wipe(again, sizeof(again));
	} else
		rc = pf_read_secret_fd(STDIN_FILENO, pass, sizeof(pass));
	if (rc != PF_OK) {
		if (rc != PF_EUSAGE || isatty(STDIN_FILENO) == 0)
			fprintf(stderr, "paraflowd: no password read\n");
		pf_wipe(pass, sizeof(pass));
		return 1;
	}
	rc = auth_users_add(users, user, pass, iterations);
	pf_wipe(pass, sizeof(pass));
	if (rc != PF_OK) {
		fprintf(stderr, "paraflowd: cannot update %s: %s\n", users,
		    pf_status_message(rc));
		return 1;
	}
	fprintf(stderr, "paraflowd: user %s saved in %s\n", user, users);
	return 0;
}

/* Written atomically: a reader never sees a half-written port. */
static int
write_port_file(const char *path, unsigned port)
{
	char text[16];
	int n = snprintf(text, sizeof(text), "%u\n", port);

	return pf_write_atomic(AT_FDCWD, path, text, (size_t)n, 0644);
}

int
main(int argc, char **argv)
{
	struct engine_config cfg;
	struct httpd_config hcfg;
	struct engine *e = NULL;
	struct httpd *h = NULL;
	const char *port_file = NULL, *new_user = NULL;
	const char *node_dir = NULL;
	const char *http_port_file = NULL;
	char admins[1024] = "";
	struct tls_opts tls = { .cert = NULL };
	bool http = true;
	unsigned iterations = SCRAM_DEFAULT_ITERATIONS;
	int verbosity = PF_LOG_INFO, ch, sig;
	uint64_t size;
	sigset_t set;

	pf_log_set_prog("paraflowd");
	engine_config_defaults(&cfg);
	httpd_config_defaults(&hcfg);
	hcfg.www_dir = PF_WWW_DIR;
	while ((ch = getopt_long(argc, argv, "p:b:s:u:vqhV", options,
	    NULL)) != -1) {
		switch (ch) {
		case 'p':
			cfg.port = pf_arg_uint("port", optarg, 0, 65535);
			break;
		case 'b':
			cfg.bind = optarg;
			break;
		case 's':
			if (strncmp(optarg, "s3://", 5) == 0)
				cfg.s3_target = optarg;
			else
				cfg.storage_dir = optarg;
			break;
		case OPT_S3_ENDPOINT:
			cfg.s3_endpoint = optarg;
			break;
		case OPT_S3_REGION:
			cfg.s3_region = optarg;
			break;
		case OPT_S3_CREDENTIALS:
			cfg.s3_credentials = optarg;
			break;
		case OPT_NODE_DIR:
			node_dir = optarg;
			break;
		case 'u':
			cfg.users_file = optarg;
			break;
		case OPT_INSECURE:
			cfg.insecure_default_user = true;
			break;
		case OPT_FORBIDDEN:
			cfg.forbidden_exts = optarg;
			break;
		case OPT_ALLOW_EXT:
			cfg.allowed_exts = optarg;
			break;
		case OPT_MAX_FILE:
			if (pf_parse_size(optarg, &size) != PF_OK)
				pf_usage_error("bad size for --%s",
				    "max-file-size");
			cfg.max_file_size = size;
			break;
		case OPT_MIN_FREE:
			if (pf_parse_size(optarg, &size) != PF_OK)
				pf_usage_error("bad size for --%s",
				    "min-free-space");
			cfg.min_free_space = size;
			break;
		case OPT_MAX_USER_CONNS:
			cfg.max_user_connections = pf_arg_uint(
			    "max-user-connections", optarg, 1, 100000);
			break;
		case OPT_MAX_USER_SESSIONS:
			cfg.max_user_sessions = pf_arg_uint(
			    "max-user-sessions", optarg, 1, 100000);
			break;
		case OPT_MAX_USER_RESERVED:
			if (pf_parse_size(optarg, &size) != PF_OK)
				pf_usage_error("bad size for --%s",
				    "max-user-reserved");
			cfg.max_user_reserved = size;
			break;
		case OPT_MAX_USER_SHARE:
			cfg.max_user_share = pf_arg_uint("max-user-share",
			    optarg, 1, 100);
			break;
		case OPT_MIN_RATE:
			if (pf_parse_size(optarg, &size) != PF_OK ||
			    size == 0 || size > UINT32_MAX)
				pf_usage_error("bad rate for --%s",
				    "min-rate");
			cfg.min_rate = (unsigned)size;
			break;
		case OPT_STAGING_TTL:
			cfg.staging_ttl_s = pf_arg_uint("staging-ttl", optarg,
			    1, 365 * 86400);
			break;
		case OPT_SYNC:
			if (strcmp(optarg, "full") != 0 &&
			    strcmp(optarg, "none") != 0)
				pf_usage_error("--sync is full or none, not "
				    "'%s'", optarg);
			cfg.no_sync = strcmp(optarg, "none") == 0;
			break;
		case OPT_STOP_GRACE:
			cfg.stop_grace_ms = 1000 * pf_arg_uint("stop-grace",
			    optarg, 0, 3600);
			break;
		case OPT_MAX_SESSIONS:
			cfg.max_sessions = pf_arg_uint("max-sessions", optarg,
			    1, 100000);
			break;
		case OPT_MAX_CONNS:
			cfg.max_connections = pf_arg_uint("max-connections",
			    optarg, 1, 100000);
			break;
		case OPT_IDLE:
			cfg.idle_timeout_ms = 1000 * pf_arg_uint("idle-timeout",
			    optarg, 1, 86400);
			break;
		case OPT_LOGIN_TIMEOUT:
			cfg.login_timeout_ms = 1000 * pf_arg_uint(
			    "login-timeout", optarg, 1, 3600);
			break;
		case OPT_MAX_LOGINS:
			cfg.max_login_connections = pf_arg_uint(
			    "max-login-connections", optarg, 1, 100000);
			break;
		case OPT_MAX_IP_LOGINS:
			cfg.max_ip_logins = pf_arg_uint("max-ip-logins",
			    optarg, 1, 100000);
			break;
		case OPT_STREAM_NICE:
			cfg.stream_nice = pf_arg_uint("stream-nice", optarg,
			    0, 19);
			break;
		case OPT_PORT_FILE:
			port_file = optarg;
			break;
		case OPT_LOGIN_LOG:
			cfg.login_log_interval_s = pf_arg_uint(
			    "login-log-interval", optarg, 1, 86400);
			break;
		case OPT_HTTP_PORT:
			hcfg.port = pf_arg_uint("http-port", optarg, 0, 65535);
			break;
		case OPT_HTTP_BIND:
			hcfg.bind = optarg;
			break;
		case OPT_NO_HTTP:
			http = false;
			break;
		case OPT_HTTP_PORT_FILE:
			http_port_file = optarg;
			break;
		case OPT_ADMIN:
			if (!proto_user_valid(optarg))
				pf_usage_error("bad user name '%s' for "
				    "--admin", optarg);
			if (strlen(admins) + strlen(optarg) + 2 >
			    sizeof(admins))
				pf_usage_error("%s", "too many --admin names");
			if (admins[0] != '\0')
				strcat(admins, ",");
			strcat(admins, optarg);
			break;
		case OPT_HTTP_AUTH_ALL:
			hcfg.auth_all = true;
			break;
		case OPT_HTTP_MAX_CONNS:
			hcfg.max_connections = pf_arg_uint(
			    "http-max-connections", optarg, 1, 10000);
			break;
		case OPT_HTTP_MAX_PER_IP:
			hcfg.max_per_ip = pf_arg_uint("http-max-per-ip",
			    optarg, 1, 10000);
			break;
		case OPT_HTTP_MAX_USER_EVENTS:
			hcfg.max_user_events = pf_arg_uint(
			    "http-max-user-events", optarg, 1, 10000);
			break;
		case OPT_HTTP_TIMEOUT:
			hcfg.timeout_s = pf_arg_uint("http-timeout", optarg,
			    1, 3600);
			break;
		case OPT_TLS_CERT:
			tls.cert = optarg;
			break;
		case OPT_TLS_KEY:
			tls.key = optarg;
			break;
		case OPT_TLS_DIR:
			tls.dir = optarg;
			break;
		case OPT_FINGERPRINT:
			tls.fingerprint = true;
			break;
		case OPT_NO_TLS:
			tls.off = true;
			break;
		case OPT_HTTP_NO_TLS:
			tls.http_off = true;
			break;
		case OPT_WWW:
			hcfg.www_dir = optarg;
			break;
		case OPT_ADD_USER:
			new_user = optarg;
			break;
		case OPT_ITERATIONS:
			iterations = pf_arg_uint("iterations", optarg,
			    SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS);
			break;
		case 'v':
			if (verbosity < PF_LOG_DEBUG)
				verbosity++;
			break;
		case 'q':
			verbosity = PF_LOG_WARN;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("paraflowd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'paraflowd --help' for more "
			    "information.\n");
			return 2;
		}
	}
	if (optind != argc)
		pf_usage_error("unexpected argument '%s'", argv[optind]);
	if (cfg.s3_target == NULL && (cfg.s3_endpoint != NULL ||
	    cfg.s3_region != NULL || cfg.s3_credentials != NULL ||
	    node_dir != NULL))
		pf_usage_error("--s3-* and --node-dir need --storage s3://...");
	if (cfg.s3_target != NULL && node_dir != NULL)
		cfg.storage_dir = node_dir;
	pf_log_set_level((enum pf_log_level)verbosity);
	if (new_user != NULL)
		return add_user(cfg.users_file, new_user, iterations);
	if (tls.fingerprint || !tls.off || (http && !tls.http_off)) {
		if (tls_setup(&tls, cfg.storage_dir) == -1)
			return 1;
		if (tls.fingerprint)
			return 0;
		if (!tls.off) {
			cfg.tls_cert = tls.cert;
			cfg.tls_key = tls.key;
		}
		if (!tls.http_off) {
			hcfg.tls_cert = tls.cert;
			hcfg.tls_key = tls.key;
		}
	}
	if (tls.off && !pf_addr_is_loopback(cfg.bind ? cfg.bind : "127.0.0.1"))
		log_warn("--no-tls on %s: uploads, names and logins cross the "
		    "network in clear", cfg.bind);

	/* A size limit or a closed peer is an error return, not a death. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	/* Threads inherit this mask; only sigwait below sees these. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	hcfg.admins = admins;
	if (engine_new(&cfg, &e) != PF_OK || engine_start(e) != PF_OK ||
	    (http && httpd_start(&hcfg, e, &h) != PF_OK)) {
		if (e != NULL)
			engine_stop(e);
		engine_free(e);
		return 1;
	}
	if (port_file != NULL && write_port_file(port_file,
	    engine_port(e)) == -1)
		log_warn("cannot write %s", port_file);
	if (h != NULL && http_port_file != NULL &&
	    write_port_file(http_port_file, httpd_port(h)) == -1)
		log_warn("cannot write %s", http_port_file);
	if (sigwait(&set, &sig) == 0)
		log_info("%s received, stopping", strsignal(sig));
	/* The gateway reads the engine: it goes first. */
	httpd_stop(h);
	engine_stop(e);
	engine_free(e);
	return 0;
}
