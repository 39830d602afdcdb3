// Helpers for the browser tests of examples/web: build the page's bundle when it is missing,
// start examples/web/serve.mjs, and launch Debian's chromium headless through playwright-core.

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
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

// dist/app.js from src/ (npm ci, then npm run build) unless it is there already.
export function ensureBundle() {
  if (existsSync(join(WEB_DIR, "dist", "app.js"))) return;
  const steps = [];
  if (!existsSync(join(WEB_DIR, "node_modules", ".package-lock.json"))) {
    steps.push(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
  }
  steps.push(["run", "build", "--silent"]);
  for (const args of steps) {
    const r = spawnSync("npm", args, { cwd: WEB_DIR, encoding: "utf8", timeout: 300_000 });
    if (r.status !== 0) {
      throw new Error(`npm ${args.join(" ")} in examples/web failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    }
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
