// SIGKILL at random moments under mixed writes (issue 11, point 6). One acs-emulator (with its
// own --db, read afterwards with the sqlite3 command) stays up; `tokenvend serve` is killed with
// SIGKILL at a random moment while 8 clients create users (PUT and POST .../token), issue tokens,
// revoke and delete through the internal API, with half of the ACS deletes failing so that some
// deletes are answered 202 and left to the outbox. Three rounds in four run with acs_custom_id on,
// the rest (a service and store of their own, the same emulator) with it off, the default.
// After each kill: PRAGMA integrity_check on the SQLite file as the kill left it; the faults are
// cleared and tokenvend restarted on the same store; then, over every round so far of that mode:
//   1. acknowledged mappings lost: every user whose create or token was answered 2xx (and not
//      deleted since) still maps to the same ACS identity (GET /internal/users/{id}). A user found
//      lost is asked for a token again, so that a second identity made for it shows below.
//   2. outcomes made known: a request the kill cut has an unknown outcome. The client repeats it
//      as a client would: a cut create (PUT or POST .../token) is asked again for a token (then
//      it is acknowledged like any other), a cut delete is sent again (then it is an acknowledged
//      delete). With acs_custom_id on, a live identity no mapping names whose customId is that of
//      an app user (the script derives every tried user's customId as tokenvend does) names its
//      user: that user, unless its delete was acknowledged, is asked for a token too (adoption).
//   3. users with two identities. acs_custom_id on: (a) an acknowledged user that does not map to
//      the live identity carrying its customId when there is one (not adopted); (b) a customId of
//      an app user that names more identities in the emulator, live AND deleted, than the user may
//      have: one, plus one for each acknowledged delete followed by a new create of the same user
//      (a delete the client saw answered ended that identity on purpose; nothing else may). The
//      load never re-creates a user after an acknowledged delete and repeats a cut delete rather
//      than a create, so the allowance is 1 here; (c) a user whose identity changed between two
//      acknowledged answers. acs_custom_id off: only (c), and the check of 1 re-asks a lost user.
//      The emulator records no app user for an identity made without a customId, so a second
//      live identity made for a user by a create whose answer the kill cut is not attributable:
//      it shows as an orphan (below), an upper bound of such identities, not in this figure.
//   4. 202 deletes finished: each acknowledged delete's identity is deleted in the emulator
//      (the outbox completes those answered 202), within a generous deadline.
//   5. orphans: live emulator identities no mapping names and no acknowledged delete waits for.
//      acs_custom_id on: those with a tried user's customId must be 0 after adoption (counted in
//      3a); the rest are informational (off: creates cut by the kill, never attributable).
// The check can fail: --mutate forget-user (SQLite only) makes, before each restart, one
// acknowledged user's identity deleted in ACS and its mapping row removed, as a tokenvend that
// forgot a user would; the run then reports that user lost and with two identities.
//
// Command: node tests/reliability/crash.mjs [--store sqlite|pg] [--rounds N] [--out FILE]
//          [--json FILE] [--mutate forget-user]
// The short version (3 rounds each: 2 on, 1 off) is in reliability.test.mjs.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { startEmulator } from "../e2e/lib/emulator.mjs";
import { startService } from "../e2e/lib/service.mjs";
import { nowUtc, parseArgs, sectionHead, writeOut } from "./lib.mjs";

const WORKERS = 8;
const KILL_AFTER_MS = [300, 2500]; // the random moment of the kill, after the load started
const OUTBOX_DEADLINE_MS = 60_000; // a ceiling for the outbox to finish the 202 deletes
const RETRY_503_TRIES = 120; // a repeated request answered 503 is sent again, 0.5 s apart

function sql(dbPath, query) {
  // The emulator's identity list grows by about 120 bytes per identity: 50 rounds make more than
  // node's default 1 MiB of output, so the buffer is sized for a long run (256 MiB).
  return execFileSync("sqlite3", ["-batch", dbPath], {
    input: query, encoding: "utf8", timeout: 60_000, maxBuffer: 256 * 1024 * 1024,
  }).trim();
}

