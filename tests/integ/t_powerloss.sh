#!/bin/bash
# SPDX-License-Identifier: MIT
# Simulated power losses under real uploads. paraflowd's storage and its
# users file live on lossyfs (tests/tools/lossyfs.c), a FUSE passthrough
# that, at a chosen operation, drops everything not yet made durable by
# fsync/fdatasync (file data) or a directory fsync (names). Each round:
# `paraflowd --add-user` rewrites the users file, then one upload that is
# finished, one that is cut off and resumed, one cut off and cancelled,
# two at once, and a fetch of a finished one; the power goes
# at the round's crash point (or, if the point is never reached, at the
# end). Then paraflowd is killed, the filesystem mounted again, the
# boot marker removed (a real power loss is a reboot), paraflowd started
# again, and every client run again. Checked after each: every chunk a
# client saw acknowledged is still held (journal and data, or the
# finished file), no held chunk or finished file differs from its source,
# a COMMIT the client saw succeed left its file, and the users file is
# the old one or the new one, never anything else.
# Then the same for a transfer (a folder in one session, small files
# sharing chunks, each file its own backing file): cut by the power at
# points of its own, it must resume with every chunk it saw acknowledged
# held, and a transfer the client saw committed must be whole, tree and
# bytes. On lossyfs, a FUSE filesystem, paraflowd must fsync each file
# and directory: a FUSE daemon never hears of a syncfs.
#
# PF_CRASH_AT='KIND:GLOB:N[+]' runs that one point instead of the list
# below (KIND: write fsync fsyncdir create mkdir rename unlink truncate
# fallocate; GLOB against the path under the mount, e.g.
# 'fsync:storage/.staging/*/journal:3'; '+': just after that operation).
# 'end' loses the power after all the work.
# PF_SEED: which unsynced writes a power loss keeps (lossyfs --keep-some).
# PF_TRACE=FILE keeps the operations of the last round, to pick points.
# PF_TRANSFER_CRASH_AT: the same for the transfer's rounds alone ('all':
# all of theirs, and no other).

# In a mount namespace of its own where the test may: the lossy mounts
# are then seen by no other process, and no other namespace keeps a copy
# of one alive after it is unmounted here.
if [ -z "${PF_MNTNS:-}" ] && unshare -m --propagation private true \
    2>/dev/null; then
	PF_MNTNS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

LOSSYFS=${LOSSYFS:-$top_builddir/tests/tools/lossyfs}
[ -x "$LOSSYFS" ] ||
    skip_all "lossyfs not built (configure found no libfuse3-dev)"
command -v fusermount3 >/dev/null 2>&1 || skip_all "fusermount3 not found"
[ -c /dev/fuse ] || skip_all "no /dev/fuse"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

KIB=1024
CHUNK=$((64 * KIB))
BACK=$T/back
STORE=$T/store
MNT=$T/mnt
# What paraflowd sees, and the same files as the disk holds them.
STORAGE=$MNT/storage
DISK=$BACK/storage
export PARAFLOW_SECRET=alice-pw
export PARAFLOW_USER=alice
# The client's resume state on the same disk: the client makes it.
export PARAFLOW_STATE_DIR=$MNT/state
LFS_PID=
PORT=0
HTTP_PORT=0
mkdir -p "$MNT" "$BACK"
# The server's key, made now; the clients trust it by its pin.
PIN=$(server_pin) || exit 1

# mount_lossy [ARGS...]: lossyfs on $BACK at $MNT, the store emptied.
mount_lossy() {
	local i
	rm -rf "$STORE"
	mkdir -p "$STORE"
	# LeakSanitizer finds libfuse's own node table left behind when an
	# unmount races the kernel's last lookups: not ours to judge.
	ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 \
	    "$LOSSYFS" "$@" "$BACK" "$STORE" "$MNT" 2>>"$T/lossyfs.log" &
	LFS_PID=$!
	# 30 s: lossyfs under ASan on a loaded machine is slow to mount.
	for ((i = 0; i < 600; i++)); do
		grep -q " $MNT fuse" /proc/mounts && return 0
		ours "$LFS_PID" || break
		sleep 0.05
	done
	return 1
}

