#!/bin/bash
# SPDX-License-Identifier: MIT
# Login and access control: the default user, the users file and
# --add-user, the refusal to serve the default password off loopback, a
# recorded login replayed byte for byte, and data connections that must
# prove they belong to a login (a session id alone is not a capability).
. "$(dirname "$0")/lib.sh"


# count PATTERN FILE: lines of FILE matching the extended regex PATTERN.
count() {
	grep -cE -- "$1" "$2"
}

# wait_count PATTERN FILE N: waits up to 5 s for at least N matching lines.
# shellcheck disable=SC2317 # called through check
wait_count() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(count "$1" "$2")" -ge "$3" ] && return 0
		sleep 0.05
	done
	return 1
}

# lacks FILE STRING...: true if FILE holds none of the STRINGs.
# shellcheck disable=SC2317 # called through check
lacks() {
	local f=$1 s
	shift
	for s in "$@"; do
		grep -aqF -- "$s" "$f" && return 1
	done
	return 0
}

# Random bytes behind a fixed prefix: a random file starts with "MZ" or
# "#!" once in 32768 and would then be refused as an executable.
{
	printf 'pf-data '
	head -c 4992 /dev/urandom
} >"$T/small"

# --- The default user --------------------------------------------------

start_server

out=$(upload --file "$T/small" --name default.bin --json)
check_eq "default user, default secret: exit 0" 0 $?
sid=$(json_field "$out" session)
check_eq "default user: file stored" "$(sha "$T/small")" \
    "$(sha "$(stored_file "$sid" default.bin)" 2>/dev/null)"

wrong="Wr0ng-Pa55-$$-$RANDOM"
before=$(stored_count)
out=$(upload --file "$T/small" --name wrong.bin --secret "$wrong" --json)
check_eq "wrong secret: exit 3" 3 $?
check_eq "wrong secret: error code auth_failed" auth_failed \
    "$(json_field "$out" code)"
check_eq "wrong secret: nothing stored" "$before" "$(stored_count)"
check "wrong secret: staging empty" staging_empty
check "wrong secret: server logs the failed login" \
    wait_count ': login failed$' "$T/server.log" 1
check "wrong secret: never in the server log" \
    lacks "$T/server.log" "$wrong"

# --- Replay: a recorded control connection sent again ------------------
#
# pfproxy records what the client sends on the first (control) connection;
# --threads 1 makes the whole upload two connections. The recording is
# of the plaintext protocol, as are the hand-made JOINs below.

stop_server
start_server --no-tls

"$PFPROXY" --listen-port 0 --target-port "$PORT" --port-file "$T/pport" \
    --record "$T/record" --max-conns 2 --log "$T/proxy.log" \
    2>"$T/proxy.err" &
proxy_pid=$!
PIDS+=("$proxy_pid")
wait_file "$T/pport" 60 || echo "# pfproxy did not start"
pport=$(cat "$T/pport" 2>/dev/null)
out=$("$PARAFLOW" upload --port "$pport" --quiet "${NOTLS[@]}" \
    --file "$T/small" \
    --name replay.bin --threads 1 --json)
check_eq "upload through pfproxy: exit 0" 0 $?
# It ends by itself (60 s for a loaded machine); polled with ours, as
# once reaped its PID may be another process's (lib.sh).
for ((i = 0; i < 600; i++)); do
	ours "$proxy_pid" || break
	sleep 0.1
done
signal_ours TERM "$proxy_pid"
rc=0
wait "$proxy_pid" || rc=$?
check_eq "pfproxy exits after the upload's two connections" 0 "$rc"
check "the control connection was recorded" \
    [ "$(head -c 4 "$T/record" 2>/dev/null)" = PFLW ]

opened=$(count ' opened by ' "$T/server.log")
failed=$(count ': login failed$' "$T/server.log")
before=$(stored_count)
# bash's /dev/tcp and cat rather than nc: the server stops reading after
# the failed PROOF, and should the rest of the replay provoke a reset,
# cat still keeps what arrived before it, where nc drops unread input as
# soon as poll() reports the error.
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
cat "$T/record" >&3
timeout 20 cat <&3 >"$T/reply" 2>/dev/null
exec 3<&-
check "replay: answered with ERROR auth_failed" \
    grep -aq '"name":"auth_failed"' "$T/reply"
