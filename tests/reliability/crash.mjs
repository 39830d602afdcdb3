// SIGKILL at random moments under mixed writes (issue 11, point 6). One acs-emulator (with its
// own --db, read afterwards with the sqlite3 command) stays up; `tokenvend serve` is killed with
// SIGKILL at a random moment while 8 clients create users (PUT and POST .../token), issue tokens,
// revoke and delete through the internal API, with half of the ACS deletes failing so that some
// deletes are answered 202 and left to the outbox. After each kill: PRAGMA integrity_check on the
// SQLite file as the kill left it; the faults are cleared and tokenvend restarted on the same
// store; then, over every round so far:
//   - acknowledged mappings lost: every user whose create or token was answered 2xx (and not
//     deleted since) still maps to the same ACS identity (GET /internal/users/{id});
//   - users with two identities: ACS customIds (acs_custom_id on: one per app user) that name
//     more than one live identity in the emulator's database, and users whose identity changed;
//   - 202 deletes finished: each acknowledged delete's identity is deleted in the emulator
//     (the outbox completes those answered 202), within a generous deadline;
//   - orphans: live emulator identities no mapping names (a create answered by ACS whose
//     commit the kill prevented; acs_custom_id hands the same identity back on the next create).
// A request in flight at the kill has an unknown outcome: its user is left out of the checks.
//
// Command: node tests/reliability/crash.mjs [--store sqlite|pg] [--rounds N] [--out FILE]
// The short version (3 rounds each) is in reliability.test.mjs.

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { startEmulator } from "../e2e/lib/emulator.mjs";
import { httpRequest, startService } from "../e2e/lib/service.mjs";
import { nowUtc, parseArgs, sectionHead, writeOut } from "./lib.mjs";

const WORKERS = 8;
const KILL_AFTER_MS = [300, 2500]; // the random moment of the kill, after the load started
const OUTBOX_DEADLINE_MS = 60_000; // a ceiling for the outbox to finish the 202 deletes
const REQ_TIMEOUT_MS = 15_000;

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
// identity of an acknowledged delete and its status), unknown (a request in flight at the kill).
function newBook() {
  return { acked: new Map(), deleted: new Map(), unknown: new Set(), changed: new Set(), answers: {} };
}

async function worker(svc, key, book, round, w, stop) {
  let n = 0;
  const count = (what) => {
    book.answers[what] = (book.answers[what] || 0) + 1;
  };
  while (!stop.now) {
    const u = `r${round}w${w}u${n++}`;
    book.unknown.add(u);
    try {
      const create = Math.random() < 0.5
        ? await svc.int("PUT", `/internal/users/${u}`, { key })
        : await svc.int("POST", `/internal/users/${u}/token`, { key, body: {} });
      count(`create ${create.status}`);
      if (create.status !== 200 && create.status !== 201) {
        book.unknown.delete(u); // refused: no mapping promised
        continue;
      }
      const id = create.json.acsUserIdentity ?? create.json.user?.communicationUserId;
      book.acked.set(u, id);
      book.unknown.delete(u);
      const issues = Math.floor(Math.random() * 3);
      for (let i = 0; i < issues && !stop.now; i++) {
        const t = await svc.int("POST", `/internal/users/${u}/token`, { key, body: {} });
        count(`issue ${t.status}`);
        if (t.status === 200 && t.json.user?.communicationUserId !== id) book.changed.add(u);
      }
      if (stop.now) break;
      if (Math.random() < 0.5) {
        const r = await svc.int("POST", `/internal/users/${u}/revoke`, { key });
        count(`revoke ${r.status}`);
      }
      if (stop.now || Math.random() < 0.6) continue;
      book.unknown.add(u);
      const d = await svc.int("DELETE", `/internal/users/${u}`, { key });
      count(`delete ${d.status}`);
      if (d.status === 202 || d.status === 204) {
        book.acked.delete(u);
        book.deleted.set(u, { id, status: d.status });
      }
      book.unknown.delete(u);
    } catch {
      // The kill cut this request: its outcome is unknown, u stays in book.unknown.
      return;
    }
  }
}

async function checkRound(svc, key, book, emuDb, res) {
  // Acknowledged mappings, in batches of 16 requests at once.
  const users = [...book.acked.entries()].filter(([u]) => !book.unknown.has(u));
  let lost = 0;
  for (let i = 0; i < users.length; i += 16) {
    const part = users.slice(i, i + 16);
    const got = await Promise.all(part.map(([u]) => svc.int("GET", `/internal/users/${u}`, { key })));
    got.forEach((r, j) => {
      if (r.status !== 200 || r.json.acsUserIdentity !== part[j][1]) lost++;
    });
  }
  // Acknowledged deletes: mapping gone at once, the ACS identity deleted once the outbox ran.
  const deletes = [...book.deleted.entries()].filter(([u]) => !book.unknown.has(u));
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
  const ids = emulatorIdentities(emuDb);
  const byCustom = new Map();
  for (const [, v] of ids) {
    if (v.live && v.customId) byCustom.set(v.customId, (byCustom.get(v.customId) || 0) + 1);
  }
  const twoIdentities = [...byCustom.values()].filter((c) => c > 1).length + book.changed.size;
  const mapped = new Set((await listMappings(svc, key)).values());
  const orphans = [...ids.entries()].filter(([id, v]) => v.live && !mapped.has(id)).length;
  res.lost = Math.max(res.lost, lost);
  res.twoIdentities = Math.max(res.twoIdentities, twoIdentities);
  res.mappingLeft = Math.max(res.mappingLeft, mappingLeft);
  res.acked202 = deletes.filter(([, d]) => d.status === 202).length;
  res.acked204 = deletes.filter(([, d]) => d.status === 204).length;
  res.unfinished = pending.length;
  res.orphans = orphans;
  res.checkedUsers = users.length;
  res.liveIdentities = [...ids.values()].filter((v) => v.live).length;
}

