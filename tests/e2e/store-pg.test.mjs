// tokenvend on PostgreSQL, chosen by the form of TOKENVEND_DB (issue 9): broken settings give one
// clear line and exit 2 (configuration) or 1 (runtime) without showing the password; the URI can
// come from TOKENVEND_DB_FILE; PostgreSQL stopped and started under load costs 503s with the
// error shape while it is down and nothing after, without restarting tokenvend.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startPostgres } from "./lib/pg.mjs";
import { cleanEnv, freePorts, pollUntil, serveSkipReason, startService, tokenvendPath } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const SECRET = "Sekr1t-not-to-be-shown";

// Runs tokenvend with env; resolves to { code, stdout, stderr, lines (stderr's) }.
function tv(args, env, { timeoutMs = 60_000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "tv-pgcli-"));
  return new Promise((res, rej) => {
    const p = spawn(tokenvendPath(), args, { cwd: dir, env: cleanEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.once("error", rej);
    p.once("close", (code, signal) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      res({ code, signal, stdout, stderr, lines: stderr.split("\n").filter(Boolean) });
    });
  });
}

// serve with the database env and throw-away listeners; it must exit on its own.
async function serveOnce(env) {
  const [a, b] = await freePorts(2);
  return tv(["serve"], {
    TOKENVEND_PUBLIC_ADDR: `127.0.0.1:${a}`,
    TOKENVEND_INTERNAL_ADDR: `127.0.0.1:${b}`,
    COMMUNICATION_SERVICES_CONNECTION_STRING: "endpoint=http://127.0.0.1:9/;accesskey=AAAA",
    TOKENVEND_LOG_LEVEL: "info",
    ...env,
  });
}

describe("PostgreSQL store: broken settings", { skip }, () => {
  let pg;
  before(async () => {
    pg = await startPostgres();
    await pg.adminExec(`ALTER ROLE ${pg.user} PASSWORD '${SECRET}'`);
  });
  after(async () => {
    await pg?.stop();
  });

  const uri = (o = {}) => pg.uriWith({ password: SECRET, ...o });

  const expectOneLine = (r, code, re, what) => {
    const all = r.stdout + r.stderr;
    assert.equal(r.code, code, `${what}: exit ${r.code}, stderr:\n${r.stderr}`);
    assert.ok(!all.includes(SECRET), `${what}: the password is not shown:\n${all}`);
    const errors = r.lines.filter((l) => /"error"|"level":"error"/.test(l));
    assert.ok(errors.length >= 1 && errors.length <= 2, `${what}: one error (and serve's summary):\n${r.stderr}`);
    assert.match(errors[0], re, `${what}: the reason is named`);
    return errors;
  };

  test("wrong password, missing database, malformed URI -> exit 2; unreachable -> exit 1", async () => {
    const cases = [
      { db: uri({ password: "wrong" }), code: 2, re: /refused user/, what: "wrong password" },
      { db: uri({ db: "no_such_db" }), code: 2, re: /no_such_db|does not exist/, what: "missing database" },
      { db: `postgresql://tv:${SECRET}@127.0.0.1:70000/tv`, code: 2, re: /not a valid PostgreSQL URI/, what: "bad port" },
      { db: `postgresql://tv:${SECRET}@127.0.0.1:${(await freePorts(1))[0]}/tv`, code: 1, re: /unreachable/, what: "nothing listening" },
    ];
    for (const c of cases) {
      const env = { TOKENVEND_DB: c.db, TOKENVEND_DB_CONNECT_TIMEOUT_MS: "2000" };
      expectOneLine(await tv(["migrate"], env), c.code, c.re, `migrate, ${c.what}`);
      const s = await serveOnce(env);
      expectOneLine(s, c.code, c.re, `serve, ${c.what}`);
    }
  });

  test("a database with a newer schema -> migrate and serve exit 2 naming it", async () => {
    const env = { TOKENVEND_DB: uri() };
    const m = await tv(["migrate"], env);
    assert.equal(m.code, 0, m.stderr);
    assert.ok(!m.stdout.includes(SECRET) && m.stdout.includes(":***@"), `migrate shows the URI redacted: ${m.stdout}`);
    await pg.psql(uri(), "INSERT INTO schema_migrations (version, name, applied_ms) VALUES (999, '0999_future', 0)");
    expectOneLine(await tv(["migrate"], env), 2, /999.*newer|newer.*999|not one this binary knows/, "migrate, newer schema");
    expectOneLine(await serveOnce(env), 2, /999|newer|not one this binary knows/, "serve, newer schema");
    await pg.psql(uri(), "DELETE FROM schema_migrations WHERE version = 999");
  });
});

