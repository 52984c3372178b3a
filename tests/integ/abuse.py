# SPDX-License-Identifier: MIT
"""Connections that hold a server's slots without doing anything useful,
for t_abuse_conns.sh. Each mode runs until its time is up (or SIGTERM),
writes READY once every connection was tried, and prints its figures as
"key=value" words on one line at the end.

  native PORT N ADDRS SECS READY   N connections to the native port from
      the source addresses ADDRS (comma-separated, taken in turn): each
      runs the TLS handshake (when PFWIRE_TLS=1), reads HELLO and never
      logs in; one the server closes comes back 2 s later.
  events PORT N ADDRS SECS READY AUTH   N event streams (GET
      /api/v1/events with the Basic credentials AUTH, "user:password"),
      held open; counts the statuses answered.
  trickle PORT N ADDRS SECS READY   N HTTP connections that send a
      request a byte every second and never finish it; one the server
      closes comes back 2 s later.
"""

import base64
import os
import select
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwconn  # noqa: E402
import pfwire  # noqa: E402

RETRY_S = 2.0


def tcp(port, addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((addr, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def native_one(port, addr):
    """A connection that got past the handshake and HELLO, or None."""
    s = None
    try:
        s = tcp(port, addr)
        if os.environ.get("PFWIRE_TLS") == "1":
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        pfwire.hello(s)
        return s
    except (OSError, pfwire.WireError, ValueError):
        if s is not None:
            s.close()
        return None


def events_one(port, addr, auth):
    """An event stream: (socket or None, HTTP status or 0)."""
    s = None
    try:
        s = gwconn.connect(port, source_address=(addr, 0), timeout=5)
        s.sendall(("GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Authorization: Basic %s\r\nAccept: text/event-stream"
                   "\r\n\r\n" % base64.b64encode(auth.encode()).decode())
                  .encode())
        head = b""
        while b"\r\n" not in head:
            b = s.recv(1)
            if not b:
                break
            head += b
        parts = head.split()
        status = int(parts[1]) if len(parts) > 1 else 0
        if status == 200:
            return s, status
        s.close()
        return None, status
    except (OSError, ValueError):
        if s is not None:
            s.close()
        return None, 0


def trickle_one(port, addr):
    try:
        return gwconn.connect(port, source_address=(addr, 0), timeout=5)
    except OSError:
        return None


def main():
    mode, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    addrs, secs, ready = sys.argv[4].split(","), float(sys.argv[5]), \
        sys.argv[6]
    auth = sys.argv[7] if mode == "events" else None
    stop = time.monotonic() + secs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    socks = [None] * n
    retry = [0.0] * n
    fig = {"tried": 0, "held_max": 0, "closed_by_server": 0}
    statuses = {}
    request = b"GET /api/v1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + \
        b"a" * 4000
    sent = [0] * n
    wrote_ready = False
    try:
        while time.monotonic() < stop:
            now = time.monotonic()
            for i in range(n):
                if socks[i] is not None or retry[i] > now:
                    continue
                if mode == "events" and retry[i] < 0:
                    continue        # a stream refused: not retried
                addr = addrs[i % len(addrs)]
                fig["tried"] += 1
                if mode == "native":
                    socks[i] = native_one(port, addr)
                elif mode == "events":
                    socks[i], st = events_one(port, addr, auth)
                    statuses[st] = statuses.get(st, 0) + 1
                else:
                    socks[i] = trickle_one(port, addr)
                    sent[i] = 0
                if socks[i] is None:
                    retry[i] = -1.0 if mode == "events" else \
                        now + RETRY_S
            held = [s for s in socks if s is not None]
            fig["held_max"] = max(fig["held_max"], len(held))
            if not wrote_ready:
                with open(ready, "w") as f:
                    f.write("%d\n" % len(held))
                wrote_ready = True
            if mode == "trickle":
                for i, s in enumerate(socks):
                    if s is not None and sent[i] < len(request):
                        try:
                            s.send(request[sent[i]:sent[i] + 1])
                            sent[i] += 1
                        except OSError:
                            pass
            if not held:
                time.sleep(0.2)
                continue
            r, _, _ = select.select(held, [], [], 1.0)
            for s in r:
                try:
                    gone = s.recv(65536) == b""
                except (OSError, ValueError):
                    gone = True
                if gone:
                    i = socks.index(s)
                    s.close()
                    socks[i] = None
                    retry[i] = time.monotonic() + RETRY_S
                    fig["closed_by_server"] += 1
    finally:
        fig["held_end"] = sum(1 for s in socks if s is not None)
        for st, c in sorted(statuses.items()):
            fig["status_%d" % st] = c
        print(" ".join("%s=%d" % kv for kv in sorted(fig.items())),
              flush=True)


if __name__ == "__main__":
    main()
