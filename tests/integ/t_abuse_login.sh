#!/bin/bash
# SPDX-License-Identifier: MIT
# Password guessing against a real paraflowd, on both doors: a burst of
# wrong passwords on the native port is refused (ERROR throttled, with
# retry_after) after a few, while the right password from another address
# logs in at once; spraying many names from one address throttles that
# address; the gateway shares the count, answers 429 with Retry-After,
# and a user's wrong passwords do not lock out another user behind the
# same address. Unknown users get a salt and an iteration count that look
# like a real user's and stay the same across a restart. Failures are
# summed up in the log, not logged one by one. A download link's expiry
# is parsed strictly ("+123", " 123", "0123" refused).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
need_api_tools

# probe CMD ARGS...: the native protocol by hand (pfwire), from any
# address of 127.0.0.0/8, against $PORT (plaintext: pfwire cannot give the
# bound login its tls-exporter value):
#   login USER PASSWORD SRC    prints ok, or the ERROR's name and its
#                              retry_after ("throttled 4")
#   burst USER SRC             wrong proofs for USER as fast as it can,
#                              until told to wait 8 s or more; prints
#                              attempts, auth_failed, throttled,
#                              attempts/s, the last retry_after, seconds
#   spray SRC                  one wrong proof for each of u1, u2, ...
#                              (sleeping out waits) until told to wait 8 s
#                              or more; prints attempts, auth_failed,
#                              throttled
#   challenge USER             prints the salt (base64) and iteration count
#                              of USER's challenge, and whether it has the
#                              form of any ("form-ok")
probe() {
	pywire "$PORT" "$@" <<'EOF'
import base64, os, re, sys, time
import pfwire

port, cmd, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]


def auth(c, user):
    pfwire.hello(c)
    pfwire.send_json(c, pfwire.AUTH, {
        "mechanism": "SCRAM-SHA-256",
        "message": "n,,n=%s,r=%s" % (user, "fedcba9876543210")})
    return pfwire.recv_json(c)


def wrong(user, src):
    """One wrong proof (no PBKDF2 on our side): the answer's JSON."""
    c = pfwire.connect(port, tls=False, source=src)
    try:
        t, o = auth(c, user)
        if t != pfwire.CHALLENGE:
            return o
        r = dict(a.split("=", 1) for a in o["message"].split(","))["r"]
        proof = base64.b64encode(os.urandom(32)).decode("ascii")
        pfwire.send_json(c, pfwire.PROOF, {
            "message": "c=biws,r=%s,p=%s" % (r, proof)})
        return pfwire.recv_json(c)[1]
    finally:
        c.close()


def count(answers, o):
    answers[o.get("name")] = answers.get(o.get("name"), 0) + 1


if cmd == "login":
    c = pfwire.connect(port, tls=False, source=args[2])
    try:
        pfwire.hello(c)
        pfwire.scram_login(c, args[0], args[1])
        print("ok")
    except pfwire.WireError as e:
        print(e.name, (e.obj or {}).get("retry_after", "")
              if isinstance(e.obj, dict) else "")
elif cmd == "burst":
    answers, n, t0, last = {}, 0, time.time(), {}
    while time.time() - t0 < 30:
        last = wrong(args[0], args[1])
        n += 1
        count(answers, last)
        if last.get("retry_after", 0) >= 8:
            break
    took = time.time() - t0
    print(n, answers.get("auth_failed", 0), answers.get("throttled", 0),
          int(n / took), last.get("retry_after", 0), int(took + 1))
elif cmd == "spray":
    answers, n, i = {}, 0, 0
    while n < 500:
        i += 1
        o = wrong("u%d" % i, args[0])
        n += 1
        count(answers, o)
        if o.get("retry_after", 0) >= 8:
            break
        time.sleep(o.get("retry_after", 0))
    print(n, answers.get("auth_failed", 0), answers.get("throttled", 0))
