#!/bin/bash
# SPDX-License-Identifier: MIT
# docs/openapi.yaml: Redocly's linter (recommended rules) finds no error
# and no warning; every example in it matches its schema; every object
# schema is closed, so the HTTP tests catch a field added or dropped; the
# endpoints, error codes and JSON examples of docs/api.md match it; and
# oacheck.py, which the HTTP tests rely on, does refuse what it must.
. "$(dirname "$0")/lib.sh"

top=$(cd "$here/../.." && pwd)
SPEC=$top/docs/openapi.yaml
REDOCLY=$top/tests/node/node_modules/.bin/redocly

# --- The linter ------------------------------------------------------------

if ! node_for @redocly/cli; then
	ok "redocly lint # SKIP $NODE_SKIP"
elif [ ! -x "$REDOCLY" ] && [ ! -d "$top/.git" ]; then
	# A release tarball carries package.json, not node_modules.
	ok "redocly lint # SKIP no tests/node/node_modules (npm ci --prefix tests/node)"
elif [ ! -x "$REDOCLY" ]; then
	not_ok "redocly lint: $REDOCLY missing (npm ci --prefix tests/node)"
else
	rc=0
	(cd "$T" && "$REDOCLY" lint --format=json "$SPEC") >"$T/lint.json" \
	    2>"$T/lint.err" || rc=$?
	check_eq "redocly lint: exit 0" 0 "$rc"
	totals=$(python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
print("%d errors, %d warnings" % (t["errors"], t["warnings"]))' \
	    "$T/lint.json" 2>/dev/null)
	check_eq "redocly lint: recommended rules, no problem" \
	    "0 errors, 0 warnings" "$totals"
	if [ "$totals" != "0 errors, 0 warnings" ]; then
		(cd "$T" && "$REDOCLY" lint --format=stylish "$SPEC") 2>&1 |
		    sed 's/^/#   /' | head -n 60
		sed 's/^/#   /' "$T/lint.err" | head -n 20
	fi
fi

# --- The schemas, with oacheck.py --------------------------------------------

schema_python || {
	ok "schema checks # SKIP python3-jsonschema and python3-yaml not found"
	done_testing
}

# oacheck_rc SCHEMA JSON: oacheck.py's exit status for the document JSON.
oacheck_rc() {
	local rc=0
	printf '%s' "$2" | "$PY" "$here/oacheck.py" "$SPEC" "$1" \
	    >/dev/null 2>"$T/oa.err" || rc=$?
	echo "$rc"
}

"$PY" "$here/oacheck.py" --examples "$SPEC" >"$T/ex.out" 2>"$T/ex.err"
check_eq "every example in openapi.yaml matches its schema" 0 $?
sed 's/^/#   /' "$T/ex.out" "$T/ex.err"

# Closed objects, and a required list that names only what is defined.
"$PY" - "$SPEC" >"$T/closed.out" <<'EOF'
import sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))

