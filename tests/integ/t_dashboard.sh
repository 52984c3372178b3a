#!/bin/bash
# SPDX-License-Identifier: MIT
# The dashboard (www/) in a real browser: Debian's chromium driven by
# playwright-core through dashboard.mjs, against a paraflowd serving
# www/ with --www. The browser side signs in, watches an upload reach
# "complete", reads its chunk map, downloads it through the page and
# cancels another upload (see dashboard.mjs for the whole list); this
# side checks the server agrees, and leaves screenshots next to this
# test's log (dashboard-mid-upload.png, dashboard-chunk-map.png,
# dashboard-narrow.png). The page is served over HTTPS (the default), and
# Chromium trusts exactly the gateway's key: its SPKI hash, the pin of
# paraflowd --fingerprint without "sha256//", goes to
# --ignore-certificate-errors-spki-list (no certificate error is ignored
# for any other key).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"

top=$(cd "$here/../.." && pwd)
WWW=$top/www
need_browser
[ -f "$WWW/index.html" ] || { echo "# no $WWW/index.html"; exit 1; }

add_users alice
MIB=$((1024 * 1024))
mkfile "$T/big" $((256 * MIB))
mkfile "$T/small" $((128 * MIB))

start_gw --users "$U" --www "$WWW"
echo "# gateway at $HTTP_URL, dashboard from $WWW"
check "the gateway is up" [ -n "$HTTP_URL" ]
check "the dashboard is served over HTTPS" grep -q '^https://' <<<"$HTTP_URL"

# The screenshots go next to this test's .log, in the build tree.
run_browser dashboard.mjs PF_PORT="$PORT" PARAFLOW="$PARAFLOW" \
    PF_USER=alice PF_PASS=alice-pw PF_BIG="$T/big" PF_SMALL="$T/small" \
    PF_TMP="$T"

# What the server says about the two sessions the page saw.
{ read -r done_id; read -r cancel_id; read -r cancel_rc; } <"$T/ids" ||
    true
status_of() {
	curl -s --max-time 60 -u alice:alice-pw \
	    "$HTTP_URL/api/v1/sessions/$1" | sed -n \
	    's/.*"state": *"\([a-z]*\)".*/\1/p'
}
check_eq "the server: the watched upload is complete" complete \
    "$(status_of "${done_id:-none}")"
check_eq "the server: the upload cancelled from the page is cancelled" \
    cancelled "$(status_of "${cancel_id:-none}")"
echo "# the cancelled client's exit status: ${cancel_rc:-none}"
check "the server: no staging left of the cancelled upload" staging_empty
check "a screenshot of the dashboard mid-upload" \
    [ -s "$top_builddir/tests/integ/dashboard-mid-upload.png" ]
rm -f "$T/big" "$T/small"
stop_server
done_testing
