#!/bin/bash
# SPDX-License-Identifier: MIT
# Transfers: "paraflow upload PATH..." sends a real tree (nested and empty
# folders, empty files, Unicode names, names that collide once sanitised
# or case-folded, a symlink pointing outside, a FIFO, executables in the
# middle) in one session to a real paraflowd. The refused files are
# listed with their reasons and the exit status says so (11), the others
# are stored byte for byte (diff -r) with their own receipts (paraflow
# digest); a client killed mid-transfer resumes, sending only what the
# server lacks; a file changed after it was sent is reported, and sent
# again by the next run. A hand-made OPEN with hostile paths (absolute,
# "..", backslash) gets a per-file error and writes nothing outside the
# storage directory.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"
command -v mkfifo >/dev/null 2>&1 || skip_all "mkfifo not found"

CS=65536

start_server

# --- The tree -----------------------------------------------------------
SRC=$T/src
mkdir -p "$SRC/photos/2024/summer" "$SRC/photos/empty dir" "$SRC/docs"
mkfile "$SRC/photos/2024/summer/beach.jpg" 300000
touch -d "2021-03-04 05:06:07 UTC" "$SRC/photos/2024/summer/beach.jpg"
mkfile "$SRC/photos/2024/summer/big.bin" 200000
mkfile "$SRC/photos/a.txt" 1000
: >"$SRC/photos/empty.txt"
printf 'héllo\n' >"$SRC/photos/2024/naïve café ☕.txt"
printf 'upper\n' >"$SRC/docs/README.TXT"
printf 'lower\n' >"$SRC/docs/Readme.txt"	# same name, case-folded
printf 'tab\n' >"$SRC/docs/a"$'\t'"b.txt"	# sanitised to a_b.txt
printf 'underscore\n' >"$SRC/docs/a_b.txt"
printf '#!/bin/sh\necho hi\n' >"$SRC/photos/2024/install.sh"
printf '#!/bin/sh\necho hi\n' >"$SRC/photos/2024/notes.txt"
{ printf '\177ELF\002\001\001'; head -c 5000 /dev/urandom; } \
    >"$SRC/photos/2024/summer/mid.dat"
for i in $(seq -w 1 40); do
	mkfile "$SRC/docs/small-$i.txt" $((RANDOM % 5000 + 1))
done
ln -s /etc/passwd "$SRC/photos/passwd-link"
mkfifo "$SRC/photos/fifo"

# What must arrive: the tree minus what is refused or skipped.
WANT=$T/want
cp -a "$SRC" "$WANT"
rm -f "$WANT/photos/2024/install.sh" "$WANT/photos/2024/notes.txt" \
    "$WANT/photos/2024/summer/mid.dat" "$WANT/photos/passwd-link" \
    "$WANT/photos/fifo" "$WANT/docs/a"$'\t'"b.txt" \
    "$WANT/docs/Readme.txt"

# --- Dry run ------------------------------------------------------------
run "$PARAFLOW" upload --port "$PORT" --quiet "$SRC/photos" "$SRC/docs" \
    --dry-run --exclude 'small-3*'
check_eq "dry run exits 0" 0 "$RC"
check "dry run lists a nested file" grep -q 'photos/2024/summer/beach.jpg' \
    "$T/out"
check "dry run lists the empty folder" grep -q 'dir .*photos/empty dir' \
    "$T/out"
check "--exclude leaves out what it matches" \
    bash -c "! grep -q 'small-3' '$T/out'"
check "dry run warns about the FIFO" grep -q 'fifo: a FIFO' "$T/err"
check "dry run skips the symlink" grep -q 'passwd-link: a symbolic link' \
    "$T/err"
check "dry run stored nothing" test "$(stored_count)" -eq 0
# An --exclude ending in "/" leaves out folders only.
run "$PARAFLOW" upload --port "$PORT" --quiet "$SRC/photos" --dry-run \
    --exclude 'summer/' --exclude 'a.txt/'
check "--exclude 'summer/' leaves out the folder" \
    bash -c "! grep -q 'summer' '$T/out'"
check "--exclude 'a.txt/' keeps the file a.txt" grep -q 'photos/a.txt' \
    "$T/out"
# Two paths sent under one name: refused before anything is sent.
mkdir -p "$T/other/docs"
echo x >"$T/other/docs/x.txt"
run "$PARAFLOW" upload --port "$PORT" --quiet "$SRC/docs" "$T/other/docs"
check_eq "two roots named docs: exit 2" 2 "$RC"
check "two roots named docs: says which name" \
    grep -q 'both be sent as "docs"' "$T/err"
run "$PARAFLOW" upload --port "$PORT" --quiet "$SRC/docs" "$SRC/docs"
check_eq "the same root twice: exit 2" 2 "$RC"
check "neither stored anything" test "$(stored_count)" -eq 0

# --- The transfer -------------------------------------------------------
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json \
    "$SRC/photos" "$SRC/docs"
check_eq "some files refused: exit 11" 11 "$RC"
check "the result is one JSON object" valid_json <"$T/out"
SID=$(json_get session <"$T/out")
check_eq "status partial" partial "$(json_get status <"$T/out")"
check_eq "chunk_size, as for one file" 65536 \
    "$(json_get chunk_size <"$T/out")"
check "streams, as for one file" test "$(json_get streams.max <"$T/out")" -ge 1
check_eq "one session for the whole tree" 1 "$(stored_count)"
check_eq "--json lists what was skipped, with why" \
    "fifo: a FIFO; passwd-link: a symbolic link" "$(python3 -c '
import json, sys
print("; ".join("%s: %s" % (s["path"].rsplit("/", 1)[1],
    s["reason"].split(" (")[0])
    for s in sorted(json.load(sys.stdin)["skipped_entries"],
                    key=lambda s: s["path"])))' <"$T/out")"
