#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks that pfproxy flips exactly the requested client->server bytes.
#
# Other integration tests trust pfproxy to inject precisely the faults they
# ask for, so this test pins that down with nothing but netcat: 1 MiB goes
# through the proxy with two --corrupt-at offsets, and every other byte must
# arrive untouched.
#
# Exit status: 0 pass, 1 fail, 77 skip (netcat missing).

set -u

PFPROXY=${PFPROXY:-tests/tools/pfproxy}
SIZE=1048576

tmp=
pids=()

# shellcheck disable=SC2317 # only reached through the EXIT trap
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		! alive "$pid" || kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

fail() {
	echo "FAIL: $*" >&2
	printf '1..1\nnot ok 1 - pfproxy self-test: %s\n' "$*"
	if [ -n "$tmp" ] && [ -s "$tmp/proxy.log" ]; then
		echo "--- proxy log" >&2
		cat "$tmp/proxy.log" >&2
	fi
	if [ -n "$tmp" ] && [ -s "$tmp/proxy.err" ]; then
		echo "--- proxy stderr" >&2
		cat "$tmp/proxy.err" >&2
	fi
	exit 1
}

if ! command -v nc >/dev/null 2>&1; then
	echo "1..0 # SKIP nc (netcat-openbsd) not found"
	exit 0
fi
[ -x "$PFPROXY" ] || fail "pfproxy binary '$PFPROXY' not found"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pfproxy-selftest.XXXXXX") ||
	fail "mktemp -d"

# True once something listens on 127.0.0.1:$1. /proc/net/tcp lists the
# local address as little-endian hex IP and big-endian hex port; state 0A
# is LISTEN. Probing with a connection instead would use up nc's one accept.
is_listening() {
	local want laddr st
	want=$(printf '0100007F:%04X' "$1")
	while read -r _ laddr _ st _; do
		if [ "$laddr" = "$want" ] && [ "$st" = 0A ]; then
			return 0
		fi
	done </proc/net/tcp
	return 1
}

# alive PID: true while PID is still our child. A PID that ended and was
# reaped may be another process's by now (PIDs wrap within minutes on a
# busy machine): kill -0 would then report it alive.
alive() {
	local s f
	{ s=$(<"/proc/$1/stat"); } 2>/dev/null || return 1
	read -r -a f <<<"${s##*) }"
	[ "${f[1]}" = "$$" ]
}

# netcat-openbsd cannot report an ephemeral port, so guess one and retry
# when the bind fails (nc then exits at once).
start_receiver() {
	local try i
	for try in 1 2 3 4 5; do
		rport=$((20000 + RANDOM % 40000))
		nc -d -l 127.0.0.1 "$rport" >"$tmp/out" 2>"$tmp/nc.err" &
		rpid=$!
		for i in $(seq 1 50); do
			if ! alive "$rpid"; then
				break
			fi
			if [ -r /proc/net/tcp ]; then
				if is_listening "$rport"; then
					pids+=("$rpid")
					return 0
				fi
			elif [ "$i" -ge 5 ]; then
				# No /proc: alive for half a second means bound.
				pids+=("$rpid")
				return 0
			fi
			sleep 0.1
		done
		! alive "$rpid" || kill "$rpid" 2>/dev/null
		wait "$rpid" 2>/dev/null
		echo "note: port $rport unusable (try $try)" >&2
	done
	return 1
}

start_receiver || fail "could not start nc receiver"

head -c "$SIZE" /dev/urandom >"$tmp/in" || fail "could not make input"

"$PFPROXY" --listen-port 0 --target-host 127.0.0.1 --target-port "$rport" \
	--port-file "$tmp/port" --log "$tmp/proxy.log" \
	--corrupt-at 1000 --corrupt-at 5000 --max-conns 1 \
	2>"$tmp/proxy.err" &
ppid=$!
pids+=("$ppid")

# 60 s: an ASan build on a loaded machine can be slow to start.
for _ in $(seq 1 600); do
	[ -s "$tmp/port" ] && break
	alive "$ppid" || fail "pfproxy exited early"
	sleep 0.1
done
[ -s "$tmp/port" ] || fail "pfproxy wrote no port file"
read -r pport <"$tmp/port" || fail "unreadable port file"

# -N passes our EOF on, so the proxy's half-close path ends the transfer.
timeout 60 nc -N 127.0.0.1 "$pport" <"$tmp/in" >/dev/null ||
	fail "sending through the proxy failed"

# Both should exit by themselves: nc on EOF, pfproxy after --max-conns 1
# (within 60 s, on a loaded machine).
for _ in $(seq 1 600); do
	alive "$rpid" || alive "$ppid" || break
	sleep 0.1
done
alive "$rpid" && fail "nc receiver did not exit"
alive "$ppid" && fail "pfproxy did not exit after --max-conns 1"
wait "$rpid" || fail "nc receiver failed"
wait "$ppid" || fail "pfproxy exited with status $?"
pids=()

size=$(wc -c <"$tmp/out")
[ "$size" -eq "$SIZE" ] || fail "received $size bytes, want $SIZE"

# cmp -l prints "<1-based offset> <octal byte 1> <octal byte 2>" per
# difference. Each must be a full flip (XOR 0xFF) at 1001 and 5001 only.
cmp -l "$tmp/in" "$tmp/out" >"$tmp/diff" 2>&1
want=$'1001\n5001'
got=$(awk '{ print $1 }' "$tmp/diff")
[ "$got" = "$want" ] || fail "differing bytes: $(tr '\n' ' ' <"$tmp/diff")"
while read -r off a b; do
	if [ $(( 8#$a ^ 8#$b )) -ne 255 ]; then
		fail "byte $off is $b, want $a with all bits flipped"
	fi
done <"$tmp/diff"

n=$(grep -c '^corrupt ' "$tmp/proxy.log")
[ "$n" -eq 2 ] || fail "log has $n corrupt lines, want 2"
grep -qx 'corrupt conn=1 offset=1000' "$tmp/proxy.log" ||
	fail "no corrupt line for offset 1000"
grep -qx 'corrupt conn=1 offset=5000' "$tmp/proxy.log" ||
	fail "no corrupt line for offset 5000"
grep -qx "close conn=1 up=$SIZE down=0" "$tmp/proxy.log" ||
	fail "no close line with up=$SIZE down=0"

printf '1..1\nok 1 - pfproxy corrupts exactly the chosen bytes\n'
exit 0
