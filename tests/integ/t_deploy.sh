#!/bin/bash
# SPDX-License-Identifier: MIT
# The deployment files: the Dockerfile, the container's entrypoint, the
# manual pages and the systemd unit pass their linters and cover every
# option; and the entrypoint, run outside Docker against a "make install"
# tree, turns the environment into paraflowd's options, serves an upload
# (and /healthz once the gateway is built), and fails clearly on bad
# settings. docker/scale-out/: haproxy -c on its HAProxy configuration,
# which then serves, live, an upload and the gateway in front of one
# node; its compose file's hardening, secrets and the nodes' environment
# through the entrypoint.
. "$(dirname "$0")/lib.sh"

srcdir=$(cd "$here/../.." && pwd)
EP=$srcdir/docker/entrypoint.sh

# The caller's own PARAFLOW_* settings must not leak into the entrypoint.
for v in $(compgen -e); do
	case $v in
	PARAFLOW_STATE_DIR) ;;
	PARAFLOWD | PARAFLOW_*) unset "$v" ;;
	esac
done

skip() {
	ok "$1 # SKIP $2"
}

# lint DESCRIPTION COMMAND...: passes if COMMAND exits 0; shows what it
# printed otherwise.
lint() {
	local desc=$1 rc=0
	shift
	"$@" >"$T/lint.out" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ]; then
		ok "$desc"
	else
		not_ok "$desc (exit $rc)"
		sed 's/^/#   /' "$T/lint.out" | head -n 40
	fi
}

# silent DESCRIPTION COMMAND...: the same, and COMMAND must print nothing
# at all (a linter's warnings).
silent() {
	local desc=$1 rc=0
	shift
	"$@" >"$T/lint.out" 2>&1 || rc=$?
	if [ "$rc" -eq 0 ] && [ ! -s "$T/lint.out" ]; then
		ok "$desc"
	else
		not_ok "$desc (exit $rc)"
		sed 's/^/#   /' "$T/lint.out" | head -n 40
	fi
}

# --- Lint ------------------------------------------------------------

dockerfilelint=${DOCKERFILELINT:-$srcdir/tests/node/node_modules/.bin/dockerfilelint}
if ! node_for dockerfilelint; then
	skip "dockerfilelint docker/Dockerfile" "$NODE_SKIP"
elif [ ! -x "$dockerfilelint" ]; then
	skip "dockerfilelint docker/Dockerfile" \
	    "no tests/node tools (npm ci --prefix tests/node)"
else
	lint "dockerfilelint docker/Dockerfile" \
	    "$dockerfilelint" "$srcdir/docker/Dockerfile"
fi

# The image builds with the -dev packages the build needs: each one of
# scripts/deps.sh is in the Dockerfile's builder stage (a library added to
# configure.ac and deps.sh only breaks the image, which only
# t_container builds).
for pkg in $(sed -n 's/^PACKAGES="\{0,1\}//; s/"$//; /^[a-z]/p' \
    "$srcdir/scripts/deps.sh" | tr ' ' '\n' | grep -- '-dev$' |
    grep -v -e cmocka -e libclang -e libfuse3); do
	check "the Dockerfile installs $pkg (scripts/deps.sh)" \
	    grep -qw -- "$pkg" "$srcdir/docker/Dockerfile"
done

if command -v shellcheck >/dev/null 2>&1; then
	silent "shellcheck docker/entrypoint.sh" \
	    shellcheck "$srcdir/docker/entrypoint.sh"
else
	skip "shellcheck docker/entrypoint.sh" "no shellcheck"
fi

check "docker/entrypoint.sh is executable" test -x "$EP"

# compose.yaml is YAML (no Docker here to run "docker compose config").
jsyaml=$srcdir/tests/node/node_modules/.bin/js-yaml
if node_for js-yaml && [ -x "$jsyaml" ]; then
	lint "docker/compose.yaml parses" "$jsyaml" "$srcdir/docker/compose.yaml"
elif python3 -c 'import yaml' 2>/dev/null; then
	lint "docker/compose.yaml parses" python3 -c \
	    'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' \
	    "$srcdir/docker/compose.yaml"
else
	skip "docker/compose.yaml parses" "no YAML parser"
fi

