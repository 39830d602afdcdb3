// tokenvend serve, local accounts under attack (issue 6): one client, or eight addresses, flooding
// the password checks cannot shut out another client's logins; failed logins per user name are limited
// (429 + Retry-After, even for the right password, and for names without an account alike);
// `account remove` and `account passwd` end the account's sessions within a second; the
// admin CLI refuses short passwords.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { httpRequest, pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const pw = () => `pw-${randomBytes(12).toString("base64url")}`;
// A costly Argon2 setting, so the flood below really fills the password-check queue.
const COSTLY_ARGON2 = "t=3,m=65536,p=1";
// A quarter of that cost for the eight-address flood: each check still takes long enough that
// the flood's loops keep every slot they may hold busy, and the test stays short.
const FLOOD_ARGON2 = "t=2,m=32768,p=1";
const LIMIT = 3;

describe("tokenvend serve: login limits, fairness and session ends", { skip }, () => {
  let emu;
  let svc;

  before(async () => {
    emu = await startEmulator();
    svc = await startService({
      emu,
      localAccounts: true,
      env: { TOKENVEND_ARGON2: COSTLY_ARGON2, TOKENVEND_LOGIN_LIMIT: `${LIMIT}/600s` },
    });
  });

  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
  });

  const loginFrom = (localAddress, username, password) =>
    httpRequest(`${svc.publicUrl}/api/login`, { method: "POST", body: { username, password }, localAddress });
  const login = (username, password) => svc.pub("POST", "/api/login", { body: { username, password } });
  const whoami = (token) => svc.pub("GET", "/api/user", { token });

  test("one client keeping the queue full with slow wrong logins does not shut out another client", async (t) => {
    const user = { name: uid("legit"), password: pw() };
    await svc.addAccount(user.name, user.password);
    let stop = false;
    const seen = {};
    // 40 loops from 127.0.0.2, each sending its next wrong login as soon as one is answered.
    const flood = Array.from({ length: 40 }, async () => {
      while (!stop) {
        const r = await loginFrom("127.0.0.2", uid("flood"), "wrong-guess-1234");
        seen[r.status] = (seen[r.status] || 0) + 1;
        if (r.status === 503) await sleep(50);
      }
    });
    await sleep(800); // let the flood take whatever it can
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await loginFrom("127.0.0.3", user.name, user.password));
    stop = true;
    await Promise.all(flood);
    t.diagnostic(`flood answers: ${JSON.stringify(seen)}; legit: ${results.map((r) => r.status).join(",")}`);
    for (const r of results) assert.equal(r.status, 200, `legitimate login during the flood: ${show(r)}`);
    assert.ok((seen[401] || 0) > 0, `the flood's own logins were served too: ${JSON.stringify(seen)}`);
    assert.ok((seen[503] || 0) > 0, `the flood was refused beyond its share: ${JSON.stringify(seen)}`);
  });

  test("eight addresses keeping their share of the password checks full do not shut out a ninth", async (t) => {
    // A service of its own with a cheaper Argon2 setting: the flood still keeps every slot it
    // may hold busy (each loop sends its next login as soon as one is answered), and the lone
    // client's logins do not wait long behind it.
    const own = await startService({ emu, localAccounts: true, env: { TOKENVEND_ARGON2: FLOOD_ARGON2, TOKENVEND_LOG_LEVEL: "warn" } });
    let stop = false;
    let flood = [];
    const seen = {};
    try {
      const user = { name: uid("lone"), password: pw() };
      await own.addAccount(user.name, user.password);
      const from = (localAddress, username, password) =>
        httpRequest(`${own.publicUrl}/api/login`, { method: "POST", body: { username, password }, localAddress });
      // 8 addresses x 5 loops (one more than the 4 an address may hold): before the reserve,
      // 8 x 4 held all 32 slots and a login from any other address was 503.
      const sources = Array.from({ length: 8 }, (_, i) => `127.0.1.${i + 1}`);
      flood = sources.flatMap((src) =>
        Array.from({ length: 5 }, async () => {
          while (!stop) {
            const r = await from(src, uid("flood"), "wrong-guess-1234");
            seen[r.status] = (seen[r.status] || 0) + 1;
            if (r.status === 503) await sleep(100);
          }
        }),
      );
      await sleep(1000); // let the flood take whatever it can
      const results = [];
      for (let i = 0; i < 3; i++) {
        results.push(await from("127.0.2.1", user.name, user.password));
        await sleep(100);
      }
      stop = true;
      await Promise.all(flood);
      t.diagnostic(`flood answers: ${JSON.stringify(seen)}; lone client: ${results.map((r) => r.status).join(",")}`);
      for (const r of results) assert.equal(r.status, 200, `login from a ninth address during the flood: ${show(r)}`);
      assert.ok((seen[503] || 0) > 0, `the flood was refused beyond its share: ${JSON.stringify(seen)}`);
    } finally {
      stop = true;
      await Promise.allSettled(flood);
      await own.cleanup();
    }
  });

  test(`past ${LIMIT} failed logins a name gets 429 + Retry-After, even with the right password; unknown names alike`, async () => {
    const user = { name: uid("guessed"), password: pw() };
    await svc.addAccount(user.name, user.password);
    const ghost = uid("ghost");
    for (let i = 0; i < LIMIT; i++) {
      assertError(await login(user.name, `wrong-${i}-password`), 401, "unauthorized", `wrong guess ${i + 1}`);
      assertError(await login(ghost, `wrong-${i}-password`), 401, "unauthorized", `unknown name, guess ${i + 1}`);
    }
    const locked = await login(user.name, user.password);
    const lockedGhost = await login(ghost, user.password);
    for (const [r, what] of [[locked, "right password past the limit"], [lockedGhost, "unknown name past the limit"]]) {
      assertError(r, 429, "rate_limited", what);
      assert.match(String(r.headers["retry-after"]), /^[1-9][0-9]*$/, `${what}: Retry-After: ${show(r)}`);
    }
    // Nothing tells an existing name from an unknown one.
    assert.equal(locked.json.error.message, lockedGhost.json.error.message);
    // Other names are not affected.
    const other = { name: uid("other"), password: pw() };
    await svc.addAccount(other.name, other.password);
    assert.equal((await login(other.name, other.password)).status, 200);
  });

  test("account remove ends the account's sessions within 1 s", async () => {
    const user = { name: uid("leaver"), password: pw() };
    await svc.addAccount(user.name, user.password);
    const r = await login(user.name, user.password);
    assert.equal(r.status, 200, show(r));
    const token = r.json.access_token;
    assertError(await whoami(token), 404, "not_found", "session accepted before the remove");
    assertError(await whoami(token), 404, "not_found", "again (from the verified-token cache)");
    const rm = await svc.cli(["account", "remove", user.name]);
    assert.equal(rm.code, 0, rm.stderr);
    const refused = await pollUntil(async () => ((await whoami(token)).status === 401 ? true : false),
      { deadlineMs: 1000, intervalMs: 100 });
    assert.ok(refused, "the removed account's session token still works after 1 s");
    const last = await whoami(token);
    assertError(last, 401, "unauthorized", "session of a removed account");
  });

  test("account passwd ends the old sessions; the new password logs in", async () => {
    const user = { name: uid("changer"), password: pw() };
    const next = pw();
    await svc.addAccount(user.name, user.password);
    const r = await login(user.name, user.password);
    assert.equal(r.status, 200, show(r));
    const old = r.json.access_token;
    const ch = await svc.cli(["account", "passwd", user.name], { input: `${next}\n` });
    assert.equal(ch.code, 0, ch.stderr);
    assert.deepEqual(JSON.parse(ch.stdout), { name: user.name, passwordChanged: true });
    assert.ok(!ch.stdout.includes(next) && !ch.stderr.includes(next), "the password is never printed");
    const refused = await pollUntil(async () => ((await whoami(old)).status === 401 ? true : false),
      { deadlineMs: 1000, intervalMs: 100 });
    assert.ok(refused, "the old session token still works 1 s after passwd");
    assertError(await login(user.name, user.password), 401, "unauthorized", "the old password");
    const fresh = await login(user.name, next);
    assert.equal(fresh.status, 200, show(fresh));
    assertError(await whoami(fresh.json.access_token), 404, "not_found", "the new session works");
  });

  test("account add and passwd refuse a password under password_min_length (12) with exit 2", async () => {
    const name = uid("shorty");
    const add = await svc.cli(["account", "add", name], { input: "elevenchars\n" });
    assert.equal(add.code, 2, `account add with 11 characters: ${add.stderr}`);
    assert.match(add.stderr, /too short.*12.*password_min_length/);
    // Twelve characters, counted as characters: é is two bytes but one character.
    const ok = await svc.cli(["account", "add", name], { input: "twelve-chars\n" });
    assert.equal(ok.code, 0, ok.stderr);
    const utf = await svc.cli(["account", "passwd", name], { input: "ééééééééééé\n" });
    assert.equal(utf.code, 2, `11 two-byte characters: ${utf.stderr}`);
    const missing = await svc.cli(["account", "passwd", uid("nobody")], { input: `${pw()}\n` });
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(missing.stderr, /not_found/);
  });
});
