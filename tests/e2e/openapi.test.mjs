// docs/openapi.yaml against the code: the file is OpenAPI 3.0.x with every $ref resolving, its
// (listener, method, path) set equals the route tables in src/api/public.c and internal.c, and
// its ErrorCode enum equals the names in include/core/err.h's TV_ERR_TABLE. So a route or an
// error code added in C without documentation fails here. No binaries needed for those.
// Then GET /openapi.json on each listener of a running `tokenvend serve`: it equals that
// listener's part of the YAML, cut here by this file's own reading of the rules (listenerPart),
// independently of the C generator (tools/openapi) that embedded it at build time.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import YAML from "yaml";
import { REPO_ROOT, startEmulator } from "./lib/emulator.mjs";
import { serveSkipReason, startService } from "./lib/service.mjs";
import { assertError, show } from "./lib/service-checks.mjs";

const DOC_PATH = resolve(REPO_ROOT, "docs", "openapi.yaml");
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const LISTENERS = { public: "src/api/public.c", internal: "src/api/internal.c" };

function loadDoc() {
  // Strict YAML: a duplicate key (e.g. a path or status listed twice) is an error, not a merge.
  const parsed = YAML.parseDocument(readFileSync(DOC_PATH, "utf8"), { uniqueKeys: true });
  assert.deepEqual(parsed.errors.map((e) => e.message), [], "docs/openapi.yaml parses as YAML");
  return parsed.toJS();
}

