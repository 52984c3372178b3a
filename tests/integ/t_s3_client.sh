#!/bin/bash
# SPDX-License-Identifier: MIT
# The S3 client (src/engine/s3.c) against a real Ceph RGW, through
# tests/tools/s3tool: every operation, each result checked with awscli
# (object present, size, SHA-256); a multipart upload of 3 parts of 8 MiB
# and a tail over one connection; ListParts paged; an abort that leaves
# no upload behind; conditional PUT; wrong keys; a storage target checked
# and probed; keys with dot segments, space, '+', '~' and UTF-8 sent as
# they are; answers lost on the way back (a proxy drops them): retried
# where that is safe, "outcome unknown" where the store must not act
# twice; and the store stopped in the middle of an upload: a bounded
# number of tries, then a clear error.
. "$(dirname "$0")/lib.sh"
. "$here/lib_s3.sh"

s3_start
B=pf-s3-client
export S3_BUCKET=$B
s3_bucket "$B"
MiB=$((1024 * 1024))

# not_in FILE TEXT...: true if FILE holds none of the TEXTs.
not_in() {
	local f=$1 w
	shift
	for w in "$@"; do
		! grep -qF -e "$w" "$f" || return 1
	done
}

# s3t ARGS...: s3tool, its output in $T/out and its errors in $T/err.
s3t() {
	"$S3TOOL" "$@" >"$T/out" 2>"$T/err"
}

# --- one object: put, head, get (whole and a range), delete
mkfile "$T/small" $((MiB + 3))
check "s3tool put" s3t put small "$T/small"
check_eq "the ETag put answered is the body's MD5" \
    "\"$(md5sum <"$T/small" | cut -d' ' -f1)\"" "$(cat "$T/out")"
mkfile "$T/aws" $((3 * MiB + 5))
s3api put-object --bucket "$B" --key by-aws --body "$T/aws" >/dev/null
check "s3tool get of what awscli put" s3t get by-aws "$T/got"
check_eq "same bytes" "$(sha "$T/aws")" "$(sha "$T/got")"
check "s3tool get of a range" s3t get by-aws "$T/range" 1000001 777777
check_eq "the range's bytes" \
    "$(tail -c +1000002 "$T/aws" | head -c 777777 | sha256sum)" \
    "$(sha256sum <"$T/range")"
check "s3tool head" s3t head by-aws
check_eq "head: size and ETag (md5)" \
    "size=$((3 * MiB + 5)) etag=\"$(md5sum <"$T/aws" | cut -d' ' -f1)\"" \
    "$(cat "$T/out")"
key='dir/a b+c&d%.txt'
check "s3tool put of a key that needs encoding" s3t put "$key" "$T/small"
s3t put doomed "$T/small"
check "s3tool delete" s3t delete doomed
s3t head doomed
check_eq "head of a missing key fails (exit 1)" 1 "$?"
check "head of a missing key: unknown_session, HTTP 404" \
    grep -q 'unknown_session: HTTP 404' "$T/err"

# --- conditional put (If-None-Match: *)
mkfile "$T/other" 4096
s3t put small "$T/other" if-absent
check_eq "if-absent put over an object fails (exit 1)" 1 "$?"
check "if-absent put over an object: busy, 412 PreconditionFailed" \
    grep -q 'busy: HTTP 412 PreconditionFailed' "$T/err"
check "if-absent put of a new key" s3t put fresh "$T/other" if-absent

# --- multipart: 3 parts of 8 MiB and a tail, one part in memory at a time
mkfile "$T/big" $((3 * 8 * MiB + 123457))
check "s3tool upload: 3 x 8 MiB + tail, ListParts checked, completed" \
    s3t upload big "$T/big" $((8 * MiB))
echo "# $(cat "$T/out")"
# The create and the complete, which the store MUST NOT act on twice,
# each get a connection of their own (libcurl itself sends a request again
# when a reused connection dies before the answer); the parts and the
# ListParts share the create's.
check "4 parts: the parts on one connection, the complete on another" \
    grep -q '^parts=4 .* connects=2$' "$T/out"

# --- the same steps one by one, ListParts one part a page
check "mpu-create" s3t mpu-create steps
id=$(cat "$T/out")
for i in 1 2 3; do
	len=$((5 * MiB))
	[ "$i" = 3 ] && len=4321
	s3t mpu-part steps "$id" "$i" "$T/big" $(((i - 1) * 5 * MiB)) "$len"
	etag[i]=$(cat "$T/out")
done
check "mpu-part x 3 (5 MiB, 5 MiB, 4321 bytes) each gave an ETag" \
    test -n "${etag[1]}" -a -n "${etag[2]}" -a -n "${etag[3]}"
