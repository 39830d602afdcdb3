// Backups (issue 11, point 5): `tokenvend backup FILE` on SQLite while the service serves and
// writes, restored as the README says (copy over the database path, `tokenvend migrate`, start):
// PRAGMA integrity_check is ok and every user acknowledged before the backup began is there with
// its ACS identity. On PostgreSQL the command refuses (exit 2, naming pg_dump) and the README's
// pg_dump -Fc / pg_restore recipe is run for real: the restored database serves the same users
// with the same ACS identities and the same API key, and holds none of the tokens the service
// kept (TOKENVEND_CACHE_KEY), which the recipe leaves out.

import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { startEmulator } from "./lib/emulator.mjs";
import { pgBindir, startPostgres } from "./lib/pg.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";

const run = promisify(execFile);
const skip = serveSkipReason();

// PUTs users w-0, w-1, ... from `workers` concurrent loops until stop() is called; every
// acknowledged one (200/201) is recorded with the ACS identity and the time of its answer.
function writeLoop(svc, key, prefix, workers = 3) {
  const acked = new Map();
  const failures = [];
  let next = 0;
  let stopping = false;
  const worker = async () => {
    while (!stopping) {
      const id = `${prefix}-${next++}`;
      const r = await svc.int("PUT", `/internal/users/${id}`, { key });
      if (r.status === 200 || r.status === 201) {
        acked.set(id, { acs: r.json.acsUserIdentity ?? r.json.user?.communicationUserId, at: Date.now() });
      } else {
        failures.push(`${id}: ${r.status} ${r.text}`);
      }
    }
  };
  const done = Promise.all(Array.from({ length: workers }, worker));
  return {
    acked,
    failures,
    stop: async () => {
      stopping = true;
      await done;
    },
  };
}

async function waitFor(cond, what, deadlineMs = 60_000) {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("tokenvend backup (SQLite)", { skip }, () => {
  const cleanups = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test("a backup taken while users are written restores with every acknowledged user", async () => {
    const emu = await startEmulator();
    cleanups.push(() => emu.stop());
    const svc = await startService({ emu });
    cleanups.push(() => svc.cleanup());
    const { key } = await svc.createApiKey("backup-writer");
    const file = join(svc.dir, "backups", "tv.backup");
    mkdirSync(join(svc.dir, "backups"), { mode: 0o700 });

    // Some 7 MB of audit rows first, so the copy takes several steps (1024 pages each) with the
    // writes going on between them.
    const pad = spawnSync("sqlite3", [svc.dbPath, "PRAGMA busy_timeout=10000; " +
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000) " +
      `INSERT INTO audit (ts_ms, action, outcome, detail) SELECT ${Date.now()}, 'pad', 'ok', ` +
      "hex(randomblob(100)) FROM n"], { encoding: "utf8" });
    assert.equal(pad.status, 0, pad.stderr);

    const loop = writeLoop(svc, key, "w");
    let res;
    let before;
    try {
      await waitFor(() => loop.acked.size >= 30, "30 acknowledged users");
      // Acknowledged before the backup began: these must be in it.
      before = new Map(loop.acked);
      res = await svc.cli(["backup", file]);
      // The writes go on after the backup too (they must not have been held).
      const n = loop.acked.size;
      await waitFor(() => loop.acked.size >= n + 10, "10 more users after the backup");
    } finally {
      await loop.stop();
    }
    assert.equal(res.code, 0, `backup exit ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
    assert.deepEqual(loop.failures, [], "every write succeeded");
    const out = JSON.parse(res.stdout.trim().split("\n").pop());
    assert.equal(out.file, file);
    assert.ok(out.pages > 1024, `pages ${out.pages}: more than one step`);
    assert.equal(out.bytes, statSync(file).size);
    assert.equal(statSync(file).mode & 0o777, 0o600, "the backup is 0600");
    assert.deepEqual(readdirSync(join(svc.dir, "backups")), ["tv.backup"], "no .tmp, -wal or -journal left");

    // A second backup to the same file is refused; --force replaces it.
    const again = await svc.cli(["backup", file]);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /"code":"conflict".*exists \(--force replaces it\)/);
    const forced = await svc.cli(["backup", file, "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    // The live database is never a destination.
    const self = await svc.cli(["backup", svc.dbPath, "--force"]);
    assert.equal(self.code, 2, self.stderr);
    assert.match(self.stderr, /is the database itself/);
    await svc.stop();

    // Restore as the README says: the backup over the database path (here a new one), migrate,
    // start. The file is now the forced backup, taken after the first: it holds `before` too.
    const rdir = mkdtempSync(join(tmpdir(), "tv-restore-"));
    cleanups.push(() => rmSync(rdir, { recursive: true, force: true }));
    const rdb = join(rdir, "db", "tokenvend.db");
    mkdirSync(join(rdir, "db"), { mode: 0o700 });
    copyFileSync(file, rdb);
    const integrity = spawnSync("sqlite3", [rdb, "PRAGMA integrity_check"], { encoding: "utf8" });
    assert.equal(integrity.status, 0, integrity.stderr);
    assert.equal(integrity.stdout.trim(), "ok");
    const restored = await startService({ emu, env: { TOKENVEND_DB: rdb } });
    cleanups.push(() => restored.cleanup());
    const mig = await restored.cli(["migrate"]);
    assert.equal(mig.code, 0, mig.stderr);
    for (const [id, { acs }] of before) {
      const r = await restored.int("GET", `/internal/users/${id}`, { key });
      assert.equal(r.status, 200, `${id} after restore: ${r.status} ${r.text}`);
      assert.equal(r.json.acsUserIdentity, acs, `${id}'s ACS identity`);
    }
    // The audit log of the source recorded the backups.
    const audit = spawnSync("sqlite3", [svc.dbPath, "SELECT outcome FROM audit WHERE action = 'backup' ORDER BY id"],
      { encoding: "utf8" });
    assert.deepEqual(audit.stdout.trim().split("\n"), ["ok", "conflict", "ok", "invalid_request"]);
  });
});

