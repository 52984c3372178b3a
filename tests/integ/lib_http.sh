# SPDX-License-Identifier: MIT
# Shared helpers for the tests of the HTTP gateway (t_http*.sh,
# t_cli_http.sh): the gateway started with the server, curl requests with
# the status, headers and body kept, JSON values and bodies checked
# against docs/openapi.yaml, and the test users. Source it after lib.sh;
# it skips the test when paraflowd has no gateway.
#
# The gateway speaks HTTPS unless started with --http-no-tls: start_gw then
# sets HTTP_URL to https://, GW_PIN to the key pin paraflowd --fingerprint
# prints and GW_CA to the self-signed certificate (its names are 127.0.0.1,
# ::1 and localhost), and writes $T/.curlrc (CURL_HOME=$T) so that every
# curl of the test verifies the gateway against GW_CA, the way a user who
# was handed the certificate would: no test ever turns verification off.
# Python clients read the same file from PF_GW_CA.
# shellcheck shell=bash
# shellcheck disable=SC2154 # here, like T and PARAFLOWD, is set by lib.sh

"$PARAFLOWD" --help 2>&1 | grep -q -- '--http-port' ||
    skip_all "this paraflowd has no HTTP gateway (--http-port)"

SPEC=$here/../../docs/openapi.yaml
# shellcheck disable=SC2034 # UUID_RE is read by the tests
UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
# The users file of add_users.
U=$T/users

# need_api_tools: skips the test unless curl and a python3 with jsonschema
# and yaml (for oa) are there; sets PY.
need_api_tools() {
	command -v curl >/dev/null 2>&1 || skip_all "curl not found"
	schema_python ||
	    skip_all "python3-jsonschema and python3-yaml not found"
}

# start_gw [ARGS...]: start_server, and stops the test unless the gateway
# came up with it (HTTP_URL set); then the gateway's trust as above.
start_gw() {
	start_server "$@"
	if [ -z "$HTTP_URL" ]; then
		echo "# paraflowd (http) did not start"
		sed 's/^/# /' "$T/server.log"
		exit 1
	fi
	gw_trust "$@"
}

# gw_trust [ARGS...]: HTTP_URL, GW_PIN, GW_CA and the curl configuration
# for a gateway started with ARGS (see the top of this file).
gw_trust() {
	export CURL_HOME=$T PF_GW_CA=
	GW_PIN=
	GW_CA=
	: >"$T/.curlrc"
	[[ " $* " != *" --http-no-tls "* ]] || return 0
	HTTP_URL=https://127.0.0.1:$HTTP_PORT
	GW_CA=$TLS_DIR/cert.pem
	# shellcheck disable=SC2034 # GW_PIN is read by the tests
	GW_PIN=$(paraflowd_fp 2>/dev/null)
	PF_GW_CA=$GW_CA
	printf 'cacert = "%s"\n' "$GW_CA" >"$T/.curlrc"
}

# paraflowd_fp: what paraflowd --fingerprint prints for the test's pair.
paraflowd_fp() {
	"$PARAFLOWD" --fingerprint --tls-dir "$TLS_DIR"
}