for page in man/paraflow.1 man/paraflowd.8; do
	if command -v mandoc >/dev/null 2>&1; then
		silent "mandoc -T lint $page" mandoc -T lint -W warning \
		    "$srcdir/$page"
	else
		skip "mandoc -T lint $page" "no mandoc"
	fi
	if command -v groff >/dev/null 2>&1; then
		silent "groff -ww -z -man $page" groff -ww -z -man \
		    "$srcdir/$page"
	else
		skip "groff -ww -z -man $page" "no groff"
	fi
done

# --- Install ---------------------------------------------------------

# The tree a package or the image would get; the parent make's jobserver
# is not ours to use.
if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$top_builddir" \
    install DESTDIR="$T/root" >"$T/install.log" 2>&1; then
	not_ok "make install DESTDIR=..."
	sed 's/^/#   /' "$T/install.log" | tail -n 30
	done_testing
fi
ok "make install DESTDIR=..."

installed() {
	find "$T/root" -path "*/$1" \( -type f -o -type l \) | head -n 1
}
IPARAFLOWD=$(installed sbin/paraflowd)
IPARAFLOW=$(installed bin/paraflow)
check "paraflowd and paraflow are installed" \
    test -x "$IPARAFLOWD" -a -x "$IPARAFLOW"
for f in man/man1/paraflow.1 man/man8/paraflowd.8 \
    examples/paraflowd.service examples/users.example; do
	check "$f is installed" test -n "$(installed "$f")"
done
if ! [ -x "$IPARAFLOWD" ] || ! [ -x "$IPARAFLOW" ]; then
	done_testing
fi

# The gateway's options, if this paraflowd has it.
has_http=no
no_http=()
if "$IPARAFLOWD" --help | grep -q -e --http-port; then
	has_http=yes
	no_http=(--no-http)
fi

# Every long option --help shows is in the manual page.
# covered HELP_TEXT PAGE: prints the options of HELP_TEXT missing in PAGE.
covered() {
	local o
	for o in $(printf '%s\n' "$1" | grep -o -e '--[a-z][a-z-]*' |
	    sort -u); do
		sed 's/\\-/-/g' "$2" | grep -q -e "$o\\b" || echo "$o"
	done
}
missing=$(covered "$("$IPARAFLOWD" --help)" "$srcdir/man/paraflowd.8" |
    tr '\n' ' ')
check_eq "paraflowd(8) has every option of paraflowd --help" "" "$missing"
help=$("$IPARAFLOW" --help)
for sub in $(printf '%s\n' "$help" | sed -n \
    's/^ *\(Usage: \)\{0,1\}paraflow \([a-z][a-z]*\).*/\2/p' | sort -u); do
	help+=$'\n'$("$IPARAFLOW" "$sub" --help 2>/dev/null)
done
missing=$(covered "$help" "$srcdir/man/paraflow.1" | tr '\n' ' ')
check_eq "paraflow(1) has every option of paraflow --help" "" "$missing"
# Every subcommand has a section of its own.
for sub in $(printf '%s\n' "$help" | sed -n \
    's/^ *\(Usage: \)\{0,1\}paraflow \([a-z][a-z]*\).*/\2/p' | sort -u); do
	check "paraflow(1) documents paraflow $sub" \
	    grep -q "^\\.SS $sub\\b" "$srcdir/man/paraflow.1"
done

if command -v systemd-analyze >/dev/null 2>&1; then
	sed "s#/usr/sbin/paraflowd#$IPARAFLOWD#" \
	    "$srcdir/contrib/paraflowd.service" >"$T/paraflowd.service"
	silent "systemd-analyze verify contrib/paraflowd.service" \
	    systemd-analyze verify --man=no "$T/paraflowd.service"
else
	skip "systemd-analyze verify contrib/paraflowd.service" \
	    "no systemd-analyze"
fi

# The example users file loads (paraflowd --help exits before loading,
# so start it for real on loopback).
rm -f "$T/ex.port"
"$IPARAFLOWD" --port 0 --bind 127.0.0.1 --storage "$T/ex" "${no_http[@]}" \
    --users "$srcdir/contrib/users.example" --port-file "$T/ex.port" \
    2>"$T/ex.log" &
