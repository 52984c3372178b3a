#!/bin/bash
# SPDX-License-Identifier: MIT
# Resumable uploads over HTTPS with tus 1.0.0 (/api/v1/uploads, see
# docs/api.md), from curl and from tus-js-client under node (tests/node,
# installed from npm): discovery, creation (with upload), a PATCH that
# ends inside a chunk (its answer and HEAD say where to go on; the start
# of that chunk is accepted too), first PATCHes shorter than
# the 512 bytes the policy judges, header and number parsing, partial
# uploads across a restart, HEAD of a final upload, an upload body that
# stalls while the connection table fills, Upload-Checksum (460,
# nothing kept), 409 on a wrong offset, 412 without Tus-Resumable, 413
# past the length, an executable refused before anything is stored,
# termination, another user's 404s, the offset kept across a SIGKILL of
# the server, events, metrics, the user's caps and the login throttle;
# then tus-js-client: a 64 MiB file, once whole and once killed midway
# and resumed from its stored URL (only the rest is sent), chunkSize
# 1000 and 1000000, and parallelUploads: 4 (concatenation). Every
# stored file is compared with its source and its receipt with
# `paraflow digest`.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
. "$(dirname "$0")/lib_tus.sh"
need_api_tools

add_users alice bob
# 64 connections at most, for the stalled upload below; a long idle
# timeout, so that a loaded machine cannot stall it past that.
GW=(--users "$U" --http-max-connections 64 --http-max-per-ip 64
    --http-timeout 60)
start_gw "${GW[@]}"
EP=$HTTP_URL/api/v1/uploads
MIB=$((1024 * 1024))
CHUNK=$((4 * MIB))

offset_of() {
	req "${ALICE[@]}" "${TUS[@]}" -I "$1"
	hdr Upload-Offset
}
receipt() {
	"$PARAFLOW" digest "$1" | cut -d' ' -f1
}
# stored_as ID SRC: the stored file of ID is SRC, and the REST view says
# complete with SRC's receipt.
stored_as() {
	local name
	name=$(jget name <(curl -s "${ALICE[@]}" \
	    "$HTTP_URL/api/v1/sessions/$1"))
	cmp -s "$2" "$STORAGE/$1/$name" &&
	    [ "$(curl -s "${ALICE[@]}" "$HTTP_URL/api/v1/sessions/$1" |
	    json_get digest)" = "$(receipt "$2")" ]
}

# --- Discovery and refusals -------------------------------------------
req -X OPTIONS /api/v1/uploads
check_eq "OPTIONS: 204" 204 "$CODE"
check_eq "Tus-Version" 1.0.0 "$(hdr Tus-Version)"
check "Tus-Extension lists creation, creation-with-upload, termination, \
checksum, expiration" grep -q \
    'creation,creation-with-upload,termination,checksum,expiration' \
    <<<"$(hdr Tus-Extension)"
check_eq "Tus-Checksum-Algorithm" sha256 "$(hdr Tus-Checksum-Algorithm)"
req "${ALICE[@]}" -X POST -H 'Upload-Length: 5' /api/v1/uploads
check_eq "no Tus-Resumable: 412" 412 "$CODE"
check_eq "... with Tus-Version" 1.0.0 "$(hdr Tus-Version)"
req "${TUS[@]}" -X POST -H 'Upload-Length: 5' /api/v1/uploads
check_eq "no login: 401" 401 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Length: 5' /api/v1/uploads
check_eq "no filename: 400" 400 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Length: 0' \
    -H "Upload-Metadata: is_confidential,filename $(printf 'm d.txt' |
    base64),filetype dGV4dC9wbGFpbg==" /api/v1/uploads
check_eq "Upload-Metadata with other keys, one without a value: 201" 201 \
    "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Length: 5' \
    -H 'Upload-Metadata: filename !!!' /api/v1/uploads
check_eq "a filename that is not base64: 400" 400 "$CODE"

# A refused PATCH (here, of no such upload) with a body up to 1 MiB is
# answered once the body is in (see slow_body); a longer one at once.
nobody() {	# nobody BYTES: a PATCH of BYTES to no upload, by slow_body
	slow_body "$1" PATCH \
	    /api/v1/uploads/0b7e0d9e-6d55-4c1a-9b4e-1f1b2c3d4e5f \
	    'Tus-Resumable: 1.0.0' 'Upload-Offset: 0' \
	    'Content-Type: application/offset+octet-stream'
}
check_eq "a PATCH of no upload, 1 MiB: 404 once its body is in" \
    "after its body: 404" "$(nobody $((1024 * 1024)))"
check "... of 1 MiB + 1 byte: answered at once" grep -q \
    '^answered before its body' <<<"$(nobody $((1024 * 1024 + 1)))"

# --- curl: a PATCH that ends inside a chunk, then the rest ------------
mkfile "$T/a" $((10 * MIB + 12345))
create "$(stat -c %s "$T/a")" a.bin
check_eq "POST: 201" 201 "$CODE"
check "Location is /api/v1/uploads/<uuid>" grep -Eq \
    '^/api/v1/uploads/[0-9a-f-]{36}$' <<<"$LOC"
