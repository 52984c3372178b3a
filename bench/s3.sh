#!/bin/bash
# SPDX-License-Identifier: MIT
# ParaFlow on S3 (issue 16) next to awscli, in one run, against one
# throwaway Ceph RGW on this machine (tests/s3/rgw.sh):
#   aws s3 cp   awscli's own multipart upload of the file to the same RGW
#               (8 MiB parts, max_concurrent_requests AWS_CONC): the
#               baseline every row is divided by;
#   1 node      paraflow upload to one paraflowd on S3 (--chunk-size 8M),
#               over TLS, and with --no-tls;
#   HAProxy     the same through HAProxy (docker/scale-out/haproxy.cfg with
#               local addresses) to 1 node, then to 3 nodes;
#   K at once   the aggregate of K concurrent uploads: to 1 node, through
#               HAProxy to 3 nodes, and each straight to a node of its own.
# Each row is the median of RUNS runs; its note says, for the last run,
# the streams paraflow used and the CPU seconds of each node that worked. After every run each uploaded
# object's SHA-256 is read back with awscli and compared with the file's,
# then the object is deleted and RGW's garbage collected (the OSD keeps
# data in RAM). CPU seconds per group from cgroups: paraflowd (every
# node), RGW (radosgw, ceph-osd, ceph-mon), HAProxy, and the client
# (paraflow or aws).
#   bench/s3.sh [SIZE_MIB]   (default 512; needs root: cgroups)
# RUNS (default 3); K (default 3); BALANCE (default roundrobin: HAProxy's
# balance for the native port, as shipped; "source" keeps every
# connection of one client on one node); STREAMS (default auto:
# paraflow's --threads); AWS_CONC (default 10, awscli's default
# max_concurrent_requests); PARTS (default "aws one ha conc").
set -eu
. "$(dirname "$0")/lib.sh"

size_mib=${1:-512}
runs=${RUNS:-3}
k=${K:-3}
balance=${BALANCE:-roundrobin}
streams=${STREAMS:-auto}
aws_conc=${AWS_CONC:-10}
parts=${PARTS:-aws one ha conc}
MiB=$((1024 * 1024))
B=pf-bench
P=bench/

[ "$(id -u)" -eq 0 ] || { echo "needs root (cgroups)"; exit 1; }
AWS=/usr/bin/aws
for c in "$AWS" haproxy curl python3 bc; do
	command -v "$c" >/dev/null ||
	    { echo "$c not found (scripts/deps.sh)"; exit 1; }
done

BENCH_DIR=${BENCH_DIR:-/dev/shm} bench_init pf-s3
rgw_up=no
s3_cleanup() {
	[ "$rgw_up" = no ] ||
	    bash "$top/tests/s3/rgw.sh" stop "$work/ceph" 2>/dev/null || true
	bench_cleanup
	cg_done
}
trap s3_cleanup EXIT
trap 'exit 130' INT TERM
cg_init pfd rgw lb cli
[ -n "$cg" ] || echo "no writable cgroup mount: CPU times read 0"

# free_port: a TCP port nobody listens on now (the kernel's choice).
free_port() {
	python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS CMD...: until CMD succeeds; false after SECONDS.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# --- The store, the file, awscli ---------------------------------------

# Room for K uploads at once, twice over (the OSD's copy costs about twice
# the bytes), and the next run's while the last is being collected.
export RGW_MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-$(((3 * k * size_mib + \
    1024) * MiB))}
cg_run rgw bash "$top/tests/s3/rgw.sh" start "$work/ceph" \
    >"$work/s3.env" 2>"$work/rgw.log" ||
    { tail -n 30 "$work/rgw.log"; exit 1; }
rgw_up=yes
# shellcheck disable=SC1091
. "$work/s3.env"
# awscli's own multipart upload, its settings spelt out: 8 MiB parts as
# paraflow's chunks, its default concurrency.
cat >"$work/aws.conf" <<EOF
[default]
s3 =
    multipart_threshold = 8MB
    multipart_chunksize = 8MB
    max_concurrent_requests = $aws_conc
EOF
export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY \
    AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=$work/aws.conf \
    AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_PAGER='' \
    AWS_REQUEST_CHECKSUM_CALCULATION=when_required \
    AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
aws() {
	"$AWS" --endpoint-url "$S3_ENDPOINT" "$@"
}
aws s3api create-bucket --bucket "$B" >/dev/null

src=$work/up.bin
head -c "$((size_mib * MiB))" /dev/urandom >"$src"
want=$(sha256sum <"$src" | cut -d' ' -f1)