# req [-q] [CURL ARGS...] PATH: one request to the gateway; the status in
# CODE (000 if there was no answer), headers in $T/h, body in $T/b. With
# -q (which curl takes only first) curl does not read $T/.curlrc. Each
# request may take 60 s: a TLS handshake and a password check (PBKDF2)
# under ASan on a loaded machine take seconds. A body over 1 MiB waits
# for "100 Continue" as long: sent after curl's default 1 s, it may meet
# an answer refusing it, and the connection's reset in place of it.
req() {
	local path=${!#} q=()
	set -- "${@:1:$#-1}"
	if [ "${1:-}" = -q ]; then
		q=(-q)
		shift
	fi
	rm -f "$T/b" "$T/h"
	: >"$T/b"
	: >"$T/h"
	CODE=$(curl "${q[@]}" -sS -o "$T/b" -D "$T/h" -w '%{http_code}' \
	    --max-time 60 --expect100-timeout 60 "$@" "$HTTP_URL$path" \
	    2>"$T/curl.err") || true
	[ -n "$CODE" ] || CODE=000
}

# hdr NAME: the value of header NAME of the last answer ("" if absent).
hdr() {
	tr -d '\r' <"$T/h" | sed -n "s/^$1: *//Ip" | tail -n 1
}

# jget PATH [FILE]: a value from the JSON in FILE (default the last body),
# e.g. jget error.code or jget sessions.0.id; "" if absent, "null" for
# null, lists joined by spaces.
jget() {
	"$PY" -c '
import json, sys
try:
    v = json.load(open(sys.argv[2]))
except ValueError:
    sys.exit(0)
for k in sys.argv[1].split("."):
    if isinstance(v, list) and k.isdigit():
        v = v[int(k)] if int(k) < len(v) else None
    elif isinstance(v, dict):
        v = v.get(k)
    else:
        v = None
if v is None:
    print("null" if sys.argv[1] else "")
elif isinstance(v, bool):
    print("true" if v else "false")
elif isinstance(v, list):
    print(" ".join(str(x) for x in v))
else:
    print(v)' "$1" "${2:-$T/b}"
}

# oa SCHEMA [FILE]: FILE (default the last body) matches SCHEMA of
# docs/openapi.yaml; the mismatches become TAP comments.
# shellcheck disable=SC2317 # called through check
oa() {
	if "$PY" "$here/oacheck.py" "$SPEC" "$1" "${2:-$T/b}" \
	    2>"$T/oa.err"; then
		return 0
	fi
	sed 's/^/#   /' "$T/oa.err"
	return 1
}

# expect_status DESC CODE SCHEMA: the last answer had status CODE and a
# body matching SCHEMA (none checked for "-").
expect_status() {
	check_eq "$1: status $2" "$2" "$CODE"
	[ "$3" = - ] || check "$1: body is a $3" oa "$3"
}

# expect_error DESC STATUS CODE: the last answer was an Error with them.
expect_error() {
	expect_status "$1" "$2" Error
	check_eq "$1: error.code $3" "$3" "$(jget error.code)"
}

# ids: the session ids of the last list, in order, space-separated.
ids() {
	"$PY" -c 'import json,sys
print(" ".join(s["id"] for s in json.load(open(sys.argv[1]))["sessions"]))' \
	    "$T/b" 2>/dev/null
}

# receiving_id [CURL ARGS...]: true when the caller (the curl credentials)
# has a session that is receiving; its id in RECEIVING.
# shellcheck disable=SC2317 # called through wait_for
receiving_id() {
	req "$@" "/api/v1/sessions?state=receiving"
	RECEIVING=$(ids)
	[ -n "$RECEIVING" ]
}

# add_users NAME...: adds each NAME to the users file $U, with the
# password NAME-pw; the test stops if paraflowd cannot.
add_users() {
	local u
	for u in "$@"; do
		if ! printf '%s-pw\n' "$u" |
		    "$PARAFLOWD" --users "$U" --add-user "$u" 2>/dev/null; then
			echo "# --add-user $u failed"
			exit 1
		fi
	done
}

# upload_as USER [ARGS...]: paraflow upload as USER, with its password
# from add_users.
upload_as() {
	local user=$1
	shift
	upload --user "$user" --secret "$user-pw" "$@"
}

# upload_receiving USER OUT [ARGS...]: upload_as USER ARGS --json in the
# background (stdout to OUT.out, stderr to OUT.err), its pid in UPLOAD_PID,
# then waits up to 60 s (a login under ASan on a loaded machine takes
# seconds) for the gateway to list a session of USER as receiving: true
# if it does, its id in RECEIVING.
upload_receiving() {
	local user=$1 out=$2
	shift 2
	upload_as "$user" "$@" --json >"$out.out" 2>"$out.err" &
	UPLOAD_PID=$!
	PIDS+=("$UPLOAD_PID")
	wait_for 60 receiving_id -u "$user:$user-pw"
}

# need_browser: skips the test unless node with playwright-core, Chromium
# (CHROMIUM, default /usr/bin/chromium) and paraflowd's --www are there.
need_browser() {
	CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
	node_for playwright-core || skip_all "$NODE_SKIP"
	[ -x "$CHROMIUM" ] || skip_all "chromium not found ($CHROMIUM)"
	"$PARAFLOWD" --help 2>&1 | grep -q -- '--www' ||
	    skip_all "this paraflowd serves no dashboard (--www)"
}

# run_browser DRIVER [VAR=VALUE...]: node runs tests/integ/DRIVER (a .mjs
# of driver.mjs's kind) against the gateway with those variables, its
# screenshots going next to this test's .log; its lines become TAP.
# Without playwright-core it ends the test: a failure in a git checkout,
# a skip in a release tarball (which carries no node_modules).
run_browser() {
	local driver=$1 rc=0
	shift
	mkdir -p "$top_builddir/tests/integ"
	env HTTP_URL="$HTTP_URL" PF_SPKI="${GW_PIN#sha256//}" \
	    CHROMIUM="$CHROMIUM" PF_OUT="$top_builddir/tests/integ" "$@" \
	    node "$here/$driver" >"$T/browser.out" 2>"$T/browser.err" || rc=$?
	if [ "$rc" -eq 3 ] && grep -q '^skip' "$T/browser.out"; then
		if [ -e "$here/../../.git" ]; then
			not_ok "playwright-core missing (npm ci --prefix tests/node)"
		else
			ok "the browser test # SKIP no playwright-core" \
			    "(npm ci --prefix tests/node, or PF_NODE_MODULES=DIR)"
		fi
		done_testing
	fi
	tap_from "$T/browser.out"
	check_eq "the browser test exit status" 0 "$rc"
	if [ -s "$T/browser.err" ]; then
		echo "# --- browser test stderr ---"
		sed 's/^/# /' "$T/browser.err" | tail -n 30
	fi
}

# slow_body BYTES METHOD PATH [HEADER...]: sends METHOD PATH as alice
# with a body of BYTES, its first 256 KiB, then, if no answer came
# within 1.5 s, the rest; prints "after its body: STATUS", or "answered
# before its body: ..." (the gateway must hold the answer of a refused
# body up to 1 MiB: answered early, the connection closes with bytes
# unread, and a client still sending gets a reset in place of the
# answer).
slow_body() {
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" "$PY" - "$HTTP_PORT" \
	    "$@" 2>&1 <<'EOF'
import base64, socket, sys
from gwconn import connect
port, size, method, path = sys.argv[1:5]
body = bytes(int(size))
s = connect(int(port))
auth = base64.b64encode(b"alice:alice-pw").decode()
head = "".join(h + "\r\n" for h in sys.argv[5:])
s.sendall((f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
           f"{auth}\r\n{head}Content-Length: {len(body)}\r\n\r\n").encode())
try:
    # Answered and closed at once, the server may reset this send.
    s.sendall(body[:256 * 1024])
    s.settimeout(1.5)
    print("answered before its body:", s.recv(4096)[:12])
except socket.timeout:
    s.settimeout(30)
    s.sendall(body[256 * 1024:])
    got = s.recv(4096).split(b" ")
    print("after its body:", got[1].decode() if len(got) > 1 else got)
except OSError as e:
    print("answered before its body:", e)
EOF
}
