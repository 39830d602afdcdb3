// Review 10b (adversarial): an honest overload answer when the store cannot take the budget's
// slots. With TOKENVEND_ACS_BUDGET on (the default) and the store unable to write (here another
// process holds SQLite's write lock; the same for PostgreSQL down), a token request that needs
// ACS ends with 503 + Retry-After, as documented, but its message tells the caller "the ACS call
// budget is spent", which is false: no ACS call was made and the quota is untouched. The cause
// is the store (the log says so); the caller and the operator reading the answer are misled.
// Real binaries on loopback: acs-emulator upstream, a temporary database, a local JWKS issuer.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { httpRequest, serveSkipReason, startService, storeIsPg } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason() || (storeIsPg() ? "SQLite only (the lock is SQLite's)" : false);
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;

// Another process holds SQLite's write lock until killed (WAL: readers still read).
function holdWriteLock(dbPath) {
  return new Promise((resolve, reject) => {
    const p = spawn("python3", ["-c",
      "import sqlite3,sys,time\n" +
      "c=sqlite3.connect(sys.argv[1],isolation_level=None,timeout=30)\n" +
      "c.execute('BEGIN IMMEDIATE')\nprint('locked',flush=True)\ntime.sleep(600)\n", dbPath],
    { stdio: ["ignore", "pipe", "inherit"] });
    p.stdout.once("data", () => resolve(p));
    p.once("error", reject);
    p.once("exit", (c) => reject(new Error(`lock holder exited ${c}`)));
  });
}

describe("review10b: the budget's 503 while the store cannot write", { skip }, () => {
  let emu;
  let jwks;
  let svc;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({ emu, jwks });
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test("store locked, budget untouched: the 503 does not claim the budget is spent", async () => {
    const bearer = jwks.token(uid("locked"));
    const warm = await svc.pub("GET", "/api/token", { token: bearer });
    assert.equal(warm.status, 200, `warm-up: ${show(warm)}`);
    const lock = await holdWriteLock(svc.dbPath);
    let r;
    try {
      // Another lifetime: a cache miss, so an ACS issue (the mapping exists already).
      r = await httpRequest(`${svc.publicUrl}/api/token`, {
        method: "POST", timeoutMs: 120_000,
        headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
        body: JSON.stringify({ expiresInMinutes: 75 }),
      });
    } finally {
      lock.kill("SIGKILL");
    }
    assert.equal(r.status, 503, show(r));
    assert.match(String(r.headers["retry-after"]), /^[1-9][0-9]*$/, `Retry-After: ${show(r)}`);
    assert.doesNotMatch(r.json?.error?.message ?? "", /budget is spent/,
      `one call into an untouched budget (1000/30s) is told the budget is spent: ${show(r)}`);
  });
});
