// Local stand-ins for three real identity providers (Microsoft Entra ID v2, Auth0, Keycloak), for
// tests/e2e/idp-guides.test.mjs. Each is an HTTP server on a free loopback port that publishes a
// key set and a discovery document at the PATHS the provider uses, and mints access tokens shaped
// like the provider's (header members, claim names and types, issuer and audience rules), signed
// with its own RSA keys. Nothing here reads the guide: the issuer and audience rules are the
// providers' documented ones, so a guide that gets them wrong fails the test.
//
// The one thing a stand-in cannot be is the provider's host: its URLs are http://127.0.0.1:PORT
// plus the provider's path. `origin` is that origin, so a test can point a guide's key set URL
// at it by swapping the scheme and host only (see hostSwap). selfHosted() goes one step further
// for discovery tests: from then on the stand-in's issuer (in its tokens and its discovery
// document) and the jwks_uri it announces use its own origin in place of the provider's host.

import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { b64u, signWith } from "./jwks-server.mjs";

const now = () => Math.floor(Date.now() / 1000);
// Entra backdates iat and nbf by five minutes to absorb clock skew, so its one-hour tokens carry
// exp - iat = 3900 s (Microsoft's claims reference leaves this out; it shows in Entra's tokens,
// and Microsoft staff have described it, e.g. psignoret/aad-sso-wordpress#34).
export const ENTRA_BACKDATE_S = 300;
const entraIssued = () => now() - ENTRA_BACKDATE_S;
const rsa = () => generateKeyPairSync("rsa", { modulusLength: 2048 });

// Replaces the scheme and host of url with origin, keeping the path: the substitution the tests
// make for a provider host they cannot reach.
export function hostSwap(url, origin) {
  const u = new URL(url);
  return `${origin}${u.pathname}${u.search}`;
}

// Starts a server answering GET on the given routes ({path: () => object}); resolves to
// { origin, fetches(path), close() }.
async function serve(routes) {
  const counts = new Map();
  const server = createServer((req, res) => {
    const path = (req.url || "").split("?")[0];
    const route = req.method === "GET" ? routes[path] : undefined;
    const body = JSON.stringify(route ? route() : { error: "not found" });
    if (route) counts.set(path, (counts.get(path) || 0) + 1);
    res.writeHead(route ? 200 : 404, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", ok);
  });
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    fetches: (path) => counts.get(path) || 0,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections?.();
        server.close(() => ok());
      }),
  };
}

// Compact JWS over header and payload (objects) with an RSA key pair, RS256.
function signRs256(keyPair, header, payload) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  return `${input}.${b64u(signWith(keyPair, "RS256", input))}`;
}

// The public JWK of an RSA key pair: kty, n, e.
const publicJwk = (kp) => kp.publicKey.export({ format: "jwk" });

