// Several `tokenvend serve` replicas on one throw-away PostgreSQL database (issue 9): one cluster
// from pg.mjs, then n services from service.mjs started together, each with its own ports and
// directory, all with TOKENVEND_DB set to the cluster's URI (starting them at once also exercises
// the migrations' advisory lock). Everything is torn down by stop(), and, should the test process
// end without reaching it (a crash, an uncaught error), an exit hook SIGKILLs every replica still
// running; the cluster has its own guardian (pg.mjs).

import { startPostgres } from "./pg.mjs";
import { startService } from "./service.mjs";

const live = new Set();
let hooked = false;

// Synchronous on purpose: "exit" handlers cannot wait, and SIGKILL needs no waiting.
function killLeftovers() {
  for (const svc of live) {
    if (svc.alive()) {
      try {
        svc.proc.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }
  }
}

function hookExit() {
  if (hooked) return;
  hooked = true;
  process.on("exit", killLeftovers);
}

// Resolves to { pg, uri, svcs, apiKey (made through the first replica's CLI), stop() }.
// opts: n (replicas), emu, jwks, env (settings for every replica), keyName.
export async function startReplicas({ n = 3, emu = null, jwks = null, env = {}, keyName = "replicas" } = {}) {
  hookExit();
  const pg = await startPostgres();
  const svcs = [];
  const stop = async () => {
    // Replicas first (they hold connections), then the cluster.
    await Promise.all(svcs.map((s) => s.cleanup().catch(() => {})));
    for (const s of svcs) live.delete(s);
    await pg.stop();
  };
  try {
    const started = await Promise.allSettled(Array.from({ length: n }, () =>
      startService({ emu, jwks, env: { ...env, TOKENVEND_DB: pg.uri } })));
    for (const r of started) {
      if (r.status === "fulfilled") {
        svcs.push(r.value);
        live.add(r.value);
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
