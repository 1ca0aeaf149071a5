// A relying party nobody here wrote — openid-client (npm) — signs a user in
// through a running latch's demo tenant, with the hosted sign-in page filled
// in by Debian's Chromium: discovery, an authorization URL with PKCE and a
// nonce, the page, the callback, the code exchange with ID-token validation,
// userinfo, refresh; then a second client gets a code without a password
// (single sign-on), prompt=login asks again, and RP-initiated logout ends the
// sessions. Registers its two public clients through the admin API (it knows
// its own callback port). Prints what it saw as one JSON line and saves a
// screenshot of the sign-in page.
// Run by the server's integration tests (tests/integration/oidc_browser.rs).
// Usage: node server-oidc.mjs BASE_URL OPERATOR_TOKEN EMAIL PASSWORD SCREENSHOT_PATH
import { createServer } from "node:http";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import * as client from "openid-client";
import { launchChromium, watchPage } from "./chromium.mjs";

const [base, operatorToken, email, password, screenshot] = process.argv.slice(2);
const issuer = `${base}/t/demo`;
const seen = {};

// The relying party's callback: answers every request with a small page.
const callback = createServer((req, res) => res.writeHead(200, { "content-type": "text/plain" }).end("signed in"));
await new Promise((resolve) => callback.listen(0, "127.0.0.1", resolve));
const rp = `http://127.0.0.1:${callback.address().port}`;

async function register(clientId) {
  const response = await fetch(`${issuer}/admin/clients`, {
    method: "POST",
    headers: { authorization: `Bearer ${operatorToken}`, "content-type": "application/json" },
    body: JSON.stringify({
      client_id: clientId,
      type: "public",
      name: `Relying party ${clientId}`,
      redirect_uris: [`${rp}/callback`],
      post_logout_redirect_uris: [`${rp}/bye`],
      first_party: true,
    }),
  });
  if (response.status !== 201) throw new Error(`client ${clientId}: ${response.status} ${await response.text()}`);
  // Discovery as a relying party does it; latch here runs on plain http.
  return client.discovery(new URL(issuer), clientId, undefined, client.None(), {
    execute: [client.allowInsecureRequests],
  });
}

/** Opens an authorization URL for `config` in `page`; returns what the callback receives after `act`. */
async function authorize(page, config, extra, act) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: `${rp}/callback`,
    scope: "openid profile email",
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
    state,
    nonce,
    ...extra,
  });
  const arrived = page.waitForURL((u) => u.href.startsWith(`${rp}/callback`), { timeout: 20000 });
  await page.goto(url.href);
  if (act) await act();
  await arrived;
  return { callbackUrl: new URL(page.url()), verifier, state, nonce };
}

const browser = await launchChromium();
try {
  const first = await register("rp-one");
  const second = await register("rp-two");
  seen.discovered = {
    authorization: first.serverMetadata().authorization_endpoint,
    pkce: first.serverMetadata().code_challenge_methods_supported,
  };

  const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
  const watched = await watchPage(page);

  // 1. The hosted sign-in page, filled in as a person would.
  const signedIn = await authorize(page, first, {}, async () => {
    await page.getByLabel("Email").waitFor({ timeout: 20000 });
    seen.unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("input:not([type=hidden])")].filter((i) => !i.labels?.length).map((i) => i.name),
    );
    seen.fitsWidth = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    seen.title = await page.title();
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    seen.violations = await watched.violations();
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
  });
  seen.errors = [...watched.errors];
  const tokens = await client.authorizationCodeGrant(first, signedIn.callbackUrl, {
    pkceCodeVerifier: signedIn.verifier,
    expectedState: signedIn.state,
    expectedNonce: signedIn.nonce,
  });
  const claims = tokens.claims();
  seen.idToken = { sub: claims.sub, aud: claims.aud, nonceMatched: claims.nonce === signedIn.nonce, email: claims.email };
  const userinfo = await client.fetchUserInfo(first, tokens.access_token, claims.sub);
  seen.userinfo = { sub: userinfo.sub, email: userinfo.email };
  const refreshed = await client.refreshTokenGrant(first, tokens.refresh_token);
  seen.refreshed = { rotated: refreshed.refresh_token !== tokens.refresh_token, idToken: Boolean(refreshed.id_token) };

  // 2. Single sign-on: the second client gets a code without the page.
  let formShown = false;
  const sso = await authorize(page, second, {}, async () => {
    formShown = await page.getByLabel("Password").isVisible().catch(() => false);
  });
  const ssoTokens = await client.authorizationCodeGrant(second, sso.callbackUrl, {
    pkceCodeVerifier: sso.verifier,
    expectedState: sso.state,
    expectedNonce: sso.nonce,
  });
  seen.sso = { formShown, sameUser: ssoTokens.claims().sub === claims.sub };

  // 3. prompt=login asks for the password again.
  const again = await authorize(page, second, { prompt: "login" }, async () => {
    await page.getByLabel("Password").waitFor({ timeout: 20000 });
    seen.promptLoginShowsForm = true;
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
  });
  seen.promptLoginCode = again.callbackUrl.searchParams.has("code");

  // 4. RP-initiated logout: back at the relying party, sessions ended.
  const logoutUrl = client.buildEndSessionUrl(first, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: `${rp}/bye`,
    state: "see-you",
  });
  await page.goto(logoutUrl.href);
  await page.waitForURL((u) => u.href.startsWith(`${rp}/bye`), { timeout: 20000 });
  seen.logoutState = new URL(page.url()).searchParams.get("state");
  seen.refreshAfterLogout = await client
    .refreshTokenGrant(first, refreshed.refresh_token)
    .then(() => "accepted", (error) => error.error ?? String(error));
  let askedAgain = false;
  await authorize(page, first, {}, async () => {
    askedAgain = await page.getByLabel("Password").isVisible({ timeout: 20000 }).catch(() => false);
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
  });
  seen.signInAfterLogout = askedAgain;
  seen.finalErrors = watched.errors;
} finally {
  await browser.close();
  callback.close();
}
console.log(JSON.stringify(seen));
