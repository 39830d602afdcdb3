// The compose recipes against the Compose Specification's schema and their own rules, through
// the same checker scripts/check-container.sh runs (tools/check-compose.mjs, as a command for
// the recipes themselves): docker-compose.yml (one node) and compose.replicas.yaml (replicas on
// PostgreSQL behind one port). Each rule of the replicas recipe is also broken on purpose in a
// copy, checked in this process (checkCompose, the command's own function), to show the
// checker catches it.
// The load balancer's configuration, inline in compose.replicas.yaml, is checked by haproxy -c
// when haproxy is installed. No binaries of the project needed.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, describe, test } from "node:test";
import YAML from "yaml";
import { REPO_ROOT } from "./lib/emulator.mjs";
import { checkCompose } from "./tools/check-compose.mjs";

const CHECKER = resolve(REPO_ROOT, "tests", "e2e", "tools", "check-compose.mjs");
const SCHEMA = resolve(REPO_ROOT, "tests", "container", "compose-spec.json");
const REPLICAS = resolve(REPO_ROOT, "compose.replicas.yaml");
const SINGLE = resolve(REPO_ROOT, "docker-compose.yml");

const tmp = mkdtempSync(join(tmpdir(), "tv-compose-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function check(file, recipe) {
  const args = [CHECKER, file, SCHEMA];
  if (recipe) args.push(recipe);
  const r = spawnSync(process.execPath, args, { encoding: "utf8" });
  return { status: r.status, out: r.stdout + r.stderr };
}

const replicasDoc = () => YAML.parse(readFileSync(REPLICAS, "utf8"), { merge: true });

// A copy of compose.replicas.yaml changed by `edit`, checked as the replicas recipe.
function checkCopy(edit) {
  const doc = replicasDoc();
  edit(doc);
  return checkCompose(YAML.stringify(doc), SCHEMA, "replicas").errors.join("\n");
}

describe("compose recipes", () => {
  test("docker-compose.yml passes the schema and the one-node rules", () => {
    const r = check(SINGLE);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /compose: OK/);
  });

  test("compose.replicas.yaml passes the schema and the replica rules", () => {
    const r = check(REPLICAS, "replicas");
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /compose: OK \(.*postgres.*\)/);
  });

  test("a copy rewritten by the YAML library still passes (the broken copies below start equal)", () => {
    assert.equal(checkCopy(() => {}), "");
  });

  test("the one-node file is not a replica recipe", () => {
    const r = check(SINGLE, "replicas");
    assert.equal(r.status, 1, r.out);
    assert.match(r.out, /expected one postgres:15 service/);
  });

  const broken = [
    ["a key the Compose schema does not know", (d) => { d.services.tokenvend.replicas = 2; },
      /\/services\/tokenvend must NOT have additional properties/],
    ["a replica without a healthcheck", (d) => { delete d.services.tokenvend.healthcheck; },
      /service tokenvend has no healthcheck/],
    ["a disabled healthcheck", (d) => { d.services.postgres.healthcheck = { disable: true }; },
      /service postgres has no healthcheck/],
    ["a replica probing /healthz instead of /readyz",
      (d) => { d.services.tokenvend.healthcheck.test = ["CMD", "tokenvend", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]; },
      /healthcheck does not ask \/readyz/],
    ["a probe with curl, which the image does not have",
      (d) => { d.services.tokenvend.healthcheck.test = ["CMD", "curl", "-fsS", "http://127.0.0.1:8080/readyz"]; },
      /tokenvend: the healthcheck runs curl, not one of the image's programs/],
    ["a shell probe in the project's image",
      (d) => { d.services["acs-emulator"].healthcheck.test = ["CMD-SHELL", "tokenvend healthcheck --url http://127.0.0.1:8090/emulator/jwks"]; },
      /acs-emulator: the healthcheck runs \/bin\/sh, not one of the image's programs/],
    ["an entrypoint the image does not have", (d) => { d.services.tokenvend.entrypoint = ["env", "-u", "TOKENVEND_DB", "tokenvend"]; },
      /tokenvend: the entrypoint runs env, not one of the image's programs/],
    ["the emulator's access key on the command line",
      (d) => { d.services["acs-emulator"].command = ["--listen", "0.0.0.0:8090", "--access-key", "a2V5"]; },
      /acs-emulator: an access key on the command line/],
    ["a capability added back", (d) => { d.services.tokenvend.cap_add = ["NET_BIND_SERVICE"]; },
      /tokenvend adds capabilities/],
    ["postgres without pg_isready", (d) => { d.services.postgres.healthcheck.test = ["CMD", "true"]; },
      /postgres's healthcheck does not run pg_isready/],
    ["depends_on that waits for a start only",
      (d) => { d.services.tokenvend.depends_on.postgres.condition = "service_started"; },
      /tokenvend: depends_on postgres without condition: service_healthy/],
    ["depends_on as a plain list", (d) => { d.services.lb.depends_on = ["tokenvend"]; },
      /lb: depends_on without condition: service_healthy/],
    ["one replica", (d) => { d.services.tokenvend.deploy.replicas = 1; },
      /expected two or more tokenvend replicas/],
    ["a replica publishing a port", (d) => { d.services.tokenvend.ports = ["8081:8081"]; },
      /tokenvend is a replica and publishes a port/],
    ["a second published port", (d) => { d.services.lb.ports.push("8404:8404"); },
      /expected exactly one published port, found 2/],
    ["the database URI inline",
      (d) => {
        delete d.services.tokenvend.environment.TOKENVEND_DB_FILE;
        d.services.tokenvend.environment.TOKENVEND_DB = "postgresql://tokenvend:pw@postgres/tokenvend";
      },
      /TOKENVEND_DB is set inline/],
    ["a password in another variable",
      (d) => { d.services.tokenvend.environment.EXTRA = "postgres://tokenvend:pw@postgres/tokenvend"; },
      /EXTRA holds a database password/],
    ["the postgres password inline",
      (d) => { d.services.postgres.environment.POSTGRES_PASSWORD = "pw"; },
      /POSTGRES_PASSWORD is set inline/],
    ["a secret file variable naming no mounted secret",
      (d) => { d.services.tokenvend.secrets = d.services.tokenvend.secrets.filter((s) => s !== "tokenvend_secret_key"); },
      /TOKENVEND_SECRET_KEY_FILE=\/run\/secrets\/tokenvend_secret_key is not one of its Compose secrets/],
    ["a secret taken from the environment instead of a file",
      (d) => { d.secrets.tokenvend_db_uri = { environment: "TOKENVEND_DB_URI" }; },
      /secret tokenvend_db_uri is not read from a file/],
    ["a writable root filesystem", (d) => { d.services.lb.read_only = false; }, /service lb is not read_only: true/],
    ["a read-only service without /tmp", (d) => { d.services.postgres.tmpfs = ["/var/run/postgresql"]; },
      /postgres is read-only without a tmpfs on \/tmp/],
    ["capabilities kept", (d) => { d.services["acs-emulator"].cap_drop = ["NET_RAW"]; },
      /acs-emulator does not drop ALL capabilities/],
    ["no no-new-privileges", (d) => { d.services.tokenvend.security_opt = []; },
      /tokenvend lacks security_opt no-new-privileges:true/],
    ["root", (d) => { d.services.postgres.user = "root"; }, /postgres runs as root/],
    ["the per-address caps left on behind the balancer",
      (d) => { delete d.services.tokenvend.environment.TOKENVEND_LOGIN_PER_ADDRESS; },
      /TOKENVEND_LOGIN_PER_ADDRESS must be "0" behind the balancer/],
    ["the balancer not waiting for the replicas", (d) => { delete d.services.lb.depends_on; },
      /the balancer lb does not depend on tokenvend/],
  ];
  for (const [what, edit, expected] of broken) {
    test(`the checker refuses ${what}`, () => {
      assert.match(checkCopy(edit), expected);
    });
  }

  // The hardening of every service and every wait, asserted on the files themselves (not only
  // through the checker, so a slip in the checker cannot hide one).
  for (const [label, file] of [["docker-compose.yml", SINGLE], ["compose.replicas.yaml", REPLICAS]]) {
    test(`${label}: every service is hardened and every depends_on waits for health`, () => {
      const doc = YAML.parse(readFileSync(file, "utf8"), { merge: true });
      const names = Object.keys(doc.services);
      assert.ok(names.length >= 2, names.join(","));
      for (const n of names) {
        const svc = doc.services[n];
        assert.equal(svc.read_only, true, `${n}: read_only`);
        assert.ok(svc.tmpfs && [].concat(svc.tmpfs).some((t) => String(t).split(":")[0] === "/tmp"), `${n}: tmpfs /tmp`);
        assert.deepEqual(svc.cap_drop, ["ALL"], `${n}: cap_drop`);
        assert.equal(svc.cap_add, undefined, `${n}: cap_add`);
        assert.ok([].concat(svc.security_opt || []).includes("no-new-privileges:true"), `${n}: no-new-privileges`);
        assert.ok(svc.healthcheck && Array.isArray(svc.healthcheck.test) && svc.healthcheck.test[0] === "CMD",
          `${n}: a CMD healthcheck`);
        assert.notEqual(svc.healthcheck.disable, true, `${n}: healthcheck enabled`);
        if (svc.build || /tokenvend:/.test(svc.image || "")) {
          assert.deepEqual(svc.healthcheck.test.slice(0, 3), ["CMD", "tokenvend", "healthcheck"], `${n}: tokenvend healthcheck`);
          const argv = [].concat(svc.entrypoint || [], svc.command || []).map(String);
          assert.ok(!argv.some((a) => /^(\/bin\/)?(sh|bash|env|sed)$/.test(a)), `${n}: no shell tools: ${argv.join(" ")}`);
          assert.ok(!argv.some((a) => /^--access-key$|accesskey=/i.test(a)), `${n}: no key on the command line`);
        }
        for (const [dep, how] of Object.entries(svc.depends_on || {})) {
          assert.equal(how && how.condition, "service_healthy", `${n} -> ${dep}`);
        }
      }
      for (const [name, sec] of Object.entries(doc.secrets || {})) {
        assert.ok(sec.file, `secret ${name} from a file`);
      }
    });
  }

  const singleDoc = () => YAML.parse(readFileSync(SINGLE, "utf8"), { merge: true });
  function checkSingleCopy(edit) {
    const doc = singleDoc();
    edit(doc);
    return checkCompose(YAML.stringify(doc), SCHEMA, "single").errors.join("\n");
  }
  test("a copy of docker-compose.yml rewritten by the YAML library still passes", () => {
    assert.equal(checkSingleCopy(() => {}), "");
  });
  const brokenSingle = [
    ["a writable root filesystem", (d) => { delete d.services.tokenvend.read_only; }, /service tokenvend is not read_only: true/],
    ["no /tmp tmpfs", (d) => { delete d.services["acs-emulator"].tmpfs; }, /acs-emulator is read-only without a tmpfs on \/tmp/],
    ["capabilities kept", (d) => { delete d.services["acs-emulator"].cap_drop; }, /acs-emulator does not drop ALL capabilities/],
    ["no no-new-privileges", (d) => { delete d.services.tokenvend.security_opt; }, /tokenvend lacks security_opt no-new-privileges:true/],
    ["root", (d) => { d.services.tokenvend.user = "0:0"; }, /tokenvend runs as root/],
    ["no healthcheck", (d) => { delete d.services["acs-emulator"].healthcheck; }, /service acs-emulator has no healthcheck/],
    ["a curl healthcheck", (d) => { d.services.tokenvend.healthcheck.test = ["CMD", "curl", "-f", "http://127.0.0.1:8080/readyz"]; },
      /tokenvend: the healthcheck runs curl/],
    ["depends_on that waits for a start only",
      (d) => { d.services.tokenvend.depends_on["acs-emulator"].condition = "service_started"; },
      /tokenvend: depends_on acs-emulator without condition: service_healthy/],
    ["depends_on as a plain list", (d) => { d.services.tokenvend.depends_on = ["acs-emulator"]; },
      /tokenvend: depends_on without condition: service_healthy/],
    ["the connection string inline",
      (d) => {
        delete d.services.tokenvend.environment.TOKENVEND_ACS_CONNECTION_STRING_FILE;
        d.services.tokenvend.environment.COMMUNICATION_SERVICES_CONNECTION_STRING = "endpoint=http://acs-emulator:8090/;accesskey=a2V5";
      },
      /COMMUNICATION_SERVICES_CONNECTION_STRING is set inline/],
    ["the emulator's key on its command line",
      (d) => { d.services["acs-emulator"].command = ["--listen", "0.0.0.0:8090", "--access-key", "a2V5"]; },
      /acs-emulator: an access key on the command line/],
    ["the emulator's key from another file",
      (d) => { d.services["acs-emulator"].command = ["--listen", "0.0.0.0:8090", "--access-key-from", "/run/secrets/other"]; },
      /--access-key-from is not the secret tokenvend's connection string comes from/],
    ["a secret from the environment", (d) => { d.secrets.acs_connection_string = { environment: "ACS_CS" }; },
      /secret acs_connection_string is not read from a file/],
    ["a shell entrypoint",
      (d) => { d.services["acs-emulator"].entrypoint = ["/bin/sh", "-c"]; },
      /acs-emulator: the entrypoint runs \/bin\/sh/],
  ];
  for (const [what, edit, expected] of brokenSingle) {
    test(`the one-node checker refuses ${what}`, () => {
      assert.match(checkSingleCopy(edit), expected);
    });
  }

  test("the checker refuses a duplicate key", () => {
    const text = readFileSync(REPLICAS, "utf8").replace("    image: haproxy:3.0\n",
      "    image: haproxy:3.0\n    image: haproxy:2.8\n");
    const errors = checkCompose(text, SCHEMA, "replicas").errors.join("\n");
    assert.match(errors, /YAML error: Map keys must be unique/);
  });

  const haproxy = spawnSync("haproxy", ["-v"], { encoding: "utf8" });
  test("the balancer's configuration is valid HAProxy configuration", {
    skip: haproxy.status === 0 ? false : "haproxy is not installed (Debian package haproxy)",
  }, () => {
    const cfg = join(tmp, "haproxy.cfg");
    writeFileSync(cfg, replicasDoc().configs.haproxy_cfg.content);
    const ok = spawnSync("haproxy", ["-c", "-f", cfg], { encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    // And haproxy -c does refuse a broken one, so the check above can fail.
    writeFileSync(cfg, replicasDoc().configs.haproxy_cfg.content.replace("balance roundrobin", "balance nosuch"));
    const bad = spawnSync("haproxy", ["-c", "-f", cfg], { encoding: "utf8" });
    assert.notEqual(bad.status, 0, bad.stdout + bad.stderr);
  });
});