check "ListParts in pages of 1" s3t --page 1 mpu-parts steps "$id"
check_eq "ListParts: numbers, sizes and ETags" \
    "1 $((5 * MiB)) ${etag[1]}|2 $((5 * MiB)) ${etag[2]}|3 4321 ${etag[3]}" \
    "$(paste -sd'|' "$T/out")"
check_eq "awscli lists the same ETags" \
    "${etag[1]} ${etag[2]} ${etag[3]}" \
    "$(s3api list-parts --bucket "$B" --key steps --upload-id "$id" \
    --query 'Parts[].ETag' --output text | tr '\t' ' ')"
check "mpu-complete" s3t mpu-complete steps "$id"
head -c $((10 * MiB + 4321)) "$T/big" >"$T/steps"

# --- parts under S3's 5 MiB minimum: the store refuses to complete
s3t mpu-create small-parts
id=$(cat "$T/out")
s3t mpu-part small-parts "$id" 1 "$T/big" 0 $MiB
s3t mpu-part small-parts "$id" 2 "$T/big" $MiB 10
s3t mpu-complete small-parts "$id"
check_eq "complete of 1 MiB parts fails (exit 1)" 1 "$?"
check "1 MiB parts: complete refused with EntityTooSmall" \
    grep -q 'protocol: HTTP 400 EntityTooSmall' "$T/err"
sed 's/^/# /' "$T/err"

# --- abort, and ListMultipartUploads paged
for k in up/a up/b up/c; do
	s3t mpu-create "$k"
	s3t mpu-part "$k" "$(cat "$T/out")" 1 "$T/small" 0 100
done
check "ListMultipartUploads in pages of 1" s3t --page 1 mpu-list up/
check_eq "it lists the 3 uploads under up/" "up/a up/b up/c" \
    "$(cut -d' ' -f1 "$T/out" | paste -sd' ')"
check_eq "awscli counts 4 uploads in progress" 4 "$(s3_uploads "$B")"
s3t mpu-list
cp "$T/out" "$T/uploads"
while read -r k i; do
	check "mpu-abort $k" s3t mpu-abort "$k" "$i"
done <"$T/uploads"
check_eq "awscli: ListMultipartUploads is empty" 0 "$(s3_uploads "$B")"
check "s3tool mpu-list: empty too" s3t mpu-list
check_eq "nothing listed" "" "$(cat "$T/out")"
s3t mpu-parts small-parts "$id"
check_eq "ListParts of an aborted upload fails (exit 1)" 1 "$?"
# AWS says NoSuchUpload; RGW 16 says NoSuchKey.
check "ListParts of an aborted upload: unknown_session, HTTP 404" \
    grep -qE 'unknown_session: HTTP 404 NoSuch(Upload|Key)' "$T/err"

# --- credentials: wrong ones are a clear error that never shows a secret
AWS_SECRET_ACCESS_KEY=wrong-$S3_SECRET_KEY s3t put nope "$T/small"
check_eq "a wrong secret fails (exit 1)" 1 "$?"
check "a wrong secret: auth_failed, 403 SignatureDoesNotMatch" \
    grep -q 'auth_failed: HTTP 403 SignatureDoesNotMatch' "$T/err"
AWS_ACCESS_KEY_ID=NOSUCHKEY s3t put nope "$T/small"
check_eq "an unknown key id fails (exit 1)" 1 "$?"
check "an unknown key id: auth_failed, 403 InvalidAccessKeyId" \
    grep -q 'auth_failed: HTTP 403 InvalidAccessKeyId' "$T/err"
check "the errors name no secret" \
    not_in "$T/err" "$S3_SECRET_KEY" wrong-
printf '[other]\naws_access_key_id = X\n[default]\n' >"$T/creds"
printf 'aws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "$S3_ACCESS_KEY" "$S3_SECRET_KEY" >>"$T/creds"
AWS_ACCESS_KEY_ID='' AWS_SECRET_ACCESS_KEY='' \
    s3t --credentials "$T/creds" head big
check_eq "keys from a credentials file ([default])" 0 "$?"
AWS_ACCESS_KEY_ID='' AWS_SECRET_ACCESS_KEY='' s3t head big
check_eq "no keys at all: exit 2" 2 "$?"
check "no keys at all: a clear error" \
    grep -q 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY' "$T/err"

# --- a storage target (s3://BUCKET/PREFIX) checked, then probed
S3_TARGET=s3://$B/tenant/a s3t probe
check_eq "probe under s3://$B/tenant/a: the store takes writes" 0 "$?"
S3_TARGET=s3://no-such-bucket/x s3t probe
check "probe of a missing bucket: unknown_session, HTTP 404 NoSuchBucket" \
    grep -q 'probe: unknown_session: HTTP 404 NoSuchBucket' "$T/err"
