// The rules of compose.replicas.yaml (tokenvend replicas on PostgreSQL behind one published
// port), checked after the Compose schema by check-compose.mjs. Each rule is one thing the
// README's "Running several replicas" promises; checkReplicas returns one sentence per breach.

// Settings that are secrets: they may come only from a file (NAME_FILE), never inline.
const SECRET_ENV = [
  "TOKENVEND_DB",
  "TOKENVEND_ACS_CONNECTION_STRING",
  "COMMUNICATION_SERVICES_CONNECTION_STRING",
  "TOKENVEND_SECRET_KEY",
  "AZURE_CLIENT_SECRET",
  "POSTGRES_PASSWORD",
];

// The *_FILE variables each service must take from a Compose secret.
const SECRET_FILES = {
  tokenvend: ["TOKENVEND_DB_FILE", "TOKENVEND_ACS_CONNECTION_STRING_FILE", "TOKENVEND_SECRET_KEY_FILE"],
  postgres: ["POSTGRES_PASSWORD_FILE"],
};

// environment as a map, from either of Compose's two forms.
function envOf(svc) {
  const env = svc.environment || {};
  if (!Array.isArray(env)) return new Map(Object.entries(env).map(([k, v]) => [k, v == null ? null : String(v)]));
  return new Map(env.map((s) => {
    const i = s.indexOf("=");
    return i < 0 ? [s, null] : [s.slice(0, i), s.slice(i + 1)];
  }));
}

const asList = (v) => (v == null ? [] : Array.isArray(v) ? v : [v]);
const testText = (hc) => asList(hc && hc.test).join(" ");
const secretNames = (svc) => asList(svc.secrets).map((s) => (typeof s === "string" ? s : s.source));
const secretTarget = (svc, name) => {
  const s = asList(svc.secrets).find((x) => (typeof x === "string" ? x : x.source) === name);
  if (!s) return null;
  const t = typeof s === "string" ? null : s.target;
  return t ? (t.startsWith("/") ? t : `/run/secrets/${t}`) : `/run/secrets/${name}`;
};
const commandOf = (svc) => asList(svc.command).join(" ");
const isTokenvendReplica = (svc) => /^(.*\/)?tokenvend(:|$)/.test(svc.image || "") && /(^|\s)serve(\s|$)/.test(commandOf(svc));
const isPostgres = (svc) => /^(docker\.io\/)?(library\/)?postgres:15([.-]|$)/.test(svc.image || "");
const publishedPorts = (svc) => asList(svc.ports);

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

  for (const n of names) {
    const svc = services[n];
    const hc = svc.healthcheck;
    // Every service reports its health, and what the others wait for is health, not a start.
    if (!hc || hc.disable === true || /^NONE\b/.test(testText(hc))) {
      problems.push(`service ${n} has no healthcheck`);
    }
    const dep = svc.depends_on;
    if (Array.isArray(dep)) problems.push(`service ${n}: depends_on without condition: service_healthy`);
    for (const [d, how] of Object.entries(dep && !Array.isArray(dep) ? dep : {})) {
      if (!how || how.condition !== "service_healthy") {
        problems.push(`service ${n}: depends_on ${d} without condition: service_healthy`);
      }
    }

    // Hardening: read-only root with a tmpfs for scratch, no capabilities, no privilege gain.
    if (svc.read_only !== true) problems.push(`service ${n} is not read_only: true`);
    else if (!asList(svc.tmpfs).some((t) => String(t).split(":")[0] === "/tmp")) {
      problems.push(`service ${n} is read-only without a tmpfs on /tmp`);
    }
    if (!asList(svc.cap_drop).includes("ALL")) problems.push(`service ${n} does not drop ALL capabilities`);
    if (!asList(svc.security_opt).some((o) => /^no-new-privileges(:true)?$/.test(o))) {
      problems.push(`service ${n} lacks security_opt no-new-privileges:true`);
    }
    if (svc.privileged === true) problems.push(`service ${n} is privileged`);
    if (/^(0|root)(:|$)/.test(String(svc.user ?? ""))) problems.push(`service ${n} runs as root`);

    // Secrets never inline: not as a secret setting, nor as a URI with a password in it.
    const env = envOf(svc);
    for (const [k, v] of env) {
      if (SECRET_ENV.includes(k) && v !== null && v !== "") {
        problems.push(`service ${n}: ${k} is set inline; use ${k}_FILE with a Compose secret`);
      } else if (v && /postgres(ql)?:\/\/[^/@\s]*:[^/@\s]*@/.test(v)) {
        problems.push(`service ${n}: ${k} holds a database password; use a Compose secret`);
      } else if (v && /accesskey=/i.test(v)) {
        problems.push(`service ${n}: ${k} holds an ACS access key; use a Compose secret`);
      }
    }
    const wanted = tv.includes(n) ? SECRET_FILES.tokenvend : pg.includes(n) ? SECRET_FILES.postgres : [];
    for (const k of wanted) {
      const path = env.get(k);
      const secret = secretNames(svc).find((s) => secretTarget(svc, s) === path);
      if (!path) problems.push(`service ${n}: ${k} is not set`);
      else if (!secret) problems.push(`service ${n}: ${k}=${path} is not one of its Compose secrets`);
      else if (!compose.secrets || !compose.secrets[secret] || !compose.secrets[secret].file) {
        problems.push(`secret ${secret} is not read from a file`);
      }
    }
  }

  for (const n of tv) {
    const svc = services[n];
    if (!/\/readyz\b/.test(testText(svc.healthcheck))) problems.push(`replica ${n}'s healthcheck does not ask /readyz`);
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
