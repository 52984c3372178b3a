#!/bin/bash
# SPDX-License-Identifier: MIT
# The HTTP gateway's JSON API against docs/api.md, with curl and a real
# paraflowd: open and closed endpoints (401 with WWW-Authenticate, and
# --http-auth-all), one user's sessions hidden from another and shown to
# --admin, every JSON body checked against docs/openapi.yaml (oacheck.py),
# the session list's order, filters and pages, the error answers (404,
# 405 with Allow, 400, 409, 413), DELETE of a session that is receiving
# (its client gets the cancelled error, its staging area goes) and of a
# finished one (its file goes, then 404), and /readyz failing on a
# read-only storage directory (in a mount namespace when run as root), and
# not failing when probed from many clients at once. All of it over HTTPS
# (the default), verified with the certificate; the key pin of paraflowd
# --fingerprint works as curl's --pinnedpubkey, plain HTTP to the HTTPS
# port gets no answer, and --http-no-tls serves plain HTTP without HSTS.
# Downloads are in t_http_files.sh; events, metrics, deadlines and load in
# t_http_live.sh.
if [ "$(id -u)" -eq 0 ] && [ -z "${PF_NS:-}" ] &&
    command -v unshare >/dev/null 2>&1 && unshare -m true 2>/dev/null; then
	PF_NS=1 exec unshare -m bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
need_api_tools

# jget_id_re: a sed pattern for a session id.
jget_id_re() {
	echo '[0-9a-f]\{8\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{4\}-[0-9a-f]\{12\}'
}

WWW='Basic realm="paraflow", charset="UTF-8"'

# --- Users: alice and bob, and carol who is an admin -----------------------

add_users alice bob carol
ALICE=(-u alice:alice-pw)
BOB=(-u bob:bob-pw)
CAROL=(-u carol:carol-pw)

# The native port in plaintext: pfwire, which holds an upload open below,
# logs in by hand, and Python's ssl cannot give it the tls-exporter value
# the bound login needs. The gateway is HTTPS all the same.
start_gw --users "$U" --admin carol --no-tls
echo "# gateway at $HTTP_URL"

# --- HTTPS: the default, and how a client trusts it ------------------------

check "the gateway speaks HTTPS by default ($HTTP_URL)" \
    grep -q '^https://' <<<"$HTTP_URL"
check "paraflowd --fingerprint: a pin (sha256//, 44 base64 characters)" \
    grep -Eq '^sha256//[A-Za-z0-9+/]{43}=$' <<<"$GW_PIN"
req /healthz
check_eq "HTTPS with the certificate as CA: 200" 200 "$CODE"
check_eq "HTTPS: Strict-Transport-Security" "max-age=31536000" \
    "$(hdr Strict-Transport-Security)"
# -q: without $T/.curlrc, so without the CA; the pin is the only trust.
req -q --insecure --pinnedpubkey "$(paraflowd_fp)" /healthz
check_eq "curl --pinnedpubkey \"\$(paraflowd --fingerprint)\": 200" 200 \
    "$CODE"
req -q --insecure \
    --pinnedpubkey "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" \
    /healthz
check_eq "another pin: no answer" 000 "$CODE"
check "another pin: curl says the key does not match" \
    grep -qi 'pinned public key' "$T/curl.err"
req -q /healthz
check_eq "HTTPS without trusting the certificate: no answer" 000 "$CODE"
CODE=$(curl -q -sS -o /dev/null -w '%{http_code}' --max-time 60 \
    "http://127.0.0.1:$HTTP_PORT/healthz" 2>"$T/curl.err") || CODE=000:$?
check_eq "plain HTTP to the HTTPS port: no answer (curl exit 52)" "000:52" \
    "$CODE"
check "plain HTTP to the HTTPS port: curl says empty reply" \
    grep -qi 'empty reply' "$T/curl.err"

# --- Open endpoints --------------------------------------------------------

req /healthz
expect_status "GET /healthz without credentials" 200 Health
check_eq "/healthz: status ok" ok "$(jget status)"
check "/healthz: Content-Type application/json" \
    grep -q '^application/json' <<<"$(hdr Content-Type)"
req /readyz
expect_status "GET /readyz without credentials" 200 Ready
check_eq "/readyz: status ready" ready "$(jget status)"
req /metrics
expect_status "GET /metrics without credentials" 200 -
check "/metrics: Content-Type text/plain; version=0.0.4 ($(hdr \
    Content-Type))" grep -q '^text/plain; *version=0\.0\.4' \
    <<<"$(hdr Content-Type)"

# Probes at once, on both of the gateway's threads (4 keep-alive clients):
# each probe file is its own, so one probe never removes another's and
# reports the storage unwritable.
"$PY" - "$HTTP_PORT" >"$T/ready.codes" <<'PY'
import collections, http.client, os, ssl, sys, threading
port, codes, lock = int(sys.argv[1]), collections.Counter(), threading.Lock()
def probe():
    if os.environ.get("PF_GW_CA"):
        ctx = ssl.create_default_context(cafile=os.environ["PF_GW_CA"])
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=20,
                                        context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    for _ in range(500):
        try:
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            status = r.status
        except OSError:
            status = 0
            c.close()
        with lock:
            codes[status] += 1
threads = [threading.Thread(target=probe) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join("%d:%d" % kv for kv in sorted(codes.items())))
PY
check_eq "2000 /readyz, 4 clients at once: all 200" "200:2000" \
    "$(cat "$T/ready.codes")"

# --- Everything else needs a user --------------------------------------------

