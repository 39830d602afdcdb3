// Review 10b (adversarial): the client address behind a trusted proxy, as the login gate sees it.
// README "Caller limits": "Behind a proxy, list it here, or every client shares the proxy's
// address." With TOKENVEND_TRUSTED_PROXIES listing the proxy, the per-address cap on password
// checks in progress (TOKENVEND_LOGIN_PER_ADDRESS) must count the client named by
// X-Forwarded-For, as TOKENVEND_LIMIT_IP does; otherwise every client behind the proxy shares
// one address's share of the login slots and one client can keep all the others out (503).
// Real binaries on loopback: acs-emulator upstream, a temporary database.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { httpRequest, serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const pw = () => randomBytes(12).toString("base64url");
const CLIENTS = 12;

describe("review10b: login gate behind a trusted proxy", { skip }, () => {
  let emu;
  let svc;

  before(async () => {
    emu = await startEmulator();
    svc = await startService({
      emu,
      localAccounts: true,
      env: {
        TOKENVEND_TRUSTED_PROXIES: "127.0.0.1",
        TOKENVEND_LOGIN_PER_ADDRESS: "1",
        // A check costly enough that concurrent logins overlap in the deferred queue.
        TOKENVEND_ARGON2: "t=2,m=32768,p=1",
      },
    });
  });

  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
  });

  // Control: the same logins from distinct peer addresses (no proxy) all pass the gate, so the
  // test below fails only because the proxied clients are not told apart.
  test(`control: ${CLIENTS} clients at distinct peer addresses, one login each at once: all served`, async () => {
    const users = [];
    for (let i = 0; i < CLIENTS; i++) {
      const u = { name: uid(`peer${i}`), password: pw(), from: `127.0.5.${i + 1}` };
      await svc.addAccount(u.name, u.password);
      users.push(u);
    }
    const answers = await Promise.all(
      users.map((u) =>
        httpRequest(`${svc.publicUrl}/api/login`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ username: u.name, password: u.password }),
          localAddress: u.from,
        }),
      ),
    );
    const refused = answers.filter((r) => r.status !== 200);
    assert.equal(refused.length, 0, `refused: ${refused.map(show).join(" | ")}`);
  });

  test(`${CLIENTS} different clients behind the trusted proxy, one login each at once: none is refused for another client's check`, async () => {
    const users = [];
    for (let i = 0; i < CLIENTS; i++) {
      const u = { name: uid(`px${i}`), password: pw(), xff: `198.51.100.${i + 1}` };
      await svc.addAccount(u.name, u.password);
      users.push(u);
    }
    const answers = await Promise.all(
      users.map((u) =>
        httpRequest(`${svc.publicUrl}/api/login`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-forwarded-for": u.xff },
          body: JSON.stringify({ username: u.name, password: u.password }),
          localAddress: "127.0.0.1",
        }),
      ),
    );
    const refused = answers.filter((r) => r.status !== 200);
    assert.equal(
      refused.length,
      0,
      `${refused.length} of ${CLIENTS} distinct clients (one login each) were refused: ${refused.map(show).join(" | ")}`,
    );
  });
});
