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
  state.tokens = state.claims = null;
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
    const tokens = await call("POST", `${tenantPath(state.tenant)}/auth/refresh`, {
      body: { refresh_token: before.refresh_token },
    });
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

const requested = new URLSearchParams(location.search).get("tenant");
if (requested) $("tenant").value = requested;
if (verifierPackage) {
  await run(useTenant);
}
// Lets the end-to-end test know the page finished starting.
document.body.dataset.ready = "true";
