#!/bin/bash
# SPDX-License-Identifier: MIT
# Faults on the way and at the door: connections cut by tests/tools/pfproxy
# (data connections mid-chunk, the control connection mid-COMMIT), cuts
# together with damaged bytes, a peer that trickles a frame, idle
# connections, the session and connection limits, and abandoned sessions
# removed after --staging-ttl. Every upload must end identical or fail
# with a clear error, never leave a wrong file, and the server must go on
# serving.
. "$(dirname "$0")/lib.sh"


command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

MIB=$((1024 * 1024))

export PARAFLOW_STATE_DIR=$T/state
mkdir -p "$PARAFLOW_STATE_DIR"

# new_server [ARGS...]: a fresh paraflowd on a storage of its own, so no
# session of an earlier case is recovered into it.
new_server() {
	STORAGE=$T/storage.$((++nservers))
	start_server -v --no-tls "$@"
}
nservers=0

# SOURCES: "name sha256" of every file uploaded, to check storage against.
: >"$T/sources"

# check_all_stored: every file in every storage is one of the sources
# (the dot directories, .staging, .tls and .auth, hold no uploads).
check_all_stored() {
	local f n bad=0 name
	n=0
	while IFS= read -r f; do
		n=$((n + 1))
		name=$(basename "$f")
		if ! grep -qx "$name $(sha "$f")" "$T/sources"; then
			echo "# wrong file: $f"
			bad=$((bad + 1))
		fi
	done < <(find "$T"/storage.* -mindepth 2 -maxdepth 2 -type f \
	    ! -name '.*' ! -path "$T/storage.*/.*")
	corrupted=$((corrupted + bad))
	check "all $n stored files are identical to their source" [ "$bad" = 0 ]
}

# ---------------------------------------------------------------------
# (a) Data connections cut mid-chunk. Connection 1 is the control
# connection (under 2 KB, so never cut at these offsets), 2 to 5 the first
# four data connections; the connections made again pass.
new_server
mkfile "$T/src48" $((48 * MIB))
echo "cut.bin $(sha "$T/src48")" >>"$T/sources"
for n in 3000 1000000 4200000 6000000; do
	start_proxy --cut-at "$n" --cut-conns 5
	pupload --file "$T/src48" --name cut.bin --threads 4
	stop_proxy
	cuts=$(grep -c '^cut ' "$T/proxy.log")
	faults=$((faults + cuts))
	check_eq "cut at $n: exit 0" 0 "$RC"
	check "cut at $n: stored file identical" verify_stored "$T/src48" \
	    "$(json_field "$OUT" session)" cut.bin
	check "cut at $n: proxy cut connections (got $cuts)" [ "$cuts" -ge 1 ]
	rec=$(json_field "$OUT" reconnects)
	check "cut at $n: JSON reconnects >= 1 (got ${rec:-none})" \
	    [ "${rec:-0}" -ge 1 ]
done

# The control connection cut in the middle of COMMIT: a calibration run
# records it, the frame offsets give where COMMIT starts, and the next
# upload of the same file is cut 20 bytes into it. The client must log in
# again, find every chunk held and commit.
mkfile "$T/src8" $((8 * MIB))
echo "commit.bin $(sha "$T/src8")" >>"$T/sources"
rm -f "$T/record"
start_proxy --record "$T/record"
pupload --file "$T/src8" --name commit.bin --threads 2
stop_proxy
check "calibration: exit 0" [ "$RC" = 0 ]
commit_off=$(python3 - "$T/record" <<'EOF'
import struct
import sys

data = open(sys.argv[1], "rb").read()
off = 0
while off + 16 <= len(data):
    ftype = data[off + 5]
    length = struct.unpack(">I", data[off + 8:off + 12])[0]
    if ftype == 13:  # COMMIT
        print(off)
        break
    off += 16 + length
EOF
)
if [ -n "$commit_off" ]; then
	start_proxy --cut-at $((commit_off + 20)) --cut-conns 1
	pupload --file "$T/src8" --name commit.bin --threads 2
	stop_proxy
	cuts=$(grep -c '^cut ' "$T/proxy.log")
	faults=$((faults + cuts))
	check_eq "control cut mid-COMMIT (offset $commit_off): proxy cut it" \
	    1 "$cuts"
	check_eq "control cut mid-COMMIT: exit 0" 0 "$RC"
	check "control cut mid-COMMIT: stored file identical" \
	    verify_stored "$T/src8" "$(json_field "$OUT" session)" commit.bin
	check_eq "control cut mid-COMMIT: stored once per run (2 runs)" 2 \
	    "$(find "$STORAGE" -name commit.bin | wc -l)"
