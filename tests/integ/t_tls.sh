#!/bin/bash
# SPDX-License-Identifier: MIT
# TLS on the native port, with a real paraflowd and real sockets: on by
# default; the fingerprint; trust on first use, a changed key refused and
# accepted again once its line is deleted; --pin; --cacert with host
# names and certificate dates; TLS against plaintext both ways; one full
# handshake for N streams; what an eavesdropper records; bits flipped in
# the TLS stream; a man in the middle with his own certificate.
. "$(dirname "$0")/lib.sh"

command -v openssl >/dev/null 2>&1 || skip_all "openssl not found"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"
MITM="$here/../tools/mitm.py"
MIB=$((1024 * 1024))

# tupload ARGS...: an upload to the test server with $T/known's trust,
# not quiet (the first-use note is on stderr); RC, OUT, ERR.
tupload() {
	run env PARAFLOW_STATE_DIR="$T/known" "$PARAFLOW" upload \
	    --port "$PORT" --json "$@"
}

# openssl_pin CERT: the pin as curl's documentation computes it.
openssl_pin() {
	printf 'sha256//%s' "$(openssl x509 -in "$1" -pubkey -noout |
	    openssl pkey -pubin -outform der |
	    openssl dgst -sha256 -binary | base64 -w0)"
}

# start_on_port PORT ARGS...: paraflowd again on a given port (it may be
# held a moment after the last one stopped).
start_on_port() {
	local port=$1 i
	shift
	for ((i = 0; i < 50; i++)); do
		rm -f "$T/port"
		"$PARAFLOWD" --port "$port" --bind 127.0.0.1 --no-http -v \
		    --storage "$STORAGE" --port-file "$T/port" "$@" \
		    2>>"$T/server.log" &
		SERVER_PID=$!
		PIDS+=("$SERVER_PID")
		while kill -0 "$SERVER_PID" 2>/dev/null &&
		    [ ! -s "$T/port" ]; do
			sleep 0.02
		done
		[ -s "$T/port" ] && { PORT=$port; return 0; }
		wait "$SERVER_PID" 2>/dev/null
		sleep 0.1
	done
	echo "# paraflowd did not start on port $port"
	exit 1
}

