#!/bin/bash
# SPDX-License-Identifier: MIT
# --threads auto and --limit-rate against a real paraflowd, on loopback in
# a network namespace of its own, shaped with htb: once with every TCP
# flow capped (one class per client port; the ephemeral port range is
# narrowed so that no two flows share a class), once with the whole link
# capped. Auto must end with more streams on the first than on the
# second; a server with --max-user-connections 3 must never answer busy;
# --limit-rate must hold the rate within 10 %. The figures are printed;
# only behaviour is asserted, besides the one rate the issue asks for.

if [ -z "${PF_NETNS:-}" ] && command -v unshare >/dev/null 2>&1 &&
    unshare -n true 2>/dev/null; then
	PF_NETNS=1 exec unshare -n bash "$0" "$@"
fi

# shellcheck source=tests/integ/lib.sh
. "$(dirname "$0")/lib.sh"

[ "${PF_NETNS:-}" = 1 ] || skip_all "cannot make a network namespace"

# Storage on tmpfs where there is one: a sync stalled by other work on a
# shared disk would count in the goodput and in --limit-rate's time,
# and neither is about the disk.
if [ -d /dev/shm ] && SHM=$(mktemp -d /dev/shm/pf-autotune.XXXXXX); then
	STORAGE=$SHM/storage
	trap 'cleanup; rm -rf "$SHM"' EXIT
fi
command -v tc >/dev/null 2>&1 || skip_all "no tc"
ip link set lo up || skip_all "cannot bring up loopback in a netns"
tc qdisc add dev lo root handle 1: htb default 1 2>/dev/null ||
    skip_all "no htb qdisc"
tc qdisc del dev lo root

# The client's ports, one htb class each.
LOW=40000
FLOWS=128

# shape_per_flow RATE: every flow from a client port capped at RATE;
# anything else (the server's answers) passes.
shape_per_flow() {
	local i
	tc qdisc del dev lo root 2>/dev/null
	tc qdisc add dev lo root handle 1: htb default 1
	tc class add dev lo parent 1: classid 1:1 htb rate 10gbit \
	    quantum 65536
	for ((i = 0; i < FLOWS; i++)); do
		tc class add dev lo parent 1: classid "1:$((100 + i))" htb \
		    rate "$1" ceil "$1" quantum 65536
		tc filter add dev lo parent 1: protocol ip prio 1 u32 \
		    match ip sport "$((LOW + i))" 0xffff \
		    flowid "1:$((100 + i))"
	done
}

# shape_whole RATE: one class for everything on the link.
shape_whole() {
	tc qdisc del dev lo root 2>/dev/null
	tc qdisc add dev lo root handle 1: htb default 1
	tc class add dev lo parent 1: classid 1:1 htb rate "$1" ceil "$1" \
	    quantum 65536
}

unshaped() {
	tc qdisc del dev lo root 2>/dev/null
	return 0
}

# peak_conns PID: while PID runs, the most connections established to
# the server's port at once (every 50 ms), printed when it ends. While it
# is ours (lib.sh): once reaped, its PID may be a process that never ends.
peak_conns() {
	local most=0 n
	while ours "$1"; do
		n=$(ss -Htn state established "( dport = :$PORT )" | wc -l)
		[ "$n" -gt "$most" ] && most=$n
		sleep 0.05
	done
	echo "$most"
}

# jq-less reads of the upload's JSON ($T/up.json).
field() {
	json_get "$1" <"$T/up.json"
}

# auto_upload NAME FILE ARGS...: an upload with --threads auto; its JSON
# in $T/up.json, its log (-v) in $T/up.err, the peak of connections in
# CONNS, the exit status in RC.
auto_upload() {
	local name=$1 file=$2 pid
	shift 2
	RC=0
	"$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" --json -v \
	    --file "$file" --name "$name" "$@" >"$T/up.json" \
	    2>"$T/up.err" &
	pid=$!
	CONNS=$(peak_conns "$pid")
	wait "$pid" || RC=$?
	grep 'streams:' "$T/up.err" | sed 's/^.*streams:/#   streams:/'
}

start_server --no-tls --no-http --max-user-connections 3
# From now on client ports are the shaped ones; the server has its own.
sysctl -qw net.ipv4.ip_local_port_range="$LOW $((LOW + FLOWS - 1))"

# --- The server's limits: never busy -------------------------------
mkfile "$T/lim" $((24 * 1024 * 1024))
shape_per_flow 32mbit
auto_upload lim.bin "$T/lim" --chunk-size 256K
echo "# --max-user-connections 3, per-flow cap: $(field streams.max)" \
    "data streams at most, $CONNS connections at once," \
    "$(field streams.busy) busy answers"
check_eq "limits: upload succeeds" 0 "$RC"
check_eq "limits: the server told room for 2 data connections" 2 \
    "$(field streams.server_cap)"
check "limits: at most 2 data streams" between 1 "$(field streams.max)" 2
check "limits: at most 3 connections at once" between 1 "$CONNS" 3
check_eq "limits: no busy answer" 0 "$(field streams.busy)"
check "limits: no busy in the client's log" \
    bash -c "! grep -qi busy '$T/up.err'"
check_eq "limits: stored file identical" "$(sha "$T/lim")" \
    "$(sha "$(stored_file "$(field session)" lim.bin)")"
