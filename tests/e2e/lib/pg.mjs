// A throw-away PostgreSQL 15 cluster for the end-to-end suites, the same as tests/lib/pg.c does
// for the C tests: initdb and pg_ctl from Debian's postgresql-15 in a temporary directory, as
// nobody:nogroup when the tests run as root (initdb refuses root), listening on 127.0.0.1 on a
// free port with its socket in that directory, a password-authenticated role and a database.
// A detached guardian shell stops the server and removes the directory when this process ends
// however it ends (its stdin pipe closes); stop() does the same at once.

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const SUPERUSER = "tvsuper";
const APP_USER = "tv_app";
const APP_DB = "tv";
const WAIT_S = "60"; // pg_ctl -t: generous, for a loaded machine
const START_TRIES = 3;

export function pgBindir() {
  return process.env.TV_PG_BINDIR || "/usr/lib/postgresql/15/bin";
}

// nobody:nogroup when root, else ourselves (undefined: no change).
function owner() {
  if (process.getuid() !== 0) return {};
  return { uid: 65534, gid: 65534 };
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

function tail(path) {
  try {
    return readFileSync(path, "utf8").slice(-2048);
  } catch {
    return "";
  }
}

function guardian(dir) {
  const script =
    'cat >/dev/null; d=$1; b=$2; shift 2; ' +
    'if [ -f "$d/data/postmaster.pid" ]; then "$@" "$b/pg_ctl" -D "$d/data" -m immediate -w -t 30 stop; fi; ' +
    'rm -rf "$d"';
  const asOwner = process.getuid() === 0
    ? ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
  const g = spawn("/bin/sh", ["-c", script, "pg-guardian", dir, pgBindir(), ...asOwner], {
    stdio: ["pipe", "ignore", "ignore"],
    detached: true,
  });
  g.unref();
  g.stdin.unref?.();
  g.stdin.on("error", () => {});
  return g;
}

// Starts a cluster. Resolves to { dir, port, user, password, db, uri, uriWith(), adminExec(),
// restart(), pause(), resume(), stop() }; rejects with the server log's tail when it cannot start.
export async function startPostgres() {
  const bin = pgBindir();
  if (!existsSync(join(bin, "initdb"))) {
    throw new Error(`${bin}/initdb is missing (Debian package postgresql-15: scripts/deps.sh test)`);
  }
  const dir = mkdtempSync(join(tmpdir(), "tv-pg-"));
  const own = owner();
  if (own.uid !== undefined) chownSync(dir, own.uid, own.gid);
  const guard = guardian(dir);
  const data = join(dir, "data");
  const opts = { cwd: dir, ...own, timeout: 120_000 };
  const password = randomBytes(16).toString("hex");
  let port = 0;
  const ctl = (action, mode) => {
    const args = ["-D", data, "-w", "-t", WAIT_S];
    if (mode) args.push("-m", mode);
    if (action !== "stop") {
      args.push("-l", join(dir, "server.log"), "-o",
        `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off ` +
        "-c synchronous_commit=off -c full_page_writes=off");
    }
    args.push(action);
    return run(join(bin, "pg_ctl"), args, opts);
  };
  const psql = (args) => run("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", ...args],
    { timeout: 60_000 });
  const adminExec = (sql) =>
    psql(["-h", dir, "-p", String(port), "-U", SUPERUSER, "-d", "postgres", "-c", sql]);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (existsSync(join(data, "postmaster.pid"))) await ctl("stop", "fast").catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    guard.stdin.end();
  };
  try {
    await run(join(bin, "initdb"), ["-D", data, "-U", SUPERUSER, "-E", "UTF8", "--no-locale",
      "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256"], opts);
    let started = false;
    for (let i = 0; i < START_TRIES && !started; i++) {
      port = await freePort();
      started = await ctl("start").then(() => true, () => false);
    }
    if (!started) throw new Error(`postgres did not start:\n${tail(join(dir, "server.log"))}`);
    // Our own random hex password: safe inside a quoted literal.
    await adminExec(`CREATE ROLE ${APP_USER} LOGIN PASSWORD '${password}'`);
    await adminExec(`CREATE DATABASE ${APP_DB} OWNER ${APP_USER}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const uriWith = ({ user = APP_USER, password: pass = password, db = APP_DB } = {}) =>
    `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${port}/${db}`;
  return {
    dir, port, user: APP_USER, password, db: APP_DB, uri: uriWith(), uriWith, adminExec,
    psql: (uri, sql) => psql([uri, "-A", "-t", "-c", sql]),
    restart: () => ctl("restart", "fast"),
    pause: () => ctl("stop", "fast"),
    resume: () => ctl("start"),
    stop,
  };
}