ex=$!
PIDS+=("$ex")
if wait_file "$T/ex.port" 60; then
	echo hello >"$T/ex.txt.dat"
	rc=0
	PARAFLOW_SECRET=change-me-now "$IPARAFLOW" upload --quiet \
	    --port "$(cat "$T/ex.port")" --user example \
	    --file "$T/ex.txt.dat" >/dev/null 2>&1 || rc=$?
	check_eq "contrib/users.example logs in example/change-me-now" 0 "$rc"
else
	not_ok "paraflowd starts with contrib/users.example"
	sed 's/^/#   /' "$T/ex.log"
fi
kill -TERM "$ex" 2>/dev/null
wait "$ex" 2>/dev/null

# --- The entrypoint, outside Docker ----------------------------------

# ep VAR=VALUE... [-- ARGS...]: runs the entrypoint with the installed
# paraflowd and these variables (and nothing else of PARAFLOW_*); sets RC
# and ERR (its stderr).
ep() {
	local vars=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		vars+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	RC=0
	timeout 20 env PARAFLOWD="$IPARAFLOWD" "${vars[@]}" "$EP" "$@" \
	    >"$T/ep.out" 2>"$T/ep.err" || RC=$?
	ERR=$(cat "$T/ep.err")
}

# ep_fails DESCRIPTION STATUS TEXT VAR=VALUE...: the entrypoint exits
# with STATUS, saying TEXT, and paraflowd was never started.
ep_fails() {
	local desc=$1 want=$2 text=$3
	shift 3
	local http=()
	# Should it start by mistake, on ephemeral ports only.
	[ "$has_http" = yes ] && http=(PARAFLOW_HTTP_PORT=0)
	ep PARAFLOW_BIND=127.0.0.1 PARAFLOW_PORT=0 "${http[@]}" \
	    PARAFLOW_STORAGE="$T/never" "$@"
	if [ "$RC" = "$want" ] &&
	    printf '%s' "$ERR" | grep -q "^paraflow-entrypoint: .*$text" &&
	    [ ! -e "$T/never" ]; then
		ok "$desc"
		echo "#   $ERR"
	else
		not_ok "$desc"
		echo "#   exit $RC, wanted $want and '$text': $ERR"
	fi
}

ep_fails "PARAFLOW_PORT=abc fails, naming the variable" 2 PARAFLOW_PORT \
    PARAFLOW_PORT=abc
ep_fails "PARAFLOW_PORT=70000 fails, naming the variable" 2 PARAFLOW_PORT \
    PARAFLOW_PORT=70000
ep_fails "PARAFLOW_MAX_FILE_SIZE=lots fails" 2 PARAFLOW_MAX_FILE_SIZE \
    PARAFLOW_MAX_FILE_SIZE=lots
ep_fails "PARAFLOW_IDLE_TIMEOUT=0 fails" 2 PARAFLOW_IDLE_TIMEOUT \
    PARAFLOW_IDLE_TIMEOUT=0
ep_fails "PARAFLOW_SYNC=sometimes fails" 2 PARAFLOW_SYNC \
    PARAFLOW_SYNC=sometimes
ep_fails "PARAFLOW_LOG_LEVEL=loud fails" 2 PARAFLOW_LOG_LEVEL \
    PARAFLOW_LOG_LEVEL=loud
ep_fails "PARAFLOW_INSECURE_DEFAULT_USER=maybe fails" 2 \
    PARAFLOW_INSECURE_DEFAULT_USER PARAFLOW_INSECURE_DEFAULT_USER=maybe
ep_fails "a missing PARAFLOW_USERS_FILE fails, saying how to make one" 1 \
    "$T/nope.*--add-user" PARAFLOW_USERS_FILE="$T/nope"
ep_fails "a missing paraflowd fails" 1 PARAFLOWD PARAFLOWD="$T/nope"
if [ -e /run/secrets/paraflow_users ]; then
	skip "no users file off loopback fails" \
	    "this machine has /run/secrets/paraflow_users"
else
	ep_fails "no users file off loopback fails, saying how to mount one" \
	    1 "no users file.*paraflow_users" PARAFLOW_BIND=0.0.0.0
fi
if [ "$has_http" = yes ]; then
	ep_fails "PARAFLOW_HTTP_PORT=x fails" 2 PARAFLOW_HTTP_PORT \
	    PARAFLOW_HTTP_PORT=x
	ep_fails "PARAFLOW_ADMINS with a bad name fails" 2 PARAFLOW_ADMINS \
	    "PARAFLOW_ADMINS=alice,no!way"
