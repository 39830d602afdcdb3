// Review of issue 12 (tests/e2e/web-example.test.mjs): the session renewal test skips itself
// whenever the service answers 404 to POST /api/session/refresh.
//
// That guard was written while the routes were not merged yet. They are now, and the example
// page relies on them (renewal before the 15-minute session ends, resume after a reload, logout).
// A service that loses them (a route regression, session_refresh_ttl defaulting to 0, local
// accounts' routes no longer mounted) now turns the browser test's renewal case into a skip, and
// `make test` stays green: the check cannot fail on the very breakage it is there for.
//
// This breaks the service on purpose: it runs web-example.test.mjs's renewal test (a copy whose
// one change is TOKENVEND_SESSION_REFRESH_TTL=0, which the README says makes both routes 404)
// and requires a failure, not a skip. The copy is not named *.test.mjs, so no test run picks it
// up, and it is removed afterwards.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { serveSkipReason } from "./lib/service.mjs";
import { CHROMIUM } from "./lib/web.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const skip = serveSkipReason() || (existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM}`);

describe("review12b: the browser renewal test fails when the service lost session renewal", { skip }, () => {
  const mutant = join(HERE, `review12b-mutant-${process.pid}.mjs`);
  after(() => rmSync(mutant, { force: true }));

  test("session_refresh_ttl = 0 (routes 404): the renewal test fails instead of skipping", () => {
    const src = readFileSync(join(HERE, "web-example.test.mjs"), "utf8");
    const from = "env: { TOKENVEND_CORS_ORIGINS: `http://127.0.0.1:${port}` },";
    assert.ok(src.includes(from), "the browser test starts the service with its CORS setting");
    writeFileSync(mutant, src.replace(from, "env: { TOKENVEND_CORS_ORIGINS: `http://127.0.0.1:${port}`, TOKENVEND_SESSION_REFRESH_TTL: \"0\" },"));
    // NODE_TEST_CONTEXT left out: with it, the inner run reports to this runner, not as TAP.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ["--test", "--test-reporter=tap", "--test-name-pattern=session renewal", mutant],
      { cwd: HERE, encoding: "utf8", timeout: 600_000, env });
    const line = (/^\s*((?:not )?ok \d+ - session renewal with the refresh cookie.*)$/m.exec(r.stdout) || [])[1];
    assert.ok(line, `the renewal test ran:\n${r.stdout.slice(-1500)}${r.stderr.slice(-500)}`);
    assert.doesNotMatch(line, /# SKIP/, `the renewal test skipped itself on a service without the routes: ${line}`);
    assert.match(line, /^not ok/, `the renewal test passed without the routes: ${line}`);
  });
});