# umount_lossy: unmounts, and ends lossyfs if the unmount did not (the
# power-loss state is on the backing directory already).
umount_lossy() {
	local i
	[ -n "$LFS_PID" ] || return 0
	fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT"
	for ((i = 0; i < 40; i++)); do
		ours "$LFS_PID" || break
		sleep 0.05
	done
	# Only if still ours: once reaped, its PID may be another's.
	signal_ours TERM "$LFS_PID"
	wait "$LFS_PID" 2>/dev/null
	LFS_PID=
}

crashed() {
	[ -s "$STORE/crashed" ]
}

# The test's own cleanup first: nothing may stay mounted.
# PIDS holds every server and client of every round, most of them long
# reaped: only the ones still ours are killed (signal_ours, lib.sh).
powerloss_cleanup() {
	signal_ours KILL "${PIDS[@]}"
	umount_lossy
	cleanup
}
trap powerloss_cleanup EXIT

mount_lossy || skip_all "cannot mount FUSE here: $(tail -n 1 \
    "$T/lossyfs.log" 2>/dev/null)"
umount_lossy

# The sources, and the users file before the round's rewrite.
mkfile "$T/a.bin" $((16 * CHUNK))
mkfile "$T/b.bin" $((40 * CHUNK))
mkfile "$T/c.bin" $((8 * CHUNK))
mkfile "$T/d.bin" $((8 * CHUNK + 1000))
mkfile "$T/e.bin" $((40 * CHUNK))
printf '%s\n' "$PARAFLOW_SECRET" | "$PARAFLOWD" --users "$T/users.old" \
    --add-user alice 2>/dev/null || exit 1
SERVER_ARGS=(--users "$MNT/users" --tls-dir "$TLS_DIR"
    --storage "$STORAGE" --bind 127.0.0.1 --stop-grace 1)

# start_paraflowd: on $PORT (0 the first time); sets SERVER_PID and PORT.
start_paraflowd() {
	local i
	for ((i = 0; i < 50; i++)); do
		rm -f "$T/port" "$T/http_port"
		"$PARAFLOWD" --port "$PORT" --port-file "$T/port" \
		    --http-port "$HTTP_PORT" --http-port-file "$T/http_port" \
		    "${SERVER_ARGS[@]}" 2>>"$T/server.log" &
		SERVER_PID=$!
		PIDS+=("$SERVER_PID")
		while ours "$SERVER_PID" && [ ! -s "$T/port" ]
		do
			sleep 0.02
		done
		if [ -s "$T/port" ] && wait_file "$T/http_port" 60; then
			PORT=$(cat "$T/port")
			HTTP_PORT=$(cat "$T/http_port")
			return 0
		fi
		signal_ours KILL "$SERVER_PID"
		wait "$SERVER_PID" 2>/dev/null
		crashed && return 1
		sleep 0.1
	done
	return 1
}

# client NAME [ARGS...]: starts an upload of $T/NAME in the background
# (CPIDS), its ACKs (-v) in $T/NAME.err, its result in $T/NAME.out. It
# gives up soon (the power may be gone); ARGS may say otherwise.
declare -A CPIDS
client() {
	"$PARAFLOW" upload --port "$PORT" --pin "$PIN" -v --json \
	    --file "$T/$1" \
	    --name "$1" --chunk-size "$CHUNK" --threads 4 --timeout 5 \
	    --give-up 3 "${@:2}" >"$T/$1.out" 2>>"$T/$1.err" &
	CPIDS[$1]=$!
	PIDS+=("$!")
}

# client_wait NAME: waits for it (at most 60 s) unless the power goes;
# a finished client's result is kept in $T/NAME.done.
client_wait() {
	local i rc
	for ((i = 0; i < 1200; i++)); do
		ours "${CPIDS[$1]}" || break
		crashed && return 1
		sleep 0.05
	done
	rc=0
	wait "${CPIDS[$1]}" 2>/dev/null || rc=$?
	[ "$rc" = 0 ] && grep -q '"session"' "$T/$1.out" &&
	    cp "$T/$1.out" "$T/$1.done"
	return "$rc"
}

