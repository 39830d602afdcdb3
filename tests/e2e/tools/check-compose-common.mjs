// The rules every compose recipe of this project keeps (docker-compose.yml and
// compose.replicas.yaml alike), checked after the Compose schema by check-compose.mjs: each
// service hardened (read-only root with a /tmp tmpfs, ALL capabilities dropped,
// no-new-privileges, not root, not privileged), reporting its health, waited for only once
// healthy, secrets never inline; and the services of the project's own image use only what that
// image holds (no curl, no shell tools: `tokenvend healthcheck` is its probe). One sentence per
// breach.

// Settings that are secrets: they may come only from a file (NAME_FILE), never inline.
export const SECRET_ENV = [
  "TOKENVEND_DB",
  "TOKENVEND_ACS_CONNECTION_STRING",
  "COMMUNICATION_SERVICES_CONNECTION_STRING",
  "TOKENVEND_SECRET_KEY",
  "TOKENVEND_CACHE_KEY",
  "AZURE_CLIENT_SECRET",
  "POSTGRES_PASSWORD",
];

// The programs of the tokenvend image a recipe may run. The image has no curl, sed or env (a
// command with one fails there: "executable file not found"); its /bin/sh is for an operator's
// `docker exec`, not for recipes, which run the binaries directly.
const IMAGE_PROGRAMS = ["tokenvend", "acs-emulator", "/usr/local/bin/tokenvend", "/usr/local/bin/acs-emulator"];

export const asList = (v) => (v == null ? [] : Array.isArray(v) ? v : [v]);
export const testText = (hc) => asList(hc && hc.test).join(" ");
export const secretNames = (svc) => asList(svc.secrets).map((s) => (typeof s === "string" ? s : s.source));
export const secretTarget = (svc, name) => {
  const s = asList(svc.secrets).find((x) => (typeof x === "string" ? x : x.source) === name);
  if (!s) return null;
  const t = typeof s === "string" ? null : s.target;
  return t ? (t.startsWith("/") ? t : `/run/secrets/${t}`) : `/run/secrets/${name}`;
};
export const commandOf = (svc) => asList(svc.command).join(" ");
export const isProjectImage = (svc) => /^(.*\/)?tokenvend(:|$)/.test(svc.image || "") || svc.build != null;

// environment as a map, from either of Compose's two forms.
export function envOf(svc) {
  const env = svc.environment || {};
  if (!Array.isArray(env)) return new Map(Object.entries(env).map(([k, v]) => [k, v == null ? null : String(v)]));
  return new Map(env.map((s) => {
    const i = s.indexOf("=");
    return i < 0 ? [s, null] : [s.slice(0, i), s.slice(i + 1)];
  }));
}

// The program a healthcheck test runs: CMD's first word; CMD-SHELL and a plain string need a shell.
function probeProgram(hc) {
  const t = asList(hc && hc.test);
  if (t.length === 0) return null;
  if (typeof hc.test === "string" || t[0] === "CMD-SHELL") return "/bin/sh";
  return t[0] === "CMD" ? t[1] : t[0];
}

export function checkCommon(compose) {
  const problems = [];
  const services = compose.services || {};
  for (const [n, svc] of Object.entries(services)) {
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
    if (asList(svc.cap_add).length > 0) problems.push(`service ${n} adds capabilities`);
    if (!asList(svc.security_opt).some((o) => /^no-new-privileges(:true)?$/.test(o))) {
      problems.push(`service ${n} lacks security_opt no-new-privileges:true`);
    }
    if (svc.privileged === true) problems.push(`service ${n} is privileged`);
    if (/^(0|root)(:|$)/.test(String(svc.user ?? ""))) problems.push(`service ${n} runs as root`);

    // Secrets never inline: not as a secret setting, nor as a URI with a password, nor as an
    // access key, whether in the environment or on the command line.
    for (const [k, v] of envOf(svc)) {
      if (SECRET_ENV.includes(k) && v !== null && v !== "") {
        problems.push(`service ${n}: ${k} is set inline; use ${k}_FILE with a Compose secret`);
      } else if (v && /postgres(ql)?:\/\/[^/@\s]*:[^/@\s]*@/.test(v)) {
        problems.push(`service ${n}: ${k} holds a database password; use a Compose secret`);
      } else if (v && /accesskey=/i.test(v)) {
        problems.push(`service ${n}: ${k} holds an ACS access key; use a Compose secret`);
      }
    }
    const argv = [...asList(svc.entrypoint), ...asList(svc.command)].map(String);
    if (argv.some((a) => /^--access-key(=|$)/.test(a) || /accesskey=/i.test(a))) {
      problems.push(`service ${n}: an access key on the command line; use --access-key-from a Compose secret`);
    }

    // The project's image holds the two binaries and /bin/sh, nothing else.
    if (isProjectImage(svc)) {
      const prog = probeProgram(hc);
      if (hc && prog && !IMAGE_PROGRAMS.includes(prog)) {
        problems.push(`service ${n}: the healthcheck runs ${prog}, not one of the image's programs (tokenvend, acs-emulator); use tokenvend healthcheck`);
      }
      const entry = asList(svc.entrypoint).map(String);
      if (entry.length > 0 && !IMAGE_PROGRAMS.includes(entry[0])) {
        problems.push(`service ${n}: the entrypoint runs ${entry[0]}, not one of the image's programs (tokenvend, acs-emulator)`);
      }
    }
  }
  for (const [name, s] of Object.entries(compose.secrets || {})) {
    if (!s || !s.file) problems.push(`secret ${name} is not read from a file`);
  }
  return problems;
}

// The *_FILE variables of service n that must each name one of its Compose secrets, read from a file.
export function checkSecretFiles(compose, n, vars) {
  const problems = [];
  const svc = compose.services[n];
  const env = envOf(svc);
  for (const k of vars) {
    const path = env.get(k);
    const secret = secretNames(svc).find((s) => secretTarget(svc, s) === path);
    if (!path) problems.push(`service ${n}: ${k} is not set`);
    else if (!secret) problems.push(`service ${n}: ${k}=${path} is not one of its Compose secrets`);
    else if (!compose.secrets || !compose.secrets[secret] || !compose.secrets[secret].file) {
      problems.push(`secret ${secret} is not read from a file`);
    }
  }
  return problems;
}