check_eq "a new upload's offset is 0" 0 "$(hdr Upload-Offset)"
check "Upload-Expires is an HTTP date" grep -q GMT <<<"$(hdr Upload-Expires)"
req "${ALICE[@]}" "${TUS[@]}" -I "$LOC"
check_eq "HEAD: 200" 200 "$CODE"
check_eq "HEAD: Upload-Length" "$(stat -c %s "$T/a")" "$(hdr Upload-Length)"
check_eq "HEAD: Cache-Control" no-store "$(hdr Cache-Control)"
head -c $((5 * MIB)) "$T/a" >"$T/a.head"
patch 0 "$T/a.head"
check_eq "PATCH of 5 MiB: 204" 204 "$CODE"
check_eq "... its answer says where to go on (5 MiB)" $((5 * MIB)) \
    "$(hdr Upload-Offset)"
check_eq "HEAD says the same (its bytes of the unfinished chunk count)" \
    $((5 * MIB)) "$(offset_of "$LOC")"
patch 0 "$T/a.head"
check_eq "PATCH at a stale offset: 409" 409 "$CODE"
check_eq "... with the offset" $((5 * MIB)) "$(hdr Upload-Offset)"
tail -c +$((CHUNK + 1)) "$T/a" >"$T/a.rest"
# The start of the unfinished chunk is good too: it is written anew.
wrong=$(printf x | sha256sum | cut -d' ' -f1 | xxd -r -p | base64 -w0)
right=$(sha256sum <"$T/a.rest" | cut -d' ' -f1 | xxd -r -p | base64 -w0)
patch "$CHUNK" "$T/a.rest" -H "Upload-Checksum: sha256 $wrong"
check_eq "wrong Upload-Checksum: 460" 460 "$CODE"
check_eq "... nothing of it kept" "$CHUNK" "$(offset_of "$LOC")"
patch "$CHUNK" "$T/a.rest" -H "Upload-Checksum: sha256 $wrong" \
    -H 'Transfer-Encoding: chunked'
check_eq "... chunked too: 460" 460 "$CODE"
check_eq "... nothing kept" "$CHUNK" "$(offset_of "$LOC")"
patch "$CHUNK" "$T/a" 
check_eq "a body past the upload's length: 413" 413 "$CODE"
check_eq "... nothing kept" "$CHUNK" "$(offset_of "$LOC")"

# Another user knows nothing of it.
req -u bob:bob-pw "${TUS[@]}" -I "$LOC"
check_eq "bob's HEAD: 404" 404 "$CODE"
req -u bob:bob-pw "${TUS[@]}" "${OCT[@]}" -X PATCH \
    -H "Upload-Offset: $CHUNK" --data-binary @"$T/a.rest" "$LOC"
check_eq "bob's PATCH: 404" 404 "$CODE"
req -u bob:bob-pw "${TUS[@]}" -X DELETE "$LOC"
check_eq "bob's DELETE: 404" 404 "$CODE"
check_eq "alice's upload is untouched" "$CHUNK" "$(offset_of "$LOC")"

# A crash (SIGKILL) keeps what HEAD said: the offset is durable.
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
# 64 connections at most, for the stalled upload below; a long idle
# timeout, so that a loaded machine cannot stall it past that.
GW=(--users "$U" --http-max-connections 64 --http-max-per-ip 64
    --http-timeout 60)
start_gw "${GW[@]}"
EP=$HTTP_URL/api/v1/uploads
check_eq "after a SIGKILL and a restart, HEAD gives the same offset" \
    "$CHUNK" "$(offset_of "$LOC")"

patch "$CHUNK" "$T/a.rest" -H "Upload-Checksum: sha256 $right"
check_eq "the rest with its checksum: 204" 204 "$CODE"
check_eq "... offset is the length" "$(stat -c %s "$T/a")" \
    "$(hdr Upload-Offset)"
check "stored file identical, receipt = paraflow digest" stored_as "$ID" \
    "$T/a"
req "${ALICE[@]}" "${TUS[@]}" -I "$LOC"
check_eq "HEAD of a complete upload: 200" 200 "$CODE"
check_eq "... offset = length" "$(stat -c %s "$T/a")" "$(hdr Upload-Offset)"
check_eq "... Upload-Metadata names it" "filename $(printf a.bin | base64)" \
    "$(hdr Upload-Metadata)"

# A request refused after a PATCH that ended inside a chunk, at the
# offset that PATCH gave: the offset stays where it was (460, 413 by
# Content-Length); cut off by its excess, what came before it stays.
mkfile "$T/u6" $((6 * MIB))
create "$(stat -c %s "$T/u6")" b.bin
check_eq "b: POST: 201" 201 "$CODE"
head -c 5000000 "$T/u6" >"$T/u6.head"
tail -c +5000001 "$T/u6" >"$T/u6.rest"
patch 0 "$T/u6.head"
check_eq "b: a PATCH ending inside a chunk: 204 at 5000000" "204 5000000" \
    "$CODE $(hdr Upload-Offset)"
