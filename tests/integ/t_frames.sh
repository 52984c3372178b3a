#!/bin/bash
# SPDX-License-Identifier: MIT
# Malformed input from a raw client (tests/integ/pfwire.py): damaged
# headers, oversized and non-JSON payloads, frames out of order, bad OPEN
# requests after a real login, and connection floods. Each case runs on a
# fresh connection and must get the right ERROR frame, after which the
# server closes the connection; the server must survive all of it and
# still serve an upload. Last, a silent connection must be closed after
# --idle-timeout.
. "$(dirname "$0")/lib.sh"


command -v python3 >/dev/null 2>&1 || skip_all "python3 not found"

# Frames made by hand: the plaintext protocol. The flood below tests
# --max-connections (256): the login caps, which would refuse most of 300
# connections from one address first, are lifted to it (t_abuse_conns.sh
# tests them).
start_server --no-tls --max-login-connections 256 --max-ip-logins 256

pywire "$PORT" >"$T/frames.out" 2>"$T/frames.err" <<'EOF'
import base64
import json
import os
import socket
import sys
import time

import pfwire as w

port = int(sys.argv[1])
# For an answer or a close that should come at once: 30 s, since an ASan
# build on a loaded machine can be seconds late (a pass never waits).
TIMEOUT = 30.0

def report(good, desc, detail=""):
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)

def fresh():
    """A new connection whose HELLO has been read."""
    s = w.connect(port, timeout=TIMEOUT)
    w.hello(s)
    return s

def login():
    s = fresh()
    w.scram_login(s, "paraflow", "secret123")
    return s

def error_name(sock):
    try:
        return w.error_name(sock)
    except socket.timeout:
        return "no reply within %.0f s" % TIMEOUT

def closed(sock):
    """(True, "") once the server closes sock (EOF or reset)."""
    try:
        data = sock.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return True, ""
    except socket.timeout:
        return False, "still open after %.0f s" % TIMEOUT
    if data:
        return False, "more bytes after the ERROR: %r" % data[:32]
    return True, ""

def expect_error(desc, sock, want):
    """The next frame is ERROR want, and then the connection closes."""
    name = error_name(sock)
    report(name == want, "%s: ERROR %s" % (desc, want), "got " + name)
    shut, why = closed(sock)
    report(shut, "%s: connection closed" % desc, why)
    sock.close()

def raw(desc, data, want):
    s = fresh()
    s.sendall(data)
    expect_error(desc, s, want)