// The rows {"GET", "/api/token", handler} of the C file's route table, as "METHOD /path" with
// every "{}" segment kept as "{}".
function cRoutes(file) {
  const src = readFileSync(resolve(REPO_ROOT, file), "utf8");
  const rows = [...src.matchAll(/\{\s*"([A-Z]+)"\s*,\s*"(\/[^"]*)"\s*,\s*[A-Za-z_]\w*\s*\}/g)];
  assert.ok(rows.length > 0, `no route rows found in ${file}`);
  return rows.map((m) => `${m[1]} ${m[2]}`);
}

// "/internal/users/{userId}/token" -> "/internal/users/{}/token" (parameters by position).
const normalize = (path) => path.replace(/\{[^/{}]+\}/g, "{}");

// Every (method, path) of the doc per listener, from each path item's servers list.
function docRoutes(doc) {
  const byListener = { public: [], internal: [] };
  for (const [path, item] of Object.entries(doc.paths)) {
    const servers = item.servers ?? doc.servers;
    const listeners = servers.map((s) => s["x-tokenvend-listener"]);
    for (const l of listeners) assert.ok(l in byListener, `${path}: server ${JSON.stringify(servers)} names a listener`);
    for (const m of METHODS) {
      if (!item[m]) continue;
      // tools/openapi refuses these: an operation's own servers would override its path's.
      assert.ok(!item[m].servers, `${m.toUpperCase()} ${path}: no operation-level servers (listeners are chosen per path)`);
      for (const l of listeners) byListener[l].push(`${m.toUpperCase()} ${normalize(path)}`);
    }
  }
  return byListener;
}

// Resolves a local JSON pointer ("#/components/schemas/Error") in doc, or undefined.
function pointer(doc, ref) {
  if (!ref.startsWith("#/")) return undefined;
  let node = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

// Calls fn(node, where) for every object in the tree.
function walk(node, where, fn) {
  if (node === null || typeof node !== "object") return;
  fn(node, where);
  for (const [k, v] of Object.entries(node)) walk(v, `${where}/${k}`, fn);
}

// The object a (possibly $ref'd) component stands for.
const deref = (doc, node) => (node && node.$ref ? pointer(doc, node.$ref) : node);

const sorted = (a) => [...new Set(a)].sort();

describe("docs/openapi.yaml", () => {
  const doc = loadDoc();

  test("is OpenAPI 3.0.x and every $ref resolves", () => {
    assert.match(String(doc.openapi), /^3\.0\.\d+$/, `openapi version ${doc.openapi}`);
    assert.equal(typeof doc.info?.title, "string", "info.title");
    assert.equal(typeof doc.info?.version, "string", "info.version");
    assert.ok(doc.paths && typeof doc.paths === "object", "paths");
    let refs = 0;
    const bad = [];
    walk(doc, "#", (node, where) => {
      if (typeof node.$ref !== "string") return;
      refs++;
      if (pointer(doc, node.$ref) === undefined) bad.push(`${where}: ${node.$ref}`);
    });
    assert.deepEqual(bad, [], "unresolved $refs");
    assert.ok(refs > 50, `the document uses its components (${refs} $refs)`);
  });

  test("each path's {param} is declared as a required path parameter", () => {
    for (const [path, item] of Object.entries(doc.paths)) {
      const names = [...path.matchAll(/\{([^/{}]+)\}/g)].map((m) => m[1]);
      for (const m of METHODS) {
        if (!item[m]) continue;
        const params = [...(item.parameters ?? []), ...(item[m].parameters ?? [])].map((p) => deref(doc, p));
        const declared = params.filter((p) => p.in === "path").map((p) => p.name);
        assert.deepEqual(sorted(declared), sorted(names), `${m.toUpperCase()} ${path}: path parameters`);
        for (const p of params.filter((q) => q.in === "path")) assert.equal(p.required, true, `${path}: ${p.name} required`);
      }
    }
  });

  test("routes equal the C route tables, listener by listener", () => {
    const docs = docRoutes(doc);
    for (const [listener, file] of Object.entries(LISTENERS)) {
      const c = sorted(cRoutes(file));
      const d = sorted(docs[listener]);
      const missing = c.filter((r) => !d.includes(r));
      const extra = d.filter((r) => !c.includes(r));
      assert.deepEqual({ missing, extra }, { missing: [], extra: [] },
        `${listener} listener: routes in ${file} but not documented (missing), or documented but not served (extra)`);
    }
  });

  test("the ErrorCode enum equals the names in TV_ERR_TABLE (all but ok)", () => {
    const src = readFileSync(resolve(REPO_ROOT, "include", "core", "err.h"), "utf8");
    const table = [...src.matchAll(/\bX\(\s*(TV_\w+)\s*,\s*"([^"]+)"/g)];
    assert.ok(table.length > 10, "TV_ERR_TABLE rows found");
    // TV_OK ("ok") is success, never an error body's code.
    const names = table.filter((m) => m[1] !== "TV_OK").map((m) => m[2]);
    const en = doc.components?.schemas?.ErrorCode?.enum;
    assert.ok(Array.isArray(en), "components.schemas.ErrorCode.enum");
    assert.deepEqual(sorted(en), sorted(names));
    assert.equal(en.length, new Set(en).size, "no duplicates in the enum");
    const code = deref(doc, doc.components.schemas.Error?.properties?.error?.properties?.code);
    assert.equal(code, doc.components.schemas.ErrorCode, "Error.error.code is the ErrorCode enum");
  });

  test("every operation: X-Request-Id, error bodies in the one shape, no-store on tokens, 401 challenges", () => {
    const errorRef = "#/components/schemas/Error";
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const m of METHODS) {
        const op = item[m];
        if (!op) continue;
        const what = `${m.toUpperCase()} ${path}`;
        assert.ok(Array.isArray(op.tags) && op.tags.length > 0, `${what}: tagged`);
        assert.ok(op.responses && Object.keys(op.responses).length > 0, `${what}: responses`);
        for (const [status, ref] of Object.entries(op.responses)) {
          const r = deref(doc, ref);
          const label = `${what} ${status}`;
          assert.ok(r && typeof r.description === "string", `${label}: a response with a description`);
          if (status === "431") continue; // libmicrohttpd's own answer
          assert.ok(r.headers?.["X-Request-Id"], `${label}: X-Request-Id header`);
          const n = Number(status);
          if (n >= 400) {
            assert.equal(r.content?.["application/json"]?.schema?.$ref, errorRef, `${label}: the one error shape`);
          }
          if (n === 401) assert.ok(r.headers["WWW-Authenticate"], `${label}: WWW-Authenticate`);
          const schema = r.content?.["application/json"]?.schema?.$ref ?? "";
          if (n < 300 && /\/(Token|TeamsToken|LoginResponse|Identity)$/.test(schema)) {
            assert.ok(r.headers["Cache-Control"], `${label}: Cache-Control: no-store on a token answer`);
          }
        }
        const secured = (op.security ?? doc.security ?? []).length > 0;
        if (secured) assert.ok(op.responses["401"], `${what}: an authenticated route documents 401`);
      }
    }
  });
});

// listener's part of doc, as GET /openapi.json must serve it: every top-level member in order,
// "info" with its description made of the listener's entry of info.x-tokenvend-description, a
// blank line and the common info.description (the map left out, the members' order kept),
// "servers" (top level and per path) cut to that listener's entries, the paths it serves (a
// path without "servers" is served by every listener), the tags its operations use, and the
// components reached from what is kept through $ref (transitively) or a security requirement.
function listenerPart(doc, listener) {
  const mine = (servers) => servers.filter((s) => s["x-tokenvend-listener"] === listener);
  const kept = new Map(); // section -> Set of names
  const usedTags = new Set();
  const unescape = (s) => s.replace(/~1/g, "/").replace(/~0/g, "~");
  const keep = (section, name) => {
    assert.ok(Object.hasOwn(doc.components?.[section] ?? {}, name), `components/${section}/${name} is defined`);
    if (!kept.has(section)) kept.set(section, new Set());
    if (kept.get(section).has(name)) return;
    kept.get(section).add(name);
    visit(doc.components[section][name]);
  };
  const security = (reqs) => (reqs ?? []).forEach((req) => Object.keys(req).forEach((k) => keep("securitySchemes", k)));
  const visit = (node) => {
    if (node === null || typeof node !== "object") return;
    if (typeof node.$ref === "string") {
      const m = /^#\/components\/([^/]+)\/([^/]+)$/.exec(node.$ref);
      assert.ok(m, `local component $ref ${node.$ref}`);
      keep(unescape(m[1]), unescape(m[2]));
    }
    Object.values(node).forEach(visit);
  };

  const info = () => {
    const out = structuredClone(doc.info);
    const own = out["x-tokenvend-description"]?.[listener];
    delete out["x-tokenvend-description"];
    if (typeof own === "string") {
      const head = own.replace(/\n+$/, "");
      out.description = typeof out.description === "string" ? `${head}\n\n${out.description}` : head;
    }
    return out;
  };

  const paths = {};
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const m of METHODS) assert.ok(!item[m]?.servers, `${m} ${path}: no operation-level servers (listeners are per path)`);
    const copy = structuredClone(item);
    if (item.servers) {
      copy.servers = mine(item.servers);
      if (copy.servers.length === 0) continue;
    }
    paths[path] = copy;
    visit(copy);
    for (const m of METHODS) {
      if (!copy[m]) continue;
      security(copy[m].security);
      (copy[m].tags ?? []).forEach((t) => usedTags.add(t));
    }
  }
  for (const [key, val] of Object.entries(doc)) {
    if (key === "paths" || key === "components") continue;
    if (key === "security") security(val);
    visit(val);
  }

  const out = {};
  for (const [key, val] of Object.entries(doc)) {
    if (key === "info") out.info = info();
    else if (key === "servers") out.servers = mine(val);
    else if (key === "paths") out.paths = paths;
    else if (key === "tags") {
      const tags = val.filter((t) => usedTags.has(t.name));
      if (tags.length) out.tags = structuredClone(tags);
    } else if (key === "components") {
      const comps = {};
      for (const [section, all] of Object.entries(val)) {
        if (!kept.has(section)) continue;
        comps[section] = Object.fromEntries(Object.entries(all).filter(([n]) => kept.get(section).has(n)).map(([n, v]) => [n, structuredClone(v)]));
      }
      if (Object.keys(comps).length) out.components = comps;
    } else out[key] = structuredClone(val);
  }
  return out;
}

