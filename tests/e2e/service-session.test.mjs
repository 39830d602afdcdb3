// tokenvend serve, local-account session renewal and logout (issue 12): POST /api/login sets the
// tv_refresh cookie (HttpOnly, Secure, SameSite=Strict, Path=/api/session); POST
// /api/session/refresh rotates it and returns a working session token; a rotated cookie used
// again is a reuse that ends the whole family; logout, `account passwd` and `account logout`
// end it too; an idle token expires; foreign origins, wrong content types and odd Cookie
// headers are refused; a preflight from a listed origin allows credentials; two refreshes racing
// with one cookie give exactly one 200; no refresh token ever reaches the service's log.
// Named service-* so run-tests.sh also runs it with TV_TEST_STORE=pg.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { newPgDatabase, pollUntil, serveSkipReason, startService, storeIsPg } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const pw = () => `pw-${randomBytes(12).toString("base64url")}`;
const ORIGIN = "http://127.0.0.1:5999";
const JSON_CT = { "content-type": "application/json" };

// The tv_refresh value a reply sets ("" for a clearing cookie), and the whole Set-Cookie line.
function refreshCookie(r) {
  const lines = [].concat(r.headers["set-cookie"] || []).filter((l) => l.startsWith("tv_refresh="));
  assert.equal(lines.length, 1, `one tv_refresh Set-Cookie: ${JSON.stringify(r.headers["set-cookie"])}`);
  return { value: lines[0].slice("tv_refresh=".length).split(";")[0], line: lines[0] };
}

