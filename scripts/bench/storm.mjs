// `make bench` helper: the storm row (issue 10, SPEC section 10). acs-emulator with ACS-like
// rate limits set low (N creates and N issues per W s, fixed windows), tokenvend with the same
// TOKENVEND_ACS_BUDGET and a 6 s ACS deadline, and USERS new users asking for their first token
// at once; clients honour Retry-After. While the queue drains, the emulator's request counts
// are sampled every 100 ms to find the most calls of one operation that reached it within any
// W (from the samples) and per second. Prints "key=value" lines for scripts/bench/report.mjs.
// Usage: TV_BUILD=build node scripts/bench/storm.mjs [USERS] [N] [W]
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { startEmulator } from "../../tests/e2e/lib/emulator.mjs";
import { startJwksServer } from "../../tests/e2e/lib/jwks-server.mjs";
import { startService } from "../../tests/e2e/lib/service.mjs";

const USERS = Number(process.argv[2] || 120);
const N = Number(process.argv[3] || 20);
const W_S = Number(process.argv[4] || 2);
const MAX_TRIES = 60;

const emu = await startEmulator(["--rate-limit-create", String(N), "--rate-limit-issue", String(N),
  "--rate-limit-window-s", String(W_S), "--log-level", "warn"]);
const jwks = await startJwksServer();
let svc;
const out = {};
try {
  svc = await startService({
    emu,
    jwks,
    env: {
      TOKENVEND_ACS_BUDGET: `create=${N}/${W_S}s,issue=${N}/${W_S}s`,
      TOKENVEND_ACS_DEADLINE_MS: "6000",
      TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: "5000",
      TOKENVEND_ACS_CONNECT_TIMEOUT_MS: "1000",
      TOKENVEND_LOG_LEVEL: "warn",
    },
  });
  await emu.resetStats();
  const samples = []; // [ms since start, create requests, issue requests]
  const t0 = Date.now();
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const s = await emu.stats();
      samples.push([Date.now() - t0, s.requests.create, s.requests.issue]);
      await sleep(100);
    }
  })();
  const answers = {};
  let unserved = 0;
  await Promise.all(Array.from({ length: USERS }, async (_, i) => {
    const token = jwks.token(`storm-bench-${i}-${randomUUID().slice(0, 8)}`);
    for (let k = 0; k < MAX_TRIES; k++) {
      const r = await svc.pub("GET", "/api/token", { token });
      answers[r.status] = (answers[r.status] || 0) + 1;
      if (r.status === 200) return;
      const ra = Number(r.headers["retry-after"]);
      if (!(ra >= 1)) {
        answers.no_retry_after = (answers.no_retry_after || 0) + 1;
        await sleep(1000);
      } else {
        await sleep(ra * 1000);
      }
    }
    unserved++;
  }));
  const elapsedS = (Date.now() - t0) / 1000;
  sampling = false;
  await sampler;
  const s = await emu.stats();
  const calls = Math.max(s.requests.create, s.requests.issue);
  // The most calls of one op between two samples at most W (then 1 s) apart.
  const most = (col, spanMs) => {
    let best = 0;
    for (let a = 0; a < samples.length; a++)
      for (let b = a + 1; b < samples.length && samples[b][0] - samples[a][0] <= spanMs; b++)
        best = Math.max(best, samples[b][col] - samples[a][col]);
    return best;
  };
  Object.assign(out, {
    users: USERS,
    budget_n: N,
    budget_w_s: W_S,
    elapsed_s: elapsedS.toFixed(2),
    ideal_s: ((calls / N) * W_S).toFixed(2),
    acs_calls_create: s.requests.create,
    acs_calls_issue: s.requests.issue,
    acs_429: (s.requests.create - s.succeeded.create) + (s.requests.issue - s.succeeded.issue),
    most_in_window_create: most(1, W_S * 1000),
    most_in_window_issue: most(2, W_S * 1000),
    most_per_s_create: most(1, 1000),
    most_per_s_issue: most(2, 1000),
    answers_200: answers[200] || 0,
    answers_503: answers[503] || 0,
    answers_429: answers[429] || 0,
    answers_no_retry_after: answers.no_retry_after || 0,
    unserved,
  });
} finally {
  await svc?.cleanup();
  await jwks.close();
  await emu.stop();
}
for (const [k, v] of Object.entries(out)) console.log(`${k}=${v}`);