zero=00000000-0000-4000-8000-000000000000
for ep in "GET /api/v1/sessions" "GET /api/v1/stats" \
    "GET /api/v1/sessions/$zero" "GET /api/v1/sessions/$zero/chunks" \
    "GET /api/v1/sessions/$zero/file" "DELETE /api/v1/sessions/$zero" \
    "GET /api/v1/events"; do
	req -X "${ep% *}" "${ep#* }"
	expect_error "$ep without credentials" 401 unauthorized
	check_eq "$ep without credentials: WWW-Authenticate" "$WWW" \
	    "$(hdr WWW-Authenticate)"
done
req -I "/api/v1/sessions/$zero/file"
check_eq "HEAD .../file without credentials: 401" 401 "$CODE"
check_eq "HEAD .../file without credentials: WWW-Authenticate" "$WWW" \
    "$(hdr WWW-Authenticate)"

req -u alice:wrong /api/v1/sessions
expect_error "wrong password" 401 unauthorized
check_eq "wrong password: WWW-Authenticate" "$WWW" "$(hdr WWW-Authenticate)"
cp "$T/b" "$T/wrong.json"
req -u mallory:alice-pw /api/v1/sessions
expect_error "unknown user" 401 unauthorized
check "unknown user and wrong password answer the same body" \
    cmp -s "$T/b" "$T/wrong.json"
req -u alice: /api/v1/sessions
expect_error "empty password" 401 unauthorized
req -H 'Authorization: Basic !!!not-base64' /api/v1/sessions
expect_error "Authorization that is not base64" 401 unauthorized
req -H "Authorization: Basic $(printf 'alice' | base64)" /api/v1/sessions
expect_error "Basic credentials without a colon" 401 unauthorized
req -H 'Authorization: Bearer alice-pw' /api/v1/sessions
expect_error "a Bearer token" 401 unauthorized
# The user of the native protocol's default is not a user here.
req -u paraflow:secret123 /api/v1/sessions
expect_error "the default user, with a users file" 401 unauthorized
req "${ALICE[@]}" /api/v1/sessions
expect_status "alice's password" 200 SessionList
check_eq "alice has no sessions yet" 0 "$(jget total)"
# The login cache must not turn a right password into a key for wrong ones.
req -u alice:alice-pw-not /api/v1/sessions
expect_error "wrong password after a right one" 401 unauthorized

# --- Sessions of alice and bob ---------------------------------------------

mkfile "$T/a1" 100000
mkfile "$T/a2" $((5 * 1024 * 1024 + 3))
mkfile "$T/b1" 70000
# One second apart, so that "newest first" cannot depend on a tie.
a1=$(json_field "$(upload_as alice --file "$T/a1" --name a1.bin \
    --chunk-size 64K --json)" session)
sleep 1.1
a2=$(json_field "$(upload_as alice --file "$T/a2" --name a2.bin --json)" \
    session)
sleep 1.1
b1=$(json_field "$(upload_as bob --file "$T/b1" --name b1.bin --json)" \
    session)
check "three uploads made ($a1 $a2 $b1)" \
    test -n "$a1" -a -n "$a2" -a -n "$b1"

req "${ALICE[@]}" "/api/v1/sessions/${a1^^}"
check_eq "a session id in upper case is the same session: 200" 200 "$CODE"
req "${ALICE[@]}" "/api/v1/sessions/$a1"
expect_status "alice GETs a1" 200 Session
check_eq "a1: id" "$a1" "$(jget id)"
check_eq "a1: state" complete "$(jget state)"
check_eq "a1: name" a1.bin "$(jget name)"
check_eq "a1: user" alice "$(jget user)"
check_eq "a1: size" 100000 "$(jget size)"
check_eq "a1: chunk_size" 65536 "$(jget chunk_size)"
check_eq "a1: chunks_total" 2 "$(jget chunks_total)"
check_eq "a1: chunks_acked" 2 "$(jget chunks_acked)"
check_eq "a1: chunks_nacked" 0 "$(jget chunks_nacked)"
check_eq "a1: chunks_resent" 0 "$(jget chunks_resent)"
check_eq "a1: bytes_received" 100000 "$(jget bytes_received)"
check_eq "a1: rate_bps 0 once finished" 0 "$(jget rate_bps)"
check_eq "a1: no streams once finished" 0 "$(jget streams)"
check_eq "a1: digest is paraflow digest's" \
    "$("$PARAFLOW" digest --chunk-size 64K "$T/a1" | cut -d' ' -f1)" \
    "$(jget digest)"
check "a1: finished_at set" [ "$(jget finished_at)" != null ]
check_eq "a1: error null" null "$(jget error)"
check_eq "a1: error_message null" null "$(jget error_message)"
check "a1: client_addr is 127.0.0.1:PORT ($(jget client_addr))" \
    grep -Eq '^127\.0\.0\.1:[0-9]+$' <<<"$(jget client_addr)"
created=$(jget created_at)
check "a1: created_at <= updated_at <= finished_at" "$PY" -c '
import sys
from datetime import datetime
t = [datetime.fromisoformat(x.replace("Z", "+00:00")) for x in sys.argv[1:]]
sys.exit(not t[0] <= t[1] <= t[2])' "$created" "$(jget updated_at)" \
    "$(jget finished_at)"

req "${ALICE[@]}" "/api/v1/sessions/$a1/chunks"
expect_status "alice GETs a1's chunk map" 200 ChunkMap
check_eq "a1's chunk map: every chunk d" "dd" "$(jget map)"
check_eq "a1's chunk map: id" "$a1" "$(jget id)"
check_eq "a1's chunk map: chunks_total" 2 "$(jget chunks_total)"
check_eq "a1's chunk map: chunk_size" 65536 "$(jget chunk_size)"

# --- One user cannot see another's sessions; an admin sees all -------------

