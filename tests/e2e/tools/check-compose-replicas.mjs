// The rules of compose.replicas.yaml (tokenvend replicas on PostgreSQL behind one published
// port), checked after the Compose schema by check-compose.mjs. Each rule is one thing the
// README's "Running several replicas" promises; checkReplicas returns one sentence per breach.

import { asList, checkCommon, checkSecretFiles, commandOf, envOf, testText } from "./check-compose-common.mjs";

// The *_FILE variables each service must take from a Compose secret.
const SECRET_FILES = {
  tokenvend: ["TOKENVEND_DB_FILE", "TOKENVEND_ACS_CONNECTION_STRING_FILE", "TOKENVEND_SECRET_KEY_FILE"],
  postgres: ["POSTGRES_PASSWORD_FILE"],
};

const isTokenvendReplica = (svc) => /^(.*\/)?tokenvend(:|$)/.test(svc.image || "") && /(^|\s)serve(\s|$)/.test(commandOf(svc));
const isPostgres = (svc) => /^(docker\.io\/)?(library\/)?postgres:15([.-]|$)/.test(svc.image || "");
const publishedPorts = (svc) => asList(svc.ports);

// `tokenvend healthcheck` without --url asks /readyz; any other probe must name it.
function asksReadyz(hc) {
  const t = asList(hc && hc.test).map(String);
  const url = t.indexOf("--url");
  if (t.includes("healthcheck") && /(^|\/)tokenvend$/.test(t[t.indexOf("healthcheck") - 1] || "")) {
    return url < 0 || /\/readyz\b/.test(t[url + 1] || "");
  }
  return /\/readyz\b/.test(testText(hc));
}

export function checkReplicas(compose) {
  const problems = [];
  const services = compose.services || {};
  const names = Object.keys(services);
  const pg = names.filter((n) => isPostgres(services[n]));
  const tv = names.filter((n) => isTokenvendReplica(services[n]));

  if (pg.length !== 1) problems.push(`expected one postgres:15 service, found ${pg.length}`);
  const replicas = tv.reduce((sum, n) => sum + ((services[n].deploy && services[n].deploy.replicas) ?? 1), 0);
  if (replicas < 2) problems.push(`expected two or more tokenvend replicas (tokenvend serve), found ${replicas}`);

  // One published port, and not on a replica: the balancer's.
  const publishers = names.filter((n) => publishedPorts(services[n]).length > 0);
  const nports = publishers.reduce((sum, n) => sum + publishedPorts(services[n]).length, 0);
  if (nports !== 1) problems.push(`expected exactly one published port, found ${nports}`);
  for (const n of publishers.filter((p) => tv.includes(p))) {
    problems.push(`service ${n} is a replica and publishes a port (only the balancer may)`);
  }
  for (const lb of publishers.filter((p) => !tv.includes(p))) {
    for (const n of tv) {
      const dep = services[lb].depends_on;
      if (!dep || Array.isArray(dep) || !dep[n]) problems.push(`the balancer ${lb} does not depend on ${n}`);
    }
  }

  // Hardening, health, service_healthy, no inline secrets: the rules of every recipe.
  problems.push(...checkCommon(compose));
  for (const n of names) {
    const wanted = tv.includes(n) ? SECRET_FILES.tokenvend : pg.includes(n) ? SECRET_FILES.postgres : [];
    problems.push(...checkSecretFiles(compose, n, wanted));
  }

  for (const n of tv) {
    const svc = services[n];
    if (!asksReadyz(svc.healthcheck)) problems.push(`replica ${n}'s healthcheck does not ask /readyz`);
    for (const p of pg) {
      if (!svc.depends_on || Array.isArray(svc.depends_on) || !svc.depends_on[p]) {
        problems.push(`replica ${n} does not depend on ${p}`);
      }
    }
    // Behind a balancer every client has the balancer's address: per-address caps must be off.
    const env = envOf(svc);
    for (const k of ["TOKENVEND_MAX_CONNECTIONS_PER_IP", "TOKENVEND_LOGIN_PER_ADDRESS"]) {
      if (env.get(k) !== "0") problems.push(`replica ${n}: ${k} must be "0" behind the balancer`);
    }
  }
  for (const p of pg) {
    if (!/\bpg_isready\b/.test(testText(services[p].healthcheck))) {
      problems.push(`service ${p}'s healthcheck does not run pg_isready`);
    }
  }
  return problems;
}