entry() {	# entry PATH KEY [RESULT]: a key of the entry for PATH
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
for e in j["entries"]:
    if e["path"] == sys.argv[2]:
        print(e.get(sys.argv[3]) or "")' "${3:-$T/out}" "$1" "$2"
}
check_eq "executable by extension refused" forbidden_type \
    "$(entry photos/2024/install.sh state)"
check "its reason names the rule" grep -q 'extension .sh' \
    <<<"$(entry photos/2024/install.sh reason)"
check_eq "shebang script refused by content" forbidden_type \
    "$(entry photos/2024/notes.txt state)"
check_eq "ELF in the middle refused by content" forbidden_type \
    "$(entry photos/2024/summer/mid.dat state)"
check_eq "case-insensitive duplicate refused" bad_name \
    "$(entry docs/Readme.txt state)"
check_eq "name colliding after sanitising refused" bad_name \
    "$(entry docs/a_b.txt state)"
check "collision reason names the other file" grep -q 'same stored name' \
    <<<"$(entry docs/a_b.txt reason)"
check_eq "the other of the pair stored" stored \
    "$(entry docs/a$'\t'b.txt state)"
check_eq "its stored name is sanitised" docs/a_b.txt \
    "$(entry docs/a$'\t'b.txt stored_as)"
check_eq "the file after the ELF stored" stored \
    "$(entry photos/a.txt state)"
check_eq "refused files counted" 5 \
    "$(json_get files.refused <"$T/out")"

# The stored tree equals the source minus what was refused (the tab name
# arrives under its sanitised name, which diff -r must find).
TOP=$STORAGE/$SID
printf 'tab\n' >"$WANT/docs/a_b.txt"
check "stored tree equals the source (diff -r)" \
    diff -r "$WANT/photos" "$TOP/photos"
check "stored docs equal the source (diff -r)" \
    diff -r "$WANT/docs" "$TOP/docs"
check "the empty folder arrived" test -d "$TOP/photos/empty dir"
check "the empty file arrived" test -f "$TOP/photos/empty.txt"
check "no refused file on disk" test ! -e "$TOP/photos/2024/install.sh"
check "no temporary name left" test -z "$(find "$TOP" -name '.pf-part-*')"
check "no file stored executable" \
    test -z "$(find "$TOP" -type f -perm /111)"
R=$(entry photos/2024/summer/beach.jpg digest)
check_eq "a file's receipt is paraflow digest's" \
    "$("$PARAFLOW" digest -c 64K "$SRC/photos/2024/summer/beach.jpg" |
    cut -d' ' -f1)" "$R"
check "the staging area is gone" staging_empty
cp "$T/out" "$T/out.keep"

# --- The gateway: the file list, one file, the whole tree as tar -------
GW=https://127.0.0.1:$HTTP_PORT/api/v1/sessions/$SID
gw() {	# gw PATH [CURL ARGS...]: body in $T/b, status echoed
	curl -sk -u paraflow:secret123 -o "$T/b" -w '%{http_code}' "${@:2}" \
	    "$GW$1"
}
check_eq "GET /files answers 200" 200 "$(gw /files)"
check_eq "it lists every entry" "$(python3 -c '
import json, sys
print(len(json.load(open(sys.argv[1]))["entries"]))' "$T/out.keep")" \
    "$(python3 -c 'import json, sys
print(len(json.load(open(sys.argv[1]))["files"]))' "$T/b")"
check_eq "a refused file's state over HTTP" forbidden_type "$(python3 -c '
import json, sys
for f in json.load(open(sys.argv[1]))["files"]:
    if f["client"] == "photos/2024/install.sh":
        print(f["state"])' "$T/b")"
check_eq "GET /file of a transfer: 409" 409 "$(gw /file)"
check "its code is is_transfer" grep -q is_transfer "$T/b"
check_eq "GET /file?path= answers 200" 200 \
    "$(gw '/file?path=photos/2024/summer/beach.jpg')"
check "and it is that file" cmp "$T/b" "$SRC/photos/2024/summer/beach.jpg"
gw '/file?path=photos/2024/summer/beach.jpg' -D "$T/file.h" >/dev/null
check_eq "its Last-Modified is the file's own mtime" \
    "$(TZ=GMT date -d "@$(stat -c %Y "$SRC/photos/2024/summer/beach.jpg")" \
    '+%a, %d %b %Y %H:%M:%S GMT')" \
    "$(sed -n 's/^last-modified: *//Ip' "$T/file.h" | tr -d '\r')"
check_eq "a refused file cannot be fetched" 404 \
    "$(gw '/file?path=photos/2024/install.sh')"
check_eq "a path outside the list cannot be fetched" 404 \
    "$(gw '/file?path=../../etc/passwd')"
check_eq "a listed path then a NUL byte is no path: 400" 400 \
    "$(gw '/file?path=photos/2024/summer/beach.jpg%00x')"
check_eq "GET /tar answers 200" 200 "$(gw /tar -D "$T/tar.h")"
check "its type is application/x-tar" grep -qi \
    '^content-type: application/x-tar' "$T/tar.h"
mkdir -p "$T/untar"
check "the tar unpacks" tar -x -C "$T/untar" -f "$T/b"
check "the tar equals the source (diff -r)" \
    diff -r "$WANT/photos" "$T/untar/photos"
check "the tar's docs equal the source (diff -r)" \
    diff -r "$WANT/docs" "$T/untar/docs"
check_eq "a directory in the tar has the transfer's end as mtime" \
    "$(gw "" >/dev/null; date -d "$(json_get finished_at <"$T/b")" +%s)" \
    "$(stat -c %Y "$T/untar/photos/2024")"

