// The real @azure/communication-identity SDK against acs-emulator: every operation succeeds with
// checked results, and the error paths (wrong key, expiry bounds, scopes, deleted identity) answer
// as the real service does. One emulator for the whole file; the tests run in order.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { createRecorder, makeTeamsAadToken, sdk, sdkError, startEmulator, verifyWithJwks } from "./lib/emulator.mjs";
import { assertAccessToken, assertAcsId, assertRestError, MINUTE_MS } from "./lib/checks.mjs";

let emu;
let rec;
let client;
const issued = []; // every token minted here, for the JWKS test

before(async () => {
  // Debug logging, so the last test can check that not even debug lines carry secrets.
  emu = await startEmulator(["--log-level", "debug"]);
  rec = createRecorder();
  client = new CommunicationIdentityClient(emu.connectionString, {
    allowInsecureConnection: true,
    additionalPolicies: [rec.option],
  });
});

after(async () => {
  if (emu) await emu.stop();
});

// Runs fn between two clock readings, for the expiresOn window.
async function timed(fn) {
  const before_ms = Date.now();
  const result = await fn();
  return { result, before: before_ms, after: Date.now() };
}

test("the connection string has the contract's shape", () => {
  assert.match(emu.connectionString, /^endpoint=http:\/\/127\.0\.0\.1:\d+\/;accesskey=[A-Za-z0-9+/]+=*$/);
  assert.equal(Buffer.from(emu.accessKey, "base64").length, 64, "generated key is 64 bytes");
});

test("createUser returns distinct ACS identities of one resource", async () => {
  const a = await sdk(rec, "createUser", () => client.createUser());
  const b = await sdk(rec, "createUser", () => client.createUser());
  assertAcsId(a);
  assertAcsId(b);
  assert.notEqual(a.communicationUserId, b.communicationUserId);
  const res = (u) => u.communicationUserId.split("_")[0];
  assert.equal(res(a), res(b), "same resource part");
  assert.equal(rec.last().status, 201, "create answers 201");
  assert.match(rec.last().url, /\/identities\?api-version=2023-10-01$/);
});

test("createUserAndToken(['chat','voip']) with the default lifetime (24 h)", async () => {
  const { result, before: b, after: a } = await timed(() =>
    sdk(rec, "createUserAndToken", () => client.createUserAndToken(["chat", "voip"])));
  assertAcsId(result.user);
  assertAccessToken(result, { before: b, after: a, minutes: 1440, user: result.user, scopes: ["chat", "voip"] });
  assert.deepEqual(JSON.parse(rec.last().body), { createTokenWithScopes: ["chat", "voip"] });
  issued.push(result.token);
});

test("createUserAndToken with tokenExpiresInMinutes 60", async () => {
  const { result, before: b, after: a } = await timed(() =>
    sdk(rec, "createUserAndToken 60", () =>
      client.createUserAndToken(["chat", "voip"], { tokenExpiresInMinutes: 60 })));
  assertAcsId(result.user);
  assertAccessToken(result, { before: b, after: a, minutes: 60, user: result.user, scopes: ["chat", "voip"] });
  issued.push(result.token);
});

test("getToken(['voip']) default, 60 and 1440 minutes", async () => {
  const user = await sdk(rec, "createUser", () => client.createUser());
  for (const minutes of [undefined, 60, 1440]) {
    const opts = minutes === undefined ? {} : { tokenExpiresInMinutes: minutes };
    const { result, before: b, after: a } = await timed(() =>
      sdk(rec, `getToken ${minutes}`, () => client.getToken(user, ["voip"], opts)));
    assertAccessToken(result, { before: b, after: a, minutes: minutes ?? 1440, user, scopes: ["voip"] });
    assert.equal(rec.last().status, 200);
    const v = await emu.validate(result.token);
    assert.equal(v.valid, true, `fresh token valid: ${JSON.stringify(v)}`);
    assert.equal(v.reason, "ok");
    assert.equal(v.identity, user.communicationUserId);
    assert.ok(Math.abs(new Date(v.expiresOn).getTime() - result.expiresOn.getTime()) <= 1000,
      `validate expiresOn ${v.expiresOn} vs SDK ${result.expiresOn.toISOString()}`);
    issued.push(result.token);
  }
});

test("getToken with each scope alone", async () => {
  const user = await sdk(rec, "createUser", () => client.createUser());
  for (const scope of ["chat", "voip", "chat.join", "chat.join.limited", "voip.join"]) {
    const { result, before: b, after: a } = await timed(() =>
      sdk(rec, `getToken ${scope}`, () => client.getToken(user, [scope])));
    assertAccessToken(result, { before: b, after: a, minutes: 1440, user, scopes: [scope] });
  }
});

