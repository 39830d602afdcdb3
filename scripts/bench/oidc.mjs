// `make bench` helper: a local OIDC issuer on loopback. It creates one RS256 key, serves its JWKS
// at /jwks and a discovery document, writes N signed bearer JWTs (sub = bench-user-<i>, one per
// line) to a file, prints its issuer URL as the first line of stdout and serves until SIGTERM.
// Usage: node scripts/bench/oidc.mjs TOKENS_FILE [USERS] [AUDIENCE]
import { generateKeyPairSync, sign } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";

const [file, usersArg = "1000", audience = "api://tokenvend"] = process.argv.slice(2);
if (!file) {
  console.error("usage: oidc.mjs TOKENS_FILE [USERS] [AUDIENCE]");
  process.exit(2);
}
const users = Number(usersArg);
const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwks = { keys: [{ ...publicKey.export({ format: "jwk" }), kid: "bench1", alg: "RS256", use: "sig" }] };
const b64u = (x) => Buffer.from(x).toString("base64url");

const server = createServer((req, res) => {
  const path = (req.url || "").split("?")[0];
  let body;
  if (path === "/jwks") body = jwks;
  else if (path === "/.well-known/openid-configuration") body = { issuer, jwks_uri: `${issuer}/jwks` };
  res.writeHead(body ? 200 : 404, { "content-type": "application/json" });
  res.end(JSON.stringify(body || { error: "not found" }));
});
let issuer = "";
server.listen(0, "127.0.0.1", () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  const now = Math.floor(Date.now() / 1000);
  const header = b64u(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "bench1" }));
  const lines = [];
  for (let i = 0; i < users; i++) {
    // Two hours: long enough for any bench run, like the access tokens an IdP hands out.
    const claims = { iss: issuer, aud: audience, sub: `bench-user-${String(i).padStart(6, "0")}`, iat: now, exp: now + 7200 };
    const input = `${header}.${b64u(JSON.stringify(claims))}`;
    lines.push(`${input}.${b64u(sign("sha256", Buffer.from(input), privateKey))}`);
  }
  writeFileSync(file, lines.join("\n") + "\n");
  process.stdout.write(`${issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
