#!/bin/bash
# SPDX-License-Identifier: MIT
# The HTTP gateway while uploads run: the event stream (created, progress,
# completed, deleted and stats events for the user's own sessions only,
# completed ones even for uploads too short to be seen receiving,
# each checked against docs/openapi.yaml, and the ": heartbeat" comment),
# /metrics (promtool check metrics, and the counters moving with an
# upload and a failed login), the limits (the whole-request deadline cuts
# a client that trickles its headers, an idle connection is closed, but a
# slow download and the event stream are not cut; a client over
# --http-max-per-ip gets 503 busy), SIGTERM with event streams and a
# download open (a prompt, clean stop that ends them), and 200 concurrent
# status requests while a 512 MiB upload runs: all answered, the file
# intact.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
need_api_tools

add_users alice bob
ALICE=(-u alice:alice-pw)
MIB=$((1024 * 1024))

# metric NAME FILE: the value of the series NAME (with its labels, if
# any, as written) in the metrics text FILE; "" if absent.
metric() {
	awk -v n="$1" '$1 == n { print $2; exit }' "$2"
}

# grew NAME BY: the series NAME grew by at least BY from $T/m0 to $T/m1.
# shellcheck disable=SC2317 # called through check
grew() {
	"$PY" -c 'import sys
a, b, by = (float(x) if x else float("nan") for x in sys.argv[1:])
sys.exit(not b - a >= by)' "$(metric "$1" "$T/m0")" "$(metric "$1" "$T/m1")" \
	    "$2"
}

# promtool_ok FILE: promtool check metrics accepts FILE and says nothing.
# shellcheck disable=SC2317 # called through check
promtool_ok() {
	local out rc=0
	out=$(promtool check metrics <"$1" 2>&1) || rc=$?
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/#   /'
	[ "$rc" -eq 0 ] && [ -z "$out" ]
}

# oa_lines SCHEMA FILE: every line of FILE is a SCHEMA; the first
# mismatches become TAP comments.
# shellcheck disable=SC2317 # called through check
oa_lines() {
	if "$PY" "$here/oacheck.py" --lines "$SPEC" "$1" "$2" \
	    2>"$T/oa.err"; then
		return 0
	fi
	echo "#   $(wc -l <"$T/oa.err") mismatches; the first ones:"
	head -n 5 "$T/oa.err" | sed 's/^/#   /'
	return 1
}

# sse_parse FILE PREFIX: splits an event stream into PREFIX.events (one
# "type<TAB>session id<TAB>state<TAB>event id" line per event, "-" where
# absent), PREFIX.sessions (the data of session events, one JSON a line),
# PREFIX.stats (the data of stats events) and PREFIX.comments.
sse_parse() {
	"$PY" - "$1" "$2" <<'PY'
import json, sys
src, pre = sys.argv[1], sys.argv[2]
text = open(src, "rb").read().decode("utf-8", "replace")
text = text.replace("\r\n", "\n").replace("\r", "\n")
ev = open(pre + ".events", "w")
ses = open(pre + ".sessions", "w")
sts = open(pre + ".stats", "w")
com = open(pre + ".comments", "w")
for block in text.split("\n\n"):
    etype, eid, data = "message", "-", []
    for line in block.split("\n"):
        if line.startswith(":"):
            com.write(line + "\n")
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            etype = value
        elif field == "id":
            eid = value
        elif field == "data":
            data.append(value)
    if not data:
        continue
    payload = "\n".join(data)
    sid, state = "-", "-"
    try:
        obj = json.loads(payload)
        if isinstance(obj, dict):
            sid = obj.get("id", "-")
            state = obj.get("state", "-")
    except ValueError:
        pass
    (sts if etype == "stats" else ses).write(payload.replace("\n", " ")
                                             + "\n")
    ev.write("%s\t%s\t%s\t%s\n" % (etype, sid, state, eid))
PY
}

# connected FILE...: each event stream FILE got the ": connected" comment
# the gateway sends once it has subscribed the client.
# shellcheck disable=SC2317 # called through wait_for
connected() {
	local f
	for f in "$@"; do
		grep -qx ': connected' "$f" 2>/dev/null || return 1
	done
}

