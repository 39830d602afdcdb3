// review9b reproducer (FAILING on the code as reviewed): a revoke whose ACS call succeeds but
// whose store write (store_user_set_revoked, src/service/reqflow.c revoke_done) fails is
// answered 204, and no other replica hears of it: the NOTIFY rides on that very UPDATE
// (src/store/pg_users.c SQL_REVOKED), so replica B keeps serving its cached pre-revoke token,
// which ACS has revoked. The store failure is injected with a trigger on mappings that refuses
// an UPDATE of revoked_ms (a stand-in for a statement timeout, a failover, a dropped connection).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { killChildrenAtExit, startReplicas } from "./lib/replicas.mjs";
import { serveSkipReason } from "./lib/service.mjs";
import { assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const HONOURED_MS = 1000;

describe("review9b: a revoke whose store write fails", { skip }, () => {
  let emu;
  let jwks;
  let set;

  before(async () => {
    killChildrenAtExit();
    [emu, jwks] = await Promise.all([startEmulator(), startJwksServer()]);
    set = await startReplicas({ n: 2, emu, jwks, env: { TOKENVEND_ACS_MAX_RETRIES: "0" } });
  });

  after(async () => {
    await set?.stop();
    await jwks?.close();
    await emu?.stop();
  });

  test("is either refused, or honoured by the other replica within 1 s", async () => {
    const [a, b] = set.svcs;
    const bearer = jwks.token(`rv-${randomUUID().slice(0, 8)}`);
    const first = assertTokenResponse(await b.pub("GET", "/api/token", { token: bearer }), { what: "B first" });
    const again = assertTokenResponse(await b.pub("GET", "/api/token", { token: bearer }), { what: "B again" });
    assert.equal(again.token, first.token, "B serves its cached token (cache on)");

    await set.pg.psql(set.uri,
      "CREATE FUNCTION tv_fail() RETURNS trigger LANGUAGE plpgsql AS " +
      "$$BEGIN RAISE EXCEPTION 'injected store failure'; END$$;" +
      "CREATE TRIGGER tv_fail BEFORE UPDATE OF revoked_ms ON mappings " +
      "FOR EACH ROW EXECUTE FUNCTION tv_fail()");
    const r = await a.pub("POST", "/api/token/revoke", { token: bearer });
    const t0 = Date.now();
    await set.pg.psql(set.uri, "DROP TRIGGER tv_fail ON mappings");
    const v0 = await emu.validate(first.token);
    // The revoke reached ACS: B's cached token is dead.
    assert.equal(v0.valid, false, `the revoke reached ACS: ${JSON.stringify(v0)}`);
    if (r.status !== 204) return; // refused with an error: the caller knows to retry
    // Answered as done: B must stop serving the revoked token within 1 s.
    const seen = [];
    for (;;) {
      const sent = Date.now();
      if (sent - t0 > HONOURED_MS + 1000) break;
      const t = assertTokenResponse(await b.pub("GET", "/api/token", { token: bearer }), { what: "B after" });
      const v = await emu.validate(t.token);
      if (v.valid === true) return;
      seen.push(`+${sent - t0} ms: ${t.token === first.token ? "its cached pre-revoke token" : "other"} (${v.reason})`);
      await sleep(100);
    }
    assert.fail(`A answered the revoke ${r.status} but B kept serving a revoked token: ${seen.slice(0, 3).join("; ")} ... ` +
      `${seen.slice(-1)} (A's answer: ${show(r)})`);
  });
});
