// The commands the compose recipes run inside their containers, run here with this build's
// binaries exactly as written (no shell: the image has none for them), so a slip in a recipe
// fails a test instead of a deployment:
//   - acs-emulator's command, in both recipes, takes its access key from the connection-string
//     secret with --access-key-from (it serves with the secret's key, which it does not print:
//     a client with that key is served, one with another key is refused), and refuses a
//     secret without one (exit 2);
//   - each recipe's emulator health check (`tokenvend healthcheck --url ...`) passes against it;
//   - the image's environment (the Dockerfile's runtime ENV) with the replicas' environment loads:
//     the image sets no TOKENVEND_DB, so TOKENVEND_DB_FILE alone names the database, through the
//     image's own entrypoint (tokenvend; no `env -u` wrapper);
//   - with the image's working directory, the built-in database path lands on the /data volume.
// Only what Compose provides is swapped: the secret's path, the listen address, the data path.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, posix, resolve } from "node:path";
import { after, describe, test } from "node:test";
import YAML from "yaml";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { REPO_ROOT, emulatorPath } from "./lib/emulator.mjs";
import { cleanEnv, tokenvendPath } from "./lib/service.mjs";

const DEADLINE_MS = 30_000;
const RECIPES = ["docker-compose.yml", "compose.replicas.yaml"];
const recipe = (file) => YAML.parse(readFileSync(resolve(REPO_ROOT, file), "utf8"), { merge: true });
const skip = existsSync(emulatorPath()) && existsSync(tokenvendPath()) ? false : "build/bin has no binaries (make)";
const tmp = mkdtempSync(join(tmpdir(), "tv-compose-cmd-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const binPath = () => `${dirname(emulatorPath())}:${process.env.PATH}`;

// The runtime stage of the Dockerfile: its ENV pairs, WORKDIR, VOLUMEs and ENTRYPOINT.
function imageConfig() {
  const text = readFileSync(resolve(REPO_ROOT, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const from = lines.map((l, i) => (/^FROM\s/i.test(l) ? i : -1)).filter((i) => i >= 0).pop();
  const cfg = { env: {}, workdir: "/", volumes: [], entrypoint: null };
  for (const l of lines.slice(from)) {
    const [, ins, rest] = l.match(/^(\S+)\s+(.*)$/) || [];
    if (/^ENV$/i.test(ins)) {
      for (const m of rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) cfg.env[m[1]] = m[2].replace(/^"|"$/g, "");
    } else if (/^WORKDIR$/i.test(ins)) {
      cfg.workdir = posix.resolve(cfg.workdir, rest);
    } else if (/^VOLUME$/i.test(ins)) {
      cfg.volumes.push(...(rest.startsWith("[") ? JSON.parse(rest) : rest.split(/\s+/)));
    } else if (/^ENTRYPOINT$/i.test(ins)) {
      cfg.entrypoint = JSON.parse(rest);
    }
  }
  return cfg;
}

// The emulator's argv from a recipe, with the container's paths swapped for test ones.
function emulatorArgv(file, secretPath, dbPath) {
  const svc = recipe(file).services["acs-emulator"];
  assert.deepEqual(svc.entrypoint, ["acs-emulator"], `${file}: the emulator runs directly`);
  assert.ok(svc.secrets.includes("acs_connection_string"));
  const swaps = new Map([["/run/secrets/acs_connection_string", secretPath], ["0.0.0.0:8090", "127.0.0.1:0"],
    ["/data/acs-emulator.db", dbPath]]);
  const argv = svc.command.map(String);
  for (const from of swaps.keys()) assert.ok(argv.includes(from), `${file}: the emulator's command no longer has ${from}`);
  return [svc.entrypoint[0], ...argv.map((a) => swaps.get(a) ?? a)];
}

// Runs argv with build/bin first on PATH; resolves to { code, firstLine, stderr, proc } once it
// printed a line (then it is left running) or exited.
function runUntilLine([cmd, ...args]) {
  return new Promise((res) => {
    const p = spawn(cmd, args, { env: { ...cleanEnv(), PATH: binPath() }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let done = false;
    const timer = setTimeout(() => p.kill("SIGKILL"), DEADLINE_MS);
    p.stdout.setEncoding("utf8");
    p.stderr.setEncoding("utf8");
    p.stdout.on("data", (c) => {
      out += c;
      if (!done && out.includes("\n")) {
        done = true;
        res({ code: null, firstLine: out.slice(0, out.indexOf("\n")).trim(), stderr: err, proc: p, timer });
      }
    });
    p.stderr.on("data", (c) => (err += c));
    p.once("exit", (code) => {
      clearTimeout(timer);
      if (!done) {
        done = true;
        res({ code, firstLine: null, stderr: err, proc: null, timer });
      }
    });
  });
}
async function stop(r) {
  if (!r.proc) return;
  const exited = new Promise((res) => r.proc.once("exit", res));
  r.proc.kill("SIGTERM");
  await exited;
  clearTimeout(r.timer);
}

describe("compose recipes: the commands inside their containers", { skip }, () => {
  for (const file of RECIPES) {
    test(`${file}: acs-emulator serves with the secret's access key, and its health check passes`, async () => {
      const key = Buffer.from(`compose-recipe-key-for-${file}`).toString("base64");
      const secret = join(tmp, `cs-${file}`);
      writeFileSync(secret, `endpoint=http://acs-emulator:8090/;accesskey=${key}\n`, { mode: 0o400 });
      const r = await runUntilLine(emulatorArgv(file, secret, join(tmp, `emu-${file}.db`)));
      try {
        assert.ok(r.firstLine, `no connection string printed: ${r.stderr}`);
        // Only the endpoint: the key stays in the secret file (stdout is the container's log).
        const m = r.firstLine.match(/^endpoint=http:\/\/127\.0\.0\.1:(\d+)\/$/);
        assert.ok(m, r.firstLine);
        const client = (k) => new CommunicationIdentityClient(`${r.firstLine};accesskey=${k}`, {
          allowInsecureConnection: true, retryOptions: { maxRetries: 0 },
        });
        const made = await client(key).createUser();
        assert.match(made.communicationUserId, /^8:acs:/);
        const other = Buffer.from(`another-key-for-${file}`).toString("base64");
        await assert.rejects(client(other).createUser(), (e) => e.statusCode === 401);
        // The recipe's probe of the emulator, with the port the test one listens on.
        const hc = recipe(file).services["acs-emulator"].healthcheck.test;
        assert.deepEqual(hc.slice(0, 3), ["CMD", "tokenvend", "healthcheck"]);
        const argv = hc.slice(1).map((a) => a.replace("127.0.0.1:8090", `127.0.0.1:${m[1]}`));
        const probe = spawnSync(argv[0], argv.slice(1), {
          env: { ...cleanEnv(), PATH: binPath() }, encoding: "utf8", timeout: DEADLINE_MS,
        });
        assert.equal(probe.status, 0, probe.stdout + probe.stderr);
      } finally {
        await stop(r);
      }
    });

    test(`${file}: acs-emulator refuses a secret without an access key (exit 2)`, async () => {
      const secret = join(tmp, `nokey-${file}`);
      writeFileSync(secret, "endpoint=https://example.communication.azure.com/\n");
      const r = await runUntilLine(emulatorArgv(file, secret, join(tmp, `emu2-${file}.db`)));
      await stop(r);
      assert.equal(r.firstLine, null, r.firstLine);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--access-key-from .*not an ACS connection string/);
    });
  }

  test("the image sets no TOKENVEND_DB, so the replicas' TOKENVEND_DB_FILE loads through its entrypoint", () => {
    const image = imageConfig();
    assert.equal(image.env.TOKENVEND_DB, undefined, "the image's ENV sets TOKENVEND_DB");
    assert.deepEqual(image.entrypoint, ["tokenvend"]);
    const svc = recipe("compose.replicas.yaml").services.tokenvend;
    assert.equal(svc.entrypoint, undefined, "the replicas use the image's entrypoint");
    assert.equal(svc.environment.TOKENVEND_DB_FILE, "/run/secrets/tokenvend_db_uri");
    // A URI of the form scripts/replicas-secrets.sh writes (config check does not connect), and
    // the other secret files the replicas' environment names.
    const files = {
      "/run/secrets/tokenvend_db_uri": "postgresql://tokenvend:0123abcd@postgres:5432/tokenvend",
      "/run/secrets/acs_connection_string": "endpoint=http://acs-emulator:8090/;accesskey=a2V5LWtleS1rZXk=",
      "/run/secrets/tokenvend_secret_key": Buffer.alloc(32, 7).toString("base64"),
    };
    const env = { ...image.env };
    for (const [k, v] of Object.entries(svc.environment)) {
      let value = String(v ?? "").replace(/^\$\{[A-Z_]+:-(.*)\}$/, "$1");
      if (files[value]) {
        const p = join(tmp, value.split("/").pop());
        writeFileSync(p, `${files[value]}\n`, { mode: 0o600 });
        value = p;
      }
      env[k] = value;
    }
    const r = spawnSync(image.entrypoint[0], ["config", "check"], {
      env: { ...cleanEnv(env), PATH: binPath() }, cwd: tmp, encoding: "utf8", timeout: DEADLINE_MS,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^db = postgresql:\/\/tokenvend:\*\*\*@postgres:5432\/tokenvend\s+# env TOKENVEND_DB_FILE$/m);
    assert.ok(!r.stdout.includes("0123abcd"), "config check shows the URI without its password");
  });

  test("with the image's working directory, the default database is on its /data volume", () => {
    const image = imageConfig();
    assert.ok(image.volumes.includes("/data"), JSON.stringify(image.volumes));
    const r = spawnSync(tokenvendPath(), ["config", "check"], {
      env: cleanEnv({ COMMUNICATION_SERVICES_CONNECTION_STRING: "endpoint=http://127.0.0.1:9/;accesskey=a2V5" }),
      cwd: tmp, encoding: "utf8", timeout: DEADLINE_MS,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const m = r.stdout.match(/^db = (\S+)\s+# default$/m);
    assert.ok(m, r.stdout);
    assert.equal(posix.resolve(image.workdir, m[1]), "/data/tokenvend.db");
  });
});