def walk(node, place):
    if isinstance(node, dict):
        if node.get("type") == "object":
            if node.get("additionalProperties") is not False:
                print("open object at " + place)
            props = node.get("properties", {})
            for r in node.get("required", []):
                if r not in props:
                    print("%s requires undefined %s" % (place, r))
        for k, v in node.items():
            walk(v, place + "/" + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk(v, place + "/" + str(i))

walk(spec, "#")
EOF
check "every object schema is closed (additionalProperties: false)" \
    [ ! -s "$T/closed.out" ]
sed 's/^/#   /' "$T/closed.out"

# docs/api.md and openapi.yaml describe the same gateway.
"$PY" - "$top/docs/api.md" "$SPEC" "$here/oacheck.py" >"$T/md.out" \
    2>&1 <<'EOF'
import json, re, subprocess, sys, yaml
md = open(sys.argv[1], encoding="utf-8").read()
spec = yaml.safe_load(open(sys.argv[2]))
oacheck = sys.argv[3]
bad = False

def fail(msg):
    global bad
    bad = True
    print(msg)

# Endpoints named in headings: "### `GET|HEAD /api/v1/...`".
for heading in re.findall(r"^#+ .*$", md, re.M):
    for methods, path in re.findall(r"`([A-Z|]+) (/[^`]*)`", heading):
        for m in methods.split("|"):
            if m.lower() not in spec["paths"].get(path, {}):
                fail("api.md has %s %s, openapi.yaml does not" % (m, path))
# Error codes of the table: "| 404 | `not_found` | ..." and "`busy` / ...".
table = re.findall(r"^\| (\d{3}) \| (.*?) \|", md, re.M)
codes = set()
for status, cell in table:
    codes.update(re.findall(r"`([a-z_]+)`", cell))
enum = set(spec["components"]["schemas"]["Error"]["properties"]["error"]
           ["properties"]["code"]["enum"])
if codes != enum:
    fail("error codes: api.md %s, openapi.yaml %s"
         % (sorted(codes), sorted(enum)))
# The JSON examples of api.md, "..." elisions dropped, against the schemas.
blocks = re.findall(r"```json\n(.*?)```", md, re.S)

def example(start):
    for b in blocks:
        if b.lstrip().startswith(start):
            b = re.sub(r",\s*\.\.\.", "", b)
            b = re.sub(r"\[\s*\.\.\.\s*\]", "[]", b)
            b = re.sub(r"//[^\n]*", "", b)
            return b
    fail("api.md has no example starting " + start)
    return "{}"

for name, start in (("Session", '{\n  "id"'), ("Stats", '{\n  "version"'),
                    ("Error", '{"error"'), ("SessionList", '{"sessions"'),
                    ("DeleteResult", '{"id": "...", "action"')):
    doc = example(start).replace('"id": "..."',
                                 '"id": "0d3b8f3e-6a5e-4c2a-9a51-3f2f8a7f5e10"')
    r = subprocess.run([sys.executable, oacheck, sys.argv[2], name],
                       input=doc, capture_output=True, text=True)
    if r.returncode != 0:
        fail("api.md's %s example: %s" % (name, r.stderr.strip()))
# The fields of the Session example are exactly the schema's.
sess = json.loads(example('{\n  "id"'))
props = spec["components"]["schemas"]["Session"]["properties"]
if set(sess) != set(props):
    fail("Session fields differ: %s" % sorted(set(sess) ^ set(props)))
sys.exit(1 if bad else 0)
EOF
check_eq "docs/api.md and openapi.yaml agree (endpoints, codes, examples)" \
    0 $?
sed 's/^/#   /' "$T/md.out"

# --- oacheck.py refuses what it must ----------------------------------------

session='{"id":"0d3b8f3e-6a5e-4c2a-9a51-3f2f8a7f5e10","state":"complete",
"name":"a.bin","user":"alice","client_addr":"127.0.0.1:5000","size":5,
"chunk_size":65536,"chunks_total":1,"chunks_acked":1,"chunks_nacked":0,
"chunks_resent":0,"bytes_received":5,"rate_bps":0,"streams":0,
"created_at":"2026-11-26T02:00:00Z","updated_at":"2026-11-26T02:00:01Z",
"finished_at":"2026-11-26T02:00:01.5Z",
"digest":"'$(printf 'ab%.0s' {1..32})'","error":null,"error_message":null}'
check_eq "oacheck: a good Session passes" 0 "$(oacheck_rc Session "$session")"
check_eq "oacheck: an extra field fails" 1 \
    "$(oacheck_rc Session "${session%\}},\"extra\":1}")"
check "... naming it" grep -q extra "$T/oa.err"
check_eq "oacheck: a missing field fails" 1 \
    "$(oacheck_rc Session "${session/\"streams\":0,/}")"
check_eq "oacheck: a state outside the enum fails" 1 \
    "$(oacheck_rc Session "${session/complete/done}")"
check_eq "oacheck: null where a number must be fails" 1 \
    "$(oacheck_rc Session "${session/\"size\":5/\"size\":null}")"
check_eq "oacheck: a float rate fails (integers only)" 1 \
    "$(oacheck_rc Session "${session/\"rate_bps\":0/\"rate_bps\":0.5}")"
check_eq "oacheck: 0.0 where an integer must be fails" 1 \
    "$(oacheck_rc Session "${session/\"rate_bps\":0/\"rate_bps\":0.0}")"
check_eq "oacheck: duplicate keys fail" 1 \
    "$(oacheck_rc Session "${session%\}},\"size\":5}")"
check_eq "oacheck: an id that is no UUID fails" 1 \
    "$(oacheck_rc Session "${session/0d3b8f3e/xyz}")"
check_eq "oacheck: a time without Z fails" 1 \
    "$(oacheck_rc Session "${session/02:00:00Z/02:00:00}")"
check_eq "oacheck: a list's sessions are checked too" 1 \
    "$(oacheck_rc SessionList "{\"sessions\":[${session/complete/done}],
    \"total\":1,\"offset\":0,\"limit\":50,\"next\":null}")"
check_eq "oacheck: an unknown error code fails" 1 \
    "$(oacheck_rc Error '{"error":{"code":"oops","message":"m"}}')"
check_eq "oacheck: not JSON fails" 1 "$(oacheck_rc Error '{"error":')"
check_eq "oacheck: an unknown schema is a usage error" 2 \
    "$(oacheck_rc NoSuchSchema '{}')"

done_testing
