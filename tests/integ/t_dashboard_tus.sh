#!/bin/bash
# SPDX-License-Identifier: MIT
# Uploads from the dashboard (www/js/upload.js, tus) in Chromium, driven
# by dashboard_tus.mjs through playwright-core: a file dragged onto the
# page, the page reloaded midway, the file dropped again, the upload
# resumed and complete; a file from the picker. This side checks that
# the server stored both files whole, with their receipts, and that the
# resumed one was not sent whole twice. Over HTTPS, trusting only the
# gateway's key (as t_dashboard.sh).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"

top=$(cd "$here/../.." && pwd)
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
node_for playwright-core || skip_all "$NODE_SKIP"
[ -x "$CHROMIUM" ] || skip_all "chromium not found ($CHROMIUM)"

add_users alice
MIB=$((1024 * 1024))
SIZE=$((48 * MIB))
mkfile "$T/picked.dat" $((5 * MIB + 7))
start_gw --users "$U" --www "$top/www"
mkdir -p "$top_builddir/tests/integ"

rc=0
HTTP_URL=$HTTP_URL PF_SPKI=${GW_PIN#sha256//} PF_USER=alice \
    PF_PASS=alice-pw PF_SIZE=$SIZE PF_DRAG=$T/drag.bin \
    PF_PICK=$T/picked.dat PF_OUT=$top_builddir/tests/integ \
    CHROMIUM=$CHROMIUM PF_SRCDIR=$top \
    node "$here/dashboard_tus.mjs" >"$T/browser.out" 2>"$T/browser.err" ||
    rc=$?
if [ "$rc" -eq 3 ] && grep -q '^skip' "$T/browser.out"; then
	if [ -e "$top/.git" ]; then
		not_ok "playwright-core missing (npm ci --prefix tests/node)"
	else
		ok "the browser test # SKIP no playwright-core"
	fi
	done_testing
fi
grep -v '^session' "$T/browser.out" >"$T/tap"
tap_from "$T/tap"
check_eq "the browser test exit status" 0 "$rc"
[ -s "$T/browser.err" ] && sed 's/^/# /' "$T/browser.err" | tail -n 20

session_of() {
	awk -F'\t' -v n="$1" '$1 == "session" && $3 == n { print $2 }' \
	    "$T/browser.out"
}
receipt_of() {
	curl -s -u alice:alice-pw "$HTTP_URL/api/v1/sessions/$1" |
	    json_get digest
}
d=$(session_of drag.bin)
p=$(session_of picked.dat)
check "the dragged file is stored whole" cmp -s "$T/drag.bin" \
    "$STORAGE/$d/drag.bin"
check_eq "... its receipt is paraflow digest's" \
    "$("$PARAFLOW" digest "$T/drag.bin" | cut -d' ' -f1)" "$(receipt_of "$d")"
got=$(curl -s -u alice:alice-pw "$HTTP_URL/api/v1/sessions/$d" |
    json_get bytes_received)
echo "# bytes the server read for the dragged file: $got of $SIZE"
check "... resumed: fewer than twice its size were read" \
    [ "${got:-0}" -lt $((2 * SIZE)) ]
check "the picked file is stored whole" cmp -s "$T/picked.dat" \
    "$STORAGE/$p/picked.dat"
done_testing