head -c 1000 "$T/u6.rest" >"$T/u6.1000"
patch 5000000 "$T/u6.1000" -H "Upload-Checksum: sha256 $wrong"
check_eq "b: the next 1000 bytes, a wrong checksum: 460" 460 "$CODE"
check_eq "b: ... the offset is where it was" 5000000 "$(offset_of "$LOC")"
patch 5000000 "$T/u6"
check_eq "b: a body over the rest, by Content-Length: 413" 413 "$CODE"
check_eq "b: ... the offset is where it was" 5000000 "$(offset_of "$LOC")"
cat "$T/u6.rest" "$T/u6.1000" >"$T/u6.over"
patch 5000000 "$T/u6.over" -H 'Transfer-Encoding: chunked'
check_eq "b: the rest and 1000 bytes more, chunked: 413" 413 "$CODE"
at=$(offset_of "$LOC")
check "b: ... what came before the excess stays (at $at)" \
    test "$at" -ge 5000000 -a "$at" -lt $((6 * MIB))
# An excess over 1 MiB is not read to its end: the connection is closed.
head -c $((2 * MIB)) /dev/zero >>"$T/u6.over"
tail -c +$((at + 1)) "$T/u6" | cat - "$T/u6.over" >"$T/u6.far"
patch "$at" "$T/u6.far" -H 'Transfer-Encoding: chunked'
at2=$(offset_of "$LOC")
check "b: an excess of 2 MiB: what came before stays too (at $at2)" \
    test "$at2" -ge "$at" -a "$at2" -le $((6 * MIB))
at=$at2
tail -c +$((at + 1)) "$T/u6" >"$T/u6.last"
patch "$at" "$T/u6.last"
check_eq "b: the rest from there: 204, complete" "204 $((6 * MIB))" \
    "$CODE $(hdr Upload-Offset)"
check "b: stored identical" stored_as "$ID" "$T/u6"

# The same session everywhere: events, metrics.
curl -sN "${ALICE[@]}" "$HTTP_URL/api/v1/events" >"$T/events" 2>/dev/null &
ev=$!
PIDS+=("$ev")
metric() {
	curl -s "$HTTP_URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
before=$(metric paraflow_received_bytes_total)
# creation-with-upload, and an empty file.
mkfile "$T/c" 300000
req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X POST \
    -H "Upload-Length: 300000" -H "Upload-Metadata: filename $(printf \
    c.txt | base64)" --data-binary @"$T/c" /api/v1/uploads
check_eq "creation-with-upload: 201" 201 "$CODE"
check_eq "... offset 300000" 300000 "$(hdr Upload-Offset)"
check "... stored, receipt = paraflow digest" stored_as \
    "$(basename "$(hdr Location)")" "$T/c"
cid=$(basename "$(hdr Location)")
saw_completed() {
	grep -A3 '^event: completed' "$T/events" | grep -q "$cid"
}
check "... an SSE completed event for it" wait_for 30 saw_completed
# A finished upload terminated over tus: gone, and the stream says so.
mkfile "$T/d" 1000
req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X POST -H "Upload-Length: 1000" \
    -H "Upload-Metadata: filename $(printf d.txt | base64)" \
    --data-binary @"$T/d" /api/v1/uploads
did=$(basename "$(hdr Location)")
req "${ALICE[@]}" "${TUS[@]}" -X DELETE "/api/v1/uploads/$did"
check_eq "DELETE of a finished upload: 204" 204 "$CODE"
saw_deleted() {
	grep -A3 '^event: deleted' "$T/events" | grep -q "$did"
}
check "... an SSE deleted event for it" wait_for 30 saw_deleted
kill "$ev" 2>/dev/null

# A POST whose body is refused leaves no upload behind: its client never
# learnt where it was, and it would hold one of alice's sessions.
receiving() {
	curl -s "${ALICE[@]}" "$HTTP_URL/api/v1/sessions?state=receiving" |
	    json_get total
}
was=$(receiving)
meta=(-H "Upload-Metadata: filename $(printf o.txt | base64)")
for i in 1 2 3; do
	req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Length: 5' \
	    "${meta[@]}" -H 'Content-Type: application/octet-stream' \
	    --data-binary hello /api/v1/uploads
	c415=$CODE
	req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X POST \
	    -H 'Upload-Length: 5' "${meta[@]}" -H 'Upload-Checksum: md5 x' \
	    --data-binary hello /api/v1/uploads
	c400=$CODE
	req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X POST \
	    -H 'Upload-Length: 4' "${meta[@]}" --data-binary hello \
	    /api/v1/uploads
	c413=$CODE
	req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X POST \
	    -H 'Upload-Length: 5' "${meta[@]}" \
	    -H "Upload-Checksum: sha256 $(printf x | sha256sum |
	    cut -d' ' -f1 | xxd -r -p | base64 -w0)" --data-binary hello \
	    /api/v1/uploads
	c460=$CODE
