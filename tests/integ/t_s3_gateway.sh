#!/bin/bash
# SPDX-License-Identifier: MIT
# The gateway on S3 storage: two paraflowd nodes on one bucket of a real
# Ceph RGW. An upload through node 1 is listed by node 2's gateway (real
# curl, its JSON as docs/openapi.yaml says), hidden from another user,
# and downloaded from node 2 byte for byte: whole, ranged (a range, an
# open-ended one, a suffix, a 416), HEAD, a signed link, paraflow fetch
# checking the receipt. A client killed mid-upload leaves a session node
# 2 lists as receiving with the chunks the store holds; DELETE through
# node 2 cancels it in the store (awscli: no multipart upload left).
# DELETE of a finished upload through node 2 deletes it: no object, no
# key, no node lists or serves it, a second DELETE is a 404, and the
# client run again from its state file uploads anew; through node 1,
# which took it, it is unlisted there at once.
# A tus create is refused (501: not served on S3 yet).
# /metrics of node 1 counts the store's part PUTs (promtool agrees).
# Last, the store stopped mid-download: the connection ends short, and
# a DELETE then answers 502 store_failed.
. "$(dirname "$0")/lib.sh"
. "$here/lib_http.sh"
. "$here/lib_s3.sh"

need_api_tools
command -v promtool >/dev/null 2>&1 || skip_all "promtool not found"
s3_start
B=pf-s3-gw
P=gw/
s3_bucket "$B"
MiB=$((1024 * 1024))
add_users alice bob
S3ARGS=(--storage "s3://$B/$P" --s3-endpoint "$S3_ENDPOINT" --users "$U")

# on N CMD...: CMD with PORT and HTTP_URL those of node N.
on() {
	local n=$1
	shift
	PORT=${NODE_PORT[$n]} HTTP_URL=${NODE_URL[$n]} "$@"
}

# listed N USER ID STATE: node N's gateway lists ID of USER in STATE.
listed() {
	on "$1" req -u "$2:$2-pw" "/api/v1/sessions?limit=500"
	[ "$CODE" = 200 ] && [ "$(jget_session "$3" state)" = "$4" ]
}

# jget_session ID FIELD: FIELD of session ID in the last list ("" if
# it is not listed).
jget_session() {
	"$PY" -c '
import json, sys
for s in json.load(open(sys.argv[3]))["sessions"]:
    if s["id"] == sys.argv[1]:
        v = s[sys.argv[2]]
        print("null" if v is None else v)' "$1" "$2" "$T/b"
}

# part BYTES_FROM COUNT: COUNT bytes of a.bin from offset BYTES_FROM,
# as dd reads them, hashed.
part() {
	dd if="$T/a.bin" bs=1M iflag=skip_bytes,count_bytes skip="$1" \
	    count="$2" status=none | sha256sum | cut -d' ' -f1
}

# stored N: how many chunks the nodes' log says went to S3.
stored() {
	grep -c 'stored in S3' "$T/server.log"
}

declare -a NODE_PORT NODE_URL NODE_PID
for n in 1 2; do
	start_gw -v "${S3ARGS[@]}" --node-dir "$T/node$n"
	NODE_PID[$n]=$SERVER_PID
	NODE_PORT[$n]=$PORT
	NODE_URL[$n]=$HTTP_URL
done
check "two nodes on bucket $B" test -n "${NODE_URL[1]}" -a \
    -n "${NODE_URL[2]}"

# --- an upload through node 1 (20 MiB: 3 chunks, the last 4 MiB)
SIZE=$((20 * MiB + 12345))
mkfile "$T/a.bin" "$SIZE"
out=$(on 1 upload_as alice --file "$T/a.bin" -c 8M --json)
A=$(json_field "$out" session)
RECEIPT=$(json_field "$out" digest)
check "paraflow upload through node 1 ($A)" test -n "$A" -a -n "$RECEIPT"

