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
      (d) => { d.services.tokenvend.healthcheck.test = ["CMD", "curl", "-fsS", "http://127.0.0.1:8080/healthz"]; },
      /healthcheck does not ask \/readyz/],
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
