#!/bin/bash
# SPDX-License-Identifier: MIT
# A transfer's files are written straight into backing files of their
# own (<staging>/<id>/p/<hex offset>), so COMMIT renames them into place
# instead of copying them out of one payload file. With a real paraflowd
# and client: mid-transfer the staging area holds per-file backing files
# and no file of the payload's size; paraflowd is SIGKILLed, one held
# file's backing file is lost and the boot marker removed (a reboot),
# and the restart finds the chunk bad and has it sent again; the rerun
# completes identical, and every stored file is the inode its backing
# file was (renamed, not copied). A clean upload then writes (wchar of
# /proc/PID/io) about the payload once, not twice. A staging area in the
# older layout (one data file) keeps its session; its chunks are sent
# again.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

CS=65536

start_server

# --- The tree -----------------------------------------------------------
SRC=$T/tree
python3 - "$SRC" <<'EOF'
import os, random, sys
random.seed(21)
for i in range(120):
    d = os.path.join(sys.argv[1], "d%d" % (i % 6))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%03d.dat" % i), "wb") as f:
        f.write(b"pf-data " + os.urandom(random.randint(4096, 40000) - 8))
with open(os.path.join(sys.argv[1], "zz-big.bin"), "wb") as f:
    f.write(b"pf-data " + os.urandom(1536 * 1024 - 8))
open(os.path.join(sys.argv[1], "empty.txt"), "wb").close()
EOF
BIG=$((1536 * 1024))
BYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')


"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 2 --limit-rate 1M \
    "$SRC" >"$T/kill.out" 2>"$T/kill.err" &
CPID=$!
check "the first chunks arrive" wait_for 60 held_some 10
AREA=$(find "$STORAGE/.staging" -mindepth 1 -maxdepth 1 -type d \
    ! -name '.*' | head -1)
check "the staging area holds backing files" \
    test -n "$(find "$AREA/p" -type f 2>/dev/null)"
check "and no payload data file" test ! -e "$AREA/data"
check "no staged file larger than the largest file" \
    test -z "$(find "$AREA" -type f -size +"$BIG"c)"
kill -9 "$SERVER_PID" "$CPID" 2>/dev/null
wait "$SERVER_PID" "$CPID" 2>/dev/null

# Each backing file's inode by stored path, and one held file lost.
LOST=$(python3 - "$AREA" "$CS" "$T/inodes" <<'EOF'
import json, os, struct, sys
area, cs, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
files = [e for e in json.load(open(os.path.join(area, "manifest.json")))
         if not e.get("dir") and e["size"] > 0]
jr = open(os.path.join(area, "journal"), "rb").read()
held = {struct.unpack(">I", jr[i:i + 4])[0] for i in range(0, len(jr), 48)}
inodes, lost = {}, None
for e in sorted(files, key=lambda e: e["offset"]):
    p = os.path.join(area, "p", "%x" % e["offset"])
    if not os.path.exists(p):
        continue
    first, last = e["offset"] // cs, (e["offset"] + e["size"] - 1) // cs
    if lost is None and any(c in held for c in range(first, last + 1)):
        lost = p
        continue
    inodes[e["path"]] = os.stat(p).st_ino
json.dump(inodes, open(out, "w"))
if lost:
    os.unlink(lost)
    print(lost)
EOF
)
echo "# removed $LOST; $(python3 -c 'import json, sys
print(len(json.load(open(sys.argv[1]))))' "$T/inodes") backing files kept"
check "a held file's backing file was removed" test -n "$LOST"
rm -f "$STORAGE/.staging/.boot"
start_server --port "$PORT"
check "the restart finds the lost file's chunks bad" \
    grep -q 'journaled chunks did not survive' "$T/server.log"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$SRC"
check_eq "the rerun completes" 0 "$RC"
check "it resumed chunks the server kept" \
    test "$(json_get resumed_chunks <"$T/out")" -gt 0
SID=$(json_get session <"$T/out")
check "the stored tree equals the source (diff -r)" \
    diff -r "$SRC" "$STORAGE/$SID/tree"
check "the empty file arrived" test -f "$STORAGE/$SID/tree/empty.txt"
check "every stored file is its backing file, renamed (same inode)" \
    python3 - "$T/inodes" "$STORAGE/$SID" <<'EOF'
import json, os, sys
inodes = json.load(open(sys.argv[1]))
bad = [p for p, ino in inodes.items()
       if os.stat(os.path.join(sys.argv[2], p)).st_ino != ino]
print("# %d of %d files not renamed: %s" % (len(bad), len(inodes), bad[:3]))
sys.exit(1 if bad or not inodes else 0)
EOF
check "the staging area is gone" staging_empty

# --- A clean transfer writes its bytes once ------------------------------
cp -a "$SRC" "$T/again"
wchar() { sed -n 's/^wchar: //p' "/proc/$SERVER_PID/io"; }
w0=$(wchar)
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$T/again"
w1=$(wchar)
check_eq "a clean transfer completes" 0 "$RC"
check "it is stored (diff -r)" diff -r "$T/again" \
    "$STORAGE/$(json_get session <"$T/out")/again"
echo "# paraflowd wrote $((w1 - w0)) bytes for a payload of $BYTES"
check "paraflowd wrote less than 1.5 times the payload" \
    test $((w1 - w0)) -lt $((BYTES * 3 / 2))
check "COMMIT copied nothing" grep -q 'staged in .* (no copy)' \
    "$T/server.log"

# --- A transfer staged by an older paraflowd (one data file) -------------
cp -a "$SRC" "$T/old"
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 2 --limit-rate 1M \
    "$T/old" >"$T/old.out" 2>"$T/old.err" &
CPID=$!
check "older layout: the first chunks arrive" wait_for 60 held_some 10
kill -9 "$SERVER_PID" "$CPID" 2>/dev/null
wait "$SERVER_PID" "$CPID" 2>/dev/null
AREA=$(find "$STORAGE/.staging" -mindepth 1 -maxdepth 1 -type d \
    ! -name '.*' | head -1)
rm -rf "$AREA/p"
head -c $((BYTES)) /dev/zero >"$AREA/data"
start_server --port "$PORT"
check "older layout: the session is kept, its chunks dropped" \
    grep -q 'staged by an older version' "$T/server.log"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$T/old"
check_eq "older layout: the rerun completes" 0 "$RC"
check_eq "older layout: nothing was held" 0 \
    "$(json_get resumed_chunks <"$T/out")"
check "older layout: the tree is stored (diff -r)" diff -r "$T/old" \
    "$STORAGE/$(json_get session <"$T/out")/old"

stop_server
done_testing