# --- node 2 lists it, as the store holds it
check "node 2 lists it as complete" wait_for 30 listed 2 alice "$A" complete
check "  the list is a SessionList" oa SessionList
check_eq "  name" a.bin "$(jget_session "$A" name)"
check_eq "  size" "$SIZE" "$(jget_session "$A" size)"
check_eq "  chunk_size" $((8 * MiB)) "$(jget_session "$A" chunk_size)"
check_eq "  chunks_total, chunks_acked" "3 3" \
    "$(jget_session "$A" chunks_total) $(jget_session "$A" chunks_acked)"
check_eq "  digest: the receipt the upload printed" "$RECEIPT" \
    "$(jget_session "$A" digest)"
check_eq "  user" alice "$(jget_session "$A" user)"
check "  finished_at set" test "$(jget_session "$A" finished_at)" != null
on 2 req -u alice:alice-pw "/api/v1/sessions/$A"
check_eq "GET /sessions/{id} on node 2: 200" 200 "$CODE"
check "  a Session" oa Session
check_eq "  complete" complete "$(jget state)"
on 2 req -u alice:alice-pw "/api/v1/sessions/$A/chunks"
check_eq "GET /chunks on node 2: ddd" "200 ddd" "$CODE $(jget map)"
check "  a ChunkMap" oa ChunkMap
on 2 req -u bob:bob-pw "/api/v1/sessions?limit=500"
check "bob's list on node 2 does not show alice's upload" \
    test "$CODE" = 200 -a -z "$(jget_session "$A" id)"
on 2 req -u bob:bob-pw "/api/v1/sessions/$A"
check_eq "  bob's GET of it: 404" 404 "$CODE"
on 2 req -u bob:bob-pw "/api/v1/sessions/$A/file"
check_eq "  bob's download of it: 404" 404 "$CODE"

# --- downloads from node 2, streamed from the store
on 2 req -u alice:alice-pw "/api/v1/sessions/$A/file"
check_eq "download from node 2: 200" 200 "$CODE"
check_eq "  byte for byte (SHA-256)" "$(sha "$T/a.bin")" "$(sha "$T/b")"
check_eq "  ETag: the receipt" "\"$RECEIPT\"" "$(hdr ETag)"
check "  Content-Disposition names a.bin" grep -qi \
    'content-disposition: attachment; filename="a.bin"' "$T/h"
check_eq "  Accept-Ranges" bytes "$(hdr Accept-Ranges)"
# One range over the first chunk boundary and several 1 MiB windows.
on 2 req -u alice:alice-pw -H "Range: bytes=100-$((9 * MiB + 99))" \
    "/api/v1/sessions/$A/file"
check_eq "Range bytes=100-$((9 * MiB + 99)): 206" 206 "$CODE"
check_eq "  Content-Range" "bytes 100-$((9 * MiB + 99))/$SIZE" \
    "$(hdr Content-Range)"
check_eq "  the bytes dd reads" "$(part 100 $((9 * MiB)))" "$(sha "$T/b")"
on 2 req -u alice:alice-pw -H "Range: bytes=$((15 * MiB))-" \
    "/api/v1/sessions/$A/file"
check_eq "open-ended Range: 206, the bytes dd reads" \
    "206 $(part $((15 * MiB)) $((SIZE - 15 * MiB)))" "$CODE $(sha "$T/b")"
on 2 req -u alice:alice-pw -H "Range: bytes=-777" "/api/v1/sessions/$A/file"
check_eq "suffix Range bytes=-777: 206, the bytes dd reads" \
    "206 $(part $((SIZE - 777)) 777)" "$CODE $(sha "$T/b")"
on 2 req -u alice:alice-pw -H "Range: bytes=$SIZE-" \
    "/api/v1/sessions/$A/file"
