// The ThreadSanitizer build of `tokenvend serve` (build-tsan/, as `make tsan` builds it) under
// concurrent mixed load (load.mjs; 20 clients, 5,000 requests by default), then SIGTERM. Passes
// when ThreadSanitizer wrote no report (log_path files and the service's stderr) and the process
// exited 0. halt_on_error=0 lets every report of the run be counted, not just the first.
//
// Command: node tests/reliability/tsan.mjs [--build build-tsan] [--requests N] [--clients N] [--out FILE]
// (`make reliability` builds build-tsan/bin/tokenvend first).

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { REPO_ROOT, startEmulator } from "../e2e/lib/emulator.mjs";
import { startService } from "../e2e/lib/service.mjs";
import { countTable, nowUtc, parseArgs, percentile, sectionHead, writeOut } from "./lib.mjs";
import { byStatus, mixedLoad, prepareLoad } from "./load.mjs";

const REPORT_RE = /WARNING: ThreadSanitizer: ([a-z -]+)/g;

export async function run({ build = "build-tsan", requests = 5000, clients = 20, log = () => {} } = {}) {
  const started = nowUtc();
  const abs = resolve(REPO_ROOT, build);
  if (!existsSync(join(abs, "bin", "tokenvend"))) throw new Error(`build ${abs}/bin/tokenvend first (make reliability does)`);
  const logDir = mkdtempSync(join(tmpdir(), "tv-tsan-"));
  const saved = process.env.TV_BUILD;
  process.env.TV_BUILD = abs;
  delete process.env.TV_TEST_STORE;
  const tsanOptions = `halt_on_error=0 exitcode=66 second_deadlock_stack=1 log_path=${logDir}/tsan`;
  const emu = await startEmulator(["--no-rate-limits"]);
  let svc;
  const res = { requests, clients, build };
  try {
    svc = await startService({
      emu,
      localAccounts: true,
      env: { TOKENVEND_LOG_LEVEL: "warn", TOKENVEND_ARGON2: "t=1,m=8192,p=1", TSAN_OPTIONS: tsanOptions },
    });
    const ctx = await prepareLoad(svc);
    log(`tsan: tokenvend serve pid ${svc.proc.pid}, ${requests} requests from ${clients} clients`);
    res.load = await mixedLoad(svc, ctx, { requests, clients, tag: "ts" });
    res.exit = await svc.stop();
    const texts = readdirSync(logDir).map((f) => readFileSync(join(logDir, f), "utf8"));
    texts.push(svc.logs().stderr);
    const kinds = {};
    for (const t of texts) for (const m of t.matchAll(REPORT_RE)) kinds[m[1].trim()] = (kinds[m[1].trim()] || 0) + 1;
    res.reports = Object.values(kinds).reduce((a, b) => a + b, 0);
    res.kinds = kinds;
    res.firstReport = texts.find((t) => t.includes("WARNING: ThreadSanitizer"))?.slice(0, 4000) || "";
  } finally {
    if (svc) await svc.cleanup();
    await emu.stop();
    if (saved === undefined) delete process.env.TV_BUILD;
    else process.env.TV_BUILD = saved;
    rmSync(logDir, { recursive: true, force: true });
  }
  res.ok = res.reports === 0 && res.exit.code === 0;
  res.markdown = markdown(res, started);
  return res;
}

function markdown(r, started) {
  const l = r.load;
  const kinds = Object.entries(r.kinds).map(([k, v]) => `${k}: ${v}`).join(", ") || "none";
  return `${sectionHead("Races: ThreadSanitizer under concurrent load", `node tests/reliability/tsan.mjs --build ${r.build} --requests ${r.requests} --clients ${r.clients}`, started)}` +
    "| figure | value |\n| --- | --- |\n" +
    `| requests (mixed, ${r.clients} concurrent clients) | ${l.requests} in ${l.seconds.toFixed(1)} s |\n` +
    `| latency under TSan p50 / p95 | ${percentile(l.latencies, 50).toFixed(1)} ms / ${percentile(l.latencies, 95).toFixed(1)} ms |\n` +
    `| exit after SIGTERM | code ${r.exit.code}, signal ${r.exit.signal}${r.exit.hung ? " (hung)" : ""} |\n` +
    `| ThreadSanitizer reports | ${r.reports} (${kinds}) |\n\n` +
    `Answers by status: ${Object.entries(byStatus(l.counts)).map(([k, v]) => `${k}: ${v}`).join(", ")}.\n\n` +
    `${countTable("request kind and status", l.counts)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const a = parseArgs(process.argv.slice(2));
  const r = await run({
    build: a.build || "build-tsan",
    requests: Number(a.requests || 5000),
    clients: Number(a.clients || 20),
    log: (s) => process.stderr.write(`${s}\n`),
  });
  writeOut(a.out, r.markdown);
  process.stdout.write(r.markdown);
  if (!r.ok) process.stderr.write(`tsan: FAILED\n${r.firstReport}\n`);
  process.exit(r.ok ? 0 : 1);
}
