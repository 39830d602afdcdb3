// The short versions of the reliability runs (make test; the long ones are `make reliability`,
// docs/reliability.md): 3 SIGKILL rounds on SQLite and on PostgreSQL, a few of each hostile kind
// with 50 slow clients, and 500 mixed requests under valgrind memcheck. Each asserts the same
// pass conditions as its long run. Skipped parts say why (no PostgreSQL pass under make asan,
// TV_E2E_PG=0; no valgrind over a sanitizer build).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, test } from "node:test";
import { serveSkipReason } from "../e2e/lib/service.mjs";
import { run as crash } from "./crash.mjs";
import { run as hostile } from "./hostile.mjs";
import { run as valgrind } from "./valgrind.mjs";

const skip = serveSkipReason();
// The SIGKILL rounds wait out the outbox leases of the killed process's in-flight deletes, which
// last the ACS deadline plus 15 s (45 s by default); a 6 s deadline against the local emulator
// (as tests/e2e/service-replicas-outbox.test.mjs uses) makes that 21 s, with the same checks.
const CRASH_ACS_DEADLINE_MS = 6000;
const sanitized = /asan|tsan/.test(process.env.TV_BUILD || "");
const haveValgrind = spawnSync("valgrind", ["--version"]).status === 0;

describe("reliability, short runs", { skip }, () => {
  test("SIGKILL under mixed writes, SQLite, 3 rounds: nothing acknowledged lost, one identity per user, 202 deletes finish, integrity ok", async (t) => {
    const r = await crash({ store: "sqlite", rounds: 3, acsDeadlineMs: CRASH_ACS_DEADLINE_MS, log: (s) => t.diagnostic(s) });
    assert.equal(r.rounds, 3);
    assert.deepEqual([r.on.rounds, r.off.rounds], [2, 1], "rounds with acs_custom_id on and off");
    assert.equal(r.lost, 0, r.markdown);
    assert.equal(r.twoIdentities, 0, r.markdown);
    assert.equal(r.mappingLeft, 0, r.markdown);
    assert.equal(r.unfinished, 0, r.markdown);
    assert.deepEqual(r.integrity, ["ok", "ok", "ok"], r.markdown);
    assert.ok(r.checkedUsers > 0 && r.acked202 + r.acked204 > 0, `the load did writes: ${r.markdown}`);
    assert.ok(r.ok, `${JSON.stringify({ on: r.on, off: r.off })}\n${r.markdown}`);
  });

  test("SIGKILL under mixed writes, PostgreSQL, 3 rounds", { skip: process.env.TV_E2E_PG === "0" && "TV_E2E_PG=0" }, async (t) => {
    const r = await crash({ store: "pg", rounds: 3, acsDeadlineMs: CRASH_ACS_DEADLINE_MS, log: (s) => t.diagnostic(s) });
    assert.equal(r.lost, 0, r.markdown);
    assert.equal(r.twoIdentities, 0, r.markdown);
    assert.equal(r.mappingLeft, 0, r.markdown);
    assert.equal(r.unfinished, 0, r.markdown);
    assert.ok(r.checkedUsers > 0, r.markdown);
    assert.ok(r.ok, `${JSON.stringify({ on: r.on, off: r.off })}\n${r.markdown}`);
  });

  test("hostile input (4 of each kind) and 50 slow clients: every request answered or closed, normal clients served, slow ones dropped", async (t) => {
    const r = await hostile({ each: 4, slow: 50, env: { TOKENVEND_REQUEST_TIMEOUT_S: "5" }, log: (s) => t.diagnostic(s) });
    assert.equal(r.hostile.normalFailed, 0, r.markdown);
    assert.equal(r.slow.failed, 0, r.markdown);
    assert.equal(r.slow.still, 0, r.markdown);
    assert.ok(r.slow.served > 0, r.markdown);
    assert.ok(r.ok, r.markdown);
  });

  test("valgrind memcheck over 500 mixed requests: 0 errors, 0 definite or indirect leaks", { skip: (sanitized && "a sanitizer build") || (!haveValgrind && "valgrind is not installed (scripts/deps.sh valgrind)") }, async (t) => {
    const r = await valgrind({ requests: 500, clients: 8, log: (s) => t.diagnostic(s) });
    assert.equal(r.memcheck.errors, 0, `${r.markdown}\n${r.logTail}`);
    assert.equal(r.memcheck.definite, 0, r.logTail);
    assert.equal(r.memcheck.indirect, 0, r.logTail);
    assert.equal(r.exit.code, 0, r.logTail);
    assert.ok(r.load.counts["token new user 200"] > 0, r.markdown);
  });
});