# mkcert NAME SAN [START END]: a self-signed P-256 certificate for SAN in
# $T/NAME.pem and its key in $T/NAME.key; valid from START to END
# (YYYYMMDDHHMMSSZ) if given, else for 30 days from now.
mkcert() {
	local d=$T/ca-$1
	if [ $# -eq 2 ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -keyout "$T/$1.key" -out "$T/$1.pem" -days 30 \
		    -subj /CN=localhost -addext "subjectAltName=$2" \
		    2>/dev/null
		return
	fi
	mkdir -p "$d"
	: >"$d/index.txt"
	echo 01 >"$d/serial"
	cat >"$d/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $d/index.txt
new_certs_dir = $d
serial = $d/serial
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
[ext]
subjectAltName = $2
EOF
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$T/$1.key" -out "$d/req.csr" -subj /CN=localhost \
	    2>/dev/null &&
	    openssl ca -batch -selfsign -config "$d/ca.cnf" -extensions ext \
	    -keyfile "$T/$1.key" -in "$d/req.csr" -out "$T/$1.pem" \
	    -startdate "$3" -enddate "$4" -notext 2>/dev/null
}

mkfile "$T/f" $((2 * MIB))

# --- On by default; the fingerprint ------------------------------------

start_server -v --no-http
fp=$(server_pin)
check_eq "paraflowd --fingerprint is curl's pin of the certificate" \
    "$(openssl_pin "$TLS_DIR/cert.pem")" "$fp"
check "the server logs its fingerprint" grep -qF "$fp" "$T/server.log"

tupload --file "$T/f" --name first.bin
check_eq "first connection: exit 0" 0 "$RC"
check "first connection: the client prints the key it accepted" \
    grep -qF "accepted its key $fp" "$T/err"
check_eq "first connection: the key is recorded in known_servers" \
    "127.0.0.1:$PORT $fp" "$(grep -v '^#' "$T/known/known_servers")"
sid=$(json_field "$OUT" session)
check "first connection: stored identical" \
    cmp -s "$T/f" "$(stored_file "$sid" first.bin)"
tupload --file "$T/f" --name second.bin
check_eq "known server: exit 0" 0 "$RC"
check_eq "known server: no note on stderr" "" "$ERR"

# --- N streams, one full handshake -------------------------------------

mkfile "$T/g" $((8 * MIB))
log_mark
tupload --file "$T/g" --name streams.bin --threads 8 --chunk-size 256K
check_eq "8 streams: exit 0" 0 "$RC"
full=$(log_since | grep -c 'TLS 1.3, full handshake')
resumed=$(log_since | grep -c 'TLS 1.3, resumed')
echo "# 8 streams: $full full handshake(s), $resumed resumed"
check_eq "8 streams and the control connection: one full handshake" 1 \
    "$full"
check_eq "... and 8 resumed ones" 8 "$resumed"

# --- Frames by hand over TLS (pfwire's TLS mode; before any login) -------

PFWIRE_TLS=1 pywire "$PORT" >"$T/wire.out" 2>"$T/wire.err" <<'EOF'
import sys
import pfwire as w

c = w.connect(sys.argv[1])
print("hello", w.expect(c, w.HELLO)["version"])
w.send_frame(c, w.AUTH, b"not json")
try:
    w.expect(c, w.CHALLENGE)
except w.WireError as e:
    print("error", e.name)
EOF
check_eq "pfwire over TLS: HELLO, version 1" "hello 1" \
    "$(sed -n 1p "$T/wire.out")"
check_eq "pfwire over TLS: a bad payload gets ERROR bad_frame" \
    "error bad_frame" "$(sed -n 2p "$T/wire.out")"

# --- --pin ---------------------------------------------------------------

run "$PARAFLOW" upload --port "$PORT" --quiet --pin "$fp" --file "$T/f" \
    --name pinned.bin
check_eq "--pin with the server's key: exit 0" 0 "$RC"
before=$(stored_count)
wrong=sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
run "$PARAFLOW" upload --port "$PORT" --quiet --pin "$wrong" --file "$T/f"
check_eq "--pin with another key: exit 3" 3 "$RC"
# shellcheck disable=SC2016 # expanded by eval
check "--pin with another key: both keys named" \
    eval 'grep -qF "$fp" "$T/err" && grep -qF "$wrong" "$T/err"'
check_eq "--pin with another key: nothing stored" "$before" \
    "$(stored_count)"
run "$PARAFLOW" upload --port "$PORT" --quiet --pin nonsense --file "$T/f"
check_eq "--pin that is no pin: exit 2" 2 "$RC"

# --- --cacert with the server's own certificate --------------------------

run "$PARAFLOW" upload --port "$PORT" --quiet --cacert "$TLS_DIR/cert.pem" \
    --file "$T/f" --name ca.bin
check_eq "--cacert with the self-signed certificate, 127.0.0.1: exit 0" \
    0 "$RC"
run "$PARAFLOW" upload --host localhost --port "$PORT" --quiet \
    --cacert "$TLS_DIR/cert.pem" --file "$T/f" --name ca2.bin
check_eq "--cacert, host localhost: exit 0" 0 "$RC"

# --- A TLS client against a plaintext server, and the reverse ------------

port=$PORT
stop_server
before=$(stored_count)
start_on_port "$port" --no-tls
tupload --file "$T/f" --name mismatch.bin
check_eq "TLS client, --no-tls server: exit 8" 8 "$RC"
check "TLS client, --no-tls server: says the server speaks plaintext" \
    grep -q 'the server speaks plaintext.*--no-tls' "$T/out"
check_eq "TLS client, --no-tls server: nothing stored" "$before" \
    "$(stored_count)"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"

start_on_port "$port" --tls-dir "$TLS_DIR"
run "$PARAFLOW" upload --port "$PORT" --quiet --no-tls --file "$T/f"
check_eq "--no-tls client, TLS server: exit 8" 8 "$RC"
check "--no-tls client, TLS server: the server's words are shown" \
    grep -q 'this server speaks TLS: drop --no-tls' "$T/err"
check_eq "--no-tls client, TLS server: nothing stored" "$before" \
    "$(stored_count)"
check "--no-tls client, TLS server: the server logs it" \
    grep -q 'a plaintext client on the TLS port' "$T/server.log"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"

# Refused handshakes are a peer's to cause at will: at most 10 lines per
# --login-log-interval, then one line counting the others.
start_on_port "$port" --tls-dir "$TLS_DIR" --login-log-interval 5
log_mark
# plain N: N plaintext clients, one after another, each told it is wrong.
plain() {
	python3 - "$PORT" "$1" <<'EOF'
import socket, sys
for _ in range(int(sys.argv[2])):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    try:
        s.sendall(b"\x00" * 16)
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass    # closed with our bytes unread: a reset
    s.close()
EOF
}
t0=$(date +%s)
plain 40
# 10 for each interval begun meanwhile (one, unless the machine is slow).
most=$((10 * (($(date +%s) - t0) / 5 + 1)))
n=$(log_since | grep -c 'a plaintext client on the TLS port')
check "40 plaintext clients: 1 to $most lines for them ($n)" \
    test "$n" -ge 1 -a "$n" -le "$most" -a "$n" -lt 40
sleep 5.5	# the interval is over: the next one brings the count
plain 1
check "then a line counts the others" grep -qE \
    '[0-9]+ more refused handshakes and join proofs in the last [0-9]+ s' \
    <(log_since)
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"

# --- The server comes back with another key -----------------------------

start_on_port "$port" --tls-dir "$T/tls2"
fp2=$(server_pin "$T/tls2")
tupload --file "$T/f" --name changed.bin
check_eq "changed key: exit 3" 3 "$RC"
# shellcheck disable=SC2016 # expanded by eval
check "changed key: the message names both keys" \
    eval 'grep -qF "$fp" "$T/out" && grep -qF "$fp2" "$T/out"'
check "changed key: the message names the line to delete" \
    grep -qE "sed -i '[0-9]+d' $T/known/known_servers" "$T/out"
check_eq "changed key: nothing stored" "$before" "$(stored_count)"
sed -i "/^127.0.0.1:$port /d" "$T/known/known_servers"
tupload --file "$T/f" --name changed.bin
check_eq "line deleted: the new key is accepted, exit 0" 0 "$RC"
check "line deleted: the new key is recorded" \
    grep -qF "127.0.0.1:$port $fp2" "$T/known/known_servers"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"

# --- --cacert: host names and dates -------------------------------------

mkcert valid DNS:localhost
mkcert expired DNS:localhost,IP:127.0.0.1 20200101000000Z 20210101000000Z
mkcert early DNS:localhost,IP:127.0.0.1 20990101000000Z 21000101000000Z
start_on_port "$port" --tls-cert "$T/valid.pem" --tls-key "$T/valid.key"
run "$PARAFLOW" upload --host localhost --port "$PORT" --quiet \
    --cacert "$T/valid.pem" --file "$T/f" --name valid.bin
check_eq "--cacert, the name in the certificate: exit 0" 0 "$RC"
before=$(stored_count)
run "$PARAFLOW" upload --host 127.0.0.1 --port "$PORT" --quiet \
    --cacert "$T/valid.pem" --file "$T/f"
check_eq "--cacert, a name not in the certificate: exit 3" 3 "$RC"
check_eq "--cacert, wrong name: nothing stored" "$before" "$(stored_count)"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
for c in expired early; do
	start_on_port "$port" --tls-cert "$T/$c.pem" --tls-key "$T/$c.key"
	run "$PARAFLOW" upload --port "$PORT" --quiet --cacert "$T/$c.pem" \
	    --file "$T/f"
	check_eq "--cacert, $c certificate: exit 3" 3 "$RC"
	check "--cacert, $c certificate: the client says why" \
	    grep -qi 'certificate' "$T/err"
	check_eq "--cacert, $c certificate: nothing stored" "$before" \
	    "$(stored_count)"
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID"
done

# --- What an eavesdropper records ---------------------------------------
#
# A relay records every byte of every connection of an upload of a random
# file under a secret name, with a secret password: over TLS none of them
# may show; over --no-tls the same check must find them.

U=$T/users
pw="Pw-$$-$RANDOM-x"
printf '%s\n' "$pw" | "$PARAFLOWD" --users "$U" --add-user alice 2>/dev/null
mkfile "$T/r" $((512 * 1024))

# leaks RECORDING NAME: prints what of the file, name and password shows.
leaks() {
	python3 - "$1" "$T/r" "$2" "$pw" <<'EOF'
import sys
rec = open(sys.argv[1], "rb").read()
data = open(sys.argv[2], "rb").read()
found = []
for what, s in (("name", sys.argv[3]), ("password", sys.argv[4])):
    if s.encode() in rec:
        found.append(what)
wins = {data[i:i + 32] for i in range(len(data) - 31)}
if any(rec[i:i + 32] in wins for i in range(len(rec) - 31)):
    found.append("file")
print(" ".join(found))
EOF
}

# recorded ARGS...: an upload through the recording relay; the recording
# is $T/rec; RC.
recorded() {
	rm -f "$T/rec" "$T/mport"
	python3 "$MITM" --target-port "$PORT" --port-file "$T/mport" \
	    --record "$T/rec" 2>>"$T/mitm.err" &
	mitm_pid=$!
	PIDS+=("$mitm_pid")
	wait_file "$T/mport" 60
	run env PARAFLOW_STATE_DIR="$T/known" "$PARAFLOW" upload --quiet \
	    --port "$(cat "$T/mport")" --user alice --secret "$pw" \
	    --file "$T/r" --chunk-size 64K --threads 4 "$@"
	signal_ours TERM "$mitm_pid"
	wait "$mitm_pid" 2>/dev/null
}

start_on_port "$port" --tls-dir "$TLS_DIR" --users "$U"
name="hidden-name-$RANDOM.bin"
recorded --name "$name"
check_eq "recorded upload over TLS: exit 0" 0 "$RC"
check "recorded upload over TLS: bytes were recorded" [ -s "$T/rec" ]
check_eq "over TLS: no 32 bytes of the file, nor the name, nor the password" \
    "" "$(leaks "$T/rec" "$name")"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
start_on_port "$port" --no-tls --users "$U"
recorded --name "$name" --no-tls
check_eq "recorded upload over --no-tls: exit 0" 0 "$RC"
check_eq "over --no-tls the same check finds the file and the name" \
    "name file" "$(leaks "$T/rec" "$name")"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"

# --- Bits flipped in the TLS stream -------------------------------------
#
# pfproxy flips a byte 300 kB into the second and third connections (data
# connections): the record fails its check, the connection dies, the
# client connects again and the file arrives identical.

start_on_port "$port" --tls-dir "$TLS_DIR"
log_mark
start_proxy --corrupt-at 300000 --corrupt-conns 3
mkfile "$T/b" $((4 * MIB))
pupload --file "$T/b" --name flipped.bin --threads 2 --chunk-size 256K
check_eq "flipped bits in TLS: exit 0" 0 "$RC"
sid=$(json_field "$OUT" session)
check "flipped bits in TLS: stored identical" \
    cmp -s "$T/b" "$(stored_file "$sid" flipped.bin)"
check "flipped bits in TLS: the client reconnected" \
    [ "$(json_field "$OUT" reconnects)" -gt 0 ]
stop_proxy

# --- A man in the middle with his own certificate ------------------------

mkcert mitm DNS:localhost,IP:127.0.0.1
rm -f "$T/mport" "$T/mrec"
python3 "$MITM" --target-port "$PORT" --port-file "$T/mport" \
    --record "$T/mrec" --tls-cert "$T/mitm.pem" --tls-key "$T/mitm.key" \
    2>>"$T/mitm.err" &
PIDS+=("$!")
wait_file "$T/mport" 60
mport=$(cat "$T/mport")
mitm_pin=$(python3 "$MITM" --print-pin --tls-cert "$T/mitm.pem")
check_eq "the relay prints its own pin" "$(openssl_pin "$T/mitm.pem")" \
    "$mitm_pin"
before=$(stored_count)
log_mark
run "$PARAFLOW" upload --port "$mport" --quiet --pin "$fp" --file "$T/f"
check_eq "man in the middle, --pin of the real server: exit 3" 3 "$RC"
echo "127.0.0.1:$mport $fp" >>"$T/known/known_servers"
tupload --port "$mport" --file "$T/f"
check_eq "man in the middle, known server: exit 3" 3 "$RC"
# What the relay decrypted from the client holds no frame (each starts
# with the magic PFLW).
# shellcheck disable=SC2016 # expanded by eval
check "man in the middle: the client sent no frame of the protocol" \
    eval '! grep -q PFLW "$T/mrec" 2>/dev/null'
check_eq "man in the middle: no login reached the server" 0 \
    "$(log_since | grep -c 'login\|opened by')"
check_eq "man in the middle: nothing stored" "$before" "$(stored_count)"
# With the relay trusted (the client was tricked into its pin), the login
# it relays still fails: SCRAM-SHA-256-PLUS binds the proof to the
# client's TLS channel, which is not the one the server sees.
before=$(stored_count)
log_mark
run "$PARAFLOW" upload --port "$mport" --quiet --pin "$mitm_pin" \
    --file "$T/f" --name relayed.bin
check_eq "relayed login, the relay's pin trusted: exit 3" 3 "$RC"
check "relayed login: the server saw a failed login" \
    eval 'log_since | grep -q "login failed"'
check_eq "relayed login: no session opened" 0 \
    "$(log_since | grep -c 'opened by')"
check_eq "relayed login: nothing stored" "$before" "$(stored_count)"

stop_server
done_testing
