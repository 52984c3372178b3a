#!/bin/bash
# SPDX-License-Identifier: MIT
# The connection budget under abuse (issue 11). Native port: 500
# connections that never log in, from four addresses and coming back when
# closed, must not lock a real user out; a connection stalled in its TLS
# handshake or in a pre-login frame is closed by --login-timeout, however
# it trickles; refusals are logged as a summary, not one line each.
# Gateway: one user's flood of event streams is refused with 429 past
# --http-max-user-events, and neither event streams nor trickling
# unauthenticated connections keep ordinary requests from being answered.
# The figures are printed; the checks are on behaviour, not on speed.
. "$(dirname "$0")/lib.sh"
. "$here/lib_http.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"
ABUSE=$here/abuse.py
# Attackers come from addresses of their own (all of 127/8 is loopback
# on Linux); the real user from 127.0.0.1.
FOUR=127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5

# abuse MODE PORT N ADDRS SECS [AUTH]: starts abuse.py in the background
# (ABUSE_PID, figures in $T/abuse.out) and waits until every connection
# was tried once.
abuse() {
	rm -f "$T/ready"
	PYTHONDONTWRITEBYTECODE=1 python3 "$ABUSE" "$1" "$2" "$3" "$4" "$5" \
	    "$T/ready" "${@:6}" >"$T/abuse.out" 2>"$T/abuse.err" &
	ABUSE_PID=$!
	PIDS+=("$ABUSE_PID")
	wait_file "$T/ready" 60
}

# abuse_end: stops abuse.py and prints its figures.
abuse_end() {
	# It may have ended by itself: once reaped, its PID is not ours.
	signal_ours TERM "$ABUSE_PID"
	wait "$ABUSE_PID" 2>/dev/null
	echo "# attackers: $(cat "$T/abuse.out")"
	sed 's/^/# /' "$T/abuse.err" | tail -n 5
}

