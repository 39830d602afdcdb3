// Several `tokenvend serve` replicas on one throw-away PostgreSQL database (issue 9): one cluster
// from pg.mjs, then n services from service.mjs started together, each with its own ports and
// directory, all with TOKENVEND_DB set to the cluster's URI (starting them at once also exercises
// the migrations' advisory lock). Everything is torn down by stop(), and, should the test process
// end without reaching it (an uncaught error, SIGINT, SIGTERM, SIGHUP), an exit hook SIGKILLs
// every tokenvend and acs-emulator child of this process still running; the cluster has its own
// guardian (pg.mjs).

import { readdirSync, readFileSync } from "node:fs";
import { startPostgres } from "./pg.mjs";
import { startService } from "./service.mjs";

// The programs killed at an early exit; never the cluster's guardian shell, which must outlive
// this process to stop the server (pg.mjs).
const REAPED = new Set(["tokenvend", "acs-emulator"]);
let hooked = false;

// This process's children running one of REAPED, from /proc (a child that is still starting
// has no handle yet, so the handles alone would miss it).
function reapedChildren() {
  const pids = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ")".
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const ppid = Number(stat.slice(close + 2).split(" ")[1]);
    if (ppid === process.pid && REAPED.has(comm)) pids.push(Number(name));
  }
  return pids;
}

// Synchronous on purpose: "exit" handlers cannot wait, and SIGKILL needs no waiting.
function killLeftovers() {
  for (const pid of reapedChildren()) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

// A signal ends node without its "exit" handlers unless someone listens: kill the children,
// then end as the signal would have (128 + its number).
const SIGNALS = { SIGINT: 2, SIGHUP: 1, SIGTERM: 15 };
export function killChildrenAtExit() {
  if (hooked) return;
  hooked = true;
  process.on("exit", killLeftovers);
  for (const [sig, num] of Object.entries(SIGNALS)) {
    process.once(sig, () => {
      killLeftovers();
      process.exit(128 + num);
    });
  }
}

// Resolves to { pg, uri, svcs, apiKey (made through the first replica's CLI), stop() }.
// opts: n (replicas), emu, jwks, env (settings for every replica), keyName.
export async function startReplicas({ n = 3, emu = null, jwks = null, env = {}, keyName = "replicas" } = {}) {
  killChildrenAtExit();
  const pg = await startPostgres();
  const svcs = [];
  const stop = async () => {
    // Replicas first (they hold connections), then the cluster.
    await Promise.all(svcs.map((s) => s.cleanup().catch(() => {})));
    await pg.stop();
  };
  try {
    const started = await Promise.allSettled(Array.from({ length: n }, () =>
      startService({ emu, jwks, env: { ...env, TOKENVEND_DB: pg.uri } })));
    for (const r of started) {
      if (r.status === "fulfilled") {
        svcs.push(r.value);
      }
    }
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const apiKey = (await svcs[0].createApiKey(keyName)).key;
    return { pg, uri: pg.uri, svcs, apiKey, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