done
check_eq "POSTs with a refused body: 415, 400, 413, 460" "415 400 413 460" \
    "$c415 $c400 $c413 $c460"
# The request's end cancels them, just after its answer.
receiving_was() { [ "$(receiving)" = "$was" ]; }
check "... and no upload left receiving" wait_for 30 receiving_was
after=$(metric paraflow_received_bytes_total)
check "... counted in paraflow_received_bytes_total" \
    [ "$((${after%.*} - ${before%.*}))" -ge 300000 ]
: >"$T/empty"
create 0 empty.txt
check_eq "an empty upload: 201" 201 "$CODE"
check "... stored at once" stored_as "$ID" "$T/empty"

# An executable: refused on its first bytes, nothing stored.
{ printf '\177ELF\002\001\001'; head -c 200000 /dev/urandom; } >"$T/exe"
create "$(stat -c %s "$T/exe")" tool.dat
patch 0 "$T/exe"
check_eq "an ELF executable: 403" 403 "$CODE"
check_eq "... forbidden_type" forbidden_type "$(jget error.code)"
check "... no staging area left" [ ! -e "$STORAGE/.staging/$ID" ]
check "... and no file" [ ! -e "$STORAGE/$ID" ]

# Concatenation by hand: two parts, the first refused as a file's start.
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Concat: partial' \
    -H 'Upload-Length: 100000' /api/v1/uploads
check_eq "a partial upload: 201" 201 "$CODE"
p1=$(hdr Location)
LOC=$p1
patch 0 "$T/exe" -H 'Upload-Concat: partial' 2>/dev/null
head -c 100000 "$T/exe" >"$T/exe1"
patch 0 "$T/exe1"
check_eq "... its bytes are not judged alone (an ELF start): 204" 204 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -I "$p1"
check_eq "... HEAD says Upload-Concat: partial" partial \
    "$(hdr Upload-Concat)"
# A name refused costs the parts nothing: the final upload may be asked
# again under another.
req "${ALICE[@]}" "${TUS[@]}" -X POST -H "Upload-Concat: final;$p1" \
    -H "Upload-Metadata: filename $(printf x.exe | base64)" \
    /api/v1/uploads
check_eq "a final upload named x.exe: 403" 403 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -I "$p1"
check_eq "... its part stays (HEAD 200)" 200 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H "Upload-Concat: final;$p1" \
    -H "Upload-Metadata: filename $(printf x.dat | base64)" \
    /api/v1/uploads
check_eq "a final upload starting like an ELF executable: 403" 403 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -I "$p1"
check_eq "... its part, refused with it, is gone (HEAD 410)" 410 "$CODE"
check "... nothing stored, no staging area left" staging_empty

# Termination.
create 1000000 gone.bin
mkfile "$T/g" 1000000
head -c 600 "$T/g" >"$T/g.head"
patch 0 "$T/g.head"
check "a first PATCH of 600 bytes stored its head" [ -n "$(jget head \
    "$STORAGE/.staging/$ID/session.json")" ]
req "${ALICE[@]}" "${TUS[@]}" -X DELETE "$LOC"
check_eq "DELETE: 204" 204 "$CODE"
check "... its staging area is gone" [ ! -e "$STORAGE/.staging/$ID" ]
req "${ALICE[@]}" "${TUS[@]}" -I "$LOC"
check_eq "... HEAD: 410 (it was cancelled)" 410 "$CODE"
patch 600 "$T/g.head"
check_eq "... PATCH: 410" 410 "$CODE"

# Termination while a PATCH is streaming: the rest of its body is not
# taken, and the upload is gone.
mkfile "$T/d" $((32 * MIB))
create "$(stat -c %s "$T/d")" during.bin
curl -s -o "$T/d.out" -w '%{http_code}' --limit-rate 2M "${ALICE[@]}" \
    "${TUS[@]}" "${OCT[@]}" -X PATCH -H 'Upload-Offset: 0' \
    --data-binary @"$T/d" "$HTTP_URL$LOC" >"$T/d.code" 2>/dev/null &
slow=$!
PIDS+=("$slow")
some_held() {
	[ "$(offset_of "$LOC")" -gt 0 ] 2>/dev/null
}
check "a slow PATCH makes progress" wait_for 60 some_held
# A retry sent while the first request still writes: 423, not a 409
# that would send its client back to an offset it has passed.
head -c 1000 "$T/d" >"$T/d.dup"
patch $(($(offset_of "$LOC") + 1000)) "$T/d.dup"
check_eq "a second PATCH past the offset while the first writes: 423" 423 \
    "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X DELETE "$LOC"
check_eq "DELETE during the PATCH: 204" 204 "$CODE"
wait "$slow" 2>/dev/null
check "... the PATCH did not succeed" [ "$(cat "$T/d.code")" != 204 ]
check "... its staging area is gone" [ ! -e "$STORAGE/.staging/$ID" ]
req "${ALICE[@]}" "${TUS[@]}" -I "$LOC"
check_eq "... HEAD: 410" 410 "$CODE"

