#!/bin/bash
# SPDX-License-Identifier: MIT
# Amended resumes (issue 14): a transfer interrupted, then its tree
# changed (a file rewritten at the same size, one grown, one added, one
# removed), rerun with the same command: the server keeps the chunks of
# the unchanged files and the rerun sends about the changed and added
# files only; the stored tree is the tree as it is now (diff -r), each
# file with its receipt checked by the client (exit 0). The same after a
# restart of paraflowd in between, after a SIGKILL of paraflowd right
# after the amended OPENED, and with a refused script first in the
# payload. An unchanged rerun resumes as before; a server that lost the
# transfer, or an older one (a relay drops "amend" from its HELLO),
# gets a new transfer, back to back. A hand-made client's bad offsets
# are bad_frame; dead bytes between files are never stored.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

CS=65536
start_server

# make_tree DIR: 80 files of 8 to 64 KiB in 4 folders, about 2.9 MB.
make_tree() {
	python3 - "$1" <<'EOF'
import os, random, sys
random.seed(14)
for i in range(80):
    d = os.path.join(sys.argv[1], "d%d" % (i % 4))
    os.makedirs(d, exist_ok=True)
    n = random.randint(8192, 65536)
    with open(os.path.join(d, "f%03d.dat" % i), "wb") as f:
        f.write(b"pf-data " + os.urandom(n - 8))
EOF
}

tree_bytes() { du -sb --apparent-size "$1" | cut -f1; }

# interrupt DIR: starts a slow upload of DIR and kills it once the
# server holds 24 chunks (of 47).
interrupt() {
	"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 2 \
	    --limit-rate 256K "$1" >"$T/int.out" 2>"$T/int.err" &
	CPID=$!
	check "the first chunks of $(basename "$1") arrive" \
	    wait_for 60 held_some 24
	kill -9 "$CPID" 2>/dev/null
	wait "$CPID" 2>/dev/null
}

# change DIR: a file rewritten (same size, newer mtime), one grown, one
# added, one removed, all among the first files sent (d0: the first 20,
# about 730 KB, held by now). Prints the bytes the rerun must send for
# them.
change() {
	local d=$1 later=$(($(date +%s) + 100))
	local same=$d/d0/f000.dat grow=$d/d0/f004.dat
	local n
	n=$(stat -c %s "$same")
	{ printf 'pf-data '; head -c $((n - 8)) /dev/urandom; } >"$same.new"
	mv "$same.new" "$same"
	touch -d "@$later" "$same"
	head -c 20000 /dev/urandom >>"$grow"
	mkfile "$d/d0/new.dat" 30000
	rm -f "$d/d0/f008.dat"
	echo $((n + $(stat -c %s "$grow") + 30000))
}

# rerun DIR: the same command again; checks what it sent and stored.
rerun() {
	local d=$1 changed=$2 held=$3 old=$4 bound sid
	run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$d"
	check_eq "$(basename "$d"): the rerun completes, receipts matching" \
	    0 "$RC"
	[ "$RC" = 0 ] || sed 's/^/# /' "$T/err"
	SENT=$(json_get bytes_sent <"$T/out")
	sid=$(json_get session <"$T/out")
	# What was not held, the changed and added files, and for each of
	# the 4 changes at most 2 chunks it shares with unchanged files
	# (sent again whole), and the old last chunk.
	bound=$((old - held * CS + changed + 9 * CS))
	echo "# $(basename "$d"): rerun sent $SENT bytes; $held chunks" \
	    "were held of a tree of $old bytes; changed files: $changed" \
	    "bytes; bound $bound"
	check "$(basename "$d"): the rerun was an amend" \
	    grep -q "session $sid amended" "$T/server.log"
	check "$(basename "$d"): it resumed chunks the server held" \
	    test "$(json_get resumed_chunks <"$T/out")" -gt 0
	check "$(basename "$d"): it sent less than the whole tree" \
	    test "$SENT" -lt "$(tree_bytes "$d")"
	check "$(basename "$d"): about the changes and what was not held" \
	    test "$SENT" -le "$bound"
	check "$(basename "$d"): the stored tree is the tree now (diff -r)" \
	    diff -r "$d" "$STORAGE/$sid/$(basename "$d")"
	check "$(basename "$d"): no dead bytes stored as files" \
	    test "$(find "$STORAGE/$sid" -type f ! -name '.paraflow*' |
	    wc -l)" = "$(find "$d" -type f | wc -l)"
	check "$(basename "$d"): nothing left staged" \
	    test -z "$(ls -A "$STORAGE/.staging" 2>/dev/null | grep -v '^\.')"
}

# --- Interrupted, changed, rerun ------------------------------------
A=$T/alpha
make_tree "$A"
OLD=$(tree_bytes "$A")
interrupt "$A"
HELD=$(staged_chunks)
CHANGED=$(change "$A")
rerun "$A" "$CHANGED" "$HELD" "$OLD"

