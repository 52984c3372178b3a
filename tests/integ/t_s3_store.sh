#!/bin/bash
# SPDX-License-Identifier: MIT
# The S3 session store (src/engine/s3store.c) against a real Ceph RGW,
# through tests/tools/s3store_tool, each process a "node" that reads the
# session record from the bucket: chunk sizes refused; a 3-chunk upload
# (8 MiB chunks, the last short) resumed after 2 chunks, a chunk sent
# twice (same bytes: fine; other bytes: refused, the part unchanged), a
# missing chunk and a wrong receipt refused, then committed, the object
# checked with awscli (size, SHA-256); two nodes committing one session
# at once, several times (one completes, both succeed, one object); a
# committer killed after its commit object, taken over after a 2 s lease;
# cancel (no upload, no .pf/ keys left; chunk and COMMIT after it
# refused; its keys deleted in bulk, in a few requests); the listing;
# unknown sessions; expiry: an idle session cancelled, one that just got
# a chunk, a committing and a finished one kept, an orphan upload aborted;
# delete of a finished session, and of ones stopped half-way (finished by
# a delete again and by the expiry pass).
. "$(dirname "$0")/lib.sh"
. "$here/lib_s3.sh"

TOOL=$top_builddir/tests/tools/s3store_tool
[ -x "$TOOL" ] || skip_all "$TOOL not built"
s3_start
B=pf-s3-store
P=tenant/
export S3_TARGET=s3://$B/$P
s3_bucket "$B"
MiB=$((1024 * 1024))
C=$((8 * MiB))

# st ARGS...: the tool, its output in $T/out and its errors in $T/err
# (all of them kept in $T/errors).
st() {
	local rc=0
	"$TOOL" "$@" >"$T/out" 2>"$T/err" || rc=$?
	cat "$T/err" >>"$T/errors"
	return "$rc"
}

# keys PREFIX: the keys awscli lists under $P PREFIX, one a line.
keys() {
	s3api list-objects-v2 --bucket "$B" --prefix "$P$1" \
	    --query 'Contents[].Key' --output text | tr '\t' '\n' |
	    grep -v '^None$' | sed "s|^$P||"
}

# --- chunk sizes and part counts S3 cannot take: stable codes
mkfile "$T/f" $((2 * C + 3 * MiB + 7))
st create small "$T/f" $((4 * MiB))
check_eq "a 4 MiB chunk size is refused (exit 1)" 1 "$?"
check "  bad_frame, naming the 8 MiB minimum" \
    grep -q 'under the store.s minimum of 8 MiB' "$T/err"
check "  code bad_frame" grep -q 'create: bad_frame$' "$T/err"
truncate -s $((10001 * C)) "$T/huge"
st create huge "$T/huge" "$C"
check "10,001 chunks of 8 MiB: too_large" grep -q 'create: too_large$' \
    "$T/err"
check "  saying S3's 10000 parts" grep -q "over S3's 10000 parts" "$T/err"
rm -f "$T/huge"
st create 'bad/id' "$T/f" "$C"
check "an id with '/': bad_name" grep -q 'create: bad_name$' "$T/err"

# --- create, then any node reads the record
check "create s1 (3 chunks of 8 MiB, the last 3 MiB + 7)" \
    st create s1 "$T/f" "$C"
upload=$(cat "$T/out")
st create s1 "$T/f" "$C"
check "create s1 again: busy" grep -q 'create: busy$' "$T/err"
check "load s1 (another process)" st load s1
check_eq "  the record's fields" \
    "user=alice name=data.bin size=$((2 * C + 3 * MiB + 7)) chunk=$C head=512" \
    "$(cat "$T/out")"
st load nosuch
check "load of an unknown session: unknown_session" \
    grep -q 'load: unknown_session$' "$T/err"

# --- resume: 2 of 3 chunks, then have()
check "put chunks 0 and 2" st put s1 "$T/f" 0 2
check "have" st have s1
check_eq "  lists exactly chunks 0 and 2" "0 2" "$(cat "$T/out")"
check "chunk 2 again, the same bytes: fine" st put s1 "$T/f" 2
mkfile "$T/other0" "$C"
st put-bytes s1 0 "$T/other0"
check_eq "chunk 0 with other bytes: refused (exit 1)" 1 "$?"
check "  checksum_mismatch" grep -q 'put-bytes: checksum_mismatch$' \
    "$T/err"
