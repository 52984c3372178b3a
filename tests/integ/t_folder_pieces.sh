#!/bin/bash
# SPDX-License-Identifier: MIT
# A transfer's chunks hashed in pieces (PFC2, docs/protocol.md), so that
# each byte is hashed once per side: a hand-made client that hashes as
# the protocol says (a file larger than a chunk placed at a chunk's
# start among them) gets every chunk ACKed and each file's own receipt
# back; the same session refuses (NACKs) a chunk hashed whole (PFC1);
# paraflow asks for pieces by default, and COMMIT takes the receipt of
# every file whose own chunks lie whole in chunks from the stream
# (paraflowd's "receipts streamed"), not from reading it back; paraflow
# places files larger than a chunk at chunks' starts, the small ones in
# the room after them, so all their receipts stream, and a rerun after
# a kill resumes that layout (no amend), and one after a large file
# grew amends it (the file then past the old end, its last own chunk
# whole in a chunk, the others not); through a relay that hides the
# feature (an older paraflowd) paraflow hashes whole and the tree
# arrives all the same; after paraflowd is killed and the machine
# "reboots" (the boot marker gone), recovery checks every journaled
# chunk in pieces and keeps them all.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

start_server -v --no-tls
CS=65536

# streamed SID: the receipts SID's COMMIT took from the stream.
streamed() {
	sed -n "s/^.* $1: [0-9]* entries: .*early, \([0-9]*\) receipts"`
	    `" streamed.*$/\1/p" "$T/server.log" | tail -n 1
}

# whole_files SID: the files of stored transfer SID (sent back to back in
# its list's order) that lie whole in one chunk of CS bytes.
whole_files() {
	python3 - "$STORAGE/$1/.paraflow-files.json" "$CS" <<'EOF'
import json, sys
cs, off, n = int(sys.argv[2]), 0, 0
for f in json.load(open(sys.argv[1])):
    if f["dir"]:
        continue
    if f["size"] > 0 and off // cs == (off + f["size"] - 1) // cs:
        n += 1
    off += f["size"]
print(n)
EOF
}

# tree DIR: 300 files of 1-40 KiB in 4 folders and an empty one.
tree() {
	python3 - "$1" <<'EOF'
import os, random, sys
random.seed(15)
for i in range(300):
    d = os.path.join(sys.argv[1], "d%d" % (i % 4))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d.dat" % i), "wb") as f:
        f.write(b"pf-data " + os.urandom(random.randint(1024, 40960) - 8))
open(os.path.join(sys.argv[1], "empty.dat"), "wb").close()
EOF
}

# --- A hand-made client, hashing as docs/protocol.md says ---------------
pywire "$PORT" "$CS" >"$T/hand.out" 2>&1 <<'EOF'
import base64, sys
import pfwire as w
port, cs = int(sys.argv[1]), int(sys.argv[2])
# f4 (three own chunks) at a chunk's start, dead bytes before it.
sizes = [100, 70000, 0, 3000, 140000, 65536, 10, 60000]
datas = [bytes((i * 31 + k * 7) % 251 for k in range(n))
         for i, n in enumerate(sizes)]
offsets, off = [], 0
for i, n in enumerate(sizes):
    if i == 4:
        off = (off + cs - 1) // cs * cs
    offsets.append(off)
    off += n
files = [{"path": "hand/f%d" % i, "size": n, "mode": 0o644,
          "mtime": 1700000000, "offset": o}
         for i, (n, o) in enumerate(zip(sizes, offsets))]
payload = bytearray(off)
for o, d in zip(offsets, datas):
    payload[o:o + len(d)] = d
