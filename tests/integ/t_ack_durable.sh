#!/bin/bash
# SPDX-License-Identifier: MIT
# An ACK is still a durability promise now that syncs are off the
# stream's path (issue 13): a hand-made client keeps every chunk it has
# in flight on one data connection, so the server receives the next
# chunks while earlier ones are synced, and the server is SIGKILLed right
# after the k-th ACK comes back, ROUNDS times over one session. After
# each restart the session must hold every chunk ever acknowledged (the
# resume bitmap of OPEN), ACKs must come in the order the chunks were
# sent, and the finished file must be identical.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"
ROUNDS=8

# round N [final]: one connection's worth of the upload; prints TAP-ish
# lines for tap_from. Unless final, kills the server after some ACKs.
round() {
	pywire "$PORT" "$SERVER_PID" "$T/state" "$1" "${2:-}" \
	    >"$T/round$1.out" 2>"$T/round$1.err" <<'EOF'
import base64
import json
import os
import random
import signal
import sys
import threading
import pfwire as w
port, pid, state, rnd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], \
    int(sys.argv[4])
final = sys.argv[5] == "final"
CS, N = 256 * 1024, 128
def report(good, desc, detail=""):
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)
if rnd == 1:
    data = b"pf-data " + os.urandom(N * CS - 8)
    with open(state + ".data", "wb") as f:
        f.write(data)
    st = {"sid": None, "acked": []}
else:
    with open(state + ".data", "rb") as f:
        data = f.read()
    with open(state) as f:
        st = json.load(f)
def part(i):
    return data[i * CS:(i + 1) * CS]
c = w.connect(port, timeout=30)
w.hello(c)
key = w.scram_login(c, "paraflow", "secret123")
have = set()
if st["sid"] is None:
    st["sid"] = w.open_session(c, "ack.bin", data, chunk_size=CS)["session"]
else:
    w.send_json(c, w.OPEN, {"name": "ack.bin", "size": len(data),
                            "chunk_size": CS, "resume": st["sid"],
                            "head": base64.b64encode(data[:512])
                            .decode("ascii")})
    o = w.expect(c, w.OPENED)
    bits = base64.b64decode(o["have"])
    have = {i for i in range(N) if bits[i // 8] >> (i % 8) & 1}
    lost = [i for i in st["acked"] if i not in have]
    report(o.get("resumed") is True and not lost, "round %d: all %d "
           "chunks acknowledged before the kills are held" %
           (rnd, len(st["acked"])), "lost %s" % lost)
todo = [i for i in range(N) if i not in have]
random.shuffle(todo)
d = w.connect(port, timeout=30)
w.join(d, key, st["sid"])
def send_all():
    try:
        for i in todo:
            w.send_chunk(d, i, i * CS, part(i))
    except OSError:
        pass
sender = threading.Thread(target=send_all, daemon=True)
sender.start()
kill_at = len(todo) if final else random.randint(1, 6)
order_ok, got = True, 0
while got < kill_at:
    ftype, v = w.recv_json(d)
    if ftype != w.ACK:
        report(False, "round %d: chunk %d acknowledged" % (rnd, todo[got]),
               "got %s %s" % (w.NAMES.get(ftype, ftype), v))
        break
    order_ok = order_ok and v == todo[got]
    st["acked"].append(v)
    got += 1
if not final:
    os.kill(pid, signal.SIGKILL)
report(order_ok, "round %d: %d ACKs in the order the chunks were sent" %
       (rnd, got))
with open(state, "w") as f:
    json.dump(st, f)
if final:
    sender.join()
    digests = [w.chunk_digest(i, i * CS, part(i)) for i in range(N)]
    w.send_json(c, w.COMMIT, {"digest": w.receipt(len(data), CS, digests)})
    done = w.expect(c, w.COMPLETE)
    print("sid\t%s" % st["sid"], flush=True)
d.close()
c.close()
EOF
}

start_server -v --no-tls
for r in $(seq "$ROUNDS"); do
	round "$r"
	tap_from "$T/round$r.out"
	[ -s "$T/round$r.err" ] && sed 's/^/# /' "$T/round$r.err"
	wait "$SERVER_PID" 2>/dev/null
	start_server -v --no-tls
done
round $((ROUNDS + 1)) final
tap_from "$T/round$((ROUNDS + 1)).out"
[ -s "$T/round$((ROUNDS + 1)).err" ] &&
    sed 's/^/# /' "$T/round$((ROUNDS + 1)).err"
sid=$(awk -F'\t' '$1 == "sid" { print $2 }' "$T/round$((ROUNDS + 1)).out")
acked=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))
["acked"]))' "$T/state")
echo "# $ROUNDS SIGKILLs right after an ACK; $acked ACKs in all"
check "after $ROUNDS kills: stored file identical" \
    cmp -s "$T/state.data" "$(stored_file "$sid" ack.bin)"
stop_server
done_testing