// Runs rounds of load + SIGKILL + restart + checks. Resolves to the figures and a markdown section.
export async function run({ store = "sqlite", rounds = 3, log = () => {} } = {}) {
  const started = nowUtc();
  if (store === "pg") process.env.TV_TEST_STORE = "pg";
  else delete process.env.TV_TEST_STORE;
  const dir = mkdtempSync(join(tmpdir(), "tv-crash-"));
  const emuDb = join(dir, "emulator.db");
  const emu = await startEmulator(["--db", emuDb]);
  const book = newBook();
  const res = {
    store, rounds: 0, killedMidRequest: 0, integrity: [], lost: 0, twoIdentities: 0, mappingLeft: 0,
    acked202: 0, acked204: 0, unfinished: 0, orphans: 0, checkedUsers: 0, liveIdentities: 0,
  };
  let svc;
  try {
    svc = await startService({
      emu,
      env: {
        TOKENVEND_LOG_LEVEL: "warn",
        TOKENVEND_ACS_API_VERSION: "2025-03-02-preview",
        TOKENVEND_ACS_CUSTOM_ID: "on",
        TOKENVEND_OUTBOX_INTERVAL_MS: "200",
        TOKENVEND_OUTBOX_BACKOFF_MAX_MS: "1000",
        TOKENVEND_ACS_MAX_RETRIES: "0",
      },
    });
    const { key } = await svc.createApiKey("crash");
    for (let round = 1; round <= rounds; round++) {
      const f = await emu.request("PUT", "/emulator/faults", { error_rate: 0.5, error_status: 503, ops: ["delete"] });
      if (f.status !== 200 && f.status !== 204) throw new Error(`faults -> ${f.status}`);
      const stop = { now: false };
      const unknownBefore = book.unknown.size;
      const load = Array.from({ length: WORKERS }, (_, w) => worker(svc, key, book, round, w, stop));
      await sleep(KILL_AFTER_MS[0] + Math.random() * (KILL_AFTER_MS[1] - KILL_AFTER_MS[0]));
      stop.now = true;
      svc.proc.kill("SIGKILL");
      await svc.exited;
      await Promise.all(load);
      res.killedMidRequest += book.unknown.size - unknownBefore;
      if (store === "sqlite") res.integrity.push(sql(svc.dbPath, "PRAGMA integrity_check;"));
      await emu.request("DELETE", "/emulator/faults");
      await svc.start();
      await checkRound(svc, key, book, emuDb, res);
      res.rounds = round;
      log(`round ${round}: acked ${res.checkedUsers}, lost ${res.lost}, two ids ${res.twoIdentities}, ` +
        `deletes 202 ${res.acked202} / 204 ${res.acked204}, unfinished ${res.unfinished}, orphans ${res.orphans}`);
    }
    res.answers = book.answers;
  } finally {
    if (svc) await svc.cleanup();
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  res.integrityOk = res.integrity.filter((s) => s === "ok").length;
  res.ok = res.lost === 0 && res.twoIdentities === 0 && res.mappingLeft === 0 && res.unfinished === 0 &&
    (store !== "sqlite" || res.integrityOk === res.rounds) && res.rounds === rounds;
  res.markdown = markdown(res, started);
  return res;
}

function markdown(r, started) {
  const cmd = `node tests/reliability/crash.mjs --store ${r.store} --rounds ${r.rounds}`;
  const integ = r.store === "sqlite"
    ? `${r.integrityOk} of ${r.rounds} rounds \`ok\``
    : "n/a (PostgreSQL: only tokenvend was killed, not the database server)";
  const answers = Object.entries(r.answers || {}).sort().map(([k, v]) => `${k}: ${v}`).join(", ");
  return `${sectionHead(`SIGKILL under mixed writes, ${r.store === "pg" ? "PostgreSQL" : "SQLite"}`, cmd, started)}` +
    "| figure | value |\n| --- | --- |\n" +
    `| rounds (SIGKILL at a random moment 0.3-2.5 s into the load, restart, checks) | ${r.rounds} |\n` +
    `| users checked (acknowledged creates, all rounds) | ${r.checkedUsers} |\n` +
    `| acknowledged mappings lost (worst round) | ${r.lost} |\n` +
    `| users with two identities (worst round) | ${r.twoIdentities} |\n` +
    `| deletes acknowledged 202 / 204 | ${r.acked202} / ${r.acked204} |\n` +
    `| acknowledged deletes whose mapping came back | ${r.mappingLeft} |\n` +
    `| acknowledged deletes not finished in ACS after restart (outbox, 60 s ceiling) | ${r.unfinished} |\n` +
    `| \`PRAGMA integrity_check\` after the kill | ${integ} |\n` +
    `| requests cut by the kills (outcome unknown, left out) | ${r.killedMidRequest} |\n` +
    `| live ACS identities no mapping names (orphans; informational) | ${r.orphans} of ${r.liveIdentities} |\n\n` +
    `Answers seen: ${answers}.\n\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const a = parseArgs(process.argv.slice(2));
  const r = await run({
    store: a.store || "sqlite",
    rounds: Number(a.rounds || 50),
    log: (s) => process.stderr.write(`${s}\n`),
  });
  writeOut(a.out, r.markdown);
  process.stdout.write(r.markdown);
  if (a.json) writeFileSync(a.json, JSON.stringify(r, null, 2));
  process.exit(r.ok ? 0 : 1);
}
