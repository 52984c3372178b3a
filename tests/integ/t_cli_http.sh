#!/bin/bash
# SPDX-License-Identifier: MIT
# The gateway commands of paraflow(1) against a real paraflowd: the hints
# upload prints, list, status (one session, the summary, --watch), fetch
# (whole, to the default name, resumed from a .part, a .part of wrong bytes
# caught by the receipt, a .part that is a symbolic link or too long),
# cancel (a running upload, which then fails with "cancelled", and a
# finished one), and the exit codes: 2 for a non-HTTP URL or a bad id, 3
# for a wrong password, 5 for a closed port, 9 for an unknown session, 10
# for a session not finished; every --json output is one JSON document.
# The gateway speaks HTTPS, and the commands verify it as upload verifies
# the native port: trust on first use (the key recorded in known_servers
# under the gateway's host:port, the same key accepted silently later, a
# new key after a restart refused with exit 3 naming both keys and the line
# to delete, accepted once it is deleted), --pin, --cacert, --ca-system;
# plain http:// to it and https:// to a --http-no-tls gateway: exit 5 with
# a hint, http:// to the latter works.
# Last, a mock server checks what no server is trusted with: the local
# name, the download's length, the size of a JSON answer, redirects, the
# range it sends back, counters near 2^63, control characters in names
# and error messages, endless headers and list pages; and that Ctrl-C
# ends a watch stuck in a request to a stalled server.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"

# --- Helpers of this test (the shared ones: lib.sh, lib_http.sh).

# lacks PATTERN FILE: no line of FILE matches PATTERN.
# shellcheck disable=SC2317 # called through check
lacks() {
	! grep -q "$1" "$2"
}

# pf COMMAND ARGS...: paraflow COMMAND against the test gateway, via run.
pf() {
	run "$PARAFLOW" "$@" --http "$HTTP_URL"
}

# list_has SID: the "paraflow list --json" document in $T/out lists SID.
# shellcheck disable=SC2317 # called through check
list_has() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if any(s.get("id") == sys.argv[2] for s in d["sessions"])
         else 1)' "$T/out" "$1"
}

# expect_json_error DESC EXIT CODE: the last run failed with EXIT and
# printed one --json error object with error.code CODE.
expect_json_error() {
	check_eq "$1: exit $2" "$2" "$RC"
	check "$1: stdout is one JSON document" valid_json <"$T/out"
	check_eq "$1: status error" error "$(json_get status <"$T/out")"
	check_eq "$1: error.code $3" "$3" "$(json_get error.code <"$T/out")"
}

upid=

NOSUCH=00000000-0000-4000-8000-000000000000

# --- Usage errors need no server.
run "$PARAFLOW" list --http ftp://127.0.0.1/
check_eq "--http ftp://: exit 2 (usage)" 2 "$RC"
check "--http ftp://: says why" grep -q 'ftp://' "$T/err"
check_eq "--http ftp://: nothing on stdout" "" "$OUT"
RC=0
PARAFLOW_HTTP=file:///etc/passwd "$PARAFLOW" status >"$T/out" 2>"$T/err" ||
    RC=$?
check_eq "PARAFLOW_HTTP=file://: exit 2" 2 "$RC"
run "$PARAFLOW" status not-a-session-id
check_eq "status of a malformed id: exit 2" 2 "$RC"
run "$PARAFLOW" fetch
check_eq "fetch without an id: exit 2" 2 "$RC"
run "$PARAFLOW" cancel "$NOSUCH" --watch 1
check_eq "cancel --watch: exit 2" 2 "$RC"
for c in list status fetch cancel; do
	run "$PARAFLOW" "$c" --help
	check_eq "paraflow $c --help: exit 0" 0 "$RC"
	check "paraflow $c --help: documents exit status 9" \
	    grep -q '^  9  ' "$T/out"
done
run "$PARAFLOW" --help
check "paraflow --help: mentions fetch" grep -q 'paraflow fetch ID' "$T/out"
check "paraflow --help: mentions --http" grep -q -- '--http URL' "$T/out"

# --min-rate 1: the rate-limited uploader below sends its 64 KiB chunks
# slowly on purpose.
start_gw --min-rate 1
echo "# gateway at $HTTP_URL"

# --- upload says what to run next.
mkfile "$T/src" $((5 * 1024 * 1024 + 3))
size=$(stat -c %s "$T/src")
receipt=$("$PARAFLOW" digest "$T/src" | cut -d' ' -f1)
run "$PARAFLOW" upload --port "$PORT" --file "$T/src" --name one.bin
check_eq "upload: exit 0" 0 "$RC"
sid=$(sed -n 's/^session \(.*\)$/\1/p' "$T/out")
check "upload: prints the session id ($sid)" \
    grep -Eqx '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' \
    <(echo "$sid")
check "upload: suggests paraflow status ID" \
    grep -q "paraflow status $sid" "$T/out"
check "upload: suggests paraflow fetch ID" grep -q "paraflow fetch $sid" \
    "$T/out"
run "$PARAFLOW" upload --port "$PORT" --file "$T/src" --name quiet.bin \
    --quiet
