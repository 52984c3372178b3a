#!/bin/bash
# SPDX-License-Identifier: MIT
# The container's entrypoint: turns PARAFLOW_* environment variables into
# paraflowd options, checks them so that a mistake names the variable at
# fault, and execs paraflowd, which then receives docker stop's SIGTERM
# itself (as PID 1 it still does: it waits for SIGTERM with sigwait, and a
# blocked signal is never discarded).
#
#   paraflow-entrypoint [OPTION]...   paraflowd with the options from the
#                                     environment, then OPTIONs (which win)
#   paraflow-entrypoint COMMAND...    runs COMMAND as it is, e.g.
#                                     paraflowd --users F --add-user NAME
#
# Exit status (before paraflowd runs): 2 for a bad variable, 1 for a users
# file that is missing or unreadable, or a paraflowd that cannot be run.
# Nothing here is Docker-specific: PARAFLOWD and PARAFLOW_USERS_FILE point
# it at any installed tree, which is how tests/integ/t_deploy.sh runs it.
# No globbing (-f): PARAFLOW_ADMINS is split into words, never into files.
set -euf

prog=paraflow-entrypoint
PARAFLOWD=${PARAFLOWD:-/usr/sbin/paraflowd}
# The secret compose mounts; used when present, needed off loopback.
default_users=/run/secrets/paraflow_users

die() {
	local rc=$1
	shift
	printf '%s: %s\n' "$prog" "$*" >&2
	exit "$rc"
}

# A command rather than options: run it untouched (the image's tools,
# paraflowd --add-user, paraflow upload, a shell for debugging).
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
	exec "$@"
fi

[ -x "$PARAFLOWD" ] ||
    die 1 "cannot run paraflowd at '$PARAFLOWD' (set PARAFLOWD)"

args=()

# uint VAR MIN MAX: fails unless $VAR is a decimal number in [MIN, MAX].
uint() {
	local v=${!1}
	case $v in
	'' | *[!0-9]*) die 2 "$1='$v' is not a number ($2 to $3)" ;;
	esac
	# Ten digits at most, so that the shell's arithmetic cannot overflow.
	if [ ${#v} -gt 10 ] || [ $((10#$v)) -lt "$2" ] ||
	    [ $((10#$v)) -gt "$3" ]; then
		die 2 "$1='$v' is out of range ($2 to $3)"
	fi
}

# size VAR: fails unless $VAR is a size as paraflowd reads one: digits and
# an optional K, M, G or T (4M, 4MB and 4MiB alike).
size() {
	local v=${!1}
	if ! [[ $v =~ ^[0-9]{1,20}([KkMmGgTt]([Bb]|[Ii][Bb])?)?$ ]]; then
		die 2 "$1='$v' is not a size (digits and an optional K, M," \
		    "G or T, e.g. 512M)"
	fi
}

# flag VAR: true for 1/true/yes/on, false for 0/false/no/off or unset.
flag() {
	local v=${!1:-0}
	case ${v,,} in
	1 | true | yes | on) return 0 ;;
	0 | false | no | off | '') return 1 ;;
	esac
	die 2 "$1='$v' is not a boolean (1/true/yes/on or 0/false/no/off)"
}

# opt VAR OPTION CHECK [CHECK ARGS]: OPTION with $VAR's value when VAR is
# set and not empty, after CHECK accepts it.
opt() {
	local var=$1 option=$2 check=$3
	shift 3
	[ -n "${!var:-}" ] || return 0
	"$check" "$var" "$@"
	args+=("$option" "${!var}")
}

any() {
	return 0
}

loopback() {
	case $1 in
	127.* | ::1 | '[::1]' | localhost) return 0 ;;
	esac
	return 1
}

# --- The native protocol ---------------------------------------------

PARAFLOW_BIND=${PARAFLOW_BIND:-0.0.0.0}
PARAFLOW_PORT=${PARAFLOW_PORT:-7878}
PARAFLOW_STORAGE=${PARAFLOW_STORAGE:-/var/lib/paraflow}
opt PARAFLOW_PORT --port uint 0 65535
opt PARAFLOW_BIND --bind any
opt PARAFLOW_STORAGE --storage any
opt PARAFLOW_PORT_FILE --port-file any

# S3 storage (PARAFLOW_STORAGE=s3://BUCKET/PREFIX, docs/scale-out.md):
# the keys come from a file (a secret) or the AWS_* variables, never
# from an option.
case $PARAFLOW_STORAGE in
s3://*)
	[ -n "${PARAFLOW_S3_ENDPOINT:-}" ] ||
	    die 2 "PARAFLOW_STORAGE=$PARAFLOW_STORAGE needs" \
	        "PARAFLOW_S3_ENDPOINT (the store's http(s)://host:port)"
	if [ -n "${PARAFLOW_S3_CREDENTIALS:-}" ] &&
	    ! [ -r "$PARAFLOW_S3_CREDENTIALS" ]; then
		die 1 "PARAFLOW_S3_CREDENTIALS: $PARAFLOW_S3_CREDENTIALS is" \
		    "not readable by uid $(id -u)"
	fi
	opt PARAFLOW_S3_ENDPOINT --s3-endpoint any
	opt PARAFLOW_S3_REGION --s3-region any
	opt PARAFLOW_S3_CREDENTIALS --s3-credentials any
	opt PARAFLOW_NODE_DIR --node-dir any
	;;
*)
	for v in PARAFLOW_S3_ENDPOINT PARAFLOW_S3_REGION \
	    PARAFLOW_S3_CREDENTIALS PARAFLOW_NODE_DIR; do
		[ -z "${!v:-}" ] ||
		    die 2 "$v is set, but PARAFLOW_STORAGE is not s3://"
	done
	;;
