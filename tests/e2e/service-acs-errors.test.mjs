// tokenvend serve, black box: when ACS refuses or fails a call, the caller gets tokenvend's own
// sentence for the error with ACS's error code, and ACS's own message (which may echo what it
// was sent or describe the resource) stays in the service's log. The emulator answers with a
// message holding a marker of the test's choosing; the marker must never reach a reply.
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

describe("tokenvend serve: ACS error messages", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let apiKey;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    // No retries: a failed ACS call ends at once, with its last answer.
    svc = await startService({ emu, jwks, env: { TOKENVEND_ACS_MAX_RETRIES: "0" } });
    apiKey = (await svc.createApiKey("acs-errors")).key;
  });

  after(async () => {
    await emu?.request("DELETE", "/emulator/faults");
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  const int = (method, path, body) => svc.int(method, path, { key: apiKey, body });

  test("an ACS failure reaches the caller as tokenvend's sentence and ACS's code, never ACS's text", async () => {
    const marker = `MARKER-${randomUUID()}`;
    const message = `Internal detail ${marker} of the resource`;
    const user = uid("acsmsg");
    assert.equal((await int("PUT", `/internal/users/${user}`)).status, 201);

    let f = await emu.request("PUT", "/emulator/faults", {
      error_rate: 1, error_status: 503, error_message: message, ops: ["issue", "revoke"],
    });
    assert.equal(f.status, 200, JSON.stringify(f.body));
    for (const [method, path, body] of [
      ["POST", `/internal/users/${user}/token`, {}],
      ["POST", `/internal/users/${user}/revoke`, undefined],
    ]) {
      const r = await int(method, path, body);
      const e = assertError(r, 503, "acs_unavailable", `${method} ${path} while ACS fails`);
      assert.ok(!r.text.includes(marker), `ACS's own words are not passed on: ${r.text}`);
      assert.match(e.message, /\(ACS code ServiceUnavailable\)/, `ACS's code is: ${e.message}`);
    }
    const t = await svc.pub("GET", "/api/token", { token: jwks.token(user) });
    assertError(t, 503, "acs_unavailable", "public token while ACS fails");
    assert.ok(!t.text.includes(marker), "nor on the public API");

    // A create refused with a 500 (its outcome unknown to tokenvend) says so in our words.
    f = await emu.request("PUT", "/emulator/faults", {
      error_rate: 1, error_status: 500, error_message: message, ops: ["create"],
    });
    assert.equal(f.status, 200);
    const c = await int("PUT", `/internal/users/${uid("acsmsg-create")}`);
    assert.ok(c.status >= 500, show(c));
    assert.ok(!c.text.includes(marker), `create: ${c.text}`);
    assert.match(c.json.error.message, /\(ACS code InternalServerError\)/);
    await emu.request("DELETE", "/emulator/faults");

    // ACS's text is in the service's log, for the operator.
    assert.ok(svc.logs().stderr.includes(marker), "the log keeps ACS's message");
  });
});