// A self-signed certificate (DER) for the key pair, made with the openssl command (as
// lib/entra.mjs does): Entra and Auth0 publish each key's certificate in x5c and its SHA-1
// thumbprint in x5t. tokenvend reads only n and e; the certificates make the key sets as large
// and as varied as the real ones.
function certDer(kp, cn) {
  const dir = mkdtempSync(join(tmpdir(), "tv-idp-cert-"));
  try {
    const key = join(dir, "key.pem");
    const out = join(dir, "cert.der");
    writeFileSync(key, kp.privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
    execFileSync("openssl", ["req", "-x509", "-new", "-key", key, "-subj", `/CN=${cn}`, "-days", "2", "-outform", "DER", "-out", out],
      { stdio: ["ignore", "ignore", "pipe"] });
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// x5c (standard base64, RFC 7517 4.7) and x5t (base64url SHA-1 of the certificate, 27
// characters: also the form of Entra's kid) of a key pair; with s256 also "x5t#S256", which
// Keycloak publishes.
function certMembers(kp, cn, s256 = false) {
  const der = certDer(kp, cn);
  const m = { x5c: [der.toString("base64")], x5t: createHash("sha1").update(der).digest("base64url") };
  if (s256) m["x5t#S256"] = createHash("sha256").update(der).digest("base64url");
  return m;
}

// Microsoft Entra ID, single tenant. Access tokens for the tokenvend API registration, v2.0
// (manifest requestedAccessTokenVersion 2): iss https://login.microsoftonline.com/{tid}/v2.0, aud
// the API's application (client) id, azp the client app, oid the user's object id, sub pairwise
// (a different value per application for the same user), header {typ, alg, kid}. token1() mints
// the v1.0 shape an API registration without requestedAccessTokenVersion 2 gets: iss
// https://sts.windows.net/{tid}/, aud the Application ID URI, appid instead of azp, x5t in the
// header. teamsToken() mints the token a client gets for the ACS Teams scopes
// (https://auth.msft.communication.azure.com/Teams.ManageCalls, Teams.ManageChats), which
// tokenvend forwards to ACS and never verifies. Keys: three published, like Entra's rolling set;
// tokens are signed with the second to show a key other than the first is found by kid.
// One provider's host: its key set and discovery document on the provider's own paths, the
// issuer `${base}${issuerPath}`, where base is the provider's real origin until selfHosted()
// points it (and the discovery document's URLs) at this server. discoveryExtra(base) adds
// members after jwks_uri. Resolves to serve()'s members plus issuer (a live getter), selfHosted,
// jwksPath, discoveryPath and jwks(); a stand-in adds its token makers with Object.assign (its
// sources hold no getters, so the issuer getter stays live; a spread of this object would read
// it once).
async function startProvider({ origin, issuerPath, jwksPath, discoveryPath, jwks, algs, discoveryExtra = () => ({}) }) {
  let base = origin;
  const issuerOf = () => `${base}${issuerPath}`;
  const srv = await serve({
    [jwksPath]: () => jwks,
    [discoveryPath]: () => ({
      issuer: issuerOf(),
      jwks_uri: `${base}${jwksPath}`,
      ...discoveryExtra(base),
      id_token_signing_alg_values_supported: algs,
    }),
  });
  return {
    ...srv,
    get issuer() {
      return issuerOf();
    },
    selfHosted() {
      base = srv.origin;
    },
    jwksPath,
    discoveryPath,
    jwks: () => jwks,
  };
}

export async function startEntraStandin({ tenantId, apiClientId, appIdUri }) {
  const keys = [rsa(), rsa(), rsa()].map((kp) => {
    const cert = certMembers(kp, "accounts.accesscontrol.windows.net");
    return { kp, kid: cert.x5t, cert };
  });
  const issuer = `https://login.microsoftonline.com/${tenantId}/v2.0`;
  const jwksPath = `/${tenantId}/discovery/v2.0/keys`;
  const discoveryPath = `/${tenantId}/v2.0/.well-known/openid-configuration`;
  const jwks = {
    keys: keys.map(({ kp, kid, cert }) => ({
      kty: "RSA",
      use: "sig",
      kid,
      x5t: cert.x5t,
      ...publicJwk(kp),
      x5c: cert.x5c,
      issuer,
    })),
  };
  const p = await startProvider({
    origin: "https://login.microsoftonline.com",
    issuerPath: `/${tenantId}/v2.0`,
    jwksPath,
    discoveryPath,
    jwks,
    algs: ["RS256"],
    discoveryExtra: (base) => ({ token_endpoint: `${base}/${tenantId}/oauth2/v2.0/token` }),
  });
  const signer = keys[1];
  // A pairwise subject: the same user gets another sub in another application.
  const pairwiseSub = (oid, appId) => createHash("sha256").update(`${oid}/${appId}/${tenantId}`).digest("base64url").slice(0, 43);
  const user = (oid) => ({ name: "Ada Lovelace", preferred_username: `ada-${oid.slice(0, 4)}@contoso.example` });
  // A v1.0 token (issuer sts.windows.net, appid): profile goes between appidacr and oid, rest
  // after tid, in the order Entra writes them.
  const tokenV1 = ({ aud, oid, clientAppId, scp, sub, profile = {}, rest = {} }) => {
    const t = entraIssued();
    return signRs256(signer.kp, { typ: "JWT", alg: "RS256", x5t: signer.kid, kid: signer.kid }, {
      aud,
      iss: `https://sts.windows.net/${tenantId}/`,
      iat: t,
      nbf: t,
      exp: t + 3900,
      appid: clientAppId,
      appidacr: "0",
      ...profile,
      oid,
      scp,
      sub,
      tid: tenantId,
      ...rest,
    });
  };
  return Object.assign(p, {
    tenantId,
    pairwiseSub,
    // v2.0 access token for the tokenvend API, asked for by client app clientAppId for user oid.
    token({ oid, clientAppId, claims = {}, header = {} }) {
      const t = entraIssued();
      const payload = {
        aud: apiClientId,
        iss: p.issuer,
        iat: t,
        nbf: t,
        exp: t + 3900,
        aio: b64u(randomBytes(48)),
        azp: clientAppId,
        azpacr: "0",
        ...user(oid),
        oid,
        rh: `0.${b64u(randomBytes(30))}.`,
        scp: "access_as_user",
        sid: randomUUID(),
        sub: pairwiseSub(oid, clientAppId),
        tid: tenantId,
        uti: b64u(randomBytes(16)),
        ver: "2.0",
        ...claims,
      };
      return signRs256(signer.kp, { typ: "JWT", alg: "RS256", kid: signer.kid, ...header }, payload);
    },
    // The v1.0 shape of the same token (the API registration left at the default version).
    token1({ oid, clientAppId }) {
      return tokenV1({
        aud: appIdUri,
        oid,
        clientAppId,
        scp: "access_as_user",
        sub: pairwiseSub(oid, clientAppId),
        profile: user(oid),
        rest: { unique_name: user(oid).preferred_username, upn: user(oid).preferred_username, ver: "1.0" },
      });
    },
    // The Entra token for the ACS Teams scopes (what MSAL returns for them), for the Teams
    // exchange: v1.0 shape, appid the client app, oid the user.
    teamsToken({ oid, clientAppId, claims = {} }) {
      return tokenV1({
        aud: "https://auth.msft.communication.azure.com",
        oid,
        clientAppId,
        scp: "Teams.ManageCalls Teams.ManageChats",
        sub: pairwiseSub(oid, "acs"),
        rest: { ver: "1.0", ...claims },
      });
    },
  });
}

// Auth0 tenant at domain. Access tokens for an API whose Identifier is apiIdentifier: iss
// https://{domain}/ (with the trailing slash), sub "{connection}|{id}", aud the identifier alone
// or, when openid was asked too, [identifier, https://{domain}/userinfo]; azp the application's
// client id, scope a space-separated string; header {alg, typ, kid}. opaqueToken() is what a
// login without an audience gets: not a JWS (a five-part JWE encrypted for Auth0 itself).
export async function startAuth0Standin({ domain }) {
  const kp = rsa();
  const kid = b64u(randomBytes(16)).slice(0, 22);
  const jwksPath = "/.well-known/jwks.json";
  const discoveryPath = "/.well-known/openid-configuration";
  const { x5t, x5c } = certMembers(kp, domain);
  const jwks = { keys: [{ kty: "RSA", use: "sig", alg: "RS256", kid, ...publicJwk(kp), x5c, x5t }] };
  const p = await startProvider({
    origin: `https://${domain}`,
    issuerPath: "/",
    jwksPath,
    discoveryPath,
    jwks,
    algs: ["HS256", "RS256", "PS256"],
  });
  return Object.assign(p, {
    // aud: the API identifier (string) or, with openid, the array Auth0 sends.
    // header: extra or overriding header members (e.g. typ "at+jwt", the RFC 9068 profile).
    token({ sub, audience, clientId, openid = true, claims = {}, header = {} }) {
      const t = now();
      const payload = {
        iss: p.issuer,
        sub,
        aud: openid ? [audience, `https://${domain}/userinfo`] : audience,
        iat: t,
        exp: t + 86400,
        scope: openid ? "openid profile email" : "read:tokens",
        azp: clientId,
        ...claims,
      };
      return signRs256(kp, { alg: "RS256", typ: "JWT", kid, ...header }, payload);
    },
    opaqueToken() {
      const h = b64u(JSON.stringify({ alg: "dir", enc: "A256GCM", iss: p.issuer }));
      return `${h}..${b64u(randomBytes(12))}.${b64u(randomBytes(96))}.${b64u(randomBytes(16))}`;
    },
  });
}

// Keycloak realm at https://{host}/realms/{realm} (Keycloak 17 and later; before, /auth/realms).
// Access tokens: typ "Bearer" in the payload, azp the client that asked, sub the user's id (a
// UUID), aud "account" by default (the Audience Resolve mapper of the roles scope) plus whatever
// an Audience mapper adds; header {alg, typ, kid}. The key set holds the realm's RS256 signing
// key and its RSA-OAEP encryption key (use "enc"), which a verifier must skip.
export async function startKeycloakStandin({ host, realm }) {
  const sig = rsa();
  const enc = rsa();
  const sigKid = b64u(randomBytes(32));
  const encKid = b64u(randomBytes(32));
  const jwksPath = `/realms/${realm}/protocol/openid-connect/certs`;
  const discoveryPath = `/realms/${realm}/.well-known/openid-configuration`;
  const jwks = {
    keys: [
      { kid: encKid, kty: "RSA", alg: "RSA-OAEP", use: "enc", ...publicJwk(enc), ...certMembers(enc, realm, true) },
      { kid: sigKid, kty: "RSA", alg: "RS256", use: "sig", ...publicJwk(sig), ...certMembers(sig, realm, true) },
    ],
  };
  const p = await startProvider({
    origin: `https://${host}`,
    issuerPath: `/realms/${realm}`,
    jwksPath,
    discoveryPath,
    jwks,
    algs: ["RS256", "PS256", "ES256"],
  });
  return Object.assign(p, {
    // aud: what the realm's mappers put there ("account" alone without an Audience mapper; null:
    // no aud at all, what Keycloak sends when no mapper produces one).
    token({ sub, clientId, aud = "account", iss = p.issuer, claims = {} }) {
      const t = now();
      const payload = {
        exp: t + 300,
        iat: t,
        auth_time: t - 5,
        jti: `onrtac:${randomUUID()}`,
        iss,
        ...(aud === null ? {} : { aud }),
        sub,
        typ: "Bearer",
        azp: clientId,
        sid: randomUUID(),
        acr: "1",
        "allowed-origins": ["https://chat.example.com"],
        realm_access: { roles: ["default-roles-" + realm, "offline_access", "uma_authorization"] },
        resource_access: { account: { roles: ["manage-account", "view-profile"] } },
        scope: "openid email profile",
        email_verified: true,
        name: "Grace Hopper",
        preferred_username: "grace",
        given_name: "Grace",
        family_name: "Hopper",
        email: "grace@example.com",
        ...claims,
      };
      return signRs256(sig, { alg: "RS256", typ: "JWT", kid: sigKid }, payload);
    },
  });
}
