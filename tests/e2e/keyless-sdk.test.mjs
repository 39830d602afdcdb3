// The real @azure/communication-identity SDK in keyless mode (SPEC section 11): no access key and
// no connection string, only the resource endpoint and a TokenCredential that fetches Microsoft
// Entra tokens from acs-emulator's stand-in (`acs-emulator entra`), against acs-emulator started
// with --entra-jwks pointing at the stand-in's keys. It proves that the emulator's bearer path
// accepts what the SDK sends, and refuses a token from another key, an expired one and one for
// another audience.
//
// The SDK's bearer policy refuses plain http URLs, so the SDK talks to the emulator through a
// local HTTPS front (lib/entra.mjs: a self-signed certificate passed to the SDK's tlsOptions);
// the front forwards every request unchanged and records what the SDK sent.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { createRecorder, decodeJwt, sdk, sdkError, startEmulator } from "./lib/emulator.mjs";
import { assertAccessToken, assertAcsId, assertRestError } from "./lib/checks.mjs";
import {
  ACS_AUDIENCE,
  ACS_SCOPE,
  clientSecretCredential,
  ownSigner,
  startEntra,
  startTlsFront,
  staticCredential,
} from "./lib/entra.mjs";

const CLIENT_ID = "5b0f3c2e-1d4a-4e8b-9c6d-e2e000000001";
const CLIENT_SECRET = "sdk-keyless-secret-7f3a9c";

let entra;
let emu;
let front;
let cred;
let rec;
let client;
let dir;