S3_TARGET=s3://Bad_Bucket/x s3t probe
check_eq "a bad bucket name is refused before any request (exit 2)" 2 "$?"
check "  saying why" grep -q "bucket name may hold only a-z" "$T/err"
S3_TARGET=s3://$B/a/../b s3t probe
check "a prefix with '..' is refused" \
    grep -q "the prefix has an empty, '.' or '..' segment" "$T/err"
S3_ENDPOINT=$S3_ENDPOINT/path s3t head big
check "an endpoint with a path is refused" \
    grep -q 'S3 endpoint must be http(s)://HOST\[:PORT\]' "$T/err"

# --- what is in the bucket, by awscli, once for all (each run of awscli
# costs 1.5 s of start-up): every object present or absent as it should
# be (the probe's object is gone), with its size and SHA-256
s3api list-objects-v2 --bucket "$B" --query 'Contents[].[Key,Size,ETag]' \
    --output text >"$T/listing"
"$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --recursive --quiet "s3://$B/" \
    "$T/dl"
check_eq "awscli lists exactly the objects that should be there" \
    "big|by-aws|dir/a b+c&d%.txt|fresh|small|steps" \
    "$(cut -f1 "$T/listing" | sort | paste -sd'|')"
# in_bucket KEY FILE: awscli's size and SHA-256 of KEY are FILE's.
in_bucket() {
	check_eq "awscli: $1: size and SHA-256" \
	    "$(stat -c %s "$2") $(sha "$2")" \
	    "$(awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$T/listing") \
$(sha "$T/dl/$1")"
}
in_bucket small "$T/small"
in_bucket "$key" "$T/small"
in_bucket fresh "$T/other"
in_bucket big "$T/big"
in_bucket steps "$T/steps"
check_eq "awscli: big has a multipart ETag of 4 parts" 4 \
    "$(awk -F'\t' '$1 == "big" { print $3 }' "$T/listing" |
    sed 's/.*-\([0-9]*\)"$/\1/')"

# --- keys sent as they are: dot segments, space, '+', '~', unicode. Without
# CURLOPT_PATH_AS_IS libcurl squashed "keys/x/../../up" into "up": a key
# could leave its prefix
n=0
for k in 'keys/x/../../up' 'keys/y/./here' 'keys/z/..' 'keys/a//b' \
    'keys/ü~tilde/ a+b'; do
	s3t put "$k" "$T/other" && n=$((n + 1))
done
check_eq "s3tool put 5 keys with dots, space, '+', '~', unicode" 5 "$n"
# Paging ListMultipartUploads by such keys: the key-marker and the prefix
# go into the signed query string, percent-encoded.
for k in 'keys/ü~ a+b' 'keys/ü~ a+c'; do
	s3t mpu-create "$k"
done
check "ListMultipartUploads, prefix 'keys/ü~ a+', pages of 1" \
    s3t --page 1 mpu-list 'keys/ü~ a+'
check_eq "  lists both uploads" "keys/ü~ a+b|keys/ü~ a+c" \
    "$(sed 's/ [^ ]*$//' "$T/out" | paste -sd'|')"
cp "$T/out" "$T/awkward"
n=0
while read -r line; do
	s3t mpu-abort "${line% *}" "${line##* }" && n=$((n + 1))
done <"$T/awkward"
check_eq "  both aborted" 2 "$n"
check "s3tool gets keys/x/../../up back" s3t get 'keys/x/../../up' "$T/dots"
check_eq "  the same bytes" "$(sha "$T/other")" "$(sha "$T/dots")"

# --- DeleteObjects: 1,500 keys and one with XML's special characters in
# 2 requests (1,000 keys each at most), a missing key no error; a request
# whose answer is lost is tried again, harmlessly
check "s3tool fill: 1,500 objects under bulk/" s3t fill bulk/ 1500
odd='bulk/x <&>"'"'"' ü+%.txt'
check "s3tool put of a key with < & > and quotes" s3t put "$odd" "$T/other"
check "s3tool put bulk/keep" s3t put bulk/keep "$T/other"
{
	seq -f 'bulk/%g' 0 1499
	printf '%s\nbulk/missing\n' "$odd"
} >"$T/bulk"
check "delete-keys: 1,502 keys, one of them missing" \
    s3t delete-keys "$T/bulk"
check_eq "  in 2 DeleteObjects requests" "keys=1502 requests=2 tries=2" \
    "$(cat "$T/out")"
check_eq "awscli: only bulk/keep is left under bulk/" "bulk/keep" \
    "$(s3api list-objects-v2 --bucket "$B" --prefix bulk/ \
    --query 'Contents[].Key' --output text)"
