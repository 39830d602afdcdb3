// Helpers for the keyless-mode tests: start and stop acs-emulator's stand-in Microsoft Entra ID
// (`acs-emulator entra`), read its request log and set its faults, a TokenCredential for the
// Azure SDK that fetches from it, and an HTTPS front for acs-emulator (the SDK's bearer policy
// refuses plain http, and the emulator speaks only http).

import { execFileSync } from "node:child_process";
import { generateKeyPairSync, sign as cryptoSign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import { request as httpRequestRaw } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnEmulator } from "./emulator.mjs";

export const ACS_SCOPE = "https://communication.azure.com//.default";
export const ACS_AUDIENCE = "https://communication.azure.com";
export const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// Starts `acs-emulator entra --listen 127.0.0.1:0 ...args` and resolves once it printed
// "authority=http://127.0.0.1:PORT/". tenant is passed as --tenant. Returns { authority (no
// trailing slash), tenant, issuer, jwksUrl, tokenUrl, proc, stderrText(), requests(),
// clearRequests(), setFault(f), clearFault(), stop() }.
export async function startEntra({ tenant = "e2e-tenant", args = [] } = {}) {
  const { proc, firstLine, stderrText, stop } = await spawnEmulator(
    ["entra", "--listen", "127.0.0.1:0", "--tenant", tenant, ...args], "acs-emulator entra");
  const m = /^authority=(http:\/\/127\.0\.0\.1:\d+)\/$/.exec(firstLine);
  if (!m) {
    proc.kill("SIGKILL");
    throw new Error(`unexpected first stdout line from acs-emulator entra: ${JSON.stringify(firstLine)}`);
  }
  const authority = m[1];

  const call = async (method, path, body) => {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(authority + path, init);
    const text = await res.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON: keep the text for the assertion message.
    }
    return { status: res.status, body: parsed };
  };

  const entra = {
    authority,
    tenant,
    issuer: `${authority}/${tenant}/v2.0`,
    jwksUrl: `${authority}/${tenant}/discovery/v2.0/keys`,
    tokenUrl: `${authority}/${tenant}/oauth2/v2.0/token`,
    proc,
    stderrText,
    // The recorded requests (array of { route, method, fields, headers }).
    async requests() {
      const r = await call("GET", "/entra/requests");
      if (r.status !== 200 || !Array.isArray(r.body)) {
        throw new Error(`GET /entra/requests -> ${r.status} ${JSON.stringify(r.body)}`);
      }
      return r.body;
    },
    async clearRequests() {
      const r = await call("DELETE", "/entra/requests");
      if (r.status !== 204) throw new Error(`DELETE /entra/requests -> ${r.status}`);
    },
    async setFault(f) {
      const r = await call("PUT", "/entra/faults", f);
      if (r.status < 200 || r.status > 299) throw new Error(`PUT /entra/faults -> ${r.status} ${JSON.stringify(r.body)}`);
    },
    async clearFault() {
      const r = await call("DELETE", "/entra/faults");
      if (r.status !== 204) throw new Error(`DELETE /entra/faults -> ${r.status}`);
    },
    stop,
  };
  return entra;
}

// A TokenCredential (the @azure/core-auth interface: getToken(scopes, options) resolving to
// { token, expiresOnTimestamp }) that sends OAuth 2.0 client credentials to the stand-in's token
// route, as ClientSecretCredential does. It records the scopes of every call (calls[]) so a test
// can check what the SDK asked for. No key, no connection string.
export function clientSecretCredential({ tokenUrl, clientId, clientSecret }) {
  const calls = [];
  return {
    calls,
    async getToken(scopes) {
      const list = Array.isArray(scopes) ? [...scopes] : [scopes];
      calls.push(list);
      const form = new URLSearchParams({
        grant_type: "client_credentials",
        client_id: clientId,
        client_secret: clientSecret,
        scope: list.join(" "),
      });
      const res = await fetch(tokenUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: form.toString(),
      });
      const body = await res.json().catch(() => null);
      if (res.status !== 200 || !body || typeof body.access_token !== "string") {
        throw new Error(`token endpoint answered ${res.status} ${JSON.stringify(body && body.error)}`);
      }
      return { token: body.access_token, expiresOnTimestamp: Date.now() + Number(body.expires_in) * 1000 };
    },
  };
}

// A credential that hands out a fixed token (for tokens the emulator must refuse).
export function staticCredential(token, expiresOnTimestamp = Date.now() + 3600_000) {
  return {
    async getToken() {
      return { token, expiresOnTimestamp };
    },
  };
}

// An RS256 signer with its own key (not the stand-in's): sign(payload) -> compact JWS, and its
// public JWK set (jwks) for `--entra-jwks FILE`.
export function ownSigner(kid = "e2e-own-key") {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid, use: "sig", alg: "RS256" };
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return {
    jwks: { keys: [jwk] },
    sign(payload, header = {}) {
      const input = `${b64({ alg: "RS256", typ: "JWT", kid, ...header })}.${b64(payload)}`;
      const sig = cryptoSign("sha256", Buffer.from(input), privateKey).toString("base64url");
      return `${input}.${sig}`;
    },
  };
}

// A workload-identity assertion as AKS projects it: a JWT for the audience
// api://AzureADTokenExchange. The stand-in does not check its signature, so a fixed one does; its
// length follows sub, which lets a test tell two assertions apart in /entra/requests (the log
// keeps only a secret's length).
export function federatedAssertion(sub, { issuer = "https://oidc.e2e.invalid/", lifetimeS = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const header = { alg: "RS256", typ: "JWT", kid: "aks-e2e" };
  const payload = { aud: ["api://AzureADTokenExchange"], iss: issuer, sub, iat: now, nbf: now, exp: now + lifetimeS };
  return `${b64(header)}.${b64(payload)}.${Buffer.from("unchecked-signature").toString("base64url")}`;
}

// An HTTPS reverse proxy on a free loopback port in front of an http origin (acs-emulator), with
// a throw-away self-signed certificate for 127.0.0.1 made by the openssl command. Every request is
// forwarded unchanged (method, path, headers, body) and recorded (method, url, headers) in seen[].
// Returns { url, ca (PEM, for the SDK's tlsOptions), seen, close() }.
export async function startTlsFront(origin) {
  const dir = mkdtempSync(join(tmpdir(), "tv-tls-"));
  let key;
  let cert;
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
      "-addext", "subjectAltName=IP:127.0.0.1",
      "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    ], { stdio: ["ignore", "ignore", "pipe"] });
    key = readFileSync(join(dir, "key.pem"));
    cert = readFileSync(join(dir, "cert.pem"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const target = new URL(origin);
  const seen = [];
  const server = createHttpsServer({ key, cert }, (req, res) => {
    seen.push({ method: req.method, url: req.url, headers: { ...req.headers } });
    const up = httpRequestRaw({
      host: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: target.host },
      agent: false,
    }, (upRes) => {
      res.writeHead(upRes.statusCode, upRes.headers);
      upRes.pipe(res);
    });
    up.on("error", (err) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end(`proxy: ${err.message}`);
    });
    req.pipe(up);
  });
  await new Promise((res, rej) => {
    server.once("error", rej);
    server.listen(0, "127.0.0.1", res);
  });
  return {
    url: `https://127.0.0.1:${server.address().port}`,
    ca: cert.toString("utf8"),
    seen,
    close: () => new Promise((res) => {
      server.closeAllConnections();
      server.close(() => res());
    }),
  };
}
