// Helpers for the end-to-end tests: start and stop build/bin/acs-emulator, talk to its /emulator/*
// control plane, record what the SDK sends, and decode/verify the JWTs it mints.
// The repo root is found from this file's location, so the tests run from any cwd.

import { spawn } from "node:child_process";
import { createPublicKey, verify as cryptoVerify } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

// The same variable the C tests use: a build directory relative to the repo root (or absolute).
export function emulatorPath() {
  const build = process.env.TV_BUILD || "build";
  const dir = isAbsolute(build) ? build : resolve(REPO_ROOT, build);
  return resolve(dir, "bin", "acs-emulator");
}

// Generous ceilings that only stop a hung run; no test asserts on them.
const START_DEADLINE_MS = 30_000;
const STOP_DEADLINE_MS = 15_000;
const STDERR_KEEP = 64 * 1024;

// Runs the acs-emulator binary with argv and resolves once it printed its first stdout line
// (the emulator's connection string, the entra stand-in's authority). `what` names it in
// errors. Returns { proc, firstLine, exited (a promise of { code, signal }), stderrText(),
// stop() (SIGTERM and wait, SIGKILL on a hang; resolves to { code, signal[, hung] }) }.
export async function spawnEmulator(argv, what) {
  const bin = emulatorPath();
  if (!existsSync(bin)) {
    throw new Error(`acs-emulator not found at ${bin} (build it with make, or set TV_BUILD)`);
  }
  const proc = spawn(bin, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (chunk) => {
    if (process.env.TV_E2E_VERBOSE) process.stderr.write(chunk);
    stderr = (stderr + chunk).slice(-STDERR_KEEP);
  });
  const exited = new Promise((res) => {
    proc.once("exit", (code, signal) => res({ code, signal }));
  });
  const firstLine = await new Promise((res, rej) => {
    let out = "";
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      rej(new Error(`${what} printed nothing within ${START_DEADLINE_MS} ms`));
    }, START_DEADLINE_MS);
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (chunk) => {
      out += chunk;
      const nl = out.indexOf("\n");
      if (nl >= 0) {
        clearTimeout(timer);
        res(out.slice(0, nl).trim());
      }
    });
    proc.once("error", (err) => {
      clearTimeout(timer);
      rej(err);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`${what} exited (code ${code}, signal ${signal}) before printing; ` +
        `stderr:\n${stderr}`));
    });
  });
  let stopped = null;
  const stop = () => {
    if (stopped) return stopped;
    stopped = (async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill("SIGTERM");
      let timer;
      const hung = new Promise((res) => {
        timer = setTimeout(() => {
          proc.kill("SIGKILL");
          res(null);
        }, STOP_DEADLINE_MS);
      });
      const r = await Promise.race([exited, hung]);
      clearTimeout(timer);
      return r === null ? { code: null, signal: "SIGKILL", hung: true } : r;
    })();
    return stopped;
  };
  return { proc, firstLine, exited, stderrText: () => stderr, stop };
}

