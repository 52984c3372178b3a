#!/bin/bash
# SPDX-License-Identifier: MIT
# ParaFlow next to its peers, in one run, on the same page-cached file:
#   tmpfs and disk: paraflow (plaintext, 1/2/4/8 streams and its default;
#     the default once more over TLS), nc to /dev/null and to a synced
#     file, an rsync daemon (rsync://), rsync -e ssh and scp to a
#     localhost sshd, curl -T to nginx with WebDAV;
#   a link capped per flow (two network namespaces, veth, htb with one
#     class per source port): paraflow at 1/2/4/8/16 streams and its
#     default, nc as the one-flow peer; then the whole link capped instead;
#   concurrency: 8 uploads of 8 streams against 8 uploads of 1 stream.
# Every row is the median of RUNS runs, every received copy is compared
# with the source byte for byte, and CPU time is counted per side from
# cgroups (server: the daemon and all it forks; client: the command).
#   bench/peers.sh [SIZE_MIB]          (default 1024; needs root)
# RUNS (default 3) runs per row; TMPFS_DIR (default /dev/shm) and
# DISK_DIR (default /var/tmp) the two media; CAP_MIB (default SIZE/2) and
# CAP_RATE (default 100mbit) the capped link, CAP_THREADS (default
# "1 2 4 8 16 32 64") the fixed stream counts on it, CAP_WHOLE=0 skips its
# whole-link part; CONC_MIB (default SIZE) each
# concurrent upload, 8 x CONC_MIB of it kept on TMPFS_DIR at once; PARTS
# (default "tmpfs disk capped conc") the parts to run.
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"
. "$(dirname "$0")/netcap.sh"

size_mib=${1:-1024}
runs=${RUNS:-3}
tmpfs_dir=${TMPFS_DIR:-/dev/shm}
disk_dir=${DISK_DIR:-/var/tmp}
cap_mib=${CAP_MIB:-$((size_mib / 2))}
cap_rate=${CAP_RATE:-100mbit}
cap_threads=${CAP_THREADS:-1 2 4 8 16 32 64}
cap_whole=${CAP_WHOLE:-1}
conc_mib=${CONC_MIB:-$size_mib}
parts=${PARTS:-tmpfs disk capped conc}

[ "$(id -u)" -eq 0 ] || { echo "needs root (namespaces, cgroups)"; exit 1; }
"$top/bench/deps.sh"

BENCH_DIR=$tmpfs_dir bench_init pf-peers
dwork=
peers_cleanup() {
	bench_cleanup
	[ -z "$dwork" ] || rm -rf "$dwork"
	cap_down
	cg_done
}
trap peers_cleanup EXIT
# A signal ends the run through exit, so the daemons, namespaces and
# cgroups go too.
trap 'exit 130' INT TERM
cg_init
[ -n "$cg" ] || echo "no writable cgroup mount: CPU times read 0"
export PARAFLOW_STATE_DIR=$work/state

# mib_file N PATH: N MiB of random bytes, read once into the page cache.
mib_file() {
	head -c "$(($1 * 1024 * 1024))" /dev/urandom >"$2"
	cat "$2" >/dev/null
}

# free_port: a TCP port nothing listens on now (a race, but a short one).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 20000))
		ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

# wait_port PORT: until something listens on 127.0.0.1:PORT.
wait_port() {
	for _ in $(seq 100); do
		ss -Htln "sport = :$1" | grep -q . && return 0
		sleep 0.05
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# fill TEMPLATE OUT ROOT PORT: a peer's configuration from bench/.
fill() {
	sed -e "s|@RUN@|$work/run|g" -e "s|@ROOT@|$3|g" -e "s|@PORT@|$4|g" \
	    -e "s|@USER@|$(id -un)|g" -e "s|@GROUP@|$(id -gn)|g" \
	    "$top/bench/$1" >"$2"
}

# median: the median of the numbers on stdin.
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2]
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The rows of the section being measured: label, synced, seconds,
# client and server CPU seconds, whether it is a paraflow row, a note.
rows=()
row_add() {
	rows+=("$1|$2|$3|$4|$5|$6|$7")
}