describe("tokenvend backup (PostgreSQL): refused, and the README's pg_dump recipe restores", { skip }, () => {
  const cleanups = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test("pg_dump -Fc, pg_restore into a new database, the same users and ACS identities", async () => {
    const pg = await startPostgres();
    cleanups.push(() => pg.stop());
    const emu = await startEmulator();
    cleanups.push(() => emu.stop());
    // Tokens kept in the store (TOKENVEND_CACHE_KEY): the dump must leave them out, or the
    // restored service would serve ones that ACS revoked after the dump.
    const svc = await startService({
      emu, env: { TOKENVEND_DB: pg.uri, TOKENVEND_CACHE_KEY: randomBytes(32).toString("base64") },
    });
    cleanups.push(() => svc.cleanup());
    const { key } = await svc.createApiKey("backup-pg");
    const users = new Map();
    for (let i = 0; i < 20; i++) {
      const r = await svc.int("PUT", `/internal/users/p-${i}`, { key });
      assert.ok(r.status === 201 || r.status === 200, `${r.status} ${r.text}`);
      users.set(`p-${i}`, r.json.acsUserIdentity);
    }

    const kept = await svc.int("POST", "/internal/users/p-1/token", { key, body: {} });
    assert.equal(kept.status, 200, kept.text);
    let keptRows = 0;
    for (let i = 0; i < 100 && keptRows === 0; i++) {
      keptRows = Number((await pg.psql(pg.uri, "SELECT count(*) FROM token_cache")).stdout.trim());
      if (keptRows === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(keptRows > 0, "the service keeps its token in the store");

    const refused = await svc.cli(["backup", join(svc.dir, "x.backup")]);
    assert.equal(refused.code, 2, refused.stderr);
    const err = JSON.parse(refused.stderr.trim().split("\n").pop()).error;
    assert.equal(err.code, "config_error");
    assert.match(err.message, /PostgreSQL: back it up with pg_dump -Fc .*README "Backup and restore"/);
    assert.ok(!existsSync(join(svc.dir, "x.backup")));

    // The README's recipe, flag for flag (the password through PGPASSWORD, not the command line).
    const dump = join(svc.dir, "tokenvend.dump");
    const env = { ...process.env, PGPASSWORD: pg.password };
    const conn = (db) => ["--host=127.0.0.1", `--port=${pg.port}`, `--username=${pg.user}`, `--dbname=${db}`];
    await run(join(pgBindir(), "pg_dump"), ["--format=custom", "--no-owner", "--no-privileges",
      "--exclude-table-data=token_cache", "--exclude-table-data=acs_budget",
      "--exclude-table-data=session_refresh",
      ...conn(pg.db), `--file=${dump}`], { env, timeout: 120_000 });
    await svc.stop();
    await pg.adminExec(`CREATE DATABASE tv_restored OWNER ${pg.user}`);
    await run(join(pgBindir(), "pg_restore"), ["--no-owner", "--no-privileges", "--single-transaction",
      "--exit-on-error", ...conn("tv_restored"), dump], { env, timeout: 120_000 });

    const restoredUri = pg.uriWith({ db: "tv_restored" });
    assert.equal((await pg.psql(restoredUri, "SELECT count(*) FROM token_cache")).stdout.trim(), "0",
      "the kept tokens are not in the dump");
    const restored = await startService({ emu, env: { TOKENVEND_DB: restoredUri } });
    cleanups.push(() => restored.cleanup());
    const mig = await restored.cli(["migrate"]);
    assert.equal(mig.code, 0, mig.stderr);
    assert.deepEqual(JSON.parse(mig.stdout.trim().split("\n").pop()).applied, [], "nothing to migrate");
    for (const [id, acs] of users) {
      const r = await restored.int("GET", `/internal/users/${id}`, { key });
      assert.equal(r.status, 200, `${id}: ${r.status} ${r.text}`);
      assert.equal(r.json.acsUserIdentity, acs);
    }
    // The restored service issues tokens for them (the identities are the emulator's) and makes
    // new ones (the id sequences came along).
    const tok = await restored.int("POST", "/internal/users/p-3/token", { key, body: {} });
    assert.equal(tok.status, 200, tok.text);
    const fresh = await restored.int("PUT", "/internal/users/p-new", { key });
    assert.equal(fresh.status, 201, fresh.text);
  });
});