# paraflow fetch of a transfer: every stored file, each receipt checked.
# The server reads the transfer's list for the listing and once more for
# all the files (kept parsed), not once a file: strace on paraflowd.
strace -f -qq -e trace=open,openat,openat2 -o "$T/srv.strace" -p "$SERVER_PID" &
STRACE_PID=$!
traced() { grep -q '^TracerPid:[[:space:]]*[1-9]' "/proc/$SERVER_PID/status"; }
check "strace is attached to paraflowd" wait_for 10 traced
run "$PARAFLOW" fetch "$SID" -o "$T/fetched" --quiet --pin "$(server_pin)" \
    --http "https://127.0.0.1:$HTTP_PORT"
check_eq "fetch of the transfer exits 0" 0 "$RC"
kill "$STRACE_PID"
wait "$STRACE_PID" 2>/dev/null
check "the fetch got more than 20 files" \
    test "$(find "$T/fetched" -type f | wc -l)" -gt 20
check "paraflowd read the list at most twice for them" \
    test "$(grep -c 'paraflow-files.json' "$T/srv.strace")" -le 2
check "fetch reproduces the tree (diff -r)" \
    diff -r "$WANT/photos" "$T/fetched/photos"
check "fetch reproduces the docs (diff -r)" \
    diff -r "$WANT/docs" "$T/fetched/docs"
check "fetch left no .part" test -z "$(find "$T/fetched" -name '*.part')"
# The files take their names in batches: a syncfs before the renames and
# one after, not an fsync of each file and of its directory.
ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 strace -f -qq \
    -e trace=fsync,fdatasync,syncfs,connect -o "$T/fetch.strace" \
    "$PARAFLOW" fetch "$SID" -o "$T/fetched2" --quiet \
    --pin "$(server_pin)" --http "https://127.0.0.1:$HTTP_PORT" \
    >/dev/null 2>&1
check "the traced fetch reproduces the tree (diff -r)" \
    diff -r "$WANT/photos" "$T/fetched2/photos"
# Four files at once by default, each thread over its own connection;
# --threads 1 fetches them one after another, over one.
connects() { grep -c "connect(.*htons($HTTP_PORT)" "$1"; }
check "the fetch used 4 connections at least" \
    test "$(connects "$T/fetch.strace")" -ge 4
ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 strace -f -qq \
    -e trace=connect -o "$T/fetch1.strace" "$PARAFLOW" fetch "$SID" \
    -o "$T/fetched1" --quiet --threads 1 --pin "$(server_pin)" \
    --http "https://127.0.0.1:$HTTP_PORT" >/dev/null 2>&1
check "fetch --threads 1 reproduces the tree (diff -r)" \
    diff -r "$WANT/photos" "$T/fetched1/photos"
check "fetch --threads 1 used fewer than 4 connections" \
    test "$(connects "$T/fetch1.strace")" -lt 4
NF=$(find "$T/fetched2" -type f | wc -l)
case $(stat -f -c %T "$T") in
ext2/ext3|ext4|xfs|btrfs|f2fs|tmpfs)
	check_eq "no fsync of each file or directory" 0 \
	    "$(grep -c 'fsync(' "$T/fetch.strace")"
	check "at most 2 syncfs a batch of 64, and 1 at the end, $NF files" \
	    test "$(grep -c 'syncfs(' "$T/fetch.strace")" -le \
	    $((2 * ((NF + 63) / 64) + 1)) ;;
*)	# FUSE, NFS, overlay...: an fsync of each file and directory.
	echo "# $(stat -f -c %T "$T"): fetch syncs file by file here" ;;
esac

# Links already in the directory fetched into are refused, never followed:
# one in place of a directory of the tree, one deeper in it.
for link in photos photos/2024/summer; do
	rm -rf "$T/trap" "$T/outside"
	mkdir -p "$T/outside" "$T/trap/$(dirname "$link")"
	ln -s "$T/outside" "$T/trap/$link"
	run "$PARAFLOW" fetch "$SID" -o "$T/trap" --quiet --json \
	    --pin "$(server_pin)" --http "https://127.0.0.1:$HTTP_PORT"
	check_eq "fetch through a link at $link: exit 7 (local I/O)" 7 "$RC"
	check "fetch through a link at $link: says why" \
	    grep -q "symbolic link" <<<"$OUT"
	check "fetch through a link at $link: nothing written through it" \
	    test -z "$(ls -A "$T/outside")"
	check "fetch through a link at $link: the link is left as it was" \
	    test -L "$T/trap/$link"
done

# A directory where the transfer has a file: left alone, and said so.
mkdir -p "$T/clash/photos/a.txt"
run "$PARAFLOW" fetch "$SID" -o "$T/clash" --quiet --pin "$(server_pin)" \
    --http "https://127.0.0.1:$HTTP_PORT"
check_eq "a directory in a file's place: exit 7" 7 "$RC"
check "a directory in a file's place: says so" \
    grep -q "photos/a.txt is a directory where the transfer has a file" \
    "$T/err"

# A rerun into the same directory fetches only what is not there intact:
# a file damaged in place with its size and mtime kept (the receipt
# tells), and a file removed.
NFETCHED=$(find "$T/fetched" -type f | wc -l)
B=$T/fetched/photos/2024/summer/beach.jpg
cp -p "$B" "$T/beach.was"
printf 'XXXX' | dd of="$B" bs=1 seek=1000 conv=notrunc status=none
touch -r "$T/beach.was" "$B"
rm "$T/fetched/photos/a.txt"
run "$PARAFLOW" fetch "$SID" -o "$T/fetched" --json --pin "$(server_pin)" \
    --http "https://127.0.0.1:$HTTP_PORT"
check_eq "a rerun of the fetch exits 0" 0 "$RC"
check_eq "it found all files but two intact" $((NFETCHED - 2)) \
    "$(json_get unchanged <"$T/out")"