// The emulator's identities: id -> { live, customId }.
function emulatorIdentities(emuDb) {
  const out = new Map();
  const text = sql(emuDb, "SELECT id, deleted_ms, IFNULL(custom_id,'') FROM identities;");
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [id, deleted, cid] = line.split("|");
    out.set(id, { live: deleted === "0", customId: cid });
  }
  return out;
}

// The customId tokenvend sends for an app user (src/acs/client_http.c, acs_custom_id): "tv1_" and
// the unpadded base64url SHA-256 of the domain, the resource's signed host:port and the user, the
// first two NUL-terminated. A mismatch with what the emulator stored is counted (customIdMismatch).
function customIdOf(hostPort, user) {
  const h = createHash("sha256");
  h.update("tokenvend/acs-custom-id/v1\0");
  h.update(`${hostPort}\0`);
  h.update(user);
  return `tv1_${h.digest("base64url")}`;
}

async function listMappings(svc, key) {
  const map = new Map();
  let after = "";
  for (;;) {
    const q = `/internal/users?limit=500${after ? `&after=${encodeURIComponent(after)}` : ""}`;
    const r = await svc.int("GET", q, { key });
    if (r.status !== 200) throw new Error(`GET ${q} -> ${r.status} ${r.text}`);
    for (const u of r.json.users) map.set(u.userId, u.acsUserIdentity);
    if (!r.json.next) return map;
    after = r.json.next;
  }
}

// The per-user record the clients keep: acked (the identity a 2xx answer named), deleted (the
// identity of an acknowledged delete and its status), unknown (user -> the request in flight at
// the kill: "create" or "delete"), changed (users whose identity changed between acknowledged
// answers), tried (every user name used).
function newBook() {
  return {
    acked: new Map(), deleted: new Map(), unknown: new Map(), changed: new Set(), tried: new Set(),
    answers: {},
  };
}

function count(book, what) {
  book.answers[what] = (book.answers[what] || 0) + 1;
}

// Records a 2xx create or token answer for u; a different identity than the one acknowledged
// before is a changed mapping.
function ack(book, u, id) {
  const before = book.acked.get(u);
  if (before !== undefined && before !== id) book.changed.add(u);
  book.acked.set(u, id);
}

async function worker(svc, key, book, prefix, w, stop) {
  let n = 0;
  while (!stop.now) {
    const u = `${prefix}w${w}u${n++}`;
    book.tried.add(u);
    book.unknown.set(u, "create");
    try {
      const create = Math.random() < 0.5
        ? await svc.int("PUT", `/internal/users/${u}`, { key })
        : await svc.int("POST", `/internal/users/${u}/token`, { key, body: {} });
      count(book, `create ${create.status}`);
      book.unknown.delete(u);
      if (create.status !== 200 && create.status !== 201) continue; // refused: no mapping promised
      const id = create.json.acsUserIdentity ?? create.json.user?.communicationUserId;
      ack(book, u, id);
      const issues = Math.floor(Math.random() * 3);
      for (let i = 0; i < issues && !stop.now; i++) {
        const t = await svc.int("POST", `/internal/users/${u}/token`, { key, body: {} });
        count(book, `issue ${t.status}`);
        if (t.status === 200) ack(book, u, t.json.user?.communicationUserId);
      }
      if (stop.now) break;
      if (Math.random() < 0.5) {
        const r = await svc.int("POST", `/internal/users/${u}/revoke`, { key });
        count(book, `revoke ${r.status}`);
      }
      if (stop.now || Math.random() < 0.6) continue;
      book.unknown.set(u, "delete");
      const d = await svc.int("DELETE", `/internal/users/${u}`, { key });
      count(book, `delete ${d.status}`);
      book.unknown.delete(u);
      if (d.status === 202 || d.status === 204) {
        book.acked.delete(u);
        book.deleted.set(u, { id, status: d.status });
      }
    } catch {
      // The kill cut this request: its outcome is unknown until the check repeats it.
      return;
    }
  }
}

// Sends a request again while it is answered 503 (the ACS breaker that the load's failing deletes
// opened may still be open after the restart), as a client would, within a bounded number of tries.
async function retrying(send) {
  let r;
  for (let i = 0; i < RETRY_503_TRIES; i++) {
    r = await send();
    if (r.status !== 503) return r;
    await sleep(500);
  }
  return r;
}

