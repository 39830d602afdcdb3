// Hostile input against `tokenvend serve` (issue 11, point 6), over raw sockets: oversized
// headers, bodies and URLs, malformed JSON, bad JWTs, bad ids, bad methods, chunked-encoding
// abuse, pipelined junk and garbage request lines, each kind sent `--each` times and counted by
// the status answered (or "closed" when the server closed without an answer); after every kind
// a normal client must still get a token. Then slow clients (slowloris): `--slow` connections
// from eight loopback addresses send a request line and then one header byte every 2 s, while a
// normal client from another address keeps asking for tokens: how many it was served, their
// latency, and when the server dropped the slow connections (its head deadline,
// header_timeout_s). The default settings are used apart from the ports and the log level.
//
// Command: node tests/reliability/hostile.mjs [--each N] [--slow N] [--out FILE]

import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { startEmulator } from "../e2e/lib/emulator.mjs";
import { startJwksServer } from "../e2e/lib/jwks-server.mjs";
import { httpRequest, startService } from "../e2e/lib/service.mjs";
import { nowUtc, parseArgs, percentile, sectionHead, writeOut } from "./lib.mjs";

const ANSWER_DEADLINE_MS = 60_000; // only stops a hung exchange (the request deadline is 30 s)
const LATE_S = 5; // a close later than this is the server's deadline, not a refusal
const SOURCES = Array.from({ length: 8 }, (_, i) => `127.0.0.${21 + i}`);
const NORMAL_FROM = "127.0.0.3";
const PARALLEL = 50; // hostile connections at a time
const NORMAL_PAUSE_MS = 20; // a normal client's pause between its requests (not a flood)
const SLOW_CEILING_MS = 40_000; // how long the slow phase waits at most for every drop

// One raw exchange over a fresh connection: resolves to the status of the first answer, or
// "closed" / "reset" when none came. `text` may be a Buffer; `after` more bytes once connected.
function raw(port, text, host = "127.0.0.1") {
  return new Promise((res) => {
    const chunks = [];
    let done = false;
    const t0 = Date.now();
    const finish = (why) => {
      if (done) return;
      const late = (Date.now() - t0) / 1000 > LATE_S ? ` at ${Math.round((Date.now() - t0) / 1000)} s` : "";
      done = true;
      clearTimeout(timer);
      const s = Buffer.concat(chunks).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(s);
      res(m ? m[1] : `${why}${why === "no answer" ? "" : late}`);
      sock.destroy();
    };
    const sock = connect(port, host, () => sock.write(text, () => sock.end()));
    const timer = setTimeout(() => finish("no answer"), ANSWER_DEADLINE_MS);
    sock.on("data", (c) => chunks.push(c));
    sock.on("error", () => finish(chunks.length ? "closed" : "reset"));
    sock.on("close", () => finish("closed"));
  });
}