# --- A first PATCH shorter than the 512 bytes the policy judges --------
# piece FILE OFF LEN: those bytes of FILE in $T/piece.
piece() {
	tail -c +$(($2 + 1)) "$1" | head -c "$3" >"$T/piece"
}
# unjudged FILE N: upload $ID (created, so staged) has no head yet and
# none of the first N bytes of FILE in its staging file.
# shellcheck disable=SC2317 # called through check
unjudged() {
	[ -z "$(jget head "$STORAGE/.staging/$ID/session.json")" ] &&
	    ! cmp -s -n "$2" "$1" "$STORAGE/.staging/$ID/data"
}
mkfile "$T/s" 2000
create 2000 short.bin
piece "$T/s" 0 100
patch 0 "$T/piece"
check_eq "a first PATCH of 100 bytes: 204" 204 "$CODE"
check_eq "... its answer counts them" 100 "$(hdr Upload-Offset)"
check_eq "... HEAD says 0 (none is durable)" 0 "$(offset_of "$LOC")"
check "... none of them stored yet" unjudged "$T/s" 100
sum=$(printf x | sha256sum | cut -d' ' -f1 | xxd -r -p | base64 -w0)
piece "$T/s" 100 100
patch 100 "$T/piece" -H "Upload-Checksum: sha256 $sum"
check_eq "... the next 100 with a wrong checksum: 460" 460 "$CODE"
patch 200 "$T/piece"
check_eq "... they were not kept: 409 at 200" 409 "$CODE"
for off in 100 200 300 400; do
	piece "$T/s" "$off" 100
	patch "$off" "$T/piece"
	[ "$CODE" = 204 ] || break
done
check_eq "PATCHes of 100 bytes up to 500: 204" "204 500" \
    "$CODE $(hdr Upload-Offset)"
check "... still none stored" unjudged "$T/s" 500
piece "$T/s" 500 100
patch 500 "$T/piece"
check_eq "the PATCH that completes the first 512 bytes: 204" "204 600" \
    "$CODE $(hdr Upload-Offset)"
check "... judged and stored them" [ -n "$(jget head \
    "$STORAGE/.staging/$ID/session.json")" ]
piece "$T/s" 600 1400
patch 600 "$T/piece"
check_eq "... the rest: 204" "204 2000" "$CODE $(hdr Upload-Offset)"
check "... stored file identical, receipt = paraflow digest" stored_as \
    "$ID" "$T/s"
# PATCHes of 1 MiB + 1: each answer goes on where the last one ended,
# and HEAD says the same.
mkfile "$T/m" $((6 * MIB))
create $((6 * MIB)) pieces.bin
off=0 heads= offs=
while [ "$off" -lt $((6 * MIB)) ]; do
	piece "$T/m" "$off" $((MIB + 1))
	patch "$off" "$T/piece"
	[ "$CODE" = 204 ] || break
	off=$(hdr Upload-Offset)
	offs="$offs $off"
	heads="$heads $(offset_of "$LOC")"
done
check_eq "PATCHes of 1 MiB + 1 byte: each one goes on" "204 $((6 * MIB))" \
    "$CODE $off"
check_eq "... HEAD said the same offsets" \
    " 1048577 2097154 3145731 4194308 5242885 $((6 * MIB))" "$heads"
check_eq "... as the answers" "$offs" "$heads"
check "... stored file identical, receipt = paraflow digest" stored_as \
    "$ID" "$T/m"
# Sent anew from 0 after a HEAD that said 0: the held bytes are dropped.
create 2000 again.bin
piece "$T/s" 0 100
patch 0 "$T/piece"
patch 0 "$T/piece"
check_eq "a short first PATCH sent again from 0: 204 at 100" "204 100" \
    "$CODE $(hdr Upload-Offset)"
# An executable in pieces of 100: refused once 512 bytes are there.
create "$(stat -c %s "$T/exe")" pieces.dat
for off in 0 100 200 300 400 500; do
	piece "$T/exe" "$off" 100
	patch "$off" "$T/piece"
	[ "$CODE" = 204 ] || break
done
check_eq "an ELF executable in PATCHes of 100: 403 at the one past 512" \
    "403 500" "$CODE $off"
check "... nothing was stored" [ ! -e "$STORAGE/.staging/$ID" ]
check "... and no file" [ ! -e "$STORAGE/$ID" ]

# --- Headers and numbers ------------------------------------------------
create 10 override.bin
printf 0123456789 >"$T/ten"
patch 0 "$T/ten" -X POST -H 'X-HTTP-Method-Override: PATCH'
check_eq "POST with X-HTTP-Method-Override: PATCH is a PATCH" "204 10" \
    "$CODE $(hdr Upload-Offset)"
