#!/bin/bash
# SPDX-License-Identifier: MIT
# Fair shares of disk and sessions between users (issue 11), against a
# real paraflowd on a small tmpfs of its own (the test re-runs itself
# under `unshare -m -n`), with two users: alice, who abuses the server
# through the raw protocol (pfwire.py), and bob, who uploads with the real
# `paraflow upload` and must be answered throughout.
#  - alice declares the whole free space in one OPEN, with no data: it is
#    refused (quota_exceeded) and nothing is preallocated; what fits her
#    share is accepted, more is refused; bob's uploads still succeed;
#  - alice opens 63 sessions of 1 byte and drops each connection: only
#    --max-user-sessions of them are accepted; bob's upload succeeds;
#  - after a restart her recovered sessions count against the same caps,
#    and, over a lowered --max-sessions, all are kept but new sessions are
#    refused (logged) until enough of them end;
#  - --max-user-reserved caps the bytes declared and not yet sent;
#  - a control connection left open and idle with its session is closed
#    after --idle-timeout, and the session is reaped after --staging-ttl;
#    one whose chunks keep coming is not, nor one with every chunk held
#    waiting for its COMMIT.
if [ -z "${PF_NS:-}" ] && command -v unshare >/dev/null 2>&1 &&
    unshare -m -n true 2>/dev/null; then
	PF_NS=1 exec unshare -m -n bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

storage_on_tmpfs 64m

# The server must be gone before its storage can be unmounted.
# shellcheck disable=SC2317 # called by the EXIT trap
unmount_all() {
	stop_all
	umount "$STORAGE" 2>/dev/null
	cleanup
}
trap unmount_all EXIT

U=$T/users
printf 'alice-pw\n' | "$PARAFLOWD" --users "$U" --add-user alice 2>/dev/null
printf 'bob-pw\n' | "$PARAFLOWD" --users "$U" --add-user bob 2>/dev/null
MIB=$((1024 * 1024))

# What the Python parts share: logins, OPENs, results as TAP lines.
cat >"$T/share.py" <<'EOF'
import base64
import os
import time

import pfwire as w

PW = {"alice": "alice-pw", "bob": "bob-pw"}


def report(good, desc, detail=""):
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)


def note(text):
    print("note\t%s" % text, flush=True)


def login(port, user):
    c = w.connect(port, timeout=30)
    w.hello(c)
    return c, w.scram_login(c, user, PW[user])


def open_raw(c, name, size, head, chunk_size=w.DEFAULT_CHUNK,
             resume=None):
    """OPEN; the OPENED object, or the ERROR frame's (name, message)."""
    req = {"name": name, "size": size, "chunk_size": chunk_size,
           "head": base64.b64encode(head).decode("ascii")}
    if resume is not None:
        req["resume"] = resume
    w.send_json(c, w.OPEN, req)
    try:
        return w.expect(c, w.OPENED)
    except w.WireError as e:
        if e.ftype == w.ERROR:
            return (e.name, e.obj.get("message", ""))
        return (e.name, "")


