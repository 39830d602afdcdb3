// The load balancer of compose.replicas.yaml, run for real: HAProxy with the recipe's own
// configuration (inline in the compose file) in front of two `tokenvend serve` processes on one
// PostgreSQL database (a throw-away cluster, the URI given by TOKENVEND_DB_FILE as in the
// recipe), on loopback. Only what Compose provides is swapped: the listen addresses become free
// loopback ports and the DNS-filled server slots become the two processes' addresses. Shows that
// requests reach both replicas, the internal API is balanced too, PostgreSQL stopped costs 503s in
// the error shape (the replicas' /readyz fails, the balancer takes them out) and started again is
// served by the same processes, a stopped replica costs no request, and with no replica left the
// balancer answers 503 in tokenvend's error shape. Then,
// with one replica replaced by a stand-in that passes the health check but closes every other
// request without answering (a replica that died mid-request, or one draining at shutdown):
// requests are answered by the other replica, except a standalone identity's create, which is
// never sent twice (502 in the error shape instead).
// Needs the Debian packages haproxy and postgresql-15 (skipped without them).

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import YAML from "yaml";
import { REPO_ROOT, startEmulator } from "./lib/emulator.mjs";
import { pgBindir, startPostgres } from "./lib/pg.mjs";
import { freePorts, httpRequest, pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const haproxyMissing = spawnSync("haproxy", ["-v"]).status === 0 ? false : "haproxy is not installed (Debian package haproxy)";
const skip = serveSkipReason() || haproxyMissing;
const pgMissing = existsSync(join(pgBindir(), "initdb")) ? false : "postgresql-15 is not installed";
const STOP_DEADLINE_MS = 20_000;

// The recipe's HAProxy configuration with Compose's parts replaced; each replacement must match,
// so a change to the recipe that this test no longer follows fails here instead of passing.
function localConfig(ports, replicas) {
  const doc = YAML.parse(readFileSync(resolve(REPO_ROOT, "compose.replicas.yaml"), "utf8"), { merge: true });
  let cfg = doc.configs.haproxy_cfg.content;
  const swap = (from, to) => {
    assert.ok(cfg.includes(from), `the recipe's haproxy.cfg no longer has ${JSON.stringify(from)}`);
    cfg = cfg.replace(from, to);
  };
  swap("bind :8080", `bind 127.0.0.1:${ports.pub}`);
  swap("bind :8081", `bind 127.0.0.1:${ports.int}`);
  swap("bind :8404", `bind 127.0.0.1:${ports.mon}`);
  const servers = (kind) => replicas.map((r, i) => `server tv${i + 1} ${new URL(r[kind]).host}`).join("\n    ");
  swap("server-template tv 8 tokenvend:8080", servers("publicUrl"));
  swap("server-template tv 8 tokenvend:8081", servers("internalUrl"));
  return cfg;
}

// Starts HAProxy on cfg; resolves once its monitor URI answers 200 (a replica passed /readyz).
async function startHaproxy(dir, cfg, monPort) {
  const cfgPath = join(dir, "haproxy.cfg");
  writeFileSync(cfgPath, cfg);
  const check = spawnSync("haproxy", ["-c", "-f", cfgPath], { encoding: "utf8" });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  const out = openSync(join(dir, "haproxy.log"), "a");
  let proc;
  try {
    proc = spawn("haproxy", ["-db", "-f", cfgPath], { stdio: ["ignore", out, out] });
  } finally {
    closeSync(out);
  }
  const exited = new Promise((res) => proc.once("exit", (code, signal) => res({ code, signal })));
  const log = () => readFileSync(join(dir, "haproxy.log"), "utf8");
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), STOP_DEADLINE_MS);
    await exited;
    clearTimeout(t);
  };
  const up = await pollUntil(async () => {
    try {
      return (await httpRequest(`http://127.0.0.1:${monPort}/lb/healthz`, { timeoutMs: 2000 })).status === 200;
    } catch {
      return false;
    }
  }, { deadlineMs: 30_000, intervalMs: 200 });
  if (!up) {
    await stop();
    assert.fail(`haproxy's monitor URI never answered 200; log:\n${log()}`);
  }
  return { proc, log, stop };
}

