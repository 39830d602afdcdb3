// tokenvend serve, races and limits found in review: a flood of logins is refused with 503 and
// Retry-After instead of queueing without bound (finding 2); a repeated DELETE answers 202 while
// the outbox still owes ACS the delete (finding 3); a DELETE during the user's in-flight create
// waits for it and leaves no mapping and no identity behind (finding 5).

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const OUTBOX_DEADLINE_MS = 30_000;

describe("tokenvend serve: races and limits", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let apiKey;
  const account = { name: uid("racer"), password: `pw-${randomBytes(9).toString("base64url")}` };

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({
      emu,
      jwks,
      localAccounts: true,
      env: {
        TOKENVEND_OUTBOX_INTERVAL_MS: "250",
        TOKENVEND_OUTBOX_BACKOFF_MAX_MS: "2000",
        TOKENVEND_ACS_MAX_RETRIES: "0",
      },
    });
    apiKey = (await svc.createApiKey("races")).key;
    await svc.addAccount(account.name, account.password);
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  const setFaults = async (faults) => {
    const r = await emu.request("PUT", "/emulator/faults", faults);
    assert.ok(r.status >= 200 && r.status < 300, `PUT /emulator/faults -> ${r.status}`);
  };
  const clearFaults = async () => {
    const r = await emu.request("DELETE", "/emulator/faults");
    assert.ok(r.status >= 200 && r.status < 300, `DELETE /emulator/faults -> ${r.status}`);
  };

  test("a flood of bad logins is refused with 503 + Retry-After; a valid login still gets through", async (t) => {
    const n = 120;
    const flood = await Promise.all(
      Array.from({ length: n }, () =>
        svc.pub("POST", "/api/login", { body: { username: uid("nobody"), password: "wrong" } })),
    );
    const counts = {};
    for (const r of flood) counts[r.status] = (counts[r.status] || 0) + 1;
    t.diagnostic(`${n} concurrent bad logins answered: ${JSON.stringify(counts)}`);
    for (const r of flood) {
      assert.ok(r.status === 401 || r.status === 503, `flood login: ${show(r)}`);
      if (r.status === 503) {
        assert.equal(r.headers["retry-after"], "1", `503 carries Retry-After: 1: ${show(r)}`);
        assert.equal(r.json?.error?.code, "unavailable", show(r));
      }
    }
    // One client address holds at most login_per_address (4) of the 32 slots: with 120 at once,
    // most must have been refused rather than queued, and at least that share served.
    assert.ok((counts[503] || 0) > 0, `no login was refused: ${JSON.stringify(counts)}`);
    assert.ok((counts[401] || 0) >= 4, `the queue still served logins: ${JSON.stringify(counts)}`);

    // A valid login, honouring Retry-After, succeeds.
    const ok = await pollUntil(async () => {
      const r = await svc.pub("POST", "/api/login", { body: { username: account.name, password: account.password } });
      if (r.status === 503) return false;
      return r;
    }, { deadlineMs: 30_000, intervalMs: 1000 });
    assert.ok(ok, "valid login never got through");
    assert.equal(ok.status, 200, `valid login: ${show(ok)}`);
    assert.equal(svc.alive(), true);
  });

  test("DELETE again while the outbox still owes ACS the delete: 202, then 204 once done", async () => {
    const id = uid("again");
    const p = `/internal/users/${id}`;
    const put = await svc.int("PUT", p, { key: apiKey });
    assert.equal(put.status, 201, show(put));
    await setFaults({ error_rate: 1, error_status: 503, ops: ["delete"] });
    try {
      const d1 = await svc.int("DELETE", p, { key: apiKey });
      assert.equal(d1.status, 202, `first DELETE while ACS fails: ${show(d1)}`);
      const d2 = await svc.int("DELETE", p, { key: apiKey });
      assert.equal(d2.status, 202, `second DELETE while the outbox is pending: ${show(d2)}`);
    } finally {
      await clearFaults();
    }
    const done = await pollUntil(async () => {
      const r = await svc.int("DELETE", p, { key: apiKey });
      return r.status === 204 ? r : false;
    }, { deadlineMs: OUTBOX_DEADLINE_MS, intervalMs: 250 });
    assert.ok(done, "DELETE never answered 204 after the faults cleared");
  });

  test("DELETE during the user's in-flight create: answered after it, no mapping or identity remains", async () => {
    const id = uid("dave");
    const p = `/internal/users/${id}`;
    await setFaults({ latency_ms: 2000, ops: ["create"] });
    let tokenResp;
    let delResp;
    try {
      const createsBefore = (await emu.stats()).requests.create;
      const tokenP = svc.int("POST", `${p}/token`, { key: apiKey, body: {} }).then((r) => {
        tokenResp = { r, at: Date.now() };
        return r;
      });
      // The DELETE must arrive while the create is at the emulator (held there 2 s), not before
      // the service sent it: wait for the emulator to have counted it, not for a fixed time
      // (under load the service may take longer than any fixed sleep to get there).
      const arrived = await pollUntil(async () => (await emu.stats()).requests.create > createsBefore,
        { deadlineMs: 10_000, intervalMs: 10 });
      assert.ok(arrived, "the user's create never reached the emulator");
      const delP = svc.int("DELETE", p, { key: apiKey }).then((r) => {
        delResp = { r, at: Date.now() };
        return r;
      });
      await Promise.all([tokenP, delP]);
    } finally {
      await clearFaults();
    }
    assert.equal(tokenResp.r.status, 200, `token request that started the create: ${show(tokenResp.r)}`);
    assert.equal(delResp.r.status, 204, `DELETE: ${show(delResp.r)}`);
    const g = await svc.int("GET", p, { key: apiKey });
    assert.equal(g.status, 404, `GET after the DELETE answered: ${show(g)}`);
    const v = await emu.validate(tokenResp.r.json.token);
    assert.equal(v.valid, false, `the identity's token after the delete: ${JSON.stringify(v)}`);
    assert.equal(v.reason, "deleted", `the identity is deleted at the emulator: ${JSON.stringify(v)}`);
  });
});
