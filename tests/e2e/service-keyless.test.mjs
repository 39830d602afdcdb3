// `tokenvend serve` and the ACS CLI in keyless mode (SPEC section 11), black box: no connection
// string, only COMMUNICATION_SERVICES_ENDPOINT and one credential from the environment, against
// acs-emulator (--entra-jwks: it accepts only bearer tokens from the stand-in here, as the service
// has no key) and acs-emulator's stand-in Microsoft Entra ID. Once per credential kind: client
// secret, workload identity (the assertion file re-read on each fetch), managed identity as App
// Service / Container Apps provide it (system and user assigned), and the instance metadata
// endpoint. For each: a token through the internal API works and is valid at the emulator, the
// stand-in saw the right fields and headers, one fetch serves many requests, the secret is nowhere
// in the service's output, and `tokenvend config check` names the credential.

import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { ACS_SCOPE, CLIENT_ASSERTION_TYPE, federatedAssertion, startEntra } from "./lib/entra.mjs";
import { spawn } from "node:child_process";
import { cleanEnv, pollUntil, serveSkipReason, startService, tokenvendPath } from "./lib/service.mjs";

const skip = serveSkipReason();
const TENANT = "7e2e0000-aaaa-bbbb-cccc-00000000000a";
const CLIENT_ID = "c11e0000-aaaa-bbbb-cccc-000000000001";
const UA_CLIENT_ID = "ua0e0000-aaaa-bbbb-cccc-000000000002"; // a user-assigned identity
const CLIENT_SECRET = "svc-keyless-Cl1entS3cret-5d1e";
const IDENTITY_HEADER = "svc-keyless-IdH3ader-0b7c9e";
const FEDERATED_ISSUER = "https://oidc.aks.e2e.invalid/cluster-1/";
const MI_RESOURCE = "https://communication.azure.com/"; // the scope without /.default
// The workload-identity stand-in's token life: short, so the service fetches again within the
// test (it refreshes when a tenth of the life remains).
const SHORT_TTL_S = 6;

let entra; // client secret, managed identities
let emu;
let entraWi; // workload identity, short-lived tokens
let emuWi;
const services = [];

before(async () => {
  if (skip) return;
  entra = await startEntra({
    tenant: TENANT,
    args: ["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--identity-header", IDENTITY_HEADER],
  });
  emu = await startEmulator(["--entra-jwks", entra.jwksUrl, "--entra-issuer", entra.issuer]);
  entraWi = await startEntra({
    tenant: TENANT,
    args: ["--client-id", CLIENT_ID, "--federated-issuer", FEDERATED_ISSUER, "--token-ttl-s", String(SHORT_TTL_S)],
  });
  emuWi = await startEmulator(["--entra-jwks", entraWi.jwksUrl, "--entra-issuer", entraWi.issuer]);
});

after(async () => {
  for (const s of services) await s.cleanup();
  for (const p of [emu, entra, emuWi, entraWi]) if (p) await p.stop();
});

async function keylessService(acs, env) {
  const svc = await startService({ env: { COMMUNICATION_SERVICES_ENDPOINT: acs.endpoint, ...env } });
  services.push(svc);
  return svc;
}

// A token through the internal API (creating the user); checks it at the emulator.
async function issueThrough(svc, key, acs, user) {
  const r = await svc.int("POST", `/internal/users/${user}/token`, { key, body: { scopes: ["chat"] } });
  assert.equal(r.status, 200, `POST /internal/users/${user}/token -> ${r.status} ${r.text}\n${svc.stderrTail(3000)}`);
  assert.equal(typeof r.json.token, "string");
  const v = await acs.validate(r.json.token);
  assert.equal(v.valid, true, `the ACS token is valid at the emulator: ${JSON.stringify(v)}`);
  return r.json;
}

// Every JWT in text whose payload's iss is the stand-in's: an Entra access token (a secret too).
function entraTokensIn(text, stand) {
  const found = [];
  for (const m of text.matchAll(/eyJ[A-Za-z0-9_-]+\.(eyJ[A-Za-z0-9_-]+)\.[A-Za-z0-9_-]*/g)) {
    try {
      if (JSON.parse(Buffer.from(m[1], "base64url").toString("utf8")).iss === stand.issuer) found.push(m[0].slice(0, 24));
    } catch {
      // Not a JWT payload.
    }
  }
  return found;
}

