// `tokenvend serve` under valgrind memcheck serving a mixed load (load.mjs: tokens for new and
// known users, logins, revokes, deletes, errors), then SIGTERM: the run passes when memcheck
// counted 0 errors and 0 definitely or indirectly lost bytes, and the process exited 0.
// The service is the normal build (build/bin/tokenvend, -O2 -g); a wrapper in a temporary
// build directory runs `serve` under valgrind (the admin CLI calls the tests make run without
// it), so tests/e2e/lib/service.mjs starts it unchanged.
//
// Command: node tests/reliability/valgrind.mjs [--requests N] [--clients N] [--out FILE]
// (`make valgrind`; installs Debian's valgrind on demand through scripts/deps.sh valgrind).

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startEmulator } from "../e2e/lib/emulator.mjs";
import { buildDir, startService } from "../e2e/lib/service.mjs";
import { countTable, nowUtc, parseArgs, percentile, sectionHead, writeOut } from "./lib.mjs";
import { byStatus, mixedLoad, prepareLoad } from "./load.mjs";

const VG_ERROR_EXIT = 99;

function wrapperDir(realBuild, logDir) {
  const dir = mkdtempSync(join(tmpdir(), "tv-vg-build-"));
  mkdirSync(join(dir, "bin"));
  const real = join(realBuild, "bin", "tokenvend");
  const script = `#!/bin/sh
# serve under memcheck; every other command as it is.
if [ "$1" = serve ]; then
  exec valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \\
    --errors-for-leak-kinds=definite,indirect --error-exitcode=${VG_ERROR_EXIT} \\
    --num-callers=30 --log-file='${logDir}/memcheck.%p.log' '${real}' "$@"
fi
exec '${real}' "$@"
`;
  writeFileSync(join(dir, "bin", "tokenvend"), script);
  chmodSync(join(dir, "bin", "tokenvend"), 0o755);
  symlinkSync(join(realBuild, "bin", "acs-emulator"), join(dir, "bin", "acs-emulator"));
  return dir;
}

// Reads memcheck's summary lines out of its log.
function summary(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1].replace(/,/g, "")) : null;
  };
  return {
    errors: num(/ERROR SUMMARY: ([\d,]+) errors/),
    definite: text.includes("All heap blocks were freed") ? 0 : num(/definitely lost: ([\d,]+) bytes/),
    indirect: text.includes("All heap blocks were freed") ? 0 : num(/indirectly lost: ([\d,]+) bytes/),
    possibly: text.includes("All heap blocks were freed") ? 0 : num(/possibly lost: ([\d,]+) bytes/),
    reachable: text.includes("All heap blocks were freed") ? 0 : num(/still reachable: ([\d,]+) bytes/),
    allocs: num(/total heap usage: ([\d,]+) allocs/),
  };
}

export async function run({ requests = 10_000, clients = 8, log = () => {} } = {}) {
  const started = nowUtc();
  const realBuild = buildDir();
  if (!existsSync(join(realBuild, "bin", "tokenvend"))) throw new Error(`build ${realBuild}/bin/tokenvend first`);
  const logDir = mkdtempSync(join(tmpdir(), "tv-vg-logs-"));
  const wrap = wrapperDir(realBuild, logDir);
  const saved = process.env.TV_BUILD;
  process.env.TV_BUILD = wrap;
  delete process.env.TV_TEST_STORE;
  const emu = await startEmulator(["--no-rate-limits"]);
  let svc;
  const res = { requests, clients };
  try {
    svc = await startService({
      emu,
      localAccounts: true,
      env: { TOKENVEND_LOG_LEVEL: "warn", TOKENVEND_ARGON2: "t=1,m=8192,p=1" },
    });
    const ctx = await prepareLoad(svc);
    log(`memcheck: tokenvend serve pid ${svc.proc.pid}, ${requests} requests from ${clients} clients`);
    const load = await mixedLoad(svc, ctx, { requests, clients, tag: "vg" });
    res.load = load;
    const stop = await svc.stop();
    res.exit = stop;
    const files = readdirSync(logDir).filter((f) => f.startsWith("memcheck."));
    const text = files.map((f) => readFileSync(join(logDir, f), "utf8")).join("\n");
    res.memcheck = summary(text);
    res.logTail = text.split("\n").slice(-40).join("\n");
  } finally {
    if (svc) await svc.cleanup();
    await emu.stop();
    if (saved === undefined) delete process.env.TV_BUILD;
    else process.env.TV_BUILD = saved;
    rmSync(wrap, { recursive: true, force: true });
    if (!process.env.TV_E2E_KEEP) rmSync(logDir, { recursive: true, force: true });
  }
  const m = res.memcheck;
  res.ok = res.exit.code === 0 && m.errors === 0 && m.definite === 0 && m.indirect === 0;
  res.markdown = markdown(res, started);
  return res;
}

function markdown(r, started) {
  const m = r.memcheck;
  const l = r.load;
  return `${sectionHead("Memory: valgrind memcheck", `make valgrind (node tests/reliability/valgrind.mjs --requests ${r.requests} --clients ${r.clients})`, started)}` +
    "| figure | value |\n| --- | --- |\n" +
    `| requests (mixed, ${r.clients} clients) | ${l.requests} in ${l.seconds.toFixed(1)} s under memcheck |\n` +
    `| latency under memcheck p50 / p95 | ${percentile(l.latencies, 50).toFixed(1)} ms / ${percentile(l.latencies, 95).toFixed(1)} ms |\n` +
    `| exit after SIGTERM | code ${r.exit.code}, signal ${r.exit.signal}${r.exit.hung ? " (hung)" : ""} |\n` +
    `| memcheck errors | ${m.errors} |\n` +
    `| definitely / indirectly lost | ${m.definite} / ${m.indirect} bytes |\n` +
    `| possibly lost / still reachable (not counted as errors) | ${m.possibly} / ${m.reachable} bytes |\n` +
    `| heap allocations | ${m.allocs} |\n\n` +
    `Answers by status: ${Object.entries(byStatus(l.counts)).map(([k, v]) => `${k}: ${v}`).join(", ")}.\n\n` +
    `${countTable("request kind and status", l.counts)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const a = parseArgs(process.argv.slice(2));
  const r = await run({
    requests: Number(a.requests || 10_000),
    clients: Number(a.clients || 8),
    log: (s) => process.stderr.write(`${s}\n`),
  });
  writeOut(a.out, r.markdown);
  process.stdout.write(r.markdown);
  if (!r.ok) process.stderr.write(`valgrind: FAILED\n${r.logTail}\n`);
  process.exit(r.ok ? 0 : 1);
}
