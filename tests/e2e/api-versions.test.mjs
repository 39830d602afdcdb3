// The quickstart flow through the SDK once per api-version the emulator serves. The SDK's
// (untyped but honoured) `apiVersion` client option rewrites the query before signing; the
// recorder proves each request went out with that version.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { createRecorder, makeTeamsAadToken, sdk, sdkError, startEmulator, verifyWithJwks } from "./lib/emulator.mjs";
import { assertAccessToken, assertAcsId, assertRestError } from "./lib/checks.mjs";

const VERSIONS = [
  "2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01", "2025-03-02-preview", "2025-06-30",
];

let emu;

before(async () => {
  emu = await startEmulator();
});

after(async () => {
  if (emu) await emu.stop();
});

for (const version of VERSIONS) {
  test(`quickstart flow with api-version ${version}`, async () => {
    const rec = createRecorder();
    const client = new CommunicationIdentityClient(emu.connectionString, {
      allowInsecureConnection: true,
      apiVersion: version,
      additionalPolicies: [rec.option],
    });
    // Custom lifetimes came with 2022-10-01 and the Teams exchange with 2022-06-01; older
    // versions run the rest of the flow.
    const customExpiry = version >= "2022-10-01";
    const teams = version >= "2022-06-01";

    const user = await sdk(rec, `${version} createUser`, () => client.createUser());
    assertAcsId(user);

    let b = Date.now();
    const t1 = await sdk(rec, `${version} getToken voip`, () => client.getToken(user, ["voip"]));
    assertAccessToken(t1, { before: b, after: Date.now(), minutes: 1440, user, scopes: ["voip"] });

    if (customExpiry) {
      b = Date.now();
      const t60 = await sdk(rec, `${version} getToken 60`, () =>
        client.getToken(user, ["voip"], { tokenExpiresInMinutes: 60 }));
      assertAccessToken(t60, { before: b, after: Date.now(), minutes: 60, user, scopes: ["voip"] });
      const err = await sdkError(rec, `${version} getToken 1441`, () =>
        client.getToken(user, ["voip"], { tokenExpiresInMinutes: 1441 }));
      assertRestError(err, 400, "ValidationError", rec);
    }

    b = Date.now();
    const both = await sdk(rec, `${version} createUserAndToken`, () =>
      client.createUserAndToken(["chat", "voip"], customExpiry ? { tokenExpiresInMinutes: 120 } : {}));
    assertAcsId(both.user);
    assertAccessToken(both, {
      before: b, after: Date.now(), minutes: customExpiry ? 120 : 1440, user: both.user, scopes: ["chat", "voip"],
    });

    if (teams) {
      const oid = "e4dab5f7-8a6c-4b9d-9ecf-3a4b5c6d7e8f";
      const appid = "4c08441b-58a9-4596-b463-c836397fb6ad";
      const tt = await sdk(rec, `${version} getTokenForTeamsUser`, () => client.getTokenForTeamsUser({
        teamsUserAadToken: makeTeamsAadToken({ oid, appid }), clientId: appid, userObjectId: oid,
      }));
      verifyWithJwks(tt.token, await emu.jwks());
    }

    // Refresh = a new token for the same identity; then revoke and delete.
    const refreshed = await sdk(rec, `${version} refresh`, () => client.getToken(both.user, ["chat", "voip"]));
    await sdk(rec, `${version} revokeTokens`, () => client.revokeTokens(both.user));
    for (const t of [both.token, refreshed.token]) {
      const v = await emu.validate(t);
      assert.equal(v.valid, false, `${version}: revoked token ${JSON.stringify(v)}`);
      assert.equal(v.reason, "revoked");
    }
    await sdk(rec, `${version} deleteUser`, () => client.deleteUser(both.user));
    await sdk(rec, `${version} deleteUser`, () => client.deleteUser(user));
    const err = await sdkError(rec, `${version} getToken after delete`, () => client.getToken(user, ["chat"]));
    assertRestError(err, 404, undefined, rec);

    assert.ok(rec.log.length >= 7, "requests were recorded");
    for (const e of rec.log) {
      const q = new URL(e.url).searchParams.getAll("api-version");
      assert.deepEqual(q, [version], `${e.method} ${e.url} carries api-version ${version}`);
    }
  });
}
