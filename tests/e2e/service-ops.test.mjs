// tokenvend serve, black box: the operations settings of issue 6 as an operator sets them, in
// the environment. TOKENVEND_METRICS_AUTH=apikey puts GET /metrics behind an API key (401 in the
// error shape without one) while /healthz and /readyz stay open; the audit retention settings
// reach the running service (its metrics report them and its maintenance passes run).
// Pruning itself is tested in tests/integration/test_ops.c, which writes old rows directly.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertUnauthorized, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();

// The value of a metric line "name value" in Prometheus text, or undefined.
function metric(text, name) {
  const m = text.match(new RegExp(`^${name} (\\S+)$`, "m"));
  return m ? Number(m[1]) : undefined;
}

describe("tokenvend serve: metrics_auth = apikey, audit retention settings", { skip }, () => {
  let emu;
  let svc;
  let apiKey;

  before(async () => {
    emu = await startEmulator();
    svc = await startService({
      emu,
      env: {
        TOKENVEND_METRICS_AUTH: "apikey",
        TOKENVEND_AUDIT_RETENTION_DAYS: "7",
        TOKENVEND_AUDIT_PRUNE_INTERVAL_MS: "200",
      },
    });
    apiKey = (await svc.createApiKey("scraper")).key;
  });

  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
  });

  test("GET /metrics without a valid API key is 401 in the error shape, with one is 200", async () => {
    assertUnauthorized(await svc.int("GET", "/metrics"), "no key");
    assertUnauthorized(await svc.int("GET", "/metrics", { key: "tvk_0000000000000000_x" }), "bad key");
    const r = await svc.int("GET", "/metrics", { key: apiKey });
    assert.equal(r.status, 200, show(r));
    assert.match(r.text, /^# TYPE tokenvend_audit_pruned_total counter$/m);
    assert.equal(metric(r.text, "tokenvend_audit_retention_days"), 7, "retention from the environment");
  });

  test("/healthz and /readyz need no credential on either listener; no /metrics on the public one", async () => {
    for (const base of ["pub", "int"]) {
      for (const path of ["/healthz", "/readyz"]) {
        const r = await svc[base]("GET", path);
        assert.equal(r.status, 200, `${base} ${path}: ${show(r)}`);
      }
    }
    assertError(await svc.pub("GET", "/metrics", { token: apiKey }), 404, "not_found", "public GET /metrics");
  });

  test("the maintenance passes run periodically", async () => {
    let passes;
    await pollUntil(async () => {
      const r = await svc.int("GET", "/metrics", { key: apiKey });
      passes = metric(r.text, "tokenvend_maintenance_passes_total");
      return passes >= 3;
    });
    assert.ok(passes >= 3, `passes ${passes}`);
  });
});
