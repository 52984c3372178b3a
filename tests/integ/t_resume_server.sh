#!/bin/bash
# SPDX-License-Identifier: MIT
# The server killed under a running upload: SIGKILL at random moments, at
# least 10 times during one upload, each time started again on the same
# port and storage. The client must carry on by itself (reconnect, log in
# again, resume); the file must arrive identical as one session, and the
# chunks the server held when it died must all be held again after its
# restart. Then a graceful stop (SIGTERM) mid-upload and a restart; a kill
# while the upload is being committed; and the state a kill between the
# two steps of storing a file leaves behind.
#
# The kill moments come from bash's RANDOM, seeded from PF_SEED (printed).

# On loopback the upload would be over before the tenth kill: where the
# test may, it runs in a network namespace of its own whose loopback is
# throttled to 256 Mbit/s (a 128 MiB file takes about 4 s, a chunk
# half a second on each of 4 streams); elsewhere (or with PF_NETNS=off)
# several uploads share the kills.
if [ -z "${PF_NETNS:-}" ] && command -v tc >/dev/null 2>&1 &&
    command -v ip >/dev/null 2>&1 && unshare -n true 2>/dev/null; then
	PF_NETNS=1 exec unshare -n bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

throttle_loopback

MIB=$((1024 * 1024))
CHUNK=$((4 * MIB))
THREADS=4
WINDOW=2	# chunks the client keeps in flight per connection
MIN_KILLS=10

SEED=${PF_SEED:-$(date +%s)}
RANDOM=$SEED
echo "# seed $SEED (set PF_SEED=$SEED to replay); throttled loopback:" \
    "$throttled"

export PARAFLOW_STATE_DIR=$T/state
mkdir -p "$PARAFLOW_STATE_DIR"

SERVER_ARGS=(-v --stop-grace 5)

# restart_server: paraflowd again on the same port and storage. The port
# may still be held for a moment, so a failed start is tried again.
restart_server() {
	local i
	for ((i = 0; i < 50; i++)); do
		rm -f "$T/port"
		"$PARAFLOWD" --port "$PORT" --bind 127.0.0.1 --no-http \
		    --storage "$STORAGE" --port-file "$T/port" \
		    --tls-dir "$TLS_DIR" "${SERVER_ARGS[@]}" 2>>"$T/server.log" &
		SERVER_PID=$!
		PIDS+=("$SERVER_PID")
		while ours "$SERVER_PID" && [ ! -s "$T/port" ]
		do
			sleep 0.02
		done
		[ -s "$T/port" ] && return 0
		wait "$SERVER_PID" 2>/dev/null
		sleep 0.1
	done
	echo "# paraflowd did not start again on port $PORT"
	exit 1
}

# kill_server: SIGKILL, unless it died already (once reaped, its PID may
# be another process's).
kill_server() {
	signal_ours KILL "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null
	faults=$((faults + 1))
}

# client_start NAME [ARGS...]: an upload of $T/src as NAME in the
# background; CPID.
client_start() {
	local name=$1
	shift
	"$PARAFLOW" upload --port "$PORT" --quiet --json --file "$T/src" \
	    --name "$name" --threads "$THREADS" --give-up 60 "$@" \
	    >"$T/client.out" 2>>"$T/client.err" &
	CPID=$!
}

# client_wait SECONDS: waits for the client; sets CRC (exit status) and
# COUT, or CRC=timeout. Polled with ours (lib.sh), not kill -0: once the
# client ended and was reaped, its PID may be another process's.
client_wait() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		if ! ours "$CPID"; then
			CRC=0
			wait "$CPID" || CRC=$?
			COUT=$(cat "$T/client.out")
			return 0
		fi
		sleep 0.1
	done
	CRC=timeout
}

# wait_active NAME SECONDS: waits until the current server instance has a
# login sending NAME (opened or resumed since the mark); false if the
# client ended or the time ran out.
wait_active() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		log_since | grep -Eq "(opened by .*\"$1\"|session ${SID:-x} resumed by)" &&
		    return 0
		ours "$CPID" || return 1
		sleep 0.05
	done
	return 1
}

# held_counts SID: the "N of M chunks" the log reports for SID on every
# resume and recovery, N only, in order.
held_counts() {
	grep -E "session $1 (resumed by .* with|recovered: .*,) [0-9]+ of" \
	    "$T/server.log" | sed -E 's/.* ([0-9]+) of [0-9]+ chunks.*/\1/'
}

# shellcheck disable=SC2317 # called through check
# non_decreasing: true if the numbers on stdin never go down.
non_decreasing() {
	awk 'NR > 1 && $1 < prev { bad = 1 } { prev = $1 } END { exit bad }'
}

start_server "${SERVER_ARGS[@]}"

# --- SIGKILL at random moments, at least MIN_KILLS times in one upload
# (with an unthrottled loopback, over as many uploads as it takes).
SIZE=$((128 * MIB))
mkfile "$T/src" "$SIZE"