check "... stored" stored_as "$ID" "$T/ten"
# A safe method is never one that changes: the override is a POST's.
for m in GET HEAD OPTIONS; do
	req "${ALICE[@]}" "${TUS[@]}" -X "$m" \
	    -H 'X-HTTP-Method-Override: DELETE' "$LOC"
	[ "$CODE" != 204 ] || break
done
check "GET, HEAD, OPTIONS with X-HTTP-Method-Override: DELETE: not a DELETE" \
    stored_as "$ID" "$T/ten"

for v in -1 +5 5x 0x10 1e3 18446744073709551616 99999999999999999999 ''; do
	req "${ALICE[@]}" "${TUS[@]}" -X POST -H "Upload-Length: $v" \
	    -H "Upload-Metadata: filename $(printf n | base64)" \
	    /api/v1/uploads
	[ "$CODE" = 400 ] || break
done
check_eq "Upload-Length: signs, hex, overflow, empty: 400" 400 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Length: 9223372036854775807' \
    -H "Upload-Metadata: filename $(printf n | base64)" /api/v1/uploads
check_eq "Upload-Length of 2^63-1: 413" 413 "$CODE"
check_eq "... with Tus-Resumable" 1.0.0 "$(hdr Tus-Resumable)"
create 10 num.bin
for v in -0 +0 18446744073709551616 0x0; do
	patch "$v" "$T/ten"
	[ "$CODE" = 400 ] || break
done
check_eq "Upload-Offset: signs, overflow, hex: 400" 400 "$CODE"
patch 9999999999999999999 "$T/ten"
check_eq "Upload-Offset far past the length: 409" 409 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X PATCH -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/octet-stream' --data-binary @"$T/ten" \
    "$LOC"
check_eq "PATCH with another Content-Type: 415" 415 "$CODE"
check_eq "... with Tus-Resumable" 1.0.0 "$(hdr Tus-Resumable)"
create 10 case.bin
req "${ALICE[@]}" "${TUS[@]}" -X PATCH -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-streams' \
    --data-binary @"$T/ten" "$LOC"
check_eq "PATCH with a type that only begins the same: 415" 415 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X PATCH -H 'Upload-Offset: 0' \
    -H 'Content-Type: Application/Offset+Octet-Stream ; charset=binary' \
    --data-binary @"$T/ten" "$LOC"
check_eq "the type in other case, with a parameter: taken (RFC 9110)" \
    "204 10" "$CODE $(hdr Upload-Offset)"
req "${ALICE[@]}" "${TUS[@]}" -I \
    /api/v1/uploads/3b241101-e2bb-4255-8caf-4136c566a962
check_eq "HEAD of an unknown upload: 404 with Tus-Resumable" "404 1.0.0" \
    "$CODE $(hdr Tus-Resumable)"
req "${TUS[@]}" -I "$LOC"
check_eq "HEAD without a login: 401 with Tus-Resumable" "401 1.0.0" \
    "$CODE $(hdr Tus-Resumable)"
big=$(head -c 5000 /dev/zero | base64 -w0)
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Length: 1' \
    -H "Upload-Metadata: filename $big" /api/v1/uploads
check_eq "Upload-Metadata over 4096 bytes: 400" 400 "$CODE"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Length: 0' \
    -H "Upload-Metadata: filename $(printf '../../etc/a\nb.txt' | base64 -w0)" \
    /api/v1/uploads
check_eq "a filename with a path and a newline: 201" 201 "$CODE"
check_eq "... stored under its sanitized base name" a_b.txt \
    "$(curl -s "${ALICE[@]}" "$HTTP_URL/api/v1/sessions/$(basename \
    "$(hdr Location)")" | json_get name)"
check "... nothing outside the storage directory" [ ! -e "$STORAGE/../etc" ]

# --- Concatenation by hand; partial uploads across a restart -------------
mkfile "$T/j" $((6 * MIB))
head -c $((5 * MIB)) "$T/j" >"$T/j1"
tail -c +$((5 * MIB + 1)) "$T/j" >"$T/j2"
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Concat: partial' \
    -H "Upload-Length: $MIB" /api/v1/uploads
p2=$(hdr Location)
LOC=$p2
patch 0 "$T/j2"
check_eq "a partial upload sent whole: 204" 204 "$CODE"
head -c $((4 * MIB + 100)) "$T/j1" >"$T/j1h"
# Not complete: a part of 5 MiB, of which one chunk is durable.
req "${ALICE[@]}" "${TUS[@]}" -X POST -H 'Upload-Concat: partial' \
    -H "Upload-Length: $((5 * MIB))" /api/v1/uploads
p3=$(hdr Location)
LOC=$p3
patch 0 "$T/j1h"
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
start_gw "${GW[@]}"
EP=$HTTP_URL/api/v1/uploads
req "${ALICE[@]}" "${TUS[@]}" -I "$p3"
check_eq "after a restart, a partial upload is still one" \
    "200 partial $CHUNK" "$CODE $(hdr Upload-Concat) $(hdr Upload-Offset)"
