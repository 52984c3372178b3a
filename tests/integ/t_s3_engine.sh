#!/bin/bash
# SPDX-License-Identifier: MIT
# paraflowd on S3 (--storage s3://BUCKET/PREFIX), one node, against a
# real Ceph RGW, with the real client over TLS: a 20 MiB upload checked
# with awscli (size, SHA-256); a client killed mid-upload and run again
# (only the missing chunks sent); the same with paraflowd SIGKILLed and
# restarted in between (the session comes back from the store); a cancel
# through the gateway (no upload, no .pf/ key left); an executable, a
# wrong password and a 4 MiB chunk size refused with nothing stored; a
# store that cannot be reached or refuses the keys stops the start.
. "$(dirname "$0")/lib.sh"
. "$here/lib_s3.sh"

s3_start
B=pf-s3-engine
P=node/
s3_bucket "$B"
MiB=$((1024 * 1024))
C=$((8 * MiB))
S3ARGS=(--storage "s3://$B/$P" --s3-endpoint "$S3_ENDPOINT"
    --node-dir "$T/node")

# keys PREFIX: the keys awscli lists under $P PREFIX, one a line.
keys() {
	s3api list-objects-v2 --bucket "$B" --prefix "$P$1" \
	    --query 'Contents[].Key' --output text | tr '\t' '\n' |
	    grep -v '^None$' | sed "s|^$P||"
}

# stored N: how many chunks the server log says went to S3.
stored() {
	grep -c 'stored in S3' "$T/server.log"
}

# sid NAME: the session id the server opened for NAME.
sid() {
	sed -n "s/.*session \([0-9a-f-]*\) opened by .*\"$1\".*/\1/p" \
	    "$T/server.log" | tail -n 1
}

# stored_since BASE N: at least N chunks stored since the count BASE.
stored_since() {
	[ $(($(stored) - $1)) -ge "$2" ]
}

# cut_off NAME [ARG...]: an upload of $T/NAME at 4 MiB/s over 2 streams,
# SIGKILLed once the server stored 2 chunks of it; HELD: how many it
# stored.
cut_off() {
	local pid base name=$1
	shift
	base=$(stored)
	"$PARAFLOW" upload --port "$PORT" --quiet --file "$T/$name" "$@" \
	    -t 2 --limit-rate 4M >"$T/$name.out" 2>"$T/$name.err" &
	pid=$!
	PIDS+=("$pid")
	wait_for 60 stored_since "$base" 2
	signal_ours KILL "$pid"
	wait "$pid" 2>/dev/null
	HELD=$(($(stored) - base))
}

start_server -v "${S3ARGS[@]}"
check "the start names the bucket" grep -q "storage: S3 bucket $B" \
    "$T/server.log"

# --- a 20 MiB file, 3 chunks of 8 MiB (the last 4 MiB), stored in S3
mkfile "$T/a.bin" $((20 * MiB))
check "paraflow upload of 20 MiB to S3" upload --file "$T/a.bin" -c 8M
A=$(sid a.bin)
check_eq "awscli: the object's size" $((20 * MiB)) \
    "$(s3_size "$B" "${P}files/$A/a.bin")"
check_eq "awscli: the object's SHA-256" "$(sha "$T/a.bin")" \
    "$(s3_sha "$B" "${P}files/$A/a.bin")"
check_eq "3 chunks stored, each ACKed after the store's answer" 3 \
    "$(stored)"
check_eq "finished: its record and commit object only" \
    "commit record" "$(keys ".pf/s/$A/" | sed 's|.*/||' | sort | xargs)"
check_eq "no multipart upload left" 0 "$(s3_uploads "$B")"
check "no byte of it on the node's disk" \
    test -z "$(find "$T/node" -name 'a.bin' -o -name data)"

# --- no --chunk-size: the client takes the store's 8 MiB from HELLO
mkfile "$T/auto.bin" $((20 * MiB))
run "$PARAFLOW" upload --port "$PORT" --quiet --file "$T/auto.bin" --json
check "an upload without --chunk-size succeeds on S3" test "$RC" -eq 0
check_eq "  its chunks are the store's 8 MiB" $C \
    "$(json_field "$(cat "$T/out")" chunk_size)"
check_eq "  3 of them" 3 "$(json_field "$(cat "$T/out")" chunks)"
check_eq "  the object's SHA-256" "$(sha "$T/auto.bin")" \
    "$(s3_sha "$B" "${P}files/$(sid auto.bin)/auto.bin")"

# --- the client killed mid-upload, run again: only missing chunks sent
# (both runs without --chunk-size: the state file finds the session)
mkfile "$T/b.bin" $((6 * C))
cut_off b.bin
echo "# first run: $HELD of 6 chunks stored before the kill"
check "some chunks were stored, not all" test "$HELD" -ge 2 -a "$HELD" -lt 6
base=$(stored)
check "the rerun completes" upload --file "$T/b.bin"
check_eq "  it sent only the $((6 - HELD)) missing chunks" \
    $((6 - HELD)) $(($(stored) - base))