secs_since() {
	awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

mkfile "$T/src" $((3 * 1024 * 1024))

# --- Native port: 500 idle connections, a real upload ------------------
start_server
abuse native "$PORT" 500 "$FOUR" 120
echo "# 500 idle connections tried; held at first: $(cat "$T/ready")"
t0=$(date +%s.%N)
rc=0
# Refused, the client tries again until --give-up: 30 s is long enough
# for a loaded machine, and shorter than the minute the old pre-login
# deadline let the idle connections keep every slot.
timeout 90 "$PARAFLOW" upload --port "$PORT" --quiet --file "$T/src" \
    --name flood.bin --give-up 30 >"$T/up.out" 2>"$T/up.err" || rc=$?
took=$(secs_since "$t0")
check_eq "500 idle connections: a real upload succeeds (--give-up 30)" 0 \
    "$rc"
echo "# 500 idle connections: a real upload took $took s"
sed 's/^/# /' "$T/up.err" | tail -n 3
abuse_end
held=$(sed -n 's/.*held_max=\([0-9]*\).*/\1/p' "$T/abuse.out")
check "500 idle connections from 4 addresses: at most 4 x --max-ip-logins \
(8) held (held ${held:-?})" test "${held:-999}" -le 32
lines=$(grep -c 'refused\|limit .* reached' "$T/server.log")
echo "# refusal lines in the log: $lines"
check "refusals are summed up: at most 20 log lines ($lines)" \
    test "$lines" -le 20
summary='refused [0-9]* connections in [0-9]* s (last from 127\.0\.0\.[2-5])'
summary+='.* [1-9][0-9]* over --max-ip-logins 8'
check "the summary counts the refusals over --max-ip-logins" \
    grep -q "$summary" "$T/server.log"
stop_server

# --- Native port: the slots kept for users who logged in ---------------
# A flood from 40 addresses (more than the per-address cap can stop) may
# take --max-login-connections (5) of --max-connections (20), no more; a
# user who logged in before it goes on working. Plaintext: pfwire.py's
# login has no channel binding; the budget is the same.
start_server --no-tls --max-connections 20 --max-login-connections 5
addrs=$(seq -s, -f '127.0.1.%g' 1 40)
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 - "$PORT" "$ABUSE" \
    "$addrs" "$T" >"$T/reserve.out" 2>"$T/reserve.err" <<'EOF'
import os
import subprocess
import sys
import time

import pfwire as w

port, abuse, addrs, tmp = sys.argv[1:5]
c = w.connect(port, timeout=10)
w.hello(c)
w.scram_login(c, "paraflow", "secret123")
ready = os.path.join(tmp, "reserve.ready")
flood = subprocess.Popen([sys.executable, abuse, "native", port, "60", addrs,
                          "60", ready], stdout=subprocess.PIPE, text=True)
while not os.path.exists(ready):
    time.sleep(0.1)
data = b"pf-data " + os.urandom(1000)
try:
    o = w.open_session(c, "reserve.bin", data, chunk_size=65536)
    print("open", "ok" if o.get("session") else "no-session", flush=True)
except (OSError, w.WireError) as e:
    print("open", repr(e).replace(" ", "_"), flush=True)
flood.terminate()
print(flood.communicate()[0].strip(), flush=True)
EOF
check_eq "flood from 40 addresses: the script ran" 0 $?
sed 's/^/# /' "$T/reserve.err" | tail -n 5
echo "# attackers: $(sed -n 2p "$T/reserve.out")"
check_eq "a user logged in before the flood still opens a session" ok \
    "$(awk '$1 == "open" { print $2 }' "$T/reserve.out")"
held=$(sed -n 's/.*held_max=\([0-9]*\).*/\1/p' "$T/reserve.out")
check "the flood held at most --max-login-connections 5 of 20 (${held:-?})" \
    test "${held:-999}" -le 5
stop_server

# --- Native port: stalled logins meet --login-timeout -------------------
# --idle-timeout 60 would let each stall on for a minute; --login-timeout
# 2 bounds the TLS handshake and the login together.
start_server --login-timeout 2
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 - "$PORT" \
    >"$T/stall.out" 2>"$T/stall.err" <<'EOF'
import socket
import sys
import time

import pfwire as w

port = int(sys.argv[1])

def closed_after(s, trickle=None, limit=20):
    """Seconds until the server closes s (None: still open at limit),
    sending trickle a byte every 0.5 s meanwhile."""
    t0 = time.monotonic()
    s.settimeout(0.5)
    while time.monotonic() - t0 < limit:
        if trickle:
            try:
                s.send(trickle[:1])
            except OSError:
                return time.monotonic() - t0
            trickle = trickle[1:]
        try:
            if s.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            pass
        except OSError:
            return time.monotonic() - t0
    return None

def report(what, secs):
    print("%s\t%s" % (what, "open" if secs is None else "%.1f" % secs),
          flush=True)

# A 4 KiB AUTH frame (the most a frame may carry before login): its
# header and 100 bytes, then nothing.
s = w.connect(port, timeout=10)
w.hello(s)
s.sendall(w.header(w.AUTH, 4096) + b"{" * 100)
report("frame", closed_after(s))

# The same, trickled a byte every 0.5 s: each read is quick, the whole
# login is not.
s = w.connect(port, timeout=10)
w.hello(s)
s.sendall(w.header(w.AUTH, 4096))
report("trickle", closed_after(s, trickle=b" " * 4096))

# A TLS handshake that stops after a record header, and one trickled.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(bytes([0x16, 3, 1, 2, 0]))
report("tls", closed_after(s))
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(bytes([0x16, 3, 1, 2, 0]))
report("tls-trickle", closed_after(s, trickle=b"\0" * 512))
EOF
check_eq "stalled logins: the script ran" 0 $?
sed 's/^/# /' "$T/stall.err" | tail -n 5
for what in frame trickle tls tls-trickle; do
	secs=$(awk -v w="$what" '$1 == w { print $2 }' "$T/stall.out")
	echo "# stalled login ($what): closed after ${secs:-?} s"
	check "a stalled login ($what) is closed by --login-timeout 2, not \
--idle-timeout 60" awk -v s="${secs:-open}" \
	    'BEGIN { exit !(s != "open" && s < 15) }'
done
check "the late logins are counted in one summary" \
    wait_for 30 grep -q 'connections that did not log in within 2 s' \
    "$T/server.log"
stop_server

# --- Gateway: one user's flood of event streams ------------------------
add_users alice bob
start_gw --users "$U"

# timed NAME CURL-ARGS...: one request (at most 20 s); its status in CODE,
# its time printed.
timed() {
	local name=$1 t0
	shift
	t0=$(date +%s.%N)
	CODE=$(curl -s -m 20 -o "$T/b" -w '%{http_code}' "$@") || true
	echo "# $name: HTTP $CODE after $(secs_since "$t0") s"
}

abuse events "$HTTP_PORT" 128 "$FOUR" 120 alice:alice-pw
timed "alice's next event stream" -u alice:alice-pw \
    "$HTTP_URL/api/v1/events"
check_eq "128 event streams of alice: the next one is refused with 429" \
    429 "$CODE"
check_eq "the refusal is a JSON error" too_many_requests \
    "$(json_get error.code <"$T/b")"
timed "alice's list of sessions" -u alice:alice-pw "$HTTP_URL/api/v1/sessions"
check_eq "alice's ordinary request is answered meanwhile" 200 "$CODE"
timed "bob's list of sessions" -u bob:bob-pw "$HTTP_URL/api/v1/sessions"
check_eq "bob's ordinary request is answered meanwhile" 200 "$CODE"
abuse_end
held=$(sed -n 's/.*held_max=\([0-9]*\).*/\1/p' "$T/abuse.out")
check "alice held at most --http-max-user-events (8) streams (${held:-?})" \
    test "${held:-999}" -le 8
refused=$(sed -n 's/.*status_429=\([0-9]*\).*/\1/p' "$T/abuse.out")
check "the rest were refused with 429 (${refused:-0})" \
    test "${refused:-0}" -ge 100

# --- Gateway: trickling unauthenticated connections --------------------
# 128 connections (the whole --http-max-connections) send a request a
# byte a second from four addresses: MHD's idle timeout never fires and
# the whole-request deadline only after 30 s.
abuse trickle "$HTTP_PORT" 128 "$FOUR" 120
sleep 2
timed "a request among 128 trickling connections" "$HTTP_URL/healthz"
check_eq "128 trickling connections: a normal request is answered" 200 \
    "$CODE"
timed "alice's list among them" -u alice:alice-pw "$HTTP_URL/api/v1/sessions"
check_eq "128 trickling connections: alice's request is answered" 200 \
    "$CODE"
abuse_end
stop_server

done_testing
