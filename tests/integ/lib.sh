# SPDX-License-Identifier: MIT
# Shared helpers for the integration tests: a scratch directory, a real
# paraflowd on 127.0.0.1 with an ephemeral port, TAP output, and cleanup
# of every process started. Source it; don't run it.

set -u

top_builddir=${top_builddir:-$(pwd)}
PARAFLOWD=${PARAFLOWD:-$top_builddir/paraflowd}
PARAFLOW=${PARAFLOW:-$top_builddir/paraflow}
PFPROXY=${PFPROXY:-$top_builddir/tests/tools/pfproxy}

T=$(mktemp -d "${TMPDIR:-/tmp}/pf-test.XXXXXX")
STORAGE=$T/storage
# Resume state of the client stays inside the test directory.
export PARAFLOW_STATE_DIR=$T/state
PIDS=()
tap_n=0
tap_failed=0

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
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
wait_file() {
	local i
	for ((i = 0; i < ${2:-10} * 20; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# start_server [ARGS...]: starts paraflowd, sets SERVER_PID and PORT.
start_server() {
	rm -f "$T/port"
	"$PARAFLOWD" --port 0 --bind 127.0.0.1 --storage "$STORAGE" \
	    --port-file "$T/port" "$@" 2>>"$T/server.log" &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	if ! wait_file "$T/port" 10; then
		echo "# paraflowd did not start"
		cat "$T/server.log" | sed 's/^/# /'
		exit 1
	fi
	PORT=$(cat "$T/port")
}

# stop_server: SIGTERM, and check it exited cleanly (sanitizers report
# through the exit status).
stop_server() {
	local rc=0
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" || rc=$?
	check_eq "paraflowd stopped cleanly on SIGTERM" 0 "$rc"
}

# upload [ARGS...]: runs paraflow upload against the test server.
upload() {
	"$PARAFLOW" upload --port "$PORT" --quiet "$@"
}

# mkfile NAME BYTES: a file of random bytes after a fixed prefix, so it
# never starts like an executable by chance ("MZ", "#!").
mkfile() {
	{ printf 'pf-data '; head -c "$2" /dev/urandom; } | head -c "$2" >"$1"
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

# stored_count: number of finished uploads in storage.
stored_count() {
	find "$STORAGE" -mindepth 1 -maxdepth 1 -type d ! -name .staging |
	    wc -l
}
