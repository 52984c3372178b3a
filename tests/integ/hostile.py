# SPDX-License-Identifier: MIT
"""A hostile ParaFlow server, for tests of what the client prints.

    python3 hostile.py MODE PORTFILE

It listens on 127.0.0.1 (an ephemeral port, written to PORTFILE), speaks
the plaintext protocol well enough for "paraflow upload --no-tls" (HELLO,
a real SCRAM-SHA-256 login for any user with the password "secret123",
OPEN, JOIN, CHUNK, COMMIT) and puts TEXT, which holds terminal escapes,
bidi controls and a newline, where MODE says:

    auth      an ERROR to the login
    open      an ERROR to OPEN
    busy      a "busy" ERROR to every other OPEN (retried), then "open"
    name      the stored name in OPENED and COMPLETE; the upload succeeds
    session   a session id of the right length that is not an id

"python3 hostile.py text" prints ascii(TEXT), for comparisons.
"""

import base64
import hashlib
import hmac
import json
import os
import socketserver
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pfwire  # noqa: E402

PASSWORD = b"secret123"
TEXT = ("\x1b]0;owned\x07\x1b[31mred\u202eexe.txt\u2066\u200f"
        "\u009b2J\nforged line\r\\x41")
SID = "0a1b2c3d-0000-4000-8000-00000000abcd"
# 36 bytes, as an id, but none: an ESC sequence and a newline.
BAD_SID = "\x1b[2J\x1b]0;x\x07\nforged-" + "0" * 21
MODE = sys.argv[1]
if MODE == "text":
    print(ascii(TEXT))
    sys.exit(0)
opens = 0
lock = threading.Lock()


def hm(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def error(sock, code, name, message):
    pfwire.send_json(sock, pfwire.ERROR, {"code": code, "name": name,
                                          "message": message})


def login(sock, first):
    """The server side of SCRAM-SHA-256 (no channel binding)."""
    gs2, _, first_bare = first["message"].partition("n=")
    first_bare = "n=" + first_bare
    attrs = dict(a.split("=", 1) for a in first_bare.split(","))
    nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
    salt = os.urandom(16)
    server_first = "r=%s,s=%s,i=4096" % (nonce,
                                         base64.b64encode(salt).decode())
    pfwire.send_json(sock, pfwire.CHALLENGE, {"message": server_first})
    ftype, proof = pfwire.recv_json(sock)
    final_bare = proof["message"].rsplit(",p=", 1)[0]
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD, salt, 4096)
    auth = ",".join((first_bare, server_first, final_bare)).encode()
    sig = hm(hm(salted, b"Server Key"), auth)
    pfwire.send_json(sock, pfwire.AUTH_OK,
                     {"message": "v=" + base64.b64encode(sig).decode()})
    del gs2, ftype


def on_open(sock, req):
    global opens
    with lock:
        opens += 1
        n = opens
    if MODE == "open" or (MODE == "busy" and n % 2 == 0):
        error(sock, 12, "bad_name", TEXT)
        return False
    if MODE == "busy":
        error(sock, 8, "busy", TEXT)
        return False
    cs = req["chunk_size"]
    chunks = max(1, (req["size"] + cs - 1) // cs)
    pfwire.send_json(sock, pfwire.OPENED, {
        "session": BAD_SID if MODE == "session" else SID,
        "chunks": chunks, "chunk_size": cs,
        "name": TEXT if MODE == "name" else req["name"],
        "resumed": False,
        "have": base64.b64encode(bytes((chunks + 7) // 8)).decode()})
    req["chunks"] = chunks
    return True


class Conn(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        pfwire.send_json(sock, pfwire.HELLO, {
            "server": "hostile", "version": 1,
            "nonce": base64.b64encode(os.urandom(18)).decode(),
            "mechanisms": ["SCRAM-SHA-256"]})
        opened = None
        try:
            while True:
                ftype, payload = pfwire.recv_frame(sock)
                if ftype == pfwire.CHUNK:
                    index = struct.unpack(">Q", payload[:8])[0]
                    pfwire.send_frame(sock, pfwire.ACK,
                                      struct.pack(">Q", index))
                    continue
                req = json.loads(payload or b"{}")
                if ftype == pfwire.AUTH and MODE == "auth":
                    error(sock, 1, "auth_failed", TEXT)
                    return
                if ftype == pfwire.AUTH:
                    login(sock, req)
                elif ftype == pfwire.OPEN:
                    if not on_open(sock, req):
                        return
                    opened = req
                elif ftype == pfwire.JOIN:
                    pfwire.send_json(sock, pfwire.JOINED,
                                     {"session": req["session"]})
                elif ftype == pfwire.COMMIT:
                    pfwire.send_json(sock, pfwire.COMPLETE, {
                        "session": SID, "name": TEXT,
                        "size": opened["size"], "digest": req["digest"],
                        "path": SID + "/" + TEXT})
                else:
                    return
        except (pfwire.WireError, OSError, ValueError, KeyError):
            return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Conn)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
srv.serve_forever()