check "upload --quiet: no suggestions" lacks "paraflow fetch" "$T/out"
run "$PARAFLOW" upload --port "$PORT" --file "$T/src" --name json.bin --json
check_eq "upload --json: exit 0" 0 "$RC"
jsid=$(json_get session <"$T/out")
check "upload --json: has the session id" [ -n "$jsid" ]
check "upload --json: no suggestions" lacks "paraflow fetch" "$T/out"

# --- list.
pf list
check_eq "list: exit 0" 0 "$RC"
check "list: shows the session" grep -q "^$sid  *complete .*one\.bin$" \
    "$T/out"
check "list: no escape codes or CR" no_progress_codes "$T/out"
pf list --json
check_eq "list --json: exit 0" 0 "$RC"
check "list --json: one JSON document" valid_json <"$T/out"
check_eq "list --json: status ok" ok "$(json_get status <"$T/out")"
check "list --json: lists the upload" list_has "$sid"
check "list --json: lists the --json upload" list_has "$jsid"
check_eq "list --json: total 3" 3 "$(json_get total <"$T/out")"
pf list --state receiving,assembling
check_eq "list --state receiving,assembling: exit 0" 0 "$RC"
check "list --state receiving,assembling: none" grep -q '^no sessions' \
    "$T/out"
pf list --state nonsense
check_eq "list --state nonsense: exit 2" 2 "$RC"

# --- status of one session, and the summary.
pf status "$sid"
check_eq "status ID: exit 0" 0 "$RC"
check "status ID: complete" grep -q '^state  *complete' "$T/out"
check "status ID: the name" grep -q '^name  *one\.bin$' "$T/out"
check "status ID: the receipt is paraflow digest's" \
    grep -q "^receipt  *$receipt\$" "$T/out"
pf status "$sid" --json
check_eq "status ID --json: exit 0" 0 "$RC"
check "status ID --json: one JSON document" valid_json <"$T/out"
check_eq "status ID --json: session" "$sid" "$(json_get session <"$T/out")"
check_eq "status ID --json: state" complete "$(json_get state <"$T/out")"
check_eq "status ID --json: size" "$size" "$(json_get size <"$T/out")"
check_eq "status ID --json: digest" "$receipt" "$(json_get digest <"$T/out")"
pf status
check_eq "status: exit 0" 0 "$RC"
check "status: counts the complete sessions" \
    grep -q '^sessions  *3 complete' "$T/out"
pf status --json
check_eq "status --json: exit 0" 0 "$RC"
check "status --json: one JSON document" valid_json <"$T/out"
check_eq "status --json: counts.complete" 3 \
    "$(json_get counts.complete <"$T/out")"
check_eq "status --json: no active session" "" \
    "$(json_get active.0.id <"$T/out")"
pf status "$sid" --watch 1
check_eq "status --watch of a finished session: returns, exit 0" 0 "$RC"
check "status --watch of a finished session: shows it once" \
    [ "$(grep -c '^state' "$T/out")" = 1 ]

# --- fetch.
pf fetch "$sid" -o "$T/got"
check_eq "fetch: exit 0" 0 "$RC"
check_eq "fetch: the file is the source" "$(sha "$T/src")" \
    "$(sha "$T/got" 2>/dev/null)"
check "fetch: no .part left" [ ! -e "$T/got.part" ]
check "fetch: non-TTY, no progress codes on stderr" no_progress_codes \
    "$T/err"
check "fetch: says where it went" grep -q "to $T/got" "$T/out"
pf fetch "$sid" -o "$T/got.json" --json
check_eq "fetch --json: exit 0" 0 "$RC"
check "fetch --json: one JSON document" valid_json <"$T/out"
check_eq "fetch --json: status ok" ok "$(json_get status <"$T/out")"
check_eq "fetch --json: bytes, all of them" "$size" \
    "$(json_get bytes <"$T/out")"
check_eq "fetch --json: digest" "$receipt" "$(json_get digest <"$T/out")"
# The receipt is hashed as the body is written: the .part is never read
# back (strace -y names each descriptor's file).
ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 strace -f -qq -y \
    -e trace=read,pread64,readv,preadv,mmap -o "$T/fetch.strace" \
    "$PARAFLOW" fetch "$sid" -o "$T/got.traced" --http "$HTTP_URL" -q \
    >/dev/null 2>&1
check_eq "traced fetch: the file is the source" "$(sha "$T/src")" \
    "$(sha "$T/got.traced" 2>/dev/null)"
check_eq "traced fetch: the .part was not read back" 0 \
    "$(grep -c 'got\.traced\.part>' "$T/fetch.strace")"
mkdir "$T/cwd"
(cd "$T/cwd" && "$PARAFLOW" fetch "$sid" --http "$HTTP_URL" -q \
    >/dev/null 2>&1)
check_eq "fetch without -o: named after the session id" \
    "$(sha "$T/src")" "$(sha "$T/cwd/$sid" 2>/dev/null)"
check_eq "fetch without -o: nothing else written" 1 \
    "$(find "$T/cwd" -mindepth 1 | wc -l | tr -d ' ')"

