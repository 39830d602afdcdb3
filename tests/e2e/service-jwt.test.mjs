// tokenvend serve, callers' JWTs: RS256, PS256 and ES256 from the issuer's JWKS are accepted; the
// rejection list (expired, not yet valid, wrong iss, wrong or missing aud, alg none, HS256 keyed
// with the RSA public key, unknown kid, tampered payload or signature, bad base64url, duplicate
// claims, oversized token, and more) is 401 with the error shape, and the service stays up.
// A second service finds the JWKS through the issuer's discovery document.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertTokenResponse, assertUnauthorized, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const b64u = (s) => Buffer.from(s).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

describe("tokenvend serve: caller JWTs", { skip }, () => {
  let emu;
  let jwks;
  let svc;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({ emu, jwks });
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test("RS256, PS256 and ES256 tokens from the JWKS are accepted; the user is the sub claim", async () => {
    for (const kid of ["rs1", "ps1", "es1"]) {
      const sub = uid(`user-${kid}`);
      const r = await svc.pub("GET", "/api/token", { token: jwks.token(sub, { kid }) });
      const t = assertTokenResponse(r, { what: `${kid} (${jwks.keys[kid].alg})` });
      const again = await svc.pub("GET", "/api/user", { token: jwks.token(sub, { kid: "rs1" }) });
      assert.equal(again.status, 200, `${kid}: the same user through another key: ${show(again)}`);
      assert.equal(again.json.acsUserIdentity, t.userId);
    }
    // aud as an array containing the audience; exp just inside the 60 s leeway; nbf just ahead
    // within the leeway.
    const edge = [
      ["aud array", { aud: ["api://other", jwks.audience] }],
      ["exp 30 s ago (leeway 60 s)", { exp: now() - 30 }],
      ["nbf 30 s ahead (leeway 60 s)", { nbf: now() + 30 }],
      ["no nbf, no iat", { nbf: undefined, iat: undefined }],
      ["a ~6 KB token (large claims)", { groups: Array.from({ length: 120 }, () => randomUUID()) }],
    ];
    for (const [what, claims] of edge) {
      const r = await svc.pub("GET", "/api/user", { token: jwks.token(uid("edge"), { claims }) });
      assert.equal(r.status, 404, `${what}: authenticated (404: no identity yet): ${show(r)}`);
    }
  });

  test("the rejection list: every token is 401 with the error shape", async () => {
    const sub = uid("victim");
    const good = jwks.token(sub);
    const [gh, gp, gs] = good.split(".");
    const claims = jwks.claims(sub);
    const rsaPemSpki = jwks.publicPem("rs1", "spki");
    const rsaPemPkcs1 = jwks.publicPem("rs1", "pkcs1");
    const flip = (s, i) => {
      const buf = Buffer.from(s, "base64url");
      buf[i] ^= 0x01;
      return buf.toString("base64url");
    };
    // The same signature bytes spelled in the base64 alphabet ("-" -> "+", "_" -> "/"); a 256-byte
    // signature has both characters with overwhelming probability, so flip one if it has neither.
    const toBase64Alphabet = (s) => {
      const t = s.replace(/-/g, "+").replace(/_/g, "/");
      return t === s ? `+${s.slice(1)}` : t;
    };
    const dupPayload = `{"iss":${JSON.stringify(jwks.issuer)},"aud":${JSON.stringify(jwks.audience)},` +
      `"sub":"${sub}","sub":"admin","exp":${now() + 600}}`;
    const dupExp = `{"iss":${JSON.stringify(jwks.issuer)},"aud":${JSON.stringify(jwks.audience)},` +
      `"sub":"${sub}","exp":${now() - 3600},"exp":${now() + 600}}`;
    // base64url makes ~8 KiB of claims a ~11.5 KB token: above the verifier's 8 KiB limit, inside
    // the default 16 KiB of header memory, so the verifier (not the HTTP parser) refuses it.
    const bigClaims = { ...claims, pad: "x".repeat(8 * 1024) };

    const cases = [
      ["expired", jwks.token(sub, { claims: { exp: now() - 600 } })],
      ["expired just past the leeway", jwks.token(sub, { claims: { exp: now() - 120 } })],
      ["nbf in the future", jwks.token(sub, { claims: { nbf: now() + 600 } })],
      ["no exp", jwks.token(sub, { claims: { exp: undefined } })],
      ["exp not a number", jwks.token(sub, { claims: { exp: String(now() + 600) } })],
      ["wrong iss", jwks.token(sub, { claims: { iss: "https://evil.example" } })],
      ["iss with a trailing slash", jwks.token(sub, { claims: { iss: `${jwks.issuer}/` } })],
      ["no iss", jwks.token(sub, { claims: { iss: undefined } })],
      ["wrong aud", jwks.token(sub, { claims: { aud: "api://other" } })],
      ["aud array without ours", jwks.token(sub, { claims: { aud: ["api://other", "api://tokenvend2"] } })],
      ["aud prefix of ours", jwks.token(sub, { claims: { aud: "api://tokenv" } })],
      ["no aud", jwks.token(sub, { claims: { aud: undefined } })],
      ["no sub", jwks.token(sub, { claims: { sub: undefined } })],
      ["empty sub", jwks.token(sub, { claims: { sub: "" } })],
      ["sub not a string", jwks.token(sub, { claims: { sub: 12345 } })],
      ["sub over 256 bytes", jwks.token(sub, { claims: { sub: "s".repeat(257) } })],
      ["alg none, empty signature", jwks.sign(claims, { alg: "none" })],
      ["alg none, kept signature", `${b64u(JSON.stringify({ alg: "none", typ: "JWT", kid: "rs1" }))}.${gp}.${gs}`],
      ["alg None", jwks.sign(claims, { alg: "none", header: { alg: "None" } })],
      ["HS256 keyed with the RSA public key (SPKI PEM)", jwks.sign(claims, { alg: "HS256", hmacSecret: rsaPemSpki })],
      ["HS256 keyed with the RSA public key (PKCS#1 PEM)", jwks.sign(claims, { alg: "HS256", hmacSecret: rsaPemPkcs1 })],
      ["HS256 without kid", jwks.sign(claims, { alg: "HS256", kid: null, hmacSecret: rsaPemSpki })],
      ["RS256 header on the PS256 key", jwks.sign(claims, { kid: "ps1", alg: "RS256" })],
      ["PS256 header on the RS256 key", jwks.sign(claims, { kid: "rs1", alg: "PS256" })],
      ["RS256 header on the ES256 key", jwks.sign(claims, { kid: "es1", alg: "ES256", header: { alg: "RS256" } })],
      ["RS512", jwks.sign(claims, { kid: "rs1", header: { alg: "RS512" } })],
      ["ES256 signature in DER form", jwks.sign(claims, { kid: "es1", der: true })],
      ["RSA key under 2048 bits", jwks.sign(claims, { kid: "weak" })],
      ["unknown kid", jwks.sign(claims, { kid: "nope", key: "stranger" })],
      ["known kid, other key", jwks.sign(claims, { kid: "rs1", key: "stranger" })],
      ["tampered payload", `${gh}.${b64u(JSON.stringify({ ...claims, sub: "admin" }))}.${gs}`],
      ["tampered signature", `${gh}.${gp}.${flip(gs, 10)}`],
      ["truncated signature", `${gh}.${gp}.${gs.slice(0, -4)}`],
      ["empty signature", `${gh}.${gp}.`],
      ["bad base64url: '+' and '/' (base64, not base64url)", `${gh}.${gp}.${toBase64Alphabet(gs)}`],
      ["bad base64url: padding", `${gh}.${gp}.${gs}==`],
      ["bad base64url: '*' in payload", `${gh}.${gp.slice(0, 5)}*${gp.slice(6)}.${gs}`],
      ["bad base64url: whitespace", `${gh}.${gp} .${gs}`],
      ["header not JSON", `${b64u("not json")}.${gp}.${gs}`],
      ["payload not JSON", jwks.sign("not json")],
      ["payload a JSON array", jwks.sign(JSON.stringify([claims]))],
      ["duplicate sub claim (hand-built JSON)", jwks.sign(dupPayload)],
      ["duplicate exp claim (hand-built JSON)", jwks.sign(dupExp)],
      ["duplicate alg in header", jwks.sign(claims, { rawHeader: '{"alg":"RS256","kid":"rs1","alg":"none"}' })],
      ["two parts", `${gh}.${gp}`],
      ["four parts", `${good}.${gs}`],
      ["empty parts", ".."],
      ["oversized token (~11.5 KB, validly signed)", jwks.sign(bigClaims)],
    ];
    const big = cases.find(([what]) => what.startsWith("oversized"))[1];
    assert.ok(big.length > 10_000 && big.length < 13_000, `the oversized token is ~11.5 KB (${big.length} bytes)`);
    // Every case runs; the failures are reported together after the liveness checks.
    const failures = [];
    for (const [what, token] of cases) {
      try {
        const r = await svc.pub("GET", "/api/token", { token });
        assertUnauthorized(r, what);
      } catch (err) {
        failures.push(err.message.split("\n")[0]);
      }
    }
    // The oversized one is refused before it is parsed, and still says why in the log (an Entra
    // user in many groups meets it; docs/identity-providers.md).
    assert.match(readFileSync(svc.stderrPath, "utf8"), /bearer token rejected: larger than 8192 bytes/,
      "the oversized token's refusal is logged with its reason");
    // Also via a hand-built header (a second Authorization header must not smuggle a token in).
    const dup = await svc.pub("GET", "/api/token", { headers: { authorization: ["Bearer garbage", `Bearer ${good}`] } });
    assert.ok(dup.status === 401 || dup.status === 400, `two Authorization headers: ${show(dup)}`);

    // A header block larger than the connection's header memory (header_limit) never reaches
    // the verifier: HTTP's 431 is the answer, and the service carries on.
    const huge = jwks.sign({ ...claims, pad: "x".repeat(24 * 1024) });
    const r431 = await svc.pub("GET", "/api/token", { token: huge });
    assert.equal(r431.status, 431, `a ~33 KB Authorization header: ${show(r431)}`);

    assert.ok(svc.alive(), "tokenvend still running");
    assert.equal((await svc.pub("GET", "/healthz")).status, 200, "healthz after the rejection list");
    assertTokenResponse(await svc.pub("GET", "/api/token", { token: jwks.token(sub) }), { what: "a good token still works" });
    const stats = await emu.stats();
    assert.equal(stats.requests.create, 4, `only the accepted users reached ACS: ${JSON.stringify(stats.requests)}`);
    assert.deepEqual(failures, [], `${failures.length} of ${cases.length} tokens not refused with 401:\n${failures.join("\n")}`);
  });

  test("an unknown kid is fetched again, at most once a minute", async () => {
    const before1 = jwks.fetches().jwks;
    for (let i = 0; i < 5; i++) {
      const token = jwks.sign(jwks.claims(uid("k")), { kid: `nope${i}`, key: "stranger" });
      assertUnauthorized(await svc.pub("GET", "/api/user", { token }), `unknown kid ${i}`);
    }
    const fetched = jwks.fetches().jwks - before1;
    assert.ok(fetched <= 1, `the JWKS was fetched ${fetched} times for 5 unknown kids (at most once a minute)`);
  });

  test("SIGTERM: exit 0", async () => {
    const r = await svc.stop();
    assert.deepEqual([r.code, r.signal], [0, null], `exit after SIGTERM: ${JSON.stringify(r)}`);
  });
});