test("getTokenForTeamsUser exchanges an Entra token", async () => {
  const oid = "b1a7e2c4-5d3f-4e6a-8b9c-0d1e2f3a4b5c";
  const clientId = "1fd5118e-2576-4263-8130-9503064c837a";
  const teamsUserAadToken = makeTeamsAadToken({ oid, appid: clientId });
  const b = Date.now();
  const result = await sdk(rec, "getTokenForTeamsUser", () =>
    client.getTokenForTeamsUser({ teamsUserAadToken, clientId, userObjectId: oid }));
  const a = Date.now();
  assert.equal(typeof result.token, "string");
  assert.ok(result.expiresOn instanceof Date && result.expiresOn.getTime() > a, "expires in the future");
  assert.deepEqual(JSON.parse(rec.last().body), { token: teamsUserAadToken, appId: clientId, userId: oid });
  const jwks = await emu.jwks();
  const jwt = verifyWithJwks(result.token, jwks);
  assert.ok(Math.abs(jwt.payload.exp * 1000 - result.expiresOn.getTime()) <= 1000, "exp agrees with expiresOn");
  assert.ok(jwt.payload.iat * 1000 >= b - MINUTE_MS, "iat about now");
  const v = await emu.validate(result.token);
  assert.equal(v.valid, true, JSON.stringify(v));

  // The same oid maps to the same identity every time.
  const again = await sdk(rec, "getTokenForTeamsUser again", () =>
    client.getTokenForTeamsUser({ teamsUserAadToken, clientId, userObjectId: oid }));
  assert.equal((await emu.validate(again.token)).identity, v.identity, "same identity for the same oid");
  issued.push(result.token);
});

test("getTokenForTeamsUser: mismatched ids -> 400, expired or malformed token -> 401", async () => {
  const oid = "c2b8f3d5-6e4a-4f7b-9cad-1e2f3a4b5c6d";
  const clientId = "2ae6229f-3687-4374-9241-a614175d948b";
  const good = makeTeamsAadToken({ oid, appid: clientId });
  let err = await sdkError(rec, "teams wrong oid", () =>
    client.getTokenForTeamsUser({ teamsUserAadToken: good, clientId, userObjectId: "00000000-0000-0000-0000-000000000001" }));
  assertRestError(err, 400, undefined, rec);
  err = await sdkError(rec, "teams wrong appId", () =>
    client.getTokenForTeamsUser({ teamsUserAadToken: good, clientId: "00000000-0000-0000-0000-000000000002", userObjectId: oid }));
  assertRestError(err, 400, undefined, rec);
  const expired = makeTeamsAadToken({ oid, appid: clientId, expSeconds: Math.floor(Date.now() / 1000) - 600 });
  err = await sdkError(rec, "teams expired", () =>
    client.getTokenForTeamsUser({ teamsUserAadToken: expired, clientId, userObjectId: oid }));
  assertRestError(err, 401, undefined, rec);
  err = await sdkError(rec, "teams malformed", () =>
    client.getTokenForTeamsUser({ teamsUserAadToken: "not-a-jwt", clientId, userObjectId: oid }));
  assertRestError(err, 401, undefined, rec);
});

test("revokeTokens: earlier tokens become invalid, a later one is valid", async () => {
  const created = await sdk(rec, "createUserAndToken", () => client.createUserAndToken(["chat"]));
  const user = created.user;
  const t1 = await sdk(rec, "getToken", () => client.getToken(user, ["voip"]));
  for (const t of [created.token, t1.token]) {
    assert.equal((await emu.validate(t)).valid, true, "valid before revoke");
  }
  await sdk(rec, "revokeTokens", () => client.revokeTokens(user));
  assert.equal(rec.last().status, 204, "revoke answers 204");
  for (const t of [created.token, t1.token]) {
    const v = await emu.validate(t);
    assert.equal(v.valid, false, `revoked token still valid: ${JSON.stringify(v)}`);
    assert.equal(v.reason, "revoked", JSON.stringify(v));
  }
  const t2 = await sdk(rec, "getToken after revoke", () => client.getToken(user, ["chat", "voip"]));
  const v2 = await emu.validate(t2.token);
  assert.equal(v2.valid, true, `token issued after revoke: ${JSON.stringify(v2)}`);
  assert.equal(v2.reason, "ok");
  issued.push(t2.token);
});