acks() {
	local n
	n=$(grep -c 'chunk [0-9]* acknowledged' "$T/$1.err" 2>/dev/null)
	echo "${n:-0}"
}

# cut_off NAME: an upload of NAME killed once it has a few ACKs.
cut_off() {
	local i
	client "$1"
	for ((i = 0; i < 400; i++)); do
		[ "$(acks "$1")" -ge 4 ] && break
		ours "${CPIDS[$1]}" || break
		crashed && return 1
		sleep 0.01
	done
	# It may have ended by itself (then its PID is no longer ours).
	signal_ours KILL "${CPIDS[$1]}"
	wait "${CPIDS[$1]}" 2>/dev/null
	! crashed
}

# workload: the round's work, until the power goes.
workload() {
	printf 'bob-pw\n' | "$PARAFLOWD" --users "$MNT/users" \
	    --add-user bob 2>>"$T/server.log" || return 1
	start_paraflowd || return 1
	client a.bin
	client_wait a.bin || return 1
	# b.bin: killed once it has a few ACKs, then resumed.
	cut_off b.bin || return 1
	client b.bin
	client_wait b.bin || return 1
	# e.bin: cut off, then cancelled.
	cut_off e.bin || return 1
	# "cancelled" only: a session that had failed (the power went under
	# it) is "deleted" from the list, which is not this promise.
	timeout 120 "$PARAFLOW" cancel "$(sid e.bin)" \
	    --http "https://127.0.0.1:$HTTP_PORT" --pin "$PIN" \
	    >"$T/cancel.out" 2>&1 && grep -q '^cancelled' "$T/cancel.out" &&
	    CANCELLED=yes
	client c.bin
	client d.bin
	client_wait c.bin
	client_wait d.bin || return 1
	fetch
}

# fetch: a.bin from the gateway to dl/a.bin on the lossy disk; FETCHED
# says whether it said it was done.
fetch() {
	FETCHED=no
	timeout 120 "$PARAFLOW" fetch "$(json_field "$(cat "$T/a.bin.out")" \
	    session)" -o "$MNT/dl/a.bin" \
	    --http "https://127.0.0.1:$HTTP_PORT" --pin "$PIN" \
	    >>"$T/fetch.out" 2>&1 && FETCHED=yes
}

# fetch_ok: dl/a.bin is whole or absent, and a .part left is a prefix.
fetch_ok() {
	local part=$BACK/dl/a.bin.part
	if [ -e "$BACK/dl/a.bin" ] && ! cmp -s "$T/a.bin" "$BACK/dl/a.bin"
	then
		echo "# fetch: dl/a.bin is not the file"
		return 1
	fi
	if [ -e "$part" ] && ! cmp -s -n "$(stat -c %s "$part")" \
	    "$T/a.bin" "$part"; then
		echo "# fetch: dl/a.bin.part is not a prefix of the file"
		return 1
	fi
	if [ "$FETCHED" = yes ] && [ ! -e "$BACK/dl/a.bin" ]; then
		echo "# fetch: done before the power loss, and gone after it"
		return 1
	fi
}

# sid NAME: the session paraflowd opened for NAME (the round's first).
sid() {
	sed -n "s/.*session \([0-9a-f-]*\) opened by .*\"$1\".*/\1/p" \
	    "$T/server.log" | head -n 1
}

