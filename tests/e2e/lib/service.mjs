// Helpers for the service tests: start and stop `tokenvend serve` on free loopback ports with a
// temporary database, run its admin CLI against the same database, and talk HTTP to its two
// listeners. stdout and stderr of every run go to files in the temporary directory so tests can
// scan them (canary checks) and failures can show them.

import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequestRaw } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { REPO_ROOT } from "./emulator.mjs";
import { pgBindir, startPostgres } from "./pg.mjs";

// Generous ceilings that only stop a hung run; no test asserts on them.
const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 20_000;
const CLI_DEADLINE_MS = 60_000;
const REQUEST_DEADLINE_MS = 60_000;

export function buildDir() {
  const build = process.env.TV_BUILD || "build";
  return isAbsolute(build) ? build : resolve(REPO_ROOT, build);
}

export function tokenvendPath() {
  return resolve(buildDir(), "bin", "tokenvend");
}

// The environment without any tokenvend or ACS setting of the caller's shell, nor any Azure
// identity variable (which would pick a keyless credential), so a test sees only what it sets.
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("TOKENVEND_") || k.startsWith("COMMUNICATION_SERVICES_")) continue;
    if (k.startsWith("AZURE_") || k.startsWith("IDENTITY_") || k.startsWith("MSI_")) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// TV_TEST_STORE=pg runs the service suites on PostgreSQL: one throw-away cluster per test file
// (started on first use, removed when the process ends), a new database per startService, so
// each service still starts empty. svc.dbPath is then that database's URI.
export function storeIsPg() {
  return process.env.TV_TEST_STORE === "pg";
}

let sharedPg = null;
let pgDatabases = 0;
export async function newPgDatabase() {
  if (!sharedPg) sharedPg = startPostgres();
  const pg = await sharedPg;
  const db = `tv_e2e_${++pgDatabases}`;
  await pg.adminExec(`CREATE DATABASE ${db} OWNER ${pg.user}`);
  return { pg, uri: pg.uriWith({ db }) };
}

let skipReasonCache;
// Resolves to a skip reason (string) when this build has no `tokenvend serve` yet, else false.
// Only an explicit "not available"/"unknown command" answer (or a missing binary) skips: any other
// failure of `serve --help` lets the tests run, so a broken service fails loudly instead of hiding.
export function serveSkipReason() {
  if (skipReasonCache !== undefined) return skipReasonCache;
  const bin = tokenvendPath();
  if (!existsSync(bin)) {
    skipReasonCache = `tokenvend not built at ${bin}`;
    return skipReasonCache;
  }
  const dir = mkdtempSync(join(tmpdir(), "tv-skipcheck-"));
  try {
    const r = spawnSync(bin, ["serve", "--help"], {
      cwd: dir,
      env: cleanEnv({ TOKENVEND_DB: join(dir, "probe.db") }),
      encoding: "utf8",
      timeout: 10_000,
      killSignal: "SIGKILL",
    });
    const out = `${r.stdout || ""}${r.stderr || ""}`;
    if (/not available|unknown command/i.test(out)) {
      skipReasonCache = `tokenvend serve is not in this build yet (${out.trim().split("\n")[0]})`;
    } else {
      skipReasonCache = false;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return skipReasonCache;
}

// Free loopback ports: bind port 0, read the port, close. All n are held open together so they
// differ; a race with another process is possible but rare, and startService retries on it.
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      await new Promise((res, rej) => {
        s.once("error", rej);
        s.listen(0, "127.0.0.1", res);
      });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(() => res()))));
  }
}