def send_chunks(port, key, sid, data, cs, pause=0.0):
    """Sends data in cs-byte chunks on one data connection, each ACKed,
    pause seconds apart; closes it. The chunks' digests, in order."""
    d = w.connect(port, timeout=30)
    w.join(d, key, sid)
    digests = []
    for i in range(0, len(data), cs):
        part = data[i:i + cs]
        digests.append(w.chunk_digest(i // cs, i, part))
        w.send_chunk(d, i // cs, i, part)
        w.expect(d, w.ACK)
        time.sleep(pause)
    d.close()
    return digests


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def staged(storage):
    d = os.path.join(storage, ".staging")
    return sorted(n for n in os.listdir(d) if not n.startswith("."))
EOF

# py ARGS...: a Python part from stdin, with pfwire and share importable;
# its results become TAP lines.
py() {
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here:$T" python3 - "$@" \
	    >"$T/py.out" 2>"$T/py.err"
	check_eq "the Python part ran" 0 $?
	sed 's/^/# /' "$T/py.err"
	tap_from "$T/py.out"
}

# bob_upload FILE: bob's real upload; RC, OUT and the seconds it took.
bob_upload() {
	local t0
	t0=$(date +%s.%N)
	RC=0
	OUT=$(PARAFLOW_SECRET=bob-pw timeout 60 "$PARAFLOW" upload \
	    --port "$PORT" --quiet "${NOTLS[@]}" --user bob --json \
	    --file "$1" 2>"$T/bob.err") || RC=$?
	SECS=$(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $t0 }")
}

# --- The disk: alice declares everything, with no data -----------------
start_server -v --no-tls --users "$U"
mkfile "$T/one" 1
mkfile "$T/eight" $((8 * MIB))
py "$PORT" "$STORAGE" "$PARAFLOW" "$T" <<'EOF'
import json
import os
import subprocess
import sys
import time

import pfwire as w
from share import free_bytes, login, note, open_raw, report, staged

port, storage, paraflow, tdir = sys.argv[1:5]
free0 = free_bytes(storage)
note("free space at the start: %d bytes" % free0)

HEAD = (b"pf-data " * 64)[:512]


def bob(name):
    """Bob's real upload of tdir/name: (exit status, JSON, seconds)."""
    t0 = time.monotonic()
    env = dict(os.environ, PARAFLOW_SECRET="bob-pw")
    r = subprocess.run([paraflow, "upload", "--port", port, "--quiet",
                        "--no-tls", "--user", "bob", "--json", "--file",
                        os.path.join(tdir, name)], env=env,
                       capture_output=True, text=True, timeout=60)
    return r.returncode, json.loads(r.stdout or "{}"), \
        time.monotonic() - t0


# The whole free space less a little room for the staging metadata: the
# old server preallocated it all, and then bob got storage_full.
c, key = login(port, "alice")
size = free0 - 8 * 1024
got = open_raw(c, "all.bin", size, HEAD)
report(isinstance(got, tuple) and got[0] == "quota_exceeded",
       "alice's OPEN of all the free space: quota_exceeded", repr(got))
if isinstance(got, tuple):
    note("alice, %d bytes: %s: %s" % (size, got[0], got[1]))
report(free_bytes(storage) >= free0 - 1024 * 1024,
       "nothing was preallocated for it",
       "free %d of %d" % (free_bytes(storage), free0))
report(staged(storage) == [], "no staging area for it")
rc, out, secs = bob("one")
report(rc == 0, "bob's upload of 1 byte then succeeds", repr(out))
note("bob's 1 byte stored in %.2f s" % secs)
c.close()

# What fits her share (half the space free to her) is accepted.
c, key = login(port, "alice")
big = free0 * 45 // 100
got = open_raw(c, "big.bin", big, HEAD)
report(isinstance(got, dict), "alice's OPEN of 45%% (%d bytes): accepted"
       % big, repr(got))
free1 = free_bytes(storage)
note("after it: %d bytes free (%d preallocated)" % (free1, free0 - free1))

# More than her share, through the real client: exit 8, quota_exceeded.
more = os.path.join(tdir, "more")
with open(more, "wb") as f:
    f.write(b"pf-data " + os.urandom(free0 * 30 // 100 - 8))
env = dict(os.environ, PARAFLOW_SECRET="alice-pw")
r = subprocess.run([paraflow, "upload", "--port", port, "--quiet",
                    "--no-tls", "--user", "alice", "--json", "--file",
                    more], env=env, capture_output=True, text=True,
                   timeout=60)
out = json.loads(r.stdout or "{}")
report(r.returncode == 8 and
       out.get("error", {}).get("code") == "quota_exceeded",
       "alice's paraflow upload of 30% more: exit 8, quota_exceeded",
       "exit %d: %s" % (r.returncode, r.stdout.strip()))
note("paraflow upload said: %s" % r.stdout.strip())
report(len(staged(storage)) == 1, "still one staging area (alice's 45%)",
       repr(staged(storage)))

# Bob, while alice's connection and 45% are held: 1 byte, then 8 MiB.
for name in ("one", "eight"):
    rc, out, secs = bob(name)
    report(rc == 0, "bob's upload of '%s' succeeds while alice holds her "
           "share" % name, repr(out))
    note("bob's '%s' stored in %.2f s as %s" % (name, secs,
                                                out.get("session")))
    print("sid\t%s\t%s" % (name, out.get("session", "none")), flush=True)

# Alice gives her session up: its staging area goes.
w.send_json(c, w.ABORT, {})
got = w.error_name(c)
report(got in ("cancelled", "eof"), "alice aborts her 45%", got)
c.close()
EOF
for f in one eight; do
	sid=$(sed -n "s/^sid\t$f\t//p" "$T/py.out")
	check "bob's '$f' stored identical" cmp -s "$T/$f" \
	    "$(stored_file "${sid:-none}" "$f")"
done
check_eq "only bob's three files are stored" 3 "$(stored_count)"
check "staging empty after alice's abort" wait_for 30 staging_empty
check "server alive" kill -0 "$SERVER_PID"

# --- Sessions: 63 OPENs of 1 byte, each connection dropped -------------
py "$PORT" "$STORAGE" "$T/alice.ids" <<'EOF'
import sys

from share import login, note, open_raw, report, staged

port, storage, idfile = sys.argv[1:4]
accepted, refused, other = [], 0, []
for i in range(63):
    c, key = login(port, "alice")
    got = open_raw(c, "a%02d.bin" % i, 1, b"p")
    if isinstance(got, dict):
        accepted.append("%s a%02d.bin" % (got["session"], i))
    elif got[0] == "quota_exceeded":
        refused += 1
        last = got[1]
    else:
        other.append(got)
    c.close()
note("alice: %d of 63 OPENs accepted, %d refused with quota_exceeded"
     % (len(accepted), refused))
if refused:
    note("the refusal said: %s" % last)
report(len(accepted) == 8, "alice gets --max-user-sessions (8) sessions",
       "got %d" % len(accepted))
report(refused == 55 and not other, "the other 55 are quota_exceeded",
       "refused %d, other %r" % (refused, other[:3]))
report(len(staged(storage)) == 8, "8 staging areas, none for the refused",
       "%d" % len(staged(storage)))
with open(idfile, "w") as f:
    f.write("\n".join(accepted) + "\n")
EOF
bob_upload "$T/one"
echo "# bob's upload beside alice's 8 dropped sessions: exit $RC in $SECS s"
check_eq "bob's upload succeeds beside alice's 8 dropped sessions" 0 "$RC"
check "and arrives identical" cmp -s "$T/one" \
    "$(stored_file "$(json_field "$OUT" session)" one)"
stop_server

# --- After a restart, the recovered sessions count --------------------
start_server -v --no-tls --users "$U"
check "the 8 sessions are recovered" \
    grep -q "8 sessions to resume" "$T/server.log"
py "$PORT" "$STORAGE" <<'EOF'
import sys

from share import login, note, open_raw, report

port, storage = sys.argv[1:3]
c, key = login(port, "alice")
got = open_raw(c, "after.bin", 1, b"p")
report(isinstance(got, tuple) and got[0] == "quota_exceeded",
       "after a restart alice's 9th OPEN: quota_exceeded", repr(got))
EOF
bob_upload "$T/one"
check_eq "bob's upload succeeds beside alice's recovered sessions" 0 "$RC"
stop_server

# Over a lowered --max-sessions and --max-user-sessions: all 8 are kept,
# the server says so, and new sessions are refused until fewer remain.
log_mark
start_server -v --no-tls --users "$U" --max-sessions 6 \
    --max-user-sessions 4
log_since >"$T/restart.log"
sed -n 's/^/# /; /over --max/p' "$T/restart.log"
check "logged: over --max-sessions" \
    grep -q "8 sessions recovered, over --max-sessions 6" "$T/restart.log"
check "logged: alice over --max-user-sessions" \
    grep -q "user alice has 8 sessions recovered, over" "$T/restart.log"
py "$PORT" "$STORAGE" "$T/alice.ids" <<'EOF'
import sys

import pfwire as w
from share import login, note, open_raw, report, staged

port, storage, idfile = sys.argv[1:4]
ids = [l.split() for l in open(idfile).read().split("\n") if l]


def try_open(user):
    c, key = login(port, user)
    got = open_raw(c, "new.bin", 1, b"p")
    c.close()
    return got if isinstance(got, tuple) else ("accepted", "")


a, b = try_open("alice"), try_open("bob")
report(a[0] == "quota_exceeded", "8 recovered, cap 4: alice's OPEN is "
       "quota_exceeded", repr(a))
report(b[0] == "busy", "8 recovered, --max-sessions 6: bob's OPEN is "
       "busy", repr(b))
note("bob was told: %s" % b[1])


def finish(sid, name):
    c, key = login(port, "alice")
    got = open_raw(c, name, 1, b"p", resume=sid)
    if not isinstance(got, dict) or not got.get("resumed"):
        return "resume: %r" % (got,)
    done = w.upload(c, port, key, got, b"p")
    c.close()
    return "" if done["session"] == sid else repr(done)


# Recovered sessions over the limits still resume and complete.
errs = [finish(sid, name) for sid, name in ids[:3]]
report(errs == [""] * 3, "alice resumes and completes 3 of them",
       repr(errs))
report(len(staged(storage)) == 5, "5 remain", repr(len(staged(storage))))
a, b = try_open("alice"), try_open("bob")
report(a[0] == "quota_exceeded", "5 left, cap 4: alice's OPEN still "
       "quota_exceeded", repr(a))
report(b[0] == "accepted", "5 left, --max-sessions 6: bob's OPEN is "
       "accepted", repr(b))
errs = [finish(sid, name) for sid, name in ids[3:5]]
report(errs == [""] * 2, "alice completes 2 more", repr(errs))
a = try_open("alice")
report(a[0] == "accepted", "3 left: alice's OPEN is accepted", repr(a))
EOF
# Alice's 5 completed 1-byte files and bob's 5 files; nothing else.
check_eq "stored: bob's 5 and alice's 5 completed, nothing refused" 10 \
    "$(stored_count)"
stop_server

# --- An idle control connection holding a session ---------------------
rm -rf "${STORAGE:?}"/* "$STORAGE/.staging"
log_mark
start_server -v --no-tls --users "$U" --idle-timeout 2 --staging-ttl 3 \
    --max-user-reserved 8M
# A fixed cap, under the share: 6 MiB fit, 3 MiB more do not.
py "$PORT" <<'EOF'
import sys

from share import login, note, open_raw, report

port = sys.argv[1]
HEAD = (b"pf-data " * 64)[:512]
c, key = login(port, "alice")
got = open_raw(c, "six.bin", 6 << 20, HEAD)
report(isinstance(got, dict), "--max-user-reserved 8M: 6 MiB accepted",
       repr(got))
c2, key = login(port, "alice")
got = open_raw(c2, "three.bin", 3 << 20, HEAD)
report(isinstance(got, tuple) and got[0] == "quota_exceeded" and
       "--max-user-reserved" in got[1],
       "--max-user-reserved 8M: 3 MiB more is quota_exceeded", repr(got))
note("alice was told: %s" % (got[1] if isinstance(got, tuple) else got))
c2.close()
c2, key = login(port, "bob")
got = open_raw(c2, "three.bin", 3 << 20, HEAD)
report(isinstance(got, dict), "bob's 3 MiB beside it: accepted", repr(got))
c2.close()
c.close()
EOF
# Both sessions were left behind: the reaper takes them (--staging-ttl 3).
check "the sessions left behind are reaped" wait_for 60 staging_empty
py "$PORT" "$STORAGE" <<'EOF'
import os
import socket
import sys
import time

import pfwire as w
from share import login, note, open_raw, report, send_chunks, staged

port, storage = sys.argv[1:3]

# A session whose chunks keep coming, two a second on a data connection,
# keeps its control connection past 2 s of silence on it. (One a second
# left a loaded machine 1 s of slack before the 2 s were up.)
CS = 1 << 19
data = b"pf-data " + os.urandom(10 * CS - 8)
c, key = login(port, "bob")
o = open_raw(c, "steady.bin", len(data), data[:512], chunk_size=CS)
digests = send_chunks(port, key, o["session"], data, CS, pause=0.5)
w.send_json(c, w.COMMIT, {"digest": w.receipt(len(data), CS, digests)})
try:
    done = w.expect(c, w.COMPLETE)
    report(done["session"] == o["session"], "a transfer making progress "
           "keeps its control connection (10 chunks over 5 s, idle "
           "timeout 2 s) and commits")
except w.WireError as e:
    report(False, "a transfer making progress keeps its control "
           "connection", str(e))
c.close()

# Every chunk held, then 4 s before COMMIT (a resuming client hashes the
# chunks it sent before, for the receipt, for as long as reading the
# file takes): the control connection is kept, and the commit goes.
data = b"pf-data " + os.urandom(2 * CS - 8)
c, key = login(port, "bob")
o = open_raw(c, "slowcommit.bin", len(data), data[:512], chunk_size=CS)
digests = send_chunks(port, key, o["session"], data, CS)
time.sleep(4)
try:
    w.send_json(c, w.COMMIT, {"digest": w.receipt(len(data), CS, digests)})
    done = w.expect(c, w.COMPLETE)
    report(done["session"] == o["session"], "every chunk held, COMMIT "
           "4 s later (idle timeout 2 s): the control connection is "
           "kept and the file stored")
except (w.WireError, OSError) as e:
    report(False, "every chunk held, a late COMMIT still commits", str(e))
c.close()

# Alice opens a session and then says nothing, on no connection.
c, key = login(port, "alice")
o = open_raw(c, "idle.bin", 1, b"p")
sid = o["session"]
t0 = time.monotonic()
c.settimeout(30)
got = w.error_name(c)
closed = time.monotonic() - t0
note("alice's idle control connection was closed after %.1f s (%s)"
     % (closed, got))
report(got == "eof" and 1.5 <= closed < 15,
       "an idle control connection with its session is closed after "
       "--idle-timeout", "%s after %.1f s" % (got, closed))
report(staged(storage) == [sid], "the session stays, resumable, for now")
while staged(storage) and time.monotonic() - t0 < 30:
    time.sleep(0.1)
reaped = time.monotonic() - t0
note("its session was reaped %.1f s after the close" % (reaped - closed))
report(staged(storage) == [] and reaped - closed >= 2.5,
       "then reaped after --staging-ttl (3 s)", "%.1f s" % reaped)
c, key = login(port, "alice")
got = open_raw(c, "idle.bin", 1, b"p", resume=sid)
report(isinstance(got, tuple) and got[0] == "unknown_session",
       "its resume then finds no session", repr(got))
EOF
check "logged: no progress, closing" \
    grep -q "made no progress for 2 s; closing its control" "$T/server.log"
bob_upload "$T/one"
check_eq "bob's upload succeeds after all that" 0 "$RC"
stop_server
done_testing
