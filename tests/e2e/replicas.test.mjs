// Three `tokenvend serve` replicas on one PostgreSQL database behave as one service (issue 9,
// "What it must show"; SPEC section 6):
//  1. 99 concurrent first requests for one new user spread round-robin over the three: every
//     answer 200 with one identity, and exactly one ACS create;
//  2. a revoke through A: within 1 s B and C serve tokens valid at the emulator, not the ones
//     they had cached before;
//  3. a delete through A: within 1 s B answers 404 for the user, and B's token request does not
//     serve the deleted identity's cached token;
//  4. a delete A accepted (202) while ACS failed, A killed with SIGKILL: a survivor finishes the
//     ACS delete, once;
//  5. SIGKILL of a replica under a write load spread over two: every mapping acknowledged (200) by
//     either is on the survivor with the same identity.
// Real binaries on loopback: acs-emulator upstream, a local OIDC issuer, a throw-away PostgreSQL
// 15 cluster (lib/pg.mjs), the replicas from lib/replicas.mjs. The token cache stays on (the
// default) so that 2 and 3 test what a replica serves from its cache; each test checks that the
// cache did serve the token again before the revoke or delete.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { killChildrenAtExit, startReplicas } from "./lib/replicas.mjs";
import { pollUntil, serveSkipReason } from "./lib/service.mjs";
import { assertError, assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const NAMES = ["A", "B", "C"];
const REQUESTS = 99;
// SPEC section 6 and the issue: a revoke or delete through one replica is honoured by every
// replica within 1 second. This bound is the assertion of tests 2 and 3, not a timeout.
const HONOURED_MS = 1000;
// ACS deadline of every replica: short, so a failing ACS delete answers 202 at once and an
// outbox lease (the deadline plus 15 s on the outbox branch) runs out quickly.
const ACS_DEADLINE_MS = 4000;
const FINISH_DEADLINE_MS = 60_000;

describe("tokenvend serve: three replicas on one PostgreSQL database", { skip }, () => {
  let emu;
  let jwks;
  let set;
  let svcs;
  let apiKey;

  before(async () => {
    killChildrenAtExit();
    [emu, jwks] = await Promise.all([startEmulator(), startJwksServer()]);
    set = await startReplicas({
      n: 3,
      emu,
      jwks,
      env: {
        TOKENVEND_OUTBOX_INTERVAL_MS: "250",
        TOKENVEND_OUTBOX_BACKOFF_MAX_MS: "2000",
        TOKENVEND_ACS_DEADLINE_MS: String(ACS_DEADLINE_MS),
        TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: "3000",
        TOKENVEND_ACS_MAX_RETRIES: "0",
      },
    });
    svcs = set.svcs;
    apiKey = set.apiKey;
  });

  after(async () => {
    await emu?.request("DELETE", "/emulator/faults").catch(() => {});
    await set?.stop();
    await jwks?.close();
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
  const userPath = (sub) => `/internal/users/${encodeURIComponent(sub)}`;
  // A killed replica comes back on the same database (fresh ports), so each test has three.
  const ensureAlive = async () => {
    for (const s of svcs) if (!s.alive()) await s.start();
  };
  const kill = async (svc, name) => {
    svc.proc.kill("SIGKILL");
    const r = await svc.exited;
    assert.equal(r.signal, "SIGKILL", `replica ${name} was killed: ${JSON.stringify(r)}`);
  };
  const outboxPending = async (svc) => {
    const r = await svc.int("GET", "/metrics");
    assert.equal(r.status, 200, show(r));
    const m = /^tokenvend_outbox_pending(?:\{[^}]*\})? (\d+)/m.exec(r.text);
    assert.ok(m, "the replica exports tokenvend_outbox_pending");
    return Number(m[1]);
  };

  // The user's token through every replica, twice each: the second answer must be the first
  // (served from that replica's token cache), so a later change proves the cache was dropped.
  const cacheOnEvery = async (bearer) => {
    const cached = [];
    let id;
    for (const [i, svc] of svcs.entries()) {
      const first = assertTokenResponse(await svc.pub("GET", "/api/token", { token: bearer }),
        { what: `${NAMES[i]}: first token`, userId: id });
      id = first.userId;
      const again = assertTokenResponse(await svc.pub("GET", "/api/token", { token: bearer }),
        { what: `${NAMES[i]}: token again`, userId: id });
      assert.equal(again.token, first.token, `${NAMES[i]} served its cached token again (the token cache is on)`);
      cached.push(first.token);
    }
    return { id, cached };
  };

  // Asks svc for the user's token until it is not `stale` and valid at the emulator. Succeeds when
  // a request sent within HONOURED_MS of t0 got such a token; otherwise fails naming what was
  // served. Resolves to { ms (send time after t0), token }.
  const freshWithin = async (svc, name, bearer, stale, id, t0) => {
    const seen = [];
    for (;;) {
      const sent = Date.now();
      if (sent - t0 > HONOURED_MS) {
        assert.fail(`replica ${name} did not serve a fresh valid token within ${HONOURED_MS} ms of the revoke's ` +
          `answer (SPEC section 6); it served: ${seen.join("; ")}`);
      }
      const t = assertTokenResponse(await svc.pub("GET", "/api/token", { token: bearer }),
        { what: `${name} after the revoke`, userId: id });
      const v = await emu.validate(t.token);
      if (t.token !== stale && v.valid === true) return { ms: sent - t0, token: t.token };
      seen.push(`+${sent - t0} ms: ${t.token === stale ? "its cached pre-revoke token" : "another token"} ` +
        `(emulator: ${v.reason})`);
      await sleep(25);
    }
  };

  test("99 concurrent first requests spread over three replicas: one identity in every answer, one ACS create", async () => {
    const sub = uid("first");
    const bearer = jwks.token(sub);
    await emu.resetStats();
    // Slow creates keep the first one in flight while all 99 arrive at their replicas.
    await setFaults({ latency_ms: 400, ops: ["create"] });
    let answers;
    try {
      answers = await Promise.all(Array.from({ length: REQUESTS }, (_, i) =>
        svcs[i % svcs.length].pub("GET", "/api/token", { token: bearer })));
    } finally {
      await clearFaults();
    }
    const bad = answers.map((r, i) => ({ r, i })).filter(({ r }) => r.status !== 200);
    assert.equal(bad.length, 0, `every answer is 200; ${bad.length} were not, e.g. ` +
      `${bad.slice(0, 3).map(({ r, i }) => `#${i} via ${NAMES[i % 3]}: ${show(r)}`).join(" | ")}`);
    const ids = new Set(answers.map((r, i) => assertTokenResponse(r, { what: `answer ${i}` }).userId));
    assert.equal(ids.size, 1, `one identity in every answer: ${[...ids].join(", ")}`);
    const [id] = ids;
    const s = await emu.stats();
    assert.equal(s.requests.create, 1, `exactly one ACS create reached the emulator: ${JSON.stringify(s)}`);
    assert.equal(s.identities_created, 1, `exactly one ACS identity exists, none orphaned: ${JSON.stringify(s)}`);
    for (const [i, svc] of svcs.entries()) {
      const m = await svc.int("GET", userPath(sub), { key: apiKey });
      assert.equal(m.status, 200, `${NAMES[i]} knows the user: ${show(m)}`);
      assert.equal(m.json.acsUserIdentity, id, `${NAMES[i]} reads the one mapping`);
    }
  });

  test("revoke through A: within 1 s B and C serve tokens valid at the emulator, not their cached ones", async () => {
    await ensureAlive();
    const sub = uid("revoke");
    const bearer = jwks.token(sub);
    const { id, cached } = await cacheOnEvery(bearer);
    const [a, b, c] = svcs;

    const r = await a.pub("POST", "/api/token/revoke", { token: bearer });
    const t0 = Date.now();
    assert.equal(r.status, 204, `revoke through A: ${show(r)}`);
    const [fb, fc] = await Promise.all([
      freshWithin(b, "B", bearer, cached[1], id, t0),
      freshWithin(c, "C", bearer, cached[2], id, t0),
    ]);
    // Checked after the polls, which the 1 s bound is about: the revoke did reach ACS.
    for (const [i, tok] of cached.entries()) {
      const v = await emu.validate(tok);
      assert.equal(v.valid, false, `${NAMES[i]}'s pre-revoke token is revoked at the emulator (${JSON.stringify(v)})`);
    }
    // A honours its own revoke at once; and none goes back to a pre-revoke token afterwards.
    for (const [i, svc] of svcs.entries()) {
      const t = assertTokenResponse(await svc.pub("GET", "/api/token", { token: bearer }),
        { what: `${NAMES[i]} later`, userId: id });
      assert.ok(!cached.includes(t.token), `${NAMES[i]} never serves a pre-revoke token again`);
      assert.equal((await emu.validate(t.token)).valid, true, `${NAMES[i]}'s later token is valid at the emulator`);
    }
    assert.notEqual(fb.token, cached[1]);
    assert.notEqual(fc.token, cached[2]);
  });

  test("delete through A: within 1 s B answers 404 for the user and serves no token of the deleted identity", async () => {
    await ensureAlive();
    const sub = uid("delete");
    const bearer = jwks.token(sub);
    const { id, cached } = await cacheOnEvery(bearer);
    const [a, b, c] = svcs;

    const d = await a.int("DELETE", userPath(sub), { key: apiKey });
    const t0 = Date.now();
    assert.equal(d.status, 204, `delete through A (ACS healthy): ${show(d)}`);

    // GET /internal/users/{id} answers 404 for a deleted user without creating one (docs/openapi.yaml).
    for (const [svc, name] of [[b, "B"], [c, "C"]]) {
      const seen = [];
      for (;;) {
        const sent = Date.now();
        if (sent - t0 > HONOURED_MS) {
          assert.fail(`replica ${name} still knew the deleted user ${HONOURED_MS} ms after A's delete answered ` +
            `(SPEC section 6): ${seen.join("; ")}`);
        }
        const g = await svc.int("GET", userPath(sub), { key: apiKey });
        if (g.status === 404) {
          assertError(g, 404, "not_found", `${name}: GET of the deleted user`);
          // The other token-less route that names the user answers the same, and creates nothing.
          assertError(await svc.int("POST", `${userPath(sub)}/revoke`, { key: apiKey }), 404, "not_found",
            `${name}: revoke of the deleted user`);
          break;
        }
        seen.push(`+${sent - t0} ms: ${show(g)}`);
        await sleep(25);
      }
    }
    assert.equal((await emu.validate(cached[1])).reason, "deleted", "the identity is deleted at the emulator");
    // A token request on B or C: never the cached token of the deleted identity. auto_create is on,
    // so the user gets a new identity, whose token is valid.
    for (const [i, svc] of [[1, b], [2, c]]) {
      const r = await svc.pub("GET", "/api/token", { token: bearer });
      assert.notEqual(r.json?.token, cached[i], `${NAMES[i]} served the deleted identity's cached token`);
      const t = assertTokenResponse(r, { what: `${NAMES[i]}: token after the delete` });
      assert.notEqual(t.userId, id, `${NAMES[i]}: not the deleted identity ${id}`);
      assert.equal((await emu.validate(t.token)).valid, true, `${NAMES[i]}'s new token is valid at the emulator`);
    }
  });

  test("a delete A accepted (202) while ACS failed, A killed with SIGKILL: a survivor finishes the ACS delete, once", async () => {
    await ensureAlive();
    const sub = uid("outbox");
    const [a, b, c] = svcs;
    const tok = assertTokenResponse(await a.int("POST", `${userPath(sub)}/token`, { key: apiKey }),
      { what: "token before the delete" });
    await emu.resetStats();
    await setFaults({ error_rate: 1, error_status: 503, ops: ["delete"] });
    let cleared = false;
    try {
      const d = await a.int("DELETE", userPath(sub), { key: apiKey });
      assert.equal(d.status, 202, `DELETE through A while ACS fails: ${show(d)}`);
      await kill(a, "A");
      assertError(await b.int("GET", userPath(sub), { key: apiKey }), 404, "not_found", "B after A's 202");
      assert.notEqual((await emu.validate(tok.token)).reason, "deleted", "not deleted while ACS failed");
      await clearFaults();
      cleared = true;
    } finally {
      if (!cleared) await clearFaults();
    }
    const gone = await pollUntil(async () => (await emu.validate(tok.token)).reason === "deleted",
      { deadlineMs: FINISH_DEADLINE_MS, intervalMs: 250 });
    assert.ok(gone, `a survivor deleted ${tok.userId} at the emulator within ${FINISH_DEADLINE_MS} ms; ` +
      `B's stderr:\n${b.stderrTail(2000)}\nC's stderr:\n${c.stderrTail(2000)}`);
    const drained = await pollUntil(async () => (await outboxPending(b)) === 0 && (await outboxPending(c)) === 0,
      { deadlineMs: 10_000, intervalMs: 200 });
    assert.ok(drained, `the outbox is empty (B: ${await outboxPending(b)}, C: ${await outboxPending(c)})`);
    const s = await emu.stats();
    assert.equal(s.succeeded.delete, 1, `the ACS delete succeeded exactly once: ${JSON.stringify(s)}`);
  });

  test("SIGKILL of a replica under a write load over two: every acknowledged mapping is on the survivor", async () => {
    await ensureAlive();
    const [, b, c] = svcs; // B survives, C is killed
    const WORKERS = 8;
    const KILL_AFTER = 25; // mappings C acknowledged before it is killed
    const AFTER_KILL = 25; // mappings B acknowledges after the kill before the load stops
    const CAP = 600; // requests in all: a bound on a misbehaving run, never reached normally
    const acked = [];
    const refusedByB = [];
    let lost = 0; // requests C never answered (in flight at the kill, or sent after it)
    let sent = 0;
    let killed = null;
    let cAcks = 0;
    let bAcksAfterKill = 0;

    const worker = async () => {
      while (sent < CAP && bAcksAfterKill < AFTER_KILL) {
        const n = sent++;
        // A load balancer's round robin; once C is gone, only B.
        const [svc, name] = killed || n % 2 === 0 ? [b, "B"] : [c, "C"];
        const sub = uid("load");
        let r;
        try {
          r = await svc.int("POST", `${userPath(sub)}/token`, { key: apiKey });
        } catch (err) {
          if (name === "B") throw err;
          lost++;
          continue;
        }
        if (r.status !== 200) {
          if (name === "B") refusedByB.push(show(r));
          continue;
        }
        const t = assertTokenResponse(r, { what: `${name}: ${sub}` });
        acked.push({ sub, id: t.userId, name });
        if (name === "C" && ++cAcks === KILL_AFTER) killed = kill(c, "C").then(() => null, (err) => err);
        if (name === "B" && killed) bAcksAfterKill++;
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, worker));
    assert.ok(killed, `C was killed under load (C acknowledged ${cAcks}, ${sent} requests sent)`);
    const killErr = await killed;
    if (killErr) throw killErr;
    assert.deepEqual(refusedByB, [], "the survivor answered every request of the load with 200");
    assert.ok(bAcksAfterKill >= AFTER_KILL, `B kept acknowledging after the kill (${bAcksAfterKill})`);

    const missing = [];
    for (let i = 0; i < acked.length; i += WORKERS) {
      await Promise.all(acked.slice(i, i + WORKERS).map(async ({ sub, id, name }) => {
        const g = await b.int("GET", userPath(sub), { key: apiKey });
        if (g.status !== 200 || g.json.acsUserIdentity !== id) missing.push(`${sub} (acknowledged by ${name} as ${id}): ${show(g)}`);
      }));
    }
    assert.equal(missing.length, 0, `every one of the ${acked.length} acknowledged mappings (${cAcks} by C ` +
      `before its SIGKILL; ${lost} request(s) to C unanswered) is on B with the same identity; ${missing.length} ` +
      `are not, e.g.:\n${missing.slice(0, 5).join("\n")}`);
  });
});
