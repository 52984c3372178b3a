#!/bin/bash
# SPDX-License-Identifier: MIT
# Many files at once, on loopback, into the same filesystem: a tree of
# small files (FILES files of 4-64 KiB, random sizes) and a mixed tree
# (BIG files of 100 MiB plus MIXED small ones), each sent by
#   paraflow upload DIR (one transfer, plaintext, its defaults),
#   tar | nc (the floor: no checks, no resume),
#   rsync -r to an rsync daemon (bench/rsyncd.conf), and
#   scp -r to a localhost sshd (bench/sshd.sh).
# Every copy is compared with the source (diff -r) before its time counts.
# The four run in turns, ROUNDS times (default 3), each round starting
# with the next one; a row is a tool's median, with its ratio to
# paraflow's. No copy is deleted before the end: each is moved aside
# (a rename): on ext4 without a journal each new file skips, one by one,
# the inodes freed in the last seconds (recently_deleted: 5 s once their
# table is written, 300 s before), and deleting a copy cost the next tool
# up to a CPU-second. DISK_DIR needs room for every copy (about 9.3 GB
# with the defaults).
#   bench/folders.sh            (needs root for the sshd)
# FILES (default 10000), BIG (default 3), MIXED (default 5000); SRC_DIR
# (default /dev/shm) holds the trees, DISK_DIR (default /var/tmp) every
# receiver's storage. BASE_BIN (a build directory of another version)
# adds that paraflow and paraflowd as a fifth peer, "base": two versions
# compared in one run. RSYNC_ALSO (another rsync binary, e.g. an older
# release unpacked with apt-get download and dpkg -x) adds it, client and
# daemon, as the peer "rsync2": Debian 12's rsync went from 3.2.7 to
# 3.5.0 in a security update, and the two differ here.
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/sshd.sh"

files=${FILES:-10000}
big=${BIG:-3}
mixed=${MIXED:-5000}
src_dir=${SRC_DIR:-/dev/shm}
disk_dir=${DISK_DIR:-/var/tmp}
rounds=${ROUNDS:-3}

BENCH_DIR=$src_dir bench_init pf-folders
dwork=$(mktemp -d "$disk_dir/pf-folders.XXXXXX")
trap 'bench_cleanup; rm -rf "$dwork"' EXIT
trap 'exit 130' INT TERM
export PARAFLOW_STATE_DIR=$work/state
bench_need netcat-openbsd rsync

