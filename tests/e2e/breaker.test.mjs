// tokenvend serve, black box: the ACS circuit breaker (SPEC section 10, TOKENVEND_BREAKER).
// With ACS failing every call, after N failures tokenvend stops calling it: requests for new
// users are answered at once with 503, the error shape and a Retry-After, while at most one
// probe per open period reaches ACS; a user whose token is cached is still served; /readyz stays
// 200 and shows the state, /metrics counts it; once ACS recovers, tokens flow again within the
// open period plus a second. Real binaries on loopback: acs-emulator upstream (its fault
// injection and request counters), a temporary database, a local JWKS issuer.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const THRESHOLD = 3;
const OPEN_S = 2;

describe("tokenvend serve: ACS circuit breaker", { skip }, () => {
  let emu;
  let jwks;
  let svc;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    // No retries: each failing request is exactly one failed attempt at ACS.
    svc = await startService({
      emu,
      jwks,
      env: { TOKENVEND_BREAKER: `${THRESHOLD}/${OPEN_S}s`, TOKENVEND_ACS_MAX_RETRIES: "0" },
    });
  });

  after(async () => {
    await emu?.request("DELETE", "/emulator/faults");
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  const token = (user) => svc.pub("GET", "/api/token", { token: jwks.token(user) });
  const acsRequests = async () => {
    const s = await emu.stats();
    return Object.values(s.requests).reduce((a, b) => a + b, 0);
  };
  const readyz = async () => {
    const r = await svc.pub("GET", "/readyz");
    assert.equal(r.status, 200, `/readyz stays 200 whatever the breaker: ${show(r)}`);
    assert.ok(r.json?.breaker, `/readyz shows the breaker: ${show(r)}`);
    return r.json.breaker;
  };
  const metric = async (name) => {
    const r = await svc.int("GET", "/metrics");
    assert.equal(r.status, 200, show(r));
    const m = new RegExp(`^${name} (\\d+)$`, "m").exec(r.text);
    assert.ok(m, `/metrics has ${name}`);
    return Number(m[1]);
  };
  const assertPaused = (r, what) => {
    const e = assertError(r, 503, "unavailable", what);
    const ra = Number(r.headers["retry-after"]);
    assert.ok(Number.isInteger(ra) && ra >= 1 && ra <= OPEN_S,
      `${what}: Retry-After is whole seconds in 1..${OPEN_S}: ${r.headers["retry-after"]}`);
    assert.match(e.message, /circuit breaker/, `${what}: the message says why: ${e.message}`);
  };

  test("opens after N failures, fails fast, serves the cache, probes once, closes when ACS is back", async () => {
    // A user served while ACS works: its token is cached.
    const cached = uid("brk-cached");
    assertTokenResponse(await token(cached), { what: "warm-up" });
    let b = await readyz();
    assert.deepEqual(b, { state: "closed", failures: 0, retryAfter: 0 });
    assert.equal(await metric("tokenvend_acs_breaker_state"), 0);
    assert.equal(await metric("tokenvend_acs_breaker_opens_total"), 0);

    // ACS fails every call with a 500.
    let f = await emu.request("PUT", "/emulator/faults", { error_rate: 1, error_status: 500 });
    assert.equal(f.status, 200, JSON.stringify(f.body));
    for (let i = 1; i <= THRESHOLD; i++) {
      const r = await token(uid("brk-fail"));
      assertError(r, r.status, undefined, `failure ${i}`);
      assert.ok(r.status >= 500 && !/circuit breaker/.test(r.json.error.message),
        `failure ${i} comes from ACS, not the breaker: ${show(r)}`);
      if (i < THRESHOLD) {
        b = await readyz();
        assert.equal(b.state, "closed", `after ${i} failures: ${JSON.stringify(b)}`);
        assert.equal(b.failures, i);
      }
    }
    b = await readyz();
    assert.equal(b.state, "open", `after ${THRESHOLD} failures: ${JSON.stringify(b)}`);
    assert.ok(b.retryAfter >= 1 && b.retryAfter <= OPEN_S, JSON.stringify(b));
    assert.equal(await metric("tokenvend_acs_breaker_state"), 1);
    assert.equal(await metric("tokenvend_acs_breaker_opens_total"), 1);

    // 20 new users at once: all answered 503 + Retry-After, without reaching ACS.
    await emu.resetStats();
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: 20 }, () => token(uid("brk-new"))));
    const took = performance.now() - t0;
    answers.forEach((r, i) => assertPaused(r, `new user ${i} while open`));
    const reached = await acsRequests();
    console.log(`breaker open: 20 requests answered 503 in ${took.toFixed(0)} ms; ` +
      `${reached} reached ACS`);
    assert.ok(reached <= 1, `at most one probe reached ACS meanwhile: ${reached}`);
    assert.ok(took < 5000, `fail fast (generous bound): ${took} ms`);
    assert.ok(await metric("tokenvend_acs_breaker_rejected_total") >= 20);

    // The cached user is still served, from the cache (no ACS call).
    const before_ = await acsRequests();
    assertTokenResponse(await token(cached), { what: "cached user while open" });
    assert.equal(await acsRequests(), before_, "the cache hit made no ACS call");

    // The open period ends while ACS still fails: many requests at once, one probe reaches
    // ACS, fails, and the breaker opens again.
    assert.ok(await pollUntil(async () => (await readyz()).state === "half_open",
      { deadlineMs: (OPEN_S + 10) * 1000, intervalMs: 50 }), "the open period ends");
    await emu.resetStats();
    const burst = await Promise.all(Array.from({ length: 10 }, () => token(uid("brk-probe"))));
    const probes = await acsRequests();
    assert.equal(probes, 1, `exactly one probe reached ACS: ${probes}`);
    const paused = burst.filter((r) => r.status === 503 && r.json?.error?.code === "unavailable");
    assert.ok(paused.length >= 9, `the others were refused: ${burst.map((r) => r.status)}`);
    paused.forEach((r, i) => assertPaused(r, `request ${i} during the probe`));
    b = await readyz();
    assert.equal(b.state, "open", `the failed probe opened it again: ${JSON.stringify(b)}`);
    assert.equal(await metric("tokenvend_acs_breaker_opens_total"), 2);

    // ACS recovers: tokens flow again within the open period plus a second.
    f = await emu.request("DELETE", "/emulator/faults");
    assert.ok(f.status >= 200 && f.status < 300, JSON.stringify(f.body));
    const healed = performance.now();
    let served = null;
    // The bound is the poll's deadline (generous for a loaded machine); the time is logged.
    await pollUntil(async () => {
      const r = await token(uid("brk-back"));
      if (r.status === 200) served = r;
      return served !== null;
    }, { deadlineMs: (OPEN_S + 10) * 1000, intervalMs: 100 });
    const waited = performance.now() - healed;
    console.log(`ACS recovered: a new user served ${waited.toFixed(0)} ms after the faults ` +
      `were cleared (open period ${OPEN_S} s)`);
    assert.ok(served, `a token came within ${OPEN_S + 10} s of ACS's recovery`);
    assertTokenResponse(served, { what: "after recovery" });
    b = await readyz();
    assert.deepEqual(b, { state: "closed", failures: 0, retryAfter: 0 });
    assert.equal(await metric("tokenvend_acs_breaker_state"), 0);
  });
});