# check_chunks NAME SID: compares what the disk holds for SID with the
# source and with what the client saw acknowledged. Prints "acked held
# lost torn" (torn: a held chunk or a finished file unlike the source).
check_chunks() {
	python3 - "$T/$1" "$CHUNK" "$DISK" "$2" "$1" "$T/$1.err" <<'EOF'
import hashlib, os, re, struct, sys
src, chunk, disk, sid, name, err = sys.argv[1:]
chunk = int(chunk)
data = open(src, "rb").read()
n = (len(data) + chunk - 1) // chunk
acked = set()
if os.path.exists(err):
    acked = {int(m) for m in re.findall(r"chunk (\d+) acknowledged",
                                        open(err).read())}
held, torn = set(), 0
final = os.path.join(disk, sid, name)
stage = os.path.join(disk, ".staging", sid)
if sid and os.path.exists(final):
    if open(final, "rb").read() == data:
        held = set(range(n))
    else:
        torn += 1
if sid and os.path.exists(os.path.join(stage, "journal")):
    j = open(os.path.join(stage, "journal"), "rb").read()
    d = open(os.path.join(stage, "data"), "rb").read()
    for i in range(0, len(j) - 47, 48):
        r = j[i:i + 48]
        if r[4:8] != b"\0" * 4 or hashlib.sha256(r[:40]).digest()[:8] \
                != r[40:48]:
            break
        idx = struct.unpack(">I", r[:4])[0]
        if d[idx * chunk:(idx + 1) * chunk] != \
                data[idx * chunk:(idx + 1) * chunk]:
            torn += 1
        else:
            held.add(idx)
print(len(acked), len(held), len(acked - held), torn)
EOF
}

# users_ok: the users file is the old one, or the old one and bob's line.
users_ok() {
	python3 - "$T/users.old" "$BACK/users" <<'EOF'
import re, sys
old = open(sys.argv[1], "rb").read()
new = open(sys.argv[2], "rb").read()
bob = rb"bob:SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:" \
    rb"[A-Za-z0-9+/=]+\n"
sys.exit(0 if new == old or (new.startswith(old) and
                             re.fullmatch(bob, new[len(old):])) else 1)
EOF
}

# json_ok: every JSON file paraflowd wrote on the disk reads back whole.
json_ok() {
	find "$DISK" -name '*.json' -print0 2>/dev/null |
	    xargs -0 -r python3 -c '
import json, sys
for f in sys.argv[1:]:
    try:
        json.load(open(f))
    except ValueError:
        print("# torn JSON: " + f)
        sys.exit(1)'
}

# The power loss also keeps a random part of the unsynced writes.
SEED=${PF_SEED:-$(date +%s)}
echo "# seed $SEED (PF_SEED=$SEED replays which unsynced writes survive)"
rounds=0 reached=0 acked_total=0 lost_total=0 torn_total=0 commits=0
users_torn=0 unfinished=0 zombies=0 restarted=0

# stop_round: the power is off (or goes now): everyone dies, the disk is
# what lossyfs kept.
stop_round() {
	local p
	crashed || signal_ours USR1 "$LFS_PID"
	# SIGUSR1 takes effect at the next operation: make one.
	for p in 1 2 3 4 5 6 7 8 9 10; do
		crashed && break
		ls "$MNT" >/dev/null 2>&1
		sleep 0.05
	done
	# Clients that finished were reaped: their PIDs are not ours.
	signal_ours KILL "$SERVER_PID" "${CPIDS[@]}"
	for p in "$SERVER_PID" "${CPIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	umount_lossy
}

