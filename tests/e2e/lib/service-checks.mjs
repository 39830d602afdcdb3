// Assertions shared by the service tests: the one error shape {"error":{"code","message"}},
// token responses (shape, Cache-Control: no-store, JWT exp against expiresOn), 401 challenges.

import assert from "node:assert/strict";
import { decodeJwt } from "./emulator.mjs";
import { ACS_ID_RE } from "./checks.mjs";

// A compact description of an answer for assertion messages (body cut short; never long tokens).
export function show(res) {
  const text = String(res.text ?? "");
  return `${res.status} ${text.length > 300 ? `${text.slice(0, 300)}...` : text}`;
}

// Checks res is an error answer with the given status and the one error shape. code: a string or
// an array of acceptable codes (omitted: any non-empty code). Returns the error object.
export function assertError(res, status, code, what = "") {
  const label = what ? `${what}: ` : "";
  assert.equal(res.status, status, `${label}status (${show(res)})`);
  assert.match(String(res.headers["content-type"] || ""), /^application\/json\b/i,
    `${label}content-type of an error is JSON (${show(res)})`);
  assert.ok(res.json && typeof res.json === "object" && !Array.isArray(res.json),
    `${label}body is a JSON object (${show(res)})`);
  const e = res.json.error;
  assert.ok(e && typeof e === "object", `${label}body has an "error" object (${show(res)})`);
  assert.equal(typeof e.code, "string", `${label}error.code is a string (${show(res)})`);
  assert.ok(e.code.length > 0, `${label}error.code is not empty`);
  assert.equal(typeof e.message, "string", `${label}error.message is a string (${show(res)})`);
  assert.ok(e.message.length > 0, `${label}error.message is not empty`);
  if (typeof code === "string") assert.equal(e.code, code, `${label}error.code (${show(res)})`);
  else if (Array.isArray(code)) assert.ok(code.includes(e.code), `${label}error.code ${e.code} not in ${code.join("|")}`);
  return e;
}

// 401 with the error shape and a Bearer challenge.
export function assertUnauthorized(res, what = "") {
  const e = assertError(res, 401, "unauthorized", what);
  assert.match(String(res.headers["www-authenticate"] || ""), /^Bearer\b/i,
    `${what}: 401 carries WWW-Authenticate: Bearer (${JSON.stringify(res.headers)})`);
  return e;
}

// 405 with the error shape and an Allow header listing the methods the route has.
export function assertMethodNotAllowed(res, allowed, what = "") {
  assertError(res, 405, "method_not_allowed", what);
  const allow = String(res.headers.allow || "");
  assert.ok(allow.length > 0, `${what}: 405 carries an Allow header`);
  const methods = allow.split(",").map((m) => m.trim().toUpperCase());
  for (const m of allowed) assert.ok(methods.includes(m), `${what}: Allow "${allow}" names ${m}`);
}

export function assertNoStore(res, what = "") {
  const cc = String(res.headers["cache-control"] || "");
  assert.match(cc, /(^|,)\s*no-store\s*(,|$)/i, `${what}: Cache-Control: no-store on a token response (got "${cc}")`);
}

export function assertAcsIdString(id, what = "communicationUserId") {
  assert.equal(typeof id, "string", `${what} is a string`);
  assert.match(id, ACS_ID_RE, `${what} has the ACS id shape (${id})`);
}

// Checks an ACS token answer: status (default 200), no-store, {"token","expiresOn"} with expiresOn
// an ISO date agreeing with the JWT's exp; when withUser, "user":{"communicationUserId"}.
// minutes: expected lifetime (checked to a minute) unless the emulator overrides it.
// scopes: expected acsScope set. Returns { token, expiresOn (ms), jwt, userId }.
export function assertTokenResponse(res, { status = 200, withUser = true, minutes, scopes, userId, what = "" } = {}) {
  const label = what ? `${what}: ` : "";
  assert.equal(res.status, status, `${label}status (${show(res)})`);
  assert.match(String(res.headers["content-type"] || ""), /^application\/json\b/i, `${label}content-type`);
  assertNoStore(res, what);
  const b = res.json;
  assert.ok(b && typeof b === "object", `${label}JSON body (${show(res)})`);
  assert.equal(typeof b.token, "string", `${label}token is a string`);
  assert.equal(typeof b.expiresOn, "string", `${label}expiresOn is a string`);
  const exp = Date.parse(b.expiresOn);
  assert.ok(!Number.isNaN(exp), `${label}expiresOn parses as a date (${b.expiresOn})`);
  assert.match(b.expiresOn, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/, `${label}expiresOn is ISO 8601`);
  const jwt = decodeJwt(b.token);
  assert.ok(Math.abs(jwt.payload.exp * 1000 - exp) <= 1000,
    `${label}JWT exp ${jwt.payload.exp} agrees with expiresOn ${b.expiresOn}`);
  if (minutes !== undefined) {
    const want = Date.now() + minutes * 60_000;
    assert.ok(Math.abs(exp - want) <= 90_000, `${label}expiresOn ${b.expiresOn} is about now + ${minutes} min`);
  }
  if (scopes) {
    const got = String(jwt.payload.acsScope).split(",").map((s) => s.trim()).sort();
    assert.deepEqual(got, [...scopes].sort(), `${label}acsScope of the token`);
  }
  let id;
  if (withUser) {
    assert.ok(b.user && typeof b.user === "object", `${label}body has "user" (${show(res)})`);
    id = b.user.communicationUserId;
    assertAcsIdString(id, `${label}user.communicationUserId`);
    assert.equal(jwt.payload.skypeid, id.replace(/^8:/, ""), `${label}token belongs to user.communicationUserId`);
    if (userId) assert.equal(id, userId, `${label}same identity as before`);
  }
  return { token: b.token, expiresOn: exp, jwt, userId: id };
}

// Every string value anywhere in a JSON value (for "does this body name X" checks whose exact
// field name the spec leaves open).
export function jsonStrings(v, out = []) {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => jsonStrings(x, out));
  else if (v && typeof v === "object") Object.values(v).forEach((x) => jsonStrings(x, out));
  return out;
}