function assertCookieAttrs(line, { cleared = false } = {}) {
  const attrs = line.split(";").slice(1).map((a) => a.trim());
  for (const a of ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/session"]) {
    assert.ok(attrs.includes(a), `${a} in ${line}`);
  }
  const age = attrs.find((a) => a.startsWith("Max-Age="));
  assert.ok(age, `Max-Age in ${line}`);
  if (cleared) {
    assert.equal(age, "Max-Age=0", line);
    // Exactly as the contract shared with the browser example (issue 12) writes it.
    assert.equal(line, "tv_refresh=; Path=/api/session; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
  } else {
    assert.ok(Number(age.slice(8)) > 0, line);
    assert.match(line, /^tv_refresh=[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}; Path=\/api\/session; Max-Age=\d+; HttpOnly; Secure; SameSite=Strict$/);
  }
}

// The audit rows of action as "app_user_id|outcome|detail" lines, on either store.
async function auditRows(svc, action) {
  const sql = `SELECT app_user_id || '|' || outcome || '|' || detail FROM audit WHERE action = '${action}' ORDER BY id`;
  if (storeIsPg()) {
    const { pg } = await newPgDatabase(); // the shared cluster's handle (the database is unused)
    return (await pg.psql(svc.dbPath, sql)).stdout;
  }
  const r = spawnSync("sqlite3", [svc.dbPath, sql], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe("tokenvend serve: session refresh cookie and logout", { skip }, () => {
  let emu;
  let svc;
  const seenValues = new Set();

  before(async () => {
    emu = await startEmulator();
    svc = await startService({
      emu,
      localAccounts: true,
      env: { TOKENVEND_ARGON2: "t=1,m=8192,p=1", TOKENVEND_CORS_ORIGINS: ORIGIN, TOKENVEND_LOGIN_LIMIT: "off" },
    });
  });

  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
  });

  const login = async (name, password) => {
    const r = await svc.pub("POST", "/api/login", { body: { username: name, password } });
    assert.equal(r.status, 200, `login: ${show(r)}`);
    const c = refreshCookie(r);
    seenValues.add(c.value);
    return { r, cookie: c.value, line: c.line };
  };
  const refresh = async (cookie, { headers = {}, body = "{}" } = {}) => {
    const h = { ...JSON_CT, ...headers };
    if (cookie !== undefined) h.cookie = `tv_refresh=${cookie}`;
    const r = await svc.pub("POST", "/api/session/refresh", { headers: h, body });
    if (r.status === 200) seenValues.add(refreshCookie(r).value);
    return r;
  };
  const logout = (cookie, headers = {}) =>
    svc.pub("POST", "/api/session/logout", {
      headers: { ...JSON_CT, ...headers, ...(cookie !== undefined ? { cookie: `tv_refresh=${cookie}` } : {}) },
      body: "{}",
    });
  const account = async (name) => {
    const password = pw();
    await svc.addAccount(name, password);
    return password;
  };

  test("login sets the cookie; refresh rotates it and returns a working session token", async () => {
    const name = uid("ren");
    const { r, cookie, line } = await login(name, await account(name));
    assertCookieAttrs(line);
    assert.ok(r.json.refresh_expires_in > 0 && r.json.refresh_expires_in <= 12 * 3600, show(r));
    assert.equal(r.json.token_type, "Bearer");

    const f = await refresh(cookie);
    assert.equal(f.status, 200, `refresh: ${show(f)}`);
    const next = refreshCookie(f);
    assertCookieAttrs(next.line);
    assert.notEqual(next.value, cookie, "a new cookie");
    assert.equal(f.json.token_type, "Bearer");
    assert.ok(f.json.expires_in > 0 && f.json.refresh_expires_in > 0, show(f));
    assert.equal(f.headers["cache-control"], "no-store");
    const tok = await svc.pub("GET", "/api/token", { token: f.json.access_token });
    assert.equal(tok.status, 200, `GET /api/token with the refreshed session token: ${show(tok)}`);

    // The next rotation works from the new cookie: a chain, not one step.
    const f2 = await refresh(next.value);
    assert.equal(f2.status, 200, show(f2));
  });

  test("reusing a rotated cookie is refused and ends the family: the newest cookie dies too", async () => {
    const name = uid("reuse");
    const { cookie } = await login(name, await account(name));
    const f = await refresh(cookie);
    assert.equal(f.status, 200, show(f));
    const fresh = refreshCookie(f).value;

    const again = await refresh(cookie);
    assert.equal(again.status, 401, `reuse: ${show(again)}`);
    assert.equal(again.json.error.code, "unauthorized");
    assertCookieAttrs(refreshCookie(again).line, { cleared: true });
    assert.equal(refreshCookie(again).value, "");

    const dead = await refresh(fresh);
    assert.equal(dead.status, 401, `the family's newest cookie after the reuse: ${show(dead)}`);

    const audit = await auditRows(svc, "login_refresh_reuse");
    assert.ok(audit.includes(`local:${name}|`), `audit row for the reuse: ${audit}`);
    for (const v of [cookie, fresh]) assert.ok(!audit.includes(v.split(".")[1]), "no token in the audit");
  });

  test("logout: 204 with a clearing cookie, then the cookie is dead; without a cookie also 204", async () => {
    const name = uid("out");
    const { cookie } = await login(name, await account(name));
    const out = await logout(cookie);
    assert.equal(out.status, 204, show(out));
    assertCookieAttrs(refreshCookie(out).line, { cleared: true });
    const r = await refresh(cookie);
    assert.equal(r.status, 401, `refresh after logout: ${show(r)}`);
    const none = await logout(undefined);
    assert.equal(none.status, 204, `logout without a cookie: ${show(none)}`);
    const unknown = await logout(`${"A".repeat(22)}.${"B".repeat(43)}`);
    assert.equal(unknown.status, 204, `logout with an unknown cookie: ${show(unknown)}`);
    const audit = await auditRows(svc, "logout");
    assert.ok(audit.includes(`local:${name}|`), `audit row for the logout: ${audit}`);
  });

  test("no, unknown or malformed cookie: 401 unauthorized with a clearing cookie", async () => {
    const name = uid("hostile");
    const { cookie } = await login(name, await account(name));
    const shaped = (ch) => `${ch}${cookie.slice(1)}`; // the real cookie's shape, one byte changed
    for (const c of [undefined, "", "garbage", `${"A".repeat(22)}.${"B".repeat(43)}`, `"${"A".repeat(22)}.${"B".repeat(43)}"`,
      shaped("\xff"), // a byte that is not UTF-8, sent as is (latin1)
      shaped("%"), shaped("+"), `${cookie.slice(0, 22)}${cookie.slice(23)}x`, // no dot
      cookie.slice(0, -1), `${cookie}A`, "A".repeat(4000)]) {
      const r = await refresh(c);
      assert.equal(r.status, 401, `cookie ${JSON.stringify(c)}: ${show(r)}`);
      assert.equal(r.json.error.code, "unauthorized");
      assertCookieAttrs(refreshCookie(r).line, { cleared: true });
    }
    // A control byte in the value (node refuses to send one): read off the wire.
    const u = new URL(svc.publicUrl);
    const raw = await new Promise((res, rej) => {
      const s = connect(Number(u.port), u.hostname, () => s.end(
        `POST /api/session/refresh HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: 2\r\nCookie: tv_refresh=\x01${cookie.slice(1)}\r\nConnection: close\r\n\r\n{}`));
      let d = "";
      s.setEncoding("latin1");
      s.on("data", (c) => (d += c));
      s.on("error", rej);
      s.on("close", () => res(d));
    });
    assert.match(raw, /^HTTP\/1\.1 (400|401) /, `a control byte in the cookie: ${raw.slice(0, 300)}`);
    assert.ok(!raw.includes(cookie.slice(23)), "the answer does not echo the cookie's secret");
    // None of them used up or ended the real cookie: it still rotates.
    const ok = await refresh(cookie);
    assert.equal(ok.status, 200, `the real cookie after the hostile ones: ${show(ok)}`);
  });

  test("account passwd and account logout end the family (and account logout the session token)", async () => {
    const name = uid("pwd");
    const password = await account(name);
    const a = await login(name, password);
    const p = await svc.cli(["account", "passwd", name], { input: `${pw()}\n` });
    assert.equal(p.code, 0, p.stderr);
    const r = await refresh(a.cookie);
    assert.equal(r.status, 401, `refresh after passwd: ${show(r)}`);

    const name2 = uid("lo");
    const b = await login(name2, await account(name2));
    const before = await svc.pub("GET", "/api/token", { token: b.r.json.access_token });
    assert.equal(before.status, 200, show(before));
    const lo = await svc.cli(["account", "logout", name2]);
    assert.equal(lo.code, 0, lo.stderr);
    assert.deepEqual(JSON.parse(lo.stdout), { name: name2, loggedOut: true });
    const r2 = await refresh(b.cookie);
    assert.equal(r2.status, 401, `refresh after account logout: ${show(r2)}`);
    const ended = await pollUntil(async () => (await svc.pub("GET", "/api/token", { token: b.r.json.access_token })).status === 401,
      { deadlineMs: 10_000, intervalMs: 100 });
    assert.ok(ended, "the session token stops working after account logout");
    const unknownAcct = await svc.cli(["account", "logout", uid("nobody")]);
    assert.equal(unknownAcct.code, 1, unknownAcct.stderr);
  });

  test("origin, content type, body and Cookie header rules", async () => {
    const name = uid("rules");
    const { cookie } = await login(name, await account(name));
    const evil = await refresh(cookie, { headers: { origin: "https://evil.example" } });
    assert.equal(evil.status, 403, `foreign origin: ${show(evil)}`);
    const evilOut = await logout(cookie, { origin: "http://127.0.0.1:1" });
    assert.equal(evilOut.status, 403, `foreign origin, logout: ${show(evilOut)}`);
    const text = await refresh(cookie, { headers: { "content-type": "text/plain" } });
    assert.equal(text.status, 415, `text/plain: ${show(text)}`);
    assert.match(text.json.error.message, /application\/json/);
    const form = await refresh(cookie, { headers: { "content-type": "application/x-www-form-urlencoded" } });
    assert.equal(form.status, 415, show(form));
    const body = await refresh(cookie, { body: '{"x":1}' });
    assert.equal(body.status, 400, `a body other than {}: ${show(body)}`);
    const dup = await svc.pub("POST", "/api/session/refresh", {
      headers: { ...JSON_CT, cookie: `a=b; tv_refresh=${cookie};  other=1; tv_refresh=${cookie}` }, body: "{}" });
    assert.equal(dup.status, 400, `duplicate tv_refresh: ${show(dup)}`);
    // More Cookie lines than the service reads (8): refused whole, over a raw socket since
    // node's client joins cookie lines into one.
    const u = new URL(svc.publicUrl);
    const lines = Array.from({ length: 9 }, (_, i) => `Cookie: c${i}=${i}\r\n`).join("");
    const raw = await new Promise((res, rej) => {
      const s = connect(Number(u.port), u.hostname, () => s.end(
        `POST /api/session/refresh HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\n` +
        `Content-Length: 2\r\n${lines}Cookie: tv_refresh=${cookie}\r\nConnection: close\r\n\r\n{}`));
      let d = "";
      s.setEncoding("utf8");
      s.on("data", (c) => (d += c));
      s.on("error", rej);
      s.on("close", () => res(d));
    });
    assert.match(raw, /^HTTP\/1\.1 400 /, `ten Cookie lines: ${raw.slice(0, 300)}`);
    // None of these used the cookie up: it still rotates, amid other cookies and spaces, from
    // the listed origin and from the listener's own.
    const own = new URL(svc.publicUrl).origin;
    const ok = await svc.pub("POST", "/api/session/refresh", {
      headers: { ...JSON_CT, origin: own, cookie: `theme=dark;  tv_refresh=${cookie} ; x="y"` }, body: "" });
    assert.equal(ok.status, 200, `own origin, several cookies, empty body: ${show(ok)}`);
    seenValues.add(refreshCookie(ok).value);
    const listed = await refresh(refreshCookie(ok).value, { headers: { origin: ORIGIN } });
    assert.equal(listed.status, 200, `listed origin: ${show(listed)}`);
    assert.equal(listed.headers["access-control-allow-origin"], ORIGIN);
    assert.equal(listed.headers["access-control-allow-credentials"], "true");
  });

  test("a preflight from a listed origin allows credentials and Content-Type", async () => {
    for (const path of ["/api/session/refresh", "/api/session/logout", "/api/login"]) {
      const r = await svc.pub("OPTIONS", path, {
        headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
      assert.equal(r.status, 204, `${path}: ${show(r)}`);
      assert.equal(r.headers["access-control-allow-origin"], ORIGIN);
      assert.equal(r.headers["access-control-allow-credentials"], "true");
      assert.match(String(r.headers["access-control-allow-headers"]).toLowerCase(), /content-type/);
      assert.match(String(r.headers["access-control-allow-methods"]), /POST/);
    }
    const no = await svc.pub("OPTIONS", "/api/session/refresh", {
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(no.status, 403, show(no));
  });

  test("two refreshes racing with one cookie: exactly one 200", async () => {
    for (let round = 0; round < 5; round++) {
      const name = uid("race");
      const { cookie } = await login(name, await account(name));
      const rs = await Promise.all([refresh(cookie), refresh(cookie)]);
      const codes = rs.map((r) => r.status).sort();
      assert.deepEqual(codes, [200, 401], `round ${round}: ${rs.map(show).join(" | ")}`);
    }
  });

  test("idle expiry with a short TTL; session_refresh_ttl = 0 turns the routes off", async () => {
    const short = await startService({
      emu, localAccounts: true, env: { TOKENVEND_ARGON2: "t=1,m=8192,p=1", TOKENVEND_SESSION_REFRESH_TTL: "2s" },
    });
    const off = await startService({
      emu, localAccounts: true, env: { TOKENVEND_ARGON2: "t=1,m=8192,p=1", TOKENVEND_SESSION_REFRESH_TTL: "0" },
    });
    try {
      const name = uid("exp");
      const password = pw();
      await short.addAccount(name, password);
      const l = await short.pub("POST", "/api/login", { body: { username: name, password } });
      assert.equal(l.status, 200, show(l));
      assert.ok(l.json.refresh_expires_in <= 2, show(l));
      const c = refreshCookie(l).value;
      await sleep(3000);
      const r = await short.pub("POST", "/api/session/refresh", { headers: { ...JSON_CT, cookie: `tv_refresh=${c}` }, body: "{}" });
      assert.equal(r.status, 401, `expired: ${show(r)}`);

      await off.addAccount(name, password);
      const l2 = await off.pub("POST", "/api/login", { body: { username: name, password } });
      assert.equal(l2.status, 200, show(l2));
      assert.equal(l2.headers["set-cookie"], undefined, "no cookie when off");
      assert.equal(l2.json.refresh_expires_in, undefined);
      for (const path of ["/api/session/refresh", "/api/session/logout"]) {
        const r404 = await off.pub("POST", path, { headers: JSON_CT, body: "{}" });
        assert.equal(r404.status, 404, `${path} when off: ${show(r404)}`);
      }
    } finally {
      await short.cleanup();
      await off.cleanup();
    }
  });

  test("no refresh token value ever reaches the service's log", () => {
    assert.ok(seenValues.size >= 10, `values seen: ${seenValues.size}`);
    const { stdout, stderr } = svc.logs();
    const log = stdout + stderr;
    assert.ok(log.length > 0);
    for (const v of seenValues) {
      assert.ok(!log.includes(v), "a refresh token value is in the log");
      assert.ok(!log.includes(v.split(".")[1]), "a refresh token secret is in the log");
    }
  });
});