check "  the server resumed the session" grep -q \
    "session $(sid b.bin) resumed by" "$T/server.log"
check_eq "  the object's SHA-256" "$(sha "$T/b.bin")" \
    "$(s3_sha "$B" "${P}files/$(sid b.bin)/b.bin")"

# --- paraflowd SIGKILLed and restarted between: back from the store
mkfile "$T/c.bin" $((6 * C))
cut_off c.bin -c 8M
C_SID=$(sid c.bin)
echo "# first run: $HELD of 6 chunks stored before the kill"
signal_ours KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
OLD_PORT=$PORT
start_server -v "${S3ARGS[@]}" --port "$OLD_PORT"
base=$(stored)
check "after a restart the rerun completes" upload --file "$T/c.bin" -c 8M
check "  the session came back from the store" grep -q \
    "session $C_SID resumed from the store" "$T/server.log"
check_eq "  only the $((6 - HELD)) missing chunks were sent" \
    $((6 - HELD)) $(($(stored) - base))
check_eq "  the object's SHA-256" "$(sha "$T/c.bin")" \
    "$(s3_sha "$B" "${P}files/$C_SID/c.bin")"

# --- cancel through the gateway: the upload aborted, no .pf/ key left
mkfile "$T/d.bin" $((4 * C))
cut_off d.bin -c 8M
D=$(sid d.bin)
check "the session has keys in the store" test -n "$(keys ".pf/s/$D/")"
PIN=$(server_pin)
run "$PARAFLOW" cancel "$D" --http "https://127.0.0.1:$HTTP_PORT" \
    --pin "$PIN"
check "paraflow cancel (REST DELETE): cancelled" grep -q '^cancelled' \
    "$T/out"
check_eq "  no multipart upload left (ListMultipartUploads)" 0 \
    "$(s3_uploads "$B")"
check_eq "  no .pf/ key of it left" "" "$(keys ".pf/s/$D/")"
check_eq "  no object" "" "$(keys "files/$D/")"

# --- refusals: nothing in the bucket
before=$(keys "" | sort | xargs)
printf 'MZ\x90\x00' >"$T/x.exe"
head -c $((9 * MiB)) /dev/urandom >>"$T/x.exe"
run "$PARAFLOW" upload --port "$PORT" --quiet --file "$T/x.exe" -c 8M \
    --name tool.bin --json
check "an executable is refused" test "$RC" -ne 0
check "  forbidden_type" grep -q forbidden_type "$T/out"
run "$PARAFLOW" upload --port "$PORT" --quiet --file "$T/a.bin" -c 8M \
    --secret wrong-password --json
check "a wrong password is refused" test "$RC" -ne 0
check "  auth_failed" grep -q auth_failed "$T/out"
run "$PARAFLOW" upload --port "$PORT" --quiet --file "$T/a.bin" -c 4M \
    --json
check "a 4 MiB chunk size is refused" test "$RC" -ne 0
check "  bad_frame" grep -q bad_frame "$T/out"
check "  naming the store's 8 MiB minimum" grep -q \
    "minimum of 8 MiB" "$T/out"
check_eq "the bucket is as before the refusals" "$before" \
    "$(keys "" | sort | xargs)"
check_eq "no multipart upload left" 0 "$(s3_uploads "$B")"
stop_server

# --- a store that cannot be reached, or that refuses the keys
run "$PARAFLOWD" --port 0 --no-http --tls-dir "$TLS_DIR" \
    --storage "s3://$B/$P" --s3-endpoint http://127.0.0.1:1 \
    --node-dir "$T/node"
check_eq "an unreachable store: paraflowd exits 1" 1 "$RC"
check "  saying the store refuses a write" grep -q \
    "refuses a write under" "$T/err"
run env AWS_SECRET_ACCESS_KEY=not-the-key "$PARAFLOWD" --port 0 \
    --no-http --tls-dir "$TLS_DIR" --storage "s3://$B/$P" \
    --s3-endpoint "$S3_ENDPOINT" --node-dir "$T/node"
check_eq "bad credentials: paraflowd exits 1" 1 "$RC"
check "  saying the store refused the keys" grep -q \
    "authentication failed: HTTP 403" "$T/err"
check "  the secret is not in the log" bash -c "! grep -q not-the-key \
    '$T/err'"
run env -u AWS_SECRET_ACCESS_KEY "$PARAFLOWD" --port 0 --no-http \
    --tls-dir "$TLS_DIR" --storage "s3://$B/$P" \
    --s3-endpoint "$S3_ENDPOINT" --node-dir "$T/node"
check_eq "no credentials: paraflowd exits 1" 1 "$RC"
run "$PARAFLOWD" --port 0 --no-http --tls-dir "$TLS_DIR" \
    --storage "s3://$B/$P" --node-dir "$T/node"
check_eq "no --s3-endpoint: paraflowd exits 1" 1 "$RC"
check "  saying it needs one" grep -q "needs --s3-endpoint" "$T/err"
done_testing