# -o - writes the file to standard output, the summary to stderr; a
# device or FIFO named by -o is written into, never replaced by a file.
pf fetch "$sid" -o -
check_eq "fetch -o -: exit 0" 0 "$RC"
check_eq "fetch -o -: the file on stdout" "$(sha "$T/src")" "$(sha "$T/out")"
check "fetch -o -: the summary on stderr" grep -q "receipt $receipt" "$T/err"
check "fetch -o -: no file named -" [ ! -e ./- ]
check "fetch -o -: nor -.part" [ ! -e ./-.part ]
pf fetch "$sid" -o - --json
check_eq "fetch -o - --json: a usage error (exit 2)" 2 "$RC"
# /dev/stdout, as a link of our own (a regression must not replace the
# machine's): standard output's file, here a regular one.
ln -s /proc/self/fd/1 "$T/stdout"
pf fetch "$sid" -o "$T/stdout"
check_eq "fetch -o /dev/stdout: the file, and only it, on stdout" \
    "0 $(sha "$T/src")" "$RC $(sha "$T/out")"
check "fetch -o /dev/stdout: the link is still a link" [ -L "$T/stdout" ]
pf fetch "$sid" -o "$T/stdout" --json
check_eq "fetch -o /dev/stdout --json: a usage error (exit 2)" 2 "$RC"
# A link to a regular file: the file it leads to is written, as cp does.
: >"$T/led-to"
ln -s "$T/led-to" "$T/leads"
pf fetch "$sid" -o "$T/leads"
check_eq "fetch -o LINK: exit 0, the file the link leads to written" \
    "0 $(sha "$T/src")" "$RC $(sha "$T/led-to")"
check "fetch -o LINK: the link is still a link" [ -L "$T/leads" ]
mkfifo "$T/fifo"
sha256sum <"$T/fifo" >"$T/fifo.sha" &
pf fetch "$sid" -o "$T/fifo"
wait $!
check_eq "fetch -o FIFO: exit 0" 0 "$RC"
check "fetch -o FIFO: still a FIFO" [ -p "$T/fifo" ]
check_eq "fetch -o FIFO: the file went through it" "$(sha "$T/src")" \
    "$(cut -d' ' -f1 "$T/fifo.sha")"
check "fetch -o FIFO: no .part beside it" [ ! -e "$T/fifo.part" ]
# A null device of its own: a regression must not replace /dev/null.
if mknod "$T/null" c 1 3 2>/dev/null; then
	pf fetch "$sid" -o "$T/null"
	check_eq "fetch -o a null device: exit 0, the receipt checked" 0 "$RC"
	check "fetch -o a null device: still a character device" [ -c "$T/null" ]
else
	echo "# not root: no null device of our own to fetch into"
fi

# Resumed: a .part holding the first 3 MB; only the rest comes.
kept=3000000
head -c "$kept" "$T/src" >"$T/res.part"
pf fetch "$sid" -o "$T/res" --json
check_eq "resumed fetch: exit 0" 0 "$RC"
check_eq "resumed fetch: the file is the source" "$(sha "$T/src")" \
    "$(sha "$T/res" 2>/dev/null)"
check_eq "resumed fetch: only the rest was sent" $((size - kept)) \
    "$(json_get bytes <"$T/out")"
check_eq "resumed fetch: resumed_bytes" "$kept" \
    "$(json_get resumed_bytes <"$T/out")"
check "resumed fetch: no .part left" [ ! -e "$T/res.part" ]

# A whole .part: nothing to send, the receipt is checked all the same.
cp "$T/src" "$T/whole.part"
pf fetch "$sid" -o "$T/whole" --json
check_eq "fetch of a complete .part: exit 0" 0 "$RC"
check_eq "fetch of a complete .part: 0 bytes sent" 0 \
    "$(json_get bytes <"$T/out")"

# A .part with wrong bytes: the receipt catches it; nothing is kept.
head -c "$kept" "$T/src" >"$T/bad.part"
printf 'XXXXXXXX' | dd of="$T/bad.part" bs=1 seek=1000 conv=notrunc \
    2>/dev/null
pf fetch "$sid" -o "$T/bad"
check_eq "fetch resumed from a wrong .part: exit 6" 6 "$RC"
check "fetch resumed from a wrong .part: no file" [ ! -e "$T/bad" ]
check "fetch resumed from a wrong .part: .part removed" \
    [ ! -e "$T/bad.part" ]
check "fetch resumed from a wrong .part: says the .part was to blame" \
    grep -q 'resumed from' "$T/err"
cp "$T/src" "$T/bad.part"
flip_byte "$T/bad.part" $((size - 1))
pf fetch "$sid" -o "$T/bad" --json
expect_json_error "fetch of a wrong complete .part, --json" 6 integrity
check "fetch of a wrong complete .part: no file" [ ! -e "$T/bad" ]
pf fetch "$sid" -o "$T/bad" --json
check_eq "fetch again after the mismatch: exit 0" 0 "$RC"
check_eq "fetch again after the mismatch: the whole file came" "$size" \
    "$(json_get bytes <"$T/out")"
check_eq "fetch again after the mismatch: the file is the source" \
    "$(sha "$T/src")" "$(sha "$T/bad" 2>/dev/null)"

# A .part longer than the file cannot be a prefix of it: start over.
{ cat "$T/src"; printf 'trailing'; } >"$T/long.part"
pf fetch "$sid" -o "$T/long" --json
check_eq "fetch with a too long .part: exit 0" 0 "$RC"
check_eq "fetch with a too long .part: the file is the source" \
    "$(sha "$T/src")" "$(sha "$T/long" 2>/dev/null)"

