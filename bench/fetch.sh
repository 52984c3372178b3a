#!/bin/bash
# SPDX-License-Identifier: MIT
# paraflow fetch of a transfer of many small files, near and far from
# the gateway: FILES files of 4-64 KiB (default 2000) uploaded once, then
# fetched back (HTTPS, every receipt checked) with --threads 1, 4 and 8,
# on loopback and through bench/delay.py (DELAY_MS each way, default 2:
# a 4 ms round trip, where this kernel has no netem). The baseline, in
# the same run and over the same path, is the whole transfer as one tar
# stream (curl, GET .../tar: one request, nothing checked). Every copy is
# compared with the source (diff -r) before its time counts.
#   bench/fetch.sh
# BENCH_DIR picks the filesystem (default: /tmp); BIN the build.
set -eu
. "$(dirname "$0")/lib.sh"
files=${FILES:-2000}
delay_ms=${DELAY_MS:-2}

bench_init pf-bench-fetch
machine
# shellcheck disable=SC2119 # no paraflowd options
bench_gateway
ca=$work/storage/.tls/cert.pem
auth=(--user bench --secret bench-pw)

python3 - "$work/src" "$files" <<'PY'
import os, random, sys
top, n = sys.argv[1], int(sys.argv[2])
random.seed(14)
for i in range(n):
    d = os.path.join(top, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
        f.write(os.urandom(random.randint(4096, 65536)))
PY
bytes=$(du -sb "$work/src" | cut -f1)
sid=$("$bin/paraflow" upload --port "$port" "${auth[@]}" --json --quiet \
    "$work/src" | sed -n 's/.*"session":"\([^"]*\)".*/\1/p' | head -n 1)
[ -n "$sid" ] || { echo "the upload failed"; exit 1; }
echo "transfer: $files files, $((bytes / 1048576)) MiB; delay $delay_ms ms" \
    "each way"

python3 "$top/bench/delay.py" "$delay_ms" "${url##*:}" "$work/dport" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/dport" ] && break; sleep 0.05; done
far=https://127.0.0.1:$(cat "$work/dport")

# timed LABEL DIR CMD...: runs CMD, checks DIR/src is the source, prints
# the time and keeps it in $secs.
timed() {
	local label=$1 dir=$2 t0 t1
	shift 2
	rm -rf "$dir"
	mkdir -p "$dir"
	t0=$(now)
	"$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }
	t1=$(now)
	diff -r -q "$work/src" "$dir/src" >/dev/null ||
	    { echo "$label: the copy differs"; exit 1; }
	secs=$(echo "$t1 - $t0" | bc)
}

# row WHERE BASE: the tar baseline and the fetches over gateway URL BASE.
row() {
	local where=$1 base=$2 tar t
	# shellcheck disable=SC2016 # the inner sh expands them
	timed "tar" "$work/tar" sh -c 'curl -sf --cacert "$1" -u bench:bench-pw \
	    "$2/api/v1/sessions/$3/tar" | tar -C "$4" -x' sh "$ca" "$base" \
	    "$sid" "$work/tar"
	tar=$secs
	printf '%-9s tar (one request)   %7.2f s  %7.1f MB/s\n' "$where" \
	    "$tar" "$(echo "$bytes / $tar / 1000000" | bc -l)"
	for t in 1 4 8; do
		timed "fetch" "$work/fetch" "$bin/paraflow" fetch "$sid" \
		    -o "$work/fetch" --quiet --threads "$t" "${auth[@]}" \
		    --cacert "$ca" --http "$base"
		printf '%-9s fetch --threads %-3s %7.2f s  %7.1f MB/s  %5.2fx tar'"'"'s time\n' \
		    "$where" "$t" "$secs" \
		    "$(echo "$bytes / $secs / 1000000" | bc -l)" \
		    "$(echo "$secs / $tar" | bc -l)"
	done
}

# Once unmeasured: the server loads and sorts the transfer's list.
curl -sf --cacert "$ca" -u bench:bench-pw -o /dev/null \
    "$url/api/v1/sessions/$sid/tar"
row loopback "$url"
row "+${delay_ms}ms" "$far"