req "${ALICE[@]}" "/api/v1/sessions/$(cat /proc/sys/kernel/random/uuid)"
expect_error "an unknown session" 404 not_found
unknown=$(sed "s/$(jget_id_re)/ID/g" "$T/b")
req "${ALICE[@]}" "/api/v1/sessions/$b1"
expect_error "alice GETs bob's session" 404 not_found
check_eq "... answered as if it did not exist (the id aside)" "$unknown" \
    "$(sed "s/$(jget_id_re)/ID/g" "$T/b")"
req "${ALICE[@]}" "/api/v1/sessions/$b1/chunks"
expect_error "alice GETs bob's chunk map" 404 not_found
req "${ALICE[@]}" "/api/v1/sessions/$b1/file"
expect_error "alice GETs bob's file" 404 not_found
req "${ALICE[@]}" -X DELETE "/api/v1/sessions/$b1"
expect_error "alice DELETEs bob's session" 404 not_found
check "... and bob's file is still stored" \
    test -f "$(stored_file "$b1" b1.bin)"

req "${ALICE[@]}" /api/v1/sessions
expect_status "alice lists" 200 SessionList
check_eq "alice's list: her two, newest first" "$a2 $a1" "$(ids)"
check_eq "alice's list: total" 2 "$(jget total)"
check_eq "alice's list: offset 0 by default" 0 "$(jget offset)"
check_eq "alice's list: limit 50 by default" 50 "$(jget limit)"
check_eq "alice's list: next null" null "$(jget next)"
req "${BOB[@]}" /api/v1/sessions
expect_status "bob lists" 200 SessionList
check_eq "bob's list: his one" "$b1" "$(ids)"
req "${CAROL[@]}" /api/v1/sessions
expect_status "carol (--admin) lists" 200 SessionList
check_eq "carol's list: all three, newest first" "$b1 $a2 $a1" "$(ids)"
req "${CAROL[@]}" "/api/v1/sessions/$b1"
expect_status "carol GETs bob's session" 200 Session
check_eq "... user bob" bob "$(jget user)"
req "${CAROL[@]}" "/api/v1/sessions/$a1/chunks"
expect_status "carol GETs alice's chunk map" 200 ChunkMap

req "${ALICE[@]}" /api/v1/stats
expect_status "alice GETs stats" 200 Stats
check_eq "alice's stats: complete counts her two" 2 \
    "$(jget sessions.complete)"
cp "$T/b" "$T/stats.alice"
req "${CAROL[@]}" /api/v1/stats
expect_status "carol GETs stats" 200 Stats
check_eq "carol's stats: complete counts all three" 3 \
    "$(jget sessions.complete)"
check_eq "stats: server-wide bytes_received, the same for both" \
    "$(jget bytes_received "$T/stats.alice")" "$(jget bytes_received)"
check "stats: bytes_received covers the three uploads" \
    [ "$(jget bytes_received)" -ge $((100000 + 5 * 1024 * 1024 + 3 + 70000)) ]
check "stats: chunks_acked covers them (5)" [ "$(jget chunks_acked)" -ge 5 ]
check_eq "stats: version is paraflowd's" \
    "$("$PARAFLOWD" --version | cut -d' ' -f2)" "$(jget version)"
check_eq "stats: throughput.interval_s" 1 "$(jget throughput.interval_s)"

# --- An upload held open: the file is not ready, DELETE cancels it ---------
#
# pfwire (the tests' own client) opens a 3-chunk session as alice, sends
# one chunk and waits for a word on its stdin: "send" tries the next chunk
# and prints the answer; "join" and "resume" try a new data connection and
# a new login on the session, and print the error they get.

cat >"$T/held.py" <<'EOF'
import base64, os, sys
import pfwire as w

port = sys.argv[1]
cs = 65536
data = b"pf-data " + os.urandom(3 * cs - 8)
c = w.connect(port)
w.hello(c)
key = w.scram_login(c, "alice", "alice-pw")
opened = w.open_session(c, "held.bin", data, chunk_size=cs)
sid = opened["session"]
d = w.connect(port)
w.join(d, key, sid)
w.send_chunk(d, 0, 0, data[:cs])
w.expect(d, w.ACK)
print("session", sid, flush=True)
i = 1
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "join":
        # A new data connection, as a reconnecting client makes one.
        j = w.connect(port)
        w.send_join(j, sid, w.join_proof(key, sid, w.hello(j)))
        print("join", w.error_name(j), flush=True)
        continue
    if cmd == "resume":
        # A new login that resumes the session, as a rerun does.
        r = w.connect(port)
        w.hello(r)
        w.scram_login(r, "alice", "alice-pw")
        w.send_json(r, w.OPEN, {"name": "held.bin", "size": len(data),
                                "chunk_size": cs, "resume": sid,
                                "head": base64.b64encode(
                                    data[:w.HEAD_LEN]).decode("ascii")})
        print("resume", w.error_name(r), flush=True)
        continue
    if cmd != "send":
        break
    try:
        w.send_chunk(d, i, i * cs, data[i * cs:(i + 1) * cs])
        print("ack", w.expect(d, w.ACK), flush=True)
        i += 1
    except w.WireError as e:
        print("error", e.name, flush=True)
    except OSError as e:
        print("oserror", e.__class__.__name__, flush=True)
EOF
mkfifo "$T/held.in"
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 "$T/held.py" "$PORT" \
    <"$T/held.in" >"$T/held.out" 2>"$T/held.err" &
held_pid=$!
PIDS+=("$held_pid")
exec 7>"$T/held.in"
wait_file "$T/held.out" 60
held=$(sed -n 's/^session //p' "$T/held.out")
check "held upload: opened ($held)" grep -Eq "$UUID_RE" <<<"$held"
[ -n "$held" ] || sed 's/^/# /' "$T/held.err"

