// tokenvend serve, two replicas on one database (issue 9, outbox leases): a delete that one replica
// accepted is finished by the other after the first was killed with SIGKILL, both when the killed
// replica had already answered 202 (its attempt failed, the row rescheduled) and when it died with
// its own ACS delete in flight (the row leased to it: due again only when the lease runs out).
// Both replicas share one SQLite file here; the lease rules are the same on PostgreSQL (the store
// tests run them on both backends).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { startEmulator } from "./lib/emulator.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
// The ACS deadline sets the outbox lease (deadline + 15 s), so the in-flight case waits ~21 s.
const ACS_DEADLINE_MS = 6000;
const FINISH_DEADLINE_MS = 60_000;

describe("tokenvend serve: outbox across replicas", { skip }, () => {
  let emu;
  let a;
  let b;
  let apiKey;

  const env = {
    TOKENVEND_OUTBOX_INTERVAL_MS: "250",
    TOKENVEND_OUTBOX_BACKOFF_MAX_MS: "2000",
    TOKENVEND_ACS_DEADLINE_MS: String(ACS_DEADLINE_MS),
    TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: String(ACS_DEADLINE_MS),
    TOKENVEND_ACS_MAX_RETRIES: "0",
  };

  // A fresh replica A and a replica B on A's database; each test kills A.
  const startPair = async () => {
    a = await startService({ emu, env });
    b = await startService({ emu, env: { ...env, TOKENVEND_DB: a.dbPath } });
    apiKey = (await a.createApiKey(uid("replicas"))).key;
  };
  const stopPair = async () => {
    await b?.cleanup();
    await a?.cleanup();
    a = b = undefined;
  };
  const killA = async () => {
    a.proc.kill("SIGKILL");
    const r = await a.exited;
    assert.equal(r.signal, "SIGKILL", `replica A was killed: ${JSON.stringify(r)}`);
  };

  before(async () => {
    emu = await startEmulator();
  });

  after(async () => {
    await stopPair();
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

  // True once the emulator no longer knows the identity: issuing for it is 404.
  const identityGone = async (acsId) => {
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

  // Outbox rows still waiting, from a replica's /metrics.
  const outboxPending = async (svc) => {
    const r = await svc.int("GET", "/metrics");
    assert.equal(r.status, 200, show(r));
    const m = /^tokenvend_outbox_pending(?:\{[^}]*\})? (\d+)/m.exec(r.text);
    assert.ok(m, "the replica exports tokenvend_outbox_pending");
    return Number(m[1]);
  };

  const tokenVia = async (svc, sub) =>
    assertTokenResponse(await svc.int("POST", `/internal/users/${encodeURIComponent(sub)}/token`, { key: apiKey }),
      { what: `token for ${sub}` });

  // The survivor B deletes the identity exactly once and empties the outbox.
  const survivorFinishes = async (acsId) => {
    const gone = await pollUntil(() => identityGone(acsId), { deadlineMs: FINISH_DEADLINE_MS, intervalMs: 300 });
    assert.ok(gone, `replica B deleted ${acsId} within ${FINISH_DEADLINE_MS} ms; B's stderr:\n${b.stderrTail(3000)}`);
    const drained = await pollUntil(async () => (await outboxPending(b)) === 0, { deadlineMs: 10_000, intervalMs: 200 });
    assert.ok(drained, `B's outbox is empty (tokenvend_outbox_pending ${await outboxPending(b)})`);
    const s = await emu.stats();
    assert.equal(s.succeeded.delete, 1, `one successful ACS delete: ${JSON.stringify(s)}`);
  };

  test("a delete A answered 202 while ACS failed, A killed: B finishes the ACS delete", async () => {
    await startPair();
    try {
      const sub = uid("kill202");
      const tok = await tokenVia(a, sub);
      await emu.resetStats();
      await setFaults({ error_rate: 1, error_status: 503, ops: ["delete"] });
      let cleared = false;
      try {
        const d = await a.int("DELETE", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey });
        assert.equal(d.status, 202, `DELETE on A while ACS fails: ${show(d)}`);
        await killA();
        // The mapping is gone for B too.
        const g = await b.int("GET", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey });
        assert.equal(g.status, 404, `B no longer knows the user: ${show(g)}`);
        await clearFaults();
        cleared = true;
        await survivorFinishes(tok.userId);
      } finally {
        if (!cleared) await clearFaults();
      }
    } finally {
      await stopPair();
    }
  });

  test("A killed while its own ACS delete is in flight (row leased to A): B finishes it once the lease runs out", async () => {
    await startPair();
    try {
      const sub = uid("killflight");
      const tok = await tokenVia(a, sub);
      await emu.resetStats();
      // A's delete reaches the emulator, waits there and would fail: A dies before any outcome.
      await setFaults({ latency_ms: ACS_DEADLINE_MS - 1000, error_rate: 1, error_status: 503, ops: ["delete"] });
      let cleared = false;
      try {
        const pending = a.int("DELETE", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey })
          .then((r) => ({ answered: r }), (err) => ({ failed: err }));
        const arrived = await pollUntil(async () => (await emu.stats()).requests.delete >= 1,
          { deadlineMs: 20_000, intervalMs: 20 });
        assert.ok(arrived, "A's ACS delete reached the emulator");
        await killA();
        const outcome = await pending;
        assert.ok(outcome.failed, `A never answered the DELETE (it died with the call in flight): ${
          outcome.answered ? show(outcome.answered) : ""}`);
        await clearFaults();
        cleared = true;
        const g = await b.int("GET", `/internal/users/${encodeURIComponent(sub)}`, { key: apiKey });
        assert.equal(g.status, 404, `the mapping went with A's delete: ${show(g)}`);
        await survivorFinishes(tok.userId);
      } finally {
        if (!cleared) await clearFaults();
      }
    } finally {
      await stopPair();
    }
  });
});
