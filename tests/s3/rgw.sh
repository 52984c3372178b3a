#!/bin/bash
# SPDX-License-Identifier: MIT
# A throwaway single-node Ceph cluster with RadosGW (S3) for the tests:
# one mon, one memstore OSD (data in RAM) and radosgw, all state in DIR.
#
#   rgw.sh start DIR   starts it; prints S3_ENDPOINT=, S3_ACCESS_KEY= and
#                      S3_SECRET_KEY= lines (also in DIR/s3.env) and exits
#                      0 once a signed ListBuckets answers 200
#   rgw.sh stop DIR    stops the daemons by the PIDs recorded in DIR and
#                      removes DIR
#
# Needs Debian 12's ceph-mon, ceph-osd, radosgw and ceph-common (test-only
# packages in scripts/deps.sh), and curl. Exit 2 means "cannot run here"
# (a tool is missing), exit 1 a failed start (logs are shown, DIR is
# kept). Environment: RGW_MEMSTORE_BYTES (OSD capacity, default 2 GiB; an
# object costs about twice its size in the OSD's RAM), RGW_MIN_PART_SIZE
# (S3's 5 MiB by default). No ceph-mgr: the cluster reports MGR_DOWN,
# which changes nothing for reads and writes.
set -eu

say() { echo "rgw.sh: $*" >&2; }

