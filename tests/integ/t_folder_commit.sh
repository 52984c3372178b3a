#!/bin/bash
# SPDX-License-Identifier: MIT
# The last step of a transfer of many files (COMMIT), which several
# threads share: a tree of 2,000 small files with executables scattered
# through it (so each worker meets some) is stored byte for byte, every
# executable refused by its own first bytes and nothing else, every
# stored file with its own receipt; then paraflowd is SIGKILLed while
# COMMIT renames another such tree's files into place, and after a
# restart (and again after a simulated reboot, when recovery reads every
# chunk back) the rerun of the same command completes it, identical,
# every chunk resumed, with no temporary name left and the staging area
# gone.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

start_server

# tree DIR: 2,000 files of 1-6 KiB in 20 folders; every 97th an ELF or a
# shell script by content under a harmless name; WANT-DIR lacks those.
tree() {
	python3 - "$1" "$1.want" <<'EOF'
import os, random, shutil, sys
random.seed(14)
for i in range(2000):
    d = "d%02d" % (i % 20)
    for top in sys.argv[1:]:
        os.makedirs(os.path.join(top, d), exist_ok=True)
    name = os.path.join(d, "f%04d.dat" % i)
    if i % 97 == 50:
        data = (b"\x7fELF\x02\x01\x01" if i % 2 else b"#!/bin/sh\necho hi\n")
        data += b"x" * 2000
        tops = sys.argv[1:2]
    else:
        data = b"pf-data " + os.urandom(random.randint(1024, 6144) - 8)
        tops = sys.argv[1:]
    for top in tops:
        with open(os.path.join(top, name), "wb") as f:
            f.write(data)
EOF
}
REFUSED=$(python3 -c 'print(sum(1 for i in range(2000) if i % 97 == 50))')

# --- Many files, executables among them -------------------------------
A=$T/a
tree "$A"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$A"
check_eq "some files refused: exit 11" 11 "$RC"
SID=$(json_get session <"$T/out")
check_eq "every executable refused, and only those" "$REFUSED" \
    "$(json_get files.refused <"$T/out")"
check "each refusal is by content" test "$(python3 -c '
import json, sys
print(sum(1 for e in json.load(open(sys.argv[1]))["entries"]
          if e["state"] == "forbidden_type"
          and "content" in (e.get("reason") or "")))' "$T/out")" \
    -eq "$REFUSED"
check "the stored tree equals the source minus them (diff -r)" \
    diff -r "$A.want" "$STORAGE/$SID/a"
check "no temporary name left" \
    test -z "$(find "$STORAGE/$SID" -name '.pf-part-*')"
# Receipts of files spread over the list, so over the workers.
bad=0
for f in d00/f0000.dat d07/f0507.dat d13/f1013.dat d19/f1999.dat; do
	want=$("$PARAFLOW" digest -c 64K "$A/$f" | cut -d' ' -f1)
	got=$(python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["entries"]:
    if e["path"] == sys.argv[2]:
        print(e.get("digest") or "")' "$T/out" "a/$f")
	[ "$want" = "$got" ] || { echo "# $f: $got, not $want"; bad=1; }
done
check_eq "each file's receipt is paraflow digest's" 0 "$bad"
check "the staging area is gone" staging_empty

# kill_in_commit DIR: uploads DIR and SIGKILLs paraflowd (and the client)
# while COMMIT renames its files into place: some are there, the session
# is still staged. CAUGHT=1 if so; the whole COMMIT can slip between two
# looks (a fast machine, or a slow one that paused this script), and
# then only what holds either way is checked.
kill_in_commit() {
	local top=$1 name cpid i
	name=$(basename "$top")
	"$PARAFLOW" upload --port "$PORT" --quiet -c 64K "$top" \
	    >"$T/$name.out" 2>"$T/$name.err" &
	cpid=$!
	CAUGHT=0
	for ((i = 0; i < 6000; i++)); do
		if compgen -G "$STORAGE/*/$name/d*/*.dat" >/dev/null; then
			signal_ours STOP "$SERVER_PID"
			staging_empty || CAUGHT=1
			break
		fi
		ours "$cpid" || break
		sleep 0.01
	done
	signal_ours KILL "$SERVER_PID" "$cpid"
	wait "$SERVER_PID" "$cpid" 2>/dev/null
	echo "# killed during COMMIT's renames: $CAUGHT"
}

# rerun_after_kill DIR WHAT: the rerun of the same command completes
# DIR's transfer, identical, resuming every chunk if the kill was caught
# (each had its ACK before COMMIT began).
rerun_after_kill() {
	local top=$1 name what=$2
	name=$(basename "$top")
	start_server --port "$PORT"
	run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$top"
	check_eq "$what: the rerun completes (exit 11)" 11 "$RC"
	SID=$(json_get session <"$T/out")
	echo "# rerun: $(json_get resumed_chunks <"$T/out") of" \
	    "$(json_get chunks <"$T/out") chunks held"
	if [ "$CAUGHT" -eq 1 ]; then
		check_eq "$what: every chunk held, none sent again" \
		    "$(json_get chunks <"$T/out")" \
		    "$(json_get resumed_chunks <"$T/out")"
		check "$what: one stored transfer for the tree" \
		    test "$(find "$STORAGE" -mindepth 2 -maxdepth 2 \
		    -name "$name" | wc -l)" -eq 1
	fi
	check_eq "$what: the same files refused" "$REFUSED" \
	    "$(json_get files.refused <"$T/out")"
	check "$what: the tree equals the source minus them (diff -r)" \
	    diff -r "$top.want" "$STORAGE/$SID/$name"
	check "$what: no temporary name left" \
	    test -z "$(find "$STORAGE" -name '.pf-part-*')"
	check "$what: the staging area is gone" staging_empty
	stop_server
}

# --- paraflowd killed while it renames the files into place ----------
B=$T/b
tree "$B"
kill_in_commit "$B"
rerun_after_kill "$B" "killed"

# --- the same, then a reboot: recovery reads every chunk back ---------
# A power loss after COMMIT's names are durable leaves the files at
# their final places and the backing files gone; removing the boot
# marker makes recovery check each journaled chunk as after a reboot,
# and it must find the renamed files' chunks where COMMIT put them.
start_server --port "$PORT"
C=$T/c
tree "$C"
kill_in_commit "$C"
rm -f "$STORAGE/.staging/.boot"
rerun_after_kill "$C" "killed, rebooted"

# --- killed while it names the files, then never rerun ---------------
# The session expires; the files its COMMIT had named go with it: a
# transfer's directory without metadata is listed by no one, and would
# hold its bytes for ever.
start_server --port "$PORT"
E=$T/e
tree "$E"
kill_in_commit "$E"
unlisted() {
	find "$STORAGE" -mindepth 1 -maxdepth 1 -type d ! -name '.*' |
	    while read -r d; do
		[ -e "$d/.paraflow.json" ] || echo "$d"
	done
}
echo "# left unlisted by the kill: $(unlisted | wc -l)"
listed=$(($(stored_count) - $(unlisted | wc -l)))
start_server --port "$PORT" --staging-ttl 2
for ((i = 0; i < 300; i++)); do
	staging_empty && [ -z "$(unlisted)" ] && break
	sleep 0.1
done
check "never rerun: the session expires, its staging area goes" \
    staging_empty
check "never rerun: no transfer directory without metadata is left" \
    test -z "$(unlisted)"
check_eq "never rerun: every stored transfer is still there" "$listed" \
    "$(stored_count)"
stop_server

done_testing
