// `make bench` helper: holds N idle keep-alive connections to a tokenvend listener (wrk cannot
// hold idle ones). Each connection sends one GET /healthz and keeps the socket open, so the
// server sees N finished-but-kept-alive HTTP/1.1 connections. Prints "open=N" once all are
// up, and on SIGTERM "still_open=K" (connections the server has not closed) before exiting.
// Usage: node scripts/bench/idle.mjs PORT N
import { connect } from "node:net";

const port = Number(process.argv[2]);
const want = Number(process.argv[3] || "5000");
const request = `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`;
const sockets = new Set();
let answered = 0;
let failed = 0;

function openOne() {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" });
    let got = "";
    s.setNoDelay(true);
    s.on("connect", () => s.write(request));
    s.on("data", (d) => {
      if (got === null) return;
      got += d.toString("latin1");
      if (/\r\n\r\n/.test(got) && /Content-Length: *(\d+)/i.test(got)) {
        const ok = got.startsWith("HTTP/1.1 200");
        got = null;
        if (ok) answered++;
        else failed++;
        resolve();
      }
    });
    s.on("error", () => {
      failed++;
      resolve();
    });
    s.on("close", () => sockets.delete(s));
    sockets.add(s);
  });
}

// A few hundred at a time stays well inside the listen backlog.
for (let i = 0; i < want; i += 250) {
  const batch = [];
  for (let j = i; j < Math.min(want, i + 250); j++) batch.push(openOne());
  await Promise.all(batch);
}
console.log(`open=${sockets.size} answered=${answered} failed=${failed}`);
process.on("SIGTERM", () => {
  console.log(`still_open=${sockets.size}`);
  for (const s of sockets) s.destroy();
  process.exit(0);
});
setInterval(() => {}, 1 << 30);
