// docs/identity-providers.md, checked: for Microsoft Entra ID (v2.0), Auth0 and Keycloak, tokenvend
// serve runs with the settings READ FROM THE GUIDE's ```sh idp=NAME block, and a local stand-in
// (lib/idp-standins.mjs) mints tokens shaped like that provider's: the issuer and audience follow
// the provider's own rules, not the guide, so a guide that gets one wrong fails here. The one
// substitution: the scheme and host of the guide's TOKENVEND_OIDC_JWKS_URL become the stand-in's
// http://127.0.0.1:PORT (the path stays, and the stand-in serves only the provider's real path),
// since the provider's host cannot be reached from a test.
//
// Checked per provider: a token shaped like theirs gets an ACS token (GET /api/token 200); the app
// user id is the claim the guide names (Entra: oid, so two applications' pairwise subs for one oid
// are one user; Auth0 and Keycloak: sub, also on the internal API); the guide's pitfalls (Entra:
// v1.0 and Graph tokens, the api:// audience, a clock behind or ahead, a groups claim too large;
// Auth0: the opaque token, another API's audience, iss without the slash; Keycloak: no audience
// mapper, the /auth path, no sub) are 401 with the reason the guide names in the log; the Teams
// exchange as the guide describes it, against the emulator's; discovery from each guide's issuer
// (its host swapped) when the key set URL is left out; and what the guide says about changing
// the user claim later.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { decodeJwt, makeTeamsAadToken, REPO_ROOT, startEmulator } from "./lib/emulator.mjs";
import { ENTRA_BACKDATE_S, hostSwap, startAuth0Standin, startEntraStandin, startKeycloakStandin } from "./lib/idp-standins.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertTokenResponse, assertUnauthorized, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const GUIDE = join(REPO_ROOT, "docs", "identity-providers.md");

// The provider facts the stand-ins are built from: the example tenant, domain and realm the guide
// uses. Everything tokenvend is configured with comes from the guide.
const ENTRA = {
  tenantId: "4a1c3d2e-5f60-4b7a-8c9d-0e1f2a3b4c5d",
  apiClientId: "6e8f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
  webClientId: "0b9c8d7e-6f5a-4b3c-9d2e-1f0a9b8c7d6e",
  mobileClientId: "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
};
ENTRA.appIdUri = `api://${ENTRA.apiClientId}`;
const AUTH0 = { domain: "tokenvend-demo.eu.auth0.com", apiIdentifier: "https://tokenvend.example.com/api", clientId: "kQ3vX9pL2mN8rT5wY7zA1bC4dE6fG0hJ" };
const KEYCLOAK = { host: "sso.example.com", realm: "chat", clientId: "chat-web" };

// The guide's settings blocks: { entra: {TOKENVEND_...: value}, auth0: ..., keycloak: ... }.
function guideBlocks() {
  const text = readFileSync(GUIDE, "utf8");
  const blocks = {};
  for (const m of text.matchAll(/^```sh idp=(\w+)\n([\s\S]*?)^```$/gm)) {
    const env = {};
    for (const line of m[2].split("\n")) {
      if (!line.trim() || line.startsWith("#")) continue;
      const eq = line.indexOf("=");
      assert.ok(eq > 0, `${m[1]}: a KEY=VALUE line: ${JSON.stringify(line)}`);
      env[line.slice(0, eq)] = line.slice(eq + 1);
    }
    assert.equal(blocks[m[1]], undefined, `one block for ${m[1]}`);
    blocks[m[1]] = env;
  }
  return blocks;
}

// Starts tokenvend with a guide block, the key set URL's host swapped for the stand-in's, and
// waits until the key set has loaded (/readyz 200).
async function serveWithGuide(emu, block, standin, extraEnv = {}) {
  assert.ok(block.TOKENVEND_OIDC_JWKS_URL, "the block names the key set URL");
  assert.equal(new URL(block.TOKENVEND_OIDC_JWKS_URL).pathname, standin.jwksPath,
    "the guide's key set URL has the provider's path");
  const env = { ...block, TOKENVEND_OIDC_JWKS_URL: hostSwap(block.TOKENVEND_OIDC_JWKS_URL, standin.origin), ...extraEnv };
  const svc = await startService({ emu, env });
  await waitReady(svc);
  return svc;
}

async function waitReady(svc) {
  let r;
  for (let i = 0; i < 300; i++) {
    r = await svc.pub("GET", "/readyz");
    if (r.status === 200) return;
    await sleep(100);
  }
  assert.fail(`tokenvend never became ready: ${show(r)}\n${svc.stderrTail(3000)}`);
}