# --- The same with paraflowd restarted in between -------------------
B=$T/beta
make_tree "$B"
OLD=$(tree_bytes "$B")
interrupt "$B"
kill -9 "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
start_server --port "$PORT"
HELD=$(staged_chunks)
CHANGED=$(change "$B")
rerun "$B" "$CHANGED" "$HELD" "$OLD"

# --- Unchanged, the rerun resumes as before (no amend) --------------
U=$T/unchanged
make_tree "$U"
interrupt "$U"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$U"
check_eq "unchanged: the rerun completes" 0 "$RC"
check "unchanged: it resumed the chunks held" \
    test "$(json_get resumed_chunks <"$T/out")" -ge 24
check "unchanged: no amend" \
    test -z "$(grep "session $(json_get session <"$T/out") amended" \
    "$T/server.log")"
check "unchanged: the tree is stored (diff -r)" diff -r "$U" \
    "$STORAGE/$(json_get session <"$T/out")/unchanged"

# --- paraflowd killed right after the amended OPENED ----------------
C=$T/gamma
make_tree "$C"
interrupt "$C"
change "$C" >/dev/null
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 1 --limit-rate 256K \
    "$C" >"$T/am.out" 2>"$T/am.err" &
CPID=$!
GSID=$(grep -o 'session [0-9a-f-]* opened by paraflow: "gamma"' \
    "$T/server.log" | awk '{print $2}')
amended() { grep -q "session $GSID amended by" "$T/server.log"; }
check "the amended OPENED is answered" wait_for 60 amended
kill -9 "$SERVER_PID" "$CPID" 2>/dev/null
wait "$SERVER_PID" "$CPID" 2>/dev/null
start_server --port "$PORT"
# Recovered with the amended layout: its chunk count, not the first's.
FIRST=$(grep -o 'opened by paraflow: "gamma", [0-9]* bytes, [0-9]* chunks' \
    "$T/server.log" | awk '{print $(NF - 1)}')
AFTER=$(grep -o 'recovered: "gamma", [0-9]* of [0-9]* chunks' \
    "$T/server.log" | tail -1 | awk '{print $(NF - 1)}')
echo "# gamma: $FIRST chunks at first, $AFTER once amended and recovered"
check "the amended transfer is what the restart recovers" \
    test -n "$AFTER" -a "$FIRST" != "$AFTER"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$C"
check_eq "after the kill the rerun completes" 0 "$RC"
[ "$RC" = 0 ] || sed 's/^/# /' "$T/err"
check "that tree is the tree now (diff -r)" diff -r "$C" \
    "$STORAGE/$(json_get session <"$T/out")/gamma"

# --- A script first in the payload: refused alone, across a restart ---
E=$T/epsilon
make_tree "$E"
printf '#!/bin/sh\necho hi\n' >"$E/0run.txt"	# refused by its content
interrupt "$E"
ESID=$(grep -o 'session [0-9a-f-]* opened by paraflow: "epsilon"' \
    "$T/server.log" | awk '{print $2}')
kill -9 "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
start_server --port "$PORT"
check "script first: the restart keeps the transfer" \
    grep -q "session $ESID recovered" "$T/server.log"
change "$E" >/dev/null
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$E"
check_eq "script first: the amended rerun ends, the script refused" 11 \
    "$RC"
check "script first: it was an amend" \
    grep -q "session $ESID amended by" "$T/server.log"
rm "$E/0run.txt"
check "script first: the rest is the tree now (diff -r)" diff -r "$E" \
    "$STORAGE/$ESID/epsilon"

# --- The server lost the transfer: a new one, laid out anew ----------
# Not over the old payload: the files back to back, but that a file of
# a chunk or more starts at a chunk's start (relayout_align; at most
# 1/64 of the payload dead).
D=$T/delta
make_tree "$D"
interrupt "$D"
DSID=$(grep -o 'session [0-9a-f-]* opened by paraflow: "delta"' \
    "$T/server.log" | awk '{print $2}')
stop_server
rm -rf "$STORAGE/.staging/$DSID"
start_server --port "$PORT"
change "$D" >/dev/null
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$D"
check_eq "lost: the rerun completes in a new transfer" 0 "$RC"
check "lost: its session is another" \
    test "$(json_get session <"$T/out")" != "$DSID"
