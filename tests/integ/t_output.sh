#!/bin/bash
# SPDX-License-Identifier: MIT
# What a peer says never reaches a terminal or a log raw. A hostile server
# (tests/integ/hostile.py) answers "paraflow upload" with ERROR messages,
# a stored name and a session id full of terminal escapes, bidi controls
# and newlines: the client's stdout and stderr, with -v and with --json,
# and its progress bar on a terminal, hold none of them raw, and show them
# escaped (\xNN). Then a raw client sends a real paraflowd -vv an OPEN
# whose "resume" holds a newline and an ESC: its log gets no forged line
# and no raw control.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

mkfile "$T/src" 300000

# raw_free FILE: FILE holds no C0 control but newline (ESC, BEL, CR...),
# no DEL, no C1 control and no bidi control, as bytes.
# shellcheck disable=SC2317 # called through check
raw_free() {
	! LC_ALL=C grep -aq $'[\x01-\x09\x0b-\x1f\x7f]\|\xc2[\x80-\x9f]' "$1" &&
	    ! LC_ALL=C grep -aq $'\xe2\x80[\x8e\x8f\xa8-\xae]\|\xe2\x81[\xa6-\xa9]' \
	    "$1"
}

# no_forged FILE: no line of FILE starts with the text after the newline.
# shellcheck disable=SC2317 # called through check
no_forged() {
	! grep -aq '^forged' "$1"
}

# hostile MODE: starts tests/integ/hostile.py in MODE; sets HPORT.
hostile() {
	[ -n "${HPID:-}" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
	rm -f "$T/hport"
	PYTHONDONTWRITEBYTECODE=1 python3 "$here/hostile.py" "$1" "$T/hport" \
	    2>>"$T/hostile.log" &
	HPID=$!
	PIDS+=("$HPID")
	HPORT=$(started "$T/hport" hostile.py "$T/hostile.log") || exit 1
}

# against MODE WHAT EXIT: uploads to the hostile server three ways (plain,
# -v, --json) and checks the exit status and everything printed.
against() {
	local mode=$1 what=$2 want=$3 how
	hostile "$mode"
	for how in plain -v --json; do
		local args=(--no-resume --chunk-size 64K)
		[ "$how" != plain ] && args+=("$how")
		run "$PARAFLOW" upload --no-tls --port "$HPORT" --file "$T/src" \
		    "${args[@]}"
		cat "$T/out" "$T/err" >"$T/all"
		check_eq "$what ($how): exit $want" "$want" "$RC"
		check "$what ($how): no raw control on stdout or stderr" \
		    raw_free "$T/all"
		check "$what ($how): no forged line" no_forged "$T/all"
		if [ "$how" = --json ]; then
			check "$what (--json): one JSON document" valid_json \
			    <"$T/out"
			check "$what (--json): ASCII only" \
			    env LC_ALL=C grep -qv $'[\x80-\xff]' "$T/out"
		fi
		if [ "$mode" = busy ] && [ "$how" = -v ]; then
			check "$what (-v): the retry is logged, escaped" \
			    grep -qF 'info: upload refused: \x1b]0;owned' \
			    "$T/err"
		fi
		if [ "$how" != --json ] && [ "$mode" != session ]; then
			check "$what ($how): the text is shown, escaped" \
			    grep -qF '\x1b]0;owned\x07\x1b[31mred\xe2\x80\xae' \
			    "$T/all"
		fi
	done
}

against auth "an ERROR to the login" 3
against open "an ERROR to OPEN" 4
against busy "a busy ERROR (retried, logged), then one to OPEN" 4
against name "a stored name with controls" 0
against session "a session id that is none" 8

# The stored name in --json is the server's, exactly (JSON escapes it).
hostile name
run "$PARAFLOW" upload --no-tls --port "$HPORT" --file "$T/src" --json \
    --no-resume
want=$(python3 "$here/hostile.py" text)
check_eq "--json: the stored name is the server's, exactly" "$want" \
    "$(python3 -c 'import json,sys; print(ascii(json.load(sys.stdin)["name"]))' \
    <"$T/out")"

# On a terminal the progress bar shows the stored name: escaped too (the
# bar's own "\r\033[K" aside, nothing of the name's is raw).
if command -v script >/dev/null 2>&1; then
	script -qec "$PARAFLOW upload --no-tls --port $HPORT --no-resume \
	    --file $T/src" /dev/null >"$T/tty" 2>&1 </dev/null
	check "on a terminal: the bar shows the name escaped" \
	    grep -aq '\\x1b\]0;owned.* \[=*' "$T/tty"
	check "on a terminal: none of the name's controls is raw" \
	    raw_free <(LC_ALL=C sed $'s/\r\033\\[K//g; s/\r//g' "$T/tty")
fi
kill "$HPID" 2>/dev/null
wait "$HPID" 2>/dev/null
HPID=

# A real paraflowd at -vv, and an OPEN whose resume value (36 bytes, as
# an id) holds an ESC sequence and a newline that would start a line of
# its own: the refusal is logged on one line, escaped.
start_server --no-tls -v -v
pywire "$PORT" >"$T/resume.out" 2>&1 <<'EOF'
import base64, sys
import pfwire as w
port = int(sys.argv[1])
c = w.connect(port)
w.hello(c)
w.scram_login(c, "paraflow", "secret123")
resume = "\x1b[2J\nforged line\x1b]0;x\x07"
resume += "0" * (36 - len(resume))
w.send_json(c, w.OPEN, {"name": "a.txt", "size": 5, "chunk_size": 65536,
                        "head": base64.b64encode(b"hello").decode(),
                        "resume": resume})
print(w.error_name(c))
EOF
check_eq "OPEN with a hostile resume: refused as unknown_session" \
    unknown_session "$(cat "$T/resume.out")"
check "server -vv log: the refusal is logged" \
    grep -qF 'unknown_session: no session \x1b[2J\x0aforged line' \
    "$T/server.log"
check "server -vv log: no forged line" no_forged "$T/server.log"
check "server -vv log: no raw control" raw_free "$T/server.log"
check "server -vv log: every line is one of paraflowd's" \
    test "$(grep -cv '^[0-9-]*T[0-9:]*Z paraflowd\[[0-9]*\] ' \
    "$T/server.log")" = 0
stop_server

done_testing
