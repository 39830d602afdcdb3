// Assertions shared by the end-to-end tests: identity ids, access tokens (JWT claims against the
// SDK's expiresOn), and RestError shapes.

import assert from "node:assert/strict";
import { decodeJwt } from "./emulator.mjs";

export const MINUTE_MS = 60_000;
const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
export const ACS_ID_RE = new RegExp(`^8:acs:(${UUID})_(${UUID})$`, "i");

export function assertAcsId(user, what = "communicationUserId") {
  assert.equal(typeof user, "object", `${what}: not an identifier object`);
  assert.match(user.communicationUserId, ACS_ID_RE, `${what} has the ACS id shape`);
}

// Checks a CommunicationAccessToken: expiresOn is a Date about `minutes` after [before, after]
// (within a minute either way), the token is an RS256 JWT with the real claim names, exp agrees
// with expiresOn, and (for ACS identities) skypeid/acsScope/resourceId match the user and scopes.
export function assertAccessToken(result, { before, after, minutes, user, scopes }) {
  assert.ok(result && typeof result.token === "string", "result has a string token");
  assert.ok(result.expiresOn instanceof Date, "expiresOn is a Date");
  assert.ok(!Number.isNaN(result.expiresOn.getTime()), "expiresOn is a valid date");
  const lo = before + minutes * MINUTE_MS - MINUTE_MS;
  const hi = after + minutes * MINUTE_MS + MINUTE_MS;
  const got = result.expiresOn.getTime();
  assert.ok(got >= lo && got <= hi,
    `expiresOn ${result.expiresOn.toISOString()} is not now+${minutes} min ` +
    `(expected ${new Date(lo).toISOString()} .. ${new Date(hi).toISOString()})`);

  const jwt = decodeJwt(result.token);
  assert.equal(jwt.header.alg, "RS256", "JWT alg");
  assert.equal(typeof jwt.header.kid, "string", "JWT header has a kid");
  const p = jwt.payload;
  for (const claim of ["skypeid", "scp", "csi", "iat", "exp", "acsScope", "resourceId", "resourceLocation"]) {
    assert.ok(claim in p, `JWT payload has claim ${claim}: ${JSON.stringify(Object.keys(p))}`);
  }
  assert.equal(typeof p.exp, "number", "exp is a number");
  assert.equal(typeof p.iat, "number", "iat is a number");
  assert.ok(Math.abs(p.exp * 1000 - got) <= 1000,
    `exp ${p.exp} (${new Date(p.exp * 1000).toISOString()}) disagrees with expiresOn ${result.expiresOn.toISOString()}`);
  assert.ok(p.iat * 1000 <= after + 5000 && p.iat * 1000 >= before - MINUTE_MS,
    `iat ${p.iat} is not about now`);
  assert.ok(p.exp > p.iat, "exp after iat");
  if (user) {
    const m = ACS_ID_RE.exec(user.communicationUserId);
    assert.equal(p.skypeid, user.communicationUserId.replace(/^8:/, ""), "skypeid is the id without 8:");
    if (m) assert.equal(String(p.resourceId).toLowerCase(), m[1].toLowerCase(), "resourceId is the id's resource");
  }
  if (scopes) {
    const got_scopes = String(p.acsScope).split(",").map((s) => s.trim()).sort();
    assert.deepEqual(got_scopes, [...scopes].sort(), `acsScope ${p.acsScope}`);
  }
  return jwt;
}

// Checks that err is a RestError with the given HTTP status (and ACS error code when given).
export function assertRestError(err, status, code, recorder) {
  const detail = recorder ? `\n--- last exchange ---\n${recorder.dump(1)}` : "";
  assert.equal(err && err.name, "RestError", `expected a RestError, got ${err && err.stack}${detail}`);
  assert.equal(err.statusCode, status, `HTTP status (${err.message})${detail}`);
  if (code) assert.equal(err.code, code, `ACS error code (${err.message})${detail}`);
  // Every ACS error body is {"error":{"code","message"}}.
  const body = err.response && err.response.bodyAsText;
  let parsed;
  assert.doesNotThrow(() => { parsed = JSON.parse(body); }, `error body is JSON: ${body}`);
  assert.equal(typeof parsed.error, "object", `error body has "error": ${body}`);
  assert.equal(typeof parsed.error.code, "string", `error.code is a string: ${body}`);
  assert.equal(typeof parsed.error.message, "string", `error.message is a string: ${body}`);
}