SUM=$(find "$D" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
GOT=$(json_get bytes <"$T/out")
echo "# lost: $SUM bytes of files in a payload of $GOT"
check "lost: its payload is laid out anew, not past the old one" \
    test "$GOT" -ge "$SUM" -a "$GOT" -le $((SUM + SUM / 64))
check "lost: the tree is stored (diff -r)" diff -r "$D" \
    "$STORAGE/$(json_get session <"$T/out")/delta"

# --- Offsets from a hand-made client (plaintext, as pfwire logs in) ---
stop_server
start_server --no-tls
pywire "$PORT" >"$T/offsets.out" 2>&1 <<'EOF'
import base64, sys
import pfwire as w
port = int(sys.argv[1])

def entry(path, size, off=None):
    e = {"path": path, "size": size, "mode": 0o644, "mtime": 1700000000}
    if off is not None:
        e["offset"] = off
    return e

def login():
    c = w.connect(port)
    hello = w.expect(c, w.HELLO)
    key = w.scram_login(c, "paraflow", "secret123")
    return c, key, hello

def try_open(name, size, files, data=b"", **extra):
    c, key, _ = login()
    req = {"name": name, "size": size, "chunk_size": 65536,
           "files": files, "head": base64.b64encode(data[:512]).decode()}
    req.update(extra)
    w.send_json(c, w.OPEN, req)
    return c, key

c, key, hello = login()
print("features", " ".join(hello.get("features", [])))
cases = [
    ("overlap", 40, [entry("o/a", 20, 0), entry("o/b", 20, 10)]),
    ("past the end", 40, [entry("o/a", 20, 0), entry("o/b", 20, 30)]),
    ("some without", 40, [entry("o/a", 20, 0), entry("o/b", 20)]),
    ("negative", 40, [entry("o/a", 20, -1)]),
]
for label, size, files in cases:
    c, _ = try_open("o", size, files, b"x" * size)
    print(label, w.error_name(c))
c, _ = try_open("o", 3, [entry("o/a", 3)], b"abc", amend=True)
print("amend without resume", w.error_name(c))
# Dead bytes between and after the files: sent, never stored.
data = b"first" + b"X" * 70000 + b"second" + b"Y" * 100
files = [{"path": "gap", "dir": True}, entry("gap/one", 5, 0),
         entry("gap/two", 6, 70005)]
c, key = try_open("gap", len(data), files, data)
opened = w.expect(c, w.OPENED)
done = w.upload(c, port, key, opened, data)
print("session", done["session"])
for f in done["files"]:
    print("stored", f["client"], f["state"])
EOF
sed 's/^/# /' "$T/offsets.out"
check "HELLO lists the amend feature" grep -q '^features .*amend' \
    "$T/offsets.out"
for c in overlap "past the end" "some without" negative \
    "amend without resume"; do
	check "offsets: $c is bad_frame" grep -qx "$c bad_frame" \
	    "$T/offsets.out"
done
GSID=$(awk '/^session /{print $2}' "$T/offsets.out")
check "a payload with dead bytes is committed" test -n "$GSID"
check_eq "its files are their own bytes" "first second" \
    "$(cat "$STORAGE/$GSID/gap/one") $(cat "$STORAGE/$GSID/gap/two")"
check_eq "the dead bytes are stored nowhere" 2 \
    "$(find "$STORAGE/$GSID" -type f ! -name '.paraflow*' | wc -l)"

# --- An older server (no "amend" in HELLO): a new transfer -----------
# A relay that drops "amend" from the server's HELLO, as an older
# paraflowd would send it, and passes all else through.
hello_relay amend "$T/oldport" >"$T/old.log" 2>&1 &
RELAY=$!
PIDS+=("$RELAY")
check "the relay for an older server starts" wait_file "$T/oldport" 30
Z=$T/zeta
make_tree "$Z"
"$PARAFLOW" upload --no-tls --port "$PORT" --quiet -c 64K -t 2 \
    --limit-rate 256K "$Z" >"$T/int.out" 2>"$T/int.err" &
CPID=$!
check "the first chunks of zeta arrive" wait_for 60 held_some 24
kill -9 "$CPID" 2>/dev/null
wait "$CPID" 2>/dev/null
ZSID=$(grep -o 'session [0-9a-f-]* opened by paraflow: "zeta"' \
    "$T/server.log" | awk '{print $2}')
change "$Z" >/dev/null
run "$PARAFLOW" upload --no-tls --port "$(cat "$T/oldport")" --quiet \
    -c 64K --json "$Z"
check_eq "older server: the rerun completes" 0 "$RC"
check "older server: in a new transfer" \
    test "$(json_get session <"$T/out")" != "$ZSID"
check "older server: no amend was asked for" \
    test -z "$(grep "session $ZSID amended" "$T/server.log")"
check_eq "older server: its payload is the files back to back" \
    "$(find "$Z" -type f -printf '%s\n' | awk '{s += $1} END {print s}')" \
    "$(json_get bytes <"$T/out")"
check "older server: the tree is stored (diff -r)" diff -r "$Z" \
    "$STORAGE/$(json_get session <"$T/out")/zeta"
signal_ours TERM "$RELAY"

stop_server
done_testing
