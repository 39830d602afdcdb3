// Review of issue 12 (examples/web): the page is told when to try again after a 429.
//
// examples/web/src/service.mjs reads the wait from the Retry-After header, or else from "retry
// after N s" in the error message (README "CORS" says a page reads it "from the error message
// where the service writes it there"). A page on another origin can read a response header only
// when Access-Control-Expose-Headers names it, and tokenvend exposes X-Request-Id alone. The
// login limit's 429 (the one a person at the example page meets) writes "try again later" with no
// number. So a browser page on an allowed origin cannot learn the wait at all: the example falls
// back to "Wait a few minutes" and its retry timer to a fixed 10 s, whatever the service said.
// This checks, as a browser would see it, that an allowed origin can learn the wait of a 429.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const ORIGIN = "http://127.0.0.1:18082";
const LIMIT = 2;

describe("review12b: a 429 tells an allowed origin when to try again", { skip }, () => {
  let emu;
  let svc;

  before(async () => {
    emu = await startEmulator();
    svc = await startService({
      emu,
      localAccounts: true,
      env: { TOKENVEND_CORS_ORIGINS: ORIGIN, TOKENVEND_LOGIN_LIMIT: `${LIMIT}/600s` },
    });
    await svc.addAccount("locked-out", "the-right-password-42");
  });

  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
  });

  test("login limit: the wait is readable by the page (exposed header, or in the message)", async () => {
    const login = (password) => svc.pub("POST", "/api/login", {
      headers: { origin: ORIGIN }, body: { username: "locked-out", password } });
    for (let i = 0; i < LIMIT; i++) assert.equal((await login(`wrong-${i}`)).status, 401);
    const r = await login("the-right-password-42");
    assert.equal(r.status, 429, show(r));
    assert.equal(r.headers["access-control-allow-origin"], ORIGIN, show(r));
    assert.match(String(r.headers["retry-after"]), /^[1-9][0-9]*$/, show(r));
    const exposed = String(r.headers["access-control-expose-headers"] || "").split(/\s*,\s*/).map((h) => h.toLowerCase());
    const inMessage = /retry after \d+ s/.test(String(r.json?.error?.message));
    assert.ok(exposed.includes("retry-after") || inMessage,
      `a cross-origin page sees neither Retry-After (exposed: ${JSON.stringify(exposed)}) nor the wait in ` +
      `the message (${JSON.stringify(r.json?.error?.message)}): ${show(r)}`);
  });
});