# --- The event stream and the metrics around one upload -------------------

start_gw --users "$U"
echo "# gateway at $HTTP_URL"

req /metrics
cp "$T/b" "$T/m0"
check "promtool check metrics: no complaint at start" promtool_ok "$T/m0"
for s in paraflow_received_bytes_total paraflow_chunks_acked_total \
    paraflow_chunks_nacked_total paraflow_auth_failures_total \
    paraflow_connections paraflow_uptime_seconds \
    paraflow_chunk_receive_seconds_count paraflow_chunk_receive_seconds_sum \
    'paraflow_chunk_receive_seconds_bucket{le="+Inf"}'; do
	check "/metrics has $s" [ -n "$(metric "$s" "$T/m0")" ]
done
for t in "paraflow_received_bytes_total counter" \
    "paraflow_chunks_acked_total counter" \
    "paraflow_chunks_nacked_total counter" \
    "paraflow_auth_failures_total counter" \
    "paraflow_chunk_receive_seconds histogram" \
    "paraflow_sessions gauge" "paraflow_connections gauge" \
    "paraflow_uptime_seconds gauge"; do
	check "/metrics: # TYPE $t" grep -qx "# TYPE $t" "$T/m0"
done
# The engine has no authenticating sessions (logins in progress are
# paraflow_connections' business), so that state is not required here.
for st in receiving assembling complete failed cancelled expired; do
	check "/metrics has paraflow_sessions{state=\"$st\"}" \
	    [ -n "$(metric "paraflow_sessions{state=\"$st\"}" "$T/m0")" ]
done

# 128 MiB in 64 KiB chunks: a few seconds of progress.
mkfile "$T/src" $((128 * MIB))
curl -sS -N --max-time 90 "${ALICE[@]}" -D "$T/ev.h" \
    "$HTTP_URL/api/v1/events" >"$T/ev.alice" 2>/dev/null &
ev_alice=$!
curl -sS -N --max-time 90 -u bob:bob-pw \
    "$HTTP_URL/api/v1/events" >"$T/ev.bob" 2>/dev/null &
ev_bob=$!
PIDS+=("$ev_alice" "$ev_bob")
# Subscribed before the upload starts (a TLS login under ASan on a loaded
# machine can take seconds): else its created event is missed. Each
# stream's stats are counted from its own connection.
SECONDS=0
check "alice's event stream connected" wait_for 60 connected "$T/ev.alice"
alice_at=$SECONDS
check "bob's event stream connected" wait_for 60 connected "$T/ev.bob"
bob_at=$SECONDS
up0=$SECONDS
sid=$(json_field "$(upload_as alice --file "$T/src" --name sse.bin \
    --chunk-size 64K --threads 2 --json)" session)
up_s=$((SECONDS - up0 + 1))
check "the upload completed ($sid, ${up_s}s)" grep -Eq "$UUID_RE" <<<"$sid"
upload_as alice --file "$T/src" --secret wrong-pw >/dev/null 2>&1
# m1_moved: /metrics, in $T/m1, shows the upload and the failed login
# (the session gauge is sampled): polled rather than a fixed sleep.
# shellcheck disable=SC2317 # called through wait_for
m1_moved() {
	req /metrics
	cp "$T/b" "$T/m1"
	grew paraflow_chunks_acked_total 2048 &&
	    grew paraflow_auth_failures_total 1 &&
	    grew paraflow_uptime_seconds 1 &&
	    grew 'paraflow_sessions{state="complete"}' 1
}
wait_for 60 m1_moved
check "promtool check metrics: no complaint after an upload" \
    promtool_ok "$T/m1"
check "paraflow_received_bytes_total grew by 128 MiB" \
    grew paraflow_received_bytes_total $((128 * MIB))
check "paraflow_chunks_acked_total grew by 2048" \
    grew paraflow_chunks_acked_total 2048
check "paraflow_chunk_receive_seconds_count grew by 2048" \
    grew paraflow_chunk_receive_seconds_count 2048
check "paraflow_chunk_receive_seconds_sum grew" \
    grew paraflow_chunk_receive_seconds_sum 0.000001
check "paraflow_auth_failures_total grew by the failed login" \
    grew paraflow_auth_failures_total 1
check "paraflow_uptime_seconds grew" grew paraflow_uptime_seconds 1
check "paraflow_sessions{state=\"complete\"} grew" \
    grew 'paraflow_sessions{state="complete"}' 1
req "${ALICE[@]}" /api/v1/stats
check "stats: auth_failures counts the failed login" \
    [ "$(jget auth_failures)" -ge 1 ]

# streams_done: alice's stream showed the upload completed, and both
# streams carried a heartbeat (every 10 s: at most 10 s more).
# shellcheck disable=SC2317 # called through wait_for
streams_done() {
	grep -q "$sid" "$T/ev.alice" &&
	    grep -A3 -x 'event: completed' "$T/ev.alice" | grep -q "$sid" &&
	    grep -qx ': heartbeat' "$T/ev.alice" &&
	    grep -qx ': heartbeat' "$T/ev.bob"
}
wait_for 60 streams_done
ev_s=$((SECONDS - alice_at)) bob_s=$((SECONDS - bob_at))
kill "$ev_alice" "$ev_bob" 2>/dev/null
wait "$ev_alice" "$ev_bob"
check "event stream: Content-Type text/event-stream" \
    grep -qi '^Content-Type: *text/event-stream' "$T/ev.h"
sse_parse "$T/ev.alice" "$T/a"
sse_parse "$T/ev.bob" "$T/bb"
echo "# alice's stream: $(cut -f1 "$T/a.events" | sort | uniq -c |
    tr -s ' \n' ' ')"
