// A TCP front for acs-emulator that can misbehave the way a network or an overloaded ACS does,
// below HTTP, where the emulator's own faults (PUT /emulator/faults: 429, 5xx, dropped
// connections, latency) cannot reach:
//   "pass"      every byte goes through both ways;
//   "blackhole" the connection is accepted and the request read, but nothing is ever written
//               back and nothing reaches the emulator: an ACS that accepts and never answers;
//   "trickle"   the request goes through, the answer comes back `chunk` bytes every
//               `intervalMs` (a slow body: the status line arrives, the rest takes its time).
// tokenvend signs for the proxy's host:port and the emulator checks the signature against the
// Host header it receives, which a TCP proxy leaves alone, so mappings made through the proxy
// in "pass" mode stay valid in the other modes (same ACS resource).
//
// The mode is chosen per connection when it opens; setMode() closes the connections opened in
// another mode, so a kept-alive connection from a "pass" period is not reused to get around a
// black hole (call it while no request is in flight, as the tests do).

import { connect, createServer } from "node:net";

export const PROXY_MODES = ["pass", "blackhole", "trickle"];

// Starts the proxy on a free loopback port in front of target { host, port }. Resolves to
// { port, endpoint ("http://127.0.0.1:PORT"), connectionString(accessKey), setMode(mode,
// {chunk, intervalMs}), mode(), stats() -> { open, accepted, blackholed, bytesIn, bytesOut },
// close() }.
export async function startFaultProxy(target, { mode = "pass" } = {}) {
  let cur = { mode, chunk: 16, intervalMs: 50 };
  const conns = new Set(); // { client, upstream, mode, timers }
  const stats = { accepted: 0, blackholed: 0, bytesIn: 0, bytesOut: 0 };

  const closeConn = (c) => {
    for (const t of c.timers) clearTimeout(t);
    c.timers.clear();
    c.client.destroy();
    c.upstream?.destroy();
    conns.delete(c);
  };

  // Writes data to the client `chunk` bytes at a time, one piece every intervalMs, in order.
  const trickle = (c, data) => {
    c.queue.push(data);
    if (c.pumping) return;
    c.pumping = true;
    const pump = () => {
      if (c.client.destroyed) return;
      if (c.queue.length === 0) {
        c.pumping = false;
        if (c.upstreamEnded) c.client.end();
        return;
      }
      const head = c.queue[0];
      const piece = head.subarray(0, c.chunk);
      if (piece.length === head.length) c.queue.shift();
      else c.queue[0] = head.subarray(piece.length);
      stats.bytesOut += piece.length;
      c.client.write(piece);
      const t = setTimeout(() => {
        c.timers.delete(t);
        pump();
      }, c.intervalMs);
      c.timers.add(t);
    };
    pump();
  };

  const server = createServer((client) => {
    const c = {
      client,
      upstream: null,
      mode: cur.mode,
      chunk: cur.chunk,
      intervalMs: cur.intervalMs,
      timers: new Set(),
      queue: [],
      pumping: false,
      upstreamEnded: false,
    };
    conns.add(c);
    stats.accepted++;
    client.on("error", () => closeConn(c));
    client.on("close", () => closeConn(c));
    if (c.mode === "blackhole") {
      stats.blackholed++;
      // Read and forget: the kernel's buffers never fill, so the sender never learns a thing.
      client.on("data", (d) => {
        stats.bytesIn += d.length;
      });
      return;
    }
    const up = connect(target.port, target.host);
    c.upstream = up;
    up.on("error", () => closeConn(c));
    up.on("close", () => {
      if (c.mode === "trickle" && c.pumping) {
        c.upstreamEnded = true;
        return;
      }
      closeConn(c);
    });
    client.on("data", (d) => {
      stats.bytesIn += d.length;
      up.write(d);
    });
    up.on("data", (d) => {
      if (c.mode === "trickle") {
        trickle(c, d);
        return;
      }
      stats.bytesOut += d.length;
      client.write(d);
    });
    up.on("end", () => {
      if (c.mode === "trickle" && c.pumping) c.upstreamEnded = true;
      else client.end();
    });
  });
  await new Promise((res, rej) => {
    server.once("error", rej);
    server.listen(0, "127.0.0.1", res);
  });
  const port = server.address().port;
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    port,
    endpoint,
    connectionString: (accessKey) => `endpoint=${endpoint}/;accesskey=${accessKey}`,
    mode: () => cur.mode,
    setMode(m, { chunk = 16, intervalMs = 50 } = {}) {
      if (!PROXY_MODES.includes(m)) throw new Error(`faultproxy: unknown mode ${m}`);
      cur = { mode: m, chunk, intervalMs };
      for (const c of [...conns]) if (c.mode !== m) closeConn(c);
    },
    stats: () => ({ open: conns.size, ...stats }),
    close: () =>
      new Promise((res) => {
        for (const c of [...conns]) closeConn(c);
        server.close(() => res());
      }),
  };
}