esac
opt PARAFLOW_LOGIN_LOG_INTERVAL --login-log-interval uint 1 86400

# The users file: one named on purpose must be there; the compose secret
# is used when mounted. Without one paraflowd serves only the default
# password, and only on loopback; it says so itself, but the way out is
# different in a container, so say it here first.
users=${PARAFLOW_USERS_FILE:-}
if [ -z "$users" ] && [ -e "$default_users" ]; then
	users=$default_users
fi
if [ -n "$users" ]; then
	[ -e "$users" ] ||
	    die 1 "users file $users (PARAFLOW_USERS_FILE) does not exist;" \
	        "create it with: paraflowd --users $users --add-user NAME"
	if ! [ -f "$users" ] || ! [ -r "$users" ]; then
		die 1 "users file $users is not a file readable by uid" \
		    "$(id -u); on the host, give it to that uid (chown" \
		    "$(id -u) FILE) and keep it mode 0600"
	fi
	args+=(--users "$users")
elif flag PARAFLOW_INSECURE_DEFAULT_USER; then
	args+=(--insecure-default-user)
elif ! loopback "$PARAFLOW_BIND"; then
	die 1 "no users file: mount one at $default_users (the compose" \
	    "secret paraflow_users) or set PARAFLOW_USERS_FILE; create it" \
	    "with: paraflowd --users FILE --add-user NAME. Without one," \
	    "paraflowd accepts only the default password, and only on" \
	    "loopback (PARAFLOW_BIND=127.0.0.1)."
fi
flag PARAFLOW_INSECURE_DEFAULT_USER || true

# TLS: on by default. A certificate and key of one's own, or the
# self-signed pair paraflowd makes on first start in PARAFLOW_TLS_DIR (by
# default STORAGE/.tls, inside the storage volume, so the key and the
# fingerprint clients pinned survive a new container).
if [ -n "${PARAFLOW_TLS_CERT:-}" ] || [ -n "${PARAFLOW_TLS_KEY:-}" ]; then
	if [ -z "${PARAFLOW_TLS_CERT:-}" ] || [ -z "${PARAFLOW_TLS_KEY:-}" ]
	then
		die 2 "PARAFLOW_TLS_CERT and PARAFLOW_TLS_KEY go together"
	fi
	for v in PARAFLOW_TLS_CERT PARAFLOW_TLS_KEY; do
		[ -r "${!v}" ] ||
		    die 1 "$v: ${!v} is not readable by uid $(id -u)"
	done
fi
opt PARAFLOW_TLS_CERT --tls-cert any
opt PARAFLOW_TLS_KEY --tls-key any
opt PARAFLOW_TLS_DIR --tls-dir any
if flag PARAFLOW_NO_TLS; then
	args+=(--no-tls)
fi
if flag PARAFLOW_HTTP_NO_TLS; then
	args+=(--http-no-tls)
fi

# Set but empty is meaningful here: "" refuses no extension by name.
if [ -n "${PARAFLOW_FORBIDDEN_EXT+set}" ]; then
	args+=(--forbidden-ext "$PARAFLOW_FORBIDDEN_EXT")
