#!/bin/bash
# SPDX-License-Identifier: MIT
# The session list rendered once per change (issue 13), with curl, a real
# paraflowd and a hand-made client (pfwire.py) that uploads one chunk at
# a time:
#  - GET /api/v1/sessions carries a weak ETag, Cache-Control: private,
#    no-cache and Vary: Authorization; the same list twice is the same
#    bytes under the same ETag; If-None-Match with it (weak or strong, in
#    a list, or *) is a 304 without a body; another query, another ETag;
#  - every change is in the very next answer, with a new ETag, and an
#    old ETag then gets the new list (200): a new session, each chunk
#    acknowledged (chunks_acked, bytes_received), a DELETE that cancels,
#    a DELETE of a finished file; bytes of a chunk still arriving show
#    within a few of the monitor's samples;
#  - users never see each other's lists through the cache: alice, bob
#    and carol (--admin) ask for the same page in turns, each gets only
#    what is theirs (carol all), and alice's ETag is no 304 for bob;
#  - a list entry is what GET /api/v1/sessions/{id} says of the session;
#  - after a restart, the same list has another ETag.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
need_api_tools

add_users alice bob carol
ALICE=(-u alice:alice-pw)
BOB=(-u bob:bob-pw)
CAROL=(-u carol:carol-pw)
LIST=/api/v1/sessions

# The native port in plaintext, as in t_http.sh: pfwire logs in by hand.
start_gw --users "$U" --admin carol --no-tls
echo "# gateway at $HTTP_URL"

mkfile "$T/a1" 70000
mkfile "$T/a2" 1000
mkfile "$T/b1" 2000
upload_as alice "${NOTLS[@]}" --file "$T/a1" --quiet >/dev/null
upload_as alice "${NOTLS[@]}" --file "$T/a2" --quiet >/dev/null
upload_as bob "${NOTLS[@]}" --file "$T/b1" --quiet >/dev/null

# --- The headers, the same list twice, conditional requests -----------------

# settled CURL ARGS... PATH: the list shows no stream left on any session
# (a stream leaving is a change; a loaded machine may close the uploads'
# last connections late), and its ETag is the same twice, 0.3 s apart.
# shellcheck disable=SC2317 # called through wait_for
settled() {
	local a
	req "$@"
	"$PY" -c 'import json, sys
s = json.load(open(sys.argv[1]))["sessions"]
sys.exit(any(x.get("streams") for x in s))' "$T/b" 2>/dev/null || return 1
	a=$(hdr ETag)
	sleep 0.3
	req "$@"
	[ "$a" = "$(hdr ETag)" ]
}
# Bob's upload moves the same counters: carol (admin) sees it settle.
wait_for 60 settled "${CAROL[@]}" "$LIST"
wait_for 60 settled "${ALICE[@]}" "$LIST"
req "${ALICE[@]}" "$LIST"
expect_status "alice lists" 200 SessionList
ETAG=$(hdr ETag)
cp "$T/b" "$T/list1"
check "the list has a weak ETag (W/\"...\"): $ETAG" \
    grep -Eq '^W/"[0-9a-f]{24}"$' <<<"$ETAG"
check_eq "the list: Cache-Control" "private, no-cache" "$(hdr Cache-Control)"
check_eq "the list: Vary" "Authorization" "$(hdr Vary)"
check_eq "the list: Content-Type" "application/json" "$(hdr Content-Type)"
check_eq "the list: nosniff" "nosniff" "$(hdr X-Content-Type-Options)"
req "${ALICE[@]}" "$LIST"
check_eq "the same list again: the same ETag" "$ETAG" "$(hdr ETag)"
check "the same list again: the same bytes" cmp -s "$T/list1" "$T/b"

req "${ALICE[@]}" -H "If-None-Match: $ETAG" "$LIST"
check_eq "If-None-Match with the ETag: 304" 304 "$CODE"
check_eq "304: no body" 0 "$(wc -c <"$T/b")"
check_eq "304: its Content-Length is the 200's (RFC 9110 8.6)" \
    "$(wc -c <"$T/list1")" "$(hdr Content-Length)"
check_eq "304: the ETag" "$ETAG" "$(hdr ETag)"
check_eq "304: Cache-Control" "private, no-cache" "$(hdr Cache-Control)"
req "${ALICE[@]}" -H "If-None-Match: \"x\", $ETAG" "$LIST"
check_eq "If-None-Match with a list holding the ETag: 304" 304 "$CODE"
req "${ALICE[@]}" -H "If-None-Match: ${ETAG#W/}" "$LIST"
check_eq "If-None-Match with the strong form: 304 (weak comparison)" 304 \
    "$CODE"
