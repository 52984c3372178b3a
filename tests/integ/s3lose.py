# SPDX-License-Identifier: MIT
import os, select, socket, sys, threading
# s3lose.py PORTFILE UPSTREAM_PORT METHOD: the first request sent with
# METHOD reaches the store, its answer (after any "100 Continue") never
# reaches the client: the connection is cut. Everything else passes.
up, method = int(sys.argv[2]), sys.argv[3].encode() + b" "
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
ls.settimeout(120)  # no client for 2 minutes: gone, nothing left behind
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
lost = threading.Event()
def serve(c):
    u = socket.create_connection(("127.0.0.1", up))
    armed = False
    try:
        while True:
            for s in select.select([c, u], [], [])[0]:
                d = s.recv(65536)
                if not d:
                    return
                if s is c:
                    if d.startswith(method) and not lost.is_set():
                        armed = True
                    u.sendall(d)
                elif armed and not d.startswith(b"HTTP/1.1 100"):
                    lost.set()
                    return
                else:
                    c.sendall(d)
    except OSError:
        pass
    finally:
        for s in (c, u):
            s.close()
while True:
    try:
        c, _ = ls.accept()
    except socket.timeout:
        break
    threading.Thread(target=serve, args=(c,), daemon=True).start()