mine() {
	awk -F'\t' -v s="$sid" -v t="$1" '$1 == t && $2 == s' "$T/a.events"
}
check "event stream: a created event for the upload" [ -n "$(mine created)" ]
nprog=$(mine progress | wc -l)
check "event stream: progress events for the upload ($nprog)" \
    [ "$nprog" -ge 1 ]
check "event stream: at most 4 progress events a second ($nprog in ${up_s}s)" \
    [ "$nprog" -le $((4 * up_s + 1)) ]
check_eq "event stream: one completed event, state complete" \
    "completed complete" "$(mine completed | cut -f1,3 | tr '\t' ' ')"
check_eq "event stream: created, then progress, then completed" \
    "created progress completed" "$(awk -F'\t' -v s="$sid" \
    '$2 == s { print $1 }' "$T/a.events" | uniq | tr '\n' ' ' |
    sed 's/ $//')"
check "event stream: every session event is a Session" \
    oa_lines Session "$T/a.sessions"
nstats=$(grep -c '^stats' "$T/a.events")
check "event stream: stats about once a second ($nstats in ${ev_s} s)" \
    between $((ev_s * 6 / 10)) "$nstats" $((ev_s * 13 / 10 + 2))
check "event stream: every stats event is a Stats" \
    oa_lines Stats "$T/a.stats"
check "event stream: a ': heartbeat' comment within ${ev_s} s" \
    grep -qx ': heartbeat' "$T/a.comments"
check "event stream: event ids increase" "$PY" -c '
import sys
ids = [int(l.split("\t")[3]) for l in open(sys.argv[1])
       if l.rstrip("\n").split("\t")[3] != "-"]
sys.exit(not ids or ids != sorted(set(ids)))' "$T/a.events"
check "bob's stream: nothing of alice's session" \
    [ -z "$(grep -F "$sid" "$T/ev.bob")" ]
check "bob's stream: stats events all the same" \
    [ "$(grep -c '^stats' "$T/bb.events")" -ge $((bob_s * 6 / 10)) ]
check "bob's stream: a heartbeat all the same" \
    grep -qx ': heartbeat' "$T/bb.comments"