check_eq "Range past the end: 416" 416 "$CODE"
check_eq "  Content-Range bytes */SIZE" "bytes */$SIZE" "$(hdr Content-Range)"
on 2 req -u alice:alice-pw -I "/api/v1/sessions/$A/file"
check_eq "HEAD: 200" 200 "$CODE"
check_eq "  Content-Length" "$SIZE" "$(hdr Content-Length)"
check_eq "  ETag" "\"$RECEIPT\"" "$(hdr ETag)"
on 2 req -u alice:alice-pw -H "If-None-Match: \"$RECEIPT\"" \
    "/api/v1/sessions/$A/file"
check_eq "If-None-Match of the receipt: 304" 304 "$CODE"
on 2 req -u alice:alice-pw -X POST "/api/v1/sessions/$A/link"
LINK=$(jget url)
check "a signed link from node 2" test "$CODE" = 200 -a -n "$LINK"
on 2 req "$LINK"
check_eq "  without a login: 200, byte for byte" \
    "200 $(sha "$T/a.bin")" "$CODE $(sha "$T/b")"
run "$PARAFLOW" fetch "$A" -o "$T/got" --http "${NODE_URL[2]}" \
    --pin "$GW_PIN" --user alice --secret alice-pw
check_eq "paraflow fetch from node 2 (receipt checked): exit 0" 0 "$RC"
check_eq "  the file" "$(sha "$T/a.bin")" "$(sha "$T/got" 2>/dev/null)"

# --- a live session: the client killed mid-upload, node 2 sees it
mkfile "$T/c.bin" $((6 * 8 * MiB))
base=$(stored)
on 1 upload_as alice --file "$T/c.bin" -c 8M -t 2 --limit-rate 4M \
    >"$T/c.out" 2>&1 &
cpid=$!
PIDS+=("$cpid")
# stored_since BASE N: N chunks more than BASE went to the store.
stored_since() {
	[ $(($(stored) - $1)) -ge "$2" ]
}
wait_for 120 stored_since "$base" 2
signal_ours KILL "$cpid"
wait "$cpid" 2>/dev/null
HELD=$(($(stored) - base))
C=$(sed -n 's/.*session \([0-9a-f-]*\) opened by .*"c.bin".*/\1/p' \
    "$T/server.log" | tail -n 1)
echo "# $HELD of 6 chunks stored before the client was killed"
check "node 2 lists $C as receiving" wait_for 60 listed 2 alice "$C" \
    receiving
check_eq "  chunks_acked: those the store holds" "$HELD" \
    "$(jget_session "$C" chunks_acked)"
on 2 req -u alice:alice-pw "/api/v1/sessions/$C/chunks"
check_eq "  its chunk map on node 2: $HELD held" "$HELD" \
    "$(jget map | tr -cd d | wc -c)"
on 2 req -u bob:bob-pw -X DELETE "/api/v1/sessions/$C"
check_eq "bob's DELETE of it on node 2: 404" 404 "$CODE"
on 2 req -u alice:alice-pw -X DELETE "/api/v1/sessions/$C"
check_eq "DELETE through node 2: cancelled" "200 cancelled" \
    "$CODE $(jget action)"
check_eq "  awscli: no multipart upload left" 0 "$(s3_uploads "$B")"
check_eq "  awscli: no key of it left" "" "$(s3api list-objects-v2 \
    --bucket "$B" --prefix "$P.pf/s/$C/" --query 'Contents[].Key' \
    --output text | grep -v '^None$')"
on 2 req -u alice:alice-pw "/api/v1/sessions/$C/file"
check_eq "  its download from node 2: 404" 404 "$CODE"

# --- DELETE of a finished upload, through node 2, which did not take
# it: the object and every key of it go, no node lists or serves it, a
# second DELETE is a 404, and the client run again from its state file
# is told the session is unknown and uploads anew (as on local storage)
mkfile "$T/d.bin" $((9 * MiB + 7))
on 1 upload_as alice --file "$T/d.bin" -c 8M -t 1 --limit-rate 4M -v \
    >"$T/d.out" 2>&1 &
