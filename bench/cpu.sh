#!/bin/bash
# SPDX-License-Identifier: MIT
# CPU-seconds per GiB of one upload, per side, for one or more builds
# measured in turns (issue 13: CPU per byte). On a shared machine the wall
# time says how much of the cores a run got, not what it cost; CPU time
# does, and alternating the builds spreads the machine's moods over all.
# Each upload gets a fresh paraflowd (the server's CPU from /proc/PID/stat
# before and after, the client's from bash's times); every upload must
# end ok; the medians per build come last.
#   bench/cpu.sh [ROUNDS] [SIZE_MIB] [BUILD_DIR...]
# (default 5 rounds, 1024 MiB, $BIN or build/). MODE=tls for TLS (default
# plain), THREADS=N for a fixed stream count (default: none, i.e. auto);
# BENCH_DIR picks the filesystem (default /dev/shm).
set -eu
. "$(dirname "$0")/lib.sh"
rounds=${1:-5}
size_mib=${2:-1024}
shift $(($# < 2 ? $# : 2))
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("$bin")
mode=${MODE:-plain}
hz=$(getconf CLK_TCK)
tls=()
[ "$mode" = plain ] && tls=(--no-tls)
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

BENCH_DIR=${BENCH_DIR:-/dev/shm} bench_init pf-cpu
export PARAFLOW_STATE_DIR=$work/state
machine
echo "$size_mib MiB, $mode, threads ${THREADS:-auto}, $rounds rounds," \
    "$work ($(stat -f -c %T "$work")); CPU-s per GiB"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/src"

# one BUILD: one upload; prints "BUILD client server".
one() {
	local b=$1 srv s0 s1 t
	rm -f "$work/port"
	"$b/paraflowd" --port 0 --port-file "$work/port" --no-http \
	    "${tls[@]}" --storage "$work/st" --tls-dir "$work/tls" --quiet \
	    2>>"$work/server.log" &
	srv=$!
	pids+=("$srv")
	for _ in $(seq 200); do [ -s "$work/port" ] && break; sleep 0.05; done
	s0=$(awk '{ print $14 + $15 }' "/proc/$srv/stat")
	t=$( { TIMEFORMAT='%U %S'; time "$b/paraflow" upload \
	    --file "$work/src" --port "$(cat "$work/port")" "${tls[@]}" \
	    "${threads[@]}" --json --quiet --no-resume --name r.bin \
	    >"$work/result"; } 2>&1 )
	s1=$(awk '{ print $14 + $15 }' "/proc/$srv/stat")
	kill "$srv"
	wait "$srv" 2>/dev/null || true
	grep -q '"status":"ok"' "$work/result" ||
	    { echo "$b: upload failed"; cat "$work/result"; exit 1; }
	rm -rf "$work/st"
	echo "$t" | awk -v b="$b" -v s=$((s1 - s0)) -v hz="$hz" \
	    -v k="$(echo "1024 / $size_mib" | bc -l)" \
	    '{ printf "%s %.3f %.3f\n", b, ($1 + $2) * k, s / hz * k }'
}

for ((r = 1; r <= rounds; r++)); do
	for b in "${builds[@]}"; do
		one "$b" | tee -a "$work/rows" |
		    awk '{ printf "  %-30s client %.2f  server %.2f  total " \
		    "%.2f\n", $1, $2, $3, $2 + $3 }'
	done
done
echo "medians:"
for b in "${builds[@]}"; do
	awk -v b="$b" '$1 == b { c[++n] = $2; s[n] = $3; t[n] = $2 + $3 }
	function med(a, m, i, j, x) {
		for (i = 1; i <= m; i++)
			for (j = i + 1; j <= m; j++)
				if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
		return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
	}
	END { printf "  %-30s client %.2f  server %.2f  total %.2f\n", b,
	    med(c, n), med(s, n), med(t, n) }' "$work/rows"
done
