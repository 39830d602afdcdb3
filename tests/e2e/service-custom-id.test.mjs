// tokenvend serve with acs_custom_id on (api-version 2025-03-02-preview), black box: a create
// whose answer the network lost is retried and returns the identity the lost attempt made (one
// identity at the emulator, no orphan), for the public and the internal API; the customId sent
// is the documented hash of resource and app user (a create of our own with that customId gets
// the same identity back with 200), so the app user id never reaches ACS in clear.
// The pinned @azure/communication-identity (1.3.1) has no customId option, so the check create
// is signed here with the ACS HMAC scheme.
// Real binaries on loopback: acs-emulator upstream, a temporary database, a local JWKS issuer.

import assert from "node:assert/strict";
import { createHash, createHmac, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}@example.com`;
const API = "2025-03-02-preview";

// README, design notes "ACS customId".
function customId(resource, user) {
  const h = createHash("sha256");
  h.update("tokenvend/acs-custom-id/v1\0");
  h.update(`${resource}\0`);
  h.update(user);
  return `tv1_${h.digest("base64url")}`;
}

// POST /identities signed as the ACS SDKs sign (HMAC-SHA256 over method, path and query, date,
// host and the body's SHA-256).
async function signedCreate(emu, body) {
  const host = new URL(emu.endpoint).host;
  const pathAndQuery = `/identities?api-version=${API}`;
  const text = JSON.stringify(body);
  const date = new Date().toUTCString();
  const hash = createHash("sha256").update(text).digest("base64");
  const sig = createHmac("sha256", Buffer.from(emu.accessKey, "base64"))
    .update(`POST\n${pathAndQuery}\n${date};${host};${hash}`).digest("base64");
  const res = await fetch(emu.endpoint + pathAndQuery, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-ms-date": date,
      "x-ms-content-sha256": hash,
      authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${sig}`,
    },
    body: text,
  });
  return { status: res.status, json: await res.json() };
}

describe("tokenvend serve: acs_custom_id", { skip }, () => {
  let emu;
  let jwks;
  let svc;
  let apiKey;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    svc = await startService({
      emu, jwks, env: { TOKENVEND_ACS_CUSTOM_ID: "on", TOKENVEND_ACS_API_VERSION: API },
    });
    apiKey = (await svc.createApiKey("custom-id")).key;
  });

  after(async () => {
    await emu?.request("DELETE", "/emulator/faults");
    await svc?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  const dropNextCreate = async () => {
    const f = await emu.request("PUT", "/emulator/faults", { drop_rate: 1, count: 1, ops: ["create"] });
    assert.equal(f.status, 200, JSON.stringify(f.body));
  };

  test("a first token request whose create answer was lost gets the identity that create made", async () => {
    const user = uid("lost");
    await emu.resetStats();
    await dropNextCreate();
    const r = await svc.pub("GET", "/api/token", { token: jwks.token(user) });
    assert.equal(r.status, 200, show(r));
    assert.equal((await emu.validate(r.json.token)).valid, true, "the token is valid at the emulator");
    const s = await emu.stats();
    assert.equal(s.requests.create, 2, "the create went out twice");
    assert.equal(s.faults_injected, 1, "the first answer was dropped");
    assert.equal(s.identities_created, 1, "one identity: the retry got the first one back, no orphan");

    // The customId is the hash of resource and user: a create with it is answered 200 with the
    // very identity tokenvend mapped.
    const resource = new URL(emu.endpoint).host;
    const c = await signedCreate(emu, { customId: customId(resource, user) });
    assert.equal(c.status, 200, JSON.stringify(c.json));
    assert.equal(c.json.identity.id, r.json.user.communicationUserId, "same identity for the same customId");
    assert.ok(!c.json.identity.customId.includes(user.split("@")[0]), "the user id is not in the customId");
    assert.equal((await emu.stats()).identities_created, 1);
  });

  // A user deleted while ACS fails comes back before the outbox finished the ACS delete: ACS
  // answers the create with the old identity (same customId), which must not be mapped again.
  test("a user back before the ACS delete finished gets 503, then a new identity", async () => {
    const user = uid("back");
    const tok = jwks.token(user);
    const first = await svc.pub("GET", "/api/token", { token: tok });
    assert.equal(first.status, 200, show(first));
    const oldId = first.json.user.communicationUserId;

    let f = await emu.request("PUT", "/emulator/faults", { error_rate: 1, error_status: 503, ops: ["delete"] });
    assert.equal(f.status, 200);
    const d = await svc.pub("DELETE", "/api/user", { token: tok });
    assert.equal(d.status, 202, `delete accepted, ACS delete owed by the outbox: ${show(d)}`);

    const back = await svc.pub("GET", "/api/token", { token: tok });
    assert.equal(back.status, 503, `the identity being deleted is not handed out: ${show(back)}`);
    assert.equal(back.json.error.code, "unavailable");
    assert.match(back.json.error.message, /still being deleted/);

    f = await emu.request("DELETE", "/emulator/faults");
    assert.equal(f.status, 204);
    assert.ok(await pollUntil(async () => (await emu.validate(first.json.token)).reason === "deleted",
      { deadlineMs: 30_000, intervalMs: 100 }), "the outbox finishes the ACS delete");
    // The outbox row goes after the ACS answer; until then the create may still answer 503.
    let again;
    assert.ok(await pollUntil(async () => {
      again = await svc.pub("GET", "/api/token", { token: tok });
      return again.status === 200;
    }, { deadlineMs: 30_000, intervalMs: 100 }), `token after the delete finished: ${again && show(again)}`);
    assert.notEqual(again.json.user.communicationUserId, oldId, "a new identity");
    assert.equal((await emu.validate(again.json.token)).valid, true);
  });

  // A standalone identity has no app user, hence no customId: each is its own identity.
  test("POST /internal/identities twice: two identities, both kept", async () => {
    await emu.resetStats();
    const one = await svc.int("POST", "/internal/identities", { key: apiKey });
    const two = await svc.int("POST", "/internal/identities", { key: apiKey });
    assert.equal(one.status, 201, show(one));
    assert.equal(two.status, 201, show(two));
    const ids = [one, two].map((r) => JSON.stringify(r.json));
    assert.notEqual(ids[0], ids[1], "two identities");
    assert.equal((await emu.stats()).identities_created, 2);
    const m = await svc.int("GET", "/metrics");
    assert.match(m.text, /^tokenvend_outbox_pending 0$/m, "neither is queued for deletion");
  });

  test("an internal create whose answer was lost answers 201 with one identity", async () => {
    const user = uid("internal");
    await emu.resetStats();
    await dropNextCreate();
    const r = await svc.int("PUT", `/internal/users/${encodeURIComponent(user)}`, { key: apiKey });
    assert.equal(r.status, 201, show(r));
    const s = await emu.stats();
    assert.equal(s.requests.create, 2);
    assert.equal(s.identities_created, 1);
    const g = await svc.int("GET", `/internal/users/${encodeURIComponent(user)}`, { key: apiKey });
    assert.equal(g.status, 200, show(g));
    // Another user: another customId, another identity.
    const other = await svc.int("PUT", `/internal/users/${encodeURIComponent(uid("other"))}`, { key: apiKey });
    assert.equal(other.status, 201, show(other));
    assert.ok(other.json.acsUserIdentity && r.json.acsUserIdentity, show(r));
    assert.notEqual(other.json.acsUserIdentity, r.json.acsUserIdentity);
    assert.equal((await emu.stats()).identities_created, 2);
  });
});