elif cmd == "challenge":
    c = pfwire.connect(port, tls=False)
    t, o = auth(c, args[0])
    c.close()
    m = o["message"]
    a = dict(x.split("=", 1) for x in m.split(","))
    form = re.fullmatch(r"r=[^,]+,s=[A-Za-z0-9+/]{22}==,i=[0-9]+", m)
    print(a["s"], a["i"], "form-ok" if form else "form-bad")
EOF
}

# lines PATTERN: lines of the server log since log_mark matching PATTERN.
lines() {
	log_since | grep -cE -- "$1"
}

# summary_logged: the log has a failed-login summary since log_mark.
# shellcheck disable=SC2317 # called through wait_for
summary_logged() {
	[ "$(lines 'failed logins and [0-9]+ attempts refused')" -ge 1 ]
}

# bob first, with another --iterations: the old code gave unknown users
# the first user's count, so the many with the default stood out.
printf 'bob-pw\n' | "$PARAFLOWD" --users "$U" --add-user bob \
    --iterations 10000 2>/dev/null || echo "# --add-user bob failed"
add_users alice carol

# --- Unknown users look like real ones, across restarts ----------------------

start_gw --users "$U" --no-tls --login-log-interval 2
read -r salt1 iter1 form1 < <(probe challenge nosuchuser)
read -r salt2 iter2 _ < <(probe challenge nosuchuser)
read -r bsalt biter bform < <(probe challenge bob)
read -r asalt aiter _ < <(probe challenge alice)
echo "# unknown user: i=$iter1 s=$salt1; bob: i=$biter s=$bsalt;" \
    "alice: i=$aiter s=$asalt"
check_eq "unknown user: the same salt when asked twice" "$salt1" "$salt2"
check_eq "unknown user: the same count when asked twice" "$iter1" "$iter2"
check_eq "unknown user's challenge has a real one's form" form-ok "$form1"
check_eq "bob's (10000 iterations) has that form too" form-ok "$bform"
check_eq "unknown user: the count most users have (alice's, carol's)" \
    "$aiter" "$iter1"
check "unknown user: not the first user's count (bob's 10000)" \
    [ "$iter1" != "$biter" ]
check "the key of the fake salts is 0600 in the storage's .auth" \
    [ "$(stat -c %a "$STORAGE/.auth/key" 2>/dev/null)" = 600 ]

# --- Download links: a strict expiry -----------------------------------------
#
# Before anyone's passwords are guessed below: uploads log in as alice.

