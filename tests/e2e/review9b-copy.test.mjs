// review9b reproducer (FAILING on the code as reviewed): `tokenvend store copy` of a SQLite store
// that the service itself filled cannot be moved to PostgreSQL. A Teams exchange audits
// "oid=%.90s appid=%.90s" (src/service/teams.c); an appid whose 90th byte starts a two-byte
// character leaves a detail that is not UTF-8, which SQLite keeps as it is. PostgreSQL refuses
// that text, so the copy's one transaction fails and nothing is copied: a node that ever served
// such a request cannot grow into replicas (the recipe), whatever the fix of the audit
// writer does for new rows. The same holds for mappings stored before ids were checked (the
// README: "ids stored before ids were checked may hold any byte").

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { makeTeamsAadToken, startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { startPostgres } from "./lib/pg.mjs";
import { cleanEnv, serveSkipReason, startService, tokenvendPath } from "./lib/service.mjs";
import { assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();

function tv(args, dir) {
  return new Promise((res, rej) => {
    const p = spawn(tokenvendPath(), args, { cwd: dir, env: cleanEnv({}), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8").on("data", (c) => (stdout += c));
    p.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
    const timer = setTimeout(() => p.kill("SIGKILL"), 120_000);
    p.once("error", rej);
    p.once("close", (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

describe("review9b: store copy of a SQLite store the service filled", { skip }, () => {
  let emu, jwks, pg, dir, svc;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tv-r9b-copy-"));
    [emu, jwks, pg] = await Promise.all([startEmulator(), startJwksServer(), startPostgres()]);
  });
  after(async () => {
    await svc?.cleanup();
    await pg?.stop();
    await jwks?.close();
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("after a Teams exchange with a long non-ASCII appid, the copy into PostgreSQL succeeds", async () => {
    const sqlitePath = join(dir, "tokenvend.db");
    svc = await startService({ emu, jwks, env: { TOKENVEND_DB: sqlitePath } });
    const alice = assertTokenResponse(await svc.pub("GET", "/api/token", { token: jwks.token("alice") }), { what: "alice" });
    const oid = randomUUID();
    const appid = `${"a".repeat(89)}${"\u00e9".repeat(10)}`;
    const r = await svc.pub("GET", "/api/token/teams", {
      token: jwks.token("teams-user", { claims: { oid } }),
      headers: { "teams-user-aad-token": makeTeamsAadToken({ oid, appid }) },
    });
    assert.ok(r.status > 0, show(r));
    assert.equal((await svc.stop()).code, 0, "the SQLite service stopped cleanly");

    const c = await tv(["store", "copy", sqlitePath, pg.uri], dir);
    assert.equal(c.code, 0, `store copy of the node's store (alice is ${alice.userId}) exited ${c.code}: ` +
      `${c.stdout}${c.stderr}`);
  });
});