# Uploads too short to be seen receiving (they begin and end between two
# samples) get their completed event all the same, after the created one
# (and progress events, if a loaded machine made one last two samples).
curl -sS -N --max-time 300 "${ALICE[@]}" "$HTTP_URL/api/v1/events" \
    >"$T/ev.fast" 2>/dev/null &
ev_fast=$!
PIDS+=("$ev_fast")
wait_for 60 connected "$T/ev.fast"
mkfile "$T/tiny" 1000
fast=()
for i in 1 2 3 4 5; do
	fast+=("$(json_field "$(upload_as alice --file "$T/tiny" \
	    --name "tiny$i.bin" --json)" session)")
done
# all_completed FILE ID...: FILE has a completed event for each ID (the
# monitor samples 4 times a second; a loaded machine may lag).
# shellcheck disable=SC2317 # called through wait_for
all_completed() {
	local f=$1 id
	shift
	for id in "$@"; do
		grep -A3 -x 'event: completed' "$f" | grep -qF "$id" ||
		    return 1
	done
}
wait_for 60 all_completed "$T/ev.fast" "${fast[@]}"
signal_ours TERM "$ev_fast"
wait "$ev_fast"
sse_parse "$T/ev.fast" "$T/f"
got=0
for f in "${fast[@]}"; do
	awk -F'\t' -v s="$f" '$2 == s { print $1 }' "$T/f.events" |
	    tr '\n' ' ' | grep -Eqx 'created (progress )*completed ' &&
	    got=$((got + 1))
done
check_eq "5 short uploads: each a created then a completed event" 5 "$got"

# A DELETE shows as a deleted event.
curl -sS -N --max-time 300 "${ALICE[@]}" "$HTTP_URL/api/v1/events" \
    >"$T/ev.del" 2>/dev/null &
ev_del=$!
PIDS+=("$ev_del")
wait_for 60 connected "$T/ev.del"
req "${ALICE[@]}" -X DELETE "/api/v1/sessions/$sid"
check_eq "DELETE the upload" 200 "$CODE"
wait_for 60 grep -qx 'event: deleted' "$T/ev.del"
signal_ours TERM "$ev_del"
wait "$ev_del"
sse_parse "$T/ev.del" "$T/d"
check "event stream: a deleted event for the session" \
    grep -q "^deleted	$sid	" "$T/d.events"
rm -f "$T/src"
stop_server

# --- Limits: deadline, idle timeout, what the deadline spares --------------

