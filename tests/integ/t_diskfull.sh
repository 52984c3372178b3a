#!/bin/bash
# SPDX-License-Identifier: MIT
# A server whose disk fills up. The storage is a small tmpfs mounted in a
# mount namespace of the test's own (the test re-runs itself under
# `unshare -m -n`, so the mount and a throttled loopback vanish with it):
#  - a file larger than the free space is refused at OPEN (storage_full,
#    exit 8), nothing is stored, the server goes on;
#  - --min-free-space refuses what would leave less than that free;
#  - space that runs out after OPEN: the data file is preallocated, but the
#    journal is not, so the first journal record fails with storage_full;
#    once space is freed the same session resumes and completes;
#  - an upload whose client was killed half-way, re-run while the disk is
#    full (it may not complete, and must not store a wrong file), then
#    re-run after space was freed: it resumes the same session and ends
#    identical;
#  - two transfers at once: the files of the first not yet written are
#    promised, so the second, which would not fit beside them, is refused
#    at OPEN instead of one of them failing midway.
if [ -z "${PF_NS:-}" ] && command -v unshare >/dev/null 2>&1 &&
    unshare -m -n true 2>/dev/null; then
	PF_NS=1 exec unshare -m -n bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

storage_on_tmpfs 40m
# The upload that is killed half-way must last long enough: 64 Mbit/s.
throttled=no
command -v tc >/dev/null 2>&1 &&
    tc qdisc add dev lo root tbf rate 64mbit burst 256kb latency 200ms \
    2>/dev/null && throttled=yes
echo "# storage: a 40 MiB tmpfs; throttled loopback: $throttled"

MIB=$((1024 * 1024))

export PARAFLOW_STATE_DIR=$T/state
mkdir -p "$PARAFLOW_STATE_DIR"

# fill: fills the tmpfs to the last byte; free: empties it again.
fill() {
	dd if=/dev/zero of="$STORAGE/filler" bs=64k 2>/dev/null
	faults=$((faults + 1))
}
free_space() {
	rm -f "$STORAGE/filler"
}

# results NAME RC: after a Python part that exited RC, its results in
# $T/NAME.out as TAP and its stderr as comments; sets sid to the session
# it printed ("sid<TAB>ID").
results() {
	check_eq "$1: the script ran" 0 "$2"
	tap_from "$T/$1.out"
	sid=$(awk -F'\t' '$1 == "sid" { print $2 }' "$T/$1.out")
	sed 's/^/# /' "$T/$1.err"
	faults=$((faults + 1))
}

# forget_stored SID: removes a checked upload, to make room.
forget_stored() {
	rm -rf "${STORAGE:?}/$1"
}

# --- Larger than the free space: refused up front.
start_server -v
mkfile "$T/big" $((64 * MIB))
rc=0
out=$(upload --file "$T/big" --json) || rc=$?
faults=$((faults + 1))
check_eq "64 MiB on 40 MiB: exit 8" 8 "$rc"
check_eq "64 MiB on 40 MiB: storage_full" storage_full \
    "$(json_field "$out" code)"
check_eq "64 MiB on 40 MiB: nothing stored" 0 "$(stored_count)"
check "64 MiB on 40 MiB: staging empty" staging_empty
check "64 MiB on 40 MiB: server alive" kill -0 "$SERVER_PID"
stop_server

# --- --min-free-space 30M: 16 MiB would leave under 30 MiB, 4 MiB not.
start_server -v --min-free-space 30M
mkfile "$T/f16" $((16 * MIB))
rc=0
out=$(upload --file "$T/f16" --json) || rc=$?
faults=$((faults + 1))
check_eq "min-free-space: 16 MiB refused, exit 8" 8 "$rc"
check_eq "min-free-space: storage_full" storage_full \
    "$(json_field "$out" code)"
check "min-free-space: staging empty" staging_empty
mkfile "$T/f4" $((4 * MIB))
rc=0
out=$(upload --file "$T/f4" --json) || rc=$?
check_eq "min-free-space: 4 MiB accepted" 0 "$rc"
sid=$(json_field "$out" session)
check "min-free-space: 4 MiB stored identical" verify_stored "$T/f4" \
    "$sid" f4
forget_stored "$sid"
stop_server

# --- Space runs out after OPEN, with a raw client: the staging data file
# was preallocated, the journal was not, so the first chunk cannot be made
# durable. After space is freed the session resumes and completes. The
# raw client speaks the plaintext protocol. One user alone may fill the
# disk here (--max-user-share 100): the 24 MiB upload below is more than
# half of the 40 MiB.
start_server -v --no-tls --max-user-share 100
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 - "$PORT" \
    "$STORAGE" "$T/mid" >"$T/mid.out" 2>"$T/mid.err" <<'EOF'
import base64
import os
import sys

