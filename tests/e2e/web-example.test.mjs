// examples/web in headless Chromium (Debian's chromium, driven by playwright-core) against
// tokenvend serve and acs-emulator, as a person would use it: a wrong password says so; sign in,
// a token appears and is valid at the emulator; with 16-second emulator tokens the SDK's
// credential refreshes on its own (every ~8 s: half the life of a short token) and the page's log
// shows it; an OIDC app's own bearer token works the same way; "Sign out everywhere" makes the shown token invalid at the emulator and a new one
// appears; "Delete my identity" removes the mapping; the page served from an origin not in
// cors_origins is refused by the browser and says why. Session renewal and logout (the refresh
// cookie) run in their own test, which fails when the service answers 404 to
// POST /api/session/refresh (the routes are part of the service now).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { freePorts, httpRequest, serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";
import { ensureBundle, launchChromium, requireChromium, startExampleServer } from "./lib/web.mjs";

const skip = serveSkipReason();
const TOKEN_TTL_S = 16;
const USER = "webdemo";
const PASSWORD = "web-demo-password-42";
const APP_USER = `local:${USER}`;
// Generous ceilings that only stop a hung run; nothing asserts on how long a step took.
const WAIT_MS = 45_000;

describe("examples/web in headless Chromium", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let page0; // the example on its allowed origin
  let stranger; // the same page on an origin not in cors_origins
  let browser;
  let apiKey;
  let renewalAnswer;

  before(async () => {
    requireChromium();
    ensureBundle();
    emu = await startEmulator(["--token-ttl-seconds", String(TOKEN_TTL_S)]);
    jwks = await startJwksServer();
    // The page's origin goes into cors_origins, so its port is chosen first.
    const [port] = await freePorts(1);
    svc = await startService({
      emu,
      jwks,
      localAccounts: true,
      env: { TOKENVEND_CORS_ORIGINS: `http://127.0.0.1:${port}` },
    });
    await svc.addAccount(USER, PASSWORD);
    apiKey = (await svc.createApiKey("web-example-test")).key;
    page0 = await startExampleServer(svc.publicUrl, port);
    stranger = await startExampleServer(svc.publicUrl, 0);
    browser = await launchChromium();
    renewalAnswer = await svc.pub("POST", "/api/session/refresh", { headers: { "content-type": "application/json" }, body: "{}" });
  });

  after(async () => {
    await browser?.close();
    await page0?.stop();
    await stranger?.stop();
    await svc?.cleanup();
    await emu?.stop();
    await jwks?.close();
  });

  // A fresh browser context (no cookies, no storage) on the page at url, with the page's console
  // errors collected for assertion messages.
  async function openPage(url) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const console = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") console.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => console.push(`pageerror: ${e.message}`));
    await page.goto(url);
    await page.locator("#signin").waitFor({ state: "visible", timeout: WAIT_MS });
    return { context, page, console };
  }

  async function signIn(page, password = PASSWORD) {
    await page.fill("#username", USER);
    await page.fill("#password", password);
    await page.click("#sign-in");
  }

  async function shownToken(page, other = "") {
    await page.waitForFunction((prev) => {
      const v = document.getElementById("token-value").value;
      return v && v !== prev;
    }, other, { timeout: WAIT_MS });
    return page.inputValue("#token-value");
  }

  const logLines = (page) => page.locator("#log li").allTextContents();
  const mapping = () => svc.int("GET", `/internal/users/${encodeURIComponent(APP_USER)}`, { key: apiKey });

  test("the static server: page, bundle and config.json with no-store and a CSP; nothing else", async () => {
    const page = await httpRequest(page0.url);
    assert.equal(page.status, 200, show(page));
    assert.match(page.headers["content-type"], /^text\/html/);
    assert.equal(page.headers["cache-control"], "no-store");
    assert.match(page.headers["content-security-policy"], new RegExp(`connect-src 'self' ${svc.publicUrl}(;|$)`));
    const js = await httpRequest(`${page0.url}dist/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers["content-type"], /^text\/javascript/);
    const cfg = await httpRequest(`${page0.url}config.json`);
    assert.deepEqual(cfg.json, { api: svc.publicUrl });
    for (const path of ["serve.mjs", "package.json", ".gitignore", "src/app.mjs", "dist/../serve.mjs",
      "dist/%2e%2e/serve.mjs", "%2e%2e/%2e%2e/etc/passwd", "dist%2fapp.js", "node_modules/esbuild/package.json"]) {
      const r = await httpRequest(`${page0.url}${path}`);
      assert.equal(r.status, 404, `${path}: ${show(r)}`);
    }
    const post = await httpRequest(page0.url, { method: "POST", body: "x" });
    assert.equal(post.status, 405);
  });

  test("a wrong password says so plainly", async () => {
    const { context, page } = await openPage(page0.url);
    try {
      await signIn(page, "not-the-password");
      const error = page.locator("#error");
      await error.waitFor({ state: "visible", timeout: WAIT_MS });
      assert.match(await error.textContent(), /^Wrong user name or password\./);
      assert.equal(await page.locator("#signed-in").isVisible(), false, "still signed out");
    } finally {
      await context.close();
    }
  });

  test("sign in, refresh on its own, sign out everywhere, delete the identity", async () => {
    const { context, page, console } = await openPage(page0.url);
    try {
      await signIn(page);
      const first = await shownToken(page);
      const v1 = await emu.validate(first);
      assert.equal(v1.valid, true, `the first token is valid at the emulator: ${JSON.stringify(v1)}`);
      const identity = (await page.textContent("#identity")).trim();
      assert.equal(identity, v1.identity, "the page shows the token's identity");
      const m = await mapping();
      assert.equal(m.status, 200, show(m));
      assert.equal(m.json.acsUserIdentity, identity, "the service maps the account to that identity");
      assert.match(await page.textContent("#scopes"), /chat.*voip|voip.*chat/);
      assert.match(await page.textContent("#countdown"), /^in \d+ s$/);
      assert.match(await page.textContent("#claims"), /"exp": \d+/);

      // The SDK's own timer: no click, no reload.
      const refreshed = await shownToken(page, first);
      const v2 = await emu.validate(refreshed);
      assert.equal(v2.valid, true, `the refreshed token is valid: ${JSON.stringify(v2)}`);
      assert.equal(v2.identity, identity, "the same identity");
      const lines = await logLines(page);
      assert.equal(lines.length, 2, `one line per refresher call: ${JSON.stringify(lines)}`);
      assert.match(lines[0], /first token after signing in.*new expiry/);
      assert.match(lines[1], /proactive refresh by the SDK.*new expiry/);

      await page.click("#revoke");
      const fresh = await shownToken(page, refreshed);
      const revoked = await emu.validate(refreshed);
      assert.deepEqual([revoked.valid, revoked.reason], [false, "revoked"], JSON.stringify(revoked));
      const v3 = await emu.validate(fresh);
      assert.equal(v3.valid, true, `the token after revoking is valid: ${JSON.stringify(v3)}`);
      assert.equal(v3.identity, identity, "revoking keeps the identity");
      assert.match((await logLines(page)).join("\n"), /signed out everywhere[^\n]*\n[^\n]*new credential after signing out everywhere/);

      await page.click("#delete");
      await page.locator("#new-identity").waitFor({ state: "visible", timeout: WAIT_MS });
      assert.match((await logLines(page)).at(-1), new RegExp(`identity ${identity} deleted`));
      const gone = await mapping();
      assert.equal(gone.status, 404, `no mapping after the delete: ${show(gone)}`);
      const deleted = await emu.validate(fresh);
      assert.deepEqual([deleted.valid, deleted.reason], [false, "deleted"], JSON.stringify(deleted));
      assert.equal(await page.inputValue("#token-value"), "", "the deleted identity's token is no longer shown");
      assert.equal(await page.locator("#error").isVisible(), false,
        `no error on the page: ${await page.textContent("#error")}; console: ${console.join("\n")}`);
    } finally {
      await context.close();
    }
  });

  test("an origin not in cors_origins: the browser refuses, the page names the CORS setting", async () => {
    const { context, page } = await openPage(stranger.url);
    const logBefore = readFileSync(svc.stderrPath, "utf8").length;
    try {
      await signIn(page);
      const error = page.locator("#error");
      await error.waitFor({ state: "visible", timeout: WAIT_MS });
      const text = await error.textContent();
      assert.match(text, new RegExp(`does not allow this page's origin ${stranger.origin}`), text);
      assert.match(text, /TOKENVEND_CORS_ORIGINS/, text);
      assert.equal(await page.locator("#signed-in").isVisible(), false);
      // The service saw the browser's preflight for the login and refused it; the password never
      // left the browser.
      const seen = readFileSync(svc.stderrPath, "utf8").slice(logBefore).split("\n").filter((l) => l.includes('"msg":"request"'))
        .map((l) => JSON.parse(l)).filter((r) => r.path === "/api/login");
      const preflights = seen.filter((r) => r.method === "OPTIONS");
      assert.ok(preflights.length > 0 && preflights.every((r) => r.status === 403),
        `login preflights answered 403: ${JSON.stringify(seen)}`);
      assert.equal(seen.filter((r) => r.method !== "OPTIONS").length, 0, `no login was sent: ${JSON.stringify(seen)}`);
    } finally {
      await context.close();
    }
  });

  test("an OIDC app's own bearer token, pasted: a token for that subject", async () => {
    const { context, page } = await openPage(page0.url);
    try {
      await page.click("#oidc summary");
      assert.match(await page.textContent("#oidc pre"), /Authorization: `Bearer \$\{bearer\}`/);
      await page.fill("#bearer", jwks.token("web-oidc-user"));
      await page.click("#use-bearer");
      const token = await shownToken(page);
      const v = await emu.validate(token);
      assert.equal(v.valid, true, JSON.stringify(v));
      const m = await svc.int("GET", "/internal/users/web-oidc-user", { key: apiKey });
      assert.equal(m.status, 200, show(m));
      assert.equal(m.json.acsUserIdentity, v.identity, "the token is the OIDC subject's identity");
      assert.equal(await page.textContent("#user"), "web-oidc-user");
    } finally {
      await context.close();
    }
  });

  // The routes of issue 12 (CONTRACT-session.md): a service without them fails here, never skips.
  test("session renewal with the refresh cookie, then log out", async () => {
    // Without a cookie the route answers 401 (CONTRACT-session.md); 404 means the service lost it.
    assert.equal(renewalAnswer.status, 401, `POST /api/session/refresh without a cookie: ${show(renewalAnswer)}`);
    const { context, page } = await openPage(page0.url);
    try {
      await signIn(page);
      const first = await shownToken(page);
      // Path=/api/session: asked for by that URL (HttpOnly cookies are visible to the test, not the page).
      const cookieOf = async () => (await context.cookies(`${svc.publicUrl}/api/session/refresh`)).find((c) => c.name === "tv_refresh");
      const c1 = await cookieOf();
      assert.ok(c1, "the login left a tv_refresh cookie");
      assert.equal(c1.httpOnly, true);
      assert.match(await page.textContent("#session"), /renewed automatically/);

      // A reload keeps the person signed in: the page renews with the cookie, no password.
      await page.reload();
      await page.locator("#signed-in").waitFor({ state: "visible", timeout: WAIT_MS });
      const resumed = await shownToken(page, first);
      assert.equal((await emu.validate(resumed)).valid, true);
      assert.match((await logLines(page)).join("\n"), /session renewed/);
      const c2 = await cookieOf();
      assert.ok(c2 && c2.value !== c1.value, "the cookie was rotated");
      const used = await svc.pub("POST", "/api/session/refresh", {
        headers: { "content-type": "application/json", cookie: `tv_refresh=${c1.value}` }, body: "{}" });
      assert.equal(used.status, 401, `a rotated cookie is used up: ${show(used)}`);

      // Presenting the used-up cookie revoked the family (reuse); sign in again for the logout.
      await page.reload();
      await page.locator("#signin").waitFor({ state: "visible", timeout: WAIT_MS });
      await signIn(page);
      await shownToken(page);
      const c3 = await cookieOf();
      await page.click("#logout");
      await page.locator("#signin").waitFor({ state: "visible", timeout: WAIT_MS });
      assert.match(await page.textContent("#status"), /Logged out/);
      const ended = await svc.pub("POST", "/api/session/refresh", {
        headers: { "content-type": "application/json", cookie: `tv_refresh=${c3.value}` }, body: "{}" });
      assert.equal(ended.status, 401, `the logout ended the cookie's session: ${show(ended)}`);
      await page.reload();
      await page.locator("#signin").waitFor({ state: "visible", timeout: WAIT_MS });
      assert.equal(await page.locator("#signed-in").isVisible(), false, "a reload after logging out stays signed out");
    } finally {
      await context.close();
    }
  });
});