# round_start POINT: a new disk (the users file the old one), lossyfs on
# it armed for POINT, FETCHED=no; false if it cannot be mounted.
round_start() {
	local arm=(--crash-at "$1")
	rounds=$((rounds + 1))
	rm -rf "$BACK" "$T"/*.err "$T"/*.out "$T"/*.done "$T/trace" \
	    "$T"/*.fetch "$T/fetch.out" "$T/cancel.out"
	mkdir -p "$BACK/dl"
	FETCHED=no
	cp "$T/users.old" "$BACK/users"
	: >"$T/server.log"
	[ "$1" = end ] && arm=()
	arm+=(--keep-some $((SEED + rounds)))
	mount_lossy "${arm[@]}" --trace "$T/trace" || {
		not_ok "$1: lossyfs mounted"
		return 1
	}
}

# power_off POINT LABEL: the power goes, at POINT if the round reached
# it, else now; WHY says where it went.
power_off() {
	if crashed || [ "$1" = end ]; then
		reached=$((reached + 1))
	else
		echo "# $2: not reached; the power goes at the end"
	fi
	stop_round
	WHY=$(head -n 1 "$STORE/crashed" 2>/dev/null)
	[ -n "${PF_TRACE:-}" ] && cp "$T/trace" "$PF_TRACE"
}

# round POINT: one power loss at POINT (or at the end).
round() {
	local point=$1 f s out lost=0 torn=0 acked=0
	CANCELLED=no
	round_start "$point" || return
	workload
	power_off "$point" "$point"
	users_ok || users_torn=$((users_torn + 1))
	# A reboot: paraflowd must check the journaled chunks.
	rm -f "$DISK/.staging/.boot"
	mount_lossy || return
	log_mark
	start_paraflowd || {
		not_ok "$point: paraflowd started after the power loss"
		sed 's/^/# /' "$T/server.log" | tail -n 20
		umount_lossy
		return
	}
	for f in a.bin b.bin c.bin d.bin; do
		s=$(sid "$f")
		read -r a _ l t < <(check_chunks "$f" "$s")
		acked=$((acked + a))
		lost=$((lost + l))
		torn=$((torn + t))
		[ "$l" = 0 ] || echo "# $point: $f: $l of $a acknowledged" \
		    "chunks lost (session ${s:-none})"
		if [ -f "$T/$f.done" ]; then
			commits=$((commits + 1))
			s=$(json_field "$(cat "$T/$f.done")" session)
			cmp -s "$T/$f" "$DISK/$s/$f" || {
				echo "# $point: $f: committed, but its file" \
				    "is gone or differs"
				torn=$((torn + 1))
			}
			# Finished, so not to be resumed as well.
			! log_since | grep -q "session $s recovered" || {
				echo "# $point: $f: finished, and recovered" \
				    "as a live session too"
				zombies=$((zombies + 1))
			}
			continue
		fi
		# Not finished before the power loss: it must finish now,
		# in the same session if a chunk of it was acknowledged. The
		# power stays on: the limits of an ASan build under load.
		client "$f" --timeout 60 --give-up 60
		client_wait "$f" || unfinished=$((unfinished + 1))
		out=$(cat "$T/$f.out")
		[ "$a" = 0 ] ||
		    [ "$(json_field "$out" session)" = "$(sid "$f")" ] || {
			echo "# $point: $f: a new session after the power" \
			    "loss, though $a chunks were acknowledged"
			restarted=$((restarted + 1))
		}
		s=$(json_field "$out" session)
		cmp -s "$T/$f" "$DISK/$s/$f" || {
			echo "# $point: $f: not stored whole after the rerun:" \
			    "$out"
			unfinished=$((unfinished + 1))
		}
	done
	# A cancel answered as done stays done.
	s=$(sid e.bin)
	if [ "$CANCELLED" = yes ] && log_since | grep -q "session $s recovered"
	then
		echo "# $point: e.bin: cancelled, and recovered as a live" \
		    "session"
		zombies=$((zombies + 1))
	fi
	json_ok || torn=$((torn + 1))
	# The download: what the power loss left must be usable.
	fetch_ok || torn=$((torn + 1))
	[ "$FETCHED" = yes ] || fetch
	cmp -s "$T/a.bin" "$BACK/dl/a.bin" || {
		echo "# $point: fetch did not finish after the power loss"
		unfinished=$((unfinished + 1))
	}
	echo "# $point: power lost at ${WHY:-the end}; $acked acknowledged," \
	    "$lost lost, $torn torn"
	acked_total=$((acked_total + acked))
	lost_total=$((lost_total + lost))
	torn_total=$((torn_total + torn))
	signal_ours TERM "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null
	umount_lossy
}

if [ -n "${PF_CRASH_AT:-}" ]; then
	POINTS=("$PF_CRASH_AT")
elif [ -n "${PF_TRANSFER_CRASH_AT:-}" ]; then
	POINTS=()
else
	S='storage/.staging'
	POINTS=(
	    # After all the work: what was finished must be there.
	    end
	    # The users file rewrite (pf_write_atomic).
	    "write:users.tmp-*:1"
	    "fsync:users.tmp-*:1"
	    "rename:users.tmp-*:1"
	    "rename:users.tmp-*:1+"
	    # The storage directory and an OPEN.
	    "mkdir:storage/*:1+"
	    "rename:$S/*/session.json.tmp-*:1+"
	    "fsyncdir:$S:1"
	    # A chunk: data written, not synced; synced, not journaled;
	    # journaled, not synced; synced, not acknowledged.
	    "write:$S/*/data:1+"
	    "fsync:$S/*/data:1"
	    "fsync:$S/*/data:1+"
	    "write:$S/*/journal:3"
	    "write:$S/*/journal:3+"
	    "fsync:$S/*/journal:2"
	    "fsync:$S/*/journal:4+"
	    "fsync:$S/*/journal:7+"
	    # COMMIT of a.bin: before and after the rename, during the
	    # directory syncs, while the staging area goes.
	    "create:storage/*/.paraflow.json.tmp-*:1"
	    "rename:$S/*/data:1"
	    "rename:$S/*/data:1+"
	    "fsyncdir:storage/[0-9a-f]*:1"
	    "fsyncdir:storage:1"
	    "fsyncdir:storage:1+"
	    "unlink:$S/*/journal:1"
	    # The resume of b.bin, e.bin before and after its cancel, and
	    # the two uploads at once.
	    "fsync:$S/*/journal:9"
	    "write:$S/*/data:40+"
	    "write:$S/*/data:62"
	    "unlink:$S/*/session.json:3"
	    "mkdir:$S/*:4"
	    "write:$S/*/data:74"
	    "rename:$S/*/data:3+"
	    # The client's resume state on the same disk.
	    "mkdir:state:1+"
	    "rename:state/*.json.tmp-*:1+"
	    # fetch's .part, its sync and its rename into place.
	    "write:dl/a.bin.part:3+"
	    "fsync:dl/a.bin.part:1"
	    "rename:dl/a.bin.part:1"
	    "fsyncdir:dl:1"
	)