head -c 100 "$T/f" >"$T/short"
st put-bytes s1 1 "$T/short"
check "a chunk of the wrong length: bad_frame" \
    grep -q 'put-bytes: bad_frame$' "$T/err"
# shellcheck disable=SC2016 # a JMESPath literal, not the shell's
check_eq "awscli: part 1 still holds chunk 0's bytes (its MD5)" \
    "\"$(head -c "$C" "$T/f" | md5sum | cut -d' ' -f1)\"" \
    "$(s3api list-parts --bucket "$B" --key "${P}files/s1/data.bin" \
    --upload-id "$upload" --query 'Parts[?PartNumber==`1`].ETag' \
    --output text)"
st commit s1 "$T/f"
check "COMMIT with chunk 1 missing: protocol" \
    grep -q 'commit: protocol$' "$T/err"
check "put chunk 1" st put s1 "$T/f" 1
check "have: all 3" st have s1
check_eq "  0 1 2" "0 1 2" "$(cat "$T/out")"
st commit-receipt s1 "$(printf '%064d' 0)"
check "COMMIT with a wrong receipt: checksum_mismatch" \
    grep -q 'commit-receipt: checksum_mismatch$' "$T/err"
check_eq "  nothing completed: no object, no commit key" \
    "" "$(keys files/; keys .pf/s/s1/commit)"
check "COMMIT" st commit s1 "$T/f"
check "COMMIT again (the answer lost, say): success" st commit s1 "$T/f"
check_eq "awscli: the object's size" "$(stat -c %s "$T/f")" \
    "$(s3_size "$B" "${P}files/s1/data.bin")"
check_eq "awscli: the object's SHA-256" "$(sha "$T/f")" \
    "$(s3_sha "$B" "${P}files/s1/data.bin")"
check_eq "awscli: s1 keeps only its record and commit" \
    ".pf/s/s1/commit .pf/s/s1/record" "$(keys .pf/s/s1/ | paste -sd' ')"
check "read a range through the store" \
    st read s1 "$T/range" $((C - 5)) $((MiB + 10))
check_eq "  the range's bytes" \
    "$(tail -c +$((C - 4)) "$T/f" | head -c $((MiB + 10)) | sha256sum)" \
    "$(sha256sum <"$T/range")"
check "have after the commit" st have s1
check_eq "  every chunk" "0 1 2" "$(cat "$T/out")"

# --- two nodes commit one session at once, several times: one completes
# (the single writer of `commit`), the other waits for the object; both
# answer success; one object
mkfile "$T/g" $((C + 1000))
n_ok=0 n_one=0 n_obj=0 n_wait=0
for i in 1 2 3 4 5; do
	"$TOOL" create "r$i" "$T/g" "$C" >/dev/null 2>&1 &&
	    "$TOOL" put "r$i" "$T/g" 0 1 2>/dev/null
	"$TOOL" --node a commit "r$i" "$T/g" >"$T/a.out" 2>"$T/a.err" &
	a=$!
	"$TOOL" --node b commit "r$i" "$T/g" >"$T/b.out" 2>"$T/b.err" &
	b=$!
	ra=0 rb=0
	wait "$a" || ra=$?
	wait "$b" || rb=$?
	[ "$ra$rb" = 00 ] && n_ok=$((n_ok + 1))
	[ "$(cat "$T/a.err" "$T/b.err" | grep -c 'completed, 2 parts')" = 1 ] &&
	    n_one=$((n_one + 1))
	[ "$(keys "files/r$i/")" = "files/r$i/data.bin" ] &&
	    n_obj=$((n_obj + 1))
	grep -q 'another node commits' "$T/a.err" "$T/b.err" &&
	    n_wait=$((n_wait + 1))
	sed 's/^/# /' "$T/a.err" "$T/b.err" | grep -v 'completed\|waiting\|S3 requests'