// A refusal: 401 in the error shape, and the service's log names the reason the guide gives.
// The log line is written when the request completes, so it is awaited (bounded) rather than
// expected at once.
async function assertRefused(svc, token, reason, what) {
  const rid = `idp-${randomUUID()}`;
  const r = await svc.pub("GET", "/api/token", { token, headers: { "x-request-id": rid } });
  assertUnauthorized(r, what);
  const want = `bearer token rejected: ${reason}`;
  for (let i = 0; i < 400; i++) {
    const line = svc.logs().stderr.split("\n").find((l) => l.includes(rid) && l.includes("bearer token rejected"));
    if (line) {
      assert.ok(line.includes(want), `${what}: the log says "${want}": ${line}`);
      return;
    }
    await sleep(50);
  }
  assert.fail(`${what}: no "bearer token rejected" line for request ${rid}`);
}

describe("identity provider guides (docs/identity-providers.md)", { skip }, () => {
  let emu;
  let blocks;

  before(async () => {
    blocks = guideBlocks();
    assert.deepEqual(Object.keys(blocks).sort(), ["auth0", "entra", "keycloak"], "a block per provider");
    emu = await startEmulator();
  });

  after(async () => {
    await emu?.stop();
  });

  describe("Microsoft Entra ID", () => {
    let entra;
    let svc;

    before(async () => {
      entra = await startEntraStandin(ENTRA);
      svc = await serveWithGuide(emu, blocks.entra, entra);
    });

    after(async () => {
      await svc?.cleanup();
      await entra?.close();
    });

    test("the guide's settings: iss, aud and the key set path are Entra's v2.0 ones", () => {
      const b = blocks.entra;
      assert.equal(b.TOKENVEND_OIDC_ISSUER, entra.issuer);
      assert.equal(b.TOKENVEND_OIDC_AUDIENCE, ENTRA.apiClientId, "v2.0 aud is the API's client id");
      assert.equal(b.TOKENVEND_OIDC_USER_CLAIM, "oid");
    });

    test("a v2.0 token gets an ACS token; the user is oid, one user for two apps' pairwise subs", async () => {
      const oid = randomUUID();
      const web = entra.token({ oid, clientAppId: ENTRA.webClientId });
      const mobile = entra.token({ oid, clientAppId: ENTRA.mobileClientId });
      assert.notEqual(decodeJwt(web).payload.sub, decodeJwt(mobile).payload.sub, "pairwise: two subs");
      assert.equal(decodeJwt(web).header.kid, entra.jwks().keys[1].kid, "signed with the second published key");

      const a = assertTokenResponse(await svc.pub("GET", "/api/token", { token: web }), { what: "web app token" });
      const b = assertTokenResponse(await svc.pub("GET", "/api/token", { token: mobile }), { what: "mobile app token" });
      assert.equal(b.userId, a.userId, "the same ACS identity through both applications");
      assert.equal((await emu.validate(a.token)).valid, true, "valid at the emulator");

      const key = (await svc.createApiKey(`entra-${randomUUID().slice(0, 8)}`)).key;
      const m = await svc.int("GET", `/internal/users/${oid}`, { key });
      assert.equal(m.status, 200, `the app user id is the object id: ${show(m)}`);
      assert.equal(m.json.acsUserIdentity, a.userId);
      const bySub = await svc.int("GET", `/internal/users/${encodeURIComponent(decodeJwt(web).payload.sub)}`, { key });
      assert.equal(bySub.status, 404, `no user under the pairwise sub: ${show(bySub)}`);
    });

    test("pitfalls: v1.0 token, Graph token, a clock behind: 401 with the guide's reasons", async () => {
      const oid = randomUUID();
      await assertRefused(svc, entra.token1({ oid, clientAppId: ENTRA.webClientId }), "wrong issuer",
        "v1.0 token (requestedAccessTokenVersion not 2)");
      const graph = entra.token({
        oid,
        clientAppId: ENTRA.webClientId,
        claims: { iss: `https://sts.windows.net/${ENTRA.tenantId}/`, aud: "https://graph.microsoft.com", scp: "User.Read", ver: "1.0" },
        header: { nonce: "Ab3dEf" },
      });
      await assertRefused(svc, graph, "wrong issuer", "a Microsoft Graph token");
      await assertRefused(svc, entra.token({ oid, clientAppId: ENTRA.webClientId, claims: { oid: undefined } }),
        "missing or malformed user claim", "no oid (profile not asked)");
      const now = Math.floor(Date.now() / 1000);
      await assertRefused(svc, entra.token({ oid, clientAppId: ENTRA.webClientId, claims: { aud: ENTRA.appIdUri } }),
        "wrong audience", "aud the api:// URI");
      // Entra's iat and nbf are 5 minutes before it issues: a host 420 s behind Entra is refused.
      const behind = now + 420 - ENTRA_BACKDATE_S;
      await assertRefused(svc, entra.token({ oid, clientAppId: ENTRA.webClientId, claims: { iat: behind, nbf: behind, exp: behind + 3900 } }),
        "not yet valid", "issued by an Entra whose clock is 420 s ahead of this host's");
      await assertRefused(svc, entra.token({ oid, clientAppId: ENTRA.webClientId, claims: { exp: now - 120 } }),
        "expired", "expired 120 s ago");
      // Refused before verification (src/api/common.c), so without a "bearer token rejected" line.
      const groups = Array.from({ length: 200 }, () => randomUUID());
      const big = entra.token({ oid, clientAppId: ENTRA.webClientId, claims: { groups } });
      assert.ok(big.length > 8192, `200 group ids make a ${big.length}-byte token`);
      assertUnauthorized(await svc.pub("GET", "/api/token", { token: big }), "200 group ids (Entra's JWT maximum)");
    });

    test("Teams exchange: the bearer's oid equals the Teams token's; appId and userId reach ACS", async () => {
      const oid = randomUUID();
      const bearer = entra.token({ oid, clientAppId: ENTRA.webClientId });
      const teams = entra.teamsToken({ oid, clientAppId: ENTRA.webClientId });
      const before = (await emu.stats()).succeeded.teams_exchange;
      const r = await svc.pub("GET", "/api/token/teams", { token: bearer, headers: { "teams-user-aad-token": teams } });
      const got = assertTokenResponse(r, { withUser: false, what: "teams exchange" });
      assert.equal(r.json.user, undefined, "no mapped identity in the answer");
      assert.equal(got.jwt.payload.skypeid, `orgid:${oid}`, "a token for the Teams user's own identity");
      assert.equal((await emu.validate(got.token)).valid, true, "valid at the emulator");
      assert.equal((await emu.stats()).succeeded.teams_exchange, before + 1, "through the emulator's exchange");

      const other = entra.teamsToken({ oid: randomUUID(), clientAppId: ENTRA.webClientId });
      const e = assertError(await svc.pub("GET", "/api/token/teams", { token: bearer, headers: { "teams-user-aad-token": other } }),
        403, "forbidden", "another user's Teams token");
      assert.match(e.message, /oid differs/);
      assertError(await svc.pub("GET", "/api/token/teams", { token: bearer }), 400, undefined, "no teams-user-aad-token");
      const expired = entra.teamsToken({ oid, clientAppId: ENTRA.webClientId, claims: { exp: Math.floor(Date.now() / 1000) - 600 } });
      const x = assertError(await svc.pub("GET", "/api/token/teams", { token: bearer, headers: { "teams-user-aad-token": expired } }),
        401, "unauthorized", "an expired Teams token, refused by ACS");
      assert.match(x.message, /ACS did not accept the Teams token/);
    });
  });

  describe("Auth0", () => {
    let auth0;
    let svc;

    before(async () => {
      auth0 = await startAuth0Standin({ domain: AUTH0.domain });
      svc = await serveWithGuide(emu, blocks.auth0, auth0);
    });

    after(async () => {
      await svc?.cleanup();
      await auth0?.close();
    });

    test("the guide's issuer has Auth0's trailing slash and its audience is the API identifier", () => {
      assert.equal(blocks.auth0.TOKENVEND_OIDC_ISSUER, auth0.issuer);
      assert.equal(blocks.auth0.TOKENVEND_OIDC_AUDIENCE, AUTH0.apiIdentifier);
    });

    test("aud array with userinfo, aud string, typ at+jwt: each gets an ACS token for the sub", async () => {
      const sub = `auth0|${randomUUID().replace(/-/g, "").slice(0, 24)}`;
      const opts = { sub, audience: AUTH0.apiIdentifier, clientId: AUTH0.clientId };
      const withOpenid = auth0.token(opts);
      assert.ok(Array.isArray(decodeJwt(withOpenid).payload.aud), "openid asked: aud is an array");
      const a = assertTokenResponse(await svc.pub("GET", "/api/token", { token: withOpenid }), { what: "aud array" });
      assertTokenResponse(await svc.pub("GET", "/api/token", { token: auth0.token({ ...opts, openid: false }) }),
        { what: "aud string", userId: a.userId });
      assertTokenResponse(await svc.pub("GET", "/api/token", { token: auth0.token({ ...opts, header: { typ: "at+jwt" } }) }),
        { what: "RFC 9068 profile (typ at+jwt)", userId: a.userId });

      const key = (await svc.createApiKey(`auth0-${randomUUID().slice(0, 8)}`)).key;
      const m = await svc.int("GET", `/internal/users/${encodeURIComponent(sub)}`, { key });
      assert.equal(m.status, 200, `the app user id is the sub, | percent-encoded: ${show(m)}`);
      assert.equal(m.json.acsUserIdentity, a.userId);
    });

    test("pitfalls: opaque token (no audience asked), another API's audience: 401", async () => {
      await assertRefused(svc, auth0.opaqueToken(), "malformed token", "opaque access token");
      await assertRefused(svc, auth0.token({ sub: "auth0|x", audience: `https://${AUTH0.domain}/api/v2/`, clientId: AUTH0.clientId }),
        "wrong audience", "a Management API token");
      await assertRefused(svc, auth0.token({ sub: "auth0|x", audience: AUTH0.apiIdentifier, clientId: AUTH0.clientId,
        claims: { iss: `https://${AUTH0.domain}` } }), "wrong issuer", "iss without the trailing slash");
    });

    test("Teams exchange: an Auth0 bearer has no oid: 403", async () => {
      const bearer = auth0.token({ sub: `auth0|${randomUUID()}`, audience: AUTH0.apiIdentifier, clientId: AUTH0.clientId });
      const entraLike = makeTeamsAadToken({ oid: randomUUID(), appid: randomUUID() });
      const e = assertError(await svc.pub("GET", "/api/token/teams", { token: bearer, headers: { "teams-user-aad-token": entraLike } }),
        403, "forbidden", "Auth0 bearer");
      assert.match(e.message, /no oid claim/);
    });
  });

  describe("Keycloak", () => {
    let kc;
    let svc;

    before(async () => {
      kc = await startKeycloakStandin({ host: KEYCLOAK.host, realm: KEYCLOAK.realm });
      svc = await serveWithGuide(emu, blocks.keycloak, kc);
    });

    after(async () => {
      await svc?.cleanup();
      await kc?.close();
    });

    test("the guide's issuer is the realm URL", () => {
      assert.equal(blocks.keycloak.TOKENVEND_OIDC_ISSUER, kc.issuer);
    });

    test("with the audience mapper (aud [tokenvend, account]) a token gets an ACS token for the sub", async () => {
      const sub = randomUUID();
      const aud = [blocks.keycloak.TOKENVEND_OIDC_AUDIENCE, "account"];
      assert.equal(aud[0], "tokenvend", "the audience the guide's mapper adds");
      const a = assertTokenResponse(await svc.pub("GET", "/api/token", { token: kc.token({ sub, clientId: KEYCLOAK.clientId, aud }) }),
        { what: "Keycloak token" });
      assert.equal(kc.jwks().keys.filter((k) => k.use === "enc").length, 1, "the key set has an encryption key too");
      const key = (await svc.createApiKey(`kc-${randomUUID().slice(0, 8)}`)).key;
      const m = await svc.int("GET", `/internal/users/${sub}`, { key });
      assert.equal(m.status, 200, `the app user id is the sub: ${show(m)}`);
      assert.equal(m.json.acsUserIdentity, a.userId);
    });

    test("pitfalls: no audience mapper, /auth/realms, no sub: 401", async () => {
      const sub = randomUUID();
      await assertRefused(svc, kc.token({ sub, clientId: KEYCLOAK.clientId }), "wrong audience", "aud \"account\" only");
      await assertRefused(svc, kc.token({ sub, clientId: KEYCLOAK.clientId, aud: null }), "wrong audience", "no aud");
      await assertRefused(svc, kc.token({ sub, clientId: KEYCLOAK.clientId, aud: ["tokenvend", "account"],
        iss: `https://${KEYCLOAK.host}/auth/realms/${KEYCLOAK.realm}` }), "wrong issuer", "pre-17 /auth path");
      await assertRefused(svc, kc.token({ sub, clientId: KEYCLOAK.clientId, aud: ["tokenvend", "account"], claims: { sub: undefined } }),
        "missing or malformed user claim", "no basic client scope (no sub)");
    });

    test("Teams exchange: a Keycloak bearer has no oid: 403", async () => {
      const bearer = kc.token({ sub: randomUUID(), clientId: KEYCLOAK.clientId, aud: ["tokenvend", "account"] });
      const entraLike = makeTeamsAadToken({ oid: randomUUID(), appid: randomUUID() });
      const e = assertError(await svc.pub("GET", "/api/token/teams", { token: bearer, headers: { "teams-user-aad-token": entraLike } }),
        403, "forbidden", "Keycloak bearer");
      assert.match(e.message, /no oid claim/);
    });
  });

  // Without TOKENVEND_OIDC_JWKS_URL tokenvend reads ISSUER/.well-known/openid-configuration. Each
  // guide's issuer, its host swapped for the stand-in's (the stand-in then issues under that
  // host), leads to the provider's discovery path and from there to the key set.
  describe("discovery: each guide's issuer without the key set URL", () => {
    const started = [];

    after(async () => {
      for (const [svc, standin] of started) {
        await svc.cleanup();
        await standin.close();
      }
    });

    const cases = [
      ["entra", () => startEntraStandin(ENTRA), (idp) => idp.token({ oid: randomUUID(), clientAppId: ENTRA.webClientId })],
      ["auth0", () => startAuth0Standin({ domain: AUTH0.domain }),
        (idp) => idp.token({ sub: `auth0|${randomUUID()}`, audience: AUTH0.apiIdentifier, clientId: AUTH0.clientId })],
      ["keycloak", () => startKeycloakStandin(KEYCLOAK),
        (idp) => idp.token({ sub: randomUUID(), clientId: KEYCLOAK.clientId, aud: ["tokenvend", "account"] })],
    ];
    for (const [name, start, mint] of cases) {
      test(`${name}: discovery finds the key set`, async () => {
        const idp = await start();
        idp.selfHosted();
        const { TOKENVEND_OIDC_JWKS_URL: _unused, ...block } = blocks[name];
        const issuer = hostSwap(block.TOKENVEND_OIDC_ISSUER, idp.origin);
        assert.equal(issuer, idp.issuer, "the guide's issuer under the stand-in's host is the provider's issuer");
        const svc = await startService({ emu, env: { ...block, TOKENVEND_OIDC_ISSUER: issuer } });
        started.push([svc, idp]);
        await waitReady(svc);
        assertTokenResponse(await svc.pub("GET", "/api/token", { token: mint(idp) }), { what: `${name} through discovery` });
        assert.ok(idp.fetches(idp.discoveryPath) >= 1, "the discovery document was read");
        assert.ok(idp.fetches(idp.jwksPath) >= 1, "the key set was read from its jwks_uri");
      });
    }
  });

  describe("changing the user claim later (Entra: sub, then oid)", () => {
    let entra;
    let svc;

    before(async () => {
      entra = await startEntraStandin(ENTRA);
    });

    after(async () => {
      await svc?.cleanup();
      await entra?.close();
    });

    test("under sub one person is two users; after the switch to oid a new identity, the old mapping stays", async () => {
      const { TOKENVEND_OIDC_USER_CLAIM: claim, ...rest } = blocks.entra;
      assert.equal(claim, "oid");
      svc = await serveWithGuide(emu, rest, entra); // the default claim, sub
      const oid = randomUUID();
      const web = entra.token({ oid, clientAppId: ENTRA.webClientId });
      const mobile = entra.token({ oid, clientAppId: ENTRA.mobileClientId });
      const underSub = assertTokenResponse(await svc.pub("GET", "/api/token", { token: web }), { what: "under sub" });
      const mobileSub = assertTokenResponse(await svc.pub("GET", "/api/token", { token: mobile }), { what: "under sub, mobile" });
      assert.notEqual(mobileSub.userId, underSub.userId, "with sub, each application's user is another identity");

      await svc.stop();
      await svc.start({ TOKENVEND_OIDC_USER_CLAIM: claim });
      await waitReady(svc);
      const underOid = assertTokenResponse(await svc.pub("GET", "/api/token", { token: entra.token({ oid, clientAppId: ENTRA.webClientId }) }),
        { what: "under oid" });
      assert.notEqual(underOid.userId, underSub.userId, "a new ACS identity after the switch");
      const shown = await svc.cli(["identity", "show", decodeJwt(web).payload.sub]);
      assert.equal(shown.code, 0, `the old mapping remains: ${shown.stderr}`);
      assert.equal(JSON.parse(shown.stdout).acsUserIdentity, underSub.userId);
    });
  });
});