test("deleteUser: tokens become invalid and getToken gets 404", async () => {
  const user = await sdk(rec, "createUser", () => client.createUser());
  const t = await sdk(rec, "getToken", () => client.getToken(user, ["chat"]));
  await sdk(rec, "deleteUser", () => client.deleteUser(user));
  assert.equal(rec.last().status, 204, "delete answers 204");
  const v = await emu.validate(t.token);
  assert.equal(v.valid, false, JSON.stringify(v));
  assert.equal(v.reason, "deleted", JSON.stringify(v));
  const err = await sdkError(rec, "getToken after delete", () => client.getToken(user, ["chat"]));
  assertRestError(err, 404, undefined, rec);
});

test("getToken for an identity that never existed -> 404", async () => {
  const created = await sdk(rec, "createUser", () => client.createUser());
  const [res] = created.communicationUserId.split("_");
  const ghost = { communicationUserId: `${res}_00000000-0000-0000-0000-00000000dead` };
  const err = await sdkError(rec, "getToken ghost", () => client.getToken(ghost, ["chat"]));
  assertRestError(err, 404, undefined, rec);
});

test("a wrong access key gets 401 Denied", async () => {
  const otherKey = Buffer.alloc(64, 7).toString("base64");
  const cs = `endpoint=${emu.endpoint}/;accesskey=${otherKey}`;
  const wrec = createRecorder();
  const bad = new CommunicationIdentityClient(cs, { allowInsecureConnection: true, additionalPolicies: [wrec.option] });
  let err = await sdkError(wrec, "createUser wrong key", () => bad.createUser());
  assertRestError(err, 401, "Denied", wrec);
  const user = await sdk(rec, "createUser", () => client.createUser());
  err = await sdkError(wrec, "getToken wrong key", () => bad.getToken(user, ["chat"]));
  assertRestError(err, 401, "Denied", wrec);
  err = await sdkError(wrec, "revokeTokens wrong key", () => bad.revokeTokens(user));
  assertRestError(err, 401, "Denied", wrec);
  err = await sdkError(wrec, "deleteUser wrong key", () => bad.deleteUser(user));
  assertRestError(err, 401, "Denied", wrec);
  // The identity is untouched by the rejected calls.
  const t = await sdk(rec, "getToken right key", () => client.getToken(user, ["chat"]));
  assert.equal((await emu.validate(t.token)).valid, true);
});

test("tokenExpiresInMinutes 59 and 1441 -> 400 ValidationError", async () => {
  const user = await sdk(rec, "createUser", () => client.createUser());
  for (const minutes of [59, 1441]) {
    let err = await sdkError(rec, `getToken ${minutes}`, () =>
      client.getToken(user, ["chat"], { tokenExpiresInMinutes: minutes }));
    assertRestError(err, 400, "ValidationError", rec);
    assert.deepEqual(JSON.parse(rec.last().body), { scopes: ["chat"], expiresInMinutes: minutes });
    err = await sdkError(rec, `createUserAndToken ${minutes}`, () =>
      client.createUserAndToken(["chat"], { tokenExpiresInMinutes: minutes }));
    assertRestError(err, 400, "ValidationError", rec);
    assert.deepEqual(JSON.parse(rec.last().body), { createTokenWithScopes: ["chat"], expiresInMinutes: minutes });
  }
});

test("unknown or missing scopes -> 400 ValidationError", async () => {
  const user = await sdk(rec, "createUser", () => client.createUser());
  let err = await sdkError(rec, "getToken bogus", () => client.getToken(user, ["bogus"]));
  assertRestError(err, 400, "ValidationError", rec);
  err = await sdkError(rec, "getToken chat+bogus", () => client.getToken(user, ["chat", "bogus"]));
  assertRestError(err, 400, "ValidationError", rec);
  err = await sdkError(rec, "getToken []", () => client.getToken(user, []));
  assertRestError(err, 400, "ValidationError", rec);
  err = await sdkError(rec, "createUserAndToken bogus", () => client.createUserAndToken(["bogus"]));
  assertRestError(err, 400, "ValidationError", rec);
});

test("/emulator/jwks verifies every token; tampering is detected", async () => {
  const jwks = await emu.jwks();
  assert.ok(Array.isArray(jwks.keys) && jwks.keys.length >= 1, "JWKS has keys");
  for (const k of jwks.keys) {
    assert.equal(k.kty, "RSA");
    assert.equal(k.alg, "RS256");
    assert.equal(k.use, "sig");
    assert.equal(typeof k.kid, "string");
    assert.equal(typeof k.n, "string");
    assert.equal(typeof k.e, "string");
    assert.equal(k.d, undefined, "no private part in the JWKS");
  }
  assert.ok(issued.length >= 5, "earlier tests issued tokens");
  for (const t of issued) verifyWithJwks(t, jwks);

  const [h, p, s] = issued[0].split(".");
  const payload = JSON.parse(Buffer.from(p, "base64url").toString());
  payload.exp += 3600;
  const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
  assert.throws(() => verifyWithJwks(forged, jwks), /does not verify/);
  const v = await emu.validate(forged);
  assert.equal(v.valid, false, JSON.stringify(v));
  assert.equal(v.reason, "bad_signature", JSON.stringify(v));
  const m = await emu.validate("not.a.jwt");
  assert.equal(m.valid, false);
  assert.equal(m.reason, "malformed", JSON.stringify(m));
});

