// tokenvend serve against an ACS that accepts connections and never answers (issue 11, point 4):
// a TCP front (lib/faultproxy.mjs) in front of acs-emulator swallows every request once it is
// switched to "blackhole". Every route that calls ACS must end within the configured ACS
// deadline with 504 `upstream_timeout` in the one error shape; a create whose request went out
// says the identity may have been created (and is logged at warn for follow-up); a delete keeps
// its rule (202, the outbox finishes it once ACS answers again); and once the calls are over
// the process holds no more threads, descriptors, ACS calls or ACS sockets than before.
// Time checks here are generous ceilings (the deadline plus seconds), never measurements.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startFaultProxy } from "./lib/faultproxy.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { metricValue, procStats } from "./lib/procstats.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;

const DEADLINE_MS = 3000; // acs_deadline_ms of the service under test
const ATTEMPT_MS = 1000; // acs_attempt_timeout_ms: a deadline holds three attempts
const SLACK_MS = 5000; // generous: "ended by the deadline, not by the client giving up"

describe("tokenvend serve: an ACS black hole", { skip }, () => {
  let emu;
  let proxy;
  let jwks;
  let svc;
  let apiKey;
  // Mappings made while ACS answered: [app user, ACS id] for the issue/revoke/delete routes.
  const known = {};

  before(async () => {
    emu = await startEmulator();
    proxy = await startFaultProxy({ host: "127.0.0.1", port: emu.port });
    jwks = await startJwksServer();
    svc = await startService({
      jwks,
      env: {
        COMMUNICATION_SERVICES_CONNECTION_STRING: proxy.connectionString(emu.accessKey),
        TOKENVEND_ACS_DEADLINE_MS: DEADLINE_MS,
        TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: ATTEMPT_MS,
        TOKENVEND_ACS_CONNECT_TIMEOUT_MS: ATTEMPT_MS,
        // The breaker would answer 503 at once after five timeouts (its own test covers that);
        // here every call must meet the black hole. Tokens are not served from a cache.
        TOKENVEND_BREAKER: "off",
        TOKENVEND_CACHE: "off",
        TOKENVEND_OUTBOX_INTERVAL_MS: 500,
        TOKENVEND_OUTBOX_BACKOFF_MAX_MS: 2000,
      },
    });
    apiKey = (await svc.createApiKey("blackhole")).key;
    const pub = uid("alice");
    const r = await svc.pub("GET", "/api/token", { token: jwks.token(pub) });
    assert.equal(r.status, 200, show(r));
    known.pub = pub;
    for (const name of ["bob", "del"]) {
      const u = uid(name);
      const p = await svc.int("PUT", `/internal/users/${u}`, { key: apiKey });
      assert.equal(p.status, 201, show(p));
      known[name] = { user: u, acsId: p.json.acsUserIdentity };
    }
    for (const name of ["guest", "guestdel"]) {
      const g = await svc.int("POST", "/internal/identities", { key: apiKey, body: {} });
      assert.equal(g.status, 201, show(g));
      known[name] = g.json.user.communicationUserId;
    }
    // Other users for the leak check: each gets its own issue calls.
    known.many = [];
    for (let i = 0; i < 5; i++) {
      const u = uid("many");
      const p = await svc.int("PUT", `/internal/users/${u}`, { key: apiKey });
      assert.equal(p.status, 201, show(p));
      known.many.push(u);
    }
  });

  after(async () => {
    await svc?.cleanup();
    await jwks?.close();
    await proxy?.close();
    await emu?.stop();
  });

  const int = (method, path, body, headers) => svc.int(method, path, { key: apiKey, body, headers });
  const pub = (method, path, user, body, headers) =>
    svc.pub(method, path, { token: jwks.token(user), body, headers });
  const timed = async (what, p) => {
    const t0 = Date.now();
    const r = await p;
    return { what, r, ms: Date.now() - t0 };
  };

  test("every ACS route ends by the deadline with 504 upstream_timeout; a create says what may have happened", async () => {
    const liveBefore = (await emu.stats()).identities_live;
    proxy.setMode("blackhole");
    const enc = encodeURIComponent;
    const createRid = `bh-create-${randomUUID().slice(0, 8)}`;
    const newPub = uid("carol");
    const newInt = uid("erin");
    const calls = [
      // Issue and revoke of known identities: retried within the deadline, then 504.
      ["GET /api/token (known user)", pub("GET", "/api/token", known.pub), "plain"],
      ["POST /api/token (known user)", pub("POST", "/api/token", known.pub, { scopes: ["chat"] }), "plain"],
      ["POST /api/token/revoke", pub("POST", "/api/token/revoke", known.pub), "plain"],
      ["POST /internal/users/{id}/token", int("POST", `/internal/users/${known.bob.user}/token`, {}), "plain"],
      ["POST /internal/users/{id}/revoke", int("POST", `/internal/users/${known.bob.user}/revoke`), "plain"],
      ["POST /internal/identities/{acsId}/token", int("POST", `/internal/identities/${enc(known.guest)}/token`, {}), "plain"],
      ["POST /internal/identities/{acsId}/revoke", int("POST", `/internal/identities/${enc(known.guest)}/revoke`), "plain"],
      // Creates: sent once (no customId), never repeated blindly, 504 saying the identity may exist.
      ["GET /api/token (new user)", pub("GET", "/api/token", newPub, undefined, { "x-request-id": createRid }), "create"],
      ["POST /api/user (new user)", pub("POST", "/api/user", uid("dave")), "create"],
      ["PUT /internal/users/{id} (new)", int("PUT", `/internal/users/${newInt}`), "create"],
      ["POST /internal/users/{id}/token (new)", int("POST", `/internal/users/${uid("frank")}/token`, {}), "create"],
      ["POST /internal/identities", int("POST", "/internal/identities", { scopes: ["chat"] }), "create"],
      // Deletes: the mapping goes at once, the ACS delete to the outbox: 202, as when ACS fails.
      ["DELETE /internal/users/{id}", int("DELETE", `/internal/users/${known.del.user}`), "delete"],
      ["DELETE /internal/identities/{acsId}", int("DELETE", `/internal/identities/${enc(known.guestdel)}`), "delete"],
    ];
    const results = await Promise.all(calls.map(([what, p]) => timed(what, p)));
    for (const [i, { what, r, ms }] of results.entries()) {
      const kind = calls[i][2];
      assert.ok(ms < DEADLINE_MS + SLACK_MS, `${what}: answered after ${ms} ms, past the ${DEADLINE_MS} ms deadline`);
      if (kind === "delete") {
        assert.equal(r.status, 202, `${what}: ${show(r)}`);
        continue;
      }
      const e = assertError(r, 504, "upstream_timeout", what);
      assert.ok(r.headers["x-request-id"], `${what}: X-Request-Id`);
      if (kind === "create") {
        assert.match(e.message, /may have been created/, `${what}: says the outcome is unknown: ${e.message}`);
        assert.match(e.message, /safe/, `${what}: says whether a repeat is safe: ${e.message}`);
      } else {
        assert.doesNotMatch(e.message, /may have been created/, `${what}: ${e.message}`);
      }
    }
    // Each create reached the black hole exactly once: nothing repeated it.
    const createsLogged = svc.logs().stderr.split("\n").filter((l) => l.includes("ACS create outcome unknown"));
    assert.equal(createsLogged.length, 5, `one warn line per unknown create:\n${createsLogged.join("\n")}`);
    for (const l of createsLogged) assert.equal(JSON.parse(l).level, "warn", l);
    const mine = createsLogged.find((l) => l.includes(createRid));
    assert.ok(mine, `the follow-up line carries the request id ACS got (${createRid})`);
    assert.ok(mine.includes(newPub), `and names the app user: ${mine}`);
    assert.ok(createsLogged.some((l) => l.includes(newInt)), "the internal create's user too");
    assert.ok(createsLogged.some((l) => l.includes("standalone")), "and the standalone create");
    // The audit rows of those creates say so too (the store's files, read as bytes).
    const stored = svc.storeBytes().bytes.toString("latin1");
    assert.ok(stored.includes("outcome unknown: the identity may have been created"),
      "the audit rows of the unknown creates carry the detail");

    // The users whose create was lost have no mapping: a repeat once ACS answers creates one.
    proxy.setMode("pass");
    const again = await pub("GET", "/api/token", newPub);
    assert.equal(again.status, 200, show(again));
    const ensured = await int("PUT", `/internal/users/${newInt}`);
    assert.equal(ensured.status, 201, show(ensured));
    // The deletes accepted in the dark are finished by the outbox once ACS answers.
    const m = await pollUntil(async () => {
      const t = (await svc.int("GET", "/metrics")).text;
      return metricValue(t, "tokenvend_outbox_pending") === 0 ? t : false;
    }, { deadlineMs: 30_000, intervalMs: 250 });
    assert.ok(m, "the outbox finished the deletes accepted during the black hole");
    // At the emulator: the two deleted identities are gone and the two repeats made one each
    // (the black-holed creates never reached it), so as many live as before the black hole.
    assert.equal((await emu.stats()).identities_live, liveBefore, "two deleted, two created again");
  });

  test("50 black-holed requests leave no thread, descriptor, ACS call, ACS socket or memory behind", async () => {
    const pid = svc.proc.pid;
    const metrics = async () => (await svc.int("GET", "/metrics")).text;
    const round = (n) => Array.from({ length: n }, (_, i) => {
      // Mixed: issues for known users, creates for new ones, revokes.
      if (i % 3 === 0) return int("PUT", `/internal/users/${uid("leak")}`);
      if (i % 3 === 1) return int("POST", `/internal/users/${known.many[i % known.many.length]}/token`, {});
      return int("POST", `/internal/users/${known.many[i % known.many.length]}/revoke`);
    });

    proxy.setMode("blackhole");
    // A first round, so whatever is made once on first use (pools, caches) exists before the
    // baseline; then the level is read with nothing in flight.
    await Promise.all(round(6));
    const settle = async () => pollUntil(async () => {
      const t = await metrics();
      return metricValue(t, "tokenvend_acs_inflight") === 0 && proxy.stats().open === 0 ? t : false;
    }, { deadlineMs: 20_000, intervalMs: 200 });
    let t = await settle();
    assert.ok(t, "no ACS call in flight after the first round");
    const before = procStats(pid, svc.dbPath);
    const sockBefore = metricValue(t, "tokenvend_acs_connections_open");
    assert.ok(before && Number.isFinite(sockBefore), `baseline: ${JSON.stringify(before)} sockets ${sockBefore}`);

    const results = await Promise.all(round(50).map((p) => timed("", p)));
    const statuses = {};
    for (const { r, ms } of results) {
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      assert.ok(ms < DEADLINE_MS + SLACK_MS, `answered after ${ms} ms: ${show(r)}`);
      assertError(r, 504, "upstream_timeout", "black-holed request");
    }
    assert.deepEqual(statuses, { 504: 50 });

    t = await settle();
    assert.ok(t, "every ACS call ended and the black hole holds no connection of tokenvend's");
    // Back to the level before, with bounded waits: the threads exactly, ACS sockets and the
    // other descriptors no higher (the store's reader connections, opened on demand up to
    // four, are not counted), memory within a small slack (allocator caches). Not memory under
    // the sanitizers (make asan: ASan's quarantine holds freed memory by design).
    const other = (st, sock) => st.fds - st.dbFds - sock;
    const rssSlackKb = /asan|tsan/.test(process.env.TV_BUILD || "") ? Infinity : 8 * 1024;
    const back = await pollUntil(async () => {
      const now = procStats(pid, svc.dbPath);
      const sock = metricValue(await metrics(), "tokenvend_acs_connections_open");
      const ok = now && now.threads === before.threads && sock <= sockBefore &&
        other(now, sock) <= other(before, sockBefore) && now.rssKb <= before.rssKb + rssSlackKb;
      return ok ? { now, sock } : false;
    }, { deadlineMs: 20_000, intervalMs: 250 });
    const now = procStats(pid, svc.dbPath);
    assert.ok(back, `before ${JSON.stringify(before)}, sockets ${sockBefore}; after ${JSON.stringify(now)}, ` +
      `sockets ${metricValue(await metrics(), "tokenvend_acs_connections_open")}`);
    assert.equal(metricValue(await metrics(), "tokenvend_acs_inflight"), 0);
  });
});
