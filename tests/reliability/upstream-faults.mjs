#!/usr/bin/env node
// Upstream faults, measured (issue 11, docs/reliability.md "upstream faults"): tokenvend serve
// runs against acs-emulator behind a TCP front (tests/e2e/lib/faultproxy.mjs) and meets, one at
// a time, each way ACS can fail: a black hole (accepts, never answers), a 429 storm, a 5xx
// storm, dropped connections and slow bodies (the answer trickles in). Each fault gets a fresh
// service (so an open circuit breaker does not spill into the next) and N mixed requests on the
// internal API (a third new users, a third tokens, a third revokes) with C at a time; recorded:
// the answers by status and error code, p50/p95/max time, ACS attempts, and the process's
// threads, descriptors, resident memory and ACS sockets before the fault and once its calls are
// over (a bounded wait for "no ACS call in flight", never a timing assertion).
//
//   node tests/reliability/upstream-faults.mjs [--quick] [--out FILE] [--requests N]
//                                              [--concurrency C] [--json]
//
// Prints a markdown section (a table, the command line, the date and the machine) on stdout,
// and with --out writes it to FILE too. --quick: fewer requests, breaker off only (the e2e
// wrapper tests/e2e/reliability-upstream.test.mjs runs it inside make test). The long default
// runs every fault twice, circuit breaker off and at its default (5 failures / 30 s). Needs the
// binaries (make) and node 20; TV_BUILD as for the e2e tests.

import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startEmulator } from "../e2e/lib/emulator.mjs";
import { startFaultProxy } from "../e2e/lib/faultproxy.mjs";
import { startJwksServer } from "../e2e/lib/jwks-server.mjs";
import { metricValue, procStats } from "../e2e/lib/procstats.mjs";
import { pollUntil, startService } from "../e2e/lib/service.mjs";

export const DEADLINE_MS = 3000; // acs_deadline_ms of the services under test
export const ATTEMPT_MS = 1000; // acs_attempt_timeout_ms
// Mappings made before the fault, for the token and revoke requests.
const KNOWN_USERS = { quick: 5, long: 20 };

// The faults: how each is switched on and off. `proxy` modes are the TCP front's; `emu` bodies
// go to PUT /emulator/faults.
export const FAULTS = [
  { name: "none", what: "no fault (reference)" },
  { name: "blackhole", what: "black hole: connections accepted, requests read, nothing ever answered", proxy: "blackhole" },
  { name: "429-storm", what: "429 storm: every request answered 429 with retry-after-ms 200", emu: { throttle_rate: 1, retry_after_ms: 200 } },
  { name: "5xx-storm", what: "5xx storm: every request answered 503", emu: { error_rate: 1, error_status: 503 } },
  { name: "dropped", what: "dropped connections: every request's connection closed without an answer", emu: { drop_rate: 1 } },
  { name: "slow-body", what: "slow bodies: answers trickle in, 64 bytes every 25 ms", proxy: "trickle", trickle: { chunk: 64, intervalMs: 25 } },
];

function parseArgs(argv) {
  const o = { quick: false, out: null, requests: null, concurrency: null, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") o.quick = true;
    else if (a === "--json") o.json = true;
    else if (a === "--out") o.out = argv[++i];
    else if (a === "--requests") o.requests = Number(argv[++i]);
    else if (a === "--concurrency") o.concurrency = Number(argv[++i]);
    else throw new Error(`upstream-faults: unknown argument ${a} (--quick, --out FILE, --requests N, --concurrency C, --json)`);
  }
  if (o.out === undefined) throw new Error("--out needs a file name");
  return o;
}

// Descriptors that are neither ACS sockets nor the database's files (its reader connections
// open on demand, at most four): what must not grow.
export const other = (st, acsSockets) => st.fds - st.dbFds - acsSockets;

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN);

// Runs tasks (functions returning promises) with at most c at once; resolves to their results.
async function pool(tasks, c) {
  const out = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(c, tasks.length) }, worker));
  return out;
}