req "${ALICE[@]}" "/api/v1/sessions/$held"
expect_status "held session" 200 Session
check_eq "held session: receiving" receiving "$(jget state)"
check_eq "held session: 1 chunk acked" 1 "$(jget chunks_acked)"
check_eq "held session: 3 chunks" 3 "$(jget chunks_total)"
check_eq "held session: 1 stream" 1 "$(jget streams)"
check_eq "held session: finished_at null" null "$(jget finished_at)"
check_eq "held session: digest null" null "$(jget digest)"
req "${ALICE[@]}" "/api/v1/sessions/$held/chunks"
expect_status "held session's chunk map" 200 ChunkMap
check_eq "held session's chunk map: d.." "d.." "$(jget map)"
req "${ALICE[@]}" "/api/v1/sessions?state=receiving"
expect_status "list state=receiving" 200 SessionList
check_eq "list state=receiving: the held one" "$held" "$(ids)"
req "${ALICE[@]}" /api/v1/stats
check_eq "stats: one receiving" 1 "$(jget sessions.receiving)"
req "${BOB[@]}" /api/v1/stats
check_eq "bob's stats: none receiving" 0 "$(jget sessions.receiving)"
req "${ALICE[@]}" "/api/v1/sessions/$held/file"
expect_error "the file of a session still receiving" 409 not_finished
req "${ALICE[@]}" -I "/api/v1/sessions/$held/file"
check_eq "HEAD: the file of a session still receiving: 409" 409 "$CODE"
req "${BOB[@]}" -X DELETE "/api/v1/sessions/$held"
expect_error "bob DELETEs alice's upload" 404 not_found

req "${ALICE[@]}" -X DELETE "/api/v1/sessions/$held"
expect_status "DELETE of the held upload" 200 DeleteResult
check_eq "... action cancelled" cancelled "$(jget action)"
check_eq "... id" "$held" "$(jget id)"
echo send >&7
wait_for 60 grep -q '^\(ack\|error\|oserror\)' "$T/held.out"
check_eq "the held client's next chunk gets the cancelled error" \
    "error cancelled" "$(grep -m1 '^\(ack\|error\|oserror\)' "$T/held.out")"
echo join >&7
wait_for 60 grep -q '^join' "$T/held.out"
check_eq "a data connection joining it later: cancelled, not unknown" \
    "join cancelled" "$(grep -m1 '^join' "$T/held.out")"
echo resume >&7
wait_for 60 grep -q '^resume' "$T/held.out"
check_eq "a login resuming it later: cancelled (so a rerun stops)" \
    "resume cancelled" "$(grep -m1 '^resume' "$T/held.out")"
exec 7>&-
wait "$held_pid" 2>/dev/null
check "cancelled: staging area empty" wait_for 30 staging_empty
check "cancelled: nothing stored" [ ! -e "$STORAGE/$held" ]
req "${ALICE[@]}" "/api/v1/sessions/$held"
expect_status "cancelled session still listed" 200 Session
check_eq "cancelled session: state" cancelled "$(jget state)"
check_eq "cancelled session: error" cancelled "$(jget error)"
check "cancelled session: finished_at set" [ "$(jget finished_at)" != null ]
check_eq "cancelled session: no streams" 0 "$(jget streams)"
req "${ALICE[@]}" "/api/v1/sessions/$held/chunks"
expect_status "cancelled session's chunk map" 200 ChunkMap
check_eq "cancelled session's chunk map: as it ended" "d.." "$(jget map)"
req "${ALICE[@]}" "/api/v1/sessions/$held/file"
expect_error "the file of a cancelled session" 409 not_finished

# The real client, cancelled while it sends: 256 MiB in 64 KiB chunks,
# held to 8 MiB/s (32 s) so that it is still sending when the DELETE
# comes, however fast the machine and however slow the DELETE.
mkfile "$T/big" $((256 * 1024 * 1024))
upload_receiving alice "$T/big" --file "$T/big" --name big.bin \
    --chunk-size 64K --threads 2 --limit-rate 8M
big_pid=$UPLOAD_PID
big=$RECEIVING
if [ -n "$big" ]; then
	req "${ALICE[@]}" -X DELETE "/api/v1/sessions/$big"
	expect_status "DELETE while paraflow upload sends" 200 DeleteResult
	check_eq "... action cancelled" cancelled "$(jget action)"
	rc=0
	wait "$big_pid" || rc=$?
	check "the cancelled paraflow upload fails (exit $rc)" [ "$rc" -ne 0 ]
	check_eq "the cancelled paraflow upload: error.code cancelled" \
	    cancelled "$(jget error.code "$T/big.out")"
	check "cancelled upload: staging area empty" wait_for 30 staging_empty
	check "cancelled upload: nothing stored" [ ! -e "$STORAGE/$big" ]
	req "${ALICE[@]}" "/api/v1/sessions/$big"
	check_eq "cancelled upload: state cancelled" cancelled "$(jget state)"
	req "${ALICE[@]}" "/api/v1/sessions/$big/chunks"
	check "cancelled upload: map as it ended, not all d ($(jget map | \
	    cut -c1-40)...)" grep -q '[^d]' <<<"$(jget map)"
else
	not_ok "the 256 MiB upload was never seen receiving"
	wait "$big_pid"
fi
rm -f "$T/big"

# --- The list: order, filters, pages ----------------------------------------
#
# alice now has a2, a1 (complete) and two cancelled ones, newest first:
# big, held, a2, a1.

req "${ALICE[@]}" /api/v1/sessions
check_eq "alice's list: newest first, cancelled ones included" \
    "$big $held $a2 $a1" "$(ids)"