fi

for p in "${POINTS[@]}"; do
	round "$p"
done

# The transfer's tree: nested folders, small files packed into shared
# chunks, one over eight chunks, an empty file and an empty folder.
mktree() {
	local i
	mkdir -p "$1/a/b" "$1/c" "$1/empty"
	for i in $(seq 1 24); do
		mkfile "$1/$([ $((i % 3)) = 0 ] && echo a/b || echo c)/f$i" \
		    $((i * 700 + 100))
	done
	mkfile "$1/a/big.bin" $((8 * CHUNK + 1000))
	: >"$1/a/zero"
}
mktree "$T/tree"

# tclient [ARGS...]: an upload of the tree in the background, as client.
tclient() {
	"$PARAFLOW" upload --port "$PORT" --pin "$PIN" -v --json \
	    --chunk-size "$CHUNK" --threads 4 --timeout 5 --give-up 3 "$@" \
	    "$T/tree" >"$T/tree.out" 2>>"$T/tree.err" &
	CPIDS[tree]=$!
	PIDS+=("$!")
}

# tree_ok SID: the stored tree of session SID is the source's.
tree_ok() {
	[ -n "$1" ] && diff -r "$T/tree" "$DISK/$1/tree" >/dev/null 2>&1
}

# tround POINT: one power loss at POINT during a transfer (or after it).
tround() {
	local point=$1 acked s out
	round_start "$point" || return
	if start_paraflowd; then
		tclient
		client_wait tree && timeout 120 "$PARAFLOW" fetch \
		    "$(json_field "$(cat "$T/tree.out")" session)" \
		    -o "$MNT/dl" --http "https://127.0.0.1:$HTTP_PORT" \
		    --pin "$PIN" >>"$T/tree.fetch" 2>&1 && FETCHED=yes
	fi
	power_off "$point" "transfer, $point"
	acked=$(grep -o 'chunk [0-9]* acknowledged' "$T/tree.err" 2>/dev/null |
	    sort -u | wc -l)
	rm -f "$DISK/.staging/.boot"
	mount_lossy || return
	start_paraflowd || {
		not_ok "transfer, $point: paraflowd started after the power loss"
		umount_lossy
		return
	}
	if [ -f "$T/tree.done" ]; then
		commits=$((commits + 1))
		s=$(json_field "$(cat "$T/tree.done")" session)
		tree_ok "$s" || {
			echo "# transfer, $point: committed, but its tree is" \
			    "gone or differs"
			torn_total=$((torn_total + 1))
		}
	else
		# The rerun resumes: what was acknowledged is not sent again.
		tclient --timeout 60 --give-up 60
		client_wait tree || unfinished=$((unfinished + 1))
		out=$(cat "$T/tree.out")
		s=$(json_field "$out" session)
		tree_ok "$s" || {
			echo "# transfer, $point: not stored whole after the" \
			    "rerun: ${out:0:300}"
			unfinished=$((unfinished + 1))
		}
		if [ "$(json_field "$out" resumed_chunks)" -lt "$acked" ] \
		    2>/dev/null; then
			echo "# transfer, $point: $acked chunks acknowledged," \
			    "$(json_field "$out" resumed_chunks) held after the" \
			    "power loss"
			lost_total=$((lost_total + acked -
			    $(json_field "$out" resumed_chunks)))
		fi
	fi
	# A fetch of the tree that said it was done left it whole.
	[ "$point" != end ] || [ "$FETCHED" = yes ] || {
		echo "# transfer, end: the fetch failed: $(tail -n 1 \
		    "$T/tree.fetch" 2>/dev/null)"
		unfinished=$((unfinished + 1))
	}
	if [ "$FETCHED" = yes ] && ! diff -r "$T/tree" "$BACK/dl/tree" \
	    >/dev/null 2>&1; then
		echo "# transfer, $point: fetched, and not whole after it"
		torn_total=$((torn_total + 1))
	fi
	json_ok || torn_total=$((torn_total + 1))
	echo "# transfer, $point: power lost at ${WHY:-the end}; $acked" \
	    "acknowledged before it"
	acked_total=$((acked_total + acked))
	signal_ours TERM "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null
	umount_lossy
}

