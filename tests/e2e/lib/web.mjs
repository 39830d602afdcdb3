// Helpers for the browser tests of examples/web: build the page's bundle from its current sources,
// start examples/web/serve.mjs, and launch Debian's chromium headless through playwright-core.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./emulator.mjs";

export const WEB_DIR = join(REPO_ROOT, "examples", "web");
export const CHROMIUM = process.env.TV_CHROMIUM || "/usr/bin/chromium";

const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 10_000;

// Throws a sentence saying what to install when the browser is not there.
export function requireChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`chromium not found at ${CHROMIUM}: the browser tests drive Debian's chromium ` +
      "package (scripts/deps.sh test installs it), or set TV_CHROMIUM to another Chromium binary");
  }
}

// The bundle is rebuilt on every call (esbuild takes well under a second), so a browser test never
// drives a page older than src/; dist/ is ignored by git, so its presence says nothing. npm ci
// runs when node_modules is missing or package-lock.json is newer than the installed tree's
// node_modules/.package-lock.json, as scripts/run.sh does. Test files may run at the same time:
// a lock directory serialises the npm steps, and the bundle is written beside dist/ and renamed
// into it, so a page being served while another file rebuilds reads the old file or the new one.
const LOCK_DEADLINE_MS = 600_000;
const LOCK_POLL_MS = 200;

function lockWeb() {
  const lock = join(WEB_DIR, ".ensure-bundle.lock");
  const deadline = Date.now() + LOCK_DEADLINE_MS;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      return () => rmSync(lock, { recursive: true, force: true });
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
    }
    // A holder that died (killed test run) leaves the lock behind: take it over.
    let holder = 0;
    try {
      holder = Number(readFileSync(join(lock, "pid"), "utf8"));
    } catch {
      // Created but the pid not written yet: wait for it like for a live holder.
    }
    if (holder > 0 && !alive(holder)) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${lock} held by pid ${holder} for ${LOCK_DEADLINE_MS} ms`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOCK_POLL_MS);
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

function npm(args) {
  const r = spawnSync("npm", args, { cwd: WEB_DIR, encoding: "utf8", timeout: 300_000 });
  if (r.status !== 0) {
    throw new Error(`npm ${args.join(" ")} in examples/web failed (exit ${r.status}):\n${r.stdout}${r.stderr}${r.error ?? ""}`);
  }
}

export function ensureBundle() {
  const unlock = lockWeb();
  const staging = join(WEB_DIR, `.dist-build-${process.pid}`);
  try {
    const installed = join(WEB_DIR, "node_modules", ".package-lock.json");
    if (!existsSync(installed) || statSync(join(WEB_DIR, "package-lock.json")).mtimeMs > statSync(installed).mtimeMs) {
      npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    }
    // package.json's build script with the output moved (esbuild takes the last --outfile); the
    // staging directory is beside dist/, so the source map's relative paths are the same.
    rmSync(staging, { recursive: true, force: true });
    npm(["run", "build", "--silent", "--", `--outfile=${join(staging, "app.js")}`]);
    mkdirSync(join(WEB_DIR, "dist"), { recursive: true });
    for (const f of readdirSync(staging)) renameSync(join(staging, f), join(WEB_DIR, "dist", f));
  } finally {
    rmSync(staging, { recursive: true, force: true });
    unlock();
  }
}

// Starts serve.mjs for the service at api on port (0: a free one). Resolves to
// { url (with the trailing slash), origin, stop() }.
export async function startExampleServer(api, port = 0) {
  const proc = spawn(process.execPath, [join(WEB_DIR, "serve.mjs"), "--api", api, "--port", String(port)],
    { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (c) => (stderr += c));
  const exited = new Promise((res) => proc.once("exit", (code, signal) => res({ code, signal })));
  const url = await new Promise((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`serve.mjs printed nothing within ${START_DEADLINE_MS} ms`)), START_DEADLINE_MS);
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (c) => {
      out += c;
      const m = /^serving (http:\/\/127\.0\.0\.1:\d+\/) /m.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    exited.then(({ code }) => {
      clearTimeout(timer);
      rej(new Error(`serve.mjs exited (${code}) before listening:\n${stderr}`));
    });
  });
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return exited;
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_DEADLINE_MS);
    const r = await exited;
    clearTimeout(timer);
    return r;
  };
  return { url, origin: url.replace(/\/$/, ""), stop, stderr: () => stderr };
}

export async function launchChromium() {
  requireChromium();
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
  });
}
