#!/bin/bash
# SPDX-License-Identifier: MIT
# Bytes damaged in transit, client to server, through tests/tools/pfproxy.
# Damaged chunk data must be NACKed and sent again until the file arrives
# identical; a damaged frame header or chunk head must be refused as
# bad_frame, and must never leave a wrong file behind.
. "$(dirname "$0")/lib.sh"

MIB=$((1024 * 1024))
KIB64=65536

# The client->server bytes of a data connection, in order: the JOIN frame,
# then CHUNK frames. JOIN is a 16-byte header and the compact JSON
# {"session":"<36-char uuid>","proof":"<44-char base64 of 32 bytes>"}.
join_a='{"session":"'
join_b='","proof":"'
join_c='"}'
JOIN_LEN=$((16 + ${#join_a} + 36 + ${#join_b} + 44 + ${#join_c}))
# A CHUNK frame of a 64 KiB chunk: header, index/offset/length, data,
# digest.
CHUNK_FRAME=$((16 + 20 + KIB64 + 32))
# With --threads 1 the second frame on the data connection is chunk 1.
C1=$((JOIN_LEN + CHUNK_FRAME))	# its frame header
C1_LENGTH=$((C1 + 8))		# header: length field (4 bytes)
C1_CHECK=$((C1 + 12))		# header: check field (4 bytes)
C1_INDEX=$((C1 + 16))		# chunk head: index (8 bytes)
C1_OFFSET=$((C1 + 24))		# chunk head: offset (8 bytes)
C1_CLEN=$((C1 + 32))		# chunk head: length (4 bytes)
C1_DATA=$((C1 + 36))		# chunk data

# The debug log names each refusal ("bad_frame: chunk head out of range").
start_server -v --no-tls

corrupt_lines() {
	grep -c '^corrupt ' "$T/proxy.log" 2>/dev/null
}

# staging_empty_soon: the server drops a failed session when its control
# connection closes; give it up to 30 s (a loaded machine may be late).
# shellcheck disable=SC2317 # called through check
staging_empty_soon() {
	local i
	for ((i = 0; i < 600; i++)); do
		staging_empty && return 0
		sleep 0.05
	done
	return 1
}

# --- Damaged data inside the first chunk of every data connection. The
# control connection carries under 2 KB, so these offsets never hit it.
mkfile "$T/src" $((20 * MIB))
log_mark
start_proxy --corrupt-at 1000000 --corrupt-at 3000000
pupload --file "$T/src" --name twenty.bin --threads 4
stop_proxy
check_eq "2 offsets, 4 streams: exit 0" 0 "$RC"
sid=$(json_field "$OUT" session)
check_eq "2 offsets, 4 streams: stored file identical" "$(sha "$T/src")" \
    "$(sha "$(stored_file "$sid" twenty.bin)" 2>/dev/null)"
retries=$(json_field "$OUT" retries)
check "2 offsets, 4 streams: retries >= 1 (got ${retries:-none})" \
    [ "${retries:-0}" -ge 1 ]
n=$(corrupt_lines)
check "2 offsets, 4 streams: proxy log has corrupt lines (got $n)" \
    [ "$n" -ge 1 ]
# Both offsets fall in the first frame of a connection: one re-send each.
check_eq "2 offsets, 4 streams: one re-send per damaged frame" "$n" \
    "$((${retries:-0} * 2))"
check "2 offsets, 4 streams: server log shows a chunk failing its check" \
    grep -q "session $sid chunk [0-9]* failed its check" "$T/server.log"

# --- A damaged byte every 5 MB. With the default 4 MiB chunks 84% of the
# frames would be hit, and a chunk hit 6 times in a row exhausts the
# default --retries 5 by design; 1 MiB chunks make it about 21%. Frames of
# 1 MiB + 68 bytes are never hit twice, and (computed for this layout) no
# hit lands in a header, a chunk head, or the first 512 bytes of a chunk.
mkfile "$T/src" $((64 * MIB))
start_proxy --corrupt-every 5000000
pupload --file "$T/src" --name every.bin --threads 2 --chunk-size 1M \
    --retries 20
stop_proxy
check_eq "every 5 MB, 2 streams: exit 0" 0 "$RC"
sid=$(json_field "$OUT" session)
check_eq "every 5 MB, 2 streams: stored file identical" "$(sha "$T/src")" \
    "$(sha "$(stored_file "$sid" every.bin)" 2>/dev/null)"
retries=$(json_field "$OUT" retries)
check "every 5 MB, 2 streams: retries >= 1 (got ${retries:-none})" \
    [ "${retries:-0}" -ge 1 ]
check_eq "every 5 MB, 2 streams: one re-send per damaged byte" \
    "$(corrupt_lines)" "$retries"

# --- One stream, 64 KiB chunks: the byte layout of the data connection is
# fixed, so single fields of chunk 1 can be hit.
mkfile "$T/src" $((16 * KIB64))
want=$(sha "$T/src")

# Calibration: a data byte of chunk 1 is NACKed once. This also proves
# the offsets above are right.
start_proxy --corrupt-at "$C1_DATA"
pupload --file "$T/src" --name calib.bin --threads 1 --chunk-size 64K
stop_proxy
check_eq "chunk 1 data byte: exit 0" 0 "$RC"
check_eq "chunk 1 data byte: exactly one re-send" 1 \
    "$(json_field "$OUT" retries)"
check_eq "chunk 1 data byte: stored file identical" "$want" \
    "$(sha "$(stored_file "$(json_field "$OUT" session)" calib.bin)" \
    2>/dev/null)"

# damaged DESC OFFSET LOGTEXT: flips the byte at OFFSET of the data
# connection; the upload must fail, store nothing and leave no staging,
# and the server log must show LOGTEXT.
damaged() {
	local desc=$1 off=$2 text=$3 before
	before=$(stored_count)
	log_mark
	start_proxy --corrupt-at "$off"
	pupload --file "$T/src" --name damaged.bin --threads 1 --chunk-size 64K
	stop_proxy
	check "$desc: upload fails (exit $RC)" [ "$RC" -ne 0 ]
	check "$desc: no leak report from the client" \
	    bash -c "! grep -q LeakSanitizer '$T/client.err'"
	# The server drains after its ERROR, so the client reads the reason
	# even while it is still writing the next chunk.
	check_eq "$desc: exit 8 (server refused)" 8 "$RC"
	check_eq "$desc: JSON says error" error "$(json_field "$OUT" status)"
	check_eq "$desc: error code bad_frame" bad_frame \
	    "$(json_field "$OUT" code)"
	check_eq "$desc: no file stored" "$before" "$(stored_count)"
	check "$desc: server refused it ($text)" \
	    grep -q "$text" <(log_since)
	check "$desc: staging area empty" staging_empty_soon
}

# Index 1 becomes 254 (>= 16 chunks), offset and length stop matching.
damaged "chunk 1 index" $((C1_INDEX + 7)) \
    "bad_frame: chunk head out of range"
damaged "chunk 1 offset" $((C1_OFFSET + 7)) \
    "bad_frame: chunk head out of range"
damaged "chunk 1 length" $((C1_CLEN + 3)) \
    "bad_frame: chunk head out of range"
damaged "chunk 1 frame header length" $((C1_LENGTH + 3)) \
    "bad_frame: damaged frame header"
damaged "chunk 1 frame header check" "$C1_CHECK" \
    "bad_frame: damaged frame header"

# Damage within the first 512 bytes of chunk 0 is transit damage like any
# other and should be NACKed. Chunk 0 cannot be hit on its first sending
# (the control connection would be hit at the same offset), so its data is
# hit once to make it come back last, as the 17th frame, and then its
# first data bytes are hit.
C0_AGAIN=$((JOIN_LEN + 16 * CHUNK_FRAME + 36))
start_proxy --corrupt-at $((JOIN_LEN + 36 + 60000)) \
    --corrupt-at $((C0_AGAIN + 100))
pupload --file "$T/src" --name head.bin --threads 1 --chunk-size 64K
stop_proxy
check_eq "chunk 0 head byte damaged on re-send: exit 0" 0 "$RC"
check_eq "chunk 0 head byte damaged on re-send: NACKed, file identical" \
    "$want" "$(sha "$(stored_file "$(json_field "$OUT" session)" \
    head.bin)" 2>/dev/null)"
check "chunk 0 head byte damaged on re-send: staging area empty" \
    staging_empty_soon

# The server is still healthy: a direct upload goes through.
mkfile "$T/src" $((3 * MIB + 7))
out=$(upload --file "$T/src" --name after.bin --json)
check_eq "server still serves a clean upload" "$(sha "$T/src")" \
    "$(sha "$(stored_file "$(json_field "$out" session)" after.bin)" \
    2>/dev/null)"
check "staging area empty at the end" staging_empty_soon

stop_server
done_testing
