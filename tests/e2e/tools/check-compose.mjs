// Validates a docker-compose.yml against the Compose Specification's JSON schema.
//   node tests/e2e/tools/check-compose.mjs COMPOSE_YML COMPOSE_SPEC_JSON
// Prints "compose: OK" or each schema error, and exits 1 on any error.

import { readFileSync } from "node:fs";
import Ajv from "ajv";
import YAML from "yaml";

const [ymlPath, schemaPath] = process.argv.slice(2);
if (!ymlPath || !schemaPath) {
  console.error("usage: check-compose.mjs COMPOSE_YML COMPOSE_SPEC_JSON");
  process.exit(2);
}

// Strict YAML: duplicate keys and other YAML errors fail instead of being silently merged.
const doc = YAML.parseDocument(readFileSync(ymlPath, "utf8"), { uniqueKeys: true, merge: true });
if (doc.errors.length > 0) {
  for (const e of doc.errors) console.error(`compose: YAML error: ${e.message}`);
  process.exit(1);
}
const compose = doc.toJS({ maxAliasCount: 100 });

const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
// The spec names its meta-schema by an https URL that ajv does not register; it is draft-07.
delete schema.$schema;
const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);
if (!validate(compose)) {
  for (const e of validate.errors) {
    console.error(`compose: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  }
  process.exit(1);
}

// The schema allows much; check the few things this project relies on.
const problems = [];
const services = compose.services || {};
for (const name of ["tokenvend", "acs-emulator"]) {
  if (!services[name]) problems.push(`service ${name} is missing`);
  else if (!services[name].healthcheck) problems.push(`service ${name} has no healthcheck`);
}
const env = (services.tokenvend && services.tokenvend.environment) || {};
const cs = Array.isArray(env)
  ? (env.find((s) => s.startsWith("COMMUNICATION_SERVICES_CONNECTION_STRING=")) || "").split("=").slice(1).join("=")
  : env.COMMUNICATION_SERVICES_CONNECTION_STRING;
if (!cs || !/endpoint=http:\/\/acs-emulator:\d+\/?;accesskey=/i.test(cs)) {
  problems.push("tokenvend's COMMUNICATION_SERVICES_CONNECTION_STRING does not point at acs-emulator");
}
const vols = (services.tokenvend && services.tokenvend.volumes) || [];
const dataVol = vols.map((v) => (typeof v === "string" ? v.split(":") : [v.source, v.target]))
  .find(([src, dst]) => dst === "/data" && compose.volumes && src in compose.volumes);
if (!dataVol) problems.push("tokenvend's /data is not a named volume");
for (const p of problems) console.error(`compose: ${p}`);
if (problems.length > 0) process.exit(1);
console.log(`compose: OK (${Object.keys(services).join(", ")})`);