def alive(desc):
    """The server still greets a new connection (retried for TIMEOUT s,
    since freed connection slots are reclaimed asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    why = ""
    while time.monotonic() < deadline:
        try:
            s = fresh()
            s.close()
            report(True, desc)
            return
        except (OSError, w.WireError) as e:
            why = repr(e)
            time.sleep(0.1)
    report(False, desc, why)

def frame(ftype, payload):
    return w.header(ftype, len(payload)) + payload

def b64(b):
    return base64.b64encode(b).decode("ascii")

def bad_check():
    h = bytearray(w.header(w.AUTH, 2))
    h[12] ^= 0xFF
    return bytes(h)

# --- Before login: damaged and refused headers. Only the 16 header bytes
# are sent, so the server never leaves unread bytes behind.
raw("garbage bytes (HTTP request)", b"GET / HTTP/1.1\r\n\r\n", "bad_frame")
raw("wrong magic", w.header(w.AUTH, 2, magic=b"PFLX"), "bad_frame")
raw("wrong check", bad_check(), "bad_frame")
raw("version 2 with a valid check", w.header(w.AUTH, 2, version=2),
    "unsupported_version")
raw("version 0 with a valid check", w.header(w.AUTH, 2, version=0),
    "unsupported_version")
raw("unknown type 99", w.header(99, 2), "bad_frame")
raw("type 0", w.header(0, 2), "bad_frame")
raw("flags 1", w.header(w.AUTH, 2, flags=1), "bad_frame")

# Over the 4 KiB pre-login cap: refused from the header alone. Nothing
# but the header is sent, so a reply at all proves the server did not
# wait for the payload.
raw("pre-login JSON of 4097 bytes, header only", w.header(w.AUTH, 4097),
    "too_large")
raw("length 0xFFFFFFFF", w.header(w.AUTH, 0xFFFFFFFF), "too_large")
# A type only the server sends is refused before its length is looked at.
raw("ERROR frame of 0xFFFFFFFF bytes from the client",
    w.header(w.ERROR, 0xFFFFFFFF), "protocol")
raw("OPENED frame of 240 KB before login (server-only type)",
    w.header(w.OPENED, 240000), "protocol")

# Exactly at the cap is read, and then judged on its content.
pad = 4096 - len('{"mechanism":"PLAIN","message":""}')
at_cap = ('{"mechanism":"PLAIN","message":"%s"}' % ("x" * pad)).encode()
raw("pre-login JSON of exactly 4096 bytes is read", frame(w.AUTH, at_cap),
    "bad_frame")

# --- Before login: payloads.
raw("payload not JSON", frame(w.AUTH, b"hello, world"), "bad_frame")
raw("JSON array instead of object", frame(w.AUTH, b"[1,2,3]"),
    "bad_frame")
raw("JSON string instead of object", frame(w.AUTH, b'"ab"'), "bad_frame")
raw("truncated JSON", frame(w.AUTH, b'{"mechanism":'), "bad_frame")
raw("duplicate JSON keys", frame(w.AUTH, b'{"message":"a","message":"b"}'),
    "bad_frame")
raw("CHUNK before login (header only)",
    w.header(w.CHUNK, 20 + 65536 + 32), "protocol")
s = fresh()
w.send_json(s, w.OPEN, {"name": "a.bin", "size": 10, "chunk_size": 65536,
                        "head": b64(b"0123456789")})
expect_error("OPEN before login", s, "protocol")
s = fresh()
w.send_json(s, w.COMMIT, {"digest": "00" * 32})
expect_error("COMMIT before login", s, "protocol")
s = fresh()
w.send_json(s, w.PROOF, {"message": "c=biws,r=abc,p=AAAA"})
expect_error("PROOF before AUTH", s, "protocol")
s = fresh()
w.send_json(s, w.HELLO, {})
expect_error("HELLO from the client", s, "protocol")
s = fresh()
w.send_json(s, w.AUTH, {"mechanism": "PLAIN",
                        "message": "\u0000paraflow\u0000secret123"})
expect_error("AUTH with mechanism PLAIN", s, "bad_frame")
s = fresh()
w.send_json(s, w.AUTH, {"mechanism": "SCRAM-SHA-256"})
expect_error("AUTH without a message", s, "bad_frame")

# A header cut short, then close: nothing to answer; the server must live.
s = fresh()
s.sendall(b"PFLW\x01")
s.close()
alive("server alive after a truncated header and close")

# --- After login.
s = login()
w.send_json(s, w.OPEN, {"name": "a.bin", "size": 1000, "chunk_size": 1000,
                        "head": b64(os.urandom(512))})
expect_error("OPEN with chunk_size 1000", s, "bad_frame")

s = login()
w.send_json(s, w.OPEN, {"name": "a.bin", "size": 1 << 20,
                        "chunk_size": 3 << 16, "head": b64(os.urandom(512))})
expect_error("OPEN with chunk_size 192 KiB (not a power of two)", s,
             "bad_frame")

s = login()
w.send_json(s, w.OPEN, {"name": "big.bin", "size": (1 << 63) - 1,
                        "chunk_size": 4 << 20,
                        "head": b64(os.urandom(512))})
expect_error("OPEN with size 2^63-1", s, "too_large")

s = login()
w.send_json(s, w.OPEN, {"name": "big.bin", "size": 1 << 63,
                        "chunk_size": 4 << 20,
                        "head": b64(os.urandom(512))})
expect_name = error_name(s)
report(expect_name == "too_large", "OPEN with size 2^63: ERROR too_large",
       "got %s" % expect_name)
shut, why = closed(s)
report(shut, "OPEN with size 2^63: connection closed", why)
s.close()

s = login()
w.send_json(s, w.OPEN, {"name": "big.bin", "size": -1,
                        "chunk_size": 4 << 20, "head": ""})
expect_error("OPEN with size -1", s, "bad_frame")

s = login()
w.send_json(s, w.OPEN, {"name": "a\u0000b", "size": 10,
                        "chunk_size": 65536, "head": b64(b"0123456789")})
expect_error("OPEN with a NUL in the name", s, "bad_name")

s = login()
w.send_json(s, w.OPEN, {"name": "a.bin", "size": 1000,
                        "chunk_size": 65536, "head": b64(b"0123456789")})
expect_error("OPEN with a head shorter than min(size, 512)", s,
             "bad_frame")

s = login()
w.send_json(s, w.OPEN, {"name": "a.bin", "size": 10,
                        "chunk_size": 65536, "head": b64(os.urandom(512))})
expect_error("OPEN with a head longer than the file", s, "bad_frame")

s = login()
w.send_json(s, w.OPEN, {"name": "a.bin", "size": 10, "chunk_size": 65536})
expect_error("OPEN without a head", s, "bad_frame")

s = login()
data = os.urandom(200000)
w.open_session(s, "partial.bin", data, chunk_size=65536)
w.send_json(s, w.COMMIT, {"digest": "00" * 32})
expect_error("COMMIT with chunks missing", s, "protocol")

s = login()
w.open_session(s, "twice.bin", data, chunk_size=65536)
w.send_json(s, w.OPEN, {"name": "b.bin", "size": 10, "chunk_size": 65536,
                        "head": b64(b"0123456789")})
expect_error("a second OPEN on one control connection", s, "protocol")

s = login()
s.sendall(w.header(w.CHUNK, 20 + 65536 + 32))
expect_error("CHUNK on a control connection (header only)", s, "protocol")

s = login()
s.sendall(w.header(w.COMMIT, 65537))
expect_error("post-login JSON of 65537 bytes, header only", s,
             "too_large")

# OPEN alone may carry a transfer's manifest: up to 8 MiB, not one more.
s = login()
s.sendall(w.header(w.OPEN, 8 * 1024 * 1024 + 1))
expect_error("post-login OPEN of 8 MiB + 1 bytes, header only", s,
             "too_large")

# --- Floods. 300 connections at once: over the limit of 256 the server
# answers busy; each gets HELLO or ERROR busy, and then all close.
socks = []
for i in range(300):
    socks.append(w.connect(port, timeout=TIMEOUT))
hellos = busy = other = 0
for c in socks:
    try:
        ftype, obj = w.recv_json(c)
    except (OSError, w.WireError) as e:
        ftype, obj = None, repr(e)
    if ftype == w.HELLO:
        hellos += 1
    elif ftype == w.ERROR and obj.get("name") == "busy":
        busy += 1
    else:
        other += 1
for c in socks:
    c.close()
report(hellos + busy == 300,
       "300 connections at once: each gets HELLO or busy",
       "%d HELLO, %d busy, %d other" % (hellos, busy, other))
report(hellos >= 200, "300 connections at once: most are served",
       "%d HELLO, %d busy" % (hellos, busy))
alive("server alive after 300 connections at once")

# 300 more, opened and closed one after the other without a word.
for i in range(300):
    w.connect(port, timeout=TIMEOUT).close()
alive("server alive after 300 connections opened and closed quickly")

print("END", flush=True)
EOF
rc=$?
check_eq "raw client script ran to the end" 0 "$rc"
[ "$rc" = 0 ] || sed 's/^/# /' "$T/frames.err"
check "raw client script finished" grep -qx END "$T/frames.out"

tap_from "$T/frames.out"

# The server is still alive and serves a real upload.
mkfile "$T/src" $((2 * 1024 * 1024 + 17))
out=$(upload --file "$T/src" --name after.bin --threads 4 --json)
check_eq "server still serves an upload" "$(sha "$T/src")" \
    "$(sha "$(stored_file "$(json_field "$out" session)" after.bin)" \
    2>/dev/null)"
check_eq "only that upload was stored" 1 "$(stored_count | tr -d ' ')"
# Refused OPENs leave nothing; the two sessions whose control connection
# went away (partial.bin, twice.bin) stay, to be resumed.
check_eq "staging holds only the two abandoned, resumable sessions" 2 \
    "$(find "$STORAGE/.staging" -mindepth 1 -maxdepth 1 -type d | wc -l)"
check_eq "their metadata is there" 2 \
    "$(grep -l -e partial.bin -e twice.bin \
    "$STORAGE"/.staging/*/session.json | wc -l)"
stop_server

# --- A connection that sends nothing is closed after --idle-timeout.
start_server --no-tls --idle-timeout 2
pywire "$PORT" >"$T/idle.out" 2>"$T/idle.err" <<'EOF'
import socket
import sys
import time

import pfwire as w

s = w.connect(sys.argv[1], timeout=8)
w.hello(s)
t0 = time.monotonic()
try:
    data = s.recv(1)
except ConnectionResetError:
    data = b""
except socket.timeout:
    data = None
print("eof" if data == b"" else "open", "%.2f" % (time.monotonic() - t0))
EOF
read -r state secs <"$T/idle.out"
check_eq "silent connection: closed by the server" eof "$state"
# Under 9 s, not the 10 s default: the log line below names the 2 s rule;
# a loaded machine may be seconds late on it.
check "silent connection: closed after about 2 s (took ${secs:-?} s)" \
    awk -v s="${secs:-99}" 'BEGIN { exit !(s >= 1.0 && s < 9.0) }'
check "server logs the close (in its summary of late logins)" \
    wait_for 30 grep -q 'closed 1 connections that did not log in within 2 s' \
    "$T/server.log"
stop_server

done_testing
