#!/bin/bash
# SPDX-License-Identifier: MIT
# The server's data path under load, as ratios (issue 13):
#  - 8 uploads at once of 8 streams each against 8 uploads of 1 stream, on
#    tmpfs: aggregate MB/s and server CPU-seconds (no collapse: 8x8 should
#    reach 8x1's throughput with at most 1.2x its CPU);
#  - one upload of 1 stream against one of 8 streams on disk with the
#    default --sync full (syncs off the stream's path: 1 within 1.3x of 8).
# Each case runs RUNS times (default 3); medians are printed, with the
# server's peak RSS. Plaintext (--no-tls), so the numbers are the data
# path's, not OpenSSL's; every stored file is compared with the source.
#   bench/concurrency.sh [SIZE_MIB [DISK_MIB]]
# SIZE_MIB: per upload on tmpfs (default 256); DISK_MIB: the upload on
# disk (default 1024).
# TMPFS_DIR (default /dev/shm) and DISK_DIR (default /var/tmp) pick the
# filesystems.
set -eu
. "$(dirname "$0")/lib.sh"
size_mib=${1:-256}
disk_mib=${2:-1024}
runs=${RUNS:-3}
hz=$(getconf CLK_TCK)

BENCH_DIR=${TMPFS_DIR:-/dev/shm} bench_init pf-conc
disk=$(mktemp -d "${DISK_DIR:-/var/tmp}/pf-conc-disk.XXXXXX")
trap 'bench_cleanup; rm -rf "$disk"' EXIT

export PARAFLOW_STATE_DIR="$work/state"
machine
echo "$runs runs per case, medians"

# make_source MIB: the file to upload, of MIB MiB, and its digest.
make_source() {
	size_mib=$1
	# A fixed prefix: random bytes may start like an executable ("MZ").
	{ printf 'pf-data '; head -c "$((size_mib * 1024 * 1024 - 8))" \
	    /dev/urandom; } >"$work/src"
	src_sum=$(sha256sum <"$work/src" | cut -d' ' -f1)
}

# start_server DIR ARGS...: a paraflowd storing in DIR; sets server, port.
start_server() {
	local dir=$1
	shift
	rm -f "$work/port"
	"$bin/paraflowd" --port 0 --no-http --storage "$dir" --no-tls \
	    --max-user-connections 256 --max-connections 512 \
	    --max-user-sessions 16 --max-sessions 64 --max-user-share 100 \
	    --max-ip-logins 256 --max-login-connections 256 \
	    --port-file "$work/port" --quiet "$@" 2>>"$work/server.log" &
	server=$!
	pids+=("$server")
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
	port=$(cat "$work/port")
}

stop_server() {
	kill "$server"
	wait "$server" 2>/dev/null || true
}

# ticks PID: user+system clock ticks of a process so far.
ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# uploads DIR N THREADS: N uploads at once of THREADS streams each; prints
# "seconds server-cpu-seconds" and checks every stored file.
uploads() {
	local dir=$1 n=$2 threads=$3 t0 t1 c0 c1 i f
	local up=()
	c0=$(ticks "$server")
	t0=$(now)
	for i in $(seq "$n"); do
		"$bin/paraflow" upload --file "$work/src" --port "$port" \
		    --no-tls --threads "$threads" --json --no-resume \
		    --name "u$i.bin" >"$work/result.$i" 2>&1 &
		up+=($!)
	done
	for i in "${up[@]}"; do wait "$i" || true; done
	t1=$(now)
	c1=$(ticks "$server")
	for i in $(seq "$n"); do
		grep -q '"status":"ok"' "$work/result.$i" || {
			echo "upload $i of $n x $threads failed:" >&2
			cat "$work/result.$i" >&2
			exit 1
		}
	done
	for f in "$dir"/*/u*.bin; do
		[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$src_sum" ] || {
			echo "$f differs from the source" >&2
			exit 1
		}
	done
	rm -rf "${dir:?}"/*-*-*-*-*
	echo "$(echo "$t1 - $t0" | bc -l) $(echo "($c1 - $c0) / $hz" | bc -l)"
}

# median: the median of the numbers on stdin, one a line.
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# case LABEL DIR N THREADS [SERVER_ARGS...]: RUNS runs of uploads on a
# fresh server; sets mbs and cpu (medians) and prints a line.
case_run() {
	local label=$1 dir=$2 n=$3 threads=$4 r out secs=() cpus=() rss
	shift 4
	mkdir -p "$dir"
	start_server "$dir" "$@"
	for r in $(seq "$runs"); do
		out=$(uploads "$dir" "$n" "$threads")
		secs+=("${out% *}")
		cpus+=("${out#* }")
	done
	rss=$(awk '/VmHWM/ { print $2 }' "/proc/$server/status")
	stop_server
	secs_m=$(printf '%s\n' "${secs[@]}" | median)
	cpu=$(printf '%s\n' "${cpus[@]}" | median)
	mbs=$(echo "$n * $size_mib * 1.048576 / $secs_m" | bc -l)
	printf "%-30s %7.2f s %8.1f MB/s %6.2f server cpu-s %5d MiB RSS" \
	    "$label" "$secs_m" "$mbs" "$cpu" "$((rss / 1024))"
	printf "   (runs: %s s)\n" "$(printf '%.2f ' "${secs[@]}")"
}

make_source "$size_mib"
echo
echo "tmpfs ($work), --sync full, $size_mib MiB per upload"
case_run "8 uploads x 1 stream" "$work/storage" 8 1
mbs81=$mbs cpu81=$cpu
case_run "8 uploads x 8 streams" "$work/storage" 8 8
mbs88=$mbs cpu88=$cpu
make_source "$disk_mib"
echo
echo "disk ($disk), --sync full, $disk_mib MiB"
case_run "1 upload x 1 stream" "$disk/storage" 1 1
mbs1=$mbs
case_run "1 upload x 8 streams" "$disk/storage" 1 8
mbs8=$mbs
echo
awk -v a="$mbs88" -v b="$mbs81" -v c="$cpu88" -v d="$cpu81" \
    -v e="$mbs1" -v f="$mbs8" 'BEGIN {
	printf "8x8 / 8x1: throughput %.2fx (target >= 1), server cpu " \
	    "%.2fx (target <= 1.2)\n", a / b, c / d
	printf "disk, 8 streams / 1 stream: %.2fx (target <= 1.3)\n", f / e
}'
