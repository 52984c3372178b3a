#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A relay in the middle of the native port, for the TLS tests.

Without --tls-cert it forwards bytes as they are and may record them all
(both directions of every connection): what an eavesdropper sees. With
--tls-cert/--tls-key it is a man in the middle: it accepts TLS with its
own certificate, connects with TLS to the real server (checking nothing),
and relays the decrypted bytes, recording what the client sent once
decrypted. --print-pin prints its certificate's pin, curl's format, on
stdout and exits, so a test can tell a client to trust it.

    mitm.py --target-port P --port-file F [--record FILE]
            [--tls-cert C --tls-key K] [--print-pin]

Only the standard library and the openssl program are used.
"""

import argparse
import os
import socket
import ssl
import subprocess
import sys
import threading

lock = threading.Lock()


def pin_of(cert):
    """sha256//base64 of the SHA-256 of the certificate's public key."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey",
                          "-noout"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"],
                         input=pub, check=True, capture_output=True).stdout
    dgst = subprocess.run(["openssl", "dgst", "-sha256", "-binary"],
                          input=der, check=True, capture_output=True).stdout
    b64 = subprocess.run(["openssl", "base64", "-A"], input=dgst,
                         check=True, capture_output=True).stdout
    return "sha256//" + b64.decode("ascii").strip()


def pump(src, dst, record):
    """Copies src to dst until either ends; records what passes."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None:
                with lock:
                    record.write(data)
                    record.flush()
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(conn, args, server_ctx, client_ctx, record):
    try:
        if server_ctx is not None:
            conn = server_ctx.wrap_socket(conn, server_side=True)
        up = socket.create_connection(("127.0.0.1", args.target_port))
        if client_ctx is not None:
            up = client_ctx.wrap_socket(up, server_hostname="localhost")
    except (OSError, ssl.SSLError) as e:
        print("mitm: %s" % e, file=sys.stderr, flush=True)
        conn.close()
        return
    # With TLS only what the client sends is of interest (decrypted).
    back = None if server_ctx is not None else record
    t = threading.Thread(target=pump, args=(up, conn, back), daemon=True)
    t.start()
    pump(conn, up, record)
    t.join()
    conn.close()
    up.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen-port", type=int, default=0)
    ap.add_argument("--target-port", type=int)
    ap.add_argument("--port-file")
    ap.add_argument("--record")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--print-pin", action="store_true")
    args = ap.parse_args()
    if args.print_pin:
        print(pin_of(args.tls_cert))
        return 0
    server_ctx = client_ctx = None
    if args.tls_cert:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
    record = open(args.record, "ab") if args.record else None
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", args.listen_port))
    lsock.listen(64)
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % lsock.getsockname()[1])
    os.rename(args.port_file + ".tmp", args.port_file)
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn, args, server_ctx,
                                             client_ctx, record),
                         daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