start_gw --users "$U" --http-timeout 2
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" "$PY" - "${HTTP_URL##*:}" >"$T/slow.out" <<'PY' &
import os, socket, ssl, sys, time
from gwconn import connect
port = int(sys.argv[1])

def trickle():
    """Header bytes one a second: never idle 2 s, but never done."""
    # From before the handshake: the gateway's deadline starts at accept.
    t0 = time.monotonic()
    s = connect(port)
    s.settimeout(0.2)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    got = b""
    while time.monotonic() - t0 < 20:
        try:
            s.sendall(b"a")
        except OSError:
            break
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        except OSError:
            break
        time.sleep(0.8)
    status = got.split(b"\r\n", 1)[0].decode("latin-1") or "-"
    print("trickle %.1f %s" % (time.monotonic() - t0, status.replace(" ", "_")))

def idle():
    s = connect(port)
    s.settimeout(20)
    t0 = time.monotonic()
    try:
        s.recv(4096)
    except OSError:
        pass
    print("idle %.1f" % (time.monotonic() - t0))

trickle()
idle()
PY
slow_pid=$!
PIDS+=("$slow_pid")
# Meanwhile: the event stream and a slow download outlive the deadline.
# 25 s: a heartbeat 10 s after a connection that may take seconds.
curl -sS -N --max-time 25 "${ALICE[@]}" "$HTTP_URL/api/v1/events" \
    >"$T/ev.long" 2>/dev/null &
ev_long=$!
PIDS+=("$ev_long")
mkfile "$T/ten" $((10 * MIB))
tsid=$(json_field "$(upload_as alice --file "$T/ten" --name ten.bin \
    --json)" session)
SECONDS=0
rc=0
curl -sS --max-time 30 --limit-rate 1M "${ALICE[@]}" -o "$T/ten.got" \
    "$HTTP_URL/api/v1/sessions/$tsid/file" || rc=$?
dl_s=$SECONDS
check_eq "a download slower than the deadline (${dl_s}s, 6 s): curl exit 0" \
    0 "$rc"
check "... and whole" cmp -s "$T/ten" "$T/ten.got"
rc=0
wait "$ev_long" || rc=$?
check_eq "the event stream outlives the deadline: cut by curl's 25 s" \
    28 "$rc"
check "... with a heartbeat" grep -qx ': heartbeat' "$T/ev.long"
wait "$slow_pid"
read -r _ trickle_s trickle_status < <(grep '^trickle' "$T/slow.out")
read -r _ idle_s < <(grep '^idle' "$T/slow.out")
echo "# trickling client cut after ${trickle_s:-?} s ($trickle_status);" \
    "idle one after ${idle_s:-?} s"
check "--http-timeout 2: headers trickled a byte a second are cut after 6 s (${trickle_s:-none})" \
    "$PY" -c '
import sys; sys.exit(not 5.0 <= float(sys.argv[1]) <= 10.0)' "${trickle_s:-99}"
check "... without a 200 answer ($trickle_status)" \
    [ "${trickle_status#HTTP/1.1_200}" = "$trickle_status" ]
check "--http-timeout 2: an idle connection is closed after about 2 s (${idle_s:-none})" \
    "$PY" -c '
import sys; sys.exit(not 1.5 <= float(sys.argv[1]) <= 5.0)' "${idle_s:-99}"
req /healthz
check_eq "the server still answers" 200 "$CODE"
stop_server

# --- Over --http-max-per-ip: 503 busy -----------------------------------------

start_gw --users "$U" --http-max-per-ip 2
# Two connections held until the third request was answered: a fixed
# hold of 3 s could end before a slow start had even connected them.
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" "$PY" - "${HTTP_URL##*:}" \
    "$T/held" "$T/release" <<'PY' &
import os, sys, time
from gwconn import connect
socks = [connect(int(sys.argv[1])) for _ in range(2)]
with open(sys.argv[2], "w") as f:
    f.write("2\n")
t0 = time.monotonic()
while not os.path.exists(sys.argv[3]) and time.monotonic() - t0 < 300:
    time.sleep(0.05)
PY
hold_pid=$!
PIDS+=("$hold_pid")
wait_file "$T/held" 60
req /healthz
expect_error "a third connection over --http-max-per-ip 2" 503 busy
touch "$T/release"
wait "$hold_pid"
# healthz_ok: /healthz answers 200 (the gateway sees the close a moment
# after the client made it).
# shellcheck disable=SC2317 # called through wait_for
healthz_ok() {
	req /healthz
	[ "$CODE" = 200 ]
}
wait_for 30 healthz_ok
check_eq "once they are closed: 200" 200 "$CODE"
stop_server

# --- SIGTERM with event streams and a download in flight --------------------
#
# The streams are suspended between events; libmicrohttpd must not be
# stopped with a suspended connection (it aborts), so the gateway ends
# them first. The server stops at once and cleanly, and the streams end
# rather than hang until curl gives up.

start_gw --users "$U"
mkfile "$T/big" $((64 * MIB))
bsid=$(json_field "$(upload_as alice --file "$T/big" --name big.bin \
    --json)" session)
ev_pids=()
# Limits far beyond the time the streams take to connect on a loaded
# machine: they must end with the server, not with curl.
for i in 1 2 3 4 5 6 7 8; do
	curl -sS -N --max-time 300 "${ALICE[@]}" "$HTTP_URL/api/v1/events" \
	    >"$T/ev.term.$i" 2>/dev/null &
	ev_pids+=("$!")
	PIDS+=("$!")
done
curl -sS --max-time 300 --limit-rate 128K "${ALICE[@]}" -o "$T/big.part" \
    "$HTTP_URL/api/v1/sessions/$bsid/file" 2>/dev/null &
dl_pid=$!
PIDS+=("$dl_pid")
# shellcheck disable=SC2317 # called through wait_for
streams_connected() {
	[ "$(grep -lx ': connected' "$T"/ev.term.* 2>/dev/null | wc -l)" \
	    -eq 8 ]
}
check "8 event streams connected" wait_for 60 streams_connected
# Between two stats events: the streams wait suspended.
sleep 1.5
log_at=$(($(wc -l <"$T/server.log") + 1))
SECONDS=0
kill -TERM "$SERVER_PID"
rc=0
wait "$SERVER_PID" || rc=$?
stop_s=$SECONDS
check_eq "SIGTERM with 8 event streams and a download: exit 0" 0 "$rc"
# Far below the clients' 300 s: an ASan build's exit (its leak check)
# on a loaded machine takes seconds of its own.
check "... within 20 s (${stop_s}s)" [ "$stop_s" -le 20 ]
check "... and libmicrohttpd did not complain of suspended connections" \
    [ "$(tail -n +"$log_at" "$T/server.log" | grep -ci suspended)" = 0 ]
ended=0
for p in "${ev_pids[@]}"; do
	rc=0
	wait "$p" || rc=$?
	[ "$rc" != 28 ] && ended=$((ended + 1))
done
check_eq "the 8 event streams ended with the server, not by curl's timeout" \
    8 "$ended"
rc=0
wait "$dl_pid" || rc=$?
check "the download was cut, not left hanging (curl exit $rc)" \
    [ "$rc" != 28 ]

# --- Load: 200 status requests at once while 512 MiB arrive ---------------
#
# Limits raised above the 200 connections: the defaults (32 per address)
# would turn the load itself away, which is not what this measures.

start_gw --users "$U" --http-max-connections 512 --http-max-per-ip 512
mkfile "$T/src" $((512 * MIB))
# --limit-rate 8M: 64 s at least, more than the requests may take (60 s
# each); unlimited, a fast machine's upload could end before a loaded
# one had answered the 200 requests.
upload_receiving alice "$T/load" --file "$T/src" --name load.bin \
    --chunk-size 64K --threads 4 --limit-rate 8M
up_pid=$UPLOAD_PID
lsid=$RECEIVING
if [ -n "$lsid" ]; then
	for i in $(seq 200); do
		case $((i % 4)) in
		0) echo "/api/v1/stats" ;;
		1) echo "/api/v1/sessions" ;;
		2) echo "/api/v1/sessions/$lsid/chunks" ;;
		*) echo "/api/v1/sessions/$lsid" ;;
		esac
	done >"$T/urls"
	SECONDS=0
	xargs -P 200 -I{} curl -s -o /dev/null --max-time 60 \
	    -w '%{http_code}\n' "${ALICE[@]}" "$HTTP_URL{}" <"$T/urls" \
	    >"$T/codes" 2>/dev/null
	load_s=$SECONDS
	running=no
	kill -0 "$up_pid" 2>/dev/null && running=yes
	echo "# 200 requests in ${load_s}s; upload still running after: $running"
	check_eq "200 concurrent status requests: 200 answers of 200" \
	    "200 200" "$(grep -c '^200$' "$T/codes") $(wc -l <"$T/codes" |
	    tr -d ' ')"
	check_eq "the load overlapped the upload" yes "$running"
else
	not_ok "the 512 MiB upload was never seen receiving"
fi
rc=0
wait "$up_pid" || rc=$?
check_eq "the upload under load: exit 0" 0 "$rc"
lsid=$(json_field "$(cat "$T/load.out")" session)
check "the upload under load arrived intact" \
    cmp -s "$T/src" "$(stored_file "$lsid" load.bin)"
check_eq "its receipt is paraflow digest's" \
    "$("$PARAFLOW" digest --chunk-size 64K "$T/src" | cut -d' ' -f1)" \
    "$(json_field "$(cat "$T/load.out")" digest)"
rm -f "$T/src"
stop_server

done_testing