check_eq "it fetched the bytes of those two only" \
    $(($(stat -c %s "$T/beach.was") + $(stat -c %s "$SRC/photos/a.txt"))) \
    "$(json_get bytes <"$T/out")"
check "the rerun mends the tree (diff -r)" \
    diff -r "$WANT/photos" "$T/fetched/photos"
run "$PARAFLOW" fetch "$SID" -o "$T/fetched" --pin "$(server_pin)" \
    --http "https://127.0.0.1:$HTTP_PORT"
check "run again, it says every file was there intact" \
    grep -q "^$NFETCHED of them were there intact already" <<<"$OUT"

# --- Kill mid-transfer, rerun -------------------------------------------
MANY=$T/many
mkdir -p "$MANY"
python3 - "$MANY" <<'EOF'
import os, random, sys
random.seed(7)
for i in range(300):
    d = os.path.join(sys.argv[1], "d%02d" % (i % 12))
    os.makedirs(d, exist_ok=True)
    n = random.randint(4096, 65536)
    with open(os.path.join(d, "f%04d.dat" % i), "wb") as f:
        f.write(b"pf-data " + os.urandom(n - 8))
EOF
before=$(stored_count)
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 2 --limit-rate 1M \
    "$MANY" >"$T/kill.out" 2>"$T/kill.err" &
CPID=$!
# Killed once the server holds some chunks durably (its journal grew).
check "the first chunks arrive" wait_for 60 held_some 1
kill -9 "$CPID" 2>/dev/null
wait "$CPID" 2>/dev/null
check_eq "nothing stored yet" "$before" "$(stored_count)"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$MANY"
check_eq "the rerun completes" 0 "$RC"
RESUMED=$(json_get resumed_chunks <"$T/out")
SENT=$(json_get bytes_sent <"$T/out")
TOTAL=$(json_get bytes <"$T/out")
echo "# rerun: $RESUMED of $(json_get chunks <"$T/out") chunks held," \
    "$SENT of $TOTAL bytes sent"
check "the rerun resumed chunks the server held" test "$RESUMED" -gt 0
check "the rerun sent less than the whole" test "$SENT" -lt "$TOTAL"
SID2=$(json_get session <"$T/out")
check "resumed tree equals the source (diff -r)" \
    diff -r "$MANY" "$STORAGE/$SID2/many"

# --- paraflowd killed mid-transfer: the transfer survives the restart ----
cp -a "$MANY" "$T/many2"
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 2 --limit-rate 1M \
    "$T/many2" >"$T/kill2.out" 2>"$T/kill2.err" &
CPID=$!
check "the first chunks arrive again" wait_for 60 held_some 1
kill -9 "$SERVER_PID" "$CPID" 2>/dev/null
wait "$SERVER_PID" "$CPID" 2>/dev/null
start_server --port "$PORT"
check "the restarted server recovers the transfer" \
    grep -q '1 sessions to resume' "$T/server.log"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$T/many2"
check_eq "the rerun after the restart completes" 0 "$RC"
check "it resumed chunks the server kept across the restart" \
    test "$(json_get resumed_chunks <"$T/out")" -gt 0
check "that tree equals the source (diff -r)" diff -r "$T/many2" \
    "$STORAGE/$(json_get session <"$T/out")/many2"

# --- A file changed after it was sent -----------------------------------
CH=$T/changing
mkdir -p "$CH"
mkfile "$CH/aaa-first.bin" 3000
mkfile "$CH/zzz-rest.bin" $((3 * 1024 * 1024))
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 1 --limit-rate 512K \
    --json "$CH" >"$T/ch.out" 2>"$T/ch.err" &
CPID=$!
check "the changing transfer starts" wait_for 60 held_some 1
printf 'changed' >>"$CH/aaa-first.bin"
wait "$CPID"
RC=$?
check_eq "a changed file: exit 11" 11 "$RC"
check_eq "it is reported as changed" changed \
    "$(entry changing/aaa-first.bin state "$T/ch.out")"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$CH"
check_eq "the next run stores it as it is now" 0 "$RC"
check "and it equals the local file" cmp "$CH/aaa-first.bin" \
    "$STORAGE/$(json_get session <"$T/out")/changing/aaa-first.bin"

# --- Rewritten after it was sent, size and mtime put back ---------------
# The report trusts a receipt summed while sending only if the file's
# ctime, which nobody can set back, has not moved either.
RW=$T/rewritten
mkdir -p "$RW"
mkfile "$RW/aaa-first.bin" 3000
mkfile "$RW/zzz-rest.bin" $((3 * 1024 * 1024))
MT=$(stat -c %y "$RW/aaa-first.bin")
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 1 --limit-rate 512K \
    --json "$RW" >"$T/rw.out" 2>"$T/rw.err" &
CPID=$!
check "the rewritten transfer starts" wait_for 60 held_some 1
head -c 3000 /dev/zero >"$RW/aaa-first.bin"
touch -d "$MT" "$RW/aaa-first.bin"
check_eq "same size and mtime as listed" "3000 $MT" \
    "$(stat -c '%s %y' "$RW/aaa-first.bin")"
wait "$CPID"
RC=$?
check_eq "a rewritten file: exit 11" 11 "$RC"
check_eq "it is reported as changed" changed \
    "$(entry rewritten/aaa-first.bin state "$T/rw.out")"

# --- Each file read once -------------------------------------------------
# The receipts the report checks are summed from the reads that sent the
# files: no file is opened again after COMMIT. (The first file is read
# twice: OPEN carries the payload's first bytes.)
ONCE=$T/once
mkdir -p "$ONCE/sub"
mkfile "$ONCE/aaa-head.bin" 1000
for i in $(seq 1 40); do
	mkfile "$ONCE/sub/f$i.txt" $((i * 30))	# 24 KiB: one chunk
