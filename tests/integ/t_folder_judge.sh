#!/bin/bash
# SPDX-License-Identifier: MIT
# A transfer's files judged while the rest streams (engine/judge.c): a
# slow upload is cut off with part of the tree held; the files it holds
# are judged meanwhile (the test waits for paraflowd's debug line that
# says so); the rerun's COMMIT says it found them judged, an ELF and a
# script among them are refused by content as at COMMIT, every receipt
# is the client's (and paraflow digest's), the stored tree and mtimes are
# the source's. The same with the tree changed before the rerun (an
# amend drops the verdicts: the receipts are those of the bytes now), and
# a transfer cancelled while it streams and its files are judged (the
# ASan build checks that nothing is used after it is freed).
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

start_server -v -v
MTIME=1000000000

# tree DIR: 120 files of 4-16 KiB in 3 folders, an empty one, an ELF
# (f020) and a script (f030) by content under harmless names, among the
# first files sent; every mtime MTIME. DIR.want lacks the two.
tree() {
	python3 - "$1" "$1.want" "$MTIME" <<'EOF'
import os, random, sys
random.seed(14)
t = int(sys.argv[3])
for i in range(120):
    d = "d%d" % (i % 3)
    if i == 20:
        data = b"\x7fELF\x02\x01\x01" + b"x" * 5000
    elif i == 30:
        data = b"#!/bin/sh\necho hi\n" + b"#" * 5000
    elif i == 40:
        data = b""
    else:
        data = b"pf-data " + os.urandom(random.randint(4096, 16384) - 8)
    for top in sys.argv[1:3] if i not in (20, 30) else sys.argv[1:2]:
        os.makedirs(os.path.join(top, d), exist_ok=True)
        p = os.path.join(top, d, "f%03d.dat" % i)
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (t, t))
EOF
}

# The one transfer staged, and its files judged so far (paraflowd's
# debug line, once it has judged all it could).
staged_id() {
	find "$STORAGE/.staging" -mindepth 1 -maxdepth 1 -type d ! -name '.*' \
	    -printf '%f\n' | head -1
}
judged() {	# judged SID
	local n
	n=$(sed -n "s/^.* $1: \([0-9]*\) files judged early so far$/\1/p" \
	    "$T/server.log" | tail -n 1)
	echo "${n:-0}"
}
judged_some() { [ "$(judged "$1")" -ge "$2" ]; }

# interrupt DIR: a slow upload of DIR, killed once the server holds 8
# chunks of 64 KiB (about 0.5 MB, 40 % of the tree: at 16 a late kill on
# a loaded machine could miss the last of its 19), then waits until at
# least 30 of the files held are judged.
interrupt() {
	"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 1 \
	    --limit-rate 256K "$1" >"$T/int.out" 2>"$T/int.err" &
	CPID=$!
	check "$(basename "$1"): the first chunks arrive" \
	    wait_for 60 held_some 8
	kill -9 "$CPID" 2>/dev/null
	wait "$CPID" 2>/dev/null
	ISID=$(staged_id)
	check "$(basename "$1"): files held are judged before any COMMIT" \
	    wait_for 60 judged_some "$ISID" 30
	echo "# $(basename "$1"): $(staged_chunks) chunks held, $(judged "$ISID")" \
	    "files judged"
}

# early SID: how many files COMMIT of SID found judged (its log line).
early() {
	sed -n "s/^.*$1: [0-9]* entries: staged in .* (no copy), \([0-9]*\)"`
	    `" judged early.*$/\1/p" "$T/server.log" | tail -n 1
}

# receipts_ok DIR: each stored file's receipt is paraflow digest's.
receipts_ok() {
	python3 - "$T/out" "$(basename "$1")" >"$T/receipts" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1]))["entries"]:
    if e.get("digest") and e["path"].startswith(sys.argv[2] + "/"):
        print(e["path"].split("/", 1)[1], e["digest"])
EOF
	local bad=0 n=0 f want got
	while read -r f got; do
		want=$("$PARAFLOW" digest -c 64K "$1/$f" | cut -d' ' -f1)
		[ "$want" = "$got" ] || { echo "# $f: $got, not $want"; bad=1; }
		n=$((n + 1))
	done <"$T/receipts"
	echo "# $n receipts compared"
	[ "$bad" -eq 0 ] && [ "$n" -ge 117 ]
}

