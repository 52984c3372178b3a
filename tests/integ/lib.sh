# SPDX-License-Identifier: MIT
# Shared helpers for the integration tests: a scratch directory, a real
# paraflowd on 127.0.0.1 with an ephemeral port, TAP output, and cleanup
# of every process started. Source it; don't run it.
# shellcheck shell=bash

set -u

# The directory of the test scripts (and of pfwire.py).
here=$(cd "$(dirname "$0")" && pwd)

top_builddir=${top_builddir:-$(pwd)}
PARAFLOWD=${PARAFLOWD:-$top_builddir/paraflowd}
PARAFLOW=${PARAFLOW:-$top_builddir/paraflow}
PFPROXY=${PFPROXY:-$top_builddir/tests/tools/pfproxy}

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-test.XXXXXX")
STORAGE=$T/storage
# The server's self-signed TLS pair, outside the storage it is checked in.
TLS_DIR=$T/tls
# What a client says to the server started last: --no-tls, or nothing.
NOTLS=()
# Resume state of the client stays inside the test directory.
export PARAFLOW_STATE_DIR=$T/state
PIDS=()
tap_n=0
tap_failed=0

# ours PID: true while PID is a child of this shell, or of the test's
# main shell when called in a subshell (a zombie included). A PID that
# was waited for, or that ended and was reaped, may be another process's
# by now: PIDs wrap within minutes on a busy machine, and a late kill of
# a stale PID once SIGKILLed another test's paraflowd.
ours() {
	local s f=()
	# A process that ends while its stat is read leaves it empty.
	{ s=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
	read -r -a f <<<"${s##*) }"
	[ "${#f[@]}" -gt 1 ] || return 1
	[ "${f[1]}" = "$BASHPID" ] || [ "${f[1]}" = "$$" ]
}

# signal_ours SIGNAL PID...: sends SIGNAL to each PID that is ours.
signal_ours() {
	local sig=$1 p
	shift
	for p in "$@"; do
		! ours "$p" || kill -"$sig" "$p" 2>/dev/null
	done
	return 0
}

# stop_all: ends every process the test started (SIGTERM, then wait).
stop_all() {
	local p
	signal_ours TERM "${PIDS[@]}"
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
}

cleanup() {
	stop_all
	if [ "$tap_failed" -gt 0 ] && [ -f "$T/server.log" ]; then
		echo "# --- server log ---"
		sed 's/^/# /' "$T/server.log" | tail -n 50
	fi
	rm -rf "$T"
}
trap cleanup EXIT

ok() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $*"
}

not_ok() {
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $*"
}

# check DESCRIPTION COMMAND...: one TAP result from a command's status.
check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1"
		echo "#   expected: $2"
		echo "#   got:      $3"
	fi
}

skip_all() {
	echo "1..0 # SKIP $*"
	exit 0
}

done_testing() {
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
	exit $?
}

