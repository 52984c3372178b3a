#!/bin/bash
# SPDX-License-Identifier: MIT
# Per-address limits count an IPv6 client by its /64, as the login
# throttle does: one host or site is handed a whole /64 and could spread
# its connections over it. In a network namespace of its own (unshare
# -n), with four addresses on loopback (three in fd00:70::/64, one in
# fd00:71::/64): the gateway's --http-max-per-ip and the native port's
# --max-ip-logins refuse a third connection from the same /64, from an
# address not used yet, and let one from the other /64 in.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"

if [ -z "${PF_NS:-}" ] && command -v unshare >/dev/null 2>&1 &&
    unshare -m -n true 2>/dev/null; then
	PF_NS=1 exec unshare -m -n bash "$0" "$@"
fi
[ -n "${PF_NS:-}" ] || skip_all "cannot make a network namespace (unshare -n)"
command -v curl >/dev/null 2>&1 || skip_all "curl not found"
ip link set lo up 2>/dev/null || skip_all "cannot bring up loopback"
NET=fd00:70:
for a in "$NET:1" "$NET:2" "$NET:3" "$NET:4" fd00:71::1; do
	ip -6 addr add "$a/64" dev lo nodad 2>/dev/null ||
	    skip_all "cannot add IPv6 address $a (IPv6 off?)"
done

# hold PORT SRC...: one idle connection to [$NET:1]:PORT from each SRC,
# kept until $T/release exists; $T/held says they are up.
hold() {
	local port=$1
	shift
	rm -f "$T/held" "$T/release"
	python3 - "$NET:1" "$port" "$T/held" "$T/release" "$@" <<'PY' &
import os, socket, sys, time
host, port, held, release, srcs = sys.argv[1], int(sys.argv[2]), \
    sys.argv[3], sys.argv[4], sys.argv[5:]
socks = [socket.create_connection((host, port), timeout=10,
                                  source_address=(s, 0)) for s in srcs]
open(held, "w").write("%d\n" % len(socks))
t0 = time.monotonic()
while not os.path.exists(release) and time.monotonic() - t0 < 300:
    time.sleep(0.05)
PY
	HOLD_PID=$!
	PIDS+=("$HOLD_PID")
	wait_file "$T/held" 60
}
release() {
	touch "$T/release"
	wait "$HOLD_PID"
}

# --- Gateway: --http-max-per-ip ----------------------------------------------
start_gw --http-bind "$NET:1" --http-no-tls --http-max-per-ip 2
# status SRC: the answer to GET /healthz from SRC.
status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 30 --interface "$1" \
	    "http://[$NET:1]:$HTTP_PORT/healthz"
}
check_eq "gateway: a request from $NET:4 alone: 200" 200 "$(status "$NET:4")"
hold "$HTTP_PORT" "$NET:2" "$NET:3"
check_eq "gateway: 2 held from $NET:2 and :3, then $NET:4: 503 (one /64)" \
    503 "$(status "$NET:4")"
check_eq "gateway: fd00:71::1, another /64: 200" 200 "$(status fd00:71::1)"
release
# ok_from SRC: /healthz from SRC answers 200 (the gateway sees the closes
# a moment after the client made them).
# shellcheck disable=SC2317 # called through wait_for
ok_from() {
	[ "$(status "$1")" = 200 ]
}
check "gateway: once they are closed, $NET:4 gets 200" wait_for 30 \
    ok_from "$NET:4"
stop_server

# --- Native port: --max-ip-logins ---------------------------------------------
# Plaintext, so that the refusal (ERROR busy) reads without TLS.
# Off loopback the default user is refused: a users file.
add_users alice
start_server --bind "$NET:1" --no-tls --no-http --max-ip-logins 2 \
    --users "$U"
# first_frame SRC: the name of the first frame the server sends a new
# connection from SRC (HELLO, or the ERROR's name).
first_frame() {
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 - "$NET:1" \
	    "$PORT" "$1" <<'PY'
import sys
import pfwire as w
c = w.connect(sys.argv[2], host=sys.argv[1], source=sys.argv[3], tls=False)
print(w.error_name(c))
PY
}
check_eq "native: a connection from $NET:4 alone gets HELLO" HELLO \
    "$(first_frame "$NET:4")"
hold "$PORT" "$NET:2" "$NET:3"
check_eq "native: 2 held from $NET:2 and :3, then $NET:4: busy (one /64)" \
    busy "$(first_frame "$NET:4")"
check_eq "native: fd00:71::1, another /64: HELLO" HELLO \
    "$(first_frame fd00:71::1)"
release
stop_server
done_testing
