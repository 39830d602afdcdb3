#!/usr/bin/env node
// A static file server for the example page, with no dependencies: node serve.mjs --api URL
// [--port N]. It listens on 127.0.0.1 only, serves index.html, app.css and the bundle in dist/
// (nothing else of this directory: no dotfiles, no node_modules, no sources), and answers
// /config.json with the service's address from --api, so the page knows where tokenvend is.
// Every answer carries Cache-Control: no-store and a Content-Security-Policy that lets the page
// talk to that one origin and load nothing from anywhere else.
// Prints "serving http://127.0.0.1:PORT/ (api URL)" on stdout once it listens (--port 0 picks a
// free port); stops on SIGTERM or SIGINT.

import { createReadStream, realpathSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = realpathSync(dirname(fileURLToPath(import.meta.url)));
const MAX_PATH = 256;

// The only things served: exact files, and files under dist/ with these types.
const FILES = new Set(["/index.html", "/app.css"]);
const DIST = "/dist/";
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".json": "application/json; charset=utf-8",
};

function usage(msg) {
  if (msg) process.stderr.write(`serve.mjs: ${msg}\n`);
  process.stderr.write("usage: node serve.mjs --api http://HOST:PORT [--port N]   (default port 8082)\n");
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: 8082, api: "" };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf("=");
    const [name, inline] = eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) usage(`${name} needs a value`);
      return argv[++i];
    };
    if (name === "--api") opts.api = value();
    else if (name === "--port") opts.port = value();
    else if (name === "--help" || name === "-h") usage();
    else usage(`unknown argument ${JSON.stringify(a)}`);
  }
  if (!/^\d{1,5}$/.test(String(opts.port)) || Number(opts.port) > 65535) usage("--port must be 0..65535");
  opts.port = Number(opts.port);
  let url;
  try {
    url = new URL(opts.api);
  } catch {
    usage("--api must be the service's public address, e.g. http://127.0.0.1:8080");
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password ||
      url.pathname !== "/" || url.search || url.hash) {
    usage("--api must be an origin: http(s)://host[:port] with no path, query or credentials");
  }
  opts.api = url.origin;
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// connect-src names the service alone; the page's own scripts and styles come from 'self'.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  `connect-src 'self' ${opts.api}`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const COMMON_HEADERS = {
  "Cache-Control": "no-store",
  "Content-Security-Policy": CSP,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
};

function send(res, status, type, body, extra = {}) {
  res.writeHead(status, { ...COMMON_HEADERS, "Content-Type": type, "Content-Length": Buffer.byteLength(body), ...extra });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function notFound(res) {
  send(res, 404, "text/plain; charset=utf-8", "not found\n");
}

// The file a URL path names, or null. The path is decoded once; anything odd (a NUL, a
// backslash, an empty, "." or ".." segment, a dotfile, an encoded slash) is refused rather than
// normalised, and the real path of the result must still lie inside ROOT (no symlink out).
function fileFor(rawPath) {
  if (rawPath.length > MAX_PATH || /%(2f|5c|00)/i.test(rawPath)) return null;
  let path;
  try {
    path = decodeURIComponent(rawPath);
  } catch {
    return null;
  }
  if (path === "/") path = "/index.html";
  if (/[\0\\]/.test(path)) return null;
  const segments = path.split("/").slice(1);
  if (segments.some((s) => s === "" || s.startsWith("."))) return null;
  const allowed = FILES.has(path) ||
    (path.startsWith(DIST) && segments.length === 2 && Object.hasOwn(TYPES, extname(path)));
  if (!allowed) return null;
  const abs = join(ROOT, ...segments);
  try {
    const real = realpathSync(abs);
    if (!real.startsWith(ROOT + sep)) return null;
    const st = statSync(real);
    if (!st.isFile()) return null;
    return { real, size: st.size, type: TYPES[extname(real)] || "application/octet-stream" };
  } catch {
    return null;
  }
}

const server = createServer((req, res) => {
  if (req.method !== "GET" && req.method !== "HEAD") {
    send(res, 405, "text/plain; charset=utf-8", "method not allowed\n", { Allow: "GET, HEAD" });
    return;
  }
  const target = req.url || "";
  if (!target.startsWith("/")) {
    send(res, 400, "text/plain; charset=utf-8", "bad request\n");
    return;
  }
  const q = target.indexOf("?");
  const rawPath = q >= 0 ? target.slice(0, q) : target;
  if (rawPath === "/config.json") {
    send(res, 200, TYPES[".json"], `${JSON.stringify({ api: opts.api })}\n`);
    return;
  }
  const f = fileFor(rawPath);
  if (!f) {
    notFound(res);
    return;
  }
  res.writeHead(200, { ...COMMON_HEADERS, "Content-Type": f.type, "Content-Length": f.size });
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  const stream = createReadStream(f.real);
  stream.on("error", () => res.destroy());
  stream.pipe(res);
});

server.on("error", (err) => {
  process.stderr.write(`serve.mjs: ${err.message}\n`);
  process.exit(1);
});
server.listen(opts.port, "127.0.0.1", () => {
  const { port } = server.address();
  process.stdout.write(`serving http://127.0.0.1:${port}/ (api ${opts.api})\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