# measure LABEL SYNCED PF FN ARGS...: runs FN ARGS RUNS times; FN
# does one transfer of src and sets got (the received copy, or "" when
# nothing is kept) and note; FN_prep ARGS, if there is one, starts its
# receiver before the clock does. The copy is compared with src outside
# the clock, then removed (and the medium synced, so the next run does not
# pay for this one's writeback). Adds the medians as a row.
measure() {
	local label=$1 synced=$2 pf=$3 fn=$4 r t0 t1 c0 c1 s0 s1
	local ts=() cs=() ss=()
	shift 4
	for ((r = 1; r <= runs; r++)); do
		got='' note=''
		! declare -F "${fn}_prep" >/dev/null || "${fn}_prep" "$@"
		c0=$(cg_usec cli) s0=$(cg_usec srv) t0=$(now)
		"$fn" "$@"
		t1=$(now) c1=$(cg_usec cli) s1=$(cg_usec srv)
		if [ -n "$got" ]; then
			cmp -s "$src" "$got" ||
			    { echo "$label: the copy differs" >&2; exit 1; }
			rm -f "$got"
			sync -f "$(dirname "$got")"
		fi
		ts+=("$(echo "$t1 - $t0" | bc -l)")
		cs+=("$(echo "($c1 - $c0) / 1000000" | bc -l)")
		ss+=("$(echo "($s1 - $s0) / 1000000" | bc -l)")
		printf '  %-36s run %d/%d: %7.2f s %s\n' "$label" "$r" \
		    "$runs" "${ts[-1]}" "$note"
	done
	row_add "$label" "$synced" "$(printf '%s\n' "${ts[@]}" | median)" \
	    "$(printf '%s\n' "${cs[@]}" | median)" \
	    "$(printf '%s\n' "${ss[@]}" | median)" "$pf" "$note"
}

# table MIB TITLE...: prints the rows (of MIB each) as a table, with
# each time over the best paraflow row's, then forgets them.
table() {
	local best mib=$1
	shift
	best=$(printf '%s\n' "${rows[@]}" | awk -F'|' '$6 == 1 { print $3 }' |
	    sort -g | head -n 1)
	echo
	echo "### $*"
	echo
	echo "| run | synced | time | MB/s | cpu-s client | cpu-s server" \
	    "| time / best paraflow |"
	echo "|---|---|---:|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}" | awk -F'|' -v mib="$mib" -v best="$best" '{
		note = $7 == "" ? "" : " (" $7 ")"
		printf "| %s%s | %s | %.2f s | %.0f | %.2f | %.2f | %.2fx |\n",
		    $1, note, $2, $3, mib * 1.048576 / $3, $4, $5, $3 / best
	}'
	echo
	rows=()
}

# --- ParaFlow ---------------------------------------------------------

# pf_start STORAGE [ARGS...]: a paraflowd (in the server group) on a
# fresh port on 127.0.0.1; sets pf_pid and pf_port.
pf_start() {
	local st=$1
	shift
	rm -f "$work/pf.port"
	cg_exec srv "$bin/paraflowd" --port 0 --port-file "$work/pf.port" \
	    --no-http --storage "$st" --tls-dir "$work/tls" --quiet "$@" \
	    2>>"$work/server.log" &
	pf_pid=$!
	pids+=("$pf_pid")
	for _ in $(seq 100); do
		[ -s "$work/pf.port" ] && break
		sleep 0.05
	done
	pf_port=$(cat "$work/pf.port")
	pf_store=$st
}

pf_stop() {
	kill "$pf_pid"
	wait "$pf_pid" 2>/dev/null || true
}