import pfwire as w

port, storage, base = int(sys.argv[1]), sys.argv[2], sys.argv[3]
CS = 1 << 20
data = b"pf-data " + os.urandom(8 * CS - 8)
with open(base + ".data", "wb") as f:
    f.write(data)

def login():
    c = w.connect(port, timeout=30)
    w.hello(c)
    return c, w.scram_login(c, "paraflow", "secret123")

def part(i):
    return data[i * CS:(i + 1) * CS]

c, key = login()
o = w.open_session(c, "mid.bin", data, chunk_size=CS)
sid = o["session"]
print("sid\t%s" % sid, flush=True)
# Fill the file system to the last byte.
filler = os.path.join(storage, "filler")
w.fill_disk(filler)
d = w.connect(port, timeout=30)
w.join(d, key, sid)
w.send_chunk(d, 0, 0, part(0))
got = w.error_name(d)
w.report(got == "storage_full", "disk full after OPEN: chunk 0 refused "
         "with storage_full", "got " + got)
d.close()
c.close()
os.unlink(filler)
# Space again: the same session resumes and completes.
c, key = login()
w.send_json(c, w.OPEN, {"name": "mid.bin", "size": len(data),
                        "chunk_size": CS, "resume": sid,
                        "head": base64.b64encode(data[:512])
                        .decode("ascii")})
try:
    o = w.expect(c, w.OPENED)
    w.report(o.get("resumed") is True, "disk freed: the session resumes")
    d = w.connect(port, timeout=30)
    w.join(d, key, sid)
    digests = []
    for i in range(o["chunks"]):
        digests.append(w.chunk_digest(i, i * CS, part(i)))
        w.send_chunk(d, i, i * CS, part(i))
        w.expect(d, w.ACK)
    w.send_json(c, w.COMMIT, {"digest": w.receipt(len(data), CS, digests)})
    done = w.expect(c, w.COMPLETE)
    w.report(done["session"] == sid, "disk freed: the session completes")
except w.WireError as e:
    w.report(False, "disk freed: the session resumes and completes", str(e))
EOF
results mid $?
check "disk full after OPEN: stored file identical" \
    verify_stored "$T/mid.data" "${sid:-none}" mid.bin
forget_stored "${sid:-none}"
check "disk full after OPEN: staging empty" staging_empty
rm -f "$STORAGE/filler"

# --- A real client killed half-way, the disk filled, the upload re-run
# (it may fail, never with a wrong file), space freed, re-run: the same
# session completes identical.
mkfile "$T/half" $((24 * MIB))
"$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" --json --file "$T/half" \
    --name half.bin --threads 2 >"$T/half.out" 2>"$T/half.err" &
cpid=$!
# Kill it once the server holds at least two chunks (journal records).
for ((i = 0; i < 600; i++)); do
	j=$(find "$STORAGE/.staging" -name journal -size +95c 2>/dev/null |
	    head -n 1)
	[ -n "$j" ] && break
	ours "$cpid" || break
	sleep 0.01
done
# Not if it ended by itself: once reaped, its PID may be another's.
signal_ours KILL "$cpid"
rc=0
wait "$cpid" 2>/dev/null || rc=$?
faults=$((faults + 1))
if [ "$rc" != 137 ]; then
	echo "# the client was not killed half-way (exit $rc): too fast"
fi
sid1=$(find "$STORAGE/.staging" -mindepth 1 -maxdepth 1 -printf '%f\n' |
    head -n 1)
held=$(($(stat -c %s "$STORAGE/.staging/$sid1/journal" 2>/dev/null ||
    echo 0) / 48))
echo "# killed with $held chunks held by session ${sid1:-none}"
fill
rc=0
out=$(timeout 120 "$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" --json \
    --file "$T/half" --name half.bin --threads 2 --give-up 10 \
    2>"$T/full.err") || rc=$?
echo "# re-run on a full disk: exit $rc: $out"
if [ "$rc" = 0 ]; then
	# Everything it needed was preallocated; then it must be right.
	check "re-run on a full disk: completed identical" \
	    verify_stored "$T/half" "$(json_field "$out" session)" half.bin
else
	check_eq "re-run on a full disk: storage_full" storage_full \
	    "$(json_field "$out" code)"
	check_eq "re-run on a full disk: nothing stored" 0 "$(stored_count)"
	check "re-run on a full disk: server alive" kill -0 "$SERVER_PID"
	free_space
	rc=0
	out=$(timeout 120 "$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" --json \
	    --file "$T/half" --name half.bin --threads 2 \
	    2>"$T/freed.err") || rc=$?
	echo "# re-run after freeing space: $out"
	check_eq "space freed: exit 0" 0 "$rc"
	check "space freed: stored file identical" \
	    verify_stored "$T/half" "$(json_field "$out" session)" half.bin
