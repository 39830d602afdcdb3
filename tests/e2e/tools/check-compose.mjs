// Validates a compose file against the Compose Specification's JSON schema, then checks the
// recipe's own rules (the schema allows much that this project does not want).
//   node tests/e2e/tools/check-compose.mjs COMPOSE_YML COMPOSE_SPEC_JSON [single|replicas]
// single (the default): docker-compose.yml, tokenvend with acs-emulator on SQLite.
// replicas: compose.replicas.yaml, replicas on PostgreSQL behind one published port.
// Prints "compose: OK" or each error, and exits 1 on any error (2 on bad usage).
// checkCompose() is the same check for a caller in this process (tests/e2e/compose.test.mjs).

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import Ajv from "ajv";
import YAML from "yaml";
import { asList, checkCommon, checkSecretFiles, envOf, secretNames, secretTarget } from "./check-compose-common.mjs";
import { checkReplicas } from "./check-compose-replicas.mjs";

// The schema compiled once per path (the test suite checks many copies of one recipe).
const validators = new Map();
function validatorFor(schemaPath) {
  if (!validators.has(schemaPath)) {
    const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
    // The spec names its meta-schema by an https URL that ajv does not register; it is draft-07.
    delete schema.$schema;
    validators.set(schemaPath, new Ajv({ allErrors: true, strict: false }).compile(schema));
  }
  return validators.get(schemaPath);
}

// Checks one compose file's text: { errors: [sentence...], services: [name...] }.
export function checkCompose(text, schemaPath, recipe = "single") {
  // Strict YAML: duplicate keys and other YAML errors fail instead of being silently merged.
  const doc = YAML.parseDocument(text, { uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) return { errors: doc.errors.map((e) => `YAML error: ${e.message}`), services: [] };
  const compose = doc.toJS({ maxAliasCount: 100 });
  const validate = validatorFor(schemaPath);
  if (!validate(compose)) {
    return {
      errors: validate.errors.map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`),
      services: [],
    };
  }
  // The schema allows much; check the few things this project relies on.
  // One sentence once, however many rules found the same breach.
  const errors = [...new Set(recipe === "replicas" ? checkReplicas(compose) : checkSingle(compose))];
  return { errors, services: Object.keys(compose.services || {}) };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [ymlPath, schemaPath, recipe = "single"] = process.argv.slice(2);
  if (!ymlPath || !schemaPath || !["single", "replicas"].includes(recipe)) {
    console.error("usage: check-compose.mjs COMPOSE_YML COMPOSE_SPEC_JSON [single|replicas]");
    process.exit(2);
  }
  const { errors, services } = checkCompose(readFileSync(ymlPath, "utf8"), schemaPath, recipe);
  for (const e of errors) console.error(`compose: ${e}`);
  if (errors.length > 0) process.exit(1);
  console.log(`compose: OK (${services.join(", ")})`);
}

// docker-compose.yml: tokenvend and acs-emulator on one node, hardened like every recipe.
function checkSingle(compose) {
  const problems = [];
  const services = compose.services || {};
  for (const name of ["tokenvend", "acs-emulator"]) {
    if (!services[name]) problems.push(`service ${name} is missing`);
  }
  problems.push(...checkCommon(compose));
  if (!services.tokenvend || !services["acs-emulator"]) return problems;
  const tv = services.tokenvend;
  const emu = services["acs-emulator"];
  // The connection string from a file secret, and the emulator's key from that same secret.
  problems.push(...checkSecretFiles(compose, "tokenvend", ["TOKENVEND_ACS_CONNECTION_STRING_FILE"]));
  const csPath = envOf(tv).get("TOKENVEND_ACS_CONNECTION_STRING_FILE");
  const csSecret = secretNames(tv).find((s) => secretTarget(tv, s) === csPath);
  const argv = asList(emu.command).map(String);
  const from = argv.indexOf("--access-key-from");
  if (from < 0) {
    problems.push("acs-emulator does not take its key with --access-key-from");
  } else if (!csSecret || argv[from + 1] !== secretTarget(emu, csSecret)) {
    problems.push("acs-emulator's --access-key-from is not the secret tokenvend's connection string comes from");
  }
  const dep = tv.depends_on;
  if (!dep || Array.isArray(dep) || !dep["acs-emulator"]) problems.push("tokenvend does not depend on acs-emulator");
  const vols = tv.volumes || [];
  const dataVol = vols.map((v) => (typeof v === "string" ? v.split(":") : [v.source, v.target]))
    .find(([src, dst]) => dst === "/data" && compose.volumes && src in compose.volumes);
  if (!dataVol) problems.push("tokenvend's /data is not a named volume");
  return problems;
}