// Asks for a token for u, as a client repeating a create would; records the answer.
async function tokenAgain(svc, key, book, u, what) {
  const t = await retrying(() => svc.int("POST", `/internal/users/${u}/token`, { key, body: {} }));
  count(book, `${what} ${t.status}`);
  if (t.status === 200) ack(book, u, t.json.user?.communicationUserId);
  return t.status;
}

async function checkRound(ctx, res) {
  const { svc, key, book, emuDb, customOn, hostPort, before } = ctx;
  // 1. Acknowledged mappings, in batches of 16 requests at once; a lost user is asked again.
  const users = [...book.acked.entries()].filter(([u]) => !book.unknown.has(u));
  const lostUsers = [];
  for (let i = 0; i < users.length; i += 16) {
    const part = users.slice(i, i + 16);
    const got = await Promise.all(part.map(([u]) => svc.int("GET", `/internal/users/${u}`, { key })));
    got.forEach((r, j) => {
      if (r.status !== 200 || r.json.acsUserIdentity !== part[j][1]) lostUsers.push(part[j][0]);
    });
  }
  for (const u of lostUsers) await tokenAgain(svc, key, book, u, "lost user token");
  // 2. Outcomes made known: repeat each cut request.
  for (const [u, op] of [...book.unknown.entries()]) {
    if (op === "delete") {
      const d = await retrying(() => svc.int("DELETE", `/internal/users/${u}`, { key }));
      count(book, `repeated delete ${d.status}`);
      if (d.status === 202 || d.status === 204 || d.status === 404) {
        const id = book.acked.get(u);
        book.acked.delete(u);
        if (id !== undefined) book.deleted.set(u, { id, status: d.status === 404 ? 404 : d.status });
        book.unknown.delete(u);
      }
    } else {
      const st = await tokenAgain(svc, key, book, u, "repeated create");
      if (st === 200 || st >= 400 && st < 500) book.unknown.delete(u);
    }
  }
  // Acknowledged deletes: mapping gone at once, the ACS identity deleted once the outbox ran.
  const deletes = [...book.deleted.entries()];
  let mappingLeft = 0;
  for (const [u] of deletes) {
    const r = await svc.int("GET", `/internal/users/${u}`, { key });
    if (r.status !== 404) mappingLeft++;
  }
  const deadline = Date.now() + OUTBOX_DEADLINE_MS;
  let pending;
  for (;;) {
    const ids = emulatorIdentities(emuDb);
    pending = deletes.filter(([, d]) => ids.get(d.id)?.live);
    if (pending.length === 0 || Date.now() > deadline) break;
    await sleep(250);
  }
  // Adoption (acs_custom_id on): a live identity no mapping names, with a tried user's customId.
  const userOf = new Map();
  if (customOn) for (const u of book.tried) userOf.set(customIdOf(hostPort, u), u);
  let mapped = new Set((await listMappings(svc, key)).values());
  let ids = emulatorIdentities(emuDb);
  if (customOn) {
    for (const [id, v] of ids) {
      const u = userOf.get(v.customId);
      if (v.live && !mapped.has(id) && u !== undefined && !book.deleted.has(u)) {
        await tokenAgain(svc, key, book, u, "adopting token");
      }
    }
    mapped = new Set((await listMappings(svc, key)).values());
    ids = emulatorIdentities(emuDb);
  }
  // 3. Two identities.
  const two = new Set(book.changed);
  let notAdopted = 0;
  let mismatch = 0;
  if (customOn) {
    const byCustom = new Map(); // customId -> { live: [ids], all: n }
    for (const [id, v] of ids) {
      if (!v.customId) continue;
      const e = byCustom.get(v.customId) || { live: [], all: 0 };
      e.all++;
      if (v.live) e.live.push(id);
      byCustom.set(v.customId, e);
    }
    for (const [u, id] of book.acked) {
      if (book.unknown.has(u)) continue;
      const c = customIdOf(hostPort, u);
      if (ids.get(id) && ids.get(id).customId !== c) mismatch++;
      const e = byCustom.get(c);
      if (e && e.live.length > 0 && !e.live.includes(id)) {
        notAdopted++;
        two.add(u);
      }
    }
    for (const [c, e] of byCustom) {
      const u = userOf.get(c);
      // The allowance: one identity; the load never re-creates a user after an acknowledged delete.
      if (u !== undefined && e.all > 1) two.add(u);
    }
  }
  // 5. Orphans: live, no mapping, no acknowledged delete waiting for it.
  const waiting = new Set(deletes.map(([, d]) => d.id));
  let orphans = 0;
  let orphansOfUsers = 0;
  for (const [id, v] of ids) {
    // Identities of an earlier mode (its service and store are gone) are not this mode's.
    if (!v.live || mapped.has(id) || waiting.has(id) || before.has(id)) continue;
    orphans++;
    if (customOn && userOf.has(v.customId)) orphansOfUsers++;
  }
  const m = customOn ? res.on : res.off;
  m.lost = Math.max(m.lost, lostUsers.length);
  m.twoIdentities = Math.max(m.twoIdentities, two.size);
  m.notAdopted = Math.max(m.notAdopted, notAdopted);
  m.orphansOfUsers = Math.max(m.orphansOfUsers, orphansOfUsers);
  m.mappingLeft = Math.max(m.mappingLeft, mappingLeft);
  m.customIdMismatch = Math.max(m.customIdMismatch, mismatch);
  m.acked202 = deletes.filter(([, d]) => d.status === 202).length;
  m.acked204 = deletes.filter(([, d]) => d.status === 204).length;
  m.repeatedDeletes404 = deletes.filter(([, d]) => d.status === 404).length;
  m.unfinished = pending.length;
  m.unresolved = book.unknown.size;
  m.orphans = orphans;
  m.checkedUsers = users.length;
  return { lost: lostUsers.length, two: two.size, twoUsers: [...two], orphans, notAdopted };
}

