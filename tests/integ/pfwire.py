# SPDX-License-Identifier: MIT
"""A minimal client of the ParaFlow native protocol, for the tests.

It speaks docs/protocol.md frame by frame so a test can do what the real
client never does: send a wrong proof, lie about a file's head, or stop
half-way. Nothing here checks more than a test needs; a frame the caller
did not expect raises WireError, which carries the ERROR frame's JSON.

    import pfwire
    c = pfwire.connect(port)
    pfwire.hello(c)
    key = pfwire.scram_login(c, "paraflow", "secret123")
    opened = pfwire.open_session(c, "a.bin", data)
    d = pfwire.connect(port)
    pfwire.join(d, key, opened["session"])
    pfwire.send_chunk(d, 0, 0, data)
    pfwire.expect(d, pfwire.ACK)

Only the standard library is used (python3 in scripts/deps.sh).
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct

MAGIC = b"PFLW"
VERSION = 1
HEADER_LEN = 16
DEFAULT_CHUNK = 4 * 1024 * 1024
HEAD_LEN = 512

(HELLO, AUTH, CHALLENGE, PROOF, AUTH_OK, OPEN, OPENED, JOIN, JOINED, CHUNK,
 ACK, NACK, COMMIT, COMPLETE, ABORT, ERROR) = range(1, 17)

NAMES = {1: "HELLO", 2: "AUTH", 3: "CHALLENGE", 4: "PROOF", 5: "AUTH_OK",
         6: "OPEN", 7: "OPENED", 8: "JOIN", 9: "JOINED", 10: "CHUNK",
         11: "ACK", 12: "NACK", 13: "COMMIT", 14: "COMPLETE", 15: "ABORT",
         16: "ERROR"}

# Frames whose payload is not JSON.
BINARY = (CHUNK, ACK, NACK)


class WireError(Exception):
    """An unexpected frame (ERROR included) or a damaged one.

    ftype is the frame type received (None for a damaged header or a
    closed connection), obj its decoded payload, and name the ERROR
    frame's "name" ("auth_failed", ...), "eof" for a closed connection,
    or the received frame's type name otherwise.
    """

    def __init__(self, ftype, obj, name):
        super().__init__("%s: %r" % (name, obj))
        self.ftype = ftype
        self.obj = obj
        self.name = name


def header(ftype, length, version=VERSION, flags=0, magic=MAGIC):
    """The 16-byte frame header; the check is computed over bytes 0..11."""
    first = struct.pack(">4sBBHI", magic, version, ftype, flags, length)
    return first + hashlib.sha256(first).digest()[:4]


def connect(port, host="127.0.0.1", timeout=10.0, tls=None, source=None):
    """A connection to the server; the caller reads HELLO next.

    With tls (default: PFWIRE_TLS=1 in the environment) it runs TLS 1.3
    first, trusting any certificate: the tests check frames here, and the
    server's key elsewhere. source is the local address to connect from
    (any of 127.0.0.0/8 on loopback), for tests of per-address limits.
    """
    sock = socket.create_connection(
        (host, int(port)), timeout=timeout,
        source_address=(source, 0) if source else None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is None:
        tls = os.environ.get("PFWIRE_TLS") == "1"
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock, server_hostname=host)
    return sock


def send_frame(sock, ftype, payload=b""):
    sock.sendall(header(ftype, len(payload)) + payload)


def send_json(sock, ftype, obj):
    send_frame(sock, ftype, json.dumps(obj, separators=(",", ":"))
               .encode("utf-8"))


def recv_exact(sock, n):
    """n bytes, or WireError "eof" if the peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        try:
            part = sock.recv(n - len(buf))
        except ConnectionResetError:
            part = b""
        if not part:
            raise WireError(None, bytes(buf), "eof")
        buf += part
    return bytes(buf)


def recv_frame(sock):
    """(type, payload bytes) of the next frame; checks magic and check."""
    h = recv_exact(sock, HEADER_LEN)
    if h[:4] != MAGIC or hashlib.sha256(h[:12]).digest()[:4] != h[12:]:
        raise WireError(None, h, "damaged header")
    _, _, ftype, _, length = struct.unpack(">4sBBHI", h[:12])
    return ftype, recv_exact(sock, length)


def decode(ftype, payload):
    """JSON frames as objects; ACK and NACK as the index; CHUNK as bytes."""
    if ftype in (ACK, NACK) and len(payload) == 8:
        return struct.unpack(">Q", payload)[0]
    if ftype in BINARY:
        return payload
    return json.loads(payload.decode("utf-8"))


def recv_json(sock):
    """(type, decoded payload) of the next frame."""
    ftype, payload = recv_frame(sock)
    return ftype, decode(ftype, payload)


def expect(sock, ftype):
    """The decoded payload of the next frame, which must be of ftype."""
    got, obj = recv_json(sock)
    if got != ftype:
        if got == ERROR:
            raise WireError(got, obj, obj.get("name", "ERROR"))
        raise WireError(got, obj, NAMES.get(got, str(got)))
    return obj