# kill_round NAME: uploads src as NAME and kills the server under it until
# MIN_KILLS kills in all were made or the upload is done; then checks it.
kill_round() {
	local name=$1 kills=0 staged=0 reruns=0 sid nrec sent bound
	SID=""
	log_mark
	client_start "$name"
	while [ "$faults" -lt "$MIN_KILLS" ]; do
		if ! ours "$CPID"; then
			client_wait 1
			[ "$CRC" = 0 ] && break
			echo "# client ended (exit $CRC) after $kills kills:" \
			    "run again"
			reruns=$((reruns + 1))
			[ "$reruns" -gt 5 ] && break
			client_start "$name"
			continue
		fi
		# 60 s: a restart, TLS and a login of an ASan build on a
		# loaded machine.
		if ! wait_active "$name" 60; then
			ours "$CPID" || continue
			echo "# the client did not come back within 60 s"
			break
		fi
		[ -n "$SID" ] || SID=$(log_since | sed -n \
		    "s/.*session \([0-9a-f-]*\) opened by .*\"$name\".*/\1/p" |
		    head -n 1)
		rand_sleep
		ours "$CPID" || continue
		kill_server
		kills=$((kills + 1))
		# A kill just after the COMMIT leaves nothing to recover.
		if [ -z "$SID" ] || [ -d "$STORAGE/.staging/$SID" ]; then
			staged=$((staged + 1))
		fi
		log_mark
		restart_server
	done
	echo "# $name: $kills kills, $reruns client re-runs; session ${SID:-none}"
	client_wait 120
	if [ "$CRC" != 0 ]; then
		echo "# client: exit $CRC: ${COUT:-}; running it again"
		reruns=$((reruns + 1))
		client_start "$name"
		client_wait 120
	fi
	echo "# $name: final client run: $COUT"
	check_eq "$name: client finished with exit 0" 0 "$CRC"
	check_eq "$name: client carried on by itself (no re-run needed)" 0 \
	    "$reruns"
	sid=$(json_field "$COUT" session)
	check "$name: stored file identical" \
	    verify_stored "$T/src" "$sid" "$name"
	check "$name: state file removed" \
	    bash -c "! grep -rqs '$sid' '$PARAFLOW_STATE_DIR'"
	[ "$kills" -gt 0 ] || return 0
	check_eq "$name: one session across $kills restarts" \
	    "${SID:-none}" "$sid"
	check_eq "$name: the server opened one session for it" 1 \
	    "$(grep -c "opened by .*\"$name\"" "$T/server.log")"
	check "$name: client reports reconnects" \
	    [ "$(json_field "$COUT" reconnects)" -ge 1 ]
	held_counts "$sid" >"$T/held"
	echo "# $name: chunks held at each resume and recovery:" \
	    "$(tr '\n' ' ' <"$T/held")"
	check "$name: chunks held never went down across restarts" \
	    non_decreasing <"$T/held"
	nrec=$(grep -c "session $sid recovered" "$T/server.log")
	check "$name: each restart with it staged recovered it ($nrec of \
$staged)" [ "$nrec" -ge "$staged" ]
	check_eq "$name: last server instance was sent no chunk it held" 0 \
	    "$(meta_field "$sid" chunks_duplicate)"
	sent=$(json_field "$COUT" bytes_sent)
	bound=$((SIZE + kills * THREADS * WINDOW * CHUNK))
	echo "# $name: client sent ${sent:-?} bytes for $SIZE (bound $bound:" \
	    "the chunks in flight on each stream at each kill)"
	if [ "$reruns" = 0 ]; then
		check "$name: client re-sent no more than its chunks in flight" \
		    between "$SIZE" "${sent:-0}" "$bound"
	fi
}

for ((r = 1; r <= 15 && faults < MIN_KILLS; r++)); do
	kill_round "big$r.bin"
done
check "at least $MIN_KILLS SIGKILLs (got $faults in $((r - 1)) uploads)" \
    [ "$faults" -ge "$MIN_KILLS" ]

# --- SIGTERM mid-upload: a graceful stop, then a restart.
mkfile "$T/src" $((64 * MIB))
name=term.bin
SID=""
log_mark
# --limit-rate 8M (8 s): unlimited, a fast machine sent the 64 MiB within
# the 0.5 s below, and nothing was left to resume after the restart. A
# chunk in flight (4 MiB on one of 4 streams) still ends within the
# grace period.
client_start "$name" --limit-rate 8M
if wait_active "$name" 60; then
	sleep 0.5
	t0=$(date +%s%N)
	kill -TERM "$SERVER_PID"
	rc=0
	wait "$SERVER_PID" || rc=$?
	t1=$(date +%s%N)
	faults=$((faults + 1))
	check_eq "SIGTERM mid-upload: server exits 0" 0 "$rc"
	[ "$rc" = 0 ] || log_since | tail -n 40 | sed 's/^/#   /'
	# The 5 s grace, and 5 s for an ASan exit on a loaded machine.
	check "SIGTERM mid-upload: stopped within the grace period" \
	    [ $(((t1 - t0) / 1000000)) -le 10000 ]
	log_mark
	restart_server
else
	not_ok "SIGTERM mid-upload: upload never started"