check "replay: got a fresh CHALLENGE" \
    grep -aqF '{"message":"r=' "$T/reply"
check "replay: got no AUTH_OK" lacks "$T/reply" '{"message":"v='
check "replay: the server logged a failed login" \
    wait_count ': login failed$' "$T/server.log" $((failed + 1))
check_eq "replay: no session opened" "$opened" \
    "$(count ' opened by ' "$T/server.log")"
check_eq "replay: nothing stored" "$before" "$(stored_count)"
check "replay: staging empty" staging_empty

# --- Data connections must prove their login ---------------------------
#
# A real login opens a real session; JOINs to it with a random proof, with
# a valid proof made for another connection's HELLO nonce, and with the
# right proof. Then the protocol edges: unknown session, short proof, and
# a session that has ended.

if command -v python3 >/dev/null 2>&1; then
	pywire "$PORT" >"$T/join.out" 2>"$T/join.err" <<'EOF'
import os, sys, uuid
import pfwire as w

port = sys.argv[1]

def result(label, value):
    print("%s %s" % (label, value), flush=True)

def join_with(sid, proof):
    d = w.connect(port)
    w.hello(d)
    w.send_join(d, sid, proof)
    name = w.error_name(d)
    d.close()
    return name

c = w.connect(port)
w.hello(c)
key = w.scram_login(c, "paraflow", "secret123")
data = b"pf-data " + os.urandom(100000 - 8)
opened = w.open_session(c, "joined.bin", data, chunk_size=65536)
sid = opened["session"]
result("session", sid)

result("random_proof", join_with(sid, os.urandom(32)))

# A proof that was right for another connection's nonce.
other = w.connect(port)
other_nonce = w.hello(other)
other.close()
result("other_nonce", join_with(sid, w.join_proof(key, sid, other_nonce)))

# The proof from another login's key.
c2 = w.connect(port)
w.hello(c2)
key2 = w.scram_login(c2, "paraflow", "secret123")
d = w.connect(port)
nonce = w.hello(d)
w.send_join(d, sid, w.join_proof(key2, sid, nonce))
result("other_key", w.error_name(d))
d.close()
c2.close()

result("unknown_session", join_with(str(uuid.uuid4()), os.urandom(32)))
result("short_proof", join_with(sid, os.urandom(16)))

# The right proof still works after all the wrong ones, and the upload
# goes through.
done = w.upload(c, port, key, opened, data)
result("complete", done["name"])

# A finished session can no longer be joined, even with the right proof.
d = w.connect(port)
nonce = w.hello(d)
w.send_join(d, sid, w.join_proof(key, sid, nonce))
result("ended_session", w.error_name(d))
d.close()
c.close()
EOF
	check_eq "pfwire join script ran" 0 $?
	sed 's/^/# /' "$T/join.err" "$T/join.out"
	res() { sed -n "s/^$1 //p" "$T/join.out"; }
	sid=$(res session)
	check_eq "JOIN with a random proof: auth_failed" auth_failed \
	    "$(res random_proof)"
	check_eq "JOIN with another connection's proof: auth_failed" \
	    auth_failed "$(res other_nonce)"
	check_eq "JOIN with another login's key: auth_failed" auth_failed \
	    "$(res other_key)"
	check_eq "JOIN of an unknown session: unknown_session" \
	    unknown_session "$(res unknown_session)"
	check_eq "JOIN with a 16-byte proof: bad_frame" bad_frame \
	    "$(res short_proof)"
	check_eq "JOIN with the right proof: upload completes" joined.bin \
	    "$(res complete)"
	check_eq "the pfwire upload is stored whole" 100000 \
	    "$(stat -c %s "$(stored_file "$sid" joined.bin)" 2>/dev/null)"
	check_eq "JOIN of a finished session: unknown_session" \
	    unknown_session "$(res ended_session)"
	check "refused joins are logged" \
	    wait_count ': join proof refused$' "$T/server.log" 3