// --mutate forget-user: one acknowledged user's identity deleted in ACS (through the SDK, with the
// emulator's key) and its mapping row removed from the SQLite store, while tokenvend is down.
async function forgetOneUser(svc, emu, book) {
  const entry = [...book.acked.entries()].find(([u]) => !book.unknown.has(u));
  if (!entry) return;
  const [u, id] = entry;
  const e2e = createRequire(new URL("../e2e/package.json", import.meta.url));
  const { CommunicationIdentityClient } = await import(e2e.resolve("@azure/communication-identity"));
  const client = new CommunicationIdentityClient(emu.connectionString, { allowInsecureConnection: true });
  await client.deleteUser({ communicationUserId: id });
  sql(svc.dbPath, `DELETE FROM mappings WHERE acs_id = '${id.replace(/'/g, "''")}';`);
  book.mutated = (book.mutated || 0) + 1;
}

function newMode() {
  return {
    rounds: 0, lost: 0, twoIdentities: 0, notAdopted: 0, orphansOfUsers: 0, mappingLeft: 0,
    customIdMismatch: 0, acked202: 0, acked204: 0, repeatedDeletes404: 0, unfinished: 0,
    unresolved: 0, orphans: 0, checkedUsers: 0, killedMidRequest: 0,
  };
}