# A .part that is a symbolic link is not followed.
echo precious >"$T/target"
ln -s "$T/target" "$T/link.part"
pf fetch "$sid" -o "$T/link"
check_eq "fetch onto a symlinked .part: exit 7" 7 "$RC"
check_eq "fetch onto a symlinked .part: the target is untouched" \
    precious "$(cat "$T/target")"
check "fetch onto a symlinked .part: no file" [ ! -e "$T/link" ]

# Nor one that is a hard link: writing it would change the other file.
echo precious >"$T/target2"
ln "$T/target2" "$T/hard.part"
pf fetch "$sid" -o "$T/hard"
check_eq "fetch onto a hard-linked .part: exit 7" 7 "$RC"
check "fetch onto a hard-linked .part: the other file is untouched" \
    cmp -s "$T/target2" <(echo precious)
check "fetch onto a hard-linked .part: no file" [ ! -e "$T/hard" ]

# --- Unknown sessions, wrong passwords.
for c in status fetch cancel; do
	if [ "$c" = fetch ]; then
		pf fetch "$NOSUCH" -o "$T/nosuch"
	else
		pf "$c" "$NOSUCH"
	fi
	check_eq "$c of an unknown session: exit 9" 9 "$RC"
	check "$c of an unknown session: names the session and server" \
	    grep -q "$HTTP_URL.*$NOSUCH" "$T/err"
done
pf status "$NOSUCH" --json
expect_json_error "status of an unknown session, --json" 9 not_found
check_eq "status of an unknown session, --json: names it" "$NOSUCH" \
    "$(json_get session <"$T/out")"
check "fetch of an unknown session: no file" [ ! -e "$T/nosuch" ]

pf list --secret wrong-password
check_eq "list with a wrong password: exit 3" 3 "$RC"
check "list with a wrong password: names the server" \
    grep -q "$HTTP_URL" "$T/err"
pf status "$sid" --user nobody --json
expect_json_error "status as an unknown user, --json" 3 auth_failed
pf fetch "$sid" -o "$T/nopw" --secret wrong-password
check_eq "fetch with a wrong password: exit 3" 3 "$RC"
check "fetch with a wrong password: no file" [ ! -e "$T/nopw" ]
echo secret123 >"$T/pw"
pf list --secret-file "$T/pw"
check_eq "--secret-file as for upload: exit 0" 0 "$RC"

# --- cancel of a running upload. The uploader sends at 256 KiB a second
# (--limit-rate), so its 64 MiB stay "receiving" for minutes while we look
# at the session and cancel it; its next chunk then meets the cancellation.
# (Earlier versions held it with SIGSTOP bursts; a fast machine finished
# the upload within a burst.)
mkfile "$T/big" $((64 * 1024 * 1024))
"$PARAFLOW" upload --port "$PORT" --file "$T/big" --name big.bin \
    --threads 1 --chunk-size 64K --limit-rate 256K --json \
    >"$T/up.out" 2>"$T/up.err" &
upid=$!
PIDS+=("$upid")
rsid=
# Up to 30 s: a sanitizer build with TLS needs a few seconds before its
# first chunk.
for ((i = 0; i < 300; i++)); do
	sleep 0.1
	kill -0 "$upid" 2>/dev/null || break
	run "$PARAFLOW" list --state receiving --json --http "$HTTP_URL"
	[ "$(json_get sessions.0.chunks_acked <"$T/out")" -gt 0 ] 2>/dev/null &&
	    rsid=$(json_get sessions.0.id <"$T/out") && break
done
check "a running upload shows in list --state receiving ($rsid)" \
    [ -n "$rsid" ]
[ -n "$rsid" ] || sed 's/^/#   uploader: /' "$T/up.err" "$T/up.out"
pf status "$rsid"
check "status of the running upload: receiving" \
    grep -q '^state  *receiving' "$T/out"
pf status
check "status summary: counts the running upload" \
    grep -q '1 receiving' "$T/out"
check "status summary: lists it as active" grep -q "^$rsid .*big\.bin" \
    "$T/out"
pf status --json
check_eq "status --json: the active session" "$rsid" \
    "$(json_get active.0.id <"$T/out")"
pf fetch "$rsid" -o "$T/early"
check_eq "fetch of a session not finished: exit 10" 10 "$RC"
check "fetch of a session not finished: no file" [ ! -e "$T/early" ]
check "fetch of a session not finished: no .part" [ ! -e "$T/early.part" ]
pf fetch "$rsid" -o "$T/early" --json
expect_json_error "fetch of a session not finished, --json" 10 not_finished
# A watch of the running session ends by itself once it is cancelled.
"$PARAFLOW" status "$rsid" --watch 1 --http "$HTTP_URL" >"$T/watch.out" \
    2>"$T/watch.err" &
wpid=$!
PIDS+=("$wpid")
# The watch must have shown the session receiving before the cancel: a
# fixed 1.2 s was too short for its first answer on a loaded machine.
wait_for 60 grep -q '^state  *receiving' "$T/watch.out"
pf cancel "$rsid"
check_eq "cancel of a running upload: exit 0" 0 "$RC"
check_eq "cancel of a running upload: says cancelled" \
    "cancelled session $rsid" "$OUT"
wrc=0
for ((i = 0; i < 400; i++)); do
	kill -0 "$wpid" 2>/dev/null || break
	sleep 0.1
