// SPDX-License-Identifier: MIT
// A TCP proxy that caps what clients send to a target port at a given
// rate, so that an upload lasts long enough for a browser to watch it
// (the speed of a local upload depends on the disk, from 1 to 100 s).
// What the server sends back is not held up.

import net from 'node:net';

/* A little slack, so that a chunk header and its first bytes go at once. */
const BURST_MS = 50;

/*
 * Listens on an ephemeral port of 127.0.0.1 and forwards to targetPort;
 * resolves to {port, close()}. All its connections share one budget of
 * bytesPerSecond.
 */
export function startThrottle(targetPort, bytesPerSecond) {
  let due = 0; /* when the bytes accepted so far may have been sent */
  const sockets = new Set();

  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    let held = 0; /* reasons the client is paused: the rate, backpressure */
    const hold = () => {
      if (held++ === 0)
        client.pause();
    };
    const release = () => {
      if (--held === 0)
        client.resume();
    };
    client.on('data', (buf) => {
      const now = Date.now();
      due = Math.max(due, now) + buf.length * 1000 / bytesPerSecond;
      if (!upstream.write(buf)) {
        hold();
        upstream.once('drain', release);
      }
      if (due - now > BURST_MS) {
        hold();
        setTimeout(release, due - now - BURST_MS);
      }
    });
    upstream.pipe(client);
    client.on('end', () => upstream.end());
    const gone = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', gone);
    upstream.on('error', gone);
    client.on('close', gone);
    upstream.on('close', gone);
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      close() {
        for (const s of sockets)
          s.destroy();
        server.close();
      },
    }));
  });
}