else
	not_ok "control cut mid-COMMIT: no COMMIT frame in the recording"
fi
check "staging empty after the cuts" staging_empty

# ---------------------------------------------------------------------
# (b) Damaged bytes and cuts together. A damaged chunk is NACKed and sent
# again; a damaged frame header or chunk head makes the server refuse the
# connection (bad_frame). Either the upload completes identical, or it
# fails with a clear error: never a wrong file.
mkfile "$T/src32" $((32 * MIB))
echo "mixed.bin $(sha "$T/src32")" >>"$T/sources"
for combo in 5000000:3000000 3000000:7000000 7777777:2500000 \
    2000003:5500000; do
	every=${combo%%:*}
	n=${combo##*:}
	start_proxy --corrupt-every "$every" --cut-at "$n" --cut-conns 3
	pupload --file "$T/src32" --name mixed.bin --threads 2 \
	    --chunk-size 1M --retries 30
	stop_proxy
	hits=$(grep -c '^corrupt ' "$T/proxy.log")
	cuts=$(grep -c '^cut ' "$T/proxy.log")
	faults=$((faults + hits + cuts))
	sid=$(json_field "$OUT" session)
	echo "# every $every, cut at $n: $hits damaged bytes, $cuts cuts," \
	    "exit $RC, retries $(json_field "$OUT" retries)," \
	    "reconnects $(json_field "$OUT" reconnects)"
	if [ "$RC" = 0 ]; then
		check "every $every, cut at $n: completed identical" \
		    verify_stored "$T/src32" "$sid" mixed.bin
	else
		code=$(json_field "$OUT" code)
		check "every $every, cut at $n: failed with a clear error" \
		    [ -n "$code" ]
		check "every $every, cut at $n: nothing stored for it" \
		    [ ! -e "$STORAGE/$sid" ]
	fi
done
check_all_stored
stop_server

# ---------------------------------------------------------------------
# (c) A frame trickled at 1 byte/s: with --min-rate 64K a 64 KiB chunk
# frame must arrive within --idle-timeout plus about 1 s, so the server
# closes the connection although bytes keep coming. (d) Silent
# connections are closed after --idle-timeout: before login, logged in,
# and joined to a session.
new_server --idle-timeout 2 --min-rate 64K
pywire "$PORT" >"$T/slow.out" 2>"$T/slow.err" <<'EOF'
import select
import socket
import sys
import time

import pfwire as w

port = int(sys.argv[1])
CS = 65536
data = b"pf-data " + bytes(range(256)) * 512

def report(good, desc, detail=""):
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)

def closed_now(s):
    """True if the server has closed s (EOF, reset or an ERROR frame)."""
    r, _, _ = select.select([s], [], [], 0)
    if not r:
        return False
    try:
        return True if s.recv(65536) == b"" else True
    except OSError:
        return True