// The service's and its CLI runs' output never holds any of the secrets nor an Entra access token;
// the start-up log names the credential (so the check reads the real log).
function assertNoSecret(svc, secrets, extra = "", stand = entra) {
  const { stdout, stderr } = svc.logs();
  assert.match(stderr, /entra: credential=[a-z_]+ (GET|POST) /, "the start-up log names the credential");
  assert.deepEqual(entraTokensIn(stdout + stderr + extra, stand), [], "an Entra access token appears in the output");
  for (const s of secrets) {
    assert.ok(!stdout.includes(s), "a secret appears in tokenvend's stdout");
    assert.ok(!stderr.includes(s), "a secret appears in tokenvend's stderr");
    assert.ok(!extra.includes(s), "a secret appears in the CLI's output");
  }
}

async function configCheck(svc) {
  const r = await svc.cli(["config", "check"]);
  assert.equal(r.code, 0, `config check -> ${r.code}: ${r.stderr}`);
  const line = r.stdout.split("\n").find((l) => l.startsWith("# keyless mode"));
  assert.ok(line, `config check names the keyless mode:\n${r.stdout}`);
  return { line, out: r.stdout + r.stderr };
}

// The common part: 20 token requests through the internal API, then the stand-in's log must show
// exactly one request on `route` (the background fetch), which `check` inspects.
async function exercise(svc, acs, stand, route, check) {
  const { key } = await svc.createApiKey("keyless-backend");
  for (let i = 0; i < 20; i++) await issueThrough(svc, key, acs, `kl-user-${i % 4}`);
  const reqs = (await stand.requests()).filter((r) => r.route === route);
  assert.equal(reqs.length, 1, `one ${route} fetch for 20 requests: ${JSON.stringify(reqs)}`);
  check(reqs[0]);
  return key;
}

test("client secret: client credentials at AZURE_AUTHORITY_HOST, ACS reached with the bearer token", { skip }, async () => {
  await entra.clearRequests();
  const svc = await keylessService(emu, {
    AZURE_TENANT_ID: TENANT,
    AZURE_CLIENT_ID: CLIENT_ID,
    AZURE_CLIENT_SECRET: CLIENT_SECRET,
    AZURE_AUTHORITY_HOST: entra.authority,
  });
  await exercise(svc, emu, entra, "token", (r) => {
    assert.equal(r.method, "POST");
    assert.equal(r.fields.grant_type, "client_credentials");
    assert.equal(r.fields.client_id, CLIENT_ID);
    assert.equal(r.fields.scope, ACS_SCOPE);
    assert.deepEqual(r.fields.client_secret, { length: CLIENT_SECRET.length });
    assert.equal(r.fields.client_assertion, undefined);
  });
  const cc = await configCheck(svc);
  assert.match(cc.line, new RegExp(`credential=client_secret POST ${entra.tokenUrl} `));
  assert.match(cc.line, /client_secret=\*\*\*/);
  await svc.stop();
  assertNoSecret(svc, [CLIENT_SECRET], cc.out);
});

test("client secret: tokenvend acs create-user / issue / delete and quickstart in keyless mode", { skip }, async () => {
  await entra.clearRequests();
  const svc = services[0];
  assert.ok(svc && svc.env.AZURE_CLIENT_SECRET, "the client-secret service ran first");
  const created = await svc.cli(["acs", "create-user"]);
  assert.equal(created.code, 0, `acs create-user -> ${created.code}: ${created.stderr}`);
  const id = JSON.parse(created.stdout).communicationUserId;
  assert.match(String(id), /^8:acs:/, `an ACS id: ${created.stdout}`);
  const issued = await svc.cli(["acs", "issue", id, "--scopes", "voip"]);
  assert.equal(issued.code, 0, `acs issue -> ${issued.code}: ${issued.stderr}`);
  const tok = JSON.parse(issued.stdout);
  assert.equal((await emu.validate(tok.token)).valid, true, `acs issue's token is valid: ${issued.stdout}`);
  const deleted = await svc.cli(["acs", "delete", id]);
  assert.equal(deleted.code, 0, `acs delete -> ${deleted.code}: ${deleted.stderr}`);
  assert.equal((await emu.validate(tok.token)).valid, false, "deleted identity's token refused");
  const qs = await svc.cli(["quickstart"]);
  assert.equal(qs.code, 0, `quickstart -> ${qs.code}:\n${qs.stdout}\n${qs.stderr}`);
  assert.match(qs.stdout, /Deleted the identity with ID: 8:acs:/, "the quickstart ran to its last step");
  // Each CLI run fetched its own Entra token with the client secret.
  const reqs = (await entra.requests()).filter((r) => r.route === "token");
  assert.equal(reqs.length, 4, `one fetch per CLI run: ${JSON.stringify(reqs)}`);
  for (const r of reqs) assert.deepEqual(r.fields.client_secret, { length: CLIENT_SECRET.length });
  const all = [created, issued, deleted, qs].map((r) => r.stdout + r.stderr).join("\n");
  for (const s of [CLIENT_SECRET]) assert.ok(!all.includes(s), "the client secret appears in the CLI's output");
  assert.deepEqual(entraTokensIn(all, entra), [], "an Entra access token appears in the CLI's output");
});

