// The token cache kept in the store (issue 10 part 5, TOKENVEND_CACHE_KEY): tokens issued by one
// tokenvend process are written to the store sealed with AES-256-GCM, so a restart (same SQLite
// file) or another replica (same PostgreSQL database) serves them without an ACS call; no token
// is in the database in clear; a wrong key after a restart means fresh tokens, never an error;
// a revoke or delete on one replica removes the rows before its answer, so the other replica
// does not serve the old token from the store. ACS calls are counted at acs-emulator
// (/emulator/stats).

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { killChildrenAtExit, startReplicas } from "./lib/replicas.mjs";
import { pollUntil, serveSkipReason, startService, storeIsPg } from "./lib/service.mjs";
import { assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const USERS = 200;
const BATCH = 20;
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;
const newKey = () => randomBytes(32).toString("base64");

// Every ACS call the emulator saw, summed over the operations.
const acsCalls = (s) => Object.values(s.requests).reduce((a, n) => a + n, 0);

// A counter of /metrics (0 when absent).
async function metric(svc, name) {
  const r = await svc.int("GET", "/metrics");
  assert.equal(r.status, 200, `GET /metrics: ${show(r)}`);
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(r.text);
  return m ? Number(m[1]) : 0;
}

// Waits until the service has written at least n rows (the writes run after the answers).
async function writesReach(svc, n) {
  const ok = await pollUntil(async () => (await metric(svc, "tokenvend_cache_store_writes_total")) >= n,
    { deadlineMs: 30_000, intervalMs: 100 });
  assert.ok(ok, `the service wrote ${n} kept tokens (saw ${await metric(svc, "tokenvend_cache_store_writes_total")})`);
}

// Waits until the service's store watch vouches for its caches (no cache is used before).
async function cachesCurrent(svc) {
  const ok = await pollUntil(async () => (await metric(svc, "tokenvend_store_watch_current")) === 1,
    { deadlineMs: 30_000, intervalMs: 100 });
  assert.ok(ok, "the store watch became current");
}

// GET /api/token for every bearer, BATCH at a time; the tokens in order.
async function tokensFor(svc, bearers, what) {
  const out = [];
  for (let i = 0; i < bearers.length; i += BATCH) {
    const got = await Promise.all(bearers.slice(i, i + BATCH).map(async (b, j) =>
      assertTokenResponse(await svc.pub("GET", "/api/token", { token: b }), { what: `${what} #${i + j}` })));
    out.push(...got);
  }
  return out;
}

// Whether bytes (a Buffer) hold a token, or the signature part of one, anywhere.
function leaks(bytes, tokens) {
  const found = [];
  for (const t of tokens) {
    const sig = t.token.slice(t.token.lastIndexOf(".") + 1);
    if (bytes.includes(Buffer.from(t.token))) found.push(`token of ${t.userId}`);
    else if (sig.length >= 16 && bytes.includes(Buffer.from(sig))) found.push(`signature of ${t.userId}`);
  }
  return found;
}

describe("kept token cache: one process restarted on its SQLite file", { skip: skip || (storeIsPg() && "SQLite only") }, () => {
  let emu;
  let jwks;
  let svc;
  const key = newKey();
  const subs = Array.from({ length: USERS }, () => uid("kept"));
  let bearers;
  let warm;

  before(async () => {
    [emu, jwks] = await Promise.all([startEmulator(), startJwksServer()]);
    svc = await startService({ emu, jwks, env: { TOKENVEND_CACHE_KEY: key } });
    bearers = subs.map((s) => jwks.token(s));
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test(`${USERS} users warmed, restarted: all served again with zero ACS calls`, async () => {
    warm = await tokensFor(svc, bearers, "warm");
    await writesReach(svc, USERS);
    const stopped = await svc.stop();
    assert.equal(stopped.code, 0, `clean stop: ${JSON.stringify(stopped)}`);
    await svc.start();
    // After the start: its one credential check (a revoke of a made-up identity) is not serving.
    await emu.resetStats();
    const again = await tokensFor(svc, bearers, "after restart");
    const s = await emu.stats();
    assert.equal(acsCalls(s), 0, `no ACS call after the restart: ${JSON.stringify(s)}`);
    for (let i = 0; i < USERS; i++) {
      assert.equal(again[i].token, warm[i].token, `user #${i}: the kept token`);
      assert.equal(again[i].userId, warm[i].userId, `user #${i}: the same identity`);
    }
    assert.equal(await metric(svc, "tokenvend_cache_store_hits_total"), USERS, "every one a kept hit");
  });

  test("no token is in the database files in clear (file, -wal, -shm)", async () => {
    assert.ok(warm, "the warm-up ran");
    const { files, bytes } = svc.storeBytes();
    assert.ok(files.length >= 1 && bytes.length > 0, `read the database files: ${files}`);
    const found = leaks(bytes, warm);
    assert.deepEqual(found.slice(0, 5), [], `in clear in ${files.join(", ")}: ${found.length} of ${USERS}`);
    // Stopped, so everything is in the main file too (checkpointed): still nothing.
    await svc.stop();
    const cold = svc.storeBytes();
    assert.deepEqual(leaks(cold.bytes, warm).slice(0, 5), [], `in clear after the checkpoint`);
    await svc.start();
  });

  test("another key after a restart: fresh tokens from ACS, no error, counted", async () => {
    assert.ok(warm, "the warm-up ran");
    await svc.stop();
    await emu.resetStats();
    await svc.start({ TOKENVEND_CACHE_KEY: newKey() });
    const some = bearers.slice(0, 10);
    const got = await tokensFor(svc, some, "wrong key");
    const s = await emu.stats();
    assert.equal(s.requests.issue, some.length, `one ACS issue per user: ${JSON.stringify(s)}`);
    for (let i = 0; i < some.length; i++) {
      assert.notEqual(got[i].token, warm[i].token, `user #${i}: not the token sealed under the old key`);
      assert.equal(got[i].userId, warm[i].userId, `user #${i}: the same identity`);
    }
    assert.equal(await metric(svc, "tokenvend_cache_store_open_failures_total"), some.length,
      "each row that did not open is counted");
    const logs = svc.logs().stderr;
    assert.match(logs, /kept token cache: the row for identity .* does not open/, "a warning is logged");
    for (const t of warm) assert.ok(!logs.includes(t.token), "no token in the log");
  });

  test("without the key nothing is written", async () => {
    await svc.stop();
    await svc.start({ TOKENVEND_CACHE_KEY: "" });
    const b = jwks.token(uid("nokey"));
    assertTokenResponse(await svc.pub("GET", "/api/token", { token: b }), { what: "no key" });
    const m = await svc.int("GET", "/metrics");
    assert.match(m.text, /^tokenvend_cache_store_writes_total 0$/m, "no kept write without a key");
  });

  test("a malformed key is a configuration error at start-up", async () => {
    await svc.stop();
    await assert.rejects(svc.start({ TOKENVEND_CACHE_KEY: Buffer.alloc(16, 7).toString("base64") }),
      /cache_key: must be the base64 of exactly 32 bytes/);
    await svc.start({ TOKENVEND_CACHE_KEY: key });
  });
});

describe("kept token cache: two replicas on one PostgreSQL database", { skip }, () => {
  let emu;
  let jwks;
  let set;
  const key = newKey();

  before(async () => {
    killChildrenAtExit();
    [emu, jwks] = await Promise.all([startEmulator(), startJwksServer()]);
    set = await startReplicas({ n: 2, emu, jwks, env: { TOKENVEND_CACHE_KEY: key } });
    await Promise.all(set.svcs.map(cachesCurrent));
  });

  after(async () => {
    await set?.stop();
    await jwks?.close();
    await emu?.stop();
  });

  const rowsOf = async (acsId) =>
    Number((await set.pg.psql(set.uri,
      `SELECT count(*) FROM token_cache WHERE acs_id = '${acsId.replace(/'/g, "''")}'`)).stdout.trim());

  test("a user served by A is served by B with zero ACS calls; no token in clear in the rows", async () => {
    const [a, b] = set.svcs;
    const bearers = Array.from({ length: 40 }, () => jwks.token(uid("rep")));
    const before_ = await metric(a, "tokenvend_cache_store_writes_total");
    const fromA = await tokensFor(a, bearers, "A");
    await writesReach(a, before_ + bearers.length);
    await emu.resetStats();
    const fromB = await tokensFor(b, bearers, "B");
    const s = await emu.stats();
    assert.equal(acsCalls(s), 0, `B asked ACS nothing: ${JSON.stringify(s)}`);
    for (let i = 0; i < bearers.length; i++) assert.equal(fromB[i].token, fromA[i].token, `user #${i}`);

    const { stdout } = await set.pg.psql(set.uri,
      "SELECT acs_id, scopes, minutes, resource, issued_ms, expires_ms, encode(sealed, 'hex') FROM token_cache");
    assert.ok(stdout.length > 0, "rows were read");
    const found = leaks(Buffer.from(stdout), fromA);
    assert.deepEqual(found.slice(0, 5), [], `in clear in token_cache: ${found.length}`);
    // The sealed bytes as bytes too (hex is how psql prints them).
    const raw = Buffer.concat(stdout.split("\n").filter(Boolean).map((l) => Buffer.from(l.split("|").pop(), "hex")));
    assert.deepEqual(leaks(raw, fromA).slice(0, 5), [], "in clear in the sealed bytes");
  });

  test("a row moved to another identity does not open: fresh token, no error", async () => {
    const [a, b] = set.svcs;
    const [b1, b2] = [jwks.token(uid("mv")), jwks.token(uid("mv"))];
    const before_ = await metric(a, "tokenvend_cache_store_writes_total");
    const [t1, t2] = await tokensFor(a, [b1, b2], "A");
    await writesReach(a, before_ + 2);
    // User 2's row gets user 1's sealed bytes: bound to user 1's identity, it must not open.
    await set.pg.psql(set.uri,
      `UPDATE token_cache SET sealed = (SELECT sealed FROM token_cache WHERE acs_id = '${t1.userId}') ` +
      `WHERE acs_id = '${t2.userId}'`);
    const fails = await metric(b, "tokenvend_cache_store_open_failures_total");
    await emu.resetStats();
    const [got] = await tokensFor(b, [b2], "B");
    assert.notEqual(got.token, t1.token, "never user 1's token");
    assert.notEqual(got.token, t2.token, "the moved row did not open: a fresh token");
    assert.equal(got.userId, t2.userId, "user 2's identity");
    assert.equal((await emu.stats()).requests.issue, 1, "one ACS issue");
    assert.equal(await metric(b, "tokenvend_cache_store_open_failures_total"), fails + 1, "counted");
  });

  test("revoke on A: the rows are gone before the 204; B does not serve the old token", async () => {
    const [a, b] = set.svcs;
    const bearer = jwks.token(uid("rv"));
    const before_ = await metric(a, "tokenvend_cache_store_writes_total");
    const [t] = await tokensFor(a, [bearer], "A");
    await writesReach(a, before_ + 1);
    assert.equal(await rowsOf(t.userId), 1, "A kept the token");
    const r = await a.pub("POST", "/api/token/revoke", { token: bearer });
    assert.equal(r.status, 204, `revoke: ${show(r)}`);
    assert.equal(await rowsOf(t.userId), 0, "no kept row after the 204");
    const [fromB] = await tokensFor(b, [bearer], "B after revoke");
    assert.notEqual(fromB.token, t.token, "B does not serve the revoked token");
    assert.equal((await emu.validate(fromB.token)).valid, true, "B's token is valid at ACS");
  });

  test("the second guard: a row of a pre-revoke token put back is not served", async () => {
    const [a, b] = set.svcs;
    const bearer = jwks.token(uid("rv2"));
    const before_ = await metric(a, "tokenvend_cache_store_writes_total");
    const [t] = await tokensFor(a, [bearer], "A");
    await writesReach(a, before_ + 1);
    const id = t.userId.replace(/'/g, "''");
    await set.pg.psql(set.uri, `CREATE TABLE saved_row AS SELECT * FROM token_cache WHERE acs_id = '${id}'`);
    assert.equal((await a.pub("POST", "/api/token/revoke", { token: bearer })).status, 204);
    // As if a write of the old token had landed after the revoke's purge.
    await set.pg.psql(set.uri, "INSERT INTO token_cache SELECT * FROM saved_row; DROP TABLE saved_row");
    assert.equal(await rowsOf(t.userId), 1, "the old row is back");
    const [fromB] = await tokensFor(b, [bearer], "B");
    assert.notEqual(fromB.token, t.token, "issued before the revoke: never served");
  });

  test("delete on A: the rows are gone before the answer; B serves no old token", async () => {
    const [a, b] = set.svcs;
    const sub = uid("del");
    const bearer = jwks.token(sub);
    const before_ = await metric(a, "tokenvend_cache_store_writes_total");
    const [t] = await tokensFor(a, [bearer], "A");
    await writesReach(a, before_ + 1);
    assert.equal(await rowsOf(t.userId), 1, "A kept the token");
    const d = await a.int("DELETE", `/internal/users/${encodeURIComponent(sub)}`, { key: set.apiKey });
    assert.ok(d.status === 204 || d.status === 202, `delete: ${show(d)}`);
    assert.equal(await rowsOf(t.userId), 0, "no kept row after the answer");
    const [fromB] = await tokensFor(b, [bearer], "B after delete");
    assert.notEqual(fromB.token, t.token, "not the deleted identity's token");
    assert.notEqual(fromB.userId, t.userId, "a new identity");
  });
});
