// The PostgreSQL harness of the e2e suites (lib/pg.mjs): a cluster starts, answers SELECT 1
// over TCP with the role's password and refuses a wrong one, and is gone after stop().
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";

import { startPostgres } from "./lib/pg.mjs";

test("a cluster starts, answers over TCP with its password, and is gone after stop", async () => {
  const pg = await startPostgres();
  try {
    assert.match(pg.uri, /^postgresql:\/\/tv_app:[0-9a-f]{32}@127\.0\.0\.1:\d+\/tv$/);
    const { stdout } = await pg.psql(pg.uri, "SELECT 1");
    assert.equal(stdout.trim(), "1");
    await assert.rejects(pg.psql(pg.uriWith({ password: "wrong" }), "SELECT 1"),
      /password authentication failed/);
    await pg.restart();
    assert.equal((await pg.psql(pg.uri, "SELECT 2")).stdout.trim(), "2");
  } finally {
    await pg.stop();
  }
  assert.equal(existsSync(pg.dir), false);
  await assert.rejects(pg.psql(pg.uri, "SELECT 1"), /Connection refused|could not connect/);
});