tail -c +$((CHUNK + 1)) "$T/j1" >"$T/j1t"
patch "$CHUNK" "$T/j1t"
check_eq "... its rest: 204" "204 $((5 * MIB))" \
    "$CODE $(hdr Upload-Offset)"
check "... not stored as a file of its own" [ ! -e "$STORAGE/${p3##*/}" ]
req "${ALICE[@]}" "${TUS[@]}" -X POST -H "Upload-Concat: final;$p3 $p2" \
    -H "Upload-Metadata: filename $(printf j.bin | base64)" \
    /api/v1/uploads
check_eq "a final upload of it and another part: 201" 201 "$CODE"
fin=$(hdr Location)
check "... stored file identical, receipt = paraflow digest" stored_as \
    "${fin##*/}" "$T/j"
req "${ALICE[@]}" "${TUS[@]}" -I "$fin"
check_eq "HEAD of the final upload: Upload-Concat: final;<its parts>" \
    "final;$p3 $p2" "$(hdr Upload-Concat)"
check_eq "... and its length as offset" "$((6 * MIB))" "$(hdr Upload-Offset)"
: >"$T/nothing"
LOC=$fin patch $((6 * MIB)) "$T/nothing"
expect_error "a PATCH of the final upload" 403 final_upload

# --- A stalled upload body is not closed to make room --------------------
# With 64 connections at most, 8 are kept free: past 56 the gateway closes
# the connections that have waited longest for a request, but an upload's
# body only once it stalls for --http-timeout (60 s here).
mkfile "$T/st" $((5 * MIB))
create "$(stat -c %s "$T/st")" stalled.bin
# A client of its own sends the body in two parts, the second once
# $T/go exists.
"$PY" - "$HTTP_PORT" "$GW_CA" "$LOC" "$T/st" "$T/go" $((CHUNK + 1000)) \
    >"$T/st.code" 2>"$T/st.err" <<'EOF' &
import base64, os, socket, ssl, sys, time
port, ca, loc, path, go, first = sys.argv[1:7]
data = open(path, "rb").read()
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(port))))
auth = base64.b64encode(b"alice:alice-pw").decode()
s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
           f"{auth}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
           "Content-Type: application/offset+octet-stream\r\n"
           f"Content-Length: {len(data)}\r\n\r\n").encode())
s.sendall(data[:int(first)])
end = time.time() + 120
while not os.path.exists(go) and time.time() < end:
    time.sleep(0.1)
s.sendall(data[int(first):])
print(s.recv(4096).split(b" ")[1].decode())
EOF
stalled=$!
PIDS+=("$stalled")
body_taken() {
	[ "$(curl -s "${ALICE[@]}" "$HTTP_URL/api/v1/sessions/$ID" |
	    json_get bytes_received)" -ge "$CHUNK" ] 2>/dev/null
}
check "an upload body under way" wait_for 60 body_taken
sleep 2 # the body stalls past the 1 s after which a request may be cut
"$PY" - "$HTTP_PORT" 58 >"$T/idle.out" <<'EOF'
import select, socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(sys.argv[1])))
         for _ in range(int(sys.argv[2]))]
closed, end = 0, time.time() + 60
while not closed and time.time() < end:
    for s in select.select(socks, [], [], 0.5)[0]:
        try:
            closed += s.recv(1) == b""
        except OSError:
            closed += 1
print(closed)
EOF
check "58 idle connections: the gateway closed some of them" \
    [ "$(cat "$T/idle.out")" -gt 0 ]
touch "$T/go"
wait "$stalled"
check_eq "... not the stalled upload: its PATCH ends in 204" 204 \
    "$(cat "$T/st.code")"
check "... stored file identical" stored_as "$ID" "$T/st"

# --- The user's caps apply to tus uploads ------------------------------
stop_server
start_gw "${GW[@]}" --max-user-reserved 1M
req -u bob:bob-pw "${TUS[@]}" -X POST -H "Upload-Length: $((2 * MIB))" \
    -H "Upload-Metadata: filename $(printf q.bin | base64)" /api/v1/uploads
check_eq "an upload over --max-user-reserved: 403 quota_exceeded" \
    "403 quota_exceeded 1.0.0" "$CODE $(jget error.code) $(hdr Tus-Resumable)"
stop_server
start_gw "${GW[@]}"
EP=$HTTP_URL/api/v1/uploads

# --- tus-js-client ------------------------------------------------------
if ! node_for tus-js-client; then
	ok "tus-js-client # SKIP $NODE_SKIP"
	done_testing