if [ -n "${PF_TRANSFER_CRASH_AT:-}" ] &&
    [ "$PF_TRANSFER_CRASH_AT" != all ]; then
	TPOINTS=("$PF_TRANSFER_CRASH_AT")
elif [ -n "${PF_CRASH_AT:-}" ]; then
	TPOINTS=()
else
	S='storage/.staging'
	TPOINTS=(
	    end
	    # Each file's backing file: written, synced, its name synced.
	    "write:$S/*/p/*:3+"
	    "fsync:$S/*/p/*:2"
	    "fsync:$S/*/p/*:2+"
	    "fsyncdir:$S/*/p:1"
	    "fsyncdir:$S/*/p:1+"
	    "fsync:$S/*/journal:2+"
	    # COMMIT: the files named, their directories synced.
	    "rename:$S/*/p/*:1"
	    "rename:$S/*/p/*:12+"
	    "fsyncdir:storage/*/tree/a:1"
	    "fsyncdir:storage/*/tree:1+"
	    # The fetch of the tree: its files' syncs, renames, directories.
	    "fsync:dl/tree/*.part:3+"
	    "rename:dl/tree/*.part:5+"
	    "fsyncdir:dl/tree/a:1+"
	)
fi
for p in "${TPOINTS[@]}"; do
	tround "$p"
done

echo "# $rounds simulated power losses ($reached at their point):" \
    "$acked_total acknowledged chunks, $lost_total lost; $torn_total" \
    "torn files; $commits COMMITs seen by clients; users file torn" \
    "$users_torn times"
check_eq "acknowledged chunks lost" 0 "$lost_total"
check_eq "torn files (chunk, finished file or JSON unlike its source)" 0 \
    "$torn_total"
check_eq "users file neither the old one nor the new one" 0 "$users_torn"
check_eq "uploads that did not finish when run again" 0 "$unfinished"
check_eq "finished or cancelled uploads recovered as live sessions" 0 \
    "$zombies"
check_eq "uploads started over though chunks were acknowledged" 0 \
    "$restarted"
check "every crash point was reached" [ "$reached" = "$rounds" ]
done_testing
