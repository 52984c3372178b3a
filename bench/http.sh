#!/bin/bash
# SPDX-License-Identifier: MIT
# The HTTPS gateway under load, next to its baselines in the same run:
# requests/s and latency of GET /api/v1/sessions?limit=100 (with Basic
# auth, 100 sessions known to the server) measured with wrk while a large
# upload runs, and that upload's throughput with and without the load;
# also the same list asked with If-None-Match (a poller's 304s), alone.
#   bench/http.sh [SIZE_MIB]          (default 1024)
# BENCH_DIR picks the filesystem (default: a temporary directory in /tmp);
# BIN the build directory (default build/); WRK_CONNS and WRK_THREADS the
# load (default 16 connections on 2 threads, under the gateway's default
# of 32 connections per client address); WRK_SECONDS the length of the
# load-only run (default 10); PFD_ARGS more paraflowd options (e.g.
# "--stream-nice 0" for the before of a before/after). The gateway is HTTPS (the default, the
# self-signed certificate, which curl checks); wrk speaks TLS without
# checking it.
set -eu
. "$(dirname "$0")/lib.sh"
size_mib=${1:-1024}
conns=${WRK_CONNS:-16}
threads=${WRK_THREADS:-2}
wrk_s=${WRK_SECONDS:-10}

command -v wrk >/dev/null || { echo "needs wrk (Debian package wrk)"; exit 1; }
command -v curl >/dev/null || { echo "needs curl"; exit 1; }
"$bin/paraflowd" --help | grep -q -- --http-port ||
    { echo "$bin/paraflowd has no HTTP gateway"; exit 1; }

bench_init pf-bench-http
machine
echo "file: $size_mib MiB in $work; wrk: $threads threads, $conns connections"

# shellcheck disable=SC2086 # PFD_ARGS: words, as on a command line
bench_gateway ${PFD_ARGS:-}
ca=$work/storage/.tls/cert.pem
auth="Authorization: Basic $(printf 'bench:bench-pw' | base64)"
target="$url/api/v1/sessions?limit=100"

# up NAME FILE: one upload; prints its session id, or fails loudly.
up() {
	local out
	out=$("$bin/paraflow" upload --port "$port" --user bench \
	    --secret bench-pw --file "$2" --name "$1" --json --no-resume \
	    --quiet) || { echo "upload $1 failed: $out" >&2; exit 1; }
	sed -n 's/.*"session":"\([^"]*\)".*/\1/p' <<<"$out"
}

head -c 4096 /dev/urandom >"$work/small"
for i in $(seq 100); do
	up "small$i.bin" "$work/small" >/dev/null
done
known=$(curl -sf --cacert "$ca" -H "$auth" "$target" |
    sed -n 's/.*"total": *\([0-9]*\).*/\1/p')
echo "sessions known to the server: $known"
[ "$known" = 100 ] || { echo "expected 100 sessions"; exit 1; }
if ! curl -sf --cacert "$ca" -o /dev/null -H "$auth" "$target"; then
	echo "GET $target fails"
	exit 1
fi

head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/src"
cat "$work/src" >/dev/null	# into the page cache, as for every run

# wrk_run OUT [DURATION [HEADER]]: wrk against the list until DURATION
# or SIGINT, with one more header if given.
wrk_run() {
	exec wrk -t "$threads" -c "$conns" -d "${2:-3600}s" --latency \
	    -H "$auth" ${3:+-H "$3"} "$target" >"$1" 2>&1
}

# wrk_fig FILE: "req/s p50_ms p99_ms errors" from wrk's report.
wrk_fig() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /m$/) return v * 60000
		if (v ~ /s$/) return v * 1000
		return v
	}
	/Requests\/sec:/ { rps = $2 }
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/Non-2xx or 3xx responses:/ { err += $NF }
	/Socket errors:/ {
		for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) err += $i
	}
	END { printf "%s %s %s %d\n", rps, p50, p99, err }' "$1"
}

# timed_upload NAME: uploads the big file; prints seconds and session id.
timed_upload() {
	local t0 sid
	t0=$(now)
	sid=$(up "$1" "$work/src")
	echo "$(echo "$(now) - $t0" | bc -l) $sid"
}

