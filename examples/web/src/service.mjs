// The page's client for tokenvend's public API: sign-in (a local account, or an OIDC bearer
// token the app already holds), the ACS token route, revoke, delete, and the local-account
// session's renewal and logout. Every failure becomes a ServiceError (the service answered with
// its error shape) or an UnreachableError (no answer the page may read), each with a sentence
// meant for a person.

// Renew the session this long before it ends (at most a fifth of its life).
const RENEW_BEFORE_MS = 60_000;

export class ServiceError extends Error {
  constructor({ status, code, serviceMessage, retryAfter, requestId, path }) {
    super(serviceMessage || `HTTP ${status}`);
    this.name = "ServiceError";
    this.status = status;
    this.code = code || "";
    this.serviceMessage = serviceMessage || "";
    this.retryAfter = retryAfter; // seconds, or null when the page cannot read it
    this.requestId = requestId || "";
    this.path = path;
  }
}

// fetch() rejected: the service did not answer, or answered without the CORS headers this
// origin needs (the browser hides which). reason: "cors" when a no-cors probe of /healthz
// got through (the service runs, CORS refused this origin), else "down".
export class UnreachableError extends Error {
  constructor({ api, origin, reason, path }) {
    super(`${api}${path}: ${reason}`);
    this.name = "UnreachableError";
    this.api = api;
    this.origin = origin;
    this.reason = reason;
    this.path = path;
  }
}

// The session has ended and cannot be renewed from here: the person must sign in again.
export class SessionEnded extends Error {
  constructor(why) {
    super(why);
    this.name = "SessionEnded";
  }
}

export class Tokenvend {
  // api: the service's public origin, e.g. "http://127.0.0.1:8080".
  constructor(api, { onSession = () => {} } = {}) {
    this.api = api;
    this.session = null; // { kind: "local"|"oidc", token, expiresAt, renewable, renewExpiresAt }
    this.onSession = onSession; // called with a note whenever the session changes
    this.renewTimer = null;
    this.renewing = null;
  }

  async request(method, path, { bearer, json, credentials = "omit" } = {}) {
    const headers = {};
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    let res;
    try {
      res = await fetch(this.api + path, { method, headers, body, credentials, mode: "cors", cache: "no-store" });
    } catch {
      throw new UnreachableError({ api: this.api, origin: location.origin, reason: await this.probe(), path });
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const e = data && typeof data.error === "object" && data.error ? data.error : {};
      // Retry-After is readable here only when the service exposes it to this origin.
      const ra = res.headers.get("Retry-After");
      throw new ServiceError({
        status: res.status,
        code: typeof e.code === "string" ? e.code : "",
        serviceMessage: typeof e.message === "string" ? e.message : "",
        retryAfter: ra && /^\d+$/.test(ra) ? Number(ra) : retryAfterFromMessage(e.message),
        requestId: res.headers.get("X-Request-Id"),
        path,
      });
    }
    return { status: res.status, data };
  }

  // A no-cors request needs no permission from the service: it tells "answers, but not to this
  // origin" from "does not answer at all".
  async probe() {
    try {
      await fetch(`${this.api}/healthz`, { mode: "no-cors", cache: "no-store", credentials: "omit" });
      return "cors";
    } catch {
      return "down";
    }
  }

  // POST /api/login with credentials: "include", so the browser keeps the HttpOnly refresh
  // cookie the service sets. A service without session renewal sends no
  // Access-Control-Allow-Credentials, and the browser then refuses the credentialed request at
  // its preflight (so the password was not sent); the same login without cookies works there.
  async login(username, password) {
    let r;
    let cookies = true;
    try {
      r = await this.request("POST", "/api/login", { json: { username, password }, credentials: "include" });
    } catch (err) {
      if (!(err instanceof UnreachableError) || err.reason !== "cors") throw err;
      cookies = false;
      r = await this.request("POST", "/api/login", { json: { username, password } });
    }
    this.setLocalSession(r.data, cookies, "signed in");
  }

  // An OIDC app passes its own identity provider's access token; renewing it is that
  // provider's library's job, so the page has nothing to renew.
  useBearer(token) {
    const claims = decodeJwtPayload(token);
    const exp = claims && typeof claims.exp === "number" ? claims.exp * 1000 : null;
    this.clearSession();
    this.session = { kind: "oidc", token, expiresAt: exp, renewable: false, renewExpiresAt: null, user: claims?.sub };
    this.onSession("using your identity provider's token");
  }

  setLocalSession(data, cookies, note) {
    if (!data || typeof data.access_token !== "string" || typeof data.expires_in !== "number") {
      throw new ServiceError({ status: 200, code: "unexpected_answer", serviceMessage: "the service's answer has no access_token", path: "/api/login" });
    }
    this.clearTimer();
    const now = Date.now();
    const renewable = cookies && typeof data.refresh_expires_in === "number" && data.refresh_expires_in > 0;
    this.session = {
      kind: "local",
      token: data.access_token,
      expiresAt: now + data.expires_in * 1000,
      renewable,
      renewExpiresAt: renewable ? now + data.refresh_expires_in * 1000 : null,
      user: decodeJwtPayload(data.access_token)?.sub,
    };
    rememberRenewable(renewable);
    if (renewable) {
      const life = data.expires_in * 1000;
      const at = Math.max(life - RENEW_BEFORE_MS, life * 0.8);
      this.renewTimer = setTimeout(() => {
        this.renew("scheduled, before the session token expires").catch((err) => this.onSession(null, err));
      }, at);
    }
    this.onSession(note);
  }