# tree DIR COUNT BIGCOUNT: COUNT files of 4-64 KiB in 100 folders, and
# BIGCOUNT files of 100 MiB; read once into the page cache.
tree() {
	python3 - "$1" "$2" "$3" <<'EOF'
import os, random, sys
top, n, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(14)
for i in range(n):
    d = os.path.join(top, "d%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
        f.write(b"pf-data " + os.urandom(random.randint(4096, 65536) - 8))
for i in range(big):
    with open(os.path.join(top, "big%d.bin" % i), "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
EOF
	cat "$1"/*/* "$1"/*.bin >/dev/null 2>&1 || true
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

wait_port() {
	for _ in $(seq 100); do
		nc -z 127.0.0.1 "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# timed NAME SRC GOT CMD...: runs CMD, checks GOT equals SRC, prints the
# run's row and adds its seconds to $work/t.NAME.
timed() {
	local name=$1 src=$2 got=$3 t0 t1 secs
	shift 3
	sync
	t0=$(now)
	"$@" >/dev/null 2>"$work/err" || { cat "$work/err"; return 1; }
	sync
	t1=$(now)
	# shellcheck disable=SC2086 # got may be a glob (paraflow's id)
	diff -r -q "$src" $got >/dev/null || {
		echo "$name: the copy differs"; return 1; }
	secs=$(echo "$t1 - $t0" | bc)
	echo "$secs" >>"$work/t.${name//[^a-z0-9]/}"
	printf '  %-10s %8.2f s\n' "$name" "$secs"
}

# median: the median of the numbers on stdin.
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2]
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The peers, all writing under $dwork.
pf_port=$(free_port)
"$bin/paraflowd" --port "$pf_port" --bind 127.0.0.1 --no-tls --no-http \
    --storage "$dwork/pf" 2>"$work/pf.log" &
pids+=($!)
if [ -n "${BASE_BIN:-}" ]; then
	base_port=$(free_port)
	"$BASE_BIN/paraflowd" --port "$base_port" --bind 127.0.0.1 --no-tls \
	    --no-http --storage "$dwork/base" 2>"$work/base.log" &
	pids+=($!)
	wait_port "$base_port"
fi
rs_port=$(free_port)
mkdir -p "$dwork/rsync" "$work/run"
sed -e "s|@RUN@|$work/run|" -e "s|@PORT@|$rs_port|" \
    -e "s|@ROOT@|$dwork/rsync|" -e "s|@USER@|$(id -un)|" \
    -e "s|@GROUP@|$(id -gn)|" "$top/bench/rsyncd.conf" >"$work/run/rs.conf"
rsync --daemon --no-detach --config="$work/run/rs.conf" &
pids+=($!)
if [ -n "${RSYNC_ALSO:-}" ]; then
	rs2_port=$(free_port)
	mkdir -p "$dwork/rsync2" "$work/run2"
	sed -e "s|@RUN@|$work/run2|" -e "s|@PORT@|$rs2_port|" \
	    -e "s|@ROOT@|$dwork/rsync2|" -e "s|@USER@|$(id -un)|" \
	    -e "s|@GROUP@|$(id -gn)|" "$top/bench/rsyncd.conf" \
	    >"$work/run2/rs.conf"
	"$RSYNC_ALSO" --daemon --no-detach --config="$work/run2/rs.conf" &
	pids+=($!)
	wait_port "$rs2_port"
	echo "rsync: $(rsync --version | head -n 1);" \
	    "rsync2: $("$RSYNC_ALSO" --version | head -n 1)"
fi
sshd_up
wait_port "$pf_port"
wait_port "$rs_port"

# nc_copy NAME: tar of $work/NAME to the listener, until it has unpacked.
nc_copy() {
	tar -C "$work" -c "$1" | nc -N 127.0.0.1 "$nc_port"
	wait "$nc_pid"
}

# aside DIR: moves the copy DIR out of its receiver's way, undeleted.
aside() {
	mkdir -p "$dwork/aside"
	mv "$1" "$(mktemp -d "$dwork/aside/c.XXXXXX")/"
}

# run_one LABEL TOOL: one copy of tree $work/LABEL by TOOL, then set aside.
run_one() {
	local t=$work/$1 d
	case $2 in
	paraflow)
		timed paraflow "$t" "$dwork/pf/*/$1" "$bin/paraflow" upload \
		    --no-tls --port "$pf_port" --quiet "$t" || true
		# paraflowd's own account of its COMMIT.
		grep 'entries: staged' "$work/pf.log" | tail -n 1 |
		    sed 's/^.*: \([0-9]* entries\)/    COMMIT: \1/'
		for d in "$dwork"/pf/*/; do aside "$d"; done ;;
	base)
		timed base "$t" "$dwork/base/*/$1" "$BASE_BIN/paraflow" upload \
		    --no-tls --port "$base_port" --quiet "$t" || true
		for d in "$dwork"/base/*/; do aside "$d"; done ;;
	tar)
		nc_port=$(free_port)
		mkdir -p "$dwork/nc/$1"
		(cd "$dwork/nc/$1" && nc -l 127.0.0.1 "$nc_port" | tar -x) &
		nc_pid=$!
		# Not wait_port: the listener takes one connection, the probe's.
		for _ in $(seq 100); do
			ss -ltn | grep -q ":$nc_port " && break
			sleep 0.05
		done
		timed 'tar|nc' "$t" "$dwork/nc/$1/$1" nc_copy "$1" || true
		aside "$dwork/nc/$1" ;;
	rsync)
		timed rsync "$t" "$dwork/rsync/$1" rsync -r "$t" \
		    "rsync://127.0.0.1:$rs_port/bench/" || true
		aside "$dwork/rsync/$1" ;;
	rsync2)
		timed rsync2 "$t" "$dwork/rsync2/$1" "$RSYNC_ALSO" -r "$t" \
		    "rsync://127.0.0.1:$rs2_port/bench/" || true
		aside "$dwork/rsync2/$1" ;;
	scp)
		mkdir -p "$dwork/scp"
		timed 'scp -r' "$t" "$dwork/scp/$1" scp -q -r -P "$ssh_port" \
		    "${ssh_opts[@]}" "$t" "127.0.0.1:$dwork/scp/" || true
		aside "$dwork/scp/$1" ;;
	esac
}

# run_tree LABEL COUNT BIG: one tree through every peer, ROUNDS times.
run_tree() {
	local t=$work/$1 tools=(paraflow tar rsync scp) r k m pf
	[ -z "${BASE_BIN:-}" ] || tools+=(base)
	[ -z "${RSYNC_ALSO:-}" ] || tools+=(rsync2)
	tree "$t" "$2" "$3"
	bytes=$(du -sb "$t" | cut -f1)
	echo "== $1: $(find "$t" -type f | wc -l) files, $((bytes / 1048576))" \
	    "MiB, $rounds rounds"
	rm -f "$work"/t.*
	for r in $(seq 0 $((rounds - 1))); do
		echo " round $((r + 1))"
		for k in "${!tools[@]}"; do
			run_one "$1" "${tools[$(((r + k) % ${#tools[@]}))]}"
		done
	done
	pf=$(median <"$work/t.paraflow")
	echo " median of $rounds:"
	for k in paraflow base 'tar|nc' rsync rsync2 'scp -r'; do
		[ -s "$work/t.${k//[^a-z0-9]/}" ] || continue
		m=$(median <"$work/t.${k//[^a-z0-9]/}")
		printf '  %-10s %8.2f s  %8.1f MB/s  %5.2fx paraflow'"'"'s time\n' \
		    "$k" "$m" "$(echo "$bytes / $m / 1000000" | bc -l)" \
		    "$(echo "$m / $pf" | bc -l)"
	done
	rm -rf "$t"
}

machine
run_tree small "$files" 0
run_tree mixed "$mixed" "$big"