mbs_of() {
	awk -v s="$1" -v mib="$size_mib" 'BEGIN { print mib * 1.048576 / s }'
}

# Baseline 1: the list alone.
(wrk_run "$work/wrk.alone" "$wrk_s")
read -r rps0 p500 p990 err0 < <(wrk_fig "$work/wrk.alone")

# A poller that has the list: If-None-Match with its ETag, 304s.
etag=$(curl -sf --cacert "$ca" -o /dev/null -D - -H "$auth" "$target" |
    tr -d '\r' | sed -n 's/^ETag: *//Ip')
code=$(curl -s --cacert "$ca" -o /dev/null -w '%{http_code}' -H "$auth" \
    -H "If-None-Match: $etag" "$target")
[ "$code" = 304 ] || { echo "If-None-Match: $code, not 304"; exit 1; }
(wrk_run "$work/wrk.304" "$wrk_s" "If-None-Match: $etag")
read -r rps2 p502 p992 err2 < <(wrk_fig "$work/wrk.304")

# Baseline 2: the upload alone.
read -r up0_s sid0 < <(timed_upload alone.bin)
curl -sf --cacert "$ca" -o /dev/null -X DELETE -H "$auth" \
    "$url/api/v1/sessions/$sid0"

# Both at once: wrk from just before the upload starts until it ends.
# An asynchronous command starts with SIGINT ignored, but wrk sets its own
# handler, which stops it and prints the report; exec makes $! wrk's pid.
(wrk_run "$work/wrk.load") &
wrk_pid=$!
pids+=("$wrk_pid")
sleep 0.5
read -r up1_s sid1 < <(timed_upload loaded.bin)
kill -INT "$wrk_pid"
wait "$wrk_pid" || true
read -r rps1 p501 p991 err1 < <(wrk_fig "$work/wrk.load")
curl -sf --cacert "$ca" -o /dev/null -X DELETE -H "$auth" \
    "$url/api/v1/sessions/$sid1"

mbs0=$(mbs_of "$up0_s")
mbs1=$(mbs_of "$up1_s")
echo
printf "%-32s %10s %9s %9s %7s %10s\n" run "req/s" "p50 ms" "p99 ms" \
    errors "upload MB/s"
printf "%-32s %10.0f %9.2f %9.2f %7d %10s\n" "GET sessions alone (${wrk_s}s)" \
    "$rps0" "$p500" "$p990" "$err0" -
printf "%-32s %10.0f %9.2f %9.2f %7d %10s\n" "If-None-Match, 304 (${wrk_s}s)" \
    "$rps2" "$p502" "$p992" "$err2" -
printf "%-32s %10s %9s %9s %7s %10.1f\n" "upload alone ($(printf %.1f "$up0_s")s)" - - - - \
    "$mbs0"
printf "%-32s %10.0f %9.2f %9.2f %7d %10.1f\n" \
    "both at once ($(printf %.1f "$up1_s")s)" "$rps1" "$p501" "$p991" "$err1" "$mbs1"
awk -v r0="$rps0" -v r1="$rps1" -v l0="$p990" -v l1="$p991" \
    -v m0="$mbs0" -v m1="$mbs1" 'BEGIN {
	printf "%-32s %10.2f %9s %9.2f %7s %10.2f\n",
	    "ratio: at once / alone", r1 / r0, "", l1 / l0, "", m1 / m0
}'
echo
echo "GET /api/v1/sessions?limit=100 with Basic auth, 100 sessions of 4 KiB"
echo "listed; MB = 10^6 bytes; the upload: paraflow upload, 4 streams, 4 MiB"
echo "chunks, durable ACKs; wrk, the server and the client share the cores."
awk -v a="$p990" -v b="$p991" 'BEGIN {
	printf "target: p99 < 10 ms alone (%s), < 25 ms during the upload (%s)\n",
	    a < 10 ? "met" : "NOT met", b < 25 ? "met" : "NOT met"
}'
if [ "$err0" -ne 0 ] || [ "$err1" -ne 0 ]; then
	echo "wrk saw errors"
	exit 1
fi
