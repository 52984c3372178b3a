# SPDX-License-Identifier: MIT
"""A raw connection to the gateway for the HTTP tests: TLS-wrapped, and
checked against the test's certificate (PF_GW_CA), when it speaks HTTPS."""

import os
import socket
import ssl


def connect(port, **kw):
    """A connection to the gateway on 127.0.0.1:port."""
    s = socket.create_connection(("127.0.0.1", port), **kw)
    if not os.environ.get("PF_GW_CA"):
        return s
    ctx = ssl.create_default_context(cafile=os.environ["PF_GW_CA"])
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")