done
# LeakSanitizer stops the threads with ptrace, which strace holds.
ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 \
    strace -f -qq -e trace=open,openat,openat2 -o "$T/once.strace" \
    "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$ONCE" \
    >"$T/out" 2>"$T/err"
check_eq "the traced transfer completes" 0 $?
check_eq "all 41 files stored" 41 "$(json_get files.stored <"$T/out")"
# (Beneath the root held open: "sub/f1.txt" from the root's descriptor.)
check_eq "each file opened once by the client" "40 1" "$(grep -o \
    'sub/f[0-9]*\.txt"' "$T/once.strace" | sort | uniq -c |
    awk '{ n++; if ($1 > max) max = $1 } END { print n, max }')"
check "that tree equals the source (diff -r)" diff -r "$ONCE" \
    "$STORAGE/$(json_get session <"$T/out")/once"

# --- DELETE of a transfer removes its tree ------------------------------
GW=https://127.0.0.1:$HTTP_PORT/api/v1/sessions/$SID	# after the restart
check_eq "DELETE of a transfer answers 200" 200 "$(gw '' -X DELETE)"
check "its whole tree is gone" test ! -e "$STORAGE/$SID"

# --- Hostile paths from a hand-made client ------------------------------
stop_server
start_server --no-tls
pywire "$PORT" >"$T/hostile.out" 2>&1 <<'EOF'
import base64, json, sys
import pfwire as w
port = int(sys.argv[1])
names = ["/abs.txt", "../up.txt", "a/../../b.txt", "x\\y.txt", "ok.txt",
         "f", "f/g.txt", "./dot.txt", "d//e.txt", "deep/" * 250 + "x.txt",
         "Imp/x.txt", "imp/y.txt", "\\" + "\u00e9" * 40 + "/x.txt"]
data = b"".join(b"pf-data %02d\n" % i for i in range(len(names)))
files = [{"path": n, "size": 11, "mode": 0o644, "mtime": 1700000000}
         for n in names]
c = w.connect(port)
w.hello(c)
key = w.scram_login(c, "paraflow", "secret123")
w.send_json(c, w.OPEN, {"name": "hostile", "size": len(data),
                        "chunk_size": 65536, "files": files,
                        "head": base64.b64encode(data[:512]).decode()})
opened = w.expect(c, w.OPENED)
done = w.upload(c, port, key, opened, data)
for f in done["files"]:
    print(f["client"], f["state"])
# The same again, its list asked for short: what the client lacks alone.
w.send_json(c, w.OPEN, {"name": "hostile", "size": len(data),
                        "chunk_size": 65536, "files": files,
                        "head": base64.b64encode(data[:512]).decode()})
short = w.upload(c, port, key, w.expect(c, w.OPENED), data,
                 commit={"files": "short"})["files"]
keep = ("path", "reason", "state", "digest")
print("short keys", sorted({k for f in short for k in f}))
print("short values",
      [{k: f[k] for k in keep if k == "path" or f.get(k) is not None}
       for f in done["files"]] == short)
EOF
cat "$T/hostile.out" | sed 's/^/# /'
for n in /abs.txt ../up.txt a/../../b.txt 'x\y.txt' f/g.txt ./dot.txt \
    d//e.txt "\\$(printf '\xc3\xa9%.0s' $(seq 40))/x.txt"; do
	check "hostile path $n refused" grep -qxF "$n bad_name" "$T/hostile.out"
done
check "a short list: path, state, reason and digest alone" grep -qxF \
    "short keys ['digest', 'path', 'reason', 'state']" "$T/hostile.out"
check "a short list: the values of the whole one" grep -qx \
    "short values True" "$T/hostile.out"
check "over-long path refused" grep -q '^deep/deep/.*x.txt bad_name$' \
    "$T/hostile.out"
check "a good file beside them stored" grep -qx 'ok.txt stored' \
    "$T/hostile.out"
check "no directory entries: the first folded path names the directory" \
    grep -qx 'Imp/x.txt stored' "$T/hostile.out"
check "no directory entries: a twin directory's file refused" \
    grep -qx 'imp/y.txt bad_name' "$T/hostile.out"
check "nothing written outside the transfer" \
    test ! -e "$STORAGE/up.txt" -a ! -e "$T/up.txt" -a ! -e "$T/b.txt" \
    -a ! -e /abs.txt

# --- Names that fold alike: one stored, what lies below the other not.
mkdir -p "$T/fold/B" "$T/fold/C" "$T/fold/c" "$T/fold/d"
echo 1 >"$T/fold/B/g"
echo 2 >"$T/fold/b"
echo 3 >"$T/fold/C/x"
echo 4 >"$T/fold/c/y"
echo 5 >"$T/fold/D"
echo 6 >"$T/fold/d/z"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/fold"
check_eq "names that fold alike: exit 11" 11 "$RC"
check_eq "a file twin of a directory refused" bad_name \
    "$(entry fold/b state)"
check_eq "the directory's own file stored all the same" stored \
    "$(entry fold/B/g state)"
check_eq "a directory twin of a directory refused" bad_name \
    "$(entry fold/c state)"
check_eq "a file below the refused twin refused too" bad_name \
    "$(entry fold/c/y state)"
check_eq "the kept directory's file stored" stored \
    "$(entry fold/C/x state)"
check_eq "a file below a directory twin of a file refused" bad_name \
    "$(entry fold/d/z state)"
SID=$(json_get session <"$T/out")
check "only the kept names are stored" test "$(cd "$STORAGE/$SID/fold" &&
    find . | sort | tr '\n' ' ')" = ". ./B ./B/g ./C ./C/x ./D "