# wait_file FILE [SECONDS]: wait until FILE exists and is not empty.
# Callers give 60 s to a process that starts: an ASan build on a loaded
# machine can take many seconds.
wait_file() {
	local i
	for ((i = 0; i < ${2:-10} * 20; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# start_server [ARGS...]: starts paraflowd, sets SERVER_PID and PORT, and
# HTTP_PORT and HTTP_URL for its gateway (empty with --no-http).
# shellcheck disable=SC2034 # HTTP_URL is read by the tests
#
# With TLS (unless ARGS say --no-tls) the pair is in $TLS_DIR and the
# client's known-servers file trusts it already, so no test meets the
# first-use note unless it means to; with --no-tls, NOTLS holds the
# client's --no-tls.
start_server() {
	local i from
	# A restart on the port it had (--port N) may find the port taken
	# for a moment (by a connection of another test): it exits, and is
	# started again. Any other failure to start ends the test.
	for ((i = 0; i < 50; i++)); do
		rm -f "$T/port" "$T/http_port"
		from=$(($(cat "$T/server.log" 2>/dev/null | wc -c) + 1))
		"$PARAFLOWD" --port 0 --bind 127.0.0.1 --storage "$STORAGE" \
		    --port-file "$T/port" --http-port 0 \
		    --http-port-file "$T/http_port" --tls-dir "$TLS_DIR" \
		    "$@" 2>>"$T/server.log" &
		SERVER_PID=$!
		PIDS+=("$SERVER_PID")
		until_up "$SERVER_PID" "$@" && break
		# Still running after 60 s, or exited for another reason.
		if ours "$SERVER_PID" || ! { wait "$SERVER_PID" 2>/dev/null
		    tail -c +"$from" "$T/server.log" |
		    grep -q 'Address already in use'; }; then
			echo "# paraflowd did not start"
			sed 's/^/# /' "$T/server.log"
			exit 1
		fi
		sleep 0.1
	done
	PORT=$(started "$T/port" paraflowd "$T/server.log") || exit 1
	tls_mode "$@"
	HTTP_PORT=
	HTTP_URL=
	if [[ " $* " != *" --no-http "* ]] && wait_file "$T/http_port" 60
	then
		HTTP_PORT=$(cat "$T/http_port")
		HTTP_URL=http://127.0.0.1:$HTTP_PORT
	fi
}

# free_port: a TCP port nobody uses now, for a process that cannot take
# port 0 and say which it got (HAProxy). Outside the kernel's ephemeral
# range, from which every connection's local port and every --port 0
# comes, so none of those can take it before the caller binds it.
free_port() {
	python3 - <<'PY'
import random, socket
lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
ports = [p for p in range(10000, 65536) if p < lo or p > hi]
random.shuffle(ports)
for p in ports + [0]:   # 0: none left outside the range
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        print(s.getsockname()[1])
        break
PY
}

# until_up PID [ARGS...]: waits (60 s at most) until paraflowd PID,
# started with ARGS, wrote its port files; false if it exited first or
# is still without them after 60 s.
until_up() {
	local pid=$1 i
	shift
	for ((i = 0; i < 3000; i++)); do
		[ -s "$T/port" ] && { [[ " $* " == *" --no-http "* ]] ||
		    [ -s "$T/http_port" ]; } && return 0
		ours "$pid" || return 1
		sleep 0.02
	done
	return 1
}

# tls_mode [ARGS...]: after a server started with ARGS on $PORT, sets
# NOTLS, and trusts its key (in $TLS_DIR) in the known-servers file.
#
# PFWIRE_TLS, exported, tells pfwire.py (the tests' hand-made client) to
# speak TLS or not, so that scripts running it need not know.
tls_mode() {
	local pin
	NOTLS=()
	export PFWIRE_TLS=1
	if [[ " $* " == *" --no-tls "* ]]; then
		NOTLS=(--no-tls)
		PFWIRE_TLS=0
		return 0
	fi
	pin=$(server_pin) || return 1
	mkdir -p "$PARAFLOW_STATE_DIR"
	echo "127.0.0.1:$PORT $pin" >>"$PARAFLOW_STATE_DIR/known_servers"
}

# server_pin [DIR]: the pin of the key in DIR (default $TLS_DIR).
server_pin() {
	"$PARAFLOWD" --fingerprint --tls-dir "${1:-$TLS_DIR}" \
	    --storage "$STORAGE"
}

# started PORTFILE NAME LOG: prints the port a process just started wrote
# to PORTFILE; if it never does, shows LOG as TAP comments and fails.
started() {
	if ! wait_file "$1" 60; then
		echo "# $2 did not start" >&2
		sed 's/^/# /' "$3" >&2
		return 1
	fi
	cat "$1"
}

# stop_server: SIGTERM, and check it exited cleanly (sanitizers report
# through the exit status).
stop_server() {
	local rc=0
	signal_ours TERM "$SERVER_PID"
	wait "$SERVER_PID" || rc=$?
	check_eq "paraflowd stopped cleanly on SIGTERM" 0 "$rc"
}

# upload [ARGS...]: runs paraflow upload against the test server.
upload() {
	"$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" "$@"
}

# mkfile NAME BYTES: a file of random bytes after a fixed prefix, so it
# never starts like an executable by chance ("MZ", "#!").
mkfile() {
	{ printf 'pf-data '; head -c "$2" /dev/urandom; } | head -c "$2" >"$1"
}

# flip_byte FILE OFFSET: inverts one byte in place, so the file surely
# changes (writing a fixed byte leaves it as it was when it matches).
flip_byte() {
	_b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\$(printf %o $((_b ^ 255)))" |
	    dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

sha() {
	sha256sum "$1" | cut -d' ' -f1
}

# stored_file SESSION NAME: path of a finished upload.
stored_file() {
	echo "$STORAGE/$1/$2"
}

# json_field JSON KEY: a top-level string or number from one JSON line.
json_field() {
	printf '%s' "$1" | sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",}]*\).*/\1/p"
}

# staging_empty: true when no upload is staged (paraflowd's own dot files,
# such as .boot, are not uploads).
staging_empty() {
	[ -z "$(find "$STORAGE/.staging" -mindepth 1 -maxdepth 1 \
	    ! -name '.*' 2>/dev/null)" ]
}

# stored_count: number of finished uploads in storage (paraflowd's own
# dot directories, .staging and .tls, are not uploads).
stored_count() {
	find "$STORAGE" -mindepth 1 -maxdepth 1 -type d ! -name '.*' |
	    wc -l
}

# staged_chunks: the chunks the largest journal of the uploads staged
# holds (a record is 48 bytes), 0 before there is one; held_some N: at
# least N.
staged_chunks() {
	local n
	n=$(find "$STORAGE/.staging" -name journal -printf '%s\n' 2>/dev/null |
	    sort -n | tail -1)
	echo $((${n:-0} / 48))
}
held_some() { [ "$(staged_chunks)" -ge "$1" ]; }

# --- Shared by the tests of the command line and of the gateway ---------

# run ARGS...: runs a command (at most 60 s, stdin empty), keeping stdout
# in $T/out and $OUT, stderr in $T/err and $ERR, the exit status in $RC.
# shellcheck disable=SC2034 # OUT, ERR and RC are read by the tests
run() {
	RC=0
	timeout 60 "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?
	OUT=$(cat "$T/out")
	ERR=$(cat "$T/err")
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_for() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		"${@:2}" && return 0
		sleep 0.1
	done
	return 1
}

# valid_json: stdin is one JSON document.
# shellcheck disable=SC2317 # called through check
valid_json() {
	python3 -c 'import json,sys; json.load(sys.stdin)'
}

# json_get PATH: a value from the JSON on stdin (e.g. error.code,
# sessions.0.id); empty if absent.
json_get() {
	python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    if isinstance(v, list) and k.isdigit():
        v = v[int(k)] if int(k) < len(v) else None
    else:
        v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"
}

# no_progress_codes FILE: FILE holds no ESC and no CR, the bytes a
# progress bar redraws with.
# shellcheck disable=SC2317 # called through check
no_progress_codes() {
	! LC_ALL=C grep -q $'[\033\r]' "$1"
}

# schema_python: sets PY to a python3 that has jsonschema and yaml (what
# oacheck.py needs); false if there is none.
# shellcheck disable=SC2034 # PY is read by the callers
schema_python() {
	local p
	PY=
	for p in /usr/bin/python3 python3; do
		if "$p" -c 'import jsonschema, yaml' 2>/dev/null; then
			PY=$p
			return 0
		fi
	done
	return 1
}

# node_for TOOL...: true when node is installed and its version is in the
# "engines" range of each TOOL (a package of tests/node, at the version
# tests/node/package-lock.json pins); otherwise false, with the reason for
# a SKIP in NODE_SKIP, such as "@redocly/cli 2.77.0 needs node >=22.12.0
# || >=20.19.0 <21.0.0, not 18.19.0".
node_for() {
	local have why
	NODE_SKIP=
	if ! command -v node >/dev/null 2>&1; then
		NODE_SKIP="node not found"
		return 1
	fi
	have=$(node --version 2>/dev/null)
	if ! why=$(python3 - "$here/../node/package-lock.json" \
	    "${have#v}" "$@" 2>&1 <<'EOF'
import json, re, sys

def version(s):
    # "20.19.0", "20.19" or "20": three numbers to compare.
    return tuple(int(p) for p in (s.split(".") + ["0", "0"])[:3])

def allows(rng, v):
    # An npm range: comparators (>=, >, <=, <, = or none) joined by
    # spaces, alternatives by "||"; any other syntax is an error, not a
    # pass.
    cmp = r"(>=|<=|>|<|=)?\s*(\d+(?:\.\d+){0,2})(?=\s|$)"
    for alt in rng.split("||"):
        if re.sub(cmp, "", alt).strip():
            raise ValueError("cannot read the range " + rng)
        if all(holds(op, v, version(w)) for op, w in re.findall(cmp, alt)):
            return True
    return False

def holds(op, v, w):
    return {">=": v >= w, ">": v > w, "<=": v <= w, "<": v < w}.get(op,
                                                                  v == w)

have = sys.argv[2]
pkgs = json.load(open(sys.argv[1]))["packages"]
for tool in sys.argv[3:]:
    p = pkgs["node_modules/" + tool]
    rng = p.get("engines", {}).get("node")
    if rng and not allows(rng, version(have)):
        print("%s %s needs node %s, not %s" % (tool, p["version"], rng, have))
        break
EOF
	); then
		# The last line of python's complaint says what went wrong.
		why="cannot check node ${have:-(no version)}: ${why##*$'\n'}"
	fi
	NODE_SKIP=$why
	[ -z "$NODE_SKIP" ]
}

# --- Shared by the protocol and fault-injection tests -----------------

# pywire: runs python3 on a script from stdin with pfwire importable; no
# __pycache__ is left in the source tree.
pywire() {
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 - "$@"
}

# hello_relay FEATURE PORTFILE: a relay to the server that drops FEATURE
# from its HELLO, as an older paraflowd sends it (run it in the
# background); its port goes to PORTFILE.
hello_relay() {
	pywire "$PORT" "$2" "$1" <<'EOF'
import sys
import pfwire as w
w.hello_relay(int(sys.argv[1]), sys.argv[2], sys.argv[3])
EOF
}

# start_proxy ARGS...: a pfproxy in front of the server; sets PPORT.
start_proxy() {
	rm -f "$T/pport" "$T/proxy.log"
	"$PFPROXY" --listen-port 0 --target-port "$PORT" \
	    --port-file "$T/pport" --log "$T/proxy.log" "$@" \
	    2>>"$T/proxy.err" &
	PROXY_PID=$!
	PIDS+=("$PROXY_PID")
	PPORT=$(started "$T/pport" pfproxy "$T/proxy.err") || exit 1
}

stop_proxy() {
	signal_ours TERM "$PROXY_PID"
	wait "$PROXY_PID" 2>/dev/null
}

# pupload ARGS...: an upload through the proxy; OUT and RC.
pupload() {
	RC=0
	OUT=$(timeout 150 "$PARAFLOW" upload --port "$PPORT" --quiet \
	    "${NOTLS[@]}" --timeout 20 --give-up 30 --json "$@" 2>"$T/client.err") || RC=$?
	[ "$RC" = 0 ] || echo "# client: exit $RC: $OUT"
}

# log_mark / log_since: the server log lines written since the mark.
log_mark() {
	MARK=$(wc -l <"$T/server.log")
}

log_since() {
	tail -n +"$((MARK + 1))" "$T/server.log"
}

verify_stored() {
	local src=$1 f
	f=$(stored_file "$2" "$3")
	completed=$((completed + 1))
	if [ ! -f "$f" ]; then
		lost=$((lost + $(stat -c %s "$src")))
		return 1
	fi
	if ! cmp -s "$src" "$f"; then
		corrupted=$((corrupted + 1))
		lost=$((lost + $(cmp -l "$src" "$f" 2>/dev/null | wc -l)))
		return 1
	fi
	return 0
}

# tap_from FILE: the Python part's "ok|fail<TAB>desc<TAB>detail" lines as
# TAP results; other lines become comments.
tap_from() {
	local res desc detail
	while IFS=$'\t' read -r res desc detail; do
		case $res in
		ok) ok "$desc" ;;
		fail)
			not_ok "$desc"
			echo "#   $detail"
			;;
		*) echo "# $res $desc $detail" ;;
		esac
	done <"$1"
}

between() {
	[ "$1" -le "$2" ] && [ "$2" -le "$3" ]
}

# rand_sleep: sleeps 0.05 to 0.6 s.
rand_sleep() {
	sleep "$(printf '0.%03d' $((50 + RANDOM % 551)))"
}

# meta_field SID KEY: a number from the stored file's .paraflow.json.
meta_field() {
	python3 -c 'import json,sys
try:
    print(json.load(open(sys.argv[1]))[sys.argv[2]])
except (OSError, ValueError, KeyError):
    pass' "$STORAGE/$1/.paraflow.json" "$2"
}

# storage_on_tmpfs SIZE: in the mount and network namespaces a test
# re-ran itself in (PF_NS=1 unshare -m -n), puts $STORAGE on a tmpfs of
# SIZE (mount's syntax: 64m) with loopback up; skips the test otherwise.
# At exit it is unmounted (unmount_all).
storage_on_tmpfs() {
	[ -n "${PF_NS:-}" ] ||
	    skip_all "cannot make a mount namespace (unshare -m)"
	command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"
	ip link set lo up 2>/dev/null || skip_all "cannot bring up loopback"
	mkdir -p "$STORAGE"
	mount -t tmpfs -o size="$1" tmpfs "$STORAGE" 2>/dev/null ||
	    skip_all "cannot mount a tmpfs"
	trap unmount_all EXIT
}

# unmount_all: the EXIT trap of storage_on_tmpfs. The servers must be
# gone before their storage can be unmounted, and the mount before the
# scratch directory can be removed.
# shellcheck disable=SC2317 # called by the EXIT trap
unmount_all() {
	stop_all
	umount "$STORAGE" 2>/dev/null
	cleanup
}

# throttle_loopback: in a test that re-ran itself under "unshare -n" with
# PF_NETNS=1, brings loopback up and caps it at 256 Mbit/s, so that an
# upload lasts long enough to be interrupted many times. Sets throttled
# to yes or no.
# shellcheck disable=SC2034 # throttled is read by the tests
throttle_loopback() {
	throttled=no
	if [ "${PF_NETNS:-}" = 1 ]; then
		ip link set lo up ||
		    skip_all "cannot bring up loopback in a netns"
		tc qdisc add dev lo root tbf rate 256mbit burst 256kb \
		    latency 200ms && throttled=yes
	fi
}

# Counters of the fault-injection tests, reported by report_totals.
faults=0 completed=0 corrupted=0 lost=0

# report_totals: the closing figures of a fault-injection test.
report_totals() {
	echo "# faults injected: $faults, uploads completed: $completed," \
	    "files corrupted: $corrupted, bytes lost: $lost"
	check_eq "files corrupted" 0 "$corrupted"
	check_eq "bytes lost" 0 "$lost"
}