done
wait "$wpid" || wrc=$?
check_eq "status --watch ends when the session is cancelled, exit 0" 0 \
    "$wrc"
check "status --watch: showed receiving" grep -q '^state  *receiving' \
    "$T/watch.out"
check_eq "status --watch: showed cancelled last" cancelled \
    "$(sed -n 's/^state  *\([a-z]*\).*/\1/p' "$T/watch.out" | tail -n 1)"
pf status "$rsid" --json
check_eq "status after cancel: cancelled" cancelled \
    "$(json_get state <"$T/out")"
urc=0
wait "$upid" || urc=$?
upid=
check_eq "the cancelled upload exits with 8 (server-side failure)" 8 "$urc"
check_eq "the cancelled upload reports error.code cancelled" cancelled \
    "$(json_get error.code <"$T/up.out")"
pf fetch "$rsid" -o "$T/cancelled"
check_eq "fetch of a cancelled session: exit 10" 10 "$RC"

# Killed, then cancelled: the same command run again starts a new upload
# (the state file it kept names a session that will not resume).
"$PARAFLOW" upload --port "$PORT" --file "$T/big" --name killed.bin \
    --threads 1 --chunk-size 64K --limit-rate 256K >/dev/null 2>&1 &
upid=$!
PIDS+=("$upid")
ksid=
for ((i = 0; i < 300; i++)); do
	sleep 0.1
	run "$PARAFLOW" list --state receiving --json --http "$HTTP_URL"
	[ "$(json_get sessions.0.chunks_acked <"$T/out")" -gt 0 ] 2>/dev/null &&
	    ksid=$(json_get sessions.0.id <"$T/out") && break
done
kill -9 "$upid" 2>/dev/null
wait "$upid" 2>/dev/null
upid=
pf cancel "$ksid"
check_eq "the killed upload's session cancelled" \
    "cancelled session $ksid" "$OUT"
run "$PARAFLOW" upload --port "$PORT" --file "$T/big" --name killed.bin \
    --threads 1 --chunk-size 64K --json
check_eq "the rerun after the cancel: exit 0" 0 "$RC"
check "the rerun after the cancel: a new session" \
    [ "$(json_get session <"$T/out")" != "$ksid" ]
check "the rerun after the cancel: says why" \
    grep -q "session $ksid was cancelled" "$T/err"

# --- cancel of a finished upload deletes it.
pf cancel "$jsid" --json
check_eq "cancel of a finished upload: exit 0" 0 "$RC"
check_eq "cancel of a finished upload --json: action deleted" deleted \
    "$(json_get action <"$T/out")"
pf status "$jsid"
check_eq "status of the deleted session: exit 9" 9 "$RC"
pf fetch "$jsid" -o "$T/deleted"
check_eq "fetch of the deleted session: exit 9" 9 "$RC"
pf cancel "$sid"
check_eq "cancel of a finished upload: says deleted" \
    "deleted session $sid" "$OUT"

# --- How the commands trust the HTTPS gateway.
check "the gateway is HTTPS ($HTTP_URL)" grep -q '^https://' <<<"$HTTP_URL"
known=$PARAFLOW_STATE_DIR/known_servers
gw_key=127.0.0.1:$HTTP_PORT
pf list
check_eq "list: exit 0" 0 "$RC"
# upload made the state directory: the gateway may be known already.
sed -i "/^$gw_key /d" "$known" 2>/dev/null
pf list
check_eq "first use: exit 0" 0 "$RC"
check "first use: says which key it accepted" \
    grep -qF "first connection to $gw_key: accepted its key $GW_PIN" "$T/err"
check "first use: recorded in known_servers" \
    grep -qxF "$gw_key $GW_PIN" "$known"
pf list
check_eq "the known key again: exit 0" 0 "$RC"
check_eq "the known key again: nothing on stderr" "" "$(cat "$T/err")"
pf list --pin "$GW_PIN"
check_eq "--pin (paraflowd --fingerprint): exit 0" 0 "$RC"
pf list --pin "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
check_eq "--pin of another key: exit 3" 3 "$RC"
check "--pin of another key: says so" grep -q 'pinned public key' "$T/err"
pf list --pin nonsense
check_eq "--pin that is not a pin: exit 2" 2 "$RC"
pf list --cacert "$GW_CA"
check_eq "--cacert with the gateway's certificate: exit 0" 0 "$RC"
run "$PARAFLOW" list --cacert "$GW_CA" --http "https://localhost:$HTTP_PORT"
check_eq "--cacert, by the name localhost: exit 0" 0 "$RC"
pf list --ca-system
check_eq "--ca-system: a self-signed gateway is refused: exit 3" 3 "$RC"
pf fetch "$sid" --ca-system --json -o "$T/nottrusted"
expect_json_error "--ca-system, fetch --json" 3 auth_failed
check_eq "--ca-system, fetch: nothing written" "" \
    "$(find "$T" -maxdepth 1 -name 'nottrusted*')"
run "$PARAFLOW" list --http "http://127.0.0.1:$HTTP_PORT"
check_eq "plain http:// to the HTTPS gateway: exit 5" 5 "$RC"
check "plain http:// to the HTTPS gateway: says give https://" \
    grep -q 'give https://' "$T/err"

