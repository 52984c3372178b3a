#!/bin/bash
# SPDX-License-Identifier: MIT
# The client killed (SIGKILL) at random moments during one upload, again
# and again, then run once more to the end: the file must arrive
# identical, all runs must share one server session (the state file in
# $PARAFLOW_STATE_DIR names it), and each kill may cost at most the chunk
# each stream had in flight: the server's metadata of the finished file
# says how many chunk bytes it read and how many chunks it was sent
# although it held them already.
#
# The kill moments come from bash's RANDOM, seeded from PF_SEED (printed,
# so a failure can be replayed with the same seed).

# A 256 MiB upload takes under a second on loopback, too short to be
# interrupted 20 times. Where the test may, it runs in a network namespace
# of its own whose loopback is throttled to 256 Mbit/s (about 8 s for the
# file); elsewhere the file is uploaded under several names until enough
# kills were made (PF_NETNS=off forces that).
if [ -z "${PF_NETNS:-}" ] && command -v tc >/dev/null 2>&1 &&
    command -v ip >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
	PF_NETNS=1 exec unshare -n bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

throttle_loopback

MIB=$((1024 * 1024))
SIZE=$((256 * MIB))
CHUNK=$((4 * MIB))
THREADS=4
MIN_KILLS=20
MAX_ROUNDS=15

SEED=${PF_SEED:-$(date +%s)}
RANDOM=$SEED
echo "# seed $SEED (set PF_SEED=$SEED to replay); throttled loopback:" \
    "$throttled"

export PARAFLOW_STATE_DIR=$T/state
mkdir -p "$PARAFLOW_STATE_DIR"

# state_sids: the session ids found in the state files, one a line. Only
# NAME.json: a client killed while saving its state leaves a whole
# NAME.json.tmp-XXXXXX behind, which is no state file (it was never
# renamed into place), and reading it hid a state file's removal.
state_sids() {
	python3 - "$PARAFLOW_STATE_DIR" <<'EOF'
import json
import os
import sys

d = sys.argv[1]
for n in sorted(os.listdir(d)):
    if not n.endswith(".json"):
        continue
    try:
        with open(os.path.join(d, n), encoding="utf-8") as f:
            j = json.load(f)
    except (OSError, ValueError):
        continue
    if isinstance(j, dict) and isinstance(j.get("session"), str):
        print(j["session"])
EOF
}

mkfile "$T/src" "$SIZE"
want=$(sha "$T/src")
start_server -v

# committed NAME: the server's log says a session of NAME completed;
# prints its id.
committed() {
	sed -n "s/.*session \([0-9a-f-]*\) complete: \"$1\".*/\1/p" \
	    "$T/server.log" | tail -n 1
}