printf 'bulk/keep\nbulk/keep\n' >"$T/bulk"
check "a DeleteObjects whose answer is lost: tried again, done" \
    s3_lossy POST s3t delete-keys "$T/bulk"
check_eq "  2 tries of 1 request" "keys=2 requests=1 tries=2" \
    "$(cat "$T/out")"
printf 'bulk/ctl\tkey\n' >"$T/bulk"
s3t delete-keys "$T/bulk"
check "a key with a control character: usage, before any request" \
    grep -q 'delete-keys: usage' "$T/err"

# --- answers lost on the way back (a proxy that passes the request on
# and drops the store's first answer): idempotent requests are tried
# again; a conditional PUT, a create and a complete are not, since the
# store already acted on them
# lossy METHOD ARGS...: s3tool ARGS through a proxy that loses the answer
# to the first METHOD request (lib_s3.sh).
lossy() {
	local m=$1
	shift
	s3_lossy "$m" s3t "$@"
}
check "a plain PUT whose answer is lost: tried again, done" \
    lossy PUT put lost/plain "$T/other"
lossy PUT put lost/cond "$T/other" if-absent
check "a conditional PUT whose answer is lost: one try, outcome unknown" \
    grep -q 'put: network: no answer from the store: .*, 1 try$' "$T/err"
check "  not 412 on its own object" not_in "$T/err" 412
lossy POST mpu-create lost/create
check "a create whose answer is lost: one try" \
    grep -q 'mpu-create: network: .*, 1 try$' "$T/err"
check_eq "  awscli: one upload, no orphan from a second try" 1 \
    "$(s3_uploads "$B")"
s3t mpu-list lost/create
read -r k i <"$T/out"
check "  aborted" s3t mpu-abort "$k" "$i"
s3t mpu-create lost/aborted
id=$(cat "$T/out")
check "an abort whose answer is lost: tried again, done (its 404 is ours)" \
    lossy DELETE mpu-abort lost/aborted "$id"
s3t mpu-create lost/done
id=$(cat "$T/out")
s3t mpu-part lost/done "$id" 1 "$T/other" 0 4096
lossy POST mpu-complete lost/done "$id"
check "a complete whose answer is lost: one try, not a 404 for its own" \
    grep -q 'mpu-complete: network: .*, 1 try$' "$T/err"

# What awscli sees of both sections, in one listing (awscli costs 1.5 s).
s3api list-objects-v2 --bucket "$B" --query 'Contents[].[Key,Size]' \
    --output text >"$T/after"
check_eq "awscli lists each key exactly as given" \
    "keys/a//b|keys/x/../../up|keys/y/./here|keys/z/..|keys/ü~tilde/ a+b" \
    "$(cut -f1 "$T/after" | grep '^keys/' | LC_ALL=C sort | paste -sd'|')"
check "  and nothing escaped keys/ (no object 'up')" \
    test -z "$(awk -F'\t' '$1 == "up"' "$T/after")"
check_eq "awscli: the lost answers' objects are there, 4096 bytes each" \
    "lost/cond 4096|lost/done 4096|lost/plain 4096" \
    "$(grep '^lost/' "$T/after" | tr '\t' ' ' | LC_ALL=C sort | paste -sd'|')"

# --- the store stopped between two parts: the client tries 4 times,
# backing off, then says what happened; nothing hangs
rgw_pid=$(cat "$S3_DIR/run/client.rgw.pid")
S3TOOL_HOLD=$T/go "$S3TOOL" --attempts 4 upload cut "$T/big" $((8 * MiB)) \
    >"$T/cut.out" 2>"$T/cut.err" &
tool=$!
check "the upload holds after part 1" wait_file "$T/go.ready" 60
# ended PID: PID has exited. It may stay a zombie for a while: its parent
# is PID 1, which here reaps late.
ended() {
	[ ! -r "/proc/$1/stat" ] ||
	    [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]
}
kill -TERM "$rgw_pid"
for ((i = 0; i < 300; i++)); do
	ended "$rgw_pid" && break
	sleep 0.1
done
check "radosgw stopped" ended "$rgw_pid"
t0=$SECONDS
touch "$T/go"
wait "$tool"
check_eq "s3tool failed (exit 1)" 1 "$?"
echo "# $(cat "$T/cut.err") (in $((SECONDS - t0)) s)"
check "part 2: no answer from the store, 4 tries" \
    grep -q 'upload: network: no answer from the store: .*, 4 tries$' \
    "$T/cut.err"
check "the reason names the refused connection" \
    grep -qi "couldn't connect\|connection refused" "$T/cut.err"

done_testing