const req = (method, path, headers = {}, body = "") => {
  const h = { Host: "x", Connection: "close", ...headers };
  if (body && !Object.keys(h).some((k) => /content-length|transfer-encoding/i.test(k))) h["Content-Length"] = Buffer.byteLength(body);
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join("\r\n")}\r\n\r\n${body}`;
};

// The kinds: name -> (ctx, i) => { listener: "pub"|"int", text }.
function kinds(ctx) {
  const auth = { Authorization: `Bearer ${ctx.key}`, "Content-Type": "application/json" };
  const jwt = (i) => ({ Authorization: `Bearer ${ctx.badJwt(i)}` });
  const bigHeader = "a".repeat(70 * 1024);
  return {
    "oversized header (70 KiB)": () => ({ l: "pub", t: req("GET", "/healthz", { "X-Big": bigHeader }) }),
    "many headers (2,000)": () => ({ l: "pub", t: req("GET", "/healthz", Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`X-H${i}`, "v"]))) }),
    "oversized URL (32 KiB path)": () => ({ l: "int", t: req("GET", `/internal/users/${"u".repeat(32 * 1024)}`, auth) }),
    "300 query arguments": () => ({ l: "pub", t: req("GET", `/healthz?${Array.from({ length: 300 }, (_, i) => `a${i}=1`).join("&")}`) }),
    "oversized body (2 MiB)": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, auth, `{"scopes":["${"c".repeat(2 << 20)}"]}`) }),
    "Content-Length larger than the body": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, { ...auth, "Content-Length": 5000 }, "{}") }),
    "bad JSON": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, auth, ["{", "[]", "{\"scopes\":", "\u0000", "{\"scopes\":\"chat\"}", "{\"a\":1,\"a\":2}", "nul", "{\"expiresInMinutes\":1e999}"][i % 8]) }),
    "deeply nested JSON (10,000 levels)": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, auth, `${"[".repeat(10000)}${"]".repeat(10000)}`) }),
    "bad JWT": (i) => ({ l: "pub", t: req("GET", "/api/token", jwt(i)) }),
    "bad API key": () => ({ l: "int", t: req("GET", "/internal/users/x", { Authorization: "Bearer tv_not_a_key" }) }),
    "bad user id": (i) => ({ l: "int", t: req("PUT", `/internal/users/${["%00", "%FF%FE", "%ZZ", "%C0%AF", "a".repeat(300), "%0D%0A"][i % 6]}`, auth) }),
    "bad ACS id": (i) => ({ l: "int", t: req("POST", `/internal/identities/${["x", "8:acs:", "8%3Aacs%3Anope", "%FF"][i % 4]}/token`, auth, "{}") }),
    "bad method": (i) => ({ l: "pub", t: req(["PATCH", "TRACE", "FOO", "CONNECT", "DELETE"][i % 5], "/api/token") }),
    "chunked: bad chunk size": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, { ...auth, "Transfer-Encoding": "chunked" }, "zz\r\n{}\r\n0\r\n\r\n") }),
    "chunked: huge chunk size": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, { ...auth, "Transfer-Encoding": "chunked" }, "ffffffffffffffff\r\n{}\r\n0\r\n\r\n") }),
    "chunked and Content-Length": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, { ...auth, "Transfer-Encoding": "chunked", "Content-Length": 4 }, "2\r\n{}\r\n0\r\n\r\n") }),
    "chunked: 5,000 one-byte chunks": (i) => ({ l: "int", t: req("POST", `/internal/users/h${i}/token`, { ...auth, "Transfer-Encoding": "chunked" }, `${"1\r\n \r\n".repeat(5000)}0\r\n\r\n`) }),
    "pipelined junk after a request": () => ({ l: "pub", t: `GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n${"\u0001\u0002junk\r\n".repeat(50)}\r\n\r\n` }),
    "garbage request line": (i) => ({ l: "pub", t: ["GARBAGE\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET /healthz\r\n\r\n", "\u0000\u00ff\u00fe binary\r\n\r\n"][i % 5] }),
    "missing Host": () => ({ l: "pub", t: "GET /healthz HTTP/1.1\r\n\r\n" }),
  };
}

// A normal client's token request; resolves to its status.
async function normalStatus(svc, jwks, i) {
  const r = await httpRequest(`${svc.publicUrl}/api/token`, {
    headers: { authorization: `Bearer ${jwks.token(`normal-${i % 50}`)}` },
    localAddress: NORMAL_FROM,
    timeoutMs: ANSWER_DEADLINE_MS,
  });
  return r.status;
}

async function normalOk(svc, jwks, i) {
  return (await normalStatus(svc, jwks, i)) === 200;
}

async function hostilePhase(svc, jwks, key, each, log) {
  const ports = { pub: Number(new URL(svc.publicUrl).port), int: Number(new URL(svc.internalUrl).port) };
  const badJwt = (i) => [
    "x",
    "a.b.c",
    jwks.sign({ sub: "u" }, { alg: "none" }),
    jwks.token("u", { claims: { exp: 1 } }),
    jwks.token("u", { key: "stranger" }),
    jwks.token("u", { claims: { aud: "other" } }),
    `${jwks.token("u").slice(0, -4)}AAAA`,
    jwks.sign({ sub: "u" }, { alg: "HS256", hmacSecret: jwks.publicPem() }),
  ][i % 8];
  const rows = [];
  let normalServed = 0;
  let normalFailed = 0;
  for (const [name, make] of Object.entries(kinds({ key, badJwt }))) {
    const counts = {};
    for (let i = 0; i < each; i += PARALLEL) {
      const batch = Array.from({ length: Math.min(PARALLEL, each - i) }, (_, j) => make(i + j));
      const got = await Promise.all(batch.map((b) => raw(ports[b.l], b.t)));
      for (const s of got) counts[s] = (counts[s] || 0) + 1;
    }
    for (let i = 0; i < 3; i++) {
      if (await normalOk(svc, jwks, i)) normalServed++;
      else normalFailed++;
    }
    rows.push({ name, counts });
    log(`hostile: ${name}: ${JSON.stringify(counts)}`);
  }
  return { rows, normalServed, normalFailed, alive: svc.alive() };
}

function slowClient(port, from) {
  const c = { open: false, closedAt: 0, openedAt: Date.now(), sock: null };
  c.closed = new Promise((res) => {
    const sock = connect({ port, host: "127.0.0.1", localAddress: from });
    c.sock = sock;
    let timer = null;
    const done = () => {
      if (timer) clearInterval(timer);
      if (!c.closedAt) c.closedAt = Date.now();
      res(c);
    };
    sock.on("connect", () => {
      c.open = true;
      sock.write("GET /api/token HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      timer = setInterval(() => sock.write("x"), 2000);
    });
    sock.on("error", done);
    sock.on("close", done);
    sock.on("data", () => {});
  });
  return c;
}

async function slowPhase(svc, jwks, slow, log) {
  const port = Number(new URL(svc.publicUrl).port);
  const clients = [];
  for (let i = 0; i < slow; i++) clients.push(slowClient(port, SOURCES[i % SOURCES.length]));
  await sleep(1000);
  const held = clients.filter((c) => c.open && !c.closedAt).length;
  const lat = [];
  let served = 0;
  let failed = 0;
  const allClosed = Promise.all(clients.map((c) => c.closed));
  let finished = false;
  allClosed.then(() => {
    finished = true;
  });
  const end = Date.now() + SLOW_CEILING_MS;
  let i = 0;
  const statuses = {};
  while (!finished && Date.now() < end) {
    const t0 = performance.now();
    let st;
    try {
      st = await normalStatus(svc, jwks, i++);
    } catch (err) {
      st = err.code || "network error";
    }
    statuses[st] = (statuses[st] || 0) + 1;
    if (st === 200) served++;
    else failed++;
    lat.push(performance.now() - t0);
    await sleep(NORMAL_PAUSE_MS);
  }
  const still = clients.filter((c) => !c.closedAt).length;
  for (const c of clients) c.sock?.destroy();
  const lifetimes = clients.filter((c) => c.closedAt && c.open).map((c) => (c.closedAt - c.openedAt) / 1000);
  log(`slow: held ${held}, normal served ${served}, failed ${failed}, still open ${still}`);
  return {
    slow, held, served, failed, still, statuses,
    p50: percentile(lat, 50), p95: percentile(lat, 95),
    dropMin: percentile(lifetimes, 0.0001), dropP50: percentile(lifetimes, 50), dropMax: percentile(lifetimes, 100),
  };
}

// A kind passes when every request was answered or closed, none got a 2xx (but the two kinds
// that carry a valid request), and no 5xx other than 501/505 (a server fault) came back.
function rowOk(row) {
  const keys = Object.keys(row.counts);
  const valid = /pipelined/.test(row.name);
  return !row.counts["no answer"] && keys.every((k) => (valid ? true : !k.startsWith("2"))) &&
    !keys.some((k) => k.startsWith("5") && k !== "501" && k !== "505");
}

// env: extra settings (the short test shortens the request deadline so the kinds that never
// complete their request are closed sooner).
export async function run({ each = 200, slow = 200, env = {}, log = () => {} } = {}) {
  const started = nowUtc();
  delete process.env.TV_TEST_STORE;
  const emu = await startEmulator(["--no-rate-limits"]);
  const jwks = await startJwksServer();
  let svc;
  const res = { each, slowCount: slow };
  try {
    svc = await startService({ emu, jwks, env: { TOKENVEND_LOG_LEVEL: "warn", ...env } });
    const { key } = await svc.createApiKey("hostile");
    res.hostile = await hostilePhase(svc, jwks, key, each, log);
    res.slow = await slowPhase(svc, jwks, slow, log);
    res.aliveAtEnd = svc.alive() && (await normalOk(svc, jwks, 0));
    res.exit = await svc.stop();
  } finally {
    if (svc) await svc.cleanup();
    await jwks.close();
    await emu.stop();
  }
  const h = res.hostile;
  const s = res.slow;
  res.ok = h.normalFailed === 0 && h.alive && s.failed === 0 && s.still === 0 && s.served > 0 &&
    res.aliveAtEnd && res.exit.code === 0 &&
    h.rows.every(rowOk);
  res.markdown = markdown(res, started);
  return res;
}

function markdown(r, started) {
  const h = r.hostile;
  const s = r.slow;
  const total = h.rows.reduce((a, row) => a + Object.values(row.counts).reduce((x, y) => x + y, 0), 0);
  const table = h.rows.map((row) => `| ${row.name} | ${Object.entries(row.counts).sort().map(([k, v]) => `${k}: ${v}`).join(", ")} |`).join("\n");
  return `${sectionHead("Hostile input and slow clients", `node tests/reliability/hostile.mjs --each ${r.each} --slow ${r.slowCount}`, started)}` +
    `${total} hostile requests (${r.each} of each kind, ${PARALLEL} connections at a time, default settings); ` +
    'each client half-closes after sending. "closed" means the server closed the connection without an answer ("at N s": when a deadline ended a request that never completed: header_timeout_s, 10 s, for an unfinished head, request_timeout_s, 30 s, for an unfinished body), "reset" that the connection was reset (the 2 MiB body: the server answered 413 and closed while the client was still sending).\n\n' +
    `| kind | answers |\n| --- | --- |\n${table}\n\n` +
    `Normal token requests between the kinds: ${h.normalServed} served, ${h.normalFailed} failed; the service ${h.alive ? "stayed up" : "DIED"}.\n\n` +
    "| slow clients (one header byte every 2 s, 8 source addresses) | value |\n| --- | --- |\n" +
    `| slow connections opened / held after 1 s | ${s.slow} / ${s.held} |\n` +
    `| normal token requests meanwhile (one client, ${NORMAL_PAUSE_MS} ms apart): served / failed | ${s.served} / ${s.failed} (${Object.entries(s.statuses).map(([k, v]) => `${k}: ${v}`).join(", ")}) |\n` +
    `| their latency p50 / p95 | ${s.p50.toFixed(1)} ms / ${s.p95.toFixed(1)} ms |\n` +
    `| slow connections dropped by the server after (first / median / last) | ${s.dropMin?.toFixed(1)} s / ${s.dropP50?.toFixed(1)} s / ${s.dropMax?.toFixed(1)} s |\n` +
    `| slow connections still open at the ${SLOW_CEILING_MS / 1000} s ceiling | ${s.still} |\n` +
    `| exit after SIGTERM | code ${r.exit.code} |\n\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const a = parseArgs(process.argv.slice(2));
  const r = await run({ each: Number(a.each || 200), slow: Number(a.slow || 200), log: (x) => process.stderr.write(`${x}\n`) });
  writeOut(a.out, r.markdown);
  process.stdout.write(r.markdown);
  process.exit(r.ok ? 0 : 1);
}