# pf_result FILE: checks a --json result; sets got to the stored copy
# and note to the stream count the client reports, if it does.
pf_result() {
	local s
	grep -q '"status":"ok"' "$1" ||
	    { echo "upload failed:" >&2; cat "$1" >&2; exit 1; }
	s=$(sed -n 's/.*"session":"\([^"]*\)".*/\1/p' "$1")
	got=$(find "$pf_store/$s" -maxdepth 1 -type f ! -name '.*')
	note=$(python3 -c 'import json, sys
s = json.load(open(sys.argv[1])).get("streams") or {}
print("streams %s, max %s, final %s" % (s.get("mode"), s.get("max"),
    s.get("final")) if s else "")' "$1")
}

# pf_up [CLIENT_ARGS...]: one upload of src to the running paraflowd.
pf_up() {
	cg_run cli "$bin/paraflow" upload --file "$src" --port "$pf_port" \
	    --json --quiet --no-resume --name up.bin "$@" >"$work/result" ||
	    true
	pf_result "$work/result"
}

# pf_rows: the paraflow rows of a medium section, plaintext and TLS.
pf_rows() {
	local t
	pf_start "$mdir/pf" --no-tls
	for t in 1 2 4 8; do
		measure "paraflow, $t stream$([ "$t" = 1 ] || echo s)" yes 1 \
		    pf_up --no-tls --threads "$t"
	done
	measure "paraflow, default" yes 1 pf_up --no-tls
	echo "  paraflowd's peak RSS over these runs:" \
	    "$(awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' \
	    "/proc/$pf_pid/status")"
	pf_stop
	pf_start "$mdir/pf"
	measure "paraflow, default, TLS" yes 1 pf_up
	pf_stop
}

# --- The peers --------------------------------------------------------

# nc_copy OUT: nc over loopback into OUT (a file: then fdatasync'ed by
# the server side before the clock stops; or /dev/null).
nc_copy_prep() {
	nc_port=$(free_port)
	cg_exec srv nc -l 127.0.0.1 "$nc_port" </dev/null >"$1" &
	nc_pid=$!
	wait_port "$nc_port"
}

nc_copy() {
	cg_run cli nc -N 127.0.0.1 "$nc_port" <"$src"
	wait "$nc_pid"
	if [ "$1" != /dev/null ]; then
		cg_run srv dd if=/dev/null of="$1" conv=notrunc,fdatasync \
		    2>/dev/null
		got=$1
	fi
}

# peer_start: the rsync daemon, nginx and sshd on the medium's $mdir.
peer_start() {
	mkdir -p "$work/run" "$mdir/rsync" "$mdir/dav/.nginx-tmp" "$mdir/ssh"
	rsync_port=$(free_port)
	fill rsyncd.conf "$work/run/rsyncd.conf" "$mdir/rsync" "$rsync_port"
	cg_exec srv rsync --daemon --no-detach \
	    --config="$work/run/rsyncd.conf" &
	pids+=($!)
	rsync_pid=$!
	dav_port=$(free_port)
	fill nginx-dav.conf "$work/run/nginx.conf" "$mdir/dav" "$dav_port"
	cg_exec srv nginx -p "$work/run" -c "$work/run/nginx.conf" \
	    -e "$work/run/error.log" &
	pids+=($!)
	dav_pid=$!
	wait_port "$rsync_port"
	wait_port "$dav_port"
}

peer_stop() {
	kill "$rsync_pid" "$dav_pid"
	wait "$rsync_pid" "$dav_pid" 2>/dev/null || true
}

rsyncd_copy() {
	cg_run cli rsync --fsync "$src" \
	    "rsync://127.0.0.1:$rsync_port/bench/peer.out"
	got=$mdir/rsync/peer.out
}

rsync_ssh_copy() {
	cg_run cli rsync --fsync -e "$ssh_cmd -c aes128-gcm@openssh.com" \
	    "$src" "127.0.0.1:$mdir/ssh/peer.out"
	got=$mdir/ssh/peer.out
}

scp_copy() {
	cg_run cli scp -q -c aes128-gcm@openssh.com -P "$ssh_port" \
	    "${ssh_opts[@]}" "$src" "127.0.0.1:$mdir/ssh/peer.out"
	got=$mdir/ssh/peer.out
}

curl_copy() {
	cg_run cli curl -sS --fail -o /dev/null -T "$src" \
	    "http://127.0.0.1:$dav_port/peer.out"
	got=$mdir/dav/peer.out
}

# medium NAME DIR: the tmpfs or disk section.
medium() {
	local fs
	mdir=$2
	fs=$(stat -f -c %T "$mdir")
	echo
	echo "== $1: $mdir ($fs), $size_mib MiB, median of $runs"
	pf_rows
	peer_start
	measure "nc -> /dev/null (transport alone)" - 0 \
	    nc_copy /dev/null
	measure "nc -> file + fdatasync" yes 0 nc_copy \
	    "$mdir/nc.out"
	measure "rsync daemon (rsync://), --fsync" yes 0 \
	    rsyncd_copy
	measure "rsync -e ssh (aes128-gcm), --fsync" yes 0 \
	    rsync_ssh_copy
	measure "scp -c aes128-gcm" no 0 scp_copy
	measure "curl -T to nginx WebDAV" no 0 curl_copy
	peer_stop
	table "$size_mib" "$1 ($fs, $mdir), $size_mib MiB, median of $runs"
}

# --- The capped link --------------------------------------------------

# cap_pf_start: a paraflowd in the server namespace (plaintext; the
# default user, which off loopback needs --insecure-default-user).
cap_pf_start() {
	rm -f "$work/pf.port"
	cg_exec srv ip netns exec "$cap_srv" "$bin/paraflowd" \
	    --bind "$cap_addr" --port 0 --port-file "$work/pf.port" \
	    --no-http --no-tls --insecure-default-user --storage "$work/cap" \
	    --quiet 2>>"$work/server.log" &
	pf_pid=$!
	pids+=("$pf_pid")
	for _ in $(seq 100); do
		[ -s "$work/pf.port" ] && break
		sleep 0.05
	done
	pf_port=$(cat "$work/pf.port")
	pf_store=$work/cap
}

cap_up_pf() {
	cg_run cli ip netns exec "$cap_cli" "$bin/paraflow" upload \
	    --host "$cap_addr" --port "$pf_port" --file "$src" --no-tls \
	    --json --quiet --no-resume --name cap.bin "$@" >"$work/result" ||
	    true
	pf_result "$work/result"
}

cap_nc_prep() {
	cg_exec srv ip netns exec "$cap_srv" nc -l "$cap_addr" 5001 \
	    </dev/null >"$work/cap/nc.out" &
	nc_pid=$!
	for _ in $(seq 100); do
		ip netns exec "$cap_srv" ss -Htln "sport = :5001" | grep -q . &&
		    break
		sleep 0.05
	done
}

cap_nc() {
	cg_run cli ip netns exec "$cap_cli" nc -N "$cap_addr" 5001 <"$src"
	wait "$nc_pid"
	got=$work/cap/nc.out
}

capped() {
	local t
	src=$work/cap.src
	mib_file "$cap_mib" "$src"
	mkdir -p "$work/cap"
	cap_up
	cap_pf_start
	echo
	echo "== capped link: $cap_rate per flow, $cap_mib MiB, median of $runs"
	cap_shape flow "$cap_rate"
	for t in $cap_threads; do
		measure "paraflow, $t stream$([ "$t" = 1 ] || echo s)" - 1 \
		    cap_up_pf --threads "$t"
	done
	measure "paraflow, default" - 1 cap_up_pf
	measure "nc (one flow, as any one-flow peer)" - 0 cap_nc
	echo "  per-flow classes that carried data (last shaping): " \
	    "$(cap_classes_used)"
	table "$cap_mib" "every flow capped at $cap_rate, $cap_mib MiB," \
	    "median of $runs"
	if [ "$cap_whole" = 0 ]; then
		pf_stop
		cap_down
		rm -f "$src"
		return
	fi
	echo "== the whole link capped at $cap_rate, one class for all flows"
	cap_shape link "$cap_rate"
	for t in 1 4 16; do
		measure "paraflow, $t stream$([ "$t" = 1 ] || echo s)" - 1 \
		    cap_up_pf --threads "$t"
	done
	measure "paraflow, default" - 1 cap_up_pf
	table "$cap_mib" "the whole link capped at $cap_rate, $cap_mib MiB," \
	    "median of $runs"
	pf_stop
	cap_down
	rm -f "$src"
}

# --- Concurrency ------------------------------------------------------

# conc_up STREAMS: 8 uploads of src at once, each with STREAMS streams.
conc_up() {
	local i cp=()
	for i in 1 2 3 4 5 6 7 8; do
		cg_exec cli "$bin/paraflow" upload --file "$src" \
		    --port "$pf_port" --no-tls --json --quiet --no-resume \
		    --name "c$i.bin" --threads "$1" >"$work/result$i" &
		cp+=($!)
	done
	wait "${cp[@]}" || true
	for i in 1 2 3 4 5 6 7 8; do
		pf_result "$work/result$i"
		cmp -s "$src" "$got" ||
		    { echo "upload $i of 8: the copy differs" >&2; exit 1; }
		rm -f "$got"
	done
	got='' note=''
}

# The limits a server would be given for 8 busy clients from one
# address: 72 connections for one user, all logging in at once.
conc_limits=(--max-user-connections 128 --max-login-connections 128
    --max-ip-logins 128 --max-user-sessions 16)

concurrent() {
	local s hwm=()
	src=$work/conc.src
	mib_file "$conc_mib" "$src"
	echo
	echo "== 8 uploads at once, $conc_mib MiB each, on $tmpfs_dir," \
	    "median of $runs"
	for s in 8 1; do
		pf_start "$work/conc" --no-tls "${conc_limits[@]}"
		measure "8 uploads x $s stream$([ "$s" = 1 ] || echo s)" yes 1 \
		    conc_up "$s"
		hwm+=("$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' \
		    "/proc/$pf_pid/status")")
		pf_stop
	done
	printf '%s\n' "${rows[@]}" | awk -F'|' -v m="$((8 * conc_mib))" '
		{ t[NR] = $3; s[NR] = $5 }
		END { printf "8x8 / 8x1: aggregate %.2fx, server cpu %.2fx" \
		    " (targets >= 1, <= 1.2)\n", t[2] / t[1], s[1] / s[2] }'
	echo "server peak RSS: ${hwm[0]} MiB (8x8), ${hwm[1]} MiB (8x1)"
	table "$((8 * conc_mib))" "8 uploads at once, $conc_mib MiB each" \
	    "(MB/s: all 8), median of $runs"
	rm -f "$src"
}

# --- The run ----------------------------------------------------------

machine
grep -q sha_ni /proc/cpuinfo && echo "cpu has SHA extensions (sha_ni)"
echo "paraflow: $("$bin/paraflow" --version 2>&1 | head -n 1)"
echo "MB = 10^6 bytes; cpu-s from cgroups ($cg); synced: the time" \
    "includes making the copy durable (fdatasync, rsync --fsync)"
for part in $parts; do
	case $part in
	tmpfs|disk)
		src=$work/src
		[ -f "$src" ] || mib_file "$size_mib" "$src"
		if [ "$part" = tmpfs ]; then
			d=$work/t
		else
			dwork=$(mktemp -d "$disk_dir/pf-peers.XXXXXX")
			d=$dwork
		fi
		mkdir -p "$d"
		# sshd and every session it forks count as the server.
		[ -n "${ssh_port:-}" ] || sshd_launch="cg_exec srv" sshd_up
		medium "$part" "$d"
		;;
	capped) capped ;;
	conc) concurrent ;;
	*) echo "unknown part $part (tmpfs, disk, capped, conc)"; exit 2 ;;
	esac
done
