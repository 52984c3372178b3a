#!/bin/bash
# SPDX-License-Identifier: MIT
# Loopback throughput of paraflow upload with 1, 2, 4 and 8 streams over
# TLS (the default), and with --no-tls, next to baselines measured in the
# same run on the same file: a raw nc copy (to /dev/null and to a file on
# the storage filesystem), sha256sum, and scp and rsync -e ssh to a
# throwaway sshd on 127.0.0.1 (bench/sshd.sh).
#   bench/loopback.sh [SIZE_MIB]          (default 1024)
# BENCH_DIR picks the filesystem (default: a temporary directory in /tmp).
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
size_mib=${1:-1024}
hz=$(getconf CLK_TCK)

command -v nc >/dev/null || { echo "needs nc (netcat-openbsd)"; exit 1; }

bench_init pf-bench

# cpu_ticks PID: user+system clock ticks a process has used so far.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# report NAME SECONDS CPU_SECONDS
report() {
	awk -v n="$1" -v s="$2" -v c="$3" -v mib="$size_mib" \
	    -v ncn="${nc_null_mbs:-0}" -v ncf="${nc_file_mbs:-0}" \
	    -v sha="${sha_mbs:-0}" 'BEGIN {
		mbs = mib * 1.048576 / s
		printf "%-24s %7.2f s %8.1f MB/s %6.2f cpu-s", n, s, mbs, c
		if (ncn > 0) printf " %6.2f", mbs / ncn
		if (ncf > 0) printf " %6.2f", mbs / ncf
		if (sha > 0) printf " %6.2f", mbs / sha
		printf "\n"
	}'
}

mbs_of() {
	awk -v s="$1" -v mib="$size_mib" 'BEGIN { print mib * 1.048576 / s }'
}

machine
grep -q sha_ni /proc/cpuinfo && echo "cpu has SHA extensions (sha_ni)"
echo "file: $size_mib MiB in $work"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/src"
cat "$work/src" >/dev/null	# into the page cache, as for every run

# Baseline 1: sha256sum, one core.
t0=$(now)
sha256sum "$work/src" >/dev/null
t1=$(now)
sha_s=$(echo "$t1 - $t0" | bc -l)
sha_mbs=$(mbs_of "$sha_s")

# Baseline 2: raw nc over loopback into a file on the same filesystem,
# then the same with an fdatasync at the end (paraflowd syncs too).
nc_copy() {
	local port out=$1 sync=$2
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		[ "$out" = /dev/null ] || rm -f "$out"
		nc -l 127.0.0.1 "$port" >"$out" &
		local rpid=$!
		sleep 0.2
		kill -0 "$rpid" 2>/dev/null || continue
		local s0
		s0=$(now)
		nc -N 127.0.0.1 "$port" <"$work/src"
		wait "$rpid"
		[ "$sync" = sync ] && [ "$out" != /dev/null ] &&
		    dd if=/dev/null of="$out" conv=notrunc,fdatasync 2>/dev/null
		echo "$(now) - $s0" | bc -l
		return
	done
	echo "cannot find a free port for nc" >&2
	exit 1
}
nc_null_s=$(nc_copy /dev/null nosync)
nc_file_s=$(nc_copy "$work/nc.out" sync)
rm -f "$work/nc.out"
nc_file_mbs=$(mbs_of "$nc_file_s")
nc_null_mbs=$(mbs_of "$nc_null_s")

echo
echo "ratios: throughput over nc -> /dev/null, nc -> file, sha256sum"
printf "%-24s %9s %13s %12s %6s %6s %6s\n" "run" "time" "throughput" \
    "cpu" "/nc0" "/ncf" "/sha"
report "sha256sum (1 core)" "$sha_s" "$sha_s"
report "nc -> /dev/null" "$nc_null_s" 0
report "nc -> file + fdatasync" "$nc_file_s" 0

# start_server ARGS...: a paraflowd on a fresh port; sets server, port.
start_server() {
	rm -f "$work/port"
	"$bin/paraflowd" --port 0 --no-http --storage "$work/storage" \
	    --port-file "$work/port" --quiet "$@" 2>>"$work/server.log" &
	server=$!
	pids+=("$server")
	for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
	port=$(cat "$work/port")
}