else
	ep_fails "gateway settings without a gateway fail" 2 \
	    "PARAFLOW_HTTP_PORT is set" PARAFLOW_HTTP_PORT=8080
fi

# Options after the entrypoint come last, so they win; a command runs
# as it is.
ep PARAFLOW_BIND=127.0.0.1 -- --version
check_eq "entrypoint --version reaches paraflowd" \
    "0 $("$IPARAFLOWD" --version)" "$RC $(cat "$T/ep.out")"
ep -- "$IPARAFLOW" --version
check_eq "entrypoint COMMAND runs COMMAND" \
    "0 $("$IPARAFLOW" --version)" "$RC $(cat "$T/ep.out")"

# A real start, as a container would do it, but on loopback and ephemeral
# ports.
for u in alice bob; do
	printf 'pw-%s\n' "$u" | "$IPARAFLOWD" --users "$T/users" \
	    --add-user "$u" 2>/dev/null
done
env_run=(PARAFLOWD="$IPARAFLOWD" PARAFLOW_BIND=127.0.0.1 PARAFLOW_PORT=0
    PARAFLOW_PORT_FILE="$T/port" PARAFLOW_STORAGE="$STORAGE"
    PARAFLOW_USERS_FILE="$T/users" PARAFLOW_MAX_FILE_SIZE=1M
    PARAFLOW_FORBIDDEN_EXT=txt PARAFLOW_SYNC=none PARAFLOW_STOP_GRACE=2
    PARAFLOW_LOG_LEVEL=verbose)
if [ "$has_http" = yes ]; then
	env_run+=(PARAFLOW_HTTP_PORT=0 PARAFLOW_HTTP_PORT_FILE="$T/hport"
	    "PARAFLOW_ADMINS=alice,bob" PARAFLOW_HTTP_TIMEOUT=5)
fi
env "${env_run[@]}" "$EP" 2>>"$T/server.log" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
PORT=$(started "$T/port" "the entrypoint's paraflowd" "$T/server.log") ||
    exit 1

# exec, not a child: docker stop's SIGTERM goes to paraflowd itself.
check_eq "the entrypoint execs paraflowd" "$(readlink -f "$IPARAFLOWD")" \
    "$(readlink -f "/proc/$SERVER_PID/exe")"
cmdline=$(tr '\0' ' ' <"/proc/$SERVER_PID/cmdline")
echo "# $cmdline"
for want in "--port 0 " "--bind 127.0.0.1 " "--storage $STORAGE " \
    "--users $T/users " "--max-file-size 1M " "--forbidden-ext txt " \
    "--sync none " "--stop-grace 2 " "--verbose " "--port-file $T/port "; do
	case $cmdline in
	*" $want"*) ok "paraflowd runs with ${want% }" ;;
	*) not_ok "paraflowd runs with ${want% }" ;;
	esac
done

mkfile "$T/small.dat" 65536
rc=0
out=$(PARAFLOW_SECRET=pw-alice "$IPARAFLOW" upload --port "$PORT" \
    --quiet --json --user alice --file "$T/small.dat" 2>"$T/client.err") ||
    rc=$?
check_eq "paraflow upload to the entrypoint's server" 0 "$rc"
sid=$(json_field "$out" session)
check "the upload is stored intact" cmp -s "$T/small.dat" \
    "$(stored_file "$sid" small.dat)"
rc=0
PARAFLOW_SECRET=secret123 "$IPARAFLOW" upload --port "$PORT" --quiet \
    --user paraflow --file "$T/small.dat" 2>/dev/null || rc=$?
check_eq "the users file is in force (default login refused)" 3 "$rc"
mkfile "$T/big.dat" 2097152
rc=0
PARAFLOW_SECRET=pw-alice "$IPARAFLOW" upload --port "$PORT" --quiet \
    --user alice --file "$T/big.dat" 2>/dev/null || rc=$?
check_eq "PARAFLOW_MAX_FILE_SIZE=1M refuses 2 MiB" 4 "$rc"
cp "$T/small.dat" "$T/notes.txt"
rc=0
PARAFLOW_SECRET=pw-alice "$IPARAFLOW" upload --port "$PORT" --quiet \
    --user alice --file "$T/notes.txt" 2>/dev/null || rc=$?