done
# Which race each was is the scheduler's: the loser either met the
# winner's commit object and waited, or found the object already there.
echo "# the loser waited for the winner's commit in $n_wait of 5 races"
check_eq "5 races: both nodes answered success each time" 5 "$n_ok"
check_eq "  exactly one node completed the upload each time" 5 "$n_one"
check_eq "  one object each time" 5 "$n_obj"
check_eq "awscli: r3's object, size and SHA-256" \
    "$(stat -c %s "$T/g") $(sha "$T/g")" \
    "$(s3_size "$B" "${P}files/r3/data.bin") $(s3_sha "$B" \
    "${P}files/r3/data.bin")"

# --- two nodes send other bytes for the same chunk at once, several
# times: the claim lets exactly one in, and the part holds its bytes
head -c 1000 /dev/urandom >"$T/x1"
head -c 1000 /dev/urandom >"$T/x2"
n_one=0 n_held=0
for i in 1 2 3; do
	st create "x$i" "$T/g" "$C"
	"$TOOL" put-bytes "x$i" 1 "$T/x1" 2>"$T/x1.err" &
	a=$!
	"$TOOL" put-bytes "x$i" 1 "$T/x2" 2>"$T/x2.err" &
	b=$!
	ra=0 rb=0
	wait "$a" || ra=$?
	wait "$b" || rb=$?
	win=
	if [ "$ra$rb" = 01 ] && grep -q checksum_mismatch "$T/x2.err"; then
		win=x1
	elif [ "$ra$rb" = 10 ] && grep -q checksum_mismatch "$T/x1.err"
	then
		win=x2
	fi
	[ -n "$win" ] && n_one=$((n_one + 1))
	upload=$(s3api list-multipart-uploads --bucket "$B" \
	    --prefix "${P}files/x$i/" --query 'Uploads[0].UploadId' \
	    --output text)
	[ -n "$win" ] && [ "$(s3api list-parts --bucket "$B" \
	    --key "${P}files/x$i/data.bin" --upload-id "$upload" \
	    --query 'Parts[0].ETag' --output text)" = \
	    "\"$(md5sum <"$T/$win" | cut -d' ' -f1)\"" ] &&
	    n_held=$((n_held + 1))
	st cancel "x$i"
done
check_eq "3 races of conflicting chunks: one accepted, one refused" 3 \
    "$n_one"
check_eq "  the part holds the accepted bytes (awscli: its MD5)" 3 \
    "$n_held"

# --- an empty file: one chunk of 0 bytes, one part
: >"$T/empty"
st create e0 "$T/empty" "$C"
check "an empty file: chunk 0 of 0 bytes" st put e0 "$T/empty" 0
check "  committed" st commit e0 "$T/empty"
check_eq "awscli: an object of 0 bytes" 0 \
    "$(s3_size "$B" "${P}files/e0/data.bin")"

# --- a committer killed right after writing `commit`: another node takes
# the commit over once it has stood for the lease (2 s here)
st create k "$T/g" "$C"
st put k "$T/g" 0 1
S3STORE_STOP_AFTER_COMMIT=$T/stopped st --lease 2 --node dead commit k \
    "$T/g"
check_eq "the committer stopped after its commit object (exit 3)" 3 "$?"
check_eq "  commit written, no object yet" ".pf/s/k/commit|" \
    "$(keys .pf/s/k/commit)|$(keys files/k/)"
st list
check "listed meanwhile as committing" grep -q '^k .* committing$' "$T/out"
t0=$SECONDS
check "another node commits" \
    st --lease 2 --wait 120 --node b commit k "$T/g"
echo "# took over in $((SECONDS - t0)) s"
check "  it took the lapsed commit over" \
    grep -q 'lapsed after 2 s: taken over' "$T/err"
check_eq "awscli: k's object, size and SHA-256" \
    "$(stat -c %s "$T/g") $(sha "$T/g")" \
    "$(s3_size "$B" "${P}files/k/data.bin") $(s3_sha "$B" \
    "${P}files/k/data.bin")"