describe("PostgreSQL store: the URI from TOKENVEND_DB_FILE; PostgreSQL restarted under load", { skip }, () => {
  let pg, emu, svc, key, dir;
  before(async () => {
    pg = await startPostgres();
    emu = await startEmulator();
    dir = mkdtempSync(join(tmpdir(), "tv-pgfile-"));
    const file = join(dir, "db-uri");
    writeFileSync(file, `${pg.uri}\n`, { mode: 0o600 });
    svc = await startService({
      emu,
      env: {
        TOKENVEND_DB: null,
        TOKENVEND_DB_FILE: file,
        TOKENVEND_DB_CONNECT_TIMEOUT_MS: "1000",
        TOKENVEND_DB_STATEMENT_TIMEOUT_MS: "2000",
      },
    });
    key = (await svc.createApiKey("load")).key;
  });
  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
    await pg?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the service runs on the database the file names", async () => {
    const r = await svc.int("POST", "/internal/users/file-user/token", { key, body: {} });
    assert.equal(r.status, 200, show(r));
    const rows = await pg.psql(pg.uri, "SELECT acs_id FROM mappings WHERE app_user_id = 'file-user'");
    assert.equal(rows.stdout.trim(), r.json.user.communicationUserId);
    const logs = svc.logs();
    assert.ok(!(logs.stdout + logs.stderr).includes(pg.password), "the password is not logged");
  });

  test("stopped under load: 503 with the error shape, no hang; started again: served, same process", async () => {
    let n = 0;
    let stop = false;
    const seen = { ok: 0, unavailable: 0, other: [] };
    let slowest = 0;
    const worker = async () => {
      while (!stop) {
        const t0 = Date.now();
        const r = await svc.int("POST", `/internal/users/load-${n++}/token`, { key, body: {} });
        slowest = Math.max(slowest, Date.now() - t0);
        if (r.status === 200) seen.ok++;
        else if (r.status === 503 && r.json?.error?.code && typeof r.json.error.message === "string") seen.unavailable++;
        else seen.other.push(show(r));
      }
    };
    const workers = [worker(), worker(), worker(), worker()];
    await pollUntil(async () => seen.ok >= 20, { deadlineMs: 30_000, intervalMs: 50 });
    await pg.pause();
    const downAt = seen.unavailable;
    assert.ok(await pollUntil(async () => seen.unavailable >= downAt + 8, { deadlineMs: 30_000, intervalMs: 50 }),
      `503s while PostgreSQL is down (ok ${seen.ok}, 503 ${seen.unavailable})`);
    await pg.resume();
    const okAt = seen.ok;
    assert.ok(await pollUntil(async () => seen.ok >= okAt + 20, { deadlineMs: 30_000, intervalMs: 50 }),
      `served again after PostgreSQL is back (ok ${seen.ok}, 503 ${seen.unavailable})`);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(seen.other, [], "every answer was a token or a 503 with the error shape");
    assert.ok(svc.alive(), "tokenvend still runs (not restarted)");
    // No hang: every request above came back (httpRequest gives up after 60 s and throws).
    console.log(`# PostgreSQL restart under load: ok ${seen.ok}, 503 ${seen.unavailable}, slowest ${slowest} ms`);
    const r = await svc.int("POST", "/internal/users/after-restart/token", { key, body: {} });
    assert.equal(r.status, 200, show(r));
  });
});