describe("tokenvend serve: JWKS from discovery, auto_create off, no local accounts", { skip }, () => {
  let emu;
  let jwks;
  let svc;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({ emu, jwks, env: { TOKENVEND_OIDC_JWKS_URL: null, TOKENVEND_AUTO_CREATE: "off" } });
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test("without TOKENVEND_OIDC_JWKS_URL the jwks_uri of /.well-known/openid-configuration is used", async () => {
    const sub = uid("disc");
    const t = jwks.token(sub, { kid: "es1" });
    // auto_create off: no identity on a first token request, until the user is ensured.
    assertError(await svc.pub("GET", "/api/token", { token: t }), 404, "not_found", "GET /api/token, auto_create off");
    assertError(await svc.pub("POST", "/api/token", { token: t, body: { scopes: ["chat"] } }), 404, "not_found",
      "POST /api/token, auto_create off");
    assert.equal((await emu.stats()).requests.create, 0, "nothing created");
    const c = await svc.pub("POST", "/api/user", { token: t });
    assert.equal(c.status, 201, show(c));
    assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }), { userId: c.json.acsUserIdentity, what: "ES256 via discovery" });
    // Local accounts off: no login route.
    assertError(await svc.pub("POST", "/api/login", { body: { username: "a", password: "b" } }), 404, "not_found",
      "/api/login with local accounts off");
    const f = jwks.fetches();
    assert.ok(f.discovery >= 1, `discovery document fetched (${JSON.stringify(f)})`);
    assert.ok(f.jwks >= 1, `jwks fetched (${JSON.stringify(f)})`);
    assertUnauthorized(await svc.pub("GET", "/api/token", { token: jwks.token(uid("disc"), { claims: { aud: "x" } }) }),
      "wrong aud via discovery");
    const r = await svc.stop();
    assert.deepEqual([r.code, r.signal], [0, null], `exit after SIGTERM: ${JSON.stringify(r)}`);
  });
});
