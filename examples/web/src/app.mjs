// The example page: sign in, then keep an ACS token fresh with the ACS SDK's
// AzureCommunicationTokenCredential, whose tokenRefresher asks tokenvend (GET /api/token).
// Everything shown about a token is decoded from it for display only.

import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { SessionEnded, ServiceError, Tokenvend, UnreachableError, decodeJwtPayload } from "./service.mjs";

const $ = (id) => document.getElementById(id);

let client = null;
let credential = null;
let generation = 0; // the credential a refresher belongs to; older ones are ignored
let shown = null; // { token, expiresAt }
let retryTimer = null;

function timeOf(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// A time of day, with the day when it is not today.
function whenOf(ms) {
  const d = new Date(ms);
  if (d.toDateString() === new Date().toDateString()) return timeOf(ms);
  return d.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
}

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

// What went wrong, in a sentence for the person using the page.
export function describe(err) {
  const api = client?.api ?? "the service";
  if (err instanceof UnreachableError) {
    if (err.reason === "cors") {
      return `The service at ${api} answers, but not to this page: its CORS setting does not allow ` +
        `this page's origin ${err.origin}. Add ${err.origin} to TOKENVEND_CORS_ORIGINS ` +
        "(cors_origins) and restart tokenvend.";
    }
    return `The service at ${api} cannot be reached from this page's origin ${err.origin}: is ` +
      `tokenvend running there? Its CORS setting (TOKENVEND_CORS_ORIGINS) must also list ${err.origin}.`;
  }
  if (err instanceof SessionEnded) return err.message;
  if (err instanceof ServiceError) {
    const again = err.retryAfter != null ? ` Try again in ${duration(err.retryAfter)}.` : "";
    const said = err.serviceMessage ? ` (the service says: ${err.serviceMessage})` : "";
    const id = err.requestId ? ` [request id ${err.requestId}]` : "";
    let text;
    if (err.status === 401 && err.path === "/api/login") {
      text = "Wrong user name or password.";
    } else if (err.status === 400 && err.path === "/api/login") {
      text = `The service refused the sign-in${said}.`;
    } else if (err.status === 404 && err.path === "/api/login") {
      text = "This service has no local accounts (local_accounts is off): sign in with your identity provider's token instead.";
    } else if (err.status === 429 && err.path === "/api/login") {
      text = `Too many failed sign-ins for this user name.${again || " Wait a few minutes, then try again."}`;
    } else if (err.status === 429) {
      text = `Too many requests.${again || " Wait a little, then try again."}${said}`;
    } else if (err.status === 401) {
      text = `The service refused your credentials${said}. Sign in again.`;
    } else if (err.status === 403) {
      text = `The service does not allow this${said}.`;
    } else if (err.status === 503 || err.status === 502 || err.status === 504) {
      text = `The service cannot do this right now${said}.${again || " Try again in a moment."}`;
    } else {
      text = `The service answered ${err.status}${said}.${again}`;
    }
    return text + id;
  }
  return `Something went wrong: ${err?.message ?? err}`;
}

function showError(err) {
  const box = $("error");
  if (!err) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = typeof err === "string" ? err : describe(err);
  box.hidden = false;
}

function status(text) {
  $("status").textContent = text;
}

// One line of the refresh log: time, what happened and why, the new expiry.
function log(reason, detail = "") {
  const li = document.createElement("li");
  const t = document.createElement("time");
  t.dateTime = new Date().toISOString();
  t.textContent = timeOf(Date.now());
  const what = document.createElement("span");
  what.className = "reason";
  what.textContent = reason;
  li.append(t, " ", what);
  if (detail) {
    const d = document.createElement("span");
    d.className = "detail";
    d.textContent = detail;
    li.append(" ", d);
  }
  $("log").append(li);
}

function showSignedIn(on) {
  $("signin").hidden = on;
  $("signed-in").hidden = !on;
}

function renderSession() {
  const s = client.session;
  if (!s) return;
  $("user").textContent = s.user ? String(s.user) : "(unknown)";
  let text;
  if (s.kind === "oidc") {
    text = "your identity provider's token" + (s.expiresAt ? `, valid until ${timeOf(s.expiresAt)}` : "");
  } else if (s.renewable) {
    text = `local account; session token until ${timeOf(s.expiresAt)}, renewed automatically ` +
      `(the refresh cookie lasts until ${whenOf(s.renewExpiresAt)} if unused)`;
  } else {
    text = `local account; session token until ${timeOf(s.expiresAt)}; renewal not available: sign in again then`;
  }
  $("session").textContent = text;
}

function renderToken(t) {
  const claims = decodeJwtPayload(t.token) || {};
  const expiresAt = Date.parse(t.expiresOn);
  shown = { token: t.token, expiresAt };
  $("identity").textContent = t.user?.communicationUserId ?? "(not in the answer)";
  const scopes = claims.acsScope ?? claims.scp;
  $("scopes").textContent = scopes === undefined ? "(none in the token)" : String(scopes).split(/[ ,]+/).join(", ");
  $("expires").textContent = `${timeOf(expiresAt)} (${t.expiresOn})`;
  $("claims").textContent = JSON.stringify(claims, null, 2);
  $("token-value").value = t.token;
  tick();
}

function clearToken() {
  shown = null;
  for (const id of ["identity", "scopes", "expires", "countdown", "claims"]) $(id).textContent = "";
  $("identity").textContent = "none";
  $("token-value").value = "";
}

function tick() {
  if (!shown) return;
  const left = (shown.expiresAt - Date.now()) / 1000;
  $("countdown").textContent = left > 0 ? `in ${duration(left)}` : "expired";
}

function stopCredential() {
  generation++;
  credential?.dispose();
  credential = null;
  clearTimeout(retryTimer);
  retryTimer = null;
}

// A fresh credential. Its refresher is called at once (no initial token), then by the SDK's own
// timer: 10 minutes before expiry, or after half the remaining life of a shorter token.
function startCredential(firstReason) {
  stopCredential();
  const mine = generation;
  let reason = firstReason;
  credential = new AzureCommunicationTokenCredential({
    refreshProactively: true,
    tokenRefresher: async () => {
      const why = reason;
      reason = "proactive refresh by the SDK (the token nears its expiry)";
      let t;
      try {
        t = await client.acsToken();
      } catch (err) {
        if (mine === generation) refreshFailed(err, why);
        err.shownOnPage = true;
        throw err;
      }
      if (mine === generation) {
        const same = shown && shown.token === t.token;
        log(why, `new expiry ${timeOf(Date.parse(t.expiresOn))}${same ? " (the same token, from the service's cache)" : ""}`);
        renderToken(t);
        showError(null);
        status("");
      }
      return t.token;
    },
  });
  credential.getToken().catch(() => {}); // a failure is already on the page (refreshFailed)
}

function refreshFailed(err, why) {
  log(`${why}: failed`, describe(err));
  if (err instanceof SessionEnded) {
    signOutLocally(err.message);
    return;
  }
  showError(err);
  // The SDK stops its timer after a failed refresh; try again once the service says it may work.
  const transient = err instanceof UnreachableError ||
    (err instanceof ServiceError && (err.status === 429 || err.status >= 500));
  if (transient) {
    const wait = err instanceof ServiceError && err.retryAfter != null ? err.retryAfter : 10;
    retryTimer = setTimeout(() => startCredential("retry after a failed refresh"), Math.max(1, wait) * 1000);
  }
}

function signOutLocally(message) {
  stopCredential();
  client.clearSession();
  clearToken();
  showSignedIn(false);
  if (message) showError(message);
}

function sessionChanged(note, err) {
  if (err) {
    log("session renewal failed", describe(err));
    if (!(err instanceof SessionEnded)) showError(err);
    renderSession();
    return;
  }
  if (note && note !== "signed in" && client.session) log(note, `session token until ${timeOf(client.session.expiresAt)}`);
  renderSession();
}

async function busy(button, fn) {
  button.disabled = true;
  try {
    await fn();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function wire() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy($("sign-in"), async () => {
      showError(null);
      status("Signing in...");
      try {
        await client.login($("username").value, $("password").value);
      } finally {
        status("");
      }
      $("password").value = "";
      showSignedIn(true);
      $("log").replaceChildren();
      startCredential("first token after signing in");
    });
  });

  $("bearer-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("bearer").value.trim();
    showError(null);
    client.useBearer(token);
    $("bearer").value = "";
    showSignedIn(true);
    $("log").replaceChildren();
    startCredential("first token with your identity provider's token");
  });

  $("revoke").addEventListener("click", () =>
    busy($("revoke"), async () => {
      await client.revokeAll();
      log("signed out everywhere: every token of this identity is revoked");
      startCredential("new credential after signing out everywhere");
    }));

  $("delete").addEventListener("click", () =>
    busy($("delete"), async () => {
      const id = $("identity").textContent;
      const code = await client.deleteIdentity();
      stopCredential();
      clearToken();
      log(code === 202 ? `identity ${id}: deletion accepted (ACS is failing; the service finishes it)` : `identity ${id} deleted`);
      status("Your ACS identity is deleted. The service makes a new one the next time you ask for a token.");
      $("new-identity").hidden = false;
    }));

  $("new-identity").addEventListener("click", () => {
    $("new-identity").hidden = true;
    status("");
    startCredential("first token for a new identity");
  });

  $("logout").addEventListener("click", () =>
    busy($("logout"), async () => {
      stopCredential();
      clearToken();
      try {
        await client.logout();
      } finally {
        showSignedIn(false);
        $("new-identity").hidden = true;
      }
      status("Logged out.");
    }));

  // The SDK's own timer rethrows a refresher's failure as an unhandled rejection; the page has
  // already shown it.
  window.addEventListener("unhandledrejection", (ev) => {
    if (ev.reason?.shownOnPage) ev.preventDefault();
  });
  setInterval(tick, 1000);
}

async function main() {
  wire();
  let config;
  try {
    const r = await fetch("config.json", { cache: "no-store" });
    config = await r.json();
    if (typeof config.api !== "string") throw new Error("no api");
  } catch {
    showError("This page needs config.json with the service's address: serve it with " +
      "`node serve.mjs --api http://127.0.0.1:8080` (make run does).");
    return;
  }
  $("api").textContent = config.api;
  client = new Tokenvend(config.api, { onSession: sessionChanged });
  try {
    if (await client.resume()) {
      showSignedIn(true);
      startCredential("first token after resuming the session");
      return;
    }
  } catch (err) {
    showError(err);
  }
  showSignedIn(false);
}

main();
