// tokenvend serve, black box: every public and internal route's success and its 400/401/403/404/
// 405 answers with the one error shape, Cache-Control: no-store on token answers, CORS preflight,
// request ids, ops endpoints, local accounts (/api/login) and API keys from the admin CLI.
// Real binaries on loopback: acs-emulator upstream, a temporary database, a local JWKS issuer.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { makeTeamsAadToken, startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import {
  assertAcsIdString,
  assertError,
  assertMethodNotAllowed,
  assertTokenResponse,
  assertUnauthorized,
  jsonStrings,
  show,
} from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;
const BAD_REQUEST = ["invalid_request", "malformed"];
const ORIGIN = "https://app.example";

describe("tokenvend serve: routes", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let apiKey;
  const account = { name: uid("local"), password: `pw-${randomBytes(9).toString("base64url")}` };

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({
      emu,
      jwks,
      localAccounts: true,
      env: {
        TOKENVEND_CORS_ORIGINS: `${ORIGIN},http://localhost:3000`,
        TOKENVEND_ALLOWED_SCOPES: "chat,voip,chat.join",
        TOKENVEND_DEFAULT_SCOPES: "chat,voip",
        TOKENVEND_TOKEN_MINUTES: "600",
        TOKENVEND_TOKEN_MAX_MINUTES: "720",
      },
    });
    apiKey = (await svc.createApiKey("backend1")).key;
    await svc.addAccount(account.name, account.password);
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  const bearer = (sub, opts) => jwks.token(sub, opts);

  test("ops: /healthz, /readyz on both listeners, /metrics in Prometheus text", async () => {
    for (const base of ["pub", "int"]) {
      for (const path of ["/healthz", "/readyz"]) {
        const r = await svc[base]("GET", path);
        assert.equal(r.status, 200, `${base} ${path}: ${show(r)}`);
      }
    }
    const m = await svc.int("GET", "/metrics");
    assert.equal(m.status, 200, show(m));
    assert.match(String(m.headers["content-type"]), /^text\/plain/, "metrics content-type");
    assert.match(m.text, /^# TYPE \S+ (counter|gauge|histogram)/m, "metrics has # TYPE lines");
    assert.match(m.text, /tokenvend_http_requests_total\{/, "per-route request counters");
    // Metrics reveal counts and cost table scans: internal listener only.
    assertError(await svc.pub("GET", "/metrics"), 404, "not_found", "public GET /metrics");
    assertMethodNotAllowed(await svc.int("POST", "/healthz"), ["GET"], "POST /healthz");
  });

  test("unknown route 404, wrong method 405 with Allow, listeners keep their own routes", async () => {
    const t = bearer(uid("u"));
    assertError(await svc.pub("GET", "/nope", { token: t }), 404, "not_found", "GET /nope");
    assertError(await svc.pub("GET", "/api/nope", { token: t }), 404, "not_found", "GET /api/nope");
    assertError(await svc.int("GET", "/internal/nope", { key: apiKey }), 404, "not_found", "GET /internal/nope");
    // The internal API is not reachable on the public listener, nor the public API on the internal one.
    assertError(await svc.pub("GET", "/internal/users/x", { key: apiKey }), 404, "not_found", "internal route on public");
    assertError(await svc.pub("POST", "/internal/identities", { key: apiKey }), 404, "not_found", "internal route on public");
    assertError(await svc.int("GET", "/api/token", { token: t }), 404, "not_found", "public route on internal");

    assertMethodNotAllowed(await svc.pub("DELETE", "/api/token", { token: t }), ["GET", "POST"], "DELETE /api/token");
    assertMethodNotAllowed(await svc.pub("PUT", "/api/user", { token: t }), ["GET", "POST", "DELETE"], "PUT /api/user");
    assertMethodNotAllowed(await svc.pub("GET", "/api/token/revoke", { token: t }), ["POST"], "GET /api/token/revoke");
    assertMethodNotAllowed(await svc.pub("POST", "/api/token/teams", { token: t }), ["GET"], "POST /api/token/teams");
    assertMethodNotAllowed(await svc.pub("GET", "/api/login"), ["POST"], "GET /api/login");
    assertMethodNotAllowed(await svc.int("PATCH", "/internal/users/x", { key: apiKey }), ["GET", "PUT", "DELETE"],
      "PATCH /internal/users/x");
    assertMethodNotAllowed(await svc.int("GET", "/internal/users/x/token", { key: apiKey }), ["POST"], "GET .../token");
    assertMethodNotAllowed(await svc.int("GET", "/internal/users/x/revoke", { key: apiKey }), ["POST"], "GET .../revoke");
    assertMethodNotAllowed(await svc.int("GET", "/internal/identities", { key: apiKey }), ["POST"], "GET /internal/identities");
    assertMethodNotAllowed(await svc.int("GET", "/internal/identities/8:acs:x/token", { key: apiKey }), ["POST"], "GET identities token");
    assertMethodNotAllowed(await svc.int("PUT", "/internal/identities/8:acs:x", { key: apiKey }), ["DELETE"], "PUT identities/{id}");
  });

  test("X-Request-Id: a valid one is echoed, an invalid one replaced", async () => {
    let r = await svc.pub("GET", "/healthz", { headers: { "x-request-id": "e2e-req.1_A" } });
    assert.equal(r.headers["x-request-id"], "e2e-req.1_A");
    r = await svc.pub("GET", "/api/user", { headers: { "x-request-id": "e2e-req.2" } });
    assert.equal(r.headers["x-request-id"], "e2e-req.2", "echoed on an error answer too");
    for (const bad of ["has space", "x".repeat(65), "semi;colon"]) {
      r = await svc.pub("GET", "/healthz", { headers: { "x-request-id": bad } });
      const got = r.headers["x-request-id"];
      assert.ok(typeof got === "string" && got.length > 0 && got !== bad, `invalid id ${JSON.stringify(bad)} replaced (got ${got})`);
      assert.match(got, /^[A-Za-z0-9._-]{1,64}$/);
    }
    r = await svc.pub("GET", "/healthz");
    assert.match(String(r.headers["x-request-id"]), /^[A-Za-z0-9._-]{1,64}$/, "a new id when none was sent");

    // The id travels upstream as x-ms-client-request-id and names the service's access-log line.
    const rid = `e2e-corr-${randomUUID()}`;
    r = await svc.pub("GET", "/api/token", { token: bearer(uid("corr")), headers: { "x-request-id": rid } });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.headers["x-request-id"], rid);
    // Both log lines are written when a request completes, and reach us a moment later.
    assert.ok(await pollUntil(() => emu.stderrText().includes(`"client_request_id":"${rid}"`), { deadlineMs: 10_000, intervalMs: 50 }),
      "the emulator saw the request id as x-ms-client-request-id");
    assert.ok(await pollUntil(() => svc.logs().stderr.includes(rid), { deadlineMs: 10_000, intervalMs: 50 }),
      "tokenvend's log names the request id");
  });

  test("GET /api/token: identity created on first use, default scopes and lifetime, no-store", async () => {
    const sub = uid("alice");
    const t = bearer(sub);
    const first = assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }),
      { minutes: 600, scopes: ["chat", "voip"], what: "first GET /api/token" });
    assert.equal((await emu.validate(first.token)).valid, true, "token valid at the emulator");
    const second = assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }),
      { scopes: ["chat", "voip"], userId: first.userId, what: "second GET /api/token" });
    assert.equal((await emu.validate(second.token)).valid, true);

    const u = await svc.pub("GET", "/api/user", { token: t });
    assert.equal(u.status, 200, show(u));
    assert.equal(u.json.acsUserIdentity, first.userId, "GET /api/user names the identity");
    assert.match(String(u.json.createdAt), ISO_RE, "createdAt is ISO 8601");
    assert.ok(Math.abs(Date.parse(u.json.createdAt) - Date.now()) < 10 * 60_000, "createdAt is about now");

    assertUnauthorized(await svc.pub("GET", "/api/token"), "no Authorization");
    const basic = `Basic ${Buffer.from("a:b").toString("base64")}`;
    assertUnauthorized(await svc.pub("GET", "/api/token", { headers: { authorization: basic } }), "Basic");
    assertUnauthorized(await svc.pub("GET", "/api/token", { headers: { authorization: "Bearer" } }), "empty Bearer");
    assertUnauthorized(await svc.pub("GET", "/api/token", { token: "not-a-jwt" }), "garbage bearer");
  });

  test("POST /api/token: body checked against the policy (400 malformed/lifetime, 403 scope, 413)", async () => {
    const t = bearer(uid("bob"));
    const ok = async (body, expect, what) => {
      const r = await svc.pub("POST", "/api/token", { token: t, body });
      return assertTokenResponse(r, { ...expect, what });
    };
    const a = await ok({ scopes: ["chat"], expiresInMinutes: 60 }, { scopes: ["chat"], minutes: 60 }, "chat/60");
    await ok({ scopes: ["chat.join"], expiresInMinutes: 720 }, { scopes: ["chat.join"], minutes: 720, userId: a.userId },
      "chat.join/720 (configured max)");
    await ok({ scopes: ["voip", "chat"] }, { scopes: ["chat", "voip"], minutes: 600, userId: a.userId }, "scopes only");
    await ok({ expiresInMinutes: 90 }, { scopes: ["chat", "voip"], minutes: 90, userId: a.userId }, "lifetime only");
    await ok({}, { scopes: ["chat", "voip"], minutes: 600, userId: a.userId }, "empty object");
    await ok("", { scopes: ["chat", "voip"], minutes: 600, userId: a.userId }, "empty body");

    const bad = [
      ["not json", "{scopes:", "malformed"],
      ["array", "[]", BAD_REQUEST],
      ["trailing bytes", '{"expiresInMinutes":60} x', BAD_REQUEST],
      ["scopes not array", { scopes: "chat" }, "invalid_request"],
      ["empty scopes", { scopes: [] }, "invalid_request"],
      ["unknown scope", { scopes: ["chat", "bogus"] }, "invalid_request"],
      ["scope not a string", { scopes: [1] }, "invalid_request"],
      ["lifetime 59", { expiresInMinutes: 59 }, "invalid_request"],
      ["lifetime 721 (above configured max)", { expiresInMinutes: 721 }, "invalid_request"],
      ["lifetime 1441", { expiresInMinutes: 1441 }, "invalid_request"],
      ["lifetime string", { expiresInMinutes: "60" }, "invalid_request"],
      ["lifetime fraction", { expiresInMinutes: 60.5 }, "invalid_request"],
      ["lifetime huge", '{"expiresInMinutes":1e400}', BAD_REQUEST],
      ["lifetime negative", { expiresInMinutes: -60 }, "invalid_request"],
    ];
    for (const [what, body, code] of bad) {
      assertError(await svc.pub("POST", "/api/token", { token: t, body }), 400, code, `POST /api/token ${what}`);
    }
    assertError(await svc.pub("POST", "/api/token", { token: t, body: { scopes: ["voip.join"] } }), 403, "forbidden", "scope not allowed");
    assertError(await svc.pub("POST", "/api/token", { token: t, body: { scopes: ["chat", "chat.join.limited"] } }), 403, "forbidden",
      "one scope not allowed");
    const big = JSON.stringify({ scopes: ["chat"], pad: "x".repeat(70 * 1024) });
    assertError(await svc.pub("POST", "/api/token", { token: t, body: big }), 413, "too_large", "70 KiB body");
    assertUnauthorized(await svc.pub("POST", "/api/token", { body: { scopes: ["chat"] } }), "POST /api/token without bearer");
    // The service still answers after the oversized body.
    assert.equal((await svc.pub("GET", "/healthz")).status, 200);
  });

  test("GET/POST/DELETE /api/user: 404 before, 201 then 200, delete 204 idempotent", async () => {
    const t = bearer(uid("carol"));
    assertError(await svc.pub("GET", "/api/user", { token: t }), 404, "not_found", "GET /api/user before any identity");
    assertError(await svc.pub("POST", "/api/token/revoke", { token: t }), 404, "not_found", "revoke without identity");

    const c = await svc.pub("POST", "/api/user", { token: t });
    assert.equal(c.status, 201, `POST /api/user creates: ${show(c)}`);
    assertAcsIdString(c.json?.acsUserIdentity, "POST /api/user acsUserIdentity");
    const id = c.json.acsUserIdentity;
    const again = await svc.pub("POST", "/api/user", { token: t });
    assert.equal(again.status, 200, `POST /api/user again: ${show(again)}`);
    assert.equal(again.json?.acsUserIdentity, id, "same identity");
    const g = await svc.pub("GET", "/api/user", { token: t });
    assert.equal(g.status, 200, show(g));
    assert.equal(g.json.acsUserIdentity, id);

    const tok = assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }), { userId: id, what: "token of the ensured user" });
    const d = await svc.pub("DELETE", "/api/user", { token: t });
    assert.equal(d.status, 204, `DELETE /api/user: ${show(d)}`);
    assert.equal(d.text, "", "204 has no body");
    const v = await emu.validate(tok.token);
    assert.deepEqual([v.valid, v.reason], [false, "deleted"], `emulator: identity deleted (${JSON.stringify(v)})`);
    const d2 = await svc.pub("DELETE", "/api/user", { token: t });
    assert.equal(d2.status, 204, `DELETE /api/user again (idempotent): ${show(d2)}`);
    assertError(await svc.pub("GET", "/api/user", { token: t }), 404, "not_found", "GET /api/user after delete");

    for (const m of ["GET", "POST", "DELETE"]) assertUnauthorized(await svc.pub(m, "/api/user"), `${m} /api/user without bearer`);
  });

  test("POST /api/token/revoke: 204, earlier token invalid at the emulator, next token fresh", async () => {
    const t = bearer(uid("dave"));
    const before1 = assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }), { what: "token before revoke" });
    assert.equal((await emu.validate(before1.token)).valid, true);
    const r = await svc.pub("POST", "/api/token/revoke", { token: t });
    assert.equal(r.status, 204, `revoke: ${show(r)}`);
    const v = await emu.validate(before1.token);
    assert.deepEqual([v.valid, v.reason], [false, "revoked"], JSON.stringify(v));
    const after1 = assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }),
      { userId: before1.userId, what: "token after revoke" });
    assert.notEqual(after1.token, before1.token, "not the revoked token from a cache");
    assert.equal((await emu.validate(after1.token)).valid, true, "the new token is valid");
    assertUnauthorized(await svc.pub("POST", "/api/token/revoke"), "revoke without bearer");
  });

  test("GET /api/token/teams: exchange with matching oid; 400 without/garbled header, 403 oid mismatch", async () => {
    const oid = randomUUID();
    const t = bearer(uid("teams"), { claims: { oid } });
    const aad = makeTeamsAadToken({ oid, appid: randomUUID() });
    const r = await svc.pub("GET", "/api/token/teams", { token: t, headers: { "teams-user-aad-token": aad } });
    const got = assertTokenResponse(r, { withUser: false, what: "teams exchange" });
    assert.equal((await emu.validate(got.token)).valid, true, "exchanged token valid at the emulator");
    assert.equal((await emu.stats()).succeeded.teams_exchange >= 1, true, "went through the emulator's exchange");

    assertError(await svc.pub("GET", "/api/token/teams", { token: t }), 400, BAD_REQUEST, "no teams-user-aad-token");
    assertError(await svc.pub("GET", "/api/token/teams", { token: t, headers: { "teams-user-aad-token": "not-a-jwt" } }),
      400, BAD_REQUEST, "teams token not a JWT");
    const other = makeTeamsAadToken({ oid: randomUUID(), appid: randomUUID() });
    assertError(await svc.pub("GET", "/api/token/teams", { token: t, headers: { "teams-user-aad-token": other } }),
      403, "forbidden", "oid mismatch");
    assertUnauthorized(await svc.pub("GET", "/api/token/teams", { headers: { "teams-user-aad-token": aad } }), "teams without bearer");
  });

  test("POST /api/login: local account -> session JWT usable on /api/token; 401 wrong password, 400 bad body", async () => {
    const r = await svc.pub("POST", "/api/login", { body: { username: account.name, password: account.password } });
    assert.equal(r.status, 200, `login: ${show(r)}`);
    assert.equal(typeof r.json.access_token, "string", "access_token");
    assert.equal(r.json.token_type, "Bearer");
    assert.equal(typeof r.json.expires_in, "number", "expires_in is a number");
    assert.ok(r.json.expires_in > 60 && r.json.expires_in <= 15 * 60, `expires_in ${r.json.expires_in} is the 15 min default`);
    assert.match(String(r.headers["cache-control"]), /no-store/i, "login answer is not cached");
    const session = r.json.access_token;
    assert.equal(session.split(".").length, 3, "access_token is a compact JWS");

    const tok = assertTokenResponse(await svc.pub("GET", "/api/token", { token: session }), { what: "token for the local account" });
    const u = await svc.pub("GET", "/api/user", { token: session });
    assert.equal(u.status, 200, show(u));
    assert.equal(u.json.acsUserIdentity, tok.userId);
    // The app user id is "local:" + the account name: the internal API sees the same mapping.
    const m = await svc.int("GET", `/internal/users/local:${encodeURIComponent(account.name)}`, { key: apiKey });
    assert.equal(m.status, 200, show(m));
    assert.ok(jsonStrings(m.json).includes(tok.userId), `internal mapping names ${tok.userId}: ${show(m)}`);

    const wrong = assertError(await svc.pub("POST", "/api/login", { body: { username: account.name, password: "wrong" } }),
      401, "unauthorized", "wrong password");
    const unknown = assertError(await svc.pub("POST", "/api/login", { body: { username: uid("nobody"), password: "x" } }),
      401, "unauthorized", "unknown account");
    assert.equal(wrong.message, unknown.message, "wrong password and unknown account look the same");
    for (const [what, body] of [
      ["not json", "{"],
      ["no password", { username: account.name }],
      ["no username", { password: account.password }],
      ["password not a string", { username: account.name, password: 1 }],
    ]) {
      assertError(await svc.pub("POST", "/api/login", { body }), 400, BAD_REQUEST, `login ${what}`);
    }
    // A session token is for the public API only, and a tampered one is refused.
    assertUnauthorized(await svc.int("GET", "/internal/users?limit=1", { key: session }), "session token on internal");
    const [h, p, s] = session.split(".");
    const forged = Buffer.from(p, "base64url").toString("utf8").replace(account.name, "someone-else");
    assertUnauthorized(await svc.pub("GET", "/api/user", { token: `${h}.${Buffer.from(forged).toString("base64url")}.${s}` }),
      "tampered session");
  });

  test("internal API keys: missing, wrong, garbled, JWT or revoked key -> 401", async () => {
    const path = "/internal/users?limit=1";
    assert.equal((await svc.int("GET", path, { key: apiKey })).status, 200, "the key works");
    assertUnauthorized(await svc.int("GET", path), "no key");
    assertUnauthorized(await svc.int("GET", path, { key: "" }), "empty key");
    assertUnauthorized(await svc.int("GET", path, { key: "tvk_nonsense" }), "garbled key");
    // Same key id, different secret: the lookup succeeds, the comparison must not.
    // (A middle character: the last one of 43 base64url chars carries padding bits.)
    const i = apiKey.length - 10;
    const wrongSecret = apiKey.slice(0, i) + (apiKey[i] === "A" ? "B" : "A") + apiKey.slice(i + 1);
    assertUnauthorized(await svc.int("GET", path, { key: wrongSecret }), "wrong secret");
    assertUnauthorized(await svc.int("GET", path, { key: `${apiKey}x` }), "key with a trailing byte");
    assertUnauthorized(await svc.int("GET", path, { key: bearer(uid("u")) }), "an OIDC JWT is no API key");
    assertUnauthorized(await svc.pub("GET", "/api/user", { token: apiKey }), "an API key is no caller token");
    const basic = `Basic ${Buffer.from(`x:${apiKey}`).toString("base64")}`;
    assertUnauthorized(await svc.int("GET", path, { headers: { authorization: basic } }), "Basic");

    const temp = (await svc.createApiKey("temp-key")).key;
    assert.notEqual(temp, apiKey);
    assert.equal((await svc.int("GET", path, { key: temp })).status, 200, "new key works");
    const rv = await svc.cli(["apikey", "revoke", "temp-key"]);
    assert.equal(rv.code, 0, `apikey revoke: ${rv.stderr}`);
    assertUnauthorized(await svc.int("GET", path, { key: temp }), "revoked key");
    assert.equal((await svc.int("GET", path, { key: apiKey })).status, 200, "the other key still works");
    const dup = await svc.cli(["apikey", "create", "backend1"]);
    assert.notEqual(dup.code, 0, "a duplicate key name is refused");
  });

  test("internal users: PUT 201/200, GET, token, revoke, DELETE 204 idempotent; 400/403/404", async () => {
    const user = `ext|${uid("erin")}@example.com`;
    const p = `/internal/users/${encodeURIComponent(user)}`;
    assertError(await svc.int("GET", p, { key: apiKey }), 404, "not_found", "GET unknown user");
    assertError(await svc.int("POST", `${p}/revoke`, { key: apiKey }), 404, "not_found", "revoke unknown user");

    const c = await svc.int("PUT", p, { key: apiKey });
    assert.equal(c.status, 201, `PUT new user: ${show(c)}`);
    const id = jsonStrings(c.json).find((s) => /^8:acs:/.test(s));
    assertAcsIdString(id, "PUT answer names the identity");
    const c2 = await svc.int("PUT", p, { key: apiKey });
    assert.equal(c2.status, 200, `PUT existing user: ${show(c2)}`);
    assert.ok(jsonStrings(c2.json).includes(id), "same identity");
    const g = await svc.int("GET", p, { key: apiKey });
    assert.equal(g.status, 200, show(g));
    assert.ok(jsonStrings(g.json).includes(id) && jsonStrings(g.json).includes(user), `mapping names user and identity: ${show(g)}`);

    // The frontend and the backend name the same user: same identity through the public API.
    assertTokenResponse(await svc.pub("GET", "/api/token", { token: bearer(user) }), { userId: id, what: "public token of that user" });

    const t = assertTokenResponse(await svc.int("POST", `${p}/token`, { key: apiKey, body: { scopes: ["chat"], expiresInMinutes: 60 } }),
      { scopes: ["chat"], minutes: 60, userId: id, what: "internal token" });
    assertTokenResponse(await svc.int("POST", `${p}/token`, { key: apiKey }),
      { scopes: ["chat", "voip"], minutes: 600, userId: id, what: "internal token, no body" });
    assertError(await svc.int("POST", `${p}/token`, { key: apiKey, body: "{" }), 400, "malformed", "internal token bad JSON");
    assertError(await svc.int("POST", `${p}/token`, { key: apiKey, body: { expiresInMinutes: 30 } }), 400, "invalid_request",
      "internal token lifetime 30");
    assertError(await svc.int("POST", `${p}/token`, { key: apiKey, body: { scopes: ["voip.join"] } }), 403, "forbidden",
      "internal token forbidden scope");

    const rv = await svc.int("POST", `${p}/revoke`, { key: apiKey });
    assert.equal(rv.status, 204, show(rv));
    assert.equal((await emu.validate(t.token)).reason, "revoked");

    // A token for a user with no identity yet creates it.
    const fresh = `/internal/users/${encodeURIComponent(uid("frank"))}`;
    const ft = assertTokenResponse(await svc.int("POST", `${fresh}/token`, { key: apiKey }), { what: "internal token creates identity" });
    assert.ok(jsonStrings((await svc.int("GET", fresh, { key: apiKey })).json).includes(ft.userId));

    const d = await svc.int("DELETE", p, { key: apiKey });
    assert.equal(d.status, 204, show(d));
    assertError(await svc.int("GET", p, { key: apiKey }), 404, "not_found", "GET after delete");
    assert.equal((await svc.int("DELETE", p, { key: apiKey })).status, 204, "DELETE again is 204");
    assert.equal((await svc.int("DELETE", `/internal/users/${uid("never")}`, { key: apiKey })).status, 204,
      "DELETE of an unknown user is 204");

    assertError(await svc.int("PUT", `/internal/users/${"x".repeat(300)}`, { key: apiKey }), 400, BAD_REQUEST, "user id over 256 bytes");
    assertError(await svc.int("PUT", "/internal/users/a%00b", { key: apiKey }), 400, BAD_REQUEST, "user id with NUL");
    const guarded = [["PUT", p], ["GET", p], ["DELETE", p], ["POST", `${p}/token`], ["POST", `${p}/revoke`], ["GET", "/internal/users"]];
    for (const [m, path] of guarded) {
      assertUnauthorized(await svc.int(m, path), `${m} ${path} without key`);
    }
  });

  test("GET /internal/users: cursor pagination walks every mapping once, in order; 400 bad limit", async () => {
    const prefix = uid("page");
    const users = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
    for (const u of users) assert.equal((await svc.int("PUT", `/internal/users/${u}`, { key: apiKey })).status, 201);
    const seen = [];
    let after;
    for (let page = 0; page < 100; page++) {
      const q = after === undefined ? "?limit=2" : `?limit=2&after=${encodeURIComponent(after)}`;
      const r = await svc.int("GET", `/internal/users${q}`, { key: apiKey });
      assert.equal(r.status, 200, show(r));
      const list = r.json.users;
      assert.ok(Array.isArray(list), `"users" is a list: ${show(r)}`);
      assert.ok(list.length <= 2, "limit honoured");
      for (const item of list) {
        const name = item.userId;
        assert.equal(typeof name, "string", `each item names its user: ${JSON.stringify(item)}`);
        seen.push(name);
      }
      const next = r.json.next;
      if (!next || list.length === 0) break;
      after = next;
    }
    for (const u of users) assert.equal(seen.filter((s) => s === u).length, 1, `${u} listed exactly once`);
    const sorted = [...seen].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
    assert.deepEqual(seen, sorted, "ordered by user id");
    for (const q of ["?limit=abc", "?limit=0", "?limit=-1", "?limit=100000"]) {
      assertError(await svc.int("GET", `/internal/users${q}`, { key: apiKey }), 400, BAD_REQUEST, `list ${q}`);
    }
  });

  test("internal identities: standalone create (with token), token/revoke/delete by ACS id; 404 unknown", async () => {
    const c = await svc.int("POST", "/internal/identities", { key: apiKey });
    assert.equal(c.status, 201, show(c));
    const id = jsonStrings(c.json).find((s) => /^8:acs:/.test(s));
    assertAcsIdString(id, "standalone identity");

    const ct = await svc.int("POST", "/internal/identities", { key: apiKey, body: { scopes: ["voip"], expiresInMinutes: 60 } });
    assert.equal(ct.status, 201, show(ct));
    assert.match(String(ct.headers["cache-control"]), /no-store/i, "identity+token answer is not cached");
    assert.equal(typeof ct.json.token, "string", `token in the same answer: ${show(ct)}`);
    const gid = jsonStrings(ct.json).find((s) => /^8:acs:/.test(s));
    assertAcsIdString(gid, "guest identity");
    assert.equal((await emu.validate(ct.json.token)).identity, gid, "token belongs to the new identity");
    assertError(await svc.int("POST", "/internal/identities", { key: apiKey, body: { scopes: ["voip.join"] } }), 403, "forbidden",
      "identity forbidden scope");
    assertError(await svc.int("POST", "/internal/identities", { key: apiKey, body: { expiresInMinutes: 5000 } }), 400,
      "invalid_request", "identity bad lifetime");
    assertError(await svc.int("POST", "/internal/identities", { key: apiKey, body: "nope" }), 400, "malformed", "identity bad JSON");

    const p = `/internal/identities/${encodeURIComponent(id)}`;
    const t = assertTokenResponse(await svc.int("POST", `${p}/token`, { key: apiKey, body: { scopes: ["chat"] } }),
      { withUser: false, scopes: ["chat"], what: "token by ACS id" });
    assert.equal((await emu.validate(t.token)).identity, id);
    // The id also works unencoded (":" is legal in a path segment).
    assertTokenResponse(await svc.int("POST", `/internal/identities/${id}/token`, { key: apiKey }),
      { withUser: false, what: "token by raw ACS id" });
    assertError(await svc.int("POST", `${p}/token`, { key: apiKey, body: { scopes: ["voip.join"] } }), 403, "forbidden",
      "token by id forbidden scope");
    assertError(await svc.int("POST", `${p}/token`, { key: apiKey, body: "[1," }), 400, "malformed", "token by id bad JSON");
    assertError(await svc.int("POST", `${p}/token`, { key: apiKey, body: { expiresInMinutes: 1441 } }), 400, "invalid_request",
      "token by id bad lifetime");
    const rv = await svc.int("POST", `${p}/revoke`, { key: apiKey });
    assert.equal(rv.status, 204, show(rv));
    assert.equal((await emu.validate(t.token)).reason, "revoked");
    const d = await svc.int("DELETE", p, { key: apiKey });
    assert.equal(d.status, 204, show(d));
    assert.equal((await emu.validate(t.token)).reason, "deleted");
    assertError(await svc.int("POST", `${p}/token`, { key: apiKey }), 404, "not_found", "token for a deleted identity");
    assert.equal((await svc.int("DELETE", p, { key: apiKey })).status, 204, "DELETE again is 204");

    // An identity this service does not know (here: created directly at the emulator's resource id
    // pattern but never mapped) is 404, never proxied.
    const unknown = `/internal/identities/${encodeURIComponent(id.replace(/_[0-9a-f-]+$/i, `_${randomUUID()}`))}`;
    assertError(await svc.int("POST", `${unknown}/token`, { key: apiKey }), 404, "not_found", "token for unknown id");
    assertError(await svc.int("POST", `${unknown}/revoke`, { key: apiKey }), 404, "not_found", "revoke unknown id");
    for (const [m, path] of [["POST", "/internal/identities"], ["POST", `${p}/token`], ["POST", `${p}/revoke`], ["DELETE", p]]) {
      assertUnauthorized(await svc.int(m, path), `${m} ${path} without key`);
    }
  });

  test("CORS: preflight 204 for listed origins, 403 otherwise; actual requests served, ACAO for the allowed origin only", async () => {
    const pre = (origin, method = "GET") => svc.pub("OPTIONS", "/api/token", {
      headers: { origin, "access-control-request-method": method, "access-control-request-headers": "authorization, content-type" },
    });
    const ok = await pre(ORIGIN);
    assert.equal(ok.status, 204, `allowed preflight: ${show(ok)}`);
    assert.equal(ok.headers["access-control-allow-origin"], ORIGIN);
    const methods = String(ok.headers["access-control-allow-methods"] || "").toUpperCase();
    for (const m of ["GET", "POST"]) assert.ok(methods.includes(m), `Allow-Methods ${methods} has ${m}`);
    const hdrs = String(ok.headers["access-control-allow-headers"] || "").toLowerCase();
    for (const h of ["authorization", "content-type"]) assert.ok(hdrs.includes(h), `Allow-Headers ${hdrs} has ${h}`);
    assert.match(String(ok.headers["access-control-max-age"] || ""), /^\d+$/, "Max-Age");
    assert.match(String(ok.headers.vary || ""), /origin/i, "Vary: Origin");
    // Issue 12: a listed origin may send credentials (the session refresh cookie).
    assert.equal(ok.headers["access-control-allow-credentials"], "true", "credentials for a listed origin");
    const ok2 = await pre("http://localhost:3000", "POST");
    assert.equal(ok2.status, 204, "second listed origin");
    assert.equal(ok2.headers["access-control-allow-origin"], "http://localhost:3000");

    for (const origin of ["https://evil.example", "https://app.example.evil", "http://app.example", "null"]) {
      const no = await pre(origin);
      assert.equal(no.status, 403, `preflight from ${origin}: ${show(no)}`);
      assert.equal(no.headers["access-control-allow-origin"], undefined, `no ACAO for ${origin}`);
    }

    const t = bearer(uid("cors"));
    const got = await svc.pub("GET", "/api/token", { token: t, headers: { origin: ORIGIN } });
    assert.equal(got.status, 200, show(got));
    assert.equal(got.headers["access-control-allow-origin"], ORIGIN, "actual request: ACAO echoes the origin");
    assert.equal(got.headers["access-control-allow-credentials"], "true", "actual request: credentials allowed");
    assert.match(String(got.headers.vary || ""), /origin/i);
    const err = await svc.pub("GET", "/api/token", { headers: { origin: ORIGIN } });
    assert.equal(err.status, 401);
    assert.equal(err.headers["access-control-allow-origin"], ORIGIN, "errors carry ACAO too, so the browser can read them");
    const evil = await svc.pub("GET", "/api/token", { token: t, headers: { origin: "https://evil.example" } });
    assert.equal(evil.headers["access-control-allow-origin"], undefined, "no ACAO for an unlisted origin");
    assert.equal(evil.headers["access-control-allow-credentials"], undefined, "no credentials for an unlisted origin");
    // README "CORS": an actual request from another origin is answered on its merits (not 403:
    // only preflights are refused), without ACAO, so a browser withholds the answer.
    assert.equal(evil.status, 200, `actual request from an unlisted origin is served: ${show(evil)}`);
    assert.match(String(evil.headers.vary || ""), /origin/i, "Vary: Origin on the unlisted origin's answer");
    const evilErr = await svc.pub("GET", "/api/user", { headers: { origin: "https://evil.example" } });
    assert.equal(evilErr.status, 401, `no bearer: 401 whatever the origin: ${show(evilErr)}`);
    assert.equal(evilErr.headers["access-control-allow-origin"], undefined, "no ACAO on the error either");
  });

  test("SIGTERM: a request waiting on ACS is finished, then exit 0", async () => {
    assert.equal((await svc.pub("GET", "/healthz")).status, 200);
    const t = bearer(uid("inflight"));
    const s0 = await emu.stats();
    const f = await emu.request("PUT", "/emulator/faults", { latency_ms: 1500, ops: ["create", "issue"] });
    assert.ok(f.status >= 200 && f.status < 300, `PUT faults -> ${f.status}`);
    try {
      const pending = svc.pub("GET", "/api/token", { token: t });
      // Wait until the upstream call has reached the emulator: the request is in flight.
      const reached = await pollUntil(async () => {
        const s = await emu.stats();
        return s.requests.create + s.requests.issue > s0.requests.create + s0.requests.issue;
      }, { deadlineMs: 10_000, intervalMs: 20 });
      assert.ok(reached, "the token request reached the emulator");
      const stopping = svc.stop();
      const r = await pending;
      assertTokenResponse(r, { what: "in-flight request during SIGTERM" });
      const exit = await stopping;
      assert.deepEqual([exit.code, exit.signal], [0, null], `exit after SIGTERM: ${JSON.stringify(exit)}\n${svc.stderrTail(3000)}`);
    } finally {
      await emu.request("DELETE", "/emulator/faults");
    }
    await assert.rejects(svc.pub("GET", "/healthz"), "nothing listens after the exit");
  });
});