def error_name(sock):
    """The next frame's ERROR name, the type name of another frame, or
    "eof" if the server closes without one."""
    try:
        ftype, obj = recv_json(sock)
    except WireError as e:
        return e.name
    if ftype == ERROR:
        return obj.get("name", "ERROR")
    return NAMES.get(ftype, str(ftype))


def hello(sock):
    """Reads HELLO; returns the raw nonce bytes a JOIN proof covers."""
    obj = expect(sock, HELLO)
    return base64.b64decode(obj["nonce"], validate=True)


def _hmac(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


def _attrs(message):
    """{"r": ..., "s": ...} from "r=...,s=...,i=..."."""
    return dict(a.split("=", 1) for a in message.split(","))


def scram_login(sock, user, password, cnonce=None, gs2="n,,",
                mechanism="SCRAM-SHA-256"):
    """SCRAM-SHA-256 login on a plaintext connection whose HELLO was read.

    gs2 is the GS2 header sent: "n,," (no binding), "y,," (a client that
    could bind but thinks the server cannot; fine on plaintext) or another
    to test refusals; the client-final's c= is its base64. Returns the
    session key K = HMAC(ClientKey, "paraflow session key" || AuthMessage).
    Raises WireError (name "auth_failed" for a wrong user or password) and
    ValueError if the server's signature is wrong.
    """
    if cnonce is None:
        cnonce = base64.b64encode(os.urandom(18)).decode("ascii")
    first_bare = "n=%s,r=%s" % (user, cnonce)
    send_json(sock, AUTH, {"mechanism": mechanism,
                           "message": gs2 + first_bare})
    server_first = expect(sock, CHALLENGE)["message"]
    a = _attrs(server_first)
    if not a["r"].startswith(cnonce) or len(a["r"]) <= len(cnonce):
        raise ValueError("server nonce does not extend ours")
    salt = base64.b64decode(a["s"])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt,
                                 int(a["i"]))
    client_key = _hmac(salted, b"Client Key")
    stored_key = hashlib.sha256(client_key).digest()
    final_bare = "c=%s,r=%s" % (
        base64.b64encode(gs2.encode("ascii")).decode("ascii"), a["r"])
    auth_message = ",".join((first_bare, server_first, final_bare)) \
        .encode("utf-8")
    signature = _hmac(stored_key, auth_message)
    proof = bytes(x ^ y for x, y in zip(client_key, signature))
    send_json(sock, PROOF, {"message": "%s,p=%s" % (
        final_bare, base64.b64encode(proof).decode("ascii"))})
    server_final = expect(sock, AUTH_OK)["message"]
    server_key = _hmac(salted, b"Server Key")
    want = base64.b64encode(_hmac(server_key, auth_message)).decode("ascii")
    if server_final != "v=" + want:
        raise ValueError("server signature is wrong")
    return _hmac(client_key, b"paraflow session key" + auth_message)


def open_session(sock, name, data, chunk_size=DEFAULT_CHUNK, head=None,
                 size=None):
    """Sends OPEN for data (bytes) and returns the OPENED object.

    head and size default to what data really holds; pass others to lie.
    """
    if size is None:
        size = len(data)
    if head is None:
        head = data[:HEAD_LEN]
    send_json(sock, OPEN, {"name": name, "size": size,
                           "chunk_size": chunk_size,
                           "head": base64.b64encode(head).decode("ascii")})
    return expect(sock, OPENED)


def join_proof(key, session_id, nonce):
    """HMAC-SHA-256(K, "paraflow join" || session id || HELLO nonce)."""
    return _hmac(key, b"paraflow join" + session_id.encode("ascii") + nonce)


def send_join(sock, session_id, proof):
    """Sends JOIN with proof (raw bytes, base64-encoded here)."""
    send_json(sock, JOIN, {"session": session_id,
                           "proof": base64.b64encode(proof).decode("ascii")})


def join(sock, key, session_id, nonce=None):
    """Reads HELLO (unless nonce is given), joins, returns JOINED."""
    if nonce is None:
        nonce = hello(sock)
    send_join(sock, session_id, join_proof(key, session_id, nonce))
    return expect(sock, JOINED)


def chunk_digest(index, offset, data):
    """SHA-256("PFC1" || u64 index || u64 offset || u32 length || data)."""
    return hashlib.sha256(b"PFC1" + struct.pack(">QQI", index, offset,
                                                len(data)) + data).digest()


