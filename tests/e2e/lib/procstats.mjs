// What a running process holds, read from /proc (Linux): threads, open file descriptors and
// resident memory; and single values from a Prometheus text page (GET /metrics). Used to show
// that upstream faults leave nothing behind (tests/e2e/upstream-blackhole.test.mjs,
// tests/reliability/upstream-faults.mjs).

import { readFileSync, readdirSync, readlinkSync } from "node:fs";

// { threads, fds, dbFds, rssKb } of pid, or null when it is gone. dbFds: descriptors on files
// whose path starts with dbPath (the SQLite database, -wal, -shm; "" counts none): the store
// opens its reader connections on demand (at most four), so they may grow under load without
// being a leak.
export function procStats(pid, dbPath = "") {
  try {
    const threads = readdirSync(`/proc/${pid}/task`).length;
    const fdNames = readdirSync(`/proc/${pid}/fd`);
    let dbFds = 0;
    for (const f of fdNames) {
      try {
        if (dbPath && readlinkSync(`/proc/${pid}/fd/${f}`).startsWith(dbPath)) dbFds++;
      } catch {
        // closed meanwhile
      }
    }
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return { threads, fds: fdNames.length, dbFds, rssKb: m ? Number(m[1]) : NaN };
  } catch {
    return null;
  }
}

// The value of the unlabelled sample `name` in a Prometheus text page, or NaN when absent.
export function metricValue(text, name) {
  const re = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} (\\S+)$`, "m");
  const m = re.exec(text);
  return m ? Number(m[1]) : NaN;
}
