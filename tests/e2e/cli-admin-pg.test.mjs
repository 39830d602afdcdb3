// The admin commands of issue 11 against two `tokenvend serve` replicas sharing PostgreSQL:
// `tokenvend identity revoke USER` run from another process makes BOTH replicas stop serving the
// token they cached for USER (the store's revoke time and its notification), and
// `tokenvend apikey rotate NAME --grace 1s` leaves the old key working on every replica until
// the grace ends and refused after, the new one working at once. Waits are bounded polls; no
// assertion on timing.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { killChildrenAtExit, startReplicas } from "./lib/replicas.mjs";
import { pollUntil, serveSkipReason } from "./lib/service.mjs";
import { assertTokenResponse } from "./lib/service-checks.mjs";

const skip = serveSkipReason();

describe("admin CLI on PostgreSQL replicas", { skip }, () => {
  let emu;
  let jwks;
  let set;

  before(async () => {
    killChildrenAtExit();
    [emu, jwks] = await Promise.all([startEmulator(), startJwksServer()]);
    set = await startReplicas({ n: 2, emu, jwks });
  });

  after(async () => {
    await set?.stop();
    await jwks?.close();
    await emu?.stop();
  });

  test("identity revoke from the CLI: every replica hands the user a new token", async () => {
    const [a, b] = set.svcs;
    const user = `cli-rv-${randomUUID().slice(0, 8)}`;
    const bearer = jwks.token(user);
    const first = assertTokenResponse(await a.pub("GET", "/api/token", { token: bearer }), { what: "A first" });
    const onB = assertTokenResponse(await b.pub("GET", "/api/token", { token: bearer }), { what: "B first" });
    const againA = assertTokenResponse(await a.pub("GET", "/api/token", { token: bearer }), { what: "A again" });
    const againB = assertTokenResponse(await b.pub("GET", "/api/token", { token: bearer }), { what: "B again" });
    assert.equal(againA.token, first.token, "A serves its cached token");
    assert.equal(againB.token, onB.token, "B serves its cached token");

    const r = await a.cli(["identity", "revoke", user]);
    assert.equal(r.code, 0, `identity revoke: ${r.stdout} ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split("\n").at(-1));
    assert.equal(out.appUserId, user);
    assert.match(out.acsUserIdentity, /^8:acs:/);
    assert.equal((await emu.validate(first.token)).valid, false, "ACS revoked the old token");

    for (const [name, svc, old] of [["A", a, first.token], ["B", b, onB.token]]) {
      const fresh = await pollUntil(async () => {
        const t = assertTokenResponse(await svc.pub("GET", "/api/token", { token: bearer }), { what: name });
        return t.token !== old && t.token !== first.token ? t : null;
      }, { deadlineMs: 10_000, intervalMs: 100 });
      assert.ok(fresh, `${name} still serves the revoked token after the CLI revoke`);
      assert.equal((await emu.validate(fresh.token)).valid, true, `${name}'s new token is valid`);
    }
  });

  test("apikey rotate --grace 1s: old key until the grace ends, then 401 on every replica", async () => {
    const [a, b] = set.svcs;
    const name = `rot-${randomUUID().slice(0, 8)}`;
    const oldKey = (await a.createApiKey(name)).key;
    for (const svc of [a, b]) assert.equal((await svc.int("GET", "/internal/users?limit=1", { key: oldKey })).status, 200);

    const r = await b.cli(["apikey", "rotate", name, "--grace", "1s"]);
    assert.equal(r.code, 0, `apikey rotate: ${r.stderr}`);
    const lines = r.stdout.trim().split("\n");
    const newKey = lines.at(-1);
    const meta = JSON.parse(lines[0]);
    assert.match(newKey, /^tvk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    assert.equal(meta.previousKeyId, oldKey.slice(4, 20));
    for (const svc of [a, b]) assert.equal((await svc.int("GET", "/internal/users?limit=1", { key: newKey })).status, 200);

    for (const svc of [a, b]) {
      const refused = await pollUntil(async () =>
        (await svc.int("GET", "/internal/users?limit=1", { key: oldKey })).status === 401,
      { deadlineMs: 20_000, intervalMs: 100 });
      assert.ok(refused, "the old key is refused once its grace has ended");
    }
    const list = JSON.parse((await a.cli(["apikey", "list"])).stdout.trim().split("\n").at(-1));
    const mine = list.apikeys.filter((k) => k.name === name);
    assert.equal(mine.length, 2, JSON.stringify(mine));
    assert.ok(mine.some((k) => k.current === true && k.expiresAt === null));
    assert.ok(mine.some((k) => k.current === false && Date.parse(k.expiresAt) <= Date.now()));

    assert.equal((await a.cli(["apikey", "revoke", name])).code, 0);
    for (const svc of [a, b]) assert.equal((await svc.int("GET", "/internal/users?limit=1", { key: newKey })).status, 401);
  });
});
