// tokenvend serve, black box: how ids enter. Internal path ids, the list cursor, OIDC user claims,
// oid claims, session subjects and login names follow one rule (valid UTF-8, no control
// characters, 1..256 bytes), and local accounts live in their own namespace ("local:NAME"),
// apart from OIDC subjects.
// Real binaries on loopback: acs-emulator upstream, a temporary database, a local JWKS issuer.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { request as httpRequestRaw } from "node:http";
import { after, before, describe, test } from "node:test";
import { makeTeamsAadToken, startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertTokenResponse, assertUnauthorized, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;

// Path ids the rule refuses, percent-encoded as a client sends them, with what the 400 names.
const BAD_IDS = [
  ["%C0%AF", /not valid UTF-8/, "overlong '/' (from the issue)"],
  ["%ff%fe", /not valid UTF-8/, "bytes that are never UTF-8 (from the issue)"],
  ["x%0d%0aInjected:%201", /control characters/, "CR LF header injection (from the issue)"],
  ["a%E0%80%AF", /not valid UTF-8/, "three-byte overlong"],
  ["s%ED%A0%80", /not valid UTF-8/, "a UTF-16 surrogate"],
  ["h%F4%90%80%80", /not valid UTF-8/, "above U+10FFFF"],
  ["c1%C2%85", /control characters/, "a C1 control (NEL)"],
  ["del%7F", /control characters/, "DEL"],
  ["tab%09x", /control characters/, "a tab"],
  ["a".repeat(257), /1\.\.256 bytes/, "257 bytes"],
];

// One HTTP exchange that keeps the body's raw bytes, so invalid UTF-8 cannot hide behind
// node's lenient decoding (which would turn it into U+FFFD silently).
function rawRequest(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((res, rej) => {
    const req = httpRequestRaw(url, { method, headers, agent: false }, (resp) => {
      const chunks = [];
      resp.on("data", (c) => chunks.push(c));
      resp.on("error", rej);
      resp.on("end", () => res({ status: resp.statusCode, headers: resp.headers, bytes: Buffer.concat(chunks) }));
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${url}: no answer`)));
    req.on("error", rej);
    req.end(body);
  });
}

// Decodes bytes as UTF-8 strictly and parses them as JSON; throws on either failure.
function strictJson(bytes) {
  return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
}

describe("tokenvend serve: ids and user namespaces", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let apiKey;
  const account = { name: uid("alice"), password: `pw-${randomBytes(9).toString("base64url")}` };

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({ emu, jwks, localAccounts: true });
    apiKey = (await svc.createApiKey("ids")).key;
    await svc.addAccount(account.name, account.password);
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  const int = (method, path, body) => svc.int(method, path, { key: apiKey, body });
  const login = async (username, password) => {
    const r = await svc.pub("POST", "/api/login", { body: { username, password } });
    assert.equal(r.status, 200, `login ${username}: ${show(r)}`);
    return r.json.access_token;
  };

  test("internal routes answer 400 for ids that are not UTF-8 or hold control characters, and store nothing", async () => {
    const created = (await emu.stats()).identities_created;
    const routes = [
      ["PUT", (id) => `/internal/users/${id}`, "userId"],
      ["GET", (id) => `/internal/users/${id}`, "userId"],
      ["DELETE", (id) => `/internal/users/${id}`, "userId"],
      ["POST", (id) => `/internal/users/${id}/token`, "userId"],
      ["POST", (id) => `/internal/users/${id}/revoke`, "userId"],
      ["POST", (id) => `/internal/identities/${id}/token`, "acsId"],
      ["POST", (id) => `/internal/identities/${id}/revoke`, "acsId"],
      ["DELETE", (id) => `/internal/identities/${id}`, "acsId"],
    ];
    for (const [enc, why, what] of BAD_IDS) {
      for (const [method, path, param] of routes) {
        const r = await int(method, path(enc), method === "POST" && path(enc).endsWith("/token") ? {} : undefined);
        const e = assertError(r, 400, "invalid_request", `${method} ${path("<" + what + ">")}`);
        assert.match(e.message, why, `${what}: the message says what is wrong (${e.message})`);
        assert.ok(e.message.startsWith(param), `${what}: the message names ${param} (${e.message})`);
        assert.ok(!e.message.includes("Injected"), "the message does not echo the id");
      }
    }
    // NUL never gets this far: the router refuses %00 in a path parameter.
    assertError(await int("PUT", "/internal/users/a%00b"), 400, undefined, "NUL in the id");
    assert.equal((await emu.stats()).identities_created, created, "no identity was created upstream");

    // The listing is strict JSON (UTF-8 included) and holds none of them.
    const list = await rawRequest(`${svc.internalUrl}/internal/users?limit=1000`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    assert.equal(list.status, 200);
    const users = strictJson(list.bytes).users.map((u) => u.userId);
    for (const id of users) assert.ok(!/[\u0000-\u001f\u007f-\u009f\ufffd]/.test(id), `listed id ${JSON.stringify(id)}`);

    // The cursor is an id too.
    for (const [enc, why] of [["%ff%fe", /not valid UTF-8/], ["x%0d%0aInjected:%201", /control characters/], ["a".repeat(257), /1\.\.256/]]) {
      const e = assertError(await int("GET", `/internal/users?after=${enc}`), 400, "invalid_request", "bad after");
      assert.match(e.message, why);
    }
    assert.equal((await int("GET", "/internal/users?after=zzz&limit=5")).status, 200, "a valid cursor");
    assert.equal((await int("GET", "/internal/users?after=&limit=5")).status, 200, "an empty cursor is the start");

    // Ids that pass the rule, non-ASCII included, work.
    const good = `j\u00fcrgen-${randomUUID().slice(0, 8)}`;
    const put = await int("PUT", `/internal/users/${encodeURIComponent(good)}`);
    assert.equal(put.status, 201, show(put));
    assert.equal(put.json.userId, good);
  });

  test("a local account and an OIDC user with the same name get different identities", async () => {
    const session = await login(account.name, account.password);
    const local = assertTokenResponse(await svc.pub("GET", "/api/token", { token: session }), { what: "local account" });
    const oidcToken = jwks.token(account.name);
    const oidc = assertTokenResponse(await svc.pub("GET", "/api/token", { token: oidcToken }), { what: "OIDC user" });
    assert.notEqual(local.userId, oidc.userId, "one identity each");

    // Internal routes name the local account's user "local:NAME" and the OIDC user by its subject.
    const asLocal = await int("GET", `/internal/users/local:${account.name}`);
    assert.equal(asLocal.status, 200, show(asLocal));
    assert.equal(asLocal.json.acsUserIdentity, local.userId);
    assert.equal(asLocal.json.userId, `local:${account.name}`);
    const asOidc = await int("GET", `/internal/users/${account.name}`);
    assert.equal(asOidc.status, 200, show(asOidc));
    assert.equal(asOidc.json.acsUserIdentity, oidc.userId);

    // Neither can act on the other's identity: the OIDC user deletes its own, the account's stays.
    assert.equal((await svc.pub("DELETE", "/api/user", { token: oidcToken })).status, 204);
    assert.equal((await int("GET", `/internal/users/${account.name}`)).status, 404, "the OIDC user's mapping is gone");
    const still = await svc.pub("GET", "/api/user", { token: session });
    assert.equal(still.status, 200, show(still));
    assert.equal(still.json.acsUserIdentity, local.userId, "the local account keeps its identity");

    // No OIDC subject can name a local account.
    for (const sub of [`local:${account.name}`, "local:", "local:someone"]) {
      assertUnauthorized(await svc.pub("GET", "/api/token", { token: jwks.token(sub) }), `OIDC sub ${sub}`);
      assertUnauthorized(await svc.pub("GET", "/api/user", { token: jwks.token(sub) }), `OIDC sub ${sub}`);
    }
    const again = await int("GET", `/internal/users/local:${account.name}`);
    assert.equal(again.json.acsUserIdentity, local.userId, "the account's mapping is untouched");
  });

  test("user claims, oid claims and login names follow the id rule", async () => {
    for (const sub of ["u\u0001x", "u\r\nInjected: 1", "u\u007f", "u\u0085", "u\u009f"]) {
      assertUnauthorized(await svc.pub("GET", "/api/token", { token: jwks.token(sub) }), `sub ${JSON.stringify(sub)}`);
    }
    const ok = assertTokenResponse(await svc.pub("GET", "/api/token", { token: jwks.token(uid("\u00e9l\u00e8ve")) }),
      { what: "a non-ASCII sub" });
    assert.ok(ok.userId);

    // An oid that breaks the rule is unusable: the caller has none, so a Teams exchange is
    // refused before anything goes to ACS, even when the Teams token carries the same bytes.
    const badOid = `${randomUUID()}\u0001`;
    const before = (await emu.stats()).requests.teams_exchange;
    const r = await svc.pub("GET", "/api/token/teams", {
      token: jwks.token(uid("teams"), { claims: { oid: badOid } }),
      headers: { "teams-user-aad-token": makeTeamsAadToken({ oid: badOid, appid: randomUUID() }) },
    });
    assertError(r, 403, "forbidden", "oid with a control character");
    assert.equal((await emu.stats()).requests.teams_exchange, before, "ACS was not called");

    // Login names: the same rule (a name with a control character is not a name).
    assertError(await svc.pub("POST", "/api/login", { body: { username: "a\u0001b", password: "whatever-long" } }),
      400, "invalid_request", "login name with a control character");
  });
});
