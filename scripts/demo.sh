#!/bin/bash
# SPDX-License-Identifier: MIT
# The main job, end to end: installs what is needed, builds, starts a real
# paraflowd on 127.0.0.1 with a temporary storage directory, uploads a
# generated file over several streams, and checks the stored copy.
#   scripts/demo.sh [SIZE_MIB] [THREADS]      (default 256 MiB, 4 streams)
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

echo "== starting paraflowd (storage $work/storage)"
"$bin/paraflowd" --port 0 --storage "$work/storage" \
    --port-file "$work/port" 2>"$work/paraflowd.log" &
server=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
echo "   listening on 127.0.0.1:$port"

echo "== uploading over $threads streams"
"$bin/paraflow" upload --file "$work/demo.bin" --port "$port" \
    --threads "$threads" | tee "$work/result"

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
echo "== server log"
sed 's/^/   /' "$work/paraflowd.log"