req "${ALICE[@]}" -H "If-None-Match: *" "$LIST"
check_eq "If-None-Match: *: 304" 304 "$CODE"
req "${ALICE[@]}" -H 'If-None-Match: W/"0123456789abcdef01234567"' "$LIST"
check_eq "If-None-Match with another ETag: 200" 200 "$CODE"
check "... the list" cmp -s "$T/list1" "$T/b"
req "${ALICE[@]}" -I "$LIST"
check_eq "HEAD: 200 with the ETag" "200 $ETAG" "$CODE $(hdr ETag)"
req "${ALICE[@]}" "$LIST?limit=1"
expect_status "alice lists one" 200 SessionList
check "another query (limit=1): another ETag" test "$(hdr ETag)" != "$ETAG"
ETAG1=$(hdr ETag)
req "${ALICE[@]}" -H "If-None-Match: $ETAG" "$LIST?limit=1"
check_eq "another query with the first's ETag: 200" 200 "$CODE"
req "${ALICE[@]}" "$LIST?limit=1&state=complete"
check "a state filter: another ETag" test "$(hdr ETag)" != "$ETAG1"
check_eq "... its next link keeps the filter" \
    "/api/v1/sessions?offset=1&limit=1&state=complete" "$(jget next)"

# A list entry is what the session's own endpoint says (rate 0: ended).
A1=$(jget sessions.0.id "$T/list1")
"$PY" -c 'import json,sys
l = json.load(open(sys.argv[1]))["sessions"]
print(json.dumps([s for s in l if s["id"] == sys.argv[2]][0], sort_keys=True))' \
    "$T/list1" "$A1" >"$T/entry"
req "${ALICE[@]}" "$LIST/$A1"
"$PY" -c 'import json,sys
print(json.dumps(json.load(open(sys.argv[1])), sort_keys=True))' "$T/b" \
    >"$T/one"
check "a cached list entry is GET /sessions/{id}'s session" \
    cmp -s "$T/entry" "$T/one"

# --- Users never see each other's lists through the cache -------------------

# own USER WANT: true if the last list holds only USER's sessions and all of
# them (carol: everyone's): the users in WANT, sorted.
# shellcheck disable=SC2317 # called through check too
own() {
	"$PY" -c 'import json,sys
l = json.load(open(sys.argv[1]))
users = sorted(s["user"] for s in l["sessions"])
want = sys.argv[3].split()
sys.exit(0 if users == want and l["total"] == len(want) else 1)' \
	    "$T/b" "$1" "$2"
}
good=0
rounds=30
for i in $(seq $rounds); do
	req "${ALICE[@]}" "$LIST"
	own alice "alice alice" && good=$((good + 1))
	req "${BOB[@]}" "$LIST"
	own bob "bob" && good=$((good + 1))
	req "${CAROL[@]}" "$LIST"
	own carol "alice alice bob" && good=$((good + 1))
done
check_eq "alice, bob and carol in turns, $rounds rounds: each saw only \
theirs (carol all)" $((3 * rounds)) "$good"
req "${BOB[@]}" "$LIST"
ETAG_BOB=$(hdr ETag)
check "bob's ETag is not alice's" test "$ETAG_BOB" != "$ETAG"
req "${BOB[@]}" -H "If-None-Match: $ETAG" "$LIST"
check_eq "bob with alice's ETag: 200" 200 "$CODE"
check "... and his own list" own bob "bob"
req "${CAROL[@]}" "$LIST"
check "carol's (admin) ETag is neither" test "$(hdr ETag)" != "$ETAG" -a \
    "$(hdr ETag)" != "$ETAG_BOB"

# --- Every change in the next answer -----------------------------------------

cat >"$T/steps.py" <<'EOF'
import http.client
import json
import os
import ssl
import sys
import time

import pfwire as w

port, hport, auth = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
CS = 1024 * 1024
data = os.urandom(3 * CS)


def report(good, desc, detail=""):
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)


def call(method, path, inm=None):
    """(status, ETag, parsed body or None) of one request."""
    if os.environ.get("PF_GW_CA"):
        ctx = ssl.create_default_context(cafile=os.environ["PF_GW_CA"])
        c = http.client.HTTPSConnection("127.0.0.1", hport, context=ctx,
                                        timeout=20)
    else:
        c = http.client.HTTPConnection("127.0.0.1", hport, timeout=20)
    hdrs = {"Authorization": "Basic " + auth}
    if inm:
        hdrs["If-None-Match"] = inm
    c.request(method, path, headers=hdrs)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("ETag"), json.loads(body) if body else None


def mine(body, sid):
    for s in body["sessions"]:
        if s["id"] == sid:
            return s
    return None


_, etag, _ = call("GET", "/api/v1/sessions")
ctrl = w.connect(port)
w.hello(ctrl)
key = w.scram_login(ctrl, "alice", "alice-pw")
opened = w.open_session(ctrl, "steps.bin", data, chunk_size=CS)
sid = opened["session"]
st, new, body = call("GET", "/api/v1/sessions", inm=etag)
s = mine(body, sid) if body else None
report(st == 200 and new != etag and s is not None and
       s["state"] == "receiving" and s["chunks_acked"] == 0,
       "a new session: in the next list, a new ETag, a 200 for the old",
       "status %s, %s -> %s, %s" % (st, etag, new, s))
