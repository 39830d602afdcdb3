// `tokenvend store copy` (issue 9): a SQLite-backed tokenvend with users (tokens issued), an API
// key and a local account is stopped, its store copied into an empty PostgreSQL database, and a
// tokenvend on that database (same secret_key) answers for the same users with the same ACS
// identities, accepts the same API key, password and even the session token issued before the
// copy, and makes new users with fresh ids. A re-run is a no-op that says so; once the copy has
// been used, a re-run refuses the changed rows and writes nothing; the copy back to SQLite works
// too. The URI comes from a file (--to-file) and its password is never printed.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { startPostgres } from "./lib/pg.mjs";
import { cleanEnv, serveSkipReason, startService, tokenvendPath } from "./lib/service.mjs";
import { assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const SECRET_KEY = randomBytes(32).toString("base64");
const PASSWORD = `pw-${randomBytes(12).toString("base64url")}`;

// Runs tokenvend in dir; resolves to { code, stdout, stderr, json (stdout's, parsed) }.
function tv(args, dir, env = {}) {
  return new Promise((res, rej) => {
    const p = spawn(tokenvendPath(), args, { cwd: dir, env: cleanEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
    const timer = setTimeout(() => p.kill("SIGKILL"), 120_000);
    p.once("error", rej);
    p.once("close", (code) => {
      clearTimeout(timer);
      let json;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      res({ code, stdout, stderr, json });
    });
  });
}

describe("tokenvend store copy: SQLite -> PostgreSQL -> SQLite", { skip }, () => {
  let emu;
  let jwks;
  let pg;
  let dir;
  const services = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tv-copy-"));
    [emu, jwks, pg] = await Promise.all([startEmulator(), startJwksServer(), startPostgres()]);
  });

  after(async () => {
    for (const s of services) await s.cleanup();
    await pg?.stop();
    await jwks?.close();
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // A tokenvend on db (a path or URI) with the same keys, issuer and emulator each time.
  const serve = async (db) => {
    const svc = await startService({
      emu,
      jwks,
      localAccounts: true,
      env: { TOKENVEND_DB: db, TOKENVEND_SECRET_KEY: SECRET_KEY },
    });
    services.push(svc);
    return svc;
  };
  const bearer = (sub) => jwks.token(sub);
  const login = async (svc) => {
    const r = await svc.pub("POST", "/api/login", { body: { username: "dave", password: PASSWORD } });
    assert.equal(r.status, 200, `login: ${show(r)}`);
    return r.json.access_token;
  };

  test("a replica on the copy answers for the same users, keys, passwords and sessions", async () => {
    const sqlitePath = join(dir, "a", "tokenvend.db");
    const a = await serve(sqlitePath);
    const ids = {};
    for (const user of ["alice", "bob"]) {
      ids[user] = assertTokenResponse(await a.pub("GET", "/api/token", { token: bearer(user) }), { what: user }).userId;
    }
    const { key } = await a.createApiKey("backend");
    const carol = await a.int("PUT", "/internal/users/carol", { key });
    assert.equal(carol.status, 201, show(carol));
    ids.carol = carol.json.acsUserIdentity ?? carol.json.communicationUserId;
    assert.ok(ids.carol, `carol's identity: ${show(carol)}`);
    assert.equal((await a.pub("POST", "/api/token/revoke", { token: bearer("bob") })).status, 204);
    await a.addAccount("dave", PASSWORD);
    const session = await login(a);
    ids.dave = assertTokenResponse(await a.pub("GET", "/api/token", { token: session }), { what: "dave" }).userId;
    const stopped = await a.stop();
    assert.equal(stopped.code, 0, "the SQLite service stopped cleanly");

    // Into an empty PostgreSQL database, its URI (with the password) from a file.
    await pg.adminExec(`CREATE DATABASE copied OWNER ${pg.user}`);
    const uri = pg.uriWith({ db: "copied" });
    const uriFile = join(dir, "pg-uri");
    writeFileSync(uriFile, `${uri}\n`, { mode: 0o600 });
    const r = await tv(["store", "copy", sqlitePath, "--to-file", uriFile], dir);
    assert.equal(r.code, 0, `store copy: ${r.stderr}`);
    assert.ok(!(r.stdout + r.stderr).includes(pg.password), "the password is never printed");
    assert.equal(r.json.result, "copied", r.stdout);
    assert.match(r.json.to, /^postgresql:\/\/.*\*\*\*@127\.0\.0\.1/, "TO shown redacted");
    assert.equal(r.json.tables.mappings.copied, 4, r.stdout);
    assert.equal(r.json.tables.api_keys.copied, 1, r.stdout);
    assert.equal(r.json.tables.accounts.copied, 1, r.stdout);
    assert.ok(r.json.tables.meta.copied >= 1, `the session key is copied: ${r.stdout}`);
    assert.ok(r.json.tables.audit.copied >= 4, `audit rows are copied: ${r.stdout}`);

    const again = await tv(["store", "copy", sqlitePath, "--to-file", uriFile], dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.json.result, "up_to_date", again.stdout);
    assert.equal(again.json.copied, 0);
    assert.equal(again.json.present, r.json.copied);

    // The replica on PostgreSQL.
    const b = await serve(uri);
    for (const user of ["alice", "bob"]) {
      const u = await b.pub("GET", "/api/user", { token: bearer(user) });
      assert.equal(u.status, 200, show(u));
      assert.equal(u.json.acsUserIdentity, ids[user], `${user} keeps the ACS identity`);
      const t = assertTokenResponse(await b.pub("GET", "/api/token", { token: bearer(user) }), { what: user });
      assert.equal(t.userId, ids[user]);
      assert.equal((await emu.validate(t.token)).valid, true, `${user}'s new token is valid at ACS`);
    }
    const m = await b.int("GET", "/internal/users/carol", { key });
    assert.equal(m.status, 200, `the API key works on the copy: ${show(m)}`);
    assert.equal(m.json.acsUserIdentity, ids.carol);
    assert.ok(m.json.revokedAt === null || m.json.revokedAt === undefined, show(m));
    const bob = await b.int("GET", "/internal/users/bob", { key });
    assert.ok(bob.json.revokedAt, `bob's revoke mark is copied: ${show(bob)}`);
    // The session token made before the copy, and a new login with the same password.
    const old = await b.pub("GET", "/api/user", { token: session });
    assert.equal(old.status, 200, `the session signing key came along: ${show(old)}`);
    assert.equal(old.json.acsUserIdentity, ids.dave);
    const fresh = await login(b);
    const d = await b.pub("GET", "/api/user", { token: fresh });
    assert.equal(d.json.acsUserIdentity, ids.dave);
    // A new user gets a new mapping (the id sequence moved past the copied ids).
    const erin = assertTokenResponse(await b.pub("GET", "/api/token", { token: bearer("erin") }), { what: "erin" });
    assert.ok(!Object.values(ids).includes(erin.userId), "erin is a new identity");
    assert.equal((await b.stop()).code, 0);

    // The copy has been used (tokens issued, a new user): copying the old file again meets
    // rows that differ, names one, and writes nothing.
    const stale = await tv(["store", "copy", sqlitePath, "--to-file", uriFile], dir);
    assert.equal(stale.code, 1, `conflict exit 1: ${stale.stderr}`);
    assert.equal(stale.stdout, "");
    const err = JSON.parse(stale.stderr.trim().split("\n").filter((l) => l.includes('"error"')).pop());
    assert.equal(err.error.code, "conflict");
    assert.match(err.error.message, /table mappings: .*id \d+.*nothing was written/, err.error.message);
    assert.ok(!stale.stderr.includes(pg.password));

    // And back: PostgreSQL -> a new SQLite file, served again.
    const backPath = join(dir, "c", "tokenvend.db");
    const back = await tv(["store", "copy", "--from-file", uriFile, backPath], dir);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(back.json.tables.mappings.copied, 5, back.stdout);
    const c = await serve(backPath);
    const e = await c.pub("GET", "/api/user", { token: bearer("erin") });
    assert.equal(e.json.acsUserIdentity, erin.userId, show(e));
    assert.equal((await c.pub("GET", "/api/user", { token: await login(c) })).json.acsUserIdentity, ids.dave);
  });

  test("usage: a missing source, a source behind the schema, the same store twice", async () => {
    const missing = await tv(["store", "copy", join(dir, "nope.db"), join(dir, "x.db")], dir);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /no SQLite database/);
    const same = await tv(["store", "copy", join(dir, "x.db"), join(dir, "x.db")], dir);
    assert.equal(same.code, 2, same.stderr);
    // A PostgreSQL database nobody migrated: the source must be migrated first.
    await pg.adminExec(`CREATE DATABASE bare OWNER ${pg.user}`);
    const bare = await tv(["store", "copy", pg.uriWith({ db: "bare" }), join(dir, "y.db")], dir);
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /source is at schema version 0.*tokenvend migrate/);
    assert.ok(!bare.stderr.includes(pg.password), "the password is never printed");
  });
});
