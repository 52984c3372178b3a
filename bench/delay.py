#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TCP proxy that delays every byte by DELAY_MS in each direction: a
round trip of 2 x DELAY_MS on loopback, where this kernel has no netem.
    delay.py DELAY_MS UPSTREAM_PORT PORT_FILE
Listens on 127.0.0.1 (an ephemeral port, written to PORT_FILE) and
forwards each connection to 127.0.0.1:UPSTREAM_PORT, bytes in order."""
import asyncio
import sys


async def pump(reader, writer, delay):
    """Copies reader to writer, each piece delay seconds after it came."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data or None))
            if not data:
                break
    except ConnectionError:
        await queue.put((loop.time(), None))
    await sender


async def main():
    delay = float(sys.argv[1]) / 1000
    upstream = int(sys.argv[2])

    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1",
                                                             upstream)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(pump(creader, swriter, delay),
                             pump(sreader, cwriter, delay),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    with open(sys.argv[3], "w") as f:
        f.write("%d\n" % server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


asyncio.run(main())