describe("GET /openapi.json on each listener", { skip: serveSkipReason() }, () => {
  const doc = loadDoc();
  let emu;
  let svc;

  before(async () => {
    emu = await startEmulator();
    svc = await startService({ emu });
  });

  after(async () => {
    await svc?.cleanup();
    await emu?.stop();
  });

  for (const [listener, call] of [["public", "pub"], ["internal", "int"]]) {
    test(`${listener}: equals that listener's part of docs/openapi.yaml`, async () => {
      const r = await svc[call]("GET", "/openapi.json");
      assert.equal(r.status, 200, show(r));
      assert.equal(r.headers["content-type"], "application/json");
      assert.equal(r.headers["cache-control"], "no-cache");
      assert.equal(r.headers["x-content-type-options"], "nosniff");
      assert.match(r.headers["x-request-id"] ?? "", /^[A-Za-z0-9._-]{1,64}$/);
      assert.ok(r.json, "a JSON body");
      const want = listenerPart(doc, listener);
      assert.deepEqual(r.json, want);
      // Key order too, so the served text reads like the YAML.
      assert.equal(JSON.stringify(r.json), JSON.stringify(want), "members in the YAML's order");
    });

    test(`${listener}: a self-contained OpenAPI document of that listener alone`, async () => {
      const part = (await svc[call]("GET", "/openapi.json")).json;
      assert.match(String(part.openapi), /^3\.0\.\d+$/);
      assert.deepEqual(part.servers.map((s) => s["x-tokenvend-listener"]), [listener]);
      const routes = docRoutes({ ...part, servers: part.servers })[listener];
      assert.deepEqual(sorted(routes), sorted(cRoutes(LISTENERS[listener])), "the listener's route table");
      const bad = [];
      walk(part, "#", (node, where) => {
        if (typeof node.$ref === "string" && pointer(part, node.$ref) === undefined) bad.push(`${where}: ${node.$ref}`);
      });
      assert.deepEqual(bad, [], "every $ref resolves inside the part");
      const other = listener === "public" ? "internal" : "public";
      assert.ok(!JSON.stringify(part.paths).includes(`"x-tokenvend-listener":"${other}"`), `no ${other} servers entry`);
    });
  }

  test("the parts differ where the listeners do", async () => {
    const pub = (await svc.pub("GET", "/openapi.json")).json;
    const int = (await svc.int("GET", "/openapi.json")).json;
    assert.ok(pub.paths["/api/token"] && !pub.paths["/internal/users"] && !pub.paths["/metrics"]);
    assert.ok(int.paths["/internal/users"] && int.paths["/metrics"] && !int.paths["/api/token"]);
    assert.deepEqual(Object.keys(pub.components.securitySchemes), ["userBearer"]);
    assert.deepEqual(Object.keys(int.components.securitySchemes), ["apiKey"]);
    assert.ok(!pub.components.schemas.UserList, "the internal API's shapes stay out of the public part");
    // The internal listener's address and the API key format are for backends only.
    for (const word of ["8081", "internal_addr", "tvk_"]) {
      assert.ok(!JSON.stringify(pub).includes(word), `the public part does not mention ${word}`);
    }
    assert.match(int.info.description, /tvk_<id>_<secret>/);
    assert.match(pub.info.description, /\*\*public\*\* listener/);
    assert.ok(!("x-tokenvend-description" in pub.info) && !("x-tokenvend-description" in int.info));
  });

  test("other methods are 405 with Allow: GET, in the error shape", async () => {
    const r = await svc.pub("POST", "/openapi.json", { body: {} });
    assertError(r, 405, "method_not_allowed", "POST /openapi.json");
    assert.equal(r.headers.allow, "GET", show(r));
  });
});