// One HTTP exchange over a fresh connection. body: object (sent as JSON), string or Buffer.
// Resolves to { status, headers (lower-case names), text, json (parsed or undefined) }; rejects
// on a network error (e.g. the server closed the connection without an answer). localAddress
// binds the client socket's source address (any of 127.0.0.0/8 is loopback on Linux).
export function httpRequest(url, { method = "GET", headers = {}, body, timeoutMs = REQUEST_DEADLINE_MS, localAddress } = {}) {
  return new Promise((res, rej) => {
    const h = { ...headers };
    let payload;
    if (body !== undefined) {
      if (Buffer.isBuffer(body) || typeof body === "string") {
        payload = body;
      } else {
        payload = JSON.stringify(body);
        if (!Object.keys(h).some((k) => k.toLowerCase() === "content-type")) h["content-type"] = "application/json";
      }
    }
    const opts = { method, headers: h, agent: false, ...(localAddress ? { localAddress } : {}) };
    const req = httpRequestRaw(url, opts, (resp) => {
      const chunks = [];
      resp.on("data", (c) => chunks.push(c));
      resp.on("error", rej);
      resp.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        res({ status: resp.statusCode, headers: resp.headers, text, json });
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: no answer within ${timeoutMs} ms`)));
    req.on("error", rej);
    if (payload !== undefined) req.end(payload);
    else req.end();
  });
}

function readTail(path, n = 6000) {
  try {
    const s = readFileSync(path, "utf8");
    return s.length > n ? `...${s.slice(-n)}` : s;
  } catch {
    return "";
  }
}

// Starts `tokenvend serve` against the emulator emu and the issuer jwks (either may be null).
// opts.env adds or overrides settings; opts.localAccounts turns local accounts on.
// Resolves to a handle:
//   publicUrl, internalUrl, dir, dbPath, stdoutPath, stderrPath, env (the settings used),
//   pub(method, path, {token, headers, body}) / int(method, path, {key, headers, body}),
//   cli(args, {input}), createApiKey(name), addAccount(name, password),
//   stop() -> {code, signal}, start() (again, same database, fresh ports), alive(), logs(),
//   cleanup() (stop if running, remove the directory unless TV_E2E_KEEP is set).
export async function startService({ emu = null, jwks = null, env = {}, localAccounts = false } = {}) {
  const bin = tokenvendPath();
  const dir = mkdtempSync(join(tmpdir(), "tv-svc-"));
  const svc = {
    dir,
    dbPath: storeIsPg() ? (await newPgDatabase()).uri : join(dir, "db", "tokenvend.db"),
    stdoutPath: join(dir, "tokenvend.stdout.log"),
    stderrPath: join(dir, "tokenvend.stderr.log"),
    cliLogPath: join(dir, "cli.log"),
    proc: null,
    exited: null,
    publicUrl: "",
    internalUrl: "",
    env: {},
    runs: [],
  };

  const settings = (ports) => {
    const s = {
      TOKENVEND_PUBLIC_ADDR: `127.0.0.1:${ports[0]}`,
      TOKENVEND_INTERNAL_ADDR: `127.0.0.1:${ports[1]}`,
      TOKENVEND_DB: svc.dbPath,
      TOKENVEND_LOG_LEVEL: "debug",
      TOKENVEND_LOCAL_ACCOUNTS: localAccounts ? "on" : "off",
    };
    if (emu) s.COMMUNICATION_SERVICES_CONNECTION_STRING = emu.connectionString;
    if (jwks) {
      s.TOKENVEND_OIDC_ISSUER = jwks.issuer;
      s.TOKENVEND_OIDC_AUDIENCE = jwks.audience;
      s.TOKENVEND_OIDC_JWKS_URL = jwks.jwksUrl;
    }
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined || v === null) delete s[k];
      else s[k] = String(v);
    }
    return s;
  };

  const waitHealthy = async (proc, exited) => {
    const deadline = Date.now() + START_DEADLINE_MS;
    let gone = null;
    exited.then((r) => {
      gone = r;
    });
    for (;;) {
      if (gone) return { ok: false, exit: gone };
      if (Date.now() > deadline) return { ok: false, timeout: true };
      try {
        const [a, b] = await Promise.all([
          httpRequest(`${svc.publicUrl}/healthz`, { timeoutMs: 2000 }),
          httpRequest(`${svc.internalUrl}/healthz`, { timeoutMs: 2000 }),
        ]);
        if (a.status === 200 && b.status === 200) return { ok: true };
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
  };

  // At start the service checks its ACS credential with one revoke of a made-up identity
  // (src/service/credcheck.c). Suites count ACS calls, so start() returns once that first check
  // is over (bounded: a service whose /readyz is 503, or that never says, is returned as it is).
  const credentialChecked = async () => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        const r = await httpRequest(`${svc.publicUrl}/readyz`, { timeoutMs: 2000 });
        if (r.status !== 200) return;
        const state = r.json?.checks?.acsCredential;
        if (typeof state !== "string" || !state.includes("the first check is under way")) return;
      } catch {
        return;
      }
      await sleep(20);
    }
  };

  // (Re)starts the process on fresh ports with the same database; retries when a port was taken.
  svc.start = async (moreEnv = {}) => {
    if (svc.proc && svc.proc.exitCode === null && svc.proc.signalCode === null) {
      throw new Error("tokenvend is already running");
    }
    for (let attempt = 1; ; attempt++) {
      const ports = await freePorts(2);
      svc.env = { ...settings(ports), ...moreEnv };
      svc.publicUrl = `http://127.0.0.1:${ports[0]}`;
      svc.internalUrl = `http://127.0.0.1:${ports[1]}`;
      const outFd = openSync(svc.stdoutPath, "a");
      const errFd = openSync(svc.stderrPath, "a");
      const errStart = existsSync(svc.stderrPath) ? readFileSync(svc.stderrPath).length : 0;
      let proc;
      try {
        proc = spawn(bin, ["serve"], { cwd: dir, env: cleanEnv(svc.env), stdio: ["ignore", outFd, errFd] });
      } finally {
        closeSync(outFd);
        closeSync(errFd);
      }
      const exited = new Promise((res) => {
        proc.once("exit", (code, signal) => res({ code, signal }));
        proc.once("error", (err) => res({ code: null, signal: null, error: err }));
      });
      svc.proc = proc;
      svc.exited = exited;
      svc.runs.push({ pid: proc.pid, ports });
      const r = await waitHealthy(proc, exited);
      if (r.ok) {
        await credentialChecked();
        return svc;
      }
      if (r.timeout) {
        proc.kill("SIGKILL");
        await exited;
        throw new Error(`tokenvend serve did not answer /healthz within ${START_DEADLINE_MS} ms; ` +
          `stderr:\n${readTail(svc.stderrPath)}`);
      }
      const runErr = readFileSync(svc.stderrPath, "utf8").slice(errStart);
      if (attempt < 3 && /in use|EADDRINUSE|bind/i.test(runErr)) continue;
      throw new Error(`tokenvend serve exited (code ${r.exit.code}, signal ${r.exit.signal}` +
        `${r.exit.error ? `, ${r.exit.error.message}` : ""}) before answering /healthz; stderr:\n${readTail(svc.stderrPath)}`);
    }
  };

  // What the store holds at rest, as bytes to scan: the SQLite files (database, -wal, -shm), or
  // a data-only pg_dump of the PostgreSQL database. { files, bytes }.
  svc.storeBytes = () => {
    if (!storeIsPg()) {
      const files = ["", "-wal", "-shm"].map((s) => svc.dbPath + s).filter((p) => existsSync(p));
      return { files, bytes: Buffer.concat(files.map((p) => readFileSync(p))) };
    }
    const r = spawnSync(join(pgBindir(), "pg_dump"), ["--data-only", "-d", svc.dbPath],
      { timeout: 60_000, maxBuffer: 256 << 20 });
    if (r.status !== 0) throw new Error(`pg_dump failed: ${r.stderr}`);
    return { files: [svc.dbPath.replace(/:[^:@/]*@/, ":***@")], bytes: r.stdout };
  };

  svc.alive = () => !!svc.proc && svc.proc.exitCode === null && svc.proc.signalCode === null;

  // SIGTERM and wait; resolves to { code, signal, hung }. SIGKILL after a generous deadline.
  svc.stop = async () => {
    if (!svc.proc) return { code: null, signal: null };
    if (!svc.alive()) return svc.exited;
    svc.proc.kill("SIGTERM");
    let timer;
    const hung = new Promise((res) => {
      timer = setTimeout(() => res(null), STOP_DEADLINE_MS);
    });
    const r = await Promise.race([svc.exited, hung]);
    clearTimeout(timer);
    if (r === null) {
      svc.proc.kill("SIGKILL");
      await svc.exited;
      return { code: null, signal: "SIGKILL", hung: true };
    }
    return r;
  };

  svc.logs = () => {
    const read = (p) => (existsSync(p) ? readFileSync(p, "utf8") : "");
    return { stdout: read(svc.stdoutPath), stderr: read(svc.stderrPath) };
  };
  svc.stderrTail = (n) => readTail(svc.stderrPath, n);

  svc.pub = (method, path, { token, headers = {}, body } = {}) => {
    const h = { ...headers };
    if (token !== undefined) h.authorization = `Bearer ${token}`;
    return httpRequest(svc.publicUrl + path, { method, headers: h, body });
  };
  svc.int = (method, path, { key, headers = {}, body } = {}) => {
    const h = { ...headers };
    if (key !== undefined) h.authorization = `Bearer ${key}`;
    return httpRequest(svc.internalUrl + path, { method, headers: h, body });
  };

  // Runs the admin CLI with the service's settings (same database). Resolves to
  // { code, signal, stdout, stderr }; output is also appended to cli.log in the directory.
  svc.cli = (args, { input } = {}) =>
    new Promise((res, rej) => {
      const env = Object.keys(svc.env).length ? svc.env : settings([1, 2]);
      const p = spawn(bin, args, { cwd: dir, env: cleanEnv(env), stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      p.stdout.setEncoding("utf8");
      p.stderr.setEncoding("utf8");
      p.stdout.on("data", (c) => (stdout += c));
      p.stderr.on("data", (c) => (stderr += c));
      const timer = setTimeout(() => p.kill("SIGKILL"), CLI_DEADLINE_MS);
      p.once("error", (e) => {
        clearTimeout(timer);
        rej(e);
      });
      p.once("close", (code, signal) => {
        clearTimeout(timer);
        res({ code, signal, stdout, stderr });
      });
      p.stdin.on("error", () => {});
      if (input !== undefined) p.stdin.end(input);
      else p.stdin.end();
    });

  // `tokenvend apikey create NAME`: the key is the last line of stdout.
  svc.createApiKey = async (name) => {
    const r = await svc.cli(["apikey", "create", name]);
    if (r.code !== 0) throw new Error(`apikey create ${name} -> exit ${r.code}; stderr:\n${r.stderr}`);
    const lines = r.stdout.split("\n").map((l) => l.trim()).filter(Boolean);
    if (lines.length === 0) throw new Error(`apikey create ${name} printed nothing on stdout`);
    return { key: lines[lines.length - 1], ...r };
  };

  // `echo PASSWORD | tokenvend account add NAME`.
  svc.addAccount = async (name, password) => {
    const r = await svc.cli(["account", "add", name], { input: `${password}\n` });
    if (r.code !== 0) throw new Error(`account add ${name} -> exit ${r.code}; stderr:\n${r.stderr}`);
    return r;
  };

  svc.cleanup = async () => {
    if (svc.alive()) await svc.stop();
    if (!process.env.TV_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`# kept tokenvend test directory ${dir}\n`);
  };

  try {
    await svc.start();
  } catch (err) {
    if (!process.env.TV_E2E_KEEP) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return svc;
}

// Polls fn (async, returns a truthy value when done) every intervalMs until deadlineMs passed.
// Resolves to the last value (falsy when the deadline passed).
export async function pollUntil(fn, { deadlineMs = 30_000, intervalMs = 250 } = {}) {
  const end = Date.now() + deadlineMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) return last;
    await sleep(intervalMs);
  }
}
