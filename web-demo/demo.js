// The latch demo: register or log in, then verify the access token offline
// with @latch/verifier (served by this server at /demo/verifier/) against the
// tenant's JWKS, and show what rotation, tampering and expiry look like.
import { call, clearProblem, showProblem, tenantPath } from "./api.js";

const $ = (id) => document.getElementById(id);
const problem = $("problem");

/** The tenant in use, its verifier, and the signed-in session. */
const state = {
  tenant: "",
  audience: "",
  verifier: null,
  tokens: null,
  claims: null,
  countdown: null,
  /** The OAuth client of the session (its refresh tokens are bound to it), or null. */
  client: null,
};

let verifierPackage;
try {
  verifierPackage = await import("./verifier/browser.js");
} catch (error) {
  showProblem(
    problem,
    new Error(
      `The verifier package is not built into this server (${error.message}). ` +
        "Start latch with ./run.sh, which builds verifier-wasm/pkg first.",
    ),
  );
}

/**
 * The server's public URL can name another host than the one this page came
 * from (localhost and 127.0.0.1, say); the page may only talk to its own
 * origin, so key-set fetches go there with the same path.
 */
const sameOrigin = (url) => {
  const { pathname, search } = new URL(url, location.href);
  return fetch(`${location.origin}${pathname}${search}`);
};

/** The demo tenant's own public client (registered by the server at start). */
const DEMO_CLIENT = "latch-demo";
const PKCE_KEY = "latch-demo-pkce";
const base64url = (bytes) =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const redirectUri = () => `${location.origin}/demo/`;

/** Starts the authorization code flow with PKCE: off to the hosted sign-in page. */
async function startSignIn() {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const expected = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state: expected, tenant: state.tenant }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: DEMO_CLIENT,
    redirect_uri: redirectUri(),
    scope: "openid profile email",
    state: expected,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`${tenantPath(state.tenant)}/oauth/authorize?${params}`);
}

