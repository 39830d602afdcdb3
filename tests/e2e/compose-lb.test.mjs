// The load balancer of compose.replicas.yaml, run for real: HAProxy with the recipe's own
// configuration (inline in the compose file) in front of two `tokenvend serve` processes on one
// database, on loopback. Only what Compose provides is swapped: the listen addresses become free
// loopback ports and the DNS-filled server slots become the two processes' addresses. Shows that
// requests reach both replicas, the internal API is balanced too, a stopped replica costs no
// request, and with no replica left the balancer answers 503 in tokenvend's error shape.
// Needs the Debian package haproxy (skipped without it).

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import YAML from "yaml";
import { REPO_ROOT, startEmulator } from "./lib/emulator.mjs";
import { freePorts, httpRequest, pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const haproxyMissing = spawnSync("haproxy", ["-v"]).status === 0 ? false : "haproxy is not installed (Debian package haproxy)";
const skip = serveSkipReason() || haproxyMissing;
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

describe("compose.replicas.yaml: the balancer in front of two replicas", { skip }, () => {
  let emu;
  let a;
  let b;
  let lb;
  let lbExit;
  let dir;
  let ports;
  let apiKey;
  const lbUrl = () => `http://127.0.0.1:${ports.pub}`;
  const lbInternalUrl = () => `http://127.0.0.1:${ports.int}`;
  const lbLog = () => readFileSync(join(dir, "haproxy.log"), "utf8");

  before(async () => {
    emu = await startEmulator();
    a = await startService({ emu });
    // The second replica on the first one's database, as replicas share theirs.
    b = await startService({ emu, env: { TOKENVEND_DB: a.dbPath } });
    dir = mkdtempSync(join(tmpdir(), "tv-lb-"));
    const [pub, int, mon] = await freePorts(3);
    ports = { pub, int, mon };
    writeFileSync(join(dir, "haproxy.cfg"), localConfig(ports, [a, b]));
    const check = spawnSync("haproxy", ["-c", "-f", join(dir, "haproxy.cfg")], { encoding: "utf8" });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const out = openSync(join(dir, "haproxy.log"), "a");
    try {
      lb = spawn("haproxy", ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: ["ignore", out, out] });
    } finally {
      closeSync(out);
    }
    lbExit = new Promise((res) => lb.once("exit", (code, signal) => res({ code, signal })));
    // Ready once its monitor URI says a replica passed the /readyz check.
    const up = await pollUntil(async () => {
      try {
        return (await httpRequest(`http://127.0.0.1:${mon}/lb/healthz`, { timeoutMs: 2000 })).status === 200;
      } catch {
        return false;
      }
    }, { deadlineMs: 30_000, intervalMs: 200 });
    assert.ok(up, `haproxy's monitor URI never answered 200; log:\n${lbLog()}`);
    apiKey = (await a.createApiKey("lb-test")).key;
  });

  after(async () => {
    if (lb && lb.exitCode === null && lb.signalCode === null) {
      lb.kill("SIGTERM");
      const t = setTimeout(() => lb.kill("SIGKILL"), STOP_DEADLINE_MS);
      await lbExit;
      clearTimeout(t);
    }
    if (b) await b.cleanup();
    if (a) await a.cleanup();
    if (emu) await emu.stop();
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