payload = bytes(payload)
spans = [(o, n) for o, n in zip(offsets, sizes) if n]
print("whole", sum(1 for o, n in spans
                   if o % cs == 0 or o // cs == (o + n - 1) // cs))

def open_transfer(name, pieces):
    c = w.connect(port)
    features = w.expect(c, w.HELLO)["features"]
    key = w.scram_login(c, "paraflow", "secret123")
    req = {"name": name, "size": len(payload), "chunk_size": cs,
           "files": files, "head": base64.b64encode(payload[:512]).decode()}
    if pieces:
        req["pieces"] = True
    w.send_json(c, w.OPEN, req)
    return c, key, features, w.expect(c, w.OPENED)

c, key, features, opened = open_transfer("hand", True)
print("features", " ".join(features))
print("opened pieces", opened.get("pieces"))
done = w.upload(c, port, key, opened, payload, spans)
for f, data in zip(done["files"], datas):
    print(f["client"], f["state"],
          "own" if f["digest"] == w.own_receipt(data, cs) else "other")
print("receipt", done["digest"])

# A chunk hashed whole in a session hashed in pieces: NACKed.
c, key, _, opened = open_transfer("hand2", True)
d = w.connect(port)
w.join(d, key, opened["session"])
w.send_chunk(d, 0, 0, payload[:cs])
got, obj = w.recv_json(d)
print("whole digest answer", w.NAMES.get(got, got))
w.send_chunk(d, 0, 0, payload[:cs],
             w.pieces_digest(0, 0, payload[:cs], spans, cs))
got, obj = w.recv_json(d)
print("pieces digest answer", w.NAMES.get(got, got))

# Not asked for: hashed whole, as before.
c, key, _, opened = open_transfer("hand3", False)
print("unasked pieces", opened.get("pieces"))
done = w.upload(c, port, key, opened, payload)
print("unasked states", " ".join(sorted(set(f["state"]
                                            for f in done["files"]))))
EOF
sed 's/^/# /' "$T/hand.out"
check "HELLO lists pieces" grep -q '^features .*pieces' "$T/hand.out"
check "OPENED says the chunks are hashed in pieces" \
    grep -qx 'opened pieces True' "$T/hand.out"
check_eq "every file stored with its own receipt" 8 \
    "$(grep -c '^hand/f[0-9] stored own$' "$T/hand.out")"
check "a chunk hashed whole is NACKed in a pieces session" \
    grep -qx 'whole digest answer NACK' "$T/hand.out"
check "... and ACKed hashed in pieces" \
    grep -qx 'pieces digest answer ACK' "$T/hand.out"
check "not asked for, OPENED says whole" \
    grep -qx 'unasked pieces False' "$T/hand.out"
check "not asked for, the chunks hashed whole are taken" \
    grep -qx 'unasked states stored' "$T/hand.out"
HSID=$(grep -o 'session [0-9a-f-]* opened by paraflow: "hand"' \
    "$T/server.log" | awk '{print $2}')
H3SID=$(grep -o 'session [0-9a-f-]* opened by paraflow: "hand3"' \
    "$T/server.log" | awk '{print $2}')
check_eq "the hand-made transfer's files whole in a chunk: streamed" \
    "$(sed -n 's/^whole \([0-9]*\)$/\1/p' "$T/hand.out")" \
    "$(streamed "$HSID")"
check_eq "hashed whole: no receipt streamed" 0 "$(streamed "$H3SID")"

# --- paraflow: pieces by default --------------------------------------
A=$T/alpha
tree "$A"
run "$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --quiet -c 64K --json \
    "$A"
check_eq "alpha: uploaded" 0 "$RC"
ASID=$(json_get session <"$T/out")
check "alpha: the tree is stored (diff -r)" diff -r "$A" "$STORAGE/$ASID/alpha"
W=$(whole_files "$ASID")
echo "# alpha: $W files whole in one chunk"
check "alpha: most files lie whole in one chunk" test "$W" -ge 150
check_eq "alpha: every one's receipt came from the stream" "$W" \
    "$(streamed "$ASID")"

# --- Files larger than a chunk: placed at chunks' starts -------------
# Back to back the second large file would start mid-chunk; placed at
# the next chunk's start, the small files after it fill the room left
# before it (12 of them; the 13th goes last), so hardly a byte is dead.
# large_tree DIR: 2 files larger than a chunk, then 13 small ones.
large_tree() {
	mkdir -p "$1/c_small"
	head -c $((2 * CS + 1000)) /dev/urandom >"$1/a_big1"
	head -c $((3 * CS + 500)) /dev/urandom >"$1/b_big2"
	for i in 0 1 2 3 4 5 6 7 8 9 10 11 12; do
		head -c 5000 /dev/urandom >"$1/c_small/s$i"
	done
}

# cut DIR: an upload of DIR killed once it has chunks held; prints the
# transfer's id.
cut() {
	local pid
	"$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --quiet -c 64K -t 1 \
	    --limit-rate 64K "$1" >/dev/null 2>&1 &
	pid=$!
	wait_for 60 held_some 2
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	grep -o "session [0-9a-f-]* opened by paraflow: \"${1##*/}\"" \
	    "$T/server.log" | awk '{print $2}'
}

D=$T/delta
large_tree "$D"
DSID=$(cut "$D")
run "$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --quiet -c 64K --json \
    "$D"
check_eq "delta: the rerun completes" 0 "$RC"
check_eq "delta: in the same transfer" "$DSID" "$(json_get session <"$T/out")"
check "delta: resumed as laid out, not amended" \
    test -z "$(grep "session $DSID amended" "$T/server.log")"
check "delta: the tree is stored (diff -r)" diff -r "$D" "$STORAGE/$DSID/delta"
check_eq "delta: every receipt came from the stream" 15 "$(streamed "$DSID")"
E=$T/epsilon
large_tree "$E"
ESID=$(cut "$E")
head -c 200 /dev/urandom >>"$E/b_big2"
run "$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --quiet -c 64K --json \
    "$E"
check_eq "epsilon: the rerun after a large file grew completes" 0 "$RC"
check "epsilon: amended" grep -q "session $ESID amended" "$T/server.log"
check "epsilon: the tree is stored (diff -r)" \
    diff -r "$E" "$STORAGE/$ESID/epsilon"

# --- An older server (no "pieces" in HELLO) ---------------------------
hello_relay pieces "$T/oldport" >"$T/old.log" 2>&1 &
RELAY=$!
PIDS+=("$RELAY")
check "the relay for an older server starts" wait_file "$T/oldport" 30
B=$T/beta
tree "$B"
run "$PARAFLOW" upload --port "$(cat "$T/oldport")" "${NOTLS[@]}" --quiet \
    -c 64K --json "$B"
check_eq "older server: uploaded, hashed whole" 0 "$RC"
BSID=$(json_get session <"$T/out")
check "older server: the tree is stored (diff -r)" \
    diff -r "$B" "$STORAGE/$BSID/beta"
check_eq "older server: no receipt from the stream" 0 "$(streamed "$BSID")"
signal_ours TERM "$RELAY"

# --- The server answers another form on a resume: a clear stop --------
# A relay that passes all, until $T/flip exists: then it cuts every
# connection, and says "pieces": false in every OPENED after (a session
# resumed by another paraflowd version, say). The client's workers hash
# as the session was opened: it stops with a message, it does not send
# chunks the server would NACK for ever.
pywire "$PORT" "$T/flipport" "$T/flip" >"$T/flip.log" 2>&1 <<'EOF' &
import json, os, socket, sys, threading, time
import pfwire as w
port, portfile, trigger = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conns, flip = [], [False]

def on_frame(ftype, payload):
    if ftype == w.OPENED and flip[0]:
        o = json.loads(payload)
        o["pieces"] = False
        payload = json.dumps(o).encode()
    return ftype, payload

def watch():
    while not os.path.exists(trigger):
        time.sleep(0.05)
    flip[0] = True
    for x in list(conns):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

threading.Thread(target=watch, daemon=True).start()
w.relay(port, portfile, on_frame, conns)
EOF
FLIP=$!
PIDS+=("$FLIP")
check "the relay that changes the form starts" wait_file "$T/flipport" 30
Z=$T/zeta
tree "$Z"
"$PARAFLOW" upload --port "$(cat "$T/flipport")" "${NOTLS[@]}" --quiet \
    -c 64K -t 1 --limit-rate 256K "$Z" >"$T/zeta.out" 2>"$T/zeta.err" &
CPID=$!
check "zeta: the first chunks arrive" wait_for 60 held_some 8
touch "$T/flip"
RC=0
wait "$CPID" || RC=$?
sed 's/^/# /' "$T/zeta.err" | tail -n 3
check_eq "zeta: another form on the resume stops it (version)" 8 "$RC"
check "zeta: it says why" grep -q 'is now hashed whole by the server' \
    "$T/zeta.err"
signal_ours TERM "$FLIP"

# --- Killed, "rebooted": recovery checks the chunks in pieces ---------
G=$T/gamma
tree "$G"
"$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --quiet -c 64K -t 2 \
    --limit-rate 512K "$G" >/dev/null 2>&1 &
CPID=$!
check "gamma: the first chunks arrive" wait_for 60 held_some 30
kill -9 "$SERVER_PID" "$CPID" 2>/dev/null
wait "$SERVER_PID" "$CPID" 2>/dev/null
HELD=$(staged_chunks)
rm -f "$STORAGE/.staging/.boot"
log_mark
start_server -v --no-tls
check "gamma: recovery found nothing damaged" \
    test -z "$(log_since | grep 'did not survive')"
check_eq "gamma: recovery kept every journaled chunk" "$HELD" \
    "$(staged_chunks)"
run "$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --quiet -c 64K --json \
    "$G"
check_eq "gamma: the rerun completes" 0 "$RC"
GSID=$(json_get session <"$T/out")
check "gamma: the tree is stored (diff -r)" diff -r "$G" "$STORAGE/$GSID/gamma"

stop_server
done_testing