else
	ok "JOIN proofs # SKIP python3 not found"
fi

# --- Mechanisms and the GS2 header on plaintext -------------------------
#
# HELLO names the one mechanism the connection takes: SCRAM-SHA-256 on
# plaintext. "y,," (the client could bind, the server cannot) logs in;
# asking for binding ("p=") or for the -PLUS mechanism is refused.

if command -v python3 >/dev/null 2>&1; then
	pywire "$PORT" >"$T/gs2.out" 2>"$T/gs2.err" <<'EOF'
import sys
import pfwire as w

port = sys.argv[1]

def result(label, value):
    print("%s %s" % (label, value), flush=True)

def attempt(gs2, mechanism="SCRAM-SHA-256"):
    c = w.connect(port)
    w.hello(c)
    try:
        w.scram_login(c, "paraflow", "secret123", gs2=gs2,
                      mechanism=mechanism)
        return "ok"
    except w.WireError as e:
        return e.name
    finally:
        c.close()

c = w.connect(port)
result("mechanisms", ",".join(w.expect(c, w.HELLO).get("mechanisms", [])))
c.close()
result("gs2_y", attempt("y,,"))
result("gs2_n", attempt("n,,"))
result("gs2_p", attempt("p=tls-exporter,,"))
result("mech_plus", attempt("p=tls-exporter,,", "SCRAM-SHA-256-PLUS"))
EOF
	check_eq "pfwire mechanism script ran" 0 $?
	sed 's/^/# /' "$T/gs2.err" "$T/gs2.out"
	res() { sed -n "s/^$1 //p" "$T/gs2.out"; }
	check_eq "plaintext HELLO offers SCRAM-SHA-256 only" SCRAM-SHA-256 \
	    "$(res mechanisms)"
	check_eq "plaintext login with y,, is accepted" ok "$(res gs2_y)"
	check_eq "plaintext login with n,, is accepted" ok "$(res gs2_n)"
	check_eq "plaintext login asking for binding: bad_frame" bad_frame \
	    "$(res gs2_p)"
	check_eq "SCRAM-SHA-256-PLUS on plaintext: bad_frame" bad_frame \
	    "$(res mech_plus)"
else
	ok "mechanisms # SKIP python3 not found"
fi

stop_server
check "no password ever reaches the log" \
    lacks "$T/server.log" secret123 "$wrong"

# --- The users file ----------------------------------------------------

U=$T/users
# shellcheck disable=SC2016 # a regular expression
verifier='^alice:SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$'
(umask 022 && printf 'alice-pw-1\n' | "$PARAFLOWD" --users "$U" \
    --add-user alice 2>/dev/null)
check_eq "--add-user alice: exit 0" 0 $?
check_eq "users file is 0600 despite umask 022" 600 \
    "$(stat -c %a "$U" 2>/dev/null)"
check "verifier line has the SCRAM-SHA-256 format" grep -qE "$verifier" "$U"
check "the password is not in the users file" lacks "$U" alice-pw
first=$(cat "$U")

printf 'alice-pw-2\n' | "$PARAFLOWD" --users "$U" --add-user alice \
    2>/dev/null
check_eq "--add-user alice again: exit 0" 0 $?
check_eq "alice replaced, not added twice" 1 "$(count '^alice:' "$U")"
check "the new verifier differs from the old" [ "$(cat "$U")" != "$first" ]
printf 'bob-pw\n' | "$PARAFLOWD" --users "$U" --add-user bob 2>/dev/null
check_eq "--add-user bob: exit 0" 0 $?
check_eq "users file holds alice and bob" "alice bob" \
    "$(cut -d: -f1 "$U" | sort | tr '\n' ' ' | sed 's/ $//')"
check_eq "users file still 0600 after a rewrite" 600 "$(stat -c %a "$U")"
check "no password in the users file" lacks "$U" alice-pw bob-pw