fi
export NODE_EXTRA_CA_CERTS=$GW_CA
# tusjs FILE [PARALLEL [STOP_AT [CHUNK]]]: tus.mjs's output in
# $T/tus.out.
tusjs() {
	local rc=0
	timeout 300 node "$here/tus.mjs" "$1" "$EP/" alice alice-pw \
	    "${2:-1}" "${3:-0}" "${4:-0}" >"$T/tus.out" 2>"$T/tus.err" || rc=$?
	sed 's/^/# tus.mjs: /' "$T/tus.out" "$T/tus.err" | tail -n 8
	return $rc
}
field() {
	sed -n "s/^$1 //p" "$T/tus.out" | tail -n 1
}
rc=0
mkfile "$T/big" $((64 * MIB))
tusjs "$T/big" || rc=$?
if [ "$rc" -eq 2 ]; then
	if [ -e "$here/../../.git" ]; then
		not_ok "tus-js-client missing (npm ci --prefix tests/node)"
	else
		ok "tus-js-client # SKIP not installed (npm ci --prefix" \
		    "tests/node, or PF_NODE_MODULES=DIR)"
	fi
	done_testing
fi
check_eq "tus-js-client: 64 MiB in one stream" 0 "$rc"
id=$(field url)
id=${id##*/}
check "... stored file identical, receipt = paraflow digest" stored_as \
    "$id" "$T/big"

mkfile "$T/big2" $((64 * MIB))
rc=0
# In PATCHes of 8 MiB, so that the socket buffers cannot carry the rest
# of the file to the server after the kill.
tusjs "$T/big2" 1 $((40 * MIB)) $((8 * MIB)) || rc=$?
check_eq "a client killed midway (SIGKILL at 40 MiB sent)" 137 "$rc"
url=$(sed -n 's/.*"uploadUrl":"\([^"]*\)".*/\1/p' "$T/big2.tusurls")
check "... its URL was stored" grep -q '^https://' <<<"$url"
# The server sees the connection go (the session has no stream left);
# what it wrote stays (whole chunks durable, and the bytes of the next).
held_ok() {
	local o
	[ "$(curl -s "${ALICE[@]}" "$HTTP_URL/api/v1/sessions/${url##*/}" |
	    json_get streams)" = 0 ] || return 1
	o=$(offset_of "${url#"$HTTP_URL"}")
	[ -n "$o" ] && [ "$o" -gt 0 ]
}
check "... HEAD says what was written" wait_for 30 held_ok
held=$(offset_of "${url#"$HTTP_URL"}")
echo "# held after the kill: $held bytes"
rc=0
tusjs "$T/big2" || rc=$?
check_eq "resumed by a new client from the stored URL" 0 "$rc"
check_eq "... the same upload" "$url" "$(field url)"
check_eq "... it went on from HEAD's offset" "$held" \
    "$(field resumed_from)"
echo "# bytes sent after the resume: $((64 * MIB - held)) of $((64 * MIB))"
check "... only the rest was sent" [ "$((64 * MIB - held))" -lt \
    "$((64 * MIB))" ]
check "... stored file identical, receipt = paraflow digest" stored_as \
    "${url##*/}" "$T/big2"

# Any chunkSize: 1000 bytes (each PATCH shorter than the 512 bytes the
# policy judges, or inside a chunk), and 1000000 (PATCHes across chunks).
for cs in 1000 1000000; do
	mkfile "$T/cs$cs" $((cs == 1000 ? 200000 : 9 * MIB + 777))
	rc=0
	tusjs "$T/cs$cs" 1 0 "$cs" || rc=$?
	check_eq "tus-js-client, chunkSize: $cs" 0 "$rc"
	id=$(field url)
	check "... stored file identical, receipt = paraflow digest" \
	    stored_as "${id##*/}" "$T/cs$cs"
done

# Concatenation: parallelUploads: 4 makes 4 partial uploads, sent at
# once, and a final one that joins them.
mkfile "$T/big3" $((64 * MIB))
rc=0
tusjs "$T/big3" 4 || rc=$?
check_eq "tus-js-client, parallelUploads: 4" 0 "$rc"
id=$(field url)
id=${id##*/}
check "... stored file identical, receipt = paraflow digest" stored_as \
    "$id" "$T/big3"
check_eq "... 4 parts joined" 1 "$(grep -c \
    "upload $id is the concatenation of 4 parts" "$T/server.log")"
req "${ALICE[@]}" "${TUS[@]}" -I "/api/v1/uploads/$id"
parts=$(hdr Upload-Concat)
check "... its HEAD: Upload-Concat: final; and the 4 parts" grep -Eq \
    '^final;(/api/v1/uploads/[0-9a-f-]{36} ?){4}$' <<<"$parts"
# (Uploads created above and never finished keep theirs.)
# shellcheck disable=SC2317 # called through check
parts_unstaged() {
	local p
	for p in ${parts#final;}; do
		[ ! -e "$STORAGE/.staging/${p##*/}" ] || return 1
	done
}
check "... the partial uploads left no staging area" parts_unstaged

# Last, as it throttles this address: the login throttle applies here.
throttled() {
	req -u bob:wrong "${TUS[@]}" -X POST -H 'Upload-Length: 5' \
	    -H "Upload-Metadata: filename $(printf t | base64)" \
	    /api/v1/uploads
	[ "$CODE" = 429 ]
}
check "failed logins on /api/v1/uploads end in 429" wait_for 60 throttled
check "... with Retry-After" [ -n "$(hdr Retry-After)" ]

done_testing