check_eq "PARAFLOW_FORBIDDEN_EXT=txt refuses notes.txt" 4 "$rc"

if [ "$has_http" = yes ]; then
	for want in "--http-port 0 " "--http-bind 127.0.0.1 " \
	    "--http-port-file $T/hport " "--admin alice " "--admin bob " \
	    "--http-timeout 5 "; do
		case $cmdline in
		*" $want"*) ok "paraflowd runs with ${want% }" ;;
		*) not_ok "paraflowd runs with ${want% }" ;;
		esac
	done
	HPORT=$(started "$T/hport" "the gateway" "$T/server.log") || exit 1
	check_eq "/healthz answers on the HTTP port" '{"status":"ok"}' \
	    "$(curl -fsS --max-time 60 --cacert "$STORAGE/.tls/cert.pem" \
	    "https://127.0.0.1:$HPORT/healthz" |
	    tr -d ' \n')"
	# bob is an admin through PARAFLOW_ADMINS: alice's session shows.
	check "bob (in PARAFLOW_ADMINS) sees alice's session over REST" \
	    grep -q "$sid" <(curl -fsS --max-time 60 -u bob:pw-bob \
	    --cacert "$STORAGE/.tls/cert.pem" \
	    "https://127.0.0.1:$HPORT/api/v1/sessions")
else
	skip "/healthz answers on the HTTP port" "paraflowd has no gateway yet"
fi
stop_server

# --- docker/scale-out: three S3 nodes behind HAProxy -------------------

SO=$srcdir/docker/scale-out
# HAProxy reads its certificates at the check: a pair made as the docs
# say (paraflowd --tls-dir on one node), the secrets' paths pointed at it.
"$IPARAFLOWD" --tls-dir "$T/so-tls" --storage "$T/so-st" --fingerprint \
    >/dev/null 2>&1
cat "$T/so-tls/cert.pem" "$T/so-tls/key.pem" >"$T/so-tls/haproxy.pem"
sed -e "s#/run/secrets/paraflow_tls_cert#$T/so-tls/cert.pem#" \
    -e "s#/run/secrets/paraflow_tls_pem#$T/so-tls/haproxy.pem#" \
    "$SO/haproxy.cfg" >"$T/haproxy.cfg"
if command -v haproxy >/dev/null 2>&1; then
	rc=0
	haproxy -c -f "$T/haproxy.cfg" >"$T/hap.out" 2>&1 || rc=$?
	check_eq "haproxy -c -f docker/scale-out/haproxy.cfg" 0 "$rc"
	# Outside compose the nodes' names do not resolve; nothing else
	# may be warned about.
	check_eq "haproxy -c: no warning but the nodes' names" "" \
	    "$(grep -E 'WARNING|ALERT' "$T/hap.out" |
	    grep -v "could not resolve address 'node[123]'")"
	[ "$rc" = 0 ] || sed 's/^/#   /' "$T/hap.out"
else
	skip "haproxy -c -f docker/scale-out/haproxy.cfg" \
	    "no haproxy (scripts/deps.sh)"
fi