// One fault against a fresh service. Resolves to the row of figures.
async function runFault(emu, jwks, fault, { requests, concurrency, breaker, knownUsers }) {
  const proxy = await startFaultProxy({ host: "127.0.0.1", port: emu.port });
  const svc = await startService({
    jwks,
    env: {
      COMMUNICATION_SERVICES_CONNECTION_STRING: proxy.connectionString(emu.accessKey),
      TOKENVEND_ACS_DEADLINE_MS: DEADLINE_MS,
      TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: ATTEMPT_MS,
      TOKENVEND_ACS_CONNECT_TIMEOUT_MS: ATTEMPT_MS,
      TOKENVEND_BREAKER: breaker,
      TOKENVEND_CACHE: "off",
      TOKENVEND_LOG_LEVEL: "warn",
    },
  });
  try {
    const key = (await svc.createApiKey("faults")).key;
    const int = (method, path, body) => svc.int(method, path, { key, body });
    const metrics = async () => (await svc.int("GET", "/metrics")).text;
    const known = [];
    for (let i = 0; i < knownUsers; i++) {
      const u = `known-${randomUUID().slice(0, 8)}`;
      const r = await int("PUT", `/internal/users/${u}`);
      if (r.status !== 201) throw new Error(`setup: PUT /internal/users/${u} -> ${r.status} ${r.text}`);
      known.push(u);
    }
    const settle = () => pollUntil(async () => {
      const t = await metrics();
      return metricValue(t, "tokenvend_acs_inflight") === 0 ? t : false;
    }, { deadlineMs: 30_000, intervalMs: 200 });
    let t = await settle();
    // The process first, then /metrics: the page's own connection is not counted.
    const before = procStats(svc.proc.pid, svc.dbPath);
    t = await metrics();
    const sockBefore = metricValue(t, "tokenvend_acs_connections_open");
    const attemptsBefore = metricValue(t, "tokenvend_upstream_attempts_total");

    if (fault.proxy) proxy.setMode(fault.proxy, fault.trickle);
    if (fault.emu) {
      const f = await emu.request("PUT", "/emulator/faults", fault.emu);
      if (f.status !== 200) throw new Error(`PUT /emulator/faults -> ${f.status} ${JSON.stringify(f.body)}`);
    }
    const tasks = Array.from({ length: requests }, (_, i) => async () => {
      const u = known[i % known.length];
      const call = i % 3 === 0 ? int("PUT", `/internal/users/new-${randomUUID().slice(0, 12)}`)
        : i % 3 === 1 ? int("POST", `/internal/users/${u}/token`, {})
          : int("POST", `/internal/users/${u}/revoke`);
      const t0 = Date.now();
      try {
        const r = await call;
        return { ms: Date.now() - t0, status: r.status, code: r.json?.error?.code ?? "", message: r.json?.error?.message ?? "" };
      } catch (err) {
        return { ms: Date.now() - t0, status: 0, code: `client: ${err.message}` };
      }
    });
    const started = Date.now();
    const res = await pool(tasks, concurrency);
    const wallMs = Date.now() - started;

    t = await settle();
    const inflightAfter = t ? metricValue(t, "tokenvend_acs_inflight") : NaN;
    // Bounded wait for the process to come back to its level (allocator caches may keep a
    // little memory: that is reported, not hidden).
    let sample;
    await pollUntil(async () => {
      const now = procStats(svc.proc.pid, svc.dbPath);
      t = await metrics();
      sample = { now, sock: metricValue(t, "tokenvend_acs_connections_open") };
      return now && now.threads <= before.threads && other(now, sample.sock) <= other(before, sockBefore);
    }, { deadlineMs: 10_000, intervalMs: 250 });
    const after = sample.now;
    await emu.request("DELETE", "/emulator/faults");
    const sorted = res.map((r) => r.ms).sort((a, b) => a - b);
    const answers = {};
    const messages = {}; // the first message of each error answer, to say why
    for (const r of res) {
      const k = r.code ? `${r.status} ${r.code}` : `${r.status}`;
      answers[k] = (answers[k] || 0) + 1;
      if (r.code && !(k in messages)) messages[k] = r.message;
    }
    return {
      fault: fault.name,
      what: fault.what,
      breaker,
      requests,
      concurrency,
      answers,
      messages,
      p50: pct(sorted, 50),
      p95: pct(sorted, 95),
      max: sorted[sorted.length - 1],
      wallMs,
      attempts: metricValue(t, "tokenvend_upstream_attempts_total") - attemptsBefore,
      before,
      after,
      sockBefore,
      sockAfter: sample.sock,
      inflightAfter,
      proxyOpenAfter: proxy.stats().open,
    };
  } finally {
    await svc.cleanup();
    await proxy.close();
  }
}

// Runs the faults; resolves to { rows, markdown }.
export async function runUpstreamFaults({ quick = false, requests, concurrency, argv = [] } = {}) {
  const n = requests ?? (quick ? 24 : 200);
  const c = concurrency ?? (quick ? 10 : 20);
  const breakers = quick ? ["off"] : ["off", "5/30s"];
  const emu = await startEmulator(["--no-rate-limits"]);
  const jwks = await startJwksServer();
  const rows = [];
  try {
    for (const breaker of breakers) {
      for (const fault of FAULTS) {
        rows.push(await runFault(emu, jwks, fault,
          { requests: n, concurrency: c, breaker, knownUsers: quick ? KNOWN_USERS.quick : KNOWN_USERS.long }));
      }
    }
  } finally {
    await jwks.close();
    await emu.stop();
  }
  return { rows, markdown: markdown(rows, { n, c, quick, argv }) };
}