# The gateway comes back on its port with a new key: refused, then
# accepted once the line is deleted.
old_pin=$GW_PIN
stop_server
mv "$TLS_DIR" "$T/old.tls"
start_gw --min-rate 1 --http-port "$HTTP_PORT"
check "restarted with a new key ($GW_PIN)" [ "$GW_PIN" != "$old_pin" ]
pf list
check_eq "a new key: exit 3" 3 "$RC"
check "a new key: names the key shown" grep -qF "$GW_PIN" "$T/err"
check "a new key: names the key recorded" grep -qF "$old_pin" "$T/err"
line=$(grep -n "^$gw_key " "$known" | cut -d: -f1)
check "a new key: names the line to delete ($line)" \
    grep -qF "sed -i '${line}d' $known" "$T/err"
pf status "$sid" --json
expect_json_error "a new key, --json" 3 auth_failed
sed -i "${line}d" "$known"
pf list
check_eq "the line deleted: accepted, exit 0" 0 "$RC"
check "the line deleted: the new key recorded" \
    grep -qxF "$gw_key $GW_PIN" "$known"

# --- A closed port: exit 5, naming the URL.
dead_url=$HTTP_URL
stop_server
run "$PARAFLOW" list --http "$dead_url"
check_eq "connection refused: exit 5" 5 "$RC"
check "connection refused: names the URL" grep -q "$dead_url" "$T/err"
run "$PARAFLOW" fetch "$sid" --http "$dead_url" --json -o "$T/dead"
expect_json_error "connection refused, --json" 5 network

# --- A gateway started with --http-no-tls: http://, and https:// fails.
start_gw --http-no-tls
check "--http-no-tls: an http:// gateway" grep -q '^http://' <<<"$HTTP_URL"
pf list
check_eq "--http-no-tls: list over http://: exit 0" 0 "$RC"
run "$PARAFLOW" list --http "https://127.0.0.1:$HTTP_PORT"
check_eq "https:// to a plain gateway: exit 5" 5 "$RC"
check "https:// to a plain gateway: says give http://" \
    grep -q 'reached with http://' "$T/err"
run "$PARAFLOW" list --http "https://127.0.0.1:$HTTP_PORT" --pin "$old_pin"
check_eq "https:// to a plain gateway, --pin: exit 5" 5 "$RC"
check "https:// to a plain gateway, --pin: says give http://" \
    grep -q 'give http://' "$T/err"

# Failed logins until the gateway throttles them (429): still exit 3, as
# on the native port, with the server's words. Last with this server: the
# address may stay throttled a while.
for ((i = 0; i < 20; i++)); do
	pf list --user mallory --secret wrong --json
	[ "$(json_get error.code <"$T/out")" = too_many_requests ] && break
done
expect_json_error "list once the logins are throttled, --json" 3 \
    too_many_requests
check "the throttled login says so" \
    grep -q 'too many failed logins' "$T/out"
stop_server

# --- A server not to be trusted (a few lines of Python): a name in
# Content-Disposition, a file longer than its session says, a JSON answer
# over the cap, a redirect to ftp://, a redirect to another host.
mkfile "$T/m.data" 200000
m_digest=$("$PARAFLOW" digest --chunk-size 64K "$T/m.data" | cut -d' ' -f1)
M_DATA=$T/m.data M_DIGEST=$m_digest M_LOG=$T/m.log M_PORT=$T/m.port \
    python3 - <<'PY' 2>"$T/m.err" &