# The same file, live: HAProxy in front of one node (on local storage:
# the proxy is what is checked here; node2 and node3 are left out). An
# upload through the native port (TLS passes through to the node), and
# /readyz and the session list through the HTTP frontend (HAProxy's TLS
# with the nodes' key, then TLS again to the node), pinned to that key.
if command -v haproxy >/dev/null 2>&1 && [ "$has_http" = yes ]; then
	"$IPARAFLOWD" --bind 127.0.0.1 --port 0 --port-file "$T/so.port" \
	    --http-port 0 --http-port-file "$T/so.hport" \
	    --storage "$T/so-store" --users "$T/users" \
	    --tls-cert "$T/so-tls/cert.pem" --tls-key "$T/so-tls/key.pem" \
	    2>>"$T/so-node.log" &
	PIDS+=($!)
	np=$(started "$T/so.port" "the node behind HAProxy" "$T/so-node.log")
	nh=$(started "$T/so.hport" "its gateway" "$T/so-node.log")
	hp=$(free_port)
	gp=$(free_port)
	while [ "$gp" = "$hp" ]; do gp=$(free_port); done
	sed -e "s#bind :7878#bind 127.0.0.1:$hp#" \
	    -e "s#bind :8080#bind 127.0.0.1:$gp#" \
	    -e "s#node1:7878 check port 8080#127.0.0.1:$np check port $nh#" \
	    -e "s#node1:8080#127.0.0.1:$nh#" -e "/server node[23] /d" \
	    "$T/haproxy.cfg" >"$T/haproxy-live.cfg"
	haproxy -db -f "$T/haproxy-live.cfg" >"$T/haproxy.log" 2>&1 &
	PIDS+=($!)
	pin=$("$IPARAFLOWD" --fingerprint --tls-dir "$T/so-tls" \
	    --storage "$T/so-st")
	gw() {
		curl -fsS --max-time 20 -k --pinnedpubkey "$pin" "$@"
	}
	if wait_for 60 gw -o /dev/null "https://127.0.0.1:$gp/readyz"; then
		ok "HAProxy's gateway frontend answers /readyz, with the nodes' key"
	else
		not_ok "HAProxy's gateway frontend answers /readyz"
		sed 's/^/#   /' "$T/haproxy.log" | tail -n 20
	fi
	rc=0
	out=$(PARAFLOW_SECRET=pw-alice "$IPARAFLOW" upload --port "$hp" \
	    --pin "$pin" --quiet --json --user alice --file "$T/small.dat" \
	    2>"$T/so-client.err") || rc=$?
	check_eq "paraflow upload through HAProxy's native port" 0 "$rc"
	[ "$rc" = 0 ] || sed 's/^/#   /' "$T/so-client.err"
	sid=$(json_field "$out" session)
	check "  stored intact by the node" cmp -s "$T/small.dat" \
	    "$T/so-store/$sid/small.dat"
	check "  the session is listed through HAProxy's gateway frontend" \
	    grep -q "\"$sid\"" <(gw -u alice:pw-alice \
	    "https://127.0.0.1:$gp/api/v1/sessions")
	check "  HAProxy logged the connections to native_nodes/node1" \
	    grep -q 'native native_nodes/node1' "$T/haproxy.log"
else
	skip "HAProxy in front of a node" "no haproxy, or no gateway"
fi

if python3 -c 'import yaml' 2>/dev/null; then
	# The compose file's checks, each a line "ok|not ok DESCRIPTION":
	# hardening of every service, no published node, the secrets
	# declared, no key in the environment, HAProxy's servers are the
	# nodes, and the nodes' environment for the entrypoint below.
	python3 - "$SO/compose.yaml" "$T/haproxy.cfg" "$T/so.env" \
	    >"$T/so.checks" 2>&1 <<'EOF' ||
import re, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
hap = open(sys.argv[2]).read()
s = c["services"]
def say(good, what):
    print(("ok" if good else "not ok"), what)
for name, svc in s.items():
    say(svc.get("read_only") is True, f"{name}: read-only root")
    say(svc.get("cap_drop") == ["ALL"], f"{name}: cap_drop ALL")
    say("no-new-privileges:true" in (svc.get("security_opt") or []),
        f"{name}: no-new-privileges")
    for sec in svc.get("secrets") or []:
        say(sec in c.get("secrets", {}), f"{name}: secret {sec} declared")
nodes = sorted(n for n in s if n.startswith("node"))
say(len(nodes) == 3, "three nodes")
for n in nodes:
    e = s[n]["environment"]
    say("ports" not in s[n], f"{n}: publishes no port")
    say(str(e.get("PARAFLOW_STORAGE", "")).startswith("s3://"),
        f"{n}: on S3 storage")
    say(not any(re.search("SECRET|ACCESS_KEY", k) for k in e),
        f"{n}: no store key in the environment")
    say(f"server {n} {n}:7878 " in hap and f"server {n} {n}:8080 " in hap,
        f"{n}: a server of both HAProxy backends")
    vols = [v.split(":")[0] for v in s[n].get("volumes") or []]
    say(len(vols) == 1 and vols[0] in c.get("volumes", {}),
        f"{n}: a volume of its own")
# podman-compose 1.0.3 passes "${VAR:-}" on as that text.
text = open(sys.argv[1]).read()
say(not re.search(r"\$\{[A-Z_]+:-\}", text), "no empty ${VAR:-} default")
say(s["haproxy"].get("ports") == ["7878:7878", "127.0.0.1:8080:8080"],
    "haproxy publishes 7878, and 8080 on loopback only")