mkfile "$T/f" 5000
out=$(upload --user alice --secret alice-pw --file "$T/f" --json)
sid=$(json_field "$out" session)
req -u alice:alice-pw -X POST "/api/v1/sessions/$sid/link"
link=$(jget url)
token=${link##*token=}
req "$link"
check_eq "a download link as made: 200" 200 "$CODE"
for bad in "%2B$token" "%20$token" "0$token"; do
	req "/api/v1/sessions/$sid/file?token=$bad"
	check_eq "expiry spelled '${bad%%.*}' (the same value): 403" 403 \
	    "$CODE"
	check_eq "... link_expired" link_expired "$(jget error.code)"
done

# --- The native port: a burst of wrong passwords ------------------------------

log_mark
read -r n failed throttled rate wait took < <(probe burst alice 127.0.0.1)
echo "# burst for alice from 127.0.0.1: $n attempts in $took s ($rate/s)," \
    "$failed checked and wrong, $throttled answered throttled, last" \
    "retry_after $wait s"
check "the burst was throttled (most attempts refused)" \
    [ "${throttled:-0}" -gt "${failed:-0}" ]
check "only a few passwords were checked (the free 5, one per wait)" \
    between 5 "${failed:-99}" 10
check "a throttled answer carries retry_after (8 s or more by now)" \
    [ "${wait:-0}" -ge 8 ]
# Within those 8 s: the same user from the same address waits, on both
# doors; from another address, or another user, is let in.
read -r res _ < <(probe login alice alice-pw 127.0.0.1)
check_eq "alice's right password from 127.0.0.1: still throttled" \
    throttled "$res"
run "$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" --user alice \
    --secret alice-pw --file "$T/f" --json
check_eq "paraflow upload as alice from there: exit 3 (a login refused)" 3 \
    "$RC"
check_eq "... code throttled" throttled "$(json_field "$OUT" code)"
echo "# paraflow: $(json_field "$OUT" message)"
req -u alice:alice-pw /api/v1/stats
check_eq "gateway: alice from 127.0.0.1 too (one throttle): 429" 429 \
    "$CODE"
check "... with Retry-After in seconds" \
    eval '[[ "$(hdr Retry-After)" =~ ^[1-9][0-9]*$ ]]'
start=$EPOCHREALTIME
read -r res _ < <(probe login alice alice-pw 127.0.0.2)
end=$EPOCHREALTIME
echo "# alice's right password from 127.0.0.2 logged in after" \
    "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }') s"
check_eq "alice's right password from a fresh address (127.0.0.2): ok" \
    ok "$res"
req --interface 127.0.0.2 -u alice:alice-pw /api/v1/stats
check_eq "gateway: alice from 127.0.0.2: 200" 200 "$CODE"
read -r res _ < <(probe login bob bob-pw 127.0.0.1)
check_eq "bob's right password from 127.0.0.1: ok" ok "$res"

# --- Few log lines for many failures ------------------------------------------

nlines=$(lines 'login failed|failed logins')
echo "# $((failed + throttled)) failed or refused logins in $took s:" \
    "$nlines log lines (--login-log-interval 2)"
check "the burst left a line, and one summary per 2 s at most" \
    [ "$nlines" -le $((3 + took / 2)) ]
check "a summary line follows (within 30 s)" wait_for 30 summary_logged
log_since | grep -E 'failed logins and' | tail -n 1 | sed 's/^/# /'
check "the summary counts the refused attempts" \
    eval 'log_since | grep -qE "and [1-9][0-9]* attempts refused while"'

# --- Spraying many names from one address -------------------------------------

read -r n failed throttled < <(probe spray 127.0.0.3)
echo "# spraying names from 127.0.0.3: $n attempts, $failed checked," \
    "$throttled throttled"
check "spraying: the address is throttled after 30 names or so" \
    between 30 "${failed:-0}" 34
read -r res _ < <(probe login bob bob-pw 127.0.0.3)
check_eq "spraying: bob's right password from that address waits too" \
    throttled "$res"
read -r res _ < <(probe login bob bob-pw 127.0.0.4)
check_eq "spraying: bob's right password from another address: ok" ok \
    "$res"
stop_server

# --- The gateway: alice's wrong passwords do not lock bob out ----------------

start_gw --users "$U" --no-tls
codes=
for ((i = 1; i <= 10; i++)); do
	req -u "alice:guess-$i" /api/v1/stats
	codes="$codes $CODE"
done
echo "# 10 wrong passwords for alice:$codes"
check_eq "gateway: alice's first 5 wrong passwords: 401" \
    " 401 401 401 401 401" "${codes:0:20}"
check "gateway: then 429 (alice from this address waits)" \
    eval '[[ "$codes" == *429* ]]'
req -u bob:bob-pw /api/v1/stats
echo "# then bob's right password from the same address: $CODE"
check_eq "gateway: bob's right password from the same address: 200" 200 \
    "$CODE"
req -u carol:carol-pw /api/v1/stats
check_eq "gateway: carol's too: 200" 200 "$CODE"
req /metrics
failures=$(sed -n 's/^paraflow_auth_failures_total //p' "$T/b")
echo "# auth failures counted: $failures of 10 (the refused ran no PBKDF2)"
check "gateway: refused attempts were not checked (fewer than 10)" \
    [ "${failures:-10}" -lt 10 ]

# --- After a restart: the same fake salt --------------------------------------

stop_server
start_gw --users "$U" --no-tls
read -r salt3 iter3 _ < <(probe challenge nosuchuser)
check_eq "after a restart: the unknown user's salt is the same" "$salt1" \
    "$salt3"
check_eq "after a restart: and its count" "$iter1" "$iter3"
stop_server

check "no password in the log" \
    eval '! grep -qE "alice-pw|bob-pw|carol-pw|guess-" "$T/server.log"'
done_testing