fi
check_eq "one session across the runs" "${sid1:-none}" \
    "$(json_field "$out" session)"
free_space
check "staging empty at the end" staging_empty
forget_stored "$(json_field "$out" session)"

# --- Two transfers at once: a transfer reserves each file at its first
# write, and until then its bytes are promised. B (20 MiB) comes while
# A's 24 MiB are under way: B is refused at OPEN, where before it was
# let in and one of them met storage_full midway.
mkdir -p "$T/ta" "$T/tb"
mkfile "$T/ta/one.bin" $((12 * MIB))
mkfile "$T/ta/two.bin" $((12 * MIB))
mkfile "$T/tb/big.bin" $((20 * MIB))
"$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" --json -t 1 \
    --limit-rate 2M "$T/ta" >"$T/ta.out" 2>"$T/ta.err" &
apid=$!
check "transfer A under way" wait_for 60 held_some 1
rc=0
out=$(upload --json "$T/tb") || rc=$?
faults=$((faults + 1))
check_eq "transfer B while A's bytes are promised: exit 8" 8 "$rc"
check_eq "transfer B: storage_full" storage_full \
    "$(json_field "$out" code)"
rc=0
wait "$apid" || rc=$?
check_eq "transfer A completes" 0 "$rc"
sid=$(json_field "$(cat "$T/ta.out")" session)
check "transfer A stored identical (diff -r)" diff -r "$T/ta" \
    "$STORAGE/$sid/ta"
forget_stored "$sid"
rc=0
out=$(upload --json "$T/tb") || rc=$?
check_eq "transfer B alone: exit 0" 0 "$rc"
check "staging empty after the transfers" staging_empty

# --- A transfer's small files are written whole by one piece each, with
# no space reserved first: the write itself meets the full disk. Chunk 0
# is refused with storage_full, and once space is freed the same
# transfer resumes and stores every file whole.
logged=$(($(wc -c <"$T/server.log") + 1))
pywire "$PORT" "$STORAGE" "$T/small" >"$T/small.out" 2>"$T/small.err" <<'EOF'
import base64
import os
import sys

import pfwire as w

port, storage, base = int(sys.argv[1]), sys.argv[2], sys.argv[3]
CS = 1 << 20
sizes = [3000, 70000, 100, 200000]
datas = [os.urandom(n) for n in sizes]
offsets = [sum(sizes[:i]) for i in range(len(sizes))]
payload = b"".join(datas)
spans = list(zip(offsets, sizes))
files = [{"path": "small/f%d" % i, "size": n, "mode": 0o644,
          "mtime": 1700000000, "offset": o}
         for i, (o, n) in enumerate(spans)]
os.makedirs(base + "/small")
for i, d in enumerate(datas):
    with open("%s/small/f%d" % (base, i), "wb") as f:
        f.write(d)

def open_transfer(resume=None):
    c = w.connect(port, timeout=30)
    w.hello(c)
    key = w.scram_login(c, "paraflow", "secret123")
    req = {"name": "small", "size": len(payload), "chunk_size": CS,
           "files": files, "pieces": True,
           "head": base64.b64encode(payload[:512]).decode("ascii")}
    if resume:
        req["resume"] = resume
    w.send_json(c, w.OPEN, req)
    return c, key, w.expect(c, w.OPENED)

c, key, o = open_transfer()
sid = o["session"]
print("sid\t%s" % sid, flush=True)
filler = os.path.join(storage, "filler")
w.fill_disk(filler)
d = w.connect(port, timeout=30)
w.join(d, key, sid)
w.send_chunk(d, 0, 0, payload, w.pieces_digest(0, 0, payload, spans, CS))
got = w.error_name(d)
w.report(got == "storage_full", "small files on a full disk: chunk 0 "
         "refused with storage_full", "got " + got)
d.close()
c.close()
os.unlink(filler)
c, key, o = open_transfer(sid)
w.report(o.get("resumed") is True, "small files, disk freed: the transfer "
         "resumes")
try:
    done = w.upload(c, port, key, o, payload, spans)
    states = sorted(set(f["state"] for f in done["files"]))
    w.report(done["session"] == sid and states == ["stored"],
             "small files, disk freed: every file stored", str(states))
except w.WireError as e:
    w.report(False, "small files, disk freed: the transfer completes", str(e))
EOF
results small $?
check "small files on a full disk: met by the write, nothing reserved" \
    bash -c "tail -c +$logged '$T/server.log' |
    grep -q 'pwrite_all: .*No space left'"
check "small files: stored identical (diff -r)" diff -r "$T/small/small" \
    "$STORAGE/${sid:-none}/small"
forget_stored "${sid:-none}"
check "small files: staging empty" staging_empty
rm -f "$STORAGE/filler"
report_totals
stop_server
done_testing
