#!/bin/bash
# SPDX-License-Identifier: MIT
# Three stateless paraflowd nodes on one S3 bucket (a real Ceph RGW)
# behind a real HAProxy in TCP mode, round robin per connection, with the
# real client over TLS. One upload whose control connection and data
# connections land on different nodes: the JOINs on nodes that did not
# open it, its COMMIT on a node that took no chunk, then the finished
# session resumed on another node (answered finished, nothing sent). A
# client killed and run again: its new login's key reaches the other
# nodes through the store.
# Then 8 uploads at once, one node SIGKILLed mid-upload and not
# restarted: every upload completes, identical in the bucket (awscli),
# no multipart upload and no claim, sum or key object left; the
# gateways of the two nodes left list all 8 from the bucket, and each
# downloads through a HAProxy in HTTP mode matching its file.
. "$(dirname "$0")/lib.sh"
. "$here/lib_s3.sh"

HAPROXY=$(command -v haproxy 2>/dev/null) ||
    HAPROXY=$(command -v /usr/sbin/haproxy 2>/dev/null) ||
    skip_all "haproxy not found (scripts/deps.sh)"

s3_start
B=pf-s3-nodes
P=nodes/
s3_bucket "$B"
MiB=$((1024 * 1024))

# One users file and one TLS pair for all nodes: the client's one pin
# matches whichever node HAProxy picks.
printf 'secret123\n' | "$PARAFLOWD" --users "$T/users" --add-user paraflow \
    --iterations 4096 >/dev/null 2>&1
check "a users file shared by the nodes" test -s "$T/users"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=paraflow -addext subjectAltName=IP:127.0.0.1 -days 2 \
    -keyout "$T/node.key" -out "$T/node.pem" 2>/dev/null
TLSARGS=(--tls-cert "$T/node.pem" --tls-key "$T/node.key")
PIN=$("$PARAFLOWD" --fingerprint "${TLSARGS[@]}" --storage "$STORAGE")
check "one TLS pair for the nodes" test -n "$PIN"

# start_node N: paraflowd N on the bucket, ephemeral ports, its own log
# ($T/nodeN.log) and node directory; sets PORTn, HTTPn and NPIDn.
start_node() {
	local n=$1
	rm -f "$T/port$n" "$T/http$n"
	"$PARAFLOWD" -v --port 0 --bind 127.0.0.1 --port-file "$T/port$n" \
	    --http-port 0 --http-port-file "$T/http$n" "${TLSARGS[@]}" \
	    --users "$T/users" --storage "s3://$B/$P" \
	    --s3-endpoint "$S3_ENDPOINT" --node-dir "$T/node$n" \
	    --max-user-sessions 32 2>>"$T/node$n.log" &
	PIDS+=("$!")
	eval "NPID$n=$!"
	eval "PORT$n=$(started "$T/port$n" "node $n" "$T/node$n.log")" ||
	    exit 1
	wait_file "$T/http$n" 60 && eval "HTTP$n=$(cat "$T/http$n")"
	echo "127.0.0.1:$(cat "$T/port$n") $PIN" \
	    >>"$PARAFLOW_STATE_DIR/known_servers"
}

# haproxy_start PORT N...: a HAProxy in TCP mode on PORT, round robin
# per connection over nodes N..., health-checked every 200 ms; sets HAPID.
haproxy_start() {
	local port=$1 n
	shift
	{
		printf 'global\n\tmaxconn 2000\n'
		printf 'defaults\n\tmode tcp\n\tretries 3\n'
		printf '\toption redispatch\n\ttimeout connect 5s\n'
		printf '\ttimeout client 120s\n\ttimeout server 120s\n'
		printf 'frontend native\n\tbind 127.0.0.1:%s\n' "$port"
		printf '\tdefault_backend nodes\n'
		printf 'backend nodes\n\tbalance roundrobin\n'
		for n in "$@"; do
			printf '\tserver n%s 127.0.0.1:%s check inter 200ms\n' \
			    "$n" "$(eval echo "\$PORT$n")"
		done
	} >"$T/haproxy.cfg"
	"$HAPROXY" -db -f "$T/haproxy.cfg" >>"$T/haproxy.log" 2>&1 &
	HAPID=$!
	PIDS+=("$HAPID")
	wait_for 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}

haproxy_stop() {
	signal_ours TERM "$HAPID"
	wait "$HAPID" 2>/dev/null
}

# sid NAME: the session id a node opened for NAME.
sid() {
	sed -n "s/.*session \([0-9a-f-]*\) opened by .*\"$1\".*/\1/p" \
	    "$T"/node[123].log | tail -n 1
}

# stored N [SID]: chunks node N stored in S3 (of session SID).
stored() {
	grep -c "session ${2:-}.*stored in S3" "$T/node$1.log"
}

