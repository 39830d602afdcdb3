// tokenvend serve, black box: caller limits (issue 10, part 3). Per app user on the public API,
// per API key on the internal API, per client address on the public API (with and without
// trusted proxies), and the failed-login limit per user name. Beyond a limit: 429
// rate_limited with Retry-After; other callers are unaffected.
// The windows are long (60 s) so that no test depends on how fast the machine answers: a
// burst of N is N requests at any pace shorter than one refill interval (W/N = 12 s here).
// Real binaries on loopback: acs-emulator upstream, a temporary database, a local JWKS issuer.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { httpRequest, serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const pw = () => randomBytes(12).toString("base64url");
const N = 5;
const LIMIT = `${N}/60s`;

function assertLimited(res, what) {
  const e = assertError(res, 429, "rate_limited", what);
  const ra = res.headers["retry-after"];
  assert.match(String(ra), /^[1-9][0-9]*$/, `${what}: Retry-After: ${show(res)}`);
  assert.ok(Number(ra) <= 12, `${what}: one refill interval at most: ${ra}`);
  return e;
}

describe("tokenvend serve: caller limits", { skip }, () => {
  let emu;
  let jwks;
  let svc; // user + API key + login limits
  let ipSvc; // per-address limit, no trusted proxy
  let proxySvc; // per-address limit behind a trusted proxy (127.0.0.1)

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({
      emu, jwks, localAccounts: true,
      env: { TOKENVEND_LIMIT_USER: LIMIT, TOKENVEND_LIMIT_APIKEY: LIMIT, TOKENVEND_LOGIN_LIMIT: LIMIT,
        TOKENVEND_ARGON2: "t=1,m=8192,p=1" },
    });
    ipSvc = await startService({ emu, jwks, env: { TOKENVEND_LIMIT_IP: LIMIT, TOKENVEND_LIMIT_USER: "off" } });
    proxySvc = await startService({
      emu, jwks,
      env: { TOKENVEND_LIMIT_IP: LIMIT, TOKENVEND_LIMIT_USER: "off", TOKENVEND_TRUSTED_PROXIES: "127.0.0.1, 10.0.0.0/8" },
    });
  });

  after(async () => {
    await svc?.cleanup();
    await ipSvc?.cleanup();
    await proxySvc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test(`TOKENVEND_LIMIT_USER=${LIMIT}: the ${N + 1}th request of a user is 429 + Retry-After; another user is served`, async () => {
    const a = jwks.token(uid("limited"));
    for (let i = 0; i < N; i++) assert.equal((await svc.pub("GET", "/api/token", { token: a })).status, 200, `request ${i + 1}`);
    assertLimited(await svc.pub("GET", "/api/token", { token: a }), "6th token request");
    // Every authenticated request of the user counts, not only token requests.
    assertLimited(await svc.pub("GET", "/api/user", { token: a }), "the user's other routes");
    const b = jwks.token(uid("other"));
    const r = await svc.pub("GET", "/api/token", { token: b });
    assert.equal(r.status, 200, `another user: ${show(r)}`);
    const m = await svc.int("GET", "/metrics");
    assert.match(m.text, /tokenvend_caller_limit_requests_total\{limit="user",outcome="refused"\} [1-9]/);
  });

  test(`TOKENVEND_LIMIT_APIKEY=${LIMIT}: the ${N + 1}th request of a key is 429 + Retry-After; another key is served`, async () => {
    const k1 = (await svc.createApiKey(uid("k1"))).key;
    const k2 = (await svc.createApiKey(uid("k2"))).key;
    const user = uid("backend-user");
    for (let i = 0; i < N; i++) {
      const r = await svc.int("POST", `/internal/users/${user}/token`, { key: k1, body: {} });
      assert.equal(r.status, 200, `request ${i + 1}: ${show(r)}`);
    }
    assertLimited(await svc.int("POST", `/internal/users/${user}/token`, { key: k1, body: {} }), "6th with one key");
    const r = await svc.int("POST", `/internal/users/${user}/token`, { key: k2, body: {} });
    assert.equal(r.status, 200, `another key: ${show(r)}`);
    // A wrong key is refused 401 before any limit: it cannot use up a real key's allowance.
    assertError(await svc.int("GET", "/internal/users", { key: "tv_wrong" }), 401, "unauthorized");
  });

  test(`TOKENVEND_LIMIT_IP=${LIMIT} without trusted proxies: counted per peer address, before the token is checked`, async () => {
    const get = (from, headers = {}, token = undefined) =>
      httpRequest(`${ipSvc.publicUrl}/api/token`, {
        headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) }, localAddress: from,
      });
    // Unauthenticated requests count too: the limit stands before the signature check.
    for (let i = 0; i < N; i++) assertError(await get("127.0.3.1"), 401, "unauthorized", `request ${i + 1}`);
    assertLimited(await get("127.0.3.1", {}, jwks.token(uid("ip"))), "6th from one address, even with a good token");
    // X-Forwarded-For is not believed from an untrusted peer.
    assertLimited(await get("127.0.3.1", { "x-forwarded-for": "198.51.100.1" }), "a forged X-Forwarded-For");
    const other = await get("127.0.3.2", {}, jwks.token(uid("ip2")));
    assert.equal(other.status, 200, `another address: ${show(other)}`);
  });

  test(`TOKENVEND_LIMIT_IP=${LIMIT} behind a trusted proxy: counted per X-Forwarded-For client`, async () => {
    const get = (from, xff) =>
      httpRequest(`${proxySvc.publicUrl}/api/token`, {
        headers: { authorization: `Bearer ${jwks.token(uid("px"))}`, ...(xff ? { "x-forwarded-for": xff } : {}) },
        localAddress: from,
      });
    // Clients behind the proxy (127.0.0.1) are told apart by the hop the proxy appended.
    for (let i = 0; i < N; i++) assert.equal((await get("127.0.0.1", "198.51.100.1")).status, 200, `request ${i + 1}`);
    assertLimited(await get("127.0.0.1", "198.51.100.1"), "6th of one client behind the proxy");
    // Forged hops on the left change nothing; a chain of trusted proxies is walked past.
    assertLimited(await get("127.0.0.1", "203.0.113.77, 198.51.100.1"), "a forged left hop");
    assertLimited(await get("127.0.0.1", "198.51.100.1, 10.1.2.3"), "through a second trusted proxy");
    // Several header lines are one list in order: a client's own line first changes nothing.
    const lines = await httpRequest(`${proxySvc.publicUrl}/api/token`, {
      headers: { authorization: `Bearer ${jwks.token(uid("px"))}`, "x-forwarded-for": ["203.0.113.9", "198.51.100.1"] },
      localAddress: "127.0.0.1",
    });
    assertLimited(lines, "two X-Forwarded-For lines, the proxy's last");
    const r = await get("127.0.0.1", "198.51.100.2");
    assert.equal(r.status, 200, `another client behind the proxy: ${show(r)}`);
    // An untrusted peer is counted by its own address, whatever it claims.
    for (let i = 0; i < N; i++) assert.equal((await get("127.0.4.1", `198.51.100.${10 + i}`)).status, 200);
    assertLimited(await get("127.0.4.1", "198.51.100.99"), "an untrusted peer rotating its claimed address");
    // IPv6 clients behind the proxy count by /64.
    for (let i = 0; i < N; i++) assert.equal((await get("127.0.0.1", `2001:db8:1:2::${i + 1}`)).status, 200);
    assertLimited(await get("127.0.0.1", "2001:db8:1:2:ffff::1"), "another address of the same /64");
    assert.equal((await get("127.0.0.1", "2001:db8:1:3::1")).status, 200, "another /64");
  });

  test(`TOKENVEND_LOGIN_LIMIT=${LIMIT}: after ${N} wrong passwords even the right one is 429 until a failure refills; another account logs in`, async () => {
    const login = (username, password) => svc.pub("POST", "/api/login", { body: { username, password } });
    const user = { name: uid("guessed"), password: pw() };
    const other = { name: uid("bystander"), password: pw() };
    await svc.addAccount(user.name, user.password);
    await svc.addAccount(other.name, other.password);
    for (let i = 0; i < N; i++) assertError(await login(user.name, `wrong-${i}-password`), 401, "unauthorized", `guess ${i + 1}`);
    const locked = await login(user.name, user.password);
    assertLimited(locked, "the right password past the limit");
    assert.equal((await login(other.name, other.password)).status, 200, "another account");
    // Once the announced wait is over, one more attempt fits, and the right password works.
    await sleep(Number(locked.headers["retry-after"]) * 1000 + 250);
    const r = await login(user.name, user.password);
    assert.equal(r.status, 200, `after Retry-After: ${show(r)}`);
  });
});
