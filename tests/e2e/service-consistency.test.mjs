// tokenvend serve, consistency (README "Consistency"): 100 concurrent first token requests for one user share a
// single upstream create; delete while ACS fails answers 202 and the outbox finishes once the
// faults clear, also across a restart of tokenvend; a mapping of another ACS resource is refused.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertTokenResponse, jsonStrings, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const OUTBOX_DEADLINE_MS = 30_000;

describe("tokenvend serve: consistency", { skip }, () => {
  let emu;
  let emu2;
  let jwks;
  let svc;
  let apiKey;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    // Short outbox period and backoff cap so the suite does not wait long; the retry logic itself
    // is the product's.
    svc = await startService({
      emu,
      jwks,
      env: {
        TOKENVEND_OUTBOX_INTERVAL_MS: "250",
        TOKENVEND_OUTBOX_BACKOFF_MAX_MS: "3000",
        TOKENVEND_ACS_MAX_RETRIES: "1",
        TOKENVEND_ACS_BACKOFF_BASE_MS: "50",
        TOKENVEND_ACS_BACKOFF_MAX_MS: "200",
      },
    });
    apiKey = (await svc.createApiKey("consistency")).key;
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu2?.stop();
    await emu?.stop();
  });

  const setFaults = async (faults) => {
    const r = await emu.request("PUT", "/emulator/faults", faults);
    assert.ok(r.status >= 200 && r.status < 300, `PUT /emulator/faults -> ${r.status} ${JSON.stringify(r.body)}`);
  };
  const clearFaults = async () => {
    const r = await emu.request("DELETE", "/emulator/faults");
    assert.ok(r.status >= 200 && r.status < 300, `DELETE /emulator/faults -> ${r.status}`);
  };

  // Every mapping through the cursor-paginated list.
  const listAll = async () => {
    const names = [];
    let afterCursor;
    for (let page = 0; page < 1000; page++) {
      const q = afterCursor === undefined ? "?limit=50" : `?limit=50&after=${encodeURIComponent(afterCursor)}`;
      const r = await svc.int("GET", `/internal/users${q}`, { key: apiKey });
      assert.equal(r.status, 200, show(r));
      const list = r.json.users;
      for (const item of list) names.push({ name: item.userId, item });
      const next = r.json.next;
      if (!next || list.length === 0) break;
      afterCursor = next;
    }
    return names;
  };

  // True once the emulator no longer knows the identity: its earlier token validates as deleted
  // and issuing a new one through the real SDK is 404.
  const identityGone = async (token, acsId) => {
    const v = await emu.validate(token);
    if (v.reason !== "deleted") return false;
    const client = new CommunicationIdentityClient(emu.connectionString,
      { allowInsecureConnection: true, retryOptions: { maxRetries: 0 } });
    try {
      await client.getToken({ communicationUserId: acsId }, ["chat"]);
      return false;
    } catch (err) {
      assert.equal(err.statusCode, 404, `issuing for a deleted identity at the emulator: ${err.message}`);
      return true;
    }
  };

  // Outbox rows still waiting, from /metrics (null when the service does not export the gauge).
  const outboxPending = async () => {
    const r = await svc.int("GET", "/metrics");
    assert.equal(r.status, 200, show(r));
    const m = /^tokenvend_outbox_pending(?:\{[^}]*\})? (\d+)/m.exec(r.text);
    return m ? Number(m[1]) : null;
  };
  const outboxDrained = async () => {
    const n = await pollUntil(async () => ((await outboxPending()) ?? 0) === 0, { deadlineMs: 10_000, intervalMs: 200 });
    assert.ok(n, `the outbox has no pending row left (tokenvend_outbox_pending ${await outboxPending()})`);
  };

  test("100 concurrent first GET /api/token for one user: one upstream create, one mapping, one identity", async () => {
    const sub = uid("crowd");
    await emu.resetStats();
    // Slow creates keep the first one in flight while the other 99 arrive.
    await setFaults({ latency_ms: 400, ops: ["create"] });
    let answers;
    try {
      answers = await Promise.all(Array.from({ length: 100 }, () => svc.pub("GET", "/api/token", { token: jwks.token(sub) })));
    } finally {
      await clearFaults();
    }
    const statuses = answers.map((r) => r.status);
    const firstBad = answers.find((r) => r.status !== 200);
    assert.deepEqual([...new Set(statuses)], [200], `all 200 (first other: ${firstBad ? show(firstBad) : "-"})`);
    const ids = new Set(answers.map((r, i) => assertTokenResponse(r, { what: `answer ${i}` }).userId));
    assert.equal(ids.size, 1, `all 100 answers name the same identity: ${[...ids].join(", ")}`);
    const [id] = ids;

    const stats = await emu.stats();
    assert.equal(stats.requests.create, 1, `exactly one create reached the emulator: ${JSON.stringify(stats)}`);
    assert.equal(stats.succeeded.create, 1);

    const g = await svc.int("GET", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey });
    assert.equal(g.status, 200, show(g));
    assert.ok(jsonStrings(g.json).includes(id), `the mapping names ${id}: ${show(g)}`);
    const rows = (await listAll()).filter((x) => x.name === sub);
    assert.equal(rows.length, 1, `one mapping row for the user: ${JSON.stringify(rows)}`);
    assert.ok(jsonStrings(rows[0].item).includes(id), "the listed mapping names the identity");
  });

  test("concurrent first requests of 20 users x 5: one create per user, no identity shared across users", async () => {
    const subs = Array.from({ length: 20 }, () => uid("pair"));
    await emu.resetStats();
    await setFaults({ latency_ms: 200, ops: ["create"] });
    let answers;
    try {
      answers = await Promise.all(subs.flatMap((sub) =>
        Array.from({ length: 5 }, async () => ({ sub, r: await svc.pub("GET", "/api/token", { token: jwks.token(sub) }) }))));
    } finally {
      await clearFaults();
    }
    const bySub = new Map();
    for (const { sub, r } of answers) {
      const id = assertTokenResponse(r, { what: sub }).userId;
      if (!bySub.has(sub)) bySub.set(sub, new Set());
      bySub.get(sub).add(id);
    }
    for (const [sub, set] of bySub) assert.equal(set.size, 1, `${sub}: one identity`);
    const all = new Set([...bySub.values()].map((s) => [...s][0]));
    assert.equal(all.size, 20, "20 users, 20 identities");
    assert.equal((await emu.stats()).requests.create, 20, "one create per user");
  });

  test("DELETE /api/user while ACS fails: 202, mapping gone at once, outbox deletes after faults clear", async () => {
    const sub = uid("gdpr");
    const t = jwks.token(sub);
    const tok = assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }), { what: "token before delete" });
    await emu.resetStats();
    await setFaults({ error_rate: 1, error_status: 503, ops: ["delete"] });
    let cleared = false;
    try {
      const d = await svc.pub("DELETE", "/api/user", { token: t });
      assert.equal(d.status, 202, `DELETE while ACS fails: ${show(d)}`);
      // The mapping stops issuing at once.
      assertError(await svc.pub("GET", "/api/user", { token: t }), 404, "not_found", "GET /api/user after 202");
      assertError(await svc.int("GET", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey }), 404, "not_found",
        "internal GET after 202");
      const again = await svc.pub("DELETE", "/api/user", { token: t });
      assert.ok(again.status === 202 || again.status === 204, `DELETE again while pending: ${show(again)}`);
      const s = await emu.stats();
      assert.ok(s.requests.delete >= 1, `the delete was tried: ${JSON.stringify(s)}`);
      assert.equal(s.succeeded.delete, 0, "and failed");
      assert.notEqual((await emu.validate(tok.token)).reason, "deleted", "the emulator still has the identity");
      const pending = await outboxPending();
      if (pending !== null) assert.ok(pending >= 1, `an outbox row is pending (tokenvend_outbox_pending ${pending})`);
      await clearFaults();
      cleared = true;
      const gone = await pollUntil(() => identityGone(tok.token, tok.userId), { deadlineMs: OUTBOX_DEADLINE_MS, intervalMs: 300 });
      assert.ok(gone,
        `the outbox deleted ${tok.userId} within ${OUTBOX_DEADLINE_MS} ms of clearing the faults; stderr:\n${svc.stderrTail(3000)}`);
      await outboxDrained();
    } finally {
      if (!cleared) await clearFaults();
    }
    const d3 = await svc.pub("DELETE", "/api/user", { token: t });
    assert.equal(d3.status, 204, `DELETE once done: ${show(d3)}`);
  });

  test("DELETE /internal/users/{id} while ACS fails: 202, finished by the outbox after a restart of tokenvend", async () => {
    const sub = uid("restart");
    const tok = assertTokenResponse(await svc.int("POST", `/internal/users/${encodeURIComponent(sub)}/token`, { key: apiKey }),
      { what: "token before delete" });
    await setFaults({ error_rate: 1, error_status: 503, ops: ["delete"] });
    let stopped;
    try {
      const d = await svc.int("DELETE", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey });
      assert.equal(d.status, 202, `DELETE while ACS fails: ${show(d)}`);
      stopped = await svc.stop();
    } finally {
      await clearFaults();
    }
    assert.deepEqual([stopped.code, stopped.signal], [0, null], `SIGTERM with a pending outbox row: exit 0 (${JSON.stringify(stopped)})`);
    assert.notEqual((await emu.validate(tok.token)).reason, "deleted", "not deleted while tokenvend was down");

    await svc.start();
    assertError(await svc.int("GET", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey }), 404, "not_found",
      "mapping still gone after restart");
    const gone = await pollUntil(() => identityGone(tok.token, tok.userId), { deadlineMs: OUTBOX_DEADLINE_MS, intervalMs: 300 });
    assert.ok(gone, `after the restart the outbox deleted ${tok.userId} within ${OUTBOX_DEADLINE_MS} ms; stderr:\n${svc.stderrTail(3000)}`);
    await outboxDrained();
  });

  test("a mapping of another ACS resource is reported (409), not used; new users work there", async () => {
    const sub = uid("moved");
    const t = jwks.token(sub);
    const first = assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }), { what: "token in resource 1" });
    const r1 = await svc.stop();
    assert.equal(r1.code, 0);
    emu2 = await startEmulator();
    await svc.start({ COMMUNICATION_SERVICES_CONNECTION_STRING: emu2.connectionString });

    const e = assertError(await svc.pub("GET", "/api/token", { token: t }), 409, "conflict", "token for a mapping of another resource");
    assert.match(e.message, /resource/i, `the message says why: ${e.message}`);
    assertError(await svc.pub("GET", "/api/user", { token: t }), 409, "conflict", "GET /api/user of another resource");
    assert.equal((await emu2.stats()).requests.issue, 0, "nothing was issued for it in resource 2");
    assert.equal((await emu.validate(first.token)).valid, true, "resource 1 untouched");

    const fresh = assertTokenResponse(await svc.pub("GET", "/api/token", { token: jwks.token(uid("new")) }),
      { what: "new user in resource 2" });
    assert.equal((await emu2.validate(fresh.token)).valid, true, "issued by resource 2");
    const r2 = await svc.stop();
    assert.deepEqual([r2.code, r2.signal], [0, null], `exit after SIGTERM: ${JSON.stringify(r2)}`);
  });
});