# gc: RGW frees deleted objects now rather than after its GC period.
gc() {
	radosgw-admin -c "$work/ceph/ceph.conf" gc process \
	    --include-all >/dev/null 2>&1 || true
}

# verify KEY...: each object's SHA-256, read back by awscli, is the
# file's; then the object is deleted.
verify() {
	local key got
	for key in "$@"; do
		got=$(aws s3 cp "s3://$B/$key" - | sha256sum | cut -d' ' -f1)
		if [ "$got" != "$want" ]; then
			echo "  $key: SHA-256 $got, not the file's $want" >&2
			return 1
		fi
		aws s3 rm --only-show-errors "s3://$B/$key"
	done
	verified=$((verified + $#))
}
verified=0

# --- The nodes, HAProxy ------------------------------------------------

# One certificate and key for every node, made as docs/scale-out.md says.
pin=$("$bin/paraflowd" --tls-dir "$work/tls" --storage "$work/tlsst" \
    --fingerprint)
cat "$work/tls/cert.pem" "$work/tls/key.pem" >"$work/tls/haproxy.pem"
printf 'bench-pw\n' | "$bin/paraflowd" --users "$work/users" \
    --add-user bench 2>/dev/null
export PARAFLOW_STATE_DIR=$work/state

# node_start N [ARGS...]: paraflowd N on the bucket, on ephemeral ports;
# sets nport[N] and nhport[N] (0 if --no-http).
declare -a nport nhport npid
node_start() {
	local n=$1 d=$work/node$1
	shift
	mkdir -p "$d"
	rm -f "$d/port" "$d/hport"
	cg_exec pfd "$bin/paraflowd" --bind 127.0.0.1 --port 0 \
	    --port-file "$d/port" --http-port 0 --http-port-file "$d/hport" \
	    --storage "s3://$B/$P" --s3-endpoint "$S3_ENDPOINT" \
	    --node-dir "$d" --users "$work/users" \
	    --tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem" \
	    --max-ip-logins 10000 --max-sessions 1000 \
	    --max-user-sessions 1000 --max-user-connections 10000 \
	    --quiet "$@" 2>>"$d/log" &
	npid[n]=$!
	pids+=($!)
	wait_for 60 test -s "$d/port" ||
	    { echo "node $n did not start:"; tail "$d/log"; exit 1; }
	nport[n]=$(cat "$d/port")
	nhport[n]=0
	[ ! -e "$d/hport" ] || nhport[n]=$(cat "$d/hport")
}

# ha_start N: HAProxy with the shipped configuration in front of nodes 1
# to N; sets hport. ha_stop stops it.
ha_start() {
	local i sed=()
	hport=$(free_port)
	gport=$(free_port)
	sed+=(-e "s#/run/secrets/paraflow_tls_cert#$work/tls/cert.pem#g"
	    -e "s#/run/secrets/paraflow_tls_pem#$work/tls/haproxy.pem#"
	    -e "s#bind :7878#bind 127.0.0.1:$hport#"
	    -e "s#bind :8080#bind 127.0.0.1:$gport#"
	    -e "s#balance roundrobin#balance $balance#")
	for i in 1 2 3; do
		if [ "$i" -le "$1" ]; then
			sed+=(-e "s#node$i:7878 check port 8080#127.0.0.1:${nport[i]} check port ${nhport[i]}#"
			    -e "s#node$i:8080#127.0.0.1:${nhport[i]}#")
		else
			sed+=(-e "/server node$i /d")
		fi
	done
	sed "${sed[@]}" "$top/docker/scale-out/haproxy.cfg" >"$work/haproxy.cfg"
	cg_exec lb haproxy -db -f "$work/haproxy.cfg" >>"$work/haproxy.log" 2>&1 &
	ha_pid=$!
	pids+=($!)
	# Up once the gateway frontend answers /readyz: HAProxy's TLS with
	# the nodes' key, its health checks and its TLS to the node work.
	wait_for 60 curl -fs -o /dev/null --max-time 10 -k \
	    --pinnedpubkey "$pin" "https://127.0.0.1:$gport/readyz" ||
	    { echo "HAProxy did not start:"; tail "$work/haproxy.log"; exit 1; }
}

ha_stop() {
	kill "$ha_pid" 2>/dev/null || true
	wait "$ha_pid" 2>/dev/null || true
}

# --- The uploads -------------------------------------------------------

# aws_up: awscli's multipart upload of the file.
aws_up() {
	cg_run cli "$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp \
	    --only-show-errors "$src" "s3://$B/aws/up.bin" || return 1
	keys=(aws/up.bin)
}

# pf_one PORT OUT [ARGS...]: one paraflow upload of the file; its --json
# result in OUT.
pf_one() {
	local port=$1 out=$2
	shift 2
	PARAFLOW_SECRET=bench-pw cg_run cli "$bin/paraflow" upload \
	    --port "$port" --user bench --file "$src" --name up.bin \
	    --chunk-size 8M --threads "$streams" --pin "$pin" --json --quiet \
	    --no-resume "$@" >"$out" 2>"$out.err"
}

# pf_key OUT: the object key of the upload whose result is in OUT; its
# stream counts in note.
pf_key() {
	local sid
	grep -q '"status":"ok"' "$1" ||
	    { echo "  upload failed: $(cat "$1" "$1.err" | head -c 300)" >&2
	    return 1; }
	sid=$(sed -n 's/.*"session":"\([^"]*\)".*/\1/p' "$1")
	keys+=("${P}files/$sid/up.bin")
	note=$(python3 -c 'import json, sys
s = json.load(open(sys.argv[1])).get("streams") or {}
print("streams %s, max %s" % (s.get("mode"), s.get("max")) if s else "")' \
	    "$1")
}

# pf_up PORT [ARGS...]: one upload.
pf_up() {
	local port=$1
	shift
	keys=()
	pf_one "$port" "$work/r0" "$@" || true
	pf_key "$work/r0"
}

# pf_many PORT...: one upload to each PORT, all at once.
pf_many() {
	local i=0 p ps=() rc=0
	keys=()
	for p in "$@"; do
		pf_one "$p" "$work/r$i" &
		ps+=($!)
		i=$((i + 1))
	done
	for p in "${ps[@]}"; do wait "$p" || true; done
	for ((i = 0; i < $#; i++)); do pf_key "$work/r$i" || rc=1; done
	return "$rc"
}

# --- Measuring ---------------------------------------------------------

median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2]
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# node_ticks: each running node's CPU so far, in clock ticks ("N:TICKS").
node_ticks() {
	local n
	for n in "${!npid[@]}"; do
		[ -r "/proc/${npid[n]}/stat" ] || continue
		awk -v n="$n" '{ printf "%s:%d ", n, $14 + $15 }' \
		    "/proc/${npid[n]}/stat"
	done
}

# spread BEFORE AFTER: the CPU seconds each node spent between two
# node_ticks, those over 0.1 s: where the connections went.
spread() {
	awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		n = split(a, x, " ")
		for (i = 1; i <= n; i++) { split(x[i], kv, ":"); t[kv[1]] = kv[2] }
		n = split(b, x, " ")
		for (i = 1; i <= n; i++) {
			split(x[i], kv, ":")
			d = (kv[2] - t[kv[1]]) / hz
			if (d > 0.1)
				out = out sprintf("%snode %s %.1f s", out ? ", " : "",
				    kv[1], d)
		}
		print out
	}'
}

rows=()
# measure LABEL UPLOADS FN ARGS...: FN ARGS RUNS times (FN sets keys, the
# objects it made, and may set note); every object verified and deleted
# after each run, outside the clock. A failed run ends the row, marked.
measure() {
	local label=$1 n=$2 fn=$3 r t0 t1 g a b k0
	local ts=() c_pfd=() c_rgw=() c_lb=() c_cli=()
	local -A u0 u1
	shift 3
	for ((r = 1; r <= runs; r++)); do
		note='' keys=()
		for g in pfd rgw lb cli; do u0[$g]=$(cg_usec "$g"); done
		k0=$(node_ticks)
		t0=$(now)
		if ! "$fn" "$@" 2>"$work/fail"; then
			sed 's/^/    /' "$work/fail" | head -n 5
			printf '  %-44s run %d/%d: FAILED\n' "$label" "$r" "$runs"
			note=$(grep -o -m 1 '"message":"[^"]*"' "$work/fail" |
			    head -n 1 | cut -d'"' -f4)
			rows+=("$label|$n|FAILED|0|0|0|0|${note:-see above}")
			[ ${#keys[@]} -eq 0 ] || verify "${keys[@]}" || true
			gc
			return 0
		fi
		t1=$(now)
		for g in pfd rgw lb cli; do u1[$g]=$(cg_usec "$g"); done
		a=$(spread "$k0" "$(node_ticks)")
		note=$note${a:+${note:+; }cpu $a}
		verify "${keys[@]}" ||
		    { echo "$label: an object differs" >&2; exit 1; }
		gc
		ts+=("$(echo "$t1 - $t0" | bc -l)")
		for g in pfd rgw lb cli; do
			a=${u0[$g]} b=${u1[$g]}
			eval "c_$g+=(\"\$(echo \"($b - $a) / 1000000\" | bc -l)\")"
		done
		printf '  %-44s run %d/%d: %7.2f s %s\n' "$label" "$r" "$runs" \
		    "${ts[-1]}" "$note"
	done
	rows+=("$label|$n|$(printf '%s\n' "${ts[@]}" | median)|$(printf \
	    '%s\n' "${c_pfd[@]}" | median)|$(printf '%s\n' "${c_rgw[@]}" |
	    median)|$(printf '%s\n' "${c_lb[@]}" | median)|$(printf '%s\n' \
	    "${c_cli[@]}" | median)|$note")
}

# table: the rows, MB/s over the aws s3 cp row's.
table() {
	echo
	echo "### S3 on RGW, $size_mib MiB a file, median of $runs," \
	    "HAProxy balance $balance"
	echo
	echo "| run | uploads | time | MB/s | x aws s3 cp | cpu-s paraflowd" \
	    "| cpu-s RGW | cpu-s HAProxy | cpu-s client | paraflowd cpu-s/GiB |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}" | awk -F'|' -v mib="$size_mib" '
	NR == 1 && $3 != "FAILED" && $1 ~ /^aws/ { base = mib * 1.048576 / $3 }
	{
		note = $8 == "" ? "" : " (" $8 ")"
		if ($3 == "FAILED") {
			printf "| %s%s | %d | FAILED | | | | | | | |\n", $1, note, $2
			next
		}
		mbs = $2 * mib * 1.048576 / $3
		printf "| %s%s | %d | %.2f s | %.0f | %s | %.2f | %.2f | %.2f" \
		    " | %.2f | %s |\n", $1, note, $2, $3, mbs,
		    base ? sprintf("%.2fx", mbs / base) : "-", $4, $5, $6, $7,
		    $1 ~ /^aws/ ? "-" : sprintf("%.2f", $4 * 1024 / ($2 * mib))
	}'
	echo
}

# --- The run -----------------------------------------------------------

machine
echo "RGW at $S3_ENDPOINT (memstore OSD); file $size_mib MiB; paraflow" \
    "--chunk-size 8M --threads $streams; aws s3 cp 8 MiB parts," \
    "max_concurrent_requests $aws_conc"

want_part() {
	case " $parts " in *" $1 "*) return 0 ;; esac
	return 1
}

want_part aws && measure "aws s3 cp (multipart, 8 MiB parts)" 1 aws_up
node_start 1
if want_part one; then
	measure "paraflow, 1 node, TLS" 1 pf_up "${nport[1]}"
	node_start 4 --no-tls --no-http
	measure "paraflow, 1 node, --no-tls" 1 pf_up "${nport[4]}" --no-tls
	kill "${npid[4]}"
	wait "${npid[4]}" 2>/dev/null || true
	unset 'npid[4]'
fi
node_start 2
node_start 3
if want_part ha; then
	ha_start 1
	measure "paraflow, HAProxy, 1 node" 1 pf_up "$hport"
	ha_stop
	ha_start 3
	measure "paraflow, HAProxy, 3 nodes" 1 pf_up "$hport"
	ha_stop
fi
if want_part conc; then
	ports=()
	for ((i = 0; i < k; i++)); do ports+=("${nport[1]}"); done
	measure "$k at once, 1 node" "$k" pf_many "${ports[@]}"
	ha_start 3
	ports=()
	for ((i = 0; i < k; i++)); do ports+=("$hport"); done
	measure "$k at once, HAProxy, 3 nodes" "$k" pf_many "${ports[@]}"
	ha_stop
	ports=()
	for ((i = 0; i < k; i++)); do ports+=("${nport[i % 3 + 1]}"); done
	measure "$k at once, one node each, no HAProxy" "$k" pf_many \
	    "${ports[@]}"
fi
table
echo "$verified objects read back with awscli: SHA-256 as the file's"
echo "paraflowd peak RSS: $(for n in 1 2 3; do awk -v n="$n" '/VmHWM/ {
    printf "node %d %.0f MiB  ", n, $2 / 1024 }' "/proc/${npid[n]}/status"
    done)"