etag = new
d = w.connect(port)
w.join(d, key, sid)
st, new, body = call("GET", "/api/v1/sessions")
s = mine(body, sid)
report(new != etag and s["streams"] == 1,
       "a stream joins: in the next list (streams 1)", "%s" % s)
etag = new
for i in range(2):
    w.send_chunk(d, i, i * CS, data[i * CS:(i + 1) * CS])
    acked = w.expect(d, w.ACK)
    st, new, body = call("GET", "/api/v1/sessions", inm=etag)
    s = mine(body, sid) if body else None
    report(st == 200 and acked == i and new != etag and s is not None and
           s["chunks_acked"] == i + 1 and
           s["bytes_received"] == (i + 1) * CS,
           "chunk %d ACKed: the next list shows it (chunks_acked %d, "
           "bytes_received %d), new ETag" % (i, i + 1, (i + 1) * CS),
           "status %s, %s" % (st, s))
    etag = new
# Three quarters of the last chunk: bytes arriving, no chunk done. The
# list may show them up to one monitor sample (250 ms) late: it catches
# up with the session's own endpoint (never cached) within a few.
part = w.chunk_payload(2, 2 * CS, data[2 * CS:])
d.sendall(w.header(w.CHUNK, len(part)) + part[:20 + 3 * CS // 4])
t0 = time.monotonic()
seen = one = None
while time.monotonic() - t0 < 10:
    _, _, body = call("GET", "/api/v1/sessions/" + sid)
    one = body["bytes_received"]
    st, new, body = call("GET", "/api/v1/sessions")
    seen = mine(body, sid)["bytes_received"]
    # An engine that counts bytes only per chunk shows 2 * CS to both.
    if seen == one and (seen > 2 * CS or time.monotonic() - t0 > 1):
        break
    time.sleep(0.05)
print("note\tbytes of a chunk still arriving (%s) listed after %.2f s" %
      (one, time.monotonic() - t0), flush=True)
report(seen == one and seen >= 2 * CS,
       "bytes of a chunk still arriving: the list catches up with "
       "GET /sessions/{id} (the monitor's samples)",
       "list %s, session %s" % (seen, one))
etag = new
st, _, body = call("DELETE", "/api/v1/sessions/" + sid)
report(st == 200 and body["action"] == "cancelled", "DELETE cancels it",
       "%s %s" % (st, body))
st, new, body = call("GET", "/api/v1/sessions", inm=etag)
s = mine(body, sid) if body else None
report(st == 200 and new != etag and s is not None and
       s["state"] == "cancelled",
       "the cancel: in the next list (cancelled), new ETag",
       "status %s, %s" % (st, s))
d.close()
ctrl.close()
EOF
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 "$T/steps.py" "$PORT" \
    "$HTTP_PORT" "$(printf alice:alice-pw | base64)" >"$T/py.out" \
    2>"$T/py.err"
check_eq "the Python part ran" 0 $?
sed 's/^/# /' "$T/py.err"
tap_from "$T/py.out"

# A finished file deleted: gone from the next list.
req "${ALICE[@]}" "$LIST"
ETAG=$(hdr ETag)
req "${ALICE[@]}" -X DELETE "$LIST/$A1"
check_eq "alice DELETEs a finished upload" 200 "$CODE"
req "${ALICE[@]}" -H "If-None-Match: $ETAG" "$LIST"
check_eq "the DELETE: the old ETag gets a 200" 200 "$CODE"
check "... without the file" test -z "$(grep -o "$A1" "$T/b")"
ETAG=$(hdr ETag)
# A new upload, finished: in the next list.
upload_as alice "${NOTLS[@]}" --file "$T/a2" --quiet >/dev/null
req "${ALICE[@]}" -H "If-None-Match: $ETAG" "$LIST"
check_eq "a new upload: the old ETag gets a 200" 200 "$CODE"
check_eq "... with the upload (total 3: a2 twice, the cancelled)" 3 \
    "$(jget total)"

# --- A restart: the same list, another ETag ---------------------------------

req "${ALICE[@]}" "$LIST?state=complete"
ETAG=$(hdr ETag)
cp "$T/b" "$T/before"
stop_server
start_gw --users "$U" --admin carol --no-tls
req "${ALICE[@]}" -H "If-None-Match: $ETAG" "$LIST?state=complete"
check_eq "after a restart, the old ETag: 200" 200 "$CODE"
check "... another ETag" test "$(hdr ETag)" != "$ETAG"
check_eq "... the same sessions" "$(jget total "$T/before")" "$(jget total)"

# --- The figures: many requests for the same list ---------------------------

t0=$(date +%s.%N)
n=200
for _ in $(seq $n); do
	echo "url = \"$HTTP_URL$LIST?limit=100\""
	echo "output = /dev/null"
done >"$T/many.cfg"
curl -sS -u alice:alice-pw --parallel --parallel-max 4 -K "$T/many.cfg" \
    2>"$T/many.err"
echo "# $n lists over 4 connections (one curl): $(awk -v t0="$t0" \
    -v t1="$(date +%s.%N)" -v n=$n 'BEGIN { printf "%.0f req/s", n / (t1 - t0) }')"

stop_server
done_testing
