#!/bin/bash
# SPDX-License-Identifier: MIT
# The main job, end to end: installs what is needed, builds, starts a real
# paraflowd on 127.0.0.1 with a temporary storage directory and its
# dashboard, prints its TLS fingerprint, uploads a generated file over
# several TLS streams pinned to that fingerprint, checks the
# stored copy, reads the session back over the REST API and downloads it.
#   scripts/demo.sh [SIZE_MIB] [THREADS]      (default 256 MiB, 4 streams)
# On a terminal it then keeps the server and dashboard up until Enter;
# PARAFLOW_DEMO_HTTP_PORT picks the dashboard's port (default 8080, or a
# free one if that is taken).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-256}
threads=${2:-4}

"$top/scripts/deps.sh"
"$top/scripts/build.sh" build >/dev/null
bin=$top/build

work=$(mktemp -d "${TMPDIR:-/tmp}/paraflow-demo.XXXXXX")
server=
cleanup() {
	[ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server"
	rm -rf "$work"
}
trap cleanup EXIT

echo "== generating a ${size_mib} MiB file"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/demo.bin"

# start_server HTTP_PORT: paraflowd with its gateway; false if it exits.
start_server() {
	rm -f "$work/port" "$work/http_port"
	"$bin/paraflowd" --port 0 --storage "$work/storage" \
	    --port-file "$work/port" --http-port "$1" \
	    --http-port-file "$work/http_port" --www "$top/www" \
	    2>>"$work/paraflowd.log" &
	server=$!
	for _ in $(seq 100); do
		[ -s "$work/http_port" ] && return 0
		kill -0 "$server" 2>/dev/null || { server=; return 1; }
		sleep 0.05
	done
	return 1
}

echo "== starting paraflowd (storage $work/storage)"
start_server "${PARAFLOW_DEMO_HTTP_PORT:-8080}" || start_server 0 || {
	cat "$work/paraflowd.log" >&2
	exit 1
}
port=$(cat "$work/port")
http=https://127.0.0.1:$(cat "$work/http_port")
# TLS is on: paraflowd made a self-signed pair in the storage on start.
fingerprint=$("$bin/paraflowd" --fingerprint --storage "$work/storage")
echo "   uploads on 127.0.0.1:$port over TLS 1.3"
echo "   server fingerprint $fingerprint"
echo "   dashboard on $http/ (user paraflow, password secret123)"
export PARAFLOW_HTTP=$http PARAFLOW_SECRET=secret123

# --pin trusts exactly this server's key (the demo's server is new on
# every run, so the known-servers file is left alone).
echo "== uploading over $threads TLS streams"
"$bin/paraflow" upload --file "$work/demo.bin" --port "$port" \
    --pin "$fingerprint" --threads "$threads" | tee "$work/result"

session=$(sed -n 's/^session //p' "$work/result")
stored="$work/storage/$session/demo.bin"
echo "== verifying"
sha256sum "$work/demo.bin" "$stored" | sed "s|$work/||"
if cmp -s "$work/demo.bin" "$stored"; then
	echo "OK: the stored file is identical to the source"
else
	echo "FAILED: the stored file differs" >&2
	exit 1
fi
echo "== the session over the REST API (paraflow status)"
"$bin/paraflow" status "$session" --pin "$fingerprint"

echo "== downloading it back (paraflow fetch: Range resume, receipt checked)"
"$bin/paraflow" fetch "$session" -o "$work/fetched.bin" --quiet \
    --pin "$fingerprint"
cmp -s "$work/demo.bin" "$work/fetched.bin" &&
    echo "OK: the downloaded copy is identical too"

echo "== metrics (excerpt of $http/metrics)"
curl -s --cacert "$work/storage/.tls/cert.pem" "$http/metrics" |
    grep -E '^paraflow_(received_bytes|chunks_acked)_total'

echo "== server log"
sed 's/^/   /' "$work/paraflowd.log"

if [ -t 0 ] && [ -t 1 ]; then
	echo
	echo "The dashboard is up at $http/ (user paraflow, password secret123)."
	read -r -p "Press Enter to stop the server... " _
fi