check "alice's list: created_at never increases" "$PY" -c '
import json, sys
s = [x["created_at"] for x in json.load(open(sys.argv[1]))["sessions"]]
sys.exit(s != sorted(s, reverse=True))' "$T/b"
req "${ALICE[@]}" "/api/v1/sessions?state=complete"
expect_status "state=complete" 200 SessionList
check_eq "state=complete: a2 a1" "$a2 $a1" "$(ids)"
check_eq "state=complete: total" 2 "$(jget total)"
req "${ALICE[@]}" "/api/v1/sessions?state=cancelled"
check_eq "state=cancelled: big held" "$big $held" "$(ids)"
req "${ALICE[@]}" "/api/v1/sessions?state=complete,cancelled"
check_eq "state=complete,cancelled: all four" "$big $held $a2 $a1" "$(ids)"
req "${ALICE[@]}" "/api/v1/sessions?state=failed,expired"
expect_status "state=failed,expired" 200 SessionList
check_eq "state=failed,expired: none" "0:" "$(jget total):$(ids)"
check_eq "state=failed,expired: next null" null "$(jget next)"
req "${ALICE[@]}" "/api/v1/sessions?state=receiving"
check_eq "state=receiving: none now" 0 "$(jget total)"

req "${ALICE[@]}" "/api/v1/sessions?limit=1"
expect_status "limit=1" 200 SessionList
check_eq "limit=1: the newest" "$big" "$(ids)"
check_eq "limit=1: total 4" 4 "$(jget total)"
check_eq "limit=1: limit" 1 "$(jget limit)"
check_eq "limit=1: next" "/api/v1/sessions?offset=1&limit=1" "$(jget next)"
# pages_of PATH: follows "next" from PATH as alice, 10 pages at the most;
# prints the number of pages, a colon, and the ids of each page, each
# after a space.
pages_of() {
	local got='' next=$1 pages=0
	while [ "$next" != null ] && [ "$pages" -lt 10 ]; do
		req "${ALICE[@]}" "$next"
		[ "$CODE" = 200 ] || break
		got="$got $(ids)"
		next=$(jget next)
		pages=$((pages + 1))
	done
	echo "$pages:$got"
}
# Follow next to the end: the same four, in the same order.
check_eq "paging by next with limit=1: four pages, newest first" \
    "4: $big $held $a2 $a1" "$(pages_of "/api/v1/sessions?limit=1")"
req "${ALICE[@]}" "/api/v1/sessions?offset=2&limit=1"
check_eq "offset=2&limit=1: a2" "$a2" "$(ids)"
check_eq "offset=2&limit=1: offset" 2 "$(jget offset)"
req "${ALICE[@]}" "/api/v1/sessions?offset=3&limit=2"
check_eq "offset=3&limit=2: the last one, next null" "$a1 null" \
    "$(ids) $(jget next)"
req "${ALICE[@]}" "/api/v1/sessions?offset=10"
expect_status "offset past the end" 200 SessionList
check_eq "offset past the end: no sessions, total 4, next null" \
    ":4:null" "$(ids):$(jget total):$(jget next)"
# next keeps the filter.
check_eq "paging state=complete by next: the filter is kept" \
    "2: $a2 $a1" "$(pages_of "/api/v1/sessions?state=complete&limit=1")"
req "${ALICE[@]}" "/api/v1/sessions?limit=500"
expect_status "limit=500" 200 SessionList
for q in state=bogus state=complete,bogus limit=0 limit=501 limit=x \
    limit=-1 offset=-1 offset=x limit=1.5; do
	req "${ALICE[@]}" "/api/v1/sessions?$q"
	expect_error "list ?$q" 400 bad_request
done

# --- Framing: where a body ends is read one way only (no smuggling) --------