  // POST /api/session/refresh: a new session token for the refresh cookie (rotated by the
  // service). Concurrent callers share one call, since a refresh token works once.
  renew(why) {
    if (!this.renewing) {
      this.renewing = this.renewOnce(why).finally(() => {
        this.renewing = null;
      });
    }
    return this.renewing;
  }

  async renewOnce(why) {
    let r;
    try {
      r = await this.request("POST", "/api/session/refresh", { json: {}, credentials: "include" });
    } catch (err) {
      if (err instanceof ServiceError && err.status === 404) {
        this.markNotRenewable();
        throw new SessionEnded("Session renewal is not available on this service: sign in again.");
      }
      if (err instanceof ServiceError && err.status === 401) {
        this.markNotRenewable();
        throw new SessionEnded("Your session has ended (logged out, expired, or ended by a password change): sign in again.");
      }
      // An older service's preflight for an unknown route fails without CORS headers.
      if (err instanceof UnreachableError && err.reason === "cors") {
        this.markNotRenewable();
        throw new SessionEnded("Session renewal is not available from this page: sign in again.");
      }
      throw err;
    }
    this.setLocalSession(r.data, true, `session renewed (${why})`);
  }

  markNotRenewable() {
    if (this.session) this.session.renewable = false;
    rememberRenewable(false);
  }

  // GET /api/token with the session token. A 401 for a local session renews it once (when the
  // service offers renewal) and tries again.
  async acsToken() {
    const s = this.session;
    if (!s) throw new SessionEnded("You are signed out: sign in again.");
    try {
      return await this.tokenOnce(s.token);
    } catch (err) {
      if (!(err instanceof ServiceError) || err.status !== 401) throw err;
      if (s.kind === "oidc") {
        throw new SessionEnded("The service refused your identity provider's token (expired, or not for this service): get a fresh one.");
      }
      if (!s.renewable) {
        throw new SessionEnded("Your session has ended and renewal is not available here: sign in again.");
      }
      await this.renew("after a 401 from GET /api/token");
      return this.tokenOnce(this.session.token);
    }
  }

  async tokenOnce(bearer) {
    const r = await this.request("GET", "/api/token", { bearer });
    const d = r.data;
    if (!d || typeof d.token !== "string" || typeof d.expiresOn !== "string") {
      throw new ServiceError({ status: r.status, code: "unexpected_answer", serviceMessage: "the token answer has no token", path: "/api/token" });
    }
    return d;
  }

  async revokeAll() {
    await this.request("POST", "/api/token/revoke", { bearer: this.session?.token });
  }

  // 204 deleted, 202 accepted (ACS failing; the service finishes it later).
  async deleteIdentity() {
    const r = await this.request("DELETE", "/api/user", { bearer: this.session?.token });
    return r.status;
  }

  // POST /api/session/logout ends the refresh cookie's family on the service; without renewal
  // there is nothing to end there. Either way the page forgets the session.
  async logout() {
    const s = this.session;
    this.clearSession();
    if (s?.kind === "local" && (s.renewable || rememberedRenewable())) {
      try {
        await this.request("POST", "/api/session/logout", { json: {}, credentials: "include" });
      } catch (err) {
        if (!(err instanceof ServiceError && err.status === 404) && !(err instanceof UnreachableError && err.reason === "cors")) {
          throw err;
        }
      }
    }
    rememberRenewable(false);
  }

  // Only a page whose last login got a refresh cookie tries to resume with it.
  async resume() {
    if (!rememberedRenewable()) return false;
    try {
      await this.renew("page opened: the refresh cookie from the last sign-in");
      return true;
    } catch (err) {
      // A service that cannot be reached now may still honour the cookie later.
      if (err instanceof SessionEnded) return false;
      throw err;
    }
  }

  clearTimer() {
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = null;
  }

  clearSession() {
    this.clearTimer();
    this.session = null;
  }
}

// "... retry after 12 s" in the service's own message, when the header is not readable.
function retryAfterFromMessage(msg) {
  const m = /retry after (\d+) s/.exec(String(msg || ""));
  return m ? Number(m[1]) : null;
}

// For display only: the page never trusts these claims for any decision about security.
export function decodeJwtPayload(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

// A flag, not a secret: whether the last sign-in got a refresh cookie (which script cannot read).
const RENEWABLE_KEY = "tokenvend-example.renewable";
function rememberRenewable(on) {
  try {
    if (on) localStorage.setItem(RENEWABLE_KEY, "1");
    else localStorage.removeItem(RENEWABLE_KEY);
  } catch {
    // Storage may be off; the page then asks for the password after a reload.
  }
}
function rememberedRenewable() {
  try {
    return localStorage.getItem(RENEWABLE_KEY) === "1";
  } catch {
    return false;
  }
}