// A client of the emulator (through the TLS front) with the given credential.
function clientWith(credential, recorder, url = front.url, ca = front.ca) {
  return new CommunicationIdentityClient(url, credential, {
    tlsOptions: { ca },
    retryOptions: { maxRetries: 0 },
    additionalPolicies: recorder ? [recorder.option] : [],
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tv-keyless-sdk-"));
  entra = await startEntra({ args: ["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET] });
  emu = await startEmulator(["--entra-jwks", entra.jwksUrl, "--entra-issuer", entra.issuer]);
  front = await startTlsFront(emu.endpoint);
  cred = clientSecretCredential({ tokenUrl: entra.tokenUrl, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  rec = createRecorder();
  client = clientWith(cred, rec);
});

after(async () => {
  if (front) await front.close();
  if (emu) await emu.stop();
  if (entra) await entra.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The last request the SDK sent carried a stand-in token and no HMAC signature.
function assertBearerSent(what) {
  const seen = front.seen[front.seen.length - 1];
  assert.ok(seen, `${what}: the front saw a request`);
  const auth = seen.headers.authorization || "";
  assert.match(auth, /^Bearer [A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, `${what}: Authorization is a Bearer JWT`);
  const jwt = decodeJwt(auth.slice("Bearer ".length));
  assert.equal(jwt.payload.iss, entra.issuer, `${what}: token from the stand-in`);
  assert.equal(jwt.payload.aud, ACS_AUDIENCE, `${what}: token for ACS`);
  assert.equal(seen.headers["x-ms-content-sha256"], undefined, `${what}: no HMAC content hash`);
  assert.ok(!/HMAC-SHA256/i.test(auth), `${what}: no HMAC signature`);
}

test("createUser with a TokenCredential: 201, a Bearer token from the stand-in, no HMAC", async () => {
  const user = await sdk(rec, "createUser", () => client.createUser());
  assertAcsId(user);
  assert.equal(rec.last().status, 201, "create answers 201");
  assertBearerSent("createUser");
  // The credential asked the stand-in with client credentials for the ACS scope.
  const reqs = (await entra.requests()).filter((r) => r.route === "token");
  assert.ok(reqs.length >= 1, `the stand-in saw a token request: ${JSON.stringify(reqs)}`);
  const f = reqs[0].fields;
  assert.equal(f.grant_type, "client_credentials");
  assert.equal(f.client_id, CLIENT_ID);
  assert.equal(f.scope, ACS_SCOPE);
  assert.deepEqual(f.client_secret, { length: CLIENT_SECRET.length }, "the secret was sent (its length logged only)");
});

test("createUserAndToken, getToken, revokeTokens and deleteUser all work with the bearer token", async () => {
  const t0 = Date.now();
  const both = await sdk(rec, "createUserAndToken", () => client.createUserAndToken(["chat", "voip"]));
  assertAccessToken(both, { before: t0, after: Date.now(), minutes: 1440, user: both.user, scopes: ["chat", "voip"] });
  assertBearerSent("createUserAndToken");
  assert.equal((await emu.validate(both.token)).valid, true, "the issued ACS token is valid");

  const t1 = Date.now();
  const tok = await sdk(rec, "getToken", () => client.getToken(both.user, ["voip"], { tokenExpiresInMinutes: 60 }));
  assertAccessToken(tok, { before: t1, after: Date.now(), minutes: 60, user: both.user, scopes: ["voip"] });
  assertBearerSent("getToken");
  assert.equal((await emu.validate(tok.token)).valid, true);

  await sdk(rec, "revokeTokens", () => client.revokeTokens(both.user));
  assert.equal(rec.last().status, 204, "revoke answers 204");
  assertBearerSent("revokeTokens");
  const revoked = await emu.validate(tok.token);
  assert.equal(revoked.valid, false, `revoked token refused: ${JSON.stringify(revoked)}`);

  const after_ = await sdk(rec, "getToken after revoke", () => client.getToken(both.user, ["chat"]));
  assert.equal((await emu.validate(after_.token)).valid, true, "a token issued after the revoke is valid");

  await sdk(rec, "deleteUser", () => client.deleteUser(both.user));
  assert.equal(rec.last().status, 204, "delete answers 204");
  assertBearerSent("deleteUser");
  const gone = await emu.validate(after_.token);
  assert.equal(gone.valid, false, `token of a deleted identity refused: ${JSON.stringify(gone)}`);
  const err = await sdkError(rec, "getToken of a deleted identity", () => client.getToken(both.user, ["chat"]));
  assertRestError(err, 404, null, rec);
});

test("the SDK asked the credential only for https://communication.azure.com//.default", () => {
  assert.ok(cred.calls.length >= 1, "getToken was called");
  for (const scopes of cred.calls) assert.deepEqual(scopes, [ACS_SCOPE]);
});

test("a token signed by a key outside the stand-in's JWKS is refused: 401 Denied", async () => {
  const other = ownSigner("not-the-stand-in");
  const now = Math.floor(Date.now() / 1000);
  const forged = other.sign({ aud: ACS_AUDIENCE, iss: entra.issuer, sub: CLIENT_ID, iat: now, nbf: now, exp: now + 3600 });
  const r = createRecorder();
  const before_ = await emu.stats();
  const err = await sdkError(r, "createUser with a forged token", () => clientWith(staticCredential(forged), r).createUser());
  assertRestError(err, 401, "Denied", r);
  const after_ = await emu.stats();
  assert.equal(typeof before_.identities_created, "number", `stats: ${JSON.stringify(before_)}`);
  assert.equal(after_.identities_created, before_.identities_created, "no identity created");
});

test("--entra-jwks FILE: a token from that key works; expired, not-yet-valid or for another audience is 401", async () => {
  const own = ownSigner("e2e-file-key");
  const jwksFile = join(dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify(own.jwks));
  const emu2 = await startEmulator(["--entra-jwks", jwksFile]);
  const front2 = await startTlsFront(emu2.endpoint);
  try {
    const now = Math.floor(Date.now() / 1000);
    const claims = { aud: ACS_AUDIENCE, iss: "https://sts.e2e.invalid/", sub: "app", iat: now, nbf: now };
    const good = own.sign({ ...claims, exp: now + 3600 });
    const r = createRecorder();
    const user = await sdk(r, "createUser with a valid own token", () =>
      clientWith(staticCredential(good), r, front2.url, front2.ca).createUser());
    assertAcsId(user);

    const cases = {
      expired: own.sign({ ...claims, iat: now - 7200, nbf: now - 7200, exp: now - 3600 }),
      "not yet valid": own.sign({ ...claims, nbf: now + 3600, exp: now + 7200 }),
      "another audience": own.sign({ ...claims, aud: "https://management.azure.com", exp: now + 3600 }),
    };
    for (const [what, token] of Object.entries(cases)) {
      const rr = createRecorder();
      const err = await sdkError(rr, `createUser with a token ${what}`, () =>
        clientWith(staticCredential(token), rr, front2.url, front2.ca).createUser());
      assertRestError(err, 401, "Denied", rr);
    }
  } finally {
    await front2.close();
    await emu2.stop();
  }
});
