// tokenvend serve, black box: every 429 and 503 that reaches a caller is an honest overload
// answer: the error shape and a Retry-After of whole seconds, at least 1; when ACS asked for a
// longer wait than tokenvend's own hint, ACS's wait is passed on (issue 10, part 2).
// Real binaries on loopback: acs-emulator upstream, a temporary database, a local JWKS issuer.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;

// The Retry-After of an overload answer: present, whole seconds, >= 1.
function retryAfter(res, what) {
  const v = res.headers["retry-after"];
  assert.ok(v !== undefined, `${what}: Retry-After is missing: ${show(res)}`);
  assert.match(v, /^[1-9][0-9]*$/, `${what}: Retry-After is whole seconds >= 1: ${v}`);
  return Number(v);
}

describe("tokenvend serve: honest overload answers", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let apiKey;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    // No retries: a refused ACS call ends at once, with ACS's answer and its wait.
    svc = await startService({ emu, jwks, env: { TOKENVEND_ACS_MAX_RETRIES: "0" } });
    apiKey = (await svc.createApiKey("overload")).key;
  });

  after(async () => {
    await emu?.request("DELETE", "/emulator/faults");
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test("ACS throttling every call: 503 acs_throttled with ACS's own, longer Retry-After", async () => {
    const f = await emu.request("PUT", "/emulator/faults", { throttle_rate: 1, retry_after_ms: 7500 });
    assert.equal(f.status, 200, JSON.stringify(f.body));
    try {
      const t = await svc.pub("GET", "/api/token", { token: jwks.token(uid("throttled")) });
      assertError(t, 503, "acs_throttled", "public token while ACS throttles");
      assert.equal(retryAfter(t, "public token"), 8, "ACS's 7.5 s wait, rounded up");
      const i = await svc.int("PUT", `/internal/users/${uid("throttled-int")}`, { key: apiKey });
      assertError(i, 503, "acs_throttled", "internal create while ACS throttles");
      assert.equal(retryAfter(i, "internal create"), 8);
    } finally {
      await emu.request("DELETE", "/emulator/faults");
    }
  });

  test("ACS failing without a hint: 503 acs_unavailable still carries Retry-After", async () => {
    const f = await emu.request("PUT", "/emulator/faults", { error_rate: 1, error_status: 503 });
    assert.equal(f.status, 200, JSON.stringify(f.body));
    try {
      const t = await svc.pub("GET", "/api/token", { token: jwks.token(uid("failing")) });
      assert.equal(t.status, 503, show(t));
      assert.ok(typeof t.json?.error?.code === "string", `the error shape: ${show(t)}`);
      retryAfter(t, "public token while ACS fails");
    } finally {
      await emu.request("DELETE", "/emulator/faults");
    }
  });
});
