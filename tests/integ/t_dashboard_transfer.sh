#!/bin/bash
# SPDX-License-Identifier: MIT
# A transfer of many files in the dashboard (www/), in Debian's chromium
# driven by playwright-core through dashboard_transfer.mjs: a small tree
# sent with "paraflow upload DIR" (nested folders, an empty file, an
# empty folder, a Unicode name, an executable the server refuses) to a
# real paraflowd; the session JSON says it is a transfer (files); the
# page shows a transfer row that opens to every entry with its size,
# state and receipt as GET /files gives them, and downloads one file and
# the whole tree (tar) through its links. This side checks the file's
# SHA-256 against the source and unpacks the tar the page saved: the
# same tree, file for file (sha256sum) and diff -r.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"

top=$(cd "$here/../.." && pwd)
WWW=$top/www
need_browser
command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

add_users alice
start_gw --users "$U" --www "$WWW"
check "the gateway is up" [ -n "$HTTP_URL" ]

# --- The tree, sent from the command line -------------------------------
SRC=$T/src/tree
mkdir -p "$SRC/sub/deeper" "$SRC/empty dir"
mkfile "$SRC/big.bin" 300000
mkfile "$SRC/sub/one.dat" 4096
mkfile "$SRC/sub/deeper/two.dat" 70000
: >"$SRC/empty.txt"
printf 'héllo\n' >"$SRC/sub/café ☕.txt"
printf '#!/bin/sh\necho hi\n' >"$SRC/sub/run.sh"	# refused
WANT=$T/want
cp -a "$T/src" "$WANT"
rm -f "$WANT/tree/sub/run.sh"

run "$PARAFLOW" upload --port "$PORT" --user alice --secret alice-pw \
    --quiet --json -c 64K "$SRC"
check_eq "the upload: the executable refused, the rest stored (exit 11)" \
    11 "$RC"
SID=$(json_get session <"$T/out")
check "the upload names its transfer" grep -Eq \
    '^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$' <<<"$SID"

gw() {	# gw PATH [curl args...]: GET /api/v1/sessions/$SID$PATH as alice
	local p=$1
	shift
	curl -s --max-time 30 -u alice:alice-pw "$@" \
	    "$HTTP_URL/api/v1/sessions/$SID$p"
}
gw "" >"$T/session.json"
gw /files >"$T/files.json"
NFILES=$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)
    ["files"]))' <"$T/files.json")
check_eq "the session JSON counts the transfer's entries (files)" \
    "$NFILES" "$(json_get files <"$T/session.json")"
check "... and a file's session has no files" bash -c "
    curl -s --max-time 30 -u alice:alice-pw '$HTTP_URL/api/v1/sessions' |
    python3 -c 'import json,sys
l = json.load(sys.stdin)[\"sessions\"]
t = [s for s in l if \"files\" in s]
sys.exit(not (len(t) == 1 and t[0][\"id\"] == \"$SID\"))'"

# The page's tar link: a download link's token opens /tar, and only that.
TOKEN=$(gw /link -X POST | json_get url | sed -n 's/.*token=//p')
anon() {	# anon PATH: the HTTP status of GET PATH without a login
	curl -s --max-time 30 -o /dev/null -w '%{http_code}' \
	    "$HTTP_URL/api/v1/sessions/$SID$1"
}
check_eq "a link's token opens the tar without a login" 200 \
    "$(anon "/tar?token=$TOKEN")"
[ "${TOKEN: -1}" = 0 ] && flip=1 || flip=0	# the MAC's last digit
check_eq "... a token with a wrong MAC does not (403)" 403 \
    "$(anon "/tar?token=${TOKEN%?}$flip")"
check_eq "... nor does the token open the file list (401)" 401 \
    "$(anon "/files?token=$TOKEN")"

# --- The page -----------------------------------------------------------
run_browser dashboard_transfer.mjs PF_USER=alice PF_PASS=alice-pw \
    PF_SID="$SID" PF_FILES="$T/files.json" PF_SRC="$T/src" \
    PF_PICK=tree/sub/deeper/two.dat PF_TMP="$T"

# --- What the page saved ------------------------------------------------
check_eq "the file the page downloaded: SHA-256 of the source" \
    "$(sha "$SRC/sub/deeper/two.dat")" \
    "$(sha "$T/page-file" 2>/dev/null)"
mkdir -p "$T/untar"
check "the tar the page downloaded unpacks" \
    tar -x -f "$T/page.tar" -C "$T/untar"
sums() {	# sums DIR: the SHA-256 of every file under DIR, by path
	(cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
check_eq "... every file with the SHA-256 of its source" \
    "$(sums "$WANT")" "$(sums "$T/untar")"
check "... and the same tree (diff -r, empty folder included)" \
    diff -r "$WANT" "$T/untar"
stop_server
done_testing