// Runs `rounds` rounds of load + SIGKILL + restart + checks on one service of its own.
async function runMode(emu, emuDb, res, { customOn, rounds, mutate, log, acsDeadlineMs }) {
  const book = newBook();
  const hostPort = new URL(emu.endpoint).host;
  const before = new Set(emulatorIdentities(emuDb).keys());
  let svc;
  try {
    svc = await startService({
      emu,
      env: {
        TOKENVEND_LOG_LEVEL: "warn",
        TOKENVEND_ACS_API_VERSION: "2025-03-02-preview",
        TOKENVEND_ACS_CUSTOM_ID: customOn ? "on" : "off",
        TOKENVEND_OUTBOX_INTERVAL_MS: "200",
        TOKENVEND_OUTBOX_BACKOFF_MAX_MS: "1000",
        TOKENVEND_ACS_MAX_RETRIES: "0",
        // The ACS deadline sets how long a killed process's leases (its in-flight deletes) and
        // create claims hold others off: the short runs set it lower to wait less, same checks.
        // (an attempt's timeout may not exceed the deadline: both are set).
        ...(acsDeadlineMs ? {
          TOKENVEND_ACS_DEADLINE_MS: String(acsDeadlineMs),
          TOKENVEND_ACS_ATTEMPT_TIMEOUT_MS: String(acsDeadlineMs),
        } : {}),
      },
    });
    const { key } = await svc.createApiKey("crash");
    const m = customOn ? res.on : res.off;
    for (let round = 1; round <= rounds; round++) {
      const f = await emu.request("PUT", "/emulator/faults", { error_rate: 0.5, error_status: 503, ops: ["delete"] });
      if (f.status !== 200 && f.status !== 204) throw new Error(`faults -> ${f.status}`);
      const stop = { now: false };
      const cutBefore = book.unknown.size;
      const prefix = `${customOn ? "on" : "off"}r${round}`;
      const load = Array.from({ length: WORKERS }, (_, w) => worker(svc, key, book, prefix, w, stop));
      await sleep(KILL_AFTER_MS[0] + Math.random() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]));
      stop.now = true;
      svc.proc.kill("SIGKILL");
      await svc.exited;
      await Promise.all(load);
      m.killedMidRequest += book.unknown.size - cutBefore;
      if (res.store === "sqlite") res.integrity.push(sql(svc.dbPath, "PRAGMA integrity_check;"));
      await emu.request("DELETE", "/emulator/faults");
      if (mutate === "forget-user") await forgetOneUser(svc, emu, book);
      await svc.start();
      const r = await checkRound({ svc, key, book, emuDb, customOn, hostPort, before }, res);
      m.rounds = round;
      res.rounds++;
      log(`acs_custom_id ${customOn ? "on" : "off"} round ${round}: acked ${m.checkedUsers}, lost ${r.lost}, ` +
        `two ids ${r.two} (not adopted ${r.notAdopted}), deletes 202 ${m.acked202} / 204 ${m.acked204}, ` +
        `unfinished ${m.unfinished}, orphans ${r.orphans}, cut ${m.killedMidRequest}, unresolved ${m.unresolved}` +
        (r.twoUsers.length ? `; two ids: ${r.twoUsers.slice(0, 5).join(" ")}` : ""));
    }
    for (const [k, v] of Object.entries(book.answers)) res.answers[k] = (res.answers[k] || 0) + v;
    m.mutated = book.mutated || 0;
  } finally {
    if (svc) await svc.cleanup();
  }
}