# round NAME: kills uploads of src as NAME until one finishes on its own,
# then runs it to the end and checks the result.
#
# A kill can come after the run's COMMIT was answered and its state file
# removed, before it exits (an ASan build's exit, its leak check, takes a
# while): the upload is then done, and a rerun would rightly upload the
# file again, as a new session. That run counts as the last one, and the
# server's log names its session.
round() {
	local name=$1 i=0 rc pid kills=0 first_sid="" sids="" out opened
	local before_kill=no received dup resent bound other_sid="" switches=0
	local done_run="" early=0
	while :; do
		i=$((i + 1))
		"$PARAFLOW" upload --port "$PORT" --quiet --json --file "$T/src" \
		    --name "$name" --threads "$THREADS" \
		    >"$T/run.out" 2>"$T/run.err" &
		pid=$!
		rand_sleep
		# Not if it ended by itself: once reaped, its PID is not ours.
		signal_ours KILL "$pid"
		rc=0
		wait "$pid" 2>/dev/null || rc=$?
		if [ "$rc" = 126 ] || [ "$rc" = 127 ]; then
			# Not started: the binary is being rebuilt.
			echo "# $name: run $i could not start (exit $rc)"
			sleep 1
			continue
		fi
		if [ "$rc" != 137 ]; then
			echo "# $name: run $i ended by itself (exit $rc)"
			break
		fi
		kills=$((kills + 1))
		faults=$((faults + 1))
		sids=$(state_sids | sort -u)
		if [ -z "$sids" ] && [ -n "$(committed "$name")" ]; then
			echo "# $name: run $i was killed after its upload" \
			    "completed"
			done_run=$i
			# Killed in the first run's exit: no state seen.
			[ -n "$first_sid" ] || first_sid=$(committed "$name")
			break
		fi
		if [ -z "$first_sid" ]; then
			first_sid=$(printf '%s\n' "$sids" | head -n 1)
			[ -n "$first_sid" ] || {
				before_kill=yes
				early=$((early + 1))
			}
		fi
		if [ -n "$sids" ] && [ "$sids" != "$first_sid" ] &&
		    [ "$sids" != "$other_sid" ]; then
			echo "# $name: state file after kill $kills: $sids"
			other_sid=$sids
			switches=$((switches + 1))
		fi
		# A client that never finishes must not loop forever.
		[ "$kills" -ge 100 ] && break
	done
	echo "# $name: $kills kills"

	# A run that ended by itself is the end; otherwise once more.
	if [ -n "$done_run" ]; then
		out=
		sid=$(committed "$name")
		ok "$name: final run exits 0 # SKIP run $done_run completed" \
		    "the upload before its kill"
	elif [ "$rc" = 137 ] || [ "$rc" != 0 ]; then
		rc=0
		out=$(timeout 150 "$PARAFLOW" upload --port "$PORT" --quiet \
		    --json --file "$T/src" --name "$name" \
		    --threads "$THREADS" 2>"$T/final.err") || rc=$?
	else
		out=$(cat "$T/run.out")
	fi
	if [ -z "$done_run" ]; then
		echo "# $name: final run: $out"
		check_eq "$name: final run exits 0" 0 "$rc"
		sid=$(json_field "$out" session)
	fi
	check "$name: stored file identical (sha256 $want)" \
	    verify_stored "$T/src" "$sid" "$name"
	[ "$kills" -gt 0 ] || return 0
	[ "$before_kill" = yes ] &&
	    echo "# $name: $early kills came before a state file existed"
	opened=$(grep -c "session [0-9a-f-]* opened by .*: \"$name\"" \
	    "$T/server.log")
	check_eq "$name: one session across all runs (state files = JSON)" \
	    "$first_sid/0" "$sid/$switches"
	# A run killed after its OPEN and before it recorded the session
	# leaves one more (later reaped): at most one per such early kill.
	if [ "$before_kill" = yes ]; then
		check "$name: server opened 1 to $((early + 1)) sessions (got \
$opened, $early early kills)" between 1 "$opened" $((early + 1))
	else
		check_eq "$name: server opened exactly one session" 1 "$opened"
	fi
	check "$name: state file removed after completion" \
	    bash -c "! grep -rqs '$sid' '$PARAFLOW_STATE_DIR'"
	check "$name: staging area of the session removed" \
	    [ ! -e "$STORAGE/.staging/$sid" ]
	received=$(meta_field "$sid" bytes_received)
	dup=$(meta_field "$sid" chunks_duplicate)
	check "$name: server metadata has bytes_received" \
	    [ -n "$received" ]
	resent=$((${received:-0} - SIZE))
	bound=$((kills * THREADS * CHUNK))
	echo "# $name: server read $received chunk bytes for $SIZE:" \
	    "$resent re-sent over $kills kills (bound $bound)," \
	    "resumed_chunks $(json_field "$out" resumed_chunks)," \
	    "bytes_sent $(json_field "$out" bytes_sent)"
	check "$name: re-sent bytes < one chunk per stream per kill" \
	    between 0 "$resent" $((bound - 1))
	# chunks_duplicate counts chunks received although already held. A
	# chunk the killed run had sent whole may still be being synced when
	# the next run resumes: it is not in "have" yet, so it is sent again
	# (NACKed while busy, then ACKed as held). That race is allowed, one
	# chunk per stream per kill; anything more means held chunks were
	# sent again.
	echo "# $name: $dup chunks sent again although held"
	check "$name: held chunks sent again <= one per stream per kill" \
	    between 0 "${dup:--1}" $((kills * THREADS))
	if [ -n "$done_run" ]; then
		ok "$name: final JSON status ok # SKIP run $done_run completed" \
		    "the upload before its kill"
	else
		check_eq "$name: final JSON status ok" ok \
		    "$(json_field "$out" status)"
	fi
}

for ((r = 1; r <= MAX_ROUNDS && faults < MIN_KILLS; r++)); do
	round "round$r.bin"
done
check "at least $MIN_KILLS kills (got $faults in $((r - 1)) rounds)" \
    [ "$faults" -ge "$MIN_KILLS" ]
report_totals

# --- What a run killed while it rewrote its state file left -------------
# NAME.json.tmp-XXXX beside the state file: the next run of the same
# upload, holding its lock, removes it; another upload's is left alone.
export PARAFLOW_STATE_DIR=$T/state2
mkdir -p "$PARAFLOW_STATE_DIR"
mkfile "$T/tmps" $((4 * 1024 * 1024))
# The client itself, not a function's subshell, is what is killed.
"$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" --file "$T/tmps" \
    --name tmps.bin --limit-rate 256K -c 64K >/dev/null 2>&1 &