# --- Names that sanitise to nothing: refused, and said so.
mkdir -p "$T/empty-names"
echo x >"$T/empty-names/..."
echo y >"$T/empty-names/ok.txt"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/empty-names"
check_eq "a name that sanitises to nothing refused" bad_name \
    "$(entry empty-names/... state)"
check_eq "its reason is its name, not its path's length" \
    "file name cannot be stored" "$(entry empty-names/... reason)"
check_eq "one of two files stored: exit 11" 11 "$RC"

# --- Every file refused: nothing stored, exit 4 as for one file.
mkdir -p "$T/all-refused/sub"
printf '#!/bin/sh\necho hi\n' >"$T/all-refused/run.sh"
printf '#!/bin/sh\necho hi\n' >"$T/all-refused/sub/notes.txt"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/all-refused"
check_eq "every file refused: exit 4" 4 "$RC"
check_eq "every file refused: status refused" refused \
    "$(json_get status <"$T/out")"
run "$PARAFLOW" upload --no-tls --port "$PORT" --quiet "$T/all-refused"
check_eq "every file refused, without --json: exit 4" 4 "$RC"

# --- Local errors of upload PATH... with --json: one JSON document.
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/no-such-dir"
check_eq "a missing PATH: exit 7" 7 "$RC"
check_eq "a missing PATH, --json: error.code io" io \
    "$(json_get error.code <"$T/out")"
mkdir -p "$T/exall"
echo x >"$T/exall/a"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json --exclude exall \
    "$T/exall"
check_eq "nothing left to send: exit 2 (usage)" 2 "$RC"
check "nothing left to send, --json: says so" \
    grep -q '"nothing to send"' "$T/out"
# A name that is not UTF-8 cannot be in a manifest: skipped, the rest go.
mkdir -p "$T/nonutf"
echo good >"$T/nonutf/good.txt"
echo bad >"$T/nonutf/$(printf 'bad\xff.txt')"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/nonutf"
check_eq "a name that is not UTF-8 is skipped, the rest sent: exit 0" 0 \
    "$RC"
check_eq "a name that is not UTF-8: 1 skipped" 1 \
    "$(json_get skipped <"$T/out")"
check "the UTF-8 file beside it stored" \
    test -f "$STORAGE/$(json_get session <"$T/out")/nonutf/good.txt"
run "$PARAFLOW" upload --no-tls --port "$PORT" --dry-run "$T/nonutf"
check "the warning names it, escaped" \
    grep -qF 'bad\xff.txt: a name that is not valid UTF-8' "$T/err"

# round_trip DIR WHAT: uploads DIR, fetches the transfer back into
# DIR-back and checks the copy (diff -r).
round_trip() {
	run "$PARAFLOW" upload --no-tls --port "$PORT" --quiet --json "$1"
	check_eq "$2: the upload exits 0" 0 "$RC"
	SID=$(json_get session <"$T/out")
	run "$PARAFLOW" fetch "$SID" -o "$1-back" --quiet \
	    --pin "$(server_pin)" --http "https://127.0.0.1:$HTTP_PORT"
	check_eq "$2: the fetch exits 0" 0 "$RC"
	check "$2: the fetch reproduces the tree (diff -r)" \
	    diff -r "$1" "$1-back/$(basename "$1")"
}

# --- A stored name of 251-255 bytes: its .part would pass NAME_MAX.
mkdir -p "$T/longn"
echo a >"$T/longn/a.txt"
echo b >"$T/longn/$(printf 'N%.0s' $(seq 255))"
echo c >"$T/longn/z.txt"
round_trip "$T/longn" "a 255-byte name"

# --- Names made safe are stored all the same, and the summary says so.
mkdir -p "$T/dots"
echo rc >"$T/dots/.bashrc"
echo plain >"$T/dots/plain.txt"
run "$PARAFLOW" upload --no-tls --port "$PORT" "$T/dots"
check_eq "a dot file: exit 0" 0 "$RC"
check "a dot file: the summary counts it" \
    grep -q '^1 stored under a name made safe' "$T/out"

# --- A file and its namesake with .part: fetch's own partial file is
# hidden (".x.part"), which no stored name can be, so both come back.
mkdir -p "$T/pp/sub"
echo main >"$T/pp/f.txt"
echo other >"$T/pp/f.txt.part"
head -c 3000000 /dev/urandom >"$T/pp/sub/g.bin"
head -c 100 /dev/urandom >"$T/pp/sub/g.bin.part"
round_trip "$T/pp" "x and x.part"
check "fetch of x and x.part left no partial file" \
    test -z "$(find "$T/pp-back" -name '.*.part')"

# --- A file or folder the user cannot read is skipped at the scan with
# a warning, as a FIFO is, and the rest is stored; a file gone after the
# scan fails the transfer with its name. Run as nobody when root (who
# reads everything), from a copy of the client nobody can run.
U=$(mktemp -d /tmp/pf-unread.XXXXXX)
chmod 755 "$U"
mkdir -p "$U/ur/locked" "$U/state"
echo ok >"$U/ur/a.txt"
echo secret >"$U/ur/z.txt"
echo in >"$U/ur/locked/f"
chmod 000 "$U/ur/z.txt" "$U/ur/locked"
cp "$PARAFLOW" "$U/paraflow"
as_user=()
if [ "$(id -u)" = 0 ]; then
	chown 65534:65534 "$U/state"
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
PARAFLOW_STATE_DIR=$U/state run "${as_user[@]}" "$U/paraflow" upload \
    --no-tls --port "$PORT" --dry-run "$U/ur"
check "unreadable: the dry run warns of the file" \
    grep -qF 'z.txt: a file that cannot be read' "$T/err"
check "unreadable: and of the folder" \
    grep -qF 'locked: a folder that cannot be listed' "$T/err"