// Two tokenvend processes on one database: the second maps the user while the first's create is
// still at ACS. With customId, ACS gives the first the very identity the second mapped; the
// first must use that mapping and not queue the identity for deletion as an orphan (it is not
// one). ACS deletes fail throughout, so a queued delete would stay pending in the outbox.
describe("tokenvend serve: acs_custom_id, two processes on one database", { skip }, () => {
  let emu;
  let jwks;
  let a;
  let b;

  before(async () => {
    emu = await startEmulator();
    jwks = await startJwksServer();
    const env = { TOKENVEND_ACS_CUSTOM_ID: "on", TOKENVEND_ACS_API_VERSION: API };
    a = await startService({ emu, jwks, env });
    b = await startService({ emu, jwks, env: { ...env, TOKENVEND_DB: a.dbPath } });
  });

  after(async () => {
    await emu?.request("DELETE", "/emulator/faults");
    await b?.cleanup();
    await a?.cleanup();
    await jwks?.close();
    await emu?.stop();
  });

  test("the process that lost the mapping race keeps the shared identity", async () => {
    const user = uid("race");
    const tok = jwks.token(user);
    await emu.resetStats();
    let f = await emu.request("PUT", "/emulator/faults", { latency_ms: 1500, count: 1, ops: ["create"] });
    assert.equal(f.status, 200);
    const slow = a.pub("GET", "/api/token", { token: tok });
    assert.ok(await pollUntil(async () => (await emu.stats()).requests.create >= 1,
      { deadlineMs: 10_000, intervalMs: 20 }), "a's create reached the emulator");
    f = await emu.request("PUT", "/emulator/faults", { error_rate: 1, error_status: 503, ops: ["delete"] });
    assert.equal(f.status, 200);
    const fast = await b.pub("GET", "/api/token", { token: tok });
    assert.equal(fast.status, 200, show(fast));
    const r = await slow;
    assert.equal(r.status, 200, show(r));
    const id = fast.json.user.communicationUserId;
    assert.equal(r.json.user.communicationUserId, id, "both answer with the one identity");
    assert.equal((await emu.stats()).identities_created, 1);

    const m = await a.int("GET", "/metrics");
    assert.equal(m.status, 200);
    assert.match(m.text, /^tokenvend_outbox_pending 0$/m, "no delete queued for the shared identity");
    assert.equal((await emu.validate(fast.json.token)).valid, true);
    assert.equal((await emu.validate(r.json.token)).valid, true);
  });
});