# --- answers lost on the way back (lib_s3.sh: s3_lossy): the record's
# PUT at create, the commit object's PUT, the complete; each time the
# node looks at the bucket instead of trying again, and succeeds
s3_lossy PUT st create l1 "$T/g" "$C"
check_eq "create whose record's answer is lost: success" 0 "$?"
check "  the record names its upload" st load l1
st put l1 "$T/g" 0 1
s3_lossy PUT st commit l1 "$T/g"
check_eq "COMMIT whose commit object's answer is lost: success" 0 "$?"
check "  it found its own commit object and completed" \
    grep -q 'l1 completed, 2 parts' "$T/err"
st create l2 "$T/g" "$C"
st put l2 "$T/g" 0 1
s3_lossy POST st commit l2 "$T/g"
check_eq "COMMIT whose complete's answer is lost: success" 0 "$?"
check "  the complete had no answer (network), the object was there" \
    grep -q 'complete .*l2/data.bin: network' "$T/err"
check_eq "awscli: l1's and l2's objects (SHA-256)" "$(sha "$T/g") $(sha \
    "$T/g")" "$(s3_sha "$B" "${P}files/l1/data.bin") $(s3_sha "$B" \
    "${P}files/l2/data.bin")"

# --- the listing: every session, finished or not
st create ongoing "$T/g" "$C"
check "list" st list
want="$(printf '%s finished|' e0 k l1 l2)ongoing ongoing|"
want+="$(printf '%s finished|' r1 r2 r3 r4 r5)s1 finished"
check_eq "  every session with its state" "$want" \
    "$(awk '{ print $1, $5 }' "$T/out" | paste -sd'|')"

# --- cancel: the upload aborted, every .pf/ key gone; a node that still
# holds the record has its chunk and COMMIT refused
st put ongoing "$T/g" 0
st create c2 "$T/f" "$C"
st put c2 "$T/f" 0 1
# 1,500 more keys under c2's claim/ (as a session of 750 chunks would
# have with its sums): the cancel lists and deletes them in bulk
check "1,500 more keys under c2's claim/" \
    "$S3TOOL" fill "$P.pf/s/c2/claim/x" 1500
check "cancel c2 (2 chunks held, 1,504 keys)" st cancel c2
n=$(sed -n 's/^s3store_tool: cancel: \([0-9]*\) S3 requests.*/\1/p' "$T/err")
echo "# the cancel of c2 took $n S3 requests"
check "  in under 20 requests (bulk delete; one DELETE a key: over 1,500)" \
    test "${n:-99}" -lt 20
check "cancel 'ongoing', then its chunk and COMMIT" \
    st after-cancel ongoing "$T/g"
check_eq "  both refused: cancelled" "put=cancelled commit=cancelled" \
    "$(cat "$T/out")"
check_eq "awscli: ListMultipartUploads is empty" 0 "$(s3_uploads "$B")"
check_eq "awscli: no .pf/ key of c2 or 'ongoing' left" "" \
    "$(keys .pf/s/c2/; keys .pf/s/ongoing/)"
st load c2
check "a cancelled session is unknown" grep -q 'load: unknown_session$' \
    "$T/err"
st cancel s1
check "cancel after a commit: busy" grep -q 'cancel: busy$' "$T/err"
st have nosuch
check "have of an unknown session: unknown_session" \
    grep -q 'have: unknown_session$' "$T/err"
# --- expiry (a ttl of 2 s, the time given): a session idle past it is
# cancelled; one that just got a chunk (its record as old) is not, nor a
# committing or a finished one; an upload no record names is aborted
st create idle "$T/g" "$C"
st put idle "$T/g" 0
st create fresh "$T/g" "$C"
st create cm "$T/g" "$C"
st put cm "$T/g" 0 1
S3STORE_STOP_AFTER_COMMIT=$T/stopped2 st --node dead commit cm "$T/g"
"$S3TOOL" mpu-create "${P}files/orphan/data.bin" >/dev/null
t1=$(date +%s)
while [ "$(date +%s)" -le $((t1 + 3)) ]; do sleep 0.2; done
now=$(date +%s)
check "a chunk for 'fresh' after its record aged" st put fresh "$T/g" 0
check "expire with a ttl of 2 s" st expire 2 "$now"
check_eq "  1 session expired, 1 upload without a record aborted" \
    "sessions=1 uploads=1" "$(cat "$T/out")"