PARAFLOW_STATE_DIR=$U/state run "${as_user[@]}" "$U/paraflow" upload \
    --no-tls --port "$PORT" --json "$U/ur"
check_eq "unreadable: the upload exits 0" 0 "$RC"
check_eq "unreadable: two skipped" 2 "$(json_get skipped <"$T/out")"
check "unreadable: the readable file stored" \
    test -f "$STORAGE/$(json_get session <"$T/out")/ur/a.txt"
mkdir -p "$T/gone"
mkfile "$T/gone/a.bin" $((2 * 1024 * 1024))
mkfile "$T/gone/z.bin" 3000
"$PARAFLOW" upload --no-tls --port "$PORT" --quiet -c 64K -t 1 \
    --limit-rate 256K --json "$T/gone" >"$T/gone.out" 2>"$T/gone.err" &
CPID=$!
check "gone: the first chunks arrive" wait_for 60 held_some 1
rm "$T/gone/z.bin"
rc=0
wait "$CPID" || rc=$?
check_eq "gone: the transfer fails (exit 7)" 7 "$rc"
check "gone: its error names the file" \
    grep -qF "cannot read $T/gone/z.bin: No such file" "$T/gone.out"
chmod -R u+rwx "$U/ur"
rm -rf "$U"

# --- Depth: a named root counts as the first of the 64 levels the
# server takes, so the 65th is skipped by the client, not refused later.
D=$T/deep
p=$D
for i in $(seq 2 63); do p=$p/d$i; done
mkdir -p "$p/d64"
echo 64 >"$p/f64"
echo 65 >"$p/d64/f65"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/deep"
check_eq "depth: 64 levels upload, exit 0" 0 "$RC"
check_eq "depth: the 65th level skipped" 1 "$(json_get skipped <"$T/out")"
check "depth: the file at level 64 stored" \
    test -f "$STORAGE/$(json_get session <"$T/out")/${p#"$T"/}/f64"

# --- More entries than one transfer lists (100,000): the scan stops there,
# exit 4. Links that each lead twice to the next folder make 2^17 paths.
G=$T/dag
mkdir -p "$G/d17"
echo leaf >"$G/d17/f"
for i in $(seq 0 16); do
	mkdir -p "$G/d$i"
	ln -s "../d$((i + 1))" "$G/d$i/a"
	ln -s "../d$((i + 1))" "$G/d$i/b"
done
run "$PARAFLOW" upload --no-tls --port "$PORT" --dry-run --follow-symlinks \
    "$G/d0"
check_eq "over 100,000 entries: exit 4" 4 "$RC"
check "over 100,000 entries: says so" \
    grep -qF 'more than 100000 entries' "$T/err"

# --- --follow-symlinks: links followed, a loop cut where it closes.
mkdir -p "$T/fl/d"
echo in >"$T/fl/d/f"
echo out >"$T/fl-outside"
ln -s .. "$T/fl/d/loop"
ln -s d "$T/fl/dlink"
ln -s "$T/fl-outside" "$T/fl/out"
ln -s nowhere "$T/fl/dangling"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json --follow-symlinks \
    "$T/fl"
check_eq "--follow-symlinks with loops: exit 0" 0 "$RC"
SID=$(json_get session <"$T/out")
check "--follow-symlinks: a linked file and a linked directory stored" \
    test -f "$STORAGE/$SID/fl/out" -a -f "$STORAGE/$SID/fl/dlink/f"
check_eq "--follow-symlinks: 3 files, each walked once" 3 \
    "$(json_get files.total <"$T/out")"
check "--follow-symlinks: the loops are not stored" \
    test ! -e "$STORAGE/$SID/fl/d/loop" -a ! -e "$STORAGE/$SID/fl/dlink/loop"
check_eq "--follow-symlinks: 2 loops and the dangling link skipped" 3 \
    "$(json_get skipped <"$T/out")"
run "$PARAFLOW" upload --no-tls --port "$PORT" --dry-run --follow-symlinks \
    "$T/fl"
check "--follow-symlinks: each loop skipped with its reason" \
    test "$(grep -c 'symbolic link loop' "$T/err")" -eq 2
check "--follow-symlinks: the dangling link named as such" \
    grep -q 'dangling: a dangling symbolic link' "$T/err"

# --- On a terminal the bar counts the files done beside the bytes.
if command -v script >/dev/null 2>&1; then
	mkdir -p "$T/bar/sub"
	for i in 1 2 3 4 5 6; do
		mkfile "$T/bar/sub/f$i" $((i * 30000))
	done
	: >"$T/bar/empty"
	chmod 600 "$T/bar/sub/f1"
	touch -d '2001-02-03 04:05:06' "$T/bar/sub/f2"
	script -qec "$PARAFLOW upload --no-tls --port $PORT --chunk-size 64K \
	    --no-resume $T/bar" /dev/null >"$T/tty" 2>&1 </dev/null
	check "on a terminal: the last bar line says 7/7 files" \
	    grep -aq ' 7/7 files ' "$T/tty"
	# Fetching it back: one bar for the transfer, not one a file.
	SID=$(basename "$(dirname "$(find "$STORAGE" -mindepth 2 \
	    -maxdepth 2 -name bar)")")
	script -qec "$PARAFLOW fetch $SID -o $T/bar-back \
	    --pin $(server_pin) --http https://127.0.0.1:$HTTP_PORT" \
	    /dev/null >"$T/tty" 2>&1 </dev/null
	check "fetch on a terminal: the tree is back (diff -r)" \
	    diff -r "$T/bar" "$T/bar-back/bar"
	check "fetch on a terminal: its bar says 7/7 files" \
	    grep -aq ' 7/7 files ' "$T/tty"
	check_eq "fetch on a terminal: one bar line and the result" 2 \
	    "$(grep -c . "$T/tty")"
	check_eq "fetch keeps a file's mtime" "$(stat -c %Y "$T/bar/sub/f2")" \
	    "$(stat -c %Y "$T/bar-back/bar/sub/f2")"
	check_eq "fetch keeps a file's mode" 600 \
	    "$(stat -c %a "$T/bar-back/bar/sub/f1")"