# free_port: a TCP port nobody listens on now (the kernel's choice).
free_port() {
	python3 -c 'import socket; s = socket.socket()
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# mine PID CONF: true if PID is alive and is one of this cluster's
# daemons, whose command line names CONF: a recycled PID is never killed.
mine() {
	local a
	[ -n "$1" ] && [ -r "/proc/$1/cmdline" ] || return 1
	while IFS= read -r -d '' a; do
		[ "$a" = "$2" ] && return 0
	done <"/proc/$1/cmdline" 2>/dev/null
	return 1
}

# ended PID CONF TENTHS: waits up to TENTHS/10 s for PID to end.
ended() {
	local i
	for ((i = 0; i < $3; i++)); do
		mine "$1" "$2" || return 0
		sleep 0.1
	done
	! mine "$1" "$2"
}

# halt DIR: rgw, then the OSD, then the mon, one at a time. Stopped
# together, the OSD would wait 5 s (osd_mon_shutdown_timeout) for a mon
# already gone; one after another the three take half a second.
halt() {
	local conf=$1/ceph.conf name pid f
	for name in client.rgw osd.0 mon.a; do
		pid=$(cat "$1/run/$name.pid" 2>/dev/null) || continue
		mine "$pid" "$conf" || continue
		kill -TERM "$pid" 2>/dev/null || true
		ended "$pid" "$conf" 50 && continue
		say "$name ($pid) ignored SIGTERM: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		ended "$pid" "$conf" 50 || say "$name ($pid) still runs"
	done
	# A daemon that died before writing its PID file, or a helper
	# (radosgw-admin) cut short: found by its command line, by PID.
	for f in /proc/[0-9]*/cmdline; do
		pid=${f#/proc/}
		pid=${pid%/cmdline}
		if [ "$pid" != $$ ] && mine "$pid" "$conf"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
}

# conf DIR MON_PORT RGW_PORT FSID: the cluster's one configuration file.
# Every path points into DIR, so nothing lands in /var or /etc.
conf() {
	cat <<EOF
[global]
fsid = $4
mon host = [v2:127.0.0.1:$2]
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
run dir = $1/run
crash dir = $1/crash
log file = $1/log/\$name.log
mon cluster log file = $1/log/cluster.log
keyring = $1/keyring
mon data = $1/mon/\$id
osd data = $1/osd/\$id
rgw data = $1/rgw
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
# One mon: commit map changes at once, not once a second (radosgw-admin's
# first run creates pools in about 9 map changes: 9 s otherwise).
paxos propose interval = 0.01

[mon]
pid file = $1/run/\$name.pid
# A nearly full shared disk must not stop the test's mon.
mon data avail crit = 0
mon data avail warn = 0

[osd]
pid file = $1/run/\$name.pid
osd objectstore = memstore
memstore device bytes = ${RGW_MEMSTORE_BYTES:-2147483648}
osd crush initial weight = 1
osd class update on start = false

[client.rgw]
# radosgw runs in the foreground; this script records its PID.
pid file =
admin socket = $1/run/\$name.asok
# radosgw's own default (secure) cannot work with auth none.
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:$3
rgw thread pool size = 16
rgw multipart min part size = ${RGW_MIN_PART_SIZE:-5242880}
rgw enable usage log = false
rgw enable ops log = false
rgw enable lc threads = false
rgw enable quota threads = false
rgw dynamic resharding = false
rgw run sync thread = false
rgw init timeout = 60
# Deleted data lives in the OSD's RAM until RGW's GC frees it: after a
# minute, not the default two hours.
rgw gc obj min wait = 60
rgw gc processor period = 60
EOF
}

# failed DIR WHY: shows the logs' tails, stops what runs, keeps DIR.
failed() {
	local f
	trap - EXIT INT TERM HUP
	say "start failed: $2"
	for f in "$1"/log/*.log; do
		[ -f "$f" ] || continue
		echo "==== $f" >&2
		tail -n 15 "$f" >&2
	done
	halt "$1"
	say "logs kept in $1 (remove with: $0 stop $1)"
	exit 1
}

# key LENGTH ALPHABET: random characters for the S3 user's keys.
key() {
	python3 -c 'import secrets, sys
print("".join(secrets.choice(sys.argv[2]) for _ in range(int(sys.argv[1]))))' \
	    "$1" "$2"
}

start() {
	local d c mon_port rgw_port fsid osd_uuid id ak sk ep pid code try
	local t0=$SECONDS err
	for c in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool \
	    uuidgen curl python3; do
		command -v "$c" >/dev/null 2>&1 || {
			say "$c not found (scripts/deps.sh installs it)"
			exit 2
		}
	done
	case $1 in *[[:space:]]*) say "DIR has a space"; exit 1 ;; esac
	mkdir -p "$1"
	d=$(cd "$1" && pwd)
	[ -z "$(ls -A "$d")" ] || { say "$d is not empty"; exit 1; }
	# Admin sockets live in DIR/run: a Unix socket path has 107 bytes.
	[ ${#d} -le 60 ] || { say "$d: path too long"; exit 1; }
	mkdir -p "$d"/mon/a "$d"/osd/0 "$d"/run "$d"/log "$d"/crash "$d"/rgw
	fsid=$(uuidgen)
	mon_port=$(free_port)
	rgw_port=$(free_port)
	while [ "$rgw_port" = "$mon_port" ]; do rgw_port=$(free_port); done
	ak=$(key 20 ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789)
	sk=$(key 40 ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789)
	conf "$d" "$mon_port" "$rgw_port" "$fsid" >"$d/ceph.conf"
	c=(-c "$d/ceph.conf")
	err=$d/log/stderr.log
	# Any way out before S3 answers (a signal, set -e on a failed helper)
	# must not leave the daemons started so far running. A global: the
	# EXIT trap runs after start's locals are gone.
	RGW_DIR=$d
	trap 'failed "$RGW_DIR" interrupted' INT TERM HUP
	trap 'failed "$RGW_DIR" "exit $?"' EXIT

	# Every step that could hang has a deadline; the daemons themselves
	# are in sessions of their own, out of timeout's reach.
	timeout 120 monmaptool --create --fsid "$fsid" --addv a \
	    "[v2:127.0.0.1:$mon_port]" "$d/monmap" >/dev/null 2>>"$err" ||
	    failed "$d" monmaptool
	timeout 120 ceph-mon "${c[@]}" -i a --mkfs --monmap "$d/monmap" \
	    2>>"$err" ||
	    failed "$d" "ceph-mon --mkfs"
	# mon and OSD daemonize once their init is done, and exit non-zero
	# if it fails.
	timeout 120 ceph-mon "${c[@]}" -i a 2>>"$err" || failed "$d" ceph-mon
	osd_uuid=$(uuidgen)
	id=$(timeout 60 ceph "${c[@]}" osd new "$osd_uuid" 2>>"$err") ||
	    failed "$d" "ceph osd new"
	[ "$id" = 0 ] || failed "$d" "osd id '$id', not 0"
	timeout 120 ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" \
	    >>"$err" 2>&1 || failed "$d" "ceph-osd --mkfs"
	timeout 120 ceph-osd "${c[@]}" -i 0 >>"$err" 2>&1 ||
	    failed "$d" ceph-osd
	# The user's first creation also creates RGW's pools; once it failed
	# silently here under load (1 run in about 20), so it is tried again,
	# and it logs enough (DIR/log/client.admin.log, a few dozen lines) to
	# tell why next time.
	for try in 1 2 3; do
		timeout 120 radosgw-admin "${c[@]}" --debug-rgw=5 \
		    --debug-rados=5 user create --uid=test \
		    --display-name=test --access-key="$ak" --secret-key="$sk" \
		    >/dev/null 2>>"$d/log/admin.log" && break
		echo "radosgw-admin: exit $? (try $try)" >>"$d/log/admin.log"
		# A try cut short after it wrote the user makes every later
		# one fail with "user: test exists" (exit 17): the user with
		# these keys is what counts.
		timeout 120 radosgw-admin "${c[@]}" user info --uid=test \
		    2>>"$d/log/admin.log" | grep -qF "\"$ak\"" && break
		[ "$try" = 3 ] && failed "$d" "radosgw-admin user create"
		sleep 1
	done

	# radosgw daemonizes before it binds its port, and a daemon that
	# cannot bind removes its PID file: run it in the foreground, in a
	# session of its own (a caller's group kill must not reach it), and
	# watch that PID, so a failure shows at once. No inherited stdio,
	# or "$(rgw.sh start DIR)" would wait for it.
	setsid radosgw "${c[@]}" -n client.rgw -f </dev/null >>"$err" 2>&1 &
	pid=$!
	echo "$pid" >"$d/run/client.rgw.pid"
	ep=http://127.0.0.1:$rgw_port
	while :; do
		# Signed ListBuckets: proves the user and its keys. libcurl
		# 7.88's SigV4 signs sha256("") without the payload header,
		# while RGW assumes UNSIGNED-PAYLOAD: 403.
		# The keys go in on stdin: a command line is world-readable.
		code=$(printf 'user = "%s:%s"\n' "$ak" "$sk" |
		    curl -s -K - -o /dev/null -w '%{http_code}' --max-time 5 \
		    --aws-sigv4 aws:amz:us-east-1:s3 \
		    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$ep/") || true
		[ "$code" = 200 ] && break
		mine "$pid" "$d/ceph.conf" ||
		    failed "$d" "radosgw exited (port $rgw_port taken?)"
		[ $((SECONDS - t0)) -lt 90 ] ||
		    failed "$d" "no S3 answer on $ep in 90 s (HTTP '$code')"
		sleep 0.1
	done
	trap - EXIT INT TERM HUP
	printf 'S3_ENDPOINT=%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\n' \
	    "$ep" "$ak" "$sk" >"$d/s3.env"
	cat "$d/s3.env"
	say "S3 on $ep after $((SECONDS - t0)) s"
}

stop() {
	local d
	[ -d "$1" ] || return 0
	d=$(cd "$1" && pwd)
	[ -f "$d/ceph.conf" ] || { say "$d: no ceph.conf, not ours"; exit 1; }
	halt "$d"
	rm -rf -- "$d"
}

case ${1:-}:$# in
start:2) start "$2" ;;
stop:2) stop "$2" ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 1 ;;
esac
