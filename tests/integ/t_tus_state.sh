#!/bin/bash
# SPDX-License-Identifier: MIT
# What a tus upload is to the engine (docs/api.md, "Uploads: tus 1.0.0"):
# only sessions created over tus are tus's (a native upload running
# under the same user answers 404 to HEAD, PATCH and DELETE over tus and
# completes with its own receipt; so does one finished); a PATCH that
# ends inside a chunk leaves that chunk released, not claimed, and its
# bytes counted in HEAD's offset; an upload created without bytes, or
# with fewer than the 512 the policy judges, or with no whole chunk,
# survives a restart (SIGTERM) at offset 0 and then completes, and the
# policy still judges one sent after the restart; an empty upload
# (Upload-Length: 0), whole or a partial one, is the same across a
# restart.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
. "$(dirname "$0")/lib_tus.sh"
need_api_tools

add_users alice bob
start_gw --users "$U"
MIB=$((1024 * 1024))
CHUNK=$((4 * MIB))

head_of() {
	req "${ALICE[@]}" "${TUS[@]}" -I "$1"
}
# stored_as ID SRC: the stored file of ID is SRC, and complete.
# shellcheck disable=SC2317 # called through check
stored_as() {
	local name
	req "${ALICE[@]}" "/api/v1/sessions/$1"
	name=$(jget name)
	[ "$(jget state)" = complete ] && cmp -s "$2" "$STORAGE/$1/$name"
}
# restart: SIGTERM, then the server again on the same storage.
restart() {
	stop_server
	start_gw --users "$U"
}

# --- A native upload is not tus's -----------------------------------------
# Held to 256 KiB/s (32 s for 8 MiB), so it runs while tus knocks.
mkfile "$T/nat" $((8 * MIB))
mkfile "$T/other" $((64 * 1024))
if upload_receiving alice "$T/nat" --file "$T/nat" --name nat.bin \
    --chunk-size 64K --threads 1 --limit-rate 256K; then
	nat=$RECEIVING
	LOC=/api/v1/uploads/$nat
	head_of "$LOC"
	check_eq "a running native upload: tus HEAD 404" 404 "$CODE"
	patch 0 "$T/other"
	check_eq "... tus PATCH at 0: 404 not_found" "404 not_found" \
	    "$CODE $(jget error.code)"
	req "${ALICE[@]}" "/api/v1/sessions/$nat"
	held=$(jget chunks_acked)
	patch $((held * 64 * 1024)) "$T/other"
	check_eq "... tus PATCH at its held offset: 404" 404 "$CODE"
	req "${ALICE[@]}" "${TUS[@]}" -X DELETE "$LOC"
	check_eq "... tus DELETE: 404" 404 "$CODE"
	rc=0
	wait "$UPLOAD_PID" || rc=$?
	check_eq "... the native upload completes (its receipt checked)" 0 \
	    "$rc"
	d=$(jget digest "$T/nat.out")
	check_eq "... with the server's receipt (${d:-none})" "${d:-none}" \
	    "$(req "${ALICE[@]}" "/api/v1/sessions/$nat"; jget digest)"
	check "... stored file identical" stored_as "$nat" "$T/nat"
	head_of "$LOC"
	check_eq "a finished native upload: tus HEAD 404" 404 "$CODE"
	req "${ALICE[@]}" "${TUS[@]}" -X DELETE "$LOC"
	check_eq "... tus DELETE 404" 404 "$CODE"
	check "... its file is still there" stored_as "$nat" "$T/nat"
else
	not_ok "the native upload was never seen receiving"
	sed 's/^/#   uploader: /' "$T/nat.err"
	wait "$UPLOAD_PID"
fi
# Its own uploads stay tus's: the mark is in the durable metadata.
create 1000 mark.bin
check_eq "a tus upload's metadata says origin tus" tus \
    "$(jget origin "$STORAGE/.staging/$ID/session.json")"

# --- A PATCH that ends inside a chunk leaves it released ------------------
mkfile "$T/a" $((CHUNK + 3 * MIB + 123))
create "$(stat -c %s "$T/a")" a.bin
head -c $((5 * MIB)) "$T/a" >"$T/a.head"
patch 0 "$T/a.head"
check_eq "a PATCH of 5 MiB: 204 at 5 MiB" "204 $((5 * MIB))" \
    "$CODE $(hdr Upload-Offset)"
head_of "$LOC"
check_eq "... HEAD counts its bytes in the unfinished chunk" \
    "$((5 * MIB))" "$(hdr Upload-Offset)"
req "${ALICE[@]}" "/api/v1/sessions/$ID/chunks"
map=$(jget map)
check "... that chunk is not claimed: not r in the chunk map ($map)" \
    grep -q '^d[^r]$' <<<"$map"
patch 0 "$T/a.head"
check_eq "... a PATCH at a stale offset: 409 at 5 MiB" "409 $((5 * MIB))" \
    "$CODE $(hdr Upload-Offset)"
tail -c +$((5 * MIB + 1)) "$T/a" >"$T/a.rest"
patch $((5 * MIB)) "$T/a.rest"
check_eq "... the rest from 5 MiB, a new connection: 204 at once" \
    "204 $(stat -c %s "$T/a")" "$CODE $(hdr Upload-Offset)"
check "... stored file identical" stored_as "$ID" "$T/a"
req "${ALICE[@]}" "/api/v1/sessions/$ID"
check_eq "... going on was not counted as chunks sent again" 0 \
    "$(jget chunks_resent)"

