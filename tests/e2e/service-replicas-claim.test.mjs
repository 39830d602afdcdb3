// tokenvend serve, three processes on one database (issue 9): 99 concurrent first token requests
// for one new user spread over them get one identity in every answer, and the emulator sees
// exactly one create (the create claim in the store; before it, each process made its own and
// two identities were orphaned). A user whose claim another process holds past a waiter's bound
// gets 503 unavailable with Retry-After and the error shape, and the holder's identity after.
// Real binaries on loopback: acs-emulator upstream (creates slowed down so that every process
// finds no mapping), `tokenvend serve` processes on one SQLite file, a local JWKS issuer.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const REPLICAS = 3;
const REQUESTS = 99;

describe("tokenvend serve: replicas on one database", { skip }, () => {
  let emu;
  let jwks;
  const svcs = [];
  let slow;
  let apiKey;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    // A short ACS deadline keeps the "held claim" test short: a waiter gives up after the
    // deadline plus the claim's margin.
    const env = { TOKENVEND_ACS_DEADLINE_MS: "4000", TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: "3000" };
    svcs.push(await startService({ emu, jwks, env }));
    for (let i = 1; i < REPLICAS; i++) {
      svcs.push(await startService({ emu, jwks, env: { ...env, TOKENVEND_DB: svcs[0].dbPath } }));
    }
    // A fourth process with the default ACS deadline: a holder that outlasts the others' wait.
    slow = await startService({ emu, jwks, env: { TOKENVEND_DB: svcs[0].dbPath } });
    apiKey = (await svcs[0].createApiKey("replicas")).key;
  });

  after(async () => {
    await emu?.request("DELETE", "/emulator/faults");
    for (const s of svcs) await s.cleanup();
    await slow?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test("99 concurrent first requests over three processes: one identity, one ACS create", async () => {
    const user = uid("first");
    const tok = jwks.token(user);
    await emu.resetStats();
    const f = await emu.request("PUT", "/emulator/faults", { latency_ms: 400, ops: ["create"] });
    assert.equal(f.status, 200, JSON.stringify(f.body));
    const answers = await Promise.all(Array.from({ length: REQUESTS }, (_, i) =>
      svcs[i % REPLICAS].pub("GET", "/api/token", { token: tok })));
    await emu.request("DELETE", "/emulator/faults");
    for (const r of answers) assert.equal(r.status, 200, show(r));
    const ids = new Set(answers.map((r) => r.json.user.communicationUserId));
    assert.equal(ids.size, 1, `one identity in every answer: ${[...ids].join(", ")}`);
    const s = await emu.stats();
    assert.equal(s.requests.create, 1, "exactly one ACS create");
    assert.equal(s.identities_created, 1, "no orphaned identity");
    for (const svc of svcs) {
      const m = await svc.int("GET", "/internal/users/" + encodeURIComponent(user), { key: apiKey });
      assert.equal(m.status, 200, show(m));
      assert.equal(m.json.acsUserIdentity, [...ids][0], "every process reads the one mapping");
      const metrics = await svc.int("GET", "/metrics");
      assert.match(metrics.text, /^tokenvend_outbox_pending 0$/m, "nothing queued for deletion");
    }
  });

  test("a claim held past a waiter's bound: 503 unavailable with Retry-After, then the holder's identity", async () => {
    const user = uid("held");
    const tok = jwks.token(user);
    await emu.resetStats();
    // The holder (default 30 s ACS deadline, so its claim lives 32 s) gets a create that ACS
    // answers after 8 s: longer than a waiter's bound (4 s deadline + 2 s margin).
    const f = await emu.request("PUT", "/emulator/faults", { latency_ms: 8000, ops: ["create"], count: 1 });
    assert.equal(f.status, 200, JSON.stringify(f.body));
    const holder = slow.pub("GET", "/api/token", { token: tok });
    let seen = false;
    for (let i = 0; i < 500 && !seen; i++) {
      seen = (await emu.stats()).requests.create >= 1;
      if (!seen) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(seen, "the holder's create reached the emulator first");
    const waiter = await svcs[1].pub("GET", "/api/token", { token: tok });
    assert.equal(waiter.status, 503, show(waiter));
    assert.equal(waiter.json.error.code, "unavailable", show(waiter));
    assert.match(waiter.json.error.message, /another tokenvend process/, show(waiter));
    assert.match(waiter.headers["retry-after"] ?? "", /^[1-9][0-9]*$/, show(waiter));
    const held = await holder;
    assert.equal(held.status, 200, show(held));
    const again = await svcs[1].pub("GET", "/api/token", { token: tok });
    assert.equal(again.status, 200, show(again));
    assert.equal(again.json.user.communicationUserId, held.json.user.communicationUserId);
    assert.equal((await emu.stats()).requests.create, 1, "the waiter never asked ACS");
  });
});