// Runs `tokenvend ARGS` with only env set (and a throw-away database). Resolves to
// { code, signal, stdout, stderr }; killed after a generous ceiling that only stops a hang.
function runCli(args, env) {
  return new Promise((res, rej) => {
    const dir = mkdtempSync(join(tmpdir(), "tv-e2e-cli-"));
    const p = spawn(tokenvendPath(), args, {
      cwd: dir,
      env: cleanEnv({ TOKENVEND_DB: join(dir, "tv.db"), ...env }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    p.stdout.setEncoding("utf8");
    p.stderr.setEncoding("utf8");
    p.stdout.on("data", (c) => (stdout += c));
    p.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.once("error", (e) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      rej(e);
    });
    p.once("close", (code, signal) => {
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      res({ code, signal, stdout, stderr });
    });
  });
}

test("keyless CLI with the identity endpoint failing: exit 1, the cause in the error, no secret, no hang", { skip }, async () => {
  const env = {
    COMMUNICATION_SERVICES_ENDPOINT: emu.endpoint,
    AZURE_TENANT_ID: TENANT,
    AZURE_CLIENT_ID: CLIENT_ID,
    AZURE_CLIENT_SECRET: CLIENT_SECRET,
    AZURE_AUTHORITY_HOST: entra.authority,
    TOKENVEND_ACS_CONNECT_TIMEOUT_MS: "1000",
    TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: "2000",
  };
  const before_ = (await emu.stats()).identities_created;
  const cases = [
    { what: "answering 503", fault: { mode: "error", status: 503 }, env: {}, cause: /HTTP 503/ },
    { what: "refusing the secret", fault: null, env: { AZURE_CLIENT_SECRET: "not-the-secret-1f2e" }, cause: /invalid_client/ },
    { what: "hanging", fault: { mode: "hang" }, env: {}, cause: /no Entra token for ACS/ },
  ];
  try {
    for (const c of cases) {
      if (c.fault) await entra.setFault(c.fault);
      else await entra.clearFault();
      const r = await runCli(["acs", "create-user"], { ...env, ...c.env });
      assert.equal(r.code, 1, `${c.what}: exit 1 (got ${r.code}, signal ${r.signal}):\n${r.stderr}`);
      assert.equal(r.stdout, "", `${c.what}: nothing on stdout`);
      const line = r.stderr.split("\n").find((l) => l.startsWith('{"error":'));
      assert.ok(line, `${c.what}: a JSON error on stderr:\n${r.stderr}`);
      const err = JSON.parse(line).error;
      assert.equal(err.code, "unavailable", `${c.what}: ${line}`);
      assert.match(err.message, c.cause, `${c.what}: the cause is named: ${line}`);
      for (const s of [CLIENT_SECRET, "not-the-secret-1f2e"]) assert.ok(!r.stderr.includes(s), `${c.what}: a secret in the output`);
    }
  } finally {
    await entra.clearFault();
  }
  assert.equal((await emu.stats()).identities_created, before_, "nothing reached ACS");
});

test("workload identity: the federated token file is the client assertion, re-read on each fetch", { skip }, async () => {
  await entraWi.clearRequests();
  const first = federatedAssertion("system:serviceaccount:tokenvend:tokenvend", { issuer: FEDERATED_ISSUER });
  const second = federatedAssertion("system:serviceaccount:tokenvend:tokenvend-rotated-token", { issuer: FEDERATED_ISSUER });
  assert.notEqual(first.length, second.length, "the two assertions differ in length");
  const wiDir = mkdtempSync(join(tmpdir(), "tv-e2e-wi-"));
  const tokenFile = join(wiDir, "azure-identity-token");
  writeFileSync(tokenFile, first, { mode: 0o600 });
  let svc;
  try {
    svc = await keylessService(emuWi, {
      AZURE_TENANT_ID: TENANT,
      AZURE_CLIENT_ID: CLIENT_ID,
      AZURE_FEDERATED_TOKEN_FILE: tokenFile,
      // With the trailing slash, as the AKS workload identity webhook injects it.
      AZURE_AUTHORITY_HOST: `${entraWi.authority}/`,
    });
    const { key } = await svc.createApiKey("wi-backend");
    await issueThrough(svc, key, emuWi, "wi-user");
    let reqs = (await entraWi.requests()).filter((r) => r.route === "token");
    assert.ok(reqs.length >= 1, "the stand-in saw the fetch");
    const f = reqs[0].fields;
    assert.equal(f.grant_type, "client_credentials");
    assert.equal(f.client_id, CLIENT_ID);
    assert.equal(f.scope, ACS_SCOPE);
    assert.equal(f.client_assertion_type, CLIENT_ASSERTION_TYPE);
    assert.deepEqual(f.client_assertion, { length: first.length }, "the file's assertion was sent");
    assert.equal(f.client_secret, undefined, "no client secret");

    // The platform rotates the file (kubelet swaps it in whole): the next fetch sends the new one.
    const tmp = `${tokenFile}.new`;
    writeFileSync(tmp, second, { mode: 0o600 });
    renameSync(tmp, tokenFile);
    reqs = await pollUntil(async () => {
      const all = (await entraWi.requests()).filter((r) => r.route === "token");
      return all.some((r) => r.fields.client_assertion && r.fields.client_assertion.length === second.length) ? all : null;
    }, { deadlineMs: 60_000, intervalMs: 250 });
    assert.ok(reqs, `a fetch with the rotated assertion within 60 s: ${JSON.stringify(await entraWi.requests())}`);
    for (const r of reqs) assert.equal(r.fields.client_assertion_type, CLIENT_ASSERTION_TYPE);
    await issueThrough(svc, key, emuWi, "wi-user");

    const cc = await configCheck(svc);
    assert.match(cc.line, new RegExp(`credential=workload_identity POST ${entraWi.tokenUrl} `));
    assert.ok(cc.line.includes(tokenFile), `config check names the token file: ${cc.line}`);
    await svc.stop();
    assertNoSecret(svc, [first, second], cc.out, entraWi);
  } finally {
    if (svc) await svc.stop();
    rmSync(wiDir, { recursive: true, force: true });
  }
});

test("managed identity (App Service / Container Apps): IDENTITY_ENDPOINT + X-IDENTITY-HEADER", { skip }, async () => {
  await entra.clearRequests();
  const svc = await keylessService(emu, {
    IDENTITY_ENDPOINT: `${entra.authority}/msi/token`,
    IDENTITY_HEADER: IDENTITY_HEADER,
  });
  await exercise(svc, emu, entra, "msi", (r) => {
    assert.equal(r.method, "GET");
    assert.equal(r.fields["api-version"], "2019-08-01");
    assert.equal(r.fields.resource, MI_RESOURCE);
    assert.equal(r.fields.client_id, undefined, "system-assigned: no client_id");
    assert.equal(r.headers["x-identity-header-length"], IDENTITY_HEADER.length, "the identity header was sent");
  });
  const cc = await configCheck(svc);
  assert.match(cc.line, /credential=managed_identity GET /);
  assert.ok(cc.line.includes(`${entra.authority}/msi/token?`), cc.line);
  await svc.stop();
  assertNoSecret(svc, [IDENTITY_HEADER], cc.out);
});

test("managed identity, user assigned: AZURE_CLIENT_ID goes to the endpoint as client_id", { skip }, async () => {
  await entra.clearRequests();
  const svc = await keylessService(emu, {
    IDENTITY_ENDPOINT: `${entra.authority}/msi/token`,
    IDENTITY_HEADER: IDENTITY_HEADER,
    AZURE_CLIENT_ID: UA_CLIENT_ID,
  });
  await exercise(svc, emu, entra, "msi", (r) => {
    assert.equal(r.fields.client_id, UA_CLIENT_ID);
    assert.equal(r.fields.resource, MI_RESOURCE);
  });
  await svc.stop();
  assertNoSecret(svc, [IDENTITY_HEADER]);
});

test("managed identity through the instance metadata endpoint (TOKENVEND_IMDS_ENDPOINT)", { skip }, async () => {
  await entra.clearRequests();
  const svc = await keylessService(emu, { TOKENVEND_IMDS_ENDPOINT: entra.authority });
  await exercise(svc, emu, entra, "imds", (r) => {
    assert.equal(r.method, "GET");
    assert.equal(r.fields["api-version"], "2018-02-01");
    assert.equal(r.fields.resource, MI_RESOURCE);
    assert.equal(r.headers.metadata, "true");
  });
  const cc = await configCheck(svc);
  assert.match(cc.line, /credential=managed_identity_imds GET /);
  assert.ok(cc.line.includes(`${entra.authority}/metadata/identity/oauth2/token?`), cc.line);
  await svc.stop();
  assertNoSecret(svc, [], cc.out);
});