with open(sys.argv[3], "w") as f:
    for k, v in s[nodes[0]]["environment"].items():
        if v is not None:
            v = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", str(v))
            f.write(f"{k}={v}\n")
EOF
	    echo "not ok the checks ran" >>"$T/so.checks"
	while read -r verdict desc; do
		case $verdict in
		ok) ok "scale-out compose.yaml: $desc" ;;
		*) not_ok "scale-out compose.yaml: ${desc#ok }" ;;
		esac
	done <"$T/so.checks"

	# A node's environment through the entrypoint, with the secrets'
	# paths pointed at files here: the options paraflowd gets. A stub
	# in paraflowd's place prints them (no store to start against).
	printf 'x\n' >"$T/so-users"
	printf '[default]\n' >"$T/so-keys"
	cat >"$T/stub" <<'EOF'
#!/bin/sh
[ "$1" = --help ] && echo --http-port
echo "$@"
EOF
	chmod +x "$T/stub"
	mapfile -t so_env < <(sed -e "s#/run/secrets/paraflow_users#$T/so-users#" \
	    -e "s#/run/secrets/paraflow_s3#$T/so-keys#" \
	    -e "s#/run/secrets/paraflow_tls_cert#$T/so-tls/cert.pem#" \
	    -e "s#/run/secrets/paraflow_tls_key#$T/so-tls/key.pem#" \
	    -e "s#/var/lib/paraflow#$T/so-node#" "$T/so.env")
	RC=0
	env "${so_env[@]}" PARAFLOWD="$T/stub" \
	    PARAFLOW_S3_ENDPOINT=http://store.example:7480 "$EP" \
	    >"$T/so.out" 2>/dev/null || RC=$?
	args=" $(cat "$T/so.out") "
	check_eq "a scale-out node's environment passes the entrypoint" 0 "$RC"
	for want in "--storage s3://paraflow/uploads/ " \
	    "--s3-endpoint http://store.example:7480 " "--s3-region us-east-1 " \
	    "--s3-credentials $T/so-keys " "--node-dir $T/so-node " \
	    "--tls-cert $T/so-tls/cert.pem " "--max-ip-logins 10000 "; do
		case $args in
		*" $want"*) ok "a scale-out node runs with ${want% }" ;;
		*) not_ok "a scale-out node runs with ${want% } (got$args)" ;;
		esac
	done
	ep_fails "S3 storage without PARAFLOW_S3_ENDPOINT fails" 2 \
	    PARAFLOW_S3_ENDPOINT PARAFLOW_STORAGE=s3://b/p/
	ep_fails "an unreadable PARAFLOW_S3_CREDENTIALS fails" 1 \
	    PARAFLOW_S3_CREDENTIALS PARAFLOW_STORAGE=s3://b/p/ \
	    PARAFLOW_S3_ENDPOINT=http://x PARAFLOW_S3_CREDENTIALS="$T/nope"
	ep_fails "PARAFLOW_S3_ENDPOINT without S3 storage fails" 2 \
	    PARAFLOW_S3_ENDPOINT PARAFLOW_S3_ENDPOINT=http://x
else
	skip "docker/scale-out/compose.yaml checks" "no python3-yaml"
fi

# In a container paraflowd is PID 1, which the kernel spares signals
# it has no handler for; a blocked signal waited for with sigwait still
# arrives. Seen here in a PID namespace of its own.
if unshare --pid --fork --kill-child true 2>/dev/null; then
	rm -f "$T/port"
	unshare --pid --fork --kill-child env "${env_run[@]}" "$EP" \
	    2>>"$T/server.log" &
	ns=$!
	PIDS+=("$ns")
	started "$T/port" "paraflowd as PID 1" "$T/server.log" >/dev/null ||
	    exit 1
	read -r child _ <"/proc/$ns/task/$ns/children"
	check_eq "paraflowd is PID 1 in its namespace" 1 \
	    "$(awk '/^NSpid:/ { print $NF }' "/proc/$child/status")"
	kill -TERM "$child"
	rc=0
	wait "$ns" || rc=$?
	check_eq "paraflowd as PID 1 stops cleanly on SIGTERM" 0 "$rc"
else
	skip "paraflowd as PID 1 stops on SIGTERM" "no PID namespaces here"
fi

done_testing
