#!/bin/bash
# SPDX-License-Identifier: MIT
# The command-line interfaces: help and version texts, usage errors (exit
# 2), local file errors (7), network errors (5), the --json error object,
# "paraflow digest" against the server's receipt, and the human output.
. "$(dirname "$0")/lib.sh"

# --- Help and version.
run "$PARAFLOW" --help
check_eq "paraflow --help: exit 0" 0 "$RC"
check "paraflow --help: mentions upload" grep -q 'upload' "$T/out"
check "paraflow --help: documents the exit codes" \
    grep -q '^Exit status' "$T/out"
check_eq "paraflow --help: exit codes 0 to 8 each explained" 9 \
    "$(grep -E '^  [0-8]  [a-z]' "$T/out" | cut -c3 | sort -u | wc -l |
    tr -d ' ')"

run "$PARAFLOWD" --help
check_eq "paraflowd --help: exit 0" 0 "$RC"
check "paraflowd --help: mentions --users" grep -q -- '--users' "$T/out"
check "paraflowd --help: mentions --add-user" grep -q -- '--add-user' \
    "$T/out"

run "$PARAFLOW" --version
check_eq "paraflow --version: exit 0" 0 "$RC"
check "paraflow --version: prints a version ($OUT)" \
    grep -Eq '^paraflow [0-9]+\.[0-9]+\.[0-9]+' "$T/out"
client_version=${OUT#paraflow }
run "$PARAFLOWD" --version
check_eq "paraflow and paraflowd report the same version" \
    "$client_version" "${OUT#paraflowd }"

# --- Usage errors: exit 2, with a message on stderr and nothing on stdout.
usage() {
	local desc=$1
	shift
	run "$PARAFLOW" "$@"
	check_eq "$desc: exit 2" 2 "$RC"
	check "$desc: says why on stderr" [ -n "$ERR" ]
	check_eq "$desc: nothing on stdout" "" "$OUT"
}

mkfile "$T/src" 100000
usage "no arguments"
usage "unknown command" frobnicate
usage "upload without --file" upload --port 1
usage "--threads 0" upload --file "$T/src" --threads 0
usage "--threads 65" upload --file "$T/src" --threads 65
usage "--chunk-size 1000" upload --file "$T/src" --chunk-size 1000
usage "--chunk-size 3M (not a power of two)" upload --file "$T/src" \
    --chunk-size 3M
usage "unknown option" upload --file "$T/src" --no-such-option
usage "stray argument" upload --file "$T/src" extra
check "unknown command: names it" grep -q frobnicate <(
	"$PARAFLOW" frobnicate 2>&1)

# shellcheck disable=SC2119 # no extra server options
start_server

# --- Local file errors: exit 7, before any byte is sent.
run "$PARAFLOW" upload --port "$PORT" --quiet --file "$T/no-such-file"
check_eq "missing local file: exit 7" 7 "$RC"
check "missing local file: names the file" grep -q 'no-such-file' "$T/err"
mkdir "$T/dir"
run "$PARAFLOW" upload --port "$PORT" --quiet --file "$T/dir"
check_eq "directory as --file: exit 7" 7 "$RC"
check "directory as --file: says it is not a regular file" \
    grep -q 'not a regular file' "$T/err"

run "$PARAFLOW" upload --port "$PORT" --file "$T/no-such-file" --json
check_eq "missing local file, --json: exit 7" 7 "$RC"
check "missing local file, --json: stdout is valid JSON" valid_json \
    <"$T/out"
check_eq "missing local file, --json: status error" error \
    "$(json_get status <"$T/out")"
check_eq "missing local file, --json: error.code" io \
    "$(json_get error.code <"$T/out")"
check "missing local file, --json: error.message" \
    [ -n "$(json_get error.message <"$T/out")" ]

# --- An upload, in human and JSON form, against "paraflow digest".
mkfile "$T/src" $((5 * 1024 * 1024 + 3))
receipt=$("$PARAFLOW" digest "$T/src" | cut -d' ' -f1)
check "paraflow digest: a 64-digit hex receipt" \
    grep -Eqx '[0-9a-f]{64}' <(echo "$receipt")
check_eq "paraflow digest: second field is the file name" "$T/src" \
    "$("$PARAFLOW" digest "$T/src" | cut -d' ' -f3-)"

# No --quiet and no --json: stderr is not a terminal here, so no progress
# bar may be drawn (no escape codes, no carriage returns).
run "$PARAFLOW" upload --port "$PORT" --file "$T/src" --name human.bin
check_eq "human output: exit 0" 0 "$RC"
check "non-TTY upload: no escape codes or CR on stderr" no_progress_codes \
    "$T/err"
check "non-TTY upload: stderr empty" [ ! -s "$T/err" ]
sid=$(sed -n 's/^session \(.*\)$/\1/p' "$T/out")
got_receipt=$(sed -n 's/^receipt \(.*\)$/\1/p' "$T/out")
check "human output: names the session id ($sid)" \
    grep -Eqx '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}' \
    <(echo "$sid")
check_eq "human output: receipt equals paraflow digest" "$receipt" \
    "$got_receipt"
check "human output: says what was uploaded" \
    grep -q "^uploaded $T/src as human.bin" "$T/out"
check_eq "human output: the session holds the file" "$(sha "$T/src")" \
    "$(sha "$(stored_file "$sid" human.bin)" 2>/dev/null)"

run "$PARAFLOW" upload --port "$PORT" --file "$T/src" --name json.bin --json
check_eq "--json upload: exit 0" 0 "$RC"
check "--json upload: stdout is valid JSON" valid_json <"$T/out"
check_eq "--json upload: status ok" ok "$(json_get status <"$T/out")"
check_eq "--json upload: receipt equals paraflow digest" "$receipt" \
    "$(json_get digest <"$T/out")"
check_eq "--json upload: the default chunk size, 4 MiB, on local storage" \
    4194304 "$(json_get chunk_size <"$T/out")"
check_eq "server metadata keeps the same receipt" "$receipt" \
    "$(json_get digest <"$STORAGE/$(json_get session <"$T/out")/.paraflow.json")"
r64=$("$PARAFLOW" digest --chunk-size 64K "$T/src" | cut -d' ' -f1)
check "paraflow digest --chunk-size 64K: another receipt than with 4M" \
    [ "${r64:-$receipt}" != "$receipt" ]

run "$PARAFLOW" digest "$T/no-such-file"
check_eq "paraflow digest of a missing file: exit 7" 7 "$RC"

# --- Connection refused: the port of a server that has stopped.
dead_port=$PORT
stop_server
run "$PARAFLOW" upload --port "$dead_port" --quiet --file "$T/src"
check_eq "connection refused: exit 5" 5 "$RC"
check "connection refused: names host and port ($ERR)" \
    grep -q "127\.0\.0\.1.*$dead_port" "$T/err"

run "$PARAFLOW" upload --port "$dead_port" --file "$T/src" --json
check_eq "connection refused, --json: exit 5" 5 "$RC"
check "connection refused, --json: stdout is valid JSON" valid_json \
    <"$T/out"
check_eq "connection refused, --json: status error" error \
    "$(json_get status <"$T/out")"
check_eq "connection refused, --json: error.code" network \
    "$(json_get error.code <"$T/out")"
check "connection refused, --json: message names the port" \
    grep -q "$dead_port" <(json_get error.message <"$T/out")

done_testing