check "  saying which" grep -q 'session idle idle [0-9]* s: expired' \
    "$T/err"
check_eq "awscli: the uploads left are fresh's and cm's (committing)" \
    "files/cm/data.bin files/fresh/data.bin" \
    "$(s3api list-multipart-uploads --bucket "$B" --prefix "$P" \
    --query 'Uploads[].Key' --output text | tr '\t' '\n' |
    sed "s|^$P||" | sort | paste -sd' ')"
check_eq "awscli: no .pf/ key of 'idle' left" "" "$(keys .pf/s/idle/)"
st load idle
check "an expired session is unknown" grep -q 'load: unknown_session$' \
    "$T/err"
check "list" st list
check_eq "  fresh ongoing, cm committing, s1 finished" \
    "cm committing|fresh ongoing|s1 finished" \
    "$(awk '$1 ~ /^(cm|fresh|s1)$/ { print $1, $5 }' "$T/out" |
    paste -sd'|')"
check "expire again" st expire 2 "$now"
check_eq "  nothing more to do" "sessions=0 uploads=0" "$(cat "$T/out")"
check "cm is committed still (taking the lapsed commit over)" \
    st --lease 2 --wait 120 commit cm "$T/g"
check "cancel fresh" st cancel fresh
check_eq "awscli: ListMultipartUploads is empty" 0 "$(s3_uploads "$B")"

# --- delete of a finished session: refused before it is finished; then
# the object and every key go, and it is unknown. One stopped after its
# first step (the tombstone, a node that died) or its second (the object
# gone too) is unknown at once (a resume is not told "complete"), left
# out of the listing as deleting, and finished by a delete again or by
# the expiry pass
st create d1 "$T/g" "$C"
st put d1 "$T/g" 0 1
st delete d1
check "delete before the commit: busy" grep -q 'delete: busy$' "$T/err"
st commit d1 "$T/g"
check "delete d1, finished" st delete d1
check_eq "awscli: no object and no .pf/ key of d1 left" "" \
    "$(keys files/d1/; keys .pf/s/d1/)"
st load d1
check "a deleted session is unknown" grep -q 'load: unknown_session$' \
    "$T/err"
st delete d1
check "a delete again: unknown_session" grep -q 'delete: unknown_session$' \
    "$T/err"
for d in d2 d3; do
	st create "$d" "$T/g" "$C"
	st put "$d" "$T/g" 0 1
	st commit "$d" "$T/g"
	check "$d: a delete that stopped after its tombstone" st tombstone "$d"
done
s3api delete-object --bucket "$B" --key "${P}files/d3/data.bin"
check_eq "  d3's object gone too (awscli)" "" "$(keys files/d3/)"
st load d2
check "  a tombstone is unknown (no resume told complete)" \
    grep -q 'load: unknown_session$' "$T/err"
check "list" st list
check_eq "  d2 and d3 deleting" "d2 deleting|d3 deleting" \
    "$(awk '$1 ~ /^d[23]$/ { print $1, $5 }' "$T/out" | paste -sd'|')"
check "a delete again finishes d2's" st delete d2
check_eq "  awscli: no object and no .pf/ key of d2 left" "" \
    "$(keys files/d2/; keys .pf/s/d2/)"
check "the expiry pass finishes d3's, whatever its age" st expire 100000
check_eq "  awscli: no .pf/ key of d3 left" "" "$(keys .pf/s/d3/)"
st load d3
check "  d3 is unknown" grep -q 'load: unknown_session$' "$T/err"

want=$(printf 'files/%s/data.bin ' cm e0 k l1 l2 r1 r2 r3 r4 r5)
check_eq "awscli: the finished objects, nothing else" \
    "${want}files/s1/data.bin" \
    "$(keys files/ | paste -sd' ')"
check "the errors logged name no secret" \
    test "$(grep -cF -e "$S3_SECRET_KEY" "$T/errors")" = 0
echo "# $(grep -c 'S3 store: ' "$T/errors") store errors logged, such as:"
grep 'S3 store: .*HTTP' "$T/errors" | head -n 3 | sed 's/^/#   /'

done_testing
