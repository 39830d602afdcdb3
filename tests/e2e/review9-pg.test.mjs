// Reproducers from the adversarial review of issue 9 (review9). Each test fails on the code as
// it was reviewed; see the review report for the defect each one shows.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { randomUUID } from "node:crypto";
import { makeTeamsAadToken, startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { startPostgres } from "./lib/pg.mjs";
import { cleanEnv, httpRequest, serveSkipReason, startService, tokenvendPath } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();

// The postmaster's pid and every process it started (its backends).
function clusterPids(dir) {
  const master = Number(readFileSync(join(dir, "data", "postmaster.pid"), "utf8").split("\n")[0]);
  const pids = [master];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === master) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function signalAll(pids, sig) {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {
      // gone
    }
  }
}

// tokenvend with env; resolves to { code, stdout, stderr }.
function tv(args, env, cwd = tmpdir()) {
  return new Promise((res, rej) => {
    const p = spawn(tokenvendPath(), args, { cwd, env: cleanEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.once("error", rej);
    p.once("close", (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

describe("review9: PostgreSQL that stops answering (frozen server, network partition)", { skip }, () => {
  let pg, emu, svc, key;
  before(async () => {
    pg = await startPostgres();
    emu = await startEmulator();
    svc = await startService({
      emu,
      env: {
        TOKENVEND_DB: pg.uri,
        TOKENVEND_DB_CONNECT_TIMEOUT_MS: "1000",
        TOKENVEND_DB_STATEMENT_TIMEOUT_MS: "2000",
      },
    });
    key = (await svc.createApiKey("frozen")).key;
    const r = await svc.int("POST", "/internal/users/warm/token", { key, body: {} });
    assert.equal(r.status, 200, show(r));
  });
  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
    await pg?.stop();
  });

  test("a request that needs the database answers (503) within a bounded time, not never", async () => {
    const pids = clusterPids(pg.dir);
    signalAll(pids, "SIGSTOP");
    let r, failure;
    try {
      // Generous: 15x the statement timeout plus the connect timeout.
      r = await httpRequest(`${svc.internalUrl}/internal/users/frozen-1/token`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}` },
        body: {},
        timeoutMs: 30_000,
      }).catch((e) => {
        failure = e;
      });
    } finally {
      signalAll(pids, "SIGCONT");
    }
    assert.equal(failure, undefined, `the request never came back: ${failure}`);
    assert.equal(r.status, 503, show(r));
  });
});

describe("review9: the database password in a percent-encoded password parameter", { skip }, () => {
  const SECRET = "Sekr1t-percent-encoded";
  const uri = `postgresql://tv_app@127.0.0.1:99999/tv?pass%77ord=${SECRET}`;
  const env = {
    TOKENVEND_DB: uri,
    COMMUNICATION_SERVICES_CONNECTION_STRING: "endpoint=http://127.0.0.1:9/;accesskey=AAAA",
  };

  test("config check's error never shows it (libpq reads pass%77ord as password)", async () => {
    const r = await tv(["config", "check"], env);
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), `shown: ${r.stdout}${r.stderr}`);
  });

  test("config check's listing of the settings never shows it", async () => {
    const r = await tv(["config", "check"], { ...env, TOKENVEND_DB: uri.replace("99999", "5432") });
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), `shown: ${r.stdout}${r.stderr}`);
  });
});

describe("review9: a password= query parameter holding an '@'", { skip }, () => {
  // libpq takes "postgresql://host/db?password=Sekr1t@rest" (no user information: the '@' is in
  // the query). dburi_redact looks for the user information's end at the last '@' of the whole
  // URI, so the password= parameter before it is copied untouched.
  const SECRET = "Sekr1t-before-at";
  test("config check's listing does not show it", async () => {
    const r = await tv(["config", "check"], { TOKENVEND_DB: `postgresql://127.0.0.1/tv?user=tv_app&password=${SECRET}@rest` });
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), `shown: ${(r.stdout + r.stderr).match(/.*Sekr1t.*/)}`);
  });
  test("nor does config check's error show any part of it", async () => {
    const r = await tv(["config", "check"], { TOKENVEND_DB: `postgresql://127.0.0.1:99999/tv?user=tv_app&password=${SECRET}@rest-of-it` });
    assert.ok(!(r.stdout + r.stderr).includes("rest-of-it"), `shown: ${r.stdout}${r.stderr}`);
  });
});

describe("review9: what the database URI asks for", { skip }, () => {
  let pg;
  before(async () => {
    pg = await startPostgres();
  });
  after(async () => {
    await pg?.stop();
  });

  // libpq's options= parameter is how a URI picks a schema (search_path) and other session
  // settings; tokenvend passes its own "options" keyword after the URI, which replaces the
  // URI's instead of adding to it.
  test("options=-c search_path=... in the URI is honoured: the tables go into that schema", async () => {
    await pg.adminExec("CREATE DATABASE tv_schema OWNER tv_app");
    await pg.psql(pg.uriWith({ db: "tv_schema" }), "CREATE SCHEMA tenant1");
    const uri = `${pg.uriWith({ db: "tv_schema" })}?options=-c%20search_path%3Dtenant1`;
    const r = await tv(["migrate"], { TOKENVEND_DB: uri });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const where = await pg.psql(pg.uriWith({ db: "tv_schema" }),
      "SELECT table_schema FROM information_schema.tables WHERE table_name = 'mappings' ORDER BY 1");
    assert.equal(where.stdout.trim(), "tenant1", "the mappings table went where the URI said");
  });

  // The usual production split: the owner runs `tokenvend migrate`, the replicas connect as a
  // role that may read and write the tables but not create objects (PostgreSQL 15 no longer
  // lets every role create in schema public). Reading the schema version must not need CREATE.
  test("a role with only DML privileges on an up-to-date schema can open the store", async () => {
    const m = await tv(["migrate"], { TOKENVEND_DB: pg.uri });
    assert.equal(m.code, 0, m.stdout + m.stderr);
    await pg.adminExec("CREATE ROLE tv_dml LOGIN PASSWORD 'dml-pw'");
    await pg.psql(pg.uri, "GRANT USAGE ON SCHEMA public TO tv_dml;" +
      " GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tv_dml;" +
      " GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tv_dml");
    const r = await tv(["identity", "list"], { TOKENVEND_DB: pg.uriWith({ user: "tv_dml", password: "dml-pw" }) });
    assert.equal(r.code, 0, `identity list as a DML-only role: ${r.stdout}${r.stderr}`);
  });

  // The same role on a database that still needs its tables: a configuration error that says
  // what to do, not "input/output error".
  test("a role that may not create tables is told so when the schema needs migrating", async () => {
    await pg.adminExec("CREATE DATABASE tv_empty OWNER tv_app");
    await pg.adminExec("CREATE ROLE tv_dml_empty LOGIN PASSWORD 'dml-pw'");
    const r = await tv(["migrate"], { TOKENVEND_DB: pg.uriWith({ user: "tv_dml_empty", password: "dml-pw", db: "tv_empty" }) });
    assert.notEqual(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stderr + r.stdout, /role tv_dml_empty may not create in schema public/);
    assert.match(r.stderr + r.stdout, /run `tokenvend migrate` as a role that may/);
    assert.doesNotMatch(r.stderr + r.stdout, /input\/output error/);
  });
});

describe("review9: libpq's key=value connection string in TOKENVEND_DB", { skip }, () => {
  // "host=... password=..." is libpq's own connection-string form (as common as the URI). It is
  // not a PostgreSQL URI, so tokenvend takes it for a SQLite path: it creates a file named after
  // it, password and all, and prints it in config check and migrate.
  const SECRET = "Sekr1t-key-value";
  const db = `host=127.0.0.1 port=1 user=tv_app password=${SECRET} dbname=tv`;

  test("config check refuses it or at least never shows the password", async () => {
    const r = await tv(["config", "check"], { TOKENVEND_DB: db });
    assert.ok(!(r.stdout + r.stderr).includes(SECRET), `shown: ${r.stdout}${r.stderr}`);
  });

  test("migrate does not create a SQLite file named after it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tv-kv-"));
    try {
      const r = await tv(["migrate"], { TOKENVEND_DB: db }, dir);
      assert.deepEqual(readdirSync(dir), [], `migrate exited ${r.code}: ${r.stdout}${r.stderr}`);
      assert.ok(!(r.stdout + r.stderr).includes(SECRET), `shown: ${r.stdout}${r.stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("review9: an audit row the caller can make vanish on PostgreSQL", { skip }, () => {
  // The Teams exchange audits "oid=%.90s appid=%.90s"; appid comes from the caller's (unverified)
  // Teams token. An appid whose 90th byte starts a two-byte character is cut inside it, the
  // detail is no longer UTF-8, PostgreSQL refuses the INSERT (SQLSTATE 22021) and the row is
  // lost (SQLite keeps it). Any signed-in caller can so hide its calls from the audit trail.
  let pg, emu, jwks, svc;
  before(async () => {
    pg = await startPostgres();
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({ emu, jwks, env: { TOKENVEND_DB: pg.uri } });
  });
  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
    await pg?.stop();
  });

  test("a Teams exchange with a long non-ASCII appid is audited", async () => {
    const oid = randomUUID();
    const appid = `${"a".repeat(89)}${"\u00e9".repeat(10)}`;
    const r = await svc.pub("GET", "/api/token/teams", {
      token: jwks.token("teams-audit", { claims: { oid } }),
      headers: { "teams-user-aad-token": makeTeamsAadToken({ oid, appid }) },
    });
    assert.ok(r.status > 0, show(r));
    const rows = await pg.psql(pg.uri, "SELECT count(*) FROM audit WHERE action = 'teams_exchange'");
    const logs = svc.logs();
    assert.equal(rows.stdout.trim(), "1",
      `answered ${r.status}; the audit row is missing. Log: ${(logs.stderr.match(/.*(audit row|22021|UTF8).*/g) || []).join("\n")}`);
  });
});
