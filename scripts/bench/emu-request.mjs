// `make bench` helper: prints one HMAC-signed ACS request that wrk can replay against
// acs-emulator, to measure the emulator alone. "issue" first creates an identity (so every
// replay issues a token for it); "create" replays an identity create. The signature covers
// x-ms-date, which the emulator accepts within its clock skew (minutes), longer than a run.
// Output: the path, then three header lines for wrk -H, then the body.
// Usage: node scripts/bench/emu-request.mjs CONNECTION_STRING issue|create
import { createHash, createHmac } from "node:crypto";

const [connstr, op] = process.argv.slice(2);
const parts = Object.fromEntries(
  connstr.split(";").filter(Boolean).map((kv) => {
    const i = kv.indexOf("=");
    return [kv.slice(0, i).toLowerCase(), kv.slice(i + 1)];
  }),
);
const endpoint = new URL(parts.endpoint);
const key = Buffer.from(parts.accesskey, "base64");
const apiVersion = "2023-10-01";

function signed(method, pathAndQuery, body) {
  const date = new Date().toUTCString();
  const hash = createHash("sha256").update(body).digest("base64");
  const toSign = `${method}\n${pathAndQuery}\n${date};${endpoint.host};${hash}`;
  const sig = createHmac("sha256", key).update(toSign).digest("base64");
  return {
    "x-ms-date": date,
    "x-ms-content-sha256": hash,
    authorization: `HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=${sig}`,
  };
}

let path = `/identities?api-version=${apiVersion}`;
let body = "{}";
if (op === "issue") {
  const res = await fetch(new URL(path, endpoint), { method: "POST", headers: { ...signed("POST", path, body), "content-type": "application/json" }, body });
  if (res.status !== 201) throw new Error(`create identity: HTTP ${res.status} ${await res.text()}`);
  const id = (await res.json()).identity.id;
  path = `/identities/${encodeURIComponent(id)}/:issueAccessToken?api-version=${apiVersion}`;
  body = JSON.stringify({ scopes: ["chat", "voip"], expiresInMinutes: 1440 });
} else if (op !== "create") {
  console.error("usage: emu-request.mjs CONNECTION_STRING issue|create");
  process.exit(2);
}
const h = signed("POST", path, body);
console.log(path);
for (const [k, v] of Object.entries(h)) console.log(`${k}: ${v}`);
console.log(body);