// Runs rounds of load + SIGKILL + restart + checks. Resolves to the figures and a markdown section.
// acsDeadlineMs: TOKENVEND_ACS_DEADLINE_MS for the service (default: the service's own, 30 s).
export async function run({ store = "sqlite", rounds = 3, log = () => {}, mutate = "", acsDeadlineMs = 0 } = {}) {
  const started = nowUtc();
  if (store === "pg") process.env.TV_TEST_STORE = "pg";
  else delete process.env.TV_TEST_STORE;
  if (mutate && (mutate !== "forget-user" || store !== "sqlite")) {
    throw new Error("--mutate takes forget-user, with --store sqlite");
  }
  const dir = mkdtempSync(join(tmpdir(), "tv-crash-"));
  const emuDb = join(dir, "emulator.db");
  const emu = await startEmulator(["--db", emuDb]);
  const res = { store, rounds: 0, integrity: [], answers: {}, on: newMode(), off: newMode(), mutate };
  // A quarter of the rounds (at least one when there are two or more) with acs_custom_id off.
  const offRounds = rounds >= 2 ? Math.max(1, Math.floor(rounds / 4)) : 0;
  try {
    await runMode(emu, emuDb, res, { customOn: true, rounds: rounds - offRounds, mutate, log, acsDeadlineMs });
    if (offRounds > 0) await runMode(emu, emuDb, res, { customOn: false, rounds: offRounds, mutate, log, acsDeadlineMs });
  } finally {
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const sum = (k) => res.on[k] + res.off[k];
  const max = (k) => Math.max(res.on[k], res.off[k]);
  res.lost = max("lost");
  res.twoIdentities = max("twoIdentities");
  res.mappingLeft = max("mappingLeft");
  res.unfinished = sum("unfinished");
  res.acked202 = sum("acked202");
  res.acked204 = sum("acked204");
  res.checkedUsers = sum("checkedUsers");
  res.killedMidRequest = sum("killedMidRequest");
  res.integrityOk = res.integrity.filter((s) => s === "ok").length;
  res.ok = res.lost === 0 && res.twoIdentities === 0 && res.mappingLeft === 0 && res.unfinished === 0 &&
    res.on.orphansOfUsers === 0 && res.on.customIdMismatch === 0 && sum("unresolved") === 0 &&
    (store !== "sqlite" || res.integrityOk === res.rounds) && res.rounds === rounds;
  res.markdown = markdown(res, started);
  return res;
}

function markdown(r, started) {
  const cmd = `node tests/reliability/crash.mjs --store ${r.store} --rounds ${r.rounds}` +
    (r.mutate ? ` --mutate ${r.mutate}` : "");
  const integ = r.store === "sqlite"
    ? `${r.integrityOk} of ${r.rounds} rounds \`ok\``
    : "n/a (PostgreSQL: only tokenvend was killed, not the database server)";
  const answers = Object.entries(r.answers || {}).sort().map(([k, v]) => `${k}: ${v}`).join(", ");
  const row = (label, k) => `| ${label} | ${r.on[k]} | ${r.off.rounds ? r.off[k] : "-"} |\n`;
  return `${sectionHead(`SIGKILL under mixed writes, ${r.store === "pg" ? "PostgreSQL" : "SQLite"}`, cmd, started)}` +
    "Each round: load, SIGKILL at a random moment 0.3-2.5 s in, restart on the same store, then the " +
    "checks over every round so far. A request the kill cut is repeated after the restart (a create " +
    "as a token request, a delete as a delete), so every outcome is known and checked. " +
    "Two identities: with acs_custom_id on, a user not mapped to the live identity carrying its customId, " +
    "a customId of an app user naming more than one identity in ACS, live or deleted (one is the " +
    "allowance: only an acknowledged delete followed by a new create may add one, and the load never " +
    "does that), or a user whose identity changed between acknowledged answers; with it off only the " +
    "last, since ACS records no app user for an identity made without a customId: a second identity " +
    "made by a cut create is an unattributable orphan there.\n\n" +
    "| figure | acs_custom_id on | off |\n| --- | --- | --- |\n" +
    row("rounds", "rounds") +
    row("users checked (acknowledged, not deleted)", "checkedUsers") +
    row("acknowledged mappings lost (worst round)", "lost") +
    row("users with two identities (worst round)", "twoIdentities") +
    row("of which not mapped to their customId's live identity", "notAdopted") +
    row("requests cut by the kills (repeated after restart)", "killedMidRequest") +
    row("cut requests whose outcome stayed unknown", "unresolved") +
    row("deletes acknowledged 202", "acked202") +
    row("deletes acknowledged 204", "acked204") +
    row("cut deletes found done on repeat (404)", "repeatedDeletes404") +
    row("acknowledged deletes whose mapping came back", "mappingLeft") +
    row("acknowledged deletes not finished in ACS (outbox, 60 s ceiling)", "unfinished") +
    row("orphans carrying a tried user's customId, after adoption", "orphansOfUsers") +
    row("orphans, all (live, unmapped, no delete waiting; informational)", "orphans") +
    `| \`PRAGMA integrity_check\` after the kill | ${integ} | |\n\n` +
    `Answers seen: ${answers}.\n\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const a = parseArgs(process.argv.slice(2));
  const r = await run({
    store: a.store || "sqlite",
    rounds: Number(a.rounds || 50),
    mutate: a.mutate || "",
    log: (s) => process.stderr.write(`${s}\n`),
  });
  writeOut(a.out, r.markdown);
  process.stdout.write(r.markdown);
  if (a.json) writeFileSync(a.json, JSON.stringify(r, null, 2));
  process.exit(r.ok ? 0 : 1);
}
