// Review 12a reproducers for the session refresh routes (issue 12). Each test states the
// defect it shows; each fails on main at 2518821. Runs on SQLite or, with TV_TEST_STORE=pg, on
// PostgreSQL (the store failure is made with a trigger on either).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { newPgDatabase, serveSkipReason, startService, storeIsPg } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const pw = () => `pw-${randomBytes(12).toString("base64url")}`;
const ORIGIN = "http://127.0.0.1:5999";
const JSON_CT = { "content-type": "application/json" };
const BASE = { TOKENVEND_ARGON2: "t=1,m=8192,p=1", TOKENVEND_LOGIN_LIMIT: "off" };

function refreshValue(r) {
  const lines = [].concat(r.headers["set-cookie"] || []).filter((l) => l.startsWith("tv_refresh="));
  return lines.length === 1 ? lines[0].slice("tv_refresh=".length).split(";")[0] : undefined;
}

// Runs sql in the service's store, on either backend.
async function storeSql(svc, sql) {
  if (storeIsPg()) {
    const { pg } = await newPgDatabase(); // the shared cluster's handle
    return (await pg.psql(svc.dbPath, sql)).stdout;
  }
  const r = spawnSync("sqlite3", [svc.dbPath, sql], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

// From now on every DELETE on session_refresh fails (a store that cannot write, as a full disk
// or a lost connection would make it), and the way back.
const FAIL_DELETES = {
  sqlite: "CREATE TRIGGER review12a_no_delete BEFORE DELETE ON session_refresh BEGIN SELECT RAISE(ABORT, 'review12a'); END;",
  pg:
    "CREATE FUNCTION review12a_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'review12a'; END $$;" +
    " CREATE TRIGGER review12a_no_delete BEFORE DELETE ON session_refresh FOR EACH ROW EXECUTE FUNCTION review12a_no_delete();",
};
const ALLOW_DELETES = {
  sqlite: "DROP TRIGGER review12a_no_delete;",
  pg: "DROP TRIGGER review12a_no_delete ON session_refresh; DROP FUNCTION review12a_no_delete();",
};

describe("review12a: session refresh defects", { skip }, () => {
  let emu;

  before(async () => {
    emu = await startEmulator();
  });
  after(async () => {
    await emu?.stop();
  });

  const loginOn = async (svc) => {
    const name = uid("r12a");
    const password = pw();
    await svc.addAccount(name, password);
    const r = await svc.pub("POST", "/api/login", { body: { username: name, password } });
    assert.equal(r.status, 200, show(r));
    const cookie = refreshValue(r);
    assert.ok(cookie, show(r));
    return cookie;
  };
  const call = (svc, path, cookie, headers = {}) =>
    svc.pub("POST", path, { headers: { ...JSON_CT, cookie: `tv_refresh=${cookie}`, ...headers }, body: "{}" });

  // Defect: logout_run ignores the result of the family's revocation (family_end only logs a
  // store error), so a logout the store could not carry out answers 204 and clears the cookie,
  // while the family, and any stolen copy of its newest token, keeps working.
  test("a logout whose revocation failed in the store does not answer 204", async () => {
    const svc = await startService({ emu, localAccounts: true, env: BASE });
    try {
      const cookie = await loginOn(svc);
      const kind = storeIsPg() ? "pg" : "sqlite";
      await storeSql(svc, FAIL_DELETES[kind]);
      const out = await call(svc, "/api/session/logout", cookie);
      await storeSql(svc, ALLOW_DELETES[kind]);
      const still = await call(svc, "/api/session/refresh", cookie);
      assert.notEqual(out.status, 204,
        `logout answered 204 although nothing was revoked; the cookie then refreshed: ${still.status}`);
      assert.ok(out.status >= 500, `a store failure: ${show(out)}`);
    } finally {
      await svc.cleanup();
    }
  });

  // Defect: POST /api/login now sets the tv_refresh cookie but, unlike the session routes,
  // checks neither Content-Type nor Origin. A page on a same-site other origin (another port of
  // the host, a sibling subdomain: SameSite=Strict does not apply) can post a simple request
  // (text/plain, no preflight) with the attacker's own credentials; the browser stores the
  // answer's cookie, and the victim's page then refreshes into the attacker's session (login
  // CSRF, session fixation). The refresh routes' own CSRF rules are thereby sidestepped.
  test("a simple cross-origin login request does not plant a tv_refresh cookie", async () => {
    const svc = await startService({ emu, localAccounts: true, env: { ...BASE, TOKENVEND_CORS_ORIGINS: ORIGIN } });
    try {
      const name = uid("csrf");
      const password = pw();
      await svc.addAccount(name, password);
      const r = await svc.pub("POST", "/api/login", {
        headers: { "content-type": "text/plain;charset=UTF-8", origin: "http://127.0.0.1:1" },
        body: JSON.stringify({ username: name, password }),
      });
      assert.equal(refreshValue(r) || "", "", `cookie set for a text/plain login from a foreign origin: ${show(r)}`);
      assert.ok(r.status === 403 || r.status === 415, `refused like the session routes: ${show(r)}`);
    } finally {
      await svc.cleanup();
    }
  });

  // Defect (documentation or audit): include/service/refresh.h says a rotation "Audits ... a
  // refusal for an ended account", but rotate_run ends the family with no audit row (action
  // NULL), so a refresh refused after `account logout` (or passwd/remove) leaves no trace.
  test("a refresh refused because the account's sessions were ended is audited", async () => {
    const svc = await startService({ emu, localAccounts: true, env: BASE });
    try {
      const name = uid("ended");
      const password = pw();
      await svc.addAccount(name, password);
      const l = await svc.pub("POST", "/api/login", { body: { username: name, password } });
      assert.equal(l.status, 200, show(l));
      const cookie = refreshValue(l);
      // fix12a: `account logout` also deletes the account's refresh rows, after which the
      // cookie names an unknown token (refused, account unknown). The path refresh.h promises
      // to audit is a row that outlived the epoch change: a rotation that checked the old
      // epoch and stored its successor after the CLI's delete, or a delete that failed. Made
      // here by changing the epoch alone, as `account logout` does first.
      await storeSql(svc, `UPDATE accounts SET session_epoch = session_epoch + 1 WHERE name = '${name}'`);
      const count = async () => Number((await storeSql(svc, "SELECT count(*) FROM audit")).trim());
      const before = await count();
      const r = await call(svc, "/api/session/refresh", cookie);
      assert.equal(r.status, 401, show(r));
      assert.equal(await count(), before + 1, "one audit row for the refused refresh");
    } finally {
      await svc.cleanup();
    }
  });

  // Defect: http_req_origin_listed (src/http/server.c) looks at the reflected Allow-Origin
  // value, which is "*" whenever the list has a "*" entry, so an origin that IS named in
  // cors_origins next to "*" is refused (403) by the session routes, contrary to the contract
  // ("in cors_origins: allowed") and the header's own comment ("names an origin of the list").
  test("an origin listed in cors_origins next to '*' may refresh", async () => {
    const svc = await startService({ emu, localAccounts: true, env: { ...BASE, TOKENVEND_CORS_ORIGINS: `*, ${ORIGIN}` } });
    try {
      const cookie = await loginOn(svc);
      const r = await call(svc, "/api/session/refresh", cookie, { origin: ORIGIN });
      assert.equal(r.status, 200, `refresh from the listed origin ${ORIGIN}: ${show(r)}`);
      // A browser uses a credentialed answer only with its own origin in Allow-Origin (never
      // "*") and Allow-Credentials: true; otherwise the page cannot read the new session token.
      assert.equal(r.headers["access-control-allow-origin"], ORIGIN, show(r));
      assert.equal(r.headers["access-control-allow-credentials"], "true", show(r));
    } finally {
      await svc.cleanup();
    }
  });
});
