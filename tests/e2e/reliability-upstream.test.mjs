// The short version of tests/reliability/upstream-faults.mjs inside make test: each upstream
// fault (black hole, 429 storm, 5xx storm, dropped connections, slow bodies) against a fresh
// tokenvend serve, with the answers each fault must give and nothing left behind afterwards
// (threads, descriptors other than curl's kept-alive ACS sockets and the store's reader
// connections, ACS calls in flight). The
// long version (200 requests per fault, breaker off and on) writes docs/reliability.md's
// figures: node tests/reliability/upstream-faults.mjs --out build/reliability/upstream.md

import assert from "node:assert/strict";
import { test } from "node:test";
import { DEADLINE_MS, other, runUpstreamFaults } from "../reliability/upstream-faults.mjs";
import { serveSkipReason } from "./lib/service.mjs";

const skip = serveSkipReason();
const SLACK_MS = 5000; // generous: answered by the deadline, not by the client giving up

// What each fault must be answered with (breaker off): "status code" keys of the row's answers.
const EXPECTED = {
  none: ["200", "201", "204"],
  blackhole: ["504 upstream_timeout"],
  "429-storm": ["503 acs_throttled"],
  "5xx-storm": ["503 acs_unavailable"],
  dropped: ["502 upstream_network", "502 upstream_outcome_unknown"],
  "slow-body": ["200", "201", "204"],
};

test("upstream faults (quick): the right answers by the deadline, nothing left behind", { skip }, async () => {
  const { rows, markdown } = await runUpstreamFaults({ quick: true, argv: ["--quick"] });
  assert.deepEqual(rows.map((r) => r.fault).sort(), Object.keys(EXPECTED).sort());
  for (const r of rows) {
    const label = `${r.fault}: ${JSON.stringify(r)}`;
    for (const k of Object.keys(r.answers)) assert.ok(EXPECTED[r.fault].includes(k), `${label}: answer ${k}`);
    assert.equal(Object.values(r.answers).reduce((a, b) => a + b, 0), r.requests, label);
    assert.ok(r.max < DEADLINE_MS + SLACK_MS, `${label}: slowest answer ${r.max} ms`);
    assert.equal(r.inflightAfter, 0, `${label}: ACS calls in flight after`);
    assert.ok(r.after.threads <= r.before.threads, `${label}: threads`);
    assert.ok(other(r.after, r.sockAfter) <= other(r.before, r.sockBefore), `${label}: descriptors other than ACS sockets and the database`);
    if (r.fault === "blackhole" || r.fault === "dropped") {
      assert.equal(r.sockAfter, 0, `${label}: no ACS socket kept after the calls failed`);
      assert.equal(r.proxyOpenAfter, 0, `${label}: the fault proxy holds no connection of tokenvend's`);
    }
  }
  assert.match(markdown, /^## Upstream faults$/m);
  assert.match(markdown, /^\| blackhole \| off \| \d+ x 504 upstream_timeout \|/m);
  assert.match(markdown, /^Machine: \d+ CPU/m);
});