def wait_closed(s, limit):
    """Seconds until the server closes s, or None after limit."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        r, _, _ = select.select([s], [], [], 0.1)
        if r:
            try:
                if s.recv(65536) == b"":
                    return time.monotonic() - t0
            except OSError:
                return time.monotonic() - t0
    return None

c = w.connect(port, timeout=30)
w.hello(c)
key = w.scram_login(c, "paraflow", "secret123")
o = w.open_session(c, "slow.bin", data, chunk_size=CS)
d = w.connect(port, timeout=30)
w.join(d, key, o["session"])
payload = w.chunk_payload(0, 0, data[:CS])
d.sendall(w.header(w.CHUNK, len(payload)))
t0 = time.monotonic()
sent = 0
shut = None
while time.monotonic() - t0 < 15:
    try:
        d.sendall(payload[sent:sent + 1])
        sent += 1
    except OSError:
        shut = time.monotonic() - t0
        break
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if closed_now(d):
            shut = time.monotonic() - t0
            break
        time.sleep(0.05)
    if shut is not None:
        break
print("trickle\t%s\t%d bytes" % ("%.1f s" % shut if shut else "open",
                                  sent))
report(shut is not None and shut < 10,
       "trickled chunk frame: connection closed in < 10 s although bytes "
       "kept coming", "after %s s, %d bytes" % (shut, sent))
c.close()

# (d) silent connections
s = w.connect(port, timeout=30)
w.hello(s)
t = wait_closed(s, 10)
report(t is not None and 1.5 <= t < 8,
       "silent connection before login closed after ~2 s", "after %s" % t)
# Under 30 s: far from --idle-timeout's 60 s default, with room for a
# loaded machine (before login, the 10 s login timeout bounds it at 8).
s = w.connect(port, timeout=30)
w.hello(s)
w.scram_login(s, "paraflow", "secret123")
t = wait_closed(s, 30)
report(t is not None and 1.5 <= t < 30,
       "silent logged-in connection closed after ~2 s", "after %s" % t)
c = w.connect(port, timeout=30)
w.hello(c)
key = w.scram_login(c, "paraflow", "secret123")
o = w.open_session(c, "idle.bin", data, chunk_size=CS)
d = w.connect(port, timeout=30)
w.join(d, key, o["session"])
t = wait_closed(d, 30)
report(t is not None and 1.5 <= t < 30,
       "silent data connection closed after ~2 s", "after %s" % t)
c.close()
EOF
check_eq "trickle and idle script ran" 0 $?
tap_from "$T/slow.out"
sed 's/^/# /' "$T/slow.err"
faults=$((faults + 4))
check "server logs the idle closes" grep -q 'idle for 2000 ms, closing' \
    "$T/server.log"
mkfile "$T/src3" $((3 * MIB))
echo "after-slow.bin $(sha "$T/src3")" >>"$T/sources"
out=$(upload --file "$T/src3" --name after-slow.bin --json)
check "server still serves an upload after the slow peers" \
    verify_stored "$T/src3" "$(json_field "$out" session)" after-slow.bin
stop_server

# ---------------------------------------------------------------------
# (e) Limits. Abandoned sessions count toward --max-sessions until they
# expire, so this server keeps them only 4 s.
new_server --max-sessions 2 --staging-ttl 4
pywire "$PORT" >"$T/sess.out" 2>"$T/sess.err" <<'EOF'
import base64
import sys

import pfwire as w

port = int(sys.argv[1])
CS = 65536
data = b"pf-data " + bytes(range(256)) * 300

def report(good, desc, detail=""):
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)

def login():
    s = w.connect(port)
    w.hello(s)
    w.scram_login(s, "paraflow", "secret123")
    return s

def try_open(s, name, resume=None):
    req = {"name": name, "size": len(data), "chunk_size": CS,
           "head": base64.b64encode(data[:512]).decode("ascii")}
    if resume:
        req["resume"] = resume
    w.send_json(s, w.OPEN, req)
    try:
        return w.expect(s, w.OPENED), "OPENED"
    except w.WireError as e:
        return None, e.name

a, b = login(), login()
oa, ra = try_open(a, "a.bin")
ob, rb = try_open(b, "b.bin")
report(ra == rb == "OPENED", "max-sessions 2: two sessions open",
       "%s %s" % (ra, rb))
c = login()
_, rc = try_open(c, "c.bin")
report(rc == "busy", "max-sessions 2: a third OPEN gets ERROR busy",
       "got " + rc)
a.close()
b.close()
c.close()
d = login()
_, rd = try_open(d, "d.bin")
report(rd == "busy", "max-sessions 2: abandoned sessions still count "
       "(busy until they expire)", "got " + rd)
e = login()
oe, re_ = try_open(e, "a.bin", resume=oa["session"] if oa else None)
report(re_ == "OPENED" and oe.get("resumed") is True,
       "max-sessions 2: an abandoned session can still be resumed",
       "got %s %r" % (re_, oe))
e.close()
EOF
check_eq "max-sessions script ran" 0 $?
tap_from "$T/sess.out"
sed 's/^/# /' "$T/sess.err"
faults=$((faults + 2))
# Once the abandoned sessions expire (4 s, checked every second), a new
# upload gets through. Polled for 60 s: a loaded machine may be late.
mkfile "$T/src1" $((1 * MIB))
echo "after-limit.bin $(sha "$T/src1")" >>"$T/sources"
for ((i = 0; i < 120; i++)); do
	staging_empty && break
	sleep 0.5
done
check "max-sessions 2: abandoned sessions expired" staging_empty
out=$(upload --file "$T/src1" --name after-limit.bin --json)
echo "# $out"
check "max-sessions 2: server serves an upload afterwards" \
    verify_stored "$T/src1" "$(json_field "$out" session)" after-limit.bin
check "max-sessions 2: server alive" kill -0 "$SERVER_PID"
stop_server

new_server --max-connections 3 --max-user-connections 2
pywire "$PORT" >"$T/conn.out" 2>"$T/conn.err" <<'EOF'
import sys
import time

import pfwire as w

port = int(sys.argv[1])

def report(good, desc, detail=""):
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)

def fresh():
    s = w.connect(port, timeout=5)
    w.hello(s)
    return s

# --max-user-connections 2: a third login of the same user is refused.
u1, u2 = fresh(), fresh()
w.scram_login(u1, "paraflow", "secret123")
w.scram_login(u2, "paraflow", "secret123")
u3 = fresh()
try:
    w.scram_login(u3, "paraflow", "secret123")
    got = "AUTH_OK"
except w.WireError as e:
    got = e.name
report(got == "busy", "max-user-connections 2: the third login of the "
       "same user gets ERROR busy", "got " + got)
for s in (u1, u2, u3):
    s.close()

# --max-connections 3: the fourth connection is refused. The slots of the
# three above are freed asynchronously: 3 connections are made again
# until all are greeted (30 s), rather than after a fixed 0.5 s.
t0 = time.monotonic()
while True:
    conns = []
    try:
        for _ in range(3):
            conns.append(fresh())
        break
    except (OSError, w.WireError):
        for s in conns:
            s.close()
        if time.monotonic() - t0 > 30:
            raise
        time.sleep(0.2)
s4 = w.connect(port, timeout=5)
got = w.error_name(s4)
report(got == "busy", "max-connections 3: the fourth connection gets "
       "ERROR busy", "got " + got)
for s in conns + [s4]:
    s.close()
EOF
check_eq "connection limits script ran" 0 $?
tap_from "$T/conn.out"
sed 's/^/# /' "$T/conn.err"
faults=$((faults + 2))
# One control and one data connection: within both limits. The slots of
# the closed connections are freed asynchronously: try for 30 s or so.
echo "after-conn.bin $(sha "$T/src1")" >>"$T/sources"
for ((i = 0; i < 60; i++)); do
	rc=0
	out=$(upload --file "$T/src1" --name after-conn.bin --json \
	    --threads 1) || rc=$?
	[ "$rc" = 0 ] && break
	sleep 0.5
done
check "connection limits: server serves an upload afterwards" \
    verify_stored "$T/src1" "$(json_field "$out" session)" after-conn.bin
check "connection limits: server alive" kill -0 "$SERVER_PID"
# Under ASan the busy refusal of a login shows as a leak at exit.
stop_server

# ---------------------------------------------------------------------
# (f) --staging-ttl 2: an abandoned session's staging area goes within
# about 5 s (2 s idle, checked every second).
new_server --staging-ttl 2
pywire "$PORT" >"$T/ttl.out" 2>"$T/ttl.err" <<'EOF'
import sys

import pfwire as w

port = int(sys.argv[1])
data = b"pf-data " + bytes(range(256)) * 300
c = w.connect(port)
w.hello(c)
w.scram_login(c, "paraflow", "secret123")
print(w.open_session(c, "ttl.bin", data, chunk_size=65536)["session"])
c.close()
EOF
sid=$(cat "$T/ttl.out")
check "ttl: session opened" [ -d "$STORAGE/.staging/$sid" ]
t0=$(date +%s%N)
while [ -e "$STORAGE/.staging/$sid" ] &&
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 60000 ]; do
	sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
faults=$((faults + 1))
echo "# ttl 2: staging area gone after $ms ms"
# 20 s: far from the default TTL, with room for a loaded machine.
check "ttl 2: abandoned session removed from .staging within 20 s" \
    between 0 "$ms" 20000
check "ttl 2: server logs the removal" \
    grep -q "session $sid idle for over 2 s; removing it" "$T/server.log"

# A session whose control connection stays open is not idle in the sense
# of docs/protocol.md ("idle (no connection, no chunk)"), so it must not
# expire while that connection lives, even with no data connection yet.
pywire "$PORT" >"$T/live.out" 2>"$T/live.err" <<'EOF'
import sys
import time

import pfwire as w

port = int(sys.argv[1])
data = b"pf-data " + bytes(range(256)) * 300
c = w.connect(port, timeout=30)
w.hello(c)
key = w.scram_login(c, "paraflow", "secret123")
o = w.open_session(c, "live.bin", data, chunk_size=65536)
time.sleep(5)
d = w.connect(port, timeout=30)
try:
    w.join(d, key, o["session"])
    print("JOINED")
except w.WireError as e:
    print(e.name)
EOF
check_eq "ttl 2: a session with its control connection open lives on" \
    JOINED "$(cat "$T/live.out")"
stop_server

# ---------------------------------------------------------------------
# (g) A resume that comes while the session's COMMIT is being carried out
# (its client was killed right after sending it) must not be told the
# session is unknown: the client would then upload the file again as a
# new session (seen in t_resume_client under ASan). It may be resumed
# (still receiving), told busy (being committed) or told COMPLETE.
new_server
pywire "$PORT" "$T/sources" >"$T/race.out" 2>"$T/race.err" <<'EOF2'
import base64
import hashlib
import os
import sys

import pfwire as w

port, sources = int(sys.argv[1]), sys.argv[2]
CS = 65536
got = {}
for rnd in range(40):
    name = "race%d.bin" % rnd
    data = b"pf-data " + os.urandom(4 * CS - 8)
    with open(sources, "a") as f:
        f.write("%s %s\n" % (name, hashlib.sha256(data).hexdigest()))
    c = w.connect(port, timeout=30)
    w.hello(c)
    key = w.scram_login(c, "paraflow", "secret123")
    sid = w.open_session(c, name, data, chunk_size=CS)["session"]
    d = w.connect(port, timeout=30)
    w.join(d, key, sid)
    digests = []
    for i in range(4):
        part = data[i * CS:(i + 1) * CS]
        w.send_chunk(d, i, i * CS, part)
        w.expect(d, w.ACK)
        digests.append(w.chunk_digest(i, i * CS, part))
    r = w.connect(port, timeout=30)
    w.hello(r)
    w.scram_login(r, "paraflow", "secret123")
    w.send_json(c, w.COMMIT, {"digest": w.receipt(len(data), CS, digests)})
    w.send_json(r, w.OPEN, {"name": name, "size": len(data),
                            "chunk_size": CS, "resume": sid,
                            "head": base64.b64encode(data[:w.HEAD_LEN])
                            .decode("ascii")})
    what = w.error_name(r)
    got[what] = got.get(what, 0) + 1
    if what == "OPENED":
        # Resumed before the COMMIT: that one is refused; let it go.
        w.send_json(r, w.ABORT, {})
        w.error_name(r)
    w.error_name(c)
    for s in (c, d, r):
        s.close()
print("note\tanswers to a resume during COMMIT: %s" %
      " ".join("%s:%d" % kv for kv in sorted(got.items())), flush=True)
print("%s\ta resume during COMMIT is never told unknown_session\t%s" %
      ("fail" if "unknown_session" in got else "ok", got), flush=True)
EOF2
check_eq "commit race script ran" 0 $?
tap_from "$T/race.out"
sed 's/^/# /' "$T/race.err"
stop_server

report_totals
done_testing
