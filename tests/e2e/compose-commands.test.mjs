// The commands compose.replicas.yaml runs inside its containers, run here with this build's
// binaries, so a quoting slip in the recipe fails a test instead of a deployment:
//   - acs-emulator's start command takes its access key from the connection-string secret (the
//     key it serves with equals the secret's), and refuses a secret without one (exit 2);
//   - the replicas' entrypoint `env -u TOKENVEND_DB tokenvend` lets TOKENVEND_DB_FILE (the
//     PostgreSQL URI) through although the image sets TOKENVEND_DB, which tokenvend alone
//     refuses (both given).
// Only what Compose provides is swapped: the secret's path, the listen address, the data path.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import YAML from "yaml";
import { REPO_ROOT, emulatorPath } from "./lib/emulator.mjs";
import { cleanEnv, tokenvendPath } from "./lib/service.mjs";

const DEADLINE_MS = 30_000;
const recipe = () => YAML.parse(readFileSync(resolve(REPO_ROOT, "compose.replicas.yaml"), "utf8"), { merge: true });
const skip = existsSync(emulatorPath()) && existsSync(tokenvendPath()) ? false : "build/bin has no binaries (make)";
const tmp = mkdtempSync(join(tmpdir(), "tv-compose-cmd-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// Compose's own rewriting of a command string: "$$" is a literal "$".
const composeText = (s) => s.replaceAll("$$", "$");

// The emulator's command with the container's paths swapped for test ones; each must be there.
function emulatorCommand(secretPath, dbPath) {
  const svc = recipe().services["acs-emulator"];
  assert.deepEqual(svc.entrypoint, ["/bin/sh", "-c"]);
  assert.ok(svc.secrets.includes("acs_connection_string"));
  let cmd = composeText(svc.command[0]);
  for (const [from, to] of [["/run/secrets/acs_connection_string", secretPath],
    ["0.0.0.0:8090", "127.0.0.1:0"], ["/data/acs-emulator.db", dbPath]]) {
    assert.ok(cmd.includes(from), `the emulator's command no longer has ${from}: ${cmd}`);
    cmd = cmd.replaceAll(from, to);
  }
  return cmd;
}

// Runs the command with build/bin first on PATH; resolves to { code, firstLine, stderr } once
// it printed a line (then it is stopped) or exited.
function runShell(cmd) {
  return new Promise((res) => {
    const env = { ...cleanEnv(), PATH: `${dirname(emulatorPath())}:${process.env.PATH}` };
    const p = spawn("/bin/sh", ["-c", cmd], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let firstLine = null;
    const timer = setTimeout(() => p.kill("SIGKILL"), DEADLINE_MS);
    p.stdout.setEncoding("utf8");
    p.stderr.setEncoding("utf8");
    p.stdout.on("data", (c) => {
      out += c;
      if (firstLine === null && out.includes("\n")) {
        firstLine = out.slice(0, out.indexOf("\n")).trim();
        p.kill("SIGTERM");
      }
    });
    p.stderr.on("data", (c) => (err += c));
    p.once("exit", (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, firstLine, stderr: err });
    });
  });
}

describe("compose.replicas.yaml: the commands inside its containers", { skip }, () => {
  test("acs-emulator serves with the access key of the connection-string secret", async () => {
    const key = "Y29tcG9zZS1yZWNpcGUta2V5LWZvci10aGUtZW11bGF0b3ItdGVzdA==";
    const secret = join(tmp, "acs_connection_string");
    writeFileSync(secret, `endpoint=http://acs-emulator:8090/;accesskey=${key}\n`);
    const r = await runShell(emulatorCommand(secret, join(tmp, "emu.db")));
    assert.ok(r.firstLine, `no connection string printed: ${JSON.stringify(r)}`);
    assert.match(r.firstLine, /^endpoint=http:\/\/127\.0\.0\.1:\d+\/;accesskey=/);
    assert.equal(r.firstLine.split("accesskey=")[1], key, r.firstLine);
  });

  test("acs-emulator refuses a secret without an access key", async () => {
    const secret = join(tmp, "no_key");
    writeFileSync(secret, "endpoint=https://example.communication.azure.com/\n");
    const r = await runShell(emulatorCommand(secret, join(tmp, "emu2.db")));
    assert.equal(r.code, 2, JSON.stringify(r));
    assert.equal(r.firstLine, null, JSON.stringify(r));
    assert.match(r.stderr, /no accesskey= in the acs_connection_string secret/);
  });

  test("the replicas' entrypoint lets TOKENVEND_DB_FILE win over the image's TOKENVEND_DB", () => {
    const svc = recipe().services.tokenvend;
    const [cmd, ...args] = svc.entrypoint;
    assert.equal(args[args.length - 1], "tokenvend");
    assert.equal(svc.environment.TOKENVEND_DB_FILE, "/run/secrets/tokenvend_db_uri");
    // A URI of the form scripts/replicas-secrets.sh writes (config check does not connect).
    const dbFile = join(tmp, "tokenvend_db_uri");
    writeFileSync(dbFile, "postgresql://tokenvend:0123abcd@postgres:5432/tokenvend\n", { mode: 0o600 });
    const env = cleanEnv({ TOKENVEND_DB: "/data/tokenvend.db", TOKENVEND_DB_FILE: dbFile });
    const bin = dirname(tokenvendPath());
    const opts = { env: { ...env, PATH: `${bin}:${process.env.PATH}` }, encoding: "utf8", timeout: DEADLINE_MS };
    // The image's environment as is: tokenvend refuses it, which is why the wrapper exists.
    const plain = spawnSync(tokenvendPath(), ["config", "check"], opts);
    assert.equal(plain.status, 2, plain.stdout + plain.stderr);
    assert.match(plain.stderr, /both TOKENVEND_DB and TOKENVEND_DB_FILE are set/);
    const wrapped = spawnSync(cmd, [...args, "config", "check"], opts);
    assert.equal(wrapped.status, 0, wrapped.stdout + wrapped.stderr);
    assert.match(wrapped.stdout, /^db = postgresql:\/\/tokenvend:\*\*\*@postgres:5432\/tokenvend\s+# env TOKENVEND_DB_FILE$/m);
    assert.ok(!wrapped.stdout.includes("0123abcd"), "config check shows the URI without its password");
  });
});