def pieces_digest(index, offset, data, spans, cs):
    """PFC2, a transfer's chunk hashed in pieces (docs/protocol.md).

    spans: (offset, size) of the files with bytes, sorted; cs the chunk
    size. The chunk is cut where a file starts or ends and where one of
    its own chunks (the file cut alone in cs chunks) does; an own chunk
    j whole in it is hashed as such, "PFC1" || u64 j || u64 j * cs ||
    u32 length || bytes, any other piece as "PFP1" || bytes; the digest
    is SHA-256("PFC2" || u64 index || u64 offset || u32 length || the
    pieces' digests).
    """
    spans = [(o, n) for o, n in spans if n]    # empty files cut nothing
    end = offset + len(data)
    pos, digests = offset, b""
    while pos < end:
        s = next(((o, n) for o, n in spans if o + n > pos), None)
        whole = False
        if s is None or s[0] >= end:
            stop = end
        elif s[0] > pos:
            stop = s[0]
        else:
            j = (pos - s[0]) // cs
            own = s[0] + j * cs
            own_end = min(own + cs, s[0] + s[1])
            stop = min(end, own_end)
            whole = own == pos and own_end <= end
        piece = data[pos - offset:stop - offset]
        if whole:
            digests += chunk_digest(j, j * cs, piece)
        else:
            digests += hashlib.sha256(b"PFP1" + piece).digest()
        pos = stop
    return hashlib.sha256(b"PFC2" + struct.pack(">QQI", index, offset,
                                                len(data)) +
                          digests).digest()


def own_receipt(data, chunk_size):
    """A file's receipt alone: what `paraflow digest -c SIZE` prints."""
    n = (len(data) + chunk_size - 1) // chunk_size
    return receipt(len(data), chunk_size,
                   [chunk_digest(i, i * chunk_size,
                                 data[i * chunk_size:(i + 1) * chunk_size])
                    for i in range(n)])


def chunk_payload(index, offset, data, digest=None):
    """The CHUNK payload: head, data and the digest (or the one given)."""
    if digest is None:
        digest = chunk_digest(index, offset, data)
    return struct.pack(">QQI", index, offset, len(data)) + data + digest


def send_chunk(sock, index, offset, data, digest=None):
    send_frame(sock, CHUNK, chunk_payload(index, offset, data, digest))


def receipt(size, chunk_size, digests):
    """SHA-256("PFR1" || u64 size || u32 chunk_size || chunk digests)."""
    return hashlib.sha256(b"PFR1" + struct.pack(">QI", size, chunk_size) +
                          b"".join(digests)).hexdigest()


def upload(ctrl, port, key, opened, data, spans=None, commit=None):
    """Sends all of data over one data connection and commits.

    With spans (a transfer's, see pieces_digest) its chunks are hashed
    in pieces; commit adds its members to the COMMIT. Returns the
    COMPLETE object; raises WireError on a refusal.
    """
    cs = opened["chunk_size"]
    digests = []
    d = connect(port)
    try:
        join(d, key, opened["session"])
        for i in range(opened["chunks"]):
            part = data[i * cs:(i + 1) * cs]
            if spans is None:
                digests.append(chunk_digest(i, i * cs, part))
            else:
                digests.append(pieces_digest(i, i * cs, part, spans, cs))
            send_chunk(d, i, i * cs, part, digests[-1])
            if expect(d, ACK) != i:
                raise WireError(ACK, i, "ACK out of order")
    finally:
        d.close()
    send_json(ctrl, COMMIT, dict(commit or {},
                                 digest=receipt(len(data), cs, digests)))
    return expect(ctrl, COMPLETE)


def relay(port, portfile, on_frame, conns=None):
    """Serves a relay to the server at port: the client's bytes pass as
    they are, each frame from the server as on_frame(ftype, payload)
    returns it. Adds each connection's two sockets to conns (a list) if
    given; writes its own port to portfile. Never returns."""
    import threading

    def close(*socks):
        for x in socks:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def up(c, s):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                s.sendall(d)
        except OSError:
            pass
        close(c, s)

    def serve(c):
        s = socket.create_connection(("127.0.0.1", port))
        if conns is not None:
            conns.extend([c, s])
        threading.Thread(target=up, args=(c, s), daemon=True).start()
        try:
            while True:
                send_frame(c, *on_frame(*recv_frame(s)))
        except (OSError, WireError):
            pass
        close(c, s)

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    with open(portfile, "w") as f:
        f.write(str(ls.getsockname()[1]))
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def hello_relay(port, portfile, drop):
    """A relay (see relay) that drops feature drop from the server's
    HELLO, as an older paraflowd would send it. Never returns."""
    def on_frame(ftype, payload):
        if ftype == HELLO:
            hello = json.loads(payload)
            hello["features"] = [f for f in hello["features"] if f != drop]
            payload = json.dumps(hello).encode()
        return ftype, payload

    relay(port, portfile, on_frame)


def report(good, desc, detail=""):
    """One result for the shell's tap_from: ok|fail, desc, detail."""
    print("%s\t%s\t%s" % ("ok" if good else "fail", desc, detail),
          flush=True)


def fill_disk(path):
    """Writes zeros into a new file path until its file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while os.write(fd, b"\0" * 65536) > 0:
            pass
    except OSError:
        pass
    os.close(fd)