# node_of PATTERN: the node whose log holds PATTERN.
node_of() {
	grep -l -- "$1" "$T"/node[123].log | sed 's/.*node\([123]\).log/\1/'
}

# keys PREFIX: the keys awscli lists under $P PREFIX, one a line.
keys() {
	s3api list-objects-v2 --bucket "$B" --prefix "$P$1" \
	    --query 'Contents[].Key' --output text | tr '\t' '\n' |
	    grep -v '^None$' | sed "s|^$P||"
}

mkdir -p "$PARAFLOW_STATE_DIR"
start_node 1
start_node 2
start_node 3
HPORT=$(free_port)
haproxy_start "$HPORT" 1 2 3
check "HAProxy listens on $HPORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$HPORT"
echo "127.0.0.1:$HPORT $PIN" >>"$PARAFLOW_STATE_DIR/known_servers"

hupload() {
	"$PARAFLOW" upload --port "$HPORT" --quiet -c 8M "$@"
}

# --- one upload, three connections in turn to the three nodes: the
# control connection on one, its two data connections on the others
mkfile "$T/a.bin" $((24 * MiB + 12345))
hupload --file "$T/a.bin" -t 2 --limit-rate 6M >"$T/a.out" 2>&1 &
apid=$!
PIDS+=("$apid")
# state_file: the client's state file once it names the session.
state_file() {
	grep -l '"session"' "$PARAFLOW_STATE_DIR"/*.json 2>/dev/null |
	    head -n 1 | grep .
}
wait_for 60 state_file >/dev/null
STATE=$(state_file) && cp "$STATE" "$T/a.state"
rc=0
wait "$apid" || rc=$?
check_eq "an upload through HAProxy completes" 0 "$rc"
A=$(sid a.bin)
OPENER=$(node_of "session $A opened by")
COMMITTER=$(node_of "session $A complete:")
echo "# session $A opened on node $OPENER, committed on node $COMMITTER"
check_eq "  its COMMIT went to the node that opened it" "$OPENER" \
    "$COMMITTER"
check_eq "  that node took none of its chunks" 0 "$(stored "$OPENER" "$A")"
joined=0
for n in 1 2 3; do
	[ "$n" = "$OPENER" ] && continue
	grep -q "session $A joined from the store" "$T/node$n.log" &&
	    joined=$((joined + 1))
done
check_eq "  the two other nodes each joined it from the store" 2 "$joined"
check_eq "  and stored its 4 chunks between them" 4 \
    $(($(stored 1 "$A") + $(stored 2 "$A") + $(stored 3 "$A")))
check_eq "  awscli: the object's SHA-256" "$(sha "$T/a.bin")" \
    "$(s3_sha "$B" "${P}files/$A/a.bin")"

# --- the finished session resumed on another node: its state file put
# back, the same command again, through HAProxy sending only to the
# other two nodes
check "the client's state file was copied mid-upload" test -s "$T/a.state"
haproxy_stop
others=()
for n in 1 2 3; do [ "$n" = "$COMMITTER" ] || others+=("$n"); done
haproxy_start "$HPORT" "${others[@]}"
check "  and removed once the upload completed" test ! -e "$STATE"
cp "$T/a.state" "$STATE"
total=$(($(stored 1) + $(stored 2) + $(stored 3)))
run "$PARAFLOW" upload --port "$HPORT" --quiet -v -c 8M --file "$T/a.bin" \
    -t 2
check_eq "the rerun of the finished upload exits 0" 0 "$RC"
check "  the client was told it had finished" grep -q \
    "session $A had finished already" "$T/out" "$T/err"
check "  a node without its COMMIT answered from the store" grep -q \
    "session $A was complete already (in the store)" \
    "$T/node${others[0]}.log" "$T/node${others[1]}.log"
check_eq "  no chunk was sent again" "$total" \
    $(($(stored 1) + $(stored 2) + $(stored 3)))
haproxy_stop
haproxy_start "$HPORT" 1 2 3

# --- a client killed mid-upload and run again: the login's node is
# another, its new session key reaches the nodes that cached the old one
# through the store, and only the missing chunks are sent
all_stored() {
	echo $(($(stored 1 "$1") + $(stored 2 "$1") + $(stored 3 "$1")))
}
mkfile "$T/c.bin" $((48 * MiB))
"$PARAFLOW" upload --port "$HPORT" --quiet -c 8M --file "$T/c.bin" -t 2 \
    --limit-rate 8M >"$T/c.out" 2>&1 &
cpid=$!
PIDS+=("$cpid")
c_took() { C=$(sid c.bin) && [ -n "$C" ] && [ "$(all_stored "$C")" -ge 2 ]; }
wait_for 60 c_took
signal_ours KILL "$cpid"
wait "$cpid" 2>/dev/null
C=$(sid c.bin)
held=$(all_stored "$C")
echo "# session $C: $held of 6 chunks stored before the client's kill"
check "the killed client's session held some chunks, not all" \
    test "$held" -ge 2 -a "$held" -lt 6
check "its rerun through HAProxy completes" hupload --file "$T/c.bin" -t 2
check_eq "  each chunk was stored once" 6 "$(all_stored "$C")"
check "  a node read the new login's key from the store at a JOIN" grep -q \
    "session $C: a newer key read from the store" "$T"/node[123].log
check_eq "  awscli: the object's SHA-256" "$(sha "$T/c.bin")" \
    "$(s3_sha "$B" "${P}files/$C/c.bin")"

# --- 8 uploads at once, 3 streams each; node 2 SIGKILLed mid-upload
files=()
for i in 1 2 3 4 5 6 7 8; do
	size=$(((24 + RANDOM % 33) * MiB + RANDOM))
	mkfile "$T/u$i.bin" "$size"
	files+=("u$i.bin")
done
base1=$(stored 1)
base2=$(stored 2)
base3=$(stored 3)
upids=()
for f in "${files[@]}"; do
	hupload --file "$T/$f" -t 3 --limit-rate 8M >"$T/$f.out" 2>&1 &
	upids+=("$!")
	PIDS+=("$!")
done
# node 2 took chunks of these uploads: SIGKILL it, never to return
took2() { [ "$(stored 2)" -gt "$base2" ]; }
check "node 2 took chunks of the 8 uploads" wait_for 120 took2
signal_ours KILL "$NPID2"
wait "$NPID2" 2>/dev/null
echo "# node 2 SIGKILLed after $(($(stored 2) - base2)) chunks"
failed=0
for i in "${!upids[@]}"; do
	rc=0
	wait "${upids[$i]}" || rc=$?
	if [ "$rc" != 0 ]; then
		failed=$((failed + 1))
		echo "# ${files[$i]}: exit $rc"
		sed 's/^/#   /' "$T/${files[$i]}.out" | tail -n 5
	fi
done
check_eq "all 8 uploads complete (exit 0) with node 2 gone" 0 "$failed"
s1=$(($(stored 1) - base1))
s2=$(($(stored 2) - base2))
s3=$(($(stored 3) - base3))
echo "# chunks stored: node 1 $s1, node 2 $s2 (killed), node 3 $s3"
check "  data connections were spread: node 1 took chunks" test "$s1" -gt 0
check "  node 2 took chunks" test "$s2" -gt 0
check "  node 3 took chunks" test "$s3" -gt 0
check "  a node joined a session another node opened" grep -q \
    "joined from the store" "$T/node1.log" "$T/node3.log"
moved=0
for f in "${files[@]}"; do
	s=$(sid "$f")
	if grep -q "session $s opened by" "$T/node2.log"; then
		moved=$((moved + 1))
		check "  $f, opened on node 2, completed on another node" \
		    grep -q "session $s complete:" "$T/node1.log" \
		    "$T/node3.log"
	fi
done
echo "# $moved sessions opened on node 2 finished elsewhere; JOINs that" \
    "read a newer key from the store: $(cat "$T"/node[13].log |
    grep -c 'a newer key read from the store')"

# --- the bucket, checked with awscli only
mkdir -p "$T/dl"
"$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp --recursive --quiet \
    "s3://$B/${P}files/" "$T/dl/" 2>"$T/dl.err"
bad=0
for f in "${files[@]}"; do
	s=$(sid "$f")
	got=$(find "$T/dl/$s" -name "$f" 2>/dev/null | head -n 1)
	if [ -z "$s" ] || [ -z "$got" ] ||
	    [ "$(stat -c %s "$got")" != "$(stat -c %s "$T/$f")" ] ||
	    [ "$(sha "$got")" != "$(sha "$T/$f")" ]; then
		bad=$((bad + 1))
		echo "# $f (session $s): not identical in the bucket"
	fi
done
check_eq "every object in the bucket: size and SHA-256 of its file" 0 "$bad"
check_eq "10 objects in all" 10 "$(find "$T/dl" -type f | wc -l)"
check_eq "no multipart upload left (ListMultipartUploads)" 0 \
    "$(s3_uploads "$B")"
check_eq "no claim, sum or key object left" "" \
    "$(keys .pf/s/ | grep -E '/(claim|sums)/|/key$')"
check_eq "finished sessions keep their record and commit only" \
    "commit record" "$(keys .pf/s/ | sed 's|.*/||' | sort -u | xargs)"

# --- the gateways: each surviving node lists all 8 from the bucket; a
# download through a HAProxy in HTTP mode (TLS ended there with the
# nodes' pair, started again to the nodes) matches its file
gw() {
	curl -sS --cacert "$T/node.pem" -u paraflow:secret123 --max-time 60 \
	    "$@"
}

# lists_all URL: the session list at URL holds every upload, complete.
lists_all() {
	local ids=() f
	for f in "${files[@]}"; do
		ids+=("$(sid "$f")")
	done
	gw -o "$T/list" "$1/api/v1/sessions?limit=500" &&
	    python3 -c '
import json, sys
state = {s["id"]: s["state"] for s in json.load(open(sys.argv[1]))["sessions"]}
sys.exit(0 if all(state.get(i) == "complete" for i in sys.argv[2:]) else 1)
' "$T/list" "${ids[@]}"
}
for n in 1 3; do
	check "node $n's gateway lists the 8 uploads, complete" \
	    wait_for 30 lists_all "https://127.0.0.1:$(eval echo "\$HTTP$n")"
done

cat "$T/node.pem" "$T/node.key" >"$T/gw.pem"
GWPORT=$(free_port)
{
	printf 'defaults\n\tmode http\n\ttimeout connect 5s\n'
	printf '\ttimeout client 120s\n\ttimeout server 120s\n'
	printf 'frontend gateway\n\tbind 127.0.0.1:%s ssl crt %s\n' \
	    "$GWPORT" "$T/gw.pem"
	printf '\tdefault_backend gws\n'
	printf 'backend gws\n\tbalance roundrobin\n'
	printf '\toption httpchk GET /readyz\n'
	for n in 1 2 3; do
		printf '\tserver g%s 127.0.0.1:%s check inter 200ms ssl ' \
		    "$n" "$(eval echo "\$HTTP$n")"
		printf 'ca-file %s\n' "$T/node.pem"
	done
} >"$T/haproxy-gw.cfg"
"$HAPROXY" -db -f "$T/haproxy-gw.cfg" >>"$T/haproxy.log" 2>&1 &
GWPID=$!
PIDS+=("$GWPID")
G=https://127.0.0.1:$GWPORT
check "HAProxy (HTTP mode) lists the 8 uploads" wait_for 30 lists_all "$G"
bad=0
for f in "${files[@]}"; do
	gw -o "$T/got" "$G/api/v1/sessions/$(sid "$f")/file" &&
	    [ "$(sha "$T/got")" = "$(sha "$T/$f")" ] || bad=$((bad + 1))
done
check_eq "each upload downloaded through HAProxy matches its file" 0 "$bad"

# --- one server key for all nodes (PREFIX.pf/key): a download link made
# by node 1 opens on node 3 and through HAProxy, and an unknown user
# gets the same made-up salt from every node (else comparing two nodes
# tells real names from made-up ones)
check_eq "the server key is in the bucket" .pf/key "$(keys .pf/key)"
one=$(sid "${files[0]}")
gw -o "$T/link" -X POST "https://127.0.0.1:$HTTP1/api/v1/sessions/$one/link"
url=$(json_field "$(cat "$T/link")" url)
check "node 1 makes a download link" test -n "$url"
for where in "https://127.0.0.1:$HTTP3" "$G"; do
	rc=0
	curl -sS --cacert "$T/node.pem" --max-time 60 -o "$T/got" \
	    "$where$url" || rc=$?
	check "  it opens on $where, without a password, the right bytes" \
	    test "$rc" = 0 -a "$(sha "$T/got")" = "$(sha "$T/${files[0]}")"
done
salt_of() {
	pywire "$(eval echo "\$PORT$1")" <<'EOF'
import sys
import pfwire

c = pfwire.connect(int(sys.argv[1]), tls=True)
pfwire.hello(c)
pfwire.send_json(c, pfwire.AUTH, {"mechanism": "SCRAM-SHA-256-PLUS",
    "message": "p=tls-exporter,,n=nosuchuser,r=fedcba9876543210"})
t, o = pfwire.recv_json(c)
print(dict(a.split("=", 1) for a in o["message"].split(","))["s"])
EOF
}
s1=$(salt_of 1)
s3=$(salt_of 3)
echo "# unknown user's salt: node 1 $s1, node 3 $s3"
check "an unknown user's made-up salt is the same on nodes 1 and 3" \
    test -n "$s1" -a "$s1" = "$s3"

signal_ours TERM "$GWPID"
wait "$GWPID" 2>/dev/null

haproxy_stop
for n in 1 3; do
	rc=0
	signal_ours TERM "$(eval echo "\$NPID$n")"
	wait "$(eval echo "\$NPID$n")" || rc=$?
	check_eq "node $n stopped cleanly on SIGTERM" 0 "$rc"
done
if [ "$tap_failed" -gt 0 ]; then
	for n in 1 2 3; do
		echo "# --- node $n log ---"
		grep -v "stored in S3" "$T/node$n.log" | tail -n 40 |
		    sed 's/^/# /'
	done
	sed 's/^/# /' "$T/haproxy.log" | tail -n 20
fi
done_testing