# framing REQUEST: the statuses answered on one raw connection to REQUEST
# (\r\n escapes), then "closed" once the gateway closed it.
framing() {
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" "$PY" - \
	    "${HTTP_URL##*:}" "$1" <<'PY'
import socket, sys
from gwconn import connect
s = connect(int(sys.argv[1]), timeout=20)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
got, end = b"", "open"
try:
    while True:
        b = s.recv(65536)
        if not b:
            end = "closed"
            break
        got += b
except (socket.timeout, OSError):
    pass
print(" ".join([l.split()[1].decode() for l in got.split(b"\r\n")
                if l.startswith(b"HTTP/1.1 ")] + [end]))
PY
}
NEXT='GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
check_eq "Content-Length twice, the same: taken" "200 closed" \
    "$(framing "GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")"
check_eq "Content-Length twice, differing: 400, the rest never read" \
    "400 closed" "$(framing "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 59\r\n\r\n$NEXT")"
check_eq "Content-Length and Transfer-Encoding: 400, the rest never read" \
    "400 closed" "$(framing "POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$NEXT")"
check_eq "a Transfer-Encoding other than chunked: 501" "501 closed" \
    "$(framing "POST /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n$NEXT")"

# --- Errors ------------------------------------------------------------------

for p in /nope /api /api/v1 /api/v1/sessionsx /api/v2/sessions \
    "/api/v1/sessions/$a1/nope" "/api/v1/sessions/$a1/chunks/x"; do
	req "${ALICE[@]}" "$p"
	expect_error "unknown path $p" 404 not_found
done
req /nope
expect_error "unknown path without credentials" 404 not_found
for p in not-a-uuid "${a1:0:35}" "${a1}0" "${a1//-/}" \
    "${a1:0:35}g"; do
	req "${ALICE[@]}" "/api/v1/sessions/$p"
	expect_error "session id '$p'" 400 bad_request
done
req "${ALICE[@]}" /api/v1/sessions/not-a-uuid/chunks
expect_error "chunks of a non-UUID id" 400 bad_request
req "${ALICE[@]}" /api/v1/sessions/not-a-uuid/file
expect_error "file of a non-UUID id" 400 bad_request
req "${ALICE[@]}" -X DELETE /api/v1/sessions/not-a-uuid
expect_error "DELETE of a non-UUID id" 400 bad_request

# allow_has METHOD...: the last Allow header lists each METHOD.
# shellcheck disable=SC2317 # called through check
allow_has() {
	local a m
	a=$(hdr Allow | tr -d ' ')
	for m in "$@"; do
		grep -Eq "(^|,)$m(,|$)" <<<"$a" || return 1
	done
}
# allow_lacks METHOD...: the last Allow header lists none of them.
# shellcheck disable=SC2317 # called through check
allow_lacks() {
	local a m
	a=$(hdr Allow | tr -d ' ')
	for m in "$@"; do
		grep -Eq "(^|,)$m(,|$)" <<<"$a" && return 1
	done
	return 0
}
not_allowed() {
	local method=$1 path=$2
	shift 2
	req "${ALICE[@]}" -X "$method" "$path"
	expect_error "$method $path" 405 method_not_allowed
	check "$method $path: Allow lists $* ($(hdr Allow))" allow_has "$@"
	check "$method $path: Allow does not list $method" allow_lacks "$method"
}
not_allowed POST /api/v1/sessions GET
not_allowed PUT "/api/v1/sessions/$a1" GET DELETE
not_allowed PATCH "/api/v1/sessions/$a1" GET DELETE
not_allowed POST "/api/v1/sessions/$a1/chunks" GET
not_allowed DELETE "/api/v1/sessions/$a1/file" GET HEAD
not_allowed POST /api/v1/stats GET
not_allowed DELETE /api/v1/events GET
not_allowed POST /healthz GET
not_allowed PUT /metrics GET
req -X DELETE /readyz
expect_error "DELETE /readyz without credentials" 405 method_not_allowed

head -c 5000 /dev/zero | tr '\0' x >"$T/5k"
req "${ALICE[@]}" -X GET --data-binary @"$T/5k" /api/v1/stats
expect_error "a 5000-byte request body" 413 too_large
check_eq "a 1 MiB request body: 413 once it is in" "after its body: 413" \
    "$(slow_body $((1024 * 1024)) GET /api/v1/stats)"
head -c 4096 /dev/zero | tr '\0' x >"$T/4k"
req "${ALICE[@]}" -X GET --data-binary @"$T/4k" /api/v1/stats
check_eq "a 4096-byte request body is not too large" 200 "$CODE"

# --- The route table: methods, access kinds, the 404 ----------------------
#
# Each route answers a method it does not take with 405 and exactly the
# Allow of its line in src/httpd/routes.c; the checks before (login,
# session id) come first.

allow_is() {
	local method=$1 path=$2 allow=$3
	req "${ALICE[@]}" -X "$method" "$path"
	expect_error "$method $path" 405 method_not_allowed
	check_eq "$method $path: Allow" "$allow" "$(hdr Allow)"
}
for m in POST PUT DELETE; do
	allow_is "$m" /healthz "GET, HEAD"
	allow_is "$m" /readyz "GET, HEAD"
	allow_is "$m" /metrics "GET, HEAD"
	allow_is "$m" /api/v1/sessions "GET, HEAD"
	allow_is "$m" "/api/v1/sessions/$a1/file" "GET, HEAD"
	allow_is "$m" "/api/v1/sessions/$a1/chunks" "GET, HEAD"
	allow_is "$m" /api/v1/stats "GET, HEAD"
	allow_is "$m" /api/v1/events GET
done
for m in POST PUT PATCH OPTIONS; do
	allow_is "$m" "/api/v1/sessions/$a1" "GET, HEAD, DELETE"
done
for m in GET PUT DELETE; do
	allow_is "$m" "/api/v1/sessions/$a1/link" POST
done
req "${ALICE[@]}" -I /api/v1/events
check_eq "HEAD /api/v1/events: 405" 405 "$CODE"
check_eq "HEAD /api/v1/events: Allow" GET "$(hdr Allow)"
req "${ALICE[@]}" -I "/api/v1/sessions/$a1/link"
check_eq "HEAD .../link: 405" 405 "$CODE"
check_eq "HEAD .../link: Allow" POST "$(hdr Allow)"

# The login comes before the method, the session id before the method.
req -X POST /api/v1/stats
expect_error "POST /api/v1/stats without credentials" 401 unauthorized
req -X PUT "/api/v1/sessions/$a1"
expect_error "PUT a session without credentials" 401 unauthorized
req "${ALICE[@]}" -X PUT /api/v1/sessions/not-a-uuid
expect_error "PUT of a non-UUID id" 400 bad_request
req "${ALICE[@]}" -X POST /api/v1/sessions/not-a-uuid/link
expect_error "POST link of a non-UUID id" 400 bad_request
req "${ALICE[@]}" /api/v1/sessions/not-a-uuid/nope
expect_error "an unknown path under a non-UUID id" 400 bad_request
req "${ALICE[@]}" /api/v1/sessions/
expect_error "/api/v1/sessions/ (an empty id)" 400 bad_request

# Under /api, an unknown path is the JSON 404, after the login.
for p in /api/v1/nope /api/v1/ /api/v1/stats/x /api/v1/events/x \
    "/api/v1/sessions/$a1/" \
    "/api/v1/sessions/$a1/file/x" "/api/v1/sessions/$a1/link/x"; do
	req "${ALICE[@]}" "$p"
	expect_error "unknown path $p" 404 not_found
	check "unknown path $p: JSON" \
	    grep -q '^application/json' <<<"$(hdr Content-Type)"
	req "$p"
	expect_error "unknown path $p without credentials" 401 unauthorized
done
for m in POST DELETE PUT; do
	req "${ALICE[@]}" -X "$m" /api/v1/nope
	expect_error "$m /api/v1/nope" 404 not_found
	req -X "$m" /nope
	expect_error "$m /nope (no dashboard)" 404 not_found
done

# A download link opens the file of its session and nothing else: every
# other route wants a login, whatever the token.
req "${ALICE[@]}" -X POST "/api/v1/sessions/$a1/link"
expect_status "a link to a1" 200 DownloadLink
tok=$(jget url)
tok=${tok##*token=}
req "/api/v1/sessions/$a1/file?token=$tok"
check_eq "a1's link opens a1's file" 200 "$CODE"
req -I "/api/v1/sessions/$a1/file?token=$tok"
check_eq "a1's link: HEAD too" 200 "$CODE"
for ep in "GET /api/v1/sessions" "GET /api/v1/sessions/$a1" \
    "DELETE /api/v1/sessions/$a1" "GET /api/v1/sessions/$a1/chunks" \
    "POST /api/v1/sessions/$a1/link" "GET /api/v1/stats" \
    "GET /api/v1/events" "GET /api/v1/nope" "GET /api" \
    "GET /api/v1/sessions/$a1/nope" "GET /api/v1/sessions/$a1/x/file" \
    "GET /api/v1/sessions/$a2/chunks"; do
	req -X "${ep% *}" "${ep#* }?token=$tok"
	expect_error "$ep with a1's link" 401 unauthorized
	check_eq "$ep with a1's link: WWW-Authenticate" "$WWW" \
	    "$(hdr WWW-Authenticate)"
done
req "/api/v1/sessions/$a2/file?token=$tok"
expect_error "a1's link on a2's file" 403 link_expired
req "/api/v1/sessions/$b1/file?token=$tok"
expect_error "a1's link on bob's file" 403 link_expired
req -X DELETE "/api/v1/sessions/$a1/file?token=$tok"
expect_error "DELETE of a1's file with its link" 405 method_not_allowed
check_eq "DELETE of a1's file with its link: Allow" "GET, HEAD" \
    "$(hdr Allow)"
req -X DELETE "/api/v1/sessions/$a1/file?token=bad"
expect_error "DELETE with a bad link: the method first" 405 \
    method_not_allowed
req "/api/v1/sessions/not-a-uuid/file?token=$tok"
expect_error "a link on a non-UUID id" 400 bad_request
req "${ALICE[@]}" "/api/v1/sessions/$a1"
check_eq "a1 is still there after all that" 200 "$CODE"
req "${BOB[@]}" "/api/v1/sessions/$a1/file?token=$tok"
check_eq "a link stands for its own login: bob's credentials aside, 200" \
    200 "$CODE"

# --- DELETE of finished sessions ---------------------------------------------

req "${ALICE[@]}" -X DELETE "/api/v1/sessions/$a1"
expect_status "alice DELETEs a1" 200 DeleteResult
check_eq "... action deleted" deleted "$(jget action)"
check_eq "... id" "$a1" "$(jget id)"
check "a1: its directory is gone from storage" [ ! -e "$STORAGE/$a1" ]
req "${ALICE[@]}" "/api/v1/sessions/$a1"
expect_error "a1 after DELETE" 404 not_found
req "${ALICE[@]}" "/api/v1/sessions/$a1/file"
expect_error "a1's file after DELETE" 404 not_found
req "${ALICE[@]}" "/api/v1/sessions/$a1/chunks"
expect_error "a1's chunk map after DELETE" 404 not_found
req "${ALICE[@]}" -X DELETE "/api/v1/sessions/$a1"
expect_error "a1 DELETEd again" 404 not_found
req "${ALICE[@]}" /api/v1/sessions
check_eq "a1 no longer listed" "$big $held $a2" "$(ids)"
req "${CAROL[@]}" -X DELETE "/api/v1/sessions/$b1"
expect_status "carol (--admin) DELETEs bob's b1" 200 DeleteResult
check_eq "... action deleted" deleted "$(jget action)"
check "b1: its directory is gone" [ ! -e "$STORAGE/$b1" ]
req "${BOB[@]}" "/api/v1/sessions/$b1"
expect_error "bob's b1 after carol's DELETE" 404 not_found
req "${ALICE[@]}" /api/v1/stats
check_eq "alice's stats after the DELETE: one complete" 1 \
    "$(jget sessions.complete)"
check_eq "alice's stats: two cancelled" 2 "$(jget sessions.cancelled)"
stop_server

# --- --http-auth-all ---------------------------------------------------------

start_gw --users "$U" --http-auth-all
for p in /healthz /readyz /metrics; do
	req "$p"
	expect_error "--http-auth-all: $p without credentials" 401 unauthorized
	check_eq "--http-auth-all: $p: WWW-Authenticate" "$WWW" \
	    "$(hdr WWW-Authenticate)"
	req "${BOB[@]}" "$p"
	check_eq "--http-auth-all: $p with bob's password" 200 "$CODE"
	req "$p?token=x"
	expect_error "--http-auth-all: $p with a token, no login" 401 \
	    unauthorized
	req -X POST "$p"
	expect_error "--http-auth-all: POST $p: the login first" 401 \
	    unauthorized
done
req "${ALICE[@]}" /api/v1/sessions
expect_status "after a restart: alice's list" 200 SessionList
check_eq "after a restart: only her complete a2 (read back from storage)" \
    "$a2" "$(ids)"
stop_server

# --- Password guessing: the login throttle (more in t_abuse_login.sh) --------
#
# After 5 wrong passwords, bob from this address waits 1 s, then 2, 4, ...
# (wrong guesses sleep out the shorter waits, up to one of 8 s, so that
# the next checks happen well within it even on a loaded machine).

start_gw --users "$U"
req "${ALICE[@]}" /api/v1/stats
check_eq "alice signs in (her login is cached)" 200 "$CODE"
codes=
for ((i = 1; i <= 20; i++)); do
	req -u "bob:guess-$i" /api/v1/stats
	codes="$codes $CODE"
	[ "$CODE" = 429 ] || continue
	[ "$(hdr Retry-After)" -ge 8 ] && break
	sleep "$(hdr Retry-After)"
done
echo "# wrong passwords for bob:$codes"
check_eq "5 wrong passwords: each 401" " 401 401 401 401 401" \
    "${codes:0:20}"
expect_error "then bob waits" 429 too_many_requests
check "... with Retry-After: the seconds left (4 or more by now)" \
    [ "$(hdr Retry-After)" -ge 4 ]
req "${BOB[@]}" /api/v1/stats
expect_error "even bob's right password, from this address, waits" 429 \
    too_many_requests
req "${ALICE[@]}" /api/v1/stats
check_eq "alice's login still works" 200 "$CODE"
req /metrics
failures=$(sed -n 's/^paraflow_auth_failures_total //p' "$T/b")
check_eq "auth failures counted: the 401s (the refused ran no PBKDF2)" \
    "$(grep -o 401 <<<"$codes" | wc -l)" "$failures"
stop_server

# --- /readyz and an unwritable storage directory ------------------------------
#
# The server probes through a directory descriptor it holds, so a
# read-only bind mount over the path would not touch it: as root the
# storage is a tmpfs of the test's mount namespace, remounted read-only;
# otherwise the directories lose their write permission.

ro=no
if [ "$(id -u)" -ne 0 ]; then
	ro="chmod"
elif [ -n "${PF_NS:-}" ] &&
    mount -t tmpfs -o size=64m tmpfs "$STORAGE" 2>/dev/null; then
	ro="mount"
	# The mount must go before the scratch directory can.
	# shellcheck disable=SC2317 # called by the EXIT trap
	unmount_all() {
		stop_all
		umount "$STORAGE" 2>/dev/null
		cleanup
	}
	trap unmount_all EXIT
fi
if [ "$ro" != no ]; then
	start_gw --users "$U"
	req /readyz
	expect_status "/readyz on a writable $ro storage" 200 Ready
	if [ "$ro" = chmod ]; then
		chmod a-w "$STORAGE" "$STORAGE/.staging"
	else
		mount -o remount,ro "$STORAGE"
	fi
	req /readyz
	expect_error "/readyz on a read-only storage directory ($ro)" 503 \
	    not_ready
	req /healthz
	check_eq "/healthz still 200 meanwhile" 200 "$CODE"
	if [ "$ro" = chmod ]; then
		chmod u+w "$STORAGE" "$STORAGE/.staging"
	else
		mount -o remount,rw "$STORAGE"
	fi
	req /readyz
	expect_status "/readyz once storage is writable again" 200 Ready
	stop_server
else
	ok "/readyz on a read-only storage # SKIP root without a mount namespace"
fi

# --- The dashboard's files (--www): only what is beneath it ------------------

W=$T/www
mkdir -p "$W/js" "$T/outside"
echo '<!doctype html><title>t</title>' >"$W/index.html"
echo 'export const x = 1;' >"$W/js/app.js"
echo 'secret' >"$T/outside/secret.js"
echo 'hidden' >"$W/.hidden"
ln -s "$T/outside" "$W/linkdir"
ln -s "$T/outside/secret.js" "$W/link.js"
start_gw --users "$U" --www "$W"
req /
check_eq "/: index.html" 200 "$CODE"
check_eq "/: text/html" "text/html; charset=utf-8" "$(hdr Content-Type)"
check "/: a Content-Security-Policy" grep -qi \
    "^Content-Security-Policy: default-src 'self'" "$T/h"
req /js/app.js
check_eq "/js/app.js: 200, a JavaScript module" \
    "200 text/javascript; charset=utf-8" "$CODE $(hdr Content-Type)"
for p in /linkdir/secret.js /link.js /.hidden /js/../index.html \
    /js//app.js /nope.html; do
	req --path-as-is "$p"
	expect_error "$p: not served" 404 not_found
done
req -X POST /js/app.js
expect_error "POST /js/app.js" 405 method_not_allowed
check_eq "POST /js/app.js: Allow" "GET, HEAD" "$(hdr Allow)"
for m in POST DELETE; do
	req -X "$m" /nope.html
	expect_error "$m /nope.html: a missing file is 404 for any method" \
	    404 not_found
	req -X "$m" --path-as-is /.hidden
	expect_error "$m /.hidden: 404" 404 not_found
done
req "${ALICE[@]}" -X POST /api/v1/nope
expect_error "POST /api/v1/nope with the dashboard on" 404 not_found
stop_server

# --- --http-no-tls: plain HTTP as before, no HSTS --------------------------

start_gw --users "$U" --http-no-tls
check "--http-no-tls: an http:// gateway ($HTTP_URL)" \
    grep -q '^http://' <<<"$HTTP_URL"
req "${ALICE[@]}" /api/v1/sessions
expect_status "--http-no-tls: GET /api/v1/sessions" 200 SessionList
check_eq "--http-no-tls: no Strict-Transport-Security" "" \
    "$(hdr Strict-Transport-Security)"
CODE=$(curl -q -sS -k -o /dev/null -w '%{http_code}' --max-time 60 \
    "https://127.0.0.1:$HTTP_PORT/healthz" 2>"$T/curl.err") || CODE=000:$?
check "--http-no-tls: HTTPS to it fails (curl exit 35, $CODE)" \
    [ "$CODE" = 000:35 ]
stop_server

done_testing
