#!/bin/bash
# SPDX-License-Identifier: MIT
# Where the CPU goes in one upload: perf samples (cpu-clock, so it works
# in VMs without hardware counters) of paraflowd and paraflow during a
# plaintext upload to tmpfs, summed into SHA-256, the kernel (and its
# copies between user space and the page cache or sockets), ParaFlow's
# own code, libc and the rest, per side and together.
#   bench/profile.sh [SIZE_MIB] [STREAMS]     (default 512, 4; needs perf:
#                                              Debian linux-perf)
# BENCH_DIR picks the filesystem (default /dev/shm).
set -eu
. "$(dirname "$0")/lib.sh"
size_mib=${1:-512}
streams=${2:-4}
command -v perf >/dev/null || bench_need linux-perf

BENCH_DIR=${BENCH_DIR:-/dev/shm} bench_init pf-profile
export PARAFLOW_STATE_DIR=$work/state
machine
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/src"
cat "$work/src" >/dev/null

"$bin/paraflowd" --port 0 --port-file "$work/port" --no-http --no-tls \
    --storage "$work/st" --quiet 2>>"$work/server.log" &
server=$!
pids+=("$server")
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done

perf record -q -e cpu-clock -F 2000 -o "$work/srv.data" -p "$server" \
    2>/dev/null &
rec=$!
sleep 0.3
perf record -q -e cpu-clock -F 2000 -o "$work/cli.data" -- \
    "$bin/paraflow" upload --file "$work/src" --port "$(cat "$work/port")" \
    --no-tls --threads "$streams" --quiet --no-resume --json \
    >"$work/result" 2>/dev/null
kill -INT "$rec"
wait "$rec" || true
grep -q '"status":"ok"' "$work/result" || { cat "$work/result"; exit 1; }

# hex: an awk function (mawk has no strtonum).
hex='function hex(s, i, n) { s = tolower(s); sub(/^0x/, "", s)
	for (i = 1; i <= length(s); i++)
		n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
	return n }'

# libcrypto is stripped, so its samples come as addresses: those within
# the code that uses the SHA extensions (sha256rnds2 and friends, give or
# take a few bytes) count as SHA-256, the rest as libcrypto.
crypto=$(ldd "$bin/paraflowd" | awk '/libcrypto/ { print $3 }')
objdump -d "$crypto" | awk "$hex"'/\tsha256(rnds2|msg1|msg2) / {
	sub(":", "", $1); print hex($1) }' | sort -n |
    awk 'NR == 1 || $1 - hi > 4096 { if (NR > 1) print lo - 256, hi + 256
	lo = $1 } { hi = $1 } END { if (NR) print lo - 256, hi + 256 }' \
    >"$work/sha.ranges"

# The kernel's copies between user memory and the page cache or sockets.
kcopy='copy_user|rep_movs|memcpy|copy_page|_copy_(to|from)_iter'

# share FILE: one line of percentages by category, from perf's flat
# profile (overhead, dso, symbol).
share() {
	perf report -i "$1" --no-children --sort dso,sym --stdio 2>/dev/null |
	    awk -v ranges="$work/sha.ranges" -v kcopy="$kcopy" "$hex"'
	    BEGIN { while ((getline l < ranges) > 0) {
		split(l, r, " "); lo[++n] = r[1]; hi[n] = r[2] } }
	    /^ *[0-9.]+%/ {
		p = $1 + 0; dso = $2; sym = $0
		sub(/.*\] /, "", sym)
		sha = sym ~ /sha256|SHA256/
		if (!sha && dso ~ /libcrypto/ && sym ~ /^0x/) {
			a = hex(sym)
			for (i = 1; i <= n; i++)
				if (a >= lo[i] && a <= hi[i]) sha = 1
		}
		if (sha) c = "sha256"
		else if ($0 ~ /\[k\]/ && sym ~ kcopy) c = "kcopy"
		else if ($0 ~ /\[k\]/) c = "kother"
		else if (dso ~ /^paraflow/) c = "own"
		else if (dso ~ /^libcrypto/) c = "crypto"
		else if (dso ~ /^libc[.-]/) c = "libc"
		else c = "other"
		s[c] += p
	    } END {
		printf "SHA-256 %.1f %%, kernel %.1f %% (copies %.1f %%), " \
		    "ParaFlow %.1f %%, libcrypto other %.1f %%, " \
		    "libc %.1f %%, " \
		    "other %.1f %%\n", s["sha256"], s["kcopy"] + s["kother"],
		    s["kcopy"], s["own"], s["crypto"], s["libc"], s["other"] }'
}

echo "$size_mib MiB, $streams streams, plaintext, $work ($(stat -f -c %T \
    "$work"))"
# cpus FILE: the CPU seconds the samples stand for (2000 a second).
cpus() {
	perf script -i "$1" -F ip 2>/dev/null | wc -l |
	    awk '{ printf "%d samples, %.2f cpu-s", $1, $1 / 2000 }'
}

echo "server ($(cpus "$work/srv.data")): $(share "$work/srv.data")"
echo "client ($(cpus "$work/cli.data")): $(share "$work/cli.data")"
echo "top symbols, server:"
perf report -i "$work/srv.data" --no-children --sort sym --stdio 2>/dev/null |
    grep -E '^ *[0-9.]+%' | head -n 8
echo "top symbols, client:"
perf report -i "$work/cli.data" --no-children --sort sym --stdio 2>/dev/null |
    grep -E '^ *[0-9.]+%' | head -n 8
