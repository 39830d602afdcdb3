// acs-emulator's own knobs seen through the real SDK: a fixed --access-key, short-lived tokens
// (--token-ttl-seconds), injected 429/503/drops that the SDK's retry policy rides out, and a clean
// exit on SIGTERM.

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { createRecorder, decodeJwt, emulatorPath, sdk, spawnEmulator, startEmulator } from "./lib/emulator.mjs";
import { assertAcsId } from "./lib/checks.mjs";

const started = [];
async function start(args) {
  const emu = await startEmulator(args);
  started.push(emu);
  return emu;
}

after(async () => {
  await Promise.all(started.map((e) => e.stop()));
});

function clientFor(emu, rec, extra = {}) {
  return new CommunicationIdentityClient(emu.connectionString, {
    allowInsecureConnection: true,
    additionalPolicies: [rec.option],
    ...extra,
  });
}

test("--access-key is used and printed as given", async () => {
  const key = Buffer.from(Array.from({ length: 64 }, (_, i) => i)).toString("base64");
  const emu = await start(["--access-key", key]);
  assert.equal(emu.accessKey, key);
  const rec = createRecorder();
  assertAcsId(await sdk(rec, "createUser", () => clientFor(emu, rec).createUser()));
});

test("--token-ttl-seconds 2: exp and expiresOn agree, validate says expired afterwards", async () => {
  const emu = await start(["--token-ttl-seconds", "2"]);
  const rec = createRecorder();
  const client = clientFor(emu, rec);
  const b = Date.now();
  const t = await sdk(rec, "createUserAndToken", () => client.createUserAndToken(["chat"], { tokenExpiresInMinutes: 60 }));
  const a = Date.now();
  const got = t.expiresOn.getTime();
  assert.ok(got >= b + 2000 - 1500 && got <= a + 2000 + 1500, `expiresOn ${t.expiresOn.toISOString()} ~ now+2s`);
  const jwt = decodeJwt(t.token);
  assert.ok(Math.abs(jwt.payload.exp * 1000 - got) <= 1000, "exp agrees with expiresOn");
  assert.equal((await emu.validate(t.token)).valid, true, "valid at first");
  // Lower-bound wait only: past exp by a safe margin.
  await sleep(Math.max(0, jwt.payload.exp * 1000 - Date.now()) + 1500);
  const v = await emu.validate(t.token);
  assert.equal(v.valid, false, JSON.stringify(v));
  assert.equal(v.reason, "expired", JSON.stringify(v));
});

test("the SDK rides out an injected 429 (Retry-After + retry-after-ms), a 503 and a drop", async () => {
  const emu = await start([]);
  const rec = createRecorder();
  const client = clientFor(emu, rec);

  let r = await emu.request("PUT", "/emulator/faults", { throttle_rate: 1, retry_after_ms: 300, count: 1 });
  assert.ok(r.status >= 200 && r.status < 300, `PUT faults -> ${r.status} ${JSON.stringify(r.body)}`);
  const user = await sdk(rec, "createUser after 429", () => client.createUser());
  assertAcsId(user);
  const throttled = rec.log.find((e) => e.status === 429);
  assert.ok(throttled, `a 429 was seen: ${rec.dump(3)}`);
  assert.equal(throttled.responseHeaders["retry-after"], "1", "Retry-After is ceil(0.3 s)");
  assert.equal(throttled.responseHeaders["retry-after-ms"], "300");
  assert.equal(rec.last().status, 201);

  r = await emu.request("PUT", "/emulator/faults", { error_rate: 1, error_status: 503, count: 1, ops: ["issue"] });
  assert.ok(r.status >= 200 && r.status < 300, `PUT faults -> ${r.status}`);
  const n = rec.log.length;
  const t = await sdk(rec, "getToken after 503", () => client.getToken(user, ["chat"]));
  assert.equal(typeof t.token, "string");
  assert.deepEqual(rec.log.slice(n).map((e) => e.status), [503, 200], rec.dump(2));

  r = await emu.request("PUT", "/emulator/faults", { drop_rate: 1, count: 1, ops: ["revoke"] });
  assert.ok(r.status >= 200 && r.status < 300, `PUT faults -> ${r.status}`);
  const m = rec.log.length;
  await sdk(rec, "revokeTokens after a drop", () => client.revokeTokens(user));
  assert.ok(rec.log[m].error, `first attempt failed at the network level: ${rec.dump(2)}`);
  assert.equal(rec.last().status, 204);

  const s = await emu.stats();
  assert.equal(s.faults_injected, 3, JSON.stringify(s));
  r = await emu.request("GET", "/emulator/faults");
  assert.equal(r.status, 200);
  r = await emu.request("DELETE", "/emulator/faults");
  assert.ok(r.status >= 200 && r.status < 300, `DELETE faults -> ${r.status}`);
});

test("SIGTERM stops the emulator with exit status 0", async () => {
  const emu = await start([]);
  const rec = createRecorder();
  await sdk(rec, "createUser", () => clientFor(emu, rec).createUser());
  const r = await emu.stop();
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, `stderr:\n${emu.stderrText().slice(-2000)}`);
});

test("--access-key-from FILE takes the key of a connection string file, does not print it; a bad file is refused", async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { spawnSync } = await import("node:child_process");
  const dir = mkdtempSync(join(tmpdir(), "emu-keyfrom-"));
  try {
    const key = Buffer.from(Array.from({ length: 48 }, (_, i) => 200 - i)).toString("base64");
    const good = join(dir, "cs");
    // As a compose secret file would hold it: another endpoint, a trailing newline.
    writeFileSync(good, `endpoint=http://acs-emulator:8090/;accesskey=${key}\n`);
    // The key is a secret the file keeps: stdout (container logs) names only the endpoint, and
    // the client takes the key from the file, as tokenvend does.
    const emu = await spawnEmulator(["--listen", "127.0.0.1:0", "--access-key-from", good], "acs-emulator");
    started.push(emu);
    assert.match(emu.firstLine, /^endpoint=http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.ok(!emu.firstLine.includes(key) && !emu.stderrText().includes(key), "the file's key is printed");
    const rec = createRecorder();
    const withKey = { connectionString: `${emu.firstLine};accesskey=${key}` };
    assertAcsId(await sdk(rec, "createUser", () => clientFor(withKey, rec).createUser()));
    // A client with another key is refused: the emulator really serves with the file's key.
    const other = Buffer.from(Array.from({ length: 48 }, (_, i) => i)).toString("base64");
    const wrong = { connectionString: `${emu.firstLine};accesskey=${other}` };
    await assert.rejects(clientFor(wrong, createRecorder(), { retryOptions: { maxRetries: 0 } }).createUser(),
      (e) => e.statusCode === 401);

    const secretish = "accesskey-that-is-not-a-connection-string";
    const bad = join(dir, "bad");
    writeFileSync(bad, `${secretish}\n`);
    for (const [file, want] of [
      [bad, /not an ACS connection string/],
      [join(dir, "missing"), /cannot open/],
    ]) {
      const r = spawnSync(emulatorPath(), ["--listen", "127.0.0.1:0", "--access-key-from", file], {
        encoding: "utf8",
        timeout: 20000,
      });
      assert.equal(r.status, 2, `exit status for ${file}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.ok(!r.stderr.includes(secretish), "the file's text is not echoed");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