function machine() {
  let arch = "";
  try {
    arch = execFileSync("uname", ["-m"], { encoding: "utf8" }).trim();
  } catch {
    arch = process.arch;
  }
  let n = cpus().length;
  try {
    n = Number(execFileSync("nproc", { encoding: "utf8" }).trim()) || n;
  } catch {
    // nproc missing: node's count
  }
  return `${n} CPU(s) (nproc), ${arch}, ${cpus()[0]?.model ?? "unknown CPU"}, node ${process.version}`;
}

function markdown(rows, { n, c, quick, argv }) {
  const mb = (kb) => (kb / 1024).toFixed(1);
  const ans = (a) => Object.entries(a).sort().map(([k, v]) => `${v} x ${k}`).join("<br>");
  const lines = [
    "## Upstream faults",
    "",
    `Each fault against a fresh \`tokenvend serve\` (acs_deadline_ms ${DEADLINE_MS}, acs_attempt_timeout_ms ` +
      `${ATTEMPT_MS}, acs_max_retries 3, token cache off) in front of acs-emulator through a TCP fault ` +
      `proxy; ${n} requests per fault on the internal API, ${c} at a time: a third \`PUT /internal/users/{new}\` ` +
      "(ACS create), a third `POST /internal/users/{id}/token` (issue), a third `POST .../revoke`. " +
      "\"Before\" is read with the fault off and no ACS call in flight, \"after\" once the fault's calls " +
      "are over (`tokenvend_acs_inflight` 0). Threads and descriptors from `/proc/PID`, ACS sockets " +
      "from `tokenvend_acs_connections_open`; \"other fds\" are the descriptors that are neither ACS " +
      "sockets nor the database's files (\"db fds\": the SQLite store opens its reader connections on " +
      "demand, at most four, and keeps them). ACS sockets still open after a fault ACS answered are curl's kept-alive connections " +
      "(at most `acs_max_connections`, closed by curl after about two minutes idle); after a black " +
      "hole or dropped connections none is kept.",
    "",
    "| fault | breaker | answers (count x status code) | p50 / p95 / max ms | ACS attempts | threads before / after | other fds before / after | db fds before / after | ACS sockets before / after | RSS MB before / after | ACS calls in flight after |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    lines.push(`| ${r.fault} | ${r.breaker} | ${ans(r.answers)} | ${r.p50} / ${r.p95} / ${r.max} | ${r.attempts} | ` +
      `${r.before.threads} / ${r.after.threads} | ${other(r.before, r.sockBefore)} / ${other(r.after, r.sockAfter)} | ` +
      `${r.before.dbFds} / ${r.after.dbFds} | ` +
      `${r.sockBefore} / ${r.sockAfter} | ${mb(r.before.rssKb)} / ${mb(r.after.rssKb)} | ${r.inflightAfter} |`);
  }
  lines.push("", "Faults:", "");
  for (const f of FAULTS) lines.push(`- \`${f.name}\`: ${f.what}`);
  const said = new Map();
  for (const r of rows) {
    for (const [k, m] of Object.entries(r.messages)) {
      const key = `${k} (${r.fault}, breaker ${r.breaker})`;
      if (![...said.keys()].some((x) => x.startsWith(`${k} (`) && said.get(x) === m)) said.set(key, m);
    }
  }
  if (said.size) {
    lines.push("", "What the errors said (the first of each code and wording):", "");
    for (const [k, m] of [...said].sort()) lines.push(`- ${k}: "${m.length > 300 ? `${m.slice(0, 300)}...` : m}"`);
  }
  lines.push(
    "",
    `Command: \`node tests/reliability/upstream-faults.mjs${argv.length ? ` ${argv.join(" ")}` : ""}\`` +
      `${quick ? " (quick: breaker off only)" : ""}`,
    `Date: ${new Date().toISOString()}`,
    `Machine: ${machine()}`,
    "",
  );
  return lines.join("\n");
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const argv = process.argv.slice(2);
  let opts;
  try {
    opts = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  try {
    const { rows, markdown: md } = await runUpstreamFaults({ ...opts, argv });
    process.stdout.write(opts.json ? `${JSON.stringify(rows, null, 2)}\n` : md);
    if (opts.out) {
      mkdirSync(dirname(resolve(opts.out)), { recursive: true });
      writeFileSync(opts.out, md);
    }
  } catch (err) {
    process.stderr.write(`upstream-faults: ${err.stack || err.message}\n`);
    process.exit(1);
  }
}