fi
client_wait 120
echo "# client: $COUT"
check_eq "SIGTERM mid-upload: client exit 0" 0 "$CRC"
sid=$(json_field "$COUT" session)
check "SIGTERM mid-upload: stored file identical" \
    verify_stored "$T/src" "$sid" "$name"
check "SIGTERM mid-upload: the session was resumed after the restart" \
    grep -q "session $sid resumed by" <(log_since)
check_eq "SIGTERM mid-upload: no chunk sent that the server held" 0 \
    "$(meta_field "$sid" chunks_duplicate)"

# --- SIGKILL as the upload is committed: once the journal holds every
# chunk, COMMIT follows within milliseconds. Wherever the kill lands, the
# upload must end identical; if it lands after the file was stored, the
# client's resume finds no session and it uploads the file again.
mkfile "$T/src" $((32 * MIB))
name=commit.bin
log_mark
client_start "$name"
jsid=""
hit=no
for ((i = 0; i < 3000; i++)); do
	[ -n "$jsid" ] || jsid=$(log_since |
	    sed -n "s/.*session \([0-9a-f-]*\) opened by .*\"$name\".*/\1/p")
	if [ -n "$jsid" ]; then
		jsize=$(stat -c %s "$STORAGE/.staging/$jsid/journal" \
		    2>/dev/null || echo gone)
		if [ "$jsize" = gone ] || [ "$jsize" -ge $((8 * 48)) ]; then
			kill_server
			hit=$jsize
			break
		fi
	fi
	ours "$CPID" || break
	sleep 0.005
done
echo "# kill at commit: journal ${hit} bytes when the server was killed"
log_mark
restart_server
client_wait 120
echo "# client: $COUT"
sid=$(json_field "$COUT" session)
if [ "$CRC" = 0 ]; then
	ok "kill at commit: client exit 0"
	check "kill at commit: stored file identical" \
	    verify_stored "$T/src" "$sid" "$name"
else
	check_eq "kill at commit: client exit 0" 0 "$CRC"
fi
copies=0
for f in "$STORAGE"/*/"$name"; do
	[ -f "$f" ] || continue
	copies=$((copies + 1))
	if ! cmp -s "$T/src" "$f"; then
		corrupted=$((corrupted + 1))
		not_ok "kill at commit: $f differs from the source"
	fi
done
echo "# kill at commit: $copies stored copies (2 if the kill came after" \
    "the rename and the client had to start again)"
check "kill at commit: at most two copies, all identical" \
    between 0 "$copies" 2

# --- The state a kill between the two steps of storing a file leaves: the
# final directory and its .paraflow.json exist, the data is still in the
# staging area. A restarted server must still let the session commit.
cat >"$T/sim.py" <<'EOF'
import base64
import sys

import pfwire as w

port, step, base = int(sys.argv[1]), sys.argv[2], sys.argv[3]
CS = 65536
data = b"pf-data " + bytes(range(256)) * 767
c = w.connect(port)
w.hello(c)
key = w.scram_login(c, "paraflow", "secret123")
if step == "open":
    # Every chunk acknowledged, no COMMIT: a client that died just then.
    o = w.open_session(c, "sim.bin", data, chunk_size=CS)
    d = w.connect(port)
    w.join(d, key, o["session"])
    for i in range(o["chunks"]):
        w.send_chunk(d, i, i * CS, data[i * CS:(i + 1) * CS])
        w.expect(d, w.ACK)
    with open(base + ".data", "wb") as f:
        f.write(data)
    print(o["session"])
else:
    sid = sys.argv[4]
    w.send_json(c, w.OPEN, {"name": "sim.bin", "size": len(data),
                            "chunk_size": CS, "resume": sid,
                            "head": base64.b64encode(data[:512])
                            .decode("ascii")})
    try:
        o = w.expect(c, w.OPENED)
        n = o["chunks"]
        digests = [w.chunk_digest(i, i * CS, data[i * CS:(i + 1) * CS])
                   for i in range(n)]
        w.send_json(c, w.COMMIT, {"digest": w.receipt(len(data), CS,
                                                      digests)})
        w.expect(c, w.COMPLETE)
        print("COMPLETE")
    except w.WireError as e:
        print("ERROR %s %s" % (e.name, e.obj))
EOF
pysim() {
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" python3 "$T/sim.py" \
	    "$PORT" "$@"
}
# The raw client speaks the plaintext protocol.
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
SERVER_ARGS+=(--no-tls)
restart_server
tls_mode --no-tls
sid=$(pysim open "$T/sim" 2>"$T/sim.err")
check "crash between mkdir and rename: session with every chunk held" \
    [ -n "$sid" ]
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
mkdir "$STORAGE/$sid"
cp "$STORAGE/.staging/$sid/session.json" "$STORAGE/$sid/.paraflow.json"
log_mark
restart_server
res=$(pysim commit "$T/sim" "$sid" 2>>"$T/sim.err")
echo "# crash between mkdir and rename: COMMIT after restart: $res"
check "crash between mkdir and rename: the session still commits" \
    [ "$res" = COMPLETE ]
check "crash between mkdir and rename: stored file identical" \
    cmp -s "$T/sim.data" "$(stored_file "$sid" sim.bin)"
report_totals

stop_server
done_testing
