// A real frontend client against tokenvend serve: AzureCommunicationTokenCredential from
// @azure/communication-common with a tokenRefresher that calls GET /api/token with the caller's
// JWT, refreshProactively on, and emulator tokens of short life, seen to refresh through the
// service (distinct tokens, each valid at the emulator).
//
// When the SDK refreshes (communication-common 2.5.0, autoRefreshTokenCredential.js): with
// refreshProactively and no initial token it schedules a refresh at once (the placeholder token
// is expired). After each refresh it schedules the next one:
//   - token life > 10 min ("not expiring soon"): at expiresOn - 10 min;
//   - token life <= 10 min ("expiring soon"): after half the remaining life.
// getToken() only calls the refresher when the token has already expired, so proactive refresh
// is what keeps a client's token fresh. Two emulators cover both branches in ~20 s:
//   --token-ttl-seconds 610: refreshes about every 10 s (610 s - 600 s);
//   --token-ttl-seconds 20:  refreshes about every 10 s (half of 20 s).
// The service's token cache must not hand back a token with less life left than
// cache_min_remaining_minutes (default 30), so every refresh must yield a new token.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { decodeJwt, startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertTokenResponse } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const WANT_CALLS = 3; // the initial fetch and two proactive refreshes
const DEADLINE_MS = 60_000;

describe("tokenvend serve: AzureCommunicationTokenCredential refreshes through the service", { skip }, () => {
  const setups = [];
  let jwks;

  before(async () => {
    jwks = await startJwksServer();
    for (const ttl of [610, 20]) {
      const emu = await startEmulator(["--token-ttl-seconds", String(ttl)]);
      const svc = await startService({ emu, jwks });
      setups.push({ ttl, emu, svc });
    }
  });

  after(async () => {
    for (const s of setups) {
      await s.svc.cleanup();
      await s.emu.stop();
    }
    await jwks?.close();
  });

  // Runs one credential until it has called the refresher WANT_CALLS times.
  async function runClient({ ttl, emu, svc }) {
    const sub = `spa-user-${ttl}-${randomUUID().slice(0, 8)}`;
    const calls = [];
    const errors = [];
    const credential = new AzureCommunicationTokenCredential({
      refreshProactively: true,
      tokenRefresher: async () => {
        const at = Date.now();
        try {
          const r = await svc.pub("GET", "/api/token", { token: jwks.token(sub) });
          const t = assertTokenResponse(r, { what: `refresher call ${calls.length + 1} (ttl ${ttl})` });
          // Checked as it arrives: the 20 s tokens expire before the test ends.
          const validation = await emu.validate(t.token);
          calls.push({ at, validation, ...t });
          return t.token;
        } catch (err) {
          errors.push(err);
          throw err;
        }
      },
    });
    try {
      await pollUntil(() => calls.length >= WANT_CALLS || errors.length > 0, { deadlineMs: DEADLINE_MS, intervalMs: 200 });
      if (errors.length) throw errors[0];
      assert.ok(calls.length >= WANT_CALLS,
        `ttl ${ttl}: ${calls.length} refresher calls within ${DEADLINE_MS} ms (want ${WANT_CALLS})`);
      const current = await credential.getToken();
      assert.equal(current.token, calls[calls.length - 1].token, "getToken() hands out the latest refreshed token");
      assert.ok(current.expiresOnTimestamp > Date.now(), "and it has not expired");
    } finally {
      credential.dispose();
    }
    return { sub, calls };
  }

  test("refreshProactively: >= 2 proactive refreshes via GET /api/token, each a new valid token", async () => {
    const results = await Promise.all(setups.map((s) => runClient(s)));
    for (const [i, { sub, calls }] of results.entries()) {
      const { ttl, emu } = setups[i];
      const tokens = new Set(calls.map((c) => c.token));
      assert.equal(tokens.size, calls.length, `ttl ${ttl}: every refresh got a new token (none served stale from a cache)`);
      assert.equal(new Set(calls.map((c) => c.userId)).size, 1, `ttl ${ttl}: one identity for ${sub}`);
      for (const [k, c] of calls.entries()) {
        const life = c.jwt.payload.exp - c.jwt.payload.iat;
        assert.ok(Math.abs(life - ttl) <= 1, `ttl ${ttl}: token ${k} lives ${life} s`);
        assert.equal(c.validation.valid, true, `ttl ${ttl}: token ${k} valid at the emulator: ${JSON.stringify(c.validation)}`);
        assert.equal(c.validation.identity, c.userId);
      }
      // Proactive, not a hot loop: each refresh came no sooner than a few seconds after the last.
      for (let k = 1; k < calls.length; k++) {
        const gap = calls[k].at - calls[k - 1].at;
        assert.ok(gap >= 4000, `ttl ${ttl}: refresh ${k} came ${gap} ms after the previous one`);
      }
      const stats = await emu.stats();
      // The first call may create the identity together with its token (one upstream call).
      assert.ok(stats.succeeded.issue + stats.succeeded.create >= calls.length,
        `ttl ${ttl}: ${calls.length} tokens came from the emulator: ${JSON.stringify(stats.succeeded)}`);
      // The latest token is decodable by the SDK's own parser rules (exp in seconds).
      assert.equal(typeof decodeJwt(calls[calls.length - 1].token).payload.exp, "number");
    }
  });

  test("SIGTERM: both services exit 0", async () => {
    for (const { ttl, svc } of setups) {
      const r = await svc.stop();
      assert.deepEqual([r.code, r.signal], [0, null], `ttl ${ttl}: exit after SIGTERM: ${JSON.stringify(r)}`);
    }
  });
});