/** The token endpoint, form-encoded as OAuth wants; throws its error description. */
async function tokenRequest(tenant, form) {
  const response = await fetch(`${tenantPath(tenant)}/oauth/token`, { method: "POST", body: new URLSearchParams(form) });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${answer.error}: ${answer.error_description ?? ""}`);
  return answer;
}

/** Back from the sign-in page with `code` (or `error`): exchanges it with the verifier. */
async function finishSignIn(params) {
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) ?? "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", location.pathname);
  if (params.get("error")) throw new Error(`Sign-in refused: ${params.get("error_description") ?? params.get("error")}`);
  if (!saved || saved.state !== params.get("state")) throw new Error("This answer is not for this page's request; sign in again.");
  $("tenant").value = saved.tenant;
  await useTenant();
  const tokens = await tokenRequest(saved.tenant, {
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    code_verifier: saved.verifier,
    client_id: DEMO_CLIENT,
  });
  // The token answer names no user; userinfo does.
  const info = await call("GET", `${tenantPath(saved.tenant)}/oauth/userinfo`, { token: tokens.access_token });
  state.client = DEMO_CLIENT;
  await signedIn({ ...tokens, user: { email: info.email } });
  $("account-note").textContent = "Signed in with latch: an authorization code with PKCE, and an ID token.";
}

async function useTenant() {
  clearProblem(problem);
  state.tenant = $("tenant").value.trim();
  state.audience = $("audience").value.trim() || state.tenant;
  state.verifier = null;
  $("issuer").textContent = "…";
  const discovery = await call("GET", `${tenantPath(state.tenant)}/.well-known/openid-configuration`);
  $("issuer").textContent = discovery.issuer;
  if (verifierPackage) {
    state.verifier = verifierPackage.createRemoteVerifier(discovery.issuer, {
      audience: state.audience,
      fetch: sameOrigin,
    });
  }
}

const pretty = (value) => JSON.stringify(value, null, 2);

/** Verifies `token` in this page (at `now`, seconds, if given) and shows the verdict. */
async function verifyAndShow(token, now, label = "The access token") {
  const verdict = $("verdict");
  if (!state.verifier) {
    verdict.className = "verdict bad";
    verdict.textContent = "Not verified: the verifier package is missing.";
    return null;
  }
  try {
    const claims = await state.verifier.verify(token, now);
    verdict.className = "verdict ok";
    verdict.textContent = `✓ verified — ${label} passed every rule, checked offline in this page.`;
    return claims;
  } catch (error) {
    verdict.className = "verdict bad";
    const code = error?.code ?? "error";
    verdict.replaceChildren(
      `✗ rejected — ${label}: `,
      Object.assign(document.createElement("code"), { className: "code", textContent: code }),
      ` ${error?.message ?? ""}`,
    );
    return null;
  }
}

function showDecoded(token) {
  $("token").textContent = token;
  try {
    const { header, payload } = verifierPackage.decodeUnverified(token);
    $("header").textContent = pretty(header);
    $("claims").textContent = pretty(payload);
  } catch (error) {
    $("header").textContent = $("claims").textContent = `(not decodable: ${error?.code ?? error})`;
  }
}

function showRoles(claims) {
  const roles = $("roles");
  roles.replaceChildren(
    ...(claims?.roles ?? []).map((role) => Object.assign(document.createElement("span"), { className: "badge", textContent: role })),
  );
  $("admin-panel").hidden = !(claims && verifierPackage.hasRole(claims, "admin"));
}

function startCountdown() {
  clearInterval(state.countdown);
  const tick = () => {
    if (!state.claims) return;
    const left = verifierPackage.expiresIn(state.claims);
    if (left <= 0) {
      $("countdown").textContent = "expired";
      clearInterval(state.countdown);
      verifyAndShow(state.tokens.access_token);
      return;
    }
    const minutes = Math.floor(left / 60);
    $("countdown").textContent = `${minutes}:${String(left % 60).padStart(2, "0")}`;
  };
  tick();
  state.countdown = setInterval(tick, 1000);
}

/** Shows a token response: the token, its parts, the verdict, roles, countdown, sessions. */
async function signedIn(tokens) {
  state.tokens = tokens;
  $("account").hidden = true;
  $("session").hidden = false;
  $("who").textContent = tokens.user.email;
  showDecoded(tokens.access_token);
  state.claims = await verifyAndShow(tokens.access_token);
  showRoles(state.claims);
  if (state.claims) startCountdown();
  await loadSessions();
}

function signedOut(message) {
  clearInterval(state.countdown);
  state.tokens = state.claims = state.client = null;
  $("session").hidden = true;
  $("verdict").textContent = $("who").textContent = "";
  $("account").hidden = false;
  $("rotation").textContent = "";
  $("account-note").textContent = message;
}

async function loadSessions() {
  const { sessions } = await call("GET", `${tenantPath(state.tenant)}/users/me/sessions`, {
    token: state.tokens.access_token,
  });
  $("sessions").replaceChildren(
    ...sessions.map((session) => {
      const item = document.createElement("li");
      const when = new Date(session.created_at).toLocaleString();
      const agent = session.user_agent ? ` · ${session.user_agent.slice(0, 60)}` : "";
      item.append(`${session.current ? "This session" : "Session"} ${session.id.slice(0, 8)}… since ${when}${agent} `);
      const end = Object.assign(document.createElement("button"), { type: "button", textContent: "End" });
      end.setAttribute("aria-label", `End session ${session.id}`);
      end.addEventListener("click", () =>
        run(async () => {
          await call("DELETE", `${tenantPath(state.tenant)}/users/me/sessions/${session.id}`, {
            token: state.tokens.access_token,
          });
          if (session.current) signedOut("This session was ended.");
          else await loadSessions();
        }),
      );
      item.append(end);
      return item;
    }),
  );
}

/** Runs an action, showing any failure as the server's problem title. */
async function run(action) {
  clearProblem(problem);
  try {
    await action();
  } catch (error) {
    showProblem(problem, error);
  }
}

$("tenant-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    await useTenant();
    if (state.tokens) signedOut("Tenant changed: log in again.");
  });
});

$("account-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const action = event.submitter?.value ?? "login";
  run(async () => {
    if (!state.verifier) await useTenant();
    const body = { email: $("email").value, password: $("password").value };
    if (action === "register" && $("name").value.trim()) body.name = $("name").value.trim();
    const answer = await call("POST", `${tenantPath(state.tenant)}/auth/${action}`, { body });
    $("password").value = "";
    if (!answer.access_token) {
      // The tenant requires a verified email before the first login.
      $("account-note").textContent = `Account created for ${answer.user.email}: ${answer.detail}.`;
      return;
    }
    $("account-note").textContent = "";
    await signedIn(answer);
  });
});

$("forgot").addEventListener("click", () =>
  run(async () => {
    if (!state.tenant) await useTenant();
    await call("POST", `${tenantPath(state.tenant)}/auth/password-reset`, { body: { email: $("email").value } });
    $("account-note").textContent =
      "If that account exists, a reset link is on its way. Without SMTP configured, " +
      "latch writes mail to the outbox folder in its data directory.";
  }),
);

$("resend").addEventListener("click", () =>
  run(async () => {
    if (!state.tenant) await useTenant();
    await call("POST", `${tenantPath(state.tenant)}/auth/verify-email/resend`, { body: { email: $("email").value } });
    $("account-note").textContent =
      "If that account exists and is not verified yet, a new verification link is on its way (at most one a minute).";
  }),
);

$("refresh").addEventListener("click", () =>
  run(async () => {
    const before = state.tokens;
    const sessionBefore = state.claims?.sid;
    const tokens = state.client
      ? {
          ...(await tokenRequest(state.tenant, {
            grant_type: "refresh_token",
            refresh_token: before.refresh_token,
            client_id: state.client,
          })),
          user: before.user,
        }
      : await call("POST", `${tenantPath(state.tenant)}/auth/refresh`, { body: { refresh_token: before.refresh_token } });
    await signedIn(tokens);
    const tail = (token) => `…${token.slice(-6)}`;
    const same = state.claims?.sid === sessionBefore;
    $("rotation").textContent =
      `Refresh token rotated: ${tail(before.refresh_token)} → ${tail(tokens.refresh_token)}; ` +
      `${same ? "same session" : "new session"} ${state.claims?.sid ?? ""}.`;
  }),
);

$("tamper").addEventListener("click", () =>
  run(async () => {
    const [header, payload, signature] = state.tokens.access_token.split(".");
    const at = Math.floor(payload.length / 2);
    const flipped = payload[at] === "A" ? "B" : "A";
    const tampered = `${header}.${payload.slice(0, at)}${flipped}${payload.slice(at + 1)}.${signature}`;
    showDecoded(tampered);
    await verifyAndShow(tampered, undefined, "A copy with one payload character changed");
  }),
);

$("simulate-expiry").addEventListener("click", () =>
  run(async () => {
    showDecoded(state.tokens.access_token);
    // The verifier allows 30 s of clock skew past `exp`.
    await verifyAndShow(state.tokens.access_token, state.claims.exp + 31, "The access token, 31 s after its exp");
  }),
);

$("verify-again").addEventListener("click", () =>
  run(async () => {
    showDecoded(state.tokens.access_token);
    await verifyAndShow(state.tokens.access_token);
  }),
);

$("logout").addEventListener("click", () =>
  run(async () => {
    await call("POST", `${tenantPath(state.tenant)}/auth/logout`, { token: state.tokens.access_token });
    signedOut("Logged out: the session and its refresh tokens are gone.");
  }),
);

$("reload-sessions").addEventListener("click", () => run(loadSessions));

$("list-users").addEventListener("click", () =>
  run(async () => {
    const { users } = await call("GET", `${tenantPath(state.tenant)}/admin/users?limit=20`, {
      token: state.tokens.access_token,
    });
    $("users").replaceChildren(
      ...users.map((user) =>
        Object.assign(document.createElement("li"), { textContent: `${user.email} (${user.roles.join(", ")})` }),
      ),
    );
  }),
);

$("oidc-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(async () => {
    if (!state.verifier) await useTenant();
    await startSignIn();
  });
});

const query = new URLSearchParams(location.search);
const requested = query.get("tenant");
if (requested) $("tenant").value = requested;
if (verifierPackage) {
  await run(() => (query.has("code") || query.has("error") ? finishSignIn(query) : useTenant()));
}
// Lets the end-to-end test know the page finished starting.
document.body.dataset.ready = "true";