dpid=$!
PIDS+=("$dpid")
# d_state: the client's state file of d.bin once it names the session.
d_state() {
	local f
	for f in "$PARAFLOW_STATE_DIR"/*.json; do
		grep -q 'd\.bin' "$f" 2>/dev/null && grep -q '"session"' "$f" &&
		    echo "$f" && return 0
	done
	return 1
}
STATE=
wait_for 60 d_state >/dev/null && STATE=$(d_state) &&
    cp "$STATE" "$T/d.state"
drc=0
wait "$dpid" || drc=$?
D=$(sed -n 's/.*session \([0-9a-f-]*\) opened by .*"d.bin".*/\1/p' \
    "$T/server.log" | tail -n 1)
check_eq "paraflow upload of d.bin through node 1 ($D): exit 0" 0 "$drc"
check "  its state file was copied mid-upload" test -s "$T/d.state"
check "node 1 lists it as complete" wait_for 30 listed 1 alice "$D" complete
check "node 2 lists it as complete" wait_for 30 listed 2 alice "$D" complete
on 2 req -u alice:alice-pw -X POST "/api/v1/sessions/$D/link"
DLINK=$(jget url)
check "a link to it from node 2" test "$CODE" = 200 -a -n "$DLINK"
on 2 req -u bob:bob-pw -X DELETE "/api/v1/sessions/$D"
check_eq "bob's DELETE of it on node 2: 404" 404 "$CODE"
on 2 req -u alice:alice-pw -X DELETE "/api/v1/sessions/$D"
check_eq "DELETE of the finished one through node 2: deleted" \
    "200 deleted" "$CODE $(jget action)"
check "  a DeleteResult" oa DeleteResult
check_eq "  awscli: no object" "" "$(s3_size "$B" "${P}files/$D/d.bin")"
# keys_of ID: the keys awscli lists of session ID, object and store's.
keys_of() {
	local p
	for p in "${P}files/$1/" "$P.pf/s/$1/"; do
		s3api list-objects-v2 --bucket "$B" --prefix "$p" \
		    --query 'Contents[].Key' --output text | grep -v '^None$'
	done
}
check_eq "  awscli: no key under files/$D/ nor .pf/s/$D/" "" "$(keys_of "$D")"
check_eq "  awscli: no multipart upload" 0 "$(s3_uploads "$B")"
# unlisted N ID: node N's gateway answers the list, without ID.
unlisted() {
	on "$1" req -u alice:alice-pw "/api/v1/sessions?limit=500"
	[ "$CODE" = 200 ] && [ -z "$(jget_session "$2" id)" ]
}
check "  node 2 no longer lists it" wait_for 30 unlisted 2 "$D"
check "  nor node 1, which took it (its listing: 3 s)" wait_for 30 \
    unlisted 1 "$D"
for n in 1 2; do
	on "$n" req -u alice:alice-pw "/api/v1/sessions/$D"
	check_eq "  GET of it on node $n: 404" 404 "$CODE"
	on "$n" req -u alice:alice-pw "/api/v1/sessions/$D/file"
	check_eq "  its download from node $n: 404" 404 "$CODE"
	on "$n" req "$DLINK"
	check_eq "  the link made before, on node $n: 404" 404 "$CODE"
done
on 1 req -u alice:alice-pw -X DELETE "/api/v1/sessions/$D"
check_eq "a second DELETE (node 1): 404 not_found" "404 not_found" \
    "$CODE $(jget error.code)"
check "  the client's state file was removed once it completed" \
    test -n "$STATE" -a ! -e "$STATE"
cp "$T/d.state" "$STATE"
run "$PARAFLOW" upload --port "${NODE_PORT[1]}" "${NOTLS[@]}" -v \
    --user alice --secret alice-pw --file "$T/d.bin" -c 8M
check_eq "the client run again from its state file: exit 0" 0 "$RC"
check "  told the session is unknown, it opened a new one" grep -q \
    "will not resume session $D" "$T/out" "$T/err"
check "  not told it had finished" test -z "$(grep -h \
    "session $D had finished already" "$T/out" "$T/err")"
D2=$(sed -n 's/.*session \([0-9a-f-]*\) opened by .*"d.bin".*/\1/p' \
    "$T/server.log" | tail -n 1)
check "  a new session ($D2)" test -n "$D2" -a "$D2" != "$D"
check_eq "  awscli: its object, byte for byte" "$(sha "$T/d.bin")" \
    "$(s3_sha "$B" "${P}files/$D2/d.bin")"
# The same through the node that took it: it stops listing it at once.
check "node 1 lists $D2 as complete" wait_for 30 listed 1 alice "$D2" \
    complete
check "node 2 lists $D2 as complete" wait_for 30 listed 2 alice "$D2" \
    complete
on 1 req -u alice:alice-pw -X DELETE "/api/v1/sessions/$D2"
check_eq "DELETE of $D2 through node 1, which took it: deleted" \
    "200 deleted" "$CODE $(jget action)"
check "  node 1 no longer lists it, at once" unlisted 1 "$D2"
on 1 req -u alice:alice-pw "/api/v1/sessions/$D2"
check_eq "  its GET on node 1: 404" 404 "$CODE"
check "  node 2 no longer lists it" wait_for 30 unlisted 2 "$D2"
check_eq "  awscli: no key under files/$D2/ nor .pf/s/$D2/" "" \
    "$(keys_of "$D2")"

# --- tus is not served on S3 yet (store.h): its create is refused
on 2 req -u alice:alice-pw -H 'Tus-Resumable: 1.0.0' -X POST \
    -H 'Upload-Length: 5' -H "Upload-Metadata: filename $(printf t.txt |
    base64 -w0)" /api/v1/uploads