# --- Uploads created before a restart --------------------------------------
mkfile "$T/bf" $((3 * MIB))
create "$(stat -c %s "$T/bf")" b.bin
b=$LOC
check_eq "an upload created without bytes: 201" 201 "$CODE"
mkfile "$T/c" 3000
head -c 100 "$T/c" >"$T/c.100"
create 3000 c.bin
c=$LOC
patch 0 "$T/c.100"
check_eq "an upload with its first 100 bytes: 204 at 100" "204 100" \
    "$CODE $(hdr Upload-Offset)"
mkfile "$T/d" 3000
head -c 600 "$T/d" >"$T/d.600"
create 3000 d.bin
d=$LOC
patch 0 "$T/d.600"
check_eq "an upload with its first 600 bytes: 204 at 600" "204 600" \
    "$CODE $(hdr Upload-Offset)"
check "... its head judged, in its metadata" [ -n "$(jget head \
    "$STORAGE/.staging/$ID/session.json")" ]
{ printf '\177ELF\002\001\001'; head -c 3000 /dev/urandom; } >"$T/exe"
create "$(stat -c %s "$T/exe")" tool.dat
x=$LOC
create 0 empty.bin
e=$LOC
check_eq "an empty upload: 201 at 0" "201 0" "$CODE $(hdr Upload-Offset)"
check "... stored at once" stored_as "${e##*/}" /dev/null
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Concat: partial' \
    -H 'Upload-Length: 0' /api/v1/uploads
p0=$(hdr Location)
check_eq "an empty partial upload: 201" 201 "$CODE"
restart
head_of "$b"
check_eq "after a restart, the upload without bytes: HEAD 200 at 0" \
    "200 0 $((3 * MIB))" \
    "$CODE $(hdr Upload-Offset) $(hdr Upload-Length)"
LOC=$b
patch 0 "$T/bf"
check_eq "... its bytes: 204 at its length" "204 $((3 * MIB))" \
    "$CODE $(hdr Upload-Offset)"
check "... stored file identical" stored_as "${b##*/}" "$T/bf"
head_of "$c"
check_eq "the upload with 100 bytes (not stored): HEAD 200 at 0" "200 0" \
    "$CODE $(hdr Upload-Offset)"
LOC=$c
patch 0 "$T/c"
check_eq "... sent from 0: 204 at its length" "204 3000" \
    "$CODE $(hdr Upload-Offset)"
check "... stored file identical" stored_as "${c##*/}" "$T/c"
head_of "$d"
check_eq "the upload with 600 bytes (no whole chunk): HEAD 200 at 0" \
    "200 0" "$CODE $(hdr Upload-Offset)"
LOC=$d
patch 0 "$T/d"
check_eq "... sent from 0: 204 at its length" "204 3000" \
    "$CODE $(hdr Upload-Offset)"
check "... stored file identical" stored_as "${d##*/}" "$T/d"
LOC=$x
patch 0 "$T/exe"
check_eq "an executable sent after the restart: 403 forbidden_type" \
    "403 forbidden_type" "$CODE $(jget error.code)"
check "... its staging area is gone" wait_for 30 test ! -e \
    "$STORAGE/.staging/${x##*/}"
check "... and no file" [ ! -e "$STORAGE/${x##*/}" ]
head_of "$e"
check_eq "the empty upload: HEAD 200 at 0 of 0" "200 0 0" \
    "$CODE $(hdr Upload-Offset) $(hdr Upload-Length)"
check "... still stored" stored_as "${e##*/}" /dev/null
LOC=$e
: >"$T/none"
patch 0 "$T/none"
check_eq "... an empty PATCH: 204 at 0" "204 0" "$CODE $(hdr Upload-Offset)"
head_of "$p0"
check_eq "the empty partial upload: HEAD 200 partial at 0" "200 partial 0" \
    "$CODE $(hdr Upload-Concat) $(hdr Upload-Offset)"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Concat: partial' \
    -H 'Upload-Length: 3000' /api/v1/uploads
LOC=$(hdr Location)
p1=$LOC
patch 0 "$T/c"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H "Upload-Concat: final;$p0 $p1" \
    -H "Upload-Metadata: filename $(printf j.bin | base64)" /api/v1/uploads
check_eq "... a final upload of it and a part: 201" 201 "$CODE"
fin=$(hdr Location)
check "... stored file identical" stored_as "${fin##*/}" "$T/c"

# --- Nor is a tus upload the native protocol's to resume ------------------
# (pfwire, the tests' own client, logs in over plaintext.)
stop_server
start_gw --users "$U" --no-tls
mkfile "$T/r" $((MIB + 7))
create "$(stat -c %s "$T/r")" resumed.bin
head -c 600 "$T/r" >"$T/r600"
patch 0 "$T/r600"
check_eq "a tus upload, its first bytes judged: 204" 204 "$CODE"
got=$(PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$(dirname "$0")" python3 - \
    "$PORT" "$ID" "$T/r" 2>&1 <<'EOF'
import base64, sys
import pfwire as w

port, sid, path = sys.argv[1:4]
data = open(path, "rb").read()
c = w.connect(port)
w.hello(c)
w.scram_login(c, "alice", "alice-pw")
w.send_json(c, w.OPEN, {"name": "resumed.bin", "size": len(data),
                        "chunk_size": 4 * 1024 * 1024, "resume": sid,
                        "head": base64.b64encode(
                            data[:w.HEAD_LEN]).decode("ascii")})
print(w.error_name(c))
EOF
)
check_eq "a native OPEN resuming it: unknown_session" unknown_session "$got"
head_of "$LOC"
check_eq "... and tus still has it at 600" "200 600" \
    "$CODE $(hdr Upload-Offset)"

stop_server
done_testing