# run LABEL THREADS [CLIENT_ARGS...]: one upload, reported with client +
# server CPU time; its MB/s goes to last_mbs.
run() {
	local label=$1 threads=$2 sc0 sc1 s0 s1 out cpu secs
	shift 2
	sc0=$(cpu_ticks "$server")
	s0=$(now)
	# The client's CPU time comes from bash's times for its children.
	out=$( { TIMEFORMAT='%U %S'; time "$bin/paraflow" upload \
	    --file "$work/src" --port "$port" --threads "$threads" --json \
	    --no-resume --name "run$threads.bin" "$@" >"$work/result"; } 2>&1 )
	s1=$(now)
	sc1=$(cpu_ticks "$server")
	grep -q '"status":"ok"' "$work/result" || {
		echo "upload with $threads threads failed:"
		cat "$work/result"
		exit 1
	}
	cpu=$(echo "$out" | awk -v s="$((sc1 - sc0))" -v hz="$hz" \
	    '{ print $1 + $2 + s / hz }')
	secs=$(echo "$s1 - $s0" | bc -l)
	last_mbs=$(mbs_of "$secs")
	report "$label" "$secs" "$cpu"
	rm -rf "$work/storage"/*-*-*-*-*
}

# peer LABEL COMMAND...: a peer's copy of the file, client CPU only (the
# server side, sshd, is not measured); its MB/s goes to last_mbs.
peer() {
	local label=$1 s0 s1 out secs
	shift
	rm -rf "$work/peer.out"
	s0=$(now)
	out=$( { TIMEFORMAT='%U %S'; time "$@" >/dev/null 2>"$work/peer.err"; } \
	    2>&1 ) || { echo "$label failed:"; cat "$work/peer.err"; exit 1; }
	s1=$(now)
	cmp -s "$work/src" "$work/peer.out" ||
	    { echo "$label: the copy differs"; exit 1; }
	secs=$(echo "$s1 - $s0" | bc -l)
	last_mbs=$(mbs_of "$secs")
	report "$label" "$secs" "$(echo "$out" | awk '{ print $1 + $2 }')"
	rm -f "$work/peer.out"
}

export PARAFLOW_STATE_DIR="$work/state"
sshd_up
peer "scp" scp -q -P "$ssh_port" "${ssh_opts[@]}" "$work/src" \
    "127.0.0.1:$work/peer.out"
scp_mbs=$last_mbs
peer "scp -c aes128-gcm" scp -q -c aes128-gcm@openssh.com -P "$ssh_port" \
    "${ssh_opts[@]}" "$work/src" "127.0.0.1:$work/peer.out"
[ "$(echo "$last_mbs > $scp_mbs" | bc -l)" = 1 ] && scp_mbs=$last_mbs
peer "rsync -e ssh" rsync -a --whole-file -e "$ssh_cmd" "$work/src" \
    "127.0.0.1:$work/peer.out"

# TLS, the default: the first connection records the server's key.
start_server
for threads in 1 2 4 8; do
	run "paraflow, $threads streams" "$threads"
	[ "$threads" = 4 ] && tls4_mbs=$last_mbs
done
kill "$server"
wait "$server" 2>/dev/null || true
# The price of TLS: the same in plaintext, both ends saying so.
start_server --no-tls
run "paraflow, 4, --no-tls" 4 --no-tls
plain4_mbs=$last_mbs
kill "$server"
wait "$server" 2>/dev/null || true
# The price of durable ACKs: the same with no fdatasync at all.
start_server --sync none
run "paraflow, 4, --sync none" 4
echo
awk -v t="$tls4_mbs" -v p="$plain4_mbs" -v s="$scp_mbs" 'BEGIN {
	printf "TLS, 4 streams: %.2fx the --no-tls upload (target >= 0.8), " \
	    "%.2fx the faster scp (target >= 3)\n", t / p, t / s }'
if grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp 2>/dev/null; then
	echo "TLS records: kTLS available (the kernel's tls ULP)"
else
	echo "TLS records: OpenSSL in user space (this kernel has no tls ULP)"
fi
echo "cpu-s: client and server together (nc's own time is not measured;"
echo "scp and rsync: the client's only); MB = 10^6 bytes; paraflow runs"
echo "include the server's fdatasync and rename."