stop_server

# --- Logins from one address: new streams are let in a few at a time --
start_server --no-tls --no-http --max-ip-logins 2
shape_per_flow 32mbit
auto_upload ip.bin "$T/lim" --chunk-size 256K --max-threads 16
echo "# --max-ip-logins 2, per-flow cap: $(field streams.max) data" \
    "streams at most, $(field streams.busy) busy answers"
check_eq "ip logins: upload succeeds" 0 "$RC"
check "ip logins: auto still grew past the 4 it starts with" \
    test "$(field streams.max)" -gt 4
check_eq "ip logins: no busy answer" 0 "$(field streams.busy)"
check "ip logins: no busy in the client's log" \
    bash -c "! grep -qi busy '$T/up.err'"
stop_server

start_server --no-tls --no-http

# --- Per-flow cap: more streams help --------------------------------
mkfile "$T/big" $((96 * 1024 * 1024))
shape_per_flow 32mbit
auto_upload flow.bin "$T/big" --chunk-size 256K --max-threads 16
flow_final=$(field streams.final) flow_max=$(field streams.max)
echo "# per-flow cap 4 MB/s, 96 MiB: $(field seconds) s, streams" \
    "$flow_final at the end, $flow_max at most, $CONNS connections"
check_eq "per-flow: upload succeeds" 0 "$RC"
check_eq "per-flow: mode auto" auto "$(field streams.mode)"
check "per-flow: auto went past the 4 it starts with" \
    test "$flow_max" -gt 4
check "per-flow: never past --max-threads 16" \
    between 1 "$flow_max" 16
check_eq "per-flow: stored file identical" "$(sha "$T/big")" \
    "$(sha "$(stored_file "$(field session)" flow.bin)")"
check_eq "per-flow: every byte sent once" "$(field bytes)" \
    "$(field bytes_sent)"

# --- Whole link capped: more streams do not help --------------------
mkfile "$T/mid" $((40 * 1024 * 1024))
shape_whole 64mbit
auto_upload whole.bin "$T/mid" --chunk-size 256K --max-threads 16
whole_final=$(field streams.final) whole_max=$(field streams.max)
echo "# whole link 8 MB/s, 40 MiB: $(field seconds) s, streams" \
    "$whole_final at the end, $whole_max at most"
check_eq "whole link: upload succeeds" 0 "$RC"
check "whole link: settles at 4 streams or fewer" \
    between 1 "$whole_final" 4
check "auto ends with more streams on the per-flow-capped link" \
    test "$flow_final" -gt "$whole_final"
check_eq "whole link: stored file identical" "$(sha "$T/mid")" \
    "$(sha "$(stored_file "$(field session)" whole.bin)")"
# Streams retired on the way (auto went back from 8) sent nothing twice.
check "whole link: auto retired streams on the way" \
    grep -q -- '-> .*(back' "$T/up.err"
check_eq "whole link: every byte sent once, streams retired or not" \
    "$(field bytes)" "$(field bytes_sent)"
check_eq "whole link: no chunk sent again" 0 "$(field retries)"

# --- --limit-rate: one bucket for all streams ------------------------
unshaped
# 32 MiB, 16 s: the login and start-up of an ASan build on a loaded
# machine count in "seconds", and must stay well within the 10 %.
mkfile "$T/slow" $((32 * 1024 * 1024))
limit=$((2 * 1024 * 1024))
auto_upload slow.bin "$T/slow" --limit-rate 2M --threads 8
rate=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print(int(r["bytes_sent"] / r["seconds"]))' "$T/up.json")
echo "# --limit-rate 2M, 8 streams, 32 MiB: $(field seconds) s," \
    "$rate bytes/s ($((rate * 100 / limit)) % of the limit)"
check_eq "limit-rate: upload succeeds" 0 "$RC"
check "limit-rate: within 10 % of 2 MiB/s" \
    between $((limit * 90 / 100)) "$rate" $((limit * 110 / 100))
check_eq "limit-rate: stored file identical" "$(sha "$T/slow")" \
    "$(sha "$(stored_file "$(field session)" slow.bin)")"
auto_upload slow2.bin "$T/slow" --limit-rate 2M
rate=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))
print(int(r["bytes_sent"] / r["seconds"]))' "$T/up.json")
echo "# --limit-rate 2M, auto ($(field streams.max) streams at most):" \
    "$rate bytes/s ($((rate * 100 / limit)) % of the limit)"
check "limit-rate with auto: within 10 % of 2 MiB/s" \
    between $((limit * 90 / 100)) "$rate" $((limit * 110 / 100))

# --- Options ----------------------------------------------------------
for bad in "--threads 0" "--threads many" "--max-threads 65" \
    "--limit-rate 0" "--limit-rate 10X"; do
	run "$PARAFLOW" upload --file "$T/slow" --port "$PORT" --no-tls $bad
	check_eq "usage error: $bad" 2 "$RC"
done
run "$PARAFLOW" upload --file "$T/slow" --name fixed.bin --port "$PORT" \
    --no-tls --threads 3 --json
printf '%s' "$OUT" >"$T/up.json"
check_eq "--threads 3: fixed mode" fixed "$(field streams.mode)"
check_eq "--threads 3: 3 streams" 3 "$(field streams.final)"

stop_server
done_testing
