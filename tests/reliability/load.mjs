// A mixed request load for the memory and race runs (valgrind.mjs, tsan.mjs): tokens for new and
// known users through the internal API, local-account logins (right and wrong passwords) and
// tokens with the session JWT through the public API, revokes, deletes, and requests that must
// fail (bad JSON, a bad scope, an unknown route, a wrong method, a wrong API key). `clients`
// loops share `requests`; each answer is counted by "kind status".

import { performance } from "node:perf_hooks";

const PASSWORD = "reliability-load-password-1";

// Prepares what the load needs on a started service (svc from tests/e2e/lib/service.mjs with
// localAccounts on): an API key and an account. Returns the context mixedLoad takes.
export async function prepareLoad(svc) {
  const { key } = await svc.createApiKey("load");
  await svc.addAccount("loaduser", PASSWORD);
  return { key, account: "loaduser" };
}

export async function mixedLoad(svc, ctx, { requests = 10_000, clients = 8, tag = "l" } = {}) {
  const counts = {};
  const latencies = [];
  const known = [];
  let next = 0;
  let seq = 0;
  let session = null;
  const count = (kind, status) => {
    const k = `${kind} ${status}`;
    counts[k] = (counts[k] || 0) + 1;
  };
  const pick = () => known[Math.floor(Math.random() * known.length)];

  const one = async () => {
    const p = Math.random();
    if (p < 0.3 || known.length === 0) {
      const u = `${tag}-${seq++}`;
      const r = await svc.int("POST", `/internal/users/${u}/token`, { key: ctx.key, body: {} });
      if (r.status === 200) known.push(u);
      return ["token new user", r.status];
    }
    if (p < 0.5) {
      const r = await svc.int("POST", `/internal/users/${pick()}/token`, { key: ctx.key, body: { scopes: ["chat"], expiresInMinutes: 60 } });
      return ["token known user", r.status];
    }
    if (p < 0.6) {
      if (!session || Math.random() < 0.1) {
        const l = await svc.pub("POST", "/api/login", { body: { username: ctx.account, password: PASSWORD } });
        if (l.status === 200) session = l.json.access_token;
        return ["login", l.status];
      }
      const r = await svc.pub("GET", "/api/token", { token: session });
      return ["public token (session)", r.status];
    }
    if (p < 0.63) {
      const r = await svc.pub("POST", "/api/login", { body: { username: `nobody-${seq++}`, password: "wrong-password-123" } });
      return ["login wrong", r.status];
    }
    if (p < 0.73) {
      const r = await svc.int("POST", `/internal/users/${pick()}/revoke`, { key: ctx.key });
      return ["revoke", r.status];
    }
    if (p < 0.78) {
      const i = Math.floor(Math.random() * known.length);
      const u = known[i];
      known.splice(i, 1);
      const r = await svc.int("DELETE", `/internal/users/${u}`, { key: ctx.key });
      return ["delete", r.status];
    }
    if (p < 0.82) {
      const r = await svc.int("GET", `/internal/users/${pick()}`, { key: ctx.key });
      return ["get user", r.status];
    }
    const e = Math.floor(Math.random() * 5);
    if (e === 0) {
      const r = await svc.int("POST", `/internal/users/${pick()}/token`, { key: ctx.key, body: "{\"scopes\":[\"chat\"" });
      return ["error: bad JSON", r.status];
    }
    if (e === 1) {
      const r = await svc.int("POST", `/internal/users/${pick()}/token`, { key: ctx.key, body: { scopes: ["nope"] } });
      return ["error: bad scope", r.status];
    }
    if (e === 2) {
      const r = await svc.pub("GET", "/api/nothing-here");
      return ["error: unknown route", r.status];
    }
    if (e === 3) {
      const r = await svc.pub("PATCH", "/api/token", { token: session || "x" });
      return ["error: wrong method", r.status];
    }
    const r = await svc.int("GET", `/internal/users/${pick()}`, { key: "tv_wrong_key_0000000000000000" });
    return ["error: wrong API key", r.status];
  };

  const loop = async () => {
    while (next < requests) {
      next++;
      const t0 = performance.now();
      try {
        const [kind, status] = await one();
        count(kind, status);
      } catch (err) {
        count("network error", err.code || err.message);
      }
      latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, loop));
  return { counts, latencies, seconds: (performance.now() - t0) / 1000, requests };
}

// Sums counts by status alone ("200": n, ...).
export function byStatus(counts) {
  const out = {};
  for (const [k, v] of Object.entries(counts)) {
    const s = k.slice(k.lastIndexOf(" ") + 1);
    out[s] = (out[s] || 0) + v;
  }
  return out;
}
