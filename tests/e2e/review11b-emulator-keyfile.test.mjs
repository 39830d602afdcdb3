// review11b reproducer: `acs-emulator --access-key-from FILE` exists so that the key of a compose
// secret (the same file tokenvend reads its connection string from) is on no command line. The
// emulator then prints that key on stdout ("endpoint=...;accesskey=BASE64"), which compose keeps
// in `docker compose logs acs-emulator`: the secret moves from the command line to the logs. With
// the README's "for real ACS, write the resource's connection string to
// ./secrets/acs_connection_string" done before the emulator service is dropped, that is the real
// ACS access key. A key read from a file must not be printed.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { spawnEmulator } from "./lib/emulator.mjs";

test("acs-emulator --access-key-from FILE does not print the file's key", async () => {
  const dir = mkdtempSync(join(tmpdir(), "r11b-emu-key-"));
  const key = Buffer.from("review11b: a key that came from a secret file, 48 b").toString("base64");
  const file = join(dir, "acs_connection_string");
  writeFileSync(file, `endpoint=https://contoso.communication.azure.com/;accesskey=${key}\n`, { mode: 0o600 });
  const emu = await spawnEmulator(["--listen", "127.0.0.1:0", "--access-key-from", file], "acs-emulator");
  try {
    assert.match(emu.firstLine, /^endpoint=http:\/\/127\.0\.0\.1:\d+\//, "the emulator started");
    assert.ok(!emu.firstLine.includes(key), `stdout carries the secret file's key: ${emu.firstLine}`);
    assert.ok(!emu.stderrText().includes(key), "stderr carries the secret file's key");
  } finally {
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