saved=$(sha "$U")
for bad in "bad name" "a:b" "" "$(printf 'x%.0s' {1..65})"; do
	printf 'pw\n' | "$PARAFLOWD" --users "$U" --add-user "$bad" \
	    2>/dev/null
	check_eq "--add-user '${bad:0:12}': usage error" 2 $?
done
printf 'pw\n' | "$PARAFLOWD" --add-user carol 2>"$T/err"
check_eq "--add-user without --users: usage error" 2 $?
check "... and says so" grep -q -- --users "$T/err"
"$PARAFLOWD" --users "$U" --add-user carol </dev/null 2>/dev/null
rc=$?
check "--add-user with empty stdin fails" [ "$rc" -ne 0 ]
printf '\n' | "$PARAFLOWD" --users "$U" --add-user carol 2>/dev/null
rc=$?
check "--add-user with an empty line fails" [ "$rc" -ne 0 ]
check_eq "users file unchanged by the failures" "$saved" "$(sha "$U")"

start_server --users "$U"

printf 'alice-pw-2\n' >"$T/alice.pw"
out=$(upload --file "$T/small" --name a1.bin --user alice \
    --secret-file "$T/alice.pw" --json)
check_eq "alice via --secret-file: exit 0" 0 $?
check "alice via --secret-file: stored" \
    test -f "$(stored_file "$(json_field "$out" session)" a1.bin)"
PARAFLOW_SECRET=alice-pw-2 upload --file "$T/small" --name a2.bin \
    --user alice >/dev/null
check_eq "alice via PARAFLOW_SECRET: exit 0" 0 $?
PARAFLOW_USER=alice upload --file "$T/small" --name a3.bin \
    --secret alice-pw-2 >/dev/null
check_eq "alice via --secret and PARAFLOW_USER: exit 0" 0 $?
upload --file "$T/small" --name b1.bin --user bob --secret bob-pw \
    >/dev/null
check_eq "bob: exit 0" 0 $?

before=$(stored_count)
out_old=$(upload --file "$T/small" --user alice --secret alice-pw-1 --json)
check_eq "alice with her replaced password: exit 3" 3 $?
out_wrong=$(upload --file "$T/small" --user alice --secret bob-pw --json)
check_eq "alice with bob's password: exit 3" 3 $?
out_unknown=$(upload --file "$T/small" --user mallory --secret bob-pw --json)
check_eq "unknown user mallory: exit 3" 3 $?
check_eq "unknown user: code auth_failed" auth_failed \
    "$(json_field "$out_unknown" code)"
# The whole answer, message included, is the same (the code check above
# makes sure it is not empty).
check_eq "unknown user and wrong password look the same" "$out_wrong" \
    "$out_unknown"
out=$(upload --file "$T/small" --json)
check_eq "default paraflow/secret123 refused with a users file: exit 3" 3 $?
check_eq "default user refused: auth_failed" auth_failed \
    "$(json_field "$out" code)"
check_eq "old password: auth_failed" auth_failed \
    "$(json_field "$out_old" code)"
check_eq "failed logins stored nothing" "$before" "$(stored_count)"
check "failed logins left staging empty" staging_empty

stop_server
check "users' passwords never reach the log" \
    lacks "$T/server.log" alice-pw bob-pw

# --- The default password stays on loopback ----------------------------

SECONDS=0
timeout 5 "$PARAFLOWD" --bind 0.0.0.0 --port 0 --storage "$STORAGE" \
    2>"$T/err"
check_eq "--bind 0.0.0.0 without --users: exit 1" 1 $?
check "... at once" [ "$SECONDS" -le 3 ]
check "... naming --users" grep -q -- --users "$T/err"

start_server --bind 0.0.0.0 --insecure-default-user
check "--bind 0.0.0.0 --insecure-default-user starts" \
    kill -0 "$SERVER_PID"
upload --file "$T/small" --name insecure.bin >/dev/null
check_eq "... and serves uploads on 127.0.0.1" 0 $?
stop_server

done_testing