held=$!
PIDS+=("$held")
state_file() {
	find "$PARAFLOW_STATE_DIR" -name '*.json' | head -n 1
}
# shellcheck disable=SC2317 # called through wait_for
has_state() {
	[ -n "$(state_file)" ]
}
check "a slow upload writes its state file" wait_for 60 has_state
signal_ours KILL "$held"
wait "$held" 2>/dev/null
f=$(state_file)
: >"$f.tmp-0123456789ab"
: >"$PARAFLOW_STATE_DIR/0000.json.tmp-0123456789ab"
run "$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" \
    --file "$T/tmps" --name tmps.bin -c 64K
check_eq "the rerun completes" 0 "$RC"
check "its state file's leftover temporary is gone" \
    test ! -e "$f.tmp-0123456789ab"
check "another upload's is left alone" \
    test -e "$PARAFLOW_STATE_DIR/0000.json.tmp-0123456789ab"

# --- A rerun after a file changed, its size and mtime second kept -------
# A transfer's manifest holds mtimes in seconds, and a state file written
# by an older client no change stamps: the rerun asks to resume the
# interrupted session, which holds other bytes (its first ones); the
# server ends it (it would have waited out --staging-ttl, one of the
# user's sessions) and the rerun starts anew.
# interrupted DIR: a slow transfer of DIR (state in $T/DIR.state), killed
# a second after its state is written; OLD is its session.
interrupted() {
	local held
	export PARAFLOW_STATE_DIR=$T/$1.state
	mkdir -p "$PARAFLOW_STATE_DIR"
	"$PARAFLOW" upload --port "$PORT" --quiet "${NOTLS[@]}" \
	    --limit-rate 256K -c 64K "$T/$1" >/dev/null 2>&1 &
	held=$!
	PIDS+=("$held")
	check "a slow transfer of $1 writes its state" wait_for 60 has_state
	sleep 1
	signal_ours KILL "$held"
	wait "$held" 2>/dev/null
	OLD=$(json_get session <"$(state_file)")
}

mkdir -p "$T/chg"
mkfile "$T/chg/f" $((4 * 1024 * 1024))
interrupted chg
python3 - "$(state_file)" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
del s["layout"]["stamps"]
json.dump(s, open(sys.argv[1], "w"))
EOF
mtime=$(stat -c %Y "$T/chg/f")
printf 'changed!' | dd of="$T/chg/f" bs=1 conv=notrunc 2>/dev/null
touch -d "@$mtime.5" "$T/chg/f"
run "$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --json -v -c 64K \
    "$T/chg"
check_eq "the rerun over the changed file completes" 0 "$RC"
NEW=$(json_get session <"$T/out")
check "  in a new session" test -n "$NEW" -a "$NEW" != "$OLD"
check "  the client says why" grep -q "will not resume session $OLD" \
    "$T/err"
check "  the stored file is the changed one" cmp "$T/chg/f" \
    "$STORAGE/$NEW/chg/f"
check "  the old session was cancelled, its staging area gone" \
    test -n "$OLD" -a ! -e "$STORAGE/.staging/$OLD"
check "  the server says so" grep -q \
    "session $OLD cancelled: resumed for other bytes" "$T/server.log"

# --- The same, the change past the first bytes ---------------------------
# The head and the manifest are the same then: the client tells the file
# changed by its ctime, saved with the layout, and amends the transfer
# (that file sent again) where it once resumed as is and failed its
# receipt at COMMIT (exit 6, the session lost).
mkdir -p "$T/chg2"
mkfile "$T/chg2/a" $((2 * 1024 * 1024))
mkfile "$T/chg2/b" $((2 * 1024 * 1024))
interrupted chg2
# In a's second chunk, which the server holds by now (256 KiB/s, 1 s).
mtime=$(stat -c %Y "$T/chg2/a")
printf 'changed!' | dd of="$T/chg2/a" bs=1 seek=70000 conv=notrunc \
    2>/dev/null
touch -d "@$mtime" "$T/chg2/a"
run "$PARAFLOW" upload --port "$PORT" "${NOTLS[@]}" --json -v -c 64K \
    "$T/chg2"
check_eq "a file changed past the head: the rerun completes" 0 "$RC"
check "  in the interrupted session, amended" test "$(json_get session \
    <"$T/out")" = "$OLD" -a -n "$(grep 'amending session' "$T/err")"
NEW=$(json_get session <"$T/out")
check "  the changed file stored as it is now" cmp "$T/chg2/a" \
    "$STORAGE/$NEW/chg2/a"
check "  and the other" cmp "$T/chg2/b" "$STORAGE/$NEW/chg2/b"

stop_server
done_testing