fi
opt PARAFLOW_ALLOW_EXT --allow-ext any
opt PARAFLOW_MAX_FILE_SIZE --max-file-size size
opt PARAFLOW_MIN_FREE_SPACE --min-free-space size
opt PARAFLOW_MAX_SESSIONS --max-sessions uint 1 100000
opt PARAFLOW_MAX_CONNECTIONS --max-connections uint 1 100000
opt PARAFLOW_MAX_USER_CONNECTIONS --max-user-connections uint 1 100000
opt PARAFLOW_MAX_USER_SESSIONS --max-user-sessions uint 1 100000
opt PARAFLOW_MAX_USER_RESERVED --max-user-reserved size
opt PARAFLOW_MAX_USER_SHARE --max-user-share uint 1 100
opt PARAFLOW_IDLE_TIMEOUT --idle-timeout uint 1 86400
opt PARAFLOW_LOGIN_TIMEOUT --login-timeout uint 1 3600
opt PARAFLOW_MAX_LOGIN_CONNECTIONS --max-login-connections uint 1 100000
opt PARAFLOW_MAX_IP_LOGINS --max-ip-logins uint 1 100000
opt PARAFLOW_MIN_RATE --min-rate size
opt PARAFLOW_STREAM_NICE --stream-nice uint 0 19
opt PARAFLOW_STAGING_TTL --staging-ttl uint 1 31536000
opt PARAFLOW_STOP_GRACE --stop-grace uint 0 3600
case ${PARAFLOW_SYNC:-} in
'') ;;
full | none) args+=(--sync "$PARAFLOW_SYNC") ;;
*) die 2 "PARAFLOW_SYNC='$PARAFLOW_SYNC' is neither full nor none" ;;
esac
case ${PARAFLOW_LOG_LEVEL:-info} in
info) ;;
quiet) args+=(--quiet) ;;
verbose) args+=(--verbose) ;;
debug) args+=(--verbose --verbose) ;;
*) die 2 "PARAFLOW_LOG_LEVEL='$PARAFLOW_LOG_LEVEL' is not one of" \
    "quiet, info, verbose, debug" ;;
esac

# --- The HTTP gateway --------------------------------------------------

http_vars="PARAFLOW_HTTP_PORT PARAFLOW_HTTP_BIND PARAFLOW_HTTP_PORT_FILE
PARAFLOW_HTTP_AUTH_ALL PARAFLOW_ADMINS PARAFLOW_HTTP_MAX_CONNECTIONS
PARAFLOW_HTTP_MAX_PER_IP PARAFLOW_HTTP_MAX_USER_EVENTS PARAFLOW_HTTP_TIMEOUT
PARAFLOW_WWW"

# A paraflowd built without the gateway runs the native protocol alone;
# asking it for gateway settings is a mistake worth stopping on.
if ! "$PARAFLOWD" --help 2>/dev/null | grep -q -e '--http-port'; then
	for v in $http_vars; do
		[ -z "${!v:-}" ] ||
		    die 2 "$v is set, but $PARAFLOWD has no HTTP gateway"
	done
elif flag PARAFLOW_NO_HTTP; then
	args+=(--no-http)
else
	# The dashboard follows the native protocol's address unless told
	# otherwise: in a container, 127.0.0.1 could not be published.
	PARAFLOW_HTTP_BIND=${PARAFLOW_HTTP_BIND:-$PARAFLOW_BIND}
	opt PARAFLOW_HTTP_PORT --http-port uint 0 65535
	opt PARAFLOW_HTTP_BIND --http-bind any
	opt PARAFLOW_HTTP_PORT_FILE --http-port-file any
	flag PARAFLOW_HTTP_AUTH_ALL && args+=(--http-auth-all)
	opt PARAFLOW_HTTP_MAX_CONNECTIONS --http-max-connections uint 1 10000
	opt PARAFLOW_HTTP_MAX_PER_IP --http-max-per-ip uint 1 10000
	opt PARAFLOW_HTTP_MAX_USER_EVENTS --http-max-user-events uint 1 10000
	opt PARAFLOW_HTTP_TIMEOUT --http-timeout uint 1 3600
	opt PARAFLOW_WWW --www any
	# Names separated by commas or spaces; the characters a user name
	# may hold (see paraflowd --add-user).
	admins=${PARAFLOW_ADMINS:-}
	for name in ${admins//,/ }; do
		[[ $name =~ ^[A-Za-z0-9._@+-]{1,64}$ ]] ||
		    die 2 "PARAFLOW_ADMINS: '$name' is not a user name"
		args+=(--admin "$name")
	done
fi
flag PARAFLOW_NO_HTTP || true

# No secret is in the command line (the users file holds verifiers and is
# passed by name), so it can be shown; it is what docker logs starts with.
printf '%s: exec %s' "$prog" "$PARAFLOWD" >&2
printf ' %q' "${args[@]}" "$@" >&2
printf '\n' >&2
exec "$PARAFLOWD" "${args[@]}" "$@"
