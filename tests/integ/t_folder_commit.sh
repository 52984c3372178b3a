#!/bin/bash
# SPDX-License-Identifier: MIT
# The last step of a transfer of many files (COMMIT), which several
# threads share: a tree of 2,000 small files with executables scattered
# through it (so each worker meets some) is stored byte for byte, every
# executable refused by its own first bytes and nothing else, every
# stored file with its own receipt; then paraflowd is SIGKILLed while
# another such tree is being cut into its files, and after a restart the
# rerun of the same command completes it, identical, with no temporary
# name left and the staging area gone.
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

# --- paraflowd killed while it cuts the payload into files ---------------
B=$T/b
tree "$B"
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K "$B" >"$T/b.out" \
    2>"$T/b.err" &
CPID=$!
# COMMIT has begun once a file has its temporary name; the data arrives
# in well under a second, so the check polls tightly.
cutting() {
	[ -n "$(find "$STORAGE" -mindepth 2 -maxdepth 4 -path '*/b/*' \
	    -name '.pf-part-*' -print -quit 2>/dev/null)" ]
}
caught=0
for ((i = 0; i < 6000; i++)); do
	if cutting; then
		caught=1
		break
	fi
	ours "$CPID" || break
	sleep 0.01
done
signal_ours KILL "$SERVER_PID" "$CPID"
wait "$SERVER_PID" "$CPID" 2>/dev/null
# The whole COMMIT can slip between two looks (a fast machine, or a slow
# one that paused this script): then the rerun is a new transfer, and
# only what holds either way is checked.
echo "# killed during COMMIT: $caught"
start_server --port "$PORT"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$B"
check_eq "the rerun after the restart completes (exit 11)" 11 "$RC"
SID=$(json_get session <"$T/out")
echo "# rerun: $(json_get resumed_chunks <"$T/out") of" \
    "$(json_get chunks <"$T/out") chunks held"
if [ "$caught" -eq 1 ]; then
	check "it resumed the chunks held before the kill" \
	    test "$(json_get resumed_chunks <"$T/out")" -gt 0
	check "one stored transfer for the tree" test "$(find "$STORAGE" \
	    -mindepth 2 -maxdepth 2 -name b | wc -l)" -eq 1
fi
check_eq "the same files refused" "$REFUSED" \
    "$(json_get files.refused <"$T/out")"
check "the tree equals the source minus them (diff -r)" \
    diff -r "$B.want" "$STORAGE/$SID/b"
check "no temporary name left after the rerun" \
    test -z "$(find "$STORAGE" -name '.pf-part-*')"
check "the staging area is gone" staging_empty
stop_server

done_testing
