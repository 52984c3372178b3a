#!/bin/bash
# SPDX-License-Identifier: MIT
# Uploads over tus (the gateway's /api/v1/uploads, HTTPS) next to the
# native client (TLS) in the same run, against one paraflowd: the same
# file through tus-js-client under node in one request stream, with
# parallelUploads: 4 (4 partial uploads joined by concatenation, which
# copies the file once more on the server), and through paraflow upload
# (--threads auto). Each case runs RUNS times (default 3); medians, MB/s
# and the ratio to the native client are printed; every stored file's
# receipt is compared with the source's.
#   bench/tus.sh [SIZE_MIB]          (default 1024)
# BENCH_DIR picks the filesystem (default: a temporary directory in
# /tmp); BIN the build directory (default build/). Needs node and
# tus-js-client (npm ci --prefix tests/node).
set -eu
. "$(dirname "$0")/lib.sh"
size_mib=${1:-1024}
runs=${RUNS:-3}

command -v node >/dev/null || { echo "needs node"; exit 1; }
[ -d "$top/tests/node/node_modules/tus-js-client" ] ||
    { echo "needs tus-js-client: npm ci --prefix tests/node"; exit 1; }

bench_init pf-bench-tus
machine
echo "file: $size_mib MiB in $work; $runs runs per case, medians"

bench_gateway --max-user-share 100
export NODE_EXTRA_CA_CERTS=$work/storage/.tls/cert.pem
auth=(--cacert "$NODE_EXTRA_CA_CERTS" -u bench:bench-pw)

{ printf 'pf-data '; head -c "$((size_mib * 1024 * 1024 - 8))" \
    /dev/urandom; } >"$work/src"
want=$("$bin/paraflow" digest "$work/src" | cut -d' ' -f1)

# receipt ID: the stored session's receipt, from the REST API.
receipt() {
	curl -sf "${auth[@]}" "$url/api/v1/sessions/$1" |
	    sed -n 's/.*"digest": *"\([0-9a-f]*\)".*/\1/p'
}

# one CASE: one upload, timed; prints seconds, after checking the receipt
# and deleting the stored file (the disk holds one copy at a time).
one() {
	local t0 t1 id out
	cat "$work/src" >/dev/null	# into the page cache, for every case
	rm -f "$work/src.tusurls"
	t0=$(now)
	case $1 in
	native)
		out=$("$bin/paraflow" upload --port "$port" --user bench \
		    --secret bench-pw --file "$work/src" --json --no-resume \
		    --quiet)
		id=$(sed -n 's/.*"session":"\([^"]*\)".*/\1/p' <<<"$out") ;;
	tus1|tus4)
		out=$(node "$top/tests/integ/tus.mjs" "$work/src" \
		    "$url/api/v1/uploads/" bench bench-pw "${1#tus}")
		id=$(sed -n 's|^url .*/||p' <<<"$out" | tail -n 1) ;;
	esac
	t1=$(now)
	[ "$(receipt "$id")" = "$want" ] ||
	    { echo "$1: receipt of $id is not the source's" >&2; exit 1; }
	curl -sf "${auth[@]}" -o /dev/null -X DELETE \
	    "$url/api/v1/sessions/$id"
	echo "$t1 - $t0" | bc -l
}

median() {
	sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

declare -A secs
for c in native tus1 tus4; do
	for ((r = 0; r < runs; r++)); do
		one "$c"
	done | median >"$work/median"
	secs[$c]=$(cat "$work/median")
done

printf '%-34s %8s %8s %8s\n' case seconds MB/s "x native"
for c in native tus1 tus4; do
	case $c in
	native) what="paraflow upload (native, TLS)" ;;
	tus1) what="tus-js-client, one stream" ;;
	tus4) what="tus-js-client, parallelUploads 4" ;;
	esac
	awk -v w="$what" -v s="${secs[$c]}" -v n="${secs[native]}" \
	    -v mib="$size_mib" 'BEGIN { printf "%-34s %8.2f %8.1f %8.2f\n",
	    w, s, mib * 1.048576 / s, n / s }'
done
