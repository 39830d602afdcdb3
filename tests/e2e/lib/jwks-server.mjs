// A local OIDC issuer for the service tests: an HTTP server on a free loopback port publishing a
// JWKS (RS256, PS256 and ES256 keys, plus keys the service must refuse) and a discovery document,
// and a signer that mints compact JWS with node's crypto. Hand-built headers and payloads (raw
// JSON strings) let tests send what no JWT library would produce.

import { createHash, createHmac, generateKeyPairSync, sign as cryptoSign, constants } from "node:crypto";
import { createServer } from "node:http";

export const b64u = (buf) => Buffer.from(buf).toString("base64url");

function jwkOf(publicKey, extra) {
  return { ...publicKey.export({ format: "jwk" }), use: "sig", ...extra };
}

// Signs signingInput with the key of the given kind; alg names the JWS algorithm. Exported for
// lib/idp-standins.mjs, whose provider-shaped issuers sign the same way.
export function signWith(key, alg, signingInput, opts = {}) {
  const data = Buffer.from(signingInput);
  switch (alg) {
    case "RS256":
      return cryptoSign("sha256", data, key.privateKey);
    case "PS256":
      return cryptoSign("sha256", data, {
        key: key.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: 32,
      });
    case "ES256":
      // JWS wants raw r||s (64 bytes); opts.der produces the DER form a verifier must refuse.
      return cryptoSign("sha256", data, {
        key: key.privateKey,
        dsaEncoding: opts.der ? "der" : "ieee-p1363",
      });
    default:
      throw new Error(`signWith: unsupported alg ${alg}`);
  }
}

// Starts the issuer. Resolves to an object with { issuer, jwksUrl, discoveryUrl, audience,
// keys, fetches(), token(), sign(), close() }.
export async function startJwksServer({ audience = "api://tokenvend" } = {}) {
  const rsa = () => generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keys = {
    rs1: { alg: "RS256", ...rsa() },
    ps1: { alg: "PS256", ...rsa() },
    es1: { alg: "ES256", ...generateKeyPairSync("ec", { namedCurve: "P-256" }) },
    // Published but too weak: RSA keys below 2048 bits must be refused.
    weak: { alg: "RS256", ...generateKeyPairSync("rsa", { modulusLength: 1024 }) },
  };
  // Not published: tokens signed with it name a kid the JWKS does not have.
  const stranger = { alg: "RS256", ...rsa() };

  const jwks = {
    keys: Object.entries(keys).map(([kid, k]) => jwkOf(k.publicKey, { kid, alg: k.alg })),
  };
  let jwksFetches = 0;
  let discoveryFetches = 0;
  let issuer = "";

  const server = createServer((req, res) => {
    const send = (status, obj) => {
      const body = JSON.stringify(obj);
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    const path = (req.url || "").split("?")[0];
    if (req.method === "GET" && path === "/jwks") {
      jwksFetches++;
      send(200, jwks);
    } else if (req.method === "GET" && path === "/.well-known/openid-configuration") {
      discoveryFetches++;
      send(200, {
        issuer,
        jwks_uri: `${issuer}/jwks`,
        id_token_signing_alg_values_supported: ["RS256", "PS256", "ES256"],
      });
    } else {
      send(404, { error: "not found" });
    }
  });
  await new Promise((res, rej) => {
    server.once("error", rej);
    server.listen(0, "127.0.0.1", res);
  });
  const port = server.address().port;
  issuer = `http://127.0.0.1:${port}`;

  const now = () => Math.floor(Date.now() / 1000);

  const srv = {
    issuer,
    audience,
    jwksUrl: `${issuer}/jwks`,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    jwks,
    keys,
    fetches: () => ({ jwks: jwksFetches, discovery: discoveryFetches }),

    // Default claims of a valid caller token for user sub.
    claims(sub, extra = {}) {
      const t = now();
      return { iss: issuer, aud: audience, sub, iat: t, nbf: t - 5, exp: t + 600, ...extra };
    },

    // Mints a compact JWS. payload: an object (JSON-encoded) or a string (used verbatim).
    // opts: kid (default rs1), alg (default: the key's), header (extra/overriding header fields),
    // rawHeader (string used verbatim), key ("stranger" signs with the unpublished key), der.
    sign(payload, opts = {}) {
      const kid = opts.kid ?? "rs1";
      const key = opts.key === "stranger" ? stranger : keys[kid] || keys.rs1;
      const alg = opts.alg ?? key.alg;
      const headerJson =
        opts.rawHeader ?? JSON.stringify({ alg, typ: "JWT", ...(kid === null ? {} : { kid }), ...opts.header });
      const payloadJson = typeof payload === "string" ? payload : JSON.stringify(payload);
      const signingInput = `${b64u(headerJson)}.${b64u(payloadJson)}`;
      let sig;
      if (alg === "none") sig = Buffer.alloc(0);
      else if (alg === "HS256") sig = createHmac("sha256", opts.hmacSecret).update(signingInput).digest();
      else sig = signWith(key, alg, signingInput, opts);
      return `${signingInput}.${b64u(sig)}`;
    },

    // A valid token for sub, signed with kid's key (claims may be overridden or extended).
    token(sub, { kid = "rs1", claims = {}, ...opts } = {}) {
      return srv.sign(srv.claims(sub, claims), { kid, ...opts });
    },

    // The PEM of a published RSA public key, the classic "HS256 with the public key" secret.
    publicPem(kid = "rs1", type = "spki") {
      return keys[kid].publicKey.export({ format: "pem", type });
    },

    close() {
      return new Promise((res) => {
        server.closeAllConnections?.();
        server.close(() => res());
      });
    },
  };
  return srv;
}

// A short fingerprint of a secret for assertion messages (never the secret itself).
export function fingerprint(s) {
  return createHash("sha256").update(String(s)).digest("hex").slice(0, 12);
}
