# SPDX-License-Identifier: MIT
# Shared helpers for the S3 tests: one throwaway Ceph RGW per test script
# (tests/s3/rgw.sh, about 2 s to start), stopped when the test ends, and
# awscli set up to check what is in the bucket independently of ParaFlow.
# Source it after lib.sh. Where Ceph cannot start the test skips, saying
# why; with PF_S3_REQUIRED=1 (CI) that is a failure instead.
# shellcheck shell=bash
# shellcheck disable=SC2154 # here and T are set by lib.sh

RGW_SH=$here/../s3/rgw.sh
S3TOOL=${S3TOOL:-$top_builddir/tests/tools/s3tool}
S3_DIR=$T/ceph
# Debian's awscli (scripts/deps.sh) before any other on PATH: some newer
# ones add checksum trailers RGW 16 does not know, or crash on its empty
# error messages.
AWS=/usr/bin/aws
[ -x "$AWS" ] || AWS=$(command -v aws 2>/dev/null) || AWS=

# s3_unavailable REASON: this machine cannot run the store.
s3_unavailable() {
	if [ "${PF_S3_REQUIRED:-}" = 1 ]; then
		not_ok "a Ceph RGW starts here (PF_S3_REQUIRED=1)"
		echo "#   $*"
		done_testing
	fi
	skip_all "$*"
}

s3_stop() {
	[ -d "$S3_DIR" ] && bash "$RGW_SH" stop "$S3_DIR" 2>>"$T/rgw.log"
}

# s3_keep_logs: a failed start's full Ceph logs, kept in the build tree
# (the test's own directory goes at exit): the log tails in the test's
# output rarely hold the cause of a start that fails once in many.
s3_keep_logs() {
	local f=$top_builddir/rgw-failed-$$-$SECONDS.tar.gz
	[ -d "$S3_DIR/log" ] || return 0
	tar czf "$f" -C "$S3_DIR" log ceph.conf 2>/dev/null &&
	    echo "# the failed start's Ceph logs: $f"
}

# s3_start: starts the store and sets S3_ENDPOINT, S3_ACCESS_KEY and
# S3_SECRET_KEY; the AWS_* variables awscli and s3tool read are exported,
# and no file in ~/.aws is read.
s3_start() {
	local t0=$SECONDS rc=0
	[ -n "$AWS" ] || s3_unavailable "awscli not found (scripts/deps.sh)"
	[ -x "$S3TOOL" ] || s3_unavailable "$S3TOOL not built"
	trap 's3_stop; cleanup' EXIT
	bash "$RGW_SH" start "$S3_DIR" >"$T/s3.env" 2>"$T/rgw.log" || rc=$?
	if [ "$rc" = 1 ]; then
		# A start that failed (not "cannot run here": 2) is tried once
		# more: on a loaded machine a fresh cluster has failed once.
		sed 's/^/# /' "$T/rgw.log" | tail -n 150
		echo "# Ceph RGW did not start; once more"
		s3_keep_logs
		s3_stop
		rc=0
		bash "$RGW_SH" start "$S3_DIR" >"$T/s3.env" 2>"$T/rgw.log" ||
		    rc=$?
	fi
	if [ "$rc" -ne 0 ]; then
		sed 's/^/# /' "$T/rgw.log" | tail -n 150
		s3_keep_logs
		s3_unavailable "Ceph RGW did not start:" \
		    "$(grep -m 1 'rgw.sh: ' "$T/rgw.log" | cut -c9-)"
	fi
	# shellcheck disable=SC1091
	. "$T/s3.env"
	echo "# Ceph RGW up at $S3_ENDPOINT in $((SECONDS - t0)) s"
	export S3_ENDPOINT AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY \
	    AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY AWS_DEFAULT_REGION=us-east-1 \
	    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
	    AWS_PAGER='' AWS_REQUEST_CHECKSUM_CALCULATION=when_required \
	    AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
}

# s3api ARGS...: awscli's s3api against the test's store.
s3api() {
	"$AWS" --endpoint-url "$S3_ENDPOINT" s3api "$@"
}

# s3_bucket BUCKET: awscli creates BUCKET, as a check of the test.
s3_bucket() {
	check "awscli creates bucket $1" s3api create-bucket --bucket "$1" \
	    --output text
}

# s3_sha BUCKET KEY: SHA-256 of an object, as awscli reads it.
s3_sha() {
	"$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp "s3://$1/$2" - |
	    sha256sum | cut -d' ' -f1
}

# s3_size BUCKET KEY: an object's size by awscli's HEAD ("" if none).
s3_size() {
	s3api head-object --bucket "$1" --key "$2" --query ContentLength \
	    --output text 2>/dev/null
}

# s3_uploads BUCKET: how many multipart uploads awscli lists.
s3_uploads() {
	# shellcheck disable=SC2016 # a JMESPath literal, not the shell's
	s3api list-multipart-uploads --bucket "$1" \
	    --query 'length(Uploads || `[]`)' --output text
}

# s3_lossy METHOD CMD...: runs CMD with S3_ENDPOINT pointing to a new
# proxy (s3lose.py) that passes requests on to the store but loses the
# answer to the first METHOD request: the store acted, the client never
# hears of it.
s3_lossy() {
	local pid rc=0 m=$1
	shift
	rm -f "$T/lose.port"
	python3 "$here/s3lose.py" "$T/lose.port" "${S3_ENDPOINT##*:}" "$m" &
	pid=$!
	wait_file "$T/lose.port" 30 || { kill "$pid"; return 99; }
	S3_ENDPOINT=http://127.0.0.1:$(cat "$T/lose.port") "$@" || rc=$?
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return "$rc"
}