# --- Judged while cut off, then COMMIT finds them judged ---------------
A=$T/alpha
tree "$A"
interrupt "$A"
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$A"
check_eq "alpha: the rerun completes, two refused (exit 11)" 11 "$RC"
SID=$(json_get session <"$T/out")
N=$(early "$SID")
echo "# alpha: COMMIT found ${N:-?} files judged early"
check "alpha: COMMIT says it found the files judged" test "${N:-0}" -ge 30
check_eq "alpha: two files refused" 2 "$(json_get files.refused <"$T/out")"
check_eq "alpha: the ELF and the script, refused by content" \
    "d0/f030.dat d2/f020.dat" "$(python3 -c '
import json, sys
print(" ".join(sorted(e["path"].split("/", 1)[1]
    for e in json.load(open(sys.argv[1]))["entries"]
    if e["state"] == "forbidden_type"
    and "content" in (e.get("reason") or ""))))' "$T/out")"
check "alpha: every receipt is paraflow digest's" receipts_ok "$A"
check "alpha: the stored tree equals the source minus them (diff -r)" \
    diff -r "$A.want" "$STORAGE/$SID/alpha"
check_eq "alpha: every stored file has its own mtime" "" \
    "$(find "$STORAGE/$SID/alpha" -type f \( ! -newermt \
    "@$((MTIME - 1))" -o -newermt "@$MTIME" \) -print)"
check "alpha: no temporary name left" \
    test -z "$(find "$STORAGE/$SID" -name '.pf-part-*')"
check "alpha: the staging area is gone" staging_empty

# --- Judged, then the tree changed: the amend drops the verdicts -------
B=$T/beta
tree "$B"
interrupt "$B"
# Files among the first sent, held and judged by now: one rewritten at
# its size, one grown, one turned into a script (refused now).
for f in d0/f000.dat d1/f001.dat d2/f002.dat; do
	n=$(stat -c %s "$B/$f")
	case $f in
	d0/*) { printf 'pf-data '; head -c $((n - 8)) /dev/urandom; } ;;
	d1/*) head -c $((n + 5000)) /dev/urandom ;;
	d2/*) { printf '#!/bin/sh\n'; head -c 3000 /dev/zero; } ;;
	esac >"$B/$f.new"
	mv "$B/$f.new" "$B/$f"
	[ "$f" = d2/f002.dat ] && rm -f "$B.want/$f" ||
	    cp -p "$B/$f" "$B.want/$f"
done
run "$PARAFLOW" upload --port "$PORT" --quiet -c 64K --json "$B"
check_eq "beta: the rerun completes, three refused (exit 11)" 11 "$RC"
SID=$(json_get session <"$T/out")
check "beta: the rerun was an amend" \
    grep -q "session $SID amended" "$T/server.log"
echo "# beta: COMMIT found $(early "$SID") files judged early"
check_eq "beta: the new script refused too" 3 \
    "$(json_get files.refused <"$T/out")"
check "beta: every receipt is the bytes' now" receipts_ok "$B"
check "beta: the stored tree is the tree now (diff -r)" \
    diff -r "$B.want" "$STORAGE/$SID/beta"
check "beta: the staging area is gone" staging_empty

# --- Cancelled while it streams and its files are judged ---------------
C=$T/gamma
tree "$C"
"$PARAFLOW" upload --port "$PORT" --quiet -c 64K -t 1 --limit-rate 256K \
    "$C" >"$T/c.out" 2>"$T/c.err" &
CPID=$!
check "gamma: the first chunks arrive" wait_for 60 held_some 4
CSID=$(staged_id)
GW=https://127.0.0.1:$HTTP_PORT/api/v1/sessions/$CSID
check_eq "gamma: DELETE of the transfer streaming answers 200" 200 \
    "$(curl -sk -u paraflow:secret123 -o /dev/null -w '%{http_code}' \
    -X DELETE "$GW")"
RC=0
wait "$CPID" || RC=$?
check "gamma: the upload ends with an error" test "$RC" -ne 0
gone() { test ! -e "$STORAGE/.staging/$CSID"; }
check "gamma: its staging area goes" wait_for 60 gone
stop_server

done_testing
