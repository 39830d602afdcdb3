// tokenvend serve, black box: /readyz tells the truth. Not ready (503, error shape, Retry-After)
// while the OIDC signing keys have never loaded, saying why, and ready once they have; the ACS
// credential checked at start with one revoke of a made-up identity: "ok" with the right key,
// 503 "rejected (401)" with a wrong one (logged once), and an unreachable ACS shown as
// "unchecked" without making the service unready. Real binaries on loopback: acs-emulator
// upstream, a temporary database, a local JWKS issuer behind a switchable front.

import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";
import { startEmulator } from "./lib/emulator.mjs";
import { startJwksServer } from "./lib/jwks-server.mjs";
import { freePorts, pollUntil, serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, assertTokenResponse, show } from "./lib/service-checks.mjs";

const skip = serveSkipReason();
const uid = (p) => `${p}-${randomUUID().slice(0, 8)}`;

// A JWKS URL that answers 500 until up() is called, then the real issuer's document.
async function startFlakyJwks(realUrl) {
  let serving = false;
  let fetches = 0;
  const server = createServer(async (req, res) => {
    fetches++;
    if (!serving) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end("down");
      return;
    }
    const body = await (await fetch(realUrl)).text();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
  await new Promise((res) => server.listen(0, "127.0.0.1", res));
  return {
    url: `http://127.0.0.1:${server.address().port}/jwks`,
    up: () => {
      serving = true;
    },
    fetches: () => fetches,
    close: () => new Promise((res) => server.close(res)),
  };
}

const readyz = async (svc, base = "pub") => svc[base]("GET", "/readyz");

describe("tokenvend serve: /readyz", { skip }, () => {
  let emu;
  let jwks;
  const services = [];
  const closers = [];

  before(async () => {
    [emu, jwks] = await Promise.all([startEmulator(), startJwksServer()]);
  });

  after(async () => {
    for (const s of services) await s.cleanup();
    for (const c of closers) await c();
    await jwks?.close();
    await emu?.stop();
  });

  const start = async (opts) => {
    const svc = await startService({ emu, jwks, ...opts });
    services.push(svc);
    return svc;
  };

  test("not ready until the OIDC signing keys have loaded once; the 503 says why", async () => {
    const flaky = await startFlakyJwks(jwks.jwksUrl);
    closers.push(flaky.close);
    const svc = await start({ env: { TOKENVEND_OIDC_JWKS_URL: flaky.url } });
    for (const base of ["pub", "int"]) {
      const r = await pollUntil(async () => {
        const x = await readyz(svc, base);
        return x.status === 503 && /oidcKeys failed/.test(x.json?.error?.message || "") ? x : null;
      }, { deadlineMs: 20_000 });
      assert.ok(r, `${base} /readyz says the keys failed: ${show(await readyz(svc, base))}`);
      const e = assertError(r, 503, "unavailable", `${base} /readyz`);
      assert.match(e.message, /^not ready: oidcKeys failed: GET http:\/\/127\.0\.0\.1:\d+\/jwks: HTTP 500/, show(r));
      assert.match(String(r.headers["retry-after"] || ""), /^\d+$/, "Retry-After on the 503");
    }
    // A bearer request meanwhile: 503 too, not a 401 for a good token.
    const t = jwks.token(uid("early"));
    assertError(await svc.pub("GET", "/api/token", { token: t }), 503, "unavailable", "token before the keys");

    flaky.up();
    const ok = await pollUntil(async () => {
      const x = await readyz(svc);
      return x.status === 200 ? x : null;
    }, { deadlineMs: 30_000 });
    assert.ok(ok, `ready once the keys load: ${show(await readyz(svc))}`);
    assert.equal(ok.json.status, "ready");
    assert.equal(ok.json.checks.oidcKeys, "ok", show(ok));
    assertTokenResponse(await svc.pub("GET", "/api/token", { token: t }), { what: "token after the keys" });
  });

  test("the ACS credential: the right key is \"ok\"", async () => {
    const svc = await start({});
    const r = await pollUntil(async () => {
      const x = await readyz(svc);
      return x.status === 200 && x.json?.checks?.acsCredential === "ok" ? x : null;
    }, { deadlineMs: 30_000 });
    assert.ok(r, `acsCredential ok: ${show(await readyz(svc))}`);
    assert.equal(r.json.acsCredential, "access_key", "the credential kind stays where it was");
    assert.equal(r.json.checks.oidcKeys, "ok");
    const i = await readyz(svc, "int");
    assert.equal(i.status, 200, show(i));
    assert.equal(i.json.checks.acsCredential, "ok", show(i));
    assert.match(svc.logs().stderr, /ACS credential checked: accepted/, "the verdict is logged");
  });

  test("a wrong access key: 503 \"acsCredential rejected (401)\", logged once", async () => {
    const wrong = `endpoint=${emu.endpoint}/;accesskey=${randomBytes(32).toString("base64")}`;
    const svc = await start({ env: { COMMUNICATION_SERVICES_CONNECTION_STRING: wrong } });
    const r = await pollUntil(async () => {
      const x = await readyz(svc);
      return x.status === 503 ? x : null;
    }, { deadlineMs: 30_000 });
    assert.ok(r, `not ready with a wrong key: ${show(await readyz(svc))}`);
    const e = assertError(r, 503, "unavailable", "/readyz with a wrong key");
    assert.match(e.message, /^not ready: acsCredential rejected \(401\)/, show(r));
    assertError(await readyz(svc, "int"), 503, "unavailable", "internal /readyz with a wrong key");
    // A few more probes, then the log: one error line, not one per probe.
    for (let i = 0; i < 3; i++) assert.equal((await readyz(svc)).status, 503);
    const lines = svc.logs().stderr.split("\n").filter((l) => /ACS credential rejected/.test(l));
    assert.equal(lines.length, 1, `logged once: ${lines.join("\n")}`);
    assert.match(lines[0], /"level":"error"/, lines[0]);
    assert.ok(!lines[0].includes(wrong.split("accesskey=")[1]), "the key is not logged");
  });

  test("ACS unreachable: ready, the credential shown as unchecked and retried", async () => {
    const [port] = await freePorts(1); // nothing listens there
    const svc = await start({
      env: { COMMUNICATION_SERVICES_CONNECTION_STRING: `endpoint=http://127.0.0.1:${port}/;accesskey=${emu.accessKey}` },
    });
    const r = await pollUntil(async () => {
      const x = await readyz(svc);
      return x.status === 200 && /^unchecked: /.test(x.json?.checks?.acsCredential || "") &&
        !/under way/.test(x.json.checks.acsCredential) ? x : null;
    }, { deadlineMs: 30_000 });
    assert.ok(r, `unchecked with a reason: ${show(await readyz(svc))}`);
    assert.match(r.json.checks.acsCredential, /^unchecked: .+; (next check in \d+ s|checking again now)$/, show(r));
  });
});