check_eq "tus create on S3: 501 not_implemented" "501 not_implemented" \
    "$CODE $(jget error.code)"

# --- the store's metrics
on 1 req /metrics
cp "$T/b" "$T/m1"
n=$(sed -n 's/^paraflow_s3_requests_total{op="put_part",code="2xx"} //p' \
    "$T/m1")
echo "# node 1: $n part PUTs answered 2xx"
check "node 1: put_part 2xx counted" test "${n:-0}" -ge 5
check "  a latency histogram of them" grep -q \
    '^paraflow_s3_request_seconds_count{op="put_part"} [1-9]' "$T/m1"
check "  promtool check metrics passes" promtool check metrics <"$T/m1"
on 2 req /metrics
check "node 2: its ranged GETs counted" grep -q \
    '^paraflow_s3_requests_total{op="get",code="2xx"} [1-9]' "$T/b"
check "  promtool check metrics passes" promtool check metrics <"$T/b"

# --- the store fails mid-download: the connection ends short, and
# curl says so (no complete-looking short file). Last: it stops the
# store.
curl -sS -u alice:alice-pw --limit-rate 2M --max-time 120 -o "$T/cut" \
    "${NODE_URL[2]}/api/v1/sessions/$A/file" 2>"$T/cut.err" &
dpid=$!
wait_for 60 test -s "$T/cut"
s3_stop
drc=0
wait "$dpid" || drc=$?
got=$(stat -c %s "$T/cut")
echo "# curl: exit $drc after $got of $SIZE bytes: $(head -c 200 "$T/cut.err")"
check "a download cut by the store: curl fails" test "$drc" -ne 0
check "  short of the file" test "$got" -lt "$SIZE"
on 2 req /metrics
check "  node 2 counted GETs without answer" grep -q \
    '^paraflow_s3_requests_total{op="get",code="none"} [1-9]' "$T/b"
on 2 req -u alice:alice-pw -X DELETE "/api/v1/sessions/$A"
check_eq "DELETE with the store stopped: 502 store_failed" \
    "502 store_failed" "$CODE $(jget error.code)"

for n in 1 2; do
	SERVER_PID=${NODE_PID[$n]}
	stop_server
done
done_testing
