// tokenvend serve, black box: every route that takes a JSON body refuses a member it does not
// know with 400 in the error shape naming the first such member (with a hint when it is close to
// a known one), and an unknown scope with 400 naming it and the allowed scopes; a refused body
// changes nothing (no identity created, no token issued). The bodies the README and `make run`
// print are still accepted. Real binaries on loopback: acs-emulator upstream, a temporary
// database, a local JWKS issuer.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const ALLOWED = "chat, voip, chat.join";

describe("tokenvend serve: strict request bodies", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let apiKey;
  let guest; // an ACS identity made through the internal API, for the by-id routes
  const account = { name: uid("local"), password: `pw-${randomBytes(9).toString("base64url")}` };

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({
      emu,
      jwks,
      localAccounts: true,
      env: { TOKENVEND_ALLOWED_SCOPES: "chat,voip,chat.join", TOKENVEND_DEFAULT_SCOPES: "chat,voip" },
    });
    apiKey = (await svc.createApiKey("bodies")).key;
    await svc.addAccount(account.name, account.password);
    const g = await svc.int("POST", "/internal/identities", { key: apiKey });
    assert.equal(g.status, 201, show(g));
    guest = g.json.user.communicationUserId;
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  // Each route that takes a JSON body, as a function sending body to it.
  const routes = () => [
    ["POST /api/token", (body) => svc.pub("POST", "/api/token", { token: jwks.token(uid("u")), body })],
    ["POST /internal/users/{id}/token", (body) => svc.int("POST", `/internal/users/${uid("b")}/token`, { key: apiKey, body })],
    ["POST /internal/identities", (body) => svc.int("POST", "/internal/identities", { key: apiKey, body })],
    ["POST /internal/identities/{id}/token",
      (body) => svc.int("POST", `/internal/identities/${encodeURIComponent(guest)}/token`, { key: apiKey, body })],
  ];

  const upstreamWrites = async () => {
    const s = await emu.stats();
    return s.requests.create + s.requests.issue;
  };

  test("an unknown member is a 400 naming the first one, on every token route; nothing reaches ACS", async () => {
    const cases = [
      // The issue's example: both names misspelt; the first is named, with the close known one.
      [{ scope: ["chat"], expiresInMinute: 60 }, 'unknown field "scope"; did you mean "scopes"?'],
      [{ scopes: ["chat"], expiresInMinute: 60 }, 'unknown field "expiresInMinute"; did you mean "expiresInMinutes"?'],
      [{ expiresInMinutes: 60, lifetime: 60 }, 'unknown field "lifetime"'],
      [{ ExpiresInMinutes: 60 }, 'unknown field "ExpiresInMinutes"; did you mean "expiresInMinutes"?'],
      // Only a name is shown, never raw bytes: quote and control characters become '?'.
      ['{"a\\"b\\n":1}', 'unknown field "a?b?"'],
    ];
    for (const [what, send] of routes()) {
      for (const [body, message] of cases) {
        const before0 = await upstreamWrites();
        const r = await send(body);
        const e = assertError(r, 400, "invalid_request", `${what} ${JSON.stringify(body)}`);
        assert.equal(e.message, message, `${what} ${JSON.stringify(body)}: ${show(r)}`);
        assert.equal(await upstreamWrites(), before0, `${what}: a refused body makes no ACS call`);
      }
    }
  });

  test("an unknown scope is a 400 naming it and the allowed scopes", async () => {
    for (const [what, send] of routes()) {
      let r = await send({ scopes: ["chatt"] });
      let e = assertError(r, 400, "invalid_request", `${what} chatt`);
      assert.equal(e.message, `unknown scope "chatt"; allowed: ${ALLOWED}`, `${what}: ${show(r)}`);
      r = await send({ scopes: ["chat", "VOIP"], expiresInMinutes: 60 });
      e = assertError(r, 400, "invalid_request", `${what} VOIP`);
      assert.equal(e.message, `unknown scope "VOIP"; allowed: ${ALLOWED}`, `${what}: ${show(r)}`);
    }
  });

  test("POST /api/login: an unknown member is a 400 naming it, before any password check", async () => {
    let r = await svc.pub("POST", "/api/login", { body: { user: account.name, password: account.password } });
    let e = assertError(r, 400, "invalid_request", "login with user");
    assert.equal(e.message, 'unknown field "user"', show(r));
    r = await svc.pub("POST", "/api/login", { body: { username: account.name, pasword: account.password } });
    e = assertError(r, 400, "invalid_request", "login with pasword");
    assert.equal(e.message, 'unknown field "pasword"; did you mean "password"?', show(r));
    r = await svc.pub("POST", "/api/login", { body: { username: account.name, password: account.password, remember: true } });
    e = assertError(r, 400, "invalid_request", "login with remember");
    assert.equal(e.message, 'unknown field "remember"', show(r));
    // The right body still logs in.
    r = await svc.pub("POST", "/api/login", { body: { username: account.name, password: account.password } });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.json.token_type, "Bearer");
  });

  test("the bodies the README and make run send are accepted", async () => {
    const t = jwks.token(uid("ok"));
    let r = await svc.pub("POST", "/api/token", { token: t, body: { scopes: ["voip"], expiresInMinutes: 60 } });
    assertTokenResponse(r, { scopes: ["voip"], minutes: 60, what: "README body" });
    r = await svc.pub("POST", "/api/token", { token: t, body: {} });
    assertTokenResponse(r, { scopes: ["chat", "voip"], what: "empty object" });
    r = await svc.pub("POST", "/api/token", { token: t, body: "" });
    assertTokenResponse(r, { scopes: ["chat", "voip"], what: "empty body" });
    r = await svc.int("POST", "/internal/users/alice/token", { key: apiKey, body: {} });
    assertTokenResponse(r, { what: "make run's internal token" });
    // A standalone identity: no body, an empty object, or a token request.
    for (const body of [undefined, {}]) {
      r = await svc.int("POST", "/internal/identities", { key: apiKey, body });
      assert.equal(r.status, 201, show(r));
      assert.equal(r.json.token, undefined, `no token asked for: ${show(r)}`);
    }
    r = await svc.int("POST", "/internal/identities", { key: apiKey, body: { scopes: ["chat"] } });
    assert.equal(r.status, 201, show(r));
    assert.equal(typeof r.json.token, "string", `a token with the identity: ${show(r)}`);
  });
});