// Starts the emulator on a free loopback port and resolves once it printed its connection string.
// Returns { connectionString, endpoint, accessKey, proc, stop(), stderrText(), control helpers }.
export async function startEmulator(args = []) {
  const { proc, firstLine, stderrText, stop } = await spawnEmulator(
    ["--listen", "127.0.0.1:0", ...args], "acs-emulator");
  const m = /^endpoint=(http:\/\/127\.0\.0\.1:(\d+)\/);accesskey=([A-Za-z0-9+/=]+)$/.exec(firstLine);
  if (!m) {
    proc.kill("SIGKILL");
    throw new Error(`unexpected first stdout line from acs-emulator: ${JSON.stringify(firstLine)}`);
  }
  const endpoint = m[1].replace(/\/$/, "");
  const emu = {
    connectionString: firstLine,
    endpoint,
    port: Number(m[2]),
    accessKey: m[3],
    proc,
    stderrText,
    // SIGTERM and wait; resolves to { code, signal }. Falls back to SIGKILL on a hang.
    stop,
    // Control plane: resolves to { status, headers, body (parsed JSON or text) }.
    async request(method, path, body) {
      const init = { method, headers: {} };
      if (body !== undefined) {
        init.headers["content-type"] = "application/json";
        init.body = typeof body === "string" ? body : JSON.stringify(body);
      }
      const res = await fetch(endpoint + path, init);
      const text = await res.text();
      let parsed = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // Not JSON: keep the text so the assertion message shows it.
      }
      return { status: res.status, headers: res.headers, body: parsed };
    },
    async stats() {
      const r = await emu.request("GET", "/emulator/stats");
      if (r.status !== 200) throw new Error(`GET /emulator/stats -> ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async resetStats() {
      const r = await emu.request("POST", "/emulator/stats/reset");
      if (r.status < 200 || r.status > 299) throw new Error(`stats reset -> ${r.status}`);
    },
    async validate(token) {
      const r = await emu.request("POST", "/emulator/validate", { token });
      if (r.status !== 200) throw new Error(`POST /emulator/validate -> ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async jwks() {
      const r = await emu.request("GET", "/emulator/jwks");
      if (r.status !== 200) throw new Error(`GET /emulator/jwks -> ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
  };
  return emu;
}

// A pipeline policy (position perRetry, so after signing) that records every request the SDK sends
// and the answer it got, so a failing assertion can show the exact exchange.
export function createRecorder() {
  const log = [];
  const policy = {
    name: "e2eRecorder",
    async sendRequest(req, next) {
      const entry = {
        method: req.method,
        url: req.url,
        headers: req.headers.toJSON({ preserveCase: true }),
        body: typeof req.body === "string" ? req.body : req.body === undefined ? "" : "<non-string body>",
      };
      log.push(entry);
      try {
        const res = await next(req);
        entry.status = res.status;
        entry.responseHeaders = res.headers.toJSON();
        entry.responseBody = res.bodyAsText;
        return res;
      } catch (err) {
        entry.error = String(err && err.message ? err.message : err);
        throw err;
      }
    },
  };
  return {
    log,
    option: { policy, position: "perRetry" },
    last: () => log[log.length - 1],
    // A readable dump of the last n exchanges (for assertion messages and findings).
    dump(n = 1) {
      return log.slice(-n).map((e) => JSON.stringify(e, null, 2)).join("\n");
    },
  };
}

// Runs an SDK call; on an unexpected throw, rethrows with the recorded exchange attached.
export async function sdk(recorder, label, fn) {
  try {
    return await fn();
  } catch (err) {
    const detail = recorder ? `\n--- last exchange ---\n${recorder.dump(1)}` : "";
    const e = new Error(`${label} failed: ${err && err.message}${detail}`);
    e.cause = err;
    throw e;
  }
}

// Runs an SDK call that must fail; resolves to the error (a RestError for HTTP failures).
export async function sdkError(recorder, label, fn) {
  let result;
  try {
    result = await fn();
  } catch (err) {
    return err;
  }
  const detail = recorder ? `\n--- last exchange ---\n${recorder.dump(1)}` : "";
  throw new Error(`${label} unexpectedly succeeded: ${JSON.stringify(result)}${detail}`);
}

export function b64urlDecode(s) {
  return Buffer.from(s, "base64url");
}

export function b64urlJson(obj) {
  return Buffer.from(JSON.stringify(obj)).toString("base64url");
}

// Splits a compact JWS; throws with the token's shape (never the token) when it is not one.
export function decodeJwt(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) throw new Error(`not a compact JWS: ${parts.length} parts`);
  return {
    header: JSON.parse(b64urlDecode(parts[0]).toString("utf8")),
    payload: JSON.parse(b64urlDecode(parts[1]).toString("utf8")),
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: b64urlDecode(parts[2]),
  };
}

// Verifies an RS256 compact JWS against a JWKS document ({keys:[...]}) with node's crypto.
// Returns the decoded token; throws when no key matches or the signature is wrong.
export function verifyWithJwks(token, jwks) {
  const jwt = decodeJwt(token);
  if (jwt.header.alg !== "RS256") throw new Error(`alg is ${jwt.header.alg}, not RS256`);
  const candidates = jwks.keys.filter((k) => jwt.header.kid === undefined || k.kid === jwt.header.kid);
  if (candidates.length === 0) throw new Error(`no JWK with kid ${jwt.header.kid}`);
  for (const jwk of candidates) {
    const key = createPublicKey({ key: jwk, format: "jwk" });
    if (cryptoVerify("RSA-SHA256", Buffer.from(jwt.signingInput), key, jwt.signature)) return jwt;
  }
  throw new Error("RS256 signature does not verify with the JWKS");
}

// An unsigned Entra-like token for the Teams exchange (the emulator does not check signatures).
export function makeTeamsAadToken({ oid, appid, expSeconds, tid = "72f988bf-86f1-41af-91ab-2d7cd011db47" }) {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: "JWT", alg: "RS256", kid: "e2e-unsigned" };
  const payload = {
    aud: "https://communication.azure.com",
    iss: `https://sts.windows.net/${tid}/`,
    iat: now - 60,
    nbf: now - 60,
    exp: expSeconds ?? now + 3600,
    appid,
    oid,
    tid,
    scp: "Teams.ManageCalls Teams.ManageChats",
    ver: "1.0",
  };
  return `${b64urlJson(header)}.${b64urlJson(payload)}.${Buffer.from("not-a-signature").toString("base64url")}`;
}