test("/emulator/stats counts calls per operation", async () => {
  await emu.resetStats();
  const zero = await emu.stats();
  for (const group of ["requests", "succeeded"]) {
    for (const op of ["create", "issue", "revoke", "delete", "teams_exchange"]) {
      assert.equal(zero[group][op], 0, `${group}.${op} after reset: ${JSON.stringify(zero)}`);
    }
  }
  assert.equal(zero.identities_created, 0, JSON.stringify(zero));
  assert.equal(zero.tokens_issued, 0, JSON.stringify(zero));
  const live0 = zero.identities_live;
  assert.equal(typeof live0, "number");

  const u1 = await sdk(rec, "createUser", () => client.createUser());
  const u2 = await sdk(rec, "createUserAndToken", () => client.createUserAndToken(["chat"]));
  await sdk(rec, "getToken", () => client.getToken(u1, ["voip"]));
  await sdk(rec, "getToken", () => client.getToken(u1, ["chat"], { tokenExpiresInMinutes: 60 }));
  await sdkError(rec, "getToken 59", () => client.getToken(u1, ["chat"], { tokenExpiresInMinutes: 59 }));
  const mid = await emu.stats();
  assert.equal(mid.identities_live, live0 + 2, `two more live identities: ${JSON.stringify(mid)}`);
  assert.equal(mid.identities_created, 2, `identities_created: ${JSON.stringify(mid)}`);
  await sdk(rec, "revokeTokens", () => client.revokeTokens(u1));
  await sdk(rec, "deleteUser", () => client.deleteUser(u2.user));
  const oid = "d3c9a4e6-7f5b-4a8c-8dbe-2f3a4b5c6d7e";
  const appid = "3bf7330a-4798-4485-a352-b725286ea59c";
  await sdk(rec, "getTokenForTeamsUser", () => client.getTokenForTeamsUser({
    teamsUserAadToken: makeTeamsAadToken({ oid, appid }), clientId: appid, userObjectId: oid,
  }));
  // Not authenticated: must not be counted as a request of any operation.
  const bad = new CommunicationIdentityClient(`endpoint=${emu.endpoint}/;accesskey=${Buffer.alloc(32, 1).toString("base64")}`,
    { allowInsecureConnection: true });
  await sdkError(null, "createUser wrong key", () => bad.createUser());

  const s = await emu.stats();
  const show = JSON.stringify(s);
  assert.deepEqual(
    { create: s.requests.create, issue: s.requests.issue, revoke: s.requests.revoke, delete: s.requests.delete, teams_exchange: s.requests.teams_exchange },
    { create: 2, issue: 3, revoke: 1, delete: 1, teams_exchange: 1 }, `requests: ${show}`);
  assert.deepEqual(
    { create: s.succeeded.create, issue: s.succeeded.issue, revoke: s.succeeded.revoke, delete: s.succeeded.delete, teams_exchange: s.succeeded.teams_exchange },
    { create: 2, issue: 2, revoke: 1, delete: 1, teams_exchange: 1 }, `succeeded: ${show}`);
  // The Teams exchange may add the identity derived from its oid.
  assert.ok(s.identities_live === live0 + 1 || s.identities_live === live0 + 2, `identities_live: ${show}`);
  // createUserAndToken + 2 getToken, and the Teams token if the emulator counts it too.
  assert.ok(s.tokens_issued === 3 || s.tokens_issued === 4, `tokens_issued: ${show}`);
  assert.equal(s.faults_injected, 0, show);
});

test("the emulator's debug log never contains the access key or a token", () => {
  const log = emu.stderrText();
  assert.ok(log.split("\n").length > 20, "the debug log has a line per request");
  assert.ok(!log.includes(emu.accessKey), "access key in the log");
  for (const t of issued) {
    const sig = t.split(".")[2];
    assert.ok(!log.includes(sig), "a token (its signature) in the log");
  }
  for (const e of rec.log) {
    const auth = e.headers.Authorization || e.headers.authorization || "";
    const m = /Signature=(\S+)$/.exec(auth);
    if (m) assert.ok(!log.includes(m[1]), "an HMAC signature in the log");
  }
});