fi

# --- Changed under a running transfer (1 MiB/s, one stream: the first
# file takes 2 s, and the change comes once the server holds a chunk).
# A folder replaced by a link to files outside the tree: never read
# through it. A file cut short: not sent as zeros. Both fail the
# transfer, naming the file (exit 7), and the rerun stores what is there.
active() {
	find "$STORAGE/.staging" -name journal -newer "$T/mark" -size +0 |
	    grep -q .
}
changed_under() {	# changed_under DIR: uploads DIR, changing it meanwhile
	touch "$T/mark"
	"$PARAFLOW" upload --no-tls --port "$PORT" --quiet -c 64K -t 1 \
	    --limit-rate 1M "$1" >"$T/cu.out" 2>"$T/cu.err" &
	CPID=$!
	PIDS+=("$CPID")
	check "$(basename "$1"): the transfer is under way" wait_for 60 active
	"${@:2}"
	RC=0
	wait "$CPID" || RC=$?
}
S=$T/swap
mkdir -p "$S/a" "$S/sub" "$T/evil"
mkfile "$S/a/first.bin" $((2 << 20))
mkfile "$S/sub/z.bin" 100000
mkfile "$T/evil/z.bin" 100000
swap_in_link() { mv "$S/sub" "$S/sub.old" && ln -s "$T/evil" "$S/sub"; }
changed_under "$S" swap_in_link
check_eq "a folder swapped for a link: exit 7" 7 "$RC"
check "a folder swapped for a link: says so, naming the file" \
    grep -q "sub/z.bin: a symbolic link on its path" "$T/cu.err"
check "nothing outside the tree was stored" \
    test -z "$(find "$STORAGE" -name z.bin -exec cmp -s {} "$T/evil/z.bin" \; \
    -print)"
rm "$S/sub"
mv "$S/sub.old" "$S/sub"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json -c 64K "$S"
check_eq "the rerun with the folder back: exit 0" 0 "$RC"
check "the rerun stored the tree's own z.bin" \
    cmp "$STORAGE/$(json_get session <"$T/out")/swap/sub/z.bin" "$S/sub/z.bin"
S=$T/shrink
mkdir -p "$S"
mkfile "$S/a.bin" $((2 << 20))
mkfile "$S/b.bin" 300000
changed_under "$S" truncate -s 1000 "$S/b.bin"
check_eq "a file cut short during the transfer: exit 7" 7 "$RC"
check "a file cut short: says so, naming it" \
    grep -q "b.bin: it shrank while it was being sent" "$T/cu.err"
run "$PARAFLOW" upload --no-tls --port "$PORT" --json -c 64K "$S"
check_eq "the rerun after the cut: exit 0" 0 "$RC"
check "the rerun stored the file as it is now (1000 bytes)" \
    cmp "$STORAGE/$(json_get session <"$T/out")/shrink/b.bin" "$S/b.bin"

# More root folders than are held open (32): the rest are opened at each
# read, beneath them all the same.
mkdir -p "$T/many-roots"
for i in $(seq -w 1 40); do
	mkdir -p "$T/many-roots/r$i"
	echo "root $i" >"$T/many-roots/r$i/f.txt"
done
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/many-roots"/r*
check_eq "40 root folders: exit 0" 0 "$RC"
check_eq "40 root folders: every file stored" 40 \
    "$(json_get files.stored <"$T/out")"
check "the last root's file as it was" cmp "$T/many-roots/r40/f.txt" \
    "$STORAGE/$(json_get session <"$T/out")/r40/f.txt"

# --- A list longer than one OPEN may hold (8 MiB: 9,000 paths of 970
# bytes here) is refused by the client before it is sent, saying what to
# do (exit 4), rather than by the server once it was ("OPEN frame of N
# bytes refused").
deep=$T/long/$(printf 'a%.0s' {1..250})/$(printf 'b%.0s' {1..250})
deep=$deep/$(printf 'c%.0s' {1..250})/$(printf 'd%.0s' {1..200})
mkdir -p "$deep"
(cd "$deep" && seq -f 'file-%05g' 9000 | xargs touch)
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/long"
check_eq "a list over 8 MiB: exit 4" 4 "$RC"
check "a list over 8 MiB: says to send the folder in parts" \
    grep -q "9005 entries takes 8.*send the folder in parts" "$T/out" "$T/err"
# Just under it, the transfer is stored, and its list over the gateway
# (each path twice, as sent and as stored: over 16 MiB) fetched whole.
(cd "$deep" && rm -f file-08???)
run "$PARAFLOW" upload --no-tls --port "$PORT" --json "$T/long"
check_eq "a list just under 8 MiB: stored" 0 "$RC"
SID=$(json_get session <"$T/out")
curl -sk -u paraflow:secret123 -o "$T/list.json" \
    "https://127.0.0.1:$HTTP_PORT/api/v1/sessions/$SID/files"
check "its list over the gateway is over 16 MiB" \
    test "$(stat -c %s "$T/list.json")" -gt $((16 << 20))
run "$PARAFLOW" fetch "$SID" -o "$T/long-back" --quiet --pin "$(server_pin)" \
    --http "https://127.0.0.1:$HTTP_PORT"
check_eq "and a fetch of it exits 0" 0 "$RC"
check_eq "with every file" 8000 "$(find "$T/long-back" -type f | wc -l)"
stop_server

done_testing