import http.server, json, os, time
data = open(os.environ["M_DATA"], "rb").read()
SID = "11111111-2222-4333-8444-555555555555"
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def send(self, code, body, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        with open(os.environ["M_LOG"], "a") as log:
            log.write("%s %s auth=%s\n" % (self.headers.get("Host"),
                self.path, "yes" if self.headers.get("Authorization")
                else "no"))
        mode, _, rest = self.path[1:].partition("/")
        port = self.server.server_address[1]
        if mode == "slow":
            time.sleep(30)
            self.send(200, b"{}")
        elif mode == "nogw":
            self.send(404, b"<html>no</html>", "text/html")
        elif mode == "ctl":
            # Controls in the message, and a cut in the middle of a
            # character at 160 bytes.
            self.send(500, json.dumps({"error": {"code": "internal",
                "message": "\x1b]0;owned\x07\x9b31m" + "a" * 144 +
                "\u00e9" * 20}}).encode())
        elif mode == "garbage":
            self.send(200, b"\x1b[2J\x1b]0;owned\x07")
        elif mode == "hdrs":
            self.send_response(200)
            for i in range(4000):
                self.send_header("X-Filler-%d" % i, "f" * 80)
            self.end_headers()
            self.wfile.write(b"{}")
        elif mode == "fat":
            # One session a page, each 4 MiB, with no end in sight.
            self.send(200, json.dumps({"sessions": [{"id": SID,
                "name": "n" * (4 << 20)}], "total": 10 ** 12,
                "next": "/more"}).encode())
        elif mode == "huge":
            big = {"id": SID, "state": "receiving", "size": 2 ** 62,
                "chunk_size": 4194304, "chunks_total": 2 ** 62 + 1,
                "chunks_acked": 2 ** 62, "rate_bps": 1e300,
                "name": "evil\u202etxt.exe\u009b2J"}
            if rest.startswith("api/v1/stats"):
                self.send(200, json.dumps({"version": "x\u009b2J",
                    "sessions": {"receiving": 1},
                    "rate_bps": 1e300}).encode())
            elif rest.startswith("api/v1/sessions/"):
                self.send(200, json.dumps(big).encode())
            else:
                self.send(200, json.dumps({"sessions": [big],
                    "total": 1, "next": None}).encode())
        elif mode == "splice" and rest.endswith("/file"):
            # Asked for the rest of a .part, sends another range.
            self.send(206, data, "application/octet-stream",
                [("Content-Range", "bytes 0-%d/%d" % (len(data) - 1,
                  len(data)))])
        elif mode == "ftp":
            self.send(302, b"", extra=[("Location",
                "ftp://127.0.0.1:%d/x" % port)])
        elif mode == "away":
            self.send(302, b"", extra=[("Location",
                "http://localhost:%d/ok/%s" % (port, rest))])
        elif rest.endswith("/file"):
            body = data + (b"x" * 100 if mode == "big" else b"")
            self.send(200, body, "application/octet-stream",
                [("Content-Disposition",
                  'attachment; filename="../evil"')])
        elif rest.startswith("api/v1/sessions/"):
            self.send(200, json.dumps({"id": SID, "state": "complete",
                "name": "../evil", "size": len(data),
                "chunk_size": 65536, "digest": os.environ["M_DIGEST"]})
                .encode())
        elif mode == "big":
            self.send(200, b'{"sessions": [' + b" " * (65 << 20) + b"]}")
        else:
            self.send(200, b'{"sessions": [], "total": 0, "next": null}')
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(os.environ["M_PORT"] + ".tmp", "w").write(str(s.server_address[1]))
os.rename(os.environ["M_PORT"] + ".tmp", os.environ["M_PORT"])
s.serve_forever()
PY
PIDS+=("$!")
mport=$(started "$T/m.port" "python mock server" "$T/m.err") || exit 1
M=http://127.0.0.1:$mport
MSID=11111111-2222-4333-8444-555555555555
mkdir "$T/mcwd"
RC=0
(cd "$T/mcwd" && timeout 60 "$PARAFLOW" fetch "$MSID" --http "$M/ok" -q \
    >/dev/null 2>&1) || RC=$?
check_eq "mock: fetch: exit 0" 0 "$RC"
check_eq "mock: the file is named after the session, not the server" \
    "$(sha "$T/m.data")" "$(sha "$T/mcwd/$MSID" 2>/dev/null)"
check_eq "mock: no file named by Content-Disposition or \"name\"" "" \
    "$(find "$T" -name evil)"
run "$PARAFLOW" fetch "$MSID" --http "$M/big" -o "$T/m.big"
check_eq "mock: a file longer than the session's size: exit 6" 6 "$RC"
check "mock: a file longer than the session's size: no file" \
    [ ! -e "$T/m.big" ]
run "$PARAFLOW" list --http "$M/big" --json
expect_json_error "mock: a JSON answer over 64 MiB" 8 protocol
run "$PARAFLOW" list --http "$M/ftp"
check_eq "mock: a redirect to ftp:// is not followed: exit 8" 8 "$RC"
check "mock: a redirect to ftp:// is not followed: nothing fetched" \
    lacks '^127.0.0.1:[0-9]* /x ' "$T/m.log"
run "$PARAFLOW" status "$MSID" --http "$M/away"
check_eq "mock: a redirect to another host is followed: exit 0" 0 "$RC"
check "mock: the password went to the host named" \
    grep -q "^127.0.0.1:$mport /away/.* auth=yes" "$T/m.log"
check "mock: the password did not go to the other host" \
    grep -q "^localhost:$mport /ok/.* auth=no" "$T/m.log"

# A .part the server will not resume (it ignores Range): the whole file
# comes again, and nothing of the .part is kept.
head -c 1000 "$T/m.data" >"$T/m.norange.part"
run "$PARAFLOW" fetch "$MSID" --http "$M/ok" -o "$T/m.norange" --json
check_eq "mock: a server ignoring Range: exit 0" 0 "$RC"
check_eq "mock: a server ignoring Range: the whole file came" 200000 \
    "$(json_get bytes <"$T/out")"
check_eq "mock: a server ignoring Range: resumed_bytes 0" 0 \
    "$(json_get resumed_bytes <"$T/out")"
check_eq "mock: a server ignoring Range: the file is the source" \
    "$(sha "$T/m.data")" "$(sha "$T/m.norange" 2>/dev/null)"
# Asked for bytes 1000-, it sends 0-: not spliced after the .part.
head -c 1000 "$T/m.data" >"$T/m.splice.part"
run "$PARAFLOW" fetch "$MSID" --http "$M/splice" -o "$T/m.splice"
check_eq "mock: another range than asked: exit 8" 8 "$RC"
check "mock: another range than asked: no file" [ ! -e "$T/m.splice" ]
check_eq "mock: another range than asked: the .part is untouched" 1000 \
    "$(stat -c %s "$T/m.splice.part")"

# Numbers near 2^63 in a session: no overflow (UBSan stops the program),
# and a percentage that is one.
run "$PARAFLOW" status "$MSID" --http "$M/huge"
check_eq "mock: huge counters: status ID exits 0" 0 "$RC"
check "mock: huge counters: 99% received" grep -q '^state  *receiving, 99%' \
    "$T/out"
check "mock: huge counters: no runtime error" lacks 'runtime error' "$T/err"
run "$PARAFLOW" status --http "$M/huge"
check_eq "mock: huge counters: the summary exits 0" 0 "$RC"
check "mock: huge counters: the summary shows 99%" grep -q ' 99%  ' "$T/out"
run "$PARAFLOW" status --http "$M/huge" --json
check_eq "mock: huge counters: status --json exits 0" 0 "$RC"
check "mock: huge counters: status --json is one JSON document" \
    valid_json <"$T/out"

# Server text drives no terminal: C0, C1 and bidi controls are escaped in
# the tables, and --json is plain ASCII.
run "$PARAFLOW" list --http "$M/huge"
check "mock: list: no C0 or C1 control reaches the terminal" \
    lacks $'\033\|\xc2\x9b' "$T/out"
check "mock: list: the bidi override is escaped" \
    grep -qF 'evil\xe2\x80\xaetxt' "$T/out"
check "mock: list: the C1 CSI is escaped" grep -qF '\xc2\x9b2J' "$T/out"
run "$PARAFLOW" list --http "$M/huge" --json
check "mock: list --json: one JSON document" valid_json <"$T/out"
check "mock: list --json: ASCII only" env LC_ALL=C grep -qv $'[\x80-\xff]' \
    "$T/out"
check_eq "mock: list --json: the name as the server gave it" \
    "$(printf 'evil\u202etxt.exe\u009b2J')" "$(json_get sessions.0.name \
    <"$T/out")"
run "$PARAFLOW" status "$MSID" --http "$M/huge"
check "mock: status ID: no control reaches the terminal" \
    lacks $'\033\|\xc2\x9b\|\xe2\x80\xae' "$T/out"

# An error message with controls, cut in the middle of a character: one
# clean line, and with --json still one JSON document.
run "$PARAFLOW" list --http "$M/ctl"
check_eq "mock: a 500 with controls in its message: exit 8" 8 "$RC"
check "mock: a 500 with controls in its message: none on stderr" \
    lacks $'\033\|\a\|\xc2\x9b' "$T/err"
run "$PARAFLOW" list --http "$M/ctl" --json
expect_json_error "mock: a 500 with a message cut mid-character, --json" 8 \
    internal
run "$PARAFLOW" list --http "$M/garbage"
check_eq "mock: an answer that is no JSON: exit 8" 8 "$RC"
check "mock: an answer that is no JSON: no control on stderr" \
    lacks $'\033\|\a' "$T/err"

# A --state list too long for a request is refused, not cut short into
# another request.
states=$(printf 'receiving,%.0s' $(seq 60))complete
run "$PARAFLOW" list --http "$M/ok" --state "$states"
check_eq "mock: list --state too long for a request: exit 2" 2 "$RC"
check "mock: list --state too long: nothing asked" \
    lacks "/ok/api/v1/sessions?limit=500&offset=0&state=receiving,receiving" \
    "$T/m.log"

# 404 from what is not a gateway is no "no such session" (9).
run "$PARAFLOW" list --http "$M/nogw"
check_eq "mock: list from a URL that is no gateway: exit 1" 1 "$RC"
run "$PARAFLOW" status "$MSID" --http "$M/nogw"
check_eq "mock: status ID from a URL that is no gateway: exit 9" 9 "$RC"

# What a server sends is bounded: headers without end, and list pages
# of fat sessions without end.
run "$PARAFLOW" list --http "$M/hdrs"
check_eq "mock: 300 KiB of headers: exit 8" 8 "$RC"
check "mock: 300 KiB of headers: says so" grep -q 'headers' "$T/err"
run "$PARAFLOW" list --http "$M/fat" --json
expect_json_error "mock: a session list of 4 MiB sessions without end" 8 \
    protocol
check "mock: a session list without end: stopped at 64 MiB" \
    [ "$(grep -c ' /fat/api/v1/sessions' "$T/m.log")" -le 20 ]

# Ctrl-C stops a watch at once, even in a request to a stalled server.
"$PARAFLOW" status "$MSID" --watch 1 --http "$M/slow" --timeout 60 \
    >"$T/slow.out" 2>"$T/slow.err" &
wpid=$!
PIDS+=("$wpid")
# Stuck in the request: the mock logged it (it then stalls 30 s). A fixed
# 1 s could send the SIGINT before a slow start had even asked.
wait_for 60 grep -q ' /slow/' "$T/m.log"
t0=$(date +%s)
kill -INT "$wpid"
wrc=0
for ((i = 0; i < 400; i++)); do
	kill -0 "$wpid" 2>/dev/null || break
	sleep 0.1
done
wait "$wpid" || wrc=$?
# 10 s: far below the mock's 30 s stall and the client's 60 s timeout,
# with room for an ASan exit on a loaded machine.
check "mock: SIGINT ends a watch stuck in a request within 10 s" \
    [ $(($(date +%s) - t0)) -le 10 ]
check_eq "mock: SIGINT ends a watch: exit 0" 0 "$wrc"
check "mock: SIGINT ends a watch: no error shown" lacks 'paraflow:' \
    "$T/slow.err"

done_testing