// Requests answered by one replica's public listener for one route, from its /metrics.
async function answered(svc, route) {
  const r = await httpRequest(`${svc.internalUrl}/metrics`);
  assert.equal(r.status, 200, show(r));
  let n = 0;
  for (const m of r.text.matchAll(/^tokenvend_http_requests_total\{listener="public",method="GET",route="([^"]*)",status="\d+"\} (\d+)$/gm)) {
    if (m[1] === route) n += Number(m[2]);
  }
  return n;
}

describe("compose.replicas.yaml: the balancer in front of two replicas", { skip: skip || pgMissing }, () => {
  let pg;
  let emu;
  let a;
  let b;
  let lb;
  let dir;
  let ports;
  let apiKey;
  const lbUrl = () => `http://127.0.0.1:${ports.pub}`;
  const lbInternalUrl = () => `http://127.0.0.1:${ports.int}`;
  const lbLog = () => lb.log();

  before(async () => {
    pg = await startPostgres();
    emu = await startEmulator();
    dir = mkdtempSync(join(tmpdir(), "tv-lb-"));
    // Both replicas on one database, its URI from a file, with the recipe's settings for them.
    const uriFile = join(dir, "tokenvend_db_uri");
    writeFileSync(uriFile, `${pg.uri}\n`, { mode: 0o600 });
    const replicaEnv = {
      TOKENVEND_DB: null,
      TOKENVEND_DB_FILE: uriFile,
      TOKENVEND_MAX_CONNECTIONS_PER_IP: "0",
      TOKENVEND_LOGIN_PER_ADDRESS: "0",
      // Short, so the outage test below does not wait long; the behaviour is the product's.
      TOKENVEND_DB_CONNECT_TIMEOUT_MS: "1000",
      TOKENVEND_DB_STATEMENT_TIMEOUT_MS: "2000",
    };
    a = await startService({ emu, env: replicaEnv });
    b = await startService({ emu, env: replicaEnv });
    const [pub, int, mon] = await freePorts(3);
    ports = { pub, int, mon };
    lb = await startHaproxy(dir, localConfig(ports, [a, b]), mon);
    apiKey = (await a.createApiKey("lb-test")).key;
  });

  after(async () => {
    if (lb) await lb.stop();
    if (b) await b.cleanup();
    if (a) await a.cleanup();
    if (emu) await emu.stop();
    if (pg) await pg.stop();
    if (dir && !process.env.TV_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  });

  test("the public port reaches both replicas", async () => {
    const before = [await answered(a, "/healthz"), await answered(b, "/healthz")];
    for (let i = 0; i < 20; i++) {
      const r = await httpRequest(`${lbUrl()}/healthz`);
      assert.equal(r.status, 200, show(r));
    }
    const delta = [await answered(a, "/healthz") - before[0], await answered(b, "/healthz") - before[1]];
    assert.equal(delta[0] + delta[1], 20, `answered by a and b: ${delta}`);
    assert.ok(delta[0] > 0 && delta[1] > 0, `round robin left a replica out: ${delta}; log:\n${lbLog()}`);
  });

  test("the internal port is balanced over the same store", async () => {
    const auth = { authorization: `Bearer ${apiKey}` };
    const put = await httpRequest(`${lbInternalUrl()}/internal/users/lb-user`, { method: "PUT", headers: auth });
    assert.ok(put.status === 201 || put.status === 200, show(put));
    const id = put.json.acsUserIdentity;
    assert.match(id ?? "", /^8:acs:/, show(put));
    // Both replicas (round robin) read the one mapping.
    for (let i = 0; i < 6; i++) {
      const r = await httpRequest(`${lbInternalUrl()}/internal/users/lb-user`, { headers: auth });
      assert.equal(r.status, 200, show(r));
      assert.equal(r.json.acsUserIdentity, id, show(r));
    }
  });

  test("PostgreSQL stopped: 503 in the error shape; started: served again, same processes", async () => {
    const auth = { authorization: `Bearer ${apiKey}` };
    const token = (user) => httpRequest(`${lbInternalUrl()}/internal/users/${user}/token`,
      { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: {} });
    const ok = await token("pg-before");
    assert.equal(ok.status, 200, show(ok));
    await pg.pause();
    let n = 0;
    const down = await pollUntil(async () => {
      const r = await token(`pg-down-${n++}`);
      return r.status === 503 ? r : null;
    }, { deadlineMs: 30_000, intervalMs: 100 });
    assert.ok(down, `no 503 while PostgreSQL is down; log:\n${lbLog()}`);
    assert.deepEqual(Object.keys(down.json ?? {}), ["error"], show(down));
    assert.equal(typeof down.json.error.code, "string", show(down));
    assert.equal(typeof down.json.error.message, "string", show(down));
    // Both replicas' /readyz fail, so the balancer takes them out and answers itself.
    const out = await pollUntil(async () =>
      (await httpRequest(`http://127.0.0.1:${ports.mon}/lb/healthz`, { timeoutMs: 2000 })).status === 503,
    { deadlineMs: 30_000, intervalMs: 250 });
    assert.ok(out, `the balancer kept a replica while PostgreSQL was down; log:\n${lbLog()}`);
    const lbAnswer = await token("pg-out");
    assert.equal(lbAnswer.status, 503, show(lbAnswer));
    assert.equal(lbAnswer.json?.error?.code, "unavailable", show(lbAnswer));
    await pg.resume();
    const back = await pollUntil(async () => {
      const r = await token(`pg-back-${n++}`);
      return r.status === 200 ? r : null;
    }, { deadlineMs: 60_000, intervalMs: 250 });
    assert.ok(back, `not served again after PostgreSQL came back; log:\n${lbLog()}`);
    assert.ok(a.alive() && b.alive(), "both replicas still run (no restart)");
    // Both back in the public rotation (the checks' rise) before the next test stops one.
    const both = await pollUntil(async () => {
      const before = [await answered(a, "/healthz"), await answered(b, "/healthz")];
      for (let i = 0; i < 4; i++) {
        if ((await httpRequest(`${lbUrl()}/healthz`)).status !== 200) return false;
      }
      return (await answered(a, "/healthz")) > before[0] && (await answered(b, "/healthz")) > before[1];
    }, { deadlineMs: 30_000, intervalMs: 250 });
    assert.ok(both, `the balancer did not take both replicas back; log:\n${lbLog()}`);
  });

  test("a stopped replica costs no request", async () => {
    const r0 = await b.stop();
    assert.equal(r0.code, 0, `replica b exit: ${JSON.stringify(r0)}`);
    // Until the health check marks b down, a connection to it fails and is sent to a instead.
    for (let i = 0; i < 20; i++) {
      const r = await httpRequest(`${lbUrl()}/readyz`);
      assert.equal(r.status, 200, `${show(r)}\nlog:\n${lbLog()}`);
    }
  });

  test("no replica left: 503 in tokenvend's error shape, and the monitor URI says so", async () => {
    const r0 = await a.stop();
    assert.equal(r0.code, 0, `replica a exit: ${JSON.stringify(r0)}`);
    const r = await httpRequest(`${lbUrl()}/api/token`);
    assert.equal(r.status, 503, show(r));
    assert.match(r.headers["content-type"] ?? "", /^application\/json/, show(r));
    assert.deepEqual(Object.keys(r.json ?? {}), ["error"], show(r));
    assert.deepEqual(Object.keys(r.json.error).sort(), ["code", "message"], show(r));
    assert.equal(r.json.error.code, "unavailable", show(r));
    assert.match(r.headers["x-request-id"] ?? "", /^[A-Za-z0-9._-]{1,64}$/, show(r));
    assert.equal(r.headers["cache-control"], "no-store", show(r));
    assert.equal(r.headers["retry-after"], "1", show(r));
    const down = await pollUntil(async () => {
      const m = await httpRequest(`http://127.0.0.1:${ports.mon}/lb/healthz`, { timeoutMs: 2000 });
      return m.status === 503;
    }, { deadlineMs: 30_000, intervalMs: 250 });
    assert.ok(down, `the monitor URI still reports a replica up; log:\n${lbLog()}`);
  });
});

describe("compose.replicas.yaml: the balancer and a replica that closes without answering", { skip }, () => {
  let emu;
  let real;
  let fake;
  let lb;
  let dir;
  let ports;
  let apiKey;
  const seen = [];

  before(async () => {
    emu = await startEmulator();
    real = await startService({ emu });
    apiKey = (await real.createApiKey("lb-test")).key;
    // Passes the balancer's /readyz check, so it stays in the rotation, and drops the connection
    // of every other request once the request is in.
    fake = createServer((req, res) => {
      if (req.url === "/readyz") {
        res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ready"}');
        return;
      }
      seen.push(`${req.method} ${req.url}`);
      req.socket.destroy();
    });
    await new Promise((res) => fake.listen(0, "127.0.0.1", res));
    const fakeUrl = `http://127.0.0.1:${fake.address().port}`;
    dir = mkdtempSync(join(tmpdir(), "tv-lb-"));
    const [pub, int, mon] = await freePorts(3);
    ports = { pub, int, mon };
    lb = await startHaproxy(dir, localConfig(ports, [{ publicUrl: fakeUrl, internalUrl: fakeUrl }, real]), mon);
  });

  after(async () => {
    if (lb) await lb.stop();
    if (fake) await new Promise((res) => fake.close(() => res()));
    if (real) await real.cleanup();
    if (emu) await emu.stop();
    if (dir && !process.env.TV_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
  });

  test("requests the stand-in drops are answered by the other replica", async () => {
    const auth = { authorization: `Bearer ${apiKey}` };
    seen.length = 0;
    for (let i = 0; i < 10; i++) {
      const pubR = await httpRequest(`http://127.0.0.1:${ports.pub}/healthz`);
      assert.equal(pubR.status, 200, `${show(pubR)}\nlog:\n${lb.log()}`);
      const put = await httpRequest(`http://127.0.0.1:${ports.int}/internal/users/drop-${i}`, { method: "PUT", headers: auth });
      assert.equal(put.status, 201, `${show(put)}\nlog:\n${lb.log()}`);
    }
    // Round robin sent the stand-in its share, so the answers above include repeated requests.
    assert.ok(seen.some((r) => r === "GET /healthz"), `the stand-in saw: ${seen}`);
    assert.ok(seen.some((r) => r.startsWith("PUT /internal/users/drop-")), `the stand-in saw: ${seen}`);
  });

  test("a standalone identity's create is never sent twice: 502 in the error shape", async () => {
    const auth = { authorization: `Bearer ${apiKey}` };
    seen.length = 0;
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const r = await httpRequest(`http://127.0.0.1:${ports.int}/internal/identities`, { method: "POST", headers: auth });
      statuses.push(r.status);
      if (r.status === 502) {
        assert.deepEqual(Object.keys(r.json ?? {}), ["error"], show(r));
        assert.equal(r.json.error.code, "unavailable", show(r));
        assert.match(r.headers["x-request-id"] ?? "", /^[A-Za-z0-9._-]{1,64}$/, show(r));
      } else {
        assert.equal(r.status, 201, show(r));
      }
    }
    const dropped = seen.filter((r) => r === "POST /internal/identities").length;
    assert.ok(dropped > 0, `round robin never sent the stand-in a create: ${statuses}`);
    // Each create the stand-in dropped came back as a 502 and went nowhere else.
    assert.equal(statuses.filter((s) => s === 502).length, dropped, `statuses ${statuses}, dropped ${dropped}`);
  });
});
